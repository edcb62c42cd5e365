"""The simulated kernel: boot from a ``BootConfig``, hold all state, serialize every change.

``Kernel`` is the engine's one public object. It composes the per-concept mixins (memory
blocks, hotplug) around the state the kernel keeps in its hotplug and dax globals. Every
mutation runs under ``Kernel.lock`` (device_hotplug_lock, R-SYS-05); the attribute tree
takes the same lock for every read and store, so nothing half-done is ever visible.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..config import (
    BootConfig,
    CxlRegionConfig,
    HmemConfig,
    PmemConfig,
    arch_zones,
    profile_version,
    zone_limits,
)
from ..errors import KernelError
from ..klib import sysfs_streq
from .base import LOGLEVEL_DEBUG, LOGLEVEL_ERR, LOGLEVEL_INFO, LOGLEVEL_WARNING
from .events import EventLog, Uevent, kobject_synth_uevent
from .firmware import FirmwareMixin
from .hotplug import SECTION_SIZE, MemmapOnMemory, gc_paused
from .memory import (
    ONLINE_TYPE_WORDS,
    BlockState,
    MemoryBlock,
    MemoryGroup,
    OnlinePolicy,
    OnlineType,
)
from .node import (
    ZONE_MOVABLE,
    ZONE_NORMAL,
    Node,
    ZoneType,
    memtier_id,
)
from .page_alloc import VmTunables
from .resource import ResourceTree

#: The kernel log kept, in bytes of text: 1 << CONFIG_LOG_BUF_SHIFT (17, x86_64 defconfig).
KMSG_BYTES = 1 << 17
#: printk's lines as they are printed (``fakesysfs mount -v``): the log a user tails.
_kmsg_log = logging.getLogger("fakesysfs.trace.kmsg")


@dataclass(frozen=True, slots=True)
class KmsgRecord:
    """One message of the kernel log as /dev/kmsg has it (kernel/printk/printk.c)."""

    seq: int
    level: int
    #: Microseconds since the simulated kernel booted.
    ts_usec: int
    #: The full line: the device prefix of dev_printk() and the message.
    text: str


@dataclass(slots=True)
class Faults:
    """Simulator fault hooks for failures the kernel has no debugfs knob for (docs/abi.md,
    "Fault injection")."""

    #: The first memory add that reaches this chunk (block index within the add) fails there
    #: with ENOMEM; the hook then disarms. Adds with fewer chunks leave it armed.
    memmap_fail_at_chunk: int | None = None
    #: Dax device name -> errno the next probe of that device fails with (any driver), once.
    probe_fail: dict[str, int] = field(default_factory=dict)


class Kernel(FirmwareMixin):
    """The engine. Construct from a BootConfig; mutate through kernel-named methods."""

    def __init__(self, config: BootConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        #: printk's log_wait (kernel/printk/printk.c): notified under ``lock`` on every
        #: message; a /dev/kmsg reader waits on it, the lock released while it waits.
        self.log_wait = threading.Condition(self.lock)
        self.events = EventLog()
        #: The kernel log, oldest first: the latest ``KMSG_BYTES`` of text (see ``printk``).
        self.kmsg: list[str] = []
        #: The same messages with their level, sequence number and time (see ``printk``).
        self.kmsg_records: list[KmsgRecord] = []
        self._boot_ns = time.monotonic_ns()
        #: Lines printed since boot (``kmsg`` keeps the latest of them): a position in the log.
        self.kmsg_count = 0
        self._kmsg_bytes = 0
        self.profile = profile_version(config.kernel_profile)
        self.block_size = config.block_size
        self.page_size = config.page_size
        self.struct_page_size = config.struct_page_size
        self.pages_per_block = config.block_size // config.page_size
        self.memmap_pages_per_section = -(-(SECTION_SIZE // config.page_size) * config.struct_page_size
                                          // config.page_size)
        self.memmap_mode = MemmapOnMemory(config.memmap_on_memory)
        self.online_policy = OnlinePolicy(config.online_policy)
        self.auto_movable_ratio = config.auto_movable_ratio
        self.auto_movable_numa_aware = config.auto_movable_numa_aware
        self.auto_online_blocks = ONLINE_TYPE_WORDS[config.auto_online_blocks]
        self.movable_node = config.movable_node
        self.max_physmem_bits = config.max_physmem_bits
        self.possible_nodes: set[int] = set(config.possible())
        self.nodes: dict[int, Node] = {nid: Node(nid) for nid in sorted(self.possible_nodes)}
        self.blocks: dict[int, MemoryBlock] = {}
        self._sorted_ids: list[int] | None = None
        self.memory_groups: dict[int, MemoryGroup] = {}
        self.resources = ResourceTree((1 << config.max_physmem_bits) - 1)
        self.n_memory: set[int] = set()
        self.n_normal_memory: set[int] = set()
        self.tiers: dict[int, set[int]] = {}
        self.notifier_error = {"MEM_GOING_ONLINE": 0, "MEM_GOING_OFFLINE": 0}
        self.faults = Faults()
        #: NR_MEMMAP (hot-added sections) and NR_MEMMAP_BOOT (boot sections), in pages
        #: (mm/vmstat.c memmap_pages_add, memmap_boot_pages_add).
        self.nr_memmap_pages = 0
        self.nr_memmap_boot_pages = 0
        if self.memmap_mode == "force":
            # set_memmap_mode() (mm/memory_hotplug.c), parsing memory_hotplug.memmap_on_memory=force.
            waste = self.memory_block_memmap_on_memory_pages() - -(-self.memory_block_memmap_size() // self.page_size)
            self.printk(f"Memory hotplug will waste {waste} pages in each memory block", LOGLEVEL_INFO)
        #: power/control values other than "auto", by devpath (R-SYS-07).
        self.power_control: dict[str, str] = {}
        #: The zones of this architecture's kernel, in enum order (config.arch_zones).
        self.zone_names = tuple(ZoneType(name) for name in arch_zones(config.arch))
        self.vm = VmTunables(self.zone_names)
        #: (zone, start, end) of boot RAM's zones on the configured architecture.
        self.zone_ranges: list[tuple[ZoneType, int, int]] = []
        lo = 0
        for zone_name, end in zone_limits(config.arch, config.ram_start()):
            self.zone_ranges.append((ZoneType(zone_name), lo, end))
            lo = end
        with gc_paused():
            self._boot()
            self.vm.init_per_zone_wmark_min(self)  # the postcore initcall, then khugepaged's start
            self.dax_boot()
        cpus = self.all_cpus()
        self.nr_cpu_ids = (max(cpus) + 1) if cpus else 1

    # -- boot ---------------------------------------------------------------------------------
    def _boot(self) -> None:
        cfg = self.config
        bs = self.block_size
        for ncfg in cfg.nodes:
            node = self.nodes[ncfg.id]
            node.cpus = sorted(ncfg.cpus)
            node.adistance = ncfg.adistance
            # Blocks that one zone of one range covers entirely are identical: they boot as
            # runs (64 TiB of boot RAM is 512 Ki blocks). The others (range edges, zone
            # boundaries, holes) collect their pages per zone first.
            per_block: dict[int, dict[ZoneType, int]] = {}
            runs: list[tuple[int, int, ZoneType]] = []
            for rng in sorted(ncfg.memory, key=lambda r: r.start):
                self.resources.insert_boot(rng.start, rng.size, "System RAM", busy=True)
                for zone_name, zlo, zhi in self.zone_ranges:
                    lo, hi = max(rng.start, zlo), min(rng.end, zhi)
                    first, last = -(-lo // bs), hi // bs  # the whole blocks in [lo, hi)
                    if first < last:
                        runs.append((first, last, zone_name))
                        self._boot_pages(per_block, zone_name, lo, first * bs)
                        self._boot_pages(per_block, zone_name, last * bs, hi)
                    else:
                        self._boot_pages(per_block, zone_name, lo, hi)
            # In block order, as the kernel registers them (and k.blocks iterates); a single
            # block (last -1) takes its zones from per_block, not from the tuple.
            pieces = sorted([*((first, last, zone) for first, last, zone in runs),
                             *((bid, -1, ZONE_NORMAL) for bid in per_block)])
            for first, last, zone_name in pieces:
                if last < 0:
                    self._boot_block(node, first, per_block[first])
                else:
                    self._boot_run(node, first, last, zone_name)
            for bid in sorted([*ncfg.offline_blocks, *ncfg.movable_blocks]):
                self._boot_offline(node, self.blocks[bid])
            for bid in sorted(ncfg.movable_blocks):
                self._boot_online_movable(node, self.blocks[bid])
            nr_blocks = len(per_block) + sum(last - first for first, last, _ in runs)
            if nr_blocks or node.cpus:
                node.online = True
            self.nr_memmap_boot_pages += nr_blocks * (bs // SECTION_SIZE) * self.memmap_pages_per_section
        for node in self.nodes.values():
            if node.present_pages:
                self.n_memory.add(node.id)
                self.tiers.setdefault(memtier_id(node.tier_adistance()), set()).add(node.id)
            if node.kernel_present():
                self.n_normal_memory.add(node.id)

    def _boot_pages(self, per_block: dict[int, dict[ZoneType, int]], zone_name: ZoneType, lo: int, hi: int) -> None:
        """Pages of [lo, hi) (in one zone) per block, for blocks not wholly in that zone."""
        bs = self.block_size
        addr = lo
        while addr < hi:
            bid = addr // bs
            nxt = min(hi, (bid + 1) * bs)
            zones = per_block.setdefault(bid, {})
            zones[zone_name] = zones.get(zone_name, 0) + (nxt - addr) // self.page_size
            addr = nxt

    def _boot_run(self, node: Node, first: int, last: int, zone_name: ZoneType) -> None:
        """``_boot_block`` for blocks [first, last), each wholly in ``zone_name``."""
        pages = self.pages_per_block
        used = pages * self.config.boot_used_percent // 100
        unmovable, movable_used = (used, 0) if self.config.boot_unmovable else (0, used)
        count = last - first
        zone = node.zones[zone_name]
        zone.present += count * pages
        zone.present_early += count * pages
        zone.managed += count * pages
        zone.free += count * (pages - used)
        zone.grow_span(first)
        zone.grow_span(last - 1)
        nid, online = node.id, BlockState.ONLINE
        self.blocks.update({
            bid: MemoryBlock(bid, nid, online, pages, boot=True, zone=zone_name, unmovable=unmovable,
                             movable_used=movable_used)
            for bid in range(first, last)
        })
        node.blocks.update(range(first, last))

    def _boot_block(self, node: Node, bid: int, zones: dict[ZoneType, int]) -> None:
        present = sum(zones.values())
        used = present * self.config.boot_used_percent // 100
        block = MemoryBlock(bid, node.id, BlockState.ONLINE, present, boot=True)
        if len(zones) > 1:
            block.zone_pages = dict(zones)
            block.unmovable = used
        else:
            block.zone = next(iter(zones))
            if self.config.boot_unmovable:
                block.unmovable = used
            else:
                block.movable_used = used
        for i, (zone_name, pages) in enumerate(zones.items()):
            zone = node.zones[zone_name]
            zone.present += pages
            zone.present_early += pages
            zone.managed += pages
            zone.free += pages - (used if i == len(zones) - 1 else 0)
            zone.grow_span(bid)
        self.blocks[bid] = block
        node.blocks.add(bid)

    def _boot_offline(self, node: Node, block: MemoryBlock) -> None:
        """A boot block the topology has offline after boot (``offline_blocks``): what
        offline_pages() leaves, without its events or checks (the topology's checks said it
        is one whole block in one zone): its pages leave the zone, whose span shrinks at an
        edge (shrink_zone_span), and the block holds no allocations. In ascending block
        order, a run of offline blocks at a zone's edge shrinks the span past all of them."""
        zone_name = block.zone or ZONE_NORMAL
        zone = node.zones[zone_name]
        zone.present -= block.present
        zone.present_early -= block.present
        zone.managed -= block.managed
        zone.free -= block.free
        block.state = BlockState.OFFLINE
        block.zone = None
        block.unmovable = block.movable_used = 0
        self.shrink_zone_span(node, zone_name, block.id)

    def _boot_online_movable(self, node: Node, block: MemoryBlock) -> None:
        """A boot block the topology has in ZONE_MOVABLE (``movable_blocks``), after
        ``_boot_offline``: what online_pages() into ZONE_MOVABLE leaves (the zone grows its
        span over the block; early sections count as present_early), without events."""
        zone = node.zones[ZONE_MOVABLE]
        zone.grow_span(block.id)
        zone.present += block.present
        zone.present_early += block.present
        zone.managed += block.managed
        zone.free += block.free
        block.state = BlockState.ONLINE
        block.zone = ZONE_MOVABLE

    # -- shared services ----------------------------------------------------------------------
    def uevent(self, action: str, devpath: str, subsystem: str, env: tuple[tuple[str, str], ...] = ()) -> Uevent:
        return self.events.emit(action, devpath, subsystem, env)

    def printk(self, message: str, level: int = LOGLEVEL_WARNING, prefix: str = "") -> None:
        """The kernel log (dmesg), message texts as the kernel prints them. A ring, as
        the kernel's log_buf is: the oldest messages go once the text passes ``KMSG_BYTES``.

        ``level``: the KERN_* level of the call (pr_err 3, pr_warn/dev_warn/WARN 4, pr_info
        6, pr_debug 7; 4 is the default message loglevel); ``prefix``: what dev_printk()
        puts before the text ("kmem dax0.0: "). Both, the sequence number and the time
        since boot go to ``kmsg_records`` (what /dev/kmsg prints); ``kmsg`` keeps the text."""
        self.kmsg.append(message)
        self.kmsg_records.append(KmsgRecord(self.kmsg_count, level, (time.monotonic_ns() - self._boot_ns) // 1000,
                                            prefix + message))
        self.kmsg_count += 1
        _kmsg_log.info("%s", message)
        self._kmsg_bytes += len(message) + 1
        if self._kmsg_bytes > KMSG_BYTES:
            drop = 0
            while self._kmsg_bytes > KMSG_BYTES and drop < len(self.kmsg) - 1:
                self._kmsg_bytes -= len(self.kmsg[drop]) + 1
                drop += 1
            del self.kmsg[:drop]
            del self.kmsg_records[:drop]
        with self.lock:  # wake_up_klogd(): readers blocked in devkmsg_read
            self.log_wait.notify_all()

    def uevent_store(self, devpath: str, subsystem: str | None, env: Callable[[], list[tuple[str, str]]] | None,
                     buf: str, count: int) -> None:
        """drivers/base/core.c uevent_store() -> kobject_synth_uevent() (R-SYS-08): a synthetic
        event with the written action and the device's variables (``env()``, asked only once
        the write parsed: the dev_uevent() callback); EINVAL for a bad write. A device without
        a subsystem (kset without uevent ops) sends nothing."""
        action, extra = kobject_synth_uevent(buf, count)
        if subsystem is not None:
            self.uevent(action, devpath, subsystem, extra + tuple(env() if env else ()))

    def control_store(self, devpath: str, buf: str) -> None:
        """drivers/base/power/sysfs.c control_store() (R-SYS-07): ``on`` or ``auto``, else
        EINVAL; only the value is kept (no runtime PM is simulated)."""
        if sysfs_streq(buf, "on"):
            self.power_control[devpath] = "on"
        elif sysfs_streq(buf, "auto"):
            self.power_control.pop(devpath, None)
        else:
            raise KernelError(errno.EINVAL)

    def arch_get_memory_phys_device(self, block_id: int) -> int:
        """drivers/base/memory.c phys_device_show(): 0, but on s390x the storage increment
        the block starts in, ``start >> ilog2(sclp.rzm)`` (drivers/s390/char/sclp_cmd.c),
        with the increment taken to be the block size (memory_block_size_bytes() is
        max(rzm, 256 MiB))."""
        return block_id if self.config.arch == "s390x" else 0

    @staticmethod
    def memory_devpath(block_id: int) -> str:
        return f"/devices/system/memory/memory{block_id}"

    @staticmethod
    def node_devpath(nid: int) -> str:
        return f"/devices/system/node/node{nid}"

    @staticmethod
    def memtier_devpath(tier: int) -> str:
        return f"/devices/virtual/memory_tiering/memory_tier{tier}"

    def block_ids(self) -> list[int]:
        """Sorted ids of all present blocks (cached; readdir of the memory root)."""
        if self._sorted_ids is None:
            self._sorted_ids = sorted(self.blocks)
        return self._sorted_ids

    def online_nodes(self) -> list[int]:
        return [nid for nid, node in self.nodes.items() if node.online]

    def distance(self, a: int, b: int) -> int:
        return self.config.distance(a, b)

    def node_fallback_order(self, nid: int) -> list[int]:
        """The zonelist node order for allocations on behalf of ``nid`` (find_next_best_node):
        the node itself, then by distance, preferring CPU-less nodes and higher ids."""
        others = [n for n in sorted(self.n_memory) if n != nid]
        others.sort(key=lambda n: (self.distance(nid, n) + (n < nid) + (1 if self.nodes[n].cpus else 0), n))
        return ([nid] if nid in self.n_memory else []) + others

    # -- block devices (drivers/base/memory.c) -----------------------------------------------
    def add_memory_block(self, block: MemoryBlock) -> None:
        bid = block.id
        self.blocks[bid] = block
        self._sorted_ids = None
        if block.group is not None:
            block.group.blocks.add(bid)
        self.events.emit("add", f"/devices/system/memory/memory{bid}", "memory")  # uevent(), memory_devpath()

    def remove_memory_block(self, block: MemoryBlock) -> None:
        """unregister_memory_block_under_nodes() + remove_memory_block()."""
        node = self.nodes.get(block.nid)
        if node is not None:
            node.blocks.discard(block.id)
        del self.blocks[block.id]
        self._sorted_ids = None
        if block.group is not None:
            block.group.blocks.discard(block.id)
        self.uevent("remove", self.memory_devpath(block.id), "memory")

    def register_memory_blocks_under_node_hotplug(self, nid: int, blocks: list[MemoryBlock]) -> None:
        self.nodes[nid].blocks.update(b.id for b in blocks)

    # -- nodes (drivers/base/node.c) ----------------------------------------------------------
    def register_one_node(self, nid: int) -> None:
        self.nodes[nid].online = True
        self.nodes[nid].generation += 1
        self.uevent("add", self.node_devpath(nid), "node")

    def try_offline_node(self, nid: int) -> None:
        node = self.nodes[nid]
        if not node.online or node.spanned() or node.blocks or node.cpus:
            return
        node.online = False
        self.uevent("remove", self.node_devpath(nid), "node")

    # -- memory tiers (mm/memory-tiers.c) -----------------------------------------------------
    def memtier_node_online(self, node: Node) -> None:
        tier = memtier_id(node.tier_adistance())
        members = self.tiers.get(tier)
        if members is None:
            members = self.tiers[tier] = set()
            self.uevent("add", self.memtier_devpath(tier), "memory_tiering")
        members.add(node.id)

    def memtier_node_offline(self, node: Node) -> None:
        for tier, members in list(self.tiers.items()):
            if node.id in members:
                members.discard(node.id)
                if not members:
                    del self.tiers[tier]
                    self.uevent("remove", self.memtier_devpath(tier), "memory_tiering")

    def all_cpus(self) -> list[int]:
        return sorted(c for node in self.nodes.values() for c in node.cpus)

    def cpu_to_node(self, cpu: int) -> int:
        for node in self.nodes.values():
            if cpu in node.cpus:
                return node.id
        raise KeyError(cpu)

    def memory_add_physaddr_to_nid(self, addr: int) -> int:
        """The node firmware assigns to a hot-added address (SRAT); 0 when none says."""
        for ncfg in self.config.nodes:
            if any(r.start <= addr < r.end for r in ncfg.memory):
                return ncfg.id
        producers: tuple[CxlRegionConfig | HmemConfig | PmemConfig, ...] = (
            *self.config.cxl_regions, *self.config.hmem, *self.config.pmem)
        for producer in producers:
            if producer.start <= addr < producer.start + producer.size:
                return producer.target_node
        return 0

    # -- read-side summaries ------------------------------------------------------------------
    def node_meminfo_kb(self, nid: int) -> tuple[int, int]:
        """(MemTotal, MemFree) in kB (R-NODE-06)."""
        node = self.nodes[nid]
        kb = self.page_size // 1024
        return node.managed_pages * kb, node.free_pages * kb

    def has_normal_memory(self) -> set[int]:
        return set(self.n_normal_memory)


__all__ = ["LOGLEVEL_DEBUG", "LOGLEVEL_ERR", "LOGLEVEL_INFO", "LOGLEVEL_WARNING", "BlockState", "Faults", "Kernel",
           "KmsgRecord", "OnlineType"]
