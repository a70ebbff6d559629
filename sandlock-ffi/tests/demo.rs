//! scripts/demo.sh, run against this build's `sandlock` binary
//! (`SANDLOCK=target/<profile>/sandlock`, so no release build): it passes
//! and prints what each step claims, and it fails loudly, naming the step,
//! when a fixture server cannot start, when sandlock does not confine,
//! and when the binary is missing.
//!
//! These tests live here because sandlock-ffi's test target is where the
//! scripts' tests are (see tests/install.rs); they need the sandlock
//! binary that `cargo build --workspace` (scripts/test.sh) makes, and
//! curl, openssl and python3 (scripts/deps.sh).

// Test helpers report a failure by panicking: unwrap says "this must hold"
// (clippy's allow-unwrap-in-tests covers #[test] functions, not helpers).
#![allow(clippy::unwrap_used)]

mod common;

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{lib_dir, repo_root, Ran, TempDir};

/// `bash scripts/demo.sh` with `SANDLOCK` set to `sandlock`, and `env`.
fn demo(sandlock: &Path, env: &[(&str, &str)]) -> Ran {
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("scripts/demo.sh"))
        .env("SANDLOCK", sandlock)
        .env_remove("SANDLOCK_DEMO_PORTS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Ran::of(&mut cmd)
}

/// This build's sandlock binary.
fn sandlock() -> std::path::PathBuf {
    let bin = lib_dir().join("sandlock");
    assert!(
        bin.exists(),
        "no {} (run `cargo build -p sandlock-cli` first; scripts/test.sh does)",
        bin.display()
    );
    bin
}

#[test]
fn demo_passes_against_this_build_and_prints_what_each_step_shows() {
    let ran = demo(&sandlock(), &[]);
    assert_eq!(ran.code, Some(0), "{ran}");
    assert!(!ran.stderr.contains("FAILED"), "{ran}");
    let expected = [
        // A file outside the grants, and /etc/shadow, are refused.
        "secret.txt: Permission denied\n(exit 1: files outside the grants stay unreadable)",
        "cat: /etc/shadow: Permission denied\n(exit 1: /etc secrets are never granted",
        // Granted, the same file reads.
        "\napi-key=hunter2\n",
        // The allowed port answers; the other is refused with a reason.
        "\nhello from the allowed host\n",
        "sandlock: denied connect 127.0.0.1:",
        ": not in --net-allow",
        "is not allowed)",
        // No network at all without --net-allow.
        "sandlock: denied socket AF_INET SOCK_STREAM",
        "PermissionError: [Errno 13] Permission denied",
        // HTTPS through the proxy: one request allowed, one refused.
        "no --http-allow rule matches\n403\n(TLS was terminated",
        "\nDemo done: confinement and allowlisting work on this machine.\n",
    ];
    for line in expected {
        assert!(ran.stdout.contains(line), "missing {line:?}: {ran}");
    }
    // The ports are the kernel's picks, not the old fixed ones.
    for fixed in ["18080", "18081", "18443"] {
        assert!(!ran.stdout.contains(&format!(":{fixed}/")), "{ran}");
    }
}

#[test]
fn demo_fails_loudly_when_a_fixture_server_cannot_start() {
    // The HTTPS server's port is taken, as the old fixed ports could be.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let ran = demo(
        &sandlock(),
        &[("SANDLOCK_DEMO_PORTS", &format!("0 0 {port}"))],
    );
    assert_eq!(ran.code, Some(1), "{ran}");
    assert!(
        ran.stderr.contains(&format!(
            "demo.sh: FAILED at \"starting the fixture servers\": the fixture servers did not \
             start: the HTTPS server cannot listen on 127.0.0.1:{port}"
        )),
        "{ran}"
    );
    assert!(!ran.stdout.contains("Demo done"), "{ran}");
    assert!(!ran.stdout.contains("$ sandlock run"), "no step ran: {ran}");
    drop(taken);
}

#[test]
fn demo_fails_loudly_when_a_step_does_not_show_what_it_claims() {
    // A "sandlock" that runs the command unconfined: the first step reads
    // the secret, which the demo must not call a refusal.
    let dir = TempDir::new("demo-fake");
    let fake = dir.path().join("sandlock");
    std::fs::write(
        &fake,
        "#!/bin/sh\n\
         [ \"$1\" = --version ] && { echo 'sandlock 0.0.0-unconfined'; exit 0; }\n\
         while [ $# -gt 0 ] && [ \"$1\" != -- ]; do shift; done\n\
         shift\n\
         exec \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ran = demo(&fake, &[]);
    assert_eq!(ran.code, Some(1), "{ran}");
    assert!(
        ran.stderr
            .contains("demo.sh: FAILED at \"sandlock run -- cat ")
            && ran
                .stderr
                .contains("secret.txt\": exit 0: the command was not refused"),
        "{ran}"
    );
    assert!(!ran.stdout.contains("Demo done"), "{ran}");
}

#[test]
fn demo_fails_loudly_when_the_binary_is_missing() {
    let ran = demo(Path::new("/nonexistent/sandlock"), &[]);
    assert_eq!(ran.code, Some(1), "{ran}");
    assert!(
        ran.stderr.contains(
            "demo.sh: FAILED at \"checking SANDLOCK=/nonexistent/sandlock\": \
             SANDLOCK=/nonexistent/sandlock is not an executable file"
        ),
        "{ran}"
    );
}
