//! Parsing of `--secret` and `--secret-headers`.
//!
//! Owns: the grammar of a secret's declaration (its name, where its value is
//! read from, the hosts it is bound to, its options) and of a secret's header
//! restriction. Pure text in, values out: nothing here reads a source.
//!
//! Must never: read a secret's value, or echo text that may be one. A spec
//! holds only a *reference* to the value (`env:VAR`, `file:PATH`, `fd:N`);
//! when the source part is not such a reference (the user may have pasted the
//! value itself), error messages show `<hidden>` in its place.
//!
//! Grammar:
//!
//! ```text
//! --secret NAME=SOURCE@HOSTS[;plaintext]
//! --secret NAME@HOSTS[;plaintext]          (same as NAME=env:NAME@HOSTS)
//!   SOURCE = env:VAR | file:PATH | fd:N
//!   HOSTS  = HOST[,HOST...]                 (exact names or *.suffix)
//! --secret-headers NAME=H1[,H2...]
//! ```
//!
//! The last `@` separates the source from the hosts (host names never hold
//! one, a path may), and `;` after the hosts starts the options.

use std::path::PathBuf;

use http::HeaderName;

use crate::policy::HostMatch;
use crate::{Error, Result};

/// The flag that declares a secret, for error messages.
pub(crate) const SECRET_FLAG: &str = "--secret";
/// The flag that restricts a secret to named headers, for error messages.
pub(crate) const HEADERS_FLAG: &str = "--secret-headers";

/// Where a secret's value is read from, once, at startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `env:VAR`: sandlock's own environment variable `VAR`. It is removed
    /// from the workload's environment.
    Env(String),
    /// `file:PATH`: the whole file, less one trailing `\n` or `\r\n`.
    File(PathBuf),
    /// `fd:N`: an inherited descriptor (3 or above), read to end of file and
    /// then closed; one trailing `\n` or `\r\n` is stripped.
    Fd(i32),
}

impl std::fmt::Display for Source {
    /// The reference as written: `env:VAR`, `file:PATH` or `fd:N`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Env(var) => write!(f, "env:{var}"),
            Source::File(path) => write!(f, "file:{}", path.display()),
            Source::Fd(fd) => write!(f, "fd:{fd}"),
        }
    }
}

/// One `--secret` declaration: which value, under which name, for which hosts.
///
/// Holds no secret value, only where to read it, so it may be printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSpec {
    /// The environment variable the workload sees, holding the placeholder:
    /// `[A-Za-z_][A-Za-z0-9_]*`.
    pub name: String,
    /// Where the real value is read from.
    pub source: Source,
    /// The hosts the real value may be sent to: exact names or `*.suffix`
    /// (the apex and every name below it); never `*` or an address.
    pub hosts: Vec<HostMatch>,
    /// The headers the placeholder is replaced in (from `--secret-headers`);
    /// `None`: every header, the query, the path and the body.
    pub headers: Option<Vec<HeaderName>>,
    /// `;plaintext`: the value may also go out over plain HTTP to its hosts.
    pub plaintext: bool,
    /// The declaration as written, for messages.
    pub spec: String,
    /// Where it was declared when not on the command line (`profile
    /// git-https (shipped)`): messages name it instead of `--secret`.
    pub origin: Option<String>,
}

impl SecretSpec {
    /// Parses one `--secret` value. Errors name the flag and the spec (with
    /// the source hidden when it is not a reference).
    pub fn parse(spec: &str) -> Result<SecretSpec> {
        let bad = |reason: String| Error::invalid(SECRET_FLAG, &shown(spec), reason);
        let Some((left, right)) = spec.rsplit_once('@') else {
            return Err(bad(
                "expected NAME=SOURCE@HOSTS or NAME@HOSTS (missing '@HOSTS')".into(),
            ));
        };
        let (hosts_text, options) = match right.split_once(';') {
            Some((hosts, options)) => (hosts, Some(options)),
            None => (right, None),
        };

        let (name, source) = match left.split_once('=') {
            Some((name, source)) => {
                check_name(name).map_err(bad)?;
                (name, parse_source(source).map_err(bad)?)
            }
            None => {
                check_name(left).map_err(bad)?;
                (left, Source::Env(left.to_string()))
            }
        };

        let mut hosts: Vec<HostMatch> = Vec::new();
        for host in hosts_text.split(',') {
            let host = host.trim();
            if host.is_empty() {
                return Err(bad(
                    "empty host in HOSTS; give a comma-separated list of names or *.suffix".into(),
                ));
            }
            let host = HostMatch::parse(SECRET_FLAG, &shown(spec), host, false)?;
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }

        let mut plaintext = false;
        if let Some(options) = options {
            for option in options.split(';') {
                match option.trim() {
                    "plaintext" => plaintext = true,
                    other => {
                        return Err(bad(format!(
                            "unknown option '{other}' (the only option is 'plaintext')"
                        )))
                    }
                }
            }
        }

        Ok(SecretSpec {
            name: name.to_string(),
            source,
            hosts,
            headers: None,
            plaintext,
            spec: spec.to_string(),
            origin: None,
        })
    }
}

