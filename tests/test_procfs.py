"""The simulated machine's memory /proc files (docs/proc.md): the kernel's formulas, formats
and the agreement between /proc, /sys and the engine before and after hotplug operations."""

from __future__ import annotations

import errno
import os
import platform
import re
import threading
import time
from pathlib import Path

import pytest

from fakesysfs import Simulation
from fakesysfs.config import BootConfig, MemRange, NodeConfig
from fakesysfs.engine.page_alloc import (
    ZoneCounts,
    dirty_limits,
    si_mem_available,
    split_mem_range,
    vm_state_of,
)
from fakesysfs.engine.vmstat import NODE_ITEMS, NUMA_ITEMS, ZONE_ITEMS
from fakesysfs.errors import KernelError
from fakesysfs.procfs import build_kmsg_tree, build_proc_tree, proc_read
from fakesysfs.sysfs.tree import OpenFile, Tree

GiB = 1 << 30
MEM = "/devices/system/memory"
DAX0_BLOCKS = range(522, 650)  # dax0.0: 16 GiB of CXL at 0x1050000000 (default topology)


# -- the kernel's formulas --------------------------------------------------------------------------
def _two_node_zones() -> list[ZoneCounts]:
    """A DRAM node (managed DMA 3840, DMA32 495616, Normal 1531904) and a CXL node with 128
    memmap_on_memory blocks onlined Movable (4128768 managed of 4194304 present)."""
    return [
        ZoneCounts(0, "DMA", 3840, 3998), ZoneCounts(0, "DMA32", 495616, 520192),
        ZoneCounts(0, "Normal", 1531904, 1572864), ZoneCounts(0, "Movable", 0), ZoneCounts(0, "Device", 0),
        ZoneCounts(1, "DMA", 0), ZoneCounts(1, "DMA32", 0), ZoneCounts(1, "Normal", 0),
        ZoneCounts(1, "Movable", 4128768, 4194304), ZoneCounts(1, "Device", 0),
    ]


def test_watermarks_reserves_and_min_free_kbytes_follow_mm_page_alloc() -> None:
    state = vm_state_of(_two_node_zones())
    # khugepaged: 3 populated zones <= Normal -> 512*3*2 + 512*3*9 pages = 67584 kB, above
    # int_sqrt(16 * lowmem kB).
    assert state.min_free_kbytes == 67584
    marks = {key: (m.min, m.low, m.high, m.promo) for key, m in state.watermarks.items()}
    assert marks[(0, "DMA")] == (31, 38, 45, 52)
    assert marks[(0, "DMA32")] == (4122, 5152, 6182, 7212)
    assert marks[(0, "Normal")] == (12741, 15926, 19111, 22296)
    assert marks[(0, "Movable")] == (32, 32, 32, 32)  # an empty Movable zone: clamp(0, 32, 128)
    assert marks[(0, "Device")] == (0, 0, 0, 0)
    # Movable is not lowmem: its min is capped at 128 while its share of min_free drives low.
    assert marks[(1, "Movable")] == (128, 8713, 17298, 25883)
    assert state.watermarks[(0, "DMA")].protection == (0, 1936, 7920, 7920, 7920)
    assert state.watermarks[(0, "DMA32")].protection == (0, 0, 5984, 5984, 5984)
    assert state.totalreserve_pages == 3840 + 12166 + 19111 + 17298  # DMA capped at managed
    assert state.wmark_low == 29861


def test_mem_available_and_dirty_limits() -> None:
    state = vm_state_of(_two_node_zones())
    free = 5774592
    assert si_mem_available(free, state, pagecache=229376, reclaimable=24576) == 5933980
    assert dirty_limits(free, state, file_lru=229376) == (1190020, 594283)
    assert si_mem_available(10, state) == 0  # never negative


def test_direct_map_split() -> None:
    out: dict[int, int] = {}
    split_mem_range(1 << 20, 3 * GiB, out)  # 4k to 2 MiB, 2M pages to 1 GiB, then 1G pages
    assert out == {4096: 1 << 20, 2 << 20: GiB - (2 << 20), GiB: 2 * GiB}
    out = {}
    split_mem_range(0x1050000000, 0x1050000000 + 16 * GiB, out)
    assert out == {2 << 20: (768 + 256) << 20, GiB: 15 * GiB}  # 65.25 GiB: 2M heads and tails


# -- agreement across files -------------------------------------------------------------------------
def _kv(text: str) -> dict[str, int]:
    return {line.split()[0].rstrip(":"): int(line.split()[1]) for line in text.splitlines()}


def _node_meminfo(s: Simulation, nid: int) -> dict[str, int]:
    return {m[1]: int(m[2]) for m in re.finditer(r"^Node \d+ (\S+):\s+(\d+)", s.cat(
        f"/devices/system/node/node{nid}/meminfo"), re.M) for m in [m] if m}


def _zones(text: str) -> dict[tuple[int, str], dict[str, int]]:
    """zoneinfo -> {(node, zone): {"free", "spanned", "present", "managed", "start_pfn", ...}}."""
    out: dict[tuple[int, str], dict[str, int]] = {}
    current: dict[str, int] = {}
    for line in text.splitlines():
        head = re.match(r"Node (\d+), zone +(\w+)$", line)
        if head:
            current = out.setdefault((int(head[1]), head[2]), {})
            continue
        m = re.match(r"\s+(pages free|min|low|high|promo|spanned|present|managed|start_pfn:)\s+(\d+)$", line)
        if m:
            current[m[1].removeprefix("pages ").rstrip(":")] = int(m[2])
    return out


