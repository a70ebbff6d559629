//! The container's own seccomp profile, made to let the supervisor work.
//!
//! The profile (podman's, Kubernetes' RuntimeDefault) is installed by runc
//! before the supervisor starts, so it binds the supervisor as well as the
//! workload. Docker-style profiles refuse what the supervisor is made of
//! to a process without CAP_SYS_ADMIN or CAP_SYS_PTRACE: a user namespace
//! (`clone`/`unshare` with namespace flags), `mount`, `setns`,
//! `pidfd_getfd` and `process_vm_*`. Those calls are allowed here,
//! without conditions, and every other rule stays.
//!
//! This does not widen the workload's reach: sandlock's own filter,
//! stacked on the container's, decides for the workload, and a stack of
//! seccomp filters takes the strictest answer of all.
//!
//! Must never remove a rule that names no call the supervisor needs, or
//! change the profile's default action.

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSyscall, LinuxSyscallBuilder};

/// The calls the supervisor makes that container profiles restrict.
/// (`clone3` stays as the profile has it: profiles answer ENOSYS, and
/// libc falls back to `clone`, which is allowed here.)
pub const SUPERVISOR_CALLS: &[&str] = &[
    "capget",
    "capset",
    "clone",
    "close_range",
    "ioctl",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "memfd_create",
    "mount",
    "openat2",
    "pidfd_getfd",
    "pidfd_open",
    "pidfd_send_signal",
    "prctl",
    "prlimit64",
    "process_vm_readv",
    "process_vm_writev",
    "seccomp",
    "setns",
    "setrlimit",
    "statx",
    "umount2",
    "unshare",
];

/// The profile with the supervisor's calls allowed: taken out of every
/// rule with another action, and allowed by one rule of their own unless
/// the default action allows them already.
pub fn allow_supervisor(mut profile: LinuxSeccomp) -> anyhow::Result<LinuxSeccomp> {
    let needed = |name: &String| SUPERVISOR_CALLS.contains(&name.as_str());
    let mut rules: Vec<LinuxSyscall> = Vec::new();
    for mut rule in profile.syscalls().clone().unwrap_or_default() {
        if !allows(rule.action()) {
            let names: Vec<String> = rule
                .names()
                .iter()
                .filter(|n| !needed(n))
                .cloned()
                .collect();
            if names.is_empty() {
                continue;
            }
            rule.set_names(names);
        }
        rules.push(rule);
    }
    if !allows(profile.default_action()) {
        rules.push(
            LinuxSyscallBuilder::default()
                .names(
                    SUPERVISOR_CALLS
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>(),
                )
                .action(LinuxSeccompAction::ScmpActAllow)
                .build()?,
        );
    }
    profile.set_syscalls(Some(rules));
    Ok(profile)
}

/// Does `action` let the call through?
fn allows(action: LinuxSeccompAction) -> bool {
    matches!(
        action,
        LinuxSeccompAction::ScmpActAllow | LinuxSeccompAction::ScmpActLog
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_deny_by_default_profile_gains_one_rule_and_keeps_the_others() {
        let p = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ", "valueTwo": 0}]},
                {"names": ["mount", "reboot"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["pidfd_getfd"], "action": "SCMP_ACT_ERRNO"}
            ]
        }));
        let out = allow_supervisor(p).unwrap();
        let v = serde_json::to_value(&out).unwrap();
        assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
        let rules = v["syscalls"].as_array().unwrap();
        assert_eq!(rules.len(), 4, "{rules:?}");
        assert_eq!(rules[0]["names"], serde_json::json!(["read", "write"]));
        assert_eq!(rules[1]["names"], serde_json::json!(["clone"]));
        assert!(rules[1]["args"].is_array(), "conditions kept");
        assert_eq!(rules[2]["names"], serde_json::json!(["reboot"]));
        assert_eq!(rules[2]["errnoRet"], 1);
        assert_eq!(rules[3]["action"], "SCMP_ACT_ALLOW");
        assert!(rules[3].get("args").is_none());
        let names: Vec<&str> = rules[3]["names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        assert_eq!(names, SUPERVISOR_CALLS);
    }

    #[test]
    fn an_allow_by_default_profile_only_loses_its_denials_of_the_supervisor() {
        let p = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["unshare", "kexec_load"], "action": "SCMP_ACT_KILL"}]
        }));
        let v = serde_json::to_value(allow_supervisor(p).unwrap()).unwrap();
        assert_eq!(
            v["syscalls"],
            serde_json::json!([{"names": ["kexec_load"], "action": "SCMP_ACT_KILL"}])
        );
    }
}
