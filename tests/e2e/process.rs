//! Process handling: exit codes, signals, timeout, signal forwarding, the
//! whole tree dying with the supervisor, environment, cwd, capabilities.

use crate::common::*;
use std::collections::BTreeSet;
use std::fs;
use std::process::Stdio;
use std::time::Duration;

both!(exit_code_propagated, |ctx| {
    ctx.sl(run_args(&[], &["/bin/sh", "-c", "exit 3"]))
        .expect_code(3);
    ctx.sl(run_args(&[], &["/bin/sh", "-c", "exit 0"]))
        .expect_code(0);
    ctx.sl(run_args(&[], &["/bin/sh", "-c", "exit 255"]))
        .expect_code(255);
    ctx.sl(run_args(&[], &["/bin/false"])).expect_code(1);
});

both!(killed_by_signal_is_128_plus_n, |ctx| {
    ctx.sl(run_args(&[], &["/bin/sh", "-c", "kill -9 $$"]))
        .expect_code(137);
    ctx.sl(run_args(&[], &["/bin/sh", "-c", "kill -TERM $$"]))
        .expect_code(143);
    ctx.sl(run_args(&[], &["/bin/sh", "-c", "kill -SEGV $$"]))
        .expect_code(139);
});

both!(command_not_found_is_127, |ctx| {
    ctx.sl(run_args(&[], &["/nonexistent/sandlock-e2e-cmd"]))
        .expect_code(127);
    ctx.sl(run_args(&[], &["sandlock-e2e-no-such-command"]))
        .expect_code(127);
});

both!(not_executable_is_126, |ctx| {
    let d = TempDir::new("noexec");
    let script = d.file("script.sh", "#!/bin/sh\necho ran\n");
    ctx.sl(run_args(&["-r", &d.s()], &[&script]))
        .expect_code(126);
    // a directory is not executable either
    ctx.sl(run_args(&["-r", &d.s()], &[&d.s()]))
        .expect_code(126);
    // twin: once executable, it runs
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    ctx.sl(run_args(&["-r", &d.s()], &[&script]))
        .expect_code(0)
        .expect_stdout("ran\n");
});

both!(stdio_passthrough, |ctx| {
    let out = ctx.sl_stdin(run_args(&[], &["/bin/cat"]), b"line one\nline two\n");
    out.expect_code(0).expect_stdout("line one\nline two\n");
    let out = ctx.sl(run_args(
        &[],
        &["/bin/sh", "-c", "echo to-stderr >&2; echo to-stdout"],
    ));
    out.expect_code(0).expect_stdout("to-stdout\n");
    assert!(out.stderr.contains("to-stderr\n"), "{}", out.dump());
});

both!(timeout_kills_tree_with_124, |ctx| {
    let d = TempDir::new("timeout");
    let pidfile = d.join("bg.pid");
    let secs = unique_sleep(60);
    let script = format!("sleep {secs} & echo $! > {pidfile}; wait");
    let out = ctx.sl(run_args(
        &["-w", &d.s(), "-t", "1"],
        &["/bin/sh", "-c", &script],
    ));
    out.expect_code(124);
    assert!(
        out.elapsed < Duration::from_secs(5),
        "timeout took {:?}\n{}",
        out.elapsed,
        out.dump()
    );
    // It ran (its pid is the workload's, in its own pid namespace), and
    // no process of that command line is left on the host.
    let bg = fs::read_to_string(&pidfile).unwrap();
    assert!(bg.trim().parse::<u32>().is_ok(), "{bg:?}");
    assert!(
        wait_until(Duration::from_secs(3), || pids_running(&["sleep", &secs])
            .is_empty()),
        "background sleep {secs} survived the timeout"
    );
    // twin: a command that finishes in time keeps its own exit code
    let out = ctx.sl(run_args(&["--timeout", "10"], &["/bin/sh", "-c", "exit 7"]));
    out.expect_code(7);
    assert!(out.elapsed < Duration::from_secs(5));
});

/// Starts `sh -c script` in the sandbox with -w DIR, waits for DIR/ready.
fn spawn_until_ready(ctx: &Ctx, d: &TempDir, script: &str) -> std::process::Child {
    spawn_with_until_ready(ctx, d, &[], script)
}

