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
    assert sim.ls(drivers) == ["cxl_port", "cxl_mem", "cxl_region", "cxl_dax_region"]
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
    # A window is a resource of its own: boot RAM (or another producer) inside it conflicts.
    (("start = 0x1450000000", "start = 0x0"), "cxl_window[1]", "overlaps node[0].memory[0]"),
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
        assert bound == (f"dax{region.id}.0" in k.dax_devices), region.name
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
