"""The add and remove paths of memory hotplug at their edges, as the kernel source decides them:
when a new node is registered and unregistered around its blocks (add_memory_resource), the
auto-movable base after boot memory goes offline, the resource tree after release_mem_region_adjustable,
and the kernel log of failed offline_pages and offline_and_remove_memory. Each test names the
rule and the kernel function it follows."""

from __future__ import annotations

import errno

from conftest import CXL_SIZE, CXL_START, MEM, NODE, add_kmem, example_config, raises_errno, uevents, valid_zones

from fakesysfs import Simulation
from fakesysfs.config import BootConfig, GiB, MemRange, MiB, NodeConfig
from fakesysfs.engine.hotplug import MHP_MEMMAP_ON_MEMORY


# -- add_memory_resource(): "mm/memory_hotplug: activate node before adding new memory blocks"
# (merged for 6.18): a new node is registered before its blocks, and unregistered again by
# the error path of a failed add. Before 6.18 the node came after the blocks.
def test_add_03_new_node_is_registered_before_its_blocks_from_6_18():
    sim = Simulation(example_config(auto_online_blocks="online_movable"))
    mark = sim.kernel.events.seqnum
    add_kmem(sim, size=2 * 128 * MiB)
    assert uevents(sim, mark) == [
        ("add", f"{NODE}/node1"), ("add", f"{MEM}/memory522"), ("add", f"{MEM}/memory523"),
        ("online", f"{MEM}/memory522"), ("online", f"{MEM}/memory523"),
    ]


def test_add_03_new_node_is_registered_after_its_blocks_before_6_18():
    sim = Simulation(example_config(auto_online_blocks="online_movable", kernel_profile="6.17"))
    mark = sim.kernel.events.seqnum
    add_kmem(sim, size=2 * 128 * MiB)
    assert uevents(sim, mark) == [
        ("add", f"{MEM}/memory522"), ("add", f"{MEM}/memory523"), ("add", f"{NODE}/node1"),
        ("online", f"{MEM}/memory522"), ("online", f"{MEM}/memory523"),
    ]


def test_add_01_failed_add_unregisters_the_node_it_registered_from_6_18():
    sim = Simulation(example_config())
    mark = sim.kernel.events.seqnum
    sim.kernel.faults.memmap_fail_at_chunk = 2
    with raises_errno(errno.ENOMEM):
        add_kmem(sim, size=4 * 128 * MiB)
    assert uevents(sim, mark) == (
        [("add", f"{NODE}/node1")]
        + [("add", f"{MEM}/memory{b}") for b in (522, 523)]
        + [("remove", f"{MEM}/memory{b}") for b in (522, 523)]
        + [("remove", f"{NODE}/node1")]
    )
    assert sim.cat(f"{NODE}/online") == "0\n" and "node1" not in sim.tree.readdir(NODE)


def test_add_01_failed_add_on_an_online_node_leaves_the_node_alone():
    sim = Simulation(example_config())
    add_kmem(sim, size=128 * MiB)
    mark = sim.kernel.events.seqnum
    sim.kernel.faults.memmap_fail_at_chunk = 1
    with raises_errno(errno.ENOMEM):
        add_kmem(sim, start=CXL_START + 128 * MiB, size=2 * 128 * MiB)
    assert uevents(sim, mark) == [("add", f"{MEM}/memory523"), ("remove", f"{MEM}/memory523")]
    assert sim.cat(f"{NODE}/online") == "0-1\n"


# -- adjust_present_page_count(): early (boot) sections move zone->present_early_pages too, so
# offlining boot memory shrinks the KERNEL_EARLY base of the auto-movable ratio (2.4).
def test_zone_03_offlining_boot_memory_lowers_the_auto_movable_kernel_early_base():
    cfg = BootConfig(nodes=[NodeConfig(0, [0, 1], [MemRange(4 * GiB, 8 * GiB)])], possible_nodes=[0, 1],
                     online_policy="auto-movable", auto_movable_numa_aware=False, memmap_on_memory="Y",
                     boot_unmovable=False)
    sim = Simulation(cfg)
    add_kmem(sim)  # 16 GiB <= 3.01 * 8 GiB
    assert valid_zones(sim, 522) == "Movable Normal"
    boot = range(32, 64)  # 4 GiB of the 8 GiB of boot Normal memory
    for bid in boot:
        sim.echo(f"{MEM}/memory{bid}/state", "offline")
    assert valid_zones(sim, 522) == "Normal Movable"  # 16 GiB > 3.01 * 4 GiB
    for bid in boot:
        sim.echo(f"{MEM}/memory{bid}/state", "online_kernel")
    assert valid_zones(sim, 522) == "Movable Normal"


