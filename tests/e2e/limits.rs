//! Resource limits: `--memory`, `--pids`, `--cpu`, `--open-files`,
//! `--file-size` and `--disk`, from flags and from a profile's `[limits]`.
//!
//! Each limit test pushes a workload (tests/fixtures/limitprobe.py) past
//! the limit and checks exactly what stops it: the errno, how far it got
//! (forks, bytes, descriptors), the exit status and sandlock's stderr line.
//! Its twin runs the same workload without the limit or under a generous
//! one, and shows it goes further, so a test cannot pass merely because
//! the workload is broken. Which mechanism enforces a limit depends on the
//! host and on who runs sandlock (`sandlock check`); where the exact
//! behaviour differs by mechanism, the test asks `check` and says so.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::{RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use crate::common::*;

const MIB: u64 = 1 << 20;

/// The test that measures CPU time runs alone among these tests (they all
/// hold this lock to read, it holds it to write): on a 2-core machine the
/// forks, allocations and busy loops of others would skew its measurement.
static MACHINE: RwLock<()> = RwLock::new(());

/// A share of the machine, for every test but the CPU measurement.
fn shared() -> RwLockReadGuard<'static, ()> {
    MACHINE.read().unwrap_or_else(|e| e.into_inner())
}

/// Arguments "run <extra...> -r FIXDIR -- python3 -I limitprobe.py <ops...>".
fn limit_args(extra: &[&str], ops: &[&str]) -> Vec<String> {
    script_args(extra, format!("{}/limitprobe.py", fixdir()), ops)
}

/// The number a probe line "OP OK N" reports.
#[track_caller]
fn number(out: &Out, op: &str) -> u64 {
    let v = out
        .probe(op)
        .unwrap_or_else(|e| panic!("probe {op} failed with {e}\n{}", out.dump()));
    v.parse()
        .unwrap_or_else(|_| panic!("probe {op}: {v:?} is not a number\n{}", out.dump()))
}

/// True when stderr has exactly `line` as one of its lines.
fn has_line(out: &Out, line: &str) -> bool {
    out.stderr.lines().any(|l| l == line)
}

/// What `sandlock check`, run as `ctx`'s user, says enforces `flag`
/// ("cgroup v1 memory controller", ...); panics unless it says "yes".
fn mechanism(ctx: &Ctx, flag: &str) -> String {
    let out = ctx.sl(["check"]);
    let line = out
        .stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(flag))
        .unwrap_or_else(|| panic!("no {flag} line in sandlock check\n{}", out.dump()));
    let mut words = line.split_whitespace();
    words.next();
    assert_eq!(words.next(), Some("yes"), "{flag}: {line}\n{}", out.dump());
    words.collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------
// --pids
// ---------------------------------------------------------------------------

/// The stderr line a fork refused by the cgroup's pids limit gets.
const PIDS_REFUSED: &str = "sandlock: refused a fork: pids limit 64 reached";

