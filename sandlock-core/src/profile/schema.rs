//! The profile schema: which TOML key sets which policy option, and the
//! walk that feeds a parsed profile to a [`Sink`] (the policy builder).
//!
//! Owns: the sections, the walk over their keys (each option's key is in
//! the one option table: [`keys`]), type checks, path
//! resolution relative to the profile's directory, and the shape of
//! `[secrets.NAME]` tables. Every value goes to the builder under its
//! `sandlock run` option name, so a profile accepts and refuses exactly what
//! the command line does.
//!
//! Must never: parse an option's value itself (the builder does), or show a
//! value from `[secrets]` that may be a secret: only `env:`/`file:`
//! references, hosts, headers and switches are echoed in errors.

use std::path::{Path, PathBuf};

use toml::de::{DeArray, DeTable, DeValue};
use toml::Spanned;

use crate::policy::{option, Kind};
use crate::{Error, Result};

/// Where a profile's options go: the policy builder, or a recorder in tests.
pub(crate) trait Sink {
    /// Sets `option` (a `sandlock run` long flag without dashes) to `value`.
    fn set(&mut self, option: &str, value: &str) -> Result<()>;
}

impl Sink for crate::policy::PolicyBuilder {
    fn set(&mut self, option: &str, value: &str) -> Result<()> {
        crate::policy::PolicyBuilder::set(self, option, value)
    }
}

pub(crate) use crate::policy::How;

/// One profile key: `[section] key` sets `option`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyDef {
    pub section: &'static str,
    pub key: &'static str,
    pub option: &'static str,
    pub how: How,
}

/// Every plain key of every section, from the one option table
/// (`policy::OPTIONS`, each option's `profile`). `[process] env` (a table)
/// and `[secrets]` (one table per secret, plus `on-misuse`) are read by
/// their own code.
pub(crate) fn keys() -> impl Iterator<Item = KeyDef> {
    crate::policy::OPTIONS.iter().filter_map(|o| {
        o.profile.map(|k| KeyDef {
            section: k.section,
            key: k.key,
            option: o.name(),
            how: k.how,
        })
    })
}

/// The sections, in the order the README documents them.
pub(crate) const SECTIONS: &[&str] = &[
    "filesystem",
    "network",
    "http",
    "tls",
    "secrets",
    "process",
    "limits",
    "cow",
];

/// Shown instead of a value that may be a secret.
const HIDDEN: &str = "<hidden>";

/// What the walk needs to know about the profile it reads.
pub(crate) struct Cx<'a> {
    /// The profile's text (for line numbers).
    pub text: &'a str,
    /// The file, as errors name it.
    pub file: &'a str,
    /// The directory relative paths start from; `None` for a shipped
    /// profile, which has none and so may not hold relative paths.
    pub base: Option<&'a Path>,
}

impl Cx<'_> {
    fn line(&self, at: usize) -> usize {
        let at = at.min(self.text.len());
        self.text.as_bytes()[..at]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn err(&self, at: usize, key: &str, value: Option<String>, reason: impl Into<String>) -> Error {
        Error::Profile {
            file: self.file.to_string(),
            line: self.line(at),
            key: key.to_string(),
            value,
            reason: reason.into(),
        }
    }

    /// An error about `v` at its own line, showing it.
    fn bad(&self, key: &str, v: &Spanned<DeValue>, reason: impl Into<String>) -> Error {
        self.err(v.span().start, key, Some(show(v.get_ref())), reason)
    }
}

