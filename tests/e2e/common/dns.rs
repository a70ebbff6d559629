//! tests/fixtures/dnsserver.py: the resolver behind `--dns-server` in the
//! DNS interceptor's tests; it logs every question it is asked.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use super::{TempDir, FIXTURE_SRC, PYTHON};

/// tests/fixtures/dnsserver.py on 127.0.0.1 (UDP and TCP, one port).
pub struct Resolver {
    port: u16,
    log: String,
    child: Child,
    _dir: TempDir,
}

impl Resolver {
    /// Serves `names` (`NAME=IP`, NAME may be `*.suffix`).
    pub fn start(names: &[&str]) -> Resolver {
        let dir = TempDir::new("dns");
        let log = dir.file("queries", "");
        let mut child = Command::new(PYTHON)
            .arg(format!("{FIXTURE_SRC}/dnsserver.py"))
            .arg(&log)
            .args(names)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start dnsserver.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("dnsserver.py prints its port");
        Resolver {
            port,
            log,
            child,
            _dir: dir,
        }
    }

    pub fn flag(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Every question it was asked, as `NAME TYPE` (1 = A, 28 = AAAA).
    pub fn queries(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
