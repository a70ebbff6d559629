//! File metadata calls on descriptors the supervisor holds: where a
//! descriptor's file lives (its path, its mount), and the mode, owner,
//! times, extended-attribute and attribute-flag changes performed on the
//! workload's behalf.
//!
//! A handle here is either an `O_PATH` descriptor (what a path named) or a
//! duplicate of one of the workload's descriptors. Path-based changes go
//! through `/proc/self/fd/N` or `AT_EMPTY_PATH`, so they reach exactly the
//! inode behind the handle and never resolve a name again.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

fn cvt(r: libc::c_long) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `/proc/self/fd/N`, the magic link to the file behind `fd`.
fn proc_link(fd: BorrowedFd<'_>) -> CString {
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("no NUL in a number")
}

/// The path of the file behind `fd`, as the kernel reports it
/// (`readlink /proc/self/fd/N`): absolute for a file on a mounted
/// filesystem, with " (deleted)" after a removed one; `pipe:[N]`,
/// `socket:[N]` or `anon_inode:...` for objects no path reaches.
pub fn fd_path(fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    use std::os::unix::ffi::OsStringExt;
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map(|p| p.into_os_string().into_vec())
}

/// What one statx tells about the file behind a descriptor.
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    /// The mount it is on (`STATX_MNT_ID`, the number
    /// `/proc/self/mountinfo` lists first).
    pub mount: u64,
    /// Type and permission bits.
    pub mode: u32,
    /// Hard links (0 for a removed file or a memfd).
    pub nlink: u32,
}

/// The [`Facts`] of the file behind `fd`, in one statx.
pub fn facts(fd: BorrowedFd<'_>) -> io::Result<Facts> {
    const STATX_MNT_ID: u32 = 0x1000;
    // SAFETY: statx is plain old data; all-zero is valid.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: empty C string with AT_EMPTY_PATH names `fd` itself; `stx`
    // is a writable local of the kernel's size.
    let r = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
            STATX_MNT_ID | libc::STATX_TYPE | libc::STATX_MODE | libc::STATX_NLINK,
            &mut stx,
        )
    };
    cvt(r as libc::c_long)?;
    if stx.stx_mask & STATX_MNT_ID == 0 {
        return Err(io::Error::from_raw_os_error(libc::ENOSYS));
    }
    Ok(Facts {
        mount: stx.stx_mnt_id,
        mode: u32::from(stx.stx_mode),
        nlink: stx.stx_nlink,
    })
}

/// The magic number of the filesystem the file behind `fd` is on.
pub fn fs_type(fd: BorrowedFd<'_>) -> io::Result<i64> {
    // SAFETY: statfs is plain old data; all-zero is valid.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a writable local of the kernel's size.
    cvt(unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) } as libc::c_long)?;
    Ok(st.f_type)
}

/// The mount ids of every mount in the mount namespace of process `pid`
/// (`None`: this process's).
pub fn mounted_ids(pid: Option<i32>) -> io::Result<Vec<u64>> {
    let text = match pid {
        Some(pid) => std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))?,
        None => std::fs::read_to_string("/proc/self/mountinfo")?,
    };
    Ok(text
        .lines()
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .collect())
}

/// chmod of the file behind `fd` (never a symlink: the kernel has no mode
/// change for one): fchmodat2 with AT_EMPTY_PATH (Linux 6.6), else
/// through the magic link.
pub fn chmod_handle(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: empty C string with AT_EMPTY_PATH names `fd` itself.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fchmodat2,
            fd.as_raw_fd(),
            c"".as_ptr(),
            mode,
            libc::AT_EMPTY_PATH,
        )
    };
    match cvt(r) {
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {}
        other => return other,
    }
    let link = proc_link(fd);
    // SAFETY: valid C string; the magic link resolves to `fd`'s file.
    cvt(unsafe { libc::fchmodat(libc::AT_FDCWD, link.as_ptr(), mode, 0) } as libc::c_long)
}

