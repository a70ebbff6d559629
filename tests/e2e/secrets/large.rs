//! A 1 GiB upload with placeholders scattered through it arrives exact,
//! substituted, while sandlock's own memory stays bounded: the body is
//! streamed through the proxy, never held.
//!
//! Nothing of the GiB is stored anywhere: bigbody.py generates it inside
//! the sandbox (with the placeholder) and, on the host, computes the sha256
//! of what must arrive (the same body with the real value); upstream.py's
//! /sink streams it away, counting the real value and the placeholder and
//! hashing what it received.
//!
//! One run, as the invoking user only: moving a GiB through the debug
//! build takes seconds, and which user runs sandlock does not change how
//! the proxy streams.

use super::*;
use crate::common::sink::*;

/// The body's size.
const SIZE: u64 = 1 << 30;
/// sandlock's peak RSS must stay below this. Generous, for a debug build
/// under a parallel test run; what matters is that it is nowhere near the
/// body's size. (The benchmark, bench/http.sh, holds the release build to
/// the 64 MiB target.)
const PEAK_LIMIT_KIB: u64 = 128 << 10;
/// A safety net only: the upload takes seconds.
const LIMIT: std::time::Duration = std::time::Duration::from_secs(240);

/// Streams bigbody.py's body ($1 SIZE, with the placeholder) through curl
/// to $3 (`-T -`: the length is not known upfront, so it goes as HTTP/2
/// DATA frames and upstream chunked), telling /sink the placeholder in hex
/// (raw, it would be substituted in the URL as well). Prints "R <http
/// code> <http version> <bytes uploaded>".
const UPLOAD: &str = r#"ph=$(printf %s "$TOKEN" | od -An -tx1 | tr -d ' \n')
python3 "$1" "$2" "$TOKEN" |
  curl -q -sS -T - -o /dev/null -w 'R %{http_code} %{http_version} %{size_upload}\n' "$3?count=placeholder:$ph"
"#;

#[test]
fn one_gib_upload_with_placeholders_arrives_exact_in_bounded_memory() {
    let ctx = Ctx::invoker();
    let value = long_value();
    let count = format!("value:{}", hex(&value));
    let s = Sec::with(
        Upstream::start_with("127.0.0.1", true, &["--sink-count", &count]),
        value.clone(),
    );
    let want = bigbody(SIZE, &value);
    // the body really is scattered with tokens: every 3 MiB, plus the ends
    assert!(want.tokens > 300, "{want:?}");

    let fixtures = fixdir();
    let flags = s.flags(&["-r", &fixtures, "-t", "200"]);
    let url = s.url("api.test", "/sink");
    let cmd = s.command(
        &ctx,
        &flags,
        &[],
        UPLOAD,
        &[&bigbody_py(), &SIZE.to_string(), &url],
    );
    // VmHWM only grows, so the last value read before sandlock exits is
    // its peak over the whole run.
    let mut peak_kib = None;
    let out = run_cmd_watch(cmd, None, LIMIT, |pid| {
        if let Some(v) = proc_kib(pid, "VmHWM") {
            peak_kib = Some(v);
        }
    });
    let c = s.dump(&out);
    out.expect_code(0);
    let p = placeholder(&out, &value, &c);
    assert_eq!(p.len(), value.len(), "{c}");
    assert_no_value_in_output(&out, &value, &c);
    let r: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with("R ")).collect();
    assert_eq!(r, [format!("R 200 2 {SIZE}")], "{c}");

    let sunk = s.up.sunk();
    assert_eq!(sunk.len(), 1, "{c}");
    let got = &sunk[0];
    assert_eq!(got.method, "PUT", "{c}");
    assert_eq!(got.header("transfer-encoding"), Some("chunked"), "{c}");
    assert_eq!(got.header("content-length"), None, "{c}");
    assert_eq!(got.len, SIZE, "{c}");
    assert_eq!(got.count("value"), want.tokens, "{c}");
    assert_eq!(got.count("placeholder"), 0, "{c}");
    assert_eq!(got.sha256, want.sha256, "{c}");

    let peak = peak_kib.unwrap_or_else(|| panic!("never read sandlock's VmHWM\n{c}"));
    assert!(
        peak < PEAK_LIMIT_KIB,
        "sandlock's peak RSS was {peak} KiB (limit {PEAK_LIMIT_KIB})\n{c}"
    );
}
