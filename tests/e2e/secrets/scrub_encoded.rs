//! Response scrubbing of gzip, deflate and zstd bodies (held whole,
//! decoded to look, encoded again only when a value was inside), its
//! fail-closed refusals, and scrubbing on a `;plaintext` secret's plain
//! HTTP connections.
//!
//! The upstream's /encoded/KIND?coding=C endpoints encode their answer
//! themselves (zstd with the zstd command) and log the hash of the bytes
//! they sent; the workload saves what it received with curl (no
//! --compressed: the bytes as they arrive) into a directory the test reads.

use super::encoded::decoded;
use super::*;

/// sha256 of `data`, as sha256sum prints it.
pub(super) fn sha256(data: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// `g NAME URL [CURL ARGS]`: saves the body of URL to $OUT/NAME and its
/// head to $OUT/NAME.head, and prints "R NAME <http code>".
pub(super) const SAVE: &str = r#"g() {
  name=$1; url=$2; shift 2
  code=$(curl -q -sS --max-time 20 -D "$OUT/$name.head" -o "$OUT/$name" -w '%{http_code}' "$@" "$url")
  echo "R $name $code"
}
"#;

/// The "R NAME CODE" lines, as "NAME CODE".
pub(super) fn saved_codes(out: &Out) -> Vec<String> {
    out.stdout
        .lines()
        .filter_map(|l| l.strip_prefix("R "))
        .filter(|l| l.split(' ').count() == 2)
        .map(str::to_string)
        .collect()
}

/// A header of a saved head (the last response in it), lower-cased name.
pub(super) fn saved_header(dir: &str, name: &str, header: &str) -> Option<String> {
    let head = fs::read_to_string(format!("{dir}/{name}.head")).unwrap_or_default();
    let last = head.rsplit("HTTP/").next().unwrap_or("");
    last.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(header)
            .then(|| v.trim().to_string())
    })
}

/// The sha256 the upstream logged for what it sent to `path`.
pub(super) fn sent_sha(s: &Sec, path: &str, c: &str) -> String {
    s.up.events("sent")
        .iter()
        .find(|e| e.get("path").and_then(Value::as_str) == Some(path))
        .and_then(|e| {
            e.get("body_sha256")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| panic!("the upstream sent nothing for {path}\n{c}"))
}

pub(super) fn run_saving(
    s: &Sec,
    ctx: &Ctx,
    extra: &[&str],
    script: &str,
    args: &[&str],
) -> (Out, String) {
    let outdir = s.d.dir("out", 0o777);
    let mut e = vec!["-w", outdir.as_str(), "--env"];
    let env = format!("OUT={outdir}");
    e.push(&env);
    e.extend_from_slice(extra);
    let out = s.run(ctx, &s.flags(&e), &format!("{SAVE}{script}"), args);
    (out, outdir)
}

/// Each coding, and a large gzip answer (6 MB of padding that does not
/// compress: above the 4 MiB memory bound, so it is held in a file).
const ECHO_SCRIPT: &str = r#"for v in gzip deflate zstd gzip-large; do
  case $v in gzip-large) q='coding=gzip&pad=6000000';; *) q="coding=$v";; esac
  g "$v" "$1/encoded/echo?$q" -H "Authorization: Bearer $TOKEN" --data-binary "v=$TOKEN"
done
"#;

