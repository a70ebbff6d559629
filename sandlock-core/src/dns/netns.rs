//! The DNS interceptor's private network: a user + network namespace that
//! holds only a loopback device on which *every* address is local, and a
//! helper process living in it that makes sockets there on request.
//!
//! A workload's socket to `X:53` is swapped for one made here, so its query
//! lands on the interceptor's server bound to `0.0.0.0:53` in this
//! namespace, and the answer comes back from `X:53` exactly: resolvers that
//! check where a reply came from (glibc, musl, c-ares) accept it, and
//! connected UDP sockets receive it. Nothing in this namespace reaches any
//! real network; a swapped socket can talk to the interceptor and nothing
//! else.
//!
//! The helper is forked, and between fork and its exit it makes only
//! async-signal-safe calls on memory prepared before the fork (the caller
//! may be multithreaded). It never execs and never touches the workload.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

use crate::network::SockAddr;

/// `SO_NETNS_COOKIE` (Linux 5.14): the namespace a socket belongs to.
const SO_NETNS_COOKIE: libc::c_int = 71;
/// `IPV6_FREEBIND` (Linux 4.15).
const IPV6_FREEBIND: libc::c_int = 78;

/// The interceptor's server sockets, made inside the namespace.
pub(super) struct Servers {
    pub(super) udp4: OwnedFd,
    pub(super) tcp4: OwnedFd,
    /// Absent when the kernel has no IPv6.
    pub(super) udp6: Option<OwnedFd>,
    pub(super) tcp6: Option<OwnedFd>,
}

/// The running helper.
pub(super) struct Netns {
    chan: Mutex<OwnedFd>,
    pid: libc::pid_t,
}

/// What the helper reports after setting up.
#[repr(C)]
#[derive(Clone, Copy)]
struct Status {
    /// 0, or the errno of the step that failed.
    errno: i32,
    /// Which step: see [`STEPS`].
    step: i32,
}

const STEPS: [&str; 5] = [
    "unshare(CLONE_NEWUSER | CLONE_NEWNET)",
    "bringing up the loopback device",
    "routing every IPv4 address to loopback",
    "binding the IPv4 DNS server",
    "passing the server sockets",
];

