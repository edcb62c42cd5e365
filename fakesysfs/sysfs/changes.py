"""Which paths of the tree a kernel change touches: the ``ChangeFeed`` of ``build_tree``.

A FUSE mount caches lookups and attributes in the kernel (fuse_adapter.py). New entries need
nothing (negative lookups are never cached) and values need nothing (every read renders);
what must be dropped is an entry that vanished or whose link target changed. In sysfs those
follow the device model, which announces itself with uevents:

- ``remove`` of DEVPATH: the device directory and every link naming it: the bus's
  ``devices/NAME``, a driver's ``NAME``, ``/dev/char/MAJ:MIN``, and for memory blocks the
  node links ``nodeK/memoryN`` and the simulator's ``blocks/memoryN`` in debugfs; a bus or
  driver directory that may go with its last device (the producers' buses);
- ``bind``/``unbind``: the device's ``driver`` link and the driver's link to the device;
- everything else (``add``, ``online``, ``offline``, ``change``, ``move``): nothing.

The changes without a uevent are a dax device's ``mappingN`` (a store into a dax device
directory, ``size`` or ``mapping``, reports the device's mappings) and a CXL region's
``targetN`` (an ``interleave_ways`` store reports them). Work per event is a handful
of paths, whatever the machine size.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ..engine.events import Uevent
from ..errors import KernelError
from .tree import ChangeFeed, Tree

if TYPE_CHECKING:
    from ..engine import Kernel

__all__ = ["KernelChanges"]

#: Buses whose driver directories (and, but for platform, themselves) exist only while a
#: producer device sits on them (sysfs/dax.py).
PRODUCER_BUSES = frozenset({"cxl", "nd", "platform"})
#: Where the simulator's debugfs lists memory blocks (fakesysfs/debugfs.py).
DEBUGFS_BLOCKS = "/kernel/debug/fakesysfs/blocks"


class KernelChanges(ChangeFeed):
    """Uevents of ``kernel`` -> the paths they remove or retarget (see the module doc)."""

    def __init__(self, kernel: Kernel, tree: Tree | None = None) -> None:
        super().__init__()
        self.k = kernel
        self.tree = tree
        self._unsubscribe: Callable[[], None] | None = None
        #: Driver directory names ever seen per bus: an unbind carries no DRIVER.
        self._drivers: dict[str, set[str]] = {}

    # -- ChangeFeed ----------------------------------------------------------------------
    def started(self) -> None:
        for bus in ("dax", "cxl", "platform", "nd", "memory", "node", "cpu", "memory_tiering"):
            self._known_drivers(bus)
        self._unsubscribe = self.k.events.subscribe(self._on_event)

    def stopped(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def store_touches(self, _tree: Tree, path: str) -> Iterable[str]:
        """A store into ``daxX.Y/`` may add or remove ``mappingN`` without a uevent."""
        parent, name = posixpath.split(path)
        if name == "interleave_ways" and posixpath.basename(parent).startswith("region"):
            # A CXL region's targetN are visible for N < ways (cxl_region_target_visible()).
            return [f"{parent}/target{i}" for i in range(16)]
        if name not in ("size", "mapping") or not posixpath.basename(parent).startswith("dax"):
            return ()
        dev = self.k.dax_devices.get(posixpath.basename(parent))
        if dev is None or dev.devpath != parent:
            return ()
        return [f"{parent}/mapping{m}" for m in sorted(dev.mapping_ids)]

    # -- events ---------------------------------------------------------------------------
    def _on_event(self, event: Uevent) -> None:
        paths = self.paths_of(event)
        if paths:
            self.publish(paths)

    def paths_of(self, event: Uevent) -> list[str]:
        """The paths ``event`` removes or retargets (empty for additions and value changes)."""
        action = event.action
        if action not in ("remove", "bind", "unbind"):
            return []
        devpath, bus = event.devpath, event.subsystem
        name = posixpath.basename(devpath)
        if action == "bind":
            driver = dict(event.env).get("DRIVER")
            if driver:
                self._drivers.setdefault(bus, set()).add(driver)
        drivers = sorted(self._known_drivers(bus, refresh=action != "remove"))
        if action != "remove":
            # The device's driver link, the driver's link to it; and a producer bus drops a
            # driver directory with its last device.
            paths = [f"{devpath}/driver", *(f"/bus/{bus}/drivers/{drv}/{name}" for drv in drivers)]
            if action == "unbind" and bus in PRODUCER_BUSES:
                paths += [f"/bus/{bus}/drivers/{drv}" for drv in drivers]
            return paths
        paths = [devpath, f"/bus/{bus}/devices/{name}"]
        if bus in PRODUCER_BUSES:  # the bus directory goes with its last producer device
            paths += [f"/bus/{bus}", *(f"/bus/{bus}/drivers/{drv}" for drv in drivers)]
        env = dict(event.env)
        if "MAJOR" in env and "MINOR" in env:
            paths.append(f"/dev/char/{env['MAJOR']}:{env['MINOR']}")
        if bus == "memory":
            paths += [f"/devices/system/node/node{nid}/{name}" for nid in self.k.nodes]
            paths.append(f"{DEBUGFS_BLOCKS}/{name}")
        elif bus == "drivers":  # /bus/BUS/drivers/NAME went with its module
            paths.append(f"/module/{name}/drivers/dax:{name}")
        return paths

    def _known_drivers(self, bus: str, refresh: bool = True) -> set[str]:
        known = self._drivers.setdefault(bus, set())
        if refresh and self.tree is not None:
            try:
                known.update(self.tree.readdir(f"/bus/{bus}/drivers"))
            except KernelError:
                pass
        return known
