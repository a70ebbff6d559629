//! Copy-on-write workspaces, continued: a layer in use, a run or an apply
//! killed part-way, exact JSON and quiet summaries, where layers go, bad
//! values, and read-only directories and unreadable files.

use super::*;

// ---------------------------------------------------------------------------
// A layer in use, a run or an apply killed part-way
// ---------------------------------------------------------------------------

both!(a_layer_in_use_is_neither_applied_nor_dropped, |ctx| {
    let p = Project::new(ctx, "cowbusy");
    let mut tries: Vec<Out> = Vec::new();
    let out = run_with_host_action(
        &p,
        &[],
        "echo two > a.txt && touch started && sleep 1",
        || {
            let layer = p.layer();
            tries.push(p.sl(&cow(&["apply", &layer])));
            tries.push(p.sl(&cow(&["drop", &layer])));
            assert!(Path::new(&layer).join("0/upper/a.txt").exists());
            assert_eq!(
                fs::read_to_string(p.tmp.join("proj/a.txt")).unwrap(),
                "one\n",
                "applied while the workload ran"
            );
        },
    );
    for t in &tries {
        t.expect_code(2);
        assert!(
            t.stderr.contains("in use by another sandlock"),
            "{}",
            t.dump()
        );
    }
    // Twin: once the run ends its own commit goes through.
    out.expect_code(0);
    assert_eq!(
        fs::read_to_string(p.tmp.join("proj/a.txt")).unwrap(),
        "two\n"
    );
    assert_eq!(p.layers(), Vec::<PathBuf>::new());
});

both!(a_killed_run_leaves_a_layer_that_apply_finishes, |ctx| {
    let p = Project::new(ctx, "cowkilled");
    let sleep = unique_sleep(30);
    let script = format!("echo k > k.txt && touch started && exec sleep {sleep}");
    let mut cmd = p.command(&p.run_args(&[], &script));
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let seen = wait_until(Duration::from_secs(20), || started(&p));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(seen, "the workload never wrote");
    // The workload dies with its sandbox: nothing writes the layer on.
    assert!(
        wait_until(Duration::from_secs(5), || pids_running(&["sleep", &sleep])
            .is_empty()),
        "the workload outlived a SIGKILLed sandlock"
    );
    assert!(!p.tmp.path().join("proj/k.txt").exists());
    let layer = p.layer();
    // The lock goes with the last process of the run; the apply then
    // finishes the job.
    let mut out = p.sl(&cow(&["apply", &layer]));
    for _ in 0..50 {
        if !out.stderr.contains("in use") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        out = p.sl(&cow(&["apply", &layer]));
    }
    out.expect_code(0);
    assert_eq!(fs::read_to_string(p.tmp.join("proj/k.txt")).unwrap(), "k\n");
    assert!(!Path::new(&layer).exists());
});

