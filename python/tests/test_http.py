"""The HTTP allowlist and secrets, against a loopback server the test
starts: an allowed request reaches it, a denied one never does, and a
secret's real value reaches it while the workload sees a placeholder."""

from __future__ import annotations

import pytest

from sandlock import Sandbox, Secret

from conftest import Upstream

SECRET = "s3cr3t-value-0123456789abcdef"


def box(up: Upstream, **extra: object) -> Sandbox:
    return Sandbox(
        quiet=True,
        add_host=["api.test:127.0.0.1"],
        http_ports=[up.port],
        **extra,
    )


def curl(up: Upstream, path: str, *args: str) -> str:
    """A shell snippet: curl api.test's path, print the body and the code."""
    extra = " ".join(args)
    return (
        f"curl -sS {extra} -w ' %{{http_code}}\\n' http://api.test:{up.port}{path}"
    )


def test_allowlist_passes_allowed_and_refuses_the_rest(upstream: Upstream) -> None:
    sb = box(upstream, http_allow=["GET api.test/ok*"])
    r = sb.run(["sh", "-c", curl(upstream, "/ok/1") + "; " + curl(upstream, "/admin")])
    lines = r.stdout.decode().splitlines()
    assert r.exit_code == 0, r.stderr
    assert lines[0] == "ok body 200"
    # sandlock's own 403 names the rule (its body ends in a newline).
    assert lines[1:] == [
        f"sandlock: 403 GET http://api.test:{upstream.port}/admin: no --http-allow rule matches",
        " 403",
    ]
    # The denied request never left the sandbox; the allowed one did.
    assert upstream.paths() == ["/ok/1"]


def test_denied_path_is_reachable_without_the_rule(upstream: Upstream) -> None:
    # The twin of the test above: the same request with a rule that
    # allows it reaches the server, so the 403 was the rule's doing.
    sb = box(upstream, http_allow=["GET api.test/*"])
    r = sb.run(["sh", "-c", curl(upstream, "/admin")])
    assert r.stdout == b"other body 200\n"
    assert upstream.paths() == ["/admin"]


def test_secret_round_trip(upstream: Upstream, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDLOCK_PY_SECRET", SECRET)
    sb = box(
        upstream,
        secrets={"TOKEN": Secret(env="SANDLOCK_PY_SECRET", hosts=["api.test"], plaintext=True)},
    )
    script = (
        'printf "%s\\n%s\\n" "$TOKEN" "${SANDLOCK_PY_SECRET-unset}"; '
        + curl(upstream, "/echo", '-H "Authorization: Bearer $TOKEN"')
    )
    r = sb.run(["sh", "-c", script])
    assert r.exit_code == 0, r.stderr
    placeholder, source, echoed = r.stdout.decode().splitlines()
    # The workload holds a placeholder of the value's length, never the
    # value, and not the variable it was read from.
    assert placeholder != SECRET and len(placeholder) == len(SECRET)
    assert source == "unset"
    # The server got the real value on the wire...
    assert upstream.requests == [("/echo", f"Bearer {SECRET}")]
    # ...and its echo came back scrubbed to the placeholder.
    assert echoed == f"Bearer {placeholder} 200"
    assert SECRET.encode() not in r.stdout + r.stderr


def test_secret_not_sent_to_other_hosts(upstream: Upstream, monkeypatch: pytest.MonkeyPatch) -> None:
    # The same request to a host the secret is not bound to carries the
    # placeholder: the value goes only where it is allowed.
    monkeypatch.setenv("SANDLOCK_PY_SECRET", SECRET)
    sb = Sandbox(
        quiet=True,
        add_host=["api.test:127.0.0.1", "other.test:127.0.0.1"],
        http_ports=[upstream.port],
        http_allow=["GET other.test/*"],
        secrets={"TOKEN": Secret(env="SANDLOCK_PY_SECRET", hosts=["api.test"], plaintext=True)},
    )
    script = (
        f'curl -sS -o /dev/null -H "Authorization: Bearer $TOKEN" '
        f"http://other.test:{upstream.port}/echo"
    )
    r = sb.run(["sh", "-c", script])
    assert r.exit_code == 0, r.stderr
    [(path, auth)] = upstream.requests
    assert path == "/echo" and auth.startswith("Bearer ") and SECRET not in auth
