//! An upstream's response on its way to the workload: a 101 is passed on
//! only when it completes the WebSocket handshake the request opened (see
//! `upgrade`), a transfer coding is decoded (see `transfer`), and in a
//! sandbox holding secrets every response is scrubbed of their values
//! (see `substitute::scrub`) before its hop-by-hop headers go.
//!
//! It fails closed: a response it cannot decode or scrub is replaced by a
//! 502 (or the status the failure calls for) that names the reason, and
//! the workload never gets bytes sandlock could not look into.

use std::sync::Arc;

use http::{HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::respond::Body;
use super::serve::strip_hop_by_hop;
use super::transfer::{self, Transfer};
use super::{substitute, upgrade, Shared};

/// Why a response is not passed on: sandlock's answer instead.
pub(super) type Refusal = (StatusCode, String);

/// `resp` as the workload gets it. `ws_key`: the WebSocket key the request
/// offered; `head`: the request was a HEAD.
pub(super) async fn pass_on(
    shared: &Shared,
    resp: Response<Incoming>,
    ws_key: Option<&HeaderValue>,
    head: bool,
) -> Result<Response<Body>, Refusal> {
    let status = resp.status();
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return switch(resp, ws_key);
    }
    // Whatever its headers say, no body follows these.
    let bodiless = head
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let resp = decode_transfer(resp, bodiless)?;
    let mut resp = match &shared.scrub {
        Some(r) => {
            let spool_dir = Arc::clone(&shared.spool_dir);
            substitute::scrub(resp, r, bodiless, spool_dir)
                .await
                .map_err(|e| {
                    let why = format!("response not scrubbed of secrets, so not passed on: {e}");
                    (e.status(), why)
                })?
        }
        None => resp,
    };
    strip_hop_by_hop(resp.headers_mut(), false);
    Ok(resp)
}

/// A 101: passed on, with its hook to the upstream connection for the
/// tunnel, only when it completes the request's WebSocket handshake.
fn switch(
    resp: Response<Incoming>,
    ws_key: Option<&HeaderValue>,
) -> Result<Response<Body>, Refusal> {
    let checked = ws_key
        .ok_or("a 101 to a request that offered no WebSocket")
        .and_then(|key| upgrade::check_switch(resp.headers(), key));
    if let Err(why) = checked {
        let why = format!("upstream switched protocols with {why}; not tunnelled");
        return Err((StatusCode::BAD_GATEWAY, why));
    }
    let mut resp = resp.map(|b| b.map_err(Into::into).boxed());
    strip_hop_by_hop(resp.headers_mut(), true);
    Ok(resp)
}

/// The body with its transfer coding (besides `chunked`) decoded; 502 for
/// one sandlock cannot decode.
fn decode_transfer(resp: Response<Incoming>, bodiless: bool) -> Result<Response<Body>, Refusal> {
    match transfer::coding(resp.headers()) {
        Err(name) => Err((
            StatusCode::BAD_GATEWAY,
            format!("the response is in transfer-coding '{name}', which sandlock cannot decode"),
        )),
        Ok(Transfer::Coded(kind)) if !bodiless => {
            Ok(transfer::decode(resp, kind).map(|b| b.boxed()))
        }
        Ok(_) => Ok(resp.map(|b| b.map_err(Into::into).boxed())),
    }
}
