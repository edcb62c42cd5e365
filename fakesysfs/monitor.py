"""``fakesysfs monitor MOUNTPOINT``: a mount's uevents as ``udevadm monitor --kernel`` prints them.

The events come from the mount's control socket (``control.py``), from the moment the
monitor attaches. The text format is systemd 252's ``udevadm monitor`` (udevadm-monitor.c):

    monitor will print the received events for:
    KERNEL - the kernel uevent

    KERNEL[1316.156206] add      /devices/system/memory/memory40 (memory)

that is ``"%-6s[%li.%06lu] %-8s %s (%s)\\n"`` with CLOCK_MONOTONIC at reception; with
``--property`` each event is followed by its ``KEY=VALUE`` lines and an empty line, in the
order sd-device keeps them (``DEVNAME`` as a /dev path, ``MAJOR``/``MINOR`` after
``SEQNUM``). ``--json`` prints one JSON object per event instead (the control protocol's
event object: properties in the kernel's order, unmodified). The monitor exits 0 on
SIGINT/SIGTERM and when the mount goes away.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from .control import ControlClient, event_to_json, find_control_socket
from .engine.events import Uevent
from .netlink import sd_device_properties

__all__ = ["HEADER", "format_event", "monitor"]

HEADER = "monitor will print the received events for:\nKERNEL - the kernel uevent\n\n"


def format_event(event: Uevent, properties: bool = False, now_ns: int | None = None) -> str:
    """One event as ``udevadm monitor --kernel [--property]`` prints it."""
    if now_ns is None:
        now_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    sec, nsec = divmod(now_ns, 1_000_000_000)
    text = f"{'KERNEL':<6}[{sec}.{nsec // 1000:06d}] {event.action:<8} {event.devpath} ({event.subsystem})\n"
    if properties:
        text += "".join(f"{k}={v}\n" for k, v in sd_device_properties(event).items()) + "\n"
    return text


def _filters(matches: Sequence[str]) -> list[tuple[str, str | None]]:
    """``--subsystem-match SUBSYSTEM[/DEVTYPE]`` values."""
    out = []
    for m in matches:
        subsystem, sep, devtype = m.partition("/")
        out.append((subsystem, devtype if sep else None))
    return out


def _passes(event: Uevent, filters: list[tuple[str, str | None]]) -> bool:
    if not filters:
        return True
    devtype = event.get("DEVTYPE")
    return any(event.subsystem == s and (d is None or d == devtype) for s, d in filters)


def monitor(mountpoint: str, *, properties: bool = False, subsystem_match: Sequence[str] = (),
            as_json: bool = False, out: TextIO | None = None, after: int | None = None) -> int:
    """Print the mount's events until it goes away; returns the exit status."""
    out = out if out is not None else sys.stdout
    filters = _filters(subsystem_match)
    client = ControlClient(find_control_socket(mountpoint))
    try:
        client.subscribe(after=after, subsystems=sorted({s for s, _ in filters}) or None)
        if not as_json:
            out.write(HEADER)
            out.flush()
        for event in client.events():
            if not _passes(event, filters):
                continue
            if as_json:
                record: dict[str, Any] = event_to_json(event)
                del record["event"]
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
            else:
                out.write(format_event(event, properties))
            out.flush()
    finally:
        client.close()
    return 0
