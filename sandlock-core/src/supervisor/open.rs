//! Virtual files: an open-family call that would read a virtualised path
//! (`/etc/hosts`, a trust bundle, a file that exists only in the sandbox)
//! gets a fresh read-only descriptor of a sealed memfd instead, installed
//! with ADDFD+SEND.
//!
//! A path "is" the virtual file when it names the same inode as the real
//! one, resolved the way the kernel would resolve it for the workload:
//! relative to its cwd or dirfd, through `..`, `//` and symlinks, with
//! O_NOFOLLOW and openat2's RESOLVE_* flags honoured. Every other open is
//! answered CONTINUE: Landlock decides it, and a path swapped after this
//! check can only make the workload open a real file Landlock allows.

use std::collections::HashSet;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::notif::{Notif, Reply};
use super::vfile::VirtualFile;
use super::Supervisor;
use crate::launch::seccomp::OPEN_NOT_A_READ;
use crate::sys;

/// True for open, openat and openat2.
pub fn is_open_family(nr: i64) -> bool {
    #[cfg(target_arch = "x86_64")]
    if nr == libc::SYS_open {
        return true;
    }
    nr == libc::SYS_openat || nr == libc::SYS_openat2
}

/// The arguments of an open-family call (or of a stat, which names files
/// the same way).
pub(super) struct OpenCall {
    pub dirfd: i32,
    pub path: u64,
    pub flags: i32,
    pub resolve: u64,
}

fn decode(n: &Notif) -> io::Result<OpenCall> {
    #[cfg(target_arch = "x86_64")]
    if n.nr() == libc::SYS_open {
        return Ok(OpenCall {
            dirfd: libc::AT_FDCWD,
            path: n.arg(0),
            flags: n.int(1),
            resolve: 0,
        });
    }
    if n.nr() == libc::SYS_openat {
        return Ok(OpenCall {
            dirfd: n.int(0),
            path: n.arg(1),
            flags: n.int(2),
            resolve: 0,
        });
    }
    // openat2(dirfd, path, struct open_how *how, size_t size)
    if n.arg(3) < 24 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let how = n.read(n.arg(2), 24)?;
    let word = |i: usize| u64::from_ne_bytes(how[i..i + 8].try_into().expect("8 bytes"));
    Ok(OpenCall {
        dirfd: n.int(0),
        path: n.arg(1),
        flags: word(0) as i32,
        resolve: word(16),
    })
}

/// Absolute paths already found not to name any virtual file, for paths
/// whose resolution the workload cannot change: nothing along them is
/// writable in the sandbox, and they have no `..`, `.`, `//` or procfs
/// magic. Repeated opens of such paths (headers, libraries, the same
/// config file from many processes) skip the `fstatat`. A path that later
/// comes to name `/etc/hosts` by the host's doing would keep reaching the
/// real file, which the system view grants anyway.
pub struct NotVirtualCache {
    writable: Vec<Vec<u8>>,
    /// Seen paths, by whether the open had O_NOFOLLOW. Looked up by the
    /// path read from the workload as is: a hit allocates nothing.
    seen: Mutex<[Seen; 2]>,
}

type Seen = HashSet<Box<[u8]>, foldhash::fast::RandomState>;

/// Entries kept before the cache starts over.
const CACHE_CAPACITY: usize = 8192;

impl NotVirtualCache {
    /// A cache that never holds paths under `writable`.
    pub fn new(writable: &[PathBuf]) -> NotVirtualCache {
        NotVirtualCache {
            writable: writable
                .iter()
                .map(|p| p.as_os_str().as_bytes().to_vec())
                .collect(),
            seen: Mutex::default(),
        }
    }

