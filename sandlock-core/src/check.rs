//! `sandlock check`: what this kernel supports, probed for real. A child
//! process installs a one-rule listener filter and traps one syscall; the
//! check takes the listener with `pidfd_getfd`, sets the sync wake-up
//! flag, and answers with `ADDFD`+`SEND`, exactly the mechanisms a sandbox
//! uses.

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

fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
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

/// What the live probe of the notification mechanisms found.
#[derive(Debug, Default, Clone, Copy)]
struct Live {
    pidfd_getfd: bool,
    wait_killable: bool,
    sync_wake_up: bool,
    addfd_send: bool,
}

/// Runs the live probe (see the module doc). Any failure leaves the
/// remaining fields false.
fn live_probe() -> Live {
    use std::os::fd::{AsFd, AsRawFd};
    let mut live = Live::default();
    let Ok((rd, wr)) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) else {
        return live;
    };
    // A filter that traps getppid on x86_64 and allows everything else.
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    let prog = [
        libc::sock_filter {
            code: 0x20,
            jt: 0,
            jf: 0,
            k: 4,
        }, // ld arch
        libc::sock_filter {
            code: 0x15,
            jt: 0,
            jf: 3,
            k: AUDIT_ARCH_X86_64,
        }, // jne -> allow
        libc::sock_filter {
            code: 0x20,
            jt: 0,
            jf: 0,
            k: 0,
        }, // ld nr
        libc::sock_filter {
            code: 0x15,
            jt: 0,
            jf: 1,
            k: libc::SYS_getppid as u32,
        },
        libc::sock_filter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_USER_NOTIF,
        },
        libc::sock_filter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        },
    ];
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut _,
    };
    // SAFETY: the child only makes async-signal-safe calls and exits.
    let child = match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            // SAFETY: raw syscalls on locals; the child ends in _exit.
            unsafe {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                let base = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
                let mut killable = 1i32;
                let mut fd = crate::sys::seccomp_set_filter(
                    base | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
                    &fprog,
                );
                if fd < 0 {
                    killable = 0;
                    fd = crate::sys::seccomp_set_filter(base, &fprog);
                }
                let msg = [fd as i32, killable];
                libc::write(wr.as_raw_fd(), msg.as_ptr().cast(), 8);
                // Trapped: the answer is an fd installed by ADDFD.
                let got = libc::syscall(libc::SYS_getppid) as i32;
                let ok = fd >= 0
                    && got >= 0
                    && got as i64 != fd
                    && crate::sys::fstatat(got, c"", libc::AT_EMPTY_PATH)
                        .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFCHR);
                libc::_exit(if ok { 0 } else { 1 })
            }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => child,
        Err(_) => return live,
    };
    drop(wr);
    let mut msg = [0u8; 8];
    let got = nix::unistd::read(&rd, &mut msg).unwrap_or(0);
    let fd = i32::from_ne_bytes([msg[0], msg[1], msg[2], msg[3]]);
    live.wait_killable = got == 8 && msg[4] == 1;
    let listener = (got == 8 && fd >= 0)
        .then(|| crate::sys::pidfd_open(child.as_raw()).ok())
        .flatten()
        .and_then(|pidfd| crate::sys::pidfd_getfd(pidfd.as_fd(), fd).ok());
    if let Some(listener) = &listener {
        live.pidfd_getfd = true;
        let lfd = listener.as_raw_fd();
        live.sync_wake_up = crate::sys::notif::set_sync_wake_up(lfd).is_ok();
        let mut pfd = libc::pollfd {
            fd: lfd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd we own; a bounded wait.
        if unsafe { libc::poll(&mut pfd, 1, 2000) } == 1 {
            // SAFETY: plain old data, zeroed as the kernel requires.
            let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
            if crate::sys::notif::recv(lfd, &mut req).is_ok() {
                if let Ok(null) = std::fs::File::open("/dev/null") {
                    let _ = crate::sys::notif::addfd_send(lfd, req.id, null.as_raw_fd(), true);
                }
            }
        }
    }
    if listener.is_none() {
        let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
    }
    let status = nix::sys::wait::waitpid(child, None);
    live.addfd_send = matches!(status, Ok(nix::sys::wait::WaitStatus::Exited(_, 0)));
    live
}

