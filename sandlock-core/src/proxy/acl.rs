//! The HTTP access list: `--http-deny` then `--http-allow`, evaluated on
//! every request.
//!
//! Paths are compared in one canonical form: query dropped, percent-decoded
//! once, empty and `.` segments removed, `..` applied. A server that decodes
//! and resolves the path before routing therefore sees the path the rule
//! saw; `/a/../admin`, `//admin` and `/%61dmin` all reach `/admin` rules.
//!
//! Separators are where servers disagree: `%2F`, `%5C` and a raw `\` are a
//! `/` to some (nginx decodes `%2F` before it resolves `..`; IIS takes `\`
//! for `/`) and segment data to others (most application routers keep
//! `%2F` encoded). So a path is read both ways, and the two readings must
//! give the same path once spelled with `/`; the ACL checks that path. When
//! they differ (an encoded separator next to a `.`, `..` or empty segment:
//! `/admin%2f..%2fok` is `/ok` to one server and under `/admin` to the
//! other) no rule can speak for the upstream, and the request is refused
//! with 400 before anything is forwarded. Refusing every `%2F` would be
//! simpler, but npm's scoped packages (`/@scope%2fname`) and GitLab's
//! project paths need it, and there both readings agree.
//!
//! It must never let a rule decide on a path the upstream may read
//! differently.

use crate::policy::{HttpPolicy, HttpRule};

/// What the list says about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it; names the allow rule, or `None` when only deny rules exist.
    Allow(Option<String>),
    /// Refuse it with 403; the reason quotes the rule.
    Deny(String),
    /// Refuse it with 400: servers read its path in different ways.
    Ambiguous(&'static str),
}

/// Why a path has no one canonical form.
pub const AMBIGUOUS_PATH: &str = "the path has an encoded separator (%2F, %5C) or a backslash \
     next to a dot or empty segment, so servers that decode it and servers that keep it \
     would route it to different places";

/// The rules in evaluation order.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    allow: Vec<HttpRule>,
    deny: Vec<HttpRule>,
}

impl Acl {
    /// Takes the rules of a policy.
    pub fn new(http: &HttpPolicy) -> Acl {
        Acl {
            allow: http.allow.clone(),
            deny: http.deny.clone(),
        }
    }

    /// Decides one request. `host` is lower-case without port; `target` is
    /// the origin-form request target (path and query) as received.
    pub fn check(&self, method: &str, host: &str, target: &[u8]) -> Verdict {
        if self.allow.is_empty() && self.deny.is_empty() {
            // No rule to decide by (secrets alone turned the proxy on).
            return Verdict::Allow(None);
        }
        let Ok(path) = normalize_path(target) else {
            return Verdict::Ambiguous(AMBIGUOUS_PATH);
        };
        if let Some(r) = self.deny.iter().find(|r| r.matches(method, host, &path)) {
            return Verdict::Deny(format!("--http-deny '{}'", r.spec));
        }
        if self.allow.is_empty() {
            return Verdict::Allow(None);
        }
        match self.allow.iter().find(|r| r.matches(method, host, &path)) {
            Some(r) => Verdict::Allow(Some(r.spec.clone())),
            None => Verdict::Deny("no --http-allow rule matches".to_string()),
        }
    }
}

/// A path that servers read in different ways (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ambiguous;

/// One byte of a decoded path, or a separator some servers keep as data.
const KEPT: u16 = 0x100;

/// The canonical form of a request path (see the module doc): the path
/// with encoded separators taken as `/`, when reading them as data gives
/// the same.
pub fn normalize_path(target: &[u8]) -> Result<Vec<u8>, Ambiguous> {
    let end = target
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(target.len());
    let raw = &target[..end];
    let split = canonical(&decode(raw, false));
    let has_separator_data = raw.contains(&b'\\')
        || raw.windows(3).any(|w| {
            w[0] == b'%'
                && (w[1..].eq_ignore_ascii_case(b"2f") || w[1..].eq_ignore_ascii_case(b"5c"))
        });
    if !has_separator_data {
        return Ok(split);
    }
    let kept = canonical(&decode(raw, true));
    if kept == split {
        Ok(split)
    } else {
        Err(Ambiguous)
    }
}

