//! bind(2) and listen(2): the ports a workload may take.
//!
//! Owns the decision on a bind's or a listen's port (`--net-allow-bind`)
//! and the bind itself. Must never answer CONTINUE for a socket that is
//! not AF_UNIX: the kernel would read the address again, after the
//! decision (a thread flipping the family between a unix path and an
//! inet port raced a denied port through); on a unix socket, Landlock
//! decides where a socket file may be made, whatever address the kernel
//! reads.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

use super::net::{as_workload_call, as_workload_do, dup_socket, read_addr, report, sockopt, Kind};
use super::notif::{Notif, Reply};
use super::Supervisor;
use crate::audit::Verdict;
use crate::network::{local_addr, Decision, SockAddr, Unix};

/// bind(2). On a unix socket Landlock decides where a socket file may be
/// made, so the kernel performs it; on any other, the supervisor binds its
/// duplicate to the address it decided on (a port checked against
/// `--net-allow-bind`), so a swapped address cannot bind another port.
pub fn bind(sup: &Arc<Supervisor>, n: &Notif) -> Reply {
    let run = || -> Result<Reply, Reply> {
        let addr = read_addr(n, n.arg(1), n.arg(2))?;
        if let (Some(l), SockAddr::Unix(Unix::Path(p))) = (sup.reporter.learner(), &addr) {
            super::learn::socket_file(l, n, p.path());
        }
        let (sock, kind) = dup_socket(n, n.int(0))?;
        if let Some(local) = bound_to(&addr, kind) {
            if let (Some(l), true) = (sup.reporter.learner(), local.port() != 0) {
                l.bind(local.port());
            }
            if local.port() != 0 {
                if let Decision::Deny(why) = sup.egress.check_bind(local.port()) {
                    report(sup, n, "bind", &local.to_string(), Verdict::Deny, why);
                    return Err(Reply::Errno(libc::EACCES));
                }
            }
        }
        if kind.domain == libc::AF_UNIX {
            // Whatever address the kernel reads now, it binds a unix
            // socket: Landlock's to decide.
            return Ok(Reply::Continue);
        }
        let wire = addr.encode();
        Ok(as_workload_call(sup.as_workload, || {
            wire.bind(sock.as_fd())
        }))
    };
    run().unwrap_or_else(|r| r)
}

/// The inet address whose port a bind of `addr` on a socket of `kind`
/// must be allowed: an inet address (whatever the socket), or an
/// AF_UNSPEC one that an AF_INET socket binds as AF_INET (inet_bind: with
/// the wildcard address only; it refuses any other).
fn bound_to(addr: &SockAddr, kind: Kind) -> Option<SocketAddr> {
    match addr {
        SockAddr::Inet(a) => Some(a.dest()),
        SockAddr::Unspec(u) if kind.domain == libc::AF_INET => u
            .as_inet()
            .filter(|a| a.spelled().ip().is_unspecified())
            .map(|a| a.dest()),
        _ => None,
    }
}

pub fn listen(sup: &Arc<Supervisor>, n: &Notif) -> Reply {
    let run = || -> Result<Reply, Reply> {
        let (sock, _) = dup_socket(n, n.int(0))?;
        if !n.still_valid() {
            return Ok(Reply::Done);
        }
        let domain = sockopt(&sock, libc::SO_DOMAIN).map_err(|e| Reply::from_io(&e))?;
        if domain == libc::AF_INET || domain == libc::AF_INET6 {
            let port = local_port(&sock).map_err(|e| Reply::from_io(&e))?;
            if let Decision::Deny(why) = sup.egress.check_bind(port) {
                report(
                    sup,
                    n,
                    "listen",
                    &format!("port {port}"),
                    Verdict::Deny,
                    why,
                );
                return Err(Reply::Errno(libc::EACCES));
            }
        }
        Ok(as_workload_do(sup.as_workload, || {
            // SAFETY: listen on our own duplicate.
            let r = unsafe { libc::listen(sock.as_raw_fd(), n.int(1)) };
            r as isize
        }))
    };
    run().unwrap_or_else(|r| r)
}

fn local_port(sock: &OwnedFd) -> io::Result<u16> {
    Ok(local_addr(sock.as_fd())?.port())
}

#[cfg(test)]
mod tests {
    use super::super::net::tests::{addr, kind};
    use super::*;

    #[test]
    fn the_port_a_bind_takes() {
        let udp4 = kind(libc::AF_INET, libc::SOCK_DGRAM);
        let udp6 = kind(libc::AF_INET6, libc::SOCK_DGRAM);
        let unix = kind(libc::AF_UNIX, libc::SOCK_STREAM);
        let port = |a: &SockAddr, k| bound_to(a, k).map(|a| a.port());
        let inet = addr(libc::AF_INET, 8080, [0; 4], 16);
        assert_eq!(port(&inet, udp4), Some(8080));
        assert_eq!(port(&inet, unix), Some(8080));
        // AF_UNSPEC binds as AF_INET on an AF_INET socket, to the
        // wildcard address only.
        let any = addr(libc::AF_UNSPEC, 8080, [0; 4], 16);
        assert_eq!(port(&any, udp4), Some(8080));
        assert_eq!(port(&any, udp6), None);
        assert_eq!(port(&any, unix), None);
        let lo = addr(libc::AF_UNSPEC, 8080, [127, 0, 0, 1], 16);
        assert_eq!(port(&lo, udp4), None);
        let short = addr(libc::AF_UNSPEC, 8080, [0; 4], 8);
        assert_eq!(port(&short, udp4), None);
    }
}
