//! Unit tests of the profile schema: every option reachable, shipped
//! profiles valid, and every error naming file, line, key and value.

use std::collections::BTreeSet;
use std::path::Path;

use super::schema::{self, Cx, Sink};
use super::*;
use crate::policy::OPTIONS;

/// Records what a profile sets, accepting everything.
#[derive(Default)]
struct Recorder(Vec<(String, String)>);

impl Sink for Recorder {
    fn set(&mut self, option: &str, value: &str) -> Result<()> {
        self.0.push((option.to_string(), value.to_string()));
        Ok(())
    }
}

fn record(text: &str, base: Option<&Path>) -> Result<Vec<(String, String)>> {
    let mut r = Recorder::default();
    let cx = Cx {
        text,
        file: "/p/test.toml",
        base,
    };
    schema::apply(&cx, &mut r)?;
    Ok(r.0)
}

/// Applies `text` through the real builder, as the CLI does.
fn build(text: &str) -> Result<crate::Policy> {
    let mut b = PolicyBuilder::new();
    let cx = Cx {
        text,
        file: "/p/test.toml",
        base: Some(Path::new("/p")),
    };
    schema::apply(&cx, &mut b)?;
    b.build()
}

fn error(text: &str) -> String {
    build(text).expect_err(text).to_string()
}

/// A profile that uses every key of the schema.
const EVERY_KEY: &str = r#"
[filesystem]
read = ["/r"]
write = ["/w"]
system-view = false
home = "h"

[network]
allow = ["a.test:443"]
add-host = ["a.test:127.0.0.1"]
dns-server = ["127.0.0.1:53"]
allow-bind = [8080, "9000-9001"]
unix-allow = ["run/agent.sock"]

[http]
allow = ["GET a.test/*"]
deny = ["* a.test/admin"]
ports = [8443]
timeout = 30

[tls]
bypass = ["pinned.test"]
ca = "/ca.pem"
key = "/ca.key"
ca-out = "out.pem"
upstream-ca = ["/root.pem"]
inject-ca = ["/bundle.pem"]
default-bundles = false
ca-env = false
trust-host-cas = true

[secrets]
on-misuse = "block"

[secrets.TOKEN]
source = "env:TOKEN"
hosts = ["a.test", "*.b.test"]
headers = ["authorization"]
plaintext = true

[process]
clean-env = true
cwd = "/"
timeout = 1.5
keep-caps = true
quiet = true
audit = "audit.jsonl"
learn = "learned.toml"

[process.env]
A = "1"

[limits]
memory = "256M"
pids = 64
cpu = 0.5
open-files = 256
file-size = "1G"
disk = "64M"

[cow]
dirs = ["/tmp"]
on-exit = "keep"
summary = "json"
"#;

