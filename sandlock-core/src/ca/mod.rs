//! The sandbox's certificate authority and the per-host leaf certificates the
//! TLS-intercepting proxy presents to the workload.
//!
//! Owns: the CA of one sandbox ([`Authority`]: a fresh in-memory CA, or the
//! user's own from `--http-ca`/`--http-key`), minting a leaf per TLS server
//! name or destination IP, and caching the resulting rustls server
//! configurations ([`Leaves`]).
//!
//! Must never: write a private key (the CA's or a leaf's) to disk, or log,
//! print or format key material: keys live only in this process's memory, and
//! only the CA *certificate* leaves it (for trust bundles). Leaves must stay
//! acceptable to strict verifiers (Python 3.13, `openssl verify -x509_strict`):
//! the CA and leaf subjects differ, and leaves carry SAN, AKI, SKI, EKU
//! serverAuth and CA:false, backdated seconds, not days.

mod leaf;

pub use leaf::{LeafName, Leaves};

use std::fmt;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::error::X509Error;

use crate::{Error, Result};

/// The flag naming the CA certificate file, for error messages.
const CA_FLAG: &str = "--http-ca";
/// The flag naming the CA key file, for error messages.
const KEY_FLAG: &str = "--http-key";

/// The CA that signs every leaf of one sandbox.
///
/// The signing key is held only in memory and never leaves this value; the
/// certificate is public and may be written anywhere.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    subject: String,
}

impl Authority {
    /// Creates a fresh per-sandbox CA: ECDSA P-256, subject
    /// `CN=sandlock sandbox CA <8 hex>, O=sandlock`, CA:true with pathlen 0
    /// (it signs leaves only), valid from a minute ago for a year.
    ///
    /// The random suffix keeps CAs of concurrent sandboxes apart in trust
    /// stores and messages.
    pub fn ephemeral() -> Result<Authority> {
        let key = KeyPair::generate().map_err(|e| tls("generating the CA key", e))?;
        let suffix: String = random_bytes::<4>()?
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();

        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("sandlock sandbox CA {suffix}"));
        params
            .distinguished_name
            .push(DnType::OrganizationName, "sandlock");
        // pathlen 0: this CA only ever signs leaves, so even a leaked key
        // could not mint intermediates. (rcgen writes an SKI only for CA and
        // ExplicitNoCa certificates; the leaves' AKI points at this one.)
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = now - Duration::seconds(60);
        params.not_after = now + Duration::days(365);
        params.serial_number = Some(random_serial()?);

