//! Decoding the metadata calls from their registers: which file they name
//! (a path from a directory, or an open fd) and what they would change,
//! with the kernel's own refusals of bad flags. Pure: nothing here reads
//! the workload's memory (the addresses are read in `mod.rs`, once).

use crate::launch::seccomp::ATTR_IOCTLS;

/// The file a call names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    /// A path at `path` in the workload's memory, relative to `base` (a
    /// directory fd, or AT_FDCWD). `empty_ok`: an empty path names `base`
    /// itself (AT_EMPTY_PATH).
    Path {
        base: i32,
        path: u64,
        nofollow: bool,
        empty_ok: bool,
    },
    /// The workload's open fd (fchmod, fchown, futimens, fsetxattr, ioctl).
    Fd(i32),
}

/// How a call passes its two times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TimeLayout {
    /// `struct utimbuf`: two `time_t` seconds.
    Utimbuf,
    /// `struct timeval[2]`: seconds and microseconds.
    Timeval,
    /// `struct timespec[2]`: seconds and nanoseconds, UTIME_NOW/UTIME_OMIT.
    Timespec,
}

impl TimeLayout {
    /// Bytes of the two times in memory.
    pub(super) fn size(self) -> usize {
        match self {
            TimeLayout::Utimbuf => 16,
            TimeLayout::Timeval | TimeLayout::Timespec => 32,
        }
    }
}

/// What a call would change, with its memory arguments as addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ChangeArgs {
    /// The permission bits (`mode & 07777`).
    Mode(u32),
    /// Owner and group; `u32::MAX` keeps one.
    Owner { uid: u32, gid: u32 },
    /// Access and modification times at `ptr` (0: both to now).
    Times { ptr: u64, layout: TimeLayout },
    /// An extended attribute set: name, value and size, XATTR_* flags.
    SetXattr {
        name: u64,
        value: u64,
        size: u64,
        flags: i32,
    },
    /// An extended attribute removed.
    RemoveXattr { name: u64 },
    /// An attribute ioctl (see `ATTR_IOCTLS`) with its argument at `arg`.
    Attr { req: u32, arg: u64 },
    /// truncate(2) to this length.
    Size(i64),
}

/// A decoded metadata call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct MetaCall {
    /// The syscall's name, for denial lines.
    pub syscall: &'static str,
    pub target: Target,
    pub change: ChangeArgs,
}

const AT_FLAGS: i32 = libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH;
const XATTR_FLAGS: i32 = libc::XATTR_CREATE | libc::XATTR_REPLACE;

/// True for the calls this module decides.
pub(in crate::supervisor) fn is_meta(nr: i64) -> bool {
    #[cfg(target_arch = "x86_64")]
    if matches!(
        nr,
        libc::SYS_chmod | libc::SYS_chown | libc::SYS_lchown | libc::SYS_utime | libc::SYS_utimes
    ) {
        return true;
    }
    matches!(
        nr,
        libc::SYS_fchmod
            | libc::SYS_fchmodat
            | libc::SYS_fchmodat2
            | libc::SYS_fchown
            | libc::SYS_fchownat
            | libc::SYS_futimesat
            | libc::SYS_utimensat
            | libc::SYS_setxattr
            | libc::SYS_lsetxattr
            | libc::SYS_fsetxattr
            | libc::SYS_removexattr
            | libc::SYS_lremovexattr
            | libc::SYS_fremovexattr
            | libc::SYS_truncate
            | libc::SYS_ioctl
    )
}

/// A path target from `base` with AT_* `flags`, or EINVAL for flags the
/// kernel refuses.
fn at_path(base: i32, path: u64, flags: i32) -> Result<Target, i32> {
    if flags & !AT_FLAGS != 0 {
        return Err(libc::EINVAL);
    }
    Ok(Target::Path {
        base,
        path,
        nofollow: flags & libc::AT_SYMLINK_NOFOLLOW != 0,
        empty_ok: flags & libc::AT_EMPTY_PATH != 0,
    })
}

/// A path target relative to the cwd.
fn cwd_path(path: u64, nofollow: bool) -> Target {
    Target::Path {
        base: libc::AT_FDCWD,
        path,
        nofollow,
        empty_ok: false,
    }
}

/// utimensat and futimesat with a NULL path act on the dirfd itself.
fn times_target(dirfd: i32, path: u64, flags: i32) -> Result<Target, i32> {
    if path != 0 {
        return at_path(dirfd, path, flags);
    }
    if dirfd == libc::AT_FDCWD {
        return Err(libc::EFAULT);
    }
    if flags != 0 {
        return Err(libc::EINVAL);
    }
    Ok(Target::Fd(dirfd))
}

