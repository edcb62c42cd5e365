"""The iomem resource tree (kernel/resource.c), as /proc/iomem shows it.

Memory hotplug and kmem use it for conflict checks: ``__request_region`` descends into a
non-busy resource that fully contains the request and fails on a busy one or on a partial
overlap. kmem claims its range as ``daxX.Y`` and clears the busy flag so that the
``System RAM (kmem)`` resource of ``add_memory_driver_managed`` nests inside it (R-KMEM-08).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass(eq=False, slots=True)
class Resource:
    """[start, end] inclusive, like ``struct resource``."""

    name: str
    start: int
    end: int
    busy: bool = True
    parent: Resource | None = field(default=None, repr=False)
    children: list[Resource] = field(default_factory=list, repr=False)

    def contains(self, start: int, end: int) -> bool:
        return self.start <= start and end <= self.end

    def walk(self, depth: int = 0) -> Iterator[tuple[int, Resource]]:
        """Yield (depth, resource) in /proc/iomem order."""
        for child in self.children:
            yield depth, child
            yield from child.walk(depth + 1)


class ResourceTree:
    """``iomem_resource`` and the kernel's request/release helpers."""

    def __init__(self, max_addr: int) -> None:
        self.root = Resource("PCI mem", 0, max_addr, busy=False)

    @staticmethod
    def _request_resource(parent: Resource, new: Resource) -> Resource | None:
        """__request_resource: insert ``new`` under ``parent``; the conflicting entry if any."""
        if not parent.contains(new.start, new.end):
            return parent
        for i, child in enumerate(parent.children):
            if child.start > new.end:
                parent.children.insert(i, new)
                new.parent = parent
                return None
            if child.end < new.start:
                continue
            return child
        parent.children.append(new)
        new.parent = parent
        return None

    def request_region(self, start: int, size: int, name: str, busy: bool = True) -> Resource | None:
        """__request_region(): None on conflict (callers map that to EBUSY or EEXIST)."""
        new = Resource(name, start, start + size - 1, busy)
        parent = self.root
        while True:
            conflict = self._request_resource(parent, new)
            if conflict is None:
                return new
            if conflict is not parent and not conflict.busy and conflict.contains(new.start, new.end):
                parent = conflict
                continue
            return None

    def insert_boot(self, start: int, size: int, name: str, busy: bool = False) -> Resource:
        """Firmware-described ranges (System RAM, Soft Reserved, CXL Window...) at boot."""
        res = self.request_region(start, size, name, busy)
        if res is None:
            raise ValueError(f"boot resource {name} [{start:#x}-{start + size - 1:#x}] conflicts")
        return res

    @staticmethod
    def release(res: Resource) -> None:
        """release_resource(): children move up to the parent, as __release_resource(.., true)."""
        parent = res.parent
        if parent is None:
            return
        idx = parent.children.index(res)
        parent.children[idx : idx + 1] = res.children
        for child in res.children:
            child.parent = parent
        res.children = []
        res.parent = None

    def find(self, start: int, end: int, name: str | None = None) -> Resource | None:
        """The resource exactly covering [start, end] (optionally with that name)."""
        node = self.root
        while True:
            for child in node.children:
                if child.contains(start, end):
                    if child.start == start and child.end == end and (name is None or child.name == name):
                        return child
                    node = child
                    break
            else:
                return None

    def format_iomem(self) -> str:
        """/proc/iomem text as root sees it."""
        lines = [f"{'  ' * depth}{res.start:08x}-{res.end:08x} : {res.name}" for depth, res in self.root.walk()]
        return "\n".join(lines) + ("\n" if lines else "")
