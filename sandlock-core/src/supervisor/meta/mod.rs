//! File metadata: chmod, chown, utimes, extended attributes, attribute
//! ioctls (`chattr`) and truncate by path, in every spelling (path, `l`,
//! `f`, `at`, `at2`).
//!
//! Landlock has no access right for any of these, so without this module
//! a workload could change the mode, owner, times or attributes of any
//! host file its uid owns, including files it cannot read. Every such call
//! traps, and this module performs it on the workload's behalf only when
//! the file lives under a write grant (`-w`, `--home`, the private TMPDIR and HOME; see
//! `place.rs`), with the workload's rights (see `sys::creds`). A file it
//! makes or changes can never carry setuid, setgid or file capabilities,
//! under a write grant or not: on exec those grant privileges, and a file
//! left behind on the host would keep them.
//!
//! Owns: decoding the calls (`decode.rs`), reading their memory arguments
//! once, resolving the file to a handle the supervisor holds, the
//! decision, and the change itself through that handle.
//!
//! Must never: answer CONTINUE (the kernel would read the path or the fd
//! table again, after the decision); act on a path read twice; act with
//! the supervisor's capabilities when the workload has none; write
//! anything into the workload's memory.

mod decode;

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

pub(super) use self::decode::is_meta;
use self::decode::{attr_arg_size, ChangeArgs, Target, TimeLayout};
use super::net::report;
use super::notif::{Notif, Reply};
use super::place::Where;
use super::resolve::{Base, Root, Start};
use super::Supervisor;
use crate::audit::Verdict;
use crate::launch::seccomp::PRIVILEGE_BITS;
use crate::sys::creds::WorkloadRights;
use crate::sys::meta as fsys;

/// Longest extended attribute name, and largest value (XATTR_NAME_MAX,
/// XATTR_SIZE_MAX).
const XATTR_NAME_MAX: usize = 255;
const XATTR_SIZE_MAX: u64 = 65536;
/// The attribute that grants capabilities on exec.
const FILE_CAPS: &[u8] = b"security.capability";

const WHY_PLACE: &str =
    "metadata may change only under a write grant (-w, --home) or the sandbox's private TMPDIR and HOME";
const WHY_SETID: &str = "setuid and setgid bits are never set by a sandboxed workload";
const WHY_CAPS: &str = "file capabilities are never set by a sandboxed workload";

/// A change, with the supervisor's own copy of every memory argument.
#[derive(Debug)]
enum Change {
    Mode(u32),
    Owner {
        uid: u32,
        gid: u32,
    },
    Times(Option<[libc::timespec; 2]>),
    Size(i64),
    SetXattr {
        name: CString,
        value: Vec<u8>,
        flags: i32,
    },
    RemoveXattr {
        name: CString,
    },
    Attr {
        req: u32,
        arg: Vec<u8>,
    },
}

impl Change {
    /// Why this change is refused wherever the file lives, if it is.
    fn grants_privilege(&self) -> Option<&'static str> {
        match self {
            Change::Mode(m) if m & PRIVILEGE_BITS != 0 => Some(WHY_SETID),
            Change::SetXattr { name, .. } if name.as_bytes() == FILE_CAPS => Some(WHY_CAPS),
            _ => None,
        }
    }
}

/// The file a call reaches, held by the supervisor.
enum Object {
    /// What a path named: an `O_PATH` handle (or the base directory
    /// itself, for an empty path with AT_EMPTY_PATH).
    Named { fd: OwnedFd, symlink: bool },
    /// A duplicate of the workload's open fd: the `f` calls act on it as
    /// the kernel would (an `O_PATH` fd gives EBADF, as it should).
    Open(OwnedFd),
}

impl Object {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Object::Named { fd, .. } | Object::Open(fd) => fd.as_fd(),
        }
    }
}

