//! Addresses the sandbox learned through the DNS interceptor: which names
//! each address was an answer for. The allowlist and the secrets' DNS-pin
//! gate consult them alongside the names pinned at start, which is what
//! makes `*.suffix` rules reach names nobody listed.
//!
//! Entries are only ever added (an address stays tied to the names it was
//! an answer for while the sandbox lives, as clients cache answers beyond
//! their TTL), and their number is bounded so a workload that resolves
//! endlessly cannot grow the supervisor without limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::RwLock;

use super::canonical_ip;

/// Most (address, name) pairs kept; later answers still reach the
/// workload but pin nothing new.
const MAX_PAIRS: usize = 65_536;

/// Address → the names it was resolved for inside the sandbox.
#[derive(Debug, Default)]
pub struct Learned {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_ip: HashMap<IpAddr, Vec<String>>,
    pairs: usize,
}

impl Learned {
    /// Records that `name` (lower-case, no trailing dot) resolved to `ip`.
    /// Returns false when the table is full and nothing was recorded.
    pub fn learn(&self, name: &str, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if inner
            .by_ip
            .get(&ip)
            .is_some_and(|names| names.iter().any(|n| n == name))
        {
            return true;
        }
        if inner.pairs >= MAX_PAIRS {
            return false;
        }
        inner.pairs += 1;
        inner.by_ip.entry(ip).or_default().push(name.to_string());
        true
    }

    /// True when `ip` was an answer for a name that `pred` accepts.
    pub fn any_name(&self, ip: IpAddr, pred: impl Fn(&str) -> bool) -> bool {
        let ip = canonical_ip(ip);
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner
            .by_ip
            .get(&ip)
            .is_some_and(|names| names.iter().any(|n| pred(n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_names_per_address_and_folds_spellings() {
        let l = Learned::default();
        assert!(l.learn("a.dyn.test", "10.0.0.1".parse().unwrap()));
        assert!(l.learn("a.dyn.test", "10.0.0.1".parse().unwrap()));
        assert!(l.any_name("::ffff:10.0.0.1".parse().unwrap(), |n| n == "a.dyn.test"));
        assert!(!l.any_name("10.0.0.1".parse().unwrap(), |n| n == "b.dyn.test"));
        assert!(!l.any_name("10.0.0.2".parse().unwrap(), |_| true));
        assert_eq!(l.inner.read().unwrap().pairs, 1);
    }
}
