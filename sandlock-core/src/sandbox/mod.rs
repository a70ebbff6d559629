//! A sandbox run from start to exit status: prepare (everything that
//! allocates), launch, supervise, wait.
//!
//! `prepare` turns the policy into what the child needs; `wait` is the
//! supervisor's main loop until the workload's exit status arrives.

mod command;
mod cow;
pub mod foreground;
mod ground;
mod learn;
mod limits;
mod prepare;
mod private;
mod stdio;
mod wait;

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::audit::Reporter;
use crate::launch::{self, seccomp::FilterSpec, LandlockRuleset, Prepared};
use crate::learn::Learner;
use crate::network::{Egress, Pinned};
use crate::proxy::Proxy;
use crate::secrets::Secrets;
use crate::supervisor::{NotifyThread, Places, ReadableRoots, VirtualFile, Virtuals};
use crate::{Error, Policy, Result};

use self::cow::RunCow;
pub use self::ground::Ground;
use self::limits::RunLimits;
use self::prepare::{base_rules, check_inherited_stdio, cstring, etc_rules, hosts_mount, HOSTS};
use self::private::Private;
use self::stdio::Plumbing;
pub use self::stdio::{Output, Stdio};
use self::wait::{wait, RestoreMask};

/// How the workload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitOutcome {
    /// It exited with this code.
    Exited(i32),
    /// It was killed by this signal.
    Signaled(i32),
    /// `--timeout` expired and sandlock killed the tree.
    TimedOut,
    /// A resource limit ended it: the tree was killed with `signal`
    /// (SIGKILL; SIGXFSZ for `--file-size`).
    Killed {
        /// The limit.
        limit: crate::policy::Limit,
        /// The signal that ended the workload.
        signal: i32,
    },
}

impl ExitOutcome {
    /// The exit status a front door reports: the code, 128+signal (137
    /// for a limit's kill), or 124.
    pub fn code(self) -> i32 {
        match self {
            ExitOutcome::Exited(c) => c,
            ExitOutcome::Signaled(s) | ExitOutcome::Killed { signal: s, .. } => 128 + s,
            ExitOutcome::TimedOut => 124,
        }
    }
}

/// Environment variables `--clean-env` keeps.
const CLEAN_ENV_KEEP: &[&str] = &["PATH", "HOME", "TERM", "LANG"];
/// Used when the environment has no PATH.
pub(super) const DEFAULT_PATH: &str =
    "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";
