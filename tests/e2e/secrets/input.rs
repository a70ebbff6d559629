//! Sources (file, descriptor, short form) and malformed specs.

use super::*;

// ---------------------------------------------------------------------------
// Sources
// ---------------------------------------------------------------------------

/// A Command running sandlock (as `ctx` would) with `file` open on
/// descriptor 3: `sh -c 'exec 3<"$0"; exec "$@"' FILE SANDLOCK ARGS...`.
fn with_fd3(ctx: &Ctx, file: &str, args: &[String]) -> Command {
    let mut cmd = ctx.wrapper("/bin/sh");
    cmd.args(["-c", r#"exec 3<"$0"; exec "$@""#, file, &ctx.sandlock_bin()])
        .args(args);
    cmd
}

both!(file_fd_and_short_form_sources, |ctx| {
    let s = Sec::tls("127.0.0.1");
    let file_value = long_value();
    let fd_value = long_value();
    // outside the sandbox's grants: a file of the test's own
    let src = TempDir::new("secrets-src");
    // one trailing newline is not part of the value
    let file = src.file("file-secret", &format!("{file_value}\n"));
    let fdfile = src.file("fd-secret", &format!("{fd_value}\r\n"));
    let mut flags = s.bare(&[
        "--add-host",
        "api.test:127.0.0.1",
        // the short form reads sandlock's TOKEN; *.api.test covers the apex
        "--secret",
        "TOKEN@*.api.test",
        "--secret",
        &format!("FROMFILE=file:{file}@api.test"),
        "--secret",
        "FROMFD=fd:3@api.test",
    ]);
    let script = format!(
        r#"{PROLOGUE}if {{ true <&3; }} 2>/dev/null; then echo FD3 open; else echo FD3 closed; fi
if cat "$1" >/dev/null 2>&1; then echo FILE readable; else echo FILE unreadable; fi
c -H "Authorization: Bearer $TOKEN" -H "X-File: $FROMFILE" -H "X-Fd: $FROMFD" "$2"
"#
    );
    flags.push("--".into());
    flags.extend(sv(&[
        "/bin/sh",
        "-c",
        &script,
        "sh",
        &file,
        &s.url("api.test", "/echo/sources"),
    ]));
    let mut args = sv(&["run"]);
    args.extend(flags);
    let mut cmd = with_fd3(&ctx, &fdfile, &args);
    cmd.env("TOKEN", &s.value);
    let out = run_cmd(cmd, None, RUN_LIMIT);
    let c = format!(
        "values {:?} {:?} {:?}\n{}\n{}",
        s.value,
        file_value,
        fd_value,
        out.dump(),
        s.up.dump()
    );
    out.expect_code(0);
    assert_eq!(rc_codes(&out), vec!["0 200"], "{c}");
    let p = placeholder(&out, &s.value, &c);
    assert_eq!(p.len(), s.value.len(), "{c}");
    assert!(
        out.stdout.lines().any(|l| l == "FD3 closed"),
        "the secret's descriptor reached the workload\n{c}"
    );
    assert!(out.stdout.lines().any(|l| l == "FILE unreadable"), "{c}");
    let r = s.request("/echo/sources", &c);
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {}", s.value).as_str()),
        "{c}"
    );
    assert_eq!(r.header("x-file"), Some(file_value.as_str()), "{c}");
    assert_eq!(r.header("x-fd"), Some(fd_value.as_str()), "{c}");
    for v in [&s.value, &file_value, &fd_value] {
        assert_no_value_in_output(&out, v, &c);
    }
});

// ---------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------

#[test]
fn malformed_secrets_are_refused_without_showing_values() {
    let (val, dup_a, dup_b) = (long_value(), long_value(), long_value());
    let (nl_a, nl_b) = (
        format!("first{}", random_alnum(20)),
        format!("second{}", random_alnum(20)),
    );
    let (nl, cr) = (format!("{nl_a}\n{nl_b}"), format!("{nl_a}\r{nl_b}"));
    let pasted = format!("ghp_{}", random_alnum(30));
    let (val, dup_a, dup_b, nl_a, nl_b, nl, cr, pasted) = (
        val.as_str(),
        dup_a.as_str(),
        dup_b.as_str(),
        nl_a.as_str(),
        nl_b.as_str(),
        nl.as_str(),
        cr.as_str(),
        pasted.as_str(),
    );
    let pasted_spec = format!("PASTED={pasted}@h.test");
    let d = TempDir::new("secrets-bad-src");
    let long = random_alnum(64 * 1024 + 1);
    let long_file = d.file("long", &long);
    let long_spec = format!("TOOLONG=file:{long_file}@h.test");
    let empty_file = d.file("empty", "\n");
    let empty_file_spec = format!("EMPTYFILE=file:{empty_file}@h.test");
    let long_head = &long[..40];
    type Case<'a> = (
        Vec<&'a str>,
        Vec<(&'a str, &'a str)>,
        &'a str,
        &'a str,
        Vec<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            vec!["--secret", "NOHOSTS"],
            vec![("NOHOSTS", val)],
            "--secret",
            "NOHOSTS",
            vec![val],
        ),
        (
            vec!["--secret", "EMPTYENV=env:@h.test"],
            vec![],
            "--secret",
            "EMPTYENV",
            vec![],
        ),
        (
            vec!["--secret", "BADSCHEME=bad:thing@h.test"],
            vec![],
            "--secret",
            "BADSCHEME",
            vec!["bad:thing"],
        ),
        (
            vec!["--secret", &pasted_spec],
            vec![],
            "--secret",
            "PASTED",
            vec![pasted],
        ),
        (
            vec!["--secret", "NOFILE=file:/nonexistent-sandlock-e2e@h.test"],
            vec![],
            "--secret",
            "NOFILE",
            vec![],
        ),
        (
            vec!["--secret", "UNSET=env:SANDLOCK_E2E_UNSET_VAR@h.test"],
            vec![],
            "--secret",
            "UNSET",
            vec![],
        ),
        (
            vec!["--secret", "NEWLINE=env:NL_VALUE@h.test"],
            vec![("NL_VALUE", nl)],
            "--secret",
            "NEWLINE",
            vec![nl_a, nl_b],
        ),
        (
            vec!["--secret", "CRETURN=env:CR_VALUE@h.test"],
            vec![("CR_VALUE", cr)],
            "--secret",
            "CRETURN",
            vec![nl_a, nl_b],
        ),
        (
            vec!["--secret", "EMPTYVAL=env:EMPTY_VALUE@h.test"],
            vec![("EMPTY_VALUE", "")],
            "--secret",
            "EMPTYVAL",
            vec![],
        ),
        (
            vec!["--secret", &empty_file_spec],
            vec![],
            "--secret",
            "EMPTYFILE",
            vec![],
        ),
        (
            vec!["--secret", &long_spec],
            vec![],
            "--secret",
            "TOOLONG",
            vec![long_head],
        ),
        (
            vec![
                "--secret",
                "DUP=env:DUP_A@h.test",
                "--secret",
                "DUP=env:DUP_B@h.test",
            ],
            vec![("DUP_A", dup_a), ("DUP_B", dup_b)],
            "--secret",
            "DUP",
            vec![dup_a, dup_b],
        ),
        (
            vec!["--secret", "ANYHOST=env:GOOD_VALUE@*"],
            vec![("GOOD_VALUE", val)],
            "--secret",
            "ANYHOST",
            vec![val],
        ),
        (
            vec!["--secret", "ANADDR=env:GOOD_VALUE@127.0.0.1"],
            vec![("GOOD_VALUE", val)],
            "--secret",
            "ANADDR",
            vec![val],
        ),
        (
            vec!["--secret", "STDIN=fd:0@h.test"],
            vec![],
            "--secret",
            "STDIN",
            vec![],
        ),
        (
            vec!["--secret", "NOFD=fd:77@h.test"],
            vec![],
            "--secret",
            "NOFD",
            vec![],
        ),
        (
            vec![
                "--secret",
                "GOOD=env:GOOD_VALUE@h.test",
                "--secret-headers",
                "NOSUCH=authorization",
            ],
            vec![("GOOD_VALUE", val)],
            "--secret-headers",
            "NOSUCH",
            vec![val],
        ),
    ];
    let mut failures = Vec::new();
    for (args, env, flag, name, hidden) in &cases {
        let r = std::panic::catch_unwind(|| refused(args, env, flag, name, hidden));
        if let Err(e) = r {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{}: {msg}", args.join(" ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );

    // twin: well-formed secrets of each form start the workload, which
    // sees placeholders only
    let good_file = d.file("good", &format!("{val}\n"));
    let out = Ctx::invoker().sl_env(
        run_args(
            &[
                "--secret",
                "GOOD=env:GOOD_VALUE@h.test",
                "--secret",
                &format!("GOODFILE=file:{good_file}@*.sl.test,h.test"),
                "--secret",
                "SHORTFORM@h.test;plaintext",
                "--secret-headers",
                "GOOD=authorization,x-api-key",
                "--add-host",
                "h.test:127.0.0.9",
            ],
            &["/bin/sh", "-c", "echo \"ran $GOOD $GOODFILE $SHORTFORM\""],
        ),
        &[("GOOD_VALUE", val), ("SHORTFORM", dup_a)],
    );
    let c = out.dump();
    out.expect_code(0);
    assert!(out.stdout.starts_with("ran "), "{c}");
    let words: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(words.len(), 4, "{c}");
    assert!(
        !out.stdout.contains(val) && !out.stdout.contains(dup_a),
        "{c}"
    );
}
