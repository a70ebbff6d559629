//! cgroups for the sandbox's tree: which controllers this process may
//! use (cgroup v2, directly at the root or in a subtree delegated to its
//! user; or a writable v1 hierarchy per controller), a fresh group per
//! run with the limits written, and the counters that say a limit was hit.
//!
//! Owns every write under `/sys/fs/cgroup`. It must never move a process
//! other than the sandbox's reaper (which joins by writing `0`, itself,
//! from an fd opened here), and never leave a group behind once the tree
//! is gone: groups are named for the supervisor's pid, and ones whose
//! supervisor died are removed by the next run.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::policy::Limits;

/// A controller sandlock uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    /// `memory`.
    Memory,
    /// `pids`.
    Pids,
    /// `cpu`.
    Cpu,
}

impl Controller {
    const ALL: [Controller; 3] = [Controller::Memory, Controller::Pids, Controller::Cpu];

    fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Cpu => "cpu",
        }
    }
}

/// The cgroup version a controller is mounted with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The unified hierarchy.
    V2,
    /// A hierarchy of its own.
    V1,
}

/// Where a group for one controller can be made: `parent` is a cgroup
/// directory this process may create children in, with the controller
/// available to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The controller.
    pub controller: Controller,
    /// Its version here.
    pub version: Version,
    /// The directory new groups go in.
    pub parent: PathBuf,
    /// v2 only: the controller must still be enabled in the parent's
    /// `cgroup.subtree_control` (possible at the root cgroup only).
    enable: bool,
}

/// The sites this process can use, one per controller at most (v2
/// preferred), from its mount table and cgroup membership.
pub fn detect() -> Vec<Site> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let membership = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    sites(&mountinfo, &membership, &|p| writable(p), &|p| {
        fs::read_to_string(p).unwrap_or_default()
    })
}

fn writable(p: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access() reads a valid C string.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// [`detect`] on given texts, with the file system behind closures (so
/// tests can describe a host).
fn sites(
    mountinfo: &str,
    membership: &str,
    can_write: &dyn Fn(&Path) -> bool,
    read: &dyn Fn(&Path) -> String,
) -> Vec<Site> {
    let mut out = Vec::new();
    for c in Controller::ALL {
        if let Some(s) = v2_site(c, mountinfo, membership, can_write, read) {
            out.push(s);
        } else if let Some(s) = v1_site(c, mountinfo, membership, can_write) {
            out.push(s);
        }
    }
    out
}

/// Mounts of `fstype`: (root within the hierarchy, mount point, super
/// options).
fn mounts<'a>(
    mountinfo: &'a str,
    fstype: &'a str,
) -> impl Iterator<Item = (&'a str, &'a str, &'a str)> {
    mountinfo.lines().filter_map(move |line| {
        let (pre, post) = line.split_once(" - ")?;
        let mut pre = pre.split(' ');
        let root = pre.nth(3)?;
        let point = pre.next()?;
        let mut post = post.split(' ');
        (post.next()? == fstype).then_some(())?;
        let opts = post.nth(1)?;
        Some((root, point, opts))
    })
}

/// The directory of this process's cgroup in a hierarchy mounted at
/// `point` (showing `root` of it), given its path in that hierarchy.
fn own_dir(point: &str, root: &str, path: &str) -> Option<PathBuf> {
    let rel = path.strip_prefix(root)?.trim_start_matches('/');
    if rel.split('/').any(|c| c == "..") {
        return None;
    }
    Some(match rel {
        "" => PathBuf::from(point),
        rel => Path::new(point).join(rel),
    })
}

