//! The two engines, driven through their own command lines: podman with
//! `--runtime sandlock-oci --rootfs DIR` (its default seccomp profile),
//! and containerd's runc shim through `ctr run --runc-binary sandlock-oci
//! --seccomp` (containerd's default profile, the one Kubernetes'
//! RuntimeDefault applies) on the imported image, against a containerd
//! daemon of the tests' own.
//!
//! Both engines get host networking, so the containers reach the tests'
//! loopback servers.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, OnceLock};
use std::thread;
use std::time::Duration;

use super::rootfs::{image_tar, rootfs, IMAGE};
use crate::common::*;

/// One container run's limit; a run here takes about a second.
pub const LIMIT: Duration = Duration::from_secs(90);

/// The runtime under test: the static build (`cargo build-static`, which
/// scripts/test.sh runs first) of the same profile as the tests.
pub fn oci_bin() -> String {
    let profile_dir = Path::new(env!("CARGO_BIN_EXE_sandlock")).parent().unwrap();
    let p = profile_dir
        .parent()
        .unwrap()
        .join("x86_64-unknown-linux-gnu")
        .join(profile_dir.file_name().unwrap())
        .join("sandlock-oci");
    assert!(
        p.is_file(),
        "{} is missing: build it with `cargo build-static` (scripts/test.sh does)",
        p.display()
    );
    p.to_str().unwrap().to_string()
}

/// Fails, saying why, when this host cannot run the engines' tests.
fn require(what: &str, ok: bool, why: &str) {
    assert!(
        ok,
        "cannot run the OCI runtime's {what} tests on this host: {why} (scripts/deps.sh installs \
         podman, containerd, runc and busybox-static as root)"
    );
}

/// What to run, and how.
#[derive(Default, Clone)]
pub struct Container {
    /// `run.sandlock/KEY` annotations: (KEY, VALUE).
    pub annotations: Vec<(String, String)>,
    /// Environment entries, NAME=VALUE.
    pub env: Vec<String>,
    /// `UID:GID` to run as (podman only), else the image's root.
    pub user: Option<String>,
    /// A host directory mounted read-write at /shared.
    pub shared: Option<String>,
    /// Any other annotation, verbatim KEY=VALUE.
    pub raw_annotations: Vec<String>,
    /// Host files or directories bind-mounted read-only: (host, container).
    pub mounts: Vec<(String, String)>,
    /// A root filesystem of the test's own (podman only).
    pub rootfs: Option<String>,
    /// `podman --add-host NAME:IP` entries of the engine's /etc/hosts.
    pub hosts: Vec<String>,
    /// More of podman's `run` flags.
    pub podman_flags: Vec<String>,
}

impl Container {
    /// With `run.sandlock/KEY: VALUE`.
    pub fn with(mut self, key: &str, value: &str) -> Container {
        self.annotations.push((key.into(), value.into()));
        self
    }

    /// With `NAME=VALUE` in the environment.
    pub fn env(mut self, entry: &str) -> Container {
        self.env.push(entry.into());
        self
    }

    fn annotation_args(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .annotations
            .iter()
            .map(|(k, val)| format!("run.sandlock/{k}={val}"))
            .collect();
        v.extend(self.raw_annotations.iter().cloned());
        v
    }
}

/// An engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// podman, with `--runtime`.
    Podman,
    /// containerd's runc shim, through ctr.
    Containerd,
}

static NAMES: AtomicUsize = AtomicUsize::new(0);

/// A container name no other test uses.
pub fn unique(tag: &str) -> String {
    format!(
        "sl-{tag}-{}-{}",
        std::process::id(),
        NAMES.fetch_add(1, Ordering::SeqCst)
    )
}

