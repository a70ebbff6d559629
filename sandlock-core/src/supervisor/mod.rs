//! The supervisor: answers every syscall the seccomp filter traps.
//!
//! Owns the notification fd and the decisions taken on it. One receiver
//! thread takes notifications and answers them inline: only one thread ever
//! waits on the listener, so a notification wakes exactly one thread. An
//! action that may block on the workload's behalf (a connect to a slow
//! host, a send into a full buffer) is first tried without blocking, and
//! only when it would block is it handed to a short-lived worker thread
//! that answers when done, so one slow remote host never stalls the rest
//! of the sandbox.
//!
//! Rules this module must never break: an error while deciding denies
//! (never CONTINUE); a decision made from workload memory is executed by
//! the supervisor on its own copy (a `pidfd_getfd` duplicate and the bytes
//! it read), never handed back to the kernel to re-read; CONTINUE is only
//! answered where Landlock enforces the outcome or a swapped argument can
//! only hurt the workload itself.

// Lengths, counts and offsets here come from the workload's memory: every
// arithmetic step on them is checked, saturating or provably bounded.
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

mod bind;
mod cmsg;
mod dns;
mod learn;
mod meta;
mod net;
mod notif;
mod open;
mod others;
mod place;
mod procs;
mod redirect;
mod resolve;
mod send;
mod stat;
mod unix;
mod vfile;

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use self::notif::{Notif, Reply};
pub use self::open::NotVirtualCache;
pub use self::place::Places;
pub use self::vfile::{ReadableRoots, SuffixSplice, VirtualFile, Virtuals};
use crate::audit::Reporter;
use crate::network::Egress;
use crate::proxy::Proxy;
use crate::sys;

/// Upper bound on actions waiting on the workload's behalf at once;
/// beyond it a would-block action fails with EAGAIN instead of spawning.
const MAX_OFFLOADED: usize = 256;
/// Supervisor threads need little stack; keeping it small keeps the
/// supervisor's resident memory small.
const STACK: usize = 256 * 1024;

/// Everything a handler may consult.
pub struct Supervisor {
    listener: OwnedFd,
    egress: Egress,
    inet: bool,
    udp: bool,
    files: Virtuals,
    not_virtual: NotVirtualCache,
    places: Places,
    as_workload: bool,
    kernel_checks_truncate: bool,
    reaper: i32,
    own_pid_ns: bool,
    /// Where the workload's absolute paths start.
    root: resolve::Root,
    reporter: Arc<Reporter>,
    proxy: Option<Arc<Proxy>>,
    dns: Option<Arc<crate::dns::Dns>>,
    offloaded: AtomicUsize,
    procs: Arc<procs::ProcCache>,
}

/// What the supervisor is configured with, built by the sandbox.
pub struct Config {
    /// The workload's seccomp listener.
    pub listener: OwnedFd,
    /// The egress allowlist.
    pub egress: Egress,
    /// Inet sockets may be created.
    pub inet: bool,
    /// UDP sockets may be created.
    pub udp: bool,
    /// Files served from memory.
    pub files: Virtuals,
    /// Everything the workload may write (the roots of its write grants):
    /// paths below them can change how they resolve.
    pub writable: Vec<std::path::PathBuf>,
    /// Where metadata may change and which socket files may be reached.
    pub places: Places,
    /// The workload has no capabilities: act on its behalf without the
    /// supervisor's (see `sys::creds`).
    pub as_workload: bool,
    /// Landlock checks truncation (ABI 3), so a read-only open with
    /// O_TRUNC may be left to it.
    pub kernel_checks_truncate: bool,
    /// The reaper's pid: the processes of the sandbox descend from it.
    pub reaper: i32,
    /// The reaper is pid 1 of a pid namespace of the sandbox's own.
    pub own_pid_ns: bool,
    /// Where decisions are reported.
    pub reporter: Arc<Reporter>,
    /// The HTTP proxy, when intercepting.
    pub proxy: Option<Arc<Proxy>>,
    /// The DNS interceptor, when running.
    pub dns: Option<Arc<crate::dns::Dns>>,
}

/// True once no task uses the filter any more (the listener reports
/// POLLHUP).
fn listener_hung_up(fd: std::os::fd::RawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd we own; zero timeout.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n > 0 && pfd.revents & libc::POLLHUP != 0
}

/// The thread that answers notifications. It starts before the workload
/// exists and forks the reaper itself, so the workload's Landlock domain
/// nests inside whatever this thread puts on itself first: on ABI 6, a
/// scope on abstract unix sockets. Whatever it (or a worker it starts)
/// then does on the workload's behalf meets the same scope as the
/// workload's own calls: an abstract name made in the sandbox is
/// reachable, one made outside is refused by the kernel. The layer also
/// grants moving files between directories (Landlock denies that in every
/// layer that does not grant it), and, handling a file access, it keeps
/// the reaper from mounting: the workload's /proc is mounted by a helper
/// of the main thread (`launch::ns::make_proc`).
///
/// The reaper's parent-death signal follows the thread that forked it, so
/// this thread lives until the run is over (until [`NotifyThread`] is
/// dropped), whether or not the workload ever traps.
pub struct NotifyThread {
    config: std::sync::mpsc::Sender<Config>,
}

