"""``/sys/bus/cxl`` and the CXL devices' directories (docs/cxl.md; engine/cxl.py).

Each CXL device is a producer device (sysfs/dax.py ``ProducerDeviceDir`` lists and finds its
children); ``CxlDeviceDir`` gives it the attributes of its kernel type, declared as the
kernel declares them (drivers/cxl/core/port.c ``cxl_decoder_base_attrs``,
``cxl_decoder_root_attrs``, ``cxl_decoder_switch_attrs``, ``cxl_decoder_endpoint_attrs``,
``cxl_port_attrs``; core/memdev.c ``cxl_memdev_attributes``; core/region.c
``cxl_region_attrs``), one group with one visibility function.

Values follow the kernel's formats: ``%#llx`` (``0x0`` for zero), ``%pa`` for ``dpa_size``
(``0x`` and 16 digits), ``1``/``0`` for the decoder flags.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..engine.cxl import CXL_DRIVERS, CxlDecoder, CxlMemdev, CxlPort, CxlRegion
from .common import BusDevicesDir, link, power_dir, ro, rw, simple_bus, uevent_attr, wo
from .dax import PRODUCER_DIRS, ProducerDeviceDir, producer_bus, producer_children_group
from .group import Attribute, Dynamic, Entry, Group, GroupDir, Layout, attr_ro, attr_rw, attr_wo, suffix_id
from .tree import Dir, Node, StaticDir

if TYPE_CHECKING:
    from ..engine import Kernel
    from ..engine.cxl import CxlObject
    from ..engine.dax import ProducerDevice

CXL_BUS = "/bus/cxl"
U64_MAX = (1 << 64) - 1


def _hex(value: int) -> str:
    """``%#llx``: lib/vsprintf.c prints ``0x0`` for zero."""
    return f"{value:#x}\n"


def _flag(value: bool) -> str:
    return "1\n" if value else "0\n"


class CxlDeviceDir(GroupDir):
    """A device on the cxl bus: the driver core's files, the type's attributes, its children."""

    __slots__ = ("k", "obj", "pdev")
    k: Kernel
    pdev: ProducerDevice
    obj: CxlObject

    def __init__(self, k: Kernel, pdev: ProducerDevice, obj: CxlObject) -> None:
        self.k = k
        self.pdev = pdev
        self.obj = obj

    def alive(self) -> bool:
        return self.k.cxl_objects.get(self.pdev.devpath) is self.obj

    # typed views for the show functions (the visibility function guarantees the type)
    @property
    def port(self) -> CxlPort:
        assert isinstance(self.obj, CxlPort)
        return self.obj

    @property
    def dec(self) -> CxlDecoder:
        assert isinstance(self.obj, CxlDecoder)
        return self.obj

    @property
    def mem(self) -> CxlMemdev:
        assert isinstance(self.obj, CxlMemdev)
        return self.obj

    @property
    def region(self) -> CxlRegion:
        assert isinstance(self.obj, CxlRegion)
        return self.obj


_PORT = ("decoders_committed", "uport", "parent_dport", "dport")
_DECODER = ("start", "size", "locked", "interleave_granularity", "interleave_ways")
_ROOT_DECODER = ("cap_pmem", "cap_ram", "cap_type2", "cap_type3", "target_list", "qos_class",
                 "create_pmem_region", "create_ram_region", "delete_region")
_SWITCH_DECODER = ("target_type", "target_list", "region")
_ENDPOINT_DECODER = ("target_type", "mode", "dpa_size", "dpa_resource", "region")
_MEMDEV = ("dev", "serial", "firmware_version", "payload_max", "label_storage_size", "numa_node", "ram", "pmem",
           "security")
_REGION = ("uuid", "commit", "interleave_ways", "interleave_granularity", "size", "resource", "mode", "target")
_CORE = ("devtype", "modalias", "power", "subsystem", "uevent")


