//! Bodies held whole so their length can be fixed: in memory up to
//! [`MEMORY_LIMIT`], beyond it in a private temporary file, then sent on
//! from wherever they were held, a piece at a time.
//!
//! Owns the spool files. A spool file may hold a body after substitution
//! (the real value in it) or a response before scrubbing, so it is created
//! with `O_TMPFILE | O_EXCL` and mode 0600 in the supervisor's temporary
//! directory (never the workload's `TMPDIR`): it has no name from its first
//! moment, cannot be linked into the file system later, and disappears when
//! its descriptor closes. Where the file system lacks `O_TMPFILE`, a file
//! created with `O_EXCL | O_NOFOLLOW` and mode 0600 is unlinked before a
//! byte is written to it.
//!
//! It must never give a body back shorter than what was written (a failed
//! write poisons the spool, a short read is an error), never hold more than
//! [`MEMORY_LIMIT`] of a body in memory, and never put body bytes into an
//! error message.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use hyper::body::{Body, Frame, SizeHint};
use tokio::task::JoinHandle;

use crate::proxy::upstream::BoxError;

/// Bytes of one body held in memory, at most; more goes to a file.
pub(super) const MEMORY_LIMIT: usize = 4 << 20;
/// Bytes read back from a spool file per piece sent on.
const READ_PIECE: usize = 64 << 10;

/// Why a body could not be held or given back.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpoolError {
    #[error("cannot create a private temporary file in {dir} to hold the body: {source}")]
    Create { dir: String, source: io::Error },
    #[error("cannot write the temporary file holding the body: {0}")]
    Write(io::Error),
    #[error("cannot read back the temporary file holding the body: {0}")]
    Read(io::Error),
    #[error("the temporary file holding the body ended {0} bytes early")]
    Short(u64),
}

impl SpoolError {
    /// The same error again (a poisoned spool reports its first failure
    /// every time it is used).
    fn again(&self) -> SpoolError {
        let copy = |e: &io::Error| match e.raw_os_error() {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(e.kind(), e.to_string()),
        };
        match self {
            SpoolError::Create { dir, source } => SpoolError::Create {
                dir: dir.clone(),
                source: copy(source),
            },
            SpoolError::Write(e) => SpoolError::Write(copy(e)),
            SpoolError::Read(e) => SpoolError::Read(copy(e)),
            SpoolError::Short(n) => SpoolError::Short(*n),
        }
    }
}

/// A body being held. Writes are plain blocking calls once it is in a
/// file: call them from the blocking pool.
pub(super) struct Spool {
    dir: Arc<Path>,
    mem: Vec<Bytes>,
    len: u64,
    file: Option<File>,
    /// The first failure; every later use fails with it.
    failed: Option<SpoolError>,
}

impl Spool {
    /// An empty spool whose file, if it needs one, goes in `dir`.
    pub(super) fn new(dir: Arc<Path>) -> Spool {
        Spool {
            dir,
            mem: Vec::new(),
            len: 0,
            file: None,
            failed: None,
        }
    }

    /// Bytes held so far.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// Whether `more` bytes would still fit in memory (so writing them
    /// costs no file IO).
    pub(super) fn fits_in_memory(&self, more: usize) -> bool {
        self.file.is_none() && self.len + more as u64 <= MEMORY_LIMIT as u64
    }

    /// Appends `data`.
    pub(super) fn push(&mut self, data: Bytes) -> Result<(), SpoolError> {
        if let Some(e) = &self.failed {
            return Err(e.again());
        }
        if data.is_empty() {
            return Ok(());
        }
        if self.fits_in_memory(data.len()) {
            self.len += data.len() as u64;
            self.mem.push(data);
            return Ok(());
        }
        match self.append_to_file(&data) {
            Ok(()) => {
                self.len += data.len() as u64;
                Ok(())
            }
            Err(e) => {
                let again = e.again();
                self.failed = Some(e);
                Err(again)
            }
        }
    }

    fn append_to_file(&mut self, data: &[u8]) -> Result<(), SpoolError> {
        if self.file.is_none() {
            let mut f = open_private(&self.dir).map_err(|source| SpoolError::Create {
                dir: self.dir.display().to_string(),
                source,
            })?;
            for piece in self.mem.drain(..) {
                f.write_all(&piece).map_err(SpoolError::Write)?;
            }
            self.file = Some(f);
        }
        let f = self.file.as_mut().expect("opened above");
        f.write_all(data).map_err(SpoolError::Write)
    }

    /// Everything written, ready to be read back or sent on.
    pub(super) fn finish(self) -> Result<Spooled, SpoolError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let store = match self.file {
            Some(f) => Store::File(Arc::new(f)),
            None => Store::Memory(self.mem),
        };
        Ok(Spooled {
            store,
            len: self.len,
        })
    }
}

