//! The supervisor's watch over a running tree: where the kernel enforces
//! a limit (a cgroup), it reads the counters that say the limit was hit
//! and tells the user; where nothing in the kernel can (an ordinary user
//! without a delegated cgroup), it enforces the limit itself: memory by
//! summing the tree's anonymous memory and swap every few milliseconds
//! and killing the tree past the limit, CPU by stopping the tree
//! (SIGSTOP) for as long as it ran ahead of its share, then continuing
//! it.
//!
//! Owns the decision that a limit ended the run. Must never signal
//! anything but the tree (see `tree`), and never leave a process stopped
//! when it ends.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::cgroup::{Controller, Groups};
use super::tree::Tree;
use crate::audit::Reporter;
use crate::policy::{Limit, Limits};
use crate::sys;

/// A limit that ended the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Breach {
    /// Which one.
    pub limit: Limit,
}

/// What the watch does, decided by the plan.
#[derive(Debug, Default)]
pub(crate) struct Duties {
    /// Kill the tree when its memory passes this many bytes.
    pub memory: Option<u64>,
    /// Keep the tree's CPU time at this many thousandths of a CPU.
    pub cpu: Option<u32>,
    /// Counters of the kernel's enforcement.
    pub groups: Option<Arc<Groups>>,
}

impl Duties {
    /// True when there is nothing to watch.
    pub fn is_empty(&self) -> bool {
        self.memory.is_none() && self.cpu.is_none() && self.groups.is_none()
    }
}

/// The running watch.
pub(crate) struct Governor {
    thread: Option<JoinHandle<()>>,
    wake: OwnedFd,
    breach: Arc<Mutex<Option<Breach>>>,
}

struct Watch {
    tree: Tree,
    duties: Duties,
    limits: Limits,
    reporter: Arc<Reporter>,
    breach: Arc<Mutex<Option<Breach>>>,
    /// Limits already reported (each is said once).
    said: Vec<Limit>,
    started: Instant,
    ticks_per_sec: u64,
}

/// How often the watch looks: often enough that a fast allocator passes
/// the memory limit by little, where sandlock itself enforces it.
fn period(d: &Duties) -> Duration {
    if d.memory.is_some() {
        Duration::from_millis(10)
    } else {
        Duration::from_millis(50)
    }
}

impl Governor {
    /// Starts watching the tree below `reaper`.
    pub fn start(
        reaper: i32,
        duties: Duties,
        limits: &Limits,
        reporter: Arc<Reporter>,
    ) -> std::io::Result<Governor> {
        let wake = eventfd()?;
        let breach = Arc::new(Mutex::new(None));
        // SAFETY: sysconf has no failure mode that matters here.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let watch = Watch {
            tree: Tree::new(reaper)?,
            duties,
            limits: limits.clone(),
            reporter,
            breach: Arc::clone(&breach),
            said: Vec::new(),
            started: Instant::now(),
            ticks_per_sec: u64::try_from(hz).ok().filter(|h| *h > 0).unwrap_or(100),
        };
        let wake_rd = wake.try_clone()?;
        let thread = std::thread::Builder::new()
            .name("sandlock-limits".into())
            .spawn(move || watch.run(&wake_rd))?;
        Ok(Governor {
            thread: Some(thread),
            wake,
            breach,
        })
    }

    /// Stops watching (the tree is gone) and says whether a limit ended
    /// the run.
    pub fn finish(mut self) -> Option<Breach> {
        self.stop();
        self.breach.lock().ok().and_then(|b| *b)
    }

    fn stop(&mut self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a local to our eventfd.
        unsafe { libc::write(self.wake.as_raw_fd(), one.as_ptr().cast(), 8) };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Governor {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Watch {
    fn run(mut self, wake: &OwnedFd) {
        let tick = period(&self.duties);
        while !wait(wake, tick) {
            if self.check_memory() {
                return;
            }
            self.check_counters();
            if let Some(share) = self.duties.cpu {
                if self.throttle(share, wake) {
                    return;
                }
            }
        }
        // A tree that ended within a tick still gets its report.
        self.check_counters();
    }

    /// True when the tree was killed for its memory.
    fn check_memory(&mut self) -> bool {
        let kernel_killed = self
            .duties
            .groups
            .as_ref()
            .is_some_and(|g| self.limits.memory.is_some() && g.hits(Controller::Memory) > 0);
        let over = self
            .duties
            .memory
            .is_some_and(|max| self.tree.memory() > max);
        if !(kernel_killed || over) {
            return false;
        }
        // The kernel killed one process, or sandlock saw the tree pass the
        // limit: the whole tree goes, as memory.oom.group does in v2.
        if let Ok(mut b) = self.breach.lock() {
            *b = Some(Breach {
                limit: Limit::Memory,
            });
        }
        for _ in 0..100 {
            if self.tree.signal_all(libc::SIGKILL).is_empty() {
                break;
            }
        }
        self.say("killed", Limit::Memory);
        true
    }

    /// Says once that the kernel refused a fork or throttled the tree.
    fn check_counters(&mut self) {
        let Some(g) = self.duties.groups.clone() else {
            return;
        };
        if self.limits.pids.is_some() && g.hits(Controller::Pids) > 0 {
            self.say("refused a fork", Limit::Pids);
        }
        if self.limits.cpu.is_some() && g.hits(Controller::Cpu) > 0 {
            self.say("throttled", Limit::Cpu);
        }
    }

    /// Stops the tree for as long as it ran ahead of `share` thousandths
    /// of a CPU since it started. True when the watch was told to end.
    fn throttle(&mut self, share: u32, wake: &OwnedFd) -> bool {
        let used_ms = self.tree.cpu_ticks().saturating_mul(1000) / self.ticks_per_sec;
        let elapsed_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let allowed_ms = elapsed_ms.saturating_mul(u64::from(share)) / 1000;
        let Some(ahead_ms) = used_ms.checked_sub(allowed_ms).filter(|a| *a > 0) else {
            return false;
        };
        // Stopped for `ahead / share`, the tree's allowance catches up
        // with what it used; at most a second at a time, so a tree that
        // ends meanwhile is noticed.
        let pause_ms = (ahead_ms.saturating_mul(1000) / u64::from(share)).min(1000);
        self.say("throttled", Limit::Cpu);
        let stopped = self.tree.signal_all(libc::SIGSTOP);
        let ended = wait(wake, Duration::from_millis(pause_ms));
        for fd in &stopped {
            let _ = sys::pidfd_send_signal(fd.as_fd(), libc::SIGCONT);
        }
        ended
    }

    /// One line on stderr and in the audit log, once per limit.
    fn say(&mut self, action: &str, limit: Limit) {
        if self.said.contains(&limit) {
            return;
        }
        self.said.push(limit);
        let value = self.limits.shown(limit).unwrap_or_default();
        self.reporter.limit(action, limit, &value);
    }
}

/// Waits up to `d` for the wake-up; true when it came.
fn wait(wake: &OwnedFd, d: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd: wake.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one pollfd on the stack.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    n > 0
}

fn eventfd() -> std::io::Result<OwnedFd> {
    // SAFETY: eventfd takes integers; the fd is owned below.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}
