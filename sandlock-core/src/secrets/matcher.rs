//! The byte-level substitution engine: placeholders in, real values out
//! (or, for response scrubbing, the other way round).
//!
//! Owns the matching semantics and nothing else. A [`Replacer`] is a set of
//! pattern → replacement pairs, built once per sandbox (or per host);
//! [`Replacer::replace_all`] rewrites one contiguous buffer (a header value,
//! a URL, a whole body) and [`StreamReplacer`] rewrites a body that arrives
//! in arbitrary chunks, finding patterns that straddle chunk, read and frame
//! boundaries.
//!
//! Semantics, identical for both: the input is scanned left to right; at
//! each position the leftmost pattern occurrence wins and, among patterns
//! starting there, the longest (identical patterns: the first pair given).
//! The occurrence is replaced and the scan resumes right after it, so
//! occurrences never overlap. For every way of splitting a body into chunks,
//! the concatenated output of [`StreamReplacer::push`] and
//! [`StreamReplacer::finish`] equals [`Replacer::replace_all`] of the whole
//! body, or the body itself when nothing matched.
//!
//! It must never change a byte that is not part of a complete pattern
//! occurrence ("bytes are sacred": no match means the very same bytes, and
//! zero-copy slices of them where it can), never allocate per byte, never
//! re-scan more than the held-back tail (linear in the body size), never
//! hold back more than `max_pattern_len - 1` bytes between chunks, and never
//! format a replacement value (its `Debug` prints only counts).

use std::fmt;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::search::Searcher;

/// Placeholder → replacement pairs, built once per sandbox (or per host).
pub struct Replacer {
    /// Leftmost-longest search over the patterns, as bytes.
    search: Searcher,
    /// The patterns, by pattern id (for the stream's tail check).
    patterns: Vec<Vec<u8>>,
    /// The replacements, by pattern id.
    replacements: Vec<Vec<u8>>,
    /// Ids of the patterns starting with each byte value.
    by_first: Vec<Vec<u32>>,
    /// Length of the longest pattern (0 when there are none).
    max_len: usize,
}

impl Replacer {
    /// A replacer for `(pattern, replacement)` pairs. Replacements may have
    /// any length, including zero.
    ///
    /// # Panics
    ///
    /// If a pattern is empty (it would match everywhere), or if the patterns
    /// are too large for the automaton (far beyond any secret's size).
    pub fn new(pairs: &[(&[u8], &[u8])]) -> Replacer {
        assert!(
            pairs.iter().all(|(p, _)| !p.is_empty()),
            "secret matcher: empty pattern"
        );
        let patterns: Vec<&[u8]> = pairs.iter().map(|(p, _)| *p).collect();
        let search = Searcher::new(&patterns);
        let mut by_first = vec![Vec::new(); 256];
        for (id, (p, _)) in pairs.iter().enumerate() {
            by_first[usize::from(p[0])].push(id as u32);
        }
        Replacer {
            search,
            patterns: pairs.iter().map(|(p, _)| p.to_vec()).collect(),
            replacements: pairs.iter().map(|(_, r)| r.to_vec()).collect(),
            by_first,
            max_len: pairs.iter().map(|(p, _)| p.len()).max().unwrap_or(0),
        }
    }

    /// No pattern at all: nothing can ever match.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// `input` with every occurrence replaced (leftmost-longest,
    /// non-overlapping, left to right); `None` when nothing matched, so the
    /// caller keeps the original bytes untouched.
    pub fn replace_all(&self, input: &[u8]) -> Option<Vec<u8>> {
        let mut matches = self.search.find_iter(input).peekable();
        matches.peek()?;
        let mut out = Vec::with_capacity(input.len());
        let mut at = 0;
        for m in matches {
            out.extend_from_slice(&input[at..m.start]);
            out.extend_from_slice(&self.replacements[m.pattern]);
            at = m.end;
        }
        out.extend_from_slice(&input[at..]);
        Some(out)
    }

    /// Whether any pattern occurs in `input`.
    pub fn find(&self, input: &[u8]) -> bool {
        self.search.is_match(input)
    }

    /// Length of the longest pattern (0 when there are none).
    pub fn max_pattern_len(&self) -> usize {
        self.max_len
    }

    /// Whether every replacement has its pattern's length (replacing never
    /// changes a body's length).
    pub fn same_lengths(&self) -> bool {
        self.patterns
            .iter()
            .zip(&self.replacements)
            .all(|(p, r)| p.len() == r.len())
    }

