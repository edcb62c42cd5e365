"""The simulated machine's memory ``/proc`` files, generated from the engine on every read
(docs/proc.md).

    meminfo    0444  fs/proc/meminfo.c meminfo_proc_show
    zoneinfo   0444  mm/vmstat.c zoneinfo_show / zoneinfo_show_print
    vmstat     0444  mm/vmstat.c vmstat_start / vmstat_show
    buddyinfo  0444  mm/vmstat.c frag_show / frag_show_print
    pagetypeinfo 0400  mm/vmstat.c pagetypeinfo_show (root only)
    iomem      0444  kernel/resource.c r_show (addresses zeroed for an opener without root)
    cmdline    0444  fs/proc/cmdline.c cmdline_proc_show (stat size = length + 1)
    swaps      0444  mm/swapfile.c swap_show (no swap: the header only)
    modules    0444  kernel/module/procfs.c m_show (the loaded simulated modules)
    sys/vm/*   0644  min_free_kbytes, watermark_scale_factor, lowmem_reserve_ratio, dirty_ratio,
                     dirty_background_ratio, overcommit_ratio (writes change the simulated
                     machine: the watermarks follow); compact_memory, drop_caches 0200

A ``ProcTree`` holds them as a tree like ``/sys``'s, so the one FUSE adapter serves them
(``fakesysfs run`` binds each over ``/proc/<name>`` of COMMAND's own /proc) and the Python
API reads them (``Simulation.proc``). The read semantics are procfs's seq_file ones, which
the tree already has (R-SYS-03): a read at offset 0 regenerates the text, later offsets
continue in that snapshot, a read at an offset without one generates it; ``stat`` reports
size 0 (cmdline: its length). Every text is built under the hotplug lock from one engine
state, so files read together agree.

The line sets are the 6.18 x86-64 ones (the reference machine); values the engine does not
model (page cache, slab, swap, NUMA and VM events...) are 0 (docs/proc.md lists them).
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .engine.page_alloc import (
    MAX_PAGE_ORDER,
    PAGEBLOCK_ORDER,
    direct_map,
    free_area,
    pageblock_types,
    si_mem_available,
    vm_commit_limit,
    vm_state,
    zone_span,
)
from .engine.vmstat import global_vmstat, node_stats, numa_stats, zone_stats
from .errors import KernelError
from .klib import strtoul_lenient
from .sysfs.tree import Attr, OpenFile, ShowFn, StaticDir, StoreFn, Tree

if TYPE_CHECKING:
    from .engine import Kernel

__all__ = ["KMSG_MAX_THREADS", "MODULE_SIZES", "PROC_FILES", "KmsgAttr", "ProcAttr", "build_kmsg_tree",
           "build_proc_tree", "build_staging_tree", "proc_cmdline",
           "proc_iomem", "proc_meminfo", "proc_modules", "proc_root",
           "proc_pagetypeinfo", "proc_read", "proc_vmstat", "proc_zoneinfo"]

log = logging.getLogger(__name__)

#: VMALLOC_TOTAL >> 10 on x86-64: 32 TiB - 1 with 4-level paging, 12800 TiB - 1 with 5-level
#: (arch/x86/include/asm/pgtable_64_types.h VMALLOC_SIZE_TB_L4 / _L5).
_VMALLOC_TOTAL_KB = {4: (32 << 30) - 1, 5: (12800 << 30) - 1}
#: MAX_IORES_LEVEL (kernel/resource.c): indentation stops growing below it.
_MAX_IORES_LEVEL = 5


class ProcAttr(Attr):
    """A seq_file proc entry: the whole text on read, size 0 in stat unless the entry has a
    fixed size (``pde->size``: /proc/cmdline)."""

    __slots__ = ("size",)
    max_size = None

    def __init__(self, mode: int, show: ShowFn | None, size: int = 0, store: StoreFn | None = None) -> None:
        super().__init__(mode, show, store)
        self.size = size

    def render(self, fh: OpenFile) -> str:
        """The opener's permission as procfs checks it at open (the mount checks it for a
        FUSE opener: default_permissions; this is for in-process readers)."""
        if fh.uid != 0 and not self.mode & 0o004:
            raise KernelError(errno.EACCES)
        return super().render(fh)


class IomemAttr(ProcAttr):
    """/proc/iomem: r_show() prints real addresses only to an opener with CAP_SYS_ADMIN in the
    initial user namespace, decided at open by the file's credentials; the simulated
    machine's root is uid 0 as the mount sees the opener."""

    __slots__ = ("k",)

    def __init__(self, k: Kernel) -> None:
        super().__init__(0o444, lambda: proc_iomem(k))
        self.k = k

    def render(self, fh: OpenFile) -> str:
        super().render(fh)
        return proc_iomem(self.k, hide=fh.uid != 0)


