//! Copy-on-write workspaces, beyond workspace.rs's and
//! workspace_attacks.rs's cases: the changes that replace one kind of entry
//! with another, host symlinks and a directory swapped for one during the
//! run, conflicts on deleted and new names (and their twin: host changes
//! to other names merge), a host edit between a kept run and its apply, a
//! layer in use, a run or an apply killed part-way, exact JSON and quiet
//! summaries, where layers go, and bad values.
//!
//! Read-only directories and unreadable files are ordinary results of a
//! build (Go's module cache makes its directories 0555): the tests of those
//! check that a commit, a discard and a deletion carry them out as the
//! workload left them.
//!
//! Every test compares exact bytes, modes, targets and statuses; every
//! attack runs with its twin (the same run without the attack).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::common::*;
use crate::workspace::{chown_r, listing, Project};

const LIMIT: Duration = Duration::from_secs(60);

/// `["cow", args...]`.
fn cow(args: &[&str]) -> Vec<String> {
    let mut v = vec!["cow".to_string()];
    v.extend(args.iter().map(|s| s.to_string()));
    v
}

/// The names below `root` (recursively) that start with `.sandlock-cow-`:
/// what an apply must never leave behind.
fn temps(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(root) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if e.file_name()
            .to_string_lossy()
            .starts_with(".sandlock-cow-")
        {
            out.push(p.clone());
        }
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(temps(&p));
        }
    }
    out
}

/// The line a kept layer is announced with.
fn kept_line(dir: &str, layer: &str) -> String {
    format!(
        "sandlock: cow: kept the changes to {dir} in {layer} (apply: sandlock cow apply {layer}; drop: sandlock cow drop {layer})"
    )
}

/// The layer a "kept the changes" line names.
#[track_caller]
fn kept_layer(out: &Out) -> String {
    out.stderr
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix("sandlock: cow: kept the changes to ")?;
            let (_, rest) = rest.split_once(" in ")?;
            rest.split(' ').next().map(str::to_string)
        })
        .unwrap_or_else(|| panic!("no kept layer\n{}", out.dump()))
}

/// True when the layer of `p` holds `0/upper/started`: the workload wrote
/// what it writes before it sleeps.
fn started(p: &Project) -> bool {
    p.layers()
        .first()
        .is_some_and(|l| l.join("0/upper/started").exists())
}

/// `p.run(extra, script)`, calling `host` once the workload has made
/// `started` (while it sleeps); panics if that never happened.
fn run_with_host_action(p: &Project, extra: &[&str], script: &str, host: impl FnOnce()) -> Out {
    let mut host = Some(host);
    let out = run_cmd_watch(p.command(&p.run_args(extra, script)), None, LIMIT, |_| {
        if host.is_some() && started(p) {
            (host.take().unwrap())();
        }
    });
    assert!(
        host.is_none(),
        "the workload never made `started`\n{}",
        out.dump()
    );
    out
}

/// The strings of JSON array `key` of `j`.
#[track_caller]
fn strs(j: &Value, key: &str) -> Vec<String> {
    match j.get(key) {
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().expect("a string").to_string())
            .collect(),
        other => panic!("{key} is not an array: {other:?}"),
    }
}

/// Every line of `stderr`, each parsed as one JSON object.
#[track_caller]
fn json_lines(out: &Out) -> Vec<Value> {
    out.stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}\n{}", out.dump())))
        .collect()
}

/// Asserts one report object: its keys, its lists and what became of it.
#[track_caller]
fn check_report(
    j: &Value,
    dir: &str,
    layer: &str,
    lists: [&[&str]; 5],
    action: &str,
    result: &str,
) {
    let Value::Object(m) = j else {
        panic!("not an object: {j:?}")
    };
    // sorted here: serde_json keeps document order when a dependency
    // turns on its preserve_order feature
    let mut keys: Vec<&str> = m.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "action",
            "added",
            "changed",
            "conflicts",
            "deleted",
            "dir",
            "error",
            "layer",
            "result",
            "skipped"
        ],
        "{j:?}"
    );
    assert_eq!(j.get("dir").and_then(Value::as_str), Some(dir), "{j:?}");
    assert_eq!(j.get("layer").and_then(Value::as_str), Some(layer), "{j:?}");
    for (key, want) in ["added", "changed", "deleted", "conflicts", "skipped"]
        .iter()
        .zip(lists)
    {
        assert_eq!(strs(j, key), want, "{key} of {j:?}");
    }
    assert_eq!(
        j.get("action").and_then(Value::as_str),
        Some(action),
        "{j:?}"
    );
    assert_eq!(
        j.get("result").and_then(Value::as_str),
        Some(result),
        "{j:?}"
    );
    assert_eq!(j.get("error"), Some(&Value::Null), "{j:?}");
}

