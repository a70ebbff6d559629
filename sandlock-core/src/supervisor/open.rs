//! Virtual files: an open-family call that would read a virtualised path
//! (today `/etc/hosts`) gets a fresh read-only descriptor of a sealed memfd
//! instead, installed with ADDFD+SEND.
//!
//! A path "is" the virtual file when it names the same inode as the real
//! one, resolved the way the kernel would resolve it for the workload:
//! relative to its cwd or dirfd, through `..`, `//` and symlinks, with
//! O_NOFOLLOW and openat2's RESOLVE_* flags honoured. Every other open is
//! answered CONTINUE: Landlock decides it, and a path swapped after this
//! check can only make the workload open a real file Landlock allows.

use std::collections::HashSet;
use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use super::notif::{Notif, Reply};
use super::Supervisor;
use crate::sys;

/// A file the sandbox sees with content from memory.
pub struct VirtualFile {
    path: PathBuf,
    /// (st_dev, st_ino) of the real file, when it exists.
    real: Option<(u64, u64)>,
    /// Kept open: `reopen` names it through /proc/self/fd.
    _memfd: OwnedFd,
    reopen: CString,
}

impl VirtualFile {
    /// Serves `content` wherever the workload opens `path` for reading.
    pub fn new(path: &str, content: &[u8]) -> io::Result<VirtualFile> {
        let memfd = sys::sealed_memfd(c"sandlock-virtual", content)?;
        let real = std::fs::metadata(path).ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino())
        });
        let reopen = CString::new(format!("/proc/self/fd/{}", memfd.as_raw_fd())).expect("no NUL");
        Ok(VirtualFile {
            path: PathBuf::from(path),
            real,
            _memfd: memfd,
            reopen,
        })
    }

    /// A new open file description of the content, so every open has its
    /// own offset.
    fn open_fresh(&self) -> io::Result<OwnedFd> {
        // SAFETY: valid C string; flags are constants.
        let fd = unsafe { libc::open(self.reopen.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fresh fd.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

/// True for open, openat and openat2.
pub fn is_open_family(nr: i64) -> bool {
    #[cfg(target_arch = "x86_64")]
    if nr == libc::SYS_open {
        return true;
    }
    nr == libc::SYS_openat || nr == libc::SYS_openat2
}

/// Flags that make an open something other than a plain read.
const NOT_A_READ: i32 = libc::O_WRONLY
    | libc::O_RDWR
    | libc::O_CREAT
    | libc::O_TRUNC
    | libc::O_PATH
    | libc::O_DIRECTORY;

struct OpenCall {
    dirfd: i32,
    path: u64,
    flags: i32,
    resolve: u64,
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
    seen: Mutex<HashSet<Vec<u8>>>,
}

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

    /// The cache key for `path`, or `None` when its resolution could
    /// change under the workload.
    fn key(&self, call: &OpenCall, path: &[u8]) -> Option<Vec<u8>> {
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
        let mut key = Vec::with_capacity(path.len() + 1);
        key.push((call.flags & libc::O_NOFOLLOW != 0) as u8);
        key.extend_from_slice(path);
        Some(key)
    }

    fn contains(&self, key: &[u8]) -> bool {
        self.seen.lock().is_ok_and(|s| s.contains(key))
    }

    fn insert(&self, key: Vec<u8>) {
        if let Ok(mut s) = self.seen.lock() {
            if s.len() >= CACHE_CAPACITY {
                s.clear();
            }
            s.insert(key);
        }
    }
}

pub fn handle(sup: &Supervisor, n: &Notif) -> Reply {
    if sup.files.is_empty() {
        return Reply::Continue;
    }
    let call = match decode(n) {
        Ok(c) => c,
        Err(e) => return Reply::from_io(&e),
    };
    if call.flags & NOT_A_READ != 0 {
        return Reply::Continue;
    }
    // An unreadable path would fail in the kernel too: answer the same.
    let path = match n.read_cstr(call.path, libc::PATH_MAX as usize) {
        Ok(p) => p,
        Err(e) => return Reply::from_io(&e),
    };
    let key = sup.not_virtual.key(&call, &path);
    if key.as_deref().is_some_and(|k| sup.not_virtual.contains(k)) {
        return Reply::Continue;
    }
    let Some(file) = sup.files.iter().find(|f| names_file(n, &call, &path, f)) else {
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

/// Does `path`, opened by the workload with `call`'s dirfd and flags, name
/// the virtual file?
fn names_file(n: &Notif, call: &OpenCall, path: &[u8], file: &VirtualFile) -> bool {
    if path.is_empty() {
        return false;
    }
    match (file.real, stat_as_workload(n, call, path)) {
        (Some(real), Ok(id)) => id == real,
        // The real file does not exist: compare spellings instead.
        (None, _) => lexical_match(n, call, path, &file.path),
        (Some(_), Err(_)) => false,
    }
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

/// (st_dev, st_ino) of what the workload's open would reach.
fn stat_as_workload(n: &Notif, call: &OpenCall, path: &[u8]) -> io::Result<(u64, u64)> {
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
    if call.resolve != 0 {
        return stat_resolved(dirfd, &cpath, call);
    }
    let nofollow = if call.flags & libc::O_NOFOLLOW != 0 {
        libc::AT_SYMLINK_NOFOLLOW
    } else {
        0
    };
    let st = sys::fstatat(dirfd, &cpath, nofollow)?;
    Ok((st.st_dev, st.st_ino))
}

/// openat2 with RESOLVE_* flags: let the kernel resolve exactly as it
/// would for the workload, as an O_PATH open.
fn stat_resolved(dirfd: RawFd, path: &CString, call: &OpenCall) -> io::Result<(u64, u64)> {
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
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let st = sys::fstat(fd.as_fd())?;
    Ok((st.st_dev, st.st_ino))
}

/// Spelling comparison after making the path absolute and folding `.`,
/// `..` and repeated slashes (used only when the real file is missing).
fn lexical_match(n: &Notif, call: &OpenCall, path: &[u8], target: &Path) -> bool {
    let p = Path::new(OsStr::from_bytes(path));
    let full = if p.is_absolute() {
        p.to_path_buf()
    } else {
        match base_dir(n, call) {
            Ok(b) => b.join(p),
            Err(_) => return false,
        }
    };
    normalize(&full) == target
}

fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(s) => out.push(s),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_spellings() {
        for s in [
            "/etc/hosts",
            "//etc/hosts",
            "/etc/../etc/hosts",
            "/etc/./hosts",
            "/../etc/hosts",
        ] {
            assert_eq!(normalize(Path::new(s)), Path::new("/etc/hosts"), "{s}");
        }
        assert_ne!(
            normalize(Path::new("/etc/hosts/..")),
            Path::new("/etc/hosts")
        );
    }
}
