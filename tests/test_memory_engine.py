"""Memory hotplug rules of docs/abi.md (memory blocks, memmap_on_memory, adding and removing
memory, nodes, fault injection, worked examples),
driven in-process through the attribute tree the way a shell would drive /sys."""

from __future__ import annotations

import errno
import os

import pytest
from conftest import (
    CXL_SIZE,
    CXL_START,
    MEM,
    NODE,
    add_kmem,
    block_range,
    block_state,
    example_config,
    meminfo,
    raises_errno,
    uevents,
    valid_zones,
)

from fakesysfs import Simulation
from fakesysfs.config import BootConfig, GiB, MemRange, MiB, NodeConfig
from fakesysfs.engine import BlockState, Kernel
from fakesysfs.engine.hotplug import MHP_MEMMAP_ON_MEMORY
from fakesysfs.errors import EHWPOISON, KernelError

PARAMS = "/module/memory_hotplug/parameters"
FI = "/kernel/debug/notifier-error-inject/memory/actions"


def online_all(sim: Simulation, word: str = "online_movable", blocks=None) -> None:
    for bid in blocks or block_range(sim):
        assert sim.echo(f"{MEM}/memory{bid}/state", word) == len(word) + 1


# -- 1.1 / 1.2: files and formats ------------------------------------------------------------------
def test_block_size_bytes_is_lowercase_hex_without_prefix():
    assert Simulation(example_config()).cat(f"{MEM}/block_size_bytes") == "8000000\n"
    assert Simulation(example_config(block_size=2 * GiB)).cat(f"{MEM}/block_size_bytes") == "80000000\n"


def test_root_01_block_directories_only_where_memory_is_present():
    cfg = BootConfig(nodes=[NodeConfig(0, [0], [MemRange(0, 3 * GiB), MemRange(4 * GiB, 2 * GiB)])])
    names = set(Simulation(cfg).tree.readdir(MEM))
    assert {"memory0", "memory23", "memory32", "memory47"} <= names
    assert not {f"memory{i}" for i in range(24, 32)} & names
    assert "memory48" not in names


def test_phys_index_is_zero_padded_hex():
    sim = Simulation(example_config())
    add_kmem(sim)
    assert sim.cat(f"{MEM}/memory40/phys_index") == "00000028\n"
    assert sim.cat(f"{MEM}/memory522/phys_index") == "0000020a\n"
    assert sim.cat(f"{MEM}/memory649/phys_index") == "00000289\n"


def test_block_directory_files_modes_and_links():
    sim = Simulation(example_config())
    t = sim.tree
    names = set(t.readdir(f"{MEM}/memory40"))
    assert names == {"node0", "online", "phys_device", "phys_index", "power", "removable", "state",
                     "subsystem", "uevent", "valid_zones"}
    modes = {n: t.getattr(f"{MEM}/memory40/{n}").mode & 0o777 for n in names}
    assert modes["state"] == modes["online"] == modes["uevent"] == 0o644
    assert modes["phys_index"] == modes["phys_device"] == modes["removable"] == modes["valid_zones"] == 0o444
    assert t.readlink(f"{MEM}/memory40/subsystem") == "../../../../bus/memory"
    assert t.readlink(f"{MEM}/memory40/node0") == "../../node/node0"
    assert t.readlink(f"{NODE}/node0/memory40") == "../../memory/memory40"
    assert t.readlink("/bus/memory/devices/memory40") == "../../../devices/system/memory/memory40"
    assert sim.cat(f"{MEM}/memory40/removable") == "1\n"
    assert sim.cat(f"{MEM}/memory40/phys_device") == "0\n"
    assert sim.cat(f"{MEM}/memory40/uevent") == ""


def test_sys_01_open_checks_mode_bits_even_for_root():
    t = Simulation(example_config()).tree
    with raises_errno(errno.EACCES):
        t.open(f"{MEM}/block_size_bytes", os.O_WRONLY)
    with raises_errno(errno.EACCES):
        t.open(f"{PARAMS}/memmap_on_memory", os.O_WRONLY)
    with raises_errno(errno.EACCES):
        t.open("/bus/memory/drivers_probe", os.O_RDONLY)


def test_sys_02_zero_length_write_never_reaches_the_store():
    t = Simulation(example_config()).tree
    fh = t.open(f"{MEM}/auto_online_blocks", os.O_WRONLY)
    assert t.write(fh, b"") == 0


def test_sys_02_text_ends_at_first_nul_and_count_is_the_full_write():
    sim = Simulation(example_config())
    assert sim.echo(f"{MEM}/auto_online_blocks", b"online_movable\0garbage", newline=False) == 22
    assert sim.cat(f"{MEM}/auto_online_blocks") == "online_movable\n"


def test_sys_02_writes_are_cut_to_one_page():
    sim = Simulation(example_config())
    with raises_errno(errno.EINVAL):
        sim.echo(f"{MEM}/auto_online_blocks", "x" * 5000)


def test_sys_03_read_continues_in_the_snapshot_of_the_first_read():
    sim = Simulation(example_config())
    t = sim.tree
    fh = t.open(f"{MEM}/memory40/state", os.O_RDONLY)
    assert t.read(fh, 3, 0) == b"onl"
    sim.kernel.blocks[40].unmovable = 0
    sim.echo(f"{MEM}/memory40/state", "offline")
    assert t.read(fh, 100, 3) == b"ine\n"
    assert t.read(fh, 100, 7) == b""


# -- auto_online_blocks ----------------------------------------------------------------------------
def test_auto_online_blocks_accepts_the_four_words_only():
    sim = Simulation(example_config())
    for word in ("online", "online_kernel", "online_movable", "offline"):
        assert sim.echo(f"{MEM}/auto_online_blocks", word) == len(word) + 1
        assert sim.cat(f"{MEM}/auto_online_blocks") == word + "\n"
    for bad in ("Online", "online ", " offline", "", "on"):
        with raises_errno(errno.EINVAL):
            sim.echo(f"{MEM}/auto_online_blocks", bad)


