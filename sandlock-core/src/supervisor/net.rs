//! Network syscalls, decided from the supervisor's own copy of the
//! arguments and performed by the supervisor on a `pidfd_getfd` duplicate
//! of the workload's socket. The workload's memory is read once; nothing
//! that was decided on is ever handed back to the kernel to read again.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::notif::{Notif, Reply};
use super::Supervisor;
use crate::audit::{Event, Verdict};
use crate::network::{Decision, SockAddr};
use crate::policy::Proto;

/// Largest socket address the kernel accepts (sizeof sockaddr_storage).
const MAX_ADDR: usize = 128;
/// Most bytes copied for one datagram; larger ones fail like the kernel's.
const MAX_DGRAM: usize = 256 * 1024;
/// Most bytes copied for one stream send; the workload sees a short write.
const MAX_STREAM: usize = 1024 * 1024;
/// Kernel limit on iovecs and on messages per sendmmsg.
const MAX_IOV: usize = 1024;
/// Most ancillary data copied for one message.
const MAX_CONTROL: usize = 64 * 1024;

/// What kind of socket an fd is, read from the supervisor's duplicate.
#[derive(Debug, Clone, Copy)]
struct Kind {
    domain: i32,
    ty: i32,
}

impl Kind {
    fn of(sock: &OwnedFd) -> io::Result<Kind> {
        Ok(Kind {
            domain: sockopt(sock, libc::SO_DOMAIN)?,
            ty: sockopt(sock, libc::SO_TYPE)?,
        })
    }

    fn inet(self) -> bool {
        self.domain == libc::AF_INET || self.domain == libc::AF_INET6
    }

