//! The interceptor against hostile queries: unit tests of the classic
//! malformed packets and property tests over arbitrary bytes, for one
//! query (`Responder::answer`) and for the TCP framing (`serve_conn`).
//!
//! What must hold for any input: no panic, an end (no loop), and either a
//! well-formed response under the query's ID or nothing at all, and
//! nothing exactly when the packet is under 12 bytes or is itself a
//! response. Answers stay within their transport's limit.

use std::io::{self, Cursor, Read, Write};
use std::sync::Arc;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use proptest::prelude::*;

use super::responder::{Responder, MAX_TCP_ANSWER};
use super::serve::serve_conn;
use crate::audit::Reporter;
use crate::network::Pinned;
use crate::policy::{AddHost, HostMatch, NetPolicy};

/// A responder with a pinned name (`pin.test`, `count` IPv6 addresses plus
/// 10.0.0.1) and a covered suffix (`dyn.test`) whose upstream refuses.
fn responder(count: u16) -> Responder {
    let mut net = NetPolicy::default();
    net.hosts.push(AddHost::parse("pin.test:10.0.0.1").unwrap());
    for i in 0..count {
        let host = format!("pin.test:[fd00::{:x}:{:x}]", i >> 8, i & 0xff);
        net.hosts.push(AddHost::parse(&host).unwrap());
    }
    let pinned = Pinned::resolve(&net, &[]).unwrap();
    let reporter = Arc::new(Reporter::new(true, None).unwrap());
    let names = vec![HostMatch::Suffix("dyn.test".into())];
    Responder::new(
        names,
        pinned,
        vec!["127.0.0.1:9".parse().unwrap()],
        reporter,
    )
}

