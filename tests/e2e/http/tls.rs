//! The certificates: upstream verification (502 for an untrusted
//! upstream, never re-signed), the leaf the workload sees, --http-bypass,
//! and the user's own CA (--http-ca/--http-key).

use super::*;

// ---------------------------------------------------------------------------
// Upstream verification, the certificate the workload sees, bypass, CAs
// ---------------------------------------------------------------------------

/// s_client against api.test:PORT trusting only the sandbox CA.
const SCLIENT: &str = r#"ca=$1; url=$2; hp=$3
curl -q -sS --cacert "$ca" -w "\n@@%{http_code} %{num_connects}@@\n" "$url"
openssl s_client -connect "$hp" -servername api.test -CAfile "$ca" -verify_return_error </dev/null 2>&1
echo "SCLIENT rc $?""#;

both!(
    https_untrusted_upstream_cert_502_and_leaf_is_sandbox_signed,
    |ctx| {
        let s = Setup::tls("127.0.0.1");
        // no --upstream-ca: the upstream's private root is not trusted
        let f = tls_files();
        let flags: Vec<String> = {
            let mut v = s.flags(&["--http-allow", "GET api.test/*"]);
            let i = v.iter().position(|a| a == "--upstream-ca").unwrap();
            v.drain(i..i + 2);
            v
        };
        let hp = s.host("api.test");
        let url = s.url("api.test", "/echo/x");
        let out = run(&ctx, &flags, &sh(SCLIENT, &[&s.ca, &url, &hp]));
        let c = s.dump(&out);
        out.expect_code(0);
        let r = resps(&out).into_iter().next().expect("curl transfer");
        assert_sandlock_reply(&r, 502, "", &out, &c);
        assert!(s.up.requests().is_empty(), "{c}");
        // the certificate the workload saw is a leaf of the sandbox CA, not the
        // upstream's certificate passed through or re-signed by its root
        assert!(out.stdout.contains("Verify return code: 0 (ok)"), "{c}");
        assert!(out.stdout.contains("SCLIENT rc 0"), "{c}");
        let issuer = out
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("issuer="))
            .unwrap_or_else(|| panic!("no issuer= line\n{c}"))
            .trim()
            .to_string();
        assert_eq!(issuer, cert_subject(&s.ca), "{c}");
        assert_ne!(issuer, cert_subject(&f.root_ca), "{c}");
        assert_ne!(
            fs::read_to_string(&s.ca).unwrap(),
            fs::read_to_string(&f.root_ca).unwrap()
        );

        // twin: with --upstream-ca the same request is answered by the upstream
        let out = run(
            &ctx,
            &s.flags(&["--http-allow", "GET api.test/*"]),
            &curl(Some(&s.ca), &[], &[&url]),
        );
        let c = s.dump(&out);
        out.expect_code(0);
        let doc = echo_doc(&resp1(&out), &c);
        assert_eq!(
            doc.get("path").and_then(Value::as_str),
            Some("/echo/x"),
            "{c}"
        );
    }
);

both!(https_bypass_shows_upstream_certificate, |ctx| {
    let s = Setup::tls("127.0.0.1");
    let f = tls_files();
    let url = s.url("api.test", "/echo/bypass");
    // api.test is reached through --net-allow: a path rule covering a
    // bypassed host is refused at start (see `bypass`); the rule for
    // other.test only turns interception on.
    let net = format!("api.test:{}", s.port());
    let flags = s.flags(&[
        "--add-host",
        "other.test:127.0.0.1",
        "--http-allow",
        "GET other.test/*",
        "--net-allow",
        &net,
        "--http-bypass",
        "api.test",
    ]);
    let out = run(&ctx, &flags, &sh(CURL_RC, &[&f.root_ca, &url]));
    let c = s.dump(&out);
    out.expect_code(0);
    let out2 = run(&ctx, &flags, &sh(CURL_RC, &[&s.ca, &url]));
    let c2 = s.dump(&out2);
    out2.expect_code(0);
    // spliced: the private root verifies, the sandbox CA does not
    assert_eq!(rc_lines(&out), vec!["R 0 200"], "{c}");
    assert_eq!(rc_lines(&out2), vec!["R 60 000"], "{c2}");
    let reqs = s.up.requests();
    assert_eq!(reqs.len(), 1, "{c2}");
    assert_eq!(reqs[0].header("host"), Some(s.host("api.test").as_str()));

    // twin: without --http-bypass the connection is intercepted
    let flags = s.flags(&["--http-allow", "GET api.test/*"]);
    let out = run(&ctx, &flags, &sh(CURL_RC, &[&f.root_ca, &url]));
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_lines(&out), vec!["R 60 000"], "{c}");
    let out = run(&ctx, &flags, &sh(CURL_RC, &[&s.ca, &url]));
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_lines(&out), vec!["R 0 200"], "{c}");
});

both!(https_user_ca_signs_leaves, |ctx| {
    let s = Setup::tls("127.0.0.1");
    let f = tls_files();
    let url = s.url("api.test", "/echo/userca");
    let flags = sv(&[
        "--add-host",
        "api.test:127.0.0.1",
        "--http-port",
        &s.port(),
        "--upstream-ca",
        &f.root_ca,
        "--http-ca",
        &f.user_ca,
        "--http-key",
        &f.user_key,
        "-r",
        &f.dir,
        "--http-allow",
        "GET api.test/*",
    ]);
    let out = run(&ctx, &flags, &sh(CURL_RC, &[&f.user_ca, &url]));
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_lines(&out), vec!["R 0 200"], "{c}");
    assert_eq!(s.up.paths(), vec!["/echo/userca".to_string()], "{c}");
    // twin: a client trusting another root (here the upstream's) fails,
    // so the success above came from the user CA
    let out = run(&ctx, &flags, &sh(CURL_RC, &[&f.root_ca, &url]));
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_lines(&out), vec!["R 60 000"], "{c}");
});

// ---------------------------------------------------------------------------
// A ClientHello in many small TCP segments
// ---------------------------------------------------------------------------

both!(https_clienthello_split_into_one_byte_segments, |ctx| {
    let s = Setup::tls("127.0.0.1");
    let flags = s.flags(&["--http-allow", "GET api.test/*"]);
    let out = run(
        &ctx,
        &flags,
        &pyclient(&["splithello", &s.ca, "api.test", &s.port(), "/split/hello"]),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    let (first, rest) = out.stdout.split_once('\n').unwrap_or_default();
    let segments: usize = first
        .strip_prefix("hello ")
        .and_then(|r| r.strip_suffix(" segments"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no segment count\n{c}"));
    // a TLS 1.3 ClientHello is a few hundred bytes: that many segments
    assert!(segments > 200, "{c}");
    let rs = raw_responses_in(rest);
    assert_eq!(rs.len(), 1, "{c}");
    assert_eq!(
        (rs[0].code, rs[0].body.as_str()),
        (200, "ok /split/hello\n"),
        "{c}"
    );
    // the SNI came through whole: the proxy dialled api.test with it
    let tls = s.up.events("tls");
    assert_eq!(tls.len(), 1, "{c}");
    assert_eq!(
        tls[0].get("sni").and_then(Value::as_str),
        Some("api.test"),
        "{c}"
    );
    assert_eq!(s.up.paths(), vec!["/split/hello".to_string()], "{c}");
});
