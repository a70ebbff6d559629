//! Learn mode's view of the filesystem: every call the learning filter
//! traps for naming a file (opens, execs, and each change of a
//! directory's entries) is told to the learner, as the path it names,
//! resolved from the workload's cwd or directory fd and canonicalised.
//!
//! Owns decoding those calls for watching only. Must never decide
//! anything: it answers CONTINUE for the calls only a learning run traps
//! (the widened Landlock ruleset is the enforcer, and a path swapped after
//! it was read only misleads the learner, which writes a profile the user
//! reviews), and hands every other call on to its usual handler.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::notif::{Notif, Reply};
use crate::learn::{Access, Learner};

/// One file a call names: its directory fd, the address of its path, and
/// how the call uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Named {
    dirfd: i32,
    path: u64,
    how: How,
}

/// How a call uses the file it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    /// Reads or executes it.
    Read,
    /// An open with these flags.
    Open(i32),
    /// Makes it (the call fails if it exists): its directory changes.
    Create,
    /// Removes it or moves it away (the call fails if it does not exist).
    Remove,
    /// Puts an entry at its name, whether or not one is there.
    Replace,
    /// Is linked to a new name: its directory must allow it to be
    /// referred to from elsewhere (Landlock's REFER), as for a rename.
    LinkSource,
}

const CWD: i32 = libc::AT_FDCWD;

/// The files call `nr` names, for the calls a learning run watches.
fn decode(nr: i64, a: [u64; 6]) -> Vec<Named> {
    let int = |i: usize| a[i] as i32;
    let at = |dirfd: i32, path: u64, how: How| Named { dirfd, path, how };
    #[cfg(target_arch = "x86_64")]
    match nr {
        libc::SYS_open => return vec![at(CWD, a[0], How::Open(int(1)))],
        libc::SYS_creat => {
            return vec![at(
                CWD,
                a[0],
                How::Open(libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC),
            )]
        }
        libc::SYS_mkdir | libc::SYS_mknod => return vec![at(CWD, a[0], How::Create)],
        libc::SYS_unlink | libc::SYS_rmdir => return vec![at(CWD, a[0], How::Remove)],
        libc::SYS_execve => return vec![at(CWD, a[0], How::Read)],
        libc::SYS_rename => return vec![at(CWD, a[0], How::Remove), at(CWD, a[1], How::Replace)],
        libc::SYS_link => return vec![at(CWD, a[0], How::LinkSource), at(CWD, a[1], How::Create)],
        libc::SYS_symlink => return vec![at(CWD, a[1], How::Create)],
        _ => {}
    }
    match nr {
        libc::SYS_openat => vec![at(int(0), a[1], How::Open(int(2)))],
        libc::SYS_execveat if int(4) & libc::AT_EMPTY_PATH == 0 => {
            vec![at(int(0), a[1], How::Read)]
        }
        libc::SYS_mkdirat | libc::SYS_mknodat => vec![at(int(0), a[1], How::Create)],
        libc::SYS_unlinkat => vec![at(int(0), a[1], How::Remove)],
        libc::SYS_renameat | libc::SYS_renameat2 => {
            vec![
                at(int(0), a[1], How::Remove),
                at(int(2), a[3], How::Replace),
            ]
        }
        libc::SYS_linkat => vec![
            at(int(0), a[1], How::LinkSource),
            at(int(2), a[3], How::Create),
        ],
        libc::SYS_symlinkat => vec![at(int(1), a[2], How::Create)],
        _ => Vec::new(),
    }
}

