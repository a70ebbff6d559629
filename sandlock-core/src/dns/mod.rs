//! The DNS interceptor: every DNS query the workload sends, over UDP or
//! TCP to any resolver address, is answered by the supervisor.
//!
//! Names a rule covers (`--net-allow`, `--http-allow`, `--secret` hosts,
//! including `*.suffix` patterns) are resolved through the host's resolvers
//! (or `--dns-server`), and the addresses in the answer become pins: the
//! allowlist, the proxy's reach and the secrets' DNS-pin gate accept them
//! for that name from then on. `--add-host` names and names pinned at start
//! are answered from memory. Every other name gets NXDOMAIN and never
//! leaves the machine, so DNS cannot carry data out.
//!
//! The workload's DNS sockets live in a private network namespace
//! (`netns.rs`) where every address is local and only the interceptor
//! listens, so answers come from exactly the address the query went to.
//! This module must never send anything upstream but a question it built
//! itself for a name a rule covers, and never answer for a name with an
//! address it did not get from a pin or from upstream.

#[cfg(test)]
mod hostile;
mod lookup;
mod netns;
mod responder;
mod serve;

pub(crate) use lookup::lookup;

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, OnceLock};

use crate::audit::Reporter;
use crate::network::Pinned;
use crate::policy::{HostMatch, HostPattern, Policy};

/// The interceptor. Its namespace is set up by a helper process in
/// parallel with the workload's start (creating a network namespace takes
/// milliseconds); the first DNS socket waits for it.
pub struct Dns {
    netns: netns::Netns,
    /// What the servers need, until they start.
    pending: Mutex<Option<Arc<responder::Responder>>>,
    ready: OnceLock<Option<Ready>>,
    quiet: bool,
}

/// A namespace that is set up and served.
struct Ready {
    cookie: u64,
    /// The server sockets, shut down on drop to end their threads.
    servers: Vec<Arc<OwnedFd>>,
}

impl Dns {
    /// Starts setting the interceptor up for `policy`: its namespace, and
    /// the upstream resolvers it asks.
    pub fn start(
        policy: &Policy,
        pinned: &Pinned,
        reporter: Arc<Reporter>,
    ) -> std::io::Result<Dns> {
        let upstream = if policy.net.dns_servers.is_empty() {
            host_resolvers(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
        } else {
            policy.net.dns_servers.clone()
        };
        let responder = Arc::new(responder::Responder::new(
            resolvable(policy),
            pinned.clone(),
            upstream,
            reporter,
        ));
        Ok(Dns {
            netns: netns::Netns::spawn()?,
            pending: Mutex::new(Some(responder)),
            ready: OnceLock::new(),
            quiet: policy.report.quiet,
        })
    }

    /// The served namespace, waiting for it the first time; `None` when it
    /// could not be set up (said once on stderr).
    fn ready(&self) -> Option<&Ready> {
        self.ready
            .get_or_init(|| match self.serve() {
                Ok(r) => Some(r),
                Err(e) => {
                    warn_unavailable(self.quiet, &e);
                    None
                }
            })
            .as_ref()
    }

    fn serve(&self) -> std::io::Result<Ready> {
        let responder = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| std::io::Error::other("already failed"))?;
        let (cookie, servers) = self.netns.servers()?;
        let slots = Arc::new(serve::Slots::default());
        let mut ready = Ready {
            cookie,
            servers: Vec::new(),
        };
        let udp = [Some(servers.udp4), servers.udp6];
        for sock in udp.into_iter().flatten() {
            let sock = Arc::new(sock);
            ready.servers.push(Arc::clone(&sock));
            serve::udp(sock, Arc::clone(&responder), Arc::clone(&slots))?;
        }
        let tcp = [Some(servers.tcp4), servers.tcp6];
        for sock in tcp.into_iter().flatten() {
            let sock = Arc::new(sock);
            ready.servers.push(Arc::clone(&sock));
            serve::tcp(sock, Arc::clone(&responder), Arc::clone(&slots))?;
        }
        Ok(ready)
    }

    /// True once the interceptor serves (waiting for its setup).
    pub fn available(&self) -> bool {
        self.ready().is_some()
    }

    /// A new socket of `family` and `ty` (stream or datagram) inside the
    /// interceptor's namespace, for the workload.
    pub fn socket(&self, family: i32, ty: i32) -> std::io::Result<OwnedFd> {
        if self.ready().is_none() {
            return Err(std::io::Error::from_raw_os_error(libc::ECONNREFUSED));
        }
        self.netns.socket(family, ty)
    }

    /// True when `sock` lives in the interceptor's namespace, where it can
    /// reach nothing but the interceptor.
    pub fn owns(&self, sock: &OwnedFd) -> bool {
        self.ready()
            .is_some_and(|r| netns::netns_cookie(sock).is_ok_and(|c| c == r.cookie))
    }
}

impl Drop for Ready {
    fn drop(&mut self) {
        for s in &self.servers {
            // SAFETY: shutdown on a socket we own; it wakes the thread
            // blocked on it, which then ends.
            unsafe { libc::shutdown(s.as_raw_fd(), libc::SHUT_RDWR) };
        }
    }
}

/// Says, once per sandbox, that DNS is not intercepted and what follows.
pub(crate) fn warn_unavailable(quiet: bool, e: &std::io::Error) {
    if !quiet {
        // Not eprintln!: a closed stderr must not panic the supervisor.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "sandlock: warning: DNS interceptor unavailable ({e}); names resolve only \
             through /etc/hosts, and port 53 follows --net-allow"
        );
    }
}

/// Sets the interceptor's namespace up once, for `sandlock check`.
pub(crate) fn probe() -> std::io::Result<()> {
    netns::Netns::spawn()?.servers().map(drop)
}

/// The name patterns the policy's rules cover.
pub(crate) fn resolvable(policy: &Policy) -> Vec<HostMatch> {
    let net = policy.net.allow.iter().filter_map(|r| match &r.host {
        HostPattern::Any => Some(HostMatch::Any),
        HostPattern::Name(n) => Some(HostMatch::Exact(n.clone())),
        HostPattern::Suffix(s) => Some(HostMatch::Suffix(s.clone())),
        HostPattern::Net(_) => None,
    });
    let http = policy.http.allow.iter().map(|r| r.host.clone());
    let secrets = policy.secrets.iter().flat_map(|s| s.hosts.iter().cloned());
    net.chain(http)
        .chain(secrets)
        .filter(|h| !matches!(h, HostMatch::Ip(_)))
        .collect()
}

/// The `nameserver` lines of a resolv.conf, on port 53; glibc's default
/// (the local host) when there are none.
fn host_resolvers(conf: &str) -> Vec<SocketAddr> {
    let found: Vec<SocketAddr> = conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| {
            let addr = rest.split_whitespace().next()?;
            let addr = addr.split('%').next()?;
            addr.parse::<std::net::IpAddr>().ok()
        })
        .map(|ip| SocketAddr::new(ip, 53))
        .collect();
    if found.is_empty() {
        vec![SocketAddr::from(([127, 0, 0, 1], 53))]
    } else {
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers() {
        let conf = "# c\nsearch corp.test\nnameserver 10.0.0.53\nnameserver fe80::1%eth0\n\
                    nameserver  ::1 \noptions ndots:2\nnameserver bogus\n";
        assert_eq!(
            host_resolvers(conf),
            vec![
                "10.0.0.53:53".parse().unwrap(),
                "[fe80::1]:53".parse().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
        assert_eq!(host_resolvers(""), vec!["127.0.0.1:53".parse().unwrap()]);
    }
}
