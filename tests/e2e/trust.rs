//! Zero-config trust (issue 4): while the proxy terminates TLS, reads of
//! the known PEM trust bundles return the original content followed by the
//! sandbox CA (a sealed memfd), the OpenSSL hashed directory serves the CA
//! under its subject hash, /etc/ssl/certs/sandlock-ca.pem and
//! /etc/ssl/certs/sandlock-bundle.pem exist inside the sandbox only, and
//! SSL_CERT_FILE & co. point at them. Real clients (curl, git, Python
//! urllib and requests, node, openssl s_client) reach a local HTTPS
//! upstream through the proxy with no CA flag at all.
//!
//! The upstream is tests/fixtures/upstream.py behind the tests' private
//! root (given to sandlock with --upstream-ca, never to the client). The
//! sandbox CA is written with --http-ca-out so the test can compare what
//! the workload read with it. tests/fixtures/bundleprobe.c opens the
//! bundles with raw open/openat/openat2 and dumps what it read into a
//! directory of the test (see its header for the ops). Every run also
//! checks that nothing was written to the host's bundles or /etc/ssl/certs.

use crate::common::git::*;
use crate::common::tls::*;
use crate::common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Debian's symlinked spelling of SYSTEM_BUNDLE (OpenSSL's default
/// CAfile, what Python's default context opens).
const SYMLINKED_BUNDLE: &str = "/usr/lib/ssl/cert.pem";
const CA_ONLY: &str = "/etc/ssl/certs/sandlock-ca.pem";
const FULL_BUNDLE: &str = "/etc/ssl/certs/sandlock-bundle.pem";
/// A file next to the bundles that is not one: never substituted.
const NOT_A_BUNDLE: &str = "/etc/ssl/openssl.cnf";

/// The variables sandlock sets for the workload, and their values.
const CA_ENV: [(&str, &str); 5] = [
    ("SSL_CERT_FILE", FULL_BUNDLE),
    ("REQUESTS_CA_BUNDLE", FULL_BUNDLE),
    ("CURL_CA_BUNDLE", FULL_BUNDLE),
    ("GIT_SSL_CAINFO", FULL_BUNDLE),
    ("NODE_EXTRA_CA_CERTS", CA_ONLY),
];

const F_SEAL_WRITE: u32 = 0x8;
const F_SEAL_FUTURE_WRITE: u32 = 0x10;

fn sv(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn run(ctx: &Ctx, flags: &[String], cmd: &[String]) -> Out {
    let f: Vec<&str> = flags.iter().map(String::as_str).collect();
    let c: Vec<&str> = cmd.iter().map(String::as_str).collect();
    ctx.sl(run_args(&f, &c))
}

/// `sh -c SCRIPT sh ARGS...`
fn sh(script: &str, args: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec!["/bin/sh".into(), "-c".into(), script.into(), "sh".into()];
    v.extend(args.iter().map(|s| s.to_string()));
    v
}

/// Removes every ASCII whitespace byte (PEM line breaks, CRLF).
fn squash(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect()
}

/// The certificate PEM blocks of `text`, in order.
fn pem_blocks(text: &str) -> Vec<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut v = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(BEGIN) {
        let Some(j) = rest[i..].find(END) else { break };
        v.push(rest[i..i + j + END.len()].to_string());
        rest = &rest[i + j + END.len()..];
    }
    v
}

fn host_bundle() -> Vec<u8> {
    fs::read(SYSTEM_BUNDLE).unwrap_or_else(|e| panic!("cannot read {SYSTEM_BUNDLE}: {e}"))
}

/// The first certificate of the host's bundle (a host root).
fn host_first_cert() -> String {
    pem_blocks(&String::from_utf8_lossy(&host_bundle()))
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no certificate in {SYSTEM_BUNDLE}"))
}

/// Snapshot of the host's system bundle, checked unchanged at the end of
/// a test, together with the absence of sandlock's virtual files on disk.
struct HostGuard {
    bundle: Vec<u8>,
}

impl HostGuard {
    fn new() -> HostGuard {
        HostGuard {
            bundle: host_bundle(),
        }
    }

    /// Also asserts that the hash file of `ca` (an --http-ca-out PEM) is
    /// not on the host's disk.
    #[track_caller]
    fn check(&self, ca: Option<&str>) {
        assert!(
            host_bundle() == self.bundle,
            "{SYSTEM_BUNDLE} changed on the host's disk"
        );
        for p in [CA_ONLY, FULL_BUNDLE] {
            assert!(
                fs::symlink_metadata(p).is_err(),
                "{p} exists on the host's disk"
            );
        }
        if let Some(ca) = ca {
            let h = ca_hash(ca);
            let p = format!("/etc/ssl/certs/{h}.0");
            assert!(
                fs::symlink_metadata(&p).is_err(),
                "{p} (the sandbox CA's hash file) exists on the host's disk"
            );
        }
    }
}

/// `openssl x509 -hash` of a PEM file.
fn ca_hash(pem: &str) -> String {
    openssl(&["x509", "-hash", "-noout", "-in", pem])
        .trim()
        .to_string()
}

/// A TLS upstream on 127.0.0.1, a temp dir (granted with -r) holding the
/// sandbox CA (--http-ca-out) and an "out" dir (granted with -w) where
/// bundleprobe dumps what it read.
struct Trust {
    up: Upstream,
    d: TempDir,
    /// --http-ca-out path.
    ca: String,
    /// bundleprobe's OUTDIR.
    out: String,
    host: HostGuard,
}

impl Trust {
    fn new() -> Trust {
        Self::with(Upstream::tls("127.0.0.1"))
    }

