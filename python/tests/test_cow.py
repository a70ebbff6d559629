"""Copy-on-write workspaces: ``cow``, ``on_exit`` and ``cow_summary``.

The workload changes a project through its layer; ``Result.cow`` says what
changed and what became of it, and the host's files show it: committed,
kept in the layer, or left alone because the host changed them first."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from sandlock import PolicyError, Sandbox


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``proj/a.txt`` ("one") and ``proj/b.txt`` ("bee"); layers go to a
    state directory of the test's own."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "a.txt").write_text("one\n")
    (proj / "b.txt").write_text("bee\n")
    yield proj
    # A kept layer holds overlayfs's work/work, mode 000: opened up so that
    # pytest can remove the test's directory later (as uid 65534 too).
    for root, dirs, _ in os.walk(tmp_path / "state"):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o700)


def layers(project: Path) -> list[Path]:
    root = project.parent / "state" / "sandlock" / "cow"
    return sorted(root.iterdir()) if root.exists() else []


def sh(project: Path, script: str) -> list[str]:
    return ["/bin/sh", "-c", f"cd {project} && {script}"]


def test_commit_applies_the_changes_and_reports_them(project: Path) -> None:
    box = Sandbox(quiet=True, cow=[str(project)], cow_summary="none")
    r = box.run(sh(project, "echo two > a.txt && echo new > c.txt && rm b.txt"), capture=True)
    assert r.exit_code == 0, r.stderr
    assert (project / "a.txt").read_text() == "two\n"
    assert (project / "c.txt").read_text() == "new\n"
    assert not (project / "b.txt").exists()
    [report] = r.cow
    assert report["dir"] == str(project)
    assert (report["added"], report["changed"], report["deleted"]) == (["c.txt"], ["a.txt"], ["b.txt"])
    assert (report["action"], report["result"]) == ("commit", "applied")
    assert layers(project) == []


def test_a_failed_run_keeps_its_layer(project: Path) -> None:
    box = Sandbox(quiet=True, cow=[str(project)], cow_summary="none")
    r = box.run(sh(project, "echo two > a.txt && exit 4"), capture=True)
    assert r.exit_code == 4
    assert (project / "a.txt").read_text() == "one\n"
    [report] = r.cow
    assert (report["action"], report["result"]) == ("keep", "kept")
    [layer] = layers(project)
    assert report["layer"] == str(layer)
    assert (layer / "0" / "upper" / "a.txt").read_text() == "two\n"


def test_discard_asked_for_leaves_the_host_alone(project: Path) -> None:
    box = Sandbox(quiet=True, cow=[str(project)], on_exit="discard", cow_summary="none")
    r = box.run(sh(project, "echo two > a.txt && cat a.txt"), capture=True)
    assert (r.exit_code, r.stdout) == (0, b"two\n")
    assert (project / "a.txt").read_text() == "one\n"
    assert r.cow[0]["result"] == "discarded"
    assert layers(project) == []


@pytest.mark.parametrize("attack", [True, False])
def test_a_host_change_during_the_run_is_a_conflict(project: Path, attack: bool) -> None:
    box = Sandbox(quiet=True, cow=[str(project)], cow_summary="none")

    def change_host() -> None:
        # Once the workload has written its copy, the host edits a.txt.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if any((l / "0" / "upper" / "started").exists() for l in layers(project)):
                (project / "a.txt").write_text("theirs\n")
                return
            time.sleep(0.02)

    t = threading.Thread(target=change_host)
    if attack:
        t.start()
    r = box.run(sh(project, "echo ours > a.txt && echo two > b.txt && touch started && sleep 1"), capture=True)
    if attack:
        t.join()
        assert r.exit_code == 125, r.cow
        assert (project / "a.txt").read_text() == "theirs\n"
        assert r.cow[0]["conflicts"] == ["a.txt"]
        assert r.cow[0]["result"] == "incomplete"
    else:
        assert r.exit_code == 0, r.cow
        assert (project / "a.txt").read_text() == "ours\n"
    assert (project / "b.txt").read_text() == "two\n"


def test_a_bad_on_exit_is_a_policy_error(project: Path) -> None:
    with pytest.raises(PolicyError) as e:
        Sandbox(cow=[str(project)], on_exit="maybe")
    assert "maybe" in str(e.value) and "on-exit" in str(e.value)
    # Twin: a good value builds.
    Sandbox(cow=[str(project)], on_exit="keep")


KEYS = {"dir", "layer", "added", "changed", "deleted", "conflicts", "skipped", "action", "result", "error"}


def test_keep_asked_for_after_success_keeps_the_layer(
    project: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    box = Sandbox(cow=[str(project)], on_exit="keep", cow_summary="json")
    r = box.run(sh(project, "echo two > a.txt && echo new > c.txt"), capture=True)
    assert r.exit_code == 0, r.stderr
    assert (project / "a.txt").read_text() == "one\n"
    assert not (project / "c.txt").exists()
    [report] = r.cow
    assert set(report) == KEYS
    assert (report["added"], report["changed"], report["deleted"]) == (["c.txt"], ["a.txt"], [])
    assert (report["action"], report["result"], report["error"]) == ("keep", "kept", None)
    [layer] = layers(project)
    assert report["layer"] == str(layer)
    assert (layer / "0" / "upper" / "c.txt").read_text() == "new\n"
    # cow_summary="json": the same object, one line on sandlock's stderr.
    _, err = capfd.readouterr()
    assert [json.loads(l) for l in err.splitlines() if l.startswith("{")] == [report]


def test_two_directories_each_get_a_report_in_order(project: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "o.txt").write_text("o\n")
    box = Sandbox(quiet=True, cow=[str(project), str(other)], cow_summary="none")
    r = box.run(sh(project, f"rm b.txt && echo o2 > {other}/o.txt"), capture=True)
    assert r.exit_code == 0, r.stderr
    assert [c["dir"] for c in r.cow] == [str(project), str(other)]
    assert [(c["deleted"], c["changed"], c["result"]) for c in r.cow] == [
        (["b.txt"], [], "applied"),
        ([], ["o.txt"], "applied"),
    ]
    assert not (project / "b.txt").exists()
    assert (other / "o.txt").read_text() == "o2\n"
    assert layers(project) == []


@pytest.mark.parametrize(
    "keyword, value, flag",
    [("cow_summary", "yaml", "cow-summary"), ("cow", "/nonexistent/dir", "cow")],
)
def test_bad_cow_values_are_policy_errors(project: Path, keyword: str, value: str, flag: str) -> None:
    kw = {"cow": [str(project)], keyword: value}
    with pytest.raises(PolicyError) as e:
        Sandbox(**kw)
    assert f"'{value}'" in str(e.value) and f"'--{flag}'" in str(e.value)
    # Twin: good values build, and nothing ran: no layer.
    Sandbox(cow=[str(project)], cow_summary="json")
    assert layers(project) == []
