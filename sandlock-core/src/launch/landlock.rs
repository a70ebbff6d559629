//! The Landlock ruleset: built in the supervisor before fork, enforced by
//! the child with `restrict_self` just before exec.

use std::ffi::{CString, OsStr};
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use landlock::{
    Access, AccessFs, AccessNet, CompatLevel, Compatible, Ruleset, RulesetAttr, Scope, ABI,
};

use super::etc::{EtcPlan, EtcWalk};
use crate::policy::{FsPolicy, SYSTEM_READ_DIRS, SYSTEM_RW_DEVICES};
use crate::{Error, Result};

/// The Landlock ABI version this kernel offers (0: Landlock unavailable).
pub fn abi_version() -> i32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: a NULL attr with size 0 and the VERSION flag only queries.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if r < 0 {
        0
    } else {
        r as i32
    }
}

fn abi_of(v: i32) -> ABI {
    match v {
        1 => ABI::V1,
        2 => ABI::V2,
        3 => ABI::V3,
        4 => ABI::V4,
        5 => ABI::V5,
        _ => ABI::V6,
    }
}

/// Paths the ruleset grants, split by access, after expanding the system
/// view.
#[derive(Debug, Default)]
pub struct Grants {
    /// Read + execute.
    pub read: Vec<PathBuf>,
    /// Read + write + execute.
    pub write: Vec<PathBuf>,
    /// Read + execute, entry by entry, for directories of `/etc` holding a
    /// secret, however deep: (directory, entries that are not secrets and
    /// hold none). Complete once [`Grants::settle`] has returned.
    pub read_entries: Vec<(PathBuf, Vec<Entry>)>,
    /// On an image's ground: the rules' opens refuse symlinks too, so a
    /// path checked here cannot be swapped for one before its rule is
    /// made (a running workload, for a later `exec`'s supervisor).
    pub no_symlinks: bool,
    /// The walk of `/etc` still under way, if one is.
    etc: Option<EtcWalk>,
}

impl Grants {
    /// Waits for the walk of `/etc`, if one is under way, and takes its
    /// result in. Its cost (one listing per directory and a stat per file
    /// of `/etc`, about 1.5 ms on these machines) is thus spent while the
    /// rest of the sandbox is prepared and the workload starts. Returns
    /// `/etc` when this call found it may be granted whole (added to
    /// `read`), for a caller whose rules for `read` are made already.
    pub fn settle(&mut self) -> Result<Option<PathBuf>> {
        let Some(walk) = self.etc.take() else {
            return Ok(None);
        };
        let (whole, entries) = walk.join()?;
        self.read_entries = entries;
        let etc = PathBuf::from("/etc");
        if whole {
            self.read.push(etc.clone());
        }
        Ok(whole.then_some(etc))
    }

    /// Every path the workload may read below (the private temp dir
    /// aside): read and write roots, and each entry granted on its own.
    pub fn readable_roots(&mut self) -> Result<Vec<PathBuf>> {
        self.settle()?;
        let entries = self
            .read_entries
            .iter()
            .flat_map(|(dir, es)| es.iter().map(move |e| dir.join(&e.name)));
        Ok(self
            .read
            .iter()
            .chain(&self.write)
            .cloned()
            .chain(entries)
            .collect())
    }

    /// True when the entry-by-entry grants are numerous enough to be worth
    /// sharing between threads.
    pub fn many_rules(&self) -> bool {
        self.read_entries
            .iter()
            .map(|(_, e)| e.len())
            .sum::<usize>()
            > 32
    }
}

/// One directory entry granted on its own.
#[derive(Debug)]
pub struct Entry {
    pub(super) name: std::ffi::OsString,
    pub(super) is_dir: bool,
}