    fn with(up: Upstream) -> Trust {
        let host = HostGuard::new();
        let d = TempDir::new("trust");
        let ca = d.join("sandbox-ca.pem");
        let out = d.dir("out", 0o777);
        Trust {
            up,
            d,
            ca,
            out,
            host,
        }
    }

    fn port(&self) -> String {
        self.up.port_s()
    }

    fn url(&self, path: &str) -> String {
        format!("https://api.test:{}{path}", self.up.port)
    }

    /// Everything but the HTTP rules: --add-host api.test:127.0.0.1
    /// --http-port P --upstream-ca ROOT --http-ca-out CA -r D -w OUT,
    /// then `extra`. No CA is ever handed to the client.
    fn base(&self, extra: &[&str]) -> Vec<String> {
        let mut v = sv(&[
            "--add-host",
            "api.test:127.0.0.1",
            "--http-port",
            &self.port(),
            "--upstream-ca",
            &tls_files().root_ca,
            "--http-ca-out",
            &self.ca,
            "-r",
            &self.d.s(),
            "-w",
            &self.out,
        ]);
        v.extend(sv(extra));
        v
    }

    /// No proxy at all (sandlock refuses HTTP flags without a rule):
    /// --add-host api.test:127.0.0.1 --net-allow api.test:PORT -r D -w OUT,
    /// then `extra`.
    fn no_proxy(&self, extra: &[&str]) -> Vec<String> {
        let mut v = sv(&[
            "--add-host",
            "api.test:127.0.0.1",
            "--net-allow",
            &format!("api.test:{}", self.port()),
            "-r",
            &self.d.s(),
            "-w",
            &self.out,
        ]);
        v.extend(sv(extra));
        v
    }

    /// `base` plus --http-allow 'GET api.test/*' (the proxy terminates
    /// TLS, so bundles are spliced).
    fn flags(&self, extra: &[&str]) -> Vec<String> {
        let mut v = self.base(&["--http-allow", "GET api.test/*"]);
        v.extend(sv(extra));
        v
    }

    /// The sandbox CA of the last run (PEM, as --http-ca-out wrote it).
    #[track_caller]
    fn ca_pem(&self) -> String {
        fs::read_to_string(&self.ca).unwrap_or_else(|e| panic!("no --http-ca-out file: {e}"))
    }

    /// `bundleprobe OUT OPS...` (the fixture dir is granted with -r).
    fn probe(&self, ctx: &Ctx, flags: &[String], ops: &[&str]) -> Out {
        // a fresh dump dir per run: a stale dump must not pass for a new one
        for e in fs::read_dir(&self.out).unwrap().flatten() {
            let _ = fs::remove_file(e.path());
        }
        let f: Vec<&str> = flags.iter().map(String::as_str).collect();
        let mut args = vec![self.out.as_str()];
        args.extend(ops);
        ctx.sl(fixture_args(&f, "bundleprobe", &args))
    }

    /// What bundleprobe read for `label`.
    #[track_caller]
    fn dumped(&self, label: &str, c: &str) -> Vec<u8> {
        fs::read(format!("{}/{label}", self.out))
            .unwrap_or_else(|e| panic!("no dump for {label}: {e}\n{c}"))
    }

    /// Asserts `label` opened a sealed memfd holding `original` followed
    /// by the sandbox CA of the last run (and nothing else).
    #[track_caller]
    fn assert_spliced(&self, out: &Out, label: &str, original: &[u8], c: &str) {
        let seals = seals_of(out, label, c);
        assert!(
            seals.is_some_and(|s| s & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE) != 0),
            "{label}: not a write-sealed memfd (seals {seals:?})\n{c}"
        );
        assert_appended(&self.dumped(label, c), original, &self.ca_pem(), label, c);
    }

    /// Asserts `label` opened the real file: not a memfd, content
    /// `original`.
    #[track_caller]
    fn assert_real(&self, out: &Out, label: &str, original: &[u8], c: &str) {
        let seals = seals_of(out, label, c);
        assert_eq!(seals, None, "{label}: got a memfd\n{c}");
        let got = self.dumped(label, c);
        assert!(
            got == original,
            "{label}: read {} bytes that are not the real file ({} bytes); tail {:?}\n{c}",
            got.len(),
            original.len(),
            tail(&got)
        );
    }

    fn dump(&self, out: &Out) -> String {
        format!("{}\n{}", out.dump(), self.up.dump())
    }

    /// The end-of-test host checks, with the hash of the last run's CA.
    #[track_caller]
    fn host_unchanged(&self) {
        let ca = Path::new(&self.ca).exists().then_some(self.ca.as_str());
        self.host.check(ca);
    }
}

/// The last 300 bytes of `b`, for messages.
fn tail(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[b.len().saturating_sub(300)..]).into_owned()
}

/// bundleprobe's "LABEL OK size=N seals=S": Some(seals) for a memfd, None
/// for a file that takes no seals. Panics if the open failed.
#[track_caller]
fn seals_of(out: &Out, label: &str, c: &str) -> Option<u32> {
    let v = out
        .probe(label)
        .unwrap_or_else(|e| panic!("{label}: open failed with {e}\n{c}"));
    let s = v
        .split_whitespace()
        .find_map(|w| w.strip_prefix("seals="))
        .unwrap_or_else(|| panic!("{label}: no seals= in {v:?}\n{c}"));
    match s {
        "none" => None,
        hex => Some(
            u32::from_str_radix(hex.trim_start_matches("0x"), 16)
                .unwrap_or_else(|_| panic!("{label}: F_GET_SEALS failed: {s}\n{c}")),
        ),
    }
}

