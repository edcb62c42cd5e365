"""The engine's tree mounted for real and driven from a shell (issue: the mount)."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import add_kmem, example_config

from fakesysfs import Simulation

pytestmark = pytest.mark.fuse

MEM = "devices/system/memory"
HOST_BLOCK = Path("/sys/devices/system/memory/memory0")


def sh(command: str, cwd: Path, user: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = ["sh", "-c", command]
    if user == "nobody":
        argv = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", *argv]
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=30, check=False)


def write_errno(path: Path, data: bytes) -> int:
    """0 on success, else the errno the writer sees (at open or at write)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    except OSError as exc:
        return exc.errno
    try:
        assert os.write(fd, data) == len(data)
        return 0
    except OSError as exc:
        return exc.errno
    finally:
        os.close(fd)


@pytest.fixture
def mounted() -> Iterator[tuple[Simulation, Path]]:
    with Simulation(example_config()) as sim:
        add_kmem(sim)
        yield sim, sim.mount(allow_other=True)


def test_echo_online_movable_onlines_the_block(mounted):
    sim, mnt = mounted
    done = sh(f"echo online_movable > {MEM}/memory522/state && "
              f"cat {MEM}/memory522/state {MEM}/memory522/valid_zones", mnt)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "online\nMovable\n"
    assert sim.kernel.blocks[522].zone == "Movable"
    assert sh("cat devices/system/node/node1/meminfo", mnt).stdout.startswith("Node 1 MemTotal:         129024 kB\n")


def test_shell_sees_the_kernel_errno_for_bad_writes(mounted):
    _, mnt = mounted
    block = mnt / MEM / "memory522"
    assert write_errno(block / "state", b"bogus\n") == errno.EINVAL
    assert write_errno(block / "state", b"offline\n") == errno.EINVAL  # already offline
    assert write_errno(block / "online", b"maybe\n") == errno.EINVAL
    assert write_errno(mnt / MEM / "memory40/state", b"offline\n") == errno.EBUSY  # boot kernel memory
    assert write_errno(block / "phys_index", b"1\n") == errno.EACCES  # at open, even for root
    assert write_errno(block / "state", b"online_movable\0") == 0
    done = sh(f"bash -c 'echo offline > {MEM}/memory40/state'", mnt)  # dash prints a generic message
    assert done.returncode != 0 and "Device or resource busy" in done.stderr


def test_ls_modes_and_readlink_targets_match_the_kernel(mounted):
    _, mnt = mounted
    listing = sh(f"ls -l {MEM}/memory522", mnt).stdout.splitlines()[1:]
    modes = {line.split()[-1] if "->" not in line else line.split()[-3]: line.split()[0] for line in listing}
    assert modes == {
        "node1": "lrwxrwxrwx", "online": "-rw-r--r--", "phys_device": "-r--r--r--", "phys_index": "-r--r--r--",
        "power": "drwxr-xr-x", "removable": "-r--r--r--", "state": "-rw-r--r--", "subsystem": "lrwxrwxrwx",
        "uevent": "-rw-r--r--", "valid_zones": "-r--r--r--",
    }
    assert all(" root root 4096 " in line for line in listing if line.startswith("-"))
    links = f"{MEM}/memory522/node1 {MEM}/memory522/subsystem devices/system/node/node1/memory522"
    assert sh(f"readlink {links}", mnt).stdout == (
        "../../node/node1\n../../../../bus/memory\n../../memory/memory522\n")
    assert sh("readlink -f devices/system/node/node1/memory522/subsystem", mnt).stdout == f"{mnt}/bus/memory\n"


def test_find_walks_the_tree(mounted):
    _, mnt = mounted
    done = sh(f"find {MEM} -maxdepth 1 -name 'memory52[0-9]' | sort", mnt)
    assert done.stdout.split() == [f"{MEM}/memory{b}" for b in range(522, 530)]
    assert sh("find devices/system/node -name meminfo | sort", mnt).stdout.split() == [
        "devices/system/node/node0/meminfo", "devices/system/node/node1/meminfo"]


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is missing")
def test_non_root_reads_0444_but_not_0600_or_0400_and_cannot_write(mounted):
    sim, mnt = mounted
    assert sh(f"cat {MEM}/memory522/state", mnt, user="nobody").stdout == "offline\n"
    denied = sh("cat kernel/debug/notifier-error-inject/memory/actions/MEM_GOING_ONLINE/error", mnt, user="nobody")
    assert denied.returncode != 0 and "Permission denied" in denied.stderr
    denied = sh(f"echo online > {MEM}/memory522/state", mnt, user="nobody")
    assert denied.returncode != 0 and "Permission denied" in denied.stderr
    assert sim.kernel.blocks[522].zone is None


@pytest.mark.skipif(not HOST_BLOCK.is_dir(), reason="this machine has no memory0 in /sys")
def test_memory_block_directory_matches_a_real_kernel(mounted):
    """Read-only comparison with this machine's /sys/devices/system/memory/memory0."""
    _, mnt = mounted

    def shape(directory: Path) -> dict[str, tuple[int, int]]:
        out = {}
        for name in os.listdir(directory):
            st = os.lstat(directory / name)
            key = "nodeK" if name.startswith("node") and name[4:].isdigit() else name
            out[key] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode) if not stat.S_ISLNK(st.st_mode) else 0)
        return out

    assert shape(mnt / MEM / "memory0") == shape(HOST_BLOCK)
    assert shape(mnt / MEM / "memory522") == shape(HOST_BLOCK)
    assert shape(mnt / MEM / "memory0" / "power") == shape(HOST_BLOCK / "power")


def test_reads_are_never_stale_after_a_change(mounted):
    sim, mnt = mounted
    state = mnt / MEM / "memory523" / "state"
    for _ in range(5):
        assert write_errno(state, b"online_movable\n") == 0
        assert state.read_text() == "online\n"
        assert (mnt / MEM / "memory523" / "valid_zones").read_text() == "Movable\n"
        assert write_errno(state, b"offline\n") == 0
        assert state.read_text() == "offline\n"
    sim.kernel.remove_memory(0x1050000000, 16 << 30)
    assert not (mnt / MEM / "memory523").exists()
    assert not (mnt / "devices/system/node/node1").exists()