def _buddy(text: str) -> dict[tuple[int, str], list[int]]:
    out = {}
    for line in text.splitlines():
        m = re.match(r"Node (\d+), zone +(\w+) ((?:\s*\d+ ){11})$", line)
        assert m, repr(line)
        out[(int(m[1]), m[2])] = [int(x) for x in m[3].split()]
    return out


def check_agreement(s: Simulation) -> dict[str, int]:
    """What every reader must see the same: /proc/meminfo, /proc/vmstat, /proc/zoneinfo,
    /proc/buddyinfo, nodeN/meminfo, nodeN/vmstat and the engine's zones."""
    k = s.kernel
    meminfo = _kv(s.proc("meminfo"))
    vmstat = _kv(s.proc("vmstat"))
    zones = _zones(s.proc("zoneinfo"))
    buddy = _buddy(s.proc("buddyinfo"))
    online = k.online_nodes()
    nodes = {nid: _node_meminfo(s, nid) for nid in online}
    assert meminfo["MemTotal"] == sum(n["MemTotal"] for n in nodes.values())
    assert meminfo["MemFree"] == sum(n["MemFree"] for n in nodes.values())
    assert 0 < meminfo["MemAvailable"] <= meminfo["MemTotal"]
    assert vmstat["nr_free_pages"] * 4 == meminfo["MemFree"]
    assert sum(z["managed"] for z in zones.values()) * 4 == meminfo["MemTotal"]
    assert sum(z["free"] for z in zones.values()) * 4 == meminfo["MemFree"]
    assert {nid for nid, _ in zones} == set(online)
    for nid in online:
        node = k.nodes[nid]
        node_vmstat = _kv(s.cat(f"/devices/system/node/node{nid}/vmstat"))
        assert node_vmstat["nr_free_pages"] * 4 == nodes[nid]["MemFree"]
        for name, zone in node.zones.items():
            if name not in k.zone_names:  # a zone this architecture's kernel lacks: never used
                assert zone.present == 0 and (nid, name) not in zones
                continue
            z = zones[(nid, name)]
            assert (z["present"], z["managed"], z["free"]) == (zone.present, zone.managed, zone.free)
            assert z["spanned"] >= z["present"] >= z["managed"]
            if zone.populated:
                assert sum(n << order for order, n in enumerate(buddy[(nid, name)])) == zone.free
            else:
                assert (nid, name) not in buddy
    return meminfo


def _sim() -> Simulation:
    return Simulation()


def test_boot_numbers_agree_and_match_the_nodes() -> None:
    with _sim() as s:
        meminfo = check_agreement(s)
        assert meminfo["MemTotal"] == 8388216  # the default topology's node 0 (8 GiB minus holes)
        zones = _zones(s.proc("zoneinfo"))
        # ZONE_DMA spans pfn 1 (RAM starts at 0x1000) to 16 MiB; ZONE_NORMAL starts at 4 GiB.
        assert (zones[(0, "DMA")]["start_pfn"], zones[(0, "DMA")]["spanned"]) == (1, 4095)
        assert zones[(0, "Normal")]["start_pfn"] == (4 * GiB) >> 12
        # Node 1 is online (dax0.0's memory added at boot, blocks offline): five empty zones,
        # whose watermarks no recomputation has set yet (the pgdat came after the initcall).
        assert all(zones[(1, z)]["present"] == 0 for z in ("DMA", "DMA32", "Normal", "Movable", "Device"))
        assert zones[(1, "Movable")]["min"] == 0
        s.echo(f"{MEM}/memory{DAX0_BLOCKS[0]}/state", "online_movable")  # init_per_zone_wmark_min()
        zones = _zones(s.proc("zoneinfo"))
        assert zones[(2, "Movable")]["present"] == 0
        assert [zones[(2, "Movable")][w] for w in ("min", "low", "high", "promo")] == [32] * 4  # empty Movable
        assert [zones[(2, "Normal")][w] for w in ("min", "low", "high", "promo")] == [0] * 4


def test_online_movable_with_memmap_on_memory_counts_vmemmap_as_present_not_managed() -> None:
    with _sim() as s:
        before = check_agreement(s)
        for bid in DAX0_BLOCKS[:8]:
            s.echo(f"{MEM}/memory{bid}/state", "online_movable")
        after = check_agreement(s)
        z = _zones(s.proc("zoneinfo"))[(1, "Movable")]
        assert (z["spanned"], z["present"], z["managed"]) == (8 * 32768, 8 * 32768, 8 * (32768 - 512))
        assert z["start_pfn"] == 0x1050000000 >> 12
        assert after["MemTotal"] - before["MemTotal"] == 8 * (32768 - 512) * 4
        assert after["CommitLimit"] > before["CommitLimit"]
        # One order-9 chunk (the pageblock beside the vmemmap) and 31 order-10 ones per block.
        assert _buddy(s.proc("buddyinfo"))[(1, "Movable")][9:] == [8, 8 * 31]
        # The node's stats sit under its first populated zone.
        text = s.proc("zoneinfo")
        node1 = text[text.index("Node 1, zone      DMA"):]
        assert node1.index("per-node stats") > node1.index("Node 1, zone  Movable")
        # Offlining a block in the middle leaves a hole in the span.
        s.echo(f"{MEM}/memory{DAX0_BLOCKS[3]}/state", "offline")
        check_agreement(s)
        z = _zones(s.proc("zoneinfo"))[(1, "Movable")]
        assert (z["spanned"], z["present"]) == (8 * 32768, 7 * 32768)
        s.echo(f"{MEM}/memory{DAX0_BLOCKS[0]}/state", "offline")  # an edge: the span shrinks
        z = _zones(s.proc("zoneinfo"))[(1, "Movable")]
        assert (z["start_pfn"], z["spanned"]) == ((0x1050000000 >> 12) + 32768, 7 * 32768)


