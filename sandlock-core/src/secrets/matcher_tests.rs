//! Tests of the substitution engine: its semantics against an independent
//! reference, every chunking of a stream, and property tests.

use super::*;

/// xorshift64*: deterministic, no dev-dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn replacer(pairs: &[(&str, &str)]) -> Replacer {
    let pairs: Vec<(&[u8], &[u8])> = pairs
        .iter()
        .map(|(p, r)| (p.as_bytes(), r.as_bytes()))
        .collect();
    Replacer::new(&pairs)
}

/// Independent reference: at each position the longest pattern
/// starting there (first pair on ties) is replaced, else the byte kept.
fn reference(pairs: &[(Vec<u8>, Vec<u8>)], input: &[u8]) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut count = 0;
    let mut i = 0;
    while i < input.len() {
        let mut best: Option<&(Vec<u8>, Vec<u8>)> = None;
        for pair in pairs {
            if input[i..].starts_with(&pair.0) && best.is_none_or(|b| pair.0.len() > b.0.len()) {
                best = Some(pair);
            }
        }
        match best {
            Some((p, r)) => {
                out.extend_from_slice(r);
                i += p.len();
                count += 1;
            }
            None => {
                out.push(input[i]);
                i += 1;
            }
        }
    }
    (out, count)
}

/// Streams `input` split at `cuts` (sorted positions); checks the
/// hold-back bound after every push. Returns output and count.
fn stream(r: &Arc<Replacer>, input: &[u8], cuts: &[usize]) -> (Vec<u8>, usize) {
    let whole = Bytes::copy_from_slice(input);
    let mut s = StreamReplacer::new(r.clone());
    let mut out = Vec::new();
    let mut from = 0;
    for &to in cuts.iter().chain(std::iter::once(&input.len())) {
        out.extend_from_slice(&s.push(whole.slice(from..to)));
        assert!(
            s.held.len() < r.max_pattern_len().max(1),
            "held {} bytes, max pattern {}",
            s.held.len(),
            r.max_pattern_len()
        );
        from = to;
    }
    out.extend_from_slice(&s.finish());
    assert!(s.finish().is_empty(), "finish twice");
    (out, s.replaced())
}

/// Every single split, every pair of splits (short inputs) and random
/// multi-splits all give `replace_all` of the whole input.
fn check_all_splits(pairs: &[(&[u8], &[u8])], input: &[u8], rng: &mut Rng) {
    let r = Arc::new(Replacer::new(pairs));
    let owned: Vec<(Vec<u8>, Vec<u8>)> = pairs
        .iter()
        .map(|(p, v)| (p.to_vec(), v.to_vec()))
        .collect();
    let (want, want_count) = reference(&owned, input);
    match r.replace_all(input) {
        Some(got) => {
            assert!(want_count > 0);
            assert_eq!(got, want, "replace_all on {input:?}");
        }
        None => assert_eq!(want_count, 0, "replace_all missed a match in {input:?}"),
    }
    let n = input.len();
    let check = |cuts: &[usize]| {
        let (got, count) = stream(&r, input, cuts);
        assert_eq!(got, want, "input {input:?} cut at {cuts:?}");
        assert_eq!(count, want_count, "count for {input:?} cut at {cuts:?}");
    };
    check(&[]);
    for i in 0..=n {
        check(&[i]);
    }
    if n <= 40 {
        for i in 0..=n {
            for j in i..=n {
                check(&[i, j]);
            }
        }
    }
    for _ in 0..200 {
        let k = rng.below(n + 2);
        let mut cuts: Vec<usize> = (0..k).map(|_| rng.below(n + 1)).collect();
        cuts.sort_unstable();
        check(&cuts);
    }
    // Byte by byte.
    check(&(1..n).collect::<Vec<_>>());
}

#[test]
fn replace_all_none_when_nothing_matched() {
    let r = replacer(&[("PLACEHOLDER", "secret-value")]);
    assert_eq!(r.replace_all(b"no such thing here"), None);
    assert_eq!(r.replace_all(b""), None);
    assert_eq!(r.replace_all(b"PLACEHOLDE"), None);
    assert!(!r.find(b"PLACEHOLDE"));
    assert!(r.find(b"xPLACEHOLDERx"));
    assert_eq!(
        r.replace_all(b"Bearer PLACEHOLDER!").as_deref(),
        Some(&b"Bearer secret-value!"[..])
    );
}

