"""State files: every acknowledged change is on disk before the write returns, a restart or a
SIGKILL brings back exactly the state after the last acknowledged change (never half of one),
snapshots export and import."""

from __future__ import annotations

import errno
import json
import os
import random
import re
import select
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakesysfs import HarnessError, KernelError, Simulation, StateError
from fakesysfs.control import ControlClient
from fakesysfs.journal import encode_line, read_state

MEM = "/devices/system/memory"
TOPOLOGY = """
[kernel]
memmap_on_memory = "Y"
possible_nodes = "0-2"
max_physmem_bits = 46
[[node]]
id = 0
cpus = "0-1"
memory = ["0x0-0xffffffff"]
[[cxl_region]]
start = 0x10000000000
size = "1T"
target_node = 1
driver = "device_dax"
[[cxl_region]]
start = 0x20000000000
size = "4G"
target_node = 2
"""
BIG_FIRST = 0x10000000000 // (128 << 20)  # first block of the 1 TiB region
SMALL_FIRST = 0x20000000000 // (128 << 20)  # first block of the 4 GiB region (kmem at boot)
CLI = [sys.executable, "-m", "fakesysfs.cli"]


def some_changes(sim: Simulation) -> None:
    """Stores that succeed and fail, ops, a one-shot fault consumed by a failing store."""
    sim.echo(f"{MEM}/memory{SMALL_FIRST}/state", "online_movable")
    with pytest.raises(KernelError):
        sim.echo(f"{MEM}/memory{SMALL_FIRST}/state", "online")
    sim.set_block_usage(SMALL_FIRST, pinned=7, used=100)
    sim.inject_notifier_error("MEM_GOING_OFFLINE", "EBUSY")
    region = sim.add_cxl_region("512M", node=1)
    sim.echo("/bus/dax/drivers/kmem/unbind", region.devices[0])
    sim.fail_memmap_at_chunk(2)
    with pytest.raises(KernelError) as info:  # the fault fires in this store, and is used up
        sim.echo("/bus/dax/drivers/kmem/bind", region.devices[0])
    assert info.value.errno == errno.ENOMEM
    sim.echo(f"{MEM}/memory{SMALL_FIRST + 1}/state", "online")
    sim.add_hmem("256M", node=2)


# -- in-process ---------------------------------------------------------------------------------
def test_a_resumed_state_file_is_exactly_the_state_it_recorded(tmp_path: Path) -> None:
    path = tmp_path / "s.state"
    with Simulation(TOPOLOGY, state=path) as sim:
        some_changes(sim)
        before = sim.snapshot()
        assert sim.kernel.faults.memmap_fail_at_chunk is None
    with Simulation(state=path) as again:
        assert again.snapshot() == before  # blocks, nodes, devices, faults, iomem, kmsg, SEQNUM
        assert again.kernel.events.seqnum == before["seqnum"]
        again.echo(f"{MEM}/memory{SMALL_FIRST + 2}/state", "online")
        after = again.snapshot()
    with Simulation(TOPOLOGY, state=path) as third:  # the same topology given again is fine
        assert third.snapshot() == after


def test_every_change_is_fdatasynced_before_it_returns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Simulation(TOPOLOGY, state=tmp_path / "s.state") as sim:
        synced: list[int] = []
        real = os.fdatasync

        def counting(fd: int) -> None:
            real(fd)
            synced.append(os.fstat(fd).st_size)

        monkeypatch.setattr(os, "fdatasync", counting)
        sim.echo(f"{MEM}/memory{SMALL_FIRST}/state", "online")
        assert len(synced) == 1 and synced[0] == os.path.getsize(tmp_path / "s.state")
        with pytest.raises(KernelError):
            sim.echo(f"{MEM}/memory{SMALL_FIRST}/state", "online")
        sim.add_hmem("256M", node=2)
        with pytest.raises(HarnessError):
            sim.add_hmem("3M", node=2)  # refused before any change: nothing to record
        assert len(synced) == 3
        assert [r["t"] for r in read_state(tmp_path / "s.state").records] == ["store", "store", "op"]