def test_kmem_unbind_and_rebind_move_iomem_direct_map_and_memmap_counters() -> None:
    with _sim() as s:
        meminfo = check_agreement(s)
        vmstat = _kv(s.proc("vmstat"))
        assert "System RAM (kmem)" in s.proc("iomem")
        s.echo("/bus/dax/drivers/kmem/unbind", "dax0.0")
        after = check_agreement(s)
        assert after["DirectMap2M"] + after["DirectMap1G"] + after["DirectMap4k"] == \
            meminfo["DirectMap2M"] + meminfo["DirectMap1G"] + meminfo["DirectMap4k"] - 16 * (GiB >> 10)
        assert _kv(s.proc("vmstat"))["nr_memmap_pages"] == vmstat["nr_memmap_pages"] - 128 * 512
        iomem = s.proc("iomem")
        assert "  1050000000-144fffffff : region0" in iomem and "dax0.0" not in iomem
        s.echo("/bus/dax/drivers/kmem/new_id", "dax0.0")
        check_agreement(s)
        assert "      1050000000-144fffffff : System RAM (kmem)" in s.proc("iomem")


def test_memory_without_memmap_on_memory_takes_its_memmap_from_node0() -> None:
    with _sim() as s:
        s.echo("/bus/dax/drivers/kmem/unbind", "dax0.0")
        before = check_agreement(s)
        s.echo("/devices/platform/ACPI0017:00/root0/decoder0.0/region0/dax_region0/dax0.0/memmap_on_memory", "0")
        s.echo("/bus/dax/drivers/kmem/new_id", "dax0.0")
        after = check_agreement(s)
        assert before["MemFree"] - after["MemFree"] == 128 * 512 * 4  # node 0 holds the memmap
        for bid in DAX0_BLOCKS[:2]:
            s.echo(f"{MEM}/memory{bid}/state", "online_movable")
        z = _zones(s.proc("zoneinfo"))[(1, "Movable")]
        assert z["present"] == z["managed"] == 2 * 32768
        check_agreement(s)


def test_online_kernel_on_a_cpuless_node_raises_every_watermark() -> None:
    with _sim() as s:
        for bid in DAX0_BLOCKS[:2]:
            s.echo(f"{MEM}/memory{bid}/state", "online_movable")
        before = _zones(s.proc("zoneinfo"))
        s.echo(f"{MEM}/memory{DAX0_BLOCKS[2]}/state", "online_kernel")
        after = _zones(s.proc("zoneinfo"))
        check_agreement(s)
        # A fourth populated zone <= Normal: khugepaged's min_free_kbytes grows, and with it
        # node 0's watermarks; node 1's stats move to its Normal zone.
        assert after[(0, "Normal")]["min"] > before[(0, "Normal")]["min"]
        text = s.proc("zoneinfo")
        node1 = text[text.index("Node 1, zone      DMA"):]
        stats = node1.index("per-node stats")
        assert node1.index("Node 1, zone   Normal") < stats < node1.index("Node 1, zone  Movable")


def test_remembered_watermark_recomputations_equal_fresh_ones() -> None:
    """init_per_zone_wmark_min() reuses a result computed from the same inputs; a machine
    that recomputes every time reaches the same numbers after every step of a walk that
    revisits states (movable and kernel onlines, offlines, a sysctl write)."""
    import random

    rng = random.Random(7)
    with _sim() as remembered, _sim() as fresh:
        steps: list[tuple[str, str]] = []
        for _ in range(120):
            bid = rng.choice(list(DAX0_BLOCKS[:6]))
            steps.append((f"{MEM}/memory{bid}/state", rng.choice(["online_movable", "online_kernel", "offline"])))
        cycle = [(f"{MEM}/memory{DAX0_BLOCKS[0]}/state", "online_kernel"),
                 (f"{MEM}/memory{DAX0_BLOCKS[0]}/state", "offline")] * 2
        steps[60:60] = [*cycle, ("sysctl", "watermark_scale_factor"), *cycle]
        for path, value in steps:
            for sim in (remembered, fresh):
                fresh.kernel.vm._recomputed.clear()
                if path == "sysctl":
                    sim.kernel.vm.watermark_scale_factor_sysctl_handler(sim.kernel, 30)
                    continue
                try:
                    sim.echo(path, value)
                except KernelError:
                    pass
            assert remembered.kernel.vm.state(remembered.kernel) == fresh.kernel.vm.state(fresh.kernel)
            assert remembered.proc("zoneinfo") == fresh.proc("zoneinfo")
        assert len(remembered.kernel.vm._recomputed) > 1


def test_a_hot_added_region_appears_everywhere_at_once() -> None:
    with _sim() as s:
        before = check_agreement(s)
        producer = s.add_cxl_region("4G", node=3)  # kmem binds it (autoprobe); blocks offline
        region = producer.name
        after = check_agreement(s)
        assert after["MemTotal"] == before["MemTotal"]  # added, not online
        assert after["DirectMap1G"] + after["DirectMap2M"] + after["DirectMap4k"] == \
            before["DirectMap1G"] + before["DirectMap2M"] + before["DirectMap4k"] + 4 * (GiB >> 10)
        iomem = s.proc("iomem")
        end = producer.start + producer.size - 1
        assert f"  {producer.start:08x}-{end:08x} : {region}\n" in iomem
        assert _zones(s.proc("zoneinfo"))[(3, "Movable")]["present"] == 0
        for block in s.blocks_of(producer):
            s.echo(f"{MEM}/memory{block.id}/state", "online_movable")
        grown = check_agreement(s)
        assert grown["MemTotal"] - before["MemTotal"] == 32 * (32768 - 512) * 4
        for block in s.blocks_of(producer):
            s.echo(f"{MEM}/memory{block.id}/state", "offline")
        s.remove(region)
        check_agreement(s)
        assert region not in s.proc("iomem") and "Node 3," not in s.proc("zoneinfo")


