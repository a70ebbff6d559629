//! The learned profile's text: the options the run was given, then the
//! rules it was found to need, each with a comment saying what it was
//! learned from, in the sections and keys `profile::schema` reads.
//!
//! A path or a host the workload chose is written as a one-line TOML basic
//! string with everything but printable ASCII escaped (`\u202E`, `\n`),
//! and in comments likewise (`\u{202e}`): a name cannot break a line,
//! reorder what the reader sees, or reach the terminal that shows the
//! profile. (Hand-written: `toml_writer` picks literal or multi-line
//! strings where a value has quotes or newlines, and leaves non-ASCII as
//! it is.) Must never write a secret's value: a `--secret` is written
//! as its reference, an `--env` whose name looks like a credential as a
//! comment without its value, and a credential seen in the environment as
//! a commented `[secrets]` suggestion naming only the variable and hosts.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::PathBuf;

use toml_writer::ToTomlKey;

use super::files::{Grants as FileGrants, Rule as FileRule};
use super::http::Rule as HttpRule;
use super::looks_like_credential;
use crate::policy::How;
use crate::policy::{option, Kind};
use crate::profile::schema::SECTIONS;
use crate::secrets::{SecretSpec, Source};

/// The options the run was given, as (option, value) in the order given
/// (see `PolicyBuilder::settings`).
pub(crate) struct Given<'a>(pub &'a [(&'static str, String)]);

/// What the run was found to need beyond what it was given.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    /// The command, as the header names it.
    pub command: String,
    /// Filesystem grants.
    pub files: FileGrants,
    /// `[network] allow` entries: (spec, what they were learned from).
    pub net: Vec<(String, String)>,
    /// Ports bound.
    pub binds: Vec<u16>,
    /// Socket files connected to.
    pub unix: Vec<PathBuf>,
    /// `[http] allow` rules.
    pub http: Vec<HttpRule>,
    /// Names asked that no rule needed.
    pub unused_names: Vec<String>,
    /// Credential-looking variables and the hosts their values went to.
    pub credentials: BTreeMap<String, BTreeSet<String>>,
    /// Hosts that got an Authorization header no variable explained.
    pub authorized: Vec<String>,
    /// Observations left out because there were too many.
    pub dropped: usize,
    /// Requests no rule could be learned for.
    pub unlearned: usize,
    /// The profile's own path, when a grant (given or learned) lets the
    /// workload write it: said first.
    pub self_writable: Option<PathBuf>,
}

/// One value of a key, with its comment.
struct Item {
    value: String,
    comment: Option<String>,
}

/// How a key is written.
enum Entry {
    List(Vec<Item>),
    One(Item),
}

/// Keys of one section, in the order first set.
#[derive(Default)]
struct Section {
    keys: Vec<(String, Entry)>,
}

impl Section {
    fn push(&mut self, key: &str, kind: Kind, item: Item) {
        let at = self.keys.iter().position(|(k, _)| k == key);
        match (at, kind) {
            (Some(i), Kind::List) => {
                if let Entry::List(items) = &mut self.keys[i].1 {
                    if !items.iter().any(|it| it.value == item.value) {
                        items.push(item);
                    }
                }
            }
            (Some(i), _) => self.keys[i].1 = Entry::One(item),
            (None, Kind::List) => self.keys.push((key.to_string(), Entry::List(vec![item]))),
            (None, _) => self.keys.push((key.to_string(), Entry::One(item))),
        }
    }
}

/// A secret's table.
#[derive(Default)]
struct SecretTable {
    source: Option<String>,
    hosts: Vec<String>,
    headers: Option<Vec<String>>,
    plaintext: bool,
    note: Option<String>,
}

/// The whole profile.
#[derive(Default)]
struct Doc {
    sections: BTreeMap<&'static str, Section>,
    env: Vec<(String, String)>,
    env_notes: Vec<String>,
    secrets: Vec<(String, SecretTable)>,
}

/// The longest comment text kept.
const COMMENT_LEN: usize = 160;

/// Workload text made safe for a comment: one line of printable ASCII
/// (anything else escaped as `\u{..}`), bounded.
fn clean(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if out.len() >= COMMENT_LEN {
            out.push_str("...");
            break;
        }
        if c == ' ' || c.is_ascii_graphic() {
            out.push(c);
        } else {
            out.extend(c.escape_unicode());
        }
    }
    out
}

