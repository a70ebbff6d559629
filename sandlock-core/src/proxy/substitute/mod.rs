//! Secrets on the wire: placeholders in a request become the real values,
//! only on a connection where every gate holds, and only where the secret
//! may go (header names, target, body).
//!
//! The gates, decided once per connection: intercepted TLS (or a secret's
//! `plaintext` opt-in), an SNI matching one of the secret's hosts, and an
//! original destination that was pinned for such a name (a hard-coded IP
//! with a forged SNI never qualifies). The fourth, Host equal to SNI, is
//! enforced for every request before this module runs.
//!
//! Bytes are sacred: a request with no placeholder in it is forwarded as
//! received, and a body is only rewritten where a placeholder was found.
//!
//! Responses go the other way, for the whole sandbox rather than one
//! connection: every response the proxy forwards in a sandbox holding
//! secrets is scrubbed of every value (see `scrub`).
//!
//! This file owns the plan (which secrets a connection carries, and its
//! replacers) and the header rewriting; the rest is split by concern:
//! `request` (request bodies), `scrub` (responses), `forms` (the spellings
//! of a value scrubbed), `stream` (bodies rewritten as they stream), `hold`
//! (bodies read whole: identity ones whose length changes, encoded ones
//! looked into), `codec` (content codings) and `spool` (where held bodies
//! live: memory, then a private nameless file).
//!
//! This module must never log or format a real value, and never store one
//! anywhere but memory and the spool files described in `spool`.

pub(super) mod codec;
mod forms;
mod hold;
mod request;
mod scrub;
mod spool;
mod stream;

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use http::{header, HeaderValue, Request, Uri};

pub(crate) use self::hold::BodyError;
pub(super) use self::scrub::{scrub, scrubber};
use super::upstream::ReqBody;
use crate::network::{canonical_ip, Pinned};
use crate::secrets::matcher::Replacer;
use crate::secrets::{Secret, Secrets};

/// A request after substitution.
pub(super) struct Applied {
    pub req: Request<ReqBody>,
    /// The content coding of a body sandlock could not look into (it went
    /// on as it was), for the caller to report.
    pub uninspected: Option<String>,
}

/// The secrets one connection may carry, and where.
pub(super) struct Plan {
    /// Placeholder → value for headers named by every eligible secret.
    everywhere: Option<Arc<Replacer>>,
    /// Secrets restricted to some header names: (secret index, replacer).
    by_header: Vec<(usize, Replacer)>,
    /// Indices of the secrets this connection may carry.
    eligible: Vec<usize>,
    secrets: Arc<Secrets>,
}

impl Plan {
    /// The plan for a connection to `dest` with TLS name `sni` (None for
    /// plaintext); `None` when no secret may go there.
    pub(super) fn for_connection(
        secrets: &Arc<Secrets>,
        pinned: &Pinned,
        sni: Option<&str>,
        host_if_plain: Option<&str>,
        dest: std::net::IpAddr,
    ) -> Option<Plan> {
        let dest = canonical_ip(dest);
        let eligible: Vec<(usize, &Secret)> = secrets
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                let name = match (sni, host_if_plain) {
                    (Some(sni), _) => sni,
                    (None, Some(host)) if s.plaintext() => host,
                    _ => return false,
                };
                s.bound_to(name) && pinned_for(pinned, s, dest)
            })
            .collect();
        if eligible.is_empty() {
            return None;
        }
        let pairs: Vec<(&[u8], &[u8])> = eligible
            .iter()
            .filter(|(_, s)| s.headers().is_none())
            .map(|(_, s)| (s.placeholder(), s.value()))
            .collect();
        let everywhere = (!pairs.is_empty()).then(|| Arc::new(Replacer::new(&pairs)));
        let by_header = eligible
            .iter()
            .filter(|(_, s)| s.headers().is_some())
            .map(|(i, s)| (*i, Replacer::new(&[(s.placeholder(), s.value())])))
            .collect();
        Some(Plan {
            everywhere,
            by_header,
            eligible: eligible.iter().map(|(i, _)| *i).collect(),
            secrets: Arc::clone(secrets),
        })
    }

    /// May the secret at index `i` travel on this connection?
    pub(super) fn carries(&self, i: usize) -> bool {
        self.eligible.contains(&i)
    }

    /// Substitutes into `req`'s headers, target and body. A body held to
    /// fix its length (or to look into its coding) goes to memory and,
    /// beyond the spool's bound, to a private file in `spool_dir`. Fails
    /// when such a body cannot be read, decoded or held.
    pub(super) async fn apply(
        &self,
        mut req: Request<ReqBody>,
        spool_dir: Arc<Path>,
    ) -> Result<Applied, BodyError> {
        // Read before the headers change: the workload's own text, which
        // holds placeholders at most, never a value.
        let coding = codec::coding(req.headers());
        rewrite_headers(req.headers_mut(), |name, v| self.header_value(name, v));
        let Some(r) = &self.everywhere else {
            return Ok(Applied {
                req,
                uninspected: None,
            });
        };
        if let Some(pq) = req.uri().path_and_query() {
            if let Some(new) = r.replace_all(pq.as_str().as_bytes()) {
                if let Some(uri) = with_target(req.uri(), &new) {
                    *req.uri_mut() = uri;
                }
            }
        }
        let (req, uninspected) = request::body(req, Arc::clone(r), coding, spool_dir).await?;
        Ok(Applied { req, uninspected })
    }

    /// The new value of one header, when a placeholder is in it (also
    /// inside `Authorization: Basic`, where git puts its token).
    fn header_value(&self, name: &header::HeaderName, value: &[u8]) -> Option<Vec<u8>> {
        let mut out: Option<Vec<u8>> = None;
        let replacers = self.everywhere.iter().map(|r| r.as_ref()).chain(
            self.by_header
                .iter()
                .filter(|(i, _)| {
                    self.secrets
                        .iter()
                        .nth(*i)
                        .and_then(|s| s.headers())
                        .is_some_and(|hs| hs.contains(name))
                })
                .map(|(_, r)| r),
        );
        for r in replacers {
            let current = out.as_deref().unwrap_or(value);
            if let Some(new) = r.replace_all(current) {
                out = Some(new);
            } else if name == header::AUTHORIZATION {
                if let Some(new) = basic(r, current) {
                    out = Some(new);
                }
            }
        }
        out
    }
}

