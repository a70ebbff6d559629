//! End-to-end tests of the real `sandlock` binary.
//!
//! Every test launches `sandlock run ...` as a child process and checks the
//! exact outcome (exit code, errno printed by a fixture, bytes received by a
//! loopback server). Attack tests come with a twin that runs the same setup
//! without the attack (or with the grant) and shows it succeeds, so a test
//! cannot pass merely because everything is broken.
//!
//! Tests written with `both!` run twice: as the invoking user (`as_invoker`,
//! root on CI) and as uid/gid 65534 (`unprivileged`).
//!
//! Fixtures (C and Python) live in tests/fixtures and are compiled once per
//! test run into /tmp/sandlock-e2e-fixtures-PID.

// Test helpers report a failure by panicking: unwrap says "this must hold"
// (clippy's allow-unwrap-in-tests covers #[test] functions, not helpers).
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

mod badinput;
mod cli_help;
mod command;
mod cow;
mod denials;
mod dns;
mod etc_view;
mod fs;
mod home;
mod hosts;
mod http;
mod interactive;
mod learn;
mod learn_attacks;
mod limits;
mod meta;
mod net;
mod netspec;
mod oci;
mod others;
mod output;
mod process;
mod procview;
mod profiles;
mod races;
mod seccomp;
mod secrets;
mod trust;
mod trust_stat;
mod unix;
mod workspace;
mod workspace_attacks;
