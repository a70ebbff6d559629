//! `TempDir`: the one scratch directory type of the end-to-end tests.
//!
//! std only, no `unwrap` and no paths into the rest of `common`, so that
//! another test crate can include this file with `#[path]`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

static TMP_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A directory under /tmp, mode 0777 (so the 65534 variant can use it),
/// removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = TMP_COUNTER.fetch_add(1, Ordering::SeqCst);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = PathBuf::from(format!(
            "/tmp/sandlock-e2e-{}-{}-{}-{:x}",
            tag,
            std::process::id(),
            n,
            nanos
        ));
        fs::create_dir(&path).expect("create temp dir");
        chmod(&path, 0o777);
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path as a string (all our temp paths are ASCII).
    pub fn s(&self) -> String {
        utf8(&self.path)
    }

    /// `self/rel` as a string.
    pub fn join(&self, rel: &str) -> String {
        utf8(&self.path.join(rel))
    }

    /// Creates a world-readable file `rel` with `content`; returns its path.
    pub fn file(&self, rel: &str, content: &str) -> String {
        let p = self.path.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("create the file's directory");
        }
        fs::write(&p, content).expect("write the file");
        chmod(&p, 0o644);
        utf8(&p)
    }

    /// Creates a subdirectory with `mode`; returns its path.
    pub fn dir(&self, rel: &str, mode: u32) -> String {
        let p = self.path.join(rel);
        fs::create_dir_all(&p).expect("create the directory");
        chmod(&p, mode);
        utf8(&p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", p.display()));
}

fn utf8(p: &Path) -> String {
    p.to_str().expect("test paths are UTF-8").to_string()
}
