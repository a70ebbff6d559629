//! Network policy: --net-allow (TCP/UDP, every spec form), denials with
//! EACCES for every way of naming a destination (connect, sendto, sendmsg,
//! sendmmsg, MSG_FASTOPEN, IPv6, IPv4-mapped IPv6), --net-allow-bind and
//! unix sockets under a network policy. How denials are reported is in
//! denials.rs, races in races.rs, /etc/hosts in hosts.rs.
//!
//! Every server is in the test process on a loopback address; nothing is
//! ever sent off the machine.

use crate::common::*;
use std::io::Read;
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// TCP connect
// ---------------------------------------------------------------------------

both!(tcp_allowed_host_port_receives_exact_bytes, |ctx| {
    let srv = TcpServer::start("127.0.0.1");
    let rule = format!("127.0.0.1:{}", srv.port());
    let op = format!("tcp4,127.0.0.1,{}", srv.port());
    let out = ctx.sl(probe_args(&allow(&rule), &[&op]));
    out.expect_code(0).expect_ok("tcp4", &srv.payload);
    assert_eq!(srv.accepted(), 1);
    assert!(out.denial_lines().is_empty(), "{}", out.dump());
});

both!(tcp_nonblocking_connect_allowed_and_denied, |ctx| {
    let allowed = TcpServer::start("127.0.0.1");
    let other = TcpServer::start("127.0.0.1");
    let rule = format!("127.0.0.1:{}", allowed.port());
    let ok = format!("tcp4nb,127.0.0.1,{}", allowed.port());
    let bad = format!("tcp4nb,127.0.0.1,{}", other.port());
    let out = ctx.sl(probe_args(&allow(&rule), &[&bad, &ok]));
    out.expect_code(0);
    assert_eq!(
        out.probe_nth("tcp4nb", 0),
        Err("EACCES".into()),
        "{}",
        out.dump()
    );
    assert_eq!(
        out.probe_nth("tcp4nb", 1),
        Ok(allowed.payload.clone()),
        "{}",
        out.dump()
    );
    assert_eq!(other.accepted(), 0, "denied server was reached");
    assert_eq!(allowed.accepted(), 1);
});

both!(tcp_other_port_denied, |ctx| {
    let allowed = TcpServer::start("127.0.0.1");
    let other = TcpServer::start("127.0.0.1");
    let rule = format!("127.0.0.1:{}", allowed.port());
    let bad = format!("tcp4,127.0.0.1,{}", other.port());
    let ok = format!("tcp4,127.0.0.1,{}", allowed.port());
    let out = ctx.sl(probe_args(&allow(&rule), &[&bad, &ok]));
    out.expect_code(0);
    assert_eq!(
        out.probe_nth("tcp4", 0),
        Err("EACCES".into()),
        "{}",
        out.dump()
    );
    assert_eq!(
        out.probe_nth("tcp4", 1),
        Ok(allowed.payload.clone()),
        "{}",
        out.dump()
    );
    assert_eq!(other.accepted(), 0, "denied server was reached");
    assert_eq!(allowed.accepted(), 1);
});

both!(tcp_other_ip_same_port_denied, |ctx| {
    let (a, b) = tcp_pair("127.0.0.1", "127.0.0.2");
    let rule = format!("127.0.0.1:{}", a.port());
    let bad = format!("tcp4,127.0.0.2,{}", b.port());
    let ok = format!("tcp4,127.0.0.1,{}", a.port());
    let out = ctx.sl(probe_args(&allow(&rule), &[&bad, &ok]));
    out.expect_code(0);
    assert_eq!(
        out.probe_nth("tcp4", 0),
        Err("EACCES".into()),
        "{}",
        out.dump()
    );
    assert_eq!(
        out.probe_nth("tcp4", 1),
        Ok(a.payload.clone()),
        "{}",
        out.dump()
    );
    assert_eq!(b.accepted(), 0, "127.0.0.2 was reached");
    assert_eq!(a.accepted(), 1);
});

both!(tcp_ipv6_loopback_denied_when_only_ipv4_allowed, |ctx| {
    let (v4, v6) = tcp_pair("127.0.0.1", "::1");
    let port = v4.port_s();
    let rule = format!("127.0.0.1:{port}");
    let op6 = format!("tcp6,::1,{port}");
    let op4 = format!("tcp4,127.0.0.1,{port}");
    let out = ctx.sl(probe_args(&allow(&rule), &[&op6, &op4]));
    out.expect_code(0)
        .expect_err("tcp6", "EACCES")
        .expect_ok("tcp4", &v4.payload);
    assert_eq!(v6.accepted(), 0, "::1 was reached");

    // twin: an explicit [::1]:PORT rule allows it
    let rule6 = format!("[::1]:{port}");
    let out = ctx.sl(probe_args(&allow(&rule6), &[&op6]));
    out.expect_code(0).expect_ok("tcp6", &v6.payload);
    assert_eq!(v6.accepted(), 1);
});