def test_auto_01_auto_online_onlines_new_blocks_in_ascending_order():
    sim = Simulation(example_config())
    sim.echo(f"{MEM}/auto_online_blocks", "online_movable")
    mark = sim.kernel.events.seqnum
    add_kmem(sim)
    onl = [d for a, d in uevents(sim, mark) if a == "online"]
    assert onl == [f"{MEM}/memory{b}" for b in block_range(sim)]
    assert all(valid_zones(sim, b) == "Movable" for b in block_range(sim))


def test_auto_01_failed_auto_online_leaves_blocks_offline_but_add_succeeds():
    sim = Simulation(example_config())
    sim.echo(f"{MEM}/auto_online_blocks", "online")
    sim.echo(f"{FI}/MEM_GOING_ONLINE/error", "-12")
    add_kmem(sim)
    assert all(block_state(sim, b) == "offline" for b in block_range(sim))


def test_auto_02_memhp_default_state_sets_the_boot_value():
    kernel_policy = Simulation(example_config(auto_online_blocks="online_kernel"))
    assert kernel_policy.cat(f"{MEM}/auto_online_blocks") == "online_kernel\n"


# -- 2.1 state machine -----------------------------------------------------------------------------
@pytest.fixture
def added() -> Simulation:
    sim = Simulation(example_config())
    add_kmem(sim)
    return sim


def test_a8_state_versus_online_writes(added: Simulation):
    sim = added
    s, o = f"{MEM}/memory522/state", f"{MEM}/memory522/online"
    assert sim.echo(o, "0") == 2  # offline, 0 > online: success, nothing happens
    with raises_errno(errno.EINVAL):
        sim.echo(s, "offline")
    assert sim.echo(s, "online") == 7
    with raises_errno(errno.EINVAL):
        sim.echo(s, "online")
    with raises_errno(errno.EINVAL):
        sim.echo(s, "online_movable")
    mark = sim.kernel.events.seqnum
    assert sim.echo(o, "1") == 2
    assert uevents(sim, mark) == []
    for bad in ("Online", "ONLINE", "online ", "offline\n\n"):
        with raises_errno(errno.EINVAL):
            sim.echo(s, bad)
    with raises_errno(errno.EINVAL):
        sim.echo(o, "x")
    assert sim.echo(o, "no") == 3
    assert block_state(sim, 522) == "offline"
    assert sim.echo(o, "yes") == 4
    assert block_state(sim, 522) == "online"


def test_state_02_online_movable_write_returns_15_and_emits_online(added: Simulation):
    mark = added.kernel.events.seqnum
    assert added.echo(f"{MEM}/memory522/state", "online_movable") == 15
    assert uevents(added, mark) == [("online", f"{MEM}/memory522")]
    assert added.cat(f"{MEM}/memory522/online") == "1\n"


def test_state_03_bool_parser_depends_on_profile():
    new = Simulation(example_config())
    add_kmem(new)
    assert new.echo(f"{MEM}/memory522/online", "enable") == 7
    old = Simulation(example_config(kernel_profile="6.9-6.16"))
    add_kmem(old)
    with raises_errno(errno.EINVAL):
        old.echo(f"{MEM}/memory522/online", "enable")
    assert old.echo(f"{MEM}/memory522/online", "on") == 3


def test_state_05_stale_online_type_quirk(added: Simulation):
    sim = added
    sim.echo(f"{MEM}/memory522/state", "online_kernel")
    assert valid_zones(sim, 522) == "Normal"
    with raises_errno(errno.EINVAL):
        sim.echo(f"{MEM}/memory522/state", "online_movable")  # rejected, but the type stays stored
    sim.echo(f"{MEM}/memory522/state", "offline")
    assert valid_zones(sim, 522) == "Normal Movable"  # policy default is Normal...
    sim.echo(f"{MEM}/memory522/online", "1")
    assert valid_zones(sim, 522) == "Movable"  # ...yet the stale Movable request wins


def test_state_05_type_is_reset_after_an_attempt(added: Simulation):
    sim = added
    sim.echo(f"{MEM}/memory522/state", "online_movable")
    sim.echo(f"{MEM}/memory522/state", "offline")
    sim.echo(f"{MEM}/memory522/online", "1")
    assert valid_zones(sim, 522) == "Normal"  # the Movable request was used up by the first onlining


def test_state_06_memtotal_grows_by_p_minus_v_per_altmap_block(added: Simulation):
    added.echo(f"{MEM}/memory522/state", "online_movable")
    assert meminfo(added, 1)["MemTotal"] == 129024
    assert meminfo(added, 1)["MemFree"] == 129024
    plain = Simulation(example_config())
    add_kmem(plain, memmap_on_memory=False)
    plain.echo(f"{MEM}/memory522/state", "online_movable")
    assert meminfo(plain, 1)["MemTotal"] == 131072


def test_state_07_poisoned_block_refuses_onlining_with_ehwpoison(added: Simulation):
    added.kernel.blocks[522].poisoned = 1
    mark = added.kernel.events.seqnum
    with raises_errno(EHWPOISON):
        added.echo(f"{MEM}/memory522/state", "online")
    assert block_state(added, 522) == "offline" and uevents(added, mark) == []


def test_state_08_boot_kernel_memory_refuses_offline_with_ebusy():
    sim = Simulation(example_config())
    mark = sim.kernel.events.seqnum
    with raises_errno(errno.EBUSY):
        sim.echo(f"{MEM}/memory40/state", "offline")
    assert block_state(sim, 40) == "online" and uevents(sim, mark) == []


