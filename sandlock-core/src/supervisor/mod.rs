//! The supervisor: answers every syscall the seccomp filter traps.
//!
//! Owns the notification fd and the decisions taken on it. Receivers are a
//! small leader/followers pool: any idle thread takes the next
//! notification, and a thread about to block on the workload's behalf (a
//! connect to a slow host) first makes sure another receiver is idle, so
//! one slow remote host never stalls the rest of the sandbox.
//!
//! Rules this module must never break: an error while deciding denies
//! (never CONTINUE); a decision made from workload memory is executed by
//! the supervisor on its own copy (a `pidfd_getfd` duplicate and the bytes
//! it read), never handed back to the kernel to re-read; CONTINUE is only
//! answered where Landlock enforces the outcome or a swapped argument can
//! only hurt the workload itself.

mod net;
mod notif;
mod open;

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub use self::open::VirtualFile;
use self::notif::{Notif, Reply};
use crate::audit::Reporter;
use crate::network::Egress;
use crate::sys;

/// Receivers started up front; more are added on demand.
const INITIAL_RECEIVERS: usize = 2;
/// Upper bound on receiver threads (each blocked one is a connect or send
/// in flight on the workload's behalf).
const MAX_RECEIVERS: usize = 64;
/// Receivers need little stack; keeping it small keeps the supervisor's
/// resident memory small.
const STACK: usize = 256 * 1024;

/// Everything a handler may consult.
pub struct Supervisor {
    listener: OwnedFd,
    egress: Egress,
    inet: bool,
    udp: bool,
    abstract_unix_scoped: bool,
    files: Vec<VirtualFile>,
    reporter: Reporter,
    idle: AtomicUsize,
    threads: AtomicUsize,
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
    /// Files served from memory.
    pub files: Vec<VirtualFile>,
    /// Where decisions are reported.
    pub reporter: Reporter,
}

impl Supervisor {
    /// Starts the receiver pool. Returns immediately.
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
            files: cfg.files,
            reporter: cfg.reporter,
            idle: AtomicUsize::new(0),
            threads: AtomicUsize::new(0),
        });
        for _ in 0..INITIAL_RECEIVERS {
            sup.spawn_receiver()?;
        }
        Ok(sup)
    }

    fn spawn_receiver(self: &Arc<Self>) -> std::io::Result<()> {
        if self.threads.fetch_add(1, Ordering::SeqCst) >= MAX_RECEIVERS {
            self.threads.fetch_sub(1, Ordering::SeqCst);
            return Ok(());
        }
        self.idle.fetch_add(1, Ordering::SeqCst);
        let me = Arc::clone(self);
        std::thread::Builder::new().name("sandlock-notify".into()).stack_size(STACK).spawn(move || me.receive_loop())?;
        Ok(())
    }

    fn receive_loop(self: Arc<Self>) {
        let fd = self.listener.as_raw_fd();
        // SAFETY: seccomp_notif is plain old data.
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        loop {
            if let Err(e) = sys::notif::recv(fd, &mut req) {
                match e.raw_os_error() {
                    // The task died or was interrupted before we took it.
                    Some(libc::ENOENT) | Some(libc::EINTR) => continue,
                    _ => return,
                }
            }
            self.idle.fetch_sub(1, Ordering::SeqCst);
            let n = Notif::new(fd, &req);
            let reply = self.dispatch(&n);
            n.answer(reply);
            self.idle.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Called by a handler right before it may block: guarantees another
    /// receiver is idle to take the next notification.
    fn before_blocking(self: &Arc<Self>) {
        if self.idle.load(Ordering::SeqCst) == 0 {
            let _ = self.spawn_receiver();
        }
    }

    fn dispatch(self: &Arc<Self>, n: &Notif) -> Reply {
        let nr = n.nr();
        if open::is_open_family(nr) {
            return open::handle(self, n);
        }
        match nr {
            libc::SYS_socket => net::socket(self, n),
            libc::SYS_connect => net::connect(self, n),
            libc::SYS_bind => net::bind(self, n),
            libc::SYS_listen => net::listen(self, n),
            libc::SYS_sendto => net::sendto(self, n),
            libc::SYS_sendmsg => net::sendmsg(self, n),
            libc::SYS_sendmmsg => net::sendmmsg(self, n),
            // A trap the supervisor does not know how to answer: deny.
            _ => Reply::Errno(libc::ENOSYS),
        }
    }
}
