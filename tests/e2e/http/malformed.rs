//! Malformed and oversized requests (431, 400, request smuggling) and
//! the upstream timeout (504).

use super::*;

// ---------------------------------------------------------------------------
// Malformed and oversized requests, smuggling
// ---------------------------------------------------------------------------

both!(https_headers_over_64k_431, |ctx| {
    let s = Setup::tls("127.0.0.1");
    let flags = s.flags(&["--http-allow", "GET api.test/*"]);
    let url = s.url("api.test", "/echo/big");
    let big = format!("X-Big: {}", "a".repeat(70_000));
    // many headers that only add up to more than 64 KiB
    let many: Vec<String> = (0..20)
        .map(|i| format!("X-Part-{i}: {}", "b".repeat(4000)))
        .collect();
    let mut many_args: Vec<&str> = Vec::new();
    for h in &many {
        many_args.push("-H");
        many_args.push(h);
    }
    // HTTP/1.1 only: curl's HTTP/2 library (nghttp2) refuses to send a
    // header block over 64 KiB itself, so no such request can reach the
    // proxy over HTTP/2 from curl.
    for proto in ["--http1.1"] {
        for headers in [vec!["-H", big.as_str()], many_args.clone()] {
            let mut extra = vec![proto];
            extra.extend(headers);
            let out = run(&ctx, &flags, &curl(Some(&s.ca), &extra, &[&url]));
            let c = format!("{proto}\n{}", s.dump(&out));
            assert_sandlock_reply(&resp1(&out), 431, "", &out, &c);
            out.expect_code(0);
            assert_upstream_untouched(&s, &c);
        }
    }

    // twin: 60 000 bytes of header fit and arrive intact
    let fits = "a".repeat(60_000);
    let h = format!("X-Big: {fits}");
    for (i, proto) in ["--http1.1", "--http2"].iter().enumerate() {
        let out = run(
            &ctx,
            &flags,
            &curl(Some(&s.ca), &[proto, "-H", &h], &[&url]),
        );
        let c = format!("{proto}\n{}", s.dump(&out));
        out.expect_code(0);
        assert_eq!(resp1(&out).code, 200, "{c}");
        let reqs = s.up.requests();
        assert_eq!(reqs.len(), i + 1, "{c}");
        assert_eq!(reqs[i].header("x-big"), Some(fits.as_str()), "{c}");
    }
});

/// Request heads that must be refused with 400 before anything is
/// forwarded: (name, request bytes) for Host `h`.
fn bad_requests(h: &str) -> Vec<(&'static str, String)> {
    let smuggled = format!("GET /admin HTTP/1.1\r\nHost: {h}\r\n\r\n");
    let chunked_then_smuggled = format!("0\r\n\r\n{smuggled}");
    vec![
        (
            // CL covers the smuggled request, TE ends the body before it
            "CL then TE",
            format!(
                "POST /echo HTTP/1.1\r\nHost: {h}\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{chunked_then_smuggled}",
                chunked_then_smuggled.len()
            ),
        ),
        (
            "TE then CL",
            format!(
                "POST /echo HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n{chunked_then_smuggled}"
            ),
        ),
        (
            "two different Content-Lengths",
            format!(
                "POST /echo HTTP/1.1\r\nHost: {h}\r\nContent-Length: 5\r\nContent-Length: {}\r\n\r\nhello{smuggled}",
                5 + smuggled.len()
            ),
        ),
        (
            "header line without a colon",
            format!("GET /echo HTTP/1.1\r\nHost: {h}\r\nX-Broken header\r\n\r\n"),
        ),
        ("not HTTP", "GARBAGE\r\n\r\n".to_string()),
    ]
}

