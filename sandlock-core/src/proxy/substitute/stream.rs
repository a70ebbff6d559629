//! Identity bodies rewritten as they stream: request bodies whose length
//! a substitution keeps (or that declare none), and response bodies being
//! scrubbed. Nothing is buffered beyond the matcher's held-back tail.
//!
//! It must never change a byte outside a complete pattern, and never end a
//! body cleanly when the one behind it failed.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use crate::secrets::matcher::{Replacer, StreamReplacer};

/// A body rewritten as it streams.
pub(super) struct Streaming<B> {
    inner: B,
    matcher: StreamReplacer,
    /// Every replacement has its pattern's length.
    keeps_length: bool,
    /// Rewrites the trailers too (a response's: they are headers that come
    /// late, and may echo a value as well as any other).
    trailers_with: Option<Arc<Replacer>>,
    /// Trailers that arrived while bytes were still held back.
    trailers: Option<http::HeaderMap>,
    done: bool,
}

impl<B> Streaming<B> {
    pub(super) fn new(inner: B, r: Arc<Replacer>) -> Streaming<B> {
        Streaming {
            inner,
            keeps_length: r.same_lengths(),
            matcher: StreamReplacer::new(r),
            trailers_with: None,
            trailers: None,
            done: false,
        }
    }

    /// The same, also rewriting the trailers with `r`.
    pub(super) fn with_trailers(inner: B, r: Arc<Replacer>) -> Streaming<B> {
        let mut s = Streaming::new(inner, Arc::clone(&r));
        s.trailers_with = Some(r);
        s
    }
}

impl<B> Body for Streaming<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let me = &mut *self;
        loop {
            if let Some(t) = me.trailers.take() {
                me.done = true;
                return Poll::Ready(Some(Ok(Frame::trailers(t))));
            }
            if me.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut me.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        let out = me.matcher.push(data);
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                    // Trailers end the data: what was held back goes
                    // first, the trailers on the next poll.
                    Err(frame) => {
                        let tail = me.matcher.finish();
                        match frame.into_trailers() {
                            Ok(mut t) => {
                                if let Some(r) = &me.trailers_with {
                                    super::scrub_headers(r, &mut t);
                                }
                                me.trailers = Some(t);
                            }
                            Err(_) => me.done = true,
                        }
                        if !tail.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(tail))));
                        }
                    }
                },
                Poll::Ready(None) => {
                    me.done = true;
                    let tail = me.matcher.finish();
                    if !tail.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(tail))));
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        // Same-length replacement keeps the exact size; otherwise it is
        // unknown until the end.
        if self.keeps_length {
            self.inner.size_hint()
        } else {
            SizeHint::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::frames::Frames;
    use http_body_util::BodyExt;
    use std::collections::VecDeque;

    fn framed() -> Frames {
        let mut t = http::HeaderMap::new();
        t.insert("x-echo", "Bearer real-value-1234".parse().unwrap());
        Frames(VecDeque::from([
            Frame::data(Bytes::from_static(b"a real-va")),
            Frame::data(Bytes::from_static(b"lue-1234 b")),
            Frame::trailers(t),
        ]))
    }

    /// A response's trailers are scrubbed like its body; a request's pass
    /// as they are.
    #[tokio::test]
    async fn trailers_are_rewritten_only_when_asked() {
        let r = Arc::new(Replacer::new(&[(b"real-value-1234", b"PLACEHOLDER-xyz")]));
        let got = Streaming::with_trailers(framed(), Arc::clone(&r))
            .collect()
            .await
            .unwrap();
        assert_eq!(got.trailers().unwrap()["x-echo"], "Bearer PLACEHOLDER-xyz");
        assert_eq!(&got.to_bytes()[..], b"a PLACEHOLDER-xyz b");
        let got = Streaming::new(framed(), r).collect().await.unwrap();
        assert_eq!(got.trailers().unwrap()["x-echo"], "Bearer real-value-1234");
        assert_eq!(&got.to_bytes()[..], b"a PLACEHOLDER-xyz b");
    }
}
