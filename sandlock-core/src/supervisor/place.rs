//! Where a file the workload reaches lives, for the decisions Landlock
//! cannot make: whether its mode, owner, times or attributes may change
//! (only under a write grant: `-w`, `--home`, or the sandbox's private
//! TMPDIR and HOME), and whether a socket file may be connected to (under
//! a write grant, or under an `--unix-allow` path).
//!
//! Owns the roots those decisions compare against (canonical paths, taken
//! once at start) and the test itself, made on a handle the supervisor
//! holds: the kernel's own path of the inode behind it, never a path read
//! from the workload. The workload can move a file only within its write
//! grants (Landlock refuses a rename or link anywhere else), so a file
//! found under a write root stays under one until the action is done.
//!
//! Must never decide from a path the workload supplied, and never count
//! the system view's devices (`/dev/null`, ...) as a write grant: their
//! metadata belongs to the host.

use std::collections::HashSet;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::sys;

/// Where the file behind a handle lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Where {
    /// On no mount of the sandbox's mount namespace (a pipe, a socket, a
    /// memfd, an anonymous inode): no path reaches it, so it is the
    /// workload's own business.
    Anonymous,
    /// On a mounted filesystem, at this path (as the kernel reports it).
    Path(Vec<u8>),
    /// On a mount of another mount namespace (a descriptor passed in, or
    /// opened before a lazy unmount): its path means nothing here, so no
    /// grant covers it.
    Foreign,
}

/// Filesystems no path of any mount namespace reaches: pipes, sockets,
/// anonymous inodes, pidfds.
const PSEUDO_FS: [i64; 4] = [0x5049_5045, 0x534f_434b, 0x0904_1934, 0x5049_4446];
/// Filesystems a memfd lives on (an internal mount of either).
const MEMFD_FS: [i64; 2] = [0x0102_1994, 0x9584_58f6];

/// The roots of the decisions, canonical.
#[derive(Debug, Default)]
pub struct Places {
    write: Vec<Vec<u8>>,
    unix: Vec<Vec<u8>>,
    /// Mount ids of the workload's mount namespace, refreshed when an
    /// unknown id turns up (a mount made since).
    mounts: Mutex<HashSet<u64>>,
    /// A process in the workload's mount namespace when it has one of its
    /// own (the reaper): its copy of the host's mounts, plus /proc.
    namespace_of: Option<i32>,
    /// `--cow` directories (canonical) and the mount id of the overlay
    /// over each: a file at such a path on any other mount is the host's
    /// file underneath (reached through a descriptor from outside).
    cow: Vec<(Vec<u8>, u64)>,
}

fn canonical(paths: &[PathBuf]) -> Vec<Vec<u8>> {
    paths
        .iter()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
        .map(|p| p.as_os_str().as_bytes().to_vec())
        .collect()
}

/// True when `path` is `root` or below it.
fn beneath(path: &[u8], root: &[u8]) -> bool {
    if root == b"/" {
        return path.first() == Some(&b'/');
    }
    path.strip_prefix(root)
        .is_some_and(|rest| rest.is_empty() || rest.first() == Some(&b'/'))
}

impl Places {
    /// `write`: the `-w` grants, `--home` and the sandbox's private
    /// directory; `unix`: the `--unix-allow` paths. Both are canonicalised
    /// here, once. `namespace_of`: a process in the workload's mount
    /// namespace, when that is not the supervisor's (its mounts copy the
    /// host's, so the same paths name the same files).
    pub fn new(write: &[PathBuf], unix: &[PathBuf], namespace_of: Option<i32>) -> Places {
        Places {
            write: canonical(write),
            unix: canonical(unix),
            mounts: Mutex::default(),
            namespace_of,
            cow: Vec::new(),
        }
    }

    /// The `--cow` directories and their overlays' mount ids.
    pub fn with_cow(mut self, cow: &[(PathBuf, u64)]) -> Places {
        self.cow = cow
            .iter()
            .map(|(p, id)| (p.as_os_str().as_bytes().to_vec(), *id))
            .collect();
        self
    }

