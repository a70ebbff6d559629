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
    sandlock_code, sandlock_error, sandlock_error_code, sandlock_error_free, sandlock_error_message,
};
pub use run::{
    sandlock_result, sandlock_result_exit_code, sandlock_result_free, sandlock_result_signal,
    sandlock_result_status, sandlock_result_stderr, sandlock_result_stdout,
    sandlock_result_timed_out, sandlock_run,
};