/// Decodes syscall `nr` with `args`; `Err(errno)` for arguments the kernel
/// refuses whatever the file. `None`-like calls (an ioctl that is not an
/// attribute change) decode to ENOTTY: the filter never traps them.
pub(super) fn decode(nr: i64, args: &[u64; 6]) -> Result<MetaCall, i32> {
    let int = |i: usize| args[i] as u32 as i32;
    let uint = |i: usize| args[i] as u32;
    let call = |syscall, target, change| {
        Ok(MetaCall {
            syscall,
            target,
            change,
        })
    };
    let mode = |i: usize| ChangeArgs::Mode(uint(i) & 0o7777);
    let owner = |u: usize, g: usize| ChangeArgs::Owner {
        uid: uint(u),
        gid: uint(g),
    };
    let times = |i: usize, layout| ChangeArgs::Times {
        ptr: args[i],
        layout,
    };
    // (name, value, size, flags) at arguments 1..=4 of every set call.
    let set_xattr = || -> Result<ChangeArgs, i32> {
        let flags = int(4);
        if flags & !XATTR_FLAGS != 0 {
            return Err(libc::EINVAL);
        }
        Ok(ChangeArgs::SetXattr {
            name: args[1],
            value: args[2],
            size: args[3],
            flags,
        })
    };
    let remove_xattr = |i: usize| ChangeArgs::RemoveXattr { name: args[i] };
    #[cfg(target_arch = "x86_64")]
    match nr {
        libc::SYS_chmod => return call("chmod", cwd_path(args[0], false), mode(1)),
        libc::SYS_chown => return call("chown", cwd_path(args[0], false), owner(1, 2)),
        libc::SYS_lchown => return call("lchown", cwd_path(args[0], true), owner(1, 2)),
        libc::SYS_utime => {
            let change = times(1, TimeLayout::Utimbuf);
            return call("utime", cwd_path(args[0], false), change);
        }
        libc::SYS_utimes => {
            let change = times(1, TimeLayout::Timeval);
            return call("utimes", cwd_path(args[0], false), change);
        }
        _ => {}
    }
    match nr {
        libc::SYS_fchmod => call("fchmod", Target::Fd(int(0)), mode(1)),
        libc::SYS_fchmodat => call("fchmodat", at_path(int(0), args[1], 0)?, mode(2)),
        libc::SYS_fchmodat2 => call("fchmodat2", at_path(int(0), args[1], int(3))?, mode(2)),
        libc::SYS_fchown => call("fchown", Target::Fd(int(0)), owner(1, 2)),
        libc::SYS_fchownat => call("fchownat", at_path(int(0), args[1], int(4))?, owner(2, 3)),
        libc::SYS_futimesat => {
            let target = times_target(int(0), args[1], 0)?;
            call("futimesat", target, times(2, TimeLayout::Timeval))
        }
        libc::SYS_utimensat => {
            let target = times_target(int(0), args[1], int(3))?;
            call("utimensat", target, times(2, TimeLayout::Timespec))
        }
        libc::SYS_setxattr => call("setxattr", cwd_path(args[0], false), set_xattr()?),
        libc::SYS_lsetxattr => call("lsetxattr", cwd_path(args[0], true), set_xattr()?),
        libc::SYS_fsetxattr => call("fsetxattr", Target::Fd(int(0)), set_xattr()?),
        libc::SYS_removexattr => call("removexattr", cwd_path(args[0], false), remove_xattr(1)),
        libc::SYS_lremovexattr => call("lremovexattr", cwd_path(args[0], true), remove_xattr(1)),
        libc::SYS_fremovexattr => call("fremovexattr", Target::Fd(int(0)), remove_xattr(1)),
        libc::SYS_truncate => match args[1] as i64 {
            len if len < 0 => Err(libc::EINVAL),
            len => call("truncate", cwd_path(args[0], false), ChangeArgs::Size(len)),
        },
        libc::SYS_ioctl if ATTR_IOCTLS.contains(&uint(1)) => call(
            "ioctl",
            Target::Fd(int(0)),
            ChangeArgs::Attr {
                req: uint(1),
                arg: args[2],
            },
        ),
        _ => Err(libc::ENOTTY),
    }
}

