//! Every entry point of the C ABI, called from Rust as a C caller would:
//! the success paths against real sandboxes, and the error paths (NULL
//! pointers, bad option names and values, options that do not go
//! together, a missing command) with their codes and messages.

// Test helpers report a failure by panicking: unwrap says "this must hold"
// (clippy's allow-unwrap-in-tests covers #[test] functions, not helpers).
#![allow(clippy::unwrap_used)]

mod common;

use std::ptr;

use common::{c, take, take_all, Builder, Said, TempDir};
use sandlock_ffi::sandlock_code::*;
use sandlock_ffi::*;

#[test]
fn version_is_the_crate_version_as_a_static_string() {
    let v = sandlock_version();
    assert!(!v.is_null());
    // SAFETY: the library returns a static NUL-terminated string.
    let s = unsafe { std::ffi::CStr::from_ptr(v) }.to_str().unwrap();
    assert_eq!(s, env!("CARGO_PKG_VERSION"));
    // Static: every call returns the same storage, nothing to free.
    assert_eq!(sandlock_version(), v);
}

#[test]
fn set_accepts_every_kind_of_option() {
    let b = Builder::new();
    assert_eq!(b.set("net-allow", "127.0.0.1:80"), (SANDLOCK_OK, None));
    assert_eq!(b.set("timeout", "5"), (SANDLOCK_OK, None));
    assert_eq!(b.set("quiet", "true"), (SANDLOCK_OK, None));
}

#[test]
fn set_refuses_an_unknown_option_by_name() {
    let (code, msg) = Builder::new().set("net-alow", "x");
    assert_eq!(code, SANDLOCK_ERR_INVALID_OPTION);
    assert_eq!(
        msg.as_deref(),
        Some("no such option 'net-alow' (see sandlock_option_name)")
    );
}

#[test]
fn set_refuses_a_bad_rule_naming_the_flag_and_the_value() {
    let b = Builder::new();
    let (code, msg) = b.set("http-allow", "FETCH");
    assert_eq!(code, SANDLOCK_ERR_INVALID_VALUE);
    let msg = msg.unwrap();
    assert!(
        msg.starts_with("invalid value 'FETCH' for '--http-allow'"),
        "{msg}"
    );
    let (code, msg) = b.set("quiet", "maybe");
    assert_eq!(code, SANDLOCK_ERR_INVALID_VALUE);
    assert_eq!(
        msg.as_deref(),
        Some("invalid value 'maybe' for '--quiet': expected true or false")
    );
}

#[test]
fn set_refuses_null_pointers_naming_the_argument() {
    let b = Builder::new();
    let (opt, val) = (c("quiet"), c("true"));
    let cases = [
        (
            ptr::null_mut(),
            opt.as_ptr(),
            val.as_ptr(),
            "builder is NULL",
        ),
        (b.0, ptr::null(), val.as_ptr(), "option is NULL"),
        (b.0, opt.as_ptr(), ptr::null(), "value is NULL"),
    ];
    for (builder, o, v, want) in cases {
        let mut err = ptr::null_mut();
        // SAFETY: each pointer is NULL or live.
        let code = unsafe { sandlock_builder_set(builder, o, v, &mut err) };
        assert_eq!(code, SANDLOCK_ERR_NULL_ARGUMENT);
        // SAFETY: `err` is a live error.
        let code = unsafe { sandlock_error_code(err) };
        assert_eq!(code, SANDLOCK_ERR_NULL_ARGUMENT);
        assert_eq!(take(err).as_deref(), Some(want));
    }
    // A NULL err still gets the code back, and nothing is written.
    // SAFETY: NULL builder and err are allowed.
    let code = unsafe {
        sandlock_builder_set(ptr::null_mut(), opt.as_ptr(), val.as_ptr(), ptr::null_mut())
    };
    assert_eq!(code, SANDLOCK_ERR_NULL_ARGUMENT);
}

