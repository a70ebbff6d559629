//! The host files the supervisor needs inside the container, and the
//! mounts that carry them there: this binary, the dynamic loader that
//! started it and the libraries that loader resolved for it, each
//! bind-mounted read-only (and nosuid, nodev) under a small tmpfs at
//! [`wrap::DIR`], so that any image, even one without a libc, can run
//! the supervisor, and none of the image's files are loaded into it.
//!
//! The libraries are what the host's own loader lists for this binary
//! (`ld.so --list`, what `ldd` prints), so each lands under the name the
//! binary asks for.
//!
//! Must never carry a file the image could change, or mount anything
//! writable into the container.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Mount, MountBuilder};

use crate::wrap;

/// The supervisor's files on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carry {
    /// This binary.
    pub exe: PathBuf,
    /// The dynamic loader that runs it.
    pub loader: PathBuf,
    /// The libraries it links: (the name it asks for, the host's file).
    pub libs: Vec<(String, PathBuf)>,
}

impl Carry {
    /// This process's own binary, loader and libraries.
    pub fn find() -> Result<Carry> {
        let exe = std::fs::read_link("/proc/self/exe").context("reading /proc/self/exe")?;
        let loader = own_loader()?;
        let out = Command::new(&loader)
            .arg("--list")
            .arg(&exe)
            .env_clear()
            .output()
            .with_context(|| format!("running {} --list", loader.display()))?;
        if !out.status.success() {
            bail!(
                "{} --list {} failed: {}",
                loader.display(),
                exe.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let libs = parse_list(&String::from_utf8_lossy(&out.stdout))?;
        Ok(Carry { exe, loader, libs })
    }

    /// The mounts that put these files at the paths [`wrap`] names.
    pub fn mounts(&self) -> Result<Vec<Mount>> {
        let dir = MountBuilder::default()
            .destination(wrap::DIR)
            .typ("tmpfs")
            .source("tmpfs")
            .options(strings(&["nosuid", "nodev", "mode=0755", "size=1m"]))
            .build()?;
        let mut mounts = vec![dir, bind(&self.exe, Path::new(wrap::EXE))?];
        mounts.push(bind(&self.loader, Path::new(wrap::LOADER))?);
        for (name, path) in &self.libs {
            mounts.push(bind(path, &Path::new(wrap::LIB_DIR).join(name))?);
        }
        Ok(mounts)
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

/// The file of the loader that started this process: the mapping that
/// holds the loader's base address (`AT_BASE`).
fn own_loader() -> Result<PathBuf> {
    // SAFETY: getauxval reads this process's auxiliary vector; no failure
    // mode beyond returning 0.
    let base = unsafe { libc::getauxval(libc::AT_BASE) };
    if base == 0 {
        bail!(
            "sandlock-oci was started without a dynamic loader (a static build is not supported)"
        );
    }
    let maps = std::fs::read_to_string("/proc/self/maps").context("reading /proc/self/maps")?;
    mapping_at(&maps, base)
        .with_context(|| format!("no file mapped at the loader's base address {base:#x}"))
}

/// The file mapped at `addr` in a `/proc/PID/maps` text.
fn mapping_at(maps: &str, addr: u64) -> Option<PathBuf> {
    maps.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (lo, hi) = fields.next()?.split_once('-')?;
        let lo = u64::from_str_radix(lo, 16).ok()?;
        let hi = u64::from_str_radix(hi, 16).ok()?;
        let path = fields.nth(4)?;
        (lo <= addr && addr < hi && path.starts_with('/')).then(|| PathBuf::from(path))
    })
}

/// The libraries in `ld.so --list` output: `NAME => PATH (ADDRESS)` lines.
/// The vdso has no `=>`, the loader's own line names a path (it is carried
/// apart); a library the loader
/// could not find (`=> not found`) is an error.
fn parse_list(text: &str) -> Result<Vec<(String, PathBuf)>> {
    let mut libs = Vec::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once("=>") else {
            continue;
        };
        let (name, rest) = (name.trim(), rest.trim());
        if name.starts_with('/') {
            continue; // the loader itself, carried on its own
        }
        let path = rest.split(" (").next().unwrap_or(rest).trim();
        if !path.starts_with('/') || name.is_empty() || name.contains('/') {
            bail!("the loader cannot place {name:?} for sandlock-oci: {rest}");
        }
        libs.push((name.to_string(), PathBuf::from(path)));
    }
    Ok(libs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loaders_list_gives_names_and_files() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f83)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f82)\n\
                    \t/lib64/ld-linux-x86-64.so.2 => /usr/lib/ld-linux-x86-64.so.2 (0x00007f84)\n";
        assert_eq!(
            parse_list(text).unwrap(),
            [
                (
                    "libgcc_s.so.1".into(),
                    "/lib/x86_64-linux-gnu/libgcc_s.so.1".into()
                ),
                ("libc.so.6".into(), "/lib/x86_64-linux-gnu/libc.so.6".into()),
            ]
        );
        let e = parse_list("\tlibx.so.1 => not found\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("libx.so.1") && e.contains("not found"), "{e}");
        assert!(parse_list("\t../evil => /x (0x1)\n").is_err());
    }

    #[test]
    fn the_loader_is_the_mapping_at_its_base() {
        let maps = "7f00-7f10 r--p 00000000 08:01 12 /usr/lib/ld.so\n\
                    7f10-7f20 r-xp 00001000 08:01 12 /usr/lib/ld.so\n\
                    7ffd-7ffe r-xp 00000000 00:00 0 [vdso]\n";
        assert_eq!(mapping_at(maps, 0x7f00), Some("/usr/lib/ld.so".into()));
        assert_eq!(mapping_at(maps, 0x7ffd), None);
        assert_eq!(mapping_at(maps, 0x1), None);
        // This process was started by a loader, and the loader lists it.
        let carry = Carry::find().unwrap();
        assert!(carry.loader.is_file(), "{carry:?}");
        assert!(
            carry.libs.iter().any(|(n, _)| n == "libc.so.6"),
            "{carry:?}"
        );
    }
}
