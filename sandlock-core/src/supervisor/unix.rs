//! Unix socket addresses the workload connects or sends to.
//!
//! Landlock has a right for making a socket file but none for connecting
//! to one, so without this module a workload could reach any host service
//! listening on a socket file it can name: docker.sock, D-Bus, an
//! ssh-agent, X11, systemd. A path is resolved here to the socket inode
//! the workload's own call would reach, and the connect or send is
//! performed by the supervisor on that very inode (through
//! `/proc/self/fd/N` of an `O_PATH` handle), only when it lives under a
//! write grant or an `--unix-allow` path and the workload may write to it.
//!
//! Abstract names are connected on the workload's behalf too, by a thread
//! that Landlock (ABI 6) scopes like the workload (see `NotifyThread`): the
//! kernel refuses one outside the sandbox exactly as it would refuse the
//! workload itself.
//!
//! Must never hand the workload's bytes back to the kernel to resolve, and
//! never let a path that was checked be resolved a second time.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use super::net::report;
use super::notif::{Notif, Reply};
use super::place::Where;
use super::resolve::{Base, Start};
use super::Supervisor;
use crate::audit::Verdict;
use crate::network::{SockAddr, Unix, UnixPath};
use crate::sys::creds::WorkloadRights;

/// Why a socket file is refused.
const WHY: &str = "a socket file outside the write grants needs --unix-allow";

/// A destination to give the kernel: the decided address (the
/// workload's, or for a unix path the supervisor's handle of the socket it
/// names), and that handle (alive until the call is done).
#[derive(Debug)]
pub(super) struct Dest {
    pub addr: SockAddr,
    _pin: Option<OwnedFd>,
}

impl Dest {
    /// `addr` as it is.
    pub(super) fn plain(addr: SockAddr) -> Dest {
        Dest { addr, _pin: None }
    }
}

/// Decides a connect or send to the socket file `addr` names (as the
/// workload wrote it) and returns the address to give the kernel instead.
pub(super) fn path_dest(
    sup: &Supervisor,
    n: &Notif,
    syscall: &str,
    addr: &UnixPath,
) -> Result<Dest, Reply> {
    let path = addr.path();
    let shown = addr.to_string();
    let start =
        Start::new(n, Base(libc::AT_FDCWD), path, &sup.root).map_err(|e| Reply::from_io(&e))?;
    let found = WorkloadRights::run(sup.as_workload, || {
        let fd = start.open(false)?;
        let (at, mode) = sup.places.locate(fd.as_fd())?;
        if mode & libc::S_IFMT != libc::S_IFSOCK {
            // What the kernel answers for a path that is no socket.
            return Err(io::Error::from_raw_os_error(libc::ECONNREFUSED));
        }
        // The write permission connecting needs on the socket file is the
        // kernel's to check: the connect or send runs with the workload's
        // rights (see `Kind::needs_rights`).
        Ok((fd, at))
    });
    let (fd, at) = found.map_err(|e| Reply::from_io(&e))?;
    if let (Some(l), Where::Path(p)) = (sup.reporter.learner(), &at) {
        use std::os::unix::ffi::OsStrExt;
        l.unix(std::path::PathBuf::from(std::ffi::OsStr::from_bytes(p)));
    }
    if !sup.places.unix_reachable(&at) {
        let shown = match at {
            Where::Path(p) if p != path => format!("{shown} ({})", String::from_utf8_lossy(&p)),
            _ => shown,
        };
        report(sup, n, syscall, &shown, Verdict::Deny, WHY);
        return Err(Reply::Errno(libc::EACCES));
    }
    if sup.reporter.wants_allows() {
        report(
            sup,
            n,
            syscall,
            &shown,
            Verdict::Allow,
            "a socket file the sandbox may reach",
        );
    }
    let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let addr = SockAddr::unix_path(link.as_bytes()).ok_or(Reply::Errno(libc::ENAMETOOLONG))?;
    Ok(Dest {
        addr,
        _pin: Some(fd),
    })
}

/// Reports a connect or send to an abstract name that the kernel refused
/// because it lives outside the sandbox (Landlock's scope answers EPERM).
pub(super) fn report_scoped(
    sup: &Supervisor,
    n: &Notif,
    syscall: &str,
    addr: &SockAddr,
    reply: Reply,
) {
    if reply != Reply::Errno(libc::EPERM) || !matches!(addr, SockAddr::Unix(Unix::Abstract(_))) {
        return;
    }
    report(
        sup,
        n,
        syscall,
        &addr.to_string(),
        Verdict::Deny,
        "abstract unix sockets outside the sandbox are scoped",
    );
}
