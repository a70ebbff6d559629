//! The spellings of a secret's value that a response may carry back to the
//! workload, each paired with what replaces it there: the value raw;
//! percent-encoded as common encoders do it (hex in either case; every
//! byte but letters and digits, or RFC 3986's unreserved marks kept, with
//! `/` or JavaScript's `!'()*` too); in base64 at each of the
//! three alignments it can sit at inside a longer text (standard and URL
//! alphabets, as in an echoed `Basic` credential or a JWT); in hex (lower
//! and upper case); and as JSON encoders write it (every character as
//! `\uXXXX` in either case, or escaped only where an encoder must or
//! chooses to: quotes, backslashes and controls, `\/`, HTML-safe `<>&`,
//! non-ASCII as `\uXXXX`).
//!
//! Every replacement has exactly its pattern's length, so scrubbing never
//! changes a body's length: a response keeps its Content-Length, and one
//! with no value in it is not touched at all. The replacement is the same
//! spelling of the value's stand-in (its placeholder, which has the
//! value's length when the value is 16 bytes or longer, otherwise the
//! placeholder's first bytes), so an echo of a long value reads back as
//! the placeholder. Where that spelling has another length, an
//! alphanumeric stand-in of the pattern's length is used instead.
//!
//! It must never pair a pattern with a replacement that holds the value,
//! and never format either.

use base64::Engine;

/// Derived spellings shorter than this are not scrubbed: they would match
/// by chance in every response of the sandbox. (The value itself always
/// is.)
const MIN_FORM_LEN: usize = 8;
/// The fewest value bytes a base64 spelling covers (8 characters).
const MIN_BASE64_BYTES: usize = 6;

/// (pattern, same-length replacement) pairs for one secret's value, the
/// raw value first, no pattern twice.
pub(super) fn scrub_pairs(value: &[u8], placeholder: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let stand_in = cycle(placeholder, value.len());
    let mut pairs = Pairs::new(value, placeholder);
    pairs.add(value.to_vec(), stand_in.clone());
    // A spelling with no letter in it (hex of digits and `P`-`Y`, say) is
    // the same in both cases, and only the first pair made for it counts:
    // the case tried first is the one its encoders write most, upper for
    // percent (RFC 3986), lower for hex and JSON.
    for upper in [true, false] {
        for keep in PERCENT_KEEPS {
            let pct = percent(value, upper, keep);
            let fitted = percent_fit(&stand_in, pct.len(), upper);
            pairs.add(pct, fitted);
        }
    }
    for upper in [false, true] {
        pairs.add(hex(value, upper), hex(&stand_in, upper));
        pairs.add(json_units(value, upper), json_units(&stand_in, upper));
    }
    for escapes in JsonEscapes::ALL {
        if let Some(form) = json_escaped(value, escapes) {
            let same = json_escaped(&stand_in, escapes).unwrap_or_else(|| stand_in.clone());
            pairs.add(form, same);
        }
    }
    for (form, same) in base64_forms(value, &stand_in) {
        pairs.add(form, same);
    }
    pairs.into_vec()
}

/// Pairs without repeats, each made safe (see [`Pairs::add`]).
struct Pairs<'a> {
    value: &'a [u8],
    placeholder: &'a [u8],
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl<'a> Pairs<'a> {
    fn new(value: &'a [u8], placeholder: &'a [u8]) -> Pairs<'a> {
        Pairs {
            value,
            placeholder,
            pairs: Vec::new(),
        }
    }

    /// Adds `pattern`; a replacement of another length, or one that holds
    /// the value, gives way to an alphanumeric one of the right length.
    fn add(&mut self, pattern: Vec<u8>, replacement: Vec<u8>) {
        let first = self.pairs.is_empty();
        if pattern.is_empty()
            || (!first && pattern.len() < MIN_FORM_LEN)
            || self.pairs.iter().any(|(p, _)| *p == pattern)
        {
            return;
        }
        let mut replacement = replacement;
        if replacement.len() != pattern.len() || contains(&replacement, self.value) {
            replacement = cycle(self.placeholder, pattern.len());
        }
        if contains(&replacement, self.value) {
            replacement = filler(self.value, pattern.len());
        }
        self.pairs.push((pattern, replacement));
    }

    fn into_vec(self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.pairs
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && memchr::memmem::find(hay, needle).is_some()
}

/// `len` bytes of `s` repeated (`s` is a placeholder: never empty).
fn cycle(s: &[u8], len: usize) -> Vec<u8> {
    if s.is_empty() {
        return vec![b'X'; len];
    }
    s.iter().copied().cycle().take(len).collect()
}

