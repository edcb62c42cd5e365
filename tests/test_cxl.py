"""The CXL bus (docs/cxl.md): the default topology's CXL devices, their attributes and links,
the bus's drivers with bind/unbind errnos, topology validation, and unmodified ``cxl list``."""

from __future__ import annotations

import errno
import itertools
import json
import os
import shutil
import subprocess
import sys
from typing import Any

import pytest
from conftest import ENV, fuse_unavailable_reason, raises_errno

from fakesysfs import Simulation
from fakesysfs.errors import ConfigError, KernelError
from fakesysfs.topology import default_topology_text, load_topology

ROOT = "/devices/platform/ACPI0017:00/root0"
PORT = f"{ROOT}/port1"
EP = f"{PORT}/endpoint2"
MEM0 = "/devices/pci0000:0c/0000:0c:00.0/0000:0d:00.0/mem0"
#: The default topology's free 8 GiB expander, on the host bridge's second root port.
MEM1 = "/devices/pci0000:0c/0000:0c:01.0/0000:0e:00.0/mem1"


@pytest.fixture
def sim() -> Simulation:
    return Simulation(load_topology())


def test_default_topology_has_the_hardware_of_region0(sim: Simulation) -> None:
    """root0 -> port1 (host bridge pci0000:0c) -> endpoint2 (mem0), drivers/cxl/acpi.c and
    core/port.c naming; the firmware region is committed on decoder2.0 and decoder1.0."""
    assert sim.realpath(f"{ROOT}/uport") == "/devices/platform/ACPI0017:00"
    assert sim.realpath(f"{ROOT}/dport0") == "/devices/pci0000:0c"
    assert sim.realpath(f"{PORT}/uport") == "/devices/pci0000:0c"
    assert sim.realpath(f"{PORT}/dport0") == "/devices/pci0000:0c/0000:0c:00.0"
    assert sim.realpath(f"{EP}/uport") == MEM0
    assert sim.realpath(f"{EP}/parent_dport") == "/devices/pci0000:0c/0000:0c:00.0"
    assert not sim.exists(f"{ROOT}/driver") and not sim.exists(f"{ROOT}/parent_dport")
    assert sim.realpath(f"{PORT}/driver") == "/bus/cxl/drivers/cxl_port"
    assert sim.cat(f"{ROOT}/modalias") == "cxl:t4\n" and sim.cat(f"{PORT}/modalias") == "cxl:t3\n"
    assert [sim.cat(f"{p}/decoders_committed") for p in (ROOT, PORT, EP)] == ["0\n", "1\n", "1\n"]
    dec = f"{ROOT}/decoder0.0"
    assert {f: sim.cat(f"{dec}/{f}") for f in ("start", "size", "interleave_ways", "interleave_granularity",
                                                "cap_ram", "cap_pmem", "cap_type3", "target_list", "locked")} == {
        "start": "0x1050000000\n", "size": "0x400000000\n", "interleave_ways": "1\n",
        "interleave_granularity": "256\n", "cap_ram": "1\n", "cap_pmem": "0\n", "cap_type3": "1\n",
        "target_list": "0\n", "locked": "0\n"}
    assert sim.exists(f"{dec}/create_ram_region") and not sim.exists(f"{dec}/create_pmem_region")
    ep0 = f"{EP}/decoder2.0"
    assert sim.cat(f"{ep0}/mode") == "ram\n" and sim.cat(f"{ep0}/region") == "region0\n"
    assert sim.cat(f"{ep0}/dpa_size") == "0x0000000400000000\n"  # %pa
    assert sim.cat(f"{ep0}/dpa_resource") == "0x0\n"
    assert sim.cat(f"{EP}/decoder2.1/dpa_resource") == "0xffffffffffffffff\n"
    assert sim.cat(f"{EP}/decoder2.1/mode") == "none\n" and sim.cat(f"{EP}/decoder2.1/size") == "0x0\n"
    assert sim.cat(f"{PORT}/decoder1.0/region") == "region0\n"
    assert sim.cat(f"{PORT}/decoder1.1/region") == "\n"
    region = f"{dec}/region0"
    assert sim.cat(f"{region}/target0") == "decoder2.0\n" and not sim.exists(f"{region}/target1")
    assert sim.cat(f"{region}/commit") == "1\n" and sim.cat(f"{region}/uuid") == "\n"
    assert sim.cat(f"{region}/resource") == "0x1050000000\n"
    assert sim.realpath("/bus/cxl/devices/region0") == region


def test_decoder_start_is_admin_only_and_ram_uuid_read_only(sim: Simulation) -> None:
    """DEVICE_ATTR_ADMIN_RO(start); cxl_region_visible() makes a ram region's uuid 0444."""
    from conftest import file_mode

    assert file_mode(sim, f"{ROOT}/decoder0.0/start") == 0o400
    assert file_mode(sim, f"{ROOT}/decoder0.0/region0/uuid") == 0o444


def test_memdev_attributes_and_char_device(sim: Simulation) -> None:
    """What libcxl's add_cxl_memdev() reads, and the /sys/dev/char link devtmpfs names from."""
    assert sim.cat(f"{MEM0}/ram/size") == "0x400000000\n" and sim.cat(f"{MEM0}/pmem/size") == "0x0\n"
    assert sim.cat(f"{MEM0}/serial") == "0x1234\n" and sim.cat(f"{MEM0}/numa_node") == "0\n"
    assert sim.cat(f"{MEM0}/dev") == "251:0\n"
    assert sim.cat(f"{MEM0}/uevent").startswith("MAJOR=251\nMINOR=0\nDEVNAME=cxl/mem0\nDEVTYPE=cxl_memdev\n")
    assert sim.realpath("/dev/char/251:0") == MEM0
    assert sim.realpath(f"{MEM0}/driver") == "/bus/cxl/drivers/cxl_mem"


def test_bus_drivers_bind_and_unbind_errnos(sim: Simulation) -> None:
    """drivers/base/bus.c: a driver that does not match (cxl_bus_match(), by type id) refuses
    with ENODEV, so libcxl's try-every-driver bind lands on the right one; bound: EBUSY;
    unbind from another driver: ENODEV; cxl_dax_region suppresses bind attributes."""
    drivers = "/bus/cxl/drivers"
    assert sim.ls(drivers) == ["cxl_port", "cxl_mem", "cxl_region", "cxl_dax_region", "cxl_nvdimm_bridge",
                               "cxl_nvdimm", "cxl_pmem_region"]
    assert not any(sim.exists(f"{drivers}/{d}/bind") for d in ("cxl_nvdimm_bridge", "cxl_nvdimm", "cxl_pmem_region"))
    with raises_errno(errno.ENODEV):
        sim.echo(f"{drivers}/cxl_port/bind", "mem0")
    with raises_errno(errno.ENODEV):
        sim.echo(f"{drivers}/cxl_mem/bind", "nosuchdev")
    with raises_errno(errno.ENODEV):
        sim.echo(f"{drivers}/cxl_mem/bind", "decoder0.0")  # decoders match no driver
    with raises_errno(errno.EBUSY):
        sim.echo(f"{drivers}/cxl_mem/bind", "mem0")
    with raises_errno(errno.ENODEV):
        sim.echo(f"{drivers}/cxl_port/unbind", "mem0")
    assert not sim.exists(f"{drivers}/cxl_dax_region/bind")
    sim.echo("/bus/cxl/flush", "1")
    with raises_errno(errno.EINVAL):
        sim.echo("/bus/cxl/flush", "2")