/// [`spawn_until_ready`] with more flags.
fn spawn_with_until_ready(
    ctx: &Ctx,
    d: &TempDir,
    flags: &[&str],
    script: &str,
) -> std::process::Child {
    let ready = d.join("ready");
    let dir = d.s();
    let mut all = vec!["-w", dir.as_str()];
    all.extend(flags);
    let child = ctx
        .command(run_args(&all, &["/bin/sh", "-c", script]))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sandlock");
    assert!(
        wait_until(Duration::from_secs(10), || std::path::Path::new(&ready)
            .exists()),
        "workload never became ready"
    );
    child
}

fn forwarding(ctx: Ctx, sig: &str) {
    forwarding_with(ctx, sig, &[]);
}

fn forwarding_with(ctx: Ctx, sig: &str, flags: &[&str]) {
    let d = TempDir::new("sigfwd");
    let marker = d.join("marker");
    let ready = d.join("ready");
    let script = format!(
        "trap 'echo got-{sig} > {marker}; exit 42' {sig}; echo > {ready}; i=0; while [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; exit 9"
    );
    let mut child = spawn_with_until_ready(&ctx, &d, flags, &script);
    send_signal(child.id(), sig);
    let st = wait_limit(&mut child, Duration::from_secs(10))
        .expect("sandlock did not exit after the signal");
    assert_eq!(
        st.code(),
        Some(42),
        "status {st:?}: signal not forwarded to the workload"
    );
    assert_eq!(
        fs::read_to_string(&marker).unwrap_or_default(),
        format!("got-{sig}\n")
    );
}

both!(sigterm_forwarded_to_workload, |ctx| {
    forwarding(ctx, "TERM");
});

both!(sigint_forwarded_to_workload, |ctx| {
    forwarding(ctx, "INT");
});

both!(sighup_forwarded_to_workload, |ctx| {
    forwarding(ctx, "HUP");
});

// With an HTTP rule the proxy's threads run beside the supervisor: they
// were started with Ctrl-C unblocked and took it (the default action
// ended sandlock, status 130) until every thread of a run inherited the
// blocked mask.
both!(sigint_forwarded_to_workload_with_the_proxy_running, |ctx| {
    forwarding_with(
        ctx,
        "INT",
        &[
            "--add-host",
            "a.test:127.0.0.1",
            "--http-allow",
            "GET a.test/*",
        ],
    );
});

both!(supervisor_sigkill_kills_whole_tree, |ctx| {
    let d = TempDir::new("treekill");
    let gc = d.join("gc.pid");
    let ready = d.join("ready");
    let tmp_note = d.join("tmpdir");
    let secs = unique_sleep(120);
    // double fork + setsid: the grandchild leaves the session and is
    // re-parented away from the workload. The workload also fills its
    // private TMPDIR, which must be gone after the kill too.
    let script = format!(
        "mkdir -p $TMPDIR/a/b && echo x > $TMPDIR/a/b/f && ln -s / $TMPDIR/root && echo $TMPDIR > {tmp_note}; \
         (setsid sh -c 'sleep {secs} & echo $! > {gc}; exit 0' &) ; while [ ! -s {gc} ]; do sleep 0.02; done; echo > {ready}; sleep 120"
    );
    let mut child = spawn_until_ready(&ctx, &d, &script);
    let found = pids_running(&["sleep", &secs]);
    assert_eq!(found.len(), 1, "the grandchild sleep {secs}: {found:?}");
    let gc_pid = found[0];
    let tmpdir = std::path::PathBuf::from(fs::read_to_string(&tmp_note).unwrap().trim());
    assert!(tmpdir.join("a/b/f").exists(), "{}", tmpdir.display());
    assert!(
        pid_alive(gc_pid),
        "grandchild {gc_pid} not running before the kill"
    );
    send_signal(child.id(), "KILL");
    let _ = wait_limit(&mut child, Duration::from_secs(5));
    let dead = wait_until(Duration::from_secs(5), || !pid_alive(gc_pid));
    if !dead {
        // do not leak it past the test
        let _ = std::process::Command::new("kill")
            .args(["-9", &gc_pid.to_string()])
            .status();
    }
    assert!(
        dead,
        "double-forked grandchild {gc_pid} survived SIGKILL of sandlock"
    );
    assert!(
        wait_until(Duration::from_secs(5), || !tmpdir.exists()),
        "private TMPDIR {} left behind after SIGKILL of sandlock",
        tmpdir.display()
    );
});

fn env_keys(stdout: &str) -> BTreeSet<String> {
    stdout
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_string()))
        .collect()
}

