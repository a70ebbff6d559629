//! Denial reporting: one line per denial on sandlock's stderr (or, when
//! the caller captures the workload's output, kept for the run's
//! `Output::denials` instead), and, when asked, JSON lines in an audit
//! file (denials and allowed connections).
//!
//! Owns the wording users see. It must never include anything the
//! workload could use to learn a secret, and never block the supervisor on
//! a slow terminal for longer than one write.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::learn::Learner;
use crate::{Error, Result};

/// What was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed by a rule.
    Allow,
    /// Denied.
    Deny,
    /// Allowed, but worth the user's attention (a secret's placeholder
    /// sent where the secret may not go).
    Warn,
}

/// One decision about one syscall.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    /// The thread that made the call.
    pub pid: i32,
    /// The syscall's name: connect, sendto, bind, socket, ...
    pub syscall: &'a str,
    /// What it targeted, e.g. `10.0.0.5:443`.
    pub target: &'a str,
    /// The decision.
    pub verdict: Verdict,
    /// The rule that decided, or why nothing allowed it.
    pub rule: &'a str,
}

/// Where events go.
#[derive(Debug)]
pub struct Reporter {
    quiet: bool,
    audit: Option<Mutex<File>>,
    /// Denial lines already printed by [`Reporter::record_once`].
    printed: Mutex<HashSet<String>>,
    /// With `--learn`: told what the workload does.
    learner: Option<Arc<Learner>>,
    /// When the caller captures the workload's output (the C ABI, the
    /// Python SDK): the lines that would go to stderr, kept for the run's
    /// result instead. `None`: they are printed.
    kept: Option<Mutex<Kept>>,
}

/// The most lines a run keeps for its result; past it they are counted
/// (the audit file still records every event).
const MAX_KEPT: usize = 10_000;

/// Lines kept instead of printed.
#[derive(Debug, Default)]
struct Kept {
    lines: Vec<String>,
    /// Lines past [`MAX_KEPT`], not kept.
    dropped: usize,
}

/// The audit file, for appending, created if missing.
fn open_audit(path: &Path, no_symlinks: bool) -> std::io::Result<File> {
    if !no_symlinks {
        return OpenOptions::new().create(true).append(true).open(path);
    }
    let flags = libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT;
    match crate::sys::open_no_symlinks(path, flags, 0o600) {
        Ok(fd) => Ok(File::from(fd)),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(std::io::Error::other(
            "the path goes through a symlink, which the container's image may have placed",
        )),
        Err(e) => Err(e),
    }
}

impl Reporter {
    /// Opens the audit file (append) if one is given.
    pub fn new(quiet: bool, audit: Option<&Path>) -> Result<Reporter> {
        Self::opening(quiet, audit, false)
    }

    /// [`Reporter::new`], with `no_symlinks` refusing an audit path that
    /// goes through a symlink (on an image's ground, see
    /// [`crate::Ground`]: the image placed them). The file is opened once,
    /// by the same call that checks the path, so nothing can be swapped in
    /// between.
    pub(crate) fn opening(
        quiet: bool,
        audit: Option<&Path>,
        no_symlinks: bool,
    ) -> Result<Reporter> {
        let audit = match audit {
            Some(p) => {
                Some(Mutex::new(open_audit(p, no_symlinks).map_err(|e| {
                    Error::setup(format!("--audit {}", p.display()), e)
                })?))
            }
            None => None,
        };
        Ok(Reporter {
            quiet,
            audit,
            printed: Mutex::default(),
            learner: None,
            kept: None,
        })
    }

    /// The same reporter, keeping the lines it would print on stderr for
    /// [`Reporter::take_lines`] when `keep` is true (the caller captures
    /// the workload's output, so sandlock's own lines are not mixed into
    /// the caller's stderr either). Lines never taken are printed when the
    /// reporter is dropped: a run that fails still explains its denials.
    pub(crate) fn keeping_lines(mut self, keep: bool) -> Reporter {
        self.kept = keep.then(Mutex::default);
        self
    }

    /// The lines kept so far (without their newlines), in order, and
    /// forgets them; empty when lines are printed. Past [`MAX_KEPT`] a last
    /// line says how many more there were.
    pub(crate) fn take_lines(&self) -> Vec<String> {
        let Some(kept) = &self.kept else {
            return Vec::new();
        };
        let mut kept = kept.lock().unwrap_or_else(|p| p.into_inner());
        let Kept { mut lines, dropped } = std::mem::take(&mut *kept);
        if dropped > 0 {
            lines.push(format!(
                "sandlock: {dropped} more lines not kept (--audit FILE records every event)"
            ));
        }
        lines
    }

