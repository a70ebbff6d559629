//! The table of redirected connections: which original destination each
//! connection arriving at the proxy was meant for.
//!
//! The supervisor records an entry keyed by the workload socket's real
//! local address *before* it connects that socket to the proxy, so the
//! entry exists by the time the proxy can accept the connection. The proxy
//! takes (removes) the entry on accept; a peer with no entry was not
//! redirected by the supervisor and is dropped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use crate::network::canonical_ip;

/// Bound on entries waiting to be accepted; beyond it a redirect fails
/// (EAGAIN) rather than letting the table grow without limit.
const MAX_PENDING: usize = 65_536;

/// Where a redirected connection was going, and who opened it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Original {
    /// The destination the workload asked for.
    pub dest: SocketAddr,
    /// The thread that called connect, for reports.
    pub pid: i32,
}

/// Pending redirects, keyed by the workload socket's local address.
#[derive(Debug, Default)]
pub struct Redirects {
    pending: Mutex<HashMap<SocketAddr, Original>>,
}

fn key(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(canonical_ip(addr.ip()), addr.port())
}

impl Redirects {
    /// Records where the connection from `local` is really going. False
    /// when the table is full.
    pub fn record(&self, local: SocketAddr, orig: Original) -> bool {
        let Ok(mut p) = self.pending.lock() else {
            return false;
        };
        if p.len() >= MAX_PENDING {
            return false;
        }
        p.insert(key(local), orig);
        true
    }

    /// Removes an entry whose connect failed.
    pub fn forget(&self, local: SocketAddr) {
        if let Ok(mut p) = self.pending.lock() {
            p.remove(&key(local));
        }
    }

    /// Takes the entry for an accepted peer.
    pub fn take(&self, peer: SocketAddr) -> Option<Original> {
        self.pending.lock().ok()?.remove(&key(peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_and_plain_spellings_meet() {
        let r = Redirects::default();
        let orig = Original {
            dest: "10.0.0.1:443".parse().unwrap(),
            pid: 7,
        };
        assert!(r.record("[::ffff:127.0.0.1]:40000".parse().unwrap(), orig));
        assert_eq!(r.take("127.0.0.1:40001".parse().unwrap()), None);
        assert_eq!(r.take("127.0.0.1:40000".parse().unwrap()), Some(orig));
        assert_eq!(r.take("127.0.0.1:40000".parse().unwrap()), None);
    }
}
