//! Preparing a run: the private directory,
//! the rest of the Landlock ruleset, a check of what the workload
//! inherits on stdin, stdout and stderr, and whether its `/etc/hosts` is
//! a mount of its namespace.

use std::ffi::CString;
use std::path::PathBuf;

use super::private::Private;
use crate::launch::{self, LandlockRuleset};
use crate::network::Pinned;
use crate::policy::FsPolicy;
use crate::{Error, Policy, Result};

/// The one path every network flag makes virtual.
pub(super) const HOSTS: &str = "/etc/hosts";

pub(super) fn cstring(bytes: &[u8]) -> Result<CString> {
    CString::new(bytes).map_err(|_| {
        Error::invalid(
            "argument",
            &String::from_utf8_lossy(bytes),
            "contains a NUL byte",
        )
    })
}

/// The workload inherits stdin, stdout and stderr. An inet datagram socket
/// there would let the workload send UDP without a udp:// rule (its sends
/// are decided, but a connected one needs no address): refuse it unless a
/// udp:// rule exists, and refuse raw and other inet sockets always. A
/// stream socket is fine: its connect and every addressed send trap.
pub(super) fn check_inherited_stdio(net: &crate::policy::NetPolicy) -> Result<()> {
    let udp = net.udp_enabled();
    const NAMES: [&str; 3] = ["stdin", "stdout", "stderr"];
    let opt = |fd: i32, opt: i32| crate::sys::sockopt_int(fd, opt).ok();
    for (fd, name) in (0..).zip(NAMES) {
        let (Some(domain), Some(ty)) = (opt(fd, libc::SO_DOMAIN), opt(fd, libc::SO_TYPE)) else {
            continue;
        };
        if domain != libc::AF_INET && domain != libc::AF_INET6 {
            continue;
        }
        let refuse = |why: &str| {
            Err(Error::setup(
                format!("{name} is an inet socket"),
                std::io::Error::other(why.to_string()),
            ))
        };
        match ty {
            libc::SOCK_STREAM => {}
            libc::SOCK_DGRAM if udp => {}
            libc::SOCK_DGRAM => return refuse(
                "a datagram socket could send unseen; add a udp:// --net-allow rule to police it",
            ),
            _ => return refuse("raw and other inet sockets are never passed to a workload"),
        }
    }
    Ok(())
}

/// Creates the private directory (see [`Private::create`]) and makes
/// the rules that need neither the walk of `/etc` nor the reaper: while
/// the notify thread forks the reaper, or, with `--disk`, once the tmpfs
/// that holds the directory is mounted.
pub(super) fn base_rules(
    ruleset: &LandlockRuleset,
    grants: &launch::Grants,
    private: &Private,
    fs: &FsPolicy,
) -> Result<()> {
    private.create(fs)?;
    ruleset.allow_paths(grants)?;
    ruleset
        .allow(private.reach(), true)
        .map_err(|e| Error::setup("landlock rule for the private directory", e))
}

/// The rules of `/etc` once its walk (as root) is over: `/etc` whole, or
/// its entries one by one, hundreds of rules shared with a helper thread.
/// Made after the workload's /proc is mounted, so that the mounts overlap
/// the walk instead of following it.
pub(super) fn etc_rules(ruleset: &LandlockRuleset, grants: &mut launch::Grants) -> Result<()> {
    if let Some(whole) = grants.settle()? {
        ruleset
            .allow_path(&whole, false, grants.no_symlinks)
            .map_err(|e| Error::setup(format!("landlock rule for {}", whole.display()), e))?;
    }
    let grants = &*grants;
    ruleset.allow_listings(grants)?;
    if !grants.many_rules() {
        return ruleset.allow_entries_part(grants, 0, 1);
    }
    std::thread::scope(|scope| -> Result<()> {
        let helper = scope.spawn(|| ruleset.allow_entries_part(grants, 1, 2));
        let mine = ruleset.allow_entries_part(grants, 0, 2);
        helper.join().map_err(|_| {
            Error::setup("landlock", std::io::Error::other("rule builder panicked"))
        })??;
        mine
    })
}

/// The sandbox's `/etc/hosts` as a mount of the workload's namespace,
/// when it is `virtual` (a network flag, and not `--learn`, which traps
/// every open anyway), the workload gets a /proc of its own (the table is
/// staged there), the ground is the host's (not an image), the host has a
/// regular `/etc/hosts` to bind over, and nothing `writable` (as granted
/// and as resolved) holds it. `None`: the supervisor serves it.
pub(super) fn hosts_mount(
    policy: &Policy,
    image: bool,
    virtual_hosts: bool,
    writable: &[PathBuf],
    pinned: &Pinned,
) -> Result<Option<launch::hosts::HostsFile>> {
    if !virtual_hosts || !policy.fs.own_proc() || image {
        return Ok(None);
    }
    if !std::fs::metadata(HOSTS).is_ok_and(|m| m.is_file()) {
        return Ok(None);
    }
    // A grant that lets the workload write /etc/hosts (`-w /etc`, `--cow
    // /etc`) keeps its meaning: writes reach the file it names, reads are
    // served by the supervisor.
    let hosts = [
        PathBuf::from(HOSTS),
        std::fs::canonicalize(HOSTS).unwrap_or_default(),
    ];
    if writable
        .iter()
        .any(|w| hosts.iter().any(|h| h.starts_with(w)))
    {
        return Ok(None);
    }
    launch::hosts::HostsFile::new(pinned.hosts_file())
        .map(Some)
        .map_err(|e| Error::setup("the sandbox's /etc/hosts", e))
}
