//! A `--learn` run: the policy widened to watch, the run, and the profile
//! it was found to need, written where the user asked.
//!
//! The widened policy opens what a run may need (the filesystem for
//! reading and writing, every host and port over TCP and UDP, binds, the
//! proxy for every HTTP request) so that one run shows everything; what
//! it keeps from the given policy (secrets, limits, `--cow`, deny rules,
//! names) still applies. Learning is watching, not confining: the
//! command runs with your rights, and the README says so.
//!
//! Owns: the widening, comparing what was seen with what the given policy
//! already allows, and writing the profile whole or not at all (a
//! temporary file beside it, renamed over it). Must never: write the
//! profile anywhere but the path given, or leave half of one there.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Output, Sandbox, Stdio};
use crate::learn::{self, Covered, Findings, Given, Learner, Seen};
use crate::network::{Egress, Pinned};
use crate::policy::{HttpRule, NetRule, PortSet, Proto};
use crate::proxy::acl::{Acl, Verdict};
use crate::{Error, Policy, Result};

const FLAG: &str = "--learn";

/// Runs `argv` watched and writes the profile it needs to `target`.
pub(super) fn run(sb: &Sandbox, target: &Path, argv: &[OsString], io: Stdio) -> Result<Output> {
    check_target(target)?;
    refuse_readable_inputs(&sb.policy)?;
    let env = sb.ground.environment();
    let mut vars: Vec<(&str, &[u8])> = env
        .iter()
        .filter_map(|(k, v)| Some((k.to_str()?, v.as_bytes())))
        .collect();
    vars.extend(
        sb.policy
            .process
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes())),
    );
    // A given secret's variable is the placeholder's already.
    let given_secrets: Vec<&str> = sb.policy.secrets.iter().map(|s| s.name.as_str()).collect();
    vars.retain(|(k, _)| !given_secrets.contains(k));
    let learner = Arc::new(Learner::new(vars));
    let wide = Sandbox {
        policy: widened(&sb.policy)?,
        ground: sb.ground.clone(),
    };
    let mut output = wide.run_watched(argv, io, Some(&learner))?;
    let mut seen = learner.seen();
    seen.confirm();
    // The program only: its arguments may hold what must not be written
    // (a header with a token).
    let command = match argv.len() {
        1 => argv[0].to_string_lossy().into_owned(),
        2 => format!("{} (and 1 argument)", argv[0].to_string_lossy()),
        n => format!("{} (and {} arguments)", argv[0].to_string_lossy(), n - 1),
    };
    let findings = findings(sb, &seen, learner.pinned().as_ref(), command, target)?;
    let text = learn::render(&Given(&sb.policy.given), &findings);
    write_whole(target, &text).map_err(|e| {
        Error::setup(
            format!("{FLAG} {}: writing the profile", target.display()),
            e,
        )
    })?;
    if !sb.policy.report.quiet {
        say_written(&findings, target, output.outcome.code());
    }
    output.learned = Some(text);
    Ok(output)
}

/// Refuses what the widened policy would let the workload read that it
/// must never: a secret read from a file, the key of a CA of the user's
/// own.
fn refuse_readable_inputs(p: &Policy) -> Result<()> {
    let file_secret = p
        .secrets
        .iter()
        .find(|s| matches!(s.source, crate::secrets::Source::File(_)));
    if let Some(s) = file_secret {
        return Err(Error::invalid(
            "--secret",
            &s.spec,
            "--learn lets the run read every file, this one too; give the secret as env:VAR while learning",
        ));
    }
    if let Some(ca) = &p.http.ca {
        return Err(Error::invalid(
            "--http-key",
            &ca.key.display().to_string(),
            "--learn lets the run read every file, this key too; learn with the ephemeral CA (no --http-ca/--http-key)",
        ));
    }
    Ok(())
}

/// What was written, on stderr.
fn say_written(f: &Findings, target: &Path, status: i32) {
    if f.self_writable.is_some() {
        eprintln!(
            "sandlock: learned: warning: the profile grants writing {} itself: keep it elsewhere",
            target.display()
        );
    }
    eprintln!(
        "sandlock: learned: {} read, {} write, {} network and {} HTTP rules written to {} \
         (the run exited {status}); use it with: sandlock run -p {} -- ...",
        f.files.read.len(),
        f.files.write.len(),
        f.net.len() + f.binds.len() + f.unix.len(),
        f.http.len(),
        target.display(),
        target.display(),
    );
}

