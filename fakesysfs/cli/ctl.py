"""``fakesysfs ctl MOUNTPOINT COMMAND``: the harness of a running mount, over its control socket
(fakesysfs/control.py; the ops are fakesysfs/harness.py's). ``DESCRIPTION`` is the help."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from ..errors import CliError, ControlError

__all__ = ["add_parser", "ctl"]

DESCRIPTION = """\
Inject faults, hot-plug hardware and inspect the running mount at MOUNTPOINT.

  fakesysfs ctl MNT add-cxl-region 16G 1 [start=ADDR] [decoder=..] [driver=..]  -> "region3 dax3.0"
  fakesysfs ctl MNT add-hmem 8G 2 [start=ADDR] ...                             -> "hmem.4 dax4.0"
  fakesysfs ctl MNT remove region3|hmem.4
  fakesysfs ctl MNT fault notifier online|offline ERRNO      (ERRNO 0 clears; ENOMEM or 12)
  fakesysfs ctl MNT fault memmap-fail-at-chunk K|off
  fakesysfs ctl MNT fault probe-fail dax0.0 ERRNO
  fakesysfs ctl MNT fault clear
  fakesysfs ctl MNT block N [pinned=P] [used=U] [poisoned=X]
  fakesysfs ctl MNT delay MICROSECONDS                       (each memory block added takes this long)
  fakesysfs ctl MNT wait-event [--after SEQNUM] [--timeout S] KEY=VALUE...   (ACTION=online ...)
  fakesysfs ctl MNT wait-store [--after N] [--timeout S] [--path REGEX] [--data TEXT] [--errno E]
  fakesysfs ctl MNT seqnum | state | trace [--since N] | kmsg | iomem | export FILE

Results go to stdout (one line, or JSON for state, trace, wait-event and wait-store); a
refused request prints the daemon's reason on stderr and exits 1.
"""

_NOTIFIER = {"online": "MEM_GOING_ONLINE", "offline": "MEM_GOING_OFFLINE",
             "MEM_GOING_ONLINE": "MEM_GOING_ONLINE", "MEM_GOING_OFFLINE": "MEM_GOING_OFFLINE"}


def _key_values(words: list[str], allowed: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or key not in allowed:
            raise CliError(f"{word!r}: expected KEY=VALUE with KEY one of {', '.join(allowed)}")
        out[key] = value
    return out


def _request(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The control op and members for the parsed command line."""
    cmd = args.ctl_command
    if cmd == "add-cxl-region":
        extra = _key_values(args.options, ("start", "decoder", "adistance", "numa_node", "driver"))
        return "add_cxl_region", {"size": args.size, "target_node": args.node, **extra}
    if cmd == "add-hmem":
        extra = _key_values(args.options, ("start", "adistance", "numa_node", "driver"))
        return "add_hmem", {"size": args.size, "target_node": args.node, **extra}
    if cmd == "remove":
        return "remove", {"device": args.device}
    if cmd == "block":
        return "block_usage", {"block": args.block, **_key_values(args.options, ("pinned", "used", "poisoned"))}
    if cmd == "delay":
        if not 0 <= args.microseconds <= 0xFFFFFFFF:  # the debugfs knob's range (kstrtouint)
            raise CliError(f"delay: {args.microseconds} is not 0..4294967295 microseconds")
        return "add_block_delay", {"seconds": args.microseconds / 1e6}
    if cmd == "fault":
        kind, rest = args.kind, args.values
        if kind == "notifier" and len(rest) == 2 and rest[0] in _NOTIFIER:
            return "notifier_error", {"action": _NOTIFIER[rest[0]], "errno": rest[1]}
        if kind == "memmap-fail-at-chunk" and len(rest) == 1:
            return "memmap_fail_at_chunk", {"chunk": None if rest[0] in ("off", "-1") else rest[0]}
        if kind == "probe-fail" and len(rest) == 2:
            return "probe_fail", {"device": rest[0], "errno": rest[1]}
        if kind == "clear" and not rest:
            return "clear_faults", {}
        raise CliError("fault: use 'notifier online|offline ERRNO', 'memmap-fail-at-chunk K|off', "
                       "'probe-fail DEVICE ERRNO' or 'clear'")
    if cmd == "wait-event":
        match: dict[str, str] = {}
        for word in args.match:
            key, sep, value = word.partition("=")
            if not sep or not key:
                raise CliError(f"{word!r}: expected KEY=VALUE "
                               "(ACTION=online, SUBSYSTEM=memory, DEVPATH=..., DRIVER=...)")
            match[key] = value
        return "wait_event", {"match": match, "after": args.after, "timeout": args.timeout}
    if cmd == "wait-store":
        return "wait_store", {"path": args.path, "data": args.data, "errno": args.errno, "after": args.after,
                              "timeout": args.timeout}
    if cmd == "seqnum":
        return "ping", {}
    if cmd == "trace":
        return "trace", {"since": args.since}
    if cmd == "export":
        return "export", {"path": os.path.abspath(args.file)}
    return cmd, {}  # state, kmsg, dmesg, iomem