/// Signals sandlock forwards to the workload.
const FORWARDED: &[Signal] = &[Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// A policy ready to run commands.
#[derive(Debug, Clone)]
pub struct Sandbox {
    policy: Policy,
    ground: Ground,
}

impl Sandbox {
    /// Wraps a policy.
    pub fn new(policy: Policy) -> Sandbox {
        Sandbox {
            policy,
            ground: Ground::Host,
        }
    }

    /// The same sandbox, run on `ground` (see [`Ground`]).
    pub fn on(mut self, ground: Ground) -> Sandbox {
        self.ground = ground;
        self
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Runs `argv` confined and waits for it. Safe to call from a
    /// multi-threaded program: after the fork, the reaper and the workload
    /// make only async-signal-safe calls. SIGINT, SIGTERM and SIGHUP are
    /// forwarded when they reach the calling thread (in the CLI, every
    /// other thread blocks them); the caller's signal mask is restored.
    /// The workload inherits sandlock's stdin, stdout and stderr.
    pub fn run(&self, argv: &[OsString]) -> Result<ExitOutcome> {
        self.run_with(argv, Stdio::default()).map(|o| o.outcome)
    }

    /// [`Sandbox::run`] with the workload's stdin fed from bytes and its
    /// stdout and stderr captured, as `io` asks.
    pub fn run_with(&self, argv: &[OsString], io: Stdio) -> Result<Output> {
        match &self.policy.report.learn {
            Some(target) => learn::run(self, target, argv, io),
            None => self.run_watched(argv, io, None),
        }
    }

    /// [`Sandbox::run_with`], telling `learner` (with `--learn`) what the
    /// workload does.
    fn run_watched(
        &self,
        argv: &[OsString],
        io: Stdio,
        learner: Option<&Arc<Learner>>,
    ) -> Result<Output> {
        let Some(cmd) = argv.first() else {
            return Err(Error::Command {
                cmd: String::new(),
                reason: "no command given".into(),
                status: 125,
            });
        };
        // Forwarded signals are read from a signalfd while the workload
        // runs; the caller's mask comes back when the run ends (the library
        // may be called from a program that wants its Ctrl-C back). They
        // are blocked before anything else: every thread the run starts
        // (the proxy's, the /etc walk) inherits the mask, so none takes a
        // Ctrl-C meant for the workload, and one that arrives the moment
        // the workload starts is queued, not lost (to a caller that
        // ignores SIGINT, as a shell's background job does, it would be).
        let mut mask = SigSet::empty();
        for s in FORWARDED {
            mask.add(*s);
        }
        let old_mask = mask
            .thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK)
            .map_err(|e| Error::setup("sigprocmask", std::io::Error::from(e)))?;
        let _restore = RestoreMask(old_mask);
        let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC)
            .map_err(|e| Error::setup("signalfd", std::io::Error::from(e)))?;
        // The walk of /etc (as root) runs on while everything else is
        // prepared; only the rules, secrets and the trust splicing need
        // its result.
        let etc = launch::EtcPlan::start(&self.policy.fs, self.ground.is_image())?;
        let net = &self.policy.net;
        let ruleset = LandlockRuleset::create()?;
        // Limits no mechanism here can enforce stop the run before
        // anything else is made.
        let mut limits = RunLimits::new(&self.policy.limits)?;
        check_inherited_stdio(net)?;
        let http = &self.policy.http;
        let pinned = Pinned::for_policy_on(&self.policy, self.ground.is_image())?;
        let egress = Egress::new(net, &pinned);
        let reporter = Arc::new(
            Reporter::opening(
                self.policy.report.quiet,
                self.policy.report.audit.as_deref(),
                self.ground.is_image(),
            )?
            .watched_by(learner.cloned())
            .keeping_lines(io.capture),
        );
        if let Some(l) = learner {
            l.pins(pinned.clone());
        }
        let mut grants = launch::grants(&self.policy.fs, self.ground.is_image(), etc)?;
        for p in &net.unix_allow {
            if let Err(e) = std::fs::metadata(p) {
                return Err(Error::invalid(
                    "--unix-allow",
                    &p.display().to_string(),
                    e.to_string(),
                ));
            }
        }
        // Without secrets and the proxy nothing asks what the workload may
        // read: the trust splicing (the only reader of `readable` below)
        // needs the proxy.
        let needs_roots = !self.policy.secrets.is_empty() || self.policy.intercepting();
        let mut roots = if needs_roots {
            grants.readable_roots()?
        } else {
            Vec::new()
        };
        // A secret the workload could read itself is refused before any
        // value is read; the workload inherits sandlock's stdio unless
        // `io` gives it streams of its own.
        let inherited = |fd: i32, own: bool| (!own).then_some(fd);
        let reach = crate::secrets::Reach {
            roots: &roots,
            fs: &self.policy.fs,
            stdio: [
                inherited(0, io.stdin.is_some()),
                inherited(1, io.capture),
                inherited(2, io.capture),
            ],
        };
        crate::secrets::check_reach(&self.policy.secrets, &reach)?;
        // The proxy (and its CA, and --http-ca-out) is ready before the
        // workload exists, so its first connect finds it listening.
        // Secret values are read now, once; the workload only ever sees
        // their placeholders.
        let secrets = Arc::new(Secrets::load(&self.policy.secrets)?);
        let proxy = match self.policy.intercepting() {
            true => Some(Arc::new(Proxy::start(
                http,
                Arc::clone(&secrets),
                self.policy.secret_misuse,
                &pinned,
                self.ground.roots(),
                Arc::clone(&reporter),
            )?)),
            false => None,
        };
        let dns = self.start_dns(&pinned, &reporter, net.inet_enabled() || proxy.is_some());
        let mut files = Vec::new();
        if net.virtual_hosts() || proxy.is_some() {
            files.push(
                VirtualFile::new(HOSTS, &pinned.hosts_file())
                    .map_err(|e| Error::setup("virtual /etc/hosts", e))?,
            );
        }
        let mut private = Private::new()?;
        let tmp_path = private.root().to_path_buf();
        if let Some(l) = learner {
            l.private_dir(tmp_path.clone());
        }
        let granted: Vec<PathBuf> = self
            .policy
            .fs
            .write
            .iter()
            .chain(&self.policy.fs.home)
            .cloned()
            .collect();
        let mut cow = RunCow::new(
            &self.policy.cow,
            tmp_path.parent().unwrap_or(Path::new("/")),
            &granted,
        )?;
        // Where the workload can create or replace names, spelled both as
        // granted and as resolved (a grant may be a symlink).
        let mut writable: Vec<PathBuf> = grants
            .write
            .iter()
            .chain(std::iter::once(&tmp_path))
            .chain(cow.dirs())
            .cloned()
            .collect();
        writable.extend(
            writable
                .clone()
                .iter()
                .filter_map(|p| std::fs::canonicalize(p).ok()),
        );
        let hosts_mount = hosts_mount(
            &self.policy,
            self.ground.is_image(),
            !files.is_empty() && learner.is_none(),
            &writable,
            &pinned,
        )?;
        roots.push(tmp_path.clone());
        let readable = Arc::new(ReadableRoots::new(roots));
        // While the proxy terminates TLS, its CA is spliced into the
        // bundles the workload reads.
        let (splices, trust_env) = match &proxy {
            Some(p) => {
                let t = crate::trust::prepare(http, p.ca_pem(), p.ca_der(), &readable)?;
                files.extend(t.files);
                (t.splices, t.env)
            }
            None => (Vec::new(), Vec::new()),
        };
        let files = Virtuals::new(files, splices, readable);
        let spec = FilterSpec {
            trap_open: !files.is_empty(),
            inet: net.inet_enabled() || proxy.is_some(),
            udp: net.udp_enabled(),
            trap_stat: files.has_sandbox_only(),
            learn: learner.is_some(),
        };
        let home = match &self.policy.fs.home {
            Some(h) => h.clone(),
            None => private.home(),
        };
        let envp = self.environment(&private.tmp(), &home, &trust_env, &secrets);
        let view = command::View::new(&self.policy.fs, &tmp_path);
        let exec_path = command::resolve(cmd, &envp, self.policy.process.cwd.as_deref(), &view)?;
        let mut plumbing = Plumbing::new(io)?;
        let (ready_rd, ready_wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| Error::setup("pipe", std::io::Error::from(e)))?;
        let mounts = launch::mounts::Mounts {
            tmpfs: limits.tmpfs(private.root())?,
            overlays: cow.overlays()?,
            conceal: self.ground.concealed()?,
        };
        let (rlimits, cgroup_procs) = limits.for_launch()?;
        let disk_mount = mounts.tmpfs.is_some();
        let prepared = Prepared {
            exec_path,
            argv: argv
                .iter()
                .map(|a| cstring(a.as_bytes()))
                .collect::<Result<_>>()?,
            envp: envp
                .iter()
                .map(|(k, v)| cstring(&[k.as_bytes(), b"=", v.as_bytes()].concat()))
                .collect::<Result<_>>()?,
            cwd: cow
                .cwd(self.policy.process.cwd.as_deref())
                .map(|c| cstring(c.as_os_str().as_bytes()))
                .transpose()?,
            ruleset: ruleset
                .share()
                .map_err(|e| Error::setup("landlock ruleset", e))?,
            rules_ready: ready_rd,
            bpf: launch::seccomp::program(spec),
            bpf_hosts_bound: hosts_mount.is_some().then(|| {
                launch::seccomp::program(FilterSpec {
                    trap_open: !files.is_empty_but(Path::new(HOSTS)),
                    ..spec
                })
            }),
            hosts: hosts_mount,
            drop_caps: !self.policy.process.keep_caps,
            tmpdir: tmp_path.clone(),
            proc: self.policy.fs.own_proc(),
            proc_access: ruleset.proc_access(),
            mounts,
            rlimits,
            cgroup_procs,
            stdio: std::mem::take(&mut plumbing.child),
        };
        // The reaper and the workload start while the rules go in (a few
        // hundred for root's /etc); the workload waits for `ready_wr`.
        let mut supervisor_only = plumbing.parent_fds();
        supervisor_only.push(std::os::fd::AsRawFd::as_raw_fd(&ready_wr));
        // The tmpfs's mount point, made last: nothing returns early
        // between it and the start, whose failures remove it.
        if disk_mount {
            private.create_mount_point()?;
        }
        // The notify thread forks the reaper, so the workload's Landlock
        // domain nests in the thread's abstract-socket scope (ABI 6).
        // Meanwhile this thread, which would only wait, makes the private
        // directory and the rules that need no walk, unless a tmpfs of the
        // sandbox's mount namespace (`--disk`) is to hold the directory:
        // that needs the reaper. /etc's rules come last, after the mounts
        // (its walk is the longest step of a start as root).
        let started = NotifyThread::start(
            ruleset.scoped(),
            move || launch::spawn(prepared, &supervisor_only),
            || (!disk_mount).then(|| base_rules(&ruleset, &grants, &private, &self.policy.fs)),
        );
        let (notify, mut spawned, rules) = match started {
            Ok((Ok((notify, Ok(spawned))), rules)) => (notify, spawned, rules),
            Ok((Ok((_, Err(e))), _)) => {
                private.discard();
                return Err(e);
            }
            Ok((Err(e), _)) | Err(e) => {
                private.discard();
                return Err(Error::setup("starting the notify thread", e));
            }
        };
        let ready = rules
            .unwrap_or(Ok(()))
            .and_then(|()| self.own_proc(&spawned))
            .and_then(|with_proc| {
                limits.started(&spawned, &reporter)?;
                cow.started(&spawned, &ruleset)?;
                if disk_mount {
                    private.covered_for(spawned.reaper.as_raw());
                    base_rules(&ruleset, &grants, &private, &self.policy.fs)?;
                }
                etc_rules(&ruleset, &mut grants)?;
                Ok(with_proc)
            });
        let with_proc = match ready {
            Ok(with_proc) => with_proc,
            Err(e) => {
                // Closing the pipe unwritten stops the workload before exec;
                // SIGUSR1 makes the reaper take everything down.
                drop(ready_wr);
                let _ = nix::sys::signal::kill(spawned.reaper, Signal::SIGUSR1);
                let _ = nix::sys::wait::waitpid(spawned.reaper, None);
                private.discard();
                // A workload that failed on its own ended the reaper, and
                // with it whatever this step was doing in its namespaces
                // (joining them, writing its id maps: the errors vary with
                // how far the reaper's exit had got). Its report is the
                // cause; the run stops either way.
                return Err(match spawned.setup_failure() {
                    Some((stage, errno)) => {
                        Error::setup(stage.describe(), std::io::Error::from_raw_os_error(errno))
                    }
                    None => e,
                });
            }
        };
        // The helper bound /etc/hosts wherever it ran with one planned (a
        // failure to bind stopped the run above).
        let hosts_bound = spawned.own_pid_ns && spawned.plan.binds_hosts();
        let byte = launch::Ready {
            proc: with_proc,
            hosts: hosts_bound,
        }
        .byte();
        let _ = nix::unistd::write(&ready_wr, &[byte]);
        drop(ready_wr);
        let streams = plumbing.start();

        let mut write_roots = self.policy.fs.write.clone();
        write_roots.extend(self.policy.fs.home.iter().cloned());
        write_roots.push(tmp_path.clone());
        write_roots.extend(cow.dirs().iter().cloned());
        let cfg = SupervisorParts {
            places: Places::new(
                &write_roots,
                &net.unix_allow,
                spawned.own_pid_ns.then(|| spawned.reaper.as_raw()),
            )
            .with_cow(cow.mounts()),
            as_workload: !self.policy.process.keep_caps,
            kernel_checks_truncate: ruleset.checks_truncate(),
            egress,
            // The mount serves the bound /etc/hosts: the supervisor answers
            // its opens CONTINUE (one trap, no copy) where others trap.
            files: match hosts_bound {
                true => files.without(Path::new(HOSTS)),
                false => files,
            },
            writable,
            reporter: Arc::clone(&reporter),
            proxy,
            dns,
            inet: spec.inet,
            udp: spec.udp,
        };
        let result = wait(
            &mut spawned,
            &sigfd,
            (&notify, cfg),
            self.policy.process.timeout,
            cmd,
        );
        if result.is_err() {
            // Nothing may outlive a failed run: SIGUSR1 tells the reaper to
            // kill the whole tree (the reaper is our unreaped child, so its
            // pid still names it).
            let _ = nix::sys::signal::kill(spawned.reaper, Signal::SIGUSR1);
            let _ = nix::sys::wait::waitpid(spawned.reaper, None);
        }
        private.discard();
        if result.is_ok() {
            // The reaper reported only after the tree was gone and exits
            // right after; by now it is normally a zombie. Reap it: the
            // library may run many sandboxes in one process.
            let _ = nix::sys::wait::waitpid(spawned.reaper, None);
        }
        let result = result.map(|o| limits.outcome(o, &reporter));
        let (stdout, stderr) = streams?.finish();
        let outcome = result?;
        let show = crate::cow::Show {
            summary: self.policy.cow.summary,
            quiet: self.policy.report.quiet,
            reporter: Some(&reporter),
        };
        let cow = cow.finish(&self.policy.cow, outcome == ExitOutcome::Exited(0), &show);
        Ok(Output {
            outcome,
            stdout,
            stderr,
            cow,
            learned: None,
            denials: reporter.take_lines(),
        })
    }

    /// Starts the DNS interceptor when the workload has a network. Where
    /// it cannot run (no unprivileged user namespaces), port 53 is left to
    /// the allowlist, which refuses it unless a rule allows it.
    fn start_dns(
        &self,
        pinned: &Pinned,
        reporter: &Arc<Reporter>,
        networked: bool,
    ) -> Option<Arc<crate::dns::Dns>> {
        if !networked {
            return None;
        }
        match crate::dns::Dns::start(&self.policy, pinned, Arc::clone(reporter)) {
            Ok(dns) => Some(Arc::new(dns)),
            Err(e) => {
                crate::dns::warn_unavailable(self.policy.report.quiet, &e);
                None
            }
        }
    }

    /// Mounts the workload's own /proc when the reaper came up in
    /// namespaces of its own (see `launch::ns`): true when it has one.
    fn own_proc(&self, spawned: &launch::Spawned) -> Result<bool> {
        if !spawned.own_pid_ns {
            return Ok(false);
        }
        launch::ns::make_proc(
            spawned.reaper.as_raw(),
            std::os::fd::AsRawFd::as_raw_fd(&spawned.reaper_fd),
            &spawned.plan,
        )
        .map_err(|e| Error::setup("the workload's pid and mount namespaces", e))
    }

    /// The workload's environment: inherited (or the clean subset), then
    /// `defaults` for names not set yet, then TMPDIR and HOME, then
    /// `--env`, then the secrets' placeholders (their source variables
    /// removed).
    fn environment(
        &self,
        tmpdir: &Path,
        home: &Path,
        defaults: &[(String, String)],
        secrets: &Secrets,
    ) -> Vec<(OsString, OsString)> {
        let p = &self.policy.process;
        let mut env: Vec<(OsString, OsString)> = self
            .ground
            .environment()
            .into_iter()
            .filter(|(k, _)| {
                !p.clean_env || CLEAN_ENV_KEEP.iter().any(|keep| OsStr::new(keep) == k)
            })
            .collect();
        for (k, v) in defaults {
            // The user's own setting, inherited or given with --env, wins.
            let user_set = env.iter().any(|(ek, _)| ek == OsStr::new(k))
                || p.env.iter().any(|(ek, _)| ek == k);
            if !user_set {
                env.push((OsString::from(k), OsString::from(v)));
            }
        }
        let mut set = |k: &str, v: OsString| {
            env.retain(|(ek, _)| ek != OsStr::new(k));
            env.push((OsString::from(k), v));
        };
        set("TMPDIR", tmpdir.as_os_str().to_owned());
        set("HOME", home.as_os_str().to_owned());
        for (k, v) in &p.env {
            set(k, OsString::from(v));
        }
        // A variable a secret was read from never reaches the workload;
        // each secret's name holds its placeholder, whatever else set it.
        let consumed = secrets.consumed_env();
        env.retain(|(k, _)| !consumed.iter().any(|c| OsStr::new(c) == k));
        for (k, v) in secrets.env() {
            env.retain(|(ek, _)| ek != OsStr::new(&k));
            env.push((OsString::from(k), OsString::from(v)));
        }
        env
    }
}

pub(super) struct SupervisorParts {
    places: Places,
    as_workload: bool,
    kernel_checks_truncate: bool,
    egress: Egress,
    files: Virtuals,
    writable: Vec<PathBuf>,
    reporter: Arc<Reporter>,
    proxy: Option<Arc<Proxy>>,
    dns: Option<Arc<crate::dns::Dns>>,
    inet: bool,
    udp: bool,
}
