//! Copy-on-write workspaces (`--cow DIR`): the workload sees DIR
//! writable, but overlayfs in the sandbox's mount namespace sends its
//! writes to a private layer; the host's DIR is untouched while it runs.
//! At the end the layer is applied to DIR, dropped, or kept for
//! `sandlock cow apply|drop`.
//!
//! Owns the layer on disk ([`layer`]), reading it back into steps
//! ([`scan`]), carrying them out ([`apply`]) and the summary of what
//! changed. Must never follow a host symlink while applying, never
//! overwrite a host file that changed while the workload ran (that is a
//! conflict, reported and kept), and never half-write a file: a failure
//! part-way keeps the layer and says where it is.

mod apply;
mod host;
mod layer;
mod scan;

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub use self::layer::Layer;
use self::scan::Op;
use crate::audit::Reporter;
use crate::policy::{OnExit, SummaryFormat};
use crate::Result;

/// What became of one directory's changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// All of them are in the directory; the layer is gone.
    Applied,
    /// Thrown away with the layer.
    Discarded,
    /// Left in the layer, as asked.
    Kept,
    /// A commit that did not get everything in (a conflict or an error):
    /// the rest is still in the layer.
    Incomplete,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Discarded => "discarded",
            Outcome::Kept => "kept",
            Outcome::Incomplete => "incomplete",
        }
    }
}

/// The changes to one `--cow` directory and what became of them. Paths
/// are relative to the directory, directories with a trailing `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The host directory.
    pub dir: PathBuf,
    /// The layer (gone when the outcome is applied or discarded).
    pub layer: PathBuf,
    /// New files, symlinks and directories.
    pub added: Vec<String>,
    /// Changed files and symlinks, and directories whose mode changed.
    pub changed: Vec<String>,
    /// Deleted names.
    pub deleted: Vec<String>,
    /// Names the host changed while the workload ran: not applied.
    pub conflicts: Vec<String>,
    /// Fifos, sockets and device nodes: never applied.
    pub skipped: Vec<String>,
    /// What was asked for.
    pub action: OnExit,
    /// What happened.
    pub outcome: Outcome,
    /// Why a commit stopped, naming the path.
    pub error: Option<String>,
}

