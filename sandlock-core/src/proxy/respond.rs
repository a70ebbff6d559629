//! Responses sandlock makes itself (400, 403, 421, 431, 500, 502, 504): one
//! text line starting `sandlock:` that names the rule or the reason, and
//! the same decision on sandlock's stderr and in the audit log.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use super::Shared;
use crate::audit::{Event, Verdict};

/// The body type every proxied response uses.
pub(super) type Body = http_body_util::combinators::BoxBody<Bytes, super::upstream::BoxError>;

/// What one request was, for messages: `GET https://api.test/path`.
pub(super) struct Described<'a> {
    pub pid: i32,
    pub what: &'a str,
}

/// Builds a sandlock response and reports it.
pub(super) fn refuse(
    shared: &Shared,
    req: &Described<'_>,
    status: StatusCode,
    reason: &str,
) -> Response<Body> {
    shared.reporter.record(&Event {
        pid: req.pid,
        syscall: "http",
        target: req.what,
        verdict: Verdict::Deny,
        rule: reason,
    });
    let line = format!("sandlock: {} {}: {reason}\n", status.as_u16(), req.what);
    text(status, line)
}

/// Reports an allowed request (audit log only).
pub(super) fn allowed(shared: &Shared, req: &Described<'_>, rule: &str) {
    if shared.reporter.wants_allows() {
        shared.reporter.record(&Event {
            pid: req.pid,
            syscall: "http",
            target: req.what,
            verdict: Verdict::Allow,
            rule,
        });
    }
}

fn text(status: StatusCode, line: String) -> Response<Body> {
    let len = HeaderValue::from(line.len());
    let mut resp = Response::new(Full::new(Bytes::from(line)).map_err(|n| match n {}).boxed());
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, len);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    // After a refusal nothing more on this connection is trusted.
    if status == StatusCode::BAD_REQUEST || status == StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}
