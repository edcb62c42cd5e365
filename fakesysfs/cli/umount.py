"""``fakesysfs umount MOUNTPOINT``: unmount a fakesysfs mount (its daemon then exits)."""

from __future__ import annotations

import argparse
import os

from ..errors import CliError


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = commands.add_parser("umount", help="unmount a fakesysfs mount")
    p.add_argument("mountpoint", metavar="MOUNTPOINT")
    p.add_argument("-z", "--lazy", action="store_true", help="detach now even if busy")
    p.set_defaults(func=cmd_umount)


def cmd_umount(args: argparse.Namespace) -> int:
    from ..mountpoint import containing_mount, is_dead_fuse_mount, is_mounted, mounts, unmount

    mountpoint = os.path.abspath(args.mountpoint)
    if not (is_mounted(mountpoint) or is_dead_fuse_mount(mountpoint)):
        raise CliError(f"{mountpoint} is not mounted")
    # Only fakesysfs's own mounts: ``umount`` (the last resort below) would take any other
    # one, /proc or /home, as root. The table has real paths (a dead mount cannot be
    # resolved itself: its parent can).
    real = os.path.join(os.path.realpath(os.path.dirname(mountpoint)), os.path.basename(mountpoint))
    top = containing_mount(real, mounts())
    if top is None or top[0] != real or top[1] != "fuse.fakesysfs":
        what = f"a {top[1]} mount" if top is not None and top[0] == real else "a mount"
        raise CliError(f"{mountpoint} is {what}, not a fakesysfs one: fakesysfs umount unmounts only its own")
    reasons = unmount(mountpoint, args.lazy)
    if not reasons:
        return 0
    if reasons[0].startswith("none of"):
        raise CliError(reasons[0])
    hint = "" if args.lazy else " (busy? close files under it, or use --lazy)"
    raise CliError(f"cannot unmount {mountpoint}: {reasons[-1]}{hint}")
