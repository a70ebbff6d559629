//! Leaf certificates for intercepted TLS connections, and the cache of the
//! rustls server configurations that present them.

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};

use lru::LruCache;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::crypto::CryptoProvider;
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

use super::{random_serial, tls, Authority};
use crate::{Error, Result};

/// How far a leaf is backdated: enough for a client clock a little behind
/// ours, short enough that the leaf cannot pre-date the sandbox meaningfully.
const BACKDATE: Duration = Duration::seconds(10);
/// A leaf outlives any single connection many times over, and a short life
/// limits what a leaked leaf key is worth.
const LIFETIME: Duration = Duration::hours(24);
/// A cached leaf with less validity than this is re-minted, so no handshake
/// is ever served a leaf about to expire.
const REFRESH_MARGIN: Duration = Duration::hours(1);
/// ALPN offered to the workload, preferred first.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];
/// RFC 5280's ub-common-name; longer names go in the SAN only.
const MAX_CN_LEN: usize = 64;

/// The name a leaf is minted for: the TLS SNI, or the original destination IP
/// when the client sent no SNI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LeafName {
    /// A DNS name, lower-case, without a trailing dot.
    Dns(String),
    /// An IP address, matched by an iPAddress SAN.
    Ip(IpAddr),
}

impl LeafName {
    /// Normalises an SNI value into the form the cache is keyed by: lower
    /// case, no trailing dot, and an IP literal (which some clients send as
    /// SNI) becomes [`LeafName::Ip`], since a DNS SAN would not match it.
    pub fn from_sni(sni: &str) -> LeafName {
        let name = sni.strip_suffix('.').unwrap_or(sni);
        match name.parse::<IpAddr>() {
            Ok(ip) => LeafName::Ip(ip),
            Err(_) => LeafName::Dns(name.to_ascii_lowercase()),
        }
    }
}

impl fmt::Display for LeafName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeafName::Dns(name) => f.write_str(name),
            LeafName::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// A cached configuration and the moment its leaf stops being valid.
struct Cached {
    config: Arc<ServerConfig>,
    not_after: OffsetDateTime,
}

/// Mints and caches one rustls [`ServerConfig`] per [`LeafName`].
///
/// Shared by every proxy task: the cache sits behind a mutex that is never
/// held while minting, so a slow mint does not stall other handshakes (two
/// tasks racing on a new name may both mint; the last one wins the slot).
pub struct Leaves {
    authority: Arc<Authority>,
    provider: Arc<CryptoProvider>,
    cache: Mutex<LruCache<LeafName, Cached>>,
}

