"""The acceptance scenarios of docs/clients.md, run with the unmodified tools.

Every scenario is one ``fakesysfs run`` session (a fresh engine): tests/realtools_driver.py
runs the steps inside the namespace, where the fake is ``/sys``, and records each tool's
exit status and output plus the stores the daemon received meanwhile (``--trace``). The
assertions are on the tools' own output (daxctl JSON, lsmem table, numactl -H lines,
lstopo objects, udevadm records), on that store log and on the tree afterwards, read
through the namespace.

Fixture: the topology of docs/abi.md example 1 (node 0 with the boot
memory and CPUs 0-1; CXL region0, 16 GiB at 0x1050000000, target node 1), with dax0.0
bound to device_dax: the engine binds a CXL device to kmem at boot, as the kernel does,
and the topology's per-producer ``driver = "device_dax"`` asks for device_dax instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import ENV, REPO, fuse_unavailable_reason, make_mountpoint, topology_text, unmount

DRIVER = Path(__file__).resolve().parent / "realtools_driver.py"
SESSION_TIMEOUT = 240

DAX = "/sys/bus/dax"
DRIVERS = f"{DAX}/drivers"
REGION = "/sys/devices/platform/ACPI0017:00/root0/decoder0.0/region0/dax_region0"
DEV = f"{REGION}/dax0.0"
BLOCKS = range(522, 650)  # 0x1050000000 / 128 MiB .. + 127 (docs/abi.md example 1)
MEM = "/sys/devices/system/memory"
NODE1 = "/sys/devices/system/node/node1"

#: docs/abi.md example 1 as booted: dax0.0 bound to kmem, its 128 blocks offline.
A2_TOPOLOGY = topology_text("example1")

#: The fixture: the same machine with dax0.0 bound to device_dax after boot.
FIXTURE_TOPOLOGY = A2_TOPOLOGY + 'driver = "device_dax"\n'


TOOL_PACKAGES = {
    "daxctl": "daxctl",
    "lsmem": "util-linux",
    "chmem": "util-linux",
    "numactl": "numactl",
    "lstopo": "hwloc",
    "udevadm": "udev",
    "setpriv": "util-linux",
}


def needs(*tools: str) -> pytest.MarkDecorator:
    missing = [t for t in tools if shutil.which(t) is None]
    packages = sorted({TOOL_PACKAGES.get(t, t) for t in missing})
    return pytest.mark.skipif(
        bool(missing), reason=f"{', '.join(missing)} not installed (apt-get install {' '.join(packages)})"
    )


def _session_unavailable_reason() -> str | None:
    reason = fuse_unavailable_reason()
    if reason is not None:
        return f"FUSE: {reason}"
    if os.geteuid() != 0:
        return "the real-tool scenarios mknod /dev/daxX.Y in the namespace: run as root"
    return None


pytestmark = [
    pytest.mark.realtools,
    pytest.mark.skipif(_session_unavailable_reason() is not None, reason=str(_session_unavailable_reason())),
]


# -- sessions ---------------------------------------------------------------------------------
@dataclass
class Result:
    """One step's outcome (see realtools_driver.py)."""

    raw: dict[str, Any]

    @property
    def rc(self) -> int:
        return int(self.raw["rc"])

    @property
    def out(self) -> str:
        return str(self.raw["out"])

    @property
    def err(self) -> str:
        return str(self.raw["err"])

    @property
    def stores(self) -> list[tuple[str, str, str | None]]:
        """(path below /sys, bytes as latin-1 text, errno name or None)."""
        return [(s["path"], s["data"], s["error"]) for s in self.raw["stores"]]

    def json(self) -> Any:
        return json.loads(self.out)

    def device(self) -> dict[str, Any]:
        """The one object daxctl printed (it drops the array around a single entry)."""
        data = self.json()
        if isinstance(data, list):
            assert len(data) == 1, data
            data = data[0]
        return data

    def path(self, path: str) -> dict[str, Any]:
        return self.raw["paths"][path]

    def text(self, path: str) -> str:
        entry = self.path(path)
        assert entry["type"] == "file" and "text" in entry, (path, entry)
        return str(entry["text"])

    def exists(self, path: str) -> bool:
        return self.path(path)["type"] != "missing"

    def __repr__(self) -> str:  # pytest shows this on failure
        shown = {k: v for k, v in self.raw.items() if k != "paths"}
        return f"Result({shown!r})"


@dataclass
class Session:
    results: list[Result]
    trace: list[dict[str, Any]] = field(default_factory=list)

    def __getitem__(self, index: int) -> Result:
        return self.results[index]


