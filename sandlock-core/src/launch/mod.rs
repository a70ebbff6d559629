//! Launch: everything between a policy and the workload's `execve`.
//!
//! Owns the process layout:
//!
//! ```text
//! sandlock (supervisor, multi-threaded after launch)
//!   └─ reaper: child subreaper, allocation-free, dies with nothing left behind
//!        └─ workload (vfork semantics until exec): pdeathsig, caps dropped,
//!           no_new_privs, Landlock, seccomp, exec
//! ```
//!
//! Everything the reaper and the child need in memory (BPF, argv/envp and
//! their pointer arrays, paths, a scratch buffer, the ruleset fd) is
//! prepared before the first fork; after it, both make only
//! async-signal-safe calls, so the caller may be multi-threaded. The rules
//! themselves go into the ruleset while the reaper and the workload start:
//! the workload waits for a byte on `rules_ready` before it enforces them.
//! The reaper outlives a SIGKILLed supervisor just long enough to kill the
//! whole workload tree and remove the private temp dir.
//!
//! This module must never leave the seccomp listener reachable by the
//! workload after exec, and never exec unconfined when a step fails.

mod child;
mod etc;
pub mod hosts;
mod landlock;
pub mod mounts;
pub mod ns;
mod procfs;
mod reaper;
mod rmtree;
pub mod seccomp;
mod stack;

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::unistd::Pid;

pub use self::etc::EtcPlan;
pub use self::landlock::{abi_version, grants, scope_abstract_unix, Grants, LandlockRuleset};
use crate::{Error, Result};

/// The calling thread's errno (EIO if there is none), for the raw
/// syscalls made after a fork.
fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// What the supervisor tells the workload, in the one byte on
/// `rules_ready`, once every rule is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    /// The workload's own /proc is mounted: the workload adds its rule.
    pub proc: bool,
    /// `/etc/hosts` is a mount of the workload's namespace (see
    /// [`hosts`]): the workload installs [`Prepared::bpf_hosts_bound`].
    pub hosts: bool,
}

impl Ready {
    /// The byte that carries it.
    pub fn byte(self) -> u8 {
        match (self.proc, self.hosts) {
            (false, false) => b'r',
            (true, false) => b'p',
            (false, true) => b'h',
            (true, true) => b'P',
        }
    }

    /// The message a byte carries; `None` for any other byte.
    pub fn from_byte(b: u8) -> Option<Ready> {
        let (proc, hosts) = match b {
            b'r' => (false, false),
            b'p' => (true, false),
            b'h' => (false, true),
            b'P' => (true, true),
            _ => return None,
        };
        Some(Ready { proc, hosts })
    }
}

/// Everything the child needs, allocated before fork.
pub struct Prepared {
    /// The program to execve, found on PATH as the shell would (see
    /// `sandbox::command`).
    pub exec_path: CString,
    /// argv, argv[0] as the user wrote it.
    pub argv: Vec<CString>,
    /// The workload's environment as `KEY=VALUE`.
    pub envp: Vec<CString>,
    /// Working directory to enter before exec.
    pub cwd: Option<CString>,
    /// The Landlock ruleset to enforce. The supervisor may still be adding
    /// rules to it when the workload starts; see `rules_ready`.
    pub ruleset: OwnedFd,
    /// Read end of a pipe: the supervisor writes one byte once every rule
    /// is in the ruleset. The workload waits for it before enforcing; EOF
    /// (the supervisor failed or died) aborts the launch.
    pub rules_ready: OwnedFd,
    /// The seccomp program.
    pub bpf: Vec<libc::sock_filter>,
    /// The program when `/etc/hosts` is a mount of the workload's
    /// namespace: the same without the open trap that only served it.
    pub bpf_hosts_bound: Option<Vec<libc::sock_filter>>,
    /// The sandbox's `/etc/hosts`, to bind in the workload's namespace
    /// when it gets one.
    pub hosts: Option<hosts::HostsFile>,
    /// Drop every capability before exec.
    pub drop_caps: bool,
    /// The private directory; the reaper removes it if the supervisor dies.
    pub tmpdir: PathBuf,
    /// Give the workload a /proc of its own (see [`ns`]).
    pub proc: bool,
    /// The Landlock access the workload's /proc is granted.
    pub proc_access: u64,
    /// What is mounted in the sandbox's mount namespace (`--disk`,
    /// `--cow`).
    pub mounts: mounts::Mounts,
    /// Rlimits the workload sets before exec, soft and hard alike.
    pub rlimits: crate::limits::Rlimits,
    /// `cgroup.procs` of the sandbox's cgroups: the reaper joins them
    /// before it starts the workload.
    pub cgroup_procs: Vec<OwnedFd>,
    /// What becomes the workload's stdin, stdout and stderr; `None`
    /// inherits sandlock's own.
    pub stdio: [Option<OwnedFd>; 3],
}

