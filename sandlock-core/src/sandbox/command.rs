//! Which program runs: the command resolved the way the user's shell
//! would (the first executable on `PATH`), and the interpreter its `#!`
//! line names, each checked against what the sandbox may execute before
//! anything starts.
//!
//! A program outside the view used to be skipped like a missing one, and
//! the next on `PATH` ran instead: a pyenv shim became `/usr/bin/python3`,
//! which then took its prefix from the pyenv directory it could not read.
//! Now a command, or its interpreter, outside the view stops the run with
//! the path and the `-r` that would grant it; a different program never
//! runs in its place.
//!
//! Must never read the program as anyone but the user (it is opened by
//! the supervisor, with the user's rights, like the shell would).

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::DEFAULT_PATH;
use crate::policy::{FsPolicy, SYSTEM_READ_DIRS};
use crate::{Error, Result};

/// What the workload may execute: the system view's directories and the
/// grants, as canonical paths.
pub(super) struct View {
    roots: Vec<PathBuf>,
}

impl View {
    /// The roots of `fs`, and `private` (the sandbox's own directory).
    pub(super) fn new(fs: &FsPolicy, private: &Path) -> View {
        let system = SYSTEM_READ_DIRS
            .iter()
            .filter(|_| fs.system_view)
            .map(PathBuf::from);
        let roots = system
            .chain(fs.read.iter().cloned())
            .chain(fs.write.iter().cloned())
            .chain(fs.home.iter().cloned())
            .chain(std::iter::once(private.to_path_buf()))
            .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
            .collect();
        View { roots }
    }

    fn covers(&self, canonical: &Path) -> bool {
        self.roots.iter().any(|r| canonical.starts_with(r))
    }
}

/// The program to exec for `cmd` (as execvp would pick it, from `env`'s
/// PATH and relative to `cwd`), refused when it or its interpreter lies
/// outside `view`.
pub(super) fn resolve(
    cmd: &OsStr,
    env: &[(OsString, OsString)],
    cwd: Option<&Path>,
    view: &View,
) -> Result<CString> {
    let path_var = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| OsString::from(DEFAULT_PATH));
    let program = find(cmd, &path_var, cwd).ok_or_else(|| Error::Command {
        cmd: cmd.to_string_lossy().into_owned(),
        reason: "command not found".into(),
        status: 127,
    })?;
    check(cmd, &program, view)?;
    if let Some(interp) = interpreter(&program, &path_var, cwd) {
        check(cmd, &interp, view)?;
    }
    super::prepare::cstring(program.as_os_str().as_bytes())
}

/// The file `name` names: itself when it holds a `/`, else the first
/// executable regular file in `path_var`'s directories.
fn find(name: &OsStr, path_var: &OsStr, cwd: Option<&Path>) -> Option<PathBuf> {
    let anchor = |p: PathBuf| match cwd {
        Some(c) if p.is_relative() => c.join(p),
        _ => p,
    };
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return None;
    }
    if bytes.contains(&b'/') {
        let p = anchor(PathBuf::from(name));
        return p.exists().then_some(p);
    }
    path_var
        .as_bytes()
        .split(|&b| b == b':')
        .map(|dir| if dir.is_empty() { b".".as_slice() } else { dir })
        .map(|dir| anchor(Path::new(OsStr::from_bytes(dir)).join(name)))
        .find(|p| executable_file(p))
}

fn executable_file(p: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(p) else {
        return false;
    };
    let Ok(c) = CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a valid C string; access only reads it.
    meta.is_file() && unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0
}

/// The interpreter a `#!` line names, resolved through `env NAME` when
/// it is that.
fn interpreter(program: &Path, path_var: &OsStr, cwd: Option<&Path>) -> Option<PathBuf> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(program).ok()?.read(&mut head).ok()?;
    let line = head.get(..n)?.strip_prefix(b"#!")?;
    let line = line.split(|&b| b == b'\n').next()?;
    let mut words = line
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|w| !w.is_empty());
    let interp = PathBuf::from(OsStr::from_bytes(words.next()?));
    if interp.file_name() == Some(OsStr::new("env")) {
        let name = words.find(|w| !w.starts_with(b"-"))?;
        return find(OsStr::from_bytes(name), path_var, cwd);
    }
    Some(interp)
}

