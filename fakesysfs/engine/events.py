"""Uevents: what the kernel would broadcast, in order, with a monotonic SEQNUM.

R-SYS-09: every event carries ACTION, DEVPATH (below /sys, starting "/devices/..."),
SUBSYSTEM and SEQNUM, plus the device's own variables (R-SYS-08). The log is the single
source for every consumer (the control socket and ``fakesysfs monitor``, the netlink
emulation, the udev rules runner, tests).

Waiting for events from Python (the harness API)::

    with kernel.events.watch() as watch:          # remembers the SEQNUM before the action
        tree.echo("/devices/system/memory/memory40/state", "online")
        event = watch.wait_for(action="online", devpath="/devices/system/memory/memory40",
                               timeout=5)
    watch.events                                  # everything emitted since watch()

Criteria are keyword arguments naming ``Uevent`` fields (``action``, ``devpath``,
``subsystem``, ``seqnum``) or properties (``DRIVER="kmem"``); a value is either the exact
string or a predicate. ``EventLog.wait_for`` takes a plain predicate over ``Uevent``.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

#: Actions a uevent file accepts (kobject_action_type, lib/kobject_uevent.c).
UEVENT_ACTIONS = ("add", "remove", "change", "move", "online", "offline", "bind", "unbind")

_FIELDS = ("seqnum", "action", "devpath", "subsystem")


@dataclass(frozen=True, slots=True)
class Uevent:
    """One kernel uevent."""

    seqnum: int
    action: str
    devpath: str
    subsystem: str
    env: tuple[tuple[str, str], ...] = ()
    #: Wall-clock time of emission (``time.time()``), for latency measurements.
    timestamp: float = field(default=0.0, compare=False)

    def properties(self) -> dict[str, str]:
        """All variables in the kernel's order: ACTION, DEVPATH, SUBSYSTEM, extras, SEQNUM."""
        props = {"ACTION": self.action, "DEVPATH": self.devpath, "SUBSYSTEM": self.subsystem}
        props.update(self.env)
        props["SEQNUM"] = str(self.seqnum)
        return props

    def get(self, key: str, default: str | None = None) -> str | None:
        """One property (``DRIVER``, ``SYNTH_UUID``, ``ACTION`` ...), or ``default``."""
        return self.properties().get(key, default)

    def matches(self, **criteria: str | int | Callable[[str], bool]) -> bool:
        """True if every criterion holds; see the module docstring for the keywords."""
        props: dict[str, str] | None = None
        for key, want in criteria.items():
            if key in _FIELDS:
                have: str | int | None = getattr(self, key)
            else:
                if props is None:
                    props = self.properties()
                have = props.get(key)
            if callable(want):
                if have is None or not want(have):  # type: ignore[arg-type]
                    return False
            elif have != want:
                return False
        return True


_now = time.time
_object_new = object.__new__
#: The slot setters of Uevent: emit() builds an event through them, without the frozen
#: dataclass's six object.__setattr__ calls (a third of the cost of emit); the result is an
#: ordinary, equal Uevent.
_UEVENT_SLOTS = tuple(Uevent.__dict__[name].__set__ for name in (*_FIELDS, "env", "timestamp"))


#: Events an EventLog keeps by default: a ring of the latest 32 Ki (~250 B each: ~8 MB; a
#: 1 TiB kmem bind emits 8 Ki). Consumers that fall further behind are told (``EventsLost``,
#: the control socket's ``missed``), as a netlink listener gets ENOBUFS.
EVENTS_KEPT = 1 << 15


class EventsLost(LookupError):
    """A wait asked about events the ring no longer keeps; the answer would be a guess."""


Listener = Callable[[Uevent], None]
Predicate = Callable[[Uevent], bool]


def match(**criteria: str | int | Callable[[str], bool]) -> Predicate:
    """A predicate for ``wait_for``: ``match(action="online", subsystem="memory")``."""
    return lambda event: event.matches(**criteria)


