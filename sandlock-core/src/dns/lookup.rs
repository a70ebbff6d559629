//! Names resolved without libc: `/etc/hosts` first, then the A and AAAA
//! questions to `/etc/resolv.conf`'s servers, with its search list and
//! `ndots` as glibc applies them. For a supervisor on an image's ground
//! (see [`crate::Ground`]): libc's resolver would read the image's
//! nsswitch.conf and load the library it names.
//!
//! Must never load code or follow any configuration beyond those two
//! files' data.

use std::net::IpAddr;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};

use super::responder::{exchange_tcp, exchange_udp, question};

/// The addresses of `name`, or why there are none.
pub(crate) fn lookup(name: &str) -> Result<Vec<IpAddr>, String> {
    let hosts = small_file("/etc/hosts");
    let found = in_hosts(&hosts, name);
    if !found.is_empty() {
        return Ok(found);
    }
    let conf = small_file("/etc/resolv.conf");
    let servers = super::host_resolvers(&conf);
    for candidate in candidates(&conf, name) {
        let mut ips = Vec::new();
        for ty in [RecordType::A, RecordType::AAAA] {
            ips.extend(ask(&servers, &candidate, ty));
        }
        if !ips.is_empty() {
            return Ok(ips);
        }
    }
    Err("not in /etc/hosts, and no resolver in /etc/resolv.conf knows it".into())
}

/// Bound on what is read of either file: the image chose them, and a
/// FIFO or `/dev/zero` there must not stall or exhaust the supervisor.
const MAX_FILE: u64 = 1 << 20;

/// A regular file's first [`MAX_FILE`] bytes as text; empty otherwise.
fn small_file(path: &str) -> String {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut text = String::new();
    // Non-blocking, so that opening a FIFO returns at once (and is then
    // refused as not a regular file).
    let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    else {
        return text;
    };
    if f.metadata().is_ok_and(|m| m.is_file()) {
        let _ = f.take(MAX_FILE).read_to_string(&mut text);
    }
    text
}

/// The addresses `/etc/hosts` gives `name` (case-insensitive).
fn in_hosts(hosts: &str, name: &str) -> Vec<IpAddr> {
    let name = name.trim_end_matches('.');
    hosts
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let ip: IpAddr = words.next()?.parse().ok()?;
            words.any(|w| w.eq_ignore_ascii_case(name)).then_some(ip)
        })
        .collect()
}

/// The names to ask, in glibc's order: with fewer dots than `ndots`, each
/// search domain first, then the name itself; otherwise the other way
/// round. A name ending in a dot is asked as it is.
fn candidates(conf: &str, name: &str) -> Vec<String> {
    if let Some(absolute) = name.strip_suffix('.') {
        return vec![absolute.to_string()];
    }
    let mut search: Vec<&str> = Vec::new();
    let mut ndots = 1usize;
    for line in conf.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("search") | Some("domain") => search = words.collect(),
            Some("options") => {
                for o in words {
                    if let Some(n) = o.strip_prefix("ndots:").and_then(|n| n.parse().ok()) {
                        ndots = usize::min(n, 15);
                    }
                }
            }
            _ => {}
        }
    }
    let searched = search
        .iter()
        .map(|d| format!("{name}.{}", d.trim_end_matches('.')));
    let dots = name.matches('.').count();
    match dots >= ndots {
        true => std::iter::once(name.to_string()).chain(searched).collect(),
        false => searched.chain(std::iter::once(name.to_string())).collect(),
    }
}

/// The addresses of type `ty` the first answering server gives `name`.
fn ask(servers: &[std::net::SocketAddr], name: &str, ty: RecordType) -> Vec<IpAddr> {
    let Ok(fqdn) = Name::from_ascii(format!("{name}.")) else {
        return Vec::new();
    };
    let q = Query::query(fqdn, ty);
    let Some((id, wire)) = question(&q) else {
        return Vec::new();
    };
    for server in servers {
        let Some(bytes) = exchange_udp(*server, &wire, id) else {
            continue;
        };
        let Ok(mut answer) = Message::from_vec(&bytes) else {
            continue;
        };
        if answer.truncated() {
            match exchange_tcp(*server, &wire, id).and_then(|b| Message::from_vec(&b).ok()) {
                Some(m) => answer = m,
                None => continue,
            }
        }
        if answer.queries() != std::slice::from_ref(&q) {
            continue;
        }
        return answer
            .answers()
            .iter()
            .filter_map(|r| match r.data() {
                RData::A(a) if ty == RecordType::A => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) if ty == RecordType::AAAA => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .collect();
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lines_match_any_alias_case_blind() {
        let hosts = "127.0.0.1 localhost\n# 10.0.0.9 api.test\n10.0.0.1 web  API.test # c\n\
                     ::1 api.test\nbogus api.test\n";
        assert_eq!(
            in_hosts(hosts, "api.test."),
            [
                "10.0.0.1".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        assert!(in_hosts(hosts, "nope.test").is_empty());
    }

    #[test]
    fn only_a_regular_file_is_read_and_only_so_much() {
        assert_eq!(small_file("/dev/zero"), "");
        assert_eq!(small_file("/nonexistent/hosts"), "");
        let fifo = std::env::temp_dir().join(format!("sandlock-fifo-{}", std::process::id()));
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(
            small_file(fifo.to_str().unwrap()),
            "",
            "a FIFO neither stalls nor is read"
        );
        std::fs::remove_file(&fifo).unwrap();
        let dir = std::env::temp_dir().join(format!("sandlock-lookup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big = dir.join("hosts");
        std::fs::write(&big, "1.2.3.4 a.test\n".repeat(100_000)).unwrap();
        let text = small_file(big.to_str().unwrap());
        assert_eq!(text.len() as u64, MAX_FILE);
        assert!(text.starts_with("1.2.3.4 a.test\n"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn search_order_follows_ndots() {
        let conf = "search default.svc.cluster.local svc.cluster.local\noptions ndots:5\n";
        assert_eq!(
            candidates(conf, "api"),
            [
                "api.default.svc.cluster.local",
                "api.svc.cluster.local",
                "api"
            ]
        );
        assert_eq!(
            candidates(conf, "api.example.com.")[..],
            ["api.example.com"]
        );
        let plain = "nameserver 10.0.0.53\nsearch corp.test\n";
        assert_eq!(candidates(plain, "a.b"), ["a.b", "a.b.corp.test"]);
        assert_eq!(candidates(plain, "host"), ["host.corp.test", "host"]);
        assert_eq!(candidates("options ndots:99999999999999999999", "x"), ["x"]);
    }
}
