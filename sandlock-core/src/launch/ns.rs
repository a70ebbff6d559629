//! The workload's own /proc: the reaper starts in fresh pid and mount
//! namespaces (and a user namespace when sandlock is not root, which the
//! other two need) and becomes pid 1 there; the supervisor maps the user
//! namespace's ids and a helper it forks joins the namespaces and mounts
//! a procfs of that pid namespace on `/proc` (the reaper cannot mount:
//! see [`make_proc`]). The workload then sees its own processes and the
//! reaper, and the host-wide files programs read (cpuinfo, meminfo,
//! `sys/...`); never a host process. Entries that tell about the kernel
//! rather than the sandbox (kcore, kallsyms, keys, kmsg, sysrq-trigger,
//! ...) are covered with an empty file or directory (see `procfs`).
//! Landlock grants the new /proc read-only (no execute), added by the
//! workload itself after the mount: a rule made earlier would name the
//! host's procfs.
//!
//! Where the kernel refuses the namespaces (no unprivileged user
//! namespaces, or a container whose /proc is partly masked), the reaper
//! starts as before and the workload has no /proc at all: still confined,
//! less useful. `sandlock check` says which one this machine gets.
//!
//! Must never mount anything that the host's mount namespace could see:
//! every mount is made after the new namespace's mounts became slaves.
//! The reaper's and the helper's parts run after a fork of a
//! multi-threaded process, so they only make raw syscalls on data
//! prepared before it.

use std::os::fd::RawFd;

use super::errno;
use super::procfs::{cover, mount_proc};
use super::stack::ChildStack;

/// What the reaper is to set up, decided and formatted before the fork.
#[derive(Debug, Clone)]
pub struct Plan {
    /// A user namespace too (sandlock is not root): the workload keeps its
    /// own uid and gid, mapped onto themselves.
    user: bool,
    /// New namespaces and a fresh /proc (the system view has one, unless
    /// a grant gives the host's).
    proc: bool,
    /// New namespaces and these mounts (`--disk`, `--cow`).
    mounts: super::mounts::Mounts,
    /// The sandbox's `/etc/hosts`, bound in the namespace when there is
    /// one (with a /proc of its own: the table is staged on `/proc`).
    hosts: Option<super::hosts::HostsFile>,
    uid_map: Line,
    gid_map: Line,
    /// Where the process's command line lies in memory (`arg_start`,
    /// `arg_end` of `/proc/self/stat`): the reaper, pid 1 in the
    /// workload's /proc, overwrites its copy so that its `cmdline` shows
    /// `sandlock` and not the host's command line.
    argv: Option<(usize, usize)>,
}

/// A short line of text in a fixed buffer (no allocation after fork).
#[derive(Debug, Clone)]
struct Line {
    buf: [u8; 32],
    len: usize,
}