# -- /proc/meminfo ---------------------------------------------------------------------------
def proc_meminfo(k: Kernel) -> str:
    """meminfo_proc_show(): ``show_val_kb`` lines (label padded to 16, value to 8) in the
    6.18 order. MemTotal = totalram_pages() = sum of managed pages; MemFree = NR_FREE_PAGES;
    MemAvailable = si_mem_available(); CommitLimit = vm_commit_limit()."""
    with k.lock:
        kb = k.page_size // 1024
        nodes = list(k.nodes.values())
        totalram = sum(n.managed_pages for n in nodes)
        free = sum(n.free_pages for n in nodes)
        state = vm_state(k)
        available = si_mem_available(free, state)
        direct = direct_map(k)
        paging_levels = 5 if k.max_physmem_bits > 46 else 4
        rows: list[tuple[str, int]] = [
            ("MemTotal:", totalram * kb), ("MemFree:", free * kb), ("MemAvailable:", available * kb),
        ]
        rows += [(label, 0) for label in (
            "Buffers:", "Cached:", "SwapCached:", "Active:", "Inactive:", "Active(anon):", "Inactive(anon):",
            "Active(file):", "Inactive(file):", "Unevictable:", "Mlocked:", "SwapTotal:", "SwapFree:", "Zswap:",
            "Zswapped:", "Dirty:", "Writeback:", "AnonPages:", "Mapped:", "Shmem:", "KReclaimable:", "Slab:",
            "SReclaimable:", "SUnreclaim:", "KernelStack:", "PageTables:", "SecPageTables:", "NFS_Unstable:",
            "Bounce:", "WritebackTmp:")]
        rows += [("CommitLimit:", vm_commit_limit(totalram, k.vm.overcommit_ratio) * kb), ("Committed_AS:", 0),
                 ("VmallocTotal:", _VMALLOC_TOTAL_KB[paging_levels])]
        rows += [(label, 0) for label in (
            "VmallocUsed:", "VmallocChunk:", "Percpu:", "AnonHugePages:", "ShmemHugePages:", "ShmemPmdMapped:",
            "FileHugePages:", "FilePmdMapped:", "Balloon:")]
        text = "".join(f"{label:<16}{value:>8} kB\n" for label, value in rows)
        # hugetlb_report_meminfo(): "HugePages_Total:   %5lu" etc., no unit.
        for label in ("HugePages_Total:", "HugePages_Free:", "HugePages_Rsvd:", "HugePages_Surp:"):
            text += f"{label:<16}{0:>8}\n"
        text += f"{'Hugepagesize:':<16}{2048:>8} kB\n{'Hugetlb:':<16}{0:>8} kB\n"
        # arch_report_meminfo() (arch/x86/mm/pat/set_memory.c), direct_gbpages on.
        for label, size in (("DirectMap4k:", 4096), ("DirectMap2M:", 2 << 20), ("DirectMap1G:", 1 << 30)):
            text += f"{label:<16}{direct[size] >> 10:>8} kB\n"
        return text


