//! Filesystem confinement: grants (-r/-w), the default system view, secrets
//! hidden from root, the private TMPDIR, --no-system-view, --show-policy.

use crate::common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;

const SECRET: &str = "TOPSECRET-fs-e2e";

both!(read_outside_grants_denied, |ctx| {
    let d = TempDir::new("fs-read");
    let secret = d.file("secret.txt", SECRET);
    let read = format!("read,{secret}");

    let out = ctx.sl(probe_args(&[], &[&read]));
    out.expect_code(0).expect_err("read", "EACCES");
    assert!(
        !out.stdout.contains(SECRET),
        "secret leaked\n{}",
        out.dump()
    );

    // the same through a plain tool: cat fails with exit 1
    let out = ctx.sl(run_args(&[], &["/bin/cat", &secret]));
    out.expect_code(1);
    assert!(out.stderr.contains("Permission denied"), "{}", out.dump());
    assert!(
        !out.stdout.contains(SECRET),
        "secret leaked\n{}",
        out.dump()
    );

    // twin: granted with -r
    let out = ctx.sl(probe_args(&["-r", &d.s()], &[&read]));
    out.expect_code(0).expect_ok("read", SECRET);
    let out = ctx.sl(run_args(&["-r", &d.s()], &["/bin/cat", &secret]));
    out.expect_code(0).expect_stdout(SECRET);
});

both!(read_via_dotdot_out_of_granted_dir_denied, |ctx| {
    let d = TempDir::new("fs-dotdot");
    d.file("secret.txt", SECRET);
    d.file("granted/ok.txt", "fine");
    let granted = d.dir("granted", 0o755);
    let escape = format!("read,{granted}/../secret.txt");
    let inside = format!("read,{granted}/ok.txt");
    let out = ctx.sl(probe_args(&["-r", &granted], &[&escape, &inside]));
    out.expect_code(0);
    assert_eq!(
        out.probe_nth("read", 0),
        Err("EACCES".into()),
        "{}",
        out.dump()
    );
    assert_eq!(
        out.probe_nth("read", 1),
        Ok("fine".into()),
        "{}",
        out.dump()
    );
});

both!(read_via_symlink_in_writable_dir_denied, |ctx| {
    let d = TempDir::new("fs-symlink");
    let secret = d.file("secret.txt", SECRET);
    let w = d.dir("w", 0o777);
    d.file("w/ok.txt", "fine");
    std::os::unix::fs::symlink(&secret, d.join("w/to-secret")).unwrap();
    std::os::unix::fs::symlink(d.join("w/ok.txt"), d.join("w/to-ok")).unwrap();
    let bad = format!("read,{w}/to-secret");
    let good = format!("read,{w}/to-ok");
    let out = ctx.sl(probe_args(&["-w", &w], &[&bad, &good]));
    out.expect_code(0);
    assert_eq!(
        out.probe_nth("read", 0),
        Err("EACCES".into()),
        "{}",
        out.dump()
    );
    assert_eq!(
        out.probe_nth("read", 1),
        Ok("fine".into()),
        "{}",
        out.dump()
    );

    // a symlink the workload makes itself in its TMPDIR does not help either
    let script = format!("ln -s {secret} \"$TMPDIR/s\" && cat \"$TMPDIR/s\"; echo rc=$?");
    let out = ctx.sl(run_args(&[], &["/bin/sh", "-c", &script]));
    out.expect_code(0);
    assert!(out.stdout.ends_with("rc=1\n"), "{}", out.dump());
    assert!(!out.stdout.contains(SECRET), "{}", out.dump());
});

