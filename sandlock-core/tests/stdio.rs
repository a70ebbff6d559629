//! `Sandbox::run_with`: stdin fed from bytes, stdout and stderr captured,
//! through a real sandbox (the library's own front door for the C ABI and
//! the Python SDK).

// Test helpers report a failure by panicking: unwrap says "this must hold"
// (clippy's allow-unwrap-in-tests covers #[test] functions, not helpers).
#![allow(clippy::unwrap_used)]

use std::ffi::OsString;

use sandlock_core::policy::PolicyBuilder;
use sandlock_core::{ExitOutcome, Sandbox, Stdio};

fn sh(script: &str) -> Vec<OsString> {
    ["/bin/sh", "-c", script]
        .iter()
        .map(OsString::from)
        .collect()
}

#[test]
fn stdin_is_fed_and_outputs_are_captured_separately() {
    let mut b = PolicyBuilder::new();
    b.set("quiet", "true").unwrap();
    let sandbox = Sandbox::new(b.build().unwrap());
    let input: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let out = sandbox
        .run_with(
            &sh("cat; echo to-stderr >&2; exit 3"),
            Stdio {
                stdin: Some(input.clone()),
                capture: true,
            },
        )
        .unwrap();
    assert_eq!(out.outcome, ExitOutcome::Exited(3));
    assert_eq!(out.stdout, input);
    assert_eq!(out.stderr, b"to-stderr\n");
}

#[test]
fn a_workload_that_never_reads_stdin_does_not_hang_the_caller() {
    let sandbox = Sandbox::new(PolicyBuilder::new().build().unwrap());
    let out = sandbox
        .run_with(
            &sh("echo done"),
            Stdio {
                stdin: Some(vec![b'x'; 8 << 20]),
                capture: true,
            },
        )
        .unwrap();
    assert_eq!(out.outcome, ExitOutcome::Exited(0));
    assert_eq!(out.stdout, b"done\n");
}

#[test]
fn confinement_applies_to_captured_runs() {
    let sandbox = Sandbox::new(PolicyBuilder::new().build().unwrap());
    let run = |script: &str| {
        sandbox
            .run_with(
                &sh(script),
                Stdio {
                    stdin: None,
                    capture: true,
                },
            )
            .unwrap()
    };
    // /etc/shadow stays out of the system view, even for root.
    let out = run("cat /etc/shadow");
    assert_eq!(out.outcome, ExitOutcome::Exited(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Twin: a file of the system view reads fine.
    let out = run("cat /etc/passwd");
    assert_eq!(out.outcome, ExitOutcome::Exited(0));
    assert!(out.stdout.starts_with(b"root:"));
}
