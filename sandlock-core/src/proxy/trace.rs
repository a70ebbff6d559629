//! The per-request timing trace, for benchmarks: with
//! `SANDLOCK_PROXY_TRACE=FILE` in sandlock's environment, the proxy
//! appends one line per request to FILE with the moments it passed each
//! stage and the threads that ran them, so where a request's time goes
//! (and how often it hops between threads) can be read off a real run.
//!
//! It owns those stamps and the file. It must never write anything of a
//! request but times and thread numbers (no method, path, header or body:
//! the workload's bytes and its secrets stay out of it), and it costs a
//! request nothing when the variable is unset: every hook is one branch on
//! an `Option`. A request's line is written once its response is out, so
//! the last request of a workload that exits at once may find sandlock
//! gone before its line is.

use std::fs::File;
use std::io::Write;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The environment variable naming the trace file.
pub(crate) const VAR: &str = "SANDLOCK_PROXY_TRACE";

/// The stages of one request, in the order a request passes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// The first bytes of the request were read from the client.
    Arrived = 0,
    /// Its head was parsed.
    Parsed,
    /// The access list allowed it.
    Checked,
    /// The upstream connection's task first wrote to its socket after the
    /// check (the request handed over from the client's task).
    UpstreamWrite,
    /// That write returned: on loopback it includes the kernel delivering
    /// the bytes and waking the upstream server.
    UpstreamWritten,
    /// The first read from the upstream socket after that write.
    UpstreamRead,
    /// The response head was handed back to the client's side.
    Answered,
    /// The whole response was written to the client.
    Delivered,
}

const STAGES: usize = 8;
const HEADER: &str =
    "# proto parsed checked upstream_write upstream_written upstream_read answered delivered (us after arrived) threads hops\n";

/// Where every traced request of one proxy goes. Each line is written as
/// its request ends, unbuffered: sandlock may exit as soon as the workload
/// does, with no moment left to flush a buffer.
pub(crate) struct Tracer {
    out: Mutex<File>,
    epoch: Instant,
}

impl Tracer {
    /// The tracer `SANDLOCK_PROXY_TRACE` asks for, if any. A file that
    /// cannot be created fails the start: a benchmark that asked for a
    /// trace must not run without one.
    pub(crate) fn from_env() -> crate::Result<Option<Arc<Tracer>>> {
        let Some(path) = std::env::var_os(VAR) else {
            return Ok(None);
        };
        let mut file = File::create(&path).map_err(|e| crate::Error::File {
            flag: VAR,
            path: std::path::Path::new(&path).display().to_string(),
            reason: e.to_string(),
        })?;
        file.write_all(HEADER.as_bytes())
            .map_err(|e| crate::Error::setup("writing the proxy trace", e))?;
        Ok(Some(Arc::new(Tracer {
            out: Mutex::new(file),
            epoch: Instant::now(),
        })))
    }