both!(encoded_responses_echoing_the_value_are_scrubbed, |ctx| {
    use base64::Engine;
    let s = Sec::tls("127.0.0.1");
    let (out, dir) = run_saving(&s, &ctx, &[], ECHO_SCRIPT, &[&s.url("api.test", "")]);
    let c = s.dump(&out);
    out.expect_code(0);
    let p = placeholder(&out, &s.value, &c);
    let names = ["gzip", "deflate", "zstd", "gzip-large"];
    let want: Vec<String> = names.iter().map(|n| format!("{n} 200")).collect();
    assert_eq!(saved_codes(&out), want, "{c}");
    let engine = base64::engine::general_purpose::STANDARD;
    let middle = &s.value[3..s.value.len() - 3];
    for name in names {
        let coding = name.trim_end_matches("-large");
        let raw = fs::read(format!("{dir}/{name}")).unwrap();
        assert_eq!(
            saved_header(&dir, name, "content-encoding").as_deref(),
            Some(coding),
            "{name}\n{c}"
        );
        assert_eq!(
            saved_header(&dir, name, "content-length"),
            Some(raw.len().to_string()),
            "{name}: Content-Length is not the length of what arrived\n{c}"
        );
        assert!(
            !contains(&raw, s.value.as_bytes()),
            "{name}: raw value in the encoded bytes\n{c}"
        );
        // valid in its coding, the placeholder where the value was echoed
        let text = String::from_utf8(decoded(coding, &raw)).expect("the echo is JSON text");
        assert!(
            text.contains(&format!("\"Bearer {p}\"")),
            "{name}: the echoed Authorization is not the placeholder\n{c}"
        );
        assert!(!text.contains(&s.value), "{name}: the value is in it\n{c}");
        // the echoed body, in base64: no part of the value decodes from it
        let doc: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{name}: the echo is not JSON ({e})\n{c}"));
        let b64 = doc.get("body_b64").and_then(Value::as_str).unwrap_or("");
        let body = engine.decode(b64).unwrap_or_default();
        assert!(body.starts_with(b"v="), "{name}: {b64:?}\n{c}");
        assert!(
            !contains(&body, middle.as_bytes()),
            "{name}: the echoed body's base64 holds the value\n{c}"
        );
        if name == "gzip-large" {
            assert!(raw.len() > 4 << 20, "{name}: {} bytes\n{c}", raw.len());
        }
    }
    // twin: the upstream did get the value every time (what it echoed)
    for r in s.up.requests() {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {}", s.value).as_str()),
            "{c}"
        );
    }
    assert_eq!(s.up.requests().len(), 4, "{c}");
    assert_no_value_in_output(&out, &s.value, &c);
});

both!(
    encoded_response_without_the_value_is_byte_identical,
    |ctx| {
        let s = Sec::tls("127.0.0.1");
        let script = r#"for v in gzip deflate zstd; do
  g "$v" "$1/encoded/text?coding=$v" -H "Authorization: Bearer $TOKEN"
done
"#;
        let (out, dir) = run_saving(&s, &ctx, &[], script, &[&s.url("api.test", "")]);
        let c = s.dump(&out);
        out.expect_code(0);
        let want: Vec<String> = ["gzip 200", "deflate 200", "zstd 200"]
            .iter()
            .map(|w| w.to_string())
            .collect();
        assert_eq!(saved_codes(&out), want, "{c}");
        for coding in ["gzip", "deflate", "zstd"] {
            let raw = fs::read(format!("{dir}/{coding}")).unwrap();
            let path = format!("/encoded/text?coding={coding}");
            assert_eq!(
                sha256(&raw),
                sent_sha(&s, &path, &c),
                "{coding}: not the bytes the upstream sent\n{c}"
            );
            assert_eq!(
                decoded(coding, &raw).len(),
                "nothing secret in here, only text to compress\n".len() * 2000,
                "{c}"
            );
        }
        // the connection did carry the secret: substitution was on
        assert_value_upstream(&s, "/encoded/text?coding=gzip", &c);
    }
);

/// A corrupt gzip answer and an echo in a coding sandlock cannot read,
/// from api.test (the secret's host) and from other.test (the same
/// upstream, no secret bound): in a sandbox holding a secret every
/// response is scrubbed, so neither host's gets through.
const REFUSED_SCRIPT: &str = r#"g corrupt "$1/encoded/corrupt?coding=gzip"
g unknown "$1/encoded/echo?coding=compress" -H "Authorization: Bearer $TOKEN"
g other-corrupt "$2/encoded/corrupt?coding=gzip"
g other-unknown "$2/encoded/text?coding=compress"
"#;

/// What sandlock answers for `path` on `host` when a response cannot be
/// looked into.
fn refusal(host: &str, port: &str, path: &str, why: &str) -> String {
    format!(
        "sandlock: 502 GET https://{host}:{port}{path}: response not scrubbed of secrets, so \
         not passed on: {why}"
    )
}

