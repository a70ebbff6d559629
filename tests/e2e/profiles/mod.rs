//! Profiles: `sandlock run -p NAME` / `--profile-file PATH`, `sandlock
//! profile list|show`. This file holds the shared helpers and the tests of
//! lookup, layering and errors; `jobs` runs each shipped profile's job
//! against servers the tests start.
//!
//! Every error test checks the exit status (2), that the workload never
//! ran, and the exact `file:line: key = value` prefix of the message.

mod jobs;

use std::fs;
use std::io::Read;

use crate::common::tls::*;
use crate::common::*;

/// 32 random letters and digits.
fn random_token() -> String {
    let mut f = fs::File::open("/dev/urandom").expect("open /dev/urandom");
    let mut buf = [0u8; 32];
    f.read_exact(&mut buf).unwrap();
    buf.iter()
        .map(|b| b"abcdefghijklmnopqrstuvwxyz0123456789"[(*b % 36) as usize] as char)
        .collect()
}

/// Runs a profile that must be refused: exit 2, nothing ran, one message.
fn refused(ctx: &Ctx, flags: &[&str], env: &[(&str, &str)]) -> String {
    let out = ctx.sl_env(run_args(flags, &["/bin/sh", "-c", "echo RAN"]), env);
    out.expect_code(2);
    assert_eq!(out.stdout, "", "the workload ran\n{}", out.dump());
    out.stderr.clone()
}

both!(each_error_names_file_line_key_and_value, |ctx| {
    let d = TempDir::new("proferr");
    let cases: &[(&str, &str, &str)] = &[
        (
            "section.toml",
            "# a comment\n[filesystem]\nread = [\"/usr\"]\n\n[netwrk]\nallow = [\"a.test\"]\n",
            ":5: [netwrk]: unknown section (expected one of filesystem, network, http, tls, secrets, process, limits, cow)",
        ),
        (
            "key.toml",
            "[network]\nallow = [\"127.0.0.1:80\"]\nalow = [\"b.test\"]\n",
            ":3: network.alow = [...]: unknown key (expected one of allow, add-host, dns-server, allow-bind, unix-allow)",
        ),
        (
            "type.toml",
            "[process]\ntimeout = true\n",
            ":2: process.timeout = true: expected a number or a string",
        ),
        (
            "value.toml",
            "[network]\nallow = [\n    \"127.0.0.1:80\",\n    \"a.test:99999\",\n]\n",
            ":4: network.allow = \"a.test:99999\": invalid value 'a.test:99999' for '--net-allow'",
        ),
    ];
    for (name, text, want) in cases {
        let path = d.file(name, text);
        let err = refused(&ctx, &["--profile-file", &path], &[]);
        let want = format!("sandlock: {path}{want}");
        assert!(err.starts_with(&want), "{name}: want {want:?}\ngot {err:?}");
    }

    // a value where a source belongs: refused, and never echoed
    let value = random_token();
    let path = d.file(
        "secret.toml",
        &format!("[secrets.GH_TOKEN]\nsource = \"{value}\"\nhosts = [\"github.com\"]\n"),
    );
    let err = refused(&ctx, &["--profile-file", &path], &[]);
    let want = format!("sandlock: {path}:2: secrets.GH_TOKEN.source = <hidden>: source must be");
    assert!(err.starts_with(&want), "want {want:?}\ngot {err:?}");
    assert!(!err.contains(&value), "the value was echoed: {err}");

    // a name no directory holds
    let cfg = d.dir("cfg", 0o755);
    let err = refused(
        &ctx,
        &["-p", "no-such-profile"],
        &[("XDG_CONFIG_HOME", cfg.as_str())],
    );
    let want = format!(
        "sandlock: no profile named 'no-such-profile' (looked in {cfg}/sandlock/profiles \
         and the shipped profiles: build, git-https, node-agent, python-agent)"
    );
    assert_eq!(err.trim_end(), want);

    // a missing file
    let missing = d.join("missing.toml");
    let err = refused(&ctx, &["--profile-file", &missing], &[]);
    assert!(
        err.starts_with(&format!(
            "sandlock: cannot use '{missing}' (from --profile-file)"
        )),
        "{err}"
    );
});

