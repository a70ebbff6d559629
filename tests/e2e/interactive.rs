//! Interactive use on a real terminal (tmux, and a pty of the test's own
//! for resizes): a REPL and a full-screen program work inside the
//! sandbox, a window resize reaches the workload,
//! Ctrl-C reaches the workload (which may handle it) and not only
//! sandlock, and TIOCSTI cannot type into the terminal.

use crate::common::*;
use std::process::Command;
use std::time::Duration;

/// A tmux server of the test's own (its own socket), running one window.
struct Tmux {
    socket: String,
    nobody: bool,
    /// Holds the socket; removed after the server is killed.
    _dir: TempDir,
}

impl Tmux {
    /// Starts `cmdline` (a shell command line) in a detached `w`×`h`
    /// window, as the context's user.
    fn start(ctx: &Ctx, cmdline: &str, w: u16, h: u16) -> Tmux {
        let d = TempDir::new("tmux");
        let t = Tmux {
            socket: format!("{}/sock", d.s()),
            nobody: ctx.drop_to_nobody,
            _dir: d,
        };
        let out = t
            .tmux(&[
                "new-session",
                "-d",
                "-x",
                &w.to_string(),
                "-y",
                &h.to_string(),
                cmdline,
            ])
            .output()
            .expect("run tmux");
        assert!(out.status.success(), "tmux new-session: {out:?}");
        t
    }

    fn tmux(&self, args: &[&str]) -> Command {
        let mut c = if self.nobody {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid",
                "65534",
                "--regid",
                "65534",
                "--clear-groups",
                "tmux",
            ]);
            c
        } else {
            Command::new("tmux")
        };
        c.args(["-S", &self.socket, "-f", "/dev/null"])
            .args(args)
            .env_clear()
            .env("PATH", PATH_ENV)
            .env("HOME", "/tmp")
            .env("SHELL", "/bin/sh")
            .env("TERM", "xterm-256color")
            .env("LANG", "C.UTF-8");
        c
    }

    fn send(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "0"];
        args.extend(keys);
        assert!(self.tmux(&args).status().unwrap().success());
    }

    fn screen(&self) -> String {
        let out = self
            .tmux(&["capture-pane", "-p", "-t", "0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen shows `text`; the screen either way.
    fn wait_for(&self, text: &str) -> (bool, String) {
        let found = wait_until(Duration::from_secs(10), || self.screen().contains(text));
        (found, self.screen())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]).status();
    }
}

both!(a_repl_works_on_a_terminal, |ctx| {
    let t = Tmux::start(
        &ctx,
        &format!("{} run -- {PYTHON} -q", ctx.sandlock_bin()),
        80,
        24,
    );
    let (ready, screen) = t.wait_for(">>>");
    assert!(ready, "no prompt:\n{screen}");
    t.send(&["print(6 * 7)", "Enter"]);
    let (ok, screen) = t.wait_for("42");
    assert!(ok, "{screen}");
    // TIOCSTI cannot type into the terminal; the REPL itself can.
    t.send(&[
        "import fcntl, termios; fcntl.ioctl(0, termios.TIOCSTI, b'X')",
        "Enter",
    ]);
    let (refused, screen) = t.wait_for("PermissionError");
    assert!(refused, "{screen}");
    // Ctrl-C reaches the workload: Python turns it into KeyboardInterrupt
    // and carries on; sandlock stays.
    t.send(&["import time; time.sleep(30)", "Enter"]);
    std::thread::sleep(Duration::from_millis(300));
    t.send(&["C-c"]);
    let (interrupted, screen) = t.wait_for("KeyboardInterrupt");
    assert!(interrupted, "{screen}");
    t.send(&["print('still ' + 'here')", "Enter"]);
    let (alive, screen) = t.wait_for("still here");
    assert!(alive, "the REPL did not survive Ctrl-C:\n{screen}");
});

both!(a_full_screen_program_works, |ctx| {
    // less draws the file and its prompt, and quits on q.
    let t = Tmux::start(
        &ctx,
        &format!(
            "{} run -- less /etc/os-release; echo less-exit $?; sleep 30",
            ctx.sandlock_bin()
        ),
        80,
        24,
    );
    let (drawn, screen) = t.wait_for("(END)");
    assert!(drawn && screen.contains("NAME="), "{screen}");
    t.send(&["q"]);
    let (quit, screen) = t.wait_for("less-exit 0");
    assert!(quit, "{screen}");
});

both!(a_resize_reaches_the_workload, |ctx| {
    // A terminal emulator resizes with TIOCSWINSZ on its side of the
    // terminal; the kernel sends SIGWINCH to the foreground group, and
    // stty reads the new size. (tmux applies a size to a detached pane
    // only when a client draws it, so a pty of the test's own does this.)
    let script = "trap 'echo resized $(stty size); exit 0' WINCH; echo start $(stty size); \
                  while :; do sleep 0.1; done";
    let mut driver = ctx.wrapper(PYTHON);
    driver
        .arg(format!("{}/ptyresize.py", fixdir()))
        .arg(ctx.sandlock_bin())
        .args(run_args(&[], &["/bin/sh", "-c", script]))
        .env("TERM", "xterm-256color");
    let out = run_cmd(driver, None, Duration::from_secs(30));
    out.expect_code(0);
    assert_eq!(
        out.stdout,
        "start 24 80\nresized 30 100\n",
        "{}",
        out.dump()
    );
});