def test_a_torn_last_line_is_dropped_and_damage_before_it_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.state"
    with Simulation(TOPOLOGY, state=path) as sim:
        sim.echo(f"{MEM}/memory{SMALL_FIRST}/state", "online")
        expected = sim.snapshot()
    good = path.read_bytes()
    torn = encode_line({"n": 2, "t": "store", "path": f"{MEM}/memory{SMALL_FIRST + 1}/state", "data": "online\n",
                        "errno": 0})
    path.write_bytes(good + torn[:-9])  # killed inside write(): no newline
    with Simulation(state=path) as sim:
        assert sim.snapshot() == expected
    assert path.read_bytes() == good, "the partial record is cut off before appending"
    lines = good.split(b"\n")
    lines[1] = lines[1].replace(b"online", b"offlin")  # bad checksum, not the last line
    path.write_bytes(b"\n".join(lines) + torn)
    with pytest.raises(StateError, match=r"line 2 is damaged"):
        Simulation(state=path)


def test_refuses_a_different_topology_a_foreign_file_and_a_diverging_replay(tmp_path: Path) -> None:
    path = tmp_path / "s.state"
    with Simulation(TOPOLOGY, state=path) as sim:
        sim.echo(f"{MEM}/memory{SMALL_FIRST}/state", "online")
    with pytest.raises(StateError, match="was created with a different topology"):
        Simulation(TOPOLOGY.replace('"4G"', '"8G"'), state=path)
    (tmp_path / "foreign").write_text("hello\n")
    with pytest.raises(StateError, match="not a fakesysfs state file"):
        Simulation(state=tmp_path / "foreign")
    state = read_state(path)
    record = {**state.records[0], "errno": errno.EBUSY}
    path.write_bytes(path.read_bytes().split(b"\n", 1)[0] + b"\n" + encode_line(record))
    with pytest.raises(StateError, match=r"record 1: writing 'online\\n' to .* gave success on replay but EBUSY"):
        Simulation(state=path)


def test_export_and_resume_a_snapshot(tmp_path: Path) -> None:
    with Simulation(TOPOLOGY) as sim:  # no state file: the history is kept in memory
        some_changes(sim)
        assert sim.export(tmp_path / "snap.state") == len(sim.harness.history)
        expected = sim.snapshot()
    with Simulation(state=tmp_path / "snap.state") as resumed:
        assert resumed.snapshot() == expected


def test_a_failing_journal_fails_the_store_with_eio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Simulation(TOPOLOGY, state=tmp_path / "s.state") as sim:
        failures: list[OSError] = []
        sim.harness.on_journal_error = failures.append

        def no_space(_fd: int) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "fdatasync", no_space)
        with pytest.raises(KernelError) as info:
            sim.echo(f"{MEM}/memory{SMALL_FIRST}/state", "online")
        assert info.value.errno == errno.EIO and "No space left" in str(info.value)
        assert [f.errno for f in failures] == [errno.ENOSPC]


# -- the mount daemon -----------------------------------------------------------------------------
def _mount(mountpoint: Path, state: Path, *extra: str) -> int:
    done = subprocess.run([*CLI, "mount", str(mountpoint), "--state", str(state), *extra], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split("(pid ")[1].split(")")[0])


def _umount(mountpoint: Path) -> None:
    """Unmount; the daemon then exits (a dead daemon's mount is cleared too)."""
    for tool in ("fusermount3", "fusermount"):
        if subprocess.run([tool, "-u", str(mountpoint)], capture_output=True, timeout=30, check=False).returncode == 0:
            return
    subprocess.run([*CLI, "umount", str(mountpoint)], capture_output=True, timeout=30, check=False)


