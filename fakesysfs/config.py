"""Boot configuration: what firmware and the kernel command line decide before user space runs.

These dataclasses are the engine's only input. ``fakesysfs.topology`` builds them from TOML
(and validates them, naming the offending key); tests build them directly. Sizes are bytes,
addresses are physical, node ids are the firmware's (SRAT) ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40
#: CXL HDM decoder granularity: a CXL region's start and size are multiples of it.
CXL_GRANULE = 256 * MiB

#: The default char major of ``/dev/cxl/memN`` (the kernel's is dynamic).
CXL_MAJOR = 251
#: HDM decoders of a host bridge and of an endpoint (the HDM Decoder Capability's count).
NR_HDM_DECODERS = 4
#: Kernel profiles (docs/abi.md "Profiles"). Any "6.N" with 8 <= N <= 18 is accepted too.
PROFILES = ("6.8", "6.9-6.16", "6.18")


#: Architectures (docs/topology.md "Architectures"): their zone layouts (``zone_limits``),
#: base page sizes (CONFIG_*_PAGES) and ``phys_device`` (arch_get_memory_phys_device).
ARCHES = ("x86_64", "arm64", "s390x", "ppc64le")
ARCH_PAGE_SIZES = {"x86_64": (4096,), "arm64": (4096, 16384, 65536), "s390x": (4096,), "ppc64le": (4096, 65536)}


#: Names of the CXL root's platform device: ACPI's (firmware: the ACPI0017 object) and the
#: one the kernel's cxl_test mock registers (tools/testing/cxl/test/cxl.c:
#: platform_device_alloc("cxl_acpi", 0)), whose paths cxl_test-based suites look for.
CXL_ROOTS = ("ACPI0017:00", "cxl_acpi.0")


def cxl_root_device(name: str) -> tuple[str, str]:
    """(devpath, MODALIAS) of the CXL root platform device named ``name``."""
    modalias = "acpi:ACPI0017:" if name.startswith("ACPI0017:") else "platform:cxl_acpi"
    return f"/devices/platform/{name}", modalias


def zone_limits(arch: str, ram_start: int) -> tuple[tuple[str, int], ...]:
    """The zones boot RAM falls in, lowest first, each with the address it ends at (the last
    ends at 2**64), as the architecture's zone_sizes_init()/paging_init() sets max_zone_pfn:

    - x86_64: ZONE_DMA below 16 MiB, ZONE_DMA32 below 4 GiB (arch/x86/mm/init.c);
    - arm64: ZONE_DMA up to zone_dma_limit, 32 bits when firmware (DT dma-ranges, IORT) sets
      no lower one, so ZONE_DMA32 (also up to 4 GiB) is empty; DRAM starting above 4 GiB puts
      all of it in ZONE_DMA (arch/arm64/mm/init.c max_zone_phys());
    - s390x: ZONE_DMA below 2 GiB (arch/s390/mm/init.c, MAX_DMA_ADDRESS);
    - ppc64le (Book3S, no CONFIG_ZONE_DMA): ZONE_NORMAL only (arch/powerpc/mm/mem.c)."""
    top = 1 << 64
    if arch == "arm64":
        return (("DMA", top if ram_start > (1 << 32) - 1 else 1 << 32), ("Normal", top))
    if arch == "s390x":
        return (("DMA", 2 << 30), ("Normal", top))
    if arch == "ppc64le":
        return (("Normal", top),)
    return (("DMA", 16 << 20), ("DMA32", 4 << 30), ("Normal", top))


def arch_zones(arch: str) -> tuple[str, ...]:
    """The zones the architecture's kernel has (enum zone_type, include/linux/mmzone.h): what
    /proc/zoneinfo, buddyinfo, pagetypeinfo and vmstat's per-zone event names list, and the
    length of ``protection`` and lowmem_reserve_ratio (MAX_NR_ZONES), in enum order.

    - ZONE_DMA: x86 (arch/x86/Kconfig, default y), arm64 (arch/arm64/Kconfig, default y),
      s390 (arch/s390/Kconfig, def_bool y); powerpc only for PPC_BOOK3E_64, so not ppc64le
      (Book3S);
    - ZONE_DMA32: x86_64 and arm64 only (default y);
    - ZONE_DEVICE (mm/Kconfig; what devm_memremap_pages() needs, so device_dax too): the
      distribution configurations of x86_64 (the reference machine prints it), arm64 and
      ppc64le (PPC_BOOK3S_64 has ARCH_HAS_PTE_DEVMAP) set it; s390 has no
      ARCH_HAS_PTE_DEVMAP before the devmap removal and its defconfig leaves it unset."""
    zones = {"x86_64": ("DMA", "DMA32", "Normal", "Movable", "Device"),
             "arm64": ("DMA", "DMA32", "Normal", "Movable", "Device"),
             "s390x": ("DMA", "Normal", "Movable"),
             "ppc64le": ("Normal", "Movable", "Device")}
    return zones.get(arch, zones["x86_64"])


def profile_version(profile: str) -> tuple[int, int]:
    """``"6.9-6.16"`` -> (6, 9); ``"6.18"`` -> (6, 18). Raises ValueError for anything else."""
    head = profile.split("-", 1)[0]
    major, minor = head.split(".")
    version = (int(major), int(minor))
    if profile == "6.9-6.16":
        return (6, 9)
    if not ((6, 8) <= version <= (6, 18)) or "-" in profile:
        raise ValueError(profile)
    return version


@dataclass(slots=True)
class MemRange:
    """Boot RAM of one node: [start, start + size)."""

    start: int
    size: int

    @property
    def end(self) -> int:
        """Exclusive end."""
        return self.start + self.size


@dataclass(slots=True)
class NodeConfig:
    """One NUMA node as firmware describes it (SRAT/SLIT/HMAT)."""

    id: int
    cpus: list[int] = field(default_factory=list)
    memory: list[MemRange] = field(default_factory=list)
    #: Abstract distance for memory tiering; None = DRAM default (576) for boot memory.
    adistance: int | None = None
    #: Ids of this node's boot memory blocks that are offline once boot is done (a machine
    #: imported after some were offlined; s390 standby memory).
    offline_blocks: list[int] = field(default_factory=list)
    #: Ids of this node's boot memory blocks online in ZONE_MOVABLE once boot is done
    #: (``movablecore=``, or offlined and onlined ``online_movable`` before a dump).
    movable_blocks: list[int] = field(default_factory=list)


@dataclass(slots=True)
class CxlRegionConfig:
    """A CXL RAM region: ``regionN`` under a decoder, with ``dax_regionN/daxN.0``."""

    start: int
    size: int
    target_node: int
    decoder: str = "decoder0.0"
    #: Abstract distance kmem uses for the node (firmware performance data); None = 2880.
    adistance: int | None = None
    #: NUMA affinity of the region device (``daxN.0/numa_node``); None = nearest CPU node.
    numa_node: int | None = None
    #: Dax driver ``daxN.0`` ends boot bound to ("device_dax"/"kmem"); None = the match default.
    driver: str | None = None


@dataclass(slots=True)
class CxlWindowConfig:
    """A CXL Fixed Memory Window (ACPI CEDT CFMWS): root decoder ``decoder0.N``, N its index.

    drivers/cxl/acpi.c __cxl_parse_cfmws() turns each window into a root decoder whose
    targets are the ``_UID``s of the ACPI0016 host bridges it interleaves, in CFMWS order."""

    start: int
    size: int
    #: The node SRAT (or the window itself, drivers/acpi/numa/srat.c acpi_parse_cfmws) gives
    #: the window's memory: the ``target_node`` of the dax devices of its regions.
    target_node: int
    #: Host bridge ``_UID``s, in interleave order; the window's ways are their number.
    host_bridges: list[int] = field(default_factory=lambda: [0])
    #: Host bridge interleave granularity in bytes (a x1 window reports 256 whatever it says).
    granularity: int = 256
    #: Window restrictions: volatile (``cap_ram``), persistent (``cap_pmem``), fixed (``locked``).
    ram: bool = True
    pmem: bool = False
    locked: bool = False
    #: QoS Throttling Group: the root decoder's ``qos_class``.
    qtg_id: int = 0


@dataclass(slots=True)
class CxlMemdevConfig:
    """A CXL Type-3 memory expander (``memN``, N its index) below a root port of a host bridge."""

    #: ``_UID`` of the host bridge it sits below (each memdev gets a root port of its own).
    host_bridge: int = 0
    ram_size: int = 0
    pmem_size: int = 0
    #: Device serial number (PCIe DSN); None: the memdev's index + 1.
    serial: int | None = None
    #: ``numa_node`` of the PCI device; None: the lowest online node with CPUs.
    numa_node: int | None = None
    firmware_version: str = "fakesysfs 1.0"


@dataclass(slots=True)
class HmemConfig:
    """An EFI soft-reserved / HMAT range published as platform device ``hmem.N``."""

    start: int
    size: int
    target_node: int
    adistance: int | None = None
    numa_node: int | None = None
    #: Dax driver ``daxN.0`` ends boot bound to; None = the match default (kmem).
    driver: str | None = None


@dataclass(slots=True)
class PmemConfig:
    """A pmem namespace ``namespaceR.S`` in devdax mode (a static dax region)."""

    namespace: str  # "namespaceR.S"
    start: int
    size: int
    target_node: int
    #: Bytes at the start of the namespace used by the info block and struct-page reserve.
    reserve: int = 2 * MiB
    align: int = 2 * MiB
    adistance: int | None = None
    numa_node: int | None = None
    #: Dax driver ``daxR.S`` ends boot bound to; None = the match default (device_dax).
    driver: str | None = None


@dataclass(slots=True)
class BootConfig:
    """Everything the simulated kernel knows at boot: firmware tables, the build's options and
    the command line (memory_hotplug.* parameters of mm/memory_hotplug.c)."""

    nodes: list[NodeConfig]
    #: Node ids that may ever exist (``node/possible``); default: the ids of ``nodes``.
    possible_nodes: list[int] | None = None
    #: SLIT distances: ``distances[a][b]``; missing entries default to 10 local / 20 remote.
    distances: dict[int, dict[int, int]] = field(default_factory=dict)
    block_size: int = 128 * MiB
    page_size: int = 4096
    struct_page_size: int = 64
    memmap_on_memory: str = "N"  # "N", "Y" or "force" (memory_hotplug.memmap_on_memory=)
    online_policy: str = "contig-zones"
    auto_movable_ratio: int = 301
    auto_movable_numa_aware: bool = True
    auto_online_blocks: str = "offline"  # memhp_default_state=
    movable_node: bool = False
    kernel_profile: str = "6.18"
    #: The architecture: zone layout, page sizes, ``phys_device`` (see ``zone_limits``).
    arch: str = "x86_64"
    #: The CXL root's platform device (``CXL_ROOTS``): the parent of ``root0`` and its decoders.
    cxl_root: str = "ACPI0017:00"
    #: CONFIG_ARCH_MEMORY_PROBE: ``memory/probe`` exists.
    probe: bool = False
    max_physmem_bits: int = 52
    #: Share of each boot kernel-zone block held by unmovable kernel allocations (R-STATE-08).
    boot_used_percent: int = 3
    boot_unmovable: bool = True
    notifier_error_inject: bool = True
    #: Boot-loader words of the kernel command line before the memory hotplug parameters
    #: (/proc/cmdline), e.g. "BOOT_IMAGE=/boot/vmlinuz root=/dev/vda1 ro".
    cmdline: str = ""
    # --- dax ---
    dax_major: int = 252
    dax_drivers_autoprobe: bool = True
    kmem_loaded: bool = True
    device_dax_loaded: bool = True
    dax_hmem_region_idle: bool = False
    cxl_regions: list[CxlRegionConfig] = field(default_factory=list)
    # --- cxl ---
    #: Char major of ``/dev/cxl/memN`` (``alloc_chrdev_region(..., "cxl")``: dynamic).
    cxl_major: int = CXL_MAJOR
    cxl_windows: list[CxlWindowConfig] = field(default_factory=list)
    cxl_memdevs: list[CxlMemdevConfig] = field(default_factory=list)
    hmem: list[HmemConfig] = field(default_factory=list)
    pmem: list[PmemConfig] = field(default_factory=list)

    def possible(self) -> list[int]:
        """Sorted possible node ids."""
        if self.possible_nodes is not None:
            return sorted(set(self.possible_nodes))
        return sorted({n.id for n in self.nodes})

    def distance(self, a: int, b: int) -> int:
        """SLIT distance between two nodes."""
        row = self.distances.get(a)
        if row is not None and b in row:
            return row[b]
        row = self.distances.get(b)
        if row is not None and a in row:
            return row[a]
        return 10 if a == b else 20

    def ram_start(self) -> int:
        """The lowest boot RAM address (0 without any)."""
        return min((r.start for n in self.nodes for r in n.memory), default=0)


# --- the block budget: what a topology, and a range hot-added later, may span ---

#: Upper bound on the memory blocks a topology may span (keeps the engine's tables small).
MAX_MEMORY_BLOCKS = 1 << 21
_BINARY_UNITS = (("E", 60), ("P", 50), ("T", 40), ("G", 30), ("M", 20), ("K", 10))


def _ranges(c: BootConfig) -> list[tuple[int, int, str, int | None]]:
    """(start, end, key, node for boot RAM else None) for every physical range, in file order."""
    out: list[tuple[int, int, str, int | None]] = []
    for i, node in enumerate(c.nodes):
        for j, r in enumerate(node.memory):
            out.append((r.start, r.end, f"node[{i}].memory[{j}]", node.id))
    producers: list[tuple[str, list[Any]]] = [
        ("cxl_region", c.cxl_regions), ("hmem", c.hmem), ("pmem", c.pmem),
    ]  # fmt: skip
    for name, entries in producers:
        out += [(x.start, x.start + x.size, f"{name}[{i}]", None) for i, x in enumerate(entries)]
    return out


def block_budget_problem(c: BootConfig, extra: tuple[int, int, str] | None = None) -> str | None:
    """Why the memory blocks that the ranges of ``c`` (plus ``extra``: start, size, name, a
    range hot-added at run time) span are more than the simulator can hold: over 2**21, or
    over half of this machine's available memory at ``BYTES_PER_BLOCK`` each. None if they fit."""
    bs = c.block_size
    ranges = [(start, end, key) for start, end, key, _ in _ranges(c)]
    if extra is not None:
        ranges.append((extra[0], extra[0] + extra[1], extra[2]))
    total = 0
    last_block = -1
    largest = (0, "")
    for start, end, key in sorted(ranges):
        lo, hi = max(start // bs, last_block + 1), (end - 1) // bs
        if hi >= lo:
            total += hi - lo + 1
            last_block = hi
            largest = max(largest, (hi - lo + 1, key))
    if total > MAX_MEMORY_BLOCKS:
        return (f"the topology spans {total} memory blocks of {_human(bs)}; at most "
                f"{MAX_MEMORY_BLOCKS} (2**21) are supported: use larger blocks or smaller ranges")
    need = total * BYTES_PER_BLOCK
    available = available_memory()
    if available is not None and need > available // 2:
        return (f"the topology spans {total} memory blocks of {_human(bs)} (the most in {largest[1]}: "
                f"{largest[0]}), which the simulator needs about {need >> 20} MiB of memory for; this machine "
                f"has {available >> 20} MiB available (at most half of it is used): use larger blocks or "
                "smaller ranges")
    return None


#: What one memory block costs the engine, with its uevents and a few state changes (measured:
#: ~0.55 KiB at boot; doubled for what a test does with it).
BYTES_PER_BLOCK = 1024


def available_memory() -> int | None:
    """MemAvailable of this machine in bytes (None if unknown): a topology whose blocks would
    need more than half of it is refused at load, naming ``kernel.block_size``."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _human(n: int) -> str:
    for unit, shift in _BINARY_UNITS:
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}iB"
    return f"{n} bytes"
