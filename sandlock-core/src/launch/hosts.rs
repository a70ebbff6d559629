//! The sandbox's `/etc/hosts` as a file of its own mount namespace: a
//! read-only bind, over the host's, of a tmpfs file holding the sandbox's
//! table, made by the helper that mounts the workload's /proc.
//!
//! Why: a virtual file served by the supervisor makes every read-only
//! open trap, since seccomp cannot see a path. A sandbox whose only
//! virtual file is `/etc/hosts` (a network flag, no HTTP rule) then pays a
//! notification round trip per open: a git clone of 2,000 files makes
//! 12,800 of them. As a mount, the kernel serves the table and no open
//! traps; with an HTTP rule the trust bundles keep the trap, and an open
//! of `/etc/hosts` is answered CONTINUE instead of with a fresh memfd
//! (4.5 against 46 µs). Where the workload gets no namespaces of its
//! own, or a grant lets it write `/etc/hosts` (which must keep reaching
//! the file it names), the supervisor serves the same table through the
//! open trap as before (the workload learns which from the ready byte,
//! see [`super::Ready`]).
//!
//! Owns the table's bytes and the tmpfs options, prepared before the
//! fork, and the raw mounts made in the namespace. Must never allocate in
//! the mounting child, never mount before every mount there became a
//! slave (the host must not see it), and never leave the file writable:
//! the bind is read-only in the kernel's sense, under Landlock's
//! read-only `/etc`.

use std::ffi::{CStr, CString};
use std::os::fd::RawFd;

/// Where the table is written before it is bound: `/proc` of the new
/// namespace, still the host's procfs there, covered by a small tmpfs and
/// uncovered again before the workload's own procfs is mounted on it.
const STAGE: &CStr = c"/proc";
const STAGED: &CStr = c"/proc/hosts";
const TARGET: &CStr = c"/etc/hosts";

/// The table, and the options of the tmpfs it is staged on.
#[derive(Debug, Clone)]
pub struct HostsFile {
    content: Vec<u8>,
    options: CString,
}

impl HostsFile {
    /// A table of `content`, to be bound over `/etc/hosts`.
    pub fn new(content: Vec<u8>) -> std::io::Result<HostsFile> {
        // Room for the file's blocks and the tmpfs's own.
        let size = content
            .len()
            .checked_add(64 * 1024)
            .ok_or_else(|| std::io::Error::from_raw_os_error(libc::E2BIG))?;
        let options = CString::new(format!("size={size},mode=0755"))
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        Ok(HostsFile { content, options })
    }

    /// In the namespace, after its mounts became slaves and before the
    /// workload's procfs is mounted: stages the table on a tmpfs over
    /// `/proc`, binds it read-only over `/etc/hosts`, and uncovers
    /// `/proc`. False on any failure: the run then stops (what was
    /// mounted goes with the namespace).
    pub(super) fn bind(&self) -> bool {
        let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        // SAFETY: mount with C strings prepared before the fork.
        let staged = unsafe {
            libc::mount(
                c"none".as_ptr(),
                STAGE.as_ptr(),
                c"tmpfs".as_ptr(),
                flags,
                self.options.as_ptr().cast(),
            )
        };
        if staged != 0 {
            return false;
        }
        let bound = self.write_staged() && bind_read_only();
        // SAFETY: umount2 with a static C string. The bound file keeps
        // the tmpfs alive; only its mount on /proc goes.
        let unstaged = unsafe { libc::umount2(STAGE.as_ptr(), libc::MNT_DETACH) } == 0;
        // A staging tmpfs left on /proc would be writable: the run stops.
        bound && unstaged
    }

    /// Writes the table to the staged file, mode 0444.
    fn write_staged(&self) -> bool {
        let flags =
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: open with a static C string; a fresh fd or -1.
        let fd = unsafe { libc::open(STAGED.as_ptr(), flags, 0o444 as libc::c_uint) };
        if fd < 0 {
            return false;
        }
        let mut rest: &[u8] = &self.content;
        let mut ok = true;
        while !rest.is_empty() {
            // SAFETY: writes from our own buffer to our own fd.
            let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
            if n <= 0 {
                ok = false;
                break;
            }
            rest = rest.get(n as usize..).unwrap_or_default();
        }
        // SAFETY: closes the fd opened above.
        ok && unsafe { libc::close(fd) } == 0
    }
}

/// In the workload, after the supervisor's rules are in and before
/// `landlock_restrict_self`: grants the bound `/etc/hosts` for reading.
/// The supervisor's rules name the host's file, which the mount covers
/// (as root, `/etc` is granted entry by entry), and only a process of the
/// namespace can name the mounted one.
pub fn grant(ruleset: RawFd) -> Result<(), i32> {
    let read = landlock::BitFlags::<landlock::AccessFs>::from(landlock::AccessFs::ReadFile).bits();
    super::landlock::grant_path(ruleset, TARGET, 0, read)
}

/// Binds the staged file over `/etc/hosts` and makes that mount
/// read-only; on failure nothing stays bound.
fn bind_read_only() -> bool {
    if super::mounts::bind(STAGED, TARGET).is_err() {
        return false;
    }
    let flags = libc::MS_BIND
        | libc::MS_REMOUNT
        | libc::MS_RDONLY
        | libc::MS_NOSUID
        | libc::MS_NODEV
        | libc::MS_NOEXEC;
    // SAFETY: as above.
    let read_only = unsafe {
        libc::mount(
            std::ptr::null(),
            TARGET.as_ptr(),
            std::ptr::null(),
            flags,
            std::ptr::null(),
        )
    };
    if read_only != 0 {
        // SAFETY: umount2 with a static C string.
        unsafe { libc::umount2(TARGET.as_ptr(), libc::MNT_DETACH) };
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_staging_tmpfs_has_room_for_the_table() {
        let h = HostsFile::new(vec![b'x'; 1000]).unwrap();
        assert_eq!(h.options.as_bytes(), b"size=66536,mode=0755");
        assert_eq!(h.content.len(), 1000);
    }
}
