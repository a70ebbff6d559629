//! `supervise`: inside the container, the container's process under
//! sandlock. runc starts it (as the container's pid 1, or as an exec'd
//! process) with the settings `create` checked; it rebuilds the policy
//! through the one builder and runs the command as `sandlock run` does,
//! forwarding SIGTERM, SIGINT and SIGHUP and exiting with the workload's
//! status.
//!
//! Must never run the command when a setting is refused.

use std::ffi::OsString;
use std::io::Write;

use sandlock_core::foreground::{self, USAGE};
use sandlock_core::policy::PolicyBuilder;

/// Runs `argv` under the policy of `settings` (NAME=VALUE each), with
/// `workload_env` (NAME=VALUE) added to the workload's environment only;
/// returns the status to exit with.
pub fn run(settings: &[String], workload_env: &[String], argv: &[OsString]) -> u8 {
    let mut b = PolicyBuilder::new();
    for s in settings {
        let Some((name, value)) = s.split_once('=') else {
            say(&format!("sandlock: --set {s}: expected NAME=VALUE"));
            return USAGE;
        };
        if let Err(e) = b.set(name, value) {
            say(&format!("sandlock: {e}"));
            return foreground::error_status(&e);
        }
    }
    for e in workload_env {
        if let Err(err) = b.set("env", e) {
            say(&format!("sandlock: {err}"));
            return foreground::error_status(&err);
        }
    }
    match b.build() {
        Ok(policy) => foreground::run(policy, argv),
        Err(e) => {
            say(&format!("sandlock: {e}"));
            foreground::error_status(&e)
        }
    }
}

fn say(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
