//! Where the placeholder becomes the value: a header, Basic credentials,
//! the path and query, bodies (split across chunks and writes, HTTP/2),
//! and --secret-headers.

use super::*;

// ---------------------------------------------------------------------------
// Where the placeholder becomes the value
// ---------------------------------------------------------------------------

/// `env` (prefixed "ENV "), then /proc/self/environ (prefixed "PROC ", or
/// "PROC_FAIL" when it cannot be read), then one curl with the placeholder
/// in Authorization and inside a longer header value.
const HEADER_SCRIPT: &str = r#"env | sed 's/^/ENV /'
if tr '\0' '\n' < /proc/self/environ > "$TMPDIR/environ"; then
  sed 's/^/PROC /' "$TMPDIR/environ"; echo PROC_OK
else
  echo PROC_FAIL
fi
c -H "Authorization: Bearer $TOKEN" -H "X-Mixed: pre-$TOKEN-post" -H "X-Plain: plain value" "$1"
"#;

both!(header_bearer_gets_the_real_value, |ctx| {
    let s = Sec::tls("127.0.0.1");
    // /proc granted so that the workload can read its own environ
    let out = s.run(
        &ctx,
        &s.flags(&["-r", "/proc"]),
        HEADER_SCRIPT,
        &[&s.url("api.test", "/echo/header")],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 200"], "{c}");
    let p = placeholder(&out, &s.value, &c);
    assert_eq!(
        p.len(),
        s.value.len(),
        "a value of 16 bytes or more gets a placeholder of its length\n{c}"
    );

    // the workload's environment: TOKEN is the placeholder, REAL_TOKEN is
    // gone, the value is nowhere
    for prefix in ["ENV ", "PROC "] {
        let env: Vec<&str> = out
            .stdout
            .lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .collect();
        assert!(
            env.contains(&format!("TOKEN={p}").as_str()),
            "{prefix}: no TOKEN=<placeholder>\n{c}"
        );
        assert!(
            !env.iter().any(|l| l.starts_with(&format!("{VAR}="))),
            "{prefix}: the source variable {VAR} reached the workload\n{c}"
        );
    }
    assert!(
        out.stdout.lines().any(|l| l == "PROC_OK"),
        "/proc/self/environ was not readable with -r /proc\n{c}"
    );
    assert_no_value_in_output(&out, &s.value, &c);
    assert_no_misuse_warning(&out, &c);

    // the wire: the value, where the placeholder was
    let r = s.request("/echo/header", &c);
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {}", s.value).as_str()),
        "{c}"
    );
    assert_eq!(
        r.header("x-mixed"),
        Some(format!("pre-{}-post", s.value).as_str()),
        "{c}"
    );
    assert_eq!(r.header("x-plain"), Some("plain value"), "{c}");
    assert!(
        !contains(&s.up.raw_all(), p.as_bytes()),
        "the placeholder reached the upstream\n{c}"
    );
});