#[test]
fn every_option_is_reachable_from_a_profile_key() {
    let set = record(EVERY_KEY, Some(Path::new("/p"))).unwrap();
    let reached: BTreeSet<&str> = set.iter().map(|(o, _)| o.as_str()).collect();
    let all: BTreeSet<&str> = OPTIONS.iter().map(|o| o.name()).collect();
    assert_eq!(reached, all, "options no profile key reaches");
    let get = |o: &str| -> Vec<&str> {
        set.iter()
            .filter(|(k, _)| k == o)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    // inverted switches, numbers, relative paths, secrets and env
    assert_eq!(get("no-system-view"), ["true"]);
    assert_eq!(get("no-default-bundles"), ["true"]);
    assert_eq!(get("trust-host-cas"), ["true"]);
    assert_eq!(get("net-allow-bind"), ["8080", "9000-9001"]);
    // Relative to the profile's directory, like every path key.
    assert_eq!(get("unix-allow"), ["/p/run/agent.sock"]);
    assert_eq!(get("home"), ["/p/h"]);
    assert_eq!(get("timeout"), ["1.5"]);
    assert_eq!(get("http-ca-out"), ["/p/out.pem"]);
    assert_eq!(get("audit"), ["/p/audit.jsonl"]);
    assert_eq!(get("secret"), ["TOKEN=env:TOKEN@a.test,*.b.test;plaintext"]);
    assert_eq!(get("secret-headers"), ["TOKEN=authorization"]);
    assert_eq!(get("env"), ["A=1"]);
    assert_eq!(get("memory"), ["256M"]);
    assert_eq!(get("pids"), ["64"]);
    assert_eq!(get("cpu"), ["0.5"]);
    // and the real builder takes all of it
    let policy = build(EVERY_KEY).unwrap();
    assert_eq!(policy.limits.memory.map(|s| s.bytes()), Some(256 << 20));
    assert_eq!(policy.limits.pids, Some(64));
}

#[test]
fn shipped_profiles_build() {
    for (name, _) in SHIPPED {
        let p = find(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut b = PolicyBuilder::new();
        p.apply(&mut b).unwrap_or_else(|e| panic!("{name}: {e}"));
        b.build().unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn the_issue_example_secret() {
    let set = record(
        "[secrets.GH_TOKEN]\nsource = \"env:GH_TOKEN\"\n\
         hosts = [\"github.com\", \"*.github.com\"]\nheaders = [\"authorization\"]\n\
         plaintext = false\n",
        None,
    )
    .unwrap();
    assert_eq!(
        set,
        [
            (
                "secret".to_string(),
                "GH_TOKEN=env:GH_TOKEN@github.com,*.github.com".to_string()
            ),
            (
                "secret-headers".to_string(),
                "GH_TOKEN=authorization".to_string()
            ),
        ]
    );
}

#[test]
fn file_sources_and_paths_are_relative_to_the_profile() {
    let set = record(
        "[filesystem]\nread = [\"data\", \"/abs\"]\n[secrets.K]\nsource = \"file:key.txt\"\nhosts = [\"a.test\"]\n",
        Some(Path::new("/home/u/.config/sandlock/profiles")),
    )
    .unwrap();
    assert_eq!(set[0].1, "/home/u/.config/sandlock/profiles/data");
    assert_eq!(set[1].1, "/abs");
    assert_eq!(
        set[2].1,
        "K=file:/home/u/.config/sandlock/profiles/key.txt@a.test"
    );
    let e = record("[filesystem]\nread = [\"data\"]\n", None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(":2: filesystem.read = \"data\": a shipped profile has no directory"),
        "{e}"
    );
}

#[test]
fn unknown_section_names_file_line_and_section() {
    let e = error("# c\n[filesystem]\nread = [\"/x\"]\n\n[netwrk]\nallow = [\"a\"]\n");
    assert!(
        e.starts_with("/p/test.toml:5: [netwrk]: unknown section"),
        "{e}"
    );
    assert!(
        e.contains("filesystem, network, http, tls, secrets, process"),
        "{e}"
    );
}

#[test]
fn a_key_outside_any_section_is_named_as_such() {
    let e = error("timeout = 5\n");
    assert!(
        e.starts_with("/p/test.toml:1: timeout = 5: a key outside any section (keys go in one of [filesystem], [network]"),
        "{e}"
    );
}

#[test]
fn unknown_key_names_file_line_key_and_value() {
    let e = error("[network]\nallow = [\"a.test\"]\nalow = [\"b.test\"]\n");
    assert!(
        e.starts_with(
            "/p/test.toml:3: network.alow = [...]: unknown key (expected one of allow, add-host"
        ),
        "{e}"
    );
}

#[test]
fn wrong_types_name_the_key_and_value() {
    for (text, want) in [
        (
            "[network]\nallow = \"a.test\"\n",
            "/p/test.toml:2: network.allow = \"a.test\": expected a list of strings",
        ),
        (
            "[process]\nclean-env = \"yes\"\n",
            "/p/test.toml:2: process.clean-env = \"yes\": expected true or false",
        ),
        (
            "[process]\n\ncwd = 7\n",
            "/p/test.toml:3: process.cwd = 7: expected a string",
        ),
        (
            "[http]\nallow = [\n  \"GET a.test/*\",\n  42,\n]\n",
            "/p/test.toml:4: http.allow = 42: expected a string",
        ),
        (
            "network = 3\n",
            "/p/test.toml:1: network = 3: expected a table [network]",
        ),
        (
            "[process.env]\nA = 1\n",
            "/p/test.toml:2: process.env.A = 1: expected a string",
        ),
    ] {
        let e = error(text);
        assert!(e.starts_with(want), "{text:?}\n{e}");
    }
}

#[test]
fn bad_values_carry_the_builders_reason() {
    let e = error("[network]\nallow = [\n  \"a.test:443\",\n  \"a.test:99999\",\n]\n");
    assert!(
        e.starts_with("/p/test.toml:4: network.allow = \"a.test:99999\": invalid value 'a.test:99999' for '--net-allow'"),
        "{e}"
    );
    let e = error("[process]\ntimeout = -3\n");
    assert!(
        e.starts_with("/p/test.toml:2: process.timeout = -3: "),
        "{e}"
    );
    assert!(e.contains("positive number of seconds"), "{e}");
}

#[test]
fn a_secret_value_is_refused_and_never_shown() {
    let value = "ghp_0123456789abcdefSECRET";
    for (text, line, key) in [
        (
            format!("[secrets.GH_TOKEN]\nsource = \"{value}\"\nhosts = [\"github.com\"]\n"),
            2,
            "secrets.GH_TOKEN.source",
        ),
        (
            format!("[secrets.GH_TOKEN]\nvalue = \"{value}\"\nhosts = [\"github.com\"]\n"),
            2,
            "secrets.GH_TOKEN.value",
        ),
        (
            format!("[secrets]\nGH_TOKEN = \"{value}\"\n"),
            2,
            "secrets.GH_TOKEN",
        ),
    ] {
        let e = error(&text);
        assert!(!e.contains(value), "the value was shown: {e}");
        assert!(
            e.starts_with(&format!("/p/test.toml:{line}: {key} = <hidden>: ")),
            "{text}\n{e}"
        );
    }
    let e = error("[secrets.GH_TOKEN]\nhosts = [\"github.com\"]\n");
    assert!(
        e.starts_with("/p/test.toml:1: secrets.GH_TOKEN: missing 'source'"),
        "{e}"
    );
}

#[test]
fn syntax_errors_name_the_line() {
    let e = error("[network]\nallow = [\"a\"\n[http]\n");
    assert!(e.starts_with("/p/test.toml:"), "{e}");
    let line: usize = e["/p/test.toml:".len()..]
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((2..=3).contains(&line), "{e}");
}

#[test]
fn profile_names_are_names_or_paths() {
    for bad in [".hidden", "", "a b"] {
        let e = find(bad).unwrap_err().to_string();
        assert!(
            e.contains("--profile") && e.contains("--profile-file"),
            "{bad}: {e}"
        );
    }
    // A '/' or a .toml suffix makes it a file (as `--learn` suggests).
    for path in ["../no/such.toml", "no-such.toml", "./x/y"] {
        let e = find(path).unwrap_err().to_string();
        assert!(e.contains("--profile") && e.contains(path), "{path}: {e}");
    }
    let dir = std::env::temp_dir().join(format!("sandlock-prof-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("learned.toml");
    std::fs::write(&file, "[process]\ntimeout = 5\n").unwrap();
    let p = find(file.to_str().unwrap()).unwrap();
    assert_eq!(p.origin, Origin::File(file.clone()));
    std::fs::remove_dir_all(&dir).unwrap();
    let e = find("no-such-profile").unwrap_err().to_string();
    assert!(
        e.starts_with("no profile named 'no-such-profile' (looked in "),
        "{e}"
    );
    assert!(e.contains("python-agent"), "{e}");
}

/// The README's schema example is a working profile.
#[test]
fn the_readme_example_builds() {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find("# ~/.config/sandlock/profiles/agent.toml\n")
        .expect("the README's example profile");
    let len = readme[start..].find("```").expect("end of the example");
    let mut b = PolicyBuilder::new();
    let cx = Cx {
        text: &readme[start..start + len],
        file: "README.md",
        base: Some(Path::new("/p")),
    };
    schema::apply(&cx, &mut b).unwrap();
    let p = b.build().unwrap();
    assert_eq!(p.secrets.len(), 1);
    assert_eq!(p.secrets[0].spec, "GH_TOKEN=env:GH_TOKEN@*.github.com");
    assert_eq!(p.fs.write, [std::path::PathBuf::from("/p/work")]);
}