/// The profile can be written where asked: its directory exists, and it
/// is not a directory itself. Checked before the run, so a long run is
/// not lost to a typo.
fn check_target(target: &Path) -> Result<()> {
    let bad = |why: &str| Error::invalid(FLAG, &target.display().to_string(), why.to_string());
    if target.is_dir() {
        return Err(bad("is a directory; name the profile file to write"));
    }
    match target.parent() {
        Some(dir) if dir.as_os_str().is_empty() || dir.is_dir() => Ok(()),
        _ => Err(bad("its directory does not exist")),
    }
}

/// `text` at `target`, whole: written to a new file beside it, synced,
/// then renamed over it.
fn write_whole(target: &Path, text: &str) -> std::io::Result<()> {
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    for _ in 0..16 {
        // A name the workload (which may write here) cannot guess ahead.
        let tmp = dir.join(format!(".{name}.sandlock-{}", crate::sys::random_hex(8)?));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp);
        let mut file = match file {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        };
        let written = file
            .write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .and_then(|()| std::fs::rename(&tmp, target));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        return written;
    }
    Err(std::io::Error::other(
        "no free temporary name beside it; what is at the path now may be what the run wrote there",
    ))
}

/// Top-level directories a learning run may not write: the kernel's
/// (`/proc`, `/sys`, whose cgroup files would let it leave its limits),
/// devices (the system view's, and `/dev/shm`, stay writable) and boot.
const NOT_WIDENED_WRITE: [&str; 4] = ["proc", "sys", "dev", "boot"];
/// Top-level directories a learning run may not read: `/proc` (it gets
/// its own, as any run does) and `/dev` (block devices).
const NOT_WIDENED_READ: [&str; 2] = ["proc", "dev"];

/// The given policy, opened so that one run shows what it needs: every
/// top-level directory readable and writable but the kernel's and the
/// devices, every socket file, host, port and request reachable.
fn widened(p: &Policy) -> Result<Policy> {
    let mut w = p.clone();
    w.report.learn = None;
    let top = std::fs::read_dir("/").map_err(|e| Error::setup("listing /", e))?;
    for entry in top.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let path = entry.path();
        if !path.exists() {
            continue;
        }
        if !NOT_WIDENED_READ.contains(&name.as_ref()) {
            w.fs.read.push(path.clone());
        }
        if !NOT_WIDENED_WRITE.contains(&name.as_ref()) {
            w.fs.write.push(path);
        }
    }
    if Path::new("/dev/shm").is_dir() {
        w.fs.write.push(PathBuf::from("/dev/shm"));
    }
    w.net.unix_allow.push(PathBuf::from("/"));
    w.net.allow.push(NetRule::parse("*")?);
    w.net.allow.push(NetRule::parse("udp://*")?);
    w.net.bind = PortSet::parse("1-65535", FLAG, "1-65535")?;
    w.http.allow.push(HttpRule::parse("--http-allow", "* *")?);
    Ok(w)
}

/// What the run needed beyond what `sb`'s policy gives.
fn findings(
    sb: &Sandbox,
    seen: &Seen,
    pinned: Option<&Pinned>,
    command: String,
    target: &Path,
) -> Result<Findings> {
    let p = &sb.policy;
    let covered = covered(sb)?;
    let files = learn::collapse_files(&seen.files, &covered);
    let self_writable = (files.write.iter().any(|r| target.starts_with(&r.path))
        || covered.write.iter().any(|w| target.starts_with(w)))
    .then(|| target.to_path_buf());
    let empty = Pinned::default();
    let pinned = pinned.unwrap_or(&empty);
    let egress = Egress::new(&p.net, &Pinned::for_policy_on(p, sb.ground.is_image())?);
    let (net, mut used_names) = net_rules(seen, pinned, &egress);
    let binds = seen
        .binds
        .iter()
        .copied()
        .filter(|port| !egress.check_bind(*port).allowed())
        .collect();
    let unix = seen
        .unix
        .iter()
        .filter(|s| {
            !covered
                .write
                .iter()
                .chain(&p.net.unix_allow)
                .any(|r| s.starts_with(r))
        })
        .cloned()
        .collect();
    let requests = needed_requests(p, &egress, seen);
    used_names.extend(requests.iter().map(|r| r.host.clone()));
    let (http, unlearned) = learn::collapse_http(requests);
    let resolvable = crate::dns::resolvable(p);
    let unused_names = seen
        .names
        .iter()
        .filter(|n| !used_names.contains(*n) && !resolvable.iter().any(|m| m.matches(n)))
        .filter(|n| pinned.lookup(n).is_none())
        .cloned()
        .collect();
    let mut authorized: Vec<String> = seen.authorized.iter().cloned().collect();
    authorized.retain(|h| !seen.credentials.values().any(|hosts| hosts.contains(h)));
    Ok(Findings {
        command,
        files,
        net,
        binds,
        unix,
        http,
        unused_names,
        credentials: seen.credentials.clone(),
        authorized,
        dropped: seen.dropped,
        unlearned: unlearned.saturating_add(seen.unlearned),
        self_writable,
    })
}

