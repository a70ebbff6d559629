//! Loopback TCP and UDP servers run by the tests, counting what reaches them.

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

// ---------------------------------------------------------------------------
// Loopback servers
// ---------------------------------------------------------------------------

/// A TCP server on a loopback address. Every accepted connection is counted,
/// gets `payload` written to it and is closed.
pub struct TcpServer {
    pub addr: SocketAddr,
    pub payload: String,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl TcpServer {
    /// Binds `ip:0` (any free port).
    pub fn start(ip: &str) -> TcpServer {
        Self::start_on(ip, 0).expect("bind loopback server")
    }

    /// Binds `ip:port`; Err if the port is taken.
    pub fn start_on(ip: &str, port: u16) -> std::io::Result<TcpServer> {
        let ipaddr: IpAddr = ip.parse().unwrap();
        let listener = TcpListener::bind(SocketAddr::new(ipaddr, port))?;
        let addr = listener.local_addr()?;
        let payload = format!("PAYLOAD-{}-{}", ip.replace(':', "_"), addr.port());
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let accepted = accepted.clone();
            let stop = stop.clone();
            let payload = payload.clone();
            thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(mut c) = conn {
                        accepted.fetch_add(1, Ordering::SeqCst);
                        let _ = c.write_all(payload.as_bytes());
                        let _ = c.shutdown(std::net::Shutdown::Write);
                    }
                }
            });
        }
        Ok(TcpServer {
            addr,
            payload,
            accepted,
            stop,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn port_s(&self) -> String {
        self.addr.port().to_string()
    }

    /// Connections accepted so far (waits 150ms first so that connections
    /// already queued by the kernel are counted too).
    pub fn accepted(&self) -> usize {
        thread::sleep(Duration::from_millis(150));
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // wake the accept loop
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

/// Two TCP servers on the same port at two different loopback addresses
/// (e.g. 127.0.0.1 and 127.0.0.2, or 127.0.0.1 and ::1).
pub fn tcp_pair(ip_a: &str, ip_b: &str) -> (TcpServer, TcpServer) {
    for _ in 0..50 {
        let a = TcpServer::start(ip_a);
        if let Ok(b) = TcpServer::start_on(ip_b, a.port()) {
            return (a, b);
        }
    }
    panic!("could not bind {ip_a} and {ip_b} on a common port");
}

/// A UDP server on a loopback address recording every datagram.
pub struct UdpServer {
    pub addr: SocketAddr,
    got: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
}

impl UdpServer {
    pub fn start(ip: &str) -> UdpServer {
        let ipaddr: IpAddr = ip.parse().unwrap();
        let sock = UdpSocket::bind(SocketAddr::new(ipaddr, 0)).expect("bind udp");
        let addr = sock.local_addr().unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let got = got.clone();
            let stop = stop.clone();
            thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while !stop.load(Ordering::SeqCst) {
                    if let Ok((n, _)) = sock.recv_from(&mut buf) {
                        got.lock().unwrap().push(buf[..n].to_vec());
                    }
                }
            });
        }
        UdpServer { addr, got, stop }
    }

    pub fn port_s(&self) -> String {
        self.addr.port().to_string()
    }

    /// Datagrams received so far, as strings (waits 200ms first).
    pub fn received(&self) -> Vec<String> {
        thread::sleep(Duration::from_millis(200));
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|d| String::from_utf8_lossy(d).into_owned())
            .collect()
    }
}

impl Drop for UdpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A port that was free a moment ago on 127.0.0.1 (TCP).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A port `p` such that `p` and `p + 1` were both free for TCP and UDP
/// a moment ago (tests run in parallel and pick ports concurrently).
pub fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let p = free_port();
        let free = |port: u16| {
            TcpListener::bind(("127.0.0.1", port)).is_ok()
                && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
        };
        if p < u16::MAX && free(p) && free(p + 1) {
            return p;
        }
    }
    panic!("no pair of free ports found");
}
