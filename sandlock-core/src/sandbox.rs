//! A sandbox run from start to exit status: prepare (everything that
//! allocates), launch, supervise, wait.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::audit::Reporter;
use crate::launch::{self, seccomp::FilterSpec, LandlockRuleset, Prepared, Report};
use crate::network::{Egress, Pinned};
use crate::supervisor::{Config, Supervisor, VirtualFile};
use crate::{sys, Error, Policy, Result};

/// How the workload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitOutcome {
    /// It exited with this code.
    Exited(i32),
    /// It was killed by this signal.
    Signaled(i32),
    /// `--timeout` expired and sandlock killed the tree.
    TimedOut,
}

impl ExitOutcome {
    /// The exit status a front door reports: the code, 128+signal, or 124.
    pub fn code(self) -> i32 {
        match self {
            ExitOutcome::Exited(c) => c,
            ExitOutcome::Signaled(s) => 128 + s,
            ExitOutcome::TimedOut => 124,
        }
    }
}

/// Environment variables `--clean-env` keeps.
const CLEAN_ENV_KEEP: &[&str] = &["PATH", "HOME", "TERM", "LANG"];
/// Used when the environment has no PATH.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";
/// Signals sandlock forwards to the workload.
const FORWARDED: &[Signal] = &[Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// A policy ready to run commands.
#[derive(Debug, Clone)]
pub struct Sandbox {
    policy: Policy,
}

impl Sandbox {
    /// Wraps a policy.
    pub fn new(policy: Policy) -> Sandbox {
        Sandbox { policy }
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Runs `argv` confined and waits for it. Must be called while the
    /// process is single-threaded (sandlock forks before it starts its
    /// own threads).
    pub fn run(&self, argv: &[OsString]) -> Result<ExitOutcome> {
        let Some(cmd) = argv.first() else {
            return Err(Error::Command {
                cmd: String::new(),
                reason: "no command given".into(),
                status: 125,
            });
        };
        let net = &self.policy.net;
        check_inherited_stdio(net)?;
        let pinned = Pinned::resolve(net)?;
        let egress = Egress::new(net, &pinned);
        let reporter = Reporter::new(
            self.policy.report.quiet,
            self.policy.report.audit.as_deref(),
        )?;
        let mut files = Vec::new();
        if net.virtual_hosts() {
            files.push(
                VirtualFile::new("/etc/hosts", &pinned.hosts_file())
                    .map_err(|e| Error::setup("virtual /etc/hosts", e))?,
            );
        }
        let spec = FilterSpec {
            trap_open: !files.is_empty(),
            inet: net.inet_enabled(),
            udp: net.udp_enabled(),
        };
        let grants = launch::grants(&self.policy.fs)?;
        let ruleset = LandlockRuleset::create()?;
        let bpf = launch::seccomp::program(spec);
        let tmpdir = if grants.many_rules() {
            // Hundreds of per-entry rules (root's view of /etc): share them
            // with a helper thread, joined before fork so the fork still
            // happens in a single-threaded process.
            std::thread::scope(|scope| -> Result<_> {
                let helper = scope.spawn(|| {
                    let tmpdir = TempDir::create()?;
                    ruleset.allow_entries_part(&grants, 1, 2)?;
                    Ok::<_, Error>(tmpdir)
                });
                let mine = ruleset
                    .allow_paths(&grants)
                    .and_then(|()| ruleset.allow_entries_part(&grants, 0, 2));
                let tmpdir = helper.join().map_err(|_| {
                    Error::setup("landlock", std::io::Error::other("rule builder panicked"))
                })??;
                mine?;
                Ok(tmpdir)
            })?
        } else {
            // A few rules: a thread would cost more than it saves.
            ruleset.allow_paths(&grants)?;
            ruleset.allow_entries_part(&grants, 0, 1)?;
            TempDir::create()?
        };
        ruleset
            .allow(&tmpdir.0, true)
            .map_err(|e| Error::setup("landlock rule for the temp dir", e))?;
        // Where the workload can create or replace names, spelled both as
        // granted and as resolved (a grant may be a symlink).
        let mut writable: Vec<PathBuf> = grants
            .write
            .iter()
            .chain(std::iter::once(&tmpdir.0))
            .cloned()
            .collect();
        writable.extend(
            writable
                .clone()
                .iter()
                .filter_map(|p| std::fs::canonicalize(p).ok()),
        );
        let kernel_denies_tcp = ruleset.tcp_guard();
        let envp = self.environment(&tmpdir.0);
        let exec_paths = exec_candidates(cmd, &envp)?;
        let prepared = Prepared {
            exec_paths,
            argv: argv
                .iter()
                .map(|a| cstring(a.as_bytes()))
                .collect::<Result<_>>()?,
            envp: envp
                .iter()
                .map(|(k, v)| cstring(&[k.as_bytes(), b"=", v.as_bytes()].concat()))
                .collect::<Result<_>>()?,
            cwd: self
                .policy
                .process
                .cwd
                .as_ref()
                .map(|c| cstring(c.as_os_str().as_bytes()))
                .transpose()?,
            ruleset: ruleset.into_fd(),
            bpf,
            drop_caps: !self.policy.process.keep_caps,
            tmpdir: tmpdir.0.clone(),
        };
        // From here on the temp dir is removed by the supervisor at the end
        // of the run, or by the reaper if the supervisor dies.
        let tmp_path = tmpdir.release();
        let spawned = launch::spawn(prepared);
        let mut spawned = match spawned {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp_path);
                return Err(e);
            }
        };

        let mut mask = SigSet::empty();
        for s in FORWARDED {
            mask.add(*s);
        }
        // Forwarded signals are read from a signalfd while the workload
        // runs; the caller's mask comes back when the run ends (the library
        // may be called from a program that wants its Ctrl-C back).
        let old_mask = mask
            .thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK)
            .map_err(|e| Error::setup("sigprocmask", std::io::Error::from(e)))?;
        let _restore = RestoreMask(old_mask);
        let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC)
            .map_err(|e| Error::setup("signalfd", std::io::Error::from(e)))?;

        let cfg = SupervisorParts {
            egress,
            kernel_denies_tcp,
            files,
            writable,
            reporter,
            inet: spec.inet,
            udp: spec.udp,
        };
        let result = wait(&mut spawned, &sigfd, cfg, self.policy.process.timeout, cmd);
        if result.is_err() {
            // Nothing may outlive a failed run: SIGUSR1 tells the reaper to
            // kill the whole tree (the reaper is our unreaped child, so its
            // pid still names it).
            let _ = nix::sys::signal::kill(spawned.reaper, Signal::SIGUSR1);
            let _ = nix::sys::wait::waitpid(spawned.reaper, None);
        }
        let _ = std::fs::remove_dir_all(&tmp_path);
        if result.is_ok() {
            // The reaper reported only after the tree was gone and exits
            // right after; by now it is normally a zombie. Reap it: the
            // library may run many sandboxes in one process.
            let _ = nix::sys::wait::waitpid(spawned.reaper, None);
        }
        result
    }

    /// The workload's environment: inherited (or the clean subset), then
    /// TMPDIR, then `--env`.
    fn environment(&self, tmpdir: &Path) -> Vec<(OsString, OsString)> {
        let p = &self.policy.process;
        let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
            .filter(|(k, _)| {
                !p.clean_env || CLEAN_ENV_KEEP.iter().any(|keep| OsStr::new(keep) == k)
            })
            .collect();
        let mut set = |k: &str, v: OsString| {
            env.retain(|(ek, _)| ek != OsStr::new(k));
            env.push((OsString::from(k), v));
        };
        set("TMPDIR", tmpdir.as_os_str().to_owned());
        for (k, v) in &p.env {
            set(k, OsString::from(v));
        }
        env
    }
}

