//! Encoded request bodies (gzip, zstd), also beyond the memory bound, and
//! bodies in a coding sandlock cannot read.

use super::*;

/// `data` decoded from `coding` (gzip, deflate, zstd); panics when it is
/// not valid in it.
pub(super) fn decoded(coding: &str, data: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    let r = match coding {
        "gzip" => flate2::read::MultiGzDecoder::new(data).read_to_end(&mut out),
        "deflate" => flate2::read::ZlibDecoder::new(data).read_to_end(&mut out),
        "zstd" => zstd::stream::read::Decoder::new(data).and_then(|mut d| d.read_to_end(&mut out)),
        other => panic!("no decoder for {other}"),
    };
    if let Err(e) = r {
        panic!("not valid {coding} ({} bytes): {e}", data.len());
    }
    out
}

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

/// Encoded bodies above the 4 MiB memory bound, the placeholder at both
/// ends: gzip of 5 MiB of random bytes in base64 (which hardly
/// compresses), and zstd of 34 MiB of random bytes (above 32 MiB, which
/// sandlock used to forward without looking); and a gzip body without a
/// placeholder. A short value, so the content's length changes too. The
/// workload keeps its plain texts and the clean gzip in $OUT for the test
/// to compare, and prints the supervisor's peak RSS before and after the
/// zstd body (see spool.rs).
const LARGE_SCRIPT: &str = r#"out="$1"; url="$2"
sup=$(awk '/^PPid:/{print $2}' /proc/$PPID/status)
hwm() { echo "HWM$1 $(awk '/^VmHWM:/{print $2}' /proc/$sup/status)"; }
{ printf 'a=%s&' "$TOKEN"; head -c 5242880 /dev/urandom | base64 -w0; printf '&z=%s' "$TOKEN"; } > "$out/gzip"
gzip -c "$out/gzip" > "$TMPDIR/gzip.gz"
{ printf 'a=%s&' "$TOKEN"; head -c 35651584 /dev/urandom; printf '&z=%s' "$TOKEN"; } > "$out/zstd"
zstd -q -c "$out/zstd" > "$TMPDIR/zstd.zst"
head -c 5242880 /dev/urandom | base64 -w0 | gzip -c > "$out/clean.gz"
c -H 'Content-Encoding: gzip' --data-binary "@$TMPDIR/gzip.gz" "$url/save/gzip"
c -H 'Content-Encoding: gzip' --data-binary "@$out/clean.gz" "$url/save/clean"
hwm 0
c -H 'Content-Encoding: zstd' --data-binary "@$TMPDIR/zstd.zst" "$url/save/zstd"
hwm 1
"#;

