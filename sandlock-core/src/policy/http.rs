//! HTTP rules (`--http-allow`, `--http-deny`), intercepted ports, bypass
//! patterns and the proxy's TLS options.
//!
//! Grammar of a rule: `METHOD HOST[/PATH]`. METHOD is a token (`GET`,
//! `POST`, …) or `*`; HOST is an exact name, an IP literal (IPv6 in
//! brackets), `*`, or `*.suffix` (the apex and every subdomain); PATH
//! defaults to `/*`, a trailing `*` makes it a prefix, otherwise it is exact.
//! Rule paths go through the same normalisation as request paths, so a rule
//! can never be written in a spelling requests cannot reach.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use super::net::validate_hostname;
use super::PortSet;
use crate::{Error, Result};

/// Which methods a rule covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MethodMatch {
    /// `*`: every method.
    Any,
    /// One method, compared case-sensitively as HTTP requires.
    Exact(String),
}

/// Which hosts a rule, a bypass or a secret covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// `*`: every host.
    Any,
    /// One name, lower-cased, without a trailing dot.
    Exact(String),
    /// One address, in canonical form.
    Ip(IpAddr),
    /// `*.suffix`: the apex `suffix` and every name below it.
    Suffix(String),
}

impl HostMatch {
    /// Parses a host pattern; `allow_any` admits `*` and `allow_ip` IP
    /// literals (bypass patterns take neither).
    pub fn parse(flag: &'static str, spec: &str, text: &str, allow_wide: bool) -> Result<Self> {
        let bad = |reason: String| Error::invalid(flag, spec, reason);
        if text == "*" {
            return if allow_wide {
                Ok(HostMatch::Any)
            } else {
                Err(bad(
                    "'*' is not allowed here; name a host or *.suffix".into()
                ))
            };
        }
        let unbracketed = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(text);
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return if allow_wide {
                Ok(HostMatch::Ip(crate::network::canonical_ip(ip)))
            } else {
                Err(bad(format!("'{text}' is an address; name a host")))
            };
        }
        let lower = text.to_ascii_lowercase();
        let lower = lower.strip_suffix('.').unwrap_or(&lower).to_string();
        if let Some(suffix) = lower.strip_prefix("*.") {
            validate_hostname(suffix).map_err(bad)?;
            if !suffix.contains('.') {
                return Err(bad(format!(
                    "'*.{suffix}' covers a whole top-level domain; name a longer suffix"
                )));
            }
            return Ok(HostMatch::Suffix(suffix.to_string()));
        }
        if lower.contains('*') {
            return Err(bad(format!(
                "'{text}': '*' may only stand alone or as a leading '*.'"
            )));
        }
        validate_hostname(&lower).map_err(bad)?;
        Ok(HostMatch::Exact(lower))
    }

    /// Does `host` (a lower-cased name without port, or an IP literal) match?
    pub fn matches(&self, host: &str) -> bool {
        let host = host.strip_suffix('.').unwrap_or(host);
        match self {
            HostMatch::Any => true,
            HostMatch::Exact(name) => host.eq_ignore_ascii_case(name),
            HostMatch::Ip(ip) => {
                parse_ip_host(host).is_some_and(|h| crate::network::canonical_ip(h) == *ip)
            }
            HostMatch::Suffix(suffix) => under_suffix(host, suffix),
        }
    }

    /// True for a pattern naming exactly one host, which a rule then makes
    /// reachable on the intercepted ports.
    pub fn is_concrete(&self) -> bool {
        matches!(self, HostMatch::Exact(_) | HostMatch::Ip(_))
    }

    /// Could one host name match both patterns? An IP pattern shares no
    /// name with a name pattern (a TLS connection's Host must equal its
    /// SNI, so an IP rule never meets a request to a name).
    pub fn overlaps(&self, other: &HostMatch) -> bool {
        use HostMatch::{Any, Exact, Ip, Suffix};
        match (self, other) {
            (Any, _) | (_, Any) => true,
            (Ip(a), Ip(b)) => a == b,
            (Ip(_), _) | (_, Ip(_)) => false,
            (Exact(a), Exact(b)) => a == b,
            (Exact(name), Suffix(s)) | (Suffix(s), Exact(name)) => under_suffix(name, s),
            (Suffix(a), Suffix(b)) => under_suffix(a, b) || under_suffix(b, a),
        }
    }
}

/// Parses a host that may be an IP literal, bracketed or not.
pub(crate) fn parse_ip_host(host: &str) -> Option<IpAddr> {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .parse()
        .ok()
}

impl fmt::Display for HostMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostMatch::Any => f.write_str("*"),
            HostMatch::Exact(n) => f.write_str(n),
            HostMatch::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            HostMatch::Ip(ip) => write!(f, "{ip}"),
            HostMatch::Suffix(s) => write!(f, "*.{s}"),
        }
    }
}

