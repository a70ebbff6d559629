//! Gates: where the placeholder stays a placeholder; misuse warned and
//! blocked; a secret alone makes its host reachable.

use super::*;

// ---------------------------------------------------------------------------
// Gates: where the placeholder stays a placeholder
// ---------------------------------------------------------------------------

const BEARER: &str = r#"c -H "Authorization: Bearer $TOKEN" "$@"
"#;

/// Asserts the upstream got the request `path` with the placeholder in
/// Authorization, and never the value.
#[track_caller]
fn assert_placeholder_upstream(s: &Sec, path: &str, p: &str, c: &str) {
    let r = s.request(path, c);
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {p}").as_str()),
        "{c}"
    );
    assert!(
        !contains(&s.up.raw_all(), s.value.as_bytes()),
        "the real value reached the upstream\n{c}"
    );
}

/// The request went out (200) carrying the placeholder, never the value,
/// and the misplaced placeholder was warned about.
#[track_caller]
fn assert_placeholder_went(s: &Sec, out: &Out, path: &str) {
    let c = s.dump(out);
    out.expect_code(0);
    assert_eq!(rc_codes(out), vec!["0 200"], "{c}");
    let p = placeholder(out, &s.value, &c);
    assert_placeholder_upstream(s, path, &p, &c);
    assert_misuse_warned(out, "TOKEN", &c);
}