def test_free_memdev_unbinds_and_binds_with_its_endpoint(sim: Simulation) -> None:
    """cxl_mem unbind: delete_endpoint() removes the decoders, then the port (its id goes
    back to the port ida); bind: a new endpoint with the lowest free id and fresh decoders."""
    assert sim.realpath(f"{PORT}/endpoint3/uport") == MEM1
    assert sim.realpath(f"{PORT}/dport1") == "/devices/pci0000:0c/0000:0c:01.0"
    mark = sim.mark()
    sim.echo(f"{MEM1}/driver/unbind", "mem1")
    assert not sim.exists(f"{PORT}/endpoint3") and not sim.exists(f"{MEM1}/driver")
    assert not sim.exists("/bus/cxl/devices/decoder3.0")
    events = [(e.action, e.devpath.rsplit("/", 1)[1]) for e in sim.events(mark)]
    assert events == [("remove", "decoder3.3"), ("remove", "decoder3.2"), ("remove", "decoder3.1"),
                      ("remove", "decoder3.0"), ("unbind", "endpoint3"), ("remove", "endpoint3"),
                      ("unbind", "mem1")]
    sim.echo("/bus/cxl/drivers/cxl_mem/bind", "mem1")
    assert sim.realpath(f"{PORT}/endpoint3/uport") == MEM1
    assert sim.cat(f"{PORT}/endpoint3/decoder3.0/mode") == "none\n"


def test_unbinding_a_region_member_resets_the_region_and_keeps_it(sim: Simulation) -> None:
    """cxl_decoder_kill_region() on delete_endpoint(): region0 is decode-reset, its driver
    released (dax0.0 goes; kmem's offline memory with it), mem0's decoder detached; the region
    device stays, uncommitted, ``target0`` empty, and port1's decoder is free again."""
    region = f"{ROOT}/decoder0.0/region0"
    sim.echo(f"{MEM0}/driver/unbind", "mem0")
    assert not sim.exists(f"{PORT}/endpoint2") and not sim.exists("/bus/dax/devices/dax0.0")
    assert sim.exists(region) and not sim.exists(f"{region}/driver")
    assert sim.cat(f"{region}/commit") == "0\n" and sim.cat(f"{region}/target0") == "\n"
    assert sim.cat(f"{PORT}/decoders_committed") == "0\n" and sim.cat(f"{PORT}/decoder1.0/region") == "\n"
    sim.echo("/bus/cxl/drivers/cxl_mem/bind", "mem0")
    assert sim.realpath(f"{PORT}/endpoint2/uport") == MEM0  # the lowest free port id again
    assert sim.cat(f"{PORT}/endpoint2/decoder2.0/dpa_resource") == "0xffffffffffffffff\n"


def test_host_bridge_port_unbind_takes_its_endpoints_and_bind_brings_back_its_decoders(sim: Simulation) -> None:
    """cxl_port unbind of port1 (cxl disable-port): the endpoints go and their memdevs leave
    cxl_mem (schedule_detach(), synchronous here), region0 is reset, the port's decoders and
    dports go, the port stays unbound; a memdev cannot bind below it (ENXIO). Bind re-enumerates
    dports and decoders (ids from 0 again); memdevs come back only when bound themselves."""
    drivers = "/bus/cxl/drivers"
    sim.echo(f"{drivers}/cxl_port/unbind", "port1")
    assert not sim.exists(f"{PORT}/driver") and not sim.exists(f"{PORT}/endpoint2")
    assert not sim.exists(f"{PORT}/dport0") and not sim.exists("/bus/cxl/devices/decoder1.0")
    assert not sim.exists(f"{MEM0}/driver") and not sim.exists(f"{MEM1}/driver")
    assert sim.cat(f"{ROOT}/decoder0.0/region0/commit") == "0\n" and not sim.exists("/bus/dax/devices/dax0.0")
    with raises_errno(errno.ENXIO):
        sim.echo(f"{drivers}/cxl_mem/bind", "mem0")
    with raises_errno(errno.ENODEV):
        sim.echo(f"{drivers}/cxl_port/unbind", "port1")
    sim.echo(f"{drivers}/cxl_port/bind", "port1")
    assert sim.ls(PORT)[-7:] == ["parent_dport", "dport0", "dport1", "decoder1.0", "decoder1.1", "decoder1.2",
                                 "decoder1.3"]
    assert sim.cat(f"{PORT}/decoders_committed") == "0\n"
    sim.echo(f"{drivers}/cxl_mem/bind", "mem1")
    assert sim.realpath(f"{PORT}/endpoint2/uport") == MEM1  # the lowest free port id


def test_regions_without_declared_windows_get_a_window_of_their_own() -> None:
    """A ``[[cxl_region]]`` whose decoder names no ``[[cxl_window]]`` keeps today's shape: its
    root decoder's window is the region's range, with no memdev behind it."""
    text = default_topology_text()
    start = text.index("# The CXL hardware region0")
    end = text.index("# EFI soft-reserved")
    sim = Simulation(load_topology(text=text[:start] + text[end:]))
    assert sim.cat(f"{ROOT}/decoder0.0/size") == "0x400000000\n"
    assert sim.cat(f"{ROOT}/decoder0.0/region0/target0") == "\n"
    assert sim.ls("/devices/platform/ACPI0017:00/root0") == [
        "devtype", "modalias", "power", "subsystem", "uevent", "decoders_committed", "uport", "decoder0.0"]


@pytest.mark.parametrize(("change", "key", "why"), [
    (("size = \"16G\"\ntarget_node = 1\nhost_bridges", "size = \"16G\"\ntarget_node = 1\npmem = true\n"
      "ram = false\nhost_bridges"), "cxl_region[0]", "not a volatile"),
    (("host_bridges = [0]", "host_bridges = [0, 1, 2]\ngranularity = 4096"), "cxl_window[0].size",
     "3 x 256 MiB"),
    (("host_bridges = [0]", "host_bridges = [0, 0]"), "cxl_window[0].host_bridges", "listed twice"),
    (("ram_size = \"16G\"", "ram_size = \"100M\""), "cxl_memdev[0].ram_size", "256 MiB"),
    (("ram_size = \"16G\"", "ram_size = \"8G\""), "cxl_region[0]", "no memdev"),
    # A window is an iomem resource of its own: no boot RAM (or hmem, pmem) inside it, and a
    # region overlapping a window lies in the window it names.
    (("start = 0x1450000000", "start = 0x0"), "cxl_window[1]", "overlaps node[0].memory[0]"),
    (("decoder = \"decoder0.0\"", "decoder = \"decoder0.1\""), "cxl_region[0]", "overlaps cxl_window[0]"),
])
def test_topology_rejects_impossible_cxl_hardware(change: tuple[str, str], key: str, why: str) -> None:
    text = default_topology_text().replace(*change, 1)
    with pytest.raises(ConfigError) as info:
        Simulation(load_topology(text=text))
    assert info.value.key == key and why in info.value.why, info.value


# -- region creation (drivers/cxl/core/region.c) -------------------------------------------------
DEV = "/bus/cxl/devices"


def _errno_of(sim: Simulation, path: str, data: str) -> int:
    try:
        sim.echo(f"{DEV}/{path}", data)
    except KernelError as exc:
        return exc.errno
    return 0


