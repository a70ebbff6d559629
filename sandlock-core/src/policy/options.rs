//! The one table of policy options: every front door's option, with its
//! name, how it takes values, the concern it belongs to and its help text.
//!
//! The command line builds its `sandlock run` flags from it (grouped by
//! concern in `--help`, and so in the man page and completions), profiles
//! take their `[section] key`s from it, the C ABI lists it, and the Python
//! SDK's typed signature is generated from it. Must never hold an option the
//! builder cannot set: its tests set each one.

/// How an option takes values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Repeatable: every value is added.
    List,
    /// One value; a later one replaces an earlier one.
    Value,
    /// On or off: `true` or `false`.
    Switch,
}

/// The concern an option belongs to: its heading in `sandlock run --help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// What the workload may read, write and execute.
    Filesystem,
    /// Where it may connect, what it may bind, its names.
    Network,
    /// The intercepting proxy's rules.
    Http,
    /// The sandbox CA and the trust bundles it is spliced into.
    Trust,
    /// Secrets the workload may use but not read.
    Secrets,
    /// Its environment, directory, time and capabilities.
    Process,
    /// What it may consume.
    Limits,
    /// Copy-on-write workspaces.
    Cow,
    /// What sandlock says, and where.
    Output,
}

impl Group {
    /// Every group, in the order `--help` shows them.
    pub const ALL: [Group; 9] = [
        Group::Filesystem,
        Group::Network,
        Group::Http,
        Group::Trust,
        Group::Secrets,
        Group::Process,
        Group::Limits,
        Group::Cow,
        Group::Output,
    ];

    /// The heading `--help` shows for it.
    pub fn heading(self) -> &'static str {
        match self {
            Group::Filesystem => "Filesystem",
            Group::Network => "Network",
            Group::Http => "HTTP",
            Group::Trust => "Trust (the sandbox CA)",
            Group::Secrets => "Secrets",
            Group::Process => "Process",
            Group::Limits => "Resource limits",
            Group::Cow => "Copy-on-write workspaces",
            Group::Output => "Output",
        }
    }
}

/// How a profile key's values are read, beyond the option's [`Kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// A string passed on as it is (for a switch: `true`/`false` as they are).
    Text,
    /// A path: `~/` is the user's home, a relative path is relative to the
    /// profile's directory.
    Path,
    /// Seconds, sizes or ports: a TOML number or a string.
    Number,
    /// A switch named for the default (`system-view = false` sets
    /// `no-system-view`).
    Inverted,
}

/// Where a profile sets an option: `[section] key`, read as `how`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileKey {
    /// The section (`filesystem`, `network`, ...).
    pub section: &'static str,
    /// The key in it.
    pub key: &'static str,
    /// How its values are read.
    pub how: How,
}

/// One policy option.
#[derive(Debug, Clone, Copy)]
pub struct OptionInfo {
    /// The `sandlock run` long flag, dashes included.
    pub flag: &'static str,
    /// Its one-letter flag, if it has one.
    pub short: Option<char>,
    /// How it takes values.
    pub kind: Kind,
    /// What its value is called in help (empty for a switch).
    pub value_name: &'static str,
    /// The concern it belongs to.
    pub group: Group,
    /// Its help: the first sentence is the summary.
    pub help: &'static str,
    /// Its profile key; `None` for the options a profile writes as tables
    /// of their own (`[process.env]`, `[secrets.NAME]`, `[secrets]
    /// on-misuse`).
    pub profile: Option<ProfileKey>,
}

impl OptionInfo {
    /// The flag without its dashes: the option's name in every door.
    pub fn name(&self) -> &'static str {
        &self.flag[2..]
    }

    /// The first sentence of the help.
    pub fn summary(&self) -> &'static str {
        match self.help.find(". ") {
            Some(i) => &self.help[..=i],
            None => self.help,
        }
    }
}

const fn opt(
    flag: &'static str,
    short: Option<char>,
    kind: Kind,
    value_name: &'static str,
    group: Group,
    help: &'static str,
    profile: Option<ProfileKey>,
) -> OptionInfo {
    OptionInfo {
        flag,
        short,
        kind,
        value_name,
        group,
        help,
        profile,
    }
}