impl Line {
    /// `"ID ID 1\n"`: the id mapped onto itself, one wide.
    fn identity(id: u32) -> Line {
        let text = format!("{id} {id} 1\n");
        let mut buf = [0u8; 32];
        let len = text.len().min(buf.len());
        buf[..len].copy_from_slice(&text.as_bytes()[..len]);
        Line { buf, len }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Plan {
    /// The plan for this process: a user namespace unless it may mount
    /// without one ([`crate::sys::creds::can_mount`]);
    /// `proc` when the workload is to get a /proc of its own, `mounts`
    /// to make in its mount namespace (with neither, it shares the host's
    /// pid and mount namespaces).
    pub fn new(
        proc: bool,
        mounts: super::mounts::Mounts,
        hosts: Option<super::hosts::HostsFile>,
    ) -> Plan {
        // SAFETY: getters with no failure mode.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        Plan {
            user: !crate::sys::creds::can_mount(),
            proc,
            mounts,
            hosts: hosts.filter(|_| proc),
            uid_map: Line::identity(uid),
            gid_map: Line::identity(gid),
            argv: std::fs::read_to_string("/proc/self/stat")
                .ok()
                .and_then(|s| argv_area(&s)),
        }
    }

    /// True when the reaper is to start in namespaces of its own.
    pub fn namespaces(&self) -> bool {
        self.proc || self.mounts.any()
    }

    /// True when the helper binds the sandbox's `/etc/hosts` (in
    /// namespaces of the workload's own).
    pub fn binds_hosts(&self) -> bool {
        self.hosts.is_some()
    }

    fn clone_flags(&self) -> libc::c_ulong {
        let mut flags = libc::CLONE_NEWPID | libc::CLONE_NEWNS;
        if self.user {
            flags |= libc::CLONE_NEWUSER;
        }
        flags as libc::c_ulong
    }
}

/// `arg_start` and `arg_end` (fields 48 and 49) of a `/proc/PID/stat`
/// line, when they make a sane range.
fn argv_area(stat: &str) -> Option<(usize, usize)> {
    // Fields after the command name, which may hold spaces and ')', start
    // with field 3.
    let rest = stat.get(stat.rfind(')')?.checked_add(1)?..)?;
    let mut fields = rest.split_whitespace().skip(45);
    let start: usize = fields.next()?.parse().ok()?;
    let end: usize = fields.next()?.parse().ok()?;
    (start != 0 && end > start && end - start <= 1 << 20).then_some((start, end))
}

/// Overwrites the reaper's copy of the command line with `sandlock`.
fn scrub_cmdline(area: Option<(usize, usize)>) {
    const NAME: &[u8] = b"sandlock\0";
    let Some((start, end)) = area else {
        return;
    };
    let len = end.saturating_sub(start);
    if len < NAME.len() {
        return;
    }
    // SAFETY: [start, end) is this process's own argument area (read from
    // /proc/self/stat before the fork, so the same addresses in this
    // copy), writable stack memory that nothing in the reaper reads.
    unsafe {
        std::ptr::write_bytes(start as *mut u8, 0, len);
        std::ptr::copy_nonoverlapping(NAME.as_ptr(), start as *mut u8, NAME.len());
    }
}

/// How a fork went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// In the child; `true` when it is pid 1 of new namespaces.
    Child(bool),
    /// In the parent: the child's pid, and whether it has new namespaces.
    Parent(libc::pid_t, bool),
}

