//! The host files the supervisor needs inside the container, and the
//! mounts that carry them there, under a small tmpfs at [`wrap::DIR`]:
//!
//! - this binary, bind-mounted read-only (nosuid, nodev). It must be
//!   statically linked: a dynamic one would be started by a loader that
//!   reads the image's `/etc/ld.so.preload` and its library cache, which
//!   would run the image's code in the supervisor. A dynamic build is
//!   refused at `create`.
//! - the host's trust roots (a PEM bundle), read-only: the supervisor
//!   checks the upstream's certificates against them, never against the
//!   image's, which the image's author chose.
//! - a procfs, read-only (nosuid, nodev, noexec): the kernel lets a new
//!   procfs be mounted (the workload's own /proc) only where a procfs is
//!   already fully visible, and runc masks parts of the container's /proc,
//!   which stay masked. The supervisor covers it in the workload's mount
//!   namespace once the workload's /proc is mounted.
//! - a tmpfs for the supervisor's private directories (the workload's
//!   TMPDIR and HOME), so that a read-only root filesystem, or one with no
//!   /tmp (a pod's pause image), still runs.
//!
//! Must never carry a file the image could change, or mount anything
//! writable into the container.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Mount, MountBuilder};

use crate::wrap;

/// Where a Linux distribution keeps its trust roots as one PEM bundle,
/// in the order rustls-native-certs (openssl-probe) looks.
const ROOT_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The supervisor's files on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carry {
    /// This binary.
    pub exe: PathBuf,
    /// The host's trust roots, if it has a bundle.
    pub roots: Option<PathBuf>,
}

impl Carry {
    /// This process's own binary, which must be static, and the host's
    /// roots.
    pub fn find() -> Result<Carry> {
        if !statically_linked() {
            bail!(
                "this sandlock-oci is dynamically linked, so its supervisor would load the image's \
                 /etc/ld.so.preload and libraries; build it static: cargo build-oci --release"
            );
        }
        let exe = std::fs::read_link("/proc/self/exe").context("reading /proc/self/exe")?;
        let roots = ROOT_BUNDLES.iter().map(PathBuf::from).find(|p| p.is_file());
        Ok(Carry { exe, roots })
    }

    /// The mounts that put these files at the paths [`wrap`] names.
    pub fn mounts(&self) -> Result<Vec<Mount>> {
        let dir = MountBuilder::default()
            .destination(wrap::DIR)
            .typ("tmpfs")
            .source("tmpfs")
            .options(strings(&[
                "nosuid",
                "nodev",
                "noexec",
                "mode=0711",
                "size=64k",
            ]))
            .build()?;
        let proc = MountBuilder::default()
            .destination(wrap::PROC)
            .typ("proc")
            .source("proc")
            .options(strings(&["ro", "nosuid", "nodev", "noexec"]))
            .build()?;
        let tmp = MountBuilder::default()
            .destination(wrap::TMP)
            .typ("tmpfs")
            .source("tmpfs")
            .options(strings(&["nosuid", "nodev", "mode=1777"]))
            .build()?;
        // With no bundle on the host, /dev/null holds the name: a file
        // the workload made there could not pass for the host's roots.
        let roots = self.roots.as_deref().unwrap_or(Path::new("/dev/null"));
        Ok(vec![
            dir,
            bind(&self.exe, Path::new(wrap::EXE))?,
            proc,
            bind(roots, Path::new(wrap::ROOTS))?,
            tmp,
        ])
    }
}

/// A read-only bind mount of a host file.
fn bind(source: &Path, destination: &Path) -> Result<Mount> {
    Ok(MountBuilder::default()
        .destination(destination)
        .typ("bind")
        .source(source)
        .options(strings(&["bind", "ro", "nosuid", "nodev"]))
        .build()?)
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Was this process started without a dynamic loader? (`AT_BASE`, the
/// loader's address, is 0 then.)
fn statically_linked() -> bool {
    // SAFETY: getauxval reads this process's auxiliary vector; no failure
    // mode beyond returning 0.
    unsafe { libc::getauxval(libc::AT_BASE) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mounts_carry_the_binary_the_roots_and_a_procfs_read_only() {
        let carry = Carry {
            exe: "/usr/local/bin/sandlock-oci".into(),
            roots: Some("/etc/ssl/certs/ca-certificates.crt".into()),
        };
        let v = serde_json::to_value(carry.mounts().unwrap()).unwrap();
        let dests: Vec<&str> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["destination"].as_str().unwrap())
            .collect();
        assert_eq!(
            dests,
            [wrap::DIR, wrap::EXE, wrap::PROC, wrap::ROOTS, wrap::TMP]
        );
        for m in v.as_array().unwrap()[1..4].iter() {
            let opts = m["options"].as_array().unwrap();
            assert!(
                opts.contains(&"ro".into()) && opts.contains(&"nosuid".into()),
                "{m}"
            );
        }
        // The unit tests' binary is dynamic: refused.
        let e = Carry::find().unwrap_err().to_string();
        assert!(e.contains("dynamically linked"), "{e}");
    }
}