def run_session(steps: Sequence[dict[str, Any]], *, topology: str = FIXTURE_TOPOLOGY,
                extra_args: Sequence[str] = ()) -> Session:
    """Boot the topology (the fixture by default), run ``steps`` in one namespace."""
    work = Path(tempfile.mkdtemp(prefix="fakesysfs-realtools-"))
    try:
        (work / "topology.toml").write_text(topology)
        (work / "steps.json").write_text(json.dumps(list(steps)))
        argv = [
            sys.executable, "-m", "fakesysfs.cli", "run", "--pin", "-c", str(work / "topology.toml"),
            "--trace", str(work / "trace.jsonl"), *extra_args, "--",
            sys.executable, str(DRIVER), str(work / "steps.json"), str(work / "results.json"),
            str(work / "trace.jsonl"),
        ]
        done = subprocess.run(argv, env=ENV, capture_output=True, text=True, timeout=SESSION_TIMEOUT, check=False)
        assert done.returncode == 0, f"fakesysfs run failed ({done.returncode}): {done.stderr}"
        results = [Result(r) for r in json.loads((work / "results.json").read_text())]
        trace = [json.loads(line) for line in (work / "trace.jsonl").read_text().splitlines() if line]
        return Session(results, trace)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def sh(command: str, **extra: Any) -> dict[str, Any]:
    return {"sh": command, **extra}


def probe(*paths: str) -> dict[str, Any]:
    return {"probe": list(paths)}


def block_paths(*attrs: str) -> list[str]:
    return [f"{MEM}/memory{b}/{attr}" for b in BLOCKS for attr in attrs]


def node_links() -> list[str]:
    return [f"{NODE1}/memory{b}" for b in BLOCKS]


def kmem_binding() -> list[str]:
    return [f"{DEV}/driver", f"{DRIVERS}/kmem/dax0.0", f"{DRIVERS}/device_dax/dax0.0"]


DRIVER_STORES = {
    "devdax->kmem": [
        ("/bus/dax/drivers/device_dax/remove_id", "dax0.0\0"),
        ("/bus/dax/drivers/device_dax/unbind", "dax0.0\0"),
        ("/bus/dax/drivers/kmem/new_id", "dax0.0\0"),
        ("/bus/dax/drivers/kmem/bind", "dax0.0\0"),
    ],
    "kmem->devdax": [
        ("/bus/dax/drivers/kmem/remove_id", "dax0.0\0"),
        ("/bus/dax/drivers/kmem/unbind", "dax0.0\0"),
        ("/bus/dax/drivers/device_dax/new_id", "dax0.0\0"),
        ("/bus/dax/drivers/device_dax/bind", "dax0.0\0"),
    ],
}


def assert_driver_stores(stores: list[tuple[str, str, str | None]], which: str) -> None:
    """The four driver stores; only the final ``bind`` may fail, with EBUSY, because
    ``new_id`` already attached the device (R-DAX-ID-01; daxctl ignores it, docs/clients.md)."""
    assert [(p, d) for p, d, _ in stores] == DRIVER_STORES[which]
    assert [e for _, _, e in stores[:3]] == [None, None, None]
    assert stores[3][2] in (None, "EBUSY")


def block_stores(word: str, blocks: Iterator[int] | range = BLOCKS) -> list[tuple[str, str, None]]:
    return [(f"/devices/system/memory/memory{b}/state", word, None) for b in blocks]


# -- 1. discovery -----------------------------------------------------------------------------
@needs("daxctl")
def test_1_discovery_lists_the_cxl_region_and_its_devdax_device() -> None:
    (listing,) = run_session([sh("daxctl list -DRMu")]).results
    assert listing.rc == 0, listing
    region = listing.device()  # one region: daxctl prints the object, not an array
    assert region["path"] == "/platform/ACPI0017:00/root0/decoder0.0/region0/dax_region0"
    assert region["id"] == 0 and region["align"] == 2097152
    (device,) = region["devices"]
    assert device["chardev"] == "dax0.0"
    assert device["size"] == "16.00 GiB (17.18 GB)"
    assert device["target_node"] == 1 and device["mode"] == "devdax"
    (mapping,) = device["mappings"]
    assert (mapping["start"], mapping["end"]) == ("0x1050000000", "0x144fffffff")
    assert listing.stores == []


# -- 2. to system-ram -------------------------------------------------------------------------
@needs("daxctl")
def test_2_reconfigure_to_system_ram_onlines_every_block_movable() -> None:
    reconf, after = run_session([
        sh("daxctl reconfigure-device -m system-ram dax0.0"),
        probe(*block_paths("state", "valid_zones"), *node_links(), *kmem_binding()),
    ]).results
    assert reconf.rc == 0, reconf
    device = reconf.device()
    assert device["mode"] == "system-ram"
    assert device["online_memblocks"] == device["total_memblocks"] == 128
    assert device["movable"] is True
    assert_driver_stores(reconf.stores[:4], "devdax->kmem")
    assert reconf.stores[4:] == block_stores("online_movable\0")
    for b in BLOCKS:
        assert after.text(f"{MEM}/memory{b}/state") == "online\n"
        assert after.text(f"{MEM}/memory{b}/valid_zones") == "Movable\n"
        assert after.path(f"{NODE1}/memory{b}") == {"type": "link", "target": f"../../memory/memory{b}"}
    assert after.path(f"{DEV}/driver")["target"].endswith("/bus/dax/drivers/kmem")
    assert after.exists(f"{DRIVERS}/kmem/dax0.0")
    assert not after.exists(f"{DRIVERS}/device_dax/dax0.0")


