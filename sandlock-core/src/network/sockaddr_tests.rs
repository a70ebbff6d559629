use super::*;
use proptest::prelude::*;
use std::net::IpAddr;
use std::os::fd::AsFd;

fn decode(b: &[u8]) -> SockAddr {
    SockAddr::decode(b).expect("not longer than sockaddr_storage")
}

fn with_family(family: u16, rest: &[u8]) -> Vec<u8> {
    let mut b = family.to_ne_bytes().to_vec();
    b.extend_from_slice(rest);
    b
}

fn v4(ip: [u8; 4], port: u16, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len.max(IN4_LEN)];
    b[..2].copy_from_slice(&AF_INET.to_ne_bytes());
    b[2..4].copy_from_slice(&port.to_be_bytes());
    b[4..8].copy_from_slice(&ip);
    b.truncate(len);
    b
}

fn v6(ip: Ipv6Addr, port: u16, flow: u32, scope: u32, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len.max(IN6_LEN)];
    b[..2].copy_from_slice(&AF_INET6.to_ne_bytes());
    b[2..4].copy_from_slice(&port.to_be_bytes());
    b[4..8].copy_from_slice(&flow.to_ne_bytes());
    b[8..24].copy_from_slice(&ip.octets());
    b[24..28].copy_from_slice(&scope.to_ne_bytes());
    b.truncate(len);
    b
}

fn dest(a: &SockAddr) -> Option<SocketAddr> {
    match a {
        SockAddr::Inet(i) => Some(i.dest()),
        _ => None,
    }
}

#[test]
fn decodes_and_canonicalises() {
    let a = decode(&v4([10, 0, 0, 5], 443, 16));
    assert_eq!(dest(&a), Some("10.0.0.5:443".parse().unwrap()));
    let mapped: Ipv6Addr = "::ffff:10.0.0.5".parse().unwrap();
    let a = decode(&v6(mapped, 443, 0, 0, 28));
    assert_eq!(dest(&a), Some("10.0.0.5:443".parse().unwrap()));
    // Spelled as given: the kernel gets the IPv6 spelling back.
    let SockAddr::Inet(i) = &a else {
        panic!("{a:?}")
    };
    assert_eq!(i.spelled(), SocketAddr::new(IpAddr::V6(mapped), 443));
    assert_eq!(i.family(), libc::AF_INET6);
    // The unspecified address is the local host's.
    let a = decode(&v4([0; 4], 80, 16));
    assert_eq!(dest(&a), Some("127.0.0.1:80".parse().unwrap()));
    assert_eq!(a.to_string(), "127.0.0.1:80");
    for s in ["10.0.0.5:443", "[fd00::1]:8080"] {
        let s: SocketAddr = s.parse().unwrap();
        assert_eq!(
            decode(SockAddr::from(s).encode().as_bytes()),
            SockAddr::from(s)
        );
        assert_eq!(dest(&SockAddr::from(s)), Some(s));
    }
}

#[test]
fn hostile_lengths() {
    // Shorter than a family.
    assert!(matches!(decode(&[]), SockAddr::Malformed(_)));
    assert!(matches!(decode(&[2]), SockAddr::Malformed(_)));
    // AF_INET without the whole IP; with it (the kernel refuses fewer
    // than 16 bytes, and gets exactly as many back).
    let full = v4([10, 0, 0, 5], 443, 16);
    for len in 2..8 {
        assert!(
            matches!(decode(&full[..len]), SockAddr::Malformed(_)),
            "{len}"
        );
    }
    for len in 8..=16 {
        let a = decode(&full[..len]);
        assert_eq!(dest(&a), Some("10.0.0.5:443".parse().unwrap()), "{len}");
        assert_eq!(a.encode().as_bytes(), &full[..len]);
    }
    // AF_INET6 without the whole IP; without a scope id (RFC 2133).
    let ip: Ipv6Addr = "fe80::1".parse().unwrap();
    let full = v6(ip, 22, 7, 3, 28);
    for len in 2..IN6_MIN {
        assert!(
            matches!(decode(&full[..len]), SockAddr::Malformed(_)),
            "{len}"
        );
    }
    for len in IN6_MIN..IN6_LEN {
        let SockAddr::Inet(i) = decode(&full[..len]) else {
            panic!("{len}")
        };
        assert_eq!(i.spelled(), SocketAddr::V6(SocketAddrV6::new(ip, 22, 7, 0)));
    }
    let SockAddr::Inet(i) = decode(&full) else {
        panic!()
    };
    assert_eq!(i.spelled(), SocketAddr::V6(SocketAddrV6::new(ip, 22, 7, 3)));
    // Lengths beyond the structure: kept, the tail zero (the kernel reads
    // no more than the structure).
    let mut long = v4([10, 0, 0, 5], 443, MAX_LEN);
    long[16..].fill(0xaa);
    let a = decode(&long);
    assert_eq!(a.encode().as_bytes(), &v4([10, 0, 0, 5], 443, MAX_LEN)[..]);
    // Longer than any address.
    assert_eq!(SockAddr::decode(&[0u8; MAX_LEN + 1]), None);
    assert_eq!(SockAddr::decode(&vec![0xff; 4096]), None);
    assert!(Wire::new(&[0u8; MAX_LEN + 1]).is_none());
}

