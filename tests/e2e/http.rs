//! The transparent HTTP(S) proxy: --http-allow / --http-deny ACLs (with
//! path normalisation), TLS interception with the sandbox CA
//! (--http-ca-out, --http-ca/--http-key), upstream verification
//! (--upstream-ca), --http-bypass, plaintext Host pinning, keep-alive,
//! IPv6, WebSocket upgrades, exact bytes both ways, and the responses
//! sandlock makes itself (400, 403, 421, 431, 502, 504).
//!
//! The upstream is tests/fixtures/upstream.py, run by the test process on a
//! loopback address and an ephemeral port (passed with --http-port, so the
//! uid 65534 variant needs no privileged port). It logs every byte it
//! receives, so each test checks what actually reached it. Clients inside
//! the sandbox are curl, openssl s_client and tests/fixtures/httpclient.py
//! (raw bytes, WebSocket, urllib). curl negotiates HTTP/2 with the proxy
//! unless told --http1.1; the proxy speaks HTTP/1.1 to the upstream.

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
/// each URL after it.
const CURL_RC: &str = r#"ca=$1; shift
for u in "$@"; do
  code=$(curl -q -sS -o /dev/null --cacert "$ca" -w '%{http_code}' "$u")
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
fn echo_doc(r: &Resp, ctx: &str) -> Json {
    assert_eq!(r.code, 200, "{r:?}\n{ctx}");
    parse_json(&r.body).unwrap_or_else(|e| panic!("echo body is not JSON ({e}): {r:?}\n{ctx}"))
}

