"""The CXL bus (drivers/cxl/): the ACPI0017 root, its CFMWS windows as root decoders, host
bridges as ports with dports, Type-3 memdevs with their endpoint ports and HDM decoders, and
the regions that firmware assembled (docs/cxl.md).

Every device is also a ``ProducerDevice`` (dax.py) at its devpath, so the producers' tree,
``/sys/bus/cxl/devices`` and the uevent helpers see it; ``cxl_objects`` maps the devpath to
the CXL object whose attributes sysfs/cxl.py shows. Names and ids follow the kernel:

- ports: one ida for ``root``, ``port`` and ``endpoint`` (drivers/cxl/core/port.c
  cxl_port_alloc(), lowest free id); ``root0`` first, then the host bridges in ``_UID`` order
  (drivers/cxl/acpi.c add_host_bridge_uport()), then one endpoint per memdev that probes;
- decoders: ``decoder<port id>.<n>``, a per-port ida (cxl_decoder_add_locked()); root
  decoders in CFMWS order (__cxl_parse_cfmws());
- memdevs: ``memN``, a global ida (drivers/cxl/core/memdev.c cxl_memdev_alloc()), the char
  device ``cxl/memN`` with minor N (cxl_memdev_devnode()).
"""

from __future__ import annotations

import errno
import itertools
import uuid as uuid_mod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..config import NR_HDM_DECODERS, cxl_root_device
from ..errors import ConfigError, KernelError
from ..klib import kstrtobool, kstrtoint, kstrtouint, kstrtoull, sysfs_streq
from .dax import IORESOURCE_DAX_KMEM, DaxMixin, DevDax
from .hotplug import PMD_SIZE
from .resource import Resource

if TYPE_CHECKING:
    from ..config import CxlMemdevConfig, CxlRegionConfig, CxlWindowConfig

#: drivers/cxl/cxl.h CXL_DECODER_MIN_GRANULARITY: what a x1 window reports.
CXL_DECODER_MIN_GRANULARITY = 256
#: include/linux/range.h ULLONG_MAX: ``dpa_resource`` of a decoder without DPA.
RESOURCE_NONE = (1 << 64) - 1
#: drivers/cxl/cxl.h: HPA granule of decoders and regions.
CXL_GRANULE = 256 << 20
#: eiw_to_ways(): the interleave ways a decoder can do.
CXL_WAYS = (1, 2, 3, 4, 6, 8, 12, 16)
#: enum cxl_config_state (drivers/cxl/cxl.h).
CXL_CONFIG_IDLE, CXL_CONFIG_INTERLEAVE_ACTIVE, CXL_CONFIG_ACTIVE, CXL_CONFIG_COMMIT = range(4)
#: First PCI bus number given to a host bridge (buses are numbered from it in _UID order).
FIRST_BUS = 0x0C

#: drivers/cxl/cxl.h CXL_DEVICE_* ids: ``modalias`` ``cxl:t<id>``; a driver binds by id
#: (drivers/cxl/core/port.c cxl_bus_match()). Decoders match none (0).
CXL_DEVICE_NVDIMM_BRIDGE = 1
CXL_DEVICE_NVDIMM = 2
CXL_DEVICE_PORT = 3
CXL_DEVICE_ROOT = 4
CXL_DEVICE_MEMORY_EXPANDER = 5
CXL_DEVICE_REGION = 6
CXL_DEVICE_PMEM_REGION = 7
CXL_DEVICE_DAX_REGION = 8
#: The CXL bus drivers, in registration order: name, device id, suppress_bind_attrs
#: (drivers/cxl/port.c, mem.c, core/region.c cxl_region_driver, drivers/dax/cxl.c).
CXL_DRIVERS = (
    ("cxl_port", CXL_DEVICE_PORT, False),
    ("cxl_mem", CXL_DEVICE_MEMORY_EXPANDER, False),
    ("cxl_region", CXL_DEVICE_REGION, False),
    ("cxl_dax_region", CXL_DEVICE_DAX_REGION, True),
    # drivers/cxl/pmem.c cxl_pmem_init(): the bridge, nvdimm and pmem-region drivers, in that order.
    ("cxl_nvdimm_bridge", CXL_DEVICE_NVDIMM_BRIDGE, True),
    ("cxl_nvdimm", CXL_DEVICE_NVDIMM, True),
    ("cxl_pmem_region", CXL_DEVICE_PMEM_REGION, True),
)
DEVTYPE_IDS = {"cxl_port": CXL_DEVICE_PORT, "cxl_memdev": CXL_DEVICE_MEMORY_EXPANDER,
               "cxl_region": CXL_DEVICE_REGION, "cxl_dax_region": CXL_DEVICE_DAX_REGION,
               "cxl_nvdimm_bridge": CXL_DEVICE_NVDIMM_BRIDGE, "cxl_nvdimm": CXL_DEVICE_NVDIMM,
               "cxl_pmem_region": CXL_DEVICE_PMEM_REGION}
#: include/linux/uuid.h UUID_STRING_LEN: a region ``uuid`` store is exactly this plus one byte.
UUID_STRING_LEN = 36


@dataclass(eq=False, slots=True)
class CxlDport:
    """struct cxl_dport: ``dport<id>`` of a port, a link to the downstream device."""

    id: int
    devpath: str


@dataclass(eq=False, slots=True)
class CxlPort:
    """struct cxl_port: ``root0``, ``portN`` (a host bridge) or ``endpointN`` (a memdev)."""

    id: int
    kind: str  # "root", "port", "endpoint"
    devpath: str
    #: The upstream port device (``uport`` link): ACPI0017, the host bridge, the memdev.
    uport: str
    parent: CxlPort | None = None
    parent_dport: CxlDport | None = None
    dports: dict[int, CxlDport] = field(default_factory=dict)
    #: The dports the port's probe finds (the root ports below a host bridge).
    hw_dports: dict[int, CxlDport] = field(default_factory=dict)
    decoders: dict[int, CxlDecoder] = field(default_factory=dict)
    #: port->commit_end: the highest committed decoder id (``decoders_committed`` - 1).
    commit_end: int = -1
    #: cxled->hdm_end of an endpoint: the last decoder with a DPA allocation.
    hdm_end: int = -1
    memdev: CxlMemdev | None = None

    @property
    def name(self) -> str:
        return f"{self.kind}{self.id}"


@dataclass(eq=False, slots=True)
class CxlDecoder:
    """struct cxl_decoder and its root/switch/endpoint variants (drivers/cxl/cxl.h)."""

    port: CxlPort
    id: int
    kind: str  # "root", "switch", "endpoint"
    start: int = 0
    size: int = 0
    ways: int = 1
    granularity: int = CXL_DECODER_MIN_GRANULARITY
    #: Dport ids of target[0..ways-1] (root and switch decoders).
    targets: list[int] = field(default_factory=list)
    locked: bool = False
    #: CXL_DECODER_F_ENABLE: committed.
    enabled: bool = False
    region: CxlRegion | None = None
    # -- root decoders (CFMWS) --
    cap_ram: bool = False
    cap_pmem: bool = False
    qos_class: int = 0
    target_node: int = -1
    # -- endpoint decoders --
    mode: str = "none"
    dpa_start: int | None = None
    dpa_size: int = 0

    @property
    def name(self) -> str:
        return f"decoder{self.port.id}.{self.id}"

    @property
    def devpath(self) -> str:
        return f"{self.port.devpath}/{self.name}"


@dataclass(eq=False, slots=True)
class CxlMemdev:
    """struct cxl_memdev: ``memN`` below its PCI function (``host``)."""

    id: int
    host: str
    serial: int
    numa_node: int
    ram_size: int
    pmem_size: int
    firmware_version: str
    endpoint: CxlPort | None = None
    #: The root port it hangs off (the endpoint's parent dport) and that port's owner.
    dport: CxlDport | None = None
    port: CxlPort | None = None

    @property
    def name(self) -> str:
        return f"mem{self.id}"

    @property
    def devpath(self) -> str:
        return f"{self.host}/{self.name}"