/// Answers a trapped metadata call.
pub fn handle(sup: &Supervisor, n: &Notif) -> Reply {
    let args = std::array::from_fn(|i| n.arg(i));
    let call = match decode::decode(n.nr(), &args) {
        Ok(c) => c,
        Err(errno) => return Reply::Errno(errno),
    };
    let change = match fetch(n, call.change) {
        Ok(c) => c,
        Err(errno) => return Reply::Errno(errno),
    };
    let path = match read_path(n, &call.target) {
        Ok(p) => p,
        Err(errno) => return Reply::Errno(errno),
    };
    let shown = target_text(&call.target, path.as_deref());
    if let Some(why) = change.grants_privilege() {
        report(sup, n, call.syscall, &shown, Verdict::Deny, why);
        return Reply::Errno(libc::EPERM);
    }
    // Everything that needs the supervisor's full rights over the
    // workload (its cwd, its fds) is taken before they are put aside.
    let start = match prepare(n, &call.target, path.as_deref(), &sup.root) {
        Ok(s) => s,
        Err(e) => return Reply::from_io(&e),
    };
    if !n.still_valid() {
        return Reply::Done;
    }
    let outcome = WorkloadRights::run(sup.as_workload, || {
        let object = start.object()?;
        let (at, mode) = sup.places.locate(object.fd())?;
        if let (Some(l), Where::Path(p)) = (sup.reporter.learner(), &at) {
            let dir = mode & libc::S_IFMT == libc::S_IFDIR;
            l.file(crate::learn::Access::Write, bytes_path(p), dir);
        }
        if !sup.places.writable(&at) {
            return Ok(Err(at));
        }
        apply(&object, &change).map(Ok)
    });
    match outcome {
        Ok(Ok(value)) => Reply::Value(value),
        Ok(Err(at)) => {
            let shown = match (&call.target, at) {
                (Target::Fd(_), Where::Path(p)) => {
                    format!("{shown} ({})", String::from_utf8_lossy(&p))
                }
                (_, Where::Foreign) => format!("{shown} (a file of another mount namespace)"),
                _ => shown,
            };
            report(sup, n, call.syscall, &shown, Verdict::Deny, WHY_PLACE);
            Reply::Errno(libc::EPERM)
        }
        Err(e) => Reply::from_io(&e),
    }
}

/// A located path as a `PathBuf`.
fn bytes_path(p: &[u8]) -> std::path::PathBuf {
    use std::os::unix::ffi::OsStrExt;
    std::path::PathBuf::from(std::ffi::OsStr::from_bytes(p))
}

/// Refuses a file created with setuid or setgid in its mode (open and
/// openat with O_CREAT or O_TMPFILE, creat, mknod, mknodat); `None` when
/// the call creates nothing privileged. The mode is a register: the
/// verdict cannot be raced.
pub(in crate::supervisor) fn refuse_privileged_create(
    sup: &Supervisor,
    n: &Notif,
    flags: i32,
    mode: u32,
) -> Option<Reply> {
    const TMPFILE: i32 = 0o2000_0000; // __O_TMPFILE
    if flags & (libc::O_CREAT | TMPFILE) == 0 || mode & PRIVILEGE_BITS == 0 {
        return None;
    }
    let syscall = syscall_name(n.nr());
    report(
        sup,
        n,
        syscall,
        &format!("mode {mode:o}"),
        Verdict::Deny,
        WHY_SETID,
    );
    Some(Reply::Errno(libc::EPERM))
}

/// A read-only open with O_TRUNC, which truncates: where Landlock checks
/// truncation (ABI 3) it decides; before that it would let a readable
/// file be emptied, so the open is refused.
pub(in crate::supervisor) fn refuse_read_only_truncate(
    sup: &Supervisor,
    n: &Notif,
    flags: i32,
) -> Option<Reply> {
    if flags & (libc::O_TRUNC | libc::O_ACCMODE) != libc::O_TRUNC || sup.kernel_checks_truncate {
        return None;
    }
    report(
        sup,
        n,
        syscall_name(n.nr()),
        "O_RDONLY|O_TRUNC",
        Verdict::Deny,
        "this kernel's Landlock (before ABI 3) cannot check truncation",
    );
    Some(Reply::Errno(libc::EACCES))
}

