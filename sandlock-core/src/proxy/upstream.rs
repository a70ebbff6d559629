//! The proxy's side of the conversation with the original destination:
//! dialing the recorded address (never re-resolving), verifying its
//! certificate against the host's roots plus `--upstream-ca`, and keeping
//! the upstream HTTP connections of one downstream connection for reuse.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use http::{header, HeaderValue, Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::ClientConfig;
use tokio::net::TcpStream;

use super::trace::{Stamps, Traced};
use super::Shared;
use crate::{Error, Result};

/// Errors a request body may end with.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The request body type sent upstream, from either HTTP version.
pub(crate) type ReqBody = http_body_util::combinators::BoxBody<bytes::Bytes, BoxError>;

/// Upstream HTTP/1.1 connections kept idle per downstream connection.
const MAX_IDLE_H1: usize = 8;

/// The niceness of the thread that reads the host's roots.
const ROOTS_NICE: libc::c_int = 19;

/// Why an upstream could not answer; becomes a 502 or a 504.
#[derive(Debug)]
pub(super) enum Failure {
    /// Connecting or waiting for the response head took too long.
    Timeout(&'static str),
    /// Anything else, with the reason shown to the workload.
    Bad(String),
}

/// Trust for upstream certificates. Reading the host's roots takes
/// milliseconds (about 5 ms for Debian's bundle on the benchmark machine),
/// so it starts on a background thread as the workload starts, and the
/// first upstream connection usually finds it done; one that comes sooner
/// builds its own (see [`Tls::warm_up`]).
pub(super) struct Tls {
    extra: Vec<CertificateDer<'static>>,
    /// Trust the system's roots too (not on an image's ground).
    system: bool,
    configs: OnceLock<std::result::Result<Configs, String>>,
}

struct Configs {
    /// ALPN h2 and http/1.1.
    any: Arc<ClientConfig>,
    /// ALPN http/1.1 only, for upgrades (WebSocket).
    h1: Arc<ClientConfig>,
}

impl Tls {
    /// Reads every `--upstream-ca` file now, so a bad one fails the start.
    /// `roots` replaces the system's roots when given (see
    /// [`crate::Ground`]): those files are read now too.
    pub(super) fn new(paths: &[PathBuf], roots: Option<&[PathBuf]>) -> Result<Tls> {
        let mut extra = Vec::new();
        let given = roots
            .unwrap_or_default()
            .iter()
            .map(|p| ("the carried roots", p));
        for (flag, p) in paths.iter().map(|p| ("--upstream-ca", p)).chain(given) {
            let bad = |reason: String| Error::File {
                flag,
                path: p.display().to_string(),
                reason,
            };
            let iter = CertificateDer::pem_file_iter(p).map_err(|e| bad(e.to_string()))?;
            let before = extra.len();
            for cert in iter {
                extra.push(cert.map_err(|e| bad(e.to_string()))?);
            }
            if extra.len() == before {
                return Err(bad("no PEM certificate in it".into()));
            }
        }
        Ok(Tls {
            extra,
            system: roots.is_none(),
            configs: OnceLock::new(),
        })
    }

    /// Builds the configurations on a thread of the lowest priority, so
    /// the workload's own start keeps the CPU it needs. Purely ahead of
    /// time: a connection that comes first builds them itself rather than
    /// wait for a thread the workload may be starving.
    pub(super) fn warm_up(self: &Arc<Self>) {
        let tls = Arc::clone(self);
        let _ = std::thread::Builder::new()
            .name("sandlock-roots".into())
            .spawn(move || {
                // SAFETY: setpriority takes no pointers; on Linux, `who` 0
                // with PRIO_PROCESS names the calling thread only.
                unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, ROOTS_NICE) };
                tls.ensure();
            });
    }

    fn configs(&self) -> std::result::Result<&Configs, String> {
        self.ensure().as_ref().map_err(Clone::clone)
    }

    /// The configurations, built now unless another thread already did.
    /// Two threads may both build them; the first to finish wins.
    fn ensure(&self) -> &std::result::Result<Configs, String> {
        if let Some(built) = self.configs.get() {
            return built;
        }
        let _ = self.configs.set(self.build());
        self.configs.get().expect("set just above")
    }

    fn build(&self) -> std::result::Result<Configs, String> {
        let mut roots = rustls::RootCertStore::empty();
        // Unparsable host roots are skipped, as every TLS client does.
        if self.system {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
        for c in &self.extra {
            roots
                .add(c.clone())
                .map_err(|e| format!("--upstream-ca: {e}"))?;
        }
        let roots = Arc::new(roots);
        let build = |alpn: &[&[u8]]| -> std::result::Result<Arc<ClientConfig>, String> {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut cfg = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(Arc::clone(&roots))
                .with_no_client_auth();
            cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            Ok(Arc::new(cfg))
        };
        Ok(Configs {
            any: build(&[b"h2", b"http/1.1"])?,
            h1: build(&[b"http/1.1"])?,
        })
    }
}

