"""The Sandbox class: keyword arguments to policy options, run, Result.

Every keyword maps to one library option by name (``http_allow`` to
``http-allow``), so the SDK can express exactly what ``sandlock run`` can.
This module must never parse or check an option value itself: the
library does, and its errors become PolicyError naming the keyword.
"""

from __future__ import annotations

import ctypes
import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from . import _lib
from .errors import CommandError, PolicyError, SandboxError

StrPath = Union[str, "os.PathLike[str]"]

# Keywords whose option name is not the keyword with dashes.
_ALIASES = {"http_ports": "http-port", "secrets": "secret"}


@dataclass(frozen=True)
class Secret:
    """A secret the workload holds only as a placeholder.

    The workload's ``$NAME`` (the key in ``Sandbox(secrets={NAME: ...})``)
    is a random placeholder; the supervisor swaps in the real value on the
    wire to ``hosts``. Give exactly one source.

    Attributes:
        env: read the value from this variable of the calling process.
        file: read it from this file.
        fd: read it from this file descriptor.
        hosts: names (or ``*.suffix``) the value may be sent to.
        plaintext: also substitute on plain HTTP to those hosts.
        headers: substitute only in these request headers.
    """

    hosts: Sequence[str]
    env: Optional[str] = None
    file: Optional[StrPath] = None
    fd: Optional[int] = None
    plaintext: bool = False
    headers: Optional[Sequence[str]] = None

    def spec(self, name: str) -> str:
        """The ``--secret`` value for this secret under ``name``."""
        sources = [
            f"{kind}:{os.fspath(v) if kind == 'file' else v}"
            for kind, v in (("env", self.env), ("file", self.file), ("fd", self.fd))
            if v is not None
        ]
        if len(sources) != 1:
            raise PolicyError(
                f"secrets[{name!r}]: give exactly one of env=, file= or fd= "
                f"(got {len(sources)})",
                field="secrets",
                option="secret",
            )
        if isinstance(self.hosts, str):
            hosts = self.hosts
        else:
            hosts = ",".join(self.hosts)
        return f"{name}={sources[0]}@{hosts}" + (";plaintext" if self.plaintext else "")


@dataclass(frozen=True)
class Result:
    """How a run ended.

    Attributes:
        exit_code: the status ``sandlock run`` would exit with: the
            workload's exit code, 128 plus the signal that killed it, or
            124 when the timeout expired (125 when the workload succeeded but
            its ``cow`` changes did not all reach their directories).
        signal: the signal that killed the workload, or None.
        timed_out: the policy's timeout expired and the tree was killed.
        limit: the resource limit that ended the run (``"memory"``,
            ``"file-size"``: the option's name), or None.
        stdout: what the workload wrote to stdout (when captured).
        stderr: what it wrote to stderr (when captured); sandlock's own
            denial lines are never in here.
        cow: one dict per ``cow`` directory: ``dir``, ``layer``, ``added``,
            ``changed``, ``deleted``, ``conflicts``, ``skipped`` (paths
            relative to ``dir``), ``action`` and ``result`` (``applied``,
            ``discarded``, ``kept`` or ``incomplete``), ``error``.
        learned: with ``learn=PATH``, the profile the run was found to
            need (the text written to PATH); None otherwise.
    """

    exit_code: int
    signal: Optional[int] = None
    timed_out: bool = False
    limit: Optional[str] = None
    stdout: bytes = b""
    stderr: bytes = b""
    cow: List[Dict[str, Any]] = field(default_factory=list)
    learned: Optional[str] = None

    @property
    def ok(self) -> bool:
        """The workload exited with status 0."""
        return self.exit_code == 0 and self.signal is None and not self.timed_out


def _learned(text: Optional[bytes]) -> Optional[str]:
    """The learned profile's text (NULL: not learning)."""
    return None if text is None else text.decode()


def _limit(name: Optional[bytes]) -> Optional[str]:
    """The limit's name from the C ABI's static string (NULL: none)."""
    return None if name is None else name.decode()


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    return str(v)


