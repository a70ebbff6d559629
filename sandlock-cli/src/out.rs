//! The CLI's own output: what `check`, `profile list`, `profile show`,
//! `run --show-policy` and clap's `--help`/`--version` print on stdout, and
//! sandlock's messages on stderr.
//!
//! Owns the rule for output nobody reads any more. A reader that goes away
//! early (`sandlock profile show NAME | head -1`) is normal use of a
//! printing command: the command stops printing and exits with status 141
//! (128 + SIGPIPE), without a message. 141 is what the shell reports for
//! every other writer in such a pipeline (`cat`, `grep`, and a workload
//! under `sandlock run`, which sandlock reports as 128 + the signal that
//! killed it), so `set -o pipefail` scripts see sandlock behave like the
//! tools next to it; 0 would claim the whole output was delivered. Any
//! other write error (a full disk behind `>`) is reported on stderr and
//! exits 125, as sandlock's own failures do.
//!
//! Must never: panic on a write (std's `print!` does, and the release
//! build's abort then prints a backtrace and exits 134), or let a message
//! on a broken stderr change the status of the command it belongs to.

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;

/// Exit status when stdout's reader went away: 128 + SIGPIPE (13).
pub const BROKEN_PIPE: u8 = 141;
/// Exit status when sandlock itself failed (here: stdout failed otherwise).
pub use sandlock_core::foreground::SETUP_FAILURE;

/// Printing to stdout stopped; the command must exit with this status.
#[derive(Debug)]
pub struct Stopped(pub ExitCode);

/// The status for a failed write to stdout (reported on stderr unless the
/// reader simply went away).
pub fn stopped(e: &io::Error) -> Stopped {
    if e.kind() == io::ErrorKind::BrokenPipe {
        return Stopped(ExitCode::from(BROKEN_PIPE));
    }
    say(format_args!("sandlock: cannot write to stdout: {e}"));
    Stopped(ExitCode::from(SETUP_FAILURE))
}

/// Writes `args` to stdout.
pub fn print(args: fmt::Arguments) -> Result<(), Stopped> {
    io::stdout().lock().write_fmt(args).map_err(|e| stopped(&e))
}

/// Flushes stdout (a line may still be buffered): the last place a closed
/// pipe shows.
pub fn flush() -> Result<(), Stopped> {
    io::stdout().lock().flush().map_err(|e| stopped(&e))
}

/// Writes one message line to stderr. Nothing can be done when stderr
/// itself is gone, so a failure is ignored: the command's status stands.
pub fn say(args: fmt::Arguments) {
    let mut err = io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

/// `println!` without the panic: `outln!("{x}")?` in a function returning
/// `Result<_, Stopped>`.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::out::print(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` without the panic.
macro_rules! sayln {
    ($($arg:tt)*) => {
        $crate::out::say(format_args!($($arg)*))
    };
}

pub(crate) use {outln, sayln};

/// Prints clap's help, version or usage error and returns its status: a
/// closed stdout ends `--help` like any other printing command.
pub fn clap_error(e: &clap::Error) -> ExitCode {
    let printed = e.print().and_then(|()| {
        if e.use_stderr() {
            Ok(())
        } else {
            io::stdout().lock().flush()
        }
    });
    match printed {
        Err(err) if !e.use_stderr() => stopped(&err).0,
        // A usage error keeps its status whether or not stderr took it.
        _ => ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2)),
    }
}
