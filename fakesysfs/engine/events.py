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

import errno
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from ..errors import EventsLost, KernelError

#: Actions a uevent file accepts (kobject_action_type, lib/kobject_uevent.c).
UEVENT_ACTIONS = ("add", "remove", "change", "move", "online", "offline", "bind", "unbind")

# -- uevent writes (lib/kobject_uevent.c kobject_synth_uevent) -------------------------------
_UUID_LEN = 36  # UUID_STRING_LEN
_HEX = frozenset("0123456789abcdefABCDEF")


def _isalnum(ch: str) -> bool:
    """The kernel's isalnum() on one byte (lib/ctype.c): ASCII letters and digits plus the
    Latin-1 letters 0xc0-0xff except 0xd7 and 0xf7."""
    o = ord(ch)
    return ch.isascii() and ch.isalnum() or (0xC0 <= o <= 0xFF and o not in (0xD7, 0xF7))


def uuid_is_valid(text: str) -> bool:
    """lib/uuid.c uuid_is_valid(): 36 characters, dashes at 8, 13, 18, 23, hex elsewhere."""
    if len(text) < _UUID_LEN:
        return False
    for i, ch in enumerate(text[:_UUID_LEN]):
        if i in (8, 13, 18, 23):
            if ch != "-":
                return False
        elif ch not in _HEX:
            return False
    return True


def _strip_one_terminator(buf: str) -> str:
    # "if (count && (buf[count-1] == '\n' || buf[count-1] == '\0')) count--;"
    return buf[:-1] if buf and buf[-1] in "\n\0" else buf


def kobject_action_args(buf: str) -> tuple[tuple[str, str], ...]:
    """lib/kobject_uevent.c kobject_action_args(): ``UUID[ KEY=VALUE]...``, exactly one space
    before each pair, KEY and VALUE non-empty and alphanumeric; else EINVAL."""
    buf = _strip_one_terminator(buf)
    if not buf or not uuid_is_valid(buf):
        raise KernelError(errno.EINVAL)
    env = [("SYNTH_UUID", buf[:_UUID_LEN])]
    pos, end = _UUID_LEN, len(buf)
    while pos < end:
        if buf[pos] != " ":
            raise KernelError(errno.EINVAL)
        pos += 1
        key_start = pos
        while pos < end and buf[pos] != "=":
            if not _isalnum(buf[pos]):
                raise KernelError(errno.EINVAL)
            pos += 1
        if pos == key_start or pos >= end:  # empty key, or no '='
            raise KernelError(errno.EINVAL)
        key = buf[key_start:pos]
        pos += 1  # the '='; a value must follow
        value_start = pos
        while pos < end and buf[pos] != " ":
            if not _isalnum(buf[pos]):
                raise KernelError(errno.EINVAL)
            pos += 1
        if pos == value_start:
            raise KernelError(errno.EINVAL)
        env.append((f"SYNTH_ARG_{key}", buf[value_start:pos]))
    return tuple(env)


def kobject_synth_uevent(text: str, count: int) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Parse a write to a ``uevent`` file (lib/kobject_uevent.c kobject_synth_uevent):
    ``ACTION[ UUID[ KEY=VALUE]...]``; returns (action, SYNTH_* variables) or raises EINVAL.

    ``text`` is the write up to its first NUL and ``count`` the bytes written; the kernel
    sees all ``count`` bytes, so an embedded NUL is put back (it never matches an action
    or argument character; only a single trailing NUL or newline is dropped).
    """
    buf = text + "\0" * max(0, count - len(text))
    stripped = _strip_one_terminator(buf)  # kobject_action_type()
    if not stripped:
        raise KernelError(errno.EINVAL)
    # strnchr(buf, count, ' ') and strncmp() stop at a NUL.
    visible = stripped.split("\0", 1)[0]
    space = visible.find(" ")
    word = stripped[:space] if space >= 0 else stripped
    if word not in UEVENT_ACTIONS:
        raise KernelError(errno.EINVAL)
    if space < 0:
        return word, (("SYNTH_UUID", "0"),)
    # kobject_action_args() gets the rest of the original count (newline included).
    return word, kobject_action_args(buf[space + 1 :])


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
           "kobject_synth_uevent", "match"]
