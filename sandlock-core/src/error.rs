//! Library error type. Messages name the thing that failed so the front door
//! can print them as they are.

use std::io;

/// Every failure sandlock-core reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A policy value was malformed; names the flag (or field) and the value.
    #[error("invalid value '{value}' for '{flag}': {reason}")]
    InvalidValue {
        /// The flag or field, e.g. `--net-allow`.
        flag: &'static str,
        /// The rejected value, verbatim.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A profile entry that cannot be used: an unknown section or key, a
    /// value of the wrong type or one the option refuses. Names the file,
    /// the line, the dotted key and the value (`<hidden>` where it may be a
    /// secret).
    #[error("{file}:{line}: {}: {reason}", key_value(.key, .value))]
    Profile {
        /// The profile file (or `profiles/NAME.toml` for a shipped one).
        file: String,
        /// 1-based line of the key or value.
        line: usize,
        /// The dotted key, e.g. `network.allow`.
        key: String,
        /// The value as written, if there is one to show.
        value: Option<String>,
        /// Why it was refused.
        reason: String,
    },
    /// A profile that is not valid TOML.
    #[error("{file}:{line}: {reason}")]
    ProfileSyntax {
        /// The profile file.
        file: String,
        /// 1-based line of the error.
        line: usize,
        /// The TOML parser's message.
        reason: String,
    },
    /// `--profile NAME` named no profile in any place looked at.
    #[error("no profile named '{name}' (looked in {searched})")]
    ProfileNotFound {
        /// The name asked for.
        name: String,
        /// Where sandlock looked, for the message.
        searched: String,
    },
    /// Options that do not go together (or one that needs another).
    #[error("{0}")]
    Usage(String),
    /// The kernel lacks a feature sandlock needs to confine safely.
    #[error("kernel unsupported: {0}")]
    Unsupported(String),
    /// A host name in the policy could not be resolved at start.
    #[error("cannot resolve '{host}' (from {flag}): {reason}")]
    Resolve {
        /// The flag that named the host.
        flag: &'static str,
        /// The host name.
        host: String,
        /// The resolver's answer.
        reason: String,
    },
    /// The command to run could not be found or executed.
    #[error("{cmd}: {reason}")]
    Command {
        /// The command as given.
        cmd: String,
        /// What went wrong.
        reason: String,
        /// The exit status the front door should use (126 or 127).
        status: i32,
    },
    /// A file named by a flag could not be used (a CA, a key, a bundle).
    #[error("cannot use '{path}' (from {flag}): {reason}")]
    File {
        /// The flag that named the file, e.g. `--http-ca`.
        flag: &'static str,
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Building TLS material (a certificate, a key, a TLS configuration) failed.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// Setting up the sandbox failed (a syscall, a file, a pipe).
    #[error("{context}: {source}")]
    Setup {
        /// What sandlock was doing.
        context: String,
        /// The underlying OS error.
        #[source]
        source: io::Error,
    },
}

/// Result alias for sandlock-core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an OS error with what sandlock was doing at the time.
    pub fn setup(context: impl Into<String>, source: impl Into<io::Error>) -> Self {
        Error::Setup {
            context: context.into(),
            source: source.into(),
        }
    }

    pub(crate) fn invalid(flag: &'static str, value: &str, reason: impl Into<String>) -> Self {
        Error::InvalidValue {
            flag,
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// `key = value`, or `key` alone when there is no value to show.
fn key_value(key: &str, value: &Option<String>) -> String {
    match value {
        Some(v) => format!("{key} = {v}"),
        None => key.to_string(),
    }
}

impl From<nix::Error> for Error {
    fn from(e: nix::Error) -> Self {
        Error::setup("system call failed", io::Error::from(e))
    }
}
