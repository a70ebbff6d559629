//! `--net-allow` rules and `--add-host` entries.
//!
//! Grammar of a rule: `[tcp://|udp://]` then one of `*`, `:PORTS`, `HOST`,
//! `HOST:PORTS`, `IP`, `CIDR`, `[IPv6]:PORTS`, `[IPv6/len]:PORTS`, where HOST
//! may also be `*`. Bare IPv6 literals take all ports; give a port with
//! brackets.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use super::PortSet;
use crate::{Error, Result};

const FLAG: &str = "--net-allow";

/// Transport a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    /// Stream sockets (the default).
    Tcp,
    /// Datagram sockets (`udp://`).
    Udp,
}

/// Which destinations a rule names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Any address.
    Any,
    /// A host name, resolved once at start and pinned (and reachable at
    /// whatever the DNS interceptor answers for it later).
    Name(String),
    /// `*.suffix`: the apex and every name below it, reachable at the
    /// addresses the DNS interceptor answered for such a name.
    Suffix(String),
    /// An address or network (a single address is a /32 or /128).
    Net(IpNet),
}

/// One parsed `--net-allow` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetRule {
    /// Transport.
    pub proto: Proto,
    /// Destination hosts.
    pub host: HostPattern,
    /// Destination ports.
    pub ports: PortSet,
    /// The rule as the user wrote it, for messages.
    pub spec: String,
}

impl HostPattern {
    /// Does the DNS name `name` (lower-case) fall under this pattern?
    pub fn names(&self, name: &str) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Name(n) => n == name,
            HostPattern::Suffix(s) => super::http::under_suffix(name, s),
            HostPattern::Net(_) => false,
        }
    }
}

impl NetRule {
    /// Parses one `--net-allow` value.
    pub fn parse(spec: &str) -> Result<Self> {
        let (proto, rest) = split_scheme(spec)?;
        let (host, ports) = split_host_ports(rest, spec)?;
        Ok(NetRule {
            proto,
            host,
            ports,
            spec: spec.to_string(),
        })
    }
}

impl fmt::Display for NetRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.proto {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        };
        let host = match &self.host {
            HostPattern::Any => "*".to_string(),
            HostPattern::Name(n) => n.clone(),
            HostPattern::Suffix(n) => format!("*.{n}"),
            HostPattern::Net(n) if n.prefix_len() == n.max_prefix_len() => n.addr().to_string(),
            HostPattern::Net(n) => n.to_string(),
        };
        write!(f, "{proto} {host} port {}", self.ports)
    }
}

fn split_scheme(spec: &str) -> Result<(Proto, &str)> {
    match spec.split_once("://") {
        None => Ok((Proto::Tcp, spec)),
        Some(("tcp", rest)) => Ok((Proto::Tcp, rest)),
        Some(("udp", rest)) => Ok((Proto::Udp, rest)),
        Some((scheme, _)) => Err(Error::invalid(
            FLAG,
            spec,
            format!("unknown scheme '{scheme}://' (use tcp:// or udp://)"),
        )),
    }
}

fn split_host_ports(rest: &str, spec: &str) -> Result<(HostPattern, PortSet)> {
    if rest.is_empty() {
        return Err(Error::invalid(FLAG, spec, "empty rule"));
    }
    if rest == "*" {
        return Ok((HostPattern::Any, PortSet::any()));
    }
    // A bare address or network, IPv6 included, takes every port.
    if let Some(net) = parse_net(rest) {
        return Ok((HostPattern::Net(net), PortSet::any()));
    }
    if let Some(ports) = rest.strip_prefix(':') {
        return Ok((HostPattern::Any, PortSet::parse(ports, FLAG, spec)?));
    }
    if let Some(inner) = rest.strip_prefix('[') {
        let (addr, after) = inner
            .split_once(']')
            .ok_or_else(|| Error::invalid(FLAG, spec, "missing ']' after IPv6 address"))?;
        let net = parse_net(addr).ok_or_else(|| Error::invalid(FLAG, spec, bad_network(addr)))?;
        let ports = match after {
            "" => PortSet::any(),
            _ if after.starts_with('/') => {
                return Err(Error::invalid(
                    FLAG,
                    spec,
                    format!("the prefix length goes inside the brackets: [{addr}{after}]"),
                ))
            }
            _ => match after.strip_prefix(':') {
                Some(p) => PortSet::parse(p, FLAG, spec)?,
                None => return Err(Error::invalid(FLAG, spec, "expected ':PORT' after ']'")),
            },
        };
        return Ok((HostPattern::Net(net), ports));
    }
    let (host, ports) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, PortSet::parse(p, FLAG, spec)?),
        None => (rest, PortSet::any()),
    };
    if host == "*" {
        return Ok((HostPattern::Any, ports));
    }
    if let Some(net) = parse_net(host) {
        return Ok((HostPattern::Net(net), ports));
    }
    if looks_like_address(host) {
        return Err(Error::invalid(FLAG, spec, bad_network(host)));
    }
    if host.starts_with("*.") {
        return match super::HostMatch::parse(FLAG, spec, host, false)? {
            super::HostMatch::Suffix(s) => Ok((HostPattern::Suffix(s), ports)),
            _ => Err(Error::invalid(FLAG, spec, "expected *.suffix")),
        };
    }
    validate_hostname(host).map_err(|reason| Error::invalid(FLAG, spec, reason))?;
    Ok((HostPattern::Name(host.to_ascii_lowercase()), ports))
}