fn v2_site(
    c: Controller,
    mountinfo: &str,
    membership: &str,
    can_write: &dyn Fn(&Path) -> bool,
    read: &dyn Fn(&Path) -> String,
) -> Option<Site> {
    let (root, point, _) = mounts(mountinfo, "cgroup2").next()?;
    let path = membership.lines().find_map(|l| l.strip_prefix("0::"))?;
    let own = own_dir(point, root, path)?;
    let has = |dir: &Path, file: &str| {
        read(&dir.join(file))
            .split_whitespace()
            .any(|w| w == c.name())
    };
    if path == "/" {
        // The root cgroup may hold processes and enable controllers.
        let enable = !has(&own, "cgroup.subtree_control");
        return (has(&own, "cgroup.controllers") && can_write(&own)).then_some(Site {
            controller: c,
            version: Version::V2,
            parent: own,
            enable,
        });
    }
    // Elsewhere this process's own cgroup cannot have children with
    // controllers while it holds processes: the group goes beside it, in a
    // parent delegated to this user with the controller already enabled.
    let parent = own.parent()?.to_path_buf();
    (has(&parent, "cgroup.subtree_control") && can_write(&parent)).then_some(Site {
        controller: c,
        version: Version::V2,
        parent,
        enable: false,
    })
}

fn v1_site(
    c: Controller,
    mountinfo: &str,
    membership: &str,
    can_write: &dyn Fn(&Path) -> bool,
) -> Option<Site> {
    let (root, point, _) =
        mounts(mountinfo, "cgroup").find(|(_, _, opts)| opts.split(',').any(|o| o == c.name()))?;
    let path = membership.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let _id = f.next()?;
        let ctrls = f.next()?;
        let path = f.next()?;
        ctrls.split(',').any(|x| x == c.name()).then_some(path)
    })?;
    let own = own_dir(point, root, path)?;
    can_write(&own).then_some(Site {
        controller: c,
        version: Version::V1,
        parent: own,
        enable: false,
    })
}

/// The files a limit is written to, in order, for one controller.
fn settings(c: Controller, v: Version, limits: &Limits) -> Vec<(&'static str, String)> {
    match (c, v) {
        (Controller::Memory, _) => {
            let Some(m) = limits.memory else {
                return Vec::new();
            };
            let bytes = m.bytes().to_string();
            match v {
                // memsw (memory + swap) exists only with swap accounting;
                // written after the plain limit, which it may not undercut.
                Version::V1 => vec![
                    ("memory.limit_in_bytes", bytes.clone()),
                    ("memory.memsw.limit_in_bytes?", bytes),
                ],
                Version::V2 => vec![
                    ("memory.max", bytes),
                    ("memory.swap.max?", "0".into()),
                    ("memory.oom.group", "1".into()),
                ],
            }
        }
        (Controller::Pids, _) => match limits.pids {
            // One more for the reaper, which is sandlock's, not the
            // workload's.
            Some(n) => vec![("pids.max", (u64::from(n) + 1).to_string())],
            None => Vec::new(),
        },
        (Controller::Cpu, _) => {
            let Some(share) = limits.cpu else {
                return Vec::new();
            };
            let (quota, period) = cpu_quota(share.thousandths());
            match v {
                Version::V1 => vec![
                    ("cpu.cfs_period_us", period.to_string()),
                    ("cpu.cfs_quota_us", quota.to_string()),
                ],
                Version::V2 => vec![("cpu.max", format!("{quota} {period}"))],
            }
        }
    }
}

/// CFS quota and period (µs) for a share in thousandths of a CPU: a
/// period of 100 ms, or 1 s for shares so small that 100 ms would give
/// less than the kernel's 1 ms minimum quota.
fn cpu_quota(thousandths: u32) -> (u64, u64) {
    let period: u64 = if thousandths < 10 { 1_000_000 } else { 100_000 };
    (u64::from(thousandths) * period / 1000, period)
}

/// One group per distinct site directory, made for this run.
#[derive(Debug)]
pub struct Groups {
    made: Vec<(PathBuf, Version, Vec<Controller>)>,
}

