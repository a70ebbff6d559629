//! One DNS query in, one answer out: names the policy covers are resolved
//! through the host's resolvers and their addresses learned as pins;
//! `--add-host` and start-up pins are answered from memory; every other
//! name gets NXDOMAIN without leaving the machine.
//!
//! Only the question is ever sent upstream, in a query built here: nothing
//! else the workload put in its packet (extra records, EDNS options, its
//! ID) leaves the supervisor.
//!
//! Every query is hostile bytes. It is decoded by hickory-proto, which
//! bounds names (255 bytes, compression pointers only backwards, so no
//! loop) and counts (records are read until the data ends, not allocated
//! from the header's counts); what comes out is either a response under
//! the query's ID or nothing (fewer than 12 bytes, or a response rather
//! than a query). Must never: answer longer than its transport carries
//! (a UDP client's limit, 65535 bytes over TCP), or panic on any input;
//! the property tests in `dns/hostile.rs` hold it to both.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{DNSClass, RData, Record, RecordType};

use crate::audit::{Event, Reporter, Verdict};
use crate::network::Pinned;
use crate::policy::HostMatch;

/// Bound on one upstream exchange.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);
/// Cached answers kept at most; the cache is emptied when full.
const CACHE_ENTRIES: usize = 4096;
/// TTL bounds for cached answers, and the TTL of answers without records.
const MAX_TTL: u32 = 3600;
const NEGATIVE_TTL: u32 = 30;
/// TTL of answers served from the sandbox's own pins.
const PINNED_TTL: u32 = 60;
/// The longest answer sent over UDP whatever the client's EDNS says: the
/// size the interceptor reads (an IPv4 datagram cannot carry 65535).
const MAX_UDP_ANSWER: usize = 4096;
/// The longest answer over TCP: what its 2-byte length prefix can say.
pub(super) const MAX_TCP_ANSWER: usize = u16::MAX as usize;

/// What a query may get.
pub(super) struct Responder {
    /// Names resolved upstream.
    names: Vec<HostMatch>,
    pinned: Pinned,
    upstream: Vec<SocketAddr>,
    cache: Mutex<HashMap<Key, Cached>>,
    reporter: Arc<Reporter>,
}

#[derive(Hash, PartialEq, Eq)]
struct Key {
    name: String,
    ty: u16,
    class: u16,
}

struct Cached {
    /// The upstream answer, its ID to be replaced.
    bytes: Vec<u8>,
    expires: Instant,
}

impl Responder {
    pub(super) fn new(
        names: Vec<HostMatch>,
        pinned: Pinned,
        upstream: Vec<SocketAddr>,
        reporter: Arc<Reporter>,
    ) -> Responder {
        Responder {
            names,
            pinned,
            upstream,
            cache: Mutex::new(HashMap::new()),
            reporter,
        }
    }

