//! Zero-config trust: while the proxy terminates TLS, the sandbox CA is
//! spliced into the trust bundles the workload reads, so curl, git,
//! Python, Node and OpenSSL trust it with no flag.
//!
//! Owns the list of known bundles, the files that exist only inside the
//! sandbox (the CA alone, a full bundle, the OpenSSL hashed-directory
//! entry) and the environment that points clients at them. It must never
//! write to the host's disk or to the real bundles: every spliced file is
//! a sealed memfd served by the supervisor.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use x509_parser::prelude::{FromDer, X509Certificate};

use crate::policy::HttpPolicy;
use crate::supervisor::{ReadableRoots, SuffixSplice, VirtualFile};
use crate::{Error, Result};

/// PEM bundles the common TLS stacks read (Debian, RHEL-style, Alpine,
/// OpenSSL's defaults), matched by inode so every spelling counts.
pub const DEFAULT_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/tls/cert.pem",
    "/etc/ssl/cert.pem",
];

mod keystore;
mod pfx;

/// Python's certifi (and pip's vendored copy), wherever installed.
pub const CERTIFI_SUFFIX: &str = "/certifi/cacert.pem";
/// grpcio's bundled roots, which it reads instead of the system's.
pub const GRPC_SUFFIX: &str = "/grpc/_cython/_credentials/roots.pem";
/// Java key stores: the system one (Debian's `/etc/ssl/certs/java`,
/// RHEL's `/etc/pki/ca-trust/extracted/java`) that JDKs link to, and a
/// JDK's own `lib/security/cacerts`.
const JAVA_SUFFIXES: [&str; 2] = ["/java/cacerts", "/lib/security/cacerts"];

/// Directories that hold the sandbox-only files, first existing wins.
const CERT_DIRS: &[&str] = &["/etc/ssl/certs", "/etc/pki/tls/certs", "/etc/ssl"];
/// Name of the CA-only file in the cert directory.
pub const CA_FILE: &str = "sandlock-ca.pem";
/// Name of the full bundle (system roots + CA) in the cert directory.
pub const BUNDLE_FILE: &str = "sandlock-bundle.pem";

/// Environment variables pointed at the full bundle.
const BUNDLE_ENV: &[&str] = &[
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
    "DENO_CERT",
];
/// Environment variable pointed at the CA alone (Node adds it to its own
/// roots).
const CA_ENV: &str = "NODE_EXTRA_CA_CERTS";

/// Every variable sandlock points at the CA (unless `--no-ca-env`, or the
/// user set it), as `--show-policy` lists them.
pub fn env_names() -> impl Iterator<Item = &'static str> {
    BUNDLE_ENV.iter().copied().chain(std::iter::once(CA_ENV))
}

/// Everything the sandbox needs to trust the CA.
pub struct Trust {
    /// Spliced bundles and sandbox-only files.
    pub files: Vec<VirtualFile>,
    /// Bundles recognised at run time by their canonical path.
    pub splices: Vec<SuffixSplice>,
    /// Variables to set unless the user set them.
    pub env: Vec<(String, String)>,
}

/// Is `canonical` (a canonical path) a bundle sandlock splices by default?
pub fn is_known_bundle(canonical: &Path) -> bool {
    DEFAULT_BUNDLES.iter().any(|b| Path::new(b) == canonical)
        || canonical
            .to_str()
            .is_some_and(|p| p.ends_with(CERTIFI_SUFFIX) || p.ends_with(GRPC_SUFFIX))
}

/// Filesystems no trust bundle lives on: the kernel's views of processes
/// and of itself. Reading one as the supervisor (a symlink placed by an
/// image: `ca-certificates.crt -> /proc/self/environ`) would serve the
/// workload what the supervisor alone may read.
const PSEUDO_FS: &[i64] = &[
    0x9fa0,      // proc
    0x6265_6572, // sysfs
    0x6462_6720, // debugfs
    0x7363_6673, // securityfs
    0x7472_6163, // tracefs
    0x0027_e0eb, // cgroup
    0x6367_7270, // cgroup2
    0xcafe_4a11, // bpf
];

