//! The client matrix: real clients agent developers run, each through the
//! proxy against a loopback upstream behind a private root, with no CA
//! flag or variable of the test's own (the tests' sandlock starts from a
//! plain environment). scripts/clients.sh installs the Python packages
//! and bun and deno; scripts/deps.sh the rest.

use super::*;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};

/// The clients venv's python (system site-packages included).
fn venv_python() -> String {
    format!("{}/venv/bin/python", clients_dir())
}

/// `pyclients.py KIND TARGET` with the clients venv, inside the sandbox.
fn pyclient(ctx: &Ctx, flags: &[String], kind: &str, target: &str) -> Out {
    let mut f = flags.to_vec();
    f.extend(sv(&["-r", &clients_dir(), "-r", &fixdir()]));
    let script = format!("{}/pyclients.py", fixdir());
    run(ctx, &f, &sv(&[&venv_python(), &script, kind, target]))
}

/// The flags with trust taken away: nothing spliced, no variables.
fn untrusting(s: &Trust) -> Vec<String> {
    s.flags(&["--no-default-bundles", "--no-ca-env"])
}

both!(httpx_over_http2_trusts_the_spliced_certifi, |ctx| {
    let s = Trust::new();
    let url = s.url("/echo/httpx");
    let out = pyclient(&ctx, &s.flags(&[]), "httpx", &url);
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(out.stdout, "httpx 200 HTTP/2\n", "{c}");
    // twin: nothing spliced, httpx refuses the proxy's certificate
    let out = pyclient(&ctx, &untrusting(&s), "httpx", &url);
    let c2 = s.dump(&out);
    assert_eq!(out.code(), 1, "{c2}");
    assert!(out.stdout.starts_with("httpx error ConnectError"), "{c2}");
    assert_eq!(s.up.paths(), vec!["/echo/httpx".to_string()], "{c}\n{c2}");
    s.host_unchanged();
});

both!(aiohttp_trusts_the_spliced_system_bundle, |ctx| {
    let s = Trust::new();
    let url = s.url("/echo/aiohttp");
    let out = pyclient(&ctx, &s.flags(&[]), "aiohttp", &url);
    let c = s.dump(&out);
    out.expect_code(0).expect_stdout("aiohttp 200\n");
    let out = pyclient(&ctx, &untrusting(&s), "aiohttp", &url);
    let c2 = s.dump(&out);
    assert_eq!(out.code(), 1, "{c2}");
    assert!(
        out.stdout
            .starts_with("aiohttp error ClientConnectorCertificateError"),
        "{c2}"
    );
    assert_eq!(s.up.paths(), vec!["/echo/aiohttp".to_string()], "{c}\n{c2}");
});

both!(websockets_over_wss_echo, |ctx| {
    let s = Trust::new();
    let url = format!("wss://api.test:{}/ws", s.port());
    let out = pyclient(&ctx, &s.flags(&[]), "websockets", &url);
    let c = s.dump(&out);
    out.expect_code(0).expect_stdout("websockets hello\n");
    let out = pyclient(&ctx, &untrusting(&s), "websockets", &url);
    let c2 = s.dump(&out);
    assert_eq!(out.code(), 1, "{c}\n{c2}");
    assert!(out.stdout.contains("CERTIFICATE_VERIFY_FAILED"), "{c2}");
});

/// A gRPC server of the host's (the clients venv's grpcio, TLS with the
/// upstream's certificate); killed on drop.
struct GrpcServer {
    child: Child,
    port: String,
}

