"""The engine's state as plain, immutable objects (what ``Simulation.blocks()`` and friends
return, and what ``fakesysfs ctl MOUNTPOINT state`` prints as JSON).

Each function takes the hotplug lock once, so one call is one consistent snapshot. Sizes are
bytes, page counts are pages of the kernel's page size, addresses are physical.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from .engine.memory import BlockState
from .engine.node import ZONE_MOVABLE

if TYPE_CHECKING:
    from .engine import Kernel
    from .engine.dax import DaxRegion, DevDax
    from .engine.memory import MemoryBlock

__all__ = ["BlockInfo", "DaxDeviceInfo", "NodeInfo", "ProducerInfo", "blocks", "dax_devices", "nodes",
           "producers", "snapshot"]


@dataclass(frozen=True, slots=True)
class BlockInfo:
    """One memory block (``memoryN``)."""

    id: int
    node: int
    #: ``offline``, ``online`` (``going-offline`` is never visible; see README).
    state: str
    #: The zone while online (``Normal``, ``Movable``, ``DMA32``..., ``none`` for a boot block
    #: spanning zones); None while offline.
    zone: str | None
    start: int
    size: int
    #: Present at boot (not hot-added).
    boot: bool
    #: Pages of the block's own memmap (memmap_on_memory), 0 on the ordinary path.
    altmap_pages: int
    present_pages: int
    managed_pages: int
    free_pages: int
    #: Pages held by kernel allocations (boot data, other blocks' memmaps): offline is EBUSY.
    unmovable_pages: int
    #: Pages pinned by a fault injection: offline is EBUSY.
    pinned_pages: int
    #: Movable pages in use: migrated away on offline (EBUSY when nowhere fits them).
    used_pages: int
    #: Poisoned pages: online is EHWPOISON.
    poisoned_pages: int
    #: Memory group id (``memory_group`` of kmem), None for boot/probe memory.
    group: int | None
    #: The dax device whose kmem range holds the block, if any.
    device: str | None

    @property
    def online(self) -> bool:
        return self.state == "online"

    @property
    def movable(self) -> bool:
        return self.zone == ZONE_MOVABLE


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One possible NUMA node and its ``meminfo`` accounting."""

    id: int
    #: Registered: ``nodeK/`` exists.
    online: bool
    cpus: tuple[int, ...]
    has_memory: bool
    has_normal_memory: bool
    #: ``MemTotal``/``MemFree``/``MemUsed`` of ``nodeK/meminfo``, in bytes.
    mem_total: int
    mem_free: int
    mem_used: int
    #: Memory blocks linked under the node.
    blocks: tuple[int, ...]
    #: ``memory_tierT`` id while the node has memory, else None.
    tier: int | None


@dataclass(frozen=True, slots=True)
class DaxDeviceInfo:
    """One dax device (``daxX.Y``) and its binding."""

    name: str
    region: int
    #: ``cxl``, ``hmem`` or ``pmem``.
    producer: str
    #: The producer device above the region (``region0``, ``hmem.1``, ``dax2.0`` of nd).
    parent: str
    #: ``kmem``, ``device_dax`` or None (unbound).
    driver: str | None
    size: int
    #: (start, end) of every range, end inclusive (``mappingN/start``, ``end``).
    ranges: tuple[tuple[int, int], ...]
    target_node: int
    numa_node: int
    memmap_on_memory: bool
    align: int
    minor: int
    #: Memory blocks present in the device's kmem ranges (empty unless bound to kmem, or
    #: while memory it could not remove stays behind).
    blocks: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ProducerInfo:
    """A producer of dax memory: a CXL region, an hmem range or a pmem namespace."""

    #: ``region0``, ``hmem.1``, ``namespace2.0``.
    name: str
    kind: str
    #: The dax region's range (for pmem: the namespace's data area).
    start: int
    size: int
    target_node: int
    region: int
    devices: tuple[str, ...]


