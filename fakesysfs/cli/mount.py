"""``fakesysfs mount MOUNTPOINT``: boot a topology and serve it.

Without ``-f`` the daemon forks (fakesysfs/daemon.py): this process returns once the mount
is live, or prints the daemon's reason and exits 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ..errors import CliError, ConfigError, MountError, MountpointError, StateError, UnsafeFileError
from . import common

if TYPE_CHECKING:
    from ..engine import Kernel
    from ..harness import Harness
    from ..sysfs.tree import Tree


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = commands.add_parser("mount", help="boot a topology and serve it at MOUNTPOINT")
    p.add_argument("mountpoint", metavar="MOUNTPOINT")
    p.add_argument("-c", "--config", metavar="TOPOLOGY.toml", help="topology file (default: the embedded one)")
    p.add_argument("-f", "--foreground", action="store_true", help="serve in this process until unmounted")
    p.add_argument("--allow-other", action="store_true",
                   help="let users other than the mounter in (needed for clients running as other users)")
    p.add_argument("--log-file", metavar="PATH",
                   help="the daemon's log: each store with its result, each uevent and harness op, kernel "
                        "messages (default: discarded once mounted)")
    p.add_argument("--state", metavar="FILE",
                   help="journal every change to FILE (fsync'd before the write returns); resume FILE if it exists")
    p.add_argument("--proc", metavar="DIR",
                   help="also serve the simulated /proc files (meminfo, zoneinfo, vmstat, buddyinfo, pagetypeinfo, "
                        "iomem, cmdline) at DIR: DIR/proc beside DIR/sys for HWLOC_FSROOT=DIR and the like")
    p.add_argument("--import", dest="import_snapshot", metavar="SNAPSHOT",
                   help="with --state FILE (new): start from a snapshot written by 'fakesysfs ctl MNT export'")
    p.add_argument("-v", "--verbose", dest="sub_verbose", action="count", default=argparse.SUPPRESS,
                   help="as 'fakesysfs -v mount': log what the daemon does (to stderr with -f, else to --log-file)")
    p.set_defaults(func=cmd_mount)


@contextmanager
def _mountpoint_rules() -> Iterator[None]:
    """fakesysfs/mountpoint.py's refusals, and the daemon's, as this command's one-line errors."""
    try:
        yield
    except (MountpointError, MountError) as exc:
        raise CliError(str(exc)) from None


def _check_mountpoint(mountpoint: str) -> None:
    """An existing directory, not a mount point yet; a fakesysfs mount whose daemon died is
    cleared first."""
    from ..mountpoint import check_directory, clear_stale_mount, is_dead_fuse_mount

    with _mountpoint_rules():
        if is_dead_fuse_mount(mountpoint):
            clear_stale_mount(mountpoint)
            print(f"fakesysfs: {mountpoint} was left mounted by a fakesysfs daemon that died (Transport endpoint "
                  "is not connected); unmounted it", file=sys.stderr, flush=True)
        check_directory(mountpoint)


def _check_apart(mountpoint: str, proc_mountpoint: str) -> None:
    """The two mounts side by side (``DIR/sys``, ``DIR/proc``): one at or inside the other
    would hide it (``mount DIR/sys --proc DIR`` put the /proc files over the /sys mount)."""
    sys_real, proc_real = os.path.realpath(mountpoint), os.path.realpath(proc_mountpoint)
    if sys_real == proc_real:
        raise CliError(f"--proc {proc_mountpoint} is the mountpoint itself: use DIR/proc beside DIR/sys")
    for inner, outer in ((sys_real, proc_real), (proc_real, sys_real)):
        if os.path.commonpath([inner, outer]) == outer:
            raise CliError(f"{inner} is inside {outer}: the mountpoint and --proc DIR must be apart "
                           "(DIR/sys beside DIR/proc)")


def _boot_state(path: str, topology: str | None, snapshot: str | None) -> tuple[Kernel, Tree, Harness]:
    """``--state FILE [--import SNAPSHOT]``: resume (or start) a journaled state. A state file
    this call creates is removed again if the boot fails (by identity: a file swapped in
    meanwhile stays), so a bad topology or snapshot leaves nothing behind."""
    from ..machine import boot_state, import_snapshot
    from ..safefile import remove_created

    path = os.path.abspath(path)
    created_fd = -1
    try:
        if snapshot is not None:
            created_fd = import_snapshot(path, snapshot)
        return boot_state(path, topology)
    except BaseException as exc:
        if created_fd >= 0:
            remove_created(path, created_fd)
        if isinstance(exc, StateError):
            raise CliError(str(exc)) from None
        if isinstance(exc, ConfigError):
            raise CliError(f"invalid topology: {exc}") from None
        if isinstance(exc, OSError) and topology is not None and exc.filename == topology:
            raise CliError(f"cannot read topology {topology}: {exc.strerror or exc}") from None
        if isinstance(exc, UnsafeFileError):
            raise CliError(f"cannot use state file {path}: {exc.strerror}") from None
        if isinstance(exc, OSError):
            raise CliError(f"cannot use state file {exc.filename or path}: {exc.strerror or exc}") from None
        raise
    finally:
        if created_fd >= 0:
            os.close(created_fd)


