//! Attacks on copy-on-write workspaces, each with its twin: the same run
//! without the attack does what the user asked.
//!
//! - The workload moves an ancestor of its `--cow` directory and puts a
//!   symlink to another directory in its place: the apply must not follow.
//! - The workload holds the host's file beneath the overlay (a descriptor
//!   from outside): its metadata is not the workload's to change.
//! - The state directory under a write grant: the layer goes elsewhere.
//! - A layer owned by another user is never applied.
//! - A sparse file is not inflated on the host; names with escape
//!   sequences cannot fake lines of the summary.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use crate::workspace::{chown_r, Project};

both!(a_moved_directory_is_never_applied_elsewhere, |ctx| {
    for attack in [true, false] {
        let p = Project::new(ctx, "cowmove");
        let bin = p.tmp.file("proj/site/bin/tool", "site\n");
        let elsewhere = p.tmp.file("elsewhere/bin/tool", "legit\n");
        chown_r(&p.tmp.join("proj"), ctx.uid());
        chown_r(&p.tmp.join("elsewhere"), ctx.uid());
        let (proj, site) = (p.dir(), p.tmp.join("proj/site"));
        let swap = if attack {
            format!(
                "import os\nos.rename('{site}', '{site}.old')\nos.symlink('{}', '{site}')\n",
                p.tmp.join("elsewhere")
            )
        } else {
            String::new()
        };
        let script = format!("open('{bin}', 'w').write('PWNED\\n')\n{swap}");
        let out = p.sl(&run_args(
            &["-w", &proj, "--cow", &p.tmp.join("proj/site/bin")],
            &["/usr/bin/python3", "-c", &script],
        ));
        assert_eq!(
            fs::read_to_string(&elsewhere).unwrap(),
            "legit\n",
            "{}",
            out.dump()
        );
        if attack {
            out.expect_code(125);
            assert!(
                out.stderr
                    .contains("no longer the directory the run started with"),
                "{}",
                out.dump()
            );
            assert_eq!(p.layers().len(), 1, "the changes must stay in the layer");
        } else {
            out.expect_code(0);
            assert_eq!(fs::read_to_string(&bin).unwrap(), "PWNED\n");
        }
    }
});

both!(
    the_host_file_beneath_the_overlay_keeps_its_metadata,
    |ctx| {
        let p = Project::new(ctx, "cowhostfd");
        let script = "import os\n\
        try:\n    os.chmod('/proc/self/fd/0', 0o666); print('HOSTFD OK')\n\
        except OSError as e:\n    print('HOSTFD', e.errno)\n\
        os.chmod('a.txt', 0o600); print('PATH OK')\n";
        let mut cmd = p.command(&run_args(
            &["--cow", ".", "--on-exit", "discard"],
            &["/usr/bin/python3", "-c", script],
        ));
        cmd.current_dir(p.dir());
        cmd.stdin(fs::File::open(p.tmp.join("proj/a.txt")).unwrap());
        let out = run_cmd_stdin_inherited(cmd);
        out.expect_code(0).expect_stdout("HOSTFD 1\nPATH OK\n");
        let mode = fs::metadata(p.tmp.join("proj/a.txt")).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o644, "{}", out.dump());
    }
);

/// Runs `cmd` with the stdin it was given (run_cmd replaces it).
fn run_cmd_stdin_inherited(mut cmd: Command) -> Out {
    use std::process::Stdio;
    let what = format!("{cmd:?}");
    let start = std::time::Instant::now();
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    Out {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
        what,
    }
}