/// What the reaper works with after the fork, all of it allocated before
/// the fork: the reaper may not allocate (see `rmtree`).
pub(super) struct Forked {
    prepared: Prepared,
    /// NULL-terminated argv and envp pointer arrays into `prepared`.
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    /// The temp dir's path, for removal.
    tmpdir: CString,
    /// Listing buffer for removing the temp dir.
    scratch: Vec<u8>,
    /// The namespaces the reaper sets up.
    plan: ns::Plan,
}

/// One record on the launch pipe, from the reaper or the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// The workload's pid, and the number of a pidfd for it in the
    /// reaper's fd table (taken with pidfd_getfd: no pid-reuse race).
    Pid(i32, i32),
    /// The workload installed its filter; the listener is its fd `n`.
    NotifyFd(i32),
    /// A confinement step failed (`stage`, errno); the workload exited 125.
    SetupFailed(Stage, i32),
    /// execve failed with this errno; the workload exited 126 or 127.
    ExecFailed(i32),
    /// The workload exited with this raw wait status; its tree is gone.
    Exited(i32),
}

/// Confinement steps, named in setup failure messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Stage {
    /// The supervisor died before the workload started.
    Parent = 1,
    /// Entering `--cwd`.
    Cwd = 2,
    /// Dropping capabilities.
    Caps = 3,
    /// Landlock restrict_self.
    Landlock = 4,
    /// Installing the seccomp filter.
    Seccomp = 5,
    /// Setting up the workload's stdin, stdout and stderr.
    Stdio = 6,
    /// Setting up the pid and mount namespaces, or the workload's /proc.
    Namespaces = 7,
    /// Joining the sandbox's cgroups or setting its rlimits.
    Limits = 8,
}

impl Stage {
    fn from_i32(v: i32) -> Stage {
        match v {
            2 => Stage::Cwd,
            3 => Stage::Caps,
            4 => Stage::Landlock,
            5 => Stage::Seccomp,
            6 => Stage::Stdio,
            7 => Stage::Namespaces,
            8 => Stage::Limits,
            _ => Stage::Parent,
        }
    }

    /// Human name of the step.
    pub fn describe(self) -> &'static str {
        match self {
            Stage::Parent => "supervisor vanished before start",
            Stage::Cwd => "cannot enter --cwd",
            Stage::Caps => "cannot drop capabilities",
            Stage::Landlock => "cannot enforce Landlock",
            Stage::Seccomp => "cannot install seccomp filter",
            Stage::Stdio => "cannot set up the workload's stdin, stdout and stderr",
            Stage::Namespaces => "cannot set up the workload's pid and mount namespaces",
            Stage::Limits => "cannot apply the resource limits (joining the sandbox's cgroup, or setting an rlimit)",
        }
    }
}

const RECORD: usize = 12;

impl Report {
    fn encode(self) -> [u8; RECORD] {
        let (tag, a, b) = match self {
            Report::Pid(p, fd) => (1, p, fd),
            Report::NotifyFd(n) => (2, n, 0),
            Report::SetupFailed(s, e) => (3, s as i32, e),
            Report::ExecFailed(e) => (4, e, 0),
            Report::Exited(s) => (5, s, 0),
        };
        let mut out = [0u8; RECORD];
        out[..4].copy_from_slice(&(tag as u32).to_ne_bytes());
        out[4..8].copy_from_slice(&a.to_ne_bytes());
        out[8..].copy_from_slice(&b.to_ne_bytes());
        out
    }

    fn decode(buf: &[u8; RECORD]) -> Option<Report> {
        let word = |i: usize| i32::from_ne_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
        Some(match word(0) {
            1 => Report::Pid(word(4), word(8)),
            2 => Report::NotifyFd(word(4)),
            3 => Report::SetupFailed(Stage::from_i32(word(4)), word(8)),
            4 => Report::ExecFailed(word(4)),
            5 => Report::Exited(word(4)),
            _ => return None,
        })
    }

    /// Writes the record with one write(2): async-signal-safe, and atomic
    /// on a pipe because it is shorter than PIPE_BUF.
    fn send(self, fd: libc::c_int) {
        let rec = self.encode();
        // SAFETY: writes from a live stack buffer of RECORD bytes.
        unsafe { libc::write(fd, rec.as_ptr().cast(), RECORD) };
    }
}

/// The supervisor's end of a launched sandbox.
pub struct Spawned {
    /// The reaper's pid.
    pub reaper: Pid,
    /// A pidfd for the reaper, which holds the workload's seccomp listener.
    pub reaper_fd: OwnedFd,
    /// The reaper is pid 1 of a pid namespace of the sandbox's own: every
    /// pid the workload can name is one of its processes.
    pub own_pid_ns: bool,
    /// The namespaces the reaper was cloned into, for the supervisor's
    /// part in them (`ns::make_proc`).
    pub plan: ns::Plan,
    reports: File,
}

