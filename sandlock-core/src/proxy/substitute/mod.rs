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
//! This module must never log, format or store a real value.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine;
use bytes::Bytes;
use http::{header, HeaderValue, Request, Uri};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};

use super::upstream::{BoxError, ReqBody};
use crate::network::{canonical_ip, Pinned};
use crate::secrets::matcher::{Replacer, StreamReplacer};
use crate::secrets::{Secret, Secrets};

/// Bodies whose length changes are held in memory up to this size so
/// their Content-Length can be fixed; larger ones go upstream chunked.
const BUFFER_LIMIT: usize = 32 << 20;

/// The secrets one connection may carry, and where.
pub(super) struct Plan {
    /// Placeholder → value for headers named by every eligible secret.
    everywhere: Option<Arc<Replacer>>,
    /// Secrets restricted to some header names: (secret index, replacer).
    by_header: Vec<(usize, Replacer)>,
    /// Indices of the secrets this connection may carry.
    eligible: Vec<usize>,
    /// Real value (raw, percent-encoded, base64) → placeholder, for
    /// responses.
    scrub: Arc<Replacer>,
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
        let mut back: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for (_, s) in &eligible {
            back.push((s.value().to_vec(), s.placeholder().to_vec()));
            let pct: String =
                percent_encoding::percent_encode(s.value(), percent_encoding::NON_ALPHANUMERIC)
                    .collect();
            if pct.as_bytes() != s.value() {
                back.push((pct.into_bytes(), s.placeholder().to_vec()));
            }
            back.extend(base64_forms(s.value(), s.placeholder()));
        }
        let back_pairs: Vec<(&[u8], &[u8])> = back
            .iter()
            .map(|(v, p)| (v.as_slice(), p.as_slice()))
            .collect();
        let scrub = Arc::new(Replacer::new(&back_pairs));
        Some(Plan {
            everywhere,
            by_header,
            scrub,
            eligible: eligible.iter().map(|(i, _)| *i).collect(),
            secrets: Arc::clone(secrets),
        })
    }

    /// May the secret at index `i` travel on this connection?
    pub(super) fn carries(&self, i: usize) -> bool {
        self.eligible.contains(&i)
    }

    /// Substitutes into `req`'s headers, target and body; returns the
    /// request and how many placeholders were replaced in its head. Fails
    /// only when a body held to fix its length could not be read.
    pub(super) async fn apply(
        &self,
        mut req: Request<ReqBody>,
    ) -> Result<(Request<ReqBody>, usize), BoxError> {
        let mut replaced = 0;
        let replaced_headers =
            rewrite_headers(req.headers_mut(), |name, v| self.header_value(name, v));
        replaced += replaced_headers;
        if let Some(r) = &self.everywhere {
            if let Some(pq) = req.uri().path_and_query() {
                if let Some(new) = r.replace_all(pq.as_str().as_bytes()) {
                    if let Some(uri) = with_target(req.uri(), &new) {
                        *req.uri_mut() = uri;
                        replaced += 1;
                    }
                }
            }
            req = self.body(req, Arc::clone(r)).await?;
        }
        Ok((req, replaced))
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

    /// Replaces placeholders in the body: as it streams when lengths are
    /// kept (or the length is not declared), otherwise by reading it whole
    /// (up to [`BUFFER_LIMIT`]) so its Content-Length can be fixed.
    async fn body(
        &self,
        req: Request<ReqBody>,
        r: Arc<Replacer>,
    ) -> Result<Request<ReqBody>, BoxError> {
        if req.body().is_end_stream() {
            return Ok(req);
        }
        match coding(req.headers()) {
            Coding::Identity => {}
            Coding::Known(kind) => return self.encoded_body(req, r, kind).await,
            // An unknown coding cannot be looked into: it goes as it is.
            Coding::Other => return Ok(req),
        }
        let (mut parts, body) = req.into_parts();
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if !r.same_lengths() {
            if let Some(n) = declared {
                parts.headers.remove(header::CONTENT_LENGTH);
                if n <= BUFFER_LIMIT {
                    let whole = read_whole(body).await?;
                    let out = match r.replace_all(&whole) {
                        Some(new) => Bytes::from(new),
                        None => whole,
                    };
                    parts
                        .headers
                        .insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
                    let body = http_body_util::Full::new(out)
                        .map_err(|never| match never {})
                        .boxed();
                    return Ok(Request::from_parts(parts, body));
                }
                // Too large to hold: sent chunked, its length unknown upfront.
            }
        }
        let body = Streaming::new(body, r).boxed();
        Ok(Request::from_parts(parts, body))
    }
}

