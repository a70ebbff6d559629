"""``learn``: a run watched under a widened policy returns (and writes) the
profile it needs, and a sandbox made from that profile runs the same
command; without it, the same command fails."""

from __future__ import annotations

from pathlib import Path

from sandlock import Sandbox

from conftest import Upstream


def test_learned_profile_lets_the_same_run_pass(tmp_path: Path, upstream: Upstream) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name in "abc":
        (data / f"{name}.txt").write_text(name)
    out = tmp_path / "out"
    out.mkdir()
    profile = tmp_path / "learned.toml"
    script = (
        f"cat {data}/a.txt {data}/b.txt {data}/c.txt > {out}/copy.txt && "
        f"curl -sS -o /dev/null -w '%{{http_code}}\\n' http://api.test:{upstream.port}/ok/items/1"
    )
    cmd = ["sh", "-c", script]
    sb = Sandbox(
        learn=str(profile),
        quiet=True,
        add_host=["api.test:127.0.0.1"],
        http_ports=[upstream.port],
    )
    r = sb.run(cmd, capture=True)
    assert r.exit_code == 0, r.stderr
    assert r.stdout == b"200\n"
    assert r.learned is not None
    assert r.learned == profile.read_text()
    assert f'"{data}",  # learned: read {data}/a.txt' in r.learned
    assert f'"{out}",  # learned: written' in r.learned
    assert '"GET api.test/ok/items/*",  # learned: GET /ok/items/1' in r.learned

    (out / "copy.txt").unlink()
    again = Sandbox.from_profile(str(profile), quiet=True).run(cmd, capture=True)
    assert again.exit_code == 0, again.stderr
    assert again.stdout == b"200\n"
    assert again.learned is None
    assert (out / "copy.txt").read_text() == "abc"
    assert upstream.paths() == ["/ok/items/1", "/ok/items/1"]

    # Twin: the options given, without what was learned.
    (out / "copy.txt").unlink()
    bare = Sandbox(
        quiet=True,
        add_host=["api.test:127.0.0.1"],
        http_ports=[upstream.port],
        http_allow=["GET api.test/*"],
    ).run(cmd, capture=True)
    assert bare.exit_code != 0
    assert not (out / "copy.txt").exists()
