//! Tests of secret loading and placeholders.

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
