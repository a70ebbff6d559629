//! Socket addresses: the one place that turns the bytes of a `struct
//! sockaddr` into a value and back.
//!
//! A workload's address is read from its memory once (the supervisor's
//! `read_addr`), decoded here once into a [`SockAddr`], and that value is
//! what every later step looks at: the DNS diversion, the proxy redirect,
//! the allowlist, the unix path resolution, the report. When the
//! supervisor performs the call on its own duplicate of the socket, it
//! hands the kernel [`SockAddr::encode`]: the bytes of the very value it
//! decided on, never the workload's memory again. The supervisor's own
//! addresses (the proxy's listener, a loopback bind, a pinned unix socket,
//! the DNS interceptor's servers) are encoded here too, and local
//! addresses are read back with [`local_addr`].
//!
//! Every length comes from the workload and is hostile: decoding indexes
//! nothing it has not checked, and whatever it is given it returns a
//! value (fail closed: [`SockAddr::Malformed`] is never allowed anywhere,
//! only handed to the kernel to refuse).
//!
//! What sandlock interprets (inet and unix addresses) is encoded from the
//! decoded value, with the length the workload gave, so the kernel reads
//! what it would have read from the workload's bytes. What it does not
//! interpret (other families, malformed addresses, AF_UNSPEC) keeps the
//! workload's bytes, copied once, and is handed on as is.

// Lengths are the workload's: every step is checked.
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd};

use super::canonical_ip;

/// Largest socket address the kernel takes (`sizeof(struct
/// sockaddr_storage)`); a longer `addrlen` is EINVAL.
pub const MAX_LEN: usize = 128;
const _: () = assert!(MAX_LEN == std::mem::size_of::<libc::sockaddr_storage>());
/// `sizeof(sa_family_t)`, where every address starts.
const FAMILY: usize = 2;
/// `sizeof(struct sockaddr_in)`.
const IN4_LEN: usize = 16;
/// `SIN6_LEN_RFC2133`: an AF_INET6 address without `sin6_scope_id`.
const IN6_MIN: usize = 24;
/// `sizeof(struct sockaddr_in6)`.
const IN6_LEN: usize = 28;
/// `sizeof(struct sockaddr_un)`.
const UN_LEN: usize = 110;

const AF_INET: u16 = libc::AF_INET as u16;
const AF_INET6: u16 = libc::AF_INET6 as u16;
const AF_UNIX: u16 = libc::AF_UNIX as u16;
const AF_UNSPEC: u16 = libc::AF_UNSPEC as u16;

/// The bytes of a socket address as the kernel takes them: at most
/// [`MAX_LEN`], in a buffer of its own (no allocation, so the DNS
/// interceptor's forked helper may build one).
#[derive(Clone, Copy)]
#[repr(C, align(8))]
pub struct Wire {
    bytes: [u8; MAX_LEN],
    len: usize,
}

impl Wire {
    const EMPTY: Wire = Wire {
        bytes: [0; MAX_LEN],
        len: 0,
    };

    /// A copy of `bytes`; `None` when longer than any socket address.
    pub fn new(bytes: &[u8]) -> Option<Wire> {
        let mut w = Wire::EMPTY;
        w.bytes.get_mut(..bytes.len())?.copy_from_slice(bytes);
        w.len = bytes.len();
        Some(w)
    }

    /// `len` zero bytes (`len` at most [`MAX_LEN`]) starting with `family`
    /// (when `len` has room for it).
    fn zeroed(family: u16, len: usize) -> Wire {
        let mut w = Wire::EMPTY;
        w.len = len.min(MAX_LEN);
        w.put(0, &family.to_ne_bytes());
        w
    }

    /// Writes `data` at `at`, as far as the address's length reaches.
    fn put(&mut self, at: usize, data: &[u8]) {
        let Some(room) = self.as_mut().get_mut(at..) else {
            return;
        };
        let n = room.len().min(data.len());
        if let (Some(dst), Some(src)) = (room.get_mut(..n), data.get(..n)) {
            dst.copy_from_slice(src);
        }
    }

