//! Finding a set of byte patterns, leftmost-longest, non-overlapping, left
//! to right (identical patterns: the first one given), as fast as the CPU
//! allows.
//!
//! Owns the choice of searcher and nothing else. Aho–Corasick's automaton
//! is always built; its own prefilter is memmem for one pattern, but for a
//! few patterns that start with different bytes (the spellings of a value
//! that responses are scrubbed of: raw, hex, `\u`, base64) it stops at
//! every one of those bytes, and scans random bytes at about 200 MiB/s.
//! Teddy (aho-corasick's SIMD `packed` searcher) stays at gigabytes per
//! second, but takes at most 64 patterns at once: the patterns are split
//! into groups of 64, each searched by its own Teddy, and their matches
//! merged back into the automaton's order. Where Teddy cannot be built
//! (another CPU), the automaton searches alone.
//!
//! It must never report a match the automaton would not, nor miss one.

use aho_corasick::packed;
use aho_corasick::{AhoCorasick, MatchKind, Span};

/// Patterns per Teddy searcher: its limit.
const GROUP: usize = 64;

/// One occurrence: `hay[start..end]` is pattern `pattern`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Found {
    pub start: usize,
    pub end: usize,
    pub pattern: usize,
}

/// A searcher over a fixed set of patterns.
pub(super) struct Searcher {
    ac: AhoCorasick,
    /// Teddy searchers over consecutive groups of patterns, with the index
    /// of each group's first pattern; empty when the automaton searches.
    groups: Vec<(usize, packed::Searcher)>,
}

impl Searcher {
    /// # Panics
    ///
    /// If the patterns are too large for the automaton (far beyond any
    /// secret's size).
    pub(super) fn new(patterns: &[&[u8]]) -> Searcher {
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(patterns)
            .expect("secret matcher: patterns too large for the automaton");
        // One pattern: the automaton already searches with memmem.
        let groups = if patterns.len() > 1 {
            teddy_groups(patterns).unwrap_or_default()
        } else {
            Vec::new()
        };
        Searcher { ac, groups }
    }

    /// Whether Teddy searches (for tests).
    #[cfg(test)]
    pub(super) fn simd(&self) -> bool {
        !self.groups.is_empty()
    }

    /// The occurrences in `hay`, in order.
    pub(super) fn find_iter<'h>(&'h self, hay: &'h [u8]) -> Box<dyn Iterator<Item = Found> + 'h> {
        let found = |m: aho_corasick::Match, base: usize| Found {
            start: m.start(),
            end: m.end(),
            pattern: base + m.pattern().as_usize(),
        };
        match self.groups.as_slice() {
            [] => Box::new(self.ac.find_iter(hay).map(move |m| found(m, 0))),
            [(base, one)] => Box::new(one.find_iter(hay).map(move |m| found(m, *base))),
            groups => Box::new(Merged {
                groups,
                hay,
                pos: 0,
                next: vec![Next::Unknown; groups.len()],
            }),
        }
    }

    /// Whether any pattern occurs in `hay`.
    pub(super) fn is_match(&self, hay: &[u8]) -> bool {
        if self.groups.is_empty() {
            self.ac.is_match(hay)
        } else {
            self.groups.iter().any(|(_, s)| s.find(hay).is_some())
        }
    }
}

/// Teddy over each group of [`GROUP`] patterns; `None` when one cannot
/// be built.
fn teddy_groups(patterns: &[&[u8]]) -> Option<Vec<(usize, packed::Searcher)>> {
    patterns
        .chunks(GROUP)
        .enumerate()
        .map(|(i, group)| {
            let searcher = packed::Config::new()
                .match_kind(packed::MatchKind::LeftmostLongest)
                .builder()
                .extend(group)
                .build()?;
            Some((i * GROUP, searcher))
        })
        .collect()
}

/// A group's next occurrence at or after some position.
#[derive(Debug, Clone, Copy)]
enum Next {
    /// Not looked for yet (or overtaken).
    Unknown,
    Found(Found),
    /// None left.
    Done,
}

/// The occurrences of several groups in one order: at each step the
/// leftmost, then the longest, then the first pattern; the search goes on
/// after it, so occurrences never overlap.
struct Merged<'h> {
    groups: &'h [(usize, packed::Searcher)],
    hay: &'h [u8],
    pos: usize,
    next: Vec<Next>,
}

impl Iterator for Merged<'_> {
    type Item = Found;

    fn next(&mut self) -> Option<Found> {
        if self.pos > self.hay.len() {
            return None;
        }
        let mut best: Option<Found> = None;
        for (next, (base, s)) in self.next.iter_mut().zip(self.groups) {
            // A group's occurrence that starts at or after `pos` is still
            // its leftmost-longest one from `pos`; an earlier one overlaps
            // what was taken and is looked for again.
            let stale = match next {
                Next::Unknown => true,
                Next::Found(f) => f.start < self.pos,
                Next::Done => false,
            };
            if stale {
                let span = Span {
                    start: self.pos,
                    end: self.hay.len(),
                };
                *next = match s.find_in(self.hay, span) {
                    Some(m) => Next::Found(Found {
                        start: m.start(),
                        end: m.end(),
                        pattern: base + m.pattern().as_usize(),
                    }),
                    None => Next::Done,
                };
            }
            if let Next::Found(f) = *next {
                let better = best.is_none_or(|b| {
                    (f.start, std::cmp::Reverse(f.end), f.pattern)
                        < (b.start, std::cmp::Reverse(b.end), b.pattern)
                });
                if better {
                    best = Some(f);
                }
            }
        }
        match best {
            Some(f) => {
                // Patterns are never empty: the search moves on.
                self.pos = f.end;
                Some(f)
            }
            None => {
                self.pos = self.hay.len() + 1;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ac_only(patterns: &[&[u8]], hay: &[u8]) -> Vec<Found> {
        let s = Searcher {
            ac: AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(patterns)
                .unwrap(),
            groups: Vec::new(),
        };
        s.find_iter(hay).collect()
    }

    /// More than one group of patterns (here 150, some of them equal,
    /// some prefixes of others): the merged Teddy searchers find what the
    /// automaton finds, match for match.
    #[test]
    fn merged_groups_agree_with_the_automaton() {
        let owned: Vec<Vec<u8>> = (0..150u32)
            .map(|i| format!("p{}-{}", i % 97, "x".repeat((i % 5) as usize)).into_bytes())
            .collect();
        let patterns: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
        let s = Searcher::new(&patterns);
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("ssse3") {
            assert_eq!(s.groups.len(), 3);
        }
        let mut hay = Vec::new();
        for i in 0..400u32 {
            hay.extend_from_slice(
                format!("..p{}-{}", i % 131, "x".repeat((i % 7) as usize)).as_bytes(),
            );
        }
        let got: Vec<Found> = s.find_iter(&hay).collect();
        assert!(got.len() > 200, "{}", got.len());
        assert_eq!(got, ac_only(&patterns, &hay));
        assert!(s.is_match(b"..p3-x"));
        assert!(!s.is_match(b"..q3-x"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any patterns (up to three groups' worth, over a tiny alphabet so
        /// they overlap) in any bytes: the same matches as the automaton.
        #[test]
        fn same_matches_as_the_automaton(
            owned in proptest::collection::vec(
                proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'c')], 1..7),
                1..160,
            ),
            hay in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'c'), any::<u8>()], 0..300),
        ) {
            let patterns: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
            let s = Searcher::new(&patterns);
            let got: Vec<Found> = s.find_iter(&hay).collect();
            prop_assert_eq!(got, ac_only(&patterns, &hay));
        }
    }
}
