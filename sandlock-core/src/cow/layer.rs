//! A copy-on-write layer on disk: one directory per run, under the
//! invoking user's state directory, holding `layer.json` (which host
//! directories it covers and when the run started) and, per directory,
//! the overlay's `upper` (the workload's changes) and `work` (overlayfs's
//! scratch space).
//!
//! Owns where layers live, their record and their lock: a layer is used
//! by one process at a time (the run that fills it, then one `apply` or
//! `drop`), so two applies never interleave. Must never put a layer
//! inside a directory it covers (overlayfs refuses overlapping layers) nor
//! in a shared directory another user could have prepared.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The record's name inside a layer.
const RECORD: &str = "layer.json";
/// The record's format.
const VERSION: u64 = 1;

/// When the run started, on the clock the kernel stamps ctimes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp {
    /// Seconds since the epoch.
    pub sec: i64,
    /// Nanoseconds.
    pub nsec: i64,
}

impl Stamp {
    /// Now, from `CLOCK_REALTIME_COARSE`: the clock inode times come
    /// from, so a change made after this call never has an earlier ctime
    /// (a change in the same tick before it counts as after: a conflict
    /// reported too many, never one missed).
    pub fn now() -> Stamp {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec we own.
        unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
        Stamp {
            sec: ts.tv_sec,
            nsec: ts.tv_nsec,
        }
    }

    /// The ctime of `meta`.
    pub fn ctime(meta: &fs::Metadata) -> Stamp {
        Stamp {
            sec: meta.ctime(),
            nsec: meta.ctime_nsec(),
        }
    }
}

/// One layer, locked by this process.
#[derive(Debug)]
pub struct Layer {
    path: PathBuf,
    dirs: Vec<PathBuf>,
    /// Device and inode of each directory when the run started.
    ids: Vec<(u64, u64)>,
    started: Stamp,
    /// overlayfs marks whiteouts' siblings and opaque directories with
    /// `user.` xattrs (a run in a user namespace) or `trusted.` ones.
    user_xattr: bool,
    /// The record, open and `flock`ed for as long as the layer is used.
    _lock: File,
}

impl Layer {
    /// Makes a new layer for `dirs` (canonical, as `--cow` keeps them),
    /// stamped now, for an overlay that marks with `user.` xattrs when
    /// `user_xattr`.
    /// `granted`: directories the workload may write (the layer must not
    /// be in one, or the workload could rewrite its own layer).
    pub fn create(dirs: &[PathBuf], granted: &[PathBuf], user_xattr: bool) -> Result<Layer> {
        let avoid: Vec<PathBuf> = dirs
            .iter()
            .chain(granted)
            .flat_map(|d| [d.clone(), fs::canonicalize(d).unwrap_or_else(|_| d.clone())])
            .collect();
        let root =
            state_root(&avoid).map_err(|e| Error::setup("copy-on-write layer directory", e))?;
        Layer::create_in(&root, dirs, user_xattr)
    }

