//! The command line's own documentation (issue 16): `--help` grouped by
//! concern with examples and exit codes, completion scripts and man pages
//! generated from the same definitions, and hints for the usual slips.

use crate::common::*;
use std::process::Command;

/// Every option of `sandlock run`, as `--help` lists them.
fn run_flags(ctx: &Ctx) -> Vec<String> {
    let help = ctx.sl(["run", "--help"]);
    help.expect_code(0);
    // A flag's own line is indented two columns ("  -r, --fs-read") or
    // six ("      --home"); its help text, ten.
    help.stdout
        .lines()
        .filter(|l| {
            l.starts_with("  -") || (l.starts_with("      --") && !l.starts_with("       "))
        })
        .filter_map(|l| l.trim_start().split(", ").last())
        .filter(|w| w.starts_with("--"))
        .map(|w| w.split([' ', '\n']).next().unwrap_or(w).to_string())
        .collect()
}

both!(help_is_grouped_with_examples_and_exit_codes, |ctx| {
    let out = ctx.sl(["run", "--help"]);
    out.expect_code(0);
    let heads = [
        "Profile:",
        "Filesystem:",
        "Network:",
        "HTTP:",
        "Trust (the sandbox CA):",
        "Secrets:",
        "Process:",
        "Resource limits:",
        "Copy-on-write workspaces:",
        "Output:",
        "Examples:",
        "Exit status:",
    ];
    let mut last = 0;
    for h in heads {
        let at = out
            .stdout
            .find(&format!("\n{h}\n"))
            .unwrap_or_else(|| panic!("no {h}\n{}", out.stdout));
        assert!(at > last, "{h} out of order\n{}", out.stdout);
        last = at;
    }
    assert!(
        out.stdout.contains("124 --timeout expired"),
        "{}",
        out.stdout
    );
    assert!(run_flags(&ctx).len() > 40, "{}", out.stdout);
});

both!(completions_know_every_option, |ctx| {
    let flags = run_flags(&ctx);
    for shell in ["bash", "zsh", "fish"] {
        let out = ctx.sl(["completions", shell]);
        out.expect_code(0);
        for f in &flags {
            assert!(
                out.stdout.contains(f.trim_start_matches('-')),
                "{shell}: {f}"
            );
        }
    }
    // The bash script is valid bash.
    let d = TempDir::new("completions");
    let script = d.file("sandlock.bash", &ctx.sl(["completions", "bash"]).stdout);
    let ok = Command::new("bash").args(["-n", &script]).status().unwrap();
    assert!(ok.success());
    // Twin: a shell it does not know is a usage error.
    let bad = ctx.sl(["completions", "tcsh"]);
    bad.expect_code(2);
    assert!(bad.stderr.contains("tcsh"), "{}", bad.dump());
});

both!(man_pages_document_every_option, |ctx| {
    let top = ctx.sl(["man"]);
    top.expect_code(0);
    assert!(top.stdout.contains(".TH sandlock 1"), "{}", top.stdout);
    let run = ctx.sl(["man", "run"]);
    run.expect_code(0);
    assert!(run.stdout.contains(".TH sandlock-run 1"), "{}", run.stdout);
    for f in run_flags(&ctx) {
        // roff escapes each '-' as "\-".
        let escaped = f.replace('-', "\\-");
        assert!(run.stdout.contains(&escaped), "{f} not in the man page");
    }
    assert!(run.stdout.contains(".SH FILESYSTEM"), "{}", run.stdout);
    let bad = ctx.sl(["man", "nope"]);
    bad.expect_code(2);
    assert!(
        bad.stderr.contains("no command named 'nope'"),
        "{}",
        bad.dump()
    );
});

both!(a_command_without_the_separator_gets_a_hint, |ctx| {
    let out = ctx.sl(["run", "-r", "/tmp", "echo", "hi"]);
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("sandlock: the command goes after `--`: sandlock run -r /tmp -- echo hi"),
        "{}",
        out.dump()
    );
    // Twin: with `--` it runs.
    ctx.sl(["run", "-r", "/tmp", "--", "echo", "hi"])
        .expect_code(0)
        .expect_stdout("hi\n");
});

