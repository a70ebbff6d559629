//! The reaper: a process between the supervisor and the
//! workload. It is a child subreaper, so every orphan of the workload tree
//! lands on it; when the workload's main process exits, or the supervisor
//! dies (even by SIGKILL, seen through PDEATHSIG), it kills every remaining
//! descendant, removes the private temp dir, reports, and exits.
//!
//! It is a fork of the supervisor and does not allocate: everything it
//! needs was allocated before the fork (`Forked`).

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{getpid, Pid};

use super::{child, ns, rmtree, Forked, Report, Stage};

/// The signal the kernel sends the reaper when the supervisor dies.
const PARENT_DIED: Signal = Signal::SIGUSR1;

pub(super) fn run(mut forked: Forked, own_ns: bool, supervisor: Pid, report: OwnedFd) -> ! {
    // Block everything catchable: the reaper must survive the terminal's
    // SIGINT/SIGHUP, and takes SIGCHLD and PARENT_DIED synchronously.
    let all = SigSet::all();
    let _ = all.thread_block();
    // SAFETY: prctl with integer arguments, and a static C string for
    // the name: the fork took the notify thread's, but `ps` should show
    // the sandbox's process as sandlock's.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, PARENT_DIED as libc::c_ulong);
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
        libc::prctl(libc::PR_SET_NAME, c"sandlock".as_ptr());
    }
    let gone = || ns::parent_gone(supervisor.as_raw(), report.as_raw_fd());
    if gone() {
        Report::SetupFailed(Stage::Parent, 0).send(report.as_raw_fd());
        cleanup_and_exit(&mut forked, 0);
    }
    if own_ns {
        ns::settle_reaper(&forked.plan);
    }
    // The reaper is a copy of the supervisor's memory (secret values
    // included) and shows in the workload's /proc as pid 1. The kernel
    // keeps its memory, environment and fds from the workload because
    // the reaper holds capabilities the workload has not (commoncap's
    // ptrace check: a tracer needs a superset of the target's permitted
    // set, or CAP_SYS_PTRACE over it). Making the reaper non-dumpable
    // instead would also shut out an unprivileged supervisor's
    // pidfd_getfd of the seccomp listener.
    // The workload's stdio, when the caller gave some: the reaper's own
    // 0, 1 and 2 become them, and the workload inherits those.
    for (target, fd) in forked.prepared.stdio.iter().enumerate() {
        if let Some(fd) = fd {
            // SAFETY: dup2 on integers of our own fd table.
            if unsafe { libc::dup2(fd.as_raw_fd(), target as i32) } < 0 {
                Report::SetupFailed(Stage::Stdio, nix::errno::Errno::last_raw())
                    .send(report.as_raw_fd());
                cleanup_and_exit(&mut forked, 0);
            }
        }
    }
    // The sandbox's cgroups, joined before the workload exists: every
    // process of the tree is born in them. `0` is the writer itself.
    for fd in &forked.prepared.cgroup_procs {
        // SAFETY: writes one byte of a static string to our own fd.
        if unsafe { libc::write(fd.as_raw_fd(), c"0".as_ptr().cast(), 1) } != 1 {
            Report::SetupFailed(Stage::Limits, nix::errno::Errno::last_raw())
                .send(report.as_raw_fd());
            cleanup_and_exit(&mut forked, 0);
        }
    }
    let me = getpid();
    // The workload shares the reaper's fd table until its execve, so the
    // seccomp listener it creates stays in the reaper's table after exec
    // has closed the workload's copy (the listener is close-on-exec). The
    // supervisor takes it from here with pidfd_getfd, and the workload
    // never waits for that hand-over. It also shares the reaper's memory
    // until exec (vfork semantics), which spares copying the page tables.
    let launch = child::Launch {
        prepared: &forked.prepared,
        reaper: me,
        report: report.as_raw_fd(),
        argv: &forked.argv,
        envp: &forked.envp,
    };
    let pid = match super::stack::ChildStack::new() {
        // SAFETY: `entry` runs on its own stack and only reads `launch`,
        // which lives until this call returns; CLONE_VFORK keeps the reaper
        // suspended until the child has exec'd or exited.
        Ok(stack) => unsafe {
            libc::clone(
                child::entry,
                stack.top(),
                libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_FILES | libc::SIGCHLD,
                &launch as *const child::Launch<'_> as *mut libc::c_void,
            )
        },
        Err(_) => -1,
    };
    let workload = match pid {
        p if p > 0 => Pid::from_raw(p),
        _ => {
            Report::SetupFailed(Stage::Stdio, nix::errno::Errno::last_raw())
                .send(report.as_raw_fd());
            cleanup_and_exit(&mut forked, 0);
        }
    };
    // The workload is our unreaped child, so this pidfd names it and no
    // other process; the reaper keeps it open for the supervisor to take.
    let pidfd = crate::sys::pidfd_open(workload.as_raw())
        .map(std::os::fd::IntoRawFd::into_raw_fd)
        .unwrap_or(-1);
    Report::Pid(workload.as_raw(), pidfd).send(report.as_raw_fd());

    let mut waitset = SigSet::empty();
    waitset.add(Signal::SIGCHLD);
    waitset.add(PARENT_DIED);
    loop {
        if let Some(status) = reap(workload) {
            kill_tree();
            // The supervisor removes the temp dir once it reads this (it
            // owns the run's last step); the reaper only cleans up when
            // the supervisor is gone.
            Report::Exited(status).send(report.as_raw_fd());
            exit(0);
        }
        if gone() {
            kill_tree();
            cleanup_and_exit(&mut forked, 0);
        }
        // PARENT_DIED is also how the supervisor aborts a failed launch.
        if waitset.wait() == Ok(PARENT_DIED) {
            kill_tree();
            cleanup_and_exit(&mut forked, 0);
        }
    }
}