/// True for the calls only a learning run traps: nothing else answers
/// them.
fn only_learned(nr: i64) -> bool {
    #[cfg(target_arch = "x86_64")]
    if [
        libc::SYS_execve,
        libc::SYS_mkdir,
        libc::SYS_unlink,
        libc::SYS_rmdir,
        libc::SYS_rename,
        libc::SYS_link,
        libc::SYS_symlink,
    ]
    .contains(&nr)
    {
        return true;
    }
    [
        libc::SYS_execveat,
        libc::SYS_mkdirat,
        libc::SYS_unlinkat,
        libc::SYS_renameat,
        libc::SYS_renameat2,
        libc::SYS_linkat,
        libc::SYS_symlinkat,
    ]
    .contains(&nr)
}

/// Tells `learner` what `n` names; `Some(CONTINUE)` for a call nothing
/// else answers, `None` to hand it on. The second name of a rename or a
/// link counts only when the first exists (else the call fails).
pub(super) fn observe(learner: &Learner, n: &Notif) -> Option<Reply> {
    let args = std::array::from_fn(|i| n.arg(i));
    for named in decode(n.nr(), args) {
        if !record(learner, n, named) {
            break;
        }
    }
    only_learned(n.nr()).then_some(Reply::Continue)
}

/// Records one named path; false when it does not exist.
fn record(learner: &Learner, n: &Notif, named: Named) -> bool {
    let Ok(raw) = n.read_cstr(named.path, libc::PATH_MAX as usize) else {
        return false;
    };
    let Some(entry) = locate(n, named.dirfd, &raw) else {
        return false;
    };
    // What the name itself is (a symlink is not followed).
    let here = std::fs::symlink_metadata(entry.path()).ok();
    match named.how {
        How::Read => {
            let Some(target) = entry.resolved() else {
                return false;
            };
            if target.is_file() {
                interpreter(learner, &target);
            }
            let dir = target.is_dir();
            learner.file(Access::Read, target, dir);
            true
        }
        // The kernel refuses these (EEXIST, ENOENT) before Landlock looks.
        How::Create if here.is_some() => true,
        How::Remove | How::LinkSource if here.is_none() => false,
        How::Create | How::Remove | How::Replace | How::LinkSource => {
            learner.file(Access::Change, entry.parent, true);
            true
        }
        How::Open(flags) => open(learner, &entry, here.is_some(), flags),
    }
}

/// An open with `flags` of `entry` (which `exists` as a name).
fn open(learner: &Learner, entry: &Entry, exists: bool, flags: i32) -> bool {
    const TMPFILE: i32 = 0o2000_0000; // __O_TMPFILE, without O_DIRECTORY
    if flags & libc::O_PATH != 0 {
        return exists;
    }
    let nofollow = flags & libc::O_NOFOLLOW != 0;
    let target = if nofollow {
        exists.then(|| entry.path())
    } else {
        entry.resolved()
    };
    let creates = flags & libc::O_CREAT != 0;
    let Some(target) = target else {
        // Nothing there: only a create does anything (in the directory).
        if creates && !exists {
            learner.file(Access::Change, entry.parent.clone(), true);
        }
        return false;
    };
    let dir = target.is_dir();
    if flags & TMPFILE != 0 {
        if dir {
            learner.file(Access::Change, target, true);
        }
        return true;
    }
    let writes = flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
    let refused = (creates && flags & libc::O_EXCL != 0)
        || (flags & libc::O_DIRECTORY != 0 && !dir)
        || (dir && writes);
    match (refused, writes) {
        (true, _) => {}
        (false, true) => learner.file(Access::Write, target, false),
        (false, false) => learner.file(Access::Read, target, dir),
    }
    true
}

