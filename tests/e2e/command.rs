//! The program that runs is the one asked for: a command (or the
//! interpreter its `#!` line names) outside what the sandbox may execute
//! stops the run with the path and the `-r` that grants it, instead of
//! the next one on PATH running in its place.

use crate::common::*;
use std::os::unix::fs::PermissionsExt;

/// A directory of the user's holding `python3`, a shim that says so, and
/// `tool`, which `#!/usr/bin/env tool` scripts name.
fn shims() -> TempDir {
    let d = TempDir::new("shims");
    for name in ["python3", "tool"] {
        let p = d.path().join(name);
        std::fs::write(&p, format!("#!/bin/sh\necho \"{name} shim $*\"\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    d
}

both!(a_command_outside_the_view_is_named_not_replaced, |ctx| {
    let d = shims();
    let path = format!("PATH={}:/usr/bin:/bin", d.s());
    let out = ctx.sl(run_args(&["--env", &path], &["python3", "-c", "print(1)"]));
    out.expect_code(126);
    assert_eq!(out.stdout, "", "another python3 ran\n{}", out.dump());
    let want = format!(
        "sandlock: python3: {}/python3 is outside what the sandbox may execute; grant it with -r {}",
        d.s(),
        d.s()
    );
    assert!(out.stderr.contains(&want), "{}", out.dump());
    // twin: granted, the one asked for runs
    let out = ctx.sl(run_args(
        &["--env", &path, "-r", &d.s()],
        &["python3", "-c", "print(1)"],
    ));
    out.expect_code(0)
        .expect_stdout("python3 shim -c print(1)\n");
});

both!(an_interpreter_outside_the_view_is_named, |ctx| {
    let d = shims();
    let s = TempDir::new("scripts");
    let via_env = s.path().join("via-env");
    std::fs::write(&via_env, "#!/usr/bin/env tool\n").unwrap();
    let direct = s.path().join("direct");
    std::fs::write(&direct, format!("#!{}/tool\n", d.s())).unwrap();
    for p in [&via_env, &direct] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!("PATH={}:/usr/bin:/bin", d.s());
    for script in [&via_env, &direct] {
        let script = script.to_str().unwrap();
        let out = ctx.sl(run_args(&["--env", &path, "-r", &s.s()], &[script]));
        out.expect_code(126);
        let want = format!(
            "{}/tool is outside what the sandbox may execute; grant it with -r {}",
            d.s(),
            d.s()
        );
        assert!(out.stderr.contains(&want), "{}", out.dump());
        // twin: the interpreter granted too
        let out = ctx.sl(run_args(
            &["--env", &path, "-r", &s.s(), "-r", &d.s()],
            &[script],
        ));
        out.expect_code(0)
            .expect_stdout(&format!("tool shim {script}\n"));
    }
});

both!(a_missing_command_is_127, |ctx| {
    let out = ctx.sl(run_args(&[], &["no-such-command-sandlock"]));
    out.expect_code(127);
    assert!(
        out.stderr
            .contains("no-such-command-sandlock: command not found"),
        "{}",
        out.dump()
    );
    // twin: one on PATH runs
    ctx.sl(run_args(&[], &["true"])).expect_code(0);
});
