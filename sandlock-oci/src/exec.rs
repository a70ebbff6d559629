//! `exec`: another process in a running container, under a supervisor of
//! its own with the container's policy, as `podman exec` and
//! `kubectl exec` expect.
//!
//! The policy is the one `create` put in the container's config.json (the
//! bundle's, found through `runc state`): the wrapped process's arguments
//! up to its `--`. The new process gets that prefix, so it is confined
//! exactly as the container's first process is; its own loader variables
//! go to it alone, as at `create`.
//!
//! Must never run a process in a container that sandlock-oci did not
//! create (its policy is unknown), or unconfined.

use std::ffi::OsString;
use std::path::Path;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Process, Spec};
use serde_json::Value;

use crate::cli::ExecArgs;
use crate::{jsonfile, runc, wrap};

/// Prepares `exec`: rewrites the `--process` file, or returns runc's
/// arguments with the command wrapped. `args` are this command's
/// arguments (without the program name).
pub fn prepare(
    runc: &Path,
    globals: &[OsString],
    exec: &ExecArgs,
    args: &[OsString],
) -> Result<Vec<OsString>> {
    let state = runc::state(runc, globals, &exec.id)?;
    let bundle = state["bundle"]
        .as_str()
        .with_context(|| format!("runc state {}: no bundle", exec.id))?;
    let (_, spec): (Value, Spec) = jsonfile::read(&Path::new(bundle).join("config.json"))?;
    let container = spec
        .process()
        .as_ref()
        .and_then(|p| p.args().clone())
        .unwrap_or_default();
    let Some(prefix) = wrap::unwrap(&container) else {
        bail!(
            "container {} was not created by sandlock-oci (its process is not under the \
             supervisor); refusing to exec in it",
            exec.id
        );
    };
    let secrets = secret_names(&prefix);
    if let Some(path) = &exec.process {
        let (mut doc, process): (Value, Process) = jsonfile::read(path)?;
        let (wrapped, env) = wrap::wrap(
            &prefix,
            &process.args().clone().unwrap_or_default(),
            &process.env().clone().unwrap_or_default(),
            &secrets,
        )?;
        doc["args"] = serde_json::to_value(wrapped)?;
        doc["env"] = serde_json::to_value(env)?;
        jsonfile::write(path, &doc)?;
        return Ok(args.to_vec());
    }
    if exec.command.is_empty() {
        bail!("exec {}: give a command or --process FILE", exec.id);
    }
    let mut names = exec.env.iter().map(|e| wrap::env_name(e));
    if let Some(name) = names.find(|n| wrap::loader_variable(n)) {
        bail!("exec --env {name}: a loader variable reaches the workload only through --process");
    }
    // The container's own loader variables (its --workload-env pairs) come
    // with the head of its wrapped arguments.
    let head = container
        .iter()
        .position(|a| a == "--")
        .map_or(&container[..], |end| &container[..end]);
    let keep = args.len() - exec.command.len();
    let mut out: Vec<OsString> = args[..keep].to_vec();
    out.extend(head.iter().map(OsString::from));
    out.push("--".into());
    out.extend(exec.command.iter().map(OsString::from));
    Ok(out)
}

/// The environment variables of the secrets in a wrapped prefix.
fn secret_names(prefix: &[String]) -> Vec<String> {
    prefix
        .iter()
        .filter_map(|a| a.strip_prefix("secret="))
        .filter_map(|spec| {
            let left = spec.rsplit_once('@')?.0;
            Some(wrap::env_name(left).to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_come_from_the_settings() {
        let prefix = wrap::prefix(&[
            ("secret", "TOKEN@api.test".into()),
            ("secret", "KEY=file:/run/k@a.test,b.test;headers".into()),
            ("net-allow", "secret=x@y".into()),
        ]);
        assert_eq!(secret_names(&prefix), ["TOKEN", "KEY"]);
    }
}
