//! The walk of `/etc` that keeps its secrets out of the system view when
//! file permissions alone would not (sandlock run as root): whether it is
//! needed at all, which entries may be granted, and which directories
//! must be granted entry by entry because something below them may not.
//! It runs on a thread of its own from the start of a run ([`EtcPlan`]).
//!
//! Left out: the named [`ETC_SECRETS`](crate::policy::fs::ETC_SECRETS),
//! every file that is not world-readable (mode & 0o004 == 0) and every
//! directory that is not world-searchable (mode & 0o001 == 0), with
//! everything below it: what only root, an owner or a group may read
//! (wireguard and NetworkManager connections, `ipsec.secrets`, letsencrypt
//! keys, `k3s.yaml`) is a secret of the host, whatever its name.
//!
//! Cost is start-up time, so the walk makes the fewest syscalls it can:
//! directories are opened relative to their parent and listed with
//! `getdents64` into one buffer, allocated once per walk (their mode comes
//! from the `fstat` of the open directory, not a stat by name), files get
//! one `fstatat`, and symlinks none: Landlock checks a link's target,
//! which must be granted in its own right.
//!
//! Must never grant a directory whole unless every entry below it, at any
//! depth, was listed and found harmless; an entry that cannot be examined
//! counts as a secret.

use std::ffi::{CStr, CString, OsStr};
use std::fs;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::landlock::Entry;
use crate::policy::{fs as fspol, FsPolicy};
use crate::{Error, Result};

const DT_DIR: u8 = 4;
const DT_LNK: u8 = 10;
const DT_UNKNOWN: u8 = 0;

/// How the system view grants `/etc`, decided once as a run begins:
/// whole, when file permissions alone keep its secrets from the workload;
/// otherwise entry by entry, after a walk that runs on a thread of its
/// own meanwhile. Only [`EtcPlan::start`] makes one, so a grant of `/etc`
/// whole always comes from that check.
#[derive(Debug)]
pub struct EtcPlan(Plan);

#[derive(Debug)]
enum Plan {
    Whole,
    Walk(EtcWalk),
}

impl EtcPlan {
    /// The plan for `/etc`, the walk started when one is needed (first
    /// thing in a run, so that the rest of the preparation and the launch
    /// hide its cost); `None` when the system view does not grant `/etc`
    /// (no system view; on an image's ground, `/etc` is a symlink).
    pub fn start(policy: &FsPolicy, image: bool) -> Result<Option<EtcPlan>> {
        if !policy.system_view || (image && super::landlock::through_symlink(Path::new("/etc"))) {
            return Ok(None);
        }
        if secrets_out_of_reach() {
            return Ok(Some(EtcPlan(Plan::Whole)));
        }
        EtcWalk::spawn().map(|w| Some(EtcPlan(Plan::Walk(w))))
    }

    /// The walk under way, or `None` when `/etc` is granted whole.
    pub(super) fn walk(self) -> Option<EtcWalk> {
        match self.0 {
            Plan::Whole => None,
            Plan::Walk(w) => Some(w),
        }
    }
}

/// The walk of `/etc`, on a thread of its own from the start of a run to
/// the moment its rules are made: whether `/etc` may be granted whole,
/// and the directories to grant entry by entry.
#[derive(Debug)]
pub(super) struct EtcWalk(std::thread::JoinHandle<(bool, EntryDirs)>);

/// Directories granted entry by entry, each with its harmless entries.
pub(super) type EntryDirs = Vec<(PathBuf, Vec<Entry>)>;

impl EtcWalk {
    fn spawn() -> Result<EtcWalk> {
        std::thread::Builder::new()
            .name("sandlock-etc".into())
            .spawn(|| {
                let mut entries = Vec::new();
                let whole = walk(Path::new("/etc"), &mut entries);
                (whole, entries)
            })
            .map(EtcWalk)
            .map_err(|e| Error::setup("walking /etc", e))
    }

    /// Waits for the walk and takes its result.
    pub(super) fn join(self) -> Result<(bool, EntryDirs)> {
        self.0
            .join()
            .map_err(|_| Error::setup("walking /etc", std::io::Error::other("the walk panicked")))
    }
}

