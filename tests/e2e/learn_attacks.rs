//! `--learn` against a workload that tries to get more out of it than it
//! needed (issue 16, an attacker's review): every attack has its twin,
//! the same run doing the legitimate thing, which is learned.
//!
//! - The learning run is widened, but not out of the sandbox's limits or
//!   its own read-only `/proc`: cgroup files and `/proc/sys` stay
//!   unwritable, and the profile grants neither.
//! - Calls that fail (a rename of a missing file into a directory, an
//!   exclusive create of an existing file, the unlink of a symlink into
//!   another directory) grant nothing.
//! - Names and paths the workload makes up cannot break the profile's
//!   lines or reach the terminal; a method `*` is not learned; a name
//!   several names resolve to is written as the address.
//! - The user's CA key, like a `file:` secret, is refused; arguments and
//!   credential-looking `--env` values are not written.

use crate::common::*;
use std::fs;

/// `sandlock run --learn DIR/p.toml FLAGS -- python3 -c CODE ARGS...`;
/// returns the run and the profile's text.
fn learn_py(ctx: &Ctx, d: &TempDir, flags: &[&str], code: &str, args: &[&str]) -> (Out, String) {
    let profile = d.join("p.toml");
    let _ = fs::remove_file(&profile);
    let mut f = vec!["--learn", profile.as_str()];
    f.extend(flags);
    let mut cmd = vec![PYTHON, "-c", code];
    cmd.extend(args);
    let out = ctx.sl(run_args(&f, &cmd));
    let text = fs::read_to_string(&profile).unwrap_or_default();
    (out, text)
}

/// The `[filesystem] write` values of a profile.
fn writes(text: &str) -> Vec<String> {
    let Some(start) = text.find("\nwrite = [\n") else {
        return Vec::new();
    };
    text[start + 11..]
        .lines()
        .take_while(|l| *l != "]")
        .filter_map(|l| l.trim().split('"').nth(1).map(str::to_string))
        .collect()
}

const ESCAPE: &str = r#"import os, sys
res = []
for path in ["/sys/fs/cgroup/pids/cgroup.procs", "/sys/fs/cgroup/memory/cgroup.procs", "/proc/sys/kernel/core_pattern"]:
    try:
        with open(path, "w") as f:
            f.write(str(os.getpid()) if "cgroup" in path else "core")
        res.append("WROTE " + path)
    except OSError as e:
        res.append(f"{path}: {e.errno}")
open(sys.argv[1] + "/ok.txt", "w").write("twin")
print("\n".join(res))
"#;

both!(learning_keeps_cgroups_and_proc_out_of_reach, |ctx| {
    let d = TempDir::new("learn-cg");
    let out_dir = d.dir("out", 0o777);
    let (out, text) = learn_py(&ctx, &d, &["--pids", "64"], ESCAPE, &[&out_dir]);
    out.expect_code(0);
    assert!(!out.stdout.contains("WROTE"), "{}", out.dump());
    // The tries are said, and not granted.
    assert!(
        text.contains(
            "# Written (or tried), but a profile never grants writing there: /sys/fs/cgroup/"
        ),
        "{text}"
    );
    assert!(
        !text.contains("\"/sys") && !text.contains("\"/proc"),
        "{text}"
    );
    // Twin: the write the same run made where it may is learned.
    assert_eq!(
        fs::read_to_string(format!("{out_dir}/ok.txt")).unwrap(),
        "twin"
    );
    assert_eq!(writes(&text), [out_dir], "{text}");
});

const FAILING: &str = r#"import os, sys
d = sys.argv[1]
# A symlink of its own pointing into victim1: unlinking it changes d only.
os.symlink(d + "/victim1/file", d + "/mine/link")
os.unlink(d + "/mine/link")
for f in (lambda: os.rename(d + "/missing", d + "/victim2/x"),
          lambda: os.open(d + "/victim3/existing", os.O_CREAT | os.O_EXCL | os.O_WRONLY),
          lambda: os.link(d + "/missing", d + "/victim4/y"),
          lambda: os.mkdir(d + "/victim5/existing-dir")):
    try:
        f()
    except OSError as e:
        print("failed", e.errno)
"#;

both!(calls_that_fail_grant_nothing, |ctx| {
    let d = TempDir::new("learn-fail");
    for v in [
        "victim1", "victim2", "victim3", "victim4", "victim5", "mine",
    ] {
        d.dir(v, 0o777);
    }
    d.file("victim1/file", "x");
    d.file("victim3/existing", "x");
    d.dir("victim5/existing-dir", 0o777);
    let (out, text) = learn_py(&ctx, &d, &[], FAILING, &[&d.s()]);
    out.expect_code(0);
    assert_eq!(out.stdout.matches("failed").count(), 4, "{}", out.dump());
    // Only the directory whose entries really changed.
    assert_eq!(writes(&text), [d.join("mine")], "{text}");
});

