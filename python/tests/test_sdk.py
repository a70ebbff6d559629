"""What a Python user expects of the binding: a context manager and
close(), bytes where paths and values are bytes, PolicyError.field at
construction (for cross-option errors too), __version__, sandlock's own
lines on the Result instead of our stderr, and a typed signature (the
stub generated from the option table) that agrees with the runtime."""

from __future__ import annotations

import ast
import dataclasses
import importlib.metadata
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import sandlock
from sandlock import PolicyError, Result, Sandbox, SandboxError, Secret, option_names
from sandlock import _lib

PY = "/usr/bin/python3"
# Opens an inet socket: without net_allow sandlock refuses it and says so.
OPENS_A_SOCKET = [PY, "-I", "-c", "import socket\ntry: socket.socket()\nexcept OSError: pass"]
DENIED_SOCKET = "sandlock: denied socket AF_INET SOCK_STREAM from pid "
STUB = Path(sandlock.__file__).parent / "_sandbox.pyi"


# --- with Sandbox(...) as sb, close() -------------------------------------


def test_with_block_closes_and_a_closed_sandbox_refuses_to_run() -> None:
    with Sandbox(quiet=True) as sb:
        assert not sb.closed
        assert sb.run(["true"]).ok
        assert sb.run(["true"]).ok
    assert sb.closed
    with pytest.raises(SandboxError, match="this Sandbox is closed"):
        sb.run(["true"])
    with pytest.raises(SandboxError, match="closed"):
        with sb:
            pass
    # Twin: an open sandbox runs again and again.
    open_sb = Sandbox(quiet=True)
    assert open_sb.run(["true"]).ok and open_sb.run(["true"]).ok
    assert not open_sb.closed


def test_close_twice_is_fine_and_an_exception_still_closes() -> None:
    sb = Sandbox(quiet=True)
    sb.close()
    sb.close()
    assert sb.closed and "closed" in repr(sb)
    with pytest.raises(RuntimeError):
        with Sandbox(quiet=True) as inner:
            raise RuntimeError("boom")
    assert inner.closed


def test_close_waits_for_a_run_in_another_thread() -> None:
    sb = Sandbox(quiet=True)
    results: list[Result] = []
    t = threading.Thread(target=lambda: results.append(sb.run(["sh", "-c", "sleep 1; echo done"])))
    t.start()
    time.sleep(0.3)
    sb.close()
    t.join()
    assert results[0].stdout == b"done\n"
    assert sb.closed
    with pytest.raises(SandboxError):
        sb.run(["true"])


# --- bytes where paths and values are bytes -------------------------------


