//! Tests that exercise the CA and its leaves together, the way clients see
//! them: x509 contents, webpki verification, real handshakes, `openssl verify
//! -x509_strict`, and user-supplied CAs.

use std::sync::Arc;

use rcgen::{IsCa, KeyUsagePurpose};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::GeneralName;

use super::leaf::{mint, LeafName, Leaves};
use super::testing::*;
use super::Authority;
use crate::Error;

#[test]
fn leaves_carry_every_extension_strict_verifiers_require() {
    let ca = Authority::ephemeral().unwrap();
    let ca_cert = parse(ca.cert_der());
    for name in names() {
        let now = OffsetDateTime::now_utc();
        let leaf = mint(&ca, &name, now).unwrap();
        let cert = parse(&leaf.cert);

        let san = cert.subject_alternative_name().unwrap().unwrap();
        let octets = match &name {
            LeafName::Ip(std::net::IpAddr::V4(ip)) => ip.octets().to_vec(),
            LeafName::Ip(std::net::IpAddr::V6(ip)) => ip.octets().to_vec(),
            LeafName::Dns(_) => Vec::new(),
        };
        let expected = match &name {
            LeafName::Dns(dns) => GeneralName::DNSName(dns),
            LeafName::Ip(_) => GeneralName::IPAddress(&octets),
        };
        assert_eq!(san.value.general_names, vec![expected], "{name}");
        assert_eq!(aki(&cert), Some(ski(&ca_cert)), "{name}");
        assert!(!ski(&cert).is_empty() && ski(&cert) != ski(&ca_cert));
        assert!(
            cert.extended_key_usage()
                .unwrap()
                .unwrap()
                .value
                .server_auth
        );
        let bc = cert.basic_constraints().unwrap().unwrap();
        assert!(!bc.value.ca && bc.value.path_len_constraint.is_none());
        let ku = cert.key_usage().unwrap().unwrap();
        assert!(ku.critical && ku.value.digital_signature() && !ku.value.key_cert_sign());

        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap();
        assert_eq!(cn, name.to_string());
        let org = cert
            .subject()
            .iter_organization()
            .next()
            .unwrap()
            .as_str()
            .unwrap();
        assert_eq!(org, "sandlock leaf");
        assert_ne!(cert.subject(), cert.issuer());
        assert_eq!(cert.issuer(), ca_cert.subject());

        let wall = OffsetDateTime::now_utc();
        let not_before = cert.validity().not_before.to_datetime();
        let not_after = cert.validity().not_after.to_datetime();
        assert!(
            not_before >= wall - Duration::seconds(30) && not_before <= wall,
            "{not_before}"
        );
        assert!((not_after - (wall + Duration::hours(24))).abs() <= Duration::seconds(5));
        let serial = cert.raw_serial();
        assert!(serial.len() <= 20 && serial[0] & 0x80 == 0);
    }
}

#[test]
fn leaves_verify_against_the_ca_for_their_own_name_only() {
    let ca = Authority::ephemeral().unwrap();
    for (name, right, wrong) in [
        (&names()[0], "api.example.com", "other.example.com"),
        (&names()[1], "127.0.0.1", "127.0.0.2"),
        (&names()[2], "::1", "::2"),
    ] {
        let leaf = mint(&ca, name, OffsetDateTime::now_utc()).unwrap();
        assert!(webpki_accepts(&ca, &leaf.cert, right), "{name} as {right}");
        assert!(!webpki_accepts(&ca, &leaf.cert, wrong), "{name} as {wrong}");
    }
    // A leaf from another sandbox's CA is not trusted.
    let other = Authority::ephemeral().unwrap();
    let foreign = mint(&other, &names()[0], OffsetDateTime::now_utc()).unwrap();
    assert!(!webpki_accepts(&ca, &foreign.cert, "api.example.com"));
}

#[test]
fn handshake_negotiates_h2_and_serves_leaf_then_ca() {
    let ca = Arc::new(Authority::ephemeral().unwrap());
    let leaves = Leaves::new(Arc::clone(&ca), 16);
    let tls13 = &[&rustls::version::TLS13];
    for name in names() {
        let (alpn, chain) = handshake(&ca, &leaves, &name, &[b"h2", b"http/1.1"], tls13);
        assert_eq!(alpn.as_deref(), Some(&b"h2"[..]), "{name}");
        assert_eq!(chain.len(), 2);
        assert_eq!(&chain[1], ca.cert_der());
        assert!(webpki_accepts(&ca, &chain[0], &name.to_string()));
    }
    let name = &names()[0];
    let (alpn, _) = handshake(&ca, &leaves, name, &[b"http/1.1"], tls13);
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    let (alpn, _) = handshake(
        &ca,
        &leaves,
        name,
        &[b"h2", b"http/1.1"],
        &[&rustls::version::TLS12],
    );
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]), "TLS 1.2 is offered too");
}

#[test]
fn openssl_x509_strict_accepts_leaves_of_the_ephemeral_ca() {
    let ca = Authority::ephemeral().unwrap();
    for name in names() {
        assert_openssl_accepts(&ca, &name);
    }
}

