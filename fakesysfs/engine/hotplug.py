"""Adding and removing memory (mm/memory_hotplug.c, the add/remove half) and memory groups.

The seed series' shape is kept function by function: ``add_memory_resource`` either maps the
whole range with its memmap taken from ordinary memory (``arch_add_memory`` +
``create_memory_block_devices``) or, with MHP_MEMMAP_ON_MEMORY, goes chunk by chunk through
``create_altmaps_and_memory_blocks``, unwinding the chunks already added if one fails.
``try_remove_memory`` undoes either, refusing mixed ranges with EINVAL.
"""

from __future__ import annotations

import contextlib
import errno
import gc
from collections.abc import Iterator
from enum import StrEnum

from ..errors import KernelError
from ..klib import kstrtoull
from .base import LOGLEVEL_ERR
from .memory import (
    BlockState,
    MemoryBlock,
    MemoryBlocksMixin,
    MemoryGroup,
    OnlineType,
    mhp_online_type_from_str,
)
from .node import KERNEL_ZONES, ZONE_MOVABLE
from .resource import Resource


class MemmapOnMemory(StrEnum):
    """memory_hotplug.memmap_on_memory (mm/memory_hotplug.c MEMMAP_ON_MEMORY_DISABLE,
    _ENABLE, _FORCE), valued as get_memmap_mode() prints them."""

    DISABLE = "N"
    ENABLE = "Y"
    FORCE = "force"


MHP_MERGE_RESOURCE = 1 << 0
MHP_MEMMAP_ON_MEMORY = 1 << 1
MHP_NID_IS_MGID = 1 << 2

SECTION_SIZE = 128 << 20
PMD_SIZE = 2 << 20
PAGEBLOCK_NR_PAGES = 512


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while memory blocks are created in bulk (boot, a large
    add): every object made is kept, so each collection would only rescan the growing heap
    (half of the time of booting 512 Ki blocks)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _DonorCursor:
    """Where the page allocator is in its walk of donor blocks during one add."""

    __slots__ = ("blocks", "current")

    def __init__(self, blocks: Iterator[MemoryBlock]) -> None:
        self.blocks = blocks
        self.current: MemoryBlock | None = None


