//! Every policy option by name, and the one builder every front door uses:
//! the command line, TOML profiles, the C ABI and the Python SDK all set
//! options by their `sandlock run` long names (`net-allow`, `http-ca`, …)
//! and get the same parsing, the same cross-checks and the same errors,
//! each naming the option and the value.
//!
//! This module must never accept an option one door could not express:
//! [`super::OPTIONS`] is the list, and every door is built from it.

use std::path::PathBuf;

use super::options::{option, Kind, OptionInfo};
use super::{
    cow::SummaryFormat, parse_dns_server, parse_env, parse_seconds, parse_timeout, AddHost,
    CaFiles, HostMatch, HttpRule, NetRule, Policy, PortSet,
};
use crate::secrets::{self, Misuse, SecretHeaders, SecretSpec};
use crate::{Error, Result};

/// A policy under construction. Start with [`PolicyBuilder::new`], set
/// options, then [`PolicyBuilder::build`].
#[derive(Debug, Clone)]
pub struct PolicyBuilder {
    policy: Policy,
    http_ca: Option<PathBuf>,
    http_key: Option<PathBuf>,
    secret_headers: Vec<SecretHeaders>,
    settings: Vec<(&'static str, String)>,
    /// The profile being applied, if one is: secrets remember it.
    origin: Option<String>,
}

impl Default for PolicyBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl PolicyBuilder {
    /// The default policy: the minimal system view, no network, no HTTP
    /// rules, no secrets.
    pub fn new() -> PolicyBuilder {
        let mut policy = Policy::default();
        policy.fs.system_view = true;
        PolicyBuilder {
            policy,
            http_ca: None,
            http_key: None,
            secret_headers: Vec::new(),
            settings: Vec::new(),
            origin: None,
        }
    }

    /// Every option set so far, as (name, value) in the order given,
    /// whether by hand or by a profile: replayed into a new builder, they
    /// make the same policy. The OCI runtime checks a container's policy
    /// on the host and hands the list to the supervisor inside the
    /// container this way. No value here is a secret: a `secret` names
    /// only where its value comes from.
    pub fn settings(&self) -> &[(&'static str, String)] {
        &self.settings
    }

    /// Marks the options set from now on as coming from `origin` (a
    /// profile, as messages name it), or from the caller again (`None`).
    pub(crate) fn set_origin(&mut self, origin: Option<String>) {
        self.origin = origin;
    }

    /// Sets option `name` (a `sandlock run` long flag without dashes) to
    /// `value`: a list option gets it added, a value option replaced, a
    /// switch turned on (`true`) or off (`false`).
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        self.apply(name, value)?;
        let name = option(name).map_or("", OptionInfo::name);
        self.settings.push((name, value.to_string()));
        Ok(())
    }

