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

impl From<nix::Error> for Error {
    fn from(e: nix::Error) -> Self {
        Error::setup("system call failed", io::Error::from(e))
    }
}