    /// The answer to `query`: at most the client's UDP limit over UDP
    /// (longer answers are sent truncated so it retries over TCP), at most
    /// [`MAX_TCP_ANSWER`] over TCP. `None`: not a query worth answering
    /// (too short to carry an ID, or a response).
    pub(super) fn answer(&self, query: &[u8], udp: bool) -> Option<Vec<u8>> {
        let msg = match Message::from_vec(query) {
            Ok(m) => m,
            Err(_) if query.len() >= 12 => {
                let id = u16::from_be_bytes([query[0], query[1]]);
                return error(id, OpCode::Query, ResponseCode::FormErr, &[]);
            }
            Err(_) => return None,
        };
        if msg.message_type() != MessageType::Query {
            return None;
        }
        if msg.op_code() != OpCode::Query {
            return error(msg.id(), msg.op_code(), ResponseCode::NotImp, msg.queries());
        }
        let [q] = msg.queries() else {
            return error(
                msg.id(),
                OpCode::Query,
                ResponseCode::FormErr,
                msg.queries(),
            );
        };
        let name = q.name().to_ascii().to_ascii_lowercase();
        let name = name.strip_suffix('.').unwrap_or(&name).to_string();
        if let Some(l) = self.reporter.learner() {
            l.name(&name);
        }
        let answered = if let Some(ips) = self.pinned.lookup(&name) {
            pinned_answer(&msg, q, ips)
        } else if self.names.iter().any(|p| p.matches(&name)) {
            self.resolve(&msg, q, &name)
        } else {
            self.reporter.record_once(&Event {
                pid: 0,
                syscall: "dns",
                target: &format!("{name} ({})", q.query_type()),
                verdict: Verdict::Deny,
                rule: "no --net-allow, --http-allow, --secret or --add-host names it",
            });
            error(
                msg.id(),
                OpCode::Query,
                ResponseCode::NXDomain,
                msg.queries(),
            )
        };
        // An answer that would not encode (built around the workload's
        // question) is a failure, never silence.
        let out =
            answered.or_else(|| error(msg.id(), OpCode::Query, ResponseCode::ServFail, &[]))?;
        let max = match (udp, msg.extensions()) {
            (false, _) => MAX_TCP_ANSWER,
            (true, Some(e)) => usize::from(e.max_payload()).clamp(512, MAX_UDP_ANSWER),
            (true, None) => 512,
        };
        if out.len() <= max {
            return Some(out);
        }
        // Too long: the header and the question with TC set (the client
        // retries over TCP), or a failure when even that does not fit.
        Message::from_vec(&out)
            .ok()
            .and_then(|full| full.truncate().to_vec().ok())
            .filter(|t| t.len() <= max)
            .or_else(|| error(msg.id(), OpCode::Query, ResponseCode::ServFail, &[]))
    }

    /// Asks upstream (or the cache), learns the addresses, and returns the
    /// upstream answer under the client's ID.
    fn resolve(&self, msg: &Message, q: &Query, name: &str) -> Option<Vec<u8>> {
        let key = Key {
            name: name.to_string(),
            ty: u16::from(q.query_type()),
            class: u16::from(q.query_class()),
        };
        let now = Instant::now();
        let cached = {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache
                .get(&key)
                .filter(|c| c.expires > now)
                .map(|c| c.bytes.clone())
        };
        let mut bytes = match cached {
            Some(b) => b,
            None => match self.ask_upstream(q) {
                Some((bytes, ttl)) => {
                    let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                    if cache.len() >= CACHE_ENTRIES {
                        cache.clear();
                    }
                    let expires = now + Duration::from_secs(u64::from(ttl));
                    cache.insert(
                        key,
                        Cached {
                            bytes: bytes.clone(),
                            expires,
                        },
                    );
                    bytes
                }
                None => {
                    return error(
                        msg.id(),
                        OpCode::Query,
                        ResponseCode::ServFail,
                        msg.queries(),
                    )
                }
            },
        };
        bytes[..2].copy_from_slice(&msg.id().to_be_bytes());
        Some(bytes)
    }

    /// One question to the upstream resolvers in turn: UDP, then TCP when
    /// the answer was truncated. Returns the answer and its cache TTL.
    fn ask_upstream(&self, q: &Query) -> Option<(Vec<u8>, u32)> {
        let (id, wire) = question(q)?;
        for server in &self.upstream {
            let Some(bytes) =
                exchange_udp(*server, &wire, id).and_then(|b| match Message::from_vec(&b) {
                    Ok(m) if m.truncated() => exchange_tcp(*server, &wire, id),
                    Ok(_) => Some(b),
                    Err(_) => None,
                })
            else {
                continue;
            };
            let Ok(answer) = Message::from_vec(&bytes) else {
                continue;
            };
            if answer.queries() != std::slice::from_ref(q) {
                continue;
            }
            return Some((bytes, self.learn(q, &answer)));
        }
        None
    }

