//! Errors across the C boundary: the status codes every entry point
//! returns, the heap-allocated `sandlock_error` that carries a message to
//! the caller, and the guard that turns a panic into an error.
//!
//! This module owns the only place an error object is allocated or freed.
//! It must never put a secret's value in a message: messages come from
//! sandlock-core's errors, which name secrets, never their values.

use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use sandlock_core::policy::OPTIONS;
use sandlock_core::Error as CoreError;

/// The status every fallible entry point returns; `SANDLOCK_OK` is 0.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sandlock_code {
    /// Success.
    SANDLOCK_OK = 0,
    /// A required pointer argument was NULL.
    SANDLOCK_ERR_NULL_ARGUMENT = 1,
    /// An argument was malformed: a string that is not UTF-8, an empty
    /// argv, a stdin length without data.
    SANDLOCK_ERR_INVALID_ARGUMENT = 2,
    /// No policy option has this name.
    SANDLOCK_ERR_INVALID_OPTION = 3,
    /// A policy option's value was refused; the message names the option
    /// and the value.
    SANDLOCK_ERR_INVALID_VALUE = 4,
    /// The options do not go together (e.g. `http-ca` without `http-key`).
    SANDLOCK_ERR_POLICY = 5,
    /// The command could not be found or executed.
    SANDLOCK_ERR_COMMAND = 6,
    /// Setting up the sandbox failed (kernel support, a file, a name that
    /// does not resolve, TLS material, a system call).
    SANDLOCK_ERR_SETUP = 7,
    /// sandlock panicked; the panic was caught at the boundary.
    SANDLOCK_ERR_PANIC = 8,
}

/// An error: a code, a message and, when it concerns one policy option,
/// that option's name and the value refused. The caller that received it
/// through an `err` argument owns it and frees it once with
/// `sandlock_error_free` (never with `free`). It is read-only: several
/// threads may read it.
#[allow(non_camel_case_types)]
pub struct sandlock_error {
    code: sandlock_code,
    message: CString,
    /// The option the error names first (`http-ca` in `--http-ca needs
    /// --http-key`): a static name from the option table.
    option: Option<&'static CStr>,
    /// The value refused, when the error carries one.
    value: Option<CString>,
}

/// A failure inside the library, before it becomes a `sandlock_error`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FfiError {
    /// A NULL pointer where one is required.
    #[error("{0} is NULL")]
    Null(&'static str),
    /// A malformed argument.
    #[error("{0}")]
    Invalid(String),
    /// An unknown option name.
    #[error("no such option '{0}' (see sandlock_option_name)")]
    UnknownOption(String),
    /// An error from sandlock-core.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// A caught panic.
    #[error("internal error (panic): {0}")]
    Panic(String),
}

impl FfiError {
    /// The option this error concerns, and the value it refused: from the
    /// error's own fields where it has them, else the first `--option` its
    /// message names (the cross-option checks name the one to change
    /// first).
    fn subject(&self) -> (Option<&'static CStr>, Option<&str>) {
        let FfiError::Core(e) = self else {
            return (None, None);
        };
        match e {
            CoreError::InvalidValue { flag, value, .. } => (option_named(flag), Some(value)),
            CoreError::File { flag, path, .. } => (option_named(flag), Some(path)),
            CoreError::Resolve { flag, host, .. } => (option_named(flag), Some(host)),
            CoreError::Usage(msg) => (first_option_in(msg), None),
            _ => (None, None),
        }
    }

    fn code(&self) -> sandlock_code {
        use sandlock_code::*;
        match self {
            FfiError::Null(_) => SANDLOCK_ERR_NULL_ARGUMENT,
            FfiError::Invalid(_) => SANDLOCK_ERR_INVALID_ARGUMENT,
            FfiError::UnknownOption(_) => SANDLOCK_ERR_INVALID_OPTION,
            FfiError::Panic(_) => SANDLOCK_ERR_PANIC,
            FfiError::Core(e) => match e {
                CoreError::InvalidValue { .. } => SANDLOCK_ERR_INVALID_VALUE,
                CoreError::Usage(_)
                | CoreError::Profile { .. }
                | CoreError::ProfileSyntax { .. }
                | CoreError::ProfileNotFound { .. } => SANDLOCK_ERR_POLICY,
                CoreError::Command { .. } => SANDLOCK_ERR_COMMAND,
                _ => SANDLOCK_ERR_SETUP,
            },
        }
    }
}

