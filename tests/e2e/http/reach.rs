//! Reachability: which ports an HTTP rule opens, and no rule means no
//! proxy.

use super::*;

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