def test_state_08_movable_blocks_offline_and_migrate_used_pages(added: Simulation):
    sim = added
    online_all(sim, blocks=[522, 523])
    sim.kernel.blocks[522].movable_used = 1000
    free_before = meminfo(sim, 1)["MemFree"]
    node0_free = meminfo(sim, 0)["MemFree"]
    sim.echo(f"{MEM}/memory522/state", "offline")
    # do_migrate_range(): another memory node (node 0) takes them, not memory523 of node 1.
    assert sim.kernel.blocks[523].movable_used == 0
    assert meminfo(sim, 0)["MemFree"] == node0_free - 4000
    assert meminfo(sim, 1)["MemFree"] == free_before - (129024 - 4000)
    assert meminfo(sim, 1)["MemTotal"] == 129024


def test_state_08_offline_migrates_to_the_source_node_only_when_it_is_the_only_memory_node():
    cfg = BootConfig(nodes=[NodeConfig(0, [0], [MemRange(0x100000000, 4 * GiB)])], boot_unmovable=False)
    sim = Simulation(cfg)
    first, second = sorted(sim.kernel.blocks)[1:3]
    for bid in (first, second):
        sim.echo(f"{MEM}/memory{bid}/state", "offline")
        sim.echo(f"{MEM}/memory{bid}/state", "online_movable")
    sim.kernel.set_block_usage(sim.kernel.blocks[first], movable_used=100)
    sim.echo(f"{MEM}/memory{first}/state", "offline")
    assert sim.kernel.blocks[second].movable_used == 100  # the same node, its highest zone first


def test_state_08_offline_migrates_to_the_nearest_memory_node():
    from fakesysfs.testing import check_invariants

    # The default topology: node 0 DRAM; dax0.0 (node 1, CXL) and dax1.0 (node 2, hmem) are
    # kmem-bound at boot; node 2 is 22 from node 0 and 30 from node 1.
    with Simulation() as sim:
        for bid in (522, 1024):
            sim.echo(f"{MEM}/memory{bid}/state", "online_movable")
        node0_free = sim.node(0).mem_free
        sim.set_block_usage(1024, used=500)
        sim.echo(f"{MEM}/memory1024/state", "offline")
        assert sim.kernel.blocks[522].movable_used == 0
        assert sim.node(0).mem_free == node0_free - 500 * 4096
        check_invariants(sim)


def test_state_09_already_online_is_einval_before_operation_errors(added: Simulation):
    sim = added
    sim.echo(f"{MEM}/memory522/state", "online")
    sim.echo(f"{FI}/MEM_GOING_ONLINE/error", "-12")
    with raises_errno(errno.EINVAL):
        sim.echo(f"{MEM}/memory522/state", "online")
    assert sim.echo(f"{MEM}/memory522/online", "1") == 2


def test_memory0_spans_two_zones_and_cannot_be_offlined():
    sim = Simulation(example_config())
    assert valid_zones(sim, 0) == "none"
    assert valid_zones(sim, 1) == "DMA32"
    assert valid_zones(sim, 40) == "Normal"
    with raises_errno(errno.EINVAL):
        sim.echo(f"{MEM}/memory0/state", "offline")


def test_block_with_holes_cannot_be_offlined():
    cfg = BootConfig(nodes=[NodeConfig(0, [0], [MemRange(0x100000000, 0x4000000), MemRange(0x106000000, 0x2000000)])],
                     boot_unmovable=False)
    sim = Simulation(cfg)
    with raises_errno(errno.EINVAL):
        sim.echo(f"{MEM}/memory32/state", "offline")


# -- 2.2 zones -------------------------------------------------------------------------------------
def test_zone_02_and_a7_contig_zones_walk_through(added: Simulation):
    sim = added
    assert valid_zones(sim, 530) == "Normal Movable"
    sim.echo(f"{MEM}/memory530/state", "online_movable")
    sim.echo(f"{MEM}/memory540/state", "online_movable")
    assert valid_zones(sim, 535) == "Movable Normal"
    assert valid_zones(sim, 545) == "Normal Movable"
    sim.echo(f"{MEM}/memory535/online", "1")
    assert valid_zones(sim, 535) == "Movable"
    sim.echo(f"{MEM}/memory545/state", "online_kernel")
    assert valid_zones(sim, 545) == "Normal"
    sim.echo(f"{MEM}/memory540/state", "offline")
    assert valid_zones(sim, 538) == "Normal Movable"
    assert valid_zones(sim, 533) == "Movable Normal"
    assert valid_zones(sim, 541) == "Normal Movable"


def test_zone_02_both_spans_overlapping_gives_kernel_first(added: Simulation):
    sim = added
    sim.echo(f"{MEM}/memory530/state", "online_movable")
    sim.echo(f"{MEM}/memory540/state", "online_movable")
    sim.echo(f"{MEM}/memory532/state", "online_kernel")
    sim.echo(f"{MEM}/memory538/state", "online_kernel")
    assert valid_zones(sim, 535) == "Normal Movable"


def test_movable_node_flag_makes_movable_the_default():
    sim = Simulation(example_config(movable_node=True))
    add_kmem(sim)
    assert valid_zones(sim, 530) == "Movable Normal"


def test_zone_03_auto_movable_numa_aware_gives_normal_on_memory_only_nodes(added: Simulation):
    sim = added
    sim.echo(f"{PARAMS}/online_policy", "auto-movable")
    assert all(valid_zones(sim, b) == "Normal Movable" for b in (522, 600, 649))
    sim.echo(f"{PARAMS}/auto_movable_numa_aware", "N")
    assert valid_zones(sim, 522) == "Movable Normal"


def test_zone_03_global_ratio_decides_when_not_numa_aware():
    def small() -> BootConfig:  # 8 GiB of boot kernel memory
        return BootConfig(nodes=[NodeConfig(0, [0, 1], [MemRange(4 * GiB, 8 * GiB)])], possible_nodes=[0, 1],
                          online_policy="auto-movable", auto_movable_numa_aware=False, memmap_on_memory="Y")

    sim = Simulation(small())
    add_kmem(sim, size=16 * GiB)
    assert valid_zones(sim, 522) == "Movable Normal"  # 16 GiB <= 3.01 * 8 GiB
    sim = Simulation(small())
    add_kmem(sim, size=32 * GiB)
    assert valid_zones(sim, 522) == "Normal Movable"  # 32 GiB > 24.08 GiB