/// truncate(2) of the file behind `fd` (through its magic link: an
/// `O_PATH` handle has no ftruncate).
pub fn truncate_handle(fd: BorrowedFd<'_>, len: i64) -> io::Result<()> {
    let link = proc_link(fd);
    // SAFETY: valid C string; integer length.
    cvt(unsafe { libc::truncate(link.as_ptr(), len) } as libc::c_long)
}

/// fchmod(2) on an open file.
pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: integer arguments.
    cvt(unsafe { libc::fchmod(fd.as_raw_fd(), mode) } as libc::c_long)
}

/// chown of the file behind `fd` itself (a symlink's own owner when `fd`
/// is an `O_PATH` handle of a symlink); `u32::MAX` leaves an id as is.
pub fn chown_handle(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: empty C string with AT_EMPTY_PATH names `fd` itself.
    cvt(unsafe {
        libc::fchownat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            uid,
            gid,
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    } as libc::c_long)
}

/// fchown(2) on an open file.
pub fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: integer arguments.
    cvt(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) } as libc::c_long)
}

/// Sets the access and modification times of the file behind `fd`
/// itself; `None` sets both to now.
pub fn utimens_handle(fd: BorrowedFd<'_>, times: Option<&[libc::timespec; 2]>) -> io::Result<()> {
    let ptr = times.map_or(std::ptr::null(), |t| t.as_ptr());
    // SAFETY: empty C string with AT_EMPTY_PATH names `fd` itself; `ptr`
    // is NULL or two timespecs we own.
    cvt(unsafe {
        libc::utimensat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            ptr,
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    } as libc::c_long)
}

/// futimens(3) on an open file: utimensat with a NULL path.
pub fn futimens(fd: BorrowedFd<'_>, times: Option<&[libc::timespec; 2]>) -> io::Result<()> {
    let ptr = times.map_or(std::ptr::null(), |t| t.as_ptr());
    // SAFETY: a NULL path makes utimensat act on `fd`; `ptr` as above.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_utimensat,
            fd.as_raw_fd(),
            std::ptr::null::<u8>(),
            ptr,
            0,
        )
    })
}

/// setxattr on the file behind `fd` (not a symlink: see the caller).
pub fn setxattr_handle(
    fd: BorrowedFd<'_>,
    name: &CStr,
    value: &[u8],
    flags: i32,
) -> io::Result<()> {
    let link = proc_link(fd);
    // SAFETY: valid C strings; `value` is our own slice of the length given.
    cvt(unsafe {
        libc::setxattr(
            link.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    } as libc::c_long)
}

/// fsetxattr(2) on an open file.
pub fn fsetxattr(fd: BorrowedFd<'_>, name: &CStr, value: &[u8], flags: i32) -> io::Result<()> {
    // SAFETY: as above.
    cvt(unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    } as libc::c_long)
}

/// removexattr on the file behind `fd` (not a symlink).
pub fn removexattr_handle(fd: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    let link = proc_link(fd);
    // SAFETY: valid C strings.
    cvt(unsafe { libc::removexattr(link.as_ptr(), name.as_ptr()) } as libc::c_long)
}

/// fremovexattr(2) on an open file.
pub fn fremovexattr(fd: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: valid C string.
    cvt(unsafe { libc::fremovexattr(fd.as_raw_fd(), name.as_ptr()) } as libc::c_long)
}

/// ioctl(2) with `arg` pointing at the supervisor's own copy of the
/// request's argument; returns the ioctl's value.
pub fn ioctl_with(fd: BorrowedFd<'_>, req: u32, arg: &mut [u8]) -> io::Result<i64> {
    // SAFETY: `arg` is our own buffer, at least as large as the argument
    // the request's size field declares (checked by the caller).
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req as libc::Ioctl, arg.as_mut_ptr()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(i64::from(r))
}
