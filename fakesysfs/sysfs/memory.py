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
from .common import link, power_dir, ro, rw, uevent_attr, wo
from .group import Children, Entry, Group, GroupDir, Layout, attr_ro, attr_rw, suffix_id
from .tree import Dir, DirEntry, Link, MergedDir, Node, StaticDir

if TYPE_CHECKING:
    from ..engine import Kernel

MEMORY_ROOT = "/devices/system/memory"
_ONLINE_WORDS = list(ONLINE_TYPE_WORDS)


def mhp_online_type_from_str(text: str) -> OnlineType:
    """sysfs_match_string against offline/online/online_kernel/online_movable, else EINVAL."""
    return ONLINE_TYPE_WORDS[_ONLINE_WORDS[sysfs_match_string(_ONLINE_WORDS, text)]]


def state_store(d: MemoryBlockDir, text: str) -> int | None:
    """R-STATE-02: parse, then EINVAL for the current state, then the operation's errno."""
    online_type = mhp_online_type_from_str(text)
    mem = d.block
    if online_type == OnlineType.OFFLINE:
        ret = d.k.device_offline(mem)
    else:
        mem.online_type = online_type  # stored even if the request then fails (R-STATE-05)
        ret = d.k.device_online(mem)
    if ret:
        raise KernelError(errno.EINVAL)
    return None


def online_store(d: MemoryBlockDir, text: str) -> int | None:
    """R-STATE-03: a bool; asking for the current state is a successful no-op
    (drivers/base/core.c online_store)."""
    value = kstrtobool(text, enable_disable=d.k.profile >= (6, 16))
    if value:
        d.k.device_online(d.block)
    else:
        d.k.device_offline(d.block)
    return None


#: drivers/base/memory.c memory_memblk_attrs, with the files the driver core adds to every
#: device (online, uevent, power/, subsystem) and the node link that
#: do_register_memory_block_under_node() creates while the block is linked under its node.
memory_memblk_attr_group: Group[MemoryBlockDir] = Group([
    Children("node", lambda d: (d.block.nid,) if d.block.id in d.k.nodes[d.block.nid].blocks else (),
             lambda d, nid: link(d.devpath, f"/devices/system/node/node{nid}")),
    attr_rw("online", lambda d: "0\n" if d.block.state is BlockState.OFFLINE else "1\n", online_store),
    attr_ro("phys_device", lambda _d: "0\n"),
    attr_ro("phys_index", lambda d: f"{d.block.id:08x}\n"),
    Entry("power", lambda d: power_dir(d.k, d.devpath)),
    attr_ro("removable", lambda _d: "1\n"),
    attr_rw("state", lambda d: d.block.state.value + "\n", state_store),
    Entry("subsystem", lambda d: link(d.devpath, "/bus/memory")),
    Entry("uevent", lambda d: uevent_attr(d.k, d.devpath, "memory")),
    attr_ro("valid_zones", lambda d: d.k.valid_zones(d.block) + "\n"),
])


class MemoryBlockDir(GroupDir):
    """``memoryN/`` (drivers/base/memory.c memory_memblk_attr_group)."""

    __slots__ = ("block", "k")
    k: Kernel
    block: MemoryBlock

    layout = Layout(memory_memblk_attr_group)

    def __init__(self, k: Kernel, block: MemoryBlock) -> None:
        self.k = k
        self.block = block

    @property
    def devpath(self) -> str:
        return self.k.memory_devpath(self.block.id)

    def alive(self) -> bool:
        return self.k.blocks.get(self.block.id) is self.block


class MemoryBlocksDir(Dir):
    """The ``memoryN`` entries of the memory root, in block-id order."""

    __slots__ = ("k",)

    def __init__(self, k: Kernel) -> None:
        self.k = k

    def names(self) -> Iterable[str]:
        return [f"memory{bid}" for bid in self.k.block_ids()]

    def child(self, name: str) -> Node | None:
        bid = suffix_id(name, "memory")
        block = self.k.blocks.get(bid) if bid is not None else None
        return MemoryBlockDir(self.k, block) if block is not None else None


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
                      if (bid := suffix_id(name, "memory")) is not None and bid in k.blocks else None),
    )
    return simple_bus(k, "memory", devices)


__all__ = ["Link", "MemoryBlockDir", "memory_bus", "memory_root"]
