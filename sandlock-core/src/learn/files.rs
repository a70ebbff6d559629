//! Paths a run used, collapsed into the filesystem grants of a profile.
//!
//! Pure: takes the observed uses and what the given policy already grants,
//! and returns the fewest grants, at sensible directories, that cover
//! every use the given policy did not. A directory whose entries were
//! created, removed or renamed is granted for writing as it is (tools
//! write a temporary file and rename it into place); two or more files
//! written, or three read, in one directory become that directory; three
//! or more grants under one parent become the parent. Never into a
//! directory too broad to grant on the strength of a few uses below it
//! (the root, a top-level directory, the user's home or one above it,
//! another user's home, a shared temp, state or runtime directory), and
//! never around a sensitive path (an `/etc` secret, a credential or shell
//! start-up file in a home, a device): those are granted one by one, each
//! with a warning. Must never return a set of grants that leaves a use
//! uncovered: the property test holds it to that.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// How a path was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read, listed or executed.
    Read,
    /// Written, truncated or its metadata changed.
    Write,
    /// An entry of this directory was created, removed or renamed.
    Change,
}

/// A directory's change time when its entries were first seen changing:
/// a change that left it as it was never happened (the call failed), and
/// is not learned.
pub type Stamp = (i64, i64);

/// Every way one path was used.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Use {
    /// Read, listed or executed.
    pub read: bool,
    /// Written or changed.
    pub write: bool,
    /// Its entries changed (it is a directory).
    pub change: bool,
    /// It is a directory.
    pub dir: bool,
    /// Its change time before the first change of its entries.
    pub stamp: Option<Stamp>,
}

impl Use {
    pub(super) fn add(&mut self, access: Access, dir: bool) {
        match access {
            Access::Read => self.read = true,
            Access::Write => self.write = true,
            Access::Change => self.change = true,
        }
        self.dir |= dir || access == Access::Change;
    }
}

/// Paths never learned: the workload's own `/proc` and its descriptors,
/// which every sandbox has.
pub(super) fn ignored(path: &Path) -> bool {
    [
        "/proc",
        "/dev/fd",
        "/dev/stdin",
        "/dev/stdout",
        "/dev/stderr",
    ]
    .iter()
    .any(|p| path.starts_with(p))
}

/// What the given policy grants already (canonical paths), and whose home
/// the run was learned for.
#[derive(Debug, Default, Clone)]
pub struct Covered {
    /// Readable (and executable) below these.
    pub read: Vec<PathBuf>,
    /// Writable below these.
    pub write: Vec<PathBuf>,
    /// The user's home and runtime directory, canonical: never granted
    /// whole, nor anything above them.
    pub homes: Vec<PathBuf>,
}

impl Covered {
    fn reads(&self, p: &Path) -> bool {
        self.read
            .iter()
            .chain(&self.write)
            .any(|r| p.starts_with(r))
    }

    fn writes(&self, p: &Path) -> bool {
        self.write.iter().any(|r| p.starts_with(r))
    }

    /// Too broad to grant on the strength of a few uses below it.
    fn too_broad(&self, dir: &Path) -> bool {
        let depth = dir.components().count();
        depth < 3
            || self.homes.iter().any(|h| h.starts_with(dir))
            || BROAD.iter().any(|b| dir == Path::new(b))
            || BROAD_PARENTS
                .iter()
                .any(|b| dir.parent() == Some(Path::new(b)))
    }
}

/// Shared directories, too broad to grant for a few uses below them.
const BROAD: [&str; 10] = [
    "/var/tmp",
    "/var/lib",
    "/var/cache",
    "/var/log",
    "/usr/local",
    "/usr/share",
    "/usr/lib",
    "/run/user",
    "/dev/shm",
    "/etc/ssh",
];

/// Directories whose children are someone's whole space (a home, a
/// user's runtime directory).
const BROAD_PARENTS: [&str; 3] = ["/home", "/var/home", "/run/user"];

/// Names that hold credentials or run code at login: a path through one
/// is granted on its own, with a warning, and never merged into a parent.
const SENSITIVE_NAMES: [&str; 16] = [
    ".ssh",
    ".gnupg",
    ".aws",
    ".kube",
    ".docker",
    ".netrc",
    ".pgpass",
    ".git-credentials",
    ".npmrc",
    ".pypirc",
    ".bashrc",
    ".bash_profile",
    ".profile",
    ".zshrc",
    ".config/gh",
    ".password-store",
];

