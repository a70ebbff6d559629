//! `create` and `run`: the bundle's config.json, rewritten so that the
//! container's process starts under the supervisor, before runc reads it.
//!
//! Four edits, nothing else: the process is wrapped (see `wrap`), the
//! supervisor's files are mounted (see `carry`), the seccomp profile lets
//! the supervisor work (see `seccomp`), and the masked and read-only paths
//! under `/proc` are dropped. The last is what lets the supervisor give
//! the workload a /proc of its own: the kernel refuses a new procfs mount
//! in a mount namespace whose /proc has anything mounted over it. Every
//! process of the container runs under a supervisor, and each sees only
//! sandlock's /proc, read-only and with the same entries covered (kcore,
//! keys, sysrq-trigger, timer_list, acpi, scsi, ...); `/sys` keeps its
//! masks.
//!
//! Must never start a container whose policy is refused, nor wrap a
//! process twice.

use std::path::Path;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxSeccomp, Spec};
use serde_json::Value;

use crate::annotations;
use crate::carry::Carry;
use crate::{jsonfile, seccomp, wrap};

/// Rewrites `bundle`'s config.json in place for the supervisor.
pub fn prepare(bundle: &Path) -> Result<()> {
    let path = bundle.join("config.json");
    let (mut doc, spec): (Value, Spec) = jsonfile::read(&path)?;
    let process = spec
        .process()
        .as_ref()
        .context("config.json has no process to run")?;
    let annotations = spec.annotations().clone().unwrap_or_default();
    if is_pod_sandbox(&annotations) {
        return Ok(());
    }
    let args = process.args().clone().unwrap_or_default();
    if wrap::unwrap(&args).is_some() {
        bail!(
            "{}: the process already runs under sandlock-oci's supervisor",
            path.display()
        );
    }
    let env = process.env().clone().unwrap_or_default();
    let policy = annotations::policy(&annotations, &env)?;
    let (args, env) = wrap::wrap(
        &wrap::prefix(&policy.settings),
        &args,
        &env,
        &policy.secrets,
    )?;
    doc["process"]["args"] = serde_json::to_value(args)?;
    doc["process"]["env"] = serde_json::to_value(env)?;

    let mounts = Carry::find()?.mounts()?;
    match doc.get_mut("mounts").and_then(Value::as_array_mut) {
        Some(list) => {
            for m in mounts {
                list.push(serde_json::to_value(m)?);
            }
        }
        None => doc["mounts"] = serde_json::to_value(mounts)?,
    }

    if let Some(linux) = doc.get_mut("linux").and_then(Value::as_object_mut) {
        for key in ["maskedPaths", "readonlyPaths"] {
            if let Some(Value::Array(paths)) = linux.get_mut(key) {
                paths.retain(|p| !p.as_str().is_some_and(under_proc));
            }
        }
        if let Some(profile) = linux.get("seccomp").filter(|v| !v.is_null()) {
            let profile: LinuxSeccomp = serde_json::from_value(profile.clone())
                .context("config.json: linux.seccomp is not a runtime-spec seccomp profile")?;
            linux.insert(
                "seccomp".into(),
                serde_json::to_value(seccomp::allow_supervisor(profile)?)?,
            );
        }
    }
    jsonfile::write(&path, &doc)
}

/// Is this a Kubernetes pod's sandbox (its "pause" container), as
/// containerd's and CRI-O's CRI mark it? It runs the pause binary from the
/// node's configuration, never the workload's code, and gets the pod's
/// annotations without the containers' environment: it is left to runc
/// as it is.
fn is_pod_sandbox(annotations: &std::collections::HashMap<String, String>) -> bool {
    [
        "io.kubernetes.cri.container-type",
        "io.kubernetes.cri-o.ContainerType",
    ]
    .iter()
    .any(|k| annotations.get(*k).is_some_and(|v| v == "sandbox"))
}