both!(undecodable_responses_fail_closed_from_any_host, |ctx| {
    let s = Sec::tls("127.0.0.1");
    let args = [&s.url("api.test", "")[..], &s.url("other.test", "")[..]];
    let rules = [
        "--add-host",
        "other.test:127.0.0.1",
        "--http-allow",
        "* api.test/*",
        "--http-allow",
        "* other.test/*",
    ];
    let (out, dir) = run_saving(&s, &ctx, &rules, REFUSED_SCRIPT, &args);
    let c = s.dump(&out);
    out.expect_code(0);
    let names = ["corrupt", "unknown", "other-corrupt", "other-unknown"];
    let want: Vec<String> = names.iter().map(|n| format!("{n} 502")).collect();
    assert_eq!(saved_codes(&out), want, "{c}");
    let port = s.port();
    let corrupt = "cannot decode the response body (gzip): ";
    let compress = "the response body is in content-coding 'compress', which sandlock cannot \
                    look into for secrets\n";
    let refusals = [
        (
            "corrupt",
            refusal("api.test", &port, "/encoded/corrupt?coding=gzip", corrupt),
        ),
        (
            "unknown",
            refusal("api.test", &port, "/encoded/echo?coding=compress", compress),
        ),
        (
            "other-corrupt",
            refusal("other.test", &port, "/encoded/corrupt?coding=gzip", corrupt),
        ),
        (
            "other-unknown",
            refusal(
                "other.test",
                &port,
                "/encoded/text?coding=compress",
                compress,
            ),
        ),
    ];
    for (name, line) in &refusals {
        let body = fs::read_to_string(format!("{dir}/{name}")).unwrap();
        assert!(body.starts_with(line.as_str()), "{name}: {body:?}\n{c}");
        assert_eq!(body.lines().count(), 1, "{name}: {body:?}\n{c}");
        let logged = line
            .trim_end()
            .replacen("sandlock: 502 ", "sandlock: denied http ", 1);
        let logged = logged.split(": response not").next().unwrap().to_string();
        assert!(
            out.stderr.lines().any(|l| l.starts_with(&logged)
                && l.contains(" from pid ")
                && l.contains(": response not scrubbed of secrets, so not passed on: ")),
            "no {logged:?} line on stderr\n{c}"
        );
    }
    // the unknown coding's echo did hold the value: refusing it kept the
    // value from the workload
    assert_value_upstream(&s, "/encoded/echo?coding=compress", &c);
    assert_no_value_in_output(&out, &s.value, &c);

    // Twin: a sandbox without a secret looks into nothing, and the same
    // answers pass untouched, from either host.
    let outdir = s.d.dir("out-nosecret", 0o777);
    let env = format!("OUT={outdir}");
    let mut flags = s.bare(&[
        "--add-host",
        "api.test:127.0.0.1",
        "-w",
        &outdir,
        "--env",
        &env,
    ]);
    flags.extend(rules.iter().map(|r| r.to_string()));
    let out = s.run(&ctx, &flags, &format!("{SAVE}{REFUSED_SCRIPT}"), &args);
    let c = s.dump(&out);
    out.expect_code(0);
    let want: Vec<String> = names.iter().map(|n| format!("{n} 200")).collect();
    assert_eq!(saved_codes(&out), want, "{c}");
    for (name, path) in [
        ("corrupt", "/encoded/corrupt?coding=gzip"),
        ("other-corrupt", "/encoded/corrupt?coding=gzip"),
        ("other-unknown", "/encoded/text?coding=compress"),
    ] {
        let raw = fs::read(format!("{outdir}/{name}")).unwrap();
        assert_eq!(sha256(&raw), sent_sha(&s, path, &c), "{name}\n{c}");
    }
});

both!(plaintext_opt_in_responses_are_scrubbed, |ctx| {
    let s = Sec::with(Upstream::plain("127.0.0.1"), long_value());
    let outdir = s.d.dir("out", 0o777);
    let env = format!("OUT={outdir}");
    let flags = s.bare(&[
        "--add-host",
        "api.test:127.0.0.1",
        "--secret",
        &Sec::secret("api.test;plaintext"),
        "-w",
        &outdir,
        "--env",
        &env,
    ]);
    let script = r#"g echo "$1/echo/plain" -H "Authorization: Bearer $TOKEN"
g gzip "$1/encoded/echo?coding=gzip" -H "Authorization: Bearer $TOKEN"
"#;
    let out = s.run(
        &ctx,
        &flags,
        &format!("{SAVE}{script}"),
        &[&s.url("api.test", "")],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(saved_codes(&out), vec!["echo 200", "gzip 200"], "{c}");
    let p = placeholder(&out, &s.value, &c);
    // the value went out over plain HTTP (the opt-in), and was echoed...
    assert_value_upstream(&s, "/echo/plain", &c);
    assert_value_upstream(&s, "/encoded/echo?coding=gzip", &c);
    // ...but the workload read back only the placeholder
    let echo = fs::read(format!("{outdir}/echo")).unwrap();
    let gz = decoded("gzip", &fs::read(format!("{outdir}/gzip")).unwrap());
    for (name, text) in [("echo", echo), ("gzip", gz)] {
        assert!(
            !contains(&text, s.value.as_bytes()),
            "{name}: the value\n{c}"
        );
        assert!(
            contains(&text, format!("Bearer {p}").as_bytes()),
            "{name}: no placeholder\n{c}"
        );
    }
});