    /// One line of sandlock's own (no newline): kept, or printed on stderr.
    fn say(&self, line: String) {
        match &self.kept {
            Some(kept) => {
                let mut kept = kept.lock().unwrap_or_else(|p| p.into_inner());
                if kept.lines.len() < MAX_KEPT {
                    kept.lines.push(line);
                } else {
                    kept.dropped += 1;
                }
            }
            None => {
                let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
            }
        }
    }

    /// The same reporter, also telling `learner` (with `--learn`) what the
    /// workload does.
    pub(crate) fn watched_by(mut self, learner: Option<Arc<Learner>>) -> Reporter {
        self.learner = learner;
        self
    }

    /// The learner, when the run is watched (`--learn`).
    pub(crate) fn learner(&self) -> Option<&Learner> {
        self.learner.as_deref()
    }

    /// True when allowed events are wanted (only the audit file takes them).
    pub fn wants_allows(&self) -> bool {
        self.audit.is_some()
    }

    /// Records one event, printing its denial line only the first time
    /// the same (syscall, target, rule) is denied. For denials that every
    /// name lookup triggers (a UDP socket probe), where one line explains
    /// them all; the audit file still gets every event.
    pub fn record_once(&self, ev: &Event<'_>) {
        let key = format!("{}\0{}\0{}", ev.syscall, ev.target, ev.rule);
        let first = self
            .printed
            .lock()
            .map(|mut p| p.insert(key))
            .unwrap_or(true);
        self.emit(ev, first);
    }

    /// Says that a limit ended, refused or throttled something
    /// (`action`: `killed`, `throttled`, ...): `sandlock: killed: memory
    /// limit 256M reached` on stderr, and a `limit` record in the audit
    /// file.
    pub fn limit(&self, action: &str, limit: crate::policy::Limit, value: &str) {
        if !self.quiet {
            self.say(format!("sandlock: {action}: {limit} limit {value} reached"));
        }
        self.append(&serde_json::json!({
            "time": now(),
            "event": "limit",
            "action": action,
            "limit": limit.name(),
            "value": value,
        }));
    }

    /// Appends what became of a copy-on-write directory's changes (the
    /// front door prints its own summary).
    pub fn cow(&self, report: &serde_json::Value) {
        let mut line = serde_json::json!({"time": now(), "event": "cow"});
        if let (Some(obj), Some(fields)) = (line.as_object_mut(), report.as_object()) {
            obj.extend(fields.clone());
        }
        self.append(&line);
    }

    /// Records one event.
    pub fn record(&self, ev: &Event<'_>) {
        self.emit(ev, true);
    }

    fn emit(&self, ev: &Event<'_>, print: bool) {
        if ev.verdict == Verdict::Allow && self.audit.is_none() {
            return;
        }
        let (comm, own) = identity(ev.pid);
        let word = match ev.verdict {
            Verdict::Deny => Some("denied"),
            Verdict::Warn => Some("warning:"),
            Verdict::Allow => None,
        };
        if let (Some(word), false, true) = (word, self.quiet, print) {
            // pid 0: an event no one process caused (a DNS query).
            let line = if ev.pid == 0 {
                format!("sandlock: {word} {} {}: {}", ev.syscall, ev.target, ev.rule)
            } else if own == ev.pid {
                format!(
                    "sandlock: {word} {} {} from pid {} ({}): {}",
                    ev.syscall, ev.target, ev.pid, comm, ev.rule
                )
            } else {
                format!(
                    "sandlock: {word} {} {} from pid {} ({}; host pid {}): {}",
                    ev.syscall, ev.target, own, comm, ev.pid, ev.rule
                )
            };
            self.say(line);
        }
        if self.audit.is_some() {
            let json = serde_json::json!({
                "time": now(),
                "pid": own,
                "host_pid": ev.pid,
                "comm": comm,
                "syscall": ev.syscall,
                "target": ev.target,
                "verdict": match ev.verdict {
                    Verdict::Allow => "allow",
                    Verdict::Deny => "deny",
                    Verdict::Warn => "warn",
                },
                "rule": ev.rule,
            });
            self.append(&json);
        }
    }

