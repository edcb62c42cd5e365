"""Small declarative builders for engine tests (the setup of docs/abi.md "Worked examples")."""

from __future__ import annotations

import errno
from contextlib import contextmanager

import pytest

from fakesysfs.config import BootConfig, GiB, MemRange, MiB, NodeConfig
from fakesysfs.engine import Kernel
from fakesysfs.engine.hotplug import MHP_MEMMAP_ON_MEMORY, MHP_NID_IS_MGID
from fakesysfs.errors import KernelError
from fakesysfs.sysfs import build_tree

CXL_START = 0x1050000000
CXL_SIZE = 16 * GiB
MEM = "/devices/system/memory"
NODE = "/devices/system/node"


def appendix_a_config(**overrides) -> BootConfig:
    """Node 0: 16 GiB boot RAM and CPUs 0-1; node 1 possible, memory-only (docs/abi.md examples)."""
    cfg = BootConfig(
        nodes=[NodeConfig(0, [0, 1], [MemRange(0, 16 * GiB)])],
        possible_nodes=[0, 1],
        memmap_on_memory="Y",
    )
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


class Sim:
    """A kernel plus its attribute tree, with shell-like helpers."""

    def __init__(self, config: BootConfig | None = None, **overrides) -> None:
        self.k = Kernel(config or appendix_a_config(**overrides))
        self.tree = build_tree(self.k)

    def cat(self, path: str) -> str:
        return self.tree.cat(path)

    def echo(self, path: str, text: str | bytes, newline: bool = True) -> int:
        return self.tree.echo(path, text, newline)

    def state(self, bid: int) -> str:
        return self.cat(f"{MEM}/memory{bid}/state").strip()

    def zones(self, bid: int) -> str:
        return self.cat(f"{MEM}/memory{bid}/valid_zones").strip()

    def meminfo(self, nid: int) -> dict[str, int]:
        out = {}
        for line in self.cat(f"{NODE}/node{nid}/meminfo").splitlines():
            parts = line.split()
            out[parts[2].rstrip(":")] = int(parts[3])
        return out

    def add_kmem(self, start: int = CXL_START, size: int = CXL_SIZE, nid: int = 1,
                 memmap_on_memory: bool = True) -> int:
        """What dev_dax_kmem_probe does for one aligned range: a static group, then the add."""
        with self.k.lock:
            mgid = self.k.memory_group_register_static(nid, size // self.k.page_size)
            flags = MHP_NID_IS_MGID | (MHP_MEMMAP_ON_MEMORY if memmap_on_memory else 0)
            try:
                self.k.add_memory_driver_managed(mgid, start, size, "System RAM (kmem)", flags)
            except KernelError:
                self.k.memory_group_unregister(mgid)
                raise
        return mgid

    def block_range(self, start: int = CXL_START, size: int = CXL_SIZE) -> range:
        bs = self.k.block_size
        return range(start // bs, (start + size) // bs)

    def events(self, after: int = 0) -> list[tuple[str, str]]:
        return [(e.action, e.devpath) for e in self.k.events.since(after)]


@contextmanager
def raises_errno(err: int):
    with pytest.raises(KernelError) as info:
        yield info
    assert info.value.errno == err, f"expected {errno.errorcode[err]}, got {errno.errorcode.get(info.value.errno)}"


__all__ = ["CXL_SIZE", "CXL_START", "MEM", "NODE", "GiB", "MiB", "Sim", "appendix_a_config", "raises_errno"]
