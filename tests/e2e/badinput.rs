//! Malformed command lines: exit 2, a message naming the flag and the value,
//! and the command is never run.

use crate::common::*;

/// Runs `sandlock run FLAG VALUE -w DIR -- sh -c 'touch DIR/ran'` and checks
/// exit 2, that stderr names the flag and the value, and that nothing ran.
#[track_caller]
fn rejected(flag: &str, value: &str) {
    let d = TempDir::new("badinput");
    let marker = d.join("ran");
    let touch = format!("touch {marker}");
    let out = Ctx::invoker().sl(run_args(
        &[flag, value, "-w", &d.s()],
        &["/bin/sh", "-c", &touch],
    ));
    out.expect_code(2);
    assert!(
        out.stderr.contains(flag),
        "stderr does not name {flag}\n{}",
        out.dump()
    );
    assert!(
        out.stderr.contains(value),
        "stderr does not name {value:?}\n{}",
        out.dump()
    );
    assert!(
        !std::path::Path::new(&marker).exists(),
        "the command ran\n{}",
        out.dump()
    );
}

#[test]
fn bad_cidr_prefix_rejected() {
    rejected("--net-allow", "10.0.0.0/33");
}

#[test]
fn port_zero_rejected() {
    rejected("--net-allow", "h:0");
}

#[test]
fn port_out_of_range_rejected() {
    rejected("--net-allow", "h:70000");
}

#[test]
fn unknown_scheme_rejected() {
    rejected("--net-allow", "http://x");
}

#[test]
fn missing_double_dash_rejected() {
    let out = Ctx::invoker().sl(["run", "ls"]);
    out.expect_code(2);
    assert!(out.stdout.is_empty(), "ls ran?\n{}", out.dump());
    assert!(!out.stderr.is_empty(), "no message\n{}", out.dump());
}

#[test]
fn valid_twin_of_bad_inputs_accepted() {
    // Twin of the rejections: well-formed values of the same flags run.
    let d = TempDir::new("goodinput");
    let marker = d.join("ran");
    let touch = format!("touch {marker}");
    let out = Ctx::invoker().sl(run_args(
        &[
            "--net-allow",
            "10.0.0.0/32",
            "--net-allow",
            "localhost:1",
            "--net-allow",
            "localhost:65535",
            "--net-allow",
            "udp://127.0.0.1:53",
            "--net-allow",
            "[::1]:443",
            "--net-allow",
            ":8080",
            "--net-allow-bind",
            "8080,9000-9005",
            "--add-host",
            "h.sandlock.test:127.0.0.9",
            "-w",
            &d.s(),
        ],
        &["/bin/sh", "-c", &touch],
    ));
    out.expect_code(0);
    assert!(
        std::path::Path::new(&marker).exists(),
        "the command did not run\n{}",
        out.dump()
    );
}

#[test]
fn more_malformed_values_rejected() {
    // Each case is checked independently; all failures are reported at once.
    let cases: &[(&str, &str)] = &[
        ("--net-allow", "10.0.0.0/-1"),
        ("--net-allow", "999.1.1.1"),
        ("--net-allow", "h:abc"),
        ("--net-allow", "h:-1"),
        ("--net-allow", "[::1]:0"),
        ("--net-allow", "tcp://h:80x"),
        ("--net-allow", "h:80,70000"),
        ("--net-allow-bind", "70000"),
        ("--net-allow-bind", "9005-9000"),
        ("--net-allow-bind", "abc"),
        ("--add-host", "no-ip-here"),
        ("--add-host", "name:999.1.1.1"),
        ("--timeout", "abc"),
        ("--env", "NO_EQUALS_SIGN"),
    ];
    let mut failures = Vec::new();
    for (flag, value) in cases {
        let r = std::panic::catch_unwind(|| rejected(flag, value));
        if let Err(e) = r {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{flag} {value}: {msg}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn unknown_flag_and_missing_subcommand_rejected() {
    let out = Ctx::invoker().sl(["run", "--no-such-flag", "--", "/bin/true"]);
    out.expect_code(2);
    assert!(out.stderr.contains("--no-such-flag"), "{}", out.dump());
    let out = Ctx::invoker().sl(Vec::<String>::new());
    out.expect_code(2);
}

#[test]
fn nonexistent_cwd_is_setup_failure() {
    let out = Ctx::invoker().sl(run_args(
        &["--cwd", "/nonexistent-sandlock-e2e"],
        &["/bin/true"],
    ));
    out.expect_code(125);
    assert!(out.stderr.contains("--cwd"), "{}", out.dump());
}

#[test]
fn inherited_udp_socket_on_stdin_is_refused() {
    use std::os::fd::OwnedFd;
    use std::process::Stdio;
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["run"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "/bin/true"]);
        let fd: OwnedFd = udp.try_clone().unwrap().into();
        Ctx::invoker()
            .command(args)
            .stdin(Stdio::from(fd))
            .output()
            .unwrap()
    };
    // The attack surface: a datagram socket the workload could sendmsg()
    // through with an address the filter never sees.
    let out = run(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains("stdin is an inet socket") && stderr.contains("udp://"),
        "{stderr}"
    );
    // Twin: with a udp:// rule every sendmsg traps, so the same stdin is fine.
    let out = run(&["--net-allow", "udp://127.0.0.1:9"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
