//! Helpers shared by the end-to-end tests: running the real `sandlock`
//! binary (as the invoking user or as uid/gid 65534), temp dirs, compiled
//! fixtures, loopback servers and a tiny JSON reader for audit logs.
//!
//! std only: no libc. Signals are sent with kill(1), uids are read from
//! /proc/self/status, privileges are dropped with `CommandExt::uid/gid`
//! (std clears supplementary groups when it drops from root).

#![allow(dead_code)]

pub mod dns;
mod fixtures;
pub mod git;
mod json;
mod servers;
pub mod sink;
pub mod tls;

pub use fixtures::*;
pub use json::*;
pub use servers::*;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

pub const SANDLOCK: &str = env!("CARGO_BIN_EXE_sandlock");
pub const NOBODY: u32 = 65534;
pub const PATH_ENV: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
pub const PYTHON: &str = "/usr/bin/python3";
/// Default limit for one sandlock run; every test run is expected to be far
/// quicker than this.
pub const RUN_LIMIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Who runs sandlock
// ---------------------------------------------------------------------------

fn status_field(name: &str) -> Option<String> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(name).map(|rest| rest.trim().to_string()))
}

/// A "NAME: N kB" field of /proc/PID/status, in KiB (None once the
/// process is gone or a zombie, whose memory fields are absent).
pub fn proc_kib(pid: u32, name: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?.strip_prefix(':')?;
        rest.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// Real uid of the test process.
pub fn my_uid() -> u32 {
    status_field("Uid:")
        .and_then(|v| v.split_whitespace().next().map(str::to_string))
        .and_then(|v| v.parse().ok())
        .expect("cannot read Uid from /proc/self/status")
}

pub fn is_root() -> bool {
    my_uid() == 0
}

/// How one variant of a test launches sandlock.
#[derive(Clone, Copy, Debug)]
pub struct Ctx {
    /// Run sandlock as uid/gid 65534 (only when the test process is root;
    /// otherwise the "unprivileged" variant is the invoking user itself).
    pub drop_to_nobody: bool,
}

impl Ctx {
    pub fn invoker() -> Ctx {
        Ctx {
            drop_to_nobody: false,
        }
    }

    pub fn unprivileged() -> Ctx {
        Ctx {
            drop_to_nobody: is_root(),
        }
    }

    /// The uid the workload runs as.
    pub fn uid(&self) -> u32 {
        if self.drop_to_nobody {
            NOBODY
        } else {
            my_uid()
        }
    }

    /// True when sandlock itself runs with uid 0.
    pub fn as_root(&self) -> bool {
        self.uid() == 0
    }

    /// A `Command` for the sandlock binary with a clean, predictable
    /// environment and cwd "/" (readable by everyone).
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.wrapper(&self.sandlock_bin());
        cmd.args(args)
            .env(
                "HOME",
                if self.drop_to_nobody {
                    "/nonexistent"
                } else {
                    "/root"
                },
            )
            .env("TERM", "dumb")
            .env("RUST_BACKTRACE", "1");
        cmd
    }

    /// The sandlock binary this context runs (a copy uid 65534 may
    /// execute when it drops to nobody).
    pub fn sandlock_bin(&self) -> String {
        if self.drop_to_nobody {
            sandlock_for_nobody()
        } else {
            SANDLOCK.to_string()
        }
    }

    /// A `Command` for `program` (which starts sandlock itself: a shell,
    /// a pty driver) as this context's user, with a plain environment
    /// (PATH, LANG, HOME=/nonexistent) and cwd "/"; [`Ctx::command`]
    /// builds on it.
    pub fn wrapper(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", PATH_ENV)
            .env("HOME", "/nonexistent")
            .env("LANG", "C.UTF-8")
            .current_dir("/");
        if self.drop_to_nobody {
            cmd.uid(NOBODY).gid(NOBODY);
        }
        cmd
    }

    /// True when a workload started this way gets its own pid namespace
    /// and /proc (`sandlock check`'s "private /proc" line says yes).
    pub fn own_proc(&self) -> bool {
        let out = self.sl(["check"]);
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with("private /proc"))
            .unwrap_or_else(|| panic!("no private /proc line\n{}", out.dump()))
            .to_string();
        line.split_whitespace().nth(2) == Some("yes")
    }

    /// Run sandlock with `args` (which start with the subcommand, e.g.
    /// "run") and wait for it with the default limit.
    pub fn sl<I, S>(&self, args: I) -> Out
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_cmd(self.command(args), None, RUN_LIMIT)
    }

    /// Like `sl` but feeds `stdin` to the process.
    pub fn sl_stdin<I, S>(&self, args: I, stdin: &[u8]) -> Out
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_cmd(self.command(args), Some(stdin.to_vec()), RUN_LIMIT)
    }

    /// Like `sl`, with `env` added to sandlock's own environment (e.g. the
    /// variable a `--secret NAME=env:VAR` reads).
    pub fn sl_env<I, S>(&self, args: I, env: &[(&str, &str)]) -> Out
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        run_cmd(cmd, None, RUN_LIMIT)
    }
}

