"""The kernel's invariants (docs/abi.md, I-1..I-8), checked through the engine and the attribute
tree at a quiescent point; shared by the project's tests and users' tests.

``check_invariants(sim)`` (or ``check_all(kernel, tree)``) runs every check and raises an
AssertionError naming the first broken one. The single checks are public so that a test that
knows more (which adds used an altmap, which devices it bound) can add its own. Each takes the
kernel lock, so it also works while other threads keep using the tree.

Memory (I-1..I-5): node MemTotal/MemFree/MemUsed and zone counters are sums over the online
blocks; ``has_memory`` is the nodes with online pages; a node directory exists iff the node
is online; every block has one ``nodeK`` link and is listed under that node; altmaps are all
or nothing per add; ordinary-path memmap charges are held by their donors; SEQNUMs increase;
the simulated /proc files agree with /sys and the engine (I-8).

DAX: ``driver`` links match the bindings both ways (device -> driver, driver -> device), bus
and ``/dev/char`` entries match the devices, kmem-bound devices have every block of every
range they claimed (I-6), no hot-added block is left without an owner (I-7), and region
allocations stay inside their region without overlapping.
"""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ..engine import BlockState, Kernel
from ..engine.node import ZoneType
from ..errors import KernelError
from ..klib import parse_range_list
from ..sysfs.tree import Link, Tree

if TYPE_CHECKING:
    from ..simulation import Simulation

#: One check: AssertionError when its invariant does not hold.
Check = Callable[[Kernel, Tree], None]

MEM = "/devices/system/memory"
NODE = "/devices/system/node"
DAX_BUS = "/bus/dax"


def meminfo(tree: Tree, nid: int) -> dict[str, int]:
    """``nodeK/meminfo`` as {"MemTotal": kB, ...}."""
    out: dict[str, int] = {}
    for line in tree.cat(f"{NODE}/node{nid}/meminfo").splitlines():
        parts = line.split()
        out[parts[2].rstrip(":")] = int(parts[3])
    return out


def _exists(tree: Tree, path: str) -> bool:
    try:
        tree.lookup(path)
    except KernelError:
        return False
    return True


def _link_target(tree: Tree, path: str) -> str | None:
    """Absolute sysfs path a link points at, or None if ``path`` is not a link."""
    try:
        node = tree.lookup(path)
    except KernelError:
        return None
    if not isinstance(node, Link):
        return None
    return posixpath.normpath(posixpath.join(posixpath.dirname(path), node.target))


@contextlib.contextmanager
def _locked(k: Kernel) -> Iterator[None]:
    with k.lock:
        yield


# -- memory (I-1..I-5) ------------------------------------------------------------------------
def i1_memtotal_is_managed_pages_of_online_blocks(k: Kernel, tree: Tree) -> None:
    with _locked(k):
        for nid, node in k.nodes.items():
            online = [b for b in k.blocks.values() if b.nid == nid and b.state is BlockState.ONLINE]
            managed = sum(b.managed for b in online)
            assert node.managed_pages == managed, \
                f"I-1: node{nid} manages {node.managed_pages} pages, its online blocks {managed}"
            assert node.present_pages == sum(b.present for b in online), f"I-1: node{nid} present"
            if node.online:
                info = meminfo(tree, nid)
                kb = k.page_size // 1024
                assert info["MemTotal"] == kb * sum(b.managed for b in online), f"I-1: node{nid} MemTotal"
                assert info["MemFree"] == kb * sum(b.free for b in online), f"I-1: node{nid} MemFree"
                assert info["MemUsed"] == info["MemTotal"] - info["MemFree"], f"I-1: node{nid} MemUsed"
            if any(b.zone_pages for b in online):
                continue  # boot blocks spanning zones: per-zone split not tracked per block
            for name, zone in node.zones.items():
                in_zone = [b for b in online if b.zone == name]
                assert zone.free == sum(b.free for b in in_zone), f"I-1: node{nid} {name} free"
                assert zone.managed == sum(b.managed for b in in_zone), f"I-1: node{nid} {name} managed"