both!(write_under_read_grant_denied, |ctx| {
    let d = TempDir::new("fs-write");
    let existing = d.file("existing.txt", "original");
    fs::set_permissions(&existing, fs::Permissions::from_mode(0o666)).unwrap();
    let new = d.join("new.txt");
    let w_new = format!("write,{new},created");
    let w_existing = format!("write,{existing},changed");

    let out = ctx.sl(probe_args(&["-r", &d.s()], &[&w_new, &w_existing]));
    out.expect_code(0);
    assert_eq!(
        out.probe_nth("write", 0),
        Err("EACCES".into()),
        "{}",
        out.dump()
    );
    assert_eq!(
        out.probe_nth("write", 1),
        Err("EACCES".into()),
        "{}",
        out.dump()
    );
    assert!(
        !std::path::Path::new(&new).exists(),
        "file created under -r"
    );
    assert_eq!(fs::read_to_string(&existing).unwrap(), "original");

    // twin: -w allows both
    let out = ctx.sl(probe_args(&["-w", &d.s()], &[&w_new, &w_existing]));
    out.expect_code(0);
    assert_eq!(out.probe_nth("write", 0), Ok("".into()), "{}", out.dump());
    assert_eq!(out.probe_nth("write", 1), Ok("".into()), "{}", out.dump());
    assert_eq!(fs::read_to_string(&new).unwrap(), "created");
    assert_eq!(fs::read_to_string(&existing).unwrap(), "changed");
});

both!(exec_outside_grants_denied, |ctx| {
    let d = TempDir::new("fs-exec");
    let hello = d.join("hello");
    fs::copy(fixture("hello"), &hello).unwrap();
    fs::set_permissions(&hello, fs::Permissions::from_mode(0o755)).unwrap();
    let in_sh = format!("{hello}; echo rc=$?");

    // direct exec by sandlock: not executable => 126
    let out = ctx.sl(run_args(&[], &[&hello]));
    out.expect_code(126);
    assert!(!out.stdout.contains("hello from fixture"), "{}", out.dump());
    // exec from a shell inside the sandbox: EACCES => sh reports 126
    let out = ctx.sl(run_args(&[], &["/bin/sh", "-c", &in_sh]));
    out.expect_code(0).expect_stdout("rc=126\n");
    assert!(out.stderr.contains("Permission denied"), "{}", out.dump());

    // twin: -r grants read+exec
    let out = ctx.sl(run_args(&["-r", &d.s()], &[&hello]));
    out.expect_code(0).expect_stdout("hello from fixture\n");
    let out = ctx.sl(run_args(&["-r", &d.s()], &["/bin/sh", "-c", &in_sh]));
    out.expect_code(0)
        .expect_stdout("hello from fixture\nrc=0\n");
});

both!(default_view_runs_python_and_sh, |ctx| {
    let out = ctx.sl(run_args(&[], &["python3", "-c", "print(1)"]));
    out.expect_code(0).expect_stdout("1\n");
    let out = ctx.sl(run_args(&[], &["sh", "-c", "echo ok"]));
    out.expect_code(0).expect_stdout("ok\n");
});

both!(default_view_denies_unlisted_paths, |ctx| {
    let host_tmp_file = format!(
        "/tmp/sandlock-e2e-escape-{}-{}",
        std::process::id(),
        ctx.uid()
    );
    let _ = fs::remove_file(&host_tmp_file);
    let w_tmp = format!("write,{host_tmp_file},x");
    let out = ctx.sl(probe_args(
        &[],
        &[
            "listdir,/home",
            "listdir,/root",
            "listdir,/tmp",
            "listdir,/var",
            "listdir,/work",
            &w_tmp,
            // twins: the system view itself is readable
            "read,/etc/passwd",
            "listdir,/usr/lib",
        ],
    ));
    let escaped = std::path::Path::new(&host_tmp_file).exists();
    let _ = fs::remove_file(&host_tmp_file);
    assert!(!escaped, "wrote into /tmp\n{}", out.dump());
    out.expect_code(0);
    for (i, _) in ["/home", "/root", "/tmp", "/var", "/work"]
        .iter()
        .enumerate()
    {
        assert_eq!(
            out.probe_nth("listdir", i),
            Err("EACCES".into()),
            "{}",
            out.dump()
        );
    }
    out.expect_err("write", "EACCES");
    let passwd = out
        .probe_nth("read", 0)
        .unwrap_or_else(|e| panic!("{e}\n{}", out.dump()));
    assert!(passwd.starts_with("root:x:0:0:"), "{}", out.dump());
    assert!(out.probe_nth("listdir", 5).is_ok(), "{}", out.dump());
});