both!(an_apply_killed_mid_copy_leaves_the_old_file_whole, |ctx| {
    let p = Project::new(ctx, "cowkillold");
    const MIB: usize = 1 << 20;
    const NEW: usize = 256;
    // The host's big file: 4 MiB of 'o'.
    let big = p.tmp.path().join("proj/big");
    fs::write(&big, vec![b'o'; 4 * MIB]).unwrap();
    p.own();
    // The workload's: a byte pattern per MiB, so a half-copied file
    // cannot pass; and z.txt, applied after big (names in order).
    let script = format!(
        "/usr/bin/python3 -c \"with open('big', 'wb') as f:\n    for i in range({NEW}): f.write(bytes([i]) * {MIB})\" && echo z > z.txt"
    );
    p.run(&["--on-exit", "keep"], &script).expect_code(0);
    let layer = p.layer();
    let dir = PathBuf::from(p.dir());
    let mut apply = p.command(&cow(&["apply", &layer]));
    apply.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = apply.spawn().unwrap();
    // Killed while the temporary copy is part-written.
    let caught = wait_until(Duration::from_secs(30), || {
        temps(&dir)
            .first()
            .and_then(|t| fs::metadata(t).ok())
            .is_some_and(|m| m.len() > 0 && m.len() < (NEW * MIB) as u64)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(caught, "never saw the temporary file part-written");
    let old = fs::read(&big).unwrap();
    assert!(
        old.len() == 4 * MIB && old.iter().all(|&b| b == b'o'),
        "the host's file changed before its copy was whole ({} bytes)",
        old.len()
    );
    assert!(!dir.join("z.txt").exists());
    // The rerun finishes: the new bytes exactly, no temporary file left.
    let out = p.sl(&cow(&["apply", &layer]));
    out.expect_code(0);
    assert!(out.stderr.lines().any(|l| l == "  M big"), "{}", out.dump());
    let new = fs::read(&big).unwrap();
    assert_eq!(new.len(), NEW * MIB);
    assert!(new
        .chunks(MIB)
        .enumerate()
        .all(|(i, c)| c.iter().all(|&b| b == i as u8)));
    assert_eq!(fs::read_to_string(dir.join("z.txt")).unwrap(), "z\n");
    assert!(temps(&dir).is_empty(), "{:?}", temps(&dir));
    assert!(!Path::new(&layer).exists());
});

// ---------------------------------------------------------------------------
// Summaries
// ---------------------------------------------------------------------------

both!(json_reports_each_directory_exactly, |ctx| {
    let p = Project::new(ctx, "cowjson2");
    p.tmp.file("other/o.txt", "o\n");
    let other = p.tmp.join("other");
    chown_r(&other, ctx.uid());
    let dir = p.dir();
    let script = format!(
        "echo two > a.txt && echo n > n.txt && rm keep.txt && rm -r gone && mkfifo pipe \
         && echo o2 > {other}/o.txt"
    );
    let out = p.run(
        &[
            "--cow",
            &other,
            "--cow-summary",
            "json",
            "--on-exit",
            "keep",
        ],
        &script,
    );
    out.expect_code(0);
    let layer = p.layer();
    let proj_lists: [&[&str]; 5] = [
        &["n.txt"],
        &["a.txt"],
        &["gone/", "keep.txt"],
        &[],
        &["pipe"],
    ];
    let other_lists: [&[&str]; 5] = [&[], &["o.txt"], &[], &[], &[]];
    let [a, b] = &json_lines(&out)[..] else {
        panic!("two JSON lines\n{}", out.dump())
    };
    check_report(a, &dir, &layer, proj_lists, "keep", "kept");
    check_report(b, &other, &layer, other_lists, "keep", "kept");
    assert_eq!(fs::read_to_string(format!("{other}/o.txt")).unwrap(), "o\n");
    // Applied later: the same lists, both applied, the layer gone.
    let out = p.sl(&cow(&["apply", "--cow-summary", "json", &layer]));
    out.expect_code(0);
    let [a, b] = &json_lines(&out)[..] else {
        panic!("two JSON lines\n{}", out.dump())
    };
    check_report(a, &dir, &layer, proj_lists, "commit", "applied");
    check_report(b, &other, &layer, other_lists, "commit", "applied");
    assert_eq!(
        fs::read_to_string(format!("{other}/o.txt")).unwrap(),
        "o2\n"
    );
    assert_eq!(fs::read_to_string(p.tmp.join("proj/n.txt")).unwrap(), "n\n");
    assert!(!p.tmp.path().join("proj/pipe").exists());
    assert!(!Path::new(&layer).exists());
});

both!(quiet_and_none_show_only_what_must_be_seen, |ctx| {
    let p = Project::new(ctx, "cowquiet");
    let dir = p.dir();
    // -q: a commit says nothing.
    let out = p.run(&["-q"], "echo two > a.txt");
    out.expect_code(0);
    assert_eq!(out.stderr, "", "{}", out.dump());
    assert_eq!(
        fs::read_to_string(p.tmp.join("proj/a.txt")).unwrap(),
        "two\n"
    );
    // -q: a kept layer is still named.
    let out = p.run(&["-q"], "echo three > a.txt && exit 1");
    out.expect_code(1);
    let layer = p.layer();
    assert_eq!(out.stderr, format!("{}\n", kept_line(&dir, &layer)));
    p.sl(&cow(&["drop", &layer])).expect_code(0);
    // none: no list, only what became of the changes.
    let out = p.run(&["--cow-summary", "none"], "echo four > a.txt");
    out.expect_code(0);
    assert_eq!(out.stderr, format!("sandlock: cow: applied to {dir}\n"));
    // No change: nothing is kept, whatever was asked.
    let out = p.run(&["--on-exit", "keep"], "cat a.txt");
    out.expect_code(0).expect_stdout("four\n");
    assert_eq!(out.stderr, format!("sandlock: cow: {dir}: no changes\n"));
    assert_eq!(p.layers(), Vec::<PathBuf>::new());
});

// ---------------------------------------------------------------------------
// Where layers go
// ---------------------------------------------------------------------------

both!(layers_go_only_where_the_user_alone_may_write, |ctx| {
    let p = Project::new(ctx, "cowstate");
    let uid = ctx.uid();
    let dir = p.dir();
    let home = p.tmp.dir("home", 0o755);
    chown_r(&home, uid);
    let home_root = format!("{home}/.local/state/sandlock/cow");
    let tmpdir = p.tmp.dir("t", 0o777);
    let not_a_dir = p.tmp.file("homefile", "");
    // A state directory another user prepared, open to everyone.
    let shared = p.tmp.dir("shared/sandlock/cow", 0o777);
    chown_r(&p.tmp.join("shared"), if uid == 0 { NOBODY } else { 0 });
    let inside = format!("{dir}/.state");
    let mine = p.tmp.join("mine");
    let shared_state = p.tmp.join("shared");
    let (h, x, t) = ("HOME", "XDG_STATE_HOME", "TMPDIR");
    let cases: Vec<(Vec<(&str, &str)>, String)> = vec![
        (vec![(h, home.as_str())], home_root.clone()),
        (
            vec![(x, mine.as_str()), (h, home.as_str())],
            format!("{mine}/sandlock/cow"),
        ),
        // Inside the --cow directory: skipped.
        (
            vec![(x, inside.as_str()), (h, home.as_str())],
            home_root.clone(),
        ),
        // Prepared by another user: skipped.
        (
            vec![(x, shared_state.as_str()), (h, home.as_str())],
            home_root.clone(),
        ),
        // No home to make it in: TMPDIR.
        (
            vec![(h, not_a_dir.as_str()), (t, tmpdir.as_str())],
            format!("{tmpdir}/sandlock-cow-{uid}"),
        ),
    ];
    let before = p.tree();
    for (env, root) in cases {
        // Not Project::command: it sets XDG_STATE_HOME.
        let mut cmd = ctx.command(run_args(
            &["--cow", &dir],
            &[
                "/bin/sh",
                "-c",
                &format!("echo two > {dir}/a.txt && exit 1"),
            ],
        ));
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = run_cmd(cmd, None, LIMIT);
        out.expect_code(1);
        let layer = kept_layer(&out);
        assert_eq!(
            Path::new(&layer).parent().unwrap(),
            Path::new(&root),
            "{env:?}\n{}",
            out.dump()
        );
        let m = fs::symlink_metadata(&root).unwrap();
        assert_eq!((m.uid(), m.mode() & 0o777), (uid, 0o700), "{root}");
        assert_eq!(
            fs::read_to_string(format!("{layer}/0/upper/a.txt")).unwrap(),
            "two\n"
        );
        let mut drop = ctx.command(cow(&["drop", &layer]));
        drop.env("HOME", &home);
        run_cmd(drop, None, LIMIT).expect_code(0);
        assert!(!Path::new(&layer).exists());
    }
    assert_eq!(p.tree(), before, "the project gained a state directory");
    assert_eq!(listing(Path::new(&shared)), BTreeMap::new());
});

both!(a_tmpdir_inside_the_cow_directory_is_refused, |ctx| {
    let p = Project::new(ctx, "cowtmpdir");
    let dir = p.dir();
    let before = p.tree();
    for (tmpdir, code) in [(p.tmp.join("proj/sub"), 2), (p.tmp.dir("t", 0o777), 0)] {
        let mut cmd = p.command(&p.run_args(&[], "echo two > a.txt"));
        cmd.env("TMPDIR", &tmpdir);
        let out = run_cmd(cmd, None, LIMIT);
        out.expect_code(code);
        if code == 2 {
            assert!(
                out.stderr.contains(&format!(
                    "invalid value '{dir}' for '--cow': holds sandlock's private directories"
                )),
                "{}",
                out.dump()
            );
            assert_eq!(p.tree(), before, "{}", out.dump());
            assert_eq!(p.layers(), Vec::<PathBuf>::new());
        } else {
            // Twin: TMPDIR elsewhere, the run commits.
            assert_eq!(
                fs::read_to_string(p.tmp.join("proj/a.txt")).unwrap(),
                "two\n"
            );
        }
    }
});

// ---------------------------------------------------------------------------
// Bad values
// ---------------------------------------------------------------------------

both!(bad_layers_and_overlaps_are_refused_by_name, |ctx| {
    let p = Project::new(ctx, "cowbad2");
    let dir = p.dir();
    let sub = p.tmp.join("proj/sub");
    let before = p.tree();
    for (args, message) in [
        (
            cow(&["apply", "/nonexistent/layer"]),
            "invalid value '/nonexistent/layer' for 'layer'".to_string(),
        ),
        // A directory that is no layer is never dropped.
        (
            cow(&["drop", &dir]),
            format!("invalid value '{dir}' for 'layer': not a sandlock layer"),
        ),
        (
            cow(&["apply", &dir]),
            format!("invalid value '{dir}' for 'layer': not a sandlock layer"),
        ),
        (
            run_args(&["--cow", &dir, "--cow", &dir], &["/bin/true"]),
            format!("invalid value '{dir}' for '--cow': overlaps"),
        ),
        (
            run_args(&["--cow", &sub, "--cow", &dir], &["/bin/true"]),
            format!("invalid value '{dir}' for '--cow': overlaps --cow {sub}"),
        ),
        (
            run_args(&["--cow", ""], &["/bin/true"]),
            "invalid value '' for '--cow'".to_string(),
        ),
        // Relative to sandlock's cwd (/).
        (
            run_args(&["--cow", "no-such-dir"], &["/bin/true"]),
            "invalid value '/no-such-dir' for '--cow'".to_string(),
        ),
    ] {
        let out = p.sl(&args);
        out.expect_code(2);
        assert!(out.stderr.contains(&message), "{message}\n{}", out.dump());
        assert_eq!(p.tree(), before, "{}", out.dump());
        assert_eq!(p.layers(), Vec::<PathBuf>::new());
    }
    // A bad format for `cow apply` leaves the layer; twin: a good one
    // applies it.
    p.run(&[], "echo two > a.txt && exit 1").expect_code(1);
    let layer = p.layer();
    let out = p.sl(&cow(&["apply", "--cow-summary", "yaml", &layer]));
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("invalid value 'yaml' for '--cow-summary'"),
        "{}",
        out.dump()
    );
    assert_eq!(p.tree(), before);
    assert_eq!(p.layer(), layer);
    p.sl(&cow(&["apply", "--cow-summary", "text", &layer]))
        .expect_code(0);
    assert_eq!(
        fs::read_to_string(p.tmp.join("proj/a.txt")).unwrap(),
        "two\n"
    );
});

// ---------------------------------------------------------------------------
// Read-only directories and unreadable files
// ---------------------------------------------------------------------------

both!(
    read_only_directories_are_committed_with_their_contents,
    |ctx| {
        // Twin first: the same with writable directories.
        for mode in ["755", "555"] {
            let p = Project::new(ctx, "cowro");
            let out = p.run(
                &[],
                &format!(
                    "umask 022 && mkdir ro && echo x > ro/f && chmod {mode} ro \
                 && echo c > sub/c && chmod {mode} sub"
                ),
            );
            let tree = p.tree();
            // (Opened up so the temporary directory can go.)
            for d in ["proj/ro", "proj/sub"] {
                let _ = fs::set_permissions(p.tmp.join(d), fs::Permissions::from_mode(0o755));
            }
            out.expect_code(0);
            assert_eq!(tree["ro"], format!("d {mode}"), "{}", out.dump());
            assert_eq!(tree["ro/f"], "f 644 x\n", "{}", out.dump());
            assert_eq!(tree["sub"], format!("d {mode}"), "{}", out.dump());
            assert_eq!(tree["sub/c"], "f 644 c\n", "{}", out.dump());
            assert_eq!(tree["sub/b.txt"], "f 644 bee\n");
            assert_eq!(p.layers(), Vec::<PathBuf>::new(), "{}", out.dump());
        }
    }
);

both!(
    a_layer_with_a_read_only_directory_is_discarded_or_dropped,
    |ctx| {
        for mode in ["755", "555"] {
            let p = Project::new(ctx, "cowrodrop");
            let before = p.tree();
            let script = format!("mkdir ro && echo x > ro/f && chmod {mode} ro");
            let out = p.run(&["--on-exit", "discard"], &script);
            out.expect_code(0);
            assert_eq!(p.tree(), before);
            assert!(
                out.stderr
                    .lines()
                    .any(|l| l == format!("sandlock: cow: discarded the changes to {}", p.dir())),
                "mode {mode}\n{}",
                out.dump()
            );
            assert_eq!(p.layers(), Vec::<PathBuf>::new(), "mode {mode}");
            p.run(&[], &format!("{script} && exit 1")).expect_code(1);
            let layer = p.layer();
            let out = p.sl(&cow(&["drop", &layer]));
            out.expect_code(0);
            assert!(!Path::new(&layer).exists(), "mode {mode}\n{}", out.dump());
            assert_eq!(p.tree(), before);
        }
    }
);

both!(
    a_deleted_tree_holding_a_read_only_directory_goes_whole,
    |ctx| {
        for mode in [0o755, 0o555] {
            let p = Project::new(ctx, "cowrodel");
            p.tmp.file("proj/gone/ro/f", "f\n");
            p.own();
            fs::set_permissions(p.tmp.join("proj/gone/ro"), fs::Permissions::from_mode(mode))
                .unwrap();
            let mut want = p.tree();
            want.retain(|k, _| k != "gone" && !k.starts_with("gone/"));
            // As `go clean -modcache` does: open up, then remove.
            let out = p.run(&[], "chmod -R u+w gone && rm -rf gone");
            let left = temps(Path::new(&p.dir()));
            assert!(
                left.is_empty(),
                "mode {mode:o}: left on the host: {left:?}\n{}",
                out.dump()
            );
            out.expect_code(0);
            assert_eq!(p.tree(), want, "mode {mode:o}\n{}", out.dump());
            assert_eq!(p.layers(), Vec::<PathBuf>::new());
        }
    }
);

both!(a_file_its_owner_may_not_read_is_committed, |ctx| {
    // Twin first: a mode its owner may read.
    for mode in [0o600, 0o000] {
        let p = Project::new(ctx, "cowunread");
        let out = p.run(
            &[],
            &format!(
                "echo s > secret && chmod {mode:o} secret && echo t > a.txt && chmod {mode:o} a.txt"
            ),
        );
        out.expect_code(0);
        let tree = p.tree();
        assert_eq!(tree["secret"], format!("f {mode:o} s\n"), "{}", out.dump());
        assert_eq!(tree["a.txt"], format!("f {mode:o} t\n"), "{}", out.dump());
        assert_eq!(p.layers(), Vec::<PathBuf>::new());
    }
});
