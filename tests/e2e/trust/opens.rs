//! How the bundles are opened: every spelling of the system bundle
//! (symlink, dirfd-relative, `..`, openat2), O_CLOEXEC across exec, opens
//! for writing left alone, a thousand concurrent opens.

use super::*;

// ---------------------------------------------------------------------------
// How the bundles are opened
// ---------------------------------------------------------------------------

both!(every_spelling_of_the_system_bundle_is_spliced, |ctx| {
    let s = Trust::new();
    let real = host_bundle();
    let other = fs::read(NOT_A_BUNDLE).unwrap();
    let spellings: &[&[&str]] = &[
        &["open", "plain", SYSTEM_BUNDLE],
        &["open", "symlink", SYMLINKED_BUNDLE],
        &[
            "open",
            "dotdot",
            "/etc/ssl/certs/../certs/ca-certificates.crt",
        ],
        &["open", "dot", "/etc/ssl/./certs/ca-certificates.crt"],
        &["open", "dslash", "//etc/ssl/certs/ca-certificates.crt"],
        &[
            "open",
            "inner-dslash",
            "/etc/ssl//certs///ca-certificates.crt",
        ],
        &[
            "open",
            "symlinked-dir",
            "/usr/lib/ssl/certs/ca-certificates.crt",
        ],
        &["openat", "dirfd", "/etc/ssl/certs", "ca-certificates.crt"],
        &[
            "openat",
            "dirfd-dotdot",
            "/etc/ssl/certs",
            "../certs/ca-certificates.crt",
        ],
        &["openat", "dirfd-symlink", "/usr/lib/ssl", "cert.pem"],
        &["openat", "dirfd-abs", "/usr", SYSTEM_BUNDLE],
        &[
            "openat2",
            "openat2-dirfd",
            "/etc/ssl/certs",
            "ca-certificates.crt",
        ],
        &["openat2", "openat2-abs", "-", SYMLINKED_BUNDLE],
        &["chdir", "/etc/ssl"],
        &["openat", "cwd", "-", "certs/ca-certificates.crt"],
        &[
            "openat2",
            "openat2-cwd",
            "-",
            "./certs/../certs/ca-certificates.crt",
        ],
        &["open", "cwd-open", "certs/ca-certificates.crt"],
        &[
            "open",
            "cwd-dotdot",
            "../ssl/certs/../certs/ca-certificates.crt",
        ],
        &["chdir", "/usr/lib/ssl"],
        &["open", "cwd-symlinked-dir", "certs/ca-certificates.crt"],
        &["open", "cwd-symlink", "cert.pem"],
        &["open", "other", NOT_A_BUNDLE],
        &["openat", "other-dirfd", "/usr/lib/ssl", "openssl.cnf"],
    ];
    let ops: Vec<&str> = spellings.iter().flat_map(|o| o.iter().copied()).collect();
    let out = s.probe(&ctx, &s.flags(&[]), &ops);
    let c = s.dump(&out);
    out.expect_code(0);
    for op in spellings {
        if op[0] == "chdir" {
            continue;
        }
        let label = op[1];
        // openat2 keeps its flags in memory: the filter refuses it, so no
        // spelling through it reads anything (libc falls back to openat).
        if op[0] == "openat2" {
            out.expect_err(label, "ENOSYS");
        } else if label.starts_with("other") {
            s.assert_real(&out, label, &other, &c);
        } else {
            s.assert_spliced(&out, label, &real, &c);
        }
    }

    // twin: no HTTP rule, so nothing is spliced: every spelling reads the
    // real file
    let out = s.probe(&ctx, &s.no_proxy(&[]), &ops);
    let c = s.dump(&out);
    out.expect_code(0);
    for op in spellings {
        if op[0] == "openat2" {
            out.expect_err(op[1], "ENOSYS");
        } else if op[0] != "chdir" {
            let label = op[1];
            let want = if label.starts_with("other") {
                &other
            } else {
                &real
            };
            s.assert_real(&out, label, want, &c);
        }
    }
    s.host_unchanged();
});

both!(spliced_bundle_honours_o_cloexec_across_exec, |ctx| {
    let s = Trust::new();
    let real = host_bundle();
    let out = s.probe(&ctx, &s.flags(&[]), &["cloexec", "ce", SYSTEM_BUNDLE]);
    let c = s.dump(&out);
    out.expect_code(0);
    out.expect_ok("ce-flags", "a=1 b=0");
    out.expect_err("ce-a", "EBADF");
    // the inherited one is the spliced memfd
    s.assert_spliced(&out, "ce-b", &real, &c);

    // twin: the real file (no HTTP rule) behaves the same way
    let out = s.probe(&ctx, &s.no_proxy(&[]), &["cloexec", "ce", SYSTEM_BUNDLE]);
    let c = s.dump(&out);
    out.expect_code(0);
    out.expect_ok("ce-flags", "a=1 b=0");
    out.expect_err("ce-a", "EBADF");
    s.assert_real(&out, "ce-b", &real, &c);
    s.host_unchanged();
});

both!(open_for_writing_is_not_substituted, |ctx| {
    let s = Trust::new();
    let real = host_bundle();
    let ops = [
        "wronly",
        "wronly",
        SYSTEM_BUNDLE, //
        "rdwr",
        "rdwr",
        SYSTEM_BUNDLE, //
        "rdwr",
        "rdwr-symlink",
        SYMLINKED_BUNDLE, //
        "open",
        "rdonly",
        SYSTEM_BUNDLE,
    ];
    let out = s.probe(&ctx, &s.flags(&[]), &ops);
    let c = s.dump(&out);
    out.expect_code(0);
    // the kernel's answer (Landlock: /etc is read-only), not a memfd
    for l in ["wronly", "rdwr", "rdwr-symlink"] {
        out.expect_err(l, "EACCES");
    }
    s.assert_spliced(&out, "rdonly", &real, &c);

    // twin: the same answers without the proxy
    let out = s.probe(&ctx, &s.no_proxy(&[]), &ops);
    let c = s.dump(&out);
    out.expect_code(0);
    for l in ["wronly", "rdwr", "rdwr-symlink"] {
        out.expect_err(l, "EACCES");
    }
    s.assert_real(&out, "rdonly", &real, &c);
    s.host_unchanged();
});

both!(a_thousand_concurrent_opens_all_see_the_ca, |ctx| {
    let s = Trust::new();
    let ops = [
        "threads",
        "t",
        "1000",
        SYSTEM_BUNDLE,
        &s.ca, //
        // twin: the check fails on a file that is not spliced
        "threads",
        "u",
        "10",
        NOT_A_BUNDLE,
        &s.ca,
    ];
    let out = s.probe(&ctx, &s.flags(&[]), &ops);
    let c = s.dump(&out);
    out.expect_code(0);
    out.expect_ok("t", "ok=1000 fail=0");
    out.expect_ok("u", "ok=0 fail=10");
    assert!(
        out.elapsed < std::time::Duration::from_secs(10),
        "1000 opens took {:?}\n{c}",
        out.elapsed
    );
    s.host_unchanged();
});
