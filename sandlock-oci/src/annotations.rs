//! A container's policy from its `run.sandlock/*` annotations (a pod's
//! annotations reach the runtime as the container's), through the one
//! policy builder every front door uses:
//!
//! - `run.sandlock/profile`: profiles by name (one per line), looked up on
//!   the host as `sandlock run -p` does, applied first;
//! - `run.sandlock/OPTION`: any `sandlock run` option by its flag's name
//!   (`net-allow`, `http-allow`, `memory`, ...); a repeatable option takes
//!   one value per line, a switch `true` or `false`;
//! - `run.sandlock/secret.NAME: HOSTS`: `--secret NAME@HOSTS`, the value
//!   being the container's environment variable NAME (which the pod spec
//!   may fill from a Kubernetes Secret).
//!
//! Paths in values are the container's, as the supervisor runs inside it.
//!
//! Must never accept what `sandlock run` would refuse, nor let an error
//! leave out the annotation and value it is about.

use std::collections::HashMap;

use anyhow::{anyhow, bail, Result};
use sandlock_core::policy::{option, Kind, PolicyBuilder};
use sandlock_core::profile;

/// The annotations' prefix.
pub const PREFIX: &str = "run.sandlock/";

/// The annotation naming profiles.
const PROFILE: &str = "profile";

/// The prefix of a secret's annotation, after [`PREFIX`].
const SECRET: &str = "secret.";

/// The checked policy of a container.
#[derive(Debug)]
pub struct ContainerPolicy {
    /// Every option, in order, to replay in the supervisor.
    pub settings: Vec<(&'static str, String)>,
    /// The environment variables holding secrets.
    pub secrets: Vec<String>,
}

/// The policy the annotations describe, checked as `sandlock run` checks
/// its flags; `env` is the process's environment (`NAME=VALUE` entries),
/// which must hold every secret's variable.
///
/// A pod's sandbox (`pod_sandbox`) gets the pod's annotations but runs
/// the node's pause binary: it gets sandlock's default policy, and only
/// the secrets whose variables it has (with `add-host`, which their hosts
/// may need), so that an image that claims to be one (podman copies an
/// image's annotations) still has them kept from it.
pub fn policy(
    annotations: &HashMap<String, String>,
    env: &[String],
    pod_sandbox: bool,
) -> Result<ContainerPolicy> {
    let has = |name: &str| {
        env.iter()
            .any(|e| e.strip_prefix(name).is_some_and(|r| r.starts_with('=')))
    };
    let mut ours: Vec<(&str, &str)> = annotations
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(PREFIX)?, v.as_str())))
        .filter(|(k, _)| {
            !pod_sandbox || *k == "add-host" || k.strip_prefix(SECRET).is_some_and(has)
        })
        .collect();
    // The profiles first, then the rest in a fixed order (a map has none).
    ours.sort_by_key(|(k, _)| (*k != PROFILE, *k));
    let mut b = PolicyBuilder::new();
    let mut secrets = Vec::new();
    for (key, value) in ours {
        let bad = |e: &dyn std::fmt::Display| {
            anyhow!("annotation {PREFIX}{key}: invalid value {value:?}: {e}")
        };
        if key == PROFILE {
            for name in lines(value) {
                profile::find(name)
                    .and_then(|p| p.apply(&mut b))
                    .map_err(|e| bad(&e))?;
            }
        } else if let Some(name) = key.strip_prefix(SECRET) {
            if !has(name) {
                bail!(
                    "annotation {PREFIX}{key}: the container's environment has no {name} \
                     (set it in the pod spec, e.g. from a Secret, or with --env)"
                );
            }
            b.set("secret", &format!("{name}@{}", value.trim()))
                .map_err(|e| bad(&e))?;
            secrets.push(name.to_string());
        } else {
            let info = option(key).ok_or_else(|| {
                anyhow!(
                    "annotation {PREFIX}{key}: no such option (the keys are `sandlock run` \
                     flags without dashes, {PREFIX}{PROFILE} and {PREFIX}{SECRET}NAME)"
                )
            })?;
            match info.kind {
                Kind::List => {
                    for v in lines(value) {
                        b.set(key, v).map_err(|e| bad(&e))?;
                    }
                }
                Kind::Value | Kind::Switch => b.set(key, value.trim()).map_err(|e| bad(&e))?,
            }
        }
    }
    let settings = b.settings().to_vec();
    b.build()
        .map_err(|e| anyhow!("the {PREFIX}* annotations: {e}"))?;
    Ok(ContainerPolicy { settings, secrets })
}