impl Engine {
    /// The foreground `run` of `cmd` in a new container `name`, removed
    /// when it ends; its exit status is the container's.
    pub fn command(self, name: &str, c: &Container, cmd: &[&str]) -> Command {
        let mut out = match self {
            Engine::Podman => {
                require(
                    "podman",
                    is_root(),
                    "podman runs rootful here and needs root",
                );
                let mut p = Command::new("podman");
                p.env("CONTAINERS_CONF", containers_conf())
                    .args(["--runtime", &oci_bin(), "run", "--rm", "--network", "host"])
                    .args(["--name", name]);
                if let Some(u) = &c.user {
                    p.args(["--user", u]);
                }
                for e in &c.env {
                    p.args(["--env", e]);
                }
                for a in c.annotation_args() {
                    p.args(["--annotation", &a]);
                }
                if let Some(dir) = &c.shared {
                    p.args(["--volume", &format!("{dir}:/shared")]);
                }
                for (host, dest) in &c.mounts {
                    p.args(["--volume", &format!("{host}:{dest}:ro")]);
                }
                for h in &c.hosts {
                    p.args(["--add-host", h]);
                }
                p.args(&c.podman_flags);
                p.args(["--rootfs", c.rootfs.as_deref().unwrap_or(rootfs())]);
                p
            }
            Engine::Containerd => {
                assert!(c.user.is_none(), "ctr run has no --user");
                let mut p = ctr();
                p.args([
                    "run",
                    "--rm",
                    "--net-host",
                    "--seccomp",
                    "--runc-binary",
                    &oci_bin(),
                ]);
                for e in &c.env {
                    p.args(["--env", e]);
                }
                for a in c.annotation_args() {
                    p.args(["--annotation", &a]);
                }
                assert!(
                    c.rootfs.is_none() && c.hosts.is_empty() && c.podman_flags.is_empty(),
                    "podman only"
                );
                if let Some(dir) = &c.shared {
                    p.args([
                        "--mount",
                        &format!("type=bind,src={dir},dst=/shared,options=rbind:rw"),
                    ]);
                }
                for (host, dest) in &c.mounts {
                    p.args([
                        "--mount",
                        &format!("type=bind,src={host},dst={dest},options=rbind:ro"),
                    ]);
                }
                p.args([IMAGE, name]);
                p
            }
        };
        out.args(cmd).stdin(Stdio::null());
        out
    }

    /// Runs `cmd` in a new container to its end.
    pub fn run(self, c: &Container, cmd: &[&str]) -> Out {
        run_cmd(self.command(&unique("run"), c, cmd), None, LIMIT)
    }

    /// Runs `cmd` in a new container with a terminal (`-t`: the engine
    /// hands runc a console socket), the engine itself on a pseudo-terminal
    /// that `script` provides.
    pub fn run_tty(self, c: &Container, cmd: &[&str]) -> Out {
        let run = self.command(&unique("tty"), c, cmd);
        let mut words: Vec<String> = vec![run.get_program().to_string_lossy().into_owned()];
        let args: Vec<String> = run
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let at = args.iter().position(|a| a == "run").unwrap();
        words.extend(args[..=at].iter().cloned());
        words.push("-t".into());
        words.extend(args[at + 1..].iter().cloned());
        let line = words
            .iter()
            .map(|w| format!("'{}'", w.replace('\'', "'\\''")))
            .collect::<Vec<_>>()
            .join(" ");
        let mut p = Command::new("script");
        p.args(["-qec", &line, "/dev/null"]).stdin(Stdio::null());
        for (k, v) in run.get_envs() {
            if let Some(v) = v {
                p.env(k, v);
            }
        }
        run_cmd(p, None, LIMIT)
    }

    /// Starts `cmd` in a new container `name`; the handle's `join` gives
    /// the foreground run's output once the container ends.
    pub fn spawn(self, name: &str, c: &Container, cmd: &[&str]) -> thread::JoinHandle<Out> {
        let cmd = self.command(name, c, cmd);
        thread::spawn(move || run_cmd(cmd, None, LIMIT))
    }