both!(tcp_ipv4_mapped_ipv6_follows_ipv4_rule, |ctx| {
    let (a, b) = tcp_pair("127.0.0.1", "127.0.0.2");
    let c = TcpServer::start("127.0.0.1");
    let rule = format!("127.0.0.1:{}", a.port());
    let denied_ip = format!("tcp6,::ffff:127.0.0.2,{}", b.port());
    let denied_port = format!("tcp6,::ffff:127.0.0.1,{}", c.port());
    let allowed = format!("tcp6,::ffff:127.0.0.1,{}", a.port());
    let out = ctx.sl(probe_args(
        &allow(&rule),
        &[&denied_ip, &denied_port, &allowed],
    ));
    out.expect_code(0);
    assert_eq!(
        out.probe_nth("tcp6", 0),
        Err("EACCES".into()),
        "{}",
        out.dump()
    );
    assert_eq!(
        out.probe_nth("tcp6", 1),
        Err("EACCES".into()),
        "{}",
        out.dump()
    );
    assert_eq!(
        out.probe_nth("tcp6", 2),
        Ok(a.payload.clone()),
        "{}",
        out.dump()
    );
    assert_eq!(b.accepted(), 0, "mapped 127.0.0.2 was reached");
    assert_eq!(c.accepted(), 0, "mapped other port was reached");
    assert_eq!(a.accepted(), 1);
});

both!(no_network_flag_denies_inet_sockets, |ctx| {
    let srv = TcpServer::start("127.0.0.1");
    let op = format!("tcp4,127.0.0.1,{}", srv.port());
    let out = ctx.sl(probe_args(
        &[],
        &[
            "socket,inet,stream",
            "socket,inet,dgram",
            "socket,inet6,stream",
            "socket,inet6,dgram",
            "socket,unix,stream",
            &op,
        ],
    ));
    out.expect_code(0);
    for i in 0..4 {
        assert_eq!(
            out.probe_nth("socket", i),
            Err("EACCES".into()),
            "{}",
            out.dump()
        );
    }
    assert_eq!(out.probe_nth("socket", 4), Ok("".into()), "{}", out.dump());
    out.expect_err("tcp4", "EACCES");
    assert_eq!(srv.accepted(), 0);

    // twin: with a rule, inet sockets can be created
    let rule = format!("127.0.0.1:{}", srv.port());
    let out = ctx.sl(probe_args(
        &allow(&rule),
        &["socket,inet,stream", "socket,inet6,stream"],
    ));
    out.expect_code(0);
    assert_eq!(out.probe_nth("socket", 0), Ok("".into()), "{}", out.dump());
    assert_eq!(out.probe_nth("socket", 1), Ok("".into()), "{}", out.dump());
});

// ---------------------------------------------------------------------------
// UDP, sendto / sendmsg / sendmmsg, MSG_FASTOPEN
// ---------------------------------------------------------------------------

both!(udp_denied_without_udp_rule_allowed_with_one, |ctx| {
    let u = UdpServer::start("127.0.0.1");
    let port = u.port_s();
    let send = format!("udp4send,127.0.0.1,{port},dgram-send");
    let conn = format!("udp4conn,127.0.0.1,{port},dgram-conn");

    // a TCP rule for the same address does not allow UDP
    let tcp_rule = format!("127.0.0.1:{port}");
    let out = ctx.sl(probe_args(&allow(&tcp_rule), &[&send, &conn]));
    out.expect_code(0)
        .expect_err("udp4send", "EACCES")
        .expect_err("udp4conn", "EACCES");
    assert!(
        u.received().is_empty(),
        "datagrams leaked: {:?}",
        u.received()
    );

    // twin: udp:// rule
    let udp_rule = format!("udp://127.0.0.1:{port}");
    let out = ctx.sl(probe_args(&allow(&udp_rule), &[&send, &conn]));
    out.expect_code(0)
        .expect_ok("udp4send", "10")
        .expect_ok("udp4conn", "10");
    assert_eq!(
        u.received(),
        vec!["dgram-send".to_string(), "dgram-conn".to_string()]
    );
});