/// `s` as a one-line TOML basic string, everything but printable ASCII
/// escaped.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' ' => out.push(' '),
            c if c.is_ascii_graphic() => out.push(c),
            c if (c as u32) <= 0xFFFF => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08X}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

fn learned_from<'a>(what: &str, from: impl ExactSizeIterator<Item = &'a str>) -> String {
    let n = from.len();
    let shown: Vec<&str> = from.take(3).collect();
    let more = if n > 3 {
        format!(" (+{} more)", n - 3)
    } else {
        String::new()
    };
    match what {
        "" => format!("learned: {}{more}", shown.join(", ")),
        _ => format!("learned: {what} {}{more}", shown.join(", ")),
    }
}

impl Doc {
    fn set(&mut self, section: &'static str, key: &str, kind: Kind, item: Item) {
        self.sections
            .entry(section)
            .or_default()
            .push(key, kind, item);
    }

    /// One given option.
    fn given(&mut self, name: &str, value: &str) {
        match name {
            "learn" => {}
            "env" => self.given_env(value),
            "secret" => self.given_secret(value),
            "secret-headers" => {
                if let Some((n, hs)) = value.split_once('=') {
                    if let Some((_, t)) = self.secrets.iter_mut().find(|(s, _)| s == n) {
                        t.headers = Some(hs.split(',').map(str::to_string).collect());
                    }
                }
            }
            "on-secret-misuse" => self.set(
                "secrets",
                "on-misuse",
                Kind::Value,
                Item {
                    value: quote(value),
                    comment: None,
                },
            ),
            _ => self.given_key(name, value),
        }
    }

    fn given_key(&mut self, name: &str, value: &str) {
        let Some(info) = option(name) else {
            return;
        };
        let Some(def) = info.profile else {
            return;
        };
        let section = SECTIONS
            .iter()
            .copied()
            .find(|s| *s == def.section)
            .unwrap_or("process");
        let value = match (info.kind, def.how) {
            (Kind::Switch, how) => {
                let on = matches!(value, "true" | "1" | "yes" | "on");
                let on = if how == How::Inverted { !on } else { on };
                on.to_string()
            }
            (_, How::Path) => {
                let p = std::path::absolute(value).unwrap_or_else(|_| PathBuf::from(value));
                match p.to_str() {
                    Some(s) => quote(s),
                    None => return,
                }
            }
            _ => quote(value),
        };
        self.set(
            section,
            def.key,
            info.kind,
            Item {
                value,
                comment: None,
            },
        );
    }

    fn given_env(&mut self, value: &str) {
        let Some((k, v)) = value.split_once('=') else {
            return;
        };
        if looks_like_credential(k) || super::holds_credential(v.as_bytes()) {
            self.env_notes.push(format!(
                "--env {} was given; its value is left out (it looks like a credential: \
                 give it as a secret, see below)",
                clean(k)
            ));
            return;
        }
        self.env.retain(|(ek, _)| ek != k);
        self.env.push((k.to_string(), v.to_string()));
    }

    fn given_secret(&mut self, value: &str) {
        let Ok(spec) = SecretSpec::parse(value) else {
            return;
        };
        let mut t = SecretTable {
            hosts: spec.hosts.iter().map(|h| h.to_string()).collect(),
            plaintext: spec.plaintext,
            ..SecretTable::default()
        };
        match &spec.source {
            Source::Fd(n) => {
                t.note = Some(format!(
                    "was read from fd {n}, which a profile cannot name: give source = \"env:VAR\" or \"file:PATH\""
                ))
            }
            source => t.source = Some(source.to_string()),
        }
        self.secrets.retain(|(n, _)| *n != spec.name);
        self.secrets.push((spec.name.clone(), t));
    }