/// The workload's /proc here (see `launch::ns`).
fn proc_feature(view: crate::launch::ns::ProcView) -> Feature {
    use crate::launch::ns::ProcView;
    let (present, detail) = match view {
        ProcView::Own { user: false } => (
            true,
            "pid + mount namespaces: the workload's own processes only".to_string(),
        ),
        ProcView::Own { user: true } => (
            true,
            "user + pid + mount namespaces: the workload's own processes only".to_string(),
        ),
        ProcView::NoProcMount => (
            false,
            "the kernel refused a fresh procfs (a /proc partly covered, as in containers): no /proc"
                .to_string(),
        ),
        ProcView::NoNamespaces(e) => (
            false,
            format!(
                "no pid + mount namespaces ({}): no /proc",
                std::io::Error::from_raw_os_error(e)
            ),
        ),
    };
    Feature {
        name: "private /proc",
        present,
        required: false,
        detail,
    }
}

/// Probes the running kernel.
pub fn probe() -> Report {
    let kernel = kernel_release();
    let abi = crate::launch::abi_version();
    let notify = action_avail(libc::SECCOMP_RET_USER_NOTIF);
    let live = if notify {
        live_probe()
    } else {
        Live::default()
    };
    let proc_view = crate::launch::ns::probe();
    let own_ns = matches!(proc_view, crate::launch::ns::ProcView::Own { .. });
    let mut features = vec![
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
            present: live.pidfd_getfd,
            required: true,
            detail: "Linux 5.6: take the listener, connect on behalf".into(),
        },
        Feature {
            name: "seccomp ADDFD + SEND",
            present: live.addfd_send,
            required: true,
            detail: "Linux 5.14: virtual files".into(),
        },
        Feature {
            name: "wait-killable notifications",
            present: live.wait_killable,
            required: false,
            detail: "Linux 5.19: no replay of actions on signals".into(),
        },
        Feature {
            name: "sync wake-up",
            present: live.sync_wake_up,
            required: false,
            detail: "Linux 6.6: fast notification round trips".into(),
        },
        proc_feature(proc_view),
        match crate::dns::probe() {
            Ok(()) => Feature {
                name: "DNS interceptor namespace",
                present: true,
                required: false,
                detail: "unprivileged user + network namespaces: DNS answered by sandlock".into(),
            },
            Err(e) => Feature {
                name: "DNS interceptor namespace",
                present: false,
                required: false,
                detail: format!("{e}: names resolve only through /etc/hosts"),
            },
        },
    ];
    features.extend(limit_features(own_ns));
    features.push(cow_feature(own_ns));
    Report { kernel, features }
}

/// What `--cow` needs here: the sandbox's own mount namespace and
/// overlayfs (mountable there by an ordinary user since Linux 5.11).
fn cow_feature(own_ns: bool) -> Feature {
    let overlay = std::fs::read_to_string("/proc/filesystems").is_ok_and(|f| {
        f.lines()
            .any(|l| l.split_whitespace().last() == Some("overlay"))
    });
    let (present, detail) = match (own_ns, overlay) {
        (true, true) => (
            true,
            "overlayfs in the sandbox's mount namespace (Linux 5.11 for an ordinary user)".into(),
        ),
        (false, _) => (
            false,
            "needs the sandbox's own mount namespace, which the kernel refused".into(),
        ),
        (true, false) => (
            false,
            "overlayfs is not loaded (modprobe overlay); runs with --cow may fail".into(),
        ),
    };
    Feature {
        name: "--cow",
        present,
        required: false,
        detail,
    }
}

/// One line per resource limit: what would enforce it here.
fn limit_features(own_ns: bool) -> impl Iterator<Item = Feature> {
    let host = crate::limits::Host::detect();
    crate::limits::survey(&host, own_ns)
        .into_iter()
        .map(|(limit, found)| {
            let (present, detail) = match found {
                Ok(m) => (true, m.describe(limit)),
                Err(why) => (false, why),
            };
            Feature {
                name: limit.flag(),
                present,
                required: false,
                detail,
            }
        })
}
