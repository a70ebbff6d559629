//! Filesystem grants and the minimal system view.

use std::path::PathBuf;

/// Directories every policy may read and execute, unless
/// `--no-system-view`. Missing ones are skipped.
pub const SYSTEM_READ_DIRS: &[&str] = &[
    "/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin", "/etc",
];

/// Devices every policy may read and write, when present.
pub const SYSTEM_RW_DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/urandom",
    "/dev/random",
    "/dev/tty",
];

/// Entries of `/etc` that the system view never grants, even when sandlock
/// runs as root, whatever their mode (a `shadow` left world-readable by
/// mistake stays out). Besides these, the walk of `/etc` leaves out every
/// entry that is not world-readable (a directory: not world-searchable).
/// Patterns are matched per directory entry; a `*` splits a prefix from a
/// suffix.
pub const ETC_SECRETS: &[&str] = &[
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/ssh/ssh_host_*_key",
    "/etc/ssl/private",
    "/etc/security/opasswd",
    "/etc/krb5.keytab",
];

/// Filesystem part of a policy.
#[derive(Debug, Clone)]
pub struct FsPolicy {
    /// Read + execute grants (`-r`).
    pub read: Vec<PathBuf>,
    /// Read + write + execute grants (`-w`).
    pub write: Vec<PathBuf>,
    /// Start from the minimal system view (default true).
    pub system_view: bool,
    /// The workload's HOME (`--home`), granted read-write; `None`: a fresh
    /// private directory, removed on exit.
    pub home: Option<PathBuf>,
}

impl Default for FsPolicy {
    fn default() -> Self {
        FsPolicy {
            read: Vec::new(),
            write: Vec::new(),
            system_view: true,
            home: None,
        }
    }
}

impl FsPolicy {
    /// True when the workload gets a /proc of its own (pid and mount
    /// namespaces of its own): with the system view, unless a grant
    /// reaches the host's `/proc` (`-r /proc`, `-r /`), whose pids must
    /// then be the workload's too.
    pub fn own_proc(&self) -> bool {
        let proc = std::path::Path::new("/proc");
        self.system_view
            && !self
                .read
                .iter()
                .chain(&self.write)
                .any(|g| proc.starts_with(g) || g.starts_with(proc))
    }
}

/// True when `path` (a child of a directory the system view walks) is one
/// of [`ETC_SECRETS`].
pub(crate) fn is_etc_secret(path: &str) -> bool {
    ETC_SECRETS.iter().any(|pat| match pat.split_once('*') {
        None => path == *pat,
        Some((pre, suf)) => {
            path.len() >= pre.len() + suf.len() && path.starts_with(pre) && path.ends_with(suf)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_recognised() {
        for p in [
            "/etc/shadow",
            "/etc/gshadow",
            "/etc/sudoers",
            "/etc/sudoers.d",
            "/etc/ssh/ssh_host_ed25519_key",
            "/etc/ssl/private",
        ] {
            assert!(is_etc_secret(p), "{p}");
        }
        for p in [
            "/etc/passwd",
            "/etc/ssh/ssh_host_ed25519_key.pub",
            "/etc/ssh/ssh_config",
            "/etc/ssl/certs",
        ] {
            assert!(!is_etc_secret(p), "{p}");
        }
    }
}
