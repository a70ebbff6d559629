//! Unix sockets: a host service's socket file (docker.sock, D-Bus, an
//! ssh-agent) is out of reach unless it is under a write grant or named
//! by `--unix-allow`; abstract names made outside the sandbox are out of
//! reach; the workload's own sockets work; and UDP sends meet the same
//! verdict whichever call makes them. Every attack has its twin.

use crate::common::*;
use std::io::Write;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram, UnixListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A host service on a unix stream socket: counts connections, sends
/// "HOST" on each.
struct HostService {
    accepted: Arc<AtomicUsize>,
}

impl HostService {
    fn serve(listener: UnixListener) -> HostService {
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for mut c in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                let _ = c.write_all(b"HOST");
            }
        });
        HostService { accepted }
    }

    /// A socket file any uid may connect to (the kernel alone would let
    /// the workload in).
    fn at(path: &str) -> HostService {
        let l = UnixListener::bind(path).expect("bind host socket");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
        HostService::serve(l)
    }

    fn abstract_name(name: &str) -> HostService {
        let addr = UnixAddr::from_abstract_name(name.as_bytes()).unwrap();
        HostService::serve(UnixListener::bind_addr(&addr).expect("bind abstract"))
    }

    fn accepted(&self) -> usize {
        std::thread::sleep(Duration::from_millis(100));
        self.accepted.load(Ordering::SeqCst)
    }
}

/// A host datagram socket; returns what it received so far.
fn host_dgram(path: &str) -> UnixDatagram {
    let d = UnixDatagram::bind(path).expect("bind host dgram");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
    d.set_nonblocking(true).unwrap();
    d
}

fn drained(d: &UnixDatagram) -> Vec<String> {
    std::thread::sleep(Duration::from_millis(100));
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while let Ok(n) = d.recv(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    got
}

both!(host_socket_files_are_out_of_reach_without_a_grant, |ctx| {
    let dir = TempDir::new("unix-host");
    let sock = dir.join("service.sock");
    let dgram = dir.join("log.sock");
    let service = HostService::at(&sock);
    let log = host_dgram(&dgram);
    let ops = vec![
        format!("unix,{sock}"),
        format!("unixdgram,{dgram},to"),
        format!("unixmsg,{dgram},msg"),
        format!("unixconnect,{dgram},conn"),
        format!("rel:unix,../../../..{sock}"),
    ];
    let out = ctx.sl(reach_args(&[], &ops));
    out.expect_code(0);
    for l in ["unix", "unixdgram", "unixmsg", "unixconnect", "rel"] {
        out.expect_err(l, "EACCES");
    }
    assert_eq!(service.accepted(), 0, "{}", out.dump());
    assert_eq!(drained(&log), Vec::<String>::new(), "{}", out.dump());
    let line = format!("denied connect unix:{sock}");
    assert!(
        out.denial_lines()
            .iter()
            .any(|l| l.contains(&line) && l.contains("--unix-allow")),
        "{}",
        out.dump()
    );
    assert!(
        out.denial_lines()
            .iter()
            .any(|l| l.contains("denied sendmsg unix:")),
        "{}",
        out.dump()
    );

    // twin: --unix-allow names the service (a file) and the log (by its
    // directory): the same calls reach them
    let allow = ["--unix-allow", &sock, "--unix-allow", &dir.s()];
    let out = ctx.sl(reach_args(&allow, &ops));
    out.expect_code(0)
        .expect_ok("unix", "HOST")
        .expect_ok("unixdgram", "2")
        .expect_ok("unixmsg", "3")
        .expect_ok("unixconnect", "4")
        .expect_ok("rel", "HOST");
    assert_eq!(service.accepted(), 2);
    let mut got = drained(&log);
    got.sort();
    assert_eq!(got, ["conn", "msg", "to"], "{}", out.dump());
});

both!(sockets_under_a_write_grant_need_no_flag, |ctx| {
    let dir = TempDir::new("unix-grant");
    let sock = dir.join("service.sock");
    let service = HostService::at(&sock);
    let ops = vec![
        format!("unix,{sock}"),
        "abs:ownunix,own.sock".into(),
        "rel:ownunix,./rel.sock".into(),
        "dgram:owndgram,d.sock".into(),
    ];
    // The sandbox's own TMPDIR is a write grant; so is -w.
    let out = ctx.sl(reach_args(&["-w", &dir.s()], &ops));
    out.expect_code(0)
        .expect_ok("unix", "HOST")
        .expect_ok("abs", "OWN")
        .expect_ok("rel", "OWN")
        .expect_ok("dgram", "OWN");
    assert_eq!(service.accepted(), 1);

    // twin: read access is not enough for the host's socket
    let out = ctx.sl(reach_args(&["-r", &dir.s()], &ops[..1]));
    out.expect_code(0).expect_err("unix", "EACCES");
    assert_eq!(service.accepted(), 1);
});

both!(abstract_names_outside_the_sandbox_are_out_of_reach, |ctx| {
    let name = format!("sandlock-e2e-abstract-{}-{}", std::process::id(), ctx.uid());
    let service = HostService::abstract_name(&name);
    // The sandbox's own name is unique too: abstract names are per network
    // namespace, and the variants of this test run side by side.
    let ops = vec![
        format!("abstract,{name}"),
        format!("own:ownunix,@own-{name}"),
    ];
    let out = ctx.sl(reach_args(&[], &ops));
    out.expect_code(0)
        .expect_err("abstract", "EPERM")
        .expect_ok("own", "OWN");
    assert_eq!(service.accepted(), 0, "{}", out.dump());
    assert!(
        out.denial_lines()
            .iter()
            .any(|l| l.contains(&format!("unix:@{name}"))),
        "{}",
        out.dump()
    );

    // twin: the same connect outside sandlock reaches the service
    let addr = UnixAddr::from_abstract_name(name.as_bytes()).unwrap();
    let c = std::os::unix::net::UnixStream::connect_addr(&addr);
    assert!(c.is_ok());
    assert_eq!(service.accepted(), 1);
});

both!(
    a_unix_path_flipped_in_memory_never_reaches_the_host,
    |ctx| {
        for mode in ["stream", "dgram"] {
            let dir = TempDir::new("unix-flip");
            let host = dir.join("host.sock");
            let (service, log) = match mode {
                "stream" => (Some(HostService::at(&host)), None),
                _ => (None, Some(host_dgram(&host))),
            };
            // The sandbox's own socket: a path as long as the host's, in a
            // directory under a write grant.
            let own_dir = TempDir::new("unix-flip-own");
            let own = format!("{}/own.sock", own_dir.s());
            let n = "2000";
            let out = run_cmd(
                ctx.command(fixture_args(
                    &["-q", "-w", &own_dir.s()],
                    "unixflip",
                    &[mode, &own, &host, n],
                )),
                None,
                Duration::from_secs(90),
            );
            out.expect_code(0);
            let counts = out.stdout.lines().next().unwrap_or_default().to_string();
            let field = |k: &str| -> u64 {
                counts
                    .split_whitespace()
                    .find_map(|p| p.strip_prefix(k))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("no {k} in {counts:?}\n{}", out.dump()))
            };
            assert!(
                field("ok=") > 0,
                "nothing reached the own socket\n{}",
                out.dump()
            );
            assert!(
                field("eacces=") > 0,
                "the race was never exercised\n{}",
                out.dump()
            );
            if let Some(s) = service {
                assert_eq!(
                    s.accepted(),
                    0,
                    "{mode}: the host socket was reached\n{}",
                    out.dump()
                );
            }
            if let Some(d) = log {
                assert!(
                    drained(&d).is_empty(),
                    "{mode}: the host socket was reached\n{}",
                    out.dump()
                );
            }
        }
    }
);

