"""Policy validation: every keyword reaches its library option, and
refused values come back as PolicyError naming the keyword and value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import sandlock

from sandlock import PolicyError, Sandbox, Secret, option_names
from sandlock import _lib
from sandlock._sandbox import Sandbox as _S


def test_every_library_option_is_a_keyword() -> None:
    known = _lib.options()
    names = option_names()
    assert len(names) == len(known) == _lib.lib().sandlock_option_count()
    for keyword in names:
        value = True if known[keyword.replace("_", "-")] == _lib.KIND_SWITCH else "x"
        pairs = list(_S._expand(keyword, value, known))
        assert pairs == [(keyword.replace("_", "-"), "true" if value is True else "x")]
    for keyword in ("add_host", "dns_server", "http_timeout", "secret_headers",
                    "on_secret_misuse", "no_default_bundles", "keep_caps", "quiet", "audit"):
        assert keyword in names


def test_unknown_keyword_is_named() -> None:
    with pytest.raises(PolicyError) as e:
        Sandbox(net_alow=["x"])
    assert e.value.field == "net_alow"
    assert str(e.value).startswith("net_alow: no such option")


def test_bad_rule_names_keyword_option_and_value() -> None:
    with pytest.raises(PolicyError) as e:
        Sandbox(http_allow=["GET api.test/ok", "FETCH"])
    assert (e.value.field, e.value.option, e.value.value) == ("http_allow", "http-allow", "FETCH")
    assert str(e.value).startswith("http_allow: invalid value 'FETCH' for '--http-allow'")


def test_bad_port_names_the_value() -> None:
    with pytest.raises(PolicyError) as e:
        Sandbox(net_allow="api.test:99999")
    assert "'api.test:99999'" in str(e.value) and "--net-allow" in str(e.value)


def test_switch_needs_a_bool() -> None:
    with pytest.raises(PolicyError) as e:
        Sandbox(quiet="yes")
    assert e.value.field == "quiet"
    assert str(e.value) == "quiet='yes': expected True or False"


def test_options_that_need_each_other() -> None:
    with pytest.raises(PolicyError) as e:
        Sandbox(http_ca="/ca.pem")
    assert str(e.value) == "http_ca: --http-ca needs --http-key"
    assert (e.value.field, e.value.option) == ("http_ca", "http-ca")


def test_secret_needs_exactly_one_source() -> None:
    with pytest.raises(PolicyError) as e:
        Sandbox(secrets={"T": Secret(hosts=["a.test"], env="A", file="/f")})
    assert str(e.value) == "secrets['T']: give exactly one of env=, file= or fd= (got 2)"
    with pytest.raises(PolicyError) as e:
        Sandbox(secrets={"T": "T@a.test"})
    assert "expected a sandlock.Secret" in str(e.value)


def test_secret_spec_strings() -> None:
    s = Secret(env="GH_TOKEN", hosts=["github.com", "*.github.com"], plaintext=True)
    assert s.spec("GH") == "GH=env:GH_TOKEN@github.com,*.github.com;plaintext"
    assert Secret(file="/run/tok", hosts="a.test").spec("T") == "T=file:/run/tok@a.test"


def test_secret_headers_and_their_errors() -> None:
    pairs = list(
        _S._expand("secrets", {"T": Secret(env="A", hosts=["a.test"], headers=["authorization"])},
                   _lib.options())
    )
    assert pairs == [("secret", "T=env:A@a.test"), ("secret-headers", "T=authorization")]
    Sandbox(secrets={"T": Secret(env="A", hosts=["a.test"], headers=["authorization"])})
    with pytest.raises(PolicyError) as e:
        Sandbox(secret_headers=["T=authorization"])
    assert "no --secret named T" in str(e.value)


def test_single_value_refuses_a_list() -> None:
    with pytest.raises(PolicyError) as e:
        Sandbox(timeout=[1, 2])
    assert str(e.value) == "timeout=[1, 2]: takes one value, not a collection"


def test_valid_policy_builds() -> None:
    Sandbox(
        fs_read=["/srv"],
        fs_write="/tmp",
        net_allow=["127.0.0.1:8080"],
        add_host="api.test:127.0.0.1",
        http_allow=["GET api.test/ok*"],
        http_deny=["* api.test/admin"],
        http_ports=[8080, "9000-9001"],
        http_timeout=5,
        env={"A": "1"},
        clean_env=True,
        cwd="/",
        timeout=2.5,
        quiet=True,
    )


def test_from_profile_applies_the_profile_and_keywords_layer_on_top() -> None:
    # `build`: a clean environment (PATH, HOME, TERM, LANG only), no network.
    os.environ["SANDLOCK_PY_PROBE"] = "leaked"
    try:
        script = "echo ${LAYERED:-unset} ${SANDLOCK_PY_PROBE:-clean}"
        r = Sandbox.from_profile("build", env={"LAYERED": "yes"}).run(["/bin/sh", "-c", script])
        assert (r.exit_code, r.stdout) == (0, b"yes clean\n")
        # Twin: the same keywords without the profile inherit the variable.
        r = Sandbox(env={"LAYERED": "yes"}).run(["/bin/sh", "-c", script])
        assert (r.exit_code, r.stdout) == (0, b"yes leaked\n")
    finally:
        del os.environ["SANDLOCK_PY_PROBE"]


def test_from_profile_errors_name_the_profile() -> None:
    with pytest.raises(PolicyError, match="no-such-profile") as e:
        Sandbox.from_profile("no-such-profile")
    assert e.value.field == "profile"
    with pytest.raises(PolicyError, match="timeout"):
        Sandbox.from_profile("build", timeout="soon")


def _with_lib(lib: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import sandlock\n"
        "try:\n"
        "    sandlock.Sandbox(quiet=True)\n"
        "    print('loaded')\n"
        "except sandlock.SandboxError as e:\n"
        "    print(e)\n"
    )
    env = dict(os.environ, SANDLOCK_LIB=lib)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def test_sandlock_lib_names_the_library() -> None:
    shipped = _lib._path()
    assert Path(shipped).parent == Path(sandlock.__file__).parent
    assert _with_lib(shipped).stdout == "loaded\n"
    out = _with_lib("/nonexistent/libsandlock_ffi.so").stdout
    assert out.startswith("cannot load the sandlock library /nonexistent/libsandlock_ffi.so: ")
    assert "set SANDLOCK_LIB" in out