/// Percent-decodes `raw` once. Encoded `/` and `\`, and a raw `\`, become
/// `/`, or [`KEPT`] (segment data) when `keep` is set.
fn decode(raw: &[u8], keep: bool) -> Vec<u16> {
    let separator = if keep { KEPT } else { u16::from(b'/') };
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let escaped = match raw.get(i..i + 3) {
            Some([b'%', h, l]) => hex(*h).zip(hex(*l)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        let (byte, used) = match escaped {
            Some(b) => (b, 3),
            None => (raw[i], 1),
        };
        let decoded_separator = byte == b'\\' || (used == 3 && byte == b'/');
        out.push(if decoded_separator {
            separator
        } else {
            u16::from(byte)
        });
        i += used;
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Empty and `.` segments removed, `..` applied, split at `/` only; kept
/// separators are spelled `/` in the result.
fn canonical(decoded: &[u16]) -> Vec<u8> {
    const DOT: u16 = b'.' as u16;
    let mut segments: Vec<&[u16]> = Vec::new();
    let mut trailing_slash = false;
    for seg in decoded.split(|&b| b == u16::from(b'/')) {
        trailing_slash = true;
        match seg {
            [] | [DOT] => {}
            [DOT, DOT] => {
                segments.pop();
            }
            s => {
                segments.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = Vec::with_capacity(decoded.len() + 1);
    for s in &segments {
        out.push(b'/');
        // Every unit is a byte or KEPT (a separator kept as data).
        out.extend(s.iter().map(|&b| u8::try_from(b).unwrap_or(b'/')));
    }
    if trailing_slash || out.is_empty() {
        out.push(b'/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        String::from_utf8(normalize_path(s.as_bytes()).expect("one reading")).unwrap()
    }

    #[test]
    fn normalises_spellings() {
        assert_eq!(n("/a/../admin"), "/admin");
        assert_eq!(n("//admin"), "/admin");
        assert_eq!(n("/%61dmin"), "/admin");
        assert_eq!(n("/%2e%2e/admin"), "/admin");
        assert_eq!(n("/./admin/./x"), "/admin/x");
        assert_eq!(n("/admin?x=/public/"), "/admin");
        assert_eq!(n("/admin/"), "/admin/");
        assert_eq!(n("/admin/."), "/admin/");
        assert_eq!(n("/a/b/.."), "/a/");
        assert_eq!(n("/../../.."), "/");
        assert_eq!(n(""), "/");
        assert_eq!(n("/%2561"), "/%61");
        assert_eq!(n("/ADMIN"), "/ADMIN");
    }

    /// Encoded separators where both readings agree: the path with `/`.
    #[test]
    fn encoded_separators_inside_a_segment() {
        assert_eq!(n("/@types%2fnode"), "/@types/node");
        assert_eq!(
            n("/@types%2Fnode/-/node-1.tgz"),
            "/@types/node/-/node-1.tgz"
        );
        assert_eq!(
            n("/api/v4/projects/group%2Fproject"),
            "/api/v4/projects/group/project"
        );
        assert_eq!(n("/a%5cb"), "/a/b");
        assert_eq!(n("/a\\b"), "/a/b");
        assert_eq!(n("/a/./b%2Fc"), "/a/b/c");
        assert_eq!(n("/x/../a%2Fb"), "/a/b");
        assert_eq!(n("/a%2Fb?x=/../.."), "/a/b");
        // Double-encoded: decoded once, it is data to everyone.
        assert_eq!(n("/a%252F..%252Fb"), "/a%2F..%2Fb");
    }

    /// An encoded separator next to a dot or empty segment: refused.
    #[test]
    fn encoded_separators_next_to_dots_are_ambiguous() {
        for p in [
            "/admin%2f..%2fok",
            "/admin%2F..%2Fok",
            "/public/..%2Fadmin",
            "/public%2f../admin",
            "/public%5C..%5Cadmin",
            "/public\\..\\admin",
            "/a%2F.%2Fb",
            "/a%2F%2Fb",
            "%2Fa",
            "/a/%2e%2e%2fb",
        ] {
            assert_eq!(normalize_path(p.as_bytes()), Err(Ambiguous), "{p}");
        }
    }

    fn acl(allow: &[&str], deny: &[&str]) -> Acl {
        let p = |f, v: &&str| HttpRule::parse(f, v).unwrap();
        Acl::new(&HttpPolicy {
            allow: allow.iter().map(|v| p("--http-allow", v)).collect(),
            deny: deny.iter().map(|v| p("--http-deny", v)).collect(),
            ..Default::default()
        })
    }

    #[test]
    fn deny_wins_and_allow_list_closes() {
        let a = acl(
            &["GET api.test/public/*", "* api.test/admin*"],
            &["* api.test/admin*"],
        );
        assert_eq!(
            a.check("GET", "api.test", b"/public/x"),
            Verdict::Allow(Some("GET api.test/public/*".into()))
        );
        for bypass in [
            "/public/../admin",
            "//admin",
            "/%61dmin",
            "/admin/x",
            "/admin%2Fx",
            "/admin%5cx",
            "/admin\\x",
        ] {
            assert_eq!(
                a.check("GET", "api.test", bypass.as_bytes()),
                Verdict::Deny("--http-deny '* api.test/admin*'".into()),
                "{bypass}"
            );
        }
        assert_eq!(
            a.check("GET", "api.test", b"/public/..%2Fadmin"),
            Verdict::Ambiguous(AMBIGUOUS_PATH)
        );
        assert_eq!(
            a.check("GET", "api.test", b"/public/a%2Fb"),
            Verdict::Allow(Some("GET api.test/public/*".into()))
        );
        assert_eq!(
            a.check("POST", "api.test", b"/public/x"),
            Verdict::Deny("no --http-allow rule matches".into())
        );
        assert_eq!(
            a.check("GET", "other.test", b"/public/x"),
            Verdict::Deny("no --http-allow rule matches".into())
        );
    }

    #[test]
    fn deny_only_lists_allow_the_rest() {
        let a = acl(&[], &["POST *"]);
        assert_eq!(a.check("GET", "x.test", b"/"), Verdict::Allow(None));
        assert_eq!(
            a.check("GET", "x.test", b"/a%2f..%2fb"),
            Verdict::Ambiguous(AMBIGUOUS_PATH)
        );
        assert!(matches!(a.check("POST", "x.test", b"/"), Verdict::Deny(_)));
        // No rule at all: nothing to decide, nothing refused.
        let a = acl(&[], &[]);
        assert_eq!(
            a.check("GET", "x.test", b"/a%2f..%2fb"),
            Verdict::Allow(None)
        );
    }
}
