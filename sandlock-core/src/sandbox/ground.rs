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
//! holds only what it needs.
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
    },
}

impl Ground {
    /// Are names resolved without libc's NSS?
    pub(crate) fn plain_resolver(&self) -> bool {
        matches!(self, Ground::Image { .. })
    }

    /// The roots in place of the system's, or `None` for the system's.
    pub(crate) fn roots(&self) -> Option<&[PathBuf]> {
        match self {
            Ground::Host => None,
            Ground::Image { roots, .. } => Some(roots),
        }
    }

    /// The environment the workload's starts from.
    pub(crate) fn environment(&self) -> Vec<(OsString, OsString)> {
        match self {
            Ground::Host => std::env::vars_os().collect(),
            Ground::Image { env, .. } => env.clone(),
        }
    }
}
