//! HTTP on one intercepted connection: every request is aligned with the
//! connection's identity (SNI or pinned name), checked against the access
//! list, and forwarded to the original destination with its body streamed
//! untouched.

use std::sync::Arc;

use http::{header, HeaderMap, HeaderName, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite};

use super::acl::Verdict;
use super::h1::HEAD_LIMIT;
use super::respond::{allowed, refuse, Body, Described};
use super::substitute::{Applied, Plan};
use super::trace::Stage;
use super::upstream::{Failure, Pool, ReqBody, Target};
use super::{response, upgrade, Original, Shared};
use crate::network::canonical_ip;
use crate::policy::parse_ip_host;

/// How the workload reached the proxy.
#[derive(Debug, Clone)]
pub(super) enum Side {
    /// Plain HTTP.
    Plain,
    /// Intercepted TLS; the SNI the client sent, if any.
    Tls { sni: Option<String> },
}

/// One intercepted connection, whichever HTTP version it speaks.
pub(super) struct Conn {
    shared: Arc<Shared>,
    orig: Original,
    side: Side,
    pool: Pool,
    /// The secrets this connection may carry, decided once from its TLS
    /// name and destination (plaintext connections decide per request).
    plan: Option<Arc<Plan>>,
    /// This connection's request stamps, when tracing.
    pub(super) stamps: Option<Arc<super::trace::Stamps>>,
}

/// Serves HTTP/1.1 (or HTTP/2 when `h2`) on `io` until the client leaves.
pub(super) async fn serve<IO>(shared: Arc<Shared>, orig: Original, side: Side, io: IO, h2: bool)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let tls_name = match &side {
        Side::Plain => None,
        Side::Tls { sni: Some(name) } => rustls::pki_types::ServerName::try_from(name.clone()).ok(),
        Side::Tls { sni: None } => Some(rustls::pki_types::ServerName::IpAddress(
            orig.dest.ip().into(),
        )),
    };
    let plan = match &side {
        Side::Tls { sni: Some(sni) } => Plan::for_connection(
            &shared.secrets,
            &shared.pinned,
            Some(sni),
            None,
            orig.dest.ip(),
        )
        .map(Arc::new),
        _ => None,
    };
    let stamps = shared
        .tracer
        .as_ref()
        .map(|t| t.request(if h2 { "h2" } else { "h1" }));
    let conn = Arc::new(Conn {
        pool: Pool::new(
            Target {
                addr: orig.dest,
                tls: tls_name,
                h2,
            },
            stamps.clone(),
        ),
        stamps,
        shared,
        orig,
        side,
        plan,
    });
    if h2 {
        super::h2::serve(conn, io).await
    } else {
        super::h1::serve(conn, io).await
    }
}

impl Conn {
    /// Stamps `stage` of the current request, when tracing.
    pub(super) fn mark(&self, stage: Stage) {
        if let Some(s) = &self.stamps {
            s.mark(stage);
        }
    }

