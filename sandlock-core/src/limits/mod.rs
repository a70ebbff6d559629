//! Enforcing the policy's resource limits with the best mechanism this
//! host offers, and refusing to start when none can: a limit the user
//! asked for is never silently unenforced.
//!
//! | limit | first choice | otherwise |
//! |---|---|---|
//! | memory | cgroup `memory` (v2, else v1) | the supervisor sums the tree's memory and kills it past the limit |
//! | pids | cgroup `pids` | `RLIMIT_NPROC` in the workload's own user namespace (counts only the sandbox) |
//! | cpu | cgroup `cpu` quota | the supervisor stops and continues the tree (SIGSTOP/SIGCONT) |
//! | open-files | `RLIMIT_NOFILE` | |
//! | file-size | `RLIMIT_FSIZE` | |
//! | disk | a size-capped tmpfs as TMPDIR and HOME, in the sandbox's mount namespace | |
//!
//! Owns the choice of mechanism (`plan`, a pure function of the limits
//! and what the host has, so `sandlock check` and a run agree) and the
//! pieces a launch needs: groups made before the fork, rlimits the
//! workload sets before exec, the watch that runs beside it. Must never
//! weaken the sandbox: every mechanism only takes away.

pub(crate) mod cgroup;
mod governor;
mod tree;

use std::fmt;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use self::cgroup::{Controller, Groups, Site, Version};
pub use self::governor::Breach;
pub(crate) use self::governor::{Duties, Governor};
use crate::policy::{Limit, Limits};
use crate::{Error, Result};

/// What enforces one limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// A cgroup controller of the unified hierarchy.
    CgroupV2,
    /// A cgroup controller of a v1 hierarchy.
    CgroupV1,
    /// `RLIMIT_NPROC` inside the workload's own user namespace.
    UserNsRlimit,
    /// A plain rlimit of each process.
    Rlimit,
    /// The supervisor watches the tree and kills it past the limit.
    Watchdog,
    /// The supervisor stops the tree while it is ahead of its share.
    Throttle,
    /// A size-capped tmpfs in the sandbox's mount namespace.
    Tmpfs,
}

impl Mechanism {
    /// How `sandlock check` and errors describe it, for `limit`.
    pub fn describe(self, limit: Limit) -> String {
        let ctl = match limit {
            Limit::Memory => "memory",
            Limit::Pids => "pids",
            _ => "cpu",
        };
        match self {
            Mechanism::CgroupV2 => format!("cgroup v2 {ctl} controller"),
            Mechanism::CgroupV1 => format!("cgroup v1 {ctl} controller"),
            Mechanism::UserNsRlimit => "RLIMIT_NPROC in the sandbox's own user namespace".into(),
            Mechanism::Rlimit => match limit {
                Limit::OpenFiles => "RLIMIT_NOFILE".into(),
                _ => "RLIMIT_FSIZE".into(),
            },
            Mechanism::Watchdog => {
                "sandlock sums the tree's anonymous memory and swap every 10 ms and kills it past the limit".into()
            }
            Mechanism::Throttle => "sandlock stops the tree (SIGSTOP/SIGCONT) while it is ahead of its share".into(),
            Mechanism::Tmpfs => "a size-capped tmpfs as TMPDIR and HOME, in the sandbox's mount namespace".into(),
        }
    }

    /// True when the mechanism needs the sandbox's own namespaces.
    fn needs_namespaces(self) -> bool {
        matches!(
            self,
            Mechanism::UserNsRlimit | Mechanism::Watchdog | Mechanism::Throttle | Mechanism::Tmpfs
        )
    }
}

/// The cgroup controller that can enforce `limit`, if one can.
fn controller(limit: Limit) -> Option<Controller> {
    match limit {
        Limit::Memory => Some(Controller::Memory),
        Limit::Pids => Some(Controller::Pids),
        Limit::Cpu => Some(Controller::Cpu),
        Limit::OpenFiles | Limit::FileSize | Limit::Disk => None,
    }
}