/// True for a path a grant on which deserves a second look: an `/etc`
/// secret, a credential or start-up file (or below one), a device.
pub fn sensitive(p: &Path) -> bool {
    let text = p.to_string_lossy();
    crate::policy::fs::is_etc_secret(&text)
        || crate::policy::fs::ETC_SECRETS
            .iter()
            .any(|s| !s.contains('*') && p.starts_with(s))
        || SENSITIVE_NAMES.iter().any(|n| {
            let needle = format!("/{n}");
            text.contains(&format!("{needle}/")) || text.ends_with(&needle)
        })
        || (p.starts_with("/dev") && !p.starts_with("/dev/shm"))
}

/// One learned grant and the uses it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// What is granted.
    pub path: PathBuf,
    /// The used paths it was learned from.
    pub from: BTreeSet<PathBuf>,
    /// Only listed: nothing below it was used, yet the grant reads all of it.
    pub listed: bool,
    /// It is (or holds) a sensitive path: said in a warning.
    pub sensitive: bool,
}

/// The learned grants.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Grants {
    /// `[filesystem] read`.
    pub read: Vec<Rule>,
    /// `[filesystem] write`.
    pub write: Vec<Rule>,
    /// Directories that were listed but are too broad to grant for it
    /// (a read grant on `/` would be the whole tree): left out, and said.
    pub unlisted: Vec<PathBuf>,
    /// Paths written (or tried) where a profile never grants writing:
    /// left out, and said.
    pub unwritable: Vec<PathBuf>,
}

/// Where no profile is given writing on the strength of a run: the
/// kernel's files (a cgroup's `cgroup.procs` would let the workload leave
/// its limits; `/proc/sys` changes the host) and the boot files. A
/// learning run cannot write there either.
const NEVER_WRITTEN: [&str; 3] = ["/sys", "/proc", "/boot"];

/// Grants under construction: path -> the used paths it covers.
type Building = BTreeMap<PathBuf, BTreeSet<PathBuf>>;

/// The grants that cover every use in `files` that `covered` does not.
pub fn collapse(files: &BTreeMap<PathBuf, Use>, covered: &Covered) -> Grants {
    let mut write = Building::new();
    let mut written_files = Building::new();
    let mut unwritable = Vec::new();
    for (p, u) in files {
        if !(u.write || u.change) || covered.writes(p) {
            continue;
        }
        if NEVER_WRITTEN.iter().any(|n| p.starts_with(n)) {
            unwritable.push(p.clone());
            continue;
        }
        if u.change || u.dir || sensitive(p) {
            write.entry(p.clone()).or_default().insert(p.clone());
        } else {
            written_files
                .entry(parent(p))
                .or_default()
                .insert(p.clone());
        }
    }
    group_files(&mut write, written_files, 2, covered);
    merge_siblings(&mut write, covered);
    let mut read = Building::new();
    let mut read_files = Building::new();
    let mut listings = BTreeSet::new();
    let mut unlisted = Vec::new();
    for (p, u) in files {
        if !u.read || covered.reads(p) || under(&write, p) {
            continue;
        }
        if u.dir && covered.too_broad(p) {
            unlisted.push(p.clone());
        } else if u.dir || sensitive(p) {
            if u.dir {
                listings.insert(p.clone());
            }
            read.entry(p.clone()).or_default().insert(p.clone());
        } else {
            read_files.entry(parent(p)).or_default().insert(p.clone());
        }
    }
    group_files(&mut read, read_files, 3, covered);
    merge_siblings(&mut read, covered);
    let rules = |b: Building, listings: &BTreeSet<PathBuf>| -> Vec<Rule> {
        b.into_iter()
            .map(|(path, from)| Rule {
                listed: from.len() == 1 && listings.contains(&path) && from.contains(&path),
                sensitive: from.iter().any(|f| sensitive(f)) || sensitive(&path),
                path,
                from,
            })
            .collect()
    };
    Grants {
        read: rules(read, &listings),
        write: rules(write, &BTreeSet::new()),
        unlisted,
        unwritable,
    }
}

fn parent(p: &Path) -> PathBuf {
    p.parent().unwrap_or(Path::new("/")).to_path_buf()
}

/// True when a grant of `b` covers `p`: `p` or one of its ancestors is a
/// key (a walk up the path, each step a map lookup).
fn under(b: &Building, p: &Path) -> bool {
    p.ancestors().any(|a| b.contains_key(a))
}

/// Files in one directory: the directory when there are `at_least` of
/// them (none of them sensitive) or it is granted already, else each file.
fn group_files(grants: &mut Building, by_dir: Building, at_least: usize, covered: &Covered) {
    for (dir, used) in by_dir {
        let whole = grants.contains_key(&dir)
            || (used.len() >= at_least && !covered.too_broad(&dir) && !sensitive(&dir));
        if whole {
            grants.entry(dir).or_default().extend(used);
        } else {
            for f in used {
                grants.entry(f.clone()).or_default().insert(f);
            }
        }
    }
}