both!(fork_bomb_under_pids_64_gets_eagain_host_answers, |ctx| {
    let _shared = shared();
    let d = TempDir::new("pids");
    let fork = format!("fork,1000,{}", d.s());
    let args = limit_args(&["--pids", "64", "-w", &d.s()], &[&fork]);
    let argv: Vec<String> = args[args.iter().position(|a| a == "--").unwrap() + 1..].to_vec();
    let (capped, release) = (d.join("capped"), d.join("release"));
    // Once the workload is at its limit (and holds every child it got),
    // the host, as the same user, starts a process of its own; then the
    // workload holds on for 200 ms more (several ticks of sandlock's
    // watch) before it lets its children go.
    let mut host: Option<(Result<std::process::ExitStatus, String>, Duration)> = None;
    let out = run_cmd_watch(ctx.command(&args), None, RUN_LIMIT, |_| {
        if host.is_none() && Path::new(&capped).exists() {
            let mut cmd = Command::new("/bin/true");
            if ctx.drop_to_nobody {
                cmd.uid(NOBODY).gid(NOBODY);
            }
            let start = Instant::now();
            let st = cmd.status().map_err(|e| e.to_string());
            host = Some((st, start.elapsed()));
            std::thread::sleep(Duration::from_millis(200));
            std::fs::write(&release, "").unwrap();
        }
    });
    out.expect_code(0).expect_err("fork", "EAGAIN");
    let forked = number(&out, "forked");
    // 64 processes: the workload itself and 63 children.
    assert!(
        (56..64).contains(&forked),
        "forked {forked} children under --pids 64\n{}",
        out.dump()
    );
    let (st, took) = host.unwrap_or_else(|| panic!("the workload never capped\n{}", out.dump()));
    assert!(
        matches!(&st, Ok(s) if s.success()),
        "the host could not run /bin/true while the sandbox was at its limit: {st:?}\n{}",
        out.dump()
    );
    assert!(
        took < Duration::from_secs(2),
        "/bin/true took {took:?} on the host\n{}",
        out.dump()
    );
    assert!(
        out.elapsed < Duration::from_secs(15),
        "the run took {:?}\n{}",
        out.elapsed,
        out.dump()
    );
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    assert_eq!(
        pids_running(&argv),
        Vec::<u32>::new(),
        "children of the fork bomb outlived the run\n{}",
        out.dump()
    );
    // Only a cgroup tells sandlock that the kernel refused a fork
    // (RLIMIT_NPROC refuses it silently).
    if mechanism(&ctx, "--pids").starts_with("cgroup") {
        assert!(
            has_line(&out, PIDS_REFUSED),
            "no refusal line\n{}",
            out.dump()
        );
    }
});

both!(pids_refusal_reported_when_run_ends_at_once, |ctx| {
    // The fork loop above, ending as soon as a fork fails: the refusal
    // happened all the same, and is reported all the same.
    let _shared = shared();
    if !mechanism(&ctx, "--pids").starts_with("cgroup") {
        return;
    }
    let mut missing = 0;
    for _ in 0..5 {
        let out = ctx.sl(limit_args(&["--pids", "64"], &["fork,1000"]));
        out.expect_code(0).expect_err("fork", "EAGAIN");
        if !has_line(&out, PIDS_REFUSED) {
            missing += 1;
        }
    }
    assert_eq!(
        missing, 0,
        "{missing} of 5 runs whose fork was refused had no {PIDS_REFUSED:?} line"
    );
});

both!(forks_under_pids_200_all_succeed, |ctx| {
    let _shared = shared();
    // Twin: the same fork loop under a generous limit gets all it asks for.
    let out = ctx.sl(limit_args(&["--pids", "200"], &["fork,100"]));
    out.expect_code(0)
        .expect_ok("fork", "")
        .expect_ok("forked", "100");
    assert!(!out.stderr.contains("pids limit"), "{}", out.dump());
});

// ---------------------------------------------------------------------------
// --memory
// ---------------------------------------------------------------------------

both!(memory_256m_kills_a_1gib_allocation_and_says_so, |ctx| {
    let _shared = shared();
    let d = TempDir::new("memory");
    let audit = d.join("audit.jsonl");
    let out = ctx.sl(limit_args(
        &["--memory", "256M", "--audit", &audit],
        &["alloc,1024"],
    ));
    out.expect_code(137);
    assert!(
        has_line(&out, "sandlock: killed: memory limit 256M reached"),
        "no kill line\n{}",
        out.dump()
    );
    assert!(!out.stdout.contains("alloc OK"), "{}", out.dump());
    let reached: u64 = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("progress "))
        .filter_map(|n| n.parse().ok())
        .max()
        .unwrap_or(0);
    // A cgroup refuses the page that would cross the limit (the
    // interpreter itself holds some of it); the watchdog samples every
    // 10 ms, so the tree may pass it by a few allocations before it dies.
    let how = mechanism(&ctx, "--memory");
    let most = if how.starts_with("cgroup") { 240 } else { 320 };
    assert!(
        reached <= most,
        "held {reached} MiB under --memory 256M ({how})\n{}",
        out.dump()
    );
    let text = std::fs::read_to_string(&audit)
        .unwrap_or_else(|e| panic!("no audit file {audit}: {e}\n{}", out.dump()));
    let limits: Vec<Value> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}"))
        })
        .filter(|v| v.get("event").and_then(Value::as_str) == Some("limit"))
        .collect();
    assert!(
        limits.iter().any(|v| {
            v.get("limit").and_then(Value::as_str) == Some("memory")
                && v.get("action").and_then(Value::as_str) == Some("killed")
                && v.get("value").and_then(Value::as_str) == Some("256M")
        }),
        "no memory limit record in the audit log:\n{text}"
    );
});