/// What the host offers, as far as limits go.
#[derive(Debug, Clone)]
pub struct Host {
    /// Usable cgroup sites.
    pub sites: Vec<Site>,
    /// The workload gets a user namespace of its own and is not root, so
    /// RLIMIT_NPROC counts only the sandbox. (Root in a container gets a
    /// user namespace too, but the kernel never applies RLIMIT_NPROC to
    /// the real uid 0.)
    pub user_ns: bool,
    /// Hard limits of this process: (RLIMIT_NOFILE, RLIMIT_FSIZE,
    /// RLIMIT_NPROC).
    pub hard: [u64; 3],
}

impl Host {
    /// This process's host.
    pub fn detect() -> Host {
        Host::probe(true)
    }

    /// What `limits` needs to know of this host: the cgroup sites only
    /// when a limit a cgroup enforces (memory, pids, cpu) is set. Finding
    /// them reads /proc/self/mountinfo and a dozen cgroup files, which
    /// a run without those limits should not pay for at every start.
    pub fn detect_for(limits: &Limits) -> Host {
        Host::probe(
            Limit::ALL
                .iter()
                .any(|&l| controller(l).is_some() && limits.shown(l).is_some()),
        )
    }

    fn probe(cgroups: bool) -> Host {
        let hard = |r| {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit writes one rlimit we own.
            if unsafe { libc::getrlimit(r, &mut lim) } != 0 {
                return 0;
            }
            lim.rlim_max
        };
        // SAFETY: geteuid has no failure mode.
        let root = unsafe { libc::geteuid() } == 0;
        Host {
            sites: if cgroups {
                cgroup::detect()
            } else {
                Vec::new()
            },
            user_ns: !root,
            hard: [
                hard(libc::RLIMIT_NOFILE),
                hard(libc::RLIMIT_FSIZE),
                hard(libc::RLIMIT_NPROC),
            ],
        }
    }

    fn site(&self, c: Controller) -> Option<&Site> {
        self.sites.iter().find(|s| s.controller == c)
    }
}

/// The mechanism for each limit that is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan(pub Vec<(Limit, Mechanism)>);

impl Plan {
    /// The mechanism for `limit`, if it is set.
    pub fn get(&self, limit: Limit) -> Option<Mechanism> {
        self.0.iter().find(|(l, _)| *l == limit).map(|(_, m)| *m)
    }

    /// A limit whose mechanism needs the sandbox's namespaces, if any.
    pub fn needs_namespaces(&self) -> Option<Limit> {
        self.0
            .iter()
            .find(|(_, m)| m.needs_namespaces())
            .map(|(l, _)| *l)
    }
}

/// How each limit `limits` sets would be enforced on `host`, or why one
/// cannot be.
pub fn plan(limits: &Limits, host: &Host) -> Result<Plan> {
    let mut out = Vec::new();
    for limit in Limit::ALL {
        let Some(shown) = limits.shown(limit) else {
            continue;
        };
        let flag = limit.flag();
        let cgroup = |c: Controller| {
            host.site(c).map(|s| match s.version {
                Version::V2 => Mechanism::CgroupV2,
                Version::V1 => Mechanism::CgroupV1,
            })
        };
        let above_hard = |value: u64, hard: u64, what: &str| {
            (value > hard).then(|| {
                Error::invalid(
                    flag,
                    &shown,
                    format!("above this process's hard limit {hard} ({what}); a process without CAP_SYS_RESOURCE cannot raise it"),
                )
            })
        };
        let m = match limit {
            Limit::Memory => cgroup(Controller::Memory).unwrap_or(Mechanism::Watchdog),
            Limit::Cpu => cgroup(Controller::Cpu).unwrap_or(Mechanism::Throttle),
            Limit::Pids => match cgroup(Controller::Pids) {
                Some(m) => m,
                None if host.user_ns => {
                    let n = limits.pids.map_or(0, |n| u64::from(n) + 1);
                    if let Some(e) = above_hard(n, host.hard[2], "ulimit -Hu") {
                        return Err(e);
                    }
                    Mechanism::UserNsRlimit
                }
                None => {
                    return Err(Error::invalid(
                        flag,
                        &shown,
                        "no way to enforce it here: sandlock runs as root (RLIMIT_NPROC does not bind root) and has no writable cgroup with the pids controller (cgroup v2 with pids enabled, or a v1 pids hierarchy)",
                    ))
                }
            },
            Limit::OpenFiles => {
                let n = limits.open_files.unwrap_or(0);
                if let Some(e) = above_hard(n, host.hard[0], "ulimit -Hn") {
                    return Err(e);
                }
                Mechanism::Rlimit
            }
            Limit::FileSize => {
                let n = limits.file_size.map_or(0, |s| s.bytes());
                if let Some(e) = above_hard(n, host.hard[1], "ulimit -Hf") {
                    return Err(e);
                }
                Mechanism::Rlimit
            }
            Limit::Disk => Mechanism::Tmpfs,
        };
        out.push((limit, m));
    }
    Ok(Plan(out))
}

