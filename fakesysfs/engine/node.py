"""NUMA nodes, their zones and memory tiers (drivers/base/node.c, mm/memory-tiers.c).

Counters are in pages. A zone span is kept in memory-block ids (``span_lo``..``span_hi``
inclusive): every zone boundary the simulator meets (config.zone_limits: 16 MiB and 4 GiB on
x86_64, 2 GiB on s390x) either falls inside a boot block that spans zones (``valid_zones`` =
``none``, never offlined) or on a block boundary, so block granularity gives the kernel's
answers for ``zone_intersects``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ZoneType(StrEnum):
    """The zones of x86_64 hotplug (include/linux/mmzone.h enum zone_type), valued by the
    names the kernel prints (mm/page_alloc.c zone_names[]: ``valid_zones``, zoneinfo).
    ZONE_DEVICE is never onlined, so no block or zone here has it; it is listed because
    distribution kernels compile it in and /proc/zoneinfo and vmstat print it."""

    DMA = "DMA"
    DMA32 = "DMA32"
    NORMAL = "Normal"
    MOVABLE = "Movable"
    DEVICE = "Device"


ZONE_DMA = ZoneType.DMA
ZONE_DMA32 = ZoneType.DMA32
ZONE_NORMAL = ZoneType.NORMAL
ZONE_MOVABLE = ZoneType.MOVABLE
ZONES = (ZONE_DMA, ZONE_DMA32, ZONE_NORMAL, ZONE_MOVABLE)
KERNEL_ZONES = (ZONE_DMA, ZONE_DMA32, ZONE_NORMAL)

MEMTIER_ADISTANCE_DRAM = 576  # 4 * 128 + 64
MEMTIER_CHUNK_BITS = 7
KMEM_DEFAULT_ADISTANCE = 5 * MEMTIER_ADISTANCE_DRAM  # 2880


def memtier_id(adistance: int) -> int:
    """memory_tierT id for an abstract distance (round down to the 128 chunk)."""
    return adistance >> MEMTIER_CHUNK_BITS


@dataclass(slots=True)
class Zone:
    """One zone of one node."""

    name: ZoneType
    present: int = 0
    present_early: int = 0
    managed: int = 0
    free: int = 0
    span_lo: int = -1  # block ids, inclusive; -1 = empty
    span_hi: int = -1

    @property
    def populated(self) -> bool:
        return self.present > 0

    def empty_span(self) -> bool:
        return self.span_lo < 0

    def intersects(self, block_id: int) -> bool:
        """zone_intersects(): non-empty and overlapping the block."""
        return not self.empty_span() and self.span_lo <= block_id <= self.span_hi

    def grow_span(self, block_id: int) -> None:
        if self.empty_span():
            self.span_lo = self.span_hi = block_id
        else:
            self.span_lo = min(self.span_lo, block_id)
            self.span_hi = max(self.span_hi, block_id)


@dataclass(slots=True)
class Node:
    """A possible node. ``online`` = registered: ``nodeK/`` exists (R-NODE-01)."""

    id: int
    cpus: list[int] = field(default_factory=list)
    online: bool = False
    zones: dict[ZoneType, Zone] = field(default_factory=lambda: {z: Zone(z) for z in ZONES})
    #: Ids of all memory blocks (online or not) linked under this node.
    blocks: set[int] = field(default_factory=set)
    #: Abstract distance of the node's memory type (None: DRAM default).
    adistance: int | None = None
    #: Set while a kmem device holds the node's memory-type association.
    memtype_users: int = 0
    #: Times the node device was registered: a node offlined and onlined again is a new
    #: device, whose files are not the ones opened before (kernfs: ENODEV for those).
    generation: int = 0

    @property
    def present_pages(self) -> int:
        return sum(z.present for z in self.zones.values())

    @property
    def managed_pages(self) -> int:
        return sum(z.managed for z in self.zones.values())

    @property
    def free_pages(self) -> int:
        return sum(z.free for z in self.zones.values())

    def kernel_present(self) -> int:
        return sum(self.zones[z].present for z in KERNEL_ZONES)

    def spanned(self) -> bool:
        """node_spanned_pages() != 0."""
        return any(not z.empty_span() for z in self.zones.values())

    def tier_adistance(self) -> int:
        return MEMTIER_ADISTANCE_DRAM if self.adistance is None else self.adistance