    /// [`Layer::create`] in the directory `root`.
    fn create_in(root: &Path, dirs: &[PathBuf], user_xattr: bool) -> Result<Layer> {
        let ids = dirs
            .iter()
            .map(|d| {
                super::host::Dir::root(d)
                    .and_then(|h| h.id())
                    .map_err(|e| Error::invalid("--cow", &d.display().to_string(), e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        let stem = dirs
            .first()
            .and_then(|d| d.file_name())
            .and_then(|n| n.to_str())
            .unwrap_or("cow");
        let id = crate::sys::random_hex(4).map_err(|e| Error::setup("getrandom", e))?;
        let path = root.join(format!("{stem}-{}-{id}", Stamp::now().sec));
        let made = || -> io::Result<Layer> {
            fs::DirBuilder::new().mode(0o700).create(&path)?;
            for (i, dir) in dirs.iter().enumerate() {
                let upper = path.join(i.to_string()).join("upper");
                fs::DirBuilder::new()
                    .mode(0o700)
                    .recursive(true)
                    .create(&upper)?;
                // The overlay's root shows the upper directory's mode: the
                // host directory's, as the workload would see it with -w.
                let mode = fs::metadata(dir)?.permissions().mode() & 0o7777;
                fs::set_permissions(&upper, fs::Permissions::from_mode(mode))?;
                fs::DirBuilder::new()
                    .mode(0o700)
                    .create(path.join(i.to_string()).join("work"))?;
            }
            let started = Stamp::now();
            let record = serde_json::json!({
                "version": VERSION,
                "started": [started.sec, started.nsec],
                "dirs": dirs.iter().map(|d| d.to_string_lossy()).collect::<Vec<_>>(),
                "xattrs": if user_xattr { "user" } else { "trusted" },
                "ids": ids,
            });
            let tmp = path.join(".layer.json.new");
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(record.to_string().as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, path.join(RECORD))?;
            Ok(Layer {
                _lock: lock(&path.join(RECORD))?,
                path: path.clone(),
                dirs: dirs.to_vec(),
                ids: ids.clone(),
                started,
                user_xattr,
            })
        };
        made().map_err(|e| {
            let _ = remove_tree(&path);
            Error::setup(
                format!("creating the copy-on-write layer {}", path.display()),
                e,
            )
        })
    }

    /// Opens the layer at `path` (as `sandlock cow apply|drop` name it).
    pub fn open(path: &Path) -> Result<Layer> {
        let shown = path.display().to_string();
        let bad = |reason: String| Error::invalid("layer", &shown, reason);
        use std::ops::Not;
        let path = &fs::canonicalize(path).map_err(|e| bad(e.to_string()))?;
        // A layer is applied with this user's rights: it must be this
        // user's own, in a directory only this user may change, or
        // another user could have written what gets applied.
        if let Err(e) = fs::symlink_metadata(path.join(RECORD)) {
            return Err(bad(format!("not a sandlock layer ({RECORD}: {e})")));
        }
        let uid = nix::unistd::geteuid().as_raw();
        for p in [path.parent().unwrap_or(path), path.as_path()] {
            owned(p, uid, true, true).map_err(|e| bad(format!("{}: {e}", p.display())))?;
        }
        let text = fs::read_to_string(path.join(RECORD))
            .map_err(|e| bad(format!("not a sandlock layer ({RECORD}: {e})")))?;
        let lock = lock(&path.join(RECORD)).map_err(|e| bad(e.to_string()))?;
        let (started, dirs, user_xattr, ids) = parse_record(&text).map_err(&bad)?;
        let mut parts = vec![path.join(RECORD)];
        for i in 0..dirs.len() {
            let d = path.join(i.to_string());
            parts.extend([d.join("upper"), d.join("work"), d]);
        }
        for p in &parts {
            owned(p, uid, p.ends_with(RECORD).not(), false)
                .map_err(|e| bad(format!("{}: {e}", p.display())))?;
        }
        Ok(Layer {
            path: path.to_path_buf(),
            dirs,
            ids,
            started,
            user_xattr,
            _lock: lock,
        })
    }

    /// A short name of this layer, unique among layers (its random tail).
    pub fn tag(&self) -> &str {
        self.path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.rsplit('-').next())
            .unwrap_or("layer")
    }

    /// Where the layer is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The host directories it covers, in `--cow` order.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Device and inode of directory `i` when the run started.
    pub fn id(&self, i: usize) -> (u64, u64) {
        self.ids[i]
    }

    /// When the run started.
    pub fn started(&self) -> Stamp {
        self.started
    }

    /// The name of overlayfs's opaque-directory mark in this layer.
    pub fn opaque_xattr(&self) -> &'static std::ffi::CStr {
        if self.user_xattr {
            c"user.overlay.opaque"
        } else {
            c"trusted.overlay.opaque"
        }
    }

    /// The changes made to directory `i`.
    pub fn upper(&self, i: usize) -> PathBuf {
        self.path.join(i.to_string()).join("upper")
    }

    /// overlayfs's scratch directory for directory `i`.
    pub fn work(&self, i: usize) -> PathBuf {
        self.path.join(i.to_string()).join("work")
    }

    /// Removes the layer and everything in it.
    pub fn remove(self) -> io::Result<()> {
        remove_tree(&self.path)
    }
}

/// Takes the layer's lock, or says who holds it.
fn lock(record: &Path) -> io::Result<File> {
    let f = File::open(record)?;
    // SAFETY: flock on a file we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => io::Error::other(
                "in use by another sandlock (a running sandbox, or an apply or drop)",
            ),
            _ => e,
        });
    }
    Ok(f)
}

