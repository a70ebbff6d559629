//! Network syscalls (socket, connect, bind, listen; sends are in
//! `send.rs`), decided from the supervisor's own copy of the arguments and
//! performed by the supervisor on a `pidfd_getfd` duplicate of the
//! workload's socket. The workload's memory is read once; nothing
//! that was decided on is ever handed back to the kernel to read again.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::notif::{Notif, Reply};
pub(super) use super::unix::Dest;
use super::{unix, Supervisor};
use crate::audit::{Event, Verdict};
use crate::network::{Decision, SockAddr, Unix, Wire};
use crate::policy::Proto;
use crate::sys::creds::WorkloadRights;

/// What kind of socket an fd is, read from the supervisor's duplicate.
#[derive(Debug, Clone, Copy)]
pub(super) struct Kind {
    pub(super) ty: i32,
    /// The address family (SO_DOMAIN).
    pub(super) domain: i32,
}

impl Kind {
    pub(super) fn of(sock: &OwnedFd) -> io::Result<Kind> {
        Ok(Kind {
            ty: sockopt(sock, libc::SO_TYPE)?,
            domain: sockopt(sock, libc::SO_DOMAIN)?,
        })
    }

    /// The kind of a socket the workload connects to `addr`. An inet
    /// address stands for the socket's family: a connect on a socket of any
    /// other family refuses it (EINVAL or EAFNOSUPPORT) before anything a
    /// capability could change, so every inet connect saves a getsockopt
    /// (about 1 us here). Only for connect: a unix sequenced-packet send
    /// ignores its address and would go out with the supervisor's rights.
    fn of_connect(sock: &OwnedFd, addr: &SockAddr) -> io::Result<Kind> {
        let domain = match addr {
            SockAddr::Inet(a) => a.family(),
            _ => return Kind::of(sock),
        };
        Ok(Kind {
            ty: sockopt(sock, libc::SO_TYPE)?,
            domain,
        })
    }

    pub(super) fn stream(self) -> bool {
        self.ty == libc::SOCK_STREAM
    }

    /// An inet socket: no capability changes what a connect or send on it
    /// may do (binding a low port aside, which `bind` handles), so the
    /// supervisor needs not put its own aside for them. On unix and
    /// netlink sockets it must (file permissions, multicast groups).
    pub(super) fn inet(self) -> bool {
        self.domain == libc::AF_INET || self.domain == libc::AF_INET6
    }

    /// Whether a call on this socket on the workload's behalf must run with
    /// its rights (`as_workload`: the workload has no capabilities).
    pub(super) fn needs_rights(self, as_workload: bool) -> bool {
        as_workload && !self.inet()
    }

    /// A connect on a blocking socket of this kind may wait for the peer
    /// (a handshake, or a unix listener's full backlog).
    fn connect_may_wait(self) -> bool {
        self.ty == libc::SOCK_STREAM || self.ty == libc::SOCK_SEQPACKET
    }

    /// The kernel ignores (or refuses) a destination given to a send on a
    /// socket of this kind: a connected stream or sequenced-packet socket.
    /// A TCP send with MSG_FASTOPEN is the exception the caller handles.
    pub(super) fn ignores_send_dest(self) -> bool {
        self.connect_may_wait()
    }

    /// The rule transport for an inet socket of this kind.
    fn proto(self) -> Option<Proto> {
        match self.ty {
            libc::SOCK_STREAM => Some(Proto::Tcp),
            libc::SOCK_DGRAM => Some(Proto::Udp),
            _ => None,
        }
    }
}

pub(super) fn sockopt(sock: &OwnedFd, opt: i32) -> io::Result<i32> {
    crate::sys::sockopt_int(sock.as_raw_fd(), opt)
}

pub(super) fn is_blocking(sock: &OwnedFd) -> bool {
    // SAFETY: F_GETFL on our own fd.
    let fl = unsafe { libc::fcntl(sock.as_raw_fd(), libc::F_GETFL) };
    fl >= 0 && fl & libc::O_NONBLOCK == 0
}

pub(super) fn report(
    sup: &Supervisor,
    n: &Notif,
    syscall: &str,
    target: &str,
    verdict: Verdict,
    rule: &str,
) {
    sup.reporter.record(&Event {
        pid: n.pid,
        syscall,
        target,
        verdict,
        rule,
    });
}

fn family_name(f: i32) -> String {
    match f {
        libc::AF_INET => "AF_INET".into(),
        libc::AF_INET6 => "AF_INET6".into(),
        libc::AF_NETLINK => "AF_NETLINK".into(),
        libc::AF_PACKET => "AF_PACKET".into(),
        libc::AF_VSOCK => "AF_VSOCK".into(),
        other => format!("family {other}"),
    }
}

