//! Secrets the workload can use but never read: real values in the
//! supervisor, placeholders in the sandbox.
//!
//! Owns: the declarations ([`SecretSpec`], from `--secret` and
//! `--secret-headers`), reading every value once at startup ([`Secrets::load`]
//! from sandlock's environment, a file or an inherited descriptor), and the
//! random placeholder that stands in for each value in the workload's
//! environment ([`Secrets::env`]). Before anything is read, [`check_reach`]
//! refuses a source the workload could read itself (`reach.rs`).
//!
//! Must never: let a value reach the workload (its environment, files, argv
//! or memory), a log line, an audit record, an error message, a `Debug` or
//! `Display` output, or any file on disk. Values live only in
//! [`zeroize::Zeroizing`] buffers, wiped when dropped; errors name the secret
//! and its source reference (`env:GH_TOKEN`, `file:/path`, `fd:3`), never what
//! was read.
//!
//! Placeholders are random per sandbox and made of `[A-Za-z0-9]` only, so they
//! are safe in headers, URLs, JSON and Basic credentials:
//!
//! - a value of 16 bytes or more gets a placeholder of exactly its length
//!   (16 random alphanumerics carry about 95 bits), so substituting it never
//!   changes a body's length;
//! - a shorter value gets a 24-byte placeholder, `SLKP_` and 19 random
//!   alphanumerics (about 113 bits). Substituting it *changes* the length of
//!   whatever holds it, so bodies need their lengths fixed.
//!
//! No placeholder equals or contains a value, or equals, contains or is
//! contained in another placeholder: a candidate that would is drawn again.

pub mod matcher;
mod reach;
mod search;
mod spec;

/// `--secret-headers NAME=H1,H2` parsed: the secret's name and the headers.
pub type SecretHeaders = (String, Vec<http::HeaderName>);

pub use reach::{check as check_reach, Reach};
pub use spec::{parse_secret_headers, SecretSpec, Source};

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::FromRawFd;
use std::os::unix::ffi::OsStringExt;

use http::HeaderName;
use zeroize::Zeroizing;

use crate::policy::HostMatch;
use crate::{Error, Result};
use spec::SECRET_FLAG;

/// The largest value accepted, in bytes.
pub const MAX_VALUE_LEN: usize = 64 * 1024;
/// Values shorter than this get a fixed-length placeholder instead of one of
/// their own length (too few random characters would be guessable).
pub const MIN_SAME_LENGTH: usize = 16;
/// The length of the placeholder of a value shorter than [`MIN_SAME_LENGTH`].
pub const SHORT_PLACEHOLDER_LEN: usize = 24;
/// How the placeholder of a short value starts.
const SHORT_PREFIX: &[u8] = b"SLKP_";
/// Draws per placeholder before giving up (only degenerate values, such as a
/// one-character one that every candidate contains, get near it).
const MAX_DRAWS: usize = 1000;

/// One secret, loaded: its real value, its placeholder and where the value
/// may go.
///
/// `Debug` shows the name and the placeholder, never the value.
pub struct Secret {
    name: String,
    value: Zeroizing<Vec<u8>>,
    placeholder: Vec<u8>,
    hosts: Vec<HostMatch>,
    headers: Option<Vec<HeaderName>>,
    plaintext: bool,
    source: Source,
    spec: String,
}

impl Secret {
    /// The environment variable the workload sees the placeholder in.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The placeholder the workload holds instead of the value
    /// (`[A-Za-z0-9_]`, ASCII).
    pub fn placeholder(&self) -> &[u8] {
        &self.placeholder
    }

    /// The real value. Only for the bytes that go on the wire to a bound
    /// host: never log, format or store it.
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// The hosts the value may be sent to.
    pub fn hosts(&self) -> &[HostMatch] {
        &self.hosts
    }

    /// The headers substitution is limited to; `None`: every header, the
    /// query, the path and the body.
    pub fn headers(&self) -> Option<&[HeaderName]> {
        self.headers.as_deref()
    }

    /// May the value also go out over plain HTTP to its hosts?
    pub fn plaintext(&self) -> bool {
        self.plaintext
    }

    /// The `--secret` declaration as written (no value in it), for messages.
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// Where the value was read from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Is `host` (a name without port) one of the hosts the value may go to?
    pub fn bound_to(&self, host: &str) -> bool {
        self.hosts.iter().any(|pattern| pattern.matches(host))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("name", &self.name)
            .field("placeholder", &String::from_utf8_lossy(&self.placeholder))
            .field("value", &"<redacted>")
            .field("hosts", &self.hosts)
            .field("headers", &self.headers)
            .field("plaintext", &self.plaintext)
            .finish()
    }
}

/// Every secret of one sandbox, with its placeholder.
#[derive(Debug, Default)]
pub struct Secrets {
    secrets: Vec<Secret>,
}