/// True when file permissions alone already keep every `/etc` secret
/// away from this process (and so from the workload, which runs with the
/// same ids, no capabilities and no_new_privs). Then `/etc` is granted
/// with one rule instead of one per entry, which is most of the cost of
/// starting a sandbox. Root, or a member of a group that can read a
/// secret, gets the entry-by-entry view.
fn secrets_out_of_reach() -> bool {
    // SAFETY: geteuid has no failure mode.
    if unsafe { libc::geteuid() } == 0 {
        return false;
    }
    fspol::ETC_SECRETS
        .iter()
        .all(|pattern| match pattern.split_once('*') {
            None => unreachable_path(Path::new(pattern)),
            Some((prefix, suffix)) => {
                let (dir, stem) = prefix.rsplit_once('/').unwrap_or(("/", prefix));
                let Ok(entries) = fs::read_dir(dir) else {
                    return true;
                };
                entries.flatten().all(|e| {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    !(name.starts_with(stem) && name.ends_with(suffix))
                        || unreachable_path(&e.path())
                })
            }
        })
}

/// A file nobody here may read, or a directory nobody here may search,
/// or nothing at all.
fn unreachable_path(p: &Path) -> bool {
    let Ok(meta) = fs::symlink_metadata(p) else {
        return true;
    };
    let mode = if meta.is_dir() {
        libc::X_OK
    } else {
        libc::R_OK
    };
    let Ok(c) = CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: valid C string; faccessat only reads it.
    unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), mode, libc::AT_EACCESS) != 0 }
}

/// Walks `dir`: returns true when nothing below it had to be left out
/// (the caller grants it whole); otherwise every directory that must be
/// granted entry by entry is in `out` with its harmless entries.
pub(super) fn walk(dir: &Path, out: &mut EntryDirs) -> bool {
    let Ok(c) = CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    match open_dir(libc::AT_FDCWD, &c) {
        // Unlistable (only for a non-root walker): nothing in it is known
        // to be harmless, so none of it is granted.
        Ok((fd, _)) => Walker {
            out,
            buf: vec![0; LISTING],
        }
        .dir(&fd, dir),
        Err(_) => false,
    }
}

/// Bytes of one `getdents64` call: most directories of `/etc` list in
/// one. Allocated once per walk, so a directory costs no fresh memory
/// (on these machines a page touched for the first time costs ~10 us).
const LISTING: usize = 32 * 1024;

/// One walk's state: the directories to grant entry by entry, and the
/// buffer every listing reuses (a listing is taken in whole before the
/// walk descends).
struct Walker<'a> {
    out: &'a mut EntryDirs,
    buf: Vec<u8>,
}

/// Opens directory `name` below `at` (never through a symlink) and
/// returns it with its mode.
fn open_dir(at: RawFd, name: &CStr) -> std::io::Result<(OwnedFd, u32)> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: valid C string; a fresh fd or -1.
    let fd = unsafe { libc::openat(at, name.as_ptr(), flags) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd; we own it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let st = crate::sys::fstat(fd.as_fd())?;
    Ok((fd, st.st_mode))
}

impl Walker<'_> {
    /// Walks the open directory `fd` (named `dir`); true when it may be
    /// granted whole.
    fn dir(&mut self, fd: &OwnedFd, dir: &Path) -> bool {
        let Ok(names) = list(fd, &mut self.buf) else {
            return false;
        };
        let mut granted = Vec::new();
        let mut whole = true;
        for (name, d_type) in names {
            if d_type == DT_LNK {
                continue;
            }
            let path = dir.join(OsStr::from_bytes(name.as_bytes()));
            if path.to_str().is_none_or(fspol::is_etc_secret) {
                whole = false;
                continue;
            }
            let is_dir = match self.harmless(fd, &name, d_type, &path) {
                Some(is_dir) => is_dir,
                None => {
                    whole = false;
                    continue;
                }
            };
            granted.push(Entry {
                name: OsStr::from_bytes(name.as_bytes()).to_owned(),
                is_dir,
            });
        }
        if !whole {
            self.out.push((dir.to_path_buf(), granted));
        }
        whole
    }

    /// Examines entry `name` of the directory `fd`: `Some(is_dir)` when it may
    /// be granted whole, `None` when it (or something below it) may not. A
    /// directory below is walked, its own entry-by-entry grants put in `out`.
    fn harmless(&mut self, fd: &OwnedFd, name: &CStr, d_type: u8, path: &Path) -> Option<bool> {
        if d_type == DT_DIR {
            let (child, mode) = open_dir(fd.as_raw_fd(), name).ok()?;
            return (mode & 0o001 != 0 && self.dir(&child, path)).then_some(true);
        }
        let st = crate::sys::fstatat(fd.as_raw_fd(), name, libc::AT_SYMLINK_NOFOLLOW).ok()?;
        match st.st_mode & libc::S_IFMT {
            libc::S_IFLNK => None, // a listing that said otherwise: be safe
            libc::S_IFDIR if d_type == DT_UNKNOWN => self.harmless(fd, name, DT_DIR, path),
            libc::S_IFDIR => None,
            _ => (st.st_mode & 0o004 != 0).then_some(false),
        }
    }
}

