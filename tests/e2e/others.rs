//! What reaches past the sandbox without a file or an address: other
//! processes by pid (rlimits, scheduling), System V IPC, and the options
//! that route a packet somewhere its destination address does not say
//! (IPv4 source routes, IPv6 routing headers, as socket options or
//! control messages), netlink multicast, and zero-copy sends the
//! supervisor makes. Every attack has its twin.

use crate::common::*;
use std::process::Command;

/// A host process's "Max open files" line and its nice value.
fn limits_and_nice(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_string();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit_once(')').unwrap().1;
    (
        nofile,
        after.split_whitespace().nth(16).unwrap().to_string(),
    )
}

both!(host_processes_are_out_of_reach_by_pid, |ctx| {
    let host = HostSleep::start(&ctx);
    let before = limits_and_nice(host.pid());
    let pid = host.pid().to_string();
    let ops = vec![
        format!("prlimit,{pid}"),
        format!("renice,{pid}"),
        "niceuser".to_string(),
        "ownprlimit".to_string(),
    ];
    let out = ctx.sl(reach_args(&[], &ops));
    // In a pid namespace of its own the host's pid names nothing (the
    // kernel says so); without one, sandlock refuses it.
    let (errno, denied) = if ctx.own_proc() {
        ("ESRCH", false)
    } else {
        ("EPERM", true)
    };
    out.expect_code(0)
        .expect_err("prlimit", errno)
        .expect_err("renice", errno)
        .expect_err("niceuser", "EPERM")
        // twin: the same call on a process of the sandbox
        .expect_ok("ownprlimit", "");
    assert_eq!(limits_and_nice(host.pid()), before, "{}", out.dump());
    let line = format!("denied prlimit64 pid {pid}");
    assert_eq!(
        out.denial_lines().iter().any(|l| l.contains(&line)),
        denied,
        "{}",
        out.dump()
    );
    // twin: outside sandlock the same uid may renice its own process
    let r = Command::new("renice")
        .args(["-n", "5", "-p", &pid])
        .output()
        .unwrap();
    assert!(r.status.success());
});

/// As root, a workload gets a System V IPC namespace of its own: the
/// host's segments are not there to attach.
#[test]
fn host_sysv_ipc_is_out_of_reach_as_root() {
    if !is_root() {
        return;
    }
    let made = Command::new("ipcmk")
        .args(["-M", "4096", "-p", "0600"])
        .output()
        .unwrap();
    let id = String::from_utf8_lossy(&made.stdout)
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    assert!(made.status.success() && !id.is_empty(), "{made:?}");
    let listed = |out: &str| {
        out.lines()
            .any(|l| l.split_whitespace().nth(1) == Some(&id))
    };
    let out = Ctx::invoker().sl(["run", "--", "ipcs", "-m"]);
    let host = Command::new("ipcs").arg("-m").output().unwrap();
    let _ = Command::new("ipcrm").args(["-m", &id]).status();
    out.expect_code(0);
    assert!(!listed(&out.stdout), "{}", out.dump());
    // twin: the host lists it
    assert!(listed(&String::from_utf8_lossy(&host.stdout)));
}

both!(routing_options_never_reach_past_the_destination, |ctx| {
    let udp = UdpServer::start("127.0.0.1");
    let port = udp.port_s();
    let ops = vec![
        "rthdr".to_string(),
        "ipopts".to_string(),
        format!("cmsgopts,127.0.0.1,{port}"),
        "tclass".to_string(),
        format!("cmsgtos,127.0.0.1,{port}"),
    ];
    let rule = format!("udp://127.0.0.1:{port}");
    let out = ctx.sl(reach_args(&["--net-allow", &rule], &ops));
    out.expect_code(0)
        .expect_err("rthdr", "EPERM")
        .expect_err("ipopts", "EPERM")
        .expect_err("cmsgopts", "EPERM")
        // twins: harmless options and control messages pass
        .expect_ok("tclass", "")
        .expect_ok("cmsgtos", "4");
    assert_eq!(udp.received(), ["cmsg"], "{}", out.dump());
});

both!(netlink_multicast_is_refused_and_requests_pass, |ctx| {
    // No network flag at all: a netlink route socket still exists.
    let out = ctx.sl(reach_args(&[], &["nlgroup".into(), "nlkernel".into()]));
    out.expect_code(0)
        .expect_err("nlgroup", "EPERM")
        // twin: a request to the kernel goes through
        .expect_ok("nlkernel", "32");
});

both!(a_zero_copy_send_delivers_the_workloads_bytes, |ctx| {
    let sink = TcpSink::start();
    let rule = format!("127.0.0.1:{}", sink.port());
    let n = "65536";
    let ops = vec![format!("zerocopy,127.0.0.1,{},{n}", sink.port())];
    let out = ctx.sl(reach_args(&["--net-allow", &rule], &ops));
    out.expect_code(0);
    let sent: usize = out.probe("zerocopy").unwrap().parse().unwrap();
    let got = sink.received();
    assert!(sent > 0, "{}", out.dump());
    assert_eq!(got.len(), sent, "{}", out.dump());
    assert!(
        got.iter().all(|&b| b == b'Z'),
        "bytes not the workload's\n{}",
        out.dump()
    );
});

/// A TCP server that keeps every byte of the first connection it accepts.
struct TcpSink {
    port: u16,
    done: std::sync::mpsc::Receiver<Vec<u8>>,
}

impl TcpSink {
    fn start() -> TcpSink {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let (tx, done) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut got = Vec::new();
            if let Ok((mut c, _)) = l.accept() {
                let _ = c.read_to_end(&mut got);
            }
            let _ = tx.send(got);
        });
        TcpSink { port, done }
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn received(&self) -> Vec<u8> {
        self.done
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap_or_default()
    }
}

/// As root, a bind made on the workload's behalf lends it no capability:
/// a port below 1024 stays out of reach even with --net-allow-bind.
#[test]
fn a_low_port_is_not_lent_as_root() {
    if !is_root() {
        return;
    }
    let high = free_port().to_string();
    let ports = format!("81,{high}");
    let out = Ctx::invoker().sl(probe_args(
        &["--net-allow-bind", &ports],
        &["bind4,81", &format!("bind4,{high}")],
    ));
    out.expect_code(0);
    assert_eq!(
        out.probe_nth("bind4", 0),
        Err("EACCES".into()),
        "{}",
        out.dump()
    );
    // twin: a port the workload's own rights allow
    assert!(out.probe_nth("bind4", 1).is_ok(), "{}", out.dump());
}
