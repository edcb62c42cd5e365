"""The DAX bus, kmem and device_dax, and the hmem/CXL/pmem producers, driven through the
attribute tree the way a shell drives /sys (docs/abi.md: the dax bus, kmem, examples 1-5).

Every test boots its own topology from BootConfig dataclasses (``boot()``) in a
``Simulation``, then only reads and writes files (``cat``/``echo``, which follow symlinks as
the VFS does), and looks at the engine only for what has no sysfs file (kernel log,
/proc/iomem, memory groups).
"""

from __future__ import annotations

import errno
import os
import stat

import pytest
from conftest import example_config, file_mode, meminfo, read_errno, uevents, write_errno

from fakesysfs import Simulation
from fakesysfs.config import (
    CxlRegionConfig,
    GiB,
    HmemConfig,
    MemRange,
    MiB,
    NodeConfig,
    PmemConfig,
)
from fakesysfs.errors import ConfigError, KernelError

# -- topology helpers ---------------------------------------------------------------------------
CXL_START = 0x1050000000
CXL_SIZE = 16 * GiB
CXL_REG = "/devices/platform/ACPI0017:00/root0/decoder0.0/region0/dax_region0"
CXL_DEV = f"{CXL_REG}/dax0.0"
BUS = "/bus/dax"
KMEM = f"{BUS}/drivers/kmem"
DEVDAX = f"{BUS}/drivers/device_dax"
A2_BLOCKS = range(522, 650)


def boot(*, validate: bool = True, **overrides) -> Simulation:
    """docs/abi.md "Worked examples" common setup: node 0 has 16 GiB of boot memory and both
    CPUs, node 1 is possible but offline, one 16 GiB CXL region0 at 0x1050000000 for node 1,
    memmap_on_memory=Y, kmem and device_dax loaded, drivers_autoprobe=1. ``validate=False``:
    firmware a topology file refuses but the kernel meets (see ``Simulation``)."""
    overrides.setdefault("cxl_regions", [CxlRegionConfig(CXL_START, CXL_SIZE, target_node=1)])
    return Simulation(example_config(**overrides), validate=validate)


def hmem_only(start: int = 0x2000000000, size: int = 1 * GiB, target: int = 1, **overrides) -> Simulation:
    """hmem ranges only (by default one, ``hmem.0``/``dax0.0``), no CXL region."""
    overrides.setdefault("hmem", [HmemConfig(start, size, target_node=target)])
    return boot(cxl_regions=[], **overrides)


def event_env(s: Simulation, since: int = 0) -> list[tuple[str, str, dict[str, str]]]:
    """(action, devpath, every property) of each uevent after ``since``."""
    return [(e.action, e.devpath, e.properties()) for e in s.events(since)]


def online_blocks(s: Simulation, blocks: range, word: str = "online_movable") -> None:
    for bid in blocks:
        assert s.echo(f"/devices/system/memory/memory{bid}/state", word) == len(word) + 1


def offline_blocks(s: Simulation, blocks: range) -> None:
    for bid in blocks:
        assert s.echo(f"/devices/system/memory/memory{bid}/state", "offline") == 8


def memory_events(events: list[tuple[str, str]], action: str) -> list[int]:
    prefix = "/devices/system/memory/memory"
    return [int(p[len(prefix):]) for a, p in events if a == action and p.startswith(prefix)]


def kmem_add_events(s: Simulation, blocks: range, nid: int = 1) -> list[tuple[str, str]]:
    """The events of an add for a new node: 6.18 ("activate node before adding new memory
    blocks") registers the node first, earlier kernels after the blocks (R-ADD-03)."""
    node = [("add", f"/devices/system/node/node{nid}")]
    mem = [("add", f"/devices/system/memory/memory{b}") for b in blocks]
    return node + mem if s.kernel.profile >= (6, 18) else mem + node


def since_add_of(s: Simulation, devpath: str) -> list[tuple[str, str, dict[str, str]]]:
    """The boot events from the ``add`` of a dax device on."""
    events = event_env(s)
    first = next(i for i, (a, p, _) in enumerate(events) if a == "add" and p == devpath)
    return events[first:]


# -- 1.7 /sys/bus/dax ----------------------------------------------------------------------------
def test_bus_dax_has_devices_drivers_and_bus_files_with_their_modes() -> None:
    s = boot()
    assert sorted(s.ls(BUS)) == ["devices", "drivers", "drivers_autoprobe", "drivers_probe", "uevent"]
    assert file_mode(s, f"{BUS}/drivers_autoprobe") == 0o644
    assert s.cat(f"{BUS}/drivers_autoprobe") == "1\n"
    assert file_mode(s, f"{BUS}/drivers_probe") == 0o200
    assert file_mode(s, f"{BUS}/uevent") == 0o200
    assert s.ls(f"{BUS}/drivers") == ["device_dax", "kmem"]
    assert s.readlink(f"{BUS}/devices/dax0.0") == f"../../..{CXL_DEV}"


def test_driver_directory_has_write_only_files_module_link_and_bound_devices() -> None:
    s = boot()
    for drv in ("kmem", "device_dax"):
        here = f"{BUS}/drivers/{drv}"
        for name in ("bind", "unbind", "new_id", "remove_id", "uevent"):
            assert file_mode(s, f"{here}/{name}") == 0o200
            assert read_errno(s, f"{here}/{name}") == errno.EACCES  # R-SYS-01
        assert s.readlink(f"{here}/module") == f"../../../../module/{drv}"
        assert s.realpath(f"{here}/module") == f"/module/{drv}"
    assert "dax0.0" in s.ls(KMEM)
    assert s.readlink(f"{KMEM}/dax0.0") == f"../../../..{CXL_DEV}"
    assert "dax0.0" not in s.ls(DEVDAX)


def test_driver_directories_exist_only_while_the_module_is_loaded() -> None:
    s = boot(kmem_loaded=False)
    assert s.ls(f"{BUS}/drivers") == ["device_dax"]
    assert not s.exists("/module/kmem")
    assert s.cat(f"{CXL_DEV}/uevent").count("DRIVER=") == 0  # nothing matched the kmem type
    s.kernel.dax_driver_register("kmem")  # modprobe kmem: autoprobe attaches it at once
    assert s.ls(f"{BUS}/drivers") == ["device_dax", "kmem"]
    assert s.cat("/module/kmem/initstate") == "live\n"
    assert s.realpath(f"{CXL_DEV}/driver") == KMEM


def test_no_class_dax_directory_exists() -> None:
    s = boot()
    assert not s.exists("/class/dax")  # docs/clients.md: daxctl would use the dax-class model


def test_module_directories_carry_live_initstate_and_the_hmem_region_idle_parameter() -> None:
    s = boot()
    for name in ("kmem", "device_dax"):
        assert s.cat(f"/module/{name}/initstate") == "live\n"
        assert s.realpath(f"/module/{name}/drivers/dax:{name}") == f"{BUS}/drivers/{name}"
        assert file_mode(s, f"/module/{name}/uevent") == 0o200
    idle = "/module/dax_hmem/parameters/region_idle"
    assert file_mode(s, idle) == 0o644
    assert s.cat(idle) == "N\n"
    assert s.echo(idle, "1") == 2
    assert s.cat(idle) == "Y\n"
    assert write_errno(s, idle, "maybe") == errno.EINVAL


# -- 1.8 device directory ----------------------------------------------------------------------
def test_dynamic_device_files_have_the_modes_of_dev_dax_visible() -> None:
    s = boot()
    modes = {
        "size": 0o644, "mapping": 0o200, "align": 0o644, "target_node": 0o444, "numa_node": 0o444,
        "resource": 0o400, "modalias": 0o444, "memmap_on_memory": 0o644, "dev": 0o444, "uevent": 0o644,
    }  # fmt: skip
    for name, mode in modes.items():
        assert file_mode(s, f"{CXL_DEV}/{name}") == mode, name
    assert s.cat(f"{CXL_DEV}/modalias") == "dax:t0\n"
    assert s.cat(f"{CXL_DEV}/dev") == "252:0\n"
    assert s.cat(f"{CXL_DEV}/numa_node") == "0\n"  # nearest CPU node of the offline target
    assert write_errno(s, f"{CXL_DEV}/target_node", "2") == errno.EACCES
    assert s.realpath(f"{CXL_DEV}/subsystem") == BUS
    assert s.readlink(f"{CXL_DEV}/subsystem") == "../../../../../../../../bus/dax"  # eight ../
    assert sorted(s.ls(f"{CXL_DEV}/power")) == [
        "autosuspend_delay_ms", "control", "runtime_active_time", "runtime_status", "runtime_suspended_time",
    ]  # fmt: skip


def test_static_pmem_device_has_read_only_size_and_align_and_no_mapping_file() -> None:
    s = boot(cxl_regions=[], pmem=[PmemConfig("namespace0.0", 0x2400000000, 4 * GiB, target_node=0)])
    dev = "/devices/platform/e820_pmem/ndbus0/region0/dax0.0/dax0.0"
    assert s.realpath(f"{BUS}/devices/dax0.0") == dev  # R-PATH-02: the familiar doubled dax0.0/dax0.0
    assert file_mode(s, f"{dev}/size") == 0o444
    assert file_mode(s, f"{dev}/align") == 0o444
    assert not s.exists(f"{dev}/mapping")
    assert s.cat(f"{dev}/size") == f"{4 * GiB - 2 * MiB}\n"  # data area after the 2 MiB info block
    assert s.cat(f"{dev}/resource") == "0x2400200000\n"
    assert write_errno(s, f"{dev}/size", "0") == errno.EACCES
    assert sorted(s.ls(f"{dev}/../dax_region")) == ["align", "id", "size"]  # 1.10: static hides four


