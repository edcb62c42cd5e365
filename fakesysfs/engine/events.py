"""Uevents: what the kernel would broadcast, in order, with a monotonic SEQNUM.

R-SYS-09: every event carries ACTION, DEVPATH (below /sys, starting "/devices/..."),
SUBSYSTEM and SEQNUM, plus the device's own variables (R-SYS-08). The log is the single
source for every consumer (monitor, netlink emulation, udev rules, tests).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

#: Actions a uevent file accepts (kobject_action_type, lib/kobject_uevent.c).
UEVENT_ACTIONS = ("add", "remove", "change", "move", "online", "offline", "bind", "unbind")


@dataclass(frozen=True, slots=True)
class Uevent:
    """One kernel uevent."""

    seqnum: int
    action: str
    devpath: str
    subsystem: str
    env: tuple[tuple[str, str], ...] = ()
    timestamp: float = field(default=0.0, compare=False)

    def properties(self) -> dict[str, str]:
        """All variables in the kernel's order: ACTION, DEVPATH, SUBSYSTEM, extras, SEQNUM."""
        props = {"ACTION": self.action, "DEVPATH": self.devpath, "SUBSYSTEM": self.subsystem}
        props.update(self.env)
        props["SEQNUM"] = str(self.seqnum)
        return props


Listener = Callable[[Uevent], None]


class EventLog:
    """An ordered, bounded log of uevents with listeners and blocking waits.

    ``emit`` is called with the hotplug lock held, so listeners must be quick and must not
    call back into the engine; they typically queue the event for another thread.
    """

    def __init__(self, maxlen: int = 1 << 20) -> None:
        self._events: deque[Uevent] = deque(maxlen=maxlen)
        self._seqnum = 0
        self._listeners: list[Listener] = []
        self._cond = threading.Condition()

    @property
    def seqnum(self) -> int:
        """SEQNUM of the latest event (0 before the first)."""
        return self._seqnum

    def emit(self, action: str, devpath: str, subsystem: str, env: tuple[tuple[str, str], ...] = ()) -> Uevent:
        with self._cond:
            self._seqnum += 1
            event = Uevent(self._seqnum, action, devpath, subsystem, env, time.time())
            self._events.append(event)
            self._cond.notify_all()
        for listener in list(self._listeners):
            listener(event)
        return event

    def since(self, seqnum: int = 0) -> list[Uevent]:
        """Events with SEQNUM greater than ``seqnum``, oldest first."""
        with self._cond:
            if not self._events or seqnum >= self._seqnum:
                return []
            first = self._events[0].seqnum
            skip = max(0, seqnum - first + 1)
            return list(self._events)[skip:]

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for each new event; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def wait_for(self, predicate: Callable[[Uevent], bool], after: int = 0, timeout: float | None = None) -> Uevent | None:
        """Block until an event after SEQNUM ``after`` satisfies ``predicate``; None on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = after
        with self._cond:
            while True:
                for event in self.since(seen):
                    seen = event.seqnum
                    if predicate(event):
                        return event
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
