//! # sandlock-ffi
//!
//! The C ABI of sandlock (`libsandlock_ffi.so` / `.a`, header
//! `include/sandlock.h`, generated from this crate by cbindgen). C
//! programs and the Python SDK use it to build a policy option by option,
//! run a command confined by it, and read how the command ended.
//!
//! Rules every entry point keeps: every pointer argument is checked for
//! NULL; no panic unwinds into the caller (each body runs under
//! `catch_unwind`, and a panic becomes `SANDLOCK_ERR_PANIC`); errors come
//! back as a code plus an optional `sandlock_error` the caller frees; the
//! library keeps no global mutable state, so it may be called from any
//! thread.
//!
//! Ownership, as the header's top comment states it for C callers: what
//! the library allocates (builders, results, errors) the caller frees once
//! with the matching `_free` function; strings and bytes the library hands
//! out are borrowed (static, or valid until their owner is freed); what
//! the caller passes in is borrowed for the call only and copied when kept.
//!
//! Modules: `error` (codes, error objects, the panic guard), `builder`
//! (the policy builder and the option table), `run` (running a command
//! and its result).

#![deny(unsafe_op_in_unsafe_fn)]

mod builder;
mod error;
mod run;

pub use builder::{
    sandlock_builder, sandlock_builder_apply_profile, sandlock_builder_check,
    sandlock_builder_free, sandlock_builder_new, sandlock_builder_set, sandlock_kind,
    sandlock_option_count, sandlock_option_kind, sandlock_option_name,
};
pub use error::{
    sandlock_code, sandlock_error, sandlock_error_code, sandlock_error_free,
    sandlock_error_message, sandlock_error_option, sandlock_error_value,
};
pub use run::{
    sandlock_result, sandlock_result_cow, sandlock_result_denial, sandlock_result_denial_count,
    sandlock_result_exit_code, sandlock_result_free, sandlock_result_learned,
    sandlock_result_limit, sandlock_result_signal, sandlock_result_status, sandlock_result_stderr,
    sandlock_result_stdout, sandlock_result_timed_out, sandlock_run,
};

/// The crate version, NUL-terminated, for `sandlock_version`.
const VERSION: &std::ffi::CStr = match std::ffi::CStr::from_bytes_with_nul(
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes(),
) {
    Ok(v) => v,
    Err(_) => panic!("the crate version holds no NUL"),
};

/// The library's version (e.g. "0.1.0"), the same as `sandlock
/// --version` and the pkg-config file's `Version`: a static
/// NUL-terminated string, valid for the life of the process. The caller
/// must not free or modify it. Safe to call from any thread.
#[no_mangle]
pub extern "C" fn sandlock_version() -> *const std::ffi::c_char {
    VERSION.as_ptr()
}