/// socket(2) for the trapped families, decided from registers alone.
pub fn socket(sup: &Arc<Supervisor>, n: &Notif) -> Reply {
    let (family, ty, proto) = (n.int(0), n.int(1) & 0xf, n.int(2));
    let deny = |errno: i32, what: String, why: &str| {
        sup.reporter.record_once(&Event {
            pid: n.pid,
            syscall: "socket",
            target: &what,
            verdict: Verdict::Deny,
            rule: why,
        });
        Reply::Errno(errno)
    };
    if family == libc::AF_UNIX {
        return Reply::Continue;
    }
    if family != libc::AF_INET && family != libc::AF_INET6 && family != libc::AF_NETLINK {
        return deny(
            libc::EPERM,
            family_name(family),
            "only unix, inet and netlink-route sockets are allowed",
        );
    }
    if family == libc::AF_NETLINK {
        return match proto {
            libc::NETLINK_ROUTE => Reply::Continue,
            p => deny(
                libc::EPERM,
                format!("AF_NETLINK protocol {p}"),
                "only NETLINK_ROUTE is allowed",
            ),
        };
    }
    let what = format!(
        "{} {}",
        family_name(family),
        match ty {
            libc::SOCK_STREAM => "SOCK_STREAM".to_string(),
            libc::SOCK_DGRAM => "SOCK_DGRAM".to_string(),
            libc::SOCK_RAW => "SOCK_RAW".to_string(),
            t => format!("type {t}"),
        }
    );
    if ty == libc::SOCK_RAW {
        return deny(libc::EPERM, what, "raw sockets are never allowed");
    }
    if !sup.inet {
        return deny(libc::EACCES, what, "no network access (no --net-allow)");
    }
    match ty {
        libc::SOCK_STREAM if proto == 0 || proto == libc::IPPROTO_TCP => Reply::Continue,
        libc::SOCK_DGRAM if proto == 0 || proto == libc::IPPROTO_UDP => {
            if sup.udp {
                Reply::Continue
            } else if let Some(reply) = super::dns::udp_socket(sup, n, family, n.int(1)) {
                reply
            } else {
                deny(libc::EACCES, what, "UDP needs a udp:// --net-allow rule")
            }
        }
        _ => deny(
            libc::EACCES,
            format!("{what} protocol {proto}"),
            "only plain TCP and UDP are supported",
        ),
    }
}

/// Reads a socket address argument (`len` as the kernel would take it)
/// from the workload's memory, once, and decodes it: every later step
/// works on this value, and the kernel gets its encoding.
pub(super) fn read_addr(n: &Notif, ptr: u64, len: u64) -> Result<SockAddr, Reply> {
    let len = len as u32 as usize;
    if len > SockAddr::MAX_LEN {
        return Err(Reply::Errno(libc::EINVAL));
    }
    let bytes = n.read(ptr, len).map_err(|_| Reply::Errno(libc::EFAULT))?;
    SockAddr::decode(&bytes).ok_or(Reply::Errno(libc::EINVAL))
}

pub(super) fn dup_socket(n: &Notif, fd: i32) -> Result<(OwnedFd, Kind), Reply> {
    let sock = n.dup_fd(fd).map_err(|_| Reply::Errno(libc::EBADF))?;
    let kind = Kind::of(&sock).map_err(|e| Reply::from_io(&e))?;
    Ok((sock, kind))
}

/// [`dup_socket`] for a connect to `addr` (see [`Kind::of_connect`]).
fn dup_socket_to(n: &Notif, fd: i32, addr: &SockAddr) -> Result<(OwnedFd, Kind), Reply> {
    let sock = n.dup_fd(fd).map_err(|_| Reply::Errno(libc::EBADF))?;
    let kind = Kind::of_connect(&sock, addr).map_err(|e| Reply::from_io(&e))?;
    Ok((sock, kind))
}

