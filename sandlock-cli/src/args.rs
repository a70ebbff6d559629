//! Command-line grammar. clap collects the flags; their values go to the
//! core's `PolicyBuilder` under the same names, as from every other front
//! door, and a malformed value is refused (exit 2) with a message naming
//! the flag and the value.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use sandlock_core::policy::PolicyBuilder;
use sandlock_core::{profile, Policy};

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
    /// List profiles, or show the policy one sets.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Apply or drop the changes a `--cow` run kept.
    #[command(subcommand)]
    Cow(CowCommand),
}

/// `sandlock cow ...`.
#[derive(Debug, Subcommand)]
pub enum CowCommand {
    /// Apply the kept layer at PATH to its directories (conflicts stay in
    /// the layer); exits 0 when everything got in, 125 otherwise.
    Apply {
        /// How the changes are listed on stderr: text, json or none.
        #[arg(long = "cow-summary", value_name = "FORMAT", default_value = "text")]
        summary: String,
        /// The layer, as `sandlock run` printed it.
        path: std::path::PathBuf,
    },
    /// Throw the kept layer at PATH away.
    Drop {
        /// How the dropped changes are listed on stderr: text, json or none.
        #[arg(long = "cow-summary", value_name = "FORMAT", default_value = "text")]
        summary: String,
        /// The layer, as `sandlock run` printed it.
        path: std::path::PathBuf,
    },
}

/// `sandlock profile ...`.
#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// List every profile `--profile` can name, and where each one is.
    List,
    /// Print the effective policy of profile NAME (as --show-policy does).
    Show {
        /// The profile's name.
        name: String,
    },
}