class HotplugMixin(MemoryBlocksMixin):
    """Memory add/remove; mixed into ``Kernel``."""

    # -- memmap_on_memory (mm/memory_hotplug.c) ------------------------------------------------
    def memory_block_memmap_size(self) -> int:
        return self.pages_per_block * self.struct_page_size

    def memory_block_memmap_on_memory_pages(self) -> int:
        """V: the memmap pages each altmap block reserves (R-MOM-01)."""
        pages = -(-self.memory_block_memmap_size() // self.page_size)
        if self.memmap_mode == MemmapOnMemory.FORCE:
            pages = -(-pages // PAGEBLOCK_NR_PAGES) * PAGEBLOCK_NR_PAGES
        return pages

    def mhp_supports_memmap_on_memory(self) -> bool:
        """All conditions of 3.3; false means the request silently takes the ordinary path."""
        if self.memmap_mode == MemmapOnMemory.DISABLE:
            return False
        memmap_size = self.memory_block_memmap_size()
        vmemmap_pages = self.memory_block_memmap_on_memory_pages()
        if memmap_size % self.page_size:
            return False
        if vmemmap_pages % PAGEBLOCK_NR_PAGES:
            return False
        if vmemmap_pages >= self.pages_per_block:
            return False
        # arch_supports_memmap_on_memory (x86/generic): the memmap must be PMD mapped.
        return memmap_size % PMD_SIZE == 0

    # -- memory groups (drivers/base/memory.c) -----------------------------------------------
    def _memory_group_register(self, group: MemoryGroup) -> int:
        if group.nid not in self.possible_nodes:
            raise KernelError(errno.EINVAL)
        mgid = 0
        while mgid in self.memory_groups:
            mgid += 1
        group.id = mgid
        self.memory_groups[mgid] = group
        return mgid

    def memory_group_register_static(self, nid: int, max_pages: int) -> int:
        if not max_pages:
            raise KernelError(errno.EINVAL)
        return self._memory_group_register(MemoryGroup(-1, nid, False, max_pages=max_pages))

    def memory_group_register_dynamic(self, nid: int, unit_pages: int) -> int:
        if not unit_pages or unit_pages & (unit_pages - 1) or unit_pages < self.pages_per_block:
            raise KernelError(errno.EINVAL)
        return self._memory_group_register(MemoryGroup(-1, nid, True, unit_pages=unit_pages))

    def memory_group_unregister(self, mgid: int) -> None:
        group = self.memory_groups.get(mgid)
        if group is None:
            raise KernelError(errno.EINVAL)
        if group.blocks:
            raise KernelError(errno.EBUSY)
        del self.memory_groups[mgid]

    # -- the memory root's stores (drivers/base/memory.c) -------------------------------------
    def auto_online_blocks_store(self, buf: str) -> None:
        """drivers/base/memory.c auto_online_blocks_store(): mhp_online_type_from_str() (EINVAL),
        then the type add_memory_resource() onlines new blocks with (R-AUTO-01)."""
        self.auto_online_blocks = mhp_online_type_from_str(buf)

    def probe_store(self, buf: str) -> None:
        """drivers/base/memory.c probe_store() (R-ADD-09): a kstrtoull(0) address aligned to
        the block size (EINVAL), then one block through __add_memory() without flags, on the
        node memory_add_physaddr_to_nid() gives, under lock_device_hotplug_sysfs()."""
        phys_addr = kstrtoull(buf, 0)
        if phys_addr % self.block_size:
            raise KernelError(errno.EINVAL)
        with self.lock:
            self.add_memory(self.memory_add_physaddr_to_nid(phys_addr), phys_addr, self.block_size, 0)

    # -- entry points -------------------------------------------------------------------------
    def register_memory_resource(self, start: int, size: int, name: str) -> Resource:
        end = start + size
        lo, hi = 0, (1 << self.max_physmem_bits) - 1
        if not (start < end and start >= lo and end - 1 <= hi):
            self.printk(f"Hotplug memory [{start:#x}-{end:#x}] exceeds maximum addressable range [{lo:#x}-{hi:#x}]")
            raise KernelError(errno.E2BIG)
        res = self.resources.request_region(start, size, name)
        if res is None:
            raise KernelError(errno.EEXIST)
        return res

    def add_memory(self, nid: int, start: int, size: int, flags: int = 0) -> None:
        """add_memory(): a 'System RAM' resource (ACPI memory devices, the probe file)."""
        with self.lock:
            res = self.register_memory_resource(start, size, "System RAM")
            try:
                self.add_memory_resource(nid, res, flags)
            except KernelError:
                self.resources.release(res)
                raise

    def add_memory_driver_managed(self, nid: int, start: int, size: int, resource_name: str, flags: int) -> None:
        """add_memory_driver_managed() as kmem calls it."""
        if not resource_name.startswith("System RAM (") or not resource_name.endswith(")"):
            raise KernelError(errno.EINVAL)
        with self.lock:
            res = self.register_memory_resource(start, size, resource_name)
            try:
                self.add_memory_resource(nid, res, flags)
            except KernelError:
                self.resources.release(res)
                raise

    def check_hotplug_memory_range(self, start: int, size: int) -> None:
        if not size or start % self.block_size or size % self.block_size:
            self.printk(f"Block size [{self.block_size:#x}] unaligned hotplug range: start {start:#x}, size {size:#x}",
                        LOGLEVEL_ERR)
            raise KernelError(errno.EINVAL)

    def add_memory_resource(self, nid: int, res: Resource, flags: int) -> None:
        self.lockdep_assert_held()
        with gc_paused():  # thousands of blocks and uevents, all kept
            self._add_memory_resource(nid, res, flags)

    def _add_memory_resource(self, nid: int, res: Resource, flags: int) -> None:
        start, size = res.start, res.end - res.start + 1
        self.check_hotplug_memory_range(start, size)
        group = None
        if flags & MHP_NID_IS_MGID:
            group = self.memory_groups.get(nid)
            if group is None:
                raise KernelError(errno.EINVAL)
            nid = group.nid
        if nid not in self.possible_nodes:
            self.printk(f"node {nid} was absent from the node_possible_map")
            raise KernelError(errno.EINVAL)
        new_node = not self.nodes[nid].online  # __try_online_node(): prepared, not registered
        # 6.18 ("activate node before adding new memory blocks"): the new node is registered
        # first and unregistered by the error path; before, it came after the blocks.
        node_first = self.profile >= (6, 18)
        if new_node and node_first:
            self.register_one_node(nid)
        try:
            if flags & MHP_MEMMAP_ON_MEMORY and self.mhp_supports_memmap_on_memory():
                created = self.create_altmaps_and_memory_blocks(nid, group, start, size)
            else:
                charges = self.arch_add_memory(nid, start, size)
                try:
                    created = self.create_memory_block_devices(nid, group, start, size, altmap=0)
                except KernelError:
                    for charge in charges:  # arch_remove_memory()
                        self.free_memmap_charges(charge)
                    raise
                for block, charge in zip(created, charges, strict=True):
                    block.memmap_charges = charge
        except KernelError:
            if new_node and node_first:  # node_set_offline() + unregister_node()
                self.nodes[nid].online = False
                self.uevent("remove", self.node_devpath(nid), "node")
            raise
        if new_node and not node_first:
            self.register_one_node(nid)
        self.register_memory_blocks_under_node_hotplug(nid, created)
        self.nr_memmap_pages += self.memmap_pages_per_section * (size // SECTION_SIZE)
        # R-AUTO-01: online the new blocks in ascending order; the first failure stops the walk.
        online_type = self.auto_online_blocks
        if online_type != OnlineType.OFFLINE:
            for block in created:
                block.online_type = online_type
                try:
                    self.device_online(block)
                except KernelError:
                    break

    def create_altmaps_and_memory_blocks(self, nid: int, group: MemoryGroup | None, start: int,
                                         size: int) -> list[MemoryBlock]:
        """One altmap and one block per chunk; a failing chunk unwinds the earlier ones (v8/v9)."""
        vmemmap_pages = self.memory_block_memmap_on_memory_pages()
        created: list[MemoryBlock] = []
        cur_start = start
        try:
            chunk = 0
            while cur_start < start + size:
                fail_at = self.faults.memmap_fail_at_chunk
                if fail_at is not None and chunk == fail_at:
                    # The altmap allocation or the chunk's vmemmap mapping fails (fault hook).
                    self.faults.memmap_fail_at_chunk = None
                    raise KernelError(errno.ENOMEM)
                created += self.create_memory_block_devices(nid, group, cur_start, self.block_size,
                                                            altmap=vmemmap_pages)
                cur_start += self.block_size
                chunk += 1
        except KernelError:
            if cur_start != start:
                self.remove_memory_blocks_and_altmaps(created)
            raise
        return created

    def arch_add_memory(self, nid: int, _start: int, size: int) -> list[list[tuple[int, int]]]:
        """Map the range with its memmap in ordinary kernel memory (R-ADD-06).

        Returns, per block, the donor charges. A section whose memmap cannot be allocated
        fails the add with ENOMEM; the simulator then frees what earlier sections took (the
        kernel leaks those, which is no observable behaviour worth copying).
        """
        sections_per_block = self.block_size // SECTION_SIZE
        per_section = self.memmap_pages_per_section
        nblocks = size // self.block_size
        fail_at = self.faults.memmap_fail_at_chunk
        if fail_at is not None and fail_at < nblocks:
            self.faults.memmap_fail_at_chunk = None
            raise KernelError(errno.ENOMEM)
        donors = _DonorCursor(self._kernel_memory_donors(nid))
        charges: list[list[tuple[int, int]]] = []
        partial: dict[int, int] = {}
        try:
            for _ in range(nblocks):
                partial = {}
                for _ in range(sections_per_block):
                    donor = self._alloc_kernel_pages(donors, per_section)
                    if donor is None:
                        raise KernelError(errno.ENOMEM)
                    partial[donor.id] = partial.get(donor.id, 0) + per_section
                charges.append(list(partial.items()))
                partial = {}
        except KernelError:
            for done in charges:
                self.free_memmap_charges(done)
            self.free_memmap_charges(list(partial.items()))
            raise
        return charges

    def _kernel_memory_donors(self, nid: int) -> Iterator[MemoryBlock]:
        """Online kernel-zone blocks in the order the page allocator would use them:
        nodes by the target's fallback order, zones Normal > DMA32 > DMA, high blocks first."""
        for donor_nid in self.node_fallback_order(nid):
            node = self.nodes[donor_nid]
            for zone_name in reversed(KERNEL_ZONES):
                # Lazily, from the top of the zone's span: an add touches the donors it uses.
                yield from self.zone_blocks(node, zone_name, descending=True)

    def _alloc_kernel_pages(self, donors: _DonorCursor, pages: int) -> MemoryBlock | None:
        """Take ``pages`` unmovable pages from the first donor with room; None: ENOMEM."""
        block = donors.current
        while block is None or block.free < pages:
            block = next(donors.blocks, None)
            if block is None:
                return None
        donors.current = block
        block.unmovable += pages
        self._zone(block).free -= pages
        return block

    def free_memmap_charges(self, charges: list[tuple[int, int]] | None) -> None:
        for donor_id, pages in charges or ():
            donor = self.blocks.get(donor_id)
            if donor is None:
                continue
            donor.unmovable -= pages
            if donor.state is not BlockState.OFFLINE and donor.zone is not None:
                self._zone(donor).free += pages

    def create_memory_block_devices(self, nid: int, group: MemoryGroup | None, start: int, size: int,
                                    altmap: int) -> list[MemoryBlock]:
        """One ``memoryN`` device per block, uevent ``add`` each; EEXIST undoes this call's."""
        created: list[MemoryBlock] = []
        first = start // self.block_size
        for bid in range(first, first + size // self.block_size):
            if bid in self.blocks:
                for block in created:
                    self.remove_memory_block(block)
                raise KernelError(errno.EEXIST)
            block = MemoryBlock(bid, nid, BlockState.OFFLINE, self.pages_per_block, altmap=altmap, group=group)
            self.add_memory_block(block)
            created.append(block)
        return created

    # -- removal ------------------------------------------------------------------------------
    def remove_memory(self, start: int, size: int) -> None:
        """remove_memory(): EBUSY if any block is not offline, EINVAL for mixed altmaps."""
        with self.lock:
            self.try_remove_memory(start, size)

    def _blocks_in_range(self, start: int, size: int) -> list[MemoryBlock]:
        first = start // self.block_size
        return [b for bid in range(first, first + size // self.block_size) if (b := self.blocks.get(bid)) is not None]

    def try_remove_memory(self, start: int, size: int) -> None:
        self.lockdep_assert_held()
        self.check_hotplug_memory_range(start, size)
        blocks = self._blocks_in_range(start, size)
        nid = None
        for block in blocks:  # check_memblock_offlined_cb
            if block.state is not BlockState.OFFLINE:
                b0 = self.block_start(block)
                self.printk(f"removing memory fails, because memory "
                            f"[{b0:#018x}-{b0 + self.block_size - 1:#018x}] is onlined")
                raise KernelError(errno.EBUSY)
            nid = block.nid
        # memory_blocks_have_altmaps()
        have_altmaps = 0
        if self.memmap_mode != MemmapOnMemory.DISABLE:
            num_altmaps = sum(1 for b in blocks if b.altmap)
            if num_altmaps:
                if num_altmaps != size // self.block_size:
                    self.printk("WARNING: memory_blocks_have_altmaps: num_memblocks != num_altmaps")
                    raise KernelError(errno.EINVAL)
                have_altmaps = 1
        if not have_altmaps:
            for block in blocks:
                self.remove_memory_block(block)
            for block in blocks:  # arch_remove_memory(): the memmap goes back to its donor
                self.free_memmap_charges(block.memmap_charges)
                block.memmap_charges = None
        else:
            self.remove_memory_blocks_and_altmaps(blocks)
        self.nr_memmap_pages -= self.memmap_pages_per_section * (size // SECTION_SIZE)
        self.release_mem_region_adjustable(start, size)
        if nid is not None:
            self.try_offline_node(nid)

    def release_mem_region_adjustable(self, start: int, size: int) -> None:
        """kernel/resource.c: descend through non-busy resources to the busy one holding
        [start, end], then free it, move its start or end, or split it in two."""
        end = start + size - 1
        parent = self.resources.root
        while True:
            for res in parent.children:
                if res.start >= end:
                    return
                if res.start > start or res.end < end:
                    continue
                if not res.busy:
                    parent = res
                    break
                if res.start == start and res.end == end:
                    self.resources.release(res)
                elif res.start == start:
                    res.start = end + 1
                elif res.end == end:
                    res.end = start - 1
                else:  # split into two entries; children above the hole go with the upper one
                    upper = Resource(res.name, end + 1, res.end, res.busy, parent=parent)
                    upper.children = [c for c in res.children if c.start > end]
                    res.children = [c for c in res.children if c.start <= end]
                    for child in upper.children:
                        child.parent = upper
                    res.end = start - 1
                    parent.children.insert(parent.children.index(res) + 1, upper)
                return
            else:
                return

    def remove_memory_blocks_and_altmaps(self, blocks: list[MemoryBlock]) -> None:
        for block in blocks:
            block.altmap = 0  # detach the altmap, then the device; the memmap goes with the chunk
            self.remove_memory_block(block)

    def offline_and_remove_memory(self, start: int, size: int) -> None:
        """R-REM-02: offline every online block, remembering zones; undo on failure."""
        with self.lock:
            if not size or start % self.block_size or size % self.block_size:
                raise KernelError(errno.EINVAL)
            blocks = self._blocks_in_range(start, size)
            offlined: list[tuple[MemoryBlock, OnlineType]] = []
            try:
                for block in blocks:
                    if block.state is BlockState.OFFLINE:
                        continue
                    kind = OnlineType.ONLINE_MOVABLE if block.zone == ZONE_MOVABLE else OnlineType.ONLINE_KERNEL
                    self.device_offline(block)
                    offlined.append((block, kind))
                try:
                    self.try_remove_memory(start, size)
                except KernelError as err:
                    self.printk(f"offline_and_remove_memory: Failed to remove memory: {-err.errno}", LOGLEVEL_ERR)
                    raise
            except KernelError:
                for block, kind in offlined:  # try_reonline_memory_block
                    block.online_type = kind
                    try:
                        self.device_online(block)
                    except KernelError as err:
                        self.printk(f"try_reonline_memory_block: Failed to re-online memory: {-err.errno}")
                raise