/// For `sandlock check`: per limit, the mechanism a small sample value
/// (`--memory 256M`, `--pids 64`, ...) would use on `host`, or why none
/// can. `own_ns` says whether the sandbox gets its own namespaces here.
pub fn survey(host: &Host, own_ns: bool) -> Vec<(Limit, std::result::Result<Mechanism, String>)> {
    const SAMPLES: [(&str, &str); 6] = [
        ("memory", "256M"),
        ("pids", "64"),
        ("cpu", "0.5"),
        ("open-files", "64"),
        ("file-size", "1M"),
        ("disk", "64M"),
    ];
    Limit::ALL
        .iter()
        .zip(SAMPLES)
        .map(|(&limit, (name, value))| {
            let mut one = Limits::default();
            let found = one
                .set(limit.flag(), name, value)
                .and_then(|()| plan(&one, host))
                .map_err(|e| e.to_string())
                .and_then(|p| {
                    let m = p.get(limit).expect("the plan covers the limit set");
                    if m.needs_namespaces() && !own_ns {
                        Err(format!(
                            "{} needs the sandbox's own namespaces, which this kernel refuses",
                            m.describe(limit)
                        ))
                    } else {
                        Ok(m)
                    }
                });
            (limit, found)
        })
        .collect()
}

/// Resource limits the workload's child sets on itself before exec:
/// (resource, value) pairs, applied as both soft and hard limit.
pub type Rlimits = Vec<(libc::__rlimit_resource_t, u64)>;

/// The limits of one run, made ready before the fork.
pub(crate) struct Prepared {
    /// How each limit is enforced.
    pub plan: Plan,
    /// The cgroups made for this run.
    pub groups: Option<Arc<Groups>>,
    /// `(resource, value)` pairs the workload sets before exec.
    pub rlimits: Rlimits,
}

impl Prepared {
    /// Plans `limits` on this host and makes the groups.
    pub fn new(limits: &Limits) -> Result<Prepared> {
        let host = Host::detect_for(limits);
        let plan = plan(limits, &host)?;
        let cgroup_limits: Vec<&Site> = plan
            .0
            .iter()
            .filter(|(_, m)| matches!(m, Mechanism::CgroupV1 | Mechanism::CgroupV2))
            .filter_map(|(l, _)| controller(*l).and_then(|c| host.site(c)))
            .collect();
        let groups = if cgroup_limits.is_empty() {
            None
        } else {
            Some(Arc::new(Groups::create(&cgroup_limits, limits).map_err(
                |e| {
                    Error::setup(
                        "making the sandbox's cgroup (for --memory, --pids or --cpu)",
                        e,
                    )
                },
            )?))
        };
        let mut rlimits = Vec::new();
        if let Some(n) = limits.open_files {
            rlimits.push((libc::RLIMIT_NOFILE, n));
        }
        if let Some(s) = limits.file_size {
            rlimits.push((libc::RLIMIT_FSIZE, s.bytes()));
        }
        if let (Some(n), Some(Mechanism::UserNsRlimit)) = (limits.pids, plan.get(Limit::Pids)) {
            // One more for the reaper, which the namespace counts too.
            rlimits.push((libc::RLIMIT_NPROC, u64::from(n) + 1));
        }
        Ok(Prepared {
            plan,
            groups,
            rlimits,
        })
    }

    /// The fds through which the reaper joins the groups.
    pub fn procs_fds(&self) -> Result<Vec<OwnedFd>> {
        match &self.groups {
            Some(g) => g
                .procs_fds()
                .map_err(|e| Error::setup("opening the sandbox's cgroup.procs", e)),
            None => Ok(Vec::new()),
        }
    }

