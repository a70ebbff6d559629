//! Clients with no CA flag: curl, git, Python urllib and requests, node's
//! fetch and openssl s_client trust the proxy through the spliced bundles,
//! the environment and the hashed directory; the hash file by stat and read.

use super::*;

/// Prints "status <code>" of the body-less GET of $1.
const CURL_STATUS: &str = r#"curl -q -sS -o /dev/null -w 'status %{http_code}\n' "$@""#;

// ---------------------------------------------------------------------------
// Clients with no CA flag
// ---------------------------------------------------------------------------

both!(curl_trusts_the_spliced_system_bundle, |ctx| {
    let s = Trust::new();
    let empty = s.d.dir("empty-capath", 0o755);
    let url = s.url("/echo/curl");

    // the defaults: CURL_CA_BUNDLE, the spliced bundle, the hash dir
    let out = run(&ctx, &s.flags(&[]), &sh(CURL_STATUS, &[&url]));
    let c = s.dump(&out);
    out.expect_code(0).expect_stdout("status 200\n");

    // no env and an empty CApath: the spliced /etc/ssl/certs bundle alone
    let out = run(
        &ctx,
        &s.flags(&["--no-ca-env"]),
        &sh(CURL_STATUS, &["--capath", &empty, &url]),
    );
    let c2 = s.dump(&out);
    out.expect_code(0).expect_stdout("status 200\n");

    // twin: the system bundle served unmodified and no hash dir: curl does
    // not trust the proxy (60: peer certificate cannot be authenticated)
    let out = run(
        &ctx,
        &s.flags(&["--no-default-bundles", "--no-ca-env"]),
        &sh(CURL_STATUS, &["--capath", &empty, &url]),
    );
    let c3 = s.dump(&out);
    assert_eq!(out.code(), 60, "{c3}");
    assert!(out.stderr.contains("certificate"), "{c3}");

    // --no-default-bundles also drops the CA's entry in the hashed
    // directory (/etc/ssl/certs, curl's default CApath): with --no-ca-env,
    // nothing trusts the CA unless told to
    let out = run(
        &ctx,
        &s.flags(&["--no-default-bundles", "--no-ca-env"]),
        &sh(CURL_STATUS, &[&url]),
    );
    let c4 = s.dump(&out);
    assert_eq!(out.code(), 60, "{c4}");

    assert_eq!(
        s.up.paths(),
        vec!["/echo/curl".to_string(), "/echo/curl".into()],
        "{c}\n{c2}\n{c3}\n{c4}"
    );
    s.host_unchanged();
});

const REPO_FILE: &str = "hello from the sandlock trust e2e repository\n";

/// Clones $1 into $2 (no http.sslCAInfo), then prints hello.txt.
const GIT_CLONE: &str = r#"git clone -q "$1" "$2" && cat "$2/hello.txt""#;

