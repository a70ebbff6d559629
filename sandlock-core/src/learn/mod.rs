//! Learn mode (`--learn FILE`): what one run needed, watched while it runs
//! under a widened policy, and the profile that would let the same run
//! pass.
//!
//! Owns: the [`Learner`], which the supervisor, the DNS interceptor and
//! the proxy tell what the workload did (files, connections, binds, unix
//! sockets, names, HTTP requests), and the pure steps that turn that into
//! a profile: `files` (paths collapsed to grants), `http` (requests
//! collapsed to rules) and `render` (the TOML text).
//!
//! Must never: decide anything (the learner only watches; the widened
//! policy decides), keep more than a bounded number of observations (a
//! workload could otherwise grow the supervisor without end), or write a
//! secret's value anywhere: a variable that looks like a credential is
//! held only to recognise its value on the wire, and only its name and
//! the hosts it went to are ever written.

mod files;
mod http;
mod render;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;

pub use self::files::{collapse as collapse_files, Access, Covered};
pub use self::http::collapse as collapse_http;
pub(crate) use self::render::{render, Findings, Given};
use crate::network::Pinned;
use crate::policy::Proto;

/// Observations of one kind kept at most; past it, new ones are counted
/// as dropped and the profile says so.
const MAX_SEEN: usize = 20_000;
/// The shortest variable value recognised on the wire: shorter ones
/// would be found by chance.
const MIN_CREDENTIAL_LEN: usize = 8;
/// The longest request path kept; a longer one is kept as `/*` (its
/// host's every path), which is what a rule for it would come to.
const MAX_PATH_LEN: usize = 1024;
/// Request path segments kept: the rules use at most the first three.
const PATH_SEGMENTS: usize = 3;

/// What a request's path is kept as: without its query, its first
/// segments only, as many of them as fit in [`MAX_PATH_LEN`]; `None` when
/// not even the first fits (the request is not learned, and said).
fn kept_path(path: &str) -> Option<String> {
    let path = path.split(['?', '#']).next().unwrap_or("/");
    let mut cut = path.len();
    if let Some((i, _)) = path.match_indices('/').nth(PATH_SEGMENTS) {
        cut = i + 1;
    }
    let mut kept = &path[..cut];
    while kept.len() > MAX_PATH_LEN {
        let i = kept.trim_end_matches('/').rfind('/').filter(|&i| i > 0)?;
        kept = &kept[..=i];
    }
    Some(kept.to_string())
}

/// A path's change time, if it can be read.
fn change_time(path: &std::path::Path) -> Option<files::Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path).ok()?;
    Some((m.ctime(), m.ctime_nsec()))
}

/// One request the proxy let through.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Request {
    /// The method, as sent.
    pub method: String,
    /// The host (lower case, no port).
    pub host: String,
    /// The path, without the query.
    pub path: String,
    /// Where the connection was going.
    pub dest: SocketAddr,
}

/// Everything seen so far.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Files and directories, by path: how they were used.
    pub files: BTreeMap<PathBuf, files::Use>,
    /// Connections and datagrams the supervisor let through.
    pub connects: BTreeSet<(Proto, SocketAddr)>,
    /// Ports bound.
    pub binds: BTreeSet<u16>,
    /// Socket files connected to.
    pub unix: BTreeSet<PathBuf>,
    /// Names asked of the DNS interceptor, in the order first asked.
    pub names: Vec<String>,
    /// Requests through the proxy.
    pub requests: BTreeSet<Request>,
    /// Hosts that got an `Authorization` header.
    pub authorized: BTreeSet<String>,
    /// Credential-looking variables, by name: the hosts their values went
    /// to.
    pub credentials: BTreeMap<String, BTreeSet<String>>,
    /// Observations left out because a kind was full.
    pub dropped: usize,
    /// Requests no rule can be learned for (a method that is no token, a
    /// path too long to keep).
    pub unlearned: usize,
}

impl Seen {
    /// Drops the changes of a directory's entries that did not happen: its
    /// change time is what it was before the call (the call failed, as a
    /// workload can make one fail on purpose to be granted a directory).
    /// Timestamps are fine-grained where the kernel has multigrain
    /// timestamps (Linux 6.13); on older kernels a change in the same tick
    /// as the first observation is missed, and its grant is not learned.
    pub fn confirm(&mut self) {
        self.files.retain(|path, u| {
            if u.change && u.stamp.is_some() && change_time(path) == u.stamp {
                u.change = false;
            }
            u.read || u.write || u.change
        });
    }
}

