//! Transfer codings of an upstream's HTTP/1.1 response, other than the
//! final `chunked` (which hyper reads): `Transfer-Encoding: gzip, chunked`.
//!
//! A transfer coding belongs to one hop, and the proxy removes the header
//! with the other hop-by-hop ones; passing the coded bytes on without it
//! would hand the workload a body in a coding nobody told it about, which
//! it could still decode itself, while the secret scrubber, which reads
//! `Content-Encoding`, took it for identity and saw nothing. So the proxy
//! decodes what it forwards: gzip (`x-gzip`) and deflate are decoded as
//! the body streams, a piece at a time; any other transfer coding (or more
//! than one, or `chunked` anywhere but last) is refused with 502.
//!
//! The content is what the upstream meant to send: decoding a transfer
//! coding changes the framing of a message, never its bytes. It must never
//! pass on a body it could not decode as if it were whole.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, HeaderMap, Response};
use hyper::body::{Body, Frame, SizeHint};

use super::substitute::codec::{coding_tokens, printable, Codec, DecodeError, Decoder};
use super::upstream::BoxError;

/// Coded bytes decoded per step: deflate expands at most about 1032
/// times, so one step makes about 1 MiB at most.
const PIECE: usize = 1024;

/// The transfer coding of a response's body, besides `chunked`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Transfer {
    /// None (or only `chunked`).
    Plain,
    /// One coding sandlock decodes.
    Coded(Codec),
}

/// The transfer coding `h` declares, or (printable) the codings sandlock
/// cannot decode.
pub(super) fn coding(h: &HeaderMap) -> Result<Transfer, String> {
    let mut tokens = coding_tokens(h, header::TRANSFER_ENCODING);
    if tokens.last().is_some_and(|t| t == "chunked") {
        tokens.pop();
    }
    match tokens.as_slice() {
        [] => Ok(Transfer::Plain),
        [one] if one == "gzip" || one == "x-gzip" => Ok(Transfer::Coded(Codec::Gzip)),
        [one] if one == "deflate" => Ok(Transfer::Coded(Codec::Zlib)),
        other => Err(printable(&other.join(", "))),
    }
}

/// `resp` with its body's transfer coding decoded; the header goes, and
/// a Content-Length (which a coded body must not have) with it.
pub(super) fn decode<B>(resp: Response<B>, kind: Codec) -> Response<Decoding<B>> {
    let (mut parts, body) = resp.into_parts();
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Decoding::new(body, kind))
}

/// A body decoded as it streams.
pub(super) struct Decoding<B> {
    inner: B,
    kind: Codec,
    decoder: Option<Decoder<Vec<u8>>>,
    /// Coded bytes received but not decoded yet.
    pending: Bytes,
    /// Trailers that arrived with the end of the data.
    trailers: Option<HeaderMap>,
    /// The coded data ended (the decoder is finished).
    ended: bool,
}

impl<B> Decoding<B> {
    fn new(inner: B, kind: Codec) -> Decoding<B> {
        Decoding {
            inner,
            kind,
            decoder: Decoder::streaming(kind, Vec::new()).ok(),
            pending: Bytes::new(),
            trailers: None,
            ended: false,
        }
    }

    /// Decodes the next piece of `pending`; what came out of it.
    fn step(&mut self) -> Result<Bytes, BoxError> {
        let kind = self.kind;
        let Some(d) = self.decoder.as_mut() else {
            return Err(NO_DECODER.into());
        };
        let piece = self.pending.split_to(self.pending.len().min(PIECE));
        d.write(&piece).map_err(|e| failed(kind, e))?;
        Ok(Bytes::from(std::mem::take(d.output())))
    }

    /// The end of the coded data: the stream must end here too.
    fn finish(&mut self) -> Result<Bytes, BoxError> {
        self.ended = true;
        let Some(d) = self.decoder.take() else {
            return Err(NO_DECODER.into());
        };
        d.finish()
            .map(Bytes::from)
            .map_err(|e| failed(self.kind, e))
    }
}

/// zstd is the only codec whose making can fail, and it is never a
/// transfer coding; still an error rather than a panic.
const NO_DECODER: &str = "the transfer-coding decoder could not be made";

fn failed(kind: Codec, e: DecodeError) -> BoxError {
    let why = match e {
        DecodeError::Corrupt(e) | DecodeError::Sink(e) => e.to_string(),
        DecodeError::TooLarge => "too large".into(),
    };
    format!(
        "cannot decode the response's transfer-coding '{}': {why}",
        kind.name()
    )
    .into()
}