both!(gate_host_not_bound_forwards_the_placeholder, |ctx| {
    let s = Sec::tls("127.0.0.1");
    // the secret is bound to other.test; api.test is reachable through an
    // HTTP rule
    let flags = |hosts: &str| {
        s.bare(&[
            "--add-host",
            "api.test:127.0.0.1",
            "--add-host",
            "other.test:127.0.0.1",
            "--http-allow",
            "* api.test/*",
            "--secret",
            &Sec::secret(hosts),
        ])
    };
    let out = s.run(
        &ctx,
        &flags("other.test"),
        BEARER,
        &[&s.url("api.test", "/echo/unbound")],
    );
    assert_placeholder_went(&s, &out, "/echo/unbound");
    assert_no_value_in_output(&out, &s.value, &s.dump(&out));

    // twin: bound to api.test, the same request carries the value
    let out = s.run(
        &ctx,
        &flags("api.test"),
        BEARER,
        &[&s.url("api.test", "/echo/bound")],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 200"], "{c}");
    assert_value_upstream(&s, "/echo/bound", &c);
    assert_no_misuse_warning(&out, &c);
});

both!(gate_forged_sni_on_a_hard_coded_ip, |ctx| {
    // the upstream listens on 127.0.0.2; api.test is pinned to 127.0.0.1,
    // and the workload connects to 127.0.0.2 (allowed by address) with SNI
    // and Host api.test
    let s = Sec::tls("127.0.0.2");
    let port = s.port();
    let allow = format!("127.0.0.2:{port}");
    let resolve = format!("api.test:{port}:127.0.0.2");
    let flags = |pin: &str| {
        s.bare(&[
            "--add-host",
            pin,
            "--net-allow",
            &allow,
            "--secret",
            &Sec::secret("api.test"),
        ])
    };
    let out = s.run(
        &ctx,
        &flags("api.test:127.0.0.1"),
        BEARER,
        &["--resolve", &resolve, &s.url("api.test", "/echo/forged")],
    );
    assert_placeholder_went(&s, &out, "/echo/forged");

    // twin: api.test pinned to 127.0.0.2, the same connection qualifies
    let out = s.run(
        &ctx,
        &flags("api.test:127.0.0.2"),
        BEARER,
        &["--resolve", &resolve, &s.url("api.test", "/echo/pinned")],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 200"], "{c}");
    assert_value_upstream(&s, "/echo/pinned", &c);
    assert_no_misuse_warning(&out, &c);
});

both!(gate_dns_pin_through_the_interceptor, |ctx| {
    // *.dyn.test is resolved by the DNS interceptor (the test's resolver
    // answers 127.0.0.1): the answer pins 127.0.0.1 for a.dyn.test, which
    // makes it reachable and satisfies the DNS-pin gate.
    let r = crate::common::dns::Resolver::start(&["*.dyn.test=127.0.0.1"]);
    let flags = |s: &Sec, extra: &[&str]| {
        let mut v = s.bare(&[
            "--secret",
            &Sec::secret("*.dyn.test"),
            "--dns-server",
            &r.flag(),
        ]);
        v.extend(sv(extra));
        v
    };
    let s = Sec::tls("127.0.0.1");
    let out = s.run(
        &ctx,
        &flags(&s, &[]),
        BEARER,
        &[&s.url("a.dyn.test", "/echo/resolved")],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 200"], "{c}");
    assert_value_upstream(&s, "/echo/resolved", &c);
    assert!(
        r.queries().contains(&"a.dyn.test 1".to_string()),
        "{:?}",
        r.queries()
    );

    // attack: the same address and SNI without the lookup (allowed by
    // address) never qualifies
    let s = Sec::tls("127.0.0.1");
    let allow = format!("127.0.0.1:{}", s.port());
    let resolve = format!("a.dyn.test:{}:127.0.0.1", s.port());
    let out = s.run(
        &ctx,
        &flags(&s, &["--net-allow", &allow]),
        BEARER,
        &[
            "--resolve",
            &resolve,
            &s.url("a.dyn.test", "/echo/unresolved"),
        ],
    );
    assert_placeholder_went(&s, &out, "/echo/unresolved");
});

both!(gate_plaintext_http_needs_the_opt_in, |ctx| {
    let s = Sec::with(Upstream::plain("127.0.0.1"), long_value());
    let flags = |hosts: &str| {
        s.bare(&[
            "--add-host",
            "api.test:127.0.0.1",
            "--secret",
            &Sec::secret(hosts),
        ])
    };
    let out = s.run(
        &ctx,
        &flags("api.test"),
        BEARER,
        &[&s.url("api.test", "/echo/plain")],
    );
    assert_placeholder_went(&s, &out, "/echo/plain");

    // twin: ;plaintext lets the value go out over plain HTTP
    let out = s.run(
        &ctx,
        &flags("api.test;plaintext"),
        BEARER,
        &[&s.url("api.test", "/echo/optin")],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 200"], "{c}");
    assert_value_upstream(&s, "/echo/optin", &c);
    assert_no_misuse_warning(&out, &c);
});

both!(gate_bypassed_host_gets_the_placeholder, |ctx| {
    let s = Sec::tls("127.0.0.1");
    let root = &tls_files().root_ca;
    // bypassed: the client talks TLS to the upstream itself, so it must
    // trust the upstream's root
    let out = s.run(
        &ctx,
        &s.flags(&["--http-bypass", "api.test"]),
        BEARER,
        &["--cacert", root, &s.url("api.test", "/echo/bypass")],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 200"], "{c}");
    let p = placeholder(&out, &s.value, &c);
    assert_placeholder_upstream(&s, "/echo/bypass", &p, &c);

    // twin: intercepted (no CA flag), the value goes out
    let out = s.run(
        &ctx,
        &s.flags(&[]),
        BEARER,
        &[&s.url("api.test", "/echo/intercepted")],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 200"], "{c}");
    assert_value_upstream(&s, "/echo/intercepted", &c);
});

both!(gate_host_differs_from_sni_421, |ctx| {
    let s = Sec::tls("127.0.0.1");
    // both names bound and pinned to the same address: only the mismatch
    // between SNI (api.test) and Host (other.test) is wrong
    let flags = s.bare(&[
        "--add-host",
        "api.test:127.0.0.1",
        "--add-host",
        "other.test:127.0.0.1",
        "--secret",
        &Sec::secret("api.test,other.test"),
    ]);
    let url = s.url("api.test", "/echo/mismatch");
    for proto in ["--http1.1", "--http2"] {
        let host = format!("Host: {}", s.host("other.test"));
        let out = s.run(&ctx, &flags, BEARER, &[proto, "-H", &host, &url]);
        let c = format!("{proto}\n{}", s.dump(&out));
        out.expect_code(0);
        assert_eq!(rc_codes(&out), vec!["0 421"], "{c}");
        assert!(
            s.up.requests().is_empty(),
            "a request with Host != SNI reached the upstream\n{c}"
        );
        assert!(!contains(&s.up.raw_all(), s.value.as_bytes()), "{c}");
    }

    // twin: Host equal to the SNI
    let host = format!("Host: {}", s.host("api.test"));
    let out = s.run(&ctx, &flags, BEARER, &["-H", &host, &url]);
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 200"], "{c}");
    assert_value_upstream(&s, "/echo/mismatch", &c);
});

both!(misuse_is_warned_on_stderr_and_in_the_audit_log, |ctx| {
    let s = Sec::tls("127.0.0.1");
    let other_value = long_value();
    // OTHER is bound to other.test only; its placeholder goes to api.test
    let flags = |audit: &str| {
        s.flags(&[
            "--add-host",
            "other.test:127.0.0.1",
            "--secret",
            "OTHER=env:OTHER_REAL@other.test",
            "--audit",
            audit,
        ])
    };
    // on a connection where TOKEN is eligible (SNI api.test, pinned) and
    // OTHER is not: alone, then next to TOKEN's placeholder. (Where no
    // secret is eligible at all: gate_host_not_bound_forwards_the_placeholder.)
    for (path, script) in [
        ("/echo/other-only", r#"c -H "X-Other: $OTHER" "$1""#),
        (
            "/echo/both",
            r#"c -H "Authorization: Bearer $TOKEN" -H "X-Other: $OTHER" "$1""#,
        ),
    ] {
        let audit = s.d.join(&format!("audit{}.jsonl", path.replace('/', "-")));
        let out = s.run_env(
            &ctx,
            &flags(&audit),
            &[("OTHER_REAL", &other_value)],
            script,
            &[&s.url("api.test", path)],
        );
        let audit_text = fs::read_to_string(&audit).unwrap_or_default();
        let c = format!("{path}\n{}\n--- audit ---\n{audit_text}", s.dump(&out));
        out.expect_code(0);
        assert_eq!(rc_codes(&out), vec!["0 200"], "{c}");
        let r = s.request(path, &c);
        let other_ph = r.header("x-other").unwrap_or("").to_string();
        assert_eq!(other_ph.len(), other_value.len(), "{c}");
        assert_ne!(other_ph, other_value, "{c}");
        assert_misuse_warned(&out, "OTHER", &c);
        assert!(misuse_lines(&out, "TOKEN").is_empty(), "{c}");
        assert!(
            audit_text
                .lines()
                .any(|l| l.contains("\"warn\"") && l.contains(&misuse_reason("OTHER"))),
            "no warn record for OTHER in the audit log\n{c}"
        );
        assert!(!audit_text.contains(&other_value), "{c}");
        assert!(!audit_text.contains(&s.value), "{c}");
    }
    let r = s.request("/echo/both", "");
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {}", s.value).as_str()),
        "{}",
        s.up.dump()
    );
});

both!(misuse_block_refuses_a_misplaced_placeholder, |ctx| {
    let s = Sec::tls("127.0.0.1");
    let flags = |extra: &[&str]| {
        let mut f = vec![
            "--add-host",
            "api.test:127.0.0.1",
            "--add-host",
            "other.test:127.0.0.1",
            "--http-allow",
            "* api.test/*",
        ];
        f.extend_from_slice(extra);
        let secret = Sec::secret("other.test");
        let mut all: Vec<String> = f.iter().map(|x| x.to_string()).collect();
        all.extend(["--secret".to_string(), secret]);
        s.bare(&all.iter().map(String::as_str).collect::<Vec<_>>())
    };
    // the secret is bound to other.test; its placeholder heads for api.test
    let out = s.run(
        &ctx,
        &flags(&["--on-secret-misuse", "block"]),
        BEARER,
        &[&s.url("api.test", "/echo/blocked")],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 403"], "{c}");
    assert!(
        out.stderr
            .lines()
            .any(|l| l.starts_with("sandlock: denied http ")
                && l.contains("placeholder of secret TOKEN")
                && l.contains("--on-secret-misuse block")),
        "{c}"
    );
    assert!(
        s.up.requests().is_empty(),
        "nothing reaches the upstream\n{c}"
    );
    // twin: the default (warn) forwards it with the placeholder
    let out = s.run(
        &ctx,
        &flags(&[]),
        BEARER,
        &[&s.url("api.test", "/echo/warned")],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 200"], "{c}");
    assert_misuse_warned(&out, "TOKEN", &c);
});

// ---------------------------------------------------------------------------
// Reachability with no HTTP rule
// ---------------------------------------------------------------------------

both!(secret_alone_makes_its_host_reachable, |ctx| {
    let s = Sec::tls("127.0.0.1");
    let port = s.port();
    // blocked.test: pinned, on the same port, but no rule and no secret
    let blocked =
        TcpServer::start_on("127.0.0.3", s.up.port).expect("bind 127.0.0.3 on the upstream's port");
    let flags = s.flags(&["--add-host", "blocked.test:127.0.0.3"]);
    let blocked_url = format!("https://blocked.test:{port}/");
    let out = s.run(
        &ctx,
        &flags,
        r#"c -H "Authorization: Bearer $TOKEN" "$1"
c "$2"
"#,
        &[&s.url("api.test", "/echo/alone"), &blocked_url],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    // 7: curl could not connect
    assert_eq!(rc_codes(&out), vec!["0 200", "7 000"], "{c}");
    assert_value_upstream(&s, "/echo/alone", &c);
    assert_eq!(blocked.accepted(), 0, "{c}");
    let denied = format!("127.0.0.3:{port}");
    assert!(
        out.denial_lines()
            .iter()
            .any(|l| l.contains("connect") && l.contains(&denied)),
        "no denial line for {denied}\n{c}"
    );

    // twin: with a rule for it, blocked.test is reached
    let mut flags = flags;
    flags.extend(sv(&["--net-allow", &denied]));
    let out = s.run(&ctx, &flags, "c \"$1\"\n", &[&blocked_url]);
    let c = s.dump(&out);
    assert!(blocked.accepted() > 0, "{c}");
});