/// Collects what a run does. Shared by every part of the supervisor. Its
/// `Debug` leaves the credentials' values out.
pub struct Learner {
    seen: Mutex<Seen>,
    /// Credential-looking variables of the workload's environment: (name,
    /// value). Held to recognise a value on the wire; never written.
    credentials: Vec<(String, Vec<u8>)>,
    /// Where the sandbox's own files live (its private TMPDIR and HOME):
    /// never learned.
    private: Mutex<Option<PathBuf>>,
    /// The run's names and the addresses they resolved to.
    pinned: Mutex<Option<Pinned>>,
}

/// The names an address was reached by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameFor {
    /// No name resolved to it: the workload used the address.
    None,
    /// Exactly one name did.
    One(String),
    /// Several did (a name the workload chose may resolve anywhere): the
    /// rule names the address, and the comment the names.
    Several(Vec<String>),
}

/// The names whose answers (asked through sandlock's DNS, or static ones
/// from `--add-host`) held `ip`.
pub fn name_for(seen: &Seen, pinned: &Pinned, ip: std::net::IpAddr) -> NameFor {
    let ip = crate::network::canonical_ip(ip);
    let holds =
        |ips: &[std::net::IpAddr]| ips.iter().any(|a| crate::network::canonical_ip(*a) == ip);
    let mut names: Vec<String> = seen
        .names
        .iter()
        .filter(|n| {
            pinned.lookup(n).is_some_and(holds)
                || pinned.learned().any_name(ip, |m| m == n.as_str())
        })
        .cloned()
        .collect();
    for (n, ips) in pinned.entries() {
        if holds(ips) && !names.iter().any(|m| m == n) {
            names.push(n.to_string());
        }
    }
    match names.len() {
        0 => NameFor::None,
        1 => NameFor::One(names.remove(0)),
        _ => NameFor::Several(names),
    }
}

impl std::fmt::Debug for Learner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.credentials.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Learner")
            .field("seen", &self.seen)
            .field("credentials (values left out)", &names)
            .finish()
    }
}

/// True for a variable name that usually holds a credential.
pub fn looks_like_credential(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    const ENDINGS: [&str; 11] = [
        "_TOKEN",
        "_KEY",
        "_SECRET",
        "_PASSWORD",
        "_PASS",
        "_PAT",
        "_PWD",
        "_AUTH",
        "_DSN",
        "_CREDENTIALS",
        "_CREDENTIAL",
    ];
    const WORDS: [&str; 7] = [
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "PASSPHRASE",
        "APIKEY",
        "CREDENTIAL",
    ];
    ENDINGS.iter().any(|e| upper.ends_with(e)) || WORDS.iter().any(|w| upper.contains(w))
}

/// True for a value that carries a credential whatever its name: a URL
/// with a password in it (`postgres://app:pw@db/x`).
pub fn holds_credential(value: &[u8]) -> bool {
    let Some(at) = memchr::memmem::find(value, b"://") else {
        return false;
    };
    let rest = &value[at + 3..];
    let authority = rest.split(|&b| b == b'/').next().unwrap_or(rest);
    authority
        .iter()
        .rposition(|&b| b == b'@')
        .is_some_and(|i| authority[..i].contains(&b':'))
}

/// The longest method kept; a longer one (no real method is) is not
/// learned.
const MAX_METHOD_LEN: usize = 32;