def test_target_node_file_is_absent_when_the_target_node_is_negative() -> None:
    s = hmem_only(target=-1, possible_nodes=[0], validate=False)
    assert not s.exists("/devices/platform/hmem.0/dax0.0/target_node")
    assert "target_node" not in s.ls("/devices/platform/hmem.0/dax0.0")


def test_resource_of_a_device_without_ranges_is_the_region_start() -> None:
    s = hmem_only(dax_hmem_region_idle=True)
    assert s.cat(f"{BUS}/devices/dax0.0/size") == "0\n"
    assert s.cat(f"{BUS}/devices/dax0.0/resource") == "0x2000000000\n"
    assert s.ls(f"{BUS}/devices/dax0.0").count("mapping0") == 0


def test_dev_char_link_points_at_the_device_and_its_subsystem_is_bus_dax() -> None:
    s = boot()
    assert s.ls("/dev/char") == ["252:0"]
    assert s.readlink("/dev/char/252:0") == f"../..{CXL_DEV}"
    assert s.realpath("/dev/char/252:0/subsystem") == BUS  # docs/clients.md: not dax-class


# -- 1.9 mappingN ------------------------------------------------------------------------------
def test_mapping_directory_prints_start_end_and_page_offset_root_only() -> None:
    s = boot()
    m0 = f"{CXL_DEV}/mapping0"
    assert sorted(s.ls(m0)) == ["end", "page_offset", "power", "start", "uevent"]
    for name in ("start", "end", "page_offset"):
        assert file_mode(s, f"{m0}/{name}") == 0o400
    assert s.cat(f"{m0}/start") == "0x1050000000\n"
    assert s.cat(f"{m0}/end") == "0x144fffffff\n"
    assert s.cat(f"{m0}/page_offset") == "0x0\n"  # the kernel's %#lx prints 0x even for 0
    assert s.cat(f"{m0}/uevent") == ""
    assert not s.exists(f"{m0}/subsystem")


def test_mapping_uevent_write_emits_nothing_because_the_mapping_has_no_bus() -> None:
    s = boot()
    mark = s.kernel.events.seqnum
    assert s.echo(f"{CXL_DEV}/mapping0/uevent", "change") == 7
    assert uevents(s, mark) == []  # R-SYS-09


def test_mapping_read_of_a_mapping_being_torn_down_is_enxio() -> None:
    s = hmem_only(dax_hmem_region_idle=True)
    dev = f"{BUS}/devices/dax0.0"
    s.echo(f"{dev}/size", str(256 * MiB))
    fh = s.tree.open(s.realpath(f"{dev}/mapping0/start"), os.O_RDONLY)
    s.echo(f"{dev}/size", "0")  # the range and its mapping0 go
    with pytest.raises(KernelError) as exc:
        s.tree.read(fh, 4096, 0)
    assert exc.value.errno == errno.ENXIO


# -- 1.10 dax_region/ ----------------------------------------------------------------------
def test_dynamic_region_attributes_and_their_modes() -> None:
    s = boot()
    reg = f"{BUS}/devices/dax0.0/../dax_region"
    assert s.realpath(reg) == f"{CXL_REG}/dax_region"
    expect = {
        "id": (0o444, "0\n"), "size": (0o444, "17179869184\n"), "align": (0o400, "2097152\n"),
        "available_size": (0o444, "0\n"), "seed": (0o444, "\n"), "create": (0o644, "\n"),
    }  # fmt: skip
    for name, (mode, text) in expect.items():
        assert file_mode(s, f"{reg}/{name}") == mode, name
        assert s.cat(f"{reg}/{name}") == text, name
    assert file_mode(s, f"{reg}/delete") == 0o200
    assert read_errno(s, f"{reg}/delete") == errno.EACCES


# -- 1.11 canonical locations ----------------------------------------------------------------
def test_hmem_and_cxl_region_ids_share_one_allocator() -> None:
    """R-PATH-01: region0 (CXL) and hmem.1, never hmem.0 beside region0."""
    s = boot(hmem=[HmemConfig(0x2000000000, 1 * GiB, target_node=1)])
    assert s.realpath(f"{BUS}/devices/dax0.0") == CXL_DEV
    assert s.realpath(f"{BUS}/devices/dax1.0") == "/devices/platform/hmem.1/dax1.0"
    assert s.readlink(f"{BUS}/devices/dax1.0") == "../../../devices/platform/hmem.1/dax1.0"
    assert s.readlink("/devices/platform/hmem.1/dax1.0/subsystem") == "../../../../bus/dax"
    assert not s.exists("/devices/platform/hmem.0")


def test_pmem_takes_region_and_device_id_from_its_namespace() -> None:
    """R-PATH-02, and its region id is held in the shared allocator (hmem skips it)."""
    s = boot(cxl_regions=[], hmem=[HmemConfig(0x2000000000, 1 * GiB, target_node=1)],
             pmem=[PmemConfig("namespace0.1", 0x2400000000, 1 * GiB, target_node=0)], validate=False)
    assert s.realpath(f"{BUS}/devices/dax0.1") == "/devices/platform/e820_pmem/ndbus0/region0/dax0.1/dax0.1"
    assert s.realpath(f"{BUS}/devices/dax1.0") == "/devices/platform/hmem.1/dax1.0"


def test_producer_devices_have_uevent_subsystem_and_driver_links() -> None:
    s = boot(hmem=[HmemConfig(0x2000000000, 1 * GiB, target_node=1)])
    assert s.cat("/devices/platform/hmem.1/uevent") == "DRIVER=hmem\nMODALIAS=platform:hmem\n"
    assert s.realpath("/devices/platform/hmem.1/subsystem") == "/bus/platform"
    assert s.realpath("/devices/platform/hmem.1/driver") == "/bus/platform/drivers/hmem"
    assert s.cat(f"{CXL_REG}/uevent") == "DEVTYPE=cxl_dax_region\nDRIVER=cxl_dax_region\nMODALIAS=cxl:t8\n"
    assert s.realpath(f"{CXL_REG}/driver") == "/bus/cxl/drivers/cxl_dax_region"
    assert s.realpath("/bus/cxl/devices/region0") == CXL_REG.rsplit("/", 1)[0]


def test_device_numa_node_is_inherited_from_the_parent() -> None:
    """5.1: hmem.N takes the nearest online node of its target, CXL the nearest CPU node."""
    s = boot(
        nodes=[NodeConfig(0, cpus=[0, 1], memory=[MemRange(0, 16 * GiB)]),
               NodeConfig(2, memory=[MemRange(16 * GiB, 4 * GiB)])],
        possible_nodes=[0, 1, 2],
        distances={1: {0: 20, 2: 15}},
        hmem=[HmemConfig(0x2000000000, 1 * GiB, target_node=1)],
        dax_drivers_autoprobe=False,
    )  # fmt: skip
    assert s.cat("/devices/platform/hmem.1/numa_node") == "2\n"
    assert s.cat(f"{BUS}/devices/dax1.0/numa_node") == "2\n"
    assert s.cat(f"{BUS}/devices/dax0.0/numa_node") == "0\n"


# -- 5.1 producers ---------------------------------------------------------------------------
def test_memmap_on_memory_defaults_cxl_one_hmem_and_pmem_zero_even_when_impossible() -> None:
    """R-DAX-MOM-01: the CXL default reads 1 although memmap_on_memory=N."""
    s = boot(memmap_on_memory="N", hmem=[HmemConfig(0x2000000000, 1 * GiB, target_node=1)],
             pmem=[PmemConfig("namespace5.0", 0x2400000000, 1 * GiB, target_node=0)])
    assert s.cat(f"{BUS}/devices/dax0.0/memmap_on_memory") == "1\n"
    assert s.cat(f"{BUS}/devices/dax1.0/memmap_on_memory") == "0\n"
    assert s.cat(f"{BUS}/devices/dax5.0/memmap_on_memory") == "0\n"


def test_hmem_region_idle_gives_a_size_zero_device_and_no_kmem_flag() -> None:
    """R-DAXC-02: read at region creation; the device then matches device_dax, not kmem."""
    s = hmem_only(dax_hmem_region_idle=True)
    dev = f"{BUS}/devices/dax0.0"
    assert s.cat(f"{dev}/size") == "0\n"
    assert not s.exists(f"{dev}/driver")
    assert s.cat("/devices/platform/hmem.0/dax_region/available_size") == f"{1 * GiB}\n"
    assert s.echo(f"{dev}/size", str(1 * GiB)) == 11
    assert s.echo(f"{BUS}/drivers_probe", "dax0.0") == 7
    assert s.realpath(f"{dev}/driver") == DEVDAX  # no IORESOURCE_DAX_KMEM: device type


def test_a_hmem_range_off_the_2mib_region_alignment_gets_no_region() -> None:
    """alloc_dax_region() refuses it: dax_hmem_probe() fails, hmem.0 stays unbound."""
    s = hmem_only(start=0x2000100000, validate=False)
    assert s.kernel.kmsg == ["probe with driver hmem failed with error -12"]
    assert s.ls("/devices/platform/hmem.0") == ["modalias", "numa_node", "power", "subsystem", "uevent"]
    assert s.ls(f"{BUS}/devices") == []