    /// A fresh set of stamps for one connection's requests.
    pub(crate) fn request(self: &Arc<Self>, proto: &'static str) -> Arc<Stamps> {
        Arc::new(Stamps {
            tracer: Arc::clone(self),
            proto,
            at: Default::default(),
            thread: Default::default(),
        })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// The stamps of the request a connection is serving (one at a time: an
/// HTTP/1 connection's requests, or an HTTP/2 client's sequential
/// streams; overlapping streams share them and their lines mix stages).
pub(crate) struct Stamps {
    tracer: Arc<Tracer>,
    proto: &'static str,
    /// Nanoseconds after the tracer's start, 0 for not yet.
    at: [AtomicU64; STAGES],
    thread: [AtomicU32; STAGES],
}

impl Stamps {
    /// Starts a request: every later stage is cleared.
    pub(crate) fn begin(&self) {
        for (at, thread) in self.at.iter().zip(&self.thread).skip(1) {
            at.store(0, Ordering::Relaxed);
            thread.store(0, Ordering::Relaxed);
        }
        self.stamp(Stage::Arrived);
    }

    /// Records `stage` now, unless it was already recorded for this request.
    pub(crate) fn mark(&self, stage: Stage) {
        if self.at[stage as usize].load(Ordering::Relaxed) == 0 {
            self.stamp(stage);
        }
    }

    fn stamp(&self, stage: Stage) {
        self.at[stage as usize].store(self.tracer.now().max(1), Ordering::Relaxed);
        self.thread[stage as usize].store(this_thread(), Ordering::Relaxed);
    }

    /// True once the stage before `stage` is stamped and `stage` is not:
    /// the socket hooks record only then, so a pooled connection's other
    /// traffic is not taken for this request's.
    fn waiting_for(&self, stage: Stage) -> bool {
        let before = stage as usize - 1;
        self.at[before].load(Ordering::Relaxed) != 0
            && self.at[stage as usize].load(Ordering::Relaxed) == 0
    }

    /// Ends the request: its line is written.
    pub(crate) fn finish(&self) {
        self.mark(Stage::Delivered);
        let at: Vec<u64> = self.at.iter().map(|a| a.load(Ordering::Relaxed)).collect();
        let threads: Vec<u32> = self
            .thread
            .iter()
            .map(|t| t.load(Ordering::Relaxed))
            .collect();
        let line = render(self.proto, &at, &threads);
        if let Ok(mut out) = self.tracer.out.lock() {
            let _ = out.write_all(line.as_bytes());
        }
    }
}

/// One line: each stage's microseconds after `Arrived` (`-` for a stage
/// not passed), the thread of each stage, and how often consecutive
/// stages ran on different threads.
fn render(proto: &str, at: &[u64], threads: &[u32]) -> String {
    let start = at.first().copied().unwrap_or(0);
    let mut line = String::from(proto);
    for &t in &at[1..] {
        if t == 0 {
            line.push_str(" -");
        } else {
            let us = t.saturating_sub(start) as f64 / 1000.0;
            line.push_str(&format!(" {us:.1}"));
        }
    }
    let seen: Vec<u32> = threads.iter().copied().filter(|&t| t != 0).collect();
    let names: Vec<String> = seen.iter().map(u32::to_string).collect();
    let hops = seen.windows(2).filter(|w| w[0] != w[1]).count();
    line.push_str(&format!(" {} {hops}\n", names.join(",")));
    line
}

fn this_thread() -> u32 {
    thread_local! {
        static TID: u32 = {
            // SAFETY: gettid takes no arguments and cannot fail.
            let tid = unsafe { libc::gettid() };
            u32::try_from(tid).unwrap_or(0)
        };
    }
    TID.with(|t| *t)
}

/// An upstream socket whose first write and first read after a request's
/// check are stamped.
pub(crate) struct Traced<T> {
    inner: T,
    stamps: Option<Arc<Stamps>>,
}

impl<T> Traced<T> {
    pub(crate) fn new(inner: T, stamps: Option<Arc<Stamps>>) -> Traced<T> {
        Traced { inner, stamps }
    }

    fn on(&self, stage: Stage) {
        if let Some(s) = &self.stamps {
            if s.waiting_for(stage) {
                s.stamp(stage);
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Traced<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let out = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(out, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.on(Stage::UpstreamRead);
        }
        out
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Traced<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.on(Stage::UpstreamWrite);
        let out = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(out, Poll::Ready(Ok(n)) if n > 0) {
            self.on(Stage::UpstreamWritten);
        }
        out
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.on(Stage::UpstreamWrite);
        let out = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(out, Poll::Ready(Ok(n)) if n > 0) {
            self.on(Stage::UpstreamWritten);
        }
        out
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_has_offsets_threads_and_hops() {
        let at = [1_000, 3_000, 4_500, 5_000, 0, 0, 9_000, 10_000];
        let threads = [7, 7, 8, 8, 0, 0, 8, 7];
        assert_eq!(
            render("h1", &at, &threads),
            "h1 2.0 3.5 4.0 - - 8.0 9.0 7,7,8,8,8,7 2\n"
        );
    }
}
