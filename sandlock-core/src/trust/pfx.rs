//! The JVM's trust store in PKCS#12 (a JDK's own `cacerts` since JDK 18,
//! and what `keytool` makes by default): the sandbox CA added as one more
//! certificate bag that Java reads as a trusted-certificate entry, every
//! original bag kept byte for byte.
//!
//! The structure is decoded and encoded with RustCrypto's `pkcs12` (DER).
//! The new bag goes into a SafeContents of its own, unencrypted, appended
//! to the AuthenticatedSafe, so the original contents (encrypted or not)
//! are not opened. A store with a MAC gets it made again with `changeit`
//! (the same digest, salt and iteration count): the JVM reads its trust
//! store with no password, which skips the MAC; `keytool -storepass
//! changeit` checks it. The store is hostile (a workload can name a file
//! of its own `…/lib/security/cacerts`): anything this module does not
//! expect (BER, bytes that do not encode back to themselves, a MAC digest
//! other than SHA-1 or SHA-2, more than [`MAX_ITERATIONS`], more than
//! [`MAX_STORE`] bytes) leaves the store alone, checked before the
//! contents are decoded where it can be.

use ::pkcs12::cert_type::CertBag;
use ::pkcs12::kdf::{derive_key_utf8, Pkcs12KeyType};
use ::pkcs12::pfx::Pfx;
use ::pkcs12::safe_bag::SafeBag;
use cms::content_info::ContentInfo;
use const_oid::ObjectIdentifier;
use der::asn1::{BmpString, OctetString, SetOfVec};
use der::{Any, Decode, Encode};
use x509_cert::attr::Attribute;

use super::keystore::ALIAS;

/// The store password the MAC is made with.
const PASSWORD: &str = "changeit";
/// Key-derivation rounds past which the store is served as it is: every
/// JDK and OpenSSL default is at most 10,000, and each round is a hash the
/// supervisor computes.
pub const MAX_ITERATIONS: i32 = 100_000;

/// The largest store extended: a JDK's `cacerts` is about 200 KiB; a
/// store is decoded into values several times its size.
pub const MAX_STORE: usize = 1 << 20;

/// `id-data` (PKCS#7).
const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
/// `friendlyName` (PKCS#9): the entry's alias.
const FRIENDLY_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.20");
/// Oracle's trusted-key-usage attribute: a certificate bag carrying it is
/// a trusted-certificate entry to Java.
const TRUSTED_KEY_USAGE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.16.840.1.113894.746875.1.1");
/// `anyExtendedKeyUsage`: trusted for every purpose.
const ANY_EXTENDED_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37.0");

const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

/// True when `bytes` starts like a DER PKCS#12 store (a SEQUENCE).
pub fn is_pkcs12(bytes: &[u8]) -> bool {
    bytes.first() == Some(&0x30)
}

/// `store` with a trusted-certificate bag for `cert_der` added, or `None`
/// when `store` is not a PKCS#12 store this module can extend exactly.
pub fn add_trusted(store: &[u8], cert_der: &[u8]) -> Option<Vec<u8>> {
    if store.len() > MAX_STORE {
        return None;
    }
    let mut pfx = Pfx::from_der(store).ok()?;
    // Re-encoding must give the input back, or bytes of the original
    // (BER, a non-minimal length) would be changed on the way.
    if pfx.to_der().ok()? != store || pfx.auth_safe.content_type != ID_DATA {
        return None;
    }
    // A MAC this module cannot make again ends it before the contents
    // are decoded.
    if let Some(mac) = &pfx.mac_data {
        if mac_algorithm(mac.mac.algorithm.oid).is_none()
            || !(1..=MAX_ITERATIONS).contains(&mac.iterations)
        {
            return None;
        }
    }
    let outer: OctetString = pfx.auth_safe.content.decode_as().ok()?;
    let mut safes: Vec<ContentInfo> = Vec::from_der(outer.as_bytes()).ok()?;
    safes.push(ContentInfo {
        content_type: ID_DATA,
        content: Any::encode_from(
            &OctetString::new(vec![trusted_bag(cert_der)?].to_der().ok()?).ok()?,
        )
        .ok()?,
    });
    let auth_safe = safes.to_der().ok()?;
    if let Some(mac) = pfx.mac_data.as_mut() {
        let salt = mac.mac_salt.as_bytes();
        let tag = hmac(mac.mac.algorithm.oid, salt, mac.iterations, &auth_safe)?;
        mac.mac.digest = OctetString::new(tag).ok()?;
    }
    pfx.auth_safe.content = Any::encode_from(&OctetString::new(auth_safe).ok()?).ok()?;
    pfx.to_der().ok()
}

