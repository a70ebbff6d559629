//! Other clients than curl (Python urllib) and the IPv6 loopback.

use super::*;

// ---------------------------------------------------------------------------
// Python urllib, IPv6
// ---------------------------------------------------------------------------

both!(python_urllib_strict_verification_through_proxy, |ctx| {
    let s = Setup::tls("127.0.0.1");
    let flags = s.flags(&[
        "--http-allow",
        "GET api.test/*",
        "--http-deny",
        "* api.test/admin*",
    ]);
    let out = run(
        &ctx,
        &flags,
        &pyclient(&["urllib", &s.ca, &s.url("api.test", "/echo/py")]),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    let (status, body) = out.stdout.split_once('\n').unwrap_or((&out.stdout, ""));
    assert_eq!(status, "status 200", "{c}");
    let doc: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}\n{c}"));
    assert_eq!(
        doc.get("path").and_then(Value::as_str),
        Some("/echo/py"),
        "{c}"
    );
    assert_eq!(echo_header(&doc, "host"), Some(s.host("api.test")), "{c}");

    let out = run(
        &ctx,
        &flags,
        &pyclient(&["urllib", &s.ca, &s.url("api.test", "/admin")]),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert!(out.stdout.starts_with("status 403\nsandlock:"), "{c}");
    assert_eq!(s.up.paths(), vec!["/echo/py".to_string()], "{c}");
});

both!(https_ipv6_loopback_upstream, |ctx| {
    let s = Setup::tls("::1");
    let flags = s.flags(&[
        "--http-allow",
        "GET v6.test/*",
        "--http-deny",
        "* v6.test/admin*",
    ]);
    // curl resolves names for IPv6 only when an AF_INET6 UDP socket can be
    // created (its "does IPv6 work" probe), which needs a udp:// rule in a
    // sandbox: --resolve gives it the address instead. Python resolves
    // v6.test through the virtual /etc/hosts below.
    let resolve = format!("v6.test:{}:[::1]", s.port());
    let out = run(
        &ctx,
        &flags,
        &curl(
            Some(&s.ca),
            &["--resolve", &resolve],
            &[&s.url("v6.test", "/echo/v6"), &s.url("v6.test", "/admin")],
        ),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    let rs = resps(&out);
    assert_eq!(rs.len(), 2, "{c}");
    let doc = echo_doc(&rs[0], &c);
    assert_eq!(echo_header(&doc, "host"), Some(s.host("v6.test")), "{c}");
    assert_sandlock_reply(&rs[1], 403, "v6.test/admin", &out, &c);
    assert_eq!(s.up.paths(), vec!["/echo/v6".to_string()], "{c}");

    let out = run(
        &ctx,
        &flags,
        &pyclient(&["urllib", &s.ca, &s.url("v6.test", "/echo/py6")]),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert!(out.stdout.starts_with("status 200\n"), "{c}");
    assert_eq!(
        s.up.paths(),
        vec!["/echo/v6".to_string(), "/echo/py6".into()],
        "{c}"
    );
    let peers: Vec<String> =
        s.up.events("accept")
            .iter()
            .filter_map(|e| e.get("peer").and_then(Value::as_str).map(str::to_string))
            .collect();
    assert!(
        !peers.is_empty() && peers.iter().all(|p| p.starts_with("::1:")),
        "{peers:?}\n{c}"
    );
});

// ---------------------------------------------------------------------------
// Python requests, git over HTTPS
// ---------------------------------------------------------------------------

both!(python_requests_through_proxy, |ctx| {
    let s = Setup::tls("127.0.0.1");
    let rules = [
        "--http-allow",
        "GET api.test/*",
        "--http-deny",
        "* api.test/admin*",
    ];
    // verify= the sandbox CA
    let out = run(
        &ctx,
        &s.flags(&rules),
        &pyclient(&["requests", &s.ca, &s.url("api.test", "/echo/requests")]),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    let (status, body) = out.stdout.split_once('\n').unwrap_or((&out.stdout, ""));
    assert_eq!(status, "status 200", "{c}");
    let doc: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}\n{c}"));
    assert_eq!(
        doc.get("path").and_then(Value::as_str),
        Some("/echo/requests"),
        "{c}"
    );
    assert_eq!(echo_header(&doc, "host"), Some(s.host("api.test")), "{c}");
    assert!(
        echo_header(&doc, "user-agent").is_some_and(|u| u.starts_with("python-requests/")),
        "{c}"
    );

    // REQUESTS_CA_BUNDLE (what users set): an allowed path, then a denied
    // one whose 403 carries sandlock's explanation
    let env = format!("REQUESTS_CA_BUNDLE={}", s.ca);
    let mut flags = s.flags(&rules);
    flags.extend(sv(&["--env", &env]));
    let script = format!(
        "{py} -I {cl} requests env \"$1\"; {py} -I {cl} requests env \"$2\"",
        py = PYTHON,
        cl = tls_files().client
    );
    let out = run(
        &ctx,
        &flags,
        &sh(
            &script,
            &[
                &s.url("api.test", "/plain/env"),
                &s.url("api.test", "/admin/env"),
            ],
        ),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    let lines = out.stdout_lines();
    assert_eq!(lines.len(), 4, "{c}");
    assert_eq!(&lines[..2], ["status 200", "ok /plain/env"], "{c}");
    assert_eq!(lines[2], "status 403", "{c}");
    let denied = Resp {
        code: 403,
        connects: 1,
        body: lines[3].to_string(),
    };
    assert_sandlock_reply(&denied, 403, "api.test/admin", &out, &c);
    assert_eq!(
        s.up.paths(),
        vec!["/echo/requests".to_string(), "/plain/env".into()],
        "{c}"
    );

    // twin: without the sandbox CA requests does not trust the proxy (the
    // 200s above came from the CA it was given; the zero-config splicing
    // of issue 4 is turned off for this)
    let mut untrusting = rules.to_vec();
    untrusting.extend(["--no-default-bundles", "--no-ca-env"]);
    let out = run(
        &ctx,
        &s.flags(&untrusting),
        &pyclient(&["requests", "env", &s.url("api.test", "/echo/untrusted")]),
    );
    let c = s.dump(&out);
    assert_eq!(out.code(), 1, "{c}");
    assert!(out.stderr.contains("SSLError"), "{c}");
    assert_eq!(s.up.requests().len(), 2, "{c}");
});

const REPO_FILE: &str = "hello from the sandlock git e2e repository\n";

/// Clones $1 into $2 trusting only the CA $3, then prints hello.txt.
const GIT_CLONE: &str = r#"git -c http.sslCAInfo="$3" clone -q "$1" "$2" && cat "$2/hello.txt""#;

both!(git_clone_over_https_through_proxy, |ctx| {
    let repo = TempDir::new("repo");
    let root = make_repo(&repo, REPO_FILE);
    let s = Setup::with(Upstream::start_with(
        "127.0.0.1",
        true,
        &["--git-root", &root],
    ));
    let work = s.d.dir("work", 0o777);
    let url = format!("https://git.test:{}/repo.git", s.port());
    let home = format!("HOME={work}");
    let flags = |rules: &[&str]| {
        let mut v = s.flags(&[
            "--add-host",
            "git.test:127.0.0.1",
            "-w",
            &work,
            "--env",
            &home,
        ]);
        v.extend(sv(rules));
        v
    };
    // exactly what a smart-HTTP clone needs
    let out = run(
        &ctx,
        &flags(&[
            "--http-allow",
            "GET git.test/repo.git/info/refs",
            "--http-allow",
            "POST git.test/repo.git/git-upload-pack",
        ]),
        &sh(GIT_CLONE, &[&url, &format!("{work}/clone"), &s.ca]),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(out.stdout, REPO_FILE, "{c}");
    let reqs = s.up.requests();
    let seen: Vec<(&str, &str)> = reqs
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert!(
        seen.len() >= 2
            && seen[0] == ("GET", "/repo.git/info/refs?service=git-upload-pack")
            && seen[1..]
                .iter()
                .all(|r| *r == ("POST", "/repo.git/git-upload-pack")),
        "{seen:?}\n{c}"
    );
    assert!(
        reqs.iter()
            .all(|r| r.header("host") == Some(s.host("git.test").as_str())),
        "{c}"
    );

    // twin: the same clone with POST denied fails on git-upload-pack, and
    // git shows the 403
    let before = reqs.len();
    let out = run(
        &ctx,
        &flags(&[
            "--http-allow",
            "* git.test/*",
            "--http-deny",
            "POST git.test/*",
        ]),
        &sh(GIT_CLONE, &[&url, &format!("{work}/denied"), &s.ca]),
    );
    let c = s.dump(&out);
    assert_eq!(out.code(), 128, "{c}");
    assert_eq!(out.stdout, "", "{c}");
    assert!(
        out.stderr.contains("HTTP 403"),
        "git does not show the 403\n{c}"
    );
    let denial = format!("sandlock: denied http POST {url}/git-upload-pack from pid ");
    assert!(
        out.stderr
            .lines()
            .any(|l| l.starts_with(&denial) && l.ends_with("--http-deny 'POST git.test/*'")),
        "no denial line naming the rule\n{c}"
    );
    let reqs = s.up.requests();
    assert_eq!(
        reqs[before..]
            .iter()
            .map(|r| (r.method.as_str(), r.path.as_str()))
            .collect::<Vec<_>>(),
        vec![("GET", "/repo.git/info/refs?service=git-upload-pack")],
        "{c}"
    );
    assert!(!std::path::Path::new(&format!("{work}/denied/hello.txt")).exists());
});
