//! Reading one directory's layer into the steps that would apply it.
//!
//! The upper directory holds what the workload changed, as overlayfs
//! wrote it: whole copies of new and changed files and symlinks, a
//! whiteout (a 0:0 character device) for each deleted name, and an
//! opaque mark on a directory that replaced the host's one. The host's
//! side is read through [`Dir`] handles only.
//!
//! A host entry changed (its ctime) at or after the moment the workload
//! first changed the same name (the birth of the layer's entry: until then
//! the workload saw the host's version) and whose content differs from the
//! layer's is a conflict: it is reported and neither side is touched. A file the host deleted during the run and
//! the workload changed comes back (overlayfs's origin marks cannot tell
//! "it was here" apart from "it was renamed from there").

use std::collections::HashSet;
use std::ffi::{CStr, OsStr, OsString};
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::host::{Dir, Entry};
use super::layer::Stamp;

/// One step of applying a layer; `rel` is relative to the `--cow`
/// directory, in the order the steps run (a directory before what is in
/// it).
#[derive(Debug, Clone)]
pub(super) enum Op {
    /// Make directory `rel` with `mode` (`new`), or open the host's one
    /// up to `mode` while its contents are applied.
    Dir { rel: PathBuf, mode: u32, new: bool },
    /// Give directory `rel` its final `mode`, after its contents;
    /// `changed`: the workload changed it (else it only undoes `Dir`).
    Mode {
        rel: PathBuf,
        mode: u32,
        changed: bool,
    },
    /// Clear the opaque mark of upper directory `rel`: the host entries
    /// it hid are gone by now.
    Clear { rel: PathBuf },
    /// Put the layer's file or symlink at `rel`, over `host` (what was
    /// there at the scan, checked again just before).
    Put { rel: PathBuf, host: Option<Entry> },
    /// Remove the host's `rel` (`host` as scanned); `whiteout`: the
    /// layer's whiteout for it goes afterwards.
    Remove {
        rel: PathBuf,
        host: Entry,
        whiteout: bool,
    },
    /// The layer's entry is already what the host has (or a whiteout over
    /// nothing): it only leaves the layer.
    Drop { rel: PathBuf },
    /// The host's `rel` changed during the run: neither side is touched.
    Conflict { rel: PathBuf },
    /// A fifo, socket or device node: not applied, dropped.
    Skip { rel: PathBuf },
}

/// The steps for the layer's `upper` over the host directory `host`,
/// with `started` the run's start, `opaque` the name of overlayfs's
/// opaque mark, and `reserved` the temporary name apply uses (never the
/// workload's).
pub(super) fn scan(
    upper: &Path,
    host: &Dir,
    started: Stamp,
    opaque: &CStr,
    reserved: &OsStr,
) -> io::Result<Vec<Op>> {
    let mut s = Scan {
        upper,
        started,
        opaque,
        reserved,
        ops: Vec::new(),
    };
    s.dir(Path::new(""), Some(host))?;
    Ok(s.ops)
}

struct Scan<'a> {
    upper: &'a Path,
    started: Stamp,
    opaque: &'a CStr,
    reserved: &'a OsStr,
    ops: Vec<Op>,
}

/// How deep a layer's tree may go: the walk is recursive, and a deeper
/// tree (which no real project has) is refused, not a crashed sandlock.
const MAX_DEPTH: usize = 256;

/// The names in `dir`, sorted (the summary and the steps read in order).
fn names(dir: &Path) -> io::Result<Vec<OsString>> {
    let mut names = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<Vec<_>>>()?;
    names.sort();
    Ok(names)
}

