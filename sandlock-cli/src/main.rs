//! `sandlock`: run a program confined by Landlock and seccomp, with a
//! supervisor that owns its network egress.
//!
//! Every byte the CLI prints goes through `out`, which ends a command
//! quietly (status 141) when its stdout's reader has gone away.

mod args;
mod out;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use sandlock_core::foreground::{self, USAGE};
use sandlock_core::policy::{PolicyBuilder, SummaryFormat};
use sandlock_core::{check, cow, profile, Policy};

use args::{Cli, Command, CowCommand, ProfileCommand, RunArgs};
use out::{outln, sayln, Stopped, SETUP_FAILURE};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let status = out::clap_error(&e);
            let args: Vec<String> = std::env::args().collect();
            if let Some(hint) = args::separator_hint(&e, &args) {
                sayln!("{hint}");
            }
            return status;
        }
    };
    let status = match cli.command {
        Command::Check => check_kernel(),
        Command::Profile(ProfileCommand::List) => list_profiles(),
        Command::Profile(ProfileCommand::Show { name }) => show_profile(&name),
        Command::Run(run) => run_command(*run),
        Command::Cow(CowCommand::Apply { summary, path }) => cow_command(&summary, &path, true),
        Command::Cow(CowCommand::Drop { summary, path }) => cow_command(&summary, &path, false),
        Command::Completions { shell } => completions(shell),
        Command::Man { command } => man(command.as_deref()),
    };
    status.unwrap_or_else(|Stopped(code)| code)
}

/// `sandlock completions SHELL`: the script, from the same definitions as
/// `--help`.
fn completions(shell: clap_complete::Shell) -> Result<ExitCode, Stopped> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "sandlock", &mut script);
    out::print(format_args!("{}", String::from_utf8_lossy(&script)))?;
    out::flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `sandlock man [COMMAND]`: the man page, from the same definitions as
/// `--help`.
fn man(command: Option<&str>) -> Result<ExitCode, Stopped> {
    let mut cli = Cli::command();
    cli.build();
    let page = match command {
        None => cli,
        Some(name) => match cli.find_subcommand(name) {
            Some(sub) => sub
                .clone()
                .name(format!("sandlock-{name}"))
                .version(env!("CARGO_PKG_VERSION")),
            None => {
                sayln!("sandlock: man: no command named '{name}' (run, check, profile, cow, completions, man)");
                return Ok(ExitCode::from(USAGE));
            }
        },
    };
    let mut roff = Vec::new();
    if let Err(e) = clap_mangen::Man::new(page).render(&mut roff) {
        sayln!("sandlock: man: {e}");
        return Ok(ExitCode::from(SETUP_FAILURE));
    }
    out::print(format_args!("{}", String::from_utf8_lossy(&roff)))?;
    out::flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `sandlock check`: the kernel's report; non-zero when sandlock cannot run.
fn check_kernel() -> Result<ExitCode, Stopped> {
    let report = check::probe();
    outln!("{report}")?;
    out::flush()?;
    Ok(match report.can_run() {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(1),
    })
}

/// `sandlock profile list`: every name `-p` accepts, and where it is.
fn list_profiles() -> Result<ExitCode, Stopped> {
    for (name, origin) in profile::list() {
        outln!("{name}\t{origin}")?;
    }
    out::flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `sandlock profile show NAME`: the profile's effective policy.
fn show_profile(name: &str) -> Result<ExitCode, Stopped> {
    let policy = profile::find(name).and_then(|p| {
        let mut b = PolicyBuilder::new();
        p.apply(&mut b)?;
        b.build()
    });
    match policy {
        Ok(policy) => show_policy(&policy),
        Err(e) => {
            sayln!("sandlock: {e}");
            Ok(ExitCode::from(USAGE))
        }
    }
}

/// `sandlock cow apply|drop PATH`: 0 when every directory's changes were
/// applied (or dropped), 125 when some stay in the layer.
fn cow_command(summary: &str, path: &std::path::Path, apply: bool) -> Result<ExitCode, Stopped> {
    let summary = match SummaryFormat::parse(summary) {
        Ok(s) => s,
        Err(e) => {
            sayln!("sandlock: {e}");
            return Ok(ExitCode::from(USAGE));
        }
    };
    let show = cow::Show {
        summary,
        quiet: false,
        reporter: None,
    };
    let reports = match apply {
        true => cow::apply_layer(path, &show),
        false => cow::drop_layer(path, &show),
    };
    Ok(match reports {
        Ok(r) if r.iter().all(|r| r.outcome != cow::Outcome::Incomplete) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(SETUP_FAILURE),
        Err(e) => {
            sayln!("sandlock: {e}");
            ExitCode::from(USAGE)
        }
    })
}

/// `sandlock run`: the workload's exit status, or sandlock's own.
fn run_command(run: RunArgs) -> Result<ExitCode, Stopped> {
    let show = run.show_policy;
    let (policy, argv) = match run.into_policy() {
        Ok(v) => v,
        Err(e) => {
            sayln!("sandlock: {e:#}");
            return Ok(ExitCode::from(USAGE));
        }
    };
    if show {
        return show_policy(&policy);
    }
    Ok(ExitCode::from(foreground::run(policy, &argv)))
}

/// Prints the effective policy and the names pinned at start
/// (`--show-policy`, `sandlock profile show`).
fn show_policy(policy: &Policy) -> Result<ExitCode, Stopped> {
    out::print(format_args!("{policy}"))?;
    let status = match sandlock_core::network::Pinned::for_policy(policy) {
        Ok(pinned) => {
            for (name, ips) in pinned.entries() {
                let ips: Vec<String> = ips.iter().map(|ip| ip.to_string()).collect();
                outln!("pinned: {name} -> {}", ips.join(", "))?;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            sayln!("sandlock: {e}");
            ExitCode::from(SETUP_FAILURE)
        }
    };
    out::flush()?;
    Ok(status)
}