/// Parses `text` and feeds every option it sets to `sink`, in file order.
pub(crate) fn apply(cx: &Cx, sink: &mut dyn Sink) -> Result<()> {
    let doc = DeTable::parse(cx.text).map_err(|e| Error::ProfileSyntax {
        file: cx.file.to_string(),
        line: cx.line(e.span().map_or(0, |s| s.start)),
        reason: e.message().trim().to_string(),
    })?;
    for (name, value) in doc.get_ref() {
        let section = name.get_ref().as_ref();
        if !SECTIONS.contains(&section) && !value.get_ref().is_table() {
            return Err(cx.bad(
                section,
                value,
                format!(
                    "a key outside any section (keys go in one of [{}])",
                    SECTIONS.join("], [")
                ),
            ));
        }
        if !SECTIONS.contains(&section) {
            return Err(cx.err(
                name.span().start,
                &format!("[{section}]"),
                None,
                format!("unknown section (expected one of {})", SECTIONS.join(", ")),
            ));
        }
        let Some(table) = value.get_ref().as_table() else {
            return Err(cx.bad(section, value, format!("expected a table [{section}]")));
        };
        match section {
            "secrets" => secrets(cx, table, sink)?,
            _ => plain_section(cx, section, table, sink)?,
        }
    }
    Ok(())
}

fn plain_section(cx: &Cx, section: &str, table: &DeTable, sink: &mut dyn Sink) -> Result<()> {
    for (k, v) in table {
        let key = k.get_ref().as_ref();
        let dotted = format!("{section}.{key}");
        if section == "process" && key == "env" {
            env_table(cx, &dotted, v, sink)?;
            continue;
        }
        let Some(def) = keys().find(|d| d.section == section && d.key == key) else {
            let known: Vec<&str> = keys()
                .filter(|d| d.section == section)
                .map(|d| d.key)
                .chain((section == "process").then_some("env"))
                .collect();
            return Err(cx.err(
                k.span().start,
                &dotted,
                Some(show(v.get_ref())),
                format!("unknown key (expected one of {})", known.join(", ")),
            ));
        };
        key_value(cx, &def, &dotted, v, sink)?;
    }
    Ok(())
}

/// One plain key: a list, a value or a switch, as its option takes.
fn key_value(
    cx: &Cx,
    def: &KeyDef,
    dotted: &str,
    v: &Spanned<DeValue>,
    sink: &mut dyn Sink,
) -> Result<()> {
    let kind = option(def.option)
        .unwrap_or_else(|| unreachable!("profile key {dotted} names no option"))
        .kind;
    match kind {
        Kind::Switch => {
            let Some(on) = v.get_ref().as_bool() else {
                return Err(cx.bad(dotted, v, "expected true or false"));
            };
            let on = if def.how == How::Inverted { !on } else { on };
            send(cx, dotted, v, sink, def.option, &on.to_string())
        }
        Kind::Value => {
            let s = scalar(cx, def.how, dotted, v)?;
            send(cx, dotted, v, sink, def.option, &s)
        }
        Kind::List => {
            let Some(items) = v.get_ref().as_array() else {
                let what = if def.how == How::Number {
                    "a list of numbers or strings"
                } else {
                    "a list of strings"
                };
                return Err(cx.bad(dotted, v, format!("expected {what}, e.g. [\"...\"]")));
            };
            list(cx, def, dotted, items, sink)
        }
    }
}

fn list(cx: &Cx, def: &KeyDef, dotted: &str, items: &DeArray, sink: &mut dyn Sink) -> Result<()> {
    for item in items.iter() {
        let s = scalar(cx, def.how, dotted, item)?;
        send(cx, dotted, item, sink, def.option, &s)?;
    }
    Ok(())
}

/// One string (or number, where numbers make sense), paths resolved.
fn scalar(cx: &Cx, how: How, dotted: &str, v: &Spanned<DeValue>) -> Result<String> {
    match (v.get_ref(), how) {
        (DeValue::String(s), How::Path) => resolve(cx, s)
            .map(|p| p.to_string_lossy().into_owned())
            .map_err(|reason| cx.bad(dotted, v, reason)),
        (DeValue::String(s), _) => Ok(s.to_string()),
        (DeValue::Integer(i), How::Number) if i.radix() == 10 => Ok(i.as_str().to_string()),
        (DeValue::Float(f), How::Number) => Ok(f.as_str().to_string()),
        (_, How::Number) => Err(cx.bad(dotted, v, "expected a number or a string")),
        _ => Err(cx.bad(dotted, v, "expected a string")),
    }
}