both!(udp_sendto_sendmsg_sendmmsg_to_denied_address, |ctx| {
    let good = UdpServer::start("127.0.0.1");
    let bad = UdpServer::start("127.0.0.1");
    let bad2 = UdpServer::start("127.0.0.2");
    let rule = format!("udp://127.0.0.1:{}", good.port_s());
    let extra = allow(&rule);
    let (gp, bp, b2p) = (good.port_s(), bad.port_s(), bad2.port_s());
    let denied: [(&str, &str, &str); 5] = [
        ("udp-sendto", "127.0.0.1", &bp),
        ("udp-sendmsg", "127.0.0.1", &bp),
        ("udp-sendmmsg", "127.0.0.1", &bp),
        ("udp-sendto", "127.0.0.2", &b2p),
        ("udp-sendto", "::ffff:127.0.0.1", &bp),
    ];
    for (mode, ip, port) in denied {
        let out = ctx.sl(fixture_args(&extra, "sendprobe", &[mode, ip, port]));
        out.expect_code(0).expect_err(mode, "EACCES");
    }
    for mode in ["udp-sendto", "udp-sendmsg", "udp-sendmmsg"] {
        let out = ctx.sl(fixture_args(&extra, "sendprobe", &[mode, "127.0.0.1", &gp]));
        let expected = if mode == "udp-sendmmsg" {
            "2"
        } else if mode == "udp-sendto" {
            "12"
        } else {
            "13"
        };
        out.expect_code(0).expect_ok(mode, expected);
    }
    assert!(
        bad.received().is_empty(),
        "denied server got {:?}",
        bad.received()
    );
    assert!(
        bad2.received().is_empty(),
        "denied server got {:?}",
        bad2.received()
    );
    assert_eq!(
        good.received(),
        vec!["sendto-bytes", "sendmsg-bytes", "sendmmsg-0", "sendmmsg-1"]
    );
});

both!(udp_sendmmsg_mixed_destinations_never_reach_denied, |ctx| {
    let good = UdpServer::start("127.0.0.1");
    let bad = UdpServer::start("127.0.0.1");
    let rule = format!("udp://127.0.0.1:{}", good.port_s());
    let out = ctx.sl(fixture_args(
        &allow(&rule),
        "sendprobe",
        &[
            "udp-sendmmsg-mixed",
            "127.0.0.1",
            &good.port_s(),
            "127.0.0.1",
            &bad.port_s(),
        ],
    ));
    out.expect_code(0);
    assert!(
        bad.received().is_empty(),
        "denied server got {:?}\n{}",
        bad.received(),
        out.dump()
    );
    // Either the whole call is refused or only the allowed first message goes out.
    match out.probe("udp-sendmmsg-mixed") {
        Err(e) => {
            assert_eq!(e, "EACCES", "{}", out.dump());
            assert!(good.received().is_empty());
        }
        Ok(n) => {
            assert_eq!(n, "1", "{}", out.dump());
            assert_eq!(good.received(), vec!["mixed-0"]);
        }
    }
});

both!(tcp_fastopen_to_denied_address_denied, |ctx| {
    let allowed = TcpServer::start("127.0.0.1");
    let denied = TcpServer::start("127.0.0.1");
    let (_v4, denied2) = tcp_pair("127.0.0.1", "127.0.0.2");
    let rule = format!("127.0.0.1:{}", allowed.port());
    let extra = allow(&rule);
    for mode in ["fastopen-sendto", "fastopen-sendmsg"] {
        let out = ctx.sl(fixture_args(
            &extra,
            "sendprobe",
            &[mode, "127.0.0.1", &denied.port_s()],
        ));
        out.expect_code(0).expect_err(mode, "EACCES");
        let out = ctx.sl(fixture_args(
            &extra,
            "sendprobe",
            &[mode, "127.0.0.2", &denied2.port_s()],
        ));
        out.expect_code(0).expect_err(mode, "EACCES");
    }
    let fo = format!("fastopen4,127.0.0.1,{}", denied.port());
    let out = ctx.sl(probe_args(&extra, &[&fo]));
    out.expect_code(0).expect_err("fastopen4", "EACCES");
    assert_eq!(denied.accepted(), 0, "denied server was reached");
    assert_eq!(denied2.accepted(), 0, "denied server was reached");

    // twin: MSG_FASTOPEN to the allowed destination works
    let out = ctx.sl(fixture_args(
        &extra,
        "sendprobe",
        &["fastopen-sendto", "127.0.0.1", &allowed.port_s()],
    ));
    out.expect_code(0).expect_ok("fastopen-sendto", "14");
    assert_eq!(allowed.accepted(), 1);
});