def i2_has_memory_is_nodes_with_online_pages(k: Kernel, tree: Tree) -> None:
    with _locked(k):
        expected = sorted({b.nid for b in k.blocks.values() if b.state is BlockState.ONLINE})
        assert sorted(k.n_memory) == expected, f"I-2: N_MEMORY {sorted(k.n_memory)}, online memory on {expected}"
        assert parse_range_list(tree.cat(f"{NODE}/has_memory").strip()) == expected, "I-2: has_memory"


def i3_node_directory_iff_online(k: Kernel, tree: Tree) -> None:
    with _locked(k):
        dirs = {n for n in tree.readdir(NODE) if n.startswith("node") and n[4:].isascii() and n[4:].isdigit()}
        assert dirs == {f"node{n}" for n in k.online_nodes()}, "I-3: node directories differ from the online nodes"
        for nid, node in k.nodes.items():
            assert not (node.online and not node.cpus and not node.blocks), \
                f"I-3: node{nid} online without memory or CPUs"


def i4_every_block_has_exactly_one_node_link(k: Kernel, tree: Tree) -> None:
    with _locked(k):
        for bid, block in k.blocks.items():
            names = [n for n in tree.readdir(f"{MEM}/memory{bid}") if n.startswith("node")]
            assert names == [f"node{block.nid}"], f"I-4: memory{bid} links {names}"
            assert f"memory{bid}" in tree.readdir(f"{NODE}/node{block.nid}"), \
                f"I-4: memory{bid} not under node{block.nid}"


def i5_altmap_or_memmap_charges(k: Kernel, _tree: Tree) -> None:
    """A hot-added block has a self-hosted memmap (altmap) or a memmap charged to donors, never
    both; boot blocks have neither; blocks of one memory group share one mode (I-5)."""
    with _locked(k):
        for bid, block in k.blocks.items():
            if block.boot:
                assert block.altmap == 0 and block.memmap_charges is None, \
                    f"I-5: boot memory{bid} has an altmap or memmap charges"
            else:
                assert (block.altmap > 0) != (block.memmap_charges is not None), f"I-5: memory{bid} altmap/charges"
        for mgid, group in k.memory_groups.items():
            modes = {k.blocks[b].altmap > 0 for b in group.blocks if b in k.blocks}
            assert len(modes) <= 1, f"I-5: memory group {mgid} mixes altmap and ordinary blocks"


def donor_charges_are_accounted(k: Kernel, _tree: Tree) -> None:
    with _locked(k):
        charged: dict[int, int] = {}
        for block in k.blocks.values():
            for donor, pages in block.memmap_charges or ():
                charged[donor] = charged.get(donor, 0) + pages
        for donor, pages in charged.items():
            assert donor in k.blocks, f"memmap charged to missing block {donor}"
            assert k.blocks[donor].unmovable >= pages, f"donor memory{donor}"


def block_counters_are_sane(k: Kernel, tree: Tree) -> None:
    with _locked(k):
        for bid, block in k.blocks.items():
            assert block.state in (BlockState.ONLINE, BlockState.OFFLINE), f"memory{bid} {block.state}"
            assert 0 <= block.altmap < block.present, f"memory{bid} altmap"
            assert block.free >= 0, f"memory{bid} free {block.free}"
            assert bid in k.nodes[block.nid].blocks, f"memory{bid} not in node{block.nid}.blocks"
            if block.group is not None:
                assert k.memory_groups.get(block.group.id) is block.group, f"memory{bid} group gone"
                assert bid in block.group.blocks
        for nid, node in k.nodes.items():
            for zone in node.zones.values():
                assert 0 <= zone.free <= zone.managed <= zone.present, f"node{nid} {zone}"
            assert node.blocks <= set(k.blocks), f"node{nid} lists removed blocks"
        assert k.block_ids() == sorted(k.blocks)
        listed = [n for n in tree.readdir(MEM) if n.startswith("memory") and n[6:].isascii() and n[6:].isdigit()]
        assert listed == [f"memory{b}" for b in sorted(k.blocks)], "memory root listing"


