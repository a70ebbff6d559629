//! The copy-on-write part of a policy (`--cow`, `--on-exit`,
//! `--cow-summary`): which directories the workload changes through a
//! private layer, what happens to the layer at the end, and how the
//! changes are listed. Parsing only; the layer itself is `crate::cow`'s.

use std::fmt;
use std::path::PathBuf;

use crate::{Error, Result};

/// What happens to a copy-on-write layer when the workload ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExit {
    /// Apply the changes to the host's directories.
    Commit,
    /// Throw the changes away.
    Discard,
    /// Leave the layer where it is, for `sandlock cow apply|drop`.
    Keep,
}

impl OnExit {
    /// Parses `commit`, `discard` or `keep`.
    pub fn parse(text: &str) -> Result<OnExit> {
        match text {
            "commit" => Ok(OnExit::Commit),
            "discard" => Ok(OnExit::Discard),
            "keep" => Ok(OnExit::Keep),
            _ => Err(Error::invalid(
                "--on-exit",
                text,
                "expected commit, discard or keep",
            )),
        }
    }

    /// The action for a run that ended with `success` when none was
    /// chosen: commit a success, keep anything else for inspection.
    pub fn default_for(success: bool) -> OnExit {
        if success {
            OnExit::Commit
        } else {
            OnExit::Keep
        }
    }
}

impl fmt::Display for OnExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OnExit::Commit => "commit",
            OnExit::Discard => "discard",
            OnExit::Keep => "keep",
        })
    }
}

/// How the list of changes is printed on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SummaryFormat {
    /// One line per changed path (`A`, `M`, `D`, `C` for a conflict).
    #[default]
    Text,
    /// One JSON object per directory, on one line.
    Json,
    /// Nothing (the audit log still has it).
    None,
}

impl SummaryFormat {
    /// Parses `text`, `json` or `none`.
    pub fn parse(text: &str) -> Result<SummaryFormat> {
        match text {
            "text" => Ok(SummaryFormat::Text),
            "json" => Ok(SummaryFormat::Json),
            "none" => Ok(SummaryFormat::None),
            _ => Err(Error::invalid(
                "--cow-summary",
                text,
                "expected text, json or none",
            )),
        }
    }
}

impl fmt::Display for SummaryFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SummaryFormat::Text => "text",
            SummaryFormat::Json => "json",
            SummaryFormat::None => "none",
        })
    }
}

/// Copy-on-write directories and what to do with their changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CowPolicy {
    /// Directories the workload sees writable through a private layer.
    pub dirs: Vec<PathBuf>,
    /// The action at the end; `None`: [`OnExit::default_for`].
    pub on_exit: Option<OnExit>,
    /// How changes are listed.
    pub summary: SummaryFormat,
}

impl CowPolicy {
    /// Adds `dir` (absolute already): it must be an existing directory,
    /// not `/`, and not inside or around another `--cow` directory.
    pub(crate) fn add(&mut self, dir: PathBuf) -> Result<()> {
        let shown = dir.display().to_string();
        let real = std::fs::canonicalize(&dir)
            .map_err(|e| Error::invalid("--cow", &shown, e.to_string()))?;
        if !real.is_dir() {
            return Err(Error::invalid("--cow", &shown, "not a directory"));
        }
        if real.parent().is_none() {
            return Err(Error::invalid(
                "--cow",
                &shown,
                "the root directory cannot be copy-on-write",
            ));
        }
        if real.to_str().is_none() {
            return Err(Error::invalid(
                "--cow",
                &shown,
                "the path is not valid UTF-8 (the layer's record keeps it as text)",
            ));
        }
        if let Some(other) = self
            .dirs
            .iter()
            .find(|d| d.starts_with(&real) || real.starts_with(d))
        {
            return Err(Error::invalid(
                "--cow",
                &shown,
                format!(
                    "overlaps --cow {} (give the outer one only)",
                    other.display()
                ),
            ));
        }
        self.dirs.push(real);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_exit_and_summary_parse_and_name_their_flag() {
        assert_eq!(OnExit::parse("keep").unwrap(), OnExit::Keep);
        assert_eq!(OnExit::default_for(true), OnExit::Commit);
        assert_eq!(OnExit::default_for(false), OnExit::Keep);
        let e = OnExit::parse("Commit").unwrap_err().to_string();
        assert!(e.contains("--on-exit") && e.contains("'Commit'"), "{e}");
        assert_eq!(SummaryFormat::parse("json").unwrap(), SummaryFormat::Json);
        let e = SummaryFormat::parse("yaml").unwrap_err().to_string();
        assert!(e.contains("--cow-summary") && e.contains("'yaml'"), "{e}");
    }

    #[test]
    fn cow_dirs_must_exist_be_directories_and_not_overlap() {
        let base = std::env::temp_dir().join(format!("sandlock-cowpol-{}", std::process::id()));
        std::fs::create_dir_all(base.join("a/b")).unwrap();
        std::fs::write(base.join("f"), b"x").unwrap();
        let mut p = CowPolicy::default();
        p.add(base.join("a/b")).unwrap();
        for (bad, why) in [
            (base.join("a"), "overlaps"),
            (base.join("a/b/."), "overlaps"),
            (base.join("f"), "not a directory"),
            (base.join("missing"), "No such file"),
            (PathBuf::from("/"), "root directory"),
        ] {
            let e = p.add(bad.clone()).unwrap_err().to_string();
            assert!(e.contains("--cow") && e.contains(why), "{bad:?}: {e}");
        }
        assert_eq!(p.dirs.len(), 1);
        std::fs::remove_dir_all(&base).unwrap();
    }
}
