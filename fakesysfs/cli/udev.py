"""``fakesysfs udev MOUNTPOINT --rules FILE``: udev rules applied to a mount's uevents as
systemd-udevd would (fakesysfs/udev_rules.py)."""

from __future__ import annotations

import argparse
import sys

from ..errors import CliError, ControlError, RulesError
from .monitor import _stop_on_signals


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = commands.add_parser("udev", help="apply udev rules files to a mount's uevents, as systemd-udevd would")
    p.add_argument("mountpoint", metavar="MOUNTPOINT")
    # One file per --rules (repeatable): a list option would swallow MOUNTPOINT after it.
    p.add_argument("--rules", action="append", required=True, metavar="FILE",
                   help="a rules file (repeatable; applied in the order given)")
    p.add_argument("--const", action="append", metavar="KEY=VALUE",
                   help="CONST{arch} / CONST{virt} value (default: this machine's arch, virt=none)")
    p.add_argument("--programs", choices=("auto", "host", "skip"), default="auto",
                   help="RUN/PROGRAM commands: auto = with the mount at /sys (private mount namespace, root); "
                        "host = directly, seeing the host's /sys; skip = not at all")
    p.set_defaults(func=cmd_udev)


def cmd_udev(args: argparse.Namespace) -> int:
    from ..udev_rules import UdevRules, run_rules

    _stop_on_signals()
    consts = {}
    for item in args.const or ():
        key, sep, value = item.partition("=")
        if not sep or key not in ("arch", "virt"):
            raise CliError(f"--const takes arch=VALUE or virt=VALUE, not {item!r}")
        consts[key] = value
    try:
        rules = UdevRules.load(args.rules)

        def ready() -> None:
            print(f"fakesysfs udev: applying {len(args.rules)} rules file(s), {rules.line_count} rule lines, to the "
                  f"events of {args.mountpoint}; stop with Ctrl-C", file=sys.stderr, flush=True)

        return run_rules(args.mountpoint, rules, consts=consts, programs=args.programs, on_ready=ready)
    except (RulesError, ControlError) as exc:
        raise CliError(str(exc)) from None
    except KeyboardInterrupt:
        return 0
