//! `--http-bypass` follows the destination, not the SNI: a workload that
//! names a bypassed host in its ClientHello while connecting to the address
//! of an intercepted one is intercepted (and its requests meet the rules),
//! and a bypassed name that a path rule also covers is refused at start.
//!
//! Two upstreams: api.test on 127.0.0.1 (intercepted, `GET
//! api.test/readonly` only) and other.test on 127.0.0.2 (bypassed, reached
//! through `--net-allow`). The upstreams' certificate names both, so a
//! spliced connection verifies against the tests' private root alone.

use super::*;

/// `curl -k -X DELETE`: the attacker does not care whose certificate it
/// gets. $1: port of api.test's upstream, $2: other.test's, $3: the
/// private root of the upstreams.
const NAME_ELSEWHERE: &str = r#"pa=$1; pb=$2; root=$3
w='\n@@%{http_code} %{num_connects}@@\n'
curl -q -sS -k -X DELETE --resolve "other.test:$pa:127.0.0.1" -w "$w" "https://other.test:$pa/admin"
curl -q -sS --cacert "$root" -X DELETE -w "$w" "https://other.test:$pb/admin""#;

both!(https_bypass_follows_the_destination_not_the_sni, |ctx| {
    let api = Setup::tls("127.0.0.1");
    let other = Upstream::tls("127.0.0.2");
    let f = tls_files();
    let flags = api.flags(&[
        "--add-host",
        "other.test:127.0.0.2",
        "--http-port",
        &other.port_s(),
        "--net-allow",
        &format!("other.test:{}", other.port),
        "--http-allow",
        "GET api.test/readonly",
        "--http-bypass",
        "other.test",
    ]);
    let out = run(
        &ctx,
        &flags,
        &sh(NAME_ELSEWHERE, &[&api.port(), &other.port_s(), &f.root_ca]),
    );
    let c = format!("{}\n{}", api.dump(&out), other.dump());
    out.expect_code(0);
    let rs = resps(&out);
    assert_eq!(rs.len(), 2, "{c}");

    // The attack: SNI other.test (bypassed) sent to api.test's address.
    // Intercepted, so the rules apply: no rule allows other.test at all.
    assert_sandlock_reply(&rs[0], 403, "no --http-allow rule matches", &out, &c);
    assert!(
        rs[0].body.contains("DELETE https://other.test:"),
        "{:?}\n{c}",
        rs[0]
    );
    assert_upstream_untouched(&api, &c);
    let warning = "--http-bypass does not apply: SNI other.test on a connection to 127.0.0.1, \
                   an address never pinned or resolved for that name; intercepted";
    assert!(out.stderr.contains(warning), "no warning\n{c}");

    // Twin: the same name at its own address is spliced, unread: the
    // private root verifies the upstream's own certificate, and the
    // DELETE reached it as sent.
    assert_eq!(
        (rs[1].code, rs[1].body.as_str()),
        (200, "ok /admin\n"),
        "{c}"
    );
    let reqs = other.requests();
    assert_eq!(reqs.len(), 1, "{c}");
    assert_eq!(reqs[0].method, "DELETE", "{c}");
    assert_eq!(reqs[0].path, "/admin", "{c}");
    assert_eq!(
        reqs[0].header("host"),
        Some(format!("other.test:{}", other.port).as_str()),
        "{c}"
    );
    let tls = other.events("tls");
    assert_eq!(tls.len(), 1, "{c}");
    assert_eq!(
        tls[0].get("sni").and_then(Value::as_str),
        Some("other.test"),
        "{c}"
    );
});

/// `sandlock run FLAGS -- touch MARKER`: the exit code, stderr, and
/// whether the command ran.
fn starts(ctx: &Ctx, flags: &[&str]) -> (Out, bool) {
    let d = TempDir::new("bypass-start");
    let marker = d.join("ran");
    let mut f: Vec<&str> = flags.to_vec();
    let dir = d.s();
    f.extend(["-w", &dir]);
    let out = ctx.sl(run_args(&f, &["/bin/sh", "-c", &format!("touch {marker}")]));
    let ran = std::path::Path::new(&marker).exists();
    (out, ran)
}

both!(
    bypass_of_a_host_with_path_rules_is_refused_at_start,
    |ctx| {
        let base = [
            "--add-host",
            "api.test:127.0.0.1",
            "--add-host",
            "other.test:127.0.0.2",
        ];
        for (rule, bypass, refused) in [
        (
            ["--http-allow", "GET api.test/readonly"],
            "api.test",
            "invalid value 'api.test' for '--http-bypass': --http-allow 'GET api.test/readonly' \
             covers the same host",
        ),
        (
            ["--http-deny", "* *.other.test"],
            "other.test",
            "invalid value 'other.test' for '--http-bypass': --http-deny '* *.other.test' covers \
             the same host",
        ),
    ] {
        let mut flags = base.to_vec();
        flags.extend(rule);
        flags.extend(["--http-bypass", bypass]);
        let (out, ran) = starts(&ctx, &flags);
        let c = out.dump();
        out.expect_code(2);
        assert!(!ran, "the command ran\n{c}");
        assert!(out.stderr.contains(refused), "{c}");
    }
        // Twin: a bypass of a host no rule covers starts.
        let mut flags = base.to_vec();
        flags.extend(["--http-allow", "GET api.test/readonly"]);
        flags.extend(["--http-bypass", "other.test"]);
        let (out, ran) = starts(&ctx, &flags);
        let c = out.dump();
        out.expect_code(0);
        assert!(ran, "the command did not run\n{c}");
    }
);