@needs("daxctl")
def test_2_on_the_default_topology_plain_fakesysfs_run_onlines_and_returns() -> None:
    """The issue's "done when": on the embedded default topology (dax0.0 boots bound to
    kmem, blocks offline) the one-liner onlines all 128 blocks movable, and
    ``-f -m devdax`` takes the device back."""
    session = run_session([
        sh("daxctl reconfigure-device -m system-ram dax0.0"),
        sh("daxctl reconfigure-device -f -m devdax dax0.0"),
    ], topology=(REPO / "fakesysfs" / "default_topology.toml").read_text())
    to_ram, back = session.results
    assert to_ram.rc == 0, to_ram
    assert "dax0.0 was already in system-ram mode" in to_ram.err
    device = to_ram.device()
    assert (device["mode"], device["online_memblocks"], device["total_memblocks"], device["movable"]) == (
        "system-ram", 128, 128, True)
    assert to_ram.stores == block_stores("online_movable\0")
    assert back.rc == 0, back
    assert back.device()["mode"] == "devdax"


# -- 3. normal zone ---------------------------------------------------------------------------
@needs("daxctl")
def test_3_no_movable_onlines_into_zone_normal() -> None:
    reconf, after = run_session([
        sh("daxctl reconfigure-device --no-movable -m system-ram dax0.0"),
        probe(*block_paths("valid_zones")),
    ]).results
    assert reconf.rc == 0, reconf
    device = reconf.device()
    assert device["online_memblocks"] == 128 and device["movable"] is False
    assert_driver_stores(reconf.stores[:4], "devdax->kmem")
    assert reconf.stores[4:] == block_stores("online\0")
    assert {after.text(p) for p in block_paths("valid_zones")} == {"Normal\n"}


# -- 4. online / offline ----------------------------------------------------------------------
@needs("daxctl")
def test_4_no_online_then_online_and_offline_memory() -> None:
    reconf, offline_blocks, online, listed, again, offline, final = run_session([
        sh("daxctl reconfigure-device -N -m system-ram dax0.0"),
        probe(*block_paths("state", "valid_zones")),
        sh("daxctl online-memory dax0.0"),
        sh("daxctl list -d dax0.0"),
        sh("daxctl online-memory dax0.0"),
        sh("daxctl offline-memory dax0.0"),
        probe(*block_paths("state")),
    ]).results
    assert reconf.rc == 0, reconf
    device = reconf.device()
    assert (device["online_memblocks"], device["total_memblocks"]) == (0, 128)
    assert "movable" not in device
    assert_driver_stores(reconf.stores, "devdax->kmem")  # -N: no block stores
    for b in BLOCKS:
        assert offline_blocks.text(f"{MEM}/memory{b}/state") == "offline\n"
        assert offline_blocks.text(f"{MEM}/memory{b}/valid_zones") == "Normal Movable\n"
    assert online.rc == 0, online
    assert online.stores == block_stores("online_movable\0")
    assert listed.device()["movable"] is True and listed.device()["online_memblocks"] == 128
    assert again.rc == 1, again
    assert "all memory sections (128) already online" in again.err
    assert again.stores == []
    assert offline.rc == 0, offline
    assert offline.stores == block_stores("offline\0")
    assert {final.text(p) for p in block_paths("state")} == {"offline\n"}


# -- 5. policy gate ---------------------------------------------------------------------------
@needs("daxctl")
def test_5_auto_online_policy_gates_reconfigure_unless_forced() -> None:
    _, gated, forced, after = run_session([
        sh(f"echo online > {MEM}/auto_online_blocks"),
        sh("daxctl reconfigure-device -N -m system-ram dax0.0"),
        sh("daxctl reconfigure-device -N -f -m system-ram dax0.0"),
        probe(*block_paths("state")),
    ]).results
    assert gated.rc == 240, gated
    assert "kernel policy will auto-online memory, aborting" in gated.err
    assert gated.stores == []
    assert forced.rc == 0, forced
    assert forced.device()["online_memblocks"] == 128
    assert_driver_stores(forced.stores, "devdax->kmem")  # the engine onlined at bind
    assert {after.text(p) for p in block_paths("state")} == {"online\n"}