both!(git_clone_over_https_without_ca_config, |ctx| {
    let repo = TempDir::new("trust-repo");
    let root = make_repo(&repo, REPO_FILE);
    let s = Trust::with(Upstream::start_with(
        "127.0.0.1",
        true,
        &["--git-root", &root],
    ));
    let work = s.d.dir("work", 0o777);
    let url = format!("https://git.test:{}/repo.git", s.port());
    let home = format!("HOME={work}");
    let flags = |extra: &[&str]| {
        let mut v = s.base(&[
            "--add-host",
            "git.test:127.0.0.1",
            "--http-allow",
            "GET git.test/repo.git/*",
            "--http-allow",
            "POST git.test/repo.git/git-upload-pack",
            "-w",
            &work,
            "--env",
            &home,
        ]);
        v.extend(sv(extra));
        v
    };

    // GIT_SSL_CAINFO from sandlock
    let out = run(
        &ctx,
        &flags(&[]),
        &sh(GIT_CLONE, &[&url, &format!("{work}/a")]),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(out.stdout, REPO_FILE, "{c}");

    // no env: git's TLS library reads the spliced system bundle
    let out = run(
        &ctx,
        &flags(&["--no-ca-env"]),
        &sh(GIT_CLONE, &[&url, &format!("{work}/b")]),
    );
    let c = s.dump(&out);
    out.expect_code(0);
    assert_eq!(out.stdout, REPO_FILE, "{c}");
    let fetches = s.up.requests().len();

    // twin: nothing spliced into the system bundle, no env: the clone fails
    // on the certificate before any request
    let out = run(
        &ctx,
        &flags(&["--no-default-bundles", "--no-ca-env"]),
        &sh(GIT_CLONE, &[&url, &format!("{work}/c")]),
    );
    let c = s.dump(&out);
    assert_eq!(out.code(), 128, "{c}");
    assert_eq!(out.stdout, "", "{c}");
    assert!(
        out.stderr.to_ascii_lowercase().contains("certificate"),
        "git does not blame the certificate\n{c}"
    );
    assert_eq!(s.up.requests().len(), fetches, "{c}");
    s.host_unchanged();
});

/// urllib with the default SSL context; prints "status <code>".
const PY_URLLIB: &str = r#"import sys, urllib.request
r = urllib.request.urlopen(sys.argv[1], timeout=10)
print("status", r.status)"#;

/// requests with its default verification (certifi, or REQUESTS_CA_BUNDLE);
/// prints "status <code>", or "SSLError ..." and exits 3.
const PY_REQUESTS: &str = r#"import sys, requests
try:
    r = requests.get(sys.argv[1], timeout=10)
    print("status", r.status_code)
except requests.exceptions.SSLError as e:
    print("SSLError", e)
    sys.exit(3)"#;

fn py(code: &str, args: &[&str]) -> Vec<String> {
    let mut v = sv(&[PYTHON, "-I", "-c", code]);
    v.extend(sv(args));
    v
}

both!(
    python_urllib_and_requests_with_default_verification,
    |ctx| {
        let s = Trust::new();
        let url = s.url("/echo/py");
        for extra in [&[][..], &["--no-ca-env"][..]] {
            let out = run(&ctx, &s.flags(extra), &py(PY_URLLIB, &[&url]));
            out.expect_code(0).expect_stdout("status 200\n");
            let out = run(&ctx, &s.flags(extra), &py(PY_REQUESTS, &[&url]));
            let c = s.dump(&out);
            assert_eq!(out.code(), 0, "{extra:?}\n{c}");
            out.expect_stdout("status 200\n");
        }
        assert_eq!(s.up.paths().len(), 4, "{}", s.up.dump());

        // twin: requests reads only its CA file (certifi's, here Debian's
        // system bundle): served unmodified, it does not trust the proxy
        let out = run(
            &ctx,
            &s.flags(&["--no-default-bundles", "--no-ca-env"]),
            &py(PY_REQUESTS, &[&url]),
        );
        let c = s.dump(&out);
        assert_eq!(out.code(), 3, "{c}");
        assert!(
            out.stdout.starts_with("SSLError") && out.stdout.contains("CERTIFICATE_VERIFY_FAILED"),
            "{c}"
        );
        assert_eq!(s.up.paths().len(), 4, "{c}");
        s.host_unchanged();
    }
);

/// Node's fetch: prints "status <code>", or "error <code>" and exits 1.
const NODE_FETCH: &str = "fetch(process.argv[1])\
.then(r => r.text().then(() => console.log('status ' + r.status)))\
.catch(e => { console.log('error ' + ((e.cause && e.cause.code) || e.message)); process.exit(1); })";

both!(node_fetch_trusts_node_extra_ca_certs, |ctx| {
    let node = installed("node", "nodejs");
    let node = node.as_str();
    let s = Trust::new();
    let url = s.url("/echo/node");
    let out = run(&ctx, &s.flags(&[]), &sv(&[node, "-e", NODE_FETCH, &url]));
    out.expect_code(0).expect_stdout("status 200\n");

    // twin: node trusts only its compiled-in roots unless told
    // NODE_EXTRA_CA_CERTS
    let out = run(
        &ctx,
        &s.flags(&["--no-ca-env"]),
        &sv(&[node, "-e", NODE_FETCH, &url]),
    );
    let c = s.dump(&out);
    assert_eq!(out.code(), 1, "{c}");
    assert!(out.stdout.starts_with("error "), "{c}");
    assert!(
        !out.stdout.contains("status"),
        "node got a response without trusting the CA\n{c}"
    );
    assert_eq!(s.up.paths(), vec!["/echo/node".to_string()], "{c}");
    s.host_unchanged();
});

/// s_client against $1 (HOST:PORT) with CApath $2 and no CA file or store;
/// prints s_client's output, then "rc <exit>".
const SCLIENT_CAPATH: &str = r#"openssl s_client -connect "$1" -servername api.test -CApath "$2" -no-CAfile -no-CAstore -verify_return_error </dev/null 2>&1
echo "rc $?""#;

/// s_client with OpenSSL's default CApath (/usr/lib/ssl/certs on Debian, a
/// symlink to /etc/ssl/certs), no CA file or store.
const SCLIENT_DEFAULT_DIR: &str = r#"openssl s_client -connect "$1" -servername api.test -no-CAfile -no-CAstore -verify_return_error </dev/null 2>&1
echo "rc $?""#;

both!(openssl_capath_trusts_the_hash_file, |ctx| {
    let s = Trust::new();
    let hp = format!("api.test:{}", s.port());
    // -no-CAfile: only the hashed directory can make the CA trusted
    let out = run(
        &ctx,
        &s.flags(&["--no-ca-env"]),
        &sh(SCLIENT_CAPATH, &[&hp, "/etc/ssl/certs"]),
    );
    let c = s.dump(&out);
    assert!(out.stdout.contains("Verify return code: 0 (ok)"), "{c}");
    assert!(out.stdout.ends_with("rc 0\n"), "{c}");

    // twin: an empty CApath
    let empty = s.d.dir("empty-capath", 0o755);
    let out = run(
        &ctx,
        &s.flags(&["--no-ca-env"]),
        &sh(SCLIENT_CAPATH, &[&hp, &empty]),
    );
    let c = s.dump(&out);
    assert!(!out.stdout.contains("Verify return code: 0 (ok)"), "{c}");
    assert!(
        out.stdout.contains("verify error") || out.stdout.contains("certificate verify failed"),
        "{c}"
    );
    assert!(!out.stdout.ends_with("rc 0\n"), "{c}");
    s.host_unchanged();
});

/// Prints "hash H" (the CA's subject hash, computed inside), then for each
/// directory D after $2: "stat D SIZE" of D/H.0 and its content into
/// $2/cat-D (slashes as _); last "other N", the number of error lines of
/// reading /etc/ssl/certs/H.1.
const HASH_LOOKUP: &str = r#"ca=$1; out=$2; shift 2
h=$(openssl x509 -hash -noout -in "$ca") || exit 9
echo "hash $h"
for d in "$@"; do
  stat -L -c "stat $d %s" "$d/$h.0"
  cat "$d/$h.0" > "$out/cat-$(echo "$d" | tr / _)"
done
echo "other $(cat /etc/ssl/certs/$h.1 2>&1 >/dev/null | wc -l)""#;

/// Asserts HASH_LOOKUP found the CA in each of `dirs`.
#[track_caller]
fn assert_hash_lookups(s: &Trust, out: &Out, dirs: &[&str], c: &str) {
    out.expect_code(0);
    let ca = s.ca_pem();
    let h = ca_hash(&s.ca);
    assert_eq!(out.stdout_lines()[0], format!("hash {h}"), "{c}");
    for d in dirs {
        let stat = format!("stat {d} ");
        let size = out
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix(&stat))
            .unwrap_or_else(|| panic!("stat of {d}/{h}.0 failed\n{c}"));
        let got = s.dumped(&format!("cat-{}", d.replace('/', "_")), c);
        assert_eq!(size, got.len().to_string(), "{d}: stat size\n{c}");
        assert_eq!(
            String::from_utf8_lossy(&got).trim(),
            ca.trim(),
            "{d}/{h}.0 is not the CA\n{c}"
        );
    }
    // H.1 is not made up: reading it failed with one line on stderr
    assert!(out.stdout.ends_with("other 1\n"), "{c}");
}

