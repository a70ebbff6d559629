//! Secrets (issue 5, phase 1): `--secret NAME=SOURCE@HOSTS` gives the
//! workload a placeholder in `$NAME`, and the proxy swaps in the real value
//! only on requests where every gate holds: intercepted TLS (or the
//! secret's `;plaintext` on plain HTTP), an SNI matching one of the
//! secret's hosts, an original destination pinned for such a name, and
//! Host equal to the SNI. `--secret-headers` limits a secret to named
//! headers.
//!
//! The upstream is tests/fixtures/upstream.py (TLS, behind the tests'
//! private root given to sandlock with --upstream-ca); its log holds every
//! byte it received and every request it parsed, so each test checks what
//! actually went out on the wire. The clients inside the sandbox are curl
//! and tests/fixtures/httpclient.py with no CA flag at all: a secret turns
//! interception on, and zero-config trust makes the sandbox CA trusted.
//! Real values are drawn at random per test and reach sandlock only
//! through its own environment (`env:REAL_TOKEN`), a file or a descriptor,
//! never through its argv. Curl writes response bodies to /dev/null:
//! phase 1 does not scrub responses, and /echo reflects what it received.
//!
//! Every attack (a gate that does not hold) has a twin where the gate
//! holds and the value does go out, so a test cannot pass merely because
//! substitution is broken.

use crate::common::tls::*;
use crate::common::*;
use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// The variable of sandlock's own environment the test secret is read from.
const VAR: &str = "REAL_TOKEN";

/// Prologue of every workload script: prints the placeholder ("PH <p>"),
/// and defines `c ARGS...`, one curl whose body goes to /dev/null and which
/// prints "R <curl exit> <http code> <http version>".
const PROLOGUE: &str = r#"printf 'PH %s\n' "$TOKEN"
c() {
  r=$(curl -q -sS --path-as-is --max-time 10 -o /dev/null -w '%{http_code} %{http_version}' "$@")
  echo "R $? $r"
}
"#;

/// The line sandlock prints when a placeholder goes somewhere its secret
/// may not (after "sandlock: warning: http ... from pid N (comm): ").
fn misuse_reason(name: &str) -> String {
    format!("placeholder of secret {name} sent where the secret is not bound; forwarded unchanged")
}

fn sv(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// `len` random characters from [A-Za-z0-9] (from /dev/urandom).
fn random_alnum(len: usize) -> String {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut f = fs::File::open("/dev/urandom").expect("open /dev/urandom");
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        f.read_exact(&mut buf).unwrap();
        for b in buf {
            if b < 248 && out.len() < len {
                out.push(ALPHABET[(b % 62) as usize] as char);
            }
        }
    }
    out
}

/// A fresh real value of 32 bytes (a placeholder of the same length).
fn long_value() -> String {
    format!("Rv{}", random_alnum(30))
}

/// A fresh real value of 13 bytes (below 16: a 24-byte `SLKP_` placeholder).
fn short_value() -> String {
    format!("s{}", random_alnum(12))
}

pub fn b64encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// An upstream, a temp dir granted to the workload with -r, and the real
/// value of the secret TOKEN.
struct Sec {
    up: Upstream,
    d: TempDir,
    value: String,
}

impl Sec {
    fn tls(ip: &str) -> Sec {
        Self::with(Upstream::tls(ip), long_value())
    }

    fn with(up: Upstream, value: String) -> Sec {
        Sec {
            up,
            d: TempDir::new("secrets"),
            value,
        }
    }

    fn port(&self) -> String {
        self.up.port_s()
    }

    fn url(&self, host: &str, path: &str) -> String {
        let scheme = if self.up.tls { "https" } else { "http" };
        format!("{scheme}://{host}:{}{path}", self.up.port)
    }

    fn host(&self, name: &str) -> String {
        format!("{name}:{}", self.up.port)
    }

    /// `--secret TOKEN=env:REAL_TOKEN@HOSTS`.
    fn secret(hosts: &str) -> String {
        format!("TOKEN=env:{VAR}@{hosts}")
    }

    /// --http-port P --upstream-ca ROOT -r D -r TLSDIR, then `extra`: no
    /// name, no secret, no HTTP rule.
    fn bare(&self, extra: &[&str]) -> Vec<String> {
        let f = tls_files();
        let mut v = sv(&[
            "--http-port",
            &self.port(),
            "--upstream-ca",
            &f.root_ca,
            "-r",
            &self.d.s(),
            "-r",
            &f.dir,
        ]);
        v.extend(sv(extra));
        v
    }

    /// `bare` plus --add-host api.test:UPSTREAM-IP and `--secret
    /// TOKEN=env:REAL_TOKEN@api.test` (and no HTTP rule), then `extra`.
    fn flags(&self, extra: &[&str]) -> Vec<String> {
        let pin = format!("api.test:{}", self.up.ip);
        let mut v = self.bare(&["--add-host", &pin, "--secret", &Self::secret("api.test")]);
        v.extend(sv(extra));
        v
    }

    /// Runs `sh -c PROLOGUE+SCRIPT sh ARGS...` in the sandbox, with
    /// REAL_TOKEN=value (and `env`) in sandlock's environment.
    fn run_env(
        &self,
        ctx: &Ctx,
        flags: &[String],
        env: &[(&str, &str)],
        script: &str,
        args: &[&str],
    ) -> Out {
        let body = format!("{PROLOGUE}{script}");
        let mut cmd = sv(&["/bin/sh", "-c", &body, "sh"]);
        cmd.extend(sv(args));
        let f: Vec<&str> = flags.iter().map(String::as_str).collect();
        let c: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let mut all = vec![(VAR, self.value.as_str())];
        all.extend_from_slice(env);
        ctx.sl_env(run_args(&f, &c), &all)
    }

    fn run(&self, ctx: &Ctx, flags: &[String], script: &str, args: &[&str]) -> Out {
        self.run_env(ctx, flags, &[], script, args)
    }

    fn dump(&self, out: &Out) -> String {
        format!(
            "real value {:?}\n{}\n{}",
            self.value,
            out.dump(),
            self.up.dump()
        )
    }

    /// The one request the upstream parsed for a target starting with
    /// `prefix`.
    #[track_caller]
    fn request(&self, prefix: &str, c: &str) -> SeenRequest {
        let v: Vec<SeenRequest> = self
            .up
            .requests()
            .into_iter()
            .filter(|r| r.path.starts_with(prefix))
            .collect();
        assert_eq!(v.len(), 1, "want one request for {prefix}*\n{c}");
        v.into_iter().next().unwrap()
    }
}

/// The placeholder the workload printed ("PH <p>"), checked to be made of
/// [A-Za-z0-9_] and to differ from `value`.
#[track_caller]
fn placeholder(out: &Out, value: &str, c: &str) -> String {
    let p = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("PH "))
        .unwrap_or_else(|| panic!("no PH line\n{c}"))
        .to_string();
    assert!(!p.is_empty(), "the workload's $TOKEN is empty\n{c}");
    assert!(
        p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "placeholder {p:?} has characters outside [A-Za-z0-9_]\n{c}"
    );
    assert_ne!(p, value, "the workload holds the real value\n{c}");
    assert!(!p.contains(value), "{c}");
    p
}

/// The "R <rc> <code> <version>" lines of the `c` curl wrapper, as
/// "<rc> <code>" (the version left out).
fn rc_codes(out: &Out) -> Vec<String> {
    out.stdout
        .lines()
        .filter_map(|l| l.strip_prefix("R "))
        .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .collect()
}

/// The HTTP versions curl reported in its "R" lines.
fn versions(out: &Out) -> Vec<String> {
    out.stdout
        .lines()
        .filter_map(|l| l.strip_prefix("R "))
        .map(|l| l.split(' ').nth(2).unwrap_or("").to_string())
        .collect()
}

