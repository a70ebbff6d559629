//! examples/c/run.c, the README's C example, compiled with `cc` against
//! include/sandlock.h and this build's libsandlock_ffi.so, run as a user
//! would: it prints the confined command's output and exits with its
//! status, and when `sandlock_run` fails (a missing path) it prints the
//! error naming the path and exits non-zero.

// Test helpers report a failure by panicking: unwrap says "this must hold"
// (clippy's allow-unwrap-in-tests covers #[test] functions, not helpers).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{compile_example, lib_dir, repo_root, Ran, TempDir};

/// The example, compiled into `dir` against the build tree.
fn example(dir: &TempDir) -> PathBuf {
    let lib = lib_dir();
    assert!(
        lib.join("libsandlock_ffi.so").exists(),
        "no .so in {} (run `cargo build -p sandlock-ffi` first; scripts/test.sh does)",
        lib.display()
    );
    let exe = dir.path().join("run");
    compile_example(
        &exe,
        &[
            format!("-I{}", repo_root().join("include").display()),
            format!("-L{}", lib.display()),
            format!("-Wl,-rpath,{}", lib.display()),
            "-lsandlock_ffi".into(),
        ],
    );
    exe
}

#[test]
fn c_example_prints_the_confined_commands_output_and_exits_with_its_status() {
    let dir = TempDir::new("cexample");
    let exe = example(&dir);
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::create_dir_all(dir.path().join("other")).unwrap();
    std::fs::write(dir.path().join("data/report.txt"), "quarterly numbers\n").unwrap();
    std::fs::write(dir.path().join("other/secret.txt"), "not for the sandbox\n").unwrap();

    let ok = Ran::of(
        Command::new(&exe)
            .arg(dir.join("data"))
            .arg("cat")
            .arg(dir.join("data/report.txt")),
    );
    assert_eq!(ok.code, Some(0), "{ok}");
    assert_eq!(ok.stdout, "quarterly numbers\n", "{ok}");
    assert!(!ok.stderr.contains("run:"), "{ok}");

    // A file outside DIR is refused: cat's own error, cat's exit status.
    let refused = Ran::of(
        Command::new(&exe)
            .arg(dir.join("data"))
            .arg("cat")
            .arg(dir.join("other/secret.txt")),
    );
    assert_eq!(refused.code, Some(1), "{refused}");
    assert_eq!(refused.stdout, "", "{refused}");
    assert!(refused.stderr.contains("Permission denied"), "{refused}");
}

#[test]
fn c_example_prints_sandlock_runs_error_naming_a_missing_path_and_fails() {
    let dir = TempDir::new("cexample-missing");
    let exe = example(&dir);
    let missing = dir.join("no-such-dir");
    let ran = Ran::of(
        Command::new(&exe)
            .arg(&missing)
            .arg("cat")
            .arg(format!("{missing}/report.txt")),
    );
    assert_eq!(ran.code, Some(1), "{ran}");
    assert_eq!(ran.stdout, "", "{ran}");
    assert!(
        ran.stderr.starts_with(&format!(
            "run: sandlock_run: invalid value '{missing}' for '--fs-read'"
        )),
        "{ran}"
    );
    assert!(ran.stderr.contains("No such file or directory"), "{ran}");
}

#[test]
fn c_example_prints_a_missing_commands_error_and_fails() {
    let dir = TempDir::new("cexample-nocmd");
    let exe = example(&dir);
    let ran = Ran::of(
        Command::new(&exe)
            .arg(dir.join(""))
            .arg("sandlock-no-such-command"),
    );
    assert_eq!(ran.code, Some(1), "{ran}");
    assert!(
        ran.stderr
            .contains("run: sandlock_run: sandlock-no-such-command: command not found"),
        "{ran}"
    );
}

#[test]
fn c_example_usage_names_the_library_version() {
    let dir = TempDir::new("cexample-usage");
    let exe = example(&dir);
    let ran = Ran::of(&mut Command::new(&exe));
    assert_eq!(ran.code, Some(2), "{ran}");
    assert!(
        ran.stderr
            .contains(&format!("(sandlock {})", env!("CARGO_PKG_VERSION"))),
        "{ran}"
    );
}

#[test]
fn readme_shows_the_c_example_as_it_is() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let section = readme
        .split("\n## C ABI (`libsandlock_ffi`)\n")
        .nth(1)
        .expect("README has the C ABI section");
    let shown = section
        .split("\n```c\n")
        .nth(1)
        .and_then(|s| s.split("\n```\n").next())
        .expect("the C ABI section shows a C program");
    let example = std::fs::read_to_string(repo_root().join("examples/c/run.c")).unwrap();
    assert_eq!(
        format!("{shown}\n"),
        example,
        "the README's C program differs from examples/c/run.c: copy the file into the section"
    );
}
