//! Command-line grammar. clap collects the flags; their values go to the
//! core's `PolicyBuilder` under the same names, as from every other front
//! door, and a malformed value is refused (exit 2) with a message naming
//! the flag and the value.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Args, Parser, Subcommand};
use sandlock_core::policy::{Kind, OptionInfo, PolicyBuilder, OPTIONS};
use sandlock_core::{profile, Policy};

/// Run untrusted programs under Landlock + seccomp with a supervisor that
/// owns their network egress. No root, no containers.
#[derive(Debug, Parser)]
#[command(name = "sandlock", version, about, long_about = None, after_help = AFTER_HELP)]
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
    /// Print a completion script for SHELL on stdout, e.g.
    /// `sandlock completions bash > /etc/bash_completion.d/sandlock`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the man page of sandlock, or of one of its commands, on
    /// stdout (roff), e.g. `sandlock man run | man -l -`.
    Man {
        /// The command (run, check, profile, cow, completions); none:
        /// sandlock itself.
        command: Option<String>,
    },
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

/// What `sandlock --help` ends with.
const AFTER_HELP: &str = "\
Examples:
  sandlock check                                  # what this kernel supports
  sandlock run -r . -- python3 script.py          # read the current directory, nothing else
  sandlock run --learn app.toml -- ./app          # watch a run, write the profile it needs
  sandlock run -p ./app.toml -- ./app             # run under that profile
  sandlock run --help                             # every option, by concern

sandlock run exits with the command's status (see sandlock run --help).";

/// What `sandlock run --help` ends with.
const RUN_AFTER_HELP: &str = "\
Examples:
  sandlock run -r ~/data -- python3 analyze.py
  sandlock run -w . --net-allow pypi.org:443 -- pip install -r requirements.txt
  sandlock run --http-allow 'GET api.github.com/repos/*' --secret GH_TOKEN@api.github.com -- ./agent
  sandlock run --learn app.toml -- ./app        # then: sandlock run -p ./app.toml -- ./app

Exit status:
  the command's own, or 128+N when signal N ended it (137: killed, e.g. by --memory);
  124 --timeout expired; 125 sandlock could not set up (or --cow changes stayed in the layer);
  126 the command cannot be executed; 127 it was not found; 2 a bad flag or value.";

/// Options of `sandlock run`.
#[derive(Debug, Args)]
#[command(after_help = RUN_AFTER_HELP)]
pub struct RunArgs {
    /// Start from profile NAME: the user's
    /// ~/.config/sandlock/profiles/NAME.toml, else a shipped one; a NAME
    /// with a '/' in it or ending in .toml is a file (-p ./learned.toml).
    /// Flags given with it are layered on top: lists append, values
    /// override.
    #[arg(
        short = 'p',
        long = "profile",
        value_name = "NAME",
        help_heading = "Profile"
    )]
    profile: Option<String>,

    /// Start from the profile in this TOML file (relative paths in it are
    /// relative to its directory).
    #[arg(
        long = "profile-file",
        value_name = "PATH",
        conflicts_with = "profile",
        help_heading = "Profile"
    )]
    profile_file: Option<PathBuf>,

    /// Every policy option, from the one table.
    #[command(flatten)]
    policy: PolicyArgs,

    /// Print the effective policy and exit without running anything.
    #[arg(long, help_heading = "Output")]
    pub show_policy: bool,

    /// The command to run and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// The policy options of `sandlock run`, made from the one table every
