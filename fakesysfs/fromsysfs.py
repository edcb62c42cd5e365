"""``fakesysfs topology --from-sysfs DIR|TARBALL``: a topology read from a machine's sysfs.

Only reads: ``DIR`` may be the host's real ``/sys`` (nothing is ever written there), a
fakesysfs mount or a copy; a tarball of a dump is read in memory, nothing extracted
(fakesysfs/sysfsarchive.py). The tree may be rooted at ``sys/``, at its
parent or be the sysfs tree itself. What is taken from where (docs/topology.md, "Importing a
machine"):

- block size: ``devices/system/memory/block_size_bytes``;
- nodes: ``devices/system/node/possible``, ``nodeK/cpulist``, the ``nodeK/memoryN`` links, or
  without node directories each block's ``memoryN/nodeK`` link and ``cpuN/nodeK``;
- boot RAM: the present memory blocks of each node, merged into ranges of whole blocks,
  minus the blocks inside a dax device's ranges (memory kmem added at runtime); the blocks
  whose ``state`` is ``offline`` are the node's ``offline_blocks``;
- distances: ``nodeK/distance`` (one column per online node);
- kernel settings: ``auto_online_blocks``, the ``probe`` file, the ``memory_hotplug`` module
  parameters (``memmap_on_memory``, ``online_policy``, ``auto_movable_*``); the page size of a
  dump from ``hpage_pmd_size``; the architecture whose zone layout shows the dump's blocks;
- producers: every dax region on ``bus/dax``, by where its devices sit (``regionN/dax_regionN``
  under a CXL decoder of ``ACPI0017:00`` or ``cxl_acpi.0``, ``hmem.N``, an nd
  ``regionR/daxR.S``), with its range from the devices' ``mappingN/start``/``end`` and its
  target node; a device bound to the driver its region would not pick is recorded as ``driver``.

The topology is then booted and each block's files compared with the source's: what differs
is a note. What sysfs does not say is defaulted: sub-block holes (a block counts as fully
present), the kernel version (the host's ``uname -r`` when DIR is ``/sys``, else 6.18),
``max_physmem_bits`` (46 if everything fits, else 52), abstract distances, pmem metadata
reserves (0: the namespace is its data area). When DIR is the host's ``/sys`` and lacks
memory blocks or nodes (a kernel without memory hotplug or NUMA), psutil fills in one node
with the host's CPUs and RAM.
"""

from __future__ import annotations

import bisect
import contextlib
import contextvars
import copy
import errno
import itertools
import os
import platform
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .config import (
    BootConfig,
    CxlRegionConfig,
    HmemConfig,
    MemRange,
    NodeConfig,
    PmemConfig,
)
from .errors import ConfigError

__all__ = ["SysfsTopology", "topology_from_sysfs"]

_MEMORY = "devices/system/memory"
_NODE = "devices/system/node"


@dataclass(slots=True)
class SysfsTopology:
    """The topology read, and notes on what was defaulted or left out."""

    config: BootConfig
    notes: list[str] = field(default_factory=list)

    def toml(self, source: str) -> str:
        from .topology import dump_topology

        head = [f"# Read from {source} by 'fakesysfs topology --from-sysfs'."]
        head += [f"# Note: {note}" for note in self.notes]
        return "\n".join(head) + "\n" + dump_topology(self.config)


#: A sysfs attribute is at most a page (fs/sysfs/file.c sysfs_kf_seq_show); more is not sysfs.
_MAX_READ = 4096
#: Physical addresses end below 2^52 (the largest MAX_PHYSMEM_BITS a topology may have).
_MAX_PHYS = 1 << 52