/// The raw clone into `plan`'s namespaces: 0 in the child, its pid in
/// the parent, -1 when the kernel refuses.
///
/// # Safety
///
/// As `fork`.
unsafe fn clone_into(plan: &Plan) -> libc::c_long {
    // SAFETY: clone with a NULL stack is fork with namespace flags; the
    // caller keeps the child to async-signal-safe calls.
    unsafe {
        libc::syscall(
            libc::SYS_clone,
            plan.clone_flags() | libc::SIGCHLD as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    }
}

/// Forks, into new namespaces when the kernel allows it, else plainly.
///
/// # Safety
///
/// As `fork`: in a multi-threaded program the child may only make
/// async-signal-safe calls.
pub unsafe fn fork(plan: &Plan) -> std::io::Result<Forked> {
    let r = if plan.namespaces() {
        // SAFETY: as the caller promises for `fork`.
        unsafe { clone_into(plan) }
    } else {
        -1
    };
    match r {
        0 => return Ok(Forked::Child(true)),
        r if r > 0 => return Ok(Forked::Parent(r as libc::pid_t, true)),
        _ => {}
    }
    if plan.mounts.any() {
        // The private tmpfs (--disk), the overlays (--cow) and what the
        // container runtime conceals exist only in a mount namespace of
        // the workload's own: without one, fail rather than run without.
        return Err(std::io::Error::other(format!(
            "the kernel refused the namespaces that --disk, --cow or the container runtime's \
             mounts need: {}",
            std::io::Error::last_os_error()
        )));
    }
    // No namespaces here (unprivileged user namespaces off, a container
    // without CAP_SYS_ADMIN, out of namespaces): fork as before.
    // SAFETY: as above.
    match unsafe { libc::fork() } {
        0 => Ok(Forked::Child(false)),
        r if r > 0 => Ok(Forked::Parent(r, false)),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// In the reaper, pid 1 of its new namespaces: its command line, which
/// the workload's /proc shows as pid 1's, becomes `sandlock`.
pub fn settle_reaper(plan: &Plan) {
    scrub_cmdline(plan.argv);
}

/// Maps the ids of the user namespace `pid` (a process in it) owns, when
/// there is one: the supervisor's own uid and gid onto themselves.
fn map_ids(pid: libc::pid_t, plan: &Plan) -> std::io::Result<()> {
    if !plan.user {
        return Ok(());
    }
    let write = |name: &str, data: &[u8]| std::fs::write(format!("/proc/{pid}/{name}"), data);
    write("setgroups", b"deny")?;
    write("uid_map", plan.uid_map.bytes())?;
    write("gid_map", plan.gid_map.bytes())
}

/// Makes the workload's /proc, from the supervisor: maps the ids of the
/// reaper's user namespace, then a helper process joins the reaper's
/// namespaces (`setns` with its pidfd) and forks a child there, which
/// makes every mount a slave and mounts the fresh procfs. The reaper
/// cannot: it lives in the notify thread's Landlock domain (for the
/// abstract-socket scope), and a Landlock domain that handles any file
/// access may not mount. `Ok(true)`: the workload gets a /proc;
/// `Ok(false)`: the kernel refused the procfs (no /proc, still
/// confined); `Err`: the namespaces could not be made safe (stop).
pub fn make_proc(reaper: libc::pid_t, reaper_fd: RawFd, plan: &Plan) -> std::io::Result<bool> {
    map_ids(reaper, plan)?;
    let join = Join {
        reaper_fd,
        flags: plan.clone_flags() as libc::c_int,
        grandchild: ChildStack::new()?,
        plan,
    };
    let stack = ChildStack::new()?;
    // Handlers of the embedding program must not run in a child that
    // shares our memory (nor in a forked one): every signal stays blocked
    // until the helper is done, as posix_spawn does.
    let saved = block_signals();
    let helper = if plan.user {
        // The kernel lets a process enter a user namespace only when it
        // shares its memory with no other: a real fork.
        // SAFETY: the child only makes raw syscalls on our data and exits.
        match unsafe { libc::fork() } {
            // SAFETY: leave the helper without running anything else.
            0 => unsafe { libc::_exit(join.run()) },
            p => p,
        }
    } else {
        // SAFETY: `join_entry` runs on its own stack, reads `join`, which
        // lives until this call returns, and makes raw syscalls only;
        // CLONE_VFORK suspends this thread until the helper has exited.
        unsafe {
            libc::clone(
                join_entry,
                stack.top(),
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                &join as *const Join as *mut libc::c_void,
            )
        }
    };
    let code = if helper < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(wait_code(helper))
    };
    restore_signals(&saved);
    let code = code?;
    if !(0..=7).contains(&code) {
        // The helper died mid-way: its child may still run in our memory,
        // on that stack, until the reaper's end takes it down. Never
        // unmap it under that child.
        std::mem::forget(join);
    }
    match code {
        0 => Ok(true),
        1 => Ok(false),
        2 => Err(std::io::Error::other(
            "cannot make the namespace's mounts slaves",
        )),
        3 => Err(std::io::Error::other("cannot join the reaper's namespaces")),
        4 => Err(std::io::Error::other(
            "cannot mount the size-capped tmpfs for --disk over the private directory",
        )),
        5 => Err(std::io::Error::other(
            "cannot mount the copy-on-write layer (overlayfs) for --cow",
        )),
        6 => Err(std::io::Error::other(
            "cannot cover the container runtime's own directories in the sandbox",
        )),
        7 => Err(std::io::Error::other(
            "cannot bind the sandbox's /etc/hosts over the host's in its mount namespace",
        )),
        _ => Err(std::io::Error::other("the /proc helper died")),
    }
}

/// What the helper that mounts the workload's /proc needs: the reaper's
/// pidfd, the namespaces to join, the stack of the child it makes there,
/// and the plan (what to mount).
struct Join<'a> {
    reaper_fd: RawFd,
    flags: libc::c_int,
    grandchild: ChildStack,
    plan: &'a Plan,
}

impl Join<'_> {
    /// In the helper: joins the reaper's namespaces and makes a child
    /// there (pid N of the reaper's pid namespace) that shares the
    /// helper's memory and mounts the procfs; its exit code, 3 when the
    /// namespaces could not be joined or ended under its child.
    fn run(&self) -> libc::c_int {
        // SAFETY: setns with the reaper's pidfd and namespace flags.
        if unsafe { libc::setns(self.reaper_fd, self.flags) } != 0 {
            return 3;
        }
        // SAFETY: `mount_entry` runs on its own stack, reads the plan,
        // which outlives it, and makes raw syscalls only; CLONE_VFORK
        // suspends us until it has exited.
        let child = unsafe {
            libc::clone(
                mount_entry,
                self.grandchild.top(),
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                self.plan as *const Plan as *mut libc::c_void,
            )
        };
        if child < 0 {
            return 3;
        }
        match wait_code(child) {
            // Killed: the reaper, pid 1 of its namespace, ended under it.
            255 => 3,
            code => code,
        }
    }
}