/// Which paths a rule covers, in normalised form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// Everything starting with these bytes (`/api/*` stores `/api/`).
    Prefix(Vec<u8>),
    /// Exactly this path.
    Exact(Vec<u8>),
}

impl PathMatch {
    /// Does the normalised request path match?
    pub fn matches(&self, path: &[u8]) -> bool {
        match self {
            PathMatch::Prefix(p) => path.starts_with(p),
            PathMatch::Exact(p) => path == p.as_slice(),
        }
    }
}

/// One `--http-allow` or `--http-deny` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRule {
    /// Methods covered.
    pub method: MethodMatch,
    /// Hosts covered.
    pub host: HostMatch,
    /// Paths covered.
    pub path: PathMatch,
    /// The rule as written, for messages.
    pub spec: String,
}

impl HttpRule {
    /// Parses `METHOD HOST[/PATH]` given to `flag`.
    pub fn parse(flag: &'static str, spec: &str) -> Result<Self> {
        let bad = |reason: &str| Error::invalid(flag, spec, reason.to_string());
        let mut words = spec.split_whitespace();
        let (Some(method), Some(target), None) = (words.next(), words.next(), words.next()) else {
            return Err(bad(
                "expected 'METHOD HOST[/PATH]', e.g. 'GET api.example.com/v1/*'",
            ));
        };
        let method = if method == "*" {
            MethodMatch::Any
        } else if method.bytes().all(is_token_byte) {
            MethodMatch::Exact(method.to_string())
        } else {
            return Err(bad("METHOD must be a method name like GET, or '*'"));
        };
        let (host, path) = split_target(target);
        if host.is_empty() {
            return Err(bad("missing HOST"));
        }
        let host = HostMatch::parse(flag, spec, host, true)?;
        let path = parse_rule_path(path).map_err(|r| Error::invalid(flag, spec, r))?;
        Ok(HttpRule {
            method,
            host,
            path,
            spec: spec.to_string(),
        })
    }

    /// Does this rule cover the request? `path` is already normalised.
    pub fn matches(&self, method: &str, host: &str, path: &[u8]) -> bool {
        let method_ok = match &self.method {
            MethodMatch::Any => true,
            MethodMatch::Exact(m) => m == method,
        };
        method_ok && self.host.matches(host) && self.path.matches(path)
    }
}

/// Is `host` the apex `suffix` or a name below it (`*.suffix`)?
pub(crate) fn under_suffix(host: &str, suffix: &str) -> bool {
    host.eq_ignore_ascii_case(suffix)
        || (host.len() > suffix.len() + 1
            && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
            && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix))
}

/// Splits `host/path` where host may be a bracketed IPv6 literal.
fn split_target(target: &str) -> (&str, &str) {
    let search_from = if target.starts_with('[') {
        target.find(']').map_or(0, |i| i + 1)
    } else {
        0
    };
    match target[search_from..].find('/') {
        Some(i) => target.split_at(search_from + i),
        None => (target, ""),
    }
}

fn parse_rule_path(path: &str) -> std::result::Result<PathMatch, String> {
    if path.is_empty() || path == "/*" {
        return Ok(PathMatch::Prefix(b"/".to_vec()));
    }
    if path.contains(['?', '#']) || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "PATH '{path}' may not hold '?', '#', spaces or controls"
        ));
    }
    let (body, prefix) = match path.strip_suffix('*') {
        Some(b) => (b, true),
        None => (path, false),
    };
    if body.contains('*') {
        return Err(format!("PATH '{path}': '*' is only allowed at the end"));
    }
    let mut norm = crate::proxy::acl::normalize_path(body.as_bytes()).map_err(|_| {
        format!(
            "PATH '{path}' has an encoded separator (%2F, %5C) or a backslash next to a dot or \
             empty segment; write the path the server routes"
        )
    })?;
    // Normalising drops a trailing "/." but a prefix rule's trailing slash
    // is meaningful: "/api/*" must not match "/apiary".
    if prefix && body.ends_with('/') && !norm.ends_with(b"/") {
        norm.push(b'/');
    }
    Ok(if prefix {
        PathMatch::Prefix(norm)
    } else {
        PathMatch::Exact(norm)
    })
}

/// RFC 9110 token characters.
pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The user's own CA (`--http-ca` and `--http-key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFiles {
    /// PEM certificate.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// HTTP interception part of a policy.