class _HostFs:
    """A directory given to ``--from-sysfs`` (``/sys``, a mount, a copy); a tarball's files
    are an ``ArchiveTree`` (fakesysfs/sysfsarchive.py), with the same methods.

    Every lookup starts at the directory (opened once) with openat2 RESOLVE_BENEATH
    (fakesysfs/fdops.py): a symbolic link that leads out of it (absolute, or ``..`` above
    it) leads nowhere, as in a tarball. The reader is often root: a dump's
    ``block_size_bytes -> /etc/shadow`` must not be read, let alone quoted in a message."""

    def __init__(self, top: str) -> None:
        self.top = top
        self._prefix = top.rstrip("/") + "/"
        self._fd = os.open(top, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        os.close(self._fd)

    def _rel(self, path: str) -> str:
        """``path`` (built from ``top``) relative to it; OSError for a path elsewhere."""
        if path == self.top:
            return "."
        if not path.startswith(self._prefix):
            raise OSError(errno.EXDEV, f"{path}: outside {self.top}")
        return path[len(self._prefix):]

    def _open(self, path: str, flags: int) -> int:
        from .fdops import open_beneath

        return open_beneath(self._fd, self._rel(path), flags)

    def _stat(self, path: str, flags: int = 0) -> os.stat_result | None:
        try:
            fd = self._open(path, os.O_PATH | flags)
        except OSError:
            return None
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def read(self, path: str) -> str | None:
        """The first 4096 bytes of a regular file, stripped; None when it is absent,
        unreadable, outside the tree or not a regular file: a FIFO or device node is never
        opened for reading (it could block or act)."""
        before = self._stat(path)
        if before is None or not stat.S_ISREG(before.st_mode):
            return None
        try:
            fd = self._open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        except OSError:
            return None
        try:
            now = os.fstat(fd)
            if (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino) or not stat.S_ISREG(now.st_mode):
                return None  # replaced since the first look
            return os.read(fd, _MAX_READ).decode("latin-1").strip()
        except OSError:
            return None
        finally:
            os.close(fd)

    def listdir(self, path: str) -> list[str]:
        fd = self._open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            return os.listdir(fd)
        finally:
            os.close(fd)

    def isdir(self, path: str) -> bool:
        st = self._stat(path)
        return st is not None and stat.S_ISDIR(st.st_mode)

    def exists(self, path: str) -> bool:
        return self._stat(path) is not None

    def islink(self, path: str) -> bool:
        st = self._stat(path, os.O_NOFOLLOW)
        return st is not None and stat.S_ISLNK(st.st_mode)

    def readlink(self, path: str) -> str:
        """The link's target (read, never followed: its last component is what a reader wants)."""
        parent, name = os.path.split(path)
        fd = self._open(parent, os.O_PATH | os.O_DIRECTORY)
        try:
            return os.readlink(name, dir_fd=fd)
        finally:
            os.close(fd)

    def realpath(self, path: str) -> str:
        """``path`` with links resolved, as a path under ``top``; ``path`` itself when it
        resolves outside (then nothing is found there)."""
        real, real_top = os.path.realpath(path), os.path.realpath(self.top)
        if real == real_top:
            return self.top
        if real.startswith(real_top.rstrip("/") + "/"):
            return self._prefix + real[len(real_top.rstrip("/") + "/"):]
        return path


if TYPE_CHECKING:
    from .sysfsarchive import ArchiveTree

#: Where the import reads: this machine's files, or a tarball's tree while one is read.
_FS: contextvars.ContextVar[_HostFs | ArchiveTree] = contextvars.ContextVar("fromsysfs_fs")


def _fs() -> _HostFs | ArchiveTree:
    return _FS.get()


def _read(path: str) -> str | None:
    return _fs().read(path)


def _bad(path: str, text: str, what: str) -> ConfigError:
    shown = text if len(text) <= 40 else text[:40] + "..."
    return ConfigError("sysfs", f"{path}: {shown!r} is not {what}")


def _number(path: str, base: int = 10, *, low: int = -(1 << 31), high: int = _MAX_PHYS) -> int | None:
    """The integer in ``path`` (None when it cannot be read); ConfigError naming the file
    when it holds something else or a value outside [low, high]."""
    text = _read(path)
    if text is None:
        return None
    what = f"a {'hexadecimal ' if base == 16 else ''}number from {low:#x} to {high:#x}" if base == 16 else \
        f"a number from {low} to {high}"
    try:
        value = int(text, base)
    except ValueError:
        raise _bad(path, text, what) from None
    if not low <= value <= high:
        raise _bad(path, text, what)
    return value


def _block_size(path: str) -> int | None:
    """``block_size_bytes`` (hex), checked as memory_dev_init() (drivers/base/memory.c) checks
    memory_block_size_bytes(): a power of two, at least MIN_MEMORY_BLOCK_SIZE (a section:
    SECTION_SIZE_BITS 27 on the architectures a topology models)."""
    from .topology import MIN_BLOCK_SIZE

    size = _number(path, 16, low=1, high=_MAX_PHYS)
    if size is not None and (size & (size - 1) or size < MIN_BLOCK_SIZE):
        raise _bad(path, _read(path) or "", f"a power of two of at least {MIN_BLOCK_SIZE:#x} (a memory section)")
    return size


def _blocks_within(ids: set[int], ranges: list[tuple[int, int]], block_size: int) -> set[int]:
    """The ids among ``ids`` whose block lies in one of the inclusive byte ``ranges`` (as the
    kernel's kmem maps whole blocks: ids ``start // bs`` to ``(end + 1) // bs - 1``)."""
    spans = sorted((s // block_size, (e + 1) // block_size) for s, e in ranges)
    starts = [lo for lo, _ in spans]
    reach = list(itertools.accumulate((hi for _, hi in spans), max))  # furthest end among spans[:i+1]
    return {b for b in ids if (i := bisect.bisect_right(starts, b) - 1) >= 0 and b < reach[i]}


def _numbered(directory: str, prefix: str) -> list[int]:
    try:
        names = _fs().listdir(directory)
    except OSError:
        return []
    pattern = re.compile(re.escape(prefix) + r"(\d{1,12})")  # no id has more digits (nor may int() take 4300)
    return sorted(int(m.group(1)) for name in names if (m := pattern.fullmatch(name)))


def _range_list(path: str) -> list[int]:
    """A node or CPU list file (``0-3,8``); [] when absent; ConfigError naming it when bad."""
    from .errors import KernelError
    from .klib import parse_range_list

    text = _read(path)
    if not text:
        return []
    try:
        return parse_range_list(text, 1 << 16)
    except KernelError:
        raise _bad(path, text, "a list of ids (0-3,8) below 65536") from None


def _is_host_sysfs(root: str) -> bool:
    return os.path.realpath(root) == "/sys"


def _merge(block_ids: list[int], bs: int) -> list[MemRange]:
    ranges: list[MemRange] = []
    for bid in sorted(block_ids):
        if ranges and ranges[-1].end == bid * bs:
            ranges[-1].size += bs
        else:
            ranges.append(MemRange(bid * bs, bs))
    return ranges


@dataclass(slots=True)
class _DaxRegion:
    kind: str
    rid: int
    parent: str  # directory of the region's parent device
    devices: list[str]
    ranges: list[tuple[int, int]]
    target_node: int
    numa_node: int | None
    drivers: dict[str, str | None]
    size: int | None
    align: int | None


def _dax_regions(root: str) -> tuple[list[_DaxRegion], list[str]]:
    """Dax regions by parent, from ``bus/dax/devices``; notes for what could not be read."""
    notes: list[str] = []
    by_parent: dict[str, _DaxRegion] = {}
    bus = os.path.join(root, "bus/dax/devices")
    try:
        names = sorted(_fs().listdir(bus))
    except OSError:
        return [], notes
    for name in names:
        m = re.fullmatch(r"dax(\d{1,12})\.(\d{1,12})", name)
        if m is None:
            continue
        dev_dir = _fs().realpath(os.path.join(bus, name))
        parent = os.path.dirname(dev_dir)
        pname = os.path.basename(parent)
        if (re.fullmatch(r"dax_region\d+", pname)
                and re.fullmatch(r"region\d+", os.path.basename(os.path.dirname(parent)))):
            kind = "cxl"
        elif re.fullmatch(r"hmem\.\d+", pname):
            kind = "hmem"
        elif re.fullmatch(r"dax\d+\.\d+", pname):
            kind = "pmem"
        else:
            notes.append(f"{name}: its parent {pname} is no known producer; left out")
            continue
        region = by_parent.get(parent)
        if region is None:
            target = _number(os.path.join(dev_dir, "target_node"), low=-1, high=1 << 16)
            numa = _number(os.path.join(dev_dir, "numa_node"), low=-1, high=1 << 16)
            size = _read(os.path.join(parent, "dax_region/size"))
            align = _read(os.path.join(parent, "dax_region/align"))
            region = by_parent[parent] = _DaxRegion(
                kind, int(m.group(1)), parent, [], [], target if target is not None else -1,
                numa if numa is not None and numa >= 0 else None, {},
                int(size) if size and size.isascii() and size.isdigit() else None,
                int(align) if align and align.isascii() and align.isdigit() else None)
        region.devices.append(name)
        driver = os.path.join(dev_dir, "driver")
        region.drivers[name] = os.path.basename(_fs().readlink(driver)) if _fs().islink(driver) else None
        for mid in _numbered(dev_dir, "mapping"):
            start = _number(os.path.join(dev_dir, f"mapping{mid}/start"), 16, low=0, high=_MAX_PHYS - 1)
            end = _number(os.path.join(dev_dir, f"mapping{mid}/end"), 16, low=0, high=_MAX_PHYS - 1)
            if start is None or end is None:
                notes.append(f"{name}/mapping{mid} is unreadable (mode 0400: run as root); its range is unknown")
                continue
            if end < start:
                raise ConfigError("sysfs", f"{dev_dir}/mapping{mid}: end {end:#x} is below start {start:#x}")
            region.ranges.append((start, end))
    return list(by_parent.values()), notes


def _producer(region: _DaxRegion, cfg: BootConfig, notes: list[str]) -> None:
    if not region.ranges:
        notes.append(f"dax region {region.rid} ({region.kind}): no device range is known; left out")
        return
    start = min(s for s, _ in region.ranges)
    end = max(e for _, e in region.ranges)
    size = region.size if region.size is not None else end - start + 1
    default_driver = "device_dax" if region.kind == "pmem" else "kmem"
    first = region.devices[0]
    bound = region.drivers.get(first)
    driver = bound if bound is not None and bound != default_driver else None
    if region.kind == "cxl":
        decoder = os.path.basename(os.path.dirname(os.path.dirname(region.parent)))
        root = os.path.basename(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(region.parent)))))
        if root == "cxl_acpi.0":
            cfg.cxl_root = root
        elif root != "ACPI0017:00":
            notes.append(f"dax region {region.rid}: its CXL root {root} is neither ACPI0017:00 nor cxl_acpi.0; "
                         "ACPI0017:00 here")
        cfg.cxl_regions.append(CxlRegionConfig(start, size, region.target_node, decoder, None, region.numa_node,
                                               driver))
    elif region.kind == "hmem":
        cfg.hmem.append(HmemConfig(start, size, region.target_node, None, region.numa_node, driver))
    else:
        align = region.align or 2 << 20
        namespace = "namespace" + os.path.basename(region.parent).removeprefix("dax")
        cfg.pmem.append(PmemConfig(namespace, start, size, region.target_node, reserve=0, align=align,
                                   numa_node=region.numa_node, driver=driver))