def test_zone_auto_movable_ratio_zero_always_kernel(added: Simulation):
    added.echo(f"{PARAMS}/online_policy", "auto-movable")
    added.echo(f"{PARAMS}/auto_movable_numa_aware", "0")
    added.echo(f"{PARAMS}/auto_movable_ratio", "0")
    assert valid_zones(added, 522) == "Normal Movable"


def test_param_01_policy_changes_take_effect_at_next_decision_only(added: Simulation):
    sim = added
    sim.echo(f"{MEM}/memory522/state", "online_movable")
    sim.echo(f"{PARAMS}/online_policy", "auto-movable")
    assert valid_zones(sim, 522) == "Movable"


# -- 1.4 module parameters -------------------------------------------------------------------------
def test_module_parameters_formats_and_errors():
    sim = Simulation(example_config())
    assert sim.cat(f"{PARAMS}/memmap_on_memory") == "Y\n"
    assert Simulation(example_config(memmap_on_memory="force")).cat(f"{PARAMS}/memmap_on_memory") == "force\n"
    assert Simulation(example_config(memmap_on_memory="N")).cat(f"{PARAMS}/memmap_on_memory") == "N\n"
    assert sim.tree.getattr(f"{PARAMS}/memmap_on_memory").mode & 0o777 == 0o444
    assert sim.cat(f"{PARAMS}/online_policy") == "contig-zones\n"
    with raises_errno(errno.EINVAL):
        sim.echo(f"{PARAMS}/online_policy", "auto_movable")
    assert sim.cat(f"{PARAMS}/auto_movable_ratio") == "301\n"
    with raises_errno(errno.EINVAL):
        sim.echo(f"{PARAMS}/auto_movable_ratio", "-1")
    with raises_errno(errno.ERANGE):
        sim.echo(f"{PARAMS}/auto_movable_ratio", "4294967296")
    sim.echo(f"{PARAMS}/auto_movable_ratio", "0x10")
    assert sim.cat(f"{PARAMS}/auto_movable_ratio") == "16\n"
    assert sim.cat(f"{PARAMS}/auto_movable_numa_aware") == "Y\n"
    with raises_errno(errno.EINVAL):
        sim.echo(f"{PARAMS}/auto_movable_numa_aware", "x")
    sim.echo(f"{PARAMS}/auto_movable_numa_aware", "off")
    assert sim.cat(f"{PARAMS}/auto_movable_numa_aware") == "N\n"


# -- 3 memmap_on_memory ----------------------------------------------------------------------------
@pytest.mark.parametrize(("block_size", "vmemmap"), [(128 * MiB, 512), (2 * GiB, 8192), (1 << 30, 4096)])
def test_a1_vmemmap_pages_per_block(block_size: int, vmemmap: int):
    k = Kernel(example_config(block_size=block_size))
    assert k.memory_block_memmap_on_memory_pages() == vmemmap
    assert k.mhp_supports_memmap_on_memory()


def test_mom_force_rounds_v_to_a_pageblock_and_support_needs_a_pmd_sized_memmap():
    k = Kernel(example_config(struct_page_size=56, memmap_on_memory="force"))
    assert k.memory_block_memmap_on_memory_pages() == 512  # 448 rounded up to 512
    assert not k.mhp_supports_memmap_on_memory()  # 1.75 MiB memmap is not PMD sized on x86
    assert not Kernel(example_config(memmap_on_memory="N")).mhp_supports_memmap_on_memory()


def test_mom_unsupported_request_silently_takes_the_ordinary_path():
    sim = Simulation(example_config(memmap_on_memory="N"))
    add_kmem(sim, memmap_on_memory=True)
    assert all(sim.kernel.blocks[b].altmap == 0 for b in block_range(sim))


def test_mom_03_08_vmemmap_pages_are_present_but_never_managed(added: Simulation):
    online_all(added)
    z = added.kernel.nodes[1].zones["Movable"]
    assert z.present == 128 * 32768 == 4194304
    assert z.managed == 128 * 32256 == 4128768
    assert meminfo(added, 1) == {**meminfo(added, 1), "MemTotal": 16515072, "MemFree": 16515072, "MemUsed": 0}


def test_mom_04_offline_gives_back_present_and_managed(added: Simulation):
    online_all(added, blocks=[522])
    added.echo(f"{MEM}/memory522/state", "offline")
    z = added.kernel.nodes[1].zones["Movable"]
    assert (z.present, z.managed, z.free) == (0, 0, 0)


def test_mom_07_blocks_of_one_chunked_add_are_independent(added: Simulation):
    k = added.kernel
    k.remove_memory(CXL_START + 5 * k.block_size, k.block_size)
    assert 527 not in k.blocks and 526 in k.blocks and 528 in k.blocks
    online_all(added, blocks=[528])
    assert block_state(added, 528) == "online"


# -- 4.2 add ---------------------------------------------------------------------------------------
def test_a2_chunked_add_creates_node_then_blocks_with_events_in_order():
    sim = Simulation(example_config())
    mark = sim.kernel.events.seqnum
    add_kmem(sim)
    ev = uevents(sim, mark)
    assert ev[:1] == [("add", f"{NODE}/node1")]  # 6.18: the node first (R-ADD-03 predates it)
    assert ev[1:] == [("add", f"{MEM}/memory{b}") for b in range(522, 650)]
    assert sim.cat(f"{NODE}/online") == "0-1\n"
    assert sim.cat(f"{NODE}/has_memory") == "0\n"
    assert sim.cat(f"{NODE}/node0/distance") == "10 20\n"
    assert sim.cat(f"{NODE}/node1/distance") == "20 10\n"
    assert meminfo(sim, 1)["MemTotal"] == 0
    assert {f"memory{b}" for b in range(522, 650)} <= set(sim.tree.readdir(f"{NODE}/node1"))
    assert all(sim.kernel.blocks[b].altmap == 512 for b in range(522, 650))
    assert all(valid_zones(sim, b) == "Normal Movable" for b in (522, 649))


