"""The one exception the engine raises: a kernel errno.

Every store handler and engine entry point reports failure the way the kernel does, as a
negative errno; here that is ``KernelError(errno.EINVAL)``. The FUSE adapter turns it into
the errno the caller's ``write(2)`` sees. Anything else escaping the engine is a bug.
"""

from __future__ import annotations

import errno as _errno
import os

EHWPOISON = getattr(_errno, "EHWPOISON", 133)


class KernelError(OSError):
    """A failure with the errno the kernel would return (``-errno`` in kernel terms)."""

    #: Always set: ``__init__`` takes it (``OSError.errno`` is Optional only for other uses).
    errno: int

    def __init__(self, err: int, msg: str | None = None) -> None:
        super().__init__(err, msg or os.strerror(err))


class ConfigError(ValueError):
    """A topology that cannot be booted; the message names the offending key."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"{key}: {why}")
        self.key = key
        self.why = why


class HarnessError(Exception):
    """A harness operation was refused; the message says why, ``errno`` is the closest errno
    (what a debugfs write of the same request fails with)."""

    def __init__(self, message: str, errno: int = _errno.EINVAL) -> None:
        super().__init__(message)
        self.errno = errno


class CliError(Exception):
    """A failure the user can act on: printed as one line, exit status 1."""