/// `len` times one letter, one the value is not made of alone (so the
/// run cannot hold it).
fn filler(value: &[u8], len: usize) -> Vec<u8> {
    let c = if value.iter().all(|&b| b == b'X') {
        b'Y'
    } else {
        b'X'
    };
    vec![c; len]
}

fn hex_digit(n: u8, upper: bool) -> u8 {
    let digits: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    digits[usize::from(n & 0xf)]
}

/// What percent-encoders leave as it is besides letters and digits:
/// nothing (the strictest), RFC 3986's unreserved marks (Go's
/// `url.QueryEscape` but for spaces, Rust's `urlencoding`), and those plus
/// `/` (Python's `quote`), plus `!'()*` (JavaScript's
/// `encodeURIComponent`).
const PERCENT_KEEPS: [&[u8]; 4] = [b"", b"-._~", b"-._~/", b"-._~!'()*"];

/// Every byte but letters, digits and `keep` as `%XX`.
fn percent(bytes: &[u8], upper: bool, keep: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', hex_digit(b >> 4, upper), hex_digit(b, upper)]);
        }
    }
    out
}

/// `stand_in` (alphanumeric) percent-encoded to exactly `len` bytes, by
/// encoding its first characters too (they decode the same); an empty
/// result when no such spelling exists (the pair then gets another
/// stand-in).
fn percent_fit(stand_in: &[u8], len: usize, upper: bool) -> Vec<u8> {
    let extra = len.checked_sub(stand_in.len());
    let Some(k) = extra.filter(|e| e % 2 == 0).map(|e| e / 2) else {
        return Vec::new();
    };
    if k > stand_in.len() {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(len);
    for (i, &b) in stand_in.iter().enumerate() {
        if i < k {
            out.extend_from_slice(&[b'%', hex_digit(b >> 4, upper), hex_digit(b, upper)]);
        } else {
            out.push(b);
        }
    }
    out
}

fn hex(bytes: &[u8], upper: bool) -> Vec<u8> {
    bytes
        .iter()
        .flat_map(|&b| [hex_digit(b >> 4, upper), hex_digit(b, upper)])
        .collect()
}

/// `\uXXXX` for one UTF-16 unit.
fn push_unit(out: &mut Vec<u8>, unit: u16, upper: bool) {
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        // Four bits at a time: the cast keeps exactly them.
        out.push(hex_digit((unit >> shift) as u8, upper));
    }
}

/// Every character as `\uXXXX` (UTF-16 units), or every byte when the
/// value is not UTF-8.
fn json_units(value: &[u8], upper: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() * 6);
    match std::str::from_utf8(value) {
        Ok(text) => {
            for unit in text.encode_utf16() {
                push_unit(&mut out, unit, upper);
            }
        }
        Err(_) => {
            for &b in value {
                push_unit(&mut out, u16::from(b), upper);
            }
        }
    }
    out
}

/// The optional escapes of JSON encoders, over the ones every encoder
/// makes (`"`, `\`, controls).
#[derive(Debug, Clone, Copy)]
struct JsonEscapes {
    /// `/` as `\/` (PHP, some Java encoders).
    slash: bool,
    /// `<`, `>`, `&`, U+2028 and U+2029 as `\uXXXX` (Go's default).
    html: bool,
    /// Everything outside ASCII as `\uXXXX` (Python's default).
    ascii: bool,
}

impl JsonEscapes {
    const ALL: [JsonEscapes; 8] = {
        let mut all = [JsonEscapes {
            slash: false,
            html: false,
            ascii: false,
        }; 8];
        let mut i = 0;
        while i < 8 {
            all[i] = JsonEscapes {
                slash: i & 1 != 0,
                html: i & 2 != 0,
                ascii: i & 4 != 0,
            };
            i += 1;
        }
        all
    };
}

/// The value inside a JSON string as an encoder with `escapes` writes it;
/// `None` when that is the value itself, or the value is not UTF-8.
fn json_escaped(value: &[u8], escapes: JsonEscapes) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(value).ok()?;
    let mut out = Vec::with_capacity(value.len() + 8);
    for ch in text.chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\t' => out.extend_from_slice(b"\\t"),
            '/' if escapes.slash => out.extend_from_slice(b"\\/"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' if escapes.html => {
                push_char_units(&mut out, ch)
            }
            c if u32::from(c) < 0x20 => push_char_units(&mut out, c),
            c if !c.is_ascii() && escapes.ascii => push_char_units(&mut out, c),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    (out != value).then_some(out)
}

