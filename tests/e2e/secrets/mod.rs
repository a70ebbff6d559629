//! Secrets (issue 5): `--secret NAME=SOURCE@HOSTS` gives the
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
//! never through its argv. Curl writes response bodies to /dev/null where a
//! test looks at what went upstream; `scrub` and `scrub_encoded` look at
//! what comes back.
//!
//! Every attack (a gate that does not hold) has a twin where the gate
//! holds and the value does go out, so a test cannot pass merely because
//! substitution is broken.
//!
//! This file holds the shared setup and helpers; the tests are grouped by
//! concern: `substitution` (header, Basic, URL, bodies, chunks, HTTP/2,
//! --secret-headers), `gates` (the four gates, the DNS pin through the
//! interceptor, misuse warn/block, reachability), `scrub` (response
//! scrubbing, the value nowhere), `scrub_encoded` (gzip, deflate and zstd
//! responses), `roundtrip` (a value read back from any host, in any
//! spelling or transfer coding; untouched responses), `encoded` (encoded
//! request bodies), `spool` (bodies held on disk), `git` (clone and push
//! with a token), `input` (sources, malformed specs), `large` (a GiB upload
//! in bounded memory).

mod encoded;
mod gates;
mod git;
mod input;
mod large;
mod reach;
mod roundtrip;
mod scrub;
mod scrub_encoded;
mod spool;
mod substitution;

use crate::common::git::*;
use crate::common::tls::*;
use crate::common::*;
use std::fs;
use std::io::Read;
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

/// Standard base64 with padding (the form of an HTTP Basic credential).
pub fn b64encode(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
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
        run_cmd(self.command(ctx, flags, env, script, args), None, RUN_LIMIT)
    }

    /// The `sandlock run` command of `run_env`, not started yet.
    fn command(
        &self,
        ctx: &Ctx,
        flags: &[String],
        env: &[(&str, &str)],
        script: &str,
        args: &[&str],
    ) -> Command {
        let body = format!("{PROLOGUE}{script}");
        let mut cmd = sv(&["/bin/sh", "-c", &body, "sh"]);
        cmd.extend(sv(args));
        let f: Vec<&str> = flags.iter().map(String::as_str).collect();
        let c: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let mut command = ctx.command(run_args(&f, &c));
        command.env(VAR, &self.value);
        for (k, v) in env {
            command.env(k, v);
        }
        command
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
/// The number on the workload's stdout line starting with `key` (such as
/// a VmHWM the script printed).
#[track_caller]
fn stdout_u64(out: &Out, key: &str, c: &str) -> u64 {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key:?} line\n{c}"))
}

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

#[track_caller]
fn assert_value_upstream(s: &Sec, path: &str, c: &str) {
    let r = s.request(path, c);
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {}", s.value).as_str()),
        "{c}"
    );
}

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