/// Refuses `program` (on behalf of `cmd`) when the sandbox may not
/// execute it.
fn check(cmd: &OsStr, program: &Path, view: &View) -> Result<()> {
    let canonical = std::fs::canonicalize(program).unwrap_or_else(|_| program.to_path_buf());
    if view.covers(&canonical) {
        return Ok(());
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let grant = suggest_grant(&canonical, home.as_deref());
    let shown = if canonical == program {
        program.display().to_string()
    } else {
        format!("{} (which is {})", program.display(), canonical.display())
    };
    Err(Error::Command {
        cmd: cmd.to_string_lossy().into_owned(),
        reason: format!(
            "{shown} is outside what the sandbox may execute; grant it with -r {}",
            grant.display()
        ),
        status: 126,
    })
}

/// The directory to grant for `program`: its top directory in the user's
/// home (`~/.pyenv`, `~/.cargo`), the installation above a `bin`
/// directory (`/opt/tool`), else its own directory.
fn suggest_grant(program: &Path, home: Option<&Path>) -> PathBuf {
    if let Some(home) = home.filter(|h| h.is_absolute() && *h != Path::new("/")) {
        if let Ok(rest) = program.strip_prefix(home) {
            if let Some(first) = rest.components().next() {
                if rest.components().count() > 1 {
                    return home.join(first);
                }
            }
        }
    }
    let dir = program.parent().unwrap_or(Path::new("/"));
    match dir.file_name() {
        Some(name) if name == "bin" || name == "sbin" => dir.parent().unwrap_or(dir).to_path_buf(),
        _ => dir.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_suggested_for_programs_outside_the_view() {
        let home = Some(Path::new("/home/u"));
        for (program, grant) in [
            ("/home/u/.pyenv/shims/python3", "/home/u/.pyenv"),
            ("/home/u/.cargo/bin/cargo", "/home/u/.cargo"),
            ("/home/u/tool", "/home/u"),
            ("/opt/tool/bin/tool", "/opt/tool"),
            ("/srv/scripts/run.sh", "/srv/scripts"),
        ] {
            assert_eq!(suggest_grant(Path::new(program), home), Path::new(grant));
        }
        assert_eq!(
            suggest_grant(Path::new("/home/u/.cargo/bin/cargo"), None),
            Path::new("/home/u/.cargo")
        );
    }

    #[test]
    fn shebangs_and_env() {
        let d = std::env::temp_dir().join(format!("sandlock-command-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let script = |name: &str, text: &str| {
            let p = d.join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let direct = script("a", "#!/bin/sh -e\necho\n");
        let via_env = script("b", "#! /usr/bin/env  -S sh -x\n");
        let binary = script("c", "\x7fELF");
        let path = OsStr::new("/usr/bin:/bin");
        assert_eq!(
            interpreter(&direct, path, None),
            Some(PathBuf::from("/bin/sh"))
        );
        let env_sh = interpreter(&via_env, path, None).expect("sh on PATH");
        assert!(env_sh.ends_with("sh"), "{env_sh:?}");
        assert_eq!(interpreter(&binary, path, None), None);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_first_executable_on_path_wins() {
        let path = OsStr::new("/nonexistent:/usr/bin:/bin");
        assert_eq!(
            find(OsStr::new("sh"), path, None),
            Some(PathBuf::from("/usr/bin/sh"))
        );
        assert_eq!(find(OsStr::new("no-such-program-x"), path, None), None);
        assert_eq!(find(OsStr::new(""), path, None), None);
        assert_eq!(
            find(OsStr::new("rel/x"), path, Some(Path::new("/nonexistent"))),
            None
        );
    }
}