/// Where one downstream connection's requests go.
#[derive(Debug, Clone)]
pub(super) struct Target {
    /// The recorded original destination.
    pub addr: SocketAddr,
    /// The name to send as SNI and verify, for intercepted TLS.
    pub tls: Option<ServerName<'static>>,
    /// The client speaks HTTP/2, so requests that need it (trailers,
    /// gRPC) may use it upstream too.
    pub h2: bool,
}

enum Sender {
    H1(http1::SendRequest<ReqBody>),
    H2(http2::SendRequest<ReqBody>),
}

/// The upstream connections of one downstream connection.
pub(super) struct Pool {
    target: Target,
    /// The downstream connection's request stamps, when tracing.
    stamps: Option<Arc<Stamps>>,
    h2: Mutex<Option<http2::SendRequest<ReqBody>>>,
    h1: Mutex<Vec<http1::SendRequest<ReqBody>>>,
}

impl Pool {
    pub(super) fn new(target: Target, stamps: Option<Arc<Stamps>>) -> Pool {
        Pool {
            target,
            stamps,
            h2: Mutex::new(None),
            h1: Mutex::new(Vec::new()),
        }
    }

    fn idle(&self, want_h2: bool) -> Option<Sender> {
        if want_h2 {
            if let Some(h2) = self.h2.lock().ok()?.as_ref().filter(|s| !s.is_closed()) {
                return Some(Sender::H2(h2.clone()));
            }
        }
        let mut h1 = self.h1.lock().ok()?;
        h1.retain(|s| !s.is_closed());
        let i = h1.iter().position(|s| s.is_ready())?;
        Some(Sender::H1(h1.swap_remove(i)))
    }

    /// Sends `req` (already checked) and returns the response head.
    /// `authority` is what the client named (Host or `:authority`).
    pub(super) async fn send(
        &self,
        shared: &Shared,
        req: Request<ReqBody>,
        authority: &str,
    ) -> std::result::Result<Response<Incoming>, Failure> {
        let want_h2 = self.target.h2 && needs_h2(&req);
        let sender = match self.idle(want_h2) {
            Some(s) => s,
            None => dial(shared, &self.target, self.stamps.clone(), !want_h2).await?,
        };
        let scheme = if self.target.tls.is_some() {
            "https"
        } else {
            "http"
        };
        match sender {
            Sender::H2(mut s) => {
                if let Ok(mut slot) = self.h2.lock() {
                    *slot = Some(s.clone());
                }
                let req = for_h2(req, scheme, authority)?;
                timed(shared, s.send_request(req)).await
            }
            Sender::H1(mut s) => {
                let req = for_h1(req, authority)?;
                let resp = timed(shared, s.send_request(req)).await?;
                if let Ok(mut idle) = self.h1.lock() {
                    if idle.len() < MAX_IDLE_H1 {
                        idle.push(s);
                    }
                }
                Ok(resp)
            }
        }
    }

    /// Sends an upgrade request (WebSocket) on a fresh HTTP/1.1
    /// connection that is handed over to the tunnel afterwards.
    pub(super) async fn send_upgrade(
        &self,
        shared: &Shared,
        req: Request<ReqBody>,
        authority: &str,
    ) -> std::result::Result<Response<Incoming>, Failure> {
        let Sender::H1(mut s) = dial(shared, &self.target, self.stamps.clone(), true).await? else {
            return Err(Failure::Bad(
                "upstream refused HTTP/1.1 for an upgrade".into(),
            ));
        };
        timed(shared, s.send_request(for_h1(req, authority)?)).await
    }
}

/// Requests that only HTTP/2 can carry upstream: gRPC and anything else
/// asking for trailers. Everything else goes over HTTP/1.1, which moves
/// bytes through the proxy with less work per byte.
fn needs_h2(req: &Request<ReqBody>) -> bool {
    let h = req.headers();
    let te_trailers = h
        .get_all(http::header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        });
    let grpc = h
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    te_trailers || grpc
}

