//! The files a sandbox sees with content from memory: the virtual
//! `/etc/hosts`, trust bundles with the sandbox CA spliced in, and files
//! that exist only inside the sandbox (the CA alone, a full bundle, the
//! OpenSSL hashed-directory entry).
//!
//! Each is a sealed memfd, so the workload can neither change it nor see
//! anything but its content; every open gets a fresh read-only description
//! of it. This module never touches the real files beyond reading them.

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::sys;

/// Where a virtual file sits in the workload's view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Place {
    /// It replaces the real file with this (st_dev, st_ino).
    Inode(u64, u64),
    /// It exists only in the sandbox: this name in the directory with
    /// this (st_dev, st_ino).
    InDir { dir: (u64, u64), name: Vec<u8> },
}

/// A file the sandbox sees with content from memory.
pub struct VirtualFile {
    path: PathBuf,
    place: Place,
    memfd: OwnedFd,
    reopen: CString,
}

impl std::fmt::Debug for VirtualFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VirtualFile({})", self.path.display())
    }
}

fn id_of(path: &Path) -> io::Result<(u64, u64)> {
    std::fs::metadata(path).map(|m| (m.dev(), m.ino()))
}

impl VirtualFile {
    /// Serves `content` wherever the workload opens `path` for reading:
    /// in place of the real file when it exists, otherwise as a new name
    /// in its (existing) directory.
    pub fn new(path: &str, content: &[u8]) -> io::Result<VirtualFile> {
        let path = PathBuf::from(path);
        let place = match id_of(&path) {
            Ok((dev, ino)) => Place::Inode(dev, ino),
            Err(_) => {
                let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
                    return Err(io::Error::from_raw_os_error(libc::EINVAL));
                };
                Place::InDir {
                    dir: id_of(dir)?,
                    name: name.as_bytes().to_vec(),
                }
            }
        };
        Self::with_place(path, place, content)
    }

    /// Serves `content` in place of the file `(dev, ino)` (found through
    /// a descriptor, not by `path` again), which opens of `path` reach.
    pub fn at_inode(path: &str, id: (u64, u64), content: &[u8]) -> io::Result<VirtualFile> {
        Self::with_place(PathBuf::from(path), Place::Inode(id.0, id.1), content)
    }

    fn with_place(path: PathBuf, place: Place, content: &[u8]) -> io::Result<VirtualFile> {
        let memfd = sys::sealed_memfd(c"sandlock-virtual", content)?;
        let reopen = CString::new(format!("/proc/self/fd/{}", memfd.as_raw_fd())).expect("no NUL");
        Ok(VirtualFile {
            path,
            place,
            memfd,
            reopen,
        })
    }

    pub(super) fn place(&self) -> &Place {
        &self.place
    }

    /// The sealed content, for answering `stat` on a file that exists only
    /// in the sandbox.
    pub(super) fn memfd(&self) -> BorrowedFd<'_> {
        self.memfd.as_fd()
    }

    /// A new open file description of the content, so every open has its
    /// own offset.
    pub(super) fn open_fresh(&self) -> io::Result<OwnedFd> {
        // SAFETY: valid C string; flags are constants.
        let fd = unsafe { libc::open(self.reopen.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fresh fd.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

/// The roots the workload may read below, answering "may it read this
/// path?" by canonical path. Roots are canonicalised only when a path is
/// not below one as written: resolving the ~170 entry grants of a root's
/// `/etc` costs hundreds of readlinks that most runs never need.
#[derive(Debug, Default)]
pub struct ReadableRoots {
    raw: Vec<PathBuf>,
    canonical: std::sync::OnceLock<Vec<PathBuf>>,
}

impl ReadableRoots {
    /// Wraps absolute roots.
    pub fn new(raw: Vec<PathBuf>) -> ReadableRoots {
        ReadableRoots {
            raw,
            canonical: std::sync::OnceLock::new(),
        }
    }

    /// True when the file `path` (canonicalised here) is below a root.
    pub fn covers(&self, path: &Path) -> bool {
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        self.raw.iter().any(|r| path.starts_with(r))
            || self
                .canonical
                .get_or_init(|| {
                    self.raw
                        .iter()
                        .filter_map(|r| std::fs::canonicalize(r).ok())
                        .collect()
                })
                .iter()
                .any(|r| path.starts_with(r))
    }
}

/// Bundles found while the sandbox runs (`certifi/cacert.pem` anywhere):
/// recognised by the end of their canonical path, spliced on first open.
pub struct SuffixSplice {
    /// The basename an open must use to be considered (cheap to check on
    /// every open; the canonical path is only looked up for it).
    pub basename: Vec<u8>,
    /// What the canonical path must end with.
    pub suffix: Vec<u8>,
    /// What the workload reads instead of the real content; `None` leaves
    /// the file as it is (a format the splice does not know).
    pub transform: Transform,
}

impl std::fmt::Debug for SuffixSplice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SuffixSplice")
            .field("basename", &String::from_utf8_lossy(&self.basename))
            .field("suffix", &String::from_utf8_lossy(&self.suffix))
            .finish_non_exhaustive()
    }
}

/// A splice's rewrite of a file's content.
pub type Transform = Arc<dyn Fn(Vec<u8>) -> Option<Vec<u8>> + Send + Sync>;

/// Every virtual file of a sandbox.
#[derive(Debug, Default)]
pub struct Virtuals {
    files: Vec<Arc<VirtualFile>>,
    /// Basenames of files that exist only in the sandbox.
    names: HashSet<Vec<u8>>,
    splices: Vec<SuffixSplice>,
    /// What the workload may read: a run-time splice serves only files
    /// below it, so it never shows the workload a file Landlock keeps
    /// from it.
    readable: Arc<ReadableRoots>,
    found: Mutex<HashMap<(u64, u64), Arc<VirtualFile>>>,
}

/// Spliced bundles found at run time kept at most.
const MAX_FOUND: usize = 256;
/// The largest bundle spliced at run time (certifi's is about 300 KiB).
const MAX_SPLICED: u64 = 16 * 1024 * 1024;

impl Virtuals {
    /// The fixed files, and the run-time splices for files below the
    /// `readable` roots.
    pub fn new(
        files: Vec<VirtualFile>,
        splices: Vec<SuffixSplice>,
        readable: Arc<ReadableRoots>,
    ) -> Virtuals {
        let names = files
            .iter()
            .filter_map(|f| match &f.place {
                Place::InDir { name, .. } => Some(name.clone()),
                Place::Inode(..) => None,
            })
            .collect();
        Virtuals {
            files: files.into_iter().map(Arc::new).collect(),
            names,
            splices,
            readable,
            found: Mutex::default(),
        }
    }

    /// True when no open needs looking at.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.splices.is_empty()
    }

    /// True when no open would need looking at once the fixed file
    /// `path` is served some other way (see [`Virtuals::without`]).
    pub fn is_empty_but(&self, path: &Path) -> bool {
        self.files.iter().all(|f| f.path == path) && self.splices.is_empty()
    }

    /// These files without the fixed file `path`, which the workload's
    /// mount namespace serves instead (its `/etc/hosts`): an open of it
    /// is then answered CONTINUE and reaches the mount.
    pub fn without(mut self, path: &Path) -> Virtuals {
        self.files.retain(|f| f.path != path);
        self.names = self
            .files
            .iter()
            .filter_map(|f| match &f.place {
                Place::InDir { name, .. } => Some(name.clone()),
                Place::Inode(..) => None,
            })
            .collect();
        self
    }

    /// True when a file exists only in the sandbox, so lookups by path
    /// (stat, access) must be trapped to find it.
    pub fn has_sandbox_only(&self) -> bool {
        !self.names.is_empty()
    }

    /// True when `basename` may name a file that exists only in the sandbox.
    pub(super) fn is_sandbox_only_name(&self, basename: &[u8]) -> bool {
        self.names.contains(basename)
    }

    /// True when an open by `basename` may reach a run-time splice.
    pub(super) fn may_splice(&self, basename: &[u8]) -> bool {
        self.splices.iter().any(|s| s.basename == basename)
    }

    /// The file replacing the real file `id`, if any.
    pub(super) fn by_inode(&self, id: (u64, u64)) -> Option<Arc<VirtualFile>> {
        let fixed = self
            .files
            .iter()
            .find(|f| f.place == Place::Inode(id.0, id.1));
        if let Some(f) = fixed {
            return Some(Arc::clone(f));
        }
        self.found.lock().ok()?.get(&id).cloned()
    }

    /// The file that exists only in the sandbox as `name` in directory `dir`.
    pub(super) fn in_dir(&self, dir: (u64, u64), name: &[u8]) -> Option<Arc<VirtualFile>> {
        self.files
            .iter()
            .find(
                |f| matches!(&f.place, Place::InDir { dir: d, name: n } if *d == dir && n == name),
            )
            .cloned()
    }

    /// Splices the real file `fd` (canonically `canonical`, inode `id`) when
    /// a run-time rule covers it. The real content is read from `fd`, which
    /// the supervisor opened itself, with the workload's rights (when
    /// `as_workload`; a root supervisor must not read what the workload's
    /// file permissions keep from it), only when it is a regular file no
    /// larger than [`MAX_SPLICED`] (a FIFO would block the notify thread).
    pub(super) fn splice_found(
        &self,
        fd: &OwnedFd,
        canonical: &[u8],
        id: (u64, u64),
        as_workload: bool,
    ) -> io::Result<Option<Arc<VirtualFile>>> {
        let Some(rule) = self.splices.iter().find(|s| canonical.ends_with(&s.suffix)) else {
            return Ok(None);
        };
        let path = Path::new(std::ffi::OsStr::from_bytes(canonical));
        if !self.readable.covers(path) {
            return Ok(None);
        }
        let st = crate::sys::fstat(std::os::fd::AsFd::as_fd(fd))?;
        let size = u64::try_from(st.st_size).unwrap_or(u64::MAX);
        if st.st_mode & libc::S_IFMT != libc::S_IFREG || size > MAX_SPLICED {
            return Ok(None);
        }
        let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let content = crate::sys::creds::WorkloadRights::run(as_workload, || {
            use std::io::Read;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
                .open(&link)?;
            let mut content = Vec::new();
            f.by_ref().take(MAX_SPLICED).read_to_end(&mut content)?;
            Ok(content)
        })?;
        let Some(content) = (rule.transform)(content) else {
            return Ok(None);
        };
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(canonical));
        let file = Arc::new(VirtualFile::with_place(
            path,
            Place::Inode(id.0, id.1),
            &content,
        )?);
        if let Ok(mut found) = self.found.lock() {
            if found.len() >= MAX_FOUND {
                found.clear();
            }
            found.insert(id, Arc::clone(&file));
        }
        Ok(Some(file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn virtuals(files: Vec<VirtualFile>) -> Virtuals {
        Virtuals::new(files, Vec::new(), Arc::new(ReadableRoots::new(Vec::new())))
    }

    #[test]
    fn a_file_served_elsewhere_leaves_the_others() {
        let dir = std::env::temp_dir();
        let hosts = VirtualFile::new("/etc/hosts", b"127.0.0.1 a\n").unwrap();
        let id = id_of(Path::new("/etc/hosts")).unwrap();
        let only = dir.join("sandlock-vfile-test-no-such-file.pem");
        let only = VirtualFile::new(only.to_str().unwrap(), b"ca").unwrap();
        let v = virtuals(vec![hosts, only]);
        let hosts = Path::new("/etc/hosts");
        assert!(!v.is_empty_but(hosts), "another file is still served");
        assert!(v.by_inode(id).is_some());
        let v = v.without(hosts);
        assert!(v.by_inode(id).is_none(), "its opens go to the mount");
        assert!(v.has_sandbox_only());
        assert!(!v.is_empty());
    }

    #[test]
    fn hosts_alone_served_elsewhere_leaves_nothing() {
        let hosts = Path::new("/etc/hosts");
        let v = virtuals(vec![VirtualFile::new("/etc/hosts", b"x").unwrap()]);
        assert!(v.is_empty_but(hosts));
        assert!(!v.is_empty());
        let v = v.without(hosts);
        assert!(v.is_empty());
        assert!(!v.has_sandbox_only());
    }
}
