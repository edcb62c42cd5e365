"""Pieces every device directory shares (R-SYS-07/08): ``power/``, ``uevent``,
``subsystem`` links, plus small constructors for attribute files."""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ..engine.events import UEVENT_ACTIONS
from ..errors import KernelError
from ..klib import sysfs_streq
from .tree import Attr, Dir, Link, Node, StaticDir, relative_link

if TYPE_CHECKING:
    from ..engine import Kernel


def ro(show: Callable[[], str], mode: int = 0o444) -> Attr:
    return Attr(mode, show, None)


def rw(show: Callable[[], str], store: Callable[[str, int], int | None], mode: int = 0o644) -> Attr:
    return Attr(mode, show, store)


def wo(store: Callable[[str, int], int | None], mode: int = 0o200) -> Attr:
    return Attr(mode, None, store)


def engine_store(fn: Callable[[str], int | None]) -> Callable[[str, int], int | None]:
    """Adapt an engine store ``fn(buf)`` (engine/, named after the kernel's store) to the
    tree's ``store(text, count)``: the tree parses nothing itself."""
    return lambda text, _count: fn(text)


def const(text: str, mode: int = 0o444) -> Attr:
    return Attr(mode, lambda: text, None)


def link(from_dir: str, target: str) -> Link:
    """A link in sysfs directory ``from_dir`` to sysfs path ``target`` (R-SYS-06)."""
    return Link(relative_link(from_dir, target))


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


def uevent_attr(k: Kernel, devpath: str, subsystem: str | None,
                env: Callable[[], list[tuple[str, str]]] | None = None, mode: int = 0o644) -> Attr:
    """A device's ``uevent`` file: reads the device variables, a write emits a synthetic
    event with that action (R-SYS-08). Devices without a subsystem emit nothing."""

    def show() -> str:
        return "".join(f"{key}={value}\n" for key, value in (env() if env else []))

    def store(text: str, count: int) -> int | None:
        action, extra = kobject_synth_uevent(text, count)
        if subsystem is not None:
            k.uevent(action, devpath, subsystem, extra + tuple(env() if env else ()))
        return None

    return Attr(mode, show if mode & 0o444 else None, store)


def power_dir(k: Kernel, devpath: str) -> StaticDir:
    """``power/`` of a device (R-SYS-07); ``control`` remembers ``on``/``auto`` per device."""

    def control_show() -> str:
        return k.power_control.get(devpath, "auto") + "\n"

    def control_store(text: str, _count: int) -> int | None:
        if sysfs_streq(text, "on"):
            k.power_control[devpath] = "on"
        elif sysfs_streq(text, "auto"):
            k.power_control.pop(devpath, None)
        else:
            raise KernelError(errno.EINVAL)
        return None

    def autosuspend_show() -> str:
        raise KernelError(errno.EIO)

    def autosuspend_store(_text: str, _count: int) -> int | None:
        raise KernelError(errno.EIO)

    return StaticDir(
        {
            "autosuspend_delay_ms": rw(autosuspend_show, autosuspend_store),
            "control": rw(control_show, control_store),
            "runtime_active_time": const("0\n"),
            "runtime_status": const("unsupported\n"),
            "runtime_suspended_time": const("0\n"),
        }
    )


class BusDevicesDir(Dir):
    """``/sys/bus/<bus>/devices``: one link per device."""

    __slots__ = ("here", "names_fn", "target_fn")

    def __init__(self, here: str, names_fn: Callable[[], Iterable[str]],
                 target_fn: Callable[[str], str | None]) -> None:
        self.here = here
        self.names_fn = names_fn
        self.target_fn = target_fn

    def names(self) -> Iterable[str]:
        return self.names_fn()

    def child(self, name: str) -> Node | None:
        target = self.target_fn(name)
        return None if target is None else link(self.here, target)


def simple_bus(k: Kernel, bus: str, devices: Dir, drivers: Dir | None = None) -> StaticDir:
    """A bus directory without drivers of its own (memory, node, cpu, memory_tiering).

    Its two stores stay here, unlike every store that reaches the kernel model (engine/):
    on a bus without drivers, drivers/base/bus.c drivers_probe_store() is only
    bus_find_device_by_name() over the bus's devices (bus_rescan_devices_helper() finds no
    driver to attach), and drivers_autoprobe is a flag no probe reads.
    """

    def drivers_probe_store(text: str, _count: int) -> int | None:
        # bus_rescan_devices_helper on a named device; no drivers exist: only the name matters.
        name = text.removesuffix("\n")
        if devices.child(name) is None:
            raise KernelError(errno.ENODEV)
        return None

    autoprobe = {"value": True}

    def autoprobe_store(text: str, _count: int) -> int | None:
        autoprobe["value"] = text[:1] != "0"  # R-BUS-03
        return None

    return StaticDir(
        {
            "devices": devices,
            "drivers": drivers if drivers is not None else StaticDir(),
            "drivers_autoprobe": rw(lambda: "1\n" if autoprobe["value"] else "0\n", autoprobe_store),
            "drivers_probe": wo(drivers_probe_store),
            "uevent": uevent_attr(k, f"/bus/{bus}", "bus", mode=0o200),
        }
    )