def _values(keyword: str, kind: int, value: Any) -> list[str]:
    """The option values a keyword's Python value stands for."""
    if kind == _lib.KIND_SWITCH:
        if not isinstance(value, bool):
            raise PolicyError(
                f"{keyword}={value!r}: expected True or False", field=keyword
            )
        return [_text(value)]
    if kind == _lib.KIND_VALUE:
        if isinstance(value, (list, tuple, set, dict)):
            raise PolicyError(
                f"{keyword}={value!r}: takes one value, not a collection", field=keyword
            )
        return [] if value is None else [_text(value)]
    if value is None:
        return []
    if isinstance(value, (str, bytes, os.PathLike, int, float)):
        return [_text(value)]
    return [_text(v) for v in value]


class Sandbox:
    """A policy ready to run commands confined by sandlock.

    Keywords are ``sandlock run``'s long options with ``_`` for ``-``
    (``fs_read``, ``net_allow``, ``http_allow``, ``http_timeout``,
    ``on_secret_misuse``, ``no_default_bundles``, ``keep_caps``, ``quiet``,
    ``audit``, ...; see :func:`option_names`). Repeatable options take a
    string or a list; switches take a bool; single values a string or a
    number. Besides: ``http_ports`` (``http-port``), ``env`` (a dict, or
    ``KEY=VALUE`` strings) and ``secrets`` (a dict of name to
    :class:`Secret`, or ``--secret`` strings).

    Raises:
        PolicyError: an unknown keyword, or a value or combination the
            library refuses; the message names the keyword and the value.
    """

    def __init__(self, **options: Any) -> None:
        self._setup(None, options)

    def _setup(self, profile: Optional[str], options: Mapping[str, Any]) -> None:
        self._builder = None
        l = _lib.lib()
        # Kept so that __del__ still works while the interpreter shuts down.
        self._free = l.sandlock_builder_free
        known = _lib.options()
        builder = l.sandlock_builder_new()
        self._builder = builder
        if profile is not None:
            err = _lib.ErrorP()
            if l.sandlock_builder_apply_profile(builder, profile.encode(), ctypes.byref(err)) != _lib.OK:
                _, msg = _lib.take_error(err)
                raise PolicyError(msg, field="profile", value=profile)
        for keyword, value in options.items():
            for option, text in self._expand(keyword, value, known):
                err = _lib.ErrorP()
                code = l.sandlock_builder_set(
                    builder, option.encode(), text.encode(), ctypes.byref(err)
                )
                if code != _lib.OK:
                    _, msg = _lib.take_error(err)
                    raise PolicyError(
                        f"{keyword}: {msg}", field=keyword, option=option, value=text
                    )
        err = _lib.ErrorP()
        if l.sandlock_builder_check(builder, ctypes.byref(err)) != _lib.OK:
            _, msg = _lib.take_error(err)
            raise PolicyError(msg)

    @staticmethod
    def _expand(keyword: str, value: Any, known: Mapping[str, int]) -> Iterable[tuple[str, str]]:
        """The (option, value) pairs keyword=value sets."""
        option = _ALIASES.get(keyword, keyword.replace("_", "-"))
        if option not in known:
            raise PolicyError(
                f"{keyword}: no such option (known: {', '.join(sorted(option_names()))})",
                field=keyword,
            )
        if keyword == "env" and isinstance(value, Mapping):
            return [("env", f"{k}={v}") for k, v in value.items()]
        if keyword == "secrets" and isinstance(value, Mapping):
            pairs = []
            for name, secret in value.items():
                if not isinstance(secret, Secret):
                    raise PolicyError(
                        f"secrets[{name!r}]: expected a sandlock.Secret, got "
                        f"{type(secret).__name__}",
                        field="secrets",
                        option="secret",
                    )
                pairs.append(("secret", secret.spec(name)))
                if secret.headers is not None:
                    pairs.append(("secret-headers", f"{name}={','.join(secret.headers)}"))
            return pairs
        return [(option, v) for v in _values(keyword, known[option], value)]

    @classmethod
    def from_profile(cls, name: str, **options: Any) -> "Sandbox":
        """A sandbox from the TOML profile ``name``, as ``sandlock run -p NAME``.

        The profile is looked up in ``$XDG_CONFIG_HOME/sandlock/profiles``
        (``~/.config/sandlock/profiles``), then among the shipped ones
        (``python-agent``, ``node-agent``, ``git-https``, ``build``).
        Keyword options layer on top, as flags do on the command line:
        lists are added to, single values replace the profile's.

        Raises:
            PolicyError: no such profile, or an error in it (the message
                names the file, line, key and value), or a bad keyword.
        """
        sandbox = cls.__new__(cls)
        sandbox._setup(name, options)
        return sandbox

    def run(
        self,
        argv: Sequence[Union[str, bytes, "os.PathLike[str]"]],
        input: Optional[Union[bytes, str]] = None,
        capture: bool = True,
    ) -> Result:
        """Runs ``argv`` confined and waits for it.

        Args:
            argv: the command and its arguments; ``argv[0]`` is looked up
                in ``PATH``.
            input: bytes (or text, encoded as UTF-8) for the workload's
                stdin, which then ends; None inherits this process's stdin.
            capture: capture stdout and stderr into the Result (otherwise
                the workload writes to this process's own).

        Returns:
            How it ended; a non-zero exit, a signal or a timeout is not an
            exception.

        Raises:
            CommandError: the command was not found or is not executable.
            SandboxError: the sandbox could not be set up.
        """
        if isinstance(argv, (str, bytes)):
            raise TypeError("argv must be a sequence of arguments, not a single string")
        l = _lib.lib()
        args = [a if isinstance(a, bytes) else os.fsencode(a) for a in argv]
        c_argv = (ctypes.c_char_p * max(len(args), 1))(*args)
        data = input.encode() if isinstance(input, str) else input
        out = _lib.ResultP()
        err = _lib.ErrorP()
        code = l.sandlock_run(
            self._builder,
            c_argv,
            len(args),
            data,
            0 if data is None else len(data),
            1 if capture else 0,
            ctypes.byref(out),
            ctypes.byref(err),
        )
        if code != _lib.OK:
            code, msg = _lib.take_error(err)
            if code == _lib.ERR_COMMAND:
                raise CommandError(msg, code)
            if code in (_lib.ERR_POLICY, _lib.ERR_INVALID_VALUE):
                raise PolicyError(msg)
            raise SandboxError(msg, code)
        try:
            signal = l.sandlock_result_signal(out)
            return Result(
                exit_code=l.sandlock_result_status(out),
                signal=signal or None,
                timed_out=bool(l.sandlock_result_timed_out(out)),
                limit=_limit(l.sandlock_result_limit(out)),
                stdout=_stream(l.sandlock_result_stdout, out),
                stderr=_stream(l.sandlock_result_stderr, out),
                cow=json.loads(l.sandlock_result_cow(out) or b"[]"),
                learned=_learned(l.sandlock_result_learned(out)),
            )
        finally:
            l.sandlock_result_free(out)

    def __del__(self) -> None:
        builder = getattr(self, "_builder", None)
        if builder:
            self._builder = None
            self._free(builder)


def _stream(fn: Any, result: Any) -> bytes:
    data = ctypes.POINTER(ctypes.c_uint8)()
    size = ctypes.c_size_t()
    if fn(result, ctypes.byref(data), ctypes.byref(size)) != _lib.OK:
        raise SandboxError("cannot read a captured stream")
    return ctypes.string_at(data, size.value) if size.value else b""


def option_names() -> list[str]:
    """Every policy option as a Sandbox keyword (snake_case)."""
    return [name.replace("-", "_") for name in _lib.options()]
