"""``/sys/bus/dax``, the dax devices under their producers' devices, ``/sys/dev/char`` and
the dax modules (docs/abi.md "The dax bus"; docs/clients.md "daxctl").

Every store here hands the text to the engine function of the same kernel name (``bind_store``,
``size_store``, ...); this module only decides which files exist, with which modes, and
where links point, each device directory as an attribute group with its visibility function
(``group.py``; ``dev_dax_visible``, ``dax_region_visible``). There is deliberately no
``/sys/class/dax``: daxctl would switch to the old dax-class model (docs/clients.md "daxctl").
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING

from ..errors import KernelError
from .common import BusDevicesDir, const, engine_store, link, power_dir, rw, simple_bus, uevent_attr, wo
from .group import Children, Dynamic, Entry, Group, GroupDir, Layout, attr_ro, attr_rw, attr_wo
from .tree import Dir, MergedDir, Node, StaticDir

if TYPE_CHECKING:
    from ..engine import Kernel
    from ..engine.dax import DaxDriver, DaxRegion, DevDax, DevDaxRange, ProducerDevice

DAX_BUS = "/bus/dax"
PLATFORM = "/devices/platform"
DEV_CHAR = "/dev/char"


def _hex(value: int) -> str:
    """Kernel ``%#llx``: lib/vsprintf.c number() always prints ``0x`` in base 16, so zero is
    ``0x0`` (unlike glibc)."""
    return f"{value:#x}"


# -- dax devices --------------------------------------------------------------------------------
def _mapping_show(value: Callable[[DevDaxRange], int]) -> Callable[[MappingDir], str]:
    def show(d: MappingDir) -> str:
        if d.rng.mapping is None or d.rng.mapping != d.mapping_id:
            raise KernelError(errno.ENXIO)  # get_dax_range(): the mapping is being torn down
        return _hex(value(d.rng)) + "\n"

    return show


#: drivers/dax/bus.c dax_mapping_attributes (0400 each), with uevent and power/ from the core.
dax_mapping_attribute_group: Group[MappingDir] = Group([
    attr_ro("end", _mapping_show(lambda r: r.end), 0o400),
    attr_ro("page_offset", _mapping_show(lambda r: r.pgoff), 0o400),
    Entry("power", lambda d: power_dir(d.k, d.devpath)),
    attr_ro("start", _mapping_show(lambda r: r.start), 0o400),
    Entry("uevent", lambda d: uevent_attr(d.k, d.devpath, None)),
])


class MappingDir(GroupDir):
    """``daxX.Y/mappingN/`` (1.9): no bus, so no ``subsystem`` link and no uevents."""

    __slots__ = ("dev", "k", "mapping_id", "rng")
    k: Kernel
    dev: DevDax
    rng: DevDaxRange
    mapping_id: int | None

    layout = Layout(dax_mapping_attribute_group)

    def __init__(self, k: Kernel, dev: DevDax, rng: DevDaxRange) -> None:
        self.k = k
        self.dev = dev
        self.rng = rng
        self.mapping_id = rng.mapping

    @property
    def devpath(self) -> str:
        return f"{self.dev.devpath}/mapping{self.mapping_id}"


def dev_dax_visible(d: DevDaxDir, attr: Entry[DevDaxDir]) -> int:
    """drivers/dax/bus.c dev_dax_visible(): static (pmem) devices have a read-only ``size`` and
    ``align`` and no ``mapping``. Also here: ``memmap_on_memory`` came with the 6.9 dax ABI
    series, and the ``driver`` link exists while bound (drivers/base/dd.c driver_sysfs_add)."""
    dev, name = d.dev, attr.name
    if name == "target_node" and dev.target_node < 0:
        return 0
    if name == "mapping" and dev.region.is_static:
        return 0
    if (name == "align" or name == "size") and dev.region.is_static:
        return 0o444
    if name == "memmap_on_memory" and d.k.profile < (6, 9):
        return 0
    if name == "driver" and dev.driver is None:
        return 0
    return attr.mode


def _driver_link(d: DevDaxDir) -> Node:
    assert d.dev.driver is not None  # dev_dax_visible()
    return link(d.dev.devpath, f"{DAX_BUS}/drivers/{d.dev.driver.name}")


def _mapping(d: DevDaxDir, mapping_id: int) -> Node | None:
    rng = d.dev.range_of_mapping(mapping_id)
    return MappingDir(d.k, d.dev, rng) if rng is not None else None


#: drivers/dax/bus.c dev_dax_attribute_group, with the driver core's files (dev, driver,
#: power/, subsystem, uevent) and the ``mappingN`` children (devm_register_dax_mapping).
dev_dax_attribute_group: Group[DevDaxDir] = Group([
    attr_rw("align", lambda d: f"{d.dev.align}\n", lambda d, buf: d.k.align_store(d.dev, buf)),
    attr_ro("dev", lambda d: f"{d.k.dax_major}:{d.dev.minor}\n"),
    Entry("driver", _driver_link),
    attr_wo("mapping", lambda d, buf: d.k.mapping_store(d.dev, buf)),
    Children("mapping", lambda d: d.dev.mapping_ids, _mapping),
    attr_rw("memmap_on_memory", lambda d: f"{int(d.dev.memmap_on_memory)}\n",
            lambda d, buf: d.k.memmap_on_memory_store(d.dev, buf)),
    attr_ro("modalias", lambda _d: "dax:t0\n"),
    attr_ro("numa_node", lambda d: f"{d.dev.numa_node}\n"),
    Entry("power", lambda d: power_dir(d.k, d.dev.devpath)),
    attr_ro("resource", lambda d: _hex(d.dev.ranges[0].start if d.dev.ranges else d.dev.region.start) + "\n", 0o400),
    attr_rw("size", lambda d: f"{d.dev.size}\n", lambda d, buf: d.k.size_store(d.dev, buf)),
    Entry("subsystem", lambda d: link(d.dev.devpath, DAX_BUS)),
    attr_ro("target_node", lambda d: f"{d.dev.target_node}\n"),
    Entry("uevent", lambda d: uevent_attr(d.k, d.dev.devpath, "dax", partial(d.k.dev_dax_uevent_env, d.dev))),
], dev_dax_visible)


class DevDaxDir(GroupDir):
    """``daxX.Y/`` (1.8), declared in ``dev_dax_attribute_group``."""

    __slots__ = ("dev", "k")
    k: Kernel
    dev: DevDax

    layout = Layout(dev_dax_attribute_group)

    def __init__(self, k: Kernel, dev: DevDax) -> None:
        self.k = k
        self.dev = dev

    def alive(self) -> bool:
        """kernfs: a file of a deleted device fails with ENODEV, even if it was open; power/
        and the rest of an open file's directory go with the device."""
        return self.k.dax_devices.get(self.dev.name) is self.dev