@pytest.mark.parametrize("profile", ["6.18", "6.9-6.16"])
def test_device_creation_emits_add_then_binds_synchronously(profile: str) -> None:
    """R-DAXC-01: ``add`` (no DRIVER yet), then the whole kmem bind: its memory and node
    events and the ``bind`` event, all before the producer returns."""
    s = boot(kernel_profile=profile)
    events = since_add_of(s, CXL_DEV)
    assert events[0][:2] == ("add", CXL_DEV) and "DRIVER" not in events[0][2]
    rest = [(a, p) for a, p, _ in events[1:]]
    assert rest == kmem_add_events(s, A2_BLOCKS) + [("bind", CXL_DEV)]


def test_mapping0_is_created_only_after_the_autoprobe_bind() -> None:
    """R-DAXC-01: at the time of the ``bind`` event the device has no mappingN yet."""
    s = boot(cxl_regions=[])
    seen: list[set[int]] = []

    def watch(event) -> None:
        if event.action == "bind":
            seen.append(set(s.kernel.dax_devices["dax0.0"].mapping_ids))

    s.kernel.events.subscribe(watch)
    s.kernel.cxl_dax_region_probe(0, CxlRegionConfig(CXL_START, 1 * GiB, target_node=1))  # a hot-added region
    assert seen == [set()]
    assert s.cat(f"{CXL_DEV}/mapping0/start") == "0x1050000000\n"


def test_producers_put_their_ranges_in_iomem_and_kmem_nests_under_them() -> None:
    """R-DAXC-03 and R-KMEM-08: window > regionN > daxX.Y > System RAM (kmem)."""
    s = boot(hmem=[HmemConfig(0x2000000000, 1 * GiB, target_node=1)],
             pmem=[PmemConfig("namespace5.0", 0x2400000000, 1 * GiB, target_node=0)])
    assert s.kernel.resources.format_iomem() == (
        "00000000-3ffffffff : System RAM\n"
        "1050000000-144fffffff : CXL Window 0\n"
        "  1050000000-144fffffff : region0\n"
        "    1050000000-144fffffff : dax0.0\n"
        "      1050000000-144fffffff : System RAM (kmem)\n"
        "2000000000-203fffffff : Soft Reserved\n"
        "  2000000000-203fffffff : dax1.0\n"
        "    2000000000-203fffffff : System RAM (kmem)\n"
        "2400000000-243fffffff : Persistent Memory (legacy)\n"
        "  2400000000-24001fffff : namespace5.0\n"
        "  2400200000-243fffffff : dax5.0\n"
    )


def test_a_window_above_max_physmem_bits_fails_both_drivers_like_the_kernel() -> None:
    """kmem's add fails with E2BIG (R-ADD: "exceeds maximum addressable range"), device_dax's
    memremap_pages() with EINVAL; iomem_resource itself would have taken the claims."""
    s = boot(max_physmem_bits=36, pmem=[PmemConfig("namespace3.0", 0x2400000000, 1 * GiB, target_node=0)])
    assert s.kernel.kmsg == [
        "Hotplug memory [0x1050000000-0x1450000000] exceeds maximum addressable range [0x0-0xfffffffff]",
        "mapping0: 0x1050000000-0x144fffffff memory add failed",
        "probe with driver kmem failed with error -7",
        "Hotplug memory [0x2400200000-0x2440000000] exceeds maximum addressable range [0x0-0xfffffffff]",
        "probe with driver device_dax failed with error -22",
    ]
    assert not s.exists(f"{CXL_DEV}/driver")
    assert write_errno(s, f"{KMEM}/bind", "dax0.0") == errno.E2BIG
    assert write_errno(s, f"{DEVDAX}/bind", "dax3.0") == errno.EINVAL
    assert s.kernel.memory_groups == {}


def test_producer_driver_override_binds_through_new_id() -> None:
    """The acceptance fixture (docs/clients.md): CXL dax0.0 bound to device_dax at boot."""
    s = boot(cxl_regions=[CxlRegionConfig(CXL_START, CXL_SIZE, target_node=1, driver="device_dax")])
    assert s.realpath(f"{CXL_DEV}/driver") == DEVDAX
    assert s.cat("/devices/system/node/online") == "0\n"
    assert not s.exists("/devices/system/memory/memory522")
    assert "MAJOR=252\nMINOR=0\nDEVNAME=dax0.0\nDRIVER=device_dax\nMODALIAS=dax:t0\n" == s.cat(f"{CXL_DEV}/uevent")
    # daxctl reconfigure-device -m system-ram: remove_id, unbind, new_id, bind (EBUSY).
    assert s.echo(f"{CXL_DEV}/driver/remove_id", "dax0.0", newline=False) == 6
    assert s.echo(f"{CXL_DEV}/driver/unbind", "dax0.0", newline=False) == 6
    assert not s.exists(f"{CXL_DEV}/driver")
    assert s.echo(f"{KMEM}/new_id", "dax0.0", newline=False) == 6
    assert s.realpath(f"{CXL_DEV}/driver") == KMEM
    assert write_errno(s, f"{KMEM}/bind", "dax0.0", newline=False) == errno.EBUSY
    assert s.ls("/devices/system/node/node1").count("memory522") == 1


def test_producer_driver_override_naming_an_unloaded_driver_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"cxl_region\[0\]\.driver"):
        boot(device_dax_loaded=False,
             cxl_regions=[CxlRegionConfig(CXL_START, CXL_SIZE, target_node=1, driver="device_dax")])


# -- 5.2 matching ------------------------------------------------------------------------------
def test_hmem_and_cxl_devices_auto_bind_to_kmem_and_pmem_to_device_dax() -> None:
    """R-DAX-MATCH-01."""
    s = boot(hmem=[HmemConfig(0x2000000000, 1 * GiB, target_node=1)],
             pmem=[PmemConfig("namespace5.0", 0x2400000000, 1 * GiB, target_node=0)])
    assert s.realpath(f"{BUS}/devices/dax0.0/driver") == KMEM
    assert s.realpath(f"{BUS}/devices/dax1.0/driver") == KMEM
    assert s.realpath(f"{BUS}/devices/dax5.0/driver") == DEVDAX


def test_device_dax_takes_a_kmem_type_device_only_through_new_id() -> None:
    s = boot(dax_drivers_autoprobe=False)
    assert write_errno(s, f"{DEVDAX}/bind", "dax0.0") == errno.ENODEV  # no match by type
    assert s.echo(f"{DEVDAX}/new_id", "dax0.0") == 7
    assert s.realpath(f"{CXL_DEV}/driver") == DEVDAX


# -- 5.3 driver attributes -------------------------------------------------------------------
@pytest.mark.parametrize("text", ["dax0.0", "dax0.0\n", "dax-1.0", "dax7.12"])
def test_new_id_accepts_exactly_the_canonical_name(text: str) -> None:
    """R-DAX-ID-01: the named device need not exist."""
    s = boot(cxl_regions=[])
    assert s.echo(f"{KMEM}/new_id", text, newline=False) == len(text)


@pytest.mark.parametrize("text", ["dax00.0", "dax0.0 ", " dax0.0", "dax0.0x", "dax0", "dax0.0\n\n", "\x00",
                                  "dax+1.0", "Dax0.0", "dax0.00", "dax0.\n", "dax.0"])
def test_new_id_and_remove_id_reject_anything_but_the_canonical_name(text: str) -> None:
    """R-DAX-ID-01/02 (``\x00`` is a write whose text is empty)."""
    s = boot(cxl_regions=[])
    for attr in ("new_id", "remove_id"):
        assert write_errno(s, f"{KMEM}/{attr}", text, newline=False) == errno.EINVAL


def test_new_id_binds_every_matching_unbound_device_even_with_autoprobe_off() -> None:
    s = boot(dax_drivers_autoprobe=False, hmem=[HmemConfig(0x2000000000, 1 * GiB, target_node=1)])
    s.echo(f"{BUS}/drivers_autoprobe", "0")
    assert s.echo(f"{KMEM}/new_id", "dax9.9") == 7
    # driver_attach() offers kmem to every device it matches, by type too (R-DAX-ID-01).
    assert s.realpath(f"{BUS}/devices/dax0.0/driver") == KMEM
    assert s.realpath(f"{BUS}/devices/dax1.0/driver") == KMEM
    assert s.echo(f"{KMEM}/new_id", "dax9.9") == 7  # a duplicate is no error


def test_new_id_ignores_probe_failures_and_returns_the_count() -> None:
    s = hmem_only(size=64 * MiB, dax_drivers_autoprobe=False)  # too small for one 128 MiB block
    assert s.echo(f"{KMEM}/new_id", "dax0.0") == 7
    assert not s.exists(f"{BUS}/devices/dax0.0/driver")


def test_remove_id_never_unbinds_and_removing_an_absent_id_succeeds() -> None:
    """R-DAX-ID-02."""
    s = boot(dax_drivers_autoprobe=False)
    s.echo(f"{DEVDAX}/new_id", "dax0.0")
    assert s.echo(f"{DEVDAX}/remove_id", "dax0.0") == 7
    assert s.realpath(f"{CXL_DEV}/driver") == DEVDAX
    assert s.echo(f"{DEVDAX}/remove_id", "dax3.3") == 7
    s.echo(f"{DEVDAX}/unbind", "dax0.0")
    assert write_errno(s, f"{DEVDAX}/bind", "dax0.0") == errno.ENODEV  # the id is gone: no match


def test_unloading_a_driver_unbinds_its_devices_and_forgets_its_ids() -> None:
    """R-DAX-ID-03."""
    s = boot(dax_drivers_autoprobe=False)
    s.echo(f"{DEVDAX}/new_id", "dax0.0")
    mark = s.kernel.events.seqnum
    s.kernel.dax_driver_unregister("device_dax")
    assert uevents(s, mark) == [("unbind", CXL_DEV), ("remove", f"{BUS}/drivers/device_dax"),
                              ("remove", "/module/device_dax")]
    assert not s.exists(DEVDAX)
    assert not s.exists("/module/device_dax")
    s.kernel.dax_driver_register("device_dax")  # autoprobe is off: no attach
    assert write_errno(s, f"{DEVDAX}/bind", "dax0.0") == errno.ENODEV