/// Expands the policy into concrete paths (the private temp dir is added
/// separately). User paths must exist; system paths that do not exist on
/// this machine are skipped. `/etc` is granted as `etc` says
/// ([`EtcPlan::start`], made first thing in a run); without a plan it is
/// not granted at all.
///
/// On a container image's ground (`image`, see [`crate::Ground`]) no grant
/// may reach through a symlink, since the image placed it (`/lib32 -> /`
/// would grant the whole filesystem, volumes included): a user path that
/// goes through one is refused, and a system directory that is one is
/// left out (the usr merge's `/lib -> usr/lib` is granted as part of
/// `/usr`).
pub fn grants(policy: &FsPolicy, image: bool, mut etc: Option<EtcPlan>) -> Result<Grants> {
    let mut g = Grants {
        no_symlinks: image,
        ..Grants::default()
    };
    if policy.system_view {
        for dir in SYSTEM_READ_DIRS {
            if image && through_symlink(Path::new(dir)) {
                continue;
            }
            if *dir == "/etc" {
                match etc.take().map(EtcPlan::walk) {
                    Some(Some(walk)) => g.etc = Some(walk),
                    Some(None) if Path::new(dir).exists() => g.read.push(PathBuf::from(dir)),
                    _ => {}
                }
            } else if Path::new(dir).exists() {
                g.read.push(PathBuf::from(dir));
            }
        }
        for dev in SYSTEM_RW_DEVICES {
            if Path::new(dev).exists() {
                g.write.push(PathBuf::from(dev));
            }
        }
    }
    for (flag, list, out) in [
        ("--fs-read", &policy.read, &mut g.read),
        ("--fs-write", &policy.write, &mut g.write),
    ] {
        for p in list {
            if let Err(e) = fs::metadata(p) {
                return Err(Error::invalid(
                    flag,
                    &p.display().to_string(),
                    e.to_string(),
                ));
            }
            if image && through_symlink(p) {
                return Err(Error::invalid(
                    flag,
                    &p.display().to_string(),
                    "goes through a symlink of the container's image; name the path it leads to",
                ));
            }
            out.push(p.clone());
        }
    }
    if let Some(home) = &policy.home {
        if image && through_symlink(home) {
            return Err(Error::invalid(
                "--home",
                &home.display().to_string(),
                "goes through a symlink of the container's image; name the path it leads to",
            ));
        }
        match fs::metadata(home) {
            Ok(m) if m.is_dir() => g.write.push(home.clone()),
            Ok(_) => {
                return Err(Error::invalid(
                    "--home",
                    &home.display().to_string(),
                    "not a directory",
                ))
            }
            Err(e) => {
                return Err(Error::invalid(
                    "--home",
                    &home.display().to_string(),
                    e.to_string(),
                ))
            }
        }
    }
    Ok(g)
}

/// Does resolving `p` meet a symlink (its last component included)?
pub(super) fn through_symlink(p: &Path) -> bool {
    matches!(open_path(None, p.as_os_str().as_bytes(), true),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP))
}

