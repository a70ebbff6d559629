//! Sends with a destination (sendto, sendmsg, sendmmsg), performed by the
//! supervisor from its own copy of the message: the address it decided on,
//! the bytes, and the ancillary data (fds passed with SCM_RIGHTS become
//! supervisor-owned duplicates; an SCM_CREDENTIALS claim is checked
//! against the workload, since the kernel checks it against the
//! supervisor). Nothing is handed back to the kernel to read from the
//! workload's memory again. Every sendmsg and sendmmsg traps: a unix
//! datagram socket can address any socket file through `msg_name`.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use super::cmsg;
use super::dns;
use super::net::{decide_dest, dup_socket, is_blocking, read_addr, Dest, Kind};
use super::notif::{Notif, Reply};
use super::{unix, Supervisor};
use crate::network::{SockAddr, Unix};
use crate::sys::creds::WorkloadRights;

/// Most ancillary data copied for one message.
const MAX_CONTROL: usize = 64 * 1024;
/// Kernel limit on iovecs and on messages per sendmmsg.
const MAX_IOV: usize = 1024;
/// Most bytes copied for one stream send; the workload sees a short write.
const MAX_STREAM: usize = 1024 * 1024;
/// Most bytes copied for one datagram; larger ones fail like the kernel's.
const MAX_DGRAM: usize = 256 * 1024;
/// One message to send: the supervisor's copies of its parts.
struct Message {
    name: Option<Dest>,
    data: Vec<u8>,
    control: Vec<u8>,
    /// Duplicates of fds passed with SCM_RIGHTS, alive until sent.
    _held: Vec<OwnedFd>,
    /// Send with the workload's rights (see `WorkloadRights`).
    as_workload: bool,
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
    msg.as_workload = kind.needs_rights(sup.as_workload);
    let mut abstract_name = None;
    if let Some(name) = msg.name.take() {
        // A stream or sequenced-packet socket ignores the address unless
        // MSG_FASTOPEN makes this send a TCP connect; a socket in the DNS
        // interceptor's namespace reaches nothing but the interceptor on
        // port 53.
        let to_interceptor = dns::dns_dest(sup, &name.addr).is_some()
            && sup.dns.as_ref().is_some_and(|d| d.owns(sock));
        msg.name = Some(
            if (kind.ignores_send_dest() && !fastopen) || to_interceptor {
                name
            } else {
                abstract_name = matches!(name.addr, SockAddr::Unix(Unix::Abstract(_)))
                    .then(|| name.addr.clone());
                decide_dest(sup, n, syscall, kind, name.addr)?
            },
        );
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
        Err(e) => {
            let reply = send_error(n, &e, flags);
            if let Some(name) = abstract_name {
                unix::report_scoped(sup, n, syscall, &name, reply);
            }
            Err(reply)
        }
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

/// sendmsg(2) of the supervisor's copy, with the workload's rights. Never
/// raises SIGPIPE in the supervisor, and never sends with MSG_ZEROCOPY:
/// the kernel would read the pages after the call returned, when the
/// supervisor's copy is freed and its memory reused.
fn sendmsg_raw(sock: &OwnedFd, msg: &mut Message, flags: i32) -> io::Result<usize> {
    let flags = (flags & !libc::MSG_ZEROCOPY) | libc::MSG_NOSIGNAL;
    let mut iov = libc::iovec {
        iov_base: msg.data.as_mut_ptr().cast(),
        iov_len: msg.data.len(),
    };
    let name = msg.name.as_ref().map(|d| d.addr.encode());
    // SAFETY: msghdr is plain old data; every pointer set below refers to
    // `name` or to buffers owned by `msg`, which outlive the sendmsg call
    // (the kernel only reads msg_name).
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    if let Some(name) = &name {
        hdr.msg_name = name.as_ptr().cast_mut().cast();
        hdr.msg_namelen = name.socklen();
    }
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    if !msg.control.is_empty() {
        hdr.msg_control = msg.control.as_mut_ptr().cast();
        hdr.msg_controllen = msg.control.len();
    }
    WorkloadRights::run(msg.as_workload, || {
        // SAFETY: `hdr` is fully initialised as described above.
        let r = unsafe { libc::sendmsg(sock.as_raw_fd(), &hdr, flags) };
        usize::try_from(r).map_err(|_| io::Error::last_os_error())
    })
}

/// The socket a send addressed to `name` goes out on: diverted into the
/// DNS interceptor's namespace when it is a DNS query.
fn route(
    sup: &Supervisor,
    n: &Notif,
    syscall: &str,
    sock: OwnedFd,
    kind: Kind,
    name: Option<&SockAddr>,
    flags: i32,
) -> Result<OwnedFd, Reply> {
    let addressed = !kind.stream() || flags & libc::MSG_FASTOPEN != 0;
    match name.and_then(|a| dns::dns_dest(sup, a)) {
        Some(dest) if addressed => dns::divert(sup, n, syscall, n.int(0), sock, kind, dest),
        _ => Ok(sock),
    }
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
        let sock = route(sup, n, "sendto", sock, kind, Some(&name), n.int(3))?;
        let msg = Message {
            name: Some(Dest::plain(name)),
            data,
            control: Vec::new(),
            _held: Vec::new(),
            as_workload: true,
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
        let addr = read_addr(n, hdr.msg_name as u64, u64::from(hdr.msg_namelen))?;
        Some(Dest::plain(addr))
    };
    let data = read_iov(n, hdr.msg_iov as u64, hdr.msg_iovlen, data_cap(kind))?;
    let (control, held) = if hdr.msg_control.is_null() || hdr.msg_controllen == 0 {
        (Vec::new(), Vec::new())
    } else {
        if hdr.msg_controllen > MAX_CONTROL {
            return Err(Reply::Errno(libc::ENOBUFS));
        }
        let mut control = n
            .read(hdr.msg_control as u64, hdr.msg_controllen)
            .map_err(efault)?;
        let held = translate_control(n, &mut control)?;
        (control, held)
    };
    Ok(Message {
        name,
        data,
        control,
        _held: held,
        as_workload: true,
    })
}

/// Gathers up to `cap` bytes from the `count` iovecs at `iov`.
fn read_iov(n: &Notif, iov: u64, count: usize, cap: usize) -> Result<Vec<u8>, Reply> {
    let efault = |_| Reply::Errno(libc::EFAULT);
    if count > MAX_IOV {
        return Err(Reply::Errno(libc::EMSGSIZE));
    }
    const IOV: usize = std::mem::size_of::<libc::iovec>();
    // count <= MAX_IOV, so this cannot overflow.
    let iovs = n.read(iov, count.saturating_mul(IOV)).map_err(efault)?;
    let mut data = Vec::new();
    for (base, take) in gather_plan(&iovs, cap) {
        data.extend_from_slice(&n.read(base, take).map_err(efault)?);
    }
    Ok(data)
}

/// The reads that gather at most `cap` bytes from the `struct iovec`
/// array `raw` (base, length; a trailing partial entry is ignored, as it
/// cannot have been counted): (address, bytes) for each non-empty piece,
/// in order, their total never above `cap` whatever lengths the
/// workload wrote.
fn gather_plan(raw: &[u8], cap: usize) -> Vec<(u64, usize)> {
    const IOV: usize = std::mem::size_of::<libc::iovec>();
    let mut plan = Vec::new();
    let mut room = cap;
    for chunk in raw.chunks_exact(IOV) {
        let (base, len) = chunk.split_at(8);
        let field = |b: &[u8]| {
            u64::from_ne_bytes(
                b.get(..8)
                    .and_then(|b| b.try_into().ok())
                    .unwrap_or_default(),
            )
        };
        let take = usize::try_from(field(len)).unwrap_or(usize::MAX).min(room);
        if take > 0 {
            plan.push((field(base), take));
            room = room.saturating_sub(take);
        }
        if room == 0 {
            break;
        }
    }
    plan
}

/// Makes the ancillary data the supervisor's own (only the kinds
/// [`cmsg::passes`] names travel: EPERM for any other): the workload's fd
/// numbers in SCM_RIGHTS become duplicates the supervisor owns (returned,
/// to keep them alive until sent), and an SCM_CREDENTIALS claim is held
/// to what the kernel would let the workload claim (its own process and
/// ids) and then made in the supervisor's name, since the kernel checks it
/// against whoever sends.
fn translate_control(n: &Notif, control: &mut [u8]) -> Result<Vec<OwnedFd>, Reply> {
    let msgs = cmsg::parse(control).map_err(Reply::Errno)?;
    if !msgs.iter().all(cmsg::passes) {
        return Err(Reply::Errno(libc::EPERM));
    }
    let mut held = Vec::new();
    for m in msgs.iter().filter(|m| m.level == libc::SOL_SOCKET) {
        match m.ty {
            libc::SCM_RIGHTS => {
                for (at, fd) in cmsg::rights(control, m) {
                    let dup = n.dup_fd(fd).map_err(|_| Reply::Errno(libc::EBADF))?;
                    // `rights` only yields offsets with four bytes inside.
                    if let Some(slot) = control.get_mut(at..at.saturating_add(4)) {
                        slot.copy_from_slice(&dup.as_raw_fd().to_ne_bytes());
                    }
                    held.push(dup);
                }
            }
            libc::SCM_CREDENTIALS => {
                let claim = cmsg::ucred(control, m).map_err(Reply::Errno)?;
                let ids = super::procs::task_ids(n.pid).map_err(|e| Reply::from_io(&e))?;
                // The workload names itself by the pid it sees (in its own
                // pid namespace); the supervisor sends with its own.
                if (claim.pid != ids.tgid && claim.pid != ids.own_tgid)
                    || !ids.uids.contains(&claim.uid)
                    || !ids.gids.contains(&claim.gid)
                {
                    return Err(Reply::Errno(libc::EPERM));
                }
                let me = cmsg::Ucred {
                    pid: std::process::id() as i32,
                    ..claim
                };
                cmsg::set_ucred(control, m, me);
            }
            _ => {}
        }
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
        let name = msg.name.as_ref().map(|d| &d.addr);
        let sock = route(sup, n, "sendmsg", sock, kind, name, n.int(2))?;
        let sent = send_message(sup, n, "sendmsg", &sock, kind, msg, n.int(2))?;
        Ok(finish_send(sup, n, sock, sent, n.int(2)))
    };
    run().unwrap_or_else(|r| r)
}

pub fn sendmmsg(sup: &Arc<Supervisor>, n: &Notif) -> Reply {
    let run = || -> Result<Reply, Reply> {
        let (mut sock, kind) = dup_socket(n, n.int(0))?;
        let (vec, vlen, flags) = (n.arg(1), (n.arg(2) as u32 as usize).min(MAX_IOV), n.int(3));
        // struct mmsghdr: a msghdr, then the unsigned int msg_len (padded).
        let stride = std::mem::size_of::<libc::mmsghdr>() as u64;
        let len_off = std::mem::size_of::<libc::msghdr>() as u64;
        let mut sent = 0usize;
        for i in 0..vlen as u64 {
            let Some(entry) = i.checked_mul(stride).and_then(|o| vec.checked_add(o)) else {
                return Err(Reply::Errno(libc::EFAULT));
            };
            let outcome = read_msghdr(n, entry, kind).and_then(|msg| {
                if !n.still_valid() {
                    return Err(Reply::Done);
                }
                if i == 0 {
                    // The first message decides where a DNS socket lives.
                    sock = route(
                        sup,
                        n,
                        "sendmmsg",
                        sock.try_clone().map_err(|e| Reply::from_io(&e))?,
                        kind,
                        msg.name.as_ref().map(|d| &d.addr),
                        flags,
                    )?;
                }
                send_message(sup, n, "sendmmsg", &sock, kind, msg, flags)
            });
            match outcome {
                Ok(Sent::Now(bytes)) => {
                    let _ = n.write(entry.saturating_add(len_off), &(bytes as u32).to_ne_bytes());
                    sent = sent.saturating_add(1);
                }
                // Like the kernel: a full buffer after some messages ends
                // the call with what was sent; before any, it waits.
                Ok(Sent::WouldBlock(_)) if sent > 0 => break,
                Ok(Sent::WouldBlock(msg)) => {
                    return Ok(sup.offload(n, move |n| {
                        match send_blocking(n, &sock, msg, flags) {
                            Ok(bytes) => {
                                let _ = n.write(
                                    entry.saturating_add(len_off),
                                    &(bytes as u32).to_ne_bytes(),
                                );
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn iov(pieces: &[(u64, u64)]) -> Vec<u8> {
        pieces
            .iter()
            .flat_map(|(b, l)| [b.to_ne_bytes(), l.to_ne_bytes()].concat())
            .collect()
    }

    #[test]
    fn hostile_iovec_lengths() {
        let plan = gather_plan(&iov(&[(1, u64::MAX), (2, 5)]), 100);
        assert_eq!(plan, [(1, 100)]);
        let plan = gather_plan(&iov(&[(1, 0), (2, 3), (3, 1 << 63)]), 10);
        assert_eq!(plan, [(2, 3), (3, 7)]);
        assert!(gather_plan(&iov(&[(1, 5)]), 0).is_empty());
        // A trailing partial entry is not one.
        let mut raw = iov(&[(1, 2)]);
        raw.extend_from_slice(&[0xff; 9]);
        assert_eq!(gather_plan(&raw, 10), [(1, 2)]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn never_more_than_the_cap(
            pieces in proptest::collection::vec((any::<u64>(), any::<u64>()), 0..40),
            cap in 0usize..5_000_000,
        ) {
            let plan = gather_plan(&iov(&pieces), cap);
            let total: u128 = plan.iter().map(|&(_, t)| t as u128).sum();
            prop_assert!(total <= cap as u128);
            prop_assert!(plan.iter().all(|&(_, t)| t > 0));
        }
    }
}