/// Blocks every signal in this thread; the mask it had.
fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigfillset and pthread_sigmask
    // write only the locals given.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut saved: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut saved);
        saved
    }
}

/// Puts back the mask [`block_signals`] returned.
fn restore_signals(saved: &libc::sigset_t) {
    // SAFETY: sets this thread's mask from a valid set.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, saved, std::ptr::null_mut()) };
}

extern "C" fn join_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `make_proc` passes a pointer to a Join that outlives the
    // helper (CLONE_VFORK).
    let join = unsafe { &*(arg as *const Join<'_>) };
    join.run()
}

extern "C" fn mount_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `Join::run` passes a pointer to the plan, which outlives
    // this child (CLONE_VFORK).
    let plan = unsafe { &*(arg as *const Plan) };
    mount_in_namespace(plan)
}

/// The exit code of child `pid` (255 when it did not exit normally).
fn wait_code(pid: libc::pid_t) -> libc::c_int {
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child, writing its status to a local.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        // Anything but our child's status (EINTR aside) is not a success:
        // a status never written must not read as "exited 0".
        if r != -1 || errno() != libc::EINTR {
            return 255;
        }
    }
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        255
    }
}

/// In a process of the new namespaces: mounts become slaves (nothing
/// mounted here reaches the host), then the fresh procfs and the private
/// directory's tmpfs and the copy-on-write overlays, and the sandbox's
/// `/etc/hosts`, as planned. 0: /proc mounted; 1: no procfs; 2: the
/// mounts could not be made slaves; 4: no tmpfs; 5: no overlay; 6: a
/// concealed path not covered; 7: `/etc/hosts` not bound.
fn mount_in_namespace(plan: &Plan) -> libc::c_int {
    // SAFETY: mount with static C strings and NULL data.
    let slave = unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_SLAVE,
            std::ptr::null(),
        )
    };
    if slave != 0 {
        return 2;
    }
    let mounted = plan.mounts.mount();
    if mounted != 0 {
        return mounted;
    }
    // Before the procfs: the table is staged on /proc.
    if plan.hosts.as_ref().is_some_and(|h| !h.bind()) {
        return 7;
    }
    let proc = plan.proc && mount_proc();
    // After /proc: a procfs hidden here may be what let it be mounted.
    if !plan.mounts.conceal.iter().all(|p| cover(p, true)) {
        return 6;
    }
    match proc {
        true => 0,
        false => 1,
    }
}

/// What this machine gives a workload, found the way a launch does it:
/// a child forked into the namespaces mounts its /proc and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcView {
    /// Its own pid and mount namespaces and a fresh /proc.
    Own {
        /// A user namespace was needed (not root).
        user: bool,
    },
    /// Its own namespaces, but the kernel refused the fresh procfs (a
    /// /proc partly covered, as in containers): no /proc.
    NoProcMount,
    /// No namespaces (errno of the clone): no /proc.
    NoNamespaces(i32),
}

