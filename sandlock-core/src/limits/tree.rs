//! The sandbox's process tree as the supervisor sees it from the host's
//! /proc: the reaper's descendants, what they use (anonymous memory and
//! swap, CPU time), and signals to all of them.
//!
//! Must never signal a process outside the sandbox: a pid read from
//! /proc may be reused by the time it is signalled, so each one is
//! pinned with a pidfd first and signalled only if that process is a
//! member of the sandbox's own pid namespace.

use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use crate::sys;

/// The tree below one reaper, pid 1 of a pid namespace of its own.
#[derive(Debug)]
pub struct Tree {
    reaper: i32,
    /// (device, inode) of the sandbox's pid namespace.
    ns: (u64, u64),
}

impl Tree {
    /// The tree of `reaper` (a host pid), which must be in a pid
    /// namespace of its own.
    pub fn new(reaper: i32) -> io::Result<Tree> {
        let ns = ns_of(reaper)?;
        let own = fs::metadata("/proc/self/ns/pid")?;
        if ns == (own.dev(), own.ino()) {
            // Every host process would pass the membership check.
            return Err(io::Error::other(
                "the sandbox has no pid namespace of its own",
            ));
        }
        Ok(Tree { reaper, ns })
    }

    /// Host pids of every process below the reaper, parents first.
    pub fn members(&self) -> Vec<i32> {
        let mut out = Vec::new();
        let mut queue = vec![self.reaper];
        while let Some(pid) = queue.pop() {
            for child in children(pid) {
                // A cycle cannot happen between live processes, but pids
                // are read at different moments: never loop.
                if child != self.reaper && !out.contains(&child) && out.len() < 1 << 16 {
                    out.push(child);
                    queue.push(child);
                }
            }
        }
        out
    }

    /// Sends `sig` to every member that still is one; the pidfds of the
    /// processes signalled (to signal exactly them again).
    pub fn signal_all(&self, sig: i32) -> Vec<OwnedFd> {
        self.members()
            .into_iter()
            .filter_map(|pid| {
                let fd = sys::pidfd_open(pid).ok()?;
                // Opened first, checked second: if `pid` was reused before
                // the open, the process found is not in our namespace.
                (ns_of(pid).ok()? == self.ns).then_some(())?;
                sys::pidfd_send_signal(fd.as_fd(), sig).ok()?;
                Some(fd)
            })
            .collect()
    }

    /// Anonymous memory plus swap of the tree, in bytes: what it holds
    /// that the kernel cannot drop (shared file pages are not counted).
    pub fn memory(&self) -> u64 {
        self.members()
            .into_iter()
            .map(|pid| {
                fs::read_to_string(format!("/proc/{pid}/status"))
                    .map(|s| status_memory(&s))
                    .unwrap_or(0)
            })
            .fold(0u64, u64::saturating_add)
    }

    /// CPU time used by the tree so far, in clock ticks: every live
    /// member's, and what ended processes left to their parents (the
    /// reaper collects the orphans').
    pub fn cpu_ticks(&self) -> u64 {
        std::iter::once(self.reaper)
            .chain(self.members())
            .map(|pid| {
                fs::read_to_string(format!("/proc/{pid}/stat"))
                    .ok()
                    .and_then(|s| stat_ticks(&s))
                    .unwrap_or(0)
            })
            .fold(0u64, u64::saturating_add)
    }
}

fn ns_of(pid: i32) -> io::Result<(u64, u64)> {
    let m = fs::metadata(format!("/proc/{pid}/ns/pid"))?;
    Ok((m.dev(), m.ino()))
}

/// Children of every thread of `pid`.
fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in tasks.flatten() {
        let path = t.path().join("children");
        if let Ok(text) = fs::read_to_string(path) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    out
}

/// `RssAnon` + `RssShmem` + `VmSwap` of a `/proc/PID/status`, in bytes.
fn status_memory(status: &str) -> u64 {
    status
        .lines()
        .filter_map(|l| {
            let (key, rest) = l.split_once(':')?;
            ["RssAnon", "RssShmem", "VmSwap"]
                .contains(&key)
                .then_some(())?;
            let kb: u64 = rest.trim().strip_suffix("kB")?.trim().parse().ok()?;
            Some(kb.saturating_mul(1024))
        })
        .fold(0u64, u64::saturating_add)
}

/// utime + stime + cutime + cstime of a `/proc/PID/stat` line, in clock
/// ticks. A child's time moves to its parent's cutime/cstime only once it
/// is reaped, when it has left the tree: nothing counts twice.
fn stat_ticks(stat: &str) -> Option<u64> {
    let rest = stat.get(stat.rfind(')')?.checked_add(2)?..)?;
    // Field 3 is `rest`'s first; utime is field 14.
    rest.split(' ')
        .skip(11)
        .take(4)
        .map(|v| v.parse::<i64>().ok().map(|n| n.max(0) as u64))
        .try_fold((0u64, 0usize), |(acc, n), v| {
            Some((acc.checked_add(v?)?, n + 1))
        })
        .and_then(|(sum, n)| (n == 4).then_some(sum))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_memory_counts_anon_shmem_and_swap() {
        let s = "Name:\tx\nVmRSS:\t 900 kB\nRssAnon:\t 100 kB\nRssFile:\t 700 kB\nRssShmem:\t 20 kB\nVmSwap:\t 3 kB\n";
        assert_eq!(status_memory(s), 123 * 1024);
        // hostile values: overflow saturates, junk is skipped
        let s = "RssAnon:\t18446744073709551615 kB\nVmSwap:\t 9 kB\nRssShmem: x kB\n";
        assert_eq!(status_memory(s), u64::MAX);
        assert_eq!(status_memory(""), 0);
    }

    #[test]
    fn stat_ticks_sum_fields_14_to_17() {
        let tail: Vec<String> = (3..=52).map(|i| i.to_string()).collect();
        let line = format!("7 (a) b) {}", tail.join(" "));
        assert_eq!(stat_ticks(&line), Some(14 + 15 + 16 + 17));
        let neg = line.replace(" 16 ", " -16 ");
        assert_eq!(stat_ticks(&neg), Some(14 + 15 + 17));
        assert_eq!(stat_ticks("7 (x) 1 2"), None);
        assert_eq!(stat_ticks("no paren"), None);
    }

    #[test]
    fn a_tree_lists_only_descendants() {
        // This test process is no pid-namespace root, but the walk is the
        // same: a child of ours is a member; we are not.
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let me = std::process::id() as i32;
        let tree = Tree {
            reaper: me,
            ns: ns_of(me).unwrap(),
        };
        assert!(tree.members().contains(&(child.id() as i32)));
        assert!(!tree.members().contains(&me));
        assert!(tree.cpu_ticks() < u64::MAX);
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
