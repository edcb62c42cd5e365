"""Attribute groups (fakesysfs/sysfs/group.py; docs/abi.md "File semantics"): a device
directory's listing and lookup come from one declaration, so they cannot disagree."""

from __future__ import annotations

import errno
import os

import pytest

from fakesysfs.config import BootConfig, CxlRegionConfig, GiB, HmemConfig, MemRange, NodeConfig, PmemConfig
from fakesysfs.engine import Kernel
from fakesysfs.errors import KernelError
from fakesysfs.sysfs import build_tree
from fakesysfs.sysfs.group import Children, Group, GroupDir, Layout, attr_ro
from fakesysfs.sysfs.tree import Dir, Tree

PMEM_DEV = "/devices/platform/e820_pmem/ndbus0/region0/dax0.0/dax0.0"


def boot(**overrides: object) -> Tree:
    config: dict[str, object] = {
        "nodes": [NodeConfig(0, cpus=[0, 1], memory=[MemRange(0, 4 * GiB)])],
        "possible_nodes": [0, 1],
        "memmap_on_memory": "Y",
        "cxl_regions": [CxlRegionConfig(0x1050000000, 4 * GiB, target_node=1)],
    }
    config.update(overrides)
    return build_tree(Kernel(BootConfig(**config)))  # type: ignore[arg-type]


def group_dirs(tree: Tree, path: str = "") -> list[tuple[str, GroupDir]]:
    """Every directory declared by groups, found by walking the listing from the root."""
    found: list[tuple[str, GroupDir]] = []
    node = tree.lookup(path or "/")
    if isinstance(node, GroupDir):
        found.append((path, node))
    if isinstance(node, Dir):
        for name in tree.readdir(path or "/"):
            found += group_dirs(tree, f"{path}/{name}")
    return found


def test_a_name_declared_twice_is_refused() -> None:
    """sysfs_add_file_mode_ns() fails with EEXIST: a directory cannot hold a name twice."""
    with pytest.raises(ValueError, match="size: declared twice"):
        Layout(Group([attr_ro("size", lambda _d: "1\n")]), Group([attr_ro("size", lambda _d: "2\n")]))


@pytest.mark.parametrize("overrides", [
    {},  # CXL region: dynamic dax device bound to kmem, hot-added blocks
    {"kernel_profile": "6.8"},  # no memmap_on_memory
    {"cxl_regions": [], "pmem": [PmemConfig("namespace0.0", 0x2400000000, 4 * GiB, target_node=0)]},  # static
    {"cxl_regions": [], "hmem": [HmemConfig(0x2000000000, 1 * GiB, target_node=-1)], "possible_nodes": [0]},
], ids=["cxl", "6.8", "pmem", "no-target-node"])
def test_listing_and_lookup_agree(overrides: dict[str, object]) -> None:
    """Every listed name resolves; every declared name that is not listed does not (the
    visibility function decides both)."""
    tree = boot(**overrides)
    dirs = group_dirs(tree)
    kinds = {type(d).__name__ for _, d in dirs}
    assert {"MemoryBlockDir", "NodeDir", "DevDaxDir", "MappingDir", "ProducerDeviceDir", "DaxDriverDir",
            "DaxRegionDir", "MemoryTierDir"} <= kinds
    for path, directory in dirs:
        listed = list(directory.names())
        assert len(set(listed)) == len(listed), path
        assert all(directory.child(name) is not None for name in listed), path
        for entry, _ in directory.layout.by_name.values():
            assert (directory.child(entry.name) is not None) == (entry.name in listed), (path, entry.name)
        for _, _, children, _ in directory.layout.dynamic:
            if not isinstance(children, Children):
                continue
            for i in range(8):
                name = f"{children.prefix}{i}"
                assert (directory.child(name) is not None) == (name in listed), (path, name)


def test_a_mode_the_visibility_function_made_read_only_stays_closed_to_writes_after_chmod() -> None:
    """dev_dax_visible() gives a static device's ``size`` 0444: its store is not attached, so
    a chmod that adds write bits still leaves open-for-write refused."""
    tree = boot(cxl_regions=[], pmem=[PmemConfig("namespace0.0", 0x2400000000, 4 * GiB, target_node=0)])
    tree.setattr(f"{PMEM_DEV}/size", mode=0o644)
    with pytest.raises(KernelError) as exc:
        tree.open(f"{PMEM_DEV}/size", os.O_WRONLY)
    assert exc.value.errno == errno.EACCES