/// A bundle as read: through one descriptor, which was checked, and whose
/// identity and real path are the ones used afterwards (never the name
/// again, which a running workload with a write grant could swap).
#[derive(Debug)]
struct Bundle {
    content: Vec<u8>,
    dev: u64,
    ino: u64,
    /// Where the descriptor really is (`/proc/self/fd/N`).
    real: PathBuf,
}

/// Opens and reads a bundle: a regular file, on a filesystem files are
/// stored on.
fn read_bundle(path: &Path) -> std::io::Result<Bundle> {
    use std::io::Read;
    use std::os::fd::{AsFd, AsRawFd};
    let mut f = std::fs::File::open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let fs = nix::sys::statfs::fstatfs(f.as_fd())?;
    if PSEUDO_FS.contains(&(fs.filesystem_type().0 as i64)) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "on a kernel filesystem (/proc, /sys, ...), not a trust bundle",
        ));
    }
    let real = std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd()))?;
    let mut content = Vec::new();
    f.read_to_end(&mut content)?;
    Ok(Bundle {
        content,
        dev: meta.dev(),
        ino: meta.ino(),
        real,
    })
}

/// Builds the spliced files for `ca_pem` (the CA certificate, `ca_der` in
/// DER) according to the policy. `readable` are the roots the workload
/// may read below: a named bundle outside them is refused, since splicing
/// it would show the workload a file Landlock keeps from it.
pub fn prepare(
    http: &HttpPolicy,
    ca_pem: &str,
    ca_der: &[u8],
    readable: &ReadableRoots,
) -> Result<Trust> {
    let setup = |what: &str, e: std::io::Error| Error::setup(format!("trust bundle {what}"), e);
    // Only what the workload may read is served: splicing a file outside
    // its grants would show it what Landlock keeps from it.
    let visible = |p: &Path| readable.covers(p);
    // Each default bundle is opened once; what it is, and whether the
    // workload may see it, is judged from that descriptor.
    let mut defaults = Vec::new();
    for p in DEFAULT_BUNDLES
        .iter()
        .map(Path::new)
        .filter(|p| p.is_file())
    {
        match read_bundle(p) {
            Ok(b) if visible(&b.real) => defaults.push((p, b)),
            // A bundle on /proc or /sys is someone's trick: refuse to start.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(setup(&p.display().to_string(), e))
            }
            // Out of the workload's reach, or unreadable: left as it is.
            Ok(_) | Err(_) => {}
        }
    }
    let system = defaults.first().map(|(_, b)| b.content.clone());
    let mut append = Vec::new();
    if http.trust_host_cas {
        let Some(sys) = &system else {
            return Err(Error::invalid(
                "--trust-host-cas",
                "",
                "no trust bundle of the host found to take roots from",
            ));
        };
        append = sys.clone();
        end_line(&mut append);
    }
    append.extend_from_slice(ca_pem.as_bytes());
    end_line(&mut append);

    let mut files = Vec::new();
    let mut seen = HashSet::new();
    let mut add = |path: &Path, b: Bundle| -> Result<()> {
        // Symlinked spellings of one bundle are one file.
        if !seen.insert((b.dev, b.ino)) {
            return Ok(());
        }
        let mut content = b.content;
        end_line(&mut content);
        content.extend_from_slice(&append);
        let text = path.to_string_lossy();
        files.push(
            VirtualFile::at_inode(&text, (b.dev, b.ino), &content).map_err(|e| setup(&text, e))?,
        );
        Ok(())
    };
    if !http.no_default_bundles {
        for (p, b) in defaults {
            add(p, b)?;
        }
    }
    for p in &http.inject_ca {
        let bad = |reason: String| Error::File {
            flag: "--http-inject-ca",
            path: p.display().to_string(),
            reason,
        };
        let b = read_bundle(p).map_err(|e| bad(e.to_string()))?;
        if !visible(&b.real) {
            return Err(bad(
                "outside what the sandbox may read (grant it with -r)".into()
            ));
        }
        add(p, b)?;
    }

    let mut env = Vec::new();
    if let Some(dir) = CERT_DIRS
        .iter()
        .map(Path::new)
        .find(|d| d.is_dir() && visible(d))
    {
        let hash = subject_hash(ca_der)
            .ok_or_else(|| Error::Tls("cannot read the CA's subject".into()))?;
        // The hashed-directory entry is a default trust store like the
        // bundles: --no-default-bundles leaves it out too.
        let hashed = (0..10)
            .map(|i| dir.join(format!("{hash:08x}.{i}")))
            .find(|p| !p.exists())
            .filter(|_| !http.no_default_bundles);
        let mut full = system.clone().unwrap_or_default();
        end_line(&mut full);
        full.extend_from_slice(&append);
        let ca_path = dir.join(CA_FILE);
        let bundle_path = dir.join(BUNDLE_FILE);
        let only: [(Option<PathBuf>, &[u8]); 3] = [
            (hashed, ca_pem.as_bytes()),
            (Some(ca_path.clone()), ca_pem.as_bytes()),
            (Some(bundle_path.clone()), &full),
        ];
        for (path, content) in only {
            let Some(path) = path else { continue };
            let text = path.to_string_lossy();
            files.push(VirtualFile::new(&text, content).map_err(|e| setup(&text, e))?);
        }
        if !http.no_ca_env {
            for var in BUNDLE_ENV {
                env.push((var.to_string(), bundle_path.display().to_string()));
            }
            env.push((CA_ENV.to_string(), ca_path.display().to_string()));
        }
    }
    let splices = if !http.no_default_bundles {
        run_time_splices(append, ca_der)
    } else {
        Vec::new()
    };
    Ok(Trust {
        files,
        splices,
        env,
    })
}

