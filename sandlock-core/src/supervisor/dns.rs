//! The workload's DNS traffic, handed to the interceptor (`crate::dns`).
//!
//! Without a udp:// rule, every UDP socket the workload creates is made
//! inside the interceptor's namespace, where it can reach the interceptor
//! and nothing else. A socket outside it (TCP, or UDP under a udp:// rule)
//! that connects or sends to port 53 is swapped, under the same fd number,
//! for a fresh one inside, and the connect or send is performed there.
//! Swapping loses what the workload set on the old socket (options, a
//! bound port); resolvers set nothing that matters there.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use super::net::{is_blocking, report, Kind};
use super::notif::{Notif, Reply};
use super::Supervisor;
use crate::audit::Verdict;
use crate::network::SockAddr;

/// The port DNS clients send to.
const DNS_PORT: u16 = 53;

/// socket(AF_INET*, SOCK_DGRAM) while the interceptor runs and no udp://
/// rule exists: the socket is made in the interceptor's namespace.
pub(super) fn udp_socket(sup: &Supervisor, n: &Notif, family: i32, raw_type: i32) -> Option<Reply> {
    let dns = sup.dns.as_ref().filter(|d| d.available())?;
    let sock = match dns.socket(family, libc::SOCK_DGRAM) {
        Ok(s) => s,
        Err(e) => return Some(Reply::from_io(&e)),
    };
    if raw_type & libc::SOCK_NONBLOCK != 0 {
        if let Err(e) = set_nonblocking(&sock) {
            return Some(Reply::from_io(&e));
        }
    }
    Some(n.inject(sock.as_raw_fd(), raw_type & libc::SOCK_CLOEXEC != 0))
}

/// The DNS destination in `addr`, when the interceptor runs.
pub(super) fn dns_dest(sup: &Supervisor, addr: &SockAddr) -> Option<SocketAddr> {
    let dns = sup.dns.as_ref()?;
    match addr {
        SockAddr::Inet(a) if a.port() == DNS_PORT && dns.available() => Some(a.dest()),
        _ => None,
    }
}

/// The socket a connect or send to the DNS destination `dest` must use:
/// `sock` itself when it already lives in the interceptor's namespace,
/// otherwise a fresh one there that replaces the workload's fd `fd`.
pub(super) fn divert(
    sup: &Supervisor,
    n: &Notif,
    syscall: &str,
    fd: i32,
    sock: OwnedFd,
    kind: Kind,
    dest: SocketAddr,
) -> Result<OwnedFd, Reply> {
    let dns = sup.dns.as_ref().ok_or(Reply::Errno(libc::EACCES))?;
    if sup.reporter.wants_allows() {
        report(
            sup,
            n,
            syscall,
            &dest.to_string(),
            Verdict::Allow,
            "DNS, answered by sandlock",
        );
    }
    if dns.owns(&sock) {
        return Ok(sock);
    }
    if kind.ty != libc::SOCK_STREAM && kind.ty != libc::SOCK_DGRAM {
        return Err(Reply::Errno(libc::EACCES));
    }
    let family = super::net::sockopt(&sock, libc::SO_DOMAIN).map_err(|e| Reply::from_io(&e))?;
    let fresh = dns
        .socket(family, kind.ty)
        .map_err(|e| Reply::from_io(&e))?;
    if !is_blocking(&sock) {
        set_nonblocking(&fresh).map_err(|e| Reply::from_io(&e))?;
    }
    let cloexec = fd_cloexec(n.pid, fd).map_err(|e| Reply::from_io(&e))?;
    // A thread that swapped fd `fd` meanwhile loses its new file, as if
    // it had raced its own close: only the workload itself is hurt.
    n.replace_fd(fresh.as_raw_fd(), fd, cloexec)
        .map_err(|e| Reply::from_io(&e))?;
    Ok(fresh)
}

fn set_nonblocking(sock: &OwnedFd) -> std::io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on our own fd.
    let fl = unsafe { libc::fcntl(sock.as_raw_fd(), libc::F_GETFL) };
    // SAFETY: as above.
    if fl < 0 || unsafe { libc::fcntl(sock.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK) } < 0
    {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Whether the workload's fd `fd` is close-on-exec, from procfs.
fn fd_cloexec(tid: i32, fd: i32) -> std::io::Result<bool> {
    let info = std::fs::read_to_string(format!("/proc/{tid}/fdinfo/{fd}"))?;
    let flags = info
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|v| i64::from_str_radix(v.trim(), 8).ok())
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EBADF))?;
    Ok(flags & i64::from(libc::O_CLOEXEC) != 0)
}