/// Header `name` of an /echo document.
fn echo_header(doc: &Json, name: &str) -> Option<String> {
    match doc.get("headers") {
        Some(Json::Arr(hs)) => hs.iter().find_map(|h| match h {
            Json::Arr(kv) if kv.len() == 2 && kv[0].as_str()?.eq_ignore_ascii_case(name) => {
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
    let all = out.stdout.as_str();
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

// ---------------------------------------------------------------------------
// HTTPS: allow, deny, matrix
// ---------------------------------------------------------------------------

both!(https_get_allowed_reaches_upstream_with_host, |ctx| {
    let s = Setup::tls("127.0.0.1");
    let flags = s.flags(&["--http-allow", "GET api.test/*"]);
    let url = s.url("api.test", "/echo/hello?x=1");
    let out = run(&ctx, &flags, &curl(Some(&s.ca), &[], &[&url]));
    let c = s.dump(&out);
    out.expect_code(0);
    let r = resp1(&out);
    let doc = echo_doc(&r, &c);
    assert_eq!(doc.get("method").and_then(Json::as_str), Some("GET"), "{c}");
    assert_eq!(
        doc.get("path").and_then(Json::as_str),
        Some("/echo/hello?x=1"),
        "{c}"
    );
    assert_eq!(echo_header(&doc, "host"), Some(s.host("api.test")), "{c}");

    let reqs = s.up.requests();
    assert_eq!(reqs.len(), 1, "{c}");
    assert_eq!(reqs[0].method, "GET", "{c}");
    assert_eq!(reqs[0].path, "/echo/hello?x=1", "{c}");
    assert_eq!(
        reqs[0].header("host"),
        Some(s.host("api.test").as_str()),
        "{c}"
    );
    // the proxy's upstream leg is TLS to the right name, over http/1.1
    let tls = s.up.events("tls");
    assert!(!tls.is_empty(), "{c}");
    assert_eq!(
        tls[0].get("sni").and_then(Json::as_str),
        Some("api.test"),
        "{c}"
    );
    assert_eq!(
        tls[0].get("alpn").and_then(Json::as_str),
        Some("http/1.1"),
        "{c}"
    );
    // the CA file was written and is a certificate
    let pem = fs::read_to_string(&s.ca).unwrap_or_default();
    assert!(
        pem.starts_with("-----BEGIN CERTIFICATE-----"),
        "{pem:?}\n{c}"
    );
});

both!(https_denied_by_rule_403_upstream_untouched, |ctx| {
    let s = Setup::tls("127.0.0.1");
    let flags = s.flags(&[
        "--http-allow",
        "GET api.test/*",
        "--http-deny",
        "GET api.test/secret*",
    ]);
    let out = run(
        &ctx,
        &flags,
        &curl(Some(&s.ca), &[], &[&s.url("api.test", "/secret/key")]),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_sandlock_reply(&resp1(&out), 403, "api.test/secret", &out, &c);
    assert_upstream_untouched(&s, &c);

    // twin: the same setup, an allowed path, reaches the upstream
    let out = run(
        &ctx,
        &flags,
        &curl(Some(&s.ca), &[], &[&s.url("api.test", "/public/key")]),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    let r = resp1(&out);
    assert_eq!(r.code, 200, "{c}");
    assert_eq!(r.body, "ok /public/key\n", "{c}");
    assert_eq!(s.up.paths(), vec!["/public/key".to_string()], "{c}");
});

both!(https_acl_matrix_with_normalisation_bypass_attempts, |ctx| {
    let s = Setup::tls("127.0.0.1");
    let flags = s.flags(&[
        "--http-allow",
        "GET api.test/public/*",
        "--http-allow",
        "GET api.test/ADMIN",
        "--http-deny",
        "* api.test/admin*",
    ]);
    // (method, path, expected status)
    let cases: &[(&str, &str, u16)] = &[
        ("GET", "/public/x", 200),
        ("GET", "/admin", 403),
        ("GET", "/admin/panel", 403),
        ("GET", "/public/../admin", 403),
        ("GET", "/public/%2e%2e/admin", 403),
        ("GET", "/public/..%2fadmin", 403),
        ("GET", "//admin", 403),
        ("GET", "/%61dmin", 403),
        ("GET", "/public/./x", 200),
        // case is distinct: /ADMIN is not /admin*, and has its own allow
        ("GET", "/ADMIN", 200),
        ("POST", "/public/x", 403),
        ("DELETE", "/admin", 403),
        ("GET", "/publicx", 403),
        ("GET", "/other", 403),
    ];
    let mut args = vec![s.ca.clone()];
    for (m, p, _) in cases {
        args.push(m.to_string());
        args.push(s.url("api.test", p));
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&ctx, &flags, &sh(CURL_EACH, &a));
    let c = s.dump(&out);
    out.expect_code(0);
    let rs = resps(&out);
    assert_eq!(rs.len(), cases.len(), "{c}");
    let mut bad = Vec::new();
    for ((m, p, want), r) in cases.iter().zip(&rs) {
        if r.code != *want {
            bad.push(format!("{m} {p}: want {want}, got {} {:?}", r.code, r.body));
        } else if *want == 403 {
            assert_sandlock_reply(r, 403, "", &out, &c);
        }
    }
    assert!(bad.is_empty(), "{}\n{c}", bad.join("\n"));
    // the explicit deny rule is named for the plain /admin
    assert!(rs[1].body.contains("admin"), "{:?}\n{c}", rs[1]);
    // only the allowed requests reached the upstream
    let mut seen = s.up.paths();
    seen.sort();
    let mut want: Vec<String> = cases
        .iter()
        .filter(|c| c.2 == 200)
        .map(|c| c.1.to_string())
        .collect();
    want.sort();
    // "/public/./x" may be forwarded as sent or normalised
    let norm = |v: Vec<String>| -> Vec<String> {
        let mut v: Vec<String> = v
            .into_iter()
            .map(|p| {
                if p == "/public/./x" {
                    "/public/x".into()
                } else {
                    p
                }
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(norm(seen), norm(want), "{c}");
    assert!(
        !s.up
            .paths()
            .iter()
            .any(|p| p.to_ascii_lowercase().contains("admin") && p != "/ADMIN"),
        "{c}"
    );
});

// ---------------------------------------------------------------------------
// Plaintext HTTP
// ---------------------------------------------------------------------------

both!(http_plaintext_allowed_and_denied, |ctx| {
    let s = Setup::plain("127.0.0.1");
    let flags = s.flags(&[
        "--http-allow",
        "GET api.test/*",
        "--http-deny",
        "* api.test/secret*",
    ]);
    let out = run(
        &ctx,
        &flags,
        &curl(
            None,
            &[],
            &[
                &s.url("api.test", "/echo/plain"),
                &s.url("api.test", "/secret"),
            ],
        ),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    let rs = resps(&out);
    assert_eq!(rs.len(), 2, "{c}");
    let doc = echo_doc(&rs[0], &c);
    assert_eq!(echo_header(&doc, "host"), Some(s.host("api.test")), "{c}");
    assert_sandlock_reply(&rs[1], 403, "api.test/secret", &out, &c);
    assert_eq!(s.up.paths(), vec!["/echo/plain".to_string()], "{c}");
});

both!(http_plaintext_host_must_be_pinned_to_destination, |ctx| {
    let s = Setup::plain("127.0.0.1");
    // `GET */*` lets every Host through the ACL, so only pinning can refuse
    let flags = s.flags(&[
        "--add-host",
        "other.test:127.0.0.2",
        "--http-allow",
        "GET api.test/*",
        "--http-allow",
        "GET */*",
    ]);
    let url = s.url("api.test", "/echo/pin");
    let other = format!("Host: {}", s.host("other.test"));
    let evil = format!("Host: {}", s.host("evil.test"));
    // other.test is pinned, but to 127.0.0.2, not to where we connect;
    // evil.test is not pinned at all
    for host in [&other, &evil] {
        let out = run(&ctx, &flags, &curl(None, &["-H", host], &[&url]));
        let c = s.dump(&out);
        out.expect_code(0);
        assert_sandlock_reply(&resp1(&out), 403, "", &out, &c);
        assert_upstream_untouched(&s, &c);
    }

    // twin: the pinned name of the destination, implicit and explicit
    let own = format!("Host: {}", s.host("api.test"));
    for extra in [vec![], vec!["-H", own.as_str()]] {
        let out = run(&ctx, &flags, &curl(None, &extra, &[&url]));
        let c = s.dump(&out);
        out.expect_code(0);
        let doc = echo_doc(&resp1(&out), &c);
        assert_eq!(echo_header(&doc, "host"), Some(s.host("api.test")), "{c}");
    }
    assert_eq!(s.up.requests().len(), 2, "{}", s.up.dump());
});

// ---------------------------------------------------------------------------
// Host vs SNI, keep-alive, pipelining
// ---------------------------------------------------------------------------

both!(https_host_header_differs_from_sni_421, |ctx| {
    let s = Setup::tls("127.0.0.1");
    let flags = s.flags(&[
        "--add-host",
        "other.test:127.0.0.1",
        "--http-allow",
        "GET api.test/*",
        "--http-allow",
        "GET other.test/*",
    ]);
    // SNI api.test, Host other.test (both allowed, both pinned to the same
    // address: only the mismatch is wrong)
    let host = format!("Host: {}", s.host("other.test"));
    let out = run(
        &ctx,
        &flags,
        &curl(
            Some(&s.ca),
            &["-H", &host],
            &[&s.url("api.test", "/echo/x")],
        ),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_sandlock_reply(&resp1(&out), 421, "", &out, &c);
    assert_upstream_untouched(&s, &c);

    // the same with --resolve: connect to other.test's SNI, Host api.test
    let resolve = format!("other.test:{}:127.0.0.1", s.port());
    let host = format!("Host: {}", s.host("api.test"));
    let out = run(
        &ctx,
        &flags,
        &curl(
            Some(&s.ca),
            &["--resolve", &resolve, "-H", &host],
            &[&s.url("other.test", "/echo/y")],
        ),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_sandlock_reply(&resp1(&out), 421, "", &out, &c);
    assert_upstream_untouched(&s, &c);

    // twin: matching Host and SNI for both names
    let out = run(
        &ctx,
        &flags,
        &sh(
            CURL_EACH,
            &[
                &s.ca,
                "GET",
                &s.url("api.test", "/echo/a"),
                "GET",
                &s.url("other.test", "/echo/b"),
            ],
        ),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    let rs = resps(&out);
    assert_eq!(rs.len(), 2, "{c}");
    assert_eq!(
        echo_header(&echo_doc(&rs[0], &c), "host"),
        Some(s.host("api.test"))
    );
    assert_eq!(
        echo_header(&echo_doc(&rs[1], &c), "host"),
        Some(s.host("other.test"))
    );
    assert_eq!(
        s.up.paths(),
        vec!["/echo/a".to_string(), "/echo/b".to_string()],
        "{c}"
    );
});

both!(https_keepalive_second_request_is_checked, |ctx| {
    let s = Setup::tls("127.0.0.1");
    let flags = s.flags(&["--http-allow", "GET api.test/public/*"]);
    let ok = s.url("api.test", "/public/one");
    let bad = s.url("api.test", "/admin");
    let out = run(&ctx, &flags, &curl(Some(&s.ca), &[], &[&ok, &bad]));
    let c = s.dump(&out);
    out.expect_code(0);
    let rs = resps(&out);
    assert_eq!(rs.len(), 2, "{c}");
    assert_eq!(rs[0].code, 200, "{c}");
    assert_eq!(rs[0].body, "ok /public/one\n", "{c}");
    assert_eq!(rs[0].connects, 1, "{c}");
    assert_eq!(
        rs[1].connects, 0,
        "second request did not reuse the connection\n{c}"
    );
    assert_sandlock_reply(&rs[1], 403, "", &out, &c);
    assert_eq!(s.up.paths(), vec!["/public/one".to_string()], "{c}");

    // twin: two allowed requests on one connection both arrive
    let two = s.url("api.test", "/public/two");
    let out = run(&ctx, &flags, &curl(Some(&s.ca), &[], &[&ok, &two]));
    let c = s.dump(&out);
    out.expect_code(0);
    let rs = resps(&out);
    assert_eq!(
        rs.iter().map(|r| (r.code, r.connects)).collect::<Vec<_>>(),
        vec![(200, 1), (200, 0)],
        "{c}"
    );
    assert_eq!(rs[1].body, "ok /public/two\n", "{c}");
    assert_eq!(
        s.up.paths(),
        vec![
            "/public/one".to_string(),
            "/public/one".into(),
            "/public/two".into()
        ],
        "{c}"
    );
});

both!(
    https_pipelined_denied_request_never_reaches_upstream,
    |ctx| {
        let s = Setup::tls("127.0.0.1");
        let flags = s.flags(&["--http-allow", "GET api.test/public/*"]);
        let h = s.host("api.test");
        let req = |p: &str| format!("GET {p} HTTP/1.1\r\nHost: {h}\r\n\r\n");
        // both requests in one write: allowed, then denied
        let attack = s.bytes_file(
            "pipelined.req",
            format!("{}{}", req("/public/one"), req("/admin")).as_bytes(),
        );
        let port = s.port();
        let out = run(
            &ctx,
            &flags,
            &pyclient(&["raw", "--tls", &s.ca, "api.test", &port, &attack]),
        );
        let c = s.dump(&out);
        out.expect_code(0);
        let rs = raw_responses(&out);
        assert_eq!(rs.len(), 2, "{c}");
        assert_eq!(
            (rs[0].code, rs[0].body.as_str()),
            (200, "ok /public/one\n"),
            "{c}"
        );
        assert_raw_sandlock_reply(&rs[1], 403, &out, &c);
        assert_eq!(s.up.paths(), vec!["/public/one".to_string()], "{c}");
        let raw = String::from_utf8_lossy(&s.up.raw_all()).into_owned();
        assert!(!raw.contains("/admin"), "upstream saw /admin: {raw:?}\n{c}");

        // twin: two allowed requests in one write both get answered
        let twin = s.bytes_file(
            "pipelined-ok.req",
            format!("{}{}", req("/public/one"), req("/public/two")).as_bytes(),
        );
        let out = run(
            &ctx,
            &flags,
            &pyclient(&["raw", "--tls", &s.ca, "api.test", &port, &twin]),
        );
        let c = s.dump(&out);
        out.expect_code(0);
        let rs = raw_responses(&out);
        assert_eq!(
            rs.iter()
                .map(|r| (r.code, r.body.as_str()))
                .collect::<Vec<_>>(),
            vec![(200, "ok /public/one\n"), (200, "ok /public/two\n")],
            "{c}"
        );
    }
);

// ---------------------------------------------------------------------------
// Upstream verification, the certificate the workload sees, bypass, CAs
// ---------------------------------------------------------------------------

/// s_client against api.test:PORT trusting only the sandbox CA.
const SCLIENT: &str = r#"ca=$1; url=$2; hp=$3
curl -q -sS --cacert "$ca" -w "\n@@%{http_code} %{num_connects}@@\n" "$url"
openssl s_client -connect "$hp" -servername api.test -CAfile "$ca" -verify_return_error </dev/null 2>&1
echo "SCLIENT rc $?""#;

both!(
    https_untrusted_upstream_cert_502_and_leaf_is_sandbox_signed,
    |ctx| {
        let s = Setup::tls("127.0.0.1");
        // no --upstream-ca: the upstream's private root is not trusted
        let f = tls_files();
        let flags: Vec<String> = {
            let mut v = s.flags(&["--http-allow", "GET api.test/*"]);
            let i = v.iter().position(|a| a == "--upstream-ca").unwrap();
            v.drain(i..i + 2);
            v
        };
        let hp = s.host("api.test");
        let url = s.url("api.test", "/echo/x");
        let out = run(&ctx, &flags, &sh(SCLIENT, &[&s.ca, &url, &hp]));
        let c = s.dump(&out);
        out.expect_code(0);
        let r = resps(&out).into_iter().next().expect("curl transfer");
        assert_sandlock_reply(&r, 502, "", &out, &c);
        assert!(s.up.requests().is_empty(), "{c}");
        // the certificate the workload saw is a leaf of the sandbox CA, not the
        // upstream's certificate passed through or re-signed by its root
        assert!(out.stdout.contains("Verify return code: 0 (ok)"), "{c}");
        assert!(out.stdout.contains("SCLIENT rc 0"), "{c}");
        let issuer = out
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("issuer="))
            .unwrap_or_else(|| panic!("no issuer= line\n{c}"))
            .trim()
            .to_string();
        assert_eq!(issuer, cert_subject(&s.ca), "{c}");
        assert_ne!(issuer, cert_subject(&f.root_ca), "{c}");
        assert_ne!(
            fs::read_to_string(&s.ca).unwrap(),
            fs::read_to_string(&f.root_ca).unwrap()
        );

        // twin: with --upstream-ca the same request is answered by the upstream
        let out = run(
            &ctx,
            &s.flags(&["--http-allow", "GET api.test/*"]),
            &curl(Some(&s.ca), &[], &[&url]),
        );
        let c = s.dump(&out);
        out.expect_code(0);
        let doc = echo_doc(&resp1(&out), &c);
        assert_eq!(
            doc.get("path").and_then(Json::as_str),
            Some("/echo/x"),
            "{c}"
        );
    }
);

both!(https_bypass_shows_upstream_certificate, |ctx| {
    let s = Setup::tls("127.0.0.1");
    let f = tls_files();
    let url = s.url("api.test", "/echo/bypass");
    let flags = s.flags(&[
        "--http-allow",
        "GET api.test/*",
        "--http-bypass",
        "api.test",
    ]);
    let out = run(&ctx, &flags, &sh(CURL_RC, &[&f.root_ca, &url]));
    let c = s.dump(&out);
    out.expect_code(0);
    let out2 = run(&ctx, &flags, &sh(CURL_RC, &[&s.ca, &url]));
    let c2 = s.dump(&out2);
    out2.expect_code(0);
    // spliced: the private root verifies, the sandbox CA does not
    assert_eq!(rc_lines(&out), vec!["R 0 200"], "{c}");
    assert_eq!(rc_lines(&out2), vec!["R 60 000"], "{c2}");
    let reqs = s.up.requests();
    assert_eq!(reqs.len(), 1, "{c2}");
    assert_eq!(reqs[0].header("host"), Some(s.host("api.test").as_str()));

    // twin: without --http-bypass the connection is intercepted
    let flags = s.flags(&["--http-allow", "GET api.test/*"]);
    let out = run(&ctx, &flags, &sh(CURL_RC, &[&f.root_ca, &url]));
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_lines(&out), vec!["R 60 000"], "{c}");
    let out = run(&ctx, &flags, &sh(CURL_RC, &[&s.ca, &url]));
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_lines(&out), vec!["R 0 200"], "{c}");
});

both!(https_user_ca_signs_leaves, |ctx| {
    let s = Setup::tls("127.0.0.1");
    let f = tls_files();
    let url = s.url("api.test", "/echo/userca");
    let flags = sv(&[
        "--add-host",
        "api.test:127.0.0.1",
        "--http-port",
        &s.port(),
        "--upstream-ca",
        &f.root_ca,
        "--http-ca",
        &f.user_ca,
        "--http-key",
        &f.user_key,
        "-r",
        &f.dir,
        "--http-allow",
        "GET api.test/*",
    ]);
    let out = run(&ctx, &flags, &sh(CURL_RC, &[&f.user_ca, &url]));
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_lines(&out), vec!["R 0 200"], "{c}");
    assert_eq!(s.up.paths(), vec!["/echo/userca".to_string()], "{c}");
    // twin: a client trusting another root (here the upstream's) fails,
    // so the success above came from the user CA
    let out = run(&ctx, &flags, &sh(CURL_RC, &[&f.root_ca, &url]));
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_lines(&out), vec!["R 60 000"], "{c}");
});

// ---------------------------------------------------------------------------
// Bodies: exact bytes both ways, chunked, WebSocket
// ---------------------------------------------------------------------------

/// Deterministic bytes covering every value, CRLFs and header look-alikes.
fn post_body() -> Vec<u8> {
    let mut v = Vec::new();
    let mut x: u32 = 0x1234_5678;
    for i in 0..100_000u32 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        v.push((x >> 16) as u8 ^ (i as u8));
    }
    v.extend_from_slice(b"\r\n\r\nContent-Length: 0\r\n\r\nGET /admin HTTP/1.1\r\n\r\n\0\0end");
    v
}

both!(https_post_body_bytes_arrive_exactly, |ctx| {
    let s = Setup::tls("127.0.0.1");
    let body = post_body();
    let file = s.bytes_file("body.bin", &body);
    let data = format!("@{file}");
    let flags = s.flags(&["--http-allow", "POST api.test/echo*"]);
    let ct = "Content-Type: application/octet-stream";

    let out = run(
        &ctx,
        &flags,
        &curl(
            Some(&s.ca),
            &["-H", ct, "--data-binary", &data],
            &[&s.url("api.test", "/echo/post")],
        ),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    let doc = echo_doc(&resp1(&out), &c);
    let echoed = b64decode(doc.get("body_b64").and_then(Json::as_str).unwrap());
    assert!(
        echoed == body,
        "echoed body differs ({} bytes)\n{c}",
        echoed.len()
    );
    // byte-exact on the wire: the connection delivered head + body, no more
    let raw = s.up.raw_by_conn();
    let conn_bytes = raw
        .values()
        .find(|b| b.starts_with(b"POST "))
        .expect("POST conn");
    let head_end = conn_bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of head")
        + 4;
    assert!(
        conn_bytes[head_end..] == body[..],
        "bytes after the head differ from the body ({} vs {})\n{c}",
        conn_bytes.len() - head_end,
        body.len()
    );

    // chunked upload: the upstream de-chunks to the same bytes
    let out = run(
        &ctx,
        &flags,
        &curl(
            Some(&s.ca),
            &[
                "-H",
                ct,
                "-H",
                "Transfer-Encoding: chunked",
                "--data-binary",
                &data,
            ],
            &[&s.url("api.test", "/echo/chunked-post")],
        ),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    let doc = echo_doc(&resp1(&out), &c);
    let echoed = b64decode(doc.get("body_b64").and_then(Json::as_str).unwrap());
    assert!(
        echoed == body,
        "chunked body differs ({} bytes)\n{c}",
        echoed.len()
    );

    // a POST to a path the rule does not cover is refused, its body not
    // forwarded: over HTTP/1.1 and over HTTP/2 (what curl negotiates with
    // the proxy by default; the 403 must reach the client although the
    // body was not read)
    for proto in ["--http1.1", "--http2"] {
        let out = run(
            &ctx,
            &flags,
            &curl(
                Some(&s.ca),
                &[proto, "-H", ct, "--data-binary", &data],
                &[&s.url("api.test", "/upload")],
            ),
        );
        let c = format!("{proto}\n{}", s.dump(&out));
        assert_sandlock_reply(&resp1(&out), 403, "", &out, &c);
        assert_eq!(
            s.up.paths(),
            vec!["/echo/post".to_string(), "/echo/chunked-post".into()],
            "{c}"
        );
    }
});

both!(https_response_bodies_pass_through, |ctx| {
    let s = Setup::tls("127.0.0.1");
    let flags = {
        let mut v = s.flags(&["--http-allow", "GET api.test/*"]);
        v.extend(sv(&["-w", &s.d.s()]));
        v
    };
    let n = 3 * 1024 * 1024 + 7;
    let dl = s.d.join("bytes.out");
    let out = run(
        &ctx,
        &flags,
        &curl(
            Some(&s.ca),
            &["-o", &dl],
            &[&s.url("api.test", &format!("/bytes?n={n}"))],
        ),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(resp1(&out).code, 200, "{c}");
    let got = fs::read(&dl).unwrap_or_default();
    assert_eq!(got.len(), n, "{c}");
    assert!(
        got.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8),
        "downloaded bytes differ\n{c}"
    );

    let out = run(
        &ctx,
        &flags,
        &curl(Some(&s.ca), &[], &[&s.url("api.test", "/chunked")]),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    let r = resp1(&out);
    assert_eq!(
        (r.code, r.body.as_str()),
        (200, "hello chunked world\n"),
        "{c}"
    );
});

both!(https_websocket_echo_and_denied_upgrade, |ctx| {
    let s = Setup::tls("127.0.0.1");
    let port = s.port();
    let flags = s.flags(&["--http-allow", "GET api.test/*"]);
    let out = run(
        &ctx,
        &flags,
        &pyclient(&[
            "ws", "--tls", &s.ca, "api.test", &port, "/ws", "hello", "world",
        ]),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(
        out.stdout_lines(),
        vec![
            "ws status 101",
            "ws accept ok",
            "ws echo hello",
            "ws echo world",
            "ws close 1000"
        ],
        "{c}"
    );

    // a deny rule on the upgrade path: 403 and no upgrade upstream
    let flags = s.flags(&[
        "--http-allow",
        "GET api.test/*",
        "--http-deny",
        "* api.test/ws*",
    ]);
    let out = run(
        &ctx,
        &flags,
        &pyclient(&["ws", "--tls", &s.ca, "api.test", &port, "/ws", "hello"]),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(out.stdout_lines().first(), Some(&"ws status 403"), "{c}");
    assert_eq!(s.up.paths(), vec!["/ws".to_string()], "{c}");
});

// ---------------------------------------------------------------------------
// Python urllib, IPv6
// ---------------------------------------------------------------------------

both!(python_urllib_strict_verification_through_proxy, |ctx| {
    let s = Setup::tls("127.0.0.1");
    let flags = s.flags(&[
        "--http-allow",
        "GET api.test/*",
        "--http-deny",
        "* api.test/admin*",
    ]);
    let out = run(
        &ctx,
        &flags,
        &pyclient(&["urllib", &s.ca, &s.url("api.test", "/echo/py")]),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    let (status, body) = out.stdout.split_once('\n').unwrap_or((&out.stdout, ""));
    assert_eq!(status, "status 200", "{c}");
    let doc = parse_json(body).unwrap_or_else(|e| panic!("{e}\n{c}"));
    assert_eq!(
        doc.get("path").and_then(Json::as_str),
        Some("/echo/py"),
        "{c}"
    );
    assert_eq!(echo_header(&doc, "host"), Some(s.host("api.test")), "{c}");

    let out = run(
        &ctx,
        &flags,
        &pyclient(&["urllib", &s.ca, &s.url("api.test", "/admin")]),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert!(out.stdout.starts_with("status 403\nsandlock:"), "{c}");
    assert_eq!(s.up.paths(), vec!["/echo/py".to_string()], "{c}");
});

both!(https_ipv6_loopback_upstream, |ctx| {
    let s = Setup::tls("::1");
    let flags = s.flags(&[
        "--http-allow",
        "GET v6.test/*",
        "--http-deny",
        "* v6.test/admin*",
    ]);
    // curl resolves names for IPv6 only when an AF_INET6 UDP socket can be
    // created (its "does IPv6 work" probe), which needs a udp:// rule in a
    // sandbox: --resolve gives it the address instead. Python resolves
    // v6.test through the virtual /etc/hosts below.
    let resolve = format!("v6.test:{}:[::1]", s.port());
    let out = run(
        &ctx,
        &flags,
        &curl(
            Some(&s.ca),
            &["--resolve", &resolve],
            &[&s.url("v6.test", "/echo/v6"), &s.url("v6.test", "/admin")],
        ),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    let rs = resps(&out);
    assert_eq!(rs.len(), 2, "{c}");
    let doc = echo_doc(&rs[0], &c);
    assert_eq!(echo_header(&doc, "host"), Some(s.host("v6.test")), "{c}");
    assert_sandlock_reply(&rs[1], 403, "v6.test/admin", &out, &c);
    assert_eq!(s.up.paths(), vec!["/echo/v6".to_string()], "{c}");

    let out = run(
        &ctx,
        &flags,
        &pyclient(&["urllib", &s.ca, &s.url("v6.test", "/echo/py6")]),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert!(out.stdout.starts_with("status 200\n"), "{c}");
    assert_eq!(
        s.up.paths(),
        vec!["/echo/v6".to_string(), "/echo/py6".into()],
        "{c}"
    );
    let peers: Vec<String> =
        s.up.events("accept")
            .iter()
            .filter_map(|e| e.get("peer").and_then(Json::as_str).map(str::to_string))
            .collect();
    assert!(
        !peers.is_empty() && peers.iter().all(|p| p.starts_with("::1:")),
        "{peers:?}\n{c}"
    );
});

// ---------------------------------------------------------------------------
// Reachability: which ports an HTTP rule opens, and no rule = no proxy
// ---------------------------------------------------------------------------

both!(http_rule_opens_only_intercepted_ports, |ctx| {
    let s = Setup::tls("127.0.0.1");
    let other = Upstream::plain("127.0.0.1");
    let flags = s.flags(&["--http-allow", "GET api.test/*"]);
    let plain = format!("http://api.test:{}/echo/other", other.port);
    let out = run(
        &ctx,
        &flags,
        &curl(Some(&s.ca), &[], &[&s.url("api.test", "/echo/ok"), &plain]),
    );
    let c = format!("{}\n{}", s.dump(&out), other.dump());
    let rs = resps(&out);
    assert_eq!(rs.len(), 2, "{c}");
    assert_eq!(rs[0].code, 200, "{c}");
    // a port that is neither intercepted nor in --net-allow stays closed
    assert_eq!(rs[1].code, 0, "{c}");
    assert_eq!(out.code(), 7, "curl: couldn't connect\n{c}");
    assert!(other.events("accept").is_empty(), "{c}");
    assert_eq!(s.up.paths(), vec!["/echo/ok".to_string()], "{c}");
});

both!(no_http_rule_means_no_interception, |ctx| {
    let s = Setup::tls("127.0.0.1");
    let f = tls_files();
    let url = s.url("api.test", "/echo/direct");
    let rule = format!("127.0.0.1:{}", s.port());
    let flags = sv(&[
        "--add-host",
        "api.test:127.0.0.1",
        "--net-allow",
        &rule,
        "-r",
        &f.dir,
    ]);
    // the workload talks to the upstream directly: its real certificate
    let out = run(&ctx, &flags, &sh(CURL_RC, &[&f.root_ca, &url]));
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(rc_lines(&out), vec!["R 0 200"], "{c}");
    assert_eq!(s.up.paths(), vec!["/echo/direct".to_string()], "{c}");
});

// ---------------------------------------------------------------------------
// Malformed and oversized requests, smuggling
// ---------------------------------------------------------------------------

both!(https_headers_over_64k_431, |ctx| {
    let s = Setup::tls("127.0.0.1");
    let flags = s.flags(&["--http-allow", "GET api.test/*"]);
    let url = s.url("api.test", "/echo/big");
    let big = format!("X-Big: {}", "a".repeat(70_000));
    // many headers that only add up to more than 64 KiB
    let many: Vec<String> = (0..20)
        .map(|i| format!("X-Part-{i}: {}", "b".repeat(4000)))
        .collect();
    let mut many_args: Vec<&str> = Vec::new();
    for h in &many {
        many_args.push("-H");
        many_args.push(h);
    }
    // HTTP/1.1 only: curl's HTTP/2 library (nghttp2) refuses to send a
    // header block over 64 KiB itself, so no such request can reach the
    // proxy over HTTP/2 from curl.
    for proto in ["--http1.1"] {
        for headers in [vec!["-H", big.as_str()], many_args.clone()] {
            let mut extra = vec![proto];
            extra.extend(headers);
            let out = run(&ctx, &flags, &curl(Some(&s.ca), &extra, &[&url]));
            let c = format!("{proto}\n{}", s.dump(&out));
            assert_sandlock_reply(&resp1(&out), 431, "", &out, &c);
            out.expect_code(0);
            assert_upstream_untouched(&s, &c);
        }
    }

    // twin: 60 000 bytes of header fit and arrive intact
    let fits = "a".repeat(60_000);
    let h = format!("X-Big: {fits}");
    for (i, proto) in ["--http1.1", "--http2"].iter().enumerate() {
        let out = run(
            &ctx,
            &flags,
            &curl(Some(&s.ca), &[proto, "-H", &h], &[&url]),
        );
        let c = format!("{proto}\n{}", s.dump(&out));
        out.expect_code(0);
        assert_eq!(resp1(&out).code, 200, "{c}");
        let reqs = s.up.requests();
        assert_eq!(reqs.len(), i + 1, "{c}");
        assert_eq!(reqs[i].header("x-big"), Some(fits.as_str()), "{c}");
    }
});

/// Request heads that must be refused with 400 before anything is
/// forwarded: (name, request bytes) for Host `h`.
fn bad_requests(h: &str) -> Vec<(&'static str, String)> {
    let smuggled = format!("GET /admin HTTP/1.1\r\nHost: {h}\r\n\r\n");
    let chunked_then_smuggled = format!("0\r\n\r\n{smuggled}");
    vec![
        (
            // CL covers the smuggled request, TE ends the body before it
            "CL then TE",
            format!(
                "POST /echo HTTP/1.1\r\nHost: {h}\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{chunked_then_smuggled}",
                chunked_then_smuggled.len()
            ),
        ),
        (
            "TE then CL",
            format!(
                "POST /echo HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n{chunked_then_smuggled}"
            ),
        ),
        (
            "two different Content-Lengths",
            format!(
                "POST /echo HTTP/1.1\r\nHost: {h}\r\nContent-Length: 5\r\nContent-Length: {}\r\n\r\nhello{smuggled}",
                5 + smuggled.len()
            ),
        ),
        (
            "header line without a colon",
            format!("GET /echo HTTP/1.1\r\nHost: {h}\r\nX-Broken header\r\n\r\n"),
        ),
        ("not HTTP", "GARBAGE\r\n\r\n".to_string()),
    ]
}

both!(https_request_smuggling_and_malformed_400, |ctx| {
    let rules = [
        "--http-allow",
        "POST api.test/echo*",
        "--http-allow",
        "GET api.test/echo*",
        "--http-deny",
        "* api.test/admin*",
    ];
    // every attack gets its own upstream, so "nothing arrived" is per attack;
    // all attacks run before the verdict so one report shows every miss
    let mut bad = Vec::new();
    let names: Vec<&str> = bad_requests("x").iter().map(|(n, _)| *n).collect();
    for (i, name) in names.iter().enumerate() {
        let s = Setup::tls("127.0.0.1");
        let (_, req) = bad_requests(&s.host("api.test")).swap_remove(i);
        let file = s.bytes_file("attack.req", req.as_bytes());
        let out = run(
            &ctx,
            &s.flags(&rules),
            &pyclient(&["raw", "--tls", &s.ca, "api.test", &s.port(), &file]),
        );
        let c = format!("attack {name}: {req:?}\n{}", s.dump(&out));
        out.expect_code(0);
        let rs = raw_responses(&out);
        let raw = s.up.raw_all();
        // after a request whose framing is in doubt, the connection must
        // not be reused: sandlock says close, or closes it
        let closed = out.stdout.ends_with("@@END eof\n")
            || rs.first().and_then(|r| r.header("connection")) == Some("close");
        let ok = rs.len() == 1
            && rs[0].code == 400
            && rs[0].body.starts_with("sandlock:")
            && closed
            && raw.is_empty();
        if !ok {
            bad.push(format!(
                "{name}: got {:?}, upstream received {:?}",
                rs.iter()
                    .map(|r| (r.code, r.body.as_str()))
                    .collect::<Vec<_>>(),
                String::from_utf8_lossy(&raw)
            ));
            eprintln!("{c}");
            continue;
        }
        assert_raw_sandlock_reply(&rs[0], 400, &out, &c);
    }
    assert!(bad.is_empty(), "not refused with 400:\n{}", bad.join("\n"));

    // twin: a well-formed chunked POST followed by a GET on the same
    // connection both reach the upstream
    let s = Setup::tls("127.0.0.1");
    let h = s.host("api.test");
    let good = format!(
        "POST /echo/chunk HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /echo/after HTTP/1.1\r\nHost: {h}\r\n\r\n"
    );
    let file = s.bytes_file("good.req", good.as_bytes());
    let out = run(
        &ctx,
        &s.flags(&rules),
        &pyclient(&["raw", "--tls", &s.ca, "api.test", &s.port(), &file]),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    let rs = raw_responses(&out);
    assert_eq!(
        rs.iter().map(|r| r.code).collect::<Vec<_>>(),
        vec![200, 200],
        "{c}"
    );
    let reqs = s.up.requests();
    assert_eq!(
        reqs.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
        vec!["/echo/chunk", "/echo/after"],
        "{c}"
    );
    assert_eq!(reqs[0].body, b"hello", "{c}");
});

both!(https_upstream_timeout_504, |ctx| {
    let s = Setup::tls("127.0.0.1");
    let flags = s.flags(&["--http-allow", "GET api.test/*", "--http-timeout", "1"]);
    let out = run(
        &ctx,
        &flags,
        &curl(Some(&s.ca), &[], &[&s.url("api.test", "/slow?s=4")]),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_sandlock_reply(&resp1(&out), 504, "", &out, &c);
    assert!(
        out.elapsed < std::time::Duration::from_millis(3500),
        "the 504 waited for the upstream\n{c}"
    );

    // twin: an upstream answering within the limit
    let out = run(
        &ctx,
        &flags,
        &curl(Some(&s.ca), &[], &[&s.url("api.test", "/slow?s=0.2")]),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    let r = resp1(&out);
    assert_eq!((r.code, r.body.as_str()), (200, "slow 0.2\n"), "{c}");
});