#[test]
fn set_refuses_a_value_that_is_not_utf8() {
    let b = Builder::new();
    let opt = c("fs-read");
    let bad = [0xffu8, 0xfe, 0];
    let mut err = ptr::null_mut();
    // SAFETY: a live builder and NUL-terminated strings.
    let code = unsafe { sandlock_builder_set(b.0, opt.as_ptr(), bad.as_ptr().cast(), &mut err) };
    assert_eq!(code, SANDLOCK_ERR_INVALID_ARGUMENT);
    assert_eq!(take(err).as_deref(), Some("value is not valid UTF-8"));
}

#[test]
fn check_reports_options_that_need_each_other() {
    let b = Builder::new().with(&[("http-ca", "/ca.pem")]);
    let mut err = ptr::null_mut();
    // SAFETY: a live builder, a writable err.
    let code = unsafe { sandlock_builder_check(b.0, &mut err) };
    assert_eq!(code, SANDLOCK_ERR_POLICY);
    assert_eq!(take(err).as_deref(), Some("--http-ca needs --http-key"));
    let ok = Builder::new().with(&[("timeout", "3")]);
    // SAFETY: a live builder, NULL err allowed.
    let code = unsafe { sandlock_builder_check(ok.0, ptr::null_mut()) };
    assert_eq!(code, SANDLOCK_OK);
    // SAFETY: NULL is allowed.
    let code = unsafe { sandlock_builder_check(ptr::null(), ptr::null_mut()) };
    assert_eq!(code, SANDLOCK_ERR_NULL_ARGUMENT);
}

/// `sandlock_builder_set`'s code and what its error says.
fn set_said(b: &Builder, option: &str, value: &str) -> (sandlock_code, Option<Said>) {
    let (o, v) = (c(option), c(value));
    let mut err = ptr::null_mut();
    // SAFETY: a live builder, NUL-terminated strings, a writable err.
    let code = unsafe { sandlock_builder_set(b.0, o.as_ptr(), v.as_ptr(), &mut err) };
    (code, take_all(err))
}

/// `sandlock_builder_check`'s code and what its error says.
fn check_said(b: &Builder) -> (sandlock_code, Option<Said>) {
    let mut err = ptr::null_mut();
    // SAFETY: a live builder, a writable err.
    let code = unsafe { sandlock_builder_check(b.0, &mut err) };
    (code, take_all(err))
}

fn said(message: &str, option: Option<&str>, value: Option<&str>) -> Option<Said> {
    Some(Said {
        message: message.into(),
        option: option.map(Into::into),
        value: value.map(Into::into),
    })
}

#[test]
fn errors_name_the_option_and_the_value_they_refused() {
    let b = Builder::new();
    let (code, e) = set_said(&b, "net-allow", "api.test:99999");
    assert_eq!(code, SANDLOCK_ERR_INVALID_VALUE);
    let e = e.unwrap();
    assert_eq!(
        (e.option.as_deref(), e.value.as_deref()),
        (Some("net-allow"), Some("api.test:99999"))
    );
    // The option's name is the table's static string.
    let mut err = ptr::null_mut();
    let (o, v) = (c("quiet"), c("maybe"));
    // SAFETY: a live builder, NUL-terminated strings, a writable err.
    unsafe { sandlock_builder_set(b.0, o.as_ptr(), v.as_ptr(), &mut err) };
    // SAFETY: a live error; the option string outlives it.
    let name = unsafe { sandlock_error_option(err) };
    // SAFETY: freed once.
    unsafe { sandlock_error_free(err) };
    let i = sandlock_core::policy::OPTIONS
        .iter()
        .position(|o| o.name() == "quiet")
        .unwrap();
    assert_eq!(name, sandlock_option_name(i));
    // Twins: an unknown option and a malformed argument concern no option.
    let (code, e) = set_said(&b, "net-alow", "x");
    assert_eq!(code, SANDLOCK_ERR_INVALID_OPTION);
    assert_eq!(
        e,
        said(
            "no such option 'net-alow' (see sandlock_option_name)",
            None,
            None
        )
    );
    // SAFETY: NULL is allowed.
    unsafe {
        assert!(sandlock_error_option(ptr::null()).is_null());
        assert!(sandlock_error_value(ptr::null()).is_null());
    }
}

