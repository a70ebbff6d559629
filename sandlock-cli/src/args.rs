//! Command-line grammar. Every flag parses straight into the core's policy
//! types, so a malformed value is rejected by clap (exit 2) with a message
//! naming the flag and the value.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use sandlock_core::policy::{self, AddHost, CaFiles, HostMatch, HttpRule, NetRule, PortSet};
use sandlock_core::secrets::{self, SecretHeaders, SecretSpec};
use sandlock_core::Policy;

/// Run untrusted programs under Landlock + seccomp with a supervisor that
/// owns their network egress. No root, no containers.
#[derive(Debug, Parser)]
#[command(name = "sandlock", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run CMD confined: `sandlock run [OPTIONS] -- CMD [ARGS...]`.
    Run(Box<RunArgs>),
    /// Report what this kernel supports; exit non-zero if sandlock can't run.
    Check,
}

/// Options of `sandlock run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Allow reading and executing PATH and everything below it (repeatable).
    #[arg(short = 'r', long = "fs-read", value_name = "PATH")]
    fs_read: Vec<PathBuf>,

    /// Allow reading, writing and executing PATH and below (repeatable).
    #[arg(short = 'w', long = "fs-write", value_name = "PATH")]
    fs_write: Vec<PathBuf>,

    /// Start from nothing instead of the minimal system view (/usr, /lib*,
    /// /bin, /sbin, /etc without secrets, a few devices).
    #[arg(long)]
    no_system_view: bool,

    /// Print the effective policy and exit without running anything.
    #[arg(long)]
    pub show_policy: bool,

    /// Allow outbound connections: host, host:PORT[,PORT], IP, CIDR,
    /// [IPv6]:PORT, :PORT (any host), * (anything); prefix udp:// for UDP
    /// (repeatable). Names are resolved once at start and pinned.
    #[arg(long = "net-allow", value_name = "SPEC", value_parser = parse_rule)]
    net_allow: Vec<NetRule>,

    /// Give the sandbox a static name NAME -> IP, used to resolve
    /// --net-allow names and in its virtual /etc/hosts (repeatable).
    #[arg(long = "add-host", value_name = "NAME:IP", value_parser = parse_add_host)]
    add_host: Vec<AddHost>,

    /// The resolver sandlock asks for names a rule covers, IP[:PORT]
    /// (repeatable; default: the nameservers of the host's
    /// /etc/resolv.conf). Every DNS query in the sandbox is answered by
    /// sandlock; names no rule covers get NXDOMAIN.
    #[arg(long = "dns-server", value_name = "IP[:PORT]", value_parser = parse_dns)]
    dns_server: Vec<std::net::SocketAddr>,

    /// Ports the workload may bind and listen on: 8080,9000-9005 (default none).
    #[arg(long = "net-allow-bind", value_name = "PORTS", value_parser = parse_bind)]
    net_allow_bind: Vec<PortSet>,

    /// Allow HTTP(S) requests matching 'METHOD HOST[/PATH]' (repeatable).
    /// METHOD is a name or *; HOST an exact name, an IP, * or *.suffix;
    /// PATH defaults to /*, a trailing * is a prefix. Once any allow rule
    /// exists, every other request is refused with 403. Turns on the
    /// intercepting proxy for the --http-port ports.
    #[arg(long = "http-allow", value_name = "RULE", value_parser = parse_http_allow)]
    http_allow: Vec<HttpRule>,

    /// Refuse HTTP(S) requests matching 'METHOD HOST[/PATH]' (repeatable);
    /// deny wins over allow.
    #[arg(long = "http-deny", value_name = "RULE", value_parser = parse_http_deny)]
    http_deny: Vec<HttpRule>,

    /// Intercept these TCP ports too, besides 80 and 443: 8080,8443
    /// (repeatable).
    #[arg(long = "http-port", value_name = "PORTS", value_parser = parse_http_port)]
    http_port: Vec<PortSet>,

    /// Pass TLS for this SNI through untouched, without interception:
    /// exact name or *.suffix (repeatable). For clients that pin
    /// certificates.
    #[arg(long = "http-bypass", value_name = "PATTERN", value_parser = parse_bypass)]
    http_bypass: Vec<HostMatch>,

    /// Sign intercepted TLS with this CA certificate (PEM) instead of an
    /// ephemeral one; needs --http-key.
    #[arg(long = "http-ca", value_name = "PEM", requires = "http_key")]
    http_ca: Option<PathBuf>,

    /// Private key (PEM) of --http-ca.
    #[arg(long = "http-key", value_name = "PEM", requires = "http_ca")]
    http_key: Option<PathBuf>,

    /// Write the CA certificate (public part, PEM) to PATH before the
    /// workload starts, e.g. for curl --cacert.
    #[arg(long = "http-ca-out", value_name = "PATH")]
    http_ca_out: Option<PathBuf>,

    /// Also trust this root (PEM) when verifying upstream servers
    /// (repeatable); the host's trusted roots are always used.
    #[arg(long = "upstream-ca", value_name = "PEM")]
    upstream_ca: Vec<PathBuf>,

    /// Give up on an upstream that takes longer than SECS to accept or to
    /// answer (the workload gets 504) [default: 60].
    #[arg(long = "http-timeout", value_name = "SECS", value_parser = parse_http_timeout)]
    http_timeout: Option<Duration>,

    /// Also splice the sandbox CA into this PEM bundle when the workload
    /// reads it (repeatable); it must exist.
    #[arg(long = "http-inject-ca", value_name = "PATH")]
    http_inject_ca: Vec<PathBuf>,

    /// Splice the CA only into --http-inject-ca bundles, not into the
    /// system bundles and certifi.
    #[arg(long)]
    no_default_bundles: bool,

    /// Do not set SSL_CERT_FILE, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE,
    /// GIT_SSL_CAINFO and NODE_EXTRA_CA_CERTS for the workload.
    #[arg(long)]
    no_ca_env: bool,

    /// Append the host's trusted roots to spliced bundles too (for hosts
    /// behind a TLS-inspecting corporate proxy).
    #[arg(long)]
    trust_host_cas: bool,

    /// Give the workload a secret it can use but never read:
    /// NAME=SOURCE@HOSTS, SOURCE being env:VAR, file:PATH or fd:N; NAME@HOSTS
    /// reads env NAME. HOSTS: comma-separated names or *.suffix. The workload's
    /// $NAME holds a placeholder; the proxy swaps in the real value only on
    /// TLS requests to those hosts. Append ;plaintext to allow plain HTTP too
    /// (repeatable).
    // Parsed after clap: clap's own error would repeat the whole argument,
    // which may be a pasted secret.
    #[arg(long = "secret", value_name = "NAME=SOURCE@HOSTS")]
    secret: Vec<String>,

    /// Substitute secret NAME only in these request headers: NAME=H1,H2
    /// (default: all headers, the URL and the body; repeatable).
    #[arg(long = "secret-headers", value_name = "NAME=H1,H2", value_parser = parse_secret_headers)]
    secret_headers: Vec<SecretHeaders>,

    /// What a request carrying a secret's placeholder to a host the secret
    /// is not bound to gets: warn (forward it, the placeholder is worthless
    /// there) or block (403).
    #[arg(long = "on-secret-misuse", value_name = "warn|block", default_value = "warn", value_parser = parse_misuse)]
    on_secret_misuse: secrets::Misuse,

    /// Set an environment variable for the workload (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    env: Vec<(String, String)>,

    /// Pass only PATH, HOME, TERM, LANG (and --env) to the workload.
    #[arg(long)]
    clean_env: bool,

    /// Working directory of the workload.
    #[arg(long, value_name = "DIR")]
    cwd: Option<PathBuf>,

    /// Kill the whole workload tree after SECS seconds (exit status 124).
    #[arg(short = 't', long, value_name = "SECS", value_parser = parse_timeout)]
    timeout: Option<Duration>,

    /// When started as root, keep capabilities instead of dropping them all.
    #[arg(long)]
    keep_caps: bool,

    /// Do not print denials on stderr.
    #[arg(short = 'q', long)]
    quiet: bool,

    /// Append denials and allowed connections to FILE as JSON lines.
    #[arg(long, value_name = "FILE")]
    audit: Option<PathBuf>,

    /// The command to run and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

