//! The workload's own /proc: its processes (and the reaper as pid 1), the
//! host-wide files programs read, and nothing of the host's processes or
//! the kernel's internals. Where the machine cannot give one (`sandlock
//! check` says so), the workload has no /proc at all.

use crate::common::*;

const LIST_SCRIPT: &str = "echo \"self $$\"; \
    sleep 5 & \
    for p in /proc/[0-9]*; do printf '%s ' \"${p#/proc/}\"; done; echo; \
    printf 'pid1 '; tr '\\0' ' ' < /proc/1/cmdline; echo; \
    [ -e \"/proc/$1\" ] && echo \"host visible\" || echo \"host hidden\"; \
    kill $!";

both!(the_workload_sees_its_own_processes_only, |ctx| {
    let host = HostSleep::start(&ctx);
    let out = ctx.sl(run_args(
        &[],
        &["/bin/sh", "-c", LIST_SCRIPT, "sh", &host.pid().to_string()],
    ));
    out.expect_code(0);
    if !ctx.own_proc() {
        assert!(out.stderr.contains("Permission denied"), "{}", out.dump());
        return;
    }
    let lines = out.stdout_lines();
    assert_eq!(lines.len(), 4, "{}", out.dump());
    // The reaper is pid 1, the workload a small pid after it (the
    // helper that mounted /proc may have taken one), with the sleep and
    // the listing it started: nothing else.
    let me: u32 = lines[0]
        .strip_prefix("self ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{}", out.dump()));
    let pids: Vec<u32> = lines[1]
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(
        (2..10).contains(&me)
            && pids.first() == Some(&1)
            && pids.contains(&me)
            && pids.len() <= 5
            && pids.iter().all(|p| *p < 20),
        "{}",
        out.dump()
    );
    // The reaper shows as sandlock, not with the host's command line.
    assert_eq!(lines[2].trim_end(), "pid1 sandlock", "{}", out.dump());
    assert_eq!(lines[3], "host hidden", "{}", out.dump());
    // twin: the host's /proc has it
    assert!(std::path::Path::new(&format!("/proc/{}", host.pid())).exists());
});

both!(programs_find_what_they_read_in_proc, |ctx| {
    // glibc's pthread_getattr_np reads /proc/self/maps (bun, deno and the
    // JVM abort without it); the rest is what runtimes and tools read.
    let script = "import os, sys\n\
        for p in sys.argv[1:]:\n\
        \x20   try:\n\
        \x20       if p.endswith('/fd'):\n\
        \x20           n = len(os.listdir(p))\n\
        \x20       elif p.endswith('/exe'):\n\
        \x20           n = len(os.readlink(p))\n\
        \x20       else:\n\
        \x20           n = len(open(p, 'rb').read())\n\
        \x20       print(p, 'OK' if n > 0 else 'EMPTY')\n\
        \x20   except OSError as e:\n\
        \x20       print(p, 'ERR', e.strerror)\n";
    let files = [
        "/proc/self/maps",
        "/proc/self/status",
        "/proc/self/stat",
        "/proc/self/cmdline",
        "/proc/self/environ",
        "/proc/self/cgroup",
        "/proc/self/fd",
        "/proc/self/exe",
        "/proc/thread-self/stat",
        "/proc/cpuinfo",
        "/proc/meminfo",
        "/proc/stat",
        "/proc/uptime",
        "/proc/loadavg",
        "/proc/version",
        "/proc/filesystems",
        "/proc/sys/kernel/osrelease",
        "/proc/sys/kernel/pid_max",
        "/proc/sys/vm/overcommit_memory",
    ];
    let mut cmd = vec![PYTHON, "-I", "-c", script];
    cmd.extend(files);
    let out = ctx.sl(run_args(&[], &cmd));
    out.expect_code(0);
    let own = ctx.own_proc();
    for (line, file) in out.stdout_lines().iter().zip(files) {
        let want = if own {
            format!("{file} OK")
        } else {
            format!("{file} ERR Permission denied")
        };
        assert_eq!(*line, want, "{}", out.dump());
    }
    assert_eq!(out.stdout_lines().len(), files.len(), "{}", out.dump());

    // The same check the runtimes make, in C.
    let probe = fixture("stackprobe");
    let out = ctx.sl(run_args(&["-r", &fixdir()], &[&probe]));
    out.expect_code(0);
    if own {
        assert!(out.stdout.starts_with("stack OK "), "{}", out.dump());
    }
    // twin: without the system view there is no /proc, and it fails
    let out = ctx.sl(run_args(
        &[
            "--no-system-view",
            "-r",
            "/usr",
            "-r",
            "/lib",
            "-r",
            "/lib64",
            "-r",
            &fixdir(),
        ],
        &[&probe],
    ));
    out.expect_code(0)
        .expect_stdout("stack ERR Permission denied\n");
});