def test_a2_node0_is_not_charged_with_memmap_on_memory():
    sim = Simulation(example_config())
    before = meminfo(sim, 0)
    add_kmem(sim)
    assert meminfo(sim, 0) == before


def test_add_02_one_resource_per_add_nested_in_the_claim():
    sim = Simulation(example_config())
    sim.kernel.resources.request_region(CXL_START, CXL_SIZE, "dax0.0", busy=False)
    add_kmem(sim)
    iomem = sim.kernel.resources.format_iomem()
    assert "1050000000-144fffffff : dax0.0\n  1050000000-144fffffff : System RAM (kmem)\n" in iomem
    assert iomem.count("System RAM (kmem)") == 1


def test_add_name_must_be_system_ram_parenthesized():
    k = Simulation(example_config()).kernel
    with raises_errno(errno.EINVAL):
        k.add_memory_driver_managed(1, CXL_START, CXL_SIZE, "kmem", 0)
    with raises_errno(errno.EINVAL):
        k.add_memory_driver_managed(1, CXL_START, CXL_SIZE, "System RAM (kmem", 0)


def test_add_errors_alignment_range_conflict_group_and_node():
    sim = Simulation(example_config())
    k = sim.kernel
    with raises_errno(errno.EINVAL):
        k.add_memory(1, CXL_START + 4096, k.block_size)
    assert "unaligned hotplug range" in k.kmsg[-1]
    with raises_errno(errno.E2BIG):
        k.add_memory(1, (1 << 52) - k.block_size, 2 * k.block_size)
    with raises_errno(errno.EEXIST):
        k.add_memory(0, 0, k.block_size)  # boot System RAM
    with raises_errno(errno.EINVAL):
        k.add_memory_driver_managed(7, CXL_START, CXL_SIZE, "System RAM (kmem)", 1 << 2)  # no group 7
    with raises_errno(errno.EINVAL):
        k.add_memory(5, CXL_START, CXL_SIZE)  # node 5 not possible
    assert k.resources.format_iomem().count("System RAM") == 1


def test_add_01_failed_add_leaves_no_trace():
    sim = Simulation(example_config())
    before = (set(sim.kernel.blocks), sim.cat(f"{NODE}/online"), sim.kernel.resources.format_iomem())
    sim.kernel.faults.memmap_fail_at_chunk = 5
    with raises_errno(errno.ENOMEM):
        add_kmem(sim)
    assert (set(sim.kernel.blocks), sim.cat(f"{NODE}/online"), sim.kernel.resources.format_iomem()) == before
    assert not sim.kernel.memory_groups


def test_a5_chunk_failure_unwinds_blocks_with_remove_events_in_ascending_order():
    sim = Simulation(example_config())
    mark = sim.kernel.events.seqnum
    sim.kernel.faults.memmap_fail_at_chunk = 5
    with raises_errno(errno.ENOMEM):
        add_kmem(sim)
    assert uevents(sim, mark) == ([("add", f"{NODE}/node1")]
                                + [("add", f"{MEM}/memory{b}") for b in range(522, 527)]
                                + [("remove", f"{MEM}/memory{b}") for b in range(522, 527)]
                                + [("remove", f"{NODE}/node1")])
    assert "node1" not in sim.tree.readdir(NODE)


def test_add_04_blocks_belong_to_the_group():
    sim = Simulation(example_config())
    mgid = add_kmem(sim)
    assert sim.kernel.memory_groups[mgid].blocks == set(block_range(sim))
    assert all(sim.kernel.blocks[b].group.id == mgid for b in block_range(sim))


def test_a3_ordinary_path_charges_the_memmap_to_node0_and_gives_it_back():
    sim = Simulation(example_config(memmap_on_memory="N"))
    before = meminfo(sim, 0)
    add_kmem(sim)
    after = meminfo(sim, 0)
    assert before["MemFree"] - after["MemFree"] == 262144
    assert after["MemUsed"] - before["MemUsed"] == 262144
    assert after["MemTotal"] == before["MemTotal"]
    online_all(sim)
    assert meminfo(sim, 1)["MemTotal"] == 16777216
    online_all(sim, "offline")
    sim.kernel.remove_memory(CXL_START, CXL_SIZE)
    assert meminfo(sim, 0) == before


def test_a4_2gib_blocks_with_and_without_memmap_on_memory():
    sim = Simulation(example_config(block_size=2 * GiB))
    add_kmem(sim, start=0x1080000000, size=14 * GiB)
    assert sorted(sim.kernel.blocks)[-7:] == list(range(33, 40))
    assert sim.cat(f"{MEM}/memory33/phys_index") == "00000021\n"
    online_all(sim, blocks=range(33, 40))
    assert meminfo(sim, 1)["MemTotal"] == 14450688
    assert sim.kernel.nodes[1].present_pages == 3670016
    plain = Simulation(example_config(block_size=2 * GiB, memmap_on_memory="N"))
    free0 = meminfo(plain, 0)["MemFree"]
    add_kmem(plain, start=0x1080000000, size=14 * GiB)
    assert free0 - meminfo(plain, 0)["MemFree"] == 229376
    online_all(plain, blocks=range(33, 40))
    assert meminfo(plain, 1)["MemTotal"] == 14680064