        let cert = params
            .self_signed(&key)
            .map_err(|e| tls("signing the CA certificate", e))?;
        let cert_der = cert.der().clone();
        let subject = parse_cert(&cert_der)
            .map_err(|e| Error::Tls(format!("reading back the CA certificate: {e}")))?
            .subject()
            .to_string();
        Ok(Authority {
            issuer: Issuer::new(params, key),
            cert_pem: cert.pem(),
            cert_der,
            subject,
        })
    }

    /// Loads the user's own CA from PEM text (`--http-ca` / `--http-key`).
    ///
    /// `cert_path` and `key_path` only name the files in errors. Rejected: text
    /// with no PEM certificate, or no unencrypted PKCS#8 key (ring cannot use
    /// SEC1 or PKCS#1 keys); a certificate that is not a CA, whose keyUsage
    /// lacks keyCertSign, or that is outside its validity window; a key that
    /// is not the certificate's. Leaves are then issued under this CA's
    /// subject, with AKI = its SKI (when it has one).
    pub fn from_pem(
        cert_pem: &str,
        key_pem: &str,
        cert_path: &str,
        key_path: &str,
    ) -> Result<Authority> {
        let ca_err = |reason: String| file_error(CA_FLAG, cert_path, reason);
        let key_err = |reason: String| file_error(KEY_FLAG, key_path, reason);

        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| ca_err(format!("no PEM certificate found ({e})")))?;
        let cert = parse_cert(&cert_der).map_err(ca_err)?;
        match cert.basic_constraints() {
            Ok(Some(bc)) if bc.value.ca => {}
            Ok(Some(_)) => {
                return Err(ca_err(
                    "not a CA certificate (basicConstraints CA:FALSE)".into(),
                ))
            }
            Ok(None) => {
                return Err(ca_err(
                    "not a CA certificate (no basicConstraints extension)".into(),
                ))
            }
            Err(e) => return Err(ca_err(format!("malformed certificate ({e})"))),
        }
        let now = OffsetDateTime::now_utc();
        let not_after = cert.validity().not_after.to_datetime();
        if not_after <= now {
            return Err(ca_err(format!(
                "the certificate expired at {}",
                utc(not_after)
            )));
        }
        let not_before = cert.validity().not_before.to_datetime();
        if not_before > now {
            return Err(ca_err(format!(
                "the certificate is not valid before {}",
                utc(not_before)
            )));
        }
        let subject = cert.subject().to_string();

        let key = load_key(key_pem).map_err(key_err)?;
        if key.public_key_raw() != &*cert.public_key().subject_public_key.data {
            return Err(key_err(format!(
                "the key does not belong to the certificate in '{cert_path}'"
            )));
        }

        let issuer = Issuer::from_ca_cert_der(&cert_der, key)
            .map_err(|e| ca_err(format!("cannot use it as an issuer: {e}")))?;
        let usages = issuer.key_usages();
        if !usages.is_empty() && !usages.contains(&KeyUsagePurpose::KeyCertSign) {
            return Err(ca_err("its keyUsage does not allow keyCertSign".into()));
        }

        let cert_pem = first_cert_block(cert_pem)
            .ok_or_else(|| ca_err("no PEM certificate block found".into()))?;
        Ok(Authority {
            cert_pem,
            subject,
            cert_der,
            issuer,
        })
    }

    /// Reads `cert` and `key` and calls [`Authority::from_pem`]. Errors name
    /// the flag and the path, never the files' contents.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Authority> {
        let read = |flag: &'static str, path: &Path| {
            std::fs::read_to_string(path)
                .map_err(|e| file_error(flag, &path.display().to_string(), e.to_string()))
        };
        let cert_pem = read(CA_FLAG, cert)?;
        let key_pem = read(KEY_FLAG, key)?;
        Self::from_pem(
            &cert_pem,
            &key_pem,
            &cert.display().to_string(),
            &key.display().to_string(),
        )
    }

    /// The CA certificate as PEM, for `--http-ca-out` and trust bundles.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate as DER; leaves are served with it as their chain.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA certificate's subject, e.g. `CN=sandlock sandbox CA 1a2b3c4d, O=sandlock`.
    pub fn subject(&self) -> String {
        self.subject.clone()
    }

    /// The rcgen issuer that signs leaves; private to `ca` so nothing else
    /// can reach the key.
    fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }
}

/// Shows only public facts: formatting an Authority must never reveal the key.
impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authority")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

const NOT_PKCS8: &str = "the key is SEC1 or PKCS#1, not PKCS#8 (a PEM 'PRIVATE KEY' block); \
                         convert it with `openssl pkcs8 -topk8 -nocrypt -in KEY`";

/// Parses one DER certificate. rcgen reads a CA certificate without checking
/// that it *is* a CA, so `from_pem` vets it with this first.
fn parse_cert(der: &[u8]) -> std::result::Result<X509Certificate<'_>, String> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, cert)| cert)
        .map_err(|e| format!("malformed certificate ({})", X509Error::from(e)))
}

/// Parses the first private key in `pem`. Only PKCS#8 is usable with the ring
/// backend, so the other encodings get a conversion hint instead of rcgen's
/// bare "could not parse".
fn load_key(pem: &str) -> std::result::Result<KeyPair, String> {
    let key = PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| format!("no unencrypted PEM private key found ({e})"))?;
    if !matches!(key, PrivateKeyDer::Pkcs8(_)) {
        return Err(NOT_PKCS8.into());
    }
    KeyPair::try_from(&key).map_err(|e| format!("unsupported private key: {e}"))
}

