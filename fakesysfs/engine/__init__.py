"""The hotplug engine: a pure-Python model of the kernel's memory hotplug and DAX bus.

No FUSE here. ``Kernel`` is the one entry point; see ``kernel.py``.
"""

from .kernel import Faults, Kernel
from .memory import BlockState, MemoryBlock, MemoryGroup, OnlineType

__all__ = ["BlockState", "Faults", "Kernel", "MemoryBlock", "MemoryGroup", "OnlineType"]
