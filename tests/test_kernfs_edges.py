"""The edges of the namespace answer as sysfs does (issue 16), through a real mount.

- chmod/chown/utimes: root may change an attribute's mode, owner and times; the change is
  kept in the node (fs/kernfs/inode.c __kernfs_setattr) while the device lives, so an
  operator's ``chmod 0666 memoryN/state`` or ``chown agent memoryN/state`` lets a non-root
  agent write it; the open-time rule (R-SYS-01, even for root) checks the new mode; a
  non-owner without CAP_FOWNER gets EPERM; a device removed and added again starts over
  with its default mode and owner.
- mkdir, rmdir, rename (kernfs_iop_*: sysfs has no kernfs_syscall_ops: EPERM), unlink,
  symlink, link, mknod of a device or fifo (fs/namei.c vfs_*: no inode operation: EPERM),
  and create (vfs_create/lookup_open: no ->create: EACCES), never ENOSYS.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import make_mountpoint

from fakesysfs import Simulation

pytestmark = pytest.mark.fuse

NOBODY = 65534
BLOCK = 522  # an offline kmem block of the default topology
STATE = f"devices/system/memory/memory{BLOCK}/state"


@pytest.fixture
def mounted() -> Iterator[tuple[Simulation, Path]]:
    with Simulation() as sim:
        yield sim, sim.mount(make_mountpoint(), allow_other=True)


def state(sim: Simulation) -> str:
    return next(b.state for b in sim.blocks() if b.id == BLOCK)


def as_nobody(action: Callable[[], object]) -> int:
    """Run ``action`` in a forked child as uid/gid 65534 with no groups: 0 if it returned,
    else the errno of its OSError."""
    pid = os.fork()
    if pid == 0:
        code = 255
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            action()
            code = 0
        except OSError as exc:
            code = exc.errno or 255
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def write(path: Path, text: str) -> Callable[[], None]:
    def action() -> None:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    return action


def test_chmod_lets_a_non_root_agent_write_and_getattr_reports_it(mounted) -> None:
    sim, mnt = mounted
    path = mnt / STATE
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert as_nobody(write(path, "online_movable")) == errno.EACCES  # the kernel's default_permissions
    os.chmod(path, 0o666)
    st = path.stat()
    assert stat.S_IMODE(st.st_mode) == 0o666 and stat.S_ISREG(st.st_mode) and (st.st_uid, st.st_gid) == (0, 0)
    assert as_nobody(write(path, "online_movable")) == 0
    assert state(sim) == "online"
    other = mnt / f"devices/system/memory/memory{BLOCK + 1}/state"
    assert stat.S_IMODE(other.stat().st_mode) == 0o644  # only that node


def test_chown_makes_the_agent_the_owner(mounted) -> None:
    sim, mnt = mounted
    path = mnt / STATE
    os.chown(path, NOBODY, NOBODY)
    st = path.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (NOBODY, NOBODY, 0o644)
    assert as_nobody(write(path, "online_movable")) == 0
    assert state(sim) == "online"
    assert as_nobody(lambda: os.chmod(path, 0o666)) == 0  # the owner may chmod
    assert stat.S_IMODE(path.stat().st_mode) == 0o666


def test_a_non_owner_cannot_chmod(mounted) -> None:
    _, mnt = mounted
    assert as_nobody(lambda: os.chmod(mnt / STATE, 0o666)) == errno.EPERM  # setattr_prepare: not owner, no CAP_FOWNER
    assert stat.S_IMODE((mnt / STATE).stat().st_mode) == 0o644


def test_the_open_time_rule_checks_the_changed_mode_even_for_root(mounted) -> None:
    sim, mnt = mounted
    path = mnt / STATE
    os.chmod(path, 0o444)
    with pytest.raises(PermissionError):  # kernfs_fop_open: no write bit in the inode's mode
        path.write_text("online_movable")
    assert path.read_text() == "offline\n"
    os.chmod(path, 0o200)
    with pytest.raises(PermissionError):
        path.read_text()
    path.write_text("online_movable")
    assert state(sim) == "online"
    valid_zones = mnt / f"devices/system/memory/memory{BLOCK}/valid_zones"
    os.chmod(valid_zones, 0o666)  # a write bit does not give a read-only attribute a store
    with pytest.raises(PermissionError):
        valid_zones.write_text("x")


def test_utimes_sets_times_and_chmod_moves_ctime(mounted) -> None:
    _, mnt = mounted
    path = mnt / STATE
    os.utime(path, ns=(1_000_000_000_000_000_000, 2_000_000_000_000_000_000))
    st = path.stat()
    assert (st.st_atime_ns, st.st_mtime_ns) == (1_000_000_000_000_000_000, 2_000_000_000_000_000_000)
    before = st.st_ctime_ns
    os.chmod(path, 0o600)
    assert path.stat().st_ctime_ns >= before
    assert path.stat().st_mtime_ns == 2_000_000_000_000_000_000


def test_a_device_added_again_starts_with_its_default_mode_and_owner(mounted) -> None:
    sim, mnt = mounted
    region = sim.add_cxl_region("1G", node=1, driver="device_dax")
    (dev,) = region.devices
    align = mnt / "bus/dax/devices" / dev / "align"
    default = stat.S_IMODE(align.stat().st_mode)
    os.chmod(align, 0o600)
    os.chown(align, NOBODY, NOBODY)
    assert (stat.S_IMODE(align.stat().st_mode), align.stat().st_uid) == (0o600, NOBODY)
    sim.remove(region)
    again = sim.add_cxl_region("1G", node=1, driver="device_dax")
    assert again.devices == (dev,)
    st = align.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (default, 0, 0)


DIR = f"devices/system/memory/memory{BLOCK}"


@pytest.mark.parametrize(("call", "err"), [
    (lambda m: os.mkdir(m / DIR / "newdir"), errno.EPERM),  # kernfs_iop_mkdir
    (lambda m: os.rmdir(m / DIR / "power"), errno.EPERM),  # kernfs_iop_rmdir
    (lambda m: os.rename(m / STATE, m / DIR / "x"), errno.EPERM),  # kernfs_iop_rename
    (lambda m: os.unlink(m / STATE), errno.EPERM),  # vfs_unlink
    (lambda m: os.symlink("state", m / DIR / "s"), errno.EPERM),  # vfs_symlink
    (lambda m: os.link(m / STATE, m / DIR / "h"), errno.EPERM),  # vfs_link
    (lambda m: os.mkfifo(m / DIR / "fifo"), errno.EPERM),  # vfs_mknod
    (lambda m: os.mknod(m / DIR / "file", stat.S_IFREG | 0o644), errno.EACCES),  # do_mknodat -> vfs_create
    (lambda m: os.close(os.open(m / DIR / "new", os.O_CREAT | os.O_WRONLY, 0o644)), errno.EACCES),  # lookup_open
])  # fmt: skip
def test_namespace_changes_get_the_kernfs_errno(mounted, call, err) -> None:
    _, mnt = mounted
    before = sorted(os.listdir(mnt / DIR))
    with pytest.raises(OSError) as info:
        call(mnt)
    assert info.value.errno == err, os.strerror(info.value.errno)
    assert sorted(os.listdir(mnt / DIR)) == before
    assert "state" in before