def test_region_state_machine_errnos_in_the_kernels_order(sim: Simulation) -> None:
    """Each store refuses what the kernel refuses, with its errno, until the region is built:
    create_ram_region (id shown, EBUSY otherwise), ways/granularity (EINVAL), size (ENXIO
    before ways, EINVAL off 256 MiB x ways, ERANGE past the window), the endpoint decoder's
    mode and DPA (EBUSY out of order, ENOSPC past the partition), targetN (ENODEV without
    DPA, EINVAL for the wrong size), commit (ENXIO before ACTIVE), bind (ENXIO before commit)."""
    assert sim.cat(f"{DEV}/decoder0.1/create_ram_region") == "region3\n"
    assert _errno_of(sim, "decoder0.1/create_ram_region", "region4") == errno.EBUSY
    assert _errno_of(sim, "decoder0.1/create_ram_region", "bogus") == errno.EINVAL
    mark = sim.mark()
    sim.echo(f"{DEV}/decoder0.1/create_ram_region", "region3")
    assert [(e.action, e.devpath.rsplit("/", 1)[1]) for e in sim.events(mark)] == [("add", "region3")]
    r = "region3"
    assert sim.cat(f"{DEV}/{r}/size") == "0x0\n" and sim.cat(f"{DEV}/{r}/resource") == "0xffffffffffffffff\n"
    assert sim.cat(f"{DEV}/decoder0.1/create_ram_region") == "region4\n"
    assert not sim.exists(f"{DEV}/{r}/driver") and not sim.exists(f"{DEV}/{r}/target0")
    assert _errno_of(sim, f"{r}/size", "0x200000000") == errno.ENXIO  # no ways yet
    assert _errno_of(sim, f"{r}/interleave_ways", "5") == errno.EINVAL
    assert _errno_of(sim, f"{r}/interleave_granularity", "100") == errno.EINVAL
    sim.echo(f"{DEV}/{r}/interleave_granularity", "256")
    sim.echo(f"{DEV}/{r}/interleave_ways", "1")
    assert sim.exists(f"{DEV}/{r}/target0") and not sim.exists(f"{DEV}/{r}/target1")
    assert _errno_of(sim, f"{r}/size", "0x10000000") == 0 and _errno_of(sim, f"{r}/size", "0") == 0
    assert _errno_of(sim, f"{r}/size", "0x8000000") == errno.EINVAL  # not 256 MiB x ways
    assert _errno_of(sim, f"{r}/size", "0x800000000") == errno.ERANGE  # 32 GiB: the window has 16
    sim.echo(f"{DEV}/{r}/size", "0x200000000")
    assert sim.cat(f"{DEV}/{r}/resource") == "0x1450000000\n"
    assert _errno_of(sim, f"{r}/interleave_ways", "1") == errno.EBUSY  # sized: INTERLEAVE_ACTIVE
    assert _errno_of(sim, f"{r}/target0", "decoder3.0") == errno.ENODEV  # no DPA partition (6.15+)
    assert _errno_of(sim, "decoder3.0/dpa_size", "0x200000000") == errno.EBUSY  # no mode (6.15+)
    assert _errno_of(sim, "decoder3.0/mode", "flash") == errno.EINVAL
    assert _errno_of(sim, "decoder3.0/mode", "pmem") == errno.ENXIO  # mem1 has no pmem
    sim.echo(f"{DEV}/decoder3.1/mode", "ram")
    assert _errno_of(sim, "decoder3.1/dpa_size", "0x100000000") == errno.EBUSY  # decoder3.0 first
    sim.echo(f"{DEV}/decoder3.0/mode", "ram")
    assert _errno_of(sim, "decoder3.0/dpa_size", "0x300000000") == errno.ENOSPC  # 12 GiB of 8
    assert _errno_of(sim, "decoder3.0/dpa_size", "0x1000") == errno.EINVAL
    sim.echo(f"{DEV}/decoder3.0/dpa_size", "0x100000000")
    assert _errno_of(sim, f"{r}/target0", "decoder3.0") == errno.EINVAL  # 4 GiB x 1 != 8 GiB
    sim.echo(f"{DEV}/decoder3.0/dpa_size", "0x200000000")
    assert _errno_of(sim, f"{r}/commit", "1") == errno.ENXIO  # no target yet
    assert _errno_of(sim, f"{r}/target0", "decoder2.1") == errno.ENODEV  # mem0's, no DPA
    assert _errno_of(sim, f"{r}/target0", "region0") == errno.EINVAL  # not an endpoint decoder
    assert _errno_of(sim, f"{r}/target0", "nosuch") == errno.ENODEV
    sim.echo(f"{DEV}/{r}/target0", "decoder3.0")
    assert sim.cat(f"{DEV}/decoder3.0/region") == f"{r}\n"
    assert sim.cat(f"{DEV}/decoder1.1/region") == f"{r}\n"  # port1's next decoder routes it
    assert sim.cat(f"{DEV}/decoder1.1/target_list") == "1\n"  # mem1's root port
    assert _errno_of(sim, "decoder3.0/dpa_size", "0") == errno.EBUSY  # in a region
    assert _errno_of(sim, "../drivers/cxl_region/bind", r) == errno.ENXIO  # not committed
    sim.echo(f"{DEV}/{r}/commit", "1")
    assert [sim.cat(f"{DEV}/{p}/decoders_committed") for p in ("port1", "endpoint3")] == ["2\n", "1\n"]
    mark = sim.mark()
    sim.echo("/bus/cxl/drivers/cxl_region/bind", r)
    events = [(e.action, e.devpath.rsplit("/", 1)[1]) for e in sim.events(mark)
              if not e.devpath.startswith("/devices/system")]
    assert events[:2] == [("add", "dax_region3"), ("add", "dax3.0")]
    assert events[-3:] == [("bind", "dax3.0"), ("bind", "dax_region3"), ("bind", r)]
    assert sim.realpath(f"{DEV}/{r}/driver") == "/bus/cxl/drivers/cxl_region"
    assert sim.realpath("/bus/dax/devices/dax3.0") == f"{ROOT}/decoder0.1/{r}/dax_region3/dax3.0"
    assert sim.realpath("/bus/dax/devices/dax3.0/driver") == "/bus/dax/drivers/kmem"
    assert sim.cat("/bus/dax/devices/dax3.0/target_node") == "1\n"
    assert sim.cat("/bus/dax/devices/dax3.0/memmap_on_memory") == "1\n"
    assert "  1450000000-164fffffff : region3\n" in sim.iomem()
    # destroy, as cxl destroy-region does it: unbind, commit 0, detach, free DPA, delete.
    sim.echo("/bus/cxl/drivers/cxl_region/unbind", r)
    assert not sim.exists("/bus/dax/devices/dax3.0")
    sim.echo(f"{DEV}/{r}/commit", "0")
    assert [sim.cat(f"{DEV}/{p}/decoders_committed") for p in ("port1", "endpoint3")] == ["1\n", "0\n"]
    sim.echo(f"{DEV}/{r}/target0", "")
    sim.echo(f"{DEV}/decoder3.0/dpa_size", "0")
    assert _errno_of(sim, "decoder0.1/delete_region", "region0") == errno.ENODEV  # decoder0.0's child
    sim.echo(f"{DEV}/decoder0.1/delete_region", r)
    assert not sim.exists(f"{DEV}/{r}") and "region3" not in sim.iomem()
    assert sim.cat(f"{DEV}/decoder0.1/create_ram_region") == "region3\n"  # the id is recycled
    assert sim.cat(f"{DEV}/decoder1.1/region") == "\n"


def test_delete_region_tears_a_bound_region_down(sim: Simulation) -> None:
    """delete_region_store() unregisters even an enabled region: driver released (the dax
    device goes), decoders reset and detached, HPA and DPA stay as the kernel leaves DPA."""
    for path, value in [("decoder0.1/create_ram_region", "region3"), ("region3/interleave_granularity", "256"),
                        ("region3/interleave_ways", "1"), ("region3/size", "0x100000000"),
                        ("decoder3.0/mode", "ram"), ("decoder3.0/dpa_size", "0x100000000"),
                        ("region3/target0", "decoder3.0"), ("region3/commit", "1"),
                        ("../drivers/cxl_region/bind", "region3")]:
        sim.echo(f"{DEV}/{path}", value)
    assert sim.exists("/bus/dax/devices/dax3.0")
    sim.echo(f"{DEV}/decoder0.1/delete_region", "region3")
    assert not sim.exists("/bus/dax/devices/dax3.0") and not sim.exists(f"{DEV}/region3")
    assert sim.cat(f"{DEV}/decoder3.0/region") == "\n" and sim.cat(f"{DEV}/endpoint3/decoders_committed") == "0\n"
    assert sim.cat(f"{DEV}/decoder3.0/dpa_size") == "0x0000000100000000\n"  # cxl frees DPA itself


# -- unmodified cxl ------------------------------------------------------------------------------
def _unavailable() -> str | None:
    if shutil.which("cxl") is None:
        return "cxl not installed (apt-get install ndctl)"
    reason = fuse_unavailable_reason()
    if reason is not None:
        return f"FUSE: {reason}"
    if os.geteuid() != 0:
        return "the session mknods /dev/cxl/memN: run as root"
    return None