/// Asserts `got` is `original` followed by the PEM `ca` (whitespace
/// between them and at the end aside).
#[track_caller]
fn assert_appended(got: &[u8], original: &[u8], ca: &str, label: &str, c: &str) {
    assert!(
        got.starts_with(original),
        "{label}: does not start with the original content ({} bytes read, {} original)\n{c}",
        got.len(),
        original.len()
    );
    let rest = String::from_utf8_lossy(&got[original.len()..]);
    assert_eq!(
        rest.trim(),
        ca.trim(),
        "{label}: what follows the original content is not the sandbox CA\n{c}"
    );
}

/// The KEY=VALUE lines of an `env` dump.
fn env_of(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn env_get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
    env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// Prints "status <code>" of the body-less GET of $1.
const CURL_STATUS: &str = r#"curl -q -sS -o /dev/null -w 'status %{http_code}\n' "$@""#;

// ---------------------------------------------------------------------------
// Clients with no CA flag
// ---------------------------------------------------------------------------

both!(curl_trusts_the_spliced_system_bundle, |ctx| {
    let s = Trust::new();
    let empty = s.d.dir("empty-capath", 0o755);
    let url = s.url("/echo/curl");

    // the defaults: CURL_CA_BUNDLE, the spliced bundle, the hash dir
    let out = run(&ctx, &s.flags(&[]), &sh(CURL_STATUS, &[&url]));
    let c = s.dump(&out);
    out.expect_code(0).expect_stdout("status 200\n");

    // no env and an empty CApath: the spliced /etc/ssl/certs bundle alone
    let out = run(
        &ctx,
        &s.flags(&["--no-ca-env"]),
        &sh(CURL_STATUS, &["--capath", &empty, &url]),
    );
    let c2 = s.dump(&out);
    out.expect_code(0).expect_stdout("status 200\n");

    // twin: the system bundle served unmodified and no hash dir: curl does
    // not trust the proxy (60: peer certificate cannot be authenticated)
    let out = run(
        &ctx,
        &s.flags(&["--no-default-bundles", "--no-ca-env"]),
        &sh(CURL_STATUS, &["--capath", &empty, &url]),
    );
    let c3 = s.dump(&out);
    assert_eq!(out.code(), 60, "{c3}");
    assert!(out.stderr.contains("certificate"), "{c3}");

    // --no-default-bundles also drops the CA's entry in the hashed
    // directory (/etc/ssl/certs, curl's default CApath): with --no-ca-env,
    // nothing trusts the CA unless told to
    let out = run(
        &ctx,
        &s.flags(&["--no-default-bundles", "--no-ca-env"]),
        &sh(CURL_STATUS, &[&url]),
    );
    let c4 = s.dump(&out);
    assert_eq!(out.code(), 60, "{c4}");

    assert_eq!(
        s.up.paths(),
        vec!["/echo/curl".to_string(), "/echo/curl".into()],
        "{c}\n{c2}\n{c3}\n{c4}"
    );
    s.host_unchanged();
});

const REPO_FILE: &str = "hello from the sandlock trust e2e repository\n";

/// Clones $1 into $2 (no http.sslCAInfo), then prints hello.txt.
const GIT_CLONE: &str = r#"git clone -q "$1" "$2" && cat "$2/hello.txt""#;

both!(git_clone_over_https_without_ca_config, |ctx| {
    let repo = TempDir::new("trust-repo");
    let root = make_repo(&repo, REPO_FILE);
    let s = Trust::with(Upstream::start_with(
        "127.0.0.1",
        true,
        &["--git-root", &root],
    ));
    let work = s.d.dir("work", 0o777);
    let url = format!("https://git.test:{}/repo.git", s.port());
    let home = format!("HOME={work}");
    let flags = |extra: &[&str]| {
        let mut v = s.base(&[
            "--add-host",
            "git.test:127.0.0.1",
            "--http-allow",
            "GET git.test/repo.git/*",
            "--http-allow",
            "POST git.test/repo.git/git-upload-pack",
            "-w",
            &work,
            "--env",
            &home,
        ]);
        v.extend(sv(extra));
        v
    };

    // GIT_SSL_CAINFO from sandlock
    let out = run(
        &ctx,
        &flags(&[]),
        &sh(GIT_CLONE, &[&url, &format!("{work}/a")]),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(out.stdout, REPO_FILE, "{c}");

    // no env: git's TLS library reads the spliced system bundle
    let out = run(
        &ctx,
        &flags(&["--no-ca-env"]),
        &sh(GIT_CLONE, &[&url, &format!("{work}/b")]),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(out.stdout, REPO_FILE, "{c}");
    let fetches = s.up.requests().len();

    // twin: nothing spliced into the system bundle, no env: the clone fails
    // on the certificate before any request
    let out = run(
        &ctx,
        &flags(&["--no-default-bundles", "--no-ca-env"]),
        &sh(GIT_CLONE, &[&url, &format!("{work}/c")]),
    );
    let c = s.dump(&out);
    assert_eq!(out.code(), 128, "{c}");
    assert_eq!(out.stdout, "", "{c}");
    assert!(
        out.stderr.to_ascii_lowercase().contains("certificate"),
        "git does not blame the certificate\n{c}"
    );
    assert_eq!(s.up.requests().len(), fetches, "{c}");
    s.host_unchanged();
});

/// urllib with the default SSL context; prints "status <code>".
const PY_URLLIB: &str = r#"import sys, urllib.request
r = urllib.request.urlopen(sys.argv[1], timeout=10)
print("status", r.status)"#;

/// requests with its default verification (certifi, or REQUESTS_CA_BUNDLE);
/// prints "status <code>", or "SSLError ..." and exits 3.
const PY_REQUESTS: &str = r#"import sys, requests
try:
    r = requests.get(sys.argv[1], timeout=10)
    print("status", r.status_code)
except requests.exceptions.SSLError as e:
    print("SSLError", e)
    sys.exit(3)"#;

fn py(code: &str, args: &[&str]) -> Vec<String> {
    let mut v = sv(&[PYTHON, "-I", "-c", code]);
    v.extend(sv(args));
    v
}

both!(
    python_urllib_and_requests_with_default_verification,
    |ctx| {
        let s = Trust::new();
        let url = s.url("/echo/py");
        for extra in [&[][..], &["--no-ca-env"][..]] {
            let out = run(&ctx, &s.flags(extra), &py(PY_URLLIB, &[&url]));
            out.expect_code(0).expect_stdout("status 200\n");
            let out = run(&ctx, &s.flags(extra), &py(PY_REQUESTS, &[&url]));
            let c = s.dump(&out);
            assert_eq!(out.code(), 0, "{extra:?}\n{c}");
            out.expect_stdout("status 200\n");
        }
        assert_eq!(s.up.paths().len(), 4, "{}", s.up.dump());

        // twin: requests reads only its CA file (certifi's, here Debian's
        // system bundle): served unmodified, it does not trust the proxy
        let out = run(
            &ctx,
            &s.flags(&["--no-default-bundles", "--no-ca-env"]),
            &py(PY_REQUESTS, &[&url]),
        );
        let c = s.dump(&out);
        assert_eq!(out.code(), 3, "{c}");
        assert!(
            out.stdout.starts_with("SSLError") && out.stdout.contains("CERTIFICATE_VERIFY_FAILED"),
            "{c}"
        );
        assert_eq!(s.up.paths().len(), 4, "{c}");
        s.host_unchanged();
    }
);

/// Node's fetch: prints "status <code>", or "error <code>" and exits 1.
const NODE_FETCH: &str = "fetch(process.argv[1])\
.then(r => r.text().then(() => console.log('status ' + r.status)))\
.catch(e => { console.log('error ' + ((e.cause && e.cause.code) || e.message)); process.exit(1); })";

both!(node_fetch_trusts_node_extra_ca_certs, |ctx| {
    let node = PATH_ENV
        .split(':')
        .map(|d| format!("{d}/node"))
        .find(|p| Path::new(p).exists())
        .expect("node is not installed (scripts/deps.sh installs nodejs)");
    let node = node.as_str();
    let s = Trust::new();
    let url = s.url("/echo/node");
    let out = run(&ctx, &s.flags(&[]), &sv(&[node, "-e", NODE_FETCH, &url]));
    out.expect_code(0).expect_stdout("status 200\n");

    // twin: node trusts only its compiled-in roots unless told
    // NODE_EXTRA_CA_CERTS
    let out = run(
        &ctx,
        &s.flags(&["--no-ca-env"]),
        &sv(&[node, "-e", NODE_FETCH, &url]),
    );
    let c = s.dump(&out);
    assert_eq!(out.code(), 1, "{c}");
    assert!(out.stdout.starts_with("error "), "{c}");
    assert!(
        !out.stdout.contains("status"),
        "node got a response without trusting the CA\n{c}"
    );
    assert_eq!(s.up.paths(), vec!["/echo/node".to_string()], "{c}");
    s.host_unchanged();
});

/// s_client against $1 (HOST:PORT) with CApath $2 and no CA file or store;
/// prints s_client's output, then "rc <exit>".
const SCLIENT_CAPATH: &str = r#"openssl s_client -connect "$1" -servername api.test -CApath "$2" -no-CAfile -no-CAstore -verify_return_error </dev/null 2>&1
echo "rc $?""#;

/// s_client with OpenSSL's default CApath (/usr/lib/ssl/certs on Debian, a
/// symlink to /etc/ssl/certs), no CA file or store.
const SCLIENT_DEFAULT_DIR: &str = r#"openssl s_client -connect "$1" -servername api.test -no-CAfile -no-CAstore -verify_return_error </dev/null 2>&1
echo "rc $?""#;

both!(openssl_capath_trusts_the_hash_file, |ctx| {
    let s = Trust::new();
    let hp = format!("api.test:{}", s.port());
    // -no-CAfile: only the hashed directory can make the CA trusted
    let out = run(
        &ctx,
        &s.flags(&["--no-ca-env"]),
        &sh(SCLIENT_CAPATH, &[&hp, "/etc/ssl/certs"]),
    );
    let c = s.dump(&out);
    assert!(out.stdout.contains("Verify return code: 0 (ok)"), "{c}");
    assert!(out.stdout.ends_with("rc 0\n"), "{c}");

    // twin: an empty CApath
    let empty = s.d.dir("empty-capath", 0o755);
    let out = run(
        &ctx,
        &s.flags(&["--no-ca-env"]),
        &sh(SCLIENT_CAPATH, &[&hp, &empty]),
    );
    let c = s.dump(&out);
    assert!(!out.stdout.contains("Verify return code: 0 (ok)"), "{c}");
    assert!(
        out.stdout.contains("verify error") || out.stdout.contains("certificate verify failed"),
        "{c}"
    );
    assert!(!out.stdout.ends_with("rc 0\n"), "{c}");
    s.host_unchanged();
});

/// Prints "hash H" (the CA's subject hash, computed inside), then for each
/// directory D after $2: "stat D SIZE" of D/H.0 and its content into
/// $2/cat-D (slashes as _); last "other N", the number of error lines of
/// reading /etc/ssl/certs/H.1.
const HASH_LOOKUP: &str = r#"ca=$1; out=$2; shift 2
h=$(openssl x509 -hash -noout -in "$ca") || exit 9
echo "hash $h"
for d in "$@"; do
  stat -L -c "stat $d %s" "$d/$h.0"
  cat "$d/$h.0" > "$out/cat-$(echo "$d" | tr / _)"
done
echo "other $(cat /etc/ssl/certs/$h.1 2>&1 >/dev/null | wc -l)""#;

/// Asserts HASH_LOOKUP found the CA in each of `dirs`.
#[track_caller]
fn assert_hash_lookups(s: &Trust, out: &Out, dirs: &[&str], c: &str) {
    out.expect_code(0);
    let ca = s.ca_pem();
    let h = ca_hash(&s.ca);
    assert_eq!(out.stdout_lines()[0], format!("hash {h}"), "{c}");
    for d in dirs {
        let stat = format!("stat {d} ");
        let size = out
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix(&stat))
            .unwrap_or_else(|| panic!("stat of {d}/{h}.0 failed\n{c}"));
        let got = s.dumped(&format!("cat-{}", d.replace('/', "_")), c);
        assert_eq!(size, got.len().to_string(), "{d}: stat size\n{c}");
        assert_eq!(
            String::from_utf8_lossy(&got).trim(),
            ca.trim(),
            "{d}/{h}.0 is not the CA\n{c}"
        );
    }
    // H.1 is not made up: reading it failed with one line on stderr
    assert!(out.stdout.ends_with("other 1\n"), "{c}");
}

both!(hash_file_stat_and_read, |ctx| {
    let s = Trust::new();
    let dirs = ["/etc/ssl/certs", "/etc/ssl/certs/../certs"];
    let mut args = vec![s.ca.as_str(), s.out.as_str()];
    args.extend(dirs);
    let out = run(&ctx, &s.flags(&["--no-ca-env"]), &sh(HASH_LOOKUP, &args));
    let c = s.dump(&out);
    assert_hash_lookups(&s, &out, &dirs, &c);

    // twin: no proxy, no hash file
    let out = run(&ctx, &s.no_proxy(&[]), &sh(HASH_LOOKUP, &args));
    let c = s.dump(&out);
    out.expect_code(0);
    assert!(!out.stdout.contains("stat /"), "{c}");
    s.host_unchanged();
});

both!(
    openssl_default_capath_through_its_symlinked_spelling,
    |ctx| {
        // Debian's OpenSSL looks up /usr/lib/ssl/certs/HASH.0 (/usr/lib/ssl/certs
        // is a symlink to /etc/ssl/certs) when no CApath is given: the hash
        // file must match after canonicalisation like the bundles do
        let s = Trust::new();
        let hp = format!("api.test:{}", s.port());
        let out = run(
            &ctx,
            &s.flags(&["--no-ca-env"]),
            &sh(SCLIENT_DEFAULT_DIR, &[&hp]),
        );
        let c = s.dump(&out);
        assert!(out.stdout.contains("Verify return code: 0 (ok)"), "{c}");
        assert!(out.stdout.ends_with("rc 0\n"), "{c}");

        let dirs = ["/usr/lib/ssl/certs"];
        let args = [s.ca.as_str(), s.out.as_str(), dirs[0]];
        let out = run(&ctx, &s.flags(&["--no-ca-env"]), &sh(HASH_LOOKUP, &args));
        let c = s.dump(&out);
        assert_hash_lookups(&s, &out, &dirs, &c);
        s.host_unchanged();
    }
);

// ---------------------------------------------------------------------------
// How the bundles are opened
// ---------------------------------------------------------------------------

both!(every_spelling_of_the_system_bundle_is_spliced, |ctx| {
    let s = Trust::new();
    let real = host_bundle();
    let other = fs::read(NOT_A_BUNDLE).unwrap();
    let spellings: &[&[&str]] = &[
        &["open", "plain", SYSTEM_BUNDLE],
        &["open", "symlink", SYMLINKED_BUNDLE],
        &[
            "open",
            "dotdot",
            "/etc/ssl/certs/../certs/ca-certificates.crt",
        ],
        &["open", "dot", "/etc/ssl/./certs/ca-certificates.crt"],
        &["open", "dslash", "//etc/ssl/certs/ca-certificates.crt"],
        &[
            "open",
            "inner-dslash",
            "/etc/ssl//certs///ca-certificates.crt",
        ],
        &[
            "open",
            "symlinked-dir",
            "/usr/lib/ssl/certs/ca-certificates.crt",
        ],
        &["openat", "dirfd", "/etc/ssl/certs", "ca-certificates.crt"],
        &[
            "openat",
            "dirfd-dotdot",
            "/etc/ssl/certs",
            "../certs/ca-certificates.crt",
        ],
        &["openat", "dirfd-symlink", "/usr/lib/ssl", "cert.pem"],
        &["openat", "dirfd-abs", "/usr", SYSTEM_BUNDLE],
        &[
            "openat2",
            "openat2-dirfd",
            "/etc/ssl/certs",
            "ca-certificates.crt",
        ],
        &["openat2", "openat2-abs", "-", SYMLINKED_BUNDLE],
        &["chdir", "/etc/ssl"],
        &["openat", "cwd", "-", "certs/ca-certificates.crt"],
        &[
            "openat2",
            "openat2-cwd",
            "-",
            "./certs/../certs/ca-certificates.crt",
        ],
        &["open", "cwd-open", "certs/ca-certificates.crt"],
        &["open", "other", NOT_A_BUNDLE],
        &["openat", "other-dirfd", "/usr/lib/ssl", "openssl.cnf"],
    ];
    let ops: Vec<&str> = spellings.iter().flat_map(|o| o.iter().copied()).collect();
    let out = s.probe(&ctx, &s.flags(&[]), &ops);
    let c = s.dump(&out);
    out.expect_code(0);
    for op in spellings {
        if op[0] == "chdir" {
            continue;
        }
        let label = op[1];
        if label.starts_with("other") {
            s.assert_real(&out, label, &other, &c);
        } else {
            s.assert_spliced(&out, label, &real, &c);
        }
    }

    // twin: no HTTP rule, so nothing is spliced: every spelling reads the
    // real file
    let out = s.probe(&ctx, &s.no_proxy(&[]), &ops);
    let c = s.dump(&out);
    out.expect_code(0);
    for op in spellings {
        if op[0] != "chdir" {
            let label = op[1];
            let want = if label.starts_with("other") {
                &other
            } else {
                &real
            };
            s.assert_real(&out, label, want, &c);
        }
    }
    s.host_unchanged();
});

both!(spliced_bundle_honours_o_cloexec_across_exec, |ctx| {
    let s = Trust::new();
    let real = host_bundle();
    let out = s.probe(&ctx, &s.flags(&[]), &["cloexec", "ce", SYSTEM_BUNDLE]);
    let c = s.dump(&out);
    out.expect_code(0);
    out.expect_ok("ce-flags", "a=1 b=0");
    out.expect_err("ce-a", "EBADF");
    // the inherited one is the spliced memfd
    s.assert_spliced(&out, "ce-b", &real, &c);

    // twin: the real file (no HTTP rule) behaves the same way
    let out = s.probe(&ctx, &s.no_proxy(&[]), &["cloexec", "ce", SYSTEM_BUNDLE]);
    let c = s.dump(&out);
    out.expect_code(0);
    out.expect_ok("ce-flags", "a=1 b=0");
    out.expect_err("ce-a", "EBADF");
    s.assert_real(&out, "ce-b", &real, &c);
    s.host_unchanged();
});

both!(open_for_writing_is_not_substituted, |ctx| {
    let s = Trust::new();
    let real = host_bundle();
    let ops = [
        "wronly",
        "wronly",
        SYSTEM_BUNDLE, //
        "rdwr",
        "rdwr",
        SYSTEM_BUNDLE, //
        "rdwr",
        "rdwr-symlink",
        SYMLINKED_BUNDLE, //
        "open",
        "rdonly",
        SYSTEM_BUNDLE,
    ];
    let out = s.probe(&ctx, &s.flags(&[]), &ops);
    let c = s.dump(&out);
    out.expect_code(0);
    // the kernel's answer (Landlock: /etc is read-only), not a memfd
    for l in ["wronly", "rdwr", "rdwr-symlink"] {
        out.expect_err(l, "EACCES");
    }
    s.assert_spliced(&out, "rdonly", &real, &c);

    // twin: the same answers without the proxy
    let out = s.probe(&ctx, &s.no_proxy(&[]), &ops);
    let c = s.dump(&out);
    out.expect_code(0);
    for l in ["wronly", "rdwr", "rdwr-symlink"] {
        out.expect_err(l, "EACCES");
    }
    s.assert_real(&out, "rdonly", &real, &c);
    s.host_unchanged();
});

both!(a_thousand_concurrent_opens_all_see_the_ca, |ctx| {
    let s = Trust::new();
    let ops = [
        "threads",
        "t",
        "1000",
        SYSTEM_BUNDLE,
        &s.ca, //
        // twin: the check fails on a file that is not spliced
        "threads",
        "u",
        "10",
        NOT_A_BUNDLE,
        &s.ca,
    ];
    let out = s.probe(&ctx, &s.flags(&[]), &ops);
    let c = s.dump(&out);
    out.expect_code(0);
    out.expect_ok("t", "ok=1000 fail=0");
    out.expect_ok("u", "ok=0 fail=10");
    assert!(
        out.elapsed < std::time::Duration::from_secs(10),
        "1000 opens took {:?}\n{c}",
        out.elapsed
    );
    s.host_unchanged();
});

// ---------------------------------------------------------------------------
// --http-inject-ca, --no-default-bundles, --trust-host-cas
// ---------------------------------------------------------------------------

both!(http_inject_ca_missing_path_fails_at_startup, |ctx| {
    let s = Trust::new();
    let out = run(
        &ctx,
        &s.flags(&["--http-inject-ca", "/nonexistent/x.pem"]),
        &sv(&["/bin/echo", "workload ran"]),
    );
    let c = s.dump(&out);
    assert!(out.code() == 125 || out.code() == 2, "{c}");
    assert_eq!(out.stdout, "", "{c}");
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains("--http-inject-ca") && l.contains("/nonexistent/x.pem")),
        "the error does not name the flag and the path\n{c}"
    );
    assert!(s.up.entries().is_empty(), "{c}");
});

