//! Encoded separators in request paths: `%2F`, `%5C` and a raw `\` are a
//! `/` to some servers and segment data to others, so a path whose two
//! readings differ (`/admin%2f..%2fok`: `/ok` to nginx, under `/admin` to
//! a router that keeps `%2F`) is refused with 400 before anything is
//! forwarded; where both readings agree (npm's `/@scope%2fname`) the ACL
//! checks that path and the target goes upstream exactly as sent.

use super::*;

both!(https_encoded_separator_next_to_dots_is_refused, |ctx| {
    let s = Setup::tls("127.0.0.1");
    let flags = s.flags(&[
        "--http-allow",
        "GET api.test/ok",
        "--http-allow",
        "GET api.test/@scope/*",
    ]);
    let attacks = [
        "/admin%2f..%2fok",
        "/admin%2F..%2Fok",
        "/admin%5c..%5cok",
        "/admin/..%2Fok",
    ];
    let twins = ["/ok", "/@scope%2fpkg", "/@scope%2Fpkg/-/pkg-1.0.0.tgz"];
    let mut args = vec![s.ca.clone()];
    for p in attacks.iter().chain(&twins) {
        args.push("GET".into());
        args.push(s.url("api.test", p));
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&ctx, &flags, &sh(CURL_EACH, &a));
    let c = s.dump(&out);
    out.expect_code(0);
    let rs = resps(&out);
    assert_eq!(rs.len(), attacks.len() + twins.len(), "{c}");
    for (p, r) in attacks.iter().zip(&rs) {
        assert_sandlock_reply(r, 400, "encoded separator", &out, &format!("{p}\n{c}"));
    }
    // Twins: no encoded separator, or one inside a segment where both
    // readings agree: allowed, and the target reached the upstream byte
    // for byte (never decoded or normalised on the way).
    for (p, r) in twins.iter().zip(&rs[attacks.len()..]) {
        assert_eq!(
            (r.code, r.body.as_str()),
            (200, format!("ok {p}\n").as_str()),
            "{p}\n{c}"
        );
    }
    assert_eq!(s.up.paths(), twins.to_vec(), "{c}");
    let raw = String::from_utf8_lossy(&s.up.raw_all()).into_owned();
    for p in twins {
        assert!(
            raw.contains(&format!("GET {p} HTTP/1.1\r\n")),
            "{p} not forwarded as sent\n{c}"
        );
    }
});
