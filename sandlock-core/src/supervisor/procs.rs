//! Per-process handles the supervisor reuses across notifications: a pidfd
//! (for `pidfd_getfd`) and an open `/proc/<tid>/mem` (for reading
//! arguments), keyed by the notifying thread id.
//!
//! Opening either costs several microseconds, more than the rest of a
//! connect decision, so they are cached. A cached handle can only go stale,
//! never point elsewhere: a pidfd names one thread for life, and a mem fd
//! one address space for life. A stale handle fails (ESRCH, or a read of
//! zero bytes once the address space is gone), and is then replaced.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use crate::sys;

/// Entries kept per map; beyond it the map is cleared (threads come and
/// go; a cleared cache only costs a reopen).
const CAPACITY: usize = 512;

/// The cache. Cheap to share between receiver and worker threads.
#[derive(Debug, Default)]
pub struct ProcCache {
    pidfds: Mutex<ByTid<OwnedFd>>,
    mems: Mutex<ByTid<File>>,
}

/// Handles by thread id. Thread ids are the kernel's, not the workload's
/// choice: a fast hasher is enough.
type ByTid<T> = HashMap<i32, Arc<T>, foldhash::fast::RandomState>;

fn get_or_open<T>(
    map: &Mutex<ByTid<T>>,
    tid: i32,
    fresh: bool,
    open: impl FnOnce() -> io::Result<T>,
) -> io::Result<Arc<T>> {
    if !fresh {
        if let Some(v) = map.lock().ok().and_then(|m| m.get(&tid).cloned()) {
            return Ok(v);
        }
    }
    let v = Arc::new(open()?);
    if let Ok(mut m) = map.lock() {
        if m.len() >= CAPACITY {
            m.clear();
        }
        m.insert(tid, Arc::clone(&v));
    }
    Ok(v)
}

impl ProcCache {
    /// Duplicates fd `fd` of thread `tid`'s process. The flag is true when
    /// the duplicate came through a pidfd opened just now rather than one
    /// that was cached: a cached pidfd that still works names a thread
    /// that has been alive, with this tid, since it was cached, so it is
    /// the notifying thread; a fresh one may name a thread that reused
    /// the tid, and the caller must check the notification is still
    /// pending.
    pub fn dup_fd(&self, tid: i32, fd: RawFd) -> io::Result<(OwnedFd, bool)> {
        let cached = self.pidfds.lock().ok().and_then(|m| m.get(&tid).cloned());
        if let Some(pidfd) = cached {
            match sys::pidfd_getfd(pidfd.as_fd(), fd) {
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                other => return other.map(|dup| (dup, false)),
            }
        }
        let pidfd = get_or_open(&self.pidfds, tid, true, || open_pidfd(tid))?;
        sys::pidfd_getfd(pidfd.as_fd(), fd).map(|dup| (dup, true))
    }

    /// Reads up to `buf.len()` bytes at `addr` in thread `tid`'s address
    /// space; fewer when an unmapped page ends the range.
    pub fn read(&self, tid: i32, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mem = get_or_open(&self.mems, tid, false, || {
            File::open(format!("/proc/{tid}/mem"))
        })?;
        match mem.read_at(buf, addr) {
            Ok(n) if n > 0 => Ok(n),
            // Zero bytes or an error: the address space may have been
            // replaced (exec) or the thread id reused; reopen once.
            _ => {
                let mem = get_or_open(&self.mems, tid, true, || {
                    File::open(format!("/proc/{tid}/mem"))
                })?;
                match mem.read_at(buf, addr) {
                    Ok(0) => Err(io::Error::from_raw_os_error(libc::EFAULT)),
                    other => other,
                }
            }
        }
    }
}

/// A pidfd for `tid`, falling back to its thread group leader on kernels
/// without PIDFD_THREAD.
fn open_pidfd(tid: i32) -> io::Result<OwnedFd> {
    sys::pidfd_open(tid).or_else(|_| sys::pidfd_open(tgid_of(tid)?))
}

/// The thread group id of thread `tid`.
fn tgid_of(tid: i32) -> io::Result<i32> {
    task_ids(tid).map(|ids| ids.tgid)
}

/// Who a task is, as the kernel checks a credentials claim against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TaskIds {
    pub tgid: i32,
    /// The process id as the task itself sees it: the same as `tgid`
    /// unless it lives in a pid namespace of its own (the last `NStgid`).
    pub own_tgid: i32,
    /// Real, effective and saved user ids.
    pub uids: [u32; 3],
    /// Real, effective and saved group ids.
    pub gids: [u32; 3],
}

/// The ids of thread `tid`, from `/proc/<tid>/status`.
pub(super) fn task_ids(tid: i32) -> io::Result<TaskIds> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status"))?;
    parse_status(&status).ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))
}

fn parse_status(status: &str) -> Option<TaskIds> {
    let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name));
    let three = |name: &str| -> Option<[u32; 3]> {
        let mut it = field(name)?.split_whitespace().map(|v| v.parse().ok());
        Some([it.next()??, it.next()??, it.next()??])
    };
    let tgid = field("Tgid:")?.trim().parse().ok()?;
    let own_tgid = match field("NStgid:") {
        Some(v) => v.split_whitespace().last()?.parse().ok()?,
        None => tgid,
    };
    Some(TaskIds {
        tgid,
        own_tgid,
        uids: three("Uid:")?,
        gids: three("Gid:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields() {
        let s = "Name:\tx\nTgid:\t42\nPid:\t43\nUid:\t1\t2\t3\t4\nGid:\t5\t6\t7\t8\n";
        assert_eq!(
            parse_status(s),
            Some(TaskIds {
                tgid: 42,
                own_tgid: 42,
                uids: [1, 2, 3],
                gids: [5, 6, 7]
            })
        );
        let nested = format!("{s}NStgid:\t42\t2\n");
        assert_eq!(parse_status(&nested).map(|t| t.own_tgid), Some(2));
        assert_eq!(parse_status(&format!("{s}NStgid:\t42\tx\n")), None);
        assert_eq!(parse_status("Tgid:\t1\nUid:\t1\n"), None);
        let me = task_ids(std::process::id() as i32).expect("own status");
        assert_eq!(me.tgid, std::process::id() as i32);
    }
}
