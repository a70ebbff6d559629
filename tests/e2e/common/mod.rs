//! Helpers shared by the end-to-end tests, one concern per file:
//!
//! * `ctx`: who runs sandlock (the invoking user or uid/gid 65534) and
//!   the `both!` macro;
//! * `run`: running a command under a time limit and reading its output;
//! * `procs`: host processes (/proc, kill(1), a `sleep` to aim at);
//! * `tempdir`: scratch directories;
//! * `fixtures`: the compiled fixtures and the argument lists that start
//!   them;
//! * `servers`: loopback TCP and UDP servers;
//! * `tls`, `sink`, `dns`, `git`: the HTTP(S) upstream and its TLS
//!   material, large uploads, the DNS resolver, git repositories (imported
//!   by name: `use crate::common::tls::*;`).
//!
//! `use crate::common::*;` brings in everything else, and `Value`
//! (serde_json's, for the JSON the tests read: audit logs, the upstream's
//! log, reports).
//!
//! No libc: signals are sent with kill(1), uids are read from
//! /proc/self/status, privileges are dropped with `CommandExt::uid/gid`
//! (std clears supplementary groups when it drops from root).

#![allow(dead_code)]

#[macro_use]
mod ctx;
pub mod dns;
mod fixtures;
pub mod git;
mod procs;
mod run;
mod servers;
pub mod sink;
mod tempdir;
pub mod tls;

pub use ctx::*;
pub use fixtures::*;
pub use procs::*;
pub use run::*;
pub use serde_json::Value;
pub use servers::*;
pub use tempdir::TempDir;

use std::time::Duration;

/// The sandlock binary under test: `$SANDLOCK_E2E_BIN` when set
/// (scripts/test.sh points it at the static build that scripts/install.sh
/// installs, see .cargo/config.toml), else the one Cargo built for the
/// tests.
pub static SANDLOCK: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| match std::env::var("SANDLOCK_E2E_BIN") {
        Ok(bin) => {
            assert!(
                std::path::Path::new(&bin).is_file(),
                "SANDLOCK_E2E_BIN={bin} is missing: build it with `cargo build-static`"
            );
            bin
        }
        Err(_) => env!("CARGO_BIN_EXE_sandlock").to_string(),
    });
pub const NOBODY: u32 = 65534;
pub const PATH_ENV: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
pub const PYTHON: &str = "/usr/bin/python3";
/// Default limit for one sandlock run; every test run is expected to be far
/// quicker than this.
pub const RUN_LIMIT: Duration = Duration::from_secs(30);
