//! Pinned names and the egress allowlist.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use super::{canonical_ip, Learned};
use crate::policy::{HostPattern, NetPolicy, PortSet, Proto};
use crate::{Error, Result};

/// Names pinned to addresses for the life of the sandbox: `--add-host`
/// entries and every host named by a rule, resolved once at start, plus
/// the answers the DNS interceptor gives the sandbox later (shared by
/// every clone).
#[derive(Debug, Clone, Default)]
pub struct Pinned {
    entries: Vec<(String, Vec<IpAddr>)>,
    learned: Arc<Learned>,
}

impl Pinned {
    /// Pins `--add-host` names first, then resolves every rule host that
    /// they do not cover: `--net-allow` names, then `extra` (flag, name)
    /// pairs from other rules. `localhost` is always loopback.
    pub fn resolve(net: &NetPolicy, extra: &[(&'static str, &str)]) -> Result<Pinned> {
        Self::resolve_on(net, extra, false)
    }

    /// [`Pinned::resolve`], with `plain` resolving names from `/etc/hosts`
    /// and DNS only, never through libc's NSS (see [`crate::Ground`]).
    fn resolve_on(net: &NetPolicy, extra: &[(&'static str, &str)], plain: bool) -> Result<Pinned> {
        let mut pinned = Pinned::default();
        for h in &net.hosts {
            pinned.add(&h.name, h.addr);
        }
        let rule_names = net.allow.iter().filter_map(|rule| match &rule.host {
            HostPattern::Name(name) => Some(("--net-allow", name.as_str())),
            _ => None,
        });
        for (flag, name) in rule_names.chain(extra.iter().copied()) {
            pinned.pin(flag, name, plain)?;
        }
        Ok(pinned)
    }

    /// Pins every name a policy's rules mention: `--add-host`, then
    /// `--net-allow` hosts, then the concrete hosts of `--http-allow` and
    /// `--secret`.
    pub fn for_policy(policy: &crate::Policy) -> Result<Pinned> {
        Self::for_policy_on(policy, false)
    }

    /// [`Pinned::for_policy`], resolving without NSS when `plain`.
    pub fn for_policy_on(policy: &crate::Policy, plain: bool) -> Result<Pinned> {
        fn exact(h: &crate::policy::HostMatch) -> Option<&str> {
            match h {
                crate::policy::HostMatch::Exact(name) => Some(name.as_str()),
                _ => None,
            }
        }
        let http_names = policy
            .http
            .allow
            .iter()
            .filter_map(|r| exact(&r.host).map(|n| ("--http-allow", n)));
        let secret_names = policy
            .secrets
            .iter()
            .flat_map(|s| s.hosts.iter().filter_map(exact).map(|n| ("--secret", n)));
        let http_names: Vec<(&'static str, &str)> = http_names.chain(secret_names).collect();
        Pinned::resolve_on(&policy.net, &http_names, plain)
    }

    fn pin(&mut self, flag: &'static str, name: &str, plain: bool) -> Result<()> {
        if self.lookup(name).is_some() {
            return Ok(());
        }
        if name == "localhost" {
            self.add(name, IpAddr::from([127, 0, 0, 1]));
            self.add(name, "::1".parse().expect("literal"));
            return Ok(());
        }
        let fail = |reason: String| Error::Resolve {
            flag,
            host: name.to_string(),
            reason,
        };
        let ips: Vec<IpAddr> = match plain {
            true => crate::dns::lookup(name).map_err(fail)?,
            false => (name, 0u16)
                .to_socket_addrs()
                .map_err(|e| fail(e.to_string()))?
                .map(|a| a.ip())
                .collect(),
        };
        let mut any = false;
        for ip in ips {
            self.add(name, ip);
            any = true;
        }
        if !any {
            return Err(fail("no addresses".into()));
        }
        Ok(())
    }

    fn add(&mut self, name: &str, ip: IpAddr) {
        let ip = canonical_ip(ip);
        match self.entries.iter_mut().find(|(n, _)| n == name) {
            Some((_, ips)) if !ips.contains(&ip) => ips.push(ip),
            Some(_) => {}
            None => self.entries.push((name.to_string(), vec![ip])),
        }
    }

    /// The pinned addresses of `name`, if it is pinned.
    pub fn lookup(&self, name: &str) -> Option<&[IpAddr]> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, ips)| ips.as_slice())
    }

    /// Every (name, addresses) pair pinned at start, in pinning order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &[IpAddr])> {
        self.entries
            .iter()
            .map(|(n, ips)| (n.as_str(), ips.as_slice()))
    }

    /// The answers learned through the DNS interceptor.
    pub fn learned(&self) -> &Arc<Learned> {
        &self.learned
    }

    /// True when `ip` was pinned at start, or answered by the DNS
    /// interceptor, for a name that `pred` accepts.
    pub fn known_as(&self, ip: IpAddr, pred: impl Fn(&str) -> bool) -> bool {
        let ip = canonical_ip(ip);
        self.entries
            .iter()
            .any(|(n, ips)| ips.contains(&ip) && pred(n))
            || self.learned.any_name(ip, pred)
    }

    /// Content of the sandbox's virtual `/etc/hosts`: localhost lines and
    /// one line per pinned address.
    pub fn hosts_file(&self) -> Vec<u8> {
        let mut out = String::from(
            "# sandlock virtual /etc/hosts: localhost and the names pinned for this sandbox\n\
             127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        );
        for (name, ips) in &self.entries {
            if name == "localhost" {
                continue;
            }
            for ip in ips {
                out.push_str(&format!("{ip}\t{name}\n"));
            }
        }
        out.into_bytes()
    }
}

/// The outcome of an egress check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed by the rule quoted.
    Allow(String),
    /// Denied, with the reason quoted to the user.
    Deny(&'static str),
}

impl Decision {
    /// True for [`Decision::Allow`].
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }
}

#[derive(Debug, Clone)]
struct Rule {
    proto: Proto,
    host: HostPattern,
    ports: PortSet,
    spec: String,
}

/// The allowlist, consulted on every connect, send and bind. A rule naming
/// hosts covers the addresses pinned for them at start and those the DNS
/// interceptor answered for them since.
#[derive(Debug, Clone, Default)]
pub struct Egress {
    rules: Vec<Rule>,
    bind: PortSet,
    pinned: Pinned,
}

impl Egress {
    /// The allowlist of a policy's rules, over its pinned names.
    pub fn new(net: &NetPolicy, pinned: &Pinned) -> Egress {
        let rules = net
            .allow
            .iter()
            .map(|r| Rule {
                proto: r.proto,
                host: r.host.clone(),
                ports: r.ports.clone(),
                spec: r.spec.clone(),
            })
            .collect();
        Egress {
            rules,
            bind: net.bind.clone(),
            pinned: pinned.clone(),
        }
    }