impl Scan<'_> {
    /// The steps for upper directory `rel`, over `host` when the host has
    /// a directory there.
    fn dir(&mut self, rel: &Path, host: Option<&Dir>) -> io::Result<()> {
        if rel.components().count() > MAX_DEPTH {
            return Err(io::Error::other(format!(
                "{}: deeper than {MAX_DEPTH} directories",
                rel.display()
            )));
        }
        let at = self.upper.join(rel);
        for name in names(&at)? {
            let path = at.join(&name);
            let r = rel.join(&name);
            let meta = fs::symlink_metadata(&path)?;
            let found = match host {
                Some(d) => d.stat(&name)?.map(|e| (d, e)),
                None => None,
            };
            let ft = meta.file_type();
            if name == self.reserved {
                self.ops.push(Op::Skip { rel: r });
            } else if ft.is_char_device() && meta.rdev() == 0 {
                match found {
                    None => self.ops.push(Op::Drop { rel: r }),
                    Some((d, e)) => {
                        let since = self.since(&path);
                        self.remove(r, d, &name, e, since)?
                    }
                }
            } else if ft.is_dir() {
                self.subdir(r, &path, meta.mode(), found, &name)?;
            } else if ft.is_file() || ft.is_symlink() {
                self.file(r, &path, &meta, found, &name)?;
            } else {
                self.ops.push(Op::Skip { rel: r });
            }
        }
        Ok(())
    }

    /// A file or symlink of the layer at `rel`.
    fn file(
        &mut self,
        rel: PathBuf,
        path: &Path,
        meta: &fs::Metadata,
        found: Option<(&Dir, Entry)>,
        name: &OsStr,
    ) -> io::Result<()> {
        let op = match found {
            None => Op::Put { rel, host: None },
            Some((d, e)) if same(path, meta, d, name, &e)? => Op::Drop { rel },
            Some((d, _)) if d.changed_since(name, self.since(path))? => Op::Conflict { rel },
            Some((_, e)) => Op::Put { rel, host: Some(e) },
        };
        self.ops.push(op);
        Ok(())
    }

    /// The host's `name` in `d` goes (a whiteout made at `since`), unless
    /// it changed after the workload deleted it.
    fn remove(
        &mut self,
        rel: PathBuf,
        d: &Dir,
        name: &OsStr,
        host: Entry,
        since: Stamp,
    ) -> io::Result<()> {
        self.ops.push(if d.changed_since(name, since)? {
            Op::Conflict { rel }
        } else {
            Op::Remove {
                rel,
                host,
                whiteout: true,
            }
        });
        Ok(())
    }

    /// From when a host change to what the layer's `path` stands for is
    /// a conflict: when the workload first changed it, which is when
    /// overlayfs made the layer's entry (its birth time). Before that the
    /// workload saw the host's version through the overlay, so a change
    /// then is what it worked on. Without birth times: the run's start.
    fn since(&self, path: &Path) -> Stamp {
        born(path).unwrap_or(self.started).max(self.started)
    }

    /// A directory of the layer at `rel`: made or re-moded, what it hides
    /// of the host's removed when it is opaque, then its contents.
    fn subdir(
        &mut self,
        rel: PathBuf,
        path: &Path,
        mode: u32,
        found: Option<(&Dir, Entry)>,
        name: &OsStr,
    ) -> io::Result<()> {
        let mode = mode & 0o7777;
        // Made or opened up writable by its owner while its contents are
        // applied (a read-only directory of the layer, as Go's module
        // cache makes, would refuse them); its own mode comes last.
        let open = mode | 0o700;
        let opaque = self.is_opaque(path)?;
        let since = self.since(path);
        let mut host_dir = None;
        let last = match found {
            Some((d, e)) if e.is_dir() => {
                let sub = d.open(Path::new(name))?;
                let mut hidden = Vec::new();
                if opaque {
                    let kept: HashSet<OsString> = names(path)?.into_iter().collect();
                    for n in sub.names()?.into_iter().filter(|n| !kept.contains(n)) {
                        if sub.changed_since(&n, since)? {
                            // The whole directory is the conflict: its
                            // other steps would half-apply a replacement.
                            self.ops.push(Op::Conflict { rel });
                            return Ok(());
                        }
                        if let Some(e) = sub.stat(&n)? {
                            hidden.push((n, e));
                        }
                    }
                }
                let host_mode = e.mode & 0o7777;
                if host_mode | 0o700 != host_mode {
                    self.ops.push(Op::Dir {
                        rel: rel.clone(),
                        mode: host_mode | 0o700,
                        new: false,
                    });
                }
                for (n, e) in hidden {
                    self.ops.push(Op::Remove {
                        rel: rel.join(n),
                        host: e,
                        whiteout: false,
                    });
                }
                host_dir = Some(sub);
                (host_mode != mode || host_mode | 0o700 != host_mode).then_some(Op::Mode {
                    rel: rel.clone(),
                    mode,
                    changed: host_mode != mode,
                })
            }
            Some((d, e)) => {
                if d.changed_since(name, since)? {
                    self.ops.push(Op::Conflict { rel });
                    return Ok(());
                }
                self.ops.push(Op::Remove {
                    rel: rel.clone(),
                    host: e,
                    whiteout: false,
                });
                self.new_dir(&rel, open, mode)
            }
            None => self.new_dir(&rel, open, mode),
        };
        if opaque {
            self.ops.push(Op::Clear { rel: rel.clone() });
        }
        self.dir(&rel, host_dir.as_ref())?;
        self.ops.extend(last);
        Ok(())
    }

    /// A directory new on the host: made `open`, given `mode` after its
    /// contents (the step returned) when that differs.
    fn new_dir(&mut self, rel: &Path, open: u32, mode: u32) -> Option<Op> {
        self.ops.push(Op::Dir {
            rel: rel.to_path_buf(),
            mode: open,
            new: true,
        });
        (open != mode).then(|| Op::Mode {
            rel: rel.to_path_buf(),
            mode,
            changed: false,
        })
    }

    /// True when upper directory `path` carries overlayfs's opaque mark.
    fn is_opaque(&self, path: &Path) -> io::Result<bool> {
        let mut value = [0u8; 4];
        let c = super::host::cname(path.as_os_str())?;
        // SAFETY: C strings we own; the value goes into a local buffer of
        // the length given.
        let n = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                self.opaque.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENODATA) => Ok(false),
                _ => Err(e),
            };
        }
        match &value[..n as usize] {
            b"y" => Ok(true),
            // Any other mark is one this version does not know: refuse
            // rather than guess what the directory hides.
            _ => Err(io::Error::other(format!(
                "{}: unknown overlayfs mark {:?}",
                path.display(),
                String::from_utf8_lossy(&value[..n as usize])
            ))),
        }
    }
}

