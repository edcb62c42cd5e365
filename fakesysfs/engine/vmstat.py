"""The vmstat items of the 6.18 x86-64 configuration (mm/vmstat.c vmstat_text[]), with the
values the engine knows: free pages per zone, the memmap counters, the dirty limits. Items
the model does not track (LRU lists, slab, NUMA and VM events) are 0, never left out and
never invented: the key set and order are the kernel's, as /proc/vmstat, /proc/zoneinfo and
``nodeN/vmstat`` print them (docs/proc.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .page_alloc import ALL_ZONES, dirty_limits, free_area, free_pages_blocks, vm_state

if TYPE_CHECKING:
    from .kernel import Kernel
    from .node import ZoneType

#: enum zone_stat_item (NR_VM_ZONE_STAT_ITEMS), CONFIG_ZSMALLOC and CONFIG_CMA set.
ZONE_ITEMS = (
    "nr_free_pages", "nr_free_pages_blocks", "nr_zone_inactive_anon", "nr_zone_active_anon",
    "nr_zone_inactive_file", "nr_zone_active_file", "nr_zone_unevictable", "nr_zone_write_pending", "nr_mlock",
    "nr_zspages", "nr_free_cma",
)
#: enum numa_stat_item.
NUMA_ITEMS = (
    "numa_hit", "numa_miss", "numa_foreign", "numa_interleave", "numa_local", "numa_other",
)
#: enum node_stat_item: the "per-node stats" of /proc/zoneinfo.
NODE_ITEMS = (
    "nr_inactive_anon", "nr_active_anon", "nr_inactive_file", "nr_active_file", "nr_unevictable",
    "nr_slab_reclaimable", "nr_slab_unreclaimable", "nr_isolated_anon", "nr_isolated_file", "workingset_nodes",
    "workingset_refault_anon", "workingset_refault_file", "workingset_activate_anon",
    "workingset_activate_file", "workingset_restore_anon", "workingset_restore_file", "workingset_nodereclaim",
    "nr_anon_pages", "nr_mapped", "nr_file_pages", "nr_dirty", "nr_writeback", "nr_shmem",
    "nr_shmem_hugepages", "nr_shmem_pmdmapped", "nr_file_hugepages", "nr_file_pmdmapped",
    "nr_anon_transparent_hugepages", "nr_vmscan_write", "nr_vmscan_immediate_reclaim", "nr_dirtied",
    "nr_written", "nr_throttled_written", "nr_kernel_misc_reclaimable", "nr_foll_pin_acquired",
    "nr_foll_pin_released", "nr_kernel_stack", "nr_page_table_pages", "nr_sec_page_table_pages",
    "nr_iommu_pages", "nr_swapcached", "pgpromote_success", "pgpromote_candidate", "pgpromote_candidate_nrl",
    "pgdemote_kswapd", "pgdemote_direct", "pgdemote_khugepaged", "pgdemote_proactive", "nr_hugetlb",
    "nr_balloon_pages", "nr_kernel_file_pages",
)
#: The writeback thresholds and the memmap counters (vmstat_text after the node items).
GLOBAL_ITEMS = (
    "nr_dirty_threshold", "nr_dirty_background_threshold", "nr_memmap_pages", "nr_memmap_boot_pages",
)
#: enum vm_event_item.
EVENT_ITEMS = (
    "pgpgin", "pgpgout", "pswpin", "pswpout", "pgalloc_dma", "pgalloc_dma32", "pgalloc_normal",
    "pgalloc_movable", "pgalloc_device", "allocstall_dma", "allocstall_dma32", "allocstall_normal",
    "allocstall_movable", "allocstall_device", "pgskip_dma", "pgskip_dma32", "pgskip_normal", "pgskip_movable",
    "pgskip_device", "pgfree", "pgactivate", "pgdeactivate", "pglazyfree", "pgfault", "pgmajfault",
    "pglazyfreed", "pgrefill", "pgreuse", "pgsteal_kswapd", "pgsteal_direct", "pgsteal_khugepaged",
    "pgsteal_proactive", "pgscan_kswapd", "pgscan_direct", "pgscan_khugepaged", "pgscan_proactive",
    "pgscan_direct_throttle", "pgscan_anon", "pgscan_file", "pgsteal_anon", "pgsteal_file",
    "zone_reclaim_success", "zone_reclaim_failed", "pginodesteal", "slabs_scanned", "kswapd_inodesteal",
    "kswapd_low_wmark_hit_quickly", "kswapd_high_wmark_hit_quickly", "pageoutrun", "pgrotated",
    "drop_pagecache", "drop_slab", "oom_kill", "numa_pte_updates", "numa_huge_pte_updates", "numa_hint_faults",
    "numa_hint_faults_local", "numa_pages_migrated", "pgmigrate_success", "pgmigrate_fail",
    "thp_migration_success", "thp_migration_fail", "thp_migration_split", "compact_migrate_scanned",
    "compact_free_scanned", "compact_isolated", "compact_stall", "compact_fail", "compact_success",
    "compact_daemon_wake", "compact_daemon_migrate_scanned", "compact_daemon_free_scanned",
    "htlb_buddy_alloc_success", "htlb_buddy_alloc_fail", "unevictable_pgs_culled", "unevictable_pgs_scanned",
    "unevictable_pgs_rescued", "unevictable_pgs_mlocked", "unevictable_pgs_munlocked",
    "unevictable_pgs_cleared", "unevictable_pgs_stranded", "thp_fault_alloc", "thp_fault_fallback",
    "thp_fault_fallback_charge", "thp_collapse_alloc", "thp_collapse_alloc_failed", "thp_file_alloc",
    "thp_file_fallback", "thp_file_fallback_charge", "thp_file_mapped", "thp_split_page",
    "thp_split_page_failed", "thp_deferred_split_page", "thp_underused_split_page", "thp_split_pmd",
    "thp_scan_exceed_none_pte", "thp_scan_exceed_swap_pte", "thp_scan_exceed_share_pte", "thp_split_pud",
    "thp_zero_page_alloc", "thp_zero_page_alloc_failed", "thp_swpout", "thp_swpout_fallback",
    "balloon_inflate", "balloon_deflate", "balloon_migrate", "swap_ra", "swap_ra_hit", "swpin_zero",
    "swpout_zero", "ksm_swpin_copy", "cow_ksm", "zswpin", "zswpout", "zswpwb", "direct_map_level2_splits",
    "direct_map_level3_splits", "direct_map_level2_collapses", "direct_map_level3_collapses",
)


def zone_stats(k: Kernel, nid: int, zone_name: ZoneType) -> list[tuple[str, int]]:
    """The zone items of one zone (``zone_page_state``)."""
    node = k.nodes[nid]
    zone = node.zones.get(zone_name)
    free = zone.free if zone is not None else 0
    blocks = free_pages_blocks(free_area(k, node, zone_name)) if free else 0
    known = {"nr_free_pages": free, "nr_free_pages_blocks": blocks}
    return [(name, known.get(name, 0)) for name in ZONE_ITEMS]


def numa_stats(_k: Kernel, _nid: int) -> list[tuple[str, int]]:
    """NUMA allocation events: the simulator allocates nothing."""
    return [(name, 0) for name in NUMA_ITEMS]


def node_stats(_k: Kernel, _nid: int) -> list[tuple[str, int]]:
    """The node items (LRU lists, slab, anon, file...): not modelled."""
    return [(name, 0) for name in NODE_ITEMS]


def node_vmstat(k: Kernel, nid: int) -> list[tuple[str, int]]:
    """node_read_vmstat() (drivers/base/node.c): zone items summed over the node's zones,
    NUMA items, then node items."""
    sums = dict.fromkeys(ZONE_ITEMS, 0)
    for zone_name in k.zone_names:
        for name, value in zone_stats(k, nid, zone_name):
            sums[name] += value
    return [*sums.items(), *numa_stats(k, nid), *node_stats(k, nid)]


def global_vmstat(k: Kernel) -> list[tuple[str, int]]:
    """vmstat_start()'s snapshot, in /proc/vmstat order, without the closing nr_unstable."""
    sums: dict[str, int] = {}
    for nid in k.online_nodes():
        for name, value in node_vmstat(k, nid):
            sums[name] = sums.get(name, 0) + value
    free = sums["nr_free_pages"]
    thresh, bg = dirty_limits(free, vm_state(k), 0, k.vm.dirty_ratio, k.vm.dirty_background_ratio)
    extra = {"nr_dirty_threshold": thresh, "nr_dirty_background_threshold": bg,
             "nr_memmap_pages": k.nr_memmap_pages, "nr_memmap_boot_pages": k.nr_memmap_boot_pages}
    out = [(name, sums.get(name, 0)) for name in (*ZONE_ITEMS, *NUMA_ITEMS, *NODE_ITEMS)]
    out += [(name, extra[name]) for name in GLOBAL_ITEMS]
    out += [(name, 0) for name in event_items(k.zone_names)]
    return out


#: The vm events counted per zone (TEXTS_FOR_ZONES in mm/vmstat.c): one name per zone the
#: kernel has, ``pgalloc_dma32``...
_PER_ZONE_EVENTS = ("pgalloc", "allocstall", "pgskip")


def event_items(zones: tuple[str, ...] = ALL_ZONES) -> tuple[str, ...]:
    """``EVENT_ITEMS`` of a kernel with the zones ``zones`` (enum order): TEXTS_FOR_ZONES
    names only the zones compiled in (TEXT_FOR_DMA, TEXT_FOR_DMA32, TEXT_FOR_DEVICE)."""
    per_zone = tuple(f"{event}_{zone.lower()}" for event in _PER_ZONE_EVENTS for zone in zones)
    first = EVENT_ITEMS.index("pgalloc_dma")
    last = EVENT_ITEMS.index("pgskip_device")
    return EVENT_ITEMS[:first] + per_zone + EVENT_ITEMS[last + 1:]


__all__ = ["EVENT_ITEMS", "GLOBAL_ITEMS", "NODE_ITEMS", "NUMA_ITEMS", "ZONE_ITEMS", "event_items", "global_vmstat",
           "node_vmstat", "zone_stats"]
