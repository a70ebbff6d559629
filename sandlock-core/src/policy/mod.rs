//! The policy: what a workload may read, write, execute and reach.
//!
//! Owns the one [`Policy`] type every front door builds, and the parsers for
//! the textual forms of its parts (`--net-allow` specs, port lists, host
//! entries). Parsing happens once, here, and produces typed values, so later
//! stages never re-validate strings. This module must never touch the system
//! beyond reading the filesystem to make paths absolute: resolution of names
//! and Landlock handles live in later stages.

mod builder;
mod cow;
pub(crate) mod fs;
mod http;
mod limits;
mod net;
mod options;
mod ports;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use builder::PolicyBuilder;
pub use cow::{CowPolicy, OnExit, SummaryFormat};
pub use fs::{FsPolicy, SYSTEM_READ_DIRS, SYSTEM_RW_DEVICES};
pub(crate) use http::{is_token_byte, parse_ip_host};
pub use http::{
    CaFiles, HostMatch, HttpPolicy, HttpRule, MethodMatch, PathMatch, DEFAULT_UPSTREAM_TIMEOUT,
};
pub use limits::{CpuShare, Limit, Limits, Size};
pub use net::{parse_dns_server, AddHost, HostPattern, NetRule, Proto};
pub use options::{option, Group, How, Kind, OptionInfo, ProfileKey, OPTIONS};
pub use ports::PortSet;

/// Everything a sandbox is allowed to do. Built by the CLI, profiles, the C
/// ABI and the Python SDK alike.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Filesystem grants.
    pub fs: FsPolicy,
    /// Network egress and listening.
    pub net: NetPolicy,
    /// HTTP interception: rules, ports, TLS.
    pub http: HttpPolicy,
    /// Secrets the workload may use but never read (`--secret`).
    pub secrets: Vec<crate::secrets::SecretSpec>,
    /// What a placeholder headed elsewhere does (`--on-secret-misuse`).
    pub secret_misuse: crate::secrets::Misuse,
    /// Environment, working directory, time limit, capabilities.
    pub process: ProcessPolicy,
    /// Memory, processes, CPU, files and disk the workload may use.
    pub limits: Limits,
    /// Directories changed through a copy-on-write layer (`--cow`).
    pub cow: CowPolicy,
    /// Where denials are reported.
    pub report: ReportPolicy,
    /// The options it was built from, as (option, value) in the order
    /// given (see [`PolicyBuilder::settings`]): what `--learn` writes back.
    pub given: Vec<(&'static str, String)>,
}

/// Network part of a policy.
#[derive(Debug, Clone, Default)]
pub struct NetPolicy {
    /// Allowed destinations (`--net-allow`). Empty: no outbound network.
    pub allow: Vec<NetRule>,
    /// Static names for the sandbox (`--add-host`).
    pub hosts: Vec<AddHost>,
    /// Ports the workload may bind and listen on (`--net-allow-bind`).
    pub bind: PortSet,
    /// Resolvers the DNS interceptor asks (`--dns-server`); empty: the
    /// host's `/etc/resolv.conf`.
    pub dns_servers: Vec<std::net::SocketAddr>,
    /// Socket files (or directories of them) the workload may connect and
    /// send to beyond its write grants (`--unix-allow`).
    pub unix_allow: Vec<PathBuf>,
}

impl NetPolicy {
    /// True when the workload may create inet sockets at all.
    pub fn inet_enabled(&self) -> bool {
        !self.allow.is_empty() || !self.bind.is_empty()
    }

    /// True when any UDP rule exists.
    pub fn udp_enabled(&self) -> bool {
        self.allow.iter().any(|r| r.proto == Proto::Udp)
    }

    /// True when the sandbox sees a virtual `/etc/hosts`.
    pub fn virtual_hosts(&self) -> bool {
        self.inet_enabled() || !self.hosts.is_empty()
    }
}

/// Process part of a policy.
#[derive(Debug, Clone, Default)]
pub struct ProcessPolicy {
    /// Extra environment variables (`--env`), applied last.
    pub env: Vec<(String, String)>,
    /// Keep only PATH, HOME, TERM, LANG and `env` (`--clean-env`).
    pub clean_env: bool,
    /// Working directory of the workload (`--cwd`); default: sandlock's own.
    pub cwd: Option<PathBuf>,
    /// Kill the whole tree after this long (`--timeout`).
    pub timeout: Option<Duration>,
    /// Keep capabilities when started as root (`--keep-caps`).
    pub keep_caps: bool,
}

/// Reporting part of a policy.
#[derive(Debug, Clone, Default)]
pub struct ReportPolicy {
    /// Do not print denial lines on stderr (`-q`).
    pub quiet: bool,
    /// Append denial and connection events as JSON lines (`--audit`).
    pub audit: Option<PathBuf>,
    /// Watch the run and write the profile it needs here (`--learn`).
    pub learn: Option<PathBuf>,
}