/// The birth time of `path` (not following a symlink), where the
/// filesystem records one.
fn born(path: &Path) -> Option<Stamp> {
    let c = super::host::cname(path.as_os_str()).ok()?;
    // SAFETY: statx is plain data; zeroed is a valid value.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a C string we own and a statx buffer of the right type.
    let r = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_BTIME,
            &mut st,
        )
    };
    (r == 0 && st.stx_mask & libc::STATX_BTIME != 0).then_some(Stamp {
        sec: st.stx_btime.tv_sec,
        nsec: i64::from(st.stx_btime.tv_nsec),
    })
}

/// True when the layer's `path` (`meta`) is what the host has at `name`
/// of `d` (`host`): same type, permissions, mtime and bytes (or link
/// target).
fn same(path: &Path, meta: &fs::Metadata, d: &Dir, name: &OsStr, host: &Entry) -> io::Result<bool> {
    if meta.mode() != host.mode {
        return Ok(false);
    }
    if meta.file_type().is_symlink() {
        return Ok(fs::read_link(path)?.as_os_str() == d.read_link(name)?);
    }
    // A new mtime alone is a change (`touch` to force a rebuild).
    let mtime = Stamp {
        sec: meta.mtime(),
        nsec: meta.mtime_nsec(),
    };
    if i64::try_from(meta.len()).ok() != Some(host.size) || mtime != host.mtime {
        return Ok(false);
    }
    let mut ours = super::open_nofollow(path)?;
    let mut theirs = d.read(name)?;
    let (mut a, mut b) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let n = read_full(&mut ours, &mut a)?;
        let m = read_full(&mut theirs, &mut b)?;
        if a[..n] != b[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

/// Reads until `buf` is full or the file ends; the count read.
fn read_full(f: &mut fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut at = 0;
    while at < buf.len() {
        match f.read(&mut buf[at..]) {
            Ok(0) => break,
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(at)
}

/// The summary letter of a step and the path it shows (directories with
/// a trailing `/`), or `None` for a step the user need not see.
pub(super) fn shown(op: &Op) -> Option<(char, String)> {
    let text = |rel: &Path| String::from_utf8_lossy(rel.as_os_str().as_bytes()).into_owned();
    match op {
        Op::Put { rel, host: None } => Some(('A', text(rel))),
        Op::Put { rel, host: Some(_) } => Some(('M', text(rel))),
        Op::Dir { rel, new: true, .. } => Some(('A', format!("{}/", text(rel)))),
        Op::Mode {
            rel, changed: true, ..
        } => Some(('M', format!("{}/", text(rel)))),
        Op::Dir { .. } | Op::Mode { .. } => None,
        Op::Remove { rel, host, .. } if host.is_dir() => Some(('D', format!("{}/", text(rel)))),
        Op::Remove { rel, .. } => Some(('D', text(rel))),
        Op::Conflict { rel } => Some(('C', text(rel))),
        Op::Skip { rel } => Some(('S', text(rel))),
        Op::Drop { .. } | Op::Clear { .. } => None,
    }
}