both!(cli_lists_append_and_cli_values_override, |ctx| {
    let d = TempDir::new("proflayer");
    d.file("data/a.txt", "from the profile's read\n");
    let other = TempDir::new("proflayer-other");
    other.file("b.txt", "from the flag's read\n");
    // the profile's read is relative to its own directory
    let prof = d.file(
        "p.toml",
        "[filesystem]\nread = [\"data\"]\n[process]\ntimeout = 30\n",
    );
    let script = format!(
        "cat {}/data/a.txt {}/b.txt; echo done; sleep 10",
        d.s(),
        other.s()
    );
    let out = ctx.sl(run_args(
        &["--profile-file", &prof, "-r", &other.s(), "-t", "1"],
        &["/bin/sh", "-c", &script],
    ));
    out.expect_code(124);
    assert_eq!(
        out.stdout,
        "from the profile's read\nfrom the flag's read\ndone\n",
        "{}",
        out.dump()
    );
    assert!(
        out.elapsed.as_secs() < 8,
        "-t 1 did not override timeout = 30\n{}",
        out.dump()
    );

    // twin: the profile's own scalar applies when no flag overrides it
    let quick = d.file("quick.toml", "[process]\ntimeout = 1\n");
    let out = ctx.sl(run_args(&["--profile-file", &quick], &["/bin/sleep", "10"]));
    out.expect_code(124);

    // the same layering on a shipped profile, as --show-policy prints it
    let out = ctx.sl(run_args(
        &[
            "-p",
            "python-agent",
            "--add-host",
            "api.test:127.0.0.1",
            "--http-allow",
            "GET api.test/*",
            "-t",
            "5",
            "--show-policy",
        ],
        &["true"],
    ));
    out.expect_code(0);
    let allows: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("allow: ") && l.contains('/'))
        .collect();
    assert_eq!(
        allows,
        [
            "allow: GET *.openai.com/v1/*",
            "allow: POST *.openai.com/v1/*",
            "allow: GET *.anthropic.com/v1/*",
            "allow: POST *.anthropic.com/v1/*",
            "allow: GET *.pypi.org/simple/*",
            "allow: GET *.pythonhosted.org/packages/*",
            "allow: GET api.test/*",
        ],
        "{}",
        out.dump()
    );
    let lines = out.stdout_lines();
    assert!(lines.contains(&"timeout: 5s"), "{}", out.dump());
    assert!(lines.contains(&"clean env: true"), "{}", out.dump());
});

both!(user_profiles_come_first_then_shipped_ones, |ctx| {
    let d = TempDir::new("proflookup");
    let dir = d.dir("cfg/sandlock/profiles", 0o755);
    let cfg = d.join("cfg");
    let mine = d.file(
        "cfg/sandlock/profiles/mine.toml",
        "[process]\ntimeout = 7\n[process.env]\nMINE = \"yes\"\n",
    );
    // shadows the shipped `build`
    let build = d.file(
        "cfg/sandlock/profiles/build.toml",
        "[process]\ntimeout = 9\n",
    );
    let env = [("XDG_CONFIG_HOME", cfg.as_str())];

    let out = ctx.sl_env(["profile", "list"], &env);
    out.expect_code(0);
    assert_eq!(
        out.stdout,
        format!(
            "build\t{build}\ngit-https\tshipped\nmine\t{mine}\nnode-agent\tshipped\n\
             python-agent\tshipped\n"
        ),
        "{}",
        out.dump()
    );
    assert!(mine.starts_with(&dir));

    let out = ctx.sl_env(
        run_args(&["-p", "mine"], &["/bin/sh", "-c", "echo $MINE"]),
        &env,
    );
    out.expect_code(0).expect_stdout("yes\n");
    let out = ctx.sl_env(["profile", "show", "build"], &env);
    out.expect_code(0);
    assert!(
        out.stdout_lines().contains(&"timeout: 9s"),
        "{}",
        out.dump()
    );

    // without the user's directory, `build` is the shipped one
    let empty = d.dir("empty", 0o755);
    let out = ctx.sl_env(
        ["profile", "show", "build"],
        &[("XDG_CONFIG_HOME", empty.as_str())],
    );
    out.expect_code(0);
    let lines = out.stdout_lines();
    assert!(lines.contains(&"timeout: 3600s"), "{}", out.dump());
    assert!(lines.contains(&"clean env: true"), "{}", out.dump());
});

both!(profile_show_prints_what_show_policy_prints, |ctx| {
    for name in ["python-agent", "node-agent", "git-https", "build"] {
        let show = ctx.sl(["profile", "show", name]);
        show.expect_code(0);
        let run = ctx.sl(run_args(&["-p", name, "--show-policy"], &["true"]));
        run.expect_code(0);
        assert_eq!(show.stdout, run.stdout, "{name}");
        assert!(show.stdout.starts_with("[filesystem]\n"), "{}", show.dump());
    }
    let show = ctx.sl(["profile", "show", "git-https"]);
    let lines = show.stdout_lines();
    assert!(
        lines.contains(&"secret: GH_TOKEN -> *.github.com (over TLS)"),
        "{}",
        show.dump()
    );
    assert!(
        lines.contains(&"        only in headers: authorization"),
        "{}",
        show.dump()
    );
    let out = ctx.sl(["profile", "show", "nope"]);
    out.expect_code(2);
    assert!(
        out.stderr.starts_with("sandlock: no profile named 'nope'"),
        "{}",
        out.dump()
    );
});