    fn learned(&mut self, f: &Findings) {
        let path_rules = |rules: &[FileRule], what: &str| -> Vec<Item> {
            rules
                .iter()
                .filter_map(|r| {
                    let value = quote(r.path.to_str()?);
                    let from: Vec<String> =
                        r.from.iter().map(|p| p.display().to_string()).collect();
                    let mut from = if r.listed {
                        "learned: listed (this grants reading every file below it)".to_string()
                    } else if from.len() == 1 && from[0] == r.path.display().to_string() {
                        format!("learned: {what}")
                    } else {
                        learned_from(what, from.iter().map(String::as_str))
                    };
                    if r.sensitive {
                        from = format!("WARNING: sensitive; {from}");
                    }
                    Some(Item {
                        value,
                        comment: Some(clean(&from)),
                    })
                })
                .collect()
        };
        for item in path_rules(&f.files.read, "read") {
            self.set("filesystem", "read", Kind::List, item);
        }
        for item in path_rules(&f.files.write, "written") {
            self.set("filesystem", "write", Kind::List, item);
        }
        for (spec, why) in &f.net {
            self.set(
                "network",
                "allow",
                Kind::List,
                Item {
                    value: quote(spec),
                    comment: Some(clean(&format!("learned: {why}"))),
                },
            );
        }
        for port in &f.binds {
            self.set(
                "network",
                "allow-bind",
                Kind::List,
                Item {
                    value: port.to_string(),
                    comment: Some("learned: bound".into()),
                },
            );
        }
        for p in &f.unix {
            if let Some(s) = p.to_str() {
                self.set(
                    "network",
                    "unix-allow",
                    Kind::List,
                    Item {
                        value: quote(s),
                        comment: Some("learned: connected".into()),
                    },
                );
            }
        }
        for r in &f.http {
            let what = if r.folded {
                "(folded from many paths)"
            } else {
                ""
            };
            let from = learned_from(what, r.from.iter().map(String::as_str));
            self.set(
                "http",
                "allow",
                Kind::List,
                Item {
                    value: quote(&r.spec),
                    comment: Some(clean(&from)),
                },
            );
        }
    }

    fn write(&self, f: &Findings, out: &mut String) {
        let unlisted: Vec<String> = f
            .files
            .unlisted
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        for section in SECTIONS {
            let plain = self.sections.get(section);
            let has_tables = match *section {
                "filesystem" => !f.files.unlisted.is_empty() || !f.files.unwritable.is_empty(),
                "secrets" => !self.secrets.is_empty(),
                "process" => !self.env.is_empty() || !self.env_notes.is_empty(),
                _ => false,
            };
            if plain.is_none() && !has_tables {
                continue;
            }
            let _ = writeln!(out, "\n[{section}]");
            if let Some(s) = plain {
                write_keys(s, out);
            }
            if *section == "filesystem" && !f.files.unwritable.is_empty() {
                let paths: Vec<String> = f
                    .files
                    .unwritable
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                let _ = writeln!(
                    out,
                    "# Written (or tried), but a profile never grants writing there: {}",
                    clean(&paths.join(", "))
                );
            }
            if *section == "filesystem" && !unlisted.is_empty() {
                let _ = writeln!(
                    out,
                    "# Listed, but too broad to grant for a listing: {}",
                    clean(&unlisted.join(", "))
                );
            }
            match *section {
                "process" => self.write_env(out),
                "secrets" => self.write_secrets(out),
                _ => {}
            }
        }
        write_suggestions(f, out);
    }

    fn write_env(&self, out: &mut String) {
        for note in &self.env_notes {
            let _ = writeln!(out, "# {note}");
        }
        if self.env.is_empty() {
            return;
        }
        let _ = writeln!(out, "\n[process.env]");
        for (k, v) in &self.env {
            let _ = writeln!(out, "{} = {}", k.as_str().to_toml_key(), quote(v));
        }
    }

