"""The page allocator's derived numbers (mm/page_alloc.c, mm/show_mem.c, mm/page-writeback.c,
mm/khugepaged.c): zone spans in pfns, watermarks, lowmem reserves, ``totalreserve_pages``,
``MemAvailable``, the dirty limits and a buddy free-list shape.

Nothing here is a second bookkeeping: every number is a pure function of what the engine
keeps per zone (``present``, ``managed``, ``free``, the span in blocks) and per block, read
under the hotplug lock. The kernel recomputes these at every ``online_pages()`` /
``offline_pages()`` (``init_per_zone_wmark_min()``, then khugepaged's
``set_recommended_min_free_kbytes()``); the simulator computes them when read, which gives
the values of that recomputation (docs/proc.md "Derived numbers").

memmap_on_memory (R-MOM-03): a block's vmemmap pages are in its zone's span and ``present``
(``adjust_present_page_count()`` after onlining), never in ``managed`` or ``free``
(drivers/base/memory.c memory_block_online): the engine's ``MemoryBlock.managed`` is
``present - altmap``.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import isqrt
from typing import TYPE_CHECKING, NamedTuple

from .base import LOGLEVEL_INFO, LOGLEVEL_WARNING
from .node import ZONE_DMA, ZONE_DMA32, ZONE_MOVABLE, ZONE_NORMAL, ZoneType

if TYPE_CHECKING:
    from .base import KernelBase
    from .kernel import Kernel
    from .node import Node

#: x86-64's zones in enum order (include/linux/mmzone.h): ZONE_DEVICE is compiled in on
#: distribution kernels; the simulator never populates it. Other architectures have fewer
#: (config.arch_zones, ``Kernel.zone_names``).
ZONE_DEVICE = ZoneType.DEVICE
ALL_ZONES = (ZONE_DMA, ZONE_DMA32, ZONE_NORMAL, ZONE_MOVABLE, ZONE_DEVICE)
#: sysctl_lowmem_reserve_ratio[] defaults by zone (mm/page_alloc.c).
_RESERVE_RATIO = {ZONE_DMA: 256, ZONE_DMA32: 256, ZONE_NORMAL: 32, ZONE_MOVABLE: 0, ZONE_DEVICE: 0}
#: Zones at or below gfp_zone(GFP_USER) (ZONE_NORMAL): nr_free_buffer_pages(), khugepaged.
_LOWMEM_ZONES = (ZONE_DMA, ZONE_DMA32, ZONE_NORMAL)
_NO_MARKS = (0, 0, 0, 0)
#: How many init_per_zone_wmark_min() results VmTunables remembers.
_RECOMPUTED_KEPT = 16

#: vm sysctl defaults (mm/page_alloc.c, mm/page-writeback.c, mm/util.c).
WATERMARK_SCALE_FACTOR = 10
LOWMEM_RESERVE_RATIO = (256, 256, 32, 0, 0)  # DMA, DMA32, Normal, Movable, Device
DIRTY_RATIO = 20
DIRTY_BACKGROUND_RATIO = 10
OVERCOMMIT_RATIO = 50
#: pageblock_order and MAX_PAGE_ORDER on x86-64 (4 KiB pages).
PAGEBLOCK_ORDER = 9
MAX_PAGE_ORDER = 10
SWAP_CLUSTER_MAX = 32


class ZoneCounts(NamedTuple):
    """One zone of one online node, as the watermark code reads it (a tuple: made for every
    zone at every online and offline)."""

    nid: int
    zone: str
    managed: int
    present: int = 0


@dataclass(frozen=True, slots=True)
class Watermarks:
    """zone->_watermark[] and zone->lowmem_reserve[] (``protection`` in /proc/zoneinfo)."""

    min: int
    low: int
    high: int
    promo: int
    protection: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class VmState:
    """The derived numbers of one engine state."""

    min_free_kbytes: int
    watermarks: dict[tuple[int, str], Watermarks]
    totalreserve_pages: int
    #: Sum of every zone's low watermark (si_mem_available's wmark_low).
    wmark_low: int


def mult_frac(x: int, n: int, d: int) -> int:
    """include/linux/math.h mult_frac(): x * n / d without the overflow."""
    return (x // d) * n + ((x % d) * n) // d


def nr_free_buffer_pages(zones: list[ZoneCounts], high: dict[tuple[int, str], int]) -> int:
    """nr_free_zone_pages(gfp_zone(GFP_USER)): managed minus the high watermark of every zone
    up to ZONE_NORMAL in the zonelist, which holds every online node's zones."""
    return sum(max(z.managed - high.get((z.nid, z.zone), 0), 0) for z in zones if z.zone in _LOWMEM_ZONES)


