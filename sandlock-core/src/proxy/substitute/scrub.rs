//! Response scrubbing: in every response the proxy forwards in a sandbox
//! that holds secrets, whichever host it comes from, each value in each of
//! its spellings (see `forms`) becomes its stand-in in the headers, the
//! trailers and the body. Scrubbing only the hosts a value is bound to is
//! not enough: the workload can send the placeholder to a bound host that
//! keeps what it gets (a gist, an issue, a paste) and read it back,
//! substituted, through any other host it may reach.
//!
//! Identity bodies are scrubbed as they stream, and since every
//! replacement has its pattern's length a body keeps its length: a
//! response with no value in it reaches the workload byte for byte, with
//! its Content-Length. gzip, deflate, br and zstd bodies are held whole
//! and decoded to look: without a value inside they go on exactly as
//! received, otherwise the scrubbed content is encoded again with the
//! same coding and its length set.
//!
//! It fails closed: a body in a coding sandlock cannot read (unknown,
//! stacked, corrupt, a bomb) is never passed on unscrubbed; the caller
//! answers with a 502 instead. It must never log or format a body.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Response};
use http_body_util::BodyExt;
use hyper::body::Body;

use super::codec::{coding, Coding};
use super::forms::scrub_pairs;
use super::hold::{hold_encoded, BodyError, Dir};
use super::stream::Streaming;
use super::{scrub_headers, set_length};
use crate::proxy::respond;
use crate::proxy::upstream::BoxError;
use crate::secrets::matcher::Replacer;
use crate::secrets::Secrets;

/// Every spelling of every value → its stand-in; `None` without secrets.
pub(in crate::proxy) fn scrubber(secrets: &Secrets) -> Option<Arc<Replacer>> {
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = secrets
        .iter()
        .flat_map(|s| scrub_pairs(s.value(), s.placeholder()))
        .collect();
    if pairs.is_empty() {
        return None;
    }
    let refs: Vec<(&[u8], &[u8])> = pairs
        .iter()
        .map(|(p, r)| (p.as_slice(), r.as_slice()))
        .collect();
    Some(Arc::new(Replacer::new(&refs)))
}

/// Scrubs `resp` with `r`. `bodiless`: the response has no body whatever
/// its headers say (an answer to HEAD, a 204 or a 304), so only its
/// headers are scrubbed. Encoded bodies are held in memory up to the
/// spool's bound, beyond it in a private file in `spool_dir`.
pub(in crate::proxy) async fn scrub<B>(
    resp: Response<B>,
    r: &Arc<Replacer>,
    bodiless: bool,
    spool_dir: Arc<Path>,
) -> Result<Response<respond::Body>, BodyError>
where
    B: Body<Data = Bytes> + Send + Sync + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = resp.into_parts();
    scrub_headers(r, &mut parts.headers);
    if bodiless || body.is_end_stream() {
        let body = body.map_err(Into::into).boxed();
        return Ok(Response::from_parts(parts, body));
    }
    match coding(&parts.headers) {
        Coding::Identity => {
            if !r.same_lengths() {
                // Every spelling's stand-in has its length (see `forms`);
                // should one not, the framing is chosen downstream.
                parts.headers.remove(header::CONTENT_LENGTH);
            }
            let body = Streaming::with_trailers(body, Arc::clone(r))
                .map_err(Into::into)
                .boxed();
            Ok(Response::from_parts(parts, body))
        }
        Coding::Known(kind) => {
            let (held, trailers) =
                hold_encoded(body, kind, Arc::clone(r), Dir::Response, spool_dir).await?;
            let trailers = trailers.map(|mut t| {
                scrub_headers(r, &mut t);
                t
            });
            set_length(&mut parts.headers, held.len(), trailers.is_some());
            let body = held.into_body(trailers).boxed();
            Ok(Response::from_parts(parts, body))
        }
        Coding::Other(name) => Err(BodyError::Unknown {
            dir: Dir::Response,
            coding: name,
        }),
    }
}
