//! The committed C header must be what cbindgen generates from this
//! crate today: a stale header fails here with the difference.
//! `SANDLOCK_BLESS=1` writes the fresh header instead.

// Test helpers report a failure by panicking: unwrap says "this must hold"
// (clippy's allow-unwrap-in-tests covers #[test] functions, not helpers).
#![allow(clippy::unwrap_used)]

mod common;

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
    common::check_generated(
        &krate.join("../include/sandlock.h"),
        &fresh,
        "SANDLOCK_BLESS=1 cargo test -p sandlock-ffi --test header",
    );
}
