//! Large uploads: tests/fixtures/bigbody.py makes a body of any size with a
//! token scattered through it, on the fly, and upstream.py's /sink streams
//! a body away, reporting its length, its sha256 and how often given
//! patterns occur in it, so a GiB can be checked byte for byte without
//! being stored anywhere.

use std::process::{Command, Stdio};

use super::tls::{headers_of, Upstream};
use super::{fixdir, Value, PYTHON};

/// What bigbody.py makes for a size and a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BigBody {
    pub len: u64,
    /// Occurrences of the token.
    pub tokens: u64,
    pub sha256: String,
}

/// Path of bigbody.py in the fixture dir (readable in the sandbox with
/// `-r fixdir()`).
pub fn bigbody_py() -> String {
    format!("{}/bigbody.py", fixdir())
}

/// The body bigbody.py writes for `size` and `token`, computed on the host
/// (python3 bigbody.py SIZE TOKEN --sha256).
pub fn bigbody(size: u64, token: &str) -> BigBody {
    let out = Command::new(PYTHON)
        .args([&bigbody_py(), &size.to_string(), token, "--sha256"])
        .stdin(Stdio::null())
        .output()
        .expect("run bigbody.py");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "bigbody.py --sha256: {}\n{text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let f: Vec<&str> = text.split_whitespace().collect();
    match f.as_slice() {
        [len, tokens, sha] => BigBody {
            len: len.parse().unwrap(),
            tokens: tokens.parse().unwrap(),
            sha256: sha.to_string(),
        },
        _ => panic!("bigbody.py --sha256 printed {text:?}"),
    }
}

/// Lower-case hex of `s`, as /sink's `count=LABEL:HEX` and
/// `--sink-count LABEL:HEX` take it.
pub fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// One body upstream.py's /sink received.
#[derive(Debug, Clone)]
pub struct Sunk {
    pub method: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub len: u64,
    pub sha256: String,
    /// (label, occurrences), sorted by label.
    pub counts: Vec<(String, u64)>,
}

impl Sunk {
    /// First header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Occurrences of the pattern labelled `label`.
    #[track_caller]
    pub fn count(&self, label: &str) -> u64 {
        self.counts
            .iter()
            .find(|(l, _)| l == label)
            .unwrap_or_else(|| panic!("no count for {label:?} in {self:?}"))
            .1
    }
}

impl Upstream {
    /// Every body /sink received, in log order.
    pub fn sunk(&self) -> Vec<Sunk> {
        self.events("sink")
            .iter()
            .map(|e| {
                let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                let n = |v: Option<&Value>| {
                    v.and_then(Value::as_u64)
                        .unwrap_or_else(|| panic!("not a number: {v:?}"))
                };
                let counts = match e.get("counts") {
                    Some(Value::Object(m)) => {
                        m.iter().map(|(k, v)| (k.clone(), n(Some(v)))).collect()
                    }
                    other => panic!("sink without counts: {other:?}"),
                };
                Sunk {
                    method: s("method"),
                    version: s("version"),
                    headers: headers_of(e),
                    len: n(e.get("len")),
                    sha256: s("sha256"),
                    counts,
                }
            })
            .collect()
    }
}