def test_bind_errors_in_kernel_order() -> None:
    """R-DAX-BIND-01: ENODEV unknown or no match, EBUSY bound, ENXIO size 0, probe errno."""
    s = boot(hmem=[HmemConfig(0x2000000000, 64 * MiB, target_node=1)], dax_drivers_autoprobe=False)
    assert write_errno(s, f"{KMEM}/bind", "dax7.0") == errno.ENODEV
    assert write_errno(s, f"{DEVDAX}/bind", "dax0.0") == errno.ENODEV
    assert s.echo(f"{KMEM}/bind", "dax0.0") == 7
    assert write_errno(s, f"{KMEM}/bind", "dax0.0") == errno.EBUSY
    s.echo(f"{DEVDAX}/new_id", "dax0.0")
    assert write_errno(s, f"{DEVDAX}/bind", "dax0.0") == errno.EBUSY  # bound to kmem
    assert write_errno(s, f"{KMEM}/bind", "dax1.0") == errno.EINVAL  # 64 MiB: nothing after alignment
    idle = hmem_only(dax_hmem_region_idle=True, dax_drivers_autoprobe=False)
    assert write_errno(idle, f"{DEVDAX}/bind", "dax0.0") == errno.ENXIO  # R-DAX-PROBE-01: size 0


def test_bind_success_adds_both_links_and_a_bind_event_with_driver() -> None:
    s = boot(dax_drivers_autoprobe=False)
    mark = s.kernel.events.seqnum
    assert s.echo(f"{KMEM}/bind", "dax0.0") == 7
    assert s.realpath(f"{CXL_DEV}/driver") == KMEM
    assert s.realpath(f"{KMEM}/dax0.0") == CXL_DEV
    action, path, props = event_env(s, mark)[-1]
    assert (action, path) == ("bind", CXL_DEV)
    assert props["DRIVER"] == "kmem"


def test_unbind_requires_the_device_to_be_bound_to_this_driver() -> None:
    """R-DAX-BIND-02."""
    s = boot()
    assert write_errno(s, f"{DEVDAX}/unbind", "dax0.0") == errno.ENODEV
    assert write_errno(s, f"{KMEM}/unbind", "dax5.5") == errno.ENODEV
    mark = s.kernel.events.seqnum
    assert s.echo(f"{KMEM}/unbind", "dax0.0") == 7
    assert not s.exists(f"{CXL_DEV}/driver")
    assert "dax0.0" not in s.ls(KMEM)
    action, path, props = event_env(s, mark)[-1]
    assert (action, path) == ("unbind", CXL_DEV)
    assert "DRIVER" not in props
    assert write_errno(s, f"{KMEM}/unbind", "dax0.0") == errno.ENODEV


@pytest.mark.parametrize(("text", "value"), [("0", "0"), ("0x", "0"), ("off", "1"), ("no", "1"),
                                             ("1", "1"), ("2", "1"), ("\x00", "1")])
def test_drivers_autoprobe_is_zero_only_for_a_leading_zero(text: str, value: str) -> None:
    """R-BUS-03."""
    s = boot()
    assert s.echo(f"{BUS}/drivers_autoprobe", text, newline=False) == len(text)
    assert s.cat(f"{BUS}/drivers_autoprobe") == value + "\n"


def test_drivers_autoprobe_zero_keeps_new_devices_and_new_drivers_unbound() -> None:
    """R-BUS-03: neither a new driver nor a new device is probed; bind still binds."""
    s = boot(kmem_loaded=False)
    s.echo(f"{BUS}/drivers_autoprobe", "0")
    s.kernel.dax_driver_register("kmem")
    assert not s.exists(f"{CXL_DEV}/driver")
    s.kernel.dax_hmem_probe(HmemConfig(0x2000000000, 1 * GiB, target_node=1))  # a hot-added hmem range
    assert not s.exists(f"{BUS}/devices/dax1.0/driver")
    assert s.echo(f"{KMEM}/bind", "dax0.0") == 7


def test_drivers_probe_binds_an_unbound_device_and_always_returns_the_count() -> None:
    """R-BUS-04."""
    s = boot(dax_drivers_autoprobe=False)
    assert write_errno(s, f"{BUS}/drivers_probe", "dax1.0") == errno.ENODEV
    assert s.echo(f"{BUS}/drivers_probe", "dax0.0") == 7
    assert s.realpath(f"{CXL_DEV}/driver") == KMEM
    assert s.echo(f"{BUS}/drivers_probe", "dax0.0") == 7  # already bound: still the count


def test_probe_fail_fault_fails_the_next_probe_of_that_device_once() -> None:
    s = boot(dax_drivers_autoprobe=False)
    s.kernel.faults.probe_fail["dax0.0"] = errno.EIO
    assert write_errno(s, f"{KMEM}/bind", "dax0.0") == errno.EIO
    assert s.kernel.kmsg[-1] == "probe with driver kmem failed with error -5"
    assert s.echo(f"{KMEM}/bind", "dax0.0") == 7


# -- 5.4 uevents -----------------------------------------------------------------------------
def test_uevent_file_and_events_carry_major_minor_devname_driver_modalias_in_order() -> None:
    """R-DAX-UEV-01."""
    s = boot()
    assert s.cat(f"{CXL_DEV}/uevent") == "MAJOR=252\nMINOR=0\nDEVNAME=dax0.0\nDRIVER=kmem\nMODALIAS=dax:t0\n"
    add = since_add_of(s, CXL_DEV)[0][2]
    assert list(add) == ["ACTION", "DEVPATH", "SUBSYSTEM", "MAJOR", "MINOR", "DEVNAME", "MODALIAS", "SEQNUM"]
    assert add["SUBSYSTEM"] == "dax"
    bind = since_add_of(s, CXL_DEV)[-1][2]
    assert list(bind)[3:8] == ["MAJOR", "MINOR", "DEVNAME", "DRIVER", "MODALIAS"]


def test_minor_numbers_are_allocated_lowest_free_system_wide() -> None:
    s = hmem_only(dax_hmem_region_idle=True, hmem=[HmemConfig(0x2000000000, 1 * GiB, 1),
                                                   HmemConfig(0x3000000000, 1 * GiB, 1)])
    reg0 = "/devices/platform/hmem.0/dax_region"
    assert s.cat(f"{BUS}/devices/dax1.0/dev") == "252:1\n"
    s.echo(f"{reg0}/create", "1")
    s.echo(f"{reg0}/create", "1")
    assert s.cat(f"{BUS}/devices/dax0.2/dev") == "252:3\n"
    s.echo(f"{reg0}/delete", "dax0.1")
    s.echo(f"{reg0}/create", "1")
    assert s.cat(f"{BUS}/devices/dax0.1/dev") == "252:2\n"
    assert s.ls("/dev/char") == ["252:0", "252:1", "252:2", "252:3"]


def test_uevent_write_emits_a_synthetic_event_with_the_device_variables() -> None:
    s = boot()
    mark = s.kernel.events.seqnum
    assert s.echo(f"{CXL_DEV}/uevent", "change") == 7
    [(action, path, props)] = event_env(s, mark)
    assert (action, path, props["SUBSYSTEM"], props["DRIVER"]) == ("change", CXL_DEV, "dax", "kmem")
    assert write_errno(s, f"{CXL_DEV}/uevent", "explode") == errno.EINVAL


def test_bus_and_driver_uevent_files_emit_bus_and_drivers_events() -> None:
    s = boot()
    mark = s.kernel.events.seqnum
    assert s.echo(f"{BUS}/uevent", "change") == 7
    assert s.echo(f"{KMEM}/uevent", "add") == 4
    assert uevents(s, mark) == [("change", BUS), ("add", KMEM)]
    assert [e.subsystem for e in s.kernel.events.since(mark)] == ["bus", "drivers"]


# -- 5.5 kmem probe --------------------------------------------------------------------------
def test_kmem_rejects_a_negative_target_node() -> None:
    """R-KMEM-01."""
    s = hmem_only(target=-1, possible_nodes=[0], dax_drivers_autoprobe=False, validate=False)
    assert write_errno(s, f"{KMEM}/bind", "dax0.0") == errno.EINVAL
    assert s.kernel.kmsg[-2:] == ["rejecting DAX region with invalid node: -1",
                                  "probe with driver kmem failed with error -22"]


def test_kmem_memory_type_puts_onlined_memory_in_tier22_by_default() -> None:
    """R-KMEM-02: 2880 -> memory_tier22; the association goes with a clean unplug."""
    s = boot()
    online_blocks(s, range(522, 523))
    assert s.cat("/devices/virtual/memory_tiering/memory_tier22/nodelist") == "1\n"
    assert s.cat("/devices/virtual/memory_tiering/memory_tier4/nodelist") == "0\n"
    offline_blocks(s, range(522, 523))
    assert not s.exists("/devices/virtual/memory_tiering/memory_tier22")


def test_kmem_memory_type_uses_the_producer_adistance() -> None:
    s = boot(cxl_regions=[CxlRegionConfig(CXL_START, CXL_SIZE, target_node=1, adistance=1000)])
    online_blocks(s, range(522, 524))
    assert s.ls("/devices/virtual/memory_tiering") == ["uevent", "memory_tier4", "memory_tier7"]
    assert s.cat("/devices/virtual/memory_tiering/memory_tier7/nodelist") == "1\n"