// ---------------------------------------------------------------------------
// bind / listen
// ---------------------------------------------------------------------------

both!(bind_and_listen_limited_to_allow_bind_ports, |ctx| {
    let p1 = free_port();
    let p2 = free_port();
    let p3 = free_port_pair();
    let spec = format!("{p1},{}-{}", p3, p3 + 2);
    let ops = [
        format!("bind4,{p1}"),
        format!("listen4,{p1}"),
        format!("bind4,{}", p3 + 1),
        format!("bind4,{p2}"),
        format!("listen4,{p2}"),
        format!("bind4,{p2},dgram"),
        "listen4,0".to_string(),
    ];
    let ops_ref: Vec<&str> = ops.iter().map(String::as_str).collect();
    let out = ctx.sl(probe_args(
        &["--net-allow", "127.0.0.1:1", "--net-allow-bind", &spec],
        &ops_ref,
    ));
    out.expect_code(0);
    assert_eq!(
        out.probe_nth("bind4", 0),
        Ok(p1.to_string()),
        "{}",
        out.dump()
    );
    assert_eq!(
        out.probe_nth("listen4", 0),
        Ok(p1.to_string()),
        "{}",
        out.dump()
    );
    assert_eq!(
        out.probe_nth("bind4", 1),
        Ok((p3 + 1).to_string()),
        "{}",
        out.dump()
    );
    assert_eq!(
        out.probe_nth("bind4", 2),
        Err("EACCES".into()),
        "{}",
        out.dump()
    );
    assert_eq!(
        out.probe_nth("listen4", 1),
        Err("EACCES".into()),
        "{}",
        out.dump()
    );
    assert_eq!(
        out.probe_nth("bind4", 3),
        Err("EACCES".into()),
        "{}",
        out.dump()
    );
    // bind to port 0 is allowed, but listening on the ephemeral port is not
    assert_eq!(
        out.probe_nth("listen4", 2),
        Err("EACCES".into()),
        "{}",
        out.dump()
    );

    // default: no port may be bound
    let b = format!("bind4,{p1}");
    let out = ctx.sl(probe_args(&["--net-allow", "127.0.0.1:1"], &[&b]));
    out.expect_code(0).expect_err("bind4", "EACCES");
});