/// Parses one `--secret-headers NAME=H1,H2` value into the secret's name and
/// the headers (lower-cased, without duplicates) its substitution is limited to.
pub fn parse_secret_headers(spec: &str) -> Result<(String, Vec<HeaderName>)> {
    let bad = |reason: String| Error::invalid(HEADERS_FLAG, spec, reason);
    let Some((name, list)) = spec.split_once('=') else {
        return Err(bad("expected NAME=HEADER[,HEADER...]".into()));
    };
    check_name(name).map_err(bad)?;
    let mut headers: Vec<HeaderName> = Vec::new();
    for header in list.split(',') {
        let header = header.trim();
        if header.is_empty() {
            return Err(bad(
                "empty header name; give a comma-separated list of header names".into(),
            ));
        }
        let header = HeaderName::from_bytes(header.as_bytes())
            .map_err(|_| bad(format!("'{header}' is not a valid header name")))?;
        if !headers.contains(&header) {
            headers.push(header);
        }
    }
    Ok((name.to_string(), headers))
}

/// Is `name` usable as an environment variable name: `[A-Za-z_][A-Za-z0-9_]*`?
pub(crate) fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Checks a secret's name, with the reason when it is not usable.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty NAME; expected NAME=SOURCE@HOSTS or NAME@HOSTS".into());
    }
    if !is_env_name(name) {
        return Err(format!(
            "NAME '{name}' is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"
        ));
    }
    Ok(())
}

/// Is `source` written as a reference (`env:`, `file:`, `fd:`), as opposed
/// to text that may be the value itself?
fn is_reference(source: &str) -> bool {
    ["env:", "file:", "fd:"]
        .iter()
        .any(|scheme| source.starts_with(scheme))
}

/// The spec as echoed in errors: verbatim, except that a source which is not
/// a reference is replaced by `<hidden>` (it may be a pasted value).
fn shown(spec: &str) -> String {
    let (left, rest) = match spec.rfind('@') {
        Some(at) => (&spec[..at], &spec[at..]),
        None => (spec, ""),
    };
    match left.split_once('=') {
        Some((name, source)) if !is_reference(source) => format!("{name}=<hidden>{rest}"),
        _ => spec.to_string(),
    }
}

