//! sandlock's own output when nobody reads it (issue 12, item 10): every
//! printing command (`run --show-policy`, `profile show`, `profile list`,
//! `check`, `--help`) whose stdout is a pipe with no reader left stops
//! quietly with status 141 (128 + SIGPIPE, what the shell reports for
//! `cat` or a workload in the same place), never with a panic and a
//! backtrace (it used to abort: status 134). The twin of each reads the
//! pipe and gets the whole output with status 0.

use crate::common::*;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Runs sandlock (as `ctx`) through python3, which first makes its stdout
/// a pipe whose reader is already closed: the first write sandlock makes
/// fails with EPIPE, whatever the timing.
fn with_closed_stdout(ctx: &Ctx, args: &[&str]) -> Out {
    const CLOSE_READER: &str = "import os, sys\n\
        r, w = os.pipe()\n\
        os.close(r)\n\
        os.dup2(w, 1)\n\
        os.close(w)\n\
        os.execv(sys.argv[1], sys.argv[1:])\n";
    let bin = if ctx.drop_to_nobody {
        sandlock_for_nobody()
    } else {
        SANDLOCK.to_string()
    };
    let mut cmd = Command::new(PYTHON);
    cmd.args(["-I", "-c", CLOSE_READER, &bin])
        .args(args)
        .env_clear()
        .env("PATH", PATH_ENV)
        .env("HOME", "/nonexistent")
        .env("LANG", "C.UTF-8")
        .env("RUST_BACKTRACE", "1")
        .current_dir("/");
    if ctx.drop_to_nobody {
        cmd.uid(NOBODY).gid(NOBODY);
    }
    run_cmd(cmd, None, RUN_LIMIT)
}

/// The attack (a closed pipe) and its twin (a pipe that is read) for one
/// printing command: 141 and nothing on stderr, then 0 and `first_line`.
#[track_caller]
fn quiet_on_a_closed_pipe(ctx: &Ctx, args: &[&str], first_line: &str) {
    let closed = with_closed_stdout(ctx, args);
    let c = closed.dump();
    assert_eq!(closed.status.code(), Some(141), "{c}");
    assert!(!closed.stderr.contains("panicked"), "{c}");
    assert_eq!(closed.stderr, "", "a message or a backtrace on stderr\n{c}");

    let read = ctx.sl(args);
    read.expect_code(0);
    assert_eq!(
        read.stdout.lines().next(),
        Some(first_line),
        "{}",
        read.dump()
    );
    assert_eq!(read.stderr, "", "{}", read.dump());
}

both!(show_policy_on_a_closed_pipe, |ctx| {
    quiet_on_a_closed_pipe(
        &ctx,
        &["run", "--show-policy", "--", "true"],
        "[filesystem]",
    );
});

both!(profile_show_on_a_closed_pipe, |ctx| {
    quiet_on_a_closed_pipe(&ctx, &["profile", "show", "python-agent"], "[filesystem]");
});

both!(profile_list_on_a_closed_pipe, |ctx| {
    quiet_on_a_closed_pipe(&ctx, &["profile", "list"], "build\tshipped");
});

both!(check_on_a_closed_pipe, |ctx| {
    let first = ctx
        .sl(["check"])
        .stdout
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    assert!(!first.is_empty(), "sandlock check printed nothing");
    quiet_on_a_closed_pipe(&ctx, &["check"], &first);
});

both!(help_on_a_closed_pipe, |ctx| {
    let first = ctx
        .sl(["--help"])
        .stdout
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    assert!(first.starts_with("The sandlock command line"), "{first:?}");
    quiet_on_a_closed_pipe(&ctx, &["--help"], &first);
});
