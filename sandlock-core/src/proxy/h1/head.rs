//! Strict parsing of an HTTP/1.x request head.
//!
//! Anything a server and the proxy could read two ways is refused before a
//! byte goes upstream: bare LF line ends, obs-fold, Content-Length together
//! with Transfer-Encoding, repeated or malformed Content-Length, a
//! Transfer-Encoding other than a single `chunked`, and request lines that
//! are not HTTP/1.0 or HTTP/1.1.

use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Uri, Version};

/// Largest request head accepted (request line and headers), and the
/// bound on a trailer section.
pub(crate) const HEAD_LIMIT: usize = 64 * 1024;
/// Most header fields in one head.
const MAX_FIELDS: usize = 256;

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A request head that passed every check.
#[derive(Debug)]
pub(super) struct Head {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    pub framing: Framing,
    /// The client wants the connection kept open after this request.
    pub keep_alive: bool,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
}

/// Why a head was refused; becomes a 400 or 431.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Malformed or ambiguous: 400.
    Bad(&'static str),
    /// Too large: 431.
    TooLarge(&'static str),
}

/// Where the head in `buf` ends (just past its blank line), if it is
/// complete. A head without one within [`HEAD_LIMIT`] is refused.
pub(super) fn head_end(buf: &[u8]) -> Result<Option<usize>, Refusal> {
    // Leading empty lines before a request line are tolerated (RFC 9112).
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n');
    let Some(start) = start else {
        return check_size(buf.len()).map(|_| None);
    };
    check_request_line_start(&buf[start..])?;
    // Offsets within `buf`, so they cannot overflow; checked all the same,
    // as every offset derived from the workload's bytes is.
    let end = memchr::memmem::find(&buf[start..], b"\r\n\r\n")
        .map(|i| start.checked_add(i).and_then(|e| e.checked_add(4)));
    match end {
        Some(Some(end)) if end <= HEAD_LIMIT => Ok(Some(end)),
        Some(_) => Err(Refusal::TooLarge("request head larger than 64 KiB")),
        None => {
            if memchr::memmem::find(&buf[start..], b"\n\n").is_some() {
                return Err(Refusal::Bad("bare LF line ending"));
            }
            check_size(buf.len()).map(|_| None)
        }
    }
}

/// Refuses at once what cannot be the start of a request line, so garbage
/// gets its 400 without waiting for a blank line that never comes: the
/// line must open with a method token, and hold no control bytes.
fn check_request_line_start(line: &[u8]) -> Result<(), Refusal> {
    const GARBAGE: Refusal = Refusal::Bad("not an HTTP request");
    if !line
        .first()
        .is_some_and(|&b| crate::policy::is_token_byte(b))
    {
        return Err(GARBAGE);
    }
    let end = memchr::memchr(b'\n', line).unwrap_or(line.len());
    let line = &line[..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(GARBAGE);
    }
    Ok(())
}

fn check_size(len: usize) -> Result<(), Refusal> {
    if len > HEAD_LIMIT {
        Err(Refusal::TooLarge("request head larger than 64 KiB"))
    } else {
        Ok(())
    }
}

/// Parses and checks the complete head `raw` (ending in CRLF CRLF).
pub(super) fn parse(raw: &[u8]) -> Result<Head, Refusal> {
    let raw = &raw[raw
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(0)..];
    for (i, &b) in raw.iter().enumerate() {
        if b == b'\n' && (i == 0 || raw[i - 1] != b'\r') {
            return Err(Refusal::Bad("bare LF line ending"));
        }
        if b == b'\r' && raw.get(i + 1) != Some(&b'\n') {
            return Err(Refusal::Bad("bare CR in the request head"));
        }
        if (b == b' ' || b == b'\t') && i >= 2 && raw[i - 1] == b'\n' {
            return Err(Refusal::Bad("obsolete line folding"));
        }
    }
    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut req = httparse::Request::new(&mut fields);
    match req.parse(raw) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(Refusal::Bad("incomplete request head")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal::TooLarge("more than 256 header fields"))
        }
        Err(httparse::Error::Version) => return Err(Refusal::Bad("not an HTTP/1.x request")),
        Err(_) => return Err(Refusal::Bad("malformed request head")),
    }
    let version = match req.version {
        Some(0) => Version::HTTP_10,
        Some(1) => Version::HTTP_11,
        _ => return Err(Refusal::Bad("not an HTTP/1.x request")),
    };
    let method = Method::from_bytes(req.method.unwrap_or("").as_bytes())
        .map_err(|_| Refusal::Bad("malformed method"))?;
    let uri: Uri = req
        .path
        .unwrap_or("")
        .parse()
        .map_err(|_| Refusal::Bad("malformed request target"))?;
    if uri.path_and_query().is_none() && method != Method::OPTIONS {
        return Err(Refusal::Bad("request target has no path"));
    }
    let mut headers = HeaderMap::with_capacity(req.headers.len());
    for f in req.headers.iter() {
        let name = HeaderName::from_bytes(f.name.as_bytes())
            .map_err(|_| Refusal::Bad("malformed header name"))?;
        let value =
            HeaderValue::from_bytes(f.value).map_err(|_| Refusal::Bad("malformed header value"))?;
        headers.append(name, value);
    }
    let framing = framing(&headers, version)?;
    let keep_alive = keep_alive(&headers, version);
    let expect_continue = match headers.get(header::EXPECT) {
        None => false,
        Some(v) if v.as_bytes().eq_ignore_ascii_case(b"100-continue") => true,
        Some(_) => return Err(Refusal::Bad("unsupported Expect")),
    };
    Ok(Head {
        method,
        uri,
        version,
        headers,
        framing,
        keep_alive,
        expect_continue,
    })
}

