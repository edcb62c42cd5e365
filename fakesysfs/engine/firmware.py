"""Producers that come and go at runtime: what firmware and the bus drivers do when a CXL RAM
region or an EFI soft-reserved (hmem) range appears or disappears while user space runs.

Boot-time producers are made by ``DaxMixin.dax_boot`` before user space exists, so they send
no uevents for the devices above the dax devices. Here every device the kernel would add
or remove is announced, in the kernel's order:

Hot add of a CXL RAM region (cxl_acpi found the window; cxl_region assembled the region;
without a decoder named, on a machine with CXL windows, firmware first brings up a device with
a window of its own: CxlMixin.cxl_hotplug_device, docs/cxl.md "Hot-added regions"):

    add regionN (cxl) -> add dax_regionN (cxl) -> add daxN.0 (dax) -> [autoprobe: kmem
    binds, memory add/online events, bind daxN.0] -> bind dax_regionN -> bind regionN

``driver_bound()`` sends ``bind`` after the probe returned, so the parent's ``bind`` follows
everything its probe created. Hot add of an hmem range is the same with ``hmem.N``
(platform) as the only parent.

Removal follows the kernel's teardown, which cannot be vetoed:

- CXL: ``unregister_region()`` (drivers/cxl/core/region.c) -> ``device_del(regionN)``
  releases the cxl_region driver, whose devm actions unregister ``dax_regionN``; its
  driver's devm actions run ``unregister_dev_dax()`` (drivers/dax/bus.c) for every dax
  device of the region, newest first, then ``dax_region_unregister()``. Then
  ``cxl_region_iomem_release()`` removes ``regionN`` from /proc/iomem.
- hmem: ``platform_device_unregister(hmem.N)``, with the same devm teardown of its region.

``unregister_dev_dax()`` releases the driver: kmem's ``dev_dax_kmem_remove()`` removes the
memory it can and **leaks** every range with a block still online (R-KMEM-09..11): the
blocks stay, online, with their node and zone, ``mappingN: ... cannot be hotremoved until
the next reboot`` is logged, and the ``daxX.Y`` / ``System RAM (kmem)`` entries stay in
/proc/iomem. So an agent must offline the memory before the device goes away; a surprise
removal leaves it behind, exactly as on a real host.

Simplifications (documented in README "Testing agents"): every CXL region gets its own CFMWS
window (``CXL Window N``) and every hmem range its own ``Soft Reserved`` entry; both are
withdrawn with the producer unless leaked memory still sits inside them, in which case they
stay until reboot and the range cannot be hot-added again.
"""

from __future__ import annotations

import errno
from dataclasses import replace
from typing import Unpack

from ..config import CxlRegionConfig, HmemConfig, PmemConfig, cxl_root_device
from ..errors import KernelError
from .cxl import CxlMixin
from .dax import (
    IORESOURCE_DAX_KMEM,
    DevDax,
    ProducerDevice,
    ProducerFields,
)
from .hotplug import PMD_SIZE

#: CXL HDM decoders map host physical addresses in 256 MiB units.
CXL_GRANULE = 256 << 20
#: Where automatically placed producers go at the lowest: above the 4 GiB boundary.
_AUTO_FLOOR = 1 << 32


def _fmt(start: int, size: int) -> str:
    return f"[{start:#x}-{start + size - 1:#x}]"


