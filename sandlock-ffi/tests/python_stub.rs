//! The Python SDK's typed surface, generated from the one option table:
//! `python/sandlock/_sandbox.pyi` (every option a typed keyword-only
//! parameter of `Sandbox(...)` and `Sandbox.from_profile(...)`, its help
//! the parameter's documentation) and `python/sandlock/_version.py` (the
//! crate's version, which `sandlock.__version__` and the package's
//! metadata read). The committed files must be what this renders from
//! `sandlock_core::policy::OPTIONS` and `tests/python_stub.pyi.in` today:
//! a stale one fails here with the difference, and `SANDLOCK_BLESS=1`
//! writes the fresh one instead, like the C header (tests/header.rs).

// Test helpers report a failure by panicking: unwrap says "this must hold"
// (clippy's allow-unwrap-in-tests covers #[test] functions, not helpers).
#![allow(clippy::unwrap_used)]

mod common;

use sandlock_core::policy::{Kind, OptionInfo, OPTIONS};

use common::{check_generated, repo_root};

/// The stub's hand-written parts, with `@KEYWORDS@` (the parameters) and
/// `@KEYWORD_DOCS@` (their documentation) where the table goes.
const TEMPLATE: &str = include_str!("python_stub.pyi.in");

/// How the stub is regenerated, for the failure message.
const BLESS: &str = "SANDLOCK_BLESS=1 cargo test -p sandlock-ffi --test python_stub";

/// Keywords the SDK also takes, besides each option's own name (kept in
/// step with `_ALIASES` in python/sandlock/_sandbox.py; the pytest suite
/// checks that the stub and the runtime agree).
const ALIASES: &[(&str, &str)] = &[("http-port", "http_ports"), ("secret", "secrets")];

/// A keyword in the stub: its name, type and documentation.
struct Keyword {
    name: String,
    ty: String,
    doc: String,
}

/// The Python keyword of option `name`.
fn keyword(name: &str) -> String {
    name.replace('-', "_")
}

/// The Python type of an option's keyword (always optional: None leaves
/// the option unset).
fn py_type(o: &OptionInfo) -> String {
    let ty = match (o.name(), o.kind) {
        ("env", _) => "Mapping[str, _Value] | _Strings".to_owned(),
        ("secret", _) => "Mapping[str, Secret] | _Strings".to_owned(),
        (_, Kind::List) if o.value_name == "PORTS" => "_Ports".to_owned(),
        (_, Kind::List) => "_Strings".to_owned(),
        (_, Kind::Value) if o.value_name.contains('|') => {
            let words: Vec<String> = o
                .value_name
                .split('|')
                .map(|w| format!("\"{w}\""))
                .collect();
            format!("Literal[{}]", words.join(", "))
        }
        (_, Kind::Value) => "_Value".to_owned(),
        (_, Kind::Switch) => "bool".to_owned(),
    };
    format!("{ty} | None")
}

/// What the SDK adds to an option's help.
fn py_extra(o: &OptionInfo) -> &'static str {
    match o.name() {
        "env" => " A dict sets each key to its value.",
        "secret" => " A dict maps each NAME to a sandlock.Secret.",
        _ => "",
    }
}

