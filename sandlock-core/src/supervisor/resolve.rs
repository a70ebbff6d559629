//! Paths the workload names, resolved by the supervisor the way the kernel
//! resolves them for the workload: relative to its cwd or to one of its
//! directory fds, through `..`, `//` and symlinks, with procfs
//! self-references (`/proc/self`, `/proc/thread-self`, `/dev/fd`) made to
//! name the workload rather than the supervisor.
//!
//! Owns turning a path from the workload's memory into a handle the
//! supervisor holds: an `O_PATH` descriptor of the very inode the
//! workload's call would reach. A decision is then made on that handle and
//! any action performed through it, so a path swapped in the workload's
//! memory after it was read changes nothing.
//!
//! Must never open anything for reading or writing (only `O_PATH`), and
//! never resolve against the supervisor's own cwd.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use super::notif::Notif;
use crate::sys;

/// Where a relative path starts: the workload's cwd or a directory fd of
/// its own (`AT_FDCWD` for the cwd).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Base(pub i32);

/// The directory a relative path from `base` starts in, as a path (for
/// recognising `/proc` itself).
fn base_path(n: &Notif, base: Base) -> io::Result<PathBuf> {
    if base.0 == libc::AT_FDCWD {
        std::fs::read_link(format!("/proc/{}/cwd", n.pid))
    } else {
        std::fs::read_link(format!("/proc/{}/fd/{}", n.pid, base.0))
    }
}

/// Rewrites spellings that mean "this process" in procfs, which would
/// name the supervisor if it resolved them as they are, to name the
/// workload's thread explicitly: `/proc/self/...`,
/// `/proc/thread-self/...`, `/dev/fd/...`, and `self/...` relative to a
/// directory that is `/proc`.
fn rewrite_self(n: &Notif, base: Base, path: &[u8]) -> Option<Vec<u8>> {
    let mut comps = path
        .split(|&b| b == b'/')
        .enumerate()
        .filter(|(_, c)| !c.is_empty() && *c != b".");
    let absolute = path.first() == Some(&b'/');
    let (first_i, first) = comps.next()?;
    let self_name = |c: &[u8]| c == b"self" || c == b"thread-self";
    let rest_from = |i: usize| {
        path.split(|&b| b == b'/')
            .skip(i.saturating_add(1))
            .collect::<Vec<_>>()
            .join(&b'/')
    };
    let head = format!("/proc/{}/", n.pid).into_bytes();
    if absolute {
        let (second_i, second) = comps.next()?;
        let fd_dir = first == b"dev" && second == b"fd";
        if (first == b"proc" && self_name(second)) || fd_dir {
            let mut out = head;
            if fd_dir {
                out.extend_from_slice(b"fd/");
            }
            out.extend_from_slice(&rest_from(second_i));
            return Some(out);
        }
        return None;
    }
    if !self_name(first) {
        return None;
    }
    if base_path(n, base).ok()? != Path::new("/proc") {
        return None;
    }
    let mut out = head;
    out.extend_from_slice(&rest_from(first_i));
    Some(out)
}

/// A path from the workload, ready to resolve: the directory it starts
/// from (held by the supervisor) and the bytes relative to it.
pub(super) struct Start {
    dir: Option<OwnedFd>,
    path: CString,
}

impl Start {
    /// Prepares `path` as the workload's call with `base` would start it,
    /// for a handle to act on: an absolute path starts at the workload's
    /// root, in its own mount namespace (where `/proc` is its pid
    /// namespace's). Opening the workload's root or cwd or duplicating
    /// its dirfd needs the supervisor's full rights over the workload
    /// (ptrace access), so this runs before any of them are put aside.
    pub(super) fn new(n: &Notif, base: Base, path: &[u8]) -> io::Result<Start> {
        Start::prepare(n, base, path, true)
    }

    /// [`Start::new`] for recognising a file by identity only (is it a
    /// virtual file?): an absolute path is resolved in the supervisor's
    /// namespace, which names the same files outside `/proc` and saves
    /// opening the workload's root on every trapped open.
    pub(super) fn for_identity(n: &Notif, base: Base, path: &[u8]) -> io::Result<Start> {
        Start::prepare(n, base, path, false)
    }

    fn prepare(n: &Notif, base: Base, path: &[u8], in_root: bool) -> io::Result<Start> {
        let rewritten = rewrite_self(n, base, path);
        let (dir, path) = match rewritten.as_deref() {
            // The supervisor's own /proc names the workload's thread.
            Some(path) => (None, path),
            None if !in_root && path.first() == Some(&b'/') => (None, path),
            None => Start::base_dir(n, base, path)?,
        };
        let path = CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        Ok(Start { dir, path })
    }

    /// The directory `path` starts from and the rest of it: the workload's
    /// root for an absolute path (its own mount namespace, where `/proc`
    /// is its pid namespace's), its cwd or its dirfd otherwise.
    fn base_dir<'p>(
        n: &Notif,
        base: Base,
        path: &'p [u8],
    ) -> io::Result<(Option<OwnedFd>, &'p [u8])> {
        let root = |p: String| {
            let c = CString::new(p).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
            sys::open_path(libc::AT_FDCWD, &c, libc::O_DIRECTORY)
        };
        if path.first() == Some(&b'/') {
            let rel = path
                .iter()
                .position(|&b| b != b'/')
                .map_or(&b"."[..], |i| &path[i..]);
            return Ok((Some(root(format!("/proc/{}/root", n.pid))?), rel));
        }
        let dir = if base.0 == libc::AT_FDCWD {
            root(format!("/proc/{}/cwd", n.pid))?
        } else {
            n.dup_fd(base.0)?
        };
        Ok((Some(dir), path))
    }
}

impl Start {
    /// The directory fd to resolve from (`AT_FDCWD` for a path in the
    /// supervisor's own /proc).
    pub(super) fn dirfd(&self) -> RawFd {
        self.dir.as_ref().map_or(libc::AT_FDCWD, |f| f.as_raw_fd())
    }

    /// An `O_PATH` handle of what the path names, following a final
    /// symlink unless `nofollow`.
    pub(super) fn open(&self, nofollow: bool) -> io::Result<OwnedFd> {
        let flags = if nofollow { libc::O_NOFOLLOW } else { 0 };
        sys::open_path(self.dirfd(), &self.path, flags)
    }

    /// (st_dev, st_ino) of what the path names.
    pub(super) fn id(&self, nofollow: bool) -> io::Result<(u64, u64)> {
        let flags = if nofollow {
            libc::AT_SYMLINK_NOFOLLOW
        } else {
            0
        };
        let st = sys::fstatat(self.dirfd(), &self.path, flags)?;
        Ok((st.st_dev, st.st_ino))
    }
}
