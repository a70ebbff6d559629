//! The OCI runtime, `sandlock-oci`, through real engines: podman with
//! `--runtime` on a `--rootfs`, and containerd's runc shim (`ctr run
//! --runc-binary`) on an image imported from a tarball these tests build.
//! No registry: the root filesystem is assembled from the host (busybox,
//! curl and the libraries it links).
//!
//! Each check runs under both engines (`engines!` makes a `podman` and a
//! `containerd` test); with podman the network and secret checks also run
//! as uid 65534 inside the container. Every denial comes with its twin,
//! the same container with the grant, which succeeds.
//!
//! Needs root (the engines run rootful here), podman, containerd, runc and
//! busybox-static (scripts/deps.sh installs them) and sandlock-oci's
//! static build (`cargo build-static`, which scripts/test.sh runs first). Where any is missing, a test fails and says what; it never
//! passes without running.

mod engines;
mod rootfs;

use std::time::Duration;

use crate::common::*;
use engines::{unique, Container, Engine};

/// `engines!(name, |engine| { ... })` makes `name::podman` and
/// `name::containerd`, running the same body.
macro_rules! engines {
    ($name:ident, |$e:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn body($e: Engine) $body

            #[test]
            fn podman() {
                body(Engine::Podman)
            }

            #[test]
            fn containerd() {
                body(Engine::Containerd)
            }
        }
    };
}

// After the macro, which it uses.
mod attacks;

/// The users a check runs as: the image's root, and with podman also
/// uid 65534.
fn users(e: Engine) -> Vec<Option<String>> {
    match e {
        Engine::Podman => vec![None, Some("65534:65534".into())],
        Engine::Containerd => vec![None],
    }
}

/// The annotations that route `api.test` to a loopback HTTPS upstream
/// through the proxy, trusting the tests' private root for the upstream.
fn https_to(up: &tls::Upstream, c: Container) -> Container {
    c.with("add-host", "api.test:127.0.0.1")
        .with("http-port", &up.port_s())
        .with("upstream-ca", "/etc/sandlock-test/root.pem")
}

engines!(
    a_connect_outside_the_policy_is_denied_one_inside_goes_through,
    |e| {
        for user in users(e) {
            let (a, b) = (TcpServer::start("127.0.0.1"), TcpServer::start("127.0.0.1"));
            let c = Container {
                user: user.clone(),
                ..Container::default()
            }
            .with("net-allow", &format!("127.0.0.1:{}", a.port()));
            let script = format!(
            "id -u; nc 127.0.0.1 {} </dev/null; r=$?; echo; echo a=$r; nc 127.0.0.1 {} </dev/null; echo b=$?",
            a.port(),
            b.port()
        );
            let out = e.run(&c, &["/bin/sh", "-c", &script]);
            out.expect_code(0);
            let uid = if user.is_some() { "65534" } else { "0" };
            assert_eq!(
                out.stdout_lines(),
                [uid, &a.payload, "a=0", "b=1"],
                "{user:?}\n{}",
                out.dump()
            );
            assert_eq!((a.accepted(), b.accepted()), (1, 0), "{}", out.dump());
            let denial = format!("sandlock: denied connect 127.0.0.1:{}", b.port());
            assert!(
                out.stderr.lines().any(|l| l.starts_with(&denial)),
                "{}",
                out.dump()
            );
        }
    }
);

