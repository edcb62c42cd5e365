"""The DAX bus and its two drivers, and the producers that create dax regions.

One function per kernel step, named as in the kernel sources:

- ``drivers/dax/bus.c``: ``alloc_dax_region``, ``devm_create_dev_dax``, ``unregister_dev_dax``,
  ``dax_bus_match``, ``dax_bus_probe``, ``dax_bus_remove``, ``do_id_store``, the per-device and
  per-region stores (``size_store`` with ``dev_dax_resize``/``dev_dax_shrink``,
  ``mapping_store``, ``align_store``, ``memmap_on_memory_store``, ``create_store``,
  ``delete_store``) and the range/mapping helpers they share;
- ``drivers/base/bus.c``/``dd.c``: ``bind_store``, ``unbind_store``, ``drivers_probe_store``,
  ``drivers_autoprobe_store``, ``device_attach``, ``driver_attach``, ``really_probe``,
  ``device_release_driver``, driver registration;
- ``drivers/dax/kmem.c``: ``dev_dax_kmem_probe``/``dev_dax_kmem_remove``;
- ``drivers/dax/device.c``: ``dev_dax_probe``/``dev_dax_remove``;
- the producers ``cxl_dax_region_probe`` (drivers/dax/cxl.c), ``dax_hmem_probe``
  (drivers/dax/hmem/hmem.c) and ``dax_pmem_probe`` (drivers/dax/pmem.c).

Stores take the written text (already cut at the first NUL) and either return None (the
whole count was consumed), an int (bytes consumed, only ``mapping_store`` returns 0) or
raise ``KernelError`` with the kernel's errno (docs/abi.md "The dax bus", "kmem and device_dax").

Probing is synchronous, as in 6.8-6.18 (R-DAXC-01, R-DAX-ID-01): a bind started by device
creation, ``new_id``, ``bind`` or ``drivers_probe`` has finished, with all its memory events,
when the call returns.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypedDict, Unpack

from ..config import cxl_root_device
from ..errors import ConfigError, KernelError
from ..klib import (
    kstrtobool,
    kstrtoint,
    kstrtoul,
    kstrtoull,
    parse_dax_id,
    string_get_size,
    sysfs_streq,
)
from .base import LOGLEVEL_ERR, LOGLEVEL_INFO
from .hotplug import MHP_MEMMAP_ON_MEMORY, MHP_NID_IS_MGID, PMD_SIZE, HotplugMixin
from .node import KMEM_DEFAULT_ADISTANCE
from .resource import Resource

if TYPE_CHECKING:
    from ..config import CxlRegionConfig, HmemConfig, PmemConfig

#: struct resource flags of a dax region (include/linux/ioport.h).
IORESOURCE_DAX_STATIC = 1 << 0
IORESOURCE_DAX_KMEM = 1 << 1

#: enum dax_driver_type (drivers/dax/bus.h).
DAXDRV_KMEM_TYPE = "kmem"
DAXDRV_DEVICE_TYPE = "device"

PUD_SIZE = 1 << 30
U64_MAX = (1 << 64) - 1
#: drivers/dax/Makefile links device_dax before kmem; that is their registration order.
DAX_DRIVERS = (("device_dax", DAXDRV_DEVICE_TYPE), ("kmem", DAXDRV_KMEM_TYPE))
KMEM_RES_NAME = "System RAM (kmem)"


def _hex(value: int) -> str:
    """Kernel ``%#llx``: lib/vsprintf.c number() always prints ``0x`` in base 16, so zero is
    ``0x0`` (unlike glibc)."""
    return f"{value:#x}"


def _streq_name(buf: str, name: str) -> bool:
    """bus_find_device_by_name()/device_find_child_by_name(): sysfs_streq on device names."""
    return sysfs_streq(name, buf)


# -- engine objects ---------------------------------------------------------------------------
@dataclass(eq=False, slots=True)
class ProducerDevice:
    """A device of a producer's chain above the dax devices (``hmem.0``, ``region0``,
    ``dax_region0``, ``ndbus0``...). Static after boot; only what sysfs shows of it."""

    devpath: str
    bus: str | None
    driver: str | None = None
    devtype: str | None = None
    modalias: str | None = None
    #: ``numa_node`` attribute (platform devices with a node only).
    numa_node: int | None = None
    #: The dax region whose ``dax_region/`` group this device carries.
    region: DaxRegion | None = None

    @property
    def name(self) -> str:
        return self.devpath.rsplit("/", 1)[1]

    @property
    def parent(self) -> str:
        return self.devpath.rsplit("/", 1)[0]

    def uevent_env(self) -> list[tuple[str, str]]:
        """dev_uevent() order: DEVTYPE, DRIVER, then the bus's MODALIAS."""
        env: list[tuple[str, str]] = []
        if self.devtype:
            env.append(("DEVTYPE", self.devtype))
        if self.driver:
            env.append(("DRIVER", self.driver))
        if self.modalias:
            env.append(("MODALIAS", self.modalias))
        return env


class ProducerFields(TypedDict, total=False):
    """The optional fields of a ``ProducerDevice``, as keyword arguments."""

    driver: str | None
    devtype: str | None
    modalias: str | None
    numa_node: int | None
    region: DaxRegion | None


@dataclass(eq=False, slots=True)
class DaxRegion:
    """struct dax_region (drivers/dax/dax-private.h)."""

    id: int
    #: devpath of the device that owns the region (holds ``dax_region/``).
    parent: str
    start: int
    end: int  # inclusive, like struct resource
    align: int
    flags: int
    target_node: int
    #: NUMA affinity of the parent device; dax devices inherit it (``numa_node``).
    numa_node: int
    producer: str  # "cxl", "hmem" or "pmem"
    #: Abstract distance firmware gives the target's memory (mt_calc_adistance); None = default.
    adistance: int | None = None
    #: dax_region->ida: device ids in use.
    ida: set[int] = field(default_factory=set)
    #: Children of the parent device, in creation order.
    devices: dict[int, DevDax] = field(default_factory=dict)
    seed: DevDax | None = None
    youngest: DevDax | None = None
    #: The parent device is bound to its driver (hmem, cxl_dax_region, dax_pmem).
    enabled: bool = True

    @property
    def size(self) -> int:
        return self.end - self.start + 1

    @property
    def is_static(self) -> bool:
        return bool(self.flags & IORESOURCE_DAX_STATIC)

    def allocations(self) -> list[tuple[DevDaxRange, DevDax]]:
        """The children of the region's private resource, in address order."""
        found = [(rng, dev) for dev in self.devices.values() for rng in dev.ranges]
        return sorted(found, key=lambda item: item[0].start)

    def avail_size(self) -> int:
        """dax_region_avail_size()."""
        return self.size - sum(rng.size for rng, _ in self.allocations())