impl Plan {
    /// Scrubs a response from a host the connection's secrets are bound
    /// to: their real values (raw, percent-encoded, inside Basic
    /// credentials) become placeholders in headers and identity bodies, so
    /// an upstream that echoes a request cannot hand the workload a secret.
    pub(super) fn scrub<B>(&self, resp: http::Response<B>) -> http::Response<B::Output>
    where
        B: Scrubbable,
    {
        let (mut parts, body) = resp.into_parts();
        let r = &self.scrub;
        rewrite_headers(&mut parts.headers, |_, v| {
            r.replace_all(v).or_else(|| basic(r, v))
        });
        let encoded = parts
            .headers
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
        if encoded {
            return http::Response::from_parts(parts, body.keep());
        }
        if !r.same_lengths() {
            // The length may change: the framing is chosen downstream.
            parts.headers.remove(header::CONTENT_LENGTH);
        }
        http::Response::from_parts(parts, body.scrubbed(Arc::clone(r)))
    }
}

/// A response body type the scrubber can wrap.
pub(super) trait Scrubbable: Sized {
    /// What the scrubbed (or kept) body becomes.
    type Output;
    /// The body as it is.
    fn keep(self) -> Self::Output;
    /// The body with `r` applied as it streams.
    fn scrubbed(self, r: Arc<Replacer>) -> Self::Output;
}

impl Scrubbable for hyper::body::Incoming {
    type Output = super::respond::Body;

    fn keep(self) -> Self::Output {
        self.boxed()
    }

    fn scrubbed(self, r: Arc<Replacer>) -> Self::Output {
        Streaming::new(self, r).boxed()
    }
}

/// How a request body is encoded.
enum Coding {
    Identity,
    /// A coding sandlock decodes and encodes.
    Known(Codec),
    Other,
}

#[derive(Clone, Copy)]
enum Codec {
    Gzip,
    /// `deflate`: zlib-wrapped, as HTTP means it.
    Zlib,
    Brotli,
    Zstd,
}

fn coding(h: &http::HeaderMap) -> Coding {
    let mut codings = h.get_all(header::CONTENT_ENCODING).iter();
    match (codings.next(), codings.next()) {
        (None, _) => Coding::Identity,
        (Some(v), None) => match v.as_bytes().to_ascii_lowercase().as_slice() {
            b"identity" => Coding::Identity,
            b"gzip" | b"x-gzip" => Coding::Known(Codec::Gzip),
            b"deflate" => Coding::Known(Codec::Zlib),
            b"br" => Coding::Known(Codec::Brotli),
            b"zstd" => Coding::Known(Codec::Zstd),
            _ => Coding::Other,
        },
        _ => Coding::Other,
    }
}

/// Decoded bodies larger than this are not inspected: a compression
/// bomb is refused rather than expanded.
const DECODED_LIMIT: u64 = 256 << 20;

impl Plan {
    /// A gzip, deflate, br or zstd body: decoded to look; the original bytes go on
    /// unchanged when no placeholder is inside, otherwise the substituted
    /// content is encoded again with the same coding and its length set.
    async fn encoded_body(
        &self,
        req: Request<ReqBody>,
        r: Arc<Replacer>,
        kind: Codec,
    ) -> Result<Request<ReqBody>, BoxError> {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_none_or(|n| n > BUFFER_LIMIT) {
            // Not held to look at (no length, or too long): it goes as it
            // is, never refused for its size.
            return Ok(req);
        }
        let (mut parts, body) = req.into_parts();
        let raw = read_whole(body).await?;
        let decoded = inflate(&raw, kind)?;
        let out = match r.replace_all(&decoded) {
            None => raw,
            Some(new) => Bytes::from(deflate(&new, kind)?),
        };
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
        parts.headers.remove(header::TRANSFER_ENCODING);
        let body = http_body_util::Full::new(out)
            .map_err(|never| match never {})
            .boxed();
        Ok(Request::from_parts(parts, body))
    }
}

