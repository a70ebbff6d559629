//! git over HTTPS with a secret token.

use super::*;

// ---------------------------------------------------------------------------
// git over HTTPS with a secret token: the headline case
// ---------------------------------------------------------------------------

/// Number of commits in the big repository, each adding one file of
/// incompressible bytes.
const BIG_COMMITS: usize = 5;
/// Size of each of those files (5 x 1.2 MB: the clone moves over 6 MB).
const BIG_FILE: usize = 1_200_000;
/// Annotated tags, so that the clone's want list exceeds 1 KiB and git
/// sends its git-upload-pack request gzip'd.
const BIG_TAGS: usize = 30;

/// The checksum of every file of the work tree at the current directory
/// (`.git` left out), one line: `<sha256>  -`.
const TREE_SUM: &str =
    "find . -path ./.git -prune -o -type f -print | LC_ALL=C sort | xargs sha256sum | sha256sum";

/// `DIR/src` (a work tree) and `DIR/root/repo.git` (its bare clone, the
/// --git-root is DIR/root) with BIG_COMMITS commits of BIG_FILE random
/// bytes each (a deterministic xorshift stream) and BIG_TAGS annotated
/// tags; returns (root, src).
fn make_big_repo(d: &TempDir) -> (String, String) {
    let src = d.join("src");
    let root = d.dir("root", 0o755);
    let home = d.s();
    host_git(&home, &["init", "-q", "-b", "main", &src]);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..BIG_COMMITS {
        let mut data = Vec::with_capacity(BIG_FILE);
        while data.len() < BIG_FILE {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.extend_from_slice(&x.to_le_bytes());
        }
        data.truncate(BIG_FILE);
        let name = format!("blob{i}.bin");
        fs::write(format!("{src}/{name}"), &data).unwrap();
        host_git(&home, &["-C", &src, "add", &name]);
        host_git(
            &home,
            &["-C", &src, "commit", "-q", "-m", &format!("big {i}")],
        );
    }
    for t in 0..BIG_TAGS {
        host_git(
            &home,
            &[
                "-C",
                &src,
                "tag",
                "-a",
                "-m",
                &format!("tag {t}"),
                &format!("v0.{t}"),
            ],
        );
    }
    host_git(
        &home,
        &["clone", "-q", "--bare", &src, &format!("{root}/repo.git")],
    );
    // readable by uid 65534 (the upstream itself runs as the test's user)
    let st = Command::new("chmod")
        .args(["-R", "a+rX", &d.s()])
        .status()
        .unwrap();
    assert!(st.success());
    (root, src)
}

/// The host-side checksum of `dir`'s work tree (see TREE_SUM).
fn tree_sum(dir: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", TREE_SUM])
        .current_dir(dir)
        .env_clear()
        .env("PATH", PATH_ENV)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Clones $1 (a full URL) into $2 and prints what the test checks:
/// "PH <placeholder>", "CLONE <rc>", "COMMITS <n>", "SUM <tree checksum>";
/// with $3 = push, also commits a new 1 MB random file and pushes it:
/// "NEW <commit>", "PUSH <rc>".
const GIT_SCRIPT: &str = r#"printf 'PH %s\n' "$GH_TOKEN"
url=$(printf '%s' "$1" | sed "s/@TOKEN@/$GH_TOKEN/")
git -c credential.helper= clone -q "$url" "$2"
echo "CLONE $?"
cd "$2" || exit 1
echo "COMMITS $(git log --oneline | wc -l)"
echo "SUM $(find . -path ./.git -prune -o -type f -print | LC_ALL=C sort | xargs sha256sum | sha256sum)"
[ "$3" = push ] || exit 0
head -c 1048576 /dev/urandom > pushed.bin
git add pushed.bin
git -c user.name=e2e -c user.email=e2e@sandlock.test commit -q -m pushed
echo "NEW $(git rev-parse HEAD)"
git -c credential.helper= push -q origin HEAD:refs/heads/main
echo "PUSH $?"
"#;

/// Splits a log line at the string value of `key`: (the line with that
/// value emptied, the value).
fn cut_b64<'a>(line: &'a str, key: &str) -> Option<(String, &'a str)> {
    let k = format!("\"{key}\":\"");
    let start = line.find(&k)? + k.len();
    let len = line[start..].find('"')?;
    let rest = format!("{}{}", &line[..start], &line[start + len..]);
    Some((rest, &line[start..start + len]))
}