impl Groups {
    /// Makes a fresh group for `sites` (those of the controllers `limits`
    /// uses) and writes the limits. Nothing is left behind on failure.
    pub fn create(sites: &[&Site], limits: &Limits) -> io::Result<Groups> {
        let mut groups = Groups { made: Vec::new() };
        let name = unique_name()?;
        for site in sites {
            if let Some((_, _, ctrls)) = groups
                .made
                .iter_mut()
                .find(|(d, ..)| d.parent() == Some(&site.parent))
            {
                ctrls.push(site.controller);
                continue;
            }
            sweep_stale(&site.parent);
            if site.enable {
                write_file(
                    &site.parent.join("cgroup.subtree_control"),
                    &format!("+{}", site.controller.name()),
                )?;
            }
            let dir = site.parent.join(&name);
            fs::create_dir(&dir)?;
            groups.made.push((dir, site.version, vec![site.controller]));
        }
        for (dir, v, ctrls) in &groups.made {
            for c in ctrls {
                for (file, value) in settings(*c, *v, limits) {
                    let (file, optional) = match file.strip_suffix('?') {
                        Some(f) => (f, true),
                        None => (file, false),
                    };
                    let path = dir.join(file);
                    if optional && !path.exists() {
                        continue;
                    }
                    write_file(&path, &value).map_err(|e| {
                        io::Error::new(e.kind(), format!("{}: {e}", path.display()))
                    })?;
                }
            }
        }
        Ok(groups)
    }

    /// Write-only `cgroup.procs` of every group: the reaper writes `0` to
    /// each to join it before it starts the workload.
    pub fn procs_fds(&self) -> io::Result<Vec<OwnedFd>> {
        self.made
            .iter()
            .map(|(dir, ..)| {
                OpenOptions::new()
                    .write(true)
                    .open(dir.join("cgroup.procs"))
                    .map(OwnedFd::from)
            })
            .collect()
    }

    /// The group holding controller `c`.
    fn dir(&self, c: Controller) -> Option<(&Path, Version)> {
        self.made
            .iter()
            .find(|(_, _, ctrls)| ctrls.contains(&c))
            .map(|(d, v, _)| (d.as_path(), *v))
    }

    /// How often the tree hit controller `c`'s limit so far: OOM kills
    /// for memory, refused forks for pids, throttled periods for cpu.
    pub fn hits(&self, c: Controller) -> u64 {
        let Some((dir, v)) = self.dir(c) else {
            return 0;
        };
        let (file, key) = match (c, v) {
            (Controller::Memory, Version::V1) => ("memory.oom_control", "oom_kill"),
            (Controller::Memory, Version::V2) => ("memory.events", "oom_kill"),
            (Controller::Pids, _) => ("pids.events", "max"),
            (Controller::Cpu, _) => ("cpu.stat", "nr_throttled"),
        };
        counter(&fs::read_to_string(dir.join(file)).unwrap_or_default(), key)
    }
}

impl Drop for Groups {
    /// Removes the groups; the tree is gone by now (a dying process may
    /// hold one for a moment, hence the retries).
    fn drop(&mut self) {
        for (dir, ..) in &self.made {
            for _ in 0..50 {
                match fs::remove_dir(dir) {
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        std::thread::sleep(std::time::Duration::from_millis(2))
                    }
                    _ => break,
                }
            }
        }
    }
}

/// `KEY N` from a flat-keyed cgroup file.
fn counter(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok()).flatten()
        })
        .unwrap_or(0)
}

/// `sandlock-PID-RANDOM`: the supervisor's pid lets a later run tell
/// groups whose supervisor died.
fn unique_name() -> io::Result<String> {
    let tail = crate::sys::random_hex(6)?;
    Ok(format!("sandlock-{}-{tail}", std::process::id()))
}

/// Removes empty groups of supervisors that are gone.
fn sweep_stale(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("sandlock-"))
            .and_then(|n| n.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only checks that the pid exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let _ = fs::remove_dir(e.path());
        }
    }
}

