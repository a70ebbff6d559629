//! The options: --http-inject-ca (missing paths, named bundles, certifi
//! bundles by canonical suffix), --no-default-bundles and --trust-host-cas.

use super::*;

// ---------------------------------------------------------------------------
// --http-inject-ca, --no-default-bundles, --trust-host-cas
// ---------------------------------------------------------------------------

both!(http_inject_ca_missing_path_fails_at_startup, |ctx| {
    let s = Trust::new();
    let out = run(
        &ctx,
        &s.flags(&["--http-inject-ca", "/nonexistent/x.pem"]),
        &sv(&["/bin/echo", "workload ran"]),
    );
    let c = s.dump(&out);
    assert!(out.code() == 125 || out.code() == 2, "{c}");
    assert_eq!(out.stdout, "", "{c}");
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains("--http-inject-ca") && l.contains("/nonexistent/x.pem")),
        "the error does not name the flag and the path\n{c}"
    );
    assert!(s.up.entries().is_empty(), "{c}");
});

both!(http_inject_ca_splices_a_named_bundle, |ctx| {
    let s = Trust::new();
    let f = tls_files();
    let mine = fs::read_to_string(&f.user_ca).unwrap();
    let bundle = s.d.file("extra/bundle.pem", &mine);
    let real = host_bundle();
    let ops = ["open", "mine", &bundle, "open", "system", SYSTEM_BUNDLE];

    let out = s.probe(&ctx, &s.flags(&["--http-inject-ca", &bundle]), &ops);
    let c = s.dump(&out);
    out.expect_code(0);
    s.assert_spliced(&out, "mine", mine.as_bytes(), &c);
    s.assert_spliced(&out, "system", &real, &c);

    // twin: the same file without the flag is read unmodified
    let out = s.probe(&ctx, &s.flags(&[]), &ops);
    let c = s.dump(&out);
    out.expect_code(0);
    s.assert_real(&out, "mine", mine.as_bytes(), &c);
    s.assert_spliced(&out, "system", &real, &c);

    // --no-default-bundles: only the named bundle (and sandlock's own
    // files) carry the CA; the system bundle is served unmodified
    let ops = [
        "open",
        "mine",
        &bundle, //
        "open",
        "system",
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
    let out = s.probe(
        &ctx,
        &s.flags(&["--no-default-bundles", "--http-inject-ca", &bundle]),
        &ops,
    );
    let c = s.dump(&out);
    out.expect_code(0);
    s.assert_spliced(&out, "mine", mine.as_bytes(), &c);
    s.assert_real(&out, "system", &real, &c);
    s.assert_real(&out, "symlink", &real, &c);
    let ca = s.ca_pem();
    assert_eq!(
        String::from_utf8_lossy(&s.dumped("ca-only", &c)),
        ca,
        "{CA_ONLY}\n{c}"
    );
    let full = s.dumped("full", &c);
    assert!(
        String::from_utf8_lossy(&full)
            .trim_end()
            .ends_with(ca.trim_end()),
        "{FULL_BUNDLE} does not end with the CA: {:?}\n{c}",
        tail(&full)
    );
    s.host_unchanged();
});

both!(
    trust_host_cas_appends_host_roots_to_certifi_bundles,
    |ctx| {
        let s = Trust::new();
        let f = tls_files();
        let unrelated = fs::read_to_string(&f.user_ca).unwrap();
        let certifi = s.d.file("site-packages/certifi/cacert.pem", &unrelated);
        let ops = ["open", "certifi", &certifi];

        let out = s.probe(&ctx, &s.flags(&["--trust-host-cas"]), &ops);
        let c = s.dump(&out);
        out.expect_code(0);
        let got = s.dumped("certifi", &c);
        let ca = s.ca_pem();
        assert!(
            got.starts_with(unrelated.as_bytes()),
            "the certifi bundle's own cert is not first\n{c}"
        );
        let flat = squash(&got);
        let host = squash(host_first_cert().as_bytes());
        let at_host = flat
            .find(&host)
            .unwrap_or_else(|| panic!("the host's first root is not in the spliced bundle\n{c}"));
        assert!(at_host >= squash(unrelated.as_bytes()).len(), "{c}");
        assert!(
            flat.ends_with(&squash(ca.as_bytes())),
            "the spliced bundle does not end with the CA: {:?}\n{c}",
            tail(&got)
        );
        assert!(
            at_host + host.len() <= flat.len() - squash(ca.as_bytes()).len(),
            "{c}"
        );
        assert!(
            seals_of(&out, "certifi", &c).is_some(),
            "certifi bundle: not a memfd\n{c}"
        );

        // twin: without --trust-host-cas, that cert then the CA only
        let out = s.probe(&ctx, &s.flags(&[]), &ops);
        let c = s.dump(&out);
        out.expect_code(0);
        s.assert_spliced(&out, "certifi", unrelated.as_bytes(), &c);
        assert!(!squash(&s.dumped("certifi", &c)).contains(&host), "{c}");
        s.host_unchanged();
    }
);

/// certifi bundles shipped on the host (Debian's python3-certifi and pip's
/// vendored copy), checked when present.
const HOST_CERTIFI: [&str; 2] = [
    "/usr/lib/python3/dist-packages/certifi/cacert.pem",
    "/usr/lib/python3/dist-packages/pip/_vendor/certifi/cacert.pem",
];

both!(certifi_bundles_matched_by_canonical_suffix, |ctx| {
    let s = Trust::new();
    let mine = fs::read_to_string(&tls_files().user_ca).unwrap();
    let certifi = s.d.file("site-packages/certifi/cacert.pem", &mine);
    let other = s.d.file("other/cacert.pem", &mine);
    std::os::unix::fs::symlink(s.d.join("site-packages"), s.d.join("sp")).unwrap();
    let via_link = s.d.join("sp/certifi/cacert.pem");
    let dotdot = s.d.join("site-packages/certifi/../certifi/cacert.pem");
    let certifi_dir = s.d.join("site-packages/certifi");
    let mut ops: Vec<String> = sv(&[
        "open",
        "direct",
        &certifi, //
        "open",
        "symlinked-dir",
        &via_link, //
        "open",
        "dotdot",
        &dotdot, //
        "openat",
        "dirfd",
        &certifi_dir,
        "cacert.pem", //
        "openat2",
        "openat2",
        &certifi_dir,
        "cacert.pem", //
        "open",
        "other",
        &other,
    ]);
    let host: Vec<(String, &str)> = HOST_CERTIFI
        .iter()
        .filter(|p| Path::new(p).exists())
        .enumerate()
        .map(|(i, p)| (format!("host{i}"), *p))
        .collect();
    for (label, p) in &host {
        ops.extend(sv(&["open", label, p]));
    }
    let o: Vec<&str> = ops.iter().map(String::as_str).collect();
    let out = s.probe(&ctx, &s.flags(&[]), &o);
    let c = s.dump(&out);
    out.expect_code(0);
    for l in ["direct", "symlinked-dir", "dotdot", "dirfd"] {
        s.assert_spliced(&out, l, mine.as_bytes(), &c);
    }
    // The filter refuses openat2 (its flags are in memory).
    out.expect_err("openat2", "ENOSYS");
    // not under a certifi directory
    s.assert_real(&out, "other", mine.as_bytes(), &c);
    for (label, p) in &host {
        s.assert_spliced(&out, label, &fs::read(p).unwrap(), &c);
    }

    // twin: no proxy, every one of them is the real file
    let out = s.probe(&ctx, &s.no_proxy(&[]), &o);
    let c = s.dump(&out);
    out.expect_code(0);
    for l in ["direct", "symlinked-dir", "dotdot", "dirfd", "other"] {
        s.assert_real(&out, l, mine.as_bytes(), &c);
    }
    out.expect_err("openat2", "ENOSYS");
    for (label, p) in &host {
        s.assert_real(&out, label, &fs::read(p).unwrap(), &c);
    }
    s.host_unchanged();
});

both!(grpcio_roots_matched_by_canonical_suffix, |ctx| {
    // grpcio reads only the roots.pem it bundles (and the variable
    // GRPC_DEFAULT_SSL_ROOTS_FILE_PATH, which a scrubbed environment
    // loses): that file is spliced wherever the package is installed.
    let s = Trust::new();
    let mine = fs::read_to_string(&tls_files().user_ca).unwrap();
    let roots = s.d.file(
        "venv/lib/python3.11/site-packages/grpc/_cython/_credentials/roots.pem",
        &mine,
    );
    let other = s.d.file("other/_credentials/roots.pem", &mine);
    let o = ["open", "grpc", &roots, "open", "other", &other];
    let out = s.probe(&ctx, &s.flags(&[]), &o);
    let c = s.dump(&out);
    out.expect_code(0);
    s.assert_spliced(&out, "grpc", mine.as_bytes(), &c);
    s.assert_real(&out, "other", mine.as_bytes(), &c);
    // twin: no proxy, the real file
    let out = s.probe(&ctx, &s.no_proxy(&[]), &o);
    let c = s.dump(&out);
    out.expect_code(0);
    s.assert_real(&out, "grpc", mine.as_bytes(), &c);
    s.host_unchanged();
});