    /// Pins the addresses an answer gives for `q`'s name; returns the
    /// answer's TTL for the cache.
    fn learn(&self, q: &Query, answer: &Message) -> u32 {
        let name = q.name().to_ascii().to_ascii_lowercase();
        let name = name.strip_suffix('.').unwrap_or(&name);
        let mut ttl = None::<u32>;
        for r in answer.answers() {
            ttl = Some(ttl.map_or(r.ttl(), |t| t.min(r.ttl())));
            let ip = match r.data() {
                RData::A(a) => IpAddr::V4(a.0),
                RData::AAAA(a) => IpAddr::V6(a.0),
                _ => continue,
            };
            self.pinned.learned().learn(name, ip);
        }
        ttl.unwrap_or(NEGATIVE_TTL).clamp(1, MAX_TTL)
    }
}

/// An answer from the sandbox's own pins: their addresses of the asked
/// family; any other type gets an empty answer.
fn pinned_answer(msg: &Message, q: &Query, ips: &[IpAddr]) -> Option<Vec<u8>> {
    let mut out = response(
        msg.id(),
        OpCode::Query,
        ResponseCode::NoError,
        msg.queries(),
    );
    out.set_recursion_desired(msg.recursion_desired())
        .set_authoritative(true);
    if q.query_class() == DNSClass::IN {
        for ip in ips {
            let data = match (ip, q.query_type()) {
                (IpAddr::V4(v4), RecordType::A) => RData::A(A(*v4)),
                (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(AAAA(*v6)),
                _ => continue,
            };
            out.add_answer(Record::from_rdata(q.name().clone(), PINNED_TTL, data));
        }
    }
    out.to_vec().ok()
}

fn response(id: u16, op: OpCode, code: ResponseCode, queries: &[Query]) -> Message {
    let mut m = Message::new();
    m.set_id(id)
        .set_message_type(MessageType::Response)
        .set_op_code(op)
        .set_recursion_available(true)
        .set_response_code(code)
        .add_queries(queries.iter().cloned());
    m
}

/// An answer without records. Should the question not encode again (it
/// came from the workload), the header alone goes back: the client still
/// gets its ID and the code.
fn error(id: u16, op: OpCode, code: ResponseCode, queries: &[Query]) -> Option<Vec<u8>> {
    response(id, op, code, queries)
        .to_vec()
        .or_else(|_| response(id, op, code, &[]).to_vec())
        .ok()
}

/// A recursive query for `q` under a fresh random ID, on the wire.
pub(super) fn question(q: &Query) -> Option<(u16, Vec<u8>)> {
    let id = random_id();
    let mut ask = Message::new();
    ask.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(q.clone());
    Some((id, ask.to_vec().ok()?))
}

fn random_id() -> u16 {
    let mut b = [0u8; 2];
    // A failing RNG leaves a fixed ID: the exchange still checks the
    // question and the source.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u16::from_ne_bytes(b)
}

pub(super) fn exchange_udp(server: SocketAddr, wire: &[u8], id: u16) -> Option<Vec<u8>> {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => "0.0.0.0:0".parse().expect("literal"),
        SocketAddr::V6(_) => "[::]:0".parse().expect("literal"),
    };
    let sock = UdpSocket::bind(local).ok()?;
    sock.connect(server).ok()?;
    sock.set_read_timeout(Some(UPSTREAM_TIMEOUT)).ok()?;
    sock.send(wire).ok()?;
    let deadline = Instant::now() + UPSTREAM_TIMEOUT;
    let mut buf = vec![0u8; 4096];
    while Instant::now() < deadline {
        let n = sock.recv(&mut buf).ok()?;
        if n >= 12 && u16::from_be_bytes([buf[0], buf[1]]) == id {
            buf.truncate(n);
            return Some(buf);
        }
    }
    None
}

