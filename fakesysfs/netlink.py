"""libudev netlink emulation: what systemd-udevd broadcasts after processing each uevent.

libudev (``udevadm monitor --udev``, pyudev ``Monitor.from_netlink(ctx, source='udev')``,
sd-device based agents) listens on NETLINK_KOBJECT_UEVENT multicast group 2 for messages
in udevd's format (systemd src/libsystemd/sd-device/device-monitor.c; docs/clients.md):

    offset size field
         0    8 "libudev\\0"
         8    4 magic 0xfeedcafe, big-endian
        12    4 header size (40), host order
        16    4 properties offset (40), host order
        20    4 properties length, host order
        24    4 MurmurHash2(SUBSYSTEM), big-endian    <- BPF subsystem filters
        28    4 MurmurHash2(DEVTYPE) or 0, big-endian
        32    8 tag bloom filter (hi, lo), big-endian <- BPF tag filters
        40    n KEY=VALUE\\0 ...

The properties are the device as udevd sends it: the kernel's variables as sd-device
parsed them (``DEVNAME`` as a /dev path, ``MAJOR``/``MINOR`` after ``SEQNUM``), then the
rules' ``ENV`` assignments, ``TAGS``/``CURRENT_TAGS`` and ``USEC_INITIALIZED`` (kept per
device from its first event, as udevd's database does).

Group 1 (kernel) cannot be emulated for libudev: it drops kernel-group messages from a
non-zero port id. Messages reach every listener in the sender's network namespace, so this
module refuses to send unless it runs in a private one (``fakesysfs run``); the host's
real udev listeners must never see fake devices.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from .engine.events import EVENTS_KEPT
from .errors import NotPrivateNetns

if TYPE_CHECKING:
    from .engine.events import EventLog, Uevent

__all__ = [
    "GROUP_KERNEL",
    "GROUP_UDEV",
    "NETLINK_KOBJECT_UEVENT",
    "NetlinkForwarder",
    "NetlinkSender",
    "NotPrivateNetns",
    "UdevDatabase",
    "in_private_netns",
    "murmur_hash2",
    "string_bloom64",
    "udev_message",
    "udev_properties",
]

log = logging.getLogger(__name__)

NETLINK_KOBJECT_UEVENT = 15
GROUP_KERNEL = 1
GROUP_UDEV = 2
UDEV_MONITOR_MAGIC = 0xFEEDCAFE
#: struct monitor_netlink_header: prefix, magic (BE), 3 sizes (host order), 4 filters (BE).
_HEADER_SIZE = 40


# -- hashing (systemd src/basic/MurmurHash2.c, bloom from sd-device/device-monitor.c) ---------
def murmur_hash2(data: bytes, seed: int = 0) -> int:
    """Austin Appleby's MurmurHash2, 32-bit, little-endian block reads (x86)."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    length = len(data)
    h = (seed ^ length) & mask
    i = 0
    while length - i >= 4:
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
        i += 4
    rest = length - i
    if rest == 3:
        h ^= data[i + 2] << 16
    if rest >= 2:
        h ^= data[i + 1] << 8
    if rest >= 1:
        h ^= data[i]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h


def string_bloom64(text: str) -> int:
    """Four bits of a 64-bit bloom filter per tag."""
    h = murmur_hash2(text.encode())
    bits = 0
    for shift in (0, 6, 12, 18):
        bits |= 1 << ((h >> shift) & 63)
    return bits


def udev_message(properties: dict[str, str], tags: Iterable[str] = ()) -> bytes:
    """One libudev monitor message for a device with these properties (in order)."""
    body = b"".join(f"{k}={v}".encode() + b"\0" for k, v in properties.items())
    subsystem = properties.get("SUBSYSTEM")
    devtype = properties.get("DEVTYPE")
    bloom = 0
    for tag in tags:
        bloom |= string_bloom64(tag)
    return (
        b"libudev\0"
        + struct.pack(">I", UDEV_MONITOR_MAGIC)
        + struct.pack("=III", _HEADER_SIZE, _HEADER_SIZE, len(body))
        + struct.pack(
            ">IIII",
            murmur_hash2(subsystem.encode()) if subsystem else 0,
            murmur_hash2(devtype.encode()) if devtype else 0,
            bloom >> 32,
            bloom & 0xFFFFFFFF,
        )
        + body
    )


# -- the device as udevd sees and sends it ---------------------------------------------------
def sd_device_properties(event: Uevent) -> dict[str, str]:
    """The event's properties in sd-device's order after parsing the kernel message
    (device_new_from_nulstr): ``DEVNAME`` gains ``/dev/``, ``MAJOR``/``MINOR`` come last."""
    props: dict[str, str] = {}
    devnum: dict[str, str] = {}
    for key, value in event.properties().items():
        if key in ("MAJOR", "MINOR"):
            devnum[key] = value
        elif key == "DEVNAME" and not value.startswith("/"):
            props[key] = "/dev/" + value
        else:
            props[key] = value
    if "MAJOR" in devnum:  # device_set_devnum(major, minor) only with a major
        props["MAJOR"] = devnum["MAJOR"]
        if "MINOR" in devnum:
            props["MINOR"] = devnum["MINOR"]
    return props


class UdevDatabase:
    """What udevd's database keeps between events of one device: USEC_INITIALIZED."""

    def __init__(self) -> None:
        self._initialized: dict[str, int] = {}

    def usec_initialized(self, event: Uevent) -> int:
        if event.action == "remove":
            return self._initialized.pop(event.devpath, None) or _usec_now()
        return self._initialized.setdefault(event.devpath, _usec_now())


