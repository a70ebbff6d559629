//! tests/ffi/sandbox.c, compiled with `cc` against include/sandlock.h and
//! this crate's shared library, runs real sandboxes through the C ABI:
//! allowlisted file and port reached, others refused (see the program).

// Test helpers report a failure by panicking: unwrap says "this must hold"
// (clippy's allow-unwrap-in-tests covers #[test] functions, not helpers).
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::TempDir;

/// target/<profile>, where Cargo put libsandlock_ffi.so for this test.
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

/// A loopback server that greets every connection, on a port of its own.
fn greeter() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = s.write_all(b"hello from loopback");
        }
    });
    port
}

/// How the program is linked against the library.
#[derive(Clone, Copy)]
enum Link {
    /// libsandlock_ffi.so, found through an rpath.
    Shared,
    /// libsandlock_ffi.a, with the system libraries Rust's std needs.
    Static,
}

/// Compiles tests/ffi/sandbox.c into `dir`, linked as `link` says.
fn compile(dir: &TempDir, link: Link) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let lib = lib_dir();
    let exe = dir.path().join("sandbox");
    let mut cc = Command::new("cc");
    cc.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&exe)
        .arg(root.join("tests/ffi/sandbox.c"))
        .arg("-I")
        .arg(root.join("include"));
    match link {
        Link::Shared => {
            assert!(
                lib.join("libsandlock_ffi.so").exists(),
                "no .so in {} (run `cargo build -p sandlock-ffi` first; scripts/test.sh does)",
                lib.display()
            );
            cc.arg("-L")
                .arg(&lib)
                .arg(format!("-Wl,-rpath,{}", lib.display()))
                .arg("-lsandlock_ffi");
        }
        Link::Static => {
            let a = lib.join("libsandlock_ffi.a");
            assert!(
                a.exists(),
                "no .a in {} (run `cargo build -p sandlock-ffi` first; scripts/test.sh does)",
                lib.display()
            );
            cc.arg(a).args([
                "-lgcc_s",
                "-lutil",
                "-lrt",
                "-lpthread",
                "-lm",
                "-ldl",
                "-lc",
            ]);
        }
    }
    let out = cc.output().expect("run cc");
    assert!(
        out.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// Compiles the program, runs it against loopback servers and files of
/// its own, and checks every one of its checks passed.
fn compile_and_run(link: Link) {
    let dir = TempDir::new("cprog");
    let exe = compile(&dir, link);
    std::fs::create_dir_all(dir.path().join("granted")).unwrap();
    std::fs::create_dir_all(dir.path().join("other")).unwrap();
    std::fs::write(dir.path().join("granted/file"), "granted bytes").unwrap();
    std::fs::write(dir.path().join("other/file"), "other bytes").unwrap();
    // Two servers: both listen, only one is allowlisted, so a refusal
    // can only come from the sandbox.
    let (allowed, denied) = (greeter(), greeter());
    let out = Command::new(&exe)
        .arg(dir.path().join("granted"))
        .arg(dir.path().join("other"))
        .arg(allowed.to_string())
        .arg(denied.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let ctx = format!(
        "{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    let oks = stdout.lines().filter(|l| l.starts_with("ok ")).count();
    assert_eq!(oks, 9, "{ctx}");
    assert!(stdout.ends_with("0 failed\n"), "{ctx}");

    // Outside the sandbox the "denied" server answers, so the refusal
    // inside was the sandbox's, not a dead port's.
    let mut direct = std::net::TcpStream::connect(("127.0.0.1", denied)).unwrap();
    let mut buf = [0u8; 19];
    std::io::Read::read_exact(&mut direct, &mut buf).unwrap();
    assert_eq!(&buf, b"hello from loopback");
}

#[test]
fn c_program_linked_shared_runs_sandboxes() {
    compile_and_run(Link::Shared);
}

#[test]
fn c_program_linked_static_runs_sandboxes() {
    compile_and_run(Link::Static);
}