both!(udp_sendmsg_meets_the_verdict_of_sendto, |ctx| {
    let allowed = UdpServer::start("127.0.0.1");
    let denied = UdpServer::start("127.0.0.1");
    let a = allowed.port_s();
    let d = denied.port_s();
    let ops = vec![
        format!("dmsg:udpmsg,127.0.0.1,{d},m"),
        format!("dto:udpto,127.0.0.1,{d},t"),
        format!("amsg:udpmsg,127.0.0.1,{a},m"),
        format!("ato:udpto,127.0.0.1,{a},t"),
    ];
    // With a udp:// rule (host UDP sockets), and with a TCP rule only
    // (the sockets live in the DNS interceptor's namespace).
    let udp_rule = format!("udp://127.0.0.1:{a}");
    let tcp_rule = "127.0.0.1:1".to_string();
    for rule in [&udp_rule, &tcp_rule] {
        let out = ctx.sl(reach_args(&["--net-allow", rule], &ops));
        out.expect_code(0)
            .expect_err("dmsg", "EACCES")
            .expect_err("dto", "EACCES");
        if rule == &udp_rule {
            // twin: the allowed port gets both datagrams
            out.expect_ok("amsg", "1").expect_ok("ato", "1");
        } else {
            out.expect_err("amsg", "EACCES").expect_err("ato", "EACCES");
        }
    }
    assert!(denied.received().is_empty());
    assert_eq!(allowed.received().len(), 2);
});

#[test]
fn unix_allow_names_a_missing_path_in_its_error() {
    let out = Ctx::invoker().sl(["run", "--unix-allow", "/nonexistent/x.sock", "--", "true"]);
    assert_ne!(out.code(), 0);
    assert!(
        out.stderr.contains("--unix-allow") && out.stderr.contains("/nonexistent/x.sock"),
        "{}",
        out.dump()
    );
}