/// Decides whether `addr` may be the destination of a `syscall` on a
/// socket of `kind`, and returns what to give the kernel: the same
/// address, or, for a unix path, the supervisor's handle of the socket it
/// names.
pub(super) fn decide_dest(
    sup: &Supervisor,
    n: &Notif,
    syscall: &str,
    kind: Kind,
    addr: SockAddr,
) -> Result<Dest, Reply> {
    if let Some(dest) = inet_dest(&addr, kind, syscall) {
        decide_inet(sup, n, syscall, kind, dest)?;
        return Ok(Dest::plain(addr));
    }
    match &addr {
        // A unix address for another family's socket: the kernel refuses
        // it (EAFNOSUPPORT or EINVAL) without looking at the path.
        SockAddr::Unix(Unix::Path(path)) if kind.domain == libc::AF_UNIX => {
            unix::path_dest(sup, n, syscall, path)
        }
        // An abstract name is connected by the notify thread, which
        // Landlock scopes like the workload; an unnamed address is the
        // kernel's to refuse. Everything else is handed to the kernel as
        // is; it rejects a family that does not match the socket.
        _ => Ok(Dest::plain(addr)),
    }
}

/// The inet destination the kernel takes `addr` for, on a socket of
/// `kind`, when a `syscall` names it.
fn inet_dest(addr: &SockAddr, kind: Kind, syscall: &str) -> Option<SocketAddr> {
    match addr {
        // The address family stands for the socket's: the kernel refuses
        // an address of another family than the socket's.
        SockAddr::Inet(a) => Some(a.dest()),
        // A UDP send on an AF_INET socket reads AF_UNSPEC as AF_INET
        // (udp_sendmsg); a connect dissolves the association instead, and
        // an AF_INET6 socket's send ignores it.
        SockAddr::Unspec(u)
            if syscall != "connect"
                && kind.domain == libc::AF_INET
                && kind.ty == libc::SOCK_DGRAM =>
        {
            u.as_inet().map(|a| a.dest())
        }
        _ => None,
    }
}

/// Decides the inet destination `dest` of a `syscall` on a socket of
/// `kind`: Ok when the allowlist names it.
fn decide_inet(
    sup: &Supervisor,
    n: &Notif,
    syscall: &str,
    kind: Kind,
    dest: SocketAddr,
) -> Result<(), Reply> {
    let Some(proto) = kind.proto() else {
        report(
            sup,
            n,
            syscall,
            &dest.to_string(),
            Verdict::Deny,
            "socket type not allowed",
        );
        return Err(Reply::Errno(libc::EACCES));
    };
    let target = target_text(proto, dest);
    if let Some(why) = intercepted_elsewhere(sup, syscall, proto, dest) {
        report(sup, n, syscall, &target, Verdict::Deny, why);
        return Err(Reply::Errno(libc::EACCES));
    }
    match sup.egress.check(proto, dest) {
        Decision::Allow(rule) => {
            if let Some(l) = sup.reporter.learner() {
                l.connect(proto, dest);
            }
            if sup.reporter.wants_allows() {
                report(
                    sup,
                    n,
                    syscall,
                    &target,
                    Verdict::Allow,
                    &format!("--net-allow {rule}"),
                );
            }
            Ok(())
        }
        Decision::Deny(why) => {
            report(sup, n, syscall, &target, Verdict::Deny, why);
            Err(Reply::Errno(libc::EACCES))
        }
    }
}

/// Traffic to an intercepted port that cannot go through the proxy: UDP
/// (QUIC, so clients fall back to TCP) and TCP Fast Open sends, whose
/// destination only a connect may name while interception is on.
fn intercepted_elsewhere(
    sup: &Supervisor,
    syscall: &str,
    proto: Proto,
    dest: SocketAddr,
) -> Option<&'static str> {
    let proxy = sup.proxy.as_ref()?;
    if !proxy.intercepts(dest.port()) {
        return None;
    }
    Some(match proto {
        Proto::Udp => "UDP to an intercepted HTTP port is refused while interception is on",
        Proto::Tcp if syscall != "connect" => {
            "TCP Fast Open to an intercepted HTTP port is not supported; use connect"
        }
        Proto::Tcp => return None,
    })
}

fn target_text(proto: Proto, dest: SocketAddr) -> String {
    match proto {
        Proto::Tcp => dest.to_string(),
        Proto::Udp => format!("udp://{dest}"),
    }
}

