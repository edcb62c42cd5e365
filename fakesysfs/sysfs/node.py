"""``/sys/devices/system/node``, ``/sys/devices/system/cpu``, memory tiers and their buses
(drivers/base/node.c, drivers/base/cpu.c, mm/memory-tiers.c handlers)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ..engine.vmstat import node_vmstat
from ..klib import format_cpumap, format_node_list, kstrtoul
from .common import BusDevicesDir, const, link, power_dir, ro, rw, simple_bus, uevent_attr
from .group import Children, Entry, Group, GroupDir, Layout, attr_ro, attr_wo, suffix_id
from .tree import Attr, Dir, DirEntry, MergedDir, Node, StaticDir

if TYPE_CHECKING:
    from ..engine import Kernel
    from ..engine.node import Node as NumaNode

NODE_ROOT = "/devices/system/node"
CPU_ROOT = "/devices/system/cpu"
TIER_ROOT = "/devices/virtual/memory_tiering"

#: node_read_meminfo() labels after MemUsed, in the 6.18 order (all kB, zero when simulated).
_MEMINFO_ZERO = (
    "SwapCached:", "Active:", "Inactive:", "Active(anon):", "Inactive(anon):", "Active(file):",
    "Inactive(file):", "Unevictable:", "Mlocked:", "Dirty:", "Writeback:", "FilePages:", "Mapped:",
    "AnonPages:", "Shmem:", "KernelStack:", "PageTables:", "SecPageTables:", "NFS_Unstable:", "Bounce:",
    "WritebackTmp:", "KReclaimable:", "Slab:", "SReclaimable:", "SUnreclaim:", "AnonHugePages:",
    "ShmemHugePages:", "ShmemPmdMapped:", "FileHugePages:", "FilePmdMapped:",
)


def node_read_meminfo(k: Kernel, nid: int) -> str:
    """R-NODE-06: ``Node K <label:16><value:8> kB`` lines, then the three HugePages lines."""
    total, free = k.node_meminfo_kb(nid)
    rows = [("MemTotal:", total), ("MemFree:", free), ("MemUsed:", total - free)]
    rows += [(label, 0) for label in _MEMINFO_ZERO]
    text = "".join(f"Node {nid} {label:<16}{value:>8} kB\n" for label, value in rows)
    for label in ("HugePages_Total:", "HugePages_Free:", "HugePages_Surp:"):
        text += f"Node {nid} {label:<16} {0:>5}\n"
    return text


def node_read_distance(k: Kernel, nid: int) -> str:
    """Distances to every online node; note the kernel's ``i ? " " : ""`` separator."""
    parts = [f"{' ' if i else ''}{k.distance(nid, i)}" for i in k.online_nodes()]
    return "".join(parts) + "\n"


def node_read_vmstat(k: Kernel, nid: int) -> str:
    """node_read_vmstat(): the zone items summed over the node's zones, the NUMA items, then
    the node items, ``name value`` each, in the kernel's order (engine/vmstat.py)."""
    return "".join(f"{name} {value}\n" for name, value in node_vmstat(k, nid))


def _hugepages_dir() -> StaticDir:
    """``hugepages/hugepages-<size>kB/``: the same for every node and size (no huge pages)."""
    def nr_hugepages_store(text: str, _count: int) -> int | None:
        # The simulator never has pages to spare for huge pages: the kernel then accepts the
        # write and leaves the count at what it could allocate, here 0.
        kstrtoul(text, 10)
        return None

    entries: dict[str, DirEntry] = {
        "free_hugepages": const("0\n"),
        "nr_hugepages": rw(lambda: "0\n", nr_hugepages_store),
        "surplus_hugepages": const("0\n"),
    }
    return StaticDir(entries)


def _hugepages(_d: NodeDir) -> StaticDir:
    """``hugepages/`` (mm/hugetlb.c hugetlb_register_node): one directory per huge page size."""
    return StaticDir({"hugepages-1048576kB": _hugepages_dir(), "hugepages-2048kB": _hugepages_dir()})


#: node_read_numastat(): no allocations are simulated.
_NUMASTAT = "numa_hit 0\nnuma_miss 0\nnuma_foreign 0\ninterleave_hit 0\nlocal_node 0\nother_node 0\n"


def _nothing_store(_d: NodeDir, _text: str) -> int | None:
    return None