/// Hands one value to the sink; its refusal becomes an error at the
/// value's line.
fn send(
    cx: &Cx,
    dotted: &str,
    v: &Spanned<DeValue>,
    sink: &mut dyn Sink,
    option: &str,
    value: &str,
) -> Result<()> {
    sink.set(option, value)
        .map_err(|e| cx.bad(dotted, v, e.to_string()))
}

/// `~/x` is under the user's home; a relative path is under the profile's
/// directory (the least surprising base: a profile means the same from any
/// working directory).
fn resolve(cx: &Cx, path: &str) -> std::result::Result<PathBuf, String> {
    if path == "~" || path.starts_with("~/") {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .ok_or("'~' needs $HOME, which is not set")?;
        return Ok(PathBuf::from(home).join(path.trim_start_matches('~').trim_start_matches('/')));
    }
    let p = Path::new(path);
    if p.is_absolute() || path.is_empty() {
        return Ok(p.to_path_buf());
    }
    match cx.base {
        Some(base) => Ok(base.join(p)),
        None => Err("a shipped profile has no directory for a relative path".into()),
    }
}

/// `[process] env = { KEY = "VALUE" }` (or a `[process.env]` table).
fn env_table(cx: &Cx, dotted: &str, v: &Spanned<DeValue>, sink: &mut dyn Sink) -> Result<()> {
    let Some(table) = v.get_ref().as_table() else {
        return Err(cx.bad(dotted, v, "expected a table of KEY = \"VALUE\""));
    };
    for (k, val) in table {
        let name = k.get_ref().as_ref();
        let key = format!("{dotted}.{name}");
        // `--env KEY=VALUE` splits at the first '=': a name holding one
        // would set another variable to another value.
        if name.is_empty() || name.contains(['=', '\0']) {
            return Err(cx.bad(
                &key,
                val,
                "not an environment variable name (it must be non-empty, with no '=' or NUL)",
            ));
        }
        let Some(s) = val.get_ref().as_str() else {
            return Err(cx.bad(&key, val, "expected a string"));
        };
        send(cx, &key, val, sink, "env", &format!("{name}={s}"))?;
    }
    Ok(())
}

/// `[secrets]`: `on-misuse`, and one `[secrets.NAME]` table per secret.
fn secrets(cx: &Cx, table: &DeTable, sink: &mut dyn Sink) -> Result<()> {
    for (k, v) in table {
        let name = k.get_ref().as_ref();
        if name == "on-misuse" {
            let s = scalar(cx, How::Text, "secrets.on-misuse", v)?;
            send(cx, "secrets.on-misuse", v, sink, "on-secret-misuse", &s)?;
            continue;
        }
        let dotted = format!("secrets.{name}");
        let Some(fields) = v.get_ref().as_table() else {
            // Possibly `NAME = "the value itself"`: never shown.
            return Err(cx.err(
                v.span().start,
                &dotted,
                Some(HIDDEN.into()),
                "a secret is a table naming its source (source = \"env:VAR\" or \
                 \"file:PATH\") and its hosts; a profile never holds a secret's value",
            ));
        };
        secret(cx, &dotted, name, k.span().start, fields, sink)?;
    }
    Ok(())
}

