//! Carrying out a scan's steps on the host, one name at a time, each all
//! or nothing: a file is written whole under a temporary name in its
//! directory, synced, then renamed over the old one; a directory to
//! delete is renamed away first. A step's source leaves the layer only
//! once the host has it, so an apply stopped anywhere (even by SIGKILL)
//! is finished by running it again: the rerun finds the done steps
//! identical and drops them, and clears a stale temporary name before it
//! uses it.
//!
//! Must never write through a host symlink (every name is reached with
//! [`Dir`]), never replace a host entry that changed since the scan, and
//! never create a setuid or setgid file.

use std::ffi::{CStr, OsStr};
use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::host::{Dir, Entry};
use super::scan::Op;

/// Where and why an apply stopped.
#[derive(Debug)]
pub(super) struct Stopped {
    /// The step's path, relative to the `--cow` directory.
    pub rel: PathBuf,
    pub error: io::Error,
}

/// What applying the steps did: paths that turned out to be conflicts
/// while applying (the host changed them after the scan).
#[derive(Debug, Default)]
pub(super) struct Applied {
    pub late_conflicts: Vec<PathBuf>,
}

/// The context of one directory's apply.
pub(super) struct Target<'a> {
    /// The layer's upper directory.
    pub upper: &'a Path,
    /// The host's `--cow` directory.
    pub host: &'a Dir,
    /// The temporary name in each host directory.
    pub temp: &'a OsStr,
    /// A second reserved name: where a host directory a file replaces
    /// goes first.
    pub old: &'a OsStr,
    /// overlayfs's opaque mark.
    pub opaque: &'a CStr,
}

/// Runs `ops` in order; stops at the first step that fails.
pub(super) fn apply(ops: &[Op], t: &Target<'_>) -> Result<Applied, Stopped> {
    let mut applied = Applied::default();
    let mut keep: Vec<&Path> = ops
        .iter()
        .filter(|op| matches!(op, Op::Conflict { .. }))
        .map(rel_of)
        .collect();
    for op in ops {
        let rel = rel_of(op);
        let done = step(op, t).map_err(|error| Stopped {
            rel: rel.to_path_buf(),
            error,
        })?;
        if !done {
            applied.late_conflicts.push(rel.to_path_buf());
        }
    }
    keep.extend(applied.late_conflicts.iter().map(PathBuf::as_path));
    prune(t.upper, Path::new(""), &keep).map_err(|error| Stopped {
        rel: PathBuf::new(),
        error,
    })?;
    Ok(applied)
}

fn rel_of(op: &Op) -> &Path {
    match op {
        Op::Dir { rel, .. }
        | Op::Mode { rel, .. }
        | Op::Clear { rel }
        | Op::Put { rel, .. }
        | Op::Remove { rel, .. }
        | Op::Drop { rel }
        | Op::Conflict { rel }
        | Op::Skip { rel } => rel,
    }
}

/// The host directory holding `rel` (opened beneath the `--cow`
/// directory, its stale temporary name gone) and `rel`'s last name.
fn parent<'r>(t: &Target<'_>, rel: &'r Path) -> io::Result<(Dir, &'r OsStr)> {
    let name = rel
        .file_name()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    let dir = t.host.open(rel.parent().unwrap_or(Path::new("")))?;
    dir.remove(t.temp)?;
    dir.remove(t.old)?;
    Ok((dir, name))
}

/// True when what is at a name now is what the scan saw there.
fn unchanged(now: Option<Entry>, then: Option<Entry>) -> bool {
    match (now, then) {
        (None, None) => true,
        (Some(a), Some(b)) => a.ctime == b.ctime && a.mode == b.mode && a.size == b.size,
        _ => false,
    }
}

/// One step; false when it became a conflict (nothing done).
fn step(op: &Op, t: &Target<'_>) -> io::Result<bool> {
    match op {
        Op::Dir { rel, mode, new } => {
            let (d, name) = parent(t, rel)?;
            if *new {
                let made = match d.mkdir(name, *mode) {
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => false,
                    r => r.map(|()| true)?,
                };
                if made && is_root() {
                    let up = fs::symlink_metadata(t.upper.join(rel))?;
                    d.chown_dir(name, up.uid(), up.gid())?;
                }
            }
            // mkdir applies the umask; the layer's mode is the one meant.
            d.chmod_dir(name, *mode)?;
        }
        Op::Mode { rel, mode, .. } => {
            let (d, name) = parent(t, rel)?;
            d.chmod_dir(name, *mode)?;
        }
        Op::Clear { rel } => clear_opaque(&t.upper.join(rel), t.opaque)?,
        Op::Put { rel, host } => {
            let (d, name) = parent(t, rel)?;
            let now = d.stat(name)?;
            if !unchanged(now, *host) {
                return Ok(false);
            }
            let src = t.upper.join(rel);
            if let Err(e) = put(&d, name, &src, now, t) {
                let _ = d.remove(t.temp);
                return Err(e);
            }
            // The host's directory is on disk before the layer's copy goes.
            d.sync()?;
            remove_upper(&src)?;
        }
        Op::Remove {
            rel,
            host,
            whiteout,
        } => {
            let (d, name) = parent(t, rel)?;
            let now = d.stat(name)?;
            if now.is_some() && !unchanged(now, Some(*host)) {
                return Ok(false);
            }
            if now.is_some_and(|e| e.is_dir()) {
                // Gone from its name at once; the rest is cleanup a rerun
                // also does.
                d.rename(name, t.temp)?;
                d.remove(t.temp)?;
            } else {
                d.remove(name)?;
            }
            if *whiteout {
                remove_upper(&t.upper.join(rel))?;
            }
        }
        Op::Drop { rel } | Op::Skip { rel } => {
            // A temporary name an interrupted step left there goes too
            // (the host directory may be gone: nothing to clear then).
            let _ = parent(t, rel);
            remove_upper(&t.upper.join(rel))?;
        }
        Op::Conflict { .. } => {}
    }
    Ok(true)
}

