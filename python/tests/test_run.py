"""Running commands: exit codes, signals, timeouts, stdin and captured
streams, the environment, and the filesystem allowlist."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from sandlock import CommandError, Sandbox


def test_exit_code_and_streams_apart() -> None:
    r = Sandbox(quiet=True).run(["sh", "-c", "printf out; printf err >&2; exit 7"])
    assert (r.exit_code, r.signal, r.timed_out) == (7, None, False)
    assert (r.stdout, r.stderr) == (b"out", b"err")
    assert not r.ok
    assert Sandbox(quiet=True).run(["true"]).ok


def test_input_bytes_reach_stdin() -> None:
    data = b"bytes \x00\xff through\n"
    r = Sandbox(quiet=True).run(["cat"], input=data)
    assert (r.exit_code, r.stdout) == (0, data)
    r = Sandbox(quiet=True).run(["tr", "a-z", "A-Z"], input="text")
    assert r.stdout == b"TEXT"


def test_signal() -> None:
    r = Sandbox(quiet=True).run(["sh", "-c", "kill -KILL $$"])
    assert (r.exit_code, r.signal, r.timed_out) == (137, 9, False)


def test_timeout_kills_the_tree() -> None:
    start = time.monotonic()
    r = Sandbox(quiet=True, timeout=1).run(["sleep", "30"])
    assert time.monotonic() - start < 20
    assert (r.exit_code, r.signal, r.timed_out) == (124, None, True)


def test_missing_command() -> None:
    with pytest.raises(CommandError) as e:
        Sandbox(quiet=True).run(["/nonexistent/sandlock-py-cmd"])
    assert str(e.value).startswith("/nonexistent/sandlock-py-cmd: ")


def test_env_cwd_and_clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDLOCK_PY_INHERITED", "yes")
    script = 'printf "%s|%s|%s" "$GREETING" "${SANDLOCK_PY_INHERITED-unset}" "$(pwd)"'
    r = Sandbox(quiet=True, env={"GREETING": "hi"}, fs_read=[tmp_path], cwd=tmp_path).run(
        ["sh", "-c", script]
    )
    assert r.stdout == f"hi|yes|{tmp_path}".encode()
    r = Sandbox(quiet=True, env={"GREETING": "hi"}, clean_env=True).run(["sh", "-c", script])
    assert r.stdout.startswith(b"hi|unset|")


def test_reads_only_the_allowlist(tmp_path: Path) -> None:
    (tmp_path / "granted").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "granted" / "f").write_text("granted bytes")
    (tmp_path / "other" / "f").write_text("other bytes")
    box = Sandbox(quiet=True, fs_read=[tmp_path / "granted"])
    r = box.run(["cat", str(tmp_path / "granted" / "f")])
    assert (r.exit_code, r.stdout) == (0, b"granted bytes")
    r = box.run(["cat", str(tmp_path / "other" / "f")])
    assert r.exit_code == 1 and r.stdout == b""
    assert b"Permission denied" in r.stderr


def test_without_capture_the_workload_writes_to_our_streams(
    capfd: pytest.CaptureFixture[str],
) -> None:
    r = Sandbox(quiet=True).run(["sh", "-c", "echo to-out; echo to-err >&2"], capture=False)
    assert (r.exit_code, r.stdout, r.stderr) == (0, b"", b"")
    out, err = capfd.readouterr()
    assert (out, err) == ("to-out\n", "to-err\n")


def test_argv_must_be_a_sequence() -> None:
    with pytest.raises(TypeError, match="sequence of arguments"):
        Sandbox(quiet=True).run("echo hi")  # type: ignore[arg-type]


def test_unix_allow_reaches_a_host_socket(tmp_path: Path) -> None:
    import socket
    import threading

    path = tmp_path / "service.sock"
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    srv.listen(4)
    accepted: list[int] = []

    def serve() -> None:
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            accepted.append(1)
            c.sendall(b"svc")
            c.close()

    threading.Thread(target=serve, daemon=True).start()
    script = (
        "import socket; s = socket.socket(socket.AF_UNIX); "
        f"s.connect({str(path)!r}); print(s.recv(9).decode())"
    )
    cmd = ["/usr/bin/python3", "-I", "-c", script]
    try:
        # A host socket file outside the write grants: refused.
        r = Sandbox(quiet=True).run(cmd)
        assert r.exit_code == 1 and b"PermissionError" in r.stderr
        assert accepted == []
        # twin: named by unix_allow, the same connect reaches it
        r = Sandbox(quiet=True, unix_allow=[path]).run(cmd)
        assert (r.exit_code, r.stdout) == (0, b"svc\n")
        assert accepted == [1]
    finally:
        srv.close()


def test_home_is_private_by_default_and_home_names_a_directory(tmp_path: Path) -> None:
    script = 'echo "$HOME"; echo kept > "$HOME/f"'
    r = Sandbox(quiet=True).run(["/bin/sh", "-c", script])
    private = r.stdout.decode().strip()
    assert r.exit_code == 0 and private.startswith("/tmp/sandlock."), r
    assert not Path(private).exists()
    # twin: `home` names a directory of the caller's; what is written stays
    tmp_path.chmod(0o777)
    r = Sandbox(quiet=True, home=tmp_path).run(["/bin/sh", "-c", script])
    assert (r.exit_code, r.stdout) == (0, f"{tmp_path}\n".encode())
    assert (tmp_path / "f").read_text() == "kept\n"


def _sandlock_threads() -> list[str]:
    names = []
    for t in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{t}/comm") as f:
                name = f.read().strip()
        except OSError:  # the thread ended meanwhile
            continue
        if name.startswith("sandlock"):
            names.append(name)
    return names


def test_no_supervisor_thread_outlives_a_run_or_spins() -> None:
    # A run whose workload asks the DNS interceptor a name: when it ends,
    # every supervisor thread ends too, and the process is idle (a DNS
    # thread once spun on its shut-down socket, burning two cores).
    script = (
        "import socket\n"
        "try:\n    socket.getaddrinfo('nowhere.test', 80)\n"
        "except OSError:\n    pass\nprint('asked')\n"
    )
    r = Sandbox(quiet=True, net_allow=["127.0.0.1:9"]).run(
        ["/usr/bin/python3", "-c", script], capture=True
    )
    assert (r.exit_code, r.stdout) == (0, b"asked\n"), r.stderr
    deadline = time.monotonic() + 5
    while _sandlock_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _sandlock_threads() == []
    c0, t0 = time.process_time(), time.monotonic()
    time.sleep(1)
    share = (time.process_time() - c0) / (time.monotonic() - t0)
    assert share < 0.1, f"the process used {share:.2f} of a CPU while idle"
