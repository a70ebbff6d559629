//! The transparent HTTP(S) proxy inside the supervisor.
//!
//! Owns everything that happens to a connection the supervisor redirected:
//! the original-destination table, the first-byte peek (TLS or plaintext),
//! TLS termination with leaves from [`crate::ca`], the HTTP access list, and
//! the verified connection to the original destination. It runs on its own
//! tokio runtime, started before the workload.
//!
//! It must never accept a connection the supervisor did not redirect, never
//! dial anything but the recorded original address (no re-resolution),
//! never re-sign a certificate it could not verify, and never forward a
//! request it found ambiguous.

pub mod acl;
mod conn;
#[cfg(test)]
mod frames;
mod h1;
mod h2;
mod redirect;
mod respond;
mod response;
mod serve;
mod substitute;
mod trace;
mod transfer;
mod upgrade;
mod upstream;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpSocket;
use tokio::runtime::Runtime;

use crate::audit::Reporter;
use crate::ca::{Authority, Leaves};
use crate::network::{canonical_ip, Pinned};
use crate::policy::{HostMatch, HttpPolicy, PortSet};
use crate::secrets::Secrets;
use crate::{Error, Result};

pub use redirect::{Original, Redirects};

/// Connections the proxy serves at once; beyond it new ones are closed.
const MAX_CONNECTIONS: usize = 4096;
/// Leaves kept minted.
const LEAF_CACHE: usize = 1024;

/// State every connection task shares.
pub(crate) struct Shared {
    acl: acl::Acl,
    pinned: Pinned,
    bypass: Vec<HostMatch>,
    leaves: Leaves,
    upstream: Arc<upstream::Tls>,
    reporter: Arc<Reporter>,
    /// Secrets and their placeholders.
    secrets: Arc<Secrets>,
    /// Every spelling of every secret's value → its stand-in, for every
    /// response; `None` without secrets.
    scrub: Option<Arc<crate::secrets::matcher::Replacer>>,
    /// Refuse, rather than warn about, a misplaced placeholder.
    block_misuse: bool,
    redirects: Arc<Redirects>,
    /// Bound on connecting to and hearing back from an upstream.
    timeout: Duration,
    /// Where bodies held whole go once they outgrow memory: the
    /// supervisor's own temporary directory, read once at start (never
    /// the workload's TMPDIR).
    spool_dir: Arc<std::path::Path>,
    slots: Arc<tokio::sync::Semaphore>,
    /// The per-request timing trace, when `SANDLOCK_PROXY_TRACE` asks for one.
    tracer: Option<Arc<trace::Tracer>>,
}

/// Which destinations HTTP rules make reachable on the intercepted ports:
/// IP literals, and the addresses pinned or answered by the DNS
/// interceptor for a name a rule covers.
#[derive(Debug, Clone, Default)]
struct Reach {
    any: Option<String>,
    ips: Vec<(IpAddr, String)>,
    names: Vec<(HostMatch, String)>,
    pinned: Pinned,
}

impl Reach {
    fn new(http: &HttpPolicy, secrets: &Secrets, pinned: &Pinned) -> Reach {
        let mut reach = Reach {
            pinned: pinned.clone(),
            ..Reach::default()
        };
        let rules = http
            .allow
            .iter()
            .map(|r| (&r.host, format!("--http-allow '{}'", r.spec)));
        let secret_hosts = secrets.iter().flat_map(|s| {
            s.hosts()
                .iter()
                .map(move |h| (h, format!("--secret {}", s.name())))
        });
        for (host, spec) in rules.chain(secret_hosts) {
            match host {
                HostMatch::Any => reach.any = reach.any.clone().or(Some(spec)),
                HostMatch::Ip(ip) => reach.ips.push((*ip, spec)),
                pattern => reach.names.push((pattern.clone(), spec)),
            }
        }
        reach
    }

    fn check(&self, ip: IpAddr) -> Option<&str> {
        let ip = canonical_ip(ip);
        self.any.as_deref().or_else(|| {
            let by_ip = self.ips.iter().find(|(i, _)| *i == ip).map(|(_, s)| s);
            by_ip
                .or_else(|| {
                    self.names
                        .iter()
                        .find(|(p, _)| self.pinned.known_as(ip, |name| p.matches(name)))
                        .map(|(_, s)| s)
                })
                .map(String::as_str)
        })
    }
}

/// A running proxy: where the supervisor sends redirected connections.
pub struct Proxy {
    runtime: Option<Runtime>,
    ca_pem: String,
    ca_der: Vec<u8>,
    v4: SocketAddr,
    v6: Option<SocketAddr>,
    ports: PortSet,
    reach: Reach,
    redirects: Arc<Redirects>,
    upstream: Arc<upstream::Tls>,
}