def test_add_06_node_with_free_normal_memory_pays_for_its_own_memmap():
    sim = Simulation(example_config(memmap_on_memory="N"))
    add_kmem(sim, size=1 * GiB)
    online_all(sim, "online_kernel", blocks=block_range(sim, size=1 * GiB))
    free0, free1 = meminfo(sim, 0)["MemFree"], meminfo(sim, 1)["MemFree"]
    add_kmem(sim, start=CXL_START + 1 * GiB, size=1 * GiB)
    assert meminfo(sim, 0)["MemFree"] == free0
    assert free1 - meminfo(sim, 1)["MemFree"] == 8 * 2048


def test_add_06_movable_only_node_does_not_pay_for_its_memmap():
    sim = Simulation(example_config(memmap_on_memory="N"))
    add_kmem(sim, size=1 * GiB)
    online_all(sim, blocks=block_range(sim, size=1 * GiB))
    free0 = meminfo(sim, 0)["MemFree"]
    add_kmem(sim, start=CXL_START + 1 * GiB, size=1 * GiB)
    assert free0 - meminfo(sim, 0)["MemFree"] == 8 * 2048


def test_seed_series_motivation_small_dram_host_needs_memmap_on_memory_for_a_huge_add():
    small = {"nodes": [NodeConfig(0, [0, 1], [MemRange(4 * GiB, 2 * GiB)])], "possible_nodes": [0, 1]}
    without = Simulation(BootConfig(**small, memmap_on_memory="N"))
    with raises_errno(errno.ENOMEM):
        add_kmem(without, size=1 << 40)  # 16 GiB of memmap on a 2 GiB host
    assert meminfo(without, 0)["MemFree"] == meminfo(Simulation(BootConfig(**small)), 0)["MemFree"]
    assert set(without.kernel.blocks) == set(range(32, 48))
    with_mom = Simulation(BootConfig(**small, memmap_on_memory="Y"))
    add_kmem(with_mom, size=1 << 40)
    assert len(with_mom.kernel.blocks) == 16 + 8192


# -- 4.4 remove ------------------------------------------------------------------------------------
def test_a2_removal_after_offlining_removes_blocks_then_node():
    sim = Simulation(example_config())
    mgid = add_kmem(sim)
    online_all(sim)
    assert sim.cat("/devices/virtual/memory_tiering/memory_tier4/nodelist") == "0-1\n"
    online_all(sim, "offline")
    assert meminfo(sim, 1)["MemTotal"] == 0 and sim.cat(f"{NODE}/has_memory") == "0\n"
    mark = sim.kernel.events.seqnum
    sim.kernel.remove_memory(CXL_START, CXL_SIZE)
    sim.kernel.memory_group_unregister(mgid)
    assert uevents(sim, mark) == ([("remove", f"{MEM}/memory{b}") for b in range(522, 650)]
                                  + [("remove", f"{NODE}/node1")])
    assert sim.cat(f"{NODE}/online") == "0\n"
    assert sim.cat(f"{NODE}/node0/distance") == "10\n"
    assert "System RAM (kmem)" not in sim.kernel.resources.format_iomem()


def test_remove_refuses_with_ebusy_when_a_block_is_online_and_changes_nothing(added: Simulation):
    sim = added
    sim.echo(f"{MEM}/memory600/state", "online_movable")
    mark = sim.kernel.events.seqnum
    with raises_errno(errno.EBUSY):
        sim.kernel.remove_memory(CXL_START, CXL_SIZE)
    assert sim.kernel.kmsg[-1] == ("removing memory fails, because memory [0x00000012c0000000-0x00000012c7ffffff] "
                                   "is onlined")
    assert uevents(sim, mark) == [] and len([b for b in sim.kernel.blocks if b >= 522]) == 128


def test_remove_of_a_mixed_altmap_range_is_einval():
    sim = Simulation(example_config())
    bs = sim.kernel.block_size
    sim.kernel.add_memory_driver_managed(1, CXL_START, bs, "System RAM (kmem)", MHP_MEMMAP_ON_MEMORY)
    sim.kernel.add_memory_driver_managed(1, CXL_START + bs, bs, "System RAM (kmem)", 0)
    with raises_errno(errno.EINVAL):
        sim.kernel.remove_memory(CXL_START, 2 * bs)
    assert {522, 523} <= set(sim.kernel.blocks)
    sim.kernel.remove_memory(CXL_START, bs)
    sim.kernel.remove_memory(CXL_START + bs, bs)
    assert "node1" not in sim.tree.readdir(NODE)


def test_rem_02_offline_and_remove_memory_reonlines_with_remembered_zones_on_failure(added: Simulation):
    sim = added
    bs = sim.kernel.block_size
    sim.echo(f"{MEM}/memory522/state", "online_movable")
    sim.echo(f"{MEM}/memory523/state", "online_kernel")
    assert sim.kernel.blocks[524].state is BlockState.OFFLINE
    sim.echo(f"{MEM}/memory525/state", "online_movable")
    sim.kernel.blocks[525].unmovable = 1
    with raises_errno(errno.EBUSY):
        sim.kernel.offline_and_remove_memory(CXL_START, 4 * bs)
    assert [valid_zones(sim, b) for b in (522, 523, 525)] == ["Movable", "Normal", "Movable"]
    sim.kernel.blocks[525].unmovable = 0
    sim.kernel.offline_and_remove_memory(CXL_START, 4 * bs)
    assert not {522, 523, 524, 525} & set(sim.kernel.blocks)
    with raises_errno(errno.EINVAL):
        sim.kernel.offline_and_remove_memory(CXL_START + 1, bs)


# -- 4.5 probe -------------------------------------------------------------------------------------
def test_add_09_probe_file_adds_one_block():
    sim = Simulation(example_config(probe=True))
    assert sim.tree.getattr(f"{MEM}/probe").mode & 0o777 == 0o200
    assert sim.echo(f"{MEM}/probe", "0x1050000000") == 13
    assert block_state(sim, 522) == "offline" and sim.kernel.blocks[522].altmap == 0
    with raises_errno(errno.EEXIST):
        sim.echo(f"{MEM}/probe", "0x1050000000")
    with raises_errno(errno.EINVAL):
        sim.echo(f"{MEM}/probe", "0x1050001000")
    with raises_errno(errno.EINVAL):
        sim.echo(f"{MEM}/probe", "banana")
    with raises_errno(errno.ERANGE):
        sim.echo(f"{MEM}/probe", "0x10000000000000000")
    assert "probe" not in Simulation(example_config()).tree.readdir(MEM)