#[test]
fn leaves_of_a_user_ca_chain_to_it() {
    let (cert_pem, key_pem) = user_ca(&CaSpec::default());
    let ca = Authority::from_pem(&cert_pem, &key_pem, "ca.pem", "ca.key").unwrap();
    let ca_cert = parse(ca.cert_der());
    for name in names() {
        let leaf = mint(&ca, &name, OffsetDateTime::now_utc()).unwrap();
        let cert = parse(&leaf.cert);
        assert_eq!(cert.issuer(), ca_cert.subject());
        assert_eq!(aki(&cert), Some(ski(&ca_cert)));
        assert!(webpki_accepts(&ca, &leaf.cert, &name.to_string()));
        assert_openssl_accepts(&ca, &name);
    }
}

#[test]
fn an_openssl_made_rsa_ca_loads_and_signs_verifiable_leaves() {
    let dir = TempDir::new();
    let out = openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/O=Example Corp/CN=Example RSA Root",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ca = Authority::from_files(&dir.path().join("ca.pem"), &dir.path().join("ca.key")).unwrap();
    assert_eq!(ca.subject(), "O=Example Corp, CN=Example RSA Root");
    for name in names() {
        let leaf = mint(&ca, &name, OffsetDateTime::now_utc()).unwrap();
        assert!(webpki_accepts(&ca, &leaf.cert, &name.to_string()));
        assert_openssl_accepts(&ca, &name);
    }
}
#[test]
fn from_pem_accepts_a_ca_and_keeps_its_identity() {
    let (cert_pem, key_pem) = user_ca(&CaSpec::default());
    let ca = Authority::from_pem(&cert_pem, &key_pem, "ca.pem", "ca.key").unwrap();
    assert_eq!(ca.subject(), "CN=Example Corp Root, O=Example Corp");
    assert_eq!(ca.cert_pem(), cert_pem);
    assert_eq!(
        ca.cert_der(),
        &CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()
    );
}

#[track_caller]
fn rejected(cert_pem: &str, key_pem: &str, flag: &str, needle: &str) {
    let err = Authority::from_pem(cert_pem, key_pem, "/etc/ca.pem", "/etc/ca.key")
        .expect_err("must be rejected");
    let path = if flag == "--http-ca" {
        "/etc/ca.pem"
    } else {
        "/etc/ca.key"
    };
    assert!(
        matches!(&err, Error::File { flag: f, path: p, .. } if *f == flag && p == path),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(flag) && msg.contains(path) && msg.contains(needle),
        "{msg}"
    );
    assert!(!msg.contains("BEGIN"), "file contents leaked into: {msg}");
}

#[test]
fn from_pem_rejects_certificates_that_cannot_sign_leaves() {
    let (_, key) = user_ca(&CaSpec::default());
    rejected("garbage", &key, "--http-ca", "no PEM certificate");
    let bad_der = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    rejected(bad_der, &key, "--http-ca", "malformed");

    for (is_ca, needle) in [
        (IsCa::ExplicitNoCa, "CA:FALSE"),
        (IsCa::NoCa, "no basicConstraints"),
    ] {
        let (cert, key) = user_ca(&CaSpec {
            is_ca,
            ..CaSpec::default()
        });
        rejected(&cert, &key, "--http-ca", needle);
    }

    let now = OffsetDateTime::now_utc();
    let expired = CaSpec {
        not_before: now - Duration::days(30),
        not_after: now - Duration::seconds(5),
        ..CaSpec::default()
    };
    let (cert, key) = user_ca(&expired);
    rejected(&cert, &key, "--http-ca", "expired");
    let future = CaSpec {
        not_before: now + Duration::days(1),
        ..CaSpec::default()
    };
    let (cert, key) = user_ca(&future);
    rejected(&cert, &key, "--http-ca", "not valid before");

    let no_sign = CaSpec {
        key_usages: vec![KeyUsagePurpose::CrlSign],
        ..CaSpec::default()
    };
    let (cert, key) = user_ca(&no_sign);
    rejected(&cert, &key, "--http-ca", "keyCertSign");
}

#[test]
fn from_pem_rejects_a_key_that_is_not_the_certificates() {
    let (cert, _) = user_ca(&CaSpec::default());
    let (_, other_key) = user_ca(&CaSpec::default());
    rejected(&cert, &other_key, "--http-key", "does not belong");
    rejected(&cert, "", "--http-key", "no unencrypted PEM private key");
    let sec1 = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
    rejected(&cert, sec1, "--http-key", "openssl pkcs8 -topk8");
}

#[test]
fn from_files_names_the_flag_and_path_of_an_unreadable_file() {
    let dir = TempDir::new();
    let (cert_pem, key_pem) = user_ca(&CaSpec::default());
    let (cert, key) = (
        dir.write("ca.pem", &cert_pem),
        dir.write("ca.key", &key_pem),
    );
    let missing = dir.path().join("missing.pem");

    let ca = Authority::from_files(&cert, &key).unwrap();
    assert_eq!(ca.cert_pem(), cert_pem);

    let err = Authority::from_files(&missing, &key)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--http-ca") && err.contains(&missing.display().to_string()),
        "{err}"
    );
    let err = Authority::from_files(&cert, &missing)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--http-key") && err.contains(&missing.display().to_string()),
        "{err}"
    );
    // A swapped pair: the key file holds no certificate.
    let err = Authority::from_files(&key, &cert).unwrap_err().to_string();
    assert!(err.contains("--http-ca") && !err.contains("BEGIN"), "{err}");
}
