//! The fixtures the end-to-end tests run inside the sandbox: C programs
//! compiled once per test process and Python scripts copied beside them
//! into a directory every test user may read, a copy of sandlock that
//! uid 65534 may execute, and the argument lists that start them.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::thread;

use super::{PYTHON, SANDLOCK};

pub const FIXTURE_SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures");

const C_FIXTURES: &[(&str, &[&str])] = &[
    ("sysprobe", &[]),
    ("sendprobe", &[]),
    ("toctou", &["-pthread"]),
    ("familyflip", &["-pthread"]),
    ("hello", &[]),
    ("hostsprobe", &[]),
    ("staticprobe", &["-static"]),
    ("bundleprobe", &["-pthread"]),
    ("unixflip", &["-pthread"]),
    ("stackprobe", &["-pthread"]),
];
const PY_FIXTURES: &[&str] = &[
    "probe.py",
    "stall_listener.py",
    "dnsprobe.py",
    "bigbody.py",
    "reachprobe.py",
    "Fetch.java",
    "ptyresize.py",
    "grpcserver.py",
    "pyclients.py",
    "mkrepos.py",
    "limitprobe.py",
];

struct Fixtures {
    dir: PathBuf,
    errors: BTreeMap<String, String>,
}

static FIXTURES: OnceLock<Fixtures> = OnceLock::new();