def test_kmem_registers_a_static_group_of_the_usable_pages() -> None:
    """R-KMEM-05, R-ADD-04: every block belongs to the group; unbind unregisters it."""
    s = boot()
    [group] = s.kernel.memory_groups.values()
    assert (group.nid, group.is_dynamic, group.max_pages) == (1, False, 4194304)
    assert group.blocks == set(A2_BLOCKS)
    s.echo(f"{KMEM}/unbind", "dax0.0")
    assert s.kernel.memory_groups == {}


def test_kmem_trims_each_range_to_whole_blocks() -> None:
    """R-KMEM-03: start rounded up, end rounded down; the claim is the aligned range."""
    s = hmem_only(start=0x2004000000, size=512 * MiB)  # 64 MiB in: blocks 1025..1028 partially
    assert s.kernel.kmsg == ["DAX region truncated by 128 MiB due to alignment"]
    assert "  2008000000-201fffffff : dax0.0\n" in s.kernel.resources.format_iomem()
    assert [b for b in s.kernel.blocks if b > 1000] == [1025, 1026, 1027]


def test_kmem_truncation_warning_exists_only_from_6_16() -> None:
    """R-KMEM-04 and the profiles of docs/abi.md: 6.9-6.16 models 6.9, which has no such message."""
    s = hmem_only(start=0x2004000000, size=512 * MiB, kernel_profile="6.9-6.16")
    assert s.kernel.kmsg == []
    assert s.kernel.blocks.keys() >= {1025, 1026, 1027}
    s = hmem_only(start=0x2004000000, size=512 * MiB, kernel_profile="6.16")
    assert s.kernel.kmsg == ["DAX region truncated by 128 MiB due to alignment"]


def _two_range_device(s: Simulation) -> str:
    """dax0.0 of an idle hmem region with mapping0 = the first 128 MiB block and mapping1 =
    the third one (a hole between them)."""
    dev = f"{BUS}/devices/dax0.0"
    s.echo(f"{dev}/mapping", "0x2000000000-0x2007ffffff")
    s.echo(f"{dev}/mapping", "0x2010000000-0x2017ffffff")
    return dev


def test_kmem_skips_a_later_range_it_cannot_claim() -> None:
    """R-KMEM-06.1: "could not reserve region" is fatal only for the first range."""
    s = hmem_only(dax_hmem_region_idle=True)
    _two_range_device(s)
    s.kernel.resources.request_region(0x2010000000, 128 * MiB, "squatter", busy=True)
    assert s.echo(f"{KMEM}/new_id", "dax0.0") == 7
    assert s.realpath(f"{BUS}/devices/dax0.0/driver") == KMEM
    assert s.kernel.kmsg == ["mapping1: 0x2010000000-0x2017ffffff could not reserve region"]
    assert [b for b in s.kernel.blocks if b >= 1024] == [1024]


def test_kmem_first_range_that_cannot_be_claimed_fails_the_probe_with_ebusy() -> None:
    s = hmem_only(dax_hmem_region_idle=True)
    _two_range_device(s)
    s.kernel.resources.request_region(0x2000000000, 128 * MiB, "squatter", busy=True)
    s.echo(f"{KMEM}/new_id", "dax0.0")
    assert write_errno(s, f"{KMEM}/bind", "dax0.0") == errno.EBUSY
    assert s.kernel.memory_groups == {}  # R-KMEM-07


def test_kmem_skips_a_later_range_whose_add_fails() -> None:
    """R-KMEM-06.2: the failed range's claim is released, the probe still succeeds."""
    s = hmem_only(dax_hmem_region_idle=True)
    dev = f"{BUS}/devices/dax0.0"
    s.echo(f"{dev}/mapping", "0x2000000000-0x2007ffffff")  # one block
    s.echo(f"{dev}/mapping", "0x2010000000-0x201fffffff")  # two blocks
    s.kernel.faults.memmap_fail_at_chunk = 1  # the first add has no chunk 1; the second fails there
    s.echo(f"{KMEM}/new_id", "dax0.0")
    assert s.realpath(f"{dev}/driver") == KMEM
    assert s.kernel.kmsg == ["mapping1: 0x2010000000-0x201fffffff memory add failed"]
    assert "2010000000" not in s.kernel.resources.format_iomem()
    assert [b for b in s.kernel.blocks if b >= 1024] == [1024]
    mark = s.kernel.events.seqnum
    assert s.echo(f"{KMEM}/unbind", "dax0.0") == 7
    assert uevents(s, mark) == [("remove", "/devices/system/memory/memory1024"),
                              ("remove", "/devices/system/node/node1"), ("unbind", "/devices/platform/hmem.0/dax0.0")]
    assert s.kernel.memory_groups == {}


def test_kmem_uses_memmap_on_memory_only_when_the_device_asks() -> None:
    """R-DAX-MOM-03: the per-device value at probe time decides the altmap."""
    s = boot(dax_drivers_autoprobe=False)
    s.echo(f"{CXL_DEV}/memmap_on_memory", "0")
    s.echo(f"{KMEM}/bind", "dax0.0")
    assert s.kernel.blocks[522].altmap == 0
    s.echo(f"{KMEM}/unbind", "dax0.0")
    s.echo(f"{CXL_DEV}/memmap_on_memory", "1")
    s.echo(f"{KMEM}/bind", "dax0.0")
    assert s.kernel.blocks[522].altmap == 512


# -- 5.6 kmem remove ---------------------------------------------------------------------------
def test_kmem_remove_of_a_range_skipped_as_too_small_leaks_the_group() -> None:
    """R-KMEM-10: a too-small range counts as not removed."""
    s = hmem_only(dax_hmem_region_idle=True)
    dev = f"{BUS}/devices/dax0.0"
    s.echo(f"{dev}/mapping", "0x2000000000-0x20001fffff")  # 2 MiB
    s.echo(f"{dev}/mapping", "0x2010000000-0x2017ffffff")  # one block
    s.echo(f"{KMEM}/new_id", "dax0.0")
    assert s.kernel.kmsg[0] == "mapping0: 0x2000000000-0x20001fffff too small after alignment"
    assert s.echo(f"{KMEM}/unbind", "dax0.0") == 7
    assert not s.exists(f"{dev}/driver")  # R-KMEM-11
    assert 1026 not in s.kernel.blocks  # the memory itself went
    assert len(s.kernel.memory_groups) == 1  # but the group stays until reboot
    assert s.kernel.nodes[1].adistance == 2880


def test_kmem_unbind_with_an_online_block_leaks_the_memory_and_rebind_is_ebusy() -> None:
    """R-KMEM-09/11/12 (example 1's variant is below with the exact numbers)."""
    s = hmem_only(size=256 * MiB)
    online_blocks(s, range(1024, 1025))
    assert s.echo(f"{KMEM}/unbind", "dax0.0") == 7
    assert not s.exists(f"{BUS}/devices/dax0.0/driver")
    assert set(s.kernel.blocks) >= {1024, 1025}
    assert write_errno(s, f"{KMEM}/bind", "dax0.0") == errno.EBUSY
    s.echo(f"{DEVDAX}/new_id", "dax0.0")  # new_id's own attach fails quietly (EBUSY)
    assert write_errno(s, f"{DEVDAX}/bind", "dax0.0") == errno.EBUSY
    assert s.kernel.kmsg[-2:] == ["mapping0: 0x2000000000-0x200fffffff could not reserve range",
                             "probe with driver device_dax failed with error -16"]


# -- 5.7 device_dax --------------------------------------------------------------------------
def test_device_dax_claims_its_ranges_and_releases_them_on_unbind() -> None:
    """R-DEVDAX-01."""
    s = boot(cxl_regions=[], pmem=[PmemConfig("namespace0.0", 0x2400000000, 1 * GiB, target_node=0)])
    line = "  2400200000-243fffffff : dax0.0\n"
    assert line in s.kernel.resources.format_iomem()
    assert s.echo(f"{DEVDAX}/unbind", "dax0.0") == 7
    assert line not in s.kernel.resources.format_iomem()
    s.kernel.resources.request_region(0x2400200000, 2 * MiB, "squatter", busy=True)
    assert write_errno(s, f"{DEVDAX}/bind", "dax0.0") == errno.EBUSY
    assert s.kernel.kmsg[-2] == "mapping0: 0x2400200000-0x243fffffff could not reserve range"
    assert line not in s.kernel.resources.format_iomem()


# -- 5.8 dynamic partitioning ------------------------------------------------------------------
def idle_hmem(size: int = 1 * GiB) -> tuple[Simulation, str, str]:
    s = hmem_only(size=size, dax_hmem_region_idle=True)
    return s, "/devices/platform/hmem.0/dax_region", "/devices/platform/hmem.0/dax0.0"


def test_create_makes_a_size_zero_device_that_becomes_seed_and_youngest() -> None:
    """R-DAX-CREATE-01, R-DAX-SEED-01."""
    s, reg, _dev0 = idle_hmem()
    assert s.cat(f"{reg}/seed") == "\n"  # producers start without a seed
    mark = s.kernel.events.seqnum
    assert s.echo(f"{reg}/create", "1") == 2
    assert uevents(s, mark) == [("add", "/devices/platform/hmem.0/dax0.1")]
    assert s.cat(f"{reg}/seed") == "dax0.1\n"
    assert s.cat(f"{reg}/create") == "dax0.1\n"
    s.echo(f"{reg}/create", "0x1")
    assert s.cat(f"{reg}/seed") == "dax0.1\n"  # the first unbound one stays the seed
    assert s.cat(f"{reg}/create") == "dax0.2\n"
    assert s.cat("/devices/platform/hmem.0/dax0.2/size") == "0\n"
    assert s.cat("/devices/platform/hmem.0/dax0.2/memmap_on_memory") == "0\n"