/// Reaps every exited child; returns the workload's raw status once it
/// has exited.
fn reap(workload: Pid) -> Option<i32> {
    let mut found = None;
    loop {
        let mut raw = 0;
        // SAFETY: waitpid writes the status into our local.
        let pid = unsafe { libc::waitpid(-1, &mut raw, libc::WNOHANG) };
        if pid <= 0 {
            return found;
        }
        if pid == workload.as_raw() {
            found = Some(raw);
        }
    }
}

/// Kills every descendant. Orphans of killed processes are re-parented to
/// the reaper (a subreaper), so repeating until no child remains reaches
/// the whole tree, however deep and however it double-forked.
fn kill_tree() {
    loop {
        // The common case, a workload that left nothing behind, ends here
        // without reading procfs.
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Err(nix::errno::Errno::ECHILD) => return,
            Ok(WaitStatus::StillAlive) => {}
            _ => continue,
        }
        for_each_child(|pid| {
            // SAFETY: signalling our own child by pid; it cannot be reused
            // before we reap it.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        });
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Err(nix::errno::Errno::ECHILD) => return,
            Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(1)),
            _ => {}
        }
    }
}

/// Calls `f` with each pid in /proc/thread-self/children, read into a
/// stack buffer and parsed in place (no allocation).
fn for_each_child(mut f: impl FnMut(i32)) {
    // SAFETY: a constant C string; the fd is closed below.
    let fd = unsafe {
        libc::open(
            c"/proc/thread-self/children".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return;
    }
    let mut buf = [0u8; 4096];
    let mut pid: i32 = 0;
    let mut in_number = false;
    loop {
        // SAFETY: reading into our stack buffer.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        for &b in &buf[..n as usize] {
            if b.is_ascii_digit() {
                pid = pid.saturating_mul(10).saturating_add((b - b'0') as i32);
                in_number = true;
            } else if in_number {
                f(pid);
                pid = 0;
                in_number = false;
            }
        }
    }
    if in_number {
        f(pid);
    }
    // SAFETY: closing the fd opened above.
    unsafe { libc::close(fd) };
}

fn cleanup(forked: &mut Forked) {
    rmtree::remove_tree(&forked.tmpdir, &mut forked.scratch);
}

fn cleanup_and_exit(forked: &mut Forked, code: i32) -> ! {
    cleanup(forked);
    exit(code)
}

fn exit(code: i32) -> ! {
    // SAFETY: _exit never returns and skips atexit handlers and buffered
    // stdio inherited from the supervisor, which are not ours to flush.
    unsafe { libc::_exit(code) }
}
