//! The virtual /etc/hosts (every spelling of its path, procfs spellings
//! included) and names given with --add-host.

use crate::common::*;

// ---------------------------------------------------------------------------
// Virtual /etc/hosts and --add-host
// ---------------------------------------------------------------------------

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(o) => out.push(o),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// hostsprobe output: name -> (status, payload)
fn hosts_results(out: &Out) -> Vec<(String, String, String)> {
    out.stdout
        .lines()
        .map(|l| {
            let mut p = l.splitn(3, '\t');
            let name = p.next().unwrap_or("").to_string();
            let st = p.next().unwrap_or("").to_string();
            let rest = p.next().unwrap_or("").to_string();
            (name, st, rest)
        })
        .collect()
}

/// Checks that `content` is the virtual hosts file with exactly `pinned`
/// extra lines.
fn check_virtual_hosts(content: &str, pinned: &[&str], ctx: &str) {
    let lines: Vec<&str> = content
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(
        lines.contains(&"127.0.0.1\tlocalhost"),
        "no 127.0.0.1 localhost line in {content:?}\n{ctx}"
    );
    let v6: Vec<&&str> = lines.iter().filter(|l| l.starts_with("::1\t")).collect();
    assert_eq!(v6.len(), 1, "{content:?}\n{ctx}");
    assert!(
        v6[0] == &"::1\tlocalhost" || v6[0].starts_with("::1\tlocalhost "),
        "bad ::1 line in {content:?}\n{ctx}"
    );
    for p in pinned {
        assert!(lines.contains(p), "missing {p:?} in {content:?}\n{ctx}");
    }
    assert_eq!(
        lines.len(),
        2 + pinned.len(),
        "unexpected extra lines in {content:?}\n{ctx}"
    );
}

both!(etc_hosts_virtual_all_spellings, |ctx| {
    let d = TempDir::new("hosts");
    let real = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let out = ctx.sl(fixture_args(
        &["--add-host", "myhost.sandlock.test:127.0.0.5", "-w", &d.s()],
        "hostsprobe",
        &[&d.s()],
    ));
    out.expect_code(0);
    let res = hosts_results(&out);
    assert!(
        res.len() >= 26,
        "too few spellings reported\n{}",
        out.dump()
    );
    let abs = res.iter().find(|r| r.0 == "abs").expect("abs");
    assert_eq!(abs.1, "OK", "{}", out.dump());
    let virtual_content = unescape(&abs.2);
    check_virtual_hosts(
        &virtual_content,
        &["127.0.0.5\tmyhost.sandlock.test"],
        &out.dump(),
    );
    assert_ne!(
        virtual_content, real,
        "test is meaningless: real /etc/hosts equals the virtual one"
    );
    let mut bad = Vec::new();
    for (name, st, payload) in &res {
        if name == "hardlink-wdir" && st == "LINKERR" {
            continue; // linking the real file into a writable dir was refused: fine
        }
        // openat2 keeps its flags in memory: the filter refuses it, and
        // libc falls back to openat (which is served above).
        if name.starts_with("openat2") {
            if (st.as_str(), payload.as_str()) != ("ERR", "ENOSYS") {
                bad.push(format!("{name}: {st} {payload} (want ERR ENOSYS)"));
            }
            continue;
        }
        if st != "OK" || unescape(payload) != virtual_content {
            bad.push(format!("{name}: {st} {payload}"));
        }
    }
    assert!(
        bad.is_empty(),
        "spellings not served the virtual file:\n{}\n{}",
        bad.join("\n"),
        out.dump()
    );

    // twin: without --add-host (but with a network policy, which is what
    // turns the virtual file on) only the localhost lines are there
    let out = ctx.sl(fixture_args(
        &["-w", &d.s(), "--net-allow", "127.0.0.1:9"],
        "hostsprobe",
        &[&d.s(), "abs", "dotdot"],
    ));
    out.expect_code(0);
    for (name, st, payload) in hosts_results(&out) {
        assert_eq!(st, "OK", "{name}\n{}", out.dump());
        check_virtual_hosts(&unescape(&payload), &[], &out.dump());
    }
});

both!(etc_hosts_virtual_via_proc_spellings_never_real, |ctx| {
    let d = TempDir::new("hosts-proc");
    let real = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let out = ctx.sl(fixture_args(
        &[
            "--add-host",
            "myhost.sandlock.test:127.0.0.5",
            "-w",
            &d.s(),
            "-r",
            "/proc",
        ],
        "hostsprobe",
        &[
            &d.s(),
            "abs",
            "proc-self-root",
            "proc-thread-self-root",
            "proc-self-cwd",
            "proc-self-fd",
        ],
    ));
    out.expect_code(0);
    let res = hosts_results(&out);
    assert_eq!(res.len(), 5, "{}", out.dump());
    let virtual_content = unescape(&res[0].2);
    check_virtual_hosts(
        &virtual_content,
        &["127.0.0.5\tmyhost.sandlock.test"],
        &out.dump(),
    );
    for (name, st, payload) in &res[1..] {
        // The real file must never be visible. Serving the virtual file or
        // refusing the open are both acceptable.
        let content = unescape(payload);
        assert!(
            st == "OK" || st == "ERR",
            "{name}: {st} {payload}\n{}",
            out.dump()
        );
        if st == "OK" {
            assert_eq!(
                content,
                virtual_content,
                "{name} served something else\n{}",
                out.dump()
            );
            assert_ne!(content, real);
        }
    }
});