// ---------------------------------------------------------------------------
// What a commit carries out
// ---------------------------------------------------------------------------

both!(replacements_links_and_times_apply_exactly, |ctx| {
    let p = Project::new(ctx, "cowrepl");
    let before = p.tree();
    // A directory becomes a file, a file a directory, a directory is made
    // again with other contents (opaque), a hard link and an absolute
    // symlink out of the directory, a time set by the workload.
    let script = "umask 022 && rm -r sub && echo file > sub \
         && rm a.txt && mkdir a.txt && echo in > a.txt/in \
         && rm -r gone && mkdir gone && echo new > gone/n && touch -m -r keep.txt gone/n \
         && ln keep.txt hard && ln -s /etc/passwd pw";
    let out = p.run(&[], script);
    out.expect_code(0);
    let mut want = before.clone();
    for gone in ["sub/b.txt", "gone/y"] {
        want.remove(gone);
    }
    for (k, v) in [
        ("sub", "f 644 file\n"),
        ("a.txt", "d 755"),
        ("a.txt/in", "f 644 in\n"),
        ("gone/n", "f 644 new\n"),
        ("hard", "f 644 kept\n"),
        ("pw", "l /etc/passwd"),
    ] {
        want.insert(k.into(), v.into());
    }
    assert_eq!(p.tree(), want, "{}", out.dump());
    let dir = p.dir();
    assert_eq!(
        out.stderr,
        format!(
            "sandlock: cow: {dir}: 5 added, 1 changed, 2 deleted\n  A a.txt/\n  A a.txt/in\n  A gone/n\n  A hard\n  A pw\n  M sub\n  D a.txt\n  D gone/y\nsandlock: cow: applied to {dir}\n"
        ),
        "{}",
        out.dump()
    );
    let (n, keep) = (
        fs::metadata(p.tmp.join("proj/gone/n")).unwrap(),
        fs::metadata(p.tmp.join("proj/keep.txt")).unwrap(),
    );
    assert_eq!(
        (n.mtime(), n.mtime_nsec()),
        (keep.mtime(), keep.mtime_nsec()),
        "the workload's mtime was not kept"
    );
    assert!(
        temps(Path::new(&dir)).is_empty(),
        "{:?}",
        temps(Path::new(&dir))
    );
    assert_eq!(p.layers(), Vec::<PathBuf>::new());
});

both!(commit_asked_for_applies_after_a_failed_workload, |ctx| {
    let p = Project::new(ctx, "cowforce");
    let out = p.run(&["--on-exit", "commit"], "echo two > a.txt && exit 4");
    // The workload's status stands; its changes are applied all the same.
    out.expect_code(4);
    assert_eq!(
        fs::read_to_string(p.tmp.join("proj/a.txt")).unwrap(),
        "two\n"
    );
    assert!(
        out.stderr
            .lines()
            .any(|l| l == format!("sandlock: cow: applied to {}", p.dir())),
        "{}",
        out.dump()
    );
    assert_eq!(p.layers(), Vec::<PathBuf>::new());
});

both!(relative_cow_paths_are_committed, |ctx| {
    let p = Project::new(ctx, "cowrel");
    let dir = p.dir();
    // `--cow .` from inside the directory, relative writes.
    let mut cmd = p.command(&run_args(
        &["--cow", "."],
        &[
            "/bin/sh",
            "-c",
            "umask 022 && echo x > rel && mkdir d && echo y > d/z && cat rel",
        ],
    ));
    cmd.current_dir(&dir);
    let out = run_cmd(cmd, None, LIMIT);
    out.expect_code(0).expect_stdout("x\n");
    assert_eq!(fs::read_to_string(p.tmp.join("proj/rel")).unwrap(), "x\n");
    assert_eq!(fs::read_to_string(p.tmp.join("proj/d/z")).unwrap(), "y\n");
    assert!(
        out.stderr
            .lines()
            .any(|l| l == format!("sandlock: cow: applied to {dir}")),
        "{}",
        out.dump()
    );
    // `--cow proj` from its parent.
    let mut cmd = p.command(&run_args(
        &["--cow", "proj"],
        &["/bin/sh", "-c", "echo p > proj/p"],
    ));
    cmd.current_dir(p.tmp.path());
    let out = run_cmd(cmd, None, LIMIT);
    out.expect_code(0);
    assert_eq!(fs::read_to_string(p.tmp.join("proj/p")).unwrap(), "p\n");
    assert!(
        out.stderr
            .lines()
            .any(|l| l == format!("sandlock: cow: applied to {dir}")),
        "{}",
        out.dump()
    );
    assert_eq!(p.layers(), Vec::<PathBuf>::new());
});