both!(
    a_profile_secret_without_its_variable_names_the_profile,
    |ctx| {
        let out = ctx.sl(["run", "-p", "git-https", "--", "true"]);
        out.expect_code(2);
        assert!(
            out.stderr.contains(
                "sandlock: profile git-https (shipped): secret GH_TOKEN: env:GH_TOKEN is not set \
             (export GH_TOKEN before running sandlock)"
            ),
            "{}",
            out.dump()
        );
        assert!(!out.stderr.contains("'--secret'"), "{}", out.dump());
        // Twin: the same secret on the command line names the flag.
        let out = ctx.sl(["run", "--secret", "GH_TOKEN@*.github.com", "--", "true"]);
        out.expect_code(2);
        assert!(
            out.stderr
                .contains("invalid value 'GH_TOKEN@*.github.com' for '--secret'"),
            "{}",
            out.dump()
        );
    }
);

both!(
    show_policy_says_what_the_proxy_opens_and_what_is_reported,
    |ctx| {
        let d = TempDir::new("showpol");
        let audit = d.join("audit.jsonl");
        let learn = d.join("learned.toml");
        let out = ctx.sl_env(
            run_args(
                &[
                    "--http-allow",
                    "GET api.test/*",
                    "--http-port",
                    "8443",
                    "--add-host",
                    "api.test:127.0.0.1",
                    "--secret",
                    "TOK=env:SRC_VAR@api.test",
                    "-q",
                    "--audit",
                    &audit,
                    "--learn",
                    &learn,
                    "--memory",
                    "256M",
                    "--show-policy",
                ],
                &["true"],
            ),
            &[("SRC_VAR", "value-never-shown-0123456789")],
        );
        out.expect_code(0);
        let lines = out.stdout_lines();
        for want in [
        "inet sockets: only TCP to ports 80,443,8443 of any host, through the proxy, which passes only the requests [http] allows",
        "secret: TOK -> api.test (over TLS)",
        "denials: not printed (--quiet)",
        "memory: 256M (sandlock check shows what enforces it here)",
    ] {
        assert!(lines.contains(&want), "{want}\n{}", out.stdout);
    }
        assert!(
            lines.contains(&format!("audit: {audit} (JSON lines, appended)").as_str()),
            "{}",
            out.stdout
        );
        assert!(
            out.stdout
                .contains(&format!("the profile it needs goes to {learn}")),
            "{}",
            out.stdout
        );
        // Names and hosts only: neither the value nor where it is read from.
        assert!(
            !out.stdout.contains("SRC_VAR") && !out.stdout.contains("value-never"),
            "{}",
            out.stdout
        );
        assert!(
            !out.stdout.contains("inet sockets: denied"),
            "{}",
            out.stdout
        );
        // Twin: without an HTTP rule or a --net-allow, inet sockets are denied.
        let plain = ctx.sl(run_args(&["--show-policy"], &["true"]));
        assert!(
            plain
                .stdout_lines()
                .contains(&"inet sockets: denied (no --net-allow)"),
            "{}",
            plain.stdout
        );
        assert!(
            plain.stdout_lines().contains(&"denials: printed on stderr"),
            "{}",
            plain.stdout
        );
    }
);

/// True when the ELF file at `path` names a program interpreter (a
/// dynamic loader): a `PT_INTERP` entry among its program headers. Every
/// sandlock is position-independent (`ET_DYN`), static or not: a
/// fixed-address build would lose ASLR in the supervisor.
fn has_interpreter(path: &str) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).unwrap();
    let mut head = [0u8; 64];
    f.read_exact(&mut head).unwrap();
    assert_eq!(&head[..5], b"\x7fELF\x02", "{path}: not a 64-bit ELF");
    assert_eq!(head[16..18], [3, 0], "{path}: not position-independent");
    let phoff = u64::from_le_bytes(head[0x20..0x28].try_into().unwrap());
    let phentsize = u64::from(u16::from_le_bytes([head[0x36], head[0x37]]));
    let phnum = u16::from_le_bytes([head[0x38], head[0x39]]);
    (0..u64::from(phnum)).any(|i| {
        let mut p_type = [0u8; 4];
        f.seek(SeekFrom::Start(phoff + i * phentsize)).unwrap();
        f.read_exact(&mut p_type).unwrap();
        u32::from_le_bytes(p_type) == 3 // PT_INTERP
    })
}

#[test]
fn the_suite_runs_the_static_build_when_told_to() {
    // scripts/test.sh points SANDLOCK_E2E_BIN at `cargo build-static`'s
    // sandlock, the one scripts/install.sh installs: it has no loader.
    if std::env::var_os("SANDLOCK_E2E_BIN").is_some() {
        assert!(!has_interpreter(&SANDLOCK), "{} is dynamic", *SANDLOCK);
    }
    // twin: the one Cargo builds for the tests is dynamic
    assert!(has_interpreter(env!("CARGO_BIN_EXE_sandlock")));
}
