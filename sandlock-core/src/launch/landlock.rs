//! The Landlock ruleset: built in the supervisor before fork, enforced by
//! the child with `restrict_self` just before exec.

use std::fs;
use std::path::{Path, PathBuf};

use landlock::{
    path_beneath_rules, Access, AccessFs, CompatLevel, Compatible, Ruleset, RulesetAttr, RulesetCreated,
    RulesetCreatedAttr, Scope, ABI,
};

use crate::policy::{fs as fspol, FsPolicy, SYSTEM_READ_DIRS, SYSTEM_RW_DEVICES};
use crate::{Error, Result};

/// The Landlock ABI version this kernel offers (0: Landlock unavailable).
pub fn abi_version() -> i32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: a NULL attr with size 0 and the VERSION flag only queries.
    let r = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<u8>(), 0usize, LANDLOCK_CREATE_RULESET_VERSION) };
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
/// view. Kept so `--show-policy` and tests can see exactly what is granted.
#[derive(Debug, Default)]
pub struct Grants {
    /// Read + execute.
    pub read: Vec<PathBuf>,
    /// Read + write + execute.
    pub write: Vec<PathBuf>,
}

/// Expands the policy into concrete paths. User paths must exist; system
/// paths that do not exist on this machine are skipped.
pub fn grants(policy: &FsPolicy, tmpdir: &Path) -> Result<Grants> {
    let mut g = Grants::default();
    if policy.system_view {
        for dir in SYSTEM_READ_DIRS {
            if *dir == "/etc" {
                walk_etc(Path::new(dir), &mut g.read);
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
    for (flag, list, out) in [("--fs-read", &policy.read, &mut g.read), ("--fs-write", &policy.write, &mut g.write)] {
        for p in list {
            if let Err(e) = fs::metadata(p) {
                return Err(Error::invalid(flag, &p.display().to_string(), e.to_string()));
            }
            out.push(p.clone());
        }
    }
    g.write.push(tmpdir.to_path_buf());
    Ok(g)
}

/// Grants `/etc` entry by entry, descending into directories that hold a
/// secret, so the secrets themselves are never granted.
fn walk_etc(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let path = e.path();
        let Some(s) = path.to_str() else { continue };
        if fspol::is_etc_secret(s) {
            continue;
        }
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && fspol::etc_dir_holds_secret(s) {
            walk_etc(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Creates the ruleset. Refuses to go on when the kernel has no Landlock:
/// sandlock never runs a workload unconfined.
pub fn build(grants: &Grants) -> Result<RulesetCreated> {
    let version = abi_version();
    if version < 1 {
        return Err(Error::Unsupported(
            "Landlock is not enabled in this kernel (need Linux >= 5.13 with CONFIG_SECURITY_LANDLOCK \
             and 'landlock' in the lsm= list); refusing to run unconfined"
                .into(),
        ));
    }
    let abi = abi_of(version);
    let map = |e: landlock::RulesetError| Error::setup("landlock ruleset", std::io::Error::other(e.to_string()));
    let mut ruleset = Ruleset::default().set_compatibility(CompatLevel::BestEffort).handle_access(AccessFs::from_all(abi)).map_err(map)?;
    if version >= 6 {
        // Signals and abstract unix sockets may not cross the sandbox's
        // boundary: the workload can neither kill its supervisor nor reach
        // a host service listening on an abstract socket.
        ruleset = ruleset.scope(Scope::Signal | Scope::AbstractUnixSocket).map_err(map)?;
    }
    let created = ruleset
        .create()
        .map_err(map)?
        .add_rules(path_beneath_rules(&grants.read, AccessFs::from_read(abi)))
        .map_err(map)?
        .add_rules(path_beneath_rules(&grants.write, AccessFs::from_all(abi)))
        .map_err(map)?;
    Ok(created)
}
