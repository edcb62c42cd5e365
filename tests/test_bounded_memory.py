"""Bounded memory (issue 16, item 9): a mount daemon's RSS stays flat whatever its clients do.

Measured on a real ``fakesysfs mount`` daemon with psutil:

- 100,000 refused writes of 4 KiB (junk to ``memoryN/state``: EINVAL) grow it by less than
  64 MiB (they grew it by ~830 MiB when every store was kept in memory); ~15 s;
- a 300 MiB request line to the control socket is refused (EMSGSIZE) and closed without
  the daemon buffering it; 2,000 connections at once are served by at most
  ``MAX_CONNECTIONS`` threads, the rest refused with EAGAIN; ~5 s;
- the history (export) and the trace rings keep their promises: export after the history
  left memory is exact, and a waiter whose stores left the ring is told (no silent loss).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import resource
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from conftest import fakesysfs, make_mountpoint, unmount

from fakesysfs import Simulation
from fakesysfs.control import MAX_CONNECTIONS, MAX_LINE, find_control_socket
from fakesysfs.engine.events import EventLog, EventsLost
from fakesysfs.errors import KernelError
from fakesysfs.harness import StoreTrace, TraceGap

MEM = "devices/system/memory"
MIB = 1 << 20


@pytest.fixture
def daemon() -> Iterator[tuple[Path, psutil.Process]]:
    """A ``fakesysfs mount`` daemon (no --state) and its process."""
    mnt = make_mountpoint()
    done = fakesysfs("mount", str(mnt))
    assert done.returncode == 0, done.stderr
    pid = re.search(r"\(pid (\d+)\)", done.stdout)
    assert pid, done.stdout
    proc = psutil.Process(int(pid.group(1)))
    try:
        yield mnt, proc
    finally:
        if not unmount(mnt):
            unmount(mnt, lazy=True)
        with contextlib.suppress(psutil.Error):
            proc.wait(10)
        with contextlib.suppress(OSError):
            mnt.rmdir()


def rss(proc: psutil.Process) -> int:
    return int(proc.memory_info().rss)


@pytest.mark.fuse
def test_100000_refused_4k_writes_keep_the_daemon_flat(daemon) -> None:
    mnt, proc = daemon
    path = mnt / MEM / "memory0/state"
    junk = b"x" * 4096
    fd = os.open(path, os.O_WRONLY)
    try:
        with pytest.raises(OSError) as info:
            os.write(fd, junk)
        assert info.value.errno == errno.EINVAL
        before = rss(proc)
        for _ in range(100_000):
            try:
                os.write(fd, junk)
            except OSError as exc:
                assert exc.errno == errno.EINVAL
    finally:
        os.close(fd)
    grown = rss(proc) - before
    print(f"daemon RSS grew {grown / MIB:.1f} MiB over 100,000 refused 4 KiB writes")
    assert grown < 64 * MIB
    assert path.read_text() == "online\n"


def control_path(mnt: Path) -> str:
    return find_control_socket(mnt)


def connect(path: str) -> socket.socket:
    """A connection (a blocking connect waits while the daemon's listen backlog is full)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    sock.settimeout(10)
    return sock


def read_line(sock: socket.socket) -> dict:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return json.loads(data)


@pytest.mark.fuse
def test_a_300_mib_request_line_is_refused_without_buffering_it(daemon) -> None:
    mnt, proc = daemon
    path = control_path(mnt)
    with connect(path) as warm:  # the first connection's thread and buffers
        warm.sendall(b'{"op": "ping"}\n')
        assert read_line(warm)["ok"]
    before = rss(proc)
    sock = connect(path)
    sent = 0

    def flood() -> None:
        nonlocal sent
        chunk = b"x" * MIB
        with contextlib.suppress(OSError):
            for _ in range(300):
                sock.sendall(chunk)
                sent += len(chunk)

    sender = threading.Thread(target=flood, daemon=True)
    sender.start()
    reply = read_line(sock)
    sender.join(30)
    sock.close()
    assert reply["ok"] is False and reply["errno"] == "EMSGSIZE", reply
    assert sent < 300 * MIB, "the daemon kept reading the line"
    grown = rss(proc) - before
    print(f"daemon RSS grew {grown / MIB:.1f} MiB on a 300 MiB line ({sent / MIB:.0f} MiB sent before it closed)")
    assert grown < 4 * MIB
    with connect(path) as again:  # it still serves
        again.sendall(b'{"op": "ping"}\n')
        assert read_line(again)["ok"]
    assert MAX_LINE == 64 << 10


@pytest.mark.fuse
def test_2000_connections_do_not_make_2000_threads(daemon) -> None:
    mnt, proc = daemon
    path = control_path(mnt)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    socks: list[socket.socket] = []
    try:
        threads_before = proc.num_threads()
        refused = 0
        for _ in range(2000):
            socks.append(connect(path))
        time.sleep(0.5)
        threads = proc.num_threads()
        waiting = list(socks)
        deadline = time.monotonic() + 10
        while len(waiting) > MAX_CONNECTIONS and time.monotonic() < deadline:
            still = []
            for sock in waiting:
                sock.setblocking(False)
                try:
                    line = sock.recv(4096)
                except BlockingIOError:
                    still.append(sock)  # accepted and served (or not yet accepted)
                    continue
                assert not line or json.loads(line)["errno"] == "EAGAIN", line
                refused += 1
            waiting = still
            time.sleep(0.05)
        print(f"{len(socks)} connections: daemon threads {threads_before} -> {threads}, {refused} refused")
        assert threads <= threads_before + MAX_CONNECTIONS
        assert refused >= len(socks) - MAX_CONNECTIONS
    finally:
        for sock in socks:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    deadline = time.monotonic() + 10
    while True:  # the slots come back once the connections are gone
        with connect(path) as sock:
            sock.sendall(b'{"op": "ping"}\n')
            if read_line(sock)["ok"] or time.monotonic() > deadline:
                break
        time.sleep(0.1)


# -- the rings and the history, in process -------------------------------------------------------
def test_the_store_trace_is_a_ring_of_bytes_and_a_late_waiter_is_told() -> None:
    trace = StoreTrace(max_bytes=64 << 10)
    for _ in range(100):
        trace.append("/x", b"y" * 4096, errno.EINVAL)
    kept = trace.since(0)
    assert 0 < len(kept) <= 16 and kept[-1].seq == 100 and trace.missed(0) == 100 - len(kept)
    with pytest.raises(TraceGap, match=r"stores #1\.\.#\d+ are no longer in the trace"):
        trace.wait_for(after=0, timeout=0)
    assert trace.wait_for(after=kept[0].seq - 1, timeout=0) == kept[0]
    trace.clear()  # deliberately cleared is not lost
    assert trace.wait_for(after=100, timeout=0) is None


def test_the_event_log_is_a_ring_and_a_late_waiter_is_told() -> None:
    events = EventLog(maxlen=8)
    for i in range(20):
        events.emit("change", f"/devices/x{i}", "memory")
    assert [e.seqnum for e in events.since(0)] == list(range(13, 21))
    with pytest.raises(EventsLost, match=r"uevents 1\.\.12 are no longer kept"):
        events.wait_for(after=0, timeout=0)
    assert events.wait_for(after=12, timeout=0).seqnum == 13


def test_kmsg_keeps_the_latest_128_kib() -> None:
    with Simulation() as sim:
        for i in range(10_000):
            sim.kernel.printk(f"message {i:05d} " + "x" * 100)
        kept = sim.kmsg()
        assert kept[-1].startswith("message 09999")
        assert sum(len(line) + 1 for line in kept) <= 128 << 10 < sum(len(line) + 1 for line in kept) + 120


def test_an_export_after_the_history_left_memory_is_exact(tmp_path: Path) -> None:
    with Simulation() as sim:
        sim.harness.history.memory_bytes = 4096  # spill to the temporary file early
        for _ in range(50):
            with pytest.raises(KernelError):  # EINVAL, and still recorded
                sim.echo(f"/{MEM}/memory522/state", "junk" * 100)
            sim.echo(f"/{MEM}/memory522/state", "online_movable")
            sim.echo(f"/{MEM}/memory522/state", "offline")
        sim.echo(f"/{MEM}/memory522/state", "online_movable")
        assert sim.harness.history._spool is not None and not sim.harness.history._lines
        assert sim.export(tmp_path / "snap.state") == len(sim.harness.history) == 151
        expected = sim.snapshot()
    with Simulation(state=tmp_path / "snap.state") as resumed:
        assert resumed.snapshot() == expected
        resumed.echo(f"/{MEM}/memory522/state", "offline")  # journaled: the journal is the history now
        assert len(resumed.harness.history) == 152
        assert resumed.export(tmp_path / "again.state") == 152
        again = resumed.snapshot()
    with Simulation(state=tmp_path / "again.state") as third:
        assert third.snapshot() == again
