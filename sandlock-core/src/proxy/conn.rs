//! One redirected connection from accept to close: match it to its
//! original destination, peek its first byte, and send it down the TLS
//! (terminate or bypass) or plaintext path.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::server::Acceptor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::StartHandshake;

use super::serve::{serve, Side};
use super::{Original, Shared};
use crate::audit::{Event, Verdict};
use crate::ca::LeafName;
use crate::network::Pinned;
use crate::policy::HostMatch;

/// A client must show its first byte, and finish its TLS handshake, within
/// this (it is a local process: a handshake takes milliseconds).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A ClientHello larger than this is not one.
const MAX_HELLO: usize = 64 * 1024;
/// The TLS record type of a handshake message.
const TLS_HANDSHAKE: u8 = 0x16;

/// Accepts until the runtime shuts down.
pub(super) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            // EMFILE and friends: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        // Only connections the supervisor redirected have an entry.
        let Some(orig) = shared.redirects.take(peer) else {
            continue;
        };
        let Ok(permit) = Arc::clone(&shared.slots).try_acquire_owned() else {
            report(&shared, &orig, "too many intercepted connections at once");
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            handle(shared, orig, stream).await;
            drop(permit);
        });
    }
}

fn report(shared: &Shared, orig: &Original, why: &str) {
    shared.reporter.record(&Event {
        pid: orig.pid,
        syscall: "proxy",
        target: &orig.dest.to_string(),
        verdict: Verdict::Deny,
        rule: why,
    });
}

async fn handle(shared: Arc<Shared>, orig: Original, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut first = [0u8; 1];
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(1)) => {}
        // Closed, failed or silent: nothing to serve.
        _ => return,
    }
    if first[0] != TLS_HANDSHAKE {
        return serve(shared, orig, Side::Plain, stream, false).await;
    }
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls(&shared, orig, stream)).await {
        Err(_) => report(&shared, &orig, "TLS handshake not completed in time"),
        Ok(Tls::Done) => {}
        Ok(Tls::Splice(down, hello)) => splice(&shared, orig, down, hello).await,
        Ok(Tls::Serve(stream, sni)) => {
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            serve(shared, orig, Side::Tls { sni }, stream, h2).await;
        }
    }
}

/// Where the TLS handshake led.
enum Tls {
    /// Nothing more to do (the reason was reported).
    Done,
    /// A bypassed host: the stream and the ClientHello bytes.
    Splice(TcpStream, Vec<u8>),
    /// Terminated: the decrypted stream and the SNI.
    Serve(
        Box<tokio_rustls::server::TlsStream<TcpStream>>,
        Option<String>,
    ),
}

/// Reads the ClientHello while keeping its bytes, so a bypassed host gets
/// exactly what the client sent.
async fn read_hello(
    stream: &mut TcpStream,
) -> Result<(rustls::server::Accepted, Vec<u8>), &'static str> {
    let mut acceptor = Acceptor::default();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.map_err(|_| "read failed")?;
        if n == 0 {
            return Err("closed before the ClientHello ended");
        }
        raw.extend_from_slice(&buf[..n]);
        if raw.len() > MAX_HELLO {
            return Err("ClientHello too large");
        }
        let mut cursor = &buf[..n];
        while !cursor.is_empty() {
            acceptor
                .read_tls(&mut cursor)
                .map_err(|_| "not a TLS ClientHello")?;
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => return Ok((accepted, raw)),
            Ok(None) => continue,
            Err(_) => return Err("not a valid TLS ClientHello"),
        }
    }
}

async fn tls(shared: &Shared, orig: Original, mut stream: TcpStream) -> Tls {
    let (accepted, raw) = match read_hello(&mut stream).await {
        Ok(x) => x,
        Err(why) => {
            report(shared, &orig, why);
            return Tls::Done;
        }
    };
    let sni = accepted
        .client_hello()
        .server_name()
        .map(|s| s.trim_end_matches('.').to_ascii_lowercase());
    if let Some(name) = &sni {
        match bypass(&shared.bypass, &shared.pinned, name, orig.dest.ip()) {
            Bypass::Splice => return Tls::Splice(stream, raw),
            Bypass::Elsewhere => warn(
                shared,
                &orig,
                &format!(
                    "--http-bypass does not apply: SNI {name} on a connection to {}, an address \
                     never pinned or resolved for that name; intercepted",
                    orig.dest.ip()
                ),
            ),
            Bypass::No => {}
        }
    }
    let leaf = match &sni {
        Some(name) => LeafName::Dns(name.clone()),
        None => LeafName::Ip(orig.dest.ip()),
    };
    let config = match shared.leaves.server_config(&leaf) {
        Ok(c) => c,
        Err(e) => {
            report(shared, &orig, &e.to_string());
            return Tls::Done;
        }
    };
    match StartHandshake::from_parts(accepted, stream)
        .into_stream(config)
        .await
    {
        Ok(s) => Tls::Serve(Box::new(s), sni),
        // The client rejected our leaf or broke off: its own error says why.
        Err(_) => Tls::Done,
    }
}

