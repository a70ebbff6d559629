//! The sandbox's private directory: one fresh, unguessable root (mode
//! 0700) holding the workload's TMPDIR (`tmp/`) and, unless `--home` names
//! a directory of the user's, its HOME (`home/`). The root is granted
//! read-write and removed with everything in it when the run ends (by the
//! reaper, even if sandlock itself is killed).
//!
//! A private HOME starts empty but for links: every `-r`/`-w` grant below
//! the invoking user's own home appears at the same place in it, as a
//! symlink to the original (Landlock checks the target, which is granted),
//! so `-r ~/.gitconfig` is what git finds at `$HOME/.gitconfig`.
//!
//! Must never create anything outside the fresh root: links are made only
//! in directories this module just created, never through a link.

use std::ffi::OsString;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::policy::FsPolicy;
use crate::{Error, Result};

/// The private directory of one run, before and after it exists.
#[derive(Debug, Clone)]
pub(super) struct Private {
    root: PathBuf,
    /// The invoking user's home (`$HOME`, when absolute): grants below it
    /// are linked into a private HOME.
    user_home: Option<PathBuf>,
    /// Where the supervisor reaches the root when a tmpfs of the sandbox's
    /// mount namespace covers it (`--disk`): through the reaper's root.
    covered: Option<PathBuf>,
}

impl Private {
    /// A fresh, unguessable name under `$TMPDIR` (or /tmp), and the
    /// invoking user's home. Nothing is created yet; [`Private::create`] fails rather than reuse anything
    /// already there.
    pub(super) fn new() -> Result<Private> {
        let base = std::env::var_os("TMPDIR")
            .filter(|t| Path::new(t).is_absolute())
            .unwrap_or_else(|| OsString::from("/tmp"));
        let name = crate::sys::random_hex(9).map_err(|e| Error::setup("getrandom", e))?;
        Ok(Private {
            root: Path::new(&base).join(format!("sandlock.{name}")),
            user_home: std::env::var_os("HOME")
                .map(PathBuf::from)
                .filter(|h| h.is_absolute()),
            covered: None,
        })
    }

    /// Creates the root alone, empty, as the mount point of the tmpfs
    /// that `--disk` puts over it in the sandbox's mount namespace.
    pub(super) fn create_mount_point(&self) -> Result<()> {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&self.root)
            .map_err(|e| {
                Error::setup(
                    format!("creating the private directory {}", self.root.display()),
                    e,
                )
            })
    }

    /// The tmpfs is mounted: the rest of the private directory is made in
    /// it, reached through `reaper`'s root.
    pub(super) fn covered_for(&mut self, reaper: i32) {
        let rel = self.root.strip_prefix("/").unwrap_or(&self.root);
        self.covered = Some(Path::new(&format!("/proc/{reaper}/root")).join(rel));
    }

    /// The root as the supervisor reaches the workload's view of it.
    pub(super) fn reach(&self) -> &Path {
        self.covered.as_deref().unwrap_or(&self.root)
    }

    /// Removes the root with everything in it: at the end of a run, or
    /// when a run stops before its workload started (a root never made
    /// is nothing to remove). Links are removed, never followed.
    pub(super) fn discard(&self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }

    /// The root: granted read-write, removed at the end.
    pub(super) fn root(&self) -> &Path {
        &self.root
    }

    /// The workload's TMPDIR.
    pub(super) fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// The workload's HOME when it is private.
    pub(super) fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    /// Creates the root (unless it is a mount point already), `tmp/` and,
    /// unless `fs.home` names a directory of the user's, `home/` with a
    /// link for each grant of `fs` below the invoking user's home.
    pub(super) fn create(&self, fs: &FsPolicy) -> Result<()> {
        let fail = |what: &Path, e| {
            Error::setup(
                format!("creating the private directory {}", what.display()),
                e,
            )
        };
        let mkdir = |p: &Path| {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(p)
                .map_err(|e| fail(p, e))
        };
        let at = self.reach();
        if self.covered.is_none() {
            mkdir(at)?;
        }
        mkdir(&at.join("tmp"))?;
        if fs.home.is_some() {
            return Ok(());
        }
        let home = at.join("home");
        mkdir(&home)?;
        let Some(user_home) = &self.user_home else {
            return Ok(());
        };
        let grants: Vec<PathBuf> = fs.read.iter().chain(&fs.write).cloned().collect();
        for (rel, target) in home_links(user_home, &grants) {
            let at = home.join(&rel);
            // Parents of a link are directories made here, never links:
            // `home_links` drops a grant below another one.
            if let Some(parent) = at.parent() {
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .recursive(true)
                    .create(parent)
                    .map_err(|e| fail(parent, e))?;
            }
            std::os::unix::fs::symlink(&target, &at).map_err(|e| fail(&at, e))?;
        }
        Ok(())
    }
}

