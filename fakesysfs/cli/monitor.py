"""``fakesysfs monitor MOUNTPOINT``: a mount's uevents as ``udevadm monitor --kernel`` prints
them (fakesysfs/monitor.py)."""

from __future__ import annotations

import argparse
import signal
import sys

from ..errors import CliError, ControlError


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = commands.add_parser("monitor", help="print a mount's uevents as they happen (like udevadm monitor --kernel)")
    p.add_argument("mountpoint", metavar="MOUNTPOINT")
    p.add_argument("-p", "--property", action="store_true", help="print the event properties")
    p.add_argument("-s", "--subsystem-match", action="append", metavar="SUBSYSTEM[/DEVTYPE]",
                   help="only events of this subsystem (repeatable)")
    p.add_argument("--json", action="store_true", help="one JSON object per event (properties in kernel order)")
    p.set_defaults(func=cmd_monitor)


def _stop_on_signals() -> None:
    """SIGTERM and SIGINT end the command with status 0, as udevadm's sd_event handling does;
    SIGINT also when started with it ignored (a background job of a non-interactive shell)."""

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def cmd_monitor(args: argparse.Namespace) -> int:
    from ..monitor import monitor

    _stop_on_signals()
    try:
        return monitor(args.mountpoint, properties=args.property, subsystem_match=args.subsystem_match or (),
                       as_json=args.json)
    except ControlError as exc:
        raise CliError(str(exc)) from None
    except KeyboardInterrupt:  # udevadm exits 0 on SIGINT/SIGTERM too
        return 0
    except BrokenPipeError:  # `fakesysfs monitor ... | head`
        sys.stderr.close()
        return 0