impl Secrets {
    /// Reads every secret's value now and draws its placeholder.
    ///
    /// `env:VAR` reads sandlock's own environment; `file:PATH` reads the
    /// whole file and `fd:N` the descriptor to its end (then closes it), each
    /// less one trailing `\n` or `\r\n`. A value must be 1 to 64 KiB long
    /// with no NUL, CR or LF. A missing, unreadable, empty or malformed value
    /// is an error naming the secret and its source, as are two secrets with
    /// one name or one descriptor.
    ///
    /// `fd:N` takes ownership of descriptor N: call this before opening
    /// anything that could be given that number, and close no descriptor
    /// named here.
    pub fn load(specs: &[SecretSpec]) -> Result<Secrets> {
        let mut names = HashSet::new();
        let mut fds = HashSet::new();
        for spec in specs {
            if !names.insert(spec.name.as_str()) {
                return Err(Error::invalid(
                    SECRET_FLAG,
                    &spec.spec,
                    format!("secret {} is declared twice", spec.name),
                ));
            }
            if let Source::Fd(fd) = spec.source {
                if !fds.insert(fd) {
                    return Err(Error::invalid(
                        SECRET_FLAG,
                        &spec.spec,
                        format!("fd:{fd} is the source of two secrets; it can be read only once"),
                    ));
                }
            }
        }

        let mut values = Vec::with_capacity(specs.len());
        for spec in specs {
            values.push(read_value(spec)?);
        }

        let mut placeholders: Vec<Vec<u8>> = Vec::with_capacity(specs.len());
        for (spec, value) in specs.iter().zip(&values) {
            placeholders.push(draw_placeholder(spec, value, &values, &placeholders)?);
        }

        let secrets = specs
            .iter()
            .zip(values)
            .zip(placeholders)
            .map(|((spec, value), placeholder)| Secret {
                name: spec.name.clone(),
                value,
                placeholder,
                hosts: spec.hosts.clone(),
                headers: spec.headers.clone(),
                plaintext: spec.plaintext,
                source: spec.source.clone(),
                spec: spec.spec.clone(),
            })
            .collect();
        Ok(Secrets { secrets })
    }

    /// Every secret, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = &Secret> {
        self.secrets.iter()
    }

    /// No secret declared?
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `(NAME, placeholder)` for each secret: what the workload's environment
    /// holds instead of the values.
    pub fn env(&self) -> Vec<(String, String)> {
        self.secrets
            .iter()
            .map(|s| {
                // Placeholders are ASCII alphanumerics (and '_'), always UTF-8.
                let placeholder = String::from_utf8_lossy(&s.placeholder).into_owned();
                (s.name.clone(), placeholder)
            })
            .collect()
    }

    /// The environment variables read as sources, each once: they must not
    /// reach the workload (a secret's own name, when also a source, is then
    /// set to its placeholder by [`Secrets::env`]).
    pub fn consumed_env(&self) -> Vec<String> {
        let mut seen = Vec::new();
        for secret in &self.secrets {
            if let Source::Env(var) = &secret.source {
                if !seen.contains(var) {
                    seen.push(var.clone());
                }
            }
        }
        seen
    }
}

/// The error for a secret whose value could not be used. Names the secret
/// and its source; `reason` must never hold the value.
fn unusable(spec: &SecretSpec, reason: impl fmt::Display) -> Error {
    let why = format!("secret {}: {} {reason}", spec.name, spec.source);
    match &spec.origin {
        // The user never typed a --secret: name what declared it.
        Some(origin) => Error::Usage(format!("{origin}: {why}")),
        None => Error::invalid(SECRET_FLAG, &spec.spec, why),
    }
}

/// Reads and checks one secret's value.
fn read_value(spec: &SecretSpec) -> Result<Zeroizing<Vec<u8>>> {
    let value = match &spec.source {
        Source::Env(var) => match std::env::var_os(var) {
            Some(v) => Zeroizing::new(v.into_vec()),
            None => {
                return Err(unusable(
                    spec,
                    format!("is not set (export {var} before running sandlock)"),
                ))
            }
        },
        Source::File(path) => {
            let mut file = File::open(path).map_err(|e| unusable(spec, describe(&e)))?;
            let raw = read_bounded(&mut file).map_err(|e| unusable(spec, describe(&e)))?;
            strip_newline(raw)
        }
        Source::Fd(fd) => {
            let mut file = take_inherited_fd(*fd).map_err(|e| unusable(spec, describe(&e)))?;
            let raw = read_bounded(&mut file).map_err(|e| unusable(spec, describe(&e)))?;
            drop(file); // closes the descriptor
            strip_newline(raw)
        }
    };
    if value.is_empty() {
        return Err(unusable(spec, "is empty"));
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(unusable(
            spec,
            format!("is longer than the limit of {MAX_VALUE_LEN} bytes (64 KiB)"),
        ));
    }
    for (byte, what) in [
        (0u8, "a NUL byte"),
        (b'\r', "a carriage return"),
        (b'\n', "a line feed"),
    ] {
        if value.contains(&byte) {
            return Err(unusable(
                spec,
                format!("holds {what}; a secret must be a single line"),
            ));
        }
    }
    Ok(value)
}