/// Replaces every header value `f` rewrites (keeping the order of a
/// name's values); returns how many were replaced. A rewrite that is not a
/// valid header value leaves the original.
fn rewrite_headers(
    headers: &mut http::HeaderMap,
    f: impl Fn(&header::HeaderName, &[u8]) -> Option<Vec<u8>>,
) -> usize {
    let mut replaced = 0;
    let names: Vec<header::HeaderName> = headers.keys().cloned().collect();
    for name in names {
        let values: Vec<HeaderValue> = headers.get_all(&name).iter().cloned().collect();
        let mut changed = false;
        let new: Vec<HeaderValue> = values
            .iter()
            .map(
                |v| match f(&name, v.as_bytes()).and_then(|b| HeaderValue::from_bytes(&b).ok()) {
                    Some(nv) => {
                        changed = true;
                        replaced += 1;
                        nv
                    }
                    None => v.clone(),
                },
            )
            .collect();
        if changed {
            headers.remove(&name);
            for v in new {
                headers.append(name.clone(), v);
            }
        }
    }
    replaced
}

/// Scrubs every header value of `h`: `r`'s patterns, also inside
/// `Basic` credentials.
fn scrub_headers(r: &Replacer, h: &mut http::HeaderMap) {
    rewrite_headers(h, |_, v| r.replace_all(v).or_else(|| basic(r, v)));
}

/// Frames a held body of `len` bytes by its length, or by chunks when
/// trailers follow it (only chunked framing can carry them on HTTP/1).
fn set_length(h: &mut http::HeaderMap, len: u64, trailers: bool) {
    h.remove(header::TRANSFER_ENCODING);
    if trailers {
        h.remove(header::CONTENT_LENGTH);
    } else {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
}

/// Was `dest` pinned, or answered by the DNS interceptor, for a name the
/// secret is bound to?
fn pinned_for(pinned: &Pinned, s: &Secret, dest: std::net::IpAddr) -> bool {
    pinned.known_as(dest, |name| s.bound_to(name))
}

/// `Basic base64(user:pass)` with a placeholder inside the credentials.
fn basic(r: &Replacer, value: &[u8]) -> Option<Vec<u8>> {
    let b64 = strip_prefix_ci(value, b"basic ")?;
    let engine = base64::engine::general_purpose::STANDARD;
    let decoded = engine.decode(b64.trim_ascii()).ok()?;
    let new = r.replace_all(&decoded)?;
    let mut out = value[..value.len() - b64.len()].to_vec();
    out.extend_from_slice(engine.encode(new).as_bytes());
    Some(out)
}

fn strip_prefix_ci<'a>(v: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    (v.len() >= prefix.len() && v[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &v[prefix.len()..])
}

fn with_target(uri: &Uri, pq: &[u8]) -> Option<Uri> {
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(http::uri::PathAndQuery::try_from(pq).ok()?);
    Uri::from_parts(parts).ok()
}
