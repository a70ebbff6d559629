//! TLS material and the HTTP(S) test upstream for the proxy tests.
//!
//! * `tls_files()`: a private root CA (trusted by nobody but the tests), a
//!   server certificate signed by it (api.test, git.test, other.test, *.dyn.test,
//!   v6.test, localhost, 127.0.0.1, ::1) and a separate "user" CA for
//!   --http-ca / --http-key. Made once per test run with the `openssl` CLI in
//!   FIXDIR/tls (mode 0755, files 0644, so sandlock running as uid 65534 can
//!   read them), together with a copy of tests/fixtures/httpclient.py (the
//!   in-sandbox client).
//! * `Upstream`: tests/fixtures/upstream.py, plain or TLS, on 127.0.0.1 or
//!   ::1, killed on drop. Its JSON-lines log holds every byte each
//!   connection delivered and every request it parsed.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use super::{fixdir, TempDir, Value, FIXTURE_SRC, PYTHON};

// ---------------------------------------------------------------------------
// openssl CLI
// ---------------------------------------------------------------------------

/// Runs `openssl ARGS` and returns stdout; panics with stderr on failure.
pub fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl (apt-get install openssl): {e}"));
    assert!(
        out.status.success(),
        "openssl {} failed: {}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The subject of the (first) certificate in `pem_path`, in openssl's
/// one-line form without the "subject=" prefix, e.g. "CN = foo".
pub fn cert_subject(pem_path: &str) -> String {
    let s = openssl(&["x509", "-noout", "-subject", "-in", pem_path]);
    s.trim()
        .strip_prefix("subject=")
        .unwrap_or(s.trim())
        .trim()
        .to_string()
}

/// The issuer of the (first) certificate in `pem_path` (one-line form).
pub fn cert_issuer(pem_path: &str) -> String {
    let s = openssl(&["x509", "-noout", "-issuer", "-in", pem_path]);
    s.trim()
        .strip_prefix("issuer=")
        .unwrap_or(s.trim())
        .trim()
        .to_string()
}

const OPENSSL_CNF: &str = r#"
[ req ]
distinguished_name = dn
prompt = no

[ dn ]
CN = unused

[ v3_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[ v3_leaf ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = DNS:api.test, DNS:git.test, DNS:other.test, DNS:v6.test, DNS:*.dyn.test, DNS:localhost, DNS:github.com, IP:127.0.0.1, IP:::1
"#;

/// Paths (all absolute, world-readable) of the TLS material.
pub struct TlsFiles {
    /// FIXDIR/tls, mode 0755.
    pub dir: String,
    /// The private root CA the upstream's certificate chains to (PEM).
    pub root_ca: String,
    pub root_key: String,
    /// The upstream's certificate (signed by `root_ca`) and key.
    pub server_cert: String,
    pub server_key: String,
    /// A CA for --http-ca / --http-key (PKCS#8 EC key).
    pub user_ca: String,
    pub user_key: String,
    /// Copy of tests/fixtures/httpclient.py.
    pub client: String,
}

/// Creates a self-signed CA `name`.pem / `name`.key with subject `cn`.
fn make_ca(dir: &str, cnf: &str, name: &str, cn: &str) {
    let key = format!("{dir}/{name}.key");
    let pem = format!("{dir}/{name}.pem");
    let subj = format!("/O=sandlock e2e/CN={cn}");
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &pem,
        "-days",
        "3",
        "-subj",
        &subj,
        "-config",
        cnf,
        "-extensions",
        "v3_ca",
    ]);
}

fn build_tls_files() -> TlsFiles {
    let dir = format!("{}/tls", fixdir());
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir(&dir).expect("create tls dir");
    let cnf = format!("{dir}/openssl.cnf");
    fs::write(&cnf, OPENSSL_CNF).unwrap();

    make_ca(&dir, &cnf, "root", "sandlock-e2e private upstream root");
    make_ca(&dir, &cnf, "user", "sandlock-e2e user interception CA");

    let server_key = format!("{dir}/server.key");
    let csr = format!("{dir}/server.csr");
    let server_cert = format!("{dir}/server.pem");
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &server_key,
        "-out",
        &csr,
        "-subj",
        "/O=sandlock e2e/CN=api.test",
        "-config",
        &cnf,
    ]);
    let root_ca = format!("{dir}/root.pem");
    let root_key = format!("{dir}/root.key");
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &root_ca,
        "-CAkey",
        &root_key,
        "-set_serial",
        "4242",
        "-days",
        "2",
        "-out",
        &server_cert,
        "-extfile",
        &cnf,
        "-extensions",
        "v3_leaf",
    ]);

    let client = format!("{dir}/httpclient.py");
    fs::copy(format!("{FIXTURE_SRC}/httpclient.py"), &client).expect("copy httpclient.py");

    for e in fs::read_dir(&dir).unwrap().flatten() {
        let _ = fs::set_permissions(e.path(), fs::Permissions::from_mode(0o644));
    }
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    TlsFiles {
        root_ca,
        root_key,
        server_cert,
        server_key,
        user_ca: format!("{dir}/user.pem"),
        user_key: format!("{dir}/user.key"),
        client,
        dir,
    }
}

/// The TLS material, made on first use (thread-safe, once per test run).
pub fn tls_files() -> &'static TlsFiles {
    static FILES: OnceLock<TlsFiles> = OnceLock::new();
    FILES.get_or_init(build_tls_files)
}

// ---------------------------------------------------------------------------
// base64 (the upstream log's encoding)
// ---------------------------------------------------------------------------