impl Netns {
    /// Forks the helper, which sets the namespace up while the caller goes
    /// on; [`Netns::servers`] waits for it.
    pub(super) fn spawn() -> io::Result<Netns> {
        let mut pair = [0; 2];
        // SAFETY: `pair` has room for the two fds socketpair writes.
        let r = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                pair.as_mut_ptr(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both fds were just created and are owned here.
        let (ours, theirs) =
            unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) };
        let routes = [
            route_message(libc::AF_INET as u8, 1),
            route_message(libc::AF_INET6 as u8, 2),
        ];
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        // SAFETY: the child runs only `helper`, which makes async-signal-safe
        // calls on memory prepared above, and leaves with _exit.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            // SAFETY: see above; in the child, `theirs` is its channel.
            unsafe { helper(theirs.as_raw_fd(), ours.as_raw_fd(), parent, &routes) }
        }
        Ok(Netns {
            chan: Mutex::new(ours),
            pid,
        })
    }

    /// Waits for the helper's server sockets (once), and returns them with
    /// the namespace's cookie.
    pub(super) fn servers(&self) -> io::Result<(u64, Servers)> {
        let chan = self.chan.lock().unwrap_or_else(|e| e.into_inner());
        let (status, fds) = recv_fds(&chan, 4)?;
        let status = status.ok_or_else(|| io::Error::other("the DNS namespace helper died"))?;
        if status.errno != 0 {
            let step = STEPS.get(status.step as usize).copied().unwrap_or("setup");
            let e = io::Error::from_raw_os_error(status.errno);
            return Err(io::Error::new(e.kind(), format!("{step}: {e}")));
        }
        let mut fds = fds.into_iter();
        let (Some(udp4), Some(tcp4)) = (fds.next(), fds.next()) else {
            return Err(io::Error::other("the DNS namespace helper sent no sockets"));
        };
        let (udp6, tcp6) = (fds.next(), fds.next());
        let cookie = netns_cookie(&udp4)?;
        Ok((
            cookie,
            Servers {
                udp4,
                tcp4,
                udp6,
                tcp6,
            },
        ))
    }

    /// A new socket of `family` (AF_INET or AF_INET6) and `ty`
    /// (SOCK_STREAM or SOCK_DGRAM) inside the namespace.
    pub(super) fn socket(&self, family: i32, ty: i32) -> io::Result<OwnedFd> {
        let chan = self.chan.lock().unwrap_or_else(|e| e.into_inner());
        let req = [family as u8, ty as u8];
        // SAFETY: sends two bytes from a local array.
        let r = unsafe { libc::send(chan.as_raw_fd(), req.as_ptr().cast(), 2, libc::MSG_NOSIGNAL) };
        if r != 2 {
            return Err(io::Error::last_os_error());
        }
        let (status, mut fds) = recv_fds(&chan, 1)?;
        match (status, fds.pop()) {
            (Some(s), _) if s.errno != 0 => Err(io::Error::from_raw_os_error(s.errno)),
            (Some(_), Some(fd)) => Ok(fd),
            _ => Err(io::Error::other("the DNS namespace helper is gone")),
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Closing the channel ends the helper; then it is reaped.
        let chan = self.chan.get_mut().unwrap_or_else(|e| e.into_inner());
        // SAFETY: shutdown on our own socket.
        unsafe { libc::shutdown(chan.as_raw_fd(), libc::SHUT_RDWR) };
        // It may still be setting up (never used): no need to wait for that.
        // SAFETY: our own unreaped child, so the pid cannot be reused.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(self.pid, &mut status, libc::__WALL) };
    }
}

/// The network namespace `sock` belongs to.
pub(super) fn netns_cookie(sock: &OwnedFd) -> io::Result<u64> {
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: `cookie` and `len` are valid for the kernel to write.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cookie)
}