/// Three or more grants under one directory that is not too broad (and
/// none of them sensitive) become that directory, from the deepest up;
/// then no grant lies below another.
fn merge_siblings(grants: &mut Building, covered: &Covered) {
    let deepest = grants.keys().map(|p| p.components().count()).max();
    for depth in (2..=deepest.unwrap_or(0)).rev() {
        let mut by_parent: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
        for p in grants.keys().filter(|p| p.components().count() == depth) {
            if let Some(q) = p.parent() {
                by_parent
                    .entry(q.to_path_buf())
                    .or_default()
                    .push(p.clone());
            }
        }
        for (dir, kids) in by_parent {
            if kids.len() < 3 || covered.too_broad(&dir) || sensitive(&dir) {
                continue;
            }
            if kids.iter().any(|k| sensitive(k)) {
                continue;
            }
            let mut from = BTreeSet::new();
            for k in kids {
                from.extend(grants.remove(&k).unwrap_or_default());
            }
            grants.entry(dir).or_default().extend(from);
        }
    }
    // A grant below another folds into it.
    let paths: Vec<PathBuf> = grants.keys().cloned().collect();
    for p in paths {
        let Some(anc) = p.ancestors().skip(1).find(|a| grants.contains_key(*a)) else {
            continue;
        };
        let anc = anc.to_path_buf();
        let from = grants.remove(&p).unwrap_or_default();
        if let Some(set) = grants.get_mut(&anc) {
            set.extend(from);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn uses(list: &[(&str, Access, bool)]) -> BTreeMap<PathBuf, Use> {
        let mut m: BTreeMap<PathBuf, Use> = BTreeMap::new();
        for (p, a, dir) in list {
            m.entry(PathBuf::from(p)).or_default().add(*a, *dir);
        }
        m
    }

    fn paths(rules: &[Rule]) -> Vec<&str> {
        rules.iter().map(|r| r.path.to_str().unwrap()).collect()
    }

    fn home() -> Covered {
        Covered {
            homes: vec![PathBuf::from("/home/u"), PathBuf::from("/run/user/1000")],
            ..Covered::default()
        }
    }

    #[test]
    fn files_collapse_to_their_directories() {
        let g = collapse(
            &uses(&[
                ("/data/in/a.csv", Access::Read, false),
                ("/data/in/b.csv", Access::Read, false),
                ("/data/in/c.csv", Access::Read, false),
                ("/home/u/.gitconfig", Access::Read, false),
                ("/opt/tool/bin/tool", Access::Read, false),
                ("/work/out", Access::Change, true),
                ("/work/out/report.txt", Access::Write, false),
                ("/usr/lib/x.so", Access::Read, false),
                ("/", Access::Read, true),
                ("/home/u", Access::Read, true),
                ("/srv/listed", Access::Read, true),
            ]),
            &Covered {
                read: vec![PathBuf::from("/usr")],
                ..home()
            },
        );
        assert_eq!(paths(&g.write), ["/work/out"]);
        assert_eq!(
            paths(&g.read),
            [
                "/data/in",
                "/home/u/.gitconfig",
                "/opt/tool/bin/tool",
                "/srv/listed"
            ]
        );
        assert_eq!(g.read[0].from.len(), 3);
        assert!(!g.read[0].listed && g.read[3].listed);
        assert_eq!(g.unlisted, [Path::new("/"), Path::new("/home/u")]);
    }

    #[test]
    fn siblings_merge_but_never_into_a_broad_directory() {
        let g = collapse(
            &uses(&[
                ("/srv/app/a", Access::Change, true),
                ("/srv/app/b", Access::Change, true),
                ("/srv/app/c", Access::Change, true),
                ("/home/u/x", Access::Change, true),
                ("/home/u/y", Access::Change, true),
                ("/home/u/z", Access::Change, true),
                ("/tmp/p", Access::Change, true),
                ("/tmp/q", Access::Change, true),
                ("/tmp/r", Access::Change, true),
                ("/home/other/a", Access::Change, true),
                ("/home/other/b", Access::Change, true),
                ("/home/other/c", Access::Change, true),
            ]),
            &home(),
        );
        assert_eq!(
            paths(&g.write),
            [
                "/home/other/a",
                "/home/other/b",
                "/home/other/c",
                "/home/u/x",
                "/home/u/y",
                "/home/u/z",
                "/srv/app",
                "/tmp/p",
                "/tmp/q",
                "/tmp/r"
            ]
        );
    }

    #[test]
    fn sensitive_paths_stand_alone_with_a_warning() {
        let g = collapse(
            &uses(&[
                ("/home/u/.ssh/id_ed25519", Access::Read, false),
                ("/home/u/.ssh/config", Access::Read, false),
                ("/home/u/.ssh/known_hosts", Access::Read, false),
                ("/etc/shadow", Access::Read, false),
                ("/srv/a/x", Access::Change, true),
                ("/srv/a/y", Access::Change, true),
                ("/srv/a/.ssh", Access::Change, true),
            ]),
            &home(),
        );
        assert_eq!(
            paths(&g.read),
            [
                "/etc/shadow",
                "/home/u/.ssh/config",
                "/home/u/.ssh/id_ed25519",
                "/home/u/.ssh/known_hosts"
            ]
        );
        assert!(g.read.iter().all(|r| r.sensitive));
        assert_eq!(paths(&g.write), ["/srv/a/.ssh", "/srv/a/x", "/srv/a/y"]);
    }

    #[test]
    fn covered_uses_are_not_learned() {
        let g = collapse(
            &uses(&[
                ("/w/a", Access::Write, false),
                ("/w/b", Access::Read, false),
                ("/r/c", Access::Read, false),
                ("/r/d", Access::Write, false),
            ]),
            &Covered {
                read: vec![PathBuf::from("/r")],
                write: vec![PathBuf::from("/w")],
                homes: vec![],
            },
        );
        assert_eq!(paths(&g.write), ["/r/d"]);
        assert!(g.read.is_empty());
    }

    /// Thousands of paths collapse in well under a second (the merge is a
    /// walk from the deepest level up, not a search per merge).
    #[test]
    fn many_paths_collapse_fast() {
        let mut files = BTreeMap::new();
        for a in 0..20 {
            for b in 0..20 {
                for c in 0..50 {
                    let p = PathBuf::from(format!("/srv/t{a}/d{b}/f{c}"));
                    files
                        .entry(p)
                        .or_insert_with(Use::default)
                        .add(Access::Change, true);
                }
            }
        }
        let start = std::time::Instant::now();
        let g = collapse(&files, &home());
        // Up to /srv/tN; /srv itself is a top-level directory's child.
        assert_eq!(g.write.len(), 20);
        assert!(g
            .write
            .iter()
            .all(|r| r.path.starts_with("/srv") && r.from.len() == 1000));
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    fn arb_path() -> impl Strategy<Value = PathBuf> {
        prop::collection::vec(
            prop::sample::select(vec!["a", "b", "c", "d", "home", "u", ".ssh", "dev", "sys"]),
            1..5,
        )
        .prop_map(|parts| PathBuf::from(format!("/{}", parts.join("/"))))
    }

    fn arb_access() -> impl Strategy<Value = Access> {
        prop::sample::select(vec![Access::Read, Access::Write, Access::Change])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Every use the given policy did not cover is covered by a
        /// learned grant of the right kind (but too-broad listings, which
        /// are said instead), and no grant is below another.
        #[test]
        fn every_use_is_covered(
            list in prop::collection::vec((arb_path(), arb_access(), any::<bool>()), 0..40),
            cov in prop::collection::vec((arb_path(), any::<bool>()), 0..3),
        ) {
            let mut files: BTreeMap<PathBuf, Use> = BTreeMap::new();
            for (p, a, d) in &list {
                files.entry(p.clone()).or_default().add(*a, *d);
            }
            let mut covered = home();
            for (p, w) in cov {
                if w { covered.write.push(p) } else { covered.read.push(p) }
            }
            let g = collapse(&files, &covered);
            let in_rules = |rules: &[Rule], p: &Path| rules.iter().any(|r| p.starts_with(&r.path));
            for (p, u) in &files {
                if g.unwritable.contains(p) {
                    prop_assert!(NEVER_WRITTEN.iter().any(|n| p.starts_with(n)));
                    continue;
                }
                if u.write || u.change {
                    prop_assert!(covered.writes(p) || in_rules(&g.write, p), "write {p:?}: {g:?}");
                }
                if u.read && !g.unlisted.contains(p) {
                    prop_assert!(
                        covered.reads(p) || in_rules(&g.read, p) || in_rules(&g.write, p),
                        "read {p:?}: {g:?}"
                    );
                }
                if g.unlisted.contains(p) {
                    prop_assert!(u.dir && covered.too_broad(p));
                }
            }
            for rules in [&g.read, &g.write] {
                for a in rules.iter() {
                    for b in rules.iter() {
                        prop_assert!(a == b || !b.path.starts_with(&a.path), "{a:?} above {b:?}");
                    }
                    // No merge ever lands on a broad directory.
                    if !a.from.contains(&a.path) {
                        prop_assert!(!covered.too_broad(&a.path), "{a:?}");
                    }
                }
            }
        }
    }
}
