//! The transparent HTTP(S) proxy: --http-allow / --http-deny ACLs (with
//! path normalisation), TLS interception with the sandbox CA
//! (--http-ca-out, --http-ca/--http-key), upstream verification
//! (--upstream-ca), --http-bypass, plaintext Host pinning, keep-alive,
//! IPv6, WebSocket upgrades, exact bytes both ways, and the responses
//! sandlock makes itself (400, 403, 421, 431, 502, 504).
//!
//! The upstream is tests/fixtures/upstream.py (with --git-root it also
//! serves git's smart HTTP through git http-backend), or nginx for HTTP/2,
//! run by the test process on a loopback address and an ephemeral port
//! (passed with --http-port, so the uid 65534 variant needs no privileged
//! port). upstream.py logs every byte it receives, so each test checks what
//! actually reached it. Clients inside
//! the sandbox are curl, openssl s_client and tests/fixtures/httpclient.py
//! (raw bytes, WebSocket, urllib, requests, HTTP/2 with trailers, a
//! ClientHello in one-byte segments), and git. curl negotiates HTTP/2 with
//! the proxy unless told --http1.1; the proxy speaks HTTP/1.1 to
//! upstream.py (which offers only http/1.1) and HTTP/2 to nginx.
//!
//! This file holds the shared setup and helpers; the tests are grouped by
//! concern: `acl` (allow/deny, normalisation, plaintext pinning, Host vs
//! SNI, keep-alive, pipelining), `tls` (certificates, 502, bypass, user CA,
//! split ClientHello), `bypass` (a bypass follows the destination, not the
//! SNI; a bypassed host with path rules is refused at start), `bodies`
//! (exact bytes, downloads, WebSocket, 100-continue), `h2` (an HTTP/2
//! upstream, trailers), `clients` (urllib, requests, git, IPv6), `reach`
//! (which ports are intercepted, UDP to them), `malformed` (431, 400,
//! smuggling, 504, garbage, upstream resets), `paths` (encoded separators),
//! `upgrade` (only a completed WebSocket handshake becomes a tunnel), `trace`
//! (the per-request timing trace holds times only).

mod acl;
mod bodies;
mod bypass;
mod clients;
mod h2;
mod malformed;
mod paths;
mod reach;
mod tls;
mod trace;
mod upgrade;

use crate::common::git::*;
use crate::common::tls::*;
use crate::common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// curl's --write-out: each transfer's body is followed by this marker.
const WOUT: &str = "\n@@%{http_code} %{num_connects}@@\n";

/// One transfer reported by curl.
#[derive(Debug, Clone, PartialEq)]
struct Resp {
    code: u16,
    /// New connections curl opened for this transfer (0 = reused).
    connects: u32,
    body: String,
}

/// Splits curl's stdout (bodies followed by WOUT markers) into transfers.
fn resps(out: &Out) -> Vec<Resp> {
    let mut v = Vec::new();
    let mut rest = out.stdout.as_str();
    while let Some(i) = rest.find("\n@@") {
        let body = &rest[..i];
        let after = &rest[i + 3..];
        let end = after
            .find("@@\n")
            .unwrap_or_else(|| panic!("unterminated curl marker\n{}", out.dump()));
        let (code, conns) = after[..end]
            .split_once(' ')
            .unwrap_or_else(|| panic!("bad curl marker\n{}", out.dump()));
        v.push(Resp {
            code: code.parse().unwrap(),
            connects: conns.parse().unwrap(),
            body: body.to_string(),
        });
        rest = &after[end + 3..];
    }
    v
}

/// The single transfer of a one-URL curl run.
#[track_caller]
fn resp1(out: &Out) -> Resp {
    let v = resps(out);
    assert_eq!(v.len(), 1, "expected one transfer\n{}", out.dump());
    v.into_iter().next().unwrap()
}