# -- try_remove_memory() -> release_mem_region_adjustable(): descend through non-busy parents
# to the busy resource holding the range, and free, trim or split it.
def test_rem_release_mem_region_adjustable_frees_the_busy_child_of_a_same_span_claim():
    sim = Simulation(example_config())
    claim = sim.kernel.resources.request_region(CXL_START, CXL_SIZE, "dax0.0", busy=False)
    add_kmem(sim)
    sim.kernel.remove_memory(CXL_START, CXL_SIZE)
    iomem = sim.kernel.resources.format_iomem()
    assert "1050000000-144fffffff : dax0.0\n" in iomem and "System RAM (kmem)" not in iomem
    assert claim.children == []


def test_rem_release_mem_region_adjustable_trims_and_splits_a_larger_resource():
    sim = Simulation(example_config())
    bs = sim.kernel.block_size
    add_kmem(sim, size=4 * bs)  # memory522..525, one System RAM (kmem) resource
    sim.kernel.remove_memory(CXL_START + bs, bs)  # split around memory523
    sim.kernel.remove_memory(CXL_START, bs)  # memory522: the start moves up
    ram = [line for line in sim.kernel.resources.format_iomem().splitlines() if "System RAM (kmem)" in line]
    assert ram == ["1060000000-106fffffff : System RAM (kmem)"]
    sim.kernel.add_memory_driver_managed(1, CXL_START + bs, bs, "System RAM (kmem)", 0)  # the hole is free again
    assert 523 in sim.kernel.blocks


# -- offline_pages(): pr_debug("memory offlining [mem %#010llx-%#010llx] failed due to %s\n")
# over the range offline_pages() was given, which starts after the block's vmemmap pages.
def test_state_08_offline_failure_log_text_and_range_match_offline_pages():
    sim = Simulation(example_config())
    add_kmem(sim, size=128 * MiB)
    sim.echo(f"{MEM}/memory522/state", "online_movable")
    sim.kernel.set_block_usage(sim.kernel.blocks[522], pinned=1)
    with raises_errno(errno.EBUSY):
        sim.echo(f"{MEM}/memory522/state", "offline")
    assert sim.kernel.kmsg[-1] == ("memory offlining [mem 0x1050200000-0x1057ffffff] failed due to failure to "
                                   "isolate range")
    low = Simulation(BootConfig(nodes=[NodeConfig(0, [0], [MemRange(0, 1 * GiB)])]))
    with raises_errno(errno.EBUSY):
        low.echo(f"{MEM}/memory5/state", "offline")
    assert low.kernel.kmsg[-1] == "memory offlining [mem 0x28000000-0x2fffffff] failed due to failure to isolate range"


# -- offline_and_remove_memory(): pr_err("%s: Failed to remove memory: %d") when the removal
# fails after offlining, pr_warn("%s: Failed to re-online memory: %d") per failed re-online.
def test_rem_02_offline_and_remove_memory_logs_remove_and_reonline_failures():
    sim = Simulation(example_config())
    bs = sim.kernel.block_size
    sim.kernel.add_memory_driver_managed(1, CXL_START, bs, "System RAM (kmem)", MHP_MEMMAP_ON_MEMORY)
    sim.kernel.add_memory_driver_managed(1, CXL_START + bs, bs, "System RAM (kmem)", 0)
    sim.echo(f"{MEM}/memory522/state", "online_movable")
    sim.echo(f"{MEM}/memory523/state", "online_movable")
    sim.echo("/kernel/debug/notifier-error-inject/memory/actions/MEM_GOING_ONLINE/error", "-12")
    with raises_errno(errno.EINVAL):
        sim.kernel.offline_and_remove_memory(CXL_START, 2 * bs)  # mixed altmaps
    assert sim.kernel.kmsg[-3:] == ["offline_and_remove_memory: Failed to remove memory: -22",
                               "try_reonline_memory_block: Failed to re-online memory: -12",
                               "try_reonline_memory_block: Failed to re-online memory: -12"]
