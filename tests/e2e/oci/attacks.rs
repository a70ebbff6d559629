//! An attacker's look at the OCI runtime, each attack with its twin: an
//! image whose files would load its code into any dynamic program, a
//! write grant on `/` against host-wide sysctls, an image that trusts the
//! upstream's issuer (by its bundle or its variables), an audit path
//! through a symlink the image placed, and an image that claims to be a
//! pod's sandbox.

use super::*;

#[test]
fn podman_the_images_libraries_never_load_into_the_supervisor() {
    let e = Engine::Podman;
    let srv = TcpServer::start("127.0.0.1");
    let shared = TempDir::new("oci-shared");
    let c = Container {
        rootfs: Some(rootfs::hostile_rootfs().to_string()),
        shared: Some(shared.s()),
        hosts: vec!["evil.test:127.0.0.1".into()],
        ..Container::default()
    }
    .with("net-allow", &format!("evil.test:{}", srv.port()))
    .with("fs-write", "/shared");
    let script = format!(
        "nc 127.0.0.1 {} </dev/null; r=$?; echo; echo nc=$r; curl --version >/dev/null; echo curl=$?",
        srv.port()
    );
    let out = e.run(&c, &["/bin/sh", "-c", &script]);
    // The supervisor resolved evil.test from the engine's /etc/hosts (not
    // through the image's NSS module) and let the connect through.
    assert_eq!(
        out.stdout_lines(),
        [srv.payload.as_str(), "nc=0", "curl=0"],
        "{}",
        out.dump()
    );
    let loaded = std::fs::read_to_string(shared.path().join("loaded")).unwrap_or_default();
    // Twin: the image's library is live: the workload's curl loaded it.
    assert!(
        loaded.lines().any(|l| l.starts_with("curl ")),
        "{loaded}\n{}",
        out.dump()
    );
    // The supervisor, and its reaper (pid 1 of the workload's namespace),
    // never did.
    for line in loaded.lines() {
        let (comm, pid) = line.rsplit_once(' ').unwrap();
        assert!(!comm.starts_with("sandlock") && pid != "1", "{loaded}");
    }
}

engines!(
    a_write_grant_on_the_root_cannot_write_host_wide_sysctls,
    |e| {
        let before = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
        let c = Container::default().with("fs-write", "/");
        let script = "printf x > /proc/sys/kernel/core_pattern; echo proc=$?; \
                  printf x > /.sandlock/proc/sys/kernel/core_pattern; echo hidden=$?; \
                  echo ok > /tmp/t; echo tmp=$?";
        let out = e.run(&c, &["/bin/sh", "-c", script]);
        // Twin: the same grant writes elsewhere.
        assert_eq!(
            out.stdout_lines(),
            ["proc=1", "hidden=1", "tmp=0"],
            "{}",
            out.dump()
        );
        // The workload's /proc is read-only; the runtime's is covered.
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert!(
            lines[0].ends_with("Read-only file system"),
            "{}",
            out.dump()
        );
        assert!(
            lines[1].ends_with("nonexistent directory"),
            "{}",
            out.dump()
        );
        assert_eq!(
            std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
            before
        );
    }
);

engines!(
    the_upstream_is_checked_against_the_hosts_roots_not_the_images,
    |e| {
        let up = tls::Upstream::tls("127.0.0.1");
        let value = format!("s3cret-{}", unique("v"));
        let script = format!(
            "curl -sS -o /dev/null -w '%{{http_code}}\\n' -H \"Authorization: Bearer $TOKEN\" \
         https://api.test:{}/echo/r",
            up.port
        );
        let base = Container::default()
            .with("add-host", "api.test:127.0.0.1")
            .with("http-port", &up.port_s())
            .with("http-allow", "GET api.test/echo/*")
            .with("secret.TOKEN", "api.test")
            .env(&format!("TOKEN={value}"));
        // The image trusts the upstream's issuer, by its bundle or by the
        // variables TLS libraries read: the supervisor does not.
        let bundle = Container {
            mounts: vec![(
                tls::tls_files().root_ca.clone(),
                "/etc/ssl/certs/ca-certificates.crt".into(),
            )],
            ..base.clone()
        };
        let vars = base
            .clone()
            .env("SSL_CERT_FILE=/etc/sandlock-test/root.pem")
            .env("SSL_CERT_DIR=/etc/sandlock-test");
        for c in [bundle, vars] {
            let out = e.run(&c, &["/bin/sh", "-c", &script]);
            assert_eq!(out.stdout_lines(), ["502"], "{}", out.dump());
            assert!(up.requests().is_empty(), "{}", up.dump());
        }
        // Twin: the annotation that trusts the issuer lets the same request,
        // and the secret, through.
        let out = e.run(
            &base.with("upstream-ca", "/etc/sandlock-test/root.pem"),
            &["/bin/sh", "-c", &script],
        );
        assert_eq!(out.stdout_lines(), ["200"], "{}", out.dump());
        let seen = up.requests();
        assert_eq!(seen.len(), 1, "{}", up.dump());
        assert_eq!(
            seen[0].header("authorization"),
            Some(format!("Bearer {value}").as_str())
        );
    }
);