/// A query for `name` of type `ty` (1: A, 28: AAAA) with `id`, built by
/// hand so tests can break it.
fn query(id: u16, name: &str, ty: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend([0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend(label.as_bytes());
    }
    q.push(0);
    q.extend(ty.to_be_bytes());
    q.extend([0, 1]);
    q
}

/// Does the responder rightly stay silent for `q`: too short for an ID,
/// or a response rather than a query?
fn silent_for(q: &[u8]) -> bool {
    q.len() < 12 || Message::from_vec(q).is_ok_and(|m| m.message_type() == MessageType::Response)
}

/// Checks one answer against the rules; returns it parsed.
fn check_answer(q: &[u8], a: Option<&[u8]>, max: usize) -> Result<Option<Message>, String> {
    let Some(a) = a else {
        return match silent_for(q) {
            true => Ok(None),
            false => Err("no answer to a query".into()),
        };
    };
    if silent_for(q) {
        return Err("an answer where none was due".into());
    }
    if a.len() > max {
        return Err(format!("answer of {} bytes over the limit {max}", a.len()));
    }
    let m = Message::from_vec(a).map_err(|e| format!("malformed answer: {e}"))?;
    if m.id() != u16::from_be_bytes([q[0], q[1]]) || m.message_type() != MessageType::Response {
        return Err(format!(
            "answer {m:?} is not a response under the query's ID"
        ));
    }
    Ok(Some(m))
}

fn code(r: &Responder, q: &[u8]) -> ResponseCode {
    let a = r.answer(q, true);
    check_answer(q, a.as_deref(), 512)
        .unwrap()
        .expect("an answer")
        .response_code()
}

#[test]
fn truncated_headers_get_nothing_or_formerr() {
    let r = responder(0);
    let q = query(0x1234, "pin.test", 1);
    for len in 0..12 {
        assert!(r.answer(&q[..len], true).is_none(), "{len}");
    }
    for len in 12..q.len() {
        assert_eq!(code(&r, &q[..len]), ResponseCode::FormErr, "{len}");
    }
    assert_eq!(code(&r, &q), ResponseCode::NoError);
}

#[test]
fn question_counts_that_lie_get_formerr() {
    let r = responder(0);
    for count in [0u16, 2, 0xffff] {
        let mut q = query(7, "pin.test", 1);
        q[4..6].copy_from_slice(&count.to_be_bytes());
        assert_eq!(code(&r, &q), ResponseCode::FormErr, "qdcount {count}");
    }
    // answer, authority and additional counts with nothing behind them
    let mut q = query(7, "pin.test", 1);
    q[6..12].copy_from_slice(&[0xff; 6]);
    assert_eq!(code(&r, &q), ResponseCode::FormErr);
}

#[test]
fn compression_pointer_loops_and_forward_pointers_get_formerr() {
    let r = responder(0);
    let header = |id: u16| {
        let mut q = id.to_be_bytes().to_vec();
        q.extend([0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        q
    };
    // the name is a pointer to itself (offset 12)
    let mut own = header(1);
    own.extend([0xc0, 12, 0, 1, 0, 1]);
    // a label, then a pointer back to that label: a two-step loop
    let mut two = header(2);
    two.extend([1, b'a', 0xc0, 12, 0, 1, 0, 1]);
    // a pointer past the end of the packet
    let mut forward = header(3);
    forward.extend([0xc0, 200, 0, 1, 0, 1]);
    for q in [own, two, forward] {
        assert_eq!(code(&r, &q), ResponseCode::FormErr, "{q:?}");
    }
}

#[test]
fn names_over_255_bytes_get_formerr() {
    let r = responder(0);
    let label = "a".repeat(63);
    let long = [label.as_str(); 5].join(".");
    assert_eq!(code(&r, &query(9, &long, 1)), ResponseCode::FormErr);
    // a label length over 63 (the top bits 01 and 10 are not labels)
    let mut q = query(9, "pin.test", 1);
    q[12] = 0x40 | 3;
    assert_eq!(code(&r, &q), ResponseCode::FormErr);
}

#[test]
fn answers_fit_their_transport() {
    // 5000 pinned AAAA records: about 140 KB, more than a TCP length
    // prefix can say
    let r = responder(5000);
    let q = query(11, "pin.test", 28);
    // UDP: the header and the question, TC set (the client retries on TCP)
    let a = r.answer(&q, true);
    let m = check_answer(&q, a.as_deref(), 512).unwrap().unwrap();
    assert!(m.truncated() && m.answers().is_empty(), "{m:?}");
    // TCP: as many records as 65535 bytes hold, TC set
    let a = r.answer(&q, false);
    let m = check_answer(&q, a.as_deref(), MAX_TCP_ANSWER)
        .unwrap()
        .unwrap();
    assert!(
        m.truncated() && m.answers().len() > 2000,
        "{}",
        m.answers().len()
    );
    // twin: one address fits, untruncated
    let a = r.answer(&query(12, "pin.test", 1), false).unwrap();
    let m = Message::from_vec(&a).unwrap();
    assert!(!m.truncated() && m.answers().len() == 1);
}

/// A connection whose client sent `input`; `output` collects the answers.
struct Conn {
    input: Cursor<Vec<u8>>,
    output: Vec<u8>,
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Serves `input` as one TCP connection; returns the answers' frames.
fn serve(r: &Responder, input: Vec<u8>) -> Vec<Vec<u8>> {
    let mut conn = Conn {
        input: Cursor::new(input),
        output: Vec::new(),
    };
    let _ = serve_conn(&mut conn, r);
    let mut frames = Vec::new();
    let mut rest = conn.output.as_slice();
    while !rest.is_empty() {
        let (len, tail) = rest.split_at(2);
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        assert!(tail.len() >= len, "a frame longer than what was written");
        frames.push(tail[..len].to_vec());
        rest = &tail[len..];
    }
    frames
}

fn framed(queries: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for q in queries {
        out.extend(u16::try_from(q.len()).unwrap().to_be_bytes());
        out.extend(q);
    }
    out
}

#[test]
fn tcp_framing_answers_in_order_and_stops_at_a_short_stream() {
    let r = responder(0);
    let queries = vec![query(1, "pin.test", 1), query(2, "evil.test", 1)];
    let frames = serve(&r, framed(&queries));
    let ids: Vec<u16> = frames
        .iter()
        .map(|f| Message::from_vec(f).unwrap().id())
        .collect();
    assert_eq!(ids, [1, 2]);
    // a length prefix larger than the data that follows: nothing answered
    let mut short = framed(&[query(3, "pin.test", 1)]);
    short[1] += 10;
    assert!(serve(&r, short).is_empty());
    // half a prefix, an empty stream, a zero-length query
    for input in [vec![0u8], vec![], vec![0, 0]] {
        assert!(serve(&r, input).is_empty());
    }
}

/// A valid query, or its bytes with some changed and the tail cut.
fn mutated_query() -> impl Strategy<Value = Vec<u8>> {
    let base = prop_oneof![
        Just(query(0x0101, "pin.test", 1)),
        Just(query(0x0202, "pin.test", 28)),
        Just(query(0x0303, "x.dyn.test", 1)),
        Just(query(0x0404, "evil.test", 16)),
    ];
    (
        base,
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(mut q, edits, cut)| {
            for (at, byte) in edits {
                let i = at.index(q.len());
                q[i] = byte;
            }
            q.truncate(cut.index(q.len() + 1).max(1));
            q
        })
}

/// A header with any flags and counts, then any bytes.
fn header_then_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<[u8; 12]>(),
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(h, tail)| [h.as_slice(), &tail].concat())
}

fn any_query() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..600),
        header_then_bytes(),
        mutated_query(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bytes_get_a_response_under_their_id_or_nothing(q in any_query(), udp: bool) {
        let r = responder(0);
        let max = if udp { 4096 } else { MAX_TCP_ANSWER };
        let a = r.answer(&q, udp);
        check_answer(&q, a.as_deref(), max).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn tcp_streams_of_any_queries_are_answered_in_order(
        queries in prop::collection::vec(any_query(), 0..6),
        tail in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        let r = responder(0);
        let mut input = framed(&queries);
        input.extend(&tail);
        let frames = serve(&r, input);
        // answers for a prefix of the queries: up to the first that gets
        // none (the connection ends there) or all of them
        let expected = queries.iter().position(|q| silent_for(q)).unwrap_or(queries.len());
        prop_assert_eq!(frames.len(), expected);
        for (q, f) in queries.iter().zip(&frames) {
            check_answer(q, Some(f), MAX_TCP_ANSWER).map_err(TestCaseError::fail)?;
        }
    }

    #[test]
    fn any_tcp_byte_stream_ends_with_well_framed_answers(
        input in prop::collection::vec(any::<u8>(), 0..1200),
    ) {
        let r = responder(0);
        for f in serve(&r, input) {
            let m = Message::from_vec(&f).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(m.message_type(), MessageType::Response);
        }
    }
}
