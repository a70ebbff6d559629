//! Bodies that must be read whole before they go on: an identity request
//! body whose length a substitution changes, and every gzip, deflate, br or
//! zstd body (request or response) that is looked into.
//!
//! Owns the reading loop and what is done to each batch of bytes: the
//! work (file IO, decoding, encoding) runs on the blocking pool a batch at
//! a time, so neither a full disk nor a compression bomb stalls the
//! proxy's two workers, and memory stays within a batch, the spool's
//! in-memory bound and the codecs' windows, whatever the body's size.
//!
//! An encoded body is read once to look (decoded as it arrives, the bytes
//! as received kept in a spool); only when a pattern is inside is it
//! decoded again, rewritten and encoded with the same coding. So a body
//! without a pattern goes on exactly as received.
//!
//! It must never pass on a body it could not read to its end, and never
//! put body bytes (a value, a placeholder) into an error.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Body;

use super::codec::{Codec, DecodeError, Decoder, Encoder, DECODED_LIMIT};
use super::spool::{Spool, SpoolError, Spooled};
use crate::proxy::upstream::BoxError;
use crate::secrets::matcher::{Replacer, StreamReplacer};

/// Bytes read from a body before they are handed to the blocking pool.
const BATCH: usize = 256 << 10;
/// Encoded bytes held at most: the decoded bound applies to them too, so
/// a stream of empty gzip members cannot fill the disk.
const ENCODED_LIMIT: u64 = DECODED_LIMIT;
/// Bytes read back from a spool per step when encoding again.
const REREAD: usize = 64 << 10;

/// Which way a body travels, for messages and statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    Request,
    Response,
}

impl std::fmt::Display for Dir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Dir::Request => "request",
            Dir::Response => "response",
        })
    }
}

/// Why a body could not be held, looked into or rewritten.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("the {0} body could not be read: {1}")]
    Read(Dir, BoxError),
    #[error("cannot decode the {dir} body ({coding}): {source}")]
    Corrupt {
        dir: Dir,
        coding: &'static str,
        source: io::Error,
    },
    #[error(
        "the {dir} body ({coding}) is over 256 MiB, encoded or decoded, too large to look into"
    )]
    TooLarge { dir: Dir, coding: &'static str },
    #[error("the {dir} body is in content-coding '{coding}', which sandlock cannot look into for secrets")]
    Unknown { dir: Dir, coding: String },
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error("cannot encode the {dir} body again ({coding}): {source}")]
    Encode {
        dir: Dir,
        coding: &'static str,
        source: io::Error,
    },
    #[error("a body task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl BodyError {
    /// The status of sandlock's answer: the client's own body that cannot
    /// be read or looked into is its fault (400); an upstream's response
    /// that cannot be looked into is refused as a bad gateway (502); a
    /// failure of sandlock's own (its disk) is a 500.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            BodyError::Read(dir, _)
            | BodyError::Corrupt { dir, .. }
            | BodyError::TooLarge { dir, .. }
            | BodyError::Unknown { dir, .. } => match dir {
                Dir::Request => StatusCode::BAD_REQUEST,
                Dir::Response => StatusCode::BAD_GATEWAY,
            },
            BodyError::Spool(_) | BodyError::Encode { .. } | BodyError::Task(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    fn decode(e: DecodeError, dir: Dir, kind: Codec) -> BodyError {
        let coding = kind.name();
        match e {
            DecodeError::Corrupt(source) => BodyError::Corrupt {
                dir,
                coding,
                source,
            },
            DecodeError::TooLarge => BodyError::TooLarge { dir, coding },
            DecodeError::Sink(e) => BodyError::written(e, dir, kind),
        }
    }

    /// An error from a writer chain that ends in a spool: the spool's own
    /// error when it was the spool, an encoding error otherwise.
    fn written(e: io::Error, dir: Dir, kind: Codec) -> BodyError {
        if e.get_ref().is_some_and(|inner| inner.is::<SpoolError>()) {
            let inner = e.into_inner().expect("checked");
            return match inner.downcast::<SpoolError>() {
                Ok(spool) => BodyError::Spool(*spool),
                Err(other) => BodyError::Encode {
                    dir,
                    coding: kind.name(),
                    source: io::Error::other(other),
                },
            };
        }
        BodyError::Encode {
            dir,
            coding: kind.name(),
            source: e,
        }
    }
}

