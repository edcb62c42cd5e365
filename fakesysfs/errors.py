"""Every exception fakesysfs raises on purpose, in one module every layer may import.

Which one means what, from the kernel model up:

``KernelError`` (an ``OSError``)
    The kernel's answer: a store or an engine entry point failed with this errno (``-errno``
    in kernel terms). The FUSE adapter turns it into the errno ``write(2)`` sees; tests and
    the Python API catch it. Anything else escaping the engine is a bug.
``EventsLost`` (a ``LookupError``)
    A wait on the uevent log asked about events its ring no longer keeps.
``ConfigError`` (a ``ValueError``)
    A topology that cannot be booted; ``key`` names the offending key, ``why`` says why.
``HarnessError``
    A harness operation (hot-plug, faults, pins) was refused; ``errno`` is what a debugfs
    write of the same request fails with.
``TraceGap`` (a ``LookupError``)
    A wait on the store trace asked about stores its ring no longer keeps (``errno`` ENOBUFS).
``StateError``
    A state file (journal, snapshot) that cannot be used; the message names file and problem.
``UnsafeFileError`` (an ``OSError``)
    A file or directory fakesysfs refuses to read or write (owner, mode, a link on the way).
``MountError`` (a ``RuntimeError``)
    libfuse could not mount or serve the tree.
``MountpointError``
    A place the fake may not be mounted (the host's /sys, ...), or a mount that did not happen.
``NamespaceError`` (a ``RuntimeError``)
    ``fakesysfs run`` could not set up its private namespace or one of its mounts.
``NotPrivateNetns`` (a ``RuntimeError``)
    Refusing to broadcast uevents into the host's network namespace.
``ControlError``
    A request over a mount's control socket failed or the channel broke; ``errno`` is the
    errno name the daemon answered with, ``reply`` the whole answer.
``RulesError``
    udev rules that cannot be loaded or applied at all.
``CliError``
    A failure the user can act on: the CLI prints it as one line and exits with status 1.

The modules that raise them re-export them (``fakesysfs.journal.StateError`` is this class),
so either import works. Waits that run out of time raise the builtin ``TimeoutError``.
"""

from __future__ import annotations

import errno as _errno
import os
from typing import Any

EHWPOISON = getattr(_errno, "EHWPOISON", 133)


class KernelError(OSError):
    """A failure with the errno the kernel would return (``-errno`` in kernel terms)."""

    #: Always set: ``__init__`` takes it (``OSError.errno`` is Optional only for other uses).
    errno: int

    def __init__(self, err: int, msg: str | None = None) -> None:
        super().__init__(err, msg or os.strerror(err))


class EventsLost(LookupError):
    """A wait asked about events the ring no longer keeps; the answer would be a guess."""


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


class TraceGap(LookupError):
    """Stores a waiter asked about are no longer kept (the trace is a ring): the answer
    would be a guess, so the wait fails instead. ``errno`` is ENOBUFS, as for a netlink
    listener that fell behind."""

    errno = _errno.ENOBUFS


class StateError(Exception):
    """A state file that cannot be used; the message names the file and the problem."""


class UnsafeFileError(OSError):
    """A file or directory fakesysfs refuses to use; ``filename`` names it, ``strerror`` says why."""

    def __init__(self, path: str, reason: str, err: int = _errno.EPERM, *, names_path: bool = False) -> None:
        super().__init__(err, reason, path)
        #: The reason already names the path (a directory or link on the way to the file).
        self.names_path = names_path

    def __str__(self) -> str:
        return str(self.strerror) if self.names_path else f"{self.filename}: {self.strerror}"


class MountError(RuntimeError):
    """libfuse could not mount or serve (it prints its own reason on stderr)."""


class MountpointError(Exception):
    """A place the fake may not be mounted, or a mount that did not happen; one line."""


class NamespaceError(RuntimeError):
    """The private namespace or one of its mounts could not be set up (one line)."""


class NotPrivateNetns(RuntimeError):
    """Refusing to broadcast uevents into the host's network namespace."""


class ControlError(Exception):
    """A control request failed, or the channel broke; the message is for a person."""

    def __init__(self, message: str, errno: str | None = None, reply: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.errno = errno
        self.reply = reply or {}


class RulesError(Exception):
    """The rules cannot be loaded or applied at all (one line for a person)."""


class CliError(Exception):
    """A failure the user can act on: printed as one line, exit status 1."""


__all__ = [
    "EHWPOISON",
    "CliError",
    "ConfigError",
    "ControlError",
    "EventsLost",
    "HarnessError",
    "KernelError",
    "MountError",
    "MountpointError",
    "NamespaceError",
    "NotPrivateNetns",
    "RulesError",
    "StateError",
    "TraceGap",
    "UnsafeFileError",
]