/// Options of `sandlock run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Start from profile NAME: the user's
    /// ~/.config/sandlock/profiles/NAME.toml, else a shipped one; a NAME
    /// with a '/' in it or ending in .toml is a file (-p ./learned.toml).
    /// Flags given with it are layered on top: lists append, values
    /// override.
    #[arg(short = 'p', long = "profile", value_name = "NAME")]
    profile: Option<String>,

    /// Start from the profile in this TOML file (relative paths in it are
    /// relative to its directory).
    #[arg(long = "profile-file", value_name = "PATH", conflicts_with = "profile")]
    profile_file: Option<PathBuf>,

    /// Allow reading and executing PATH and everything below it (repeatable).
    #[arg(short = 'r', long = "fs-read", value_name = "PATH")]
    fs_read: Vec<String>,

    /// Allow reading, writing and executing PATH and below (repeatable).
    #[arg(short = 'w', long = "fs-write", value_name = "PATH")]
    fs_write: Vec<String>,

    /// Start from nothing instead of the minimal system view (/usr, /lib*,
    /// /bin, /sbin, /etc without secrets, a few devices).
    #[arg(long)]
    no_system_view: bool,

    /// The workload's HOME: the existing directory DIR, granted read-write.
    /// Without it HOME is a fresh private directory, removed on exit, in
    /// which every -r/-w grant under your own home appears at the same
    /// place (e.g. -r ~/.gitconfig).
    #[arg(long = "home", value_name = "DIR")]
    home: Option<String>,

    /// Print the effective policy and exit without running anything.
    #[arg(long)]
    pub show_policy: bool,

    /// Allow outbound connections: host, *.suffix, host:PORT[,PORT], IP,
    /// CIDR, [IPv6]:PORT, :PORT (any host), * (anything); prefix udp:// for
    /// UDP (repeatable). Names are resolved at start and pinned; *.suffix
    /// names reach the addresses sandlock's DNS answers gave for them.
    #[arg(long = "net-allow", value_name = "SPEC")]
    net_allow: Vec<String>,

    /// Give the sandbox a static name NAME -> IP, used to resolve
    /// --net-allow names and in its virtual /etc/hosts (repeatable).
    #[arg(long = "add-host", value_name = "NAME:IP")]
    add_host: Vec<String>,

    /// The resolver sandlock asks for names a rule covers, IP[:PORT]
    /// (repeatable; default: the nameservers of the host's
    /// /etc/resolv.conf). Every DNS query in the sandbox is answered by
    /// sandlock; names no rule covers get NXDOMAIN.
    #[arg(long = "dns-server", value_name = "IP[:PORT]")]
    dns_server: Vec<String>,

    /// Ports the workload may bind and listen on: 8080,9000-9005 (default none).
    #[arg(long = "net-allow-bind", value_name = "PORTS")]
    net_allow_bind: Vec<String>,

    /// Let the workload connect (and send) to the unix socket file PATH,
    /// or to any socket below the directory PATH (repeatable). Sockets
    /// under a write grant need no flag; every other socket file (docker,
    /// D-Bus, ssh-agent, X11) is refused with EACCES.
    #[arg(long = "unix-allow", value_name = "PATH")]
    unix_allow: Vec<String>,

    /// Allow HTTP(S) requests matching 'METHOD HOST[/PATH]' (repeatable).
    /// METHOD is a name or *; HOST an exact name, an IP, * or *.suffix;
    /// PATH defaults to /*, a trailing * is a prefix. Once any allow rule
    /// exists, every other request is refused with 403. Turns on the
    /// intercepting proxy for the --http-port ports.
    #[arg(long = "http-allow", value_name = "RULE")]
    http_allow: Vec<String>,

    /// Refuse HTTP(S) requests matching 'METHOD HOST[/PATH]' (repeatable);
    /// deny wins over allow.
    #[arg(long = "http-deny", value_name = "RULE")]
    http_deny: Vec<String>,

    /// Intercept these TCP ports too, besides 80 and 443: 8080,8443
    /// (repeatable).
    #[arg(long = "http-port", value_name = "PORTS")]
    http_port: Vec<String>,

    /// Pass TLS for this SNI through untouched, without interception:
    /// exact name or *.suffix (repeatable). For clients that pin
    /// certificates.
    #[arg(long = "http-bypass", value_name = "PATTERN")]
    http_bypass: Vec<String>,

    /// Sign intercepted TLS with this CA certificate (PEM) instead of an
    /// ephemeral one; needs --http-key.
    #[arg(long = "http-ca", value_name = "PEM")]
    http_ca: Option<String>,

    /// Private key (PEM) of --http-ca.
    #[arg(long = "http-key", value_name = "PEM")]
    http_key: Option<String>,

    /// Write the CA certificate (public part, PEM) to PATH before the
    /// workload starts, e.g. for curl --cacert.
    #[arg(long = "http-ca-out", value_name = "PATH")]
    http_ca_out: Option<String>,

    /// Also trust this root (PEM) when verifying upstream servers
    /// (repeatable); the host's trusted roots are always used.
    #[arg(long = "upstream-ca", value_name = "PEM")]
    upstream_ca: Vec<String>,

    /// Give up on an upstream that takes longer than SECS to accept or to
    /// answer (the workload gets 504) [default: 60].
    #[arg(long = "http-timeout", value_name = "SECS")]
    http_timeout: Option<String>,

    /// Also splice the sandbox CA into this PEM bundle when the workload
    /// reads it (repeatable); it must exist.
    #[arg(long = "http-inject-ca", value_name = "PATH")]
    http_inject_ca: Vec<String>,

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
    #[arg(long = "secret", value_name = "NAME=SOURCE@HOSTS")]
    secret: Vec<String>,

    /// Substitute secret NAME only in these request headers: NAME=H1,H2
    /// (default: all headers, the URL and the body; repeatable).
    #[arg(long = "secret-headers", value_name = "NAME=H1,H2")]
    secret_headers: Vec<String>,

    /// What a request carrying a secret's placeholder to a host the secret
    /// is not bound to gets: warn (forward it, the placeholder is worthless
    /// there) or block (403) [default: warn].
    #[arg(long = "on-secret-misuse", value_name = "warn|block")]
    on_secret_misuse: Option<String>,

    /// Set an environment variable for the workload (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,

    /// Pass only PATH, TERM and LANG (with --env, TMPDIR and HOME) to the
    /// workload.
    #[arg(long)]
    clean_env: bool,

    /// Working directory of the workload.
    #[arg(long, value_name = "DIR")]
    cwd: Option<String>,

    /// Kill the whole workload tree after SECS seconds (exit status 124).
    #[arg(short = 't', long, value_name = "SECS")]
    timeout: Option<String>,

    /// When started as root, keep capabilities instead of dropping them all.
    #[arg(long)]
    keep_caps: bool,

    /// Memory of the whole workload tree, e.g. 256M or 2G: past it the tree
    /// is killed (exit status 137) and sandlock says so.
    #[arg(long, value_name = "SIZE")]
    memory: Option<String>,

    /// Processes and threads the workload tree may have at once; a fork
    /// past it fails with EAGAIN.
    #[arg(long, value_name = "N")]
    pids: Option<String>,

    /// Share of CPU time for the whole tree: 0.5 is half of one CPU, 2 is
    /// two CPUs' worth.
    #[arg(long, value_name = "FRACTION")]
    cpu: Option<String>,

    /// Open files per process (RLIMIT_NOFILE); past it, EMFILE.
    #[arg(long, value_name = "N")]
    open_files: Option<String>,

    /// Largest file a process may write (RLIMIT_FSIZE), e.g. 100M; past it
    /// the write fails (EFBIG) or SIGXFSZ ends the process.
    #[arg(long, value_name = "SIZE")]
    file_size: Option<String>,

    /// Bytes the workload may write into its private TMPDIR and HOME, e.g.
    /// 64M; past it, ENOSPC.
    #[arg(long, value_name = "SIZE")]
    disk: Option<String>,

    /// Let the workload change DIR through a private copy-on-write layer:
    /// the host's DIR is untouched while it runs (repeatable).
    #[arg(long, value_name = "DIR")]
    cow: Vec<String>,

    /// What happens to the --cow changes at the end: commit (apply them to
    /// DIR), discard, or keep (leave the layer for `sandlock cow
    /// apply|drop`). Default: commit on exit status 0, keep otherwise.
    #[arg(long, value_name = "ACTION")]
    on_exit: Option<String>,

    /// How the --cow changes are listed on stderr: text, json or none.
    #[arg(long, value_name = "FORMAT")]
    cow_summary: Option<String>,

    /// Do not print denials on stderr.
    #[arg(short = 'q', long)]
    quiet: bool,

    /// Append denials and allowed connections to FILE as JSON lines.
    #[arg(long, value_name = "FILE")]
    audit: Option<String>,

    /// Watch the run and write to FILE a profile that lets it pass: the
    /// options given, plus the paths, hosts, ports and HTTP requests it
    /// was seen to need, each with what it was learned from. While it is
    /// watched, the run may read and write wherever you can and reach any
    /// host: learn with a command you trust. Use the result with -p FILE.
    #[arg(long, value_name = "FILE")]
    learn: Option<String>,

    /// The command to run and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