@dataclass(eq=False, slots=True)
class DevDaxRange:
    """struct dev_dax_range: [start, end] and its offset in the device, plus its mappingN."""

    start: int
    end: int  # inclusive
    pgoff: int  # pages
    #: id N of ``mappingN`` while registered; None before device_add and after teardown.
    mapping: int | None = None

    @property
    def size(self) -> int:
        return self.end - self.start + 1


@dataclass(eq=False, slots=True)
class KmemData:
    """struct dax_kmem_data: what kmem keeps per bound device (drvdata)."""

    res_name: str
    mgid: int
    adistance: int
    nid: int
    #: The ``daxX.Y`` claim per range index (None: range skipped or its add failed).
    res: list[Resource | None]


@dataclass(eq=False, slots=True)
class DevDax:
    """struct dev_dax (drivers/dax/dax-private.h)."""

    region: DaxRegion
    id: int
    name: str
    align: int
    target_node: int
    numa_node: int
    memmap_on_memory: bool
    minor: int = -1
    ranges: list[DevDaxRange] = field(default_factory=list)
    #: dev_dax->ida: mappingN ids in use.
    mapping_ids: set[int] = field(default_factory=set)
    driver: DaxDriver | None = None
    registered: bool = False
    dead: bool = False
    #: device_dax's devm claims of the ranges in /proc/iomem (R-DEVDAX-01).
    claims: list[Resource] = field(default_factory=list)
    #: kmem drvdata while bound to kmem.
    kmem: KmemData | None = None
    #: kmem data left behind by a failed hot-remove (R-KMEM-09/12): claims stay until reboot.
    kmem_leaked: list[KmemData] = field(default_factory=list)
    #: Set when dev_dax_kmem_remove could not remove some memory (R-KMEM-09).
    hotremove_failed: bool = False

    @property
    def size(self) -> int:
        """dev_dax_size()."""
        return sum(rng.size for rng in self.ranges)

    @property
    def devpath(self) -> str:
        return f"{self.region.parent}/{self.name}"

    def range_of_mapping(self, mapping_id: int) -> DevDaxRange | None:
        for rng in self.ranges:
            if rng.mapping == mapping_id:
                return rng
        return None


@dataclass(eq=False, slots=True)
class DaxDriver:
    """struct dax_device_driver: name (= module name), type, dynamic ids, loaded flag."""

    name: str
    type: str
    order: int
    ids: list[str] = field(default_factory=list)
    loaded: bool = False
    #: Devices bound to the driver, in bind order (drv->p->klist_devices).
    bound: list[DevDax] = field(default_factory=list)