/// True for a method a rule may name: a token of letters (and `-`, `_`)
/// that is not `*`, which a rule reads as every method.
fn learnable_method(m: &str) -> bool {
    !m.is_empty()
        && m.len() <= MAX_METHOD_LEN
        && m.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Learner {
    /// A learner for a workload whose environment is `env`.
    pub fn new<'a>(env: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Learner {
        let credentials = env
            .into_iter()
            .filter(|(k, v)| {
                (looks_like_credential(k) || holds_credential(v)) && v.len() >= MIN_CREDENTIAL_LEN
            })
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect();
        Learner {
            seen: Mutex::default(),
            credentials,
            private: Mutex::default(),
            pinned: Mutex::default(),
        }
    }

    /// The run's names (see [`name_for`]).
    pub fn pins(&self, pinned: Pinned) {
        *self.pinned.lock().unwrap_or_else(|e| e.into_inner()) = Some(pinned);
    }

    /// The run's names, once the run has started.
    pub fn pinned(&self) -> Option<Pinned> {
        self.pinned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The sandbox's private directory: nothing below it is learned.
    pub fn private_dir(&self, dir: PathBuf) {
        *self.private.lock().unwrap_or_else(|e| e.into_inner()) = Some(dir);
    }

    fn with<T>(&self, f: impl FnOnce(&mut Seen) -> T) -> T {
        f(&mut self.seen.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A copy of everything seen.
    pub fn seen(&self) -> Seen {
        self.with(|s| s.clone())
    }

    /// The workload used `path` (canonical, absolute) for `access`;
    /// `dir` when it is a directory. Called before the call runs: a change
    /// of a directory's entries records its change time, so that
    /// [`Seen::confirm`] can tell one that happened from one that failed.
    /// (An open for writing is not confirmed: Landlock asks for the right
    /// at the open, written or not.)
    pub fn file(&self, access: Access, path: PathBuf, dir: bool) {
        let private = self
            .private
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if private.is_some_and(|p| path.starts_with(p)) || files::ignored(&path) {
            return;
        }
        let stamp = (access == Access::Change)
            .then(|| change_time(&path))
            .flatten();
        self.with(|s| {
            let full = s.files.len() >= MAX_SEEN;
            let u = match s.files.get_mut(&path) {
                Some(u) => u,
                None if full => {
                    s.dropped += 1;
                    return;
                }
                None => s.files.entry(path).or_default(),
            };
            if !u.change {
                u.stamp = stamp;
            }
            u.add(access, dir);
        });
    }

    /// A connection (or datagram) to `dest` went out.
    pub fn connect(&self, proto: Proto, dest: SocketAddr) {
        self.with(|s| insert_bounded(&mut s.connects, (proto, dest), &mut s.dropped));
    }

    /// A port was bound.
    pub fn bind(&self, port: u16) {
        self.with(|s| insert_bounded(&mut s.binds, port, &mut s.dropped));
    }

    /// A socket file was connected to.
    pub fn unix(&self, path: PathBuf) {
        self.with(|s| insert_bounded(&mut s.unix, path, &mut s.dropped));
    }

    /// A name was asked (lower case, no trailing dot).
    pub fn name(&self, name: &str) {
        self.with(|s| {
            if s.names.iter().any(|n| n == name) {
                return;
            }
            if s.names.len() >= MAX_SEEN {
                s.dropped += 1;
                return;
            }
            s.names.push(name.to_string());
        });
    }

    /// A request went through the proxy; `headers` are its header values
    /// by name (lower case).
    pub fn request<'h>(
        &self,
        mut req: Request,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    ) {
        let mut carried: Vec<&str> = Vec::new();
        // A credential in the path: the rule stops where it starts, and
        // the value is never kept.
        let mut path = req.path.split(['?', '#']).next().unwrap_or("/").to_string();
        for (var, secret) in &self.credentials {
            if let Some(at) = memchr::memmem::find(path.as_bytes(), secret) {
                path.truncate(at);
                path.push('*');
                carried.push(var);
            }
        }
        let kept = kept_path(&path);
        if !learnable_method(&req.method) || kept.is_none() {
            self.with(|s| s.unlearned = s.unlearned.saturating_add(1));
            return;
        }
        req.path = kept.unwrap_or_default();
        let mut authorized = false;
        for (name, value) in headers {
            authorized |= name.eq_ignore_ascii_case("authorization");
            for (var, secret) in &self.credentials {
                if carries(value, secret) && !carried.contains(&var.as_str()) {
                    carried.push(var);
                }
            }
        }
        self.with(|s| {
            if authorized {
                insert_bounded(&mut s.authorized, req.host.clone(), &mut s.dropped);
            }
            for var in carried {
                let hosts = s.credentials.entry(var.to_string()).or_default();
                if hosts.len() < MAX_SEEN {
                    hosts.insert(req.host.clone());
                }
            }
            insert_bounded(&mut s.requests, req, &mut s.dropped);
        });
    }
}

fn insert_bounded<T: Ord>(set: &mut BTreeSet<T>, item: T, dropped: &mut usize) {
    if set.len() >= MAX_SEEN && !set.contains(&item) {
        *dropped = dropped.saturating_add(1);
        return;
    }
    set.insert(item);
}

/// True when a header value holds `secret` as it is, or inside a `Basic`
/// credential (git sends a token as `Basic base64(user:token)`).
fn carries(value: &[u8], secret: &[u8]) -> bool {
    if memchr::memmem::find(value, secret).is_some() {
        return true;
    }
    let Some(encoded) = value
        .strip_prefix(b"Basic ")
        .or_else(|| value.strip_prefix(b"basic "))
    else {
        return false;
    };
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(encoded.trim_ascii())
        .is_ok_and(|d| memchr::memmem::find(&d, secret).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_names() {
        for n in [
            "GITHUB_TOKEN",
            "OPENAI_API_KEY",
            "aws_secret_access_key",
            "DB_PASSWORD",
        ] {
            assert!(looks_like_credential(n), "{n}");
        }
        for n in ["PATH", "HOME", "KEYBOARD", "LANG", "TOKENIZERS_X"] {
            assert_eq!(looks_like_credential(n), n.contains("TOKEN"), "{n}");
        }
    }

    #[test]
    fn a_value_is_recognised_raw_and_in_basic_but_never_kept() {
        let l = Learner::new([("API_TOKEN", &b"tok-1234567890"[..]), ("SHORT_KEY", b"abc")]);
        assert_eq!(l.credentials.len(), 1, "a short value is not looked for");
        let req = |host: &str| Request {
            method: "GET".into(),
            host: host.into(),
            path: "/".into(),
            dest: "127.0.0.1:443".parse().unwrap(),
        };
        l.request(
            req("a.test"),
            [("authorization", &b"Bearer tok-1234567890"[..])],
        );
        // base64("git:tok-1234567890")
        l.request(
            req("b.test"),
            [("Authorization", &b"Basic Z2l0OnRvay0xMjM0NTY3ODkw"[..])],
        );
        l.request(req("c.test"), [("x-other", &b"nothing"[..])]);
        let seen = l.seen();
        let hosts: Vec<&str> = seen.credentials["API_TOKEN"]
            .iter()
            .map(String::as_str)
            .collect();
        assert_eq!(hosts, ["a.test", "b.test"]);
        assert_eq!(seen.authorized.len(), 2);
        assert!(!format!("{seen:?}").contains("tok-1234567890"));
    }

    fn get(path: &str) -> Request {
        Request {
            method: "GET".into(),
            host: "a.test".into(),
            path: path.into(),
            dest: "127.0.0.1:443".parse().unwrap(),
        }
    }

    #[test]
    fn request_paths_are_kept_short() {
        assert_eq!(kept_path("/a/b/c/d/e?x=1").as_deref(), Some("/a/b/c/"));
        assert_eq!(kept_path("/a/b?x=1").as_deref(), Some("/a/b"));
        assert_eq!(kept_path("/").as_deref(), Some("/"));
        let long = format!("/{}", "x".repeat(5000));
        assert_eq!(kept_path(&long), None);
        let deep = format!("/v1/{}/z", "y".repeat(2000));
        assert_eq!(kept_path(&deep).as_deref(), Some("/v1/"));
        // What is kept still collapses to the rule the whole path would.
        for p in ["/v1/users/42/notes/7", "/simple/pkg/", "/index.html"] {
            let specs = |path: &str| -> Vec<String> {
                http::collapse(&[get(path)])
                    .0
                    .into_iter()
                    .map(|r| r.spec)
                    .collect()
            };
            assert_eq!(specs(p), specs(&kept_path(p).unwrap()), "{p}");
        }
    }

    #[test]
    fn odd_methods_and_credentials_in_paths_are_not_learned_as_they_are() {
        let l = Learner::new([("BOT_TOKEN", &b"123456:AAHsecretvalue"[..])]);
        let mut star = get("/v1/x");
        star.method = "*".into();
        l.request(star, []);
        let mut long = get("/v1/x");
        long.method = "X".repeat(60);
        l.request(long, []);
        l.request(get("/bot123456:AAHsecretvalue/sendMessage"), []);
        let seen = l.seen();
        assert_eq!(seen.unlearned, 2);
        let paths: Vec<&str> = seen.requests.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["/bot*"]);
        assert_eq!(seen.credentials["BOT_TOKEN"].len(), 1);
        assert!(!format!("{seen:?}{l:?}").contains("AAHsecretvalue"));
        assert!(holds_credential(b"postgres://app:S3cr3t@db/x"));
        assert!(!holds_credential(b"https://example.test/a@b"));
        assert!(looks_like_credential("MYSQL_PWD") && looks_like_credential("SIGNING_PASSPHRASE"));
    }

    #[test]
    fn writes_and_changes_that_did_not_happen_are_dropped() {
        let dir = std::env::temp_dir().join(format!("sandlock-confirm-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("kept")).unwrap();
        std::fs::create_dir_all(dir.join("failed")).unwrap();
        let l = Learner::new([]);
        l.file(Access::Change, dir.join("kept"), true);
        l.file(Access::Change, dir.join("failed"), true);
        l.file(Access::Read, dir.join("failed"), true);
        std::fs::write(dir.join("kept/new"), "x").unwrap();
        let mut seen = l.seen();
        seen.confirm();
        let u = |d: &str| seen.files.get(&dir.join(d)).copied();
        assert!(u("kept").is_some_and(|u| u.change));
        assert!(u("failed").is_some_and(|u| u.read && !u.change));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn observations_are_bounded() {
        let l = Learner::new([]);
        for port in 0..(MAX_SEEN + 10) {
            l.connect(
                Proto::Tcp,
                SocketAddr::from(([127, 0, 0, 1], (port % 65535) as u16)),
            );
            l.file(Access::Read, PathBuf::from(format!("/data/f{port}")), false);
        }
        let seen = l.seen();
        assert!(seen.files.len() <= MAX_SEEN && seen.connects.len() <= MAX_SEEN);
        assert!(seen.dropped > 0);
    }
}