def _print(cmd: str, reply: dict[str, Any]) -> None:
    out = sys.stdout
    if cmd in ("add-cxl-region", "add-hmem"):
        out.write(f"{reply['name']} {reply['device'] or '-'}\n")
    elif cmd == "seqnum":
        out.write(f"{reply['seqnum']}\n")
    elif cmd == "state":
        out.write(json.dumps(reply["state"], indent=1) + "\n")
    elif cmd == "trace":
        out.writelines(json.dumps(r) + "\n" for r in reply["stores"])
    elif cmd == "kmsg":
        out.writelines(f"{line}\n" for line in reply["lines"])
    elif cmd == "dmesg":  # dmesg's default format: [seconds.micros] text
        out.writelines(f"[{usec // 1000000:5}.{usec % 1000000:06}] {text}\n" for _, _, usec, text in reply["records"])
    elif cmd == "iomem":
        out.write(reply["text"])
    elif cmd == "export":
        out.write(f"{reply['path']}: {reply['records']} records\n")
    elif cmd == "wait-event":
        out.write(json.dumps(reply["event"]) + "\n")
    elif cmd == "wait-store":
        out.write(json.dumps(reply["store"]) + "\n")


def ctl(args: argparse.Namespace) -> int:
    """Run one ``fakesysfs ctl`` command; returns the exit status."""
    from ..control import ControlClient

    op, members = _request(args)
    members = {k: v for k, v in members.items() if v is not None}
    timeout = max(10.0, float(members.get("timeout", 0)) + 5.0)
    try:
        with ControlClient.for_mount(args.mountpoint, timeout=timeout) as client:
            reply = client.request(op, **members)
            if op == "trace" and reply.get("missed"):
                print(f"fakesysfs ctl trace: {reply['missed']} stores after #{members.get('since', 0)} are no "
                      "longer kept (the trace is a ring)", file=sys.stderr)
            if op == "trace":  # replies are capped: page on with since = the last seq
                while reply.get("more") and reply["stores"]:
                    _print(args.ctl_command, reply)
                    reply = client.request(op, **{**members, "since": reply["stores"][-1]["seq"]})
    except ControlError as exc:
        # The daemon names the op it refused ("remove: ..."); this command names it once.
        reason = str(exc).removeprefix(f"{op}: ")
        raise CliError(f"{args.ctl_command}: {reason}") from None
    except TimeoutError:
        raise CliError(f"{args.ctl_command}: the daemon of {args.mountpoint} "
                       f"did not answer within {timeout:.0f} s") from None
    _print(args.ctl_command, reply)
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``ctl`` with the ``fakesysfs`` command's subparsers."""
    p = commands.add_parser("ctl", help="inject faults, hot-plug hardware and inspect a running mount",
                            description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mountpoint", metavar="MOUNTPOINT")
    sub = p.add_subparsers(dest="ctl_command", required=True, metavar="COMMAND")

    for name, what in (("add-cxl-region", "a CXL RAM region appears (prints: REGION DAXDEV)"),
                       ("add-hmem", "a soft-reserved memory range appears (prints: hmem.N DAXDEV)")):
        c = sub.add_parser(name, help=what)
        c.add_argument("size", metavar="SIZE", help="bytes, hex or a size like 16G")
        c.add_argument("node", metavar="NODE", type=int, help="target NUMA node")
        # default=[]: argparse would otherwise name an empty "*" among the missing arguments
        c.add_argument("options", nargs="*", default=[], metavar="KEY=VALUE")
    sub.add_parser("remove", help="a CXL region or hmem range goes away").add_argument("device", metavar="NAME")
    fault = sub.add_parser("fault", help="arm or clear a fault")
    fault.add_argument("kind", choices=["notifier", "memmap-fail-at-chunk", "probe-fail", "clear"])
    fault.add_argument("values", nargs="*", default=[], metavar="VALUE")
    block = sub.add_parser("block", help="pinned, used and poisoned pages of memory block N")
    block.add_argument("block", type=int, metavar="N")
    block.add_argument("options", nargs="*", default=[], metavar="KEY=VALUE")
    delay = sub.add_parser("delay", help="each memory block added takes MICROSECONDS (long adds, for crash tests)")
    delay.add_argument("microseconds", type=int, metavar="MICROSECONDS")
    wait_event = sub.add_parser("wait-event", help="wait for a uevent (default: any since boot) matching KEY=VALUE")
    wait_event.add_argument("--after", type=int, metavar="SEQNUM")
    wait_event.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS")
    wait_event.add_argument("match", nargs="*", default=[], metavar="KEY=VALUE")
    wait_store = sub.add_parser("wait-store", help="wait for a store (default: any so far) matching")
    wait_store.add_argument("--after", type=int, metavar="N")
    wait_store.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS")
    wait_store.add_argument("--path", metavar="REGEX", help="full match of the path below the mount")
    wait_store.add_argument("--data", metavar="TEXT", help="the text written (one trailing newline ignored)")
    wait_store.add_argument("--errno", metavar="ERRNO", help="0, EBUSY, 16...")
    trace = sub.add_parser("trace", help="the store log, one JSON object per line")
    trace.add_argument("--since", type=int, default=0, metavar="N")
    sub.add_parser("export", help="write a state snapshot to FILE").add_argument("file", metavar="FILE")
    for name, what in (("seqnum", "the latest uevent SEQNUM"), ("state", "the whole state as JSON"),
                       ("kmsg", "the kernel log"), ("dmesg", "the kernel log as dmesg prints it (device prefixes)"),
                       ("iomem", "/proc/iomem")):
        sub.add_parser(name, help=what)
    p.set_defaults(func=ctl)
