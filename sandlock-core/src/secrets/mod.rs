//! Secrets the workload can use but never read: real values in the
//! supervisor, placeholders in the sandbox.
//!
//! Owns: the declarations ([`SecretSpec`], from `--secret` and
//! `--secret-headers`), reading every value once at startup ([`Secrets::load`]
//! from sandlock's environment, a file or an inherited descriptor), and the
//! random placeholder that stands in for each value in the workload's
//! environment ([`Secrets::env`]).
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
mod spec;

/// `--secret-headers NAME=H1,H2` parsed: the secret's name and the headers.
pub type SecretHeaders = (String, Vec<http::HeaderName>);

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
    Error::invalid(
        SECRET_FLAG,
        &spec.spec,
        format!("secret {}: {} {reason}", spec.name, spec.source),
    )
}

/// Reads and checks one secret's value.
fn read_value(spec: &SecretSpec) -> Result<Zeroizing<Vec<u8>>> {
    let value = match &spec.source {
        Source::Env(var) => match std::env::var_os(var) {
            Some(v) => Zeroizing::new(v.into_vec()),
            None => return Err(unusable(spec, "is not set")),
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
mod tests {
    use std::io::Write;
    use std::os::fd::IntoRawFd;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A file of its own under the temporary directory, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(contents: &[u8]) -> TempFile {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "sandlock-secret-test-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::write(&path, contents).unwrap();
            TempFile(path)
        }

        fn spec(&self, name: &str) -> SecretSpec {
            spec(&format!("{name}=file:{}@example.com", self.0.display()))
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn spec(text: &str) -> SecretSpec {
        SecretSpec::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn load_file(contents: &[u8]) -> Result<Secrets> {
        let file = TempFile::new(contents);
        Secrets::load(&[file.spec("TOKEN")])
    }

    fn only(secrets: &Secrets) -> &Secret {
        let mut it = secrets.iter();
        let s = it.next().expect("one secret");
        assert!(it.next().is_none());
        s
    }

    /// Loading `contents` from a file fails; the message names the flag, the
    /// secret and its source, and never holds the value.
    fn load_error(contents: &[u8], needle: &str) {
        let file = TempFile::new(contents);
        let e = Secrets::load(&[file.spec("TOKEN")])
            .expect_err(needle)
            .to_string();
        assert!(e.contains("--secret"), "{e}");
        assert!(e.contains("secret TOKEN"), "{e}");
        assert!(e.contains(&format!("file:{}", file.0.display())), "{e}");
        assert!(e.contains(needle), "{e}");
        let shown = String::from_utf8_lossy(contents);
        let core = shown.trim_matches(|c: char| c.is_control());
        if core.len() >= 8 {
            assert!(!e.contains(core), "value in error: {e}");
        }
        for part in shown.split(|c: char| c.is_control()) {
            if part.len() >= 8 {
                assert!(!e.contains(part), "value in error: {e}");
            }
        }
    }

    fn is_alnum(p: &[u8]) -> bool {
        p.iter().all(u8::is_ascii_alphanumeric)
    }

    #[test]
    fn env_source_is_read_and_consumed() {
        std::env::set_var("SANDLOCK_TEST_SECRET_ENV_A", "ghp_0123456789abcdefghij");
        std::env::set_var("SANDLOCK_TEST_SECRET_ENV_B", "short");
        let secrets = Secrets::load(&[
            spec("GH_TOKEN=env:SANDLOCK_TEST_SECRET_ENV_A@github.com,*.github.com"),
            spec("SANDLOCK_TEST_SECRET_ENV_B@api.example.com"),
            spec("OTHER=env:SANDLOCK_TEST_SECRET_ENV_A@example.org"),
        ])
        .unwrap();
        assert!(!secrets.is_empty());
        let all: Vec<&Secret> = secrets.iter().collect();
        assert_eq!(all[0].name(), "GH_TOKEN");
        assert_eq!(all[0].value(), b"ghp_0123456789abcdefghij");
        assert_eq!(all[1].value(), b"short");
        assert_eq!(
            all[0].source(),
            &Source::Env("SANDLOCK_TEST_SECRET_ENV_A".into())
        );
        assert_eq!(
            secrets.consumed_env(),
            vec![
                "SANDLOCK_TEST_SECRET_ENV_A".to_string(),
                "SANDLOCK_TEST_SECRET_ENV_B".to_string()
            ]
        );
        let env = secrets.env();
        assert_eq!(env.len(), 3);
        for ((name, placeholder), secret) in env.iter().zip(secrets.iter()) {
            assert_eq!(name, secret.name());
            assert_eq!(placeholder.as_bytes(), secret.placeholder());
            assert_ne!(placeholder.as_bytes(), secret.value());
        }
        // Same value, different secrets: different placeholders.
        assert_ne!(all[0].placeholder(), all[2].placeholder());
    }

    #[test]
    fn missing_or_empty_env_is_an_error_naming_the_secret() {
        std::env::remove_var("SANDLOCK_TEST_SECRET_UNSET");
        let e = Secrets::load(&[spec("GH_TOKEN=env:SANDLOCK_TEST_SECRET_UNSET@github.com")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("secret GH_TOKEN: env:SANDLOCK_TEST_SECRET_UNSET is not set"),
            "{e}"
        );
        std::env::set_var("SANDLOCK_TEST_SECRET_EMPTY", "");
        let e = Secrets::load(&[spec("T=env:SANDLOCK_TEST_SECRET_EMPTY@github.com")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("secret T: env:SANDLOCK_TEST_SECRET_EMPTY is empty"),
            "{e}"
        );
        std::env::set_var("SANDLOCK_TEST_SECRET_LF", "line-one-value\nline-two-value");
        let e = Secrets::load(&[spec("T=env:SANDLOCK_TEST_SECRET_LF@github.com")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("a line feed"), "{e}");
        assert!(
            !e.contains("line-one-value") && !e.contains("line-two-value"),
            "{e}"
        );
    }

    #[test]
    fn file_source_strips_one_trailing_newline() {
        for (contents, value) in [
            (
                &b"file-secret-value-0123"[..],
                &b"file-secret-value-0123"[..],
            ),
            (b"file-secret-value-0123\n", b"file-secret-value-0123"),
            (b"file-secret-value-0123\r\n", b"file-secret-value-0123"),
            (b"abc\n", b"abc"),
        ] {
            let secrets = load_file(contents).unwrap();
            assert_eq!(only(&secrets).value(), value);
        }
        // Only one newline goes: a second is part of the value, and refused.
        load_error(b"file-secret-value-0123\n\n", "a line feed");
        load_error(b"file-secret-value-0123\r\n\r\n", "a carriage return");
        load_error(b"\n", "is empty");
        load_error(b"\r\n", "is empty");
        load_error(b"", "is empty");
    }

    #[test]
    fn cr_lf_and_nul_are_refused_without_showing_the_value() {
        load_error(b"first-half-abc\rsecond-half-xyz", "a carriage return");
        load_error(b"first-half-abc\nsecond-half-xyz", "a line feed");
        load_error(b"first-half-abc\0second-half-xyz", "a NUL byte");
    }

    #[test]
    fn missing_file_is_an_error_naming_the_secret_and_path() {
        let e = Secrets::load(&[spec("KEY=file:/nonexistent/sandlock/key@example.com")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("secret KEY: file:/nonexistent/sandlock/key does not exist"),
            "{e}"
        );
        let e = Secrets::load(&[spec("KEY=file:/@example.com")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("secret KEY: file:/ cannot be read"), "{e}");
    }

    #[test]
    fn size_bound_is_64_kib() {
        let max = vec![b'a'; MAX_VALUE_LEN];
        assert_eq!(only(&load_file(&max).unwrap()).value().len(), MAX_VALUE_LEN);
        let mut max_nl = max.clone();
        max_nl.extend_from_slice(b"\r\n");
        assert_eq!(
            only(&load_file(&max_nl).unwrap()).value().len(),
            MAX_VALUE_LEN
        );
        load_error(&vec![b'a'; MAX_VALUE_LEN + 1], "longer than the limit");
        load_error(&vec![b'a'; 4 * MAX_VALUE_LEN], "longer than the limit");
        // An endless source stops at the bound.
        let e = Secrets::load(&[spec("Z=file:/dev/zero@example.com")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("longer than the limit"), "{e}");
    }

    #[test]
    fn fd_source_is_read_to_end_and_closed() {
        let (reader, writer) = nix::unistd::pipe().unwrap();
        let mut writer = File::from(writer);
        writer.write_all(b"fd-secret-value-0123456789\n").unwrap();
        drop(writer);
        let fd = reader.into_raw_fd();
        let secrets = Secrets::load(&[spec(&format!("KEY=fd:{fd}@example.com"))]).unwrap();
        assert_eq!(only(&secrets).value(), b"fd-secret-value-0123456789");
        assert_eq!(only(&secrets).source(), &Source::Fd(fd));
        assert!(secrets.consumed_env().is_empty());
    }

    #[test]
    fn closed_fd_is_an_error() {
        let fd = 1_000_000;
        let e = Secrets::load(&[spec(&format!("KEY=fd:{fd}@example.com"))])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("secret KEY: fd:{fd} is not an open descriptor")),
            "{e}"
        );
    }

    #[test]
    fn duplicates_are_refused() {
        std::env::set_var("SANDLOCK_TEST_SECRET_DUP", "some-value");
        let e = Secrets::load(&[
            spec("T=env:SANDLOCK_TEST_SECRET_DUP@a.example.com"),
            spec("T=env:SANDLOCK_TEST_SECRET_DUP@b.example.com"),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("secret T is declared twice"), "{e}");
        assert!(
            e.contains("'T=env:SANDLOCK_TEST_SECRET_DUP@b.example.com'"),
            "{e}"
        );
        // The duplicate fd is caught before either is read (or closed).
        let e = Secrets::load(&[
            spec("A=fd:1000001@example.com"),
            spec("B=fd:1000001@example.com"),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("fd:1000001 is the source of two secrets"), "{e}");
    }

    #[test]
    fn long_values_get_same_length_alnum_placeholders() {
        for len in [16, 17, 40, 255, 4096, MAX_VALUE_LEN] {
            let value: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let secrets = load_file(&value).unwrap();
            let s = only(&secrets);
            assert_eq!(s.value(), &value[..]);
            assert_eq!(s.placeholder().len(), len, "{len}");
            assert!(is_alnum(s.placeholder()));
            assert_ne!(s.placeholder(), s.value());
        }
    }

    #[test]
    fn short_values_get_24_byte_placeholders() {
        for value in [&b"x"[..], b"!", b"abc", b"0123456789abcde"] {
            let secrets = load_file(value).unwrap();
            let s = only(&secrets);
            let p = s.placeholder();
            assert_eq!(p.len(), SHORT_PLACEHOLDER_LEN);
            assert!(p.starts_with(b"SLKP_"));
            assert!(is_alnum(&p[5..]));
            assert!(!contains(p, value));
        }
    }

    #[test]
    fn a_value_no_placeholder_can_avoid_is_refused() {
        // Every short placeholder starts with "SLKP_", so holds "S".
        load_error(b"S", "too short to hide");
    }

    #[test]
    fn placeholders_are_random_and_distinct() {
        let files: Vec<TempFile> = (0..20)
            .map(|_| TempFile::new(b"identical-value-0123456789"))
            .collect();
        let specs: Vec<SecretSpec> = files
            .iter()
            .enumerate()
            .map(|(i, f)| f.spec(&format!("S{i}")))
            .collect();
        let secrets = Secrets::load(&specs).unwrap();
        let placeholders: HashSet<&[u8]> = secrets.iter().map(Secret::placeholder).collect();
        assert_eq!(placeholders.len(), 20);
        // Every character of the alphabet turns up over enough draws.
        let drawn = random_alnum(10_000).unwrap();
        let distinct: HashSet<u8> = drawn.iter().copied().collect();
        assert_eq!(distinct.len(), 62);
        assert!(is_alnum(&drawn));
    }

    #[test]
    fn debug_never_shows_the_value() {
        let secrets = load_file(b"do-not-print-this-value-42").unwrap();
        let s = only(&secrets);
        let placeholder = String::from_utf8(s.placeholder().to_vec()).unwrap();
        for shown in [
            format!("{s:?}"),
            format!("{secrets:?}"),
            format!("{secrets:#?}"),
        ] {
            assert!(!shown.contains("do-not-print-this-value-42"), "{shown}");
            assert!(
                shown.contains("TOKEN") && shown.contains(&placeholder),
                "{shown}"
            );
            assert!(shown.contains("<redacted>"), "{shown}");
        }
    }

    #[test]
    fn hosts_headers_and_options_come_from_the_spec() {
        let file = TempFile::new(b"value-for-binding-test");
        let mut s = spec(&format!(
            "K=file:{}@github.com,*.example.com;plaintext",
            file.0.display()
        ));
        s.headers = Some(vec![HeaderName::from_static("authorization")]);
        let secrets = Secrets::load(&[s]).unwrap();
        let k = only(&secrets);
        assert!(k.plaintext());
        assert_eq!(
            k.headers(),
            Some(&[HeaderName::from_static("authorization")][..])
        );
        assert_eq!(k.hosts().len(), 2);
        for host in [
            "github.com",
            "GitHub.com.",
            "example.com",
            "api.example.com",
        ] {
            assert!(k.bound_to(host), "{host}");
        }
        for host in [
            "gist.github.com",
            "notexample.com",
            "example.org",
            "10.0.0.1",
        ] {
            assert!(!k.bound_to(host), "{host}");
        }
        assert_eq!(
            k.spec(),
            format!(
                "K=file:{}@github.com,*.example.com;plaintext",
                file.0.display()
            )
        );
        let no_headers = load_file(b"abc").unwrap();
        assert_eq!(only(&no_headers).headers(), None);
        assert!(!only(&no_headers).plaintext());
    }

    #[test]
    fn no_secrets() {
        let secrets = Secrets::load(&[]).unwrap();
        assert!(secrets.is_empty());
        assert!(secrets.env().is_empty() && secrets.consumed_env().is_empty());
    }
}

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
