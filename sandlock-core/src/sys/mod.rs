//! Thin, typed wrappers over the raw system calls sandlock needs and that
//! neither `nix` nor `libc` wrap: pidfds, seccomp notification ioctls,
//! cross-process memory reads. Each wrapper turns a -1 into `io::Error` and
//! owns every fd it returns.

pub mod creds;
pub mod meta;

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

fn cvt(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `PIDFD_THREAD` (Linux 6.9): a pidfd may name a non-leader thread.
const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;

/// Opens a pidfd for `tid`, which may be any thread of a process.
pub fn pidfd_open(tid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and returns a new fd or -1.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, tid, PIDFD_THREAD) };
    let r = match cvt(r) {
        Ok(fd) => fd,
        // Before 6.9 only thread-group leaders have pidfds; the leader's
        // pid is the tgid, which the caller can retry with.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            // SAFETY: as above.
            cvt(unsafe { libc::syscall(libc::SYS_pidfd_open, tid, 0) })?
        }
        Err(e) => return Err(e),
    };
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// Duplicates the workload's fd `targetfd` into this process.
pub fn pidfd_getfd(pidfd: BorrowedFd<'_>, targetfd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: integers only; returns a new fd owned by us or -1.
    let r = cvt(unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), targetfd, 0) })?;
    // SAFETY: fresh fd from the kernel.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// Sends `sig` to the process behind `pidfd`.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: integers and a NULL siginfo, which the kernel fills itself.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<u8>(),
            0,
        )
    })
    .map(drop)
}

/// fstatat(2): `path` relative to `dirfd` (or AT_FDCWD), with `flags`
/// (AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH).
pub fn fstatat(dirfd: RawFd, path: &CStr, flags: libc::c_int) -> io::Result<libc::stat> {
    // SAFETY: `stat` is plain old data, so all-zero is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid C string and `st` a writable local.
    if unsafe { libc::fstatat(dirfd, path.as_ptr(), &mut st, flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// A close-on-exec open of `path` (relative to the working directory)
/// that refuses any symlink on the way, its last component included
/// (ELOOP): for paths on a filesystem someone else arranged (a container
/// image's).
pub fn open_no_symlinks(path: &Path, flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
    use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag, AT_FDCWD};
    let how = OpenHow::new()
        .flags(OFlag::from_bits_retain(flags | libc::O_CLOEXEC))
        .mode(nix::sys::stat::Mode::from_bits_truncate(mode))
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS);
    openat2(AT_FDCWD, path, how).map_err(io::Error::from)
}

/// An O_PATH, close-on-exec open of `path` relative to `dirfd` (or
/// AT_FDCWD), with `flags` added (O_NOFOLLOW, O_DIRECTORY).
pub fn open_path(dirfd: RawFd, path: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: valid dirfd and C string; O_PATH opens nothing readable.
    let fd = unsafe { libc::openat(dirfd, path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC | flags) };
    cvt(fd as libc::c_long)?;
    // SAFETY: fresh fd from the kernel, owned from here on.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An `int` socket option at SOL_SOCKET level (SO_TYPE, SO_DOMAIN, ...).
pub fn sockopt_int(fd: RawFd, opt: libc::c_int) -> io::Result<i32> {
    let mut v: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into our local `v`.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (&mut v as *mut i32).cast(),
            &mut len,
        )
    };
    cvt(r as libc::c_long)?;
    Ok(v)
}

/// fstat(2) of an fd we hold.
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    fstatat(fd.as_raw_fd(), c"", libc::AT_EMPTY_PATH)
}

/// Installs a seccomp filter on the calling thread; returns the listener
/// fd when `flags` asks for one. Async-signal-safe.
///
/// # Safety
/// `prog` must point to a valid `sock_fprog` whose filter outlives the call.
pub unsafe fn seccomp_set_filter(
    flags: libc::c_ulong,
    prog: *const libc::sock_fprog,
) -> libc::c_long {
    // SAFETY: the caller guarantees `prog` is valid.
    unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            prog,
        )
    }
}