impl<B> Body for Decoding<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let me = &mut *self;
        loop {
            if !me.pending.is_empty() {
                match me.step() {
                    Ok(out) if out.is_empty() => continue,
                    Ok(out) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                    Err(e) => return Poll::Ready(Some(Err(e))),
                }
            }
            if me.ended {
                return Poll::Ready(me.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            let frame = match Pin::new(&mut me.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(Some(Ok(f))) => f,
                Poll::Ready(None) => {
                    return match me.finish() {
                        Ok(tail) if tail.is_empty() => Poll::Ready(None),
                        Ok(tail) => Poll::Ready(Some(Ok(Frame::data(tail)))),
                        Err(e) => Poll::Ready(Some(Err(e))),
                    };
                }
            };
            match frame.into_data() {
                Ok(data) => me.pending = data,
                Err(frame) => {
                    me.trailers = frame.into_trailers().ok();
                    match me.finish() {
                        Ok(tail) if tail.is_empty() => {}
                        Ok(tail) => return Poll::Ready(Some(Ok(Frame::data(tail)))),
                        Err(e) => return Poll::Ready(Some(Err(e))),
                    }
                }
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::frames::Frames;
    use http_body_util::BodyExt;
    use std::collections::VecDeque;
    use std::io::Write;

    fn te(values: &[&str]) -> Result<Transfer, String> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::TRANSFER_ENCODING, v.parse().unwrap());
        }
        coding(&h)
    }

    #[test]
    fn codings_besides_the_final_chunked() {
        assert_eq!(te(&[]), Ok(Transfer::Plain));
        assert_eq!(te(&["chunked"]), Ok(Transfer::Plain));
        assert_eq!(te(&["Chunked"]), Ok(Transfer::Plain));
        assert_eq!(te(&["gzip, chunked"]), Ok(Transfer::Coded(Codec::Gzip)));
        assert_eq!(te(&["x-gzip", "chunked"]), Ok(Transfer::Coded(Codec::Gzip)));
        assert_eq!(te(&["gzip"]), Ok(Transfer::Coded(Codec::Gzip)));
        assert_eq!(te(&["deflate, chunked"]), Ok(Transfer::Coded(Codec::Zlib)));
        assert_eq!(te(&["compress, chunked"]), Err("compress".into()));
        assert_eq!(te(&["br, chunked"]), Err("br".into()));
        assert_eq!(te(&["gzip, gzip, chunked"]), Err("gzip, gzip".into()));
        assert_eq!(te(&["chunked, gzip"]), Err("chunked, gzip".into()));
        assert_eq!(te(&["g\"zip"]), Err("(unrecognised)".into()));
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Decoded whatever the pieces, trailers kept, and no step makes much
    /// more than a piece's worth of a bomb at once.
    #[tokio::test]
    async fn decodes_in_bounded_steps_and_keeps_trailers() {
        let text = b"a".repeat(8 << 20);
        let coded = gzip(&text);
        let mut frames: VecDeque<Frame<Bytes>> = coded
            .chunks(7000)
            .map(|c| Frame::data(Bytes::copy_from_slice(c)))
            .collect();
        let mut t = HeaderMap::new();
        t.insert("x-t", "1".parse().unwrap());
        frames.push_back(Frame::trailers(t));
        let mut body = Decoding::new(Frames(frames), Codec::Gzip);
        let mut got = Vec::new();
        let mut trailers = None;
        while let Some(f) = body.frame().await {
            let f = f.unwrap();
            match f.into_data() {
                Ok(d) => {
                    assert!(d.len() <= 1100 * PIECE, "a step made {} bytes", d.len());
                    got.extend_from_slice(&d);
                }
                Err(f) => trailers = f.into_trailers().ok(),
            }
        }
        assert!(got == text, "decoded {} bytes", got.len());
        assert_eq!(trailers.unwrap()["x-t"], "1");
    }

    #[tokio::test]
    async fn a_truncated_or_corrupt_stream_is_an_error() {
        let coded = gzip(b"some text, long enough to be a stream");
        for bad in [&coded[..coded.len() - 4], b"\x1f\x8b\x08\x00garbage"] {
            let frames = VecDeque::from([Frame::data(Bytes::copy_from_slice(bad))]);
            let e = Decoding::new(Frames(frames), Codec::Gzip)
                .collect()
                .await
                .expect_err("an error");
            assert!(
                e.to_string()
                    .starts_with("cannot decode the response's transfer-coding 'gzip'"),
                "{e}"
            );
        }
    }
}