/// The `[network] allow` entries for the connections and datagrams the
/// given policy does not allow, and the names they use.
fn net_rules(
    seen: &Seen,
    pinned: &Pinned,
    egress: &Egress,
) -> (Vec<(String, String)>, BTreeSet<String>) {
    let name_of = |dest: &SocketAddr| learn::name_for(seen, pinned, dest.ip());
    let mut used_names = BTreeSet::new();
    let mut net = Vec::new();
    for (proto, dest) in &seen.connects {
        if egress.check(*proto, *dest).allowed() {
            continue;
        }
        let scheme = if *proto == Proto::Udp { "udp://" } else { "" };
        let what = if *proto == Proto::Udp {
            "sent to"
        } else {
            "connect"
        };
        let ip = match dest {
            SocketAddr::V6(_) => format!("[{}]", dest.ip()),
            SocketAddr::V4(_) => dest.ip().to_string(),
        };
        let by_ip = format!("{scheme}{ip}:{}", dest.port());
        let (spec, why) = match name_of(dest) {
            // One name reached it: the rule names it, if it can.
            learn::NameFor::One(n) => {
                let spec = format!("{scheme}{n}:{}", dest.port());
                match NetRule::parse(&spec) {
                    Ok(_) => {
                        used_names.insert(n);
                        (spec, format!("{what} {dest}"))
                    }
                    Err(_) => (by_ip, format!("{what} {dest}")),
                }
            }
            learn::NameFor::Several(names) => (
                by_ip,
                format!(
                    "{what} {dest}, which these names all resolved to: {}",
                    names.join(", ")
                ),
            ),
            learn::NameFor::None => (by_ip, format!("{what} {dest}")),
        };
        net.push((spec, why));
    }
    (net, used_names)
}

/// The requests a profile must allow by rule: with the given policy
/// intercepting, those its rules refuse; without, every request once any
/// went where the given policy does not reach (the rules that allow it
/// turn interception on, and then every request needs a rule).
fn needed_requests<'s>(p: &Policy, egress: &Egress, seen: &'s Seen) -> Vec<&'s learn::Request> {
    if p.intercepting() {
        let acl = Acl::new(&p.http);
        return seen
            .requests
            .iter()
            .filter(|r| {
                !matches!(
                    acl.check(&r.method, &r.host, r.path.as_bytes()),
                    Verdict::Allow(_)
                )
            })
            .collect();
    }
    let outside = seen
        .requests
        .iter()
        .any(|r| !egress.check(Proto::Tcp, r.dest).allowed());
    match outside {
        true => seen.requests.iter().collect(),
        false => Vec::new(),
    }
}

/// What the given policy already lets the workload read and write, in
/// both spellings of each grant (as given, and resolved).
fn covered(sb: &Sandbox) -> Result<Covered> {
    let p = &sb.policy;
    let image = sb.ground.is_image();
    let mut g = crate::launch::grants(&p.fs, image, crate::launch::EtcPlan::start(&p.fs, image)?)?;
    let read = g.readable_roots()?;
    let mut write: Vec<PathBuf> = g.write.clone();
    write.extend(p.cow.dirs.iter().cloned());
    let both = |v: Vec<PathBuf>| -> Vec<PathBuf> {
        let mut out = v.clone();
        out.extend(v.iter().filter_map(|p| std::fs::canonicalize(p).ok()));
        out
    };
    // The user's home and runtime directory, as given and resolved (a
    // home may be a symlink, as /home -> /var/home).
    let homes = ["HOME", "XDG_RUNTIME_DIR"]
        .iter()
        .filter_map(std::env::var_os)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .collect();
    Ok(Covered {
        read: both(read),
        write: both(write),
        homes: both(homes),
    })
}