fn build_fixtures() -> Fixtures {
    // Remove leftovers of earlier runs whose process is gone.
    if let Ok(rd) = fs::read_dir("/tmp") {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("sandlock-e2e-fixtures-") {
                if let Ok(pid) = pid.parse::<u32>() {
                    if !Path::new(&format!("/proc/{pid}")).exists() {
                        let _ = fs::remove_dir_all(e.path());
                    }
                }
            }
        }
    }
    let dir = PathBuf::from(format!("/tmp/sandlock-e2e-fixtures-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir(&dir).expect("create fixture dir");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let src = PathBuf::from(FIXTURE_SRC);
    for py in PY_FIXTURES {
        let to = dir.join(py);
        fs::copy(src.join(py), &to).unwrap_or_else(|e| panic!("copy {py}: {e}"));
        fs::set_permissions(&to, fs::Permissions::from_mode(0o644)).unwrap();
    }
    // Compile in parallel (two cores): one thread per fixture.
    let handles: Vec<_> = C_FIXTURES
        .iter()
        .map(|(name, flags)| {
            let src = src.clone();
            let dir = dir.clone();
            let name = name.to_string();
            let flags: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
            thread::spawn(move || {
                let out = Command::new("cc")
                    .args(["-O1", "-w", "-o"])
                    .arg(dir.join(&name))
                    .arg(src.join(format!("{name}.c")))
                    .arg("-I")
                    .arg(&src)
                    .args(&flags)
                    .output();
                let err = match out {
                    Ok(o) if o.status.success() => None,
                    Ok(o) => Some(String::from_utf8_lossy(&o.stderr).into_owned()),
                    Err(e) => Some(format!("cannot run cc: {e}")),
                };
                (name, err)
            })
        })
        .collect();
    let mut errors = BTreeMap::new();
    for h in handles {
        let (name, err) = h.join().unwrap();
        if let Some(err) = err {
            errors.insert(name, err);
        } else {
            let p = dir.join(&name);
            let _ = fs::set_permissions(&p, fs::Permissions::from_mode(0o755));
        }
    }
    Fixtures { dir, errors }
}

/// Directory holding every compiled fixture and python script (mode 0755).
/// Grant it to the sandbox with `-r`.
pub fn fixdir() -> String {
    FIXTURES
        .get_or_init(build_fixtures)
        .dir
        .to_str()
        .unwrap()
        .to_string()
}

/// A copy of the sandlock binary that uid 65534 can execute: the build
/// tree may sit under a directory it cannot enter (e.g. /root).
pub fn sandlock_for_nobody() -> String {
    static COPY: OnceLock<String> = OnceLock::new();
    COPY.get_or_init(|| {
        let f = FIXTURES.get_or_init(build_fixtures);
        let to = f.dir.join("sandlock");
        fs::copy(&*SANDLOCK, &to).expect("copy the sandlock binary");
        fs::set_permissions(&to, fs::Permissions::from_mode(0o755)).unwrap();
        to.display().to_string()
    })
    .clone()
}

/// Path of the compiled fixture `name` (panics with the compiler output if
/// it failed to build).
pub fn fixture(name: &str) -> String {
    let f = FIXTURES.get_or_init(build_fixtures);
    if let Some(err) = f.errors.get(name) {
        panic!("fixture {name} failed to compile:\n{err}");
    }
    let p = f.dir.join(name);
    assert!(p.exists(), "no fixture {name}");
    p.to_str().unwrap().to_string()
}

/// The probe.py path.
pub fn probe_py() -> String {
    format!("{}/probe.py", fixdir())
}

/// Arguments "run <extra...> -r FIXDIR -- python3 -I probe.py <ops...>".
/// `--net-allow RULE` as two arguments.
pub fn allow(rule: &str) -> [&str; 2] {
    ["--net-allow", rule]
}

/// Arguments "run <extra...> -r FIXDIR -- python3 -I SCRIPT <ops...>":
/// the probes (probe.py, reachprobe.py, limitprobe.py) all start so.
pub fn script_args<S: ToString>(extra: &[&str], script: String, ops: &[S]) -> Vec<String> {
    let mut v: Vec<String> = vec!["run".into()];
    v.extend(extra.iter().map(|s| s.to_string()));
    v.extend([
        "-r".into(),
        fixdir(),
        "--".into(),
        PYTHON.into(),
        "-I".into(),
        script,
    ]);
    v.extend(ops.iter().map(|s| s.to_string()));
    v
}

/// Arguments "run <extra...> -r FIXDIR -- python3 -I probe.py <ops...>".
pub fn probe_args(extra: &[&str], ops: &[&str]) -> Vec<String> {
    script_args(extra, probe_py(), ops)
}

/// Arguments "run <extra...> -r FIXDIR -- FIXTURE <fargs...>".
pub fn fixture_args(extra: &[&str], name: &str, fargs: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec!["run".into()];
    v.extend(extra.iter().map(|s| s.to_string()));
    v.push("-r".into());
    v.push(fixdir());
    v.push("--".into());
    v.push(fixture(name));
    v.extend(fargs.iter().map(|s| s.to_string()));
    v
}

/// Arguments "run <extra...> -r FIXDIR -- python3 -I reachprobe.py <ops...>".
pub fn reach_args(extra: &[&str], ops: &[String]) -> Vec<String> {
    script_args(extra, format!("{}/reachprobe.py", fixdir()), ops)
}

/// Arguments "run <extra...> -- <cmd...>".
pub fn run_args(extra: &[&str], cmd: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec!["run".into()];
    v.extend(extra.iter().map(|s| s.to_string()));
    v.push("--".into());
    v.extend(cmd.iter().map(|s| s.to_string()));
    v
}

/// Where scripts/clients.sh installed the client matrix's venv and npm
/// packages ($SANDLOCK_CLIENTS, by default /var/cache/sandlock-clients).
pub fn clients_dir() -> String {
    let dir = std::env::var("SANDLOCK_CLIENTS")
        .unwrap_or_else(|_| "/var/cache/sandlock-clients".to_string());
    assert!(
        Path::new(&dir).join(".installed-v1").exists(),
        "the client matrix is not installed in {dir}: run `bash scripts/clients.sh` (scripts/test.sh does)"
    );
    dir
}

/// A TLS upstream (behind the tests' private root) serving package
/// repositories built by tests/fixtures/mkrepos.py under
/// `https://api.test:PORT/files`: a PEP 503 index with one wheel, an npm
/// registry with one package and a sparse cargo registry with one crate.
pub fn package_repositories() -> super::tls::Upstream {
    let files = super::TempDir::new("repos");
    let up = super::tls::Upstream::start_with("127.0.0.1", true, &["--files", &files.s()]);
    let base = format!("https://api.test:{}/files", up.port);
    let made = Command::new(PYTHON)
        .args([&format!("{}/mkrepos.py", fixdir()), &base, &files.s()])
        .output()
        .unwrap();
    assert!(made.status.success(), "mkrepos: {made:?}");
    std::mem::forget(files); // served until the test process ends
    up
}