/// `both!(name, |ctx| { ... })` generates `name::as_invoker` and
/// `name::unprivileged` tests that run the same body.
macro_rules! both {
    ($(#[$m:meta])* $name:ident, |$ctx:ident| $body:block) => {
        $(#[$m])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[allow(unused_imports)]
            use $crate::common::*;

            fn body($ctx: $crate::common::Ctx) $body

            #[test]
            fn as_invoker() {
                body($crate::common::Ctx::invoker())
            }

            #[test]
            fn unprivileged() {
                body($crate::common::Ctx::unprivileged())
            }
        }
    };
}

// ---------------------------------------------------------------------------
// Running processes with a time limit
// ---------------------------------------------------------------------------

pub struct Out {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub what: String,
}

impl Out {
    /// Exit code, panicking (with the whole output) if sandlock itself died
    /// from a signal.
    pub fn code(&self) -> i32 {
        match self.status.code() {
            Some(c) => c,
            None => panic!(
                "sandlock was killed by signal {:?}\n{}",
                self.status.signal(),
                self.dump()
            ),
        }
    }

    pub fn dump(&self) -> String {
        format!(
            "command: {}\nstatus: {:?} (elapsed {:?})\n--- stdout ---\n{}\n--- stderr ---\n{}\n------",
            self.what, self.status, self.elapsed, self.stdout, self.stderr
        )
    }

    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code(), code, "unexpected exit code\n{}", self.dump());
        self
    }

    #[track_caller]
    pub fn expect_stdout(&self, expected: &str) -> &Self {
        assert_eq!(self.stdout, expected, "unexpected stdout\n{}", self.dump());
        self
    }

    pub fn stdout_lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// The value part of the probe line for `op` ("op OK value" => Ok(value),
    /// "op ERR E" => Err(E)). Panics if the op did not report.
    #[track_caller]
    pub fn probe(&self, op: &str) -> Result<String, String> {
        self.probe_nth(op, 0)
    }

    #[track_caller]
    pub fn probe_nth(&self, op: &str, n: usize) -> Result<String, String> {
        let prefix = format!("{op} ");
        let line = self
            .stdout
            .lines()
            .filter(|l| l.starts_with(&prefix) || *l == op)
            .nth(n)
            .unwrap_or_else(|| panic!("no report #{n} for probe {op:?}\n{}", self.dump()));
        let rest = line[op.len()..].trim_start();
        if let Some(v) = rest.strip_prefix("OK") {
            Ok(v.strip_prefix(' ').unwrap_or(v).to_string())
        } else if let Some(e) = rest.strip_prefix("ERR ") {
            Err(e.to_string())
        } else {
            panic!("malformed probe line {line:?}\n{}", self.dump())
        }
    }

    /// Asserts probe `op` failed with exactly `errno`.
    #[track_caller]
    pub fn expect_err(&self, op: &str, errno: &str) -> &Self {
        match self.probe(op) {
            Err(e) if e == errno => {}
            other => panic!(
                "probe {op}: expected ERR {errno}, got {other:?}\n{}",
                self.dump()
            ),
        }
        self
    }

    /// Asserts probe `op` succeeded with exactly `value`.
    #[track_caller]
    pub fn expect_ok(&self, op: &str, value: &str) -> &Self {
        match self.probe(op) {
            Ok(v) if v == value => {}
            other => panic!(
                "probe {op}: expected OK {value:?}, got {other:?}\n{}",
                self.dump()
            ),
        }
        self
    }

    /// Lines of sandlock's stderr that report a denial.
    pub fn denial_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("sandlock: denied"))
            .collect()
    }
}

fn reader<R: Read + Send + 'static>(mut r: R) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        let a = a.to_string_lossy();
        if a.contains(' ') || a.is_empty() {
            s.push_str(&format!("'{a}'"));
        } else {
            s.push_str(&a);
        }
    }
    s
}

/// Spawns `cmd`, retrying while the binary is busy (ETXTBSY): a fixture
/// or binary copy just written can still be open for writing in a child
/// another test thread forked before it execs.
fn spawn_retrying(cmd: &mut Command) -> std::io::Result<Child> {
    const ETXTBSY: i32 = 26;
    for _ in 0..50 {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(ETXTBSY) => thread::sleep(Duration::from_millis(20)),
            other => return other,
        }
    }
    cmd.spawn()
}

/// Runs `cmd` to completion (stdout/stderr captured), killing it and
/// panicking if it takes longer than `limit`.
pub fn run_cmd(cmd: Command, stdin: Option<Vec<u8>>, limit: Duration) -> Out {
    run_cmd_watch(cmd, stdin, limit, |_| {})
}