def test_remove_takes_the_node_out_of_zoneinfo() -> None:
    with _sim() as s:
        s.echo("/bus/dax/drivers/kmem/unbind", "dax0.0")
        s.remove("region0")
        check_agreement(s)
        assert "Node 1," not in s.proc("zoneinfo")
        # region0's window goes with its hardware; the free window (decoder0.1) stays.
        assert "CXL Window 0" not in s.proc("iomem")
        assert "1450000000-184fffffff : CXL Window 1\n" in s.proc("iomem")


# -- formats ------------------------------------------------------------------------------------------
def test_pagetypeinfo_counts_vmemmap_pageblocks_unmovable_and_is_root_only() -> None:
    with _sim() as s:
        for bid in DAX0_BLOCKS[:8]:
            s.echo(f"{MEM}/memory{bid}/state", "online_movable")
        text = s.proc("pagetypeinfo")
        assert "Node 1, zone  Movable            8          504            0            0            0 \n" in text
        movable = re.search(r"Node    1, zone  Movable, type      Movable ((?:\s*\d+ ){11})\n", text)
        assert movable is not None
        counts = [int(x) for x in movable[1].split()]
        assert sum(n << order for order, n in enumerate(counts)) == s.kernel.nodes[1].zones["Movable"].free
        assert text.count("Page block order: 9\nPages per block:  512\n\n") == 2  # nodes with memory only
        with pytest.raises(KernelError) as info:
            s.proc("pagetypeinfo", uid=1000)
        assert info.value.errno == 13
        assert build_proc_tree(s.kernel).getattr("/pagetypeinfo").mode & 0o777 == 0o400


def test_swaps_is_the_header_of_a_machine_without_swap() -> None:
    with _sim() as s:
        assert s.proc("swaps") == "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
        assert "SwapTotal:             0 kB\n" in s.proc("meminfo")


def test_meminfo_lines_are_show_val_kb() -> None:
    with _sim() as s:
        for line in s.proc("meminfo").splitlines():
            label = line[:16]
            assert re.fullmatch(r"[A-Za-z_()0-9]+: *", label), line
            rest = line[16:]
            assert re.fullmatch(r" *\d+( kB)?", rest) and (len(rest) == 8 or len(rest) == 11
                                                           or not rest.startswith(" ")), line
        assert "VmallocTotal:   34359738367 kB\n" in s.proc("meminfo")


def test_iomem_hides_addresses_from_non_root_openers() -> None:
    with _sim() as s:
        root, other = s.proc("iomem"), s.proc("iomem", uid=1000)
        assert len(root.splitlines()) == len(other.splitlines())
        for mine, theirs in zip(root.splitlines(), other.splitlines(), strict=True):
            indent = len(mine) - len(mine.lstrip())
            assert theirs == mine[:indent] + "00000000-00000000 : " + mine.split(" : ", 1)[1]


def test_cmdline_is_the_topologys_and_its_size_is_its_length() -> None:
    config = BootConfig(nodes=[NodeConfig(0, [0], [MemRange(0, 4 * GiB)])], memmap_on_memory="force",
                        auto_online_blocks="online_movable", movable_node=True, cmdline="root=/dev/vda1 ro")
    with Simulation(config) as s:
        line = s.proc("cmdline")
        assert line == ("root=/dev/vda1 ro memhp_default_state=online_movable memory_hotplug.memmap_on_memory=force "
                        "memory_hotplug.online_policy=contig-zones memory_hotplug.auto_movable_ratio=301 "
                        "memory_hotplug.auto_movable_numa_aware=Y movable_node\n")
        tree = build_proc_tree(s.kernel)
        assert tree.getattr("/cmdline").size == len(line)
        assert tree.getattr("/meminfo").size == 0
        assert all(tree.getattr(f"/{name}").mode & 0o777 == 0o444 for name in tree.readdir("/")
                   if name not in ("pagetypeinfo", "sys"))


def test_reads_regenerate_at_offset_zero_and_continue_a_snapshot_elsewhere() -> None:
    with _sim() as s:
        tree = build_proc_tree(s.kernel)
        fh = tree.open("/meminfo", os.O_RDONLY)
        first = tree.read(fh, 20, 0)
        s.echo(f"{MEM}/memory{DAX0_BLOCKS[0]}/state", "online_movable")
        rest = tree.read(fh, 1 << 16, 20)  # the snapshot of the first read
        assert _kv((first + rest).decode())["MemTotal"] == 8388216
        assert _kv(tree.read(fh, 1 << 16, 0).decode())["MemTotal"] == 8388216 + 32256 * 4
        fresh = tree.open("/vmstat", os.O_RDONLY)  # a read at an offset without a snapshot
        assert tree.read(fresh, 10, 5) == proc_read(tree, "vmstat").encode()[5:15]
        with pytest.raises(KernelError):
            tree.open("/meminfo", os.O_WRONLY)


def test_vmstat_key_sets_are_the_kernels() -> None:
    with _sim() as s:
        names = [line.split()[0] for line in s.proc("vmstat").splitlines()]
        assert names[:11] == list(ZONE_ITEMS) and names[-1] == "nr_unstable" and len(names) == 192
        node = [line.split()[0] for line in s.cat("/devices/system/node/node0/vmstat").splitlines()]
        assert node == [*ZONE_ITEMS, *NUMA_ITEMS, *NODE_ITEMS]
        assert "nr_managed_pages" not in node and "nr_present_pages" not in node


