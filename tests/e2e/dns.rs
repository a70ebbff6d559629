//! The DNS interceptor: every query from the sandbox is answered by
//! sandlock. Names a rule covers are resolved through `--dns-server` (here
//! tests/fixtures/dnsserver.py, which logs every question it gets) and
//! their answers become pins; every other name gets NXDOMAIN and never
//! reaches the resolver.
//!
//! Resolver addresses the workload sends to are documentation addresses
//! (192.0.2.53, 2001:db8::53): nothing is ever sent to them, the queries
//! end in sandlock's private namespace, and these tests check that the
//! answers seem to come from exactly there.

use crate::common::dns::Resolver;
use crate::common::*;

/// `run --dns-server R <extra> -r FIXDIR -- python3 -I dnsprobe.py MODE SERVER NAME`.
fn dnsprobe(ctx: &Ctx, r: &Resolver, extra: &[&str], mode: &str, server: &str, name: &str) -> Out {
    let mut args = vec!["run".to_string(), "--dns-server".into(), r.flag()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend([
        "-r".into(),
        fixdir(),
        "--".into(),
        PYTHON.into(),
        "-I".into(),
        format!("{}/dnsprobe.py", fixdir()),
        mode.into(),
        server.into(),
        name.into(),
    ]);
    ctx.sl(args)
}

/// Python in the sandbox: resolve NAME with getaddrinfo (glibc, the way
/// curl, git and Python resolve), then connect to it on PORT.
const RESOLVE_AND_CONNECT: &str = r#"
import socket, sys
name, port = sys.argv[1], int(sys.argv[2])
try:
    ips = sorted({a[4][0] for a in socket.getaddrinfo(name, port, socket.AF_INET, socket.SOCK_STREAM)})
except socket.gaierror as e:
    print("resolve", e.errno); sys.exit(0)
print("resolve", ",".join(ips))
s = socket.socket()
try:
    s.connect((ips[0], port)); print("connect ok")
except OSError as e:
    print("connect", e.errno)
"#;

fn resolve_and_connect(ctx: &Ctx, r: &Resolver, extra: &[&str], name: &str, port: u16) -> Out {
    let mut args = vec!["run".to_string(), "--dns-server".into(), r.flag()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend([
        "--".into(),
        PYTHON.into(),
        "-I".into(),
        "-c".into(),
        RESOLVE_AND_CONNECT.into(),
        name.into(),
        port.to_string(),
    ]);
    ctx.sl(args)
}

both!(wildcard_rule_resolves_and_connects, |ctx| {
    let r = Resolver::start(&["*.dyn.test=127.0.0.1"]);
    let server = TcpServer::start("127.0.0.1");
    let rule = format!("*.dyn.test:{}", server.port());
    let out = resolve_and_connect(&ctx, &r, &allow(&rule), "a.dyn.test", server.port());
    out.expect_code(0);
    assert_eq!(
        out.stdout_lines(),
        vec!["resolve 127.0.0.1", "connect ok"],
        "{}",
        out.dump()
    );
    assert_eq!(server.accepted(), 1);
    assert!(
        r.queries().contains(&"a.dyn.test 1".to_string()),
        "{:?}",
        r.queries()
    );
    // Twin: the same address without the lookup is not allowed, so the
    // connect above was allowed by the learned answer.
    let mut args = vec!["run".to_string(), "--dns-server".into(), r.flag()];
    args.extend(allow(&rule).iter().map(|s| s.to_string()));
    let port = server.port().to_string();
    args.extend(sv(&[
        "--",
        PYTHON,
        "-I",
        "-c",
        "import socket,sys\ns=socket.socket()\ntry:\n s.connect(('127.0.0.1', int(sys.argv[1]))); print('connect ok')\nexcept OSError as e: print('connect', e.errno)",
        &port,
    ]));
    let out = ctx.sl(args);
    out.expect_code(0);
    assert_eq!(
        out.stdout_lines(),
        vec!["connect 13".to_string()],
        "{}",
        out.dump()
    );
    assert_eq!(server.accepted(), 1);
});

both!(unlisted_name_gets_nxdomain_and_never_leaves, |ctx| {
    let r = Resolver::start(&["*.dyn.test=127.0.0.1", "evil.test=127.0.0.1"]);
    let server = TcpServer::start("127.0.0.1");
    let rule = format!("*.dyn.test:{}", server.port());
    // glibc: EAI_NONAME (-2) for the name no rule covers.
    let out = resolve_and_connect(
        &ctx,
        &r,
        &allow(&rule),
        "secret-data.evil.test",
        server.port(),
    );
    out.expect_code(0);
    assert_eq!(out.stdout_lines(), vec!["resolve -2"], "{}", out.dump());
    assert!(
        out.stderr.contains("denied dns secret-data.evil.test (A)"),
        "{}",
        out.dump()
    );
    // A raw query over UDP and TCP: NXDOMAIN (rcode 3), from the address
    // the query was sent to.
    for mode in ["udp-sendto", "tcp"] {
        let out = dnsprobe(&ctx, &r, &allow(&rule), mode, "192.0.2.53", "evil.test");
        out.expect_code(0);
        assert_eq!(
            out.stdout_lines(),
            vec!["rcode=3 answers= from=192.0.2.53:53"],
            "{mode}: {}",
            out.dump()
        );
    }
    assert!(
        r.queries().iter().all(|q| !q.contains("evil.test")),
        "the resolver was asked {:?}",
        r.queries()
    );
    // Twin: a covered name in the same setup does reach the resolver.
    let out = dnsprobe(
        &ctx,
        &r,
        &allow(&rule),
        "udp-sendto",
        "192.0.2.53",
        "b.dyn.test",
    );
    assert_eq!(
        out.stdout_lines(),
        vec!["rcode=0 answers=127.0.0.1 from=192.0.2.53:53"],
        "{}",
        out.dump()
    );
    assert_eq!(r.queries(), vec!["b.dyn.test 1"]);
});

both!(answers_come_from_the_address_asked, |ctx| {
    let r = Resolver::start(&["*.dyn.test=127.0.0.1"]);
    let rule = "*.dyn.test:443";
    for server in ["192.0.2.53", "2001:db8::53", "::ffff:192.0.2.54"] {
        for mode in ["udp-sendto", "udp-connect", "tcp"] {
            let out = dnsprobe(&ctx, &r, &allow(rule), mode, server, "x.dyn.test");
            out.expect_code(0);
            assert_eq!(
                out.stdout_lines(),
                vec![format!("rcode=0 answers=127.0.0.1 from={server}:53")],
                "{mode} to {server}: {}",
                out.dump()
            );
        }
    }
    // One question per sandbox, and only the question: the resolver saw
    // the name and type the workload asked for.
    assert_eq!(r.queries(), vec!["x.dyn.test 1"; 9], "{:?}", r.queries());
});

both!(pinned_names_are_answered_from_memory, |ctx| {
    let r = Resolver::start(&["static.test=10.0.0.1"]);
    let extra = [
        "--add-host",
        "static.test:127.0.0.9",
        "--net-allow",
        "static.test:80",
    ];
    let out = dnsprobe(&ctx, &r, &extra, "udp-connect", "192.0.2.53", "static.test");
    out.expect_code(0);
    assert_eq!(
        out.stdout_lines(),
        vec!["rcode=0 answers=127.0.0.9 from=192.0.2.53:53"],
        "{}",
        out.dump()
    );
    assert!(r.queries().is_empty(), "{:?}", r.queries());
});

both!(udp_rule_sockets_are_diverted_for_dns, |ctx| {
    // With a udp:// rule, UDP sockets are the host's; a query to port 53
    // still goes to sandlock, while the allowed UDP destination works.
    let r = Resolver::start(&["*.dyn.test=127.0.0.1"]);
    let u = UdpServer::start("127.0.0.1");
    let rule = format!("udp://127.0.0.1:{}", u.port_s());
    let extra = [
        "--net-allow",
        rule.as_str(),
        "--net-allow",
        "*.dyn.test:443",
    ];
    let out = dnsprobe(&ctx, &r, &extra, "udp-sendto", "192.0.2.53", "c.dyn.test");
    assert_eq!(
        out.stdout_lines(),
        vec!["rcode=0 answers=127.0.0.1 from=192.0.2.53:53"],
        "{}",
        out.dump()
    );
    let op = format!("udp4send,127.0.0.1,{},hello", u.port_s());
    let out = ctx.sl(probe_args(&extra, &[&op]));
    out.expect_code(0).expect_ok("udp4send", "5");
    assert_eq!(u.received(), vec!["hello".to_string()]);
});

#[test]
fn show_policy_and_bad_dns_server() {
    let ctx = Ctx::invoker();
    let out = ctx.sl(sv(&[
        "run",
        "--net-allow",
        "*.dyn.test:443",
        "--dns-server",
        "127.0.0.1:5353",
        "--show-policy",
        "--",
        "true",
    ]));
    out.expect_code(0);
    assert!(
        out.stdout.contains("allow: tcp *.dyn.test port 443")
            && out.stdout.contains("dns:   answered by sandlock")
            && out.stdout.contains("upstream: 127.0.0.1:5353"),
        "{}",
        out.dump()
    );
    for bad in ["resolver.test", "127.0.0.1:0", "*.test:443"] {
        let flag = if bad.starts_with('*') {
            "--net-allow"
        } else {
            "--dns-server"
        };
        let out = ctx.sl(sv(&["run", flag, bad, "--", "true"]));
        assert_eq!(out.code(), 2, "{bad}: {}", out.dump());
        assert!(
            out.stderr.contains(bad) && out.stderr.contains(flag),
            "{}",
            out.dump()
        );
    }
}

fn sv(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

both!(http_wildcard_rule_reaches_resolved_names, |ctx| {
    // An --http-allow rule for *.dyn.test makes the names the interceptor
    // resolves reachable through the proxy; the ACL still decides paths.
    let r = Resolver::start(&["*.dyn.test=127.0.0.1"]);
    let up = crate::common::tls::Upstream::plain("127.0.0.1");
    let port = up.port_s();
    let url = |host: &str, path: &str| format!("http://{host}:{port}{path}");
    let mut args = sv(&[
        "run",
        "--dns-server",
        &r.flag(),
        "--http-port",
        &port,
        "--http-allow",
        "GET *.dyn.test/ok/*",
        "--",
        "curl",
        "-q",
        "-sS",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}\n",
    ]);
    args.extend([url("w.dyn.test", "/ok/1"), url("w.dyn.test", "/no/2")]);
    let out = ctx.sl(args);
    out.expect_code(0);
    assert_eq!(out.stdout_lines(), vec!["200", "403"], "{}", out.dump());
    assert_eq!(up.paths(), vec!["/ok/1".to_string()], "{}", up.dump());
});
