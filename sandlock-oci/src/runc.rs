//! runc: where it is, and handing it a command.
//!
//! sandlock-oci owns no container state: namespaces, mounts, cgroups, the
//! console, pid files and the state directory are runc's, so `state`,
//! `kill`, `delete` and the rest mean exactly what they mean for runc.
//!
//! Must never run itself in runc's place (a `runc` on PATH that is this
//! binary would loop).

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::cli::Cli;

/// The environment variable naming runc's path.
pub const RUNC_VAR: &str = "SANDLOCK_OCI_RUNC";

/// Where runc is looked for after PATH.
const DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// runc's path: `$SANDLOCK_OCI_RUNC`, else the first `runc` on PATH or in
/// the usual directories.
pub fn binary() -> Result<PathBuf> {
    let path = match std::env::var_os(RUNC_VAR) {
        Some(p) if Path::new(&p).is_absolute() => PathBuf::from(p),
        Some(p) => bail!("{RUNC_VAR}={}: give an absolute path", p.to_string_lossy()),
        None => search(std::env::var_os("PATH").as_deref()).context(
            "runc not found on PATH or in /usr/sbin, /usr/bin, ... (install runc, or set \
             SANDLOCK_OCI_RUNC to its path)",
        )?,
    };
    let meta = std::fs::metadata(&path).with_context(|| format!("runc: {}", path.display()))?;
    let own = std::fs::metadata("/proc/self/exe").context("reading /proc/self/exe")?;
    if (meta.dev(), meta.ino()) == (own.dev(), own.ino()) {
        bail!(
            "runc at {} is sandlock-oci itself; set {RUNC_VAR} to the real runc",
            path.display()
        );
    }
    Ok(path)
}

fn search(path_var: Option<&OsStr>) -> Option<PathBuf> {
    let from_path = path_var
        .map(|p| std::env::split_paths(p).collect::<Vec<_>>())
        .unwrap_or_default();
    from_path
        .into_iter()
        .chain(DIRS.iter().map(PathBuf::from))
        .map(|d| d.join("runc"))
        .find(|p| p.is_file())
}

/// Replaces this process with runc and `args`; returns only on failure.
pub fn exec(runc: &Path, args: &[OsString]) -> anyhow::Error {
    let e = Command::new(runc).args(args).exec();
    anyhow::Error::new(e).context(format!("running {}", runc.display()))
}

/// The global flags that say which containers runc looks at, for the
/// commands sandlock-oci runs itself.
pub fn globals(cli: &Cli) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    if let Some(root) = &cli.root {
        out.extend(["--root".into(), root.into()]);
    }
    if let Some(r) = &cli.rootless {
        out.push(format!("--rootless={r}").into());
    }
    if cli.systemd_cgroup {
        out.push("--systemd-cgroup".into());
    }
    out
}

/// runc's stdout for `args`, or its stderr as the error.
fn output(runc: &Path, globals: &[OsString], args: &[&str]) -> Result<Vec<u8>> {
    let what = format!("runc {}", args.join(" "));
    let out = Command::new(runc)
        .args(globals)
        .args(args)
        .output()
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!("{what}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out.stdout)
}

/// `runc state ID`, parsed.
pub fn state(runc: &Path, globals: &[OsString], id: &str) -> Result<serde_json::Value> {
    let out = output(runc, globals, &["state", id])?;
    serde_json::from_slice(&out).with_context(|| format!("runc state {id}: not JSON"))
}

/// `runc features` with sandlock's entries added to its annotations.
pub fn features(runc: &Path, globals: &[OsString]) -> Result<serde_json::Value> {
    let out = output(runc, globals, &["features"])?;
    let mut doc: serde_json::Value =
        serde_json::from_slice(&out).context("runc features: not JSON")?;
    let Some(map) = doc.as_object_mut() else {
        bail!("runc features: not a JSON object");
    };
    let annotations = map
        .entry("annotations")
        .or_insert_with(|| serde_json::json!({}));
    if let Some(a) = annotations.as_object_mut() {
        a.insert(
            "run.sandlock.version".into(),
            env!("CARGO_PKG_VERSION").into(),
        );
        a.insert(
            "run.sandlock.runc".into(),
            runc.display().to_string().into(),
        );
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_is_found_on_path_before_the_usual_places() {
        let dir = std::env::temp_dir().join(format!("sandlock-oci-path-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("runc"), "").unwrap();
        let path = std::env::join_paths([Path::new("/nonexistent"), &dir]).unwrap();
        assert_eq!(search(Some(&path)), Some(dir.join("runc")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