/// A certificate bag for `cert_der` with the sandbox CA's alias and the
/// attribute that makes Java trust it for every purpose.
fn trusted_bag(cert_der: &[u8]) -> Option<SafeBag> {
    let cert = CertBag {
        cert_id: ::pkcs12::PKCS_12_X509_CERT_OID,
        cert_value: OctetString::new(cert_der).ok()?,
    };
    let alias = Any::encode_from(&BmpString::from_utf8(ALIAS).ok()?).ok()?;
    let usage = Any::encode_from(&ANY_EXTENDED_KEY_USAGE).ok()?;
    let mut attributes = SetOfVec::new();
    for (oid, value) in [(FRIENDLY_NAME, alias), (TRUSTED_KEY_USAGE, usage)] {
        let mut values = SetOfVec::new();
        values.insert(value).ok()?;
        attributes.insert(Attribute { oid, values }).ok()?;
    }
    Some(SafeBag {
        bag_id: ::pkcs12::PKCS_12_CERT_BAG_OID,
        bag_value: cert.to_der().ok()?,
        bag_attributes: Some(attributes),
    })
}

/// The RFC 7292 key derivation with one digest.
type DeriveKey = fn(&str, &[u8], Pkcs12KeyType, i32, usize) -> der::Result<Vec<u8>>;

/// The HMAC and key derivation of a MAC made with `digest`, when this
/// module can make it: the one table of the digests it knows.
fn mac_algorithm(digest: ObjectIdentifier) -> Option<(ring::hmac::Algorithm, DeriveKey)> {
    use ring::hmac;
    match digest {
        SHA1 => Some((
            hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            derive_key_utf8::<sha1::Sha1>,
        )),
        SHA256 => Some((hmac::HMAC_SHA256, derive_key_utf8::<sha2::Sha256>)),
        SHA384 => Some((hmac::HMAC_SHA384, derive_key_utf8::<sha2::Sha384>)),
        SHA512 => Some((hmac::HMAC_SHA512, derive_key_utf8::<sha2::Sha512>)),
        _ => None,
    }
}