/// Parses `KEY=VALUE` as given to `--env`.
pub fn parse_env(value: &str) -> crate::Result<(String, String)> {
    let (k, v) = value
        .split_once('=')
        .ok_or_else(|| crate::Error::invalid("--env", value, "expected KEY=VALUE"))?;
    if k.is_empty() || k.contains('\0') || v.contains('\0') {
        return Err(crate::Error::invalid(
            "--env",
            value,
            "empty key or NUL byte",
        ));
    }
    Ok((k.to_string(), v.to_string()))
}

/// Parses a positive number of seconds (fractions allowed) for `--timeout`.
pub fn parse_timeout(value: &str) -> crate::Result<Duration> {
    parse_seconds("--timeout", value)
}

/// Parses a positive number of seconds (fractions allowed) given to `flag`.
pub fn parse_seconds(flag: &'static str, value: &str) -> crate::Result<Duration> {
    let secs: f64 = value
        .parse()
        .map_err(|_| crate::Error::invalid(flag, value, "expected a number of seconds"))?;
    if !(secs.is_finite() && secs > 0.0 && secs < 1e9) {
        return Err(crate::Error::invalid(
            flag,
            value,
            "must be a positive number of seconds",
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl Policy {
    /// True when the intercepting proxy runs: any HTTP rule or secret.
    pub fn intercepting(&self) -> bool {
        self.http.intercepting() || !self.secrets.is_empty()
    }

    fn fmt_trust(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = &self.http;
        if h.no_default_bundles {
            writeln!(f, "trust: CA spliced only into --http-inject-ca bundles")?;
        } else {
            writeln!(f, "trust: CA spliced into the system bundles and certifi")?;
        }
        for p in &h.inject_ca {
            writeln!(f, "trust: CA spliced into {}", p.display())?;
        }
        if h.trust_host_cas {
            writeln!(f, "trust: host roots appended to spliced bundles")?;
        }
        if h.no_ca_env {
            writeln!(f, "trust env: not set (--no-ca-env)")
        } else {
            let names: Vec<&str> = crate::trust::env_names().collect();
            writeln!(f, "trust env: {} (unless already set)", names.join(" "))
        }
    }

    fn fmt_secrets(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "[secrets]")?;
        if self.secrets.is_empty() {
            return writeln!(f, "none");
        }
        let misuse = match self.secret_misuse {
            crate::secrets::Misuse::Warn => "warn (forwarded with the placeholder)",
            crate::secrets::Misuse::Block => "block (403)",
        };
        writeln!(f, "placeholder sent elsewhere: {misuse}")?;
        for spec in &self.secrets {
            // Names and hosts only: where a value comes from is the user's
            // business, and the value is never in the policy.
            let hosts: Vec<String> = spec.hosts.iter().map(|h| h.to_string()).collect();
            let over = if spec.plaintext {
                "TLS or plain HTTP"
            } else {
                "TLS"
            };
            writeln!(
                f,
                "secret: {} -> {} (over {over})",
                spec.name,
                hosts.join(", ")
            )?;
            if let Some(hs) = &spec.headers {
                let names: Vec<&str> = hs.iter().map(|h| h.as_str()).collect();
                writeln!(f, "        only in headers: {}", names.join(", "))?;
            }
        }
        Ok(())
    }

    fn fmt_output(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "[output]")?;
        match self.report.quiet {
            true => writeln!(f, "denials: not printed (--quiet)")?,
            false => writeln!(f, "denials: printed on stderr")?,
        }
        match &self.report.audit {
            Some(p) => writeln!(f, "audit: {} (JSON lines, appended)", p.display())?,
            None => writeln!(f, "audit: none")?,
        }
        match &self.report.learn {
            Some(p) => writeln!(
                f,
                "learn: the run is watched under a widened policy (the filesystem and network \
                 open); the profile it needs goes to {}",
                p.display()
            ),
            None => writeln!(f, "learn: no"),
        }
    }
}

impl fmt::Display for Policy {
    /// The effective policy, as `--show-policy` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "[filesystem]")?;
        if self.fs.system_view {
            writeln!(f, "system view: read/exec {}", SYSTEM_READ_DIRS.join(" "))?;
            writeln!(
                f,
                "             minus /etc secrets: {}",
                fs::ETC_SECRETS.join(" ")
            )?;
            writeln!(f, "             read/write {}", SYSTEM_RW_DEVICES.join(" "))?;
        } else {
            writeln!(f, "system view: none (--no-system-view)")?;
        }
        for p in &self.fs.read {
            writeln!(f, "read/exec:  {}", p.display())?;
        }
        for p in &self.fs.write {
            writeln!(f, "read/write: {}", p.display())?;
        }
        writeln!(
            f,
            "temp dir:   private, exported as TMPDIR, removed on exit"
        )?;
        if self.fs.own_proc() {
            writeln!(
                f,
                "proc:       its own (pid namespace: its processes only), where the kernel allows; see sandlock check"
            )?;
        } else if self.fs.system_view {
            writeln!(
                f,
                "proc:       the host's, as granted (shared pid namespace)"
            )?;
        }
        match &self.fs.home {
            Some(h) => writeln!(f, "home:       {} (read/write), exported as HOME", h.display())?,
            None => writeln!(
                f,
                "home:       private, exported as HOME, removed on exit; grants under your home appear in it"
            )?,
        }
        writeln!(f, "[network]")?;
        let through_proxy = format!(
            "TCP to ports {} of any host, through the proxy, which passes only the \
             requests [http] allows",
            self.http.intercepted_ports()
        );
        match (self.net.inet_enabled(), self.intercepting()) {
            (false, false) => writeln!(f, "inet sockets: denied (no --net-allow)")?,
            (false, true) => writeln!(f, "inet sockets: only {through_proxy}")?,
            (true, true) => writeln!(f, "http: {through_proxy}")?,
            (true, false) => {}
        }
        for r in &self.net.allow {
            writeln!(f, "allow: {r}")?;
        }
        for h in &self.net.hosts {
            writeln!(f, "host:  {} -> {}", h.name, h.addr)?;
        }
        if self.net.inet_enabled() || self.intercepting() {
            let servers: Vec<String> = self.net.dns_servers.iter().map(|s| s.to_string()).collect();
            writeln!(
                f,
                "dns:   answered by sandlock; names no rule covers get NXDOMAIN; upstream: {}",
                if servers.is_empty() {
                    "the host's resolv.conf".to_string()
                } else {
                    servers.join(", ")
                }
            )?;
        }
        writeln!(f, "unix:  socket files under the write grants")?;
        for p in &self.net.unix_allow {
            writeln!(f, "unix:  {}", p.display())?;
        }
        if self.net.bind.is_empty() {
            writeln!(f, "bind:  none")?;
        } else {
            writeln!(f, "bind:  {}", self.net.bind)?;
        }
        writeln!(f, "[http]")?;
        if !self.intercepting() {
            writeln!(f, "interception: off (no --http-allow or --http-deny)")?;
        } else {
            writeln!(f, "intercepted ports: {}", self.http.intercepted_ports())?;
            for r in &self.http.deny {
                writeln!(f, "deny:  {}", r.spec)?;
            }
            for r in &self.http.allow {
                writeln!(f, "allow: {}", r.spec)?;
            }
            if self.http.allow.is_empty() {
                writeln!(f, "allow: everything not denied")?;
            } else {
                writeln!(f, "allow: nothing else")?;
            }
            for b in &self.http.bypass {
                writeln!(f, "bypass: {b}")?;
            }
            match &self.http.ca {
                Some(ca) => writeln!(f, "ca: {} (key {})", ca.cert.display(), ca.key.display())?,
                None => writeln!(f, "ca: ephemeral, key in memory only")?,
            }
            if let Some(out) = &self.http.ca_out {
                writeln!(f, "ca written to: {}", out.display())?;
            }
            for c in &self.http.upstream_ca {
                writeln!(f, "upstream root: {} (plus the host's roots)", c.display())?;
            }
            let t = self
                .http
                .upstream_timeout
                .unwrap_or(DEFAULT_UPSTREAM_TIMEOUT);
            writeln!(f, "upstream timeout: {}s", t.as_secs_f64())?;
            self.fmt_trust(f)?;
        }
        self.fmt_secrets(f)?;
        writeln!(f, "[process]")?;
        writeln!(f, "clean env: {}", self.process.clean_env)?;
        for (k, v) in &self.process.env {
            writeln!(f, "env: {k}={v}")?;
        }
        if let Some(cwd) = &self.process.cwd {
            writeln!(f, "cwd: {}", cwd.display())?;
        }
        match self.process.timeout {
            Some(t) => writeln!(f, "timeout: {}s", t.as_secs_f64())?,
            None => writeln!(f, "timeout: none")?,
        }
        writeln!(f, "keep caps: {}", self.process.keep_caps)?;
        writeln!(f, "[limits]")?;
        if self.limits.is_empty() {
            writeln!(f, "none")?;
        }
        for limit in Limit::ALL {
            if let Some(v) = self.limits.shown(limit) {
                writeln!(
                    f,
                    "{limit}: {v} (sandlock check shows what enforces it here)"
                )?;
            }
        }
        self.fmt_output(f)?;
        writeln!(f, "[cow]")?;
        if self.cow.dirs.is_empty() {
            return writeln!(f, "none");
        }
        for d in &self.cow.dirs {
            writeln!(f, "dir: {} (writes go to a private layer)", d.display())?;
        }
        match self.cow.on_exit {
            Some(a) => writeln!(f, "on exit: {a}")?,
            None => writeln!(f, "on exit: commit on exit status 0, keep otherwise")?,
        }
        writeln!(f, "summary: {}", self.cow.summary)
    }
}