# -- dax_region/ and the producers' devices ------------------------------------------------------
def dax_region_visible(d: DaxRegionDir, attr: Entry[DaxRegionDir]) -> int:
    """drivers/dax/bus.c dax_region_visible(): a static region hides the four files that
    create and delete devices."""
    if d.region.is_static and attr.name in ("available_size", "create", "delete", "seed"):
        return 0
    return attr.mode


def _name_of(dev: DevDax | None) -> str:
    return (dev.name if dev is not None else "") + "\n"


#: drivers/dax/bus.c dax_region_attribute_group (1.10).
dax_region_attribute_group: Group[DaxRegionDir] = Group([
    attr_ro("align", lambda d: f"{d.region.align}\n", 0o400),
    attr_ro("id", lambda d: f"{d.region.id}\n"),
    attr_ro("size", lambda d: f"{d.region.size}\n"),
    attr_ro("available_size", lambda d: f"{d.region.avail_size()}\n"),
    attr_rw("create", lambda d: _name_of(d.region.youngest), lambda d, buf: d.k.create_store(d.region, buf)),
    attr_wo("delete", lambda d, buf: d.k.delete_store(d.region, buf)),
    attr_ro("seed", lambda d: _name_of(d.region.seed)),
], dax_region_visible)


class DaxRegionDir(GroupDir):
    """``<parent>/dax_region/``, declared in ``dax_region_attribute_group``."""

    __slots__ = ("k", "region")
    k: Kernel
    region: DaxRegion

    layout = Layout(dax_region_attribute_group)

    def __init__(self, k: Kernel, region: DaxRegion) -> None:
        self.k = k
        self.region = region