/// Like `run_cmd`, calling `watch(pid)` each time the running child is
/// polled (every 5 ms until it exits), e.g. to sample /proc/PID/status.
pub fn run_cmd_watch(
    mut cmd: Command,
    stdin: Option<Vec<u8>>,
    limit: Duration,
    mut watch: impl FnMut(u32),
) -> Out {
    let what = describe(&cmd);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = spawn_retrying(&mut cmd).unwrap_or_else(|e| panic!("cannot spawn {what}: {e}"));
    if let Some(data) = stdin {
        let mut si = child.stdin.take().unwrap();
        thread::spawn(move || {
            let _ = si.write_all(&data);
        });
    }
    let out_rx = reader(child.stdout.take().unwrap());
    let err_rx = reader(child.stderr.take().unwrap());
    let pid = child.id();
    let status = wait_limit_watch(&mut child, limit, || watch(pid));
    let elapsed = start.elapsed();
    // A leaked grandchild may keep the pipes open: do not wait forever
    // (one shared 3 s grace period for both pipes).
    let grace = Instant::now() + Duration::from_secs(3);
    let collect = |rx: mpsc::Receiver<Vec<u8>>| {
        let left = grace.saturating_duration_since(Instant::now());
        String::from_utf8_lossy(&rx.recv_timeout(left).unwrap_or_default()).into_owned()
    };
    let stdout = collect(out_rx);
    let stderr = collect(err_rx);
    match status {
        Some(status) => Out { status, stdout, stderr, elapsed, what },
        None => panic!(
            "timed out after {limit:?} (killed): {what}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
        ),
    }
}

/// Waits for `child` up to `limit`; on expiry kills it and returns None.
pub fn wait_limit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    wait_limit_watch(child, limit, || {})
}

/// `wait_limit`, calling `watch` before each look at whether the child
/// exited (so its last call sees the child still there, or a zombie).
fn wait_limit_watch(
    child: &mut Child,
    limit: Duration,
    mut watch: impl FnMut(),
) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        watch();
        if let Some(st) = child.try_wait().expect("try_wait") {
            return Some(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Sends signal `sig` (a name such as "TERM" or "KILL") to `pid` with kill(1).
pub fn send_signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -{sig} {pid} failed: {st:?}");
}

/// True if `pid` exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // state is the field after the parenthesised comm
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .unwrap_or("?");
            state != "Z" && state != "X"
        }
        Err(_) => false,
    }
}

/// Host pids of the live processes whose command line is exactly `argv`
/// (a workload in its own pid namespace reports pids the host does not
/// use; tests find its processes by a command line of their own).
pub fn pids_running(argv: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want))
        .filter(|pid| pid_alive(*pid))
        .collect()
}

/// A `sleep` duration no other process on the machine uses, for
/// [`pids_running`].
pub fn unique_sleep(secs: u32) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{secs}.{:09}", nanos.max(1))
}

/// A `sleep` of the host's, as the context's user, with a command line no
/// other process has; killed on drop.
pub struct HostSleep(std::process::Child);

impl HostSleep {
    pub fn start(ctx: &Ctx) -> HostSleep {
        let mut cmd = Command::new("sleep");
        cmd.arg(unique_sleep(30)).stdin(std::process::Stdio::null());
        if ctx.drop_to_nobody {
            cmd.uid(NOBODY).gid(NOBODY);
        }
        HostSleep(cmd.spawn().expect("spawn sleep"))
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for HostSleep {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `cond` every 20ms until it is true or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// Temp dirs
// ---------------------------------------------------------------------------

static TMP_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A directory under /tmp, mode 0777 (so the 65534 variant can use it),
/// removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = TMP_COUNTER.fetch_add(1, Ordering::SeqCst);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let path = PathBuf::from(format!(
            "/tmp/sandlock-e2e-{}-{}-{}-{:x}",
            tag,
            std::process::id(),
            n,
            nanos
        ));
        fs::create_dir(&path).expect("create temp dir");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o777)).unwrap();
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path as a string (all our temp paths are ASCII).
    pub fn s(&self) -> String {
        self.path.to_str().unwrap().to_string()
    }

    /// `self/rel` as a string.
    pub fn join(&self, rel: &str) -> String {
        self.path.join(rel).to_str().unwrap().to_string()
    }

    /// Creates a world-readable file `rel` with `content`; returns its path.
    pub fn file(&self, rel: &str, content: &str) -> String {
        let p = self.path.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&p, content).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        p.to_str().unwrap().to_string()
    }

    /// Creates a subdirectory with `mode`; returns its path.
    pub fn dir(&self, rel: &str, mode: u32) -> String {
        let p = self.path.join(rel);
        fs::create_dir_all(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        p.to_str().unwrap().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------