/// Probes what a workload started by this process would get, the way a
/// launch gets it: a child cloned into the namespaces waits while
/// [`make_proc`] maps its ids and mounts its /proc.
pub fn probe() -> ProcView {
    let plan = Plan::new(true, super::mounts::Mounts::default(), None);
    let mut pipe = [-1; 2];
    // SAFETY: pipe2 writes two fds into our local array.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return ProcView::NoNamespaces(errno());
    }
    let [rd, wr] = pipe;
    // SAFETY: the child only makes raw syscalls and exits.
    let forked = unsafe { clone_into(&plan) };
    if forked == 0 {
        // Wait for the probe to end: the read returns once the parent
        // closes its write end.
        let mut byte = 0u8;
        // SAFETY: our copies of the pipe's fds; one byte into a local.
        unsafe {
            libc::close(wr);
            libc::read(rd, (&mut byte as *mut u8).cast(), 1);
            libc::_exit(0)
        };
    }
    let clone_errno = errno();
    // SAFETY: closing our own fds once.
    unsafe { libc::close(rd) };
    let view = if forked < 0 {
        ProcView::NoNamespaces(clone_errno)
    } else {
        let pid = forked as libc::pid_t;
        let made = crate::sys::pidfd_open(pid).and_then(|fd| {
            use std::os::fd::AsRawFd;
            make_proc(pid, fd.as_raw_fd(), &plan)
        });
        match made {
            Ok(true) => ProcView::Own { user: plan.user },
            Ok(false) => ProcView::NoProcMount,
            Err(_) => ProcView::NoNamespaces(libc::EPERM),
        }
    };
    // SAFETY: closing our own fd once; the child then exits.
    unsafe { libc::close(wr) };
    if forked > 0 {
        wait_code(forked as libc::pid_t);
    }
    view
}

/// In the workload, after the supervisor's rules are in and before
/// `landlock_restrict_self`: grants the fresh /proc with `access`.
pub fn grant_proc(ruleset: RawFd, access: u64) -> Result<(), i32> {
    super::landlock::grant_path(ruleset, c"/proc", libc::O_DIRECTORY, access)
}

/// True when the parent that forked this reaper is gone. In new pid
/// namespaces `getppid` is 0 (the parent is outside), so the report pipe
/// tells instead: its read end closes with the supervisor.
pub fn parent_gone(expected: libc::pid_t, report: RawFd) -> bool {
    // SAFETY: getppid has no failure mode.
    let ppid = unsafe { libc::getppid() };
    if ppid != 0 {
        return ppid != expected;
    }
    let mut pfd = libc::pollfd {
        fd: report,
        events: 0,
        revents: 0,
    };
    // SAFETY: one pollfd on the stack; zero timeout.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n > 0 && pfd.revents & libc::POLLERR != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_never_written_is_no_success() {
        // Not our child (ECHILD): the status stays unwritten, and must not
        // read as "exited 0" (which would grant the workload /proc).
        assert_eq!(wait_code(1), 255);
        // twin: our own child's exit code comes through
        // SAFETY: the child exits at once.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: leave the test child at once.
            unsafe { libc::_exit(1) };
        }
        assert_eq!(wait_code(pid), 1);
    }

    #[test]
    fn the_argument_area_comes_from_fields_48_and_49() {
        let me = std::fs::read_to_string("/proc/self/stat").unwrap();
        let (start, end) = argv_area(&me).expect("own stat");
        assert!(end > start);
        // A command name with spaces and a parenthesis does not shift it.
        let tail: Vec<String> = (3..=52).map(|i| i.to_string()).collect();
        let line = format!("7 (a b) c) {}", tail.join(" "));
        assert_eq!(argv_area(&line), Some((48, 49)));
        let zero: Vec<String> = (3..=52)
            .map(|i| if i == 48 { "0".into() } else { i.to_string() })
            .collect();
        assert_eq!(argv_area(&format!("7 (x) {}", zero.join(" "))), None);
        assert_eq!(argv_area("7 (x) 1 2"), None);
        assert_eq!(argv_area("no paren"), None);
    }

    #[test]
    fn identity_maps() {
        assert_eq!(Line::identity(1000).bytes(), b"1000 1000 1\n");
        assert_eq!(
            Line::identity(u32::MAX).bytes(),
            b"4294967295 4294967295 1\n"
        );
    }
}