    /// One JSON line in the audit file, written at once.
    fn append(&self, json: &serde_json::Value) {
        let mut line = json.to_string();
        line.push('\n');
        if let Some(Ok(mut f)) = self.audit.as_ref().map(|f| f.lock()) {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

impl Drop for Reporter {
    /// Kept lines no result took (the run failed, or ended before they
    /// could be handed over) go to stderr, as they would have without
    /// capture: no denial goes unexplained.
    fn drop(&mut self) {
        let lines = self.take_lines();
        if !lines.is_empty() {
            let mut text = lines.join("\n");
            text.push('\n');
            let _ = std::io::stderr().write_all(text.as_bytes());
        }
    }
}

/// Seconds since the epoch, for audit records.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The short command name of a thread, as `ps` shows it, and its id as
/// the workload sees it (in its own pid namespace, when it has one).
fn identity(pid: i32) -> (String, i32) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    parse_identity(&status, pid)
}

fn parse_identity(status: &str, pid: i32) -> (String, i32) {
    let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name));
    let comm = field("Name:").map_or("?", str::trim).to_string();
    let own = field("NSpid:")
        .and_then(|v| v.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(pid);
    (comm, own)
}

#[cfg(test)]
mod tests {
    #[test]
    fn on_an_image_an_audit_path_through_a_symlink_is_refused() {
        let dir = std::env::temp_dir().join(format!("sandlock-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("victim"), "v\n").unwrap();
        std::os::unix::fs::symlink(dir.join("victim"), dir.join("link")).unwrap();
        std::os::unix::fs::symlink(&dir, dir.join("dirlink")).unwrap();
        let e = Reporter::opening(true, Some(&dir.join("link")), true).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        assert!(Reporter::opening(true, Some(&dir.join("dirlink/new")), true).is_err());
        assert_eq!(std::fs::read_to_string(dir.join("victim")).unwrap(), "v\n");
        // Twins: a plain path is created; on the host a symlink is followed.
        Reporter::opening(true, Some(&dir.join("audit.jsonl")), true).unwrap();
        assert!(dir.join("audit.jsonl").is_file());
        Reporter::opening(true, Some(&dir.join("link")), false).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    use super::*;

    fn denial(target: &str) -> Event<'_> {
        Event {
            pid: 0,
            syscall: "connect",
            target,
            verdict: Verdict::Deny,
            rule: "no --net-allow rule matches",
        }
    }

    #[test]
    fn kept_lines_go_to_the_result_and_the_audit_file_still_gets_every_event() {
        let dir = std::env::temp_dir().join(format!("sandlock-kept-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let audit = dir.join("audit.jsonl");
        let r = Reporter::new(false, Some(&audit))
            .unwrap()
            .keeping_lines(true);
        r.record(&denial("10.0.0.1:443"));
        r.record_once(&denial("10.0.0.2:53"));
        r.record_once(&denial("10.0.0.2:53"));
        r.limit("killed", crate::policy::Limit::Memory, "1M");
        assert_eq!(
            r.take_lines(),
            [
                "sandlock: denied connect 10.0.0.1:443: no --net-allow rule matches",
                "sandlock: denied connect 10.0.0.2:53: no --net-allow rule matches",
                "sandlock: killed: memory limit 1M reached",
            ]
        );
        // Taken once: the next take (and the drop) has nothing left.
        assert!(r.take_lines().is_empty());
        drop(r);
        let text = std::fs::read_to_string(&audit).unwrap();
        assert_eq!(text.lines().count(), 4, "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn printing_and_quiet_reporters_keep_nothing() {
        // Twins: without keeping the lines go to stderr, and quiet has none.
        let printing = Reporter::new(false, None).unwrap();
        printing.record(&denial("10.0.0.1:443"));
        assert!(printing.take_lines().is_empty());
        let quiet = Reporter::new(true, None).unwrap().keeping_lines(true);
        quiet.record(&denial("10.0.0.1:443"));
        assert!(quiet.take_lines().is_empty());
    }

    #[test]
    fn past_the_cap_lines_are_counted_not_kept() {
        let r = Reporter::new(false, None).unwrap().keeping_lines(true);
        for i in 0..MAX_KEPT + 3 {
            r.record(&denial(&format!("10.0.0.1:{i}")));
        }
        let lines = r.take_lines();
        assert_eq!(lines.len(), MAX_KEPT + 1);
        assert_eq!(
            lines[MAX_KEPT],
            "sandlock: 3 more lines not kept (--audit FILE records every event)"
        );
    }

    #[test]
    fn identity_in_and_out_of_a_pid_namespace() {
        let s = "Name:\tpython3\nPid:\t900\nNSpid:\t900\t2\n";
        assert_eq!(parse_identity(s, 900), ("python3".into(), 2));
        assert_eq!(
            parse_identity("Name:\tsh\nNSpid:\t77\n", 77),
            ("sh".into(), 77)
        );
        // Gone, or hostile text: the host pid stands.
        assert_eq!(parse_identity("", 5), ("?".into(), 5));
        assert_eq!(parse_identity("NSpid:\t5\tx\n", 5), ("?".into(), 5));
    }
}