#[test]
fn unix_paths_names_and_unnamed() {
    // A path ends at the first NUL, as the kernel reads it.
    let a = decode(&with_family(AF_UNIX, b"/run/x.sock\0junk"));
    let SockAddr::Unix(Unix::Path(p)) = &a else {
        panic!("{a:?}")
    };
    assert_eq!(p.path(), b"/run/x.sock");
    assert_eq!(a.to_string(), "unix:/run/x.sock");
    assert_eq!(
        a.encode().as_bytes(),
        &with_family(AF_UNIX, b"/run/x.sock\0\0\0\0\0")[..]
    );
    // sun_path without a NUL: the path is every byte, and so are the
    // bytes handed on.
    let no_nul = with_family(AF_UNIX, &[b'a'; 108]);
    let a = decode(&no_nul);
    assert!(matches!(&a, SockAddr::Unix(Unix::Path(p)) if p.path() == [b'a'; 108]));
    assert_eq!(a.encode().as_bytes(), &no_nul[..]);
    let rel = decode(&with_family(AF_UNIX, b"rel"));
    assert!(matches!(&rel, SockAddr::Unix(Unix::Path(p)) if p.path() == b"rel"));
    // Abstract names keep every byte, NULs included: the length is part
    // of the name.
    for name in [&b"\0name"[..], b"\0", b"\0a\0b\0\0", b"\0\0\0"] {
        let raw = with_family(AF_UNIX, name);
        let a = decode(&raw);
        assert_eq!(a, SockAddr::Unix(Unix::Abstract(name[1..].to_vec())));
        assert_eq!(a.encode().as_bytes(), &raw[..]);
    }
    assert_eq!(
        decode(&with_family(AF_UNIX, b"\0a\0b\0\0")).to_string(),
        "unix:@a\0b"
    );
    // Unnamed: the family alone.
    let a = decode(&with_family(AF_UNIX, b""));
    assert_eq!(a, SockAddr::Unix(Unix::Unnamed));
    assert_eq!(a.encode().as_bytes(), &with_family(AF_UNIX, b"")[..]);
    // The longest address is still decoded (the kernel takes 110 bytes
    // of AF_UNIX; the supervisor resolves the path itself).
    let a = decode(&with_family(AF_UNIX, &[b'x'; MAX_LEN - 2]));
    assert!(matches!(&a, SockAddr::Unix(Unix::Path(p)) if p.path().len() == MAX_LEN - 2));
}

#[test]
fn the_supervisor_s_unix_path() {
    let a = SockAddr::unix_path(b"/proc/self/fd/7").expect("fits");
    assert_eq!(
        a.encode().as_bytes(),
        &with_family(AF_UNIX, b"/proc/self/fd/7\0")[..]
    );
    assert_eq!(decode(a.encode().as_bytes()), a);
    assert_eq!(SockAddr::unix_path(b""), None);
    assert_eq!(SockAddr::unix_path(b"a\0b"), None);
    assert!(SockAddr::unix_path(&[b'a'; 107]).is_some());
    assert_eq!(SockAddr::unix_path(&[b'a'; 108]), None);
}

