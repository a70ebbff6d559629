//! The proxy's per-request timing trace (SANDLOCK_PROXY_TRACE, for
//! bench/http.sh): one line per request with the stages' times and
//! threads, and never a byte of the request itself.

use super::*;

/// Marks the request carries in its target and a header: none may reach
/// the trace.
const PATH_MARK: &str = "tracepathmark";
const HEADER_MARK: &str = "traceheadermark";

/// The trace of a run of curl fetching `n` URLs over one connection (as
/// `proto`: `--http1.1` or `--http2`), or `None` when `trace` is false.
fn traced_run(ctx: &Ctx, proto: &str, n: usize, trace: bool) -> (Out, Option<String>, String) {
    let s = Setup::tls("127.0.0.1");
    let dir = s.d.join("trace");
    fs::create_dir(&dir).unwrap();
    // The supervisor runs as the test's user, uid 65534 in one variant.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    let file = format!("{dir}/trace.tsv");
    let flags = s.flags(&["--http-allow", "GET api.test/*"]);
    let url = s.url("api.test", &format!("/echo/{PATH_MARK}"));
    let urls: Vec<&str> = std::iter::repeat_n(url.as_str(), n).collect();
    let header = format!("X-Mark: {HEADER_MARK}");
    // The line of a request is written once its response is out; the
    // workload lingers so the last one is written before sandlock exits.
    let mut cmd = sv(&["sh", "-c", r#""$@"; s=$?; sleep 0.3; exit $s"#, "sh"]);
    cmd.extend(curl(Some(&s.ca), &[proto, "-H", &header], &urls));
    let f: Vec<&str> = flags.iter().map(String::as_str).collect();
    let c: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let env: &[(&str, &str)] = if trace {
        &[("SANDLOCK_PROXY_TRACE", &file)]
    } else {
        &[]
    };
    let out = ctx.sl_env(run_args(&f, &c), env);
    let dump = s.dump(&out);
    (out, fs::read_to_string(&file).ok(), dump)
}

/// Asserts `trace` holds the header and `n` request lines of `proto`, each
/// with a time for every stage a forwarded request passes, and no request
/// bytes.
#[track_caller]
fn assert_trace(trace: &str, proto: &str, n: usize, c: &str) {
    let mut lines = trace.lines();
    let header = lines.next().unwrap_or_default();
    assert!(header.starts_with("# proto parsed checked"), "{trace}\n{c}");
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(' ').collect()).collect();
    assert_eq!(rows.len(), n, "{trace}\n{c}");
    for r in &rows {
        // proto, 7 stages, threads, hops
        assert_eq!(r.len(), 10, "{r:?}\n{c}");
        assert_eq!(r[0], proto, "{r:?}\n{c}");
        let times: Vec<f64> = r[1..8]
            .iter()
            .map(|t| {
                t.parse()
                    .unwrap_or_else(|_| panic!("stage {t:?} of {r:?}\n{c}"))
            })
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{r:?}\n{c}");
        assert!(
            r[8].split(',').all(|t| t.parse::<u32>().is_ok()),
            "{r:?}\n{c}"
        );
        assert!(r[9].parse::<u32>().is_ok(), "{r:?}\n{c}");
    }
    for mark in [PATH_MARK, HEADER_MARK, "api.test", "echo", "GET"] {
        assert!(!trace.contains(mark), "{mark} in the trace:\n{trace}\n{c}");
    }
}

both!(
    proxy_trace_has_a_line_per_request_and_no_request_bytes,
    |ctx| {
        for (flag, proto) in [("--http1.1", "h1"), ("--http2", "h2")] {
            let (out, trace, c) = traced_run(&ctx, flag, 3, true);
            out.expect_code(0);
            assert_eq!(
                resps(&out).iter().filter(|r| r.code == 200).count(),
                3,
                "{c}"
            );
            let trace = trace.unwrap_or_else(|| panic!("no trace file\n{c}"));
            assert_trace(&trace, proto, 3, &c);
        }
    }
);

both!(proxy_trace_is_off_without_the_variable, |ctx| {
    let (out, trace, c) = traced_run(&ctx, "--http1.1", 2, false);
    out.expect_code(0);
    assert_eq!(
        resps(&out).iter().filter(|r| r.code == 200).count(),
        2,
        "{c}"
    );
    assert_eq!(trace, None, "{c}");
});
