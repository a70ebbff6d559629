"""The Sandbox class: keyword arguments to policy options, run, Result.

Every keyword maps to one library option by name (``http_allow`` to
``http-allow``), so the SDK can express exactly what ``sandlock run`` can.
This module must never parse or check an option value itself: the
library does, and its errors become PolicyError naming the keyword. Its
typed signature is in _sandbox.pyi, generated from the option table.
"""

from __future__ import annotations

import ctypes
import json
import os
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Type, Union

from . import _lib
from .errors import CommandError, PolicyError, SandboxError

StrPath = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

# Keywords whose option name is not the keyword with dashes (kept in step
# with ALIASES in sandlock-ffi/tests/python_stub.rs, which types them).
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
            f"{kind}:{_text(v)}"
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
        denials: when captured, sandlock's own lines about the run
            (``sandlock: denied ...``, warnings, a limit reached), in
            order, without newlines: what it prints on this process's
            stderr when not capturing. Empty with ``quiet=True``; at most
            10,000, the last then counting the rest (``audit`` records
            every event).
    """

    exit_code: int
    signal: Optional[int] = None
    timed_out: bool = False
    limit: Optional[str] = None
    stdout: bytes = b""
    stderr: bytes = b""
    cow: List[Dict[str, Any]] = field(default_factory=list)
    learned: Optional[str] = None
    denials: List[str] = field(default_factory=list)

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
    """One option value as text: bytes and paths decoded as the OS decodes
    file names (os.fsdecode), so bytes that are not UTF-8 keep their
    surrogate escapes (and are refused by _encode, naming the option)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (bytes, os.PathLike)):
        return os.fsdecode(v)
    return str(v)