def cmd_mount(args: argparse.Namespace) -> int:
    from .. import mountpoint as rules

    if args.verbose and not args.foreground and args.log_file is None:
        print("fakesysfs: note: -v without -f or --log-file: the daemon's log is discarded once mounted",
              file=sys.stderr)
    mountpoint = os.path.abspath(args.mountpoint)
    with _mountpoint_rules():
        rules.check_not_host_sysfs(mountpoint)
    common.check_fuse()
    _check_mountpoint(mountpoint)
    if args.import_snapshot is not None and args.state is None:
        raise CliError("--import needs --state FILE: the snapshot is copied there and resumed")
    proc: tuple[str, int] | None = None
    if args.proc is not None:
        proc_mountpoint = os.path.abspath(args.proc)
        with _mountpoint_rules():
            rules.check_not_host_proc(proc_mountpoint)
        _check_apart(mountpoint, proc_mountpoint)
        _check_mountpoint(proc_mountpoint)
        with _mountpoint_rules():
            proc = (proc_mountpoint, rules.open_proc_mountpoint(proc_mountpoint))
    log_fd = common.open_log("log", args.log_file) if args.log_file is not None and not args.foreground else None
    try:
        with _mountpoint_rules():
            dir_fd = rules.open_mountpoint(mountpoint)  # from here on, the mount goes on this directory
    except BaseException:
        if log_fd is not None:
            os.close(log_fd)
        if proc is not None:
            os.close(proc[1])
        raise
    kernel: Kernel | None
    harness: Harness | None
    try:
        if args.state is not None:
            kernel, tree, harness = _boot_state(args.state, args.config, args.import_snapshot)
            from ..daemon import stop_on_journal_error

            stop_on_journal_error(harness, os.path.abspath(args.state))
        else:
            kernel, tree, harness = common.boot(args.config)
        common.start_trace(bool(args.verbose) or log_fd is not None)
        if args.foreground:
            _serve_foreground(args, mountpoint, tree, kernel, harness, dir_fd, proc)
            return 0
        daemon_log, log_fd = log_fd, None
        pid = _serve_daemon(args, mountpoint, tree, kernel, harness, dir_fd, daemon_log, proc)
        print(f"fakesysfs: serving {mountpoint} (pid {pid}); stop with 'fakesysfs umount {mountpoint}'")
        return 0
    finally:
        os.close(dir_fd)
        if log_fd is not None:
            os.close(log_fd)
        if proc is not None:
            os.close(proc[1])


def _serve_foreground(args: argparse.Namespace, mountpoint: str, tree: Tree, kernel: Kernel | None,
                      harness: Harness | None, dir_fd: int, proc: tuple[str, int] | None) -> None:
    from .. import mountpoint as rules
    from ..daemon import serve_foreground

    def ready() -> None:
        print(f"fakesysfs: serving {mountpoint}; stop with Ctrl-C or 'fakesysfs umount {mountpoint}'",
              file=sys.stderr, flush=True)

    with _mountpoint_rules():
        serve_foreground(tree, mountpoint, allow_other=args.allow_other, kernel=kernel, harness=harness,
                         dir_fd=dir_fd, ready=ready, dev_fuse=rules.DEV_FUSE, fuse_debug=args.verbose >= 2,
                         proc=proc)


def _serve_daemon(args: argparse.Namespace, mountpoint: str, tree: Tree, kernel: Kernel | None,
                  harness: Harness | None, dir_fd: int, log_fd: int | None,
                  proc: tuple[str, int] | None) -> int:
    from .. import mountpoint as rules
    from ..daemon import serve_daemon

    with _mountpoint_rules():
        return serve_daemon(tree, mountpoint, allow_other=args.allow_other, log_fd=log_fd, kernel=kernel,
                            harness=harness, dir_fd=dir_fd, on_detach=common.log_to_file, dev_fuse=rules.DEV_FUSE,
                            fuse_debug=args.verbose >= 2, proc=proc)