both!(http_inject_ca_splices_a_named_bundle, |ctx| {
    let s = Trust::new();
    let f = tls_files();
    let mine = fs::read_to_string(&f.user_ca).unwrap();
    let bundle = s.d.file("extra/bundle.pem", &mine);
    let real = host_bundle();
    let ops = ["open", "mine", &bundle, "open", "system", SYSTEM_BUNDLE];

    let out = s.probe(&ctx, &s.flags(&["--http-inject-ca", &bundle]), &ops);
    let c = s.dump(&out);
    out.expect_code(0);
    s.assert_spliced(&out, "mine", mine.as_bytes(), &c);
    s.assert_spliced(&out, "system", &real, &c);

    // twin: the same file without the flag is read unmodified
    let out = s.probe(&ctx, &s.flags(&[]), &ops);
    let c = s.dump(&out);
    out.expect_code(0);
    s.assert_real(&out, "mine", mine.as_bytes(), &c);
    s.assert_spliced(&out, "system", &real, &c);

    // --no-default-bundles: only the named bundle (and sandlock's own
    // files) carry the CA; the system bundle is served unmodified
    let ops = [
        "open",
        "mine",
        &bundle, //
        "open",
        "system",
        SYSTEM_BUNDLE, //
        "open",
        "symlink",
        SYMLINKED_BUNDLE, //
        "open",
        "ca-only",
        CA_ONLY, //
        "open",
        "full",
        FULL_BUNDLE,
    ];
    let out = s.probe(
        &ctx,
        &s.flags(&["--no-default-bundles", "--http-inject-ca", &bundle]),
        &ops,
    );
    let c = s.dump(&out);
    out.expect_code(0);
    s.assert_spliced(&out, "mine", mine.as_bytes(), &c);
    s.assert_real(&out, "system", &real, &c);
    s.assert_real(&out, "symlink", &real, &c);
    let ca = s.ca_pem();
    assert_eq!(
        String::from_utf8_lossy(&s.dumped("ca-only", &c)),
        ca,
        "{CA_ONLY}\n{c}"
    );
    let full = s.dumped("full", &c);
    assert!(
        String::from_utf8_lossy(&full)
            .trim_end()
            .ends_with(ca.trim_end()),
        "{FULL_BUNDLE} does not end with the CA: {:?}\n{c}",
        tail(&full)
    );
    s.host_unchanged();
});

