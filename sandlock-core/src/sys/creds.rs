//! Acting with the workload's rights: the calling thread's effective
//! capabilities put aside for the length of one action.
//!
//! The workload runs with sandlock's uid, gids and groups, and with no
//! capabilities (unless `--keep-caps`). An action the supervisor performs
//! on its behalf (a chmod under a write grant, a connect to a socket file)
//! must meet the kernel's permission checks exactly as the workload's own
//! call would: a supervisor started as root must not lend it
//! CAP_DAC_OVERRIDE, CAP_FOWNER or CAP_CHOWN. Capabilities are per thread,
//! so clearing the effective set of the calling thread affects no other
//! thread; the permitted set is kept, so the set can be restored.
//!
//! Must never change uids or gids, never touch the permitted or bounding
//! sets, and never leave a thread's effective set cleared after the guard
//! is gone.

use std::io;

#[repr(C)]
#[derive(Clone, Copy)]
struct Header {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

fn header() -> Header {
    // pid 0: the calling thread.
    Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    }
}

fn capget() -> io::Result<[Data; 2]> {
    let mut h = header();
    let mut d = [Data::default(); 2];
    // SAFETY: `h` and `d` are valid for the kernel's version-3 layout
    // (one header, two data words).
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut h as *mut Header, d.as_mut_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(d)
}

fn capset(d: &[Data; 2]) -> io::Result<()> {
    let h = header();
    // SAFETY: as in `capget`; the kernel only reads both structures.
    let r = unsafe { libc::syscall(libc::SYS_capset, &h as *const Header, d.as_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// CAP_SYS_ADMIN, the capability behind mount and namespace creation.
const CAP_SYS_ADMIN: u32 = 21;

/// True when the calling thread may mount and make pid and mount
/// namespaces without a user namespace of its own: CAP_SYS_ADMIN is in
/// its effective set. Root on a host has it; root in a container usually
/// does not (runc, podman and Kubernetes drop it), and is then no more
/// able to mount than any other user: sandlock takes the unprivileged
/// path, a user namespace, for it too.
pub fn can_mount() -> bool {
    capget().is_ok_and(|d| d[0].effective & (1 << CAP_SYS_ADMIN) != 0)
}

/// While alive, the calling thread has no effective capabilities. Not
/// `Send`: it must be dropped on the thread that made it.
pub struct WorkloadRights {
    saved: Option<[Data; 2]>,
    _not_send: std::marker::PhantomData<*const ()>,
}

/// Empties the calling thread's effective, permitted and inheritable sets
/// for good. Async-signal-safe (one raw syscall, no allocation): the
/// workload's last steps before exec call it.
pub fn clear_all() -> io::Result<()> {
    capset(&[Data::default(); 2])
}

thread_local! {
    /// The calling thread's own capability sets, read once: only this
    /// module changes them, and it always puts them back.
    static OWN: std::cell::Cell<Option<[Data; 2]>> = const { std::cell::Cell::new(None) };
}

fn own() -> io::Result<[Data; 2]> {
    if let Some(d) = OWN.with(std::cell::Cell::get) {
        return Ok(d);
    }
    let d = capget()?;
    OWN.with(|c| c.set(Some(d)));
    Ok(d)
}

impl WorkloadRights {
    /// Puts the calling thread's effective capabilities aside. With none
    /// to put aside (an unprivileged sandlock) this costs nothing after
    /// the thread's first call.
    pub fn enter() -> io::Result<WorkloadRights> {
        let saved = own()?;
        if saved[0].effective == 0 && saved[1].effective == 0 {
            return Ok(WorkloadRights {
                saved: None,
                _not_send: std::marker::PhantomData,
            });
        }
        let mut cleared = saved;
        cleared[0].effective = 0;
        cleared[1].effective = 0;
        capset(&cleared)?;
        Ok(WorkloadRights {
            saved: Some(saved),
            _not_send: std::marker::PhantomData,
        })
    }

    /// Runs `f` with the workload's rights when `as_workload` holds (the
    /// workload has no capabilities), else with the supervisor's own. A
    /// thread whose capabilities cannot be put aside does not act at all:
    /// the error is returned instead of running `f` with more rights than
    /// the workload has.
    pub fn run<T>(as_workload: bool, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        if !as_workload {
            return f();
        }
        let _rights = WorkloadRights::enter()?;
        f()
    }
}

impl Drop for WorkloadRights {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            // Raising the effective set within the kept permitted set
            // cannot fail for a thread that had it a moment ago.
            let _ = capset(saved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_set_comes_back() {
        let before = capget().expect("capget");
        {
            let _r = WorkloadRights::enter().expect("enter");
            let inside = capget().expect("capget");
            assert_eq!((inside[0].effective, inside[1].effective), (0, 0));
            assert_eq!(inside[0].permitted, before[0].permitted);
        }
        let after = capget().expect("capget");
        assert_eq!(after[0].effective, before[0].effective);
        assert_eq!(after[1].effective, before[1].effective);
    }

    #[test]
    fn root_without_capabilities_cannot_chmod_what_it_does_not_own() {
        // SAFETY: geteuid has no failure mode.
        if unsafe { libc::geteuid() } != 0 {
            return; // only root has a CAP_FOWNER to put aside
        }
        let dir = std::env::temp_dir().join(format!("sandlock-creds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let file = dir.join("f");
        std::fs::write(&file, b"x").expect("write");
        let c = std::ffi::CString::new(file.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: valid C string; integer ids.
        assert_eq!(unsafe { libc::chown(c.as_ptr(), 65534, 65534) }, 0);
        let chmod = || {
            // SAFETY: valid C string.
            if unsafe { libc::chmod(c.as_ptr(), 0o600) } == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        };
        let as_workload = WorkloadRights::run(true, chmod);
        let as_supervisor = WorkloadRights::run(false, chmod);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            as_workload.map_err(|e| e.raw_os_error()),
            Err(Some(libc::EPERM))
        );
        assert!(as_supervisor.is_ok());
    }
}
