//! Races and liveness: the sockaddr (and its family) flipped by another
//! thread between the supervisor's check and the kernel's read, and a
//! blocking connect to a stalled listener not stalling the rest of the
//! sandbox.

use crate::common::*;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// TOCTOU on the sockaddr
// ---------------------------------------------------------------------------

fn parse_counts(out: &Out) -> (u64, u64, u64) {
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("ok="))
        .unwrap_or_else(|| panic!("no counts\n{}", out.dump()));
    let mut v = [0u64; 3];
    for (i, part) in line.split_whitespace().enumerate().take(3) {
        v[i] = part.split('=').nth(1).unwrap().parse().unwrap();
    }
    (v[0], v[1], v[2])
}

const TOCTOU_ITERATIONS: u64 = 2000;

both!(toctou_sockaddr_flip_never_reaches_denied_tcp, |ctx| {
    let allowed = TcpServer::start("127.0.0.1");
    let denied = TcpServer::start("127.0.0.1");
    let rule = format!("127.0.0.1:{}", allowed.port());
    let n = TOCTOU_ITERATIONS.to_string();
    let out = run_cmd(
        ctx.command(fixture_args(
            &["-q", "--net-allow", &rule],
            "toctou",
            &["tcp", "127.0.0.1", &allowed.port_s(), &denied.port_s(), &n],
        )),
        None,
        Duration::from_secs(90),
    );
    out.expect_code(0);
    let (ok, eacces, other) = parse_counts(&out);
    assert_eq!(ok + eacces + other, TOCTOU_ITERATIONS, "{}", out.dump());
    assert_eq!(other, 0, "unexpected errors\n{}", out.dump());
    assert!(ok > 0, "no connect succeeded\n{}", out.dump());
    assert!(
        eacces > 0,
        "the flip never produced a denial (race not exercised)\n{}",
        out.dump()
    );
    assert_eq!(
        denied.accepted(),
        0,
        "denied listener accepted connections\n{}",
        out.dump()
    );
    let ok_usize = ok as usize;
    assert!(
        wait_until(Duration::from_secs(5), || allowed.accepted() >= ok_usize),
        "allowed server accepted {} of {ok}",
        allowed.accepted()
    );
});

both!(toctou_family_flip_never_reaches_denied_tcp, |ctx| {
    // The attack: the address flips between a unix path (which sandlock may
    // leave to the kernel) and a denied inet address.
    let denied = TcpServer::start("127.0.0.1");
    let allowed = TcpServer::start("127.0.0.1");
    let rule = format!("127.0.0.1:{}", allowed.port());
    let n = TOCTOU_ITERATIONS.to_string();
    let out = run_cmd(
        ctx.command(fixture_args(
            &["-q", "--net-allow", &rule],
            "familyflip",
            &["127.0.0.1", &denied.port_s(), &n],
        )),
        None,
        Duration::from_secs(90),
    );
    out.expect_code(0);
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("ok="))
        .unwrap_or_else(|| panic!("{}", out.dump()));
    let counts: Vec<u64> = line
        .split_whitespace()
        .map(|p| p.split('=').nth(1).unwrap().parse().unwrap())
        .collect();
    let (ok, eacces, afnosupport, other) = (counts[0], counts[1], counts[2], counts[3]);
    assert_eq!(
        ok + eacces + afnosupport + other,
        TOCTOU_ITERATIONS,
        "{}",
        out.dump()
    );
    assert_eq!(
        (ok, other),
        (0, 0),
        "a connect got through or failed oddly\n{}",
        out.dump()
    );
    assert!(
        afnosupport > 0 && eacces > 0,
        "both spellings must have been tried\n{}",
        out.dump()
    );
    assert_eq!(
        denied.accepted(),
        0,
        "denied listener accepted\n{}",
        out.dump()
    );
    // Twin without the attack: the same sandbox reaches the allowed port.
    let out = ctx.sl(probe_args(
        &["--net-allow", &rule],
        &[&format!("tcp4,127.0.0.1,{}", allowed.port())],
    ));
    out.expect_code(0);
    assert_eq!(
        out.probe("tcp4"),
        Ok(allowed.payload.clone()),
        "{}",
        out.dump()
    );
});