both!(
    trust_host_cas_appends_host_roots_to_certifi_bundles,
    |ctx| {
        let s = Trust::new();
        let f = tls_files();
        let unrelated = fs::read_to_string(&f.user_ca).unwrap();
        let certifi = s.d.file("site-packages/certifi/cacert.pem", &unrelated);
        let ops = ["open", "certifi", &certifi];

        let out = s.probe(&ctx, &s.flags(&["--trust-host-cas"]), &ops);
        let c = s.dump(&out);
        out.expect_code(0);
        let got = s.dumped("certifi", &c);
        let ca = s.ca_pem();
        assert!(
            got.starts_with(unrelated.as_bytes()),
            "the certifi bundle's own cert is not first\n{c}"
        );
        let flat = squash(&got);
        let host = squash(host_first_cert().as_bytes());
        let at_host = flat
            .find(&host)
            .unwrap_or_else(|| panic!("the host's first root is not in the spliced bundle\n{c}"));
        assert!(at_host >= squash(unrelated.as_bytes()).len(), "{c}");
        assert!(
            flat.ends_with(&squash(ca.as_bytes())),
            "the spliced bundle does not end with the CA: {:?}\n{c}",
            tail(&got)
        );
        assert!(
            at_host + host.len() <= flat.len() - squash(ca.as_bytes()).len(),
            "{c}"
        );
        assert!(
            seals_of(&out, "certifi", &c).is_some(),
            "certifi bundle: not a memfd\n{c}"
        );

        // twin: without --trust-host-cas, that cert then the CA only
        let out = s.probe(&ctx, &s.flags(&[]), &ops);
        let c = s.dump(&out);
        out.expect_code(0);
        s.assert_spliced(&out, "certifi", unrelated.as_bytes(), &c);
        assert!(!squash(&s.dumped("certifi", &c)).contains(&host), "{c}");
        s.host_unchanged();
    }
);

