//! sandlock's own files and the environment (sandlock-ca.pem,
//! sandlock-bundle.pem, SSL_CERT_FILE & co.), nothing spliced without an
//! HTTP rule, and an injected bundle outside the grants refused.

use super::*;

/// The variables sandlock sets for the workload, and their values.
const CA_ENV: [(&str, &str); 7] = [
    ("SSL_CERT_FILE", FULL_BUNDLE),
    ("REQUESTS_CA_BUNDLE", FULL_BUNDLE),
    ("CURL_CA_BUNDLE", FULL_BUNDLE),
    ("GIT_SSL_CAINFO", FULL_BUNDLE),
    ("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", FULL_BUNDLE),
    ("DENO_CERT", FULL_BUNDLE),
    ("NODE_EXTRA_CA_CERTS", CA_ONLY),
];

/// The KEY=VALUE lines of an `env` dump.
fn env_of(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn env_get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
    env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

// ---------------------------------------------------------------------------
// sandlock's own files, the environment, no proxy
// ---------------------------------------------------------------------------

/// `env`, then bundleprobe OUT OPS...
const ENV_THEN: &str = r#"env; exec "$@""#;

both!(virtual_ca_files_and_environment, |ctx| {
    let s = Trust::new();
    let ops = [
        "open",
        "ca-only",
        CA_ONLY,
        "open",
        "full",
        FULL_BUNDLE,
        "stat",
        "ca-stat",
        CA_ONLY,
    ];
    let with_probe = |flags: Vec<String>| {
        let mut args = vec![fixture("bundleprobe"), s.out.clone()];
        args.extend(sv(&ops));
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut f = flags;
        f.extend(sv(&["-r", &fixdir()]));
        run(&ctx, &f, &sh(ENV_THEN, &a))
    };

    let out = with_probe(s.flags(&[]));
    let c = s.dump(&out);
    out.expect_code(0);
    let ca = s.ca_pem();
    assert_eq!(
        String::from_utf8_lossy(&s.dumped("ca-only", &c)),
        ca,
        "{CA_ONLY} is not the --http-ca-out file\n{c}"
    );
    out.expect_ok("ca-stat", &format!("size={}", ca.len()));
    let full = s.dumped("full", &c);
    let full_s = String::from_utf8_lossy(&full);
    assert!(
        full_s.trim_end().ends_with(ca.trim_end()),
        "{FULL_BUNDLE} does not end with the CA\n{c}"
    );
    assert!(
        squash(&full).contains(&squash(host_first_cert().as_bytes())),
        "{FULL_BUNDLE} lacks the system roots\n{c}"
    );
    let env = env_of(&out.stdout);
    for (k, v) in CA_ENV {
        assert_eq!(env_get(&env, k), Some(v), "{k}\n{c}");
    }

    // the user's own value wins; the others are still set
    let out = with_probe(s.flags(&["--env", "SSL_CERT_FILE=/x"]));
    let c = s.dump(&out);
    out.expect_code(0);
    let env = env_of(&out.stdout);
    for (k, v) in CA_ENV {
        let want = if k == "SSL_CERT_FILE" { "/x" } else { v };
        assert_eq!(env_get(&env, k), Some(want), "{k}\n{c}");
    }

    // --no-ca-env: none of them, the files are still there
    let out = with_probe(s.flags(&["--no-ca-env"]));
    let c = s.dump(&out);
    out.expect_code(0);
    let env = env_of(&out.stdout);
    for (k, _) in CA_ENV {
        assert_eq!(env_get(&env, k), None, "{k}\n{c}");
    }
    assert_eq!(
        String::from_utf8_lossy(&s.dumped("ca-only", &c)),
        s.ca_pem(),
        "{c}"
    );
    s.host_unchanged();
});

both!(without_an_http_rule_nothing_is_spliced, |ctx| {
    let s = Trust::new();
    let real = host_bundle();
    let ops = [
        "open",
        "plain",
        SYSTEM_BUNDLE, //
        "open",
        "symlink",
        SYMLINKED_BUNDLE, //
        "open",
        "ca-only",
        CA_ONLY, //
        "open",
        "full",
        FULL_BUNDLE,
    ];
    let mut args = vec![fixture("bundleprobe"), s.out.clone()];
    args.extend(sv(&ops));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut flags = s.no_proxy(&[]);
    flags.extend(sv(&["-r", &fixdir()]));
    let out = run(&ctx, &flags, &sh(ENV_THEN, &a));
    let c = s.dump(&out);
    out.expect_code(0);
    s.assert_real(&out, "plain", &real, &c);
    s.assert_real(&out, "symlink", &real, &c);
    out.expect_err("ca-only", "ENOENT");
    out.expect_err("full", "ENOENT");
    let env = env_of(&out.stdout);
    for (k, _) in CA_ENV {
        assert_eq!(env_get(&env, k), None, "{k}\n{c}");
    }
    s.host_unchanged();
});

// A bundle the sandbox may not read is refused rather than spliced: a
// splice would show the workload a file Landlock keeps from it.
both!(http_inject_ca_outside_the_grants_is_refused, |ctx| {
    let s = Trust::new();
    let outside = TempDir::new("trust-outside");
    let bundle = outside.file(
        "hidden.pem",
        &fs::read_to_string(&tls_files().user_ca).unwrap(),
    );
    fs::set_permissions(outside.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let out = run(
        &ctx,
        &s.flags(&["--http-inject-ca", &bundle]),
        &sv(&["/bin/echo", "workload ran"]),
    );
    let c = s.dump(&out);
    assert_eq!(out.code(), 125, "{c}");
    assert_eq!(out.stdout, "", "{c}");
    assert!(
        out.stderr.lines().any(|l| l.contains("--http-inject-ca")
            && l.contains(&bundle)
            && l.contains("outside what the sandbox may read")),
        "{c}"
    );
    // twin: granted with -r, the same bundle is served spliced
    let out = run(
        &ctx,
        &s.flags(&["--http-inject-ca", &bundle, "-r", &outside.s()]),
        &sv(&["/bin/echo", "workload ran"]),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(out.stdout, "workload ran\n", "{c}");
});

// ---------------------------------------------------------------------------
// Bundles found at run time that must not be spliced
// ---------------------------------------------------------------------------

// A FIFO named like a certifi bundle is never read by the supervisor: it
// would block the thread that answers every trapped call.
both!(a_fifo_named_like_a_bundle_stalls_nothing, |ctx| {
    let s = Trust::new();
    let script =
        r#"mkdir "$TMPDIR/certifi" && exec python3 -I "$1" "fifo,$TMPDIR/certifi/cacert.pem""#;
    let reach = format!("{}/reachprobe.py", fixdir());
    let mut args = vec!["run".to_string()];
    args.extend(s.flags(&["-r", &fixdir()]));
    args.extend([
        "--".to_string(),
        "sh".into(),
        "-c".into(),
        script.into(),
        "sh".into(),
        reach,
    ]);
    let out = run_cmd(ctx.command(&args), None, std::time::Duration::from_secs(20));
    out.expect_code(0).expect_ok("fifo", "#");
});

/// A bundle found at run time is read with the workload's rights: as root
/// (without capabilities) the workload cannot read another user's 0600
/// file, and splicing must not read it for it.
#[test]
fn a_found_bundle_is_read_with_the_workloads_rights() {
    if !is_root() {
        return;
    }
    let s = Trust::new();
    let d = TempDir::new("trust-dac");
    let bundle = d.file("certifi/cacert.pem", "SECRET OF ANOTHER USER\n");
    let run = |s: &Trust| {
        let mut args = vec!["run".to_string()];
        args.extend(s.flags(&["-w", &d.s()]));
        args.extend(["--".to_string(), "cat".into(), bundle.clone()]);
        Ctx::invoker().sl(&args)
    };
    std::os::unix::fs::chown(&bundle, Some(NOBODY), Some(NOBODY)).unwrap();
    fs::set_permissions(&bundle, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = run(&s);
    assert_ne!(out.code(), 0, "{}", out.dump());
    assert!(!out.stdout.contains("SECRET"), "{}", out.dump());
    // twin: the workload's own file is spliced (its bytes, then the CA)
    std::os::unix::fs::chown(&bundle, Some(0), Some(0)).unwrap();
    let out = run(&s);
    out.expect_code(0);
    assert!(
        out.stdout.starts_with("SECRET OF ANOTHER USER\n"),
        "{}",
        out.dump()
    );
    assert!(out.stdout.contains(&s.ca_pem()), "{}", out.dump());
}