    fn scheme(&self) -> &'static str {
        match self.side {
            Side::Plain => "http",
            Side::Tls { .. } => "https",
        }
    }

    /// Refuses a request that was read. On HTTP/2 its body (which nobody
    /// will forward) is still read and dropped, up to a bound, so the
    /// stream ends cleanly and the client sees the refusal rather than a
    /// reset; HTTP/1 closes the connection after a refusal instead.
    fn refuse_request(
        &self,
        req: Request<ReqBody>,
        h2: bool,
        d: &Described<'_>,
        status: StatusCode,
        reason: &str,
    ) -> Response<Body> {
        if h2 {
            tokio::spawn(discard(req.into_body()));
        }
        refuse(&self.shared, d, status, reason)
    }

    /// The secrets a request may carry: the connection's, or on plain
    /// HTTP those that opted in and are bound to its (pinned) Host.
    fn plan_for(&self, host: &str) -> Option<Arc<Plan>> {
        match (&self.plan, &self.side) {
            (Some(p), _) => Some(Arc::clone(p)),
            (None, Side::Plain) if self.shared.secrets.iter().any(|s| s.plaintext()) => {
                Plan::for_connection(
                    &self.shared.secrets,
                    &self.shared.pinned,
                    None,
                    Some(host),
                    self.orig.dest.ip(),
                )
                .map(Arc::new)
            }
            _ => None,
        }
    }

    /// Swaps placeholders for real values where `plan` lets them go;
    /// reports a placeholder headed where its secret may not go, and a
    /// body whose coding could not be looked into.
    async fn substitute(
        &self,
        req: Request<ReqBody>,
        host: &str,
        plan: Option<&Plan>,
        d: &Described<'_>,
    ) -> Result<Request<ReqBody>, (StatusCode, String)> {
        if let Some(why) = self.report_misuse(&req, host, plan) {
            return Err((StatusCode::FORBIDDEN, why));
        }
        let Some(plan) = plan else {
            return Ok(req);
        };
        match plan.apply(req, Arc::clone(&self.shared.spool_dir)).await {
            Ok(Applied {
                req,
                uninspected: None,
            }) => Ok(req),
            Ok(Applied {
                req,
                uninspected: Some(coding),
            }) => {
                let why = format!(
                    "request body in content-coding '{coding}' not searched for placeholders; forwarded unchanged"
                );
                self.warn(d, &why);
                Ok(req)
            }
            Err(e) => Err((e.status(), e.to_string())),
        }
    }

    fn warn(&self, d: &Described<'_>, why: &str) {
        self.shared.reporter.record(&crate::audit::Event {
            pid: self.orig.pid,
            syscall: "http",
            target: d.what,
            verdict: crate::audit::Verdict::Warn,
            rule: why,
        });
    }

    /// A placeholder in the head of a request its secret may not join goes
    /// out as it is (it is worthless there), and the user is told. (Bodies
    /// are not searched for this: only for the secrets that may go.)
    /// With `--on-secret-misuse block`, returns the reason to refuse it.
    fn report_misuse(
        &self,
        req: &Request<ReqBody>,
        host: &str,
        plan: Option<&Plan>,
    ) -> Option<String> {
        let secrets = &self.shared.secrets;
        if secrets.is_empty() {
            return None;
        }
        let target = req.uri().path_and_query().map_or("", |p| p.as_str());
        for (i, s) in secrets.iter().enumerate() {
            if plan.is_some_and(|p| p.carries(i)) {
                continue;
            }
            let ph = s.placeholder();
            let seen = req.headers().values().any(|v| contains(v.as_bytes(), ph))
                || contains(target.as_bytes(), ph);
            if seen {
                let what = format!("{} {}://{host}", req.method(), self.scheme());
                if self.shared.block_misuse {
                    return Some(format!(
                        "placeholder of secret {} sent where the secret is not bound (--on-secret-misuse block)",
                        s.name()
                    ));
                }
                let why = format!(
                    "placeholder of secret {} sent where the secret is not bound; forwarded unchanged",
                    s.name()
                );
                self.shared.reporter.record(&crate::audit::Event {
                    pid: self.orig.pid,
                    syscall: "http",
                    target: &what,
                    verdict: crate::audit::Verdict::Warn,
                    rule: &why,
                });
            }
        }
        None
    }

    /// The response to a request that could not be parsed.
    pub(super) fn refuse_malformed(&self, status: StatusCode, why: &str) -> Response<Body> {
        let what = format!("{}://{}", self.scheme(), self.orig.dest);
        let d = Described {
            pid: self.orig.pid,
            what: &what,
        };
        refuse(&self.shared, &d, status, why)
    }

    /// Checks one request and forwards it; the response to send back.
    pub(super) async fn handle(&self, req: Request<ReqBody>, h2: bool) -> Response<Body> {
        let pid = self.orig.pid;
        let (host, authority) = match self.authority(&req, h2) {
            Ok(a) => a,
            Err((status, reason)) => {
                let what = format!("{} {}://{}", req.method(), self.scheme(), self.orig.dest);
                let d = Described { pid, what: &what };
                return self.refuse_request(req, h2, &d, status, &reason);
            }
        };
        let target = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let scheme = self.scheme();
        let what = format!("{} {scheme}://{authority}{target}", req.method());
        let d = Described { pid, what: &what };
        if let Err((status, reason)) = check_framing(&req) {
            return self.refuse_request(req, h2, &d, status, reason);
        }
        let verdict = self
            .shared
            .acl
            .check(req.method().as_str(), &host, target.as_bytes());
        match verdict {
            Verdict::Deny(rule) => {
                return self.refuse_request(req, h2, &d, StatusCode::FORBIDDEN, &rule)
            }
            Verdict::Ambiguous(why) => {
                return self.refuse_request(req, h2, &d, StatusCode::BAD_REQUEST, why)
            }
            Verdict::Allow(rule) => allowed(
                &self.shared,
                &d,
                rule.as_deref().unwrap_or("no --http-deny rule matches"),
            ),
        }
        self.mark(Stage::Checked);
        if let Some(l) = self.shared.reporter.learner() {
            let req_seen = crate::learn::Request {
                method: req.method().as_str().to_string(),
                host: host.clone(),
                path: target.clone(),
                dest: self.orig.dest,
            };
            let headers = req
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_bytes()));
            l.request(req_seen, headers);
        }
        let ws_key = if h2 {
            None
        } else {
            upgrade::websocket_key(req.method(), req.headers())
        };
        if ws_key.is_some() && !self.shared.secrets.is_empty() {
            return self.refuse_request(req, h2, &d, StatusCode::FORBIDDEN, WEBSOCKET_WITH_SECRETS);
        }
        let plan = self.plan_for(&host);
        let head = req.method() == Method::HEAD;
        let req = match self.substitute(req, &host, plan.as_deref(), &d).await {
            Ok(req) => req,
            Err((status, why)) => return refuse(&self.shared, &d, status, &why),
        };
        let mut req = req;
        // Only a WebSocket handshake keeps its Upgrade offer; any other is
        // dropped here (see `upgrade`).
        let upgrade = ws_key.is_some();
        strip_hop_by_hop(req.headers_mut(), upgrade);
        req.headers_mut().remove(header::EXPECT);
        // An upgrade's response keeps its hook to the upstream connection
        // (in its extensions) for the HTTP/1 side to tunnel through.
        let result = if upgrade {
            self.pool.send_upgrade(&self.shared, req, &authority).await
        } else {
            self.pool.send(&self.shared, req, &authority).await
        };
        self.mark(Stage::Answered);
        match result {
            Ok(resp) => match response::pass_on(&self.shared, resp, ws_key.as_ref(), head).await {
                Ok(resp) => resp,
                Err((status, why)) => refuse(&self.shared, &d, status, &why),
            },
            Err(Failure::Timeout(why)) => {
                refuse(&self.shared, &d, StatusCode::GATEWAY_TIMEOUT, why)
            }
            Err(Failure::Bad(why)) => refuse(&self.shared, &d, StatusCode::BAD_GATEWAY, &why),
        }
    }

    /// The request's one authority, checked against the connection: on TLS
    /// it must name the SNI; on plaintext, a name pinned to the original
    /// address. Returns (host lower-cased without port, authority as sent).
    fn authority(
        &self,
        req: &Request<ReqBody>,
        h2: bool,
    ) -> Result<(String, String), (StatusCode, String)> {
        let bad = |s: &str| Err((StatusCode::BAD_REQUEST, s.to_string()));
        let misdirected = |s: String| Err((StatusCode::MISDIRECTED_REQUEST, s));
        let mut hosts = req.headers().get_all(header::HOST).iter();
        let host_header = match (hosts.next(), hosts.next()) {
            (_, Some(_)) => return bad("more than one Host header"),
            (Some(v), None) => match v.to_str() {
                Ok(s) => Some(s.to_string()),
                Err(_) => return bad("Host header is not text"),
            },
            (None, None) => None,
        };
        let from_target = req.uri().authority().map(|a| a.as_str().to_string());
        let authority = match (host_header, from_target) {
            (None, None) if h2 => return bad("no :authority"),
            (None, None) => return bad("no Host header"),
            (Some(a), None) | (None, Some(a)) => a,
            (Some(h), Some(t)) => {
                if !split_host(&h).eq_ignore_ascii_case(split_host(&t)) {
                    return misdirected(format!(
                        "Host '{h}' disagrees with the request target's '{t}'"
                    ));
                }
                t
            }
        };
        if authority.contains('@') {
            return bad("userinfo in the authority");
        }
        if authority.parse::<http::uri::Authority>().is_err() || authority.is_empty() {
            return bad("malformed authority");
        }
        let host = split_host(&authority).to_ascii_lowercase();
        let host = host.strip_suffix('.').unwrap_or(&host).to_string();
        let dest_ip = canonical_ip(self.orig.dest.ip());
        let is_dest_ip = parse_ip_host(&host).is_some_and(|ip| canonical_ip(ip) == dest_ip);
        match &self.side {
            Side::Tls { sni: Some(sni) } if !host.eq_ignore_ascii_case(sni) => {
                return misdirected(format!("Host '{host}' is not the TLS name '{sni}'"));
            }
            Side::Tls { sni: None } if !is_dest_ip => {
                return misdirected(format!(
                    "Host '{host}' on a TLS connection without SNI to {dest_ip}"
                ));
            }
            Side::Plain
                if !is_dest_ip && !self.shared.pinned.known_as(dest_ip, |name| name == host) =>
            {
                return Err((
                    StatusCode::FORBIDDEN,
                    format!("Host '{host}' is not a name pinned to {dest_ip}"),
                ));
            }
            _ => {}
        }
        Ok((host, authority))
    }
}