impl NotifyThread {
    /// Starts the thread, scopes it when `scope` holds, and runs `launch`
    /// (the fork) on it while the calling thread runs `meanwhile`;
    /// returns once both have. `meanwhile` runs whenever the thread
    /// started, whatever `launch` then does: its result is returned even
    /// when the launch failed, so the caller can undo its work.
    pub fn start<T: Send + 'static, U>(
        scope: bool,
        launch: impl FnOnce() -> T + Send + 'static,
        meanwhile: impl FnOnce() -> U,
    ) -> std::io::Result<(std::io::Result<(NotifyThread, T)>, U)> {
        let (config, configs) = std::sync::mpsc::channel::<Config>();
        let (done, launched) = std::sync::mpsc::sync_channel::<std::io::Result<T>>(1);
        std::thread::Builder::new()
            .name("sandlock-notify".into())
            .stack_size(STACK)
            .spawn(move || {
                // Signals for sandlock are the main thread's to take (it
                // forwards them to the workload); here they would kill.
                let _ = nix::sys::signal::SigSet::all().thread_block();
                if scope {
                    if let Err(e) = crate::launch::scope_abstract_unix() {
                        let _ = done.send(Err(e));
                        return;
                    }
                }
                let _ = done.send(Ok(launch()));
                drop(done);
                if let Ok(cfg) = configs.recv() {
                    match Supervisor::new(cfg) {
                        Ok(sup) => sup.receive_loop(),
                        Err(e) => eprintln!("sandlock: supervisor failed to start: {e}"),
                    }
                }
                // Until the run is over: the reaper must not see its
                // parent thread die.
                while configs.recv().is_ok() {}
            })?;
        let also = meanwhile();
        let launched = match launched.recv() {
            Ok(Ok(t)) => Ok((NotifyThread { config }, t)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(std::io::Error::other(
                "the notify thread ended before the launch",
            )),
        };
        Ok((launched, also))
    }

    /// Hands the thread its configuration: it answers notifications from
    /// now on.
    pub fn serve(&self, cfg: Config) -> std::io::Result<()> {
        self.config
            .send(cfg)
            .map_err(|_| std::io::Error::other("the notify thread is gone"))
    }
}

impl Supervisor {
    fn new(cfg: Config) -> std::io::Result<Arc<Supervisor>> {
        // Best effort: without it (Linux < 6.6) every round trip pays a
        // cross-CPU wake-up.
        let _ = sys::notif::set_sync_wake_up(cfg.listener.as_raw_fd());
        Ok(Arc::new(Supervisor {
            listener: cfg.listener,
            egress: cfg.egress,
            inet: cfg.inet,
            udp: cfg.udp,
            files: cfg.files,
            not_virtual: NotVirtualCache::new(&cfg.writable),
            places: cfg.places,
            as_workload: cfg.as_workload,
            kernel_checks_truncate: cfg.kernel_checks_truncate,
            reaper: cfg.reaper,
            own_pid_ns: cfg.own_pid_ns,
            root: resolve::Root::of(cfg.reaper, cfg.own_pid_ns),
            reporter: cfg.reporter,
            proxy: cfg.proxy,
            dns: cfg.dns,
            offloaded: AtomicUsize::new(0),
            procs: Arc::default(),
        }))
    }

    fn receive_loop(self: Arc<Self>) {
        let fd = self.listener.as_raw_fd();
        // SAFETY: seccomp_notif is plain old data.
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        loop {
            if let Err(e) = sys::notif::recv(fd, &mut req) {
                match e.raw_os_error() {
                    // Every confined task is gone: the kernel answers
                    // ENOENT at once from now on, so stop instead of spinning.
                    Some(libc::ENOENT) if listener_hung_up(fd) => return,
                    // The task died or was interrupted before we took it.
                    Some(libc::ENOENT) | Some(libc::EINTR) => continue,
                    _ => return,
                }
            }
            let n = Notif::new(fd, &self.procs, &req);
            let reply = self.dispatch(&n);
            n.answer(reply);
        }
    }

    /// Runs `job` on a worker thread, which answers `n` with its result.
    /// For actions that would block; the receiver goes straight back to
    /// the listener.
    fn offload(
        self: &Arc<Self>,
        n: &Notif,
        job: impl FnOnce(&Notif) -> Reply + Send + 'static,
    ) -> Reply {
        if self.offloaded.fetch_add(1, Ordering::SeqCst) >= MAX_OFFLOADED {
            self.offloaded.fetch_sub(1, Ordering::SeqCst);
            return Reply::Errno(libc::EAGAIN);
        }
        let me = Arc::clone(self);
        let n2 = n.clone();
        let spawned = std::thread::Builder::new()
            .name("sandlock-wait".into())
            .stack_size(STACK)
            .spawn(move || {
                let reply = job(&n2);
                n2.answer(reply);
                me.offloaded.fetch_sub(1, Ordering::SeqCst);
            });
        match spawned {
            Ok(_) => Reply::Done,
            Err(e) => {
                self.offloaded.fetch_sub(1, Ordering::SeqCst);
                Reply::from_io(&e)
            }
        }
    }

    fn dispatch(self: &Arc<Self>, n: &Notif) -> Reply {
        let nr = n.nr();
        if let Some(learner) = self.reporter.learner() {
            if let Some(reply) = learn::observe(learner, n) {
                return reply;
            }
        }
        if open::is_open_family(nr) {
            return open::handle(self, n);
        }
        if stat::is_stat_family(nr) {
            return stat::handle(self, n);
        }
        if meta::is_meta(nr) {
            return meta::handle(self, n);
        }
        if meta::is_create(nr) {
            return meta::handle_create(self, n);
        }
        if others::is_others(nr) {
            return others::handle(self, n);
        }
        match nr {
            libc::SYS_socket => net::socket(self, n),
            libc::SYS_connect => net::connect(self, n),
            libc::SYS_bind => bind::bind(self, n),
            libc::SYS_listen => bind::listen(self, n),
            libc::SYS_sendto => send::sendto(self, n),
            libc::SYS_sendmsg => send::sendmsg(self, n),
            libc::SYS_sendmmsg => send::sendmmsg(self, n),
            // A trap the supervisor does not know how to answer: deny.
            _ => Reply::Errno(libc::ENOSYS),
        }
    }
}
