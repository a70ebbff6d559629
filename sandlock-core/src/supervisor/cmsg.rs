//! The ancillary data of a message the workload sends: a walk over the
//! supervisor's copy of `msg_control`, by the kernel's own rules
//! (`CMSG_FIRSTHDR`/`CMSG_NXTHDR`: a header, its data, padding to the next
//! 8-byte boundary), and the two kinds the supervisor must touch before
//! it sends on the workload's behalf: SCM_RIGHTS (fd numbers of the
//! workload's table, to be replaced by the supervisor's duplicates) and
//! SCM_CREDENTIALS (a claim the kernel would check against the sender,
//! which is the supervisor here).
//!
//! Every length comes from the workload and is hostile: each step is
//! checked arithmetic, a `cmsg_len` shorter than a header or past the end
//! is EINVAL, and the walk always moves forward. It must never index out
//! of the buffer, loop, or accept a claim the kernel would refuse the
//! workload.

/// `struct cmsghdr` on 64-bit Linux: `size_t cmsg_len; int level; int type`.
pub(super) const HDR: usize = 16;

/// One control message: where its data sits in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Cmsg {
    pub level: i32,
    pub ty: i32,
    /// Offset of the data in the buffer.
    pub data: usize,
    /// Bytes of data (`cmsg_len` minus the header).
    pub len: usize,
}

/// `N` bytes at `base + at`, if they are all inside `buf`.
fn word<const N: usize>(buf: &[u8], base: usize, at: usize) -> Option<[u8; N]> {
    let start = base.checked_add(at)?;
    buf.get(start..start.checked_add(N)?)?.try_into().ok()
}

/// Walks the control messages in `buf`; `Err(EINVAL)` for a malformed
/// one (the kernel refuses the whole send then). A tail shorter than a
/// header ends the walk, as `CMSG_NXTHDR` does.
pub(super) fn parse(buf: &[u8]) -> Result<Vec<Cmsg>, i32> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while off.checked_add(HDR).is_some_and(|end| end <= buf.len()) {
        let len = word::<8>(buf, off, 0)
            .map(u64::from_ne_bytes)
            .ok_or(libc::EINVAL)?;
        let level = word::<4>(buf, off, 8)
            .map(i32::from_ne_bytes)
            .ok_or(libc::EINVAL)?;
        let ty = word::<4>(buf, off, 12)
            .map(i32::from_ne_bytes)
            .ok_or(libc::EINVAL)?;
        let len = usize::try_from(len).map_err(|_| libc::EINVAL)?;
        let end = off.checked_add(len).ok_or(libc::EINVAL)?;
        let (Some(data), Some(data_len)) = (off.checked_add(HDR), len.checked_sub(HDR)) else {
            return Err(libc::EINVAL);
        };
        if end > buf.len() {
            return Err(libc::EINVAL);
        }
        out.push(Cmsg {
            level,
            ty,
            data,
            len: data_len,
        });
        // The next header starts at the next 8-byte boundary; `len >= 16`,
        // so `off` strictly grows.
        off = match end.checked_add(7) {
            Some(e) => e & !7,
            None => break,
        };
    }
    Ok(out)
}

/// True for the control messages a send on the workload's behalf may
/// carry: fds and credentials (translated and checked by the caller), and
/// the per-packet source, TTL, traffic class and UDP segmentation a
/// program sets. Anything else may choose a route (IPv4 options, IPv6
/// routing headers), mark packets for policy routing, or ask for a
/// capability the supervisor has and the workload has not: refused.
pub(super) fn passes(c: &Cmsg) -> bool {
    const IPV6_HOPLIMIT: i32 = 52;
    const IPV6_TCLASS: i32 = 67;
    const UDP_SEGMENT: i32 = 103;
    match c.level {
        libc::SOL_SOCKET => c.ty == libc::SCM_RIGHTS || c.ty == libc::SCM_CREDENTIALS,
        libc::IPPROTO_IP => matches!(c.ty, libc::IP_PKTINFO | libc::IP_TOS | libc::IP_TTL),
        libc::IPPROTO_IPV6 => matches!(c.ty, libc::IPV6_PKTINFO | IPV6_HOPLIMIT | IPV6_TCLASS),
        libc::IPPROTO_UDP => c.ty == UDP_SEGMENT,
        _ => false,
    }
}