    /// `exec` of `cmd` in the running container `name`.
    pub fn exec(self, name: &str, env: &[&str], cmd: &[&str]) -> Out {
        let mut p = match self {
            Engine::Podman => {
                let mut p = Command::new("podman");
                p.env("CONTAINERS_CONF", containers_conf())
                    .args(["--runtime", &oci_bin(), "exec"]);
                for e in env {
                    p.args(["--env", e]);
                }
                p.arg(name);
                p
            }
            Engine::Containerd => {
                let mut p = ctr();
                p.args(["task", "exec", "--exec-id", &unique("exec"), name]);
                assert!(env.is_empty(), "ctr task exec has no --env");
                p
            }
        };
        p.args(cmd);
        run_cmd(p, None, LIMIT)
    }

    /// Sends SIGTERM to the container's first process the engine's way
    /// (`podman stop`, `ctr task kill`).
    pub fn stop(self, name: &str) -> Out {
        let p = match self {
            Engine::Podman => {
                let mut p = Command::new("podman");
                p.env("CONTAINERS_CONF", containers_conf()).args([
                    "--runtime",
                    &oci_bin(),
                    "stop",
                    "-t",
                    "30",
                    name,
                ]);
                p
            }
            Engine::Containerd => {
                let mut p = ctr();
                p.args(["task", "kill", "--signal", "SIGTERM", name]);
                p
            }
        };
        run_cmd(p, None, LIMIT)
    }
}

/// podman's configuration here: no default ulimits (root on these
/// machines lacks CAP_SYS_RESOURCE, and podman's nofile default fails).
fn containers_conf() -> &'static str {
    static CONF: OnceLock<(TempDir, String)> = OnceLock::new();
    &CONF
        .get_or_init(|| {
            require("podman", which("podman"), "podman is not installed");
            let d = TempDir::new("podman-conf");
            let f = d.file("containers.conf", "[containers]\ndefault_ulimits = []\n");
            (d, f)
        })
        .1
}

fn which(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A `ctr` command against the tests' own containerd, with the image.
fn ctr() -> Command {
    let socket = containerd();
    let mut p = Command::new("ctr");
    p.args(["--address", socket]);
    p
}

/// The tests' containerd daemon (state under a temp dir, its own socket),
/// started once, with the image imported. It is started from a thread
/// that lives as long as the test process and dies with it
/// (`setpriv --pdeathsig`), so no daemon outlives the tests.
fn containerd() -> &'static str {
    static SOCKET: OnceLock<String> = OnceLock::new();
    SOCKET.get_or_init(|| {
        require("containerd", is_root(), "containerd needs root");
        require(
            "containerd",
            which("containerd") && which("ctr"),
            "containerd is not installed",
        );
        require("containerd", which("runc"), "runc is not installed");
        sweep_stale_daemons();
        let d = TempDir::new("containerd");
        let socket = d.join("containerd.sock");
        let config = d.file(
            "config.toml",
            &format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{socket}\"\n",
                root = d.join("root"),
                state = d.join("state"),
            ),
        );
        let log = d.join("containerd.log");
        let (tx, rx) = mpsc::channel::<u32>();
        thread::spawn(move || {
            let mut child = Command::new("setpriv")
                .args(["--pdeathsig", "KILL", "containerd", "--config", &config])
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("start containerd");
            tx.send(child.id()).unwrap();
            // The daemon's parent thread lives until the daemon ends, which
            // is when the test process does.
            let _ = child.wait();
        });
        let pid = rx.recv().unwrap();
        let up = wait_until(Duration::from_secs(30), || {
            Command::new("ctr")
                .args(["--address", &socket, "version"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        if !up {
            send_signal(pid, "KILL");
            panic!("containerd did not answer on {socket} within 30 s");
        }
        let out = run_cmd(
            {
                let mut c = Command::new("ctr");
                c.args(["--address", &socket, "images", "import", image_tar()]);
                c
            },
            None,
            LIMIT,
        );
        out.expect_code(0);
        std::mem::forget(d); // the daemon's state lives as long as it does
        socket
    })
}

/// Removes the state of daemons whose test process has ended (the state
/// outlives its daemon: a static is never dropped).
fn sweep_stale_daemons() {
    let Ok(entries) = std::fs::read_dir("/tmp") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("sandlock-e2e-containerd-") else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        if !pid.is_empty() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