/// The links a private HOME gets: (path relative to the home, target) for
/// each grant strictly below `user_home`, outermost first; a grant below
/// another one is reached through the outer link and gets none (a link
/// made inside it would land in the user's real directory).
fn home_links(user_home: &Path, grants: &[PathBuf]) -> Vec<(PathBuf, PathBuf)> {
    let mut below: Vec<(PathBuf, PathBuf)> = grants
        .iter()
        .filter_map(|g| {
            let rel = g.strip_prefix(user_home).ok()?;
            let plain = rel
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
            (plain && rel.components().next().is_some()).then(|| (rel.to_path_buf(), g.clone()))
        })
        .collect();
    below.sort();
    below.dedup_by(|later, earlier| later.0.starts_with(&earlier.0));
    below
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(home: &str, grants: &[&str]) -> Vec<(String, String)> {
        let grants: Vec<PathBuf> = grants.iter().map(PathBuf::from).collect();
        home_links(Path::new(home), &grants)
            .into_iter()
            .map(|(r, t)| (r.display().to_string(), t.display().to_string()))
            .collect()
    }

    #[test]
    fn grants_below_the_user_s_home_are_linked_outermost_first() {
        assert_eq!(
            links(
                "/home/u",
                &[
                    "/home/u/.config/gh",
                    "/home/u/.gitconfig",
                    "/home/u/.config",
                    "/usr/share",
                    "/home/u",
                    "/home/user2/x",
                    "/home/u/a/../../etc",
                ]
            ),
            vec![
                (".config".into(), "/home/u/.config".into()),
                (".gitconfig".into(), "/home/u/.gitconfig".into()),
            ]
        );
    }

    #[test]
    fn a_private_home_has_its_links_and_nothing_is_made_outside_it() {
        let base =
            std::env::temp_dir().join(format!("sandlock-private-test-{}", std::process::id()));
        let user = base.join("user");
        std::fs::create_dir_all(user.join(".config/gh")).unwrap();
        std::fs::write(user.join(".gitconfig"), "[user]\n").unwrap();
        let private = Private {
            root: base.join("root"),
            user_home: Some(user.clone()),
            covered: None,
        };
        let fs = FsPolicy {
            read: vec![user.join(".config/gh"), user.join(".gitconfig")],
            write: vec![user.join(".config")],
            ..FsPolicy::default()
        };
        private.create(&fs).unwrap();
        let home = private.home();
        assert_eq!(
            std::fs::read_link(home.join(".gitconfig")).unwrap(),
            user.join(".gitconfig")
        );
        assert_eq!(
            std::fs::read_link(home.join(".config")).unwrap(),
            user.join(".config")
        );
        assert!(private.tmp().is_dir());
        // Nothing new in the user's directories.
        let mut in_config: Vec<_> = std::fs::read_dir(user.join(".config"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        in_config.sort();
        assert_eq!(in_config, vec![std::ffi::OsString::from("gh")]);
        // A second create of the same root fails: nothing is reused.
        assert!(private.create(&fs).is_err());
        // Discarded (a launch that failed after it was made): the root
        // goes with its links, and what they name stays.
        private.discard();
        assert!(!private.root().exists());
        assert!(user.join(".gitconfig").is_file() && user.join(".config/gh").is_dir());
        // A root never made: nothing to do, nothing else touched.
        private.discard();
        assert!(user.join(".gitconfig").is_file());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