class EventLog:
    """An ordered, bounded log of uevents (the latest ``maxlen``) with listeners and
    blocking waits.

    ``emit`` is called with the hotplug lock held, so listeners must be quick and must not
    call back into the engine or block; they typically queue the event for another thread.
    A listener that raises is dropped (and the exception is stored in ``listener_errors``)
    rather than failing the kernel operation that emitted the event.
    """

    def __init__(self, maxlen: int = EVENTS_KEPT) -> None:
        self._events: deque[Uevent] = deque(maxlen=maxlen)
        self._seqnum = 0
        self._listeners: list[Listener] = []
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self.listener_errors: list[BaseException] = []

    @property
    def seqnum(self) -> int:
        """SEQNUM of the latest event (0 before the first)."""
        return self._seqnum

    def emit(self, action: str, devpath: str, subsystem: str, env: tuple[tuple[str, str], ...] = ()) -> Uevent:
        if env:
            if action == "unbind":
                # kobject_uevent_env(): zap_modalias_env() for KOBJ_UNBIND (the driver is
                # gone, the alias would make udev load it again).
                env = tuple((k, v) for k, v in env if k != "MODALIAS")
            elif type(env) is not tuple:
                env = tuple(env)
        else:
            env = ()
        # The hot path of every hotplug operation (a 1 TiB kmem bind emits 8192 events):
        # the plain lock, the Uevent built slot by slot (_UEVENT_SLOTS), no Condition
        # bookkeeping without waiters, no listener copy without listeners.
        with self._lock:
            seqnum = self._seqnum = self._seqnum + 1
            event = _object_new(Uevent)
            set_seqnum, set_action, set_devpath, set_subsystem, set_env, set_timestamp = _UEVENT_SLOTS
            set_seqnum(event, seqnum)
            set_action(event, action)
            set_devpath(event, devpath)
            set_subsystem(event, subsystem)
            set_env(event, env)
            set_timestamp(event, _now())
            self._events.append(event)
            listeners = list(self._listeners) if self._listeners else ()
            if self._cond._waiters:  # type: ignore[attr-defined]
                self._cond.notify_all()
        for listener in listeners:
            try:
                listener(event)
            except Exception as exc:  # noqa: BLE001 (a consumer's bug must not fail hotplug)
                self.listener_errors.append(exc)
                self._remove(listener)
        return event

    def since(self, seqnum: int = 0) -> list[Uevent]:
        """Events with SEQNUM greater than ``seqnum``, oldest first (as far as kept)."""
        with self._lock:
            events = self._events
            if not events or seqnum >= self._seqnum:
                return []
            # The newest ``count`` events, taken from the right end: O(count), not O(log).
            count = min(len(events), self._seqnum - seqnum)
            if count == len(events):
                return list(events)
            return list(itertools.islice(reversed(events), count))[::-1]

    @property
    def first_seqnum(self) -> int:
        """SEQNUM of the oldest event still kept (``seqnum + 1`` when the log is empty)."""
        with self._cond:
            return self._events[0].seqnum if self._events else self._seqnum + 1

    def subscribe(self, listener: Listener, after: int | None = None) -> Callable[[], None]:
        """Call ``listener`` for each new event; returns a function that unsubscribes.

        With ``after``, first replays the kept events with SEQNUM > ``after``; replay and
        subscription are atomic, so the listener sees every event exactly once, in order.
        The replay runs in the caller's thread, new events in the emitter's.
        """
        with self._cond:
            backlog = self.since(after) if after is not None else []
            self._listeners.append(listener)
            # Deliver the backlog before releasing the lock: a concurrent emit waits for
            # ``_cond`` and therefore cannot overtake the replay.
            for event in backlog:
                listener(event)
        return lambda: self._remove(listener)

    def _remove(self, listener: Listener) -> None:
        with self._cond:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def wait_for(self, predicate: Predicate | None = None, after: int = 0, timeout: float | None = None,
                 **criteria: str | int | Callable[[str], bool]) -> Uevent | None:
        """Block until an event after SEQNUM ``after`` satisfies ``predicate`` (and the
        keyword ``criteria``, see ``Uevent.matches``); None on timeout. ``EventsLost`` when
        events after ``after`` left the ring before they were looked at."""
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = after
        with self._cond:
            while True:
                self._check_kept(seen)
                for event in self.since(seen):
                    seen = event.seqnum
                    if (predicate is None or predicate(event)) and event.matches(**criteria):
                        return event
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def _check_kept(self, after: int) -> None:
        first = self._events[0].seqnum if self._events else self._seqnum + 1
        if first - 1 > after:
            raise EventsLost(f"uevents {after + 1}..{first - 1} are no longer kept (the log keeps the latest "
                             f"{self._events.maxlen}); wait with a later 'after' (a recent SEQNUM)")

    def watch(self) -> EventWatch:
        """Start collecting from now: ``with log.watch() as w: ...; w.wait_for(...)``."""
        return EventWatch(self)


class EventWatch:
    """The events of one ``EventLog`` from the moment ``watch()`` was called."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.start = log.seqnum
        self._cursor = self.start

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        return None

    @property
    def events(self) -> list[Uevent]:
        """Every event since the watch started, oldest first."""
        return self.log.since(self.start)

    def __iter__(self) -> Iterator[Uevent]:
        return iter(self.events)

    def wait_for(self, predicate: Predicate | None = None, timeout: float | None = 10.0,
                 **criteria: str | int | Callable[[str], bool]) -> Uevent:
        """The next matching event after the previous ``wait_for`` result (so repeated calls
        walk forward); raises ``TimeoutError`` with the events seen if none arrives."""
        event = self.log.wait_for(predicate, after=self._cursor, timeout=timeout, **criteria)
        if event is None:
            seen = [f"{e.seqnum} {e.action} {e.devpath}" for e in self.log.since(self.start)]
            shown = seen if len(seen) <= 20 else [*seen[:10], "...", *seen[-10:]]
            raise TimeoutError(f"no event matching {criteria or predicate} after SEQNUM {self._cursor} within "
                               f"{timeout} s; events since the watch began: {shown}")
        self._cursor = event.seqnum
        return event

    def wait_for_all(self, *predicates: Predicate, timeout: float | None = 10.0) -> list[Uevent]:
        """Wait until each predicate has matched some event since the watch started (in any
        order); returns the first match of each. Raises ``TimeoutError`` otherwise."""
        deadline = None if timeout is None else time.monotonic() + timeout
        cond = self.log._cond
        with cond:
            while True:
                self.log._check_kept(self.start)
                events = self.log.since(self.start)
                found = [next((e for e in events if pred(e)), None) for pred in predicates]
                if all(e is not None for e in found):
                    return [e for e in found if e is not None]
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"{found.count(None)} of {len(predicates)} predicates never matched")
                cond.wait(remaining)

__all__ = ["EVENTS_KEPT", "UEVENT_ACTIONS", "EventLog", "EventWatch", "EventsLost", "Listener", "Predicate", "Uevent",
           "match"]
