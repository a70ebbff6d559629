//! Lookups by path of files that exist only inside the sandbox: the stat
//! family (stat, lstat, newfstatat, statx), the access family (access,
//! faccessat, faccessat2) and the extended-attribute reads `ls -l` makes
//! (getxattr, lgetxattr, listxattr, llistxattr).
//!
//! The seccomp filter traps them only while such a file exists (see
//! `launch/filter/rules.rs`). A file that exists only in the sandbox (the
//! CA alone, the full bundle, OpenSSL's `<hash>.0`) has no real inode, so
//! the kernel would answer ENOENT; OpenSSL's hashed-directory lookup stats
//! `<dir>/<hash>.0` before opening it and would never reach the memfd the
//! open handler serves. This module answers such a lookup from the memfd:
//! its `fstat`/`statx`, presented as a regular read-only file (mode 0444,
//! one link), written into the caller's buffer; read access only; no
//! extended attributes.
//!
//! Owns: decoding these calls, and the answer for a path that reaches a
//! sandbox-only file (resolved by `open::find`, the way the open handler
//! resolves it, so stat and open always agree). Every other lookup is
//! answered CONTINUE: a stat is not a security decision (Landlock does not
//! govern it), and a path swapped after our check only changes what the
//! workload learns about a file it could stat anyway. Most lookups leave
//! at the first test, on the basename, without a single syscall.
//!
//! Must never: answer for a path that reaches a real file (the kernel
//! does that); write anywhere in the workload but the caller's own
//! out-buffer, and only while its notification is pending (so the thread
//! id still names the caller); write more than the kernel's structure for
//! that syscall; or claim write or execute access to the sealed content.

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsRawFd, BorrowedFd};

use super::notif::{Notif, Reply};
use super::open::{self, OpenCall};
use super::vfile::Place;
use super::Supervisor;

/// True for the lookups by path this module answers.
pub fn is_stat_family(nr: i64) -> bool {
    #[cfg(target_arch = "x86_64")]
    if nr == libc::SYS_stat || nr == libc::SYS_lstat || nr == libc::SYS_access {
        return true;
    }
    nr == libc::SYS_newfstatat
        || nr == libc::SYS_statx
        || nr == libc::SYS_faccessat
        || nr == libc::SYS_faccessat2
        || is_xattr(nr)
}

fn is_xattr(nr: i64) -> bool {
    nr == libc::SYS_getxattr
        || nr == libc::SYS_lgetxattr
        || nr == libc::SYS_listxattr
        || nr == libc::SYS_llistxattr
}

/// What the call wants to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// stat, lstat, newfstatat: a `struct stat` at `buf`.
    Stat,
    /// statx: a `struct statx` at `buf`, with the fields `mask` asks for.
    Statx { mask: u32 },
    /// access, faccessat, faccessat2: whether `mode` is allowed.
    Access { mode: i32 },
    /// getxattr, lgetxattr: the attribute named at `name`.
    GetXattr { name: u64 },
    /// listxattr, llistxattr: the attribute names.
    ListXattr,
}

/// A decoded lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StatCall {
    kind: Kind,
    dirfd: i32,
    /// Address of the path in the workload.
    path: u64,
    /// AT_* flags.
    flags: i32,
    /// Address of the out-buffer (0 for the access family).
    buf: u64,
}

/// AT_* flags the kernel accepts for the stat family.
const STAT_FLAGS: i32 = libc::AT_SYMLINK_NOFOLLOW
    | libc::AT_NO_AUTOMOUNT
    | libc::AT_EMPTY_PATH
    | libc::AT_STATX_SYNC_TYPE;
/// AT_* flags the kernel accepts for faccessat2.
const ACCESS_FLAGS: i32 = libc::AT_EACCESS | libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH;
/// The longest extended attribute name.
const XATTR_NAME_MAX: usize = 255;
/// The access modes (R_OK, W_OK, X_OK).
const ACCESS_MODES: i32 = libc::R_OK | libc::W_OK | libc::X_OK;

// The kernel's `struct stat` on x86_64, which `libc::stat` must match.
#[cfg(target_arch = "x86_64")]
const _: () = assert!(size_of::<libc::stat>() == 144);
const _: () = assert!(size_of::<libc::statx>() == 256);