/// Why a WebSocket is not opened in a sandbox holding secrets.
const WEBSOCKET_WITH_SECRETS: &str = "a WebSocket tunnel cannot be scrubbed of secret values \
     (frames, fragments, compression), so none is opened in a sandbox holding secrets";

/// Bytes of a refused HTTP/2 request body read and dropped at most.
const DISCARD_LIMIT: usize = 16 << 20;

/// Reads a refused body to its end (or the limit, or a minute), so the
/// stream closes without a reset.
async fn discard(mut body: ReqBody) {
    let drain = async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > DISCARD_LIMIT {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(60), drain).await;
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && memchr::memmem::find(hay, needle).is_some()
}

/// The host part of `host[:port]` or `[v6]:port`.
fn split_host(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.find(']').map_or(authority, |i| &authority[..=i]);
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

/// HTTP/1 heads were checked strictly when read; this covers what HTTP/2
/// can still carry.
fn check_framing(req: &Request<ReqBody>) -> Result<(), (StatusCode, &'static str)> {
    let h = req.headers();
    if h.get_all(header::CONTENT_LENGTH).iter().count() > 1 {
        return Err((StatusCode::BAD_REQUEST, "more than one Content-Length"));
    }
    let head: usize = h
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum::<usize>()
        + req.uri().to_string().len();
    if head > HEAD_LIMIT {
        return Err((
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request head larger than 64 KiB",
        ));
    }
    if req.method() == Method::CONNECT {
        return Err((
            StatusCode::BAD_REQUEST,
            "CONNECT is not supported on an intercepted connection",
        ));
    }
    Ok(())
}

fn connection_tokens(h: &HeaderMap) -> impl Iterator<Item = &str> {
    h.get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Removes headers that belong to one hop; an upgrade keeps `Connection:
/// upgrade` and `Upgrade`, which the next hop needs.
pub(super) fn strip_hop_by_hop(h: &mut HeaderMap, upgrade: bool) {
    let named: Vec<HeaderName> = connection_tokens(h)
        .filter(|t| !(upgrade && t.eq_ignore_ascii_case("upgrade")))
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in ["keep-alive", "proxy-connection", "transfer-encoding"] {
        h.remove(n);
    }
    let te_trailers = h
        .get(header::TE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        });
    h.remove(header::TE);
    if te_trailers {
        h.insert(header::TE, http::HeaderValue::from_static("trailers"));
    }
    if upgrade {
        h.insert(
            header::CONNECTION,
            http::HeaderValue::from_static("upgrade"),
        );
    } else {
        h.remove(header::CONNECTION);
        h.remove(header::UPGRADE);
    }
}