/// The first certificate block of `pem`, re-emitted with LF line ends. It is
/// the block `CertificateDer::from_pem_slice` decoded, so it always exists
/// once that succeeded; text outside the block (comments, a chain) is dropped.
fn first_cert_block(pem: &str) -> Option<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let block = &pem[pem.find(BEGIN)?..];
    let block = &block[..block.find(END)? + END.len()];
    let lines: Vec<&str> = block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    Some(lines.join("\n") + "\n")
}

/// Fills a buffer from ring's system CSPRNG (through rustls, which is a
/// direct dependency where ring is not).
fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut buf)
        .map_err(|_| Error::Tls("the system random number generator failed".into()))?;
    Ok(buf)
}

/// A random 16-byte serial. The top byte is forced to 0b01xx_xxxx so the
/// INTEGER is positive, non-zero and always exactly 16 octets (RFC 5280 caps
/// serials at 20).
fn random_serial() -> Result<SerialNumber> {
    let mut bytes = random_bytes::<16>()?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

/// `2025-01-02 03:04:05 UTC`: without time's `formatting` feature the
/// Display form is noisy.
fn utc(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn tls(what: &str, e: rcgen::Error) -> Error {
    Error::Tls(format!("{what}: {e}"))
}

fn file_error(flag: &'static str, path: &str, reason: String) -> Error {
    Error::File {
        flag,
        path: path.to_string(),
        reason,
    }
}

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

#[cfg(test)]
mod authority_tests {
    use super::testing::{aki, parse, ski};
    use super::*;

    #[test]
    fn ephemeral_ca_is_a_pathlen_zero_signing_ca_named_sandlock() {
        let now = OffsetDateTime::now_utc();
        let ca = Authority::ephemeral().unwrap();
        let cert = parse(ca.cert_der());

        let bc = cert.basic_constraints().unwrap().unwrap();
        assert!(bc.critical);
        assert!(bc.value.ca);
        assert_eq!(bc.value.path_len_constraint, Some(0));
        let ku = cert.key_usage().unwrap().unwrap();
        assert!(ku.critical);
        assert!(ku.value.key_cert_sign() && ku.value.crl_sign());
        assert!(!ski(&cert).is_empty());
        assert_eq!(aki(&cert), None, "a self-signed root needs no AKI");

        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap();
        let suffix = cn.strip_prefix("sandlock sandbox CA ").unwrap();
        assert_eq!(suffix.len(), 8);
        assert!(suffix.bytes().all(|b| b.is_ascii_hexdigit()));
        let org = cert
            .subject()
            .iter_organization()
            .next()
            .unwrap()
            .as_str()
            .unwrap();
        assert_eq!(org, "sandlock");
        assert_eq!(cert.subject(), cert.issuer());
        assert_eq!(ca.subject(), format!("CN={cn}, O=sandlock"));

        let not_before = cert.validity().not_before.to_datetime();
        let not_after = cert.validity().not_after.to_datetime();
        assert!((now - not_before - Duration::seconds(60)).abs() <= Duration::seconds(5));
        assert!((not_after - now - Duration::days(365)).abs() <= Duration::seconds(5));
        let serial = cert.raw_serial();
        assert!(serial.len() <= 20 && serial[0] & 0x80 == 0 && serial.iter().any(|&b| b != 0));

        let from_pem = CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap();
        assert_eq!(&from_pem, ca.cert_der());
    }

    #[test]
    fn ephemeral_cas_are_distinct_and_debug_hides_the_key() {
        let (a, b) = (
            Authority::ephemeral().unwrap(),
            Authority::ephemeral().unwrap(),
        );
        assert_ne!(a.subject(), b.subject());
        assert_ne!(a.cert_der(), b.cert_der());
        let debug = format!("{a:?}");
        assert!(debug.contains(&a.subject()));
        assert!(
            !debug.contains("PRIVATE") && !debug.contains("key"),
            "{debug}"
        );
    }
}
