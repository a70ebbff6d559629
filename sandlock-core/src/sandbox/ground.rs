//! What the supervisor takes from the system it runs on.
//!
//! On the user's own machine (the default, [`Ground::Host`]) the system is
//! the user's: names resolve through libc (NSS, with the modules
//! nsswitch.conf names), the upstream's certificates are checked against
//! the system's trust roots (and `SSL_CERT_FILE`), and the workload's
//! environment starts from sandlock's own.
//!
//! The OCI runtime's supervisor runs inside a container's image instead
//! ([`Ground::Image`]), whose files and environment are the image
//! author's, who may be the attacker. There, nothing the supervisor does
//! for itself may depend on them: names resolve from `/etc/hosts` and
//! `/etc/resolv.conf`'s servers over DNS, without libc's NSS (which would
//! load a library the image names); the upstream's certificates are
//! checked against the roots the runtime carried in from the host; and
//! the workload's environment is the one given, while the supervisor's own
//! holds only what it needs; and no filesystem grant reaches through a
//! symlink of the image's (the usr merge's `/lib -> usr/lib` aside).
//!
//! Must never let an image's file or variable choose code the supervisor
//! runs or certificates it trusts.

use std::ffi::OsString;
use std::path::PathBuf;

/// Where the supervisor runs.
#[derive(Debug, Clone, Default)]
pub enum Ground {
    /// The user's own machine: its resolver, roots and environment.
    #[default]
    Host,
    /// A container's image, trusted for nothing.
    Image {
        /// The workload's environment, to start from.
        env: Vec<(OsString, OsString)>,
        /// PEM files of the roots the upstream's certificates are checked
        /// against (with `--upstream-ca`), in place of the system's.
        roots: Vec<PathBuf>,
        /// The runtime's own directories the workload must not see (a
        /// procfs kept so that the workload's own could be mounted),
        /// covered with an empty read-only tmpfs in its mount namespace.
        conceal: Vec<PathBuf>,
    },
}

impl Ground {
    /// Is this an image's ground? Then names are resolved without libc's
    /// NSS, and no grant reaches through a symlink.
    pub(crate) fn is_image(&self) -> bool {
        matches!(self, Ground::Image { .. })
    }

    /// The roots in place of the system's, or `None` for the system's.
    pub(crate) fn roots(&self) -> Option<&[PathBuf]> {
        match self {
            Ground::Host => None,
            Ground::Image { roots, .. } => Some(roots),
        }
    }

    /// The directories to conceal, as C strings for after the fork.
    pub(crate) fn concealed(&self) -> crate::Result<Vec<std::ffi::CString>> {
        let Ground::Image { conceal, .. } = self else {
            return Ok(Vec::new());
        };
        conceal
            .iter()
            .map(|p| {
                std::ffi::CString::new(p.as_os_str().as_encoded_bytes())
                    .map_err(|e| crate::Error::setup("a path to conceal", std::io::Error::other(e)))
            })
            .collect()
    }

    /// The environment the workload's starts from.
    pub(crate) fn environment(&self) -> Vec<(OsString, OsString)> {
        match self {
            Ground::Host => std::env::vars_os().collect(),
            Ground::Image { env, .. } => env.clone(),
        }
    }
}
