"""The exceptions the SDK raises. Messages come from the library and
name the option and the value; they never hold a secret's value."""

from __future__ import annotations

from typing import Optional


class SandlockError(Exception):
    """Base class of every sandlock error."""


class PolicyError(SandlockError, ValueError):
    """A policy option or value was refused, or options do not go together.

    Attributes:
        field: the keyword argument (e.g. ``"http_allow"``), or None for a
            check that spans options.
        option: the option's name (e.g. ``"http-allow"``), or None.
        value: the refused value as passed to the library, or None.
    """

    def __init__(
        self,
        message: str,
        field: Optional[str] = None,
        option: Optional[str] = None,
        value: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.option = option
        self.value = value


class SandboxError(SandlockError):
    """Running the sandbox failed: setup, a missing command, or the library.

    Attributes:
        code: the library's sandlock_code (see include/sandlock.h), or None.
    """

    def __init__(self, message: str, code: Optional[int] = None) -> None:
        super().__init__(message)
        self.code = code


class CommandError(SandboxError):
    """The command could not be found or executed."""