def calculate_min_free_kbytes(zones: list[ZoneCounts], high: dict[tuple[int, str], int], thp: bool = True) -> int:
    """calculate_min_free_kbytes() then khugepaged's set_recommended_min_free_kbytes()
    (THP enabled: ``always`` or ``madvise``)."""
    free_buffer = nr_free_buffer_pages(zones, high)
    value = min(max(isqrt(free_buffer * 4 * 16), 128), 262144)
    if thp:
        nr_zones = sum(1 for z in zones if z.zone in _LOWMEM_ZONES and z.present > 0)
        pageblock = 1 << PAGEBLOCK_ORDER
        recommended = pageblock * nr_zones * 2 + pageblock * nr_zones * 3 * 3  # MIGRATE_PCPTYPES^2
        recommended = min(recommended, free_buffer // 20) * 4
        value = max(value, recommended)
    return value


def setup_per_zone_wmarks(zones: list[ZoneCounts], min_free_kbytes: int, scale_factor: int = WATERMARK_SCALE_FACTOR,
                          ) -> dict[tuple[int, str], tuple[int, int, int, int]]:
    """__setup_per_zone_wmarks(): (min, low, high, promo) per zone. ZONE_MOVABLE is neither
    lowmem nor given a share of min_free_kbytes: its min is managed/1024 clamped to 32..128
    ("mm/page_alloc: fix min_free_kbytes calculation regarding ZONE_MOVABLE")."""
    pages_min = min_free_kbytes // 4
    lowmem = sum(z.managed for z in zones if z.zone != ZONE_MOVABLE)
    out: dict[tuple[int, str], tuple[int, int, int, int]] = {}
    for z in zones:
        tmp = pages_min * z.managed // lowmem if lowmem else 0
        if z.zone == ZONE_MOVABLE:
            wmin = min(max(z.managed // 1024, SWAP_CLUSTER_MAX), 128)
        else:
            wmin = tmp
        step = max(tmp >> 2, mult_frac(z.managed, scale_factor, 10000))
        out[(z.nid, z.zone)] = (wmin, wmin + step, wmin + 2 * step, wmin + 3 * step)
    return out


def lowmem_reserve_ratio(names: tuple[ZoneType, ...] = ALL_ZONES) -> tuple[int, ...]:
    """sysctl_lowmem_reserve_ratio[MAX_NR_ZONES] of a kernel with the zones ``names``."""
    return tuple(_RESERVE_RATIO[name] for name in names)


def setup_per_zone_lowmem_reserve(zones: list[ZoneCounts], ratios: tuple[int, ...] = LOWMEM_RESERVE_RATIO,
                                  names: tuple[ZoneType, ...] = ALL_ZONES) -> dict[tuple[int, str], tuple[int, ...]]:
    """setup_per_zone_lowmem_reserve(): per node, zone i keeps (managed of zones i+1..j) /
    ratio[i] for every j > i; 0 with a zero ratio or an empty zone. ``names``: the kernel's
    zones in enum order (MAX_NR_ZONES of them)."""
    managed = {(z.nid, z.zone): z.managed for z in zones}
    index: dict[str, int] = {name: i for i, name in enumerate(names)}
    out: dict[tuple[int, str], tuple[int, ...]] = {}
    for z in zones:
        i = index[z.zone]
        ratio = ratios[i]
        reserve = [0] * len(names)
        if ratio and z.managed:
            upper = 0
            for j in range(i + 1, len(names)):
                upper += managed.get((z.nid, names[j]), 0)
                reserve[j] = upper // ratio
        out[(z.nid, z.zone)] = tuple(reserve)
    return out


def vm_state_of(zones: list[ZoneCounts], thp: bool = True, names: tuple[ZoneType, ...] = ALL_ZONES) -> VmState:
    """min_free_kbytes, watermarks, protection, totalreserve_pages for ``zones`` (every zone of
    every online node). min_free_kbytes reads the high watermarks in place; the value is the
    one a recomputation reaches from watermarks set by the previous one (two passes)."""
    high: dict[tuple[int, str], int] = {}
    min_free = calculate_min_free_kbytes(zones, high, thp)
    marks = setup_per_zone_wmarks(zones, min_free)
    high = {key: m[2] for key, m in marks.items()}
    min_free = calculate_min_free_kbytes(zones, high, thp)
    marks = setup_per_zone_wmarks(zones, min_free)
    reserves = setup_per_zone_lowmem_reserve(zones, lowmem_reserve_ratio(names), names)
    index: dict[str, int] = {name: i for i, name in enumerate(names)}
    watermarks: dict[tuple[int, str], Watermarks] = {}
    totalreserve = 0
    for z in zones:
        key = (z.nid, z.zone)
        wmin, low, hi, promo = marks[key]
        protection = reserves[key]
        watermarks[key] = Watermarks(wmin, low, hi, promo, protection)
        # calculate_totalreserve_pages(): the largest reserve above the zone plus high, at
        # most the zone's managed pages.
        totalreserve += min(max(protection[index[z.zone]:], default=0) + hi, z.managed)
    return VmState(min_free, watermarks, totalreserve, sum(m.low for m in watermarks.values()))


def recommended_min_free_kbytes(zones: list[ZoneCounts], high: dict[tuple[int, str], int] | None = None,
                                marks: dict[tuple[int, str], tuple[int, int, int, int]] | None = None) -> int:
    """khugepaged's set_recommended_min_free_kbytes() value (mm/khugepaged.c): two
    pageblocks per populated zone up to ZONE_NORMAL, plus MIGRATE_PCPTYPES squared more,
    at most 5 % of nr_free_buffer_pages()."""
    nr_zones = sum(1 for z in zones if z.zone in _LOWMEM_ZONES and z.present > 0)
    pageblock = 1 << PAGEBLOCK_ORDER
    recommended = pageblock * nr_zones * 2 + pageblock * nr_zones * 3 * 3
    if marks is not None:
        free_buffer = sum(max(z.managed - marks.get((z.nid, z.zone), _NO_MARKS)[2], 0)
                          for z in zones if z.zone in _LOWMEM_ZONES)
    else:
        free_buffer = nr_free_buffer_pages(zones, high or {})
    return min(recommended, free_buffer // 20) * 4


class VmTunables:
    """The vm sysctls (/proc/sys/vm) and what the page allocator last set from them: the
    kernel keeps min_free_kbytes, every zone's watermarks and lowmem reserves and
    totalreserve_pages as state, recomputed by init_per_zone_wmark_min() at boot and at
    every online_pages()/offline_pages(), and by the sysctl handlers. A zone the last
    recomputation did not see (a node onlined by a memory add since) keeps 0, as a new
    pgdat's zones do until the next one."""

    def __init__(self, names: tuple[ZoneType, ...] = ALL_ZONES) -> None:
        #: The kernel's zones in enum order (config.arch_zones).
        self.names = names
        self._index: dict[str, int] = {name: i for i, name in enumerate(names)}
        self.min_free_kbytes = 0
        #: What a write to min_free_kbytes asked for (-1: never written).
        self.user_min_free_kbytes = -1
        self.watermark_scale_factor = WATERMARK_SCALE_FACTOR
        self.lowmem_reserve_ratio = list(lowmem_reserve_ratio(names))
        self.dirty_ratio = DIRTY_RATIO
        self.dirty_background_ratio = DIRTY_BACKGROUND_RATIO
        self.overcommit_ratio = OVERCOMMIT_RATIO
        #: sysctl_compact_memory (mm/compaction.c): the last value written; its handler
        #: refuses any but 1 (6.1+).
        self.compact_memory = 0
        #: zone->_watermark[] and ->lowmem_reserve[] as last set, by (node, zone).
        self.marks: dict[tuple[int, str], tuple[int, int, int, int]] = {}
        self.reserves: dict[tuple[int, str], tuple[int, ...]] = {}
        self.totalreserve_pages = 0
        #: Transparent huge pages enabled (always/madvise): khugepaged raises min_free_kbytes.
        self.thp = True
        #: init_per_zone_wmark_min()'s latest results by what they were computed from.
        self._recomputed: dict[tuple[object, ...], tuple[int, dict[tuple[int, str], tuple[int, int, int, int]],
                                                        dict[tuple[int, str], tuple[int, ...]], int]] = {}

    # -- mm/page_alloc.c ---------------------------------------------------------------------
    # Each step below updates what it sets in the kernel; totalreserve_pages, which the
    # kernel recomputes after each, is computed once when the whole operation is done (no
    # reader runs in between: the hotplug lock is held).
    def calculate_min_free_kbytes(self, k: KernelBase, zones: list[ZoneCounts]) -> None:
        """A user value at least as large as the new one is kept, and the kernel says so
        (pr_warn in mm/page_alloc.c calculate_min_free_kbytes())."""
        marks = self.marks
        free_buffer = sum(max(z.managed - marks.get((z.nid, z.zone), _NO_MARKS)[2], 0)
                          for z in zones if z.zone in _LOWMEM_ZONES)
        new = isqrt(free_buffer * 4 * 16)
        if new > self.user_min_free_kbytes:
            self.min_free_kbytes = min(max(new, 128), 262144)
        else:
            k.printk(f"min_free_kbytes is not updated to {new} because user defined value "
                     f"{self.user_min_free_kbytes} is preferred", LOGLEVEL_WARNING)

    def setup_per_zone_wmarks(self, zones: list[ZoneCounts]) -> None:
        self.marks.update(setup_per_zone_wmarks(zones, self.min_free_kbytes, self.watermark_scale_factor))

    def setup_per_zone_lowmem_reserve(self, zones: list[ZoneCounts]) -> None:
        self.reserves.update(setup_per_zone_lowmem_reserve(zones, tuple(self.lowmem_reserve_ratio), self.names))

    def calculate_totalreserve_pages(self, zones: list[ZoneCounts]) -> None:
        total = 0
        for z in zones:
            key = (z.nid, z.zone)
            protection = self.reserves.get(key, ())
            high = self.marks.get(key, _NO_MARKS)[2]
            total += min(max(protection[self._index[z.zone]:], default=0) + high, z.managed)
        self.totalreserve_pages = total

    def init_per_zone_wmark_min(self, k: KernelBase) -> None:
        """init_per_zone_wmark_min(), then khugepaged_min_free_kbytes_update().

        Every online and offline runs this, so its result is remembered by everything it
        reads (the zones' managed pages, the tunables, the lowmem zones' previous high
        watermarks): an agent cycling blocks between two states recomputes nothing. Not
        when a user set min_free_kbytes: then the step may log, which a replay would not."""
        if self.user_min_free_kbytes >= 0:
            self._init_per_zone_wmark_min(k, zone_counts(k))
            return
        # What zone_counts() would hold, flat (built for every online/offline: kept cheap).
        online = tuple(k.online_nodes())
        counts: list[int] = []
        marks = self.marks
        for nid in online:
            node_zones = k.nodes[nid].zones
            for name in self.names:
                zone = node_zones.get(name)
                if zone is None:
                    counts += (0, 0, 0)
                else:
                    high = marks.get((nid, name), _NO_MARKS)[2] if name in _LOWMEM_ZONES else 0
                    counts += (zone.managed, zone.present, high)
        key = (online, tuple(counts), self.min_free_kbytes, self.watermark_scale_factor,
               tuple(self.lowmem_reserve_ratio), self.thp)
        done = self._recomputed.get(key)
        if done is None:
            zones = zone_counts(k)
            self._init_per_zone_wmark_min(k, zones)
            done = (self.min_free_kbytes, {(z.nid, z.zone): self.marks[(z.nid, z.zone)] for z in zones},
                    {(z.nid, z.zone): self.reserves[(z.nid, z.zone)] for z in zones}, self.totalreserve_pages)
            if len(self._recomputed) >= _RECOMPUTED_KEPT:
                del self._recomputed[next(iter(self._recomputed))]
            self._recomputed[key] = done
            return
        self.min_free_kbytes, marks, reserves, self.totalreserve_pages = done
        self.marks.update(marks)
        self.reserves.update(reserves)

    def _init_per_zone_wmark_min(self, k: KernelBase, zones: list[ZoneCounts]) -> None:
        self.calculate_min_free_kbytes(k, zones)
        self.setup_per_zone_wmarks(zones)
        self.setup_per_zone_lowmem_reserve(zones)
        if self.thp:
            recommended = recommended_min_free_kbytes(zones, marks=self.marks)
            if recommended > self.min_free_kbytes:
                if self.user_min_free_kbytes >= 0:
                    k.printk(f"raising min_free_kbytes from {self.min_free_kbytes} to {recommended} "
                             "to help transparent hugepage allocations", LOGLEVEL_INFO)
                self.min_free_kbytes = recommended
                self.setup_per_zone_wmarks(zones)  # (unchanged min_free_kbytes: the same marks)
        self.calculate_totalreserve_pages(zones)

    # -- the sysctl handlers -----------------------------------------------------------------
    def min_free_kbytes_sysctl_handler(self, k: KernelBase, value: int) -> None:
        """min_free_kbytes_sysctl_handler(): kept as the user's, watermarks follow now."""
        self.min_free_kbytes = self.user_min_free_kbytes = value
        zones = zone_counts(k)
        self.setup_per_zone_wmarks(zones)
        self.calculate_totalreserve_pages(zones)

    def watermark_scale_factor_sysctl_handler(self, k: KernelBase, value: int) -> None:
        self.watermark_scale_factor = value
        zones = zone_counts(k)
        self.setup_per_zone_wmarks(zones)
        self.calculate_totalreserve_pages(zones)

    def lowmem_reserve_ratio_sysctl_handler(self, k: KernelBase, values: list[int]) -> None:
        """Ratios below 1 become 0 (no reserve); the zones' reserves follow now."""
        for i, value in enumerate(values[: len(self.lowmem_reserve_ratio)]):
            self.lowmem_reserve_ratio[i] = value if value >= 1 else 0
        zones = zone_counts(k)
        self.setup_per_zone_lowmem_reserve(zones)
        self.calculate_totalreserve_pages(zones)

    def state(self, k: KernelBase) -> VmState:
        """What the readers see: the stored values of every zone of the online nodes."""
        watermarks: dict[tuple[int, str], Watermarks] = {}
        for z in zone_counts(k):
            key = (z.nid, z.zone)
            wmin, low, high, promo = self.marks.get(key, (0, 0, 0, 0))
            watermarks[key] = Watermarks(wmin, low, high, promo, self.reserves.get(key, (0,) * len(self.names)))
        return VmState(self.min_free_kbytes, watermarks, self.totalreserve_pages,
                       sum(m.low for m in watermarks.values()))


def zone_counts(k: KernelBase) -> list[ZoneCounts]:
    """Every zone of every online node (for_each_zone walks the online pgdats), in order."""
    out: list[ZoneCounts] = []
    for nid in k.online_nodes():
        node = k.nodes[nid]
        for name in k.vm.names:
            zone = node.zones.get(name)
            out.append(ZoneCounts(nid, name, zone.managed if zone else 0, zone.present if zone else 0))
    return out


def vm_state(k: KernelBase) -> VmState:
    """The page allocator's numbers as the engine last set them (call under ``k.lock``)."""
    return k.vm.state(k)


def si_mem_available(free: int, state: VmState, pagecache: int = 0, reclaimable: int = 0) -> int:
    """si_mem_available() in pages (mm/show_mem.c)."""
    available = free - state.totalreserve_pages
    available += pagecache - min(pagecache // 2, state.wmark_low)
    available += reclaimable - min(reclaimable // 2, state.wmark_low)
    return max(available, 0)


def dirty_limits(free: int, state: VmState, file_lru: int = 0, dirty_ratio: int = DIRTY_RATIO,
                 background_ratio: int = DIRTY_BACKGROUND_RATIO) -> tuple[int, int]:
    """global_dirty_limits() -> (nr_dirty_threshold, nr_dirty_background_threshold)
    (mm/page-writeback.c global_dirtyable_memory, domain_dirty_limits)."""
    available = free - min(free, state.totalreserve_pages) + file_lru + 1
    ratio = dirty_ratio * 4096 // 100
    bg_ratio = background_ratio * 4096 // 100
    thresh = ratio * available // 4096
    bg = bg_ratio * available // 4096
    if bg >= thresh:
        bg = thresh // 2
    return thresh, bg


def vm_commit_limit(totalram: int, overcommit_ratio: int = OVERCOMMIT_RATIO) -> int:
    """vm_commit_limit() in pages (mm/util.c): no hugetlb pages, no swap."""
    return totalram * overcommit_ratio // 100


# -- zone spans in pfns ---------------------------------------------------------------------
def _zone_pfn_limits(k: Kernel, zone_name: ZoneType) -> tuple[int, int]:
    """The physical pfn range a zone may cover on the configured architecture (its
    zone_sizes_init(): ``Kernel.zone_ranges``; ZONE_MOVABLE: anywhere)."""
    ps = k.page_size
    for name, lo, hi in k.zone_ranges:
        if name == zone_name:
            return lo // ps, min(hi // ps, 1 << 52)
    return 0, 1 << 52


def _edge_pfn(k: Kernel, node: Node, zone_name: ZoneType, bid: int, first: bool) -> int:
    """The first (last + 1) pfn of ``zone_name`` in block ``bid``, an edge of the zone's span:
    a whole block unless it is a boot block with holes or zone boundaries, whose pages are
    where firmware put the node's RAM."""
    ppb = k.pages_per_block
    lo, hi = bid * ppb, (bid + 1) * ppb
    block = k.blocks.get(bid)
    if block is None or not block.boot or (block.zone_pages is None and block.present == ppb):
        return lo if first else hi
    zlo, zhi = _zone_pfn_limits(k, zone_name)
    ps = k.page_size
    pieces = []
    for ncfg in k.config.nodes:
        if ncfg.id != node.id:
            continue
        for r in ncfg.memory:
            a, b = max(lo, zlo, -(-r.start // ps)), min(hi, zhi, r.end // ps)
            if a < b:
                pieces.append((a, b))
    if not pieces:
        return lo if first else hi
    return min(a for a, _ in pieces) if first else max(b for _, b in pieces)


def zone_span(k: Kernel, node: Node, zone_name: ZoneType) -> tuple[int, int]:
    """(zone_start_pfn, spanned_pages); (0, 0) for a zone that spans nothing.

    move_pfn_range_to_zone() -> resize_zone_range() grows the span over whole blocks (the
    vmemmap pages of memmap_on_memory included); shrink_zone_span() trims it only at its
    edges, so a block offlined in the middle leaves a hole that spanned keeps."""
    zone = node.zones.get(zone_name)
    if zone is None or zone.empty_span():
        return 0, 0
    start = _edge_pfn(k, node, zone_name, zone.span_lo, True)
    end = _edge_pfn(k, node, zone_name, zone.span_hi, False)
    return start, end - start


# -- the buddy free lists ---------------------------------------------------------------------
def _buddy_chunks(start: int, end: int, counts: list[int]) -> None:
    """Free [start, end) as online_pages_range() does: chunks of order min(MAX_PAGE_ORDER,
    __ffs(pfn)) that fit."""
    pfn = start
    while pfn < end:
        order = MAX_PAGE_ORDER
        if pfn:
            order = min(order, (pfn & -pfn).bit_length() - 1)
        while pfn + (1 << order) > end:
            order -= 1
        counts[order] += 1
        pfn += 1 << order


def free_area(k: Kernel, node: Node, zone_name: ZoneType) -> list[int]:
    """zone->free_area[order].nr_free for orders 0..MAX_PAGE_ORDER, summing to the zone's free
    pages. A whole online block frees its pages after the vmemmap and the pages in use
    (onlining with memmap_on_memory gives one order-9 and 31 order-10 chunks per 128 MiB
    block); the rest of the zone's free pages (boot blocks with holes) are split in powers
    of two. The shape is the simulator's; only the sum is the kernel's."""
    counts = [0] * (MAX_PAGE_ORDER + 1)
    zone = node.zones.get(zone_name)
    if zone is None or not zone.free:
        return counts
    ppb = k.pages_per_block
    cache: dict[int, list[int]] = {}
    accounted = 0
    for block in k.zone_blocks(node, zone_name):
        if block.present != ppb or block.zone_pages is not None or block.free <= 0:
            continue
        used = block.present - block.free
        per = cache.get(used)
        if per is None:
            per = [0] * (MAX_PAGE_ORDER + 1)
            _buddy_chunks(used, ppb, per)  # block starts are aligned beyond MAX_PAGE_ORDER
            cache[used] = per
        for order, n in enumerate(per):
            counts[order] += n
        accounted += block.free
    rest = zone.free - accounted
    counts[MAX_PAGE_ORDER] += rest >> MAX_PAGE_ORDER
    for order in range(MAX_PAGE_ORDER):
        counts[order] += rest >> order & 1
    return counts


def pageblock_types(k: Kernel, node: Node, zone_name: ZoneType) -> tuple[int, int]:
    """(Unmovable, Movable) pageblocks of a zone as pagetypeinfo_showblockcount() counts
    them: every pageblock that starts a walk step from zone_start_pfn in an online section
    of the zone (a hole inside an online boot block counts). The vmemmap pageblocks of a
    memmap_on_memory block are MIGRATE_UNMOVABLE (mhp_init_memmap_on_memory), and so are,
    in this model, the pageblocks holding a block's unmovable kernel pages; the rest are
    Movable (online_pages() releases them as MIGRATE_MOVABLE)."""
    zone = node.zones.get(zone_name)
    start, spanned = zone_span(k, node, zone_name)
    if zone is None or not spanned:
        return 0, 0
    end = start + spanned
    ppb = k.pages_per_block
    step = 1 << PAGEBLOCK_ORDER
    zlo, zhi = _zone_pfn_limits(k, zone_name)
    unmovable = movable = 0
    for bid in range(zone.span_lo, zone.span_hi + 1):
        block = k.blocks.get(bid)
        if block is None or block.nid != node.id or not block.online:
            continue
        if block.zone_pages is not None:
            if zone_name not in block.zone_pages:
                continue
        elif block.zone != zone_name:
            continue
        a, b = max(bid * ppb, start, zlo), min((bid + 1) * ppb, end, zhi)
        if a >= b:
            continue
        # The walk visits start, then every pageblock boundary after it.
        first = a if a == start else -(-a // step) * step
        blocks = 0 if first >= b else (b - 1) // step - first // step + 1
        kernel = -(-block.altmap // step) + -(-block.unmovable // step)
        if block.zone_pages is not None and zone_name != list(block.zone_pages)[-1]:
            kernel = 0  # the engine keeps a zone-spanning boot block's used pages in its last zone
        kernel = min(kernel, blocks)
        unmovable += kernel
        movable += blocks - kernel
    return unmovable, movable


def free_pages_blocks(counts: list[int]) -> int:
    """NR_FREE_PAGES_BLOCKS: free pages in chunks of at least a pageblock."""
    return sum(n << order for order, n in enumerate(counts) if order >= PAGEBLOCK_ORDER)


# -- the direct map (arch/x86/mm/init.c split_mem_range) -------------------------------------
_PMD = 2 << 20
_PUD = 1 << 30
ISA_END_ADDRESS = 1 << 20


def split_mem_range(start: int, end: int, out: dict[int, int]) -> None:
    """Bytes of [start, end) mapped with 4 KiB, 2 MiB and 1 GiB pages (direct_gbpages)."""
    def up(x: int, a: int) -> int:
        return -(-x // a) * a

    def save(size: int, a: int, b: int) -> int:
        """Map [a, b) with ``size`` pages if not empty; the new position."""
        if a >= b:
            return -1
        out[size] = out.get(size, 0) + b - a
        return b

    pos = start
    pos = max(pos, save(4096, pos, min(up(pos, _PMD), end)))
    pos = max(pos, save(_PMD, up(pos, _PMD), min(up(pos, _PUD), end // _PMD * _PMD)))
    pos = max(pos, save(_PUD, up(pos, _PUD), end // _PUD * _PUD))
    pos = max(pos, save(_PMD, up(pos, _PMD), end // _PMD * _PMD))
    save(4096, pos, end)


def direct_map(k: Kernel) -> dict[int, int]:
    """DirectMap4k/2M/1G in bytes: the first MiB in 4 KiB pages (init_mem_mapping maps the ISA
    range first), then every ``System RAM`` resource as init_memory_mapping() splits it at
    boot and in arch_add_memory(); kernel_physical_mapping_remove() takes it back on
    removal. Later splits (kernel text, set_memory_*) are not modelled."""
    out: dict[int, int] = {4096: 0, _PMD: 0, _PUD: 0}
    ram = sorted((r.start, r.end + 1) for _, r in k.resources.root.walk() if r.name.startswith("System RAM"))
    if any(s < ISA_END_ADDRESS for s, _ in ram):
        out[4096] += ISA_END_ADDRESS
    for s, e in ram:
        s = max(s, ISA_END_ADDRESS)
        if s < e:
            split_mem_range(s, e, out)
    return out


__all__ = [
    "ALL_ZONES",
    "lowmem_reserve_ratio",
    "VmState",
    "VmTunables",
    "Watermarks",
    "ZONE_DEVICE",
    "ZoneCounts",
    "direct_map",
    "dirty_limits",
    "free_area",
    "free_pages_blocks",
    "pageblock_types",
    "si_mem_available",
    "split_mem_range",
    "vm_commit_limit",
    "vm_state",
    "vm_state_of",
    "zone_span",
]
