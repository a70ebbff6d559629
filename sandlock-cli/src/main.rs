//! `sandlock`: run a program confined by Landlock and seccomp, with a
//! supervisor that owns its network egress.

mod args;

use std::process::ExitCode;

use clap::Parser;
use sandlock_core::policy::PolicyBuilder;
use sandlock_core::{check, profile, Error, ExitOutcome, Policy, Sandbox};

use args::{Cli, Command, ProfileCommand};

/// Exit status when sandlock itself fails to set up the sandbox.
const SETUP_FAILURE: u8 = 125;
/// Exit status for bad command-line input (clap uses the same).
const USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check => {
            let report = check::probe();
            println!("{report}");
            if report.can_run() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Command::Profile(ProfileCommand::List) => {
            for (name, origin) in profile::list() {
                println!("{name}\t{origin}");
            }
            ExitCode::SUCCESS
        }
        Command::Profile(ProfileCommand::Show { name }) => {
            let policy = profile::find(&name).and_then(|p| {
                let mut b = PolicyBuilder::new();
                p.apply(&mut b)?;
                b.build()
            });
            match policy {
                Ok(policy) => show_policy(&policy),
                Err(e) => {
                    eprintln!("sandlock: {e}");
                    ExitCode::from(USAGE)
                }
            }
        }
        Command::Run(run) => {
            let show = run.show_policy;
            let (policy, argv) = match run.into_policy() {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("sandlock: {e:#}");
                    return ExitCode::from(USAGE);
                }
            };
            if show {
                return show_policy(&policy);
            }
            let timeout = policy.process.timeout;
            let quiet = policy.report.quiet;
            match Sandbox::new(policy).run(&argv) {
                Ok(outcome) => {
                    if let (ExitOutcome::TimedOut, Some(t), false) = (outcome, timeout, quiet) {
                        eprintln!(
                            "sandlock: timed out after {}s; killed the workload tree",
                            t.as_secs_f64()
                        );
                    }
                    ExitCode::from(outcome.code().clamp(0, 255) as u8)
                }
                Err(e) => {
                    eprintln!("sandlock: {e}");
                    ExitCode::from(match e {
                        Error::Command { status, .. } => status.clamp(0, 255) as u8,
                        Error::InvalidValue { .. } | Error::Usage(_) => USAGE,
                        _ => SETUP_FAILURE,
                    })
                }
            }
        }
    }
}

/// Prints the effective policy and the names pinned at start
/// (`--show-policy`, `sandlock profile show`).
fn show_policy(policy: &Policy) -> ExitCode {
    print!("{policy}");
    match sandlock_core::network::Pinned::for_policy(policy) {
        Ok(pinned) => {
            for (name, ips) in pinned.entries() {
                let ips: Vec<String> = ips.iter().map(|ip| ip.to_string()).collect();
                println!("pinned: {name} -> {}", ips.join(", "));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sandlock: {e}");
            ExitCode::from(SETUP_FAILURE)
        }
    }
}