/// Parses an address or CIDR network, folding IPv4-mapped IPv6 spellings
/// into IPv4 so every spelling of one address meets the same rule.
fn parse_net(text: &str) -> Option<IpNet> {
    let net = match text.parse::<IpAddr>() {
        Ok(ip) => IpNet::from(ip),
        Err(_) => text.parse::<IpNet>().ok()?,
    };
    Some(crate::network::canonical_net(net))
}

/// Why `text`, meant as an address or a network, is neither: a prefix
/// length out of range or not a number, or an address that is not one.
fn bad_network(text: &str) -> String {
    let Some((addr, len)) = text.split_once('/') else {
        return format!("'{text}' is not an IP address");
    };
    let max = match addr.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => 32,
        Ok(IpAddr::V6(_)) => 128,
        Err(_) => return format!("'{addr}' is not an IP address"),
    };
    match len.parse::<u32>() {
        Ok(n) if n > max => format!(
            "the prefix length /{n} is out of range: an IPv{} network takes /0 to /{max}",
            if max == 32 { 4 } else { 6 }
        ),
        _ => format!("'/{len}' is not a prefix length (a number from 0 to {max})"),
    }
}

/// True for text that can only have been meant as an address (digits, dots,
/// slashes, colons), so a typo like `10.0.0.0/33` is reported as a bad
/// network rather than accepted as a host name.
fn looks_like_address(host: &str) -> bool {
    host.contains('/')
        || host.contains(':')
        || host.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// Checks a DNS name: labels of letters, digits, `-` and `_`, separated by
/// dots, at most 253 bytes.
pub(crate) fn validate_hostname(host: &str) -> std::result::Result<(), String> {
    if host.is_empty() || host.len() > 253 {
        return Err(format!("'{host}' is not a valid host name"));
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    for label in host.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-');
        if !ok {
            return Err(format!("'{host}' is not a valid host name"));
        }
    }
    Ok(())
}

/// Parses a `--dns-server` value: `IP`, `IP:PORT`, `IPv6` or
/// `[IPv6]:PORT`; the port defaults to 53.
pub fn parse_dns_server(spec: &str) -> Result<std::net::SocketAddr> {
    const FLAG: &str = "--dns-server";
    if let Ok(ip) = spec.parse::<IpAddr>() {
        return Ok(std::net::SocketAddr::new(ip, 53));
    }
    if let Ok(addr) = spec.parse::<std::net::SocketAddr>() {
        if addr.port() == 0 {
            return Err(Error::invalid(
                FLAG,
                spec,
                "port 0 is not a resolver's port",
            ));
        }
        return Ok(addr);
    }
    Err(Error::invalid(
        FLAG,
        spec,
        "expected IP, IP:PORT or [IPv6]:PORT (a resolver's address, not a name)",
    ))
}

/// One `--add-host NAME:IP` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddHost {
    /// The name, lower-cased.
    pub name: String,
    /// The address it stands for inside the sandbox.
    pub addr: IpAddr,
}

