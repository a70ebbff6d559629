//! HTTP/2 from the workload, served on the `h2` crate directly: every
//! stream's request goes through [`Conn::handle`] exactly as an HTTP/1
//! one does, its body streams to the upstream under HTTP/2 flow control,
//! and the response streams back the same way.
//!
//! Owns the HTTP/2 side of one intercepted connection: the handshake and
//! its settings, one task per stream, the `100 Continue` for a client
//! holding its body back (sent when the upstream first asks for the body),
//! and cancelling the upstream exchange when the client resets a stream.
//!
//! It must never send `100 Continue` for a request that did not pass the
//! checks (only a forwarded request's body is asked for), never change a
//! body's bytes, and never end a stream cleanly when the body behind it
//! failed: the stream is reset instead, so the client cannot take a
//! truncated response for a whole one.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use ::h2::server::{Builder, SendResponse};
use ::h2::{Reason, RecvStream, SendStream};
use bytes::Bytes;
use http::{header, HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;

use super::h1::HEAD_LIMIT;
use super::respond::Body;
use super::serve::Conn;
use super::trace::Stage;
use super::upstream::BoxError;

/// Receive window of one stream: at most this much of a request body waits
/// in the proxy when the upstream reads slower than the client sends. Large,
/// because a client bug is bounded by it: libcurl 7.88 (Debian 12) reads a
/// streamed body again after its end when the window ran out just before
/// that end, and git's read callback then blocks for good (README, "Known
/// limits"). A body that fits in the window never waits for one.
const STREAM_WINDOW: u32 = 16 << 20;
/// Receive window of the whole connection: a few streams at full speed.
const CONNECTION_WINDOW: u32 = 32 << 20;
/// A connection with no stream open this long is closed.
const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(90);
/// Streams a client may have open at once; each one is a task and
/// possibly an upstream connection.
const MAX_STREAMS: u32 = 256;

/// Serves HTTP/2 on `io` until the client leaves or breaks the protocol.
pub(super) async fn serve<IO>(conn: Arc<Conn>, io: IO)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handshake = Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_concurrent_streams(MAX_STREAMS)
        // Above the proxy's own limit, so an oversized head reaches
        // `Conn::handle` and gets its 431 with a reason rather than a bare
        // stream reset.
        .max_header_list_size(4 * HEAD_LIMIT as u32)
        .handshake::<_, Bytes>(io);
    let mut h2 = match handshake.await {
        Ok(h2) => h2,
        Err(e) => return report(&conn, &e),
    };
    // Accepting is also what drives the connection (reading frames,
    // writing what the stream tasks queued), so this loop runs until the
    // connection is over, whatever the streams are doing. A connection
    // with no stream open for IDLE_TIMEOUT is closed with a GOAWAY, as an
    // idle HTTP/1 connection is.
    let open = Arc::new(AtomicUsize::new(0));
    let mut closing = false;
    loop {
        let next = if closing {
            h2.accept().await
        } else {
            match tokio::time::timeout(IDLE_TIMEOUT, h2.accept()).await {
                Ok(next) => next,
                // Streams still running: look again after another period.
                Err(_) => {
                    if open.load(Ordering::Acquire) == 0 {
                        h2.graceful_shutdown();
                        closing = true;
                    }
                    continue;
                }
            }
        };
        match next {
            None => return,
            Some(Ok((req, respond))) => {
                let open = Arc::clone(&open);
                open.fetch_add(1, Ordering::AcqRel);
                let conn = Arc::clone(&conn);
                tokio::spawn(async move {
                    stream(conn, req, respond).await;
                    open.fetch_sub(1, Ordering::AcqRel);
                });
            }
            Some(Err(e)) => return report(&conn, &e),
        }
    }
}

/// Makes a protocol violation the proxy detected visible to the user
/// (the client only sees a GOAWAY). A client that just closes, or ends the
/// connection itself, is not news.
fn report(conn: &Conn, e: &::h2::Error) {
    if e.is_go_away() && e.is_library() && e.reason() != Some(Reason::NO_ERROR) {
        let reason = format!("HTTP/2 connection error: {e}");
        drop(conn.refuse_malformed(StatusCode::BAD_REQUEST, &reason));
    }
}