fn nofollow_if(yes: bool) -> i32 {
    if yes {
        libc::AT_SYMLINK_NOFOLLOW
    } else {
        0
    }
}

/// Decodes `nr` with `args`. `None` when it is not a lookup this module
/// answers: another syscall, or arguments the kernel refuses with EINVAL
/// whatever the path (CONTINUE gives the workload that same error).
fn decode(nr: i64, args: &[u64; 6]) -> Option<StatCall> {
    let int = |i: usize| args[i] as u32 as i32;
    let call = |kind, dirfd, path, flags, buf| StatCall {
        kind,
        dirfd,
        path,
        flags,
        buf,
    };
    #[cfg(target_arch = "x86_64")]
    {
        let cwd = libc::AT_FDCWD;
        match nr {
            libc::SYS_stat => return Some(call(Kind::Stat, cwd, args[0], 0, args[1])),
            libc::SYS_lstat => {
                let nofollow = libc::AT_SYMLINK_NOFOLLOW;
                return Some(call(Kind::Stat, cwd, args[0], nofollow, args[1]));
            }
            libc::SYS_access => {
                let mode = int(1);
                return (mode & !ACCESS_MODES == 0)
                    .then(|| call(Kind::Access { mode }, cwd, args[0], 0, 0));
            }
            _ => {}
        }
    }
    let decoded = match nr {
        libc::SYS_newfstatat => call(Kind::Stat, int(0), args[1], int(3), args[2]),
        libc::SYS_statx => {
            let mask = args[3] as u32;
            let flags = int(2);
            let sync = libc::AT_STATX_SYNC_TYPE;
            if mask & libc::STATX__RESERVED as u32 != 0 || flags & sync == sync {
                return None;
            }
            call(Kind::Statx { mask }, int(0), args[1], flags, args[4])
        }
        libc::SYS_getxattr | libc::SYS_lgetxattr => {
            let flags = nofollow_if(nr == libc::SYS_lgetxattr);
            let kind = Kind::GetXattr { name: args[1] };
            call(kind, libc::AT_FDCWD, args[0], flags, 0)
        }
        libc::SYS_listxattr | libc::SYS_llistxattr => {
            let flags = nofollow_if(nr == libc::SYS_llistxattr);
            call(Kind::ListXattr, libc::AT_FDCWD, args[0], flags, 0)
        }
        libc::SYS_faccessat | libc::SYS_faccessat2 => {
            let flags = if nr == libc::SYS_faccessat2 {
                int(3)
            } else {
                0
            };
            let mode = int(2);
            if mode & !ACCESS_MODES != 0 || flags & !ACCESS_FLAGS != 0 {
                return None;
            }
            return Some(call(Kind::Access { mode }, int(0), args[1], flags, 0));
        }
        _ => return None,
    };
    (decoded.flags & !STAT_FLAGS == 0).then_some(decoded)
}

impl StatCall {
    /// The open that would reach the same file: the lookup resolves the
    /// path exactly like it.
    fn as_open(&self) -> OpenCall {
        let nofollow = if self.flags & libc::AT_SYMLINK_NOFOLLOW != 0 {
            libc::O_NOFOLLOW
        } else {
            0
        };
        OpenCall {
            dirfd: self.dirfd,
            path: self.path,
            flags: libc::O_RDONLY | nofollow,
            mode: 0,
        }
    }
}

/// Answers a trapped lookup: from the memfd when its path reaches a
/// sandbox-only file, CONTINUE otherwise.
pub fn handle(sup: &Supervisor, n: &Notif) -> Reply {
    let args = std::array::from_fn(|i| n.arg(i));
    let Some(call) = decode(n.nr(), &args) else {
        return Reply::Continue;
    };
    // An unreadable path would fail in the kernel too: answer the same.
    let path = match n.read_cstr(call.path, libc::PATH_MAX as usize) {
        Ok(p) => p,
        Err(e) => return Reply::from_io(&e),
    };
    // fstat of the dirfd: names no path.
    if path.is_empty() && call.flags & libc::AT_EMPTY_PATH != 0 {
        return Reply::Continue;
    }
    // The fast path, for nearly every lookup.
    if !sup.files.is_sandbox_only_name(open::basename(&path)) {
        return Reply::Continue;
    }
    match open::find(sup, n, &call.as_open(), &path) {
        Some(file) if matches!(file.place(), Place::InDir { .. }) => answer(n, &call, file.memfd()),
        // A real file, or nothing: the kernel answers.
        _ => Reply::Continue,
    }
}