both!(hash_file_stat_and_read, |ctx| {
    let s = Trust::new();
    let dirs = ["/etc/ssl/certs", "/etc/ssl/certs/../certs"];
    let mut args = vec![s.ca.as_str(), s.out.as_str()];
    args.extend(dirs);
    let out = run(&ctx, &s.flags(&["--no-ca-env"]), &sh(HASH_LOOKUP, &args));
    let c = s.dump(&out);
    assert_hash_lookups(&s, &out, &dirs, &c);

    // twin: no proxy, no hash file
    let out = run(&ctx, &s.no_proxy(&[]), &sh(HASH_LOOKUP, &args));
    let c = s.dump(&out);
    out.expect_code(0);
    assert!(!out.stdout.contains("stat /"), "{c}");
    s.host_unchanged();
});

both!(
    openssl_default_capath_through_its_symlinked_spelling,
    |ctx| {
        // Debian's OpenSSL looks up /usr/lib/ssl/certs/HASH.0 (/usr/lib/ssl/certs
        // is a symlink to /etc/ssl/certs) when no CApath is given: the hash
        // file must match after canonicalisation like the bundles do
        let s = Trust::new();
        let hp = format!("api.test:{}", s.port());
        let out = run(
            &ctx,
            &s.flags(&["--no-ca-env"]),
            &sh(SCLIENT_DEFAULT_DIR, &[&hp]),
        );
        let c = s.dump(&out);
        assert!(out.stdout.contains("Verify return code: 0 (ok)"), "{c}");
        assert!(out.stdout.ends_with("rc 0\n"), "{c}");

        let dirs = ["/usr/lib/ssl/certs"];
        let args = [s.ca.as_str(), s.out.as_str(), dirs[0]];
        let out = run(&ctx, &s.flags(&["--no-ca-env"]), &sh(HASH_LOOKUP, &args));
        let c = s.dump(&out);
        assert_hash_lookups(&s, &out, &dirs, &c);
        s.host_unchanged();
    }
);