def _usec_now() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def udev_properties(event: Uevent, extra: dict[str, str] | None = None, tags: Sequence[str] = (),
                    usec_initialized: int | None = None) -> dict[str, str]:
    """The properties udevd broadcasts for ``event``: sd-device's view, the rules' additions
    (``extra``; names starting with '.' stay private), tags, USEC_INITIALIZED."""
    props = sd_device_properties(event) if extra is None else dict(extra)
    props = {k: v for k, v in props.items() if not k.startswith(".")}
    if tags:
        joined = ":" + ":".join(tags) + ":"
        props["TAGS"] = joined
        props["CURRENT_TAGS"] = joined
    props["USEC_INITIALIZED"] = str(usec_initialized if usec_initialized is not None else _usec_now())
    return props


# -- sending ----------------------------------------------------------------------------------
def _netns_at_import() -> int | None:
    try:
        return os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return None


#: The network namespace this program started in (forked children inherit the value).
_STARTUP_NETNS = _netns_at_import()


def _netns(pid: int | str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", encoding="latin-1") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def in_private_netns() -> bool:
    """True if this process's network namespace was made below the host's: it is not the
    one this program started in (``fakesysfs run`` unshares after importing this module),
    or some ancestor (or pid 1) is in a different one. Unknown counts as not private."""
    mine = _netns("self")
    if mine is None:
        return False
    if _STARTUP_NETNS is not None and mine != _STARTUP_NETNS:
        return True
    pid, seen = os.getppid(), set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        theirs = _netns(pid)
        if theirs is not None and theirs != mine:
            return True
        pid = _ppid(pid)
    init = _netns(1)
    return init is not None and init != mine


class NetlinkSender:
    """A NETLINK_KOBJECT_UEVENT socket that multicasts udev-format messages to group 2."""

    def __init__(self, *, require_private_netns: bool = True) -> None:
        if require_private_netns and not in_private_netns():
            raise NotPrivateNetns(
                "refusing to send uevents in the host's network namespace (real udev listeners "
                "would receive them); use 'fakesysfs run', or unshare -n"
            )
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT)
        self.sock.bind((0, 0))  # port id assigned by the kernel, no groups
        self.sent = 0
        self.errors = 0

    def send(self, properties: dict[str, str], tags: Sequence[str] = ()) -> None:
        message = udev_message(properties, tags)
        try:
            self.sock.sendto(message, (0, GROUP_UDEV))
            self.sent += 1
        except OSError as exc:  # ENOBUFS, ECONNREFUSED: no listener kept up; like udevd, go on
            self.errors += 1
            log.debug("netlink: send of %s failed: %s", properties.get("DEVPATH"), exc)

    def close(self) -> None:
        self.sock.close()


# -- the forwarder ------------------------------------------------------------------------------
Processor = Callable[["Uevent"], "tuple[dict[str, str], Sequence[str]] | None"]


class NetlinkForwarder:
    """Broadcasts every event of an EventLog, in order, from a thread of its own.

    The EventLog listener only appends to a queue (it runs under the engine lock). With a
    ``processor`` (the udev rules runner) each event is first processed as udevd would, and
    the message carries the resulting properties and tags, after the rules ran ("UDEV - the
    event which udev sends out after rule processing"); a processor returning None drops it.
    """

    #: Events waiting to be forwarded at most; past that new ones are dropped (counted in
    #: ``dropped``), as the kernel drops a multicast that finds a listener's buffer full.
    max_queue = EVENTS_KEPT

    def __init__(self, events: EventLog, sender: NetlinkSender, processor: Processor | None = None) -> None:
        self.events = events
        self.sender = sender
        self.processor = processor
        self.db = UdevDatabase()
        self._queue: deque[Uevent] = deque()
        self.dropped = 0
        self._cond = threading.Condition(threading.Lock())
        self._stopped = False
        self._unsubscribe: Callable[[], None] | None = None
        self._thread = threading.Thread(target=self._loop, name="fakesysfs-netlink", daemon=True)
        #: (SEQNUM, seconds from emission to sendto) of the last events, for measurements.
        self.latencies: deque[tuple[int, float]] = deque(maxlen=4096)

    def start(self) -> NetlinkForwarder:
        self._thread.start()
        self._unsubscribe = self.events.subscribe(self._offer)
        return self

    def _offer(self, event: Uevent) -> None:
        with self._cond:
            if len(self._queue) >= self.max_queue:
                if not self.dropped:
                    log.warning("netlink: %d events wait to be forwarded; dropping new ones (SEQNUM %d on)",
                                len(self._queue), event.seqnum)
                self.dropped += 1
                return
            self._queue.append(event)
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopped:
                    self._cond.wait()
                if not self._queue:
                    return
                event = self._queue.popleft()
            try:
                self._forward(event)
            except Exception:  # a bug here must not stop the stream
                log.exception("netlink: forwarding %s %s failed", event.action, event.devpath)

    def _forward(self, event: Uevent) -> None:
        tags: Sequence[str] = ()
        extra = None
        if self.processor is not None:
            result = self.processor(event)
            if result is None:
                return
            extra, tags = result
        props = udev_properties(event, extra, tags, self.db.usec_initialized(event))
        self.sender.send(props, tags)
        self.latencies.append((event.seqnum, time.time() - event.timestamp))

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queued event has been sent (tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cond:
                if not self._queue:
                    return True
            time.sleep(0.005)
        return False

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(5)
        self.sender.close()