/// A script's interpreter (`#!/path/to/interp`), which the kernel
/// executes too: learned as read.
fn interpreter(learner: &Learner, script: &Path) {
    use std::io::Read;
    let mut head = [0u8; 256];
    let Ok(mut f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(script)
    else {
        return;
    };
    let len = f.read(&mut head).unwrap_or(0);
    let Some(line) = head[..len].strip_prefix(b"#!") else {
        return;
    };
    let line = line.split(|&b| b == b'\n').next().unwrap_or(line);
    let Some(interp) = line
        .split(|&b| b == b' ' || b == b'\t')
        .find(|w| !w.is_empty())
    else {
        return;
    };
    let interp = Path::new(std::ffi::OsStr::from_bytes(interp));
    if let Ok(path) = std::fs::canonicalize(interp) {
        learner.file(Access::Read, path, false);
    }
}

/// A socket file bound at `path` (from the cwd): its directory changes,
/// unless the name is taken (the bind fails).
pub(super) fn socket_file(learner: &Learner, n: &Notif, path: &[u8]) {
    if let Some(entry) = locate(n, CWD, path) {
        if std::fs::symlink_metadata(entry.path()).is_err() {
            learner.file(Access::Change, entry.parent, true);
        }
    }
}

/// A named path: its directory, canonical, and its last name as given
/// (a symlink there is what the call meets, not where it leads).
struct Entry {
    parent: PathBuf,
    name: OsString,
}

impl Entry {
    fn path(&self) -> PathBuf {
        self.parent.join(&self.name)
    }

    /// Where the name leads, symlinks followed; `None` when nothing is
    /// there.
    fn resolved(&self) -> Option<PathBuf> {
        std::fs::canonicalize(self.path()).ok()
    }
}

/// `raw` as the workload names it from `dirfd`: its directory made
/// absolute and canonical, and its last name. `None` for the workload's
/// own `/proc`, a directory that does not exist (the call fails), and
/// what cannot be resolved.
fn locate(n: &Notif, dirfd: i32, raw: &[u8]) -> Option<Entry> {
    if raw.is_empty() {
        return None;
    }
    let named = PathBuf::from(OsString::from_vec(raw.to_vec()));
    let joined = if named.is_absolute() {
        named
    } else {
        let base = match dirfd {
            CWD => format!("/proc/{}/cwd", n.pid),
            fd => format!("/proc/{}/fd/{fd}", n.pid),
        };
        std::fs::read_link(base).ok()?.join(named)
    };
    if joined.starts_with("/proc") || joined.starts_with("/dev/fd") {
        return None;
    }
    // `a/b/..` and `a/.`: the kernel's own walk; canonicalise it whole.
    let last = joined.file_name().map(|n| n.to_os_string());
    match last {
        Some(name) => Some(Entry {
            parent: std::fs::canonicalize(joined.parent()?).ok()?,
            name,
        }),
        None => {
            let full = std::fs::canonicalize(&joined).ok()?;
            Some(Entry {
                parent: full.parent().unwrap_or(Path::new("/")).to_path_buf(),
                name: full.file_name()?.to_os_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn calls_name_their_files() {
        let cwd = CWD as u32 as u64;
        let named = |nr, a| decode(nr, a);
        assert_eq!(
            named(libc::SYS_renameat2, [cwd, 10, 5, 20, 0, 0]),
            [
                Named {
                    dirfd: CWD,
                    path: 10,
                    how: How::Remove
                },
                Named {
                    dirfd: 5,
                    path: 20,
                    how: How::Replace
                },
            ]
        );
        assert_eq!(
            named(libc::SYS_openat, [7, 10, libc::O_WRONLY as u64, 0, 0, 0]),
            [Named {
                dirfd: 7,
                path: 10,
                how: How::Open(libc::O_WRONLY)
            }]
        );
        assert_eq!(
            named(libc::SYS_symlinkat, [10, cwd, 20, 0, 0, 0]),
            [Named {
                dirfd: CWD,
                path: 20,
                how: How::Create
            }]
        );
        // An exec of an open fd names no path.
        let empty = libc::AT_EMPTY_PATH as u64;
        assert!(named(libc::SYS_execveat, [3, 10, 0, 0, empty, 0]).is_empty());
        assert!(named(libc::SYS_getpid, [0; 6]).is_empty());
        assert!(only_learned(libc::SYS_execve) && !only_learned(libc::SYS_openat));
    }
}