def _ctl(mountpoint: Path, *args: str) -> str:
    done = subprocess.run([*CLI, "ctl", str(mountpoint), *args], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _request(mountpoint: Path, op: str, **members: object) -> dict:
    """A control request without a CLI process (test_ctl.py covers the CLI)."""
    with ControlClient.for_mount(mountpoint) as client:
        return client.request(op, **members)


def _state(mountpoint: Path) -> dict:
    return _request(mountpoint, "state")["state"]


def _write(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _kill(pid: int) -> None:
    """SIGKILL the daemon and wait until it has died (it is not our child: a pidfd tells)."""
    pidfd = os.pidfd_open(pid)
    try:
        os.kill(pid, signal.SIGKILL)
        assert select.select([pidfd], [], [], 30)[0], f"pid {pid} survived SIGKILL for 30 s"
    finally:
        os.close(pidfd)


@pytest.fixture
def mnt(tmp_path: Path):
    path = Path(tmp_path / "mnt")
    path.mkdir()
    yield path
    if os.path.ismount(path) or not os.path.exists(path / "devices"):
        _umount(path)


@pytest.mark.fuse
def test_sigkill_during_a_1tib_chunked_add_comes_back_without_it(tmp_path: Path, mnt: Path) -> None:
    topo, state = tmp_path / "t.toml", tmp_path / "s.state"
    topo.write_text(TOPOLOGY)
    pid = _mount(mnt, state, "-c", str(topo))
    # Acknowledged changes: stores through the mount and ops through the control socket.
    _write(mnt / "bus/dax/drivers/device_dax/unbind", "dax0.0")
    _write(mnt / "kernel/debug/notifier-error-inject/memory/actions/MEM_GOING_OFFLINE/error", "-16")
    _request(mnt, "probe_fail", device="dax7.0", errno="ENOMEM")
    assert _ctl(mnt, "add-hmem", "256M", "2") == "hmem.2 dax2.0\n"
    hmem_first = int(_state(mnt)["dax_devices"][-1]["blocks"][0])
    _write(mnt / f"devices/system/memory/memory{hmem_first}/state", "online_movable")
    records = len(read_state(state).records)
    seqnum = _request(mnt, "ping")["seqnum"]
    _request(mnt, "add_block_delay", seconds=300e-6)  # 8192 blocks * 300 us: the add takes seconds (not recorded)

    with ControlClient.for_mount(mnt) as client:
        client.subscribe(subsystems=["memory"])
        writer = subprocess.Popen(["sh", "-c", f"echo dax0.0 > {mnt}/bus/dax/drivers/kmem/new_id"],
                                  stderr=subprocess.DEVNULL)
        added = 0
        for event in client.events():
            added += event.action == "add"
            if added == 400:  # chunk 400 of 8192, with its journal to be written at the end
                _kill(pid)
                break
    assert writer.wait(30) != 0, "the store was never acknowledged"
    _umount(mnt)
    assert len(read_state(state).records) == records, "nothing of the killed add reached the state file"

    _mount(mnt, state)
    snap = _state(mnt)
    assert snap["seqnum"] == seqnum
    big = [b for b in snap["blocks"] if BIG_FIRST <= b["id"] < BIG_FIRST + 8192]
    assert big == [], "no chunk of the killed add is present"
    assert {d["name"]: d["driver"] for d in snap["dax_devices"]} == {"dax0.0": None, "dax1.0": "kmem",
                                                                       "dax2.0": "kmem"}
    assert (mnt / "kernel/debug/notifier-error-inject/memory/actions/MEM_GOING_OFFLINE/error").read_text() == "-16\n"
    assert (mnt / "kernel/debug/fakesysfs/faults/probe_fail").read_text() == "dax7.0 -12\n"
    assert (mnt / f"devices/system/memory/memory{hmem_first}/valid_zones").read_text() == "Movable\n"
    assert (mnt / "kernel/debug/fakesysfs/faults/add_block_delay_us").read_text() == "0\n"

    # Done again without the kill, the 1 TiB add is acknowledged and survives a restart.
    _write(mnt / "bus/dax/drivers/kmem/new_id", "dax0.0")
    _umount(mnt)
    _mount(mnt, state)
    snap = _state(mnt)
    assert len([b for b in snap["blocks"] if BIG_FIRST <= b["id"] < BIG_FIRST + 8192]) == 8192
    assert snap["dax_devices"][0]["driver"] == "kmem"


WRITER = textwrap.dedent("""
    import json, sys
    for i, (path, data) in enumerate(json.load(open(sys.argv[1]))):
        try:
            with open(path, "w") as f:
                f.write(data)
            err = 0
        except OSError as exc:
            err = exc.errno
            if err in (107, 5, 2):  # ENOTCONN, EIO, ENOENT: the daemon is gone
                sys.exit(1)
        print(i, err, flush=True)
""")


@pytest.mark.fuse
@pytest.mark.parametrize("seed", [1, 2])
def test_sigkill_at_a_random_point_keeps_every_acknowledged_write(tmp_path: Path, mnt: Path, seed: int) -> None:
    rng = random.Random(seed)
    topo, state = tmp_path / "t.toml", tmp_path / "s.state"
    topo.write_text(TOPOLOGY)
    stores = []
    for _ in range(400):
        block = SMALL_FIRST + rng.randrange(32)
        word = rng.choice(["online_movable", "online", "offline", "online_kernel"])
        stores.append((f"/devices/system/memory/memory{block}/state", word))
    (tmp_path / "stores.json").write_text(json.dumps([(f"{mnt}{p}", d) for p, d in stores]))
    (tmp_path / "writer.py").write_text(WRITER)
    pid = _mount(mnt, state, "-c", str(topo))
    writer = subprocess.Popen([sys.executable, str(tmp_path / "writer.py"), str(tmp_path / "stores.json")],
                              stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None
    kill_after = rng.randrange(20, 120)
    acked = [writer.stdout.readline() for _ in range(kill_after)]
    _kill(pid)
    acked += writer.stdout.readlines()  # acknowledgements already on their way
    writer.stdout.close()
    writer.wait(30)
    _umount(mnt)
    n = len(acked)
    assert n < len(stores), "the kill came too late to test anything"

    _mount(mnt, state)
    restored = _state(mnt)

    def reference(count: int) -> dict:
        with Simulation(TOPOLOGY) as sim:
            for path, data in stores[:count]:
                try:
                    sim.echo(path, data, newline=False)
                except KernelError:
                    pass
            return json.loads(json.dumps(sim.snapshot()))

    assert restored in (reference(n), reference(n + 1)), \
        f"after {n} acknowledged writes the state is neither that of {n} nor of {n + 1} writes"
    errnos = [int(line.split()[1]) for line in acked]
    assert errnos.count(0) < n, "some writes failed with the kernel's errno, and count as acknowledged too"


@pytest.mark.fuse
def test_ctl_export_and_mount_import(tmp_path: Path, mnt: Path) -> None:
    topo, state = tmp_path / "t.toml", tmp_path / "s.state"
    topo.write_text(TOPOLOGY)
    _mount(mnt, state, "-c", str(topo))
    _write(mnt / f"devices/system/memory/memory{SMALL_FIRST}/state", "online_movable")
    _request(mnt, "add_cxl_region", size="1G", target_node=1)
    assert _ctl(mnt, "export", str(tmp_path / "snap.state")).endswith(": 2 records\n")
    expected = _state(mnt)
    _umount(mnt)
    _mount(mnt, tmp_path / "copy.state", "--import", str(tmp_path / "snap.state"))
    assert _state(mnt) == expected
    _umount(mnt)
    done = subprocess.run([*CLI, "mount", str(mnt), "--state", str(tmp_path / "copy.state"), "--import",
                           str(tmp_path / "snap.state")], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1 and "--import wants a new state file" in done.stderr


# -- records that are checksummed but not records ----------------------------------------------------
def crafted_state(tmp_path: Path, *records: object) -> Path:
    """A state file of TOPOLOGY whose records are ``records``, each with a valid checksum."""
    path = tmp_path / "crafted.state"
    path.unlink(missing_ok=True)
    with Simulation(TOPOLOGY, state=path):
        pass
    header = path.read_bytes().split(b"\n", 1)[0] + b"\n"
    lines = [encode_line(r) if isinstance(r, dict) else r for r in records]
    path.write_bytes(header + b"".join(line for line in lines if isinstance(line, bytes)))
    return path


def checksummed(body: str) -> bytes:
    import zlib

    return f"{zlib.crc32(body.encode()):08x} {body}\n".encode()


@pytest.mark.parametrize(("record", "message"), [
    ({"n": 1, "t": "store", "path": 5, "data": "online\n", "errno": 0}, r"line 2 \(record 1\): a store record needs"),
    ({"n": 1, "t": "store", "path": f"{MEM}/memory0/state", "data": ["x"], "errno": 0}, "a store record needs"),
    ({"n": 1, "t": "store", "path": f"{MEM}/memory0/state", "data": "online\n", "errno": "0"}, "a store record"),
    ({"n": 1, "t": "store", "path": f"{MEM}/memory0/state", "data": "online\n"}, "a store record needs"),
    ({"n": 1, "t": "store", "path": f"{MEM}/memory0/state", "data": "\udcff", "errno": 0}, "above U.00FF"),
    ({"n": 1, "t": "op", "op": "add_hmem"}, r"line 2 \(record 1\): an op record needs"),
    ({"n": 1, "t": "op", "op": {"op": ["add_hmem"]}}, "an op record needs"),
    ({"n": 1, "t": "op", "op": {"op": "add_hmem", "size": {"a": 1}, "target_node": 1}}, "record 1 .* failed on replay"),
    ({"n": 1, "t": 7}, "unknown record type 7"),
    ({"n": True, "t": "op", "op": {"op": "clear_faults"}}, "holds record True, expected 1"),
    ({"n": 1.0, "t": "op", "op": {"op": "clear_faults"}}, "holds record 1.0, expected 1"),
    pytest.param(checksummed('{"n":1,"t":"op","op":' + "[" * 100_000 + "]" * 100_000 + "}"),
                 "line 2: its JSON nests too deeply", id="100000-deep"),
])
def test_a_type_confused_or_deeply_nested_record_is_one_line_naming_it(tmp_path: Path, record: object,
                                                                         message: str) -> None:
    path = crafted_state(tmp_path, record)
    with pytest.raises(StateError, match=message) as exc:
        Simulation(state=path)
    assert "\n" not in str(exc.value)


def test_the_cli_says_so_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fakesysfs.cli import main

    if not os.path.exists("/dev/fuse"):
        pytest.skip("mount checks /dev/fuse first")
    path = crafted_state(tmp_path, {"n": 1, "t": "store", "path": 5, "data": "x", "errno": 0})
    (tmp_path / "mnt").mkdir()
    assert main(["mount", "--state", str(path), str(tmp_path / "mnt")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "record 1" in err and str(path) in err, err


# -- a failed first boot leaves no state file -------------------------------------------------------
BAD_TOPOLOGY = "[kernel]\nblock_size = 3\n"


def test_a_failed_first_boot_leaves_no_state_file(tmp_path: Path) -> None:
    """The state file is created before the boot; a boot that fails takes it back, so the
    next start does not take an empty file for a new state. A file that was there before
    (even empty) is not ours to remove."""
    from fakesysfs import ConfigError

    state = tmp_path / "new.state"
    with pytest.raises(ConfigError, match="block_size"):
        Simulation(BAD_TOPOLOGY, state=state)
    assert not state.exists()
    state.touch(mode=0o600)
    with pytest.raises(ConfigError):
        Simulation(BAD_TOPOLOGY, state=state)
    assert state.exists() and state.read_bytes() == b""


def test_only_the_created_file_itself_is_removed(tmp_path: Path) -> None:
    """By identity (st_dev, st_ino): a file renamed over the name after the create stays."""
    from fakesysfs.safefile import open_append_created, remove_created

    path = tmp_path / "new.state"
    fd, created = open_append_created(path)
    try:
        assert created
        (tmp_path / "other").write_text("someone else's\n")
        os.rename(tmp_path / "other", path)
        assert not remove_created(path, fd)
        assert path.read_text() == "someone else's\n"
    finally:
        os.close(fd)
    path.unlink()
    fd, created = open_append_created(path)
    try:
        assert created and remove_created(path, fd) and not path.exists()
    finally:
        os.close(fd)
    path.write_text("")
    path.chmod(0o600)
    fd, created = open_append_created(path)
    os.close(fd)
    assert not created


def test_mount_with_a_bad_topology_or_snapshot_leaves_no_state_file(tmp_path: Path) -> None:
    """``fakesysfs mount MNT --state NEW -c BAD`` (and ``--import`` of a snapshot whose
    replay fails): one line, and NEW does not exist afterwards."""
    if not os.path.exists("/dev/fuse"):
        pytest.skip("mount checks /dev/fuse first")
    (tmp_path / "mnt").mkdir()
    (tmp_path / "bad.toml").write_text(BAD_TOPOLOGY)
    snapshot = crafted_state(tmp_path, {"n": 1, "t": "op", "op": {"op": "remove", "device": "region99"}})
    for extra, message in ((["-c", str(tmp_path / "bad.toml")], "block_size"),
                           (["--import", str(snapshot)], "record 1")):
        state = tmp_path / "new.state"
        done = subprocess.run([*CLI, "mount", str(tmp_path / "mnt"), "--state", str(state), *extra],
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 1 and done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
        assert not state.exists(), f"{extra}: the failed boot left {state} behind"
        assert not os.path.ismount(tmp_path / "mnt")


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats()
                           | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                        max_size=4), max_leaves=12)
RECORDS = st.fixed_dictionaries({"n": st.just(1), "t": st.sampled_from(["store", "op", "x"])}, optional={
    "path": st.sampled_from([f"{MEM}/memory{SMALL_FIRST}/state", "/", "", "/../..", "x\0y", f"{MEM}"]) | JSON_VALUES,
    "data": st.sampled_from(["online\n", "", "\udcff"]) | JSON_VALUES,
    "errno": st.integers(-5, 200) | JSON_VALUES,
    "op": st.fixed_dictionaries({"op": st.sampled_from(["add_hmem", "add_cxl_region", "remove", "block_usage",
                                                        "add_block_delay", "probe_fail", "nope"])},
                                optional={"size": JSON_VALUES, "target_node": JSON_VALUES, "device": JSON_VALUES,
                                          "block": JSON_VALUES, "seconds": JSON_VALUES, "errno": JSON_VALUES})
    | JSON_VALUES,
})


@settings(max_examples=150 if not os.environ.get("FAKESYSFS_FUZZ") else 3000, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(record=RECORDS)
def test_fuzzed_records_give_a_state_error_or_a_state_never_a_traceback(tmp_path: Path, record: dict) -> None:
    try:
        path = crafted_state(tmp_path, record)
    except (UnicodeEncodeError, ValueError):
        return  # not JSON-encodable (a lone surrogate, NaN is fine): cannot be in a file
    try:
        with Simulation(state=path):
            pass
    except StateError as exc:
        assert "\n" not in str(exc)


# -- sysctl writes ----------------------------------------------------------------------------------
def _min_watermarks(zoneinfo: str) -> dict[str, int]:
    """zoneinfo -> {"node,zone": min watermark} of every zone."""
    out, zone = {}, ""
    for line in zoneinfo.splitlines():
        if line.startswith("Node "):
            zone = line
        elif line.strip().startswith("min ") and zone:
            out[zone] = int(line.split()[1])
    return out


def test_sysctl_writes_are_changes_traced_kept_and_replayed(tmp_path: Path) -> None:
    path = tmp_path / "s.state"
    with Simulation(TOPOLOGY, state=path) as sim:
        default = _min_watermarks(sim.proc("zoneinfo"))
        sim.sysctl("min_free_kbytes", 90112)
        with pytest.raises(KernelError) as info:
            sim.sysctl("watermark_scale_factor", 0)  # below 1: EINVAL, recorded as the failed store it is
        assert info.value.errno == errno.EINVAL
        sim.sysctl("lowmem_reserve_ratio", "128 64")
        sim.echo(f"{MEM}/memory{SMALL_FIRST}/state", "online")  # init_per_zone_wmark_min keeps the larger value
        assert [(r.path, r.text, r.errno) for r in sim.stores(path=re.compile(r"/proc/.*"))] == [
            ("/proc/sys/vm/min_free_kbytes", "90112", 0), ("/proc/sys/vm/watermark_scale_factor", "0", errno.EINVAL),
            ("/proc/sys/vm/lowmem_reserve_ratio", "128 64", 0)]
        zoneinfo, snapshot = sim.proc("zoneinfo"), sim.snapshot()
        assert _min_watermarks(zoneinfo) != default
        assert [r["path"] for r in read_state(path).records][:3] == [
            "/proc/sys/vm/min_free_kbytes", "/proc/sys/vm/watermark_scale_factor", "/proc/sys/vm/lowmem_reserve_ratio"]
        sim.export(tmp_path / "snap.state")
    for source in (path, tmp_path / "snap.state"):
        with Simulation(state=source) as again:
            assert again.proc("sys/vm/min_free_kbytes") == "90112\n"
            assert again.proc("sys/vm/lowmem_reserve_ratio").startswith("128\t64\t")
            assert again.proc("zoneinfo") == zoneinfo
            assert again.snapshot() == snapshot


@pytest.mark.fuse
def test_a_sysctl_write_through_the_mount_survives_sigkill(tmp_path: Path, mnt: Path) -> None:
    topo, state, proc = tmp_path / "t.toml", tmp_path / "s.state", tmp_path / "proc"
    topo.write_text(TOPOLOGY)
    proc.mkdir()
    pid = _mount(mnt, state, "-c", str(topo), "--proc", str(proc))
    default = _min_watermarks((proc / "zoneinfo").read_text())
    _write(proc / "sys/vm/min_free_kbytes", "90112\n")  # returns once the record is fdatasync'd
    zoneinfo = (proc / "zoneinfo").read_text()
    assert _min_watermarks(zoneinfo) != default
    trace = [json.loads(line) for line in _ctl(mnt, "trace").splitlines()]
    assert [(s["path"], s["data"], s["errno"]) for s in trace] == [
        ("/proc/sys/vm/min_free_kbytes", "90112\n", 0)]
    _kill(pid)
    _umount(mnt)
    subprocess.run(["umount", "-l", str(proc)], capture_output=True, timeout=30, check=False)

    _mount(mnt, state, "--proc", str(proc))
    assert (proc / "sys/vm/min_free_kbytes").read_text() == "90112\n"
    assert (proc / "zoneinfo").read_text() == zoneinfo
    _umount(mnt)