/// creat, mknod and mknodat: they trap only with setuid or setgid asked.
pub fn handle_create(sup: &Supervisor, n: &Notif) -> Reply {
    let mode = match n.nr() {
        libc::SYS_mknodat => n.arg(2) as u32,
        _ => n.arg(1) as u32,
    };
    refuse_privileged_create(sup, n, libc::O_CREAT, mode).unwrap_or(Reply::Continue)
}

/// True for the creating calls [`handle_create`] answers.
pub fn is_create(nr: i64) -> bool {
    #[cfg(target_arch = "x86_64")]
    if nr == libc::SYS_creat || nr == libc::SYS_mknod {
        return true;
    }
    nr == libc::SYS_mknodat
}

fn syscall_name(nr: i64) -> &'static str {
    #[cfg(target_arch = "x86_64")]
    match nr {
        libc::SYS_open => return "open",
        libc::SYS_creat => return "creat",
        libc::SYS_mknod => return "mknod",
        _ => {}
    }
    match nr {
        libc::SYS_openat => "openat",
        libc::SYS_mknodat => "mknodat",
        _ => "create",
    }
}

/// Reads the change's memory arguments, once, with the kernel's limits.
fn fetch(n: &Notif, args: ChangeArgs) -> Result<Change, i32> {
    let efault = |_| libc::EFAULT;
    Ok(match args {
        ChangeArgs::Mode(m) => Change::Mode(m),
        ChangeArgs::Owner { uid, gid } => Change::Owner { uid, gid },
        ChangeArgs::Times { ptr: 0, .. } => Change::Times(None),
        ChangeArgs::Times { ptr, layout } => {
            let raw = n.read(ptr, layout.size()).map_err(efault)?;
            Change::Times(Some(times_from(&raw, layout)?))
        }
        ChangeArgs::SetXattr {
            name,
            value,
            size,
            flags,
        } => {
            let name = xattr_name(n, name)?;
            if size > XATTR_SIZE_MAX {
                return Err(libc::E2BIG);
            }
            let len = usize::try_from(size).map_err(|_| libc::E2BIG)?;
            let value = if len == 0 {
                Vec::new()
            } else {
                n.read(value, len).map_err(efault)?
            };
            Change::SetXattr { name, value, flags }
        }
        ChangeArgs::RemoveXattr { name } => Change::RemoveXattr {
            name: xattr_name(n, name)?,
        },
        ChangeArgs::Size(len) => Change::Size(len),
        ChangeArgs::Attr { req, arg } => {
            let mut bytes = n.read(arg, attr_arg_size(req)).map_err(efault)?;
            // Room for the request's declared size (a `long` for the
            // flag requests), zero beyond what the kernel reads.
            bytes.resize(bytes.len().max(8), 0);
            Change::Attr { req, arg: bytes }
        }
    })
}

fn xattr_name(n: &Notif, ptr: u64) -> Result<CString, i32> {
    let name = n
        .read_cstr(ptr, XATTR_NAME_MAX.saturating_add(1))
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENAMETOOLONG) => libc::ERANGE,
            _ => libc::EFAULT,
        })?;
    if name.is_empty() || name.len() > XATTR_NAME_MAX {
        return Err(libc::ERANGE);
    }
    CString::new(name).map_err(|_| libc::ERANGE)
}

fn word(raw: &[u8], i: usize) -> i64 {
    let mut b = [0u8; 8];
    if let Some(s) = raw.get(i..i.saturating_add(8)) {
        b.copy_from_slice(s);
    }
    i64::from_ne_bytes(b)
}