/// The PKCS#12 MAC (RFC 7292 appendix B key, then HMAC) over `data` with
/// the store password; `None` for an unknown digest or too many rounds.
fn hmac(digest: ObjectIdentifier, salt: &[u8], rounds: i32, data: &[u8]) -> Option<Vec<u8>> {
    use ring::hmac;
    if !(1..=MAX_ITERATIONS).contains(&rounds) {
        return None;
    }
    let (alg, derive) = mac_algorithm(digest)?;
    let len = alg.digest_algorithm().output_len();
    let key = derive(PASSWORD, salt, Pkcs12KeyType::Mac, rounds, len).ok()?;
    Some(
        hmac::sign(&hmac::Key::new(alg, &key), data)
            .as_ref()
            .to_vec(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Stores made by the tools users have: keytool (JDK 17) password-less
    /// as JDK 18+ ships `cacerts`, with an HMAC-SHA256 MAC, with the
    /// certificate encrypted too (keytool's default), and OpenSSL 3 with a
    /// SHA-1 MAC. Each holds one certificate; the MACs use `changeit`.
    const NO_MAC: &[u8] = include_bytes!("testdata/nomac.p12");
    const MAC_SHA256: &[u8] = include_bytes!("testdata/mac256.p12");
    const ENCRYPTED: &[u8] = include_bytes!("testdata/encrypted.p12");
    const MAC_SHA1: &[u8] = include_bytes!("testdata/sha1.p12");
    const ALL: [&[u8]; 4] = [NO_MAC, MAC_SHA256, ENCRYPTED, MAC_SHA1];
    /// Stands for the sandbox CA: the splice does not parse it.
    const CA: &[u8] = b"\x30\x03\x02\x01\x07";

    fn safes(store: &[u8]) -> (Pfx, Vec<ContentInfo>) {
        let pfx = Pfx::from_der(store).unwrap();
        let outer: OctetString = pfx.auth_safe.content.decode_as().unwrap();
        let safes = Vec::from_der(outer.as_bytes()).unwrap();
        (pfx, safes)
    }

    /// The MAC `store` carries equals the one made with `changeit`.
    fn mac_holds(store: &[u8]) -> bool {
        let (pfx, _) = safes(store);
        let mac = pfx.mac_data.as_ref().unwrap();
        let outer: OctetString = pfx.auth_safe.content.decode_as().unwrap();
        let made = hmac(
            mac.mac.algorithm.oid,
            mac.mac_salt.as_bytes(),
            mac.iterations,
            outer.as_bytes(),
        );
        made.as_deref() == Some(mac.mac.digest.as_bytes())
    }

    #[test]
    fn the_mac_is_made_as_keytool_and_openssl_make_it() {
        for store in [MAC_SHA256, ENCRYPTED, MAC_SHA1] {
            assert!(mac_holds(store));
        }
        assert!(safes(NO_MAC).0.mac_data.is_none());
    }

    #[test]
    fn the_ca_is_a_trusted_bag_after_every_original_one() {
        for store in ALL {
            let out = add_trusted(store, CA).unwrap();
            let (before_pfx, before) = safes(store);
            let (after_pfx, after) = safes(&out);
            assert_eq!(after.len(), before.len() + 1);
            for (a, b) in before.iter().zip(&after) {
                assert_eq!(a.to_der().unwrap(), b.to_der().unwrap());
            }
            let last = after.last().unwrap();
            assert_eq!(last.content_type, ID_DATA);
            let inner: OctetString = last.content.decode_as().unwrap();
            let bags: Vec<SafeBag> = Vec::from_der(inner.as_bytes()).unwrap();
            assert_eq!(bags.len(), 1);
            assert_eq!(bags[0].bag_id, ::pkcs12::PKCS_12_CERT_BAG_OID);
            // (the crate decodes a bag's value with its [0] wrapper)
            let cert = der::asn1::ContextSpecific::<CertBag>::from_der(&bags[0].bag_value).unwrap();
            assert_eq!(cert.value.cert_value.as_bytes(), CA);
            let attrs = bags[0].bag_attributes.as_ref().unwrap();
            let oids: Vec<_> = attrs.iter().map(|a| a.oid).collect();
            assert!(oids.contains(&FRIENDLY_NAME) && oids.contains(&TRUSTED_KEY_USAGE));
            match before_pfx.mac_data {
                Some(_) => assert!(mac_holds(&out)),
                None => assert!(after_pfx.mac_data.is_none()),
            }
        }
    }

    #[test]
    fn a_store_it_cannot_extend_exactly_is_left_alone() {
        for store in ALL {
            for cut in 0..store.len() {
                assert_eq!(add_trusted(&store[..cut], CA), None, "cut at {cut}");
            }
            let mut trailing = store.to_vec();
            trailing.push(0);
            assert_eq!(add_trusted(&trailing, CA), None);
        }
        // BER: the outer SEQUENCE with an indefinite length
        let mut ber = vec![0x30, 0x80];
        let (_, header_len) = der_header_len(MAC_SHA256);
        ber.extend_from_slice(&MAC_SHA256[header_len..]);
        ber.extend_from_slice(&[0, 0]);
        assert_eq!(add_trusted(&ber, CA), None);
        // a JKS store is not PKCS#12
        assert!(!is_pkcs12(&[0xfe, 0xed, 0xfe, 0xed]));
        assert_eq!(add_trusted(&[0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2], CA), None);
    }

    /// The length of the DER header `bytes` start with.
    fn der_header_len(bytes: &[u8]) -> (usize, usize) {
        match bytes[1] {
            n if n < 0x80 => (n as usize, 2),
            n => {
                let k = (n & 0x7f) as usize;
                let len = bytes[2..2 + k].iter().fold(0, |a, b| a << 8 | *b as usize);
                (len, 2 + k)
            }
        }
    }

    #[test]
    fn too_many_rounds_or_an_unknown_digest_leave_it_alone() {
        let with = |f: &dyn Fn(&mut ::pkcs12::mac_data::MacData)| {
            let mut pfx = Pfx::from_der(MAC_SHA256).unwrap();
            f(pfx.mac_data.as_mut().unwrap());
            pfx.to_der().unwrap()
        };
        let many = with(&|m| m.iterations = MAX_ITERATIONS + 1);
        assert_eq!(add_trusted(&many, CA), None);
        let negative = with(&|m| m.iterations = -1);
        assert_eq!(add_trusted(&negative, CA), None);
        let most = with(&|m| m.iterations = MAX_ITERATIONS);
        assert!(add_trusted(&most, CA).is_some());
        let md5 =
            with(&|m| m.mac.algorithm.oid = ObjectIdentifier::new_unwrap("1.2.840.113549.2.5"));
        assert_eq!(add_trusted(&md5, CA), None);
    }

    #[test]
    fn a_store_over_the_size_bound_is_left_alone() {
        // A valid store padded with one more bag to past the bound.
        let big = add_trusted(NO_MAC, &vec![0x30; MAX_STORE]);
        let big = big.expect("a valid store under the bound is extended");
        assert!(big.len() > MAX_STORE);
        assert_eq!(add_trusted(&big, CA), None);
    }

    #[test]
    fn an_auth_safe_that_is_not_data_is_left_alone() {
        let mut pfx = Pfx::from_der(NO_MAC).unwrap();
        // id-signedData
        pfx.auth_safe.content_type = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
        assert_eq!(add_trusted(&pfx.to_der().unwrap(), CA), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any store with a few bytes changed: no panic, and what comes
        /// out is a store that ends with the CA's bag.
        #[test]
        fn hostile_stores_never_panic(
            which in 0usize..4,
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        ) {
            let mut store = ALL[which].to_vec();
            for (at, byte) in flips {
                let i = at % store.len();
                store[i] = byte;
            }
            if let Some(out) = add_trusted(&store, CA) {
                let (_, after) = safes(&out);
                let inner: OctetString = after.last().unwrap().content.decode_as().unwrap();
                prop_assert!(inner.as_bytes().windows(CA.len()).any(|w| w == CA));
            }
        }
    }
}
