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
//! Must never run the command when a setting is refused, nor write the
//! audit log through a symlink (the image's files are the image author's).

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::Path;

use sandlock_core::foreground::{self, SETUP_FAILURE, USAGE};
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
    if let Some(path) = &policy.report.audit {
        if let Err(e) = no_symlinks(path) {
            say(&format!("sandlock: --audit {}: {e}", path.display()));
            return SETUP_FAILURE;
        }
    }
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

/// Opens (creating) `path` for appending with no symlink anywhere in it.
fn no_symlinks(path: &Path) -> std::io::Result<()> {
    use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag, AT_FDCWD};
    use nix::sys::stat::Mode;
    let how = OpenHow::new()
        .flags(OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_CREAT | OFlag::O_CLOEXEC)
        .mode(Mode::from_bits_truncate(0o600))
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS);
    match openat2(AT_FDCWD, path, how) {
        Ok(_) => Ok(()),
        Err(nix::errno::Errno::ELOOP) => Err(std::io::Error::other(
            "the path goes through a symlink, which the image may have placed",
        )),
        Err(e) => Err(e.into()),
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

    #[test]
    fn an_audit_path_through_a_symlink_is_refused() {
        let dir = std::env::temp_dir().join(format!("sandlock-oci-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("victim"), "v\n").unwrap();
        std::os::unix::fs::symlink(dir.join("victim"), dir.join("link")).unwrap();
        std::os::unix::fs::symlink(&dir, dir.join("dirlink")).unwrap();
        let e = no_symlinks(&dir.join("link")).unwrap_err().to_string();
        assert!(e.contains("symlink"), "{e}");
        assert!(no_symlinks(&dir.join("dirlink/new.jsonl")).is_err());
        assert_eq!(std::fs::read_to_string(dir.join("victim")).unwrap(), "v\n");
        // Twin: a plain path is created.
        no_symlinks(&dir.join("audit.jsonl")).unwrap();
        assert!(dir.join("audit.jsonl").is_file());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
