//! Calls that act on another process by pid: `prlimit64`, the `sched_set*`
//! family, `setpriority`, `ioprio_set`, `migrate_pages` and `move_pages`.
//!
//! Landlock scopes signals to the sandbox but none of these, so a workload
//! could lower a host process's limits (`RLIMIT_CPU` 0 kills it, the
//! reaper included, which would let the workload tree outlive the
//! sandbox), starve it of CPU or I/O, or move its memory. The filter traps
//! them only when they name a process other than the caller; this module
//! lets one through only when its target is a process of the sandbox (a
//! descendant of the reaper, where every orphan of the tree lands), and
//! refuses a whole process group or user.
//!
//! Owns that membership test. The target is a register, so CONTINUE
//! cannot be raced through memory; the one window left is a target that
//! dies and whose pid a new host process takes before the kernel runs the
//! call.

use std::io;

use super::net::report;
use super::notif::{Notif, Reply};
use super::Supervisor;
use crate::audit::Verdict;

/// True for the calls this module answers.
pub(super) fn is_others(nr: i64) -> bool {
    matches!(
        nr,
        libc::SYS_prlimit64
            | libc::SYS_sched_setaffinity
            | libc::SYS_sched_setscheduler
            | libc::SYS_sched_setparam
            | libc::SYS_sched_setattr
            | libc::SYS_migrate_pages
            | libc::SYS_move_pages
            | libc::SYS_setpriority
            | libc::SYS_ioprio_set
    )
}

/// What a trapped call targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The caller itself.
    Caller,
    /// The process or thread with this id.
    Task(i32),
    /// A process group or a user: never let through.
    Many,
}

fn syscall_name(nr: i64) -> &'static str {
    match nr {
        libc::SYS_prlimit64 => "prlimit64",
        libc::SYS_sched_setaffinity => "sched_setaffinity",
        libc::SYS_sched_setscheduler => "sched_setscheduler",
        libc::SYS_sched_setparam => "sched_setparam",
        libc::SYS_sched_setattr => "sched_setattr",
        libc::SYS_migrate_pages => "migrate_pages",
        libc::SYS_move_pages => "move_pages",
        libc::SYS_setpriority => "setpriority",
        _ => "ioprio_set",
    }
}

/// The target of `nr` with `args`, as the kernel reads it (ints).
fn target(nr: i64, args: &[u64; 6]) -> Target {
    let int = |i: usize| args[i] as u32 as i32;
    const PRIO_PROCESS: i32 = 0;
    const IOPRIO_WHO_PROCESS: i32 = 1;
    let (pid, single) = match nr {
        libc::SYS_setpriority => (int(1), int(0) == PRIO_PROCESS),
        libc::SYS_ioprio_set => (int(1), int(0) == IOPRIO_WHO_PROCESS),
        _ => (int(0), true),
    };
    match (single, pid) {
        (false, _) => Target::Many,
        (true, 0) => Target::Caller,
        (true, pid) => Target::Task(pid),
    }
}

/// Answers a trapped call on another process.
pub(super) fn handle(sup: &Supervisor, n: &Notif) -> Reply {
    let args = std::array::from_fn(|i| n.arg(i));
    let syscall = syscall_name(n.nr());
    let why = match target(n.nr(), &args) {
        Target::Caller => return Reply::Continue,
        // In a pid namespace of the sandbox's own, the kernel reads the
        // pid there: it can name no process but the sandbox's.
        Target::Task(_) if sup.own_pid_ns => return Reply::Continue,
        Target::Task(pid) if in_sandbox(pid, sup.reaper).unwrap_or(false) => {
            return Reply::Continue
        }
        Target::Task(pid) if pid < 0 => return Reply::Errno(libc::EINVAL),
        Target::Task(pid) => (format!("pid {pid}"), "only processes of the sandbox"),
        Target::Many => (
            "a process group or user".to_string(),
            "a process group or a user reaches past the sandbox",
        ),
    };
    report(sup, n, syscall, &why.0, Verdict::Deny, why.1);
    Reply::Errno(libc::EPERM)
}

/// The `Tgid` and `PPid` of task `tid`, from `/proc/<tid>/status`.
fn tgid_and_parent(tid: i32) -> io::Result<(i32, i32)> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))
    };
    Ok((field("Tgid:")?, field("PPid:")?))
}

/// True when task `tid` belongs to a process that descends from the
/// reaper (the reaper itself is the supervisor's, not the sandbox's).
fn in_sandbox(tid: i32, reaper: i32) -> io::Result<bool> {
    let (mut pid, _) = tgid_and_parent(tid)?;
    // A process tree is far shallower; the bound only guards a loop.
    for _ in 0..4096 {
        let (_, parent) = tgid_and_parent(pid)?;
        if parent == reaper {
            return Ok(true);
        }
        if parent <= 1 {
            return Ok(false);
        }
        pid = parent;
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_as_the_kernel_reads_them() {
        let args = |a: u64, b: u64| [a, b, 0, 0, 0, 0];
        assert_eq!(target(libc::SYS_prlimit64, &args(0, 9)), Target::Caller);
        assert_eq!(
            target(libc::SYS_prlimit64, &args(0xdead_0000_0000_0000, 9)),
            Target::Caller
        );
        assert_eq!(target(libc::SYS_prlimit64, &args(42, 0)), Target::Task(42));
        assert_eq!(target(libc::SYS_setpriority, &args(0, 0)), Target::Caller);
        assert_eq!(target(libc::SYS_setpriority, &args(0, 7)), Target::Task(7));
        assert_eq!(target(libc::SYS_setpriority, &args(1, 0)), Target::Many);
        assert_eq!(target(libc::SYS_setpriority, &args(2, 0)), Target::Many);
        assert_eq!(target(libc::SYS_ioprio_set, &args(1, 5)), Target::Task(5));
        assert_eq!(target(libc::SYS_ioprio_set, &args(3, 0)), Target::Many);
    }

    #[test]
    fn membership_follows_the_parent_chain() {
        let me = std::process::id() as i32;
        let (_, parent) = tgid_and_parent(me).expect("own status");
        assert!(in_sandbox(me, parent).expect("walk"));
        assert!(
            !in_sandbox(me, me).expect("walk"),
            "a process is not its own descendant"
        );
        assert!(!in_sandbox(1, parent).expect("walk"));
    }
}