/// certifi bundles shipped on the host (Debian's python3-certifi and pip's
/// vendored copy), checked when present.
const HOST_CERTIFI: [&str; 2] = [
    "/usr/lib/python3/dist-packages/certifi/cacert.pem",
    "/usr/lib/python3/dist-packages/pip/_vendor/certifi/cacert.pem",
];

both!(certifi_bundles_matched_by_canonical_suffix, |ctx| {
    let s = Trust::new();
    let mine = fs::read_to_string(&tls_files().user_ca).unwrap();
    let certifi = s.d.file("site-packages/certifi/cacert.pem", &mine);
    let other = s.d.file("other/cacert.pem", &mine);
    std::os::unix::fs::symlink(s.d.join("site-packages"), s.d.join("sp")).unwrap();
    let via_link = s.d.join("sp/certifi/cacert.pem");
    let dotdot = s.d.join("site-packages/certifi/../certifi/cacert.pem");
    let certifi_dir = s.d.join("site-packages/certifi");
    let mut ops: Vec<String> = sv(&[
        "open",
        "direct",
        &certifi, //
        "open",
        "symlinked-dir",
        &via_link, //
        "open",
        "dotdot",
        &dotdot, //
        "openat",
        "dirfd",
        &certifi_dir,
        "cacert.pem", //
        "openat2",
        "openat2",
        &certifi_dir,
        "cacert.pem", //
        "open",
        "other",
        &other,
    ]);
    let host: Vec<(String, &str)> = HOST_CERTIFI
        .iter()
        .filter(|p| Path::new(p).exists())
        .enumerate()
        .map(|(i, p)| (format!("host{i}"), *p))
        .collect();
    for (label, p) in &host {
        ops.extend(sv(&["open", label, p]));
    }
    let o: Vec<&str> = ops.iter().map(String::as_str).collect();
    let out = s.probe(&ctx, &s.flags(&[]), &o);
    let c = s.dump(&out);
    out.expect_code(0);
    for l in ["direct", "symlinked-dir", "dotdot", "dirfd", "openat2"] {
        s.assert_spliced(&out, l, mine.as_bytes(), &c);
    }
    // not under a certifi directory
    s.assert_real(&out, "other", mine.as_bytes(), &c);
    for (label, p) in &host {
        s.assert_spliced(&out, label, &fs::read(p).unwrap(), &c);
    }

    // twin: no proxy, every one of them is the real file
    let out = s.probe(&ctx, &s.no_proxy(&[]), &o);
    let c = s.dump(&out);
    out.expect_code(0);
    for l in [
        "direct",
        "symlinked-dir",
        "dotdot",
        "dirfd",
        "openat2",
        "other",
    ] {
        s.assert_real(&out, l, mine.as_bytes(), &c);
    }
    for (label, p) in &host {
        s.assert_real(&out, label, &fs::read(p).unwrap(), &c);
    }
    s.host_unchanged();
});

