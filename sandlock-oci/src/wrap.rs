//! The container's process, wrapped: what runc starts instead of the
//! container's command is the host's own `sandlock-oci supervise`, with
//! the policy's settings as arguments and the command after `--`.
//!
//! The supervisor comes from the host, not the image: the static binary
//! is bind-mounted read-only under [`DIR`] (see `carry`), so no file of
//! the image's is loaded into it. The image's loader variables (`LD_*`,
//! `GLIBC_TUNABLES`: glibc reads the latter even in a static binary) are
//! taken out of the environment runc starts it with and handed to the
//! workload alone (`--workload-env`).
//!
//! Must never put a secret's value in an argument: settings name where a
//! secret comes from, never what it is, and a secret's variable stays in
//! the environment, where only the supervisor reads it.

use anyhow::{bail, Result};

/// Where the supervisor's files are, inside the container.
pub const DIR: &str = "/.sandlock";
/// The supervisor itself: this binary, inside the container.
pub const EXE: &str = "/.sandlock/sandlock-oci";
/// The host's trust roots, inside the container.
pub const ROOTS: &str = "/.sandlock/roots.pem";
/// A read-only procfs the workload cannot reach (see `carry`).
pub const PROC: &str = "/.sandlock/proc";
/// Where the supervisor makes its private directories.
pub const TMP: &str = "/.sandlock/tmp";

/// The name of a `NAME=VALUE` environment entry (the whole entry when it
/// has no `=`).
pub fn env_name(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(n, _)| n)
}

/// Is `name` an environment variable that changes what the loader loads
/// or how (glibc reads every `LD_*` and `GLIBC_TUNABLES`)?
pub fn loader_variable(name: &str) -> bool {
    name.starts_with("LD_") || name == "GLIBC_TUNABLES"
}

/// The wrapped process's arguments up to (not including) its own loader
/// variables and the `--` before the command.
pub fn prefix(settings: &[(&str, String)]) -> Vec<String> {
    let mut args: Vec<String> = [EXE, "supervise"].iter().map(|s| s.to_string()).collect();
    for (name, value) in settings {
        args.push("--set".into());
        args.push(format!("{name}={value}"));
    }
    args
}

/// Wraps a process: its arguments become `prefix`, one `--workload-env`
/// per loader variable of `env`, `--` and the command; `env` loses those
/// variables. Refuses a loader variable that is also a secret (`secrets`
/// names their variables): its value may not go on a command line.
pub fn wrap(
    prefix: &[String],
    args: &[String],
    env: &[String],
    secrets: &[String],
) -> Result<(Vec<String>, Vec<String>)> {
    if args.is_empty() {
        bail!("the container's process has no args (no command to run)");
    }
    let mut out = prefix.to_vec();
    let mut kept = Vec::with_capacity(env.len());
    for entry in env {
        let name = env_name(entry);
        if !loader_variable(name) {
            kept.push(entry.clone());
            continue;
        }
        if secrets.iter().any(|s| s == name) {
            bail!(
                "run.sandlock/secret.{name}: {name} is a loader variable, which sandlock-oci \
                 moves out of the supervisor's environment onto its command line; use another name"
            );
        }
        out.push("--workload-env".into());
        out.push(entry.clone());
    }
    out.push("--".into());
    out.extend(args.iter().cloned());
    Ok((out, kept))
}

/// The prefix of an already wrapped process's arguments (its own
/// `--workload-env` pairs left out), or `None` when `args` is not one.
pub fn unwrap(args: &[String]) -> Option<Vec<String>> {
    if args.first().map(String::as_str) != Some(EXE) || args.get(1)? != "supervise" {
        return None;
    }
    let end = args.iter().position(|a| a == "--")?;
    let mut prefix = Vec::with_capacity(end);
    let mut it = args[..end].iter();
    while let Some(a) = it.next() {
        if a == "--workload-env" {
            it.next()?;
            continue;
        }
        prefix.push(a.clone());
    }
    Some(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn loader_variables_leave_the_environment_for_the_workload_alone() {
        let p = prefix(&[("net-allow", "a.test:443".into())]);
        let (args, env) = wrap(
            &p,
            &strings(&["/bin/sh", "-c", "echo --"]),
            &strings(&[
                "PATH=/bin",
                "LD_PRELOAD=/x.so",
                "GLIBC_TUNABLES=a=1",
                "TOKEN=s",
            ]),
            &strings(&["TOKEN"]),
        )
        .unwrap();
        assert_eq!(env, strings(&["PATH=/bin", "TOKEN=s"]));
        assert_eq!(
            args,
            strings(&[
                EXE,
                "supervise",
                "--set",
                "net-allow=a.test:443",
                "--workload-env",
                "LD_PRELOAD=/x.so",
                "--workload-env",
                "GLIBC_TUNABLES=a=1",
                "--",
                "/bin/sh",
                "-c",
                "echo --",
            ])
        );
        // The prefix comes back without the process's own variables.
        assert_eq!(unwrap(&args), Some(p));
    }

    #[test]
    fn a_secret_in_a_loader_variable_and_an_empty_command_are_refused() {
        let p = prefix(&[]);
        let e = wrap(
            &p,
            &strings(&["/bin/true"]),
            &strings(&["LD_X=v"]),
            &strings(&["LD_X"]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("run.sandlock/secret.LD_X"), "{e}");
        assert!(!e.contains("=v"), "{e}");
        assert!(wrap(&p, &[], &[], &[]).is_err());
    }

    #[test]
    fn unwrap_knows_only_its_own_processes() {
        assert_eq!(unwrap(&strings(&["/bin/sh"])), None);
        assert_eq!(unwrap(&strings(&[EXE, "run", "--"])), None);
        assert_eq!(unwrap(&strings(&[EXE, "supervise"])), None);
    }
}