# -- 4.6 groups ------------------------------------------------------------------------------------
def test_grp_01_group_ids_lowest_free_and_unregister_rules():
    k = Simulation(example_config()).kernel
    a = k.memory_group_register_static(1, 100)
    b = k.memory_group_register_dynamic(1, 32768)
    assert (a, b) == (0, 1)
    k.memory_group_unregister(a)
    assert k.memory_group_register_static(0, 5) == 0
    with raises_errno(errno.EINVAL):
        k.memory_group_unregister(9)
    with raises_errno(errno.EINVAL):
        k.memory_group_register_static(1, 0)
    with raises_errno(errno.EINVAL):
        k.memory_group_register_static(4, 10)
    with raises_errno(errno.EINVAL):
        k.memory_group_register_dynamic(1, 3 * 32768)
    with raises_errno(errno.EINVAL):
        k.memory_group_register_dynamic(1, 1024)


def test_grp_01_group_with_blocks_cannot_be_unregistered(added: Simulation):
    with raises_errno(errno.EBUSY):
        added.kernel.memory_group_unregister(0)


# -- 4.7 nodes -------------------------------------------------------------------------------------
def test_node_root_files_and_node_directory():
    sim = Simulation(example_config())
    assert sim.cat(f"{NODE}/possible") == "0-1\n"
    assert sim.cat(f"{NODE}/online") == "0\n"
    assert sim.cat(f"{NODE}/has_cpu") == "0\n"
    assert sim.cat(f"{NODE}/has_generic_initiator") == "\n"
    assert sim.cat(f"{NODE}/node0/cpulist") == "0-1\n"
    assert sim.cat(f"{NODE}/node0/cpumap") == "3\n"
    assert sim.tree.readlink(f"{NODE}/node0/cpu1") == "../../cpu/cpu1"
    assert sim.tree.readlink(f"{NODE}/node0/subsystem") == "../../../../bus/node"
    with raises_errno(errno.ENOENT):
        sim.tree.getattr(f"{NODE}/node1")


def test_node_06_meminfo_format_matches_the_kernel():
    sim = Simulation(example_config())
    lines = sim.cat(f"{NODE}/node0/meminfo").splitlines()
    assert lines[0].startswith("Node 0 MemTotal:       ") and lines[0].endswith(" kB")
    assert len(lines[0]) == len("Node 0 MemTotal:       16515072 kB")
    assert lines[-3] == "Node 0 HugePages_Total:     0"
    assert lines[-2] == "Node 0 HugePages_Free:      0"
    total, free, used = (int(line.split()[3]) for line in lines[:3])
    assert total - free == used


def test_node_03_has_memory_changes_on_first_online_and_last_offline(added: Simulation):
    sim = added
    assert sim.cat(f"{NODE}/has_memory") == "0\n"
    sim.echo(f"{MEM}/memory522/state", "online_movable")
    sim.echo(f"{MEM}/memory523/state", "online_movable")
    assert sim.cat(f"{NODE}/has_memory") == "0-1\n"
    sim.echo(f"{MEM}/memory522/state", "offline")
    assert sim.cat(f"{NODE}/has_memory") == "0-1\n"
    sim.echo(f"{MEM}/memory523/state", "offline")
    assert sim.cat(f"{NODE}/has_memory") == "0\n"
    assert "node1" in sim.tree.readdir(NODE)  # R-NODE-02: offlining never unregisters


# 6.17 dropped the N_NORMAL_MEMORY updates (8d2882a8edb8); "mm/memory_hotplug: maintain
# N_NORMAL_MEMORY during hotplug" restored them and reached 6.18.y in 6.18.23 (the reference
# machine runs 6.18.44), so only 6.17 keeps the boot value. R-NODE-05 predates the fix.
@pytest.mark.parametrize(("profile", "expected"),
                         [("6.8", "0-1\n"), ("6.9-6.16", "0-1\n"), ("6.17", "0\n"), ("6.18", "0-1\n")])
def test_node_05_has_normal_memory_by_profile(profile: str, expected: str):
    sim = Simulation(example_config(kernel_profile=profile))
    add_kmem(sim)
    sim.echo(f"{MEM}/memory522/state", "online_movable")
    assert sim.cat(f"{NODE}/has_normal_memory") == "0\n"
    sim.echo(f"{MEM}/memory523/state", "online_kernel")
    assert sim.cat(f"{NODE}/has_normal_memory") == expected
    sim.echo(f"{MEM}/memory523/state", "offline")
    assert sim.cat(f"{NODE}/has_normal_memory") == "0\n"


def test_node_fallback_order_prefers_cpuless_and_higher_nodes_at_equal_distance():
    cfg = BootConfig(nodes=[NodeConfig(0, [0], [MemRange(0, 4 * GiB)]), NodeConfig(1, [], [MemRange(8 * GiB, 4 * GiB)]),
                            NodeConfig(2, [1], [MemRange(16 * GiB, 4 * GiB)])], possible_nodes=[0, 1, 2, 3])
    k = Kernel(cfg)
    assert k.node_fallback_order(2) == [2, 1, 0]
    assert k.node_fallback_order(3) == [0, 1, 2] or k.node_fallback_order(3) == [1, 0, 2]