#[test]
fn families_sandlock_does_not_read_are_kept() {
    // AF_UNSPEC: kept as written; a whole sockaddr_in is what an AF_INET
    // socket reads from it.
    let mut raw = v4([10, 0, 0, 9], 5353, 16);
    raw[..2].copy_from_slice(&AF_UNSPEC.to_ne_bytes());
    raw[8..].fill(0x5a);
    let a = decode(&raw);
    let SockAddr::Unspec(u) = &a else {
        panic!("{a:?}")
    };
    let i = u.as_inet().expect("a whole sockaddr_in");
    assert_eq!(i.dest(), "10.0.0.9:5353".parse().unwrap());
    assert_eq!(i.family(), libc::AF_INET);
    assert_eq!(a.encode().as_bytes(), &raw[..]);
    assert!(matches!(decode(&raw[..15]), SockAddr::Unspec(u) if u.as_inet().is_none()));
    assert!(matches!(decode(&raw[..2]), SockAddr::Unspec(u) if u.as_inet().is_none()));
    // 0.0.0.0 is the local host's, as for AF_INET; spelled as written.
    raw[4..8].fill(0);
    let SockAddr::Unspec(u) = decode(&raw) else {
        panic!()
    };
    let i = u.as_inet().expect("a whole sockaddr_in");
    assert_eq!(i.dest(), "127.0.0.1:5353".parse().unwrap());
    assert!(i.spelled().ip().is_unspecified());
    // Netlink: every byte kept (pid and groups matter to the kernel).
    let nl = with_family(libc::AF_NETLINK as u16, &[0, 0, 1, 0, 0, 0, 4, 0, 0, 0]);
    let a = decode(&nl);
    assert_eq!(a.encode().as_bytes(), &nl[..]);
    assert!(matches!(&a, SockAddr::Other(r) if r.family() == libc::AF_NETLINK as u16));
    assert_eq!(a.to_string(), "family 16");
    // Malformed: kept for the kernel to refuse.
    let short = v4([1, 2, 3, 4], 1, 7);
    let a = decode(&short);
    assert_eq!(a, SockAddr::Malformed(Raw(short.clone())));
    assert_eq!(a.encode().as_bytes(), &short[..]);
    assert!(matches!(&a, SockAddr::Malformed(r) if r.family() == AF_INET));
    assert!(matches!(decode(&[7]), SockAddr::Malformed(r) if r.family() == AF_UNSPEC));
}

#[test]
fn local_addresses_and_own_calls() {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    assert_eq!(local_addr(s.as_fd()).unwrap(), s.local_addr().unwrap());
    // Bound through the helper: a wildcard stays a wildcard (not canonical).
    // SAFETY: a fresh socket, owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0);
    // SAFETY: just created, owned here.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let any = SockAddr::from(SocketAddr::from(([0, 0, 0, 0], 0)));
    any.encode().bind(fd.as_fd()).unwrap();
    let bound = local_addr(fd.as_fd()).unwrap();
    assert!(bound.ip().is_unspecified() && bound.port() != 0);
    // Connect through the helper.
    let to = SockAddr::from(s.local_addr().unwrap());
    to.encode().connect(fd.as_fd()).unwrap();
    // A unix socket has no inet local address.
    let (u, _) = std::os::unix::net::UnixStream::pair().unwrap();
    assert_eq!(
        local_addr(u.as_fd()).unwrap_err().raw_os_error(),
        Some(libc::EAFNOSUPPORT)
    );
}

/// What the kernel reads of an address: for inet, the family, port, IP
/// (and IPv6 flow info, and scope id when the length has room); for a
/// unix path, up to the first NUL; every byte of anything else. And the
/// length.
fn kernel_view(b: &[u8]) -> (usize, Vec<u8>) {
    let family = b.get(..2).map(|f| u16::from_ne_bytes([f[0], f[1]]));
    let read = match family {
        Some(AF_INET) if b.len() >= 8 => b[..8].to_vec(),
        Some(AF_INET6) if b.len() >= IN6_LEN => b[..IN6_LEN].to_vec(),
        Some(AF_INET6) if b.len() >= IN6_MIN => b[..IN6_MIN].to_vec(),
        Some(AF_UNIX) if b.len() > 2 && b[2] != 0 => {
            let end = b[2..]
                .iter()
                .position(|&c| c == 0)
                .map_or(b.len(), |p| p + 2);
            b[..end].to_vec()
        }
        _ => b.to_vec(),
    };
    (b.len(), read)
}

