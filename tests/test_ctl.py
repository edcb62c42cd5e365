"""``fakesysfs ctl MOUNTPOINT ...`` and the ``kernel/debug/fakesysfs/`` files through a real
mount (served from this process by ``Simulation.mount``)."""

from __future__ import annotations

import errno
import json
import os
import re
import threading
from pathlib import Path

import pytest

from fakesysfs import Simulation
from fakesysfs.cli import main

pytestmark = pytest.mark.fuse

MEM = "devices/system/memory"


def write_once(path: Path, text: str) -> None:
    """One write(2), as ``echo`` does (a buffered file retries a failed flush at close)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def ctl(capsys: pytest.CaptureFixture[str], mnt: Path, *args: str) -> str:
    status = main(["ctl", str(mnt), *args])
    out, err = capsys.readouterr()
    assert status == 0, err
    return out


def ctl_fails(capsys: pytest.CaptureFixture[str], mnt: Path, *args: str) -> str:
    assert main(["ctl", str(mnt), *args]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    return err


def test_hotplug_faults_and_inspection_from_the_shell(fakesysfs_mount: Simulation, capsys) -> None:
    sim, mnt = fakesysfs_mount, fakesysfs_mount.mountpoint
    assert ctl(capsys, mnt, "add-cxl-region", "1G", "1", "driver=device_dax") == "region3 dax3.0\n"
    assert sim.bindings()["dax3.0"] == "device_dax"
    assert ctl(capsys, mnt, "add-hmem", "512M", "2", "start=0x3000000000") == "hmem.4 dax4.0\n"
    block = sim.dax_device("dax4.0").blocks[0]
    ctl(capsys, mnt, "fault", "notifier", "online", "ENOMEM")
    with pytest.raises(OSError) as info:
        write_once(mnt / f"{MEM}/memory{block}/state", "online_movable")
    assert info.value.errno == errno.ENOMEM
    ctl(capsys, mnt, "fault", "notifier", "online", "0")
    write_once(mnt / f"{MEM}/memory{block}/state", "online_movable")
    ctl(capsys, mnt, "block", str(block), "pinned=4", "used=0x10")
    assert (sim.block(block).pinned_pages, sim.block(block).used_pages) == (4, 16)
    ctl(capsys, mnt, "fault", "memmap-fail-at-chunk", "1")
    ctl(capsys, mnt, "fault", "probe-fail", "dax9.0", "-16")
    assert sim.kernel.faults.memmap_fail_at_chunk == 1 and sim.kernel.faults.probe_fail == {"dax9.0": 16}
    ctl(capsys, mnt, "fault", "clear")
    assert sim.kernel.faults.memmap_fail_at_chunk is None and sim.block(block).pinned_pages == 0

    stores = [json.loads(line) for line in ctl(capsys, mnt, "trace").splitlines()]
    assert [(s["path"], s["data"], s["error"]) for s in stores] == [
        (f"/{MEM}/memory{block}/state", "online_movable", "ENOMEM"),
        (f"/{MEM}/memory{block}/state", "online_movable", None)]
    state = json.loads(ctl(capsys, mnt, "state"))
    assert {p["name"] for p in state["producers"]} >= {"region3", "hmem.4"}
    assert ctl(capsys, mnt, "iomem") == sim.iomem()
    assert ctl(capsys, mnt, "kmsg").splitlines() == sim.kmsg()
    dmesg = ctl(capsys, mnt, "dmesg").splitlines()
    assert len(dmesg) == len(sim.kmsg()) and all(re.fullmatch(r"\[ *\d+\.\d{6}\] .*", line) for line in dmesg)
    assert all(line.split("] ", 1)[1].endswith(text) for line, text in zip(dmesg, sim.kmsg(), strict=True))
    assert int(ctl(capsys, mnt, "seqnum")) == sim.kernel.events.seqnum
    ctl(capsys, mnt, "remove", "region3")
    assert "region3" not in [p.name for p in sim.producers()]


def test_refusals_are_one_line_with_the_reason(fakesysfs_mount: Simulation, capsys) -> None:
    mnt = fakesysfs_mount.mountpoint
    assert ctl_fails(capsys, mnt, "add-cxl-region", "1G", "1", "start=0x1") == (
        "fakesysfs: error: add-cxl-region: start 0x1 and size 0x40000000 must be multiples of "
        "the 256 MiB CXL decoder granularity\n")
    assert "overlaps System RAM" in ctl_fails(capsys, mnt, "add-cxl-region", "1G", "1", "start=0")
    assert ctl_fails(capsys, mnt, "remove", "hmem.9") == "fakesysfs: error: remove: there is no hmem device hmem.9\n"
    assert "expected KEY=VALUE" in ctl_fails(capsys, mnt, "block", "3", "pinned")
    assert "fault: use" in ctl_fails(capsys, mnt, "fault", "notifier", "sideways", "12")
    assert "pinned + 99999999 used do not fit" in ctl_fails(capsys, mnt, "block", "4", "used=99999999")
    assert ctl_fails(capsys, mnt, "wait-event", "--timeout", "0.05", "ACTION=bogus", "SUBSYSTEM=memory") == (
        "fakesysfs: error: wait-event: no event matching ACTION=bogus SUBSYSTEM=memory after SEQNUM 0 within 0.05 s\n")
    assert ctl_fails(capsys, mnt, "wait-store", "--timeout", "0", "--data", "bogus") == (
        "fakesysfs: error: wait-store: no store matching data=bogus after #0 within 0 s\n")
    assert "is not a fakesysfs mount" in ctl_fails(capsys, fakesysfs_mount.mountpoint / "devices", "state")


def test_a_missing_argument_is_named_alone(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # argparse counts an empty "KEY=VALUE..." list among the missing arguments unless it has a default
    with pytest.raises(SystemExit) as exc:
        main(["ctl", str(tmp_path), "add-cxl-region", "16G"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].endswith("error: the following arguments are required: NODE"), err


def test_ctl_help_is_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["ctl", "--help"])
    out = capsys.readouterr().out
    assert "fakesysfs ctl MNT add-cxl-region 16G 1" in out
    assert "``" not in out and ":func:" not in out


def test_wait_commands_block_until_it_happens(fakesysfs_mount: Simulation, capsys) -> None:
    sim, mnt = fakesysfs_mount, fakesysfs_mount.mountpoint
    block = sim.dax_device("dax0.0").blocks[5]
    after = sim.mark()
    writer = threading.Timer(0.05, lambda: sim.echo(f"/{MEM}/memory{block}/state", "online_movable"))
    writer.start()
    event = json.loads(ctl(capsys, mnt, "wait-event", "--after", str(after.seqnum), "ACTION=online",
                           f"DEVPATH=/{MEM}/memory{block}"))
    writer.join()
    assert event["properties"]["ACTION"] == "online"
    store = json.loads(ctl(capsys, mnt, "wait-store", "--path", r".*/memory\d+/state", "--errno", "0"))
    assert store["data"] == "online_movable\n" and store["seq"] == 1


def test_debugfs_files_through_the_mount(fakesysfs_mount: Simulation) -> None:
    sim, mnt = fakesysfs_mount, fakesysfs_mount.mountpoint
    dbg = mnt / "kernel/debug/fakesysfs"
    assert sorted(os.listdir(dbg)) == ["blocks", "control", "faults", "hotplug", "iomem", "kmsg", "modules", "state",
                                      "trace"]
    assert (dbg / "control").read_text().strip() == sim.control_socket
    (dbg / "hotplug/add_cxl_region").write_text("size=256M node=1")
    assert "region3 cxl" in (dbg / "hotplug/producers").read_text()
    with pytest.raises(OSError) as info:
        write_once(dbg / "hotplug/add_cxl_region", "size=256M node=1 start=0x1050000000")
    assert info.value.errno == errno.EBUSY
    assert "overlaps CXL Window 0" in (dbg / "kmsg").read_text().splitlines()[-1]
    for _ in range(30):
        with pytest.raises(OSError):
            write_once(mnt / f"{MEM}/memory1/state", "online")
    trace = (dbg / "trace").read_text()  # more than the one page a sysfs file returns
    assert len(trace) > 4096 and len(trace.splitlines()) == 32
    assert json.loads((dbg / "state").read_text())["seqnum"] == sim.kernel.events.seqnum
    assert (dbg / "iomem").read_text() == sim.iomem()
    assert os.stat(dbg / "trace").st_mode & 0o777 == 0o600
    with pytest.raises(PermissionError):
        (dbg / "hotplug/remove").read_text()


@pytest.mark.parametrize(("text", "err"), [
    ("4294967296", errno.ERANGE),  # above u32: kstrtouint's overflow
    ("1" + "0" * 400, errno.ERANGE),
    ("18446744073709551616", errno.ERANGE),
    ("4294967295", errno.EINVAL),  # a u32, but over the 10 s the knob allows
    ("10000001", errno.EINVAL),
    ("-1", errno.EINVAL),
    ("junk", errno.EINVAL),
    ("1e3", errno.EINVAL),
    ("0x", errno.EINVAL),
])
def test_add_block_delay_us_refuses_with_a_kernel_errno(fakesysfs_mount: Simulation, capsys, text: str,
                                                        err: int) -> None:
    knob = fakesysfs_mount.mountpoint / "kernel/debug/fakesysfs/faults/add_block_delay_us"
    with pytest.raises(OSError) as exc:
        write_once(knob, text)
    assert exc.value.errno == err
    assert knob.read_text() == "0\n"  # unchanged, and the daemon still answers
    write_once(knob, "017\n")  # kstrtouint base 0: octal
    assert knob.read_text() == "15\n"
    assert "not 0..4294967295 microseconds" in ctl_fails(capsys, fakesysfs_mount.mountpoint, "delay",
                                                         str(1 << 70))
