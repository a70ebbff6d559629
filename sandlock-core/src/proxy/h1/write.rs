//! Writing a response to an HTTP/1.x client: the head, then the body
//! framed by its Content-Length, by chunked encoding (with trailers), or
//! by closing the connection for an HTTP/1.0 client. Data bytes are copied
//! as they arrive; small pieces are coalesced only while more is ready.

use std::future::Future;
use std::task::Poll;

use bytes::Buf;
use http::{header, HeaderMap, Method, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Body;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Pending output is written once it reaches this size.
const FLUSH_AT: usize = 16 * 1024;

/// What the request asked for, as far as the response framing goes.
pub(super) struct Asked {
    pub method: Method,
    pub version: Version,
    pub keep_alive: bool,
}

/// Writes `resp`; returns whether the connection may carry another
/// request afterwards.
pub(super) async fn response<W, B>(
    w: &mut W,
    resp: Response<B>,
    asked: &Asked,
) -> std::io::Result<bool>
where
    W: AsyncWrite + Unpin,
    B: Body + Unpin,
    B::Data: Buf,
{
    let (parts, mut body) = resp.into_parts();
    let status = parts.status;
    let no_body = asked.method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let length = parts.headers.contains_key(header::CONTENT_LENGTH);
    let closes = parts
        .headers
        .get(header::CONNECTION)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
    let mut chunked = !no_body && !length && asked.version == Version::HTTP_11;
    let close_delimited = !no_body && !length && !chunked;
    let keep_alive = asked.keep_alive && !closes && !close_delimited;

    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    put_fields(&mut out, &parts.headers, |n| {
        n != header::CONNECTION && n != header::TRANSFER_ENCODING
    });
    if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if !keep_alive && status != StatusCode::SWITCHING_PROTOCOLS {
        out.extend_from_slice(b"connection: close\r\n");
    } else if status == StatusCode::SWITCHING_PROTOCOLS {
        out.extend_from_slice(b"connection: upgrade\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if no_body {
        w.write_all(&out).await?;
        w.flush().await?;
        return Ok(keep_alive);
    }
    loop {
        // Wait for the next frame only after writing what is pending, so
        // a slow stream (server-sent events) is never held back.
        let mut frame = std::pin::pin!(body.frame());
        let next = match std::future::poll_fn(|cx| Poll::Ready(frame.as_mut().poll(cx))).await {
            Poll::Ready(f) => f,
            Poll::Pending => {
                flush(w, &mut out).await?;
                frame.await
            }
        };
        let frame = match next {
            None => break,
            Some(Ok(f)) => f,
            // The upstream broke off mid-body: the client must not take
            // a truncated body for a whole one.
            Some(Err(_)) => {
                flush(w, &mut out).await?;
                return Err(std::io::Error::other("upstream body failed"));
            }
        };
        match frame.into_data() {
            Ok(mut data) => {
                let len = data.remaining();
                if len == 0 {
                    continue;
                }
                if chunked {
                    out.extend_from_slice(format!("{len:x}\r\n").as_bytes());
                }
                if out.len() + len <= FLUSH_AT {
                    while data.has_remaining() {
                        let c = data.chunk();
                        out.extend_from_slice(c);
                        let n = c.len();
                        data.advance(n);
                    }
                } else {
                    // Large pieces go out as they are, without a copy.
                    flush(w, &mut out).await?;
                    w.write_all_buf(&mut data).await?;
                }
                if chunked {
                    out.extend_from_slice(b"\r\n");
                }
            }
            Err(frame) => {
                if let (Ok(trailers), true) = (frame.into_trailers(), chunked) {
                    out.extend_from_slice(b"0\r\n");
                    put_fields(&mut out, &trailers, |_| true);
                    out.extend_from_slice(b"\r\n");
                    chunked = false;
                }
            }
        }
        if out.len() >= FLUSH_AT {
            flush(w, &mut out).await?;
        }
    }
    if chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    flush(w, &mut out).await?;
    w.flush().await?;
    Ok(keep_alive)
}

fn put_fields(out: &mut Vec<u8>, h: &HeaderMap, keep: impl Fn(&header::HeaderName) -> bool) {
    for (name, value) in h {
        if keep(name) {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}

async fn flush<W: AsyncWrite + Unpin>(w: &mut W, out: &mut Vec<u8>) -> std::io::Result<()> {
    if !out.is_empty() {
        w.write_all(out).await?;
        out.clear();
    }
    Ok(())
}
