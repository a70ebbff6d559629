//! Protocol switches: the WebSocket opening handshake (RFC 6455 §4) is the
//! only one the proxy lets turn a connection into a byte tunnel.
//!
//! After a `101 Switching Protocols` the proxy no longer sees requests, so
//! a tunnel is an exit from the access list: `Upgrade: h2c` and a 101 from
//! a willing upstream would carry any number of HTTP/2 requests past
//! `--http-allow` unread (h2c smuggling). So a request's `Upgrade` offer is
//! forwarded only when the request is a WebSocket handshake, and a 101 is
//! passed on only when it completes that handshake (its
//! `Sec-WebSocket-Accept` answers the request's key). Any other upgrade
//! token is stripped rather than refused: `Upgrade` is hop-by-hop (RFC 9110
//! §7.8), an intermediary that does not speak the protocol drops the offer,
//! and clients that offer h2c or TLS opportunistically (curl `--http2` on
//! an `http://` URL) then get the plain HTTP/1.1 answer they can read. A
//! 101 that completes no WebSocket handshake is refused with 502, so the
//! upstream's bytes never become a tunnel.
//!
//! This module must never accept a handshake it did not check in full.

use base64::Engine;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method};

/// RFC 6455 §1.3: appended to the key before hashing.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// The decoded length of a `Sec-WebSocket-Key` (RFC 6455 §4.1).
const KEY_LEN: usize = 16;

/// The `Sec-WebSocket-Key` of a WebSocket opening handshake, when the
/// request is one: a GET, `Upgrade: websocket` alone, `upgrade` among the
/// `Connection` tokens, and one key that is 16 bytes in base64.
pub(super) fn websocket_key(method: &Method, h: &HeaderMap) -> Option<HeaderValue> {
    if method != Method::GET || !only_websocket(h) || !has_token(h, header::CONNECTION, "upgrade") {
        return None;
    }
    let key = single(h, header::SEC_WEBSOCKET_KEY)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(key.as_bytes().trim_ascii())
        .ok()?;
    (decoded.len() == KEY_LEN).then(|| key.clone())
}

/// The `Sec-WebSocket-Accept` that answers `key`: base64(SHA-1(key +
/// GUID)).
pub(super) fn accept_for(key: &[u8]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key.trim_ascii());
    ctx.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(ctx.finish())
}

/// Whether a 101's headers complete the handshake opened with `key`;
/// otherwise why not.
pub(super) fn check_switch(h: &HeaderMap, key: &HeaderValue) -> Result<(), &'static str> {
    if !only_websocket(h) {
        return Err("a 101 whose Upgrade is not websocket alone");
    }
    if !has_token(h, header::CONNECTION, "upgrade") {
        return Err("a 101 without Connection: upgrade");
    }
    let accept =
        single(h, header::SEC_WEBSOCKET_ACCEPT).ok_or("a 101 without one Sec-WebSocket-Accept")?;
    if accept.as_bytes().trim_ascii() != accept_for(key.as_bytes()).as_bytes() {
        return Err("a 101 whose Sec-WebSocket-Accept does not answer the key");
    }
    Ok(())
}

/// One `Upgrade` value whose only token is `websocket`.
fn only_websocket(h: &HeaderMap) -> bool {
    single(h, header::UPGRADE).is_some_and(|v| {
        let mut tokens = tokens(v);
        tokens
            .next()
            .is_some_and(|t| t.eq_ignore_ascii_case("websocket"))
            && tokens.next().is_none()
    })
}

fn has_token(h: &HeaderMap, name: HeaderName, token: &str) -> bool {
    h.get_all(name)
        .iter()
        .flat_map(tokens)
        .any(|t| t.eq_ignore_ascii_case(token))
}

/// The comma-separated tokens of a value (none when it is not text).
fn tokens(v: &HeaderValue) -> impl Iterator<Item = &str> {
    v.to_str()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The value of a header that occurs exactly once.
fn single(h: &HeaderMap, name: HeaderName) -> Option<&HeaderValue> {
    let mut all = h.get_all(name).iter();
    match (all.next(), all.next()) {
        (Some(v), None) => Some(v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    /// RFC 6455 §1.3's example key and answer.
    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    #[test]
    fn the_rfc_example_handshake() {
        assert_eq!(accept_for(KEY.as_bytes()), ACCEPT);
        let req = headers(&[
            ("upgrade", "WebSocket"),
            ("connection", "keep-alive, Upgrade"),
            ("sec-websocket-key", KEY),
        ]);
        let key = websocket_key(&Method::GET, &req).expect("a handshake");
        let resp = headers(&[
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-accept", ACCEPT),
        ]);
        assert_eq!(check_switch(&resp, &key), Ok(()));
    }

    #[test]
    fn other_upgrades_are_no_handshake() {
        let ok = [
            ("upgrade", "websocket"),
            ("connection", "upgrade"),
            ("sec-websocket-key", KEY),
        ];
        assert!(websocket_key(&Method::GET, &headers(&ok)).is_some());
        assert!(websocket_key(&Method::POST, &headers(&ok)).is_none());
        for bad in [
            vec![
                ("upgrade", "h2c"),
                ("connection", "upgrade"),
                ("sec-websocket-key", KEY),
            ],
            vec![
                ("upgrade", "websocket, h2c"),
                ("connection", "upgrade"),
                ("sec-websocket-key", KEY),
            ],
            vec![
                ("upgrade", "websocket"),
                ("upgrade", "h2c"),
                ("connection", "upgrade"),
                ("sec-websocket-key", KEY),
            ],
            vec![("upgrade", "websocket"), ("sec-websocket-key", KEY)],
            vec![("upgrade", "websocket"), ("connection", "upgrade")],
            vec![
                ("upgrade", "websocket"),
                ("connection", "upgrade"),
                ("sec-websocket-key", "c2hvcnQ="),
            ],
            vec![
                ("upgrade", "websocket"),
                ("connection", "upgrade"),
                ("sec-websocket-key", "not base64!"),
            ],
            vec![
                ("upgrade", "websocket"),
                ("connection", "upgrade"),
                ("sec-websocket-key", KEY),
                ("sec-websocket-key", KEY),
            ],
        ] {
            assert!(
                websocket_key(&Method::GET, &headers(&bad)).is_none(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_101_must_answer_the_key() {
        let key = HeaderValue::from_static(KEY);
        let resp = |pairs: &[(&str, &str)]| check_switch(&headers(pairs), &key);
        assert_eq!(
            resp(&[("upgrade", "h2c"), ("connection", "upgrade")]),
            Err("a 101 whose Upgrade is not websocket alone")
        );
        assert_eq!(
            resp(&[("upgrade", "websocket"), ("sec-websocket-accept", ACCEPT)]),
            Err("a 101 without Connection: upgrade")
        );
        assert_eq!(
            resp(&[("upgrade", "websocket"), ("connection", "upgrade")]),
            Err("a 101 without one Sec-WebSocket-Accept")
        );
        assert_eq!(
            resp(&[
                ("upgrade", "websocket"),
                ("connection", "upgrade"),
                ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOp="),
            ]),
            Err("a 101 whose Sec-WebSocket-Accept does not answer the key")
        );
    }
}
