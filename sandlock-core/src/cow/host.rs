//! The host side of a copy-on-write directory, reached only through
//! directory handles: every name is resolved beneath the `--cow`
//! directory with `openat2` (no symlinks, no magic links, no other
//! mounts), so a symlink on the host, or one the host puts there while an
//! apply runs, never sends a write elsewhere.
//!
//! Must never resolve a path from the root of the filesystem once the
//! `--cow` directory itself is open.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};

use super::layer::Stamp;

/// An open directory of the host's tree.
#[derive(Debug)]
pub(super) struct Dir(OwnedFd);

/// What is at a name on the host.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    /// `S_IFMT` bits and permissions.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: i64,
    pub ctime: Stamp,
    pub mtime: Stamp,
}

impl Entry {
    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }
}

/// `name` as a C string (a path component never holds a NUL).
pub(super) fn cname(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn how(flags: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS
                | ResolveFlag::RESOLVE_NO_XDEV,
        )
}

impl Dir {
    /// The `--cow` directory itself, by a path with no symlink in it.
    pub fn root(path: &Path) -> io::Result<Dir> {
        let how = OpenHow::new()
            .flags(OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
            .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        openat2(nix::fcntl::AT_FDCWD, path, how)
            .map(Dir)
            .map_err(io::Error::from)
    }

    /// The `--cow` directory at `path`, which must still be the directory
    /// `id` names (device and inode, as recorded when the run started): a
    /// directory moved or replaced since (an ancestor renamed, a symlink or
    /// another directory put in its place) is refused.
    pub fn root_checked(path: &Path, id: (u64, u64)) -> io::Result<Dir> {
        let moved = || {
            io::Error::other(format!(
                "{} is no longer the directory the run started with (moved or replaced)",
                path.display()
            ))
        };
        let d = Dir::root(path).map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP | libc::ENOENT | libc::ENOTDIR) => moved(),
            _ => e,
        })?;
        if d.id()? != id {
            return Err(moved());
        }
        Ok(d)
    }

    /// Device and inode of this directory.
    pub fn id(&self) -> io::Result<(u64, u64)> {
        let st = crate::sys::fstat(self.0.as_fd())?;
        Ok((st.st_dev, st.st_ino))
    }

    /// The directory at `rel` (relative, no `..`) beneath this one.
    pub fn open(&self, rel: &Path) -> io::Result<Dir> {
        if rel.as_os_str().is_empty() {
            return self.dup();
        }
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        openat2(
            self.0.as_fd(),
            rel,
            how(OFlag::O_DIRECTORY | OFlag::O_RDONLY),
        )
        .map(Dir)
        .map_err(io::Error::from)
    }

    fn dup(&self) -> io::Result<Dir> {
        self.0.try_clone().map(Dir)
    }

    /// What is at `name`, without following a symlink; `None` if nothing.
    pub fn stat(&self, name: &OsStr) -> io::Result<Option<Entry>> {
        let c = cname(name)?;
        match crate::sys::fstatat(self.0.as_raw_fd(), &c, libc::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(Entry {
                mode: st.st_mode,
                uid: st.st_uid,
                gid: st.st_gid,
                size: st.st_size,
                ctime: Stamp {
                    sec: st.st_ctime,
                    nsec: st.st_ctime_nsec,
                },
                mtime: Stamp {
                    sec: st.st_mtime,
                    nsec: st.st_mtime_nsec,
                },
            })),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The names in this directory.
    pub fn names(&self) -> io::Result<Vec<std::ffi::OsString>> {
        let dup = self.dup()?;
        let dir = nix::dir::Dir::from_fd(dup.0).map_err(io::Error::from)?;
        let mut out = Vec::new();
        for e in dir {
            let e = e.map_err(io::Error::from)?;
            let n = e.file_name().to_bytes();
            if n != b"." && n != b".." {
                out.push(OsStr::from_bytes(n).to_os_string());
            }
        }
        Ok(out)
    }

    /// Opens file `name` for reading (never a symlink's target, and never
    /// blocking on a fifo put there).
    pub fn read(&self, name: &OsStr) -> io::Result<std::fs::File> {
        openat2(
            self.0.as_fd(),
            name,
            how(OFlag::O_RDONLY | OFlag::O_NONBLOCK),
        )
        .map(std::fs::File::from)
        .map_err(io::Error::from)
    }

    /// Creates file `name`, which must not exist, for writing.
    pub fn create(&self, name: &OsStr) -> io::Result<std::fs::File> {
        openat2(
            self.0.as_fd(),
            name,
            how(OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL)
                .mode(nix::sys::stat::Mode::from_bits_truncate(0o600)),
        )
        .map(std::fs::File::from)
        .map_err(io::Error::from)
    }

    /// The target of symlink `name`.
    pub fn read_link(&self, name: &OsStr) -> io::Result<std::ffi::OsString> {
        nix::fcntl::readlinkat(self.0.as_fd(), name).map_err(io::Error::from)
    }

    /// Makes symlink `name` pointing at `target`.
    pub fn symlink(&self, target: &OsStr, name: &OsStr) -> io::Result<()> {
        nix::unistd::symlinkat(target, self.0.as_fd(), name).map_err(io::Error::from)
    }

    /// Makes directory `name`.
    pub fn mkdir(&self, name: &OsStr, mode: u32) -> io::Result<()> {
        nix::sys::stat::mkdirat(
            self.0.as_fd(),
            name,
            nix::sys::stat::Mode::from_bits_truncate(mode),
        )
        .map_err(io::Error::from)
    }

    /// Sets the permissions of directory `name`.
    pub fn chmod_dir(&self, name: &OsStr, mode: u32) -> io::Result<()> {
        let d = self.open(Path::new(name))?;
        nix::sys::stat::fchmod(d.0.as_fd(), nix::sys::stat::Mode::from_bits_truncate(mode))
            .map_err(io::Error::from)
    }

    /// Flushes this directory's entries to disk.
    pub fn sync(&self) -> io::Result<()> {
        nix::unistd::fsync(self.0.as_fd()).map_err(io::Error::from)
    }

    /// Gives directory `name` to `uid` and `gid`.
    pub fn chown_dir(&self, name: &OsStr, uid: u32, gid: u32) -> io::Result<()> {
        let d = self.open(Path::new(name))?;
        nix::unistd::fchown(d.0.as_fd(), Some(uid.into()), Some(gid.into()))
            .map_err(io::Error::from)
    }

    /// Renames `from` to `to`, both in this directory, replacing `to`.
    pub fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        nix::fcntl::renameat(self.0.as_fd(), from, self.0.as_fd(), to).map_err(io::Error::from)
    }

    /// Removes `name` and, when it is a directory, everything below it.
    pub fn remove(&self, name: &OsStr) -> io::Result<()> {
        let flag = nix::unistd::UnlinkatFlags::NoRemoveDir;
        match nix::unistd::unlinkat(self.0.as_fd(), name, flag) {
            Ok(()) => Ok(()),
            Err(nix::errno::Errno::ENOENT) => Ok(()),
            Err(nix::errno::Errno::EISDIR) => {
                let sub = self.open(Path::new(name))?;
                // It goes whole: a read-only directory in it must not stop
                // that (its owner may always open it up).
                let _ = nix::sys::stat::fchmod(
                    sub.0.as_fd(),
                    nix::sys::stat::Mode::from_bits_truncate(0o700),
                );
                for n in sub.names()? {
                    sub.remove(&n)?;
                }
                nix::unistd::unlinkat(self.0.as_fd(), name, nix::unistd::UnlinkatFlags::RemoveDir)
                    .map_err(io::Error::from)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// True when `name`, or anything below it, changed at or after
    /// `since`.
    pub fn changed_since(&self, name: &OsStr, since: Stamp) -> io::Result<bool> {
        let Some(e) = self.stat(name)? else {
            return Ok(false);
        };
        if e.ctime >= since {
            return Ok(true);
        }
        if !e.is_dir() {
            return Ok(false);
        }
        let sub = self.open(Path::new(name))?;
        for n in sub.names()? {
            if sub.changed_since(&n, since)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