    /// May the workload send to `dest` over `proto`?
    pub fn check(&self, proto: Proto, dest: SocketAddr) -> Decision {
        let ip = canonical_ip(dest.ip());
        for r in &self.rules {
            if r.proto != proto || !r.ports.contains(dest.port()) {
                continue;
            }
            let host_ok = match &r.host {
                HostPattern::Any => true,
                HostPattern::Net(n) => n.contains(&ip),
                names => self.pinned.known_as(ip, |name| names.names(name)),
            };
            if host_ok {
                return Decision::Allow(r.spec.clone());
            }
        }
        Decision::Deny("not in --net-allow")
    }

    /// May the workload bind (port != 0) or listen on `port`?
    pub fn check_bind(&self, port: u16) -> Decision {
        if self.bind.contains(port) {
            Decision::Allow(format!("--net-allow-bind {}", self.bind))
        } else {
            Decision::Deny("not in --net-allow-bind")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{AddHost, NetRule};

    fn policy(rules: &[&str], hosts: &[&str]) -> NetPolicy {
        NetPolicy {
            allow: rules.iter().map(|r| NetRule::parse(r).unwrap()).collect(),
            hosts: hosts.iter().map(|h| AddHost::parse(h).unwrap()).collect(),
            bind: PortSet::parse("8080,9000-9001", "--net-allow-bind", "").unwrap(),
            ..NetPolicy::default()
        }
    }

    fn allowed(e: &Egress, proto: Proto, a: &str) -> bool {
        matches!(e.check(proto, a.parse().unwrap()), Decision::Allow(_))
    }

    #[test]
    fn names_are_pinned_and_matched() {
        let net = policy(
            &["api.test:443", "udp://dns.test:53", "10.1.0.0/16:22"],
            &["api.test:127.0.0.2", "dns.test:127.0.0.3"],
        );
        let pinned = Pinned::resolve(&net, &[]).unwrap();
        let e = Egress::new(&net, &pinned);
        assert!(allowed(&e, Proto::Tcp, "127.0.0.2:443"));
        assert!(allowed(&e, Proto::Tcp, "[::ffff:127.0.0.2]:443"));
        assert!(!allowed(&e, Proto::Tcp, "127.0.0.2:80"));
        assert!(!allowed(&e, Proto::Udp, "127.0.0.2:443"));
        assert!(allowed(&e, Proto::Udp, "127.0.0.3:53"));
        assert!(!allowed(&e, Proto::Tcp, "127.0.0.3:53"));
        assert!(allowed(&e, Proto::Tcp, "10.1.200.3:22"));
        assert!(!allowed(&e, Proto::Tcp, "10.2.0.1:22"));
        assert_eq!(
            e.check(Proto::Tcp, "10.2.0.1:22".parse().unwrap()),
            Decision::Deny("not in --net-allow")
        );
        let hosts = String::from_utf8(pinned.hosts_file()).unwrap();
        assert!(
            hosts.contains("127.0.0.2\tapi.test\n") && hosts.contains("127.0.0.1\tlocalhost\n")
        );
    }

    #[test]
    fn suffix_rules_cover_learned_answers_only() {
        let net = policy(&["*.dyn.test:443"], &[]);
        let pinned = Pinned::resolve(&net, &[]).unwrap();
        let e = Egress::new(&net, &pinned);
        assert!(!allowed(&e, Proto::Tcp, "10.9.0.1:443"));
        pinned
            .learned()
            .learn("a.dyn.test", "10.9.0.1".parse().unwrap());
        pinned
            .learned()
            .learn("evil.test", "10.9.0.2".parse().unwrap());
        assert!(allowed(&e, Proto::Tcp, "10.9.0.1:443"));
        assert!(!allowed(&e, Proto::Tcp, "10.9.0.1:80"));
        assert!(!allowed(&e, Proto::Tcp, "10.9.0.2:443"));
        assert!(pinned.known_as("10.9.0.1".parse().unwrap(), |n| n == "a.dyn.test"));
    }

    #[test]
    fn unspecified_address_is_loopback() {
        let net = policy(&["127.0.0.1:8080"], &[]);
        let e = Egress::new(&net, &Pinned::resolve(&net, &[]).unwrap());
        assert!(allowed(&e, Proto::Tcp, "0.0.0.0:8080"));
        assert!(!allowed(&e, Proto::Tcp, "[::]:8080"));
    }

    #[test]
    fn bind_ports() {
        let e = Egress::new(&policy(&[], &[]), &Pinned::default());
        assert!(matches!(e.check_bind(9001), Decision::Allow(_)));
        assert_eq!(
            e.check_bind(9002),
            Decision::Deny("not in --net-allow-bind")
        );
    }
}