/// One request and its response.
async fn stream(conn: Arc<Conn>, req: Request<RecvStream>, mut respond: SendResponse<Bytes>) {
    if let Some(s) = &conn.stamps {
        s.begin();
        s.mark(Stage::Parsed);
    }
    let expect_continue = req
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let length = content_length(req.headers());
    let (asked_tx, asked_rx) = oneshot::channel();
    let asked_tx = expect_continue.then_some(asked_tx);
    let mut asked = expect_continue.then_some(asked_rx);
    let req = req.map(|recv| RecvBody::new(recv, length, asked_tx).boxed());

    let mut handle = pin!(conn.handle(req, true));
    let resp = poll_fn(|cx| {
        // The answer is polled first: a refusal is ready at its first
        // poll, so the body a refusal drains (which asks for it too) can
        // never get a 100 out for it.
        if let Poll::Ready(resp) = handle.as_mut().poll(cx) {
            return Poll::Ready(Some(resp));
        }
        if let Some(rx) = asked.as_mut() {
            if let Poll::Ready(first_poll) = Pin::new(rx).poll(cx) {
                asked = None;
                if first_poll.is_ok() {
                    let mut interim = Response::new(());
                    *interim.status_mut() = StatusCode::CONTINUE;
                    // Failing means the stream is gone: the reset check
                    // below ends the exchange.
                    let _ = respond.send_informational(interim);
                }
            }
        }
        // The client gave up on the request: dropping `handle` drops the
        // upstream exchange with it.
        if respond.poll_reset(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await;
    let Some(resp) = resp else { return };

    let (mut parts, body) = resp.into_parts();
    strip_connection_headers(&mut parts.headers);
    let end = body.is_end_stream();
    match respond.send_response(Response::from_parts(parts, ()), end) {
        Ok(tx) if !end => send_body(tx, body).await,
        Ok(_) => {}
        Err(_) => respond.send_reset(Reason::INTERNAL_ERROR),
    }
    if let Some(s) = &conn.stamps {
        s.finish();
    }
}

/// The Content-Length a request announced, if one valid one.
fn content_length(h: &HeaderMap) -> Option<u64> {
    let mut all = h.get_all(header::CONTENT_LENGTH).iter();
    match (all.next(), all.next()) {
        (Some(v), None) => v.to_str().ok()?.parse().ok(),
        _ => None,
    }
}

/// HTTP/2 has no connection-specific fields and `h2` refuses to send a
/// head with any (a refusal's `Connection: close` is for HTTP/1 only).
fn strip_connection_headers(h: &mut HeaderMap) {
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::HeaderName::from_static("keep-alive"),
        header::HeaderName::from_static("proxy-connection"),
    ] {
        h.remove(name);
    }
    if h.get(header::TE).is_some_and(|v| v != "trailers") {
        h.remove(header::TE);
    }
}

/// Streams `body` to the client; stops when the client resets the
/// stream, which drops the upstream response.
async fn send_body(mut tx: SendStream<Bytes>, mut body: Body) {
    loop {
        let frame = poll_fn(|cx| {
            if tx.poll_reset(cx).is_ready() {
                return Poll::Ready(None);
            }
            Pin::new(&mut body).poll_frame(cx).map(Some)
        })
        .await;
        let Some(frame) = frame else { return };
        match frame {
            // The body ended after a frame that did not say so: an empty
            // DATA frame carries the end of the stream.
            None => {
                let _ = tx.send_data(Bytes::new(), true);
                return;
            }
            Some(Err(_)) => return tx.send_reset(Reason::INTERNAL_ERROR),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    let last = body.is_end_stream();
                    if send_data(&mut tx, data, last).await.is_err() || last {
                        return;
                    }
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        if tx.send_trailers(trailers).is_err() {
                            tx.send_reset(Reason::INTERNAL_ERROR);
                        }
                        return;
                    }
                }
            },
        }
    }
}

/// The stream was reset or the connection is gone.
struct Gone;

/// Sends `data` in pieces no larger than the window the client granted,
/// so what waits in `h2`'s send buffer stays bounded however large the
/// upstream's chunks are (the pieces share the chunk's memory); `last`
/// ends the stream with the final piece.
async fn send_data(tx: &mut SendStream<Bytes>, mut data: Bytes, last: bool) -> Result<(), Gone> {
    if data.is_empty() {
        return match last {
            true => tx.send_data(data, true).map_err(|_| Gone),
            false => Ok(()),
        };
    }
    while !data.is_empty() {
        tx.reserve_capacity(data.len());
        let granted = poll_fn(|cx| {
            if tx.poll_reset(cx).is_ready() {
                return Poll::Ready(None);
            }
            match tx.capacity() {
                0 => tx.poll_capacity(cx),
                n => Poll::Ready(Some(Ok(n))),
            }
        })
        .await;
        let n = match granted {
            Some(Ok(n)) => n.min(data.len()),
            Some(Err(_)) | None => return Err(Gone),
        };
        let piece = data.split_to(n);
        tx.send_data(piece, last && data.is_empty())
            .map_err(|_| Gone)?;
    }
    Ok(())
}

/// A client's request body as the upstream reads it: data frames, then
/// trailers if the client sent any.
struct RecvBody {
    recv: RecvStream,
    data_done: bool,
    /// Bytes still to come, when the client announced a length.
    left: Option<u64>,
    /// Told at the first poll, for `Expect: 100-continue`.
    asked: Option<oneshot::Sender<()>>,
}

impl RecvBody {
    fn new(recv: RecvStream, length: Option<u64>, asked: Option<oneshot::Sender<()>>) -> RecvBody {
        // A stream ended with its head has no body, whatever it announced.
        let left = if recv.is_end_stream() {
            Some(0)
        } else {
            length
        };
        RecvBody {
            recv,
            data_done: false,
            left,
            asked,
        }
    }
}

impl HttpBody for RecvBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let me = &mut *self;
        if let Some(asked) = me.asked.take() {
            let _ = asked.send(());
        }
        if !me.data_done {
            match ready!(me.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    // The window reopens as the upstream takes the data, so
                    // the client sends no faster than the upstream reads.
                    let _ = me.recv.flow_control().release_capacity(data.len());
                    if let Some(left) = &mut me.left {
                        *left = left.saturating_sub(data.len() as u64);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                // Any reset, even one with NO_ERROR, leaves the body short:
                // the upstream request is aborted rather than completed.
                Some(Err(e)) => return Poll::Ready(Some(Err(Box::new(e)))),
                None => me.data_done = true,
            }
        }
        match ready!(me.recv.poll_trailers(cx)) {
            Ok(trailers) => Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t)))),
            Err(e) => Poll::Ready(Some(Err(Box::new(e)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.left
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}