@pytest.mark.parametrize(("text", "err"), [("2", errno.EINVAL), ("0", errno.EINVAL), ("one", errno.EINVAL),
                                           ("1 ", errno.EINVAL), ("4294967297", errno.ERANGE)])
def test_create_accepts_only_the_integer_one(text: str, err: int) -> None:
    s, reg, _ = idle_hmem()
    assert write_errno(s, f"{reg}/create", text) == err


def test_create_without_available_space_is_enospc() -> None:
    s = boot()
    assert write_errno(s, f"{CXL_REG}/dax_region/create", "1") == errno.ENOSPC


def test_seed_is_cleared_when_the_seed_device_binds_or_is_deleted() -> None:
    s, reg, _ = idle_hmem()
    s.echo(f"{reg}/create", "1")
    s.echo(f"{BUS}/devices/dax0.1/size", str(128 * MiB))
    s.echo(f"{DEVDAX}/bind", "dax0.1")
    assert s.cat(f"{reg}/seed") == "\n"
    assert s.cat(f"{reg}/create") == "dax0.1\n"
    s.echo(f"{reg}/create", "1")
    assert s.cat(f"{reg}/seed") == "dax0.2\n"
    s.echo(f"{reg}/delete", "dax0.2")
    assert (s.cat(f"{reg}/seed"), s.cat(f"{reg}/create")) == ("\n", "\n")


def test_delete_errors_and_success() -> None:
    """R-DAX-DEL-01: ENXIO unknown, EBUSY bound / sized / device 0; the id is reused."""
    s, reg, _dev0 = idle_hmem()
    assert write_errno(s, f"{reg}/delete", "dax0.9") == errno.ENXIO
    assert write_errno(s, f"{reg}/delete", "dax0.0") == errno.EBUSY  # device 0 is never deleted
    s.echo(f"{reg}/create", "1")
    s.echo(f"{BUS}/devices/dax0.1/size", str(128 * MiB))
    assert write_errno(s, f"{reg}/delete", "dax0.1") == errno.EBUSY  # non-zero size
    s.echo(f"{DEVDAX}/bind", "dax0.1")
    assert write_errno(s, f"{reg}/delete", "dax0.1") == errno.EBUSY  # bound
    s.echo(f"{DEVDAX}/unbind", "dax0.1")
    s.echo(f"{BUS}/devices/dax0.1/size", "0")
    mark = s.kernel.events.seqnum
    assert s.echo(f"{reg}/delete", "dax0.1") == 7
    [(action, path, props)] = event_env(s, mark)
    assert (action, path) == ("remove", "/devices/platform/hmem.0/dax0.1")
    assert props["DEVNAME"] == "dax0.1" and "DRIVER" not in props
    assert not s.exists(f"{BUS}/devices/dax0.1")
    s.echo(f"{reg}/create", "1")
    assert s.cat(f"{reg}/create") == "dax0.1\n"


def test_files_of_a_deleted_device_fail_with_enodev_even_when_open() -> None:
    s, reg, _ = idle_hmem()
    s.echo(f"{reg}/create", "1")
    size = s.tree.open(s.realpath(f"{BUS}/devices/dax0.1/size"), os.O_RDWR)
    s.echo(f"{reg}/delete", "dax0.1")
    with pytest.raises(KernelError) as exc:
        s.tree.write(size, b"2097152\n")
    assert exc.value.errno == errno.ENODEV
    with pytest.raises(KernelError) as exc:
        s.tree.read(size, 4096, 0)
    assert exc.value.errno == errno.ENODEV
    assert s.cat(f"{reg}/available_size") == f"{1 * GiB}\n"


def test_size_write_errors_in_kernel_order() -> None:
    """R-DAX-SIZE-01: parse errno, misaligned EINVAL, region disabled ENXIO, bound EBUSY,
    too big ENOSPC."""
    s, _reg, dev = idle_hmem()
    assert write_errno(s, f"{dev}/size", "big") == errno.EINVAL
    assert write_errno(s, f"{dev}/size", "18446744073709551616") == errno.ERANGE
    assert write_errno(s, f"{dev}/size", str(3 * MiB)) == errno.EINVAL
    assert write_errno(s, f"{dev}/size", str(2 * GiB)) == errno.ENOSPC
    s.kernel.dax_regions[0].enabled = False
    assert write_errno(s, f"{dev}/size", str(2 * MiB)) == errno.ENXIO
    s.kernel.dax_regions[0].enabled = True
    s.echo(f"{dev}/size", str(256 * MiB))
    s.echo(f"{DEVDAX}/bind", "dax0.0")
    assert write_errno(s, f"{dev}/size", str(256 * MiB)) == errno.EBUSY  # bound beats "same size"
    s.echo(f"{DEVDAX}/unbind", "dax0.0")
    assert s.echo(f"{dev}/size", str(256 * MiB)) == 10  # same size: nothing to do