fn secret(
    cx: &Cx,
    dotted: &str,
    name: &str,
    at: usize,
    fields: &DeTable,
    sink: &mut dyn Sink,
) -> Result<()> {
    let (mut source, mut hosts, mut headers, mut plaintext) = (None, None, None, false);
    for (k, v) in fields {
        let key = format!("{dotted}.{}", k.get_ref());
        match k.get_ref().as_ref() {
            "source" => source = Some(secret_source(cx, &key, v)?),
            "hosts" => hosts = Some(names(cx, &key, v, "host")?),
            "headers" => headers = Some(names(cx, &key, v, "header")?),
            "plaintext" => {
                plaintext = v
                    .get_ref()
                    .as_bool()
                    .ok_or_else(|| cx.bad(&key, v, "expected true or false"))?;
            }
            _ => {
                return Err(cx.err(
                    k.span().start,
                    &key,
                    Some(HIDDEN.into()),
                    "unknown key (expected source, hosts, headers, plaintext)",
                ))
            }
        }
    }
    let missing = |what: &str| {
        cx.err(
            at,
            dotted,
            None,
            format!("missing '{what}' (a secret needs source = \"env:VAR\" and hosts = [...])"),
        )
    };
    let source = source.ok_or_else(|| missing("source"))?;
    let hosts = hosts.ok_or_else(|| missing("hosts"))?;
    let mut spec = format!("{name}={source}@{}", hosts.join(","));
    if plaintext {
        spec.push_str(";plaintext");
    }
    // The spec holds a reference, never a value, so it may be shown.
    sink.set("secret", &spec)
        .map_err(|e| cx.err(at, dotted, Some(format!("{spec:?}")), e.to_string()))?;
    if let Some(headers) = headers {
        let value = format!("{name}={}", headers.join(","));
        sink.set("secret-headers", &value)
            .map_err(|e| cx.err(at, dotted, Some(format!("{value:?}")), e.to_string()))?;
    }
    Ok(())
}

/// `source = "env:VAR"` or `"file:PATH"` (relative to the profile's
/// directory). Anything else may be the value pasted in: refused unshown.
fn secret_source(cx: &Cx, key: &str, v: &Spanned<DeValue>) -> Result<String> {
    let refuse = |reason: &str| cx.err(v.span().start, key, Some(HIDDEN.into()), reason);
    let Some(s) = v.get_ref().as_str() else {
        return Err(refuse("expected a string \"env:VAR\" or \"file:PATH\""));
    };
    if s.starts_with("env:") {
        return Ok(s.to_string());
    }
    if let Some(path) = s.strip_prefix("file:") {
        let p = resolve(cx, path).map_err(|r| cx.bad(key, v, r))?;
        return Ok(format!("file:{}", p.display()));
    }
    Err(refuse(
        "source must be \"env:VAR\" or \"file:PATH\": a profile names where a secret is, \
         never its value (not shown)",
    ))
}

/// A non-empty list of host or header names for a secret.
fn names(cx: &Cx, key: &str, v: &Spanned<DeValue>, what: &str) -> Result<Vec<String>> {
    let Some(items) = v.get_ref().as_array() else {
        return Err(cx.bad(key, v, format!("expected a list of {what} names")));
    };
    if items.is_empty() {
        return Err(cx.bad(key, v, format!("expected at least one {what} name")));
    }
    let mut out = Vec::new();
    for item in items.iter() {
        let Some(s) = item.get_ref().as_str() else {
            return Err(cx.bad(key, item, format!("expected a {what} name (a string)")));
        };
        // These separate the parts of a --secret spec; a name never has one.
        if s.is_empty() || s.contains([',', '@', ';', '=']) {
            return Err(cx.bad(key, item, format!("not a {what} name")));
        }
        out.push(s.to_string());
    }
    Ok(out)
}

/// A value as written in TOML, for messages.
fn show(v: &DeValue) -> String {
    match v {
        DeValue::String(s) => format!("{:?}", s.as_ref()),
        DeValue::Integer(i) => i.as_str().to_string(),
        DeValue::Float(f) => f.as_str().to_string(),
        DeValue::Boolean(b) => b.to_string(),
        DeValue::Datetime(d) => d.to_string(),
        DeValue::Array(_) => "[...]".into(),
        DeValue::Table(_) => "{...}".into(),
    }
}
