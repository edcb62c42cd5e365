"""The CXL bus (docs/cxl.md): the default topology's CXL devices, their attributes and links,
the bus's drivers with bind/unbind errnos, topology validation, and unmodified ``cxl list``."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ENV, fuse_unavailable_reason, raises_errno

from fakesysfs import Simulation
from fakesysfs.errors import ConfigError
from fakesysfs.topology import default_topology_text, load_topology

ROOT = "/devices/platform/ACPI0017:00/root0"
PORT = f"{ROOT}/port1"
EP = f"{PORT}/endpoint2"
MEM0 = "/devices/pci0000:0c/0000:0c:00.0/0000:0d:00.0/mem0"
#: A second 8 GiB expander below the same host bridge, not in any region.
MEM1_TEXT = '\n[[cxl_memdev]]\nhost_bridge = 0\nram_size = "8G"\n'


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


def test_free_memdev_unbinds_and_binds_with_its_endpoint() -> None:
    """cxl_mem unbind: delete_endpoint() removes the decoders, then the port (its id goes
    back to the port ida); bind: a new endpoint with the lowest free id and fresh decoders."""
    sim = Simulation(load_topology(text=default_topology_text() + MEM1_TEXT))
    mem1 = "/devices/pci0000:0c/0000:0c:01.0/0000:0e:00.0/mem1"
    assert sim.realpath(f"{PORT}/endpoint3/uport") == mem1
    assert sim.realpath(f"{PORT}/dport1") == "/devices/pci0000:0c/0000:0c:01.0"
    mark = sim.mark()
    sim.echo(f"{mem1}/driver/unbind", "mem1")
    assert not sim.exists(f"{PORT}/endpoint3") and not sim.exists(f"{mem1}/driver")
    assert not sim.exists("/bus/cxl/devices/decoder3.0")
    events = [(e.action, e.devpath.rsplit("/", 1)[1]) for e in sim.events(mark)]
    assert events == [("remove", "decoder3.3"), ("remove", "decoder3.2"), ("remove", "decoder3.1"),
                      ("remove", "decoder3.0"), ("unbind", "endpoint3"), ("remove", "endpoint3"),
                      ("unbind", "mem1")]
    sim.echo("/bus/cxl/drivers/cxl_mem/bind", "mem1")
    assert sim.realpath(f"{PORT}/endpoint3/uport") == mem1
    assert sim.cat(f"{PORT}/endpoint3/decoder3.0/mode") == "none\n"
    with raises_errno(errno.EBUSY):  # in region0: the teardown of a region member is not modelled yet
        sim.echo(f"{MEM0}/driver/unbind", "mem0")


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
])
def test_topology_rejects_impossible_cxl_hardware(change: tuple[str, str], key: str, why: str) -> None:
    text = default_topology_text().replace(*change, 1)
    with pytest.raises(ConfigError) as info:
        Simulation(load_topology(text=text))
    assert info.value.key == key and why in info.value.why, info.value


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


@pytest.mark.realtools
@pytest.mark.skipif(_unavailable() is not None, reason=str(_unavailable()))
def test_cxl_list_sees_the_default_topology() -> None:
    """``cxl list`` (ndctl's libcxl) inside ``fakesysfs run`` prints the kernel's shapes: the
    memdev, the host-bridge port, the root decoder, the bus, the committed region."""
    script = ("for a in -M -P '-D -d root' -B -R -E; do cxl list $a; echo '=='; done; "
              "cxl disable-memdev mem0; echo \"rc=$?\"")
    done = subprocess.run([sys.executable, "-m", "fakesysfs", "run", "--", "sh", "-c", script],
                          capture_output=True, text=True, env=ENV, timeout=240, check=False)
    assert done.returncode == 0, done.stderr
    outs = [json.loads(part) for part in done.stdout.split("==\n")[:-1]]
    memdevs, ports, decoders, buses, regions, endpoints = outs
    assert memdevs == [{"memdev": "mem0", "ram_size": 16 << 30, "serial": 0x1234, "numa_node": 0,
                        "host": "0000:0d:00.0"}]
    assert ports == [{"port": "port1", "host": "pci0000:0c", "depth": 1}]
    assert [d["decoder"] for d in decoders] == ["decoder0.0"]
    assert decoders[0]["resource"] == 0x1050000000 and decoders[0]["volatile_capable"] is True
    assert decoders[0]["max_available_extent"] == 0
    assert buses == [{"bus": "root0", "provider": "ACPI.CXL"}]
    assert regions[0]["region"] == "region0" and regions[0]["decode_state"] == "commit"
    assert regions[0]["size"] == 16 << 30 and regions[0]["interleave_ways"] == 1
    assert endpoints == [{"endpoint": "endpoint2", "host": "mem0", "depth": 2}]
    # cxl disable-memdev refuses a memdev whose endpoint has committed decoders.
    assert "mem0 is part of an active region" in done.stderr
    assert done.stdout.rstrip().endswith("rc=1")