    fn write_secrets(&self, out: &mut String) {
        for (name, t) in &self.secrets {
            let table = format!("secrets.{}", name.as_str().to_toml_key());
            if let Some(note) = &t.note {
                let _ = writeln!(out, "\n# [{table}] {note}");
                continue;
            }
            let _ = writeln!(out, "\n[{table}]");
            if let Some(s) = &t.source {
                let _ = writeln!(out, "source = {}", quote(s));
            }
            let hosts: Vec<String> = t.hosts.iter().map(|h| quote(h)).collect();
            let _ = writeln!(out, "hosts = [{}]", hosts.join(", "));
            if let Some(hs) = &t.headers {
                let hs: Vec<String> = hs.iter().map(|h| quote(h)).collect();
                let _ = writeln!(out, "headers = [{}]", hs.join(", "));
            }
            if t.plaintext {
                let _ = writeln!(out, "plaintext = true");
            }
        }
    }
}

fn write_keys(s: &Section, out: &mut String) {
    for (key, entry) in &s.keys {
        match entry {
            Entry::One(item) => {
                let _ = write!(out, "{key} = {}", item.value);
                match &item.comment {
                    Some(c) => {
                        let _ = writeln!(out, "  # {c}");
                    }
                    None => out.push('\n'),
                }
            }
            Entry::List(items) => {
                let _ = writeln!(out, "{key} = [");
                for item in items {
                    let _ = write!(out, "    {},", item.value);
                    match &item.comment {
                        Some(c) => {
                            let _ = writeln!(out, "  # {c}");
                        }
                        None => out.push('\n'),
                    }
                }
                let _ = writeln!(out, "]");
            }
        }
    }
}

/// What the run suggests but a profile should not do unasked: secrets,
/// and names nothing needed.
fn write_suggestions(f: &Findings, out: &mut String) {
    if !f.credentials.is_empty() || !f.authorized.is_empty() {
        let _ = writeln!(
            out,
            "\n# Suggested secrets (not applied: remove the '#' to use them). The workload\n\
             # would then hold a placeholder, and the value would reach only these hosts."
        );
    }
    for (var, hosts) in &f.credentials {
        let key = format!("secrets.{}", var.as_str().to_toml_key());
        let _ = writeln!(out, "# [{}]", clean(&key));
        let _ = writeln!(out, "# source = {}", clean(&quote(&format!("env:{var}"))));
        if hosts.is_empty() {
            let _ = writeln!(
                out,
                "# hosts = []  # no request carried its value in this run"
            );
        } else {
            let hosts: Vec<String> = hosts.iter().map(|h| quote(h)).collect();
            let _ = writeln!(
                out,
                "# hosts = [{}]  # its value was sent to these",
                clean(&hosts.join(", "))
            );
        }
    }
    for host in &f.authorized {
        let _ = writeln!(
            out,
            "# Requests to {} carried an Authorization header: if it holds a credential, give it as a secret.",
            clean(host)
        );
    }
    if !f.unused_names.is_empty() {
        let names: Vec<&str> = f.unused_names.iter().map(String::as_str).collect();
        let _ = writeln!(
            out,
            "\n# Names asked but never connected to (they get NXDOMAIN under this profile): {}",
            clean(&names.join(", "))
        );
    }
    if f.unlearned > 0 {
        let _ = writeln!(
            out,
            "\n# {} requests were not learned (a method or a path no rule can spell).",
            f.unlearned
        );
    }
    if f.dropped > 0 {
        let _ = writeln!(
            out,
            "\n# {} observations were left out (too many of one kind): review the rules above.",
            f.dropped
        );
    }
}

/// The profile text for a run given `given` that needed `f`.
pub(crate) fn render(given: &Given<'_>, f: &Findings) -> String {
    let mut doc = Doc::default();
    for (name, value) in given.0 {
        doc.given(name, value);
    }
    doc.learned(f);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# sandlock profile learned from one run of {} (`sandlock run --learn`).\n\
         # It grants what that run was given and what it was seen to need, and no\n\
         # more; each learned rule says what it was learned from. Review it, then\n\
         # use it: sandlock run -p FILE -- CMD",
        clean(&f.command)
    );
    if let Some(me) = &f.self_writable {
        let _ = writeln!(
            out,
            "#\n# WARNING: a write grant below covers this profile ({}): the workload\n\
             # could rewrite the profile it runs under. Keep the profile elsewhere.",
            clean(&me.display().to_string())
        );
    }
    doc.write(f, &mut out);
    out
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