#: libcxl's create-region sequence (ndctl cxl/region.c create_region(), v77 and later: the
#: ``cxl`` of Debian 12, v76, refuses ``-t ram``), as raw writes with its trailing NULs.
CREATE_REGION = r"""
D=/sys/bus/cxl/devices
R=$(cat $D/decoder0.1/create_ram_region)
printf '%s\0' $R > $D/decoder0.1/create_ram_region
printf '256\n\0' > $D/$R/interleave_granularity
printf '1\n\0' > $D/$R/interleave_ways
printf '0x200000000\n\0' > $D/$R/size
printf '0\n\0' > $D/decoder3.0/dpa_size
printf 'ram\0' > $D/decoder3.0/mode
printf '0x200000000\n\0' > $D/decoder3.0/dpa_size
printf 'decoder3.0\0' > $D/$R/target0
printf '1\n\0' > $D/$R/commit
"""


def _session(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fakesysfs", "run", "--", "sh", "-c", script],
                          capture_output=True, text=True, env=ENV, timeout=240, check=False)


def _json_parts(stdout: str) -> list[Any]:
    return [json.loads(part) for part in stdout.split("==\n")[:-1]]


@pytest.mark.realtools
@pytest.mark.skipif(_unavailable() is not None, reason=str(_unavailable()))
def test_cxl_list_sees_the_default_topology() -> None:
    """``cxl list`` (ndctl's libcxl) inside ``fakesysfs run`` prints the kernel's shapes: the
    memdevs, the host-bridge port, the root decoders, the bus, the committed region."""
    script = ("for a in -M -P '-D -d root' -B -R -E; do cxl list $a; echo '=='; done; "
              "cxl disable-memdev mem0; echo \"rc=$?\"")
    done = _session(script)
    assert done.returncode == 0, done.stderr
    memdevs, ports, decoders, buses, regions, endpoints = _json_parts(done.stdout)
    assert sorted(memdevs, key=lambda m: m["memdev"]) == [
        {"memdev": "mem0", "ram_size": 16 << 30, "serial": 0x1234, "numa_node": 0, "host": "0000:0d:00.0"},
        {"memdev": "mem1", "ram_size": 8 << 30, "serial": 0x5678, "numa_node": 0, "host": "0000:0e:00.0"}]
    assert ports == [{"port": "port1", "host": "pci0000:0c", "depth": 1}]
    by_name = {d["decoder"]: d for d in decoders}
    assert sorted(by_name) == ["decoder0.0", "decoder0.1"]
    assert by_name["decoder0.0"]["resource"] == 0x1050000000 and by_name["decoder0.0"]["volatile_capable"]
    assert by_name["decoder0.0"]["max_available_extent"] == 0  # region0 fills it
    assert by_name["decoder0.1"]["max_available_extent"] == 16 << 30
    assert buses == [{"bus": "root0", "provider": "ACPI.CXL"}]
    assert [(r["region"], r["decode_state"], r["size"]) for r in regions] == [("region0", "commit", 16 << 30)]
    assert sorted((e["endpoint"], e["host"]) for e in endpoints) == [("endpoint2", "mem0"), ("endpoint3", "mem1")]
    # cxl disable-memdev refuses a memdev whose endpoint has committed decoders.
    assert "mem0 is part of an active region" in done.stderr
    assert done.stdout.rstrip().endswith("rc=1")


@pytest.mark.realtools
@pytest.mark.skipif(_unavailable() is not None, reason=str(_unavailable()))
def test_a_created_region_onlines_through_daxctl_and_is_destroyed_by_cxl() -> None:
    """The issue's sequence: create a ram region on the free window (libcxl's writes), ``cxl
    enable-region``, ``daxctl reconfigure-device -m system-ram`` (64 blocks online, movable,
    node 1), ``daxctl offline-memory``, ``cxl disable-region``, ``cxl destroy-region``: the
    DPA, the decoders and the region id are free again."""
    script = CREATE_REGION + (
        "cxl enable-region $R; echo \"rc=$?\"; cxl list -R -r $R; echo ==; "
        "daxctl reconfigure-device -m system-ram dax3.0; echo ==; "
        "daxctl offline-memory dax3.0; cxl disable-region $R; cxl destroy-region $R; echo \"rc=$?\"; "
        "cat $D/decoder3.0/dpa_size $D/decoder0.1/create_ram_region $D/endpoint3/decoders_committed; "
        "cxl list -R -i; echo ==")
    done = _session(script)
    assert done.returncode == 0, done.stderr
    first, second, third = done.stdout.split("==\n")[:3]
    assert first.startswith("rc=0\n"), done.stdout  # enable-region
    region, dax = json.loads(first.removeprefix("rc=0\n")), json.loads(second)
    # destroy-region's status, then decoder3.0/dpa_size, create_ram_region, decoders_committed
    tail, _, listing = third.partition("[")
    remaining = json.loads("[" + listing)
    assert region == [{"region": "region3", "resource": 0x1450000000, "size": 8 << 30, "interleave_ways": 1,
                       "interleave_granularity": 256, "decode_state": "commit"}]
    assert dax[0]["chardev"] == "dax3.0" and dax[0]["mode"] == "system-ram"
    assert dax[0]["online_memblocks"] == dax[0]["total_memblocks"] == 64 and dax[0]["movable"] is True
    assert dax[0]["target_node"] == 1
    assert tail == "rc=0\n0x0000000000000000\nregion3\n0\n", done.stdout
    assert [r["region"] for r in remaining] == ["region0"]
    assert "enabled 1 region" in done.stderr and "destroyed 1 region" in done.stderr


def test_devtree_serves_cxl_memdev_nodes_in_their_subdirectory() -> None:
    """In a user namespace ``/dev`` is a tree (fakesysfs/devfs.py): ``cxl/memN`` nodes sit in
    ``/dev/cxl``, which exists while it holds a node, as devtmpfs makes it; libcxl drops a
    memdev whose ``/dev/cxl/memN`` does not stat."""
    import stat as st

    from fakesysfs.devfs import DevNode, DevTree

    tree = DevTree([DevNode("cxl/mem0", False, 251, 0)])
    assert "cxl" in tree.readdir("/") and tree.readdir("/cxl") == ["mem0"]
    attrs = tree.getattr("/cxl/mem0")
    assert st.S_ISCHR(attrs.mode) and attrs.rdev == os.makedev(251, 0)
    tree.remove(DevNode("cxl/mem0", False, 251, 0))
    assert "cxl" not in tree.readdir("/")
    tree.add(DevNode("bus/usb/001/002", False, 189, 1))  # deeper: not served
    assert "bus" not in tree.readdir("/")


def _build(sim: Simulation, region: str, dec: str, size: str = "0x100000000") -> None:
    """libcxl's create sequence for a x1 ram region of ``size`` on decoder0.1 through ``dec``."""
    for path, value in [("decoder0.1/create_ram_region", region), (f"{region}/interleave_granularity", "256"),
                        (f"{region}/interleave_ways", "1"), (f"{region}/size", size), (f"{dec}/mode", "ram"),
                        (f"{dec}/dpa_size", size), (f"{region}/target0", dec), (f"{region}/commit", "1")]:
        sim.echo(f"{DEV}/{path}", value)


def test_an_out_of_order_reset_pins_the_decoder_until_the_ones_above_go(sim: Simulation) -> None:
    """core/hdm.c cxl_decoder_reset(): destroying the older of two regions disables its host
    bridge decoder but leaves ``decoders_committed`` (commit_end) alone; while that hole
    exists no region can take a decoder on the port (match_free_decoder(): EBUSY); resetting
    the decoder above reaps both (cxl_port_commit_reap())."""
    _build(sim, "region3", "decoder3.0", "0x80000000")
    _build(sim, "region4", "decoder3.1", "0x80000000")
    assert sim.cat(f"{DEV}/port1/decoders_committed") == "3\n"
    sim.echo(f"{DEV}/region3/commit", "0")
    assert sim.cat(f"{DEV}/port1/decoders_committed") == "3\n"  # decoder1.1 pinned
    sim.echo(f"{DEV}/region3/target0", "")
    sim.echo(f"{DEV}/decoder0.1/delete_region", "region3")
    sim.echo(f"{DEV}/decoder0.1/create_ram_region", "region3")
    for path, value in [("region3/interleave_granularity", "256"), ("region3/interleave_ways", "1"),
                        ("region3/size", "0x80000000"), ("decoder3.2/mode", "ram"),
                        ("decoder3.2/dpa_size", "0x80000000")]:
        sim.echo(f"{DEV}/{path}", value)
    assert _errno_of(sim, "region3/target0", "decoder3.2") == errno.EBUSY
    sim.echo(f"{DEV}/region4/commit", "0")
    assert sim.cat(f"{DEV}/port1/decoders_committed") == "1\n"  # decoder1.2 and the pinned 1.1 reaped
    # region4 (higher HPA) still holds decoder1.2: regions attach in HPA order per port.
    assert _errno_of(sim, "region3/target0", "decoder3.2") == errno.EBUSY
    sim.echo(f"{DEV}/region4/target0", "")
    sim.echo(f"{DEV}/region3/target0", "decoder3.2")  # decoder1.1 is the next free one again
    assert sim.cat(f"{DEV}/decoder1.1/region") == "region3\n"