/// The two times in `raw` (laid out as `layout`) as timespecs; EINVAL for
/// microseconds out of range, as the kernel answers.
fn times_from(raw: &[u8], layout: TimeLayout) -> Result<[libc::timespec; 2], i32> {
    let ts = |sec: i64, nsec: i64| libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    };
    Ok(match layout {
        TimeLayout::Utimbuf => [ts(word(raw, 0), 0), ts(word(raw, 8), 0)],
        TimeLayout::Timespec => [
            ts(word(raw, 0), word(raw, 8)),
            ts(word(raw, 16), word(raw, 24)),
        ],
        TimeLayout::Timeval => {
            let nsec = |usec: i64| {
                (0..1_000_000)
                    .contains(&usec)
                    .then(|| usec.saturating_mul(1000))
                    .ok_or(libc::EINVAL)
            };
            [
                ts(word(raw, 0), nsec(word(raw, 8))?),
                ts(word(raw, 16), nsec(word(raw, 24))?),
            ]
        }
    })
}

/// The path of a path target, read once (EFAULT when unreadable).
fn read_path(n: &Notif, target: &Target) -> Result<Option<Vec<u8>>, i32> {
    match *target {
        Target::Fd(_) => Ok(None),
        Target::Path { path, .. } => n
            .read_cstr(path, libc::PATH_MAX as usize)
            .map(Some)
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EFAULT)),
    }
}

fn target_text(target: &Target, path: Option<&[u8]>) -> String {
    match (target, path) {
        (Target::Fd(fd), _) => format!("fd {fd}"),
        (_, Some(p)) => String::from_utf8_lossy(p).into_owned(),
        (_, None) => String::new(),
    }
}

/// How to reach the object once rights are put aside.
enum Prepared {
    /// Resolve this path, following a final symlink unless `nofollow`.
    Resolve { start: Start, nofollow: bool },
    /// Already held: the workload's fd, or a directory for AT_EMPTY_PATH.
    Held(Object),
}

fn prepare(n: &Notif, target: &Target, path: Option<&[u8]>, root: &Root) -> io::Result<Prepared> {
    let dup = |fd: i32| {
        n.dup_fd(fd)
            .map_err(|_| io::Error::from_raw_os_error(libc::EBADF))
    };
    match (*target, path) {
        (Target::Fd(fd), _) => Ok(Prepared::Held(Object::Open(dup(fd)?))),
        (Target::Path { base, empty_ok, .. }, Some([])) => {
            if !empty_ok {
                return Err(io::Error::from_raw_os_error(libc::ENOENT));
            }
            let fd = if base == libc::AT_FDCWD {
                Start::new(n, Base(base), b".", root)?.open(false)?
            } else {
                dup(base)?
            };
            let symlink = is_symlink(fd.as_fd());
            Ok(Prepared::Held(Object::Named { fd, symlink }))
        }
        (Target::Path { base, nofollow, .. }, Some(p)) => Ok(Prepared::Resolve {
            start: Start::new(n, Base(base), p, root)?,
            nofollow,
        }),
        (Target::Path { .. }, None) => Err(io::Error::from_raw_os_error(libc::EFAULT)),
    }
}

impl Prepared {
    fn object(self) -> io::Result<Object> {
        match self {
            Prepared::Held(o) => Ok(o),
            Prepared::Resolve { start, nofollow } => {
                let fd = start.open(nofollow)?;
                let symlink = nofollow && is_symlink(fd.as_fd());
                Ok(Object::Named { fd, symlink })
            }
        }
    }
}

fn is_symlink(fd: BorrowedFd<'_>) -> bool {
    crate::sys::fstat(fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK)
}

