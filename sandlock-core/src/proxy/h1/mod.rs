//! HTTP/1.x from the workload, read strictly by the proxy itself rather
//! than by a general-purpose server, so every ambiguity is refused with a
//! `sandlock:` response before anything reaches the upstream, and bodies
//! pass through byte for byte.
//!
//! One request at a time per connection (pipelined requests wait in the
//! read buffer); keep-alive, `Expect: 100-continue`, chunked bodies with
//! trailers, and WebSocket upgrades (after a 101 that completes the
//! handshake the connection becomes a byte tunnel; see `upgrade`).

mod body;
mod head;
mod write;

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use self::body::Reader;
pub(crate) use self::head::HEAD_LIMIT;
use self::head::{Framing, Refusal};
use self::write::Asked;
use super::serve::Conn;
use super::trace::{Stage, Stamps};

/// How long an idle keep-alive connection waits for its next request.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Read space for the start of a request head; most heads fit.
const HEAD_ROOM: usize = 2048;
/// A request head must be complete this long after its first byte. The
/// client is a local process that writes its head at once; only a
/// trickling attacker takes longer.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// After a final response on a connection that closes with part of a
/// request unread (a refused upload), what is still read and dropped, so
/// the client gets to read the response: closing a socket with unread
/// input resets it, and a client still sending then never sees the answer.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 8 << 20;

/// Serves requests on `io` until the client or an error ends it.
pub(super) async fn serve<IO>(conn: Arc<Conn>, io: IO)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (rd, mut wr) = tokio::io::split(io);
    let mut r = Reader {
        io: rd,
        buf: BytesMut::new(),
    };
    loop {
        if r.buf.is_empty() {
            // An idle keep-alive connection holds no read buffer: a
            // thousand of them stay small.
            r.buf = BytesMut::new();
        }
        let head = match read_head(&mut r, conn.stamps.as_deref()).await {
            Ok(Some(h)) => h,
            Ok(None) => return,
            Err(refusal) => {
                let (status, why) = match refusal {
                    Refusal::Bad(why) => (StatusCode::BAD_REQUEST, why),
                    Refusal::TooLarge(why) => (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, why),
                };
                let resp = conn.refuse_malformed(status, why);
                let asked = Asked {
                    method: http::Method::GET,
                    version: http::Version::HTTP_11,
                    keep_alive: false,
                };
                let _ = write::response(&mut wr, resp, &asked).await;
                let _ = wr.shutdown().await;
                linger(&mut r.io).await;
                return;
            }
        };
        match exchange(&conn, &mut r, &mut wr, head).await {
            Next::Continue => {}
            Next::Close => {
                let _ = wr.shutdown().await;
                linger(&mut r.io).await;
                return;
            }
            Next::Upgraded(upstream) => {
                let io = r.io.unsplit(wr);
                tunnel(io, r.buf, upstream).await;
                return;
            }
        }
    }
}