HOST_618 = platform.release().startswith("6.18") and Path("/proc/zoneinfo").exists()


@pytest.mark.skipif(not HOST_618, reason="the layout reference is a 6.18 host")
def test_layouts_match_this_6_18_machine() -> None:
    """Key sets and line shapes of this machine's own files (read only)."""
    def shape(text: str) -> list[str]:
        return [re.sub(r"\d+", "N", line) for line in text.splitlines()]

    with _sim() as s:
        host_vmstat = [line.split()[0] for line in Path("/proc/vmstat").read_text().splitlines()]
        assert [line.split()[0] for line in s.proc("vmstat").splitlines()] == host_vmstat
        host_meminfo = [line.split(":")[0] for line in Path("/proc/meminfo").read_text().splitlines()]
        assert [line.split(":")[0] for line in s.proc("meminfo").splitlines()] == host_meminfo
        host_node = Path("/sys/devices/system/node/node0/vmstat")
        if host_node.exists():
            assert [line.split()[0] for line in s.cat("/devices/system/node/node0/vmstat").splitlines()] == \
                [line.split()[0] for line in host_node.read_text().splitlines()]
        # The first zone of node 0 (DMA, populated, with the per-node stats), one CPU's pageset.
        def first_zone(text: str) -> list[str]:
            lines = shape(text[: text.index("Node 0, zone    DMA32")])
            cpu = lines.index("    cpu: N")
            end = lines.index("  node_unreclaimable:  N")
            return lines[: cpu + 7] + lines[end:]

        assert first_zone(s.proc("zoneinfo")) == first_zone(Path("/proc/zoneinfo").read_text())
        assert shape(s.proc("buddyinfo"))[0] == shape(Path("/proc/buddyinfo").read_text())[0]
        if os.geteuid() == 0:  # pagetypeinfo is 0400
            # Every number with the spaces before it as one run of '#': field widths compare.
            def widths(text: str) -> list[str]:
                return [re.sub(r" *\d+", lambda m: "#" * len(m[0]), line) for line in text.splitlines()]

            host = widths(Path("/proc/pagetypeinfo").read_text())
            mine = widths(s.proc("pagetypeinfo"))
            assert mine[:5] == host[:5]  # headers and the first free-list row
            table = host.index(next(line for line in host if line.startswith("Number of blocks")))
            assert mine[mine.index(host[table]) + 1] == host[table + 1]  # node 0's DMA block counts


# -- /proc/sys/vm ------------------------------------------------------------------------------------
def _sysctl(tree: object, name: str) -> str:
    return proc_read(tree, f"sys/vm/{name}")  # type: ignore[arg-type]


def test_min_free_kbytes_write_moves_the_watermarks_until_a_recomputation_prefers_its_own() -> None:
    with _sim() as s:
        tree = build_proc_tree(s.kernel)
        assert _sysctl(tree, "min_free_kbytes") == "67584\n"  # khugepaged: 3 zones * 11 pageblocks
        before = _zones(s.proc("zoneinfo"))[(0, "Normal")]["min"]
        tree.echo("/sys/vm/min_free_kbytes", "135168")
        assert _zones(s.proc("zoneinfo"))[(0, "Normal")]["min"] == 2 * before
        s.echo(f"{MEM}/memory{DAX0_BLOCKS[0]}/state", "online_movable")
        assert _sysctl(tree, "min_free_kbytes") == "135168\n"  # larger than what the kernel computes
        assert re.fullmatch(r"min_free_kbytes is not updated to \d+ because user defined value 135168 is "
                            r"preferred", s.kmsg()[-1]), s.kmsg()[-1]
        tree.echo("/sys/vm/min_free_kbytes", "1000")
        assert _sysctl(tree, "min_free_kbytes") == "1000\n"
        s.echo(f"{MEM}/memory{DAX0_BLOCKS[1]}/state", "online_movable")
        # calculate_min_free_kbytes() wins over a smaller user value, then khugepaged raises it.
        assert _sysctl(tree, "min_free_kbytes") == "67584\n"
        assert s.kmsg()[-1].startswith("raising min_free_kbytes from ") and \
            s.kmsg()[-1].endswith(" to 67584 to help transparent hugepage allocations")
        for bad in ("-1", "abc", ""):
            with pytest.raises(KernelError) as info:
                tree.echo("/sys/vm/min_free_kbytes", bad)
            assert info.value.errno == 22
        # __do_proc_dointvec(): a second value for a one-value file is not an error: the
        # first is stored and the write is short (below).
        assert tree.echo("/sys/vm/min_free_kbytes", "2000 3000") == 5
        assert _sysctl(tree, "min_free_kbytes") == "2000\n"