    /// Where the undecided tail of `b` starts: the smallest position `p`
    /// (within the last `max_len - 1` bytes) such that `b[p..]` is a proper
    /// prefix of some pattern, i.e. an occurrence starting at `p` could
    /// still complete (or grow longer) with bytes not seen yet. `b.len()`
    /// when there is none. Any occurrence in `b` starting before it is final.
    ///
    /// Linear in `max_len`: the prefix comparisons have a budget, and when
    /// it runs out the tail is held back from the current candidate, which
    /// is conservative (holding back more is always correct).
    fn undecided_from(&self, b: &[u8]) -> usize {
        let n = b.len();
        if self.max_len <= 1 {
            return n;
        }
        let mut budget = 4 * self.max_len + 256;
        for p in n.saturating_sub(self.max_len - 1)..n {
            let ids = &self.by_first[usize::from(b[p])];
            if ids.is_empty() {
                continue;
            }
            let tail = &b[p..];
            for &id in ids {
                let pat = &self.patterns[id as usize];
                if pat.len() > tail.len() {
                    if pat.starts_with(tail) {
                        return p;
                    }
                    budget = budget.saturating_sub(tail.len());
                }
            }
            if budget == 0 {
                return p;
            }
        }
        n
    }
}

impl Drop for Replacer {
    /// Best-effort wipe of the replacement values.
    fn drop(&mut self) {
        for r in &mut self.replacements {
            r.fill(0);
            std::hint::black_box(&r[..]);
        }
    }
}

impl fmt::Debug for Replacer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replacer")
            .field("patterns", &self.patterns.len())
            .field("max_pattern_len", &self.max_len)
            .finish_non_exhaustive()
    }
}

/// Streaming replacement over a body split into arbitrary chunks: finds
/// patterns that straddle chunk boundaries. Holds back at most
/// `max_pattern_len - 1` bytes between pushes, and only the bytes that could
/// still begin an occurrence.
///
/// Cost per push is linear in the chunk plus the held-back tail. When
/// nothing was held back from the previous push and nothing matches, the
/// output is a zero-copy slice of the chunk.
pub struct StreamReplacer {
    r: Arc<Replacer>,
    /// Bytes seen but not yet decided; the scan resumes at their start.
    held: Bytes,
    replaced: usize,
}

impl StreamReplacer {
    pub fn new(r: Arc<Replacer>) -> StreamReplacer {
        StreamReplacer {
            r,
            held: Bytes::new(),
            replaced: 0,
        }
    }

    /// Feeds the next chunk; returns the bytes that are final (may be
    /// empty).
    pub fn push(&mut self, chunk: Bytes) -> Bytes {
        if chunk.is_empty() {
            return chunk;
        }
        if self.r.is_empty() {
            return chunk;
        }
        let b = if self.held.is_empty() {
            chunk
        } else {
            let mut joined = BytesMut::with_capacity(self.held.len() + chunk.len());
            joined.extend_from_slice(&self.held);
            joined.extend_from_slice(&chunk);
            joined.freeze()
        };
        let undecided = self.r.undecided_from(&b);
        let mut out: Option<Vec<u8>> = None;
        let mut at = 0;
        for m in self.r.search.find_iter(&b[..]) {
            if m.start >= undecided {
                break;
            }
            let out = out.get_or_insert_with(|| Vec::with_capacity(b.len()));
            out.extend_from_slice(&b[at..m.start]);
            out.extend_from_slice(&self.r.replacements[m.pattern]);
            at = m.end;
            self.replaced += 1;
        }
        let cut = undecided.max(at);
        debug_assert!(b.len() - cut < self.r.max_len.max(1));
        self.held = b.slice(cut..);
        match out {
            None => b.slice(..cut),
            Some(mut out) => {
                out.extend_from_slice(&b[at..cut]);
                Bytes::from(out)
            }
        }
    }

    /// End of input: the held-back tail, with any last replacement.
    /// Calling it again returns nothing.
    pub fn finish(&mut self) -> Bytes {
        let held = std::mem::take(&mut self.held);
        let n = self.r.search.find_iter(&held[..]).count();
        if n == 0 {
            return held;
        }
        self.replaced += n;
        Bytes::from(self.r.replace_all(&held).unwrap_or_default())
    }

    /// How many replacements were made so far.
    pub fn replaced(&self) -> usize {
        self.replaced
    }
}

impl fmt::Debug for StreamReplacer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamReplacer")
            .field("held", &self.held.len())
            .field("replaced", &self.replaced)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[path = "matcher_tests.rs"]
mod tests;