# -- invariants under random sequences -----------------------------------------------------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_REGIONS = ("region3", "region4")
_OPS = st.one_of(
    st.tuples(st.just("build"), st.sampled_from(_REGIONS)),  # the whole create sequence, as cxl writes it
    st.tuples(st.just("decoder0.1/create_ram_region"), st.sampled_from(_REGIONS)),
    st.tuples(st.just("decoder0.1/delete_region"), st.sampled_from(_REGIONS)),
    st.tuples(st.sampled_from([f"{r}/interleave_ways" for r in _REGIONS]), st.sampled_from(["1", "2"])),
    st.tuples(st.sampled_from([f"{r}/interleave_granularity" for r in _REGIONS]), st.just("256")),
    st.tuples(st.sampled_from([f"{r}/size" for r in _REGIONS]), st.sampled_from(["0", "0x100000000", "0x200000000"])),
    st.tuples(st.sampled_from([f"decoder3.{i}/mode" for i in range(3)]), st.just("ram")),
    st.tuples(st.sampled_from([f"decoder3.{i}/dpa_size" for i in range(3)]),
              st.sampled_from(["0", "0x100000000", "0x200000000"])),
    st.tuples(st.sampled_from([f"{r}/target0" for r in _REGIONS]),
              st.sampled_from(["", "decoder3.0", "decoder3.1", "decoder3.2"])),
    st.tuples(st.sampled_from([f"{r}/commit" for r in _REGIONS]), st.sampled_from(["0", "1"])),
    st.tuples(st.sampled_from(["../drivers/cxl_region/bind", "../drivers/cxl_region/unbind"]),
              st.sampled_from(_REGIONS)),
    st.tuples(st.sampled_from(["../drivers/cxl_mem/bind", "../drivers/cxl_mem/unbind"]),
              st.sampled_from(["mem0", "mem1"])),
    st.tuples(st.sampled_from(["../drivers/cxl_port/bind", "../drivers/cxl_port/unbind"]), st.just("port1")),
)


def _check_cxl_invariants(sim: Simulation) -> None:
    """Decoders committed in id order per port; DPA of one memdev and HPA of one window never
    overlap; a region's targets and its decoders agree; a bound region is committed and has
    its dax device."""
    from fakesysfs.engine.cxl import CxlPort

    k = sim.kernel
    for port in [p for p in k.cxl_objects.values() if isinstance(p, CxlPort) and p.kind != "root"]:
        enabled = sorted(d.id for d in port.decoders.values() if d.enabled)
        # Committed in id order; an out-of-order reset leaves a disabled decoder below
        # commit_end ("pinned"), never an enabled one above it.
        assert all(i <= port.commit_end for i in enabled), (port.name, enabled, port.commit_end)
        assert port.commit_end < 0 or port.decoders[port.commit_end].enabled, (port.name, port.commit_end)
        spans = sorted((d.dpa_start, d.dpa_start + d.dpa_size) for d in port.decoders.values()
                       if d.dpa_start is not None)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), spans
    for dec in {id(r.root): r.root for r in k.cxl_regions_by_id.values()}.values():
        spans = sorted((r.start, r.start + r.size) for r in k.cxl_regions_by_id.values()
                       if r.root is dec and r.start is not None)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), spans
        assert all(dec.start <= lo and hi <= dec.start + dec.size for lo, hi in spans)
    for region in k.cxl_regions_by_id.values():
        for target in region.targets:
            assert target is None or target.region is region
        if region.committed:
            assert all(t is not None and t.enabled for t in region.targets)
        bound = k.dax_producer_devices[region.devpath].driver is not None
        assert not bound or region.committed
        if region.mode == "pmem":  # pmem_regionN instead of a dax region
            assert bound == (f"{region.devpath}/pmem_region{region.id}" in k.dax_producer_devices), region.name
            assert f"dax{region.id}.0" not in k.dax_devices
        else:
            assert bound == (f"dax{region.id}.0" in k.dax_devices), region.name
    uuids = [r.uuid for r in k.cxl_regions_by_id.values() if r.uuid.int]
    assert len(uuids) == len(set(uuids)), uuids  # is_dup()
    for mem in k.cxl_memdevs.values():  # pmemN lives while the memdev is bound (below a bridge)
        if mem.pmem_size and k.cxl_nvdimm_bridge_bound():
            assert (f"{mem.devpath}/pmem{mem.id}" in k.dax_producer_devices) == (mem.endpoint is not None)
    from fakesysfs.testing.invariants import check_all

    check_all(k, sim.tree)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(_OPS, min_size=1, max_size=25))
def test_random_region_operations_keep_every_invariant(ops: list[tuple[str, str]]) -> None:
    sim = Simulation(load_topology())
    for op, arg in ops:
        steps = [(op, arg)]
        if op == "build":
            dec = f"decoder3.{int(arg[-1]) - 3}"
            steps = [("decoder0.1/create_ram_region", arg), (f"{arg}/interleave_granularity", "256"),
                     (f"{arg}/interleave_ways", "1"), (f"{arg}/size", "0x100000000"), (f"{dec}/mode", "ram"),
                     (f"{dec}/dpa_size", "0x100000000"), (f"{arg}/target0", dec), (f"{arg}/commit", "1"),
                     ("../drivers/cxl_region/bind", arg)]
        for path, value in steps:
            _step(sim, path, value)


def _step(sim: Simulation, path: str, value: str) -> None:
    if True:
        err = _errno_of(sim, path, value)
        assert err in (0, errno.ENOENT, errno.EINVAL, errno.EBUSY, errno.ENXIO, errno.ENODEV, errno.ERANGE,
                       errno.ENOSPC), (
            path, value, err)
        _check_cxl_invariants(sim)


@pytest.mark.realtools
@pytest.mark.skipif(_unavailable() is not None, reason=str(_unavailable()))
def test_cxl_disables_and_enables_memdevs_and_ports() -> None:
    """``cxl disable-memdev -f`` (region0's member: the region is reset), ``enable-memdev``,
    ``disable-port`` (refused while memdevs are enabled below it, done with ``-f``) and
    ``enable-port -m``, as libcxl drives bind/unbind and checks the ``driver`` links."""
    script = ("cxl disable-memdev -f mem0; echo \"rc=$?\"; cxl list -M -i -m mem0; echo ==; "
              "cxl enable-memdev mem0; echo \"rc=$?\"; "
              "cxl disable-port port1; echo \"rc=$?\"; cxl disable-port -f port1; echo \"rc=$?\"; "
              "cxl list -P -i; echo ==; cxl enable-port -m port1; echo \"rc=$?\"; cxl list -E; echo ==")
    done = _session(script)
    assert done.returncode == 0, done.stderr
    first, ports, endpoints = done.stdout.split("==\n")[:3]
    assert first.startswith("rc=0\n") and '"state":"disabled"' in first
    rcs, _, listing = ports.partition("[")
    assert rcs == "rc=0\nrc=1\nrc=0\n", done.stdout  # enable-memdev, disable-port refused, forced
    assert json.loads("[" + listing) == [{"port": "port1", "host": "pci0000:0c", "depth": 1, "state": "disabled"}]
    rc, _, listing = endpoints.partition("[")
    assert rc == "rc=0\n"
    assert sorted(e["host"] for e in json.loads("[" + listing)) == ["mem0", "mem1"]


