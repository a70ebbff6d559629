//! Test support shared by the `ca` tests: certificate inspection, user-made
//! CAs, scratch directories, openssl, webpki and in-memory handshakes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::{ClientConfig, ClientConnection, Connection, RootCertStore, ServerConnection};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;

use super::leaf::{mint, LeafName, Leaves};
use super::Authority;

pub(super) fn parse(der: &[u8]) -> X509Certificate<'_> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    assert!(rest.is_empty());
    cert
}

pub(super) fn ski(cert: &X509Certificate<'_>) -> Vec<u8> {
    cert.iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        })
        .expect("SKI present")
}

pub(super) fn aki(cert: &X509Certificate<'_>) -> Option<Vec<u8>> {
    cert.iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
}

/// What a user-made CA looks like; the default is a valid CA.
pub(super) struct CaSpec {
    pub is_ca: IsCa,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub key_usages: Vec<KeyUsagePurpose>,
}

impl Default for CaSpec {
    fn default() -> Self {
        let now = OffsetDateTime::now_utc();
        CaSpec {
            is_ca: IsCa::Ca(BasicConstraints::Unconstrained),
            not_before: now - Duration::days(1),
            not_after: now + Duration::days(30),
            key_usages: vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign],
        }
    }
}

/// A CA made the way a user might (rcgen, not `Authority`, whose key cannot be
/// exported): its certificate PEM and PKCS#8 key PEM.
pub(super) fn user_ca(spec: &CaSpec) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "Example Corp Root");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Example Corp");
    params.is_ca = spec.is_ca;
    params.not_before = spec.not_before;
    params.not_after = spec.not_after;
    params.key_usages = spec.key_usages.clone();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A scratch directory removed on drop.
pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("sandlock-ca-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs openssl in `dir`; a missing openssl fails the test rather than
/// skipping it, since CI machines have it.
pub(super) fn openssl(dir: &TempDir, args: &[&str]) -> std::process::Output {
    match Command::new("openssl")
        .args(args)
        .current_dir(dir.path())
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("this test needs the `openssl` command on PATH (install the openssl package)")
        }
        Err(e) => panic!("running openssl: {e}"),
    }
}

/// `openssl verify -x509_strict` of a leaf for `name` minted by `ca`.
pub(super) fn assert_openssl_accepts(ca: &Authority, name: &LeafName) {
    let dir = TempDir::new();
    dir.write("ca.pem", ca.cert_pem());
    let leaf = mint(ca, name, OffsetDateTime::now_utc()).unwrap();
    std::fs::write(dir.path().join("leaf.der"), leaf.cert.as_ref()).unwrap();
    let out = openssl(
        &dir,
        &[
            "x509", "-inform", "DER", "-in", "leaf.der", "-out", "leaf.pem",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let check = match name {
        LeafName::Dns(dns) => ["-verify_hostname", dns.as_str()].map(String::from),
        LeafName::Ip(ip) => ["-verify_ip".to_string(), ip.to_string()],
    };
    let mut args = vec![
        "verify",
        "-x509_strict",
        "-purpose",
        "sslserver",
        "-CAfile",
        "ca.pem",
    ];
    args.extend(check.iter().map(String::as_str));
    args.push("leaf.pem");
    let out = openssl(&dir, &args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("leaf.pem: OK"),
        "openssl verify for {name}: {text}"
    );
}

pub(super) fn verifier(ca: &Authority) -> Arc<WebPkiServerVerifier> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert_der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .unwrap()
}

pub(super) fn webpki_accepts(ca: &Authority, leaf: &CertificateDer<'_>, server_name: &str) -> bool {
    let name = ServerName::try_from(server_name).unwrap();
    verifier(ca)
        .verify_server_cert(leaf, &[], &name, &[], UnixTime::now())
        .is_ok()
}

pub(super) fn names() -> [LeafName; 3] {
    [
        LeafName::Dns("api.example.com".into()),
        LeafName::Ip("127.0.0.1".parse().unwrap()),
        LeafName::Ip("::1".parse().unwrap()),
    ]
}

/// Moves every pending TLS record from one side to the other.
pub(super) fn transfer(from: &mut Connection, to: &mut Connection) {
    let mut buf = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut buf).unwrap();
    }
    let mut rest = &buf[..];
    while !rest.is_empty() {
        to.read_tls(&mut rest).unwrap();
        to.process_new_packets().unwrap();
    }
}

/// Handshakes a client trusting only `ca` with `leaves`' config for `name`;
/// returns the negotiated ALPN and the chain the server sent.
pub(super) fn handshake(
    ca: &Authority,
    leaves: &Leaves,
    name: &LeafName,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> (Option<Vec<u8>>, Vec<CertificateDer<'static>>) {
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert_der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let server_name = ServerName::try_from(name.to_string()).unwrap();
    let client = ClientConnection::new(Arc::new(config), server_name).unwrap();
    let server = ServerConnection::new(leaves.server_config(name).unwrap()).unwrap();
    let (mut client, mut server) = (Connection::Client(client), Connection::Server(server));
    for _ in 0..10 {
        transfer(&mut client, &mut server);
        transfer(&mut server, &mut client);
        if !client.is_handshaking() && !server.is_handshaking() {
            let Connection::Client(client) = client else {
                unreachable!()
            };
            let chain = client.peer_certificates().unwrap().to_vec();
            return (client.alpn_protocol().map(<[u8]>::to_vec), chain);
        }
    }
    panic!("handshake for {name} did not complete");
}