fn push_char_units(out: &mut Vec<u8>, ch: char) {
    let mut units = [0u16; 2];
    for &unit in ch.encode_utf16(&mut units).iter() {
        push_unit(out, unit, false);
    }
}

/// The base64 spellings of `value` inside any base64 text (such as an
/// echoed `Basic` credential), paired with `stand_in`'s (of the same
/// length, so the bytes line up): for each of the three alignments a value
/// can sit at, the characters that depend on its bytes alone, in the
/// standard and the URL alphabet. The two or fewer bytes at either end
/// that share a group with their neighbours stay as they were.
fn base64_forms(value: &[u8], stand_in: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    if value.len() != stand_in.len() {
        return Vec::new();
    }
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE,
    ];
    let mut out = Vec::new();
    for skip in 0..3 {
        let usable = value.len().saturating_sub(skip) / 3 * 3;
        if usable < MIN_BASE64_BYTES {
            continue;
        }
        let range = skip..skip + usable;
        for engine in &engines {
            out.push((
                engine.encode(&value[range.clone()]).into_bytes(),
                engine.encode(&stand_in[range.clone()]).into_bytes(),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::matcher::Replacer;

    const VALUE: &[u8] = b"ghp_realsecretvalue_1234567890";
    const PH: &[u8] = b"x07yAJmu2mwAbDsbDbNZYdUQf2V7OX";

    fn replacer(value: &[u8], ph: &[u8]) -> Replacer {
        let pairs = scrub_pairs(value, ph);
        let refs: Vec<(&[u8], &[u8])> = pairs
            .iter()
            .map(|(a, b)| (a.as_slice(), b.as_slice()))
            .collect();
        Replacer::new(&refs)
    }

    /// Every pair keeps its length and never hands the value back; the
    /// raw value becomes the placeholder.
    #[test]
    fn same_lengths_and_never_the_value() {
        for (value, ph) in [
            (VALUE, PH),
            (&b"short-v@l"[..], &b"SLKP_abcdefghijklmnopqrs"[..]),
            (
                "p\u{e4}ss/w<o>rd\"&\\tab\tend".as_bytes(),
                b"SLKP_0123456789abcdefghi",
            ),
            (b"XXXXXXXXXXXXXXXXXXXX", b"XXXXXXXXXXXXXXXXXXXY"),
        ] {
            let pairs = scrub_pairs(value, ph);
            assert_eq!(pairs[0].0, value);
            for (p, r) in &pairs {
                assert_eq!(p.len(), r.len(), "{:?}", String::from_utf8_lossy(p));
                assert!(!contains(r, value), "{:?}", String::from_utf8_lossy(r));
            }
            let r = replacer(value, ph);
            assert!(r.same_lengths());
        }
        assert_eq!(scrub_pairs(VALUE, PH)[0].1, PH);
    }

    /// Each spelling an echo might use is found and replaced by the
    /// placeholder's same spelling.
    #[test]
    fn every_spelling_reads_back_as_the_placeholder() {
        let r = replacer(VALUE, PH);
        let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (
                percent(VALUE, true, b""),
                percent_fit(PH, percent(VALUE, true, b"").len(), true),
            ),
            (
                percent(VALUE, false, b""),
                percent_fit(PH, percent(VALUE, false, b"").len(), false),
            ),
            (hex(VALUE, false), hex(PH, false)),
            (hex(VALUE, true), hex(PH, true)),
            (json_units(VALUE, false), json_units(PH, false)),
            (json_units(VALUE, true), json_units(PH, true)),
        ];
        for (form, want) in cases {
            let text = [&b"{\"v\":\""[..], &form, b"\"}"].concat();
            let got = r.replace_all(&text).expect("found");
            assert_eq!(got, [&b"{\"v\":\""[..], &want, b"\"}"].concat());
        }
        // The percent stand-in decodes to the placeholder.
        let pct = percent(VALUE, false, b"");
        let got = r.replace_all(&pct).unwrap();
        let decoded: Vec<u8> = percent_encoding::percent_decode(&got).collect();
        assert_eq!(decoded, PH);
    }

    /// A value whose hex has no letter reads the same in both cases; it
    /// comes back in the case hex and JSON encoders write by default.
    #[test]
    fn a_caseless_spelling_reads_back_in_lower_case() {
        let value = b"0123456789PQRSTUVWXY";
        let ph = b"SLKP_abcdefghijklmno";
        assert_eq!(hex(value, false), hex(value, true));
        let r = replacer(value, ph);
        assert_eq!(r.replace_all(&hex(value, false)).unwrap(), hex(ph, false));
        let units = json_units(value, false);
        assert_eq!(units, json_units(value, true));
        assert_eq!(r.replace_all(&units).unwrap(), json_units(ph, false));
    }

    /// What common encoders leave unencoded varies; each spelling is
    /// scrubbed.
    #[test]
    fn percent_spellings_of_encoders() {
        let value = b"a+b/c=d_e~f!g*h";
        let ph = b"P1aceholderXYZ0k";
        let ph = &ph[..value.len()];
        let r = replacer(value, ph);
        for encoded in [
            &b"a%2Bb%2Fc%3Dd%5Fe%7Ef%21g%2Ah"[..],
            b"a%2bb%2fc%3dd%5fe%7ef%21g%2ah",
            b"a%2Bb%2Fc%3Dd_e~f%21g%2Ah",
            b"a%2Bb/c%3Dd_e~f%21g%2Ah",
            b"a%2Bb%2Fc%3Dd_e~f!g*h",
        ] {
            let got = r.replace_all(encoded).expect("found");
            let decoded: Vec<u8> = percent_encoding::percent_decode(&got).collect();
            assert!(
                !contains(&decoded, value),
                "{:?}",
                String::from_utf8_lossy(encoded)
            );
        }
    }

    #[test]
    fn json_escapes_of_encoders() {
        let v = "a/b<c>\"d\\\u{e9}\u{1f600}".as_bytes();
        let all = |e| json_escaped(v, e).map(|f| String::from_utf8(f).unwrap());
        let [plain, slash, html, _, ascii, ..] = JsonEscapes::ALL;
        assert_eq!(all(plain).unwrap(), "a/b<c>\\\"d\\\\\u{e9}\u{1f600}");
        assert_eq!(all(slash).unwrap(), "a\\/b<c>\\\"d\\\\\u{e9}\u{1f600}");
        assert_eq!(
            all(html).unwrap(),
            "a/b\\u003cc\\u003e\\\"d\\\\\u{e9}\u{1f600}"
        );
        assert_eq!(all(ascii).unwrap(), "a/b<c>\\\"d\\\\\\u00e9\\ud83d\\ude00");
        assert_eq!(json_escaped(b"plain-token", plain), None);
        assert_eq!(
            String::from_utf8(json_units("\u{e9}A".as_bytes(), true)).unwrap(),
            "\\u00E9\\u0041"
        );
    }

    /// An echoed `Basic user:value` (any user name's length) loses the
    /// value: only the bytes sharing a base64 group with the neighbours at
    /// each end may stay; the URL alphabet too.
    #[test]
    fn base64_covers_every_alignment_and_both_alphabets() {
        let r = replacer(VALUE, PH);
        for engine in [
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::URL_SAFE,
        ] {
            for user in ["", "x", "xy", "x-access-token"] {
                let echoed = engine.encode([user.as_bytes(), b":", VALUE].concat());
                let scrubbed = r.replace_all(echoed.as_bytes()).expect("found");
                let decoded = engine.decode(&scrubbed).unwrap();
                let middle = &VALUE[3..VALUE.len() - 3];
                assert!(!contains(&decoded, middle), "user {user:?}");
            }
        }
    }

    /// Short spellings would match by chance anywhere: only the raw value
    /// of a tiny secret is scrubbed.
    #[test]
    fn tiny_values_keep_only_the_raw_form() {
        let patterns: Vec<Vec<u8>> = scrub_pairs(b"ab", b"SLKP_abcdefghijklmnopqrs")
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        // Not the hex "6162": only the raw value and its JSON escape.
        assert_eq!(patterns, vec![b"ab".to_vec(), b"\\u0061\\u0062".to_vec()]);
        assert!(base64_forms(b"short", b"SLKP_").is_empty());
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any value a secret may hold (no NUL, CR or LF), long or short:
        /// every pair keeps its length, no replacement holds the value,
        /// and the raw value comes first.
        #[test]
        fn any_value_gives_safe_same_length_pairs(
            value in proptest::collection::vec(any::<u8>().prop_filter("a single line", |b| !b"\0\r\n".contains(b)), 1..48),
            long in any::<bool>(),
            ph in "[A-Za-z0-9]{48}",
        ) {
            let ph = if long && value.len() >= 16 {
                ph.as_bytes()[..value.len()].to_vec()
            } else {
                [b"SLKP_", &ph.as_bytes()[..19]].concat()
            };
            let pairs = scrub_pairs(&value, &ph);
            prop_assert_eq!(&pairs[0].0, &value);
            for (p, r) in &pairs {
                prop_assert_eq!(p.len(), r.len());
                prop_assert!(!contains(r, &value));
            }
        }
    }
}