/// The fd numbers an SCM_RIGHTS message carries (whole ints only).
pub(super) fn rights(buf: &[u8], c: &Cmsg) -> Vec<(usize, i32)> {
    (0..c.len / 4)
        .filter_map(|i| {
            let at = c.data.checked_add(i.checked_mul(4)?)?;
            Some((at, i32::from_ne_bytes(word::<4>(buf, at, 0)?)))
        })
        .collect()
}

/// An SCM_CREDENTIALS claim: `struct ucred { pid_t pid; uid_t uid; gid_t gid; }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ucred {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

/// The claim in an SCM_CREDENTIALS message; EINVAL when it is not exactly
/// one `struct ucred`, as the kernel answers.
pub(super) fn ucred(buf: &[u8], c: &Cmsg) -> Result<Ucred, i32> {
    if c.len != 12 {
        return Err(libc::EINVAL);
    }
    let field = |i: usize| word::<4>(buf, c.data, i).ok_or(libc::EINVAL);
    Ok(Ucred {
        pid: i32::from_ne_bytes(field(0)?),
        uid: u32::from_ne_bytes(field(4)?),
        gid: u32::from_ne_bytes(field(8)?),
    })
}

/// Writes `cred` over the claim in `c`.
pub(super) fn set_ucred(buf: &mut [u8], c: &Cmsg, cred: Ucred) {
    let bytes = [
        cred.pid.to_ne_bytes(),
        cred.uid.to_ne_bytes(),
        cred.gid.to_ne_bytes(),
    ]
    .concat();
    if let Some(dst) = buf.get_mut(c.data..c.data.saturating_add(12)) {
        dst.copy_from_slice(&bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A well-formed control buffer of `(level, type, data)` messages.
    fn build(msgs: &[(i32, i32, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (level, ty, data) in msgs {
            out.extend_from_slice(&((HDR + data.len()) as u64).to_ne_bytes());
            out.extend_from_slice(&level.to_ne_bytes());
            out.extend_from_slice(&ty.to_ne_bytes());
            out.extend_from_slice(data);
            while out.len() % 8 != 0 {
                out.push(0);
            }
        }
        out
    }

    #[test]
    fn hostile_lengths() {
        let mut buf = build(&[(1, 1, vec![0; 8])]);
        // The wrap that used to make the walk restart forever.
        buf[..8].copy_from_slice(&(u64::MAX - 15).to_ne_bytes());
        assert_eq!(parse(&buf), Err(libc::EINVAL));
        for len in [0_u64, 1, 15, 25, u64::MAX, 1 << 63] {
            buf[..8].copy_from_slice(&len.to_ne_bytes());
            assert_eq!(parse(&buf), Err(libc::EINVAL), "cmsg_len {len}");
        }
        // A header exactly, with no data, is fine.
        assert_eq!(parse(&build(&[(1, 2, vec![])])).map(|v| v.len()), Ok(1));
        // A tail shorter than a header ends the walk.
        let mut buf = build(&[(1, 2, vec![7; 4])]);
        buf.extend_from_slice(&[0xff; 15]);
        assert_eq!(parse(&buf).map(|v| v.len()), Ok(1));
        assert_eq!(parse(&[]), Ok(vec![]));
    }

    #[test]
    fn only_known_kinds_pass() {
        let at = |level, ty| Cmsg {
            level,
            ty,
            data: 16,
            len: 4,
        };
        assert!(passes(&at(libc::SOL_SOCKET, libc::SCM_RIGHTS)));
        assert!(passes(&at(libc::IPPROTO_IP, libc::IP_PKTINFO)));
        assert!(passes(&at(libc::IPPROTO_IPV6, libc::IPV6_PKTINFO)));
        // IP_RETOPTS (a source route), an IPv6 routing header, SO_MARK.
        assert!(!passes(&at(libc::IPPROTO_IP, libc::IP_RETOPTS)));
        assert!(!passes(&at(libc::IPPROTO_IPV6, 57)));
        assert!(!passes(&at(libc::SOL_SOCKET, libc::SO_MARK)));
        assert!(!passes(&at(-1, 0)));
    }

    #[test]
    fn rights_and_credentials() {
        let fds: Vec<u8> = [3_i32, 4, 5].iter().flat_map(|f| f.to_ne_bytes()).collect();
        let cred: Vec<u8> = [
            42_i32.to_ne_bytes(),
            7_u32.to_ne_bytes(),
            8_u32.to_ne_bytes(),
        ]
        .concat();
        let mut buf = build(&[
            (libc::SOL_SOCKET, libc::SCM_RIGHTS, fds),
            (libc::SOL_SOCKET, libc::SCM_CREDENTIALS, cred),
        ]);
        let msgs = parse(&buf).expect("well-formed");
        let got: Vec<i32> = rights(&buf, &msgs[0])
            .into_iter()
            .map(|(_, fd)| fd)
            .collect();
        assert_eq!(got, [3, 4, 5]);
        let c = ucred(&buf, &msgs[1]).expect("one ucred");
        assert_eq!(
            c,
            Ucred {
                pid: 42,
                uid: 7,
                gid: 8
            }
        );
        set_ucred(&mut buf, &msgs[1], Ucred { pid: 9, ..c });
        assert_eq!(ucred(&buf, &msgs[1]).map(|c| c.pid), Ok(9));
        let short = build(&[(libc::SOL_SOCKET, libc::SCM_CREDENTIALS, vec![0; 8])]);
        let m = parse(&short).expect("well-formed");
        assert_eq!(ucred(&short, &m[0]), Err(libc::EINVAL));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any bytes: no panic, and every message found lies inside.
        #[test]
        fn any_bytes_stay_in_bounds(buf in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(msgs) = parse(&buf) {
                for m in &msgs {
                    prop_assert!(m.data >= HDR && m.data + m.len <= buf.len());
                    for (at, _) in rights(&buf, m) {
                        prop_assert!(at + 4 <= buf.len());
                    }
                }
            }
        }

        /// Whatever is built the kernel's way parses back to the same.
        #[test]
        fn built_messages_round_trip(
            msgs in proptest::collection::vec(
                (any::<i32>(), any::<i32>(), proptest::collection::vec(any::<u8>(), 0..40)),
                0..8,
            )
        ) {
            let buf = build(&msgs);
            let parsed = parse(&buf).expect("well-formed");
            prop_assert_eq!(parsed.len(), msgs.len());
            for (p, (level, ty, data)) in parsed.iter().zip(&msgs) {
                prop_assert_eq!((p.level, p.ty), (*level, *ty));
                prop_assert_eq!(&buf[p.data..p.data + p.len], &data[..]);
            }
        }

        /// A hostile length anywhere is refused or stays in bounds, never
        /// wraps.
        #[test]
        fn hostile_length_in_a_valid_buffer(
            n in 1usize..5, which in 0usize..5, len in any::<u64>()
        ) {
            let msgs: Vec<_> = (0..n).map(|i| (1, i as i32, vec![0u8; 8])).collect();
            let mut buf = build(&msgs);
            let at = (which % n) * 24;
            buf[at..at + 8].copy_from_slice(&len.to_ne_bytes());
            if let Ok(parsed) = parse(&buf) {
                for m in parsed {
                    prop_assert!(m.data + m.len <= buf.len());
                }
            }
        }
    }
}