both!(basic_credentials_are_decoded_and_reencoded, |ctx| {
    let s = Sec::tls("127.0.0.1");
    // git's form (user x-access-token, the token as password) over
    // HTTP/1.1, and the token as the user name over HTTP/2
    let script = r#"c --http1.1 -u "x-access-token:$TOKEN" "$1"
c --http2 -u "$TOKEN:x-oauth-basic" "$2"
"#;
    let out = s.run(
        &ctx,
        &s.flags(&[]),
        script,
        &[
            &s.url("api.test", "/echo/basic1"),
            &s.url("api.test", "/echo/basic2"),
        ],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 200", "0 200"], "{c}");
    let p = placeholder(&out, &s.value, &c);
    for (path, want) in [
        ("/echo/basic1", format!("x-access-token:{}", s.value)),
        ("/echo/basic2", format!("{}:x-oauth-basic", s.value)),
    ] {
        let r = s.request(path, &c);
        let auth = r.header("authorization").unwrap_or("").to_string();
        let b64 = auth
            .strip_prefix("Basic ")
            .unwrap_or_else(|| panic!("{path}: not Basic: {auth:?}\n{c}"));
        let decoded = String::from_utf8_lossy(&b64decode(b64)).into_owned();
        assert_eq!(decoded, want, "{path}: Basic credentials\n{c}");
        assert_eq!(
            b64,
            b64encode(want.as_bytes()),
            "{path}: canonical base64\n{c}"
        );
    }
    assert!(!contains(&s.up.raw_all(), p.as_bytes()), "{c}");
    assert_no_value_in_output(&out, &s.value, &c);
});

both!(path_and_query_get_the_real_value, |ctx| {
    let s = Sec::tls("127.0.0.1");
    let base = s.url("api.test", "/echo/");
    let out = s.run(
        &ctx,
        &s.flags(&[]),
        r#"c --http1.1 "$1$TOKEN?k=$TOKEN&x=1"
c --http2 "$1h2/$TOKEN?k=$TOKEN"
"#,
        &[&base],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 200", "0 200"], "{c}");
    let p = placeholder(&out, &s.value, &c);
    let v = &s.value;
    let want1 = format!("/echo/{v}?k={v}&x=1");
    let want2 = format!("/echo/h2/{v}?k={v}");
    assert_eq!(s.up.paths(), vec![want1.clone(), want2], "{c}");
    // the raw request line, byte for byte
    let raw = s.up.raw_all();
    let line = format!("GET {want1} HTTP/1.1\r\n");
    assert!(
        contains(&raw, line.as_bytes()),
        "no {line:?} on the wire\n{c}"
    );
    assert!(!contains(&raw, p.as_bytes()), "{c}");
});

/// POSTs "a=$TOKEN&b=$TOKEN" with curl over HTTP/1.1, then over HTTP/2.
const FORM_SCRIPT: &str = r#"c --http1.1 --data-binary "a=$TOKEN&b=$TOKEN" "$1/h1"
c --http2 --data-binary "a=$TOKEN&b=$TOKEN" "$1/h2"
"#;

/// Checks the two requests of FORM_SCRIPT: body "a=V&b=V" and a
/// Content-Length that is its length.
#[track_caller]
fn assert_form_bodies(s: &Sec, out: &Out, p: &str, c: &str) {
    assert_eq!(rc_codes(out), vec!["0 200", "0 200"], "{c}");
    assert_eq!(versions(out), vec!["1.1", "2"], "{c}");
    let want = format!("a={0}&b={0}", s.value);
    for path in ["/echo/form/h1", "/echo/form/h2"] {
        let r = s.request(path, c);
        assert_eq!(
            String::from_utf8_lossy(&r.body),
            want,
            "{path}: the body upstream\n{c}"
        );
        assert_eq!(
            r.header("content-length"),
            Some(want.len().to_string().as_str()),
            "{path}: Content-Length\n{c}"
        );
        assert_eq!(r.header("transfer-encoding"), None, "{path}\n{c}");
    }
    assert!(!contains(&s.up.raw_all(), p.as_bytes()), "{c}");
}

both!(body_gets_the_real_value, |ctx| {
    let s = Sec::tls("127.0.0.1");
    let out = s.run(
        &ctx,
        &s.flags(&[]),
        FORM_SCRIPT,
        &[&s.url("api.test", "/echo/form")],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    let p = placeholder(&out, &s.value, &c);
    assert_eq!(p.len(), s.value.len(), "{c}");
    assert_form_bodies(&s, &out, &p, &c);
});

both!(short_value_body_length_is_fixed, |ctx| {
    let s = Sec::with(Upstream::tls("127.0.0.1"), short_value());
    let out = s.run(
        &ctx,
        &s.flags(&[]),
        FORM_SCRIPT,
        &[&s.url("api.test", "/echo/form")],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    let p = placeholder(&out, &s.value, &c);
    // below 16 bytes: 24 bytes, "SLKP_" and random characters, so the
    // body gets shorter and its Content-Length must follow
    assert_eq!(p.len(), 24, "{c}");
    assert!(p.starts_with("SLKP_"), "{c}");
    assert_form_bodies(&s, &out, &p, &c);
});

/// httpclient.py splitpost: the placeholders cut across chunks (and TCP
/// writes 0.2 s apart), chunked and with Content-Length; the python
/// client trusts its default store only.
fn split_body(ctx: &Ctx, s: &Sec) {
    let port = s.port();
    let script = r#"for mode in chunked length; do
  python3 -I "$1" splitpost api.test "$2" "/echo/split-$mode" TOKEN "$mode"
done
"#;
    let out = s.run(ctx, &s.flags(&[]), script, &[&tls_files().client, &port]);
    let c = s.dump(&out);
    out.expect_code(0);
    let p = placeholder(&out, &s.value, &c);
    let statuses: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("status "))
        .collect();
    assert_eq!(statuses, vec!["status 200", "status 200"], "{c}");
    let want = format!("a={0}&b={0}&end", s.value);
    for mode in ["chunked", "length"] {
        let r = s.request(&format!("/echo/split-{mode}"), &c);
        assert_eq!(
            String::from_utf8_lossy(&r.body),
            want,
            "{mode}: the body upstream\n{c}"
        );
        if mode == "length" {
            assert_eq!(
                r.header("content-length"),
                Some(want.len().to_string().as_str()),
                "{c}"
            );
        }
    }
    assert!(!contains(&s.up.raw_all(), p.as_bytes()), "{c}");
}

both!(body_placeholder_split_across_chunks_and_writes, |ctx| {
    split_body(&ctx, &Sec::tls("127.0.0.1"));
});

both!(short_value_split_across_chunks_and_writes, |ctx| {
    split_body(&ctx, &Sec::with(Upstream::tls("127.0.0.1"), short_value()));
});

/// The HTTP/2 upload body for placeholder (or value) `p`: `p` across the
/// 16 KiB DATA frame boundary, twice more later, the last at the very end.
fn h2_body(p: &str) -> String {
    format!(
        "{}{p}{}{p}{}{p}",
        "a".repeat(16379),
        "b".repeat(16000),
        "c".repeat(7)
    )
}

both!(http2_request_body_gets_the_real_value, |ctx| {
    let s = Sec::tls("127.0.0.1");
    let script = r#"python3 -I -c 'import os, sys
p = os.environ["TOKEN"]
open(sys.argv[1], "w").write("a" * 16379 + p + "b" * 16000 + p + "c" * 7 + p)' "$TMPDIR/body"
c --http2 -H 'Content-Type: application/octet-stream' --data-binary "@$TMPDIR/body" "$1"
"#;
    let out = s.run(
        &ctx,
        &s.flags(&[]),
        script,
        &[&s.url("api.test", "/echo/h2body")],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 200"], "{c}");
    assert_eq!(versions(&out), vec!["2"], "curl did not speak HTTP/2\n{c}");
    let p = placeholder(&out, &s.value, &c);
    let r = s.request("/echo/h2body", &c);
    let want = h2_body(&s.value);
    assert!(
        r.body == want.as_bytes(),
        "the body upstream differs ({} bytes, {} wanted; placeholder left: {})\n{c}",
        r.body.len(),
        want.len(),
        contains(&r.body, p.as_bytes())
    );
    assert!(!contains(&s.up.raw_all(), p.as_bytes()), "{c}");
});

/// Deterministic bytes covering every value, CRLFs and header look-alikes.
fn binary_body() -> Vec<u8> {
    let mut v = Vec::new();
    let mut x: u32 = 0x5ec2_e75a;
    for i in 0..200_000u32 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        v.push((x >> 16) as u8 ^ (i as u8));
    }
    v.extend_from_slice(b"\r\n\r\nContent-Length: 0\r\n\r\nSLKP_\0\0end");
    v
}

both!(
    bodies_without_a_placeholder_are_forwarded_untouched,
    |ctx| {
        let s = Sec::tls("127.0.0.1");
        let body = binary_body();
        let file = s.d.join("body.bin");
        fs::write(&file, &body).unwrap();
        let data = format!("@{file}");
        // a binary body (plain, then chunked), and near misses: the
        // placeholder less its last byte, less its first byte, with a byte
        // changed in its middle
        let script = r#"c --http1.1 -H 'Content-Type: application/octet-stream' --data-binary "$1" "$2/plain"
c --http1.1 -H 'Content-Type: application/octet-stream' -H 'Transfer-Encoding: chunked' --data-binary "$1" "$2/chunked"
c --http2 -H 'Content-Type: application/octet-stream' --data-binary "$1" "$2/h2"
head=${TOKEN%????????}; rest=${TOKEN#"$head"}
c -H "X-Near: ${TOKEN%?}" --data-binary "x=${TOKEN%?}&y=${TOKEN#?}&z=${head}#${rest#?}" "$2/near?q=${TOKEN%?}"
"#;
        let out = s.run(
            &ctx,
            &s.flags(&[]),
            script,
            &[&data, &s.url("api.test", "/echo/bin")],
        );
        let c = format!(
            "real value {:?}\n{}\nupstream saw {:?}",
            s.value,
            out.dump(),
            s.up.paths()
        );
        out.expect_code(0);
        assert_eq!(rc_codes(&out), vec!["0 200"; 4], "{c}");
        let p = placeholder(&out, &s.value, &c);
        for path in ["/echo/bin/plain", "/echo/bin/chunked", "/echo/bin/h2"] {
            let r = s.request(path, &c);
            assert!(
                r.body == body,
                "{path}: {} bytes upstream, not the {} sent\n{c}",
                r.body.len(),
                body.len()
            );
        }
        // the Content-Length upload, byte for byte after the head
        let raw = s.up.raw_by_conn();
        let conn = raw
            .values()
            .find(|b| b.starts_with(b"POST /echo/bin/plain "))
            .unwrap_or_else(|| panic!("no connection for /echo/bin/plain\n{c}"));
        let head_end = conn
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("end of head")
            + 4;
        assert!(conn[head_end..] == body[..], "{c}");

        let short = &p[..p.len() - 1];
        let r = s.request("/echo/bin/near", &c);
        let changed = format!("{}#{}", &p[..p.len() - 8], &p[p.len() - 7..]);
        assert_eq!(r.header("x-near"), Some(short), "{c}");
        assert_eq!(r.path, format!("/echo/bin/near?q={short}"), "{c}");
        assert_eq!(
            String::from_utf8_lossy(&r.body),
            format!("x={short}&y={}&z={changed}", &p[1..]),
            "{c}"
        );
        assert!(!contains(&s.up.raw_all(), s.value.as_bytes()), "{c}");
    }
);

both!(secret_headers_limits_substitution, |ctx| {
    let s = Sec::tls("127.0.0.1");
    let script = r#"c -H "Authorization: Bearer $TOKEN" -H "X-Other: $TOKEN" --data-binary "b=$TOKEN" "$1?q=$TOKEN"
"#;
    let url = s.url("api.test", "/echo/limited");
    let out = s.run(
        &ctx,
        &s.flags(&["--secret-headers", "TOKEN=authorization"]),
        script,
        &[&url],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 200"], "{c}");
    let p = placeholder(&out, &s.value, &c);
    let r = s.request("/echo/limited", &c);
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {}", s.value).as_str()),
        "{c}"
    );
    assert_eq!(r.header("x-other"), Some(p.as_str()), "{c}");
    assert_eq!(String::from_utf8_lossy(&r.body), format!("b={p}"), "{c}");
    assert_eq!(r.path, format!("/echo/limited?q={p}"), "{c}");
    let raw = s.up.raw_all();
    assert_eq!(
        raw.windows(s.value.len())
            .filter(|w| *w == s.value.as_bytes())
            .count(),
        1,
        "the value went out somewhere else than Authorization\n{c}"
    );

    // twin: without --secret-headers, all four places get the value
    let out = s.run(&ctx, &s.flags(&[]), script, &[&format!("{url}2")]);
    let c = s.dump(&out);
    out.expect_code(0);
    let r = s.request("/echo/limited2", &c);
    let v = &s.value;
    assert_eq!(r.header("x-other"), Some(v.as_str()), "{c}");
    assert_eq!(String::from_utf8_lossy(&r.body), format!("b={v}"), "{c}");
    assert_eq!(r.path, format!("/echo/limited2?q={v}"), "{c}");
});
