"""Shared pieces of the robustness tests (test_fuzz, test_concurrency, test_crash):
the writable files of a tree grouped by kind, the errnos the kernel can answer for each kind
(docs/abi.md, "Errno order at a glance"), a fresh default-topology kernel, and the counters
the tests report (inputs tried, concurrent operations, crash points).

``FAKESYSFS_FUZZ=long`` turns every test built on these into its long mode (many more
examples, operations and crash points); ``FAKESYSFS_STRESS_COUNTS=FILE`` appends the
counters of each test to FILE as JSON lines.
"""

from __future__ import annotations

import copy
import errno
import functools
import json
import os
import re
from collections import Counter
from collections.abc import Iterator

from fakesysfs.config import BootConfig
from fakesysfs.engine import Kernel
from fakesysfs.errors import EHWPOISON
from fakesysfs.sysfs import build_tree
from fakesysfs.sysfs.tree import Attr, Dir, Tree

LONG = os.environ.get("FAKESYSFS_FUZZ", "").lower() == "long"

E = errno
#: Errnos a failed write may carry, per kind of file (docs/abi.md, "Errno order at a glance";
#: the parse errnos of R-SYS-04 wherever a number is parsed). The first pattern matching the
#: path wins.
WRITE_ERRNOS: list[tuple[re.Pattern[str], frozenset[int]]] = [
    (re.compile(p), frozenset(s)) for p, s in [
        (r"/memory\d+/(state|online)$", {E.EINVAL, E.EBUSY, E.EINTR, EHWPOISON}),
        (r"/system/memory/auto_online_blocks$", {E.EINVAL}),
        (r"/system/memory/probe$", {E.EINVAL, E.ERANGE, E.EEXIST, E.E2BIG, E.ENOMEM, E.EBUSY}),
        (r"/power/autosuspend_delay_ms$", {E.EIO}),  # !dev->power.use_autosuspend
        (r"/power/control$", {E.EINVAL}),
        (r"/uevent$", {E.EINVAL}),
        (r"/drivers_probe$", {E.ENODEV, E.EINVAL}),
        (r"/drivers_autoprobe$", set()),
        (r"/bus/dax/drivers/[^/]+/bind$",
         {E.ENODEV, E.EBUSY, E.ENXIO, E.EINVAL, E.EEXIST, E.E2BIG, E.ENOMEM}),
        (r"/bus/dax/drivers/[^/]+/unbind$", {E.ENODEV}),
        (r"/bus/dax/drivers/[^/]+/(new_id|remove_id)$", {E.EINVAL}),
        (r"/bus/cxl/drivers/[^/]+/bind$", {E.ENODEV, E.EBUSY, E.ENXIO}),
        (r"/bus/cxl/drivers/[^/]+/unbind$", {E.ENODEV, E.EBUSY}),
        (r"/bus/cxl/flush$", {E.EINVAL}),
        (r"/decoder\d+\.\d+/create_ram_region$", {E.EINVAL, E.EBUSY}),
        (r"/decoder\d+\.\d+/create_pmem_region$", {E.EACCES}),  # pmem regions: docs/cxl.md
        (r"/decoder\d+\.\d+/delete_region$", {E.ENODEV}),
        (r"/decoder\d+\.\d+/mode$", {E.EINVAL, E.EBUSY, E.ENXIO}),
        (r"/decoder\d+\.\d+/dpa_size$", {E.EINVAL, E.ERANGE, E.EBUSY, E.ENOSPC}),
        (r"/region\d+/(interleave_ways|interleave_granularity)$", {E.EINVAL, E.ERANGE, E.EBUSY}),
        (r"/region\d+/size$", {E.EINVAL, E.ERANGE, E.EBUSY, E.ENXIO}),
        (r"/region\d+/commit$", {E.EINVAL, E.ENXIO, E.EBUSY}),
        (r"/region\d+/target\d+$", {E.ENXIO, E.ENODEV, E.EINVAL, E.EBUSY}),
        (r"/dax\d+\.\d+/size$", {E.EINVAL, E.ERANGE, E.ENXIO, E.EBUSY, E.ENOSPC}),
        (r"/dax\d+\.\d+/mapping$", {E.EINVAL, E.ERANGE, E.ENOMEM, E.ENXIO, E.EBUSY}),
        (r"/dax\d+\.\d+/align$", {E.ENXIO, E.EINVAL, E.EBUSY}),
        (r"/dax\d+\.\d+/memmap_on_memory$", {E.EINVAL, E.EOPNOTSUPP, E.EBUSY}),
        (r"/dax_region/create$", {E.EINVAL, E.ERANGE, E.ENOSPC}),
        (r"/dax_region/delete$", {E.ENXIO, E.EBUSY, E.EINVAL}),
        (r"/parameters/online_policy$", {E.EINVAL}),
        (r"/parameters/auto_movable_ratio$", {E.EINVAL, E.ERANGE}),
        (r"/parameters/(auto_movable_numa_aware|region_idle)$", {E.EINVAL}),
        (r"/notifier-error-inject/memory/actions/[A-Z_]+/error$", {E.EINVAL, E.ERANGE}),
        (r"/notifier-error-inject/memory/priority$", {E.EINVAL, E.ERANGE}),
        (r"/nr_hugepages$", {E.EINVAL, E.ERANGE}),
        (r"/node\d+/(compact|reclaim)$", set()),
        # The simulator's own controls (fakesysfs/debugfs.py): refusals carry these.
        (r"/kernel/debug/fakesysfs/", {E.EINVAL, E.EBUSY, E.ENODEV, E.ENOSPC}),
        # CPU hotplug is not simulated (README): the file refuses writes at open.
        (r"/cpu\d+/online$", {E.EACCES}),
    ]
]
#: Files of a device that can go away fail with ENODEV once it is gone (kernfs).
DEVICE_FILE = re.compile(r"/memory\d+/|/dax\d+\.\d+/")
#: Errnos a read may carry (besides ENODEV for a file of a device that went away).
READ_ERRNOS = {
    "autosuspend_delay_ms": {E.EIO},
    "start": {E.ENXIO},
    "end": {E.ENXIO},
    "page_offset": {E.ENXIO},
}


