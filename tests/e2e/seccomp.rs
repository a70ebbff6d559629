//! seccomp filter: dangerous syscalls fail with EPERM (clone3 with ENOSYS),
//! packet/raw sockets are refused, the x32 and i386 ABIs are closed, and
//! `sandlock check` reports kernel support.

use crate::common::*;

const DENIED_EPERM: &[&str] = &[
    "io_uring_setup",
    "ptrace",
    "unshare-user",
    "unshare-ns",
    "mount",
    "process_vm_readv",
    "bpf",
    "keyctl",
];

both!(dangerous_syscalls_denied, |ctx| {
    let mut probes: Vec<&str> = DENIED_EPERM.to_vec();
    probes.extend(["clone3", "getpid", "socket-unix", "fork"]);
    let out = ctx.sl(fixture_args(&[], "sysprobe", &probes));
    out.expect_code(0);
    for p in DENIED_EPERM {
        out.expect_err(p, "EPERM");
    }
    out.expect_err("clone3", "ENOSYS");
    // twin: ordinary syscalls keep working in the same sandbox
    assert!(out.probe("getpid").is_ok(), "{}", out.dump());
    assert!(out.probe("socket-unix").is_ok(), "{}", out.dump());
    out.expect_ok("fork", "0");
});

#[test]
fn dangerous_syscalls_succeed_outside_the_sandbox() {
    // Twin of dangerous_syscalls_denied: without the sandbox the same probes
    // (the harmless ones) succeed, so the EPERMs above come from sandlock.
    let mut probes = vec!["io_uring_setup", "process_vm_readv", "clone3", "keyctl"];
    if is_root() {
        probes.extend(["bpf", "unshare-user", "socket-packet", "socket-raw4"]);
    }
    let mut cmd = std::process::Command::new(fixture("sysprobe"));
    cmd.args(&probes);
    let out = run_cmd(cmd, None, RUN_LIMIT);
    out.expect_code(0);
    for p in probes {
        assert!(
            out.probe(p).is_ok(),
            "{p} fails even outside the sandbox\n{}",
            out.dump()
        );
    }
}

both!(seccomp_applies_to_descendants, |ctx| {
    let sys = fixture("sysprobe");
    let script = format!("{sys} io_uring_setup bpf; ( {sys} unshare-user ) ; true");
    let out = ctx.sl(run_args(&["-r", &fixdir()], &["/bin/sh", "-c", &script]));
    out.expect_code(0);
    out.expect_err("io_uring_setup", "EPERM")
        .expect_err("bpf", "EPERM")
        .expect_err("unshare-user", "EPERM");
});

both!(design_extra_syscalls_denied, |ctx| {
    let probes = ["userfaultfd", "setns", "process_vm_writev", "unshare-net"];
    let out = ctx.sl(fixture_args(&[], "sysprobe", &probes));
    out.expect_code(0);
    for p in probes {
        out.expect_err(p, "EPERM");
    }
});

both!(packet_and_raw_sockets_denied, |ctx| {
    // with network allowed, AF_INET in general works but raw/packet do not
    let probes = [
        "socket-packet",
        "socket-packet-dgram",
        "socket-raw4",
        "socket-raw4-tcp",
        "socket-raw6",
        "socket-unix",
    ];
    let out = ctx.sl(fixture_args(
        &["--net-allow", "127.0.0.1:1"],
        "sysprobe",
        &probes,
    ));
    out.expect_code(0);
    for p in &probes[..5] {
        out.expect_err(p, "EPERM");
    }
    assert!(out.probe("socket-unix").is_ok(), "{}", out.dump());
    // and without any network rule AF_PACKET is still EPERM
    let out = ctx.sl(fixture_args(&[], "sysprobe", &["socket-packet"]));
    out.expect_code(0).expect_err("socket-packet", "EPERM");
});

both!(x32_syscall_kills_with_sigsys, |ctx| {
    // in the main process: the whole workload dies from SIGSYS => 128 + 31
    let out = ctx.sl(fixture_args(&[], "sysprobe", &["getpid", "x32-direct"]));
    assert!(out.probe("getpid").is_ok(), "{}", out.dump());
    assert!(
        !out.stdout.contains("x32-direct OK"),
        "x32 syscall succeeded\n{}",
        out.dump()
    );
    out.expect_code(159);
    // in a forked child: the child is killed by SIGSYS
    let out = ctx.sl(fixture_args(&[], "sysprobe", &["x32"]));
    out.expect_code(0).expect_stdout("x32 SIGNAL 31\n");
});

both!(i386_int80_syscall_denied, |ctx| {
    // Twin: outside the sandbox int 0x80 getpid returns our pid.
    let out = run_cmd(
        {
            let mut c = std::process::Command::new(fixture("sysprobe"));
            c.arg("int80");
            c
        },
        None,
        RUN_LIMIT,
    );
    let outside_works = out.probe("int80").is_ok();
    // Inside: the 32-bit ABI must not be reachable.
    let out = ctx.sl(fixture_args(&[], "sysprobe", &["int80"]));
    out.expect_code(0);
    assert!(
        !out.stdout.contains("int80 OK"),
        "int 0x80 syscall succeeded inside the sandbox (outside works: {outside_works})\n{}",
        out.dump()
    );
    out.expect_stdout("int80 SIGNAL 31\n");
});

#[test]
fn check_reports_kernel_support() {
    let out = Ctx::invoker().sl(["check"]);
    out.expect_code(0);
    let all = format!("{}{}", out.stdout, out.stderr).to_lowercase();
    for needle in [
        "landlock",
        "abi",
        "notif",
        "addfd",
        "sync",
        "dns interceptor namespace",
    ] {
        assert!(
            all.contains(needle),
            "`sandlock check` does not mention {needle:?}\n{}",
            out.dump()
        );
    }
}