def cxl_visible(d: CxlDeviceDir, entry: Entry[CxlDeviceDir]) -> int:
    """Which attributes a device has: by its type, as the kernel's groups and their
    is_visible functions (cxl_root_decoder_visible(): the create files need cap_type3 and
    the matching capability; cxl_region_target_visible(): ``targetN`` for N < ways)."""
    obj, name = d.obj, entry.name
    if name in _CORE:
        return entry.mode
    if name == "driver":
        return entry.mode if d.pdev.driver else 0
    if isinstance(obj, CxlPort):
        if name == "parent_dport":
            return entry.mode if obj.parent_dport is not None else 0
        return entry.mode if name in _PORT else 0
    if isinstance(obj, CxlDecoder):
        if name in _DECODER:
            return entry.mode
        names = {"root": _ROOT_DECODER, "switch": _SWITCH_DECODER, "endpoint": _ENDPOINT_DECODER}[obj.kind]
        if name == "create_ram_region" and not obj.cap_ram:
            return 0
        if name == "create_pmem_region" and not obj.cap_pmem:
            return 0
        return entry.mode if name in names else 0
    if isinstance(obj, CxlMemdev):
        return entry.mode if name in _MEMDEV else 0
    if isinstance(obj, CxlRegion):
        if name == "uuid" and obj.mode == "ram":
            return 0o444  # cxl_region_visible(): a ram region's uuid is read-only and empty
        if name == "mode":
            return 0o444  # DEVICE_ATTR_RO(mode) of a region (0644 on an endpoint decoder)
        if name in ("size", "interleave_ways", "interleave_granularity"):
            return 0o644  # DEVICE_ATTR_RW of a region (0444 on a decoder)
        return entry.mode if name in _REGION else 0
    return 0


def _dport_link(d: CxlDeviceDir, name: str) -> Node | None:
    dport = d.port.dports.get(int(name[5:])) if name[5:].isascii() and name[5:].isdigit() else None
    return link(d.port.devpath, dport.devpath) if dport is not None and f"dport{dport.id}" == name else None


def _target_list(dec: CxlDecoder) -> str:
    """emit_target_list(): the dport ids of target[0..ways-1], comma separated."""
    return ",".join(str(t) for t in dec.targets[: dec.ways]) + "\n"


def _region_name(dec: CxlDecoder) -> str:
    return (dec.region.name if dec.region is not None else "") + "\n"


def _target_show(d: CxlDeviceDir, name: str) -> Node | None:
    region = d.region
    pos = suffix_id(name, "target")
    if pos is None or pos >= region.ways:
        return None
    target = region.targets[pos] if pos < len(region.targets) else None
    k = d.k
    return rw(lambda: (target.name if target is not None else "") + "\n",
              lambda text, _count: k.target_store(region, pos, text))


def _size_group(value: int) -> StaticDir:
    """memdev ``ram/`` and ``pmem/``: ``size`` (``qos_class`` is hidden without CDAT data)."""
    return StaticDir({"size": ro(lambda: _hex(value))})


def _next_region(d: CxlDeviceDir) -> str:
    """What memregion_alloc() would give now (docs/cxl.md: the kernel holds it from boot)."""
    ids = d.k._memregion_ids
    return f"region{next(i for i in range(len(ids) + 1) if i not in ids)}\n"