both!(https_request_smuggling_and_malformed_400, |ctx| {
    let rules = [
        "--http-allow",
        "POST api.test/echo*",
        "--http-allow",
        "GET api.test/echo*",
        "--http-deny",
        "* api.test/admin*",
    ];
    // every attack gets its own upstream, so "nothing arrived" is per attack;
    // all attacks run before the verdict so one report shows every miss
    let mut bad = Vec::new();
    let names: Vec<&str> = bad_requests("x").iter().map(|(n, _)| *n).collect();
    for (i, name) in names.iter().enumerate() {
        let s = Setup::tls("127.0.0.1");
        let (_, req) = bad_requests(&s.host("api.test")).swap_remove(i);
        let file = s.bytes_file("attack.req", req.as_bytes());
        let out = run(
            &ctx,
            &s.flags(&rules),
            &pyclient(&["raw", "--tls", &s.ca, "api.test", &s.port(), &file]),
        );
        let c = format!("attack {name}: {req:?}\n{}", s.dump(&out));
        out.expect_code(0);
        let rs = raw_responses(&out);
        let raw = s.up.raw_all();
        // after a request whose framing is in doubt, the connection must
        // not be reused: sandlock says close, or closes it
        let closed = out.stdout.ends_with("@@END eof\n")
            || rs.first().and_then(|r| r.header("connection")) == Some("close");
        let ok = rs.len() == 1
            && rs[0].code == 400
            && rs[0].body.starts_with("sandlock:")
            && closed
            && raw.is_empty();
        if !ok {
            bad.push(format!(
                "{name}: got {:?}, upstream received {:?}",
                rs.iter()
                    .map(|r| (r.code, r.body.as_str()))
                    .collect::<Vec<_>>(),
                String::from_utf8_lossy(&raw)
            ));
            eprintln!("{c}");
            continue;
        }
        assert_raw_sandlock_reply(&rs[0], 400, &out, &c);
    }
    assert!(bad.is_empty(), "not refused with 400:\n{}", bad.join("\n"));

    // twin: a well-formed chunked POST followed by a GET on the same
    // connection both reach the upstream
    let s = Setup::tls("127.0.0.1");
    let h = s.host("api.test");
    let good = format!(
        "POST /echo/chunk HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /echo/after HTTP/1.1\r\nHost: {h}\r\n\r\n"
    );
    let file = s.bytes_file("good.req", good.as_bytes());
    let out = run(
        &ctx,
        &s.flags(&rules),
        &pyclient(&["raw", "--tls", &s.ca, "api.test", &s.port(), &file]),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    let rs = raw_responses(&out);
    assert_eq!(
        rs.iter().map(|r| r.code).collect::<Vec<_>>(),
        vec![200, 200],
        "{c}"
    );
    let reqs = s.up.requests();
    assert_eq!(
        reqs.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
        vec!["/echo/chunk", "/echo/after"],
        "{c}"
    );
    assert_eq!(reqs[0].body, b"hello", "{c}");
});

both!(https_upstream_timeout_504, |ctx| {
    let s = Setup::tls("127.0.0.1");
    let flags = s.flags(&["--http-allow", "GET api.test/*", "--http-timeout", "1"]);
    let out = run(
        &ctx,
        &flags,
        &curl(Some(&s.ca), &[], &[&s.url("api.test", "/slow?s=4")]),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_sandlock_reply(&resp1(&out), 504, "", &out, &c);
    assert!(
        out.elapsed < std::time::Duration::from_millis(3500),
        "the 504 waited for the upstream\n{c}"
    );

    // twin: an upstream answering within the limit
    let out = run(
        &ctx,
        &flags,
        &curl(Some(&s.ca), &[], &[&s.url("api.test", "/slow?s=0.2")]),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    let r = resp1(&out);
    assert_eq!((r.code, r.body.as_str()), (200, "slow 0.2\n"), "{c}");
});

// ---------------------------------------------------------------------------
// Garbage on an intercepted port, an upstream that resets
// ---------------------------------------------------------------------------

/// `n` deterministic bytes without CR or LF (so no line ends, and no bare
/// LF to refuse), the first one `first`.
fn garbage(first: u8, n: usize) -> Vec<u8> {
    let mut v = vec![first];
    let mut x: u32 = 0x2545_f491;
    while v.len() < n {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let b = (x >> 16) as u8;
        if b != b'\r' && b != b'\n' {
            v.push(b);
        }
    }
    v
}

/// Sends file $4 raw to api.test:$3, then file $5, then curl $6 trusting
/// $2; `@@NEXT` between the three.
const GARBAGE_THEN_GET: &str = r#"cl=$1; ca=$2; p=$3
/usr/bin/python3 -I "$cl" raw api.test "$p" "$4"; echo "@@NEXT"
/usr/bin/python3 -I "$cl" raw api.test "$p" "$5"; echo "@@NEXT"
curl -q -sS --cacert "$ca" -w "\n@@%{http_code} %{num_connects}@@\n" "$6""#;

both!(garbage_on_intercepted_port_is_closed_and_logged, |ctx| {
    let s = Setup::tls("127.0.0.1");
    let flags = s.flags(&["--http-allow", "GET api.test/*"]);
    // neither TLS (0x16) nor HTTP: 64 bytes from 0x9c on
    let plain = s.bytes_file("garbage.bin", &garbage(0x9c, 64));
    // a TLS handshake record header, then garbage as its 59-byte body
    let mut rec = vec![0x16, 0x03, 0x01, 0x00, 59];
    rec.extend(garbage(0x01, 59));
    let tls = s.bytes_file("garbage-tls.bin", &rec);
    let url = s.url("api.test", "/after/garbage");
    let out = run(
        &ctx,
        &flags,
        &sh(
            GARBAGE_THEN_GET,
            &[&tls_files().client, &s.ca, &s.port(), &plain, &tls, &url],
        ),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    let parts: Vec<&str> = out.stdout.split("@@NEXT\n").collect();
    assert_eq!(parts.len(), 3, "{c}");

    // the supervisor is not wedged: a normal request in the same sandbox
    // still gets through, and it is all the upstream ever saw
    assert_eq!(parts[2], "ok /after/garbage\n\n@@200 1@@\n", "{c}");
    assert_eq!(s.up.paths(), vec!["/after/garbage".to_string()], "{c}");
    assert_eq!(s.up.events("accept").len(), 1, "{c}");
    assert!(s.up.raw_all().starts_with(b"GET /after/garbage "), "{c}");

    // each garbage connection: answered with sandlock's 400 or closed,
    // without waiting for the client to give up (the client reads until
    // the peer closes, or 2 s without data: "@@END idle")
    let mut bad = Vec::new();
    for (name, part) in [("plain garbage", parts[0]), ("TLS garbage", parts[1])] {
        let (got, end) = part
            .rsplit_once("\n@@END ")
            .unwrap_or_else(|| panic!("{name}: no @@END\n{c}"));
        let end = end.trim_end();
        let closed = end == "eof" || end.starts_with("error");
        let answer_ok = got.is_empty()
            || (name == "TLS garbage" && got.starts_with('\u{15}'))
            || raw_responses_in(got)
                .iter()
                .map(|r| (r.code, r.body.starts_with("sandlock:")))
                .eq([(400, true)]);
        if !closed || !answer_ok {
            bad.push(format!("{name}: got {got:?}, then {end}"));
        }
    }
    // and each one is explained on sandlock's stderr (the two clients are
    // two python3 processes: a line for each pid)
    let hp = format!("127.0.0.1:{}", s.port());
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("sandlock: ") && l.contains(&hp) && l.contains("(python3"))
        .collect();
    let pids: std::collections::BTreeSet<&str> = lines
        .iter()
        .filter_map(|l| l.split_once(" from pid ")?.1.split(' ').next())
        .collect();
    if pids.len() != 2 || !lines.iter().any(|l| l.contains("TLS")) {
        bad.push(format!(
            "want a line for each garbage connection: {lines:?}"
        ));
    }
    assert!(bad.is_empty(), "{}\n{c}", bad.join("\n"));
});

both!(https_upstream_reset_mid_body_fails_never_hangs, |ctx| {
    let s = Setup::tls("127.0.0.1");
    // -t 20: a hang would end as exit 124, not as curl's error
    let flags = s.flags(&["--http-allow", "GET api.test/*", "-t", "20", "-w", &s.d.s()]);
    let reset = s.url("api.test", "/reset?after=5000");
    let sent: Vec<u8> = (0..5000).map(|i| (i % 251) as u8).collect();
    // the headers (Content-Length: 1000000) and 5000 bytes arrive, then
    // the upstream resets: curl reports a partial transfer (HTTP/1.1: 18)
    // or a stream that was not closed cleanly (HTTP/2: 92)
    for (proto, rc) in [("--http1.1", 18), ("--http2", 92)] {
        let dl = s.d.join(&format!("reset-{rc}.out"));
        let out = run(
            &ctx,
            &flags,
            &curl(Some(&s.ca), &[proto, "-o", &dl], &[&reset]),
        );
        let c = format!("{proto}\n{}", s.dump(&out));
        assert_eq!(out.code(), rc, "{c}");
        assert_eq!(resp1(&out).code, 200, "{c}");
        let got = fs::read(&dl).unwrap_or_default();
        assert!(got == sent, "{} bytes downloaded\n{c}", got.len());
    }
    assert_eq!(s.up.events("reset").len(), 2, "{}", s.up.dump());

    // a reset before any response byte: sandlock's 502
    for proto in ["--http1.1", "--http2"] {
        let out = run(
            &ctx,
            &flags,
            &curl(
                Some(&s.ca),
                &[proto],
                &[&s.url("api.test", "/reset?after=-1")],
            ),
        );
        let c = format!("{proto}\n{}", s.dump(&out));
        out.expect_code(0);
        assert_sandlock_reply(&resp1(&out), 502, "", &out, &c);
    }

    // twin: the same download from an upstream that does not reset
    let dl = s.d.join("full.out");
    let out = run(
        &ctx,
        &flags,
        &curl(
            Some(&s.ca),
            &["-o", &dl],
            &[&s.url("api.test", "/bytes?n=1000000")],
        ),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(resp1(&out).code, 200, "{c}");
    let got = fs::read(&dl).unwrap_or_default();
    assert_eq!(got.len(), 1_000_000, "{c}");
    assert!(got[..5000] == sent[..], "{c}");
});

/// Sends a request head one byte per second and never finishes it; prints
/// what came back and how the connection ended ("closed" when the peer
/// closed it before the client's own 25 s limit).
const SLOWLORIS: &str = r#"
import socket, sys, time
s = socket.create_connection(("api.test", int(sys.argv[1])))
s.sendall(b"GET /slow HTTP/1.1\r\nHost: api.test\r\nX-Trickle: ")
s.settimeout(1.0)
got, end, start = b"", "limit", time.monotonic()
while time.monotonic() - start < 25:
    try:
        s.sendall(b"a")
    except OSError:
        end = "closed"
        break
    try:
        d = s.recv(4096)
        if not d:
            end = "closed"
            break
        got += d
    except socket.timeout:
        pass
    except OSError:
        end = "closed"
        break
print(got.decode("latin-1"))
print("@@END " + end)
"#;

both!(slowloris_head_is_cut_off, |ctx| {
    let s = Setup::plain("127.0.0.1");
    let flags = s.flags(&["--http-allow", "GET api.test/*"]);
    let out = run(
        &ctx,
        &flags,
        &sv(&[PYTHON, "-I", "-c", SLOWLORIS, &s.port()]),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert!(out.stdout.ends_with("@@END closed\n"), "{c}");
    let rs = raw_responses_in(&out.stdout);
    assert_eq!(rs.len(), 1, "{c}");
    assert_eq!(rs[0].code, 400, "{c}");
    assert!(
        rs[0].body.starts_with("sandlock:") && rs[0].body.contains("not received in time"),
        "{c}"
    );
    assert_upstream_untouched(&s, &c);
    // twin: the same head sent whole is served
    let url = s.url("api.test", "/slow");
    let out = run(&ctx, &flags, &curl(None, &[], &[&url]));
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(resp1(&out).code, 200, "{c}");
});