def _renumber(regions: list[_DaxRegion], cfg: BootConfig, notes: list[str]) -> None:
    """A topology numbers CXL regions 0..n-1, then hmem ranges (R-PATH-01); a machine that
    hot-plugged may have other ids. Say so, and move pmem namespaces off the taken ids."""
    dynamic = sorted((r for r in regions if r.kind != "pmem" and r.ranges),
                     key=lambda r: (r.kind != "cxl", r.kind != "hmem", r.rid))
    for new_id, region in enumerate(dynamic):
        if region.rid != new_id:
            notes.append(f"dax region {region.rid} ({region.kind}) becomes region {new_id}: a topology numbers "
                         "CXL regions first, then hmem ranges")
    taken = set(range(len(dynamic)))
    for pmem in cfg.pmem:
        region_id, _, dev_id = pmem.namespace.removeprefix("namespace").partition(".")
        if int(region_id) in taken:
            free = next(i for i in range(len(taken) + len(cfg.pmem) + 1) if i not in taken)
            notes.append(f"{pmem.namespace} becomes namespace{free}.{dev_id}: region id {region_id} is taken")
            pmem.namespace = f"namespace{free}.{dev_id}"
        taken.add(int(pmem.namespace.removeprefix("namespace").partition(".")[0]))


def _page_size(root: str, notes: list[str]) -> int:
    """The base page size of a dump: a PMD maps PAGE_SIZE / 8 page-table entries of a page
    each (PMD_SIZE = PAGE_SIZE**2 / 8: 2 MiB for 4K pages, 32 MiB for 16K, 512 MiB for 64K),
    read from ``kernel/mm/transparent_hugepage/hpage_pmd_size``; 4096 (noted) without it."""
    path = os.path.join(root, "kernel/mm/transparent_hugepage/hpage_pmd_size")
    pmd = _number(path, low=1, high=_MAX_PHYS)
    if pmd is not None:
        for shift in range(12, 17):
            if pmd == (1 << shift) ** 2 // 8:
                return 1 << shift
        notes.append(f"the page size is unknown: hpage_pmd_size {pmd} is no 4K/16K/64K page layout; 4096 assumed")
    else:
        notes.append("the page size is unknown (no kernel/mm/transparent_hugepage/hpage_pmd_size): 4096 assumed")
    return 4096