fn framing(headers: &HeaderMap, version: Version) -> Result<Framing, Refusal> {
    let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
    let mut encodings = headers.get_all(header::TRANSFER_ENCODING).iter();
    let length = lengths.next();
    let encoding = encodings.next();
    if lengths.next().is_some() {
        return Err(Refusal::Bad("more than one Content-Length"));
    }
    if encodings.next().is_some() {
        return Err(Refusal::Bad("more than one Transfer-Encoding"));
    }
    match (length, encoding) {
        (Some(_), Some(_)) => Err(Refusal::Bad("both Content-Length and Transfer-Encoding")),
        (None, Some(te)) => {
            if version == Version::HTTP_10 {
                return Err(Refusal::Bad("Transfer-Encoding in an HTTP/1.0 request"));
            }
            if te.as_bytes().eq_ignore_ascii_case(b"chunked") {
                Ok(Framing::Chunked)
            } else {
                Err(Refusal::Bad("Transfer-Encoding other than chunked"))
            }
        }
        (Some(cl), None) => {
            let text = cl.as_bytes();
            if text.is_empty() || text.len() > 19 || !text.iter().all(u8::is_ascii_digit) {
                return Err(Refusal::Bad("malformed Content-Length"));
            }
            let n: u64 = std::str::from_utf8(text)
                .ok()
                .and_then(|t| t.parse().ok())
                .ok_or(Refusal::Bad("malformed Content-Length"))?;
            Ok(if n == 0 {
                Framing::Empty
            } else {
                Framing::Length(n)
            })
        }
        (None, None) => Ok(Framing::Empty),
    }
}

