//! Bodies whose length a substitution changes (a short value: its
//! placeholder is longer) are held and sent with their fixed
//! Content-Length, never chunked and never truncated, however large:
//! beyond sandlock's in-memory bound they go to a private temporary file,
//! so sandlock's own memory does not grow with them.

use super::*;

/// Where the placeholder is put in a generated body of `n` bytes: the
/// start, across the first 256 KiB batch, across the 4 MiB memory bound,
/// the middle and the very end.
fn spots(n: usize, ph_len: usize) -> Vec<usize> {
    let mut v = vec![0, (256 << 10) - 7, (4 << 20) - 10, n / 2, n - ph_len];
    v.retain(|&at| at + ph_len <= n);
    v.sort_unstable();
    v.dedup();
    v
}

/// What the upstream must receive: the generated body with `value` in
/// place of each placeholder.
fn expected(n: usize, ph_len: usize, value: &[u8]) -> Vec<u8> {
    let base: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
    let mut out = Vec::with_capacity(n);
    let mut from = 0;
    for at in spots(n, ph_len) {
        out.extend_from_slice(&base[from..at]);
        out.extend_from_slice(value);
        from = at + ph_len;
    }
    out.extend_from_slice(&base[from..]);
    out
}

/// A 40 MiB upload (HTTP/1.1, curl waits for `100 Continue`) and a
/// 6 MiB one (HTTP/2 from the workload), both above the 4 MiB memory
/// bound, after a 5 MiB warm-up; the supervisor's peak RSS (VmHWM of
/// the workload's grandparent: the reaper's parent) is printed before and
/// after the 40 MiB one. `gen NAME N SPOTS` writes a body: `n` bytes of
/// the upstream's byte pattern (byte i = i % 251) with `$TOKEN` at each
/// spot. Arguments: URL, then the spots of each body.
const SCRIPT: &str = r#"sup=$(awk '/^PPid:/{print $2}' /proc/$PPID/status)
echo "SUP $(cat /proc/$sup/comm) $(cat /proc/$sup/task/*/comm | grep -c '^sandlock-proxy')"
hwm() { echo "HWM$1 $(awk '/^VmHWM:/{print $2}' /proc/$sup/status)"; }
gen() {
  python3 -I - "$TMPDIR/$1" "$2" $3 <<'PY'
import os, sys
path, n = sys.argv[1], int(sys.argv[2])
ph = os.environ["TOKEN"].encode()
body = bytearray((bytes(range(251)) * (n // 251 + 1))[:n])
for at in map(int, sys.argv[3:]):
    body[at:at + len(ph)] = ph
with open(path, "wb") as f:
    f.write(body)
PY
}
gen warm 5242880 "$2"
gen big 41943040 "$3"
gen mid 6291456 "$4"
c --http1.1 -H 'Content-Type: application/octet-stream' --data-binary "@$TMPDIR/warm" "$1/save/warm"
hwm 0
c --http1.1 -H 'Content-Type: application/octet-stream' --data-binary "@$TMPDIR/big" "$1/save/big"
hwm 1
c --http2 -H 'Content-Type: application/octet-stream' --data-binary "@$TMPDIR/mid" "$1/save/mid"
"#;

const WARM: usize = 5 << 20;
const BIG: usize = 40 << 20;
const MID: usize = 6 << 20;
/// What a 40 MiB body may add to sandlock's peak RSS over a 5 MiB one.
/// Holding it in memory would add at least its 40 MiB; a spooled body
/// adds a few MiB of buffers at most.
const HWM_GROWTH_KIB: u64 = 16 << 10;

fn spots_arg(n: usize) -> String {
    spots(n, 24)
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

both!(
    large_length_changing_body_is_spooled_and_sent_with_its_length,
    |ctx| {
        let save = TempDir::new("sink");
        let up = Upstream::start_with("127.0.0.1", true, &["--save-dir", &save.s()]);
        let s = Sec::with(up, short_value());
        let (warm, big, mid) = (spots_arg(WARM), spots_arg(BIG), spots_arg(MID));
        let flags = s.flags(&["-r", "/proc"]);
        let url = s.url("api.test", "");
        let out = s.run(&ctx, &flags, SCRIPT, &[&url, &warm, &big, &mid]);
        let c = s.dump(&out);
        out.expect_code(0);
        let p = placeholder(&out, &s.value, &c);
        assert_eq!(p.len(), 24, "a short value's placeholder is longer\n{c}");
        assert_eq!(rc_codes(&out), vec!["0 200"; 3], "{c}");
        assert_eq!(versions(&out), vec!["1.1", "1.1", "2"], "{c}");

        let entries = s.up.entries();
        for (name, n) in [("warm", WARM), ("big", BIG), ("mid", MID)] {
            let want = expected(n, p.len(), s.value.as_bytes());
            let path = format!("/save/{name}");
            let r = s.request(&path, &c);
            assert_eq!(
                r.header("content-length"),
                Some(want.len().to_string().as_str()),
                "{path}: the fixed length, not the workload's\n{c}"
            );
            assert_eq!(
                r.header("transfer-encoding"),
                None,
                "{path}: went upstream chunked\n{c}"
            );
            let logged = entries
                .iter()
                .find(|e| e.get("path").and_then(Value::as_str) == Some(path.as_str()))
                .and_then(|e| e.get("body_len"))
                .cloned();
            assert!(
                logged.as_ref().and_then(Value::as_u64) == Some(want.len() as u64),
                "{path}: body_len {logged:?}, want {}\n{c}",
                want.len()
            );
            let got = fs::read(save.join(name)).unwrap_or_default();
            assert_eq!(got.len(), want.len(), "{path}\n{c}");
            assert!(got == want, "{path}: the bytes upstream differ\n{c}");
            assert!(!contains(&got, p.as_bytes()), "{path}\n{c}");
        }

        // Memory: the supervisor (the process running the proxy's threads)
        // did not grow with the body.
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with("SUP sandlock ") && !l.ends_with(" 0")),
            "the workload's grandparent is not sandlock's supervisor\n{c}"
        );
        let (before, after) = (stdout_u64(&out, "HWM0 ", &c), stdout_u64(&out, "HWM1 ", &c));
        assert!(
            after <= before + HWM_GROWTH_KIB,
            "peak RSS grew from {before} KiB to {after} KiB with a 40 MiB body\n{c}"
        );
        assert_no_value_in_output(&out, &s.value, &c);
    }
);
