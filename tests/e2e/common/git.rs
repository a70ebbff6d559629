//! Git repositories the tests serve through `upstream.py --git-root`.

use std::process::{Command, Stdio};

use super::{TempDir, PATH_ENV};

/// Runs git on the host with a clean environment (HOME = `home`) and
/// returns its stdout; panics with git's stderr when it fails.
pub fn host_git(home: &str, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=e2e", "-c", "user.email=e2e@sandlock.test"])
        .args(args)
        .env_clear()
        .env("PATH", PATH_ENV)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run git (apt-get install git): {e}"));
    assert!(
        out.status.success(),
        "git {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A bare repository `DIR/root/repo.git` with one commit holding
/// hello.txt = `content`; returns DIR/root (the --git-root).
pub fn make_repo(d: &TempDir, content: &str) -> String {
    let src = d.join("src");
    let root = d.dir("root", 0o755);
    let home = d.s();
    host_git(&home, &["init", "-q", "-b", "main", &src]);
    std::fs::write(format!("{src}/hello.txt"), content).unwrap();
    host_git(&home, &["-C", &src, "add", "hello.txt"]);
    host_git(&home, &["-C", &src, "commit", "-q", "-m", "e2e"]);
    host_git(
        &home,
        &["clone", "-q", "--bare", &src, &format!("{root}/repo.git")],
    );
    root
}
