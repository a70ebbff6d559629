//! Protocol switches: only a WebSocket handshake that the upstream's 101
//! completes becomes a tunnel. `Upgrade: h2c` is stripped on the way up,
//! so the workload's next request on the connection meets the rules
//! instead of reaching the upstream through a tunnel (h2c smuggling); a
//! 101 that completes no WebSocket handshake is refused with 502; and a
//! sandbox holding secrets opens no WebSocket at all (its frames cannot be
//! scrubbed).
//!
//! The upstream here is `Switcher`, a plain-HTTP server in the test process
//! that answers 101 as it is told and records every byte it receives, so
//! each test checks exactly what reached it.

use super::*;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// RFC 6455 §1.3's example key and the answer that completes it.
const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const WS_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// When `Switcher` answers 101.
#[derive(Clone, Copy)]
enum Answer {
    /// To a request with `Upgrade: h2c` (an h2c server); 200 otherwise.
    H2cWhenAsked,
    /// To every request, with `Upgrade: h2c` (an upstream that switches
    /// whether or not it was asked).
    H2cAlways,
    /// To every request, as a WebSocket switch with this accept value.
    WebSocket(&'static str),
}

/// The bytes one connection delivered so far.
type Recorded = Arc<Mutex<Vec<u8>>>;

/// A plain-HTTP upstream on 127.0.0.1 that records what each connection
/// delivered. After its 101 it only records (the tunnel's far end).
struct Switcher {
    port: u16,
    conns: Arc<Mutex<Vec<Recorded>>>,
}

impl Switcher {
    fn start(answer: Answer) -> Switcher {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let conns: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let all = Arc::clone(&conns);
        thread::spawn(move || {
            for s in l.incoming().flatten() {
                let log = Arc::new(Mutex::new(Vec::new()));
                all.lock().unwrap().push(Arc::clone(&log));
                thread::spawn(move || serve_switcher(s, answer, log));
            }
        });
        Switcher { port, conns }
    }

    /// The bytes each connection delivered, in accept order (after a
    /// moment, so that what is in flight is counted).
    fn received(&self) -> Vec<String> {
        thread::sleep(Duration::from_millis(300));
        self.conns
            .lock()
            .unwrap()
            .iter()
            .map(|c| String::from_utf8_lossy(&c.lock().unwrap()).into_owned())
            .collect()
    }
}

fn serve_switcher(mut s: TcpStream, answer: Answer, log: Recorded) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
    let mut pending = Vec::new();
    let mut buf = [0u8; 16384];
    let mut switched = false;
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        log.lock().unwrap().extend_from_slice(&buf[..n]);
        if switched {
            continue;
        }
        pending.extend_from_slice(&buf[..n]);
        while let Some(end) = find(&pending, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).to_ascii_lowercase();
            pending.drain(..end + 4);
            let asked_h2c = head.lines().any(|l| l == "upgrade: h2c");
            let reply = match answer {
                Answer::H2cWhenAsked if !asked_h2c => {
                    let target = head.split(' ').nth(1).unwrap_or("").to_string();
                    let body = format!("ok {target}\n");
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                }
                Answer::H2cWhenAsked | Answer::H2cAlways => {
                    "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
                        .to_string()
                }
                Answer::WebSocket(accept) => format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                ),
            };
            if s.write_all(reply.as_bytes()).is_err() {
                return;
            }
            if reply.starts_with("HTTP/1.1 101") {
                switched = true;
                break;
            }
        }
    }
    let _ = s.shutdown(Shutdown::Both);
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The workload's bytes: a first request (`first`), then, 0.2 s later on
/// the same connection, `DELETE /admin`, which no rule allows.
fn smuggle(ctx: &Ctx, sw: &Switcher, first: &str, extra: &[&str]) -> (Out, TempDir) {
    let d = TempDir::new("upgrade");
    let a = d.file("a", first);
    let b = d.file(
        "b",
        &format!(
            "DELETE /admin HTTP/1.1\r\nHost: api.test:{}\r\nContent-Length: 0\r\n\r\n",
            sw.port
        ),
    );
    let mut flags = sv(&[
        "--add-host",
        "api.test:127.0.0.1",
        "--http-port",
        &sw.port.to_string(),
        "--http-allow",
        "GET api.test/readonly",
        "-r",
        &d.s(),
        "-r",
        &tls_files().dir,
    ]);
    flags.extend(sv(extra));
    let cmd = pyclient(&["raw", "api.test", &sw.port.to_string(), &a, &b]);
    (run(ctx, &flags, &cmd), d)
}

/// `GET /readonly` offering h2c, as curl `--http2` sends it on http://.
fn h2c_offer(port: u16) -> String {
    format!(
        "GET /readonly HTTP/1.1\r\nHost: api.test:{port}\r\nConnection: Upgrade, HTTP2-Settings\r\n\
         Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
    )
}