@dataclass(eq=False, slots=True)
class CxlRegion:
    """struct cxl_region with its params (drivers/cxl/core/region.c)."""

    id: int
    root: CxlDecoder
    mode: str = "ram"
    ways: int = 0
    granularity: int = 0
    start: int | None = None
    size: int = 0
    targets: list[CxlDecoder | None] = field(default_factory=list)
    committed: bool = False
    #: p->uuid of a pmem region (null until written: uuid_store()).
    uuid: uuid_mod.UUID = uuid_mod.UUID(int=0)

    @property
    def name(self) -> str:
        return f"region{self.id}"

    @property
    def devpath(self) -> str:
        return f"{self.root.devpath}/{self.name}"


CxlObject = CxlPort | CxlDecoder | CxlMemdev | CxlRegion | CxlDport


class CxlMixin(DaxMixin):
    """The CXL bus; mixed into ``Kernel`` above the dax bus (its regions produce dax regions)."""

    cxl_major: int
    #: devpath -> the CXL object shown there (ports, decoders, memdevs, regions, PCI devices).
    cxl_objects: dict[str, CxlObject]
    cxl_root: CxlPort | None
    cxl_memdevs: dict[int, CxlMemdev]
    cxl_regions_by_id: dict[int, CxlRegion]
    #: _UID -> (PCI root bus device devpath, root ports by port number).
    cxl_host_bridges: dict[int, str]
    _cxl_port_ids: set[int]
    _cxl_fw_regions: list[tuple[int, int]]
    #: The ``regionN`` iomem resource of each region sized through sysfs.
    _cxl_region_res: dict[int, Resource]
    #: Windows firmware hot-added with a device (root decoder id -> window), beside the
    #: topology's ``[[cxl_window]]`` list (ids 0..n-1).
    _cxl_hot_windows: dict[int, CxlWindowConfig]
    #: Region id -> the memdev and root decoder firmware hot-added with it (removed with it).
    _cxl_hot_devices: dict[int, tuple[CxlMemdev, CxlDecoder]]
    #: The next PCI bus number free for a hot-added host bridge.
    _cxl_next_bus: int

    # -- boot ---------------------------------------------------------------------------------
    def dax_boot(self) -> None:
        """The dax producers, then the CXL topology around the regions firmware assembled."""
        self._cxl_fw_regions = []
        self._cxl_region_res = {}
        self._cxl_hot_windows = {}
        self._cxl_hot_devices = {}
        self._cxl_next_bus = FIRST_BUS
        self.cxl_major = self.config.cxl_major
        self.cxl_objects = {}
        self.cxl_root = None
        self.cxl_memdevs = {}
        self.cxl_regions_by_id = {}
        self.cxl_host_bridges = {}
        self._cxl_port_ids = set()
        for i, win in enumerate(self.config.cxl_windows):
            self._iomem_boot(win.start, win.size, f"CXL Window {i}")
        super().dax_boot()
        self.cxl_boot()

    def cxl_window_iomem(self, index: int, cfg: CxlRegionConfig) -> bool:
        """A region in a declared window nests in that window's resource (inserted at boot)."""
        win = self._cxl_declared_window(cfg)
        if win is None:
            return super().cxl_window_iomem(index, cfg)
        return win.start + win.size - 1 <= self.resources.root.end

    def cxl_window_config(self, did: int) -> CxlWindowConfig | None:
        """The CFMWS window behind root decoder ``decoder0.<did>``: the topology's, or one
        firmware hot-added with a device; None for an implicit window (docs/cxl.md)."""
        if did < len(self.config.cxl_windows):
            return self.config.cxl_windows[did]
        return self._cxl_hot_windows.get(did)

    def _cxl_declared_window(self, cfg: CxlRegionConfig) -> CxlWindowConfig | None:
        prefix, _, did = cfg.decoder.partition(".")
        win = self.cxl_window_config(int(did)) if prefix == "decoder0" and did.isascii() and did.isdigit() else None
        if win is None:
            return None
        inside = win.start <= cfg.start and cfg.start + cfg.size <= win.start + win.size
        return win if inside else None

    def cxl_dax_region_probe(self, index: int, cfg: CxlRegionConfig) -> DevDax | None:
        """Remember which memregion id a firmware region got, for ``cxl_boot``."""
        rid = next(i for i in itertools.count() if i not in self._memregion_ids)  # memregion_alloc()'s pick
        dev = super().cxl_dax_region_probe(index, cfg)
        self._cxl_fw_regions.append((index, rid))
        return dev

    def cxl_boot(self) -> None:
        """cxl_acpi_probe() (root0, root decoders, host-bridge ports), cxl_pci + cxl_mem probe
        of every memdev (endpoints), then the firmware-committed regions (cxl_add_to_region)."""
        cfg = self.config
        if not (cfg.cxl_windows or cfg.cxl_memdevs or cfg.cxl_regions):
            return
        self.cxl_root_init()
        uids = sorted({*(u for w in cfg.cxl_windows for u in w.host_bridges),
                       *(m.host_bridge for m in cfg.cxl_memdevs)})
        root = self.cxl_root
        assert root is not None
        bus = FIRST_BUS
        hb_buses: dict[int, int] = {}
        for uid in uids:  # the ACPI0016 devices: PCI root buses, root0's dports
            hb_buses[uid] = bus
            bridge = f"/devices/pci0000:{bus:02x}"
            self.cxl_host_bridges[uid] = bridge
            self._producer_device(bridge, None)
            root.dports[uid] = CxlDport(uid, bridge)
            bus += 1 + sum(1 for m in cfg.cxl_memdevs if m.host_bridge == uid)
        self._cxl_next_bus = bus
        for i, win in enumerate(cfg.cxl_windows):
            self.cxl_add_root_decoder(i, win)
        for uid in uids:  # add_host_bridge_uport(): port<id>, with dports and HDM decoders
            bridge = self.cxl_host_bridges[uid]
            port = self.cxl_add_port("port", f"{root.devpath}/port", bridge, root, root.dports[uid])
            for n, mem in enumerate([m for m in cfg.cxl_memdevs if m.host_bridge == uid]):
                del mem
                rp = f"{bridge}/0000:{hb_buses[uid]:02x}:{n:02x}.0"
                self._producer_device(rp, "pci", driver="pcieport")
                port.dports[n] = port.hw_dports[n] = CxlDport(n, rp)
            for _ in range(NR_HDM_DECODERS):
                self.cxl_add_decoder(port, "switch")
        if any(w.pmem for w in cfg.cxl_windows):
            self.cxl_add_nvdimm_bridge(root)
        per_hb: dict[int, int] = {}
        for i, mem in enumerate(cfg.cxl_memdevs):
            n = per_hb.get(mem.host_bridge, 0)
            per_hb[mem.host_bridge] = n + 1
            self.cxl_pci_probe(i, mem, hb_buses[mem.host_bridge], n)
        for index, rid in self._cxl_fw_regions:
            self.cxl_region_register(rid, cfg.cxl_regions[index], f"cxl_region[{index}]")

    # -- firmware hot-add of a CXL device with its window ----------------------------------
    def cxl_hotplug_device(self, rid: int, start: int, size: int, target_node: int) -> str:
        """Firmware brings a Type-3 device up with a window of its own (docs/cxl.md): a host
        bridge with the next ``_UID`` and the next PCI buses (port, one root port), a x1 window
        exactly as large as the region (root decoder ``decoder0.K``, the root's lowest free
        decoder id), a memdev with that much ram below it (the lowest free memdev id, its
        endpoint). Each CXL device is announced as it is added (port and endpoint probe, cxl_mem
        bind). Returns the root decoder's name, for the region firmware commits in it."""
        from ..config import CxlMemdevConfig, CxlWindowConfig

        root = self.cxl_root
        assert root is not None
        uid = max(self.cxl_host_bridges, default=-1) + 1
        bus = self._cxl_next_bus
        self._cxl_next_bus = bus + 2
        did = next(i for i in itertools.count() if i not in root.decoders)
        win = CxlWindowConfig(start, size, target_node, [uid])
        self._cxl_hot_windows[did] = win
        bridge = f"/devices/pci0000:{bus:02x}"
        self.cxl_host_bridges[uid] = bridge
        self._producer_device(bridge, None)
        root.dports[uid] = CxlDport(uid, bridge)
        dec = self.cxl_add_root_decoder(did, win)
        self._cxl_uevent("add", dec.devpath)
        port = self.cxl_add_port("port", f"{root.devpath}/port", bridge, root, root.dports[uid])
        self._cxl_uevent("add", port.devpath)
        rp = f"{bridge}/0000:{bus:02x}:00.0"
        self._producer_device(rp, "pci", driver="pcieport")
        port.hw_dports[0] = CxlDport(0, rp)
        self.dax_producer_devices[port.devpath].driver = None
        self.cxl_port_probe(port)
        mid = next(i for i in itertools.count() if i not in self.cxl_memdevs)
        mem = self.cxl_pci_probe(mid, CxlMemdevConfig(host_bridge=uid, ram_size=size), bus, 0)
        assert mem.endpoint is not None
        self._cxl_uevent("add", mem.devpath)
        self._cxl_uevent("add", mem.endpoint.devpath)
        for ep_dec in mem.endpoint.decoders.values():
            self._cxl_uevent("add", ep_dec.devpath)
        self._cxl_uevent("bind", mem.endpoint.devpath)
        self._cxl_uevent("bind", mem.devpath)
        self._cxl_hot_devices[rid] = (mem, dec)
        return dec.name

    def cxl_hotplug_remove_device(self, rid: int) -> None:
        """The device firmware hot-added with region ``rid`` goes with it (after the region):
        the memdev (its endpoint first), the host bridge's port, root0's dport, the root decoder."""
        hot = self._cxl_hot_devices.pop(rid, None)
        if hot is None:
            return
        mem, dec = hot
        port = mem.port
        root = self.cxl_root
        assert port is not None and root is not None
        if mem.endpoint is not None:
            self.cxl_mem_remove(mem)
        self._cxl_del_device(mem.devpath)
        del self.cxl_memdevs[mem.id]
        if port.decoders:
            self.cxl_port_remove(port)
        self._cxl_del_device(port.devpath)
        self._cxl_port_ids.discard(port.id)
        uid = dec.targets[0]
        self._cxl_del_device(dec.devpath)
        del root.decoders[dec.id]
        self._cxl_hot_windows.pop(dec.id, None)
        del root.dports[uid], self.cxl_host_bridges[uid]
        for path in (mem.host, port.hw_dports[0].devpath, port.uport):
            self.dax_producer_devices.pop(path, None)

    def cxl_root_init(self) -> None:
        """cxl_acpi_probe(): the CXL root platform device (``ACPI0017:00``, or cxl_test's
        ``cxl_acpi.0``: topology ``kernel.cxl_root``) bound to cxl_acpi, ``root0`` (no
        driver: none has id 4)."""
        if self.cxl_root is not None:
            return
        platform, modalias = cxl_root_device(self.config.cxl_root)
        self._producer_device(platform, "platform", driver="cxl_acpi", modalias=modalias)
        pid = self._cxl_port_id()
        root = CxlPort(pid, "root", f"{platform}/root{pid}", platform)
        self._producer_device(root.devpath, "cxl", devtype="cxl_port", modalias=f"cxl:t{CXL_DEVICE_ROOT}")
        self.cxl_objects[root.devpath] = root
        self.cxl_root = root

    def cxl_add_nvdimm_bridge(self, root: CxlPort) -> None:
        """cxl_acpi_probe() -> add_root_nvdimm_bridge(), only when a root decoder is pmem
        capable: ``nvdimm-bridge0`` (its own ida) under root0, bound to cxl_nvdimm_bridge
        (drivers/cxl/core/pmem.c devm_cxl_add_nvdimm_bridge(); the libnvdimm bus its probe
        registers is not modelled: docs/cxl.md)."""
        self._producer_device(self.cxl_nvdimm_bridge_path(root), "cxl", driver="cxl_nvdimm_bridge",
                              devtype="cxl_nvdimm_bridge", modalias=f"cxl:t{CXL_DEVICE_NVDIMM_BRIDGE}")

    @staticmethod
    def cxl_nvdimm_bridge_path(root: CxlPort) -> str:
        return f"{root.devpath}/nvdimm-bridge0"

    def cxl_nvdimm_bridge_bound(self) -> bool | None:
        """cxl_find_nvdimm_bridge(): None without a bridge, else whether its driver is bound."""
        if self.cxl_root is None:
            return None
        pdev = self.dax_producer_devices.get(self.cxl_nvdimm_bridge_path(self.cxl_root))
        return None if pdev is None else pdev.driver is not None

    def _cxl_port_id(self) -> int:
        """cxl_port_ida: lowest free."""
        pid = next(i for i in itertools.count() if i not in self._cxl_port_ids)
        self._cxl_port_ids.add(pid)
        return pid

    def cxl_add_port(self, kind: str, prefix: str, uport: str, parent: CxlPort, dport: CxlDport) -> CxlPort:
        """devm_cxl_add_port(): named by kind, bound to cxl_port (its probe is synchronous here)."""
        pid = self._cxl_port_id()
        port = CxlPort(pid, kind, f"{prefix}{pid}", uport, parent, dport)
        self._producer_device(port.devpath, "cxl", driver="cxl_port", devtype="cxl_port",
                              modalias=f"cxl:t{CXL_DEVICE_PORT}")
        self.cxl_objects[port.devpath] = port
        return port

    def cxl_add_decoder(self, port: CxlPort, kind: str) -> CxlDecoder:
        """cxl_decoder_add(): the next id of the port's decoder ida. An unprogrammed HDM
        decoder reads its control register: ways 1, granularity 256 (drivers/cxl/core/hdm.c
        init_hdm_decoder()); a switch decoder's target list register reads 0: the lowest dport."""
        did = next(i for i in itertools.count() if i not in port.decoders)
        dec = CxlDecoder(port, did, kind)
        if kind == "switch" and port.dports:
            dec.targets = [min(port.dports)]
        port.decoders[did] = dec
        self._producer_device(dec.devpath, "cxl", devtype=f"cxl_decoder_{kind}", modalias="cxl:t0")
        self.cxl_objects[dec.devpath] = dec
        return dec

    def cxl_add_root_decoder(self, index: int, win: CxlWindowConfig) -> CxlDecoder:
        """__cxl_parse_cfmws(): a x1 window reports CXL_DECODER_MIN_GRANULARITY; cap_* from the
        restrictions (type-3 only here); the window in /proc/iomem as ``CXL Window N``."""
        root = self.cxl_root
        assert root is not None
        dec = CxlDecoder(root, index, "root", win.start, win.size, len(win.host_bridges),
                         win.granularity if len(win.host_bridges) > 1 else CXL_DECODER_MIN_GRANULARITY,
                         list(win.host_bridges), win.locked, enabled=True, cap_ram=win.ram, cap_pmem=win.pmem,
                         qos_class=win.qtg_id, target_node=win.target_node)
        root.decoders[index] = dec
        self._producer_device(dec.devpath, "cxl", devtype="cxl_decoder_root", modalias="cxl:t0")
        self.cxl_objects[dec.devpath] = dec
        return dec

    def cxl_pci_probe(self, index: int, cfg: CxlMemdevConfig, hb_bus: int, n: int) -> CxlMemdev:
        """cxl_pci_probe() -> devm_cxl_add_memdev(), then cxl_mem_probe(): the endpoint port
        below the host bridge's port, with its HDM decoders."""
        uid = cfg.host_bridge
        bridge = self.cxl_host_bridges[uid]
        rp = f"{bridge}/0000:{hb_bus:02x}:{n:02x}.0"
        host = f"{rp}/0000:{hb_bus + 1 + n:02x}:00.0"
        numa = cfg.numa_node if cfg.numa_node is not None else min(
            (nid for nid, node in self.nodes.items() if node.cpus), default=0)
        mem = CxlMemdev(index, host, cfg.serial if cfg.serial is not None else index + 1, numa, cfg.ram_size,
                        cfg.pmem_size, cfg.firmware_version)
        self._producer_device(host, "pci", driver="cxl_pci")
        self.cxl_memdevs[index] = mem
        self._producer_device(mem.devpath, "cxl", driver="cxl_mem", devtype="cxl_memdev",
                              modalias=f"cxl:t{CXL_DEVICE_MEMORY_EXPANDER}")
        self.cxl_objects[mem.devpath] = mem
        port = next(p for p in self.cxl_objects.values() if isinstance(p, CxlPort) and p.uport == bridge)
        mem.port, mem.dport = port, port.dports[n]
        self.cxl_mem_probe(mem)
        return mem

    def cxl_mem_probe(self, mem: CxlMemdev) -> None:
        """cxl_mem_probe(): with pmem capacity, devm_cxl_add_nvdimm() first: ``pmemN`` (the
        memdev's id) bound to cxl_nvdimm (no bridge: -ENODEV, "PMEM disabled by platform",
        tolerated); then devm_cxl_add_endpoint(): ``endpoint<id>`` under the memdev's port,
        its decoders (drivers/cxl/mem.c)."""
        assert mem.port is not None and mem.dport is not None
        if mem.pmem_size and self.cxl_nvdimm_bridge_bound():
            self._producer_device(f"{mem.devpath}/pmem{mem.id}", "cxl", driver="cxl_nvdimm",
                                  devtype="cxl_nvdimm", modalias=f"cxl:t{CXL_DEVICE_NVDIMM}")
        ep = self.cxl_add_port("endpoint", f"{mem.port.devpath}/endpoint", mem.devpath, mem.port, mem.dport)
        ep.memdev = mem
        mem.endpoint = ep
        for _ in range(NR_HDM_DECODERS):
            self.cxl_add_decoder(ep, "endpoint")

    # -- regions ------------------------------------------------------------------------------
    def cxl_root_decoder(self, name: str, cfg: CxlRegionConfig) -> CxlDecoder | None:
        """The root decoder a region config names: a CFMWS window, or (a ``cxl_region`` of its
        own, as before windows were declared) one whose window is the union of its regions."""
        root = self.cxl_root
        if root is None or not name.startswith(f"decoder{root.id}."):
            return None
        try:
            did = int(name.split(".", 1)[1])
        except ValueError:
            return None
        dec = root.decoders.get(did)
        if self.cxl_window_config(did) is not None and self._cxl_declared_window(cfg) is None:
            return None  # outside the window it names: shown as a plain device, without CXL attributes
        if dec is None:
            dec = CxlDecoder(root, did, "root", cfg.start, cfg.size, enabled=True, cap_ram=True,
                             target_node=cfg.target_node)
            root.decoders[did] = dec
            self.cxl_objects[dec.devpath] = dec
        elif self.cxl_window_config(did) is None:  # an implicit window grows to hold this region too
            end = max(dec.start + dec.size, cfg.start + cfg.size)
            dec.start = min(dec.start, cfg.start)
            dec.size = end - dec.start
        return dec

    def cxl_region_register(self, rid: int, cfg: CxlRegionConfig, key: str | None = None) -> None:
        """A region firmware committed (cxl_add_to_region() -> construct_region()): in a declared
        window it is assembled from the window's memdevs, one per host bridge in target order,
        each giving ``size / ways`` of ram from its next free DPA on its next decoder."""
        self.cxl_root_init()
        root = self.cxl_root
        assert root is not None
        dec = self.cxl_root_decoder(cfg.decoder, cfg)
        if dec is None:
            return
        region = CxlRegion(rid, dec, "ram", dec.ways, dec.granularity, cfg.start, cfg.size, committed=True)
        explicit = self.cxl_window_config(dec.id) is not None
        if explicit:
            members = self._cxl_pick_members(dec, cfg.size // dec.ways)
            if members is None:
                if key is not None:
                    raise ConfigError(key, f"no memdev below {dec.name}'s host bridges has "
                                           f"{cfg.size // dec.ways:#x} bytes of free ram for it")
                members = []
            for pos, mem in enumerate(members):
                self._cxl_commit_member(region, pos, mem)
        else:
            region.ways, region.granularity = 1, CXL_DECODER_MIN_GRANULARITY
            region.targets = [None]
        self.cxl_regions_by_id[rid] = region
        self.cxl_objects[region.devpath] = region

    def cxl_region_unregister(self, rid: int) -> None:
        """unregister_region(): the firmware region's decoders are reset and freed."""
        region = self.cxl_regions_by_id.pop(rid, None)
        if region is None:
            return
        self.cxl_objects.pop(region.devpath, None)
        res = self._cxl_region_res.pop(rid, None)
        if res is not None:  # a region built through sysfs: its HPA goes with it
            self.resources.release(res)
        for ep_dec in reversed([t for t in region.targets if t is not None]):
            for dec in reversed(self._cxl_route(ep_dec)):
                self.cxl_decoder_reset(dec)
                dec.region = None
                dec.start = dec.size = 0
            ep_dec.dpa_start, ep_dec.dpa_size, ep_dec.mode = None, 0, "none"
            ep_dec.port.hdm_end = max((d.id for d in ep_dec.port.decoders.values() if d.dpa_size), default=-1)

    def _cxl_route(self, ep_dec: CxlDecoder) -> list[CxlDecoder]:
        """The endpoint decoder and the switch decoders of ``ep_dec``'s region on its way up."""
        out = [ep_dec]
        port = ep_dec.port.parent
        while port is not None and port.kind != "root":
            out += [d for d in port.decoders.values() if d.region is ep_dec.region]
            port = port.parent
        return out

    def _cxl_pick_members(self, dec: CxlDecoder, per_member: int) -> list[CxlMemdev] | None:
        members: list[CxlMemdev] = []
        for uid in dec.targets:
            bridge = self.cxl_host_bridges.get(uid)
            found = None
            for mem in self.cxl_memdevs.values():
                if mem.endpoint is None or mem.port is None or mem.port.uport != bridge:
                    continue
                if self._cxl_free_ram(mem) >= per_member and self._cxl_free_decoder(mem.endpoint) is not None:
                    found = mem
                    break
            if found is None:
                return None
            members.append(found)
        return members

    @staticmethod
    def _cxl_free_ram(mem: CxlMemdev) -> int:
        """What is left at the end of the ram partition (__cxl_dpa_alloc() allocates in order)."""
        assert mem.endpoint is not None
        used = max((d.dpa_start + d.dpa_size for d in mem.endpoint.decoders.values()
                    if d.dpa_start is not None and d.dpa_size and d.mode == "ram"), default=0)
        return mem.ram_size - used

    @staticmethod
    def _cxl_free_decoder(port: CxlPort) -> CxlDecoder | None:
        """The decoder that may be committed next (drivers/cxl/core/region.c match_free_decoder():
        id commit_end + 1)."""
        return port.decoders.get(port.commit_end + 1)

    def _cxl_commit_member(self, region: CxlRegion, pos: int, mem: CxlMemdev) -> None:
        """Program and commit the endpoint decoder and the host bridge's decoder for position
        ``pos`` (cxl_region_attach() + cxl_port_setup_targets() + cxl_decoder_commit())."""
        ep = mem.endpoint
        assert ep is not None and region.start is not None and mem.port is not None and mem.dport is not None
        per = region.size // region.ways
        ep_dec = self._cxl_free_decoder(ep)
        assert ep_dec is not None
        ep_dec.mode, ep_dec.dpa_start, ep_dec.dpa_size = "ram", mem.ram_size - self._cxl_free_ram(mem), per
        ep.hdm_end = ep_dec.id
        for dec, ways, ig in ((ep_dec, region.ways, region.granularity),):
            dec.start, dec.size, dec.ways, dec.granularity = region.start, region.size, ways, ig
        hb = mem.port
        hb_dec = next((d for d in hb.decoders.values() if d.region is region), None)
        if hb_dec is None:
            hb_dec = self._cxl_free_decoder(hb)
            assert hb_dec is not None
            # The port's granularity: the region's times the root's ways (cxl_port_setup_targets()).
            hb_dec.start, hb_dec.size, hb_dec.ways = region.start, region.size, 1
            hb_dec.granularity = region.granularity * region.root.ways
            hb_dec.targets = [mem.dport.id]
            hb_dec.region, hb_dec.enabled = region, True
            hb.commit_end = hb_dec.id
        elif mem.dport.id not in hb_dec.targets:
            hb_dec.targets.append(mem.dport.id)
            hb_dec.ways = len(hb_dec.targets)
        ep_dec.region, ep_dec.enabled = region, True
        ep.commit_end = ep_dec.id
        while len(region.targets) <= pos:
            region.targets.append(None)
        region.targets[pos] = ep_dec

    # -- region creation (drivers/cxl/core/region.c, core/hdm.c, core/port.c) ---------------
    def cxl_next_region_id(self) -> int:
        """What ``create_*_region`` shows: memregion_alloc()'s pick now (docs/cxl.md)."""
        return next(i for i in itertools.count() if i not in self._memregion_ids)

    def create_region_store(self, dec: CxlDecoder, mode: str, buf: str) -> None:
        """create_ram_region_store() -> __create_region(): ``sscanf("region%d")`` (EINVAL),
        the id shown (EBUSY otherwise); the region is added unbound (its auto-probe fails
        before commit, cxl_region_can_probe()), with ways, granularity and size 0."""
        with self.lock:
            rid = _sscanf_region(buf)
            if rid is None:
                raise KernelError(errno.EINVAL)
            if rid != self.cxl_next_region_id():
                raise KernelError(errno.EBUSY)
            self.memregion_alloc()
            region = CxlRegion(rid, dec, mode)
            self.cxl_regions_by_id[rid] = region
            self._producer_device(region.devpath, "cxl", devtype="cxl_region", modalias=f"cxl:t{CXL_DEVICE_REGION}")
            self.cxl_objects[region.devpath] = region
            self._cxl_uevent("add", region.devpath)

    def delete_region_store(self, dec: CxlDecoder, buf: str) -> None:
        """delete_region_store(): a child region of this decoder (ENODEV otherwise) is
        unregistered even if bound: its driver is released, its decoders reset and detached,
        its HPA freed, its id recycled (cxl_region_release())."""
        with self.lock:
            region = next((r for r in self.cxl_regions_by_id.values()
                           if r.root is dec and sysfs_streq(r.name, buf)), None)
            if region is None or region.devpath not in self.dax_producer_devices:
                raise KernelError(errno.ENODEV)
            self.unregister_region(region)

    def unregister_region(self, region: CxlRegion) -> None:
        """unregister_region(): device_del() releases the driver, then every target is
        detached (decode reset first if committed) and the HPA released."""
        pdev = self.dax_producer_devices[region.devpath]
        self.cxl_region_release_driver(region)
        self.cxl_region_decode_reset(region)
        for pos in range(len(region.targets)):
            self._cxl_detach(region, pos)
        if region.id not in self._cxl_region_res and region.start is not None:
            # A region firmware assembled: its iomem entry came with it (cxl_region_iomem_release()),
            # and it is no longer one of the machine's producers (the harness lists those).
            res = self.resources.find(region.start, region.start + region.size - 1, region.name)
            if res is not None:
                self.resources.release(res)
            self.config.cxl_regions[:] = [c for c in self.config.cxl_regions
                                          if not (c.start == region.start and c.decoder == region.root.name)]
            region.start, region.size = None, 0
        self._cxl_free_hpa(region)
        self._cxl_uevent("remove", pdev.devpath)
        del self.dax_producer_devices[pdev.devpath]
        self.cxl_objects.pop(region.devpath, None)
        self.cxl_regions_by_id.pop(region.id, None)
        self._memregion_ids.discard(region.id)
        # A hot-added device whose region software destroyed stays (the hardware is still
        # there); a later region with this id is not its region.
        self._cxl_hot_devices.pop(region.id, None)

    def _cxl_state(self, region: CxlRegion) -> int:
        """enum cxl_config_state: 0 IDLE, 1 INTERLEAVE_ACTIVE (size set), 2 ACTIVE (all
        targets attached), 3 COMMIT."""
        if region.committed:
            return CXL_CONFIG_COMMIT
        if region.start is None:
            return CXL_CONFIG_IDLE
        filled = len([t for t in region.targets if t is not None])
        return CXL_CONFIG_ACTIVE if region.ways and filled == region.ways else CXL_CONFIG_INTERLEAVE_ACTIVE

    def interleave_ways_store(self, region: CxlRegion, buf: str) -> None:
        """interleave_ways_store(): kstrtouint, ways_to_eiw() (EINVAL), a power-of-2 multiple
        of the root's ways (EINVAL), EBUSY once sized."""
        with self.lock:
            val = kstrtouint(buf, 0)
            root_ways = region.root.ways
            if val not in CXL_WAYS or val % root_ways or not _is_pow2(val // root_ways):
                raise KernelError(errno.EINVAL)
            if self._cxl_state(region) >= CXL_CONFIG_INTERLEAVE_ACTIVE:
                raise KernelError(errno.EBUSY)
            region.ways = val
            region.targets = region.targets[:val] + [None] * (val - len(region.targets[:val]))

    def interleave_granularity_store(self, region: CxlRegion, buf: str) -> None:
        """interleave_granularity_store(): kstrtoint, granularity_to_eig() (power of two,
        256..16384: EINVAL), the root's own granularity when the root interleaves (EINVAL),
        EBUSY once sized."""
        with self.lock:
            val = kstrtoint(buf, 0)
            if not _is_pow2(val) or not 256 <= val <= 16384:
                raise KernelError(errno.EINVAL)
            if region.root.ways > 1 and val != region.root.granularity:
                raise KernelError(errno.EINVAL)
            if self._cxl_state(region) >= CXL_CONFIG_INTERLEAVE_ACTIVE:
                raise KernelError(errno.EBUSY)
            region.granularity = val

    def region_uuid_store(self, region: CxlRegion, buf: str, count: int) -> None:
        """uuid_store() (visible writable on pmem regions only): exactly UUID_STRING_LEN + 1
        bytes, uuid_parse(), not the null uuid (EINVAL); the same uuid again: nothing; EBUSY
        once ACTIVE, EBUSY for a uuid another region has (is_dup())."""
        with self.lock:
            if count != UUID_STRING_LEN + 1:
                raise KernelError(errno.EINVAL)
            text = buf[:UUID_STRING_LEN]
            if not _uuid_parse_ok(text):
                raise KernelError(errno.EINVAL)
            val = uuid_mod.UUID(text)
            if not val.int:
                raise KernelError(errno.EINVAL)
            if val == region.uuid:
                return
            if self._cxl_state(region) >= CXL_CONFIG_ACTIVE:
                raise KernelError(errno.EBUSY)
            if any(r.uuid == val for r in self.cxl_regions_by_id.values()):
                raise KernelError(errno.EBUSY)
            region.uuid = val

    def region_size_store(self, region: CxlRegion, buf: str) -> None:
        """size_store(): alloc_hpa() / free_hpa()."""
        with self.lock:
            val = kstrtoull(buf, 0)
            if val == 0:
                if region.start is None:
                    return
                if self._cxl_state(region) >= CXL_CONFIG_ACTIVE:
                    raise KernelError(errno.EBUSY)
                self._cxl_free_hpa(region)
                return
            if region.start is not None:
                if region.size == val:
                    return
                raise KernelError(errno.EBUSY)
            if not region.ways or not region.granularity or (region.mode == "pmem" and not region.uuid.int):
                raise KernelError(errno.ENXIO)  # alloc_hpa(): ways, granularity and (pmem) uuid first
            if val % (CXL_GRANULE * region.ways):
                raise KernelError(errno.EINVAL)
            start = self._cxl_first_fit(region.root, val)
            if start is None:
                raise KernelError(errno.ERANGE)  # alloc_free_mem_region() found no room
            res = self.request_mem_region(start, val, region.name, busy=False)
            if res is None:
                raise KernelError(errno.EBUSY)  # something else sits in the window's range
            region.start, region.size = start, val
            self._cxl_region_res[region.id] = res

    def _cxl_first_fit(self, dec: CxlDecoder, size: int) -> int | None:
        """alloc_free_mem_region(cxlrd->res, size, SZ_256M): ascending first fit in the window,
        past every region the window already holds."""
        taken = sorted((r.start, r.start + r.size) for r in self.cxl_regions_by_id.values()
                       if r.root is dec and r.start is not None)
        cand = -(-dec.start // CXL_GRANULE) * CXL_GRANULE
        end = dec.start + dec.size
        for lo, hi in taken:
            if cand + size <= lo:
                break
            cand = max(cand, -(-hi // CXL_GRANULE) * CXL_GRANULE)
        return cand if cand + size <= end else None

    def _cxl_free_hpa(self, region: CxlRegion) -> None:
        res = self._cxl_region_res.pop(region.id, None)
        if res is not None:
            self.resources.release(res)
        region.start, region.size = None, 0

    def target_store(self, region: CxlRegion, pos: int, buf: str) -> None:
        """store_targetN(): an empty write detaches position ``pos``; a name attaches that
        endpoint decoder (cxl_region_attach(), its checks in the kernel's order)."""
        with self.lock:
            if pos >= region.ways:
                raise KernelError(errno.ENXIO)
            text = buf.removesuffix("\n")
            if not text:
                self.cxl_region_release_driver(region)
                self.cxl_region_decode_reset(region)
                self._cxl_detach(region, pos)
                return
            devpath = self.cxl_bus_device(text)
            if devpath is None:
                raise KernelError(errno.ENODEV)
            dec = self.cxl_objects.get(devpath)
            if not isinstance(dec, CxlDecoder) or dec.kind != "endpoint":
                raise KernelError(errno.EINVAL)
            self.cxl_region_attach(region, dec, pos)

    def cxl_region_attach(self, region: CxlRegion, dec: CxlDecoder, pos: int) -> None:
        ep = dec.port
        mem = ep.memdev
        assert mem is not None and mem.port is not None and mem.dport is not None
        if dec.mode == "none":  # part < 0 (6.15+: "dead"); before, mode NONE != the region's
            raise KernelError(errno.ENODEV if self.profile >= (6, 15) else errno.EINVAL)
        if dec.mode != region.mode:
            raise KernelError(errno.EINVAL)
        state = self._cxl_state(region)
        if state > CXL_CONFIG_INTERLEAVE_ACTIVE:
            raise KernelError(errno.EBUSY)
        if state < CXL_CONFIG_INTERLEAVE_ACTIVE:
            raise KernelError(errno.ENXIO)
        if dec.region is not None and dec.region is not region:
            raise KernelError(errno.EBUSY)
        filled = [t for t in region.targets if t is not None]
        if len(filled) >= region.ways:
            raise KernelError(errno.EINVAL)
        uid = next((u for u, path in self.cxl_host_bridges.items() if path == mem.port.uport), None)
        if uid is None or uid not in region.root.targets:
            raise KernelError(errno.ENXIO)  # the endpoint is not below this window's host bridges
        if not dec.dpa_size:
            raise KernelError(errno.ENXIO)
        if dec.dpa_size * region.ways != region.size:
            raise KernelError(errno.EINVAL)
        other = region.targets[pos]
        if other is not None and other is not dec:
            raise KernelError(errno.EBUSY)
        if any(t is not None and t is not dec and t.port is ep for t in region.targets) or dec in region.targets:
            raise KernelError(errno.EBUSY)
        if region.root.targets[pos % region.root.ways] != uid:
            raise KernelError(errno.ENXIO)  # cxl_region_attach_position(): the wrong host bridge
        hb = mem.port
        hb_dec = next((d for d in hb.decoders.values() if d.region is region), None)
        if hb_dec is None:  # cxl_port_attach_region(): regions in HPA order, the next free decoder
            assert region.start is not None
            if any(d.region is not None and d.region.start is not None and d.region.start > region.start
                   for d in hb.decoders.values()):
                raise KernelError(errno.EBUSY)
            # match_free_decoder() (6.12+): only id commit_end + 1, unreserved, with every
            # decoder below it enabled (no hole left by an out-of-order reset).
            hb_dec = hb.decoders.get(hb.commit_end + 1)
            if hb_dec is None or hb_dec.region is not None or not all(
                    d.enabled for d in hb.decoders.values() if d.id < hb_dec.id):
                raise KernelError(errno.EBUSY)
            hb_dec.region = region
        region.targets[pos] = dec
        dec.region = region
        dec.start, dec.size = region.start or 0, region.size
        dec.ways, dec.granularity = region.ways, region.granularity
        if all(t is not None for t in region.targets):
            self.cxl_region_setup_targets(region)

    def cxl_region_setup_targets(self, region: CxlRegion) -> None:
        """cxl_port_setup_targets() for the host bridges: the distinct root ports the members
        are reached through, in position order; granularity = the region's x root ways."""
        for port in {id(t.port.parent): t.port.parent for t in region.targets if t is not None
                     and t.port.parent is not None}.values():
            hb_dec = next(d for d in port.decoders.values() if d.region is region)
            targets: list[int] = []
            for t in region.targets:
                assert t is not None
                mem = t.port.memdev
                if mem is not None and mem.port is port and mem.dport is not None and mem.dport.id not in targets:
                    targets.append(mem.dport.id)
            hb_dec.targets, hb_dec.ways = targets, len(targets)
            hb_dec.granularity = region.granularity * region.root.ways
            hb_dec.start, hb_dec.size = region.start or 0, region.size

    def _cxl_detach(self, region: CxlRegion, pos: int) -> None:
        """cxl_region_detach(): the member leaves; a host bridge decoder no member uses any
        more is released; every switch decoder's HPA range is reset (ACTIVE -> INTERLEAVE_ACTIVE)."""
        if pos >= len(region.targets) or region.targets[pos] is None:
            return
        dec = region.targets[pos]
        assert dec is not None
        region.targets[pos] = None
        dec.region = None
        dec.start = dec.size = 0
        parent = dec.port.parent
        for port in [p for p in self.cxl_objects.values() if isinstance(p, CxlPort) and p.kind == "port"]:
            for d in port.decoders.values():
                if d.region is region:
                    d.start = d.size = 0
                    still = any(t is not None and t.port.parent is port for t in region.targets)
                    if port is parent and not still:
                        d.region = None

    def commit_store(self, region: CxlRegion, buf: str) -> None:
        """commit_store(): kstrtobool; 1 commits every member's decoders bottom-up, each in
        id order on its port (EBUSY otherwise, cxl_decoder_commit()); ENXIO before ACTIVE.
        0 releases the driver and resets the decoders in reverse (queue_reset())."""
        with self.lock:
            commit = kstrtobool(buf, enable_disable=self.profile >= (6, 16))
            if not commit:
                if region.committed:
                    self.cxl_region_release_driver(region)
                    self.cxl_region_decode_reset(region)
                return
            if region.committed:
                return
            if self._cxl_state(region) < CXL_CONFIG_ACTIVE:
                raise KernelError(errno.ENXIO)
            done: list[CxlDecoder] = []
            for dec in region.targets:
                assert dec is not None
                for d in (dec, *(x for x in self._cxl_route(dec) if x is not dec)):
                    if d.enabled:
                        continue
                    if d.id != d.port.commit_end + 1:
                        for undo in reversed(done):
                            undo.enabled = False
                            undo.port.commit_end -= 1
                        raise KernelError(errno.EBUSY)
                    d.enabled = True
                    d.port.commit_end = d.id
                    done.append(d)
            region.committed = True

    def cxl_region_decode_reset(self, region: CxlRegion) -> None:
        """cxl_region_decode_reset(): every member's decoders, last position first (6.12+:
        out of order is reaped, cxl_port_commit_reap())."""
        if not region.committed:
            return
        for dec in reversed([t for t in region.targets if t is not None]):
            for d in reversed(self._cxl_route(dec)):
                self.cxl_decoder_reset(d)
        region.committed = False

    @staticmethod
    def cxl_decoder_reset(dec: CxlDecoder) -> None:
        """core/hdm.c cxl_decoder_reset(): the port's last committed decoder is reaped with
        every disabled one below it (cxl_port_commit_reap()); one reset out of order is
        disabled but stays counted ("pinned") until the decoders above it go."""
        if not dec.enabled:
            return
        port = dec.port
        dec.enabled = False
        if port.commit_end == dec.id:
            port.commit_end -= 1
            while port.commit_end >= 0 and not port.decoders[port.commit_end].enabled:
                port.commit_end -= 1

    # -- endpoint decoder DPA (core/port.c mode_store, dpa_size_store; core/hdm.c) -------------
    def decoder_mode_store(self, dec: CxlDecoder, buf: str) -> None:
        """mode_store() -> cxl_dpa_set_part()/cxl_dpa_set_mode(): ``ram`` or ``pmem`` (EINVAL),
        EBUSY while committed, ENXIO for an empty partition."""
        with self.lock:
            if sysfs_streq(buf, "ram"):
                mode = "ram"
            elif sysfs_streq(buf, "pmem"):
                mode = "pmem"
            else:
                raise KernelError(errno.EINVAL)
            if dec.enabled:
                raise KernelError(errno.EBUSY)
            mem = dec.port.memdev
            assert mem is not None
            if not (mem.ram_size if mode == "ram" else mem.pmem_size):
                raise KernelError(errno.ENXIO)
            dec.mode = mode

    def dpa_size_store(self, dec: CxlDecoder, buf: str) -> None:
        """dpa_size_store(): 256 MiB multiples (EINVAL); cxl_dpa_free() first (EBUSY in a
        region, committed, or not the endpoint's last allocation), then cxl_dpa_alloc() (EBUSY
        in a region or committed, no mode: EINVAL before 6.15 and EBUSY since, ENOSPC past the
        partition's end, EBUSY out of decoder-id order)."""
        with self.lock:
            size = kstrtoull(buf, 0)
            if size % CXL_GRANULE:
                raise KernelError(errno.EINVAL)
            ep = dec.port
            mem = ep.memdev
            assert mem is not None
            if dec.dpa_start is not None:
                if dec.region is not None or dec.enabled or dec.id != ep.hdm_end:
                    raise KernelError(errno.EBUSY)
                dec.dpa_start, dec.dpa_size = None, 0
                ep.hdm_end = max((d.id for d in ep.decoders.values() if d.dpa_start is not None), default=-1)
            if size == 0:
                return
            if dec.region is not None or dec.enabled:
                raise KernelError(errno.EBUSY)
            if dec.mode == "none":
                raise KernelError(errno.EBUSY if self.profile >= (6, 15) else errno.EINVAL)
            part_start, part_end = (0, mem.ram_size) if dec.mode == "ram" else (
                mem.ram_size, mem.ram_size + mem.pmem_size)
            start = max((d.dpa_start + d.dpa_size for d in ep.decoders.values()
                         if d.dpa_start is not None and part_start <= d.dpa_start < part_end), default=part_start)
            if start + size > part_end:
                raise KernelError(errno.ENOSPC)
            if dec.id != ep.hdm_end + 1:
                raise KernelError(errno.EBUSY)
            dec.dpa_start, dec.dpa_size = start, size
            ep.hdm_end = dec.id

    # -- region enable (cxl_region driver) and its dax region ------------------------------
    def cxl_region_probe(self, region: CxlRegion) -> None:
        """cxl_region_probe(): ENXIO before commit; a ram region gets ``dax_regionN`` on the
        cxl bus, whose cxl_dax_region probe makes the dax region and ``daxN.0`` (kmem by
        default, memmap_on_memory=1: drivers/dax/cxl.c cxl_dax_region_probe())."""
        if not region.committed or region.start is None:
            raise KernelError(errno.ENXIO)
        pdev = self.dax_producer_devices[region.devpath]
        if region.mode == "pmem":
            self.devm_cxl_add_pmem_region(region)
            pdev.driver = "cxl_region"
            self._pdev_uevent("bind", pdev)
            return
        parent = self._producer_device(f"{region.devpath}/dax_region{region.id}", "cxl", driver="cxl_dax_region",
                                       devtype="cxl_dax_region", modalias=f"cxl:t{CXL_DEVICE_DAX_REGION}")
        self._pdev_uevent("add", parent)
        target = region.root.target_node
        numa_node = self.numa_map_to_online_node(target, need_cpus=True)
        dax = self.alloc_dax_region(parent, region.id, region.start, region.start + region.size - 1, target,
                                    PMD_SIZE, IORESOURCE_DAX_KMEM, numa_node=numa_node, producer="cxl",
                                    adistance=None)
        if dax is not None:
            self.devm_create_dev_dax(dax, -1, region.size, memmap_on_memory=True)
            self._pdev_uevent("bind", parent)
        pdev.driver = "cxl_region"
        self._pdev_uevent("bind", pdev)

    def devm_cxl_add_pmem_region(self, region: CxlRegion) -> None:
        """core/pmem_region.c (core/region.c before 6.17) devm_cxl_add_pmem_region(): the
        nvdimm bridge must exist (ENODEV) and be bound (ENXIO); every member needs its
        ``pmemN`` (ENODEV, cxl_pmem_region_alloc()); then ``pmem_regionN`` joins the bus and
        cxl_pmem_region probes it (its libnvdimm region is not modelled: docs/cxl.md). That
        probe refuses a member with serial 0 (drivers/cxl/pmem.c cxl_pmem_region_probe())
        without failing the region's bind."""
        bound = self.cxl_nvdimm_bridge_bound()
        if bound is None:
            raise KernelError(errno.ENODEV)
        if not bound:
            raise KernelError(errno.ENXIO)
        mems = [t.port.memdev for t in region.targets if t is not None]
        if any(m is None or f"{m.devpath}/pmem{m.id}" not in self.dax_producer_devices for m in mems):
            raise KernelError(errno.ENODEV)
        probe_ok = all(m is not None and m.serial for m in mems)
        ppath = f"{region.devpath}/pmem_region{region.id}"
        pmem = self._producer_device(ppath, "cxl", devtype="cxl_pmem_region", modalias=f"cxl:t{CXL_DEVICE_PMEM_REGION}")
        self._pdev_uevent("add", pmem)
        if probe_ok:
            pmem.driver = "cxl_pmem_region"
            self._pdev_uevent("bind", pmem)

    def cxl_region_release_driver(self, region: CxlRegion) -> None:
        """device_release_driver() of a region: its dax region goes (dax devices newest first;
        kmem leaks what is still online), then ``unbind``."""
        pdev = self.dax_producer_devices.get(region.devpath)
        if pdev is None or pdev.driver is None:
            return
        parent = self.dax_producer_devices.get(f"{region.devpath}/dax_region{region.id}")
        if parent is not None:
            self.dax_region_teardown(parent, parent.region)
            del self.dax_producer_devices[parent.devpath]
        pmem = self.dax_producer_devices.get(f"{region.devpath}/pmem_region{region.id}")
        if pmem is not None:  # device_unregister(): unbind (if probed), then remove
            if pmem.driver is not None:
                pmem.driver = None
                self._pdev_uevent("unbind", pmem)
            self._pdev_uevent("remove", pmem)
            del self.dax_producer_devices[pmem.devpath]
        pdev.driver = None
        self._pdev_uevent("unbind", pdev)

    # -- the bus --------------------------------------------------------------------------
    def cxl_bus_device(self, buf: str) -> str | None:
        """bus_find_device_by_name() on the cxl bus: the devpath."""
        for pdev in self.dax_producer_devices.values():
            if pdev.bus == "cxl" and sysfs_streq(pdev.name, buf):
                return pdev.devpath
        return None

    def cxl_bind_store(self, driver: str, buf: str) -> None:
        """drivers/base/bus.c bind_store(): ENODEV for an unknown device or one the driver does
        not match (cxl_bus_match(): by device id), EBUSY if bound; then the probe."""
        with self.lock:
            ids = {name: dev_id for name, dev_id, _ in CXL_DRIVERS}
            devpath = self.cxl_bus_device(buf)
            pdev = self.dax_producer_devices.get(devpath) if devpath is not None else None
            if pdev is None or DEVTYPE_IDS.get(pdev.devtype or "") != ids[driver]:
                raise KernelError(errno.ENODEV)
            if pdev.driver is not None:
                raise KernelError(errno.EBUSY)
            obj = self.cxl_objects.get(pdev.devpath)
            if isinstance(obj, CxlMemdev):
                # cxl_mem_probe(): the port above must be enabled.
                if obj.port is None or self.dax_producer_devices[obj.port.devpath].driver is None:
                    raise KernelError(errno.ENXIO)
                self.cxl_mem_probe(obj)
                assert obj.endpoint is not None
                ep = self.dax_producer_devices[obj.endpoint.devpath]
                nvd = f"{obj.devpath}/pmem{obj.id}"
                if nvd in self.dax_producer_devices:
                    self._cxl_uevent("add", nvd)
                    self._cxl_uevent("bind", nvd)
                self._cxl_uevent("add", obj.endpoint.devpath)
                for dec in obj.endpoint.decoders.values():
                    self._cxl_uevent("add", dec.devpath)
                self._cxl_uevent("bind", ep.devpath)
                pdev.driver = driver
                self._cxl_uevent("bind", pdev.devpath)
                return
            if isinstance(obj, CxlRegion):
                self.cxl_region_probe(obj)
                return
            if isinstance(obj, CxlPort) and obj.kind == "port":
                self.cxl_port_probe(obj)
                return
            # An endpoint port's probe alone is not modelled: it comes with its memdev's.
            raise KernelError(errno.ENXIO)

    def cxl_unbind_store(self, driver: str, buf: str) -> None:
        """drivers/base/bus.c unbind_store(): ENODEV unless bound to this very driver."""
        with self.lock:
            devpath = self.cxl_bus_device(buf)
            pdev = self.dax_producer_devices.get(devpath) if devpath is not None else None
            if pdev is None or pdev.driver != driver:
                raise KernelError(errno.ENODEV)
            obj = self.cxl_objects.get(pdev.devpath)
            if isinstance(obj, CxlRegion):
                self.cxl_region_release_driver(obj)
                return
            if isinstance(obj, CxlPort) and obj.kind == "port":
                self.cxl_port_remove(obj)
                return
            if not isinstance(obj, CxlMemdev) or obj.endpoint is None:
                raise KernelError(errno.EBUSY)  # an endpoint port's own unbind is not modelled (docs/cxl.md)
            self.cxl_mem_remove(obj)

    def cxl_mem_remove(self, mem: CxlMemdev) -> None:
        """cxl_mem unbound: its devm actions, delete_endpoint() first: the endpoint's decoders
        are unregistered, then the port. A decoder in a region leaves it first
        (cxl_decoder_kill_region(): the region is decode-reset and its driver released; the
        region device stays, a target short)."""
        ep = mem.endpoint
        assert ep is not None
        for dec in reversed(list(ep.decoders.values())):
            region = dec.region
            if region is not None and dec in region.targets:
                self.cxl_region_release_driver(region)
                self.cxl_region_decode_reset(region)
                self._cxl_detach(region, region.targets.index(dec))
            self._cxl_del_device(dec.devpath)
        self._cxl_uevent("unbind", ep.devpath)
        self._cxl_del_device(ep.devpath)
        self._cxl_port_ids.discard(ep.id)
        mem.endpoint = None
        nvd = f"{mem.devpath}/pmem{mem.id}"
        if nvd in self.dax_producer_devices:  # devm: unregister_nvdimm(), after the endpoint
            self._cxl_uevent("unbind", nvd)
            self._cxl_uevent("remove", nvd)
            del self.dax_producer_devices[nvd]
        pdev = self.dax_producer_devices[mem.devpath]
        pdev.driver = None
        self._cxl_uevent("unbind", pdev.devpath)

    def _cxl_del_device(self, devpath: str) -> None:
        """device_unregister(): ``remove``, then gone."""
        self._cxl_uevent("remove", devpath)
        del self.dax_producer_devices[devpath]
        del self.cxl_objects[devpath]

    def cxl_port_remove(self, port: CxlPort) -> None:
        """A host-bridge port unbound from cxl_port: its devm actions in reverse: the endpoints
        below it go, each memdev detached from cxl_mem (drivers/cxl/port.c schedule_detach();
        the kernel does that on cxl_bus_wq, which ``flush`` waits for: synchronous here), then
        its decoders and dports. The port stays, unbound (drivers/cxl/core/port.c)."""
        for mem in list(self.cxl_memdevs.values()):
            if mem.port is port and mem.endpoint is not None:
                self.cxl_mem_remove(mem)
        for dec in reversed(list(port.decoders.values())):
            region = dec.region
            if region is not None:
                self.cxl_region_release_driver(region)
                self.cxl_region_decode_reset(region)
            self._cxl_del_device(dec.devpath)
        port.decoders.clear()
        port.commit_end = -1
        port.dports = {}
        self.dax_producer_devices[port.devpath].driver = None
        self._cxl_uevent("unbind", port.devpath)

    def cxl_port_probe(self, port: CxlPort) -> None:
        """cxl_port_probe() of a host-bridge port (6.17 and before: all at probe): its dports
        (the root ports below the host bridge), then its HDM decoders, ids from 0 again."""
        port.dports = dict(port.hw_dports)
        for _ in range(NR_HDM_DECODERS):
            dec = self.cxl_add_decoder(port, "switch")
            self._cxl_uevent("add", dec.devpath)
        self.dax_producer_devices[port.devpath].driver = "cxl_port"
        self._cxl_uevent("bind", port.devpath)

    def cxl_flush_store(self, buf: str) -> None:
        """drivers/cxl/core/port.c flush_store(): ``1`` flushes cxl_bus_wq (nothing is ever
        queued here: every probe is synchronous), anything else EINVAL."""
        if not sysfs_streq(buf, "1"):
            raise KernelError(errno.EINVAL)

    def _cxl_uevent(self, action: str, devpath: str) -> None:
        pdev = self.dax_producer_devices[devpath]
        env = pdev.uevent_env()
        if action != "bind":
            env = [(k, v) for k, v in env if k != "DRIVER"]
        obj = self.cxl_objects.get(devpath)
        if isinstance(obj, CxlMemdev):
            env = [("MAJOR", str(self.cxl_major)), ("MINOR", str(obj.id)), ("DEVNAME", f"cxl/{obj.name}"), *env]
        self.uevent(action, devpath, "cxl", tuple(env))

    def cxl_memdev_uevent_env(self, mem: CxlMemdev) -> list[tuple[str, str]]:
        """dev_uevent(): MAJOR, MINOR, DEVNAME (cxl_memdev_devnode()), then the rest."""
        pdev = self.dax_producer_devices[mem.devpath]
        return [("MAJOR", str(self.cxl_major)), ("MINOR", str(mem.id)), ("DEVNAME", f"cxl/{mem.name}"),
                *pdev.uevent_env()]


def _uuid_parse_ok(text: str) -> bool:
    """lib/uuid.c uuid_is_valid(): 36 characters, dashes at 8, 13, 18, 23, hex elsewhere."""
    return len(text) == UUID_STRING_LEN and all(
        (c == "-") if i in (8, 13, 18, 23) else (c in "0123456789abcdefABCDEF") for i, c in enumerate(text))


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _sscanf_region(buf: str) -> int | None:
    """``sscanf(buf, "region%d\n", &id)`` matched its one conversion: ``%d`` skips white
    space, takes a sign and digits; what follows is not looked at."""
    if not buf.startswith("region"):
        return None
    rest = buf[6:].lstrip(" \t\n\v\f\r")
    sign = -1 if rest[:1] == "-" else 1
    rest = rest[1:] if rest[:1] in "+-" and rest else rest
    digits = ""
    for ch in rest:
        if not ("0" <= ch <= "9"):
            break
        digits += ch
    return sign * int(digits) if digits else None


__all__ = ["CXL_DRIVERS", "CxlDecoder", "CxlDport", "CxlMemdev", "CxlMixin", "CxlObject", "CxlPort",
           "CxlRegion"]