# -- 6. back to devdax ------------------------------------------------------------------------
@needs("daxctl")
def test_6_back_to_devdax_needs_force_and_removes_the_blocks() -> None:
    _, refused, forced, after = run_session([
        sh("daxctl reconfigure-device -m system-ram dax0.0"),
        sh("daxctl reconfigure-device -m devdax dax0.0"),
        sh("daxctl reconfigure-device -f -m devdax dax0.0"),
        probe(f"{MEM}/memory522", f"{MEM}/memory649", NODE1, *kmem_binding()),
    ]).results
    assert refused.rc == 240, refused
    assert refused.stores == []
    assert forced.rc == 0, forced
    assert forced.device()["mode"] == "devdax"
    assert forced.stores[:128] == block_stores("offline\0")
    assert_driver_stores(forced.stores[128:], "kmem->devdax")
    assert not after.exists(f"{MEM}/memory522") and not after.exists(f"{MEM}/memory649")
    assert not after.exists(NODE1)
    assert after.path(f"{DEV}/driver")["target"].endswith("/bus/dax/drivers/device_dax")
    assert not after.exists(f"{DRIVERS}/kmem/dax0.0")


@needs("daxctl")
def test_6_a_mount_on_the_fake_sys_survives_reconfiguring() -> None:
    """Issue 16: a mount stacked on a /sys directory (cgroup2 on /sys/fs/cgroup, configfs, a
    test's overmount) stays through driver changes and block removal, as on sysfs."""
    stacked, there = run_session([
        sh("mount -t tmpfs none /sys/fs && touch /sys/fs/m && daxctl reconfigure-device -m system-ram dax0.0"
           " && daxctl reconfigure-device -f -m devdax dax0.0"),
        sh("ls /sys/fs"),
    ]).results
    assert stacked.rc == 0, stacked
    assert there.out == "m\n", there


# -- 7. disable / enable ----------------------------------------------------------------------
@needs("daxctl")
def test_7_disable_and_enable_device() -> None:
    disable, listed, gone, enable, bound, _, ram_disable = run_session([
        sh("daxctl disable-device dax0.0"),
        sh("daxctl list -i -d dax0.0"),
        probe(f"{DEV}/driver"),
        sh("daxctl enable-device dax0.0"),
        probe(f"{DEV}/driver"),
        sh("daxctl reconfigure-device -N -m system-ram dax0.0"),
        sh("daxctl disable-device dax0.0"),
    ]).results
    assert disable.rc == 0, disable
    assert [(p, d) for p, d, _ in disable.stores] == DRIVER_STORES["devdax->kmem"][:2]
    assert listed.device()["state"] == "disabled"
    assert not gone.exists(f"{DEV}/driver")
    assert enable.rc == 0, enable
    assert bound.path(f"{DEV}/driver")["target"].endswith("/bus/dax/drivers/device_dax")
    assert ram_disable.rc == 250, ram_disable
    assert "only applicable in devdax mode" in ram_disable.err


# -- 8. resize, create, destroy ---------------------------------------------------------------
@needs("daxctl")
def test_8_resize_create_and_destroy_devices() -> None:
    (busy, size_kept, _, shrink, shrunk, create, created, destroy, destroyed) = run_session([
        sh("daxctl reconfigure-device -s 0 dax0.0"),
        probe(f"{DEV}/size"),
        sh("daxctl disable-device dax0.0"),
        sh("daxctl reconfigure-device -s 0 dax0.0"),
        probe(f"{DEV}/size", f"{REGION}/dax_region/available_size"),
        sh("daxctl create-device -r 0 -s 256M"),
        probe("/dev/dax0.1", f"{REGION}/dax0.1/dev", f"{REGION}/dax0.1/size"),
        sh("daxctl destroy-device -f dax0.1"),
        probe("/dev/dax0.1", f"{REGION}/dax0.1", f"{DAX}/devices/dax0.1", f"{REGION}/dax_region/available_size"),
    ]).results
    assert busy.rc == 250, busy
    assert busy.stores == [("/devices/platform/ACPI0017:00/root0/decoder0.0/region0/dax_region0/dax0.0/size",
                            "0\n\0", "EBUSY")]
    assert size_kept.text(f"{DEV}/size") == "17179869184\n"
    assert shrink.rc == 0, shrink
    assert shrink.stores == [(DEV.removeprefix("/sys") + "/size", "0\n\0", None)]
    assert shrunk.text(f"{DEV}/size") == "0\n"
    assert shrunk.text(f"{REGION}/dax_region/available_size") == "17179869184\n"

    assert create.rc == 0, create
    device = create.device()
    assert (device["chardev"], device["size"], device["mode"]) == ("dax0.1", 268435456, "devdax")
    region = REGION.removeprefix("/sys")
    assert [(p, d) for p, d, _ in create.stores] == [
        (f"{region}/dax_region/create", "1\0"),
        (f"{region}/dax0.1/size", "0x10000000\n\0"),
        ("/bus/dax/drivers/device_dax/new_id", "dax0.1\0"),
        ("/bus/dax/drivers/device_dax/bind", "dax0.1\0"),
    ]
    assert created.path("/dev/dax0.1") == {"type": "chr", "rdev": created.text(f"{REGION}/dax0.1/dev").strip()}

    assert destroy.rc == 0, destroy
    for gone in ("/dev/dax0.1", f"{REGION}/dax0.1", f"{DAX}/devices/dax0.1"):
        assert not destroyed.exists(gone), gone
    assert destroyed.text(f"{REGION}/dax_region/available_size") == "17179869184\n"


