//! `supervise`: inside the container, the container's process under
//! sandlock. runc starts it (as the container's pid 1, or as an exec'd
//! process) with the settings `create` checked; it rebuilds the policy
//! through the one builder and runs the command as `sandlock run` does,
//! forwarding SIGTERM, SIGINT and SIGHUP and exiting with the workload's
//! status.
//!
//! It runs on the image's ground ([`sandlock_core::Ground::Image`]): the
//! environment runc gave it is the workload's, not its own. Before
//! anything else it keeps for itself only PATH (to find the command) and
//! the variables secrets are read from, so that no variable of the
//! image's (`SSL_CERT_FILE`, `TMPDIR`, `RES_OPTIONS`, ...) steers what the
//! supervisor does; the workload gets the whole environment. Its private
//! directories go to the runtime's tmpfs, not the image's /tmp.
//!
//! Must never run the command when a setting is refused.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::Path;

use sandlock_core::foreground::{self, USAGE};
use sandlock_core::policy::PolicyBuilder;
use sandlock_core::secrets::Source;
use sandlock_core::{Ground, Policy, Sandbox};

use crate::wrap;

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
    let policy = match b.build() {
        Ok(p) => p,
        Err(e) => {
            say(&format!("sandlock: {e}"));
            return foreground::error_status(&e);
        }
    };
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    env.extend(workload_env.iter().filter_map(|e| {
        let (k, v) = e.split_once('=')?;
        Some((OsString::from(k), OsString::from(v)))
    }));
    keep_own_env(&own_variables(&policy));
    if Path::new(wrap::TMP).is_dir() {
        std::env::set_var("TMPDIR", wrap::TMP);
    }
    // /dev/null holds the name when the host had no bundle.
    let roots = match std::fs::metadata(wrap::ROOTS) {
        Ok(m) if m.is_file() && m.len() > 0 => vec![wrap::ROOTS.into()],
        _ => Vec::new(),
    };
    let ground = Ground::Image {
        env,
        roots,
        conceal: vec![wrap::PROC.into()],
    };
    foreground::run_on(Sandbox::new(policy).on(ground), argv)
}

/// The variables the supervisor itself reads: PATH, and those secrets
/// come from.
fn own_variables(policy: &Policy) -> Vec<String> {
    let mut keep = vec!["PATH".to_string()];
    keep.extend(policy.secrets.iter().filter_map(|s| match &s.source {
        Source::Env(var) => Some(var.clone()),
        _ => None,
    }));
    keep
}

/// Removes every other variable from this process's environment. Called
/// while the process has one thread.
fn keep_own_env(keep: &[String]) {
    let others: Vec<OsString> = std::env::vars_os()
        .map(|(k, _)| k)
        .filter(|k| !keep.iter().any(|name| OsStr::new(name) == k))
        .collect();
    for k in others {
        std::env::remove_var(k);
    }
}

fn say(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_supervisor_keeps_path_and_the_secrets_variables() {
        let mut b = PolicyBuilder::new();
        b.set("add-host", "api.test:127.0.0.1").unwrap();
        b.set("secret", "TOKEN@api.test").unwrap();
        b.set("secret", "KEY=env:REAL_KEY@api.test").unwrap();
        b.set("secret", "F=file:/run/f@api.test").unwrap();
        let p = b.build().unwrap();
        assert_eq!(own_variables(&p), ["PATH", "TOKEN", "REAL_KEY"]);
    }
}