def producer_visible(d: ProducerDeviceDir, entry: Entry[ProducerDeviceDir]) -> int:
    """What a producer device has (drivers/base/core.c device_add; drivers/base/dd.c
    driver_sysfs_add; drivers/base/platform.c platform_dev_attrs, platform_dev_attrs_visible)."""
    pdev, name = d.pdev, entry.name
    if name == "dax_region":
        return entry.mode if pdev.region is not None else 0
    if name == "driver":
        return entry.mode if pdev.driver and pdev.bus else 0
    if name == "modalias":  # platform_dev_attrs; cxl_base_attributes of every CXL device
        return entry.mode if pdev.bus in ("platform", "cxl") else 0
    if name == "devtype":  # cxl_base_attributes (drivers/cxl/core/port.c)
        return entry.mode if pdev.bus == "cxl" else 0
    if name == "numa_node":
        return entry.mode if pdev.bus == "platform" and pdev.numa_node is not None and pdev.numa_node >= 0 else 0
    if name == "subsystem":
        return entry.mode if pdev.bus else 0
    return entry.mode


def _producer_children(d: ProducerDeviceDir) -> list[str]:
    """Further producer devices, then the region's dax devices."""
    names = [p.name for p in d.k.dax_producer_devices.values() if p.parent == d.pdev.devpath]
    region = d.pdev.region
    return names + [dev.name for dev in region.devices.values()] if region is not None else names


def _producer_child(d: ProducerDeviceDir, name: str) -> Node | None:
    """A child producer device (by devpath: O(1), not a scan; the path to a dax device passes
    five of these), else a dax device."""
    sub = d.k.dax_producer_devices.get(f"{d.pdev.devpath}/{name}")
    if sub is not None:
        return producer_dir(d.k, sub)
    region = d.pdev.region
    if region is not None:
        for dev in region.devices.values():
            if dev.name == name:
                return DevDaxDir(d.k, dev)
    return None


#: A producer's device (``hmem.0``, ``region0``, ``dax_region0``, ...): the driver core's files
#: and ``dax_region/`` on the owner of a region (drivers/dax/bus.c dax_region_attribute_group).
producer_device_group: Group[ProducerDeviceDir] = Group([
    Entry("dax_region", lambda d: DaxRegionDir(d.k, d.region)),
    attr_ro("devtype", lambda d: f"{d.pdev.devtype}\n"),
    Entry("driver", lambda d: link(d.pdev.devpath, f"/bus/{d.pdev.bus}/drivers/{d.pdev.driver}")),
    attr_ro("modalias", lambda d: f"{d.pdev.modalias}\n"),
    attr_ro("numa_node", lambda d: f"{d.pdev.numa_node}\n"),
    Entry("power", lambda d: power_dir(d.k, d.pdev.devpath)),
    Entry("subsystem", lambda d: link(d.pdev.devpath, f"/bus/{d.pdev.bus}")),
    Entry("uevent", lambda d: uevent_attr(d.k, d.pdev.devpath, d.pdev.bus, d.pdev.uevent_env)),
], producer_visible)
#: Its children, always there (a group of their own keeps producer_visible off the path).
producer_children_group: Group[ProducerDeviceDir] = Group([Dynamic("devices", _producer_children, _producer_child)])


class ProducerDeviceDir(GroupDir):
    """A device above the dax devices: ``producer_device_group``, then its children (further
    producer devices, then dax devices)."""

    __slots__ = ("k", "pdev")
    k: Kernel
    pdev: ProducerDevice

    layout = Layout(producer_device_group, producer_children_group)

    def __init__(self, k: Kernel, pdev: ProducerDevice) -> None:
        self.k = k
        self.pdev = pdev

    @property
    def region(self) -> DaxRegion:
        assert self.pdev.region is not None  # producer_visible()
        return self.pdev.region


#: Directory makers of devices with attributes of their own, tried in order before the plain
#: ``ProducerDeviceDir``: sysfs/cxl.py registers the CXL devices' (None: not one of its own).
PRODUCER_DIRS: list[Callable[[Kernel, ProducerDevice], Node | None]] = []


def producer_dir(k: Kernel, pdev: ProducerDevice) -> Node:
    """A producer device's directory (a CXL device's shows its CXL attributes: sysfs/cxl.py)."""
    for make in PRODUCER_DIRS:
        node = make(k, pdev)
        if node is not None:
            return node
    return ProducerDeviceDir(k, pdev)


