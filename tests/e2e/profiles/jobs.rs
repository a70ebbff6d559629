//! Each shipped profile does its job through the real binary, against
//! servers the tests start: the API hosts a profile names are pointed at
//! loopback with `--add-host` (and `--http-port` for the test server's
//! port), layered on top of the profile as a user would.

use super::*;

/// Requests "METHOD URL" pairs with urllib; prints `R <status> <first body
/// line>` for each (status 0 when the request failed outright), then the
/// profile's environment as seen inside.
const PY_CLIENT: &str = r#"
import os, sys, urllib.request, urllib.error
for spec in sys.argv[1:]:
    method, url = spec.split(" ", 1)
    data = b'{"model":"m"}' if method == "POST" else None
    try:
        r = urllib.request.urlopen(urllib.request.Request(url, data=data, method=method), timeout=10)
        print("R", r.status, r.read().decode().splitlines()[0])
    except urllib.error.HTTPError as e:
        print("R", e.code, e.read().decode().splitlines()[0])
    except Exception as e:
        print("R 0", type(e).__name__)
print("ENV", os.environ.get("PYTHONUNBUFFERED"), os.environ.get("LEAKY", "unset"))
"#;

/// The same for Node's fetch.
const NODE_CLIENT: &str = r#"
(async () => {
  for (const spec of process.argv.slice(1)) {
    const [method, url] = spec.split(" ");
    try {
      const r = await fetch(url, { method, body: method === "POST" ? "{}" : undefined });
      console.log("R", r.status, (await r.text()).split("\n")[0]);
    } catch (e) {
      console.log("R 0", e.cause ? e.cause.code : e.message);
    }
  }
  console.log("ENV", process.env.NPM_CONFIG_FUND, process.env.LEAKY || "unset");
})();
"#;

/// The `R ...` lines of an agent client's output.
fn responses(out: &Out) -> Vec<&str> {
    out.stdout.lines().filter(|l| l.starts_with("R ")).collect()
}

both!(python_agent_reaches_its_apis_and_nothing_else, |ctx| {
    let up = Upstream::plain("127.0.0.1");
    let p = up.port_s();
    let url = |host: &str, path: &str| format!("http://{host}:{p}{path}");
    let flags = [
        "-p",
        "python-agent",
        "--add-host",
        "api.openai.com:127.0.0.1",
        "--add-host",
        "api.test:127.0.0.1",
        "--http-port",
        &p,
        // the user's own API, layered on the profile's
        "--http-allow",
        "GET api.test/v2/*",
    ];
    let reqs = [
        format!("POST {}", url("api.openai.com", "/v1/chat/completions")),
        format!("GET {}", url("api.openai.com", "/admin")),
        format!("GET {}", url("api.test", "/v2/models")),
        format!("DELETE {}", url("api.test", "/v2/models")),
    ];
    let mut cmd = vec![PYTHON, "-I", "-c", PY_CLIENT];
    cmd.extend(reqs.iter().map(String::as_str));
    let out = ctx.sl_env(run_args(&flags, &cmd), &[("LEAKY", "from the caller")]);
    let c = format!("{}\n{}", out.dump(), up.dump());
    out.expect_code(0);
    assert_eq!(
        responses(&out),
        [
            "R 200 ok /v1/chat/completions",
            &format!("R 403 sandlock: 403 GET http://api.openai.com:{p}/admin: no --http-allow rule matches"),
            "R 200 ok /v2/models",
            &format!("R 403 sandlock: 403 DELETE http://api.test:{p}/v2/models: no --http-allow rule matches"),
        ],
        "{c}"
    );
    // the profile's environment, and clean-env kept the caller's out
    assert!(out.stdout.contains("\nENV 1 unset\n"), "{c}");
    assert_eq!(up.paths(), ["/v1/chat/completions", "/v2/models"], "{c}");
    let post = &up.requests()[0];
    assert_eq!(post.method, "POST", "{c}");
    assert_eq!(post.body, b"{\"model\":\"m\"}", "{c}");
});

both!(node_agent_reaches_its_apis_and_nothing_else, |ctx| {
    let up = Upstream::plain("127.0.0.1");
    let p = up.port_s();
    let flags = [
        "-p",
        "node-agent",
        "--add-host",
        "api.anthropic.com:127.0.0.1",
        "--http-port",
        &p,
    ];
    let ok = format!("POST http://api.anthropic.com:{p}/v1/messages");
    let denied = format!("PUT http://api.anthropic.com:{p}/v1/messages");
    let out = ctx.sl_env(
        run_args(&flags, &["/usr/bin/node", "-e", NODE_CLIENT, &ok, &denied]),
        &[("LEAKY", "from the caller")],
    );
    let c = format!("{}\n{}", out.dump(), up.dump());
    out.expect_code(0);
    let rs = responses(&out);
    assert_eq!(rs.len(), 2, "{c}");
    assert_eq!(rs[0], "R 200 ok /v1/messages", "{c}");
    assert!(
        rs[1].starts_with(&format!(
            "R 403 sandlock: 403 PUT http://api.anthropic.com:{p}/v1/messages"
        )),
        "{c}"
    );
    assert!(out.stdout.contains("\nENV false unset\n"), "{c}");
    assert_eq!(up.paths(), ["/v1/messages"], "{c}");
});

