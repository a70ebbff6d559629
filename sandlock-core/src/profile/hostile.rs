//! The profile reader against any text: unit tests of hostile values and
//! property tests. Whatever the text, applying it never panics and either
//! sets options or fails with an error that names the file and a line of
//! it; options written into a profile come out exactly as written, and a
//! profile builds the same policy as the same options given as flags.

use std::path::Path;

use proptest::prelude::*;

use super::schema::{self, keys, Cx, Sink};
use crate::policy::PolicyBuilder;
use crate::{Error, Result};

const FILE: &str = "/p/hostile.toml";

/// Records what a profile sets, accepting everything.
#[derive(Default)]
struct Recorder(Vec<(String, String)>);

impl Sink for Recorder {
    fn set(&mut self, option: &str, value: &str) -> Result<()> {
        self.0.push((option.to_string(), value.to_string()));
        Ok(())
    }
}

fn cx(text: &str) -> Cx<'_> {
    Cx {
        text,
        file: FILE,
        base: Some(Path::new("/p")),
    }
}

/// Applies `text` through the real builder; on error, checks that it is a
/// profile error naming the file and a line of the text.
fn apply_checked(text: &str) -> std::result::Result<PolicyBuilder, String> {
    let mut b = PolicyBuilder::new();
    match schema::apply(&cx(text), &mut b) {
        Ok(()) => Ok(b),
        Err(e) => {
            let lines = text.split('\n').count();
            let line = match &e {
                Error::Profile { file, line, .. } | Error::ProfileSyntax { file, line, .. }
                    if file == FILE =>
                {
                    *line
                }
                other => return Err(format!("not a profile error for this file: {other:?}")),
            };
            if !(1..=lines).contains(&line) {
                return Err(format!("line {line} outside 1..={lines}: {e}"));
            }
            let shown = e.to_string();
            if !shown.starts_with(&format!("{FILE}:{line}: ")) {
                return Err(format!("message does not start with file:line: {shown}"));
            }
            Err(String::new())
        }
    }
}

/// A TOML basic string holding exactly `s`.
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    for text in [
        format!(
            "[network]\nallow = {}{}\n",
            "[".repeat(5000),
            "]".repeat(5000)
        ),
        format!("[process]\nenv = {}\n", "{ a = ".repeat(5000)),
        format!("{}\n", "[a.".repeat(3000)),
    ] {
        let e = apply_checked(&text).expect_err("refused");
        assert!(e.is_empty(), "{e}");
    }
}

#[test]
fn hostile_values_name_file_and_line() {
    for (text, line, needle) in [
        ("\u{feff}[network]\nallow = [1]\n", 2, "network.allow = 1"),
        ("[network]\r\nallow = [\"a.test:0\"]\r\n", 2, "port 0"),
        ("[process]\ntimeout = nan\n", 2, "process.timeout = nan"),
        ("[process]\ntimeout = -inf\n", 2, "process.timeout = -inf"),
        ("[process]\ntimeout = 1e999\n", 2, ""),
        ("[http]\nports = [99999999999999999999]\n", 2, ""),
        ("[process.env]\n\"\" = \"x\"\n", 2, "process.env."),
        ("[process.env]\nA = \"\\u0000\"\n", 2, "NUL"),
        ("[filesystem]\nread = [\"\"]\n", 2, "empty path"),
        (
            "[secrets.\"A@B\"]\nsource = \"env:X\"\nhosts = [\"h.test\"]\n",
            1,
            "--secret",
        ),
        (
            "[secrets.K]\nsource = \"env:X\"\nhosts = [\"h.test\"]\nhosts = [\"i.test\"]\n",
            4,
            "",
        ),
    ] {
        let mut b = PolicyBuilder::new();
        let e = schema::apply(&cx(text), &mut b)
            .expect_err(text)
            .to_string();
        let want = format!("{FILE}:{line}: ");
        assert!(e.starts_with(&want), "{text:?}: {e}");
        assert!(e.contains(needle), "{text:?}: {e}");
    }
}