def _kernel_settings(root: str, cfg: BootConfig, host: bool, notes: list[str]) -> None:
    mem = os.path.join(root, _MEMORY)
    params = os.path.join(root, "module/memory_hotplug/parameters")
    auto = _read(os.path.join(mem, "auto_online_blocks"))
    if auto in ("offline", "online", "online_kernel", "online_movable"):
        cfg.auto_online_blocks = auto
    cfg.probe = _fs().exists(os.path.join(mem, "probe"))
    mom = _read(os.path.join(params, "memmap_on_memory"))
    if mom is not None:
        cfg.memmap_on_memory = {"Y": "Y", "N": "N", "force": "force"}.get(mom, "N")
    policy = _read(os.path.join(params, "online_policy"))
    if policy in ("contig-zones", "auto-movable"):
        cfg.online_policy = policy
    ratio = _read(os.path.join(params, "auto_movable_ratio"))
    if ratio is not None and ratio.isascii() and ratio.isdigit():
        cfg.auto_movable_ratio = int(ratio)
    aware = _read(os.path.join(params, "auto_movable_numa_aware"))
    if aware is not None:
        cfg.auto_movable_numa_aware = aware == "Y"
    cfg.notifier_error_inject = _fs().isdir(os.path.join(root, "kernel/debug/notifier-error-inject/memory"))
    if not host:
        cfg.page_size = _page_size(root, notes)
    if host:
        cfg.page_size = os.sysconf("SC_PAGE_SIZE")
        m = re.match(r"(\d+)\.(\d+)", platform.release())
        if m and m.group(1) == "6" and 8 <= int(m.group(2)) <= 18:
            cfg.kernel_profile = f"6.{m.group(2)}"