#: The attributes of every CXL device type, one group (cxl_visible picks them per type).
cxl_device_group: Group[CxlDeviceDir] = Group([
    # -- the driver core's --
    attr_ro("devtype", lambda d: f"{d.pdev.devtype}\n"),
    Entry("driver", lambda d: link(d.pdev.devpath, f"{CXL_BUS}/drivers/{d.pdev.driver}")),
    attr_ro("modalias", lambda d: f"{d.pdev.modalias}\n"),
    Entry("power", lambda d: power_dir(d.k, d.pdev.devpath)),
    Entry("subsystem", lambda d: link(d.pdev.devpath, CXL_BUS)),
    Entry("uevent", lambda d: uevent_attr(
        d.k, d.pdev.devpath, "cxl",
        (lambda: d.k.cxl_memdev_uevent_env(d.mem)) if isinstance(d.obj, CxlMemdev) else d.pdev.uevent_env)),
    # -- ports (cxl_port_attrs, devm_cxl_link_uport, devm_cxl_link_parent_dport, dports) --
    attr_ro("decoders_committed", lambda d: f"{d.port.commit_end + 1}\n"),
    Entry("uport", lambda d: link(d.port.devpath, d.port.uport)),
    Entry("parent_dport", lambda d: link(d.port.devpath, d.port.parent_dport.devpath)  # type: ignore[union-attr]
          ),
    Dynamic("dport", lambda d: [f"dport{i}" for i in sorted(d.port.dports)], _dport_link, "dport"),
    # -- decoders --
    attr_ro("start", lambda d: _hex(d.dec.start), 0o400),
    Attribute("size", 0o444, lambda d: _hex(d.dec.size) if isinstance(d.obj, CxlDecoder) else _hex(d.region.size),
              lambda d, buf, _count: d.k.region_size_store(d.region, buf)),
    attr_ro("locked", lambda d: _flag(d.dec.locked)),
    Attribute("interleave_granularity", 0o444, lambda d: f"{d.obj.granularity}\n",  # type: ignore[union-attr]
              lambda d, buf, _count: d.k.interleave_granularity_store(d.region, buf)),
    Attribute("interleave_ways", 0o444, lambda d: f"{d.obj.ways}\n",  # type: ignore[union-attr]
              lambda d, buf, _count: d.k.interleave_ways_store(d.region, buf)),
    attr_ro("cap_pmem", lambda d: _flag(d.dec.cap_pmem)),
    attr_ro("cap_ram", lambda d: _flag(d.dec.cap_ram)),
    attr_ro("cap_type2", lambda _d: "0\n"),
    attr_ro("cap_type3", lambda _d: "1\n"),
    attr_ro("target_list", lambda d: _target_list(d.dec)),
    attr_ro("qos_class", lambda d: f"{d.dec.qos_class}\n"),
    attr_rw("create_pmem_region", _next_region, lambda d, buf: d.k.create_region_store(d.dec, "pmem", buf)),
    attr_rw("create_ram_region", _next_region, lambda d, buf: d.k.create_region_store(d.dec, "ram", buf)),
    attr_wo("delete_region", lambda d, buf: d.k.delete_region_store(d.dec, buf)),
    attr_ro("target_type", lambda _d: "expander\n"),
    attr_ro("region", lambda d: _region_name(d.dec)),
    attr_rw("mode", lambda d: f"{d.dec.mode}\n" if isinstance(d.obj, CxlDecoder) else f"{d.region.mode}\n",
            lambda d, buf: d.k.decoder_mode_store(d.dec, buf)),
    attr_rw("dpa_size", lambda d: f"0x{d.dec.dpa_size:016x}\n", lambda d, buf: d.k.dpa_size_store(d.dec, buf)),
    attr_ro("dpa_resource", lambda d: _hex(d.dec.dpa_start if d.dec.dpa_start is not None else U64_MAX)),
    # -- memdevs (cxl_memdev_attributes, the ram/pmem/security groups) --
    attr_ro("dev", lambda d: f"{d.k.cxl_major}:{d.mem.id}\n"),
    attr_ro("serial", lambda d: _hex(d.mem.serial)),
    attr_ro("firmware_version", lambda d: f"{d.mem.firmware_version[:16]}\n"),
    attr_ro("payload_max", lambda _d: "4096\n"),
    attr_ro("label_storage_size", lambda _d: "0\n"),
    attr_ro("numa_node", lambda d: f"{d.mem.numa_node}\n"),
    Entry("ram", lambda d: _size_group(d.mem.ram_size)),
    Entry("pmem", lambda d: _size_group(d.mem.pmem_size)),
    Entry("security", lambda _d: StaticDir({"state": ro(lambda: "disabled\n")})),
    # -- regions (cxl_region_attrs, cxl_region_target_group) --
    # uuid_show(): %pUb of a pmem region; a ram region's is empty (cxl_region_visible(): 0444)
    Attribute("uuid", 0o644, lambda d: f"{d.region.uuid}\n" if d.region.mode == "pmem" else "\n",
              lambda d, buf, count: d.k.region_uuid_store(d.region, buf, count)),
    attr_rw("commit", lambda d: _flag(d.region.committed), lambda d, buf: d.k.commit_store(d.region, buf)),
    attr_ro("resource", lambda d: _hex(d.region.start if d.region.start is not None else U64_MAX)),
    Dynamic("target", lambda d: [f"target{i}" for i in range(d.region.ways)], _target_show, "target"),
], cxl_visible)


CxlDeviceDir.layout = Layout(cxl_device_group, producer_children_group)


def _cxl_device_dir(k: Kernel, pdev: ProducerDevice) -> Node | None:
    obj = k.cxl_objects.get(pdev.devpath)
    return CxlDeviceDir(k, pdev, obj) if obj is not None else None


PRODUCER_DIRS.append(_cxl_device_dir)


