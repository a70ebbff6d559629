//! `sandlock_run` and the `sandlock_result` it hands back: how the
//! workload ended and, when asked, what it printed.
//!
//! This module turns C arguments into a core `Sandbox::run_with` call and
//! nothing more; it must never decide policy (that is the builder's) nor
//! print anything (sandlock-core prints denials on stderr itself, or keeps
//! them for the result when the run captures).

use std::ffi::{c_char, c_int, CStr, OsString};
use std::os::unix::ffi::OsStringExt;

use sandlock_core::{ExitOutcome, Output, Sandbox, Stdio};

use crate::builder::sandlock_builder;
use crate::error::{guard, sandlock_code, sandlock_error, FfiError};

/// How a run ended. The caller that received it from `sandlock_run` owns
/// it and frees it once with `sandlock_result_free` (never with `free`).
/// It is read-only: several threads may read it.
#[allow(non_camel_case_types)]
pub struct sandlock_result {
    output: Output,
    /// The `--cow` reports as a JSON array, NUL-terminated.
    cow_json: std::ffi::CString,
    /// With `learn`: the profile written, NUL-terminated.
    learned: Option<std::ffi::CString>,
    /// sandlock's own lines, kept when the run captured.
    denials: Vec<std::ffi::CString>,
}

/// Runs `argv[0..argc]` (`argv[0]` is looked up in `PATH` as a shell
/// would) confined by the builder's policy, and waits for it. The builder
/// is not consumed: it may run other commands afterwards.
///
/// `stdin_data`: NULL lets the workload inherit the caller's stdin;
/// otherwise the workload reads `stdin_len` bytes from it, then end of
/// file. `capture`: non-zero captures the workload's stdout and stderr
/// (read them with `sandlock_result_stdout`/`_stderr`) and keeps
/// sandlock's own lines about the run (`sandlock: denied ...`; read them
/// with `sandlock_result_denial_count`/`_denial`) instead of printing them
/// on the caller's stderr; zero lets the workload inherit the caller's
/// streams, and sandlock prints its lines on the caller's stderr.
///
/// On `SANDLOCK_OK`, `*out` holds a result to free with
/// `sandlock_result_free`; otherwise `*out` is NULL and `*err` (when `err`
/// is not NULL) an error. A workload that exits non-zero, is killed or
/// times out is a success here: the result says how it ended.
///
/// Ownership: `builder`, `argv` (the array and its strings) and
/// `stdin_data` are borrowed for the call only: the library copies what
/// it needs and keeps no pointer to them. `*out` and `*err` (when not
/// NULL) are always written: the caller owns the result and frees it once
/// with `sandlock_result_free`, and the error with `sandlock_error_free`.
///
/// Threads: any thread; several threads may run commands from one builder
/// at once. SIGINT, SIGTERM and SIGHUP are blocked on the calling thread
/// while the workload runs and forwarded to it when they arrive there;
/// the thread's signal mask is restored afterwards.
///
/// # Safety
/// `builder` is NULL or a live builder; `argv` is NULL or points to `argc`
/// pointers, each NULL or a NUL-terminated string; `stdin_data` is NULL or
/// points to `stdin_len` readable bytes; `out` and `err` are NULL or point
/// to writable storage.
#[no_mangle]
pub unsafe extern "C" fn sandlock_run(
    builder: *const sandlock_builder,
    argv: *const *const c_char,
    argc: usize,
    stdin_data: *const u8,
    stdin_len: usize,
    capture: c_int,
    out: *mut *mut sandlock_result,
    err: *mut *mut sandlock_error,
) -> sandlock_code {
    if !out.is_null() {
        // SAFETY: `out` is not NULL and points to writable storage.
        unsafe { *out = std::ptr::null_mut() };
    }
    guard(err, || {
        if out.is_null() {
            return Err(FfiError::Null("out"));
        }
        // SAFETY: the caller guarantees `builder` is NULL or live.
        let b = unsafe { builder.as_ref() }.ok_or(FfiError::Null("builder"))?;
        if argv.is_null() {
            return Err(FfiError::Null("argv"));
        }
        if argc == 0 {
            return Err(FfiError::Invalid("argc is 0: no command given".into()));
        }
        // SAFETY: `argv` is not NULL and points to `argc` pointers.
        let args = unsafe { std::slice::from_raw_parts(argv, argc) };
        let mut owned = Vec::with_capacity(argc);
        for (i, &a) in args.iter().enumerate() {
            if a.is_null() {
                return Err(FfiError::Invalid(format!("argv[{i}] is NULL")));
            }
            // SAFETY: not NULL, and the caller guarantees NUL termination.
            let bytes = unsafe { CStr::from_ptr(a) }.to_bytes().to_vec();
            owned.push(OsString::from_vec(bytes));
        }
        let stdin = if stdin_data.is_null() {
            if stdin_len != 0 {
                return Err(FfiError::Invalid(format!(
                    "stdin_len is {stdin_len} but stdin_data is NULL"
                )));
            }
            None
        } else {
            // SAFETY: not NULL, and the caller guarantees `stdin_len`
            // readable bytes.
            Some(unsafe { std::slice::from_raw_parts(stdin_data, stdin_len) }.to_vec())
        };
        let policy = b.policy()?;
        let output = Sandbox::new(policy).run_with(
            &owned,
            Stdio {
                stdin,
                capture: capture != 0,
            },
        )?;
        // JSON escapes every control character: no NUL can be in it.
        let cow_json =
            std::ffi::CString::new(sandlock_core::cow::json_array(&output.cow)).unwrap_or_default();
        // The profile is TOML text: a NUL in it (which TOML forbids) would
        // be a bug, and gives no text rather than a cut one.
        let learned = output
            .learned
            .as_deref()
            .and_then(|t| std::ffi::CString::new(t).ok());
        // Lines hold no NUL (they are formatted from paths and names);
        // one that did would be shown with it escaped, not lost.
        let denials = output
            .denials
            .iter()
            .map(|l| std::ffi::CString::new(l.replace('\0', "\\0")).unwrap_or_default())
            .collect();
        let boxed = Box::into_raw(Box::new(sandlock_result {
            output,
            cow_json,
            learned,
            denials,
        }));
        // SAFETY: checked not NULL above; the caller guarantees it is
        // writable.
        unsafe { *out = boxed };
        Ok(())
    })
}

