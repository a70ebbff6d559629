//! Sources the workload could read itself (issue 12, item 7): a `file:`
//! source at or below a path the sandbox may read (a `-r` grant, through a
//! symlink too, or the system view's `/etc`) and an `fd:` source whose
//! file the workload also gets as its stdin are refused at start, with a
//! message naming `--secret` and the declaration; nothing runs. Each twin
//! has the same source out of the workload's reach, and the workload runs
//! with the placeholder.

use super::*;
use std::os::unix::fs::PermissionsExt;

/// The refusal sandlock prints for secret TOKEN declared as `spec` with
/// source `source`, readable because of `why`.
fn refusal(spec: &str, source: &str, why: &str) -> String {
    format!(
        "sandlock: invalid value '{spec}' for '--secret': secret TOKEN: {source} can be \
         read by the workload itself: {why}\n"
    )
}

/// `sandlock run ARGS --add-host h.test:127.0.0.9 -- sh -c 'echo "ran $TOKEN"'`.
fn echo_token(ctx: &Ctx, args: &[&str]) -> Out {
    let mut a = args.to_vec();
    a.extend(["--add-host", "h.test:127.0.0.9"]);
    ctx.sl(run_args(&a, &["/bin/sh", "-c", "echo \"ran $TOKEN\""]))
}

/// Asserts the run was refused with exactly `message`, before anything ran.
#[track_caller]
fn assert_refused(out: &Out, message: &str, value: &str) {
    let c = out.dump();
    out.expect_code(2);
    assert_eq!(out.stderr, message, "{c}");
    assert_eq!(out.stdout, "", "the workload ran\n{c}");
    assert!(!out.stderr.contains(value), "{c}");
}

/// Asserts the workload ran and saw a placeholder, not `value`.
#[track_caller]
fn assert_ran_with_placeholder(out: &Out, value: &str) {
    let c = out.dump();
    out.expect_code(0);
    let token = out
        .stdout
        .strip_prefix("ran ")
        .unwrap_or_else(|| panic!("{c}"))
        .trim_end();
    assert!(!token.is_empty() && token != value, "{c}");
    assert!(!out.stdout.contains(value), "{c}");
}

both!(file_source_below_a_read_grant_is_refused, |ctx| {
    let d = TempDir::new("secrets-reach");
    let value = long_value();
    let key = d.file("keys/token", &format!("{value}\n"));
    let keys = d.join("keys");
    d.dir("other", 0o755);
    let spec = format!("TOKEN=file:{key}@h.test");
    let source = format!("file:{key}");

    // the directory holding the file is granted
    let out = echo_token(&ctx, &["--secret", &spec, "-r", &keys]);
    let why = format!(
        "it is below {keys}, granted by --fs-read; keep the secret outside every path \
         the sandbox may read"
    );
    assert_refused(&out, &refusal(&spec, &source, &why), &value);

    // granted through a symlink to that directory
    let alias = d.join("alias");
    std::os::unix::fs::symlink(&keys, &alias).unwrap();
    let out = echo_token(&ctx, &["--secret", &spec, "-r", &alias]);
    let why = format!(
        "it is below {alias}, granted by --fs-read; keep the secret outside every path \
         the sandbox may read"
    );
    assert_refused(&out, &refusal(&spec, &source, &why), &value);

    // twin: a sibling directory is granted, not the one with the file
    let out = echo_token(&ctx, &["--secret", &spec, "-r", &d.join("other")]);
    assert_ran_with_placeholder(&out, &value);
});

both!(file_source_in_the_system_view_is_refused, |ctx| {
    if !is_root() {
        eprintln!("skipped: creating a file in /etc needs root");
        return;
    }
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = fs::remove_file(&self.0);
        }
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let path = format!(
        "/etc/sandlock-e2e-token-{}-{}-{nanos:x}",
        ctx.uid(),
        std::process::id()
    );
    let _remove = Remove(path.clone());
    let value = long_value();
    fs::write(&path, format!("{value}\n")).unwrap();
    // readable by sandlock's user, whichever it is
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let spec = format!("TOKEN=file:{path}@h.test");

    let out = echo_token(&ctx, &["--secret", &spec]);
    // as root /etc is granted entry by entry (the file is its own grant);
    // as 65534, with one rule
    let root = if ctx.as_root() { path.as_str() } else { "/etc" };
    let why = format!(
        "it is below {root}, granted by the system view; keep the secret outside every \
         path the sandbox may read"
    );
    assert_refused(&out, &refusal(&spec, &format!("file:{path}"), &why), &value);

    // twin: no system view; the workload (static: it needs no /usr) runs
    // and cannot read the file
    let out = ctx.sl(fixture_args(
        &[
            "--no-system-view",
            "--secret",
            &spec,
            "--add-host",
            "h.test:127.0.0.9",
        ],
        "staticprobe",
        &[&path],
    ));
    out.expect_code(0);
    out.expect_err(&path, "EACCES");
    assert!(!out.stdout.contains(&value), "{}", out.dump());

    // and as root, a file only root may read is out of the system view
    // (item 8), so the same declaration starts
    if ctx.as_root() {
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let out = echo_token(&ctx, &["--secret", &spec]);
        assert_ran_with_placeholder(&out, &value);
    }
});

/// sandlock (as `ctx`) started by `sh -c 'REDIRECTIONS; exec "$@"' FILE
/// SANDLOCK ARGS...`, so the redirections can open FILE ("$0").
fn with_redirections(ctx: &Ctx, redirections: &str, file: &str, args: &[String]) -> Out {
    let script = format!("{redirections}; exec \"$@\"");
    let mut cmd = ctx.wrapper("/bin/sh");
    cmd.args(["-c", &script, file, &ctx.sandlock_bin()])
        .args(args);
    run_cmd(cmd, None, RUN_LIMIT)
}

both!(fd_source_on_the_workloads_stdin_file_is_refused, |ctx| {
    let d = TempDir::new("secrets-reach-fd");
    let value = long_value();
    let key = d.file("token", &format!("{value}\n"));
    let spec = "TOKEN=fd:3@h.test";
    // the workload only echoes the placeholder, then cats its stdin: with
    // the file on stdin too, that would print the value
    let args = sv(&[
        "run",
        "--secret",
        spec,
        "--add-host",
        "h.test:127.0.0.9",
        "--",
        "/bin/sh",
        "-c",
        "echo \"ran $TOKEN\"; cat",
    ]);

    // fd 3 and stdin both opened on the file
    let out = with_redirections(&ctx, r#"exec 3<"$0" <"$0""#, &key, &args);
    let why = "it is the file the workload gets as its stdin, which it can read again";
    assert_refused(&out, &refusal(spec, "fd:3", why), &value);

    // twin: the file on fd 3 only (stdin is /dev/null)
    let out = with_redirections(&ctx, r#"exec 3<"$0""#, &key, &args);
    assert_ran_with_placeholder(&out, &value);
});