/// The option table's static name for `flag` (`--net-allow` or
/// `net-allow`), if it is an option.
fn option_named(flag: &str) -> Option<&'static CStr> {
    let name = flag.strip_prefix("--").unwrap_or(flag);
    let i = OPTIONS.iter().position(|o| o.name() == name)?;
    crate::builder::option_cname(i)
}

/// The first `--option` in `text` that is a policy option.
fn first_option_in(text: &str) -> Option<&'static CStr> {
    text.match_indices("--").find_map(|(i, _)| {
        let before = text[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '-') {
            return None;
        }
        let rest = &text[i + 2..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(rest.len());
        option_named(&rest[..end])
    })
}

/// `text` as a C string: cut at a NUL (a value the caller gave may hold
/// one) rather than lost.
fn c_text(text: &str) -> CString {
    CString::new(text.split('\0').next().unwrap_or_default()).unwrap_or_default()
}

/// Runs `body`, the whole of an entry point, and reports its outcome: the
/// code, and (when `err` is not NULL) an error object in `*err`, or NULL
/// on success. A panic becomes `SANDLOCK_ERR_PANIC`: unwinding into C is
/// undefined behaviour.
pub(crate) fn guard(
    err: *mut *mut sandlock_error,
    body: impl FnOnce() -> Result<(), FfiError>,
) -> sandlock_code {
    let outcome = catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        Err(FfiError::Panic(what))
    });
    let (code, error) = match outcome {
        Ok(()) => (sandlock_code::SANDLOCK_OK, None),
        Err(e) => (e.code(), Some(e)),
    };
    if !err.is_null() {
        let boxed = error.map_or(std::ptr::null_mut(), |e| {
            let (option, value) = e.subject();
            Box::into_raw(Box::new(sandlock_error {
                code,
                message: c_text(&e.to_string()),
                option,
                value: value.map(c_text),
            }))
        });
        // SAFETY: `err` is not NULL, and the caller promises it points to
        // writable storage for one pointer (documented on every entry
        // point that takes it).
        unsafe { *err = boxed };
    }
    code
}

/// The error's code; `SANDLOCK_ERR_NULL_ARGUMENT` when `err` is NULL.
/// `err` is borrowed for the call only. Any thread may call this.
///
/// # Safety
/// `err` is NULL or an error returned by this library and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn sandlock_error_code(err: *const sandlock_error) -> sandlock_code {
    // SAFETY: the caller guarantees `err` is NULL or a live error.
    match unsafe { err.as_ref() } {
        Some(e) => e.code,
        None => sandlock_code::SANDLOCK_ERR_NULL_ARGUMENT,
    }
}

/// The error's message, a NUL-terminated UTF-8 string owned by the error
/// (valid until `sandlock_error_free`); NULL when `err` is NULL.
///
/// Ownership: the string is borrowed from the error: the caller must not
/// free or modify it, and copies it to keep it past `sandlock_error_free`.
/// Any thread may call this.
///
/// # Safety
/// `err` is NULL or an error returned by this library and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn sandlock_error_message(err: *const sandlock_error) -> *const c_char {
    // SAFETY: the caller guarantees `err` is NULL or a live error.
    match unsafe { err.as_ref() } {
        Some(e) => e.message.as_ptr(),
        None => std::ptr::null(),
    }
}