struct SupervisorParts {
    egress: Egress,
    kernel_denies_tcp: bool,
    files: Vec<VirtualFile>,
    writable: Vec<PathBuf>,
    reporter: Reporter,
    inet: bool,
    udp: bool,
}

fn cstring(bytes: &[u8]) -> Result<CString> {
    CString::new(bytes).map_err(|_| {
        Error::invalid(
            "argument",
            &String::from_utf8_lossy(bytes),
            "contains a NUL byte",
        )
    })
}

/// Waits for the launch handshake, starts the supervisor, then waits for
/// the workload's exit while forwarding signals and enforcing the timeout.
fn wait(
    spawned: &mut launch::Spawned,
    sigfd: &SignalFd,
    parts: SupervisorParts,
    timeout: Option<std::time::Duration>,
    cmd: &OsStr,
) -> Result<ExitOutcome> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut parts = Some(parts);
    let mut workload: Option<OwnedFd> = None;
    let mut exec_error: Option<i32> = None;
    let mut setup_error: Option<(launch::Stage, i32)> = None;
    let mut timed_out = false;
    // Signals that arrived before the workload's pidfd did.
    let mut pending: Vec<i32> = Vec::new();
    let mut _supervisor = None;
    // The listener waits here until its first notification: a workload
    // that never trips a trap never costs a supervisor thread.
    let mut idle_listener: Option<Config> = None;
    loop {
        let wait_ms = match deadline {
            Some(d) if !timed_out => d
                .saturating_duration_since(Instant::now())
                .as_millis()
                .min(i32::MAX as u128) as i32,
            _ => -1,
        };
        let mut fds = vec![
            PollFd::new(spawned.reports_fd(), PollFlags::POLLIN),
            PollFd::new(sigfd.as_fd(), PollFlags::POLLIN),
        ];
        if let Some(cfg) = &idle_listener {
            fds.push(PollFd::new(cfg.listener.as_fd(), PollFlags::POLLIN));
        }
        let ready = match poll(
            &mut fds,
            PollTimeout::try_from(wait_ms).unwrap_or(PollTimeout::NONE),
        ) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::setup("poll", std::io::Error::from(e))),
        };
        let reports_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        let signal_ready = fds[1].revents().is_some_and(|r| !r.is_empty());
        let listener_events = fds
            .get(2)
            .and_then(|f| f.revents())
            .unwrap_or(PollFlags::empty());
        drop(fds);
        if listener_events.intersects(PollFlags::POLLHUP | PollFlags::POLLERR)
            && !listener_events.contains(PollFlags::POLLIN)
        {
            // Every confined task is gone: nothing can trap any more, and
            // polling a hung-up listener would spin.
            idle_listener = None;
        } else if listener_events.contains(PollFlags::POLLIN) {
            let cfg = idle_listener.take().expect("polled only while idle");
            _supervisor = Some(
                Supervisor::start(cfg)
                    .map_err(|e| Error::setup("starting supervisor threads", e))?,
            );
        }
        if ready == 0 {
            // Deadline passed: kill the workload; the reaper kills the rest.
            timed_out = true;
            if let Some(w) = &workload {
                let _ = sys::pidfd_send_signal(w.as_fd(), libc::SIGKILL);
            }
            continue;
        }
        if signal_ready {
            if let Ok(Some(info)) = sigfd.read_signal() {
                // Signals the terminal sent already reached the workload,
                // which shares our process group; forward only the ones a
                // process sent to sandlock itself.
                if info.ssi_code != libc::SI_KERNEL {
                    match &workload {
                        Some(w) => {
                            let _ = sys::pidfd_send_signal(w.as_fd(), info.ssi_signo as i32);
                        }
                        None => pending.push(info.ssi_signo as i32),
                    }
                }
            }
        }
        if !reports_ready {
            continue;
        }
        let report = spawned
            .next_report()
            .map_err(|e| Error::setup("reading launch reports", e))?;
        match report {
            Some(Report::Pid(_, pidfd)) => {
                // Gone already means the workload ended: nothing to signal.
                workload = sys::pidfd_getfd(spawned.reaper_fd.as_fd(), pidfd).ok();
                if let Some(w) = &workload {
                    for sig in pending.drain(..) {
                        let _ = sys::pidfd_send_signal(w.as_fd(), sig);
                    }
                    if timed_out {
                        let _ = sys::pidfd_send_signal(w.as_fd(), libc::SIGKILL);
                    }
                }
            }
            Some(Report::NotifyFd(n)) => {
                let listener = match sys::pidfd_getfd(spawned.reaper_fd.as_fd(), n) {
                    Ok(l) => l,
                    // The reaper is gone: the workload already ended and its
                    // status is on the way.
                    Err(e)
                        if e.raw_os_error() == Some(libc::ESRCH)
                            || e.raw_os_error() == Some(libc::EBADF) =>
                    {
                        continue
                    }
                    Err(e) => {
                        return Err(Error::setup("pidfd_getfd (taking the seccomp listener)", e))
                    }
                };
                let p = parts.take().expect("one listener per run");
                let cfg = Config {
                    listener,
                    egress: p.egress,
                    inet: p.inet,
                    udp: p.udp,
                    abstract_unix_scoped: launch::abi_version() >= 6,
                    kernel_denies_tcp: p.kernel_denies_tcp,
                    files: p.files,
                    writable: p.writable,
                    reporter: p.reporter,
                };
                idle_listener = Some(cfg);
            }
            Some(Report::SetupFailed(stage, errno)) => setup_error = Some((stage, errno)),
            Some(Report::ExecFailed(errno)) => exec_error = Some(errno),
            Some(Report::Exited(raw)) => {
                if let Some((stage, errno)) = setup_error {
                    return Err(Error::setup(
                        stage.describe(),
                        std::io::Error::from_raw_os_error(errno),
                    ));
                }
                if let Some(errno) = exec_error {
                    let status = if errno == libc::ENOENT || errno == libc::ENOTDIR {
                        127
                    } else {
                        126
                    };
                    return Err(Error::Command {
                        cmd: cmd.to_string_lossy().into_owned(),
                        reason: std::io::Error::from_raw_os_error(errno).to_string(),
                        status,
                    });
                }
                if timed_out {
                    return Ok(ExitOutcome::TimedOut);
                }
                return Ok(decode_status(raw));
            }
            None => {
                if let Some((stage, errno)) = setup_error {
                    return Err(Error::setup(
                        stage.describe(),
                        std::io::Error::from_raw_os_error(errno),
                    ));
                }
                return Err(Error::setup(
                    "launch",
                    std::io::Error::other("the reaper exited without a status"),
                ));
            }
        }
    }
}