#[test]
fn leftmost_longest_non_overlapping() {
    let r = replacer(&[("abc", "1"), ("abcd", "2"), ("bcd", "3"), ("ab", "4")]);
    // Longest at the leftmost start.
    assert_eq!(r.replace_all(b"abcd").as_deref(), Some(&b"2"[..]));
    // Leftmost wins over a longer one starting later.
    assert_eq!(r.replace_all(b"abce").as_deref(), Some(&b"1e"[..]));
    assert_eq!(r.replace_all(b"xbcd").as_deref(), Some(&b"x3"[..]));
    assert_eq!(r.replace_all(b"abx").as_deref(), Some(&b"4x"[..]));
    // Non-overlapping: "abcd" consumed, then "bcd" is not there.
    assert_eq!(r.replace_all(b"abcdbcd").as_deref(), Some(&b"23"[..]));
    // Adjacent occurrences.
    assert_eq!(r.replace_all(b"ababab").as_deref(), Some(&b"444"[..]));
    // Identical patterns: the first pair wins.
    let r = replacer(&[("tok", "first"), ("tok", "second")]);
    assert_eq!(r.replace_all(b"tok").as_deref(), Some(&b"first"[..]));
}

#[test]
fn accessors() {
    let r = replacer(&[("abc", "xyz"), ("hello", "world")]);
    assert!(!r.is_empty());
    assert_eq!(r.max_pattern_len(), 5);
    assert!(r.same_lengths());
    let r = replacer(&[("abc", "xyz"), ("hello", "hi")]);
    assert!(!r.same_lengths());
    let r = Replacer::new(&[]);
    assert!(r.is_empty());
    assert_eq!(r.max_pattern_len(), 0);
    assert!(r.same_lengths());
    assert_eq!(r.replace_all(b"anything"), None);
    assert!(!r.find(b"anything"));
}

#[test]
#[should_panic(expected = "empty pattern")]
fn empty_pattern_is_refused() {
    Replacer::new(&[(b"", b"x")]);
}

/// The spellings scrubbed for a value are searched with Teddy: the
/// automaton's prefilter alone scans random bytes some 50 times slower.
#[test]
fn several_patterns_use_the_simd_searcher() {
    let pats: Vec<Vec<u8>> = (0..12u8)
        .map(|i| format!("{i:02}-pattern-{}", char::from(b'a' + i)).into_bytes())
        .collect();
    let pairs: Vec<(&[u8], &[u8])> = pats.iter().map(|p| (&p[..], &b"x"[..])).collect();
    let r = Replacer::new(&pairs);
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("ssse3") {
        assert!(r.search.simd());
        // Short patterns too, as the property test below draws them.
        let short: &[(&[u8], &[u8])] = &[(b"ab", b"1"), (b"b\0a", b""), (b"a", b"22")];
        assert!(Replacer::new(short).search.simd());
    }
    assert_eq!(
        r.replace_all(b"..07-pattern-h..11-pattern-l").as_deref(),
        Some(&b"..x..x"[..])
    );
    assert!(!Replacer::new(&pairs[..1]).search.simd());
}

#[test]
fn shareable_across_tasks() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<Replacer>();
    send_sync::<StreamReplacer>();
}

#[test]
fn debug_never_shows_values() {
    let r = Arc::new(replacer(&[("PLACEHOLDER", "hunter2-secret")]));
    let shown = format!("{r:?} {:?}", StreamReplacer::new(r.clone()));
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(!shown.contains("PLACEHOLDER"), "{shown}");
}

#[test]
fn stream_every_split_overlapping_patterns() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let pairs: &[(&[u8], &[u8])] = &[
        (b"abc", b"<ABC>"),
        (b"bcd", b"<BCD>"),
        (b"ab", b"<AB>"),
        (b"abcdef", b"<ABCDEF>"),
        (b"cdx", b""),
        (b"a", b"A"),
    ];
    let inputs: &[&[u8]] = &[
        b"",
        b"a",
        b"abc",
        b"abcdef",
        b"abcde",
        b"abcdefabcdef",
        b"xxabcdxxbcdxxabcxx",
        b"bcdabcdabcdefab",
        b"aaaaabbbbbcccccddddd",
        b"abcdeabcdxabcdefg",
        b"zzzzzzzzzzzzzzzzzzzz",
        b"cdxcdxcdxab",
        b"abcdecdxabcdabcde",
    ];
    for input in inputs {
        check_all_splits(pairs, input, &mut rng);
    }
}

