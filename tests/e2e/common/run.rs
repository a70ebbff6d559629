//! Running a command to completion under a time limit and reading what it
//! did (`Out`: exit status, stdout, stderr, the probe fixtures' report
//! lines), and polling for a condition.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// What a finished command did, and the command line (for messages).
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
