//! `sandlock check`: what this kernel supports, probed for real where a
//! probe is cheap (Landlock ABI, seccomp actions) and by version otherwise.

use std::fmt;

/// One capability of the kernel.
#[derive(Debug, Clone)]
pub struct Feature {
    /// Short name.
    pub name: &'static str,
    /// Present?
    pub present: bool,
    /// Needed for sandlock to run at all?
    pub required: bool,
    /// Detail for humans.
    pub detail: String,
}

/// The whole report.
#[derive(Debug, Clone)]
pub struct Report {
    /// Kernel release string.
    pub kernel: String,
    /// Every feature probed.
    pub features: Vec<Feature>,
}

impl Report {
    /// True when every required feature is present.
    pub fn can_run(&self) -> bool {
        self.features.iter().all(|f| f.present || !f.required)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "kernel: {}", self.kernel)?;
        for feat in &self.features {
            let mark = if feat.present {
                "yes"
            } else if feat.required {
                "NO (required)"
            } else {
                "no"
            };
            writeln!(f, "{:<28} {:<14} {}", feat.name, mark, feat.detail)?;
        }
        write!(
            f,
            "sandlock can run here: {}",
            if self.can_run() { "yes" } else { "no" }
        )
    }
}

fn kernel_version() -> (String, (u32, u32)) {
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    let v = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (release, v)
}

fn action_avail(action: u32) -> bool {
    // SAFETY: SECCOMP_GET_ACTION_AVAIL reads one u32 we own.
    unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_ACTION_AVAIL,
            0,
            &action as *const u32,
        ) == 0
    }
}

/// Probes the running kernel.
pub fn probe() -> Report {
    let (kernel, ver) = kernel_version();
    let at_least = |maj: u32, min: u32| ver >= (maj, min);
    let abi = crate::launch::abi_version();
    let notify = action_avail(libc::SECCOMP_RET_USER_NOTIF);
    let features = vec![
        Feature {
            name: "landlock",
            present: abi >= 1,
            required: true,
            detail: if abi >= 1 {
                format!("ABI {abi}")
            } else {
                "not enabled (CONFIG_SECURITY_LANDLOCK, lsm=)".into()
            },
        },
        Feature {
            name: "landlock truncate (ABI 3)",
            present: abi >= 3,
            required: false,
            detail: "without it, files under -r can be truncated".into(),
        },
        Feature {
            name: "landlock scoping (ABI 6)",
            present: abi >= 6,
            required: false,
            detail: "keeps signals and abstract unix sockets inside the sandbox".into(),
        },
        Feature {
            name: "seccomp user notification",
            present: notify,
            required: true,
            detail: "Linux 5.0".into(),
        },
        Feature {
            name: "pidfd_getfd",
            present: at_least(5, 6),
            required: true,
            detail: "Linux 5.6: connect on behalf".into(),
        },
        Feature {
            name: "seccomp ADDFD + SEND",
            present: at_least(5, 14),
            required: true,
            detail: "Linux 5.14: virtual files".into(),
        },
        Feature {
            name: "wait-killable notifications",
            present: at_least(5, 19),
            required: false,
            detail: "Linux 5.19: no replay of actions on signals".into(),
        },
        Feature {
            name: "sync wake-up",
            present: at_least(6, 6),
            required: false,
            detail: "Linux 6.6: fast notification round trips".into(),
        },
    ];
    Report { kernel, features }
}
