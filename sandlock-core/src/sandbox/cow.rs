//! A run's copy-on-write layer from launch to exit: the layer made before
//! the fork, the overlays the launch mounts, the Landlock rule on what
//! the workload sees at each `--cow` directory, and the layer's end.
//!
//! Must never let a run start with `--cow` outside the sandbox's own
//! mount namespace (its writes would land on the host), and never leave
//! a layer behind without saying where it is.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::cow::{self, Layer, Report, Show};
use crate::launch::{self, mounts::Overlay, LandlockRuleset};
use crate::policy::{CowPolicy, OnExit};
use crate::{Error, Result};

/// The copy-on-write part of one run (empty without `--cow`).
pub(super) struct RunCow {
    layer: Option<Layer>,
    /// Three descriptor numbers per directory, held until the overlays
    /// are mounted (see [`Overlay`]).
    slots: Vec<OwnedFd>,
    /// Each directory and the mount id of the overlay over it, once
    /// mounted.
    mounts: Vec<(PathBuf, u64)>,
}

impl RunCow {
    /// Makes the layer for `policy`'s directories. `private_base`: where
    /// the sandbox's private directory is made, which no `--cow`
    /// directory may hold (the workload's TMPDIR would land in the
    /// layer, and be applied to the host).
    /// `granted`: what the workload may write (`-w`, `--home`), where no
    /// layer may go.
    pub(super) fn new(
        policy: &CowPolicy,
        private_base: &Path,
        granted: &[PathBuf],
    ) -> Result<RunCow> {
        if policy.dirs.is_empty() {
            return Ok(RunCow {
                layer: None,
                slots: Vec::new(),
                mounts: Vec::new(),
            });
        }
        if let Some(d) = policy.dirs.iter().find(|d| private_base.starts_with(d)) {
            return Err(Error::invalid(
                "--cow",
                &d.display().to_string(),
                format!(
                    "holds sandlock's private directories ({}, from TMPDIR); set TMPDIR outside it",
                    private_base.display()
                ),
            ));
        }
        let user = !crate::sys::creds::can_mount();
        let layer = Layer::create(&policy.dirs, granted, user)?;
        let mut slots = Vec::new();
        for _ in 0..policy.dirs.len() * 3 {
            let fd = nix::fcntl::open(
                "/dev/null",
                nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|e| {
                Error::setup("reserving descriptors for --cow", std::io::Error::from(e))
            })?;
            slots.push(fd);
        }
        Ok(RunCow {
            layer: Some(layer),
            slots,
            mounts: Vec::new(),
        })
    }

    /// The host directories, canonical.
    pub(super) fn dirs(&self) -> &[PathBuf] {
        self.layer.as_ref().map_or(&[], |l| l.dirs())
    }

    /// The workload's cwd: `--cwd`, or with `--cow` this process's own,
    /// which the workload enters again once the overlays are mounted (a
    /// cwd inside a `--cow` directory must be the overlay's).
    pub(super) fn cwd(&self, given: Option<&Path>) -> Option<PathBuf> {
        match (given, &self.layer) {
            (Some(c), _) => Some(c.to_path_buf()),
            (None, Some(_)) => std::env::current_dir().ok(),
            (None, None) => None,
        }
    }

    /// The overlays the launch mounts.
    pub(super) fn overlays(&self) -> Result<Vec<Overlay>> {
        let Some(layer) = &self.layer else {
            return Ok(Vec::new());
        };
        let user = !crate::sys::creds::can_mount();
        layer
            .dirs()
            .iter()
            .enumerate()
            .map(|(i, dir)| {
                let s = |k: usize| self.slots[3 * i + k].as_raw_fd();
                Overlay::new(
                    (dir, layer.id(i)),
                    &layer.upper(i),
                    &layer.work(i),
                    [s(0), s(1), s(2)],
                    user,
                )
                .map_err(|e| Error::invalid("--cow", &dir.display().to_string(), e.to_string()))
            })
            .collect()
    }

    /// After the launch mounted the overlays in the reaper's namespaces:
    /// refuses a run that got none, and grants the workload read-write
    /// on what it sees at each directory (the overlay, reached through
    /// the reaper's root: a rule on the host's directory would name the
    /// inode underneath).
    pub(super) fn started(
        &mut self,
        spawned: &launch::Spawned,
        ruleset: &LandlockRuleset,
    ) -> Result<()> {
        self.slots.clear();
        let Some(dir) = self.dirs().first() else {
            return Ok(());
        };
        if !spawned.own_pid_ns {
            return Err(Error::invalid(
                "--cow",
                &dir.display().to_string(),
                "needs the sandbox's own user and mount namespaces here, which the kernel refused (see sandlock check)",
            ));
        }
        let root = PathBuf::from(format!("/proc/{}/root", spawned.reaper.as_raw()));
        let mut mounts = Vec::new();
        for d in self.dirs() {
            let seen = root.join(d.strip_prefix("/").unwrap_or(d));
            let fail = |e| Error::setup(format!("landlock rule for --cow {}", d.display()), e);
            ruleset.allow(&seen, true).map_err(fail)?;
            let fd = std::fs::File::open(&seen).map_err(fail)?;
            let id = crate::sys::meta::facts(std::os::fd::AsFd::as_fd(&fd)).map_err(fail)?;
            mounts.push((d.clone(), id.mount));
        }
        self.mounts = mounts;
        Ok(())
    }

    /// Each directory and the mount id of the overlay over it.
    pub(super) fn mounts(&self) -> &[(PathBuf, u64)] {
        &self.mounts
    }

    /// Ends the layer after the workload's tree is gone: the action
    /// asked for, or commit on `success` and keep otherwise.
    pub(super) fn finish(
        &mut self,
        policy: &CowPolicy,
        success: bool,
        show: &Show<'_>,
    ) -> Vec<Report> {
        match self.layer.take() {
            Some(layer) => {
                let action = policy.on_exit.unwrap_or(OnExit::default_for(success));
                cow::finish(layer, action, show)
            }
            None => Vec::new(),
        }
    }
}

impl Drop for RunCow {
    /// A run that stopped before its end: an untouched layer goes; one the
    /// workload wrote to is kept, and said so.
    fn drop(&mut self) {
        let Some(layer) = self.layer.take() else {
            return;
        };
        let empty = (0..layer.dirs().len())
            .all(|i| std::fs::read_dir(layer.upper(i)).is_ok_and(|mut d| d.next().is_none()));
        if empty {
            let _ = layer.remove();
        } else {
            // Not eprintln!: a closed stderr must not panic in a drop.
            use std::io::Write;
            let path = layer.path().display();
            let _ = writeln!(
                std::io::stderr(),
                "sandlock: cow: the run stopped early; its changes are in {path} (apply: sandlock cow apply {path}; drop: sandlock cow drop {path})"
            );
        }
    }
}