class PlatformDevicesDir(Dir):
    """The producers' top-level devices under ``/sys/devices/platform``."""

    __slots__ = ("k",)

    def __init__(self, k: Kernel) -> None:
        self.k = k

    def _devices(self) -> dict[str, ProducerDevice]:
        return {p.name: p for p in self.k.dax_producer_devices.values() if p.parent == PLATFORM}

    def names(self) -> Iterable[str]:
        return list(self._devices())

    def child(self, name: str) -> Node | None:
        pdev = self.k.dax_producer_devices.get(f"{PLATFORM}/{name}")
        return producer_dir(self.k, pdev) if pdev is not None else None


class ProducerDriversDir(Dir):
    """``/sys/bus/<bus>/drivers``: one directory per driver bound to a producer device."""

    __slots__ = ("bus", "k")

    def __init__(self, k: Kernel, bus: str) -> None:
        self.k = k
        self.bus = bus

    def _members(self, driver: str) -> list[ProducerDevice]:
        return [p for p in self.k.dax_producer_devices.values() if p.bus == self.bus and p.driver == driver]

    def names(self) -> Iterable[str]:
        return sorted({p.driver for p in self.k.dax_producer_devices.values() if p.bus == self.bus and p.driver})

    def child(self, name: str) -> Node | None:
        members = self._members(name)
        if not members:
            return None
        here = f"/bus/{self.bus}/drivers/{name}"
        entries: dict[str, Node] = {"uevent": uevent_attr(self.k, here, "drivers", mode=0o200)}
        entries.update({p.name: link(here, p.devpath) for p in members})
        return StaticDir(entries)


def producer_bus(k: Kernel, bus: str) -> Callable[[], Node | None]:
    """``/sys/bus/{platform,cxl,nd}`` with the producers' devices and their drivers, so that
    their ``subsystem``/``driver`` links resolve (udev walks them). ``platform`` always
    exists; the others while some producer device sits on them."""

    def members() -> dict[str, str]:
        return {p.name: p.devpath for p in k.dax_producer_devices.values() if p.bus == bus}

    devices = BusDevicesDir(f"/bus/{bus}/devices", lambda: list(members()), lambda name: members().get(name))
    directory = simple_bus(k, bus, devices, ProducerDriversDir(k, bus))

    def build() -> Node | None:
        return directory if bus == "platform" or members() else None

    return build


# -- /sys/bus/dax -------------------------------------------------------------------------------
def _bound_device(d: DaxDriverDir, name: str) -> Node | None:
    for dev in d.drv.bound:
        if dev.name == name:
            return link(d.devpath, dev.devpath)
    return None


#: drivers/base/bus.c driver_attrs (bind, unbind, uevent), drivers/dax/bus.c dax_drv_attrs
#: (new_id, remove_id), module_add_driver()'s ``module`` link and one link per bound device;
#: nothing once the module is unloaded.
dax_drv_group: Group[DaxDriverDir] = Group([
    attr_wo("bind", lambda d, buf: d.k.bind_store(d.drv.name, buf)),
    Entry("module", lambda d: link(d.devpath, f"/module/{d.drv.name}")),
    attr_wo("new_id", lambda d, buf: d.k.new_id_store(d.drv.name, buf)),
    attr_wo("remove_id", lambda d, buf: d.k.remove_id_store(d.drv.name, buf)),
    Entry("uevent", lambda d: uevent_attr(d.k, d.devpath, "drivers", mode=0o200)),
    attr_wo("unbind", lambda d, buf: d.k.unbind_store(d.drv.name, buf)),
    Dynamic("devices", lambda d: [dev.name for dev in d.drv.bound], _bound_device),
], lambda d, entry: entry.mode if d.drv.loaded else 0)


class DaxDriverDir(GroupDir):
    """``/sys/bus/dax/drivers/<name>/`` (1.7), declared in ``dax_drv_group``."""

    __slots__ = ("drv", "k")
    k: Kernel
    drv: DaxDriver

    layout = Layout(dax_drv_group)

    def __init__(self, k: Kernel, drv: DaxDriver) -> None:
        self.k = k
        self.drv = drv

    @property
    def devpath(self) -> str:
        return f"{DAX_BUS}/drivers/{self.drv.name}"