/// What a record holds: the start, the directories, whether overlayfs
/// used `user.` xattrs, and each directory's device and inode.
type Record = (Stamp, Vec<PathBuf>, bool, Vec<(u64, u64)>);

/// A record's contents; an error says what is wrong with it.
fn parse_record(text: &str) -> std::result::Result<Record, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("{RECORD} is not JSON: {e}"))?;
    if v["version"].as_u64() != Some(VERSION) {
        return Err(format!("{RECORD} has an unknown version"));
    }
    let started = match v["started"].as_array().map(Vec::as_slice) {
        Some([s, n]) => Stamp {
            sec: s.as_i64().ok_or("bad start time")?,
            nsec: n
                .as_i64()
                .filter(|n| (0..1_000_000_000).contains(n))
                .ok_or("bad start time")?,
        },
        _ => return Err(format!("{RECORD} has no start time")),
    };
    let dirs: Vec<PathBuf> = v["dirs"]
        .as_array()
        .ok_or(format!("{RECORD} lists no directories"))?
        .iter()
        .map(|d| d.as_str().map(PathBuf::from).filter(|p| p.is_absolute()))
        .collect::<Option<_>>()
        .ok_or(format!(
            "{RECORD} has a directory that is not an absolute path"
        ))?;
    if dirs.is_empty() {
        return Err(format!("{RECORD} lists no directories"));
    }
    let user_xattr = match v["xattrs"].as_str() {
        Some("user") => true,
        Some("trusted") => false,
        _ => return Err(format!("{RECORD} does not say which xattrs overlayfs used")),
    };
    let pair = |p: &serde_json::Value| match p.as_array().map(Vec::as_slice) {
        Some([d, i]) => Some((d.as_u64()?, i.as_u64()?)),
        _ => None,
    };
    let ids: Vec<(u64, u64)> = v["ids"]
        .as_array()
        .and_then(|a| a.iter().map(pair).collect::<Option<Vec<_>>>())
        .filter(|ids| ids.len() == dirs.len())
        .ok_or(format!("{RECORD} does not identify each directory"))?;
    Ok((started, dirs, user_xattr, ids))
}

/// The directory layers go in: `$XDG_STATE_HOME/sandlock/cow`, else
/// `~/.local/state/sandlock/cow`, else `$TMPDIR/sandlock-cow-UID` (or
/// /tmp's), skipping any inside `avoid` (the directories the layer covers
/// and the ones the workload may write).
fn state_root(avoid: &[PathBuf]) -> io::Result<PathBuf> {
    let env_dir = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    let temp = env_dir("TMPDIR").unwrap_or_else(|| PathBuf::from("/tmp"));
    let candidates = [
        env_dir("XDG_STATE_HOME").map(|s| s.join("sandlock/cow")),
        env_dir("HOME").map(|h| h.join(".local/state/sandlock/cow")),
        Some(temp.join(format!("sandlock-cow-{uid}"))),
    ];
    let mut last = io::Error::other(
        "every place for the layer (XDG_STATE_HOME, ~/.local/state, TMPDIR) is inside a --cow directory or a write grant; set XDG_STATE_HOME elsewhere",
    );
    for c in candidates.into_iter().flatten() {
        if avoid.iter().any(|d| c.starts_with(d)) {
            continue;
        }
        match own_dir(&c, uid) {
            Ok(()) => return Ok(c),
            Err(e) => last = io::Error::new(e.kind(), format!("{}: {e}", c.display())),
        }
    }
    Err(last)
}

/// Makes `dir` (mode 0700) or checks that the one there is a real
/// directory of `uid` that nobody else may write.
fn own_dir(dir: &Path, uid: u32) -> io::Result<()> {
    match fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = fs::symlink_metadata(dir)?;
    if !meta.is_dir() || meta.uid() != uid || meta.permissions().mode() & 0o022 != 0 {
        return Err(io::Error::other(
            "exists but is not a directory of this user that only it may write",
        ));
    }
    Ok(())
}