#[test]
fn env_names_a_flag_could_not_express_are_refused() {
    // `--env A=B=C` sets A to "B=C": a profile's "A=B" must not do that
    for key in ["A=B", "=", "A\\u0000B"] {
        let text = format!("[process.env]\n\"{key}\" = \"C\"\n");
        let e = apply_checked(&text).expect_err(&text);
        assert!(e.is_empty(), "{e}");
        let mut r = Recorder::default();
        let shown = schema::apply(&cx(&text), &mut r).unwrap_err().to_string();
        assert!(
            shown.contains("not an environment variable name"),
            "{shown}"
        );
        assert!(r.0.is_empty(), "{:?}", r.0);
    }
}

/// TOML-ish text made of the schema's own sections and keys, values of
/// every TOML type, and stray bytes: it reaches far more of the reader
/// than random text does.
fn profile_text() -> impl Strategy<Value = String> {
    let section = prop_oneof![
        prop::sample::select(vec![
            "[filesystem]",
            "[network]",
            "[http]",
            "[tls]",
            "[secrets]",
            "[process]",
            "[process.env]",
            "[secrets.K]",
            "[secrets.\"a b\"]",
            "[[network]]",
            "[netwrk]",
        ])
        .prop_map(str::to_string),
        "\\[[a-z.]{0,12}\\]",
    ];
    let key = prop_oneof![
        prop::sample::select(keys().map(|k| k.key).collect::<Vec<_>>()).prop_map(str::to_string),
        prop::sample::select(vec![
            "source",
            "hosts",
            "headers",
            "plaintext",
            "on-misuse",
            "env",
            "A"
        ])
        .prop_map(str::to_string),
        "[a-zA-Z_=\"@.-]{1,8}",
    ];
    let scalar = prop_oneof![
        any::<String>().prop_map(|s| quoted(&s)),
        "[a-z0-9.:*/@,;= -]{0,20}".prop_map(|s| quoted(&s)),
        any::<i64>().prop_map(|i| i.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        any::<bool>().prop_map(|b| b.to_string()),
        Just("1979-05-27T07:32:00Z".to_string()),
        Just("\"env:TOKEN\"".to_string()),
        Just("\"file:key\"".to_string()),
    ];
    let value = prop_oneof![
        scalar.clone(),
        prop::collection::vec(scalar.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
        (key.clone(), scalar).prop_map(|(k, v)| format!("{{ {k} = {v} }}")),
    ];
    let line = prop_oneof![
        section,
        (key, value).prop_map(|(k, v)| format!("{k} = {v}")),
        "[ -~]{0,30}",
        Just(String::new()),
    ];
    prop::collection::vec(line, 0..14).prop_map(|lines| lines.join("\n"))
}

/// The same options as a profile's text and as (option, value) flags, in
/// the order the profile sets them.
#[derive(Debug, Clone)]
struct Both {
    text: String,
    flags: Vec<(String, String)>,
}

/// A list key of the current section, one flag per item.
fn list(both: &mut Both, key: &str, option: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    let shown: Vec<String> = items.iter().map(|i| quoted(i)).collect();
    both.text
        .push_str(&format!("{key} = [{}]\n", shown.join(", ")));
    for i in items {
        both.flags.push((option.into(), i.clone()));
    }
}

fn options() -> impl Strategy<Value = Both> {
    let host = "[a-z]{1,8}\\.test";
    (
        prop::collection::vec((host, 1u16..), 0..3),
        prop::collection::vec((host, any::<[u8; 4]>()), 0..3),
        prop::collection::vec(1u16.., 0..3),
        prop::collection::vec("/[a-z]{1,8}(/[a-z]{1,8}){0,2}", 0..3),
        (
            prop::option::of(1u32..100_000),
            prop::option::of(any::<bool>()),
        ),
        prop::collection::btree_map("[A-Za-z_][A-Za-z0-9_]{0,8}", "[^\\x00]{0,12}", 0..4),
    )
        .prop_map(|(allow, hosts, ports, read, (timeout, clean), env)| {
            let mut b = Both {
                text: String::new(),
                flags: Vec::new(),
            };
            let allow: Vec<String> = allow.iter().map(|(h, p)| format!("{h}:{p}")).collect();
            let hosts: Vec<String> = hosts
                .iter()
                .map(|(h, ip)| format!("{h}:{}.{}.{}.{}", ip[0], ip[1], ip[2], ip[3]))
                .collect();
            b.text.push_str("[network]\n");
            list(&mut b, "allow", "net-allow", &allow);
            list(&mut b, "add-host", "add-host", &hosts);
            let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
            b.text.push_str("[http]\n");
            list(&mut b, "ports", "http-port", &ports);
            b.text.push_str("[filesystem]\n");
            list(&mut b, "read", "fs-read", &read);
            b.text.push_str("[process]\n");
            if let Some(t) = timeout {
                b.text.push_str(&format!("timeout = {t}\n"));
                b.flags.push(("timeout".into(), t.to_string()));
            }
            if let Some(on) = clean {
                b.text.push_str(&format!("clean-env = {on}\n"));
                b.flags.push(("clean-env".into(), on.to_string()));
            }
            b.text.push_str("[process.env]\n");
            for (k, v) in &env {
                b.text.push_str(&format!("{k} = {}\n", quoted(v)));
                b.flags.push(("env".into(), format!("{k}={v}")));
            }
            b
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    #[test]
    fn any_text_sets_options_or_names_file_and_line(text in any::<String>()) {
        if let Err(e) = apply_checked(&text) {
            prop_assert!(e.is_empty(), "{}", e);
        }
    }

    #[test]
    fn any_profile_like_text_sets_options_or_names_file_and_line(text in profile_text()) {
        if let Err(e) = apply_checked(&text) {
            prop_assert!(e.is_empty(), "{}", e);
        }
    }

    #[test]
    fn strings_reach_the_builder_exactly_as_written(
        items in prop::collection::vec(any::<String>(), 0..6),
        env in prop::collection::btree_map("[A-Za-z_][A-Za-z0-9_]{0,10}", any::<String>(), 0..6),
    ) {
        let list: Vec<String> = items.iter().map(|s| quoted(s)).collect();
        let mut text = format!("[network]\nallow = [{}]\n[process.env]\n", list.join(", "));
        for (k, v) in &env {
            text.push_str(&format!("{k} = {}\n", quoted(v)));
        }
        let mut r = Recorder::default();
        schema::apply(&cx(&text), &mut r).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let want: Vec<(String, String)> = items
            .iter()
            .map(|s| ("net-allow".to_string(), s.clone()))
            .chain(env.iter().map(|(k, v)| ("env".to_string(), format!("{k}={v}"))))
            .collect();
        prop_assert_eq!(r.0, want);
    }

    #[test]
    fn a_profile_builds_the_policy_its_flags_build(both in options()) {
        let mut from_profile = PolicyBuilder::new();
        let profile = schema::apply(&cx(&both.text), &mut from_profile)
            .and_then(|()| from_profile.build());
        let mut from_flags = PolicyBuilder::new();
        let flags = both
            .flags
            .iter()
            .try_for_each(|(option, value)| from_flags.set(option, value))
            .and_then(|()| from_flags.build());
        match (profile, flags) {
            (Ok(p), Ok(f)) => prop_assert_eq!(p.to_string(), f.to_string()),
            (Err(p), Err(f)) => prop_assert!(
                p.to_string().ends_with(&f.to_string()),
                "profile: {}\nflags: {}", p, f
            ),
            (p, f) => prop_assert!(
                false, "{}\nprofile {:?}\nflags {:?}", both.text, p.map(|_| ()), f.map(|_| ())
            ),
        }
    }
}