/// `hay` with every `from` replaced by `to`.
fn replace_bytes(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

both!(
    large_encoded_request_bodies_are_spooled_and_inspected,
    |ctx| {
        let save = TempDir::new("sink");
        let up = Upstream::start_with("127.0.0.1", true, &["--save-dir", &save.s()]);
        let s = Sec::with(up, short_value());
        let outdir = s.d.dir("out", 0o777);
        let out = s.run(
            &ctx,
            &s.flags(&["-w", &outdir, "-r", "/proc"]),
            LARGE_SCRIPT,
            &[&outdir, &s.url("api.test", "")],
        );
        let c = s.dump(&out);
        out.expect_code(0);
        assert_eq!(rc_codes(&out), vec!["0 200"; 3], "{c}");
        let p = placeholder(&out, &s.value, &c);
        for (coding, least) in [("gzip", 4 << 20), ("zstd", 32 << 20)] {
            let plain = fs::read(format!("{outdir}/{coding}")).unwrap();
            let want = replace_bytes(&plain, p.as_bytes(), s.value.as_bytes());
            assert!(
                want.starts_with(format!("a={}&", s.value).as_bytes()),
                "{c}"
            );
            assert!(want.ends_with(format!("&z={}", s.value).as_bytes()), "{c}");
            let got = fs::read(save.join(coding)).unwrap_or_default();
            assert!(got.len() > least, "{coding}: {} bytes\n{c}", got.len());
            let r = s.request(&format!("/save/{coding}"), &c);
            assert_eq!(r.header("content-encoding"), Some(coding), "{c}");
            assert_eq!(
                r.header("content-length"),
                Some(got.len().to_string().as_str()),
                "{coding}\n{c}"
            );
            assert!(
                decoded(coding, &got) == want,
                "{coding}: the decoded body upstream is not the substituted one\n{c}"
            );
        }
        // without a placeholder: the very bytes the workload sent
        let clean = fs::read(format!("{outdir}/clean.gz")).unwrap();
        assert!(clean.len() > 4 << 20, "{c}");
        assert!(
            fs::read(save.join("clean")).unwrap_or_default() == clean,
            "a clean gzip body was changed\n{c}"
        );
        // 34 MiB decoded, rewritten and encoded again in bounded memory:
        // well under the body's size. The decoder's window, the encoder's
        // state and the 4 MiB spool buffer come to 5-12 MiB; which tokio
        // thread (and so which malloc arena) runs each step adds a few MiB
        // more now and then (up to 18 MiB in 40 runs).
        let (before, after) = (stdout_u64(&out, "HWM0 ", &c), stdout_u64(&out, "HWM1 ", &c));
        assert!(
            after <= before + (24 << 10),
            "peak RSS grew from {before} KiB to {after} KiB with a 34 MiB zstd body\n{c}"
        );
    }
);

// A body in a coding sandlock cannot read goes as it is (its placeholder
// too) and sandlock says so; the same body as identity gets the value.
both!(
    request_body_in_an_unknown_coding_is_forwarded_and_warned,
    |ctx| {
        let s = Sec::tls("127.0.0.1");
        let script = r#"c -H 'Content-Encoding: compress' --data-binary "v=$TOKEN" "$1/compress"
c --data-binary "v=$TOKEN" "$1/identity"
"#;
        let out = s.run(&ctx, &s.flags(&[]), script, &[&s.url("api.test", "/echo")]);
        let c = s.dump(&out);
        out.expect_code(0);
        assert_eq!(rc_codes(&out), vec!["0 200", "0 200"], "{c}");
        let p = placeholder(&out, &s.value, &c);
        let r = s.request("/echo/compress", &c);
        assert_eq!(r.body, format!("v={p}").into_bytes(), "{c}");
        let line = format!(
            "sandlock: warning: http POST https://api.test:{}/echo/compress from pid ",
            s.port()
        );
        let warned: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.starts_with(&line))
            .collect();
        assert_eq!(warned.len(), 1, "{c}");
        assert!(
        warned[0].ends_with(
            ": request body in content-coding 'compress' not searched for placeholders; forwarded unchanged"
        ),
        "{c}"
    );
        // twin: as identity, the same body carries the value
        let r = s.request("/echo/identity", &c);
        assert_eq!(r.body, format!("v={}", s.value).into_bytes(), "{c}");
    }
);

// ---------------------------------------------------------------------------
// A decompression bomb
// ---------------------------------------------------------------------------

/// 300 MiB of zeros gzipped (about 300 KB), posted to $1 and $2.
const BOMB_SCRIPT: &str = r#"head -c 300M /dev/zero | gzip -9 -c > "$TMPDIR/bomb.gz"
wc -c < "$TMPDIR/bomb.gz" | sed 's/^/SIZE /'
c -H 'Content-Encoding: gzip' --data-binary "@$TMPDIR/bomb.gz" "$1"
c -H 'Content-Encoding: gzip' --data-binary "@$TMPDIR/bomb.gz" "$2"
"#;

both!(gzip_bomb_to_a_secret_host_is_refused, |ctx| {
    // For api.test, where the secret may go, the body must be decoded to
    // look, and it expands past 256 MiB: refused with 400, never sent. For
    // other.test (no secret bound) it is forwarded untouched.
    let s = Sec::tls("127.0.0.1");
    let allow = format!("other.test:{}", s.port());
    let flags = s.flags(&["--add-host", "other.test:127.0.0.1", "--net-allow", &allow]);
    let out = s.run(
        &ctx,
        &flags,
        BOMB_SCRIPT,
        &[
            &s.url("api.test", "/echo/bomb"),
            &s.url("other.test", "/echo/bomb-elsewhere"),
        ],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 400", "0 200"], "{c}");
    assert!(
        out.stderr.contains("over 256 MiB"),
        "the refusal says why\n{c}"
    );
    let size = stdout_u64(&out, "SIZE ", &c) as usize;
    assert!(size < 1 << 20, "a bomb is small: {size}");
    let paths = s.up.paths();
    assert_eq!(paths, vec!["/echo/bomb-elsewhere".to_string()], "{c}");
    let r = s.request("/echo/bomb-elsewhere", &c);
    assert_eq!(r.body.len(), size, "forwarded untouched\n{c}");
});
