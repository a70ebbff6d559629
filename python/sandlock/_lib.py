"""Loading libsandlock_ffi.so and declaring its C signatures (ctypes).

This module owns the only handle on the native library. It must never
hold policy logic: every option is parsed by the library.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import os
import threading
from pathlib import Path
from typing import Optional

from .errors import SandboxError

LIB_NAME = "libsandlock_ffi"

# sandlock_code values (include/sandlock.h).
OK = 0
ERR_NULL_ARGUMENT = 1
ERR_INVALID_ARGUMENT = 2
ERR_INVALID_OPTION = 3
ERR_INVALID_VALUE = 4
ERR_POLICY = 5
ERR_COMMAND = 6
ERR_SETUP = 7
ERR_PANIC = 8

# sandlock_kind values.
KIND_LIST = 0
KIND_VALUE = 1
KIND_SWITCH = 2


class _Builder(ctypes.Structure):
    """Opaque sandlock_builder."""


class _Error(ctypes.Structure):
    """Opaque sandlock_error."""


class _Result(ctypes.Structure):
    """Opaque sandlock_result."""


BuilderP = ctypes.POINTER(_Builder)
ErrorP = ctypes.POINTER(_Error)
ResultP = ctypes.POINTER(_Result)

_lock = threading.Lock()
_lib: Optional[ctypes.CDLL] = None


def _path() -> str:
    """$SANDLOCK_LIB, or the library shipped in the package: the build
    (setuptools-rust) names it like an extension module,
    libsandlock_ffi.cpython-311-x86_64-linux-gnu.so, or plain .so."""
    explicit = os.environ.get("SANDLOCK_LIB")
    if explicit:
        return explicit
    here = Path(__file__).resolve().parent
    names = [LIB_NAME + s for s in importlib.machinery.EXTENSION_SUFFIXES]
    for name in names:
        if (here / name).exists():
            return str(here / name)
    # Built for another interpreter's suffix: the library is the same C ABI.
    for other in sorted(here.glob(LIB_NAME + "*.so")):
        return str(other)
    return str(here / names[0])


def _declare(lib: ctypes.CDLL) -> None:
    c = ctypes
    sigs = {
        "sandlock_builder_new": ([], BuilderP),
        "sandlock_builder_set": ([BuilderP, c.c_char_p, c.c_char_p, c.POINTER(ErrorP)], c.c_int),
        "sandlock_builder_check": ([BuilderP, c.POINTER(ErrorP)], c.c_int),
        "sandlock_builder_apply_profile": ([BuilderP, c.c_char_p, c.POINTER(ErrorP)], c.c_int),
        "sandlock_builder_free": ([BuilderP], None),
        "sandlock_option_count": ([], c.c_size_t),
        "sandlock_option_name": ([c.c_size_t], c.c_char_p),
        "sandlock_option_kind": ([c.c_size_t], c.c_int),
        "sandlock_error_code": ([ErrorP], c.c_int),
        "sandlock_error_message": ([ErrorP], c.c_char_p),
        "sandlock_error_option": ([ErrorP], c.c_char_p),
        "sandlock_error_value": ([ErrorP], c.c_char_p),
        "sandlock_error_free": ([ErrorP], None),
        "sandlock_version": ([], c.c_char_p),
        "sandlock_run": (
            [
                BuilderP,
                c.POINTER(c.c_char_p),
                c.c_size_t,
                c.c_char_p,
                c.c_size_t,
                c.c_int,
                c.POINTER(ResultP),
                c.POINTER(ErrorP),
            ],
            c.c_int,
        ),
        "sandlock_result_exit_code": ([ResultP], c.c_int),
        "sandlock_result_signal": ([ResultP], c.c_int),
        "sandlock_result_timed_out": ([ResultP], c.c_int),
        "sandlock_result_limit": ([ResultP], c.c_char_p),
        "sandlock_result_cow": ([ResultP], c.c_char_p),
        "sandlock_result_learned": ([ResultP], c.c_char_p),
        "sandlock_result_status": ([ResultP], c.c_int),
        "sandlock_result_stdout": (
            [ResultP, c.POINTER(c.POINTER(c.c_uint8)), c.POINTER(c.c_size_t)],
            c.c_int,
        ),
        "sandlock_result_stderr": (
            [ResultP, c.POINTER(c.POINTER(c.c_uint8)), c.POINTER(c.c_size_t)],
            c.c_int,
        ),
        "sandlock_result_denial_count": ([ResultP], c.c_size_t),
        "sandlock_result_denial": ([ResultP, c.c_size_t], c.c_char_p),
        "sandlock_result_free": ([ResultP], None),
    }
    for name, (args, ret) in sigs.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = ret


def lib() -> ctypes.CDLL:
    """The loaded library (loaded on first use)."""
    global _lib
    with _lock:
        if _lib is None:
            path = _path()
            try:
                loaded = ctypes.CDLL(path)
            except OSError as e:
                raise SandboxError(
                    f"cannot load the sandlock library {path}: {e} (reinstall the "
                    "package, or set SANDLOCK_LIB to a libsandlock_ffi.so)"
                ) from None
            _declare(loaded)
            _lib = loaded
        return _lib


class Failure:
    """What a sandlock_error said: its code, message, and the option and
    value it concerns (None when it concerns no one option)."""

    __slots__ = ("code", "message", "option", "value")

    def __init__(
        self, code: int, message: str, option: Optional[str], value: Optional[str]
    ) -> None:
        self.code = code
        self.message = message
        self.option = option
        self.value = value


def _text(raw: Optional[bytes]) -> Optional[str]:
    return None if raw is None else raw.decode("utf-8", "replace")


def take_failure(err: "ctypes._Pointer[_Error]") -> Failure:
    """What a sandlock_error says; the error is then freed."""
    if not err:
        return Failure(-1, "unknown error", None, None)
    l = lib()
    try:
        return Failure(
            l.sandlock_error_code(err),
            _text(l.sandlock_error_message(err)) or "",
            _text(l.sandlock_error_option(err)),
            _text(l.sandlock_error_value(err)),
        )
    finally:
        l.sandlock_error_free(err)


def take_error(err: "ctypes._Pointer[_Error]") -> tuple[int, str]:
    """The code and message of a sandlock_error, which is then freed."""
    f = take_failure(err)
    return (f.code, f.message)


def version() -> str:
    """The loaded library's version (sandlock_version())."""
    raw: bytes = lib().sandlock_version()
    return raw.decode()


def options() -> dict[str, int]:
    """Every policy option's name, with its kind (KIND_*)."""
    l = lib()
    return {
        l.sandlock_option_name(i).decode(): l.sandlock_option_kind(i)
        for i in range(l.sandlock_option_count())
    }