def test_bytes_paths_reach_the_policy(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("granted bytes")
    cmd = ["cat", str(tmp_path / "f")]
    r = Sandbox(quiet=True, fs_read=[os.fsencode(tmp_path)]).run(cmd)
    assert (r.exit_code, r.stdout) == (0, b"granted bytes")
    # A single bytes value, and bytes in a dict and a Secret, too.
    r = Sandbox(quiet=True, fs_read=os.fsencode(tmp_path), cwd=os.fsencode(tmp_path),
                env={"GREETING": b"hi"}).run(["sh", "-c", 'echo "$GREETING $(pwd)"'])
    assert r.stdout == f"hi {tmp_path}\n".encode()
    assert Secret(file=b"/run/tok", hosts=["a.test"]).spec("T") == "T=file:/run/tok@a.test"
    # Twin: without the grant the same read is refused.
    r = Sandbox(quiet=True).run(cmd)
    assert r.exit_code == 1 and b"Permission denied" in r.stderr


def test_a_profile_named_by_bytes_or_a_path(tmp_path: Path) -> None:
    profile = tmp_path / "mine.toml"
    profile.write_text('[process.env]\nFROM_PROFILE = "yes"\n')
    script = ["sh", "-c", 'echo "${FROM_PROFILE-unset}"']
    for name in (os.fsencode(profile), profile):
        with Sandbox.from_profile(name, quiet=True) as sb:
            assert sb.run(script).stdout == b"yes\n"
    # Twin: without the profile the variable is not set.
    assert Sandbox(quiet=True).run(script).stdout == b"unset\n"


def test_bytes_that_are_not_utf8_name_the_option() -> None:
    with pytest.raises(PolicyError) as e:
        Sandbox(fs_read=[b"/srv/\xff"])
    assert (e.value.field, e.value.option) == ("fs_read", "fs-read")
    assert str(e.value) == "fs_read: b'/srv/\\xff' is not valid UTF-8, which sandlock's options need"
    # A str path that came from such bytes (a surrogate escape) too.
    with pytest.raises(PolicyError) as e:
        Sandbox(cwd=Path(os.fsdecode(b"/srv/\xfe")))
    assert e.value.field == "cwd"
    # Twin: valid UTF-8 bytes are fine.
    Sandbox(fs_read=["/srv/é".encode()])


# --- PolicyError.field at construction ------------------------------------


def test_a_bad_value_fails_at_construction_naming_the_keyword() -> None:
    with pytest.raises(PolicyError) as e:
        Sandbox(net_allow=["api.test:99999"])
    assert (e.value.field, e.value.option, e.value.value) == (
        "net_allow", "net-allow", "api.test:99999")
    # Twin: a good value constructs.
    Sandbox(net_allow=["api.test:443"])


def test_a_cross_option_error_fails_at_construction_naming_the_keyword() -> None:
    with pytest.raises(PolicyError) as e:
        Sandbox(http_ca="/ca.pem")
    assert (e.value.field, e.value.option, e.value.value) == ("http_ca", "http-ca", None)
    assert str(e.value) == "http_ca: --http-ca needs --http-key"
    with pytest.raises(PolicyError) as e:
        Sandbox(http_key="/key.pem")
    assert e.value.field == "http_key"
    with pytest.raises(PolicyError) as e:
        Sandbox(on_secret_misuse="block")
    assert e.value.field == "on_secret_misuse"
    with pytest.raises(PolicyError) as e:
        Sandbox(secret_headers=["T=authorization"])
    assert (e.value.field, e.value.value) == ("secret_headers", "T=...")
    with pytest.raises(PolicyError) as e:
        Sandbox(http_allow=["GET api.test/x"], http_bypass=["*.api.test"])
    assert (e.value.field, e.value.value) == ("http_bypass", "*.api.test")
    # An alias is named as given.
    with pytest.raises(PolicyError) as e:
        Sandbox(http_ports=[8080])
    assert (e.value.field, e.value.option) == ("http_ports", "http-port")
    # Twin: completed, the same options construct.
    Sandbox(http_ca="/ca.pem", http_key="/key.pem", http_allow=["GET api.test/x"])


def test_none_leaves_an_option_unset() -> None:
    sb = Sandbox(quiet=None, timeout=None, fs_read=None, http_ca=None)
    assert sb.run(["true"]).ok


# --- __version__ -----------------------------------------------------------


def test_version_is_the_librarys() -> None:
    assert sandlock.__version__ == _lib.version()
    assert sandlock.__version__[0].isdigit() and sandlock.__version__.count(".") >= 2
    try:
        installed = importlib.metadata.version("sandlock")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("a copy of the package, without its metadata")
    assert installed == sandlock.__version__


# --- sandlock's own lines on the Result ------------------------------------


def test_denials_are_on_the_result_not_on_our_stderr(
    capfd: pytest.CaptureFixture[str],
) -> None:
    r = Sandbox().run(OPENS_A_SOCKET)
    assert r.exit_code == 0, r.stderr
    assert len(r.denials) == 1 and r.denials[0].startswith(DENIED_SOCKET), r.denials
    assert b"sandlock:" not in r.stderr
    _, err = capfd.readouterr()
    assert "sandlock:" not in err


def test_uncaptured_denials_go_to_our_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    # Twin: without capture, the line is ours to see, as the CLI prints it.
    r = Sandbox().run(OPENS_A_SOCKET, capture=False)
    assert (r.exit_code, r.denials) == (0, [])
    _, err = capfd.readouterr()
    assert DENIED_SOCKET in err


def test_quiet_and_clean_runs_have_no_denials(capfd: pytest.CaptureFixture[str]) -> None:
    assert Sandbox(quiet=True).run(OPENS_A_SOCKET).denials == []
    assert Sandbox().run(["true"]).denials == []
    _, err = capfd.readouterr()
    assert "sandlock:" not in err


# --- the stub ---------------------------------------------------------------


def _stub() -> ast.Module:
    return ast.parse(STUB.read_text())


def _class(tree: ast.Module, name: str) -> ast.ClassDef:
    return next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name)