/// Creates a sealed, read-only-for-everyone memfd holding `data`.
pub fn sealed_memfd(name: &CStr, data: &[u8]) -> io::Result<OwnedFd> {
    // SAFETY: name is a valid C string; flags are constants.
    let fd =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    cvt(fd as libc::c_long)?;
    // SAFETY: fresh fd.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut off = 0;
    while off < data.len() {
        // SAFETY: writing from a live slice of the stated length.
        let n = unsafe {
            libc::write(
                fd.as_raw_fd(),
                data[off..].as_ptr().cast(),
                data.len() - off,
            )
        };
        off += cvt(n as libc::c_long)? as usize;
    }
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl on our own fd with integer arguments.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } as libc::c_long)?;
    Ok(fd)
}

/// Kernel page of seccomp user-notification ioctls.
pub mod notif {
    use super::*;

    /// Blocks until the next notification arrives.
    pub fn recv(fd: RawFd, req: &mut libc::seccomp_notif) -> io::Result<()> {
        // The kernel requires a zeroed buffer.
        // SAFETY: seccomp_notif is plain old data; all-zero is valid.
        *req = unsafe { std::mem::zeroed() };
        // SAFETY: `req` is a valid, writable seccomp_notif.
        cvt(
            unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_RECV, req as *mut _) }
                as libc::c_long,
        )
        .map(drop)
    }

    /// Answers notification `id` with `val` or a negative errno, or lets the
    /// syscall proceed when `flags` is CONTINUE.
    pub fn send(fd: RawFd, id: u64, val: i64, error: i32, flags: u32) -> io::Result<()> {
        let mut resp = libc::seccomp_notif_resp {
            id,
            val,
            error,
            flags,
        };
        // SAFETY: `resp` is a valid seccomp_notif_resp for the call's duration.
        cvt(
            unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp as *mut _) }
                as libc::c_long,
        )
        .map(drop)
    }

    /// True while notification `id` is still pending (its task alive and
    /// still in the syscall).
    pub fn id_valid(fd: RawFd, id: u64) -> bool {
        let mut id = id;
        // SAFETY: reads a u64 we own.
        unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &mut id as *mut u64) == 0 }
    }

    /// Installs `src` in the notifying task and answers the syscall with
    /// the new fd number, atomically (ADDFD_FLAG_SEND).
    pub fn addfd_send(fd: RawFd, id: u64, src: RawFd, cloexec: bool) -> io::Result<i32> {
        let mut add = libc::seccomp_notif_addfd {
            id,
            flags: libc::SECCOMP_ADDFD_FLAG_SEND as u32,
            srcfd: src as u32,
            newfd: 0,
            newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
        };
        // SAFETY: `add` is a valid seccomp_notif_addfd for the call.
        cvt(
            unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_ADDFD, &mut add as *mut _) }
                as libc::c_long,
        )
        .map(|n| n as i32)
    }

    /// Installs `src` in the notifying task as its fd `newfd`, replacing
    /// whatever that number held (ADDFD_FLAG_SETFD), without answering.
    pub fn addfd_at(fd: RawFd, id: u64, src: RawFd, newfd: RawFd, cloexec: bool) -> io::Result<()> {
        let mut add = libc::seccomp_notif_addfd {
            id,
            flags: libc::SECCOMP_ADDFD_FLAG_SETFD as u32,
            srcfd: src as u32,
            newfd: newfd as u32,
            newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
        };
        // SAFETY: `add` is a valid seccomp_notif_addfd for the call.
        cvt(
            unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_ADDFD, &mut add as *mut _) }
                as libc::c_long,
        )
        .map(drop)
    }

    /// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (Linux 6.6).
    const SYNC_WAKE_UP: u64 = 1;

    /// Asks the kernel to wake the notifying task on the answering CPU.
    pub fn set_sync_wake_up(fd: RawFd) -> io::Result<()> {
        // SAFETY: the ioctl takes its flags by value.
        cvt(
            unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS, SYNC_WAKE_UP) }
                as libc::c_long,
        )
        .map(drop)
    }
}

/// `bytes` random bytes from the kernel, as lowercase hex: names no other
/// run picks (private directories, cgroups, copy-on-write layers).
pub fn random_hex(bytes: usize) -> io::Result<String> {
    let mut buf = vec![0u8; bytes];
    // SAFETY: getrandom fills our buffer of `bytes` bytes.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if usize::try_from(n).ok() != Some(buf.len()) {
        return Err(io::Error::last_os_error());
    }
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}
