//! Profiles: named TOML files that set policy options, for every front door
//! (`sandlock run -p NAME`, and later the C ABI and the Python SDK).
//!
//! Owns: where profiles are found ([`find`], [`list`]), the profiles shipped
//! inside the library, and loading one into a [`PolicyBuilder`]
//! ([`apply_file`], [`Profile::apply`]). The schema itself (sections, keys,
//! secrets tables) is in `schema`.
//!
//! Lookup: the user's directory first (`$XDG_CONFIG_HOME/sandlock/profiles`,
//! or `~/.config/sandlock/profiles`), `NAME.toml` there; then the shipped
//! profiles, which are compiled into the library (`include_str!` of the
//! repository's `profiles/`), so that every front door (a CLI anywhere on
//! disk, a Python process loading the shared library) has them without an
//! install step. A user file of the same name shadows a shipped profile.
//!
//! Relative paths in a profile are relative to the profile file's
//! directory; `~/` is `$HOME`. Shipped profiles have no directory and hold
//! only absolute paths.
//!
//! Must never: set an option any other way than through the builder (so a
//! profile accepts and refuses exactly what the command line does), or
//! read a secret's value: a profile names a source, never a value.

#[cfg(test)]
mod hostile;
pub(crate) mod schema;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use crate::policy::PolicyBuilder;
use crate::{Error, Result};

/// The profiles shipped with sandlock: (name, TOML text).
pub const SHIPPED: &[(&str, &str)] = &[
    ("build", include_str!("../../../profiles/build.toml")),
    (
        "git-https",
        include_str!("../../../profiles/git-https.toml"),
    ),
    (
        "node-agent",
        include_str!("../../../profiles/node-agent.toml"),
    ),
    (
        "python-agent",
        include_str!("../../../profiles/python-agent.toml"),
    ),
];

/// Where a profile comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A file on disk (the user's directory, or `--profile-file`).
    File(PathBuf),
    /// Shipped inside sandlock.
    Shipped,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Shipped => write!(f, "shipped"),
        }
    }
}

/// A profile found by name, ready to apply.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The name it was found under.
    pub name: String,
    /// Where it was found.
    pub origin: Origin,
    text: String,
}

impl Profile {
    /// Feeds the profile's options to `builder`, in file order. Errors
    /// name the file, the line, the key and the value.
    pub fn apply(&self, builder: &mut PolicyBuilder) -> Result<()> {
        match &self.origin {
            Origin::File(path) => apply_text(&self.text, path, builder),
            Origin::Shipped => {
                let file = format!("profiles/{}.toml", self.name);
                let cx = schema::Cx {
                    text: &self.text,
                    file: &file,
                    base: None,
                };
                builder.set_origin(Some(format!("profile {} (shipped)", self.name)));
                let applied = schema::apply(&cx, builder);
                builder.set_origin(None);
                applied
            }
        }
    }

    /// The profile's TOML text.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// The user's profile directory: `$XDG_CONFIG_HOME/sandlock/profiles`
/// (when set to an absolute path), else `$HOME/.config/sandlock/profiles`.
pub fn user_dir() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
            Some(PathBuf::from(home).join(".config"))
        })?;
    Some(config.join("sandlock").join("profiles"))
}

/// The profile named `name`: `NAME.toml` in [`user_dir`], else the shipped
/// one. Names are `[A-Za-z0-9_.-]`, not starting with a dot; a `name`
/// with a `/` in it or ending in `.toml` is the path of a profile file
/// (`-p ./learned.toml`, as `--learn` suggests).
pub fn find(name: &str) -> Result<Profile> {
    if name.contains('/') || name.ends_with(".toml") {
        let path = PathBuf::from(name);
        return Ok(Profile {
            name: name.to_string(),
            text: read(&path, "--profile")?,
            origin: Origin::File(path),
        });
    }
    if !valid_name(name) {
        return Err(Error::invalid(
            "--profile",
            name,
            "a profile name is letters, digits, '_', '.' and '-' (use --profile-file for a path)",
        ));
    }
    let dir = user_dir();
    if let Some(dir) = &dir {
        let path = dir.join(format!("{name}.toml"));
        if path.exists() {
            return Ok(Profile {
                name: name.to_string(),
                text: read(&path, "--profile")?,
                origin: Origin::File(path),
            });
        }
    }
    if let Some((_, text)) = SHIPPED.iter().find(|(n, _)| *n == name) {
        return Ok(Profile {
            name: name.to_string(),
            origin: Origin::Shipped,
            text: text.to_string(),
        });
    }
    let shipped: Vec<&str> = SHIPPED.iter().map(|(n, _)| *n).collect();
    let searched = match dir {
        Some(d) => format!(
            "{} and the shipped profiles: {}",
            d.display(),
            shipped.join(", ")
        ),
        None => format!("the shipped profiles ($HOME unset): {}", shipped.join(", ")),
    };
    Err(Error::ProfileNotFound {
        name: name.to_string(),
        searched,
    })
}

/// Every profile [`find`] can return, by name: the user's `*.toml` files,
/// then the shipped profiles they do not shadow, sorted by name.
pub fn list() -> Vec<(String, Origin)> {
    let mut out: Vec<(String, Origin)> = Vec::new();
    if let Some(Ok(entries)) = user_dir().map(std::fs::read_dir) {
        for e in entries.flatten() {
            let path = e.path();
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .map(str::to_string);
            if let (Some(name), Some("toml")) = (name, path.extension().and_then(|e| e.to_str())) {
                if valid_name(&name) {
                    out.push((name, Origin::File(path)));
                }
            }
        }
    }
    for (name, _) in SHIPPED {
        if !out.iter().any(|(n, _)| n == name) {
            out.push((name.to_string(), Origin::Shipped));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Reads the profile at `path` and feeds its options to `builder`.
pub fn apply_file(path: &Path, builder: &mut PolicyBuilder) -> Result<()> {
    let text = read(path, "--profile-file")?;
    apply_text(&text, path, builder)
}

fn apply_text(text: &str, path: &Path, builder: &mut PolicyBuilder) -> Result<()> {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let file = path.display().to_string();
    let cx = schema::Cx {
        text,
        file: &file,
        base: abs.parent(),
    };
    builder.set_origin(Some(format!("profile {file}")));
    let applied = schema::apply(&cx, builder);
    builder.set_origin(None);
    applied
}

/// A name `--profile` takes: `[A-Za-z0-9_.-]+`, not starting with a dot,
/// so that it can never climb out of the profile directory.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

fn read(path: &Path, flag: &'static str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::File {
        flag,
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}