    /// The cache key for `path` opened with `call`'s flags, or `None`
    /// when its resolution could change under the workload.
    fn key<'p>(&self, call: &OpenCall, path: &'p [u8]) -> Option<Key<'p>> {
        if call.resolve != 0 || path.first() != Some(&b'/') || path.len() > 1024 {
            return None;
        }
        let unstable = |c: &[u8]| c.is_empty() || c == b"." || c == b"..";
        if path[1..].split(|&b| b == b'/').any(unstable)
            || path.starts_with(b"/proc/")
            || path.starts_with(b"/dev/fd/")
        {
            return None;
        }
        let under =
            |w: &Vec<u8>| path.starts_with(w) && (path.len() == w.len() || path[w.len()] == b'/');
        if self.writable.iter().any(under) {
            return None;
        }
        let set = usize::from(call.flags & libc::O_NOFOLLOW != 0);
        Some(Key { set, path })
    }

    /// Whether the path of `key` is known not to be virtual.
    fn contains(&self, key: &Key<'_>) -> bool {
        self.seen
            .lock()
            .is_ok_and(|s| s[key.set].contains(key.path))
    }

    /// Remembers that the path of `key` is not virtual.
    fn insert(&self, key: Key<'_>) {
        if let Ok(mut s) = self.seen.lock() {
            let set = &mut s[key.set];
            if set.len() >= CACHE_CAPACITY {
                set.clear();
            }
            set.insert(key.path.into());
        }
    }
}

/// A path whose resolution the workload cannot change, and the set (by
/// O_NOFOLLOW) it belongs in: only these enter the cache.
struct Key<'p> {
    set: usize,
    path: &'p [u8],
}

pub fn handle(sup: &Supervisor, n: &Notif) -> Reply {
    if sup.files.is_empty() {
        return Reply::Continue;
    }
    let call = match decode(n) {
        Ok(c) => c,
        Err(e) => return Reply::from_io(&e),
    };
    // open and openat with these flags never trap; openat2 does.
    if call.flags & OPEN_NOT_A_READ != 0 {
        return Reply::Continue;
    }
    // An unreadable path would fail in the kernel too: answer the same.
    let path = match n.read_cstr(call.path, libc::PATH_MAX as usize) {
        Ok(p) => p,
        Err(e) => return Reply::from_io(&e),
    };
    let key = sup.not_virtual.key(&call, &path);
    if key.as_ref().is_some_and(|k| sup.not_virtual.contains(k)) {
        return Reply::Continue;
    }
    let Some(file) = find(sup, n, &call, &path) else {
        if let Some(k) = key {
            sup.not_virtual.insert(k);
        }
        return Reply::Continue;
    };
    match file.open_fresh() {
        Ok(fd) => n.inject(fd.as_raw_fd(), call.flags & libc::O_CLOEXEC != 0),
        // Fail closed: never fall back to the real file.
        Err(e) => Reply::from_io(&e),
    }
}

/// The last component of `path`.
pub(super) fn basename(path: &[u8]) -> &[u8] {
    let trimmed = path.strip_suffix(b"/").unwrap_or(path);
    trimmed.rsplit(|&b| b == b'/').next().unwrap_or(trimmed)
}

/// The virtual file `path`, opened by the workload with `call`'s dirfd
/// and flags, would reach, if any.
pub(super) fn find(
    sup: &Supervisor,
    n: &Notif,
    call: &OpenCall,
    path: &[u8],
) -> Option<Arc<VirtualFile>> {
    if path.is_empty() {
        return None;
    }
    let v = &sup.files;
    let name = basename(path);
    if v.may_splice(name) {
        // Rare names only: resolve to an fd, to learn the canonical path.
        if let Ok(fd) = at_workload(n, call, path, |dirfd, p| open_path_as(dirfd, p, call)) {
            let id = sys::fstat(fd.as_fd())
                .ok()
                .map(|st| (st.st_dev, st.st_ino))?;
            if let Some(f) = v.by_inode(id) {
                return Some(f);
            }
            let canonical = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
            if let Ok(Some(f)) = v.splice_found(&fd, canonical.as_os_str().as_bytes(), id) {
                return Some(f);
            }
            return None;
        }
    } else if let Ok(id) = stat_as_workload(n, call, path) {
        if let Some(f) = v.by_inode(id) {
            return Some(f);
        }
    }
    if v.is_sandbox_only_name(name) && !path.ends_with(b"/") {
        let parent = &path[..path.len() - name.len()];
        let parent: &[u8] = if parent.is_empty() { b"." } else { parent };
        let dir_call = OpenCall {
            dirfd: call.dirfd,
            path: call.path,
            flags: 0,
            resolve: call.resolve,
        };
        let dir = stat_as_workload(n, &dir_call, parent).ok()?;
        return v.in_dir(dir, name);
    }
    None
}