    fn stream(self) -> bool {
        self.ty == libc::SOCK_STREAM
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

fn sockopt(sock: &OwnedFd, opt: i32) -> io::Result<i32> {
    let mut v: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `v`.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&mut v as *mut i32).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(v)
}

fn is_blocking(sock: &OwnedFd) -> bool {
    // SAFETY: F_GETFL on our own fd.
    let fl = unsafe { libc::fcntl(sock.as_raw_fd(), libc::F_GETFL) };
    fl >= 0 && fl & libc::O_NONBLOCK == 0
}

fn ret(r: isize) -> Reply {
    if r < 0 {
        Reply::from_io(&io::Error::last_os_error())
    } else {
        Reply::Value(r as i64)
    }
}

fn report(sup: &Supervisor, n: &Notif, syscall: &str, target: &str, verdict: Verdict, rule: &str) {
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

/// Reads a socket address argument (`len` as the kernel would take it).
fn read_addr(n: &Notif, ptr: u64, len: u64) -> Result<Vec<u8>, Reply> {
    let len = len as u32 as usize;
    if len > MAX_ADDR {
        return Err(Reply::Errno(libc::EINVAL));
    }
    n.read(ptr, len).map_err(|_| Reply::Errno(libc::EFAULT))
}

fn dup_socket(n: &Notif, fd: i32) -> Result<(OwnedFd, Kind), Reply> {
    let sock = n.dup_fd(fd).map_err(|_| Reply::Errno(libc::EBADF))?;
    let kind = Kind::of(&sock).map_err(|e| Reply::from_io(&e))?;
    Ok((sock, kind))
}

/// Decides whether `addr` may be the destination of a `syscall` on a
/// socket of `kind`, and returns the bytes to give the kernel (relative
/// unix paths are made absolute against the workload's cwd).
fn decide_dest(
    sup: &Supervisor,
    n: &Notif,
    syscall: &str,
    kind: Kind,
    addr: Vec<u8>,
) -> Result<Vec<u8>, Reply> {
    match SockAddr::decode(&addr) {
        SockAddr::Inet(dest) if kind.inet() => {
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
            match sup.egress.check(proto, dest) {
                Decision::Allow(rule) => {
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
                    Ok(addr)
                }
                Decision::Deny(why) => {
                    report(sup, n, syscall, &target, Verdict::Deny, why);
                    Err(Reply::Errno(libc::EACCES))
                }
            }
        }
        SockAddr::Unix(path) if kind.domain == libc::AF_UNIX => {
            unix_dest(sup, n, syscall, &path).map(|p| p.unwrap_or(addr))
        }
        // Everything else is handed to the kernel as is; it rejects a
        // family that does not match the socket.
        _ => Ok(addr),
    }
}

fn target_text(proto: Proto, dest: SocketAddr) -> String {
    match proto {
        Proto::Tcp => dest.to_string(),
        Proto::Udp => format!("udp://{dest}"),
    }
}

/// Unix destinations: abstract names stay inside the sandbox when Landlock
/// scopes them; relative paths are resolved against the workload's cwd.
fn unix_dest(
    sup: &Supervisor,
    n: &Notif,
    syscall: &str,
    path: &[u8],
) -> Result<Option<Vec<u8>>, Reply> {
    match path.first() {
        None => Ok(None),
        Some(0) if sup.abstract_unix_scoped => {
            let name = String::from_utf8_lossy(&path[1..]).into_owned();
            report(
                sup,
                n,
                syscall,
                &format!("unix:@{name}"),
                Verdict::Deny,
                "abstract unix sockets outside the sandbox are scoped",
            );
            Err(Reply::Errno(libc::EPERM))
        }
        Some(b'/') | Some(0) => Ok(None),
        Some(_) => {
            let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
            let full = format!(
                "/proc/{}/cwd/{}",
                n.pid,
                String::from_utf8_lossy(&path[..end])
            );
            if full.len() >= 108 {
                return Err(Reply::Errno(libc::ENAMETOOLONG));
            }
            let mut out = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
            out.extend_from_slice(full.as_bytes());
            out.push(0);
            Ok(Some(out))
        }
    }
}

pub fn connect(sup: &Arc<Supervisor>, n: &Notif) -> Reply {
    let run = || -> Result<Reply, Reply> {
        let addr = read_addr(n, n.arg(1), n.arg(2))?;
        let (sock, kind) = dup_socket(n, n.int(0))?;
        if !n.still_valid() {
            return Ok(Reply::Done);
        }
        let addr = decide_dest(sup, n, "connect", kind, addr)?;
        if kind.stream() && is_blocking(&sock) {
            return Ok(connect_blocking(sup, n, sock, addr));
        }
        Ok(raw_connect(&sock, &addr))
    };
    run().unwrap_or_else(|r| r)
}

fn raw_connect(sock: &OwnedFd, addr: &[u8]) -> Reply {
    // SAFETY: `addr` is our own buffer of the length passed.
    ret(
        unsafe { libc::connect(sock.as_raw_fd(), addr.as_ptr().cast(), addr.len() as u32) }
            as isize,
    )
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
fn connect_blocking(sup: &Arc<Supervisor>, n: &Notif, sock: OwnedFd, addr: Vec<u8>) -> Reply {
    let Ok(saved) = send_timeout(&sock) else {
        return raw_connect(&sock, &addr);
    };
    let inline = if saved.is_zero() {
        INLINE_CONNECT
    } else {
        saved.min(INLINE_CONNECT)
    };
    if set_send_timeout(&sock, inline).is_err() {
        return raw_connect(&sock, &addr);
    }
    let first = raw_connect(&sock, &addr);
    if first != Reply::Errno(libc::EINPROGRESS) || (!saved.is_zero() && saved <= INLINE_CONNECT) {
        let _ = set_send_timeout(&sock, saved);
        return first;
    }
    let remaining = (!saved.is_zero()).then(|| saved - inline);
    sup.offload(n, move |n| {
        let reply = wait_connected(&sock, remaining, n);
        let _ = set_send_timeout(&sock, saved);
        reply
    })
}

/// Waits for a connect in progress on `sock`; answers like the blocking
/// connect would have (0, the handshake's error, or EINPROGRESS when the
/// workload's own send timeout expires).
fn wait_connected(sock: &OwnedFd, remaining: Option<Duration>, n: &Notif) -> Reply {
    let deadline = remaining.map(|r| Instant::now() + r);
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
        if !n.still_valid() {
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
    Ok(Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000))
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

pub fn bind(sup: &Arc<Supervisor>, n: &Notif) -> Reply {
    let run = || -> Result<Reply, Reply> {
        let addr = read_addr(n, n.arg(1), n.arg(2))?;
        let SockAddr::Inet(local) = SockAddr::decode(&addr) else {
            // Unix paths: Landlock decides where a socket file may be made.
            return Ok(Reply::Continue);
        };
        if local.port() != 0 {
            if let Decision::Deny(why) = sup.egress.check_bind(local.port()) {
                report(sup, n, "bind", &local.to_string(), Verdict::Deny, why);
                return Err(Reply::Errno(libc::EACCES));
            }
        }
        let (sock, _) = dup_socket(n, n.int(0))?;
        // SAFETY: `addr` is our own buffer of the length passed.
        Ok(ret(
            unsafe { libc::bind(sock.as_raw_fd(), addr.as_ptr().cast(), addr.len() as u32) }
                as isize,
        ))
    };
    run().unwrap_or_else(|r| r)
}

pub fn listen(sup: &Arc<Supervisor>, n: &Notif) -> Reply {
    let run = || -> Result<Reply, Reply> {
        let (sock, kind) = dup_socket(n, n.int(0))?;
        if kind.inet() {
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
        // SAFETY: listen on our own duplicate.
        Ok(ret(
            unsafe { libc::listen(sock.as_raw_fd(), n.int(1)) } as isize
        ))
    };
    run().unwrap_or_else(|r| r)
}

fn local_port(sock: &OwnedFd) -> io::Result<u16> {
    // SAFETY: sockaddr_storage is plain old data.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: getsockname writes at most `len` bytes into `ss`.
    if unsafe {
        libc::getsockname(
            sock.as_raw_fd(),
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    // sin_port and sin6_port sit at the same offset.
    let raw = (&ss as *const libc::sockaddr_storage).cast::<u8>();
    // SAFETY: reading two bytes inside the local sockaddr_storage.
    Ok(u16::from_be_bytes(unsafe { [*raw.add(2), *raw.add(3)] }))
}

/// One message to send: the supervisor's copies of its parts.
struct Message {
    name: Option<Vec<u8>>,
    data: Vec<u8>,
    control: Vec<u8>,
    /// Duplicates of fds passed with SCM_RIGHTS, alive until sent.
    _held: Vec<OwnedFd>,
}

/// What became of a send.
enum Sent {
    /// Sent now; this many bytes.
    Now(usize),
    /// The socket is blocking and its buffer is full: the send must wait.
    WouldBlock(Message),
}

/// Decides `msg`'s destination and sends it without blocking.
fn send_message(
    sup: &Supervisor,
    n: &Notif,
    syscall: &str,
    sock: &OwnedFd,
    kind: Kind,
    mut msg: Message,
    flags: i32,
) -> Result<Sent, Reply> {
    let fastopen = flags & libc::MSG_FASTOPEN != 0;
    if let Some(name) = msg.name.take() {
        // A stream socket ignores the address unless MSG_FASTOPEN makes
        // this send a connect.
        msg.name = Some(if kind.stream() && !fastopen {
            name
        } else {
            decide_dest(sup, n, syscall, kind, name)?
        });
    }
    if kind.ty == libc::SOCK_DGRAM && msg.data.len() > MAX_DGRAM {
        return Err(Reply::Errno(libc::EMSGSIZE));
    }
    let may_block = is_blocking(sock) && flags & libc::MSG_DONTWAIT == 0;
    if may_block && fastopen && kind.stream() {
        // A blocking fast-open send is a blocking connect with data: let a
        // worker wait for the handshake as the workload asked.
        return Ok(Sent::WouldBlock(msg));
    }
    match sendmsg_raw(sock, &mut msg, flags | libc::MSG_DONTWAIT) {
        Ok(sent) => Ok(Sent::Now(sent)),
        Err(e) if may_block && e.raw_os_error() == Some(libc::EAGAIN) => Ok(Sent::WouldBlock(msg)),
        Err(e) => Err(send_error(n, &e, flags)),
    }
}

/// The blocking send for [`Sent::WouldBlock`], run on a worker thread.
fn send_blocking(n: &Notif, sock: &OwnedFd, mut msg: Message, flags: i32) -> Result<usize, Reply> {
    sendmsg_raw(sock, &mut msg, flags).map_err(|e| send_error(n, &e, flags))
}

fn send_error(n: &Notif, e: &io::Error, flags: i32) -> Reply {
    // The workload asked without MSG_NOSIGNAL: it gets its SIGPIPE.
    if e.raw_os_error() == Some(libc::EPIPE) && flags & libc::MSG_NOSIGNAL == 0 {
        // SAFETY: tkill with integers; a vanished thread just fails.
        unsafe { libc::syscall(libc::SYS_tkill, n.pid, libc::SIGPIPE) };
    }
    Reply::from_io(e)
}

/// sendmsg(2) of the supervisor's copy. Never raises SIGPIPE in the
/// supervisor.
fn sendmsg_raw(sock: &OwnedFd, msg: &mut Message, flags: i32) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: msg.data.as_mut_ptr().cast(),
        iov_len: msg.data.len(),
    };
    // SAFETY: msghdr is plain old data; every pointer set below refers to
    // buffers owned by `msg` that outlive the sendmsg call.
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    if let Some(name) = &mut msg.name {
        hdr.msg_name = name.as_mut_ptr().cast();
        hdr.msg_namelen = name.len() as u32;
    }
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    if !msg.control.is_empty() {
        hdr.msg_control = msg.control.as_mut_ptr().cast();
        hdr.msg_controllen = msg.control.len();
    }
    // SAFETY: `hdr` is fully initialised as described above.
    let r = unsafe { libc::sendmsg(sock.as_raw_fd(), &hdr, flags | libc::MSG_NOSIGNAL) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r as usize)
}

/// Answers a single-message send: now, or from a worker once it can.
fn finish_send(sup: &Arc<Supervisor>, n: &Notif, sock: OwnedFd, sent: Sent, flags: i32) -> Reply {
    match sent {
        Sent::Now(bytes) => Reply::Value(bytes as i64),
        Sent::WouldBlock(msg) => {
            sup.offload(n, move |n| match send_blocking(n, &sock, msg, flags) {
                Ok(bytes) => Reply::Value(bytes as i64),
                Err(r) => r,
            })
        }
    }
}

fn data_cap(kind: Kind) -> usize {
    if kind.stream() {
        MAX_STREAM
    } else {
        MAX_DGRAM + 1
    }
}

pub fn sendto(sup: &Arc<Supervisor>, n: &Notif) -> Reply {
    let run = || -> Result<Reply, Reply> {
        let name = read_addr(n, n.arg(4), n.arg(5))?;
        let (sock, kind) = dup_socket(n, n.int(0))?;
        let len = (n.arg(2) as usize).min(data_cap(kind));
        let data = n
            .read(n.arg(1), len)
            .map_err(|_| Reply::Errno(libc::EFAULT))?;
        if !n.still_valid() {
            return Ok(Reply::Done);
        }
        let msg = Message {
            name: Some(name),
            data,
            control: Vec::new(),
            _held: Vec::new(),
        };
        let sent = send_message(sup, n, "sendto", &sock, kind, msg, n.int(3))?;
        Ok(finish_send(sup, n, sock, sent, n.int(3)))
    };
    run().unwrap_or_else(|r| r)
}

/// Reads a `struct msghdr` and everything it points to.
fn read_msghdr(n: &Notif, addr: u64, kind: Kind) -> Result<Message, Reply> {
    let efault = |_| Reply::Errno(libc::EFAULT);
    let raw = n
        .read(addr, std::mem::size_of::<libc::msghdr>())
        .map_err(efault)?;
    // SAFETY: `raw` holds exactly size_of::<msghdr>() bytes; read_unaligned
    // copies them into a properly aligned local of plain old data.
    let hdr: libc::msghdr = unsafe { std::ptr::read_unaligned(raw.as_ptr().cast()) };
    let name = if hdr.msg_name.is_null() || hdr.msg_namelen == 0 {
        None
    } else {
        Some(read_addr(n, hdr.msg_name as u64, hdr.msg_namelen as u64)?)
    };
    if hdr.msg_iovlen > MAX_IOV {
        return Err(Reply::Errno(libc::EMSGSIZE));
    }
    let iov_size = std::mem::size_of::<libc::iovec>();
    let iovs = n
        .read(hdr.msg_iov as u64, hdr.msg_iovlen * iov_size)
        .map_err(efault)?;
    let cap = data_cap(kind);
    let mut data = Vec::new();
    for chunk in iovs.chunks_exact(iov_size) {
        let base = u64::from_ne_bytes(chunk[..8].try_into().expect("8 bytes"));
        let len = u64::from_ne_bytes(chunk[8..16].try_into().expect("8 bytes")) as usize;
        let take = len.min(cap - data.len());
        if take > 0 {
            data.extend_from_slice(&n.read(base, take).map_err(efault)?);
        }
        if data.len() >= cap {
            break;
        }
    }
    let (control, held) = if hdr.msg_control.is_null() || hdr.msg_controllen == 0 {
        (Vec::new(), Vec::new())
    } else {
        if hdr.msg_controllen > MAX_CONTROL {
            return Err(Reply::Errno(libc::ENOBUFS));
        }
        let mut control = n
            .read(hdr.msg_control as u64, hdr.msg_controllen)
            .map_err(efault)?;
        let held = translate_rights(n, &mut control)?;
        (control, held)
    };
    Ok(Message {
        name,
        data,
        control,
        _held: held,
    })
}

/// Replaces the workload's fd numbers in SCM_RIGHTS with duplicates the
/// supervisor owns, so the right files travel.
fn translate_rights(n: &Notif, control: &mut [u8]) -> Result<Vec<OwnedFd>, Reply> {
    const HDR: usize = std::mem::size_of::<libc::cmsghdr>();
    let mut held = Vec::new();
    let mut off = 0;
    while off + HDR <= control.len() {
        let len = usize::from_ne_bytes(control[off..off + 8].try_into().expect("8 bytes"));
        let level = i32::from_ne_bytes(control[off + 8..off + 12].try_into().expect("4 bytes"));
        let ty = i32::from_ne_bytes(control[off + 12..off + 16].try_into().expect("4 bytes"));
        if len < HDR || off + len > control.len() {
            return Err(Reply::Errno(libc::EINVAL));
        }
        if level == libc::SOL_SOCKET && ty == libc::SCM_RIGHTS {
            for at in (off + HDR..off + len)
                .step_by(4)
                .take_while(|a| a + 4 <= off + len)
            {
                let fd = i32::from_ne_bytes(control[at..at + 4].try_into().expect("4 bytes"));
                let dup = n.dup_fd(fd).map_err(|_| Reply::Errno(libc::EBADF))?;
                control[at..at + 4].copy_from_slice(&dup.as_raw_fd().to_ne_bytes());
                held.push(dup);
            }
        }
        off += (len + 7) & !7;
    }
    Ok(held)
}

pub fn sendmsg(sup: &Arc<Supervisor>, n: &Notif) -> Reply {
    let run = || -> Result<Reply, Reply> {
        let (sock, kind) = dup_socket(n, n.int(0))?;
        let msg = read_msghdr(n, n.arg(1), kind)?;
        if !n.still_valid() {
            return Ok(Reply::Done);
        }
        let sent = send_message(sup, n, "sendmsg", &sock, kind, msg, n.int(2))?;
        Ok(finish_send(sup, n, sock, sent, n.int(2)))
    };
    run().unwrap_or_else(|r| r)
}

pub fn sendmmsg(sup: &Arc<Supervisor>, n: &Notif) -> Reply {
    let run = || -> Result<Reply, Reply> {
        let (sock, kind) = dup_socket(n, n.int(0))?;
        let (vec, vlen, flags) = (n.arg(1), (n.arg(2) as u32 as usize).min(MAX_IOV), n.int(3));
        // struct mmsghdr: a msghdr, then the unsigned int msg_len (padded).
        let stride = std::mem::size_of::<libc::mmsghdr>() as u64;
        let len_off = std::mem::size_of::<libc::msghdr>() as u64;
        let mut sent = 0usize;
        for i in 0..vlen as u64 {
            let entry = vec + i * stride;
            let outcome = read_msghdr(n, entry, kind).and_then(|msg| {
                if !n.still_valid() {
                    return Err(Reply::Done);
                }
                send_message(sup, n, "sendmmsg", &sock, kind, msg, flags)
            });
            match outcome {
                Ok(Sent::Now(bytes)) => {
                    let _ = n.write(entry + len_off, &(bytes as u32).to_ne_bytes());
                    sent += 1;
                }
                // Like the kernel: a full buffer after some messages ends
                // the call with what was sent; before any, it waits.
                Ok(Sent::WouldBlock(_)) if sent > 0 => break,
                Ok(Sent::WouldBlock(msg)) => {
                    return Ok(sup.offload(n, move |n| {
                        match send_blocking(n, &sock, msg, flags) {
                            Ok(bytes) => {
                                let _ = n.write(entry + len_off, &(bytes as u32).to_ne_bytes());
                                Reply::Value(1)
                            }
                            Err(r) => r,
                        }
                    }));
                }
                Err(r) if sent == 0 => return Err(r),
                Err(_) => break,
            }
        }
        Ok(Reply::Value(sent as i64))
    };
    run().unwrap_or_else(|r| r)
}