/// The stores recognised when the workload opens them: PEM bundles of
/// Python packages get `append`, Java key stores (JKS or PKCS#12) an
/// entry for `ca_der`.
fn run_time_splices(append: Vec<u8>, ca_der: &[u8]) -> Vec<SuffixSplice> {
    let append = std::sync::Arc::new(append);
    let pem = |basename: &str, suffix: &str| {
        let append = std::sync::Arc::clone(&append);
        SuffixSplice {
            basename: basename.as_bytes().to_vec(),
            suffix: suffix.as_bytes().to_vec(),
            transform: std::sync::Arc::new(move |mut content: Vec<u8>| {
                end_line(&mut content);
                content.extend_from_slice(&append);
                Some(content)
            }),
        }
    };
    let mut splices = vec![
        pem("cacert.pem", CERTIFI_SUFFIX),
        pem("roots.pem", GRPC_SUFFIX),
    ];
    let ca_der = std::sync::Arc::new(ca_der.to_vec());
    for suffix in JAVA_SUFFIXES {
        let ca_der = std::sync::Arc::clone(&ca_der);
        splices.push(SuffixSplice {
            basename: b"cacerts".to_vec(),
            suffix: suffix.as_bytes().to_vec(),
            transform: std::sync::Arc::new(move |content: Vec<u8>| {
                if pfx::is_pkcs12(&content) {
                    return pfx::add_trusted(&content, &ca_der);
                }
                if !keystore::is_jks(&content) {
                    return None;
                }
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                keystore::add_trusted(&content, &ca_der, now)
            }),
        });
    }
    splices
}

fn end_line(buf: &mut Vec<u8>) {
    if !buf.is_empty() && !buf.ends_with(b"\n") {
        buf.push(b'\n');
    }
}