/// Standard base64 with padding (Python's `base64.b64encode`, an HTTP
/// Basic credential) decoded; panics, naming the input, when it is not.
pub fn b64decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap_or_else(|e| panic!("bad base64 ({e}) in {s:?}"))
}

// ---------------------------------------------------------------------------
// The upstream (tests/fixtures/upstream.py)
// ---------------------------------------------------------------------------

/// One request as the upstream parsed it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub conn: u64,
    pub method: String,
    /// The raw request target.
    pub path: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    /// The body after de-chunking.
    pub body: Vec<u8>,
}

impl SeenRequest {
    /// First header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A running upstream.py, killed on drop.
pub struct Upstream {
    pub ip: String,
    pub port: u16,
    pub tls: bool,
    /// The JSON-lines log.
    pub log: String,
    child: Child,
    dir: TempDir,
}

impl Upstream {
    /// Plain HTTP upstream on `ip` (127.0.0.1 or ::1), ephemeral port.
    pub fn plain(ip: &str) -> Upstream {
        Self::start(ip, false)
    }

    /// HTTPS upstream on `ip` with the server certificate of
    /// `tls_files()` (signed by the private root).
    pub fn tls(ip: &str) -> Upstream {
        Self::start(ip, true)
    }

    pub fn start(ip: &str, tls: bool) -> Upstream {
        Self::start_with(ip, tls, &[])
    }

    /// Like `start`, with more upstream.py arguments (e.g. `--git-root DIR`).
    pub fn start_with(ip: &str, tls: bool, extra: &[&str]) -> Upstream {
        let dir = TempDir::new("upstream");
        let port_file = dir.join("port");
        let log = dir.join("log.jsonl");
        let mut cmd = Command::new(PYTHON);
        cmd.arg(format!("{FIXTURE_SRC}/upstream.py"))
            .args(["--port-file", &port_file, "--log", &log, "--host", ip])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("stderr")).unwrap());
        if tls {
            let f = tls_files();
            cmd.args(["--tls", &f.server_cert, &f.server_key]);
        }
        let mut child = cmd.spawn().expect("start upstream.py");
        let deadline = Instant::now() + Duration::from_secs(10);
        let port = loop {
            if let Ok(s) = fs::read_to_string(&port_file) {
                if let Ok(p) = s.trim().parse::<u16>() {
                    break p;
                }
            }
            if let Ok(Some(st)) = child.try_wait() {
                panic!(
                    "upstream.py exited with {st}:\n{}",
                    fs::read_to_string(dir.join("stderr")).unwrap_or_default()
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("upstream.py did not write its port within 10 s");
            }
            thread::sleep(Duration::from_millis(20));
        };
        Upstream {
            ip: ip.to_string(),
            port,
            tls,
            log,
            child,
            dir,
        }
    }

    pub fn port_s(&self) -> String {
        self.port.to_string()
    }

    /// The log as parsed JSON lines (waits 150ms first so that what is in
    /// flight is logged too).
    pub fn entries(&self) -> Vec<Value> {
        thread::sleep(Duration::from_millis(150));
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad log line {l:?}: {e}")))
            .collect()
    }

    /// Every request the upstream parsed, in log order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.entries()
            .iter()
            .filter(|e| e.get("event").and_then(Value::as_str) == Some("request"))
            .map(|e| {
                let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                SeenRequest {
                    conn: conn_of(e),
                    method: s("method"),
                    path: s("path"),
                    version: s("version"),
                    headers: headers_of(e),
                    body: b64decode(&s("body_b64")),
                }
            })
            .collect()
    }

    /// The request targets the upstream saw, in order.
    pub fn paths(&self) -> Vec<String> {
        self.requests().into_iter().map(|r| r.path).collect()
    }

    /// The exact bytes each connection delivered, by connection number
    /// (connections that delivered nothing are absent).
    pub fn raw_by_conn(&self) -> BTreeMap<u64, Vec<u8>> {
        let mut m: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        for e in self.entries() {
            if let Some(b) = e.get("raw_b64").and_then(Value::as_str) {
                m.entry(conn_of(&e)).or_default().extend(b64decode(b));
            }
        }
        m
    }

    /// Every byte received on any connection, concatenated.
    pub fn raw_all(&self) -> Vec<u8> {
        self.raw_by_conn().into_values().flatten().collect()
    }

    /// The log entries with "event" == `ev`.
    pub fn events(&self, ev: &str) -> Vec<Value> {
        self.entries()
            .into_iter()
            .filter(|e| e.get("event").and_then(Value::as_str) == Some(ev))
            .collect()
    }

    /// The log and the upstream's stderr, for assertion messages.
    pub fn dump(&self) -> String {
        format!(
            "--- upstream {}:{} log ---\n{}\n--- upstream stderr ---\n{}",
            self.ip,
            self.port,
            fs::read_to_string(&self.log).unwrap_or_default(),
            fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
        )
    }
}

/// The `headers` ([[name, value], ...]) of a log entry.
pub(super) fn headers_of(e: &Value) -> Vec<(String, String)> {
    match e.get("headers") {
        Some(Value::Array(hs)) => hs
            .iter()
            .map(|h| match h {
                Value::Array(kv) if kv.len() == 2 => (
                    kv[0].as_str().unwrap_or("").to_string(),
                    kv[1].as_str().unwrap_or("").to_string(),
                ),
                other => panic!("bad header entry {other:?}"),
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn conn_of(e: &Value) -> u64 {
    e.get("conn")
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("log line without conn: {:?}", e.get("conn")))
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