class DaxDriversDir(Dir):
    __slots__ = ("k",)

    def __init__(self, k: Kernel) -> None:
        self.k = k

    def names(self) -> Iterable[str]:
        return [drv.name for drv in self.k.dax_bus_drivers]

    def child(self, name: str) -> Node | None:
        drv = self.k.dax_drivers.get(name)
        return DaxDriverDir(self.k, drv) if drv is not None and drv.loaded else None


def _dax_device_names(k: Kernel) -> list[str]:
    return [dev.name for dev in sorted(k.dax_devices.values(), key=lambda d: (d.region.id, d.id, d.name))]


def dax_bus(k: Kernel) -> StaticDir:
    """``/sys/bus/dax`` (1.7)."""
    here = f"{DAX_BUS}/devices"
    devices = BusDevicesDir(
        here,
        lambda: _dax_device_names(k),
        lambda name: dev.devpath if (dev := k.dax_devices.get(name)) is not None else None,
    )
    return StaticDir({
        "devices": devices,
        "drivers": DaxDriversDir(k),
        "drivers_autoprobe": rw(lambda: "1\n" if k.dax_drivers_autoprobe else "0\n",
                                engine_store(k.drivers_autoprobe_store)),
        "drivers_probe": wo(engine_store(k.drivers_probe_store)),
        "uevent": uevent_attr(k, DAX_BUS, "bus", mode=0o200),
    })


# -- /sys/dev/char and /sys/module ------------------------------------------------------------
class DevCharDir(Dir):
    """``/sys/dev/char/MAJ:MIN`` -> the device (``../../devices/...``)."""

    __slots__ = ("k",)

    def __init__(self, k: Kernel) -> None:
        self.k = k

    def names(self) -> Iterable[str]:
        devs = sorted(self.k.dax_devices.values(), key=lambda d: d.minor)
        return [f"{self.k.dax_major}:{dev.minor}" for dev in devs]

    def child(self, name: str) -> Node | None:
        for dev in self.k.dax_devices.values():
            if name == f"{self.k.dax_major}:{dev.minor}":
                return link(DEV_CHAR, dev.devpath)
        return None


def dax_module(k: Kernel, name: str) -> Callable[[], Node | None]:
    """``/sys/module/<kmem|device_dax>`` while loaded: ``initstate`` is exactly ``live\\n``
    (libkmod; docs/clients.md "daxctl")."""
    here = f"/module/{name}"

    def build() -> Node | None:
        if not k.dax_drivers[name].loaded:
            return None
        return StaticDir({
            "drivers": StaticDir({f"dax:{name}": link(f"{here}/drivers", f"{DAX_BUS}/drivers/{name}")}),
            "holders": StaticDir(),
            "initstate": const("live\n"),
            "refcnt": const("0\n"),
            "uevent": uevent_attr(k, here, "module", mode=0o200),
        })

    return build


def dax_hmem_module(k: Kernel) -> StaticDir:
    """``/sys/module/dax_hmem``: the ``region_idle`` parameter (0644 bool, R-DAXC-02)."""

    return StaticDir({
        "parameters": StaticDir({
            "region_idle": rw(lambda: "Y\n" if k.dax_hmem_region_idle else "N\n",
                              engine_store(k.param_set_region_idle)),
        }),
        "uevent": uevent_attr(k, "/module/dax_hmem", "module", mode=0o200),
    })


def add_dax_entries(root: StaticDir, k: Kernel) -> None:
    """Hang the dax parts into the root that ``build_root`` made."""
    bus = root.entries["bus"]
    devices = root.entries["devices"]
    dev = root.entries["dev"]
    module = root.entries["module"]
    assert isinstance(bus, StaticDir) and isinstance(devices, StaticDir)
    assert isinstance(dev, StaticDir) and isinstance(module, StaticDir)
    bus.entries["dax"] = dax_bus(k)
    for name in ("platform", "cxl", "nd"):
        bus.entries[name] = producer_bus(k, name)
    platform = devices.entries["platform"]
    assert isinstance(platform, StaticDir)
    devices.entries["platform"] = MergedDir(platform, PlatformDevicesDir(k))
    dev.entries["char"] = DevCharDir(k)
    module.entries["device_dax"] = dax_module(k, "device_dax")
    module.entries["kmem"] = dax_module(k, "kmem")
    module.entries["dax_hmem"] = dax_hmem_module(k)


__all__ = ["DevDaxDir", "add_dax_entries", "dax_bus"]