/// A WebSocket handshake on `/readonly` with the RFC's key.
fn ws_offer(port: u16) -> String {
    format!(
        "GET /readonly HTTP/1.1\r\nHost: api.test:{port}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {WS_KEY}\r\n\r\n"
    )
}

both!(
    h2c_upgrade_is_stripped_so_the_next_request_meets_the_rules,
    |ctx| {
        let sw = Switcher::start(Answer::H2cWhenAsked);
        let (out, _d) = smuggle(&ctx, &sw, &h2c_offer(sw.port), &[]);
        let c = format!("{}\n--- upstream ---\n{:?}", out.dump(), sw.received());
        out.expect_code(0);
        let rs = raw_responses(&out);
        assert_eq!(rs.len(), 2, "{c}");
        // The first request went up without its offer, and was answered as
        // the plain request it also is.
        assert_eq!(
            (rs[0].code, rs[0].body.as_str()),
            (200, "ok /readonly\n"),
            "{c}"
        );
        // The second one was read as a request, not tunnelled: the rules
        // refused it.
        assert_raw_sandlock_reply(&rs[1], 403, &out, &c);
        assert!(rs[1].body.contains("no --http-allow rule matches"), "{c}");
        // Exactly these bytes reached the upstream: no Upgrade, no
        // HTTP2-Settings, no DELETE.
        assert_eq!(
            sw.received(),
            vec![format!(
                "GET /readonly HTTP/1.1\r\nhost: api.test:{}\r\n\r\n",
                sw.port
            )],
            "{c}"
        );
    }
);

both!(
    a_101_that_is_no_websocket_handshake_is_not_tunnelled,
    |ctx| {
        // An upstream that switches although the offer was stripped (or never
        // made), and one whose WebSocket switch does not answer the key.
        for (answer, first, why) in [
        (
            Answer::H2cAlways,
            h2c_offer(0),
            "upstream switched protocols with a 101 to a request that offered no WebSocket",
        ),
        (
            Answer::WebSocket("s3pPLMBiTxaQ9kYGzzhZRbK+xOp="),
            ws_offer(0),
            "upstream switched protocols with a 101 whose Sec-WebSocket-Accept does not answer \
             the key",
        ),
    ] {
        let sw = Switcher::start(answer);
        let first = first.replace("api.test:0", &format!("api.test:{}", sw.port));
        let (out, _d) = smuggle(&ctx, &sw, &first, &[]);
        let c = format!("{}\n--- upstream ---\n{:?}", out.dump(), sw.received());
        out.expect_code(0);
        let rs = raw_responses(&out);
        assert_eq!(rs.len(), 2, "{c}");
        assert_raw_sandlock_reply(&rs[0], 502, &out, &c);
        assert!(rs[0].body.contains(why), "{c}");
        assert_raw_sandlock_reply(&rs[1], 403, &out, &c);
        let got = sw.received();
        assert_eq!(got.len(), 1, "{c}");
        assert!(got[0].starts_with("GET /readonly HTTP/1.1\r\n"), "{c}");
        assert!(!got[0].contains("DELETE"), "{c}");
    }

        // Twin: the same bytes after a 101 that completes the handshake go
        // through the tunnel, unread, as WebSocket data would.
        let sw = Switcher::start(Answer::WebSocket(WS_ACCEPT));
        let (out, _d) = smuggle(&ctx, &sw, &ws_offer(sw.port), &[]);
        let c = format!("{}\n--- upstream ---\n{:?}", out.dump(), sw.received());
        out.expect_code(0);
        let rs = raw_responses(&out);
        assert_eq!(rs.len(), 1, "{c}");
        assert_eq!(rs[0].code, 101, "{c}");
        assert_eq!(rs[0].header("sec-websocket-accept"), Some(WS_ACCEPT), "{c}");
        let got = sw.received();
        assert_eq!(got.len(), 1, "{c}");
        assert!(
            got[0].ends_with(&format!(
                "\r\n\r\nDELETE /admin HTTP/1.1\r\nHost: api.test:{}\r\nContent-Length: 0\r\n\r\n",
                sw.port
            )),
            "{c}"
        );
    }
);

both!(no_websocket_in_a_sandbox_holding_secrets, |ctx| {
    let sw = Switcher::start(Answer::WebSocket(WS_ACCEPT));
    let d = TempDir::new("upgrade-secret");
    let secret = format!(
        "TOKEN=file:{}@api.test",
        d.file("token", "a-value-of-a-secret")
    );
    let (out, _d) = smuggle(&ctx, &sw, &ws_offer(sw.port), &["--secret", &secret]);
    let c = format!("{}\n--- upstream ---\n{:?}", out.dump(), sw.received());
    out.expect_code(0);
    let rs = raw_responses(&out);
    assert!(!rs.is_empty(), "{c}");
    assert_raw_sandlock_reply(&rs[0], 403, &out, &c);
    assert!(
        rs[0]
            .body
            .contains("a WebSocket tunnel cannot be scrubbed of secret values"),
        "{c}"
    );
    assert!(sw.received().is_empty(), "{c}");
});