fn decode_status(raw: i32) -> ExitOutcome {
    if libc::WIFEXITED(raw) {
        ExitOutcome::Exited(libc::WEXITSTATUS(raw))
    } else if libc::WIFSIGNALED(raw) {
        ExitOutcome::Signaled(libc::WTERMSIG(raw))
    } else {
        ExitOutcome::Exited(255)
    }
}

/// The paths execve should try, in order, like execvp: the command itself
/// when it names a path, else every existing `PATH` entry for it. The
/// workload tries them after Landlock is on, so one it may not execute
/// (a shim outside the grants) is skipped for the next, as execvp does.
fn exec_candidates(cmd: &OsStr, env: &[(OsString, OsString)]) -> Result<Vec<CString>> {
    let name = cmd.as_bytes();
    let not_found = || Error::Command {
        cmd: cmd.to_string_lossy().into_owned(),
        reason: "command not found".into(),
        status: 127,
    };
    if name.is_empty() {
        return Err(not_found());
    }
    if name.contains(&b'/') {
        return Ok(vec![cstring(name)?]);
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| OsString::from(DEFAULT_PATH));
    let mut found = Vec::new();
    for dir in path.as_bytes().split(|&b| b == b':') {
        let dir = if dir.is_empty() { b".".as_slice() } else { dir };
        let candidate = Path::new(OsStr::from_bytes(dir)).join(OsStr::from_bytes(name));
        if std::fs::metadata(&candidate).is_ok_and(|m| m.is_file()) {
            found.push(cstring(candidate.as_os_str().as_bytes())?);
        }
    }
    if found.is_empty() {
        return Err(not_found());
    }
    Ok(found)
}

