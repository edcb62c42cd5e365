"""``/sys/devices/system/memory`` and ``/sys/bus/memory`` (drivers/base/memory.c handlers)."""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ..engine.memory import (
    ONLINE_TYPE_NAMES,
    ONLINE_TYPE_WORDS,
    BlockState,
    MemoryBlock,
    OnlineType,
)
from ..errors import KernelError
from ..klib import kstrtobool, kstrtoull, sysfs_match_string
from .common import const, link, power_dir, ro, rw, uevent_attr, wo
from .tree import Dir, DirEntry, Link, MergedDir, Node, StaticDir

if TYPE_CHECKING:
    from ..engine import Kernel

MEMORY_ROOT = "/devices/system/memory"
_ONLINE_WORDS = list(ONLINE_TYPE_WORDS)


def mhp_online_type_from_str(text: str) -> OnlineType:
    """sysfs_match_string against offline/online/online_kernel/online_movable, else EINVAL."""
    return ONLINE_TYPE_WORDS[_ONLINE_WORDS[sysfs_match_string(_ONLINE_WORDS, text)]]


class MemoryBlockDir(Dir):
    """``memoryN/`` (drivers/base/memory.c memory_memblk_attrs)."""

    __slots__ = ("block", "k")

    NAMES = ("online", "phys_device", "phys_index", "power", "removable", "state", "subsystem", "uevent", "valid_zones")

    def __init__(self, k: Kernel, block: MemoryBlock) -> None:
        self.k = k
        self.block = block

    def alive(self) -> bool:
        return self.k.blocks.get(self.block.id) is self.block

    def names(self) -> Iterable[str]:
        if self.block.id in self.k.nodes[self.block.nid].blocks:
            yield f"node{self.block.nid}"
        yield from self.NAMES

    def child(self, name: str) -> Node | None:
        k, mem = self.k, self.block
        if k.blocks.get(mem.id) is not mem:
            return None
        devpath = k.memory_devpath(mem.id)
        if name == "state":
            return rw(lambda: mem.state.value + "\n", self.state_store)
        if name == "online":
            return rw(lambda: "1\n" if mem.state is not BlockState.OFFLINE else "0\n", self.online_store)
        if name == "valid_zones":
            return ro(lambda: k.valid_zones(mem) + "\n")
        if name == "phys_index":
            return ro(lambda: f"{mem.id:08x}\n")
        if name == "phys_device":
            return const("0\n")
        if name == "removable":
            return const("1\n")
        if name == "uevent":
            return uevent_attr(k, devpath, "memory")
        if name == "subsystem":
            return link(devpath, "/bus/memory")
        if name == "power":
            return power_dir(k, devpath)
        if name == f"node{mem.nid}" and mem.id in k.nodes[mem.nid].blocks:
            return link(devpath, f"/devices/system/node/node{mem.nid}")
        return None

    def state_store(self, text: str, _count: int) -> int | None:
        """R-STATE-02: parse, then EINVAL for the current state, then the operation's errno."""
        online_type = mhp_online_type_from_str(text)
        mem = self.block
        if online_type == OnlineType.OFFLINE:
            ret = self.k.device_offline(mem)
        else:
            mem.online_type = online_type  # stored even if the request then fails (R-STATE-05)
            ret = self.k.device_online(mem)
        if ret:
            raise KernelError(errno.EINVAL)
        return None

    def online_store(self, text: str, _count: int) -> int | None:
        """R-STATE-03: a bool; asking for the current state is a successful no-op."""
        value = kstrtobool(text, enable_disable=self.k.profile >= (6, 16))
        if value:
            self.k.device_online(self.block)
        else:
            self.k.device_offline(self.block)
        return None


class MemoryBlocksDir(Dir):
    """The ``memoryN`` entries of the memory root, in block-id order."""

    __slots__ = ("k",)

    def __init__(self, k: Kernel) -> None:
        self.k = k

    def names(self) -> Iterable[str]:
        return [f"memory{bid}" for bid in self.k.block_ids()]

    def child(self, name: str) -> Node | None:
        bid = _suffix_id(name, "memory")
        block = self.k.blocks.get(bid) if bid is not None else None
        return MemoryBlockDir(self.k, block) if block is not None else None


def _suffix_id(name: str, prefix: str) -> int | None:
    """``memory40`` -> 40; None unless the name is exactly the prefix plus canonical digits."""
    if not name.startswith(prefix):
        return None
    digits = name[len(prefix) :]
    if not digits.isdigit() or not digits.isascii() or (len(digits) > 1 and digits[0] == "0"):
        return None
    return int(digits)


def memory_root(k: Kernel) -> Dir:
    """``/sys/devices/system/memory`` (drivers/base/memory.c memory_root_attrs)."""

    def auto_online_blocks_store(text: str, _count: int) -> int | None:
        k.auto_online_blocks = mhp_online_type_from_str(text)
        return None

    entries: dict[str, DirEntry] = {
        "auto_online_blocks": rw(lambda: ONLINE_TYPE_NAMES[k.auto_online_blocks] + "\n", auto_online_blocks_store),
        "block_size_bytes": ro(lambda: f"{k.block_size:x}\n"),
        "power": power_dir(k, MEMORY_ROOT),
        "uevent": uevent_attr(k, MEMORY_ROOT, None),
    }
    if k.config.probe:

        def probe_store(text: str, _count: int) -> int | None:
            """R-ADD-09: one block at a block-aligned address, add_memory() without flags."""
            phys_addr = kstrtoull(text, 0)
            if phys_addr % k.block_size:
                raise KernelError(errno.EINVAL)
            k.add_memory(k.memory_add_physaddr_to_nid(phys_addr), phys_addr, k.block_size, 0)
            return None

        entries["probe"] = wo(probe_store)
    return MergedDir(StaticDir(entries), MemoryBlocksDir(k))


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
    """A bus directory without drivers of its own (memory, node, cpu, memory_tiering)."""

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


def memory_bus(k: Kernel) -> StaticDir:
    here = "/bus/memory/devices"
    devices = BusDevicesDir(
        here,
        lambda: [f"memory{bid}" for bid in k.block_ids()],
        lambda name: (k.memory_devpath(bid)
                      if (bid := _suffix_id(name, "memory")) is not None and bid in k.blocks else None),
    )
    return simple_bus(k, "memory", devices)


__all__ = ["Link", "MemoryBlockDir", "memory_bus", "memory_root"]