/// Checks that `path` is, without following a symlink, a directory (or
/// with `dir` false a regular file) of `uid`, and with `closed` one that
/// no one else may write. (What is inside a closed layer directory keeps
/// the modes the workload gave it: no one else can reach it.)
fn owned(path: &Path, uid: u32, dir: bool, closed: bool) -> io::Result<()> {
    let m = fs::symlink_metadata(path)?;
    let kind = if dir { m.is_dir() } else { m.is_file() };
    if !kind || m.uid() != uid || (closed && m.permissions().mode() & 0o022 != 0) {
        return Err(io::Error::other(format!(
            "not a {} of this user{}",
            if dir { "directory" } else { "file" },
            if closed {
                " that only it may write"
            } else {
                ""
            }
        )));
    }
    Ok(())
}

/// Removes a layer's tree. overlayfs leaves its `work/work` directory
/// with mode 0, and the workload may have left read-only directories:
/// every directory is opened up first (never through a symlink).
fn remove_tree(path: &Path) -> io::Result<()> {
    fn open_up(dir: &Path, depth: usize) {
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
        if depth == 0 {
            return;
        }
        if let Ok(entries) = fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    open_up(&e.path(), depth - 1);
                }
            }
        }
    }
    if fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        open_up(path, 512);
    }
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_hostile_ones_are_refused() {
        let ok = r#"{"version":1,"started":[5,7],"dirs":["/a","/b c"],"xattrs":"user","ids":[[1,2],[3,4]]}"#;
        let (s, d, user, ids) = parse_record(ok).unwrap();
        assert!(user);
        assert_eq!(ids, [(1, 2), (3, 4)]);
        assert_eq!(s, Stamp { sec: 5, nsec: 7 });
        assert_eq!(d, [PathBuf::from("/a"), PathBuf::from("/b c")]);
        for bad in [
            "",
            "[]",
            r#"{"version":2,"started":[5,7],"dirs":["/a"]}"#,
            r#"{"version":1,"started":[5],"dirs":["/a"]}"#,
            r#"{"version":1,"started":[5,1000000000],"dirs":["/a"]}"#,
            r#"{"version":1,"started":[5,-1],"dirs":["/a"]}"#,
            r#"{"version":1,"started":[5,7],"dirs":["relative"]}"#,
            r#"{"version":1,"started":[5,7],"dirs":[]}"#,
            r#"{"version":1,"started":[5,7],"dirs":[7],"xattrs":"user"}"#,
            r#"{"version":1,"started":[5,7],"dirs":["/a"]}"#,
            r#"{"version":1,"started":[5,7],"dirs":["/a"],"xattrs":"security","ids":[[1,2]]}"#,
            r#"{"version":1,"started":[5,7],"dirs":["/a"],"xattrs":"user"}"#,
            r#"{"version":1,"started":[5,7],"dirs":["/a"],"xattrs":"user","ids":[[1,2],[3,4]]}"#,
            r#"{"version":1,"started":[5,7],"dirs":["/a"],"xattrs":"user","ids":[[1,-2]]}"#,
        ] {
            assert!(parse_record(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_layer_is_made_locked_and_removed() {
        let base = std::env::temp_dir().join(format!("sandlock-layer-{}", std::process::id()));
        let cow = base.join("project");
        fs::create_dir_all(&cow).unwrap();
        let layer = Layer::create_in(&base, std::slice::from_ref(&cow), false).unwrap();
        assert!(layer.path().starts_with(&base));
        assert!(layer.upper(0).is_dir() && layer.work(0).is_dir());
        let e = Layer::open(layer.path()).unwrap_err().to_string();
        assert!(e.contains("in use"), "{e}");
        let path = layer.path().to_path_buf();
        drop(layer);
        let again = Layer::open(&path).unwrap();
        assert_eq!(again.dirs(), [cow]);
        fs::create_dir_all(again.work(0).join("work")).unwrap();
        fs::set_permissions(again.work(0).join("work"), fs::Permissions::from_mode(0o0)).unwrap();
        again.remove().unwrap();
        assert!(!path.exists());
        fs::remove_dir_all(&base).unwrap();
    }
}
