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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import ConfigError, KernelError
from ..klib import sysfs_streq
from .dax import DaxMixin, DevDax

if TYPE_CHECKING:
    from ..config import CxlMemdevConfig, CxlRegionConfig, CxlWindowConfig

CXL_ROOT = "/devices/platform/ACPI0017:00"
#: drivers/cxl/cxl.h CXL_DECODER_MIN_GRANULARITY: what a x1 window reports.
CXL_DECODER_MIN_GRANULARITY = 256
#: HDM decoders of a host bridge and of an endpoint (the HDM Decoder Capability's count).
NR_HDM_DECODERS = 4
#: include/linux/range.h ULLONG_MAX: ``dpa_resource`` of a decoder without DPA.
RESOURCE_NONE = (1 << 64) - 1
#: First PCI bus number given to a host bridge (buses are numbered from it in _UID order).
FIRST_BUS = 0x0C

#: drivers/cxl/cxl.h CXL_DEVICE_* ids: ``modalias`` ``cxl:t<id>``; a driver binds by id
#: (drivers/cxl/core/port.c cxl_bus_match()). Decoders match none (0).
CXL_DEVICE_NVDIMM_BRIDGE = 1
CXL_DEVICE_PORT = 3
CXL_DEVICE_ROOT = 4
CXL_DEVICE_MEMORY_EXPANDER = 5
CXL_DEVICE_REGION = 6
CXL_DEVICE_DAX_REGION = 8
#: The CXL bus drivers, in registration order: name, device id, suppress_bind_attrs
#: (drivers/cxl/port.c, mem.c, core/region.c cxl_region_driver, drivers/dax/cxl.c).
CXL_DRIVERS = (
    ("cxl_port", CXL_DEVICE_PORT, False),
    ("cxl_mem", CXL_DEVICE_MEMORY_EXPANDER, False),
    ("cxl_region", CXL_DEVICE_REGION, False),
    ("cxl_dax_region", CXL_DEVICE_DAX_REGION, True),
)
DEVTYPE_IDS = {"cxl_port": CXL_DEVICE_PORT, "cxl_memdev": CXL_DEVICE_MEMORY_EXPANDER,
               "cxl_region": CXL_DEVICE_REGION, "cxl_dax_region": CXL_DEVICE_DAX_REGION}


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

    # -- boot ---------------------------------------------------------------------------------
    def dax_boot(self) -> None:
        """The dax producers, then the CXL topology around the regions firmware assembled."""
        self._cxl_fw_regions = []
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

    def _cxl_declared_window(self, cfg: CxlRegionConfig) -> CxlWindowConfig | None:
        prefix, _, did = cfg.decoder.partition(".")
        if prefix != "decoder0" or not did.isdigit() or int(did) >= len(self.config.cxl_windows):
            return None
        win = self.config.cxl_windows[int(did)]
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
        for i, win in enumerate(cfg.cxl_windows):
            self.cxl_add_root_decoder(i, win)
        for uid in uids:  # add_host_bridge_uport(): port<id>, with dports and HDM decoders
            bridge = self.cxl_host_bridges[uid]
            port = self.cxl_add_port("port", f"{root.devpath}/port", bridge, root, root.dports[uid])
            for n, mem in enumerate([m for m in cfg.cxl_memdevs if m.host_bridge == uid]):
                del mem
                rp = f"{bridge}/0000:{hb_buses[uid]:02x}:{n:02x}.0"
                self._producer_device(rp, "pci", driver="pcieport")
                port.dports[n] = CxlDport(n, rp)
            for _ in range(NR_HDM_DECODERS):
                self.cxl_add_decoder(port, "switch")
        per_hb: dict[int, int] = {}
        for i, mem in enumerate(cfg.cxl_memdevs):
            n = per_hb.get(mem.host_bridge, 0)
            per_hb[mem.host_bridge] = n + 1
            self.cxl_pci_probe(i, mem, hb_buses[mem.host_bridge], n)
        for index, rid in self._cxl_fw_regions:
            self.cxl_region_register(rid, cfg.cxl_regions[index], f"cxl_region[{index}]")

    def cxl_root_init(self) -> None:
        """cxl_acpi_probe(): ``ACPI0017:00`` bound to cxl_acpi, ``root0`` (no driver: none has id 4)."""
        if self.cxl_root is not None:
            return
        self._producer_device(CXL_ROOT, "platform", driver="cxl_acpi", modalias="acpi:ACPI0017:")
        pid = self._cxl_port_id()
        root = CxlPort(pid, "root", f"{CXL_ROOT}/root{pid}", CXL_ROOT)
        self._producer_device(root.devpath, "cxl", devtype="cxl_port", modalias=f"cxl:t{CXL_DEVICE_ROOT}")
        self.cxl_objects[root.devpath] = root
        self.cxl_root = root

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
        """devm_cxl_add_endpoint(): ``endpoint<id>`` under the memdev's port, its decoders."""
        assert mem.port is not None and mem.dport is not None
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
        if did < len(self.config.cxl_windows) and self._cxl_declared_window(cfg) is None:
            return None  # outside the window it names: shown as a plain device, without CXL attributes
        if dec is None:
            dec = CxlDecoder(root, did, "root", cfg.start, cfg.size, enabled=True, cap_ram=True,
                             target_node=cfg.target_node)
            root.decoders[did] = dec
            self.cxl_objects[dec.devpath] = dec
        elif did >= len(self.config.cxl_windows):  # an implicit window grows to hold this region too
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
        explicit = dec.id < len(self.config.cxl_windows)
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
        for ep_dec in reversed([t for t in region.targets if t is not None]):
            for dec in self._cxl_route(ep_dec):
                dec.enabled = False
                dec.region = None
                dec.start = dec.size = 0
                dec.port.commit_end = max((d.id for d in dec.port.decoders.values() if d.enabled), default=-1)
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
                self._cxl_uevent("add", obj.endpoint.devpath)
                for dec in obj.endpoint.decoders.values():
                    self._cxl_uevent("add", dec.devpath)
                self._cxl_uevent("bind", ep.devpath)
                pdev.driver = driver
                self._cxl_uevent("bind", pdev.devpath)
                return
            # A port or region probe that is not modelled (only what boot made is enabled).
            raise KernelError(errno.ENXIO)

    def cxl_unbind_store(self, driver: str, buf: str) -> None:
        """drivers/base/bus.c unbind_store(): ENODEV unless bound to this very driver."""
        with self.lock:
            devpath = self.cxl_bus_device(buf)
            pdev = self.dax_producer_devices.get(devpath) if devpath is not None else None
            if pdev is None or pdev.driver != driver:
                raise KernelError(errno.ENODEV)
            obj = self.cxl_objects.get(pdev.devpath)
            if not isinstance(obj, CxlMemdev) or obj.endpoint is None:
                raise KernelError(errno.EBUSY)  # port and region teardown are not modelled yet
            ep = obj.endpoint
            if any(d.region is not None for d in ep.decoders.values()):
                raise KernelError(errno.EBUSY)  # region teardown on detach is not modelled yet
            # cxl_mem's devm actions: delete_endpoint() unregisters the decoders, then the port.
            for dec in reversed(list(ep.decoders.values())):
                self._cxl_uevent("remove", dec.devpath)
                del self.dax_producer_devices[dec.devpath]
                del self.cxl_objects[dec.devpath]
            self._cxl_uevent("unbind", ep.devpath)
            self._cxl_uevent("remove", ep.devpath)
            del self.dax_producer_devices[ep.devpath]
            del self.cxl_objects[ep.devpath]
            self._cxl_port_ids.discard(ep.id)
            obj.endpoint = None
            pdev.driver = None
            self._cxl_uevent("unbind", pdev.devpath)

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


__all__ = ["CXL_DRIVERS", "CXL_ROOT", "CxlDecoder", "CxlDport", "CxlMemdev", "CxlMixin", "CxlObject", "CxlPort",
           "CxlRegion"]
