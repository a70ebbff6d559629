//! Copy-on-write workspaces (`--cow DIR`): the workload changes DIR
//! through a private layer, the host's DIR is untouched while it runs, and
//! at the end the changes are committed, discarded or kept for `sandlock
//! cow apply|drop`.
//!
//! Each test makes a small project, runs a workload that changes it, and
//! compares the host's tree with exactly what it should hold, byte for
//! byte (contents, modes, symlink targets, absent names). Layers go to a
//! state directory of the test's own (`XDG_STATE_HOME`), so a test also
//! sees whether one was left behind. The attack tests (a host symlink, a
//! host change during the run) each have a twin without the attack.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::*;

/// A project and a state directory for one test, owned by `ctx`'s user.
pub struct Project {
    pub tmp: TempDir,
    pub ctx: Ctx,
}

impl Project {
    /// `proj/` with `a.txt`, `sub/b.txt`, `gone/y` and `keep.txt`.
    pub fn new(ctx: Ctx, tag: &str) -> Project {
        let tmp = TempDir::new(tag);
        tmp.file("proj/a.txt", "one\n");
        tmp.file("proj/sub/b.txt", "bee\n");
        tmp.file("proj/gone/y", "why\n");
        tmp.file("proj/keep.txt", "kept\n");
        let p = Project { tmp, ctx };
        p.own();
        p
    }