fn reason(e: sandlock_core::Error) -> String {
    match e {
        sandlock_core::Error::InvalidValue { reason, .. } => reason,
        other => other.to_string(),
    }
}

fn parse_rule(s: &str) -> Result<NetRule, String> {
    NetRule::parse(s).map_err(reason)
}

fn parse_add_host(s: &str) -> Result<AddHost, String> {
    AddHost::parse(s).map_err(reason)
}

fn parse_dns(s: &str) -> Result<std::net::SocketAddr, String> {
    sandlock_core::policy::parse_dns_server(s).map_err(reason)
}

fn parse_bind(s: &str) -> Result<PortSet, String> {
    PortSet::parse(s, "--net-allow-bind", s).map_err(reason)
}

fn parse_http_allow(s: &str) -> Result<HttpRule, String> {
    HttpRule::parse("--http-allow", s).map_err(reason)
}

fn parse_http_deny(s: &str) -> Result<HttpRule, String> {
    HttpRule::parse("--http-deny", s).map_err(reason)
}

fn parse_http_port(s: &str) -> Result<PortSet, String> {
    PortSet::parse(s, "--http-port", s).map_err(reason)
}

fn parse_bypass(s: &str) -> Result<HostMatch, String> {
    HostMatch::parse("--http-bypass", s, s, false).map_err(reason)
}

