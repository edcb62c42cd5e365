"""``/sys/devices/system/memory`` and ``/sys/bus/memory`` (drivers/base/memory.c attributes).

The files are declared here; their stores are the engine's, named as in the kernel
(``Kernel.state_store``, ``online_store`` in engine/memory.py; ``auto_online_blocks_store``,
``probe_store`` in engine/hotplug.py), beside the steps they call.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..engine.memory import ONLINE_TYPE_NAMES, BlockState, MemoryBlock
from .common import BusDevicesDir, engine_store, link, power_dir, ro, rw, simple_bus, uevent_attr, wo
from .group import Children, Entry, Group, GroupDir, Layout, attr_ro, attr_rw, suffix_id
from .tree import Dir, DirEntry, Link, MergedDir, Node, StaticDir

if TYPE_CHECKING:
    from ..engine import Kernel

MEMORY_ROOT = "/devices/system/memory"


#: drivers/base/memory.c memory_memblk_attrs, with the files the driver core adds to every
#: device (online, uevent, power/, subsystem) and the node link that
#: do_register_memory_block_under_node() creates while the block is linked under its node.
memory_memblk_attr_group: Group[MemoryBlockDir] = Group([
    Children("node", lambda d: (d.block.nid,) if d.block.id in d.k.nodes[d.block.nid].blocks else (),
             lambda d, nid: link(d.devpath, f"/devices/system/node/node{nid}")),
    attr_rw("online", lambda d: "0\n" if d.block.state is BlockState.OFFLINE else "1\n",
            lambda d, buf: d.k.online_store(d.block, buf)),
    attr_ro("phys_device", lambda d: f"{d.k.arch_get_memory_phys_device(d.block.id)}\n"),
    attr_ro("phys_index", lambda d: f"{d.block.id:08x}\n"),
    Entry("power", lambda d: power_dir(d.k, d.devpath)),
    attr_ro("removable", lambda _d: "1\n"),
    attr_rw("state", lambda d: d.block.state.value + "\n", lambda d, buf: d.k.state_store(d.block, buf)),
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

    entries: dict[str, DirEntry] = {
        "auto_online_blocks": rw(lambda: ONLINE_TYPE_NAMES[k.auto_online_blocks] + "\n",
                                 engine_store(k.auto_online_blocks_store)),
        "block_size_bytes": ro(lambda: f"{k.block_size:x}\n"),
        "power": power_dir(k, MEMORY_ROOT),
        "uevent": uevent_attr(k, MEMORY_ROOT, None),
    }
    if k.config.probe:  # CONFIG_ARCH_MEMORY_PROBE
        entries["probe"] = wo(engine_store(k.probe_store))
    return MergedDir(StaticDir(entries), MemoryBlocksDir(k))


def memory_bus(k: Kernel) -> StaticDir:
    here = "/bus/memory/devices"
    devices = BusDevicesDir(
        here,
        lambda: [f"memory{bid}" for bid in k.block_ids()],
        lambda name: (k.memory_devpath(bid)
                      if (bid := suffix_id(name, "memory")) is not None and bid in k.blocks else None),
    )
    return simple_bus(k, "memory", devices)


__all__ = ["BusDevicesDir", "Link", "MemoryBlockDir", "memory_bus", "memory_root", "simple_bus"]