/// `curl -q -sS --path-as-is [--cacert CA] -w WOUT EXTRA... URLS...`
fn curl(ca: Option<&str>, extra: &[&str], urls: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ["curl", "-q", "-sS", "--path-as-is"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if let Some(ca) = ca {
        v.push("--cacert".into());
        v.push(ca.into());
    }
    v.push("-w".into());
    v.push(WOUT.into());
    v.extend(extra.iter().map(|s| s.to_string()));
    v.extend(urls.iter().map(|s| s.to_string()));
    v
}

/// `sh -c SCRIPT sh ARGS...`
fn sh(script: &str, args: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec!["/bin/sh".into(), "-c".into(), script.into(), "sh".into()];
    v.extend(args.iter().map(|s| s.to_string()));
    v
}

/// One curl per (METHOD, URL), each on a fresh connection.
const CURL_EACH: &str = r#"ca=$1; shift
while [ $# -gt 1 ]; do
  curl -q -sS --path-as-is --cacert "$ca" -X "$1" -w "\n@@%{http_code} %{num_connects}@@\n" "$2"
  shift 2
done"#;

/// Prints "R <curl exit> <http code>" for a curl trusting only $1, for
/// each URL after it. The empty private TMPDIR is its CA path, so the
/// sandbox CA's hashed-directory entry in /etc/ssl/certs (zero-config
/// trust) does not count.
const CURL_RC: &str = r#"ca=$1; shift
for u in "$@"; do
  code=$(curl -q -sS -o /dev/null --cacert "$ca" --capath "$TMPDIR" -w '%{http_code}' "$u")
  echo "R $? $code"
done"#;

/// The "R <rc> <code>" lines printed by CURL_RC.
fn rc_lines(out: &Out) -> Vec<String> {
    out.stdout
        .lines()
        .filter(|l| l.starts_with("R "))
        .map(str::to_string)
        .collect()
}

fn run(ctx: &Ctx, flags: &[String], cmd: &[String]) -> Out {
    let f: Vec<&str> = flags.iter().map(String::as_str).collect();
    let c: Vec<&str> = cmd.iter().map(String::as_str).collect();
    ctx.sl(run_args(&f, &c))
}

fn sv(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// An upstream plus a temp dir holding the sandbox CA (--http-ca-out) and
/// request files; the dir is granted to the workload with -r.
struct Setup {
    up: Upstream,
    d: TempDir,
    /// --http-ca-out path.
    ca: String,
}

impl Setup {
    fn tls(ip: &str) -> Setup {
        Self::with(Upstream::tls(ip))
    }

    fn plain(ip: &str) -> Setup {
        Self::with(Upstream::plain(ip))
    }

    fn with(up: Upstream) -> Setup {
        let d = TempDir::new("http");
        let ca = d.join("sandbox-ca.pem");
        Setup { up, d, ca }
    }

    fn port(&self) -> String {
        self.up.port_s()
    }

    fn url(&self, host: &str, path: &str) -> String {
        let scheme = if self.up.tls { "https" } else { "http" };
        format!("{scheme}://{host}:{}{path}", self.up.port)
    }

    /// `NAME:PORT` as curl and the upstream see it in Host.
    fn host(&self, name: &str) -> String {
        format!("{name}:{}", self.up.port)
    }

    /// --add-host api.test:127.0.0.1 (or v6.test:::1 for a ::1 upstream)
    /// --http-port P --upstream-ca ROOT --http-ca-out CA -r D -r TLSDIR,
    /// then `extra`.
    fn flags(&self, extra: &[&str]) -> Vec<String> {
        let f = tls_files();
        let name = if self.up.ip == "::1" {
            "v6.test:::1"
        } else {
            "api.test:127.0.0.1"
        };
        let mut v = sv(&[
            "--add-host",
            name,
            "--http-port",
            &self.port(),
            "--upstream-ca",
            &f.root_ca,
            "--http-ca-out",
            &self.ca,
            "-r",
            &self.d.s(),
            "-r",
            &f.dir,
        ]);
        v.extend(sv(extra));
        v
    }

    /// Writes a request file (0644) in the temp dir; returns its path.
    fn bytes_file(&self, name: &str, data: &[u8]) -> String {
        let p = self.d.join(name);
        fs::write(&p, data).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        p
    }

    fn dump(&self, out: &Out) -> String {
        format!("{}\n{}", out.dump(), self.up.dump())
    }
}

/// Asserts `r` is a response sandlock made itself: status `code`, a body of
/// one line starting "sandlock:" that contains `needle`, explained on
/// sandlock's stderr too (see `assert_explained`).
#[track_caller]
fn assert_sandlock_reply(r: &Resp, code: u16, needle: &str, out: &Out, ctx: &str) {
    assert_eq!(r.code, code, "status of {r:?}\n{ctx}");
    let line = r.body.trim_end_matches(['\r', '\n']);
    assert!(
        line.starts_with("sandlock:") && !line.contains('\n'),
        "body is not one sandlock: line: {:?}\n{ctx}",
        r.body
    );
    assert!(
        line.contains(needle),
        "body {line:?} does not name {needle:?}\n{ctx}"
    );
    assert_explained(line, out, ctx);
}

/// The body line of a sandlock-made response ("sandlock: CODE [METHOD]
/// TARGET: REASON") is on sandlock's stderr, either verbatim or as a
/// denial line naming the same target and reason ("sandlock: denied http
/// METHOD TARGET from pid N (comm): REASON").
#[track_caller]
fn assert_explained(line: &str, out: &Out, ctx: &str) {
    let verbatim = out.stderr.lines().any(|l| l.trim_end() == line);
    let parts = line
        .strip_prefix("sandlock: ")
        .and_then(|rest| rest.split_once(": "))
        .and_then(|(head, reason)| {
            // head is "CODE [METHOD] TARGET"
            let target = head.rsplit(' ').next()?;
            Some((target.to_string(), reason.to_string()))
        });
    let denial = parts.as_ref().is_some_and(|(target, reason)| {
        out.stderr.lines().any(|l| {
            l.starts_with("sandlock: ")
                && l.contains(target.as_str())
                && l.contains(reason.as_str())
        })
    });
    assert!(
        verbatim || denial,
        "the reply {line:?} is not explained on sandlock's stderr\n{ctx}"
    );
}

/// The /echo JSON document of a response body.
#[track_caller]
fn echo_doc(r: &Resp, ctx: &str) -> Value {
    assert_eq!(r.code, 200, "{r:?}\n{ctx}");
    serde_json::from_str(&r.body)
        .unwrap_or_else(|e| panic!("echo body is not JSON ({e}): {r:?}\n{ctx}"))
}

/// Header `name` of an /echo document.
fn echo_header(doc: &Value, name: &str) -> Option<String> {
    match doc.get("headers") {
        Some(Value::Array(hs)) => hs.iter().find_map(|h| match h {
            Value::Array(kv) if kv.len() == 2 && kv[0].as_str()?.eq_ignore_ascii_case(name) => {
                kv[1].as_str().map(str::to_string)
            }
            _ => None,
        }),
        _ => None,
    }
}

/// Asserts the upstream got no request bytes at all (a TLS handshake or a
/// bare connection is tolerated, a single request byte is not).
#[track_caller]
fn assert_upstream_untouched(s: &Setup, ctx: &str) {
    let raw = s.up.raw_all();
    assert!(
        raw.is_empty(),
        "upstream received {:?}\n{ctx}",
        String::from_utf8_lossy(&raw)
    );
}

/// One response read off the wire by `httpclient.py raw`.
#[derive(Debug)]
struct RawResp {
    code: u16,
    headers: Vec<(String, String)>,
    /// The body, de-chunked.
    body: String,
}

impl RawResp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Splits the stdout of `httpclient.py raw` into HTTP/1.1 responses
/// (Content-Length, chunked, or delimited by the end of the stream).
fn raw_responses(out: &Out) -> Vec<RawResp> {
    raw_responses_in(&out.stdout)
}

/// `raw_responses` of any text (the responses, then an optional
/// "@@END" line).
fn raw_responses_in(all: &str) -> Vec<RawResp> {
    let mut rest = match all.rfind("\n@@END ") {
        Some(i) => &all[..i],
        None => all,
    };
    let mut v = Vec::new();
    while rest.starts_with("HTTP/") {
        let Some((head, after)) = rest.split_once("\r\n\r\n") else {
            break;
        };
        let mut lines = head.split("\r\n");
        let code = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let hv = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let chunked =
            hv("transfer-encoding").is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
        let (body, next) = if code / 100 == 1 || code == 204 || code == 304 {
            (String::new(), after)
        } else if chunked {
            let mut body = String::new();
            let mut r = after;
            loop {
                let Some((size, tail)) = r.split_once("\r\n") else {
                    r = "";
                    break;
                };
                let size = size.split(';').next().unwrap_or("").trim();
                let n = usize::from_str_radix(size, 16).unwrap_or(0);
                if n == 0 {
                    // optional trailers, then the empty line
                    r = match tail.strip_prefix("\r\n") {
                        Some(t) => t,
                        None => tail.split_once("\r\n\r\n").map(|x| x.1).unwrap_or(""),
                    };
                    break;
                }
                let n = n.min(tail.len());
                body.push_str(&tail[..n]);
                r = tail[n..].strip_prefix("\r\n").unwrap_or(&tail[n..]);
            }
            (body, r)
        } else if let Some(n) = hv("content-length").and_then(|n| n.parse::<usize>().ok()) {
            let n = n.min(after.len());
            (after[..n].to_string(), &after[n..])
        } else {
            (after.to_string(), "")
        };
        v.push(RawResp {
            code,
            headers,
            body,
        });
        rest = next;
    }
    v
}

/// Asserts a raw response is sandlock's own `code` with an explained
/// one-line "sandlock:" body.
#[track_caller]
fn assert_raw_sandlock_reply(r: &RawResp, code: u16, out: &Out, ctx: &str) {
    assert_eq!(r.code, code, "{r:?}\n{ctx}");
    let line = r.body.trim_end_matches(['\r', '\n']);
    assert!(
        line.starts_with("sandlock:") && !line.contains('\n'),
        "body is not one sandlock: line: {:?}\n{ctx}",
        r.body
    );
    assert_explained(line, out, ctx);
}

/// Python client inside the sandbox: `python3 -I httpclient.py ARGS...`.
fn pyclient(args: &[&str]) -> Vec<String> {
    let mut v = sv(&[PYTHON, "-I", &tls_files().client]);
    v.extend(sv(args));
    v
}