/// Answers `call` for a path that reaches the sandbox-only file `memfd`.
fn answer(n: &Notif, call: &StatCall, memfd: BorrowedFd<'_>) -> Reply {
    let bytes = match call.kind {
        Kind::Access { mode } if mode & (libc::W_OK | libc::X_OK) != 0 => {
            return finish(n, Reply::Errno(libc::EACCES))
        }
        Kind::Access { .. } => return finish(n, Reply::Value(0)),
        Kind::ListXattr => return finish(n, Reply::Value(0)),
        Kind::GetXattr { name } => {
            // A name the kernel refuses (ERANGE, EFAULT) before looking
            // at the path: let it.
            return match n.read_cstr(name, XATTR_NAME_MAX + 1) {
                Ok(name) if !name.is_empty() => finish(n, Reply::Errno(libc::ENODATA)),
                _ => Reply::Continue,
            };
        }
        Kind::Stat => stat_bytes(memfd),
        Kind::Statx { mask } => statx_bytes(memfd, call.flags, mask),
    };
    let bytes = match bytes {
        Ok(b) => b,
        // The memfd cannot be examined: say so rather than let the
        // kernel call the file missing.
        Err(e) => return Reply::from_io(&e),
    };
    // The thread id names the caller only while it waits for this answer.
    if !n.pending() {
        return Reply::Done;
    }
    if n.write(call.buf, &bytes).is_err() {
        return Reply::Errno(libc::EFAULT);
    }
    finish(n, Reply::Value(0))
}

/// `reply`, unless the notification went away meanwhile.
fn finish(n: &Notif, reply: Reply) -> Reply {
    if n.still_valid() {
        reply
    } else {
        Reply::Done
    }
}

/// The mode the workload sees: the memfd's type, read-only for everyone
/// (the content is sealed; memfds report 0777).
fn read_only(mode: u32) -> u32 {
    (mode & libc::S_IFMT) | 0o444
}