fn write_file(path: &Path, value: &str) -> io::Result<()> {
    File::options()
        .write(true)
        .open(path)?
        .write_all(value.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_CG: &str = "8:pids:/\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n";

    #[test]
    fn a_hybrid_host_uses_v1_where_the_unified_tree_has_no_controllers() {
        let s = sites(HYBRID, HYBRID_CG, &|_| true, &|p| {
            if p.ends_with("cgroup.controllers") {
                "hugetlb".into()
            } else {
                String::new()
            }
        });
        let parents: Vec<(Controller, Version, &str)> = s
            .iter()
            .map(|s| (s.controller, s.version, s.parent.to_str().unwrap()))
            .collect();
        assert_eq!(
            parents,
            [
                (
                    Controller::Memory,
                    Version::V1,
                    "/sys/fs/cgroup/memory/process_api/abc"
                ),
                (Controller::Pids, Version::V1, "/sys/fs/cgroup/pids"),
                (Controller::Cpu, Version::V1, "/sys/fs/cgroup/cpu"),
            ]
        );
        // twin: nothing writable (an ordinary user), nothing usable
        assert!(sites(HYBRID, HYBRID_CG, &|_| false, &|_| String::new()).is_empty());
    }

    #[test]
    fn v2_at_the_root_enables_and_elsewhere_goes_beside_itself() {
        let mi = "30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let s = sites(mi, "0::/\n", &|_| true, &|p| {
            if p.ends_with("cgroup.controllers") {
                "cpu memory pids".into()
            } else {
                String::new()
            }
        });
        assert_eq!(s.len(), 3);
        assert!(s.iter().all(|s| s.version == Version::V2
            && s.enable
            && s.parent == Path::new("/sys/fs/cgroup")));
        // A user's delegated service: the group goes in the parent, which
        // has the controllers enabled for its children.
        let cg = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope\n";
        let s = sites(mi, cg, &|p| p.ends_with("app.slice"), &|p| {
            if p.ends_with("app.slice/cgroup.subtree_control") {
                "memory pids".into()
            } else {
                String::new()
            }
        });
        let got: Vec<Controller> = s.iter().map(|s| s.controller).collect();
        assert_eq!(got, [Controller::Memory, Controller::Pids]);
        assert!(s
            .iter()
            .all(|s| !s.enable && s.parent.ends_with("app.slice")));
        // twin: the parent not writable (not delegated): nothing
        assert!(sites(mi, cg, &|_| false, &|_| "memory pids".into()).is_empty());
    }

    #[test]
    fn hostile_membership_paths_are_refused() {
        assert_eq!(own_dir("/sys/fs/cgroup/pids", "/", "/../../etc"), None);
        assert_eq!(own_dir("/sys/fs/cgroup/pids", "/a", "/b"), None);
        assert_eq!(own_dir("/m", "/", "/x/y"), Some(PathBuf::from("/m/x/y")));
    }

    #[test]
    fn limits_become_the_controller_files() {
        let mut l = Limits::default();
        l.set("--memory", "memory", "256M").unwrap();
        l.set("--pids", "pids", "64").unwrap();
        l.set("--cpu", "cpu", "0.5").unwrap();
        assert_eq!(
            settings(Controller::Memory, Version::V1, &l)[0],
            ("memory.limit_in_bytes", "268435456".to_string())
        );
        assert_eq!(
            settings(Controller::Pids, Version::V2, &l),
            [("pids.max", "65".to_string())]
        );
        assert_eq!(
            settings(Controller::Cpu, Version::V2, &l),
            [("cpu.max", "50000 100000".to_string())]
        );
        assert_eq!(cpu_quota(1), (1000, 1_000_000));
        assert_eq!(cpu_quota(2000), (200_000, 100_000));
    }

    #[test]
    fn counters_read_flat_keys() {
        assert_eq!(
            counter("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", "oom_kill"),
            3
        );
        assert_eq!(counter("max 12\n", "max"), 12);
        assert_eq!(counter("nr_periods 5\nnr_throttled x\n", "nr_throttled"), 0);
        assert_eq!(counter("", "max"), 0);
    }
}