impl Spawned {
    /// Reads the next report; `None` when both reaper and workload are gone.
    pub fn next_report(&mut self) -> io::Result<Option<Report>> {
        let mut buf = [0u8; RECORD];
        match self.reports.read_exact(&mut buf) {
            Ok(()) => Ok(Report::decode(&buf)),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// After the tree was taken down: the stage the workload itself
    /// reported failing on its own, if any. A workload that fails early (a missing
    /// `--cwd`) ends the reaper, so the supervisor's next step fails too;
    /// the workload's own report names the cause. Waits at most a second
    /// for each report, so a stray holder of the pipe cannot hang a run
    /// that already failed.
    pub fn setup_failure(&mut self) -> Option<(Stage, i32)> {
        use std::os::fd::AsRawFd;
        loop {
            let mut fds = [libc::pollfd {
                fd: self.reports.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            // SAFETY: polls one pollfd of a local array.
            if unsafe { libc::poll(fds.as_mut_ptr(), 1, 1000) } != 1 {
                return None;
            }
            match self.next_report() {
                // ECANCELED at Landlock is the workload seeing the
                // supervisor give up (the rules-ready pipe closed unwritten):
                // an echo of the supervisor's error, not a cause.
                Ok(Some(Report::SetupFailed(Stage::Landlock, libc::ECANCELED))) => {}
                Ok(Some(Report::SetupFailed(stage, errno))) => return Some((stage, errno)),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// The fd to poll for reports.
    pub fn reports_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.reports.as_fd()
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::setup("pipe", io::Error::from(e)))
}

/// Forks the reaper, which starts the workload. `supervisor_only` are fds
/// of the supervisor's (the write end of `rules_ready`, its ends of the
/// workload's stdio) that the reaper and the workload must not keep, or EOF
/// could never reach the other side.
pub fn spawn(prepared: Prepared, supervisor_only: &[std::os::fd::RawFd]) -> Result<Spawned> {
    let (report_rd, report_wr) = pipe()?;
    let supervisor = nix::unistd::getpid();
    use std::os::unix::ffi::OsStrExt;
    let forked = Forked {
        argv: child::ptrs(&prepared.argv),
        envp: child::ptrs(&prepared.envp),
        tmpdir: CString::new(prepared.tmpdir.as_os_str().as_bytes()).map_err(|_| {
            Error::invalid(
                "TMPDIR",
                &prepared.tmpdir.display().to_string(),
                "contains a NUL byte",
            )
        })?,
        scratch: vec![0u8; 64 * 1024],
        plan: ns::Plan::new(
            prepared.proc,
            prepared.mounts.clone(),
            prepared.hosts.clone(),
        ),
        prepared,
    };
    // SAFETY: after fork the child runs `reaper::run`, which makes only
    // async-signal-safe calls and does not allocate (everything it uses is
    // in `forked`), so it is sound even if other threads exist.
    match unsafe { ns::fork(&forked.plan) }.map_err(|e| Error::setup("fork", e))? {
        ns::Forked::Child(own_ns) => {
            drop(report_rd);
            for fd in supervisor_only {
                // SAFETY: closing our copy of an fd the supervisor keeps.
                unsafe { libc::close(*fd) };
            }
            reaper::run(forked, own_ns, supervisor, report_wr)
        }
        ns::Forked::Parent(child, own_pid_ns) => {
            let child = Pid::from_raw(child);
            drop(report_wr);
            let plan = forked.plan.clone();
            // The reaper and workload own the rest of `prepared`; the
            // ruleset fd must not linger in the supervisor.
            drop(forked);
            // Our own child: its pid cannot be reused before we reap it.
            let reaper_fd = crate::sys::pidfd_open(child.as_raw())
                .map_err(|e| Error::setup("pidfd_open(reaper)", e))?;
            Ok(Spawned {
                reaper: child,
                reaper_fd,
                own_pid_ns,
                plan,
                reports: File::from(report_rd),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Ready;

    #[test]
    fn every_ready_message_has_a_byte_of_its_own() {
        let all = [(false, false), (true, false), (false, true), (true, true)];
        let mut bytes = Vec::new();
        for (proc, hosts) in all {
            let r = Ready { proc, hosts };
            assert_eq!(Ready::from_byte(r.byte()), Some(r));
            bytes.push(r.byte());
        }
        bytes.sort_unstable();
        bytes.dedup();
        assert_eq!(bytes.len(), 4);
    }

    #[test]
    fn any_other_byte_is_no_message() {
        let known = [b'r', b'p', b'h', b'P'];
        for b in 0..=u8::MAX {
            assert_eq!(Ready::from_byte(b).is_some(), known.contains(&b), "{b}");
        }
    }
}
