//! Every spec form of --net-allow (port only, IP, CIDR, several ports,
//! `*`, `localhost`, pinned names), each against servers on loopback.

use crate::common::*;

// ---------------------------------------------------------------------------
// Spec forms of --net-allow
// ---------------------------------------------------------------------------

/// Runs probe tcp4 against each (ip, port) with `rules`; returns results.
fn tcp_results(
    ctx: &Ctx,
    rules: &[&str],
    targets: &[(&str, u16)],
) -> (Out, Vec<Result<String, String>>) {
    let mut extra = Vec::new();
    for r in rules {
        extra.push("--net-allow");
        extra.push(r);
    }
    let ops: Vec<String> = targets
        .iter()
        .map(|(ip, p)| format!("tcp4,{ip},{p}"))
        .collect();
    let ops_ref: Vec<&str> = ops.iter().map(String::as_str).collect();
    let out = ctx.sl(probe_args(&extra, &ops_ref));
    out.expect_code(0);
    let res = (0..targets.len())
        .map(|i| out.probe_nth("tcp4", i))
        .collect();
    (out, res)
}

#[test]
fn net_allow_port_only_spec() {
    let ctx = Ctx::invoker();
    let (a, b) = tcp_pair("127.0.0.1", "127.0.0.2");
    let c = TcpServer::start("127.0.0.1");
    let rule = format!(":{}", a.port());
    let (out, r) = tcp_results(
        &ctx,
        &[&rule],
        &[
            ("127.0.0.1", a.port()),
            ("127.0.0.2", b.port()),
            ("127.0.0.1", c.port()),
        ],
    );
    assert_eq!(
        r,
        vec![
            Ok(a.payload.clone()),
            Ok(b.payload.clone()),
            Err("EACCES".into())
        ],
        "{}",
        out.dump()
    );
    assert_eq!(c.accepted(), 0);
}

#[test]
fn net_allow_ip_only_spec() {
    let ctx = Ctx::invoker();
    let (a, b) = tcp_pair("127.0.0.1", "127.0.0.2");
    let c = TcpServer::start("127.0.0.2");
    let (out, r) = tcp_results(
        &ctx,
        &["127.0.0.2"],
        &[
            ("127.0.0.2", b.port()),
            ("127.0.0.2", c.port()),
            ("127.0.0.1", a.port()),
        ],
    );
    assert_eq!(
        r,
        vec![
            Ok(b.payload.clone()),
            Ok(c.payload.clone()),
            Err("EACCES".into())
        ],
        "{}",
        out.dump()
    );
    assert_eq!(a.accepted(), 0);
}

#[test]
fn net_allow_cidr_spec() {
    let ctx = Ctx::invoker();
    let (a, b) = tcp_pair("127.0.0.1", "127.0.0.2");
    // 127.0.0.0/31 = 127.0.0.0 and 127.0.0.1
    let (out, r) = tcp_results(
        &ctx,
        &["127.0.0.0/31"],
        &[("127.0.0.1", a.port()), ("127.0.0.2", b.port())],
    );
    assert_eq!(
        r,
        vec![Ok(a.payload.clone()), Err("EACCES".into())],
        "{}",
        out.dump()
    );
    assert_eq!(b.accepted(), 0);
}

#[test]
fn net_allow_multi_port_spec() {
    let ctx = Ctx::invoker();
    let a = TcpServer::start("127.0.0.1");
    let b = TcpServer::start("127.0.0.1");
    let c = TcpServer::start("127.0.0.1");
    let rule = format!("127.0.0.1:{},{}", a.port(), b.port());
    let (out, r) = tcp_results(
        &ctx,
        &[&rule],
        &[
            ("127.0.0.1", a.port()),
            ("127.0.0.1", b.port()),
            ("127.0.0.1", c.port()),
        ],
    );
    assert_eq!(
        r,
        vec![
            Ok(a.payload.clone()),
            Ok(b.payload.clone()),
            Err("EACCES".into())
        ],
        "{}",
        out.dump()
    );
    assert_eq!(c.accepted(), 0);
}

#[test]
fn net_allow_wildcard_spec() {
    let ctx = Ctx::invoker();
    let (a, b) = tcp_pair("127.0.0.1", "127.0.0.2");
    let (out, r) = tcp_results(
        &ctx,
        &["*"],
        &[("127.0.0.1", a.port()), ("127.0.0.2", b.port())],
    );
    assert_eq!(
        r,
        vec![Ok(a.payload.clone()), Ok(b.payload.clone())],
        "{}",
        out.dump()
    );
    // "*" is TCP only: UDP still needs a udp:// rule
    let u = UdpServer::start("127.0.0.1");
    let op = format!("udp4send,127.0.0.1,{},x", u.port_s());
    let out = ctx.sl(probe_args(&allow("*"), &[&op]));
    out.expect_code(0).expect_err("udp4send", "EACCES");
    assert!(u.received().is_empty());
}

#[test]
fn net_allow_localhost_name_spec() {
    let ctx = Ctx::invoker();
    let a = TcpServer::start("127.0.0.1");
    let c = TcpServer::start("127.0.0.1");
    let rule = format!("localhost:{}", a.port());
    let (out, r) = tcp_results(
        &ctx,
        &[&rule],
        &[("127.0.0.1", a.port()), ("127.0.0.1", c.port())],
    );
    assert_eq!(
        r,
        vec![Ok(a.payload.clone()), Err("EACCES".into())],
        "{}",
        out.dump()
    );
}

both!(net_allow_pinned_hostname, |ctx| {
    let a = TcpServer::start("127.0.0.1");
    let c = TcpServer::start("127.0.0.1");
    let rule = format!("svc.sandlock.test:{}", a.port());
    let by_name = format!("tcpname,svc.sandlock.test,{}", a.port());
    let by_ip = format!("tcp4,127.0.0.1,{}", a.port());
    let other = format!("tcpname,svc.sandlock.test,{}", c.port());
    let out = ctx.sl(probe_args(
        &[
            "--add-host",
            "svc.sandlock.test:127.0.0.1",
            "--net-allow",
            &rule,
        ],
        &[&by_name, &by_ip, &other],
    ));
    out.expect_code(0);
    assert_eq!(
        out.probe_nth("tcpname", 0),
        Ok(a.payload.clone()),
        "{}",
        out.dump()
    );
    out.expect_ok("tcp4", &a.payload);
    assert_eq!(
        out.probe_nth("tcpname", 1),
        Err("EACCES".into()),
        "{}",
        out.dump()
    );
    assert_eq!(c.accepted(), 0);
});