/// Like `Sec::dump`, with the upstream log shortened: raw chunks left out
/// and request bodies emptied (the git traffic is megabytes of base64).
fn big_dump(s: &Sec, out: &Out) -> String {
    let text = fs::read_to_string(&s.up.log).unwrap_or_default();
    let log: Vec<String> = text
        .lines()
        .filter(|l| !l.contains("\"raw_b64\""))
        .map(|l| cut_b64(l, "body_b64").map_or(l.to_string(), |(rest, _)| rest))
        .collect();
    format!(
        "real value {:?}\n{}\n--- upstream {}:{} log (no raw chunks, no bodies) ---\n{}",
        s.value,
        out.dump(),
        s.up.ip,
        s.up.port,
        log.join("\n")
    )
}

/// Whether the upstream logged a git http-backend failure.
fn git_errors(up: &Upstream) -> bool {
    fs::read_to_string(&up.log)
        .unwrap_or_default()
        .contains("\"event\":\"git_error\"")
}

/// The value after `key ` on the first stdout line starting with it.
#[track_caller]
fn line_val(out: &Out, key: &str, c: &str) -> String {
    let k = format!("{key} ");
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix(k.as_str()))
        .unwrap_or_else(|| panic!("no {key} line\n{c}"))
        .to_string()
}