#[test]
fn check_names_the_first_option_of_a_cross_option_error() {
    let b = Builder::new().with(&[("http-ca", "/ca.pem")]);
    assert_eq!(
        check_said(&b),
        (
            SANDLOCK_ERR_POLICY,
            said("--http-ca needs --http-key", Some("http-ca"), None)
        )
    );
    let b = Builder::new().with(&[("http-key", "/key.pem")]);
    assert_eq!(
        check_said(&b).1,
        said("--http-key needs --http-ca", Some("http-key"), None)
    );
    let b = Builder::new().with(&[("secret-headers", "T=authorization")]);
    let (code, e) = check_said(&b);
    assert_eq!(code, SANDLOCK_ERR_INVALID_VALUE);
    let e = e.unwrap();
    assert_eq!(
        (e.option.as_deref(), e.value.as_deref()),
        (Some("secret-headers"), Some("T=..."))
    );
    let b = Builder::new().with(&[
        ("http-allow", "GET api.test/x"),
        ("http-bypass", "*.api.test"),
    ]);
    let e = check_said(&b).1.unwrap();
    assert_eq!(
        (e.option.as_deref(), e.value.as_deref()),
        (Some("http-bypass"), Some("*.api.test"))
    );
    // Twin: the same options, completed, check clean.
    let b = Builder::new().with(&[
        ("http-ca", "/ca.pem"),
        ("http-key", "/key.pem"),
        ("http-allow", "GET api.test/x"),
    ]);
    assert_eq!(check_said(&b), (SANDLOCK_OK, None));
}

/// A command that tries to open an inet socket: refused (and reported)
/// without `net-allow`.
const OPENS_A_SOCKET: &[&str] = &[
    "/usr/bin/python3",
    "-c",
    "import socket\ntry: socket.socket()\nexcept OSError: pass",
];

#[test]
fn a_captured_run_keeps_sandlocks_lines_on_the_result() {
    let b = Builder::new();
    let (code, msg, r) = b.run(OPENS_A_SOCKET, None, true);
    assert_eq!((code, msg), (SANDLOCK_OK, None));
    assert_eq!(r.exit_code(), 0);
    let lines = r.denials();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("sandlock: denied socket AF_INET SOCK_STREAM from pid "),
        "{lines:?}"
    );
    assert!(!lines[0].ends_with('\n'));
    // Never in the workload's own stderr.
    assert!(!String::from_utf8_lossy(&r.stderr()).contains("sandlock:"));
    // SAFETY: a live result; past the end is NULL.
    assert!(unsafe { sandlock_result_denial(r.0, 1) }.is_null());
}

#[test]
fn quiet_and_clean_runs_keep_no_lines() {
    // Twins of the test above: quiet says nothing, and a run nothing
    // refused has nothing to say.
    let quiet = Builder::new().with(&[("quiet", "true")]);
    let (code, _, r) = quiet.run(OPENS_A_SOCKET, None, true);
    assert_eq!((code, r.exit_code()), (SANDLOCK_OK, 0));
    assert!(r.denials().is_empty());
    let (code, _, r) = Builder::new().run(&["true"], None, true);
    assert_eq!((code, r.exit_code()), (SANDLOCK_OK, 0));
    assert!(r.denials().is_empty());
    // SAFETY: NULL is allowed.
    unsafe {
        assert_eq!(sandlock_result_denial_count(ptr::null()), 0);
        assert!(sandlock_result_denial(ptr::null(), 0).is_null());
    }
}

/// Set in the child process of the test below.
const CHILD: &str = "SANDLOCK_FFI_TEST_CHILD";

