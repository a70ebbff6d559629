//! The value stays out of everything the workload and the user can read,
//! and out of echoed responses.

use super::*;

// ---------------------------------------------------------------------------
// The value stays out of everything the workload and the user can read
// ---------------------------------------------------------------------------

/// Dumps into $1/dump everything the workload can read that could hold the
/// value: its environment, /proc/*/environ and cmdline of every process it
/// can see, and the files under /etc and its TMPDIR; reports whether it
/// could open sandlock's (its parent's) environ and memory. Then sends
/// TOKEN to api.test in a header, Basic credentials and a body (to
/// endpoints that do not reflect them), and OTHER's placeholder to
/// api.test, where OTHER is not bound.
const LEAK_SCRIPT: &str = r#"out="$1"; url="$2"
{
  env
  cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null
  find /etc "$TMPDIR" -type f -readable -exec cat {} + 2>/dev/null
} > "$out/dump"
echo "supervisor $(cat /proc/$PPID/comm 2>/dev/null)"
if cat /proc/$PPID/environ > /dev/null 2>&1; then echo "PARENT_ENVIRON readable"; else echo "PARENT_ENVIRON denied"; fi
python3 -I -c 'import sys
try:
    with open("/proc/%s/mem" % sys.argv[1], "rb") as f:
        pass
    print("PARENT_MEM readable")
except OSError as e:
    print("PARENT_MEM denied", e.errno)' "$PPID"
c -H "Authorization: Bearer $TOKEN" "$url/bytes?n=3"
c -u "x:$TOKEN" "$url/bytes?n=4"
c --data-binary "v=$TOKEN" "$url/bytes?n=5"
c -H "Authorization: Bearer $OTHER" "$url/bytes?n=6"
"#;

both!(value_is_nowhere_the_workload_or_the_user_can_read, |ctx| {
    let s = Sec::tls("127.0.0.1");
    let other_value = long_value();
    let outdir = s.d.dir("out", 0o777);
    let audit = s.d.join("audit.jsonl");
    let other = "OTHER=env:OTHER_REAL@other.test";
    let flags = s.flags(&[
        "--add-host",
        "other.test:127.0.0.1",
        "--secret",
        other,
        "--audit",
        &audit,
        "-r",
        "/proc",
        "-w",
        &outdir,
    ]);
    let out = s.run_env(
        &ctx,
        &flags,
        &[("OTHER_REAL", &other_value)],
        LEAK_SCRIPT,
        &[&outdir, &format!("https://api.test:{}", s.port())],
    );
    let audit_text = fs::read_to_string(&audit).unwrap_or_default();
    let c = format!("{}\n--- audit ---\n{audit_text}", s.dump(&out));
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 200"; 4], "{c}");
    let p = placeholder(&out, &s.value, &c);

    // sandlock's own environment holds the values (it read them from
    // there): the workload can read neither it nor sandlock's memory
    assert!(
        out.stdout.lines().any(|l| l == "supervisor sandlock"),
        "the workload's parent is not sandlock\n{c}"
    );
    assert!(
        out.stdout.lines().any(|l| l == "PARENT_ENVIRON denied"),
        "{c}"
    );
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("PARENT_MEM denied")),
        "{c}"
    );

    let dump = fs::read(format!("{outdir}/dump")).unwrap_or_default();
    assert!(
        dump.len() > 1000 && contains(&dump, format!("TOKEN={p}").as_bytes()),
        "the workload's dump is not what it should be ({} bytes)\n{c}",
        dump.len()
    );
    // every form of either value: raw, and base64 as in the Basic header
    for v in [&s.value, &other_value] {
        let forms = [v.to_string(), b64encode(format!("x:{v}").as_bytes())];
        for f in &forms {
            assert!(
                !contains(&dump, f.as_bytes()),
                "the workload found {f:?} in what it can read\n{c}"
            );
            assert!(!out.stdout.contains(f.as_str()), "stdout has {f:?}\n{c}");
            assert!(!out.stderr.contains(f.as_str()), "stderr has {f:?}\n{c}");
            assert!(!audit_text.contains(f.as_str()), "audit has {f:?}\n{c}");
        }
    }

    // twin: the value did go out on the wire where it should
    let reqs = s.up.requests();
    let by_n = |n: &str| {
        reqs.iter()
            .find(|r| r.path == format!("/bytes?n={n}"))
            .unwrap_or_else(|| panic!("no request /bytes?n={n}\n{c}"))
    };
    assert_eq!(
        by_n("3").header("authorization"),
        Some(format!("Bearer {}", s.value).as_str()),
        "{c}"
    );
    let basic = format!("Basic {}", b64encode(format!("x:{}", s.value).as_bytes()));
    assert_eq!(
        by_n("4").header("authorization"),
        Some(basic.as_str()),
        "{c}"
    );
    assert_eq!(
        String::from_utf8_lossy(&by_n("5").body),
        format!("v={}", s.value),
        "{c}"
    );
    // OTHER is not bound to api.test: its placeholder went out as is
    let other_ph = by_n("6")
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string();
    assert_eq!(other_ph.len(), other_value.len(), "{c}");
    assert_ne!(other_ph, other_value, "{c}");
    assert!(!contains(&s.up.raw_all(), other_value.as_bytes()), "{c}");
});

// ---------------------------------------------------------------------------
// Response scrubbing: an upstream that echoes the request back cannot hand
// the workload its secret
// ---------------------------------------------------------------------------

/// Prints each echoed response whole (the upstream's /echo answers with the
/// request's headers and its body in base64).
const ECHO_SCRIPT: &str = r#"curl -q -sS -H "Authorization: Bearer $TOKEN" -H "X-Pct: a%20$TOKEN" --data-binary "v=$TOKEN" "$1/bearer"
echo
curl -q -sS -u "x-access-token:$TOKEN" "$1/basic"
echo
curl -q -sS -u "xy:$TOKEN" "$1/basic2"
echo
"#;

both!(echoed_responses_are_scrubbed_of_the_value, |ctx| {
    use base64::Engine;
    let s = Sec::tls("127.0.0.1");
    let base = s.url("api.test", "/echo");
    let out = s.run(&ctx, &s.flags(&[]), ECHO_SCRIPT, &[&base]);
    let c = s.dump(&out);
    out.expect_code(0);
    let p = placeholder(&out, &s.value, &c);
    // The upstream did get the real value, in every form
    assert_value_upstream(&s, "/echo/bearer", &c);
    // ...but nothing the workload read back holds it: not raw, not in the
    // echoed base64 of the body or of Basic credentials
    assert_no_value_in_output(&out, &s.value, &c);
    assert!(
        out.stdout.contains(&p),
        "the placeholder is echoed instead\n{c}"
    );
    let engine = base64::engine::general_purpose::STANDARD;
    let middle = &s.value[3..s.value.len() - 3];
    for token in out
        .stdout
        .split(|ch: char| !(ch.is_ascii_alphanumeric() || "+/=".contains(ch)))
        .filter(|t| t.len() >= 8)
    {
        if let Ok(decoded) = engine.decode(token) {
            assert!(
                !contains(&decoded, middle.as_bytes()),
                "base64 {token} in the response decodes to the value\n{c}"
            );
        }
    }
});