# -- the mixin -------------------------------------------------------------------------------
class DaxMixin(HotplugMixin):
    """The DAX half of the engine; mixed into ``Kernel``."""

    dax_major: int
    dax_drivers_autoprobe: bool
    dax_hmem_region_idle: bool
    dax_drivers: dict[str, DaxDriver]
    dax_bus_drivers: list[DaxDriver]
    dax_devices: dict[str, DevDax]
    dax_regions: list[DaxRegion]
    dax_producer_devices: dict[str, ProducerDevice]
    kmem_any_hotremove_failed: bool
    #: kmem's data for memory it could not remove, of devices since unregistered: the kernel
    #: leaks it (dev_dax_kmem_remove: "leak memory that stays" until reboot), and so the
    #: memory stays hot-added, owned by nothing that still exists.
    kmem_orphans: list[KmemData]
    _memregion_ids: set[int]

    # -- boot ---------------------------------------------------------------------------------
    def dax_boot(self) -> None:
        """Load the dax drivers, then run the producers in the config's order.

        R-PATH-01: CXL regions and hmem ranges share memregion_alloc() (lowest free id, from
        0); pmem regions are named by their namespace (R-PATH-02) and hold their id R too.
        """
        cfg = self.config
        self.dax_major = cfg.dax_major
        self.dax_drivers_autoprobe = cfg.dax_drivers_autoprobe
        self.dax_hmem_region_idle = cfg.dax_hmem_region_idle
        self.dax_drivers = {name: DaxDriver(name, kind, order) for order, (name, kind) in enumerate(DAX_DRIVERS)}
        self.dax_bus_drivers = []
        self.dax_devices = {}
        self.dax_regions = []
        self.dax_producer_devices = {}
        self.kmem_any_hotremove_failed = False
        self.kmem_orphans = []
        self._memregion_ids = {_namespace_ids(p.namespace)[0] for p in cfg.pmem}
        if cfg.device_dax_loaded:
            self.dax_driver_register("device_dax")
        if cfg.kmem_loaded:
            self.dax_driver_register("kmem")
        for i, cxl in enumerate(cfg.cxl_regions):
            dev = self.cxl_dax_region_probe(i, cxl)
            self._bind_override(dev, cxl.driver, f"cxl_region[{i}].driver")
        for i, hmem in enumerate(cfg.hmem):
            dev = self.dax_hmem_probe(hmem)
            self._bind_override(dev, hmem.driver, f"hmem[{i}].driver")
        for i, pmem in enumerate(cfg.pmem):
            dev = self.dax_pmem_probe(pmem)
            self._bind_override(dev, pmem.driver, f"pmem[{i}].driver")

    def _bind_override(self, dev: DevDax | None, driver: str | None, key: str) -> None:
        """A producer's ``driver``: bind the device to that driver through new_id, as daxctl
        does (unbind from the default first). Nothing happens when it is already bound there."""
        if driver is None:
            return
        drv = self.dax_drivers.get(driver)
        if drv is None:
            raise ConfigError(key, f"{driver!r} is not a dax driver (device_dax or kmem)")
        if not drv.loaded:
            raise ConfigError(key, f"the {driver} driver is not loaded (dax.{driver} = false)")
        if dev is None:
            return  # the producer's probe failed: there is no device to bind
        if dev.driver is drv:
            return
        if dev.driver is not None:
            self.unbind_store(dev.driver.name, dev.name)
        self.new_id_store(driver, dev.name)

    def memregion_alloc(self) -> int:
        """memregion_alloc(): lowest free id of the system-wide region ida."""
        rid = 0
        while rid in self._memregion_ids:
            rid += 1
        self._memregion_ids.add(rid)
        return rid

    def _producer_device(self, devpath: str, bus: str | None, **kw: Unpack[ProducerFields]) -> ProducerDevice:
        pdev = self.dax_producer_devices.get(devpath)
        if pdev is None:
            pdev = self.dax_producer_devices[devpath] = ProducerDevice(devpath, bus, **kw)
        return pdev

    def numa_map_to_online_node(self, nid: int, need_cpus: bool = False) -> int:
        """The node itself if online, else the nearest online node (lowest id on ties)."""
        candidates = [n for n in self.online_nodes() if not need_cpus or self.nodes[n].cpus]
        if nid in candidates:
            return nid
        if not candidates:
            return -1
        return min(candidates, key=lambda n: (self.distance(nid, n), n))

    # -- producers ------------------------------------------------------------------------
    def cxl_dax_region_probe(self, index: int, cfg: CxlRegionConfig) -> DevDax | None:
        """cxl_acpi + cxl_region + drivers/dax/cxl.c: ``regionN/dax_regionN/daxN.0``."""
        rid = self.memregion_alloc()
        end = cfg.start + cfg.size - 1
        # /proc/iomem: the CFMWS window, the region inside it (R-DAXC-03).
        if self.cxl_window_iomem(index, cfg):
            self.resources.request_region(cfg.start, cfg.size, f"region{rid}", busy=False)
        root, modalias = cxl_root_device(self.config.cxl_root)
        self._producer_device(root, "platform", driver="cxl_acpi", modalias=modalias)
        self._producer_device(f"{root}/root0", "cxl", devtype="cxl_port", modalias="cxl:t4")
        decoder = f"{root}/root0/{cfg.decoder}"
        self._producer_device(decoder, "cxl", devtype="cxl_decoder_root", modalias="cxl:t0")
        self._producer_device(f"{decoder}/region{rid}", "cxl", driver="cxl_region", devtype="cxl_region",
                              modalias="cxl:t6")
        parent = self._producer_device(
            f"{decoder}/region{rid}/dax_region{rid}", "cxl",
            driver="cxl_dax_region", devtype="cxl_dax_region", modalias="cxl:t8",
        )  # fmt: skip
        numa_node = (cfg.numa_node if cfg.numa_node is not None
                     else self.numa_map_to_online_node(cfg.target_node, need_cpus=True))
        region = self.alloc_dax_region(parent, rid, cfg.start, end, cfg.target_node, PMD_SIZE, IORESOURCE_DAX_KMEM,
                                       numa_node=numa_node, producer="cxl", adistance=cfg.adistance)
        if region is None:
            return None
        # R-DAX-MOM-01: CXL devices default to memmap_on_memory=1, whether or not it is possible.
        return self.devm_create_dev_dax(region, -1, cfg.size, memmap_on_memory=True, autoprobe=cfg.driver is None)

    def dax_hmem_probe(self, cfg: HmemConfig) -> DevDax | None:
        """hmem_register_device() + dax_hmem_probe(): platform device ``hmem.N``."""
        rid = self.memregion_alloc()
        end = cfg.start + cfg.size - 1
        self._iomem_boot(cfg.start, cfg.size, "Soft Reserved")
        numa_node = cfg.numa_node if cfg.numa_node is not None else self.numa_map_to_online_node(cfg.target_node)
        parent = self._producer_device(f"/devices/platform/hmem.{rid}", "platform", driver="hmem",
                                       modalias="platform:hmem", numa_node=numa_node)
        # R-DAXC-02: region_idle is read when the region is created.
        idle = self.dax_hmem_region_idle
        flags = 0 if idle else IORESOURCE_DAX_KMEM
        region = self.alloc_dax_region(parent, rid, cfg.start, end, cfg.target_node, PMD_SIZE, flags,
                                       numa_node=numa_node, producer="hmem", adistance=cfg.adistance)
        if region is None:
            return None
        return self.devm_create_dev_dax(region, -1, 0 if idle else cfg.size, memmap_on_memory=False,
                                        autoprobe=cfg.driver is None)

    def dax_pmem_probe(self, cfg: PmemConfig) -> DevDax | None:
        """__dax_pmem_probe(): ``e820_pmem/ndbus0/regionR/daxR.S/daxR.S`` (R-PATH-02)."""
        region_id, dev_id = _namespace_ids(cfg.namespace)
        data_start = cfg.start + cfg.reserve
        end = cfg.start + cfg.size - 1
        # e820 type 12 (PRAM) is what registers e820_pmem; its iomem name has "(legacy)".
        if self._iomem_boot(cfg.start, cfg.size, "Persistent Memory (legacy)") and cfg.reserve:
            # "reserve the metadata area, device-dax will reserve the data"
            self.resources.request_region(cfg.start, cfg.reserve, cfg.namespace, busy=True)
        numa_node = cfg.numa_node if cfg.numa_node is not None else self.numa_map_to_online_node(cfg.target_node)
        bus = "/devices/platform/e820_pmem"
        self._producer_device(bus, "platform", driver="e820_pmem", modalias="platform:e820_pmem")
        self._producer_device(f"{bus}/ndbus0", "nd", driver="nd_bus", devtype="nvdimm_bus", modalias="nd:t0")
        self._producer_device(f"{bus}/ndbus0/region{region_id}", "nd", driver="nd_region", devtype="nd_pmem",
                              modalias="nd:t2")
        parent = self._producer_device(f"{bus}/ndbus0/region{region_id}/dax{region_id}.{dev_id}", "nd",
                                       driver="dax_pmem", devtype="nd_dax", modalias="nd:t7")
        region = self.alloc_dax_region(parent, region_id, data_start, end, cfg.target_node, cfg.align,
                                       IORESOURCE_DAX_STATIC, numa_node=numa_node, producer="pmem",
                                       adistance=cfg.adistance)
        if region is None:
            return None
        return self.devm_create_dev_dax(region, dev_id, end - data_start + 1, memmap_on_memory=False,
                                        autoprobe=cfg.driver is None)

    def dax_region_teardown(self, parent: ProducerDevice, region: DaxRegion | None) -> None:
        """device_del() of the region's parent: its driver's devm actions unregister the dax
        devices newest first, then the region (dax_region_unregister); unbind, remove."""
        if region is not None:
            for dev in reversed(list(region.devices.values())):
                self.unregister_dev_dax(dev)
                region.ida.discard(dev.id)
            region.seed = region.youngest = None
            region.enabled = False
            if region in self.dax_regions:
                self.dax_regions.remove(region)
            parent.region = None
        if parent.driver is not None:
            self._pdev_uevent("unbind", parent)
        self._pdev_uevent("remove", parent)

    def _pdev_uevent(self, action: str, pdev: ProducerDevice) -> None:
        """dev_uevent() of a producer device: DRIVER only while bound (not on ``add``,
        ``unbind``, ``remove``)."""
        env = pdev.uevent_env()
        if action != "bind":
            env = [(k, v) for k, v in env if k != "DRIVER"]
        self.uevent(action, pdev.devpath, pdev.bus or "", tuple(env))

    def cxl_window_iomem(self, index: int, cfg: CxlRegionConfig) -> bool:
        """The CFMWS window of a firmware region in /proc/iomem: one of its own, ``CXL Window
        <index>`` (engine/cxl.py places regions in declared windows instead). False if the
        window is above the simulator's tree."""
        return self._iomem_boot(cfg.start, cfg.size, f"CXL Window {index}")

    def _iomem_boot(self, start: int, size: int, name: str) -> bool:
        """A firmware range in /proc/iomem. The kernel's iomem_resource spans every address;
        the simulator's tree stops at max_physmem_bits, so a window above it is not listed."""
        if start + size - 1 > self.resources.root.end:
            return False
        self.resources.insert_boot(start, size, name)
        return True

    def request_mem_region(self, start: int, size: int, name: str, busy: bool) -> Resource | None:
        """request_mem_region(); above the simulator's tree (see _iomem_boot) it succeeds with
        a resource that is listed nowhere, as the kernel's would be above max_physmem_bits."""
        if start + size - 1 > self.resources.root.end:
            return Resource(name, start, start + size - 1, busy)
        return self.resources.request_region(start, size, name, busy)

    def mhp_range_allowed(self, start: int, size: int) -> bool:
        """Physical range usable for memory hotplug / memremap_pages (max_physmem_bits)."""
        end = start + size
        hi = (1 << self.max_physmem_bits) - 1
        if start < end and end - 1 <= hi:
            return True
        self.printk(f"Hotplug memory [{start:#x}-{end:#x}] exceeds maximum addressable range [{0:#x}-{hi:#x}]")
        return False

    def alloc_dax_region(self, parent: ProducerDevice, region_id: int, start: int, end: int,
                         target_node: int, align: int, flags: int, *, numa_node: int, producer: str,
                         adistance: int | None) -> DaxRegion | None:
        """alloc_dax_region(): NULL (the producer's probe fails with ENOMEM, its device stays
        unbound) unless the range is aligned to the region alignment."""
        if start % align or (end - start + 1) % align:
            # call_driver_probe(): dev_err() of the producer device, its driver still set.
            self.printk(f"probe with driver {parent.driver} failed with error {-errno.ENOMEM}", LOGLEVEL_ERR,
                        f"{parent.driver} {parent.name}: ")
            parent.driver = None
            return None
        region = DaxRegion(region_id, parent.devpath, start, end, align, flags, target_node, numa_node,
                           producer, adistance)
        parent.region = region
        self.dax_regions.append(region)
        return region

    # -- devices ----------------------------------------------------------------------------
    def devm_create_dev_dax(self, region: DaxRegion, dev_id: int, size: int, *,
                            memmap_on_memory: bool, autoprobe: bool = True) -> DevDax:
        """__devm_create_dev_dax(): id, first range, minor, device_add (uevent ``add``, then
        autoprobe), and only then ``mapping0`` (R-DAXC-01)."""
        if region.is_static:
            if dev_id < 0:
                raise KernelError(errno.EINVAL)  # "dynamic id specified to static region"
        else:
            dev_id = self.alloc_dev_dax_id(region)
        dev = DevDax(region, dev_id, f"dax{region.id}.{dev_id}", region.align, region.target_node,
                     region.numa_node, memmap_on_memory)
        region.ida.add(dev_id)
        self.alloc_dev_dax_range(dev, region.start, size)
        dev.minor = self.alloc_dax_minor()
        self.dax_device_add(dev, autoprobe)
        if dev.ranges and dev.ranges[0].size:
            self.devm_register_dax_mapping(dev, dev.ranges[0])
        return dev

    @staticmethod
    def alloc_dev_dax_id(region: DaxRegion) -> int:
        dev_id = 0
        while dev_id in region.ida:
            dev_id += 1
        return dev_id

    def alloc_dax_minor(self) -> int:
        """alloc_dax(): ida_alloc of dax_minor_ida, lowest free system-wide."""
        used = {dev.minor for dev in self.dax_devices.values()}
        minor = 0
        while minor in used:
            minor += 1
        return minor

    def dev_dax_uevent_env(self, dev: DevDax) -> list[tuple[str, str]]:
        """R-DAX-UEV-01: MAJOR, MINOR, DEVNAME, DRIVER (while bound), MODALIAS."""
        env = [("MAJOR", str(self.dax_major)), ("MINOR", str(dev.minor)), ("DEVNAME", dev.name)]
        if dev.driver is not None:
            env.append(("DRIVER", dev.driver.name))
        env.append(("MODALIAS", "dax:t0"))
        return env

    def _dax_uevent(self, action: str, dev: DevDax) -> None:
        self.uevent(action, dev.devpath, "dax", tuple(self.dev_dax_uevent_env(dev)))

    def dax_device_add(self, dev: DevDax, autoprobe: bool = True) -> None:
        """device_add(): visible, ``/sys/dev/char`` link, uevent ``add``, bus_probe_device()."""
        dev.registered = True
        self.dax_devices[dev.name] = dev
        dev.region.devices[dev.id] = dev
        self._dax_uevent("add", dev)
        if self.dax_drivers_autoprobe and autoprobe:
            self.device_attach(dev)

    def unregister_dev_dax(self, dev: DevDax) -> None:
        """unregister_dev_dax(): kill, device_del (release the driver, uevent ``remove``),
        free the ranges; the release frees the minor."""
        dev.dead = True
        self.device_release_driver(dev)
        for rng in list(dev.ranges):
            self.unregister_dax_mapping(dev, rng)
        self._dax_uevent("remove", dev)
        dev.registered = False
        self.kmem_orphans.extend(dev.kmem_leaked)
        del self.dax_devices[dev.name]
        dev.region.devices.pop(dev.id, None)
        dev.ranges.clear()

    # -- ranges and mappings (bus.c) -------------------------------------------------------
    def alloc_is_aligned(self, dev: DevDax, size: int) -> bool:
        """The granularity is max(device align, subsection = memremap_compat_align())."""
        return size % max(dev.align, PMD_SIZE) == 0

    def alloc_dev_dax_range(self, dev: DevDax, start: int, size: int) -> None:
        """__request_region() on the region's private resource, then the mapping device."""
        region = dev.region
        if not size:
            if dev.ranges:
                raise KernelError(errno.EBUSY)  # dev_WARN "0-size allocation must be first"
            return
        end = start + size - 1
        if start < region.start or end > region.end:
            raise KernelError(errno.ENOMEM)
        for rng, _ in region.allocations():
            if rng.start <= end and start <= rng.end:
                raise KernelError(errno.ENOMEM)
        pgoff = sum(rng.size // self.page_size for rng in dev.ranges)
        rng = DevDaxRange(start, end, pgoff)
        dev.ranges.append(rng)
        if not dev.registered:
            return  # devm_create_dev_dax() adds mapping0 after device_add()
        try:
            self.devm_register_dax_mapping(dev, rng)
        except KernelError:
            self.trim_dev_dax_range(dev)
            raise

    def devm_register_dax_mapping(self, dev: DevDax, rng: DevDaxRange) -> None:
        """``mappingN``: N lowest free within the device; no bus, so no uevent (R-SYS-09)."""
        if not dev.region.enabled:
            raise KernelError(errno.ENXIO)  # dev_WARN_ONCE "region disabled"
        mapping_id = 0
        while mapping_id in dev.mapping_ids:
            mapping_id += 1
        dev.mapping_ids.add(mapping_id)
        rng.mapping = mapping_id

    @staticmethod
    def unregister_dax_mapping(dev: DevDax, rng: DevDaxRange) -> None:
        """Reads of an open mappingN file fail with ENXIO from now on (1.9)."""
        if rng.mapping is not None:
            dev.mapping_ids.discard(rng.mapping)
            rng.mapping = None

    @staticmethod
    def trim_dev_dax_range(dev: DevDax) -> None:
        dev.ranges.pop()

    def dev_dax_shrink(self, dev: DevDax, size: int) -> None:
        """Take bytes from the highest-offset ranges; whole ranges go with their mappingN."""
        to_shrink = dev.size - size
        for i in range(len(dev.ranges) - 1, -1, -1):
            rng = dev.ranges[i]
            shrink = min(to_shrink, rng.size)
            if shrink >= rng.size:
                self.unregister_dax_mapping(dev, rng)
                self.trim_dev_dax_range(dev)
                to_shrink -= shrink
                if not to_shrink:
                    break
                continue
            if i != len(dev.ranges) - 1:
                raise KernelError(errno.ENXIO)  # "failed to find matching resource"
            rng.end = rng.start + rng.size - shrink - 1  # adjust_dev_dax_range()
            return

    @staticmethod
    def adjust_ok(dev: DevDax, rng: DevDaxRange) -> bool:
        """Only the device's last range (highest pgoff) may be extended in place."""
        if not dev.ranges or dev.ranges[-1] is not rng:
            return False
        return all(other.pgoff <= rng.pgoff for other in dev.ranges[:-1])

    def dev_dax_resize(self, region: DaxRegion, dev: DevDax, size: int) -> None:
        avail = region.avail_size()
        dev_size = dev.size
        if dev.driver is not None:
            raise KernelError(errno.EBUSY)
        if size == dev_size:
            return
        if size > dev_size and size - dev_size > avail:
            raise KernelError(errno.ENOSPC)
        if size < dev_size:
            self.dev_dax_shrink(dev, size)
            return
        to_alloc = size - dev_size
        if not self.alloc_is_aligned(dev, to_alloc):
            raise KernelError(errno.ENXIO)  # dev_WARN "resize misaligned"
        # Free space in address order: the gap at the start of the region, gaps between
        # allocations, then the tail; a gap right after the device's last range extends it.
        while to_alloc:
            children = region.allocations()
            if not children:
                self.alloc_dev_dax_range(dev, region.start, to_alloc)
                return
            alloc = 0
            done = False
            for idx, (rng, owner) in enumerate(children):
                nxt = children[idx + 1][0] if idx + 1 < len(children) else None
                if idx == 0 and rng.start > region.start:
                    alloc = min(rng.start - region.start, to_alloc)
                    self.alloc_dev_dax_range(dev, region.start, alloc)
                    done = True
                    break
                alloc = 0
                if nxt is not None and nxt.start > rng.end + 1:
                    alloc = min(nxt.start - (rng.end + 1), to_alloc)
                if not alloc and nxt is None and rng.end < region.end:
                    alloc = min(region.end - rng.end, to_alloc)
                if not alloc:
                    continue
                if owner is dev and self.adjust_ok(dev, rng):
                    rng.end += alloc
                else:
                    self.alloc_dev_dax_range(dev, rng.end + 1, alloc)
                done = True
                break
            if not done:
                raise KernelError(errno.ENOSPC)
            to_alloc -= alloc

    # -- per-device stores (bus.c) ------------------------------------------------------------
    def size_store(self, dev: DevDax, buf: str) -> None:
        """R-DAX-SIZE-01."""
        with self.lock:
            val = kstrtoull(buf, 0)
            if not self.alloc_is_aligned(dev, val):
                raise KernelError(errno.EINVAL)
            if not dev.region.enabled:
                raise KernelError(errno.ENXIO)
            self.dev_dax_resize(dev.region, dev, val)

    @staticmethod
    def range_parse(buf: str) -> tuple[int, int]:
        """``<start>-<end>``, both kstrtoull(16) (``0x`` optional), split at the first ``-``."""
        start, sep, end = buf.partition("-")
        if not sep:
            raise KernelError(errno.EINVAL)
        return kstrtoull(start, 16), kstrtoull(end, 16)

    def mapping_store(self, dev: DevDax, buf: str) -> int | None:
        """R-DAX-MAP-01, with its quirks: 0 bytes written when the region is disabled, a
        misaligned length silently ignored, no check of whether the device is bound."""
        with self.lock:
            start, end = self.range_parse(buf)
            if not dev.region.enabled:
                return 0
            to_alloc = (end - start + 1) & U64_MAX  # range_len() in u64
            if self.alloc_is_aligned(dev, to_alloc):
                self.alloc_dev_dax_range(dev, start, to_alloc)
            return None

    @staticmethod
    def dax_align_valid(align: int) -> bool:
        """PUD (x86_64 has PUD-sized THP), PMD or PAGE_SIZE."""
        return align in (PUD_SIZE, PMD_SIZE, 4096)

    def align_store(self, dev: DevDax, buf: str) -> None:
        """R-DAX-ALIGN-01: a parse error is ENXIO, not EINVAL."""
        with self.lock:
            try:
                val = kstrtoul(buf, 0)
            except KernelError:
                raise KernelError(errno.ENXIO) from None
            if not self.dax_align_valid(val):
                raise KernelError(errno.EINVAL)
            if not dev.region.enabled:
                raise KernelError(errno.ENXIO)
            if dev.driver is not None:
                raise KernelError(errno.EBUSY)
            align_save = dev.align
            dev.align = val
            if not all(self.alloc_is_aligned(dev, rng.size) for rng in dev.ranges):  # dev_dax_validate_align
                dev.align = align_save
                raise KernelError(errno.EINVAL)

    def memmap_on_memory_store(self, dev: DevDax, buf: str) -> None:
        """R-DAX-MOM-02: bool, EOPNOTSUPP, EBUSY (kmem and a different value), store."""
        with self.lock:
            val = kstrtobool(buf, enable_disable=self.profile >= (6, 16))
            if val and not self.mhp_supports_memmap_on_memory():
                raise KernelError(errno.EOPNOTSUPP)
            if dev.memmap_on_memory != val and dev.driver is not None and dev.driver.type == DAXDRV_KMEM_TYPE:
                raise KernelError(errno.EBUSY)
            dev.memmap_on_memory = val

    # -- per-region stores (bus.c) ------------------------------------------------------------
    def create_store(self, region: DaxRegion, buf: str) -> None:
        """R-DAX-CREATE-01 and R-DAX-SEED-01."""
        with self.lock:
            if region.is_static:
                raise KernelError(errno.EINVAL)
            if kstrtoint(buf, 0) != 1:
                raise KernelError(errno.EINVAL)
            if region.avail_size() == 0:
                raise KernelError(errno.ENOSPC)
            dev = self.devm_create_dev_dax(region, -1, 0, memmap_on_memory=False)
            if region.seed is None:
                region.seed = dev
            region.youngest = dev

    def delete_store(self, region: DaxRegion, buf: str) -> None:
        """R-DAX-DEL-01: device 0 is never deleted (keeps /sys/bus/dax populated)."""
        with self.lock:
            if region.is_static:
                raise KernelError(errno.EINVAL)
            victim = next((d for d in region.devices.values() if _streq_name(buf, d.name)), None)
            if victim is None:
                raise KernelError(errno.ENXIO)
            if victim.driver is not None or victim.size:
                raise KernelError(errno.EBUSY)
            if victim.id <= 0:
                raise KernelError(errno.EBUSY)
            region.ida.discard(victim.id)  # __free_dev_dax_id()
            if region.seed is victim:
                region.seed = None
            if region.youngest is victim:
                region.youngest = None
            self.unregister_dev_dax(victim)

    # -- matching and probing (bus.c, dd.c) -----------------------------------------------
    def dax_bus_match(self, dev: DevDax, drv: DaxDriver) -> bool:
        """R-DAX-MATCH-01: the dynamic id list, else the type (kmem iff the region is KMEM)."""
        if any(sysfs_streq(dax_id, dev.name) for dax_id in drv.ids):
            return True
        dev_type = DAXDRV_KMEM_TYPE if dev.region.flags & IORESOURCE_DAX_KMEM else DAXDRV_DEVICE_TYPE
        return drv.type == dev_type

    def dax_bus_probe(self, dev: DevDax, drv: DaxDriver) -> None:
        """R-DAX-PROBE-01: size 0 or an invalidated id is ENXIO; the seed is cleared once the
        seed device is bound (R-DAX-SEED-01)."""
        if dev.size == 0 or dev.id < 0:
            raise KernelError(errno.ENXIO)
        injected = self.faults.probe_fail.pop(dev.name, None)
        if injected:
            raise KernelError(injected)
        if drv.name == "kmem":
            self.dev_dax_kmem_probe(dev)
        else:
            self.dev_dax_probe(dev)
        if dev.region.is_static:
            return
        if dev.region.seed is dev:
            dev.region.seed = None

    def dax_bus_remove(self, dev: DevDax) -> None:
        assert dev.driver is not None
        if dev.driver.name == "kmem":
            self.dev_dax_kmem_remove(dev)
        else:
            self.dev_dax_remove(dev)

    def really_probe(self, dev: DevDax, drv: DaxDriver) -> int:
        """0 on success; a probe failure comes back as a positive errno (dd.c)."""
        dev.driver = drv
        try:
            self.dax_bus_probe(dev, drv)
        except KernelError as exc:
            dev.driver = None
            err = exc.errno
            if err not in (errno.ENODEV, errno.ENXIO):  # call_driver_probe()
                self.printk(f"probe with driver {drv.name} failed with error {-err}", LOGLEVEL_ERR,
                            f"{drv.name} {dev.name}: ")
            return err
        drv.bound.append(dev)
        self._dax_uevent("bind", dev)  # driver_bound()
        return 0

    def driver_probe_device(self, drv: DaxDriver, dev: DevDax) -> int:
        """__driver_probe_device(): -ENODEV dead, -EBUSY bound, else really_probe()."""
        if dev.dead or not dev.registered:
            return -errno.ENODEV
        if dev.driver is not None:
            return -errno.EBUSY
        return self.really_probe(dev, drv)

    def device_attach(self, dev: DevDax) -> int:
        """__device_attach(): registered drivers in order until one binds; probe failures
        let the next driver try. 1 bound, 0 nothing bound, negative errno."""
        if dev.dead:
            return 0
        if dev.driver is not None:
            return 1
        for drv in list(self.dax_bus_drivers):
            if not self.dax_bus_match(dev, drv):
                continue
            ret = self.driver_probe_device(drv, dev)
            if ret < 0:
                return ret
            if ret == 0:
                return 1
        return 0

    def driver_attach(self, drv: DaxDriver) -> None:
        """__driver_attach() for every device on the bus; results are ignored."""
        for dev in list(self.dax_devices.values()):
            if self.dax_bus_match(dev, drv):
                self.driver_probe_device(drv, dev)

    def device_release_driver(self, dev: DevDax) -> None:
        """__device_release_driver(): the driver's remove (cannot fail), unbind uevent
        without DRIVER (R-DAX-BIND-02)."""
        drv = dev.driver
        if drv is None:
            return
        self.dax_bus_remove(dev)
        dev.driver = None
        if dev in drv.bound:
            drv.bound.remove(dev)
        self._dax_uevent("unbind", dev)

    def bus_find_device_by_name(self, buf: str) -> DevDax | None:
        return next((d for d in self.dax_devices.values() if _streq_name(buf, d.name)), None)

    def _loaded_driver(self, name: str) -> DaxDriver:
        drv = self.dax_drivers.get(name)
        if drv is None or not drv.loaded:
            raise KernelError(errno.ENODEV)  # the driver's files are gone
        return drv

    # -- bus and driver attributes ------------------------------------------------------------
    def bind_store(self, driver: str, buf: str) -> None:
        """R-DAX-BIND-01: ENODEV unknown or not matching, EBUSY bound, then the probe errno."""
        with self.lock:
            drv = self._loaded_driver(driver)
            dev = self.bus_find_device_by_name(buf)
            if dev is None or not self.dax_bus_match(dev, drv):
                raise KernelError(errno.ENODEV)
            ret = self.driver_probe_device(drv, dev)  # device_driver_attach()
            if ret:
                raise KernelError(abs(ret))

    def unbind_store(self, driver: str, buf: str) -> None:
        """R-DAX-BIND-02: only a device bound to this very driver."""
        with self.lock:
            drv = self._loaded_driver(driver)
            dev = self.bus_find_device_by_name(buf)
            if dev is None or dev.driver is not drv:
                raise KernelError(errno.ENODEV)
            self.device_release_driver(dev)

    def do_id_store(self, driver: str, buf: str, add: bool) -> None:
        """R-DAX-ID-01/02: the exact canonical ``dax<int>.<int>``; new_id then offers the
        driver to every matching unbound device, ignoring probe failures."""
        with self.lock:
            drv = self._loaded_driver(driver)
            region_id, dev_id = parse_dax_id(buf)
            name = f"dax{region_id}.{dev_id}"
            present = name in drv.ids
            if add and not present:
                drv.ids.insert(0, name)  # list_add()
            elif not add and present:
                drv.ids.remove(name)
            if add:
                self.driver_attach(drv)

    def new_id_store(self, driver: str, buf: str) -> None:
        self.do_id_store(driver, buf, add=True)

    def remove_id_store(self, driver: str, buf: str) -> None:
        self.do_id_store(driver, buf, add=False)

    def drivers_probe_store(self, buf: str) -> None:
        """R-BUS-04: ENODEV for an unknown name, otherwise success whatever happened."""
        with self.lock:
            dev = self.bus_find_device_by_name(buf)
            if dev is None:
                raise KernelError(errno.ENODEV)
            if dev.driver is None and self.device_attach(dev) < 0:  # bus_rescan_devices_helper
                raise KernelError(errno.EINVAL)

    def drivers_autoprobe_store(self, buf: str) -> None:
        """R-BUS-03: 0 iff the first character is ``0``."""
        with self.lock:
            self.dax_drivers_autoprobe = buf[:1] != "0"

    def param_set_region_idle(self, buf: str) -> None:
        """drivers/dax/hmem/hmem.c module_param_named(region_idle, ..., bool, 0644):
        kernel/params.c param_set_bool(); read when an hmem region is created (R-DAXC-02)."""
        self.dax_hmem_region_idle = kstrtobool(buf, enable_disable=self.profile >= (6, 16))

    # -- driver registration (module load/unload) ---------------------------------------------
    def dax_driver_register(self, name: str) -> None:
        """modprobe: bus_add_driver() (autoprobe attach, driver ``add`` uevent), then the
        module's ``add`` uevent once it is live."""
        with self.lock:
            drv = self.dax_drivers[name]
            if drv.loaded:
                raise KernelError(errno.EEXIST)
            drv.loaded = True
            drv.ids = []
            self.dax_bus_drivers.append(drv)
            if self.dax_drivers_autoprobe:
                self.driver_attach(drv)
            self.uevent("add", f"/bus/dax/drivers/{name}", "drivers")
            self.uevent("add", f"/module/{name}", "module")

    def dax_driver_unregister(self, name: str) -> None:
        """rmmod: dax_driver_unregister() forgets the ids (R-DAX-ID-03), driver_detach()
        releases the bound devices, newest first."""
        with self.lock:
            drv = self.dax_drivers[name]
            if not drv.loaded:
                raise KernelError(errno.ENOENT)
            drv.ids = []
            self.dax_bus_drivers.remove(drv)
            for dev in reversed(list(drv.bound)):
                self.device_release_driver(dev)
            drv.loaded = False
            self.uevent("remove", f"/bus/dax/drivers/{name}", "drivers")
            self.uevent("remove", f"/module/{name}", "module")

    # -- memory tiers (mm/memory-tiers.c) ---------------------------------------------------
    def mt_calc_adistance(self, dev: DevDax) -> int:
        """Firmware performance data (the producer's, else the node's) or kmem's default."""
        if dev.region.adistance is not None:
            return dev.region.adistance
        for ncfg in self.config.nodes:
            if ncfg.id == dev.target_node and ncfg.adistance is not None and not ncfg.memory:
                return ncfg.adistance
        return KMEM_DEFAULT_ADISTANCE

    def _node_has_boot_memtype(self, nid: int) -> bool:
        """Boot memory nodes got the DRAM (or firmware) type at memory_tier_init()."""
        return any(ncfg.id == nid and ncfg.memory for ncfg in self.config.nodes)

    def init_node_memory_type(self, nid: int, adistance: int) -> None:
        """The first association sets the node's type; equal types count users."""
        node = self.nodes.get(nid)
        if node is None or self._node_has_boot_memtype(nid):
            return
        if node.memtype_users == 0:
            node.adistance = adistance
        if node.adistance == adistance:
            node.memtype_users += 1

    def clear_node_memory_type(self, nid: int, adistance: int) -> None:
        node = self.nodes.get(nid)
        if node is None or self._node_has_boot_memtype(nid):
            return
        if node.adistance == adistance and node.memtype_users:
            node.memtype_users -= 1
        if not node.memtype_users:
            node.adistance = None

    # -- kmem (drivers/dax/kmem.c) ----------------------------------------------------------
    def dax_kmem_range(self, dev: DevDax, i: int) -> tuple[int, int] | None:
        """R-KMEM-03: round the start up and the end down to whole memory blocks."""
        rng = dev.ranges[i]
        bs = self.block_size
        start = -(-rng.start // bs) * bs
        end = (rng.end + 1) // bs * bs - 1
        if start >= end:
            return None
        return start, end

    def dev_dax_kmem_probe(self, dev: DevDax) -> None:
        """R-KMEM-01..08."""
        numa_node = dev.target_node
        if numa_node < 0:
            self.printk(f"rejecting DAX region with invalid node: {numa_node}", prefix=f"kmem {dev.name}: ")
            raise KernelError(errno.EINVAL)
        adist = self.mt_calc_adistance(dev)
        total_len = orig_len = 0
        for i, rng in enumerate(dev.ranges):
            orig_len += rng.size
            aligned = self.dax_kmem_range(dev, i)
            if aligned is None:
                self.printk(f"mapping{i}: {_hex(rng.start)}-{_hex(rng.end)} too small after alignment",
                            LOGLEVEL_INFO, f"kmem {dev.name}: ")  # dev_info()
                continue
            total_len += aligned[1] - aligned[0] + 1
        if not total_len:
            self.printk("rejecting DAX region without any memory after alignment", prefix=f"kmem {dev.name}: ")
            raise KernelError(errno.EINVAL)
        if total_len != orig_len and self.profile >= (6, 16):
            self.printk(f"DAX region truncated by {string_get_size(orig_len - total_len)} due to alignment",
                        prefix=f"kmem {dev.name}: ")
        self.init_node_memory_type(numa_node, adist)
        try:
            mgid = self.memory_group_register_static(numa_node, -(-total_len // self.page_size))
        except KernelError:
            self.clear_node_memory_type(numa_node, adist)
            raise
        data = KmemData(dev.name, mgid, adist, numa_node, [None] * len(dev.ranges))
        mapped = 0
        for i in range(len(dev.ranges)):
            aligned = self.dax_kmem_range(dev, i)
            if aligned is None:
                continue
            start, end = aligned
            size = end - start + 1
            # "Region is permanently reserved if hotremove fails." System RAM flags, not
            # busy, so that add_memory_driver_managed() nests under it (R-KMEM-08).
            res = self.request_mem_region(start, size, data.res_name, busy=False)
            if res is None:
                self.printk(f"mapping{i}: {_hex(start)}-{_hex(end)} could not reserve region",
                            prefix=f"kmem {dev.name}: ")
                if mapped:
                    continue
                self._kmem_probe_unwind(data)
                raise KernelError(errno.EBUSY)
            data.res[i] = res
            flags = MHP_NID_IS_MGID
            if dev.memmap_on_memory:
                flags |= MHP_MEMMAP_ON_MEMORY
            try:
                self.add_memory_driver_managed(mgid, start, size, KMEM_RES_NAME, flags)
            except KernelError:
                self.printk(f"mapping{i}: {_hex(start)}-{_hex(end)} memory add failed", prefix=f"kmem {dev.name}: ")
                self.resources.release(res)
                data.res[i] = None
                if mapped:
                    continue
                self._kmem_probe_unwind(data)
                raise
            mapped += 1
        dev.kmem = data

    def _kmem_probe_unwind(self, data: KmemData) -> None:
        """R-KMEM-07: err_request_mem -> memory_group_unregister, clear_node_memory_type."""
        self.memory_group_unregister(data.mgid)
        self.clear_node_memory_type(data.nid, data.adistance)

    def dev_dax_kmem_remove(self, dev: DevDax) -> None:
        """R-KMEM-09..11: one shot per range; memory that stays is leaked until reboot."""
        data = dev.kmem
        assert data is not None
        success = 0
        for i in range(len(dev.ranges)):
            aligned = self.dax_kmem_range(dev, i)
            if aligned is None:
                continue  # R-KMEM-10: counts as "not removed"
            start, end = aligned
            # A range the device gained after probe (a ``mapping`` write does not check the
            # binding) has no slot: kmem.c reads past its struct_size()d array there. Here it
            # is what it is, a range kmem never added.
            res = data.res[i] if i < len(data.res) else None
            if res is None:
                # This range's add failed at probe time, so nothing was added. (The kernel
                # would call remove_memory() and then remove_resource(NULL).)
                success += 1
                continue
            try:
                self.remove_memory(start, end - start + 1)
            except KernelError:
                dev.hotremove_failed = True
                self.kmem_any_hotremove_failed = True
                self.printk(f"mapping{i}: {_hex(start)}-{_hex(end)} cannot be hotremoved until the next reboot",
                            LOGLEVEL_ERR, f"kmem {dev.name}: ")
                continue
            self.resources.release(res)
            data.res[i] = None
            success += 1
        dev.kmem = None
        if success >= len(dev.ranges):
            self.memory_group_unregister(data.mgid)
            self.clear_node_memory_type(data.nid, data.adistance)
        else:
            dev.kmem_leaked.append(data)

    # -- device_dax (drivers/dax/device.c) --------------------------------------------------
    def dev_dax_probe(self, dev: DevDax) -> None:
        """R-DEVDAX-01: claim every range as ``daxX.Y``; a conflict is EBUSY."""
        if dev.region.is_static and len(dev.ranges) > 1:
            raise KernelError(errno.EINVAL)  # "static pgmap / multi-range device conflict"
        claims: list[Resource] = []
        try:
            for i, rng in enumerate(dev.ranges):
                res = self.request_mem_region(rng.start, rng.size, dev.name, busy=True)
                if res is None:
                    self.printk(f"mapping{i}: {_hex(rng.start)}-{_hex(rng.end)} could not reserve range",
                                prefix=f"device_dax {dev.name}: ")
                    raise KernelError(errno.EBUSY)
                claims.append(res)
            for rng in dev.ranges:  # devm_memremap_pages() -> pagemap_range()
                if not self.mhp_range_allowed(rng.start, rng.size):
                    raise KernelError(errno.EINVAL)
        except KernelError:
            for claim in reversed(claims):  # devm unwinding
                self.resources.release(claim)
            raise
        dev.claims = claims

    def dev_dax_remove(self, dev: DevDax) -> None:
        """All probe actions are devm: the claims go with the unbind."""
        for claim in reversed(dev.claims):
            self.resources.release(claim)
        dev.claims = []


def _namespace_ids(namespace: str) -> tuple[int, int]:
    """``namespaceR.S`` -> (R, S), as ``sscanf(dev_name, "namespace%d.%d")``."""
    body = namespace.removeprefix("namespace")
    region, _, dev = body.partition(".")
    return int(region), int(dev)


__all__ = [
    "DAXDRV_DEVICE_TYPE",
    "DAXDRV_KMEM_TYPE",
    "IORESOURCE_DAX_KMEM",
    "IORESOURCE_DAX_STATIC",
    "DaxDriver",
    "DaxMixin",
    "DaxRegion",
    "DevDax",
    "DevDaxRange",
    "KmemData",
    "ProducerDevice",
]