impl Leaves {
    /// Creates an empty cache holding at most `capacity` configurations
    /// (least recently used are dropped first; 0 is treated as 1).
    pub fn new(authority: Arc<Authority>, capacity: usize) -> Leaves {
        Leaves {
            authority,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            cache: Mutex::new(LruCache::new(
                NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    /// A server configuration presenting a leaf for `name`, chained to the
    /// CA, offering ALPN `h2` then `http/1.1`, TLS 1.2 and 1.3 (ring).
    ///
    /// Cached per name; a leaf with less than an hour left is replaced.
    /// Failures are not cached, so a transient one is retried next time.
    pub fn server_config(&self, name: &LeafName) -> Result<Arc<ServerConfig>> {
        self.server_config_at(name, OffsetDateTime::now_utc())
    }

    fn server_config_at(&self, name: &LeafName, now: OffsetDateTime) -> Result<Arc<ServerConfig>> {
        if let Some(cached) = self.lock().get(name) {
            if cached.not_after - now >= REFRESH_MARGIN {
                return Ok(Arc::clone(&cached.config));
            }
        }
        let leaf = mint(&self.authority, name, now)?;
        let config = self.build_config(name, leaf.cert, leaf.key)?;
        self.lock().put(
            name.clone(),
            Cached {
                config: Arc::clone(&config),
                not_after: leaf.not_after,
            },
        );
        Ok(config)
    }

    fn build_config(
        &self,
        name: &LeafName,
        cert: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Arc<ServerConfig>> {
        let chain = vec![cert, self.authority.cert_der().clone()];
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(format!("server config for {name}: {e}")))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| Error::Tls(format!("server config for {name}: {e}")))?;
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// The cache is only a cache: a panic elsewhere while it was locked
    /// cannot leave it in a state worse than stale, so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, LruCache<LeafName, Cached>> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Shows the CA and the cache size; never the cached keys.
impl fmt::Debug for Leaves {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leaves")
            .field("authority", &self.authority)
            .field("cached", &self.lock().len())
            .finish_non_exhaustive()
    }
}

/// A freshly signed leaf and its key (PKCS#8, in memory only).
pub(super) struct Minted {
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
    pub not_after: OffsetDateTime,
}

/// Signs a leaf for `name` with a fresh P-256 key, valid from `now - 10 s` to
/// `now + 24 h`, carrying everything strict verifiers demand of a server
/// certificate (see the module doc of `ca`).
pub(super) fn mint(authority: &Authority, name: &LeafName, now: OffsetDateTime) -> Result<Minted> {
    let key = KeyPair::generate().map_err(|e| tls("generating a leaf key", e))?;
    let text = name.to_string();

    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    if text.len() <= MAX_CN_LEN {
        params
            .distinguished_name
            .push(DnType::CommonName, text.as_str());
    }
    // The O keeps the subject distinct from the CA's even without a CN, so
    // clients never mistake the leaf for a self-signed certificate.
    params
        .distinguished_name
        .push(DnType::OrganizationName, "sandlock leaf");
    params.subject_alt_names = match name {
        LeafName::Dns(dns) => {
            let ia5 = dns
                .as_str()
                .try_into()
                .map_err(|e| Error::Tls(format!("leaf name '{dns}': {e}")))?;
            vec![SanType::DnsName(ia5)]
        }
        // A v4-mapped v6 destination is reached as its v4 form by some
        // clients, so both spellings are listed.
        LeafName::Ip(ip) if ip.to_canonical() != *ip => {
            vec![
                SanType::IpAddress(*ip),
                SanType::IpAddress(ip.to_canonical()),
            ]
        }
        LeafName::Ip(ip) => vec![SanType::IpAddress(*ip)],
    };
    // ExplicitNoCa, not NoCa: rcgen writes the SKI and CA:false only for it.
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = now - BACKDATE;
    params.not_after = now + LIFETIME;
    params.serial_number = Some(random_serial()?);

    let cert = params
        .signed_by(&key, authority.issuer())
        .map_err(|e| tls(&format!("signing the leaf for {name}"), e))?;
    Ok(Minted {
        cert: cert.der().clone(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        not_after: params.not_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(capacity: usize) -> Leaves {
        Leaves::new(Arc::new(Authority::ephemeral().unwrap()), capacity)
    }

    fn dns(name: &str) -> LeafName {
        LeafName::Dns(name.into())
    }

    #[test]
    fn from_sni_normalises_case_trailing_dot_and_ip_literals() {
        assert_eq!(
            LeafName::from_sni("API.Example.COM."),
            dns("api.example.com")
        );
        assert_eq!(
            LeafName::from_sni("10.0.0.1"),
            LeafName::Ip("10.0.0.1".parse().unwrap())
        );
        assert_eq!(
            LeafName::from_sni("::1"),
            LeafName::Ip("::1".parse().unwrap())
        );
    }

    #[test]
    fn same_name_is_served_from_cache_and_names_do_not_share() {
        let leaves = leaves(8);
        let a = leaves.server_config(&dns("a.example")).unwrap();
        let again = leaves.server_config(&dns("a.example")).unwrap();
        let b = leaves.server_config(&dns("b.example")).unwrap();
        let ip = leaves
            .server_config(&LeafName::Ip("127.0.0.1".parse().unwrap()))
            .unwrap();
        assert!(Arc::ptr_eq(&a, &again));
        assert!(!Arc::ptr_eq(&a, &b) && !Arc::ptr_eq(&a, &ip) && !Arc::ptr_eq(&b, &ip));
        assert_eq!(a.alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    }

    #[test]
    fn capacity_bounds_the_cache_by_evicting_the_least_recently_used() {
        let leaves = leaves(2);
        let a = leaves.server_config(&dns("a.example")).unwrap();
        let b = leaves.server_config(&dns("b.example")).unwrap();
        leaves.server_config(&dns("c.example")).unwrap();
        assert_eq!(leaves.lock().len(), 2);
        assert!(Arc::ptr_eq(
            &b,
            &leaves.server_config(&dns("b.example")).unwrap()
        ));
        assert!(!Arc::ptr_eq(
            &a,
            &leaves.server_config(&dns("a.example")).unwrap()
        ));
        assert_eq!(
            Leaves::new(leaves.authority.clone(), 0).lock().cap().get(),
            1
        );
    }

    #[test]
    fn a_leaf_close_to_expiry_is_reminted() {
        let leaves = leaves(8);
        let name = dns("a.example");
        let now = OffsetDateTime::now_utc();
        let old = leaves
            .server_config_at(&name, now - LIFETIME + Duration::minutes(61))
            .unwrap();
        assert!(Arc::ptr_eq(
            &old,
            &leaves.server_config_at(&name, now).unwrap()
        ));
        let stale = leaves
            .server_config_at(&name, now + Duration::minutes(2))
            .unwrap();
        assert!(!Arc::ptr_eq(&old, &stale));
        assert!(Arc::ptr_eq(&stale, &leaves.server_config(&name).unwrap()));
    }

    #[test]
    fn failures_are_reported_and_not_cached() {
        let leaves = leaves(8);
        let err = leaves.server_config(&dns("bücher.example")).unwrap_err();
        assert!(
            matches!(err, Error::Tls(ref m) if m.contains("bücher.example")),
            "{err}"
        );
        assert_eq!(leaves.lock().len(), 0);
    }

    #[test]
    fn long_names_and_mapped_addresses_still_get_valid_leaves() {
        let ca = Authority::ephemeral().unwrap();
        let now = OffsetDateTime::now_utc();
        let long = dns(&format!("{}.example.com", "a".repeat(60)));
        assert!(mint(&ca, &long, now).is_ok());
        let mapped = LeafName::Ip("::ffff:10.1.2.3".parse().unwrap());
        assert!(mint(&ca, &mapped, now).is_ok());
        let debug = format!("{:?}", leaves(1));
        assert!(
            debug.contains("sandlock sandbox CA") && !debug.contains("PRIVATE"),
            "{debug}"
        );
    }
}