/// `[section] key`, read as `how`.
const fn key(section: &'static str, key: &'static str, how: How) -> Option<ProfileKey> {
    Some(ProfileKey { section, key, how })
}

use Group::*;
use How::{Inverted, Number, Path, Text};
use Kind::*;

/// Every policy option, in the order `sandlock run --help` lists them.
#[rustfmt::skip]
pub const OPTIONS: &[OptionInfo] = &[
    opt("--fs-read", Some('r'), List, "PATH", Filesystem,
        "Allow reading and executing PATH and everything below it (repeatable).",
        key("filesystem", "read", Path)),
    opt("--fs-write", Some('w'), List, "PATH", Filesystem,
        "Allow reading, writing and executing PATH and everything below it (repeatable).",
        key("filesystem", "write", Path)),
    opt("--no-system-view", None, Switch, "", Filesystem,
        "Start from nothing instead of the minimal system view (/usr, /lib*, /bin, /sbin, \
         /etc without secrets, a few devices).",
        key("filesystem", "system-view", Inverted)),
    opt("--home", None, Value, "DIR", Filesystem,
        "The workload's HOME: the existing directory DIR, granted read-write. Without it HOME \
         is a fresh private directory, removed on exit, in which every -r/-w grant under your \
         own home appears at the same place (e.g. -r ~/.gitconfig).",
        key("filesystem", "home", Path)),
    opt("--net-allow", None, List, "SPEC", Network,
        "Allow outbound connections: host, *.suffix, host:PORT[,PORT], IP, CIDR, [IPv6]:PORT, \
         :PORT (any host), * (anything); prefix udp:// for UDP (repeatable). Names are resolved \
         at start and pinned; *.suffix names reach the addresses sandlock's DNS answers gave \
         for them.",
        key("network", "allow", Text)),
    opt("--add-host", None, List, "NAME:IP", Network,
        "Give the sandbox a static name NAME -> IP, used to resolve --net-allow names and in \
         its virtual /etc/hosts (repeatable).",
        key("network", "add-host", Text)),
    opt("--dns-server", None, List, "IP[:PORT]", Network,
        "The resolver sandlock asks for names a rule covers (repeatable; default: the \
         nameservers of the host's /etc/resolv.conf). Every DNS query in the sandbox is \
         answered by sandlock; names no rule covers get NXDOMAIN.",
        key("network", "dns-server", Text)),
    opt("--net-allow-bind", None, List, "PORTS", Network,
        "Ports the workload may bind and listen on: 8080,9000-9005 (default none).",
        key("network", "allow-bind", Number)),
    opt("--unix-allow", None, List, "PATH", Network,
        "Let the workload connect (and send) to the unix socket file PATH, or to any socket \
         below the directory PATH (repeatable). Sockets under a write grant need no flag; \
         every other socket file (docker, D-Bus, ssh-agent, X11) is refused with EACCES.",
        key("network", "unix-allow", Path)),
    opt("--http-allow", None, List, "RULE", Http,
        "Allow HTTP(S) requests matching 'METHOD HOST[/PATH]' (repeatable). METHOD is a name or \
         *; HOST an exact name, an IP, * or *.suffix; PATH defaults to /*, a trailing * is a \
         prefix. Once any allow rule exists, every other request is refused with 403. Turns on \
         the intercepting proxy for ports 80, 443 and --http-port, which the rules' hosts may \
         then reach.",
        key("http", "allow", Text)),
    opt("--http-deny", None, List, "RULE", Http,
        "Refuse HTTP(S) requests matching 'METHOD HOST[/PATH]' (repeatable); deny wins over \
         allow.",
        key("http", "deny", Text)),
    opt("--http-port", None, List, "PORTS", Http,
        "Intercept these TCP ports too, besides 80 and 443: 8080,8443 (repeatable).",
        key("http", "ports", Number)),
    opt("--http-bypass", None, List, "PATTERN", Http,
        "Pass TLS for this SNI through untouched, without interception: exact name or \
         *.suffix (repeatable). For clients that pin certificates.",
        key("tls", "bypass", Text)),
    opt("--http-ca", None, Value, "PEM", Trust,
        "Sign intercepted TLS with this CA certificate (PEM) instead of an ephemeral one; \
         needs --http-key.",
        key("tls", "ca", Path)),
    opt("--http-key", None, Value, "PEM", Trust, "Private key (PEM) of --http-ca.",
        key("tls", "key", Path)),
    opt("--http-ca-out", None, Value, "PATH", Trust,
        "Write the CA certificate (public part, PEM) to PATH before the workload starts, e.g. \
         for curl --cacert.",
        key("tls", "ca-out", Path)),
    opt("--upstream-ca", None, List, "PEM", Trust,
        "Also trust this root (PEM) when verifying upstream servers (repeatable); the host's \
         trusted roots are always used.",
        key("tls", "upstream-ca", Path)),
    opt("--http-timeout", None, Value, "SECS", Http,
        "Give up on an upstream that takes longer than SECS to accept or to answer (the \
         workload gets 504) [default: 60].",
        key("http", "timeout", Number)),
    opt("--http-inject-ca", None, List, "PATH", Trust,
        "Also splice the sandbox CA into this PEM bundle when the workload reads it \
         (repeatable); it must exist.",
        key("tls", "inject-ca", Path)),
    opt("--no-default-bundles", None, Switch, "", Trust,
        "Splice the CA only into --http-inject-ca bundles, not into the system bundles and \
         certifi.",
        key("tls", "default-bundles", Inverted)),
    opt("--no-ca-env", None, Switch, "", Trust,
        "Do not point SSL_CERT_FILE, REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS and the other CA \
         variables (--show-policy lists them) at the sandbox CA for the workload.",
        key("tls", "ca-env", Inverted)),
    opt("--trust-host-cas", None, Switch, "", Trust,
        "Append the host's trusted roots to spliced bundles too (for hosts behind a \
         TLS-inspecting corporate proxy).",
        key("tls", "trust-host-cas", Text)),
    opt("--secret", None, List, "NAME=SOURCE@HOSTS", Secrets,
        "Give the workload a secret it can use but never read: NAME=SOURCE@HOSTS, SOURCE being \
         env:VAR, file:PATH or fd:N; NAME@HOSTS reads env NAME. HOSTS: comma-separated names \
         or *.suffix. The workload's $NAME holds a placeholder; the proxy swaps in the real \
         value only on TLS requests to those hosts. Append ;plaintext to allow plain HTTP too \
         (repeatable).",
        None),
    opt("--secret-headers", None, List, "NAME=H1,H2", Secrets,
        "Substitute secret NAME only in these request headers (default: all headers, the URL \
         and the body; repeatable).",
        None),
    opt("--on-secret-misuse", None, Value, "warn|block", Secrets,
        "What a request carrying a secret's placeholder to a host the secret is not bound to \
         gets: warn (forward it, the placeholder is worthless there) or block (403) \
         [default: warn].",
        None),
    opt("--env", None, List, "KEY=VALUE", Process,
        "Set an environment variable for the workload (repeatable).",
        None),
    opt("--clean-env", None, Switch, "", Process,
        "Pass only PATH, TERM and LANG (with --env, TMPDIR and HOME) to the workload.",
        key("process", "clean-env", Text)),
    opt("--cwd", None, Value, "DIR", Process, "Working directory of the workload.",
        key("process", "cwd", Path)),
    opt("--timeout", Some('t'), Value, "SECS", Process,
        "Kill the whole workload tree after SECS seconds (exit status 124).",
        key("process", "timeout", Number)),
    opt("--keep-caps", None, Switch, "", Process,
        "When started as root, keep capabilities instead of dropping them all.",
        key("process", "keep-caps", Text)),
    opt("--memory", None, Value, "SIZE", Limits,
        "Memory of the whole workload tree, e.g. 256M or 2G: past it the tree is killed (exit \
         status 137) and sandlock says so.",
        key("limits", "memory", Number)),
    opt("--pids", None, Value, "N", Limits,
        "Processes and threads the workload tree may have at once; a fork past it fails with \
         EAGAIN.",
        key("limits", "pids", Number)),
    opt("--cpu", None, Value, "FRACTION", Limits,
        "Share of CPU time for the whole tree: 0.5 is half of one CPU, 2 is two CPUs' worth.",
        key("limits", "cpu", Number)),
    opt("--open-files", None, Value, "N", Limits,
        "Open files per process (RLIMIT_NOFILE); past it, EMFILE.",
        key("limits", "open-files", Number)),
    opt("--file-size", None, Value, "SIZE", Limits,
        "Largest file a process may write (RLIMIT_FSIZE), e.g. 100M; past it the write fails \
         (EFBIG) or SIGXFSZ ends the process.",
        key("limits", "file-size", Number)),
    opt("--disk", None, Value, "SIZE", Limits,
        "Bytes the workload may write into its private TMPDIR and HOME, e.g. 64M; past it, \
         ENOSPC.",
        key("limits", "disk", Number)),
    opt("--cow", None, List, "DIR", Cow,
        "Let the workload change DIR through a private copy-on-write layer: the host's DIR is \
         untouched while it runs (repeatable).",
        key("cow", "dirs", Path)),
    opt("--on-exit", None, Value, "ACTION", Cow,
        "What happens to the --cow changes at the end: commit (apply them to DIR), discard, \
         or keep (leave the layer for `sandlock cow apply|drop`). Default: commit on exit \
         status 0, keep otherwise.",
        key("cow", "on-exit", Text)),
    opt("--cow-summary", None, Value, "FORMAT", Cow,
        "How the --cow changes are listed on stderr: text, json or none.",
        key("cow", "summary", Text)),
    opt("--quiet", Some('q'), Switch, "", Output, "Do not print denials on stderr.",
        key("process", "quiet", Text)),
    opt("--audit", None, Value, "FILE", Output,
        "Append denials and allowed connections to FILE as JSON lines.",
        key("process", "audit", Path)),
    opt("--learn", None, Value, "FILE", Output,
        "Watch the run and write to FILE a profile that lets it pass: the options given, plus \
         the paths, hosts, ports and HTTP requests it was seen to need, each with what it was \
         learned from. While it is watched, the run may read and write wherever you can and \
         reach any host: learn with a command you trust. Use the result with -p FILE.",
        key("process", "learn", Path)),
];