/// The workload inherits stdin, stdout and stderr. An inet socket there
/// could carry traffic the supervisor never sees: a datagram socket can be
/// sent through with an address the filter does not trap (unless a udp://
/// rule makes every sendmsg trap), and on old kernels an unconnected
/// stream socket could be connected unseen. Refuse both up front; a
/// connected or listening stream socket is fine.
fn check_inherited_stdio(net: &crate::policy::NetPolicy) -> Result<()> {
    let udp = net.udp_enabled();
    // An unconnected stream socket is only a risk where neither the
    // supervisor (a network policy traps every connect) nor Landlock (ABI 4
    // refuses the workload's own TCP connects) would stop a connect.
    let stream_risk = !net.inet_enabled() && launch::abi_version() < 4;
    const NAMES: [&str; 3] = ["stdin", "stdout", "stderr"];
    let opt = |fd: i32, opt: i32| -> Option<i32> {
        let mut v: i32 = 0;
        let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `v`.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&mut v as *mut i32).cast(),
                &mut len,
            )
        };
        (r == 0).then_some(v)
    };
    for (fd, name) in NAMES.iter().enumerate() {
        let fd = fd as i32;
        let (Some(domain), Some(ty)) = (opt(fd, libc::SO_DOMAIN), opt(fd, libc::SO_TYPE)) else {
            continue;
        };
        if domain != libc::AF_INET && domain != libc::AF_INET6 {
            continue;
        }
        let refuse = |why: &str| {
            Err(Error::setup(
                format!("{name} is an inet socket"),
                std::io::Error::other(why.to_string()),
            ))
        };
        match ty {
            libc::SOCK_STREAM => {
                // SAFETY: sockaddr_storage is plain old data; getpeername
                // writes at most `len` bytes into it.
                let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
                let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                let connected = unsafe {
                    libc::getpeername(
                        fd,
                        (&mut ss as *mut libc::sockaddr_storage).cast(),
                        &mut len,
                    )
                } == 0;
                if stream_risk && !connected && opt(fd, libc::SO_ACCEPTCONN) != Some(1) {
                    return refuse("it is not connected, and the workload could connect it unseen");
                }
            }
            libc::SOCK_DGRAM if udp => {}
            libc::SOCK_DGRAM => return refuse(
                "a datagram socket could send unseen; add a udp:// --net-allow rule to police it",
            ),
            _ => return refuse("raw and other inet sockets are never passed to a workload"),
        }
    }
    Ok(())
}

/// Puts a signal mask back on drop.
struct RestoreMask(SigSet);

impl Drop for RestoreMask {
    fn drop(&mut self) {
        let _ = self.0.thread_set_mask();
    }
}

/// The private temp dir, removed on drop until the reaper takes it over.
struct TempDir(PathBuf);

impl TempDir {
    fn create() -> Result<TempDir> {
        let base = std::env::var_os("TMPDIR")
            .filter(|t| Path::new(t).is_absolute())
            .unwrap_or_else(|| OsString::from("/tmp"));
        let mut template = Path::new(&base)
            .join("sandlock.XXXXXX")
            .into_os_string()
            .into_vec();
        template.push(0);
        // SAFETY: mkdtemp rewrites the X's in our NUL-terminated buffer.
        let r = unsafe { libc::mkdtemp(template.as_mut_ptr().cast()) };
        if r.is_null() {
            return Err(Error::setup(
                format!(
                    "creating a private temp dir in {}",
                    Path::new(&base).display()
                ),
                std::io::Error::last_os_error(),
            ));
        }
        template.pop();
        Ok(TempDir(PathBuf::from(OsString::from_vec(template))))
    }

    fn release(self) -> PathBuf {
        let p = self.0.clone();
        std::mem::forget(self);
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
