//! The policy builder behind `sandlock_builder`, and the option table
//! (`sandlock_option_*`) that lets bindings list every option.
//!
//! Every option goes through sandlock-core's `PolicyBuilder` by its
//! `sandlock run` name, so the C ABI can express exactly what the command
//! line can. This module must never parse an option value itself.

use std::ffi::{c_char, CStr, CString};
use std::sync::{Mutex, OnceLock};

use sandlock_core::policy::{self, Kind, PolicyBuilder, OPTIONS};
use sandlock_core::Policy;

use crate::error::{guard, sandlock_code, sandlock_error, FfiError};

/// A policy under construction: create with `sandlock_builder_new`, set
/// options with `sandlock_builder_set`, run with `sandlock_run`, free with
/// `sandlock_builder_free`. The caller owns it. One builder may be used
/// from several threads at once (calls on it are serialised), but it is
/// freed only when no other thread uses it.
#[allow(non_camel_case_types)]
pub struct sandlock_builder {
    inner: Mutex<PolicyBuilder>,
}

impl sandlock_builder {
    /// The policy as set so far, checked across options. The builder
    /// stays usable: the same policy can run many commands.
    pub(crate) fn policy(&self) -> Result<Policy, FfiError> {
        // A panic while the lock was held cannot leave a half-set option
        // behind (each set is one push or assignment), so a poisoned lock
        // is still a consistent builder.
        let b = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Ok(b.clone().build()?)
    }
}

/// How an option takes values.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sandlock_kind {
    /// Repeatable: every value set is added.
    SANDLOCK_KIND_LIST = 0,
    /// One value: a later one replaces an earlier one.
    SANDLOCK_KIND_VALUE = 1,
    /// On or off: "true" or "false".
    SANDLOCK_KIND_SWITCH = 2,
    /// Returned for an index past the last option.
    SANDLOCK_KIND_NONE = -1,
}

/// `ptr` as a UTF-8 string; `what` names the argument in the error.
///
/// # Safety
/// `ptr` is NULL or a NUL-terminated string.
pub(crate) unsafe fn utf8<'a>(ptr: *const c_char, what: &'static str) -> Result<&'a str, FfiError> {
    if ptr.is_null() {
        return Err(FfiError::Null(what));
    }
    // SAFETY: not NULL, and the caller guarantees NUL termination.
    let s = unsafe { CStr::from_ptr(ptr) };
    s.to_str()
        .map_err(|_| FfiError::Invalid(format!("{what} is not valid UTF-8")))
}

/// A new builder holding the default policy: the minimal system view, no
/// network, no HTTP rules, no secrets. Never NULL (allocation failure
/// aborts, as everywhere in Rust).
///
/// Ownership: the caller owns the builder and frees it once with
/// `sandlock_builder_free`. Any thread may call this.
#[no_mangle]
pub extern "C" fn sandlock_builder_new() -> *mut sandlock_builder {
    Box::into_raw(Box::new(sandlock_builder {
        inner: Mutex::new(PolicyBuilder::new()),
    }))
}

/// Sets option `option` (a `sandlock run` long flag without its dashes,
/// e.g. "net-allow") to `value`. A list option gets the value added, a
/// value option replaced, a switch turned on ("true") or off ("false").
/// Returns `SANDLOCK_OK`, or an error code with `*err` set (when `err` is
/// not NULL) to an error the caller frees with `sandlock_error_free`.
///
/// Ownership: `builder` stays the caller's; `option` and `value` are
/// borrowed for the call only (the builder keeps its own copy). When
/// `err` is not NULL, `*err` is always written: NULL on success, else an
/// error the caller owns and frees once with `sandlock_error_free` (free
/// an earlier error before reusing the variable). Threads: any thread;
/// calls on one builder are serialised.
///
/// # Safety
/// `builder` is NULL or a live builder; `option` and `value` are NULL or
/// NUL-terminated strings; `err` is NULL or points to writable storage.
#[no_mangle]
pub unsafe extern "C" fn sandlock_builder_set(
    builder: *mut sandlock_builder,
    option: *const c_char,
    value: *const c_char,
    err: *mut *mut sandlock_error,
) -> sandlock_code {
    guard(err, || {
        // SAFETY: the caller guarantees `builder` is NULL or live.
        let b = unsafe { builder.as_ref() }.ok_or(FfiError::Null("builder"))?;
        // SAFETY: the caller guarantees both are NULL or NUL-terminated.
        let (option, value) = unsafe { (utf8(option, "option")?, utf8(value, "value")?) };
        if policy::option(option).is_none() {
            return Err(FfiError::UnknownOption(option.to_owned()));
        }
        let mut inner = b.inner.lock().unwrap_or_else(|p| p.into_inner());
        Ok(inner.set(option, value)?)
    })
}