impl RunArgs {
    /// Builds the policy (through the core's builder, as every front door
    /// does) and the command line: the profile first, so that the flags
    /// layer on top of it (a list flag appends, a value flag overrides, a
    /// switch flag turns on).
    pub fn into_policy(self) -> sandlock_core::Result<(Policy, Vec<OsString>)> {
        let mut b = PolicyBuilder::new();
        if let Some(name) = &self.profile {
            profile::find(name)?.apply(&mut b)?;
        }
        if let Some(path) = &self.profile_file {
            profile::apply_file(path, &mut b)?;
        }
        let switches = [
            ("no-system-view", self.no_system_view),
            ("no-default-bundles", self.no_default_bundles),
            ("no-ca-env", self.no_ca_env),
            ("trust-host-cas", self.trust_host_cas),
            ("clean-env", self.clean_env),
            ("keep-caps", self.keep_caps),
            ("quiet", self.quiet),
        ];
        for (name, on) in switches {
            if on {
                b.set(name, "true")?;
            }
        }
        let lists = [
            ("fs-read", self.fs_read),
            ("fs-write", self.fs_write),
            ("net-allow", self.net_allow),
            ("add-host", self.add_host),
            ("dns-server", self.dns_server),
            ("net-allow-bind", self.net_allow_bind),
            ("unix-allow", self.unix_allow),
            ("http-allow", self.http_allow),
            ("http-deny", self.http_deny),
            ("http-port", self.http_port),
            ("http-bypass", self.http_bypass),
            ("upstream-ca", self.upstream_ca),
            ("http-inject-ca", self.http_inject_ca),
            ("secret", self.secret),
            ("secret-headers", self.secret_headers),
            ("env", self.env),
            ("cow", self.cow),
        ];
        for (name, values) in lists {
            for v in values {
                b.set(name, &v)?;
            }
        }
        let values = [
            ("http-ca", self.http_ca),
            ("http-key", self.http_key),
            ("http-ca-out", self.http_ca_out),
            ("http-timeout", self.http_timeout),
            ("on-secret-misuse", self.on_secret_misuse),
            ("home", self.home),
            ("cwd", self.cwd),
            ("timeout", self.timeout),
            ("audit", self.audit),
            ("learn", self.learn),
            ("memory", self.memory),
            ("pids", self.pids),
            ("cpu", self.cpu),
            ("open-files", self.open_files),
            ("file-size", self.file_size),
            ("disk", self.disk),
            ("on-exit", self.on_exit),
            ("cow-summary", self.cow_summary),
        ];
        for (name, value) in values {
            if let Some(v) = value {
                b.set(name, &v)?;
            }
        }
        Ok((b.build()?, self.command))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use sandlock_core::policy::{Kind, OPTIONS};

    /// Every policy option is a flag of `sandlock run`, of the same kind,
    /// and every flag but --show-policy and the profile flags is a policy
    /// option: no option
    /// exists in one front door and not the others.
    #[test]
    fn run_flags_are_the_policy_options() {
        let cli = Cli::command();
        let run = cli.find_subcommand("run").expect("run");
        let mut flags: Vec<(String, Kind)> = run
            .get_arguments()
            .filter_map(|a| {
                let long = a.get_long()?;
                let kind = match a.get_action() {
                    clap::ArgAction::SetTrue => Kind::Switch,
                    clap::ArgAction::Append => Kind::List,
                    _ => Kind::Value,
                };
                Some((long.to_string(), kind))
            })
            .filter(|(l, _)| {
                !["show-policy", "help", "profile", "profile-file"].contains(&l.as_str())
            })
            .collect();
        flags.sort_by(|a, b| a.0.cmp(&b.0));
        let mut options: Vec<(String, Kind)> = OPTIONS
            .iter()
            .map(|o| (o.name().to_string(), o.kind))
            .collect();
        options.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(flags, options);
    }
}