/// Receives one [`Status`] and up to `max` fds. `None` status: the peer
/// closed the channel.
fn recv_fds(chan: &OwnedFd, max: usize) -> io::Result<(Option<Status>, Vec<OwnedFd>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
    let mut buf = [0u8; std::mem::size_of::<Status>()];
    let mut cmsg = nix::cmsg_space!([RawFd; 4]);
    let (n, raw) = loop {
        let mut iov = [io::IoSliceMut::new(&mut buf)];
        match recvmsg::<UnixAddr>(
            chan.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => {
                let mut raw = Vec::new();
                for c in msg.cmsgs()? {
                    if let ControlMessageOwned::ScmRights(fds) = c {
                        raw.extend(fds);
                    }
                }
                break (msg.bytes, raw);
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    // SAFETY: the kernel just passed these fds to this process; nothing
    // else owns them.
    let mut fds: Vec<OwnedFd> = raw
        .into_iter()
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect();
    fds.truncate(max);
    if n != buf.len() {
        return Ok((None, fds));
    }
    let word = |at: usize| i32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes"));
    Ok((
        Some(Status {
            errno: word(0),
            step: word(4),
        }),
        fds,
    ))
}

/// A netlink RTM_NEWROUTE request: `local <any>/0 dev lo` in the local
/// table, which makes every address of `family` local.
fn route_message(family: u8, seq: u32) -> [u8; 36] {
    let mut m = [0u8; 36];
    m[0..4].copy_from_slice(&36u32.to_ne_bytes());
    m[4..6].copy_from_slice(&libc::RTM_NEWROUTE.to_ne_bytes());
    let flags =
        (libc::NLM_F_REQUEST | libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;
    m[6..8].copy_from_slice(&flags.to_ne_bytes());
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
    // struct rtmsg
    m[16] = family;
    m[17] = 0; // dst_len: the whole address space
    m[20] = libc::RT_TABLE_LOCAL;
    m[21] = libc::RTPROT_BOOT;
    m[22] = libc::RT_SCOPE_HOST;
    m[23] = libc::RTN_LOCAL;
    // RTA_OIF = 1 (the loopback device's index)
    m[28..30].copy_from_slice(&8u16.to_ne_bytes());
    m[30..32].copy_from_slice(&libc::RTA_OIF.to_ne_bytes());
    m[32..36].copy_from_slice(&1u32.to_ne_bytes());
    m
}

/// The helper's whole life. Async-signal-safe calls only.
///
/// # Safety
/// Must only be called in a freshly forked child.
unsafe fn helper(chan: RawFd, parent_end: RawFd, parent: libc::pid_t, routes: &[[u8; 36]; 2]) -> ! {
    // SAFETY: the caller guarantees a freshly forked child; every call below is
    // async-signal-safe and works on fds and stack memory of this process.
    unsafe {
        // The channel becomes fd 3; everything else inherited is closed, so the
        // helper holds nothing of the caller's open (pipes end when expected).
        libc::close(parent_end);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() != parent {
            libc::_exit(1);
        }
        if chan != 3 {
            libc::dup2(chan, 3);
        }
        libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
        }
        let fail = |step: i32| -> ! {
            let s = Status {
                errno: *libc::__errno_location(),
                step,
            };
            libc::send(
                3,
                (&s as *const Status).cast(),
                std::mem::size_of::<Status>(),
                libc::MSG_NOSIGNAL,
            );
            libc::_exit(1)
        };
        if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) != 0 {
            fail(0);
        }
        if loopback_up() != 0 {
            fail(1);
        }
        if add_route(&routes[0]) != 0 {
            fail(2);
        }
        let v6 = add_route(&routes[1]) == 0;
        let mut fds = [-1; 4];
        fds[0] = server(libc::AF_INET, libc::SOCK_DGRAM);
        fds[1] = server(libc::AF_INET, libc::SOCK_STREAM);
        if fds[0] < 0 || fds[1] < 0 {
            fail(3);
        }
        let mut count = 2;
        if v6 {
            fds[2] = server(libc::AF_INET6, libc::SOCK_DGRAM);
            fds[3] = server(libc::AF_INET6, libc::SOCK_STREAM);
            if fds[2] >= 0 && fds[3] >= 0 {
                count = 4;
            }
        }
        if send_fds(&fds[..count], 0) < 0 {
            fail(4);
        }
        for fd in fds {
            if fd >= 0 {
                libc::close(fd);
            }
        }
        loop {
            let mut req = [0u8; 2];
            let n = libc::recv(3, req.as_mut_ptr().cast(), 2, 0);
            if n == 0 || (n < 0 && *libc::__errno_location() != libc::EINTR) {
                libc::_exit(0);
            }
            if n != 2 {
                continue;
            }
            let (family, ty) = (req[0] as i32, req[1] as i32);
            let ok = (family == libc::AF_INET || family == libc::AF_INET6)
                && (ty == libc::SOCK_STREAM || ty == libc::SOCK_DGRAM);
            let fd = if ok {
                libc::socket(family, ty | libc::SOCK_CLOEXEC, 0)
            } else {
                *libc::__errno_location() = libc::EINVAL;
                -1
            };
            if fd < 0 {
                send_fds(&[], *libc::__errno_location());
            } else {
                send_fds(&[fd], 0);
                libc::close(fd);
            }
        }
    }
}

/// Sets IFF_UP on `lo`. Async-signal-safe.
fn loopback_up() -> i32 {
    // SAFETY: an ioctl pair on a socket we own, with a zeroed ifreq naming lo.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return -1;
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        ifr.ifr_name[0] = b'l' as libc::c_char;
        ifr.ifr_name[1] = b'o' as libc::c_char;
        let mut r = libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr);
        if r == 0 {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            r = libc::ioctl(s, libc::SIOCSIFFLAGS, &mut ifr);
        }
        libc::close(s);
        r
    }
}