/// Reads and drops what the client still sends, within [`LINGER_TIME`]
/// and [`LINGER_BYTES`], until it closes (see [`LINGER_TIME`]).
async fn linger<R: AsyncRead + Unpin>(rd: &mut R) {
    use tokio::io::AsyncReadExt;
    let drain = async {
        let mut scratch = vec![0u8; 16 << 10];
        let mut total = 0;
        while total < LINGER_BYTES {
            match rd.read(&mut scratch).await {
                Ok(0) | Err(_) => return,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}

enum Next {
    Continue,
    Close,
    Upgraded(hyper::upgrade::OnUpgrade),
}

/// Reads the next request head: `None` when the client closed (or went
/// idle too long) between requests.
async fn read_head<R: AsyncRead + Unpin>(
    r: &mut Reader<R>,
    stamps: Option<&Stamps>,
) -> Result<Option<head::Head>, Refusal> {
    let mut deadline = None;
    let mut begun = false;
    loop {
        if !r.buf.is_empty() {
            if let Some(s) = stamps.filter(|_| !begun) {
                s.begin();
                begun = true;
            }
            if let Some(end) = head::head_end(&r.buf)? {
                let raw = r.buf.split_to(end);
                let head = head::parse(&raw).map(Some);
                if let Some(s) = stamps {
                    s.mark(Stage::Parsed);
                }
                return head;
            }
            deadline.get_or_insert_with(|| tokio::time::Instant::now() + HEAD_TIMEOUT);
        }
        let wait = match deadline {
            Some(d) => tokio::time::timeout_at(d, r.fill()).await,
            None => tokio::time::timeout(IDLE_TIMEOUT, r.fill_up_to(HEAD_ROOM)).await,
        };
        match wait {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) | Ok(Err(_)) if r.buf.is_empty() => return Ok(None),
            Ok(Ok(false)) | Ok(Err(_)) => return Err(Refusal::Bad("connection closed mid-head")),
            Err(_) if deadline.is_none() => return Ok(None),
            Err(_) => return Err(Refusal::Bad("request head not received in time")),
        }
    }
}

/// One request and its response.
async fn exchange<R, W>(conn: &Conn, r: &mut Reader<R>, wr: &mut W, head: head::Head) -> Next
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let asked = Asked {
        method: head.method.clone(),
        version: head.version,
        keep_alive: head.keep_alive,
    };
    // The tunnel is opened only after a WebSocket handshake (and
    // `Conn::handle` passes on a 101 only when it completes one).
    let websocket = super::upgrade::websocket_key(&head.method, &head.headers).is_some();
    let framing = head.framing;
    let (body, tx, asked_rx) = body::channel(framing);
    // A request without a body goes upstream without one: no
    // Content-Length or chunked framing is made up for it.
    let body = match framing {
        Framing::Empty => http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed(),
        _ => body.boxed(),
    };
    let mut req = Request::new(body);
    *req.method_mut() = head.method;
    *req.uri_mut() = head.uri;
    *req.version_mut() = head.version;
    *req.headers_mut() = head.headers;

    let expect_continue = head.expect_continue;
    let tx = if framing == Framing::Empty {
        // Nothing to read: the body ends as soon as it is asked for.
        drop(tx);
        None
    } else {
        Some(tx)
    };
    let (resp, pumped) = {
        let handle = conn.handle(req, false);
        tokio::pin!(handle);
        // The body is read once the upstream asks for it, which is also
        // when a client waiting on `Expect: 100-continue` is told to send.
        let pump = async {
            let Some(tx) = tx else { return Ok(()) };
            if asked_rx.await.is_err() {
                return Err("request body never asked for");
            }
            if expect_continue {
                wr.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                    .await
                    .map_err(|_| "writing 100 Continue failed")?;
                wr.flush()
                    .await
                    .map_err(|_| "writing 100 Continue failed")?;
            }
            body::pump(r, framing, tx).await
        };
        tokio::pin!(pump);
        let mut resp = None;
        let mut pumped = None;
        loop {
            tokio::select! {
                biased;
                out = &mut pump, if pumped.is_none() => pumped = Some(out),
                out = &mut handle => resp = Some(out),
            }
            // Answered before the body was read (a refusal, or an
            // upstream that did not want it): reply now and close, rather
            // than read a body nobody will take.
            if resp.is_some() || matches!(pumped, Some(Err(_))) {
                break;
            }
        }
        (resp, pumped)
    };
    let mut resp = match (resp, pumped) {
        // A body that broke its framing voids the request, whatever the
        // upstream made of the part it saw.
        (_, Some(Err(why))) => conn.refuse_malformed(StatusCode::BAD_REQUEST, why),
        (Some(resp), _) => resp,
        (None, _) => unreachable!("the loop ends with a response or a body error"),
    };
    let body_done = matches!(pumped, Some(Ok(())));
    let upgrade = (websocket && resp.status() == StatusCode::SWITCHING_PROTOCOLS)
        .then(|| hyper::upgrade::on(&mut resp));
    let written = write::response(wr, resp, &asked).await;
    if let Some(s) = &conn.stamps {
        s.finish();
    }
    match written {
        Ok(_) if upgrade.is_some() && body_done => Next::Upgraded(upgrade.expect("checked")),
        Ok(true) if body_done => Next::Continue,
        _ => Next::Close,
    }
}

/// After a 101: the client's connection (and what it already sent past
/// the request) and the upstream's become one byte stream.
async fn tunnel<IO>(mut down: IO, early: BytesMut, upstream: hyper::upgrade::OnUpgrade)
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let Ok(up) = upstream.await else { return };
    let mut up = hyper_util::rt::TokioIo::new(up);
    if !early.is_empty() && up.write_all(&early).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
}
