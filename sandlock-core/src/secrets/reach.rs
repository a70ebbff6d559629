//! Refusing a secret source the workload could read itself.
//!
//! Owns: the check, at start and before any value is read, that no
//! `file:` or `fd:` source is within the workload's reach. A secret the
//! workload can read is no secret: the placeholder scheme would only hide
//! what `cat` shows.
//!
//! The rules:
//!
//! - `file:PATH` is refused when PATH, canonicalised (symlinks resolved),
//!   is at or below a path the sandbox may read: a `-r`/`-w` grant or a
//!   system-view grant, as the Landlock ruleset has them after the `/etc`
//!   walk (`launch::Grants::readable_roots`, each root compared both as
//!   written and canonicalised).
//! - `fd:N` cannot leak through its number: sandlock reads N to its end and
//!   closes it before the workload exists, and marks every descriptor above
//!   2 close-on-exec before exec (`launch::child`), and 0, 1 and 2 are
//!   refused by the parser. What can leak is the *file* behind N, two ways:
//!   - it is a file the workload also gets as its stdin, stdout or stderr
//!     (`3<key <&3`, or `3<key 0<key`), opened for reading there: that
//!     descriptor can seek back and read the value again;
//!   - it is a file whose path the workload may read (the `file:` rule).
//!
//!   Only regular files and block devices keep their bytes once read; a
//!   pipe, socket or terminal shared with stdin is drained by sandlock's
//!   read, so nothing is left for the workload and it is not refused.
//!
//! Must never: read from a source, or name anything but the flag, the
//! declaration and paths in its errors (never a value).

use std::io;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use super::spec::SECRET_FLAG;
use super::{SecretSpec, Source};
use crate::policy::FsPolicy;
use crate::{Error, Result};

/// The standard streams' names, by descriptor number.
const STREAMS: [&str; 3] = ["stdin", "stdout", "stderr"];

/// What the workload can read, for the check.
pub struct Reach<'a> {
    /// Every path the sandbox may read at or below (`Grants::readable_roots`).
    pub roots: &'a [PathBuf],
    /// The filesystem policy, to say which flag granted a root.
    pub fs: &'a FsPolicy,
    /// For stdin, stdout and stderr: the descriptor of sandlock's that the
    /// workload inherits there, or `None` when sandlock gives it a stream
    /// of its own (the C ABI's fed stdin and captured output).
    pub stdio: [Option<RawFd>; 3],
}

/// Refuses the first `file:` or `fd:` source the workload could read. The
/// error names `--secret` and the declaration.
pub fn check(specs: &[SecretSpec], reach: &Reach) -> Result<()> {
    for spec in specs {
        let why = match &spec.source {
            Source::Env(_) => None,
            Source::File(path) => reach.path_reason(path),
            Source::Fd(fd) => reach.fd_reason(*fd),
        };
        if let Some(why) = why {
            return Err(Error::invalid(
                SECRET_FLAG,
                &spec.spec,
                format!(
                    "secret {}: {} can be read by the workload itself: {why}",
                    spec.name, spec.source
                ),
            ));
        }
    }
    Ok(())
}

impl Reach<'_> {
    /// Why the file at `path` is readable in the sandbox, if it is.
    fn path_reason(&self, path: &Path) -> Option<String> {
        // A path that does not resolve has nothing to read (loading the
        // value then says so).
        let real = std::fs::canonicalize(path).ok()?;
        let root = self.covering(&real)?;
        let grant = match () {
            _ if self.fs.read.contains(&root) => "granted by --fs-read",
            _ if self.fs.write.contains(&root) => "granted by --fs-write",
            _ => "granted by the system view",
        };
        let shown = match real == path {
            true => String::new(),
            false => format!(" (it is {})", real.display()),
        };
        Some(format!(
            "it is below {}, {grant}{shown}; keep the secret outside every path the sandbox may read",
            root.display()
        ))
    }

    /// The root at or above `real` (a canonical path), as written in the
    /// grants: compared as written first (the usual case, no syscall),
    /// then canonicalised (a grant may be a symlink).
    fn covering(&self, real: &Path) -> Option<PathBuf> {
        if let Some(root) = self.roots.iter().find(|r| real.starts_with(r)) {
            return Some(root.clone());
        }
        self.roots
            .iter()
            .find(|r| std::fs::canonicalize(r).is_ok_and(|c| real.starts_with(c)))
            .cloned()
    }

    /// Why the file behind descriptor `fd` is readable in the sandbox, if
    /// it is.
    fn fd_reason(&self, fd: RawFd) -> Option<String> {
        // Not open: loading the value says so.
        let st = stat_fd(fd).ok()?;
        let kind = st.st_mode & libc::S_IFMT;
        if kind != libc::S_IFREG && kind != libc::S_IFBLK {
            return None;
        }
        for (n, stream) in self.stdio.iter().enumerate() {
            let Some(theirs) = *stream else { continue };
            let same =
                stat_fd(theirs).is_ok_and(|t| (t.st_dev, t.st_ino) == (st.st_dev, st.st_ino));
            if same && opened_for_reading(theirs) {
                return Some(format!(
                    "it is the file the workload gets as its {}, which it can read again",
                    STREAMS[n]
                ));
            }
        }
        let path = fd_path(fd)?;
        // The name must still be this file (not deleted, not replaced).
        let named = std::fs::metadata(&path).ok()?;
        use std::os::unix::fs::MetadataExt;
        if (named.dev(), named.ino()) != (st.st_dev, st.st_ino) {
            return None;
        }
        self.path_reason(&path)
    }
}

/// fstat of a descriptor number that may not be open (EBADF then).
fn stat_fd(fd: RawFd) -> io::Result<libc::stat> {
    crate::sys::fstatat(fd, c"", libc::AT_EMPTY_PATH)
}

/// Was `fd` opened so that it can be read from (not write-only)?
fn opened_for_reading(fd: RawFd) -> bool {
    // SAFETY: F_GETFL only reads the descriptor's status flags; an fd that
    // is not open yields -1.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    flags != -1 && flags & libc::O_ACCMODE != libc::O_WRONLY
}

/// The path descriptor `fd` was opened with, from `/proc/self/fd`; `None`
/// when there is none (no /proc, an anonymous file) or it is not absolute.
fn fd_path(fd: RawFd) -> Option<PathBuf> {
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
    link.is_absolute().then_some(link)
}

#[cfg(test)]
#[path = "reach_tests.rs"]
mod tests;