    fn as_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        self.bytes.get_mut(..len).unwrap_or_default()
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }

    /// The address for a syscall; valid for [`Wire::socklen`] bytes.
    pub fn as_ptr(&self) -> *const libc::sockaddr {
        self.bytes.as_ptr().cast()
    }

    pub fn socklen(&self) -> libc::socklen_t {
        // At most MAX_LEN.
        self.len as libc::socklen_t
    }

    /// connect(2) of `fd` to this address.
    pub fn connect(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        // SAFETY: our own buffer, valid for the length passed.
        let r = unsafe { libc::connect(fd.as_raw_fd(), self.as_ptr(), self.socklen()) };
        ok(r)
    }

    /// bind(2) of `fd` to this address. Async-signal-safe.
    pub fn bind(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        // SAFETY: our own buffer, valid for the length passed.
        let r = unsafe { libc::bind(fd.as_raw_fd(), self.as_ptr(), self.socklen()) };
        ok(r)
    }
}

fn ok(r: libc::c_int) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The bytes of an address sandlock does not interpret, as the workload
/// wrote them (at most [`MAX_LEN`]: only [`SockAddr::decode`] makes one).
#[derive(Clone, PartialEq, Eq)]
pub struct Raw(Vec<u8>);

impl Raw {
    /// The family field; 0 (AF_UNSPEC) when too short to hold one.
    pub fn family(&self) -> u16 {
        field::<2>(&self.0, 0).map_or(AF_UNSPEC, u16::from_ne_bytes)
    }

    fn wire(&self) -> Wire {
        // Never longer than MAX_LEN: decode made it.
        Wire::new(&self.0).unwrap_or(Wire::EMPTY)
    }
}

impl fmt::Debug for Raw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Raw({:02x?})", self.0)
    }
}

impl PartialEq for Wire {
    fn eq(&self, other: &Wire) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Wire {}

impl fmt::Debug for Wire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Wire({:02x?})", self.as_bytes())
    }
}

/// A decoded socket address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SockAddr {
    /// AF_INET or AF_INET6 with at least the port and the IP.
    Inet(Inet),
    /// AF_UNIX.
    Unix(Unix),
    /// AF_UNSPEC: dissolves an association, but see [`Unspec::inet`].
    Unspec(Unspec),
    /// Any other family (netlink, ...), as the workload wrote it.
    Other(Raw),
    /// Too short for its family, or for any family; as the workload wrote
    /// it, for the kernel to refuse.
    Malformed(Raw),
}

/// An inet address as spelled (an IPv4-mapped IPv6 address stays IPv6,
/// flow info and scope id kept), and the length it was given with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inet {
    addr: SocketAddr,
    len: usize,
}

impl Inet {
    /// The destination to decide on: the IP canonical (see
    /// [`canonical_ip`]: IPv4-mapped IPv6 is IPv4, unspecified is
    /// loopback), without flow info or scope id.
    pub fn dest(&self) -> SocketAddr {
        SocketAddr::new(canonical_ip(self.addr.ip()), self.addr.port())
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address as the workload spelled it.
    pub fn spelled(&self) -> SocketAddr {
        self.addr
    }

    /// AF_INET or AF_INET6, as spelled.
    pub fn family(&self) -> i32 {
        match self.addr {
            SocketAddr::V4(_) => libc::AF_INET,
            SocketAddr::V6(_) => libc::AF_INET6,
        }
    }
}

/// An AF_UNIX address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unix {
    /// A socket file.
    Path(UnixPath),
    /// An abstract name: the bytes after the leading NUL, every one of
    /// them (the kernel takes the length as part of the name).
    Abstract(Vec<u8>),
    /// No name at all (`addrlen` is just the family).
    Unnamed,
}