    /// Gives the project to `ctx`'s user (as for any directory of theirs).
    pub fn own(&self) {
        let uid = self.ctx.uid();
        let status = Command::new("chown")
            .arg("-R")
            .arg(format!("{uid}:{uid}"))
            .arg(self.dir())
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn dir(&self) -> String {
        self.tmp.join("proj")
    }

    pub fn state(&self) -> String {
        self.tmp.join("state")
    }

    /// `sandlock ARGS` with the test's state directory.
    pub fn command(&self, args: &[String]) -> Command {
        let mut cmd = self.ctx.command(args);
        cmd.env("XDG_STATE_HOME", self.state());
        cmd
    }

    pub fn sl(&self, args: &[String]) -> Out {
        run_cmd(self.command(args), None, Duration::from_secs(60))
    }

    /// `sandlock run EXTRA --cow DIR -- /bin/sh -c SCRIPT`, from DIR's
    /// parent.
    pub fn run(&self, extra: &[&str], script: &str) -> Out {
        self.sl(&self.run_args(extra, script))
    }

    pub fn run_args(&self, extra: &[&str], script: &str) -> Vec<String> {
        let dir = self.dir();
        let mut flags = vec!["--cow", dir.as_str()];
        flags.extend(extra);
        let script = format!("cd {dir} && {script}");
        run_args(&flags, &["/bin/sh", "-c", &script])
    }

    /// The layers in the state directory.
    pub fn layers(&self) -> Vec<PathBuf> {
        let root = Path::new(&self.state()).join("sandlock/cow");
        let mut v: Vec<PathBuf> = fs::read_dir(root)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The one layer there is.
    #[track_caller]
    pub fn layer(&self) -> String {
        let l = self.layers();
        assert_eq!(l.len(), 1, "layers: {l:?}");
        l[0].display().to_string()
    }

    /// The host's tree: relative path -> what is there.
    pub fn tree(&self) -> BTreeMap<String, String> {
        listing(Path::new(&self.dir()))
    }
}

/// Every entry below `root`: `f MODE bytes`, `l target`, `d MODE`.
/// `chown -R UID:UID path`.
pub fn chown_r(path: &str, uid: u32) {
    let ok = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{uid}"))
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "chown {path}");
}

pub fn listing(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<String, String>) {
        let mut names: Vec<_> = fs::read_dir(root.join(rel))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for n in names {
            let r = rel.join(&n);
            let p = root.join(&r);
            let m = fs::symlink_metadata(&p).unwrap();
            let key = r.display().to_string();
            let mode = m.permissions().mode() & 0o7777;
            if m.file_type().is_symlink() {
                out.insert(key, format!("l {}", fs::read_link(&p).unwrap().display()));
            } else if m.is_dir() {
                out.insert(key, format!("d {mode:o}"));
                walk(root, &r, out);
            } else if m.is_file() {
                let bytes = String::from_utf8_lossy(&fs::read(&p).unwrap()).into_owned();
                out.insert(key, format!("f {mode:o} {bytes}"));
            } else {
                out.insert(key, "special".into());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, Path::new(""), &mut out);
    out
}

/// The workload's edits shared by the commit, discard and keep tests.
const EDITS: &str = "echo two > a.txt && mkdir -p new/deep && echo fresh > new/deep/c.txt \
     && rm -r gone && chmod 600 sub/b.txt && ln -s a.txt link";

/// What the host holds after [`EDITS`] are applied to `before`.
fn edited(before: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut t = before.clone();
    t.insert("a.txt".into(), "f 644 two\n".into());
    t.insert("new".into(), "d 755".into());
    t.insert("new/deep".into(), "d 755".into());
    t.insert("new/deep/c.txt".into(), "f 644 fresh\n".into());
    t.remove("gone");
    t.remove("gone/y");
    t.insert("sub/b.txt".into(), "f 600 bee\n".into());
    t.insert("link".into(), "l a.txt".into());
    t
}

both!(commit_applies_every_change_and_removes_the_layer, |ctx| {
    let p = Project::new(ctx, "cowcommit");
    let before = p.tree();
    let out = p.run(&[], &format!("umask 022 && {EDITS} && cat a.txt"));
    out.expect_code(0).expect_stdout("two\n");
    assert_eq!(p.tree(), edited(&before), "{}", out.dump());
    let dir = p.dir();
    let lines: Vec<&str> = out.stderr.lines().collect();
    for want in [
        format!("sandlock: cow: {dir}: 4 added, 2 changed, 1 deleted"),
        "  A link".into(),
        "  A new/".into(),
        "  A new/deep/".into(),
        "  A new/deep/c.txt".into(),
        "  M a.txt".into(),
        "  M sub/b.txt".into(),
        "  D gone/".into(),
        format!("sandlock: cow: applied to {dir}"),
    ] {
        assert!(
            lines.contains(&want.as_str()),
            "no line {want:?}\n{}",
            out.dump()
        );
    }
    assert_eq!(p.layers(), Vec::<PathBuf>::new(), "{}", out.dump());
    // New files belong to the workload's user, as they would with -w.
    let uid = fs::metadata(p.tmp.join("proj/new/deep/c.txt"))
        .unwrap()
        .uid();
    assert_eq!(uid, ctx.uid());
});

both!(the_host_is_untouched_while_the_workload_runs, |ctx| {
    let p = Project::new(ctx, "cowlive");
    let before = p.tree();
    let mut cmd = p.command(&p.run_args(&[], "echo two > a.txt && rm keep.txt && sleep 2"));
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child: Child = cmd.spawn().unwrap();
    // The layer's copy of a.txt exists: the workload has written.
    let written = wait_until(Duration::from_secs(20), || {
        p.layers()
            .first()
            .is_some_and(|l| l.join("0/upper/a.txt").exists())
    });
    assert!(written, "the workload's write never reached its layer");
    assert_eq!(p.tree(), before, "the host changed while the workload ran");
    assert!(child.wait().unwrap().success());
    // Twin: at the end the same changes are there.
    let mut after = before.clone();
    after.insert("a.txt".into(), "f 644 two\n".into());
    after.remove("keep.txt");
    assert_eq!(p.tree(), after);
});

both!(discard_leaves_the_host_as_it_was, |ctx| {
    let p = Project::new(ctx, "cowdiscard");
    let before = p.tree();
    let out = p.run(&["--on-exit", "discard"], &format!("{EDITS} && cat a.txt"));
    out.expect_code(0).expect_stdout("two\n");
    assert_eq!(p.tree(), before, "{}", out.dump());
    assert!(out
        .stderr
        .lines()
        .any(|l| l == format!("sandlock: cow: discarded the changes to {}", p.dir())));
    assert_eq!(p.layers(), Vec::<PathBuf>::new());
});

both!(a_failed_run_keeps_its_layer_for_apply_or_drop, |ctx| {
    let p = Project::new(ctx, "cowkeep");
    let before = p.tree();
    let out = p.run(&[], &format!("umask 022 && {EDITS} && exit 3"));
    out.expect_code(3);
    assert_eq!(p.tree(), before, "{}", out.dump());
    let layer = p.layer();
    let kept = format!(
        "sandlock: cow: kept the changes to {} in {layer} (apply: sandlock cow apply {layer}; drop: sandlock cow drop {layer})",
        p.dir()
    );
    assert!(out.stderr.lines().any(|l| l == kept), "{}", out.dump());
    // apply: the same changes as a commit, and the layer goes.
    let out = p.sl(&["cow".into(), "apply".into(), layer.clone()]);
    out.expect_code(0);
    assert_eq!(p.tree(), edited(&before), "{}", out.dump());
    assert!(!Path::new(&layer).exists());
    // drop: a second kept layer goes, the host keeps what it has.
    let now = p.tree();
    p.run(&[], "echo three > a.txt && exit 1").expect_code(1);
    let layer = p.layer();
    p.sl(&["cow".into(), "drop".into(), layer.clone()])
        .expect_code(0);
    assert!(!Path::new(&layer).exists());
    assert_eq!(p.tree(), now);
});

both!(
    a_host_change_during_the_run_is_a_conflict_not_overwritten,
    |ctx| {
        for attack in [true, false] {
            let p = Project::new(ctx, "cowconflict");
            let script = "echo ours > a.txt && echo two > keep.txt && touch started && sleep 2";
            let mut cmd = p.command(&p.run_args(&[], script));
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            let child = cmd.spawn().unwrap();
            assert!(wait_until(Duration::from_secs(20), || {
                p.layers()
                    .first()
                    .is_some_and(|l| l.join("0/upper/started").exists())
            }));
            if attack {
                fs::write(p.tmp.join("proj/a.txt"), "theirs\n").unwrap();
            }
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            let a = fs::read_to_string(p.tmp.join("proj/a.txt")).unwrap();
            let keep = fs::read_to_string(p.tmp.join("proj/keep.txt")).unwrap();
            // The other change lands either way.
            assert_eq!(keep, "two\n", "{stderr}");
            if attack {
                assert_eq!(out.status.code(), Some(125), "{stderr}");
                assert_eq!(a, "theirs\n", "the host's change was overwritten\n{stderr}");
                assert!(stderr.lines().any(|l| l == "  C a.txt"), "{stderr}");
                let layer = p.layer();
                assert_eq!(
                    fs::read_to_string(Path::new(&layer).join("0/upper/a.txt")).unwrap(),
                    "ours\n"
                );
                // Applying again cannot get it in: the conflict stays.
                let again = p.sl(&["cow".into(), "apply".into(), layer]);
                again.expect_code(125);
                assert_eq!(
                    fs::read_to_string(p.tmp.join("proj/a.txt")).unwrap(),
                    "theirs\n"
                );
            } else {
                assert_eq!(out.status.code(), Some(0), "{stderr}");
                assert_eq!(a, "ours\n", "{stderr}");
                assert_eq!(p.layers(), Vec::<PathBuf>::new());
            }
        }
    }
);

both!(json_summary_lists_the_changes_and_the_result, |ctx| {
    let p = Project::new(ctx, "cowjson");
    let out = p.run(
        &["--cow-summary", "json"],
        "echo two > a.txt && echo n > n.txt && rm keep.txt",
    );
    out.expect_code(0);
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line\n{}", out.dump()));
    let j: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let list = |k: &str| format!("{:?}", j.get(k).unwrap());
    assert_eq!(
        j.get("dir").and_then(|d| d.as_str()),
        Some(p.dir().as_str())
    );
    assert_eq!(j.get("result").and_then(|d| d.as_str()), Some("applied"));
    assert_eq!(j.get("action").and_then(|d| d.as_str()), Some("commit"));
    assert!(
        list("added").contains("n.txt") && !list("added").contains("a.txt"),
        "{line}"
    );
    assert!(list("changed").contains("a.txt"), "{line}");
    assert!(list("deleted").contains("keep.txt"), "{line}");
    // Nothing but the JSON line on stderr.
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.dump());
});

both!(
    relative_writes_from_a_cwd_inside_the_directory_are_layered,
    |ctx| {
        let p = Project::new(ctx, "cowcwd");
        let mut cmd = p.command(&run_args(
            &["--cow", ".", "--on-exit", "keep"],
            &["/bin/sh", "-c", "echo rel > rel.txt && cat rel.txt"],
        ));
        cmd.current_dir(p.dir());
        let out = run_cmd(cmd, None, Duration::from_secs(60));
        out.expect_code(0).expect_stdout("rel\n");
        assert!(!p.tmp.path().join("proj/rel.txt").exists());
        let layer = p.layer();
        assert_eq!(
            fs::read_to_string(Path::new(&layer).join("0/upper/rel.txt")).unwrap(),
            "rel\n"
        );
    }
);

both!(
    apply_replaces_a_host_symlink_and_never_writes_through_it,
    |ctx| {
        for attack in [true, false] {
            let p = Project::new(ctx, "cowlink");
            let outside = p.tmp.file("outside.txt", "outside\n");
            if attack {
                std::os::unix::fs::symlink(&outside, p.tmp.path().join("proj/link")).unwrap();
            }
            // The workload replaces `link` with a file, and makes a fifo.
            let out = p.run(&[], "rm -f link && echo mine > link && mkfifo pipe");
            out.expect_code(0);
            assert_eq!(
                fs::read_to_string(&outside).unwrap(),
                "outside\n",
                "{}",
                out.dump()
            );
            let link = p.tmp.path().join("proj/link");
            assert!(
                fs::symlink_metadata(&link).unwrap().is_file(),
                "{}",
                out.dump()
            );
            assert_eq!(fs::read_to_string(&link).unwrap(), "mine\n");
            assert!(
                out.stderr.lines().any(|l| l == "  S pipe"),
                "{}",
                out.dump()
            );
            assert!(!p.tmp.path().join("proj/pipe").exists());
        }
    }
);

both!(a_setuid_bit_never_reaches_the_host, |ctx| {
    let p = Project::new(ctx, "cowsuid");
    let out = p.run(
        &[],
        "cp /bin/true t && chmod 4755 t && chmod 2755 a.txt; ls -l t",
    );
    out.expect_code(0);
    let mode = fs::metadata(p.tmp.path().join("proj/t"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755, "{}", out.dump());
    let mode = fs::metadata(p.tmp.path().join("proj/a.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o6000, 0, "{}", out.dump());
});

both!(an_interrupted_apply_is_finished_by_a_rerun, |ctx| {
    let p = Project::new(ctx, "cowkill");
    // 256 MiB, a pattern per MiB, so a half-copied file cannot pass.
    let out = p.run(
        &["--on-exit", "keep"],
        "/usr/bin/python3 -c \"import sys\nwith open('big', 'wb') as f:\n    for i in range(256): f.write(bytes([i]) * (1 << 20))\"",
    );
    out.expect_code(0);
    let layer = p.layer();
    let mut apply = p.command(&["cow".into(), "apply".into(), layer.clone()]);
    apply.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = apply.spawn().unwrap();
    let dir = PathBuf::from(p.dir());
    let temp = || {
        fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|n| {
                n.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(".sandlock-cow-")
            })
    };
    let caught = wait_until(Duration::from_secs(30), || {
        temp().is_some_and(|t| fs::metadata(t).is_ok_and(|m| m.len() > 0))
    });
    send_signal(child.id(), "KILL");
    let _ = child.wait();
    assert!(caught, "never saw the temporary file being written");
    assert!(!dir.join("big").exists(), "a partial file reached its name");
    let out = p.sl(&["cow".into(), "apply".into(), layer.clone()]);
    out.expect_code(0);
    let big = fs::read(dir.join("big")).unwrap();
    assert_eq!(big.len(), 256 << 20);
    assert!(big
        .chunks(1 << 20)
        .enumerate()
        .all(|(i, c)| c.iter().all(|&b| b == i as u8)));
    assert!(temp().is_none(), "a temporary file was left");
    assert!(!Path::new(&layer).exists());
});

both!(bad_values_name_the_flag_and_the_value, |ctx| {
    let p = Project::new(ctx, "cowbad");
    let file = p.tmp.join("proj/a.txt");
    let other = p.tmp.join("proj/sub");
    let dir = p.dir();
    for (args, flag, value) in [
        (vec!["--cow", "/nonexistent/x"], "--cow", "/nonexistent/x"),
        (vec!["--cow", file.as_str()], "--cow", file.as_str()),
        (vec!["--cow", "/"], "--cow", "/"),
        (
            vec!["--cow", dir.as_str(), "--cow", other.as_str()],
            "--cow",
            other.as_str(),
        ),
        (
            vec!["--cow", dir.as_str(), "--on-exit", "maybe"],
            "--on-exit",
            "maybe",
        ),
        (
            vec!["--cow", dir.as_str(), "--cow-summary", "yaml"],
            "--cow-summary",
            "yaml",
        ),
    ] {
        let out = p.sl(&run_args(&args, &["/bin/true"]));
        out.expect_code(2);
        assert!(
            out.stderr.contains(&format!("'{flag}'")) && out.stderr.contains(&format!("'{value}'")),
            "{}",
            out.dump()
        );
    }
    let out = p.sl(&["cow".into(), "apply".into(), p.tmp.join("proj")]);
    out.expect_code(2);
    assert!(
        out.stderr.contains("not a sandlock layer"),
        "{}",
        out.dump()
    );
    assert_eq!(p.layers(), Vec::<PathBuf>::new());
    // Twin: the same directory alone runs.
    p.sl(&run_args(&["--cow", dir.as_str()], &["/bin/true"]))
        .expect_code(0);
});