both!(memory_256m_lets_a_64mib_allocation_finish, |ctx| {
    let _shared = shared();
    // Twin: an allocation well under the limit completes.
    let out = ctx.sl(limit_args(&["--memory", "256M"], &["alloc,64"]));
    out.expect_code(0).expect_ok("alloc", "64");
    assert!(!out.stderr.contains("limit"), "{}", out.dump());
});

// ---------------------------------------------------------------------------
// --cpu
// ---------------------------------------------------------------------------

/// The CPU time and wall time of a 3 s busy loop run with `extra`.
fn spin(ctx: Ctx, extra: &[&str]) -> (f64, f64, Out) {
    let out = ctx.sl(limit_args(extra, &["spin,3"]));
    out.expect_code(0);
    let v = out
        .probe("spin")
        .unwrap_or_else(|e| panic!("spin failed: {e}\n{}", out.dump()));
    let mut it = v.split(' ').map(|x| x.parse::<f64>().unwrap());
    let (cpu, wall) = (it.next().unwrap(), it.next().unwrap());
    (cpu, wall, out)
}

both!(cpu_half_holds_a_busy_loop_near_half_a_core, |ctx| {
    let _alone = MACHINE.write().unwrap_or_else(|e| e.into_inner());
    // The limited loop and its unlimited twin run side by side: 1.5 cores
    // of demand on a 2-core machine.
    let twin = std::thread::spawn(move || spin(ctx, &[]));
    let (cpu, wall, out) = spin(ctx, &["--cpu", "0.5"]);
    let (tcpu, twall, tout) = twin.join().unwrap();
    let ratio = cpu / wall;
    assert!(
        (0.3..=0.7).contains(&ratio),
        "--cpu 0.5: {cpu:.3} s of CPU in {wall:.3} s = {ratio:.3}\n{}",
        out.dump()
    );
    assert!(
        has_line(&out, "sandlock: throttled: cpu limit 0.5 reached"),
        "no throttle line\n{}",
        out.dump()
    );
    let tratio = tcpu / twall;
    assert!(
        tratio > 0.8,
        "without --cpu: {tcpu:.3} s of CPU in {twall:.3} s = {tratio:.3} \
         (limited: {ratio:.3})\n{}",
        tout.dump()
    );
    assert!(!tout.stderr.contains("throttled"), "{}", tout.dump());
});

// ---------------------------------------------------------------------------
// --disk
// ---------------------------------------------------------------------------

both!(disk_64m_stops_a_writer_in_tmpdir_and_home, |ctx| {
    let _shared = shared();
    for var in ["$TMPDIR", "$HOME"] {
        let path = format!("{var}/big");
        let op = format!("write,{path},{}", 100 * MIB);
        let out = ctx.sl(limit_args(&["--disk", "64M"], &[&op]));
        out.expect_code(0);
        match out.probe("write") {
            Err(e) if e == "ENOSPC" || e == "EDQUOT" => {}
            other => panic!(
                "{path}: expected ENOSPC or EDQUOT, got {other:?}\n{}",
                out.dump()
            ),
        }
        let written = number(&out, "written");
        assert!(
            (48 * MIB..=64 * MIB).contains(&written),
            "{path}: {written} bytes written under --disk 64M\n{}",
            out.dump()
        );

        // Twins: 32 MiB fits under the same cap; the same 100 MiB fits
        // under a generous one.
        let op = format!("write,{path},{}", 32 * MIB);
        let out = ctx.sl(limit_args(&["--disk", "64M"], &[&op]));
        out.expect_code(0).expect_ok("write", "");
        out.expect_ok("written", &(32 * MIB).to_string());
        let op = format!("write,{path},{}", 100 * MIB);
        let out = ctx.sl(limit_args(&["--disk", "256M"], &[&op]));
        out.expect_code(0).expect_ok("write", "");
        out.expect_ok("written", &(100 * MIB).to_string());
    }
});

