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

mod dns;
mod net;
mod notif;
mod open;
mod procs;
mod redirect;
mod send;
mod stat;
mod vfile;

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use self::notif::{Notif, Reply};
pub use self::open::NotVirtualCache;
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
    abstract_unix_scoped: bool,
    kernel_denies_tcp: bool,
    files: Virtuals,
    not_virtual: NotVirtualCache,
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
    /// Landlock keeps abstract unix sockets inside the sandbox, so the
    /// supervisor must not connect to one on the workload's behalf.
    pub abstract_unix_scoped: bool,
    /// Landlock refuses the workload's own TCP binds and connects, so a
    /// connect that is not inet can be left to the kernel (see `net.rs`).
    pub kernel_denies_tcp: bool,
    /// Files served from memory.
    pub files: Virtuals,
    /// Everything the workload may write (the roots of its write grants):
    /// paths below them can change how they resolve.
    pub writable: Vec<std::path::PathBuf>,
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

impl Supervisor {
    /// Starts the receiver thread. Returns immediately.
    pub fn start(cfg: Config) -> std::io::Result<Arc<Supervisor>> {
        // Best effort: without it (Linux < 6.6) every round trip pays a
        // cross-CPU wake-up.
        let _ = sys::notif::set_sync_wake_up(cfg.listener.as_raw_fd());
        let sup = Arc::new(Supervisor {
            listener: cfg.listener,
            egress: cfg.egress,
            inet: cfg.inet,
            udp: cfg.udp,
            abstract_unix_scoped: cfg.abstract_unix_scoped,
            kernel_denies_tcp: cfg.kernel_denies_tcp,
            files: cfg.files,
            not_virtual: NotVirtualCache::new(&cfg.writable),
            reporter: cfg.reporter,
            proxy: cfg.proxy,
            dns: cfg.dns,
            offloaded: AtomicUsize::new(0),
            procs: Arc::default(),
        });
        let me = Arc::clone(&sup);
        std::thread::Builder::new()
            .name("sandlock-notify".into())
            .stack_size(STACK)
            .spawn(move || me.receive_loop())?;
        Ok(sup)
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
        if open::is_open_family(nr) {
            return open::handle(self, n);
        }
        if stat::is_stat_family(nr) {
            return stat::handle(self, n);
        }
        match nr {
            libc::SYS_socket => net::socket(self, n),
            libc::SYS_connect => net::connect(self, n),
            libc::SYS_bind => net::bind(self, n),
            libc::SYS_listen => net::listen(self, n),
            libc::SYS_sendto => send::sendto(self, n),
            libc::SYS_sendmsg => send::sendmsg(self, n),
            libc::SYS_sendmmsg => send::sendmmsg(self, n),
            // A trap the supervisor does not know how to answer: deny.
            _ => Reply::Errno(libc::ENOSYS),
        }
    }
}
