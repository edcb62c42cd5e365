"""The ``fakesysfs`` command: one module per subcommand, each thin.

A subcommand module has ``add_parser(commands)`` (its arguments and help) and the function
it sets as ``func``: it turns the arguments into calls of the modules below (machine,
daemon, run, control, monitor, udev_rules, status ...) and their results and errors into
output. Every user mistake ends in one line on stderr (``fakesysfs: error: ...``, from a
``CliError``) and exit status 1, never a traceback. The subcommand modules import their
machinery inside their command function, so building the whole parser stays cheap.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Sequence

from .. import __version__
from ..errors import CliError
from . import completion, ctl, manpage, monitor, mount, run, status, topology, udev, umount
from .common import configure_logging

__all__ = ["CliError", "main", "parser"]

#: In the order ``fakesysfs --help`` lists them.
COMMANDS = (mount, umount, topology, status, run, ctl, monitor, udev, completion, manpage)


def parser() -> argparse.ArgumentParser:
    """The ``fakesysfs`` argument parser (also what completion and a man page are made from)."""
    p = argparse.ArgumentParser(
        prog="fakesysfs",
        description="Serve a fake Linux /sys (memory hotplug, NUMA nodes, DAX) over FUSE.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="log what the daemon does: each store with its result, each uevent and harness op, "
                        "kernel messages; -vv adds libfuse's debug output")
    commands = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands)
    p.set_defaults(root_parser=p)  # what ``completion`` and ``manpage`` are made from
    return p


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(words)
    args.verbose += getattr(args, "sub_verbose", 0)
    configure_logging(args.verbose)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        status = func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return status
    except CliError as exc:
        print(f"fakesysfs: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # ``fakesysfs status MNT | head``: the reader is gone. Quiet, with the status of a
        # coreutils tool that SIGPIPE ended; nothing more goes to the closed pipe at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