#: drivers/base/node.c node_dev_attrs, with compact (mm/compaction.c), reclaim (mm/vmscan.c),
#: hugepages/ (mm/hugetlb.c), the driver core's files, and the links to the node's CPUs
#: (register_cpu_under_node) and memory blocks (do_register_memory_block_under_node).
node_dev_group: Group[NodeDir] = Group([
    attr_wo("compact", _nothing_store),
    attr_ro("cpulist", lambda d: format_node_list(d.node.cpus) + "\n"),
    attr_ro("cpumap", lambda d: format_cpumap(d.node.cpus, d.k.nr_cpu_ids) + "\n"),
    attr_ro("distance", lambda d: node_read_distance(d.k, d.nid)),
    Entry("hugepages", _hugepages),
    attr_ro("meminfo", lambda d: node_read_meminfo(d.k, d.nid)),
    attr_ro("numastat", lambda _d: _NUMASTAT),
    Entry("power", lambda d: power_dir(d.k, d.devpath)),
    attr_wo("reclaim", _nothing_store),
    Entry("subsystem", lambda d: link(d.devpath, "/bus/node")),
    Entry("uevent", lambda d: uevent_attr(d.k, d.devpath, "node")),
    attr_ro("vmstat", lambda d: node_read_vmstat(d.k, d.nid)),
    Children("cpu", lambda d: d.node.cpus, lambda d, cpu: link(d.devpath, f"{CPU_ROOT}/cpu{cpu}"), sort=False),
    Children("memory", lambda d: d.node.blocks, lambda d, bid: link(d.devpath, d.k.memory_devpath(bid))),
])


class NodeDir(GroupDir):
    """``nodeK/`` (drivers/base/node.c node_dev_groups)."""

    __slots__ = ("generation", "k", "nid")
    k: Kernel
    nid: int

    layout = Layout(node_dev_group)

    def __init__(self, k: Kernel, nid: int) -> None:
        self.k = k
        self.nid = nid
        self.generation = k.nodes[nid].generation

    @property
    def node(self) -> NumaNode:
        return self.k.nodes[self.nid]

    @property
    def devpath(self) -> str:
        return self.k.node_devpath(self.nid)

    def alive(self) -> bool:
        node = self.k.nodes[self.nid]
        return node.online and node.generation == self.generation


class NodesDir(Dir):
    __slots__ = ("k",)

    def __init__(self, k: Kernel) -> None:
        self.k = k

    def names(self) -> Iterable[str]:
        return [f"node{nid}" for nid in self.k.online_nodes()]

    def child(self, name: str) -> Node | None:
        nid = suffix_id(name, "node")
        if nid is None or nid not in self.k.nodes or not self.k.nodes[nid].online:
            return None
        return NodeDir(self.k, nid)


def node_root(k: Kernel) -> Dir:
    def state(fn: Callable[[], Iterable[int]]) -> Attr:
        return ro(lambda: format_node_list(fn()) + "\n")

    fixed = StaticDir({
        "has_cpu": state(lambda: [n.id for n in k.nodes.values() if n.online and n.cpus]),
        "has_generic_initiator": state(list),
        "has_memory": state(lambda: sorted(k.n_memory)),
        "has_normal_memory": state(lambda: sorted(k.n_normal_memory)),
        "online": state(k.online_nodes),
        "possible": state(lambda: sorted(k.possible_nodes)),
        "power": power_dir(k, NODE_ROOT),
        "uevent": uevent_attr(k, NODE_ROOT, None),
    })
    return MergedDir(fixed, NodesDir(k))


def node_bus(k: Kernel) -> StaticDir:
    here = "/bus/node/devices"
    devices = BusDevicesDir(
        here,
        lambda: [f"node{nid}" for nid in k.online_nodes()],
        lambda name: (k.node_devpath(nid) if (nid := suffix_id(name, "node")) is not None
                      and nid in k.nodes and k.nodes[nid].online else None),
    )
    return simple_bus(k, "node", devices)