/// The result, or None for NULL.
///
/// # Safety
/// `r` is NULL or a live result.
unsafe fn outcome(r: *const sandlock_result) -> Option<ExitOutcome> {
    // SAFETY: the caller guarantees `r` is NULL or live.
    unsafe { r.as_ref() }.map(|r| r.output.outcome)
}

/// The workload's exit code when it exited; -1 when a signal killed it,
/// it timed out, or `result` is NULL. `result` is borrowed for the call
/// only; any thread may call this.
///
/// # Safety
/// `result` is NULL or a live result.
#[no_mangle]
pub unsafe extern "C" fn sandlock_result_exit_code(result: *const sandlock_result) -> c_int {
    // SAFETY: forwarded from the caller.
    match unsafe { outcome(result) } {
        Some(ExitOutcome::Exited(c)) => c,
        _ => -1,
    }
}

/// The signal that killed the workload, or 0 (also for NULL). `result`
/// is borrowed for the call only; any thread may call this.
///
/// # Safety
/// `result` is NULL or a live result.
#[no_mangle]
pub unsafe extern "C" fn sandlock_result_signal(result: *const sandlock_result) -> c_int {
    // SAFETY: forwarded from the caller.
    match unsafe { outcome(result) } {
        Some(ExitOutcome::Signaled(s)) | Some(ExitOutcome::Killed { signal: s, .. }) => s,
        _ => 0,
    }
}