/// connect(2), always performed by the supervisor on its duplicate of the
/// socket: whatever the family, the kernel never reads the address from
/// the workload's memory again (a unix path swapped in after the check
/// would otherwise reach a host service).
pub fn connect(sup: &Arc<Supervisor>, n: &Notif) -> Reply {
    let run = || -> Result<Reply, Reply> {
        let addr = read_addr(n, n.arg(1), n.arg(2))?;
        let (sock, kind) = dup_socket_to(n, n.int(0), &addr)?;
        if !n.still_valid() {
            return Ok(Reply::Done);
        }
        if let Some(dest) = super::dns::dns_dest(sup, &addr) {
            let sock = super::dns::divert(sup, n, "connect", n.int(0), sock, kind, dest)?;
            let dest = Dest::plain(addr);
            if kind.stream() && is_blocking(&sock) {
                return Ok(connect_blocking(sup, n, sock, dest, false));
            }
            return Ok(raw_connect(false, &sock, &dest.addr.encode()));
        }
        if let (Some(proxy), SockAddr::Inet(a)) = (&sup.proxy, &addr) {
            if kind.stream() && proxy.intercepts(a.port()) {
                return Ok(super::redirect::connect(sup, n, proxy, sock, a.dest()));
            }
        }
        let scoped = matches!(addr, SockAddr::Unix(Unix::Abstract(_))).then(|| addr.clone());
        let dest = decide_dest(sup, n, "connect", kind, addr)?;
        let rights = kind.needs_rights(sup.as_workload);
        let reply = if kind.connect_may_wait() && is_blocking(&sock) {
            connect_blocking(sup, n, sock, dest, rights)
        } else {
            raw_connect(rights, &sock, &dest.addr.encode())
        };
        if let Some(name) = scoped {
            unix::report_scoped(sup, n, "connect", &name, reply);
        }
        Ok(reply)
    };
    run().unwrap_or_else(|r| r)
}

/// connect(2) of the supervisor's duplicate, with the workload's rights
/// when `as_workload` holds (see [`Kind::needs_rights`]): a supervisor
/// started as root must not lend it a netlink multicast group, a socket
/// file's permissions or any other check that a capability passes.
pub(super) fn raw_connect(as_workload: bool, sock: &OwnedFd, addr: &Wire) -> Reply {
    as_workload_call(as_workload, || addr.connect(sock.as_fd()))
}

/// Runs `f` (a call that returns nothing) with the workload's rights when
/// `as_workload` holds; 0 or its error as a reply.
pub(super) fn as_workload_call(as_workload: bool, f: impl FnOnce() -> io::Result<()>) -> Reply {
    match WorkloadRights::run(as_workload, f) {
        Ok(()) => Reply::Value(0),
        Err(e) => Reply::from_io(&e),
    }
}

/// Runs the raw call `f` (a -1 return sets errno) with the workload's
/// rights when `as_workload` holds; its result as a reply.
pub(super) fn as_workload_do(as_workload: bool, f: impl FnOnce() -> isize) -> Reply {
    let r = WorkloadRights::run(as_workload, || {
        let r = f();
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r)
        }
    });
    match r {
        Ok(v) => Reply::Value(v as i64),
        Err(e) => Reply::from_io(&e),
    }
}

/// How long a blocking connect may run on the receiver thread. Loopback
/// and LAN handshakes finish well within it; anything slower continues on
/// a worker thread.
const INLINE_CONNECT: Duration = Duration::from_millis(2);

/// A blocking connect, done without stalling the receiver: the socket's
/// send timeout (which bounds a blocking connect) is lowered to
/// [`INLINE_CONNECT`] for one attempt, and a handshake still in progress
/// after it is awaited on a worker thread. The workload's own timeout is
/// honoured and restored before it gets its answer.
pub(super) fn connect_blocking(
    sup: &Arc<Supervisor>,
    n: &Notif,
    sock: OwnedFd,
    dest: Dest,
    rights: bool,
) -> Reply {
    let addr = &dest.addr.encode();
    let Ok(saved) = send_timeout(&sock) else {
        return raw_connect(rights, &sock, addr);
    };
    let inline = if saved.is_zero() {
        INLINE_CONNECT
    } else {
        saved.min(INLINE_CONNECT)
    };
    if set_send_timeout(&sock, inline).is_err() {
        return raw_connect(rights, &sock, addr);
    }
    let first = raw_connect(rights, &sock, addr);
    if first != Reply::Errno(libc::EINPROGRESS) || (!saved.is_zero() && saved <= INLINE_CONNECT) {
        let _ = set_send_timeout(&sock, saved);
        return first;
    }
    let remaining = (!saved.is_zero()).then(|| saved.saturating_sub(inline));
    sup.offload(n, move |n| {
        // The destination (and the socket file a unix path was pinned
        // to) stays alive until the handshake is over.
        let _dest = dest;
        let reply = wait_connected(&sock, remaining, n);
        let _ = set_send_timeout(&sock, saved);
        reply
    })
}