impl Report {
    fn new(dir: &Path, layer: &Path, action: OnExit, ops: &[Op]) -> Report {
        let mut r = Report {
            dir: dir.to_path_buf(),
            layer: layer.to_path_buf(),
            added: Vec::new(),
            changed: Vec::new(),
            deleted: Vec::new(),
            conflicts: Vec::new(),
            skipped: Vec::new(),
            action,
            outcome: Outcome::Kept,
            error: None,
        };
        for (letter, path) in ops.iter().filter_map(scan::shown) {
            match letter {
                'A' => r.added.push(path),
                'M' => r.changed.push(path),
                'D' => r.deleted.push(path),
                'C' => r.conflicts.push(path),
                _ => r.skipped.push(path),
            }
        }
        r
    }

    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.changed.is_empty()
            && self.deleted.is_empty()
            && self.conflicts.is_empty()
            && self.skipped.is_empty()
    }

    /// The report as one JSON object (`--cow-summary json`, the audit log,
    /// the C ABI and Python).
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "dir": self.dir.to_string_lossy(),
            "layer": self.layer.to_string_lossy(),
            "added": self.added,
            "changed": self.changed,
            "deleted": self.deleted,
            "conflicts": self.conflicts,
            "skipped": self.skipped,
            "action": self.action.to_string(),
            "result": self.outcome.name(),
            "error": self.error,
        })
    }

    /// The list, as `--cow-summary text` prints it before anything is done.
    fn text(&self) -> String {
        let dir = self.dir.display();
        if self.is_empty() {
            return format!("sandlock: cow: {dir}: no changes\n");
        }
        let mut out = format!(
            "sandlock: cow: {dir}: {} added, {} changed, {} deleted",
            self.added.len(),
            self.changed.len(),
            self.deleted.len()
        );
        for (n, what) in [
            (self.conflicts.len(), "conflicts"),
            (self.skipped.len(), "skipped"),
        ] {
            if n > 0 {
                out.push_str(&format!(", {n} {what}"));
            }
        }
        out.push('\n');
        for (letter, list) in [
            ('A', &self.added),
            ('M', &self.changed),
            ('D', &self.deleted),
            ('C', &self.conflicts),
            ('S', &self.skipped),
        ] {
            for p in list {
                out.push_str(&format!("  {letter} {}\n", printable(p)));
            }
        }
        out
    }

    /// The line that says what became of the changes; `None` when there
    /// is nothing worth a line.
    fn outcome_line(&self) -> Option<String> {
        let (dir, layer) = (self.dir.display(), self.layer.display());
        let later = format!("(apply: sandlock cow apply {layer}; drop: sandlock cow drop {layer})");
        match self.outcome {
            Outcome::Applied if self.is_empty() => None,
            Outcome::Applied => Some(format!("sandlock: cow: applied to {dir}")),
            Outcome::Discarded if self.is_empty() => None,
            Outcome::Discarded => Some(format!("sandlock: cow: discarded the changes to {dir}")),
            Outcome::Kept => Some(format!(
                "sandlock: cow: kept the changes to {dir} in {layer} {later}"
            )),
            Outcome::Incomplete => {
                let why = match &self.error {
                    Some(e) => e.clone(),
                    None => format!(
                        "{} changed on the host while the workload ran",
                        printable(&self.conflicts.join(", "))
                    ),
                };
                Some(format!(
                    "sandlock: cow: not every change reached {dir} ({why}); the rest is in {layer} {later}"
                ))
            }
        }
    }
}

/// Reports as one JSON array (the C ABI's and Python's view).
pub fn json_array(reports: &[Report]) -> String {
    serde_json::Value::from(reports.iter().map(Report::json).collect::<Vec<_>>()).to_string()
}

/// `name` safe to print on a terminal: control characters (a name may
/// hold escape sequences or newlines that would fake lines of the list)
/// become `\xNN` or `\u{N}`, and a backslash `\\`.
fn printable(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x80 && c.is_control() => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// How reports are shown.
#[derive(Debug, Clone, Copy)]
pub struct Show<'a> {
    /// The format of the list.
    pub summary: SummaryFormat,
    /// `--quiet`: only what the user must not miss (where a kept layer is).
    pub quiet: bool,
    /// The audit log, if the run has one.
    pub reporter: Option<&'a Reporter>,
}

impl Show<'_> {
    fn say(&self, text: &str) {
        let _ = io::stderr().write_all(text.as_bytes());
    }

    fn before(&self, r: &Report) {
        if self.summary == SummaryFormat::Text && !self.quiet {
            self.say(&r.text());
        }
    }

    fn after(&self, r: &Report) {
        if let Some(rep) = self.reporter {
            rep.cow(&r.json());
        }
        match self.summary {
            SummaryFormat::Json => self.say(&format!("{}\n", r.json())),
            _ => {
                let must = matches!(r.outcome, Outcome::Kept | Outcome::Incomplete);
                if let Some(line) = r.outcome_line().filter(|_| must || !self.quiet) {
                    self.say(&format!("{line}\n"));
                }
            }
        }
    }
}