#[derive(Debug, Clone, Default)]
pub struct HttpPolicy {
    /// `--http-allow` rules.
    pub allow: Vec<HttpRule>,
    /// `--http-deny` rules; deny wins.
    pub deny: Vec<HttpRule>,
    /// Ports intercepted besides 80 and 443 (`--http-port`).
    pub extra_ports: PortSet,
    /// SNI patterns spliced without interception (`--http-bypass`).
    pub bypass: Vec<HostMatch>,
    /// The user's CA instead of an ephemeral one.
    pub ca: Option<CaFiles>,
    /// Where to write the CA certificate (`--http-ca-out`).
    pub ca_out: Option<PathBuf>,
    /// Extra roots for verifying upstreams (`--upstream-ca`).
    pub upstream_ca: Vec<PathBuf>,
    /// Bound on connecting to an upstream and on waiting for its response
    /// head (`--http-timeout`); `None` is [`DEFAULT_UPSTREAM_TIMEOUT`].
    pub upstream_timeout: Option<std::time::Duration>,
    /// Further PEM bundles to splice the CA into (`--http-inject-ca`).
    pub inject_ca: Vec<PathBuf>,
    /// Splice only the `--http-inject-ca` bundles (`--no-default-bundles`).
    pub no_default_bundles: bool,
    /// Leave SSL_CERT_FILE and friends unset (`--no-ca-env`).
    pub no_ca_env: bool,
    /// Append the host's trusted roots to spliced bundles too
    /// (`--trust-host-cas`).
    pub trust_host_cas: bool,
}