# -- /proc/zoneinfo --------------------------------------------------------------------------
def _pageset(managed: int, low: int, nsplit: int, ncpus: int) -> tuple[int, int, int, int]:
    """(batch, high_min, high_max, stat_threshold) of a zone's per-CPU pagesets:
    zone_batchsize(), zone_highsize() (high_min from the low watermark, high_max from
    managed / MIN_PERCPU_PAGELIST_HIGH_FRACTION), calculate_normal_threshold()."""
    batch = max(min(managed >> 10, (1 << 20) // 4096) // 4, 1)
    b = batch + batch // 2
    batch = max(1, (1 << (b.bit_length() - 1)) - 1)
    high_min = max(low // nsplit, batch << 2)
    high_max = max(managed // 8 // nsplit, batch << 2)
    threshold = min(125, 2 * ncpus.bit_length() * (1 + (managed >> 15).bit_length()))
    return batch, high_min, high_max, threshold


def proc_zoneinfo(k: Kernel) -> str:
    """zoneinfo_show(): every zone of every online node, populated or not; the node's stats
    under its first populated zone; counters and pagesets only for populated zones."""
    with k.lock:
        state = vm_state(k)
        cpus = k.all_cpus()
        out: list[str] = []
        for nid in k.online_nodes():
            node = k.nodes[nid]
            first = next((z for z in k.zone_names if z in node.zones and node.zones[z].populated), None)
            for name in k.zone_names:
                zone = node.zones.get(name)
                present = zone.present if zone else 0
                managed = zone.managed if zone else 0
                free = zone.free if zone else 0
                start_pfn, spanned = zone_span(k, node, name)
                marks = state.watermarks[(nid, name)]
                parts = [f"Node {nid}, zone {name:>8}"]
                if name == first:
                    parts.append("\n  per-node stats")
                    parts += [f"\n      {item:<12} {value}" for item, value in node_stats(k, nid)]
                parts.append(f"\n  pages free     {free}\n        boost    0\n        min      {marks.min}"
                             f"\n        low      {marks.low}\n        high     {marks.high}"
                             f"\n        promo    {marks.promo}\n        spanned  {spanned}"
                             f"\n        present  {present}\n        managed  {managed}\n        cma      0"
                             f"\n        protection: ({', '.join(str(r) for r in marks.protection)})")
                if not present:
                    out.append("".join(parts) + "\n")
                    continue
                parts += [f"\n      {item:<12} {value}" for item, value in zone_stats(k, nid, name)]
                parts += [f"\n      {item:<12} {value}" for item, value in numa_stats(k, nid)]
                parts.append("\n  pagesets")
                nsplit = len(node.cpus) or len(cpus) or 1
                batch, high_min, high_max, threshold = _pageset(managed, marks.low, nsplit, len(cpus))
                for cpu in cpus:
                    parts.append(f"\n    cpu: {cpu}\n              count:    0\n              high:     {high_min}"
                                 f"\n              batch:    {batch}\n              high_min: {high_min}"
                                 f"\n              high_max: {high_max}\n  vm stats threshold: {threshold}")
                parts.append(f"\n  node_unreclaimable:  0\n  start_pfn:           {start_pfn}\n")
                out.append("".join(parts))
        return "".join(out)


# -- /proc/buddyinfo, /proc/vmstat -------------------------------------------------------------
def proc_buddyinfo(k: Kernel) -> str:
    """frag_show(): one line per populated zone of the online nodes, ``%6lu `` per order."""
    with k.lock:
        lines = []
        for nid in k.online_nodes():
            node = k.nodes[nid]
            for name in k.zone_names:
                zone = node.zones.get(name)
                if zone is None or not zone.populated:
                    continue
                counts = free_area(k, node, name)
                assert len(counts) == MAX_PAGE_ORDER + 1
                lines.append(f"Node {nid}, zone {name:>8} " + "".join(f"{n:>6} " for n in counts) + "\n")
        return "".join(lines)


#: migratetype_names[] (mm/page_alloc.c) without CMA, with CONFIG_MEMORY_ISOLATION.
MIGRATETYPES = ("Unmovable", "Movable", "Reclaimable", "HighAtomic", "Isolate")


def proc_pagetypeinfo(k: Kernel) -> str:
    """pagetypeinfo_show() for every node with memory: free lists per migratetype and order
    (the simulator keeps every free page on the Movable lists) and pageblocks per
    migratetype (engine/page_alloc.py pageblock_types)."""
    with k.lock:
        out: list[str] = []
        for nid in k.online_nodes():
            node = k.nodes[nid]
            if nid not in k.n_memory:
                continue
            zones = [z for z in k.zone_names if z in node.zones and node.zones[z].populated]
            out.append(f"Page block order: {PAGEBLOCK_ORDER}\nPages per block:  {1 << PAGEBLOCK_ORDER}\n\n")
            out.append(f"{'Free pages count per migrate type at order':<43} "
                       + "".join(f"{order:>6} " for order in range(MAX_PAGE_ORDER + 1)) + "\n")
            for name in zones:
                counts = free_area(k, node, name)
                for mtype in MIGRATETYPES:
                    row = counts if mtype == "Movable" else [0] * len(counts)
                    out.append(f"Node {nid:>4}, zone {name:>8}, type {mtype:>12} "
                               + "".join(f"{n:>6} " for n in row) + "\n")
            out.append(f"\n{'Number of blocks type ':<23}" + "".join(f"{m:>12} " for m in MIGRATETYPES) + "\n")
            for name in zones:
                unmovable, movable = pageblock_types(k, node, name)
                types = {"Unmovable": unmovable, "Movable": movable}
                out.append(f"Node {nid}, zone {name:>8} " + "".join(f"{types.get(m, 0):>12} " for m in MIGRATETYPES)
                           + "\n")
        return "".join(out)


def proc_vmstat(k: Kernel) -> str:
    """vmstat_show(): ``name value`` per item, then the deprecated ``nr_unstable 0``."""
    with k.lock:
        return "".join(f"{name} {value}\n" for name, value in global_vmstat(k)) + "nr_unstable 0\n"


# -- /proc/iomem, /proc/cmdline ------------------------------------------------------------------
def proc_iomem(k: Kernel, hide: bool = False) -> str:
    """r_show() over iomem_resource: pre-order, two spaces per level (at most
    MAX_IORES_LEVEL), addresses as %08llx; zeros when ``hide``."""
    with k.lock:
        lines = []
        for depth, res in k.resources.root.walk():
            start, end = (0, 0) if hide else (res.start, res.end)
            lines.append(f"{'  ' * min(depth, _MAX_IORES_LEVEL)}{start:08x}-{end:08x} : {res.name}\n")
        return "".join(lines)


def proc_cmdline(k: Kernel) -> str:
    """saved_command_line and a newline: the topology's boot-loader words, then the memory
    hotplug parameters the simulated kernel booted with (mm/memory_hotplug.c
    ``memhp_default_state=``, ``memory_hotplug.*``, ``movable_node``), which agree with
    /sys/module/memory_hotplug/parameters and memory/auto_online_blocks at boot."""
    cfg = k.config
    words = [cfg.cmdline] if cfg.cmdline else []
    words += [
        f"memhp_default_state={cfg.auto_online_blocks}",
        f"memory_hotplug.memmap_on_memory={cfg.memmap_on_memory}",
        f"memory_hotplug.online_policy={cfg.online_policy}",
        f"memory_hotplug.auto_movable_ratio={cfg.auto_movable_ratio}",
        f"memory_hotplug.auto_movable_numa_aware={'Y' if cfg.auto_movable_numa_aware else 'N'}",
    ]
    if cfg.movable_node:
        words.append("movable_node")
    return " ".join(words) + "\n"


def proc_swaps(_k: Kernel) -> str:
    """swap_show() (mm/swapfile.c): the header, then one line per swap area; the simulated
    machine has none (SwapTotal 0), whatever this host has."""
    return "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"


# -- /proc/modules ----------------------------------------------------------------------------------
#: The simulated loadable modules and the size lsmod shows for each (the core layout of a
#: 6.18 x86-64 distribution build; the simulator does not load code).
MODULE_SIZES = {"kmem": 28672, "device_dax": 20480}


def proc_modules(k: Kernel) -> str:
    """m_show() (kernel/module/procfs.c) for each loaded simulated module, newest first (the
    modules list is added to at its head): name, size, refcount, the modules using it ("-"
    for none), state and the text address, 0 here: a simulated module has no code
    (``%px`` of NULL, as the kernel prints it to a reader kallsyms_show_value() refuses).
    dax_hmem is built in (/sys/module/dax_hmem has no initstate), so it is not listed."""
    with k.lock:
        return "".join(f"{drv.name} {MODULE_SIZES.get(drv.name, 16384)} 0 - Live 0x{0:016x}\n"
                       for drv in reversed(k.dax_bus_drivers))


# -- /proc/sys/vm -----------------------------------------------------------------------------------
INT_MAX = (1 << 31) - 1


#: kernel/sysctl.c proc_wspace_sep: the characters that may end a number.
_WSPACE_SEP = " \t\n"
#: skip_spaces() (lib/string_helpers.c): isspace(), which also takes \v, \f and \r.
_SPACES = " \t\n\v\f\r"
#: proc_get_long() copies TMPBUFLEN - 1 characters; a number filling them is refused.
_TMPBUFLEN = 22
_PAGE_SIZE = 4096


def _proc_get_long(buf: str, pos: int) -> tuple[int, int]:
    """kernel/sysctl.c proc_get_long() with proc_wspace_sep: (the signed value, the position
    after it); EINVAL for no digit after an optional ``-`` (no ``+``), a number of 21
    characters or more, or one followed by anything but a space, tab or newline.
    strtoul_lenient() takes the base from the prefix: ``010`` is 8, ``0x10`` is 16,
    and ``08``, ``0o17``, ``0b1``, ``1_0`` end at a character that is no separator."""
    tmp = buf[pos:pos + _TMPBUFLEN - 1]
    neg = tmp[:1] == "-" and len(buf) - pos > 1
    p = 1 if neg else 0
    if not tmp[p:p + 1].isascii() or not tmp[p:p + 1].isdigit():
        raise KernelError(errno.EINVAL)
    try:
        value, p = strtoul_lenient(tmp, p)
    except KernelError:
        raise KernelError(errno.EINVAL) from None
    if p == _TMPBUFLEN - 1:
        raise KernelError(errno.EINVAL)
    if pos + p < len(buf) and buf[pos + p] not in _WSPACE_SEP:
        raise KernelError(errno.EINVAL)
    return (-value if neg else value), pos + p


@dataclass(slots=True)
class IntvecWrite:
    """What __do_proc_dointvec() made of a write: the values it stored, in order (it
    stores each as it goes, so a later bad one leaves the earlier ones set), the bytes it
    took (``*lenp``: fewer than written when more values follow than the file holds: a
    short write, whose rest, written at a non-zero offset, sysctl_writes_strict ignores),
    and the errno it returns (0 for none)."""

    values: list[int]
    accepted: int
    err: int


def proc_dointvec_write(text: str, count: int, slots: int, lo: int = -INT_MAX - 1,
                        hi: int = INT_MAX) -> IntvecWrite:
    """kernel/sysctl.c __do_proc_dointvec() (with do_proc_dointvec_minmax_conv) on a write of
    ``count`` bytes at offset 0, ``text`` being them up to a NUL: at most a page less one
    byte is parsed; for each of the ``slots`` values, spaces are skipped, then
    proc_get_long() reads one, EINVAL outside [lo, hi] (and int); then trailing spaces are
    taken. No value at all is EINVAL."""
    left = min(count, _PAGE_SIZE - 1)
    buf = (text + "\0" * count)[:left]  # the bytes after a NUL: never a digit nor a separator
    pos, values, err = 0, [], 0
    for _ in range(slots):
        while pos < left and buf[pos] in _SPACES:
            pos += 1
        if pos == left:
            break
        try:
            value, pos = _proc_get_long(buf, pos)
        except KernelError as exc:
            err = exc.errno
            break
        if not (-INT_MAX - 1 <= value <= INT_MAX and lo <= value <= hi):  # do_proc_dointvec_conv, minmax
            err = errno.EINVAL
            break
        values.append(value)
    if not values:
        return IntvecWrite([], 0, err or errno.EINVAL)
    if not err:
        while pos < left and buf[pos] in _SPACES:
            pos += 1
    return IntvecWrite(values, count - (left - pos), err)


def proc_dointvec_parse(text: str, slots: int, lo: int = -INT_MAX - 1, hi: int = INT_MAX) -> list[int]:
    """The values of a whole write ``text`` (no NUL) as proc_dointvec_minmax stores them;
    KernelError with the errno it returns (values stored before a bad one are lost here:
    use ``proc_dointvec_write`` where that matters)."""
    done = proc_dointvec_write(text, len(text), slots, lo, hi)
    if done.err:
        raise KernelError(done.err)
    return done.values


class SysctlAttr(ProcAttr):
    """A /proc/sys file: with sysctl_writes_strict (1, the default since 4.5), a write at a
    non-zero offset is ignored and reported done (proc_first_pos_non_zero_ignore): the rest
    of a short write, or a second ``echo`` on one descriptor, changes nothing."""

    __slots__ = ()
    writes_strict = True


def _sysctl_int(read: Callable[[], int], write: Callable[[int], None], lo: int = -INT_MAX - 1,
                hi: int = INT_MAX) -> ProcAttr:
    """A 0644 ``int`` sysctl: ``%d\n`` on read, one proc_dointvec_minmax value on write."""
    def store(text: str, count: int) -> int | None:
        done = proc_dointvec_write(text, count, 1, lo, hi)
        if done.err:
            raise KernelError(done.err)
        write(done.values[0])
        return done.accepted

    return SysctlAttr(0o644, lambda: f"{read()}\n", store=store)


def sysctl_vm(k: Kernel) -> StaticDir:
    """The /proc/sys/vm files the page allocator's numbers depend on (mm/page_alloc.c
    page_alloc_sysctl_table, mm/page-writeback.c vm_page_writeback_sysctls, mm/util.c,
    mm/compaction.c, fs/drop_caches.c); writes change the simulated machine only."""
    vm = k.vm

    def set_attr(name: str) -> Callable[[int], None]:
        return lambda value: setattr(vm, name, value)

    def lowmem_store(text: str, count: int) -> int | None:
        """lowmem_reserve_ratio_sysctl_handler() (mm/page_alloc.c) ignores what
        proc_dointvec_minmax() returns: the values stored before a bad one count, the
        reserves are recomputed and the write succeeds, whatever it held."""
        done = proc_dointvec_write(text, count, len(vm.lowmem_reserve_ratio))
        vm.lowmem_reserve_ratio_sysctl_handler(k, done.values)
        return done.accepted if done.values else count  # *lenp is left whole when nothing was read

    def compact_store(text: str, count: int) -> int | None:
        """sysctl_compaction_handler() (mm/compaction.c, 6.1+): proc_dointvec() into
        sysctl_compact_memory, then EINVAL unless it holds 1. The simulator has nothing to
        compact."""
        done = proc_dointvec_write(text, count, 1)
        if done.err:
            raise KernelError(done.err)
        vm.compact_memory = done.values[0]
        if vm.compact_memory != 1:
            raise KernelError(errno.EINVAL)
        return done.accepted

    def drop_store(text: str, count: int) -> int | None:
        """drop_caches_sysctl_handler() (fs/drop_caches.c): proc_dointvec_minmax 1..4; there
        is no page cache to drop."""
        done = proc_dointvec_write(text, count, 1, 1, 4)
        if done.err:
            raise KernelError(done.err)
        return done.accepted

    return StaticDir({
        "compact_memory": SysctlAttr(0o200, None, store=compact_store),
        "dirty_background_ratio": _sysctl_int(lambda: vm.dirty_background_ratio,
                                              set_attr("dirty_background_ratio"), 0, 100),
        "dirty_ratio": _sysctl_int(lambda: vm.dirty_ratio, set_attr("dirty_ratio"), 0, 100),
        # drop_caches: 1..4, 0200; there is no page cache to drop.
        "drop_caches": SysctlAttr(0o200, None, store=drop_store),
        "lowmem_reserve_ratio": SysctlAttr(0o644, lambda: "\t".join(map(str, vm.lowmem_reserve_ratio)) + "\n",
                                         store=lowmem_store),
        "min_free_kbytes": _sysctl_int(lambda: vm.min_free_kbytes,
                                       lambda value: vm.min_free_kbytes_sysctl_handler(k, value), 0),
        "overcommit_ratio": _sysctl_int(lambda: vm.overcommit_ratio, set_attr("overcommit_ratio")),
        "watermark_scale_factor": _sysctl_int(lambda: vm.watermark_scale_factor,
                                              lambda value: vm.watermark_scale_factor_sysctl_handler(k, value),
                                              1, 3000),
    })


# -- /dev/kmsg -------------------------------------------------------------------------------------
#: How often a reader waiting in /dev/kmsg looks whether its request was interrupted (a
#: signal to the reader: FUSE_INTERRUPT) when no message woke it.
KMSG_INTERRUPT_POLL_S = 0.1
#: Readers that may wait in /dev/kmsg at once: each holds one thread of the mount's
#: multi-threaded loop (``KMSG_MAX_THREADS``); the threads left answer opens, reads that
#: need no wait and the interrupts that end a wait. One reader more gets EAGAIN.
KMSG_MAX_WAITERS = 48
#: libfuse's ``max_threads`` for the /dev/kmsg mount (fuse_loop_mt).
KMSG_MAX_THREADS = KMSG_MAX_WAITERS + 16


def _never() -> bool:
    return False


class KmsgAttr(ProcAttr):
    r"""/dev/kmsg as kernel/printk/printk.c devkmsg_read() and devkmsg_llseek() have it.

    Every read returns one record of the simulated kernel's log as
    ``<level>,<seq>,<usec>,-;<text>\n``, control characters and backslashes escaped as
    ``\xNN``. An opener starts at the first record the ring still holds. At the end of the
    log a reader opened O_NONBLOCK gets EAGAIN; any other waits until printk() logs (the
    tree's lock released: ``Kernel.log_wait``) or its request is interrupted (EINTR: a
    signal to the reader). A reader whose next record the ring dropped gets EPIPE once and
    continues at the oldest record kept. A record longer than the read is skipped with
    EINVAL (the sequence number has moved on by then). ``lseek(fd, 0, SEEK_SET)`` goes back
    to the first record: FUSE seeks in the kernel and only the next read's offset shows it.
    """

    __slots__ = ("interrupted", "k", "waiters")

    def __init__(self, k: Kernel, interrupted: Callable[[], bool] = _never) -> None:
        super().__init__(0o444, lambda: "")
        self.k = k
        #: Whether the FUSE request being served was interrupted (fuse_interrupted()).
        self.interrupted = interrupted
        self.waiters = 0

    def read_next(self, fh: OpenFile, size: int, offset: int) -> bytes | None:
        k = self.k
        if offset != fh.next_offset:  # the first read (-1 before it), or lseek(fd, 0, SEEK_SET)
            records = k.kmsg_records
            fh.cursor = records[0].seq if records else k.kmsg_count  # prb_first_valid_seq()
            fh.next_offset = offset
        while fh.cursor >= k.kmsg_count:
            if fh.flags & os.O_NONBLOCK:
                raise KernelError(errno.EAGAIN)
            if self.interrupted():
                raise KernelError(errno.EINTR)
            if self.waiters >= KMSG_MAX_WAITERS:
                log.warning("/dev/kmsg: %d readers wait already; one more gets EAGAIN", self.waiters)
                raise KernelError(errno.EAGAIN)
            self.waiters += 1
            try:
                k.log_wait.wait(KMSG_INTERRUPT_POLL_S)  # wait_event_interruptible(log_wait, ...)
            finally:
                self.waiters -= 1
        records = k.kmsg_records
        first = records[0].seq
        if fh.cursor < first:  # "our last seen message is gone, return error and reset"
            fh.cursor = first
            raise KernelError(errno.EPIPE)
        record = records[fh.cursor - first]
        fh.cursor = record.seq + 1
        text = "".join(c if " " <= c < "\x7f" and c != "\\" else f"\\x{ord(c):02x}" for c in record.text)
        line = f"{record.level},{record.seq},{record.ts_usec},-;{text}\n".encode("latin-1", "replace")
        if len(line) > size:
            raise KernelError(errno.EINVAL)
        fh.next_offset += len(line)
        return line


# -- the tree ------------------------------------------------------------------------------------
#: The files ``fakesysfs run`` binds over /proc, in the order they are bound.
PROC_FILES = ("meminfo", "zoneinfo", "vmstat", "buddyinfo", "pagetypeinfo", "iomem", "cmdline", "swaps", "modules",
              *(f"sys/vm/{name}" for name in (
                  "compact_memory", "dirty_background_ratio", "dirty_ratio", "drop_caches", "lowmem_reserve_ratio",
                  "min_free_kbytes", "overcommit_ratio", "watermark_scale_factor")))


def build_proc_tree(k: Kernel) -> Tree:
    """The memory /proc files of ``k`` as a tree (root: the files), locked by the hotplug lock."""
    return Tree(proc_root(k), k.lock)


def build_staging_tree(k: Kernel) -> Tree:
    """What ``fakesysfs run`` binds over COMMAND's /proc entries: ``proc/`` (``proc_root``)."""
    return Tree(StaticDir({"proc": proc_root(k)}), k.lock)


def build_kmsg_tree(k: Kernel, interrupted: Callable[[], bool] = _never) -> Tree:
    """``/kmsg`` (``KmsgAttr``), served on a mount of its own with several threads: a
    reader waiting there for the next message holds one FUSE thread, never the /proc or
    /sys files' loop."""
    return Tree(StaticDir({"kmsg": KmsgAttr(k, interrupted)}), k.lock)


def proc_root(k: Kernel) -> StaticDir:
    """The simulated /proc files (``PROC_FILES``) as a directory."""
    cmdline = proc_cmdline(k)
    return StaticDir({
        "meminfo": ProcAttr(0o444, lambda: proc_meminfo(k)),
        "zoneinfo": ProcAttr(0o444, lambda: proc_zoneinfo(k)),
        "vmstat": ProcAttr(0o444, lambda: proc_vmstat(k)),
        "buddyinfo": ProcAttr(0o444, lambda: proc_buddyinfo(k)),
        # proc_create_seq("pagetypeinfo", 0400, ...) in init_mm_internals(): root only.
        "pagetypeinfo": ProcAttr(0o400, lambda: proc_pagetypeinfo(k)),
        "iomem": IomemAttr(k),
        # fs/proc/cmdline.c: pde->size = saved_command_line_len + 1.
        "cmdline": ProcAttr(0o444, lambda: cmdline, size=len(cmdline)),
        "swaps": ProcAttr(0o444, lambda: proc_swaps(k)),
        # proc_create_seq("modules", 0444, ...) in proc_modules_init().
        "modules": ProcAttr(0o444, lambda: proc_modules(k)),
        "sys": StaticDir({"vm": sysctl_vm(k)}),
    })


def proc_read(tree: Tree, name: str, uid: int = 0) -> str:
    """open + read to the end + close of ``/name`` in a proc tree, by an opener with ``uid``."""
    fh = tree.open(f"/{name}", os.O_RDONLY)
    fh.uid = uid
    data = b""
    while chunk := tree.read(fh, 65536, len(data)):
        data += chunk
    return data.decode("latin-1")