/// The option named `name`, if there is one.
pub fn option(name: &str) -> Option<&'static OptionInfo> {
    OPTIONS.iter().find(|o| o.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_flags_and_help_are_well_formed() {
        for o in OPTIONS {
            assert!(o.flag.starts_with("--") && o.name().len() > 1, "{o:?}");
            assert_eq!(o.kind == Kind::Switch, o.value_name.is_empty(), "{o:?}");
            assert!(o.help.ends_with('.') || o.help.ends_with(']'), "{o:?}");
            assert!(!o.summary().is_empty() && o.summary().len() <= o.help.len());
            assert_eq!(OPTIONS.iter().filter(|p| p.name() == o.name()).count(), 1);
            if let Some(c) = o.short {
                assert_eq!(OPTIONS.iter().filter(|p| p.short == Some(c)).count(), 1);
            }
        }
        assert!(Group::ALL
            .iter()
            .all(|g| OPTIONS.iter().any(|o| o.group == *g)));
    }

    /// Every option has a profile key of its own, but the four a profile
    /// writes as tables; an inverted key is a switch's.
    #[test]
    fn every_option_has_one_profile_key() {
        let tables = ["env", "secret", "secret-headers", "on-secret-misuse"];
        for o in OPTIONS {
            match o.profile {
                None => assert!(tables.contains(&o.name()), "{} has no key", o.flag),
                Some(k) => {
                    let same = OPTIONS
                        .iter()
                        .filter(|p| {
                            p.profile
                                .is_some_and(|q| (q.section, q.key) == (k.section, k.key))
                        })
                        .count();
                    assert_eq!(same, 1, "[{}] {} twice", k.section, k.key);
                    assert!(
                        k.how != How::Inverted || o.kind == Kind::Switch,
                        "{}",
                        o.flag
                    );
                }
            }
        }
    }
}