fn inflate(raw: &[u8], kind: Codec) -> Result<Vec<u8>, BoxError> {
    use std::io::Read;
    let mut out = Vec::new();
    let limit = DECODED_LIMIT + 1;
    let read = match kind {
        Codec::Gzip => flate2::read::MultiGzDecoder::new(raw)
            .take(limit)
            .read_to_end(&mut out),
        Codec::Zlib => flate2::read::ZlibDecoder::new(raw)
            .take(limit)
            .read_to_end(&mut out),
        Codec::Brotli => brotli::Decompressor::new(raw, 4096)
            .take(limit)
            .read_to_end(&mut out),
        Codec::Zstd => {
            zstd::stream::read::Decoder::new(raw).and_then(|d| d.take(limit).read_to_end(&mut out))
        }
    };
    read.map_err(|e| format!("cannot decode the request body: {e}"))?;
    if out.len() as u64 > DECODED_LIMIT {
        return Err("request body expands beyond 256 MiB when decoded".into());
    }
    Ok(out)
}

fn deflate(content: &[u8], kind: Codec) -> Result<Vec<u8>, BoxError> {
    use std::io::Write;
    let level = flate2::Compression::default();
    Ok(match kind {
        Codec::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), level);
            e.write_all(content)?;
            e.finish()?
        }
        Codec::Zlib => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), level);
            e.write_all(content)?;
            e.finish()?
        }
        Codec::Brotli => {
            let mut out = Vec::new();
            {
                let mut e = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                e.write_all(content)?;
            }
            out
        }
        Codec::Zstd => zstd::stream::encode_all(content, 3)?,
    })
}

/// Reads a body of at most [`BUFFER_LIMIT`] bytes.
async fn read_whole(mut body: ReqBody) -> Result<Bytes, BoxError> {
    let mut whole = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if whole.len() + data.len() > BUFFER_LIMIT {
                return Err("request body longer than its Content-Length".into());
            }
            whole.extend_from_slice(&data);
        }
    }
    Ok(whole.freeze())
}