/// Writes the layer's `src` to `name` in `d` through the temporary name.
fn put(d: &Dir, name: &OsStr, src: &Path, now: Option<Entry>, t: &Target<'_>) -> io::Result<()> {
    let meta = fs::symlink_metadata(src)?;
    if meta.file_type().is_symlink() {
        d.symlink(fs::read_link(src)?.as_os_str(), t.temp)?;
    } else {
        let from = match super::open_nofollow(src) {
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
                // The workload left its file unreadable to its owner: the
                // layer's copy is ours to open (its mode is in `meta`).
                fs::set_permissions(src, fs::Permissions::from_mode(0o600))?;
                super::open_nofollow(src)?
            }
            r => r?,
        };
        let mut to = d.create(t.temp)?;
        copy_sparse(&from, &mut to, meta.len())?;
        if is_root() {
            // A changed file keeps its owner, as an edit in place would;
            // a new one gets the workload's.
            let (uid, gid) = now.map_or((meta.uid(), meta.gid()), |e| (e.uid, e.gid));
            nix::unistd::fchown(to.as_fd(), Some(uid.into()), Some(gid.into()))?;
        }
        nix::sys::stat::fchmod(
            to.as_fd(),
            nix::sys::stat::Mode::from_bits_truncate(meta.mode() & 0o1777),
        )?;
        let times = [
            nix::sys::time::TimeSpec::new(meta.atime(), meta.atime_nsec()),
            nix::sys::time::TimeSpec::new(meta.mtime(), meta.mtime_nsec()),
        ];
        nix::sys::stat::futimens(to.as_fd(), &times[0], &times[1])?;
        to.sync_all()?;
    }
    if now.is_some_and(|e| e.is_dir()) {
        // Out of the way at once; what is in it goes after the rename.
        d.rename(name, t.old)?;
        d.rename(t.temp, name)?;
        return d.remove(t.old);
    }
    d.rename(t.temp, name)
}

/// Copies `len` bytes of `from` into `to`, its holes kept as holes: a
/// sparse file in the layer is not inflated on the host.
fn copy_sparse(from: &fs::File, to: &mut fs::File, len: u64) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let fd = from.as_fd();
    let mut pos: u64 = 0;
    let at = |pos: u64, whence| -> io::Result<Option<u64>> {
        let off = i64::try_from(pos).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
        match nix::unistd::lseek(fd, off, whence) {
            Ok(o) => Ok(u64::try_from(o).ok()),
            // No data past `pos`: the rest is a hole.
            Err(nix::errno::Errno::ENXIO) => Ok(None),
            Err(e) => Err(e.into()),
        }
    };
    while pos < len {
        let Some(data) = at(pos, nix::unistd::Whence::SeekData)? else {
            break;
        };
        let end = at(data, nix::unistd::Whence::SeekHole)?
            .unwrap_or(len)
            .min(len);
        let mut src = from;
        src.seek(SeekFrom::Start(data))?;
        to.seek(SeekFrom::Start(data))?;
        let n = io::copy(&mut src.take(end.saturating_sub(data)), to)?;
        if n == 0 {
            break;
        }
        pos = data.saturating_add(n);
    }
    to.set_len(len)
}

/// Removes a file, whiteout or directory of the layer; one already gone
/// is fine. The workload may have left the directory holding it
/// read-only: the layer is ours, so it is opened up and tried again.
fn remove_upper(path: &Path) -> io::Result<()> {
    let once = || match fs::remove_file(path) {
        Err(e) if e.raw_os_error() == Some(libc::EISDIR) => fs::remove_dir(path),
        r => r,
    };
    let r = match once() {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            if let Some(parent) = path.parent() {
                let mode = fs::symlink_metadata(parent)?.permissions().mode();
                fs::set_permissions(parent, fs::Permissions::from_mode(mode | 0o700))?;
            }
            once()
        }
        r => r,
    };
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// Clears overlayfs's opaque mark of upper directory `path`.
fn clear_opaque(path: &Path, opaque: &CStr) -> io::Result<()> {
    let c = super::host::cname(path.as_os_str())?;
    // SAFETY: two C strings we own.
    if unsafe { libc::lremovexattr(c.as_ptr(), opaque.as_ptr()) } != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENODATA) {
            return Err(e);
        }
    }
    Ok(())
}

/// Removes the directories of the layer (`upper`) left empty, deepest
/// first, but never the top nor a conflict's (`keep`): an empty
/// directory there records what stays unapplied.
fn prune(upper: &Path, rel: &Path, keep: &[&Path]) -> io::Result<()> {
    let dir = upper.join(rel);
    for e in fs::read_dir(&dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            prune(upper, &rel.join(e.file_name()), keep)?;
        }
    }
    if rel.as_os_str().is_empty() || keep.contains(&rel) {
        return Ok(());
    }
    match remove_upper(&dir) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => Ok(()),
        r => r,
    }
}

/// True when this process may give files away (root).
fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