/// The kernel's `struct stat` for `memfd`, as the workload should see it.
fn stat_bytes(memfd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    let mut st = MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: `st` is a writable, properly aligned `struct stat`; the fd
    // is open for the duration of the call.
    if unsafe { libc::fstat(memfd.as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zero-initialised, then filled by the kernel: every field
    // is initialised plain old data.
    let mut st = unsafe { st.assume_init() };
    st.st_mode = read_only(st.st_mode);
    // A memfd is unlinked; the file it stands for sits in a directory.
    st.st_nlink = 1;
    Ok(pod_bytes(&st))
}

/// The kernel's `struct statx` for `memfd` with the fields `mask` asks
/// for, synchronised as `flags` ask, as the workload should see it.
fn statx_bytes(memfd: BorrowedFd<'_>, flags: i32, mask: u32) -> io::Result<Vec<u8>> {
    let mut stx = MaybeUninit::<libc::statx>::zeroed();
    let flags = libc::AT_EMPTY_PATH | (flags & libc::AT_STATX_SYNC_TYPE);
    // SAFETY: valid fd, an empty C string with AT_EMPTY_PATH, and a
    // writable, properly aligned `struct statx` of the size the kernel
    // writes.
    let r = unsafe {
        libc::syscall(
            libc::SYS_statx,
            memfd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            mask,
            stx.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zero-initialised, then filled by the kernel: every field
    // is initialised plain old data.
    let mut stx = unsafe { stx.assume_init() };
    stx.stx_mode = read_only(u32::from(stx.stx_mode)) as u16;
    stx.stx_nlink = 1;
    Ok(pod_bytes(&stx))
}

/// Kernel structures declared without implicit padding (their holes are
/// named fields), so every byte of a value is initialised.
trait NoPadding: Copy {}
impl NoPadding for libc::stat {}
impl NoPadding for libc::statx {}

/// The bytes of a kernel structure, for the workload.
fn pod_bytes<T: NoPadding>(v: &T) -> Vec<u8> {
    // SAFETY: `v` is a live `T` of `size_of::<T>()` bytes, and `NoPadding`
    // types have no padding, so every byte read is initialised.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    const CWD: u64 = libc::AT_FDCWD as u32 as u64;

    fn stat_call(kind: Kind, dirfd: i32, path: u64, flags: i32, buf: u64) -> StatCall {
        StatCall {
            kind,
            dirfd,
            path,
            flags,
            buf,
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn legacy_calls_are_relative_to_the_cwd() {
        let cwd = libc::AT_FDCWD;
        let nofollow = libc::AT_SYMLINK_NOFOLLOW;
        assert_eq!(
            decode(libc::SYS_stat, &[10, 20, 0, 0, 0, 0]),
            Some(stat_call(Kind::Stat, cwd, 10, 0, 20))
        );
        assert_eq!(
            decode(libc::SYS_lstat, &[10, 20, 0, 0, 0, 0]),
            Some(stat_call(Kind::Stat, cwd, 10, nofollow, 20))
        );
        assert_eq!(
            decode(libc::SYS_access, &[10, libc::R_OK as u64, 0, 0, 0, 0]),
            Some(stat_call(Kind::Access { mode: 4 }, cwd, 10, 0, 0))
        );
        // An unknown mode bit: the kernel's EINVAL.
        assert_eq!(decode(libc::SYS_access, &[10, 8, 0, 0, 0, 0]), None);
    }

    #[test]
    fn at_calls() {
        let nofollow = libc::AT_SYMLINK_NOFOLLOW;
        assert_eq!(
            decode(libc::SYS_newfstatat, &[3, 10, 20, nofollow as u64, 0, 0]),
            Some(stat_call(Kind::Stat, 3, 10, nofollow, 20))
        );
        assert_eq!(
            decode(libc::SYS_statx, &[CWD, 10, 0, 0x7ff, 20, 0]),
            Some(stat_call(
                Kind::Statx { mask: 0x7ff },
                libc::AT_FDCWD,
                10,
                0,
                20
            ))
        );
        assert_eq!(
            decode(
                libc::SYS_faccessat,
                &[3, 10, libc::F_OK as u64, 0xffff, 0, 0]
            ),
            Some(stat_call(Kind::Access { mode: 0 }, 3, 10, 0, 0))
        );
        assert_eq!(
            decode(
                libc::SYS_faccessat2,
                &[3, 10, libc::W_OK as u64, libc::AT_EACCESS as u64, 0, 0]
            ),
            Some(stat_call(
                Kind::Access { mode: libc::W_OK },
                3,
                10,
                libc::AT_EACCESS,
                0
            ))
        );
        assert_eq!(decode(libc::SYS_openat, &[CWD, 10, 0, 0, 0, 0]), None);
    }

    #[test]
    fn xattr_reads_are_lookups_by_path() {
        let cwd = libc::AT_FDCWD;
        let nofollow = libc::AT_SYMLINK_NOFOLLOW;
        assert_eq!(
            decode(libc::SYS_getxattr, &[10, 30, 0, 0, 0, 0]),
            Some(stat_call(Kind::GetXattr { name: 30 }, cwd, 10, 0, 0))
        );
        assert_eq!(
            decode(libc::SYS_lgetxattr, &[10, 30, 0, 0, 0, 0]),
            Some(stat_call(Kind::GetXattr { name: 30 }, cwd, 10, nofollow, 0))
        );
        assert_eq!(
            decode(libc::SYS_listxattr, &[10, 0, 0, 0, 0, 0]),
            Some(stat_call(Kind::ListXattr, cwd, 10, 0, 0))
        );
        assert_eq!(
            decode(libc::SYS_llistxattr, &[10, 0, 0, 0, 0, 0]),
            Some(stat_call(Kind::ListXattr, cwd, 10, nofollow, 0))
        );
        assert!(!is_stat_family(libc::SYS_fgetxattr));
        assert!(!is_stat_family(libc::SYS_setxattr));
    }

    #[test]
    fn int_arguments_ignore_the_upper_half() {
        // The kernel reads dirfd and flags as C ints.
        let garbage = 0xdead_beef_0000_0000;
        assert_eq!(
            decode(
                libc::SYS_newfstatat,
                &[garbage | 3, 10, 20, garbage | 0x100, 0, 0]
            ),
            Some(stat_call(Kind::Stat, 3, 10, libc::AT_SYMLINK_NOFOLLOW, 20))
        );
    }

    #[test]
    fn arguments_the_kernel_refuses_are_left_to_it() {
        // Unknown AT_* flags.
        assert_eq!(
            decode(libc::SYS_newfstatat, &[CWD, 10, 20, 0x1, 0, 0]),
            None
        );
        assert_eq!(decode(libc::SYS_statx, &[CWD, 10, 0x1, 0x7ff, 20, 0]), None);
        assert_eq!(
            decode(libc::SYS_faccessat2, &[CWD, 10, 0, 0x1000_0000, 0, 0]),
            None
        );
        // statx: a reserved mask bit, or both sync modes at once.
        assert_eq!(
            decode(libc::SYS_statx, &[CWD, 10, 0, 0x8000_0000, 20, 0]),
            None
        );
        let both = libc::AT_STATX_SYNC_TYPE as u64;
        assert_eq!(
            decode(libc::SYS_statx, &[CWD, 10, both, 0x7ff, 20, 0]),
            None
        );
        // faccessat: an unknown mode bit.
        assert_eq!(decode(libc::SYS_faccessat, &[CWD, 10, 0x10, 0, 0, 0]), None);
    }

    #[test]
    fn nofollow_carries_over_to_the_open() {
        let c = stat_call(Kind::Stat, 3, 10, libc::AT_SYMLINK_NOFOLLOW, 20);
        let o = c.as_open();
        assert_eq!(
            (o.dirfd, o.path, o.flags, o.mode),
            (3, 10, libc::O_NOFOLLOW, 0)
        );
        let o = stat_call(Kind::Stat, 3, 10, libc::AT_EMPTY_PATH, 20).as_open();
        assert_eq!(o.flags, libc::O_RDONLY);
    }

    #[test]
    fn every_call_in_the_family_is_recognised() {
        for nr in [
            libc::SYS_newfstatat,
            libc::SYS_statx,
            libc::SYS_faccessat,
            libc::SYS_faccessat2,
            libc::SYS_getxattr,
            libc::SYS_lgetxattr,
            libc::SYS_listxattr,
            libc::SYS_llistxattr,
        ] {
            assert!(is_stat_family(nr), "{nr}");
        }
        #[cfg(target_arch = "x86_64")]
        for nr in [libc::SYS_stat, libc::SYS_lstat, libc::SYS_access] {
            assert!(is_stat_family(nr), "{nr}");
        }
        assert!(!is_stat_family(libc::SYS_fstat));
        assert!(!is_stat_family(libc::SYS_openat));
    }

    #[test]
    fn a_memfd_is_shown_as_a_read_only_file() {
        let fd = crate::sys::sealed_memfd(c"sandlock-test", b"hello\n").unwrap();
        let bytes = stat_bytes(fd.as_fd()).unwrap();
        assert_eq!(bytes.len(), size_of::<libc::stat>());
        // SAFETY: the bytes came from a `libc::stat`; read_unaligned
        // copes with the Vec's alignment.
        let st: libc::stat = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        assert_eq!(st.st_size, 6);
        assert_eq!(st.st_mode, libc::S_IFREG | 0o444);
        assert_eq!(st.st_nlink, 1);

        let bytes = statx_bytes(fd.as_fd(), 0, libc::STATX_BASIC_STATS).unwrap();
        assert_eq!(bytes.len(), 256);
        // SAFETY: as above, from a `libc::statx`.
        let stx: libc::statx = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        assert_eq!(stx.stx_size, 6);
        assert_eq!(u32::from(stx.stx_mode), libc::S_IFREG | 0o444);
        assert_eq!(stx.stx_nlink, 1);
        assert_eq!(stx.stx_ino, st.st_ino);
    }
}
