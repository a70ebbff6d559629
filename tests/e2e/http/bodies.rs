//! Bodies: exact bytes both ways (POST, chunked uploads, downloads,
//! chunked responses) and WebSocket upgrades.

use super::*;
use crate::common::sink::*;

// ---------------------------------------------------------------------------
// Bodies: exact bytes both ways, chunked, WebSocket
// ---------------------------------------------------------------------------

/// Deterministic bytes covering every value, CRLFs and header look-alikes.
fn post_body() -> Vec<u8> {
    let mut v = Vec::new();
    let mut x: u32 = 0x1234_5678;
    for i in 0..100_000u32 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        v.push((x >> 16) as u8 ^ (i as u8));
    }
    v.extend_from_slice(b"\r\n\r\nContent-Length: 0\r\n\r\nGET /admin HTTP/1.1\r\n\r\n\0\0end");
    v
}

both!(https_post_body_bytes_arrive_exactly, |ctx| {
    let s = Setup::tls("127.0.0.1");
    let body = post_body();
    let file = s.bytes_file("body.bin", &body);
    let data = format!("@{file}");
    let flags = s.flags(&["--http-allow", "POST api.test/echo*"]);
    let ct = "Content-Type: application/octet-stream";

    let out = run(
        &ctx,
        &flags,
        &curl(
            Some(&s.ca),
            &["-H", ct, "--data-binary", &data],
            &[&s.url("api.test", "/echo/post")],
        ),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    let doc = echo_doc(&resp1(&out), &c);
    let echoed = b64decode(doc.get("body_b64").and_then(Value::as_str).unwrap());
    assert!(
        echoed == body,
        "echoed body differs ({} bytes)\n{c}",
        echoed.len()
    );
    // byte-exact on the wire: the connection delivered head + body, no more
    let raw = s.up.raw_by_conn();
    let conn_bytes = raw
        .values()
        .find(|b| b.starts_with(b"POST "))
        .expect("POST conn");
    let head_end = conn_bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of head")
        + 4;
    assert!(
        conn_bytes[head_end..] == body[..],
        "bytes after the head differ from the body ({} vs {})\n{c}",
        conn_bytes.len() - head_end,
        body.len()
    );

    // chunked upload: the upstream de-chunks to the same bytes
    let out = run(
        &ctx,
        &flags,
        &curl(
            Some(&s.ca),
            &[
                "-H",
                ct,
                "-H",
                "Transfer-Encoding: chunked",
                "--data-binary",
                &data,
            ],
            &[&s.url("api.test", "/echo/chunked-post")],
        ),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    let doc = echo_doc(&resp1(&out), &c);
    let echoed = b64decode(doc.get("body_b64").and_then(Value::as_str).unwrap());
    assert!(
        echoed == body,
        "chunked body differs ({} bytes)\n{c}",
        echoed.len()
    );

    // a POST to a path the rule does not cover is refused, its body not
    // forwarded: over HTTP/1.1 and over HTTP/2 (what curl negotiates with
    // the proxy by default; the 403 must reach the client although the
    // body was not read)
    for proto in ["--http1.1", "--http2"] {
        let out = run(
            &ctx,
            &flags,
            &curl(
                Some(&s.ca),
                &[proto, "-H", ct, "--data-binary", &data],
                &[&s.url("api.test", "/upload")],
            ),
        );
        let c = format!("{proto}\n{}", s.dump(&out));
        assert_sandlock_reply(&resp1(&out), 403, "", &out, &c);
        assert_eq!(
            s.up.paths(),
            vec!["/echo/post".to_string(), "/echo/chunked-post".into()],
            "{c}"
        );
    }
});

both!(https_response_bodies_pass_through, |ctx| {
    let s = Setup::tls("127.0.0.1");
    let flags = {
        let mut v = s.flags(&["--http-allow", "GET api.test/*"]);
        v.extend(sv(&["-w", &s.d.s()]));
        v
    };
    let n = 3 * 1024 * 1024 + 7;
    let dl = s.d.join("bytes.out");
    let out = run(
        &ctx,
        &flags,
        &curl(
            Some(&s.ca),
            &["-o", &dl],
            &[&s.url("api.test", &format!("/bytes?n={n}"))],
        ),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(resp1(&out).code, 200, "{c}");
    let got = fs::read(&dl).unwrap_or_default();
    assert_eq!(got.len(), n, "{c}");
    assert!(
        got.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8),
        "downloaded bytes differ\n{c}"
    );

    let out = run(
        &ctx,
        &flags,
        &curl(Some(&s.ca), &[], &[&s.url("api.test", "/chunked")]),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    let r = resp1(&out);
    assert_eq!(
        (r.code, r.body.as_str()),
        (200, "hello chunked world\n"),
        "{c}"
    );
});

both!(https_websocket_echo_and_denied_upgrade, |ctx| {
    let s = Setup::tls("127.0.0.1");
    let port = s.port();
    let flags = s.flags(&["--http-allow", "GET api.test/*"]);
    let out = run(
        &ctx,
        &flags,
        &pyclient(&[
            "ws", "--tls", &s.ca, "api.test", &port, "/ws", "hello", "world",
        ]),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(
        out.stdout_lines(),
        vec![
            "ws status 101",
            "ws accept ok",
            "ws echo hello",
            "ws echo world",
            "ws close 1000"
        ],
        "{c}"
    );

    // a deny rule on the upgrade path: 403 and no upgrade upstream
    let flags = s.flags(&[
        "--http-allow",
        "GET api.test/*",
        "--http-deny",
        "* api.test/ws*",
    ]);
    let out = run(
        &ctx,
        &flags,
        &pyclient(&["ws", "--tls", &s.ca, "api.test", &port, "/ws", "hello"]),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(out.stdout_lines().first(), Some(&"ws status 403"), "{c}");
    assert_eq!(s.up.paths(), vec!["/ws".to_string()], "{c}");
});

// ---------------------------------------------------------------------------
// Expect: 100-continue
// ---------------------------------------------------------------------------

/// curl (`proto`: --http1.1 or --http2) POSTs a 100 kB body with "Expect:
/// 100-continue": the interim 100 must reach curl (its -v shows it) before
/// the final response, rather than curl giving up its 1 s wait for it
/// ("Done waiting for 100-continue"); the body arrives exactly. Twin: a
/// denied POST gets the 403 and no 100, and its body is never forwarded.
fn expect_continue(ctx: &Ctx, proto: &str, interim: &str, fin: &str) {
    let s = Setup::tls("127.0.0.1");
    let body = post_body();
    let file = s.bytes_file("body.bin", &body);
    let data = format!("@{file}");
    let flags = s.flags(&["--http-allow", "POST api.test/upload/*", "-w", &s.d.s()]);
    // curl's -v in a file of its own: on the shared stderr, sandlock's
    // lines could land in the middle of curl's
    let verbose_file = s.d.join("curl-verbose.txt");
    let args = [
        proto,
        "-v",
        "--stderr",
        &verbose_file,
        "-H",
        "Expect: 100-continue",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &data,
    ];
    // the upstream log holds the body: leave it out of failure messages
    let ctx_of = |out: &Out| format!("{proto}\n{}\nupstream saw {:?}", out.dump(), s.up.paths());
    let out = run(
        ctx,
        &flags,
        &curl(Some(&s.ca), &args, &[&s.url("api.test", "/upload/expect")]),
    );
    let c = ctx_of(&out);
    out.expect_code(0);
    let r = resp1(&out);
    assert_eq!(
        (r.code, r.body.as_str()),
        (200, "ok /upload/expect\n"),
        "{c}"
    );
    let reqs = s.up.requests();
    assert_eq!(reqs.len(), 1, "{c}");
    assert!(
        reqs[0].body == body,
        "the upstream got {} bytes, not the body\n{c}",
        reqs[0].body.len()
    );
    let verbose_text = fs::read_to_string(&verbose_file).unwrap_or_default();
    let c = format!("{c}\n--- curl -v ---\n{verbose_text}");
    let verbose: Vec<&str> = verbose_text.lines().map(str::trim_end).collect();
    let at = |line: &str| verbose.iter().position(|l| *l == line);
    assert!(
        !verbose_text.contains("Done waiting for 100-continue"),
        "no 100 reached curl: it gave up waiting and sent the body anyway\n{c}"
    );
    match (at(interim), at(fin)) {
        (Some(i), Some(f)) => assert!(i < f, "the 100 came after the final response\n{c}"),
        other => panic!("want {interim:?} then {fin:?} in curl -v, got {other:?}\n{c}"),
    }

    // twin: a denied POST with the same Expect
    let out = run(
        ctx,
        &flags,
        &curl(Some(&s.ca), &args, &[&s.url("api.test", "/other")]),
    );
    let verbose_text = fs::read_to_string(&verbose_file).unwrap_or_default();
    let c = format!("{}\n--- curl -v ---\n{verbose_text}", ctx_of(&out));
    out.expect_code(0);
    assert_sandlock_reply(&resp1(&out), 403, "", &out, &c);
    assert!(
        !verbose_text
            .lines()
            .any(|l| l.starts_with("< ") && l.contains(" 100")),
        "a 100 for a denied request\n{c}"
    );
    assert_eq!(s.up.paths(), vec!["/upload/expect".to_string()], "{c}");
}

both!(https_expect_100_continue_http1, |ctx| {
    expect_continue(
        &ctx,
        "--http1.1",
        "< HTTP/1.1 100 Continue",
        "< HTTP/1.1 200 OK",
    );
});

both!(https_expect_100_continue_http2, |ctx| {
    expect_continue(&ctx, "--http2", "< HTTP/2 100", "< HTTP/2 200");
});

/// Streams bigbody.py ($5) 's body ($1 SIZE, $2 TOKEN) over HTTP/2 with
/// curl trusting only $3 to $4 (`-T -`: no Content-Length). Prints "R
/// <http code> <http version> <bytes uploaded>".
const H2_UPLOAD: &str = r#"python3 "$5" "$1" "$2" |
  curl -q -sS --http2 --cacert "$3" -T - -o /dev/null -w 'R %{http_code} %{http_version} %{size_upload}\n' "$4"
"#;

// An HTTP/2 upload streamed without a Content-Length, three times the
// proxy's per-stream receive window and larger than its connection window,
// arrives byte-exact: the window is given back as the upstream reads.
// (Without that the client would stop after the first window and this
// would hit the time limit.)
both!(
    https_http2_streamed_upload_beyond_the_receive_window,
    |ctx| {
        const SIZE: u64 = 48 << 20;
        const TOKEN: &str = "e2e-flow-control-token";
        let count = format!("token:{}", hex(TOKEN));
        let s = Setup::with(Upstream::start_with(
            "127.0.0.1",
            true,
            &["--sink-count", &count],
        ));
        let want = bigbody(SIZE, TOKEN);
        let fixtures = fixdir();
        let flags = s.flags(&["--http-allow", "PUT api.test/sink", "-r", &fixtures]);
        let size = SIZE.to_string();
        let url = s.url("api.test", "/sink");
        let script = bigbody_py();
        let args = [size.as_str(), TOKEN, &s.ca, &url, &script];
        let out = run(&ctx, &flags, &sh(H2_UPLOAD, &args));
        let c = s.dump(&out);
        out.expect_code(0);
        assert_eq!(out.stdout, format!("R 200 2 {SIZE}\n"), "{c}");
        let sunk = s.up.sunk();
        assert_eq!(sunk.len(), 1, "{c}");
        let got = &sunk[0];
        assert_eq!(got.header("transfer-encoding"), Some("chunked"), "{c}");
        assert_eq!(got.len, SIZE, "{c}");
        assert_eq!(got.count("token"), want.tokens, "{c}");
        assert_eq!(got.sha256, want.sha256, "{c}");
    }
);
