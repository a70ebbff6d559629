//! Who runs sandlock: the invoking user or uid/gid 65534 (`Ctx`, and the
//! uid read from /proc/self/status), how a context builds the `sandlock`
//! command line with a clean environment, and the `both!` macro that runs
//! one test body in each context.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::process::CommandExt;
use std::process::Command;

use super::{run_cmd, sandlock_for_nobody, Out, NOBODY, PATH_ENV, RUN_LIMIT, SANDLOCK};

fn status_field(name: &str) -> Option<String> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(name).map(|rest| rest.trim().to_string()))
}

/// Real uid of the test process.
pub fn my_uid() -> u32 {
    status_field("Uid:")
        .and_then(|v| v.split_whitespace().next().map(str::to_string))
        .and_then(|v| v.parse().ok())
        .expect("cannot read Uid from /proc/self/status")
}

pub fn is_root() -> bool {
    my_uid() == 0
}

/// How one variant of a test launches sandlock.
#[derive(Clone, Copy, Debug)]
pub struct Ctx {
    /// Run sandlock as uid/gid 65534 (only when the test process is root;
    /// otherwise the "unprivileged" variant is the invoking user itself).
    pub drop_to_nobody: bool,
}

impl Ctx {
    pub fn invoker() -> Ctx {
        Ctx {
            drop_to_nobody: false,
        }
    }

    pub fn unprivileged() -> Ctx {
        Ctx {
            drop_to_nobody: is_root(),
        }
    }

    /// The uid the workload runs as.
    pub fn uid(&self) -> u32 {
        if self.drop_to_nobody {
            NOBODY
        } else {
            my_uid()
        }
    }

    /// True when sandlock itself runs with uid 0.
    pub fn as_root(&self) -> bool {
        self.uid() == 0
    }

    /// A `Command` for the sandlock binary with a clean, predictable
    /// environment and cwd "/" (readable by everyone).
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.wrapper(&self.sandlock_bin());
        cmd.args(args)
            .env(
                "HOME",
                if self.drop_to_nobody {
                    "/nonexistent"
                } else {
                    "/root"
                },
            )
            .env("TERM", "dumb")
            .env("RUST_BACKTRACE", "1");
        cmd
    }

    /// The sandlock binary this context runs (a copy uid 65534 may
    /// execute when it drops to nobody).
    pub fn sandlock_bin(&self) -> String {
        if self.drop_to_nobody {
            sandlock_for_nobody()
        } else {
            SANDLOCK.to_string()
        }
    }

    /// A `Command` for `program` (which starts sandlock itself: a shell,
    /// a pty driver) as this context's user, with a plain environment
    /// (PATH, LANG, HOME=/nonexistent), cwd "/" and SIGINT, SIGQUIT and
    /// SIGHUP at their default action, as a user's terminal has them (a
    /// test process started as a shell's background job, or under nohup,
    /// inherits them ignored, and a workload's `trap ... INT` cannot undo
    /// that); [`Ctx::command`]
    /// builds on it. `env` execs `program`: the child's pid is its own.
    pub fn wrapper(&self, program: &str) -> Command {
        let mut cmd = Command::new("/usr/bin/env");
        cmd.args(["--default-signal=INT,QUIT,HUP", program]);
        cmd.env_clear()
            .env("PATH", PATH_ENV)
            .env("HOME", "/nonexistent")
            .env("LANG", "C.UTF-8")
            .current_dir("/");
        if self.drop_to_nobody {
            cmd.uid(NOBODY).gid(NOBODY);
        }
        cmd
    }

    /// True when a workload started this way gets its own pid namespace
    /// and /proc (`sandlock check`'s "private /proc" line says yes).
    pub fn own_proc(&self) -> bool {
        let out = self.sl(["check"]);
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with("private /proc"))
            .unwrap_or_else(|| panic!("no private /proc line\n{}", out.dump()))
            .to_string();
        line.split_whitespace().nth(2) == Some("yes")
    }

    /// Run sandlock with `args` (which start with the subcommand, e.g.
    /// "run") and wait for it with the default limit.
    pub fn sl<I, S>(&self, args: I) -> Out
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_cmd(self.command(args), None, RUN_LIMIT)
    }

    /// Like `sl` but feeds `stdin` to the process.
    pub fn sl_stdin<I, S>(&self, args: I, stdin: &[u8]) -> Out
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_cmd(self.command(args), Some(stdin.to_vec()), RUN_LIMIT)
    }

    /// Like `sl`, with `env` added to sandlock's own environment (e.g. the
    /// variable a `--secret NAME=env:VAR` reads).
    pub fn sl_env<I, S>(&self, args: I, env: &[(&str, &str)]) -> Out
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        run_cmd(cmd, None, RUN_LIMIT)
    }
}

/// `both!(name, |ctx| { ... })` generates `name::as_invoker` and
/// `name::unprivileged` tests that run the same body.
macro_rules! both {
    ($(#[$m:meta])* $name:ident, |$ctx:ident| $body:block) => {
        $(#[$m])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[allow(unused_imports)]
            use $crate::common::*;

            fn body($ctx: $crate::common::Ctx) $body

            #[test]
            fn as_invoker() {
                body($crate::common::Ctx::invoker())
            }

            #[test]
            fn unprivileged() {
                body($crate::common::Ctx::unprivileged())
            }
        }
    };
}
