//! The interceptor's servers on port 53 of every address in its namespace:
//! UDP answers go back from the address the query was sent to, so they
//! look exactly like the resolver's own; TCP carries length-prefixed
//! messages. Each query is answered on its own short-lived thread (an
//! upstream may be slow), with a bound on how many run at once.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::socket::{
    recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags, SockaddrStorage,
};

use super::responder::Responder;

/// Queries answered at once; beyond it a UDP query is dropped (the client
/// retries) and a TCP connection closed.
const MAX_IN_FLIGHT: usize = 64;
/// A TCP client that says nothing for this long is dropped.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Largest DNS message over UDP we read.
const MAX_UDP: usize = 4096;
const STACK: usize = 256 * 1024;

/// Counts in-flight answers.
#[derive(Default)]
pub(super) struct Slots(AtomicUsize);

struct Slot(Arc<Slots>);

impl Slots {
    fn take(self: &Arc<Self>) -> Option<Slot> {
        let prev = self.0.fetch_add(1, Ordering::AcqRel);
        if prev >= MAX_IN_FLIGHT {
            self.0.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Slot(Arc::clone(self)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(STACK)
        .spawn(f)
        .map(drop)
}

/// Serves UDP queries on `sock` until it is shut down.
pub(super) fn udp(
    sock: Arc<OwnedFd>,
    responder: Arc<Responder>,
    slots: Arc<Slots>,
) -> io::Result<()> {
    spawn("sandlock-dns", move || loop {
        let mut buf = vec![0u8; MAX_UDP];
        let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo);
        let (n, from, to) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = match recvmsg::<SockaddrStorage>(
                sock.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::empty(),
            ) {
                Ok(m) => m,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return,
            };
            let to = msg.cmsgs().ok().and_then(|mut c| {
                c.find_map(|c| match c {
                    ControlMessageOwned::Ipv4PacketInfo(i) => Some(Local::V4(i)),
                    ControlMessageOwned::Ipv6PacketInfo(i) => Some(Local::V6(i)),
                    _ => None,
                })
            });
            (msg.bytes, msg.address, to)
        };
        // Shut down: a zero-length read with no sender. (nix may hand back
        // an empty address rather than none: only an inet sender is one;
        // anything else, looped on, would spin this thread forever after
        // the sandbox ends.)
        let inet =
            |a: &SockaddrStorage| a.as_sockaddr_in().is_some() || a.as_sockaddr_in6().is_some();
        let Some(from) = from.filter(inet) else {
            return;
        };
        let Some(slot) = slots.take() else { continue };
        buf.truncate(n);
        let (sock, responder) = (Arc::clone(&sock), Arc::clone(&responder));
        let _ = spawn("sandlock-dns-q", move || {
            let _slot = slot;
            if let Some(answer) = responder.answer(&buf, true) {
                reply(&sock, &answer, &from, to);
            }
        });
    })
}

/// The address a UDP query was sent to: the answer's source.
#[derive(Clone, Copy)]
enum Local {
    V4(libc::in_pktinfo),
    V6(libc::in6_pktinfo),
}

fn reply(sock: &OwnedFd, answer: &[u8], to: &SockaddrStorage, from: Option<Local>) {
    let iov = [IoSlice::new(answer)];
    let v4;
    let v6;
    let cmsgs: Vec<ControlMessage> = match from {
        Some(Local::V4(i)) => {
            v4 = libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: i.ipi_addr,
                ipi_addr: i.ipi_addr,
            };
            vec![ControlMessage::Ipv4PacketInfo(&v4)]
        }
        Some(Local::V6(i)) => {
            v6 = libc::in6_pktinfo {
                ipi6_addr: i.ipi6_addr,
                ipi6_ifindex: 0,
            };
            vec![ControlMessage::Ipv6PacketInfo(&v6)]
        }
        None => Vec::new(),
    };
    let _ = sendmsg(
        sock.as_raw_fd(),
        &iov,
        &cmsgs,
        MsgFlags::MSG_NOSIGNAL,
        Some(to),
    );
}

/// Serves TCP connections on the listening `sock` until it is shut down.
pub(super) fn tcp(
    sock: Arc<OwnedFd>,
    responder: Arc<Responder>,
    slots: Arc<Slots>,
) -> io::Result<()> {
    spawn("sandlock-dns-tcp", move || loop {
        let conn = match nix::sys::socket::accept4(
            sock.as_raw_fd(),
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        ) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::ECONNABORTED) => continue,
            Err(_) => return,
        };
        // SAFETY: accept4 just returned this fd; it is owned here.
        let conn: TcpStream = unsafe { std::os::fd::FromRawFd::from_raw_fd(conn) };
        let Some(slot) = slots.take() else { continue };
        let responder = Arc::clone(&responder);
        let _ = spawn("sandlock-dns-conn", move || {
            let _slot = slot;
            let timeouts = conn
                .set_read_timeout(Some(TCP_IDLE))
                .and_then(|()| conn.set_write_timeout(Some(TCP_IDLE)));
            if timeouts.is_ok() {
                let _ = serve_conn(conn, &responder);
            }
        });
    })
}

/// Answers the length-prefixed queries of one TCP connection until it
/// ends, breaks its framing or sends something not worth answering. A
/// length prefix larger than what follows waits for the rest (up to the
/// idle timeout the caller set) and then ends the connection; nothing is
/// allocated beyond the 65535 bytes a prefix can announce.
pub(super) fn serve_conn(mut conn: impl Read + Write, responder: &Responder) -> io::Result<()> {
    loop {
        let mut len = [0u8; 2];
        conn.read_exact(&mut len)?;
        let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
        conn.read_exact(&mut query)?;
        let Some(answer) = responder.answer(&query, false) else {
            return Ok(());
        };
        // `answer` keeps TCP answers within 65535 bytes; should one not
        // be, the connection ends rather than send a wrapped length.
        let Ok(len) = u16::try_from(answer.len()) else {
            return Ok(());
        };
        let mut framed = len.to_be_bytes().to_vec();
        framed.extend_from_slice(&answer);
        conn.write_all(&framed)?;
    }
}