# -- CPUs: what numactl and hwloc read -----------------------------------------------------------
def _cpu_dir(k: Kernel, cpu: int) -> StaticDir:
    here = f"{CPU_ROOT}/cpu{cpu}"
    nid = k.cpu_to_node(cpu)
    package = [c for c in k.all_cpus() if k.cpu_to_node(c) == nid]

    def mask(cpus: list[int]) -> Node:
        return const(format_cpumap(cpus, k.nr_cpu_ids) + "\n")

    def lst(cpus: list[int]) -> Node:
        return const(format_node_list(cpus) + "\n")

    topology = StaticDir({
        "cluster_cpus": mask([cpu]), "cluster_cpus_list": lst([cpu]), "cluster_id": const(f"{cpu}\n"),
        "core_cpus": mask([cpu]), "core_cpus_list": lst([cpu]), "core_id": const(f"{cpu}\n"),
        "core_siblings": mask(package), "core_siblings_list": lst(package),
        "die_cpus": mask(package), "die_cpus_list": lst(package), "die_id": const("0\n"),
        "package_cpus": mask(package), "package_cpus_list": lst(package),
        "physical_package_id": const(f"{nid}\n"),
        "thread_siblings": mask([cpu]), "thread_siblings_list": lst([cpu]),
    })
    entries: dict[str, DirEntry] = {
        "power": power_dir(k, here),
        "subsystem": link(here, "/bus/cpu"),
        "topology": topology,
        "uevent": uevent_attr(k, here, "cpu"),
        f"node{nid}": link(here, k.node_devpath(nid)),
    }
    if cpu:
        entries["online"] = const("1\n", 0o644)
    return StaticDir(entries)


def cpu_root(k: Kernel) -> StaticDir:
    cpus = k.all_cpus()
    listing = format_node_list(cpus) + "\n"
    entries: dict[str, DirEntry] = {
        "kernel_max": const(f"{max(k.nr_cpu_ids - 1, 0)}\n"),
        "offline": const("\n"),
        "online": const(listing),
        "possible": const(listing),
        "present": const(listing),
        "power": power_dir(k, CPU_ROOT),
        "uevent": uevent_attr(k, CPU_ROOT, None),
    }
    for cpu in cpus:
        entries[f"cpu{cpu}"] = _cpu_dir(k, cpu)
    return StaticDir(entries)


def cpu_bus(k: Kernel) -> StaticDir:
    here = "/bus/cpu/devices"
    devices = BusDevicesDir(
        here,
        lambda: [f"cpu{c}" for c in k.all_cpus()],
        lambda name: f"{CPU_ROOT}/{name}" if (c := suffix_id(name, "cpu")) is not None and c in k.all_cpus() else None,
    )
    return simple_bus(k, "cpu", devices)


# -- memory tiers --------------------------------------------------------------------------------
#: mm/memory-tiers.c memtier_dev_groups (nodelist) with the driver core's files.
memtier_dev_group: Group[MemoryTierDir] = Group([
    attr_ro("nodelist", lambda d: format_node_list(sorted(d.k.tiers.get(d.tier, ()))) + "\n"),
    Entry("power", lambda d: power_dir(d.k, d.devpath)),
    Entry("subsystem", lambda d: link(d.devpath, "/bus/memory_tiering")),
    Entry("uevent", lambda d: uevent_attr(d.k, d.devpath, "memory_tiering")),
])


class MemoryTierDir(GroupDir):
    """``memory_tierT/``, declared in ``memtier_dev_group``."""

    __slots__ = ("k", "tier")
    k: Kernel
    tier: int

    layout = Layout(memtier_dev_group)

    def __init__(self, k: Kernel, tier: int) -> None:
        self.k = k
        self.tier = tier

    @property
    def devpath(self) -> str:
        return self.k.memtier_devpath(self.tier)


class TiersDir(Dir):
    __slots__ = ("k",)

    def __init__(self, k: Kernel) -> None:
        self.k = k

    def names(self) -> Iterable[str]:
        return [f"memory_tier{t}" for t in sorted(self.k.tiers)]

    def child(self, name: str) -> Node | None:
        tier = suffix_id(name, "memory_tier")
        return MemoryTierDir(self.k, tier) if tier is not None and tier in self.k.tiers else None


def tier_root(k: Kernel) -> Dir:
    return MergedDir(StaticDir({"uevent": uevent_attr(k, TIER_ROOT, None)}), TiersDir(k))


def tier_bus(k: Kernel) -> StaticDir:
    here = "/bus/memory_tiering/devices"
    devices = BusDevicesDir(
        here,
        lambda: [f"memory_tier{t}" for t in sorted(k.tiers)],
        lambda name: (k.memtier_devpath(t)
                      if (t := suffix_id(name, "memory_tier")) is not None and t in k.tiers else None),
    )
    return simple_bus(k, "memory_tiering", devices)