// ---------------------------------------------------------------------------
// sandlock's own files, the environment, no proxy
// ---------------------------------------------------------------------------

/// `env`, then bundleprobe OUT OPS...
const ENV_THEN: &str = r#"env; exec "$@""#;

both!(virtual_ca_files_and_environment, |ctx| {
    let s = Trust::new();
    let ops = [
        "open",
        "ca-only",
        CA_ONLY,
        "open",
        "full",
        FULL_BUNDLE,
        "stat",
        "ca-stat",
        CA_ONLY,
    ];
    let with_probe = |flags: Vec<String>| {
        let mut args = vec![fixture("bundleprobe"), s.out.clone()];
        args.extend(sv(&ops));
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut f = flags;
        f.extend(sv(&["-r", &fixdir()]));
        run(&ctx, &f, &sh(ENV_THEN, &a))
    };

    let out = with_probe(s.flags(&[]));
    let c = s.dump(&out);
    out.expect_code(0);
    let ca = s.ca_pem();
    assert_eq!(
        String::from_utf8_lossy(&s.dumped("ca-only", &c)),
        ca,
        "{CA_ONLY} is not the --http-ca-out file\n{c}"
    );
    out.expect_ok("ca-stat", &format!("size={}", ca.len()));
    let full = s.dumped("full", &c);
    let full_s = String::from_utf8_lossy(&full);
    assert!(
        full_s.trim_end().ends_with(ca.trim_end()),
        "{FULL_BUNDLE} does not end with the CA\n{c}"
    );
    assert!(
        squash(&full).contains(&squash(host_first_cert().as_bytes())),
        "{FULL_BUNDLE} lacks the system roots\n{c}"
    );
    let env = env_of(&out.stdout);
    for (k, v) in CA_ENV {
        assert_eq!(env_get(&env, k), Some(v), "{k}\n{c}");
    }

    // the user's own value wins; the others are still set
    let out = with_probe(s.flags(&["--env", "SSL_CERT_FILE=/x"]));
    let c = s.dump(&out);
    out.expect_code(0);
    let env = env_of(&out.stdout);
    for (k, v) in CA_ENV {
        let want = if k == "SSL_CERT_FILE" { "/x" } else { v };
        assert_eq!(env_get(&env, k), Some(want), "{k}\n{c}");
    }

    // --no-ca-env: none of them, the files are still there
    let out = with_probe(s.flags(&["--no-ca-env"]));
    let c = s.dump(&out);
    out.expect_code(0);
    let env = env_of(&out.stdout);
    for (k, _) in CA_ENV {
        assert_eq!(env_get(&env, k), None, "{k}\n{c}");
    }
    assert_eq!(
        String::from_utf8_lossy(&s.dumped("ca-only", &c)),
        s.ca_pem(),
        "{c}"
    );
    s.host_unchanged();
});

