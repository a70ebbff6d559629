//! Network decisions: names pinned at start, the virtual `/etc/hosts`, and
//! the allowlist the supervisor consults for every connect, send and bind.
//!
//! Owns the mapping from a policy's textual rules to addresses: names
//! pinned at start, and the answers the DNS interceptor handed the sandbox
//! later ([`Learned`]). It must never resolve a name on its own after start
//! (the sandbox dials what it was told) and never perform a syscall on the
//! workload's behalf; that is the supervisor's job.

mod allow;
mod learned;
mod sockaddr;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net};

pub use allow::{Decision, Egress, Pinned};
pub use learned::Learned;
pub use sockaddr::{local_addr, Inet, Raw, SockAddr, Unix, UnixPath, Unspec, Wire};

/// Folds the spellings of one address into one: IPv4-mapped IPv6 becomes
/// IPv4, and the unspecified addresses (which the kernel connects to the
/// local host) become loopback.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    let ip = match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    }
}

/// [`canonical_ip`] for networks: an IPv6 network inside `::ffff:0:0/96`
/// becomes the IPv4 network it covers.
pub fn canonical_net(net: IpNet) -> IpNet {
    if net.prefix_len() == net.max_prefix_len() {
        return IpNet::from(canonical_ip(net.addr()));
    }
    match net {
        IpNet::V6(n) if n.prefix_len() >= 96 => match n.addr().to_ipv4_mapped() {
            Some(v4) => {
                IpNet::V4(Ipv4Net::new(v4, n.prefix_len() - 96).expect("prefix <= 32")).trunc()
            }
            None => net,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_fold() {
        let v4: IpAddr = "10.0.0.5".parse().unwrap();
        assert_eq!(canonical_ip("::ffff:10.0.0.5".parse().unwrap()), v4);
        assert_eq!(canonical_ip(v4), v4);
        assert_eq!(
            canonical_ip("0.0.0.0".parse().unwrap()),
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            canonical_ip("::".parse().unwrap()),
            "::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            canonical_ip("::ffff:0.0.0.0".parse().unwrap()),
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            canonical_net("::ffff:10.0.0.0/104".parse().unwrap()),
            "10.0.0.0/8".parse::<IpNet>().unwrap()
        );
    }
}