# -- 9. device 0 ------------------------------------------------------------------------------
@needs("daxctl")
def test_9_destroying_device_0_fails_busy_but_leaves_it_disabled_and_empty() -> None:
    destroy, after = run_session([
        sh("daxctl destroy-device -f dax0.0"),
        probe(DEV, f"{DEV}/size", f"{DEV}/driver", "/dev/dax0.0"),
    ]).results
    assert destroy.rc == 240, destroy
    region = REGION.removeprefix("/sys")
    assert destroy.stores[-2:] == [
        (f"{region}/dax0.0/size", "0\n\0", None),
        (f"{region}/dax_region/delete", "dax0.0\0", "EBUSY"),
    ]
    assert after.exists(DEV) and after.exists("/dev/dax0.0")
    assert after.text(f"{DEV}/size") == "0\n"
    assert not after.exists(f"{DEV}/driver")


# -- 10. chmem --------------------------------------------------------------------------------
@needs("daxctl", "chmem")
def test_10_chmem_onlines_and_offlines_by_block_range_size_and_zone() -> None:
    _, enable, disable, kernel, zones, listed = run_session([
        sh("daxctl reconfigure-device -N -m system-ram dax0.0"),
        sh("chmem -e -b 522-525"),
        sh("chmem -d 256M"),
        sh("chmem -e -z Normal -b 600"),
        probe(f"{MEM}/memory600/valid_zones"),
        sh("daxctl list -d dax0.0"),
    ]).results
    assert enable.rc == 0, enable
    assert enable.stores == block_stores("online_movable", range(522, 526))  # 14 bytes, no NUL
    assert disable.rc == 0, disable
    assert disable.stores == block_stores("offline", [525, 524])
    assert kernel.rc == 0, kernel
    assert kernel.stores == block_stores("online_kernel", [600])
    assert zones.text(f"{MEM}/memory600/valid_zones") == "Normal\n"
    device = listed.device()
    assert device["online_memblocks"] == 3 and "movable" not in device


# -- 11. lsmem --------------------------------------------------------------------------------
LSMEM = "lsmem -o RANGE,SIZE,STATE,REMOVABLE,BLOCK,NODE,ZONES"


def _lsmem_rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines() if line.startswith("0x")]


def _online_total(out: str) -> str:
    match = re.search(r"Total online memory:\s+(\S+)", out)
    assert match, out
    return match.group(1)


@needs("daxctl", "lsmem")
def test_11_lsmem_shows_the_cxl_range_online_movable_on_node_1() -> None:
    before, _, after = run_session([
        sh(LSMEM),
        sh("daxctl reconfigure-device -m system-ram dax0.0"),
        sh(LSMEM),
    ]).results
    assert before.rc == after.rc == 0, (before, after)
    assert ["0x0000001050000000-0x000000144fffffff", "16G", "online", "yes", "522-649", "1", "Movable"] in (
        _lsmem_rows(after.out))
    assert "Memory block size:       128M" in after.out
    assert (_online_total(before.out), _online_total(after.out)) == ("8G", "24G")


@needs("lsmem", "lstopo")
def test_11_13_sysroot_and_fsroot_without_a_namespace(tmp_path: Path) -> None:
    """``fakesysfs mount DIR/sys``: ``lsmem --sysroot DIR`` and ``HWLOC_FSROOT=DIR``."""
    root = make_mountpoint()
    sysdir = root / "sys"
    sysdir.mkdir()
    topology = tmp_path / "topology.toml"
    topology.write_text(A2_TOPOLOGY)  # dax0.0 on kmem, blocks offline
    mounted = subprocess.run([sys.executable, "-m", "fakesysfs.cli", "mount", str(sysdir), "-c", str(topology)],
                             env=ENV, capture_output=True, text=True, timeout=60, check=False)
    try:
        assert mounted.returncode == 0, mounted.stderr
        for b in BLOCKS:
            (sysdir / f"devices/system/memory/memory{b}/state").write_text("online_movable\n")
        lsmem = subprocess.run([*LSMEM.split(), "--sysroot", str(root)], capture_output=True, text=True,
                               timeout=60, check=False)
        assert lsmem.returncode == 0, lsmem.stderr
        assert ["0x0000001050000000-0x000000144fffffff", "16G", "online", "yes", "522-649", "1", "Movable"] in (
            _lsmem_rows(lsmem.stdout))
        hwloc = subprocess.run(["lstopo", "-v"], env=dict(os.environ, HWLOC_FSROOT=str(root), HWLOC_COMPONENTS="-x86"),
                               capture_output=True, text=True, timeout=60, check=False)
        assert hwloc.returncode == 0, hwloc.stderr
        assert_spm_node(hwloc.stdout)
        assert hwloc.stdout.rstrip().splitlines()[-1] == "Topology not from this system"
    finally:
        if not unmount(sysdir):
            unmount(sysdir, lazy=True)
        sysdir.rmdir()
        root.rmdir()


