//! Processes on the host: reading /proc (memory, liveness, finding a
//! process by its command line), sending signals with kill(1), and a
//! host `sleep` to aim at.

use std::fs;
use std::os::unix::process::CommandExt;
use std::process::Command;

use super::{Ctx, NOBODY};

/// A "NAME: N kB" field of /proc/PID/status, in KiB (None once the
/// process is gone or a zombie, whose memory fields are absent).
pub fn proc_kib(pid: u32, name: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?.strip_prefix(':')?;
        rest.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// Sends signal `sig` (a name such as "TERM" or "KILL") to `pid` with kill(1).
pub fn send_signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -{sig} {pid} failed: {st:?}");
}

/// True if `pid` exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // state is the field after the parenthesised comm
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .unwrap_or("?");
            state != "Z" && state != "X"
        }
        Err(_) => false,
    }
}

/// Host pids of the live processes whose command line is exactly `argv`
/// (a workload in its own pid namespace reports pids the host does not
/// use; tests find its processes by a command line of their own).
pub fn pids_running(argv: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want))
        .filter(|pid| pid_alive(*pid))
        .collect()
}

/// A `sleep` duration no other process on the machine uses, for
/// [`pids_running`].
pub fn unique_sleep(secs: u32) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{secs}.{:09}", nanos.max(1))
}

/// A `sleep` of the host's, as the context's user, with a command line no
/// other process has; killed on drop.
pub struct HostSleep(std::process::Child);

impl HostSleep {
    pub fn start(ctx: &Ctx) -> HostSleep {
        let mut cmd = Command::new("sleep");
        cmd.arg(unique_sleep(30)).stdin(std::process::Stdio::null());
        if ctx.drop_to_nobody {
            cmd.uid(NOBODY).gid(NOBODY);
        }
        HostSleep(cmd.spawn().expect("spawn sleep"))
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for HostSleep {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