/// An I/O error's description, without the path (the error names the source).
fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "does not exist".into(),
        io::ErrorKind::PermissionDenied => "cannot be read: permission denied".into(),
        _ if e.raw_os_error() == Some(libc::EBADF) => "is not an open descriptor".into(),
        _ => format!("cannot be read: {e}"),
    }
}

/// Takes ownership of the inherited descriptor `fd` as a file.
fn take_inherited_fd(fd: i32) -> io::Result<File> {
    // SAFETY: F_GETFD only reads the descriptor's flags; any integer may be
    // passed, and one that is not an open descriptor yields EBADF.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is open (checked just above) and was handed to sandlock by
    // whoever started it, for this secret alone: `Secrets::load` refuses the
    // same number for two secrets and 0..=2, and nothing else in sandlock owns
    // it. The returned File becomes its only owner and closes it once the
    // value is read.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Reads to end of file, but no further than a value can be long (plus a
/// trailing `\r\n` and one byte to tell "too long"), so `/dev/zero` or a huge
/// file cannot exhaust memory. The buffer never grows, so no copy of the
/// value is left behind in freed memory.
fn read_bounded(reader: &mut impl Read) -> io::Result<Zeroizing<Vec<u8>>> {
    const LIMIT: usize = MAX_VALUE_LEN + 3;
    let mut buf = Zeroizing::new(vec![0u8; LIMIT]);
    let mut len = 0;
    while len < LIMIT {
        match reader.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    Ok(buf)
}

/// Drops one trailing `\n` or `\r\n`, into a buffer of exactly the value's
/// length (the larger read buffer is wiped when dropped).
fn strip_newline(raw: Zeroizing<Vec<u8>>) -> Zeroizing<Vec<u8>> {
    let bytes: &[u8] = &raw;
    let bytes = bytes
        .strip_suffix(b"\r\n")
        .or_else(|| bytes.strip_suffix(b"\n"))
        .unwrap_or(bytes);
    Zeroizing::new(bytes.to_vec())
}

/// Draws the placeholder of the secret `spec` with value `value`, given every
/// value and the placeholders drawn so far.
fn draw_placeholder(
    spec: &SecretSpec,
    value: &[u8],
    values: &[Zeroizing<Vec<u8>>],
    taken: &[Vec<u8>],
) -> Result<Vec<u8>> {
    for _ in 0..MAX_DRAWS {
        let candidate = if value.len() >= MIN_SAME_LENGTH {
            random_alnum(value.len())?
        } else {
            let mut p = SHORT_PREFIX.to_vec();
            p.extend(random_alnum(SHORT_PLACEHOLDER_LEN - SHORT_PREFIX.len())?);
            p
        };
        let holds_a_value = values.iter().any(|v| contains(&candidate, v));
        let clashes = taken
            .iter()
            .any(|p| contains(&candidate, p) || contains(p, &candidate));
        if !holds_a_value && !clashes {
            return Ok(candidate);
        }
    }
    Err(unusable(
        spec,
        "is too short to hide: every placeholder drawn contained a secret's value",
    ))
}

/// Does `haystack` contain `needle`?
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// `len` characters drawn uniformly from `[A-Za-z0-9]` with the system CSPRNG.
fn random_alnum(len: usize) -> Result<Vec<u8>> {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    // Bytes of 248 or more are dropped so that `b % 62` is uniform.
    const BOUND: u8 = 62 * 4;
    let random = rustls::crypto::ring::default_provider().secure_random;
    let mut out = Vec::with_capacity(len);
    let mut pool = [0u8; 64];
    while out.len() < len {
        random.fill(&mut pool).map_err(|_| {
            Error::setup(
                "drawing secret placeholders",
                io::Error::other("the system random number generator failed"),
            )
        })?;
        out.extend(
            pool.iter()
                .filter(|&&b| b < BOUND)
                .map(|&b| ALPHABET[usize::from(b % 62)])
                .take(len - out.len()),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests;

/// What happens to a request carrying a placeholder where its secret may
/// not go (`--on-secret-misuse`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Misuse {
    /// Forward it with the placeholder (worthless there) and warn.
    #[default]
    Warn,
    /// Refuse it with 403.
    Block,
}

impl Misuse {
    /// Parses `warn` or `block`.
    pub fn parse(value: &str) -> crate::Result<Misuse> {
        match value {
            "warn" => Ok(Misuse::Warn),
            "block" => Ok(Misuse::Block),
            _ => Err(crate::Error::invalid(
                "--on-secret-misuse",
                value,
                "expected warn or block",
            )),
        }
    }
}