# -- 1.6 memory tiers ------------------------------------------------------------------------------
def test_tier_01_node_joins_and_leaves_its_tier_with_events(added: Simulation):
    sim = added
    sim.kernel.nodes[1].adistance = 2880
    mark = sim.kernel.events.seqnum
    sim.echo(f"{MEM}/memory522/state", "online_movable")
    tier = "/devices/virtual/memory_tiering/memory_tier22"
    assert uevents(sim, mark) == [("add", tier), ("online", f"{MEM}/memory522")]
    assert sim.cat("/devices/virtual/memory_tiering/memory_tier22/nodelist") == "1\n"
    assert sim.tree.readlink("/bus/memory_tiering/devices/memory_tier22") == f"../../..{tier}"
    mark = sim.kernel.events.seqnum
    sim.echo(f"{MEM}/memory522/state", "offline")
    assert uevents(sim, mark) == [("remove", tier), ("offline", f"{MEM}/memory522")]


# -- 0.3 uevent files ------------------------------------------------------------------------------
def test_sys_08_uevent_write_emits_synthetic_event():
    sim = Simulation(example_config())
    mark = sim.kernel.events.seqnum
    assert sim.echo(f"{MEM}/memory40/uevent", "change") == 7
    (event,) = sim.kernel.events.since(mark)
    assert (event.action, event.devpath, event.subsystem) == ("change", f"{MEM}/memory40", "memory")
    assert dict(event.env) == {"SYNTH_UUID": "0"}
    uuid = "0b5d6a0e-4c3f-4a7a-9c5e-1f2e3d4c5b6a"
    sim.echo(f"{MEM}/memory40/uevent", f"add {uuid} A=1 B=x")
    assert dict(sim.kernel.events.since(mark + 1)[0].env) == {"SYNTH_UUID": uuid, "SYNTH_ARG_A": "1",
                                                              "SYNTH_ARG_B": "x"}
    for bad in ("frobnicate", "changed", f"add {uuid} A-B=1", "add not-a-uuid"):
        with raises_errno(errno.EINVAL):
            sim.echo(f"{MEM}/memory40/uevent", bad)


def test_sys_07_power_directory():
    sim = Simulation(example_config())
    p = f"{MEM}/memory40/power"
    assert sim.cat(f"{p}/control") == "auto\n"
    sim.echo(f"{p}/control", "on")
    assert sim.cat(f"{p}/control") == "on\n"
    with raises_errno(errno.EINVAL):
        sim.echo(f"{p}/control", "off")
    with raises_errno(errno.EIO):
        sim.cat(f"{p}/autosuspend_delay_ms")
    assert sim.cat(f"{p}/runtime_status") == "unsupported\n"


# -- 8 notifier-error-inject -----------------------------------------------------------------------
def test_fi_01_going_online_error_fails_every_online_without_trace(added: Simulation):
    sim = added
    assert sim.cat(f"{FI}/MEM_GOING_ONLINE/error") == "0\n"
    sim.echo(f"{FI}/MEM_GOING_ONLINE/error", "-12")
    assert sim.cat(f"{FI}/MEM_GOING_ONLINE/error") == "-12\n"
    mark = sim.kernel.events.seqnum
    with raises_errno(errno.ENOMEM):
        sim.echo(f"{MEM}/memory522/state", "online")
    with raises_errno(errno.ENOMEM):
        sim.echo(f"{MEM}/memory522/online", "1")
    assert block_state(sim, 522) == "offline" and uevents(sim, mark) == [] and meminfo(sim, 1)["MemTotal"] == 0


def test_fi_02_going_offline_error_fails_every_offline(added: Simulation):
    sim = added
    sim.echo(f"{MEM}/memory522/state", "online_movable")
    sim.echo(f"{FI}/MEM_GOING_OFFLINE/error", "-16")
    with raises_errno(errno.EBUSY):
        sim.echo(f"{MEM}/memory522/state", "offline")
    assert block_state(sim, 522) == "online" and meminfo(sim, 1)["MemTotal"] == 129024


def test_fi_03_values_are_clamped_and_zero_disables():
    sim = Simulation(example_config())
    f = f"{FI}/MEM_GOING_ONLINE/error"
    sim.echo(f, "5")
    assert sim.cat(f) == "0\n"
    sim.echo(f, "-5000")
    assert sim.cat(f) == "-4095\n"
    sim.echo(f, "0x0")
    assert sim.cat(f) == "0\n"
    with raises_errno(errno.EINVAL):
        sim.echo(f, "abc")
    without = Simulation(example_config(notifier_error_inject=False))
    assert "notifier-error-inject" not in without.tree.readdir("/kernel/debug")


def test_engine_never_raises_anything_but_kernel_errors_on_bad_writes(added: Simulation):
    sim = added
    for path in (f"{MEM}/memory522/state", f"{MEM}/memory522/online", f"{MEM}/auto_online_blocks",
                 f"{PARAMS}/online_policy", f"{PARAMS}/auto_movable_ratio", f"{FI}/MEM_GOING_ONLINE/error"):
        for data in (b"\xff\xfe", b"\n", b"\0", b"online\0\xff", "é".encode(), b" " * 4097):
            try:
                sim.echo(path, data)
            except KernelError:
                pass


def test_mom_force_logs_the_pages_each_block_wastes():
    """set_memmap_mode(): ``force`` rounds the vmemmap up to a pageblock and says what that
    costs, once, while the command line is parsed (before any memory exists)."""
    mem = [MemRange(0x100000000, 4 * GiB)]
    k = Kernel(BootConfig(nodes=[NodeConfig(0, [0], mem)], memmap_on_memory="force", struct_page_size=72))
    assert k.kmsg[0] == "Memory hotplug will waste 448 pages in each memory block"  # 576 -> 1024
    k = Kernel(BootConfig(nodes=[NodeConfig(0, [0], mem)], memmap_on_memory="force"))
    assert k.kmsg[0] == "Memory hotplug will waste 0 pages in each memory block"
    k = Kernel(BootConfig(nodes=[NodeConfig(0, [0], mem)], memmap_on_memory="Y", struct_page_size=72))
    assert not any("will waste" in line for line in k.kmsg)