// ---------------------------------------------------------------------------
// Host symlinks
// ---------------------------------------------------------------------------

both!(
    host_symlinks_to_a_file_and_a_directory_are_replaced_never_entered,
    |ctx| {
        for attack in [true, false] {
            let p = Project::new(ctx, "cowlinks");
            // Outside the project, and writable by the workload's user: an
            // apply that followed a link could write there.
            let secret = p.tmp.file("outside/secret", "outside\n");
            chown_r(&p.tmp.join("outside"), ctx.uid());
            let (link, ld) = (p.tmp.join("proj/link"), p.tmp.join("proj/ld"));
            if attack {
                std::os::unix::fs::symlink(&secret, &link).unwrap();
                std::os::unix::fs::symlink(p.tmp.join("outside"), &ld).unwrap();
            } else {
                p.tmp.file("proj/link", "host\n");
                p.tmp.dir("proj/ld", 0o755);
                p.own();
            }
            let out = p.run(
                &[],
                "umask 022 && rm -rf link ld && echo mine > link && mkdir ld && echo x > ld/secret",
            );
            out.expect_code(0);
            assert_eq!(
                listing(&p.tmp.path().join("outside")),
                BTreeMap::from([("secret".to_string(), "f 644 outside\n".to_string())]),
                "attack {attack}: written through a host symlink\n{}",
                out.dump()
            );
            let tree = p.tree();
            assert_eq!(tree["link"], "f 644 mine\n", "{}", out.dump());
            assert_eq!(tree["ld"], "d 755", "{}", out.dump());
            assert_eq!(tree["ld/secret"], "f 644 x\n", "{}", out.dump());
            assert_eq!(p.layers(), Vec::<PathBuf>::new());
        }
    }
);

both!(
    a_directory_swapped_for_a_symlink_during_the_run_is_a_conflict,
    |ctx| {
        for attack in [true, false] {
            let p = Project::new(ctx, "cowswap");
            let outside = p.tmp.dir("outside", 0o755);
            chown_r(&outside, ctx.uid());
            let (sub, old) = (p.tmp.join("proj/sub"), p.tmp.join("proj/sub.old"));
            let out = run_with_host_action(
                &p,
                &[],
                "echo c > sub/c && touch started && sleep 1",
                || {
                    if attack {
                        fs::rename(&sub, &old).unwrap();
                        std::os::unix::fs::symlink(&outside, &sub).unwrap();
                    }
                },
            );
            assert_eq!(
                listing(Path::new(&outside)),
                BTreeMap::new(),
                "written through the symlink\n{}",
                out.dump()
            );
            if attack {
                out.expect_code(125);
                assert!(out.stderr.lines().any(|l| l == "  C sub"), "{}", out.dump());
                assert_eq!(
                    listing(Path::new(&old)),
                    BTreeMap::from([("b.txt".to_string(), "f 644 bee\n".to_string())])
                );
                assert!(fs::symlink_metadata(&sub).unwrap().is_symlink());
                // The change stays in the layer.
                let layer = p.layer();
                assert_eq!(
                    fs::read_to_string(Path::new(&layer).join("0/upper/sub/c")).unwrap(),
                    "c\n"
                );
            } else {
                out.expect_code(0);
                assert_eq!(fs::read_to_string(format!("{sub}/c")).unwrap(), "c\n");
                assert_eq!(p.layers(), Vec::<PathBuf>::new());
            }
        }
    }
);

// ---------------------------------------------------------------------------
// Conflicts
// ---------------------------------------------------------------------------

