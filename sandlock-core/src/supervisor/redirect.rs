//! TCP connects to intercepted ports: decided like any connect (the
//! allowlist, or an HTTP rule naming the destination), then performed on
//! the supervisor's duplicate of the socket towards the proxy instead of
//! the destination. The original destination is recorded, keyed by the
//! socket's real local address, before the connect is issued, so the proxy
//! always finds it.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use super::net::{connect_blocking, is_blocking, raw_connect, report, sockopt, Dest};
use super::notif::{Notif, Reply};
use super::Supervisor;
use crate::audit::Verdict;
use crate::network::{local_addr, Decision, SockAddr};
use crate::policy::Proto;
use crate::proxy::{Original, Proxy};

/// Connects the workload's stream socket `sock` to the proxy on behalf of
/// a connect to `dest`.
pub(super) fn connect(
    sup: &Arc<Supervisor>,
    n: &Notif,
    proxy: &Proxy,
    sock: OwnedFd,
    dest: SocketAddr,
) -> Reply {
    let target = dest.to_string();
    let rule = match sup.egress.check(Proto::Tcp, dest) {
        Decision::Allow(rule) => format!("--net-allow {rule}"),
        Decision::Deny(_) => match proxy.reachable(dest.ip()) {
            Some(rule) => rule.to_string(),
            None => {
                report(
                    sup,
                    n,
                    "connect",
                    &target,
                    Verdict::Deny,
                    "not in --net-allow, and no --http-allow rule names it",
                );
                return Reply::Errno(libc::EACCES);
            }
        },
    };
    if sup.reporter.wants_allows() {
        let rule = format!("{rule} (through the HTTP proxy)");
        report(sup, n, "connect", &target, Verdict::Allow, &rule);
    }
    let family = match sockopt(&sock, libc::SO_DOMAIN) {
        Ok(f) => f,
        Err(e) => return Reply::from_io(&e),
    };
    let to = proxy.listener_for(family);
    let local = match local_for(&sock, to) {
        Ok(l) => l,
        Err(e) => return Reply::from_io(&e),
    };
    if !proxy
        .redirects()
        .record(local, Original { dest, pid: n.pid })
    {
        return Reply::Errno(libc::EAGAIN);
    }
    let to = SockAddr::from(to);
    let reply = if is_blocking(&sock) {
        connect_blocking(sup, n, sock, Dest::plain(to), false)
    } else {
        raw_connect(false, &sock, &to.encode())
    };
    if matches!(reply, Reply::Errno(e) if e != libc::EINPROGRESS) {
        proxy.redirects().forget(local);
    }
    reply
}

/// The local address the socket will have once connected to `to`: bound
/// now to the loopback address (port chosen by the kernel) when it is not
/// bound yet, so the key is final before the proxy can accept.
fn local_for(sock: &OwnedFd, to: SocketAddr) -> io::Result<SocketAddr> {
    let current = local_addr(sock.as_fd())?;
    if current.port() != 0 {
        // Bound by the workload: a wildcard address becomes the one the
        // kernel picks for a loopback destination, the destination's own.
        if current.ip().is_unspecified() {
            return Ok(SocketAddr::new(to.ip(), current.port()));
        }
        return Ok(current);
    }
    let loopback = match to.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => {
            IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped())
        }
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    };
    SockAddr::from(SocketAddr::new(loopback, 0))
        .encode()
        .bind(sock.as_fd())?;
    local_addr(sock.as_fd())
}