def test_watermark_scale_factor_lowmem_reserve_ratio_dirty_and_overcommit_ratios() -> None:
    with _sim() as s:
        tree = build_proc_tree(s.kernel)
        zone = _zones(s.proc("zoneinfo"))[(0, "Normal")]
        tree.echo("/sys/vm/watermark_scale_factor", "1000")  # 10 % of managed between marks
        after = _zones(s.proc("zoneinfo"))[(0, "Normal")]
        assert after["min"] == zone["min"] and after["low"] - after["min"] == 1310720 // 10
        for bad in ("0", "3001"):
            with pytest.raises(KernelError):
                tree.echo("/sys/vm/watermark_scale_factor", bad)
        text = s.proc("zoneinfo")
        dma32 = text[text.index("Node 0, zone    DMA32"):]
        assert "protection: (0, 0, 5120, 5120, 5120)" in dma32  # Normal's 1310720 / DMA32's 256
        tree.echo("/sys/vm/lowmem_reserve_ratio", "128 64")  # the first two ratios only
        assert _sysctl(tree, "lowmem_reserve_ratio") == "128\t64\t32\t0\t0\n"
        text = s.proc("zoneinfo")
        assert "protection: (0, 0, 20480, 20480, 20480)" in text[text.index("Node 0, zone    DMA32"):]
        vmstat = _kv(s.proc("vmstat"))
        tree.echo("/sys/vm/dirty_ratio", "40")
        assert _kv(s.proc("vmstat"))["nr_dirty_threshold"] in (2 * vmstat["nr_dirty_threshold"],
                                                               2 * vmstat["nr_dirty_threshold"] + 1)
        limit = _kv(s.proc("meminfo"))["CommitLimit"]
        tree.echo("/sys/vm/overcommit_ratio", "100")
        assert _kv(s.proc("meminfo"))["CommitLimit"] == 2 * limit
        with pytest.raises(KernelError):
            tree.echo("/sys/vm/drop_caches", "0")
        tree.echo("/sys/vm/drop_caches", "3")
        with pytest.raises(KernelError) as info:
            tree.open("/sys/vm/compact_memory", os.O_RDONLY)  # 0200
        assert info.value.errno == 13


@pytest.mark.parametrize(("text", "value"), [
    ("7", 7), ("  7\n", 7), ("7\t", 7), ("010", 8), ("0x10", 16), ("0X1f", 31), ("-010", -8), ("0", 0),
    ("-2147483648", -(1 << 31)), ("2147483647", (1 << 31) - 1), ("\v\f\r 5", 5),
])
def test_proc_dointvec_reads_numbers_as_proc_get_long(text: str, value: int) -> None:
    """proc_get_long() (kernel/sysctl.c) reads with strtoul_lenient(base 0): a leading 0 is
    octal and 0x hex, as the C library's strtoul; skip_spaces() takes any isspace()."""
    from fakesysfs.procfs import proc_dointvec_write

    done = proc_dointvec_write(text, len(text), 1)
    assert (done.values, done.err, done.accepted) == ([value], 0, len(text))


@pytest.mark.parametrize("text", [
    "1_0", "0o17", "0b1", "+7", "08", "0x", "1\r", "1x", "-", "", "  \n", "\u0661", "1.0",
    "2147483648", "-2147483649",  # do_proc_dointvec_conv: beyond int
    "1" * 20 + "0",  # 21 characters: proc_get_long refuses what fills its buffer
    "18446744073709551616",  # beyond unsigned long: strtoul_lenient's ERANGE
])
def test_proc_dointvec_refuses_what_proc_get_long_refuses(text: str) -> None:
    """Python's int() takes ``1_0``, ``0o17``, ``0b1``, ``+7`` and Unicode digits; the
    kernel's parser stops at ``_``, ``o``, ``b``, refuses a sign other than ``-`` and a
    trailer other than space, tab or newline: EINVAL."""
    from fakesysfs.procfs import proc_dointvec_write

    done = proc_dointvec_write(text, len(text), 1)
    assert (done.values, done.err) == ([], 22)


def test_more_values_than_the_file_holds_make_a_short_write() -> None:
    """__do_proc_dointvec() stops after the file's values: ``*lenp`` is what it took (the
    value and the spaces after it); the rest, written again at a non-zero offset by
    write(2)'s caller, is ignored under sysctl_writes_strict (proc_first_pos_non_zero_ignore),
    so ``echo "1 2"`` into a one-value file sets 1 and succeeds."""
    from fakesysfs.procfs import proc_dointvec_write

    done = proc_dointvec_write("1 2\n", 4, 1)
    assert (done.values, done.accepted, done.err) == ([1], 2, 0)
    done = proc_dointvec_write("1 ", 3, 1)  # "1 \0": the NUL is left
    assert (done.values, done.accepted, done.err) == ([1], 2, 0)
    done = proc_dointvec_write("1 x", 3, 3)  # stored before the bad one, then EINVAL
    assert (done.values, done.err) == ([1], 22)
    with _sim() as s:
        tree = build_proc_tree(s.kernel)
        fh = tree.open("/sys/vm/min_free_kbytes", os.O_WRONLY)
        assert tree.write(fh, b"1000 2000\n") == 5
        assert tree.write(fh, b"2000\n", 5) == 5  # the rest, at offset 5: ignored
        assert _sysctl(tree, "min_free_kbytes") == "1000\n"
        fh = tree.open("/sys/vm/dirty_ratio", os.O_WRONLY)
        assert tree.write(fh, b"30\n", 0) == 3 and tree.write(fh, b"40\n", 3) == 3  # a second echo on one fd
        assert _sysctl(tree, "dirty_ratio") == "30\n"
        # lowmem_reserve_ratio_sysctl_handler() ignores proc_dointvec_minmax()'s error: the
        # values before a bad one are stored and the write succeeds, short of the bad one.
        assert tree.echo("/sys/vm/lowmem_reserve_ratio", "128 x") == 4
        assert _sysctl(tree, "lowmem_reserve_ratio").split("\t")[:2] == ["128", "256"]


def test_compact_memory_takes_1_only() -> None:
    """sysctl_compaction_handler() (mm/compaction.c, 6.1+): proc_dointvec() into
    sysctl_compact_memory, then EINVAL unless it is 1."""
    with _sim() as s:
        tree = build_proc_tree(s.kernel)
        assert tree.echo("/sys/vm/compact_memory", "1") == 2
        for bad in ("2", "0", "-1", "abc", "0x2"):
            with pytest.raises(KernelError) as info:
                tree.echo("/sys/vm/compact_memory", bad)
            assert info.value.errno == 22, bad
        assert tree.echo("/sys/vm/compact_memory", "01") == 3  # octal 1