both!(toctou_family_flip_never_binds_denied_udp_port, |ctx| {
    // The attack: the address of a UDP bind flips between a unix path
    // (which sandlock leaves to the kernel on a unix socket) and a port
    // outside --net-allow-bind; no Landlock rule covers UDP ports, so a
    // bind the kernel re-read would take it. The udp:// rule keeps UDP
    // sockets out of the DNS interceptor's namespace.
    let port = free_port().to_string();
    let n = TOCTOU_ITERATIONS.to_string();
    let flip = |extra: &[&str]| {
        let mut args = vec!["-q", "--net-allow", "udp://127.0.0.1:1"];
        args.extend_from_slice(extra);
        let out = run_cmd(
            ctx.command(fixture_args(
                &args,
                "familyflip",
                &["127.0.0.1", &port, &n, "bind"],
            )),
            None,
            Duration::from_secs(90),
        );
        out.expect_code(0);
        let (ok, eacces, afnosupport) = parse_counts(&out);
        (ok, eacces, afnosupport, out)
    };
    let (ok, eacces, afnosupport, out) = flip(&[]);
    assert_eq!(ok, 0, "a bind took the denied port\n{}", out.dump());
    assert!(
        eacces > 0 && afnosupport > 0,
        "both spellings must have been tried\n{}",
        out.dump()
    );
    // Twin: with the port allowed, the inet spelling binds.
    let (ok, _, _, out) = flip(&["--net-allow-bind", &port]);
    assert!(ok > 0, "no bind succeeded\n{}", out.dump());
});

both!(toctou_sockaddr_flip_never_reaches_denied_udp, |ctx| {
    let allowed = UdpServer::start("127.0.0.1");
    let denied = UdpServer::start("127.0.0.1");
    let rule = format!("udp://127.0.0.1:{}", allowed.port_s());
    let n = TOCTOU_ITERATIONS.to_string();
    let out = run_cmd(
        ctx.command(fixture_args(
            &["-q", "--net-allow", &rule],
            "toctou",
            &["udp", "127.0.0.1", &allowed.port_s(), &denied.port_s(), &n],
        )),
        None,
        Duration::from_secs(90),
    );
    out.expect_code(0);
    let (ok, eacces, other) = parse_counts(&out);
    assert_eq!(ok + eacces + other, TOCTOU_ITERATIONS, "{}", out.dump());
    assert!(ok > 0, "no sendto succeeded\n{}", out.dump());
    assert!(
        eacces > 0,
        "the flip never produced a denial\n{}",
        out.dump()
    );
    let got = denied.received();
    assert!(
        got.is_empty(),
        "denied server got {} datagrams\n{}",
        got.len(),
        out.dump()
    );
    assert!(!allowed.received().is_empty());
});

// ---------------------------------------------------------------------------
// Blocking connect must not stall the sandbox
// ---------------------------------------------------------------------------

struct StallListener {
    child: std::process::Child,
    port: u16,
}

impl StallListener {
    fn start() -> StallListener {
        let mut child = std::process::Command::new(PYTHON)
            .arg(format!("{}/stall_listener.py", fixdir()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start stall listener");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("stall listener said {line:?}"));
        // sanity: a connect to it really blocks
        let t0 = Instant::now();
        let r = TcpStream::connect_timeout(
            &format!("127.0.0.1:{port}").parse().unwrap(),
            Duration::from_millis(300),
        );
        assert!(
            r.is_err() && t0.elapsed() >= Duration::from_millis(250),
            "listener does not stall"
        );
        StallListener { child, port }
    }
}

impl Drop for StallListener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

both!(blocking_connect_does_not_stall_other_processes, |ctx| {
    let stall = StallListener::start();
    let srv = TcpServer::start("127.0.0.1");
    let r1 = format!("127.0.0.1:{}", stall.port);
    let r2 = format!("127.0.0.1:{}", srv.port());
    let stall_op = format!("stallchild,127.0.0.1,{}", stall.port);
    let timed = format!("timedtcp4,127.0.0.1,{}", srv.port());
    let out = ctx.sl(probe_args(
        &["--net-allow", &r1, "--net-allow", &r2],
        &[&stall_op, &timed],
    ));
    out.expect_code(0);
    let v = out
        .probe("timedtcp4")
        .unwrap_or_else(|e| panic!("{e}\n{}", out.dump()));
    let (payload, ms) = v.rsplit_once(' ').unwrap();
    assert_eq!(payload, srv.payload, "{}", out.dump());
    let ms: u64 = ms.parse().unwrap();
    assert!(
        ms < 2000,
        "connect took {ms}ms while another process was blocked in connect\n{}",
        out.dump()
    );
    assert!(
        out.elapsed < Duration::from_secs(10),
        "sandlock took {:?} to exit\n{}",
        out.elapsed,
        out.dump()
    );
});
