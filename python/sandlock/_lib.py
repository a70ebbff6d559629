"""Loading libsandlock_ffi.so and declaring its C signatures (ctypes).

This module owns the only handle on the native library. It must never
hold policy logic: every option is parsed by the library.
"""

from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path
from typing import Optional

from .errors import SandboxError

LIB_NAME = "libsandlock_ffi.so"

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
    explicit = os.environ.get("SANDLOCK_LIB")
    if explicit:
        return explicit
    return str(Path(__file__).resolve().parent / LIB_NAME)


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
        "sandlock_error_free": ([ErrorP], None),
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


def take_error(err: "ctypes._Pointer[_Error]") -> tuple[int, str]:
    """The code and message of a sandlock_error, which is then freed."""
    if not err:
        return (-1, "unknown error")
    l = lib()
    code = l.sandlock_error_code(err)
    msg = l.sandlock_error_message(err)
    l.sandlock_error_free(err)
    return (code, msg.decode("utf-8", "replace") if msg else "")


def options() -> dict[str, int]:
    """Every policy option's name, with its kind (KIND_*)."""
    l = lib()
    return {
        l.sandlock_option_name(i).decode(): l.sandlock_option_kind(i)
        for i in range(l.sandlock_option_count())
    }