/// `help` in Python's words: `--flag` and `-x` become the keywords.
fn pythonize(help: &str) -> String {
    let mut out = String::with_capacity(help.len());
    let mut rest = help;
    while let Some(i) = rest.find('-') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let starts_word = out
            .chars()
            .next_back()
            .is_none_or(|c| c == ' ' || c == '(' || c == '/');
        let flag_end = |from: usize| {
            tail[from..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .map_or(tail.len(), |e| e + from)
        };
        let found = if !starts_word {
            None
        } else if let Some(long) = tail.strip_prefix("--") {
            let end = flag_end(2);
            OPTIONS
                .iter()
                .find(|o| o.name() == &long[..end - 2])
                .map(|o| (end, keyword(o.name())))
        } else {
            let end = flag_end(1);
            let short = &tail[1..end];
            OPTIONS
                .iter()
                .find(|o| short.len() == 1 && o.short == short.chars().next())
                .map(|o| (end, keyword(o.name())))
        };
        match found {
            Some((end, kw)) => {
                out.push_str(&kw);
                rest = &tail[end..];
            }
            None => {
                out.push('-');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Every keyword, in the table's order, each alias after its option.
fn keywords() -> Vec<Keyword> {
    let mut out = Vec::new();
    for o in OPTIONS {
        let name = keyword(o.name());
        let shape = if o.kind == Kind::Switch {
            String::new()
        } else {
            format!(" ({})", o.value_name)
        };
        out.push(Keyword {
            name: name.clone(),
            ty: py_type(o),
            doc: format!("{shape}: {}{}", pythonize(o.help), py_extra(o)),
        });
        for (option, alias) in ALIASES.iter().filter(|(n, _)| *n == o.name()) {
            assert_eq!(*option, o.name());
            out.push(Keyword {
                name: (*alias).to_owned(),
                ty: py_type(o),
                doc: format!(": the same as ``{name}``."),
            });
        }
    }
    out
}

/// `first` then `text` wrapped to 79 columns, continuation lines indented
/// four more than `indent`.
fn wrap(indent: &str, first: &str, text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = format!("{indent}{first}");
    let more = format!("{indent}    ");
    for word in text.split_whitespace() {
        if line.len() + 1 + word.len() > 79 && line.len() > more.len() {
            lines.push(line);
            line = format!("{more}{word}");
        } else {
            if !line.ends_with(' ') && line.len() > indent.len() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines.push(line);
    lines
}

/// The stub: the template with the table filled in.
fn render() -> String {
    let keywords = keywords();
    let mut out = String::new();
    for line in TEMPLATE.lines() {
        let indent = &line[..line.len() - line.trim_start().len()];
        match line.trim() {
            "@KEYWORDS@" => {
                for k in &keywords {
                    out.push_str(&format!("{indent}{}: {} = None,\n", k.name, k.ty));
                }
            }
            "@KEYWORD_DOCS@" => {
                for k in &keywords {
                    let (shape, text) = k.doc.split_once(": ").unwrap();
                    for l in wrap(indent, &format!("{}{shape}:", k.name), text) {
                        out.push_str(&l);
                        out.push('\n');
                    }
                }
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    assert!(!out.contains('\\'), "no escapes in the stub's text");
    out
}

#[test]
fn committed_python_stub_is_current() {
    let stub = render();
    check_generated(
        &repo_root().join("python/sandlock/_sandbox.pyi"),
        &stub,
        BLESS,
    );
}

#[test]
fn committed_python_version_is_the_crate_version() {
    let text = format!(
        "\"\"\"The package's version: the library's (sandlock_version()).\n\n\
         Generated by sandlock-ffi/tests/python_stub.rs; do not edit. Regenerate with\n    \
         {BLESS}\n\"\"\"\n\n__version__ = \"{}\"\n",
        env!("CARGO_PKG_VERSION")
    );
    check_generated(
        &repo_root().join("python/sandlock/_version.py"),
        &text,
        BLESS,
    );
}

#[test]
fn every_option_is_a_typed_keyword_with_its_help() {
    let stub = render();
    for o in OPTIONS {
        let kw = keyword(o.name());
        // Once in each signature, once in each Args section.
        assert_eq!(
            stub.matches(&format!("\n        {kw}: ")).count(),
            2,
            "{kw}"
        );
        let doc = if o.kind == Kind::Switch {
            format!("\n            {kw}: ")
        } else {
            format!("\n            {kw} ({}): ", o.value_name)
        };
        assert_eq!(stub.matches(&doc).count(), 2, "{kw}");
    }
    assert!(stub.contains("        quiet: bool | None = None,\n"));
    assert!(stub.contains("        fs_read: _Strings | None = None,\n"));
    assert!(stub.contains("        net_allow_bind: _Ports | None = None,\n"));
    assert!(stub.contains("        timeout: _Value | None = None,\n"));
    assert!(
        stub.contains("        on_secret_misuse: Literal[\"warn\", \"block\"] | None = None,\n")
    );
    assert!(stub.contains("        secrets: Mapping[str, Secret] | _Strings | None = None,\n"));
    assert!(stub.contains("            http_ports: the same as ``http_port``.\n"));
    assert!(!stub.contains("@KEYWORD"), "every placeholder is filled");
}

#[test]
fn help_names_keywords_not_flags() {
    assert_eq!(
        pythonize("needs --http-key; every -r/-w grant (e.g. -r ~/x); with -p FILE"),
        "needs http_key; every fs_read/fs_write grant (e.g. fs_read ~/x); with -p FILE"
    );
    // Not flags: a range, a word with a dash, an unknown flag.
    assert_eq!(
        pythonize("9000-9005, TLS-inspecting, --no-such"),
        "9000-9005, TLS-inspecting, --no-such"
    );
    let lines = wrap("  ", "name (X):", &"word ".repeat(30));
    assert!(lines.iter().all(|l| l.len() <= 79), "{lines:?}");
    assert!(lines[1].starts_with("      word"), "{lines:?}");
}