/// What `--http-bypass` makes of a connection.
#[derive(Debug, PartialEq, Eq)]
enum Bypass {
    /// Not a bypassed name.
    No,
    /// A bypassed name, on a connection to an address it was pinned or
    /// resolved to: spliced.
    Splice,
    /// A bypassed name sent to some other address: intercepted as usual.
    Elsewhere,
}

/// Whether the connection to `orig` with SNI `name` is spliced. The SNI is
/// the workload's word alone: a bypass decided from it would let a
/// workload name a bypassed host while connecting to an intercepted one
/// and pass its requests unread. So the destination must be an address
/// `name` itself was pinned to at start or answered with by the DNS
/// interceptor.
fn bypass(patterns: &[HostMatch], pinned: &Pinned, name: &str, dest: IpAddr) -> Bypass {
    if !patterns.iter().any(|b| b.matches(name)) {
        return Bypass::No;
    }
    if pinned.known_as(dest, |n| n == name) {
        Bypass::Splice
    } else {
        Bypass::Elsewhere
    }
}

fn warn(shared: &Shared, orig: &Original, why: &str) {
    shared.reporter.record(&Event {
        pid: orig.pid,
        syscall: "proxy",
        target: &orig.dest.to_string(),
        verdict: Verdict::Warn,
        rule: why,
    });
}

/// Bypass: the ClientHello and everything after it go to the original
/// destination byte for byte, with no inspection.
async fn splice(shared: &Shared, orig: Original, mut down: TcpStream, hello: Vec<u8>) {
    let connect = tokio::time::timeout(shared.timeout, TcpStream::connect(orig.dest)).await;
    let Ok(Ok(mut up)) = connect else {
        return report(shared, &orig, "bypassed upstream unreachable");
    };
    let _ = up.set_nodelay(true);
    if up.write_all(&hello).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{AddHost, NetPolicy};

    /// A bypass follows the destination, not the SNI alone: pinned or
    /// learned addresses of the very name splice, any other address is
    /// intercepted (also one pinned for another bypassed name).
    #[test]
    fn bypass_needs_the_names_own_address() {
        let net = NetPolicy {
            hosts: [
                "pinned.test:127.0.0.2",
                "api.test:127.0.0.1",
                "b.dyn.test:127.0.0.4",
            ]
            .iter()
            .map(|h| AddHost::parse(h).unwrap())
            .collect(),
            ..NetPolicy::default()
        };
        let pinned = Pinned::resolve(&net, &[]).unwrap();
        pinned
            .learned()
            .learn("a.dyn.test", "127.0.0.3".parse().unwrap());
        let patterns = ["pinned.test", "*.dyn.test"]
            .map(|p| HostMatch::parse("--http-bypass", p, p, false).unwrap());
        let at = |name: &str, ip: &str| bypass(&patterns, &pinned, name, ip.parse().unwrap());
        assert_eq!(at("pinned.test", "127.0.0.2"), Bypass::Splice);
        assert_eq!(at("pinned.test", "::ffff:127.0.0.2"), Bypass::Splice);
        assert_eq!(at("pinned.test", "127.0.0.1"), Bypass::Elsewhere);
        assert_eq!(at("a.dyn.test", "127.0.0.3"), Bypass::Splice);
        assert_eq!(at("a.dyn.test", "127.0.0.4"), Bypass::Elsewhere);
        assert_eq!(at("b.dyn.test", "127.0.0.3"), Bypass::Elsewhere);
        assert_eq!(at("api.test", "127.0.0.1"), Bypass::No);
    }
}
