"""Crashes (issue 8): the mount daemon killed with SIGKILL at random moments of a stream of
stores (kmem binds slowed down to ~0.4 s each, so most kills land inside one), then
remounted from its state file (``fakesysfs mount --state FILE``).

After every crash point:
- the state file holds exactly the acknowledged stores, in order, with their errnos, plus at
  most the one store that was in flight (applied and journaled, but its answer lost);
- the next ``fakesysfs mount`` on the mountpoint clears the dead daemon's mount
  ("Transport endpoint is not connected") with a message, and serves the journaled state;
- that state is the one a fresh kernel reaches by applying those stores (every store giving
  the recorded errno), the engine invariants hold on it, and the mount shows it.

Also: a stale mount is cleared by the next ``fakesysfs mount`` (and left alone when it is not
a fakesysfs mount). ``FAKESYSFS_FUZZ=long`` runs many more crash points.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ENV, fakesysfs
from stress import LONG, default_kernel, report

from fakesysfs.control import ControlClient
from fakesysfs.errors import KernelError
from fakesysfs.journal import read_state
from fakesysfs.testing.invariants import check_all

pytestmark = pytest.mark.fuse

WORKER = Path(__file__).with_name("stress_worker.py")
CRASH_POINTS = 60 if LONG else 6
#: Seconds each memory block add takes while the stream runs: a 128-block bind then takes
#: ~0.4 s, so a kill often lands in the middle of one (the knob is not state: a restarted
#: daemon runs at full speed).
ADD_DELAY = 0.003
STALE_MESSAGE = "left mounted by a fakesysfs daemon that died (Transport endpoint is not connected)"


def mount(mnt: Path, *extra: str) -> tuple[int, str]:
    """``fakesysfs mount``; returns the daemon's pid and the command's stderr."""
    done = fakesysfs("mount", str(mnt), *extra)
    assert done.returncode == 0, done.stderr
    pid = re.search(r"\(pid (\d+)\)", done.stdout)
    assert pid, done.stdout
    return int(pid.group(1)), done.stderr


def dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def kill9(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not dead(pid):
        assert time.monotonic() < deadline, f"daemon {pid} survived SIGKILL"
        time.sleep(0.01)


@pytest.fixture
def mountpoint() -> Iterator[Path]:
    from conftest import make_mountpoint, unmount

    mnt = make_mountpoint()
    yield mnt
    for _ in range(3):
        if not unmount(mnt) and not unmount(mnt, lazy=True):
            break
    with contextlib.suppress(OSError):
        mnt.rmdir()


def model_of(stores: list[dict]):
    """A fresh default kernel after ``stores``, each of which must end with its recorded
    errno (the engine is deterministic)."""
    k, tree = default_kernel()
    for n, rec in enumerate(stores, 1):
        got = 0
        try:
            fh = tree.open(rec["path"], os.O_WRONLY)
            tree.write(fh, rec["data"].encode("latin-1"))
        except KernelError as exc:
            got = exc.errno
        assert got == rec["errno"], f"store {n} {rec}: {errno.errorcode.get(got, got)} in a fresh kernel"
    return k, tree


def view(read, listdir, readlink) -> dict:
    """What a client sees of the parts the stream changes."""
    mem = "devices/system/memory"
    blocks = sorted(n for n in listdir(mem) if re.fullmatch(r"memory\d+", n))
    out: dict = {"blocks": {b: read(f"{mem}/{b}/state") for b in blocks}}
    for b in blocks:
        if out["blocks"][b] == "online\n":
            out["blocks"][b] += read(f"{mem}/{b}/valid_zones")
    nodes = sorted(n for n in listdir("devices/system/node") if re.fullmatch(r"node\d+", n))
    out["meminfo"] = {n: read(f"devices/system/node/{n}/meminfo").splitlines()[:3] for n in nodes}
    out["drivers"] = {}
    for dev in sorted(listdir("bus/dax/devices")):
        try:
            out["drivers"][dev] = readlink(f"bus/dax/devices/{dev}/driver").rsplit("/", 1)[1]
        except FileNotFoundError:
            out["drivers"][dev] = None
    out["seqnum"] = read("kernel/uevent_seqnum")
    return out


def mount_view(mnt: Path) -> dict:
    return view(lambda p: (mnt / p).read_text(), lambda p: os.listdir(mnt / p), lambda p: os.readlink(mnt / p))


def tree_view(tree) -> dict:
    from test_concurrency import TreeWorker

    w = TreeWorker(tree, 0)

    def readlink(p: str) -> str:
        try:
            return w.raw_readlink(p)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise FileNotFoundError(p) from None
            raise

    return view(lambda p: tree.cat(w.real(p, follow_last=True)), w.raw_listdir, readlink)


def test_kill_9_during_a_stream_of_stores_loses_no_acknowledged_write(mountpoint: Path, tmp_path: Path) -> None:
    state = tmp_path / "state.journal"
    rng = random.Random(8)
    pid, _ = mount(mountpoint, "--state", str(state))
    counts = {"crash_points": 0, "in_flight_lost": 0, "in_flight_journaled": 0, "inside_bind_or_unbind": 0,
              "acknowledged_stores": 0}
    all_acks: list[dict] = []
    try:
        for point in range(CRASH_POINTS):
            with ControlClient.for_mount(mountpoint) as ctl:
                ctl.request("add_block_delay", seconds=ADD_DELAY)
            acks_file = tmp_path / f"acks-{point}.jsonl"
            writer = subprocess.Popen([sys.executable, str(WORKER), str(mountpoint), "stream", str(point), "100000",
                                       str(acks_file)], env=ENV, stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 10  # the first store, then a random moment
            while not (acks_file.exists() and acks_file.stat().st_size) and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.6))
            kill9(pid)
            counts["crash_points"] += 1
            _, err = writer.communicate(timeout=30)
            assert writer.returncode == 0, err
            lines = [json.loads(line) for line in acks_file.read_text().splitlines()]
            in_flight = lines.pop() if lines and lines[-1].get("unacked") else None
            all_acks += lines
            counts["acknowledged_stores"] += len(lines)

            # The journal: every acknowledged store, in order, with its errno; at most the
            # store in flight on top.
            stores = [{k: r[k] for k in ("path", "data", "errno")} for r in read_state(state).records
                      if r["t"] == "store"]
            assert stores[: len(all_acks)] == all_acks, f"crash point {point}: acknowledged stores missing"
            extra = stores[len(all_acks):]
            assert len(extra) <= 1, f"crash point {point}: {len(extra)} stores nobody acknowledged"
            if extra:
                assert in_flight is not None and (extra[0]["path"], extra[0]["data"]) == (
                    in_flight["path"], in_flight["data"]), (extra, in_flight)
                all_acks.append(extra[0])  # journaled: part of the history from now on
                counts["in_flight_journaled"] += 1
            elif in_flight is not None:
                counts["in_flight_lost"] += 1
            if in_flight is not None and re.search(r"kmem/(un)?bind$", in_flight["path"]):
                counts["inside_bind_or_unbind"] += 1

            # Remount: the dead daemon's mount is cleared, the journal replayed.
            pid, err = mount(mountpoint, "--state", str(state))
            assert STALE_MESSAGE in err, err
            k, tree = model_of(stores)
            check_all(k, tree)
            assert mount_view(mountpoint) == tree_view(tree), f"crash point {point}: the mount differs from the model"
    finally:
        kill9(pid)
    report("crash", **counts)
    assert counts["acknowledged_stores"] > CRASH_POINTS


def test_the_next_mount_clears_a_stale_mount_with_a_message(mountpoint: Path) -> None:
    pid, _ = mount(mountpoint)
    kill9(pid)
    with pytest.raises(OSError) as exc:
        os.stat(mountpoint)
    assert exc.value.errno in (errno.ENOTCONN, errno.ECONNABORTED)  # the latter while being torn down
    pid, err = mount(mountpoint)
    try:
        assert STALE_MESSAGE in err and str(mountpoint) in err, err
        assert (mountpoint / "devices/system/memory/block_size_bytes").read_text() == "8000000\n"
    finally:
        kill9(pid)
    # status and umount say what happened and clear it too
    done = fakesysfs("status", str(mountpoint))
    assert done.returncode == 1 and "daemon is gone" in done.stderr
    done = fakesysfs("umount", str(mountpoint))
    assert done.returncode == 0, done.stderr
    assert not os.path.ismount(mountpoint)


def test_a_dead_mount_is_recognised_while_its_attributes_are_cached(mountpoint: Path) -> None:
    """The kernel keeps a fakesysfs mount's attributes for an hour: after the daemon dies,
    stat still answers from that cache; status, umount and the next mount see it dead."""
    pid, _ = mount(mountpoint)
    os.stat(mountpoint)  # cache the root's attributes
    kill9(pid)
    assert os.stat(mountpoint).st_ino == 1  # answered from the cache: looks alive
    done = fakesysfs("status", str(mountpoint))
    assert done.returncode == 1 and "daemon is gone" in done.stderr, done.stderr
    pid, err = mount(mountpoint)
    try:
        assert STALE_MESSAGE in err, err
        assert (mountpoint / "devices/system/memory/block_size_bytes").read_text() == "8000000\n"
        os.stat(mountpoint)
    finally:
        kill9(pid)
    done = fakesysfs("umount", str(mountpoint))
    assert done.returncode == 0, done.stderr
    assert not os.path.ismount(mountpoint)


def test_a_stale_mount_that_is_not_fakesysfs_is_left_alone(mountpoint: Path) -> None:
    """Only fakesysfs mounts are cleared: a dead FUSE mount of another filesystem is named."""
    script = (
        "import sys\n"
        "from fakesysfs import _fuse\n"
        "from fakesysfs.fuse_adapter import TreeOperations, _DispatchingOperations, fuse_options\n"
        "from fakesysfs.sysfs.tree import Attr, StaticDir, Tree\n"
        "cls = _DispatchingOperations if _fuse.CALLABLE_OPERATIONS else TreeOperations\n"
        "ops = cls(Tree(StaticDir({'x': Attr(0o444, lambda: 'x')})), os_error=_fuse.FuseOSError)\n"
        "options = fuse_options(libfuse3=_fuse.LIBFUSE3)\n"
        "options.update(fsname='other', subtype='otherfs')\n"
        "_fuse.FUSE(ops, sys.argv[1], **options)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(mountpoint)], env=ENV)
    try:
        deadline = time.monotonic() + 10
        while not os.path.ismount(mountpoint):
            assert time.monotonic() < deadline and proc.poll() is None, "the other filesystem did not mount"
            time.sleep(0.01)
    finally:
        kill9(proc.pid)
        proc.wait()
    done = fakesysfs("mount", str(mountpoint))
    assert done.returncode == 1
    assert "whose daemon is gone" in done.stderr and "not a fakesysfs one" in done.stderr, done.stderr
    assert "fuse.otherfs" in done.stderr


def test_a_stale_mount_reached_through_a_symlink_is_cleared(mountpoint: Path, tmp_path: Path) -> None:
    link = tmp_path / "via-link"
    link.symlink_to(mountpoint.parent)
    through = link / mountpoint.name
    pid, _ = mount(mountpoint)
    kill9(pid)
    pid, err = mount(through)
    try:
        assert STALE_MESSAGE in err, err
        assert (mountpoint / "devices/system/memory/block_size_bytes").read_text() == "8000000\n"
    finally:
        kill9(pid)