# -- 12. numactl ------------------------------------------------------------------------------
@needs("daxctl", "numactl")
def test_12_numactl_sees_node_1_come_and_go() -> None:
    before, _, during, _, after = run_session([
        sh("numactl -H"),
        sh("daxctl reconfigure-device -m system-ram dax0.0"),
        sh("numactl -H"),
        sh("daxctl reconfigure-device -f -m devdax dax0.0"),
        sh("numactl -H"),
    ]).results
    for result in (before, during, after):
        assert result.rc == 0, result
    assert "available: 1 nodes (0)" in before.out.splitlines()
    lines = during.out.splitlines()
    assert "available: 2 nodes (0-1)" in lines
    assert "node 1 cpus:" in [line.rstrip() for line in lines]
    assert "node 1 size: 16128 MB" in lines  # 16 GiB minus the 256 MiB memmap on the memory
    distances = lines[lines.index("node distances:") + 1:]
    assert [row.split() for row in distances[1:3]] == [["0:", "10", "20"], ["1:", "20", "10"]]
    assert "available: 1 nodes (0)" in after.out.splitlines()


@needs("daxctl", "numactl")
def test_12_without_memmap_on_memory_node_1_has_the_full_16_gib() -> None:
    topology = FIXTURE_TOPOLOGY.replace('memmap_on_memory = "Y"', 'memmap_on_memory = "N"')
    assert topology != FIXTURE_TOPOLOGY
    _, during = run_session([
        sh("daxctl reconfigure-device -m system-ram dax0.0"),
        sh("numactl -H"),
    ], topology=topology).results
    assert "node 1 size: 16384 MB" in during.out.splitlines(), during


# -- 13. lstopo -------------------------------------------------------------------------------
#: lstopo under HWLOC_FSROOT=/run/hw, a bind of the fake /sys (no proc/: no real CPU info).
LSTOPO = ("mkdir -p /run/hw/sys && (mountpoint -q /run/hw/sys || mount --bind /sys /run/hw/sys) && "
          "HWLOC_FSROOT=/run/hw HWLOC_COMPONENTS=-x86 lstopo -v")


def assert_spm_node(out: str) -> None:
    """node 1 as kmem memory: ``NUMANode(SPM) L#1 (P#1 local=... DAXDevice=dax0.0 ...)``."""
    nodes = [line.strip() for line in out.splitlines() if line.strip().startswith("NUMANode(SPM) L#1 (P#1 ")]
    assert len(nodes) == 1, out
    assert nodes[0].endswith(
        " DAXDevice=dax0.0 DAXType=SPM DAXParent=ACPI0017:00/root0/decoder0.0/region0/dax_region0)"), nodes[0]
    assert "local=16515072KB" in nodes[0]  # node1/meminfo MemTotal (docs/abi.md example 1)


@needs("daxctl", "lstopo")
def test_13_lstopo_shows_the_devdax_block_device_then_the_spm_node() -> None:
    devdax, _, kmem = run_session([
        sh(LSTOPO),
        sh("daxctl reconfigure-device -m system-ram dax0.0"),
        sh(LSTOPO),
    ]).results
    assert devdax.rc == 0, devdax
    block = [line.strip() for line in devdax.out.splitlines() if line.strip().endswith('"dax0.0"')]
    assert len(block) == 1, devdax.out
    assert block[0].startswith("Block")
    for word in ("DAXType=SPM", "Size=16777216", "LinuxDeviceID=252:0"):
        assert word in block[0]
    assert kmem.rc == 0, kmem
    assert_spm_node(kmem.out)
    for out in (devdax.out, kmem.out):
        assert "CPUModel" not in out
        assert out.rstrip().splitlines()[-1] == "Topology not from this system"


# -- 14. udevadm / pyudev ---------------------------------------------------------------------
PYUDEV = (
    "import pyudev; c = pyudev.Context(); "
    "print(sorted(d.sys_name for d in c.list_devices(subsystem='memory'))); "
    "print(sorted(d.sys_name for d in c.list_devices(subsystem='dax')))"
)