/// Waits for a connect in progress on `sock`; answers like the blocking
/// connect would have (0, the handshake's error, or EINPROGRESS when the
/// workload's own send timeout expires).
fn wait_connected(sock: &OwnedFd, remaining: Option<Duration>, n: &Notif) -> Reply {
    let deadline = remaining.and_then(|r| Instant::now().checked_add(r));
    loop {
        let slice = match deadline {
            Some(d) => d
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(500)),
            None => Duration::from_millis(500),
        };
        let mut pfd = libc::pollfd {
            fd: sock.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one pollfd we own.
        let ready = unsafe { libc::poll(&mut pfd, 1, slice.as_millis() as i32) };
        if ready > 0 {
            return match sockopt(sock, libc::SO_ERROR) {
                Ok(0) => Reply::Value(0),
                Ok(e) => Reply::Errno(e),
                Err(e) => Reply::from_io(&e),
            };
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Reply::Errno(libc::EINPROGRESS);
        }
        // The workload died or gave up: stop waiting on its behalf.
        if !n.pending() {
            return Reply::Done;
        }
    }
}

fn send_timeout(sock: &OwnedFd) -> io::Result<Duration> {
    // SAFETY: timeval is plain old data.
    let mut tv: libc::timeval = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `tv`.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&mut tv as *mut libc::timeval).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // The kernel keeps tv_usec below a million.
    let nanos = u32::try_from(tv.tv_usec).unwrap_or(0).saturating_mul(1000);
    Ok(Duration::new(u64::try_from(tv.tv_sec).unwrap_or(0), nanos))
}

fn set_send_timeout(sock: &OwnedFd, d: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: d.as_secs() as libc::time_t,
        tv_usec: d.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: setsockopt reads a timeval we own.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A socket of `domain` and `ty`, as the supervisor reads one.
    pub(in crate::supervisor) fn kind(domain: i32, ty: i32) -> Kind {
        Kind { ty, domain }
    }

    /// An inet-shaped address of `family`, cut to `len` bytes.
    pub(in crate::supervisor) fn addr(family: i32, port: u16, ip: [u8; 4], len: usize) -> SockAddr {
        let mut b = vec![0u8; len.max(16)];
        b[..2].copy_from_slice(&(family as u16).to_ne_bytes());
        b[2..4].copy_from_slice(&port.to_be_bytes());
        b[4..8].copy_from_slice(&ip);
        b.truncate(len);
        SockAddr::decode(&b).expect("short enough")
    }

    #[test]
    fn the_destination_the_kernel_takes() {
        let udp4 = kind(libc::AF_INET, libc::SOCK_DGRAM);
        let udp6 = kind(libc::AF_INET6, libc::SOCK_DGRAM);
        let tcp4 = kind(libc::AF_INET, libc::SOCK_STREAM);
        let unix = kind(libc::AF_UNIX, libc::SOCK_DGRAM);
        let dest: SocketAddr = "10.0.0.1:53".parse().unwrap();
        // An inet address is decided whatever the socket: a socket of
        // another family refuses it anyway.
        let inet = addr(libc::AF_INET, 53, [10, 0, 0, 1], 16);
        for k in [udp4, udp6, tcp4, unix] {
            assert_eq!(inet_dest(&inet, k, "sendto"), Some(dest));
            assert_eq!(inet_dest(&inet, k, "connect"), Some(dest));
        }
        // AF_UNSPEC: a UDP send on an AF_INET socket reads it as AF_INET.
        let unspec = addr(libc::AF_UNSPEC, 53, [10, 0, 0, 1], 16);
        assert_eq!(inet_dest(&unspec, udp4, "sendto"), Some(dest));
        assert_eq!(inet_dest(&unspec, udp4, "sendmmsg"), Some(dest));
        for (k, syscall) in [
            (udp4, "connect"),
            (udp6, "sendto"),
            (tcp4, "sendto"),
            (unix, "sendmsg"),
        ] {
            assert_eq!(inet_dest(&unspec, k, syscall), None, "{syscall}");
        }
        // Too short for a sockaddr_in: the kernel refuses it.
        let short = addr(libc::AF_UNSPEC, 53, [10, 0, 0, 1], 15);
        assert_eq!(inet_dest(&short, udp4, "sendto"), None);
        // Unix, other families and malformed addresses name no inet host.
        let mut path = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
        path.extend_from_slice(b"/run/x.sock\0");
        let netlink = addr(libc::AF_NETLINK, 0, [0; 4], 12);
        let malformed = addr(libc::AF_INET, 53, [10, 0, 0, 1], 7);
        for a in [SockAddr::decode(&path).unwrap(), netlink, malformed] {
            assert_eq!(inet_dest(&a, udp4, "sendto"), None, "{a:?}");
        }
    }
}
