//! `sandlock_builder_apply_profile`: a profile by name through the C ABI,
//! with options set afterwards layered on top, as on the command line.

// Test helpers report a failure by panicking: unwrap says "this must hold"
// (clippy's allow-unwrap-in-tests covers #[test] functions, not helpers).
#![allow(clippy::unwrap_used)]

mod common;

use std::ffi::CString;
use std::ptr;

use common::*;
use sandlock_ffi::sandlock_code::*;
use sandlock_ffi::*;

fn apply(b: &Builder, name: Option<&str>) -> (sandlock_code, Option<String>) {
    let name = name.map(|n| CString::new(n).unwrap());
    let mut err = ptr::null_mut();
    // SAFETY: a live builder, NULL or a NUL-terminated name, a writable err.
    let code = unsafe {
        sandlock_builder_apply_profile(
            b.0,
            name.as_ref().map_or(ptr::null(), |n| n.as_ptr()),
            &mut err,
        )
    };
    let msg = if err.is_null() {
        None
    } else {
        // SAFETY: a live error from the call above, freed once here.
        let m = unsafe { std::ffi::CStr::from_ptr(sandlock_error_message(err)) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: as above.
        unsafe { sandlock_error_free(err) };
        Some(m)
    };
    (code, msg)
}

#[test]
fn a_shipped_profile_applies_and_flags_layer_on_top() {
    // cargo sets CARGO_MANIFEST_DIR for the test process; `build` has a
    // clean environment, so the workload does not see it.
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    let script = "echo ${LAYERED:-unset} ${CARGO_MANIFEST_DIR:+inherited}";
    let b = Builder::new();
    assert_eq!(apply(&b, Some("build")), (SANDLOCK_OK, None));
    let b = b.with(&[("env", "LAYERED=yes")]);
    let (code, msg, r) = b.run(&["/bin/sh", "-c", script], None, true);
    assert_eq!(code, SANDLOCK_OK, "{msg:?}");
    assert_eq!(r.exit_code(), 0);
    assert_eq!(r.stdout(), b"yes\n");
    // Twin: without the profile the variable is inherited.
    let b = Builder::new().with(&[("env", "LAYERED=yes")]);
    let (_, _, r) = b.run(&["/bin/sh", "-c", script], None, true);
    assert_eq!(r.stdout(), b"yes inherited\n");
}

#[test]
fn profile_errors_name_the_profile() {
    let b = Builder::new();
    let (code, msg) = apply(&b, Some("no-such-profile"));
    assert_eq!(code, SANDLOCK_ERR_POLICY);
    assert!(msg.unwrap().contains("no-such-profile"));
    // A name with a '/' is a profile file, as `-p` takes it: a missing
    // one is named.
    let (code, msg) = apply(&b, Some("../no/such/profile.toml"));
    assert_eq!(code, SANDLOCK_ERR_SETUP);
    assert!(msg.unwrap().contains("../no/such/profile.toml"));
    let (code, msg) = apply(&b, Some(".hidden"));
    assert_eq!(code, SANDLOCK_ERR_INVALID_VALUE);
    assert!(msg.unwrap().contains(".hidden"));
    let (code, msg) = apply(&b, None);
    assert_eq!(code, SANDLOCK_ERR_NULL_ARGUMENT);
    assert_eq!(msg.as_deref(), Some("name is NULL"));
}