both!(default_view_system_dirs_listable, |ctx| {
    // The default view grants read on /etc (minus secrets), /usr, /bin...:
    // listing those directories (opendir, `ls /etc`) must work. Secrets stay
    // unreadable (see etc_shadow_unreadable_as_root).
    let out = ctx.sl(probe_args(
        &[],
        &["listdir,/etc", "listdir,/usr", "listdir,/usr/bin"],
    ));
    out.expect_code(0);
    for i in 0..3 {
        assert!(out.probe_nth("listdir", i).is_ok(), "{}", out.dump());
    }
    let out = ctx.sl(run_args(&[], &["/bin/ls", "/etc/passwd", "/etc"]));
    out.expect_code(0);
    assert!(out.stdout.lines().any(|l| l == "passwd"), "{}", out.dump());
});

#[test]
fn etc_shadow_unreadable_as_root() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let ctx = Ctx::invoker();
    // outside the sandbox root can read it: the denial below is the sandbox's
    assert!(fs::read_to_string("/etc/shadow").is_ok());
    let mut ops = vec![
        "read,/etc/shadow",
        "read,/etc/gshadow",
        "read,/etc/../etc/shadow",
        "read,//etc/shadow",
        "read,/etc/passwd",
    ];
    // Secret contents are never readable; their names may be listed (the
    // system view grants listing on /etc, see README).
    let ssl_key = fs::read_dir("/etc/ssl/private")
        .ok()
        .and_then(|mut d| d.find_map(|e| e.ok().filter(|e| e.path().is_file())))
        .map(|e| format!("read,{}", e.path().display()));
    if let Some(op) = &ssl_key {
        ops.push(op);
    }
    let out = ctx.sl(probe_args(&[], &ops));
    out.expect_code(0);
    for i in 0..4 {
        assert_eq!(
            out.probe_nth("read", i),
            Err("EACCES".into()),
            "{}",
            out.dump()
        );
    }
    assert!(
        !out.stdout.contains("root:*:") && !out.stdout.contains("root:$"),
        "{}",
        out.dump()
    );
    let passwd = out
        .probe_nth("read", 4)
        .unwrap_or_else(|e| panic!("{e}\n{}", out.dump()));
    assert!(passwd.starts_with("root:x:0:0:"), "{}", out.dump());
    if ssl_key.is_some() {
        assert_eq!(
            out.probe_nth("read", 5),
            Err("EACCES".into()),
            "{}",
            out.dump()
        );
    }

    let out = ctx.sl(run_args(&[], &["/bin/cat", "/etc/shadow"]));
    out.expect_code(1);
    assert!(out.stderr.contains("Permission denied"), "{}", out.dump());

    // via a symlink the workload plants in its TMPDIR
    let out = ctx.sl(run_args(
        &[],
        &[
            "/bin/sh",
            "-c",
            "ln -s /etc/shadow \"$TMPDIR/s\" && cat \"$TMPDIR/s\"; echo rc=$?",
        ],
    ));
    out.expect_code(0);
    assert!(out.stdout.ends_with("rc=1\n"), "{}", out.dump());
    assert!(!out.stdout.contains("root:"), "{}", out.dump());
}

both!(tmpdir_private_writable_and_removed, |ctx| {
    let out = ctx.sl(run_args(
        &[],
        &[
            "/bin/sh",
            "-c",
            "echo data > \"$TMPDIR/f\" && cat \"$TMPDIR/f\" && echo \"$TMPDIR\"",
        ],
    ));
    out.expect_code(0);
    let lines = out.stdout_lines();
    assert_eq!(lines.len(), 2, "{}", out.dump());
    assert_eq!(lines[0], "data", "{}", out.dump());
    let tmpdir = lines[1];
    assert!(
        tmpdir.starts_with('/') && tmpdir != "/tmp" && tmpdir != "/tmp/",
        "{}",
        out.dump()
    );
    assert!(
        !std::path::Path::new(tmpdir).exists(),
        "TMPDIR {tmpdir} still exists after the run\n{}",
        out.dump()
    );
});

both!(dev_nodes_usable_in_default_view, |ctx| {
    let out = ctx.sl(run_args(
        &[],
        &[
            "/bin/sh",
            "-c",
            "echo x > /dev/null && head -c 4 /dev/zero | od -An -tx1 | tr -d ' ' && head -c 8 /dev/urandom | wc -c && head -c 8 /dev/random | wc -c",
        ],
    ));
    out.expect_code(0).expect_stdout("00000000\n8\n8\n");
});

