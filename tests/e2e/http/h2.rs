//! An HTTP/2 upstream (nginx from Debian): the proxy negotiates h2 with it
//! on its own, and response trailers (the gRPC case) reach the workload;
//! chunked trailers of an HTTP/1.1 upstream too.

use super::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// nginx on 127.0.0.1 with TLS (the upstream certificate of `tls_files()`)
/// and HTTP/2, one process, its own config, logs and temp dirs; killed on
/// drop. Its access log has one line per request: "$server_protocol
/// $request_method $request_uri $status".
struct Nginx {
    port: u16,
    dir: TempDir,
    child: Child,
}

const NGINX_CONF: &str = r#"daemon off;
master_process off;
worker_processes 1;
pid @D@/nginx.pid;
error_log @D@/error.log warn;
events { worker_connections 64; }
http {
    log_format e2e '$server_protocol $request_method $request_uri $status';
    access_log @D@/access.log e2e;
    client_body_temp_path @D@/body;
    proxy_temp_path @D@/proxy;
    fastcgi_temp_path @D@/fastcgi;
    uwsgi_temp_path @D@/uwsgi;
    scgi_temp_path @D@/scgi;
    server {
        listen 127.0.0.1:@P@ @LISTEN@;
        @HTTP2@
        server_name api.test;
        ssl_certificate @CERT@;
        ssl_certificate_key @KEY@;
        ssl_protocols TLSv1.2 TLSv1.3;
        location = /grpc {
            default_type application/grpc;
            add_trailer grpc-status 0 always;
            add_trailer x-trailer e2e-h2-trailer always;
            return 200 "grpc-like body\n";
        }
        location / { return 404; }
    }
}
"#;

impl Nginx {
    fn start() -> Nginx {
        let v = Command::new("nginx")
            .arg("-v")
            .output()
            .unwrap_or_else(|e| panic!("cannot run nginx (scripts/deps.sh installs it): {e}"));
        let v = String::from_utf8_lossy(&v.stderr).into_owned();
        let version: Vec<u32> = v
            .trim()
            .rsplit('/')
            .next()
            .unwrap_or("")
            .split('.')
            .filter_map(|n| n.parse().ok())
            .collect();
        // `http2 on;` exists from 1.25.1; older ones (Debian 12: 1.22)
        // take `http2` as a listen parameter
        let (listen, http2) = if version >= vec![1, 25, 1] {
            ("ssl", "http2 on;")
        } else {
            ("ssl http2", "")
        };
        let f = tls_files();
        for _ in 0..10 {
            let dir = TempDir::new("nginx");
            let port = free_port();
            let conf = NGINX_CONF
                .replace("@D@", &dir.s())
                .replace("@P@", &port.to_string())
                .replace("@LISTEN@", listen)
                .replace("@HTTP2@", http2)
                .replace("@CERT@", &f.server_cert)
                .replace("@KEY@", &f.server_key);
            let conf_path = dir.file("nginx.conf", &conf);
            let mut child = Command::new("nginx")
                .args(["-p", &format!("{}/", dir.s()), "-c", &conf_path])
                .args(["-e", &dir.join("error.log")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(dir.join("stderr")).unwrap())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start nginx: {e}"));
            // the pid file is written once the listening socket is bound
            let pid = dir.join("nginx.pid");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if fs::metadata(&pid).is_ok_and(|m| m.len() > 0) {
                    return Nginx { port, dir, child };
                }
                if let Ok(Some(st)) = child.try_wait() {
                    let log = format!(
                        "{}{}",
                        fs::read_to_string(dir.join("error.log")).unwrap_or_default(),
                        fs::read_to_string(dir.join("stderr")).unwrap_or_default()
                    );
                    if log.contains("Address already in use") {
                        break; // another test took the port: try another
                    }
                    panic!("nginx exited with {st}:\n{log}");
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("nginx did not start within 10 s");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("nginx: no free port after 10 attempts");
    }

    /// The access log's lines (waits up to 2 s for `n` of them).
    fn access_lines(&self, n: usize) -> Vec<String> {
        let read = || {
            fs::read_to_string(self.dir.join("access.log"))
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        wait_until(Duration::from_secs(2), || read().len() >= n);
        read()
    }

    fn dump(&self) -> String {
        format!(
            "--- nginx 127.0.0.1:{} access log ---\n{}\n--- nginx error log ---\n{}",
            self.port,
            fs::read_to_string(self.dir.join("access.log")).unwrap_or_default(),
            fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
        )
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines of `httpclient.py h2` without the response headers (their
/// date changes).
fn h2_lines(out: &Out) -> Vec<&str> {
    out.stdout_lines()
        .into_iter()
        .filter(|l| !l.starts_with("header "))
        .collect()
}

both!(h2_upstream_trailers_reach_the_workload, |ctx| {
    let ngx = Nginx::start();
    let s = Setup::tls("127.0.0.1");
    let np = ngx.port.to_string();
    let flags = s.flags(&[
        "--http-port",
        &np,
        "--http-allow",
        "POST api.test/grpc",
        "--http-allow",
        "GET api.test/chunked",
    ]);

    // gRPC-like: a POST over HTTP/2 with "te: trailers", answered by nginx
    // over HTTP/2 with trailers after the body
    let out = run(
        &ctx,
        &flags,
        &pyclient(&["h2", &s.ca, "api.test", &np, "POST", "/grpc", "ping"]),
    );
    let c = format!("{}\n{}", s.dump(&out), ngx.dump());
    out.expect_code(0);
    assert_eq!(
        h2_lines(&out),
        vec![
            "alpn h2",
            "status 200",
            r"data b'grpc-like body\n'",
            "trailer grpc-status: 0",
            "trailer x-trailer: e2e-h2-trailer",
            "end"
        ],
        "{c}"
    );
    // the proxy negotiated HTTP/2 with nginx
    assert_eq!(ngx.access_lines(1), vec!["HTTP/2.0 POST /grpc 200"], "{c}");

    // the chunked trailer of an HTTP/1.1 upstream, to an HTTP/2 client
    let out = run(
        &ctx,
        &flags,
        &pyclient(&["h2", &s.ca, "api.test", &s.port(), "GET", "/chunked"]),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(
        h2_lines(&out),
        vec![
            "alpn h2",
            "status 200",
            r"data b'hello chunked world\n'",
            "trailer x-checksum: e2e-trailer",
            "end"
        ],
        "{c}"
    );

    // and to an HTTP/1.1 client that accepts trailers (curl --raw shows
    // the chunked framing with the trailer section)
    let out = run(
        &ctx,
        &flags,
        &curl(
            Some(&s.ca),
            &["--http1.1", "--raw", "-H", "TE: trailers"],
            &[&s.url("api.test", "/chunked")],
        ),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    let r = resp1(&out);
    assert_eq!(r.code, 200, "{c}");
    assert!(
        r.body
            .to_ascii_lowercase()
            .ends_with("\r\n0\r\nx-checksum: e2e-trailer\r\n\r\n"),
        "no trailer section in {:?}\n{c}",
        r.body
    );
    assert_eq!(
        s.up.paths(),
        vec!["/chunked".to_string(), "/chunked".into()],
        "{c}"
    );
});