# -- pmem regions ---------------------------------------------------------------------------------
#: The default topology plus a 4 GiB pmem-only window (decoder0.2) and a 4 GiB pmem expander
#: (mem2, endpoint4, on the host bridge's third root port): what ``cxl create-region`` of v76 needs.
PMEM_EXTRA = """
[[cxl_window]]
start = 0x1850000000
size = "4G"
target_node = 1
host_bridges = [0]
ram = false
pmem = true

[[cxl_memdev]]
host_bridge = 0
pmem_size = "4G"
serial = 0x9abc
"""
MEM2 = "/devices/pci0000:0c/0000:0c:02.0/0000:0f:00.0/mem2"
EP4 = f"{PORT}/endpoint4"
UUID = "6f4d9a6e-2b0c-4f3e-9a47-0c4f6a1d2e3b"


def _pmem_sim(extra: str = "") -> Simulation:
    return Simulation(load_topology(text=default_topology_text() + PMEM_EXTRA + extra))


def test_a_pmem_window_brings_the_nvdimm_bridge_and_pmem_memdevs_their_nvdimm(sim: Simulation) -> None:
    """add_root_nvdimm_bridge() only with a cap_pmem root decoder; cxl_mem_probe() ->
    devm_cxl_add_nvdimm() for a memdev with pmem capacity: ``pmemN`` bound to cxl_nvdimm."""
    assert not sim.exists(f"{ROOT}/nvdimm-bridge0") and not sim.exists("/bus/cxl/devices/nvdimm-bridge0")
    psim = _pmem_sim()
    bridge = f"{ROOT}/nvdimm-bridge0"
    assert psim.realpath("/bus/cxl/devices/nvdimm-bridge0") == bridge
    assert psim.realpath(f"{bridge}/driver") == "/bus/cxl/drivers/cxl_nvdimm_bridge"
    assert psim.cat(f"{bridge}/modalias") == "cxl:t1\n" and psim.cat(f"{bridge}/devtype") == "cxl_nvdimm_bridge\n"
    assert psim.realpath(f"{MEM2}/pmem2/driver") == "/bus/cxl/drivers/cxl_nvdimm"
    assert psim.cat(f"{MEM2}/pmem2/modalias") == "cxl:t2\n" and psim.cat(f"{MEM2}/pmem/size") == "0x100000000\n"
    assert not psim.exists(f"{MEM1}/pmem1")  # no pmem capacity
    dec = f"{ROOT}/decoder0.2"
    assert psim.cat(f"{dec}/cap_pmem") == "1\n" and psim.cat(f"{dec}/cap_ram") == "0\n"
    assert psim.exists(f"{dec}/create_pmem_region") and not psim.exists(f"{dec}/create_ram_region")
    # cxl_mem unbind: the endpoint goes, then (devm, in reverse) pmem2; bind: pmem2 first.
    mark = psim.mark()
    psim.echo(f"{MEM2}/driver/unbind", "mem2")
    assert not psim.exists(f"{MEM2}/pmem2")
    names = [(e.action, e.devpath.rsplit("/", 1)[1]) for e in psim.events(mark)]
    assert names[-5:] == [("unbind", "endpoint4"), ("remove", "endpoint4"), ("unbind", "pmem2"),
                          ("remove", "pmem2"), ("unbind", "mem2")]
    mark = psim.mark()
    psim.echo("/bus/cxl/drivers/cxl_mem/bind", "mem2")
    names = [(e.action, e.devpath.rsplit("/", 1)[1]) for e in psim.events(mark)]
    assert names[:3] == [("add", "pmem2"), ("bind", "pmem2"), ("add", "endpoint4")]
    assert names[-1] == ("bind", "mem2") and psim.exists(f"{MEM2}/pmem2/driver")


def _new_pmem_region(psim: Simulation) -> str:
    dec = f"{ROOT}/decoder0.2"
    name = psim.cat(f"{dec}/create_pmem_region").strip()
    psim.echo(f"{dec}/create_pmem_region", name)
    return f"{dec}/{name}"


def test_pmem_region_uuid_rules_in_the_kernels_order() -> None:
    """uuid_store(): exactly 37 bytes, uuid_parse(), not null (EINVAL); the same uuid again is
    fine, another region's is EBUSY (is_dup()), and so is any change once ACTIVE; alloc_hpa()
    refuses a pmem region without a uuid (ENXIO). A pmem region's uuid is 0644, %pUb."""
    from conftest import file_mode

    psim = _pmem_sim()
    region = _new_pmem_region(psim)
    assert psim.cat(f"{region}/mode") == "pmem\n"
    assert file_mode(psim, f"{region}/uuid") == 0o644
    assert psim.cat(f"{region}/uuid") == "00000000-0000-0000-0000-000000000000\n"
    psim.echo(f"{region}/interleave_granularity", "256")
    psim.echo(f"{region}/interleave_ways", "1")
    with raises_errno(errno.ENXIO):
        psim.echo(f"{region}/size", "0x100000000")  # no uuid yet
    with raises_errno(errno.EINVAL):
        psim.echo(f"{region}/uuid", UUID, newline=False)  # 36 bytes: the length is exact
    with raises_errno(errno.EINVAL):
        psim.echo(f"{region}/uuid", UUID + "0")
    with raises_errno(errno.EINVAL):
        psim.echo(f"{region}/uuid", UUID.replace("-", "x"))
    with raises_errno(errno.EINVAL):
        psim.echo(f"{region}/uuid", "g" + UUID[1:])
    with raises_errno(errno.EINVAL):
        psim.echo(f"{region}/uuid", "00000000-0000-0000-0000-000000000000")
    psim.echo(f"{region}/uuid", UUID.upper() + "\0", newline=False)  # libcxl writes the NUL too
    assert psim.cat(f"{region}/uuid") == UUID + "\n"
    psim.echo(f"{region}/uuid", UUID)  # the same again: nothing
    other = _new_pmem_region(psim)
    with raises_errno(errno.EBUSY):
        psim.echo(f"{other}/uuid", UUID)  # is_dup()
    psim.echo(f"{region}/size", "0x100000000")
    psim.echo(f"{EP4}/decoder4.0/mode", "pmem")
    psim.echo(f"{EP4}/decoder4.0/dpa_size", "0x100000000")
    psim.echo(f"{region}/target0", "decoder4.0")
    with raises_errno(errno.EBUSY):
        psim.echo(f"{region}/uuid", "11111111-2222-3333-4444-555555555555")  # ACTIVE
    psim.echo(f"{region}/uuid", UUID)
    # A ram region's uuid stays read-only and empty.
    assert file_mode(psim, f"{ROOT}/decoder0.0/region0/uuid") == 0o444


