//! The workload's standard streams when the caller asks for them (the C
//! ABI and the Python SDK): bytes fed to its stdin, its stdout and stderr
//! captured. By default the workload inherits sandlock's own.
//!
//! stdin is a unix socket pair, not a pipe, so that feeding a workload
//! that stops reading can never raise SIGPIPE in the caller's process.
//! sandlock's own denial lines are never mixed into the captured streams:
//! without capture they go to sandlock's stderr, with it they are kept in
//! [`Output::denials`].

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::thread::JoinHandle;

use crate::{Error, Result};

/// What the workload's standard streams are.
#[derive(Debug, Clone, Default)]
pub struct Stdio {
    /// Bytes to feed the workload's stdin, which then ends; `None`
    /// inherits sandlock's stdin.
    pub stdin: Option<Vec<u8>>,
    /// Capture stdout and stderr instead of inheriting sandlock's; and
    /// keep sandlock's own denial lines in [`Output::denials`] instead of
    /// printing them on sandlock's stderr.
    pub capture: bool,
}

/// How a run ended, and what it printed when captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Exit code, signal, or timeout.
    pub outcome: super::ExitOutcome,
    /// The workload's stdout (empty unless captured).
    pub stdout: Vec<u8>,
    /// The workload's stderr (empty unless captured).
    pub stderr: Vec<u8>,
    /// What became of each `--cow` directory's changes.
    pub cow: Vec<crate::cow::Report>,
    /// With `--learn`: the profile written, as text.
    pub learned: Option<String>,
    /// When captured: sandlock's own lines about the run (`sandlock:
    /// denied ...`, `sandlock: warning: ...`, a limit reached), in order and
    /// without newlines, that it prints on stderr when not capturing;
    /// empty with `--quiet` or without capture. At most 10,000 are kept,
    /// then one line counts the rest (`--audit` records every event).
    pub denials: Vec<String>,
}

impl Output {
    /// The status a front door exits with: the outcome's, except that a
    /// workload that succeeded but whose changes did not all reach their
    /// `--cow` directories ends with 125 (sandlock's own failure).
    pub fn status(&self) -> i32 {
        let unapplied = self
            .cow
            .iter()
            .any(|r| r.outcome == crate::cow::Outcome::Incomplete);
        match self.outcome {
            super::ExitOutcome::Exited(0) if unapplied => 125,
            o => o.code(),
        }
    }
}

/// The streams' file descriptors, before the workload starts.
pub(super) struct Plumbing {
    /// The workload's ends: stdin, stdout, stderr (`None`: inherited).
    pub(super) child: [Option<OwnedFd>; 3],
    stdin: Option<(OwnedFd, Vec<u8>)>,
    outputs: Option<(OwnedFd, OwnedFd)>,
}

/// A thread collecting one output stream.
type Drain = JoinHandle<Vec<u8>>;

/// Streams being fed and drained while the workload runs.
pub(super) struct Running {
    feeder: Option<JoinHandle<()>>,
    /// stdout's and stderr's.
    readers: Option<(Drain, Drain)>,
}

fn setup(what: &str, e: impl Into<std::io::Error>) -> Error {
    Error::setup(format!("workload {what}"), e.into())
}

impl Plumbing {
    pub(super) fn new(io: Stdio) -> Result<Plumbing> {
        let mut child = [None, None, None];
        let stdin = match io.stdin {
            Some(bytes) => {
                let (ours, theirs) = nix::sys::socket::socketpair(
                    nix::sys::socket::AddressFamily::Unix,
                    nix::sys::socket::SockType::Stream,
                    None,
                    nix::sys::socket::SockFlag::SOCK_CLOEXEC,
                )
                .map_err(|e| setup("stdin", e))?;
                // The workload only reads it.
                nix::sys::socket::shutdown(theirs.as_raw_fd(), nix::sys::socket::Shutdown::Write)
                    .map_err(|e| setup("stdin", e))?;
                child[0] = Some(theirs);
                Some((ours, bytes))
            }
            None => None,
        };
        let outputs = if io.capture {
            let pipe =
                || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| setup("output", e));
            let (out_rd, out_wr) = pipe()?;
            let (err_rd, err_wr) = pipe()?;
            child[1] = Some(out_wr);
            child[2] = Some(err_wr);
            Some((out_rd, err_rd))
        } else {
            None
        };
        Ok(Plumbing {
            child,
            stdin,
            outputs,
        })
    }

    /// The supervisor's ends, which the reaper and the workload must not
    /// keep open.
    pub(super) fn parent_fds(&self) -> Vec<RawFd> {
        let mut v = Vec::new();
        if let Some((fd, _)) = &self.stdin {
            v.push(fd.as_raw_fd());
        }
        if let Some((o, e)) = &self.outputs {
            v.extend([o.as_raw_fd(), e.as_raw_fd()]);
        }
        v
    }

    /// Starts feeding stdin and draining the outputs; the workload's ends
    /// must be gone from this process (handed to the launch) by now.
    pub(super) fn start(self) -> Result<Running> {
        let feeder = match self.stdin {
            Some((sock, bytes)) => Some(
                std::thread::Builder::new()
                    .name("sandlock-stdin".into())
                    .spawn(move || feed(sock, &bytes))
                    .map_err(|e| setup("stdin", e))?,
            ),
            None => None,
        };
        let readers = match self.outputs {
            Some((out, err)) => Some((drain("stdout", out)?, drain("stderr", err)?)),
            None => None,
        };
        Ok(Running { feeder, readers })
    }
}

impl Running {
    /// The captured stdout and stderr, once the workload tree (and with it
    /// every writer) is gone.
    pub(super) fn finish(self) -> (Vec<u8>, Vec<u8>) {
        if let Some(f) = self.feeder {
            let _ = f.join();
        }
        match self.readers {
            Some((o, e)) => (o.join().unwrap_or_default(), e.join().unwrap_or_default()),
            None => (Vec::new(), Vec::new()),
        }
    }
}

/// Writes `bytes` to the workload's stdin and closes it. A workload that
/// exits or stops reading ends the feed (EPIPE), never the caller.
fn feed(sock: OwnedFd, bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        match nix::sys::socket::send(
            sock.as_raw_fd(),
            rest,
            nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
        ) {
            Ok(n) => rest = &rest[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return,
        }
    }
}

fn drain(name: &str, fd: OwnedFd) -> Result<Drain> {
    std::thread::Builder::new()
        .name(format!("sandlock-{name}"))
        .spawn(move || {
            let mut out = Vec::new();
            let _ = std::fs::File::from(fd).read_to_end(&mut out);
            out
        })
        .map_err(|e| setup(name, e))
}