// ---------------------------------------------------------------------------
// --open-files, --file-size
// ---------------------------------------------------------------------------

both!(open_files_16_ends_in_emfile, |ctx| {
    let _shared = shared();
    let out = ctx.sl(limit_args(&["--open-files", "16"], &["open,100"]));
    // 16 descriptors: stdin, stdout, stderr and 13 more.
    out.expect_code(0)
        .expect_err("open", "EMFILE")
        .expect_ok("opened", "13");

    // Twin: a generous limit lets all 100 open.
    let out = ctx.sl(limit_args(&["--open-files", "256"], &["open,100"]));
    out.expect_code(0)
        .expect_ok("open", "")
        .expect_ok("opened", "100");
});

both!(open_files_16_holds_when_sandlock_inherits_many_fds, |ctx| {
    // A library's caller may hold dozens of fds when it starts a sandbox;
    // the workload starts without them, within its limit. The limit goes
    // on after the workload's own setup opens (its /proc rule, the
    // listener): set before them, with fds 3..30 taken, they met EMFILE.
    let _shared = shared();
    let redirects: String = (3..=30).map(|fd| format!("{fd}</dev/null ")).collect();
    let script = format!("exec {redirects}; exec \"$0\" \"$@\"");
    let bin = ctx.sandlock_bin();
    let run = |limit: &str| {
        // bash: dash takes single-digit fds only.
        let mut cmd = ctx.wrapper("/bin/bash");
        cmd.args(["-c", &script, &bin])
            .args(limit_args(&["--open-files", limit], &["open,100"]));
        run_cmd(cmd, None, RUN_LIMIT)
    };
    run("16")
        .expect_code(0)
        .expect_err("open", "EMFILE")
        .expect_ok("opened", "13");
    // Twin: a generous limit lets all 100 open.
    run("256")
        .expect_code(0)
        .expect_ok("open", "")
        .expect_ok("opened", "100");
});

both!(file_size_1m_refuses_a_write_past_it, |ctx| {
    let _shared = shared();
    let two = (2 * MIB).to_string();
    let big = format!("write,$TMPDIR/f,{two}");
    // A process ignoring SIGXFSZ gets EFBIG after exactly 1 MiB.
    let out = ctx.sl(limit_args(&["--file-size", "1M"], &["nosigxfsz", &big]));
    out.expect_code(0)
        .expect_err("write", "EFBIG")
        .expect_ok("written", &MIB.to_string());

    // Twins: 512 KiB fits under the limit; 2 MiB fits without one.
    let small = format!("write,$TMPDIR/f,{}", 512 << 10);
    let out = ctx.sl(limit_args(&["--file-size", "1M"], &["nosigxfsz", &small]));
    out.expect_code(0)
        .expect_ok("write", "")
        .expect_ok("written", &(512 << 10).to_string());
    let out = ctx.sl(limit_args(&[], &["nosigxfsz", &big]));
    out.expect_code(0)
        .expect_ok("write", "")
        .expect_ok("written", &two);
});

both!(file_size_1m_sigxfsz_kills_and_says_so, |ctx| {
    let _shared = shared();
    let script = "exec head -c 2097152 /dev/zero > \"$TMPDIR/f\"";
    let out = ctx.sl(run_args(&["--file-size", "1M"], &["/bin/sh", "-c", script]));
    out.expect_code(128 + 25);
    assert!(
        has_line(&out, "sandlock: killed: file-size limit 1M reached"),
        "no kill line\n{}",
        out.dump()
    );
    // Twin: without the limit the same writer finishes.
    let check = "head -c 2097152 /dev/zero > \"$TMPDIR/f\" && stat -c %s \"$TMPDIR/f\"";
    let out = ctx.sl(run_args(&[], &["/bin/sh", "-c", check]));
    out.expect_code(0).expect_stdout("2097152\n");
});