#[test]
fn uncaptured_and_captured_runs_as_the_callers_stderr_sees_them() {
    if let Some(capture) = std::env::var_os(CHILD) {
        // The child: one run, uncaptured (0) or captured (1); its kept
        // lines on stdout.
        let capture = capture == "1";
        let (code, _, r) = Builder::new().run(OPENS_A_SOCKET, None, capture);
        assert_eq!((code, r.exit_code()), (SANDLOCK_OK, 0));
        println!("kept {:?}", r.denials());
        return;
    }
    let child = |capture: &str| {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "uncaptured_and_captured_runs_as_the_callers_stderr_sees_them",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, capture)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Uncaptured (the CLI's way): the line is on the caller's stderr and
    // the result keeps none.
    let (stdout, stderr) = child("0");
    assert!(stdout.contains("kept []"), "{stdout}");
    assert!(
        stderr.contains("sandlock: denied socket AF_INET SOCK_STREAM"),
        "{stderr}"
    );
    // Captured: on the result, and not on the caller's stderr.
    let (stdout, stderr) = child("1");
    assert!(
        stdout.contains("kept [\"sandlock: denied socket AF_INET SOCK_STREAM"),
        "{stdout}"
    );
    assert!(!stderr.contains("sandlock:"), "{stderr}");
}

#[test]
fn free_functions_ignore_null() {
    // SAFETY: NULL is documented as ignored.
    unsafe {
        sandlock_builder_free(ptr::null_mut());
        sandlock_result_free(ptr::null_mut());
        sandlock_error_free(ptr::null_mut());
    }
}

#[test]
fn option_table_lists_every_core_option() {
    let n = sandlock_option_count();
    assert_eq!(n, sandlock_core::policy::OPTIONS.len());
    for (i, o) in sandlock_core::policy::OPTIONS.iter().enumerate() {
        // SAFETY: a static NUL-terminated string for every index below n.
        let name = unsafe { std::ffi::CStr::from_ptr(sandlock_option_name(i)) };
        assert_eq!(name.to_str().unwrap(), o.name());
    }
    assert!(sandlock_option_name(n).is_null());
    let kind = |name: &str| {
        let i = sandlock_core::policy::OPTIONS
            .iter()
            .position(|o| o.name() == name)
            .unwrap();
        sandlock_option_kind(i)
    };
    assert_eq!(kind("net-allow"), sandlock_kind::SANDLOCK_KIND_LIST);
    assert_eq!(kind("timeout"), sandlock_kind::SANDLOCK_KIND_VALUE);
    assert_eq!(kind("quiet"), sandlock_kind::SANDLOCK_KIND_SWITCH);
    assert_eq!(sandlock_option_kind(n), sandlock_kind::SANDLOCK_KIND_NONE);
}

#[test]
fn error_accessors_answer_null() {
    // SAFETY: NULL is allowed.
    unsafe {
        assert_eq!(sandlock_error_code(ptr::null()), SANDLOCK_ERR_NULL_ARGUMENT);
        assert!(sandlock_error_message(ptr::null()).is_null());
    }
}

#[test]
fn result_accessors_answer_null() {
    let (mut data, mut len) = (ptr::null(), 0usize);
    // SAFETY: NULL results and out-pointers are allowed.
    unsafe {
        assert_eq!(sandlock_result_exit_code(ptr::null()), -1);
        assert_eq!(sandlock_result_signal(ptr::null()), 0);
        assert_eq!(sandlock_result_timed_out(ptr::null()), 0);
        assert_eq!(sandlock_result_status(ptr::null()), -1);
        assert_eq!(
            sandlock_result_stdout(ptr::null(), &mut data, &mut len),
            SANDLOCK_ERR_NULL_ARGUMENT
        );
        assert_eq!(
            sandlock_result_stderr(ptr::null(), &mut data, &mut len),
            SANDLOCK_ERR_NULL_ARGUMENT
        );
    }
    let b = Builder::new().with(&[("quiet", "true")]);
    let (code, _, r) = b.run(&["true"], None, true);
    assert_eq!(code, SANDLOCK_OK);
    // SAFETY: a live result; NULL out-pointers are refused, not written.
    unsafe {
        assert_eq!(
            sandlock_result_stdout(r.0, ptr::null_mut(), &mut len),
            SANDLOCK_ERR_NULL_ARGUMENT
        );
        assert_eq!(
            sandlock_result_stderr(r.0, &mut data, ptr::null_mut()),
            SANDLOCK_ERR_NULL_ARGUMENT
        );
    }
}

#[test]
fn run_refuses_null_and_malformed_arguments() {
    let b = Builder::new();
    let arg = c("true");
    let argv = [arg.as_ptr()];
    let null_argv = [ptr::null::<std::ffi::c_char>()];
    let mut out: *mut sandlock_result;
    type Case<'a> = (
        *const sandlock_builder,
        *const *const std::ffi::c_char,
        usize,
        *const u8,
        usize,
        bool,
        sandlock_code,
        &'a str,
    );
    let cases: [Case; 6] = [
        (
            ptr::null(),
            argv.as_ptr(),
            1,
            ptr::null(),
            0,
            true,
            SANDLOCK_ERR_NULL_ARGUMENT,
            "builder is NULL",
        ),
        (
            b.0,
            ptr::null(),
            1,
            ptr::null(),
            0,
            true,
            SANDLOCK_ERR_NULL_ARGUMENT,
            "argv is NULL",
        ),
        (
            b.0,
            argv.as_ptr(),
            1,
            ptr::null(),
            0,
            false,
            SANDLOCK_ERR_NULL_ARGUMENT,
            "out is NULL",
        ),
        (
            b.0,
            argv.as_ptr(),
            0,
            ptr::null(),
            0,
            true,
            SANDLOCK_ERR_INVALID_ARGUMENT,
            "argc is 0: no command given",
        ),
        (
            b.0,
            null_argv.as_ptr(),
            1,
            ptr::null(),
            0,
            true,
            SANDLOCK_ERR_INVALID_ARGUMENT,
            "argv[0] is NULL",
        ),
        (
            b.0,
            argv.as_ptr(),
            1,
            ptr::null(),
            3,
            true,
            SANDLOCK_ERR_INVALID_ARGUMENT,
            "stdin_len is 3 but stdin_data is NULL",
        ),
    ];
    for (builder, argv, argc, data, len, with_out, want, msg) in cases {
        out = ptr::dangling_mut();
        let mut err = ptr::null_mut();
        let out_ptr = if with_out {
            &mut out as *mut _
        } else {
            ptr::null_mut()
        };
        // SAFETY: each pointer is NULL or live and sized as passed.
        let code = unsafe { sandlock_run(builder, argv, argc, data, len, 1, out_ptr, &mut err) };
        assert_eq!(code, want, "{msg}");
        assert_eq!(take(err).as_deref(), Some(msg));
        if with_out {
            assert!(out.is_null(), "{msg}: *out is NULL after a failure");
        }
    }
}