fn keep_alive(headers: &HeaderMap, version: Version) -> bool {
    let has = |token: &str| {
        headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    if version == Version::HTTP_10 {
        has("keep-alive")
    } else {
        !has("close")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(s: &str) -> Result<Head, Refusal> {
        let raw = s.as_bytes();
        let end = head_end(raw)?.expect("complete");
        parse(&raw[..end])
    }

    #[test]
    fn accepts_plain_requests() {
        let h = head("GET /a?b HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(
            (h.method, h.framing, h.keep_alive),
            (Method::GET, Framing::Empty, true)
        );
        let h = head("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n").unwrap();
        assert_eq!(h.framing, Framing::Length(5));
        let h = head("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n").unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        let h = head("GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(!h.keep_alive);
        let h = head("\r\nGET / HTTP/1.1\r\nConnection: close\r\nExpect: 100-continue\r\n\r\n")
            .unwrap();
        assert!(!h.keep_alive && h.expect_continue);
    }

    #[test]
    fn refuses_ambiguity() {
        for (raw, why) in [
            (
                "POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
                "both Content-Length and Transfer-Encoding",
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
                "more than one Content-Length",
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n",
                "malformed Content-Length",
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                "Transfer-Encoding other than chunked",
            ),
            (
                "GET / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n",
                "obsolete line folding",
            ),
            ("GET / HTTP/1.1\nHost: x\r\n\r\n", "bare LF line ending"),
            ("GET / HTTP/2.0\r\n\r\n", "not an HTTP/1.x request"),
            (
                "GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n",
                "bare CR in the request head",
            ),
        ] {
            assert_eq!(head(raw).unwrap_err(), Refusal::Bad(why), "{raw:?}");
        }
        assert_eq!(
            head_end(b"GET / HTTP/1.1\nHost: x\n\n"),
            Err(Refusal::Bad("bare LF line ending"))
        );
    }

    #[test]
    fn refuses_garbage_before_a_blank_line() {
        assert_eq!(
            head_end(b"\x9c\x01garbage"),
            Err(Refusal::Bad("not an HTTP request"))
        );
        assert_eq!(
            head_end(b"GET /\x00x"),
            Err(Refusal::Bad("not an HTTP request"))
        );
        assert_eq!(
            head_end(b"\r\n(GET"),
            Err(Refusal::Bad("not an HTTP request"))
        );
        assert_eq!(head_end(b"GET /a HTTP/1.1\r"), Ok(None));
        assert_eq!(head_end(b"GE"), Ok(None));
    }

    #[test]
    fn bounds_the_head() {
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(HEAD_LIMIT));
        assert!(matches!(
            head_end(big.as_bytes()),
            Err(Refusal::TooLarge(_))
        ));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nX: a"), Ok(None));
    }

    /// Lengths from the workload: the largest a u64 holds is a length,
    /// anything past it (or signed, spaced, hex) is refused, never wrapped.
    #[test]
    fn hostile_content_lengths() {
        let cl = |v: &str| head(&format!("POST / HTTP/1.1\r\nContent-Length: {v}\r\n\r\n"));
        assert_eq!(
            cl("18446744073709551615").unwrap_err(),
            Refusal::Bad("malformed Content-Length")
        );
        assert_eq!(
            cl("9999999999999999999").unwrap().framing,
            Framing::Length(9_999_999_999_999_999_999)
        );
        for bad in [
            "18446744073709551616",
            "99999999999999999999999",
            "-1",
            "0x10",
            "1 2",
            "1,1",
            "",
        ] {
            assert_eq!(
                cl(bad).unwrap_err(),
                Refusal::Bad("malformed Content-Length"),
                "{bad:?}"
            );
        }
        assert_eq!(cl("0").unwrap().framing, Framing::Empty);
        assert_eq!(
            cl("00000000000000000007").unwrap_err(),
            Refusal::Bad("malformed Content-Length")
        );
    }

    use proptest::prelude::*;

    /// A request line and headers as a client writes them.
    fn request_text(method: &str, path: &str, fields: &[(String, String)]) -> String {
        let mut t = format!("{method} {path} HTTP/1.1\r\n");
        for (k, v) in fields {
            t.push_str(&format!("{k}: {v}\r\n"));
        }
        t.push_str("\r\n");
        t
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any bytes: no panic; a head found ends inside the input and
        /// within the limit, and parsing it does not panic either.
        #[test]
        fn any_bytes(raw in proptest::collection::vec(any::<u8>(), 0..1500)) {
            if let Ok(Some(end)) = head_end(&raw) {
                prop_assert!(end <= raw.len() && end <= HEAD_LIMIT);
                let _ = parse(&raw[..end]);
            }
        }

        /// Bytes that look like a head, with hostile pieces in it.
        #[test]
        fn hostile_heads(
            method in "[A-Z]{1,7}",
            pieces in proptest::collection::vec(prop_oneof![
                Just("\r\n".to_string()),
                Just("\n".to_string()),
                Just("\r".to_string()),
                Just(" ".to_string()),
                Just("\t".to_string()),
                Just(": ".to_string()),
                Just("Content-Length: ".to_string()),
                Just("Transfer-Encoding: chunked".to_string()),
                "[ -~]{0,12}",
                "[0-9]{1,24}",
            ], 0..24),
        ) {
            let raw = format!("{method} /{} HTTP/1.1\r\n\r\n", pieces.concat());
            if let Ok(Some(end)) = head_end(raw.as_bytes()) {
                prop_assert!(end <= raw.len());
                let _ = parse(&raw.as_bytes()[..end]);
            }
        }

        /// A well-formed head parses to what was written: method, target,
        /// every field (repeated names in order), framing.
        #[test]
        fn heads_round_trip(
            method in prop_oneof![Just("GET"), Just("POST"), Just("DELETE"), Just("PATCH"), Just("X-CUSTOM")],
            path in "(/[a-zA-Z0-9._~%!$&'()*+,;=:@-]{0,12}){1,4}(\\?[a-z0-9=&]{0,16})?",
            fields in proptest::collection::vec(("x-[a-z0-9-]{1,12}", "[!-~]([ -~]{0,30}[!-~])?"), 0..12),
            length in proptest::option::of(0u64..1 << 40),
        ) {
            let mut all = fields.clone();
            if let Some(n) = length {
                all.push(("content-length".into(), n.to_string()));
            }
            let text = request_text(method, &path, &all);
            let h = head(&text).expect("a valid head");
            prop_assert_eq!(h.method.as_str(), method);
            prop_assert_eq!(h.uri.to_string(), path);
            for (k, _) in &fields {
                let want: Vec<&str> =
                    fields.iter().filter(|(n, _)| n == k).map(|(_, v)| v.as_str()).collect();
                let got: Vec<&[u8]> = h.headers.get_all(k.as_str()).iter().map(|v| v.as_bytes()).collect();
                prop_assert_eq!(got, want.iter().map(|v| v.as_bytes()).collect::<Vec<_>>());
            }
            let framing = match length {
                None | Some(0) => Framing::Empty,
                Some(n) => Framing::Length(n),
            };
            prop_assert_eq!(h.framing, framing);
            prop_assert!(h.keep_alive);
        }
    }
}
