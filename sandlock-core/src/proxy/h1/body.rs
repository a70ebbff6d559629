//! HTTP/1.1 request bodies: read from the client by their framing
//! (Content-Length or strictly checked chunked encoding) and streamed to
//! the upstream as they arrive, bytes unchanged.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, oneshot};

use super::head::{Framing, HEAD_LIMIT};
use crate::proxy::upstream::BoxError;

/// Longest chunk-size line (size and extensions) accepted.
const MAX_CHUNK_LINE: usize = 4096;
/// Bytes asked of the socket per read.
pub(super) const READ_SIZE: usize = 16 * 1024;

/// The client side of a connection: its read half and what was read from
/// it but not consumed yet (the start of the next request, when
/// pipelined).
pub(super) struct Reader<R> {
    pub io: R,
    pub buf: BytesMut,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    /// Reads more; false at end of stream.
    pub async fn fill(&mut self) -> std::io::Result<bool> {
        self.fill_up_to(READ_SIZE).await
    }

    /// Reads more into at least `room` bytes of space.
    pub async fn fill_up_to(&mut self, room: usize) -> std::io::Result<bool> {
        self.buf.reserve(room);
        Ok(self.io.read_buf(&mut self.buf).await? > 0)
    }

    async fn need(&mut self) -> Result<(), &'static str> {
        match self.fill().await {
            Ok(true) => Ok(()),
            Ok(false) => Err("client closed the connection mid-body"),
            Err(_) => Err("reading the request body failed"),
        }
    }
}

/// The feeding side of a [`ChannelBody`].
pub(super) type BodySender = mpsc::Sender<Result<Frame<Bytes>, BoxError>>;

/// A request body fed by [`pump`]; tells the pump when the upstream first
/// asks for data (the moment to send `100 Continue`).
pub(crate) struct ChannelBody {
    rx: mpsc::Receiver<Result<Frame<Bytes>, BoxError>>,
    asked: Option<oneshot::Sender<()>>,
    hint: SizeHint,
}

/// A body channel for `framing`: the body, its sending side, and the
/// signal of the first poll.
pub(super) fn channel(framing: Framing) -> (ChannelBody, BodySender, oneshot::Receiver<()>) {
    let (tx, rx) = mpsc::channel(2);
    let (asked_tx, asked_rx) = oneshot::channel();
    let hint = match framing {
        Framing::Empty => SizeHint::with_exact(0),
        Framing::Length(n) => SizeHint::with_exact(n),
        Framing::Chunked => SizeHint::default(),
    };
    let body = ChannelBody {
        rx,
        asked: Some(asked_tx),
        hint,
    };
    (body, tx, asked_rx)
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(asked) = self.asked.take() {
            let _ = asked.send(());
        }
        self.rx.poll_recv(cx)
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

/// Sends a frame; once the upstream stopped listening the rest of the
/// body is read and dropped, so the connection stays in step.
async fn send(tx: &mut Option<BodySender>, f: Frame<Bytes>) {
    if let Some(t) = tx {
        if t.send(Ok(f)).await.is_err() {
            *tx = None;
        }
    }
}

/// Reads one request body from `r` and streams it into `tx`. An error
/// (a framing violation, a client gone mid-body) is also sent, so the
/// upstream request is aborted rather than completed short.
pub(super) async fn pump<R: AsyncRead + Unpin>(
    r: &mut Reader<R>,
    framing: Framing,
    tx: BodySender,
) -> Result<(), &'static str> {
    let mut tx = Some(tx);
    let result = match framing {
        Framing::Empty => Ok(()),
        Framing::Length(n) => copy_exact(r, n, &mut tx).await,
        Framing::Chunked => chunked(r, &mut tx).await,
    };
    if let (Err(why), Some(t)) = (result, &tx) {
        let _ = t.send(Err(why.into())).await;
    }
    result
}

async fn copy_exact<R: AsyncRead + Unpin>(
    r: &mut Reader<R>,
    mut left: u64,
    tx: &mut Option<BodySender>,
) -> Result<(), &'static str> {
    while left > 0 {
        if r.buf.is_empty() {
            r.need().await?;
        }
        let take = r.buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let data = r.buf.split_to(take).freeze();
        // `take` is at most `left`: checked all the same, as every count
        // derived from the workload's bytes is.
        left = left
            .checked_sub(u64::try_from(take).map_err(|_| "chunk larger than memory")?)
            .ok_or("body length underflow")?;
        send(tx, Frame::data(data)).await;
    }
    Ok(())
}

