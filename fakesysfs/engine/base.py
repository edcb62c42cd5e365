"""The state every part of the kernel shares, declared once so each mixin is typed on its own.

``Kernel`` is one object whose methods are split by concept over the mixin modules, chained in
the order they build on each other: ``MemoryBlocksMixin`` (memory.py) <- ``HotplugMixin``
(hotplug.py) <- ``DaxMixin`` (dax.py) <- ``CxlMixin`` (cxl.py) <- ``FirmwareMixin`` (firmware.py) <- ``Kernel``
(kernel.py). Each mixin sees the ones below it; ``KernelBase`` at the bottom declares what
``Kernel.__init__`` sets up and the shared services kernel.py defines, so a type checker
checks every mixin against them. Nothing here runs: the class only carries declarations.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import BootConfig
    from .events import Uevent
    from .hotplug import MemmapOnMemory
    from .kernel import Faults
    from .memory import MemoryBlock, MemoryGroup, OnlinePolicy, OnlineType
    from .node import Node
    from .page_alloc import VmTunables
    from .resource import ResourceTree


#: include/linux/kern_levels.h; a printk without a level gets MESSAGE_LOGLEVEL_DEFAULT (4).
LOGLEVEL_ERR = 3
LOGLEVEL_WARNING = 4
LOGLEVEL_INFO = 6
LOGLEVEL_DEBUG = 7


def _is_owned(lock: threading.RLock) -> bool:
    owned: bool = lock._is_owned()  # type: ignore[attr-defined]  # CPython's RLock knows its holder
    return owned


class KernelBase:
    """What ``Kernel.__init__`` sets up, and the shared services of kernel.py, as the mixins use them."""

    config: BootConfig
    #: device_hotplug_lock: every mutation runs under it.
    lock: threading.RLock
    profile: tuple[int, int]
    block_size: int
    page_size: int
    struct_page_size: int
    pages_per_block: int
    memmap_pages_per_section: int
    memmap_mode: MemmapOnMemory
    online_policy: OnlinePolicy
    auto_movable_ratio: int
    auto_movable_numa_aware: bool
    auto_online_blocks: OnlineType
    movable_node: bool
    max_physmem_bits: int
    possible_nodes: set[int]
    nodes: dict[int, Node]
    blocks: dict[int, MemoryBlock]
    memory_groups: dict[int, MemoryGroup]
    resources: ResourceTree
    n_memory: set[int]
    n_normal_memory: set[int]
    notifier_error: dict[str, int]
    faults: Faults
    nr_memmap_pages: int
    nr_memmap_boot_pages: int
    #: The vm sysctls and the watermarks last set from them (page_alloc.py).
    vm: VmTunables

    def lockdep_assert_held(self) -> None:
        """lockdep_assert_held(&device_hotplug_lock): an engine step that changes state runs
        under the hotplug lock its entry point took (``with kernel.lock``, as
        lock_device_hotplug()); called without it, it is a bug in the caller."""
        if not _is_owned(self.lock):
            raise RuntimeError("engine step called without the hotplug lock (take kernel.lock)")

    if TYPE_CHECKING:
        # Defined by Kernel (kernel.py); a type checker checks Kernel's definitions against these.
        def uevent(self, action: str, devpath: str, subsystem: str,
                   env: tuple[tuple[str, str], ...] = ()) -> Uevent: ...
        def printk(self, message: str, level: int = 4, prefix: str = "") -> None: ...
        @staticmethod
        def memory_devpath(block_id: int) -> str: ...
        @staticmethod
        def node_devpath(nid: int) -> str: ...
        def online_nodes(self) -> list[int]: ...
        def distance(self, a: int, b: int) -> int: ...
        def node_fallback_order(self, nid: int) -> list[int]: ...
        def add_memory_block(self, block: MemoryBlock) -> None: ...
        def remove_memory_block(self, block: MemoryBlock) -> None: ...
        def register_memory_blocks_under_node_hotplug(self, nid: int, blocks: list[MemoryBlock]) -> None: ...
        def register_one_node(self, nid: int) -> None: ...
        def try_offline_node(self, nid: int) -> None: ...
        def memtier_node_online(self, node: Node) -> None: ...
        def memtier_node_offline(self, node: Node) -> None: ...
        def memory_add_physaddr_to_nid(self, addr: int) -> int: ...


__all__ = ["LOGLEVEL_DEBUG", "LOGLEVEL_ERR", "LOGLEVEL_INFO", "LOGLEVEL_WARNING", "KernelBase"]