both!(server_in_sandbox_reachable_on_allowed_bind_port, |ctx| {
    let p = free_port();
    let op = format!("serve4,{p},HELLO-FROM-SANDBOX");
    let ps = p.to_string();
    let args = probe_args(
        &["--net-allow", "127.0.0.1:1", "--net-allow-bind", &ps],
        &[&op],
    );
    let mut child = ctx
        .command(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut got = None;
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", p)) {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            got = Some(buf);
            break;
        }
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = wait_limit(&mut child, Duration::from_secs(15));
    let mut stdout = String::new();
    let mut stderr = String::new();
    let _ = child.stdout.take().unwrap().read_to_string(&mut stdout);
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    assert_eq!(
        got.as_deref(),
        Some("HELLO-FROM-SANDBOX"),
        "status {status:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
});

both!(unix_socket_connects_work_under_a_network_policy, |ctx| {
    // Under a network policy every connect traps; unix ones must still
    // reach a local server, by absolute and by cwd-relative path, and
    // carry the real bytes.
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let d = TempDir::new("unix");
    let sock = d.path().join("srv.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o777)).unwrap();
    let server = std::thread::spawn(move || {
        for _ in 0..2 {
            let (mut c, _) = listener.accept().unwrap();
            c.write_all(b"unix-payload-42\n").unwrap();
        }
    });
    let script = "import socket\n\
                  for p in [__import__('sys').argv[1], 'srv.sock']:\n\
                  \x20   s = socket.socket(socket.AF_UNIX)\n\
                  \x20   s.connect(p)\n\
                  \x20   print(s.recv(100).decode().strip())\n";
    let sock_s = sock.to_str().unwrap().to_string();
    let out = ctx.sl(run_args(
        &["--net-allow", "127.0.0.1:9", "-w", &d.s(), "--cwd", &d.s()],
        &["/usr/bin/python3", "-I", "-c", script, &sock_s],
    ));
    out.expect_code(0);
    assert_eq!(
        out.stdout,
        "unix-payload-42\nunix-payload-42\n",
        "{}",
        out.dump()
    );
    server.join().unwrap();
});

both!(
    an_inet_address_on_another_family_s_socket_is_refused,
    |ctx| {
        // The supervisor takes an inet connect's socket family from the
        // address (it skips reading SO_DOMAIN) because a socket of any other
        // family refuses an inet address: the attack names an allowed inet
        // destination on a unix or netlink socket, hoping the supervisor
        // makes the call with its own rights. Twin: the same address on a
        // TCP socket connects.
        let srv = TcpServer::start("127.0.0.1");
        let script = "import ctypes, errno, socket, struct, sys\n\
                  libc = ctypes.CDLL(None, use_errno=True)\n\
                  sin = struct.pack('<H', 2) + struct.pack('>H', int(sys.argv[1])) + bytes([127, 0, 0, 1]) + bytes(8)\n\
                  for name, fam, ty in [('unix-stream', 1, 1), ('unix-seqpacket', 1, 5), ('unix-dgram', 1, 2), ('netlink', 16, 2), ('tcp', 2, 1)]:\n\
                  \x20   s = socket.socket(fam, ty, 0)\n\
                  \x20   r = libc.connect(s.fileno(), sin, len(sin))\n\
                  \x20   print(name, 'ok' if r == 0 else errno.errorcode[ctypes.get_errno()])\n";
        // UDP is allowed too, so that datagram sockets of other families pass
        // the policy and meet the kernel; a sequenced-packet socket has no
        // rule transport and is refused by the policy itself.
        let rule = format!("127.0.0.1:{}", srv.port());
        let udp = format!("udp://127.0.0.1:{}", srv.port());
        let out = ctx.sl(run_args(
            &["--net-allow", &rule, "--net-allow", &udp],
            &["/usr/bin/python3", "-I", "-c", script, &srv.port_s()],
        ));
        out.expect_code(0);
        assert_eq!(
        out.stdout,
        "unix-stream EINVAL\nunix-seqpacket EACCES\nunix-dgram EINVAL\nnetlink EINVAL\ntcp ok\n",
        "{}",
        out.dump()
    );
        assert_eq!(srv.accepted(), 1, "only the TCP connect arrives");
    }
);

both!(an_unspec_address_is_decided_as_the_kernel_reads_it, |ctx| {
    // A UDP send on an AF_INET socket, and a bind of one to the wildcard
    // address, read an AF_UNSPEC address as AF_INET (udp_sendmsg,
    // inet_bind): the attack spells a denied destination, and a port
    // outside --net-allow-bind, with family 0. Twin: the same spelling of
    // the allowed destination and port goes through. The udp:// rule keeps
    // UDP sockets out of the DNS interceptor's namespace.
    let good = UdpServer::start("127.0.0.1");
    let bad = UdpServer::start("127.0.0.1");
    let (open, closed) = (free_port(), free_port());
    let script = "import ctypes, errno, socket, struct, sys\n\
                  libc = ctypes.CDLL(None, use_errno=True)\n\
                  def unspec(ip, port):\n\
                  \x20   return struct.pack('=H', 0) + struct.pack('>H', port) + socket.inet_aton(ip) + bytes(8)\n\
                  def show(what, r):\n\
                  \x20   print(what, 'ok' if r >= 0 else errno.errorcode[ctypes.get_errno()])\n\
                  for name, port in [('good', sys.argv[1]), ('bad', sys.argv[2])]:\n\
                  \x20   s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                  \x20   a = unspec('127.0.0.1', int(port))\n\
                  \x20   show('send-' + name, libc.sendto(s.fileno(), name.encode(), len(name), 0, a, len(a)))\n\
                  for name, port in [('open', sys.argv[3]), ('closed', sys.argv[4])]:\n\
                  \x20   s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                  \x20   a = unspec('0.0.0.0', int(port))\n\
                  \x20   show('bind-' + name, libc.bind(s.fileno(), a, len(a)))\n";
    let rule = format!("udp://127.0.0.1:{}", good.port_s());
    let out = ctx.sl(run_args(
        &["--net-allow", &rule, "--net-allow-bind", &open.to_string()],
        &[
            PYTHON,
            "-I",
            "-c",
            script,
            &good.port_s(),
            &bad.port_s(),
            &open.to_string(),
            &closed.to_string(),
        ],
    ));
    out.expect_code(0);
    assert_eq!(
        out.stdout,
        "send-good ok\nsend-bad EACCES\nbind-open ok\nbind-closed EACCES\n",
        "{}",
        out.dump()
    );
    assert_eq!(good.received(), vec!["good".to_string()]);
    assert!(
        bad.received().is_empty(),
        "denied server got {:?}",
        bad.received()
    );
});
