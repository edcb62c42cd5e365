"""Permissions and containment (issue 8).

- ``fakesysfs mount`` refuses the host's sysfs: ``/sys``, anything below it, a symlink whose
  realpath is there, a directory of a sysfs mount elsewhere; allowed only where ``/sys`` is
  itself a fakesysfs mount (the private namespace of ``fakesysfs run``).
- Without ``--allow-other`` only the mounting user (and root) reach the mount; with it, the
  kernel enforces the mode bits for other users (0400 unreadable, 0200 and 0644 not
  writable), and the daemon refuses root what the mode does not allow (R-SYS-01).
- ``fakesysfs run`` leaves the host's ``/sys``, ``/dev`` and ``/run`` as they were (listings
  and modification times), whatever the command does inside.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pytest
from conftest import ENV, fakesysfs

from fakesysfs import mountpoint

# -- never over the host's /sys -----------------------------------------------------------------
HOST_MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw
24 23 0:7 / /sys/kernel/debug rw,relatime - debugfs debugfs rw
25 23 0:26 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw
27 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
40 27 0:22 / /mnt/host\\040sys rw,relatime - sysfs sysfs rw
"""
#: The namespace of ``fakesysfs run``: the fake mounted over the host's /sys.
RUN_MOUNTINFO = HOST_MOUNTINFO + "90 23 0:50 / /sys rw,nosuid,nodev,relatime - fuse.fakesysfs fakesysfs rw\n"


@pytest.mark.parametrize("path", ["/sys", "/sys/", "/sys/kernel/mm", "/sys/kernel/debug", "/sys/fs/cgroup/x",
                                  "/mnt/host sys", "/mnt/host sys/kernel"])
def test_the_hosts_sysfs_is_refused(path: str) -> None:
    with pytest.raises(mountpoint.MountpointError, match="refusing to mount over the host's sysfs"):
        mountpoint.check_not_host_sysfs(path, HOST_MOUNTINFO)


@pytest.mark.parametrize("path", ["/tmp/x", "/mnt/other", "/sysfoo", "/srv/sys"])
def test_other_places_are_allowed(path: str) -> None:
    mountpoint.check_not_host_sysfs(path, HOST_MOUNTINFO)


def test_below_the_fake_sys_of_fakesysfs_run_is_allowed() -> None:
    mountpoint.check_not_host_sysfs("/sys/devices/system", RUN_MOUNTINFO)
    mountpoint.check_not_host_sysfs("/sys", RUN_MOUNTINFO)  # then refused as "already a mount point"


def test_a_symlink_to_sys_is_judged_by_its_realpath(tmp_path: Path) -> None:
    (tmp_path / "s").symlink_to("/sys")
    (tmp_path / "k").symlink_to("/sys/kernel")
    for path in (tmp_path / "s", tmp_path / "k" / "mm"):
        with pytest.raises(mountpoint.MountpointError, match=r"really /sys"):
            mountpoint.check_not_host_sysfs(str(path), HOST_MOUNTINFO)


@pytest.mark.parametrize("where", ["/sys", "/sys/kernel/mm", "/sys/devices/system/memory", "SYMLINK"])
def test_fakesysfs_mount_refuses_the_real_sys_in_one_line(where: str, tmp_path: Path) -> None:
    """On this machine, for real: nothing is mounted and the message says what to do."""
    if where == "SYMLINK":
        (tmp_path / "sys").symlink_to("/sys")
        where = str(tmp_path / "sys")
    if not os.path.isdir(where):
        pytest.skip(f"{where} does not exist here")
    done = fakesysfs("mount", where)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing to mount over the host's sysfs" in lines[0], done.stderr
    assert "fakesysfs run" in lines[0]
    assert mountpoint.containing_mount(os.path.realpath(where), mountpoint.mounts())[1] != "fuse.fakesysfs"


# -- who reaches the mount ----------------------------------------------------------------------
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
MEM = "devices/system/memory"
HMEM_DEV = "devices/platform/hmem.1/dax1.0"


def as_user(uid: int, command: str, cwd: str = "/") -> subprocess.CompletedProcess[str]:
    return subprocess.run(["setpriv", "--reuid", str(uid), "--regid", str(uid), "--clear-groups", "sh", "-c", command],
                          capture_output=True, text=True, cwd=cwd, timeout=20, check=False)


@pytest.fixture
def cli_mount():
    """``fakesysfs mount`` of the default topology (the production daemon), as root."""
    from conftest import fuse_unavailable_reason, make_mountpoint, unmount

    reason = fuse_unavailable_reason()
    if reason is not None:
        pytest.skip(f"FUSE test: {reason}")
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv")
    mounts: list[Path] = []

    def mount(*options: str) -> Path:
        mnt = make_mountpoint()
        done = fakesysfs("mount", str(mnt), *options)
        assert done.returncode == 0, done.stderr
        mounts.append(mnt)
        return mnt

    yield mount
    for mnt in mounts:
        if not unmount(mnt):
            unmount(mnt, lazy=True)
        with contextlib.suppress(OSError):
            mnt.rmdir()