#: What marks a sysfs root: a dump holds some of these.
_MARKERS = (_MEMORY, _NODE, "bus/dax", "module/memory_hotplug")


def topology_from_sysfs(source: str | os.PathLike[str]) -> SysfsTopology:
    """Read the topology of the machine whose sysfs is at ``source`` (read only): a directory
    (``/sys``, a mount, a copy) or a tarball of one (tar, tar.gz, tar.bz2, tar.xz; read in
    memory by fakesysfs/sysfsarchive.py, nothing extracted). The tree may be rooted
    at ``sys/``, at its parent or be the sysfs tree itself, and hold any subset of
    ``devices/system/memory``, ``devices/system/node``, ``bus/dax``, ``module/memory_hotplug``.

    Raises ConfigError (key ``sysfs``, one line naming the file) when ``source`` is not a
    sysfs tree or what it describes cannot be booted."""
    from .sysfsarchive import is_archive, load

    source = os.fspath(source)
    if is_archive(source):
        tree = load(source)
        token = _FS.set(tree)
        try:
            return _from_root(_sysfs_root(tree.root), host=False)
        finally:
            _FS.reset(token)
    if not os.path.isdir(source):
        raise ConfigError("sysfs", f"{source} is neither a directory nor a tarball")
    with _reading_directory(source):
        return _from_root(_sysfs_root(source), host=_is_host_sysfs(source))


@contextlib.contextmanager
def _reading_directory(source: str) -> Iterator[None]:
    """Reads (``_fs()``) go to the directory ``source``, beneath it only, while in the block."""
    try:
        host_fs = _HostFs(source)
    except OSError as exc:
        raise ConfigError("sysfs", f"{source}: {exc.strerror}") from None
    token = _FS.set(host_fs)
    try:
        yield
    finally:
        _FS.reset(token)
        host_fs.close()


def _sysfs_root(top: str) -> str:
    """The sysfs root in ``top``: ``top`` itself, ``top/sys``, or the same below ``top``'s one
    directory (a dump packed as ``host1/sys/...``); ``top`` when none has a marker."""
    candidates = [top, os.path.join(top, "sys")]
    try:
        entries = [e for e in _fs().listdir(top) if not e.startswith(".")]
    except OSError:
        entries = []
    if len(entries) == 1 and _fs().isdir(os.path.join(top, entries[0])):
        candidates += [os.path.join(top, entries[0]), os.path.join(top, entries[0], "sys")]
    for root in candidates:
        if any(_fs().isdir(os.path.join(root, marker)) for marker in _MARKERS):
            return root
    return top