async fn timed(
    shared: &Shared,
    fut: impl std::future::Future<Output = hyper::Result<Response<Incoming>>>,
) -> std::result::Result<Response<Incoming>, Failure> {
    match tokio::time::timeout(shared.timeout, fut).await {
        Err(_) => Err(Failure::Timeout("no response from upstream in time")),
        Ok(Err(e)) => Err(Failure::Bad(format!(
            "upstream failed: {}",
            with_causes(&e)
        ))),
        Ok(Ok(r)) => Ok(r),
    }
}

/// `e` and the errors under it: hyper's own message for a request body
/// that failed ("error from user's Body stream") does not say why, its
/// cause (sandlock's own, such as a spool file that could not be read)
/// does.
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

async fn dial(
    shared: &Shared,
    target: &Target,
    stamps: Option<Arc<Stamps>>,
    h1_only: bool,
) -> std::result::Result<Sender, Failure> {
    let tcp = match tokio::time::timeout(shared.timeout, TcpStream::connect(target.addr)).await {
        Err(_) => return Err(Failure::Timeout("connecting to upstream timed out")),
        Ok(Err(e)) => {
            return Err(Failure::Bad(format!(
                "cannot connect to upstream {}: {e}",
                target.addr
            )))
        }
        Ok(Ok(s)) => s,
    };
    let _ = tcp.set_nodelay(true);
    let tcp = Traced::new(tcp, stamps);
    let Some(name) = &target.tls else {
        return h1_handshake(TokioIo::new(tcp)).await;
    };
    let configs = shared.upstream.configs().map_err(Failure::Bad)?;
    let cfg = if h1_only { &configs.h1 } else { &configs.any };
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(cfg));
    let tls = match tokio::time::timeout(shared.timeout, connector.connect(name.clone(), tcp)).await
    {
        Err(_) => return Err(Failure::Timeout("TLS handshake with upstream timed out")),
        Ok(Err(e)) => {
            return Err(Failure::Bad(format!(
                "TLS to upstream {} failed: {e}",
                target.addr
            )))
        }
        Ok(Ok(s)) => s,
    };
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(tls);
    if h2 {
        let (s, conn) = http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| Failure::Bad(format!("HTTP/2 to upstream failed: {e}")))?;
        tokio::spawn(conn);
        Ok(Sender::H2(s))
    } else {
        h1_handshake(io).await
    }
}

async fn h1_handshake<T>(io: T) -> std::result::Result<Sender, Failure>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (s, conn) = http1::Builder::new()
        .handshake(io)
        .await
        .map_err(|e| Failure::Bad(format!("HTTP/1.1 to upstream failed: {e}")))?;
    tokio::spawn(conn.with_upgrades());
    Ok(Sender::H1(s))
}

/// The origin-form target of `req` (`/` when it has none).
fn path_and_query(req: &Request<ReqBody>) -> String {
    req.uri()
        .path_and_query()
        .map_or_else(|| "/".to_string(), |p| p.as_str().to_string())
}

/// Origin-form target and a Host header, as HTTP/1.1 wants.
fn for_h1(
    mut req: Request<ReqBody>,
    authority: &str,
) -> std::result::Result<Request<ReqBody>, Failure> {
    let pq = path_and_query(&req);
    *req.uri_mut() = pq
        .parse::<Uri>()
        .map_err(|e| Failure::Bad(format!("request target: {e}")))?;
    *req.version_mut() = Version::HTTP_11;
    if !req.headers().contains_key(header::HOST) {
        let v = HeaderValue::from_str(authority)
            .map_err(|e| Failure::Bad(format!("authority: {e}")))?;
        req.headers_mut().insert(header::HOST, v);
    }
    Ok(req)
}

/// Absolute target and no Host header, as HTTP/2 wants.
fn for_h2(
    mut req: Request<ReqBody>,
    scheme: &str,
    authority: &str,
) -> std::result::Result<Request<ReqBody>, Failure> {
    let pq = path_and_query(&req);
    *req.uri_mut() = format!("{scheme}://{authority}{pq}")
        .parse::<Uri>()
        .map_err(|e| Failure::Bad(format!("request target: {e}")))?;
    *req.version_mut() = Version::HTTP_2;
    req.headers_mut().remove(header::HOST);
    Ok(req)
}