#[test]
fn run_reports_a_missing_command() {
    let b = Builder::new().with(&[("quiet", "true")]);
    let (code, msg, r) = b.run(&["/nonexistent/sandlock-ffi-cmd"], None, true);
    assert_eq!(code, SANDLOCK_ERR_COMMAND);
    let msg = msg.unwrap();
    assert!(msg.starts_with("/nonexistent/sandlock-ffi-cmd: "), "{msg}");
    assert!(r.0.is_null());
}

#[test]
fn run_reports_a_policy_error_before_running() {
    let dir = TempDir::new("policy");
    let marker = dir.join("ran");
    let b = Builder::new().with(&[("http-key", "/key.pem"), ("fs-write", &dir.join(""))]);
    let (code, msg, r) = b.run(&["sh", "-c", &format!("touch {marker}")], None, true);
    assert_eq!(code, SANDLOCK_ERR_POLICY);
    assert_eq!(msg.as_deref(), Some("--http-key needs --http-ca"));
    assert!(r.0.is_null());
    assert!(!std::path::Path::new(&marker).exists(), "nothing ran");
}

#[test]
fn run_reports_exit_codes_and_captures_both_streams_apart() {
    let b = Builder::new().with(&[("quiet", "true")]);
    let (code, msg, r) = b.run(
        &["sh", "-c", "printf out; printf err >&2; exit 3"],
        None,
        true,
    );
    assert_eq!((code, msg), (SANDLOCK_OK, None));
    assert_eq!(r.exit_code(), 3);
    assert_eq!(r.status(), 3);
    assert_eq!(r.signal(), 0);
    assert_eq!(r.timed_out(), 0);
    assert_eq!(r.stdout(), b"out");
    assert_eq!(r.stderr(), b"err");
    // The same builder runs again.
    let (code, _, r) = b.run(&["true"], None, true);
    assert_eq!(code, SANDLOCK_OK);
    assert_eq!(r.exit_code(), 0);
    assert!(r.stdout().is_empty());
}