impl AddHost {
    /// Parses `NAME:IP`; the IP may be IPv6, bracketed or not.
    pub fn parse(value: &str) -> Result<Self> {
        const FLAG: &str = "--add-host";
        let (name, ip) = value
            .split_once(':')
            .ok_or_else(|| Error::invalid(FLAG, value, "expected NAME:IP"))?;
        validate_hostname(name).map_err(|r| Error::invalid(FLAG, value, r))?;
        let ip = ip
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .unwrap_or(ip);
        let addr: IpAddr = ip
            .parse()
            .map_err(|_| Error::invalid(FLAG, value, format!("'{ip}' is not an IP address")))?;
        Ok(AddHost {
            name: name.to_ascii_lowercase(),
            addr: crate::network::canonical_ip(addr),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_server_values() {
        assert_eq!(
            parse_dns_server("10.0.0.53").unwrap(),
            "10.0.0.53:53".parse().unwrap()
        );
        assert_eq!(
            parse_dns_server("127.0.0.1:5353").unwrap(),
            "127.0.0.1:5353".parse().unwrap()
        );
        assert_eq!(
            parse_dns_server("::1").unwrap(),
            "[::1]:53".parse().unwrap()
        );
        assert_eq!(
            parse_dns_server("[::1]:5353").unwrap(),
            "[::1]:5353".parse().unwrap()
        );
        for bad in ["dns.test", "10.0.0.1:0", "10.0.0.1:x", ""] {
            let e = parse_dns_server(bad).unwrap_err().to_string();
            assert!(e.contains("--dns-server") && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn suffix_rules() {
        let r = NetRule::parse("*.dyn.test:443").unwrap();
        assert_eq!(r.host, HostPattern::Suffix("dyn.test".into()));
        assert!(r.host.names("a.b.dyn.test") && r.host.names("dyn.test"));
        assert!(!r.host.names("xdyn.test"));
        assert_eq!(r.to_string(), "tcp *.dyn.test port 443");
        assert!(NetRule::parse("*.test:443").is_err());
        assert!(NetRule::parse("a.*.test:443").is_err());
    }

    fn net(s: &str) -> HostPattern {
        HostPattern::Net(s.parse().unwrap())
    }

    #[test]
    fn parses_every_form() {
        let r = NetRule::parse("example.test").unwrap();
        assert_eq!(
            (r.proto, r.host, r.ports),
            (
                Proto::Tcp,
                HostPattern::Name("example.test".into()),
                PortSet::any()
            )
        );
        let r = NetRule::parse("Example.Test:80,443").unwrap();
        assert_eq!(r.host, HostPattern::Name("example.test".into()));
        assert!(r.ports.contains(80) && r.ports.contains(443) && !r.ports.contains(8080));
        assert_eq!(NetRule::parse("10.0.0.5").unwrap().host, net("10.0.0.5/32"));
        assert_eq!(
            NetRule::parse("10.0.0.0/8:22").unwrap().host,
            net("10.0.0.0/8")
        );
        assert_eq!(NetRule::parse("::1").unwrap().host, net("::1/128"));
        assert_eq!(NetRule::parse("fd00::/8").unwrap().host, net("fd00::/8"));
        let r = NetRule::parse("[::1]:8080").unwrap();
        assert_eq!(r.host, net("::1/128"));
        assert!(r.ports.contains(8080) && !r.ports.contains(80));
        let r = NetRule::parse(":53").unwrap();
        assert_eq!(r.host, HostPattern::Any);
        assert!(r.ports.contains(53));
        assert_eq!(NetRule::parse("*").unwrap().host, HostPattern::Any);
        assert_eq!(NetRule::parse("*:443").unwrap().host, HostPattern::Any);
        let r = NetRule::parse("udp://127.0.0.1:53").unwrap();
        assert_eq!(r.proto, Proto::Udp);
        assert_eq!(NetRule::parse("tcp://h:1").unwrap().proto, Proto::Tcp);
    }

    #[test]
    fn mapped_ipv6_rules_fold_to_ipv4() {
        assert_eq!(
            NetRule::parse("::ffff:10.0.0.5").unwrap().host,
            net("10.0.0.5/32")
        );
        assert_eq!(
            NetRule::parse("[::ffff:10.0.0.0/104]:1").unwrap().host,
            net("10.0.0.0/8")
        );
    }

    #[test]
    fn rejects_malformed_rules() {
        for (bad, needle) in [
            (
                "10.0.0.0/33",
                "the prefix length /33 is out of range: an IPv4 network takes /0 to /32",
            ),
            (
                "10.0.0.0/x",
                "'/x' is not a prefix length (a number from 0 to 32)",
            ),
            (
                "[::1/129]",
                "/129 is out of range: an IPv6 network takes /0 to /128",
            ),
            (
                "[::1]/64",
                "the prefix length goes inside the brackets: [::1/64]",
            ),
            ("10.0.0.300/8", "'10.0.0.300' is not an IP address"),
            ("host:0", "port 0"),
            ("host:70000", "out of range"),
            ("http://host", "unknown scheme"),
            ("[::1", "missing ']'"),
            ("[::1]443", "expected ':PORT'"),
            ("bad host", "not a valid host name"),
            ("", "empty rule"),
            ("300.1.1.1", "'300.1.1.1' is not an IP address"),
        ] {
            let e = NetRule::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains(needle) && e.contains("--net-allow") && e.contains(bad),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn add_host_forms() {
        let h = AddHost::parse("db.test:127.0.0.1").unwrap();
        assert_eq!(
            (h.name.as_str(), h.addr),
            ("db.test", "127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            AddHost::parse("v6.test:::1").unwrap().addr,
            "::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            AddHost::parse("v6.test:[::1]").unwrap().addr,
            "::1".parse::<IpAddr>().unwrap()
        );
        assert!(AddHost::parse("nohost").is_err());
        assert!(AddHost::parse("x:1.2.3")
            .unwrap_err()
            .to_string()
            .contains("--add-host"));
    }
}
