//! The JVM's trust store as a Java KeyStore (JKS; PKCS#12 is `pfx`) with
//! the sandbox CA added as one more trusted-certificate entry, every
//! original entry kept byte for byte.
//!
//! Hand-written rather than a crate: adding an entry needs only the
//! store's framing (a count, entries walked to check it, and the trailing
//! SHA-1 keyed with the store password), not its keys; the one crate that
//! reads JKS also pulls in a PKCS#12 stack of its own. The
//! walk treats the store as hostile: every length is checked against what
//! is left, and anything unexpected (a JCEKS secret key, a version-1
//! store, trailing bytes) leaves the store alone.
//!
//! The digest is made with `changeit`, the password every JDK and
//! distribution ships its `cacerts` with. The JVM reads its trust store
//! with no password (`javax.net.ssl.trustStorePassword` unset), which
//! skips the digest; `keytool -list -storepass changeit` verifies it.

use ring::digest;

const MAGIC: [u8; 4] = [0xfe, 0xed, 0xfe, 0xed];
const VERSION: u32 = 2;
const PRIVATE_KEY: u32 = 1;
const TRUSTED_CERT: u32 = 2;
const DIGEST_LEN: usize = 20;
/// The alias of the sandbox CA's entry.
pub const ALIAS: &str = "sandlock-sandbox-ca";
/// The store password the digest is made with.
const PASSWORD: &str = "changeit";

/// True when `bytes` starts like a JKS store.
pub fn is_jks(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

/// `store` with a trusted-certificate entry for `cert_der` added (created
/// `now_ms`), or `None` when `store` is not a well-formed version-2 JKS.
pub fn add_trusted(store: &[u8], cert_der: &[u8], now_ms: u64) -> Option<Vec<u8>> {
    let body_len = store.len().checked_sub(DIGEST_LEN)?;
    let body = store.get(..body_len)?;
    let count = check(body)?;
    let mut out = Vec::with_capacity(store.len().checked_add(cert_der.len())?.checked_add(64)?);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&count.checked_add(1)?.to_be_bytes());
    out.extend_from_slice(body.get(12..)?);
    out.extend_from_slice(&TRUSTED_CERT.to_be_bytes());
    put_utf(&mut out, ALIAS)?;
    out.extend_from_slice(&now_ms.to_be_bytes());
    put_utf(&mut out, "X.509")?;
    out.extend_from_slice(&u32::try_from(cert_der.len()).ok()?.to_be_bytes());
    out.extend_from_slice(cert_der);
    let d = keyed_digest(&out);
    out.extend_from_slice(d.as_ref());
    Some(out)
}

/// The SHA-1 a JKS store ends with: over the password's UTF-16BE bytes,
/// the words "Mighty Aphrodite" and the store.
fn keyed_digest(body: &[u8]) -> digest::Digest {
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    for unit in PASSWORD.encode_utf16() {
        ctx.update(&unit.to_be_bytes());
    }
    ctx.update(b"Mighty Aphrodite");
    ctx.update(body);
    ctx.finish()
}

/// Walks the store's entries (without its digest): their count when the
/// header and every entry are well formed and nothing follows them.
fn check(body: &[u8]) -> Option<u32> {
    let mut r = Reader { rest: body };
    if r.take(4)? != MAGIC || r.u32()? != VERSION {
        return None;
    }
    let count = r.u32()?;
    for _ in 0..count {
        match r.u32()? {
            PRIVATE_KEY => {
                r.utf()?; // alias
                r.take(8)?; // creation date
                r.blob()?; // the protected key
                for _ in 0..r.u32()? {
                    r.utf()?; // certificate type
                    r.blob()?;
                }
            }
            TRUSTED_CERT => {
                r.utf()?;
                r.take(8)?;
                r.utf()?;
                r.blob()?;
            }
            _ => return None,
        }
    }
    r.rest.is_empty().then_some(count)
}

