//! Just enough DER to vet a user-supplied CA certificate: its validity
//! window, its basicConstraints, its public key and its subject.
//!
//! This exists because rcgen parses a CA certificate without checking that it
//! *is* a CA, and x509-parser is only a dev-dependency of this crate. If
//! x509-parser becomes a normal dependency, this file can go.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const BOOLEAN: u8 = 0x01;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const VERSION: u8 = 0xa0;
const EXTENSIONS: u8 = 0xa3;

/// The DER content of OID 2.5.29.19 (basicConstraints).
const OID_BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];

/// What [`super::Authority::from_pem`] needs to know about a certificate.
#[derive(Debug)]
pub(super) struct CertFacts<'a> {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// `None` when the certificate has no basicConstraints extension.
    pub is_ca: Option<bool>,
    /// The subjectPublicKey bits, comparable with rcgen's `public_key_raw()`.
    pub public_key: &'a [u8],
    /// The subject rendered for humans, e.g. `CN=Example CA, O=Example`.
    pub subject: String,
}

/// A cursor over a run of DER TLVs.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(rest: &'a [u8]) -> Self {
        Reader { rest }
    }

    fn peek(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// Reads one TLV; only low-tag-number form and lengths up to 2^32 occur in
    /// certificates, so anything else is treated as malformed.
    fn next(&mut self) -> Result<(u8, &'a [u8]), String> {
        let malformed = || "malformed DER".to_string();
        let (&tag, rest) = self.rest.split_first().ok_or_else(malformed)?;
        if tag & 0x1f == 0x1f {
            return Err(malformed());
        }
        let (&first, mut rest) = rest.split_first().ok_or_else(malformed)?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return Err(malformed());
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            rest = &rest[n..];
            len
        };
        if rest.len() < len {
            return Err(malformed());
        }
        let (content, rest) = rest.split_at(len);
        self.rest = rest;
        Ok((tag, content))
    }

    fn expect(&mut self, want: u8, what: &str) -> Result<&'a [u8], String> {
        match self.next()? {
            (tag, content) if tag == want => Ok(content),
            _ => Err(format!("malformed certificate ({what})")),
        }
    }
}

/// Extracts [`CertFacts`] from one DER certificate.
pub(super) fn cert_facts(der: &[u8]) -> Result<CertFacts<'_>, String> {
    let cert = Reader::new(der).expect(SEQUENCE, "Certificate")?;
    let mut tbs = Reader::new(Reader::new(cert).expect(SEQUENCE, "TBSCertificate")?);
    if tbs.peek() == Some(VERSION) {
        tbs.next()?;
    }
    tbs.expect(INTEGER, "serialNumber")?;
    tbs.expect(SEQUENCE, "signature")?;
    tbs.expect(SEQUENCE, "issuer")?;
    let mut validity = Reader::new(tbs.expect(SEQUENCE, "validity")?);
    let not_before = time_value(validity.next()?)?;
    let not_after = time_value(validity.next()?)?;
    let subject = render_name(tbs.expect(SEQUENCE, "subject")?)?;
    let mut spki = Reader::new(tbs.expect(SEQUENCE, "subjectPublicKeyInfo")?);
    spki.expect(SEQUENCE, "algorithm")?;
    let public_key = match spki.expect(BIT_STRING, "subjectPublicKey")? {
        [0, bits @ ..] => bits,
        _ => return Err("malformed certificate (subjectPublicKey)".into()),
    };

    let mut is_ca = None;
    while tbs.peek().is_some() {
        let (tag, content) = tbs.next()?;
        if tag != EXTENSIONS {
            continue;
        }
        let mut exts = Reader::new(Reader::new(content).expect(SEQUENCE, "extensions")?);
        while exts.peek().is_some() {
            let mut ext = Reader::new(exts.expect(SEQUENCE, "extension")?);
            let oid = ext.expect(OID, "extnID")?;
            if ext.peek() == Some(BOOLEAN) {
                ext.next()?;
            }
            let value = ext.expect(OCTET_STRING, "extnValue")?;
            if oid == OID_BASIC_CONSTRAINTS {
                let mut bc = Reader::new(Reader::new(value).expect(SEQUENCE, "basicConstraints")?);
                // cA is DEFAULT FALSE, so DER omits it for a non-CA.
                is_ca = Some(match bc.peek() {
                    Some(BOOLEAN) => bc.next()?.1.iter().any(|&b| b != 0),
                    _ => false,
                });
            }
        }
    }

    Ok(CertFacts {
        not_before,
        not_after,
        is_ca,
        public_key,
        subject,
    })
}