/// The base64 spellings of `value` inside any base64 text (such as an
/// echoed `Basic` credential), paired with the placeholder's: for each of
/// the three alignments a value can sit at, the characters that depend on
/// its bytes alone. Only for same-length placeholders, whose bytes line up;
/// the two or fewer bytes at either end that share a group with their
/// neighbours stay as they were.
fn base64_forms(value: &[u8], placeholder: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    if value.len() != placeholder.len() || value.len() < 6 {
        return Vec::new();
    }
    let engine = base64::engine::general_purpose::STANDARD;
    (0..3)
        .filter_map(|skip| {
            let usable = (value.len() - skip) / 3 * 3;
            (usable >= 3).then(|| {
                let range = skip..skip + usable;
                (
                    engine.encode(&value[range.clone()]).into_bytes(),
                    engine.encode(&placeholder[range]).into_bytes(),
                )
            })
        })
        .collect()
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

/// Was `dest` pinned for a name the secret is bound to?
fn pinned_for(pinned: &Pinned, s: &Secret, dest: std::net::IpAddr) -> bool {
    pinned
        .entries()
        .any(|(name, ips)| s.bound_to(name) && ips.contains(&dest))
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

/// A body rewritten as it streams (same-length replacements, or a body
/// sent without a declared length): requests on their way up, responses on
/// their way down.
struct Streaming<B> {
    inner: B,
    matcher: StreamReplacer,
    /// Every replacement has its pattern's length.
    keeps_length: bool,
    /// Trailers that arrived while bytes were still held back.
    trailers: Option<http::HeaderMap>,
    done: bool,
}

impl<B> Streaming<B> {
    fn new(inner: B, r: Arc<Replacer>) -> Streaming<B> {
        Streaming {
            inner,
            keeps_length: r.same_lengths(),
            matcher: StreamReplacer::new(r),
            trailers: None,
            done: false,
        }
    }
}

impl<B> Body for Streaming<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let me = &mut *self;
        loop {
            if let Some(t) = me.trailers.take() {
                me.done = true;
                return Poll::Ready(Some(Ok(Frame::trailers(t))));
            }
            if me.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut me.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        let out = me.matcher.push(data);
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                    // Trailers end the data: what was held back goes
                    // first, the trailers on the next poll.
                    Err(frame) => {
                        let tail = me.matcher.finish();
                        match frame.into_trailers() {
                            Ok(t) => me.trailers = Some(t),
                            Err(_) => me.done = true,
                        }
                        if !tail.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(tail))));
                        }
                    }
                },
                Poll::Ready(None) => {
                    me.done = true;
                    let tail = me.matcher.finish();
                    if !tail.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(tail))));
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        // Same-length replacement keeps the exact size; otherwise it is
        // unknown until the end.
        if self.keeps_length {
            self.inner.size_hint()
        } else {
            SizeHint::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echoed `Basic user:value` loses the value whatever the user
    /// name's length: only the bytes sharing a base64 group with the
    /// neighbours at each end may stay.
    #[test]
    fn base64_forms_cover_every_alignment() {
        let value = b"ghp_realsecretvalue_1234567890";
        let placeholder = b"x07yAJmu2mwAbDsbDbNZYdUQf2V7OX";
        let pairs = base64_forms(value, placeholder);
        let refs: Vec<(&[u8], &[u8])> = pairs
            .iter()
            .map(|(a, b)| (a.as_slice(), b.as_slice()))
            .collect();
        let r = Replacer::new(&refs);
        let engine = base64::engine::general_purpose::STANDARD;
        for user in ["", "x", "xy", "x-access-token"] {
            let echoed = engine.encode([user.as_bytes(), b":", value].concat());
            let scrubbed = r.replace_all(echoed.as_bytes()).expect("found");
            let decoded = engine.decode(&scrubbed).unwrap();
            // The middle of the value is gone from the decoded text.
            let middle = &value[3..value.len() - 3];
            assert!(
                !decoded.windows(middle.len()).any(|w| w == middle),
                "user {user:?}: {:?}",
                String::from_utf8_lossy(&decoded)
            );
        }
        assert!(base64_forms(b"short", b"SLKP_xxxxxxxxxxxxxxxxxxx").is_empty());
    }

    #[test]
    fn every_codec_round_trips() {
        let text = b"v=placeholder_0123456789&w=placeholder_0123456789".repeat(50);
        for kind in [Codec::Gzip, Codec::Zlib, Codec::Brotli, Codec::Zstd] {
            let packed = deflate(&text, kind).unwrap();
            assert!(packed.len() < text.len());
            assert_eq!(inflate(&packed, kind).unwrap(), text);
        }
    }

    #[test]
    fn bombs_and_garbage_are_refused() {
        // 300 MiB of zeros packs into well under a MiB. (zstd only: the
        // pure-Rust deflate is slow to build a bomb with in a debug build,
        // and every codec shares the bound below.)
        let zeros = vec![0u8; 300 << 20];
        let bomb = deflate(&zeros, Codec::Zstd).unwrap();
        assert!(bomb.len() < 1 << 20);
        let e = inflate(&bomb, Codec::Zstd).unwrap_err().to_string();
        assert!(e.contains("256 MiB"), "{e}");
        for kind in [Codec::Gzip, Codec::Zlib, Codec::Brotli, Codec::Zstd] {
            let e = inflate(b"\x1f\x8b\x08\x00garbage", kind)
                .unwrap_err()
                .to_string();
            assert!(e.contains("cannot decode"), "{e}");
        }
    }
}