def test_a_pmem_region_binds_into_a_pmem_region_device_and_unbinds_out_of_it() -> None:
    """cxl_region_probe() of a pmem region: devm_cxl_add_pmem_region() adds ``pmem_regionN``,
    which cxl_pmem_region binds; releasing the region's driver unregisters it."""
    psim = _pmem_sim()
    region = _new_pmem_region(psim)
    name = region.rsplit("/", 1)[1]
    rid = name.removeprefix("region")
    for attr, value in (("interleave_granularity", "256"), ("interleave_ways", "1"), ("uuid", UUID),
                        ("size", "0x100000000")):
        psim.echo(f"{region}/{attr}", value)
    psim.echo(f"{EP4}/decoder4.0/mode", "pmem")
    psim.echo(f"{EP4}/decoder4.0/dpa_size", "0x100000000")
    assert psim.cat(f"{EP4}/decoder4.0/dpa_resource") == "0x0\n"  # the pmem partition starts at 0 (no ram)
    psim.echo(f"{region}/target0", "decoder4.0")
    with raises_errno(errno.ENXIO):
        psim.echo("/bus/cxl/drivers/cxl_region/bind", name)  # not committed
    psim.echo(f"{region}/commit", "1")
    mark = psim.mark()
    psim.echo("/bus/cxl/drivers/cxl_region/bind", name)
    pmem = f"{region}/pmem_region{rid}"
    assert psim.realpath(f"{pmem}/driver") == "/bus/cxl/drivers/cxl_pmem_region"
    assert psim.cat(f"{pmem}/modalias") == "cxl:t7\n" and psim.cat(f"{pmem}/devtype") == "cxl_pmem_region\n"
    assert not psim.exists(f"{region}/dax_region{rid}") and not psim.exists(f"/bus/dax/devices/dax{rid}.0")
    assert [(e.action, e.devpath.rsplit("/", 1)[1]) for e in psim.events(mark)] == [
        ("add", f"pmem_region{rid}"), ("bind", f"pmem_region{rid}"), ("bind", name)]
    mark = psim.mark()
    psim.echo("/bus/cxl/drivers/cxl_region/unbind", name)
    assert not psim.exists(pmem) and not psim.exists(f"{region}/driver")
    assert [(e.action, e.devpath.rsplit("/", 1)[1]) for e in psim.events(mark)] == [
        ("unbind", f"pmem_region{rid}"), ("remove", f"pmem_region{rid}"), ("unbind", name)]
    psim.echo("/bus/cxl/drivers/cxl_region/bind", name)
    psim.echo(f"{ROOT}/decoder0.2/delete_region", name)  # unregisters even a bound region
    assert not psim.exists(region) and not psim.exists("/bus/cxl/devices/" + f"pmem_region{rid}")


def test_a_member_with_serial_0_leaves_the_pmem_region_device_unbound() -> None:
    """drivers/cxl/pmem.c cxl_pmem_region_probe(): a member without a serial number fails the
    pmem region's probe (ENXIO) but not the region's bind."""
    psim = Simulation(load_topology(text=default_topology_text() + PMEM_EXTRA.replace("0x9abc", "0")))
    region = _new_pmem_region(psim)
    name = region.rsplit("/", 1)[1]
    for attr, value in (("interleave_granularity", "256"), ("interleave_ways", "1"), ("uuid", UUID),
                        ("size", "0x100000000")):
        psim.echo(f"{region}/{attr}", value)
    psim.echo(f"{EP4}/decoder4.0/mode", "pmem")
    psim.echo(f"{EP4}/decoder4.0/dpa_size", "0x100000000")
    psim.echo(f"{region}/target0", "decoder4.0")
    psim.echo(f"{region}/commit", "1")
    psim.echo("/bus/cxl/drivers/cxl_region/bind", name)
    assert psim.exists(f"{region}/driver") and psim.exists(f"{region}/pmem_{name}")
    assert not psim.exists(f"{region}/pmem_{name}/driver")


@pytest.mark.realtools
@pytest.mark.skipif(_unavailable() is not None, reason=str(_unavailable()))
def test_cxl_create_region_makes_a_pmem_region_and_destroy_region_frees_it(tmp_path: Any) -> None:
    """Debian 12's ``cxl`` (v76) creates a pmem region itself: ``create_pmem_region``, the
    granularity, ways, uuid, size, the endpoint decoder's mode and DPA, ``target0``, commit
    and the cxl_region bind; ``cxl list -R`` shows it; ``disable-region`` and
    ``destroy-region`` undo it and the DPA, decoders and region id are free again."""
    topo = tmp_path / "pmem.toml"
    topo.write_text(default_topology_text() + PMEM_EXTRA)
    d = "/sys/devices/platform/ACPI0017:00/root0"
    script = (
        "cxl create-region -m -d decoder0.2 -w 1 mem2 -t pmem; echo \"rc=$?\"; echo ==; "
        f"cat {d}/decoder0.2/region3/uuid {d}/decoder0.2/region3/pmem_region3/devtype; "
        "cxl list -R -r region3; echo ==; "
        "cxl disable-region region3; cxl destroy-region region3; echo \"rc=$?\"; "
        f"cat {d}/port1/endpoint4/decoder4.0/dpa_size {d}/port1/endpoint4/decoders_committed "
        f"{d}/port1/decoders_committed {d}/decoder0.2/create_pmem_region; "
        "ls /sys/bus/cxl/devices | grep -c '^region3$'; "
        "cxl create-region -d decoder0.2 -m mem2 >/dev/null; echo \"rc=$?\"")
    done = subprocess.run([sys.executable, "-m", "fakesysfs", "run", "-c", str(topo), "--", "sh", "-c", script],
                          capture_output=True, text=True, env=ENV, timeout=240, check=False)
    assert done.returncode == 0, done.stderr
    created, listed, tail = done.stdout.split("==\n")
    assert created.endswith("rc=0\n"), done.stderr
    region = json.loads(created.removesuffix("rc=0\n"))
    assert region == {"region": "region3", "resource": 0x1850000000, "size": 4 << 30, "interleave_ways": 1,
                      "interleave_granularity": 256, "decode_state": "commit",
                      "mappings": [{"position": 0, "memdev": "mem2", "decoder": "decoder4.0"}]}
    uuid_line, devtype, listing = listed.split("\n", 2)
    assert len(uuid_line) == 36 and uuid_line != "00000000-0000-0000-0000-000000000000"
    assert devtype == "cxl_pmem_region"
    assert [r["region"] for r in json.loads(listing)] == ["region3"]
    # destroy-region's status, decoder4.0 dpa_size, endpoint4's and port1's committed decoders,
    # the id create_pmem_region offers, region3 gone; then the default type (pmem) and ways
    # (the number of memdevs) again.
    lines = tail.splitlines()
    assert lines[:6] == ["rc=0", "0x0000000000000000", "0", "1", "region3", "0"], done.stdout
    assert lines[-1] == "rc=0" and "created 1 region" in done.stderr
    assert "destroyed 1 region" in done.stderr and "disabled 1 region" in done.stderr


# -- firmware hot-add of a CXL device -------------------------------------------------------------
def test_hot_added_region_comes_with_a_window_memdev_and_endpoint_of_its_own(sim: Simulation) -> None:
    """``add_cxl_region`` without a decoder on a machine with CXL windows: firmware brings up a
    host bridge (next _UID, next PCI buses), a x1 window as large as the region (decoder0.2),
    a memdev with that much ram (mem2, endpoint5), and the region committed through them;
    removing the region takes the device away again and frees every id."""
    mark = sim.mark()
    region = sim.add_cxl_region("4G", node=1)
    assert region.name == "region3"
    dec = f"{ROOT}/decoder0.2"
    port = f"{ROOT}/port4"
    start = region.start
    assert sim.cat(f"{dec}/start") == f"{start:#x}\n" and sim.cat(f"{dec}/size") == "0x100000000\n"
    assert sim.cat(f"{dec}/target_list") == "1\n" and sim.realpath(f"{ROOT}/dport1") == "/devices/pci0000:0f"
    assert sim.realpath(f"{port}/uport") == "/devices/pci0000:0f" and "pci0000:0f" in sim.ls("/devices")
    mem2 = "/devices/pci0000:0f/0000:0f:00.0/0000:10:00.0/mem2"
    assert sim.realpath(f"{port}/endpoint5/uport") == mem2 and sim.cat(f"{mem2}/ram/size") == "0x100000000\n"
    assert sim.cat(f"{dec}/region3/target0") == "decoder5.0\n" and sim.cat(f"{dec}/region3/commit") == "1\n"
    assert sim.cat(f"{port}/endpoint5/decoder5.0/dpa_size") == "0x0000000100000000\n"
    assert sim.cat(f"{port}/decoder4.0/region") == "region3\n"
    assert f"{start:x}-{start + (4 << 30) - 1:x} : CXL Window 2\n  {start:x}" in sim.iomem()
    cxl = [(e.action, e.devpath.rsplit("/", 1)[1]) for e in sim.events(mark, subsystem="cxl")]
    assert cxl[:2] == [("add", "decoder0.2"), ("add", "port4")]
    assert cxl.index(("bind", "mem2")) < cxl.index(("add", "region3")) and cxl[-1] == ("bind", "region3")
    mark = sim.mark()
    sim.remove("region3")
    cxl = [(e.action, e.devpath.rsplit("/", 1)[1]) for e in sim.events(mark, subsystem="cxl")]
    assert cxl[cxl.index(("remove", "region3")) + 1:] == [
        *(("remove", f"decoder5.{i}") for i in (3, 2, 1, 0)), ("unbind", "endpoint5"), ("remove", "endpoint5"),
        ("unbind", "mem2"), ("remove", "mem2"), *(("remove", f"decoder4.{i}") for i in (3, 2, 1, 0)),
        ("unbind", "port4"), ("remove", "port4"), ("remove", "decoder0.2")]
    for gone in (dec, port, mem2, "/bus/cxl/devices/mem2", "/devices/pci0000:0f", f"{ROOT}/dport1"):
        assert not sim.exists(gone), gone
    assert "CXL Window 2" not in sim.iomem()
    again = sim.add_cxl_region("4G", node=1)
    assert again.name == "region3" and sim.exists(f"{ROOT}/port4/endpoint5") and sim.exists(f"{ROOT}/decoder0.2")
    assert "pci0000:11" in sim.ls("/devices")  # PCI bus numbers are not reused
    # Destroyed through sysfs instead, the region leaves its device behind: a region that
    # later gets its id is not the device's, and its removal leaves the device alone.
    sim.echo(f"{ROOT}/decoder0.2/delete_region", "region3")
    assert sim.exists(f"{ROOT}/port4/endpoint5") and not sim.exists(f"{ROOT}/decoder0.2/region3")
    sim.add_cxl_region("4G", node=1, decoder="decoder0.0")
    sim.remove("region3")
    assert sim.exists(f"{ROOT}/port4/endpoint5") and sim.exists(f"{ROOT}/decoder0.2")