/// A socket file's path: what the kernel reads of `sun_path`, up to the
/// first NUL (never empty, never with a NUL), and the length it was given
/// with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixPath {
    path: Vec<u8>,
    len: usize,
}

impl UnixPath {
    pub fn path(&self) -> &[u8] {
        &self.path
    }
}

/// An AF_UNSPEC address. The kernel reads no more than its family, but
/// for a UDP send on an AF_INET socket (and a bind of one, to the
/// wildcard address) it reads it as if it were AF_INET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unspec {
    raw: Raw,
    inet: Option<SocketAddrV4>,
}

impl Unspec {
    /// What an AF_INET socket reads from it as AF_INET: the address is a
    /// whole `sockaddr_in`.
    pub fn as_inet(&self) -> Option<Inet> {
        self.inet.map(|a| Inet {
            addr: SocketAddr::V4(a),
            len: self.raw.0.len(),
        })
    }
}

/// `N` bytes at `at`, if they are all inside `b`.
fn field<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

impl SockAddr {
    /// Largest socket address the kernel takes; see [`MAX_LEN`].
    pub const MAX_LEN: usize = MAX_LEN;

    /// Decodes `bytes` (exactly what the workload passed, `addrlen`
    /// long). `None` when longer than any socket address: the kernel
    /// refuses such an `addrlen` (EINVAL) before reading it.
    pub fn decode(bytes: &[u8]) -> Option<SockAddr> {
        let len = bytes.len();
        if len > MAX_LEN {
            return None;
        }
        let raw = || Raw(bytes.to_vec());
        let port = || field::<2>(bytes, 2).map(u16::from_be_bytes);
        let word = |at| field::<4>(bytes, at).map(u32::from_ne_bytes);
        Some(match field::<2>(bytes, 0).map(u16::from_ne_bytes) {
            None => SockAddr::Malformed(raw()),
            Some(AF_INET) => match (port(), field::<4>(bytes, 4)) {
                (Some(port), Some(ip)) => SockAddr::Inet(Inet {
                    addr: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)),
                    len,
                }),
                _ => SockAddr::Malformed(raw()),
            },
            Some(AF_INET6) if len >= IN6_MIN => {
                match (port(), word(4), field::<16>(bytes, 8)) {
                    (Some(port), Some(flow), Some(ip)) => SockAddr::Inet(Inet {
                        addr: SocketAddr::V6(SocketAddrV6::new(
                            Ipv6Addr::from(ip),
                            port,
                            flow,
                            // Without its last field the kernel takes no
                            // scope id.
                            word(IN6_MIN).unwrap_or(0),
                        )),
                        len,
                    }),
                    _ => SockAddr::Malformed(raw()),
                }
            }
            Some(AF_INET6) => SockAddr::Malformed(raw()),
            Some(AF_UNIX) => SockAddr::Unix(match bytes.get(FAMILY..).unwrap_or_default() {
                [] => Unix::Unnamed,
                [0, name @ ..] => Unix::Abstract(name.to_vec()),
                sun_path => Unix::Path(UnixPath {
                    path: sun_path
                        .split(|&b| b == 0)
                        .next()
                        .unwrap_or_default()
                        .to_vec(),
                    len,
                }),
            }),
            Some(AF_UNSPEC) => SockAddr::Unspec(Unspec {
                raw: raw(),
                inet: match (port(), field::<4>(bytes, 4)) {
                    (Some(port), Some(ip)) if len >= IN4_LEN => {
                        Some(SocketAddrV4::new(Ipv4Addr::from(ip), port))
                    }
                    _ => None,
                },
            }),
            Some(_) => SockAddr::Other(raw()),
        })
    }

    /// The bytes to hand the kernel: what it reads is what was decided
    /// on. Allocation-free.
    pub fn encode(&self) -> Wire {
        match self {
            SockAddr::Inet(Inet { addr, len }) => {
                let mut w;
                match addr {
                    SocketAddr::V4(a) => {
                        w = Wire::zeroed(AF_INET, *len);
                        w.put(4, &a.ip().octets());
                    }
                    SocketAddr::V6(a) => {
                        w = Wire::zeroed(AF_INET6, *len);
                        w.put(4, &a.flowinfo().to_ne_bytes());
                        w.put(8, &a.ip().octets());
                        w.put(IN6_MIN, &a.scope_id().to_ne_bytes());
                    }
                }
                w.put(2, &addr.port().to_be_bytes());
                w
            }
            SockAddr::Unix(Unix::Unnamed) => Wire::zeroed(AF_UNIX, FAMILY),
            SockAddr::Unix(Unix::Abstract(name)) => {
                let mut w =
                    Wire::zeroed(AF_UNIX, FAMILY.saturating_add(1).saturating_add(name.len()));
                w.put(FAMILY.saturating_add(1), name);
                w
            }
            SockAddr::Unix(Unix::Path(p)) => {
                let mut w = Wire::zeroed(AF_UNIX, p.len);
                w.put(FAMILY, &p.path);
                w
            }
            SockAddr::Unspec(u) => u.raw.wire(),
            SockAddr::Other(r) | SockAddr::Malformed(r) => r.wire(),
        }
    }

    /// The address of the socket file `path` (no NUL in it, short enough
    /// for `sun_path` with its terminating NUL), for the supervisor's own
    /// connects.
    pub fn unix_path(path: &[u8]) -> Option<SockAddr> {
        let len = FAMILY.checked_add(path.len())?.checked_add(1)?;
        if path.is_empty() || path.contains(&0) || len > UN_LEN {
            return None;
        }
        Some(SockAddr::Unix(Unix::Path(UnixPath {
            path: path.to_vec(),
            len,
        })))
    }
}