impl GrpcServer {
    fn start() -> GrpcServer {
        let t = tls_files();
        let mut child = Command::new(venv_python())
            .args([
                &format!("{}/grpcserver.py", fixdir()),
                &t.server_cert,
                &t.server_key,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the gRPC server");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().to_string();
        assert!(port.parse::<u16>().is_ok(), "gRPC server said {line:?}");
        GrpcServer { child, port }
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

both!(grpcio_unary_streaming_and_trailers, |ctx| {
    let g = GrpcServer::start();
    let s = Trust::new();
    let flags = |extra: &[&str]| {
        let mut v = sv(&[
            "--add-host",
            "api.test:127.0.0.1",
            "--http-port",
            &g.port,
            "--upstream-ca",
            &tls_files().root_ca,
            "--http-allow",
            "POST api.test/t.Echo/*",
        ]);
        v.extend(sv(extra));
        v
    };
    let target = format!("api.test:{}", g.port);
    let out = pyclient(&ctx, &flags(&[]), "grpc", &target);
    let c = s.dump(&out);
    out.expect_code(0)
        .expect_stdout("grpc unary echo:ping trailer t1\ngrpc stream 3\n");
    // twin: the bundled roots.pem served as it is, and no variable
    let out = pyclient(
        &ctx,
        &flags(&["--no-default-bundles", "--no-ca-env"]),
        "grpc",
        &target,
    );
    let c2 = s.dump(&out);
    assert_eq!(out.code(), 1, "{c}\n{c2}");
    assert!(out.stdout.starts_with("grpc error"), "{c2}");
});

/// `fetch(URL)` in a JavaScript runtime: "status <code>", or "error ...".
const JS_FETCH: &str =
    "const r = await fetch(URL); await r.text(); console.log('status ' + r.status);";

both!(bun_and_deno_fetch_in_the_default_view, |ctx| {
    // Both abort at start without /proc/self/maps. deno trusts the CA
    // through DENO_CERT only; bun through NODE_EXTRA_CA_CERTS and the
    // spliced system bundle.
    let s = Trust::new();
    let url = s.url("/echo/js");
    let code = JS_FETCH.replace("URL", &format!("{url:?}"));
    let bin = |name: &str| format!("{}/node/node_modules/.bin/{name}", clients_dir());
    let runs = [
        ("bun", sv(&[&bin("bun"), "-e", &code])),
        ("deno", sv(&[&bin("deno"), "eval", "--quiet", &code])),
    ];
    for (name, cmd) in &runs {
        let flags = s.flags(&["-r", &clients_dir()]);
        let out = run(&ctx, &flags, cmd);
        let c = s.dump(&out);
        assert_eq!(out.stdout, "status 200\n", "{name}\n{c}");
        out.expect_code(0);
        // twin: nothing spliced and no variables, they do not trust the
        // proxy
        let flags = s.flags(&["-r", &clients_dir(), "--no-default-bundles", "--no-ca-env"]);
        let out = run(&ctx, &flags, cmd);
        let c2 = s.dump(&out);
        assert_ne!(out.code(), 0, "{name}\n{c2}");
        assert!(!out.stdout.contains("status 200"), "{name}\n{c2}");
    }
    assert_eq!(
        s.up.paths(),
        vec!["/echo/js".to_string(), "/echo/js".into()],
        "bun and deno each reached the upstream once"
    );
});

both!(wget_trusts_the_spliced_system_bundle, |ctx| {
    let wget = installed("wget", "wget");
    let s = Trust::new();
    let url = s.url("/echo/wget");
    let out = run(
        &ctx,
        &s.flags(&[]),
        &sv(&[&wget, "-q", "-O", "/dev/null", &url]),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    let out = run(
        &ctx,
        &untrusting(&s),
        &sv(&[&wget, "-q", "-O", "/dev/null", &url]),
    );
    let c2 = s.dump(&out);
    // wget: 5 = an SSL verification failure
    assert_eq!(out.code(), 5, "{c}\n{c2}");
    assert_eq!(s.up.paths(), vec!["/echo/wget".to_string()], "{c}\n{c2}");
});

/// Go's net/http: GET os.Args[1], print "status <code>".
const GO_GET: &str = r#"package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
)

func main() {
	r, err := http.Get(os.Args[1])
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	io.ReadAll(r.Body)
	fmt.Println("status", r.StatusCode)
}
"#;

both!(go_net_http_trusts_the_spliced_system_bundle, |ctx| {
    let go = installed("go", "golang-go");
    let s = Trust::new();
    let src = s.d.file("get.go", GO_GET);
    let url = s.url("/echo/go");
    // go run builds in the private HOME's cache, then runs the program.
    let out = run(&ctx, &s.flags(&[]), &sv(&[&go, "run", &src, &url]));
    let c = s.dump(&out);
    out.expect_code(0).expect_stdout("status 200\n");
    let out = run(&ctx, &untrusting(&s), &sv(&[&go, "run", &src, &url]));
    let c2 = s.dump(&out);
    assert_eq!(out.code(), 1, "{c}\n{c2}");
    assert!(out.stdout.contains("certificate"), "{c2}");
});

/// An upstream serving package repositories (see
/// [`package_repositories`]).
fn repositories() -> Trust {
    Trust::with(package_repositories())
}

/// `sh -c SCRIPT` with the repositories' base URL as $1 and the clients
/// directory as $2.
fn in_sh(s: &Trust, script: &str) -> Vec<String> {
    sv(&[
        "/bin/sh",
        "-c",
        script,
        "sh",
        &format!("https://api.test:{}/files", s.port()),
        &clients_dir(),
    ])
}

/// pip from the index into TMPDIR, then the module imported from there.
/// The machine's pip configuration is left out (a user's has none).
const PIP: &str = r#"PIP_CONFIG_FILE=/dev/null "$2/venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --index-url "$1/simple/" --target "$TMPDIR/t" sbpkg || exit 1
PYTHONPATH="$TMPDIR/t" "$2/venv/bin/python" -c 'import sbpkg; print(sbpkg.VALUE)'"#;

/// uv likewise (it honours SSL_CERT_FILE).
const UV: &str = r#""$2/venv/bin/uv" pip install -q --no-deps --index-url "$1/simple/" --python "$2/venv/bin/python" --target "$TMPDIR/t" sbpkg || exit 1
PYTHONPATH="$TMPDIR/t" "$2/venv/bin/python" -c 'import sbpkg; print(sbpkg.VALUE)'"#;

/// npm from the registry into TMPDIR, then the module required.
const NPM: &str = r#"npm install --silent --no-audit --no-fund --fetch-retries=0 --registry "$1/npm/" --prefix "$TMPDIR/n" sbpkg || exit 1
node -e "console.log(require('$TMPDIR/n/node_modules/sbpkg'))""#;

/// cargo builds and runs a crate whose one dependency comes from the
/// sparse registry (crates.io replaced by it, as a mirror is configured);
/// its registry cache goes to the sandbox's HOME. $2/rust is the
/// toolchain scripts/clients.sh links where every test user can read it.
const CARGO: &str = r#"d="$TMPDIR/c"; mkdir -p "$d/src" "$d/.cargo" && cd "$d" || exit 1
printf '[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\nsbpkg = "0.1"\n' > Cargo.toml
printf 'fn main() { println!("{}", sbpkg::VALUE); }\n' > src/main.rs
printf '[source.crates-io]\nreplace-with = "local"\n\n[source.local]\nregistry = "sparse+%s/cargo/index/"\n' "$1" > .cargo/config.toml
PATH="$2/rust/bin:$PATH" cargo run -q"#;

both!(
    pip_uv_npm_and_cargo_install_from_local_https_repositories,
    |ctx| {
        let s = repositories();
        for (name, script, want) in [
            ("pip", PIP, "from-the-index\n"),
            ("uv", UV, "from-the-index\n"),
            ("npm", NPM, "from-the-registry\n"),
            ("cargo", CARGO, "from-the-crates\n"),
        ] {
            let flags = s.flags(&["-r", &clients_dir()]);
            let out = run(&ctx, &flags, &in_sh(&s, script));
            let c = s.dump(&out);
            assert_eq!(out.stdout, want, "{name}\n{c}");
            out.expect_code(0);
            // twin: nothing spliced and no variables, the install fails
            let flags = s.flags(&["-r", &clients_dir(), "--no-default-bundles", "--no-ca-env"]);
            let out = run(&ctx, &flags, &in_sh(&s, script));
            let c2 = s.dump(&out);
            assert_ne!(out.code(), 0, "{name}\n{c2}");
            assert!(!out.stdout.contains("from-the"), "{name}\n{c2}");
        }
        let paths = s.up.paths();
        for p in [
            "/files/simple/sbpkg/",
            "/files/npm/sbpkg",
            "/files/npm/sbpkg-1.0.0.tgz",
            "/files/cargo/index/config.json",
            "/files/cargo/index/sb/pk/sbpkg",
            "/files/cargo/dl/sbpkg-0.1.0.crate",
        ] {
            assert!(
                paths.iter().any(|q| q == p),
                "{p} never asked for: {paths:?}"
            );
        }
    }
);