    /// Where the file behind `fd` lives, and its mode (type and
    /// permission bits). An error (the file cannot be examined) is for the
    /// caller to refuse on.
    pub(super) fn locate(&self, fd: BorrowedFd<'_>) -> std::io::Result<(Where, u32)> {
        let f = sys::meta::facts(fd)?;
        if self.is_mounted(f.mount)? {
            let p = sys::meta::fd_path(fd)?;
            // The host's file beneath a --cow overlay has the overlay's
            // path but is not the workload's to change: no grant covers it.
            let under_cow = self
                .cow
                .iter()
                .any(|(root, id)| beneath(&p, root) && *id != f.mount);
            return Ok((
                if under_cow {
                    Where::Foreign
                } else {
                    Where::Path(p)
                },
                f.mode,
            ));
        }
        // Not on a mount of ours: anonymous only when no filesystem path
        // can reach it at all (a memfd has no link anywhere); a file of
        // another mount namespace is foreign, whatever its path says.
        let fs = sys::meta::fs_type(fd)?;
        let anonymous = PSEUDO_FS.contains(&fs) || (MEMFD_FS.contains(&fs) && f.nlink == 0);
        Ok((
            if anonymous {
                Where::Anonymous
            } else {
                Where::Foreign
            },
            f.mode,
        ))
    }

    fn is_mounted(&self, id: u64) -> std::io::Result<bool> {
        let mut mounts = self
            .mounts
            .lock()
            .map_err(|_| std::io::Error::other("mount table lock poisoned"))?;
        if mounts.contains(&id) {
            return Ok(true);
        }
        mounts.clear();
        // The workload's mount namespace copies the supervisor's (its own
        // /proc aside), so a handle the supervisor resolved in its own
        // namespace lies at the same path for the workload: both count.
        mounts.extend(sys::meta::mounted_ids(None)?);
        if self.namespace_of.is_some() {
            mounts.extend(sys::meta::mounted_ids(self.namespace_of)?);
        }
        Ok(mounts.contains(&id))
    }

    /// True when the metadata of what lives at `at` may change.
    pub(super) fn writable(&self, at: &Where) -> bool {
        match at {
            Where::Anonymous => true,
            Where::Path(p) => self.write.iter().any(|r| beneath(p, r)),
            Where::Foreign => false,
        }
    }

    /// True when a socket file at `at` may be connected or sent to.
    pub(super) fn unix_reachable(&self, at: &Where) -> bool {
        match at {
            Where::Anonymous | Where::Foreign => false,
            Where::Path(p) => self.write.iter().chain(&self.unix).any(|r| beneath(p, r)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn beneath_is_by_whole_components() {
        assert!(beneath(b"/work", b"/work"));
        assert!(beneath(b"/work/a/b", b"/work"));
        assert!(!beneath(b"/workshop/a", b"/work"));
        assert!(!beneath(b"/wor", b"/work"));
        assert!(beneath(b"/anything", b"/"));
        // A removed file keeps its place: the kernel appends " (deleted)".
        assert!(beneath(b"/work/x (deleted)", b"/work"));
        assert!(!beneath(b"pipe:[123]", b"/"));
    }

    #[test]
    fn anonymous_objects_and_paths() {
        let dir = std::env::temp_dir().join(format!("sandlock-place-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let places = Places::new(std::slice::from_ref(&dir), &[], None);
        let file = std::fs::File::create(dir.join("f")).expect("create");
        let (at, mode) = places.locate(file.as_fd()).expect("locate");
        assert_eq!(mode & libc::S_IFMT, libc::S_IFREG);
        assert!(places.writable(&at), "{at:?}");
        assert!(places.unix_reachable(&at));
        let etc = std::fs::File::open("/etc/hostname")
            .or_else(|_| std::fs::File::open("/etc/passwd"))
            .expect("an /etc file");
        let (at, _) = places.locate(etc.as_fd()).expect("locate");
        assert!(!places.writable(&at), "{at:?}");
        let (r, _w) = nix::unistd::pipe().expect("pipe");
        assert_eq!(
            places.locate(r.as_fd()).expect("locate").0,
            Where::Anonymous
        );
        let memfd = crate::sys::sealed_memfd(c"sandlock-test", b"x").expect("memfd");
        assert_eq!(
            places.locate(memfd.as_fd()).expect("locate").0,
            Where::Anonymous
        );
        assert!(!places.unix_reachable(&Where::Anonymous));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