both!(names_the_workload_makes_up_stay_one_escaped_line, |ctx| {
    let d = TempDir::new("learn-names");
    let odd = "a\"\n[http]\nallow = [\"* *\"]\u{1b}[31m\u{202e}";
    let code = r#"import os, sys
p = os.path.join(sys.argv[1], sys.argv[2])
os.mkdir(p)
open(os.path.join(p, "f"), "w").write("x")
"#;
    let (out, text) = learn_py(&ctx, &d, &[], code, &[&d.s(), odd]);
    out.expect_code(0);
    assert!(
        text.bytes()
            .all(|b| b == b'\n' || (0x20..0x7f).contains(&b)),
        "not printable ASCII:\n{text}"
    );
    assert!(!text.contains("\n[http]"), "{text}");
    // It reads back as exactly what was made (the parent, where the odd
    // directory was created).
    let show = ctx.sl(["profile", "show", &d.join("p.toml")]);
    show.expect_code(0);
    assert!(
        show.stdout.contains(&format!("read/write: {}", d.s())),
        "{}",
        show.stdout
    );
    assert!(show.stdout.contains("interception: off"), "{}", show.stdout);
});

both!(
    an_address_several_names_resolve_to_is_written_as_the_address,
    |ctx| {
        let srv = TcpServer::start("127.0.0.1");
        let port = srv.port().to_string();
        let d = TempDir::new("learn-addr");
        let code =
            "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2]))).close()";
        let flags = [
            "--add-host",
            "real.test:127.0.0.1",
            "--add-host",
            "decoy.test:127.0.0.1",
        ];
        let (out, text) = learn_py(&ctx, &d, &flags, code, &["real.test", &port]);
        out.expect_code(0);
        assert!(
        text.contains(&format!("\"127.0.0.1:{port}\",  # learned: connect 127.0.0.1:{port}, which these names all resolved to: ")),
        "{text}"
    );
        // Twin: one name for the address, and the rule names it.
        let flags = ["--add-host", "real.test:127.0.0.1"];
        let (out, text) = learn_py(&ctx, &d, &flags, code, &["real.test", &port]);
        out.expect_code(0);
        assert!(text.contains(&format!("\"real.test:{port}\",")), "{text}");
    }
);

both!(
    the_ca_key_is_refused_and_arguments_and_credentials_are_not_written,
    |ctx| {
        let d = TempDir::new("learn-key");
        let key = d.file("ca.key", "-----BEGIN PRIVATE KEY-----\nnot-a-real-key\n");
        let ca = d.file("ca.pem", "cert");
        let profile = d.join("p.toml");
        let out = ctx.sl(run_args(
            &[
                "--learn",
                &profile,
                "--http-ca",
                &ca,
                "--http-key",
                &key,
                "--http-allow",
                "GET a.test/*",
            ],
            &["true"],
        ));
        out.expect_code(2);
        assert!(
            out.stderr
                .contains("for '--http-key': --learn lets the run read every file"),
            "{}",
            out.dump()
        );
        // Twin: no key of the user's own; the arguments (a token here) and the
        // credential-looking variables are left out.
        let out = ctx.sl(run_args(
            &[
                "--learn",
                &profile,
                "--env",
                "DATABASE_URL=postgres://app:pw-0123456789@db/x",
                "--env",
                "MODE=fast",
            ],
            &[
                "/bin/sh",
                "-c",
                "true",
                "sh",
                "Authorization: Bearer tok-in-argv-0123456789",
            ],
        ));
        out.expect_code(0);
        let text = fs::read_to_string(&profile).unwrap();
        assert!(
            !text.contains("pw-0123456789") && !text.contains("tok-in-argv"),
            "{text}"
        );
        assert!(
            text.contains("one run of /bin/sh (and 4 arguments)"),
            "{text}"
        );
        assert!(text.contains("MODE = \"fast\""), "{text}");
    }
);

both!(a_script_interpreter_is_learned, |ctx| {
    let d = TempDir::new("learn-shebang");
    let interp = d.file("interp/mysh", "");
    fs::copy("/bin/sh", &interp).unwrap();
    let script = d.file("bin/tool", &format!("#!{interp}\necho from the tool\n"));
    use std::os::unix::fs::PermissionsExt;
    for p in [&interp, &script] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let profile = d.join("p.toml");
    let out = ctx.sl(run_args(&["--learn", &profile], &[&script]));
    out.expect_code(0).expect_stdout("from the tool\n");
    let text = fs::read_to_string(&profile).unwrap();
    assert!(text.contains(&format!("\"{interp}\",")), "{text}");
    let again = ctx.sl(run_args(&["-p", &profile], &[&script]));
    again.expect_code(0).expect_stdout("from the tool\n");
    // Twin: only the script granted, the interpreter is not: it fails.
    let bare = ctx.sl(run_args(&["-r", &script], &[&script]));
    assert_ne!(bare.code(), 0, "{}", bare.dump());
});

both!(a_profile_its_own_grants_could_rewrite_is_flagged, |ctx| {
    let d = TempDir::new("learn-self");
    let code = "import sys; open(sys.argv[1] + '/made.txt', 'w').write('x')";
    let (out, text) = learn_py(&ctx, &d, &[], code, &[&d.s()]);
    out.expect_code(0);
    let profile = d.join("p.toml");
    assert!(
        out.stderr.contains(&format!(
            "warning: the profile grants writing {profile} itself"
        )),
        "{}",
        out.dump()
    );
    assert!(
        text.contains(&format!(
            "# WARNING: a write grant below covers this profile ({profile})"
        )),
        "{text}"
    );
    // Twin: writes elsewhere, no warning.
    let elsewhere = d.dir("elsewhere", 0o777);
    let (out, text) = learn_py(&ctx, &d, &[], code, &[&elsewhere]);
    out.expect_code(0);
    assert!(
        !out.stderr.contains("warning:") && !text.contains("WARNING"),
        "{text}"
    );
});