/// Sends one prepared route request and reads its acknowledgement.
/// Async-signal-safe.
fn add_route(msg: &[u8; 36]) -> i32 {
    // SAFETY: send/recv on a netlink socket we own, from and into local buffers.
    unsafe {
        let s = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        );
        if s < 0 {
            return -1;
        }
        let mut r = -1;
        if libc::send(s, msg.as_ptr().cast(), msg.len(), 0) == msg.len() as isize {
            let mut ack = [0u8; 256];
            let n = libc::recv(s, ack.as_mut_ptr().cast(), ack.len(), 0);
            // An NLMSG_ERROR message: a 16-byte header, then the error code.
            if n >= 20 && u16::from_ne_bytes([ack[4], ack[5]]) == libc::NLMSG_ERROR as u16 {
                let code = i32::from_ne_bytes([ack[16], ack[17], ack[18], ack[19]]);
                if code == 0 {
                    r = 0;
                } else {
                    *libc::__errno_location() = -code;
                }
            }
        }
        libc::close(s);
        r
    }
}

/// A server socket on port 53 of every address. Async-signal-safe (the
/// address is encoded without allocating).
fn server(family: i32, ty: i32) -> RawFd {
    // SAFETY: socket, setsockopt and bind on a socket we own, which stays
    // open while it is borrowed for the bind.
    unsafe {
        let s = libc::socket(family, ty | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return -1;
        }
        let one: libc::c_int = 1;
        let opt =
            |level, name| libc::setsockopt(s, level, name, (&one as *const libc::c_int).cast(), 4);
        let any = if family == libc::AF_INET {
            if ty == libc::SOCK_DGRAM {
                opt(libc::IPPROTO_IP, libc::IP_PKTINFO);
            }
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            opt(libc::IPPROTO_IPV6, libc::IPV6_V6ONLY);
            if ty == libc::SOCK_DGRAM {
                opt(libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO);
                // IPv6 takes a reply's source from IPV6_PKTINFO only when it
                // is an address of the host, unless the socket is freebind;
                // the route that makes every address local is not enough.
                opt(libc::IPPROTO_IPV6, IPV6_FREEBIND);
            }
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        };
        let bound = SockAddr::from(SocketAddr::new(any, 53))
            .encode()
            .bind(BorrowedFd::borrow_raw(s));
        if bound.is_err() || (ty == libc::SOCK_STREAM && libc::listen(s, 64) != 0) {
            libc::close(s);
            return -1;
        }
        s
    }
}

/// Sends a [`Status`] with `errno` and `fds` on the channel (fd 3).
/// Async-signal-safe.
fn send_fds(fds: &[RawFd], errno: i32) -> isize {
    // SAFETY: the msghdr points at `s`, `iov` and `control`, which outlive the
    // sendmsg; CMSG_* stay within `control`, sized for the fds sent.
    unsafe {
        let s = Status { errno, step: 0 };
        let mut iov = libc::iovec {
            iov_base: (&s as *const Status).cast_mut().cast(),
            iov_len: std::mem::size_of::<Status>(),
        };
        let mut control = [0u64; 8];
        let mut hdr: libc::msghdr = std::mem::zeroed();
        hdr.msg_iov = &mut iov;
        hdr.msg_iovlen = 1;
        if !fds.is_empty() {
            let bytes = std::mem::size_of_val(fds) as u32;
            hdr.msg_control = control.as_mut_ptr().cast();
            hdr.msg_controllen = libc::CMSG_SPACE(bytes) as usize;
            let c = libc::CMSG_FIRSTHDR(&hdr);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(bytes) as usize;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr(),
                libc::CMSG_DATA(c).cast::<RawFd>(),
                fds.len(),
            );
        }
        libc::sendmsg(3, &hdr, libc::MSG_NOSIGNAL)
    }
}