impl Proxy {
    /// Builds the CA (ephemeral or the user's), writes `--http-ca-out`,
    /// binds the loopback listeners and starts serving.
    pub fn start(
        http: &HttpPolicy,
        secrets: Arc<Secrets>,
        misuse: crate::secrets::Misuse,
        pinned: &Pinned,
        roots: Option<&[std::path::PathBuf]>,
        reporter: Arc<Reporter>,
    ) -> Result<Proxy> {
        let authority = match &http.ca {
            Some(files) => Authority::from_files(&files.cert, &files.key)?,
            None => Authority::ephemeral()?,
        };
        if let Some(out) = &http.ca_out {
            write_public(out, authority.cert_pem())?;
        }
        let upstream = Arc::new(upstream::Tls::new(&http.upstream_ca, roots)?);
        let ca_pem = authority.cert_pem().to_string();
        let ca_der = authority.cert_der().to_vec();
        // One worker: a request's tasks (the client's connection, its
        // stream, the upstream connection) wake one another several times
        // per request, and with a second worker tokio hands those wake-ups
        // across threads (a futex and a cross-CPU wake-up each, tens of us
        // on these VMs): an HTTP/2 request spent 55 us in the proxy with
        // two workers, 31 with one, at the same throughput (BENCHMARKS.md).
        // Blocking work (the spool's reads) goes to the blocking pool.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sandlock-proxy")
            .enable_all()
            .build()
            .map_err(|e| Error::setup("starting the proxy runtime", e))?;
        let redirects = Arc::new(Redirects::default());
        let tracer = trace::Tracer::from_env()?;
        let shared = Arc::new(Shared {
            acl: acl::Acl::new(http),
            pinned: pinned.clone(),
            bypass: http.bypass.clone(),
            leaves: Leaves::new(Arc::new(authority), LEAF_CACHE),
            upstream: Arc::clone(&upstream),
            reporter,
            scrub: substitute::scrubber(&secrets),
            secrets: Arc::clone(&secrets),
            block_misuse: misuse == crate::secrets::Misuse::Block,
            redirects: Arc::clone(&redirects),
            timeout: http
                .upstream_timeout
                .unwrap_or(crate::policy::DEFAULT_UPSTREAM_TIMEOUT),
            slots: Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS)),
            spool_dir: Arc::from(std::env::temp_dir().as_path()),
            tracer,
        });
        let (v4, v6) = runtime.block_on(async {
            let v4 = listen(SocketAddr::from(([127, 0, 0, 1], 0)))?;
            // IPv6 loopback may be disabled; IPv6 sockets then reach the
            // IPv4 listener through a mapped address.
            let v6 = listen(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0))).ok();
            Ok::<_, Error>((v4, v6))
        })?;
        let v4_addr = local(&v4)?;
        let v6_addr = v6.as_ref().map(local).transpose()?;
        runtime.spawn(conn::accept_loop(v4, Arc::clone(&shared)));
        if let Some(v6) = v6 {
            runtime.spawn(conn::accept_loop(v6, shared));
        }
        Ok(Proxy {
            runtime: Some(runtime),
            ca_pem,
            ca_der,
            v4: v4_addr,
            v6: v6_addr,
            ports: http.intercepted_ports(),
            reach: Reach::new(http, &secrets, pinned),
            redirects,
            upstream,
        })
    }

    /// Starts reading the host's trusted roots in the background (see
    /// `upstream::Tls`). Called once the workload is on its way, so the
    /// read overlaps its start instead of delaying sandlock's own or the
    /// first upstream connection.
    pub fn warm_up(&self) {
        self.upstream.warm_up();
    }

    /// True when a TCP connect to `port` goes through the proxy.
    pub fn intercepts(&self, port: u16) -> bool {
        self.ports.contains(port)
    }

    /// The HTTP rule that makes `ip` reachable on the intercepted ports.
    pub fn reachable(&self, ip: IpAddr) -> Option<&str> {
        self.reach.check(ip)
    }

    /// The listener a socket of `family` connects to.
    pub fn listener_for(&self, family: i32) -> SocketAddr {
        match (family, self.v6) {
            (libc::AF_INET6, Some(v6)) => v6,
            (libc::AF_INET6, None) => match self.v4 {
                SocketAddr::V4(v4) => SocketAddr::from((v4.ip().to_ipv6_mapped(), v4.port())),
                v6 => v6,
            },
            _ => self.v4,
        }
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA certificate, DER.
    pub fn ca_der(&self) -> &[u8] {
        &self.ca_der
    }

    /// The original-destination table.
    pub fn redirects(&self) -> &Redirects {
        &self.redirects
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn listen(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    let sock = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .and_then(|s| {
        s.bind(addr)?;
        Ok(s)
    })
    .and_then(|s| s.listen(4096))
    .map_err(|e| Error::setup(format!("proxy listener on {addr}"), e))?;
    Ok(sock)
}

fn local(l: &tokio::net::TcpListener) -> Result<SocketAddr> {
    l.local_addr()
        .map_err(|e| Error::setup("proxy listener address", e))
}

/// Writes the CA certificate for `--http-ca-out`: whole or not at all
/// (a temporary file renamed into place).
fn write_public(path: &std::path::Path, pem: &str) -> Result<()> {
    let bad = |e: std::io::Error| Error::File {
        flag: "--http-ca-out",
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, pem).map_err(bad)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        bad(e)
    })
}