/// A spool is also a plain writer (for encoders writing into it).
impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.push(Bytes::copy_from_slice(buf))
            .map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum Store {
    Memory(Vec<Bytes>),
    File(Arc<File>),
}

/// A body held whole.
pub(super) struct Spooled {
    store: Store,
    len: u64,
}

impl Spooled {
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// Whether the body lives in a file.
    #[cfg(test)]
    pub(super) fn in_file(&self) -> bool {
        matches!(self.store, Store::File(_))
    }

    /// Reads the body from its start (blocking when it is in a file).
    pub(super) fn reader(&self) -> SpooledReader<'_> {
        SpooledReader {
            spooled: self,
            pos: 0,
            piece: 0,
            offset: 0,
        }
    }

    /// The body as an HTTP body, then `trailers` if any.
    pub(super) fn into_body(self, trailers: Option<HeaderMap>) -> SpoolBody {
        let source = match self.store {
            Store::Memory(pieces) => Source::Memory(pieces.into()),
            Store::File(file) => Source::File {
                file,
                pos: 0,
                reading: None,
            },
        };
        SpoolBody {
            source,
            left: self.len,
            trailers,
        }
    }
}

/// A blocking reader over a [`Spooled`] body.
pub(super) struct SpooledReader<'a> {
    spooled: &'a Spooled,
    /// Bytes read so far.
    pos: u64,
    /// In memory: the piece and the offset in it where reading resumes.
    piece: usize,
    offset: usize,
}

impl Read for SpooledReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.spooled.len - self.pos;
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match &self.spooled.store {
            Store::Memory(pieces) => {
                let p = &pieces[self.piece][self.offset..];
                let n = p.len().min(want);
                buf[..n].copy_from_slice(&p[..n]);
                self.offset += n;
                if self.offset == pieces[self.piece].len() {
                    self.piece += 1;
                    self.offset = 0;
                }
                n
            }
            Store::File(f) => {
                let n = f.read_at(&mut buf[..want], self.pos)?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        SpoolError::Short(left),
                    ));
                }
                n
            }
        };
        self.pos += n as u64;
        Ok(n)
    }
}

enum Source {
    Memory(VecDeque<Bytes>),
    File {
        file: Arc<File>,
        pos: u64,
        /// The piece being read on the blocking pool.
        reading: Option<JoinHandle<Result<Bytes, SpoolError>>>,
    },
}

/// A held body sent on: its pieces from memory, or read from its file a
/// piece at a time on the blocking pool (so memory stays bounded whatever
/// its size), then its trailers.
pub(super) struct SpoolBody {
    source: Source,
    left: u64,
    trailers: Option<HeaderMap>,
}

impl Body for SpoolBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let me = &mut *self;
        if me.left == 0 {
            return Poll::Ready(me.trailers.take().map(|t| Ok(Frame::trailers(t))));
        }
        let data = match &mut me.source {
            Source::Memory(pieces) => match pieces.pop_front() {
                Some(p) => p,
                None => return Poll::Ready(Some(Err(SpoolError::Short(me.left).into()))),
            },
            Source::File { file, pos, reading } => {
                let task = reading.get_or_insert_with(|| {
                    let file = Arc::clone(file);
                    let at = *pos;
                    let want = READ_PIECE.min(usize::try_from(me.left).unwrap_or(usize::MAX));
                    tokio::task::spawn_blocking(move || read_piece(&file, at, want))
                });
                let done = match Pin::new(task).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(done) => done,
                };
                *reading = None;
                let piece = match done {
                    Ok(Ok(piece)) => piece,
                    Ok(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                    Err(e) => return Poll::Ready(Some(Err(e.into()))),
                };
                *pos += piece.len() as u64;
                piece
            }
        };
        me.left = me.left.saturating_sub(data.len() as u64);
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0 && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        // With trailers to come, no exact size: an HTTP/1 client would
        // frame the body by its length and drop them.
        match self.trailers {
            None => SizeHint::with_exact(self.left),
            Some(_) => SizeHint::default(),
        }
    }
}

/// Reads `want` bytes at `at`: all of them, or an error.
fn read_piece(file: &File, at: u64, want: usize) -> Result<Bytes, SpoolError> {
    let mut buf = vec![0u8; want];
    let mut got = 0;
    while got < want {
        match file.read_at(&mut buf[got..], at + got as u64) {
            Ok(0) => return Err(SpoolError::Short((want - got) as u64)),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(SpoolError::Read(e)),
        }
    }
    Ok(Bytes::from(buf))
}

/// A new, nameless, private file in `dir`.
fn open_private(dir: &Path) -> io::Result<File> {
    let tmpfile = OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        // O_EXCL: the file can never be given a name (linkat) later.
        .custom_flags(libc::O_TMPFILE | libc::O_EXCL)
        .open(dir);
    match tmpfile {
        Ok(f) => Ok(f),
        // No O_TMPFILE here: the file system lacks it (EOPNOTSUPP), or an
        // old kernel took it for O_DIRECTORY (EISDIR) or refused the flag.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
            ) =>
        {
            named_then_unlinked(dir)
        }
        Err(e) => Err(e),
    }
}

