//! # sandlock-core
//!
//! The one core behind every sandlock front door. A [`Policy`] says what a
//! workload may touch; [`Sandbox::run`] launches the workload confined by
//! Landlock and seccomp, and supervises it from outside: the supervisor
//! answers trapped syscalls, performs every network connect on the
//! workload's behalf, and serves virtual files.
//!
//! Module map (each module's own doc says what it owns and must never do):
//!
//! - [`policy`]: the policy value and the parsers that build it.
//! - [`profile`]: TOML profiles (found by name, shipped or the user's)
//!   applied through the policy builder.
//! - [`network`]: host pinning, the virtual `/etc/hosts`, socket addresses.
//! - `launch`: everything that happens before `execve` (fork, capabilities,
//!   Landlock, seccomp, the notify-fd hand-over).
//! - `supervisor`: the seccomp user-notification loop and its handlers.
//! - [`audit`]: denial reporting on stderr and as JSON lines.
//! - [`ca`]: the sandbox's certificate authority and per-host leaf certificates.
//! - [`check`]: what this kernel supports.
//! - [`cow`]: copy-on-write workspaces, their layers and how they are applied.
//! - [`trust`]: the sandbox CA spliced into the trust bundles the workload reads.
//! - [`secrets`]: secrets the workload holds as placeholders, swapped on the wire.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod audit;
pub mod ca;
pub mod check;
pub mod cow;
mod dns;
mod error;
mod launch;
mod learn;
pub mod limits;
pub mod network;
pub mod policy;
pub mod profile;
mod proxy;
mod sandbox;
pub mod secrets;
mod supervisor;
mod sys;
pub mod trust;

pub use error::{Error, Result};
pub use policy::Policy;
pub use sandbox::{foreground, ExitOutcome, Ground, Output, Sandbox, Stdio};