// ---------------------------------------------------------------------------
// Bad values
// ---------------------------------------------------------------------------

both!(bad_limit_values_are_refused_before_starting, |ctx| {
    let _shared = shared();
    let d = TempDir::new("badlimit");
    let marker = d.join("ran");
    let touch = format!("touch {marker}");
    let cases: &[(&str, &str, &str)] = &[
        ("--memory", "1K", "must be at least 4M"),
        ("--cpu", "0", "must be more than 0"),
        (
            "--cpu",
            "2x",
            "expected a share of one CPU such as 0.5 or 2",
        ),
        ("--pids", "0", "must be from 1 to 4194304"),
    ];
    for (flag, value, why) in cases {
        let out = ctx.sl(run_args(
            &[flag, value, "-w", &d.s()],
            &["/bin/sh", "-c", &touch],
        ));
        out.expect_code(2);
        let want = format!("sandlock: invalid value '{value}' for '{flag}': {why}");
        assert_eq!(out.stderr.trim_end(), want, "{}", out.dump());
        assert!(
            !Path::new(&marker).exists(),
            "the command ran\n{}",
            out.dump()
        );
    }
    // Twin: good values of the same flags run the command.
    let out = ctx.sl(run_args(
        &["--memory", "4M", "--cpu", "2", "--pids", "64", "-w", &d.s()],
        &["/bin/sh", "-c", &touch],
    ));
    out.expect_code(0);
    assert!(
        Path::new(&marker).exists(),
        "the command did not run\n{}",
        out.dump()
    );
});

// ---------------------------------------------------------------------------
// sandlock check
// ---------------------------------------------------------------------------

both!(check_lists_every_limit_as_enforceable, |ctx| {
    let _shared = shared();
    for flag in [
        "--memory",
        "--pids",
        "--cpu",
        "--open-files",
        "--file-size",
        "--disk",
    ] {
        let how = mechanism(&ctx, flag);
        assert!(!how.is_empty(), "{flag}: no mechanism named");
    }
});

// ---------------------------------------------------------------------------
// A profile's [limits]
// ---------------------------------------------------------------------------

both!(profile_limits_section_applies_the_memory_limit, |ctx| {
    let _shared = shared();
    let d = TempDir::new("proflimits");
    let text = "[limits]\nmemory = \"256M\"\n";
    d.dir("cfg/sandlock/profiles", 0o755);
    d.file("cfg/sandlock/profiles/capped.toml", text);
    let path = d.file("capped.toml", text);
    let cfg = d.join("cfg");
    let env = [("XDG_CONFIG_HOME", cfg.as_str())];
    for by in [["-p", "capped"], ["--profile-file", path.as_str()]] {
        let out = ctx.sl_env(limit_args(&by, &["alloc,1024"]), &env);
        out.expect_code(137);
        assert!(
            has_line(&out, "sandlock: killed: memory limit 256M reached"),
            "{by:?}: no kill line\n{}",
            out.dump()
        );
        assert!(!out.stdout.contains("alloc OK"), "{}", out.dump());

        // Twin: under the profile's limit a 64 MiB allocation finishes.
        let out = ctx.sl_env(limit_args(&by, &["alloc,64"]), &env);
        out.expect_code(0).expect_ok("alloc", "64");
    }
    // A flag replaces the profile's value.
    let out = ctx.sl(limit_args(
        &["--profile-file", &path, "--memory", "512M"],
        &["alloc,1024"],
    ));
    out.expect_code(137);
    assert!(
        has_line(&out, "sandlock: killed: memory limit 512M reached"),
        "no kill line naming the flag's value\n{}",
        out.dump()
    );
});