    fn apply(&mut self, name: &str, value: &str) -> Result<()> {
        let Some(info) = option(name) else {
            return Err(Error::invalid(
                "option",
                name,
                "no such option (see `sandlock run --help`)",
            ));
        };
        let flag = info.flag;
        if info.kind == Kind::Switch {
            let on = match value {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => return Err(Error::invalid(flag, value, "expected true or false")),
            };
            self.switch(info.name(), on);
            return Ok(());
        }
        let p = &mut self.policy;
        match info.name() {
            "fs-read" => p.fs.read.push(absolute(flag, value)?),
            "fs-write" => p.fs.write.push(absolute(flag, value)?),
            "home" => p.fs.home = Some(absolute(flag, value)?),
            "net-allow" => p.net.allow.push(NetRule::parse(value)?),
            "add-host" => p.net.hosts.push(AddHost::parse(value)?),
            "dns-server" => p.net.dns_servers.push(parse_dns_server(value)?),
            "net-allow-bind" => p.net.bind.extend(&PortSet::parse(value, flag, value)?),
            "unix-allow" => p.net.unix_allow.push(absolute(flag, value)?),
            "http-allow" => p.http.allow.push(HttpRule::parse(flag, value)?),
            "http-deny" => p.http.deny.push(HttpRule::parse(flag, value)?),
            "http-port" => p
                .http
                .extra_ports
                .extend(&PortSet::parse(value, flag, value)?),
            "http-bypass" => p
                .http
                .bypass
                .push(HostMatch::parse(flag, value, value, false)?),
            "http-ca" => self.http_ca = Some(absolute(flag, value)?),
            "http-key" => self.http_key = Some(absolute(flag, value)?),
            "http-ca-out" => p.http.ca_out = Some(absolute(flag, value)?),
            "upstream-ca" => p.http.upstream_ca.push(absolute(flag, value)?),
            "http-timeout" => p.http.upstream_timeout = Some(parse_seconds(flag, value)?),
            "http-inject-ca" => p.http.inject_ca.push(absolute(flag, value)?),
            "secret" => {
                let mut spec = SecretSpec::parse(value)?;
                spec.origin = self.origin.clone();
                p.secrets.push(spec);
            }
            "secret-headers" => self
                .secret_headers
                .push(secrets::parse_secret_headers(value)?),
            "on-secret-misuse" => p.secret_misuse = Misuse::parse(value)?,
            "env" => p.process.env.push(parse_env(value)?),
            "cwd" => p.process.cwd = Some(absolute(flag, value)?),
            "timeout" => p.process.timeout = Some(parse_timeout(value)?),
            "audit" => p.report.audit = Some(PathBuf::from(value)),
            "learn" => p.report.learn = Some(absolute(flag, value)?),
            limit @ ("memory" | "pids" | "cpu" | "open-files" | "file-size" | "disk") => {
                p.limits.set(flag, limit, value)?
            }
            "cow" => p.cow.add(absolute(flag, value)?)?,
            "on-exit" => p.cow.on_exit = Some(super::OnExit::parse(value)?),
            "cow-summary" => p.cow.summary = super::SummaryFormat::parse(value)?,
            other => unreachable!("option {other} has no setter"),
        }
        Ok(())
    }

    fn switch(&mut self, name: &str, on: bool) {
        let p = &mut self.policy;
        match name {
            "no-system-view" => p.fs.system_view = !on,
            "no-default-bundles" => p.http.no_default_bundles = on,
            "no-ca-env" => p.http.no_ca_env = on,
            "trust-host-cas" => p.http.trust_host_cas = on,
            "clean-env" => p.process.clean_env = on,
            "keep-caps" => p.process.keep_caps = on,
            "quiet" => p.report.quiet = on,
            other => unreachable!("switch {other} has no setter"),
        }
    }