engines!(
    https_through_the_proxy_trusts_the_spliced_ca_with_no_ca_variables,
    |e| {
        let up = tls::Upstream::tls("127.0.0.1");
        let url = |path: &str| format!("https://api.test:{}{path}", up.port);
        let script = format!(
            "curl -sS -o /dev/null -w '%{{http_code}}\\n' {}; \
         curl -sS -o /dev/null -w '%{{http_code}}\\n' {}; env | grep -ci -e ssl -e cert -e _ca",
            url("/ok/1"),
            url("/no/2")
        );
        let base = https_to(&up, Container::default())
            .with("http-allow", "GET api.test/ok/*")
            .with("no-ca-env", "true");
        let out = e.run(&base, &["/bin/sh", "-c", &script]);
        assert_eq!(out.stdout_lines(), ["200", "403", "0"], "{}", out.dump());
        assert_eq!(up.paths(), ["/ok/1"], "{}", out.dump());
        assert!(
            out.stderr
                .contains(&format!("sandlock: denied http GET {}", url("/no/2"))),
            "{}",
            out.dump()
        );
        // Twin: without the splice (the default bundles left alone), the same
        // curl does not trust the proxy's certificate.
        let unspliced = base.clone().with("no-default-bundles", "true");
        let out = e.run(&unspliced, &["/bin/sh", "-c", &script]);
        assert_eq!(out.stdout_lines()[..2], ["000", "000"], "{}", out.dump());
        assert!(
            out.stderr.contains("SSL certificate problem"),
            "{}",
            out.dump()
        );
        assert_eq!(up.paths(), ["/ok/1"], "nothing more reached the upstream");
    }
);

engines!(
    a_secret_from_the_env_reaches_its_host_the_container_sees_a_placeholder,
    |e| {
        for user in users(e) {
            let up = tls::Upstream::tls("127.0.0.1");
            let value = format!("s3cret-{}", unique("v"));
            let script = format!(
                "echo \"seen=$TOKEN\"; curl -sS -o /dev/null -w '%{{http_code}}\\n' \
             -H \"Authorization: Bearer $TOKEN\" https://api.test:{}/echo/s",
                up.port
            );
            let c = https_to(
                &up,
                Container {
                    user: user.clone(),
                    ..Container::default()
                },
            )
            .with("http-allow", "GET api.test/echo/*")
            .env(&format!("TOKEN={value}"));
            let out = e.run(
                &c.clone().with("secret.TOKEN", "api.test"),
                &["/bin/sh", "-c", &script],
            );
            out.expect_code(0);
            let lines = out.stdout_lines();
            assert_eq!(lines.len(), 2, "{}", out.dump());
            let placeholder = lines[0].strip_prefix("seen=").unwrap();
            assert!(
                !placeholder.is_empty() && placeholder != value,
                "{}",
                out.dump()
            );
            assert_eq!(lines[1], "200", "{}", out.dump());
            assert!(!out.stdout.contains(&value) && !out.stderr.contains(&value));
            let seen = up.requests();
            assert_eq!(seen.len(), 1, "{}", up.dump());
            assert_eq!(
                seen[0].header("authorization"),
                Some(format!("Bearer {value}").as_str()),
                "{user:?}"
            );
            // Twin: without the annotation the variable is the container's
            // own, value and all.
            let out = e.run(&c, &["/bin/sh", "-c", "echo \"seen=$TOKEN\""]);
            assert_eq!(
                out.stdout_lines(),
                [format!("seen={value}")],
                "{}",
                out.dump()
            );
        }
    }
);

engines!(
    the_workload_cannot_read_the_secret_from_its_supervisor_or_replace_it,
    |e| {
        let value = format!("s3cret-{}", unique("v"));
        let c = Container::default()
            .with("add-host", "api.test:127.0.0.1")
            .with("secret.TOKEN", "api.test")
            .env(&format!("TOKEN={value}"));
        // Every environ it can open (its own processes', and pid 1's, the
        // sandbox's reaper), and the supervisor's binary.
        let script = "cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep TOKEN=; \
                  echo x > /.sandlock/sandlock-oci; echo write=$?; \
                  ls /.sandlock >/dev/null 2>&1; echo list=$?";
        let out = e.run(&c, &["/bin/sh", "-c", script]);
        assert!(!out.stdout.contains(&value), "{}", out.dump());
        let lines = out.stdout_lines();
        let n = lines.len();
        assert!(n >= 3, "{}", out.dump());
        assert_eq!(lines[n - 2..], ["write=1", "list=1"], "{}", out.dump());
        // Twin: the environ it could read (its own) holds the placeholder.
        let own = &lines[..n - 2];
        assert!(
            own.iter()
                .all(|l| l.starts_with("TOKEN=") && l.len() > 6 && *l == own[0]),
            "{}",
            out.dump()
        );
    }
);