/// Any typed address the decoder can produce.
fn any_addr() -> impl Strategy<Value = SockAddr> {
    let v4 = (any::<[u8; 4]>(), any::<u16>(), 8usize..=MAX_LEN).prop_map(|(ip, port, len)| {
        SockAddr::Inet(Inet {
            addr: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)),
            len,
        })
    });
    let v6 = (
        any::<[u8; 16]>(),
        any::<u16>(),
        any::<u32>(),
        any::<u32>(),
        IN6_MIN..=MAX_LEN,
    )
        .prop_map(|(ip, port, flow, scope, len)| {
            let scope = if len >= IN6_LEN { scope } else { 0 };
            SockAddr::Inet(Inet {
                addr: SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, flow, scope)),
                len,
            })
        });
    let path = (
        proptest::collection::vec(1u8..=255, 1..=MAX_LEN - 2),
        0usize..MAX_LEN,
    )
        .prop_map(|(path, extra)| {
            let len = (path.len() + 2 + extra).min(MAX_LEN);
            SockAddr::Unix(Unix::Path(UnixPath { path, len }))
        });
    let name = proptest::collection::vec(any::<u8>(), 0..=MAX_LEN - 3)
        .prop_map(|n| SockAddr::Unix(Unix::Abstract(n)));
    let opaque = proptest::collection::vec(any::<u8>(), 0..=MAX_LEN).prop_map(|b| decode(&b));
    prop_oneof![
        v4,
        v6,
        path,
        name,
        Just(SockAddr::Unix(Unix::Unnamed)),
        opaque
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any bytes decode without a panic; what is handed back to the
    /// kernel reads the same as what the workload wrote, and decodes to
    /// the same value.
    #[test]
    fn any_bytes_decode(bytes in proptest::collection::vec(any::<u8>(), 0..=MAX_LEN + 16)) {
        let Some(a) = SockAddr::decode(&bytes) else {
            prop_assert!(bytes.len() > MAX_LEN);
            return Ok(());
        };
        let wire = a.encode();
        prop_assert_eq!(kernel_view(wire.as_bytes()), kernel_view(&bytes));
        prop_assert_eq!(SockAddr::decode(wire.as_bytes()), Some(a.clone()));
        match &a {
            SockAddr::Inet(i) if i.family() == libc::AF_INET => prop_assert!(bytes.len() >= 8),
            SockAddr::Inet(_) => prop_assert!(bytes.len() >= IN6_MIN),
            SockAddr::Unix(Unix::Path(p)) => prop_assert!(!p.path().is_empty() && !p.path().contains(&0)),
            _ => {}
        }
        let _ = a.to_string();
    }

    /// decode(encode(addr)) == addr for every value the decoder produces.
    #[test]
    fn typed_round_trip(a in any_addr()) {
        prop_assert_eq!(SockAddr::decode(a.encode().as_bytes()), Some(a));
    }

    /// Every inet address, however spelled (v4, v6, v4-mapped), decides
    /// as its canonical form, and comes back spelled as it was.
    #[test]
    fn inet_round_trip(ip in any::<[u8; 16]>(), v4 in any::<[u8; 4]>(), port in any::<u16>()) {
        for a in [
            SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::from(v4)), port),
            SocketAddr::new(IpAddr::V6(Ipv4Addr::from(v4).to_ipv6_mapped()), port),
        ] {
            let want = SocketAddr::new(canonical_ip(a.ip()), port);
            let back = SockAddr::decode(SockAddr::from(a).encode().as_bytes());
            prop_assert_eq!(back.as_ref().and_then(dest), Some(want));
            prop_assert_eq!(back, Some(SockAddr::from(a)));
        }
    }
}