/// Decodes the two time forms RFC 5280 allows (both with seconds and `Z`).
fn time_value((tag, content): (u8, &[u8])) -> Result<OffsetDateTime, String> {
    let bad = || "malformed certificate (validity)".to_string();
    let text = std::str::from_utf8(content).map_err(|_| bad())?;
    let digits = text.strip_suffix('Z').ok_or_else(bad)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let (year, rest) = match (tag, digits.len()) {
        (UTC_TIME, 12) => {
            let yy: i32 = digits[..2].parse().map_err(|_| bad())?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (GENERALIZED_TIME, 14) => (digits[..4].parse().map_err(|_| bad())?, &digits[4..]),
        _ => return Err(bad()),
    };
    let field = |i: usize| rest[i..i + 2].parse::<u8>().map_err(|_| bad());
    let month = Month::try_from(field(0)?).map_err(|_| bad())?;
    let date = Date::from_calendar_date(year, month, field(2)?).map_err(|_| bad())?;
    let time = Time::from_hms(field(4)?, field(6)?, field(8)?).map_err(|_| bad())?;
    Ok(PrimitiveDateTime::new(date, time).assume_utc())
}

/// Renders a Name as `CN=…, O=…` in certificate order, for messages only.
fn render_name(name: &[u8]) -> Result<String, String> {
    let mut parts = Vec::new();
    let mut rdns = Reader::new(name);
    while rdns.peek().is_some() {
        let mut set = Reader::new(rdns.expect(SET, "RDN")?);
        while set.peek().is_some() {
            let mut atv = Reader::new(set.expect(SEQUENCE, "AttributeTypeAndValue")?);
            let oid = atv.expect(OID, "AttributeType")?;
            let (tag, value) = atv.next()?;
            parts.push(format!(
                "{}={}",
                attribute_label(oid),
                attribute_text(tag, value)
            ));
        }
    }
    Ok(parts.join(", "))
}

fn attribute_label(oid: &[u8]) -> String {
    match oid {
        [0x55, 0x04, 0x03] => "CN".into(),
        [0x55, 0x04, 0x06] => "C".into(),
        [0x55, 0x04, 0x07] => "L".into(),
        [0x55, 0x04, 0x08] => "ST".into(),
        [0x55, 0x04, 0x0a] => "O".into(),
        [0x55, 0x04, 0x0b] => "OU".into(),
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "emailAddress".into(),
        _ => dotted_oid(oid),
    }
}

fn dotted_oid(oid: &[u8]) -> String {
    let mut arcs = Vec::new();
    let mut acc: u64 = 0;
    for &b in oid {
        acc = (acc << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (acc / 40).min(2);
                arcs.push(first);
                arcs.push(acc - first * 40);
            } else {
                arcs.push(acc);
            }
            acc = 0;
        }
    }
    let text: Vec<String> = arcs.iter().map(u64::to_string).collect();
    text.join(".")
}

fn attribute_text(tag: u8, value: &[u8]) -> String {
    const BMP_STRING: u8 = 0x1e;
    match tag {
        BMP_STRING => {
            let units: Vec<u16> = value
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        _ => String::from_utf8_lossy(value).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

    fn self_signed(is_ca: IsCa) -> (Vec<u8>, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "Test CA");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Example");
        params.not_before = rcgen::date_time_ymd(2001, 2, 3);
        params.not_after = rcgen::date_time_ymd(2061, 4, 5);
        params.is_ca = is_ca;
        let cert = params.self_signed(&key).unwrap();
        (cert.der().to_vec(), key)
    }

    #[test]
    fn reads_ca_facts_from_rcgen_certificate() {
        let (der, key) = self_signed(IsCa::Ca(BasicConstraints::Unconstrained));
        let facts = cert_facts(&der).unwrap();
        assert_eq!(facts.is_ca, Some(true));
        assert_eq!(facts.public_key, key.public_key_raw());
        assert_eq!(facts.subject, "CN=Test CA, O=Example");
        assert_eq!(facts.not_before, rcgen::date_time_ymd(2001, 2, 3));
        // 2061 is written as GeneralizedTime, 2001 as UTCTime.
        assert_eq!(facts.not_after, rcgen::date_time_ymd(2061, 4, 5));
    }

    #[test]
    fn tells_non_ca_from_missing_constraints() {
        let (der, _) = self_signed(IsCa::ExplicitNoCa);
        assert_eq!(cert_facts(&der).unwrap().is_ca, Some(false));
        let (der, _) = self_signed(IsCa::NoCa);
        assert_eq!(cert_facts(&der).unwrap().is_ca, None);
    }

    #[test]
    fn rejects_truncated_and_garbage_input() {
        let (der, _) = self_signed(IsCa::Ca(BasicConstraints::Unconstrained));
        for cut in [0, 1, 2, 10, der.len() / 2, der.len() - 1] {
            assert!(cert_facts(&der[..cut]).is_err(), "cut at {cut}");
        }
        assert!(cert_facts(b"not a certificate").is_err());
    }

    #[test]
    fn renders_unknown_attribute_types_as_dotted_oids() {
        assert_eq!(
            dotted_oid(&[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37]),
            "1.3.6.1.4.1.311"
        );
        assert_eq!(attribute_text(0x1e, &[0x00, 0x41, 0x00, 0x42]), "AB");
    }
}