both!(the_layer_is_never_under_a_write_grant, |ctx| {
    let p = Project::new(ctx, "cowgrant");
    fs::create_dir_all(p.state()).unwrap();
    chown_r(&p.state(), ctx.uid());
    let state = p.state();
    // The workload may write the state directory: it must find no layer
    // there, and the kept one is elsewhere.
    let out = p.run(
        &["-w", &state],
        &format!("echo two > a.txt && ls -A {state} && exit 1"),
    );
    out.expect_code(1).expect_stdout("");
    let kept = out
        .stderr
        .lines()
        .find_map(|l| l.split(" in ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no kept layer\n{}", out.dump()))
        .to_string();
    assert!(!kept.starts_with(&state), "{kept}");
    assert_eq!(
        fs::read_to_string(Path::new(&kept).join("0/upper/a.txt")).unwrap(),
        "two\n"
    );
    p.sl(&["cow".into(), "drop".into(), kept.clone()])
        .expect_code(0);
    assert!(!Path::new(&kept).exists());
    // Twin: without the grant the layer is in the state directory.
    p.run(&[], "echo two > a.txt && exit 1").expect_code(1);
    assert_eq!(p.layers().len(), 1);
});

both!(a_layer_of_another_user_is_never_applied, |ctx| {
    let p = Project::new(ctx, "cowforeign");
    p.run(&[], "echo two > a.txt && exit 1").expect_code(1);
    let layer = p.layer();
    let other = if ctx.uid() == 0 { 65534 } else { 0 };
    chown_r(&p.state(), other);
    let out = p.sl(&["cow".into(), "apply".into(), layer.clone()]);
    out.expect_code(2);
    // Not this user's: refused as such, or unreadable to it at all.
    assert!(
        out.stderr.contains("not a directory of this user")
            || out.stderr.contains("Permission denied"),
        "{}",
        out.dump()
    );
    assert_eq!(
        fs::read_to_string(p.tmp.join("proj/a.txt")).unwrap(),
        "one\n"
    );
    // Twin: the user's own layer applies.
    chown_r(&p.state(), ctx.uid());
    p.sl(&["cow".into(), "apply".into(), layer]).expect_code(0);
    assert_eq!(
        fs::read_to_string(p.tmp.join("proj/a.txt")).unwrap(),
        "two\n"
    );
});

both!(a_sparse_file_stays_sparse_and_exact, |ctx| {
    let p = Project::new(ctx, "cowsparse");
    let script =
        "f = open('s', 'wb'); f.write(b'head'); f.seek(1 << 30); f.write(b'tail'); f.close()";
    let mut cmd = p.command(&run_args(
        &["--cow", ".", "--cow-summary", "none"],
        &["/usr/bin/python3", "-c", script],
    ));
    cmd.current_dir(p.dir());
    run_cmd(cmd, None, Duration::from_secs(60)).expect_code(0);
    let s = p.tmp.path().join("proj/s");
    let m = fs::metadata(&s).unwrap();
    assert_eq!(m.len(), (1 << 30) + 4);
    assert!(
        m.blocks() * 512 < 1 << 20,
        "{} bytes allocated",
        m.blocks() * 512
    );
    let mut f = fs::File::open(&s).unwrap();
    let mut head = [0u8; 4];
    std::io::Read::read_exact(&mut f, &mut head).unwrap();
    assert_eq!(&head, b"head");
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(1 << 30)).unwrap();
    std::io::Read::read_exact(&mut f, &mut head).unwrap();
    assert_eq!(&head, b"tail");
});

both!(names_cannot_fake_lines_of_the_summary, |ctx| {
    let p = Project::new(ctx, "cowname");
    let out = p.run(
        &[],
        "touch \"$(printf 'x\\033[2Ay\\n  A fake')\" && touch plain",
    );
    out.expect_code(0);
    assert!(
        out.stderr
            .lines()
            .any(|l| l == "  A x\\x1b[2Ay\\x0a  A fake"),
        "{}",
        out.dump()
    );
    assert!(
        !out.stderr.lines().any(|l| l == "  A fake"),
        "{}",
        out.dump()
    );
    // Twin: a plain name prints as it is.
    assert!(
        out.stderr.lines().any(|l| l == "  A plain"),
        "{}",
        out.dump()
    );
});