impl From<SocketAddr> for SockAddr {
    /// The supervisor's own inet address (`sockaddr_in` or `sockaddr_in6`).
    fn from(addr: SocketAddr) -> SockAddr {
        let len = match addr {
            SocketAddr::V4(_) => IN4_LEN,
            SocketAddr::V6(_) => IN6_LEN,
        };
        SockAddr::Inet(Inet { addr, len })
    }
}

/// The local address of the inet socket `fd` (getsockname(2)), as the
/// kernel reports it: not canonical, without flow info or scope id.
pub fn local_addr(fd: BorrowedFd<'_>) -> io::Result<SocketAddr> {
    let mut w = Wire::EMPTY;
    let mut len = MAX_LEN as libc::socklen_t;
    // SAFETY: getsockname writes at most `len` bytes into our buffer.
    let r = unsafe { libc::getsockname(fd.as_raw_fd(), w.bytes.as_mut_ptr().cast(), &mut len) };
    ok(r)?;
    w.len = (len as usize).min(MAX_LEN);
    match SockAddr::decode(w.as_bytes()) {
        Some(SockAddr::Inet(a)) => Ok(SocketAddr::new(a.addr.ip(), a.addr.port())),
        _ => Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT)),
    }
}

impl fmt::Display for UnixPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unix:{}", String::from_utf8_lossy(&self.path))
    }
}

impl fmt::Display for SockAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SockAddr::Inet(a) => write!(f, "{}", a.dest()),
            SockAddr::Unix(Unix::Path(p)) => write!(f, "{p}"),
            SockAddr::Unix(Unix::Abstract(name)) => {
                let name = String::from_utf8_lossy(name);
                write!(f, "unix:@{}", name.trim_end_matches('\0'))
            }
            SockAddr::Unix(Unix::Unnamed) => f.write_str("unix:"),
            SockAddr::Unspec(_) => f.write_str("AF_UNSPEC"),
            SockAddr::Other(r) => write!(f, "family {}", r.family()),
            SockAddr::Malformed(_) => f.write_str("malformed address"),
        }
    }
}

#[cfg(test)]
#[path = "sockaddr_tests.rs"]
mod tests;
