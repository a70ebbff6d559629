//! A run's resource limits from launch to exit status: the pieces the
//! launch needs, the watch beside the tree, and what the exit status says
//! when a limit ended the run.
//!
//! Must never let a run start with a limit nothing enforces: a mechanism
//! that needs the sandbox's namespaces stops the launch when the kernel
//! refused them.

use std::sync::Arc;

use super::ExitOutcome;
use crate::audit::Reporter;
use crate::launch::{self, mounts::Tmpfs};
use crate::limits::{self, Governor};
use crate::policy::{Limit, Limits};
use crate::{Error, Result};

/// The limits of one run.
pub(super) struct RunLimits {
    limits: Limits,
    prepared: limits::Prepared,
    governor: Option<Governor>,
}

impl RunLimits {
    /// Plans the limits on this host and makes what must exist before the
    /// fork (the cgroups).
    pub(super) fn new(limits: &Limits) -> Result<RunLimits> {
        Ok(RunLimits {
            limits: limits.clone(),
            prepared: limits::Prepared::new(limits)?,
            governor: None,
        })
    }

    /// The tmpfs `--disk` puts over the private directory `root`.
    pub(super) fn tmpfs(&self, root: &std::path::Path) -> Result<Option<Tmpfs>> {
        self.limits
            .disk
            .map(|size| {
                Tmpfs::new(root, size.bytes()).map_err(|e| {
                    Error::invalid(
                        "--disk",
                        &size.to_string(),
                        format!("private directory: {e}"),
                    )
                })
            })
            .transpose()
    }

    /// Rlimits and cgroup fds for the launch.
    pub(super) fn for_launch(&self) -> Result<(crate::limits::Rlimits, Vec<std::os::fd::OwnedFd>)> {
        Ok((self.prepared.rlimits.clone(), self.prepared.procs_fds()?))
    }

    /// After the launch: refuses a run whose limits need namespaces the
    /// kernel did not give, then starts the watch beside the tree.
    pub(super) fn started(
        &mut self,
        spawned: &launch::Spawned,
        reporter: &Arc<Reporter>,
    ) -> Result<()> {
        if let (Some(limit), false) = (self.prepared.plan.needs_namespaces(), spawned.own_pid_ns) {
            return Err(Error::invalid(
                limit.flag(),
                &self.limits.shown(limit).unwrap_or_default(),
                "needs the sandbox's own user, pid and mount namespaces here, which the kernel refused (see sandlock check)",
            ));
        }
        let duties = self.prepared.duties(&self.limits);
        if duties.is_empty() || !spawned.own_pid_ns {
            return Ok(());
        }
        let governor = Governor::start(
            spawned.reaper.as_raw(),
            duties,
            &self.limits,
            Arc::clone(reporter),
        )
        .map_err(|e| Error::setup("starting the resource-limit watch", e))?;
        self.governor = Some(governor);
        Ok(())
    }

    /// The run's outcome once the tree is gone: a limit that ended it says
    /// so, on stderr and in the audit log, and in the outcome.
    pub(super) fn outcome(&mut self, outcome: ExitOutcome, reporter: &Reporter) -> ExitOutcome {
        let breach = self.governor.take().and_then(Governor::finish);
        if outcome == ExitOutcome::TimedOut {
            return outcome;
        }
        if let Some(b) = breach {
            return ExitOutcome::Killed {
                limit: b.limit,
                signal: libc::SIGKILL,
            };
        }
        let value = |l: Limit| self.limits.shown(l).unwrap_or_default();
        match outcome {
            // Without a watch (no namespaces of its own) the kernel still
            // enforced the cgroup: its counter tells.
            ExitOutcome::Signaled(libc::SIGKILL)
                if self.limits.memory.is_some()
                    && self
                        .prepared
                        .groups
                        .as_ref()
                        .is_some_and(|g| g.hits(limits::cgroup::Controller::Memory) > 0) =>
            {
                reporter.limit("killed", Limit::Memory, &value(Limit::Memory));
                ExitOutcome::Killed {
                    limit: Limit::Memory,
                    signal: libc::SIGKILL,
                }
            }
            ExitOutcome::Signaled(libc::SIGXFSZ) if self.limits.file_size.is_some() => {
                reporter.limit("killed", Limit::FileSize, &value(Limit::FileSize));
                ExitOutcome::Killed {
                    limit: Limit::FileSize,
                    signal: libc::SIGXFSZ,
                }
            }
            other => other,
        }
    }
}
