//! Response scrubbing: in a response from a host the connection's
//! secrets are bound to, their real values (raw, percent-encoded, in
//! base64 as inside Basic credentials) become placeholders in the headers,
//! the trailers and the body, so an upstream that echoes a request cannot
//! hand the workload a secret.
//!
//! Identity bodies are scrubbed as they stream. gzip, deflate, br and zstd
//! bodies are held whole and decoded to look: without a value inside they
//! go on exactly as received, otherwise the scrubbed content is encoded
//! again with the same coding and its length set.
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
use super::hold::{hold_encoded, BodyError, Dir};
use super::stream::Streaming;
use super::{scrub_headers, set_length, Plan};
use crate::proxy::respond;
use crate::proxy::upstream::BoxError;

impl Plan {
    /// Scrubs `resp`. `bodiless`: the response has no body whatever its
    /// headers say (an answer to HEAD, a 204 or a 304), so only its
    /// headers are scrubbed. Encoded bodies are held in memory up to the
    /// spool's bound, beyond it in a private file in `spool_dir`.
    pub(in crate::proxy) async fn scrub<B>(
        &self,
        resp: Response<B>,
        bodiless: bool,
        spool_dir: Arc<Path>,
    ) -> Result<Response<respond::Body>, BodyError>
    where
        B: Body<Data = Bytes> + Send + Sync + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        let (mut parts, body) = resp.into_parts();
        let r = &self.scrub;
        scrub_headers(r, &mut parts.headers);
        if bodiless || body.is_end_stream() {
            let body = body.map_err(Into::into).boxed();
            return Ok(Response::from_parts(parts, body));
        }
        match coding(&parts.headers) {
            Coding::Identity => {
                if !r.same_lengths() {
                    // The length may change: the framing is chosen
                    // downstream.
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
}