/// OpenSSL's subject hash (`openssl x509 -hash`): SHA-1 over the subject
/// in canonical form, first four bytes little-endian. The canonical form
/// is each RDN's DER SET, concatenated, with text values turned into
/// lower-case UTF-8 with whitespace trimmed and collapsed.
pub fn subject_hash(cert_der: &[u8]) -> Option<u32> {
    let (_, cert) = X509Certificate::from_der(cert_der).ok()?;
    let mut canon = Vec::new();
    for rdn in cert.subject().iter() {
        let mut set = Vec::new();
        for atv in rdn.iter() {
            let value = atv.attr_value();
            let text_tags = [12u32, 19, 20, 22, 26, 28, 30];
            let encoded = if text_tags.contains(&value.header.tag().0) {
                let s = atv.as_str().ok()?;
                tlv(12, &canonical_text(s))
            } else {
                tlv(value.header.tag().0 as u8, value.data)
            };
            let mut seq = tlv(6, atv.attr_type().as_bytes());
            seq.extend_from_slice(&encoded);
            set.extend_from_slice(&tlv(0x30, &seq));
        }
        canon.extend_from_slice(&tlv(0x31, &set));
    }
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &canon);
    let b = digest.as_ref();
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Trimmed, inner whitespace runs folded to one space, ASCII lower-cased.
fn canonical_text(s: &str) -> Vec<u8> {
    let space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let mut out = Vec::with_capacity(s.len());
    let mut pending_space = false;
    for &b in s
        .trim_matches(|c: char| c.is_ascii() && space(c as u8))
        .as_bytes()
    {
        if space(b) {
            pending_space = true;
            continue;
        }
        if pending_space {
            out.push(b' ');
            pending_space = false;
        }
        out.push(b.to_ascii_lowercase());
    }
    out
}

/// One DER element.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_bundle_is_a_regular_file_on_a_real_filesystem() {
        let e = read_bundle(Path::new("/proc/self/environ")).unwrap_err();
        assert!(e.to_string().contains("kernel filesystem"), "{e}");
        let dir = std::env::temp_dir().join(format!("sandlock-bundle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let link = dir.join("ca.crt");
        std::os::unix::fs::symlink("/proc/self/status", &link).unwrap();
        assert!(read_bundle(&link).is_err());
        assert!(read_bundle(&dir).is_err(), "a directory");
        // Twin: a plain file reads.
        std::fs::write(dir.join("plain.pem"), "PEM\n").unwrap();
        let b = read_bundle(&dir.join("plain.pem")).unwrap();
        assert_eq!(b.content, b"PEM\n");
        // Its identity and real path are the descriptor's, not the name's.
        std::os::unix::fs::symlink(dir.join("plain.pem"), dir.join("alias.pem")).unwrap();
        let a = read_bundle(&dir.join("alias.pem")).unwrap();
        assert_eq!(
            (a.dev, a.ino, &a.real),
            (b.dev, b.ino, &dir.join("plain.pem"))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    use super::*;

    #[test]
    fn known_bundles_are_recognised() {
        for b in DEFAULT_BUNDLES {
            assert!(is_known_bundle(Path::new(b)), "{b}");
        }
        assert!(is_known_bundle(Path::new(
            "/usr/lib/python3/dist-packages/certifi/cacert.pem"
        )));
        assert!(is_known_bundle(Path::new(
            "/home/u/.venv/lib/python3.12/site-packages/pip/_vendor/certifi/cacert.pem"
        )));
        assert!(!is_known_bundle(Path::new("/etc/ssl/certs/other.pem")));
        assert!(!is_known_bundle(Path::new("/x/notcertifi/cacert.pem")));
    }

    #[test]
    fn canonical_text_folds_case_and_space() {
        assert_eq!(
            canonical_text("  Sandlock \t Test  CA "),
            b"sandlock test ca"
        );
        assert_eq!(canonical_text("ÄB"), "Äb".as_bytes());
    }

    /// The hash must be what OpenSSL computes, or CApath lookups miss.
    #[test]
    fn subject_hash_matches_openssl() {
        let mut params = rcgen::CertificateParams::default();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, "Sandlock  Test CA ");
        dn.push(rcgen::DnType::OrganizationName, "Example Org");
        params.distinguished_name = dn;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dir = std::env::temp_dir().join(format!("sandlock-hash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pem = dir.join("ca.pem");
        std::fs::write(&pem, cert.pem()).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["x509", "-hash", "-noout", "-in"])
            .arg(&pem)
            .output()
            .expect("openssl must be installed (scripts/deps.sh installs it)");
        let _ = std::fs::remove_dir_all(&dir);
        let expected = String::from_utf8(out.stdout).unwrap();
        let ours = format!("{:08x}", subject_hash(cert.der()).unwrap());
        assert_eq!(ours, expected.trim());
    }
}