both!(
    host_changes_to_deleted_or_new_names_are_conflicts_others_merge,
    |ctx| {
        for attack in [true, false] {
            let p = Project::new(ctx, "cowmerge");
            let t = |rel: &str| p.tmp.join(&format!("proj/{rel}"));
            let script = "rm keep.txt && rm -r gone && echo ours > n.txt && echo w > sub/w.txt \
                 && touch started && sleep 1";
            let out = run_with_host_action(&p, &[], script, || {
                // A name the workload never touched: never a conflict.
                fs::write(t("sub/h.txt"), "host\n").unwrap();
                if attack {
                    fs::write(t("keep.txt"), "theirs\n").unwrap();
                    fs::write(t("gone/h"), "host\n").unwrap();
                    fs::write(t("n.txt"), "theirs\n").unwrap();
                }
            });
            let read = |rel: &str| fs::read_to_string(t(rel)).ok();
            // Both sides' changes to other names are there.
            assert_eq!(read("sub/w.txt").as_deref(), Some("w\n"), "{}", out.dump());
            assert_eq!(read("sub/h.txt").as_deref(), Some("host\n"));
            assert_eq!(read("sub/b.txt").as_deref(), Some("bee\n"));
            if attack {
                out.expect_code(125);
                let lines: Vec<&str> = out.stderr.lines().collect();
                let head = format!(
                    "sandlock: cow: {}: 2 added, 0 changed, 0 deleted, 3 conflicts",
                    p.dir()
                );
                for want in [head.as_str(), "  C gone", "  C keep.txt", "  C n.txt"] {
                    assert!(lines.contains(&want), "no {want:?}\n{}", out.dump());
                }
                assert_eq!(read("keep.txt").as_deref(), Some("theirs\n"));
                assert_eq!(read("gone/y").as_deref(), Some("why\n"));
                assert_eq!(read("gone/h").as_deref(), Some("host\n"));
                assert_eq!(read("n.txt").as_deref(), Some("theirs\n"));
                let layer = p.layer();
                assert_eq!(
                    fs::read_to_string(Path::new(&layer).join("0/upper/n.txt")).unwrap(),
                    "ours\n"
                );
            } else {
                out.expect_code(0);
                assert_eq!(read("keep.txt"), None, "{}", out.dump());
                assert!(!Path::new(&t("gone")).exists());
                assert_eq!(read("n.txt").as_deref(), Some("ours\n"));
                assert_eq!(p.layers(), Vec::<PathBuf>::new());
            }
        }
    }
);

both!(a_host_edit_after_a_kept_run_is_a_conflict_on_apply, |ctx| {
    for attack in [true, false] {
        let p = Project::new(ctx, "cowlate");
        let a = p.tmp.join("proj/a.txt");
        let out = p.run(&[], "echo ours > a.txt && echo two > keep.txt && exit 1");
        out.expect_code(1);
        let layer = p.layer();
        if attack {
            fs::write(&a, "theirs\n").unwrap();
        }
        let out = p.sl(&cow(&["apply", "--cow-summary", "json", &layer]));
        let [j] = &json_lines(&out)[..] else {
            panic!("one JSON line\n{}", out.dump())
        };
        assert_eq!(
            fs::read_to_string(p.tmp.join("proj/keep.txt")).unwrap(),
            "two\n"
        );
        if attack {
            out.expect_code(125);
            check_report(
                j,
                &p.dir(),
                &layer,
                [&[], &["keep.txt"], &[], &["a.txt"], &[]],
                "commit",
                "incomplete",
            );
            assert_eq!(fs::read_to_string(&a).unwrap(), "theirs\n");
            assert_eq!(p.layer(), layer);
            // Dropping what is left keeps the host's version.
            p.sl(&cow(&["drop", &layer])).expect_code(0);
            assert!(!Path::new(&layer).exists());
            assert_eq!(fs::read_to_string(&a).unwrap(), "theirs\n");
        } else {
            out.expect_code(0);
            check_report(
                j,
                &p.dir(),
                &layer,
                [&[], &["a.txt", "keep.txt"], &[], &[], &[]],
                "commit",
                "applied",
            );
            assert_eq!(fs::read_to_string(&a).unwrap(), "ours\n");
            assert!(!Path::new(&layer).exists());
        }
    }
});

mod lifecycle;