/// The resource limit that ended the run (`"memory"`, `"file-size"`, ...:
/// the option's name), or NULL when none did (also for NULL). The string
/// is static (valid for the life of the process, even after the result is
/// freed): the caller must not free or modify it. Any thread may call
/// this.
///
/// # Safety
/// `result` is NULL or a live result.
#[no_mangle]
pub unsafe extern "C" fn sandlock_result_limit(result: *const sandlock_result) -> *const c_char {
    // SAFETY: forwarded from the caller.
    match unsafe { outcome(result) } {
        Some(ExitOutcome::Killed { limit, .. }) => limit_name(limit).as_ptr(),
        _ => std::ptr::null(),
    }
}

/// The limit's name as a static C string.
fn limit_name(limit: sandlock_core::policy::Limit) -> &'static std::ffi::CStr {
    use sandlock_core::policy::Limit;
    match limit {
        Limit::Memory => c"memory",
        Limit::Pids => c"pids",
        Limit::Cpu => c"cpu",
        Limit::OpenFiles => c"open-files",
        Limit::FileSize => c"file-size",
        Limit::Disk => c"disk",
    }
}

/// 1 when the policy's timeout expired and sandlock killed the workload
/// tree, otherwise 0 (also for NULL). `result` is borrowed for the call
/// only; any thread may call this.
///
/// # Safety
/// `result` is NULL or a live result.
#[no_mangle]
pub unsafe extern "C" fn sandlock_result_timed_out(result: *const sandlock_result) -> c_int {
    // SAFETY: forwarded from the caller.
    c_int::from(unsafe { outcome(result) } == Some(ExitOutcome::TimedOut))
}

/// The status `sandlock run` would exit with: the exit code, 128 plus the
/// signal (137 when a resource limit killed the tree), 124 for a
/// timeout, or 125 when the workload succeeded but its `--cow` changes
/// did not all reach their directories; -1 for NULL. `result` is
/// borrowed for the call only; any thread may call this.
///
/// # Safety
/// `result` is NULL or a live result.
#[no_mangle]
pub unsafe extern "C" fn sandlock_result_status(result: *const sandlock_result) -> c_int {
    // SAFETY: the caller guarantees `result` is NULL or live.
    unsafe { result.as_ref() }.map_or(-1, |r| r.output.status())
}

/// What became of each `cow` directory's changes, as a JSON array of
/// objects (`dir`, `layer`, `added`, `changed`, `deleted`, `conflicts`,
/// `skipped`, `action`, `result`, `error`); `[]` without `cow`, NULL for
/// NULL. The string is borrowed from the result: valid until
/// `sandlock_result_free`, and the caller must not free or modify it. Any
/// thread may call this.
///
/// # Safety
/// `result` is NULL or a live result.
#[no_mangle]
pub unsafe extern "C" fn sandlock_result_cow(result: *const sandlock_result) -> *const c_char {
    // SAFETY: the caller guarantees `result` is NULL or live.
    unsafe { result.as_ref() }.map_or(std::ptr::null(), |r| r.cow_json.as_ptr())
}

/// With the `learn` option: the profile the run was found to need (the
/// text written to the `learn` file); NULL without it, or for NULL. The
/// string is borrowed from the result: valid until `sandlock_result_free`,
/// and the caller must not free or modify it. Any thread may call this.
///
/// # Safety
/// `result` is NULL or a live result.
#[no_mangle]
pub unsafe extern "C" fn sandlock_result_learned(result: *const sandlock_result) -> *const c_char {
    // SAFETY: the caller guarantees `result` is NULL or live.
    unsafe { result.as_ref() }
        .and_then(|r| r.learned.as_ref())
        .map_or(std::ptr::null(), |t| t.as_ptr())
}

/// How many lines sandlock kept about the run (its denials, warnings and
/// limits reached, each one `sandlock: ...` as it would have printed it):
/// only a run with `capture` keeps them, and none with the `quiet` option;
/// 0 for NULL. Read each with `sandlock_result_denial`. At most 10,000
/// are kept, the last then saying how many more there were (the `audit`
/// file records every event). `result` is borrowed for the call only; any
/// thread may call this.
///
/// # Safety
/// `result` is NULL or a live result.
#[no_mangle]
pub unsafe extern "C" fn sandlock_result_denial_count(result: *const sandlock_result) -> usize {
    // SAFETY: the caller guarantees `result` is NULL or live.
    unsafe { result.as_ref() }.map_or(0, |r| r.denials.len())
}