engines!(exec_runs_under_the_containers_policy, |e| {
    let (a, b) = (TcpServer::start("127.0.0.1"), TcpServer::start("127.0.0.1"));
    let shared = TempDir::new("oci-shared");
    let name = unique("exec");
    let c = Container {
        shared: Some(shared.s()),
        ..Container::default()
    }
    .with("net-allow", &format!("127.0.0.1:{}", a.port()))
    .with("fs-write", "/shared");
    let first = e.spawn(
        &name,
        &c,
        &[
            "/bin/sh",
            "-c",
            "touch /shared/ready; while true; do sleep 0.1; done",
        ],
    );
    let ready = shared.path().join("ready");
    assert!(
        wait_until(Duration::from_secs(60), || ready.exists()),
        "the container did not start"
    );
    let script = format!(
        "nc 127.0.0.1 {} </dev/null; r=$?; echo; echo a=$r; nc 127.0.0.1 {} </dev/null; echo b=$?",
        a.port(),
        b.port()
    );
    let out = e.exec(&name, &[], &["/bin/sh", "-c", &script]);
    out.expect_code(0);
    assert_eq!(
        out.stdout_lines(),
        [a.payload.as_str(), "a=0", "b=1"],
        "{}",
        out.dump()
    );
    assert_eq!((a.accepted(), b.accepted()), (1, 0));
    assert!(
        out.stderr
            .contains(&format!("sandlock: denied connect 127.0.0.1:{}", b.port())),
        "{}",
        out.dump()
    );
    e.stop(&name).expect_code(0);
    let first = first.join().unwrap();
    // sh has no handler: SIGTERM, forwarded by the supervisor, ends it.
    assert_eq!(first.code(), 143, "{}", first.dump());
});

engines!(stop_forwards_sigterm_and_exit_statuses_pass_through, |e| {
    let shared = TempDir::new("oci-shared");
    let name = unique("stop");
    let c = Container {
        shared: Some(shared.s()),
        ..Container::default()
    }
    .with("fs-write", "/shared");
    let script = "trap 'echo got-term; exit 3' TERM; touch /shared/ready; \
                  while true; do sleep 0.1; done";
    let first = e.spawn(&name, &c, &["/bin/sh", "-c", script]);
    let ready = shared.path().join("ready");
    assert!(wait_until(Duration::from_secs(60), || ready.exists()));
    e.stop(&name).expect_code(0);
    let out = first.join().unwrap();
    assert_eq!(out.code(), 3, "{}", out.dump());
    assert_eq!(out.stdout_lines(), ["got-term"], "{}", out.dump());

    let plain = Container::default();
    assert_eq!(e.run(&plain, &["/bin/sh", "-c", "exit 7"]).code(), 7);
    assert_eq!(
        e.run(&plain, &["/bin/sh", "-c", "kill -KILL $$"]).code(),
        137
    );
    assert_eq!(e.run(&plain, &["/bin/true"]).code(), 0);
});

engines!(
    a_terminal_reaches_the_workload_through_the_console_socket,
    |e| {
        let out = e.run_tty(
            &Container::default(),
            &[
                "/bin/sh",
                "-c",
                "tty; [ -t 0 ] && [ -t 1 ] && echo both-ttys; exit 5",
            ],
        );
        assert_eq!(out.code(), 5, "{}", out.dump());
        let text = out.stdout.replace('\r', "");
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines.iter().any(|l| l.contains("/dev/pts/")),
            "{}",
            out.dump()
        );
        assert!(lines.contains(&"both-ttys"), "{}", out.dump());
    }
);

