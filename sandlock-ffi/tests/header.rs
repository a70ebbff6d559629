//! The committed C header must be what cbindgen generates from this
//! crate today: a stale header fails here with the difference.
//! `SANDLOCK_BLESS=1` writes the fresh header instead.

// Test helpers report a failure by panicking: unwrap says "this must hold"
// (clippy's allow-unwrap-in-tests covers #[test] functions, not helpers).
#![allow(clippy::unwrap_used)]

use std::path::Path;

#[test]
fn committed_header_is_current() {
    let krate = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(krate.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut fresh = Vec::new();
    cbindgen::Builder::new()
        .with_crate(krate)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut fresh);
    let fresh = String::from_utf8(fresh).expect("the header is UTF-8");
    let path = krate.join("../include/sandlock.h");
    if std::env::var_os("SANDLOCK_BLESS").is_some() {
        std::fs::write(&path, &fresh).expect("write include/sandlock.h");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != fresh {
        let diff: Vec<String> = diff_lines(&committed, &fresh);
        panic!(
            "include/sandlock.h is stale; regenerate it with\n  \
             SANDLOCK_BLESS=1 cargo test -p sandlock-ffi --test header\n\
             differences (- committed, + generated):\n{}",
            diff.join("\n")
        );
    }
}

/// The lines only one side has, in order: enough to see what changed.
fn diff_lines(old: &str, new: &str) -> Vec<String> {
    let old: Vec<&str> = old.lines().collect();
    let new: Vec<&str> = new.lines().collect();
    let mut out: Vec<String> = old
        .iter()
        .filter(|l| !new.contains(l))
        .map(|l| format!("- {l}"))
        .collect();
    out.extend(
        new.iter()
            .filter(|l| !old.contains(l))
            .map(|l| format!("+ {l}")),
    );
    out
}