both!(kernel_internals_stay_covered, |ctx| {
    if !ctx.own_proc() {
        return;
    }
    let script = "import sys\n\
        for p in sys.argv[1:]:\n\
        \x20   try:\n\
        \x20       print(p, 'read', len(open(p, 'rb').read()))\n\
        \x20   except OSError as e:\n\
        \x20       print(p, 'read', e.strerror)\n\
        for p in ['/proc/sysrq-trigger', '/proc/sys/kernel/hostname', '/proc/self/oom_score_adj']:\n\
        \x20   try:\n\
        \x20       open(p, 'w').write('1')\n\
        \x20       print(p, 'written')\n\
        \x20   except OSError as e:\n\
        \x20       print(p, 'write', e.strerror)\n";
    let covered = [
        "/proc/kallsyms",
        "/proc/keys",
        "/proc/kmsg",
        "/proc/timer_list",
    ];
    let mut cmd = vec![PYTHON, "-I", "-c", script];
    cmd.extend(covered);
    let out = ctx.sl(run_args(&[], &cmd));
    out.expect_code(0);
    let lines = out.stdout_lines();
    for (line, p) in lines.iter().zip(covered) {
        // Covered with an empty file, or absent from this kernel.
        let ok = *line == format!("{p} read 0")
            || *line == format!("{p} read No such file or directory");
        assert!(ok, "{p}: {line}\n{}", out.dump());
    }
    // Read-only for the workload: the procfs is mounted read-only (the
    // kernel refuses before Landlock would); sysrq-trigger may be absent.
    let sysrq = if std::path::Path::new("/proc/sysrq-trigger").exists() {
        "/proc/sysrq-trigger write Permission denied"
    } else {
        "/proc/sysrq-trigger write No such file or directory"
    };
    assert_eq!(
        lines[covered.len()..],
        [
            sysrq,
            "/proc/sys/kernel/hostname write Read-only file system",
            "/proc/self/oom_score_adj write Read-only file system",
        ],
        "{}",
        out.dump()
    );
    // twin: the host's kallsyms has every kernel symbol
    let host = std::fs::read_to_string("/proc/kallsyms").unwrap();
    assert!(host.lines().count() > 1000);
});

both!(hardware_directories_are_one_empty_read_only_tmpfs, |ctx| {
    // One tmpfs is mounted on the first of these and bound on the rest:
    // every one must still be empty, and read-only in its mount flags.
    if !ctx.own_proc() {
        return;
    }
    let dirs: Vec<&str> = [
        "/proc/acpi",
        "/proc/asound",
        "/proc/scsi",
        "/proc/bus",
        "/proc/irq",
        "/proc/driver",
        "/proc/sys/fs/binfmt_misc",
    ]
    .into_iter()
    .filter(|d| std::path::Path::new(d).is_dir())
    .collect();
    assert!(dirs.len() >= 2, "this machine covers fewer than two");
    let script = "import os, sys\n\
        mounts = {}\n\
        for line in open('/proc/self/mountinfo'):\n\
        \x20   f = line.split()\n\
        \x20   sep = f.index('-')\n\
        \x20   mounts[f[4]] = (f[5].split(',')[0], f[sep + 1], f[2])\n\
        for d in sys.argv[1:]:\n\
        \x20   try:\n\
        \x20       open(d + '/x', 'w')\n\
        \x20       w = 'written'\n\
        \x20   except OSError as e:\n\
        \x20       w = e.strerror\n\
        \x20   print(d, len(os.listdir(d)), *mounts.get(d, ('-', '-', '-')), w)\n";
    let mut cmd = vec![PYTHON, "-I", "-c", script];
    cmd.extend(&dirs);
    let out = ctx.sl(run_args(&[], &cmd));
    out.expect_code(0);
    // "DIR 0 ro tmpfs DEV Read-only file system": one device for all.
    let lines = out.stdout_lines();
    let dev = lines
        .first()
        .and_then(|l| l.split(' ').nth(4))
        .unwrap_or_else(|| panic!("{}", out.dump()))
        .to_string();
    let want: Vec<String> = dirs
        .iter()
        .map(|d| format!("{d} 0 ro tmpfs {dev} Read-only file system"))
        .collect();
    assert_eq!(lines, want, "{}", out.dump());
    // twin: on the host, what they cover is there to see
    let host: usize = dirs
        .iter()
        .map(|d| std::fs::read_dir(d).map(|e| e.count()).unwrap_or(0))
        .sum();
    assert!(host > 0, "the host's {dirs:?} are all empty");
});

