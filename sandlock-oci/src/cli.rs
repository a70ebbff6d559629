//! The command line, as runc has it: the global flags and the commands
//! podman and containerd's runc shim call, with runc's flags, so either
//! engine can name `sandlock-oci` where it would name runc.
//!
//! Owns the parsing only. Must never drop an argument: the engine's
//! arguments reach runc as they came (see `main`), so a flag this file
//! knows only by name keeps its meaning.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// An OCI runtime that runs each container's processes under sandlock.
#[derive(Parser, Debug)]
#[command(
    name = "sandlock-oci",
    version,
    about = "An OCI runtime that runs each container's processes under sandlock",
    long_about = "An OCI runtime that runs each container's processes under sandlock: Landlock, \
the seccomp filter and a supervisor that owns the container's network egress, with its HTTP \
proxy, CA splicing and secrets.\n\n\
`create`, `run` and `exec` put the container's process under a sandlock supervisor (its policy \
from the container's run.sandlock/* annotations); runc (SANDLOCK_OCI_RUNC, or runc on PATH) then \
makes the namespaces, mounts and cgroups as for any container. The other commands go to runc \
unchanged.",
    after_help = "Exit status: runc's for every command; 1 when sandlock-oci refuses a container \
(a bad annotation, no runc); for `supervise`, the workload's status, 125 when sandlock could not \
start it."
)]
pub struct Cli {
    /// Directory of the containers' state (runc's `--root`).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Log file for runc's and sandlock-oci's messages.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Format of the log file.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Debug messages in the log (runc's).
    #[arg(long)]
    pub debug: bool,
    /// Cgroups through systemd (runc's).
    #[arg(long)]
    pub systemd_cgroup: bool,
    /// Rootless mode: true, false or auto (runc's).
    #[arg(long, value_name = "VALUE")]
    pub rootless: Option<String>,
    /// Path of criu, for checkpoints (runc's).
    #[arg(long, value_name = "PATH")]
    pub criu: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The log file's format, as runc writes it.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// `time="..." level=error msg="..."` lines.
    Text,
    /// One JSON object per line: `{"level", "msg", "time"}`.
    Json,
}

/// The flags `create` and `run` share.
#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// The bundle: the directory holding config.json.
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket that receives the console's pseudo-terminal master.
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// File to write the container's process id to.
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Do not use pivot_root to enter the root filesystem.
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not make a new session keyring.
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass N more descriptors (3 and up) to the container's process.
    #[arg(long, value_name = "N")]
    pub preserve_fds: Option<u32>,
    /// The container's id.
    pub id: String,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a container from a bundle; its process waits for `start`.
    Create(CreateArgs),
    /// Create and start a container.
    Run {
        /// The bundle and the container.
        #[command(flatten)]
        create: CreateArgs,
        /// Do not wait for the container's process.
        #[arg(short, long)]
        detach: bool,
        /// Keep the container's state after it exits.
        #[arg(long)]
        keep: bool,
        /// Do not make runc a subreaper.
        #[arg(long)]
        no_subreaper: bool,
    },
    /// Start a created container's process.
    Start {
        /// The container's id.
        id: String,
    },
    /// Print a container's state as JSON (runtime-spec).
    State {
        /// The container's id.
        id: String,
    },
    /// Send a signal to a container's process (default SIGTERM).
    Kill {
        /// To every process of the container.
        #[arg(short, long)]
        all: bool,
        /// The container's id.
        id: String,
        /// Signal name or number.
        signal: Option<String>,
    },
    /// Delete a container and its state.
    Delete {
        /// Kill it first if it is running.
        #[arg(short, long)]
        force: bool,
        /// The container's id.
        id: String,
    },
    /// Run another process in a running container, under its own sandlock
    /// supervisor with the container's policy.
    Exec(Box<ExecArgs>),
    /// Print what this runtime supports, as JSON (runc's, plus sandlock's).
    Features,
    /// Inside the container: the supervisor that runs the container's
    /// process under sandlock. `create`, `run` and `exec` set it up.
    Supervise {
        /// A policy option as NAME=VALUE (a `sandlock run` flag's name).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// A loader variable (LD_*, GLIBC_TUNABLES) for the workload only,
        /// kept out of the supervisor's own environment.
        #[arg(long, value_name = "NAME=VALUE")]
        workload_env: Vec<String>,
        /// The container's command.
        #[arg(last = true, required = true, value_name = "COMMAND")]
        argv: Vec<OsString>,
    },
    /// List the containers (runc's, unchanged).
    List(Passthrough),
    /// List a container's processes (runc's, unchanged).
    Ps(Passthrough),
    /// Pause a container (runc's, unchanged).
    Pause(Passthrough),
    /// Resume a paused container (runc's, unchanged).
    Resume(Passthrough),
    /// Change a container's resources (runc's, unchanged).
    Update(Passthrough),
    /// A container's events and statistics (runc's, unchanged).
    Events(Passthrough),
    /// Checkpoint a container (runc's, unchanged).
    Checkpoint(Passthrough),
    /// Restore a container (runc's, unchanged).
    Restore(Passthrough),
    /// Write a template config.json (runc's, unchanged).
    Spec(Passthrough),
}

/// Arguments handed to runc as they are.
#[derive(clap::Args, Debug)]
pub struct Passthrough {
    /// runc's arguments for this command.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    pub args: Vec<OsString>,
}

/// `exec`'s flags, as runc's.
#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// Unix socket that receives the console's pseudo-terminal master.
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Working directory of the process.
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// An environment variable, NAME=VALUE.
    #[arg(short, long, value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Give the process a terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// UID[:GID] to run as.
    #[arg(short, long, value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// More group ids.
    #[arg(short = 'g', long, value_name = "GID")]
    pub additional_gids: Vec<String>,
    /// The process as a runtime-spec process.json.
    #[arg(short, long, value_name = "FILE")]
    pub process: Option<PathBuf>,
    /// Do not wait for the process.
    #[arg(short, long)]
    pub detach: bool,
    /// File to write the process's id to.
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// SELinux label of the process.
    #[arg(long, value_name = "LABEL")]
    pub process_label: Option<String>,
    /// AppArmor profile of the process.
    #[arg(long, value_name = "PROFILE")]
    pub apparmor: Option<String>,
    /// Set no_new_privs (sandlock always does).
    #[arg(long)]
    pub no_new_privs: bool,
    /// A capability to add.
    #[arg(short, long, value_name = "CAP")]
    pub cap: Vec<String>,
    /// Pass N more descriptors (3 and up) to the process.
    #[arg(long, value_name = "N")]
    pub preserve_fds: Option<u32>,
    /// Cgroup to run the process in.
    #[arg(long, value_name = "PATH")]
    pub cgroup: Vec<String>,
    /// Run even in a paused container.
    #[arg(long)]
    pub ignore_paused: bool,
    /// The container's id.
    pub id: String,
    /// The command, when there is no --process.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
}