/// A Landlock ruleset under construction, as its fd. The `landlock`
/// crate creates it (ABI negotiation, handled rights, scopes); rules are
/// added with the raw syscall so the hot loop over `/etc` costs one
/// relative open and one add per entry, with the entry type taken from
/// the directory listing instead of an extra stat.
pub struct LandlockRuleset {
    fd: OwnedFd,
    version: i32,
    read: u64,
    write: u64,
    read_dir: u64,
    file_mask: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

const LANDLOCK_RULE_PATH_BENEATH: libc::c_int = 1;

/// Adds a path-beneath rule granting `access` below the directory or file
/// `parent` to `ruleset`: one raw syscall, no allocation (the workload
/// adds its /proc's rule with it after the fork).
pub(super) fn add_rule(ruleset: RawFd, parent: RawFd, access: u64) -> io::Result<()> {
    let attr = PathBeneathAttr {
        allowed_access: access,
        parent_fd: parent,
    };
    // SAFETY: `attr` is a valid landlock_path_beneath_attr for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset,
            LANDLOCK_RULE_PATH_BENEATH,
            &attr as *const PathBeneathAttr,
            0,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// In the workload, after the fork: grants `access` below `path`, opened
/// `O_PATH` with `flags`, in `ruleset`; the errno on failure. For what
/// only a process of the workload's namespaces can name (its /proc, its
/// bound `/etc/hosts`). Raw syscalls only, no allocation.
pub(super) fn grant_path(
    ruleset: RawFd,
    path: &std::ffi::CStr,
    flags: libc::c_int,
    access: u64,
) -> Result<(), i32> {
    // SAFETY: a C string that outlives the call; the fd is closed below.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC | flags) };
    if fd < 0 {
        return Err(super::errno());
    }
    let r = add_rule(ruleset, fd, access);
    // SAFETY: closing the fd opened above.
    unsafe { libc::close(fd) };
    r.map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
}

impl LandlockRuleset {
    /// Creates the ruleset. Refuses to go on when the kernel has no
    /// Landlock: sandlock never runs a workload unconfined.
    pub fn create() -> Result<LandlockRuleset> {
        let version = abi_version();
        if version < 1 {
            return Err(Error::Unsupported(
                "Landlock is not enabled in this kernel (need Linux >= 5.13 with CONFIG_SECURITY_LANDLOCK \
                 and 'landlock' in the lsm= list); refusing to run unconfined"
                    .into(),
            ));
        }
        let abi = abi_of(version);
        let map = |e: landlock::RulesetError| {
            Error::setup("landlock ruleset", io::Error::other(e.to_string()))
        };
        let mut ruleset = Ruleset::default()
            .set_compatibility(CompatLevel::BestEffort)
            .handle_access(AccessFs::from_all(abi))
            .map_err(map)?;
        if version >= 4 {
            // TCP bind and connect are handled with no rule at all: the
            // workload can never bind or connect a TCP socket itself. Every
            // one it asks for is performed by the supervisor (which Landlock
            // does not confine), so a socket or address swapped in after the
            // supervisor's check meets the kernel's refusal.
            ruleset = ruleset
                .handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)
                .map_err(map)?;
        }
        if version >= 6 {
            // Signals and abstract unix sockets may not cross the sandbox's
            // boundary: the workload can neither kill its supervisor nor
            // reach a host service listening on an abstract socket.
            ruleset = ruleset
                .scope(Scope::Signal | Scope::AbstractUnixSocket)
                .map_err(map)?;
        }
        let created = ruleset.create().map_err(map)?;
        let fd: Option<OwnedFd> = created.into();
        let fd =
            fd.ok_or_else(|| Error::Unsupported("Landlock ruleset could not be created".into()))?;
        Ok(LandlockRuleset {
            fd,
            version,
            read: AccessFs::from_read(abi).bits(),
            write: AccessFs::from_all(abi).bits(),
            read_dir: landlock::BitFlags::<AccessFs>::from(AccessFs::ReadDir).bits(),
            file_mask: AccessFs::from_file(abi).bits(),
        })
    }

    fn add(&self, parent: &OwnedFd, access: u64) -> io::Result<()> {
        add_rule(self.fd.as_raw_fd(), parent.as_raw_fd(), access)
    }

    fn access(&self, write: bool, is_dir: bool) -> u64 {
        let a = if write { self.write } else { self.read };
        if is_dir {
            a
        } else {
            a & self.file_mask
        }
    }

    /// Grants `path` and everything below it.
    pub fn allow(&self, path: &Path, write: bool) -> io::Result<()> {
        self.allow_path(path, write, false)
    }

    /// [`LandlockRuleset::allow`], refusing a symlink anywhere in `path`
    /// when `no_symlinks`.
    pub fn allow_path(&self, path: &Path, write: bool, no_symlinks: bool) -> io::Result<()> {
        let parent = open_path(None, path.as_os_str().as_bytes(), no_symlinks)?;
        let st = crate::sys::fstat(std::os::fd::AsFd::as_fd(&parent))?;
        self.add(
            &parent,
            self.access(write, st.st_mode & libc::S_IFMT == libc::S_IFDIR),
        )
    }

    /// Grants (read) every `parts`-th listed entry of each directory,
    /// starting at `part`, so threads can share the work on one ruleset.
    pub fn allow_entries(
        &self,
        dirs: &[(PathBuf, Vec<Entry>)],
        part: usize,
        parts: usize,
        no_symlinks: bool,
    ) -> io::Result<()> {
        for (dir, entries) in dirs {
            let dirfd = match open_path(None, dir.as_os_str().as_bytes(), no_symlinks) {
                Ok(fd) => fd,
                // Removed since the walk (with everything below it):
                // nothing left to grant, and nothing is granted.
                Err(err) if err.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(err) => return Err(err),
            };
            for e in entries.iter().skip(part).step_by(parts) {
                match open_path(Some(&dirfd), e.name.as_bytes(), no_symlinks) {
                    Ok(fd) => self.add(&fd, self.access(false, e.is_dir))?,
                    // Removed since the listing: nothing to grant.
                    Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {}
                    Err(err) => return Err(err),
                }
            }
        }
        Ok(())
    }

    /// Applies share `part` of `parts` of the entry-by-entry grants.
    pub fn allow_entries_part(&self, g: &Grants, part: usize, parts: usize) -> Result<()> {
        self.allow_entries(&g.read_entries, part, parts, g.no_symlinks)
            .map_err(|e| Error::setup("landlock rules for /etc", e))
    }

    /// Applies the grants of `g.read` and `g.write`: not the
    /// entry-by-entry ones (see [`LandlockRuleset::allow_entries_part`]
    /// and [`LandlockRuleset::allow_listings`]).
    pub fn allow_paths(&self, g: &Grants) -> Result<()> {
        for (list, write) in [(&g.read, false), (&g.write, true)] {
            for p in list {
                self.allow_path(p, write, g.no_symlinks)
                    .map_err(|e| Error::setup(format!("landlock rule for {}", p.display()), e))?;
            }
        }
        Ok(())
    }

    /// Grants listing each directory `g` grants entry by entry.
    pub fn allow_listings(&self, g: &Grants) -> Result<()> {
        // Listing is granted on every directory walked entry by entry, so
        // `ls /etc` and dirfd-relative opens work; file contents below stay
        // governed by the per-entry rules (names of secrets are visible,
        // their contents are not).
        for (dir, _) in &g.read_entries {
            let ctx = |e| Error::setup(format!("landlock rule for {}", dir.display()), e);
            let fd = match open_path(None, dir.as_os_str().as_bytes(), g.no_symlinks) {
                Ok(fd) => fd,
                // Removed since the walk: see `allow_entries`.
                Err(err) if err.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(err) => return Err(ctx(err)),
            };
            self.add(&fd, self.read_dir).map_err(ctx)?;
        }
        Ok(())
    }

    /// The access the workload's own /proc gets: read files and list
    /// directories, nothing else (no execute: `/proc/self/exe` runs the
    /// binary it names, checked on that path).
    pub fn proc_access(&self) -> u64 {
        landlock::BitFlags::<AccessFs>::from(AccessFs::ReadFile).bits() | self.read_dir
    }

    /// True when Landlock checks truncation (ABI 3).
    pub fn checks_truncate(&self) -> bool {
        self.version >= 3
    }

    /// True when signals and abstract unix sockets are scoped to the
    /// sandbox (Landlock ABI 6).
    pub fn scoped(&self) -> bool {
        self.version >= 6
    }

    /// Another fd for the same ruleset, for `landlock_restrict_self` in
    /// the child: rules added through this one after the fork are seen
    /// through that one (the ruleset is one kernel object).
    pub fn share(&self) -> io::Result<OwnedFd> {
        self.fd.try_clone()
    }
}

/// Puts the calling thread (and every process or thread it starts from
/// now on) in a Landlock domain that restricts nothing but abstract unix
/// sockets (ABI 6): it can no longer reach one made outside the domain.
/// The workload, started from this thread, nests its own domain inside,
/// so this thread reaches the workload's abstract sockets and no host's.
/// Other threads of the process are untouched.
pub fn scope_abstract_unix() -> io::Result<()> {
    #[repr(C)]
    struct Attr {
        handled_access_fs: u64,
        handled_access_net: u64,
        scoped: u64,
    }
    const LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1;
    const LANDLOCK_ACCESS_FS_REFER: u64 = 1 << 13;
    // Every ruleset denies moving a file to another directory (REFER)
    // unless a rule grants it, even one that handles no file access: the
    // layer handles REFER and grants it on "/", or the workload (nested
    // in this layer) could rename nothing across directories, not even in
    // its own TMPDIR (EXDEV).
    let attr = Attr {
        handled_access_fs: LANDLOCK_ACCESS_FS_REFER,
        handled_access_net: 0,
        scoped: LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET,
    };
    // SAFETY: `attr` is a valid landlock_ruleset_attr of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const Attr,
            std::mem::size_of::<Attr>(),
            0u32,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this fd; we own it from here on.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let root = open_path(None, b"/", false)?;
    add_rule(fd.as_raw_fd(), root.as_raw_fd(), LANDLOCK_ACCESS_FS_REFER)?;
    // Per thread: required to restrict without CAP_SYS_ADMIN, and this
    // thread never executes anything.
    // SAFETY: integer prctl.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: integer syscall on the ruleset fd we own.
    if unsafe { libc::syscall(libc::SYS_landlock_restrict_self, fd.as_raw_fd(), 0u32) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// O_PATH open of `name`, relative to `dir` when given; never follows a
/// final symlink when relative (entries of /etc), follows when absolute
/// (a user's grant may name a symlink to what they mean) unless
/// `no_symlinks`, which refuses any symlink on the way (ELOOP).
fn open_path(dir: Option<&OwnedFd>, name: &[u8], no_symlinks: bool) -> io::Result<OwnedFd> {
    let c = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    match (dir, no_symlinks) {
        (Some(d), _) => crate::sys::open_path(d.as_raw_fd(), &c, libc::O_NOFOLLOW),
        (None, false) => crate::sys::open_path(libc::AT_FDCWD, &c, 0),
        (None, true) => {
            crate::sys::open_no_symlinks(Path::new(OsStr::from_bytes(name)), libc::O_PATH, 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn make(root: &Path, rel: &str, mode: u32, dir: bool) {
        let p = root.join(rel);
        if dir {
            fs::create_dir(&p).unwrap();
        } else {
            fs::write(&p, "x").unwrap();
        }
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn names(out: &[(PathBuf, Vec<Entry>)], dir: &Path) -> Option<Vec<String>> {
        let (_, es) = out.iter().find(|(d, _)| d == dir)?;
        let mut v: Vec<String> = es
            .iter()
            .map(|e| e.name.to_string_lossy().into_owned())
            .collect();
        v.sort();
        Some(v)
    }

    #[test]
    fn the_walk_leaves_out_what_the_world_may_not_open() {
        let root = std::env::temp_dir().join(format!("sandlock-walk-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir(&root).unwrap();
        make(&root, "public", 0o644, false);
        make(&root, "secret", 0o600, false);
        make(&root, "group-only", 0o640, false);
        make(&root, "clean", 0o755, true);
        make(&root, "clean/a", 0o644, false);
        make(&root, "closed", 0o755, true);
        make(&root, "closed/inner", 0o644, false);
        make(&root, "deep", 0o755, true);
        make(&root, "deep/deeper", 0o755, true);
        make(&root, "deep/deeper/key", 0o600, false);
        make(&root, "deep/deeper/conf", 0o644, false);
        make(&root, "deep/sibling", 0o644, false);
        make(&root, "searchable-only", 0o711, true);
        std::os::unix::fs::symlink("/nonexistent", root.join("link")).unwrap();
        fs::set_permissions(root.join("closed"), fs::Permissions::from_mode(0o700)).unwrap();

        let mut out = Vec::new();
        let whole = super::super::etc::walk(&root, &mut out);
        let _ = fs::set_permissions(root.join("closed"), fs::Permissions::from_mode(0o755));
        let _ = fs::remove_dir_all(&root);

        assert!(!whole);
        // granted whole: clean directories, world-readable files; never the
        // secret, the group-only file, the closed directory or the symlink
        assert_eq!(
            names(&out, &root).unwrap(),
            ["clean", "public", "searchable-only"]
        );
        assert_eq!(names(&out, &root.join("deep")).unwrap(), ["sibling"]);
        assert_eq!(names(&out, &root.join("deep/deeper")).unwrap(), ["conf"]);
        assert_eq!(out.len(), 3, "only the directories holding a secret");
    }

    #[test]
    fn a_clean_tree_is_one_grant() {
        let root = std::env::temp_dir().join(format!("sandlock-walk-clean-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir(&root).unwrap();
        make(&root, "a", 0o644, false);
        make(&root, "d", 0o755, true);
        make(&root, "d/b", 0o444, false);
        let mut out = Vec::new();
        let whole = super::super::etc::walk(&root, &mut out);
        let _ = fs::remove_dir_all(&root);
        assert!(whole && out.is_empty());
    }

    /// A directory walked entry by entry and removed before the rules
    /// are added (a package manager's temporary directory in /etc) has
    /// nothing left to grant: the sandbox starts, and nothing of it is
    /// granted.
    #[test]
    fn a_directory_gone_since_the_walk_is_skipped() {
        let root = std::env::temp_dir().join(format!("sandlock-walk-gone-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir(&root).unwrap();
        make(&root, "keep", 0o755, true);
        make(&root, "keep/a", 0o644, false);
        make(&root, "keep/key", 0o600, false);
        make(&root, "gone", 0o755, true);
        make(&root, "gone/b", 0o644, false);
        make(&root, "gone/key", 0o600, false);
        let mut out = Vec::new();
        assert!(!super::super::etc::walk(&root, &mut out));
        fs::remove_dir_all(root.join("gone")).unwrap();
        let Ok(rs) = LandlockRuleset::create() else {
            let _ = fs::remove_dir_all(&root);
            return; // no Landlock here: the walk was still checked above
        };
        assert!(names(&out, &root.join("gone")).is_some(), "it was walked");
        let got = rs.allow_entries(&out, 0, 1, false);
        let g = Grants {
            read_entries: out,
            ..Grants::default()
        };
        let listings = rs.allow_listings(&g);
        let _ = fs::remove_dir_all(&root);
        got.expect("entries of a removed directory are skipped");
        listings.expect("listing of a removed directory is skipped");
    }
}