# -- builders ---------------------------------------------------------------------------------
def _block_devices(k: Kernel) -> dict[int, str]:
    """Block id -> dax device name, for every device with kmem ranges (bound or leaked)."""
    owner: dict[int, str] = {}
    bs = k.block_size
    for dev in k.dax_devices.values():
        if dev.kmem is None and not dev.kmem_leaked:
            continue
        for i in range(len(dev.ranges)):
            aligned = k.dax_kmem_range(dev, i)
            if aligned is None:
                continue
            for bid in range(aligned[0] // bs, (aligned[1] + 1) // bs):
                if bid in k.blocks:
                    owner[bid] = dev.name
    return owner


def _block_info(k: Kernel, b: MemoryBlock, owner: dict[int, str]) -> BlockInfo:
    if b.state is BlockState.OFFLINE:
        zone = None
    else:
        zone = b.zone if b.zone is not None else "none"
    return BlockInfo(
        id=b.id, node=b.nid, state=b.state.value, zone=zone, start=b.id * k.block_size, size=k.block_size,
        boot=b.boot, altmap_pages=b.altmap, present_pages=b.present, managed_pages=b.managed,
        free_pages=b.free if b.state is not BlockState.OFFLINE else 0, unmovable_pages=b.unmovable,
        pinned_pages=b.pinned, used_pages=b.movable_used, poisoned_pages=b.poisoned,
        group=b.group.id if b.group is not None else None, device=owner.get(b.id),
    )


def blocks(k: Kernel) -> list[BlockInfo]:
    """Every present memory block, by id."""
    with k.lock:
        owner = _block_devices(k)
        return [_block_info(k, k.blocks[bid], owner) for bid in k.block_ids()]


def nodes(k: Kernel) -> list[NodeInfo]:
    """Every possible node, by id."""
    with k.lock:
        out = []
        for nid, node in sorted(k.nodes.items()):
            total_kb, free_kb = k.node_meminfo_kb(nid)
            tier = next((t for t, members in k.tiers.items() if nid in members), None)
            out.append(NodeInfo(
                id=nid, online=node.online, cpus=tuple(node.cpus), has_memory=nid in k.n_memory,
                has_normal_memory=nid in k.has_normal_memory(), mem_total=total_kb * 1024,
                mem_free=free_kb * 1024, mem_used=(total_kb - free_kb) * 1024, blocks=tuple(sorted(node.blocks)),
                tier=tier,
            ))  # fmt: skip
        return out


def _parent_name(region: DaxRegion) -> str:
    name = region.parent.rsplit("/", 1)[1]
    return name.removeprefix("dax_") if region.producer == "cxl" else name


def _dax_info(_k: Kernel, dev: DevDax, owner: dict[int, str]) -> DaxDeviceInfo:
    region = dev.region
    return DaxDeviceInfo(
        name=dev.name, region=region.id, producer=region.producer, parent=_parent_name(region),
        driver=dev.driver.name if dev.driver is not None else None, size=dev.size,
        ranges=tuple((r.start, r.end) for r in dev.ranges), target_node=dev.target_node, numa_node=dev.numa_node,
        memmap_on_memory=dev.memmap_on_memory, align=dev.align, minor=dev.minor,
        blocks=tuple(sorted(bid for bid, name in owner.items() if name == dev.name)),
    )


def dax_devices(k: Kernel) -> list[DaxDeviceInfo]:
    """Every dax device on the bus, by name (region id, then device id)."""
    with k.lock:
        owner = _block_devices(k)
        devs = sorted(k.dax_devices.values(), key=lambda d: (d.region.id, d.id))
        return [_dax_info(k, dev, owner) for dev in devs]


def producers(k: Kernel) -> list[ProducerInfo]:
    """Every producer with a dax region, in region order."""
    with k.lock:
        out = []
        for region in sorted(k.dax_regions, key=lambda r: (r.producer, r.id)):
            name = _parent_name(region)
            if region.producer == "pmem":
                name = next((p.namespace for p in k.config.pmem if p.start + p.reserve == region.start), name)
            out.append(ProducerInfo(
                name=name, kind=region.producer, start=region.start, size=region.size,
                target_node=region.target_node, region=region.id,
                devices=tuple(d.name for d in sorted(region.devices.values(), key=lambda d: d.id)),
            ))  # fmt: skip
        return out


def snapshot(k: Kernel) -> dict[str, Any]:
    """The whole state as JSON-ready data (one consistent snapshot)."""
    with k.lock:
        return {
            "seqnum": k.events.seqnum,
            "blocks": [asdict(b) for b in blocks(k)],
            "nodes": [asdict(n) for n in nodes(k)],
            "dax_devices": [asdict(d) for d in dax_devices(k)],
            "producers": [asdict(p) for p in producers(k)],
            "faults": {
                "notifier_error": dict(k.notifier_error),
                "memmap_fail_at_chunk": k.faults.memmap_fail_at_chunk,
                "probe_fail": dict(sorted(k.faults.probe_fail.items())),
            },
            "iomem": k.resources.format_iomem(),
            "kmsg": list(k.kmsg),
            "modules": [drv.name for drv in reversed(k.dax_bus_drivers)],
        }
