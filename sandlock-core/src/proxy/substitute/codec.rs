//! Content codings: which one a message declares, and streaming decoders
//! and encoders for the ones sandlock looks into (gzip, deflate, br, zstd).
//!
//! Owns the coding names, the decoded-size bound that stops a compression
//! bomb, and the codec parameters. A [`Decoder`] takes encoded bytes as
//! they arrive and writes the decoded ones into any `Write`, so a body is
//! looked into a batch at a time, never expanded whole in memory.
//!
//! It must never vouch for a stream it could not read completely: a stream
//! that is corrupt, truncated, followed by stray bytes, or that expands past
//! [`DECODED_LIMIT`] is an error, never a silently shortened result. It
//! never formats body bytes into an error.

use std::io::{self, Write};

use http::{header, HeaderMap};

/// Decoded bytes looked at, at most, in one body: beyond it the body is a
/// compression bomb as far as sandlock is concerned.
pub(super) const DECODED_LIMIT: u64 = 256 << 20;
/// zstd window accepted (2^23 = 8 MiB): RFC 9659 caps the window of the
/// `zstd` content coding there, and a larger one would let a small body
/// make the decoder allocate up to 128 MiB.
const ZSTD_WINDOW_LOG_MAX: u32 = 23;
/// Buffer of the brotli decoder and encoder.
const BROTLI_BUFFER: usize = 4096;
/// brotli quality and window (2^22 = 4 MiB) when encoding again.
const BROTLI_QUALITY: u32 = 5;
const BROTLI_WINDOW: u32 = 22;
/// zstd level when encoding again (its window stays under RFC 9659's cap).
const ZSTD_LEVEL: i32 = 3;

/// How a body is encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Coding {
    Identity,
    /// A coding sandlock decodes and encodes.
    Known(Codec),
    /// Anything else (another coding, or more than one), named for messages.
    Other(String),
}

/// A content coding sandlock can look into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::proxy) enum Codec {
    Gzip,
    /// `deflate`: zlib-wrapped, as HTTP means it.
    Zlib,
    Brotli,
    Zstd,
}

impl Codec {
    /// The coding's name in `Content-Encoding`.
    pub(in crate::proxy) fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Zlib => "deflate",
            Codec::Brotli => "br",
            Codec::Zstd => "zstd",
        }
    }
}

/// The codings a `Content-Encoding` or `Transfer-Encoding` header (`name`)
/// lists, in order, lowercase, across every field of that name;
/// `identity` (no coding at all) left out.
pub(in crate::proxy) fn coding_tokens(h: &HeaderMap, name: header::HeaderName) -> Vec<String> {
    let mut tokens = Vec::new();
    for v in h.get_all(name) {
        let text = String::from_utf8_lossy(v.as_bytes());
        tokens.extend(
            text.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("identity"))
                .map(str::to_ascii_lowercase),
        );
    }
    tokens
}

/// The coding `h` declares. `identity` tokens are ignored; more than one
/// real coding is [`Coding::Other`].
pub(super) fn coding(h: &HeaderMap) -> Coding {
    let tokens = coding_tokens(h, header::CONTENT_ENCODING);
    match tokens.as_slice() {
        [] => Coding::Identity,
        [one] => match one.as_str() {
            "gzip" | "x-gzip" => Coding::Known(Codec::Gzip),
            "deflate" => Coding::Known(Codec::Zlib),
            "br" => Coding::Known(Codec::Brotli),
            "zstd" => Coding::Known(Codec::Zstd),
            _ => Coding::Other(printable(one)),
        },
        _ => Coding::Other(printable(&tokens.join(", "))),
    }
}

/// A coding name as it may appear in a message: token characters only and
/// short, so a header cannot smuggle arbitrary text into sandlock's output.
pub(in crate::proxy) fn printable(name: &str) -> String {
    let ok = name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._, ".contains(&b));
    if ok {
        name.to_string()
    } else {
        "(unrecognised)".to_string()
    }
}