/// Is `path` /proc or beneath it?
fn under_proc(path: &str) -> bool {
    path == "/proc" || path.starts_with("/proc/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_pods_sandbox_is_left_alone() {
        let map = |k: &str, v: &str| [(k.to_string(), v.to_string())].into_iter().collect();
        assert!(is_pod_sandbox(&map(
            "io.kubernetes.cri.container-type",
            "sandbox"
        )));
        assert!(is_pod_sandbox(&map(
            "io.kubernetes.cri-o.ContainerType",
            "sandbox"
        )));
        assert!(!is_pod_sandbox(&map(
            "io.kubernetes.cri.container-type",
            "container"
        )));
        assert!(!is_pod_sandbox(&map("run.sandlock/quiet", "true")));
        // Its config.json is left as it is, pod annotations and all.
        let dir = std::env::temp_dir().join(format!("sandlock-oci-pause-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = r#"{"ociVersion":"1.0.2","process":{"user":{"uid":0,"gid":0},"args":["/pause"],"cwd":"/"},"annotations":{"io.kubernetes.cri.container-type":"sandbox","run.sandlock/secret.TOKEN":"api.test"}}"#;
        std::fs::write(dir.join("config.json"), text).unwrap();
        prepare(&dir).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("config.json")).unwrap(),
            text
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn proc_paths_are_told_apart_from_their_neighbours() {
        assert!(under_proc("/proc") && under_proc("/proc/kcore"));
        assert!(!under_proc("/processes") && !under_proc("/sys/firmware"));
    }

    #[test]
    fn a_config_is_wrapped_once_with_its_other_fields_kept() {
        let dir = std::env::temp_dir().join(format!("sandlock-oci-bundle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"user": {"uid": 0, "gid": 0}, "args": ["/bin/sh", "-c", "true"], "cwd": "/",
                        "env": ["PATH=/bin", "LD_PRELOAD=/p.so", "TOKEN=v"]},
            "root": {"path": "rootfs"},
            "annotations": {"run.sandlock/secret.TOKEN": "api.test", "run.sandlock/quiet": "true"},
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
            "linux": {"maskedPaths": ["/proc/kcore", "/sys/firmware"],
                      "readonlyPaths": ["/proc/sys"],
                      "seccomp": {"defaultAction": "SCMP_ACT_ERRNO",
                                  "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}}
        });
        let path = dir.join("config.json");
        std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
        prepare(&dir).unwrap();
        let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let args: Vec<String> = serde_json::from_value(doc["process"]["args"].clone()).unwrap();
        assert_eq!(
            args[..5],
            [
                wrap::LOADER,
                "--library-path",
                wrap::LIB_DIR,
                wrap::EXE,
                "supervise"
            ]
        );
        assert!(args.ends_with(&["--".into(), "/bin/sh".into(), "-c".into(), "true".into()]));
        assert!(args
            .windows(2)
            .any(|w| w == ["--workload-env", "LD_PRELOAD=/p.so"]));
        assert!(args
            .windows(2)
            .any(|w| w == ["--set", "secret=TOKEN@api.test"]));
        assert!(
            !args.iter().any(|a| a.contains("=v")),
            "no secret value in args: {args:?}"
        );
        assert_eq!(
            doc["process"]["env"],
            serde_json::json!(["PATH=/bin", "TOKEN=v"])
        );
        assert_eq!(
            doc["linux"]["maskedPaths"],
            serde_json::json!(["/sys/firmware"])
        );
        assert_eq!(doc["linux"]["readonlyPaths"], serde_json::json!([]));
        assert_eq!(
            doc["linux"]["seccomp"]["syscalls"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        let dests: Vec<&str> = doc["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["destination"].as_str().unwrap())
            .collect();
        assert_eq!(dests[..4], ["/proc", wrap::DIR, wrap::EXE, wrap::LOADER]);
        assert_eq!(doc["root"]["path"], "rootfs");
        // A second create on the same bundle is refused, not wrapped twice.
        let e = prepare(&dir).unwrap_err().to_string();
        assert!(e.contains("already runs under"), "{e}");
        // A bad annotation leaves the file as it was.
        let mut bad = config.clone();
        bad["annotations"]["run.sandlock/timeout"] = "soon".into();
        std::fs::write(&path, serde_json::to_vec(&bad).unwrap()).unwrap();
        let e = prepare(&dir).unwrap_err().to_string();
        assert!(
            e.contains("run.sandlock/timeout") && e.contains("soon"),
            "{e}"
        );
        let after: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(after, bad);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
