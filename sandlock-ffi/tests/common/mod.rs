//! Helpers for calling the C ABI from Rust tests the way a C caller
//! would: C strings in, codes and error objects out.

#![allow(dead_code)]

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::ptr;

use sandlock_ffi::*;

/// A builder freed on drop.
pub struct Builder(pub *mut sandlock_builder);

impl Builder {
    pub fn new() -> Builder {
        Builder(sandlock_builder_new())
    }

    /// Sets an option; the code and the error message (if any).
    pub fn set(&self, option: &str, value: &str) -> (sandlock_code, Option<String>) {
        let (o, v) = (c(option), c(value));
        let mut err = ptr::null_mut();
        // SAFETY: a live builder, NUL-terminated strings, a writable err.
        let code = unsafe { sandlock_builder_set(self.0, o.as_ptr(), v.as_ptr(), &mut err) };
        (code, take(err))
    }

    /// Sets options that must be accepted.
    pub fn with(self, options: &[(&str, &str)]) -> Builder {
        for (o, v) in options {
            let (code, msg) = self.set(o, v);
            assert_eq!(code, sandlock_code::SANDLOCK_OK, "{o}={v}: {msg:?}");
        }
        self
    }

    /// Runs argv; the code, the error message, and the result.
    pub fn run(
        &self,
        argv: &[&str],
        stdin: Option<&[u8]>,
        capture: bool,
    ) -> (sandlock_code, Option<String>, Result) {
        let args: Vec<CString> = argv.iter().map(|a| c(a)).collect();
        let ptrs: Vec<*const std::ffi::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        let (data, len) = stdin.map_or((ptr::null(), 0), |s| (s.as_ptr(), s.len()));
        let mut out = ptr::null_mut();
        let mut err = ptr::null_mut();
        // SAFETY: every pointer is live for the call and sized as passed.
        let code = unsafe {
            sandlock_run(
                self.0,
                ptrs.as_ptr(),
                ptrs.len(),
                data,
                len,
                i32::from(capture),
                &mut out,
                &mut err,
            )
        };
        (code, take(err), Result(out))
    }
}

impl Drop for Builder {
    fn drop(&mut self) {
        // SAFETY: the builder is ours and freed once.
        unsafe { sandlock_builder_free(self.0) }
    }
}

// SAFETY: the builder serialises calls on itself, so sharing the pointer
// between test threads is what the C ABI promises to allow.
unsafe impl Sync for Builder {}
// SAFETY: as above.
unsafe impl Send for Builder {}

/// A result freed on drop (NULL when the run failed).
pub struct Result(pub *mut sandlock_result);

impl Result {
    pub fn exit_code(&self) -> i32 {
        // SAFETY: NULL or a live result.
        unsafe { sandlock_result_exit_code(self.0) }
    }
    pub fn signal(&self) -> i32 {
        // SAFETY: NULL or a live result.
        unsafe { sandlock_result_signal(self.0) }
    }
    pub fn timed_out(&self) -> i32 {
        // SAFETY: NULL or a live result.
        unsafe { sandlock_result_timed_out(self.0) }
    }
    pub fn status(&self) -> i32 {
        // SAFETY: NULL or a live result.
        unsafe { sandlock_result_status(self.0) }
    }
    pub fn stdout(&self) -> Vec<u8> {
        let (mut data, mut len) = (ptr::null(), 0);
        // SAFETY: a live result and writable out-pointers.
        let code = unsafe { sandlock_result_stdout(self.0, &mut data, &mut len) };
        assert_eq!(code, sandlock_code::SANDLOCK_OK);
        // SAFETY: the library points `data` at `len` bytes the result owns.
        unsafe { std::slice::from_raw_parts(data, len) }.to_vec()
    }
    pub fn stderr(&self) -> Vec<u8> {
        let (mut data, mut len) = (ptr::null(), 0);
        // SAFETY: a live result and writable out-pointers.
        let code = unsafe { sandlock_result_stderr(self.0, &mut data, &mut len) };
        assert_eq!(code, sandlock_code::SANDLOCK_OK);
        // SAFETY: the library points `data` at `len` bytes the result owns.
        unsafe { std::slice::from_raw_parts(data, len) }.to_vec()
    }
}