/// How long the proxy waits for an upstream by default.
pub const DEFAULT_UPSTREAM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl HttpPolicy {
    /// True when connections to the intercepted ports go through the proxy.
    pub fn intercepting(&self) -> bool {
        !self.allow.is_empty() || !self.deny.is_empty()
    }

    /// The first interception option given while nothing turns
    /// interception on (`intercepting` counts secrets too), so a front door
    /// can refuse a silent no-op.
    pub fn unused_option(&self, intercepting: bool) -> Option<&'static str> {
        if intercepting {
            return None;
        }
        [
            (!self.extra_ports.is_empty(), "--http-port"),
            (!self.bypass.is_empty(), "--http-bypass"),
            (self.ca.is_some(), "--http-ca"),
            (self.ca_out.is_some(), "--http-ca-out"),
            (!self.upstream_ca.is_empty(), "--upstream-ca"),
            (self.upstream_timeout.is_some(), "--http-timeout"),
            (!self.inject_ca.is_empty(), "--http-inject-ca"),
            (self.no_default_bundles, "--no-default-bundles"),
            (self.no_ca_env, "--no-ca-env"),
            (self.trust_host_cas, "--trust-host-cas"),
        ]
        .into_iter()
        .find_map(|(set, flag)| set.then_some(flag))
    }

    /// Refuses a `--http-bypass` pattern that an `--http-allow` or
    /// `--http-deny` rule also covers: a bypassed connection is spliced
    /// unread, so such a rule could never be applied to it, and the user
    /// would believe it is.
    pub fn check_bypass(&self) -> Result<()> {
        let rules = self
            .allow
            .iter()
            .map(|r| ("--http-allow", r))
            .chain(self.deny.iter().map(|r| ("--http-deny", r)));
        for (flag, rule) in rules {
            if let Some(b) = self.bypass.iter().find(|b| b.overlaps(&rule.host)) {
                return Err(Error::invalid(
                    "--http-bypass",
                    &b.to_string(),
                    format!(
                        "{flag} '{}' covers the same host, but a bypassed connection is \
                         passed through unread, so that rule could never apply to it; \
                         drop the rule or the bypass",
                        rule.spec
                    ),
                ));
            }
        }
        Ok(())
    }

    /// 80, 443 and every `--http-port`.
    pub fn intercepted_ports(&self) -> PortSet {
        let mut ports = PortSet::parse("80,443", "--http-port", "80,443").expect("literal");
        ports.extend(&self.extra_ports);
        ports
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> HttpRule {
        HttpRule::parse("--http-allow", s).unwrap()
    }

    #[test]
    fn parses_rules() {
        let r = rule("GET api.example.com/v1/*");
        assert_eq!(r.method, MethodMatch::Exact("GET".into()));
        assert_eq!(r.host, HostMatch::Exact("api.example.com".into()));
        assert_eq!(r.path, PathMatch::Prefix(b"/v1/".to_vec()));
        assert!(r.matches("GET", "api.example.com", b"/v1/x"));
        assert!(!r.matches("GET", "api.example.com", b"/v1"));
        assert!(!r.matches("POST", "api.example.com", b"/v1/x"));
        let r = rule("* *.Example.com");
        assert_eq!(r.host, HostMatch::Suffix("example.com".into()));
        assert!(r.matches("DELETE", "example.com", b"/"));
        assert!(r.matches("GET", "a.b.example.com", b"/x"));
        assert!(!r.matches("GET", "badexample.com", b"/x"));
        let r = rule("POST 127.0.0.1/login");
        assert_eq!(r.path, PathMatch::Exact(b"/login".to_vec()));
        assert!(r.matches("POST", "127.0.0.1", b"/login"));
        assert!(!r.matches("POST", "127.0.0.1", b"/login/x"));
        let r = rule("GET [::1]/a*");
        assert_eq!(r.host, HostMatch::Ip("::1".parse().unwrap()));
        assert!(r.matches("GET", "[::1]", b"/ab"));
        assert!(rule("GET [::ffff:10.0.0.1]").matches("GET", "10.0.0.1", b"/"));
        assert_eq!(rule("GET *").host, HostMatch::Any);
        assert_eq!(
            rule("GET h.test/a/../b").path,
            PathMatch::Exact(b"/b".to_vec())
        );
    }

    #[test]
    fn rejects_bad_rules() {
        for (bad, needle) in [
            ("GET", "expected 'METHOD HOST"),
            ("GET a b", "expected 'METHOD HOST"),
            ("G(T h.test", "METHOD"),
            ("GET /x", "missing HOST"),
            ("GET a*.test", "leading '*.'"),
            ("GET *.com", "top-level"),
            ("GET h.test/a*b", "only allowed at the end"),
            ("GET h.test/a?b", "may not hold"),
            ("GET h.test/a%2f..%2fb", "encoded separator"),
            ("GET bad_host!", "not a valid host name"),
        ] {
            let e = HttpRule::parse("--http-deny", bad).unwrap_err().to_string();
            assert!(
                e.contains(needle) && e.contains("--http-deny"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn bypass_patterns_are_names_only() {
        let p = |s| HostMatch::parse("--http-bypass", s, s, false);
        assert_eq!(
            p("*.pinned.test").unwrap(),
            HostMatch::Suffix("pinned.test".into())
        );
        assert!(p("*").is_err());
        assert!(p("10.0.0.1").is_err());
    }

    #[test]
    fn overlapping_patterns() {
        let h = |s: &str| HostMatch::parse("--http-allow", s, s, true).unwrap();
        for (a, b, want) in [
            ("pinned.test", "pinned.test", true),
            ("pinned.test", "other.test", false),
            ("pinned.test", "*.pinned.test", true),
            ("a.pinned.test", "*.pinned.test", true),
            ("pinned.test", "*.x.pinned.test", false),
            ("*.pinned.test", "*.x.pinned.test", true),
            ("*.a.test", "*.b.test", false),
            ("pinned.test", "*", true),
            ("pinned.test", "127.0.0.1", false),
            ("127.0.0.1", "[::ffff:127.0.0.1]", true),
        ] {
            assert_eq!(h(a).overlaps(&h(b)), want, "{a} {b}");
            assert_eq!(h(b).overlaps(&h(a)), want, "{b} {a}");
        }
    }

    /// A bypass that a path rule also covers is refused, naming both
    /// options and their values; a bypass of another host is fine.
    #[test]
    fn a_bypassed_host_with_rules_is_refused() {
        let policy = |allow: &[&str], deny: &[&str], bypass: &str| HttpPolicy {
            allow: allow
                .iter()
                .map(|r| HttpRule::parse("--http-allow", r).unwrap())
                .collect(),
            deny: deny
                .iter()
                .map(|r| HttpRule::parse("--http-deny", r).unwrap())
                .collect(),
            bypass: vec![HostMatch::parse("--http-bypass", bypass, bypass, false).unwrap()],
            ..Default::default()
        };
        let e = policy(&["GET api.test/readonly"], &[], "api.test")
            .check_bypass()
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "invalid value 'api.test' for '--http-bypass': --http-allow 'GET api.test/readonly' \
             covers the same host, but a bypassed connection is passed through unread, so that \
             rule could never apply to it; drop the rule or the bypass"
        );
        let e = policy(
            &["GET other.test/*"],
            &["POST *.pinned.test"],
            "pinned.test",
        )
        .check_bypass()
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("'--http-bypass'") && e.contains("--http-deny 'POST *.pinned.test'"),
            "{e}"
        );
        policy(
            &["GET api.test/readonly", "GET 127.0.0.1/x"],
            &[],
            "pinned.test",
        )
        .check_bypass()
        .unwrap();
    }

    #[test]
    fn default_ports() {
        let mut h = HttpPolicy::default();
        assert!(h.intercepted_ports().contains(80) && h.intercepted_ports().contains(443));
        h.extra_ports = PortSet::parse("8443", "--http-port", "8443").unwrap();
        assert!(h.intercepted_ports().contains(8443) && !h.intercepted_ports().contains(8080));
    }
}