@needs_root
def test_without_allow_other_only_the_mounter_gets_in(cli_mount) -> None:
    mnt = cli_mount()
    assert (mnt / MEM / "block_size_bytes").read_text() == "8000000\n"  # root, the mounter
    for uid in (65534, 1):
        for command in (f"ls {mnt}", f"cat {mnt}/{MEM}/block_size_bytes", f"stat {mnt}/{MEM}"):
            done = as_user(uid, command)
            assert done.returncode != 0 and "Permission denied" in done.stderr, (uid, command, done)


@needs_root
def test_with_allow_other_the_kernel_enforces_the_mode_bits_for_other_users(cli_mount) -> None:
    mnt = cli_mount("--allow-other")
    block = f"{mnt}/{MEM}/memory1024"
    allowed = {
        f"cat {block}/state": "offline",  # 0644
        f"cat {mnt}/{MEM}/block_size_bytes": "8000000",  # 0444
        f"readlink {block}/subsystem": "../../../../bus/memory",
        f"cat {mnt}/{HMEM_DEV}/size": "8589934592",
    }
    for command, out in allowed.items():
        done = as_user(65534, command)
        assert done.returncode == 0 and done.stdout.strip() == out, (command, done)
    denied = [
        f"cat {mnt}/{HMEM_DEV}/mapping0/start",  # 0400
        f"cat {mnt}/{HMEM_DEV}/resource",  # 0400
        f"cat {mnt}/kernel/debug/fakesysfs/control",  # 0400
        f"cat {mnt}/kernel/debug/notifier-error-inject/memory/actions/MEM_GOING_ONLINE/error",  # 0600
        f"echo online_movable > {block}/state",  # 0644
        f"echo 1 > {block}/online",  # 0644
        f"echo auto > {block}/power/control",  # 0644
        f"echo dax1.0 > {mnt}/bus/dax/drivers/kmem/unbind",  # 0200
        f"echo 1 > {mnt}/devices/platform/hmem.1/dax_region/create",  # 0644
        f"echo -12 > {mnt}/kernel/debug/notifier-error-inject/memory/actions/MEM_GOING_ONLINE/error",  # 0600
        f"echo 1 > {mnt}/{MEM}/block_size_bytes",  # 0444
    ]
    for command in denied:
        done = as_user(65534, command)
        assert done.returncode != 0 and "Permission denied" in done.stderr, (command, done)
    # nothing changed, and root still gets what the mode gives it, and no more (R-SYS-01)
    assert Path(f"{block}/state").read_text() == "offline\n"
    assert Path(f"{mnt}/{HMEM_DEV}/mapping0/start").read_text() == "0x2000000000\n"
    with pytest.raises(PermissionError):
        Path(f"{mnt}/{MEM}/block_size_bytes").write_text("1\n")
    with pytest.raises(PermissionError):
        Path(f"{mnt}/bus/dax/drivers/kmem/bind").read_text()


@needs_root
def test_a_non_root_mounter_gets_in_and_nobody_else_does() -> None:
    """Mounted by uid 65534 (through the setuid fusermount): that user reads the tree, uid 1
    and even root are kept out, as FUSE does without allow_other/allow_root (allow_root
    would need user_allow_other in /etc/fuse.conf)."""
    from conftest import fuse_unavailable_reason, unmount
    from stress import default_kernel

    from fakesysfs.fuse_adapter import serve

    reason = fuse_unavailable_reason()
    if reason is not None or not shutil.which("fusermount3") and not shutil.which("fusermount"):
        pytest.skip(f"FUSE test: {reason or 'no fusermount'}")
    mnt = Path(tempfile.mkdtemp(prefix="fakesysfs-user-", dir="/tmp"))
    os.chown(mnt, 65534, 65534)
    _, tree = default_kernel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork() with threads alive
        pid = os.fork()
    if pid == 0:  # the daemon, as nobody (everything it needs is imported already)
        status = 1
        try:
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            serve(tree, mnt)
            status = 0
        finally:
            os._exit(status)
    try:
        deadline = time.monotonic() + 10
        while f" {mnt} " not in Path("/proc/self/mountinfo").read_text():
            assert time.monotonic() < deadline, "the user mount did not appear"
            time.sleep(0.02)
        line = next(x for x in Path("/proc/self/mountinfo").read_text().splitlines() if f" {mnt} " in x)
        assert "user_id=65534" in line and "allow_other" not in line
        done = as_user(65534, f"cat {mnt}/{MEM}/block_size_bytes")
        assert done.returncode == 0 and done.stdout == "8000000\n", done
        done = as_user(1, f"cat {mnt}/{MEM}/block_size_bytes")
        assert done.returncode != 0 and "Permission denied" in done.stderr, done
        with pytest.raises(PermissionError):
            (mnt / MEM / "block_size_bytes").read_text()
    finally:
        as_user(65534, f"fusermount3 -u {mnt} || fusermount -u {mnt}")
        # fusermount3 -u fails without /etc/mtab (a container or chroot with no systemd to
        # make the link): unmount as root then, or the daemon would serve forever.
        if f" {mnt} " in Path("/proc/self/mountinfo").read_text():
            unmount(mnt, lazy=True)
        _, status = os.waitpid(pid, 0)
        mnt.rmdir()