/// Parses SOURCE: `env:VAR`, `file:PATH` or `fd:N`.
fn parse_source(source: &str) -> Result<Source, String> {
    if let Some(var) = source.strip_prefix("env:") {
        if !is_env_name(var) {
            return Err(format!(
                "'env:{var}' does not name an environment variable ([A-Za-z_][A-Za-z0-9_]*)"
            ));
        }
        return Ok(Source::Env(var.to_string()));
    }
    if let Some(path) = source.strip_prefix("file:") {
        if path.is_empty() {
            return Err("'file:' needs a path".into());
        }
        if path.contains('\0') {
            return Err("the path after 'file:' contains a NUL byte".into());
        }
        return Ok(Source::File(PathBuf::from(path)));
    }
    if let Some(fd) = source.strip_prefix("fd:") {
        let n: i32 = fd
            .parse()
            .ok()
            .filter(|_| fd.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| format!("'fd:{fd}' needs a descriptor number"))?;
        if n <= 2 {
            return Err(format!(
                "'fd:{n}' is a standard stream, which the workload inherits; \
                 pass the secret on descriptor 3 or above"
            ));
        }
        return Ok(Source::Fd(n));
    }
    Err("SOURCE must be env:VAR, file:PATH or fd:N (not shown: it may be the secret itself)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(spec: &str) -> SecretSpec {
        SecretSpec::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"))
    }

    fn error(spec: &str) -> String {
        let e = SecretSpec::parse(spec).expect_err(spec).to_string();
        assert!(e.contains("--secret"), "{spec}: {e}");
        e
    }

    #[test]
    fn env_source() {
        let s = parse("GH_TOKEN=env:MY_TOKEN@github.com");
        assert_eq!(s.name, "GH_TOKEN");
        assert_eq!(s.source, Source::Env("MY_TOKEN".into()));
        assert_eq!(s.hosts, vec![HostMatch::Exact("github.com".into())]);
        assert_eq!(s.headers, None);
        assert!(!s.plaintext);
        assert_eq!(s.spec, "GH_TOKEN=env:MY_TOKEN@github.com");
        assert_eq!(s.source.to_string(), "env:MY_TOKEN");
    }

    #[test]
    fn short_form_reads_the_same_env_var() {
        let s = parse("GH_TOKEN@github.com");
        assert_eq!(s.name, "GH_TOKEN");
        assert_eq!(s.source, Source::Env("GH_TOKEN".into()));
    }

    #[test]
    fn file_source_may_hold_at_signs() {
        let s = parse("KEY=file:/run/keys/me@work/key.txt@api.example.com");
        assert_eq!(s.source, Source::File("/run/keys/me@work/key.txt".into()));
        assert_eq!(s.hosts, vec![HostMatch::Exact("api.example.com".into())]);
        assert_eq!(s.source.to_string(), "file:/run/keys/me@work/key.txt");
    }

    #[test]
    fn fd_source() {
        let s = parse("KEY=fd:3@api.example.com");
        assert_eq!(s.source, Source::Fd(3));
        assert_eq!(s.source.to_string(), "fd:3");
    }

    #[test]
    fn host_lists_and_wildcards() {
        let s = parse("K@github.com,*.githubusercontent.com, API.Example.com.,github.com");
        assert_eq!(
            s.hosts,
            vec![
                HostMatch::Exact("github.com".into()),
                HostMatch::Suffix("githubusercontent.com".into()),
                HostMatch::Exact("api.example.com".into()),
            ]
        );
    }

    #[test]
    fn plaintext_option() {
        assert!(parse("K=env:V@example.com;plaintext").plaintext);
        assert!(parse("K@a.example.com,b.example.com;plaintext").plaintext);
        let e = error("K@example.com;cleartext");
        assert!(e.contains("unknown option 'cleartext'"), "{e}");
    }

    #[test]
    fn malformed_specs_name_flag_and_spec() {
        for (spec, needle) in [
            ("GH_TOKEN", "missing '@HOSTS'"),
            ("GH_TOKEN=env:X", "missing '@HOSTS'"),
            ("@github.com", "empty NAME"),
            ("=env:X@github.com", "empty NAME"),
            ("1TOKEN@github.com", "not an environment variable name"),
            ("GH-TOKEN@github.com", "not an environment variable name"),
            ("T=env:@github.com", "does not name an environment variable"),
            (
                "T=env:A-B@github.com",
                "does not name an environment variable",
            ),
            ("T=file:@github.com", "needs a path"),
            ("T=fd:x@github.com", "needs a descriptor number"),
            ("T=fd:-4@github.com", "needs a descriptor number"),
            ("T=fd:+4@github.com", "needs a descriptor number"),
            ("T=fd:@github.com", "needs a descriptor number"),
            ("T=fd:0@github.com", "standard stream"),
            ("T=fd:2@github.com", "standard stream"),
            ("T@", "empty host"),
            ("T@github.com,,x.com", "empty host"),
            ("T@*", "'*' is not allowed"),
            ("T@10.0.0.1", "is an address"),
            ("T@[::1]", "is an address"),
            ("T@*.com", "top-level domain"),
            ("T@git*hub.com", "'*' may only"),
        ] {
            let e = error(spec);
            assert!(e.contains(needle), "{spec}: {e}");
            assert!(e.contains(&format!("'{spec}'")), "{spec}: {e}");
        }
    }

    #[test]
    fn a_pasted_value_is_never_echoed() {
        for spec in [
            "GH_TOKEN=ghp_pastedvalue123@github.com",
            "GH_TOKEN=ghp_pastedvalue123",
            "GH_TOKEN=ghp_pastedvalue123@*",
        ] {
            let e = error(spec);
            assert!(!e.contains("ghp_pastedvalue123"), "{e}");
            assert!(e.contains("GH_TOKEN=<hidden>"), "{e}");
        }
    }

    #[test]
    fn secret_headers() {
        let (name, headers) =
            parse_secret_headers("GH_TOKEN=Authorization, X-Api-Key,authorization").unwrap();
        assert_eq!(name, "GH_TOKEN");
        assert_eq!(
            headers,
            vec![
                HeaderName::from_static("authorization"),
                HeaderName::from_static("x-api-key"),
            ]
        );
    }

    #[test]
    fn malformed_secret_headers_name_flag_and_spec() {
        for (spec, needle) in [
            ("GH_TOKEN", "expected NAME=HEADER"),
            ("=Authorization", "empty NAME"),
            ("GH-TOKEN=Authorization", "not an environment variable name"),
            ("GH_TOKEN=", "empty header name"),
            ("GH_TOKEN=Authorization,", "empty header name"),
            ("GH_TOKEN=Bad Header", "not a valid header name"),
            ("GH_TOKEN=:authority", "not a valid header name"),
        ] {
            let e = parse_secret_headers(spec).expect_err(spec).to_string();
            assert!(e.contains("--secret-headers"), "{spec}: {e}");
            assert!(e.contains(&format!("'{spec}'")), "{spec}: {e}");
            assert!(e.contains(needle), "{spec}: {e}");
        }
    }
}