/// Bytes an attribute ioctl's argument takes in memory: an `int` for the
/// flag and generation requests (the kernel reads an int whatever the
/// request's declared size), a `struct fsxattr` for FS_IOC_FSSETXATTR.
pub(super) fn attr_arg_size(req: u32) -> usize {
    const FS_IOC_FSSETXATTR: u32 = 0x401c_5820;
    if req == FS_IOC_FSSETXATTR {
        28
    } else {
        4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Any registers for any trapped call: a decision or an errno,
        /// never a panic; the mode never keeps more than its 12 bits.
        #[test]
        fn any_registers(which in 0usize..20, args in any::<[u64; 6]>()) {
            let nrs = [
                libc::SYS_fchmod, libc::SYS_fchmodat, libc::SYS_fchmodat2, libc::SYS_fchown,
                libc::SYS_fchownat, libc::SYS_futimesat, libc::SYS_utimensat, libc::SYS_setxattr,
                libc::SYS_lsetxattr, libc::SYS_fsetxattr, libc::SYS_removexattr,
                libc::SYS_lremovexattr, libc::SYS_fremovexattr, libc::SYS_truncate,
                libc::SYS_ioctl, libc::SYS_chmod, libc::SYS_chown, libc::SYS_lchown,
                libc::SYS_utime, libc::SYS_utimes,
            ];
            if let Ok(call) = decode(nrs[which], &args) {
                if let ChangeArgs::Mode(m) = call.change {
                    prop_assert!(m <= 0o7777);
                }
                if let ChangeArgs::Size(len) = call.change {
                    prop_assert!(len >= 0);
                }
            }
        }
    }

    const CWD: u64 = libc::AT_FDCWD as u32 as u64;

    #[test]
    fn paths_and_fds() {
        let c = decode(libc::SYS_fchmodat, &[CWD, 10, 0o4755, 0, 0, 0]).expect("decodes");
        assert_eq!(
            c.target,
            Target::Path {
                base: libc::AT_FDCWD,
                path: 10,
                nofollow: false,
                empty_ok: false
            }
        );
        // The mode keeps its privilege bits: refusing them is the caller's.
        assert_eq!(c.change, ChangeArgs::Mode(0o4755));
        let c = decode(libc::SYS_fchown, &[3, 0, 0, 0, 0, 0]).expect("decodes");
        assert_eq!(c.target, Target::Fd(3));
        let nofollow = libc::AT_SYMLINK_NOFOLLOW as u64;
        let c = decode(libc::SYS_fchownat, &[5, 10, 1, 2, nofollow, 0]).expect("decodes");
        assert_eq!(
            (c.target, c.change),
            (
                Target::Path {
                    base: 5,
                    path: 10,
                    nofollow: true,
                    empty_ok: false
                },
                ChangeArgs::Owner { uid: 1, gid: 2 }
            )
        );
    }

    #[test]
    fn hostile_registers() {
        // Garbage in the upper half of an int argument is not the kernel's.
        let c = decode(
            libc::SYS_fchmod,
            &[
                0xdead_0000_0000_0003,
                0xffff_0000_0000_0000 | 0o644,
                0,
                0,
                0,
                0,
            ],
        )
        .expect("decodes");
        assert_eq!(
            (c.target, c.change),
            (Target::Fd(3), ChangeArgs::Mode(0o644))
        );
        // Unknown AT_* or XATTR_* flags: EINVAL, like the kernel.
        assert_eq!(
            decode(libc::SYS_fchmodat2, &[CWD, 1, 0, 0x8000, 0, 0]),
            Err(libc::EINVAL)
        );
        assert_eq!(
            decode(libc::SYS_fchownat, &[CWD, 1, 0, 0, 0x2, 0]),
            Err(libc::EINVAL)
        );
        assert_eq!(
            decode(libc::SYS_setxattr, &[1, 2, 3, 4, 4, 0]),
            Err(libc::EINVAL)
        );
        // utimensat on a NULL path: the dirfd itself, never the cwd.
        assert_eq!(
            decode(libc::SYS_utimensat, &[CWD, 0, 0, 0, 0, 0]),
            Err(libc::EFAULT)
        );
        assert_eq!(
            decode(libc::SYS_utimensat, &[4, 0, 0, 1, 0, 0]),
            Err(libc::EINVAL)
        );
        let c = decode(libc::SYS_utimensat, &[4, 0, 7, 0, 0, 0]).expect("decodes");
        assert_eq!(c.target, Target::Fd(4));
        // A negative length, as the kernel answers.
        assert_eq!(
            decode(libc::SYS_truncate, &[1, u64::MAX, 0, 0, 0, 0]),
            Err(libc::EINVAL)
        );
        // An ioctl that changes no attribute is not ours.
        assert_eq!(
            decode(libc::SYS_ioctl, &[1, 0x5401, 0, 0, 0, 0]),
            Err(libc::ENOTTY)
        );
        let c = decode(libc::SYS_ioctl, &[1, 0xffff_ffff_4004_6602, 9, 0, 0, 0]).expect("decodes");
        assert_eq!(
            c.change,
            ChangeArgs::Attr {
                req: 0x4004_6602,
                arg: 9
            }
        );
    }

    #[test]
    fn every_trapped_call_decodes() {
        let mut nrs = vec![
            libc::SYS_fchmod,
            libc::SYS_fchmodat,
            libc::SYS_fchmodat2,
            libc::SYS_fchown,
            libc::SYS_fchownat,
            libc::SYS_futimesat,
            libc::SYS_utimensat,
            libc::SYS_setxattr,
            libc::SYS_lsetxattr,
            libc::SYS_fsetxattr,
            libc::SYS_removexattr,
            libc::SYS_lremovexattr,
            libc::SYS_fremovexattr,
            libc::SYS_truncate,
        ];
        #[cfg(target_arch = "x86_64")]
        nrs.extend([
            libc::SYS_chmod,
            libc::SYS_chown,
            libc::SYS_lchown,
            libc::SYS_utime,
            libc::SYS_utimes,
        ]);
        for nr in nrs {
            assert!(is_meta(nr), "{nr}");
            assert!(decode(nr, &[3, 10, 0, 0, 0, 0]).is_ok(), "{nr}");
        }
        assert!(!is_meta(libc::SYS_openat));
    }
}