both!(git_clone_and_push_with_a_secret_token, |ctx| {
    let repo = TempDir::new("bigrepo");
    let (root, src) = make_big_repo(&repo);
    let want_sum = tree_sum(&src);
    let bare = format!("{root}/repo.git");
    let real = random_alnum(40);
    let auth = format!("x-access-token:{real}");
    let s = Sec::with(
        Upstream::start_with(
            "127.0.0.1",
            true,
            &["--git-root", &root, "--git-auth", &auth],
        ),
        real.clone(),
    );
    let work = s.d.dir("work", 0o777);
    let home = format!("HOME={work}");
    let flags = |secret: &str| {
        s.bare(&[
            "--add-host",
            "git.test:127.0.0.1",
            "--secret",
            secret,
            "-w",
            &work,
            "--env",
            &home,
            "--env",
            "GIT_TERMINAL_PROMPT=0",
            "-t",
            "120",
        ])
    };
    let run = |flags: &[String], args: &[&str]| {
        let mut cmd = sv(&["/bin/sh", "-c", GIT_SCRIPT, "sh"]);
        cmd.extend(sv(args));
        let f: Vec<&str> = flags.iter().map(String::as_str).collect();
        let c: Vec<&str> = cmd.iter().map(String::as_str).collect();
        ctx.sl_env(run_args(&f, &c), &[(VAR, real.as_str())])
    };

    // the URL carries the placeholder: git sends Basic
    // x-access-token:<placeholder> after the 401 challenge
    let url = format!(
        "https://x-access-token:@TOKEN@@git.test:{}/repo.git",
        s.port()
    );
    let out = run(
        &flags(&format!("GH_TOKEN=env:{VAR}@git.test")),
        &[&url, &format!("{work}/clone"), "push"],
    );
    let c = big_dump(&s, &out);
    let p = placeholder(&out, &real, &c);
    assert_eq!(p.len(), real.len(), "{c}");
    assert_no_value_in_output(&out, &real, &c);
    out.expect_code(0);
    assert_eq!(line_val(&out, "CLONE", &c), "0", "{c}");
    assert_eq!(
        line_val(&out, "COMMITS", &c),
        BIG_COMMITS.to_string(),
        "{c}"
    );
    assert_eq!(line_val(&out, "SUM", &c), want_sum, "{c}");
    assert_eq!(line_val(&out, "PUSH", &c), "0", "{c}");
    let new = line_val(&out, "NEW", &c);
    let head = host_git(
        &repo.s(),
        &["--git-dir", &bare, "log", "-1", "--format=%H", "main"],
    );
    assert_eq!(
        head.trim(),
        new,
        "the push did not land in the bare repo\n{c}"
    );
    let count = host_git(
        &repo.s(),
        &["--git-dir", &bare, "rev-list", "--count", "main"],
    );
    assert_eq!(count.trim(), (BIG_COMMITS + 1).to_string(), "{c}");

    // on the wire: the challenge was answered with the real value, the
    // placeholder never arrived, and the big requests went through
    let (reqs, raw) = (s.up.requests(), s.up.raw_all());
    let creds: Vec<String> = reqs
        .iter()
        .filter_map(|r| r.header("authorization"))
        .map(|v| {
            let b = v
                .strip_prefix("Basic ")
                .unwrap_or_else(|| panic!("{v:?}\n{c}"));
            String::from_utf8_lossy(&b64decode(b)).into_owned()
        })
        .collect();
    assert!(!creds.is_empty(), "git never sent credentials\n{c}");
    assert!(
        creds.iter().all(|x| *x == auth),
        "credentials other than x-access-token:<real> reached the upstream: {creds:?}\n{c}"
    );
    assert!(
        !contains(&raw, p.as_bytes()),
        "the placeholder reached the upstream\n{c}"
    );
    let authed = |r: &&SeenRequest| r.header("authorization").is_some();
    assert!(
        reqs.iter().filter(authed).any(|r| r.method == "POST"
            && r.path == "/repo.git/git-upload-pack"
            && r.header("content-encoding") == Some("gzip")),
        "no authenticated gzip'd git-upload-pack request\n{c}"
    );
    assert!(
        reqs.iter().filter(authed).any(|r| r.method == "POST"
            && r.path == "/repo.git/git-receive-pack"
            && r.body.len() > 1_000_000),
        "no authenticated git-receive-pack request carrying the pack\n{c}"
    );
    assert!(!git_errors(&s.up), "{c}");

    // twin: a secret bound to the host but unused (no credentials in the
    // URL, an upstream that asks for none) breaks nothing
    let open = Upstream::start_with("127.0.0.1", true, &["--git-root", &root]);
    let s2 = Sec::with(open, real.clone());
    let flags2 = s2.bare(&[
        "--add-host",
        "git.test:127.0.0.1",
        "--secret",
        &format!("DUMMY=env:{VAR}@git.test"),
        "-w",
        &work,
        "--env",
        &home,
        "--env",
        "GIT_TERMINAL_PROMPT=0",
        "-t",
        "120",
    ]);
    let url2 = format!("https://git.test:{}/repo.git", s2.port());
    let out = run(&flags2, &[&url2, &format!("{work}/plain")]);
    let c = big_dump(&s2, &out);
    assert_no_value_in_output(&out, &real, &c);
    out.expect_code(0);
    assert_eq!(line_val(&out, "CLONE", &c), "0", "{c}");
    // the bare repo now has the pushed commit too
    assert_eq!(
        line_val(&out, "COMMITS", &c),
        (BIG_COMMITS + 1).to_string(),
        "{c}"
    );
    assert_eq!(
        line_val(&out, "SUM", &c),
        tree_sum(&format!("{work}/clone")),
        "{c}"
    );
    assert!(
        s2.up
            .requests()
            .iter()
            .all(|r| r.header("authorization").is_none()),
        "{c}"
    );
    assert!(!git_errors(&s2.up), "{c}");
});
