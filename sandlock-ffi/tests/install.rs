//! scripts/install.sh against this build (SANDLOCK_INSTALL_SKIP_BUILD=1
//! with the profile of the target directory this test runs from): it
//! installs the binaries, the library, the header and a pkg-config file
//! under a temporary PREFIX (or DESTDIR), prints every path, and the C
//! example then builds with `pkg-config --cflags --libs sandlock`, linked
//! shared and static, and runs. Bad settings fail with a message.
//!
//! Needs what scripts/test.sh builds first: `cargo build --workspace` and
//! `cargo build-static` (the static sandlock and sandlock-oci).

// Test helpers report a failure by panicking: unwrap says "this must hold"
// (clippy's allow-unwrap-in-tests covers #[test] functions, not helpers).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{compile_example, lib_dir, repo_root, Ran, TempDir};

/// What the script installs, relative to the prefix.
const INSTALLED: [&str; 15] = [
    "bin/sandlock",
    "bin/sandlock-oci",
    "lib/libsandlock_ffi.so",
    "lib/libsandlock_ffi.a",
    "include/sandlock.h",
    "lib/pkgconfig/sandlock.pc",
    "share/man/man1/sandlock.1",
    "share/man/man1/sandlock-run.1",
    "share/man/man1/sandlock-check.1",
    "share/man/man1/sandlock-profile.1",
    "share/man/man1/sandlock-cow.1",
    "share/man/man1/sandlock-completions.1",
    "share/bash-completion/completions/sandlock",
    "share/zsh/site-functions/_sandlock",
    "share/fish/vendor_completions.d/sandlock.fish",
];

/// `bash scripts/install.sh` set to install this build without building,
/// with `env` on top.
fn install(env: &[(&str, &Path)]) -> Ran {
    let lib = lib_dir();
    let profile = match lib.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some("release") => "release",
        other => panic!("tests run from an unknown profile directory {other:?}"),
    };
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("scripts/install.sh"))
        .env("SANDLOCK_INSTALL_PROFILE", profile)
        .env("SANDLOCK_INSTALL_SKIP_BUILD", "1")
        .env("CARGO_TARGET_DIR", lib.parent().unwrap())
        .env_remove("DESTDIR")
        .env_remove("PREFIX");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Ran::of(&mut cmd)
}

/// `pkg-config ARGS sandlock` with the installed prefix's pkgconfig dir.
fn pkg_config(prefix: &Path, args: &[&str]) -> String {
    let ran = Ran::of(
        Command::new("pkg-config")
            .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
            .env_remove("PKG_CONFIG_SYSROOT_DIR")
            .args(args)
            .arg("sandlock"),
    );
    assert_eq!(ran.code, Some(0), "pkg-config {args:?}: {ran}");
    ran.stdout.trim().to_owned()
}

/// Runs the example as a user would: once reading a granted file (its
/// bytes, exit 0), once with a missing path (the error, exit 1).
fn run_example_twice(exe: &Path, dir: &TempDir) {
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/report.txt"), "installed and linked\n").unwrap();
    let ok = Ran::of(
        Command::new(exe)
            .arg(dir.join("data"))
            .arg("cat")
            .arg(dir.join("data/report.txt")),
    );
    assert_eq!(ok.code, Some(0), "{ok}");
    assert_eq!(ok.stdout, "installed and linked\n", "{ok}");

    let missing = dir.join("missing");
    let bad = Ran::of(Command::new(exe).arg(&missing).arg("true"));
    assert_eq!(bad.code, Some(1), "{bad}");
    assert!(
        bad.stderr.starts_with(&format!(
            "run: sandlock_run: invalid value '{missing}' for '--fs-read'"
        )),
        "{bad}"
    );
}