    /// The finished policy, after the checks that span options.
    pub fn build(self) -> Result<Policy> {
        let mut p = self.policy;
        p.http.ca = match (self.http_ca, self.http_key) {
            (Some(cert), Some(key)) => Some(CaFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => return Err(Error::Usage("--http-ca needs --http-key".into())),
            (None, Some(_)) => return Err(Error::Usage("--http-key needs --http-ca".into())),
        };
        if p.cow.dirs.is_empty()
            && (p.cow.on_exit.is_some() || p.cow.summary != SummaryFormat::Text)
        {
            return Err(Error::Usage(
                "--on-exit and --cow-summary have no effect without a --cow directory".into(),
            ));
        }
        if p.secrets.is_empty() && p.secret_misuse == Misuse::Block {
            return Err(Error::Usage(
                "--on-secret-misuse block has no effect without a --secret".into(),
            ));
        }
        for (name, headers) in self.secret_headers {
            let Some(spec) = p.secrets.iter_mut().find(|s| s.name == name) else {
                return Err(Error::invalid(
                    "--secret-headers",
                    &format!("{name}=..."),
                    format!("no --secret named {name}"),
                ));
            };
            spec.headers = Some(headers);
        }
        p.http.check_bypass()?;
        p.given = self.settings;
        // A learning run intercepts (to see each request), and the profile
        // it writes has the rules that make these options count.
        let intercepting = p.intercepting() || p.report.learn.is_some();
        if let Some(flag) = p.http.unused_option(intercepting) {
            return Err(Error::Usage(format!(
                "{flag} has no effect without an --http-allow, --http-deny or --secret"
            )));
        }
        Ok(p)
    }
}

/// `value` as an absolute path (relative to the current directory).
fn absolute(flag: &'static str, value: &str) -> Result<PathBuf> {
    if value.is_empty() {
        return Err(Error::invalid(flag, value, "empty path"));
    }
    std::path::absolute(value).map_err(|e| Error::invalid(flag, value, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::OPTIONS;

    #[test]
    fn every_option_has_a_setter_and_a_flag() {
        for o in OPTIONS {
            assert_eq!(option(o.name()).unwrap().flag, o.flag);
            let mut b = PolicyBuilder::new();
            let value = match o.kind {
                Kind::Switch => "true",
                _ => "",
            };
            // Any outcome but a panic: an empty value may be refused.
            let _ = b.set(o.name(), value);
        }
    }

    #[test]
    fn lists_append_values_replace_switches_toggle() {
        let mut b = PolicyBuilder::new();
        b.set("net-allow", "a.test:443").unwrap();
        b.set("net-allow", "udp://b.test:53").unwrap();
        b.set("timeout", "5").unwrap();
        b.set("timeout", "7").unwrap();
        b.set("no-system-view", "true").unwrap();
        b.set("no-system-view", "false").unwrap();
        let p = b.build().unwrap();
        assert_eq!(p.net.allow.len(), 2);
        assert_eq!(p.process.timeout, Some(std::time::Duration::from_secs(7)));
        assert!(p.fs.system_view);
    }

    #[test]
    fn settings_replay_into_the_same_policy() {
        let mut b = PolicyBuilder::new();
        b.set("net-allow", "a.test:443").unwrap();
        b.set("quiet", "true").unwrap();
        assert!(b.set("timeout", "never").is_err());
        b.set("secret", "T@a.test").unwrap();
        assert_eq!(
            b.settings(),
            [
                ("net-allow", "a.test:443".to_string()),
                ("quiet", "true".to_string()),
                ("secret", "T@a.test".to_string()),
            ]
        );
        let mut again = PolicyBuilder::new();
        for (name, value) in b.settings() {
            again.set(name, value).unwrap();
        }
        let (a, b) = (b.build().unwrap(), again.build().unwrap());
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }

    #[test]
    fn errors_name_the_option_and_the_value() {
        let mut b = PolicyBuilder::new();
        let e = b.set("net-allow", "a.test:99999").unwrap_err().to_string();
        assert!(
            e.contains("--net-allow") && e.contains("a.test:99999"),
            "{e}"
        );
        let e = b.set("no-such", "x").unwrap_err().to_string();
        assert!(e.contains("no-such"), "{e}");
        let e = b.set("quiet", "maybe").unwrap_err().to_string();
        assert!(e.contains("--quiet") && e.contains("maybe"), "{e}");
        let mut b = PolicyBuilder::new();
        b.set("http-ca", "/ca.pem").unwrap();
        let e = b.build().unwrap_err().to_string();
        assert!(e.contains("--http-ca") && e.contains("--http-key"), "{e}");
        let mut b = PolicyBuilder::new();
        b.set("http-allow", "GET api.test/readonly").unwrap();
        b.set("http-bypass", "*.api.test").unwrap();
        let e = b.build().unwrap_err().to_string();
        assert!(
            e.contains("--http-bypass")
                && e.contains("*.api.test")
                && e.contains("--http-allow 'GET api.test/readonly'"),
            "{e}"
        );
        let mut b = PolicyBuilder::new();
        b.set("secret-headers", "T=authorization").unwrap();
        let e = b.build().unwrap_err().to_string();
        assert!(
            e.contains("--secret-headers") && e.contains("no --secret named T"),
            "{e}"
        );
    }
}