def _method(cls: ast.ClassDef, name: str) -> ast.FunctionDef:
    return next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == name)


def test_the_stub_is_shipped_with_its_marker() -> None:
    here = Path(sandlock.__file__).parent
    assert (here / "py.typed").exists() and STUB.exists()


def test_every_keyword_is_typed_in_the_stub_and_only_those() -> None:
    from sandlock._sandbox import _ALIASES

    expected = option_names() + sorted(_ALIASES)
    sandbox = _class(_stub(), "Sandbox")
    for method in ("__init__", "from_profile"):
        fn = _method(sandbox, method)
        names = [a.arg for a in fn.args.kwonlyargs]
        assert sorted(names) == sorted(expected), method
        assert all(a.annotation is not None for a in fn.args.kwonlyargs)
        documented = {
            line.strip().split(":")[0].split(" (")[0]
            for line in (ast.get_docstring(fn) or "").splitlines()
        }
        assert set(expected) <= documented, method
    quiet = next(a for a in _method(sandbox, "__init__").args.kwonlyargs if a.arg == "quiet")
    assert ast.unparse(quiet.annotation) == "bool | None"


def test_the_stubs_classes_match_the_runtime() -> None:
    tree = _stub()
    for cls in (Result, Secret):
        stub_fields = [
            n.target.id for n in _class(tree, cls.__name__).body
            if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
        ]
        assert stub_fields == [f.name for f in dataclasses.fields(cls)], cls
    public = {n.name for n in _class(tree, "Sandbox").body if isinstance(n, ast.FunctionDef)}
    assert public == {"__init__", "from_profile", "run", "close", "closed", "__enter__", "__exit__"}
    assert all(hasattr(Sandbox, name) for name in public)
    top = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    assert top == {"Secret", "Result", "Sandbox", "option_names"}


GOOD = """
from pathlib import Path
from sandlock import Sandbox, Secret, Result, __version__

with Sandbox(fs_read=["/srv", Path("/data"), b"/raw"], net_allow="api.test:443",
             http_ports=[8080, "9000-9001"], timeout=2.5, quiet=True,
             on_secret_misuse="warn", env={"A": "1"},
             secrets={"T": Secret(env="T", hosts=["api.test"])}) as sb:
    r: Result = sb.run(["true"])
    lines: list[str] = r.denials
sb2: Sandbox = Sandbox.from_profile("build", timeout=5)
sb2.close()
v: str = __version__
"""

BAD = """
from sandlock import Sandbox

Sandbox(net_alow=["x"])
Sandbox(quiet="yes")
Sandbox(on_secret_misuse="sometimes")
Sandbox(timeout=[1, 2])
Sandbox("positional")
Sandbox().run(["true"]).denials.append(1)
"""


def _mypy(tmp_path: Path, name: str, code: str) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("mypy", reason="mypy checks the stub when installed (pip install mypy)")
    path = tmp_path / name
    path.write_text(code)
    env = dict(os.environ)
    # A copy of the package (PYTHONPATH) is found through MYPYPATH; an
    # installed one (site-packages) through the interpreter.
    root = str(Path(sandlock.__file__).parent.parent)
    env["MYPYPATH"] = "" if "-packages" in root else root
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
         "--cache-dir", os.devnull, str(path)],
        capture_output=True, text=True, cwd=tmp_path, env=env,
    )


def test_mypy_accepts_typed_use(tmp_path: Path) -> None:
    out = _mypy(tmp_path, "good.py", GOOD)
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_refuses_what_the_library_would(tmp_path: Path) -> None:
    # Twin of the test above: each bad line is an error at its line.
    out = _mypy(tmp_path, "bad.py", BAD)
    assert out.returncode == 1, out.stdout + out.stderr
    lines = {int(l.split(":")[1]) for l in out.stdout.splitlines() if ": error:" in l}
    assert lines == {4, 5, 6, 7, 8, 9}, out.stdout