async fn chunked<R: AsyncRead + Unpin>(
    r: &mut Reader<R>,
    tx: &mut Option<BodySender>,
) -> Result<(), &'static str> {
    loop {
        let size = chunk_size(r).await?;
        if size == 0 {
            return trailers(r, tx).await;
        }
        copy_exact(r, size, tx).await?;
        while r.buf.len() < 2 {
            r.need().await?;
        }
        if &r.buf[..2] != b"\r\n" {
            return Err("chunk data not followed by CRLF");
        }
        let _ = r.buf.split_to(2);
    }
}

/// Reads a chunk-size line: hex digits, optional extensions, CRLF.
async fn chunk_size<R: AsyncRead + Unpin>(r: &mut Reader<R>) -> Result<u64, &'static str> {
    const BAD: &str = "invalid chunk size line";
    loop {
        if let Some(end) = memchr::memchr(b'\n', &r.buf) {
            if end >= MAX_CHUNK_LINE {
                return Err(BAD);
            }
            let line = &r.buf[..=end];
            // One line, ended by CRLF, starting with a hex digit: no bare
            // LF or CR inside, no empty size.
            let strict = line.len() >= 3
                && line[end - 1] == b'\r'
                && line[0].is_ascii_hexdigit()
                && !line[..end - 1].contains(&b'\r');
            if !strict {
                return Err(BAD);
            }
            return match httparse::parse_chunk_size(line) {
                Ok(httparse::Status::Complete((used, size))) if used == line.len() => {
                    let _ = r.buf.split_to(used);
                    Ok(size)
                }
                _ => Err(BAD),
            };
        }
        if r.buf.len() > MAX_CHUNK_LINE {
            return Err(BAD);
        }
        r.need().await?;
    }
}

