"""sandlock: run untrusted programs in a Linux sandbox from Python.

A ctypes binding over libsandlock_ffi.so (the C ABI, include/sandlock.h),
shipped inside this package or named by $SANDLOCK_LIB.

    >>> from sandlock import Sandbox
    >>> with Sandbox(fs_read=["/srv/data"]) as sb:
    ...     sb.run(["cat", "/srv/data/x"]).exit_code
    0

Every policy option is a typed keyword of Sandbox (see _sandbox.pyi,
generated from the library's option table); ``__version__`` is the
library's version (``sandlock --version``).
"""

from ._sandbox import Result, Sandbox, Secret, option_names
from ._version import __version__
from .errors import CommandError, PolicyError, SandboxError, SandlockError

__all__ = [
    "__version__",
    "CommandError",
    "PolicyError",
    "Result",
    "Sandbox",
    "SandboxError",
    "SandlockError",
    "Secret",
    "option_names",
]