def write_errnos(path: str, kernel: Kernel | None = None) -> frozenset[int]:
    """The errnos a write to ``path`` may fail with. Memory state changes also fail with
    whatever the notifier-error-inject files of ``kernel`` hold (R-FI-01/02)."""
    errnos = next((errnos for pattern, errnos in WRITE_ERRNOS if pattern.search(path)), None)
    if errnos is None:
        raise AssertionError(f"no errno table entry for {path}: add its kind to WRITE_ERRNOS")
    extra: set[int] = set()
    if DEVICE_FILE.search(path):
        extra.add(E.ENODEV)
    if kernel is not None and re.search(r"/memory\d+/(state|online)$", path):
        extra.update(-v for v in kernel.notifier_error.values() if v)
    return errnos | extra


def read_errnos(path: str) -> frozenset[int]:
    extra = {E.ENODEV} if DEVICE_FILE.search(path) else set()
    return frozenset(READ_ERRNOS.get(path.rsplit("/", 1)[1], set()) | extra)


def kind_of(path: str) -> str:
    """``/devices/system/memory/memory522/state`` -> ``/devices/system/memory/memoryN/state``."""
    return re.sub(r"\d+", "N", path)


def walk(tree: Tree, path: str = "/", dir_filter=None) -> Iterator[tuple[str, Attr]]:
    """Every attribute file below ``path`` (links are not followed), under the tree lock."""
    with tree.lock:
        node = tree.lookup(path)
        yield from _walk(path.rstrip("/"), node, dir_filter)


def _walk(path: str, node, dir_filter) -> Iterator[tuple[str, Attr]]:
    if isinstance(node, Dir):
        for name in list(node.names()):
            child = node.child(name)
            sub = f"{path}/{name}"
            if child is None or (dir_filter is not None and isinstance(child, Dir) and not dir_filter(sub)):
                continue
            yield from _walk(sub, child, dir_filter)
    elif isinstance(node, Attr):
        yield path, node


def writable_files(tree: Tree) -> list[str]:
    """Every file whose mode has a write bit, in walk order."""
    return [path for path, attr in walk(tree) if attr.mode & 0o222]


def files_by_kind(paths: list[str]) -> dict[str, list[str]]:
    kinds: dict[str, list[str]] = {}
    for path in paths:
        kinds.setdefault(kind_of(path), []).append(path)
    return kinds


@functools.cache
def _default_config() -> BootConfig:
    from fakesysfs.topology import load_topology

    return load_topology()


def default_kernel(harness: bool = False) -> tuple[Kernel, Tree]:
    """A freshly booted default topology and its tree (about 5 ms); with ``harness``, the
    simulator's controls too (``kernel/debug/fakesysfs/``), as ``fakesysfs mount`` has them."""
    k = Kernel(copy.deepcopy(_default_config()))
    tree = build_tree(k)
    if harness:
        from fakesysfs.harness import Harness

        Harness(k, tree, None)
    return k, tree


# -- counters -------------------------------------------------------------------------------
COUNTS: Counter[str] = Counter()


def report(test: str, **counts: int) -> None:
    """Record a test's counters (FAKESYSFS_STRESS_COUNTS=FILE collects them as JSON lines)."""
    COUNTS.update({f"{test}.{key}": value for key, value in counts.items()})
    target = os.environ.get("FAKESYSFS_STRESS_COUNTS")
    if target:
        with open(target, "a") as f:
            f.write(json.dumps({"test": test, "long": LONG, **counts}) + "\n")