/// Clones $1 into $2, prints the file, commits and pushes a change, and
/// shows what $GH_TOKEN holds inside.
const GIT_JOB: &str = r#"printf 'PH %s\n' "$GH_TOKEN"
git clone -q "$1" "$2" || exit 10
cd "$2" || exit 11
cat hello.txt
echo pushed > pushed.txt
git add pushed.txt
git -c user.name=e2e -c user.email=e2e@sandlock.test commit -q -m pushed || exit 12
git push -q origin HEAD:refs/heads/main || exit 13
echo "NEW $(git rev-parse HEAD)"
"#;

both!(git_https_clones_and_pushes_with_the_token, |ctx| {
    let d = TempDir::new("profgit");
    let root = git::make_repo(&d, "hello through the git-https profile\n");
    let bare = format!("{root}/repo.git");
    let token = random_token();
    let auth = format!("x-access-token:{token}");
    let up = Upstream::start_with(
        "127.0.0.1",
        true,
        &["--git-root", &root, "--git-auth", &auth],
    );
    let p = up.port_s();
    let work = d.dir("work", 0o777);
    // The user's own home, with a ~/.gitconfig, out of the sandbox's view:
    // git runs in the sandbox's private HOME (before issue 13 it died
    // reading the unreadable ~/.gitconfig on every real machine).
    let user = d.dir("user", 0o755);
    std::fs::write(format!("{user}/.gitconfig"), "[user]\n\tname = Host User\n").unwrap();
    let f = tls_files();
    let flags = [
        "-p",
        "git-https",
        "--add-host",
        "github.com:127.0.0.1",
        "--http-port",
        &p,
        "--upstream-ca",
        &f.root_ca,
        "-w",
        &work,
    ];
    let url = format!("https://github.com:{p}/repo.git");
    let clone = format!("{work}/clone");
    let out = ctx.sl_env(
        run_args(&flags, &["/bin/sh", "-c", GIT_JOB, "sh", &url, &clone]),
        &[("GH_TOKEN", token.as_str()), ("HOME", user.as_str())],
    );
    let c = format!("{}\n{}", out.dump(), up.dump());
    assert!(
        !out.stdout.contains(&token) && !out.stderr.contains(&token),
        "the token reached the workload or a message\n{c}"
    );
    out.expect_code(0);
    let lines = out.stdout_lines();
    let ph = lines[0]
        .strip_prefix("PH ")
        .unwrap_or_else(|| panic!("{c}"));
    assert!(!ph.is_empty(), "no placeholder in $GH_TOKEN\n{c}");
    assert_eq!(lines[1], "hello through the git-https profile", "{c}");
    let new = lines[2]
        .strip_prefix("NEW ")
        .unwrap_or_else(|| panic!("{c}"));
    let head = git::host_git(
        &d.s(),
        &["--git-dir", &bare, "log", "-1", "--format=%H", "main"],
    );
    assert_eq!(head.trim(), new, "the push did not land\n{c}");

    // the upstream saw the real token, only in Basic credentials
    let creds: Vec<String> = up
        .requests()
        .iter()
        .filter_map(|r| r.header("authorization").map(str::to_string))
        .collect();
    assert!(!creds.is_empty(), "git never authenticated\n{c}");
    for v in &creds {
        let b = v
            .strip_prefix("Basic ")
            .unwrap_or_else(|| panic!("{v}\n{c}"));
        assert_eq!(String::from_utf8_lossy(&b64decode(b)), auth, "{c}");
    }
    let raw = up.raw_all();
    assert!(
        !raw.windows(ph.len()).any(|w| w == ph.as_bytes()),
        "the placeholder reached the upstream\n{c}"
    );

    // twin: without GH_TOKEN in sandlock's environment the profile
    // refuses to start, and nothing reaches the upstream
    let before = up.requests().len();
    let out = ctx.sl(run_args(
        &flags,
        &["/bin/sh", "-c", GIT_JOB, "sh", &url, &clone],
    ));
    out.expect_code(2);
    assert_eq!(out.stdout, "", "{}", out.dump());
    assert!(
        out.stderr
            .contains("secret GH_TOKEN: env:GH_TOKEN is not set"),
        "{}",
        out.dump()
    );
    assert_eq!(up.requests().len(), before);
});

both!(build_compiles_with_no_network, |ctx| {
    let d = TempDir::new("profbuild");
    let src = fs::read_to_string(format!("{FIXTURE_SRC}/hello.c")).unwrap();
    d.file("hello.c", &src);
    let server = TcpServer::start("127.0.0.1");
    let script = format!(
        "cc -o hello hello.c && ./hello\n\
         echo \"LEAKY=${{LEAKY:-unset}}\"\n\
         {PYTHON} -I -c 'import socket\n\
try:\n    s = socket.socket(); s.connect((\"127.0.0.1\", {port})); print(\"NET connected\")\n\
except OSError as e:\n    print(\"NET errno\", e.errno)'\n",
        port = server.port()
    );
    let out = ctx.sl_env(
        run_args(
            &["-p", "build", "-w", &d.s(), "--cwd", &d.s()],
            &["/bin/sh", "-c", &script],
        ),
        &[("LEAKY", "from the caller")],
    );
    out.expect_code(0);
    // compiled and ran; the caller's environment stayed out; no socket
    out.expect_stdout("hello from fixture\nLEAKY=unset\nNET errno 13\n");
    assert_eq!(server.accepted(), 0);
    assert!(std::path::Path::new(&d.join("hello")).exists());
});