def _block_nodes(mem: str, block_ids: list[int]) -> dict[int, int]:
    """Block id -> node, from the ``memoryN/nodeK`` links (what a dump of
    ``devices/system/memory`` alone still says); blocks without one are left out."""
    found: dict[int, int] = {}
    for bid in block_ids:
        nodes = _numbered(os.path.join(mem, f"memory{bid}"), "node")
        if len(nodes) > 1:
            raise ConfigError("sysfs", f"{mem}/memory{bid} links to nodes {nodes}: a memory block has one node")
        if nodes:
            found[bid] = nodes[0]
    return found


def _cpu_nodes(root: str) -> dict[int, list[int]]:
    """Node -> CPUs from ``devices/system/cpu/cpuN/nodeK`` links (when no ``nodeK/cpulist``)."""
    cpu_dir = os.path.join(root, "devices/system/cpu")
    by_node: dict[int, list[int]] = {}
    for cpu in _numbered(cpu_dir, "cpu"):
        for nid in _numbered(os.path.join(cpu_dir, f"cpu{cpu}"), "node")[:1]:
            by_node.setdefault(nid, []).append(cpu)
    return by_node


def _from_root(root: str, host: bool) -> SysfsTopology:
    notes: list[str] = []
    cfg = BootConfig(nodes=[])
    mem = os.path.join(root, _MEMORY)
    block_size = _block_size(os.path.join(mem, "block_size_bytes"))
    if block_size is not None:
        cfg.block_size = block_size
    block_ids = _numbered(mem, "memory")

    node_dir = os.path.join(root, _NODE)
    node_ids = _numbered(node_dir, "node")
    possible = _range_list(os.path.join(node_dir, "possible")) or node_ids
    regions, dax_notes = _dax_regions(root)
    notes += dax_notes
    for region in sorted(regions, key=lambda r: (r.kind != "cxl", r.kind != "hmem", r.rid)):
        _producer(region, cfg, notes)
    _renumber(regions, cfg, notes)
    # Blocks per node: the nodeK/memoryN links, else (a dump of the memory tree alone) the
    # memoryN/nodeK links.
    members: dict[int, list[int]] = {nid: _numbered(os.path.join(node_dir, f"node{nid}"), "memory")
                                     for nid in node_ids}
    linked = {b for blocks in members.values() for b in blocks}
    unlinked = [b for b in block_ids if b not in linked]
    for bid, nid in _block_nodes(mem, unlinked).items():
        members.setdefault(nid, []).append(bid)
    # The dump's blocks inside a dax mapping (never every id of a mapping: one can span 2^52 bytes).
    dax_blocks = _blocks_within({*block_ids, *linked}, [rng for r in regions for rng in r.ranges], cfg.block_size)
    hot = sorted(set(block_ids) & dax_blocks)
    if hot:
        notes.append(f"memory blocks {hot[0]}-{hot[-1]} belong to dax devices (kmem): not boot RAM")
    if not node_ids and members:
        notes.append(f"no node directories ({_NODE}/nodeK): nodes and their blocks are read from the "
                     "memoryN/nodeK links")
    cpu_nodes = _cpu_nodes(root) if not node_ids else {}
    online = _range_list(os.path.join(node_dir, "online")) or node_ids
    for nid in sorted({*members, *cpu_nodes}):
        ndir = os.path.join(node_dir, f"node{nid}")
        cpus = _range_list(os.path.join(ndir, "cpulist")) or sorted(cpu_nodes.get(nid, []))
        mine = [b for b in members.get(nid, []) if b not in dax_blocks]
        if cpus or mine:
            cfg.nodes.append(NodeConfig(nid, cpus, _merge(mine, cfg.block_size)))
        row = _read(os.path.join(ndir, "distance"))
        if row:
            if not re.fullmatch(r"\d{1,3}(\s+\d{1,3})*", row):
                raise _bad(os.path.join(ndir, "distance"), row, "a row of distances (10 20 ...)")
            values = [int(v) for v in row.split()]
            for other, dist in zip(online, values, strict=False):
                if other != nid or dist != 10:
                    cfg.distances.setdefault(nid, {})[other] = dist
    if node_ids == [] and cfg.nodes and not any(n.cpus for n in cfg.nodes):
        notes.append("no CPUs are known (no nodeK/cpulist, no devices/system/cpu/cpuN/nodeK): the nodes "
                     "have none")
    if not cfg.nodes or not any(n.memory for n in cfg.nodes):
        if not host:
            raise ConfigError("sysfs", f"{root} has no memory blocks with a node ({_NODE}/nodeK/memoryN or "
                                       f"{_MEMORY}/memoryN/nodeK); is it a sysfs tree with memory hotplug?")
        _psutil_node(cfg, notes)
        possible = sorted({*possible, *(n.id for n in cfg.nodes)})
    producers: list[CxlRegionConfig | HmemConfig | PmemConfig] = [*cfg.cxl_regions, *cfg.hmem, *cfg.pmem]
    cfg.possible_nodes = sorted({*possible, *(n.id for n in cfg.nodes), *(p.target_node for p in producers)})
    online_at_boot = {n.id for n in cfg.nodes}
    for p in producers:
        if p.numa_node is not None and p.numa_node not in online_at_boot:
            p.numa_node = None
    top = max([r.end for n in cfg.nodes for r in n.memory] + [p.start + p.size for p in producers])
    cfg.max_physmem_bits = 46 if top <= 1 << 46 else 52
    _kernel_settings(root, cfg, host, notes)
    return _pick_arch(root, cfg, block_ids, notes, host)