both!(clean_env_keeps_only_allowed_variables, |ctx| {
    let mut cmd = ctx.command(run_args(
        &["--clean-env", "--env", "KEEP_ME=yes"],
        &["/usr/bin/env"],
    ));
    cmd.env("SECRET_TOKEN", "hunter2").env("OTHER_VAR", "x");
    let out = run_cmd(cmd, None, RUN_LIMIT);
    out.expect_code(0);
    let keys = env_keys(&out.stdout);
    let expected: BTreeSet<String> = ["PATH", "HOME", "TERM", "LANG", "KEEP_ME", "TMPDIR"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(keys, expected, "{}", out.dump());
    assert!(
        out.stdout.lines().any(|l| l == format!("PATH={PATH_ENV}")),
        "{}",
        out.dump()
    );
    assert!(
        out.stdout.lines().any(|l| l == "KEEP_ME=yes"),
        "{}",
        out.dump()
    );
    assert!(!out.stdout.contains("hunter2"), "{}", out.dump());

    // twin: without --clean-env the variable is inherited
    let mut cmd = ctx.command(run_args(&[], &["/usr/bin/env"]));
    cmd.env("SECRET_TOKEN", "hunter2");
    let out = run_cmd(cmd, None, RUN_LIMIT);
    out.expect_code(0);
    assert!(
        out.stdout.lines().any(|l| l == "SECRET_TOKEN=hunter2"),
        "{}",
        out.dump()
    );
});

both!(env_flag_sets_variables, |ctx| {
    let out = ctx.sl(run_args(
        &[
            "--env",
            "A_VAR=1",
            "--env",
            "B_VAR=x=y",
            "--env",
            "EMPTY_VAR=",
        ],
        &["/usr/bin/env"],
    ));
    out.expect_code(0);
    let lines = out.stdout_lines();
    for want in ["A_VAR=1", "B_VAR=x=y", "EMPTY_VAR="] {
        assert!(lines.contains(&want), "missing {want}\n{}", out.dump());
    }
    // --env overrides an inherited value
    let mut cmd = ctx.command(run_args(&["--env", "LANG=C"], &["/usr/bin/env"]));
    cmd.env("LANG", "C.UTF-8");
    let out = run_cmd(cmd, None, RUN_LIMIT);
    let langs: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("LANG="))
        .collect();
    assert_eq!(langs, vec!["LANG=C"], "{}", out.dump());
});

both!(cwd_flag_sets_working_directory, |ctx| {
    let d = TempDir::new("cwd");
    let sub = d.dir("sub", 0o755);
    d.file("sub/here.txt", "cwd-file");
    let out = ctx.sl(run_args(
        &["-r", &d.s(), "--cwd", &sub],
        &["/bin/sh", "-c", "pwd; cat here.txt"],
    ));
    out.expect_code(0)
        .expect_stdout(&format!("{sub}\ncwd-file"));
    // twin: another --cwd gives another directory
    let out = ctx.sl(run_args(&["--cwd", "/usr"], &["/bin/pwd"]));
    out.expect_code(0).expect_stdout("/usr\n");
});

fn caps(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.starts_with("Cap"))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

const ZERO_CAPS: &str = "0000000000000000";

both!(capabilities_dropped, |ctx| {
    let out = ctx.sl(run_args(
        &["-r", "/proc"],
        &["/bin/grep", "^Cap", "/proc/self/status"],
    ));
    out.expect_code(0);
    let c = caps(&out.stdout);
    assert_eq!(c.len(), 5, "{}", out.dump());
    for (k, v) in &c {
        // Only a privileged sandlock can (and must) clear the bounding set.
        if k == "CapBnd" && !ctx.as_root() {
            continue;
        }
        assert_eq!(v, ZERO_CAPS, "{k} not empty\n{}", out.dump());
    }
});

#[test]
fn keep_caps_keeps_capabilities_as_root() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let ctx = Ctx::invoker();
    let out = ctx.sl(run_args(
        &["-r", "/proc", "--keep-caps"],
        &["/bin/grep", "^Cap", "/proc/self/status"],
    ));
    out.expect_code(0);
    let c: std::collections::BTreeMap<_, _> = caps(&out.stdout).into_iter().collect();
    for k in ["CapEff", "CapPrm", "CapBnd"] {
        let v = c.get(k).unwrap_or_else(|| panic!("no {k}\n{}", out.dump()));
        assert_ne!(
            v,
            ZERO_CAPS,
            "{k} empty despite --keep-caps\n{}",
            out.dump()
        );
    }
    // and even with capabilities, the filesystem policy still holds
    let out = ctx.sl(run_args(&["--keep-caps"], &["/bin/cat", "/etc/shadow"]));
    out.expect_code(1);
}
