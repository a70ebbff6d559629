//! Request bodies: placeholders become real values on the way up.
//!
//! An identity body streams through the matcher (patterns split across
//! chunk, read and frame boundaries are found) when the substitution
//! keeps its length or it declares none; when the length changes and was
//! declared, it is held (memory, then a private file) and sent with the
//! fixed Content-Length: never truncated, never refused for its size, and
//! never sent chunked to a server that was promised a length. A gzip,
//! deflate, br or zstd body is held and decoded to look; a body in another
//! coding goes on as it is, and the caller is told so it can say so.
//!
//! It must never pass on part of a body as if it were all of it.

use std::path::Path;
use std::sync::Arc;

use http::{header, Request};
use http_body_util::BodyExt;
use hyper::body::Body;

use super::codec::Coding;
use super::hold::{hold_encoded, hold_identity, BodyError, Dir};
use super::set_length;
use super::stream::Streaming;
use crate::proxy::upstream::ReqBody;
use crate::secrets::matcher::Replacer;

/// Substitutes `r` into `req`'s body, which is in `coding` (read before
/// the headers were substituted). Returns the request and, for a body
/// sandlock could not look into, its coding.
pub(super) async fn body(
    req: Request<ReqBody>,
    r: Arc<Replacer>,
    coding: Coding,
    spool_dir: Arc<Path>,
) -> Result<(Request<ReqBody>, Option<String>), BodyError> {
    if req.body().is_end_stream() {
        return Ok((req, None));
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (mut parts, body) = req.into_parts();
    let (held, trailers) = match coding {
        Coding::Other(name) => return Ok((Request::from_parts(parts, body), Some(name))),
        Coding::Known(kind) => hold_encoded(body, kind, r, Dir::Request, spool_dir).await?,
        Coding::Identity if r.same_lengths() || declared.is_none() => {
            let body = Streaming::new(body, r).boxed();
            return Ok((Request::from_parts(parts, body), None));
        }
        Coding::Identity => hold_identity(body, r, Dir::Request, spool_dir).await?,
    };
    set_length(&mut parts.headers, held.len(), trailers.is_some());
    let body = held.into_body(trailers).boxed();
    Ok((Request::from_parts(parts, body), None))
}