/// Why decoding stopped.
#[derive(Debug)]
pub(in crate::proxy) enum DecodeError {
    /// The stream is not valid in its coding (also: truncated, or stray
    /// bytes after its end).
    Corrupt(io::Error),
    /// It expands past [`DECODED_LIMIT`].
    TooLarge,
    /// The writer the decoded bytes went to failed.
    Sink(io::Error),
}

/// The decoded side of a [`Decoder`]: counts what it passes on, and tells
/// a bomb and a failing writer apart from a corrupt stream.
struct Bounded<W> {
    inner: W,
    seen: u64,
    /// Decoded bytes allowed in all.
    limit: u64,
    over: bool,
    failed: Option<io::Error>,
}

impl<W: Write> Write for Bounded<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.seen = self.seen.saturating_add(buf.len() as u64);
        if self.seen > self.limit {
            self.over = true;
            return Err(io::Error::other("decoded size limit"));
        }
        match self.inner.write_all(buf) {
            Ok(()) => Ok(buf.len()),
            Err(e) => {
                let kind = e.kind();
                self.failed = Some(e);
                Err(io::Error::new(kind, "the decoded bytes' writer failed"))
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

enum Inner<W: Write> {
    Gzip(flate2::write::MultiGzDecoder<Bounded<W>>),
    Zlib(flate2::write::ZlibDecoder<Bounded<W>>),
    Brotli(Box<brotli::DecompressorWriter<Bounded<W>>>),
    Zstd(zstd::stream::write::Decoder<'static, Bounded<W>>),
}

/// Decodes a body pushed to it in pieces into `W`.
pub(in crate::proxy) struct Decoder<W: Write> {
    inner: Inner<W>,
}

impl<W: Write> Decoder<W> {
    /// A decoder of a body held whole: at most [`DECODED_LIMIT`] decoded
    /// bytes.
    pub(in crate::proxy) fn new(kind: Codec, out: W) -> Result<Decoder<W>, DecodeError> {
        Decoder::with_limit(kind, out, DECODED_LIMIT)
    }

    /// A decoder of a body that streams on as it is decoded, so its size
    /// is no memory's concern; the caller bounds each piece instead.
    pub(in crate::proxy) fn streaming(kind: Codec, out: W) -> Result<Decoder<W>, DecodeError> {
        Decoder::with_limit(kind, out, u64::MAX)
    }

    fn with_limit(kind: Codec, out: W, limit: u64) -> Result<Decoder<W>, DecodeError> {
        let out = Bounded {
            inner: out,
            seen: 0,
            limit,
            over: false,
            failed: None,
        };
        let inner = match kind {
            Codec::Gzip => Inner::Gzip(flate2::write::MultiGzDecoder::new(out)),
            Codec::Zlib => Inner::Zlib(flate2::write::ZlibDecoder::new(out)),
            Codec::Brotli => Inner::Brotli(Box::new(brotli::DecompressorWriter::new(
                out,
                BROTLI_BUFFER,
            ))),
            Codec::Zstd => {
                let mut d = zstd::stream::write::Decoder::new(out).map_err(DecodeError::Sink)?;
                d.window_log_max(ZSTD_WINDOW_LOG_MAX)
                    .map_err(DecodeError::Sink)?;
                Inner::Zstd(d)
            }
        };
        Ok(Decoder { inner })
    }

    fn bounded(&mut self) -> &mut Bounded<W> {
        match &mut self.inner {
            Inner::Gzip(d) => d.get_mut(),
            Inner::Zlib(d) => d.get_mut(),
            Inner::Brotli(d) => d.get_mut(),
            Inner::Zstd(d) => d.get_mut(),
        }
    }

    /// Tells why `e` happened: the bound, the writer, or the stream.
    fn classify(&mut self, e: io::Error) -> DecodeError {
        let b = self.bounded();
        if b.over {
            DecodeError::TooLarge
        } else if let Some(failed) = b.failed.take() {
            DecodeError::Sink(failed)
        } else {
            DecodeError::Corrupt(e)
        }
    }

    /// The writer the decoded bytes went to so far (to take them out).
    pub(in crate::proxy) fn output(&mut self) -> &mut W {
        &mut self.bounded().inner
    }

    /// Decodes the next piece of the body.
    pub(in crate::proxy) fn write(&mut self, data: &[u8]) -> Result<(), DecodeError> {
        let r = match &mut self.inner {
            Inner::Gzip(d) => d.write_all(data),
            Inner::Zlib(d) => d.write_all(data),
            Inner::Brotli(d) => d.write_all(data),
            Inner::Zstd(d) => d.write_all(data),
        };
        r.map_err(|e| self.classify(e))
    }

    /// The end of the body: the stream must end here too. Returns the
    /// writer with every decoded byte written to it.
    pub(in crate::proxy) fn finish(mut self) -> Result<W, DecodeError> {
        let r = match &mut self.inner {
            Inner::Gzip(d) => d.try_finish(),
            Inner::Zlib(d) => d.try_finish(),
            Inner::Brotli(d) => d.close(),
            Inner::Zstd(d) => d.do_finish(),
        };
        if let Err(e) = r {
            return Err(self.classify(e));
        }
        let bounded = match self.inner {
            Inner::Gzip(d) => d.finish().map_err(DecodeError::Corrupt)?,
            Inner::Zlib(d) => d.finish().map_err(DecodeError::Corrupt)?,
            // Closed above: both outcomes hand the writer back.
            Inner::Brotli(d) => d.into_inner().unwrap_or_else(|w| w),
            Inner::Zstd(d) => d.into_inner(),
        };
        Ok(bounded.inner)
    }
}

/// Encodes a body written to it into `W`.
pub(super) enum Encoder<W: Write> {
    Gzip(flate2::write::GzEncoder<W>),
    Zlib(flate2::write::ZlibEncoder<W>),
    Brotli(Box<brotli::CompressorWriter<W>>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    pub(super) fn new(kind: Codec, out: W) -> io::Result<Encoder<W>> {
        let level = flate2::Compression::default();
        Ok(match kind {
            Codec::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(out, level)),
            Codec::Zlib => Encoder::Zlib(flate2::write::ZlibEncoder::new(out, level)),
            Codec::Brotli => Encoder::Brotli(Box::new(brotli::CompressorWriter::new(
                out,
                BROTLI_BUFFER,
                BROTLI_QUALITY,
                BROTLI_WINDOW,
            ))),
            Codec::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?),
        })
    }

    /// Ends the stream and returns the writer. brotli reports no error
    /// from its last write: a writer that must not lose bytes silently
    /// remembers its own failures (the spool does).
    pub(super) fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zlib(e) => e.finish(),
            Encoder::Brotli(mut e) => {
                e.flush()?;
                Ok(e.into_inner())
            }
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zlib(e) => e.write(buf),
            Encoder::Brotli(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zlib(e) => e.flush(),
            Encoder::Brotli(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in super::super) const ALL: [Codec; 4] =
        [Codec::Gzip, Codec::Zlib, Codec::Brotli, Codec::Zstd];

    pub(in super::super) fn encode(content: &[u8], kind: Codec) -> Vec<u8> {
        let mut e = Encoder::new(kind, Vec::new()).unwrap();
        e.write_all(content).unwrap();
        e.finish().unwrap()
    }

    /// Decodes `raw` fed in pieces of `piece` bytes.
    pub(in super::super) fn decode(
        raw: &[u8],
        kind: Codec,
        piece: usize,
    ) -> Result<Vec<u8>, DecodeError> {
        let mut d = Decoder::new(kind, Vec::new())?;
        for p in raw.chunks(piece.max(1)) {
            d.write(p)?;
        }
        d.finish()
    }

    #[test]
    fn every_codec_round_trips_in_any_pieces() {
        let text = b"v=placeholder_0123456789&w=placeholder_0123456789".repeat(500);
        for kind in ALL {
            let packed = encode(&text, kind);
            assert!(packed.len() < text.len(), "{kind:?}");
            for piece in [1, 7, 4096, packed.len()] {
                assert_eq!(decode(&packed, kind, piece).unwrap(), text, "{kind:?}");
            }
        }
    }

    #[test]
    fn concatenated_gzip_members_are_one_body() {
        let mut two = encode(b"first ", Codec::Gzip);
        two.extend(encode(b"second", Codec::Gzip));
        assert_eq!(decode(&two, Codec::Gzip, 5).unwrap(), b"first second");
    }

    #[test]
    fn truncated_trailing_and_garbage_streams_are_corrupt() {
        let text = b"some text that is long enough to make a real stream".repeat(20);
        for kind in ALL {
            let packed = encode(&text, kind);
            let cut = &packed[..packed.len() - 3];
            let e = decode(cut, kind, 64).unwrap_err();
            assert!(
                matches!(e, DecodeError::Corrupt(_)),
                "{kind:?} truncated: {e:?}"
            );
            let mut tail = packed.clone();
            tail.extend_from_slice(b"stray bytes");
            let e = decode(&tail, kind, 64).unwrap_err();
            assert!(
                matches!(e, DecodeError::Corrupt(_)),
                "{kind:?} trailing: {e:?}"
            );
            let e = decode(b"\x1f\x8b\x08\x00garbage", kind, 64).unwrap_err();
            assert!(
                matches!(e, DecodeError::Corrupt(_)),
                "{kind:?} garbage: {e:?}"
            );
        }
    }

    /// A bomb stops at the bound, whatever the coding.
    #[test]
    fn bombs_stop_at_the_bound() {
        // 300 MiB of zeros: one zstd frame written in pieces, and 300 gzip
        // members of a MiB each (the pure-Rust deflate is slow to pack
        // 300 MiB in a debug build; members are just as much a bomb).
        let zeros = vec![0u8; 1 << 20];
        let mut e = Encoder::new(Codec::Zstd, Vec::new()).unwrap();
        for _ in 0..300 {
            e.write_all(&zeros).unwrap();
        }
        let zstd_bomb = e.finish().unwrap();
        let gzip_bomb = encode(&zeros, Codec::Gzip).repeat(300);
        for (kind, bomb) in [(Codec::Zstd, zstd_bomb), (Codec::Gzip, gzip_bomb)] {
            assert!(bomb.len() < 1 << 20, "{kind:?}: {}", bomb.len());
            let mut d = Decoder::new(kind, io::sink()).unwrap();
            let r = bomb.chunks(64 << 10).try_for_each(|p| d.write(p));
            let e = match r {
                Err(e) => e,
                Ok(()) => d.finish().map(|_| ()).unwrap_err(),
            };
            assert!(matches!(e, DecodeError::TooLarge), "{kind:?}: {e:?}");
        }
    }

    #[test]
    fn a_failing_writer_is_not_a_corrupt_stream() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from_raw_os_error(libc::ENOSPC))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let packed = encode(&b"x".repeat(100_000), Codec::Gzip);
        let mut d = Decoder::new(Codec::Gzip, Full).unwrap();
        let e = match d.write(&packed) {
            Err(e) => e,
            Ok(()) => d.finish().map(|_| ()).unwrap_err(),
        };
        match e {
            DecodeError::Sink(e) => assert_eq!(e.raw_os_error(), Some(libc::ENOSPC)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn codings_are_read_from_every_header_value() {
        let h = |vals: &[&str]| {
            let mut m = HeaderMap::new();
            for v in vals {
                m.append(header::CONTENT_ENCODING, v.parse().unwrap());
            }
            coding(&m)
        };
        assert_eq!(h(&[]), Coding::Identity);
        assert_eq!(h(&["identity"]), Coding::Identity);
        assert_eq!(h(&["GZip"]), Coding::Known(Codec::Gzip));
        assert_eq!(h(&["x-gzip"]), Coding::Known(Codec::Gzip));
        assert_eq!(h(&["identity, br"]), Coding::Known(Codec::Brotli));
        assert_eq!(h(&["deflate"]), Coding::Known(Codec::Zlib));
        assert_eq!(h(&["zstd"]), Coding::Known(Codec::Zstd));
        assert_eq!(h(&["compress"]), Coding::Other("compress".into()));
        assert_eq!(h(&["gzip", "br"]), Coding::Other("gzip, br".into()));
        assert_eq!(h(&["gzip, gzip"]), Coding::Other("gzip, gzip".into()));
        assert_eq!(h(&["x/y"]), Coding::Other("(unrecognised)".into()));
    }
}
