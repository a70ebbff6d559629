//! Reachability: which ports an HTTP rule opens, and no rule means no
//! proxy.

use super::*;
use std::io::{Read, Write};
use std::time::Duration;

// ---------------------------------------------------------------------------
// Reachability: which ports an HTTP rule opens, and no rule = no proxy
// ---------------------------------------------------------------------------

both!(http_rule_opens_only_intercepted_ports, |ctx| {
    let s = Setup::tls("127.0.0.1");
    let other = Upstream::plain("127.0.0.1");
    let flags = s.flags(&["--http-allow", "GET api.test/*"]);
    let plain = format!("http://api.test:{}/echo/other", other.port);
    let out = run(
        &ctx,
        &flags,
        &curl(Some(&s.ca), &[], &[&s.url("api.test", "/echo/ok"), &plain]),
    );
    let c = format!("{}\n{}", s.dump(&out), other.dump());
    let rs = resps(&out);
    assert_eq!(rs.len(), 2, "{c}");
    assert_eq!(rs[0].code, 200, "{c}");
    // a port that is neither intercepted nor in --net-allow stays closed
    assert_eq!(rs[1].code, 0, "{c}");
    assert_eq!(out.code(), 7, "curl: couldn't connect\n{c}");
    assert!(other.events("accept").is_empty(), "{c}");
    assert_eq!(s.up.paths(), vec!["/echo/ok".to_string()], "{c}");
});

both!(no_http_rule_means_no_interception, |ctx| {
    let s = Setup::tls("127.0.0.1");
    let f = tls_files();
    let url = s.url("api.test", "/echo/direct");
    let rule = format!("127.0.0.1:{}", s.port());
    let flags = sv(&[
        "--add-host",
        "api.test:127.0.0.1",
        "--net-allow",
        &rule,
        "-r",
        &f.dir,
    ]);
    // the workload talks to the upstream directly: its real certificate
    let out = run(&ctx, &flags, &sh(CURL_RC, &[&f.root_ca, &url]));
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_lines(&out), vec!["R 0 200"], "{c}");
    assert_eq!(s.up.paths(), vec!["/echo/direct".to_string()], "{c}");
});

// ---------------------------------------------------------------------------
// UDP to an intercepted port (QUIC) while interception is on
// ---------------------------------------------------------------------------

both!(udp_to_intercepted_port_refused_while_intercepting, |ctx| {
    let s = Setup::tls("127.0.0.1");
    // `quic` sits on a port that is also intercepted for TCP; `other` not
    let quic = UdpServer::start("127.0.0.1");
    let other = UdpServer::start("127.0.0.1");
    let qp = quic.port_s();
    let op = other.port_s();
    let rule_q = format!("udp://127.0.0.1:{qp}");
    let rule_o = format!("udp://127.0.0.1:{op}");
    let send_q = format!("udp4send,127.0.0.1,{qp},quic-send");
    let conn_q = format!("udp4conn,127.0.0.1,{qp},quic-conn");
    let send_o = format!("udp4send,127.0.0.1,{op},other-send");
    let fix = fixdir();
    let flags = |intercept_q: bool| {
        let mut extra = vec!["--http-allow", "GET api.test/*"];
        if intercept_q {
            extra.extend(["--http-port", qp.as_str()]);
        }
        extra.extend(["--net-allow", &rule_q, "--net-allow", &rule_o]);
        extra.extend(["-r", &fix]);
        s.flags(&extra)
    };
    let probe = sv(&[PYTHON, "-I", &probe_py(), &send_q, &conn_q, &send_o]);

    let out = run(&ctx, &flags(true), &probe);
    let c = s.dump(&out);
    out.expect_code(0)
        .expect_err("udp4send", "EACCES")
        .expect_err("udp4conn", "EACCES");
    assert_eq!(out.probe_nth("udp4send", 1), Ok("10".into()), "{c}");
    assert!(quic.received().is_empty(), "{:?}\n{c}", quic.received());
    // the same datagram to a port that is not intercepted, with its rule
    assert_eq!(other.received(), vec!["other-send".to_string()], "{c}");
    // each refusal is explained
    let target = format!("udp://127.0.0.1:{qp}");
    let lines: Vec<&str> = out
        .denial_lines()
        .into_iter()
        .filter(|l| l.contains(&target))
        .collect();
    assert_eq!(lines.len(), 2, "{c}");
    assert!(
        lines[0].starts_with("sandlock: denied sendto ")
            && lines[1].starts_with("sandlock: denied connect ")
            && lines.iter().all(|l| l.contains("intercepted")),
        "{lines:?}\n{c}"
    );

    // twin: the port not intercepted, the same rule lets the datagrams through
    let out = run(&ctx, &flags(false), &probe);
    let c = s.dump(&out);
    out.expect_code(0)
        .expect_ok("udp4send", "9")
        .expect_ok("udp4conn", "9");
    assert_eq!(
        quic.received(),
        vec!["quic-send".to_string(), "quic-conn".into()],
        "{c}"
    );
});

// ---------------------------------------------------------------------------
// The proxy's listener serves only connections the supervisor redirected
// ---------------------------------------------------------------------------

/// TCP ports the process `pid` is listening on (from its socket inodes
/// and the kernel's socket tables).
fn listening_ports(pid: u32) -> Vec<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    l.strip_prefix("socket:[")?
                        .strip_suffix(']')
                        .map(String::from)
                })
                .collect()
        })
        .unwrap_or_default();
    let mut ports = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for row in text.lines().skip(1) {
            let cols: Vec<&str> = row.split_whitespace().collect();
            // local address, state 0A (LISTEN), inode
            if cols.len() > 9 && cols[3] == "0A" && inodes.iter().any(|i| i == cols[9]) {
                let port = cols[1].rsplit(':').next().unwrap_or("0");
                ports.push(u16::from_str_radix(port, 16).unwrap_or(0));
            }
        }
    }
    ports
}

both!(proxy_drops_connections_it_did_not_redirect, |ctx| {
    let s = Setup::plain("127.0.0.1");
    let flags = s.flags(&["--http-allow", "GET api.test/*"]);
    let url = s.url("api.test", "/echo/inside");
    // One request through the redirect, then the sandbox stays up while
    // the test knocks on the proxy's door from outside.
    let script = format!("curl -sS -o /dev/null -w 'R %{{http_code}}\\n' {url}; sleep 4");
    let f: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut child = ctx
        .command(run_args(&f, &["sh", "-c", &script]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn sandlock");
    let pid = child.id();
    let mut ports = Vec::new();
    assert!(
        wait_until(Duration::from_secs(3), || {
            ports = listening_ports(pid);
            !ports.is_empty()
        }),
        "no listening socket found for sandlock pid {pid}"
    );
    let request = "GET /echo/outside HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n";
    for port in &ports {
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", *port))
            .or_else(|_| std::net::TcpStream::connect(("::1", *port)))
            .expect("connect to the proxy listener");
        conn.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let _ = conn.write_all(request.as_bytes());
        let mut got = Vec::new();
        // A peer with no redirect entry is closed without a byte.
        let _ = conn.read_to_end(&mut got);
        assert!(
            got.is_empty(),
            "port {port} answered: {:?}",
            String::from_utf8_lossy(&got)
        );
    }
    let status = wait_limit(&mut child, Duration::from_secs(20)).expect("sandlock exits");
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(status.success(), "{stdout}");
    // twin: the same request from inside, through the redirect, is served
    assert_eq!(stdout.trim(), "R 200", "ports {ports:?}");
    assert_eq!(s.up.paths(), vec!["/echo/inside".to_string()]);
});
