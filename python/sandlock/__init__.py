"""sandlock: run untrusted programs in a Linux sandbox from Python.

A ctypes binding over libsandlock_ffi.so (the C ABI, include/sandlock.h),
shipped inside this package or named by $SANDLOCK_LIB.

    >>> from sandlock import Sandbox
    >>> Sandbox(fs_read=["/srv/data"]).run(["cat", "/srv/data/x"]).exit_code
    0
"""

from ._sandbox import Result, Sandbox, Secret, option_names
from .errors import CommandError, PolicyError, SandboxError, SandlockError

__all__ = [
    "CommandError",
    "PolicyError",
    "Result",
    "Sandbox",
    "SandboxError",
    "SandlockError",
    "Secret",
    "option_names",
]
