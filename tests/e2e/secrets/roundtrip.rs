//! Responses the scrubber must see into: a value round-tripped through a
//! bound host and read back from another allowed one, in each spelling
//! (raw, hex in either case, JSON `\uXXXX` in either case, percent), a
//! response in a transfer coding (`Transfer-Encoding: gzip, chunked`, from
//! the bound host or any other), and the twin: a response with no value in
//! it reaches the workload byte for byte, with its Content-Length.
//!
//! The upstream's `/store/KEY` keeps what is POSTed to it and gives it
//! back spelled as `form=` says; `te=gzip` sends an answer gzip-coded as a
//! transfer coding, then chunked.

use super::scrub_encoded::{run_saving, saved_codes, saved_header, sent_sha, sha256};
use super::*;

/// The spellings `/store` can give back, as the upstream names them.
const FORMS: [&str; 6] = ["raw", "hex", "HEX", "json-u", "JSON-U", "pct"];

/// `form` of `text` (ASCII alphanumerics here), as the upstream spells it.
fn spelled(text: &str, form: &str) -> String {
    match form {
        "hex" => text.bytes().map(|b| format!("{b:02x}")).collect(),
        "HEX" => text.bytes().map(|b| format!("{b:02X}")).collect(),
        "json-u" => text.bytes().map(|b| format!("\\u{b:04x}")).collect(),
        "JSON-U" => text.bytes().map(|b| format!("\\u{b:04X}")).collect(),
        _ => text.to_string(),
    }
}

/// POSTs the placeholder to the bound host's store (where it becomes the
/// value), then reads it back from other.test in every spelling, and
/// in a transfer coding from both hosts.
const ROUNDTRIP_SCRIPT: &str = r#"c -X POST --data-binary "$TOKEN" "$1/store/k"
for f in raw hex HEX json-u JSON-U pct; do g "$f" "$2/store/k?form=$f"; done
g te-other "$2/store/k?te=gzip"
g te-api "$1/store/k?te=gzip"
"#;

/// api.test (the secret's host) may take POSTs; other.test only GETs.
fn two_hosts() -> [&'static str; 6] {
    [
        "--add-host",
        "other.test:127.0.0.1",
        "--http-allow",
        "* api.test/*",
        "--http-allow",
        "GET other.test/*",
    ]
}

both!(values_read_back_from_any_host_are_scrubbed, |ctx| {
    let s = Sec::tls("127.0.0.1");
    let args = [&s.url("api.test", "")[..], &s.url("other.test", "")[..]];
    let (out, dir) = run_saving(&s, &ctx, &two_hosts(), ROUNDTRIP_SCRIPT, &args);
    let c = s.dump(&out);
    out.expect_code(0);
    let p = placeholder(&out, &s.value, &c);
    let mut names: Vec<&str> = FORMS.to_vec();
    names.extend(["te-other", "te-api"]);
    let want: Vec<String> = names.iter().map(|n| format!("{n} 200")).collect();
    assert_eq!(saved_codes(&out), want, "{c}");
    // Twin: the store got the real value (substitution is on, and the
    // upstream gave it back each time).
    let posts: Vec<SeenRequest> =
        s.up.requests()
            .into_iter()
            .filter(|r| r.method == "POST")
            .collect();
    assert_eq!(posts.len(), 1, "{c}");
    assert_eq!(
        (posts[0].path.as_str(), &posts[0].body[..]),
        ("/store/k", s.value.as_bytes()),
        "{c}"
    );
    // Each spelling came back as the placeholder's same spelling; one with
    // no letter in it (the value's hex, by chance) cannot show its case
    // and comes back lower case.
    for form in FORMS {
        let got = fs::read_to_string(format!("{dir}/{form}")).unwrap();
        let lower = form.to_lowercase();
        let caseless = spelled(&s.value, form) == spelled(&s.value, &lower);
        let want = if caseless { &lower } else { form };
        assert_eq!(got, spelled(&p, want), "{form}\n{c}");
        assert_eq!(
            saved_header(&dir, form, "content-length"),
            Some(got.len().to_string()),
            "{form}: the length changed\n{c}"
        );
    }
    // A transfer coding is decoded (the workload gets the content, no
    // coding it was not told about) and scrubbed, from either host.
    for name in ["te-other", "te-api"] {
        let got = fs::read(format!("{dir}/{name}")).unwrap();
        assert_eq!(got, p.as_bytes(), "{name}\n{c}");
        assert_eq!(
            saved_header(&dir, name, "transfer-encoding"),
            None,
            "{name}\n{c}"
        );
    }
    assert_no_value_in_output(&out, &s.value, &c);
});

/// Answers with no value in them, from both hosts, plain and coded.
const CLEAN_SCRIPT: &str = r#"g bytes-other "$2/bytes?n=300000"
g bytes-api "$1/bytes?n=300000&who=api" -H "Authorization: Bearer $TOKEN"
g gzip-other "$2/encoded/text?coding=gzip"
g te-other "$2/bytes?n=300000&te=gzip"
"#;

/// The upstream's /bytes body: byte i is i % 251.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

both!(responses_without_a_value_are_byte_identical, |ctx| {
    let s = Sec::tls("127.0.0.1");
    let args = [&s.url("api.test", "")[..], &s.url("other.test", "")[..]];
    let (out, dir) = run_saving(&s, &ctx, &two_hosts(), CLEAN_SCRIPT, &args);
    let c = s.dump(&out);
    out.expect_code(0);
    let names = ["bytes-other", "bytes-api", "gzip-other", "te-other"];
    let want: Vec<String> = names.iter().map(|n| format!("{n} 200")).collect();
    assert_eq!(saved_codes(&out), want, "{c}");
    let read = |name: &str| fs::read(format!("{dir}/{name}")).unwrap();
    for name in ["bytes-other", "bytes-api"] {
        assert!(read(name) == pattern(300_000), "{name}: bytes changed\n{c}");
        assert_eq!(
            saved_header(&dir, name, "content-length").as_deref(),
            Some("300000"),
            "{name}\n{c}"
        );
    }
    let gz = read("gzip-other");
    assert_eq!(
        sha256(&gz),
        sent_sha(&s, "/encoded/text?coding=gzip", &c),
        "not the bytes the upstream sent\n{c}"
    );
    assert_eq!(
        saved_header(&dir, "gzip-other", "content-length"),
        Some(gz.len().to_string()),
        "{c}"
    );
    // A transfer coding is decoded: the content, exactly.
    assert!(read("te-other") == pattern(300_000), "te-other\n{c}");
    // The secret was in play: substitution happened on api.test.
    assert_value_upstream(&s, "/bytes?n=300000&who=api", &c);
});