def seqnums_increase(k: Kernel, tree: Tree) -> None:
    with _locked(k):
        seqs = [e.seqnum for e in k.events.since(0)]
        assert seqs == sorted(set(seqs)), "SEQNUMs not strictly increasing"
        if seqs:
            assert seqs[-1] == k.events.seqnum
        assert tree.cat("/kernel/uevent_seqnum") == f"{k.events.seqnum}\n"


def i8_proc_agrees_with_sys(k: Kernel, tree: Tree) -> None:
    """I-8: the simulated /proc files describe the machine /sys does (docs/proc.md):
    /proc/meminfo MemTotal and MemFree are the sums of the online nodes' ``meminfo``,
    /proc/vmstat's nr_free_pages is MemFree, /proc/zoneinfo lists exactly the online nodes
    with every zone's present, managed and free pages as the engine has them (spanned >=
    present >= managed), and each populated zone's buddyinfo line adds up to its free pages."""
    from ..procfs import build_proc_tree, proc_read

    with _locked(k):
        proc = build_proc_tree(k)
        total = free = 0
        for nid in k.online_nodes():
            info = meminfo(tree, nid)
            total += info["MemTotal"]
            free += info["MemFree"]
        lines = dict(line.split(":", 1) for line in proc_read(proc, "meminfo").splitlines())
        assert int(lines["MemTotal"].split()[0]) == total, "I-8: /proc/meminfo MemTotal != sum of nodeK MemTotal"
        assert int(lines["MemFree"].split()[0]) == free, "I-8: /proc/meminfo MemFree != sum of nodeK MemFree"
        vmstat = dict(line.split(" ", 1) for line in proc_read(proc, "vmstat").splitlines())
        assert int(vmstat["nr_free_pages"]) * (k.page_size // 1024) == free, "I-8: vmstat nr_free_pages"
        zones: dict[tuple[int, str], dict[str, int]] = {}
        current: dict[str, int] = {}
        for line in proc_read(proc, "zoneinfo").splitlines():
            if line.startswith("Node "):
                node, _, name = line.partition(", zone ")
                current = zones.setdefault((int(node[5:]), name.strip()), {})
                continue
            words = line.split()
            if len(words) == 2 and words[0] in ("spanned", "present", "managed"):
                current[words[0]] = int(words[1])
            elif words[:2] == ["pages", "free"]:
                current["free"] = int(words[2])
        assert {nid for nid, _ in zones} == set(k.online_nodes()), "I-8: zoneinfo nodes != online nodes"
        buddy = {}
        for line in proc_read(proc, "buddyinfo").splitlines():
            head, _, counts = line.partition(", zone ")
            name, *orders = counts.split()
            buddy[(int(head[5:]), name)] = sum(int(n) << order for order, n in enumerate(orders))
        for (nid, name), seen in zones.items():
            zone = k.nodes[nid].zones.get(ZoneType(name))
            want = (zone.present, zone.managed, zone.free) if zone is not None else (0, 0, 0)
            assert (seen["present"], seen["managed"], seen["free"]) == want, f"I-8: node {nid} zone {name}"
            assert seen["spanned"] >= seen["present"] >= seen["managed"], f"I-8: node {nid} zone {name} span"
            if want[0]:
                assert buddy.get((nid, name)) == want[2], f"I-8: buddyinfo of node {nid} zone {name}"


MEMORY_CHECKS: tuple[Check, ...] = (
    i1_memtotal_is_managed_pages_of_online_blocks,
    i2_has_memory_is_nodes_with_online_pages,
    i3_node_directory_iff_online,
    i4_every_block_has_exactly_one_node_link,
    i5_altmap_or_memmap_charges,
    donor_charges_are_accounted,
    block_counters_are_sane,
    seqnums_increase,
    i8_proc_agrees_with_sys,
)


# -- dax ------------------------------------------------------------------------------------------
def dax_links_match_bindings(k: Kernel, tree: Tree) -> None:
    """``daxX.Y/driver`` <-> ``drivers/<drv>/daxX.Y`` <-> the engine's binding."""
    with _locked(k):
        minors: set[int] = set()
        for name, dev in k.dax_devices.items():
            assert dev.name == name and not dev.dead, name
            assert dev.minor not in minors, f"{name}: minor {dev.minor} used twice"
            minors.add(dev.minor)
            target = _link_target(tree, f"{dev.devpath}/driver")
            if dev.driver is None:
                assert target is None, f"{name} unbound but has a driver link to {target}"
            else:
                assert dev.driver.loaded, f"{name} bound to unloaded {dev.driver.name}"
                assert target == f"{DAX_BUS}/drivers/{dev.driver.name}", f"{name}/driver -> {target}"
                assert dev in dev.driver.bound, f"{name} not in {dev.driver.name}.bound"
            for drv in k.dax_drivers.values():
                if not drv.loaded:
                    continue
                back = _link_target(tree, f"{DAX_BUS}/drivers/{drv.name}/{name}")
                if dev.driver is drv:
                    assert back == dev.devpath, f"drivers/{drv.name}/{name} -> {back}"
                else:
                    assert back is None, f"drivers/{drv.name}/{name} exists but {name} is bound to {dev.driver}"
            assert _link_target(tree, f"{DAX_BUS}/devices/{name}") == dev.devpath, f"bus/dax/devices/{name}"
            assert _link_target(tree, f"/dev/char/{k.dax_major}:{dev.minor}") == dev.devpath, f"dev/char of {name}"
            assert tree.cat(f"{dev.devpath}/dev") == f"{k.dax_major}:{dev.minor}\n"
        for drv in k.dax_drivers.values():
            for dev in drv.bound:
                assert dev.driver is drv and k.dax_devices.get(dev.name) is dev, f"{drv.name}.bound has {dev.name}"
            assert len({id(d) for d in drv.bound}) == len(drv.bound), f"{drv.name} binds a device twice"
        names = {n for n in tree.readdir(f"{DAX_BUS}/devices")}
        assert names == set(k.dax_devices), f"bus/dax/devices {sorted(names)}"
        chars = {n for n in tree.readdir("/dev/char")}
        memdevs = {f"{k.cxl_major}:{m.id}" for m in k.cxl_memdevs.values() if m.devpath in k.cxl_objects}
        assert chars == {f"{k.dax_major}:{d.minor}" for d in k.dax_devices.values()} | memdevs


def dax_driver_data_matches_binding(k: Kernel, _tree: Tree) -> None:
    with _locked(k):
        kmem = k.dax_drivers.get("kmem")
        device_dax = k.dax_drivers.get("device_dax")
        for name, dev in k.dax_devices.items():
            assert (dev.kmem is not None) == (dev.driver is kmem and kmem is not None), f"{name} kmem data"
            if dev.driver is not device_dax or device_dax is None:
                assert not dev.claims, f"{name} keeps device_dax claims while {dev.driver}"
            else:
                # R-DAX-MAP-01: a mapping write does not check the binding, so a bound device can
                # gain ranges device_dax never claimed; every claim still belongs to a range.
                assert len(dev.claims) <= len(dev.ranges), f"{name} claims"


def kmem_bound_devices_have_their_blocks(k: Kernel, tree: Tree) -> None:
    """I-6: every range kmem claimed has all blocks of its aligned range, on the target node,
    in the device's memory group."""
    with _locked(k):
        for name, dev in k.dax_devices.items():
            data = dev.kmem
            if data is None:
                continue
            assert data.mgid in k.memory_groups, f"I-6: {name}: memory group {data.mgid} gone"
            # size_store refuses a bound device, but a mapping write does not check the binding
            # (R-DAX-MAP-01): a kmem-bound device can gain ranges after dev_dax_kmem_probe sized
            # data->res, never lose one.
            assert len(data.res) <= len(dev.ranges), f"I-6: {name}: ranges removed while bound"
            for i, res in enumerate(data.res):
                if res is None:
                    continue
                aligned = k.dax_kmem_range(dev, i)
                assert aligned is not None
                start, end = aligned
                for bid in range(start // k.block_size, (end + 1) // k.block_size):
                    block = k.blocks.get(bid)
                    assert block is not None, f"I-6: {name} is bound to kmem but range {i} misses memory{bid}"
                    assert block.nid == data.nid, f"I-6: {name}: memory{bid} on node{block.nid}"
                    assert block.group is not None and block.group.id == data.mgid, f"I-6: {name}: memory{bid} group"
                    assert _exists(tree, f"{MEM}/memory{bid}/state")


def hot_added_blocks_have_an_owner(k: Kernel, _tree: Tree) -> None:
    """I-7 turned around: a hot-added block belongs to a kmem-bound device, to memory a failed
    unbind leaked (of a device that may be gone since), or (with ``memory/probe``) to a probe
    add."""
    with _locked(k):
        owned: set[int] = set()
        kept = [data for dev in k.dax_devices.values()
                for data in ([dev.kmem] if dev.kmem is not None else []) + list(dev.kmem_leaked)]
        for data in kept + list(k.kmem_orphans):  # kmem_orphans: leaked by devices since removed
            for res in data.res:
                if res is not None:
                    owned.update(range(res.start // k.block_size, (res.end + 1) // k.block_size))
        for bid, block in k.blocks.items():
            if block.boot or bid in owned:
                continue
            assert k.config.probe and block.group is None, f"I-7: memory{bid} is hot-added but nobody owns it"


def dax_regions_are_consistent(k: Kernel, tree: Tree) -> None:
    with _locked(k):
        for region in k.dax_regions:
            allocs = region.allocations()
            prev_end = region.start - 1
            for rng, dev in allocs:
                assert region.start <= rng.start <= rng.end <= region.end, f"{dev.name} range outside region{region.id}"
                assert rng.start > prev_end, f"{dev.name} range overlaps in region{region.id}"
                prev_end = rng.end
            for dev in region.devices.values():
                assert k.dax_devices.get(dev.name) is dev, f"region{region.id} keeps deleted {dev.name}"
                maps = [r.mapping for r in dev.ranges if r.mapping is not None]
                assert len(maps) == len(set(maps)), f"{dev.name} mapping ids"
            for ref in (region.seed, region.youngest):
                assert ref is None or region.devices.get(ref.id) is ref, f"region{region.id} seed/youngest"
            if not region.is_static and region.devices:
                parent = next(iter(region.devices.values())).devpath.rsplit("/", 1)[0]
                assert tree.cat(f"{parent}/dax_region/available_size") == f"{region.avail_size()}\n"


DAX_CHECKS: tuple[Check, ...] = (
    dax_links_match_bindings,
    dax_driver_data_matches_binding,
    kmem_bound_devices_have_their_blocks,
    hot_added_blocks_have_an_owner,
    dax_regions_are_consistent,
)

ALL_CHECKS = MEMORY_CHECKS + DAX_CHECKS


def check_all(k: Kernel, tree: Tree) -> None:
    """Every invariant; AssertionError naming the first one that fails."""
    for check in ALL_CHECKS:
        check(k, tree)


def check_invariants(sim: Simulation) -> None:
    """``check_all`` on a ``Simulation``'s kernel and tree."""
    check_all(sim.kernel, sim.tree)


__all__ = [
    "ALL_CHECKS", "DAX_CHECKS", "MEMORY_CHECKS", "Check", "block_counters_are_sane", "check_all", "check_invariants",
    "dax_driver_data_matches_binding", "dax_links_match_bindings", "dax_regions_are_consistent",
    "donor_charges_are_accounted", "hot_added_blocks_have_an_owner", "i1_memtotal_is_managed_pages_of_online_blocks",
    "i2_has_memory_is_nodes_with_online_pages", "i3_node_directory_iff_online",
    "i4_every_block_has_exactly_one_node_link", "i5_altmap_or_memmap_charges", "i8_proc_agrees_with_sys",
    "kmem_bound_devices_have_their_blocks",
    "meminfo", "seqnums_increase",
]