class FirmwareMixin(CxlMixin):
    """Runtime producers; mixed into ``Kernel``. Entry points take the hotplug lock."""

    # -- placement and checks -------------------------------------------------------------
    def hotplug_range_conflict(self, start: int, size: int) -> str | None:
        """What already occupies [start, start + size), for the error message; None if free."""
        end = start + size - 1
        for res in self.resources.root.children:
            if res.start <= end and start <= res.end:
                return f"{res.name} {_fmt(res.start, res.end - res.start + 1)}"
        cfg = self.config
        ranges = [(r.start, r.size, f"node{n.id} boot RAM") for n in cfg.nodes for r in n.memory]
        ranges += [(p.start, p.size, "a CXL region") for p in cfg.cxl_regions]
        ranges += [(p.start, p.size, "an hmem range") for p in cfg.hmem]
        ranges += [(p.start, p.size, f"pmem {p.namespace}") for p in cfg.pmem]
        for r_start, r_size, what in ranges:
            if r_start <= end and start <= r_start + r_size - 1:
                return f"{what} {_fmt(r_start, r_size)}"
        bs = self.block_size
        for bid in range(start // bs, end // bs + 1):
            if bid in self.blocks:
                return f"memory block {bid} (memory{bid}, still present)"
        return None

    def find_free_physical_range(self, size: int, align: int) -> int:
        """The lowest ``align``-aligned start at or above 4 GiB and above everything present
        (firmware ranges, boot RAM, memory blocks) where ``size`` bytes fit below
        2**max_physmem_bits. EINVAL (with the reason) when there is no such range."""
        top = _AUTO_FLOOR
        for res in self.resources.root.children:
            top = max(top, res.end + 1)
        cfg = self.config
        for n in cfg.nodes:
            for r in n.memory:
                top = max(top, r.end)
        producers: list[CxlRegionConfig | HmemConfig | PmemConfig] = [*cfg.cxl_regions, *cfg.hmem, *cfg.pmem]
        for p in producers:
            if p.start + p.size <= 1 << self.max_physmem_bits:
                top = max(top, p.start + p.size)
        if self.blocks:
            top = max(top, (max(self.blocks) + 1) * self.block_size)
        start = -(-top // align) * align
        if start + size > 1 << self.max_physmem_bits:
            raise KernelError(errno.ENOSPC, f"no free physical range of {size:#x} bytes below "
                                            f"2**{self.max_physmem_bits} (max_physmem_bits) above {top:#x}")
        return start

    def _check_hotplug_range(self, start: int, size: int, align: int, what: str) -> None:
        if size <= 0:
            raise KernelError(errno.EINVAL, f"size must be positive (got {size})")
        if start < 0 or start + size > 1 << 64:
            raise KernelError(errno.EINVAL, f"range {_fmt(start, size)} is outside the 64-bit physical space")
        if start % align or size % align:
            raise KernelError(errno.EINVAL, f"start {start:#x} and size {size:#x} must be multiples of {what}")
        conflict = self.hotplug_range_conflict(start, size)
        if conflict is not None:
            raise KernelError(errno.EBUSY, f"range {_fmt(start, size)} overlaps {conflict}")
        from ..config import block_budget_problem

        # The limit a topology has at load: a hot-added range may not make the simulator hold
        # more blocks than it can (millions of blocks would take the daemon's memory).
        problem = block_budget_problem(self.config, (start, size, f"the new range {_fmt(start, size)}"))
        if problem is not None:
            raise KernelError(errno.ENOSPC, problem)

    def _check_hotplug_nodes(self, target_node: int, numa_node: int | None, adistance: int | None) -> None:
        if target_node not in self.possible_nodes:
            raise KernelError(errno.EINVAL, f"target_node {target_node} is not a possible node "
                                            f"(possible: {sorted(self.possible_nodes)})")
        if numa_node is not None and not (numa_node in self.nodes and self.nodes[numa_node].online):
            raise KernelError(errno.EINVAL, f"numa_node {numa_node} is not online (online: {self.online_nodes()})")
        if adistance is not None and adistance < 0:
            raise KernelError(errno.EINVAL, f"adistance must be >= 0 (got {adistance})")

    def _check_driver(self, driver: str | None) -> None:
        if driver is None:
            return
        drv = self.dax_drivers.get(driver)
        if drv is None:
            raise KernelError(errno.EINVAL, f"driver {driver!r} is not a dax driver (device_dax or kmem)")
        if not drv.loaded:
            raise KernelError(errno.EINVAL, f"the {driver} driver is not loaded")

    # -- uevents of the producers' devices --------------------------------------------------
    def _producer_uevent(self, action: str, pdev: ProducerDevice) -> None:
        self._pdev_uevent(action, pdev)

    def _hotplug_producer_device(self, devpath: str, bus: str,
                                 **kw: Unpack[ProducerFields]) -> tuple[ProducerDevice, bool]:
        """The device at ``devpath``, created and announced (``add``) if it did not exist."""
        pdev = self.dax_producer_devices.get(devpath)
        if pdev is not None:
            return pdev, False
        pdev = self._producer_device(devpath, bus, **kw)
        self._producer_uevent("add", pdev)
        return pdev, True

    # -- CXL -------------------------------------------------------------------------------
    def cxl_region_hotplug_add(self, cfg: CxlRegionConfig, *, new_device: bool = False) -> tuple[str, DevDax | None]:
        """A CXL RAM region appears (cxl_acpi window, cxl_region, cxl_dax_region_probe).

        ``new_device`` (no decoder named) on a machine with CXL windows: firmware brings up a
        device with a window of its own first (CxlMixin.cxl_hotplug_device), and the region
        is assembled in it, so it has every CXL attribute; it goes with the region.
        Returns the region name and its dax device (None if the region probe failed).
        Raises KernelError with a message for a range or node the platform cannot have.
        """
        with self.lock:
            self._check_hotplug_range(cfg.start, cfg.size, CXL_GRANULE, "the 256 MiB CXL decoder granularity")
            self._check_hotplug_nodes(cfg.target_node, cfg.numa_node, cfg.adistance)
            self._check_driver(cfg.driver)
            rid = self.memregion_alloc()
            windows = sum(1 for r in self.resources.root.children if r.name.startswith("CXL Window"))
            hot_device = new_device and self.cxl_root is not None and bool(
                self.config.cxl_windows or self._cxl_hot_windows)
            if hot_device:
                cfg = replace(cfg, decoder=self.cxl_hotplug_device(rid, cfg.start, cfg.size, cfg.target_node))
            if self._iomem_boot(cfg.start, cfg.size, f"CXL Window {windows}"):
                self.resources.request_region(cfg.start, cfg.size, f"region{rid}", busy=False)
            self.config.cxl_regions.append(cfg)
            cxl_root, modalias = cxl_root_device(self.config.cxl_root)
            acpi, new_acpi = self._hotplug_producer_device(cxl_root, "platform", driver="cxl_acpi",
                                                           modalias=modalias)
            self._hotplug_producer_device(f"{cxl_root}/root0", "cxl", devtype="cxl_port", modalias="cxl:t4")
            decoder = f"{cxl_root}/root0/{cfg.decoder}"
            self._hotplug_producer_device(decoder, "cxl", devtype="cxl_decoder_root", modalias="cxl:t0")
            if new_acpi:
                self._producer_uevent("bind", acpi)
            region_dev, _ = self._hotplug_producer_device(
                f"{decoder}/region{rid}", "cxl", driver="cxl_region", devtype="cxl_region", modalias="cxl:t6")
            parent, _ = self._hotplug_producer_device(
                f"{decoder}/region{rid}/dax_region{rid}", "cxl",
                driver="cxl_dax_region", devtype="cxl_dax_region", modalias="cxl:t8",
            )  # fmt: skip
            numa_node = cfg.numa_node if cfg.numa_node is not None else \
                self.numa_map_to_online_node(cfg.target_node, need_cpus=True)
            region = self.alloc_dax_region(parent, rid, cfg.start, cfg.start + cfg.size - 1, cfg.target_node,
                                           PMD_SIZE, IORESOURCE_DAX_KMEM, numa_node=numa_node, producer="cxl",
                                           adistance=cfg.adistance)
            dev = None
            if region is not None:
                # R-DAX-MOM-01: CXL devices default to memmap_on_memory=1.
                dev = self.devm_create_dev_dax(region, -1, cfg.size, memmap_on_memory=True,
                                               autoprobe=cfg.driver is None)
                self._producer_uevent("bind", parent)
            self._producer_uevent("bind", region_dev)
            self.cxl_region_register(rid, cfg)
            self._bind_override(dev, cfg.driver, "driver")
            return f"region{rid}", dev

    def cxl_region_hotplug_remove(self, rid: int) -> None:
        """unregister_region(): tear the region down; online kmem memory is leaked."""
        with self.lock:
            region_dev = next((p for p in self.dax_producer_devices.values()
                               if p.devtype == "cxl_region" and p.name == f"region{rid}"), None)
            if region_dev is None:
                raise KernelError(errno.ENODEV, f"there is no CXL region region{rid}")
            parent = self.dax_producer_devices.get(f"{region_dev.devpath}/dax_region{rid}")
            region = parent.region if parent is not None else None
            cfg = next((c for c in self.config.cxl_regions if region is not None and c.start == region.start), None)
            if parent is not None:
                self.dax_region_teardown(parent, region)
                del self.dax_producer_devices[parent.devpath]
            self._producer_uevent("unbind", region_dev)
            self._producer_uevent("remove", region_dev)
            del self.dax_producer_devices[region_dev.devpath]
            self.cxl_region_unregister(rid)
            self.cxl_hotplug_remove_device(rid)
            if cfg is not None:
                # cxl_region_iomem_release(): leaked kmem claims move up into the window.
                res = self.resources.find(cfg.start, cfg.start + cfg.size - 1, f"region{rid}")
                if res is not None:
                    self.resources.release(res)
                self._withdraw_firmware_range(cfg.start, cfg.size, "CXL Window")
                self.config.cxl_regions[:] = [c for c in self.config.cxl_regions if c is not cfg]
            self._memregion_ids.discard(rid)

    def _withdraw_firmware_range(self, start: int, size: int, prefix: str) -> None:
        """Firmware withdraws its range, unless leaked memory still sits in it."""
        res = next((r for r in self.resources.root.children
                    if r.start == start and r.end == start + size - 1 and r.name.startswith(prefix)), None)
        if res is not None and not res.children:
            self.resources.release(res)

    # -- hmem --------------------------------------------------------------------------------
    def hmem_hotplug_add(self, cfg: HmemConfig) -> tuple[str, DevDax | None]:
        """An EFI soft-reserved range appears: hmem_register_device() + dax_hmem_probe()."""
        with self.lock:
            self._check_hotplug_range(cfg.start, cfg.size, PMD_SIZE, "the 2 MiB dax region alignment")
            self._check_hotplug_nodes(cfg.target_node, cfg.numa_node, cfg.adistance)
            self._check_driver(cfg.driver)
            rid = self.memregion_alloc()
            self._iomem_boot(cfg.start, cfg.size, "Soft Reserved")
            self.config.hmem.append(cfg)
            numa_node = cfg.numa_node if cfg.numa_node is not None else self.numa_map_to_online_node(cfg.target_node)
            parent, _ = self._hotplug_producer_device(f"/devices/platform/hmem.{rid}", "platform", driver="hmem",
                                                      modalias="platform:hmem", numa_node=numa_node)
            idle = self.dax_hmem_region_idle  # R-DAXC-02: read at region creation
            region = self.alloc_dax_region(parent, rid, cfg.start, cfg.start + cfg.size - 1, cfg.target_node,
                                           PMD_SIZE, 0 if idle else IORESOURCE_DAX_KMEM, numa_node=numa_node,
                                           producer="hmem", adistance=cfg.adistance)
            dev = None
            if region is not None:
                dev = self.devm_create_dev_dax(region, -1, 0 if idle else cfg.size, memmap_on_memory=False,
                                               autoprobe=cfg.driver is None)
                self._producer_uevent("bind", parent)
            self._bind_override(dev, cfg.driver, "driver")
            return parent.name, dev

    def hmem_hotplug_remove(self, rid: int) -> None:
        """platform_device_unregister(hmem.N): the devm teardown of its region."""
        with self.lock:
            parent = self.dax_producer_devices.get(f"/devices/platform/hmem.{rid}")
            if parent is None:
                raise KernelError(errno.ENODEV, f"there is no hmem device hmem.{rid}")
            region = parent.region
            cfg = next((c for c in self.config.hmem if region is not None and c.start == region.start), None)
            self.dax_region_teardown(parent, region)
            del self.dax_producer_devices[parent.devpath]
            if cfg is not None:
                self._withdraw_firmware_range(cfg.start, cfg.size, "Soft Reserved")
                self.config.hmem[:] = [c for c in self.config.hmem if c is not cfg]
            self._memregion_ids.discard(rid)


def with_start(cfg: CxlRegionConfig | HmemConfig, start: int) -> CxlRegionConfig | HmemConfig:
    """``cfg`` placed at ``start`` (for automatic placement)."""
    return replace(cfg, start=start)


__all__ = ["CXL_GRANULE", "FirmwareMixin", "with_start"]
