//! One trapped syscall: its arguments, the workload's memory behind them,
//! and the answer.

use std::cell::Cell;
use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::sync::Arc;

use super::procs::ProcCache;

use crate::sys;

/// How to answer a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Let the kernel run the syscall as the workload asked. Only where
    /// Landlock enforces the result or a swapped argument only hurts the
    /// workload.
    Continue,
    /// The syscall returns this value.
    Value(i64),
    /// The syscall fails with this errno.
    Errno(i32),
    /// Already answered (ADDFD with SEND).
    Done,
}

impl Reply {
    /// Maps an io::Error from an action done on the workload's behalf to
    /// the errno the workload sees.
    pub fn from_io(e: &io::Error) -> Reply {
        Reply::Errno(e.raw_os_error().unwrap_or(libc::EIO))
    }
}

/// A received notification.
#[derive(Debug, Clone)]
pub struct Notif {
    fd: RawFd,
    procs: Arc<ProcCache>,
    /// Set when a duplicate came through a freshly opened pidfd: only then
    /// can the notifying thread be in doubt (see `ProcCache::dup_fd`).
    fresh_pidfd: Cell<bool>,
    /// Notification id.
    pub id: u64,
    /// The thread that made the call.
    pub pid: i32,
    nr: i64,
    args: [u64; 6],
}

impl Notif {
    pub fn new(fd: RawFd, procs: &Arc<ProcCache>, req: &libc::seccomp_notif) -> Notif {
        Notif {
            fd,
            procs: Arc::clone(procs),
            fresh_pidfd: Cell::new(false),
            id: req.id,
            pid: req.pid as i32,
            nr: req.data.nr as i64,
            args: req.data.args,
        }
    }

    /// Syscall number.
    pub fn nr(&self) -> i64 {
        self.nr
    }

    /// Raw 64-bit argument `i`.
    pub fn arg(&self, i: usize) -> u64 {
        self.args[i]
    }

    /// Argument `i` as the C `int` the kernel reads.
    pub fn int(&self, i: usize) -> i32 {
        self.args[i] as u32 as i32
    }

    /// Reads `len` bytes at `addr` in the calling task's memory. A range
    /// that runs past the end of the address space is EFAULT, as the
    /// kernel answers.
    pub fn read(&self, addr: u64, len: usize) -> io::Result<Vec<u8>> {
        let efault = || io::Error::from_raw_os_error(libc::EFAULT);
        if addr.checked_add(len as u64).is_none() {
            return Err(efault());
        }
        let mut buf = vec![0u8; len];
        let mut got = 0usize;
        while let Some(rest) = buf.get_mut(got..).filter(|r| !r.is_empty()) {
            // `got < len`, and `addr + len` does not overflow.
            let at = addr.saturating_add(got as u64);
            match self.procs.read(self.pid, at, rest)? {
                0 => return Err(efault()),
                n => got = got.saturating_add(n),
            }
        }
        Ok(buf)
    }

    /// Reads a NUL-terminated string (at most `max` bytes).
    pub fn read_cstr(&self, addr: u64, max: usize) -> io::Result<Vec<u8>> {
        // Paths are short: read a small chunk first, more only when needed.
        let mut out = Vec::new();
        let mut chunk = 256;
        while out.len() < max {
            let start = out.len();
            let want = chunk.min(max.saturating_sub(start));
            let at = addr
                .checked_add(start as u64)
                .ok_or_else(|| io::Error::from_raw_os_error(libc::EFAULT))?;
            out.resize(start.saturating_add(want), 0);
            let got = self.procs.read(self.pid, at, &mut out[start..])?;
            out.truncate(start.saturating_add(got));
            if let Some(nul) = out[start..].iter().position(|&b| b == 0) {
                out.truncate(start.saturating_add(nul));
                return Ok(out);
            }
            if got == 0 {
                return Err(io::Error::from_raw_os_error(libc::EFAULT));
            }
            chunk = 4096;
        }
        Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG))
    }

    /// Writes `data` at `addr` in the calling task (syscall out-params).
    pub fn write(&self, addr: u64, data: &[u8]) -> io::Result<()> {
        let local = libc::iovec {
            iov_base: data.as_ptr() as *mut _,
            iov_len: data.len(),
        };
        let remote = libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: data.len(),
        };
        // SAFETY: `local` describes our own readable buffer; the remote
        // range is checked by the kernel against the task's mappings.
        let n = unsafe { libc::process_vm_writev(self.pid, &local, 1, &remote, 1, 0) };
        if n as usize == data.len() {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(libc::EFAULT))
        }
    }

    /// True while the notification is still pending, so the fds duplicated
    /// so far came from the thread that is waiting for this answer. Asks
    /// the kernel only when a duplicate went through a fresh pidfd; a
    /// cached pidfd that worked already proves it (see `ProcCache::dup_fd`).
    /// Whatever the answer, actions use only bytes the supervisor read and
    /// checked itself.
    pub fn still_valid(&self) -> bool {
        !self.fresh_pidfd.get() || self.pending()
    }

    /// Asks the kernel whether the notification is still pending (the
    /// thread alive and still in the syscall).
    pub fn pending(&self) -> bool {
        sys::notif::id_valid(self.fd, self.id)
    }

    /// Duplicates the workload's fd `fd` into the supervisor.
    pub fn dup_fd(&self, fd: i32) -> io::Result<OwnedFd> {
        let (dup, fresh) = self.procs.dup_fd(self.pid, fd)?;
        if fresh {
            self.fresh_pidfd.set(true);
        }
        Ok(dup)
    }

    /// Installs `src` in the workload and answers with its number.
    pub fn inject(&self, src: RawFd, cloexec: bool) -> Reply {
        match sys::notif::addfd_send(self.fd, self.id, src, cloexec) {
            Ok(_) => Reply::Done,
            // The task is gone or interrupted: nothing to answer.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Reply::Done,
            Err(e) => Reply::from_io(&e),
        }
    }

    /// Makes the workload's fd `newfd` refer to `src` from now on, without
    /// answering the syscall.
    pub fn replace_fd(&self, src: RawFd, newfd: i32, cloexec: bool) -> io::Result<()> {
        sys::notif::addfd_at(self.fd, self.id, src, newfd, cloexec)
    }

    /// Sends the answer. A vanished task (ENOENT) needs none.
    pub fn answer(&self, reply: Reply) {
        let (val, error, flags) = match reply {
            Reply::Done => return,
            Reply::Continue => (0, 0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32),
            Reply::Value(v) => (v, 0, 0),
            Reply::Errno(e) => (0, e.saturating_abs().max(1).saturating_neg(), 0),
        };
        let _ = sys::notif::send(self.fd, self.id, val, error, flags);
    }
}