# -- fakesysfs run leaves the host alone --------------------------------------------------------
HOST_DIRS = ["/sys", "/sys/devices/system/memory", "/sys/devices/system/node", "/sys/devices/platform", "/sys/bus",
             "/sys/bus/memory/devices", "/sys/kernel", "/sys/dev/char", "/dev", "/dev/char", "/run", "/run/udev",
             "/run/udev/data"]


def host_snapshot() -> dict:
    """Listings and modification times (lstat, links not followed) of the host's /sys, /dev
    and /run where ``fakesysfs run`` works, the memory block states, and what is mounted on
    those three."""
    snap: dict = {}
    for d in HOST_DIRS:
        if not os.path.isdir(d):
            snap[d] = None
            continue
        entries = {}
        for name in sorted(os.listdir(d)):
            with contextlib.suppress(FileNotFoundError):
                st = os.lstat(os.path.join(d, name))
                entries[name] = (st.st_mode, st.st_mtime_ns)
        snap[d] = (os.lstat(d).st_mtime_ns, entries)
    memory = Path("/sys/devices/system/memory")
    snap["states"] = {p.parent.name: p.read_text() for p in memory.glob("memory*/state")} if memory.is_dir() else None
    for f in ("/sys/devices/system/memory/auto_online_blocks", "/sys/devices/system/node/has_memory"):
        snap[f] = Path(f).read_text() if os.path.exists(f) else None
    snap["mounted"] = sorted(line.split(" - ")[1].split()[0] + " " + line.split()[4]
                             for line in Path("/proc/self/mountinfo").read_text().splitlines()
                             if line.split()[4] in ("/sys", "/dev", "/run"))
    return snap


@needs_root
def test_fakesysfs_run_leaves_the_hosts_sys_dev_and_run_unchanged() -> None:
    from conftest import fuse_unavailable_reason

    if fuse_unavailable_reason() is not None:
        pytest.skip(f"FUSE test: {fuse_unavailable_reason()}")
    region = "/sys/devices/platform/hmem.1/dax_region"
    script = f"""
set -e
for b in $(seq 522 649); do echo online_movable > /sys/devices/system/memory/memory$b/state; done
echo offline > /sys/devices/system/memory/memory0/state || true  # boot memory: EBUSY
echo offline > /sys/devices/system/memory/auto_online_blocks
echo dax1.0 > /sys/bus/dax/drivers/kmem/unbind
echo 0 > /sys/devices/platform/hmem.1/dax1.0/size
echo 1 > {region}/create
echo 1073741824 > /sys/devices/platform/hmem.1/dax1.1/size
echo dax1.1 > /sys/bus/dax/drivers/device_dax/new_id
test -e /sys/bus/dax/drivers/device_dax/dax1.1
test -c /dev/dax1.1 && echo dax-node-created
echo change > /sys/devices/system/memory/memory0/uevent
mkdir -p /dev/fakesysfs-scratch /run/fakesysfs-scratch /run/udev/data
touch /dev/fakesysfs-scratch/x /run/fakesysfs-scratch/x /run/udev/data/fakesysfs-x
if command -v udevadm >/dev/null; then udevadm trigger --action=change --subsystem-match=memory || true; fi
cat /sys/devices/system/memory/memory600/state
"""
    before = host_snapshot()
    done = subprocess.run([sys.executable, "-m", "fakesysfs.cli", "run", "--", "sh", "-c", script], env=ENV,
                          capture_output=True, text=True, timeout=120, check=False)
    after = host_snapshot()
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["dax-node-created", "online"], done.stdout  # it all happened, inside
    for key in before:
        assert after[key] == before[key], f"fakesysfs run changed the host's {key}"


@needs_root
def test_inside_fakesysfs_run_mounting_below_the_fake_sys_is_allowed() -> None:
    """There /sys is the fake (a private namespace): mounting below it touches nothing of the host."""
    from conftest import fuse_unavailable_reason

    if fuse_unavailable_reason() is not None:
        pytest.skip(f"FUSE test: {fuse_unavailable_reason()}")
    py = sys.executable
    script = (f"{py} -m fakesysfs.cli mount /sys/fs && cat /sys/fs/devices/system/memory/block_size_bytes && "
              f"{py} -m fakesysfs.cli umount /sys/fs")
    done = subprocess.run([py, "-m", "fakesysfs.cli", "run", "--", "sh", "-c", script], env=ENV,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "8000000"
