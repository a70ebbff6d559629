//! Virtual files: an open-family call that would read a virtualised path
//! (`/etc/hosts`, a trust bundle, a file that exists only in the sandbox)
//! gets a fresh read-only descriptor of a sealed memfd instead, installed
//! with ADDFD+SEND.
//!
//! A path "is" the virtual file when it names the same inode as the real
//! one, resolved the way the kernel would resolve it for the workload
//! (see `resolve.rs`): relative to its cwd or dirfd, through `..`, `//`
//! and symlinks, with O_NOFOLLOW honoured. Every other open is answered
//! CONTINUE: Landlock decides it, and a path swapped after this check can
//! only make the workload open a real file Landlock allows. (openat2 never
//! gets here: the filter refuses it.)

use std::collections::HashSet;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::notif::{Notif, Reply};
use super::resolve::{Base, Start};
use super::vfile::VirtualFile;
use super::Supervisor;
use crate::launch::seccomp::OPEN_NOT_A_READ;
use crate::sys;

/// True for open and openat (openat2 is refused by the filter).
pub fn is_open_family(nr: i64) -> bool {
    #[cfg(target_arch = "x86_64")]
    if nr == libc::SYS_open {
        return true;
    }
    nr == libc::SYS_openat
}

/// The arguments of an open-family call (or of a stat, which names files
/// the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct OpenCall {
    pub dirfd: i32,
    pub path: u64,
    pub flags: i32,
    /// The mode of a file the call may create.
    pub mode: u32,
}

impl OpenCall {
    fn nofollow(&self) -> bool {
        self.flags & libc::O_NOFOLLOW != 0
    }
}

fn decode(n: &Notif) -> OpenCall {
    #[cfg(target_arch = "x86_64")]
    if n.nr() == libc::SYS_open {
        return OpenCall {
            dirfd: libc::AT_FDCWD,
            path: n.arg(0),
            flags: n.int(1),
            mode: n.arg(2) as u32,
        };
    }
    OpenCall {
        dirfd: n.int(0),
        path: n.arg(1),
        flags: n.int(2),
        mode: n.arg(3) as u32,
    }
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
        if path.first() != Some(&b'/') || path.len() > 1024 {
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
    let call = decode(n);
    // A create with setuid or setgid traps whatever else the policy says;
    // the mode is a register, so the refusal cannot be raced.
    if let Some(reply) = super::meta::refuse_privileged_create(sup, n, call.flags, call.mode) {
        return reply;
    }
    if let Some(reply) = super::meta::refuse_read_only_truncate(sup, n, call.flags) {
        return reply;
    }
    // Opens with these flags trap only for the check above.
    if sup.files.is_empty() || call.flags & OPEN_NOT_A_READ != 0 {
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
    let start = Start::for_identity(n, Base(call.dirfd), path).ok()?;
    if v.may_splice(name) {
        // Rare names only: resolve to an fd, to learn the canonical path.
        if let Ok(fd) = start.open(call.nofollow()) {
            let id = sys::fstat(fd.as_fd())
                .ok()
                .map(|st| (st.st_dev, st.st_ino))?;
            if let Some(f) = v.by_inode(id) {
                return Some(f);
            }
            let canonical = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
            if let Ok(Some(f)) =
                v.splice_found(&fd, canonical.as_os_str().as_bytes(), id, sup.as_workload)
            {
                return Some(f);
            }
            return None;
        }
    } else if let Ok(id) = start.id(call.nofollow()) {
        if let Some(f) = v.by_inode(id) {
            return Some(f);
        }
    }
    if v.is_sandbox_only_name(name) && !path.ends_with(b"/") {
        let parent = &path[..path.len().saturating_sub(name.len())];
        let parent: &[u8] = if parent.is_empty() { b"." } else { parent };
        let dir = Start::for_identity(n, Base(call.dirfd), parent)
            .ok()?
            .id(false)
            .ok()?;
        return v.in_dir(dir, name);
    }
    None
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