engines!(an_audit_path_through_a_symlink_is_refused, |e| {
    let shared = TempDir::new("oci-shared");
    let victim = shared.file("victim", "v\n");
    std::os::unix::fs::symlink("victim", shared.path().join("audit.jsonl")).unwrap();
    let c = Container {
        shared: Some(shared.s()),
        ..Container::default()
    }
    .with("audit", "/shared/audit.jsonl");
    let out = e.run(&c, &["/bin/true"]);
    assert_eq!(out.code(), 125, "{}", out.dump());
    assert!(
        out.stderr.contains("goes through a symlink"),
        "{}",
        out.dump()
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "v\n");
    // Twin: a plain path is written.
    std::fs::remove_file(shared.path().join("audit.jsonl")).unwrap();
    e.run(&c, &["/bin/true"]).expect_code(0);
    assert!(shared.path().join("audit.jsonl").is_file());
});

engines!(
    a_pod_sandbox_mark_gets_the_default_policy_and_no_secret,
    |e| {
        let srv = TcpServer::start("127.0.0.1");
        let value = format!("s3cret-{}", unique("v"));
        let c = Container::default()
            .with("net-allow", &format!("127.0.0.1:{}", srv.port()))
            .with("add-host", "api.test:127.0.0.1")
            .with("secret.TOKEN", "api.test")
            .env(&format!("TOKEN={value}"));
        let script = format!(
            "echo \"seen=$TOKEN\"; nc 127.0.0.1 {} </dev/null >/dev/null; echo nc=$?",
            srv.port()
        );
        let marked = Container {
            raw_annotations: vec!["io.kubernetes.cri-o.ContainerType=sandbox".into()],
            ..c.clone()
        };
        let out = e.run(&marked, &["/bin/sh", "-c", &script]);
        let lines = out.stdout_lines();
        assert_eq!(lines.len(), 2, "{}", out.dump());
        assert!(
            lines[0].len() > 5 && !lines[0].contains(&value),
            "{}",
            out.dump()
        );
        assert_eq!(lines[1], "nc=1", "no network by default: {}", out.dump());
        assert_eq!(srv.accepted(), 0);
        // Twin: unmarked, the annotations apply.
        let out = e.run(&c, &["/bin/sh", "-c", &script]);
        assert_eq!(out.stdout_lines()[1], "nc=0", "{}", out.dump());
    }
);

#[test]
fn podman_an_images_symlinks_neither_widen_a_grant_nor_feed_the_splice() {
    let e = Engine::Podman;
    let vol = TempDir::new("oci-vol");
    vol.file("f", "volume-only\n");
    let base = Container {
        rootfs: Some(rootfs::symlinked_rootfs().to_string()),
        mounts: vec![(vol.s(), "/mnt/vol".into())],
        ..Container::default()
    };
    // `/lib32 -> /` would grant the whole filesystem, the volume included.
    let script = "cat /mnt/vol/f; echo cat=$?; ls /lib32/ >/dev/null; echo ls=$?";
    let out = e.run(&base, &["/bin/sh", "-c", script]);
    assert_eq!(out.stdout_lines(), ["cat=1", "ls=1"], "{}", out.dump());
    // Twin: a grant on the volume by its own path reads it.
    let granted = base.clone().with("fs-read", "/mnt/vol");
    let out = e.run(&granted, &["/bin/sh", "-c", "cat /mnt/vol/f"]);
    assert_eq!(out.stdout_lines(), ["volume-only"], "{}", out.dump());
    // A grant through the image's symlink is refused, naming it.
    let out = e.run(
        &base.clone().with("fs-read", "/lib32/mnt/vol"),
        &["/bin/true"],
    );
    assert_eq!(out.code(), 2, "{}", out.dump());
    assert!(
        out.stderr.contains("goes through a symlink"),
        "{}",
        out.dump()
    );

    // The bundle `-> /proc/self/environ` is refused, not spliced: the
    // supervisor's environment (the secret) never reaches the workload.
    let value = format!("s3cret-{}", unique("v"));
    let secret = base
        .with("fs-read", "/")
        .with("add-host", "api.test:127.0.0.1")
        .with("secret.TOKEN", "api.test")
        .env(&format!("TOKEN={value}"));
    let out = e.run(
        &secret,
        &["/bin/sh", "-c", "cat /etc/ssl/certs/ca-certificates.crt"],
    );
    assert!(
        !out.stdout.contains(&value) && !out.stderr.contains(&value),
        "{}",
        out.dump()
    );
    assert_eq!(out.code(), 125, "{}", out.dump());
    assert!(out.stderr.contains("kernel filesystem"), "{}", out.dump());
}

engines!(the_runtimes_own_procfs_is_covered_for_the_workload, |e| {
    let c = Container::default().with("fs-read", "/");
    let script = "ls -A /.sandlock/proc | wc -l; cat /.sandlock/proc/keys; echo keys=$?; \
                  ls /proc/self >/dev/null; echo own=$?";
    let out = e.run(&c, &["/bin/sh", "-c", script]);
    // Twin: its own /proc is there.
    assert_eq!(
        out.stdout_lines(),
        ["0", "keys=1", "own=0"],
        "{}",
        out.dump()
    );
});

#[test]
fn podman_a_read_only_root_filesystem_runs() {
    let e = Engine::Podman;
    let c = Container {
        podman_flags: vec!["--read-only".into(), "--read-only-tmpfs=false".into()],
        ..Container::default()
    };
    let script = "echo x > /tmp/img; echo image=$?; echo y > \"$TMPDIR/t\" && echo tmpdir=ok";
    let out = e.run(&c, &["/bin/sh", "-c", script]);
    out.expect_code(0);
    // Twin: the image's own /tmp is read-only indeed.
    assert_eq!(
        out.stdout_lines(),
        ["image=1", "tmpdir=ok"],
        "{}",
        out.dump()
    );
}