#: ``uname -m`` -> the topology's arch.
_MACHINES = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64", "s390x": "s390x", "ppc64le": "ppc64le"}


def _pick_arch(root: str, base: BootConfig, block_ids: list[int], notes: list[str], host: bool) -> SysfsTopology:
    """The topology on the architecture whose booted fake shows the dump's block files best
    (sysfs does not name the architecture; its zone layout and ``phys_device`` tell): the
    host's own for ``/sys``; else each one whose page sizes include the dump's, x86_64 first
    on a tie. Each candidate gets the dump's offline blocks and the checks a topology gets."""
    from .config import ARCH_PAGE_SIZES, ARCHES

    mem = os.path.join(root, _MEMORY)
    if host:
        arches = [_MACHINES.get(platform.machine(), "x86_64")]
    else:
        arches = [a for a in ARCHES if base.page_size in ARCH_PAGE_SIZES[a]]
    best: tuple[int, BootConfig, list[str], list[str]] | None = None
    failure: ConfigError | None = None
    for arch in arches:
        cfg = copy.deepcopy(base)
        cfg.arch = arch
        arch_notes: list[str] = []
        _offline_blocks(mem, cfg, block_ids, arch_notes)
        try:
            _check(cfg, root)
        except ConfigError as exc:
            failure = failure or exc
            continue
        count, diff_notes = _differences(root, cfg, block_ids)
        if best is None or count < best[0]:
            best = (count, cfg, arch_notes, diff_notes)
        if count == 0:
            break
    if best is None:
        assert failure is not None
        raise failure
    _, cfg, arch_notes, diff_notes = best
    if not host and len(arches) > 1 and cfg.arch != "x86_64":
        notes.append(f"arch {cfg.arch}: of {', '.join(arches)}, its zone layout and phys_device reproduce the "
                     "dump's memory blocks best")
    if not host and cfg.arch == "ppc64le" and cfg.page_size == 4096:
        notes.append("ppc64le: hpage_pmd_size does not tell 4K from 64K pages (the radix MMU has 2 MiB PMDs "
                     "with either); 4096 assumed, set kernel.page_size = 65536 for a 64K kernel")
    return SysfsTopology(cfg, notes + arch_notes + diff_notes)