/// sandlock's stderr lines warning that a placeholder of `name` went out
/// unchanged.
fn misuse_lines<'a>(out: &'a Out, name: &str) -> Vec<&'a str> {
    let reason = misuse_reason(name);
    out.stderr
        .lines()
        .filter(|l| l.starts_with("sandlock: warning: http ") && l.contains(&reason))
        .collect()
}

#[track_caller]
fn assert_misuse_warned(out: &Out, name: &str, c: &str) {
    assert!(
        !misuse_lines(out, name).is_empty(),
        "no 'sandlock: warning: http ... {}' line on stderr\n{c}",
        misuse_reason(name)
    );
}

#[track_caller]
fn assert_no_misuse_warning(out: &Out, c: &str) {
    assert!(
        !out.stderr.contains("sent where the secret is not bound"),
        "a misuse warning where the secret is bound\n{c}"
    );
}

/// Asserts the real value (and its base64 forms) is nowhere in sandlock's
/// stdout or stderr.
#[track_caller]
fn assert_no_value_in_output(out: &Out, value: &str, c: &str) {
    for (what, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        assert!(
            !text.contains(value),
            "the real value is on sandlock's {what}\n{c}"
        );
    }
}

// ---------------------------------------------------------------------------
// Where the placeholder becomes the value
// ---------------------------------------------------------------------------

/// `env` (prefixed "ENV "), then /proc/self/environ (prefixed "PROC ", or
/// "PROC_FAIL" when it cannot be read), then one curl with the placeholder
/// in Authorization and inside a longer header value.
const HEADER_SCRIPT: &str = r#"env | sed 's/^/ENV /'
if tr '\0' '\n' < /proc/self/environ > "$TMPDIR/environ"; then
  sed 's/^/PROC /' "$TMPDIR/environ"; echo PROC_OK
else
  echo PROC_FAIL
fi
c -H "Authorization: Bearer $TOKEN" -H "X-Mixed: pre-$TOKEN-post" -H "X-Plain: plain value" "$1"
"#;

both!(header_bearer_gets_the_real_value, |ctx| {
    let s = Sec::tls("127.0.0.1");
    // /proc granted so that the workload can read its own environ
    let out = s.run(
        &ctx,
        &s.flags(&["-r", "/proc"]),
        HEADER_SCRIPT,
        &[&s.url("api.test", "/echo/header")],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 200"], "{c}");
    let p = placeholder(&out, &s.value, &c);
    assert_eq!(
        p.len(),
        s.value.len(),
        "a value of 16 bytes or more gets a placeholder of its length\n{c}"
    );

    // the workload's environment: TOKEN is the placeholder, REAL_TOKEN is
    // gone, the value is nowhere
    for prefix in ["ENV ", "PROC "] {
        let env: Vec<&str> = out
            .stdout
            .lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .collect();
        assert!(
            env.contains(&format!("TOKEN={p}").as_str()),
            "{prefix}: no TOKEN=<placeholder>\n{c}"
        );
        assert!(
            !env.iter().any(|l| l.starts_with(&format!("{VAR}="))),
            "{prefix}: the source variable {VAR} reached the workload\n{c}"
        );
    }
    assert!(
        out.stdout.lines().any(|l| l == "PROC_OK"),
        "/proc/self/environ was not readable with -r /proc\n{c}"
    );
    assert_no_value_in_output(&out, &s.value, &c);
    assert_no_misuse_warning(&out, &c);

    // the wire: the value, where the placeholder was
    let r = s.request("/echo/header", &c);
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {}", s.value).as_str()),
        "{c}"
    );
    assert_eq!(
        r.header("x-mixed"),
        Some(format!("pre-{}-post", s.value).as_str()),
        "{c}"
    );
    assert_eq!(r.header("x-plain"), Some("plain value"), "{c}");
    assert!(
        !contains(&s.up.raw_all(), p.as_bytes()),
        "the placeholder reached the upstream\n{c}"
    );
});