/// The entries of the directory `fd` (name, `d_type`), `.` and `..` left
/// out, read with `getdents64` into `buf` until the end.
fn list(fd: &OwnedFd, buf: &mut [u8]) -> std::io::Result<Vec<(CString, u8)>> {
    let mut names = Vec::new();
    loop {
        // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                fd.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        let n = usize::try_from(n).map_err(|_| std::io::Error::last_os_error())?;
        if n == 0 {
            return Ok(names);
        }
        parse(buf.get(..n).unwrap_or_default(), &mut names)?;
    }
}

/// Parses `linux_dirent64` records (`u64 ino; i64 off; u16 reclen; u8
/// type; char name[]`) into `names`.
fn parse(mut rec: &[u8], names: &mut Vec<(CString, u8)>) -> std::io::Result<()> {
    const NAME_AT: usize = 19;
    let bad = || std::io::Error::from_raw_os_error(libc::EIO);
    while !rec.is_empty() {
        let head = rec.get(..NAME_AT).ok_or_else(bad)?;
        let reclen = usize::from(u16::from_ne_bytes([head[16], head[17]]));
        let d_type = head[18];
        let body = rec.get(NAME_AT..reclen).ok_or_else(bad)?;
        let name = CStr::from_bytes_until_nul(body).map_err(|_| bad())?;
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            names.push((name.to_owned(), d_type));
        }
        rec = rec.get(reclen..).ok_or_else(bad)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &[u8], d_type: u8, pad: usize) -> Vec<u8> {
        let reclen = 19 + name.len() + 1 + pad;
        let mut r = vec![0u8; 16];
        r.extend_from_slice(&(reclen as u16).to_ne_bytes());
        r.push(d_type);
        r.extend_from_slice(name);
        r.push(0);
        r.resize(reclen, 0);
        r
    }

    #[test]
    fn records_and_hostile_lengths() {
        let mut buf = record(b".", DT_DIR, 4);
        buf.extend(record(b"hosts", 8, 2));
        buf.extend(record(b"ssl", DT_DIR, 0));
        let mut names = Vec::new();
        parse(&buf, &mut names).expect("well-formed");
        let got: Vec<(&[u8], u8)> = names.iter().map(|(n, t)| (n.to_bytes(), *t)).collect();
        assert_eq!(got, [(&b"hosts"[..], 8), (&b"ssl"[..], DT_DIR)]);
        // A record length of zero, past the end, or without a NUL.
        for len in [0u16, 5, 200] {
            let mut b = record(b"x", 8, 0);
            b[16..18].copy_from_slice(&len.to_ne_bytes());
            assert!(parse(&b, &mut Vec::new()).is_err(), "{len}");
        }
        let mut b = record(b"x", 8, 0);
        let last = b.len() - 1;
        b[last] = b'y';
        assert!(parse(&b, &mut Vec::new()).is_err());
    }

    #[test]
    fn the_real_etc_lists_like_read_dir() {
        let mut want: Vec<Vec<u8>> = std::fs::read_dir("/etc")
            .expect("/etc")
            .flatten()
            .map(|e| e.file_name().as_bytes().to_vec())
            .collect();
        want.sort();
        let c = CString::new("/etc").expect("no NUL");
        let (fd, _) = open_dir(libc::AT_FDCWD, &c).expect("open /etc");
        let mut got: Vec<Vec<u8>> = list(&fd, &mut [0; LISTING])
            .expect("list")
            .into_iter()
            .map(|(n, _)| n.into_bytes())
            .collect();
        got.sort();
        assert_eq!(got, want);
    }
}