# -- /dev/kmsg ---------------------------------------------------------------------------------------
def _kmsg_read_all(tree: Tree, fh: OpenFile) -> list[str]:
    """Records until EAGAIN (the reader opened O_NONBLOCK), following the file offset."""
    records, offset = [], 0
    while True:
        try:
            chunk = tree.read(fh, 8192, offset)
        except KernelError as exc:
            assert exc.errno == errno.EAGAIN
            return records
        assert chunk.endswith(b"\n") and chunk.count(b"\n") == 1  # one record per read
        records.append(chunk.decode())
        offset += len(chunk)


def test_dev_kmsg_reads_one_record_each_with_level_sequence_and_device_prefix() -> None:
    with _sim() as s:
        tree = build_kmsg_tree(s.kernel)
        s.kernel.printk("back\\slash and\ttab")  # an unannotated printk: the default loglevel 4
        s.echo(f"{MEM}/memory{DAX0_BLOCKS[0]}/state", "online_movable")
        s.echo("/bus/dax/drivers/kmem/unbind", "dax0.0")  # a block online: kmem leaks the range
        fh = tree.open("/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        records = _kmsg_read_all(tree, fh)
        assert records[0].split(";", 1)[1] == "back\\x5cslash and\\x09tab\n"
        assert records[0].startswith("4,0,")
        last = records[-1]
        head, text = last.split(";", 1)
        level, seq, usec, flags = head.split(",")
        assert (level, flags) == ("3", "-") and int(seq) == len(records) - 1 and int(usec) >= 0
        assert text == "kmem dax0.0: mapping0: 0x1050000000-0x144fffffff cannot be hotremoved until the next reboot\n"
        assert s.kmsg()[-1] == "mapping0: 0x1050000000-0x144fffffff cannot be hotremoved until the next reboot"
        offset = sum(map(len, records))
        s.kernel.printk("later")
        assert tree.read(fh, 8192, offset).endswith(b";later\n")  # the reader follows the log
        # lseek(fd, 0, SEEK_SET) (seen as a read at offset 0 again): the first record.
        assert tree.read(fh, 8192, 0).decode() == records[0]
        fresh = tree.open("/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        with pytest.raises(KernelError) as info:
            tree.read(fresh, 10, 0)  # a record does not fit: EINVAL, and it is skipped
        assert info.value.errno == errno.EINVAL
        assert tree.read(fresh, 8192, 0).decode() == records[1]


def test_dev_kmsg_blocks_at_the_end_until_printk_or_an_interrupt() -> None:
    with _sim() as s:
        interrupted = threading.Event()
        tree = build_kmsg_tree(s.kernel, interrupted.is_set)
        fh = tree.open("/kmsg", os.O_RDONLY)
        done = _kmsg_read_all(tree, tree.open("/kmsg", os.O_RDONLY | os.O_NONBLOCK))
        offset = 0
        for _ in done:
            offset += len(tree.read(fh, 8192, offset))
        got: list[bytes | int] = []

        def reader() -> None:
            try:
                got.append(tree.read(fh, 8192, offset))
            except KernelError as exc:
                got.append(exc.errno or 0)

        waiting = threading.Thread(target=reader)
        waiting.start()
        time.sleep(0.3)
        assert got == [] and waiting.is_alive()  # dmesg -w waits: no 0, no EAGAIN
        s.echo(f"{MEM}/memory{DAX0_BLOCKS[0]}/state", "online")  # the tree's lock is free meanwhile
        assert got == []
        s.kernel.printk("news", 6)
        waiting.join(5)
        assert isinstance(got[0], bytes) and got[0].startswith(b"6,") and got[0].endswith(b";news\n")
        offset += len(got[0])
        got.clear()
        waiting = threading.Thread(target=reader)
        waiting.start()
        time.sleep(0.2)
        interrupted.set()  # a signal to the reader: FUSE_INTERRUPT
        waiting.join(5)
        assert got == [errno.EINTR]


def test_dev_kmsg_reader_overrun_by_the_ring_gets_epipe_once_then_continues() -> None:
    from fakesysfs.engine.kernel import KMSG_BYTES

    with _sim() as s:
        tree = build_kmsg_tree(s.kernel)
        fh = tree.open("/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        s.kernel.printk("first")
        first = tree.read(fh, 8192, 0)
        assert first.endswith(b";first\n")
        for i in range((KMSG_BYTES // 100) + 10):  # more than the ring holds
            s.kernel.printk(f"{i:04} " + "x" * 95)
        oldest = s.kernel.kmsg_records[0].seq
        assert oldest > 1
        with pytest.raises(KernelError) as info:
            tree.read(fh, 8192, len(first))
        assert info.value.errno == errno.EPIPE
        again = tree.read(fh, 8192, len(first))  # EPIPE moved nothing: the same offset
        assert again.split(b",")[1] == str(oldest).encode()
        # A new opener starts at the oldest record kept, no EPIPE.
        assert tree.read(tree.open("/kmsg", os.O_RDONLY), 8192, 0).split(b",")[1] == str(oldest).encode()


# -- zones per architecture ----------------------------------------------------------------------------
@pytest.mark.parametrize(("arch", "memory", "names", "ratios"), [
    ("x86_64", "0x0-0x1ffffffff", ("DMA", "DMA32", "Normal", "Movable", "Device"), "256\t256\t32\t0\t0"),
    ("arm64", "0x40000000-0x13fffffff", ("DMA", "DMA32", "Normal", "Movable", "Device"), "256\t256\t32\t0\t0"),
    ("s390x", "0x0-0x17fffffff", ("DMA", "Normal", "Movable"), "256\t32\t0"),
    ("ppc64le", "0x0-0x1ffffffff", ("Normal", "Movable", "Device"), "32\t0\t0"),
])
def test_proc_files_list_the_zones_the_architectures_kernel_has(arch: str, memory: str, names: tuple[str, ...],
                                                                  ratios: str) -> None:
    """enum zone_type has ZONE_DMA, ZONE_DMA32 and ZONE_DEVICE only where the architecture's
    configuration compiles them in (docs/proc.md "Zones per architecture"): zoneinfo prints
    every zone of a node, protection and lowmem_reserve_ratio have MAX_NR_ZONES entries,
    buddyinfo and pagetypeinfo the populated ones, vmstat one pgalloc/allocstall/pgskip per
    zone."""
    text = f'[kernel]\narch = "{arch}"\n[[node]]\nid = 0\ncpus = "0-1"\nmemory = ["{memory}"]\n'
    with Simulation(text) as s:
        zoneinfo = s.proc("zoneinfo")
        assert re.findall(r"^Node 0, zone +(\w+)$", zoneinfo, re.M) == list(names)
        protections = re.findall(r"protection: \((.*)\)", zoneinfo)
        assert len(protections) == len(names) and all(len(p.split(", ")) == len(names) for p in protections)
        assert s.proc("sys/vm/lowmem_reserve_ratio") == ratios + "\n"
        populated = [name for name in names if _zones(zoneinfo)[(0, name)]["present"]]
        assert [line.split()[3] for line in s.proc("buddyinfo").splitlines()] == populated
        types = re.findall(r"^Node +0, zone +(\w+), type +Movable", s.proc("pagetypeinfo"), re.M)
        assert types == populated
        vmstat = [line.split()[0] for line in s.proc("vmstat").splitlines()]
        per_zone = [key for key in vmstat if key.startswith(("pgalloc_", "allocstall_", "pgskip_"))]
        events = ("pgalloc", "allocstall", "pgskip")
        assert per_zone == [f"{event}_{name.lower()}" for event in events for name in names]
        assert vmstat.index("pgpgin") + 4 == vmstat.index(per_zone[0])  # after pswpout
        check_agreement(s)
        s.sysctl("lowmem_reserve_ratio", " ".join(["1"] * len(names)))  # one value per zone, no more
        # __do_proc_dointvec(): a value past the array ends the write short, the rest unread.
        s.sysctl("lowmem_reserve_ratio", " ".join(["2"] * len(names) + ["3"]))
        assert s.proc("sys/vm/lowmem_reserve_ratio") == "\t".join(["2"] * len(names)) + "\n"


# -- modules ----------------------------------------------------------------------------------------
_NO_KMEM = """
[kernel]
possible_nodes = "0-1"
[dax]
kmem = false
[[node]]
id = 0
cpus = "0-1"
memory = ["0x0-0x1ffffffff"]
[[hmem]]
start = 0x400000000
size = "1G"
target_node = 1
"""


def test_modules_load_and_unload_with_proc_modules_and_sys_module_following(tmp_path: Path) -> None:
    """A topology may boot without kmem; loading it (modprobe's install hook, the harness
    op) registers the driver, which binds dax0.0 (autoprobe); /proc/modules lists the
    loaded modules newest first, as m_show prints them; /sys/module/kmem/initstate exists
    while it is loaded; the load is a state change, journaled and replayed."""
    from fakesysfs import HarnessError

    state = tmp_path / "s.state"
    with Simulation(_NO_KMEM, state=state) as s:
        assert s.proc("modules") == "device_dax 20480 0 - Live 0x0000000000000000\n"
        assert not s.exists("/module/kmem") and s.cat("/module/device_dax/initstate") == "live\n"
        assert s.bindings() == {"dax0.0": None}  # a soft-reserved range's device matches kmem only
        s.echo("/kernel/debug/fakesysfs/modules/load", "kmem")  # what `install kmem ...` writes
        assert s.proc("modules") == ("kmem 28672 0 - Live 0x0000000000000000\n"
                                     "device_dax 20480 0 - Live 0x0000000000000000\n")
        assert s.cat("/module/kmem/initstate") == "live\n"
        assert s.bindings() == {"dax0.0": "kmem"}  # the new driver's autoprobe claimed it
        with pytest.raises(HarnessError) as info:
            s.modprobe("kmem")
        assert info.value.errno == errno.EEXIST
        with pytest.raises(KernelError) as kinfo:
            s.echo("/kernel/debug/fakesysfs/modules/load", "nvidia")
        assert kinfo.value.errno == errno.EINVAL
        s.rmmod("device-dax")  # kmod's names: a dash is an underscore
        assert s.proc("modules") == "kmem 28672 0 - Live 0x0000000000000000\n"
        assert not s.exists("/module/device_dax") and not s.exists("/bus/dax/drivers/device_dax")
        with pytest.raises(HarnessError) as info:
            s.rmmod("device_dax")
        assert info.value.errno == errno.ENOENT
        assert [r.path for r in s.stores()][-2:] == ["/kernel/debug/fakesysfs/modules/load"] * 2
        snapshot = s.snapshot()
        assert snapshot["modules"] == ["kmem"]
    with Simulation(state=state) as again:
        assert again.snapshot() == snapshot
        assert again.proc("modules") == "kmem 28672 0 - Live 0x0000000000000000\n"