both!(basic_credentials_are_decoded_and_reencoded, |ctx| {
    let s = Sec::tls("127.0.0.1");
    // git's form (user x-access-token, the token as password) over
    // HTTP/1.1, and the token as the user name over HTTP/2
    let script = r#"c --http1.1 -u "x-access-token:$TOKEN" "$1"
c --http2 -u "$TOKEN:x-oauth-basic" "$2"
"#;
    let out = s.run(
        &ctx,
        &s.flags(&[]),
        script,
        &[
            &s.url("api.test", "/echo/basic1"),
            &s.url("api.test", "/echo/basic2"),
        ],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 200", "0 200"], "{c}");
    let p = placeholder(&out, &s.value, &c);
    for (path, want) in [
        ("/echo/basic1", format!("x-access-token:{}", s.value)),
        ("/echo/basic2", format!("{}:x-oauth-basic", s.value)),
    ] {
        let r = s.request(path, &c);
        let auth = r.header("authorization").unwrap_or("").to_string();
        let b64 = auth
            .strip_prefix("Basic ")
            .unwrap_or_else(|| panic!("{path}: not Basic: {auth:?}\n{c}"));
        let decoded = String::from_utf8_lossy(&b64decode(b64)).into_owned();
        assert_eq!(decoded, want, "{path}: Basic credentials\n{c}");
        assert_eq!(
            b64,
            b64encode(want.as_bytes()),
            "{path}: canonical base64\n{c}"
        );
    }
    assert!(!contains(&s.up.raw_all(), p.as_bytes()), "{c}");
    assert_no_value_in_output(&out, &s.value, &c);
});

both!(path_and_query_get_the_real_value, |ctx| {
    let s = Sec::tls("127.0.0.1");
    let base = s.url("api.test", "/echo/");
    let out = s.run(
        &ctx,
        &s.flags(&[]),
        r#"c --http1.1 "$1$TOKEN?k=$TOKEN&x=1"
c --http2 "$1h2/$TOKEN?k=$TOKEN"
"#,
        &[&base],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 200", "0 200"], "{c}");
    let p = placeholder(&out, &s.value, &c);
    let v = &s.value;
    let want1 = format!("/echo/{v}?k={v}&x=1");
    let want2 = format!("/echo/h2/{v}?k={v}");
    assert_eq!(s.up.paths(), vec![want1.clone(), want2], "{c}");
    // the raw request line, byte for byte
    let raw = s.up.raw_all();
    let line = format!("GET {want1} HTTP/1.1\r\n");
    assert!(
        contains(&raw, line.as_bytes()),
        "no {line:?} on the wire\n{c}"
    );
    assert!(!contains(&raw, p.as_bytes()), "{c}");
});

/// POSTs "a=$TOKEN&b=$TOKEN" with curl over HTTP/1.1, then over HTTP/2.
const FORM_SCRIPT: &str = r#"c --http1.1 --data-binary "a=$TOKEN&b=$TOKEN" "$1/h1"
c --http2 --data-binary "a=$TOKEN&b=$TOKEN" "$1/h2"
"#;

/// Checks the two requests of FORM_SCRIPT: body "a=V&b=V" and a
/// Content-Length that is its length.
#[track_caller]
fn assert_form_bodies(s: &Sec, out: &Out, p: &str, c: &str) {
    assert_eq!(rc_codes(out), vec!["0 200", "0 200"], "{c}");
    assert_eq!(versions(out), vec!["1.1", "2"], "{c}");
    let want = format!("a={0}&b={0}", s.value);
    for path in ["/echo/form/h1", "/echo/form/h2"] {
        let r = s.request(path, c);
        assert_eq!(
            String::from_utf8_lossy(&r.body),
            want,
            "{path}: the body upstream\n{c}"
        );
        assert_eq!(
            r.header("content-length"),
            Some(want.len().to_string().as_str()),
            "{path}: Content-Length\n{c}"
        );
        assert_eq!(r.header("transfer-encoding"), None, "{path}\n{c}");
    }
    assert!(!contains(&s.up.raw_all(), p.as_bytes()), "{c}");
}

both!(body_gets_the_real_value, |ctx| {
    let s = Sec::tls("127.0.0.1");
    let out = s.run(
        &ctx,
        &s.flags(&[]),
        FORM_SCRIPT,
        &[&s.url("api.test", "/echo/form")],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    let p = placeholder(&out, &s.value, &c);
    assert_eq!(p.len(), s.value.len(), "{c}");
    assert_form_bodies(&s, &out, &p, &c);
});

both!(short_value_body_length_is_fixed, |ctx| {
    let s = Sec::with(Upstream::tls("127.0.0.1"), short_value());
    let out = s.run(
        &ctx,
        &s.flags(&[]),
        FORM_SCRIPT,
        &[&s.url("api.test", "/echo/form")],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    let p = placeholder(&out, &s.value, &c);
    // below 16 bytes: 24 bytes, "SLKP_" and random characters, so the
    // body gets shorter and its Content-Length must follow
    assert_eq!(p.len(), 24, "{c}");
    assert!(p.starts_with("SLKP_"), "{c}");
    assert_form_bodies(&s, &out, &p, &c);
});

/// httpclient.py splitpost: the placeholders cut across chunks (and TCP
/// writes 0.2 s apart), chunked and with Content-Length; the python
/// client trusts its default store only.
fn split_body(ctx: &Ctx, s: &Sec) {
    let port = s.port();
    let script = r#"for mode in chunked length; do
  python3 -I "$1" splitpost api.test "$2" "/echo/split-$mode" TOKEN "$mode"
done
"#;
    let out = s.run(ctx, &s.flags(&[]), script, &[&tls_files().client, &port]);
    let c = s.dump(&out);
    out.expect_code(0);
    let p = placeholder(&out, &s.value, &c);
    let statuses: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("status "))
        .collect();
    assert_eq!(statuses, vec!["status 200", "status 200"], "{c}");
    let want = format!("a={0}&b={0}&end", s.value);
    for mode in ["chunked", "length"] {
        let r = s.request(&format!("/echo/split-{mode}"), &c);
        assert_eq!(
            String::from_utf8_lossy(&r.body),
            want,
            "{mode}: the body upstream\n{c}"
        );
        if mode == "length" {
            assert_eq!(
                r.header("content-length"),
                Some(want.len().to_string().as_str()),
                "{c}"
            );
        }
    }
    assert!(!contains(&s.up.raw_all(), p.as_bytes()), "{c}");
}

both!(body_placeholder_split_across_chunks_and_writes, |ctx| {
    split_body(&ctx, &Sec::tls("127.0.0.1"));
});

both!(short_value_split_across_chunks_and_writes, |ctx| {
    split_body(&ctx, &Sec::with(Upstream::tls("127.0.0.1"), short_value()));
});

/// The HTTP/2 upload body for placeholder (or value) `p`: `p` across the
/// 16 KiB DATA frame boundary, twice more later, the last at the very end.
fn h2_body(p: &str) -> String {
    format!(
        "{}{p}{}{p}{}{p}",
        "a".repeat(16379),
        "b".repeat(16000),
        "c".repeat(7)
    )
}

both!(http2_request_body_gets_the_real_value, |ctx| {
    let s = Sec::tls("127.0.0.1");
    let script = r#"python3 -I -c 'import os, sys
p = os.environ["TOKEN"]
open(sys.argv[1], "w").write("a" * 16379 + p + "b" * 16000 + p + "c" * 7 + p)' "$TMPDIR/body"
c --http2 -H 'Content-Type: application/octet-stream' --data-binary "@$TMPDIR/body" "$1"
"#;
    let out = s.run(
        &ctx,
        &s.flags(&[]),
        script,
        &[&s.url("api.test", "/echo/h2body")],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 200"], "{c}");
    assert_eq!(versions(&out), vec!["2"], "curl did not speak HTTP/2\n{c}");
    let p = placeholder(&out, &s.value, &c);
    let r = s.request("/echo/h2body", &c);
    let want = h2_body(&s.value);
    assert!(
        r.body == want.as_bytes(),
        "the body upstream differs ({} bytes, {} wanted; placeholder left: {})\n{c}",
        r.body.len(),
        want.len(),
        contains(&r.body, p.as_bytes())
    );
    assert!(!contains(&s.up.raw_all(), p.as_bytes()), "{c}");
});

/// Deterministic bytes covering every value, CRLFs and header look-alikes.
fn binary_body() -> Vec<u8> {
    let mut v = Vec::new();
    let mut x: u32 = 0x5ec2_e75a;
    for i in 0..200_000u32 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        v.push((x >> 16) as u8 ^ (i as u8));
    }
    v.extend_from_slice(b"\r\n\r\nContent-Length: 0\r\n\r\nSLKP_\0\0end");
    v
}

both!(
    bodies_without_a_placeholder_are_forwarded_untouched,
    |ctx| {
        let s = Sec::tls("127.0.0.1");
        let body = binary_body();
        let file = s.d.join("body.bin");
        fs::write(&file, &body).unwrap();
        let data = format!("@{file}");
        // a binary body (plain, then chunked), and near misses: the
        // placeholder less its last byte, less its first byte, with a byte
        // changed in its middle
        let script = r#"c --http1.1 -H 'Content-Type: application/octet-stream' --data-binary "$1" "$2/plain"
c --http1.1 -H 'Content-Type: application/octet-stream' -H 'Transfer-Encoding: chunked' --data-binary "$1" "$2/chunked"
c --http2 -H 'Content-Type: application/octet-stream' --data-binary "$1" "$2/h2"
head=${TOKEN%????????}; rest=${TOKEN#"$head"}
c -H "X-Near: ${TOKEN%?}" --data-binary "x=${TOKEN%?}&y=${TOKEN#?}&z=${head}#${rest#?}" "$2/near?q=${TOKEN%?}"
"#;
        let out = s.run(
            &ctx,
            &s.flags(&[]),
            script,
            &[&data, &s.url("api.test", "/echo/bin")],
        );
        let c = format!(
            "real value {:?}\n{}\nupstream saw {:?}",
            s.value,
            out.dump(),
            s.up.paths()
        );
        out.expect_code(0);
        assert_eq!(rc_codes(&out), vec!["0 200"; 4], "{c}");
        let p = placeholder(&out, &s.value, &c);
        for path in ["/echo/bin/plain", "/echo/bin/chunked", "/echo/bin/h2"] {
            let r = s.request(path, &c);
            assert!(
                r.body == body,
                "{path}: {} bytes upstream, not the {} sent\n{c}",
                r.body.len(),
                body.len()
            );
        }
        // the Content-Length upload, byte for byte after the head
        let raw = s.up.raw_by_conn();
        let conn = raw
            .values()
            .find(|b| b.starts_with(b"POST /echo/bin/plain "))
            .unwrap_or_else(|| panic!("no connection for /echo/bin/plain\n{c}"));
        let head_end = conn
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("end of head")
            + 4;
        assert!(conn[head_end..] == body[..], "{c}");

        let short = &p[..p.len() - 1];
        let r = s.request("/echo/bin/near", &c);
        let changed = format!("{}#{}", &p[..p.len() - 8], &p[p.len() - 7..]);
        assert_eq!(r.header("x-near"), Some(short), "{c}");
        assert_eq!(r.path, format!("/echo/bin/near?q={short}"), "{c}");
        assert_eq!(
            String::from_utf8_lossy(&r.body),
            format!("x={short}&y={}&z={changed}", &p[1..]),
            "{c}"
        );
        assert!(!contains(&s.up.raw_all(), s.value.as_bytes()), "{c}");
    }
);

both!(secret_headers_limits_substitution, |ctx| {
    let s = Sec::tls("127.0.0.1");
    let script = r#"c -H "Authorization: Bearer $TOKEN" -H "X-Other: $TOKEN" --data-binary "b=$TOKEN" "$1?q=$TOKEN"
"#;
    let url = s.url("api.test", "/echo/limited");
    let out = s.run(
        &ctx,
        &s.flags(&["--secret-headers", "TOKEN=authorization"]),
        script,
        &[&url],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 200"], "{c}");
    let p = placeholder(&out, &s.value, &c);
    let r = s.request("/echo/limited", &c);
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {}", s.value).as_str()),
        "{c}"
    );
    assert_eq!(r.header("x-other"), Some(p.as_str()), "{c}");
    assert_eq!(String::from_utf8_lossy(&r.body), format!("b={p}"), "{c}");
    assert_eq!(r.path, format!("/echo/limited?q={p}"), "{c}");
    let raw = s.up.raw_all();
    assert_eq!(
        raw.windows(s.value.len())
            .filter(|w| *w == s.value.as_bytes())
            .count(),
        1,
        "the value went out somewhere else than Authorization\n{c}"
    );

    // twin: without --secret-headers, all four places get the value
    let out = s.run(&ctx, &s.flags(&[]), script, &[&format!("{url}2")]);
    let c = s.dump(&out);
    out.expect_code(0);
    let r = s.request("/echo/limited2", &c);
    let v = &s.value;
    assert_eq!(r.header("x-other"), Some(v.as_str()), "{c}");
    assert_eq!(String::from_utf8_lossy(&r.body), format!("b={v}"), "{c}");
    assert_eq!(r.path, format!("/echo/limited2?q={v}"), "{c}");
});

// ---------------------------------------------------------------------------
// Gates: where the placeholder stays a placeholder
// ---------------------------------------------------------------------------

const BEARER: &str = r#"c -H "Authorization: Bearer $TOKEN" "$@"
"#;

/// Asserts the upstream got the request `path` with the placeholder in
/// Authorization, and never the value.
#[track_caller]
fn assert_placeholder_upstream(s: &Sec, path: &str, p: &str, c: &str) {
    let r = s.request(path, c);
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {p}").as_str()),
        "{c}"
    );
    assert!(
        !contains(&s.up.raw_all(), s.value.as_bytes()),
        "the real value reached the upstream\n{c}"
    );
}

#[track_caller]
fn assert_value_upstream(s: &Sec, path: &str, c: &str) {
    let r = s.request(path, c);
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {}", s.value).as_str()),
        "{c}"
    );
}

both!(gate_host_not_bound_forwards_the_placeholder, |ctx| {
    let s = Sec::tls("127.0.0.1");
    // the secret is bound to other.test; api.test is reachable through an
    // HTTP rule
    let flags = |hosts: &str| {
        s.bare(&[
            "--add-host",
            "api.test:127.0.0.1",
            "--add-host",
            "other.test:127.0.0.1",
            "--http-allow",
            "* api.test/*",
            "--secret",
            &Sec::secret(hosts),
        ])
    };
    let out = s.run(
        &ctx,
        &flags("other.test"),
        BEARER,
        &[&s.url("api.test", "/echo/unbound")],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 200"], "{c}");
    let p = placeholder(&out, &s.value, &c);
    assert_placeholder_upstream(&s, "/echo/unbound", &p, &c);
    assert_misuse_warned(&out, "TOKEN", &c);
    assert_no_value_in_output(&out, &s.value, &c);

    // twin: bound to api.test, the same request carries the value
    let out = s.run(
        &ctx,
        &flags("api.test"),
        BEARER,
        &[&s.url("api.test", "/echo/bound")],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 200"], "{c}");
    assert_value_upstream(&s, "/echo/bound", &c);
    assert_no_misuse_warning(&out, &c);
});

both!(gate_forged_sni_on_a_hard_coded_ip, |ctx| {
    // the upstream listens on 127.0.0.2; api.test is pinned to 127.0.0.1,
    // and the workload connects to 127.0.0.2 (allowed by address) with SNI
    // and Host api.test
    let s = Sec::tls("127.0.0.2");
    let port = s.port();
    let allow = format!("127.0.0.2:{port}");
    let resolve = format!("api.test:{port}:127.0.0.2");
    let flags = |pin: &str| {
        s.bare(&[
            "--add-host",
            pin,
            "--net-allow",
            &allow,
            "--secret",
            &Sec::secret("api.test"),
        ])
    };
    let out = s.run(
        &ctx,
        &flags("api.test:127.0.0.1"),
        BEARER,
        &["--resolve", &resolve, &s.url("api.test", "/echo/forged")],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 200"], "{c}");
    let p = placeholder(&out, &s.value, &c);
    assert_placeholder_upstream(&s, "/echo/forged", &p, &c);
    assert_misuse_warned(&out, "TOKEN", &c);

    // twin: api.test pinned to 127.0.0.2, the same connection qualifies
    let out = s.run(
        &ctx,
        &flags("api.test:127.0.0.2"),
        BEARER,
        &["--resolve", &resolve, &s.url("api.test", "/echo/pinned")],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 200"], "{c}");
    assert_value_upstream(&s, "/echo/pinned", &c);
    assert_no_misuse_warning(&out, &c);
});

both!(gate_plaintext_http_needs_the_opt_in, |ctx| {
    let s = Sec::with(Upstream::plain("127.0.0.1"), long_value());
    let flags = |hosts: &str| {
        s.bare(&[
            "--add-host",
            "api.test:127.0.0.1",
            "--secret",
            &Sec::secret(hosts),
        ])
    };
    let out = s.run(
        &ctx,
        &flags("api.test"),
        BEARER,
        &[&s.url("api.test", "/echo/plain")],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 200"], "{c}");
    let p = placeholder(&out, &s.value, &c);
    assert_placeholder_upstream(&s, "/echo/plain", &p, &c);
    assert_misuse_warned(&out, "TOKEN", &c);

    // twin: ;plaintext lets the value go out over plain HTTP
    let out = s.run(
        &ctx,
        &flags("api.test;plaintext"),
        BEARER,
        &[&s.url("api.test", "/echo/optin")],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 200"], "{c}");
    assert_value_upstream(&s, "/echo/optin", &c);
    assert_no_misuse_warning(&out, &c);
});

both!(gate_bypassed_host_gets_the_placeholder, |ctx| {
    let s = Sec::tls("127.0.0.1");
    let root = &tls_files().root_ca;
    // bypassed: the client talks TLS to the upstream itself, so it must
    // trust the upstream's root
    let out = s.run(
        &ctx,
        &s.flags(&["--http-bypass", "api.test"]),
        BEARER,
        &["--cacert", root, &s.url("api.test", "/echo/bypass")],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 200"], "{c}");
    let p = placeholder(&out, &s.value, &c);
    assert_placeholder_upstream(&s, "/echo/bypass", &p, &c);

    // twin: intercepted (no CA flag), the value goes out
    let out = s.run(
        &ctx,
        &s.flags(&[]),
        BEARER,
        &[&s.url("api.test", "/echo/intercepted")],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 200"], "{c}");
    assert_value_upstream(&s, "/echo/intercepted", &c);
});

both!(gate_host_differs_from_sni_421, |ctx| {
    let s = Sec::tls("127.0.0.1");
    // both names bound and pinned to the same address: only the mismatch
    // between SNI (api.test) and Host (other.test) is wrong
    let flags = s.bare(&[
        "--add-host",
        "api.test:127.0.0.1",
        "--add-host",
        "other.test:127.0.0.1",
        "--secret",
        &Sec::secret("api.test,other.test"),
    ]);
    let url = s.url("api.test", "/echo/mismatch");
    for proto in ["--http1.1", "--http2"] {
        let host = format!("Host: {}", s.host("other.test"));
        let out = s.run(&ctx, &flags, BEARER, &[proto, "-H", &host, &url]);
        let c = format!("{proto}\n{}", s.dump(&out));
        out.expect_code(0);
        assert_eq!(rc_codes(&out), vec!["0 421"], "{c}");
        assert!(
            s.up.requests().is_empty(),
            "a request with Host != SNI reached the upstream\n{c}"
        );
        assert!(!contains(&s.up.raw_all(), s.value.as_bytes()), "{c}");
    }

    // twin: Host equal to the SNI
    let host = format!("Host: {}", s.host("api.test"));
    let out = s.run(&ctx, &flags, BEARER, &["-H", &host, &url]);
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 200"], "{c}");
    assert_value_upstream(&s, "/echo/mismatch", &c);
});

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

both!(misuse_is_warned_on_stderr_and_in_the_audit_log, |ctx| {
    let s = Sec::tls("127.0.0.1");
    let other_value = long_value();
    // OTHER is bound to other.test only; its placeholder goes to api.test
    let flags = |audit: &str| {
        s.flags(&[
            "--add-host",
            "other.test:127.0.0.1",
            "--secret",
            "OTHER=env:OTHER_REAL@other.test",
            "--audit",
            audit,
        ])
    };
    // on a connection where TOKEN is eligible (SNI api.test, pinned) and
    // OTHER is not: alone, then next to TOKEN's placeholder. (Where no
    // secret is eligible at all: gate_host_not_bound_forwards_the_placeholder.)
    for (path, script) in [
        ("/echo/other-only", r#"c -H "X-Other: $OTHER" "$1""#),
        (
            "/echo/both",
            r#"c -H "Authorization: Bearer $TOKEN" -H "X-Other: $OTHER" "$1""#,
        ),
    ] {
        let audit = s.d.join(&format!("audit{}.jsonl", path.replace('/', "-")));
        let out = s.run_env(
            &ctx,
            &flags(&audit),
            &[("OTHER_REAL", &other_value)],
            script,
            &[&s.url("api.test", path)],
        );
        let audit_text = fs::read_to_string(&audit).unwrap_or_default();
        let c = format!("{path}\n{}\n--- audit ---\n{audit_text}", s.dump(&out));
        out.expect_code(0);
        assert_eq!(rc_codes(&out), vec!["0 200"], "{c}");
        let r = s.request(path, &c);
        let other_ph = r.header("x-other").unwrap_or("").to_string();
        assert_eq!(other_ph.len(), other_value.len(), "{c}");
        assert_ne!(other_ph, other_value, "{c}");
        assert_misuse_warned(&out, "OTHER", &c);
        assert!(misuse_lines(&out, "TOKEN").is_empty(), "{c}");
        assert!(
            audit_text
                .lines()
                .any(|l| l.contains("\"warn\"") && l.contains(&misuse_reason("OTHER"))),
            "no warn record for OTHER in the audit log\n{c}"
        );
        assert!(!audit_text.contains(&other_value), "{c}");
        assert!(!audit_text.contains(&s.value), "{c}");
    }
    let r = s.request("/echo/both", "");
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {}", s.value).as_str()),
        "{}",
        s.up.dump()
    );
});

// ---------------------------------------------------------------------------
// Reachability with no HTTP rule, and sources
// ---------------------------------------------------------------------------

both!(secret_alone_makes_its_host_reachable, |ctx| {
    let s = Sec::tls("127.0.0.1");
    let port = s.port();
    // blocked.test: pinned, on the same port, but no rule and no secret
    let blocked =
        TcpServer::start_on("127.0.0.3", s.up.port).expect("bind 127.0.0.3 on the upstream's port");
    let flags = s.flags(&["--add-host", "blocked.test:127.0.0.3"]);
    let blocked_url = format!("https://blocked.test:{port}/");
    let out = s.run(
        &ctx,
        &flags,
        r#"c -H "Authorization: Bearer $TOKEN" "$1"
c "$2"
"#,
        &[&s.url("api.test", "/echo/alone"), &blocked_url],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    // 7: curl could not connect
    assert_eq!(rc_codes(&out), vec!["0 200", "7 000"], "{c}");
    assert_value_upstream(&s, "/echo/alone", &c);
    assert_eq!(blocked.accepted(), 0, "{c}");
    let denied = format!("127.0.0.3:{port}");
    assert!(
        out.denial_lines()
            .iter()
            .any(|l| l.contains("connect") && l.contains(&denied)),
        "no denial line for {denied}\n{c}"
    );

    // twin: with a rule for it, blocked.test is reached
    let mut flags = flags;
    flags.extend(sv(&["--net-allow", &denied]));
    let out = s.run(&ctx, &flags, "c \"$1\"\n", &[&blocked_url]);
    let c = s.dump(&out);
    assert!(blocked.accepted() > 0, "{c}");
});

/// A Command running sandlock (as `ctx` would) with `file` open on
/// descriptor 3: `sh -c 'exec 3<"$0"; exec "$@"' FILE SANDLOCK ARGS...`.
fn with_fd3(ctx: &Ctx, file: &str, args: &[String]) -> Command {
    let bin = if ctx.drop_to_nobody {
        sandlock_for_nobody()
    } else {
        SANDLOCK.to_string()
    };
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", r#"exec 3<"$0"; exec "$@""#, file, &bin])
        .args(args)
        .env_clear()
        .env("PATH", PATH_ENV)
        .env("HOME", "/nonexistent")
        .env("LANG", "C.UTF-8")
        .current_dir("/");
    if ctx.drop_to_nobody {
        cmd.uid(NOBODY).gid(NOBODY);
    }
    cmd
}

both!(file_fd_and_short_form_sources, |ctx| {
    let s = Sec::tls("127.0.0.1");
    let file_value = long_value();
    let fd_value = long_value();
    // outside the sandbox's grants: a file of the test's own
    let src = TempDir::new("secrets-src");
    // one trailing newline is not part of the value
    let file = src.file("file-secret", &format!("{file_value}\n"));
    let fdfile = src.file("fd-secret", &format!("{fd_value}\r\n"));
    let mut flags = s.bare(&[
        "--add-host",
        "api.test:127.0.0.1",
        // the short form reads sandlock's TOKEN; *.api.test covers the apex
        "--secret",
        "TOKEN@*.api.test",
        "--secret",
        &format!("FROMFILE=file:{file}@api.test"),
        "--secret",
        "FROMFD=fd:3@api.test",
    ]);
    let script = format!(
        r#"{PROLOGUE}if {{ true <&3; }} 2>/dev/null; then echo FD3 open; else echo FD3 closed; fi
if cat "$1" >/dev/null 2>&1; then echo FILE readable; else echo FILE unreadable; fi
c -H "Authorization: Bearer $TOKEN" -H "X-File: $FROMFILE" -H "X-Fd: $FROMFD" "$2"
"#
    );
    flags.push("--".into());
    flags.extend(sv(&[
        "/bin/sh",
        "-c",
        &script,
        "sh",
        &file,
        &s.url("api.test", "/echo/sources"),
    ]));
    let mut args = sv(&["run"]);
    args.extend(flags);
    let mut cmd = with_fd3(&ctx, &fdfile, &args);
    cmd.env("TOKEN", &s.value);
    let out = run_cmd(cmd, None, RUN_LIMIT);
    let c = format!(
        "values {:?} {:?} {:?}\n{}\n{}",
        s.value,
        file_value,
        fd_value,
        out.dump(),
        s.up.dump()
    );
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 200"], "{c}");
    let p = placeholder(&out, &s.value, &c);
    assert_eq!(p.len(), s.value.len(), "{c}");
    assert!(
        out.stdout.lines().any(|l| l == "FD3 closed"),
        "the secret's descriptor reached the workload\n{c}"
    );
    assert!(out.stdout.lines().any(|l| l == "FILE unreadable"), "{c}");
    let r = s.request("/echo/sources", &c);
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {}", s.value).as_str()),
        "{c}"
    );
    assert_eq!(r.header("x-file"), Some(file_value.as_str()), "{c}");
    assert_eq!(r.header("x-fd"), Some(fd_value.as_str()), "{c}");
    for v in [&s.value, &file_value, &fd_value] {
        assert_no_value_in_output(&out, v, &c);
    }
});

// ---------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------

/// Runs `sandlock run ARGS -w D -- sh -c 'touch D/ran'` with `env` in
/// sandlock's environment; asserts a non-zero exit, that nothing ran, that
/// stderr names `flag` and `name`, and that none of `hidden` is on stdout or
/// stderr.
#[track_caller]
fn refused(args: &[&str], env: &[(&str, &str)], flag: &str, name: &str, hidden: &[&str]) {
    let d = TempDir::new("secrets-bad");
    let marker = d.join("ran");
    let touch = format!("touch {marker}");
    let mut a: Vec<&str> = args.to_vec();
    let dir = d.s();
    a.extend(["--add-host", "h.test:127.0.0.9", "-w", &dir]);
    let out = Ctx::invoker().sl_env(run_args(&a, &["/bin/sh", "-c", &touch]), env);
    let c = out.dump();
    assert_ne!(out.code(), 0, "{c}");
    assert!(
        !std::path::Path::new(&marker).exists(),
        "the command ran\n{c}"
    );
    assert!(
        out.stderr.contains(flag),
        "stderr does not name {flag}\n{c}"
    );
    assert!(
        out.stderr.contains(name),
        "stderr does not name the secret {name}\n{c}"
    );
    for h in hidden {
        assert!(
            !out.stderr.contains(h) && !out.stdout.contains(h),
            "the output shows {h:?}\n{c}"
        );
    }
}

#[test]
fn malformed_secrets_are_refused_without_showing_values() {
    let (val, dup_a, dup_b) = (long_value(), long_value(), long_value());
    let (nl_a, nl_b) = (
        format!("first{}", random_alnum(20)),
        format!("second{}", random_alnum(20)),
    );
    let (nl, cr) = (format!("{nl_a}\n{nl_b}"), format!("{nl_a}\r{nl_b}"));
    let pasted = format!("ghp_{}", random_alnum(30));
    let (val, dup_a, dup_b, nl_a, nl_b, nl, cr, pasted) = (
        val.as_str(),
        dup_a.as_str(),
        dup_b.as_str(),
        nl_a.as_str(),
        nl_b.as_str(),
        nl.as_str(),
        cr.as_str(),
        pasted.as_str(),
    );
    let pasted_spec = format!("PASTED={pasted}@h.test");
    let d = TempDir::new("secrets-bad-src");
    let long = random_alnum(64 * 1024 + 1);
    let long_file = d.file("long", &long);
    let long_spec = format!("TOOLONG=file:{long_file}@h.test");
    let empty_file = d.file("empty", "\n");
    let empty_file_spec = format!("EMPTYFILE=file:{empty_file}@h.test");
    let long_head = &long[..40];
    type Case<'a> = (
        Vec<&'a str>,
        Vec<(&'a str, &'a str)>,
        &'a str,
        &'a str,
        Vec<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            vec!["--secret", "NOHOSTS"],
            vec![("NOHOSTS", val)],
            "--secret",
            "NOHOSTS",
            vec![val],
        ),
        (
            vec!["--secret", "EMPTYENV=env:@h.test"],
            vec![],
            "--secret",
            "EMPTYENV",
            vec![],
        ),
        (
            vec!["--secret", "BADSCHEME=bad:thing@h.test"],
            vec![],
            "--secret",
            "BADSCHEME",
            vec!["bad:thing"],
        ),
        (
            vec!["--secret", &pasted_spec],
            vec![],
            "--secret",
            "PASTED",
            vec![pasted],
        ),
        (
            vec!["--secret", "NOFILE=file:/nonexistent-sandlock-e2e@h.test"],
            vec![],
            "--secret",
            "NOFILE",
            vec![],
        ),
        (
            vec!["--secret", "UNSET=env:SANDLOCK_E2E_UNSET_VAR@h.test"],
            vec![],
            "--secret",
            "UNSET",
            vec![],
        ),
        (
            vec!["--secret", "NEWLINE=env:NL_VALUE@h.test"],
            vec![("NL_VALUE", nl)],
            "--secret",
            "NEWLINE",
            vec![nl_a, nl_b],
        ),
        (
            vec!["--secret", "CRETURN=env:CR_VALUE@h.test"],
            vec![("CR_VALUE", cr)],
            "--secret",
            "CRETURN",
            vec![nl_a, nl_b],
        ),
        (
            vec!["--secret", "EMPTYVAL=env:EMPTY_VALUE@h.test"],
            vec![("EMPTY_VALUE", "")],
            "--secret",
            "EMPTYVAL",
            vec![],
        ),
        (
            vec!["--secret", &empty_file_spec],
            vec![],
            "--secret",
            "EMPTYFILE",
            vec![],
        ),
        (
            vec!["--secret", &long_spec],
            vec![],
            "--secret",
            "TOOLONG",
            vec![long_head],
        ),
        (
            vec![
                "--secret",
                "DUP=env:DUP_A@h.test",
                "--secret",
                "DUP=env:DUP_B@h.test",
            ],
            vec![("DUP_A", dup_a), ("DUP_B", dup_b)],
            "--secret",
            "DUP",
            vec![dup_a, dup_b],
        ),
        (
            vec!["--secret", "ANYHOST=env:GOOD_VALUE@*"],
            vec![("GOOD_VALUE", val)],
            "--secret",
            "ANYHOST",
            vec![val],
        ),
        (
            vec!["--secret", "ANADDR=env:GOOD_VALUE@127.0.0.1"],
            vec![("GOOD_VALUE", val)],
            "--secret",
            "ANADDR",
            vec![val],
        ),
        (
            vec!["--secret", "STDIN=fd:0@h.test"],
            vec![],
            "--secret",
            "STDIN",
            vec![],
        ),
        (
            vec!["--secret", "NOFD=fd:77@h.test"],
            vec![],
            "--secret",
            "NOFD",
            vec![],
        ),
        (
            vec![
                "--secret",
                "GOOD=env:GOOD_VALUE@h.test",
                "--secret-headers",
                "NOSUCH=authorization",
            ],
            vec![("GOOD_VALUE", val)],
            "--secret-headers",
            "NOSUCH",
            vec![val],
        ),
    ];
    let mut failures = Vec::new();
    for (args, env, flag, name, hidden) in &cases {
        let r = std::panic::catch_unwind(|| refused(args, env, flag, name, hidden));
        if let Err(e) = r {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{}: {msg}", args.join(" ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );

    // twin: well-formed secrets of each form start the workload, which
    // sees placeholders only
    let good_file = d.file("good", &format!("{val}\n"));
    let out = Ctx::invoker().sl_env(
        run_args(
            &[
                "--secret",
                "GOOD=env:GOOD_VALUE@h.test",
                "--secret",
                &format!("GOODFILE=file:{good_file}@*.sl.test,h.test"),
                "--secret",
                "SHORTFORM@h.test;plaintext",
                "--secret-headers",
                "GOOD=authorization,x-api-key",
                "--add-host",
                "h.test:127.0.0.9",
            ],
            &["/bin/sh", "-c", "echo \"ran $GOOD $GOODFILE $SHORTFORM\""],
        ),
        &[("GOOD_VALUE", val), ("SHORTFORM", dup_a)],
    );
    let c = out.dump();
    out.expect_code(0);
    assert!(out.stdout.starts_with("ran "), "{c}");
    let words: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(words.len(), 4, "{c}");
    assert!(
        !out.stdout.contains(val) && !out.stdout.contains(dup_a),
        "{c}"
    );
}

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

both!(misuse_block_refuses_a_misplaced_placeholder, |ctx| {
    let s = Sec::tls("127.0.0.1");
    let flags = |extra: &[&str]| {
        let mut f = vec![
            "--add-host",
            "api.test:127.0.0.1",
            "--add-host",
            "other.test:127.0.0.1",
            "--http-allow",
            "* api.test/*",
        ];
        f.extend_from_slice(extra);
        let secret = Sec::secret("other.test");
        let mut all: Vec<String> = f.iter().map(|x| x.to_string()).collect();
        all.extend(["--secret".to_string(), secret]);
        s.bare(&all.iter().map(String::as_str).collect::<Vec<_>>())
    };
    // the secret is bound to other.test; its placeholder heads for api.test
    let out = s.run(
        &ctx,
        &flags(&["--on-secret-misuse", "block"]),
        BEARER,
        &[&s.url("api.test", "/echo/blocked")],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 403"], "{c}");
    assert!(
        out.stderr
            .lines()
            .any(|l| l.starts_with("sandlock: denied http ")
                && l.contains("placeholder of secret TOKEN")
                && l.contains("--on-secret-misuse block")),
        "{c}"
    );
    assert!(
        s.up.requests().is_empty(),
        "nothing reaches the upstream\n{c}"
    );
    // twin: the default (warn) forwards it with the placeholder
    let out = s.run(
        &ctx,
        &flags(&[]),
        BEARER,
        &[&s.url("api.test", "/echo/warned")],
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 200"], "{c}");
    assert_misuse_warned(&out, "TOKEN", &c);
});

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

// ---------------------------------------------------------------------------
// git over HTTPS with a secret token: the headline case
// ---------------------------------------------------------------------------

/// Runs host git with a clean environment (no system or user config) in
/// `home`, asserting success; returns stdout.
fn host_git(home: &str, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=e2e", "-c", "user.email=e2e@sandlock.test"])
        .args(args)
        .env_clear()
        .env("PATH", PATH_ENV)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run git (apt-get install git): {e}"));
    assert!(
        out.status.success(),
        "git {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Number of commits in the big repository, each adding one file of
/// incompressible bytes.
const BIG_COMMITS: usize = 5;
/// Size of each of those files (5 x 1.2 MB: the clone moves over 6 MB).
const BIG_FILE: usize = 1_200_000;
/// Annotated tags, so that the clone's want list exceeds 1 KiB and git
/// sends its git-upload-pack request gzip'd.
const BIG_TAGS: usize = 30;

/// The checksum of every file of the work tree at the current directory
/// (`.git` left out), one line: `<sha256>  -`.
const TREE_SUM: &str =
    "find . -path ./.git -prune -o -type f -print | LC_ALL=C sort | xargs sha256sum | sha256sum";

/// `DIR/src` (a work tree) and `DIR/root/repo.git` (its bare clone, the
/// --git-root is DIR/root) with BIG_COMMITS commits of BIG_FILE random
/// bytes each (a deterministic xorshift stream) and BIG_TAGS annotated
/// tags; returns (root, src).
fn make_big_repo(d: &TempDir) -> (String, String) {
    let src = d.join("src");
    let root = d.dir("root", 0o755);
    let home = d.s();
    host_git(&home, &["init", "-q", "-b", "main", &src]);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..BIG_COMMITS {
        let mut data = Vec::with_capacity(BIG_FILE);
        while data.len() < BIG_FILE {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.extend_from_slice(&x.to_le_bytes());
        }
        data.truncate(BIG_FILE);
        let name = format!("blob{i}.bin");
        fs::write(format!("{src}/{name}"), &data).unwrap();
        host_git(&home, &["-C", &src, "add", &name]);
        host_git(
            &home,
            &["-C", &src, "commit", "-q", "-m", &format!("big {i}")],
        );
    }
    for t in 0..BIG_TAGS {
        host_git(
            &home,
            &[
                "-C",
                &src,
                "tag",
                "-a",
                "-m",
                &format!("tag {t}"),
                &format!("v0.{t}"),
            ],
        );
    }
    host_git(
        &home,
        &["clone", "-q", "--bare", &src, &format!("{root}/repo.git")],
    );
    // readable by uid 65534 (the upstream itself runs as the test's user)
    let st = Command::new("chmod")
        .args(["-R", "a+rX", &d.s()])
        .status()
        .unwrap();
    assert!(st.success());
    (root, src)
}

/// The host-side checksum of `dir`'s work tree (see TREE_SUM).
fn tree_sum(dir: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", TREE_SUM])
        .current_dir(dir)
        .env_clear()
        .env("PATH", PATH_ENV)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Clones $1 (a full URL) into $2 and prints what the test checks:
/// "PH <placeholder>", "CLONE <rc>", "COMMITS <n>", "SUM <tree checksum>";
/// with $3 = push, also commits a new 1 MB random file and pushes it:
/// "NEW <commit>", "PUSH <rc>".
const GIT_SCRIPT: &str = r#"printf 'PH %s\n' "$GH_TOKEN"
url=$(printf '%s' "$1" | sed "s/@TOKEN@/$GH_TOKEN/")
git -c credential.helper= clone -q "$url" "$2"
echo "CLONE $?"
cd "$2" || exit 1
echo "COMMITS $(git log --oneline | wc -l)"
echo "SUM $(find . -path ./.git -prune -o -type f -print | LC_ALL=C sort | xargs sha256sum | sha256sum)"
[ "$3" = push ] || exit 0
head -c 1048576 /dev/urandom > pushed.bin
git add pushed.bin
git -c user.name=e2e -c user.email=e2e@sandlock.test commit -q -m pushed
echo "NEW $(git rev-parse HEAD)"
git -c credential.helper= push -q origin HEAD:refs/heads/main
echo "PUSH $?"
"#;

/// The upstream's requests and every raw byte it received, read from its
/// log without handing the multi-megabyte base64 strings to `parse_json`
/// (which is quadratic in a string's length): those are cut out by plain
/// string search first.
fn big_log(up: &Upstream) -> (Vec<SeenRequest>, Vec<u8>) {
    std::thread::sleep(std::time::Duration::from_millis(150));
    let text = fs::read_to_string(&up.log).unwrap_or_default();
    let (mut reqs, mut raw) = (Vec::new(), Vec::new());
    for line in text.lines() {
        if let Some((_, b)) = cut_b64(line, "raw_b64") {
            raw.extend(b64decode(b));
            continue;
        }
        if !line.contains("\"event\":\"request\"") {
            continue;
        }
        let (rest, body) = cut_b64(line, "body_b64").unwrap_or((line.to_string(), ""));
        let e = parse_json(&rest).unwrap_or_else(|e| panic!("{rest:?}: {e}"));
        let s = |k: &str| e.get(k).and_then(Json::as_str).unwrap_or("").to_string();
        let mut headers = Vec::new();
        if let Some(Json::Arr(hs)) = e.get("headers") {
            for h in hs {
                if let Json::Arr(kv) = h {
                    let f = |i: usize| kv.get(i).and_then(Json::as_str).unwrap_or("").to_string();
                    headers.push((f(0), f(1)));
                }
            }
        }
        let conn = match e.get("conn") {
            Some(Json::Num(n)) => *n as u64,
            _ => 0,
        };
        reqs.push(SeenRequest {
            conn,
            method: s("method"),
            path: s("path"),
            version: s("version"),
            headers,
            body: b64decode(body),
        });
    }
    (reqs, raw)
}

/// Splits a log line at the string value of `key`: (the line with that
/// value emptied, the value).
fn cut_b64<'a>(line: &'a str, key: &str) -> Option<(String, &'a str)> {
    let k = format!("\"{key}\":\"");
    let start = line.find(&k)? + k.len();
    let len = line[start..].find('"')?;
    let rest = format!("{}{}", &line[..start], &line[start + len..]);
    Some((rest, &line[start..start + len]))
}

/// Like `Sec::dump`, with the upstream log shortened: raw chunks left out
/// and request bodies emptied (the git traffic is megabytes of base64).
fn big_dump(s: &Sec, out: &Out) -> String {
    let text = fs::read_to_string(&s.up.log).unwrap_or_default();
    let log: Vec<String> = text
        .lines()
        .filter(|l| !l.contains("\"raw_b64\""))
        .map(|l| cut_b64(l, "body_b64").map_or(l.to_string(), |(rest, _)| rest))
        .collect();
    format!(
        "real value {:?}\n{}\n--- upstream {}:{} log (no raw chunks, no bodies) ---\n{}",
        s.value,
        out.dump(),
        s.up.ip,
        s.up.port,
        log.join("\n")
    )
}

/// Whether the upstream logged a git http-backend failure.
fn git_errors(up: &Upstream) -> bool {
    fs::read_to_string(&up.log)
        .unwrap_or_default()
        .contains("\"event\":\"git_error\"")
}

/// The value after `key ` on the first stdout line starting with it.
#[track_caller]
fn line_val(out: &Out, key: &str, c: &str) -> String {
    let k = format!("{key} ");
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix(k.as_str()))
        .unwrap_or_else(|| panic!("no {key} line\n{c}"))
        .to_string()
}

both!(git_clone_and_push_with_a_secret_token, |ctx| {
    let repo = TempDir::new("bigrepo");
    let (root, src) = make_big_repo(&repo);
    let want_sum = tree_sum(&src);
    let bare = format!("{root}/repo.git");
    let real = random_alnum(40);
    let auth = format!("x-access-token:{real}");
    let s = Sec::with(
        Upstream::start_with(
            "127.0.0.1",
            true,
            &["--git-root", &root, "--git-auth", &auth],
        ),
        real.clone(),
    );
    let work = s.d.dir("work", 0o777);
    let home = format!("HOME={work}");
    let flags = |secret: &str| {
        s.bare(&[
            "--add-host",
            "git.test:127.0.0.1",
            "--secret",
            secret,
            "-w",
            &work,
            "--env",
            &home,
            "--env",
            "GIT_TERMINAL_PROMPT=0",
            "-t",
            "120",
        ])
    };
    let run = |flags: &[String], args: &[&str]| {
        let mut cmd = sv(&["/bin/sh", "-c", GIT_SCRIPT, "sh"]);
        cmd.extend(sv(args));
        let f: Vec<&str> = flags.iter().map(String::as_str).collect();
        let c: Vec<&str> = cmd.iter().map(String::as_str).collect();
        ctx.sl_env(run_args(&f, &c), &[(VAR, real.as_str())])
    };

    // the URL carries the placeholder: git sends Basic
    // x-access-token:<placeholder> after the 401 challenge
    let url = format!(
        "https://x-access-token:@TOKEN@@git.test:{}/repo.git",
        s.port()
    );
    let out = run(
        &flags(&format!("GH_TOKEN=env:{VAR}@git.test")),
        &[&url, &format!("{work}/clone"), "push"],
    );
    let c = big_dump(&s, &out);
    let p = placeholder(&out, &real, &c);
    assert_eq!(p.len(), real.len(), "{c}");
    assert_no_value_in_output(&out, &real, &c);
    out.expect_code(0);
    assert_eq!(line_val(&out, "CLONE", &c), "0", "{c}");
    assert_eq!(
        line_val(&out, "COMMITS", &c),
        BIG_COMMITS.to_string(),
        "{c}"
    );
    assert_eq!(line_val(&out, "SUM", &c), want_sum, "{c}");
    assert_eq!(line_val(&out, "PUSH", &c), "0", "{c}");
    let new = line_val(&out, "NEW", &c);
    let head = host_git(
        &repo.s(),
        &["--git-dir", &bare, "log", "-1", "--format=%H", "main"],
    );
    assert_eq!(
        head.trim(),
        new,
        "the push did not land in the bare repo\n{c}"
    );
    let count = host_git(
        &repo.s(),
        &["--git-dir", &bare, "rev-list", "--count", "main"],
    );
    assert_eq!(count.trim(), (BIG_COMMITS + 1).to_string(), "{c}");

    // on the wire: the challenge was answered with the real value, the
    // placeholder never arrived, and the big requests went through
    let (reqs, raw) = big_log(&s.up);
    let creds: Vec<String> = reqs
        .iter()
        .filter_map(|r| r.header("authorization"))
        .map(|v| {
            let b = v
                .strip_prefix("Basic ")
                .unwrap_or_else(|| panic!("{v:?}\n{c}"));
            String::from_utf8_lossy(&b64decode(b)).into_owned()
        })
        .collect();
    assert!(!creds.is_empty(), "git never sent credentials\n{c}");
    assert!(
        creds.iter().all(|x| *x == auth),
        "credentials other than x-access-token:<real> reached the upstream: {creds:?}\n{c}"
    );
    assert!(
        !contains(&raw, p.as_bytes()),
        "the placeholder reached the upstream\n{c}"
    );
    let authed = |r: &&SeenRequest| r.header("authorization").is_some();
    assert!(
        reqs.iter().filter(authed).any(|r| r.method == "POST"
            && r.path == "/repo.git/git-upload-pack"
            && r.header("content-encoding") == Some("gzip")),
        "no authenticated gzip'd git-upload-pack request\n{c}"
    );
    assert!(
        reqs.iter().filter(authed).any(|r| r.method == "POST"
            && r.path == "/repo.git/git-receive-pack"
            && r.body.len() > 1_000_000),
        "no authenticated git-receive-pack request carrying the pack\n{c}"
    );
    assert!(!git_errors(&s.up), "{c}");

    // twin: a secret bound to the host but unused (no credentials in the
    // URL, an upstream that asks for none) breaks nothing
    let open = Upstream::start_with("127.0.0.1", true, &["--git-root", &root]);
    let s2 = Sec::with(open, real.clone());
    let flags2 = s2.bare(&[
        "--add-host",
        "git.test:127.0.0.1",
        "--secret",
        &format!("DUMMY=env:{VAR}@git.test"),
        "-w",
        &work,
        "--env",
        &home,
        "--env",
        "GIT_TERMINAL_PROMPT=0",
        "-t",
        "120",
    ]);
    let url2 = format!("https://git.test:{}/repo.git", s2.port());
    let out = run(&flags2, &[&url2, &format!("{work}/plain")]);
    let c = big_dump(&s2, &out);
    assert_no_value_in_output(&out, &real, &c);
    out.expect_code(0);
    assert_eq!(line_val(&out, "CLONE", &c), "0", "{c}");
    // the bare repo now has the pushed commit too
    assert_eq!(
        line_val(&out, "COMMITS", &c),
        (BIG_COMMITS + 1).to_string(),
        "{c}"
    );
    assert_eq!(
        line_val(&out, "SUM", &c),
        tree_sum(&format!("{work}/clone")),
        "{c}"
    );
    assert!(
        big_log(&s2.up)
            .0
            .iter()
            .all(|r| r.header("authorization").is_none()),
        "{c}"
    );
    assert!(!git_errors(&s2.up), "{c}");
});