both!(no_system_view_starts_from_nothing, |ctx| {
    let probe = fixture("staticprobe");
    let fx_file = format!("{}/probe.py", fixdir());
    let out = ctx.sl(fixture_args(
        &["--no-system-view"],
        "staticprobe",
        &["/etc/passwd", "/usr/bin/python3", &fx_file],
    ));
    out.expect_code(0);
    out.expect_err("/etc/passwd", "EACCES")
        .expect_err("/usr/bin/python3", "EACCES");
    assert!(out.probe(&fx_file).is_ok(), "{}", out.dump());
    // nothing executable either
    let out = ctx.sl(run_args(&["--no-system-view"], &["/bin/true"]));
    out.expect_code(126);

    // twin: the default view grants /etc and /usr
    let out = ctx.sl(run_args(
        &["-r", &fixdir()],
        &[&probe, "/etc/passwd", "/usr/bin/python3"],
    ));
    out.expect_code(0);
    let passwd = out
        .probe("/etc/passwd")
        .unwrap_or_else(|e| panic!("{e}\n{}", out.dump()));
    assert!(passwd.starts_with("root:x:0:0:"), "{}", out.dump());
    assert!(out.probe("/usr/bin/python3").is_ok(), "{}", out.dump());
    let out = ctx.sl(run_args(&[], &["/bin/true"]));
    out.expect_code(0);
});

#[test]
fn show_policy_prints_and_exits_zero() {
    let ctx = Ctx::invoker();
    let d = TempDir::new("fs-showpolicy");
    let r = d.dir("readonly-grant", 0o755);
    let w = d.dir("writable-grant", 0o777);
    let marker = format!("{w}/marker");
    let touch = format!("touch {marker}");
    let out = ctx.sl(run_args(
        &[
            "--show-policy",
            "-r",
            &r,
            "-w",
            &w,
            "--net-allow",
            "127.0.0.1:8080",
        ],
        &["/bin/sh", "-c", &touch],
    ));
    out.expect_code(0);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        all.contains(&r),
        "policy does not mention {r}\n{}",
        out.dump()
    );
    assert!(
        all.contains(&w),
        "policy does not mention {w}\n{}",
        out.dump()
    );
    assert!(
        all.contains("127.0.0.1"),
        "policy does not mention the net rule\n{}",
        out.dump()
    );
    assert!(
        !std::path::Path::new(&marker).exists(),
        "--show-policy ran the command"
    );
}

both!(renames_across_directories_of_a_write_grant_work, |ctx| {
    // Landlock refuses to move a file to another directory (EXDEV) unless
    // every layer grants it: in TMPDIR, in the private HOME and in a -w
    // grant a file and a directory move anywhere within.
    let d = TempDir::new("rename");
    let script = "set -e; for base in \"$TMPDIR\" \"$HOME\" \"$1\"; do \
        mkdir -p \"$base/a/sub\" \"$base/b\"; echo x > \"$base/a/f\"; \
        /usr/bin/python3 -c 'import os, sys; b = sys.argv[1]; os.rename(b + \"/a/f\", b + \"/b/f\"); os.rename(b + \"/a/sub\", b + \"/b/sub\"); print(\"moved\")' \"$base\"; \
        done";
    let out = ctx.sl(run_args(
        &["-w", &d.s()],
        &["/bin/sh", "-c", script, "sh", &d.s()],
    ));
    out.expect_code(0).expect_stdout("moved\nmoved\nmoved\n");
    assert!(d.path().join("b/sub").is_dir() && d.path().join("b/f").is_file());
    // twin: out of the write grant into a read-only one, the kernel refuses
    let ro = TempDir::new("rename-ro");
    std::fs::write(d.path().join("g"), "x").unwrap();
    let out = ctx.sl(run_args(
        &["-w", &d.s(), "-r", &ro.s()],
        &[
            "/usr/bin/python3",
            "-c",
            "import os, sys\ntry:\n    os.rename(sys.argv[1], sys.argv[2])\nexcept OSError as e:\n    print(e.strerror)",
            &d.join("g"),
            &ro.join("g"),
        ],
    ));
    out.expect_code(0);
    assert!(
        out.stdout == "Permission denied\n" || out.stdout == "Invalid cross-device link\n",
        "{}",
        out.dump()
    );
    assert!(d.path().join("g").exists());
});
