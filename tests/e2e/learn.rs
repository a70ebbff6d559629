//! `--learn FILE` (issue 16): a run watched under a widened policy writes
//! a profile, and the same command run again with `-p FILE` passes, for a
//! Python script that reads files and calls an HTTPS API, a git clone
//! over HTTPS and a pip install from an HTTPS index (all served locally
//! behind the tests' private root, names from --add-host). Each has its
//! twin: the same command with only the options given, and not the
//! learned ones, fails. Secrets: a credential-looking variable sent in a
//! header becomes a commented suggestion, and its value is never written.
//!
//! Every run has a clean environment (no CA variables): the clients trust
//! the sandbox CA through the spliced bundles alone.

use crate::common::git::make_repo;
use crate::common::tls::*;
use crate::common::*;
use std::fs;

/// What the learning run is given besides `--learn`: the upstream's name,
/// its port as an HTTP port, and the root it is signed by.
fn given(name: &str, port: u16) -> Vec<String> {
    let host = format!("{name}:127.0.0.1");
    [
        "--add-host",
        host.as_str(),
        "--http-port",
        &port.to_string(),
        "--upstream-ca",
        &tls_files().root_ca,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `sandlock run FLAGS -- CMD`, with `env` added to sandlock's own.
fn run(ctx: &Ctx, flags: &[String], cmd: &[&str], env: &[(&str, &str)]) -> Out {
    let f: Vec<&str> = flags.iter().map(String::as_str).collect();
    ctx.sl_env(run_args(&f, cmd), env)
}

/// Learns `cmd` into DIR/learned.toml with `flags`; returns the profile's
/// path and text, after checking the run passed.
fn learn(
    ctx: &Ctx,
    d: &TempDir,
    flags: &[String],
    cmd: &[&str],
    env: &[(&str, &str)],
) -> (String, String) {
    let profile = d.join("learned.toml");
    let mut f = vec!["--learn".to_string(), profile.clone()];
    f.extend(flags.iter().cloned());
    let out = run(ctx, &f, cmd, env);
    out.expect_code(0);
    assert!(
        out.stderr.contains(&format!("written to {profile}")),
        "{}",
        out.dump()
    );
    let text = fs::read_to_string(&profile)
        .unwrap_or_else(|e| panic!("no profile at {profile}: {e}\n{}", out.dump()));
    (profile, text)
}

/// Reads the .txt files of DIR, GETs two items from the API with the
/// token in a header, and writes what it got to OUT/result.txt.
const APP: &str = r#"import os, pathlib, sys, urllib.request
base, data, out = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
text = "".join(p.read_text() for p in sorted(data.glob("*.txt")))
codes = []
for i in (1, 2):
    req = urllib.request.Request(f"{base}/echo/items/{i}?full=1")
    req.add_header("Authorization", "Bearer " + os.environ["API_TOKEN"])
    codes.append(urllib.request.urlopen(req).status)
(out / "result.txt").write_text(f"{text.strip()} {codes}\n")
print("done", codes)
"#;

both!(a_script_that_reads_files_and_calls_an_api, |ctx| {
    let up = Upstream::tls("127.0.0.1");
    let d = TempDir::new("learn-app");
    let app = d.file("app/app.py", APP);
    let app_dir = d.join("app");
    for n in ["a", "b", "c"] {
        d.file(&format!("data/{n}.txt"), n);
    }
    let data = d.join("data");
    let out_dir = d.dir("out", 0o777);
    let base = format!("https://api.test:{}", up.port);
    let cmd = [
        PYTHON,
        app.as_str(),
        base.as_str(),
        data.as_str(),
        out_dir.as_str(),
    ];
    let token = "tok-learn-0123456789abcdef";
    let env = [("API_TOKEN", token)];
    let (profile, text) = learn(&ctx, &d, &given("api.test", up.port), &cmd, &env);
    let c = format!("{text}\n{}", up.dump());
    // What it was learned from, as the user reads it.
    assert!(
        text.contains(&format!(
            "\"{data}\",  # learned: read {data}, {data}/a.txt"
        )),
        "{c}"
    );
    assert!(
        text.contains(&format!("\"{app_dir}\",  # learned: read {app_dir}, {app}")),
        "{c}"
    );
    assert!(
        text.contains(&format!("\"{out_dir}\",  # learned: written")),
        "{c}"
    );
    assert!(
        text.contains(
            "\"GET api.test/echo/items/*\",  # learned: GET /echo/items/1, GET /echo/items/2"
        ),
        "{c}"
    );
    assert!(
        text.contains("add-host = [\n    \"api.test:127.0.0.1\",\n]"),
        "{c}"
    );
    // The credential: a suggestion naming the variable and its host, and
    // never its value.
    assert!(!text.contains(token), "the value was written\n{c}");
    assert!(
        text.contains(
            "# [secrets.API_TOKEN]\n# source = \"env:API_TOKEN\"\n# hosts = [\"api.test\"]"
        ),
        "{c}"
    );
    assert_eq!(up.requests().len(), 2, "{c}");
    // Again, with the profile: it passes, and the API is asked again.
    fs::remove_file(format!("{out_dir}/result.txt")).unwrap();
    let again = run(&ctx, &["-p".into(), profile.clone()], &cmd, &env);
    again.expect_code(0).expect_stdout("done [200, 200]\n");
    assert_eq!(
        fs::read_to_string(format!("{out_dir}/result.txt")).unwrap(),
        "abc [200, 200]\n"
    );
    assert_eq!(up.requests().len(), 4, "{c}");
    // Twin: only what was given, an HTTP rule so the port counts, and the
    // script itself: the data and the output were not granted (Python's
    // glob reads an unreadable directory as empty), so nothing is written.
    fs::remove_file(format!("{out_dir}/result.txt")).unwrap();
    let mut f = given("api.test", up.port);
    f.extend(["--http-allow", "GET api.test/*", "-r", &app_dir].map(String::from));
    let twin = run(&ctx, &f, &cmd, &env);
    assert_ne!(twin.code(), 0, "{}", twin.dump());
    assert!(twin.stderr.contains("PermissionError"), "{}", twin.dump());
    assert!(fs::metadata(format!("{out_dir}/result.txt")).is_err());
});

const REPO_FILE: &str = "hello from the learned git clone\n";

both!(a_git_clone_over_https, |ctx| {
    let repo = TempDir::new("learn-repo");
    let root = make_repo(&repo, REPO_FILE);
    let up = Upstream::start_with("127.0.0.1", true, &["--git-root", &root]);
    let d = TempDir::new("learn-git");
    let work = d.dir("work", 0o777);
    let url = format!("https://git.test:{}/repo.git", up.port);
    let clone = format!("{work}/clone");
    let script = r#"git clone -q "$1" "$2" && cat "$2/hello.txt""#;
    let cmd = ["/bin/sh", "-c", script, "sh", url.as_str(), clone.as_str()];
    let (profile, text) = learn(&ctx, &d, &given("git.test", up.port), &cmd, &[]);
    let c = format!("{text}\n{}", up.dump());
    assert!(
        text.contains(&format!("\"{work}\",  # learned: written")),
        "{c}"
    );
    assert!(text.contains("\"GET git.test/repo.git/info/*\""), "{c}");
    assert!(text.contains("\"POST git.test/repo.git/*\""), "{c}");
    let asked = up.requests().len();
    // Again, into the same place, with the profile.
    fs::remove_dir_all(&clone).unwrap();
    let again = run(&ctx, &["-p".into(), profile], &cmd, &[]);
    again.expect_code(0).expect_stdout(REPO_FILE);
    assert_eq!(up.requests().len(), asked * 2, "{c}");
    // Twin: only what was given (and every request allowed): the clone
    // cannot be written.
    fs::remove_dir_all(&clone).ok();
    let mut f = given("git.test", up.port);
    f.extend(["--http-allow".to_string(), "* git.test/*".to_string()]);
    let twin = run(&ctx, &f, &cmd, &[]);
    assert_ne!(twin.code(), 0, "{}", twin.dump());
    assert!(!twin.stdout.contains(REPO_FILE), "{}", twin.dump());
});

both!(a_pip_install_from_an_https_index, |ctx| {
    let up = package_repositories();
    let clients = clients_dir();
    let d = TempDir::new("learn-pip");
    let work = d.dir("work", 0o777);
    let target = format!("{work}/t");
    let index = format!("https://api.test:{}/files/simple/", up.port);
    let py = format!("{clients}/venv/bin/python");
    let script = r#"PIP_CONFIG_FILE=/dev/null "$1" -m pip install -q --disable-pip-version-check --no-deps --index-url "$2" --target "$3" sbpkg || exit 1
PYTHONPATH="$3" "$1" -c 'import sbpkg; print(sbpkg.VALUE)'"#;
    let cmd = [
        "/bin/sh",
        "-c",
        script,
        "sh",
        py.as_str(),
        index.as_str(),
        target.as_str(),
    ];
    let (profile, text) = learn(&ctx, &d, &given("api.test", up.port), &cmd, &[]);
    let c = format!("{text}\n{}", up.dump());
    assert!(
        text.contains(&format!("\"{work}\",  # learned: written")),
        "{c}"
    );
    assert!(text.contains(&format!("\"{clients}/venv")), "{c}");
    assert!(text.contains("\"GET api.test/files/simple/*\""), "{c}");
    // Again, into the same place, with the profile.
    fs::remove_dir_all(&target).unwrap();
    let again = run(&ctx, &["-p".into(), profile], &cmd, &[]);
    again.expect_code(0).expect_stdout("from-the-index\n");
    // Twin: only what was given: the venv is not readable.
    fs::remove_dir_all(&target).ok();
    let mut f = given("api.test", up.port);
    f.extend(["--http-allow".to_string(), "GET api.test/*".to_string()]);
    let twin = run(&ctx, &f, &cmd, &[]);
    assert_ne!(twin.code(), 0, "{}", twin.dump());
    assert!(!twin.stdout.contains("from-the-index"), "{}", twin.dump());
});

both!(
    a_learn_file_that_cannot_be_written_stops_before_the_run,
    |ctx| {
        let d = TempDir::new("learn-bad");
        let missing = d.join("no/such/dir/p.toml");
        let marker = d.join("ran");
        let out = ctx.sl(run_args(
            &["--learn", &missing, "-w", &d.s()],
            &["/bin/sh", "-c", &format!("touch {marker}")],
        ));
        out.expect_code(2);
        assert!(
            out.stderr.contains(&format!("'{missing}' for '--learn'"))
                && out.stderr.contains("its directory does not exist"),
            "{}",
            out.dump()
        );
        assert!(fs::metadata(&marker).is_err(), "the command ran");
        // Twin: a writable place; the run happens and the profile is there.
        let ok = d.join("p.toml");
        let out = ctx.sl(run_args(
            &["--learn", &ok, "-w", &d.s()],
            &["/bin/sh", "-c", &format!("touch {marker}")],
        ));
        out.expect_code(0);
        assert!(
            fs::metadata(&marker).is_ok() && fs::metadata(&ok).is_ok(),
            "{}",
            out.dump()
        );
    }
);

both!(a_file_secret_is_refused_while_learning, |ctx| {
    let d = TempDir::new("learn-secret");
    let tok = d.file("tok", "file-secret-0123456789abcdef\n");
    let marker = d.join("ran");
    let profile = d.join("p.toml");
    let cmd = ["/bin/sh", "-c", &format!("touch {marker}")];
    let secret = format!("T=file:{tok}@api.test");
    let base = [
        "--learn",
        &profile,
        "--add-host",
        "api.test:127.0.0.1",
        "-w",
        &d.s(),
    ];
    let mut f = base.to_vec();
    f.extend(["--secret", &secret]);
    let out = ctx.sl(run_args(&f, &cmd));
    out.expect_code(2);
    assert!(
        out.stderr.contains("--learn lets the run read every file"),
        "{}",
        out.dump()
    );
    assert!(fs::metadata(&marker).is_err(), "the command ran");
    // Twin: from the environment, the secret is learned as its reference.
    let mut f = base.to_vec();
    f.extend(["--secret", "T=env:T_SRC@api.test"]);
    let out = ctx.sl_env(
        run_args(&f, &cmd),
        &[("T_SRC", "env-secret-0123456789abcdef")],
    );
    out.expect_code(0);
    let text = fs::read_to_string(&profile).unwrap();
    assert!(
        text.contains("[secrets.T]\nsource = \"env:T_SRC\"\nhosts = [\"api.test\"]\n"),
        "{text}"
    );
    assert!(!text.contains("env-secret-0123456789abcdef"), "{text}");
});