both!(add_host_resolves_with_getent_and_python, |ctx| {
    let hosts = [
        "--add-host",
        "myhost.sandlock.test:127.0.0.5",
        "--add-host",
        "other.sandlock.test:127.0.0.6",
    ];
    let out = ctx.sl(run_args(
        &hosts,
        &["getent", "hosts", "myhost.sandlock.test"],
    ));
    out.expect_code(0);
    let fields: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(
        fields,
        vec!["127.0.0.5", "myhost.sandlock.test"],
        "{}",
        out.dump()
    );

    let out = ctx.sl(probe_args(
        &hosts,
        &[
            "gethostbyname,myhost.sandlock.test",
            "gethostbyname,other.sandlock.test",
            "getaddrinfo,myhost.sandlock.test",
            "gethostbyname,localhost",
        ],
    ));
    out.expect_code(0);
    assert_eq!(
        out.probe_nth("gethostbyname", 0),
        Ok("127.0.0.5".into()),
        "{}",
        out.dump()
    );
    assert_eq!(
        out.probe_nth("gethostbyname", 1),
        Ok("127.0.0.6".into()),
        "{}",
        out.dump()
    );
    assert_eq!(
        out.probe_nth("gethostbyname", 2),
        Ok("127.0.0.1".into()),
        "{}",
        out.dump()
    );
    out.expect_ok("getaddrinfo", "127.0.0.5");

    // twin: without --add-host the name does not resolve
    let out = ctx.sl(run_args(&[], &["getent", "hosts", "myhost.sandlock.test"]));
    out.expect_code(2);
    let out = ctx.sl(probe_args(&[], &["gethostbyname,myhost.sandlock.test"]));
    out.expect_code(0);
    assert!(out.probe("gethostbyname").is_err(), "{}", out.dump());
});

/// What the workload finds of /etc/hosts: whether it is a mount (and its
/// first mount option), whether it holds `mnt.sandlock.test`, and what
/// writing it and unmounting it return.
const HOSTS_MOUNT_PROBE: &str = "import ctypes, errno\n\
m = [l.split() for l in open('/proc/self/mountinfo') if l.split()[4] == '/etc/hosts']\n\
print('mount', m[0][5].split(',')[0] if m else 'none')\n\
print('table', 'mnt.sandlock.test' in open('/etc/hosts').read())\n\
try:\n\
\x20   with open('/etc/hosts', 'a') as f: f.write('x\\n')\n\
\x20   print('write ok')\n\
except OSError as e: print('write', errno.errorcode[e.errno])\n\
libc = ctypes.CDLL(None, use_errno=True)\n\
r = libc.umount2(b'/etc/hosts', 2)\n\
print('umount', 'ok' if r == 0 else errno.errorcode[ctypes.get_errno()])\n\
print('after', 'mnt.sandlock.test' in open('/etc/hosts').read())\n";

both!(etc_hosts_is_a_read_only_mount_of_the_sandbox, |ctx| {
    // Any network flag: the sandbox's /etc/hosts is a read-only bind in
    // its own mount namespace (with no other virtual file, no open traps
    // at all; with an HTTP rule the bundles keep the trap and an open of
    // /etc/hosts is answered CONTINUE). The attacks: write the table,
    // unmount it to reach the host's file.
    let real = std::fs::read("/etc/hosts").unwrap();
    let pin = ["--add-host", "mnt.sandlock.test:127.0.0.7"];
    let probe = ["/usr/bin/python3", "-I", "-c", HOSTS_MOUNT_PROBE];
    let bound = "mount ro\ntable True\nwrite EACCES\numount EPERM\nafter True\n";
    let out = ctx.sl(run_args(&pin, &probe));
    out.expect_code(0);
    assert_eq!(out.stdout, bound, "{}", out.dump());
    let out = ctx.sl(run_args(
        &[&pin[..], &["--net-allow", "127.0.0.1:9"]].concat(),
        &probe,
    ));
    out.expect_code(0);
    assert_eq!(out.stdout, bound, "{}", out.dump());
    let http = ["--http-allow", "GET mnt.sandlock.test/*"];
    let out = ctx.sl(run_args(&[&pin[..], &http].concat(), &probe));
    out.expect_code(0);
    assert_eq!(out.stdout, bound, "{}", out.dump());

    // twin: where the workload has no mount namespace of its own (the
    // host's /proc granted), the same table is served through the trap
    let trapped = "mount none\ntable True\nwrite EACCES\numount EPERM\nafter True\n";
    let out = ctx.sl(run_args(&[&pin[..], &["-r", "/proc"]].concat(), &probe));
    out.expect_code(0);
    assert_eq!(out.stdout, trapped, "{}", out.dump());
    // a grant to write /etc keeps its meaning: no bind there either
    // (this probe only reads, so the host's file is never written)
    let read_only =
        "m = [l.split() for l in open('/proc/self/mountinfo') if l.split()[4] == '/etc/hosts']\n\
print('mount', m[0][5].split(',')[0] if m else 'none')\n\
print('table', 'mnt.sandlock.test' in open('/etc/hosts').read())\n";
    let out = ctx.sl(run_args(
        &[&pin[..], &["-w", "/etc"]].concat(),
        &["/usr/bin/python3", "-I", "-c", read_only],
    ));
    out.expect_code(0);
    assert_eq!(out.stdout, "mount none\ntable True\n", "{}", out.dump());
    assert_eq!(
        std::fs::read("/etc/hosts").unwrap(),
        real,
        "the host's /etc/hosts changed"
    );
});