# -- /sys/bus/cxl --------------------------------------------------------------------------------
class CxlDriverDir(Dir):
    """``/sys/bus/cxl/drivers/<name>``: bind/unbind (unless suppress_bind_attrs), uevent, links
    to the bound devices."""

    __slots__ = ("k", "name", "suppress")

    def __init__(self, k: Kernel, name: str, suppress: bool) -> None:
        self.k = k
        self.name = name
        self.suppress = suppress

    @property
    def here(self) -> str:
        return f"{CXL_BUS}/drivers/{self.name}"

    def _bound(self) -> dict[str, str]:
        return {p.name: p.devpath for p in self.k.dax_producer_devices.values()
                if p.bus == "cxl" and p.driver == self.name}

    def _fixed(self) -> dict[str, Node]:
        name = self.name
        out: dict[str, Node] = {}
        if not self.suppress:
            out["bind"] = wo(lambda text, _count: self.k.cxl_bind_store(name, text))
        out["uevent"] = uevent_attr(self.k, self.here, "drivers", mode=0o200)
        if not self.suppress:
            out["unbind"] = wo(lambda text, _count: self.k.cxl_unbind_store(name, text))
        return out

    def names(self) -> Iterable[str]:
        return [*self._fixed(), *self._bound()]

    def child(self, name: str) -> Node | None:
        node = self._fixed().get(name)
        if node is not None:
            return node
        target = self._bound().get(name)
        return link(self.here, target) if target is not None else None


def cxl_bus(k: Kernel) -> StaticDir | None:
    """``/sys/bus/cxl`` (drivers/cxl/core/port.c cxl_bus_type: ``flush`` among its attributes)."""
    if k.cxl_root is None:
        return None

    def members() -> dict[str, str]:
        return {p.name: p.devpath for p in k.dax_producer_devices.values() if p.bus == "cxl"}

    devices = BusDevicesDir(f"{CXL_BUS}/devices", lambda: list(members()), lambda name: members().get(name))
    drivers = StaticDir({name: CxlDriverDir(k, name, suppress) for name, _id, suppress in CXL_DRIVERS})
    bus = simple_bus(k, "cxl", devices, drivers)
    bus.entries["flush"] = wo(lambda text, _count: k.cxl_flush_store(text))
    return bus


class DevCharDir(Dir):
    """``/sys/dev/char`` with the memdevs' ``MAJ:MIN`` links beside the dax devices' (the
    driver core links every device with a ``dev_t``)."""

    __slots__ = ("k", "other")

    def __init__(self, k: Kernel, other: Node) -> None:
        self.k = k
        self.other = other

    def _memdevs(self) -> dict[str, str]:
        return {f"{self.k.cxl_major}:{m.id}": m.devpath for m in self.k.cxl_memdevs.values()
                if m.devpath in self.k.cxl_objects}

    def names(self) -> Iterable[str]:
        assert isinstance(self.other, Dir)
        return [*self.other.names(), *self._memdevs()]

    def child(self, name: str) -> Node | None:
        assert isinstance(self.other, Dir)
        target = self._memdevs().get(name)
        return link("/dev/char", target) if target is not None else self.other.child(name)


def add_cxl_entries(root: StaticDir, k: Kernel) -> None:
    """``/sys/bus/cxl`` (while the machine has a CXL root), ``/sys/bus/pci``, and the host
    bridges' PCI root buses under ``/sys/devices``."""
    bus = root.entries["bus"]
    devices = root.entries["devices"]
    assert isinstance(bus, StaticDir) and isinstance(devices, StaticDir)
    bus.entries["cxl"] = lambda: cxl_bus(k)  # from the first CXL device on, hot-added ones too
    bus.entries["pci"] = producer_bus(k, "pci")
    dev = root.entries["dev"]
    assert isinstance(dev, StaticDir)
    char = dev.entries["char"]
    assert isinstance(char, Node)
    dev.entries["char"] = DevCharDir(k, char)

    root.entries["devices"] = DevicesDir(k, devices)


class DevicesDir(Dir):
    """``/sys/devices`` with the host bridges' PCI root buses (``pci0000:BB``) beside the
    rest, those firmware hot-adds with a CXL device too."""

    __slots__ = ("k", "other")

    def __init__(self, k: Kernel, other: StaticDir) -> None:
        self.k = k
        self.other = other

    def _bridges(self) -> dict[str, str]:
        return {path.rsplit("/", 1)[1]: path for path in self.k.cxl_host_bridges.values()
                if path in self.k.dax_producer_devices}

    def names(self) -> Iterable[str]:
        return [*self.other.names(), *self._bridges()]

    def child(self, name: str) -> Node | None:
        path = self._bridges().get(name)
        if path is not None:
            return ProducerDeviceDir(self.k, self.k.dax_producer_devices[path])
        return self.other.child(name)


__all__ = ["CxlDeviceDir", "DevicesDir", "add_cxl_entries", "cxl_bus"]