/// What is done to a body's bytes, a batch at a time.
trait Sink: Send + 'static {
    type Output: Send + 'static;
    fn write(&mut self, data: Bytes) -> Result<(), BodyError>;
    fn finish(self) -> Result<Self::Output, BodyError>;
    /// Whether `n` more bytes cost so little (no file IO, no decoding)
    /// that they are handled on the proxy's own worker.
    fn light(&self, _n: usize) -> bool {
        false
    }
}

/// Runs `f` on the blocking pool.
async fn blocking<T, F>(f: F) -> Result<T, BodyError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, BodyError> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await?
}

/// Reads `body` to its end into `sink`; returns what the sink made of it
/// and the body's trailers.
async fn drain<B, S>(
    mut body: B,
    mut sink: S,
    dir: Dir,
) -> Result<(S::Output, Option<HeaderMap>), BodyError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
    S: Sink,
{
    let mut batch: Vec<Bytes> = Vec::new();
    let mut batched = 0;
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Read(dir, e.into()))?;
        match frame.into_data() {
            Ok(data) => {
                batched += data.len();
                batch.push(data);
                if batched >= BATCH {
                    sink = feed(sink, std::mem::take(&mut batch), batched).await?;
                    batched = 0;
                }
            }
            Err(frame) => {
                if let Ok(t) = frame.into_trailers() {
                    trailers = Some(t);
                }
            }
        }
    }
    sink = feed(sink, batch, batched).await?;
    let out = if sink.light(0) {
        sink.finish()?
    } else {
        blocking(move || sink.finish()).await?
    };
    Ok((out, trailers))
}

async fn feed<S: Sink>(mut sink: S, batch: Vec<Bytes>, n: usize) -> Result<S, BodyError> {
    if batch.is_empty() {
        return Ok(sink);
    }
    if sink.light(n) {
        for data in batch {
            sink.write(data)?;
        }
        return Ok(sink);
    }
    blocking(move || {
        for data in batch {
            sink.write(data)?;
        }
        Ok(sink)
    })
    .await
}

/// An identity body rewritten as it arrives and held.
struct Substitute {
    matcher: StreamReplacer,
    out: Spool,
    /// Longest replacement: how much a piece may grow.
    grow: usize,
}

impl Sink for Substitute {
    type Output = Spooled;

    fn write(&mut self, data: Bytes) -> Result<(), BodyError> {
        let out = self.matcher.push(data);
        Ok(self.out.push(out)?)
    }

    fn finish(mut self) -> Result<Spooled, BodyError> {
        let tail = self.matcher.finish();
        self.out.push(tail)?;
        Ok(self.out.finish()?)
    }

    fn light(&self, n: usize) -> bool {
        // Even if every byte held back became the longest replacement.
        self.out.fits_in_memory(2 * n + 2 * self.grow)
    }
}

/// Replaces `r`'s patterns in an identity body and holds the result;
/// returns it and the body's trailers.
pub(super) async fn hold_identity<B>(
    body: B,
    r: Arc<Replacer>,
    dir: Dir,
    spool_dir: Arc<Path>,
) -> Result<(Spooled, Option<HeaderMap>), BodyError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let sink = Substitute {
        grow: r.max_pattern_len().max(crate::secrets::MAX_VALUE_LEN),
        matcher: StreamReplacer::new(r),
        out: Spool::new(spool_dir),
    };
    drain(body, sink, dir).await
}

/// The decoded side of the first look: finds whether any pattern occurs.
struct Detect {
    matcher: StreamReplacer,
    found: bool,
}

impl io::Write for Detect {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.found {
            let _ = self.matcher.push(Bytes::copy_from_slice(buf));
            self.found = self.matcher.replaced() > 0;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An encoded body, first look: held as received and decoded as it
/// arrives.
struct Inspect {
    raw: Spool,
    decoder: Decoder<Detect>,
    kind: Codec,
    dir: Dir,
}

impl Sink for Inspect {
    type Output = (Spooled, bool);