both!(the_reaper_keeps_its_memory_environment_and_fds, |ctx| {
    // pid 1 is the reaper: a copy of the supervisor, which holds the
    // secret's real value and was started with its source variable.
    if !ctx.own_proc() {
        return;
    }
    let real = "sandlock-proc-secret-1b9e4c";
    let script = "import os\n\
        for p in ['/proc/1/environ', '/proc/1/mem', '/proc/1/maps', '/proc/1/fd/0']:\n\
        \x20   try:\n\
        \x20       data = open(p, 'rb').read(4096)\n\
        \x20       print(p, 'read', len(data), os.environ['REAL_TOKEN'].encode() in data if 'REAL_TOKEN' in os.environ else '-')\n\
        \x20   except OSError as e:\n\
        \x20       print(p, e.strerror)\n\
        try:\n\
        \x20   print('exe', os.readlink('/proc/1/exe'))\n\
        except OSError as e:\n\
        \x20   print('exe', e.strerror)\n\
        own = open('/proc/self/environ', 'rb').read()\n\
        print('own environ', b'TOKEN=' in own, b'REAL_TOKEN' in own)\n";
    let out = ctx.sl_env(
        run_args(
            &[
                "--add-host",
                "api.test:127.0.0.1",
                "--secret",
                "TOKEN=env:REAL_TOKEN@api.test",
            ],
            &[PYTHON, "-I", "-c", script],
        ),
        &[("REAL_TOKEN", real)],
    );
    out.expect_code(0);
    assert_eq!(
        out.stdout,
        "/proc/1/environ Permission denied\n\
         /proc/1/mem Permission denied\n\
         /proc/1/maps Permission denied\n\
         /proc/1/fd/0 Permission denied\n\
         exe Permission denied\n\
         own environ True False\n",
        "{}",
        out.dump()
    );
    assert!(!out.stdout.contains(real) && !out.stderr.contains(real));
});

/// In a write grant: makes a file, then changes its mode through the
/// workload's own /proc (`/proc/PID/cwd/f`, PID as the workload knows
/// it) and prints the mode; then the same through a pid of the host's
/// that the workload's /proc does not have.
const CHMOD_THROUGH_PROC: &str = r#"cd "$1" && touch f && chmod 600 "/proc/$$/cwd/f" && stat -c "own %a" f
chmod 644 "/proc/$2/cwd/f" 2>/dev/null; echo "host rc $?"; stat -c "after %a" f"#;

both!(metadata_calls_resolve_through_the_workload_s_proc, |ctx| {
    if !ctx.own_proc() {
        return;
    }
    // The supervisor decides and performs chmod, resolving the path as
    // the workload's kernel would: /proc/PID is the workload's process,
    // not the host's of the same number.
    let d = TempDir::new("procmeta");
    let host = HostSleep::start(&ctx);
    let out = ctx.sl(run_args(
        &["-w", &d.s()],
        &[
            "/bin/sh",
            "-c",
            CHMOD_THROUGH_PROC,
            "sh",
            &d.s(),
            &host.pid().to_string(),
        ],
    ));
    out.expect_code(0);
    assert_eq!(
        out.stdout,
        "own 600\nhost rc 1\nafter 600\n",
        "{}",
        out.dump()
    );
});