fn parse_http_timeout(s: &str) -> Result<Duration, String> {
    policy::parse_seconds("--http-timeout", s).map_err(reason)
}

fn parse_misuse(s: &str) -> Result<secrets::Misuse, String> {
    secrets::Misuse::parse(s).map_err(reason)
}

fn parse_secret_headers(s: &str) -> Result<SecretHeaders, String> {
    secrets::parse_secret_headers(s).map_err(reason)
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    policy::parse_env(s).map_err(reason)
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    policy::parse_timeout(s).map_err(reason)
}

fn absolute(flag: &str, p: PathBuf) -> anyhow::Result<PathBuf> {
    std::path::absolute(&p)
        .map_err(|e| anyhow::anyhow!("invalid value '{}' for '{flag}': {e}", p.display()))
}

impl RunArgs {
    /// Builds the policy and the command line.
    pub fn into_policy(self) -> anyhow::Result<(Policy, Vec<OsString>)> {
        let mut p = Policy::default();
        p.fs.system_view = !self.no_system_view;
        p.fs.read = self
            .fs_read
            .into_iter()
            .map(|x| absolute("--fs-read", x))
            .collect::<anyhow::Result<_>>()?;
        p.fs.write = self
            .fs_write
            .into_iter()
            .map(|x| absolute("--fs-write", x))
            .collect::<anyhow::Result<_>>()?;
        p.net.allow = self.net_allow;
        p.net.hosts = self.add_host;
        p.net.dns_servers = self.dns_server;
        for b in &self.net_allow_bind {
            p.net.bind.extend(b);
        }
        p.http.allow = self.http_allow;
        p.http.deny = self.http_deny;
        for ports in &self.http_port {
            p.http.extra_ports.extend(ports);
        }
        p.http.bypass = self.http_bypass;
        if let (Some(cert), Some(key)) = (self.http_ca, self.http_key) {
            p.http.ca = Some(CaFiles {
                cert: absolute("--http-ca", cert)?,
                key: absolute("--http-key", key)?,
            });
        }
        p.http.ca_out = self
            .http_ca_out
            .map(|c| absolute("--http-ca-out", c))
            .transpose()?;
        p.http.upstream_ca = self
            .upstream_ca
            .into_iter()
            .map(|c| absolute("--upstream-ca", c))
            .collect::<anyhow::Result<_>>()?;
        p.http.upstream_timeout = self.http_timeout;
        p.http.inject_ca = self
            .http_inject_ca
            .into_iter()
            .map(|c| absolute("--http-inject-ca", c))
            .collect::<anyhow::Result<_>>()?;
        p.http.no_default_bundles = self.no_default_bundles;
        p.http.no_ca_env = self.no_ca_env;
        p.http.trust_host_cas = self.trust_host_cas;
        // The core's message hides a value pasted where a source belongs.
        p.secrets = self
            .secret
            .iter()
            .map(|s| SecretSpec::parse(s).map_err(|e| anyhow::anyhow!("{e}")))
            .collect::<anyhow::Result<_>>()?;
        p.secret_misuse = self.on_secret_misuse;
        if p.secrets.is_empty() && p.secret_misuse == secrets::Misuse::Block {
            anyhow::bail!("--on-secret-misuse block has no effect without a --secret");
        }
        for (name, headers) in self.secret_headers {
            let Some(spec) = p.secrets.iter_mut().find(|s| s.name == name) else {
                anyhow::bail!(
                    "invalid value '{name}=...' for '--secret-headers': no --secret named {name}"
                );
            };
            spec.headers = Some(headers);
        }
        if let Some(flag) = p.http.unused_option(p.intercepting()) {
            anyhow::bail!("{flag} has no effect without an --http-allow, --http-deny or --secret");
        }
        p.process.env = self.env;
        p.process.clean_env = self.clean_env;
        p.process.cwd = self.cwd.map(|c| absolute("--cwd", c)).transpose()?;
        p.process.timeout = self.timeout;
        p.process.keep_caps = self.keep_caps;
        p.report.quiet = self.quiet;
        p.report.audit = self.audit;
        Ok((p, self.command))
    }
}