both!(without_an_http_rule_nothing_is_spliced, |ctx| {
    let s = Trust::new();
    let real = host_bundle();
    let ops = [
        "open",
        "plain",
        SYSTEM_BUNDLE, //
        "open",
        "symlink",
        SYMLINKED_BUNDLE, //
        "open",
        "ca-only",
        CA_ONLY, //
        "open",
        "full",
        FULL_BUNDLE,
    ];
    let mut args = vec![fixture("bundleprobe"), s.out.clone()];
    args.extend(sv(&ops));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut flags = s.no_proxy(&[]);
    flags.extend(sv(&["-r", &fixdir()]));
    let out = run(&ctx, &flags, &sh(ENV_THEN, &a));
    let c = s.dump(&out);
    out.expect_code(0);
    s.assert_real(&out, "plain", &real, &c);
    s.assert_real(&out, "symlink", &real, &c);
    out.expect_err("ca-only", "ENOENT");
    out.expect_err("full", "ENOENT");
    let env = env_of(&out.stdout);
    for (k, _) in CA_ENV {
        assert_eq!(env_get(&env, k), None, "{k}\n{c}");
    }
    s.host_unchanged();
});

// A bundle the sandbox may not read is refused rather than spliced: a
// splice would show the workload a file Landlock keeps from it.
both!(http_inject_ca_outside_the_grants_is_refused, |ctx| {
    let s = Trust::new();
    let outside = TempDir::new("trust-outside");
    let bundle = outside.file(
        "hidden.pem",
        &fs::read_to_string(&tls_files().user_ca).unwrap(),
    );
    fs::set_permissions(outside.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let out = run(
        &ctx,
        &s.flags(&["--http-inject-ca", &bundle]),
        &sv(&["/bin/echo", "workload ran"]),
    );
    let c = s.dump(&out);
    assert_eq!(out.code(), 125, "{c}");
    assert_eq!(out.stdout, "", "{c}");
    assert!(
        out.stderr.lines().any(|l| l.contains("--http-inject-ca")
            && l.contains(&bundle)
            && l.contains("outside what the sandbox may read")),
        "{c}"
    );
    // twin: granted with -r, the same bundle is served spliced
    let out = run(
        &ctx,
        &s.flags(&["--http-inject-ca", &bundle, "-r", &outside.s()]),
        &sv(&["/bin/echo", "workload ran"]),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(out.stdout, "workload ran\n", "{c}");
});