    fn write(&mut self, data: Bytes) -> Result<(), BodyError> {
        if self.raw.len() + data.len() as u64 > ENCODED_LIMIT {
            return Err(BodyError::TooLarge {
                dir: self.dir,
                coding: self.kind.name(),
            });
        }
        // Decoded first: a bomb or garbage stops before more is kept.
        self.decoder
            .write(&data)
            .map_err(|e| BodyError::decode(e, self.dir, self.kind))?;
        Ok(self.raw.push(data)?)
    }

    fn finish(self) -> Result<(Spooled, bool), BodyError> {
        // An empty body holds nothing to look at (and is no stream at all
        // in most codings: a HEAD-like answer, a 204 sent with a coding).
        if self.raw.len() == 0 {
            return Ok((self.raw.finish()?, false));
        }
        let (dir, kind) = (self.dir, self.kind);
        let mut detect = self
            .decoder
            .finish()
            .map_err(|e| BodyError::decode(e, dir, kind))?;
        if !detect.found {
            let _ = detect.matcher.finish();
            detect.found = detect.matcher.replaced() > 0;
        }
        Ok((self.raw.finish()?, detect.found))
    }
}

/// The decoded side of the second pass: rewritten and encoded again.
struct Rewrite {
    matcher: StreamReplacer,
    encoder: Encoder<Spool>,
}

impl io::Write for Rewrite {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let out = self.matcher.push(Bytes::copy_from_slice(buf));
        self.encoder.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Decodes `raw`, replaces `r`'s patterns and encodes the result with the
/// same coding (blocking: run it on the blocking pool).
fn reencode(
    raw: &Spooled,
    kind: Codec,
    r: Arc<Replacer>,
    dir: Dir,
    spool_dir: Arc<Path>,
) -> Result<Spooled, BodyError> {
    let encoding = |e: io::Error| BodyError::written(e, dir, kind);
    let encoder = Encoder::new(kind, Spool::new(spool_dir)).map_err(encoding)?;
    let rewrite = Rewrite {
        matcher: StreamReplacer::new(r),
        encoder,
    };
    let decoding = |e| BodyError::decode(e, dir, kind);
    let mut decoder = Decoder::new(kind, rewrite).map_err(decoding)?;
    let mut reader = raw.reader();
    let mut buf = vec![0u8; REREAD];
    loop {
        let n = reader.read(&mut buf).map_err(SpoolError::Read)?;
        if n == 0 {
            break;
        }
        decoder.write(&buf[..n]).map_err(decoding)?;
    }
    let mut rewrite = decoder.finish().map_err(decoding)?;
    let tail = rewrite.matcher.finish();
    rewrite.encoder.write_all(&tail).map_err(encoding)?;
    let spool = rewrite.encoder.finish().map_err(encoding)?;
    Ok(spool.finish()?)
}

/// An encoded body read whole and looked into: the bytes as received when
/// none of `r`'s patterns is inside, otherwise the rewritten content
/// encoded again with the same coding. Returns it and the body's trailers.
pub(super) async fn hold_encoded<B>(
    body: B,
    kind: Codec,
    r: Arc<Replacer>,
    dir: Dir,
    spool_dir: Arc<Path>,
) -> Result<(Spooled, Option<HeaderMap>), BodyError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let decoder = Decoder::new(
        kind,
        Detect {
            matcher: StreamReplacer::new(Arc::clone(&r)),
            found: false,
        },
    )
    .map_err(|e| BodyError::decode(e, dir, kind))?;
    let sink = Inspect {
        raw: Spool::new(Arc::clone(&spool_dir)),
        decoder,
        kind,
        dir,
    };
    let ((raw, found), trailers) = drain(body, sink, dir).await?;
    if !found {
        return Ok((raw, trailers));
    }
    let out = blocking(move || reencode(&raw, kind, r, dir, spool_dir)).await?;
    Ok((out, trailers))
}

/// Reads a body whole into memory (for tests).
#[cfg(test)]
pub(super) async fn collect(s: Spooled) -> Vec<u8> {
    s.into_body(None)
        .collect()
        .await
        .expect("spooled body")
        .to_bytes()
        .to_vec()
}

#[cfg(test)]
#[path = "hold_tests.rs"]
mod tests;