/// The fallback: a fresh file with an unguessable name, unlinked before
/// anything is written to it.
fn named_then_unlinked(dir: &Path) -> io::Result<File> {
    use ring::rand::SecureRandom;
    let rng = ring::rand::SystemRandom::new();
    for _ in 0..16 {
        let mut tag = [0u8; 12];
        rng.fill(&mut tag)
            .map_err(|_| io::Error::other("no randomness for a temporary name"))?;
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        let path: PathBuf = dir.join(format!(".sandlock-spool-{hex}"));
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path);
        match opened {
            Ok(f) => {
                // Nothing was written yet: if the name cannot go, an empty
                // file stays behind and the body is not held there.
                std::fs::remove_file(&path)?;
                return Ok(f);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free temporary name",
    ))
}

/// Deterministic bytes that do not compress (for tests).
#[cfg(test)]
pub(super) fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ n as u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::os::unix::fs::MetadataExt;

    fn tmp() -> Arc<Path> {
        Arc::from(std::env::temp_dir().as_path())
    }

    fn assert_private_and_nameless(f: &File) {
        let m = f.metadata().unwrap();
        assert_eq!(m.nlink(), 0, "the spool file has a name");
        assert_eq!(m.mode() & 0o777, 0o600);
        assert_eq!(m.uid(), nix::unistd::geteuid().as_raw());
    }

    #[test]
    fn spool_files_are_private_and_nameless() {
        let dir = tmp();
        let before: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        let f = open_private(&dir).unwrap();
        assert_private_and_nameless(&f);
        let g = named_then_unlinked(&dir).unwrap();
        assert_private_and_nameless(&g);
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n.to_string_lossy().starts_with(".sandlock-spool-") && !before.contains(n))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    /// Small bodies stay in memory; large ones go to a file, and both come
    /// back byte for byte, through the reader and as an HTTP body.
    #[tokio::test]
    async fn bodies_come_back_whole_from_memory_or_file() {
        for (n, in_file) in [
            (1000, false),
            (MEMORY_LIMIT, false),
            (MEMORY_LIMIT + 1, true),
            (3 * MEMORY_LIMIT + 12345, true),
        ] {
            let data = noise(n);
            let mut s = Spool::new(tmp());
            for piece in data.chunks(10_000) {
                s.push(Bytes::copy_from_slice(piece)).unwrap();
            }
            let spooled = s.finish().unwrap();
            assert_eq!(spooled.len(), n as u64);
            assert_eq!(spooled.in_file(), in_file, "{n}");
            let mut back = Vec::new();
            spooled.reader().read_to_end(&mut back).unwrap();
            assert!(back == data, "reader: {n}");
            let mut trailers = HeaderMap::new();
            trailers.insert("x-t", "1".parse().unwrap());
            let body = spooled.into_body(Some(trailers));
            let collected = body.collect().await.unwrap();
            assert_eq!(collected.trailers().unwrap()["x-t"], "1");
            assert!(collected.to_bytes() == data, "body: {n}");
        }
    }

    /// An exact size lets the client send a Content-Length; trailers need
    /// chunks.
    #[test]
    fn size_is_exact_unless_trailers_follow() {
        let held = |trailers: Option<HeaderMap>| {
            let mut s = Spool::new(tmp());
            s.push(Bytes::from_static(b"abc")).unwrap();
            s.finish().unwrap().into_body(trailers)
        };
        assert_eq!(held(None).size_hint().exact(), Some(3));
        assert_eq!(held(Some(HeaderMap::new())).size_hint().exact(), None);
    }

    #[test]
    fn an_unusable_directory_is_a_clear_error_and_poisons() {
        let mut s = Spool::new(Arc::from(Path::new("/nonexistent-sandlock-dir")));
        s.push(Bytes::from(vec![7u8; MEMORY_LIMIT])).unwrap();
        let e = s
            .push(Bytes::from_static(b"secret-ish"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cannot create a private temporary file in /nonexistent-sandlock-dir"),
            "{e}"
        );
        assert!(e.contains("No such file or directory"), "{e}");
        assert!(!e.contains("secret-ish"), "{e}");
        let again = s.push(Bytes::from_static(b"x")).unwrap_err().to_string();
        assert_eq!(again, e);
        let finished = s.finish().err().expect("poisoned").to_string();
        assert_eq!(finished, e);
    }

    #[test]
    fn a_full_disk_is_reported_not_truncated() {
        let mut s = Spool::new(tmp());
        s.file = Some(File::options().write(true).open("/dev/full").unwrap());
        let e = s.push(Bytes::from_static(b"abc")).unwrap_err().to_string();
        assert!(e.contains("No space left on device"), "{e}");
        assert!(s.finish().is_err());
    }
}