/// Line `index` (0 to `sandlock_result_denial_count() - 1`) of the lines
/// sandlock kept about the run, in the order they happened, as UTF-8
/// without a trailing newline (e.g. "sandlock: denied connect
/// 10.0.0.1:443 from pid 2 (curl): no --net-allow rule matches"); NULL
/// past the end or for NULL. A line is one event, but may hold a newline
/// (from a path the workload named).
///
/// Ownership: the string is borrowed from the result: valid until
/// `sandlock_result_free`, and the caller must not free or modify it. Any
/// thread may call this.
///
/// # Safety
/// `result` is NULL or a live result.
#[no_mangle]
pub unsafe extern "C" fn sandlock_result_denial(
    result: *const sandlock_result,
    index: usize,
) -> *const c_char {
    // SAFETY: the caller guarantees `result` is NULL or live.
    unsafe { result.as_ref() }
        .and_then(|r| r.denials.get(index))
        .map_or(std::ptr::null(), |l| l.as_ptr())
}

/// Points `*data` and `*len` at `bytes` (valid while the result lives).
///
/// # Safety
/// `data` and `len` are NULL or writable.
unsafe fn stream(
    result: *const sandlock_result,
    pick: fn(&Output) -> &[u8],
    data: *mut *const u8,
    len: *mut usize,
) -> sandlock_code {
    // SAFETY: the caller guarantees `result` is NULL or live.
    let Some(r) = (unsafe { result.as_ref() }) else {
        return sandlock_code::SANDLOCK_ERR_NULL_ARGUMENT;
    };
    if data.is_null() || len.is_null() {
        return sandlock_code::SANDLOCK_ERR_NULL_ARGUMENT;
    }
    let bytes = pick(&r.output);
    // SAFETY: both checked not NULL; the caller guarantees they are
    // writable.
    unsafe {
        *data = bytes.as_ptr();
        *len = bytes.len();
    }
    sandlock_code::SANDLOCK_OK
}

/// The workload's captured stdout: `*data` points to `*len` bytes owned
/// by the result (not NUL-terminated; empty unless the run captured).
/// Returns `SANDLOCK_ERR_NULL_ARGUMENT` when any pointer is NULL.
///
/// Ownership: the bytes are borrowed from the result: valid until
/// `sandlock_result_free`, and the caller must not free or modify them.
/// Any thread may call this.
///
/// # Safety
/// `result` is NULL or a live result; `data` and `len` are NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn sandlock_result_stdout(
    result: *const sandlock_result,
    data: *mut *const u8,
    len: *mut usize,
) -> sandlock_code {
    // SAFETY: forwarded from the caller.
    unsafe { stream(result, |o| &o.stdout, data, len) }
}

/// The workload's captured stderr, as `sandlock_result_stdout`: bytes
/// borrowed from the result, valid until `sandlock_result_free`, never
/// freed by the caller. Any thread may call this.
///
/// # Safety
/// `result` is NULL or a live result; `data` and `len` are NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn sandlock_result_stderr(
    result: *const sandlock_result,
    data: *mut *const u8,
    len: *mut usize,
) -> sandlock_code {
    // SAFETY: forwarded from the caller.
    unsafe { stream(result, |o| &o.stderr, data, len) }
}

/// Frees a result (and the bytes its streams pointed to). NULL is ignored.
///
/// Ownership: ends the caller's ownership; the result and every pointer
/// its accessors returned (`_stdout`, `_stderr`, `_cow`, `_learned`,
/// `_denial`) are invalid afterwards. Any thread, once no other thread reads the result.
///
/// # Safety
/// `result` is NULL or a result from `sandlock_run`, freed once.
#[no_mangle]
pub unsafe extern "C" fn sandlock_result_free(result: *mut sandlock_result) {
    if !result.is_null() {
        // SAFETY: it came from `Box::into_raw` in `sandlock_run`, and the
        // caller frees it once.
        drop(unsafe { Box::from_raw(result) });
    }
}