fn put_utf(out: &mut Vec<u8>, s: &str) -> Option<()> {
    // Java's modified UTF-8 equals UTF-8 for text without NUL or
    // characters outside the BMP, which is all this writes.
    out.extend_from_slice(&u16::try_from(s.len()).ok()?.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Some(())
}

/// A cursor over untrusted bytes: every read checks what is left.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    fn utf(&mut self) -> Option<&'a [u8]> {
        let len = u16::from_be_bytes(self.take(2)?.try_into().ok()?);
        self.take(usize::from(len))
    }

    fn blob(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u32()?).ok()?;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An empty store: header and digest.
    fn empty() -> Vec<u8> {
        let mut s = MAGIC.to_vec();
        s.extend_from_slice(&VERSION.to_be_bytes());
        s.extend_from_slice(&0u32.to_be_bytes());
        let d = keyed_digest(&s);
        s.extend_from_slice(d.as_ref());
        s
    }

    #[test]
    fn the_digest_is_java_s() {
        // sha1(utf16be("changeit") + "Mighty Aphrodite" + empty v2 header),
        // computed independently with Python's hashlib.
        let e = empty();
        let hex: String = e[12..].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "e2686e45fb43dfa4d992dd41ceb6b21c6330d792");
    }

    #[test]
    fn entries_are_added_and_kept() {
        let one = add_trusted(&empty(), b"CERT-ONE", 7).expect("adds to an empty store");
        assert_eq!(check(&one[..one.len() - DIGEST_LEN]), Some(1));
        let two = add_trusted(&one, b"CERT-TWO", 8).expect("adds again");
        assert_eq!(check(&two[..two.len() - DIGEST_LEN]), Some(2));
        // The first entry is byte for byte where it was.
        let first = &one[12..one.len() - DIGEST_LEN];
        assert_eq!(&two[12..12 + first.len()], first);
        let body = &two[..two.len() - DIGEST_LEN];
        assert_eq!(&two[two.len() - DIGEST_LEN..], keyed_digest(body).as_ref());
    }

    #[test]
    fn the_system_store_takes_the_ca_when_there_is_one() {
        let Ok(store) = std::fs::read("/etc/ssl/certs/java/cacerts") else {
            return;
        };
        if !is_jks(&store) {
            return;
        }
        let n = check(&store[..store.len() - DIGEST_LEN]).expect("a well-formed store");
        let out = add_trusted(&store, b"CA", 1).expect("adds");
        assert_eq!(check(&out[..out.len() - DIGEST_LEN]), Some(n + 1));
    }

    #[test]
    fn hostile_stores_are_left_alone() {
        let e = empty();
        let mut bad_count = e.clone();
        bad_count[11] = 1; // one entry announced, none there
        let mut v1 = e.clone();
        v1[7] = 1;
        let mut trailing = e[..e.len() - DIGEST_LEN].to_vec();
        trailing.push(0);
        trailing.extend_from_slice(&[0; DIGEST_LEN]);
        let mut huge = e[..12].to_vec();
        huge[8..12].copy_from_slice(&1u32.to_be_bytes());
        huge.extend_from_slice(&TRUSTED_CERT.to_be_bytes());
        huge.extend_from_slice(&[0xff, 0xff]); // alias longer than the store
        huge.extend_from_slice(&[0; DIGEST_LEN]);
        let mut secret = e[..12].to_vec();
        secret[8..12].copy_from_slice(&1u32.to_be_bytes());
        secret.extend_from_slice(&3u32.to_be_bytes()); // JCEKS secret key
        secret.extend_from_slice(&[0; DIGEST_LEN]);
        for s in [
            bad_count,
            v1,
            trailing,
            huge,
            secret,
            Vec::new(),
            MAGIC.to_vec(),
        ] {
            assert_eq!(add_trusted(&s, b"CA", 1), None, "{s:?}");
        }
        assert!(!is_jks(b"0\x82\x01"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = add_trusted(&bytes, b"CA", 1);
        }

        #[test]
        fn any_chain_of_additions_stays_well_formed(
            certs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut store = empty();
            for (i, c) in certs.iter().enumerate() {
                store = add_trusted(&store, c, i as u64).expect("well formed");
            }
            prop_assert_eq!(check(&store[..store.len() - DIGEST_LEN]), Some(certs.len() as u32));
            // Any truncation of a store is refused, never misread.
            let at = cut.index(store.len());
            if at < store.len() {
                prop_assert_eq!(add_trusted(&store[..at], b"CA", 1), None);
            }
        }
    }
}
