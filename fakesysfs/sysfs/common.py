"""Pieces every device directory shares (R-SYS-07/08): ``power/``, ``uevent``,
``subsystem`` links, plus small constructors for attribute files."""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ..engine.events import kobject_synth_uevent
from ..errors import KernelError
from .tree import Attr, Dir, Link, Node, StaticDir, relative_link

if TYPE_CHECKING:
    from ..engine import Kernel

__all__ = ["BusDevicesDir", "const", "engine_store", "kobject_synth_uevent", "link", "power_dir", "ro", "rw",
           "simple_bus", "uevent_attr", "wo"]


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


def uevent_attr(k: Kernel, devpath: str, subsystem: str | None,
                env: Callable[[], list[tuple[str, str]]] | None = None, mode: int = 0o644) -> Attr:
    """A device's ``uevent`` file: reads the device variables, a write emits a synthetic
    event with that action (R-SYS-08). Devices without a subsystem emit nothing."""

    def show() -> str:
        return "".join(f"{key}={value}\n" for key, value in (env() if env else []))

    def store(text: str, count: int) -> int | None:
        k.uevent_store(devpath, subsystem, env, text, count)
        return None

    return Attr(mode, show if mode & 0o444 else None, store)


def power_dir(k: Kernel, devpath: str) -> StaticDir:
    """``power/`` of a device (R-SYS-07); ``control`` remembers ``on``/``auto`` per device."""

    def control_show() -> str:
        return k.power_control.get(devpath, "auto") + "\n"

    def autosuspend_show() -> str:
        raise KernelError(errno.EIO)

    def autosuspend_store(_text: str, _count: int) -> int | None:
        raise KernelError(errno.EIO)

    return StaticDir(
        {
            "autosuspend_delay_ms": rw(autosuspend_show, autosuspend_store),
            "control": rw(control_show, lambda text, _count: k.control_store(devpath, text)),
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
