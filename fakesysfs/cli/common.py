"""What several subcommands share: the FUSE checks, booting a topology file, log files and
the log levels behind ``-v``."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from ..errors import CliError, ConfigError

if TYPE_CHECKING:
    from ..engine import Kernel
    from ..harness import Harness
    from ..sysfs.tree import Tree

#: ``fakesysfs.trace``: one line per store (with its result), uevent, harness op and kernel
#: message (fakesysfs/harness.py, fakesysfs/engine/kernel.py ``printk``).
TRACE_LOGGER = "fakesysfs.trace"
FORMAT = "%(name)s: %(levelname)s: %(message)s"
#: A log file's lines carry the time (stderr's are read as they come).
FILE_FORMAT = "%(asctime)s " + FORMAT


def configure_logging(verbose: int) -> None:
    """Messages to stderr; ``-v``: fakesysfs's debug messages, and the trace once the
    machine has booted (``start_trace``); ``-vv``: the FUSE binding's debug messages too.
    The trace stays off until then, so a boot's hundreds of uevents are not in the log."""
    logging.basicConfig(level=logging.INFO, format=FORMAT)
    logging.getLogger().setLevel(logging.DEBUG if verbose >= 2 else logging.INFO)
    logging.getLogger("fakesysfs").setLevel(logging.DEBUG if verbose >= 1 else logging.NOTSET)
    logging.getLogger(TRACE_LOGGER).setLevel(logging.WARNING)


def start_trace(on: bool) -> None:
    """The booted machine's activity goes to the log from now on (``-v``, ``--log-file``)."""
    logging.getLogger(TRACE_LOGGER).setLevel(logging.INFO if on else logging.WARNING)


def log_to_file() -> None:
    """The daemon's stderr became its ``--log-file``: time-stamped lines from now on."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter(FILE_FORMAT))


def check_fuse() -> None:
    """FUSE is usable here (the device, libfuse and a binding), or a CliError saying what to
    install or load."""
    from .. import mountpoint

    reason = mountpoint.fuse_unavailable(mountpoint.DEV_FUSE)
    if reason is not None:
        raise CliError(reason)


def boot(topology: str | None) -> tuple[Kernel | None, Tree, Harness | None]:
    """What ``mount`` and ``run`` serve: the topology file (or the embedded default) booted,
    with the harness attached; mistakes as CliError. (Tests stand in a tree of their own,
    with no kernel, by replacing this function.)"""
    where = topology if topology is not None else "the default topology"
    if topology is not None and not os.path.isfile(topology):
        raise CliError(f"topology {topology} does not exist or is not a file")
    try:
        from ..machine import boot_file
    except ImportError as exc:
        raise CliError(f"this fakesysfs installation is incomplete: {exc}") from None
    try:
        return boot_file(topology)
    except ConfigError as exc:
        raise CliError(f"invalid topology {where}: {exc}") from None
    except OSError as exc:
        raise CliError(f"cannot read topology {where}: {exc.strerror or exc}") from None


def open_log(kind: str, path: str) -> int:
    """``--trace``/``--log-file``: appended to if it is a file of ours (fakesysfs/safefile.py),
    else created 0600; a symlink, another user's file, a FIFO or device is refused."""
    from ..safefile import open_append

    try:
        return open_append(path)
    except OSError as exc:
        raise CliError(f"cannot open the {kind} file {path}: {exc.strerror or exc}") from None
