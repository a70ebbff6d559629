//! The JVM's trust: it reads only a key store (the system JKS the JDKs
//! link their `lib/security/cacerts` to, or a JDK's own PKCS#12 since JDK
//! 18), so no variable can help it; sandlock adds the sandbox CA as one
//! more trusted entry when the store is opened.

use super::*;

both!(java_httpclient_trusts_the_spliced_key_store, |ctx| {
    // The JVM reads only its key store (a JKS the JDKs link to
    // /etc/ssl/certs/java/cacerts): no variable can help it.
    let java = installed("java", "default-jdk-headless");
    let s = Trust::new();
    let url = s.url("/echo/java");
    let fetch = format!("{}/Fetch.java", fixdir());
    let out = run(
        &ctx,
        &s.flags(&["-r", &fixdir()]),
        &sv(&[&java, &fetch, &url]),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(out.stdout, "status 200\n", "{c}");
    // keytool sees the entry, and the store's digest holds for the
    // password every JDK ships it with
    let out = run(
        &ctx,
        &s.flags(&[]),
        &sv(&[
            "keytool",
            "-list",
            "-cacerts",
            "-storepass",
            "changeit",
            "-alias",
            "sandlock-sandbox-ca",
        ]),
    );
    let c2 = s.dump(&out);
    out.expect_code(0);
    assert!(out.stdout.contains("trustedCertEntry"), "{c2}");

    // twin: the store served as it is, the JVM does not trust the proxy
    let out = run(
        &ctx,
        &s.flags(&["--no-default-bundles", "-r", &fixdir()]),
        &sv(&[&java, &fetch, &url]),
    );
    let c3 = s.dump(&out);
    assert_eq!(out.code(), 1, "{c3}");
    assert!(
        out.stdout.starts_with("error SunCertPathBuilderException")
            && out.stdout.contains("valid certification path"),
        "{c3}"
    );
    assert_eq!(s.up.paths(), vec!["/echo/java".to_string()], "{c}\n{c3}");
    s.host_unchanged();
});

/// `keytool -importkeystore` flags that make the PKCS#12 store a JDK 18+
/// ships (no MAC, certificates in the clear), or keytool's own default
/// with the certificates in the clear (an HMAC-SHA256 MAC with
/// `changeit`).
const PASSWORDLESS: &[&str] = &[
    "-J-Dkeystore.pkcs12.certProtectionAlgorithm=NONE",
    "-J-Dkeystore.pkcs12.macAlgorithm=NONE",
];
const WITH_MAC: &[&str] = &["-J-Dkeystore.pkcs12.certProtectionAlgorithm=NONE"];

/// A JDK-shaped directory whose `lib/security/cacerts` is the system's
/// trust in PKCS#12 made with `flags`: the path the JVM's default trust
/// store has in every JDK.
fn pkcs12_jdk(flags: &[&str]) -> (TempDir, String) {
    let dir = TempDir::new("jdk");
    let security = dir.path().join("lib/security");
    fs::create_dir_all(&security).unwrap();
    for d in [dir.path().join("lib"), security.clone()] {
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let store = security.join("cacerts").display().to_string();
    let out = std::process::Command::new(installed("keytool", "default-jdk-headless"))
        .args(["-importkeystore", "-noprompt", "-srckeystore"])
        .arg("/etc/ssl/certs/java/cacerts")
        .args(["-srcstorepass", "changeit", "-deststoretype", "PKCS12"])
        .args(["-deststorepass", "changeit", "-destkeystore", &store])
        .args(flags)
        .output()
        .unwrap();
    assert!(out.status.success(), "keytool: {out:?}");
    fs::set_permissions(&store, fs::Permissions::from_mode(0o644)).unwrap();
    (dir, store)
}

both!(java_trusts_a_spliced_pkcs12_store, |ctx| {
    let java = installed("java", "default-jdk-headless");
    let s = Trust::new();
    let fetch = format!("{}/Fetch.java", fixdir());
    for (kind, flags) in [("password-less", PASSWORDLESS), ("with a MAC", WITH_MAC)] {
        let (jdk, store) = pkcs12_jdk(flags);
        let original = fs::read(&store).unwrap();
        let url = s.url(&format!("/echo/{}", kind.replace(' ', "-")));
        let trust_store = format!("-Djavax.net.ssl.trustStore={store}");
        let fetch_cmd = sv(&[&java, &trust_store, &fetch, &url]);
        let out = run(
            &ctx,
            &s.flags(&["-r", &fixdir(), "-r", &jdk.s()]),
            &fetch_cmd,
        );
        let c = s.dump(&out);
        assert_eq!(out.stdout, "status 200\n", "{kind}\n{c}");
        out.expect_code(0);
        // keytool lists the entry, and checks the MAC made again with
        // the password JDKs ship their stores with
        let list = sv(&[
            "keytool",
            "-list",
            "-keystore",
            &store,
            "-storepass",
            "changeit",
            "-alias",
            "sandlock-sandbox-ca",
        ]);
        let out = run(&ctx, &s.flags(&["-r", &jdk.s()]), &list);
        let c2 = s.dump(&out);
        out.expect_code(0);
        assert!(out.stdout.contains("trustedCertEntry"), "{kind}\n{c2}");
        // twin: the store served as it is, the JVM does not trust the proxy
        let out = run(
            &ctx,
            &s.flags(&["--no-default-bundles", "-r", &fixdir(), "-r", &jdk.s()]),
            &fetch_cmd,
        );
        let c3 = s.dump(&out);
        assert_eq!(out.code(), 1, "{kind}\n{c3}");
        assert!(
            out.stdout.contains("valid certification path"),
            "{kind}\n{c3}"
        );
        assert_eq!(
            fs::read(&store).unwrap(),
            original,
            "{kind}: the host's store changed"
        );
    }
    s.host_unchanged();
});
