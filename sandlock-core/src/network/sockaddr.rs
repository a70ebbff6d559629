//! Decoding the raw socket addresses the workload passes to connect, sendto
//! and bind. The bytes are the supervisor's own copy; the decoded value is
//! only used to decide, and the same bytes are what the supervisor hands to
//! the kernel.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::canonical_ip;

/// A decoded socket address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SockAddr {
    /// AF_INET or AF_INET6; the IP is canonical (see [`canonical_ip`]).
    Inet(SocketAddr),
    /// AF_UNSPEC: dissolves a datagram association.
    Unspec,
    /// AF_UNIX with a path or abstract name.
    Unix(Vec<u8>),
    /// Any other family (netlink, ...), by number.
    Other(u16),
    /// Too short or inconsistent for its family.
    Malformed,
}

impl SockAddr {
    /// Decodes `bytes` (exactly what the workload passed, `addrlen` long).
    pub fn decode(bytes: &[u8]) -> SockAddr {
        if bytes.len() < 2 {
            return SockAddr::Malformed;
        }
        let family = u16::from_ne_bytes([bytes[0], bytes[1]]);
        match family as i32 {
            libc::AF_INET if bytes.len() >= 8 => {
                let port = u16::from_be_bytes([bytes[2], bytes[3]]);
                let ip = Ipv4Addr::new(bytes[4], bytes[5], bytes[6], bytes[7]);
                SockAddr::Inet(SocketAddr::new(canonical_ip(IpAddr::V4(ip)), port))
            }
            libc::AF_INET6 if bytes.len() >= 24 => {
                let port = u16::from_be_bytes([bytes[2], bytes[3]]);
                let mut o = [0u8; 16];
                o.copy_from_slice(&bytes[8..24]);
                SockAddr::Inet(SocketAddr::new(
                    canonical_ip(IpAddr::V6(Ipv6Addr::from(o))),
                    port,
                ))
            }
            libc::AF_INET | libc::AF_INET6 => SockAddr::Malformed,
            libc::AF_UNSPEC => SockAddr::Unspec,
            libc::AF_UNIX => SockAddr::Unix(bytes[2..].to_vec()),
            other => SockAddr::Other(other as u16),
        }
    }
}

/// The raw bytes of `addr` (a `sockaddr_in` or `sockaddr_in6`), for the
/// supervisor's own connects.
pub fn encode(addr: SocketAddr) -> Vec<u8> {
    match addr {
        SocketAddr::V4(a) => {
            let mut b = vec![0u8; std::mem::size_of::<libc::sockaddr_in>()];
            b[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            b[2..4].copy_from_slice(&a.port().to_be_bytes());
            b[4..8].copy_from_slice(&a.ip().octets());
            b
        }
        SocketAddr::V6(a) => {
            let mut b = vec![0u8; std::mem::size_of::<libc::sockaddr_in6>()];
            b[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            b[2..4].copy_from_slice(&a.port().to_be_bytes());
            b[8..24].copy_from_slice(&a.ip().octets());
            b
        }
    }
}

impl fmt::Display for SockAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SockAddr::Inet(a) => write!(f, "{a}"),
            SockAddr::Unspec => f.write_str("AF_UNSPEC"),
            SockAddr::Unix(p) => {
                let end = p.iter().position(|&b| b == 0).unwrap_or(p.len());
                match p.first() {
                    Some(0) => write!(f, "unix:@{}", String::from_utf8_lossy(&p[1..])),
                    _ => write!(f, "unix:{}", String::from_utf8_lossy(&p[..end])),
                }
            }
            SockAddr::Other(fam) => write!(f, "family {fam}"),
            SockAddr::Malformed => f.write_str("malformed address"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Any bytes decode to something, without a panic; an inet result
        /// needs the whole structure's bytes.
        #[test]
        fn any_bytes_decode(bytes in proptest::collection::vec(any::<u8>(), 0..140)) {
            match SockAddr::decode(&bytes) {
                SockAddr::Inet(SocketAddr::V4(_)) => prop_assert!(bytes.len() >= 8),
                SockAddr::Inet(SocketAddr::V6(_)) => prop_assert!(bytes.len() >= 24),
                SockAddr::Unix(p) => prop_assert_eq!(p.len() + 2, bytes.len()),
                _ => {}
            }
        }

        /// Every inet address, however spelled (v4, v6, v4-mapped), comes
        /// back canonical from its own encoding.
        #[test]
        fn inet_round_trip(ip in any::<[u8; 16]>(), v4 in any::<[u8; 4]>(), port in any::<u16>()) {
            for a in [
                SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port),
                SocketAddr::new(IpAddr::V4(Ipv4Addr::from(v4)), port),
                SocketAddr::new(IpAddr::V6(Ipv4Addr::from(v4).to_ipv6_mapped()), port),
            ] {
                let want = SocketAddr::new(canonical_ip(a.ip()), port);
                prop_assert_eq!(SockAddr::decode(&encode(a)), SockAddr::Inet(want));
            }
        }
    }

    fn v4(ip: [u8; 4], port: u16) -> Vec<u8> {
        let mut b = vec![0u8; 16];
        b[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        b[2..4].copy_from_slice(&port.to_be_bytes());
        b[4..8].copy_from_slice(&ip);
        b
    }

    #[test]
    fn decodes_and_canonicalises() {
        assert_eq!(
            SockAddr::decode(&v4([10, 0, 0, 5], 443)),
            SockAddr::Inet("10.0.0.5:443".parse().unwrap())
        );
        let mut b = vec![0u8; 28];
        b[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
        b[2..4].copy_from_slice(&443u16.to_be_bytes());
        b[8..24].copy_from_slice(&"::ffff:10.0.0.5".parse::<Ipv6Addr>().unwrap().octets());
        assert_eq!(
            SockAddr::decode(&b),
            SockAddr::Inet("10.0.0.5:443".parse().unwrap())
        );
        assert_eq!(SockAddr::decode(&b[..20]), SockAddr::Malformed);
        assert_eq!(SockAddr::decode(&[1]), SockAddr::Malformed);
        for a in ["10.0.0.5:443", "[fd00::1]:8080"] {
            let a: SocketAddr = a.parse().unwrap();
            assert_eq!(SockAddr::decode(&encode(a)), SockAddr::Inet(a));
        }
        assert_eq!(
            SockAddr::decode(&(libc::AF_UNSPEC as u16).to_ne_bytes()),
            SockAddr::Unspec
        );
    }
}