    /// What the watch beside the tree must do.
    pub fn duties(&self, limits: &Limits) -> Duties {
        Duties {
            memory: (self.plan.get(Limit::Memory) == Some(Mechanism::Watchdog))
                .then(|| limits.memory.map(|m| m.bytes()))
                .flatten(),
            cpu: (self.plan.get(Limit::Cpu) == Some(Mechanism::Throttle))
                .then(|| limits.cpu.map(|c| c.thousandths()))
                .flatten(),
            groups: self.groups.clone(),
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (l, m) in &self.0 {
            writeln!(f, "{l}: {}", m.describe(*l))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(pairs: &[(&str, &str)]) -> Limits {
        let mut l = Limits::default();
        for (k, v) in pairs {
            let flag = crate::policy::option(k).unwrap().flag;
            l.set(flag, k, v).unwrap();
        }
        l
    }

    #[test]
    fn cgroups_are_probed_only_for_the_limits_a_cgroup_enforces() {
        let without = limits(&[("open-files", "64"), ("file-size", "1M"), ("disk", "64M")]);
        assert!(Host::detect_for(&Limits::default()).sites.is_empty());
        assert!(Host::detect_for(&without).sites.is_empty());
        // The twin: each of memory, pids and cpu finds what a full
        // probe finds (on a host with writable cgroups, some sites).
        let all = Host::detect().sites.len();
        for (name, value) in [("memory", "256M"), ("pids", "64"), ("cpu", "0.5")] {
            assert_eq!(
                Host::detect_for(&limits(&[(name, value)])).sites.len(),
                all,
                "{name}"
            );
        }
    }

    fn host(sites: Vec<Site>, user_ns: bool) -> Host {
        Host {
            sites,
            user_ns,
            hard: [1024, u64::MAX, 4096],
        }
    }

    #[test]
    fn an_ordinary_user_without_cgroups_gets_the_fallbacks() {
        let l = limits(&[
            ("memory", "256M"),
            ("pids", "64"),
            ("cpu", "0.5"),
            ("disk", "64M"),
            ("open-files", "100"),
        ]);
        let p = plan(&l, &host(Vec::new(), true)).unwrap();
        assert_eq!(p.get(Limit::Memory), Some(Mechanism::Watchdog));
        assert_eq!(p.get(Limit::Pids), Some(Mechanism::UserNsRlimit));
        assert_eq!(p.get(Limit::Cpu), Some(Mechanism::Throttle));
        assert_eq!(p.get(Limit::Disk), Some(Mechanism::Tmpfs));
        assert_eq!(p.get(Limit::OpenFiles), Some(Mechanism::Rlimit));
        assert_eq!(p.get(Limit::FileSize), None);
        assert_eq!(p.needs_namespaces(), Some(Limit::Memory));
    }

    #[test]
    fn root_without_a_pids_cgroup_is_refused_with_the_reason() {
        let l = limits(&[("pids", "64")]);
        let e = plan(&l, &host(Vec::new(), false)).unwrap_err().to_string();
        assert!(
            e.contains("--pids") && e.contains("64") && e.contains("root"),
            "{e}"
        );
        // twin: an ordinary user has the user namespace's rlimit
        assert!(plan(&l, &host(Vec::new(), true)).is_ok());
    }

    #[test]
    fn rlimits_above_the_hard_limit_are_refused() {
        let e = plan(&limits(&[("open-files", "5000")]), &host(Vec::new(), true))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--open-files") && e.contains("5000") && e.contains("1024"),
            "{e}"
        );
        let e = plan(&limits(&[("pids", "4096")]), &host(Vec::new(), true))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--pids") && e.contains("ulimit -Hu"), "{e}");
        // twin: at the hard limit
        assert!(plan(&limits(&[("open-files", "1024")]), &host(Vec::new(), true)).is_ok());
    }

    #[test]
    fn no_limits_no_plan() {
        assert_eq!(
            plan(&Limits::default(), &host(Vec::new(), false)).unwrap(),
            Plan(Vec::new())
        );
    }
}