/// The trailer section after the last chunk, sent as a trailers frame.
async fn trailers<R: AsyncRead + Unpin>(
    r: &mut Reader<R>,
    tx: &mut Option<BodySender>,
) -> Result<(), &'static str> {
    const BAD: &str = "malformed trailer section";
    let end = loop {
        if r.buf.starts_with(b"\r\n") {
            let _ = r.buf.split_to(2);
            return Ok(());
        }
        if let Some(i) = memchr::memmem::find(&r.buf, b"\r\n\r\n") {
            break i.checked_add(4).ok_or(BAD)?;
        }
        if r.buf.len() > HEAD_LIMIT {
            return Err("trailer section larger than 64 KiB");
        }
        if r.buf.len() >= 2
            && !r.buf.starts_with(b"\r")
            && memchr::memmem::find(&r.buf, b"\n\n").is_some()
        {
            return Err(BAD);
        }
        r.need().await?;
    };
    let raw = r.buf.split_to(end);
    if raw.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r') {
        return Err(BAD);
    }
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let parsed = match httparse::parse_headers(&raw, &mut fields) {
        Ok(httparse::Status::Complete((_, f))) => f,
        _ => return Err(BAD),
    };
    let mut map = HeaderMap::new();
    for f in parsed {
        let name = http::HeaderName::from_bytes(f.name.as_bytes()).map_err(|_| BAD)?;
        let value = http::HeaderValue::from_bytes(f.value).map_err(|_| BAD)?;
        map.append(name, value);
    }
    send(tx, Frame::trailers(map)).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn run(
        framing: Framing,
        wire: &[u8],
    ) -> (
        Result<(), &'static str>,
        Vec<u8>,
        Option<HeaderMap>,
        Vec<u8>,
    ) {
        let mut r = Reader {
            io: wire,
            buf: BytesMut::new(),
        };
        let (body, tx, _asked) = channel(framing);
        let collect = tokio::spawn(async move { body.collect().await });
        let res = pump(&mut r, framing, tx).await;
        let got = collect.await.unwrap();
        let (data, trailers) = match got {
            Ok(c) => {
                let t = c.trailers().cloned();
                (c.to_bytes().to_vec(), t)
            }
            Err(_) => (b"<aborted>".to_vec(), None),
        };
        (res, data, trailers, r.buf.to_vec())
    }

    #[tokio::test]
    async fn chunked_bodies_stream_and_keep_the_next_request() {
        let (res, data, trailers, rest) = run(
            Framing::Chunked,
            b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\nGET / HTTP/1.1\r\n",
        )
        .await;
        assert_eq!(res, Ok(()));
        assert_eq!(data, b"hello world");
        assert_eq!(trailers.unwrap()["x-t"], "1");
        assert_eq!(rest, b"GET / HTTP/1.1\r\n");
        let (res, data, _, rest) = run(Framing::Length(3), b"abcdef").await;
        assert_eq!(
            (res, data, rest),
            (Ok(()), b"abc".to_vec(), b"def".to_vec())
        );
    }

    /// A reader that hands out its bytes at most `step` at a time, then
    /// `forever` repeated without end (when given).
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        step: usize,
        forever: &'static [u8],
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let me = &mut *self;
            let n = me.step.min(buf.remaining());
            if me.at < me.data.len() {
                let n = n.min(me.data.len() - me.at);
                buf.put_slice(&me.data[me.at..me.at + n]);
                me.at += n;
            } else if !me.forever.is_empty() {
                for i in 0..n {
                    buf.put_slice(&[me.forever[i % me.forever.len()]]);
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    /// `pump` over a `Trickle`: (result, data, trailers, unread rest).
    async fn run_trickle(
        framing: Framing,
        wire: &[u8],
        step: usize,
        forever: &'static [u8],
    ) -> (
        Result<(), &'static str>,
        Vec<u8>,
        Option<HeaderMap>,
        Vec<u8>,
    ) {
        let mut r = Reader {
            io: Trickle {
                data: wire.to_vec(),
                at: 0,
                step: step.max(1),
                forever,
            },
            buf: BytesMut::new(),
        };
        let (body, tx, _asked) = channel(framing);
        let collect = tokio::spawn(async move { body.collect().await });
        let res = pump(&mut r, framing, tx).await;
        let (data, trailers) = match collect.await.expect("collector") {
            Ok(c) => {
                let t = c.trailers().cloned();
                (c.to_bytes().to_vec(), t)
            }
            Err(_) => (b"<aborted>".to_vec(), None),
        };
        (res, data, trailers, r.buf.to_vec())
    }

    /// Sizes and lengths from the workload: the largest a u64 holds is a
    /// size (the body then streams until the client stops), one digit
    /// more is refused, never wrapped.
    #[tokio::test]
    async fn hostile_chunk_sizes() {
        let (res, data, _, _) = run(Framing::Chunked, b"ffffffffffffffff\r\nabc").await;
        assert_eq!(
            (res, data.as_slice()),
            (
                Err("client closed the connection mid-body"),
                &b"<aborted>"[..]
            )
        );
        for wire in [
            &b"10000000000000000\r\nabc"[..],
            b"fffffffffffffffff\r\n",
            b"0000000000000000000000000000001\r\na\r\n0\r\n\r\n",
        ] {
            let (res, ..) = run(Framing::Chunked, wire).await;
            // httparse counts leading zeros as digits too: refused.
            assert_eq!(res, Err("invalid chunk size line"), "{wire:?}");
        }
        let (res, data, _, rest) = run(Framing::Length(u64::MAX), b"abc").await;
        assert_eq!(
            (res, data, rest),
            (
                Err("client closed the connection mid-body"),
                b"<aborted>".to_vec(),
                vec![]
            )
        );
    }

    /// Lines and sections that never end are refused at their bound, not
    /// read forever into memory.
    #[tokio::test]
    async fn endless_lines_are_refused_at_their_bound() {
        let (res, ..) = run_trickle(Framing::Chunked, b"1", 4096, b"1").await;
        assert_eq!(res, Err("invalid chunk size line"));
        let (res, ..) = run_trickle(Framing::Chunked, b"1;", 4096, b"a").await;
        assert_eq!(res, Err("invalid chunk size line"));
        let (res, _, _, rest) = run_trickle(Framing::Chunked, b"0\r\nX: ", 4096, b"a").await;
        assert_eq!(res, Err("trailer section larger than 64 KiB"));
        assert!(rest.len() <= HEAD_LIMIT + READ_SIZE, "{}", rest.len());
    }

    #[tokio::test]
    async fn chunk_framing_violations_abort() {
        for wire in [
            &b"zz\r\nabc\r\n0\r\n\r\n"[..],
            b"\r\n",
            b"3\nabc\r\n0\r\n\r\n",
            b"3;a\nb\r\nabc\r\n0\r\n\r\n",
            b"3\r\nabcX\r\n0\r\n\r\n",
            b"0\r\nX: a\nY: b\r\n\r\n",
            b"3\r\nab",
        ] {
            let (res, data, _, _) = run(Framing::Chunked, wire).await;
            assert!(res.is_err(), "{wire:?}");
            assert_eq!(data, b"<aborted>", "{wire:?}");
        }
    }

    /// A chunked body as a client writes it: `chunks` (each with an
    /// extension when `ext`), then `trailers`, then `rest` (the next
    /// request).
    fn chunked_wire(
        chunks: &[Vec<u8>],
        ext: bool,
        trailers: &[(String, String)],
        rest: &[u8],
    ) -> Vec<u8> {
        let mut w = Vec::new();
        for c in chunks.iter().filter(|c| !c.is_empty()) {
            w.extend_from_slice(format!("{:x}", c.len()).as_bytes());
            if ext {
                w.extend_from_slice(b";name=value");
            }
            w.extend_from_slice(b"\r\n");
            w.extend_from_slice(c);
            w.extend_from_slice(b"\r\n");
        }
        w.extend_from_slice(b"0\r\n");
        for (k, v) in trailers {
            w.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        w.extend_from_slice(b"\r\n");
        w.extend_from_slice(rest);
        w
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(f)
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever the chunks, extensions, trailers and read sizes, the
        /// body comes out whole, the trailers with it, and what follows
        /// stays for the next request.
        #[test]
        fn chunked_round_trips(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..6),
            ext in any::<bool>(),
            trailers in proptest::collection::vec(("x-[a-z]{1,8}", "[a-zA-Z0-9 ]{0,12}[a-z]"), 0..3),
            step in 1usize..64,
        ) {
            let rest = b"GET /next HTTP/1.1\r\n\r\n";
            let wire = chunked_wire(&chunks, ext, &trailers, rest);
            let (res, data, got_trailers, unread) =
                block_on(run_trickle(Framing::Chunked, &wire, step, b""));
            prop_assert_eq!(res, Ok(()));
            prop_assert_eq!(data, chunks.concat());
            if trailers.is_empty() {
                prop_assert!(got_trailers.is_none());
            } else {
                let got = got_trailers.expect("trailers");
                for (k, v) in &trailers {
                    let values: Vec<&str> =
                        got.get_all(k.as_str()).iter().filter_map(|v| v.to_str().ok()).collect();
                    // Leading whitespace is not part of a field value.
                    prop_assert!(values.contains(&v.trim_start()), "{k}: {values:?}");
                }
            }
            prop_assert!(rest.starts_with(&unread), "{unread:?}");
        }

        /// Any bytes at all: no panic, never more data out than bytes in,
        /// and an end (an error at the latest when the input runs out).
        #[test]
        fn chunked_takes_any_bytes(
            wire in proptest::collection::vec(any::<u8>(), 0..600),
            step in 1usize..64,
        ) {
            let (res, data, _, unread) = block_on(run_trickle(Framing::Chunked, &wire, step, b""));
            if res.is_ok() {
                prop_assert!(data.len() <= wire.len());
            } else {
                prop_assert_eq!(data, b"<aborted>".to_vec());
            }
            prop_assert!(unread.len() <= wire.len());
        }

        /// Arbitrary bytes after a valid start: sizes, CRs and LFs where
        /// they are hostile.
        #[test]
        fn chunked_takes_hostile_framing(
            sizes in proptest::collection::vec("[0-9a-fA-F]{1,20}", 1..4),
            junk in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b';'), any::<u8>()], 0..40),
        ) {
            let mut wire = Vec::new();
            for s in &sizes {
                wire.extend_from_slice(s.as_bytes());
                wire.extend_from_slice(b"\r\n");
                wire.extend_from_slice(&junk);
            }
            let (res, data, _, _) = block_on(run_trickle(Framing::Chunked, &wire, 7, b""));
            if res.is_ok() {
                prop_assert!(data.len() <= wire.len());
            }
        }
    }
}