/// Performs `change` on `object`; the syscall's return value.
fn apply(object: &Object, change: &Change) -> io::Result<i64> {
    let unsupported = |errno| Err(io::Error::from_raw_os_error(errno));
    let fd = object.fd();
    match (object, change) {
        (Object::Open(_), Change::Mode(m)) => fsys::fchmod(fd, *m),
        // Linux has no mode for a symlink itself.
        (Object::Named { symlink: true, .. }, Change::Mode(_)) => unsupported(libc::EOPNOTSUPP),
        (Object::Named { .. }, Change::Mode(m)) => fsys::chmod_handle(fd, *m),
        (Object::Open(_), Change::Owner { uid, gid }) => fsys::fchown(fd, *uid, *gid),
        (Object::Named { .. }, Change::Owner { uid, gid }) => fsys::chown_handle(fd, *uid, *gid),
        (Object::Open(_), Change::Times(t)) => fsys::futimens(fd, t.as_ref()),
        (Object::Named { .. }, Change::Times(t)) => fsys::utimens_handle(fd, t.as_ref()),
        (Object::Open(_), Change::SetXattr { name, value, flags }) => {
            fsys::fsetxattr(fd, name, value, *flags)
        }
        (Object::Open(_), Change::RemoveXattr { name }) => fsys::fremovexattr(fd, name),
        // User attributes exist on regular files and directories only, and
        // a symlink cannot be reached by handle without following it.
        (
            Object::Named { symlink: true, .. },
            Change::SetXattr { .. } | Change::RemoveXattr { .. },
        ) => unsupported(libc::EPERM),
        (Object::Named { .. }, Change::SetXattr { name, value, flags }) => {
            fsys::setxattr_handle(fd, name, value, *flags)
        }
        (Object::Named { .. }, Change::RemoveXattr { name }) => fsys::removexattr_handle(fd, name),
        (_, Change::Size(len)) => fsys::truncate_handle(fd, *len),
        (_, Change::Attr { req, arg }) => {
            let mut arg = arg.clone();
            return fsys::ioctl_with(fd, *req, &mut arg);
        }
    }
    .map(|()| 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_converted_and_checked() {
        let mut raw = Vec::new();
        for w in [1_i64, 500_000, 2, 999_999] {
            raw.extend_from_slice(&w.to_ne_bytes());
        }
        let t = times_from(&raw, TimeLayout::Timeval).expect("valid");
        assert_eq!((t[0].tv_sec, t[0].tv_nsec), (1, 500_000_000));
        assert_eq!((t[1].tv_sec, t[1].tv_nsec), (2, 999_999_000));
        for bad in [1_000_000_i64, -1, i64::MAX, i64::MIN] {
            let mut raw = raw.clone();
            raw[8..16].copy_from_slice(&bad.to_ne_bytes());
            assert_eq!(
                times_from(&raw, TimeLayout::Timeval).err(),
                Some(libc::EINVAL),
                "{bad}"
            );
        }
        let t = times_from(&raw[..16], TimeLayout::Utimbuf).expect("valid");
        assert_eq!((t[0].tv_sec, t[1].tv_sec, t[1].tv_nsec), (1, 500_000, 0));
        // timespecs pass as they are: the kernel checks them (UTIME_NOW).
        let t = times_from(&raw, TimeLayout::Timespec).expect("valid");
        assert_eq!((t[1].tv_sec, t[1].tv_nsec), (2, 999_999));
        // A short buffer reads as zeros, never out of bounds.
        assert_eq!(
            times_from(&[], TimeLayout::Timespec).map(|t| t[1].tv_nsec),
            Ok(0)
        );
    }

    #[test]
    fn privilege_granting_changes_are_named() {
        assert_eq!(Change::Mode(0o4755).grants_privilege(), Some(WHY_SETID));
        assert_eq!(Change::Mode(0o2755).grants_privilege(), Some(WHY_SETID));
        assert_eq!(Change::Mode(0o1777).grants_privilege(), None);
        let caps = Change::SetXattr {
            name: CString::new(FILE_CAPS).expect("no NUL"),
            value: Vec::new(),
            flags: 0,
        };
        assert_eq!(caps.grants_privilege(), Some(WHY_CAPS));
        let user = Change::SetXattr {
            name: CString::new("user.x").expect("no NUL"),
            value: Vec::new(),
            flags: 0,
        };
        assert_eq!(user.grants_privilege(), None);
    }
}