/// The policy option the error concerns, without its dashes (e.g.
/// "http-ca" for "--http-ca needs --http-key", "net-allow" for a refused
/// `net-allow` value): for a refused value, its option; for options that
/// do not go together, the first one the message names. NULL when the
/// error concerns no one option (or `err` is NULL).
///
/// Ownership: the string is static (one of `sandlock_option_name`'s,
/// valid for the life of the process, even after the error is freed):
/// the caller must not free or modify it. Any thread may call this.
///
/// # Safety
/// `err` is NULL or an error returned by this library and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn sandlock_error_option(err: *const sandlock_error) -> *const c_char {
    // SAFETY: the caller guarantees `err` is NULL or a live error.
    match unsafe { err.as_ref() }.and_then(|e| e.option) {
        Some(name) => name.as_ptr(),
        None => std::ptr::null(),
    }
}

/// The value the error refused (e.g. "api.test:99999"), as given, when it
/// carries one; NULL otherwise (options that do not go together, an
/// error that is not about a value) or when `err` is NULL. A value with
/// a NUL in it is cut there.
///
/// Ownership: the string is borrowed from the error: valid until
/// `sandlock_error_free`; the caller must not free or modify it. Any
/// thread may call this.
///
/// # Safety
/// `err` is NULL or an error returned by this library and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn sandlock_error_value(err: *const sandlock_error) -> *const c_char {
    // SAFETY: the caller guarantees `err` is NULL or a live error.
    match unsafe { err.as_ref() }.and_then(|e| e.value.as_ref()) {
        Some(v) => v.as_ptr(),
        None => std::ptr::null(),
    }
}

/// Frees an error (and its message). NULL is ignored.
///
/// Ownership: ends the caller's ownership; neither the error nor its
/// message may be used afterwards. Any thread, once no other thread reads
/// the error.
///
/// # Safety
/// `err` is NULL or an error returned by this library, freed only once.
#[no_mangle]
pub unsafe extern "C" fn sandlock_error_free(err: *mut sandlock_error) {
    if !err.is_null() {
        // SAFETY: `err` came from `Box::into_raw` in `guard` and the caller
        // frees it once.
        drop(unsafe { Box::from_raw(err) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn a_panic_becomes_an_error_with_its_message() {
        let mut err = std::ptr::null_mut();
        let code = guard(&mut err, || panic!("boom at the boundary"));
        assert_eq!(code, sandlock_code::SANDLOCK_ERR_PANIC);
        // SAFETY: `guard` just stored a live error in `err`.
        unsafe {
            assert_eq!(sandlock_error_code(err), sandlock_code::SANDLOCK_ERR_PANIC);
            let msg = CStr::from_ptr(sandlock_error_message(err))
                .to_str()
                .unwrap();
            assert_eq!(msg, "internal error (panic): boom at the boundary");
            sandlock_error_free(err);
        }
    }

    #[test]
    fn the_subject_is_the_first_option_a_usage_error_names() {
        let name = |t: &str| first_option_in(t).map(|c| c.to_str().unwrap());
        assert_eq!(name("--http-ca needs --http-key"), Some("http-ca"));
        assert_eq!(
            name("--on-exit and --cow-summary have no effect without a --cow directory"),
            Some("on-exit")
        );
        // Not an option, or not a flag: the next one counts, or none.
        assert_eq!(
            name("--profile x or --no-such, then --quiet."),
            Some("quiet")
        );
        assert_eq!(name("a--quiet"), None);
        assert_eq!(name("nothing here"), None);
    }

    #[test]
    fn success_clears_the_error_pointer() {
        let mut err = std::ptr::dangling_mut::<sandlock_error>();
        assert_eq!(guard(&mut err, || Ok(())), sandlock_code::SANDLOCK_OK);
        assert!(err.is_null());
    }

    #[test]
    fn a_nul_in_a_message_cuts_it_there() {
        let mut err = std::ptr::null_mut();
        guard(&mut err, || Err(FfiError::Invalid("before\0after".into())));
        // SAFETY: `guard` just stored a live error in `err`.
        unsafe {
            let msg = CStr::from_ptr(sandlock_error_message(err))
                .to_str()
                .unwrap();
            assert_eq!(msg, "before");
            sandlock_error_free(err);
        }
    }
}