#[test]
fn stream_every_split_placeholders() {
    let mut rng = Rng(0x5eed_1234_abcd_0002);
    // Same-length, like real placeholders, plus one shorter value.
    let pairs: &[(&[u8], &[u8])] = &[
        (b"SLPH_a1b2c3d4e5f6g7h8", b"ghp_0123456789ABCDEFG"),
        (b"SLPH_zz", b"tiny"),
    ];
    let inputs: &[&[u8]] = &[
        b"SLPH_a1b2c3d4e5f6g7h8",
        b"Authorization: token SLPH_a1b2c3d4e5f6g7h8\r\n",
        b"SLPH_a1b2c3d4e5f6g7h8SLPH_a1b2c3d4e5f6g7h8SLPH_zz",
        b"SLPH_a1b2c3d4e5f6g7h SLPH_a1b2c3d4e5f6g7h8 SLPH_z",
        b"SLPH_SLPH_SLPH_a1b2c3d4e5f6g7h8SLPH_",
        b"{\"token\":\"SLPH_zz\",\"other\":\"SLPH_a1\"}",
    ];
    for input in inputs {
        check_all_splits(pairs, input, &mut rng);
    }
}

#[test]
fn stream_every_split_binary_with_nul() {
    let mut rng = Rng(0x5eed_1234_abcd_0003);
    let pairs: &[(&[u8], &[u8])] = &[
        (b"\0\x01\0", b"\xff\xfe\xfd"),
        (b"\0\x01", b"\0"),
        (b"\x01\0\0\xff", b"NUL"),
    ];
    let inputs: &[&[u8]] = &[
        b"\0\0\0\0",
        b"\0\x01\0\x01\0\0\xff\0\x01",
        b"\x01\0\0\xff\x01\0\0\xff",
        b"\xff\0\x01\0\xff\0\x01",
        b"\0",
    ];
    for input in inputs {
        check_all_splits(pairs, input, &mut rng);
    }
}

/// Random pattern sets over a tiny alphabet (so overlaps, prefixes and
/// repeats are common) against the independent reference.
#[test]
fn stream_random_fuzz_against_reference() {
    let mut rng = Rng(0x5eed_1234_abcd_0004);
    let alphabet = b"ab\0c";
    for _ in 0..300 {
        let k = 1 + rng.below(4);
        let pats: Vec<(Vec<u8>, Vec<u8>)> = (0..k)
            .map(|_| {
                let len = 1 + rng.below(5);
                let p = (0..len).map(|_| alphabet[rng.below(4)]).collect();
                let rlen = rng.below(7);
                let v = (0..rlen).map(|_| b"XYZ"[rng.below(3)]).collect();
                (p, v)
            })
            .collect();
        let pairs: Vec<(&[u8], &[u8])> = pats.iter().map(|(p, v)| (&p[..], &v[..])).collect();
        let len = rng.below(60);
        let input: Vec<u8> = (0..len).map(|_| alphabet[rng.below(4)]).collect();
        check_all_splits(&pairs, &input, &mut rng);
    }
}

#[test]
fn stream_without_match_is_byte_identical_and_zero_copy() {
    let r = Arc::new(replacer(&[("SLPH_a1b2c3d4", "ghp_secret12")]));
    let mut s = StreamReplacer::new(r.clone());
    // No chunk ends in a possible start: every push is the chunk itself.
    for text in [&b"GET / HTTP/1.1\r\n"[..], b"body bytes\0\x01", b"more"] {
        let chunk = Bytes::copy_from_slice(text);
        let out = s.push(chunk.clone());
        assert_eq!(out, chunk);
        assert_eq!(out.as_ptr(), chunk.as_ptr(), "copied a clean chunk");
    }
    // A tail that could start a placeholder is held back, and only it.
    let chunk = Bytes::from_static(b"prefix SLPH_a1");
    let out = s.push(chunk.clone());
    assert_eq!(&out[..], b"prefix ");
    assert_eq!(out.as_ptr(), chunk.as_ptr());
    assert_eq!(&s.held[..], b"SLPH_a1");
    // It turns out not to be one: the bytes come back unchanged.
    let out = s.push(Bytes::from_static(b"x and the rest"));
    assert_eq!(&out[..], b"SLPH_a1x and the rest");
    assert!(s.finish().is_empty());
    assert_eq!(s.replaced(), 0);
}

