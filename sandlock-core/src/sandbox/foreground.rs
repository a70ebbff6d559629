//! A front door's whole run of one command in the foreground: the
//! workload's exit status as the process's own, or sandlock's, with the
//! messages `sandlock run` prints. The CLI and the OCI runtime's
//! supervisor (pid 1 of a container) end the same way through it.
//!
//! Must never print anything but sandlock's own one-line messages on
//! stderr, and never panic on a closed stderr.

use std::ffi::OsString;
use std::io::Write;

use super::{ExitOutcome, Sandbox, Stdio};
use crate::{Error, Policy};

/// Exit status for a value or combination of options sandlock refuses
/// (the same as clap's for a bad command line).
pub const USAGE: u8 = 2;

/// Exit status when sandlock itself failed to set up or finish the run.
pub const SETUP_FAILURE: u8 = 125;

/// The status a front door exits with when a run could not happen.
pub fn error_status(e: &Error) -> u8 {
    match e {
        Error::Command { status, .. } => (*status).clamp(0, 255) as u8,
        Error::InvalidValue { .. } | Error::Usage(_) => USAGE,
        _ => SETUP_FAILURE,
    }
}

/// Runs `argv` under `policy` with the caller's stdio, and returns the
/// status to exit with: the workload's (128 + N for a signal), 125 when
/// its `--cow` changes did not all land, or sandlock's own on a failure
/// to start (reported on stderr as `sandlock: ...`).
pub fn run(policy: Policy, argv: &[OsString]) -> u8 {
    run_on(Sandbox::new(policy), argv)
}

/// [`run`] of a sandbox as it is (on its own ground, say).
pub fn run_on(sandbox: Sandbox, argv: &[OsString]) -> u8 {
    let timeout = sandbox.policy().process.timeout;
    let quiet = sandbox.policy().report.quiet;
    match sandbox.run_with(argv, Stdio::default()) {
        Ok(output) => {
            if let (ExitOutcome::TimedOut, Some(t), false) = (output.outcome, timeout, quiet) {
                say(&format!(
                    "sandlock: timed out after {}s; killed the workload tree",
                    t.as_secs_f64()
                ));
            }
            output.status().clamp(0, 255) as u8
        }
        Err(e) => {
            say(&format!("sandlock: {e}"));
            error_status(&e)
        }
    }
}

/// One line on stderr; a failed write changes nothing.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