/// Ends `layer` with `action`: lists each directory's changes, then
/// applies, drops or keeps them. The layer goes when nothing is left in
/// it.
pub fn finish(layer: Layer, action: OnExit, show: &Show<'_>) -> Vec<Report> {
    let temp = format!(".sandlock-cow-{}", layer.tag());
    let mut reports = Vec::new();
    for (i, dir) in layer.dirs().iter().enumerate() {
        let upper = layer.upper(i);
        let scanned = host::Dir::root_checked(dir, layer.id(i)).and_then(|h| {
            let ops = scan::scan(
                &upper,
                &h,
                layer.started(),
                layer.opaque_xattr(),
                temp.as_ref(),
            )?;
            Ok((h, ops))
        });
        let (h, ops) = match scanned {
            Ok(v) => v,
            Err(e) => {
                let mut r = Report::new(dir, layer.path(), action, &[]);
                r.outcome = match action {
                    OnExit::Discard => Outcome::Discarded,
                    OnExit::Keep => Outcome::Kept,
                    OnExit::Commit => Outcome::Incomplete,
                };
                r.error = Some(format!("reading the changes: {e}"));
                reports.push(r);
                continue;
            }
        };
        let mut r = Report::new(dir, layer.path(), action, &ops);
        show.before(&r);
        r.outcome = match action {
            OnExit::Discard => Outcome::Discarded,
            OnExit::Keep => Outcome::Kept,
            OnExit::Commit => commit(&mut r, &ops, &upper, &h, &temp, &layer),
        };
        reports.push(r);
    }
    if reports.iter().all(Report::is_empty) {
        // Nothing to keep: a layer with no changes goes whatever was asked.
        for r in &mut reports {
            if r.outcome == Outcome::Kept {
                r.outcome = Outcome::Discarded;
            }
        }
    }
    let done = reports
        .iter()
        .all(|r| matches!(r.outcome, Outcome::Applied | Outcome::Discarded));
    if done {
        let path = layer.path().to_path_buf();
        if let Err(e) = layer.remove() {
            for r in &mut reports {
                r.outcome = Outcome::Incomplete;
                r.error = Some(format!("removing the layer {}: {e}", path.display()));
            }
        }
    }
    for r in &reports {
        show.after(r);
    }
    reports
}

/// Applies one directory's steps, recording late conflicts and where a
/// failure stopped it.
fn commit(
    r: &mut Report,
    ops: &[Op],
    upper: &Path,
    host: &host::Dir,
    temp: &str,
    layer: &Layer,
) -> Outcome {
    let old = format!("{temp}-old");
    let target = apply::Target {
        upper,
        host,
        temp: temp.as_ref(),
        old: old.as_ref(),
        opaque: layer.opaque_xattr(),
    };
    match apply::apply(ops, &target) {
        Ok(applied) => {
            for rel in applied.late_conflicts {
                let p = rel.to_string_lossy().into_owned();
                r.added.retain(|a| *a != p);
                r.changed.retain(|c| *c != p);
                r.deleted.retain(|d| *d != p && *d != format!("{p}/"));
                r.conflicts.push(p);
            }
            if r.conflicts.is_empty() {
                Outcome::Applied
            } else {
                Outcome::Incomplete
            }
        }
        Err(stopped) => {
            r.error = Some(format!(
                "{}: {}",
                r.dir.join(&stopped.rel).display(),
                stopped.error
            ));
            Outcome::Incomplete
        }
    }
}

/// `sandlock cow apply PATH`: applies a kept layer.
pub fn apply_layer(path: &Path, show: &Show<'_>) -> Result<Vec<Report>> {
    Ok(finish(Layer::open(path)?, OnExit::Commit, show))
}

/// `sandlock cow drop PATH`: throws a kept layer away.
pub fn drop_layer(path: &Path, show: &Show<'_>) -> Result<Vec<Report>> {
    Ok(finish(Layer::open(path)?, OnExit::Discard, show))
}

/// Opens a file of the layer for reading, never through a symlink.
fn open_nofollow(path: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_control_characters_print_escaped() {
        assert_eq!(printable("a b.txt"), "a b.txt");
        assert_eq!(printable("x\x1b[2A\r\n  M y"), "x\\x1b[2A\\x0d\\x0a  M y");
        assert_eq!(printable("back\\slash"), "back\\\\slash");
        assert_eq!(printable("\u{85}é"), "\\u{85}é");
    }
}