def test_size_growth_takes_free_space_in_address_order_and_extends_the_last_range() -> None:
    s, reg, dev0 = idle_hmem()
    s.echo(f"{reg}/create", "1")
    dev1 = "/devices/platform/hmem.0/dax0.1"
    s.echo(f"{dev0}/size", str(256 * MiB))  # [0, 256M)
    s.echo(f"{dev1}/size", str(256 * MiB))  # [256M, 512M)
    s.echo(f"{dev0}/size", str(128 * MiB))  # shrink: [0, 128M) keeps mapping0
    s.echo(f"{dev0}/size", str(512 * MiB))  # extend to 256M... then the tail
    ranges = s.kernel.dax_devices["dax0.0"].ranges
    assert [(r.start - 0x2000000000, r.size // MiB, r.pgoff, r.mapping) for r in ranges] == [
        (0, 256, 0, 0), (512 * MiB, 256, 65536, 1),
    ]  # fmt: skip
    assert s.cat(f"{dev0}/mapping1/page_offset") == "0x10000\n"
    assert s.cat(f"{dev0}/mapping1/start") == "0x2020000000\n"
    assert s.cat(f"{reg}/available_size") == f"{256 * MiB}\n"


def test_size_shrink_removes_highest_offset_ranges_first() -> None:
    s, _reg, dev0 = idle_hmem()
    s.echo(f"{dev0}/mapping", "0x2010000000-0x2017ffffff")  # mapping0, pgoff 0
    s.echo(f"{dev0}/mapping", "0x2000000000-0x2007ffffff")  # mapping1, pgoff 0x8000
    s.echo(f"{dev0}/size", str(64 * MiB))
    assert sorted(n for n in s.ls(dev0) if n.startswith("mapping")) == ["mapping", "mapping0"]
    assert s.cat(f"{dev0}/mapping0/end") == "0x2013ffffff\n"
    s.echo(f"{dev0}/size", str(192 * MiB))  # the gap at the start of the region comes first
    assert s.cat(f"{dev0}/mapping1/start") == "0x2000000000\n"
    assert s.cat(f"{dev0}/mapping1/end") == "0x2007ffffff\n"
    assert s.cat(f"{dev0}/resource") == "0x2010000000\n"


def test_mapping_write_adds_a_range_and_its_quirks() -> None:
    """R-DAX-MAP-01."""
    s, _reg, dev = idle_hmem()
    assert write_errno(s, f"{dev}/mapping", "0x2000000000") == errno.EINVAL
    assert write_errno(s, f"{dev}/mapping", "zz-0x20001fffff") == errno.EINVAL
    assert write_errno(s, f"{dev}/mapping", "0x2000000000-0x20001fffff ") == errno.EINVAL
    assert write_errno(s, f"{dev}/mapping", "0-10000000000000000") == errno.ERANGE
    assert s.echo(f"{dev}/mapping", "2000000000-20001fffff") == 22  # 0x is optional
    assert s.cat(f"{dev}/size") == f"{2 * MiB}\n"
    assert s.echo(f"{dev}/mapping", "0x2000400000-0x2000400fff") == 26  # 4 KiB: silently ignored
    assert s.cat(f"{dev}/size") == f"{2 * MiB}\n"
    assert write_errno(s, f"{dev}/mapping", "0x2000000000-0x20001fffff") == errno.ENOMEM  # overlap
    assert write_errno(s, f"{dev}/mapping", "0x1000000000-0x10001fffff") == errno.ENOMEM  # outside
    s.kernel.dax_regions[0].enabled = False
    assert s.echo(f"{dev}/mapping", "0x2000200000-0x20003fffff") == 0  # region disabled: 0 bytes
    s.kernel.dax_regions[0].enabled = True
    s.echo(f"{DEVDAX}/bind", "dax0.0")
    assert s.echo(f"{dev}/mapping", "0x2000200000-0x20003fffff") == 26  # bound is not checked
    assert s.cat(f"{dev}/mapping1/page_offset") == "0x200\n"


def test_align_write_errors_and_success() -> None:
    """R-DAX-ALIGN-01: parse errors are ENXIO."""
    s, _reg, dev = idle_hmem()
    assert write_errno(s, f"{dev}/align", "huge") == errno.ENXIO
    assert write_errno(s, f"{dev}/align", "-1") == errno.ENXIO
    assert write_errno(s, f"{dev}/align", "8192") == errno.EINVAL
    assert s.echo(f"{dev}/align", "4096") == 5
    assert s.cat(f"{dev}/align") == "4096\n"
    s.echo(f"{dev}/size", str(2 * MiB))
    assert write_errno(s, f"{dev}/align", "0x40000000") == errno.EINVAL  # 2 MiB range vs 1 GiB
    assert s.cat(f"{dev}/align") == "4096\n"
    s.echo(f"{dev}/size", str(1 * GiB))
    assert s.echo(f"{dev}/align", "0x40000000") == 11
    assert write_errno(s, f"{dev}/size", str(1 * GiB - 2 * MiB)) == errno.EINVAL  # now 1 GiB granular
    s.kernel.dax_regions[0].enabled = False
    assert write_errno(s, f"{dev}/align", "2097152") == errno.ENXIO
    s.kernel.dax_regions[0].enabled = True
    s.echo(f"{DEVDAX}/bind", "dax0.0")
    assert write_errno(s, f"{dev}/align", "2097152") == errno.EBUSY


# -- 5.9 memmap_on_memory --------------------------------------------------------------------
def test_memmap_on_memory_write_checks_in_order() -> None:
    """R-DAX-MOM-02: EINVAL, EOPNOTSUPP, EBUSY only for kmem and a different value."""
    s = boot(memmap_on_memory="N")
    f = f"{CXL_DEV}/memmap_on_memory"
    assert write_errno(s, f, "x") == errno.EINVAL
    assert write_errno(s, f, "1") == errno.EOPNOTSUPP
    assert write_errno(s, f, "0") == errno.EBUSY  # bound to kmem, value differs
    s.echo(f"{KMEM}/unbind", "dax0.0")
    assert s.echo(f, "0") == 2
    s2 = boot()
    f2 = f"{CXL_DEV}/memmap_on_memory"
    assert s2.echo(f2, "1") == 2  # same value while bound to kmem
    assert s2.echo(f2, "yes") == 4
    s2.echo(f"{KMEM}/unbind", "dax0.0")
    s2.echo(f"{DEVDAX}/new_id", "dax0.0")
    assert s2.echo(f2, "n") == 2  # allowed while bound to device_dax
    assert s2.cat(f2) == "0\n"


def test_memmap_on_memory_file_is_absent_in_profile_6_8() -> None:
    s = boot(kernel_profile="6.8")
    assert not s.exists(f"{CXL_DEV}/memmap_on_memory")
    assert s.kernel.blocks[522].altmap == 512  # the CXL default still applies (R-KMEM-06.2)


def test_memmap_on_memory_takes_enable_disable_words_from_6_16() -> None:
    s = boot(kernel_profile="6.9-6.16", dax_drivers_autoprobe=False)
    assert write_errno(s, f"{CXL_DEV}/memmap_on_memory", "disable") == errno.EINVAL
    s = boot(dax_drivers_autoprobe=False)
    assert s.echo(f"{CXL_DEV}/memmap_on_memory", "disable") == 8
    assert s.cat(f"{CXL_DEV}/memmap_on_memory") == "0\n"


# -- every store: only kernel errnos -----------------------------------------------------------
GARBAGE = ["", "\n", "\x00", "-", "0x", "-1", " 1", "1 ", "\xff\xfe", "9" * 30, "dax", "0-", "-0", "1-2-3",
           "0x1-0x0", "dax0.0", "dax0.0\n", "online", "1", "0", "4096", "0x2000000000-0x2000000000"]


def _writable_files(s: Simulation, roots: list[str]) -> list[str]:
    out = []
    for root in roots:
        for name in s.ls(root):
            path = f"{root}/{name}"
            st = s.tree.getattr(path)
            if stat.S_ISREG(st.mode) and st.mode & 0o222:
                out.append(path)
    return out


def test_every_malformed_write_to_a_dax_file_fails_with_an_errno_or_succeeds() -> None:
    def fresh() -> Simulation:
        return boot(hmem=[HmemConfig(0x2000000000, 1 * GiB, target_node=1)], dax_hmem_region_idle=True,
                    pmem=[PmemConfig("namespace5.0", 0x2400000000, 1 * GiB, target_node=0)])

    probe = fresh()
    roots = [BUS, KMEM, DEVDAX, CXL_DEV, f"{CXL_REG}/dax_region", "/devices/platform/hmem.1/dax1.0",
             "/devices/platform/hmem.1/dax_region", "/module/dax_hmem/parameters",
             "/devices/platform/e820_pmem/ndbus0/region5/dax5.0/dax5.0"]
    files = _writable_files(probe, roots)
    assert len(files) > 25
    for path in files:
        s = fresh()
        for text in GARBAGE:
            try:
                s.tree.echo(path, text, newline=False)
            except KernelError as exc:
                assert exc.errno > 0, (path, text)


# -- docs/abi.md example 1 -----------------------------------------------------------------
def test_a2_region_creation_files() -> None:
    s = boot()
    assert s.readlink(f"{BUS}/devices/dax0.0") == (
        "../../../devices/platform/ACPI0017:00/root0/decoder0.0/region0/dax_region0/dax0.0"
    )
    d = f"{BUS}/devices/dax0.0"
    names = ("size", "resource", "target_node", "memmap_on_memory", "align", "modalias")
    assert [s.cat(f"{d}/{n}") for n in names] == [
        "17179869184\n", "0x1050000000\n", "1\n", "1\n", "2097152\n", "dax:t0\n",
    ]  # fmt: skip
    assert [s.cat(f"{d}/mapping0/{n}") for n in ("start", "end", "page_offset")] == [
        "0x1050000000\n", "0x144fffffff\n", "0x0\n",
    ]  # fmt: skip
    r = f"{d}/../dax_region"
    assert [s.cat(f"{r}/{n}") for n in ("id", "size", "align", "available_size", "seed", "create")] == [
        "0\n", "17179869184\n", "2097152\n", "0\n", "\n", "\n",
    ]  # fmt: skip


def test_a2_kmem_bind_adds_128_altmap_blocks_then_node1_then_bind() -> None:
    s = boot()
    base = boot(kmem_loaded=False)
    assert s.kernel.memory_groups[0].max_pages == 4194304
    iomem = s.kernel.resources.format_iomem()
    assert "    1050000000-144fffffff : dax0.0\n      1050000000-144fffffff : System RAM (kmem)\n" in iomem
    assert iomem.count("dax0.0") == 1 and iomem.count("System RAM (kmem)") == 1
    assert all(s.kernel.blocks[b].altmap == 512 for b in A2_BLOCKS)
    assert s.cat("/devices/system/memory/memory522/phys_index") == "0000020a\n"
    assert s.cat("/devices/system/memory/memory649/phys_index") == "00000289\n"
    for b in A2_BLOCKS:
        mem = f"/devices/system/memory/memory{b}"
        assert (s.cat(f"{mem}/state"), s.cat(f"{mem}/online"), s.cat(f"{mem}/valid_zones")) == (
            "offline\n", "0\n", "Normal Movable\n")
    node = "/devices/system/node"
    assert s.cat(f"{node}/online") == "0-1\n"
    assert [n for n in s.ls(f"{node}/node1") if n.startswith("memory")] == [f"memory{b}" for b in A2_BLOCKS]
    assert meminfo(s, 1)["MemTotal"] == 0
    assert (s.cat(f"{node}/node0/distance"), s.cat(f"{node}/node1/distance")) == ("10 20\n", "20 10\n")
    assert s.cat(f"{node}/has_memory") == "0\n"
    assert meminfo(s, 0) == meminfo(base, 0)  # the memmap lives on the new memory
    assert s.kernel.nr_memmap_pages - base.kernel.nr_memmap_pages == 65536
    events = [(a, p) for a, p, _ in since_add_of(s, CXL_DEV)]
    assert events == [("add", CXL_DEV), *kmem_add_events(s, A2_BLOCKS), ("bind", CXL_DEV)]
    assert since_add_of(s, CXL_DEV)[-1][2]["DRIVER"] == "kmem"


def test_a2_online_all_movable_gives_16515072_kb_and_tier22() -> None:
    s = boot()
    total_before = meminfo(s, 0)["MemTotal"] + meminfo(s, 1)["MemTotal"]
    mark = s.kernel.events.seqnum
    online_blocks(s, A2_BLOCKS)  # each write returns 15
    tier = [("add", "/devices/virtual/memory_tiering/memory_tier22")]  # with the first page online
    assert uevents(s, mark) == tier + [("online", f"/devices/system/memory/memory{b}") for b in A2_BLOCKS]
    assert all(s.cat(f"/devices/system/memory/memory{b}/valid_zones") == "Movable\n" for b in A2_BLOCKS)
    info = meminfo(s, 1)
    assert (info["MemTotal"], info["MemFree"], info["MemUsed"]) == (16515072, 16515072, 0)
    assert "Node 1 MemTotal:       16515072 kB\n" in s.cat("/devices/system/node/node1/meminfo")
    zones = s.kernel.nodes[1].zones
    assert (sum(z.present for z in zones.values()), sum(z.managed for z in zones.values())) == (4194304, 4128768)
    assert s.cat("/devices/system/node/has_memory") == "0-1\n"
    assert s.cat("/devices/system/node/has_normal_memory") == "0\n"
    assert s.cat("/devices/virtual/memory_tiering/memory_tier22/nodelist") == "1\n"
    total_after = meminfo(s, 0)["MemTotal"] + meminfo(s, 1)["MemTotal"]
    assert total_after - total_before == 16515072


def test_a2_offline_all_then_unbind_removes_everything() -> None:
    s = boot()
    online_blocks(s, A2_BLOCKS)
    mark = s.kernel.events.seqnum
    offline_blocks(s, A2_BLOCKS)
    assert memory_events(uevents(s, mark), "offline") == list(A2_BLOCKS)
    assert meminfo(s, 1)["MemTotal"] == 0
    assert s.cat("/devices/system/node/has_memory") == "0\n"
    assert not s.exists("/devices/virtual/memory_tiering/memory_tier22")
    mark = s.kernel.events.seqnum
    assert s.echo(f"{KMEM}/unbind", "dax0.0") == 7
    expected = [("remove", f"/devices/system/memory/memory{b}") for b in A2_BLOCKS]
    expected += [("remove", "/devices/system/node/node1"), ("unbind", CXL_DEV)]
    assert uevents(s, mark) == expected
    iomem = s.kernel.resources.format_iomem()
    assert "dax0.0" not in iomem and "System RAM (kmem)" not in iomem
    assert s.cat("/devices/system/node/online") == "0\n"
    assert not s.exists("/devices/system/node/node1")
    assert s.cat("/devices/system/node/node0/distance") == "10\n"
    assert s.kernel.memory_groups == {}
    assert s.kernel.kmsg == []


def test_a2_unbind_with_memory600_online_leaks_and_rebind_fails_ebusy() -> None:
    s = boot()
    online_blocks(s, range(600, 601))
    assert s.echo(f"{KMEM}/unbind", "dax0.0") == 7
    assert s.kernel.kmsg == [
        "removing memory fails, because memory [0x00000012c0000000-0x00000012c7ffffff] is onlined",
        "mapping0: 0x1050000000-0x144fffffff cannot be hotremoved until the next reboot",
    ]
    states = [s.cat(f"/devices/system/memory/memory{b}/state") for b in A2_BLOCKS]
    assert (states.count("offline\n"), states.count("online\n")) == (127, 1)
    assert s.cat("/devices/system/node/online") == "0-1\n"
    iomem = s.kernel.resources.format_iomem()
    assert "    1050000000-144fffffff : dax0.0\n      1050000000-144fffffff : System RAM (kmem)\n" in iomem
    assert not s.exists(f"{CXL_DEV}/driver")
    del s.kernel.kmsg[:]
    assert write_errno(s, f"{KMEM}/bind", "dax0.0") == errno.EBUSY
    assert s.kernel.kmsg == ["mapping0: 0x1050000000-0x144fffffff could not reserve region",
                        "probe with driver kmem failed with error -16"]
    # The leftover blocks can still be offlined by hand; the memory stays until reboot.
    offline_blocks(s, range(600, 601))
    assert write_errno(s, f"{KMEM}/bind", "dax0.0") == errno.EBUSY


# -- docs/abi.md example 2 -----------------------------------------------------------------
def test_a3_memmap_off_takes_the_memmap_from_node0_at_bind() -> None:
    s = boot(memmap_on_memory="N")
    base = boot(memmap_on_memory="N", kmem_loaded=False)
    assert all(s.kernel.blocks[b].altmap == 0 for b in A2_BLOCKS)
    n0, b0 = meminfo(s, 0), meminfo(base, 0)
    assert n0["MemTotal"] == b0["MemTotal"]
    assert b0["MemFree"] - n0["MemFree"] == 262144
    assert n0["MemUsed"] - b0["MemUsed"] == 262144
    online_blocks(s, A2_BLOCKS)
    assert meminfo(s, 1)["MemTotal"] == 16777216
    zones = s.kernel.nodes[1].zones
    assert sum(z.present for z in zones.values()) == sum(z.managed for z in zones.values()) == 4194304
    assert s.cat(f"{CXL_DEV}/memmap_on_memory") == "1\n"
    assert write_errno(s, f"{CXL_DEV}/memmap_on_memory", "1") == errno.EOPNOTSUPP
    assert write_errno(s, f"{CXL_DEV}/memmap_on_memory", "0") == errno.EBUSY
    offline_blocks(s, A2_BLOCKS)
    s.echo(f"{KMEM}/unbind", "dax0.0")
    assert meminfo(s, 0) == b0
    assert s.echo(f"{CXL_DEV}/memmap_on_memory", "0") == 2


# -- docs/abi.md example 3 -----------------------------------------------------------------
def test_a4_2gib_blocks_trim_the_window_and_use_altmaps() -> None:
    s = boot(block_size=2 * GiB)
    assert s.kernel.kmsg == ["DAX region truncated by 2.00 GiB due to alignment"]
    assert s.kernel.memory_groups[0].max_pages == 3670016
    new = sorted(b for b in s.kernel.blocks if b >= 33)
    assert new == list(range(33, 40))
    assert [s.cat(f"/devices/system/memory/memory{b}/phys_index") for b in (33, 39)] == ["00000021\n", "00000027\n"]
    assert "    1080000000-13ffffffff : dax0.0\n      1080000000-13ffffffff : System RAM (kmem)\n" in (
        s.kernel.resources.format_iomem())
    online_blocks(s, range(33, 40))
    zones = s.kernel.nodes[1].zones
    present, managed = sum(z.present for z in zones.values()), sum(z.managed for z in zones.values())
    assert (present, managed, present - managed) == (3670016, 3612672, 57344)
    assert meminfo(s, 1)["MemTotal"] == 14450688


def test_a4_2gib_blocks_without_memmap_on_memory() -> None:
    s = boot(block_size=2 * GiB, memmap_on_memory="N")
    base = boot(block_size=2 * GiB, memmap_on_memory="N", kmem_loaded=False)
    assert meminfo(base, 0)["MemFree"] - meminfo(s, 0)["MemFree"] == 229376
    online_blocks(s, range(33, 40))
    assert meminfo(s, 1)["MemTotal"] == 14680064


@pytest.mark.parametrize(("mode", "node1_total", "node0_pays"), [("Y", 16515072, 0), ("N", 16777216, 262144)])
def test_a4_aligned_window_gives_eight_2gib_blocks(mode: str, node1_total: int, node0_pays: int) -> None:
    window = [CxlRegionConfig(0x4000000000, 16 * GiB, target_node=1)]
    s = boot(block_size=2 * GiB, memmap_on_memory=mode, cxl_regions=window)
    base = boot(block_size=2 * GiB, memmap_on_memory=mode, cxl_regions=window, kmem_loaded=False)
    assert sorted(b for b in s.kernel.blocks if b >= 100) == list(range(128, 136))
    assert s.kernel.kmsg == []
    assert meminfo(base, 0)["MemFree"] - meminfo(s, 0)["MemFree"] == node0_pays
    online_blocks(s, range(128, 136))
    assert meminfo(s, 1)["MemTotal"] == node1_total


# -- docs/abi.md example 4 -----------------------------------------------------------------
@pytest.mark.parametrize("profile", ["6.18", "6.9-6.16"])
def test_a5_a_failing_sixth_chunk_rolls_back_and_the_bind_fails_with_its_errno(profile: str) -> None:
    s = boot(dax_drivers_autoprobe=False, kernel_profile=profile)
    s.kernel.faults.memmap_fail_at_chunk = 5  # creating memory527
    mark = s.kernel.events.seqnum
    assert write_errno(s, f"{KMEM}/bind", "dax0.0") == errno.ENOMEM
    five = range(522, 527)
    blocks = [("add", f"/devices/system/memory/memory{b}") for b in five]
    blocks += [("remove", f"/devices/system/memory/memory{b}") for b in five]
    if s.kernel.profile >= (6, 18):  # node1 is registered first and unregistered by the error path
        blocks = [("add", "/devices/system/node/node1"), *blocks, ("remove", "/devices/system/node/node1")]
    assert uevents(s, mark) == blocks
    assert s.kernel.kmsg == ["mapping0: 0x1050000000-0x144fffffff memory add failed",
                        "probe with driver kmem failed with error -12"]
    assert s.kernel.memory_groups == {}
    assert s.cat("/devices/system/node/online") == "0\n"
    assert not s.exists("/devices/system/node/node1")
    assert not any(b >= 522 for b in s.kernel.blocks)
    assert s.kernel.resources.format_iomem() == (
        "00000000-3ffffffff : System RAM\n"
        "1050000000-144fffffff : CXL Window 0\n"
        "  1050000000-144fffffff : region0\n"
    )
    assert not s.exists(f"{CXL_DEV}/driver")
    assert s.echo(f"{KMEM}/bind", "dax0.0") == 7  # the fault fired once


# -- docs/abi.md example 5 -----------------------------------------------------------------
def test_a6_a_1gib_hmem_range_is_too_small_for_2gib_blocks() -> None:
    s = hmem_only(start=0x1C40000000, size=1 * GiB, block_size=2 * GiB)
    assert s.kernel.kmsg == [
        "mapping0: 0x1c40000000-0x1c7fffffff too small after alignment",
        "rejecting DAX region without any memory after alignment",
        "probe with driver kmem failed with error -22",
    ]
    assert s.realpath(f"{BUS}/devices/dax0.0") == "/devices/platform/hmem.0/dax0.0"
    assert not s.exists(f"{BUS}/devices/dax0.0/driver")
    assert s.echo(f"{BUS}/drivers_probe", "dax0.0") == 7
    assert not s.exists(f"{BUS}/devices/dax0.0/driver")
    assert write_errno(s, f"{KMEM}/bind", "dax0.0") == errno.EINVAL
    assert s.kernel.memory_groups == {}


def test_a6_the_same_range_with_128mib_blocks_gives_eight_blocks() -> None:
    s = hmem_only(start=0x1C40000000, size=1 * GiB)
    assert s.kernel.kmsg == []
    assert sorted(b for b in s.kernel.blocks if b >= 128) == list(range(904, 912))
    assert [n for n in s.ls("/devices/system/node/node1") if n.startswith("memory")] == [
        f"memory{b}" for b in range(904, 912)
    ]