impl Result {
    /// sandlock's own lines the run kept (`sandlock_result_denial`).
    pub fn denials(&self) -> Vec<String> {
        // SAFETY: NULL or a live result.
        let n = unsafe { sandlock_result_denial_count(self.0) };
        (0..n)
            .map(|i| {
                // SAFETY: a live result and an index below the count: a
                // NUL-terminated string the result owns.
                unsafe { CStr::from_ptr(sandlock_result_denial(self.0, i)) }
                    .to_str()
                    .expect("denial lines are UTF-8")
                    .to_owned()
            })
            .collect()
    }
}

impl Drop for Result {
    fn drop(&mut self) {
        // SAFETY: NULL or our result, freed once.
        unsafe { sandlock_result_free(self.0) }
    }
}

pub fn c(s: &str) -> CString {
    CString::new(s).expect("test strings hold no NUL")
}

/// The error's message (checking its code matches), freeing it.
pub fn take(err: *mut sandlock_error) -> Option<String> {
    if err.is_null() {
        return None;
    }
    // SAFETY: a live error from the library, freed once here.
    unsafe {
        let msg = CStr::from_ptr(sandlock_error_message(err))
            .to_string_lossy()
            .into_owned();
        sandlock_error_free(err);
        Some(msg)
    }
}

/// What an error says: its message, option and value.
#[derive(Debug, PartialEq, Eq)]
pub struct Said {
    pub message: String,
    pub option: Option<String>,
    pub value: Option<String>,
}

/// The error's message, option and value, freeing it.
pub fn take_all(err: *mut sandlock_error) -> Option<Said> {
    if err.is_null() {
        return None;
    }
    let text = |p: *const std::ffi::c_char| {
        // SAFETY: NULL or a NUL-terminated string the error owns (or a
        // static one).
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    };
    // SAFETY: a live error from the library, freed once here.
    unsafe {
        let said = Said {
            message: text(sandlock_error_message(err)).unwrap_or_default(),
            option: text(sandlock_error_option(err)),
            value: text(sandlock_error_value(err)),
        };
        sandlock_error_free(err);
        Some(said)
    }
}

/// The end-to-end tests' scratch directory (one type for every test crate).
#[path = "../../../tests/e2e/common/tempdir.rs"]
mod tempdir;
#[allow(unused_imports)] // not every test crate makes one
pub use tempdir::TempDir;

/// Checks that the committed generated file at `path` is `fresh`; with
/// `SANDLOCK_BLESS` set, writes `fresh` there instead. A stale file fails
/// with the lines that differ and `bless`, the command that regenerates it.
pub fn check_generated(path: &Path, fresh: &str, bless: &str) {
    if std::env::var_os("SANDLOCK_BLESS").is_some() {
        std::fs::write(path, fresh).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        return;
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    if committed != fresh {
        panic!(
            "{} is stale; regenerate it with\n  {bless}\n\
             differences (- committed, + generated):\n{}",
            path.display(),
            diff_lines(&committed, fresh).join("\n")
        );
    }
}

/// The lines only one side has, in order: enough to see what changed.
pub fn diff_lines(old: &str, new: &str) -> Vec<String> {
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

/// The workspace's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("sandlock-ffi sits in the workspace")
        .to_path_buf()
}

/// target/<profile>, where Cargo put this test, libsandlock_ffi.so and
/// the workspace's binaries.
pub fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    exe.parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps")
        .to_path_buf()
}

/// Compiles examples/c/run.c (the README's C example) into `exe` with
/// `flags` (include and link flags), warnings as errors; panics with cc's
/// output when it fails.
pub fn compile_example(exe: &Path, flags: &[String]) {
    let out = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(exe)
        .arg(repo_root().join("examples/c/run.c"))
        .args(flags)
        .output()
        .expect("run cc");
    assert!(
        out.status.success(),
        "cc {flags:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A finished process's status code, stdout and stderr.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// Runs `cmd` to completion.
    pub fn of(cmd: &mut Command) -> Ran {
        let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
        Ran {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}