@needs("udevadm")
def test_14_udevadm_and_pyudev_see_the_dax_and_memory_devices() -> None:
    devpath = DEV.removeprefix("/sys")
    steps = [
        sh(f"udevadm info --path={devpath}"),
        sh("udevadm info -q path -n /dev/dax0.0"),
        sh("udevadm trigger --dry-run -v --subsystem-match=dax"),
        sh("udevadm trigger --action=change --subsystem-match=memory"),
        sh(f"udevadm info --path={devpath}", unset=["SYSTEMD_DEVICE_VERIFY_SYSFS"]),
        probe("/sys/bus/memory/devices", f"{DAX}/devices"),
    ]
    pyudev_ok = _python_has("pyudev")
    if pyudev_ok:
        steps.append({"run": [sys.executable, "-c", PYUDEV]})
    results = run_session(steps).results
    info, by_node, dry, trigger, unverified, buses = results[:6]
    assert info.rc == 0, info
    lines = info.out.splitlines()
    for expected in ("U: dax", "D: c 252:0", "N: dax0.0", "E: DRIVER=device_dax", "E: MODALIAS=dax:t0"):
        assert expected in lines, (expected, info.out)
    assert by_node.rc == 0 and by_node.out.strip() == devpath, by_node
    assert dry.rc == 0 and f"/sys{devpath}" in dry.out.split(), dry
    assert dry.stores == []
    assert trigger.rc == 0, trigger
    changed = {p for p, d, e in trigger.stores if d == "change\n" and e is None}
    assert "/devices/system/memory/memory0/uevent" in changed
    assert unverified.rc != 0 and "No such device" in unverified.err, unverified
    if pyudev_ok:
        memory, dax = (eval(line) for line in results[6].out.splitlines())
        assert memory == sorted(buses.path("/sys/bus/memory/devices")["names"])  # one per memoryN
        assert "memory0" in memory
        assert dax == ["dax0.0"] == buses.path(f"{DAX}/devices")["names"]


def _python_has(module: str) -> bool:
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, check=False)
    return done.returncode == 0


# -- 15. uevents ------------------------------------------------------------------------------
#: A pyudev 'udev' monitor on memory: prints "ready", then one line per event, until killed.
PYUDEV_MONITOR = (
    "import pyudev, sys; m = pyudev.Monitor.from_netlink(pyudev.Context(), source='udev'); "
    "m.filter_by('memory'); m.start(); print('ready', flush=True)\n"
    "for d in iter(m.poll, None): print(d.action, d.get('DEVPATH'), d.get('SUBSYSTEM'), d.get('SEQNUM'), flush=True)"
)


def _wait_for(text: str, file: str) -> str:
    return f"i=0; until grep -q '{text}' {file} 2>/dev/null; do i=$((i+1)); [ $i -gt 300 ] && break; sleep 0.02; done"


def _monitor_events(out: str) -> list[dict[str, str]]:
    """``udevadm monitor --property`` output -> the property blocks."""
    events, current = [], {}
    for line in out.splitlines():
        if "=" in line and not line.startswith(("UDEV ", "KERNEL ")):
            key, _, value = line.partition("=")
            current[key] = value
        elif not line.strip() and current:
            events.append(current)
            current = {}
    if current:
        events.append(current)
    return events


@needs("daxctl", "udevadm")
def test_15_udev_monitors_receive_memory_and_dax_events_in_order() -> None:
    pyudev_ok = _python_has("pyudev")
    # Background jobs of a non-interactive shell ignore SIGINT: stop them with SIGTERM.
    monitors = (
        "P=; udevadm monitor --udev --property --subsystem-match=memory > /run/memory.txt 2>&1 & P=\"$P $!\"; "
        "udevadm monitor --udev --property --subsystem-match=dax > /run/dax.txt 2>&1 & P=\"$P $!\"; "
        "udevadm monitor --kernel > /run/kernel.txt 2>&1 & P=\"$P $!\"; "
        + (f"{sys.executable} -c \"{PYUDEV_MONITOR}\" > /run/pyudev.txt 2>&1 & P=\"$P $!\"; " if pyudev_ok else "")
        + "; ".join(_wait_for("monitor will print", f"/run/{name}.txt") for name in ("memory", "dax", "kernel"))
        + ("; " + _wait_for("ready", "/run/pyudev.txt") if pyudev_ok else "")
        + "; daxctl reconfigure-device -m system-ram dax0.0 > /dev/null; "
        + _wait_for("DRIVER=kmem", "/run/dax.txt") + "; "
        + _wait_for("online .*/memory649 (memory)", "/run/memory.txt") + "; "
        + (_wait_for("online /devices/system/memory/memory649", "/run/pyudev.txt") + "; " if pyudev_ok else "")
        + "sleep 0.2; kill $P; wait"
    )
    _, memory, dax, kernel, pyudev = run_session([
        sh(monitors),
        sh("cat /run/memory.txt"), sh("cat /run/dax.txt"), sh("cat /run/kernel.txt"),
        sh("cat /run/pyudev.txt 2>/dev/null || true"),
    ]).results
    events = _monitor_events(memory.out)
    expected = [("add", b) for b in BLOCKS] + [("online", b) for b in BLOCKS]
    assert [(e["ACTION"], int(e["DEVPATH"].removeprefix("/devices/system/memory/memory"))) for e in events] == expected
    assert {e["SUBSYSTEM"] for e in events} == {"memory"}
    seqnums = [int(e["SEQNUM"]) for e in events]
    assert seqnums == sorted(seqnums) and len(set(seqnums)) == len(seqnums)
    dax_events = _monitor_events(dax.out)
    assert [(e["ACTION"], e.get("DRIVER")) for e in dax_events] == [("unbind", None), ("bind", "kmem")]
    assert all(e["SUBSYSTEM"] == "dax" and e["DEVPATH"] == DEV.removeprefix("/sys") for e in dax_events)
    assert _monitor_events(kernel.out) == []  # group 1 cannot be faked for libudev
    if pyudev_ok:
        lines = [line.split() for line in pyudev.out.splitlines() if line != "ready"]
        assert [(a, p) for a, p, *_ in lines] == [(a, f"/devices/system/memory/memory{b}") for a, b in expected]


