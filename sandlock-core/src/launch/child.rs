//! The workload's last steps before exec, in the order that keeps every
//! window closed: die with the reaper, drop capabilities, wait until the
//! supervisor has finished the ruleset, no_new_privs, Landlock, seccomp,
//! report the listener, mark every stray fd
//! close-on-exec, exec. A failing step exits 125 after reporting; nothing
//! runs unconfined.
//!
//! This code runs in a `CLONE_VM | CLONE_VFORK` child of the reaper: it
//! shares the reaper's memory (the reaper is suspended until exec), so it
//! must not allocate, free, or return. Everything it needs was prepared
//! by the reaper in [`Launch`].

use std::os::fd::{AsRawFd, RawFd};

use nix::unistd::Pid;

use super::{errno, Prepared, Report, Stage};

/// What the child reads, prepared by the reaper before the clone.
pub(super) struct Launch<'a> {
    pub prepared: &'a Prepared,
    pub reaper: Pid,
    pub report: RawFd,
    /// NULL-terminated argv and envp pointer arrays into `prepared`.
    pub argv: &'a [*const libc::c_char],
    pub envp: &'a [*const libc::c_char],
}

/// The clone entry point. `arg` points to a [`Launch`].
pub(super) extern "C" fn entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: the reaper passes a pointer to a Launch that outlives the
    // child's use of it (the reaper is suspended until exec or exit).
    let launch = unsafe { &*(arg as *const Launch<'_>) };
    run(launch)
}

fn run(l: &Launch<'_>) -> ! {
    let p = l.prepared;
    let (rep, reaper) = (l.report, l.reaper);
    let fail = |stage: Stage, errno: i32| -> ! {
        Report::SetupFailed(stage, errno).send(rep);
        // SAFETY: terminate without running inherited atexit handlers.
        unsafe { libc::_exit(125) }
    };
    // SAFETY: prctl/getppid take integers.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
        if libc::getppid() != reaper.as_raw() {
            fail(Stage::Parent, 0);
        }
    }
    restore_signals();
    if let Some(cwd) = &p.cwd {
        // SAFETY: cwd is a valid C string.
        if unsafe { libc::chdir(cwd.as_ptr()) } != 0 {
            fail(Stage::Cwd, errno());
        }
    }
    if p.drop_caps {
        private_ipc();
        if let Err(e) = drop_capabilities() {
            fail(Stage::Caps, e);
        }
    }
    // The supervisor finishes the ruleset while this process starts; wait
    // for it before enforcing. EOF means it failed or died: never go on.
    let mut byte = 0u8;
    // SAFETY: reads one byte into a local.
    if unsafe { libc::read(p.rules_ready.as_raw_fd(), (&mut byte as *mut u8).cast(), 1) } != 1 {
        fail(Stage::Landlock, libc::ECANCELED);
    }
    let Some(ready) = super::Ready::from_byte(byte) else {
        fail(Stage::Landlock, libc::EPROTO);
    };
    // The overlays of --cow were mounted after this process entered its
    // cwd: enter it again, so that it is the overlay and not the host's
    // directory underneath.
    if let (Some(cwd), false) = (&p.cwd, p.mounts.overlays.is_empty()) {
        // SAFETY: cwd is a valid C string.
        if unsafe { libc::chdir(cwd.as_ptr()) } != 0 {
            fail(Stage::Cwd, errno());
        }
    }
    // The supervisor mounted the workload's own /proc (see `ns`), which
    // only the workload itself can name for its rule.
    if ready.proc {
        if let Err(e) = super::ns::grant_proc(p.ruleset.as_raw_fd(), p.proc_access) {
            fail(Stage::Namespaces, e);
        }
    }
    // The same for the sandbox's /etc/hosts, bound in the namespace.
    if ready.hosts {
        if let Err(e) = super::hosts::grant(p.ruleset.as_raw_fd()) {
            fail(Stage::Namespaces, e);
        }
    }
    // SAFETY: integer prctl.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        fail(Stage::Landlock, errno());
    }
    // SAFETY: integer syscall on the ruleset fd prepared before fork.
    if unsafe {
        libc::syscall(
            libc::SYS_landlock_restrict_self,
            p.ruleset.as_raw_fd(),
            0u32,
        )
    } != 0
    {
        fail(Stage::Landlock, errno());
    }
    // /etc/hosts bound in the namespace: no open needs to trap for it.
    let bpf = match (ready.hosts, &p.bpf_hosts_bound) {
        (false, _) => &p.bpf,
        (true, Some(light)) => light,
        (true, None) => fail(Stage::Seccomp, libc::EPROTO),
    };
    let listener = install_filter(bpf).unwrap_or_else(|e| fail(Stage::Seccomp, e));
    // The listener is close-on-exec; the reaper's table (shared until
    // exec) keeps it for the supervisor.
    Report::NotifyFd(listener).send(rep);
    close_strays_on_exec();
    // The limits last: this process shares the reaper's fd table, which
    // holds whatever the supervisor had open when it forked (a library's
    // caller may hold dozens). Set earlier, an `--open-files` limit below
    // that count would make the opens above fail with EMFILE; the exec
    // closes those inherited fds, so the workload starts within it.
    for &(resource, value) in &p.rlimits {
        let lim = libc::rlimit {
            rlim_cur: value,
            rlim_max: value,
        };
        // SAFETY: setrlimit reads one rlimit from the stack.
        if unsafe { libc::setrlimit(resource, &lim) } != 0 {
            fail(Stage::Limits, errno());
        }
    }
    let (argv, envp) = (l.argv, l.envp);
    // SAFETY: all three pointers are NULL-terminated arrays of valid C
    // strings that live until execve replaces this image.
    unsafe { libc::execve(p.exec_path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    let e = errno();
    Report::ExecFailed(e).send(rep);
    // SAFETY: as above.
    unsafe {
        libc::_exit(if e == libc::ENOENT || e == libc::ENOTDIR {
            127
        } else {
            126
        })
    }
}

/// A NULL-terminated array of pointers to `v`'s strings.
pub(super) fn ptrs(v: &[std::ffi::CString]) -> Vec<*const libc::c_char> {
    v.iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// Unblocks every signal and restores SIGPIPE (ignored by the Rust
/// runtime) and SIGXFSZ/SIGXFZ (ignored by CPython, which embeds the
/// library), which exec would otherwise keep ignored.
fn restore_signals() {
    // SAFETY: sigset manipulation on a local and signal() with SIG_DFL.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::signal(libc::SIGXFSZ, libc::SIG_DFL);
    }
}

/// Gives a workload started as root its own System V IPC and POSIX
/// message-queue namespace: Landlock governs neither, and root owns the
/// host's private segments, queues and semaphores, which DAC would then
/// hand it. Needs CAP_SYS_ADMIN, still held here; without it (root in a
/// container) the host's objects stay behind their modes, as for any
/// other user. An ordinary user's workload meets the same file modes as
/// the user.
fn private_ipc() {
    // SAFETY: geteuid has no failure mode; unshare takes an integer.
    unsafe {
        if libc::geteuid() == 0 {
            libc::unshare(libc::CLONE_NEWIPC);
        }
    }
}

/// Empties every capability set: the bounding set cap by cap (only
/// possible with CAP_SETPCAP; without it nothing can be regained anyway,
/// since no_new_privs follows), ambient, then effective, permitted and
/// inheritable in one capset. Raw calls, no allocation.
fn drop_capabilities() -> Result<(), i32> {
    // SAFETY: prctl with integer arguments only.
    unsafe {
        for cap in 0..64 {
            // EINVAL: past the last capability this kernel knows; EPERM:
            // no CAP_SETPCAP, so there is nothing to drop from.
            if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 {
                break;
            }
        }
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        );
    }
    // Async-signal-safe: one raw capset of zeroed sets.
    crate::sys::creds::clear_all().map_err(|e| e.raw_os_error().unwrap_or(libc::EPERM))
}

fn install_filter(bpf: &[libc::sock_filter]) -> Result<i32, i32> {
    let prog = libc::sock_fprog {
        len: bpf.len() as u16,
        filter: bpf.as_ptr() as *mut _,
    };
    let base = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
    // WAIT_KILLABLE_RECV (5.19): once the supervisor has taken a
    // notification, only a fatal signal interrupts the wait, so an action
    // done on the workload's behalf is never replayed by a restarted call.
    for flags in [base | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, base] {
        // SAFETY: `prog` points at `bpf`, alive for the call.
        let r = unsafe { crate::sys::seccomp_set_filter(flags, &prog) };
        if r >= 0 {
            return Ok(r as i32);
        }
        if errno() != libc::EINVAL {
            break;
        }
    }
    Err(errno())
}

/// Marks every fd above stderr close-on-exec, so nothing sandlock (or
/// sandlock's own parent) had open leaks into the workload. Marking rather
/// than closing leaves the reaper's shared table intact.
fn close_strays_on_exec() {
    const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    // SAFETY: close_range on an integer range of our own fd table.
    let r = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if r != 0 {
        // Linux < 5.11: mark them one by one.
        for fd in 3..1024 {
            // SAFETY: fcntl on integers; unused numbers fail with EBADF.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
}