def _offline_blocks(mem: str, cfg: BootConfig, block_ids: list[int], notes: list[str]) -> None:
    """``memoryN/state`` of each boot block: the offline ones go to their node's
    ``offline_blocks``, the online ones whose ``valid_zones`` is ``Movable`` to its
    ``movable_blocks`` (a block that spans zones can be neither on a kernel: noted)."""
    from .topology import zone_boundaries

    owner = {bid: node for node in cfg.nodes for r in node.memory
             for bid in range(r.start // cfg.block_size, -(-r.end // cfg.block_size))}
    going: list[int] = []
    spanning: list[int] = []
    for bid in block_ids:
        path = os.path.join(mem, f"memory{bid}/state")
        state = _read(path)
        if state == "online" and bid in owner and _read(os.path.join(mem, f"memory{bid}/valid_zones")) == "Movable":
            start, end = bid * cfg.block_size, (bid + 1) * cfg.block_size
            if any(start < limit < end for limit in zone_boundaries(cfg)):
                spanning.append(bid)
            else:
                owner[bid].movable_blocks.append(bid)
        if state is None or state == "online":
            continue
        if state == "going-offline":
            going.append(bid)
        elif state != "offline":
            raise _bad(path, state, "a block state (online, offline, going-offline)")
        elif bid in owner:
            start, end = bid * cfg.block_size, (bid + 1) * cfg.block_size
            if any(start < limit < end for limit in zone_boundaries(cfg)):
                spanning.append(bid)
            else:
                owner[bid].offline_blocks.append(bid)
    if going:
        notes.append(f"memory blocks {_ids(going)} were going offline when dumped: they boot online")
    if spanning:
        notes.append(f"memory blocks {_ids(spanning)} are offline or Movable in the dump but span zones here: "
                     "they boot online in their zones")


def _ids(ids: list[int]) -> str:
    from .topology import _fmt_ranges

    return _fmt_ranges(sorted(set(ids)))


#: The files of a memory block the import compares with the booted fake.
_BLOCK_FILES = ("state", "valid_zones", "removable", "phys_device")


def _differences(root: str, cfg: BootConfig, block_ids: list[int]) -> tuple[int, list[str]]:
    """Boot the topology read and compare what the dump shows of each block (``state``,
    ``valid_zones``, ``removable``, ``phys_device``, its ``nodeK`` link) with the fake's
    files: one note per file that differs, naming the blocks (what the fake cannot
    reproduce, e.g. a pre-5.7 ``removable``, a ``phys_device`` of s390 storage increments
    smaller than a block); with the number of differing files."""
    from .simulation import Simulation

    mem = os.path.join(root, _MEMORY)
    diffs: dict[str, list[tuple[int, str, str]]] = {}
    with Simulation(cfg) as sim:
        present = set(sim.kernel.blocks)
        missing = [bid for bid in block_ids if bid not in present]
        for bid in block_ids:
            if bid not in present:
                continue
            here = f"/devices/system/memory/memory{bid}"
            for name in _BLOCK_FILES:
                dumped = _read(os.path.join(mem, f"memory{bid}", name))
                if dumped is None:
                    continue
                ours = sim.cat(f"{here}/{name}").strip()
                if ours != dumped:
                    diffs.setdefault(name, []).append((bid, dumped, ours))
            dumped_nodes = _numbered(os.path.join(mem, f"memory{bid}"), "node")
            if dumped_nodes:
                ours_nodes = [int(n[4:]) for n in sim.ls(here) if n.startswith("node")]
                if ours_nodes != dumped_nodes:
                    diffs.setdefault("node link", []).append((bid, f"node{dumped_nodes}", f"node{ours_nodes}"))
    notes = []
    if missing:
        notes.append(f"memory blocks {_ids(missing)} of the dump are not booted (dax or left out)")
    for name, rows in diffs.items():
        shown = "; ".join(f"memory{bid}: {dumped!r} in the dump, {ours!r} here" for bid, dumped, ours in rows[:3])
        more = f"; {len(rows) - 3} more" if len(rows) > 3 else ""
        notes.append(f"{name} differs for memory blocks {_ids([r[0] for r in rows])} ({shown}{more})")
    return sum(len(rows) for rows in diffs.values()) + len(missing), notes


def _psutil_node(cfg: BootConfig, notes: list[str]) -> None:
    """The host has no memory blocks or nodes in sysfs: one node with its CPUs and RAM."""
    import psutil

    total = psutil.virtual_memory().total // cfg.block_size * cfg.block_size
    cpus = list(range(psutil.cpu_count() or 1))
    cfg.nodes = [NodeConfig(0, cpus, [MemRange(0, max(total, cfg.block_size))])]
    notes.append("no memory blocks or nodes in sysfs: node 0 holds the host's CPUs and RAM (psutil), "
                 "as one range from address 0")


def _check(cfg: BootConfig, root: str) -> None:
    from .topology import validate_config

    try:
        validate_config(cfg)
    except ConfigError as exc:
        raise ConfigError("sysfs", f"the topology read from {root} cannot be booted: {exc}") from None