def test_a_region_hot_added_on_a_named_decoder_keeps_its_old_shape(sim: Simulation) -> None:
    """With ``decoder`` named, no device is brought up: outside that window the region is a
    plain device under the decoder, as before (docs/cxl.md)."""
    region = sim.add_cxl_region("4G", node=1, decoder="decoder0.0")
    assert not sim.exists(f"{ROOT}/decoder0.2") and not sim.exists(f"{ROOT}/port4")
    assert sim.exists(f"{ROOT}/decoder0.0/{region.name}")


@pytest.mark.realtools
@pytest.mark.skipif(_unavailable() is not None, reason=str(_unavailable()))
def test_cxl_lists_a_hot_added_region_with_its_memdev_and_endpoint() -> None:
    """``cxl list`` sees the hot-added device and region (no add_dev() failure), and not after
    its removal."""
    script = ("echo 'size=4G node=1' > /sys/kernel/debug/fakesysfs/hotplug/add_cxl_region; "
              "for a in '-M -m mem2' '-R -r region3' '-E -e endpoint5' '-D -d decoder0.2'; do "
              "cxl list $a; echo ==; done; "
              "echo region3 > /sys/kernel/debug/fakesysfs/hotplug/remove; cxl list -M; echo ==")
    done = _session(script)
    assert done.returncode == 0, done.stderr
    memdevs, regions, endpoints, decoders, after = _json_parts(done.stdout)
    assert memdevs == [{"memdev": "mem2", "ram_size": 4 << 30, "serial": 3, "numa_node": 0, "host": "0000:10:00.0"}]
    assert [(r["region"], r["size"], r["decode_state"]) for r in regions] == [("region3", 4 << 30, "commit")]
    assert endpoints == [{"endpoint": "endpoint5", "host": "mem2", "depth": 2}]
    assert decoders[0]["decoder"] == "decoder0.2" and decoders[0]["max_available_extent"] == 0
    assert sorted(m["memdev"] for m in after) == ["mem0", "mem1"]
    assert "add_dev" not in done.stderr and "failed" not in done.stderr


_PMEM_OPS = st.one_of(
    st.tuples(st.just("build"), st.sampled_from(_REGIONS)),  # what cxl create-region writes
    st.tuples(st.just("decoder0.2/create_pmem_region"), st.sampled_from(_REGIONS)),
    st.tuples(st.just("decoder0.2/delete_region"), st.sampled_from(_REGIONS)),
    st.tuples(st.sampled_from([f"{r}/uuid" for r in _REGIONS]),
              st.sampled_from([UUID, "11111111-2222-3333-4444-555555555555", "0" * 36, "bad"])),
    st.tuples(st.sampled_from([f"{r}/interleave_ways" for r in _REGIONS]), st.just("1")),
    st.tuples(st.sampled_from([f"{r}/interleave_granularity" for r in _REGIONS]), st.just("256")),
    st.tuples(st.sampled_from([f"{r}/size" for r in _REGIONS]), st.sampled_from(["0", "0x40000000", "0x80000000"])),
    st.tuples(st.sampled_from([f"decoder4.{i}/mode" for i in range(2)]), st.sampled_from(["pmem", "ram"])),
    st.tuples(st.sampled_from([f"decoder4.{i}/dpa_size" for i in range(2)]),
              st.sampled_from(["0", "0x40000000", "0x80000000"])),
    st.tuples(st.sampled_from([f"{r}/target0" for r in _REGIONS]), st.sampled_from(["", "decoder4.0", "decoder4.1"])),
    st.tuples(st.sampled_from([f"{r}/commit" for r in _REGIONS]), st.sampled_from(["0", "1"])),
    st.tuples(st.sampled_from(["../drivers/cxl_region/bind", "../drivers/cxl_region/unbind"]),
              st.sampled_from(_REGIONS)),
    st.tuples(st.sampled_from(["../drivers/cxl_mem/bind", "../drivers/cxl_mem/unbind"]), st.just("mem2")),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(_PMEM_OPS, min_size=1, max_size=25))
def test_random_pmem_region_operations_keep_every_invariant(ops: list[tuple[str, str]]) -> None:
    """The pmem flavour: uuids, pmem DPA, pmem_regionN and pmemN through random stores."""
    sim = _pmem_sim()
    for op, arg in ops:
        steps = [(op, arg)]
        if op == "build":
            n = int(arg[-1]) - 3
            dec, uuid = f"decoder4.{n}", f"{n:08d}-2b0c-4f3e-9a47-0c4f6a1d2e3b"
            steps = [("decoder0.2/create_pmem_region", arg), (f"{arg}/interleave_granularity", "256"),
                     (f"{arg}/interleave_ways", "1"), (f"{arg}/uuid", uuid), (f"{arg}/size", "0x40000000"),
                     (f"{dec}/mode", "pmem"), (f"{dec}/dpa_size", "0x40000000"), (f"{arg}/target0", dec),
                     (f"{arg}/commit", "1"), ("../drivers/cxl_region/bind", arg)]
        for path, value in steps:
            _step(sim, path, value)


@pytest.mark.parametrize("name", ["dport\u00b2", "dport\u0661", "target\u00b2", "target\u0660", "dport\U0001d7ce"])
def test_unicode_digits_name_no_dport_or_target(sim: Simulation, name: str) -> None:
    """str.isdigit() takes "²" (int() raises ValueError: EIO over FUSE) and "١" (int() reads 1):
    the kernel's names are ASCII ``%d``, so neither names a link or a region target."""
    for d in (ROOT, PORT, f"{ROOT}/decoder0.0/region0"):
        assert not sim.exists(f"{d}/{name}")
    assert sim.exists(f"{ROOT}/dport0") and sim.exists(f"{ROOT}/decoder0.0/region0/target0")


@pytest.mark.parametrize("did", ["\u00b2", "\u0660"])
def test_a_declared_window_is_named_by_ascii_digits(sim: Simulation, did: str) -> None:
    """The engine's window lookup takes ASCII ids only ("decoder0.²" raised ValueError)."""
    from dataclasses import replace

    cfg = sim.kernel.config.cxl_regions[0]
    assert sim.kernel._cxl_declared_window(cfg) is not None  # type: ignore[attr-defined]
    assert sim.kernel._cxl_declared_window(replace(cfg, decoder=f"decoder0.{did}")) is None  # type: ignore[attr-defined]
