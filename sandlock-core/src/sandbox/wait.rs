//! The supervisor's main loop: take the launch reports, start the
//! notification receiver on the first trap, forward signals, enforce the
//! timeout, and return the workload's exit status.

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::SigSet;
use nix::sys::signalfd::SignalFd;

use super::{ExitOutcome, SupervisorParts};
use crate::launch::{self, Report};
use crate::supervisor::{Config, NotifyThread};
use crate::{sys, Error, Result};

/// Waits for the launch handshake, starts the supervisor, then waits for
/// the workload's exit while forwarding signals and enforcing the timeout.
pub(super) fn wait(
    spawned: &mut launch::Spawned,
    sigfd: &SignalFd,
    (notify, parts): (&NotifyThread, SupervisorParts),
    timeout: Option<std::time::Duration>,
    cmd: &OsStr,
) -> Result<ExitOutcome> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut parts = Some(parts);
    let mut workload: Option<OwnedFd> = None;
    let mut exec_error: Option<i32> = None;
    let mut setup_error: Option<(launch::Stage, i32)> = None;
    let mut timed_out = false;
    // Signals that arrived before the workload's pidfd did.
    let mut pending: Vec<i32> = Vec::new();
    // The listener waits here until its first notification: a workload
    // that never trips a trap never costs the notify thread any work.
    let mut idle_listener: Option<Config> = None;
    loop {
        let wait_ms = match deadline {
            Some(d) if !timed_out => d
                .saturating_duration_since(Instant::now())
                .as_millis()
                .min(i32::MAX as u128) as i32,
            _ => -1,
        };
        let mut fds = vec![
            PollFd::new(spawned.reports_fd(), PollFlags::POLLIN),
            PollFd::new(sigfd.as_fd(), PollFlags::POLLIN),
        ];
        if let Some(cfg) = &idle_listener {
            fds.push(PollFd::new(cfg.listener.as_fd(), PollFlags::POLLIN));
        }
        let ready = match poll(
            &mut fds,
            PollTimeout::try_from(wait_ms).unwrap_or(PollTimeout::NONE),
        ) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::setup("poll", std::io::Error::from(e))),
        };
        let reports_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        let signal_ready = fds[1].revents().is_some_and(|r| !r.is_empty());
        let listener_events = fds
            .get(2)
            .and_then(|f| f.revents())
            .unwrap_or(PollFlags::empty());
        drop(fds);
        if listener_events.intersects(PollFlags::POLLHUP | PollFlags::POLLERR)
            && !listener_events.contains(PollFlags::POLLIN)
        {
            // Every confined task is gone: nothing can trap any more, and
            // polling a hung-up listener would spin.
            idle_listener = None;
        } else if listener_events.contains(PollFlags::POLLIN) {
            if let Some(cfg) = idle_listener.take() {
                notify
                    .serve(cfg)
                    .map_err(|e| Error::setup("starting the supervisor", e))?;
            }
        }
        if ready == 0 {
            // Deadline passed: kill the workload; the reaper kills the rest.
            timed_out = true;
            if let Some(w) = &workload {
                let _ = sys::pidfd_send_signal(w.as_fd(), libc::SIGKILL);
            }
            continue;
        }
        if signal_ready {
            if let Ok(Some(info)) = sigfd.read_signal() {
                // Signals the terminal sent already reached the workload,
                // which shares our process group; forward only the ones a
                // process sent to sandlock itself.
                if info.ssi_code != libc::SI_KERNEL {
                    match &workload {
                        Some(w) => {
                            let _ = sys::pidfd_send_signal(w.as_fd(), info.ssi_signo as i32);
                        }
                        None => pending.push(info.ssi_signo as i32),
                    }
                }
            }
        }
        if !reports_ready {
            continue;
        }
        let report = spawned
            .next_report()
            .map_err(|e| Error::setup("reading launch reports", e))?;
        match report {
            Some(Report::Pid(_, pidfd)) => {
                // Gone already means the workload ended: nothing to signal.
                workload = sys::pidfd_getfd(spawned.reaper_fd.as_fd(), pidfd).ok();
                if let Some(w) = &workload {
                    for sig in pending.drain(..) {
                        let _ = sys::pidfd_send_signal(w.as_fd(), sig);
                    }
                    if timed_out {
                        let _ = sys::pidfd_send_signal(w.as_fd(), libc::SIGKILL);
                    }
                }
            }
            Some(Report::NotifyFd(n)) => {
                let listener = match sys::pidfd_getfd(spawned.reaper_fd.as_fd(), n) {
                    Ok(l) => l,
                    // The reaper is gone: the workload already ended and its
                    // status is on the way.
                    Err(e)
                        if e.raw_os_error() == Some(libc::ESRCH)
                            || e.raw_os_error() == Some(libc::EBADF) =>
                    {
                        continue
                    }
                    Err(e) => {
                        return Err(Error::setup("pidfd_getfd (taking the seccomp listener)", e))
                    }
                };
                let p = parts.take().expect("one listener per run");
                // The workload execs now: read the host's roots meanwhile.
                if let Some(proxy) = &p.proxy {
                    proxy.warm_up();
                }
                let cfg = Config {
                    listener,
                    egress: p.egress,
                    inet: p.inet,
                    udp: p.udp,
                    files: p.files,
                    writable: p.writable,
                    places: p.places,
                    as_workload: p.as_workload,
                    kernel_checks_truncate: p.kernel_checks_truncate,
                    reaper: spawned.reaper.as_raw(),
                    own_pid_ns: spawned.own_pid_ns,
                    reporter: p.reporter,
                    proxy: p.proxy,
                    dns: p.dns,
                };
                idle_listener = Some(cfg);
            }
            Some(Report::SetupFailed(stage, errno)) => setup_error = Some((stage, errno)),
            Some(Report::ExecFailed(errno)) => exec_error = Some(errno),
            Some(Report::Exited(raw)) => {
                if let Some((stage, errno)) = setup_error {
                    return Err(Error::setup(
                        stage.describe(),
                        std::io::Error::from_raw_os_error(errno),
                    ));
                }
                if let Some(errno) = exec_error {
                    let status = if errno == libc::ENOENT || errno == libc::ENOTDIR {
                        127
                    } else {
                        126
                    };
                    return Err(Error::Command {
                        cmd: cmd.to_string_lossy().into_owned(),
                        reason: std::io::Error::from_raw_os_error(errno).to_string(),
                        status,
                    });
                }
                if timed_out {
                    return Ok(ExitOutcome::TimedOut);
                }
                return Ok(decode_status(raw));
            }
            None => {
                if let Some((stage, errno)) = setup_error {
                    return Err(Error::setup(
                        stage.describe(),
                        std::io::Error::from_raw_os_error(errno),
                    ));
                }
                return Err(Error::setup(
                    "launch",
                    std::io::Error::other("the reaper exited without a status"),
                ));
            }
        }
    }
}

fn decode_status(raw: i32) -> ExitOutcome {
    if libc::WIFEXITED(raw) {
        ExitOutcome::Exited(libc::WEXITSTATUS(raw))
    } else if libc::WIFSIGNALED(raw) {
        ExitOutcome::Signaled(libc::WTERMSIG(raw))
    } else {
        ExitOutcome::Exited(255)
    }
}

/// Puts a signal mask back on drop.
pub(super) struct RestoreMask(pub(super) SigSet);

impl Drop for RestoreMask {
    fn drop(&mut self) {
        let _ = self.0.thread_set_mask();
    }
}
