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
use std::sync::Arc;

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

/// A path relative to the workload's cwd spelt through the cwd's procfs
/// link, `/proc/TID/cwd/PATH`: one lookup by the supervisor then starts
/// where the workload's would (the kernel jumps to the link's target and
/// goes on from there through `..` and symlinks alike), without opening
/// and closing the cwd first. Trapped opens are most often relative (git
/// reads its objects so), and on these machines each syscall saved is a
/// measurable share of the trap. `None` for an absolute path, a dirfd, a
/// path whose procfs self-reference `rewrite_self` must see, or one that
/// would outgrow `PATH_MAX` with the prefix: [`Start::new`] handles those.
fn through_proc_cwd(tid: i32, base: Base, path: &[u8]) -> Option<CString> {
    if base.0 != libc::AT_FDCWD || path.is_empty() || path.first() == Some(&b'/') {
        return None;
    }
    let first = path
        .split(|&b| b == b'/')
        .find(|c| !c.is_empty() && *c != b".");
    if first.is_some_and(|c| c == b"self" || c == b"thread-self") {
        return None;
    }
    let mut out = format!("/proc/{tid}/cwd/").into_bytes();
    if out.len().checked_add(path.len())? >= libc::PATH_MAX as usize {
        return None;
    }
    out.extend_from_slice(path);
    CString::new(out).ok()
}

/// Where the workload's absolute paths start.
#[derive(Debug, Clone)]
pub(super) enum Root {
    /// Where the supervisor's do: the workload shares its mount namespace.
    Shared,
    /// The root of the reaper's mount namespace (where `/proc` is the
    /// workload's), held since the supervisor started: every process of
    /// the sandbox has it unless it made namespaces of its own, and then
    /// the decision is still made on what the supervisor holds.
    Held(Arc<OwnedFd>),
    /// The calling process's own root, opened per call
    /// (`/proc/PID/root`): where the reaper's could not be held.
    PerCall,
}

impl Root {
    /// The root for a sandbox whose reaper is `reaper`, in namespaces of
    /// its own when `own_ns`.
    pub(super) fn of(reaper: i32, own_ns: bool) -> Root {
        if !own_ns {
            return Root::Shared;
        }
        let path = CString::new(format!("/proc/{reaper}/root")).expect("no NUL in a number");
        match sys::open_path(libc::AT_FDCWD, &path, libc::O_DIRECTORY) {
            Ok(fd) => Root::Held(Arc::new(fd)),
            Err(_) => Root::PerCall,
        }
    }
}

/// The directory a path is resolved from.
enum Dir {
    /// The supervisor's cwd (only for absolute paths and its own /proc).
    Here,
    /// Opened for this path (the workload's cwd or dirfd).
    Owned(OwnedFd),
    /// The workload's root, held for the run.
    Held(Arc<OwnedFd>),
}

/// A path from the workload, ready to resolve: the directory it starts
/// from (held by the supervisor) and the bytes relative to it.
pub(super) struct Start {
    dir: Dir,
    path: CString,
}

impl Start {
    /// Prepares `path` as the workload's call with `base` would start it,
    /// for a handle to act on: an absolute path starts at `root`, the
    /// workload's (in its own mount namespace, where `/proc` is its pid
    /// namespace's). Opening the workload's cwd or duplicating its dirfd
    /// needs the supervisor's full rights over the workload (ptrace
    /// access), so this runs before any of them are put aside.
    pub(super) fn new(n: &Notif, base: Base, path: &[u8], root: &Root) -> io::Result<Start> {
        let rewritten = rewrite_self(n, base, path);
        let (dir, path) = match rewritten.as_deref() {
            // The supervisor's own /proc names the workload's thread.
            Some(path) => (Dir::Here, path),
            None => Start::base_dir(n, base, path, root)?,
        };
        let path = CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        Ok(Start { dir, path })
    }

    /// [`Start::new`] for recognising a file by identity only (is it a
    /// virtual file?): an absolute path is resolved in the supervisor's
    /// namespace, which names the same files outside `/proc`.
    pub(super) fn for_identity(n: &Notif, base: Base, path: &[u8]) -> io::Result<Start> {
        if let Some(path) = through_proc_cwd(n.pid, base, path) {
            return Ok(Start {
                dir: Dir::Here,
                path,
            });
        }
        Start::new(n, base, path, &Root::Shared)
    }

    /// The directory `path` starts from and the rest of it: `root` for an
    /// absolute path, the workload's cwd or its dirfd otherwise.
    fn base_dir<'p>(
        n: &Notif,
        base: Base,
        path: &'p [u8],
        root: &Root,
    ) -> io::Result<(Dir, &'p [u8])> {
        let open = |p: String| {
            let c = CString::new(p).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
            sys::open_path(libc::AT_FDCWD, &c, libc::O_DIRECTORY)
        };
        if path.first() == Some(&b'/') {
            let rel = path
                .iter()
                .position(|&b| b != b'/')
                .map_or(&b"."[..], |i| &path[i..]);
            return Ok(match root {
                Root::Shared => (Dir::Here, path),
                Root::Held(fd) => (Dir::Held(Arc::clone(fd)), rel),
                Root::PerCall => (Dir::Owned(open(format!("/proc/{}/root", n.pid))?), rel),
            });
        }
        let dir = if base.0 == libc::AT_FDCWD {
            open(format!("/proc/{}/cwd", n.pid))?
        } else {
            n.dup_fd(base.0)?
        };
        Ok((Dir::Owned(dir), path))
    }
}

impl Start {
    /// The directory fd to resolve from (`AT_FDCWD` for a path in the
    /// supervisor's own /proc).
    pub(super) fn dirfd(&self) -> RawFd {
        match &self.dir {
            Dir::Here => libc::AT_FDCWD,
            Dir::Owned(fd) => fd.as_raw_fd(),
            Dir::Held(fd) => fd.as_raw_fd(),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn via(path: &[u8]) -> Option<Vec<u8>> {
        through_proc_cwd(42, Base(libc::AT_FDCWD), path).map(|c| c.into_bytes())
    }

    #[test]
    fn relative_paths_go_through_the_cwd_link() {
        assert_eq!(
            via(b"objects/ab/cd").unwrap(),
            b"/proc/42/cwd/objects/ab/cd"
        );
        assert_eq!(via(b"../x").unwrap(), b"/proc/42/cwd/../x");
        assert_eq!(via(b".").unwrap(), b"/proc/42/cwd/.");
        assert_eq!(via(b"./selfish").unwrap(), b"/proc/42/cwd/./selfish");
    }

    #[test]
    fn others_are_left_to_the_general_path() {
        assert_eq!(via(b"/etc/hosts"), None);
        assert_eq!(via(b""), None);
        assert_eq!(via(b"self/fd/3"), None);
        assert_eq!(via(b".//thread-self/x"), None);
        assert_eq!(via(b"a\0b"), None, "a NUL cannot be passed on");
        assert_eq!(through_proc_cwd(42, Base(3), b"x"), None);
    }

    #[test]
    fn a_path_too_long_with_the_prefix_is_left_alone() {
        let fits = vec![b'a'; libc::PATH_MAX as usize - "/proc/42/cwd/".len() - 1];
        assert!(via(&fits).is_some());
        let long = vec![b'a'; fits.len() + 1];
        assert_eq!(via(&long), None);
    }
}
