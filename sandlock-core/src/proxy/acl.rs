//! The HTTP access list: `--http-deny` then `--http-allow`, evaluated on
//! every request.
//!
//! Paths are compared in one canonical form: query dropped, percent-decoded
//! once, empty and `.` segments removed, `..` applied. A server that decodes
//! and resolves the path before routing therefore sees the path the rule
//! saw; `/a/../admin`, `//admin` and `/%61dmin` all reach `/admin` rules.

use crate::policy::{HttpPolicy, HttpRule};

/// What the list says about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it; names the allow rule, or `None` when only deny rules exist.
    Allow(Option<String>),
    /// Refuse it with 403; the reason quotes the rule.
    Deny(String),
}

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
        let path = normalize_path(target);
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

/// The canonical form of a request path (see the module doc).
pub fn normalize_path(target: &[u8]) -> Vec<u8> {
    let end = target
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(target.len());
    let decoded: Vec<u8> = percent_encoding::percent_decode(&target[..end]).collect();
    let mut segments: Vec<&[u8]> = Vec::new();
    let mut trailing_slash = false;
    for seg in decoded.split(|&b| b == b'/') {
        trailing_slash = true;
        match seg {
            b"" | b"." => {}
            b".." => {
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
        out.extend_from_slice(s);
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
        String::from_utf8(normalize_path(s.as_bytes())).unwrap()
    }

    #[test]
    fn normalises_spellings() {
        assert_eq!(n("/a/../admin"), "/admin");
        assert_eq!(n("//admin"), "/admin");
        assert_eq!(n("/%61dmin"), "/admin");
        assert_eq!(n("/%2e%2e/admin"), "/admin");
        assert_eq!(n("/public/..%2fadmin"), "/admin");
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
            "/public/..%2Fadmin",
        ] {
            assert_eq!(
                a.check("GET", "api.test", bypass.as_bytes()),
                Verdict::Deny("--http-deny '* api.test/admin*'".into()),
                "{bypass}"
            );
        }
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
        assert!(matches!(a.check("POST", "x.test", b"/"), Verdict::Deny(_)));
    }
}