/// front door shares ([`OPTIONS`]): each becomes a flag under its concern's
/// heading, and what the user gave comes back as (option, value) in the
/// order given, for the policy builder.
#[derive(Debug, Default)]
pub struct PolicyArgs {
    settings: Vec<(&'static str, String)>,
}

/// The flag for one option.
fn flag(o: &'static OptionInfo) -> Arg {
    let a = Arg::new(o.name())
        .long(o.name())
        .help(o.summary().trim_end_matches('.'))
        .long_help(o.help)
        .help_heading(o.group.heading());
    let a = match o.short {
        Some(c) => a.short(c),
        None => a,
    };
    match o.kind {
        Kind::Switch => a.action(ArgAction::SetTrue),
        Kind::List => a.action(ArgAction::Append).value_name(o.value_name),
        Kind::Value => a.action(ArgAction::Set).value_name(o.value_name),
    }
}

impl clap::Args for PolicyArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        OPTIONS.iter().fold(cmd, |cmd, o| cmd.arg(flag(o)))
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl clap::FromArgMatches for PolicyArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut given: Vec<(usize, &'static str, String)> = Vec::new();
        for o in OPTIONS {
            let name = o.name();
            if o.kind == Kind::Switch {
                if m.get_flag(name) {
                    let at = m.index_of(name).unwrap_or(0);
                    given.push((at, name, "true".to_string()));
                }
                continue;
            }
            let (Some(values), Some(at)) = (m.get_many::<String>(name), m.indices_of(name)) else {
                continue;
            };
            given.extend(at.zip(values).map(|(i, v)| (i, name, v.clone())));
        }
        given.sort_by_key(|(at, _, _)| *at);
        Ok(PolicyArgs {
            settings: given.into_iter().map(|(_, n, v)| (n, v)).collect(),
        })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

/// The hint for a command given to `sandlock run` without `--` before it
/// (clap sees its first word as an unexpected argument): the same line,
/// with `--` where it belongs.
pub fn separator_hint(e: &clap::Error, args: &[String]) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument
        || args.get(1).map(String::as_str) != Some("run")
        || args.iter().any(|a| a == "--")
    {
        return None;
    }
    let Some(ContextValue::String(word)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    if word.starts_with('-') {
        return None;
    }
    let at = args.iter().skip(2).position(|a| a == word)? + 2;
    let (options, command) = args.split_at(at);
    let mut line = vec!["sandlock".to_string()];
    line.extend(options.iter().skip(1).cloned());
    line.push("--".into());
    line.extend(command.iter().cloned());
    Some(format!(
        "sandlock: the command goes after `--`: {}",
        line.join(" ")
    ))
}

impl RunArgs {
    /// Builds the policy (through the core's builder, as every front door
    /// does) and the command line: the profile first, so that the flags
    /// layer on top of it (a list flag appends, a value flag overrides, a
    /// switch flag turns on), then the flags in the order given.
    pub fn into_policy(self) -> sandlock_core::Result<(Policy, Vec<OsString>)> {
        let mut b = PolicyBuilder::new();
        if let Some(name) = &self.profile {
            profile::find(name)?.apply(&mut b)?;
        }
        if let Some(path) = &self.profile_file {
            profile::apply_file(path, &mut b)?;
        }
        for (name, value) in &self.policy.settings {
            b.set(name, value)?;
        }
        Ok((b.build()?, self.command))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use sandlock_core::policy::Group;

    fn run_args(argv: &[&str]) -> RunArgs {
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Run(run) => *run,
            other => panic!("{other:?}"),
        }
    }

    /// The flags reach the builder in the order given, each under its
    /// option's name, switches as "true".
    #[test]
    fn flags_come_back_in_the_order_given() {
        let run = run_args(&[
            "sandlock",
            "run",
            "-q",
            "--net-allow",
            "a.test:1",
            "-r",
            "/x",
            "--net-allow",
            "b.test:2",
            "--timeout",
            "5",
            "--",
            "true",
        ]);
        let got: Vec<(&str, &str)> = run
            .policy
            .settings
            .iter()
            .map(|(n, v)| (*n, v.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("quiet", "true"),
                ("net-allow", "a.test:1"),
                ("fs-read", "/x"),
                ("net-allow", "b.test:2"),
                ("timeout", "5"),
            ]
        );
        assert_eq!(run.command, ["true"]);
    }

    /// `--help` shows every option under its concern's heading, then the
    /// examples and the exit codes.
    #[test]
    fn help_groups_options_by_concern() {
        let mut cli = Cli::command();
        let help = cli
            .find_subcommand_mut("run")
            .expect("run")
            .render_long_help()
            .to_string();
        let mut heads: Vec<(usize, &str)> = Group::ALL
            .iter()
            .map(|g| {
                let at = help.find(&format!("\n{}:\n", g.heading()));
                (
                    at.unwrap_or_else(|| panic!("no {}\n{help}", g.heading())),
                    g.heading(),
                )
            })
            .collect();
        heads.sort();
        for o in OPTIONS {
            let at = help
                .find(&format!("--{} <", o.name()))
                .or_else(|| help.find(&format!("--{}\n", o.name())))
                .unwrap_or_else(|| panic!("{} not in the help", o.flag));
            let under = heads.iter().rev().find(|(h, _)| *h < at).map(|(_, n)| *n);
            assert_eq!(under, Some(o.group.heading()), "{}", o.flag);
        }
        assert!(
            help.contains("Examples:\n") && help.contains("Exit status:\n"),
            "{help}"
        );
    }

    /// A command given without `--` gets the line with `--` put in.
    #[test]
    fn a_missing_separator_is_pointed_out() {
        let argv = ["sandlock", "run", "-r", "/x", "echo", "hi"];
        let e = Cli::try_parse_from(argv).unwrap_err();
        let args: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            separator_hint(&e, &args).as_deref(),
            Some("sandlock: the command goes after `--`: sandlock run -r /x -- echo hi")
        );
        // Twin: a misspelt flag is not a command.
        let argv = ["sandlock", "run", "--fs-raed", "/x", "--", "echo"];
        let e = Cli::try_parse_from(argv).unwrap_err();
        let args: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        assert_eq!(separator_hint(&e, &args), None);
    }
}