engines!(a_bad_annotation_fails_create_and_names_it, |e| {
    let cases: &[(&str, &str, &str)] = &[
        ("net-allow", "127.0.0.1:99999", "port 99999 is out of range"),
        ("no-such-option", "1", "no such option"),
        (
            "profile",
            "no-such-profile",
            "no profile named 'no-such-profile'",
        ),
        (
            "secret.MISSING",
            "api.test",
            "the container's environment has no MISSING",
        ),
    ];
    for (key, value, why) in cases {
        let out = e.run(&Container::default().with(key, value), &["/bin/true"]);
        assert_ne!(out.code(), 0, "{key}={value}\n{}", out.dump());
        let text = format!("{}{}", out.stdout, out.stderr);
        assert!(
            text.contains(&format!("run.sandlock/{key}")) && text.contains(why),
            "{key}={value}\n{}",
            out.dump()
        );
        if !key.starts_with("secret.") && *key != "no-such-option" {
            assert!(text.contains(value), "{}", out.dump());
        }
    }
    // Twin: good values start.
    let good = Container::default()
        .with("net-allow", "127.0.0.1:9999")
        .with("profile", "build");
    let out = e.run(&good, &["/bin/true"]);
    out.expect_code(0);
});

engines!(
    denials_reach_the_containers_stderr_and_the_audit_file,
    |e| {
        let (a, b) = (TcpServer::start("127.0.0.1"), TcpServer::start("127.0.0.1"));
        let shared = TempDir::new("oci-shared");
        let c = Container {
            shared: Some(shared.s()),
            ..Container::default()
        }
        .with("net-allow", &format!("127.0.0.1:{}", a.port()))
        .with("audit", "/shared/audit.jsonl");
        let script = format!(
            "nc 127.0.0.1 {} </dev/null >/dev/null; nc 127.0.0.1 {} </dev/null; \
         echo forged >> /shared/audit.jsonl; echo write=$?",
            a.port(),
            b.port()
        );
        let out = e.run(&c, &["/bin/sh", "-c", &script]);
        assert_eq!(out.stdout_lines(), ["write=1"], "{}", out.dump());
        let denied = format!("127.0.0.1:{}", b.port());
        assert!(
            out.stderr
                .contains(&format!("sandlock: denied connect {denied}")),
            "{}",
            out.dump()
        );
        // The supervisor writes the audit file; the workload cannot (no grant).
        let log = std::fs::read_to_string(shared.path().join("audit.jsonl")).unwrap();
        let lines: Vec<&str> = log.lines().collect();
        assert!(
            lines
                .iter()
                .any(|l| l.contains("\"verdict\":\"deny\"") && l.contains(&denied)),
            "{log}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("\"verdict\":\"allow\"")
                    && l.contains(&format!(":{}", a.port()))),
            "{log}"
        );
        assert!(!log.contains("forged"), "{log}");
    }
);

#[test]
fn help_lists_every_command_and_global_flag() {
    let mut cmd = std::process::Command::new(engines::oci_bin());
    cmd.arg("--help");
    let out = run_cmd(cmd, None, RUN_LIMIT);
    out.expect_code(0);
    for word in [
        "create",
        "run",
        "start",
        "state",
        "kill",
        "delete",
        "exec",
        "features",
        "supervise",
        "list",
        "ps",
        "pause",
        "resume",
        "update",
        "events",
        "checkpoint",
        "restore",
        "spec",
        "--root",
        "--log",
        "--log-format",
    ] {
        assert!(
            out.stdout.lines().any(|l| l.trim_start().starts_with(word)),
            "{word}\n{}",
            out.dump()
        );
    }
    // Each command's own help, too (the engines' flags are runc's).
    for (command, flag) in [
        ("create", "--console-socket"),
        ("exec", "--process"),
        ("delete", "--force"),
    ] {
        let mut cmd = std::process::Command::new(engines::oci_bin());
        cmd.args([command, "--help"]);
        let out = run_cmd(cmd, None, RUN_LIMIT);
        out.expect_code(0);
        assert!(out.stdout.contains(flag), "{command}: {}", out.dump());
    }
}