pub(super) fn exchange_tcp(server: SocketAddr, wire: &[u8], id: u16) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&server, UPSTREAM_TIMEOUT).ok()?;
    s.set_read_timeout(Some(UPSTREAM_TIMEOUT)).ok()?;
    s.set_write_timeout(Some(UPSTREAM_TIMEOUT)).ok()?;
    let mut framed = u16::try_from(wire.len()).ok()?.to_be_bytes().to_vec();
    framed.extend_from_slice(wire);
    s.write_all(&framed).ok()?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf).ok()?;
    (buf.len() >= 12 && u16::from_be_bytes([buf[0], buf[1]]) == id).then_some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::Name;
    use std::str::FromStr;

    /// A resolver on loopback answering every A question with `count`
    /// addresses 10.0.0.1..; returns its address and a question counter.
    fn fake_upstream(count: u8) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = Arc::clone(&asked);
        std::thread::spawn(move || loop {
            let mut buf = [0u8; 4096];
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                return;
            };
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let q = Message::from_vec(&buf[..n]).unwrap();
            let mut a = response(q.id(), OpCode::Query, ResponseCode::NoError, q.queries());
            for i in 0..count {
                let ip = std::net::Ipv4Addr::new(10, 0, 0, i + 1);
                a.add_answer(Record::from_rdata(
                    q.queries()[0].name().clone(),
                    120,
                    RData::A(A(ip)),
                ));
            }
            let _ = sock.send_to(&a.to_vec().unwrap(), from);
        });
        (addr, asked)
    }

    fn query(name: &str, id: u16) -> Vec<u8> {
        let mut m = Message::new();
        m.set_id(id)
            .set_recursion_desired(true)
            .add_query(Query::query(Name::from_str(name).unwrap(), RecordType::A));
        m.to_vec().unwrap()
    }

    fn responder(upstream: SocketAddr, pinned: Pinned) -> Responder {
        let reporter = Arc::new(Reporter::new(true, None).unwrap());
        let names = vec![HostMatch::Suffix("dyn.test".into())];
        Responder::new(names, pinned, vec![upstream], reporter)
    }

    #[test]
    fn covered_names_go_upstream_once_and_are_learned() {
        let (up, asked) = fake_upstream(1);
        let pinned = Pinned::default();
        let r = responder(up, pinned.clone());
        for id in [7, 8] {
            let a = Message::from_vec(&r.answer(&query("A.Dyn.Test.", id), true).unwrap()).unwrap();
            assert_eq!((a.id(), a.response_code()), (id, ResponseCode::NoError));
            assert_eq!(a.answers().len(), 1);
        }
        assert_eq!(
            asked.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "the second came from the cache"
        );
        assert!(pinned.known_as("10.0.0.1".parse().unwrap(), |n| n == "a.dyn.test"));
    }

    #[test]
    fn other_names_get_nxdomain_without_asking() {
        let (up, asked) = fake_upstream(1);
        let r = responder(up, Pinned::default());
        let a = Message::from_vec(&r.answer(&query("evil.test.", 9), true).unwrap()).unwrap();
        assert_eq!((a.id(), a.response_code()), (9, ResponseCode::NXDomain));
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[test]
    fn long_answers_are_truncated_for_udp_only() {
        let (up, _) = fake_upstream(40);
        let r = responder(up, Pinned::default());
        let udp = r.answer(&query("big.dyn.test.", 1), true).unwrap();
        let a = Message::from_vec(&udp).unwrap();
        assert!(udp.len() <= 512 && a.truncated() && a.answers().is_empty());
        let tcp = r.answer(&query("big.dyn.test.", 2), false).unwrap();
        let a = Message::from_vec(&tcp).unwrap();
        assert!(!a.truncated() && a.answers().len() == 40, "{}", tcp.len());
    }

    #[test]
    fn garbage_is_refused_or_dropped() {
        let r = responder("127.0.0.1:9".parse().unwrap(), Pinned::default());
        assert!(r.answer(b"\x01\x02short", true).is_none());
        let mut bad = query("a.dyn.test.", 5);
        bad.truncate(bad.len() - 3);
        let a = Message::from_vec(&r.answer(&bad, true).unwrap()).unwrap();
        assert_eq!((a.id(), a.response_code()), (5, ResponseCode::FormErr));
    }
}
