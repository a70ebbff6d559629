//! Paths a run used, collapsed into the filesystem grants of a profile.
//!
//! Pure: takes the observed uses and what the given policy already grants,
//! and returns the fewest grants, at sensible directories, that cover
//! every use the given policy did not. A directory whose entries were
//! created, removed or renamed is granted for writing as it is (tools
//! write a temporary file and rename it into place); two or more files
//! used in one directory become that directory; three or more siblings
//! become their parent, unless that parent is too broad to grant (the
//! root, a top-level directory, the user's home, a shared temp or state
//! directory). Must never return a set of grants that leaves a use
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

/// What the given policy grants already (canonical paths).
#[derive(Debug, Default, Clone)]
pub struct Covered {
    /// Readable (and executable) below these.
    pub read: Vec<PathBuf>,
    /// Writable below these.
    pub write: Vec<PathBuf>,
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
}

/// One learned grant and the uses it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// What is granted.
    pub path: PathBuf,
    /// The used paths it was learned from.
    pub from: BTreeSet<PathBuf>,
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
}

/// Directories too broad to grant on the strength of a few uses below
/// them, besides the root, top-level directories and the user's home.
const BROAD: [&str; 6] = [
    "/var/tmp",
    "/var/lib",
    "/var/cache",
    "/usr/local",
    "/usr/share",
    "/run/user",
];

fn too_broad(dir: &Path, home: Option<&Path>) -> bool {
    dir.components().count() < 3
        || home.is_some_and(|h| dir == h)
        || BROAD.iter().any(|b| dir == Path::new(b))
}

/// The grants that cover every use in `files` that `covered` does not;
/// `home` is the user's own home directory, never granted whole.
pub fn collapse(files: &BTreeMap<PathBuf, Use>, covered: &Covered, home: Option<&Path>) -> Grants {
    let mut write: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    let mut written_files: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for (p, u) in files {
        if !(u.write || u.change) || covered.writes(p) {
            continue;
        }
        if u.change || u.dir {
            write.entry(p.clone()).or_default().insert(p.clone());
        } else {
            written_files
                .entry(parent(p))
                .or_default()
                .insert(p.clone());
        }
    }
    group_files(&mut write, written_files, 2, home);
    merge_siblings(&mut write, home);
    let mut read: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    let mut read_files: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    let under_write = |p: &Path| write.keys().any(|w| p.starts_with(w));
    let mut unlisted = Vec::new();
    for (p, u) in files {
        if !u.read || covered.reads(p) || under_write(p) {
            continue;
        }
        if u.dir && too_broad(p, home) {
            unlisted.push(p.clone());
            continue;
        }
        if u.dir {
            read.entry(p.clone()).or_default().insert(p.clone());
        } else {
            read_files.entry(parent(p)).or_default().insert(p.clone());
        }
    }
    group_files(&mut read, read_files, 3, home);
    merge_siblings(&mut read, home);
    Grants {
        read: rules(read),
        write: rules(write),
        unlisted,
    }
}

fn parent(p: &Path) -> PathBuf {
    p.parent().unwrap_or(Path::new("/")).to_path_buf()
}

/// Files in one directory: the directory when there are `at_least` of
/// them or it is granted already, else each file.
fn group_files(
    grants: &mut BTreeMap<PathBuf, BTreeSet<PathBuf>>,
    by_dir: BTreeMap<PathBuf, BTreeSet<PathBuf>>,
    at_least: usize,
    home: Option<&Path>,
) {
    for (dir, used) in by_dir {
        let whole = grants.contains_key(&dir) || (used.len() >= at_least && !too_broad(&dir, home));
        if whole {
            grants.entry(dir).or_default().extend(used);
        } else {
            for f in used {
                grants.entry(f.clone()).or_default().insert(f);
            }
        }
    }
}

/// Three or more grants under one directory that is not too broad become
/// that directory; then no grant lies below another.
fn merge_siblings(grants: &mut BTreeMap<PathBuf, BTreeSet<PathBuf>>, home: Option<&Path>) {
    loop {
        let mut children: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
        for p in grants.keys() {
            if let Some(q) = p.parent() {
                children.entry(q.to_path_buf()).or_default().push(p.clone());
            }
        }
        let Some((dir, kids)) = children
            .into_iter()
            .find(|(q, kids)| kids.len() >= 3 && !too_broad(q, home))
        else {
            break;
        };
        let mut from = BTreeSet::new();
        for k in kids {
            from.extend(grants.remove(&k).unwrap_or_default());
        }
        grants.entry(dir).or_default().extend(from);
    }
    let paths: Vec<PathBuf> = grants.keys().cloned().collect();
    for p in &paths {
        let Some(anc) = paths.iter().find(|a| *a != p && p.starts_with(a)) else {
            continue;
        };
        let from = grants.remove(p).unwrap_or_default();
        if let Some(set) = grants.get_mut(anc) {
            set.extend(from);
        }
    }
}

fn rules(grants: BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Rule> {
    grants
        .into_iter()
        .map(|(path, from)| Rule { path, from })
        .collect()
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

    #[test]
    fn files_collapse_to_their_directories() {
        let home = Path::new("/home/u");
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
            ]),
            &Covered {
                read: vec![PathBuf::from("/usr")],
                write: vec![],
            },
            Some(home),
        );
        assert_eq!(paths(&g.write), ["/work/out"]);
        assert_eq!(
            paths(&g.read),
            ["/data/in", "/home/u/.gitconfig", "/opt/tool/bin/tool"]
        );
        assert_eq!(g.read[0].from.len(), 3);
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
            ]),
            &Covered::default(),
            Some(Path::new("/home/u")),
        );
        assert_eq!(
            paths(&g.write),
            [
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
            },
            None,
        );
        assert_eq!(paths(&g.write), ["/r/d"]);
        assert!(g.read.is_empty());
    }

    fn arb_path() -> impl Strategy<Value = PathBuf> {
        prop::collection::vec(
            prop::sample::select(vec!["a", "b", "c", "d", "home", "u"]),
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
        /// learned grant of the right kind, and no grant is below another.
        #[test]
        fn every_use_is_covered(
            list in prop::collection::vec((arb_path(), arb_access(), any::<bool>()), 0..40),
            cov in prop::collection::vec((arb_path(), any::<bool>()), 0..3),
        ) {
            let mut files: BTreeMap<PathBuf, Use> = BTreeMap::new();
            for (p, a, d) in &list {
                files.entry(p.clone()).or_default().add(*a, *d);
            }
            let mut covered = Covered::default();
            for (p, w) in cov {
                if w { covered.write.push(p) } else { covered.read.push(p) }
            }
            let g = collapse(&files, &covered, Some(Path::new("/home/u")));
            let in_rules = |rules: &[Rule], p: &Path| rules.iter().any(|r| p.starts_with(&r.path));
            for (p, u) in &files {
                if g.unlisted.contains(p) {
                    prop_assert!(u.dir && too_broad(p, Some(Path::new("/home/u"))));
                    continue;
                }
                if u.write || u.change {
                    prop_assert!(covered.writes(p) || in_rules(&g.write, p), "write {p:?}: {g:?}");
                }
                if u.read {
                    prop_assert!(
                        covered.reads(p) || in_rules(&g.read, p) || in_rules(&g.write, p),
                        "read {p:?}: {g:?}"
                    );
                }
            }
            for rules in [&g.read, &g.write] {
                for a in rules.iter() {
                    for b in rules.iter() {
                        prop_assert!(a == b || !b.path.starts_with(&a.path), "{a:?} above {b:?}");
                    }
                }
            }
        }
    }
}