/// Applies the profile `name` (looked up like `sandlock run -p NAME`: the
/// user's `$XDG_CONFIG_HOME/sandlock/profiles/NAME.toml`, then the shipped
/// ones; a `name` with a `/` in it or ending in `.toml` is a profile
/// file's path) to the builder: its lists are added to, its values replace those
/// set so far, and options set afterwards layer on top, as flags do on the
/// command line. Errors name the profile file, line, key and value.
///
/// Ownership: `builder` stays the caller's; `name` is borrowed for the
/// call only. `*err` as for `sandlock_builder_set`: NULL on success, else
/// an error the caller frees with `sandlock_error_free`. Threads: any
/// thread; calls on one builder are serialised.
///
/// # Safety
/// `builder` is NULL or a live builder; `name` is NULL or a NUL-terminated
/// string; `err` is NULL or points to writable storage.
#[no_mangle]
pub unsafe extern "C" fn sandlock_builder_apply_profile(
    builder: *mut sandlock_builder,
    name: *const c_char,
    err: *mut *mut sandlock_error,
) -> sandlock_code {
    guard(err, || {
        // SAFETY: the caller guarantees `builder` is NULL or live.
        let b = unsafe { builder.as_ref() }.ok_or(FfiError::Null("builder"))?;
        // SAFETY: the caller guarantees `name` is NULL or NUL-terminated.
        let name = unsafe { utf8(name, "name")? };
        let profile = sandlock_core::profile::find(name)?;
        let mut inner = b.inner.lock().unwrap_or_else(|p| p.into_inner());
        // A profile that fails half way leaves the builder as it was.
        let mut next = inner.clone();
        profile.apply(&mut next)?;
        *inner = next;
        Ok(())
    })
}

/// Checks the options set so far against each other (what `sandlock_run`
/// does first: the policy is built from a copy of the builder), without
/// running anything. The error names the option to change first
/// (`sandlock_error_option`), e.g. "http-ca" for "--http-ca needs
/// --http-key".
///
/// Ownership: `builder` is borrowed for the call and left unchanged.
/// `*err` as for `sandlock_builder_set`: NULL on success, else an error
/// the caller frees with `sandlock_error_free`. Threads: any thread.
///
/// # Safety
/// `builder` is NULL or a live builder; `err` is NULL or points to
/// writable storage.
#[no_mangle]
pub unsafe extern "C" fn sandlock_builder_check(
    builder: *const sandlock_builder,
    err: *mut *mut sandlock_error,
) -> sandlock_code {
    guard(err, || {
        // SAFETY: the caller guarantees `builder` is NULL or live.
        let b = unsafe { builder.as_ref() }.ok_or(FfiError::Null("builder"))?;
        b.policy().map(drop)
    })
}

/// Frees a builder. NULL is ignored. Results and errors it produced stay
/// valid: they own their data and are freed with their own functions.
///
/// Ownership: ends the caller's ownership; the builder must not be used
/// afterwards. Threads: any thread, but not while another thread is
/// still calling a function on this builder.
///
/// # Safety
/// `builder` is NULL or a builder from `sandlock_builder_new`, freed once
/// and not in use by another thread.
#[no_mangle]
pub unsafe extern "C" fn sandlock_builder_free(builder: *mut sandlock_builder) {
    if !builder.is_null() {
        // SAFETY: it came from `Box::into_raw` in `sandlock_builder_new`,
        // and the caller frees it once.
        drop(unsafe { Box::from_raw(builder) });
    }
}

/// The options' names as C strings, made once.
fn names() -> &'static [CString] {
    static NAMES: OnceLock<Vec<CString>> = OnceLock::new();
    NAMES.get_or_init(|| {
        OPTIONS
            .iter()
            .map(|o| CString::new(o.name()).expect("option names have no NUL"))
            .collect()
    })
}

/// The static C name of option `index`, if there is one.
pub(crate) fn option_cname(index: usize) -> Option<&'static CStr> {
    names().get(index).map(CString::as_c_str)
}

/// How many policy options there are. Any thread may call this.
#[no_mangle]
pub extern "C" fn sandlock_option_count() -> usize {
    OPTIONS.len()
}

/// The name of option `index` (0 to `sandlock_option_count() - 1`), or
/// NULL past the end. The string is static (valid for the life of the
/// process): the caller must not free or modify it. Any thread may call
/// this.
#[no_mangle]
pub extern "C" fn sandlock_option_name(index: usize) -> *const c_char {
    names().get(index).map_or(std::ptr::null(), |n| n.as_ptr())
}

/// How option `index` takes values, or `SANDLOCK_KIND_NONE` past the end.
/// Any thread may call this.
#[no_mangle]
pub extern "C" fn sandlock_option_kind(index: usize) -> sandlock_kind {
    match OPTIONS.get(index).map(|o| o.kind) {
        Some(Kind::List) => sandlock_kind::SANDLOCK_KIND_LIST,
        Some(Kind::Value) => sandlock_kind::SANDLOCK_KIND_VALUE,
        Some(Kind::Switch) => sandlock_kind::SANDLOCK_KIND_SWITCH,
        None => sandlock_kind::SANDLOCK_KIND_NONE,
    }
}
