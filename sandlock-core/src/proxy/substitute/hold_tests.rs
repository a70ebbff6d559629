//! Tests of bodies held whole: identity and encoded, in memory and in a
//! file, with and without a pattern, and every way they can fail.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::Frame;

use super::super::codec::tests::{decode, encode, ALL};
use super::super::spool::MEMORY_LIMIT;
use super::*;

/// A body made of the given pieces (an `Err` piece fails the body there).
struct Pieces(VecDeque<Result<Bytes, &'static str>>);

impl Pieces {
    fn of(data: &[u8], piece: usize) -> Pieces {
        Pieces(
            data.chunks(piece)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect(),
        )
    }
}

impl Body for Pieces {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Poll::Ready(
            self.0
                .pop_front()
                .map(|p| p.map(Frame::data).map_err(Into::into)),
        )
    }
}

fn tmp() -> Arc<Path> {
    Arc::from(std::env::temp_dir().as_path())
}

const PH: &[u8] = b"SLKP_aaaaaaaaaaaaaaaaaaa";
const VALUE: &[u8] = b"short-value12";

fn replacer() -> Arc<Replacer> {
    Arc::new(Replacer::new(&[(PH, VALUE)]))
}

/// `n` bytes of text with the placeholder at the start, the end, and
/// straddling every batch and spool boundary near `n`.
fn text_with_placeholders(n: usize) -> Vec<u8> {
    let mut body = super::super::spool::noise(n);
    for b in body.iter_mut() {
        *b = b'a' + (*b % 26);
    }
    let mut at = vec![0, n - PH.len(), MEMORY_LIMIT - 5, n / 2];
    at.extend((1..n / BATCH).map(|k| k * BATCH - 7));
    for a in at {
        if a + PH.len() <= n {
            body[a..a + PH.len()].copy_from_slice(PH);
        }
    }
    body
}

#[tokio::test]
async fn identity_bodies_of_any_size_come_out_substituted() {
    let r = replacer();
    for n in [100, MEMORY_LIMIT - 100, 3 * MEMORY_LIMIT + 999] {
        let body = text_with_placeholders(n);
        let want = r.replace_all(&body).expect("placeholders inside");
        let (held, trailers) =
            hold_identity(Pieces::of(&body, 16 << 10), r.clone(), Dir::Request, tmp())
                .await
                .unwrap();
        assert!(trailers.is_none());
        assert_eq!(held.len(), want.len() as u64, "{n}");
        assert_eq!(held.in_file(), want.len() > MEMORY_LIMIT, "{n}");
        assert!(collect(held).await == want, "{n}");
    }
}

#[tokio::test]
async fn encoded_bodies_are_rewritten_only_when_a_pattern_is_inside() {
    let r = replacer();
    for kind in ALL {
        let content = text_with_placeholders(200_000);
        let raw = encode(&content, kind);
        let (held, _) = hold_encoded(Pieces::of(&raw, 1000), kind, r.clone(), Dir::Request, tmp())
            .await
            .unwrap();
        let out = collect(held).await;
        assert_ne!(out, raw, "{kind:?}");
        let want = r.replace_all(&content).unwrap();
        assert!(decode(&out, kind, 4096).unwrap() == want, "{kind:?}");

        let clean = b"nothing to see here, just text ".repeat(5000);
        let raw = encode(&clean, kind);
        let (held, _) = hold_encoded(Pieces::of(&raw, 777), kind, r.clone(), Dir::Request, tmp())
            .await
            .unwrap();
        assert!(collect(held).await == raw, "{kind:?}: not byte-identical");
    }
}

/// An encoded body larger than the memory bound (incompressible bytes)
/// is held in a file, looked into and rewritten.
#[tokio::test]
async fn large_encoded_bodies_are_spooled_and_rewritten() {
    let r = replacer();
    let mut content = super::super::spool::noise(MEMORY_LIMIT + 300_000);
    let at = content.len() - 1000;
    content[at..at + PH.len()].copy_from_slice(PH);
    for kind in [Codec::Gzip, Codec::Zstd] {
        let raw = encode(&content, kind);
        assert!(raw.len() > MEMORY_LIMIT);
        let (held, _) = hold_encoded(
            Pieces::of(&raw, 16 << 10),
            kind,
            r.clone(),
            Dir::Response,
            tmp(),
        )
        .await
        .unwrap();
        assert!(held.in_file());
        let out = collect(held).await;
        assert!(decode(&out, kind, 1 << 16).unwrap() == r.replace_all(&content).unwrap());
    }
}

#[tokio::test]
async fn corrupt_and_bomb_bodies_are_refused_by_direction() {
    let r = replacer();
    for dir in [Dir::Request, Dir::Response] {
        let e = hold_encoded(
            Pieces::of(b"\x1f\x8b\x08\x00garbage", 4),
            Codec::Gzip,
            r.clone(),
            dir,
            tmp(),
        )
        .await
        .err()
        .expect("corrupt");
        let text = e.to_string();
        assert!(
            text.starts_with(&format!("cannot decode the {dir} body (gzip)")),
            "{text}"
        );
        let want = match dir {
            Dir::Request => StatusCode::BAD_REQUEST,
            Dir::Response => StatusCode::BAD_GATEWAY,
        };
        assert_eq!(e.status(), want);
    }
    let zeros = vec![0u8; 1 << 20];
    let bomb = encode(&zeros, Codec::Gzip).repeat(300);
    let e = hold_encoded(
        Pieces::of(&bomb, 64 << 10),
        Codec::Gzip,
        r.clone(),
        Dir::Request,
        tmp(),
    )
    .await
    .err()
    .expect("bomb");
    assert!(matches!(e, BodyError::TooLarge { .. }), "{e}");
    assert!(e.to_string().contains("256 MiB"), "{e}");
}

/// A client that goes away mid-body voids the request; a spool that
/// cannot be written is sandlock's own failure (500), named, and nothing
/// is passed on.
#[tokio::test]
async fn read_and_spool_failures_are_errors_not_short_bodies() {
    let mut broken = Pieces::of(&vec![b'x'; 100_000], 10_000);
    broken.0.push_back(Err("connection reset"));
    let e = hold_identity(broken, replacer(), Dir::Request, tmp())
        .await
        .err()
        .expect("read error");
    assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        e.to_string(),
        "the request body could not be read: connection reset"
    );

    let nowhere: Arc<Path> = Arc::from(Path::new("/nonexistent-sandlock-spool"));
    let big = text_with_placeholders(MEMORY_LIMIT + 1000);
    let e = hold_identity(
        Pieces::of(&big, 16 << 10),
        replacer(),
        Dir::Request,
        nowhere.clone(),
    )
    .await
    .err()
    .expect("spool error");
    assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(e.to_string().contains("/nonexistent-sandlock-spool"), "{e}");

    // The same through an encoder (the rewrite of a large encoded body).
    let mut content = super::super::spool::noise(MEMORY_LIMIT + 1000);
    content[..PH.len()].copy_from_slice(PH);
    let raw = encode(&content, Codec::Zstd);
    let e = hold_encoded(
        Pieces::of(&raw, 16 << 10),
        Codec::Zstd,
        replacer(),
        Dir::Request,
        nowhere,
    )
    .await
    .err()
    .expect("spool error");
    assert!(matches!(e, BodyError::Spool(_)), "{e:?}");
    assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
}