# -- 16. file semantics -----------------------------------------------------------------------
@needs("daxctl", "setpriv")
def test_16_file_semantics_through_the_namespace() -> None:
    state = f"{MEM}/memory522/state"
    _, cat, echo, nul, readonly, other_gid = run_session([
        sh("daxctl reconfigure-device -m system-ram dax0.0"),
        sh(f"cat {DEV}/size {DEV}/uevent {MEM}/block_size_bytes"),
        sh(f"echo offline > {state}"),
        {"write": state, "data": "online_movable\0"},
        {"write": f"{MEM}/memory522/phys_index", "data": "1\n"},
        {"run": ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "cat", state]},
    ]).results
    assert cat.rc == 0 and cat.out == (
        "17179869184\nMAJOR=252\nMINOR=0\nDEVNAME=dax0.0\nDRIVER=kmem\nMODALIAS=dax:t0\n8000000\n"), cat
    assert echo.rc == 0 and echo.stores == [("/devices/system/memory/memory522/state", "offline\n", None)]
    assert nul.raw["count"] == 15, nul
    assert readonly.raw.get("errno") == "EACCES" and readonly.raw.get("at") == "open"
    assert other_gid.rc == 0 and other_gid.out == "online\n", other_gid


# -- 17. negative -----------------------------------------------------------------------------
@needs("daxctl")
def test_17_without_the_dev_node_daxctl_omits_the_device() -> None:
    (listing,) = run_session([sh("rm /dev/dax0.0 && daxctl list")]).results
    assert listing.rc == 0, listing
    assert "dax0.0" not in listing.out


@needs("daxctl")
def test_17_without_the_kmem_module_reconfigure_fails_and_leaves_the_device_unbound() -> None:
    no_kmem = FIXTURE_TOPOLOGY + "\n[dax]\nkmem = false\n"  # no module/kmem at all
    # Without the install commands of /run/modprobe.d (docs/proc.md "Modules"), libkmod
    # finds no kmem to load, as on a host without kmem.ko.
    reconf, after = run_session([
        sh("rm /run/modprobe.d/fakesysfs.conf && daxctl reconfigure-device -m system-ram dax0.0"),
        probe(f"{DEV}/driver", "/sys/module/kmem"),
    ], topology=no_kmem).results
    assert reconf.rc != 0, reconf
    assert "insert failure" in reconf.err
    assert [(p, d) for p, d, _ in reconf.stores] == DRIVER_STORES["devdax->kmem"][:2]
    assert not after.exists(f"{DEV}/driver") and not after.exists("/sys/module/kmem")


#: An old kernel's dax-class device, built in the namespace only (tmpfs over the FUSE
#: directories): ``class/dax/dax0.0`` with the device's attributes and ``subsystem`` ->
#: ``class/dax``, and ``dev/char/252:0`` pointing at it.
DAX_CLASS = (
    "mkdir -p /run/c/dax0.0 && for f in size resource dev align target_node numa_node modalias uevent; "
    f"do cat {DEV}/$f > /run/c/dax0.0/$f; done && "
    "mount -t tmpfs classdax /sys/class && mkdir /sys/class/dax && cp -a /run/c/dax0.0 /sys/class/dax/ && "
    "ln -s ../../../class/dax /sys/class/dax/dax0.0/subsystem && "
    "mount -t tmpfs devchar /sys/dev/char && ln -s ../../class/dax/dax0.0 /sys/dev/char/252:0"
)


@needs("daxctl")
def test_17_a_class_dax_device_is_treated_with_the_dax_class_model() -> None:
    _, reconf = run_session([sh(DAX_CLASS), sh("daxctl reconfigure-device -m system-ram dax0.0")]).results
    assert reconf.rc == 161, reconf
    assert "device model is dax-class" in reconf.err
    assert reconf.stores == []


@needs("daxctl")
def test_17_without_node_links_online_memory_finds_no_sections() -> None:
    online, = run_session([
        sh("daxctl reconfigure-device -N -m system-ram dax0.0 >/dev/null && "
           f"mount -t tmpfs nolinks {NODE1} && daxctl online-memory dax0.0"),
    ]).results
    assert online.rc == 1, online
    assert "all memory sections (0) already online" in online.err
