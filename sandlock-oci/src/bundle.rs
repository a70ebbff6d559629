//! `create` and `run`: the bundle's config.json, rewritten so that the
//! container's process starts under the supervisor, before runc reads it.
//!
//! Three edits, nothing else: the process is wrapped (see `wrap`), the
//! supervisor's files are mounted (see `carry`), and the seccomp profile
//! lets the supervisor work (see `seccomp`). runc's masked and read-only
//! paths stay as they are.
//!
//! A pod's sandbox (the "pause" container, as the CRI marks it) is wrapped
//! too, under sandlock's default policy: it runs the node's pause binary,
//! and it gets the pod's annotations without the containers' environment.
//! The mark is no way out: podman copies an image's annotations into the
//! container's, so an image can claim it, and then gets the default
//! policy, with the pod's secrets still kept from it.
//!
//! Must never start a container whose policy is refused, nor wrap a
//! process twice.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxSeccomp, Spec};
use serde_json::Value;

use crate::annotations;
use crate::carry::Carry;
use crate::{jsonfile, seccomp, wrap};

/// Rewrites `bundle`'s config.json in place for the supervisor, whose
/// files `carry` names.
pub fn prepare(bundle: &Path, carry: &Carry) -> Result<()> {
    let path = bundle.join("config.json");
    let (mut doc, spec): (Value, Spec) = jsonfile::read(&path)?;
    let process = spec
        .process()
        .as_ref()
        .context("config.json has no process to run")?;
    let args = process.args().clone().unwrap_or_default();
    if wrap::unwrap(&args).is_some() {
        bail!(
            "{}: the process already runs under sandlock-oci's supervisor",
            path.display()
        );
    }
    let annotations = spec.annotations().clone().unwrap_or_default();
    let env = process.env().clone().unwrap_or_default();
    let policy = annotations::policy(&annotations, &env, is_pod_sandbox(&annotations))?;
    let (args, env) = wrap::wrap(
        &wrap::prefix(&policy.settings),
        &args,
        &env,
        &policy.secrets,
    )?;
    doc["process"]["args"] = serde_json::to_value(args)?;
    doc["process"]["env"] = serde_json::to_value(env)?;

    let mounts = carry.mounts()?;
    match doc.get_mut("mounts").and_then(Value::as_array_mut) {
        Some(list) => {
            for m in mounts {
                list.push(serde_json::to_value(m)?);
            }
        }
        None => doc["mounts"] = serde_json::to_value(mounts)?,
    }
    let linux = doc.get_mut("linux").and_then(Value::as_object_mut);
    if let Some(linux) = linux {
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
/// containerd's and CRI-O's CRI mark it?
fn is_pod_sandbox(annotations: &HashMap<String, String>) -> bool {
    [
        "io.kubernetes.cri.container-type",
        "io.kubernetes.cri-o.ContainerType",
    ]
    .iter()
    .any(|k| annotations.get(*k).is_some_and(|v| v == "sandbox"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn carry() -> Carry {
        Carry {
            exe: "/usr/local/bin/sandlock-oci".into(),
            roots: Some("/etc/ssl/certs/ca-certificates.crt".into()),
        }
    }

    fn settings(doc: &Value) -> Vec<String> {
        let args: Vec<String> = serde_json::from_value(doc["process"]["args"].clone()).unwrap();
        let end = args.iter().position(|a| a == "--").unwrap();
        args[..end].to_vec()
    }

    fn prepared(config: &Value) -> Value {
        let dir = std::env::temp_dir().join(format!(
            "sandlock-oci-bundle-{}-{}",
            std::process::id(),
            std::thread::current()
                .name()
                .unwrap_or("t")
                .replace("::", "-")
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.json");
        std::fs::write(&path, serde_json::to_vec(config).unwrap()).unwrap();
        prepare(&dir, &carry()).unwrap();
        let doc = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        doc
    }

    #[test]
    fn a_pods_sandbox_gets_the_default_policy_and_keeps_no_secret_in_reach() {
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
        let pause = |env: &[&str]| {
            serde_json::json!({
                "ociVersion": "1.0.2",
                "process": {"user": {"uid": 0, "gid": 0}, "args": ["/pause"], "cwd": "/", "env": env},
                "annotations": {"io.kubernetes.cri.container-type": "sandbox",
                                "run.sandlock/fs-write": "/data",
                                "run.sandlock/add-host": "api.test:127.0.0.1",
                                "run.sandlock/secret.TOKEN": "api.test"}
            })
        };
        // The pause container: no variable, no secret, no grant.
        let doc = prepared(&pause(&[]));
        let pins = [
            wrap::EXE,
            "supervise",
            "--set",
            "add-host=api.test:127.0.0.1",
        ];
        assert_eq!(settings(&doc), pins);
        // An image claiming to be one still has its secret kept from it.
        let doc = prepared(&pause(&["TOKEN=v"]));
        let mut with_secret = pins.to_vec();
        with_secret.extend(["--set", "secret=TOKEN@api.test"]);
        assert_eq!(settings(&doc), with_secret);
    }

    #[test]
    fn a_config_is_wrapped_once_with_its_other_fields_kept() {
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
        let doc = prepared(&config);
        let args: Vec<String> = serde_json::from_value(doc["process"]["args"].clone()).unwrap();
        assert_eq!(args[..2], [wrap::EXE, "supervise"]);
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
        // runc's masks stay.
        assert_eq!(doc["linux"]["maskedPaths"], config["linux"]["maskedPaths"]);
        assert_eq!(
            doc["linux"]["readonlyPaths"],
            config["linux"]["readonlyPaths"]
        );
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
        assert_eq!(
            dests,
            [
                "/proc",
                wrap::DIR,
                wrap::EXE,
                wrap::PROC,
                wrap::ROOTS,
                wrap::TMP
            ]
        );
        assert_eq!(doc["root"]["path"], "rootfs");
    }

    #[test]
    fn a_second_create_and_a_bad_annotation_leave_the_file_alone() {
        let dir = std::env::temp_dir().join(format!("sandlock-oci-twice-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.json");
        let mut config = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"user": {"uid": 0, "gid": 0}, "args": ["/bin/true"], "cwd": "/"}
        });
        std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
        prepare(&dir, &carry()).unwrap();
        let e = prepare(&dir, &carry()).unwrap_err().to_string();
        assert!(e.contains("already runs under"), "{e}");
        config["annotations"] = serde_json::json!({"run.sandlock/timeout": "soon"});
        std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
        let e = prepare(&dir, &carry()).unwrap_err().to_string();
        assert!(
            e.contains("run.sandlock/timeout") && e.contains("soon"),
            "{e}"
        );
        let after: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(after, config);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
