"""``fakesysfs topology``: the embedded default topology, or a machine's read from its sysfs."""

from __future__ import annotations

import argparse
import sys

from ..errors import CliError, ConfigError


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = commands.add_parser("topology", help="print the embedded default topology (TOML)")
    p.add_argument("--from-sysfs", metavar="DIR|TARBALL",
                   help="instead, read a machine's topology from its sysfs at DIR (read only; /sys works) "
                        "or from a tarball of a sysfs dump (tar, tar.gz, tar.bz2, tar.xz)")
    p.set_defaults(func=cmd_topology)


def cmd_topology(args: argparse.Namespace) -> int:
    if args.from_sysfs is not None:
        from ..fromsysfs import topology_from_sysfs

        try:
            found = topology_from_sysfs(args.from_sysfs)
        except ConfigError as exc:
            raise CliError(str(exc)) from None
        sys.stdout.write(found.toml(args.from_sysfs))
        return 0
    try:
        from ..topology import default_topology_text
    except ImportError as exc:
        raise CliError(f"this fakesysfs installation is incomplete: {exc}") from None
    text = default_topology_text()
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
