//! File metadata outside the write grants: mode, owner, times, extended
//! attributes, attribute flags and size by path, which Landlock does not
//! govern. Each attack runs against a host file the workload's uid owns
//! (so the kernel alone would allow the change), and has a twin: the same
//! operations on a file under a write grant succeed and reach the host.

use crate::common::*;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

/// A file owned by the workload's uid, mode 0644, in a fresh directory.
fn owned_file(ctx: &Ctx, dir: &TempDir, name: &str) -> String {
    let path = dir.file(name, "host bytes\n");
    std::os::unix::fs::chown(&path, Some(ctx.uid()), Some(ctx.uid())).expect("chown");
    path
}

/// What the host sees of a file: mode, mtime, size, and its user.x xattr.
fn host_view(path: &str) -> (u32, i64, u64, Option<String>) {
    let m = fs::metadata(path).expect("stat");
    let xattr = std::process::Command::new(PYTHON)
        .args([
            "-c",
            "import os,sys; print(os.getxattr(sys.argv[1], 'user.x').decode(), end='')",
            path,
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    (m.mode() & 0o7777, m.mtime(), m.size(), xattr)
}

/// Every way the probe changes a file's metadata, each labelled.
fn changes(f: &str, uid: u32) -> Vec<String> {
    let uid = uid.to_string();
    [
        format!("chmod,{f},666"),
        format!("fchmod,{f},640"),
        format!("chmodlink,{f},600"),
        format!("chown,{f},{uid},{uid}"),
        format!("fchown,{f},{uid},{uid}"),
        format!("setxattr,{f},user.x,mark"),
        format!("fsetxattr,{f},user.x,mark"),
        format!("chattr,{f}"),
        format!("truncate,{f},4"),
        // Last: the changes above move the modification time.
        format!("utime,{f},1000000000"),
        format!("futime,{f},1000000000"),
    ]
    .into_iter()
    .collect()
}

const LABELS: [&str; 11] = [
    "chmod",
    "fchmod",
    "chmodlink",
    "chown",
    "fchown",
    "utime",
    "futime",
    "setxattr",
    "fsetxattr",
    "chattr",
    "truncate",
];

both!(metadata_of_a_readable_host_file_cannot_change, |ctx| {
    let dir = TempDir::new("meta");
    let f = owned_file(&ctx, &dir, "f");
    let before = host_view(&f);
    let out = ctx.sl(reach_args(&["-r", &dir.s()], &changes(&f, ctx.uid())));
    out.expect_code(0);
    for l in LABELS {
        out.expect_err(l, "EPERM");
    }
    assert_eq!(
        host_view(&f),
        before,
        "the host file changed\n{}",
        out.dump()
    );
    let denials = out.denial_lines();
    for syscall in [
        "chmod ",
        "fchmod fd",
        "chown ",
        "fchown fd",
        "utimensat",
        "setxattr",
        "ioctl fd",
        "truncate ",
    ] {
        assert!(
            denials
                .iter()
                .any(|l| l.contains(syscall) && l.contains("write grant")),
            "no denial line for {syscall}\n{}",
            out.dump()
        );
    }

    // twin: the same file under a write grant changes, on the host too
    let out = ctx.sl(reach_args(&["-w", &dir.s()], &changes(&f, ctx.uid())));
    out.expect_code(0);
    for l in LABELS {
        if l == "chattr" {
            // ext4 and xfs keep the flag; tmpfs has no such ioctl: either
            // way it was the filesystem that answered, not a refusal.
            assert_ne!(out.probe(l), Err("EPERM".into()), "{}", out.dump());
        } else {
            out.expect_ok(l, "");
        }
    }
    let (mode, mtime, size, xattr) = host_view(&f);
    assert_eq!(
        (mode, mtime, size),
        (0o600, 1_000_000_000, 4),
        "{}",
        out.dump()
    );
    assert_eq!(xattr.as_deref(), Some("mark"), "{}", out.dump());
    assert!(out.denial_lines().is_empty(), "{}", out.dump());
});

both!(metadata_of_an_unreadable_host_file_cannot_change, |ctx| {
    // Nothing granted at all: Landlock refuses every open of it, and the
    // calls by path must not get through either.
    let dir = TempDir::new("meta-hidden");
    let f = owned_file(&ctx, &dir, "f");
    let before = host_view(&f);
    let ops: Vec<String> = [
        format!("chmod,{f},666"),
        format!("lchown,{f},{0},{0}", ctx.uid()),
        format!("utime,{f},1000000000"),
        format!("setxattr,{f},user.x,mark"),
        format!("removexattr,{f},user.x"),
        format!("truncate,{f},0"),
    ]
    .into();
    let out = ctx.sl(reach_args(&[], &ops));
    out.expect_code(0);
    for l in [
        "chmod",
        "lchown",
        "utime",
        "setxattr",
        "removexattr",
        "truncate",
    ] {
        out.expect_err(l, "EPERM");
    }
    assert_eq!(host_view(&f), before, "{}", out.dump());

    // twin: without sandlock's decision the kernel would have let it
    // (the workload's uid owns the file): under a write grant it does.
    let out = ctx.sl(reach_args(&["-w", &dir.s()], &ops[..1]));
    out.expect_code(0).expect_ok("chmod", "");
    assert_eq!(host_view(&f).0, 0o666);
});

both!(
    setuid_setgid_and_file_caps_are_refused_even_in_a_write_grant,
    |ctx| {
        let dir = TempDir::new("meta-suid");
        let sh = dir.join("sh");
        let made = dir.join("made");
        let node = dir.join("node");
        let ops: Vec<String> = [
            format!("copy,/bin/sh,{sh}"),
            format!("suid:chmod,{sh},4755"),
            format!("sgid:chmod,{sh},2755"),
            format!("fsuid:fchmod,{sh},6755"),
            format!("create,{made},4755"),
            format!("mknod,{node},2755"),
            format!("setxattr,{sh},security.capability,x"),
            format!("mode,{sh}"),
        ]
        .into();
        let out = ctx.sl(reach_args(&["-w", &dir.s()], &ops));
        out.expect_code(0).expect_ok("copy", "");
        for l in ["suid", "sgid", "fsuid", "create", "mknod", "setxattr"] {
            out.expect_err(l, "EPERM");
        }
        out.expect_ok("mode", "755");
        let mode = fs::metadata(&sh).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o755, "{}", out.dump());
        assert!(!std::path::Path::new(&made).exists() && !std::path::Path::new(&node).exists());
        assert!(
            out.denial_lines()
                .iter()
                .filter(|l| l.contains("setuid and setgid"))
                .count()
                >= 5,
            "{}",
            out.dump()
        );

        // twin: the same calls without the privilege bits succeed
        let ops: Vec<String> = [
            format!("plain:chmod,{sh},750"),
            format!("create,{made},755"),
            format!("mknod,{node},644"),
        ]
        .into();
        let out = ctx.sl(reach_args(&["-w", &dir.s()], &ops));
        out.expect_code(0)
            .expect_ok("plain", "")
            .expect_ok("create", "755")
            .expect_ok("mknod", "");
    }
);

both!(a_read_only_open_with_o_trunc_empties_nothing, |ctx| {
    let dir = TempDir::new("meta-trunc");
    let f = owned_file(&ctx, &dir, "f");
    let out = ctx.sl(reach_args(&["-r", &dir.s()], &[format!("rdtrunc,{f}")]));
    out.expect_code(0).expect_err("rdtrunc", "EACCES");
    assert_eq!(fs::read_to_string(&f).unwrap(), "host bytes\n");

    // twin: under a write grant the same open truncates, as Linux does
    let out = ctx.sl(reach_args(&["-w", &dir.s()], &[format!("rdtrunc,{f}")]));
    out.expect_code(0).expect_ok("rdtrunc", "");
    assert_eq!(fs::read_to_string(&f).unwrap(), "");
});

/// As root, the supervisor acts with the workload's rights (uid 0 without
/// capabilities), not its own: a file root does not own stays unchanged
/// even under a write grant, and one it owns changes.
#[test]
fn changes_are_made_with_the_workloads_rights() {
    if !is_root() {
        return;
    }
    let ctx = Ctx::invoker();
    let dir = TempDir::new("meta-rights");
    let theirs = dir.file("theirs", "x");
    std::os::unix::fs::chown(&theirs, Some(NOBODY), Some(NOBODY)).unwrap();
    let mine = dir.file("mine", "x");
    let ops = vec![
        format!("theirs:chmod,{theirs},600"),
        format!("mine:chmod,{mine},600"),
        format!("give:chown,{mine},{NOBODY},{NOBODY}"),
    ];
    let out = ctx.sl(reach_args(&["-w", &dir.s()], &ops));
    out.expect_code(0)
        .expect_err("theirs", "EPERM")
        .expect_ok("mine", "")
        .expect_err("give", "EPERM");
    assert_eq!(fs::metadata(&theirs).unwrap().mode() & 0o777, 0o644);
    assert_eq!(fs::metadata(&mine).unwrap().uid(), 0);

    // twin: --keep-caps keeps root's capabilities, under the write grant
    // only: chown works there, and still not outside.
    let outside = TempDir::new("meta-rights-out");
    let host = outside.file("host", "x");
    let ops = vec![
        format!("give:chown,{mine},{NOBODY},{NOBODY}"),
        format!("theirs:chmod,{theirs},600"),
        format!("host:chown,{host},{NOBODY},{NOBODY}"),
    ];
    let out = ctx.sl(reach_args(&["--keep-caps", "-w", &dir.s()], &ops));
    out.expect_code(0)
        .expect_ok("give", "")
        .expect_ok("theirs", "")
        .expect_err("host", "EPERM");
    assert_eq!(fs::metadata(&mine).unwrap().uid(), NOBODY);
    assert_eq!(fs::metadata(&host).unwrap().uid(), 0);
}

/// Sends, from a process in a mount namespace of its own (`unshare -m`),
/// an fd of `target` (a path, or "memfd") to the unix socket at `sock`,
/// retrying until it exists.
fn send_fd_from_another_namespace(sock: &str, target: &str) -> std::process::Child {
    const SEND: &str = r#"
import os, socket, sys, time
path, target = sys.argv[1], sys.argv[2]
fd = os.memfd_create("x") if target == "memfd" else os.open(target, os.O_RDONLY)
for _ in range(400):
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        break
    except OSError:
        time.sleep(0.025)
socket.send_fds(s, [b"x"], [fd])
"#;
    std::process::Command::new("unshare")
        .args(["-m", PYTHON, "-c", SEND, sock, target])
        .spawn()
        .expect("unshare -m python3")
}

/// A file of another mount namespace is not anonymous: its metadata stays
/// out of reach (a descriptor of it can be passed in over a socket).
#[test]
fn a_file_of_another_mount_namespace_is_not_the_workloads() {
    if !is_root() {
        return; // unshare -m needs CAP_SYS_ADMIN
    }
    let ctx = Ctx::invoker();
    let host = TempDir::new("meta-foreign");
    let f = host.file("f", "x");
    let grant = TempDir::new("meta-foreign-w");
    for (target, want) in [
        (f.as_str(), Err("EPERM".to_string())),
        ("memfd", Ok(String::new())),
    ] {
        let sock = format!("{}/fd-{}.sock", grant.s(), want.is_ok());
        let mut sender = send_fd_from_another_namespace(&sock, target);
        let out = ctx.sl(reach_args(
            &["-w", &grant.s()],
            &[format!("recvfd,{sock},666")],
        ));
        let _ = sender.wait();
        out.expect_code(0);
        // twin (memfd): an object no path reaches is the workload's own
        assert_eq!(out.probe("recvfd"), want, "{target}\n{}", out.dump());
    }
    assert_eq!(fs::metadata(&f).unwrap().mode() & 0o777, 0o644);
}