#[test]
fn run_feeds_stdin_bytes() {
    let b = Builder::new().with(&[("quiet", "true")]);
    let input = b"line one\n\0binary\xff";
    let (code, _, r) = b.run(&["cat"], Some(input), true);
    assert_eq!(code, SANDLOCK_OK);
    assert_eq!(r.exit_code(), 0);
    assert_eq!(r.stdout(), input);
    // Empty stdin is end of file at once, not the caller's stdin.
    let (code, _, r) = b.run(&["wc", "-c"], Some(b""), true);
    assert_eq!(code, SANDLOCK_OK);
    assert_eq!(String::from_utf8_lossy(&r.stdout()).trim(), "0");
}

#[test]
fn run_reports_a_signal() {
    let b = Builder::new().with(&[("quiet", "true")]);
    let (code, _, r) = b.run(&["sh", "-c", "kill -KILL $$"], None, true);
    assert_eq!(code, SANDLOCK_OK);
    assert_eq!(r.signal(), 9);
    assert_eq!(r.exit_code(), -1);
    assert_eq!(r.status(), 137);
    assert_eq!(r.timed_out(), 0);
}

#[test]
fn run_reports_a_timeout() {
    let b = Builder::new().with(&[("quiet", "true"), ("timeout", "1")]);
    let start = std::time::Instant::now();
    let (code, _, r) = b.run(&["sleep", "30"], None, true);
    assert_eq!(code, SANDLOCK_OK);
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
    assert_eq!(r.timed_out(), 1);
    assert_eq!(r.status(), 124);
    assert_eq!(r.exit_code(), -1);
    assert_eq!(r.signal(), 0);
}

#[test]
fn run_confines_reads_to_the_allowlist() {
    let dir = TempDir::new("fs");
    std::fs::create_dir_all(dir.join("granted")).unwrap();
    std::fs::create_dir_all(dir.join("other")).unwrap();
    std::fs::write(dir.join("granted/f"), "granted bytes").unwrap();
    std::fs::write(dir.join("other/f"), "other bytes").unwrap();
    let b = Builder::new().with(&[("quiet", "true"), ("fs-read", &dir.join("granted"))]);
    let (code, _, r) = b.run(&["cat", &dir.join("granted/f")], None, true);
    assert_eq!(code, SANDLOCK_OK);
    assert_eq!((r.exit_code(), r.stdout()), (0, b"granted bytes".to_vec()));
    let (code, _, r) = b.run(&["cat", &dir.join("other/f")], None, true);
    assert_eq!(code, SANDLOCK_OK);
    assert_eq!(r.exit_code(), 1);
    assert!(r.stdout().is_empty());
    let err = String::from_utf8_lossy(&r.stderr()).into_owned();
    assert!(err.contains("Permission denied"), "{err}");
}

#[test]
fn one_builder_runs_from_several_threads_at_once() {
    let b = Builder::new().with(&[("quiet", "true")]);
    std::thread::scope(|s| {
        let runs: Vec<_> = (0..3)
            .map(|i| {
                let b = &b;
                s.spawn(move || {
                    let (code, _, r) =
                        b.run(&["sh", "-c", &format!("echo {i}; exit {i}")], None, true);
                    assert_eq!(code, SANDLOCK_OK);
                    (r.exit_code(), r.stdout())
                })
            })
            .collect();
        for (i, h) in runs.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), (i as i32, format!("{i}\n").into_bytes()));
        }
    });
}