#[test]
fn stream_holds_back_at_most_max_len_minus_one() {
    let r = Arc::new(replacer(&[("aaaaaaaab", "X")]));
    let mut s = StreamReplacer::new(r.clone());
    let mut out = Vec::new();
    for _ in 0..100 {
        out.extend_from_slice(&s.push(Bytes::from_static(b"aaaaaaaaaaaaa")));
        assert!(s.held.len() <= 8);
    }
    out.extend_from_slice(&s.push(Bytes::from_static(b"b")));
    out.extend_from_slice(&s.finish());
    let mut want = vec![b'a'; 1292];
    want.push(b'X');
    assert_eq!(out, want);
    assert_eq!(s.replaced(), 1);
}

#[test]
fn stream_large_body_in_big_chunks() {
    let ph = b"SLPH_0123456789abcdef0123456789abcdef";
    let value = b"ghp_ZYXWVUTSRQPONMLKJIHGFEDCBA98765432";
    let value = &value[..ph.len()];
    let r = Arc::new(Replacer::new(&[(&ph[..], value)]));
    let mut rng = Rng(0x5eed_1234_abcd_0005);
    let mut body = Vec::with_capacity(4 << 20);
    let mut count = 0;
    while body.len() < 4 << 20 {
        if rng.below(5000) == 0 {
            body.extend_from_slice(ph);
            count += 1;
        } else {
            body.push((rng.next() >> 56) as u8);
        }
    }
    let want = r.replace_all(&body).unwrap();
    let whole = Bytes::from(body);
    let mut s = StreamReplacer::new(r);
    let mut out = Vec::with_capacity(whole.len());
    for from in (0..whole.len()).step_by(64 << 10) {
        let to = (from + (64 << 10)).min(whole.len());
        out.extend_from_slice(&s.push(whole.slice(from..to)));
    }
    out.extend_from_slice(&s.finish());
    assert_eq!(s.replaced(), count);
    assert_eq!(out, want);
}

use proptest::prelude::*;

/// Pairs over a tiny alphabet, so overlaps, prefixes and repeats are
/// common; replacements of any length, including none.
fn pairs_strategy() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    let pattern = proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(0u8)], 1..9);
    let replacement = proptest::collection::vec(any::<u8>(), 0..8);
    proptest::collection::vec((pattern, replacement), 1..5)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// For any patterns, any input and any chunking, the stream gives
    /// exactly what one `replace_all` of the whole input gives (the
    /// input itself when nothing matched), with the same count, and
    /// never holds back a whole pattern.
    #[test]
    fn stream_equals_one_shot_for_any_chunking(
        pairs in pairs_strategy(),
        input in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(0u8), any::<u8>()], 0..200),
        cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..12),
    ) {
        let refs: Vec<(&[u8], &[u8])> =
            pairs.iter().map(|(p, r)| (p.as_slice(), r.as_slice())).collect();
        let r = Arc::new(Replacer::new(&refs));
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
        cuts.sort_unstable();
        let (got, count) = stream(&r, &input, &cuts);
        let (want, want_count) = reference(&pairs, &input);
        prop_assert_eq!(&got, &want);
        prop_assert_eq!(count, want_count);
        match r.replace_all(&input) {
            Some(one_shot) => prop_assert_eq!(one_shot, want),
            None => prop_assert_eq!(input, got),
        }
    }

    /// Realistic placeholders in any bytes: the same.
    #[test]
    fn stream_equals_one_shot_for_placeholders(
        ph in "[A-Za-z0-9]{16,40}",
        value in proptest::collection::vec(any::<u8>(), 1..40),
        pieces in proptest::collection::vec(prop_oneof![
            Just(None),
            proptest::collection::vec(any::<u8>(), 0..30).prop_map(Some),
        ], 0..12),
        cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..12),
    ) {
        let mut input = Vec::new();
        for p in &pieces {
            match p {
                None => input.extend_from_slice(ph.as_bytes()),
                Some(bytes) => input.extend_from_slice(bytes),
            }
        }
        let r = Arc::new(Replacer::new(&[(ph.as_bytes(), value.as_slice())]));
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
        cuts.sort_unstable();
        let (got, _) = stream(&r, &input, &cuts);
        prop_assert_eq!(got, r.replace_all(&input).unwrap_or(input));
    }
}
