"""Memory blocks and their state machine (drivers/base/memory.c, the online/offline half of
mm/memory_hotplug.c), zone selection and the per-zone accounting.

Entry points mirror the kernel's: ``device_online``/``device_offline`` (drivers/base/core.c,
what the ``state`` and ``online`` stores call), ``memory_block_change_state``,
``memory_block_online``/``memory_block_offline``, ``online_pages``/``offline_pages``,
``zone_for_pfn_range`` and ``valid_zones``. All of them run under the hotplug lock.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from ..errors import EHWPOISON, KernelError
from ..klib import kstrtobool, kstrtouint, sysfs_match_string
from .base import LOGLEVEL_DEBUG, KernelBase
from .node import (
    KERNEL_ZONES,
    ZONE_DMA,
    ZONE_DMA32,
    ZONE_MOVABLE,
    ZONE_NORMAL,
    ZONES,
    Node,
    Zone,
    ZoneType,
)


class BlockState(StrEnum):
    OFFLINE = "offline"
    ONLINE = "online"
    GOING_OFFLINE = "going-offline"


class OnlineType(IntEnum):
    """MMOP_* values; ``OFFLINE`` doubles as 'no type requested' (mem->online_type)."""

    OFFLINE = 0
    ONLINE = 1
    ONLINE_KERNEL = 2
    ONLINE_MOVABLE = 3


#: The words of ``state`` and ``auto_online_blocks`` (online_type_to_str).
ONLINE_TYPE_WORDS = {
    "offline": OnlineType.OFFLINE,
    "online": OnlineType.ONLINE,
    "online_kernel": OnlineType.ONLINE_KERNEL,
    "online_movable": OnlineType.ONLINE_MOVABLE,
}
ONLINE_TYPE_NAMES = {v: k for k, v in ONLINE_TYPE_WORDS.items()}
_ONLINE_WORDS = list(ONLINE_TYPE_WORDS)


class OnlinePolicy(StrEnum):
    """memory_hotplug.online_policy (mm/memory_hotplug.c enum with online_policy_to_str[]):
    how zone_for_pfn_range() places a plain ``online``."""

    CONTIG_ZONES = "contig-zones"
    AUTO_MOVABLE = "auto-movable"


#: online_policy_to_str, in enum order (what set_online_policy() matches against).
ONLINE_POLICIES = list(OnlinePolicy)


def mhp_online_type_from_str(buf: str) -> OnlineType:
    """mm/memory_hotplug.c mhp_online_type_from_str(): one of offline, online, online_kernel,
    online_movable (sysfs_streq: one trailing newline allowed), else EINVAL."""
    return ONLINE_TYPE_WORDS[_ONLINE_WORDS[sysfs_match_string(_ONLINE_WORDS, buf)]]


@dataclass(slots=True, eq=False)
class MemoryGroup:
    """struct memory_group (R-GRP-01): static (kmem, ACPI DIMM) or dynamic (virtio-mem)."""

    id: int
    nid: int
    is_dynamic: bool
    max_pages: int = 0  # static
    unit_pages: int = 0  # dynamic
    present_kernel_pages: int = 0
    present_movable_pages: int = 0
    blocks: set[int] = field(default_factory=set)


@dataclass(slots=True, eq=False)
class MemoryBlock:
    """struct memory_block plus the page accounting the simulator keeps per block."""

    id: int
    nid: int
    state: BlockState
    present: int  # pages that exist (block pages minus holes)
    boot: bool = False
    online_type: OnlineType = OnlineType.OFFLINE
    #: Zone managing the block while online; None when offline or spanning zones.
    zone: ZoneType | None = None
    #: Boot blocks spanning several zones: pages per zone (valid_zones "none", never offlined).
    zone_pages: dict[ZoneType, int] | None = None
    #: Self-hosted memmap pages (V) if created on the altmap path, else 0 (R-MOM-02).
    altmap: int = 0
    group: MemoryGroup | None = None
    #: Pages held by kernel allocations (boot kernel data, other blocks' memmaps): EBUSY.
    unmovable: int = 0
    #: Pages pinned by a test (simulated long-term pins): unmovable, EBUSY on offline.
    pinned: int = 0
    #: Pages in use by movable allocations: migrated away on offline.
    movable_used: int = 0
    #: Poisoned pages (R-STATE-07: EHWPOISON on online).
    poisoned: int = 0
    #: Ordinary-path memmap of this block: [(donor block id, pages)] (R-ADD-06).
    memmap_charges: list[tuple[int, int]] | None = None

    @property
    def managed(self) -> int:
        """Pages handed to the page allocator while online."""
        return self.present - self.altmap

    @property
    def free(self) -> int:
        return self.managed - self.unmovable - self.pinned - self.movable_used

    @property
    def online(self) -> bool:
        return self.state is not BlockState.OFFLINE


class MemoryBlocksMixin(KernelBase):
    """The memory-block half of the engine; mixed into ``Kernel``."""

    # -- helpers ---------------------------------------------------------------------------
    def _zone(self, block: MemoryBlock, name: ZoneType | None = None) -> Zone:
        return self.nodes[block.nid].zones[name or block.zone or ZONE_NORMAL]

    def block_start(self, block: MemoryBlock) -> int:
        return block.id * self.block_size

    def kernel_zone_for(self, node: Node, block_id: int) -> ZoneType:
        """default_kernel_zone_for_pfn(): first of DMA, DMA32 intersecting the block, else Normal."""
        for name in (ZONE_DMA, ZONE_DMA32):
            if node.zones[name].intersects(block_id):
                return name
        return ZONE_NORMAL

    # -- zone selection (mm/memory_hotplug.c zone_for_pfn_range) -------------------------------
    def default_zone_for_pfn(self, node: Node, block_id: int) -> ZoneType:
        """The contig-zones default (contig_default(B))."""
        kernel_zone = self.kernel_zone_for(node, block_id)
        in_kernel = node.zones[kernel_zone].intersects(block_id)
        in_movable = node.zones[ZONE_MOVABLE].intersects(block_id)
        if in_kernel and not in_movable:
            return kernel_zone
        if in_movable and not in_kernel:
            return ZONE_MOVABLE
        return ZONE_MOVABLE if self.movable_node else kernel_zone

    def auto_movable_can_online_movable(self, nid: int | None, group: MemoryGroup | None, nr_pages: int) -> bool:
        """auto_movable_can_online_movable(): all nodes (nid None) or one node."""
        nodes = [self.nodes[nid]] if nid is not None else [n for n in self.nodes.values()]
        kernel_early = 0
        movable = 0
        for node in nodes:
            for name, zone in node.zones.items():
                if not zone.populated:
                    continue
                if name == ZONE_MOVABLE:
                    movable += zone.present
                else:
                    kernel_early += zone.present_early
        req = 0
        dyn_movable = 0
        for other in self.memory_groups.values():
            if not other.is_dynamic or other is group:
                continue
            if nid is not None and other.nid != nid:
                continue
            required = other.present_movable_pages * 100 // self.auto_movable_ratio - other.present_kernel_pages
            if required > 0:
                req += required
            dyn_movable += other.present_movable_pages
        if kernel_early <= req:
            return False
        kernel_early -= req
        movable -= dyn_movable
        if group is not None and group.is_dynamic:
            kernel_early += group.present_kernel_pages
        return movable + nr_pages <= self.auto_movable_ratio * kernel_early // 100

    def auto_movable_zone_for_pfn(self, node: Node, group: MemoryGroup | None, block_id: int) -> ZoneType:
        kernel_zone = self.kernel_zone_for(node, block_id)
        if not self.auto_movable_ratio:
            return kernel_zone
        if group is not None and not group.is_dynamic:
            if group.present_kernel_pages:
                return kernel_zone
            need = group.max_pages - group.present_movable_pages
        elif group is None or group.unit_pages <= self.pages_per_block:
            need = self.pages_per_block
        else:
            unit_blocks = group.unit_pages // self.pages_per_block
            first = block_id - block_id % unit_blocks
            online_pages = 0
            for bid in range(first, first + unit_blocks):
                other = self.blocks.get(bid)
                if other is None or other.group is not group or other.state is not BlockState.ONLINE:
                    continue
                if other.zone != ZONE_MOVABLE:
                    return kernel_zone
                online_pages += other.present
            need = group.unit_pages - online_pages
        if not self.auto_movable_can_online_movable(None, group, need):
            return kernel_zone
        if self.auto_movable_numa_aware and not self.auto_movable_can_online_movable(node.id, group, need):
            return kernel_zone
        return ZONE_MOVABLE

    def zone_for_pfn_range(self, online_type: OnlineType, block: MemoryBlock) -> ZoneType:
        """Zone for an online request (R-STATE-01, policy_default)."""
        node = self.nodes[block.nid]
        if online_type == OnlineType.ONLINE_KERNEL:
            return self.kernel_zone_for(node, block.id)
        if online_type == OnlineType.ONLINE_MOVABLE:
            return ZONE_MOVABLE
        if self.online_policy == OnlinePolicy.AUTO_MOVABLE:
            return self.auto_movable_zone_for_pfn(node, block.group, block.id)
        return self.default_zone_for_pfn(node, block.id)

    def valid_zones(self, block: MemoryBlock) -> str:
        """valid_zones_show() without the newline (R-ZONE-01)."""
        if block.state is BlockState.ONLINE:
            return block.zone or "none"
        default = self.zone_for_pfn_range(OnlineType.ONLINE, block)
        words = [default]
        kernel_zone = self.zone_for_pfn_range(OnlineType.ONLINE_KERNEL, block)
        if kernel_zone != default:
            words.append(kernel_zone)
        if default != ZONE_MOVABLE:
            words.append(ZONE_MOVABLE)
        return " ".join(words)

    # -- the zone policy's module parameters (mm/memory_hotplug.c) -----------------------------
    def set_online_policy(self, buf: str) -> None:
        """mm/memory_hotplug.c set_online_policy(): sysfs_match_string over
        online_policy_to_str, else EINVAL."""
        self.online_policy = ONLINE_POLICIES[sysfs_match_string(ONLINE_POLICIES, buf)]

    def param_set_auto_movable_ratio(self, buf: str) -> None:
        """module_param(auto_movable_ratio, uint, 0644): kernel/params.c param_set_uint()."""
        self.auto_movable_ratio = kstrtouint(buf, 0)

    def param_set_auto_movable_numa_aware(self, buf: str) -> None:
        """module_param(auto_movable_numa_aware, bool, 0644): kernel/params.c param_set_bool()."""
        self.auto_movable_numa_aware = kstrtobool(buf, enable_disable=self.profile >= (6, 16))

    # -- device_online / device_offline (drivers/base/core.c) --------------------------------
    def device_online(self, block: MemoryBlock) -> int:
        """1 if already online (callers turn that into EINVAL or success), else 0; raises.
        The caller holds the hotplug lock (state_store: lock_device_hotplug_sysfs)."""
        self.lockdep_assert_held()
        if block.state is not BlockState.OFFLINE:
            return 1
        self.memory_subsys_online(block)
        self.uevent("online", self.memory_devpath(block.id), "memory")
        return 0

    def device_offline(self, block: MemoryBlock) -> int:
        self.lockdep_assert_held()
        if block.state is BlockState.OFFLINE:
            return 1
        self.memory_subsys_offline(block)
        self.uevent("offline", self.memory_devpath(block.id), "memory")
        return 0

    # -- the block's stores (drivers/base/memory.c, drivers/base/core.c) --------------------
    def state_store(self, mem: MemoryBlock, buf: str) -> None:
        """drivers/base/memory.c state_store() (R-STATE-02): the word first (EINVAL), then
        under lock_device_hotplug_sysfs() device_online()/device_offline(); a block already
        in the asked state is EINVAL, a failing operation its own errno."""
        online_type = mhp_online_type_from_str(buf)
        with self.lock:
            if online_type == OnlineType.OFFLINE:
                ret = self.device_offline(mem)
            else:
                # "mem->online_type is protected by device_hotplug_lock": stored even if
                # the request then fails (R-STATE-05).
                mem.online_type = online_type
                ret = self.device_online(mem)
        if ret:
            raise KernelError(errno.EINVAL)

    def online_store(self, mem: MemoryBlock, buf: str) -> None:
        """drivers/base/core.c online_store() (R-STATE-03): a kstrtobool, then
        device_online()/device_offline() under the lock; asking for the current state is a
        successful no-op (``ret < 0 ? ret : count``)."""
        value = kstrtobool(buf, enable_disable=self.profile >= (6, 16))
        with self.lock:
            if value:
                self.device_online(mem)
            else:
                self.device_offline(mem)

    def memory_subsys_online(self, block: MemoryBlock) -> None:
        # R-STATE-05: a stored type is used once, then reset, whether onlining worked or not.
        if block.online_type == OnlineType.OFFLINE:
            block.online_type = OnlineType.ONLINE
        try:
            self.memory_block_change_state(block, BlockState.ONLINE)
        finally:
            block.online_type = OnlineType.OFFLINE

    def memory_subsys_offline(self, block: MemoryBlock) -> None:
        self.memory_block_change_state(block, BlockState.OFFLINE)

    def memory_block_change_state(self, block: MemoryBlock, to_state: BlockState) -> None:
        from_state = block.state
        if to_state is BlockState.OFFLINE:
            block.state = BlockState.GOING_OFFLINE
        try:
            if to_state is BlockState.ONLINE:
                self.memory_block_online(block)
            else:
                self.memory_block_offline(block)
        except BaseException:
            block.state = from_state
            raise
        block.state = to_state

    # -- memory_block_online / online_pages ---------------------------------------------------
    def memory_block_online(self, block: MemoryBlock) -> None:
        self.lockdep_assert_held()
        if block.poisoned:
            raise KernelError(EHWPOISON)
        zone_name = self.zone_for_pfn_range(block.online_type, block)
        # R-MOM-03: the vmemmap pages join the zone first; they are accounted as present only
        # after onlining succeeded, and never as managed or free.
        self.online_pages(block, zone_name)

    def online_pages(self, block: MemoryBlock, zone_name: ZoneType) -> None:
        self.lockdep_assert_held()
        node = self.nodes[block.nid]
        err = self.notifier_error["MEM_GOING_ONLINE"]
        if err:
            # R-FI-01: the notifier veto; move_pfn_range_to_zone is undone, nothing changes.
            raise KernelError(-err)
        zone = node.zones[zone_name]
        had_memory = node.present_pages > 0
        zone.grow_span(block.id)
        zone.present += block.present
        if block.boot:  # adjust_present_page_count(): early sections count as present_early too
            zone.present_early += block.present
        zone.managed += block.managed
        zone.free += block.free
        block.zone = zone_name
        if block.group is not None:
            if zone_name == ZONE_MOVABLE:
                block.group.present_movable_pages += block.present
            else:
                block.group.present_kernel_pages += block.present
        if self.hotplug_maintains_n_normal_memory() and zone_name in KERNEL_ZONES:
            self.n_normal_memory.add(node.id)
        if not had_memory:
            # node_states_set_node, then the memory-tier hotplug callback (R-TIER-01).
            self.n_memory.add(node.id)
            self.memtier_node_online(node)
        self.vm.init_per_zone_wmark_min(self)  # online_pages() recomputes the watermarks

    def debugfs_errno_set(self, action: str, value: int) -> None:
        """lib/notifier-error-inject.c debugfs_errno_set(): the errno the memory notifier
        returns for ``action`` (R-FI-01/02), clamp_t(int, val, -MAX_ERRNO, 0); clamp_t casts
        to int first. fs/libfs.c simple_attr_write() parsed the value."""
        value = (value + (1 << 31)) % (1 << 32) - (1 << 31)
        self.notifier_error[action] = min(max(value, -4095), 0)

    def hotplug_maintains_n_normal_memory(self) -> bool:
        """R-NODE-05 as the kernel has it: 6.17 dropped the N_NORMAL_MEMORY updates of
        online_pages()/offline_pages() (8d2882a8edb8); "mm/memory_hotplug: maintain
        N_NORMAL_MEMORY during hotplug" restored them and reached 6.18.y in 6.18.23."""
        return self.profile != (6, 17)

    # -- memory_block_offline / offline_pages -------------------------------------------------
    def memory_block_offline(self, block: MemoryBlock) -> None:
        self.lockdep_assert_held()
        if block.zone is None:
            # The block spans zones or nodes: mem->zone is NULL.
            raise KernelError(errno.EINVAL)
        self.offline_pages(block)

    def offline_pages(self, block: MemoryBlock) -> None:
        self.lockdep_assert_held()
        node = self.nodes[block.nid]
        if block.present != self.pages_per_block:
            self._offline_failed(block, "memory holes")
            raise KernelError(errno.EINVAL)
        if block.unmovable or block.pinned:
            # start_isolate_page_range() finds unmovable pages (R-STATE-08).
            self._offline_failed(block, "failure to isolate range")
            raise KernelError(errno.EBUSY)
        err = self.notifier_error["MEM_GOING_OFFLINE"]
        if err:
            self._offline_failed(block, "notifier failure")
            raise KernelError(-err)
        if block.movable_used:
            self.migrate_away(block)
        zone = node.zones[block.zone or ZONE_NORMAL]
        zone.present -= block.present
        if block.boot:
            zone.present_early -= block.present
        zone.managed -= block.managed
        zone.free -= block.free
        if block.group is not None:
            if block.zone == ZONE_MOVABLE:
                block.group.present_movable_pages -= block.present
            else:
                block.group.present_kernel_pages -= block.present
        zone_name = block.zone
        block.zone = None
        self.shrink_zone_span(node, zone_name or ZONE_NORMAL, block.id)
        if self.hotplug_maintains_n_normal_memory() and zone_name in KERNEL_ZONES and node.kernel_present() == 0:
            self.n_normal_memory.discard(node.id)
        if node.present_pages == 0:
            self.n_memory.discard(node.id)
            self.memtier_node_offline(node)
        self.vm.init_per_zone_wmark_min(self)  # offline_pages() recomputes the watermarks

    def _offline_failed(self, block: MemoryBlock, reason: str) -> None:
        """offline_pages()'s pr_debug; its range starts after the block's vmemmap pages."""
        start = self.block_start(block) + block.altmap * self.page_size
        end = self.block_start(block) + self.block_size - 1
        self.printk(f"memory offlining [mem {start:#010x}-{end:#010x}] failed due to {reason}", LOGLEVEL_DEBUG)

    def migrate_away(self, block: MemoryBlock) -> None:
        """do_migrate_range() as counters: move the block's movable pages to free memory of
        other online blocks. The source node is cleared from the N_MEMORY target mask and used
        only when no other memory node exists (mm/memory_hotplug.c do_migrate_range: "try to
        allocate from a different node but reuse this node if there are no other online
        nodes"); alloc_migration_target() allocates GFP_USER | __GFP_MOVABLE with the source
        node preferred, so the others are taken in its zonelist order (nearest by distance)
        and, within a node, zone by zone from the highest down. No room anywhere: EBUSY
        (the kernel would retry until a signal, docs/abi.md)."""
        need = block.movable_used
        others = [nid for nid in self.node_fallback_order(block.nid) if nid != block.nid]
        order = others or [block.nid]
        plan: list[tuple[MemoryBlock, int]] = []
        for nid in order:
            node = self.nodes[nid]
            # The node's online blocks by ascending id, through the zone spans: the walk
            # stops with the last donor, whatever the size of the machine.
            for zone_name in reversed(ZONES):
                for other in self.zone_blocks(node, zone_name):
                    if other is block:
                        continue
                    take = min(other.free, need)
                    if take > 0:
                        plan.append((other, take))
                        need -= take
                        if not need:
                            break
                if not need:
                    break
            if not need:
                break
        if need:
            self._offline_failed(block, "migration failure")
            raise KernelError(errno.EBUSY)
        for other, take in plan:
            other.movable_used += take
            self._zone(other).free -= take
        self._zone(block).free += block.movable_used
        block.movable_used = 0

    def set_block_usage(self, block: MemoryBlock, *, pinned: int | None = None,
                        movable_used: int | None = None, poisoned: int | None = None) -> None:
        """Simulator hook: pages a test pins, fills or poisons in a block (docs/abi.md,
        "Fault injection").

        Usage exists only while the block is online; EINVAL if it would not fit in the block.
        """
        with self.lock:
            new_pinned = block.pinned if pinned is None else pinned
            new_used = block.movable_used if movable_used is None else movable_used
            if new_pinned < 0 or new_used < 0 or (poisoned is not None and poisoned < 0):
                raise KernelError(errno.EINVAL)
            if new_pinned or new_used:
                if block.state is not BlockState.ONLINE or block.zone is None:
                    raise KernelError(errno.EINVAL)
                if block.unmovable + new_pinned + new_used > block.managed:
                    raise KernelError(errno.ENOSPC)
            delta = (new_pinned - block.pinned) + (new_used - block.movable_used)
            if block.state is BlockState.ONLINE and block.zone is not None:
                self._zone(block).free -= delta
            block.pinned, block.movable_used = new_pinned, new_used
            if poisoned is not None:
                block.poisoned = poisoned

    def zone_blocks(self, node: Node, zone_name: ZoneType, descending: bool = False) -> Iterator[MemoryBlock]:
        """The online blocks of ``node`` that ``zone_name`` manages, by block id, found in
        the zone's span (which holds all of them): a caller that stops early has touched
        only the blocks it looked at."""
        zone = node.zones[zone_name]
        if zone.empty_span():
            return
        span = range(zone.span_hi, zone.span_lo - 1, -1) if descending else range(zone.span_lo, zone.span_hi + 1)
        blocks, nid, online = self.blocks, node.id, BlockState.ONLINE
        for bid in span:
            block = blocks.get(bid)
            if block is not None and block.nid == nid and block.zone == zone_name and block.state is online:
                yield block

    def shrink_zone_span(self, node: Node, zone_name: ZoneType, block_id: int) -> None:
        """shrink_zone_span(): an edge block leaving moves the edge to the next online block."""
        zone = node.zones[zone_name]
        if zone.empty_span():
            return

        def member(bid: int) -> bool:
            b = self.blocks.get(bid)
            if b is None or b.nid != node.id or b.state is BlockState.OFFLINE:
                return False
            if b.zone_pages is not None:
                return zone_name in b.zone_pages
            return b.zone == zone_name

        lo, hi = zone.span_lo, zone.span_hi
        if block_id == lo:
            while lo <= hi and not member(lo):
                lo += 1
        if block_id == hi:
            while hi >= lo and not member(hi):
                hi -= 1
        if lo > hi:
            zone.span_lo = zone.span_hi = -1
        else:
            zone.span_lo, zone.span_hi = lo, hi