/// The shared libraries `exe` needs (readelf's NEEDED entries).
fn needed(exe: &Path) -> String {
    let ran = Ran::of(Command::new("readelf").arg("-d").arg(exe));
    assert_eq!(ran.code, Some(0), "readelf: {ran}");
    ran.stdout
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn install_into_a_prefix_then_the_c_example_builds_with_pkg_config() {
    let dir = TempDir::new("install");
    let prefix: PathBuf = dir.path().join("prefix");
    let ran = install(&[("PREFIX", &prefix)]);
    assert_eq!(ran.code, Some(0), "{ran}");
    for rel in INSTALLED {
        let path = prefix.join(rel);
        assert!(path.is_file(), "{} not installed: {ran}", path.display());
        assert!(
            ran.stdout
                .lines()
                .any(|l| l == format!("installed {}", path.display())),
            "{} not printed: {ran}",
            path.display()
        );
    }

    // The binaries are this build's, and run from their new home.
    let version = env!("CARGO_PKG_VERSION");
    for bin in ["sandlock", "sandlock-oci"] {
        let v = Ran::of(Command::new(prefix.join("bin").join(bin)).arg("--version"));
        assert_eq!(v.code, Some(0), "{v}");
        assert_eq!(v.stdout.trim(), format!("{bin} {version}"), "{v}");
    }
    assert_eq!(
        std::fs::read(prefix.join("include/sandlock.h")).unwrap(),
        std::fs::read(repo_root().join("include/sandlock.h")).unwrap()
    );

    // The pkg-config file names the prefix and the version.
    assert_eq!(pkg_config(&prefix, &["--modversion"]), version);
    assert_eq!(
        pkg_config(&prefix, &["--cflags", "--libs"]),
        format!(
            "-I{p}/include -L{p}/lib -lsandlock_ffi",
            p = prefix.display()
        )
    );

    // Linked shared, with the flags pkg-config gives.
    let mut flags: Vec<String> = pkg_config(&prefix, &["--cflags", "--libs"])
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    flags.push(format!("-Wl,-rpath,{}", prefix.join("lib").display()));
    let shared = dir.path().join("run-shared");
    compile_example(&shared, &flags);
    assert!(
        needed(&shared).contains("libsandlock_ffi.so"),
        "{}",
        needed(&shared)
    );
    run_example_twice(&shared, &dir);

    // Linked static: the .a plus the Libs.private pkg-config gives for
    // --static are all it needs.
    let mut flags: Vec<String> = pkg_config(&prefix, &["--cflags"])
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    flags.push(prefix.join("lib/libsandlock_ffi.a").display().to_string());
    flags.extend(
        pkg_config(&prefix, &["--static", "--libs-only-l"])
            .split_whitespace()
            .filter(|f| *f != "-lsandlock_ffi")
            .map(str::to_owned),
    );
    let fixed = dir.path().join("run-static");
    compile_example(&fixed, &flags);
    assert!(
        !needed(&fixed).contains("libsandlock_ffi"),
        "{}",
        needed(&fixed)
    );
    run_example_twice(&fixed, &dir);
}

#[test]
fn install_with_destdir_stages_the_files_and_names_the_final_prefix() {
    let dir = TempDir::new("install-destdir");
    let stage = dir.path().join("stage");
    let prefix = Path::new("/opt/sandlock-install-test");
    let ran = install(&[("DESTDIR", &stage), ("PREFIX", prefix)]);
    assert_eq!(ran.code, Some(0), "{ran}");
    let staged = stage.join("opt/sandlock-install-test");
    for rel in INSTALLED {
        let path = staged.join(rel);
        assert!(path.is_file(), "{} not installed: {ran}", path.display());
        assert!(
            ran.stdout
                .contains(&format!("installed {}\n", path.display())),
            "{ran}"
        );
    }
    assert!(!prefix.exists(), "installed outside DESTDIR: {ran}");
    let pc = std::fs::read_to_string(staged.join("lib/pkgconfig/sandlock.pc")).unwrap();
    assert!(
        pc.lines().any(|l| l == "prefix=/opt/sandlock-install-test"),
        "{pc}"
    );
    assert!(
        pc.lines()
            .any(|l| l == format!("Version: {}", env!("CARGO_PKG_VERSION"))),
        "{pc}"
    );
    assert!(!pc.contains('@'), "a placeholder left: {pc}");
}

#[test]
fn install_refuses_a_relative_prefix() {
    let ran = install(&[("PREFIX", Path::new("relative/prefix"))]);
    assert_eq!(ran.code, Some(1), "{ran}");
    assert!(
        ran.stderr
            .contains("install.sh: error: PREFIX must be an absolute path, not 'relative/prefix'"),
        "{ran}"
    );
    assert!(!repo_root().join("relative").exists());
}

#[test]
fn install_names_a_missing_build_output_and_installs_nothing() {
    let dir = TempDir::new("install-missing");
    let prefix = dir.path().join("prefix");
    let empty = dir.path().join("empty-target");
    std::fs::create_dir_all(&empty).unwrap();
    let ran = install(&[("PREFIX", &prefix), ("CARGO_TARGET_DIR", &empty)]);
    assert_eq!(ran.code, Some(1), "{ran}");
    let profile_dir = lib_dir();
    // The first output checked: the static sandlock (`cargo build-static`).
    let missing = empty
        .join("x86_64-unknown-linux-gnu")
        .join(profile_dir.file_name().unwrap())
        .join("sandlock");
    assert!(
        ran.stderr.contains(&format!(
            "install.sh: error: {} is missing: build it first",
            missing.display()
        )),
        "{ran}"
    );
    assert!(!ran.stdout.contains("installed "), "{ran}");
    assert!(!prefix.join("bin").exists(), "{ran}");
}