/// The directory a relative path in `call` starts from, as the workload's
/// cwd or dirfd names it.
fn base_dir(n: &Notif, call: &OpenCall) -> io::Result<PathBuf> {
    if call.dirfd == libc::AT_FDCWD {
        std::fs::read_link(format!("/proc/{}/cwd", n.pid))
    } else {
        std::fs::read_link(format!("/proc/{}/fd/{}", n.pid, call.dirfd))
    }
}

/// Spellings that mean "this process" in procfs resolve to the caller,
/// which here would be the supervisor: rewrite them to name the workload's
/// thread explicitly (`/proc/self/...`, `/proc/thread-self/...`,
/// `/dev/fd/...`, and `self/...` relative to a directory that is /proc).
fn rewrite_self(n: &Notif, call: &OpenCall, path: &[u8]) -> Option<Vec<u8>> {
    let mut comps = path
        .split(|&b| b == b'/')
        .enumerate()
        .filter(|(_, c)| !c.is_empty() && *c != b".");
    let absolute = path.first() == Some(&b'/');
    let (first_i, first) = comps.next()?;
    let self_name = |c: &[u8]| c == b"self" || c == b"thread-self";
    let rest_from = |i: usize| {
        path.split(|&b| b == b'/')
            .skip(i + 1)
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
    if base_dir(n, call).ok()? != Path::new("/proc") {
        return None;
    }
    let mut out = head;
    out.extend_from_slice(&rest_from(first_i));
    Some(out)
}

/// Runs `op` on `path` relative to where the workload's call would start
/// (its cwd, its dirfd, or the root), with procfs self-references made to
/// name the workload.
fn at_workload<T>(
    n: &Notif,
    call: &OpenCall,
    path: &[u8],
    op: impl FnOnce(RawFd, &CString) -> io::Result<T>,
) -> io::Result<T> {
    let rewritten = rewrite_self(n, call, path);
    let path = rewritten.as_deref().unwrap_or(path);
    let absolute = path.first() == Some(&b'/');
    let base: Option<OwnedFd> = if absolute {
        None
    } else if call.dirfd == libc::AT_FDCWD {
        let cwd = CString::new(format!("/proc/{}/cwd", n.pid)).expect("no NUL");
        Some(sys::open_path(libc::AT_FDCWD, &cwd, libc::O_DIRECTORY)?)
    } else {
        Some(n.dup_fd(call.dirfd)?)
    };
    let dirfd = base.as_ref().map_or(libc::AT_FDCWD, |f| f.as_raw_fd());
    let cpath = CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    op(dirfd, &cpath)
}

/// (st_dev, st_ino) of what the workload's open would reach.
fn stat_as_workload(n: &Notif, call: &OpenCall, path: &[u8]) -> io::Result<(u64, u64)> {
    at_workload(n, call, path, |dirfd, cpath| {
        if call.resolve != 0 {
            let fd = open_path_as(dirfd, cpath, call)?;
            let st = sys::fstat(fd.as_fd())?;
            return Ok((st.st_dev, st.st_ino));
        }
        let nofollow = if call.flags & libc::O_NOFOLLOW != 0 {
            libc::AT_SYMLINK_NOFOLLOW
        } else {
            0
        };
        let st = sys::fstatat(dirfd, cpath, nofollow)?;
        Ok((st.st_dev, st.st_ino))
    })
}

/// An O_PATH descriptor of what the workload's open would reach, resolved
/// by the kernel exactly as for the workload (openat2 with its RESOLVE_*
/// flags and O_NOFOLLOW).
fn open_path_as(dirfd: RawFd, path: &CString, call: &OpenCall) -> io::Result<OwnedFd> {
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC | (call.flags & libc::O_NOFOLLOW)) as u64,
        mode: 0,
        resolve: call.resolve,
    };
    // SAFETY: `how` is a valid open_how of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd,
            path.as_ptr(),
            &how,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basenames() {
        assert_eq!(basename(b"/etc/ssl/certs/x.pem"), b"x.pem");
        assert_eq!(basename(b"x.pem"), b"x.pem");
        assert_eq!(basename(b"certs/"), b"certs");
        assert_eq!(basename(b"/"), b"");
    }
}
