//! gzip request bodies.

use super::*;

// ---------------------------------------------------------------------------
// gzip request bodies: decoded to look, re-encoded only when substituted
// ---------------------------------------------------------------------------

/// Three gzip POSTs: one holding the placeholder, one without it, and a
/// corrupt one.
const GZIP_SCRIPT: &str = r#"printf 'v=%s&w=%s' "$TOKEN" "$TOKEN" | gzip -c > "$TMPDIR/with.gz"
printf 'nothing secret here, just text to compress' | gzip -c > "$TMPDIR/without.gz"
printf '\037\213\010\000garbage-not-deflate' > "$TMPDIR/corrupt.gz"
for f in with without corrupt; do
  c -H 'Content-Encoding: gzip' --data-binary "@$TMPDIR/$f.gz" "$1/$f-body"
done
cat "$TMPDIR/without.gz" | base64 -w0; echo
"#;

fn gunzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new("gzip")
        .arg("-dc")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "not valid gzip");
    out.stdout
}

both!(gzip_bodies_are_decoded_to_look, |ctx| {
    use base64::Engine;
    let s = Sec::tls("127.0.0.1");
    let base = s.url("api.test", "/echo/gz");
    let out = s.run(&ctx, &s.flags(&[]), GZIP_SCRIPT, &[&base]);
    let c = s.dump(&out);
    out.expect_code(0);
    // with a placeholder: valid gzip whose content holds the real value
    // twice; without: byte-identical; corrupt: refused with 400
    assert_eq!(rc_codes(&out), vec!["0 200", "0 200", "0 400"], "{c}");
    let with = s.request("/echo/gz/with-body", &c);
    let plain = gunzip(&with.body);
    assert_eq!(
        plain,
        format!("v={}&w={}", s.value, s.value).into_bytes(),
        "{c}"
    );
    assert_eq!(
        with.header("content-length"),
        Some(with.body.len().to_string().as_str()),
        "{c}"
    );
    let sent = out
        .stdout
        .lines()
        .last()
        .map(|l| base64::engine::general_purpose::STANDARD.decode(l).unwrap())
        .unwrap();
    let without = s.request("/echo/gz/without-body", &c);
    assert_eq!(
        without.body, sent,
        "a body without a placeholder must arrive byte-identical\n{c}"
    );
    assert!(
        s.up.requests()
            .iter()
            .all(|r| !r.path.ends_with("/corrupt-body")),
        "the corrupt body never reaches the upstream\n{c}"
    );
    assert!(out.stderr.contains("cannot decode the request body"), "{c}");
});
