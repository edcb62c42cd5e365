"""Uevents (R-SYS-08/09, R-ADD-03, R-DAX-UEV-01): the exact sequences the engine emits,
``uevent`` writes (lib/kobject_uevent.c kobject_synth_uevent), the EventLog API, and the
control socket's subscription stream. Everything here runs in-process without FUSE;
test_events_mount.py covers the mount, ``fakesysfs monitor``, netlink and udev rules.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from conftest import example_config, raises_errno

from fakesysfs import Simulation
from fakesysfs.config import CxlRegionConfig, GiB
from fakesysfs.control import (
    ControlClient,
    ControlError,
    ControlServer,
    find_control_socket,
    serving,
)
from fakesysfs.engine.events import EventLog, Uevent, match
from fakesysfs.sysfs.common import kobject_synth_uevent
from fakesysfs.sysfs.tree import Tree

MEM = "/devices/system/memory"
NODE1 = "/devices/system/node/node1"
REGION = "/devices/platform/ACPI0017:00/root0/decoder0.0/region0/dax_region0"
DAX0 = f"{REGION}/dax0.0"
KMEM = "/bus/dax/drivers/kmem"
BLOCKS = range(522, 650)  # 16 GiB at 0x1050000000 in 128 MiB blocks (docs/abi.md example 1)
UUID = "0b5d6a0e-4c3f-4a7a-9c5e-1f2e3d4c5b6a"


def example1(profile: str = "6.18", **overrides: object) -> Simulation:
    """docs/abi.md example 1: node 0 with 16 GiB and CPUs 0-1, CXL region0 (16 GiB) for node 1,
    memmap_on_memory=Y; the CXL device dax0.0 binds to kmem at boot (blocks offline)."""
    region = CxlRegionConfig(0x1050000000, 16 * GiB, target_node=1)
    return Simulation(example_config(cxl_regions=[region], kernel_profile=profile, **overrides))


def seq(sim: Simulation, mark: int) -> list[tuple[str, str, str, dict[str, str]]]:
    """(action, devpath, subsystem, device variables) of every event after ``mark``."""
    return [(e.action, e.devpath, e.subsystem, dict(e.env)) for e in sim.events(mark)]


def blocks(action: str, ids: range | list[int]) -> list[tuple[str, str, str, dict[str, str]]]:
    return [(action, f"{MEM}/memory{b}", "memory", {}) for b in ids]


def dax0(action: str, driver: str | None = None, modalias: bool = True) -> tuple[str, str, str, dict[str, str]]:
    env = {"MAJOR": "252", "MINOR": "0", "DEVNAME": "dax0.0"}
    if driver:
        env["DRIVER"] = driver
    if modalias:
        env["MODALIAS"] = "dax:t0"
    return (action, DAX0, "dax", env)


def assert_kernel_properties(events: list[Uevent]) -> None:
    """R-SYS-09: ACTION, DEVPATH, SUBSYSTEM first, SEQNUM last and rising by one."""
    for before, after in itertools.pairwise(events):
        assert after.seqnum == before.seqnum + 1
    for e in events:
        props = list(e.properties().items())
        assert props[:3] == [("ACTION", e.action), ("DEVPATH", e.devpath), ("SUBSYSTEM", e.subsystem)]
        assert props[-1] == ("SEQNUM", str(e.seqnum))
        assert e.devpath.startswith(("/devices/", "/bus/", "/module/"))


# -- exact sequences -----------------------------------------------------------------------------
def test_onlining_and_offlining_emit_online_and_offline_plus_tier_events_around_the_first_and_last() -> None:
    sim = example1()
    mark = sim.kernel.events.seqnum
    sim.echo(f"{MEM}/memory522/state", "online_movable")
    sim.echo(f"{MEM}/memory523/online", "1")
    sim.echo(f"{MEM}/memory523/state", "offline")
    sim.echo(f"{MEM}/memory522/online", "0")
    # The kmem memory type puts node 1 in memory_tier22 (abstract distance 2880) when its
    # first memory goes online, before the block's own online event (online_pages()), and
    # takes it out when the last goes offline. No change events (4.8).
    tier = ("/devices/virtual/memory_tiering/memory_tier22", "memory_tiering")
    assert seq(sim, mark) == [
        ("add", *tier, {}), *blocks("online", [522, 523]),
        *blocks("offline", [523]), ("remove", *tier, {}), *blocks("offline", [522]),
    ]
    assert_kernel_properties(sim.events(mark))


def test_failed_online_or_offline_emits_nothing() -> None:
    sim = example1()
    sim.echo(f"{MEM}/memory522/state", "online_movable")
    mark = sim.kernel.events.seqnum
    with raises_errno(errno.EINVAL):
        sim.echo(f"{MEM}/memory522/state", "online")  # R-STATE-02: already online
    sim.echo("/kernel/debug/notifier-error-inject/memory/actions/MEM_GOING_OFFLINE/error", "-16")
    with raises_errno(errno.EBUSY):
        sim.echo(f"{MEM}/memory522/state", "offline")
    assert seq(sim, mark) == []


@pytest.mark.parametrize("profile", ["6.8", "6.18"])
def test_kmem_bind_with_memmap_on_memory_adds_every_block_then_binds(profile: str) -> None:
    sim = example1(profile)
    sim.echo(f"{KMEM}/unbind", "dax0.0")
    mark = sim.kernel.events.seqnum
    assert sim.echo(f"{KMEM}/bind", "dax0.0") == 7
    events = seq(sim, mark)
    node = ("add", NODE1, "node", {})
    # R-ADD-03 (and linux-next's add_memory_resource()): blocks first, then the new node.
    # The engine registers the node first in profile 6.18 (commit 802ba39, "activate node
    # before adding new memory blocks"); open question, see the events report.
    memory = [node, *blocks("add", BLOCKS)] if profile == "6.18" else [*blocks("add", BLOCKS), node]
    assert events == [*memory, dax0("bind", driver="kmem")]  # R-DAXC-01: bind after the adds
    assert all(sim.kernel.blocks[b].altmap for b in BLOCKS)  # the memmap_on_memory path
    assert_kernel_properties(sim.events(mark))


@pytest.mark.parametrize("profile", ["6.8", "6.18"])
def test_kmem_unbind_removes_every_block_and_the_node_then_unbind_without_driver_or_modalias(profile: str) -> None:
    sim = example1(profile)
    mark = sim.kernel.events.seqnum
    sim.echo(f"{KMEM}/unbind", "dax0.0")
    # dev_dax_kmem_remove() -> remove_memory() (ascending) -> try_offline_node(), then
    # __device_release_driver() sends KOBJ_UNBIND; kobject_uevent_env() zaps MODALIAS.
    assert seq(sim, mark) == [*blocks("remove", BLOCKS), ("remove", NODE1, "node", {}),
                             dax0("unbind", modalias=False)]


@pytest.mark.parametrize("profile", ["6.8", "6.18"])
def test_failed_chunked_add_announces_the_chunks_it_made_then_removes_them_ascending(profile: str) -> None:
    sim = example1(profile)
    sim.echo(f"{KMEM}/unbind", "dax0.0")
    sim.kernel.faults.memmap_fail_at_chunk = 5  # the sixth chunk, memory527 (docs/abi.md example 4)
    mark = sim.kernel.events.seqnum
    with raises_errno(errno.ENOMEM):
        sim.echo(f"{KMEM}/bind", "dax0.0")
    made = range(522, 527)
    if profile == "6.18":  # see test_kmem_bind_...: the engine's 6.18 node-first order
        expected = [("add", NODE1, "node", {}), *blocks("add", made), *blocks("remove", made),
                    ("remove", NODE1, "node", {})]
    else:  # example 4: no node events at all, the node never came online
        expected = [*blocks("add", made), *blocks("remove", made)]
    assert seq(sim, mark) == expected
    assert not any(b in sim.kernel.blocks for b in BLOCKS)
    assert_kernel_properties(sim.events(mark))


def test_auto_online_add_emits_adds_then_onlines_ascending() -> None:
    sim = example1("6.8")
    sim.echo(f"{KMEM}/unbind", "dax0.0")
    sim.echo(f"{MEM}/auto_online_blocks", "online_movable")
    mark = sim.kernel.events.seqnum
    sim.echo(f"{KMEM}/bind", "dax0.0")
    tier = ("add", "/devices/virtual/memory_tiering/memory_tier22", "memory_tiering", {})
    assert seq(sim, mark) == [*blocks("add", BLOCKS), ("add", NODE1, "node", {}), tier,
                             *blocks("online", BLOCKS), dax0("bind", driver="kmem")]


def test_dax_create_and_delete_emit_add_and_remove_with_the_device_variables() -> None:
    sim = example1()
    sim.echo(f"{KMEM}/unbind", "dax0.0")
    sim.echo(f"{DAX0}/size", "0")
    mark = sim.kernel.events.seqnum
    sim.echo(f"{REGION}/dax_region/create", "1")
    sim.echo(f"{REGION}/dax_region/delete", "dax0.1")
    # A new seed has size 0: the autoprobe bind fails (ENXIO), so no bind event.
    env = {"MAJOR": "252", "MINOR": "1", "DEVNAME": "dax0.1", "MODALIAS": "dax:t0"}
    assert seq(sim, mark) == [("add", f"{REGION}/dax0.1", "dax", env), ("remove", f"{REGION}/dax0.1", "dax", env)]
    assert sim.tree.cat(f"{DAX0}/uevent") == "MAJOR=252\nMINOR=0\nDEVNAME=dax0.0\nMODALIAS=dax:t0\n"


def test_mappings_have_no_bus_and_send_no_events() -> None:
    sim = example1()
    mark = sim.kernel.events.seqnum
    assert sim.echo(f"{DAX0}/mapping0/uevent", "change") == 7
    assert seq(sim, mark) == []


# -- uevent writes -----------------------------------------------------------------------------
def _uevent_files(t: Tree) -> list[tuple[str, str]]:
    """What ``udevadm trigger`` (--type=devices) writes to: /sys/bus/*/devices/* (resolved)."""
    found = []
    for bus in t.readdir("/bus"):
        for name in t.readdir(f"/bus/{bus}/devices"):
            link = f"/bus/{bus}/devices/{name}"
            target = os.path.normpath(os.path.join(f"/bus/{bus}/devices", t.readlink(link)))
            found.append((bus, target))
    return found


def test_every_bus_device_uevent_file_takes_change_and_emits_it_with_its_variables() -> None:
    sim = example1()
    devices = _uevent_files(sim.tree)
    assert {bus for bus, _ in devices} >= {"memory", "node", "cpu", "dax"}
    for bus, devpath in devices:
        mark = sim.kernel.events.seqnum
        assert sim.echo(f"{devpath}/uevent", "change") == 7, devpath
        (event,) = sim.events(mark)
        variables = [tuple(line.split("=", 1)) for line in sim.tree.cat(f"{devpath}/uevent").splitlines()]
        # kobject_uevent_env(): the caller's SYNTH_UUID before the device's own variables.
        assert (event.action, event.devpath, event.subsystem) == ("change", devpath, bus)
        assert list(event.env) == [("SYNTH_UUID", "0"), *variables]


def test_every_bus_uevent_file_emits_a_bus_event_and_subsystem_roots_emit_nothing() -> None:
    sim = example1()
    for bus in sim.tree.readdir("/bus"):
        mark = sim.kernel.events.seqnum
        assert sim.echo(f"/bus/{bus}/uevent", "add") == 4
        assert seq(sim, mark) == [("add", f"/bus/{bus}", "bus", {"SYNTH_UUID": "0"})]
    for root in (MEM, "/devices/system/node", "/devices/system/cpu"):
        mark = sim.kernel.events.seqnum
        assert sim.echo(f"{root}/uevent", "change") == 7  # no bus, no class: filtered, success
        assert seq(sim, mark) == []


@pytest.mark.parametrize(("data", "expected"), [
    (b"change\n", ("change", [("SYNTH_UUID", "0")])),
    (b"change", ("change", [("SYNTH_UUID", "0")])),
    (b"add\0", ("add", [("SYNTH_UUID", "0")])),
    (b"online\n", ("online", [("SYNTH_UUID", "0")])),
    (f"add {UUID}".encode(), ("add", [("SYNTH_UUID", UUID)])),
    (f"add {UUID}\n".encode(), ("add", [("SYNTH_UUID", UUID)])),
    (f"add {UUID.upper()} A=1 B=x\n".encode(), ("add", [("SYNTH_UUID", UUID.upper()), ("SYNTH_ARG_A", "1"),
                                                         ("SYNTH_ARG_B", "x")])),
    (f"bind {UUID} K9=v9\0".encode(), ("bind", [("SYNTH_UUID", UUID), ("SYNTH_ARG_K9", "v9")])),
])
def test_synthetic_uevent_write_is_parsed_like_kobject_synth_uevent(data: bytes, expected: tuple) -> None:
    text = data.split(b"\0", 1)[0].decode("latin-1")
    action, env = kobject_synth_uevent(text, len(data))
    assert (action, list(env)) == (expected[0], expected[1])


@pytest.mark.parametrize("data", [
    b"\n", b"frobnicate", b"changed", b"Change", b" change", b"change\n\n", b"add\n\0", b"add\0x",
    b"add ", b"add \n", b"add not-a-uuid", f"add {UUID[:-1]}".encode(), f"add {UUID}A=1".encode(),
    f"add {UUID} A-B=1".encode(), f"add {UUID} A=1-2".encode(), f"add {UUID}  A=1".encode(),
    f"add {UUID} A=1 ".encode(), f"add {UUID} A=".encode(), f"add {UUID} =1".encode(),
    f"add {UUID} A".encode(), f"add {UUID}\0 A=1".encode(),
])
def test_synthetic_uevent_write_rejects_what_the_kernel_rejects(data: bytes) -> None:
    sim = example1()
    mark = sim.kernel.events.seqnum
    with raises_errno(errno.EINVAL):
        sim.tree.write(sim.tree.open(f"{MEM}/memory522/uevent", os.O_WRONLY), data)
    assert seq(sim, mark) == []


def test_synthetic_unbind_drops_modalias_like_any_unbind_event() -> None:
    sim = example1()
    mark = sim.kernel.events.seqnum
    sim.echo(f"{DAX0}/uevent", "unbind")
    assert seq(sim, mark) == [("unbind", DAX0, "dax", {"SYNTH_UUID": "0", "MAJOR": "252", "MINOR": "0",
                                                       "DEVNAME": "dax0.0", "DRIVER": "kmem"})]


# -- the Python API ------------------------------------------------------------------------------
def test_watch_waits_for_events_matching_fields_properties_or_predicates() -> None:
    sim = example1()
    with sim.kernel.events.watch() as watch:
        sim.echo(f"{KMEM}/unbind", "dax0.0")
        sim.echo(f"{KMEM}/bind", "dax0.0")
        removed = watch.wait_for(action="remove", subsystem="node")
        bound = watch.wait_for(action="bind", DRIVER="kmem", timeout=1)
        assert removed.seqnum < bound.seqnum and bound.devpath == DAX0
    assert len(watch.events) == 2 * 128 + 4


def test_wait_for_walks_forward_and_times_out_with_what_it_saw() -> None:
    sim = example1()
    with sim.kernel.events.watch() as watch:
        sim.echo(f"{MEM}/memory522/uevent", "change")
        assert watch.wait_for(action="change").devpath == f"{MEM}/memory522"
        with pytest.raises(TimeoutError, match="memory522"):
            watch.wait_for(action="change", timeout=0.05)  # already consumed: nothing new


def test_wait_for_blocks_until_another_thread_emits() -> None:
    log = EventLog()
    threading.Timer(0.05, lambda: log.emit("online", f"{MEM}/memory7", "memory")).start()
    event = log.wait_for(match(action="online", devpath=lambda p: p.endswith("7")), timeout=5)
    assert event is not None and event.seqnum == 1
    assert log.wait_for(action="offline", after=1, timeout=0.05) is None


def test_wait_for_all_accepts_any_order() -> None:
    sim = example1()
    with sim.kernel.events.watch() as watch:
        sim.echo(f"{KMEM}/unbind", "dax0.0")
        unbind, last = watch.wait_for_all(match(action="unbind"), match(devpath=f"{MEM}/memory649"))
    assert last.seqnum < unbind.seqnum


def test_subscribe_after_replays_then_streams_each_event_exactly_once() -> None:
    log = EventLog()
    for i in range(5):
        log.emit("add", f"{MEM}/memory{i}", "memory")
    seen: list[int] = []
    stop = log.subscribe(lambda e: seen.append(e.seqnum), after=2)
    log.emit("add", f"{MEM}/memory9", "memory")
    stop()
    log.emit("add", f"{MEM}/memory10", "memory")
    assert seen == [3, 4, 5, 6]


def test_a_failing_listener_is_dropped_and_never_fails_the_kernel_operation() -> None:
    sim = example1()

    def broken(_event: Uevent) -> None:
        raise RuntimeError("consumer bug")

    sim.kernel.events.subscribe(broken)
    sim.echo(f"{MEM}/memory522/state", "online")
    sim.echo(f"{MEM}/memory522/state", "offline")
    assert sim.tree.cat(f"{MEM}/memory522/state") == "offline\n"
    assert len(sim.kernel.events.listener_errors) == 1


# -- the control socket ---------------------------------------------------------------------------
@pytest.fixture
def served(tmp_path: Path):
    sim = example1()
    with serving(sim.kernel, str(tmp_path), tree=sim.tree) as server:
        yield sim, server


def _reader(client: ControlClient, out: list[Uevent], errors: list[Exception]) -> threading.Thread:
    def run() -> None:
        try:
            out.extend(client.events())
        except ControlError as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _until(cond, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_control_file_is_root_only_and_names_the_socket(served) -> None:
    sim, server = served
    assert sim.tree.cat("/kernel/debug/fakesysfs/control") == server.path + "\n"
    assert sim.tree.getattr("/kernel/debug/fakesysfs/control").mode & 0o777 == 0o400
    assert os.stat(os.path.dirname(server.path)).st_mode & 0o777 == 0o700


def test_control_file_is_absent_without_a_server() -> None:
    sim = example1()
    assert not sim.exists("/kernel/debug/fakesysfs/control")


def test_subscribe_streams_events_from_attaching_in_kernel_order(served) -> None:
    sim, server = served
    sim.echo(f"{MEM}/memory522/uevent", "change")  # before attaching: not seen
    client = ControlClient(server.path)
    reply = client.subscribe()
    assert reply["ok"] and reply["seqnum"] == sim.kernel.events.seqnum
    got: list[Uevent] = []
    _reader(client, got, [])
    sim.echo(f"{KMEM}/unbind", "dax0.0")
    _until(lambda: len(got) == 130)
    assert got == sim.kernel.events.since(reply["seqnum"])
    assert list(got[-1].properties()) == ["ACTION", "DEVPATH", "SUBSYSTEM", "MAJOR", "MINOR", "DEVNAME", "SEQNUM"]
    client.close()


def test_subscribe_after_replays_the_kept_events_and_filters_subsystems(served) -> None:
    sim, server = served
    mark = sim.kernel.events.seqnum
    sim.echo(f"{KMEM}/unbind", "dax0.0")
    client = ControlClient(server.path)
    client.subscribe(after=mark, subsystems=["dax", "node"])
    got: list[Uevent] = []
    _reader(client, got, [])
    sim.echo(f"{KMEM}/bind", "dax0.0")
    _until(lambda: len(got) == 4)
    assert [(e.action, e.subsystem) for e in got] == [("remove", "node"), ("unbind", "dax"), ("add", "node"),
                                                     ("bind", "dax")]
    client.close()


def test_ping_unknown_ops_and_malformed_lines_get_replies_and_the_connection_lives_on(served) -> None:
    sim, server = served
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(server.path)
        f = s.makefile("rwb")
        for line in (b"not json\n", b"[1]\n", b'{"op": "frobnicate", "id": 7}\n', b'{"op": "ping"}\n',
                     b'{"op": "subscribe", "after": -1}\n'):
            f.write(line)
            f.flush()
        replies = [json.loads(f.readline()) for _ in range(5)]
    assert [r["ok"] for r in replies] == [False, False, False, True, False]
    assert replies[2]["id"] == 7 and "unknown op 'frobnicate'" in replies[2]["error"]
    assert replies[3] == {"ok": True, "op": "ping", "version": 1, "seqnum": sim.kernel.events.seqnum}


def test_registered_ops_answer_and_kernel_errors_carry_the_errno_name(served) -> None:
    sim, server = served

    def online(request: dict) -> dict:
        with sim.kernel.lock:
            sim.echo(f"{MEM}/memory{request['block']}/state", "online")
        return {"state": "online"}

    server.register("online", online)
    with ControlClient(server.path) as client:
        assert client.request("online", block=522)["state"] == "online"
        with pytest.raises(ControlError) as info:
            client.request("online", block=522)
        assert info.value.errno == "EINVAL"


def test_a_slow_subscriber_is_dropped_with_a_message_and_never_stalls_hotplug(tmp_path: Path) -> None:
    sim = example1()
    server = ControlServer(sim.kernel, str(tmp_path), max_queue=50)
    server.start()
    try:
        client = ControlClient(server.path)
        client.subscribe()
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        started = time.monotonic()
        for _ in range(3):  # 3 x 260 events while the client reads nothing
            sim.echo(f"{KMEM}/unbind", "dax0.0")
            sim.echo(f"{KMEM}/bind", "dax0.0")
        assert time.monotonic() - started < 5
        got: list[Uevent] = []
        errors: list[Exception] = []
        _reader(client, got, errors).join(10)
        client.close()
        assert errors and errors[0].errno == "ENOBUFS"
        last = errors[0].reply["last_seqnum"]
        assert "client too slow" in str(errors[0]) and f"after={last}" in str(errors[0])
        assert got and got[-1].seqnum <= last
    finally:
        server.close()


def test_closing_the_server_ends_every_stream_and_removes_the_socket(tmp_path: Path) -> None:
    sim = example1()
    server = ControlServer(sim.kernel, str(tmp_path))
    server.start()
    client = ControlClient(server.path)
    client.subscribe()
    got: list[Uevent] = []
    thread = _reader(client, got, [])
    server.close()
    thread.join(5)
    client.close()
    assert not thread.is_alive()
    assert not os.path.exists(server.path) and os.listdir(tmp_path) == []
    with pytest.raises(ControlError, match="mount is gone"):
        ControlClient(server.path)


def test_find_control_socket_explains_a_tree_without_one(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match="not a fakesysfs mount"):
        find_control_socket(tmp_path)


def test_stale_socket_directories_of_dead_daemons_are_removed(tmp_path: Path) -> None:
    """``<pid>-<random>`` of a pid that is gone, ours and 0700, is removed without following
    the links in it; a loose one (not 0700) is not ours to judge."""
    dead = tmp_path / "999999999-0123456789ab"
    dead.mkdir(mode=0o700)
    (dead / "control").touch()
    keep = tmp_path.parent / f"{tmp_path.name}-keep"
    keep.mkdir()
    (keep / "file").write_text("x")
    (dead / "link").symlink_to(keep)
    loose = tmp_path / "999999998-0123456789ab"
    loose.mkdir(mode=0o700)
    loose.chmod(0o755)
    sim = example1()
    with serving(sim.kernel, str(tmp_path)):
        assert not dead.exists()
        assert loose.exists() and (keep / "file").read_text() == "x"
