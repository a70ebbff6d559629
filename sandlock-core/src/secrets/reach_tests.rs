//! Tests of the reach check: which `file:` and `fd:` sources the workload
//! could read itself.

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// A directory of its own under the temporary directory, removed on drop.
struct Tree(PathBuf);

impl Tree {
    fn new() -> Tree {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "sandlock-reach-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(path.join("granted")).unwrap();
        fs::create_dir_all(path.join("outside")).unwrap();
        fs::write(path.join("granted/key"), "value\n").unwrap();
        fs::write(path.join("outside/key"), "value\n").unwrap();
        Tree(path)
    }

    fn at(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn spec(text: &str) -> SecretSpec {
    SecretSpec::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn file_spec(path: &Path) -> SecretSpec {
    spec(&format!("K=file:{}@example.com", path.display()))
}

/// The check for `specs`, with `-r ROOT` for each of `read` and the
/// workload's stdio as given.
fn run(specs: &[SecretSpec], read: &[PathBuf], stdio: [Option<RawFd>; 3]) -> Result<()> {
    let fs = FsPolicy {
        read: read.to_vec(),
        ..FsPolicy::default()
    };
    check(
        specs,
        &Reach {
            roots: read,
            fs: &fs,
            stdio,
        },
    )
}

fn refused(specs: &[SecretSpec], read: &[PathBuf], stdio: [Option<RawFd>; 3]) -> String {
    run(specs, read, stdio).expect_err("refused").to_string()
}

#[test]
fn a_file_below_a_read_grant_is_refused_with_flag_and_value() {
    let t = Tree::new();
    let key = t.at("granted/key");
    let e = refused(&[file_spec(&key)], &[t.at("granted")], [None; 3]);
    assert_eq!(
        e,
        format!(
            "invalid value 'K=file:{key}@example.com' for '--secret': secret K: \
             file:{key} can be read by the workload itself: it is below {root}, \
             granted by --fs-read; keep the secret outside every path the sandbox may read",
            key = key.display(),
            root = t.at("granted").display()
        )
    );
    // the twin: the same file with the grant elsewhere
    run(&[file_spec(&key)], &[t.at("outside")], [None; 3]).unwrap();
    run(
        &[file_spec(&t.at("outside/key"))],
        &[t.at("granted")],
        [None; 3],
    )
    .unwrap();
}

#[test]
fn symlinks_are_resolved_on_both_sides() {
    let t = Tree::new();
    // a link outside every grant to the granted file
    std::os::unix::fs::symlink(t.at("granted/key"), t.at("outside/link")).unwrap();
    let e = refused(
        &[file_spec(&t.at("outside/link"))],
        &[t.at("granted")],
        [None; 3],
    );
    let real = fs::canonicalize(t.at("granted/key")).unwrap();
    assert!(e.contains(&format!("(it is {})", real.display())), "{e}");
    // a grant that is a link to the directory holding the file
    std::os::unix::fs::symlink(t.at("outside"), t.at("alias")).unwrap();
    let e = refused(
        &[file_spec(&t.at("outside/key"))],
        &[t.at("alias")],
        [None; 3],
    );
    assert!(
        e.contains(&format!("below {}", t.at("alias").display())),
        "{e}"
    );
    // `..` in the source is resolved too
    let dotted = t.at("outside/../granted/key");
    refused(&[file_spec(&dotted)], &[t.at("granted")], [None; 3]);
}

#[test]
fn the_grant_is_named_by_its_flag() {
    let t = Tree::new();
    let key = t.at("granted/key");
    let roots = [t.at("granted")];
    for (fs, grant) in [
        (
            FsPolicy {
                write: roots.to_vec(),
                ..FsPolicy::default()
            },
            "granted by --fs-write",
        ),
        (FsPolicy::default(), "granted by the system view"),
    ] {
        let reach = Reach {
            roots: &roots,
            fs: &fs,
            stdio: [None; 3],
        };
        let e = check(&[file_spec(&key)], &reach).unwrap_err().to_string();
        assert!(e.contains(grant), "{e}");
    }
}

#[test]
fn sources_with_nothing_to_read_here_pass() {
    let t = Tree::new();
    let roots = [t.at("granted")];
    let missing = t.at("granted/missing");
    // loading the value reports these
    run(&[file_spec(&missing)], &roots, [None; 3]).unwrap();
    run(&[spec("K=fd:987@example.com")], &roots, [None; 3]).unwrap();
    run(&[spec("K=env:HOME@example.com")], &roots, [None; 3]).unwrap();
}

#[test]
fn a_descriptor_on_a_readable_path_is_refused() {
    let t = Tree::new();
    let f = File::open(t.at("granted/key")).unwrap();
    let s = spec(&format!("K=fd:{}@example.com", f.as_raw_fd()));
    let e = refused(std::slice::from_ref(&s), &[t.at("granted")], [None; 3]);
    assert!(e.contains("granted by --fs-read"), "{e}");
    // twin: the same descriptor, nothing granted above it
    run(&[s], &[t.at("outside")], [None; 3]).unwrap();
}

#[test]
fn a_descriptor_on_the_workloads_stdin_file_is_refused() {
    let t = Tree::new();
    let key = t.at("outside/key");
    let source = File::open(&key).unwrap();
    let s = spec(&format!("K=fd:{}@example.com", source.as_raw_fd()));
    // the workload's stdin: the same file, opened on its own
    let stdin = File::open(&key).unwrap();
    let e = refused(
        std::slice::from_ref(&s),
        &[],
        [Some(stdin.as_raw_fd()), None, None],
    );
    assert!(
        e.contains("it is the file the workload gets as its stdin, which it can read again"),
        "{e}"
    );
    // write-only there (an output redirected into it): nothing to read back
    let out = OpenOptions::new().write(true).open(&key).unwrap();
    run(
        std::slice::from_ref(&s),
        &[],
        [None, Some(out.as_raw_fd()), None],
    )
    .unwrap();
    // twin: the workload's stdin is sandlock's own stream, not that file
    run(&[s], &[], [None; 3]).unwrap();
}

#[test]
fn a_pipe_shared_with_stdin_is_drained_not_refused() {
    let (rd, _wr) = nix::unistd::pipe().unwrap();
    let s = spec(&format!("K=fd:{}@example.com", rd.as_raw_fd()));
    run(&[s], &[], [Some(rd.as_raw_fd()), None, None]).unwrap();
}