/// The non-blank lines of a value, trimmed.
fn lines(value: &str) -> impl Iterator<Item = &str> {
    value.lines().map(str::trim).filter(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (format!("{PREFIX}{k}"), v.to_string()))
            .chain([("io.other/key".to_string(), "ignored".to_string())])
            .collect()
    }

    #[test]
    fn options_lines_switches_and_secrets_become_settings() {
        let a = annotations(&[
            ("net-allow", "a.test:443\n\n  b.test:80  \n"),
            ("quiet", "true"),
            ("secret.TOKEN", "api.test"),
            ("http-allow", "GET api.test/v1/*"),
        ]);
        let p = policy(&a, &["TOKEN=s3cret".into()], false).unwrap();
        assert_eq!(
            p.settings,
            [
                ("http-allow", "GET api.test/v1/*".to_string()),
                ("net-allow", "a.test:443".to_string()),
                ("net-allow", "b.test:80".to_string()),
                ("quiet", "true".to_string()),
                ("secret", "TOKEN@api.test".to_string()),
            ]
        );
        assert_eq!(p.secrets, ["TOKEN"]);
        assert!(!format!("{p:?}").contains("s3cret"));
    }

    #[test]
    fn a_profile_comes_first_and_the_annotations_refine_it() {
        let a = annotations(&[("timeout", "5"), ("profile", "build")]);
        let p = policy(&a, &[], false).unwrap();
        let last = p.settings.last().unwrap();
        assert_eq!(last, &("timeout", "5".to_string()));
        assert!(p.settings.len() > 1, "{:?}", p.settings);
    }

    #[test]
    fn errors_name_the_annotation_and_the_value() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("net-allow", "a.test:99999")],
                "run.sandlock/net-allow: invalid value \"a.test:99999\"",
            ),
            (&[("no-such", "x")], "run.sandlock/no-such: no such option"),
            (
                &[("quiet", "maybe")],
                "run.sandlock/quiet: invalid value \"maybe\"",
            ),
            (
                &[("profile", "nope")],
                "run.sandlock/profile: invalid value \"nope\"",
            ),
            (
                &[("secret.MISSING", "a.test")],
                "run.sandlock/secret.MISSING: the container's environment has no MISSING",
            ),
            (
                &[("secret.TOKEN", "")],
                "run.sandlock/secret.TOKEN: invalid value \"\"",
            ),
            (
                &[("on-exit", "commit")],
                "the run.sandlock/* annotations: --on-exit",
            ),
        ];
        for (pairs, want) in cases {
            let e = policy(&annotations(pairs), &["TOKEN=x".into()], false)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{pairs:?}: {e}");
        }
    }

    #[test]
    fn every_option_of_sandlock_run_is_an_annotation() {
        for o in sandlock_core::policy::OPTIONS {
            let value = match o.kind {
                Kind::Switch => "true",
                _ => "x",
            };
            let e =
                policy(&annotations(&[(o.name(), value)]), &[], false).map_err(|e| e.to_string());
            if let Err(e) = e {
                assert!(!e.contains("no such option"), "{}: {e}", o.name());
            }
        }
    }

    #[test]
    fn no_annotations_is_the_default_policy() {
        let p = policy(&HashMap::new(), &[], false).unwrap();
        assert!(p.settings.is_empty() && p.secrets.is_empty());
    }
}