def _encode(keyword: str, option: str, text: str) -> bytes:
    """``text`` as the C ABI takes it: UTF-8, with no NUL."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        raise PolicyError(
            f"{keyword}: {os.fsencode(text)!r} is not valid UTF-8, which sandlock's "
            "options need",
            field=keyword,
            option=option,
            value=text,
        ) from None
    if b"\0" in data:
        raise PolicyError(
            f"{keyword}: {text!r} holds a NUL character", field=keyword, option=option,
            value=text,
        )
    return data


def _values(keyword: str, kind: int, value: Any) -> list[str]:
    """The option values a keyword's Python value stands for; None (the
    default) for none: the option stays unset."""
    if value is None:
        return []
    if kind == _lib.KIND_SWITCH:
        if not isinstance(value, bool):
            raise PolicyError(
                f"{keyword}={value!r}: expected True or False", field=keyword
            )
        return [_text(value)]
    if kind == _lib.KIND_VALUE:
        if isinstance(value, (list, tuple, set, frozenset, dict)):
            raise PolicyError(
                f"{keyword}={value!r}: takes one value, not a collection", field=keyword
            )
        return [_text(value)]
    if isinstance(value, (str, bytes, os.PathLike, int, float)):
        return [_text(value)]
    if isinstance(value, Mapping):
        raise PolicyError(
            f"{keyword}: takes a value or a list of values, not a dict", field=keyword
        )
    try:
        items = list(value)
    except TypeError:
        raise PolicyError(
            f"{keyword}={value!r}: expected a value or a list of values", field=keyword
        ) from None
    return [_text(v) for v in items]


class Sandbox:
    """A policy ready to run commands confined by sandlock.

    Keywords are ``sandlock run``'s long options with ``_`` for ``-``
    (``fs_read``, ``net_allow``, ``http_allow``, ``http_timeout``,
    ``on_secret_misuse``, ``no_default_bundles``, ``keep_caps``, ``quiet``,
    ``audit``, ...; see :func:`option_names`, and the typed signature in
    the package's stub). Repeatable options take a value or a list;
    switches take a bool; single values a string, bytes, a path or a
    number; None leaves an option unset. Besides: ``http_ports``
    (``http-port``), ``env`` (a dict, or ``KEY=VALUE`` strings) and
    ``secrets`` (a dict of name to :class:`Secret`, or ``--secret``
    strings).

    Every value is checked at construction, alone and against the others.
    A sandbox holds a native policy: use it as a context manager (``with
    Sandbox(...) as sb:``) or call :meth:`close` to free it at once; it is
    otherwise freed when garbage collected. One sandbox may run commands
    from several threads at once.

    Raises:
        PolicyError: an unknown keyword, or a value or combination the
            library refuses; ``.field`` names the keyword, and the
            message the value.
    """

    def __init__(self, **options: Any) -> None:
        self._setup(None, options)

    def _setup(self, profile: Any, options: Mapping[str, Any]) -> None:
        self._builder = None
        self._guard = threading.Lock()
        self._busy = 0
        self._closed = False
        self._keywords = tuple(options)
        l = _lib.lib()
        # Kept so that __del__ still works while the interpreter shuts down.
        self._free = l.sandlock_builder_free
        known = _lib.options()
        builder = l.sandlock_builder_new()
        self._builder = builder
        # The keyword each option was set through, for errors found later.
        used: Dict[str, str] = {}
        if profile is not None:
            name = _text(profile)
            data = _encode("profile", "profile", name)
            err = _lib.ErrorP()
            if l.sandlock_builder_apply_profile(builder, data, ctypes.byref(err)) != _lib.OK:
                _, msg = _lib.take_error(err)
                raise PolicyError(msg, field="profile", value=name)
        for keyword, value in options.items():
            for option, text in self._expand(keyword, value, known):
                used.setdefault(option, keyword)
                data = _encode(keyword, option, text)
                err = _lib.ErrorP()
                code = l.sandlock_builder_set(
                    builder, option.encode(), data, ctypes.byref(err)
                )
                if code != _lib.OK:
                    _, msg = _lib.take_error(err)
                    raise PolicyError(
                        f"{keyword}: {msg}", field=keyword, option=option, value=text
                    )
        err = _lib.ErrorP()
        if l.sandlock_builder_check(builder, ctypes.byref(err)) != _lib.OK:
            raise _policy_error(_lib.take_failure(err), used)

    @staticmethod
    def _expand(keyword: str, value: Any, known: Mapping[str, int]) -> Iterable[tuple[str, str]]:
        """The (option, value) pairs keyword=value sets."""
        option = _ALIASES.get(keyword, keyword.replace("_", "-"))
        if option not in known:
            raise PolicyError(
                f"{keyword}: no such option (known: {', '.join(sorted(option_names()))})",
                field=keyword,
            )
        if option == "env" and isinstance(value, Mapping):
            return [("env", f"{_text(k)}={_text(v)}") for k, v in value.items()]
        if option == "secret" and isinstance(value, Mapping):
            pairs = []
            for name, secret in value.items():
                if not isinstance(secret, Secret):
                    raise PolicyError(
                        f"{keyword}[{name!r}]: expected a sandlock.Secret, got "
                        f"{type(secret).__name__}",
                        field=keyword,
                        option="secret",
                    )
                pairs.append(("secret", secret.spec(name)))
                if secret.headers is not None:
                    pairs.append(("secret-headers", f"{name}={','.join(secret.headers)}"))
            return pairs
        return [(option, v) for v in _values(keyword, known[option], value)]

    @classmethod
    def from_profile(cls, name: StrPath, **options: Any) -> "Sandbox":
        """A sandbox from the TOML profile ``name``, as ``sandlock run -p NAME``.

        The profile is looked up in ``$XDG_CONFIG_HOME/sandlock/profiles``
        (``~/.config/sandlock/profiles``), then among the shipped ones
        (``python-agent``, ``node-agent``, ``git-https``, ``build``); a
        name with a ``/`` in it, or ending in ``.toml``, is a profile
        file's path. Keyword options layer on top, as flags do on the
        command line: lists are added to, single values replace the
        profile's.

        Raises:
            PolicyError: no such profile, or an error in it (the message
                names the file, line, key and value; ``.field`` is
                ``"profile"``), or a bad keyword.
        """
        sandbox = cls.__new__(cls)
        sandbox._setup(name, options)
        return sandbox

    @property
    def closed(self) -> bool:
        """:meth:`close` was called (or the ``with`` block ended)."""
        return self._closed

    def close(self) -> None:
        """Frees the native policy. A second call does nothing; a run under
        way in another thread finishes first (the policy is freed when it
        ends). Running a closed sandbox raises SandboxError."""
        with self._guard:
            if self._closed:
                return
            self._closed = True
            builder, busy = self._builder, self._busy
            if busy == 0:
                self._builder = None
        if builder and busy == 0:
            self._free(builder)

    def __enter__(self) -> "Sandbox":
        if self._closed:
            raise SandboxError("cannot enter a closed Sandbox")
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<sandlock.Sandbox {state}: {', '.join(self._keywords) or 'defaults'}>"

    def _acquire(self) -> Any:
        """The builder, held for one run (close waits for it to end)."""
        with self._guard:
            if self._closed or not self._builder:
                raise SandboxError(
                    "this Sandbox is closed (by close() or the end of its with block); "
                    "make a new one to run more commands"
                )
            self._busy += 1
            return self._builder

    def _release(self) -> None:
        with self._guard:
            self._busy -= 1
            builder = self._builder if self._closed and self._busy == 0 else None
            if builder:
                self._builder = None
        if builder:
            self._free(builder)

    def run(
        self,
        argv: Sequence[StrPath],
        input: Optional[Union[bytes, str]] = None,
        capture: bool = True,
    ) -> Result:
        """Runs ``argv`` confined and waits for it.

        Args:
            argv: the command and its arguments; ``argv[0]`` is looked up
                in ``PATH``.
            input: bytes (or text, encoded as UTF-8) for the workload's
                stdin, which then ends; None inherits this process's stdin.
            capture: capture stdout and stderr into the Result, and
                sandlock's own lines into ``Result.denials`` (otherwise the
                workload writes to this process's own streams, and sandlock
                its lines to this process's stderr).

        Returns:
            How it ended; a non-zero exit, a signal or a timeout is not an
            exception.

        Raises:
            CommandError: the command was not found or is not executable.
            SandboxError: the sandbox could not be set up, or is closed.
        """
        if isinstance(argv, (str, bytes)):
            raise TypeError("argv must be a sequence of arguments, not a single string")
        l = _lib.lib()
        args = [a if isinstance(a, bytes) else os.fsencode(a) for a in argv]
        c_argv = (ctypes.c_char_p * max(len(args), 1))(*args)
        data = input.encode() if isinstance(input, str) else input
        out = _lib.ResultP()
        err = _lib.ErrorP()
        builder = self._acquire()
        try:
            code = l.sandlock_run(
                builder,
                c_argv,
                len(args),
                data,
                0 if data is None else len(data),
                1 if capture else 0,
                ctypes.byref(out),
                ctypes.byref(err),
            )
        finally:
            self._release()
        if code != _lib.OK:
            failure = _lib.take_failure(err)
            if failure.code == _lib.ERR_COMMAND:
                raise CommandError(failure.message, failure.code)
            if failure.code in (_lib.ERR_POLICY, _lib.ERR_INVALID_VALUE):
                raise _policy_error(failure, {})
            raise SandboxError(failure.message, failure.code)
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
                denials=[
                    l.sandlock_result_denial(out, i).decode("utf-8", "replace")
                    for i in range(l.sandlock_result_denial_count(out))
                ],
            )
        finally:
            l.sandlock_result_free(out)

    def __del__(self) -> None:
        builder = getattr(self, "_builder", None)
        if builder:
            self._builder = None
            self._free(builder)


def _policy_error(failure: "_lib.Failure", used: Mapping[str, str]) -> PolicyError:
    """A PolicyError from the library's error: ``.field`` is the keyword
    the option it names was set through (or the option's own keyword, when
    a profile set it), ``.option`` and ``.value`` what the library says."""
    option = failure.option
    if option is None:
        return PolicyError(failure.message, value=failure.value)
    keyword = used.get(option, option.replace("-", "_"))
    return PolicyError(
        f"{keyword}: {failure.message}", field=keyword, option=option, value=failure.value
    )


def _stream(fn: Any, result: Any) -> bytes:
    data = ctypes.POINTER(ctypes.c_uint8)()
    size = ctypes.c_size_t()
    if fn(result, ctypes.byref(data), ctypes.byref(size)) != _lib.OK:
        raise SandboxError("cannot read a captured stream")
    return ctypes.string_at(data, size.value) if size.value else b""


def option_names() -> list[str]:
    """Every policy option as a Sandbox keyword (snake_case)."""
    return [name.replace("-", "_") for name in _lib.options()]
