//! `sandlock-oci`: an OCI runtime that podman, containerd and Kubernetes
//! can run containers with, each container's processes confined by
//! sandlock.
//!
//! Design: the lifecycle is runc's. `create` and `run` rewrite the
//! bundle's config.json so that the container's process is sandlock's
//! supervisor with the container's command under it (`bundle`), `exec`
//! does the same to the new process (`exec`), and then runc gets the
//! engine's arguments as they came. Inside the container, runc starts
//! `sandlock-oci supervise` (`supervise`). The supervisor lives in the
//! container's namespaces, so its connects leave from the pod's network,
//! and everything sandlock run does, it does there.
//!
//! Must never start a container whose policy it could not check, or one
//! of its processes outside a supervisor.

mod annotations;
mod bundle;
mod carry;
mod cli;
mod exec;
mod jsonfile;
mod log;
mod runc;
mod seccomp;
mod supervise;
mod wrap;

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let cli = Cli::parse_from(&argv);
    if let Command::Supervise {
        set,
        workload_env,
        argv,
    } = &cli.command
    {
        return ExitCode::from(supervise::run(set, workload_env, argv));
    }
    match dispatch(&cli, &argv[1..]) {
        Ok(code) => code,
        Err(e) => {
            log::error(&cli, &e);
            ExitCode::from(1)
        }
    }
}

/// Prepares what the command needs, then hands it to runc (which replaces
/// this process) or, for `features`, prints runc's answer with ours.
fn dispatch(cli: &Cli, args: &[OsString]) -> Result<ExitCode> {
    let runc = runc::binary()?;
    let mut args = args.to_vec();
    match &cli.command {
        Command::Create(c) | Command::Run { create: c, .. } => {
            bundle::prepare(&c.bundle, &carry::Carry::find()?)?
        }
        Command::Exec(e) => args = exec::prepare(&runc, &runc::globals(cli), e, &args)?,
        Command::Features => {
            let doc = runc::features(&runc, &runc::globals(cli))?;
            println!("{}", serde_json::to_string_pretty(&doc)?);
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    Err(runc::exec(&runc, &args))
}
