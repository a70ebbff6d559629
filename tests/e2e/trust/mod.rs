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
//!
//! This file holds the shared setup and helpers; the tests are grouped by
//! concern: `clients` (curl, git, Python urllib and requests, node, openssl
//! s_client, the hashed directory), `java` (JKS and PKCS#12 key stores),
//! `matrix` (the client matrix: HTTP/2, gRPC, wss, bun, deno, Go, wget,
//! pip, uv, npm, cargo), `opens` (spellings of the bundle paths,
//! O_CLOEXEC, writes, concurrency), `options` (--http-inject-ca,
//! --no-default-bundles, --trust-host-cas, certifi bundles) and `own_files`
//! (sandlock's virtual files and environment, no proxy, grants).

mod clients;
mod java;
mod matrix;
mod opens;
mod options;
mod own_files;

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

/// The path of `name` on the tests' PATH; scripts/deps.sh installs
/// `package` for it.
pub(super) fn installed(name: &str, package: &str) -> String {
    PATH_ENV
        .split(':')
        .map(|d| format!("{d}/{name}"))
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| panic!("{name} is not installed (scripts/deps.sh installs {package})"))
}
