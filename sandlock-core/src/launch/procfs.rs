//! The workload's fresh procfs, mounted by the helper's child in the
//! sandbox's mount namespace (see `ns`), and the covers over what it must
//! not show: entries that tell about the kernel rather than the sandbox
//! (its memory, symbols, log, keys), hardware and firmware directories,
//! and the container runtime's concealed paths.
//!
//! Runs in a child that shares the helper's memory after a fork of a
//! multi-threaded process: raw syscalls on static data only, no
//! allocation. Must never leave a procfs mounted whose covers failed.

use super::errno;
use super::mounts::bind;

/// Entries of the fresh procfs that are covered with `/dev/null`: they
/// describe the kernel (its memory, symbols, log, keys, timers), not the
/// sandbox. Missing ones are skipped.
const MASKED_FILES: &[&std::ffi::CStr] = &[
    c"/proc/kcore",
    c"/proc/kallsyms",
    c"/proc/keys",
    c"/proc/key-users",
    c"/proc/kmsg",
    c"/proc/sysrq-trigger",
    c"/proc/timer_list",
    c"/proc/sched_debug",
    c"/proc/latency_stats",
    c"/proc/kpagecount",
    c"/proc/kpageflags",
    c"/proc/kpagecgroup",
    c"/proc/vmallocinfo",
    c"/proc/slabinfo",
    c"/proc/pagetypeinfo",
    c"/proc/config.gz",
];

/// Directories of the fresh procfs covered with an empty read-only tmpfs
/// (hardware and firmware interfaces).
const MASKED_DIRS: &[&std::ffi::CStr] = &[
    c"/proc/acpi",
    c"/proc/asound",
    c"/proc/scsi",
    c"/proc/bus",
    c"/proc/irq",
    c"/proc/driver",
    c"/proc/sys/fs/binfmt_misc",
];

/// Mounts the fresh procfs, read-only, and covers what it must not show;
/// on any failure nothing stays mounted and the workload gets no /proc.
///
/// Read-only in the kernel's sense, not only in Landlock's: a workload
/// whose write grant covers /proc (`-w /`) that runs as the real uid 0
/// (root in a container) could otherwise write host-wide sysctls such as
/// `kernel/core_pattern`, which the kernel checks by uid alone.
pub(super) fn mount_proc() -> bool {
    let flags = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    // SAFETY: mount with static C strings and NULL data.
    if unsafe {
        libc::mount(
            c"proc".as_ptr(),
            c"/proc".as_ptr(),
            c"proc".as_ptr(),
            flags,
            std::ptr::null(),
        )
    } != 0
    {
        return false;
    }
    let covered = MASKED_FILES.iter().all(|p| cover(p, false)) && cover_dirs(MASKED_DIRS);
    if !covered {
        // SAFETY: umount2 with a static C string.
        unsafe { libc::umount2(c"/proc".as_ptr(), libc::MNT_DETACH) };
    }
    covered
}

/// Covers `path` with /dev/null (a file) or an empty read-only tmpfs (a
/// directory). A path this kernel does not have needs nothing.
pub(super) fn cover(path: &std::ffi::CStr, dir: bool) -> bool {
    let r = match dir {
        true => empty_tmpfs(path),
        false => bind(c"/dev/null", path),
    };
    matches!(r, Ok(()) | Err(libc::ENOENT))
}

/// Covers each of `dirs` with the same empty read-only tmpfs: mounted on
/// the first one present, bound on the others (a bind costs a tenth of a
/// new tmpfs here, and keeps its read-only mount and superblock). Paths
/// this kernel does not have need nothing.
fn cover_dirs(dirs: &[&std::ffi::CStr]) -> bool {
    let mut shown: Option<&std::ffi::CStr> = None;
    for dir in dirs {
        let r = match shown {
            None => empty_tmpfs(dir).map(|()| shown = Some(dir)),
            Some(empty) => bind(empty, dir),
        };
        if !matches!(r, Ok(()) | Err(libc::ENOENT)) {
            return false;
        }
    }
    true
}

/// Mounts an empty read-only tmpfs on `path`; the errno on failure.
fn empty_tmpfs(path: &std::ffi::CStr) -> Result<(), i32> {
    // SAFETY: mount with C strings that outlive the call.
    let r = unsafe {
        libc::mount(
            c"none".as_ptr(),
            path.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            c"size=0,mode=0555".as_ptr().cast(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}
