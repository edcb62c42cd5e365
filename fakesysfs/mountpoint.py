"""Where a fake may be mounted, and how it is put there.

``fakesysfs mount`` (fakesysfs/cli/mount.py) and ``Simulation.mount`` (fakesysfs/simulation.py)
share these rules, so the Python API refuses exactly what the command refuses:

- **Never over the host's sysfs** (``check_not_host_sysfs``): not ``/sys``, nothing below
  it, no path whose realpath is there (a symlink), no directory of a sysfs mount elsewhere
  (a bind of /sys). A fake there would hide the real /sys from every process of the
  machine. Allowed only where ``/sys`` is itself a fakesysfs mount: the private mount
  namespace of ``fakesysfs run``.
- **A plain directory** (``check_directory``): it exists, is a directory and is not already
  a mount point.
- **Judged by what was opened, mounted on what was judged** (``open_mountpoint``,
  ``mount_on``): the directory is opened ``O_PATH`` and judged by that descriptor (its
  filesystem by fstatfs, its mount by mnt_id, its path by /proc/self/fd); the FUSE mount is
  then attached onto that very descriptor (fdops.FuseMount: fsopen, fsmount, move_mount), so
  a symlink swapped or a directory renamed after the check cannot move the mount onto sysfs.
- **Mounted when it says so** (``wait_until_mounted``): the caller returns only once a
  fakesysfs mount sits on the checked directory.

Every refusal is a ``MountpointError`` with a one-line message; the command prints it as
its error, the Python API raises it as ``MountError``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import MountpointError
from .fdops import FuseMount

__all__ = ["DEAD_FUSE", "DEV_FUSE", "MountpointError", "Placement", "check_directory", "check_not_host_proc",
           "check_not_host_sysfs", "clear_stale_mount", "containing_mount", "fakesysfs_mounted_on",
           "fuse_unavailable", "is_dead_fuse_mount", "is_mounted", "mount_on", "mounts", "open_mountpoint",
           "open_proc_mountpoint", "unmount", "wait_until_mounted"]

#: The FUSE device.
DEV_FUSE = "/dev/fuse"

#: A FUSE mount whose daemon died: ENOTCONN, or ECONNABORTED while the kernel tears it down.
DEAD_FUSE = (errno.ENOTCONN, errno.ECONNABORTED)


# -- the mount table --------------------------------------------------------------------------
def mounts(mountinfo: str | None = None) -> list[tuple[str, str]]:
    """(mount point, fstype) of every mount of this mount namespace, in mount order."""
    from .fdops import mounts as mount_entries

    try:
        return [(entry.point, entry.fstype) for entry in mount_entries(mountinfo)]
    except OSError:
        return []


def containing_mount(path: str, table: list[tuple[str, str]]) -> tuple[str, str] | None:
    """The mount ``path`` lies in (the last mounted at the longest prefix), if known."""
    best: tuple[str, str] | None = None
    for point, fstype in table:
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best[0])):
            best = (point, fstype)
    return best


# -- the rules --------------------------------------------------------------------------------
def check_not_host_sysfs(mountpoint: str, mountinfo: str | None = None, *, real: str | None = None,
                         on_sysfs: bool = False) -> None:
    """Refuse the host's sysfs (see the module doc). ``real`` and ``on_sysfs``: what an
    open descriptor says instead of the path's realpath and the mount table."""
    if real is None:
        real = os.path.realpath(mountpoint)
    table = mounts(mountinfo)
    sys_mount = containing_mount("/sys", table)
    private = sys_mount is not None and sys_mount[0] == "/sys" and sys_mount[1] == "fuse.fakesysfs"
    containing = containing_mount(real, table)
    under_sys = real == "/sys" or real.startswith("/sys/")
    on_sysfs = on_sysfs or (containing is not None and containing[1] == "sysfs")
    if (under_sys and not private) or on_sysfs:
        shown = mountpoint if real == mountpoint else f"{mountpoint} (really {real})"
        raise MountpointError(
            f"refusing to mount over the host's sysfs at {shown}: it would hide the real /sys from "
            "every process on this machine; use 'fakesysfs run' for tools that need the fake at /sys "
            "(a private namespace), or mount at DIR/sys for --sysroot tools"
        )


def is_dead_fuse_mount(mountpoint: str) -> bool:
    """Whether ``mountpoint`` is a FUSE mount whose daemon is gone. By statfs, not stat: the
    kernel answers stat from its attribute cache (an hour, for a fakesysfs mount) even after
    the daemon died, but asks the daemon for every statfs (fs/fuse/inode.c fuse_statfs), and
    a dead connection answers ENOTCONN without asking."""
    try:
        os.statvfs(mountpoint)
    except OSError as exc:
        return exc.errno in DEAD_FUSE
    return False


def check_directory(mountpoint: str) -> None:
    """An existing directory that is not a mount point yet (a dead FUSE mount there is the
    caller's to clear first)."""
    try:
        st = os.stat(mountpoint)
    except FileNotFoundError:
        raise MountpointError(f"{mountpoint} does not exist: create it first (mkdir -p {mountpoint})") from None
    except NotADirectoryError:
        raise MountpointError(f"{mountpoint}: a parent is not a directory") from None
    except OSError as exc:
        if exc.errno in DEAD_FUSE:
            raise MountpointError(f"{mountpoint} is a FUSE mount whose daemon is gone (Transport endpoint is "
                                  f"not connected): unmount it first (fakesysfs umount {mountpoint})") from None
        raise MountpointError(f"{mountpoint}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise MountpointError(f"{mountpoint} is not a directory")
    if os.path.ismount(mountpoint):
        raise MountpointError(
            f"{mountpoint} is already a mount point (busy): unmount it first "
            f"(fakesysfs umount {mountpoint}), or mount elsewhere and bind-mount the result"
        )


def open_mountpoint(mountpoint: str) -> int:
    """An O_PATH descriptor of the mount point, refused as ``check_not_host_sysfs`` refuses
    a path, but judged by what was opened. Mount on it with ``mount_on``."""
    from .fdops import SYSFS_MAGIC, fs_type, mount_of

    try:
        fd = os.open(mountpoint, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise MountpointError(f"{mountpoint}: {exc.strerror}") from None
    try:
        entry = mount_of(fd)
        on_sysfs = fs_type(fd) == SYSFS_MAGIC or (entry is not None and entry.fstype == "sysfs")
        check_not_host_sysfs(mountpoint, real=os.readlink(f"/proc/self/fd/{fd}"), on_sysfs=on_sysfs)
    except BaseException:
        os.close(fd)
        raise
    return fd


#: statfs f_type of procfs (include/uapi/linux/magic.h PROC_SUPER_MAGIC).
PROC_SUPER_MAGIC = 0x9FA0


def open_proc_mountpoint(mountpoint: str) -> int:
    """``open_mountpoint`` for the simulated /proc files (``fakesysfs mount --proc DIR``):
    also never on the host's procfs, nor below /proc (it would hide /proc's entries from
    every process of the machine)."""
    from .fdops import fs_type, mount_of

    fd = open_mountpoint(mountpoint)
    try:
        entry = mount_of(fd)
        on_proc = fs_type(fd) == PROC_SUPER_MAGIC or (entry is not None and entry.fstype == "proc")
        check_not_host_proc(mountpoint, real=os.readlink(f"/proc/self/fd/{fd}"), on_proc=on_proc)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_not_host_proc(mountpoint: str, *, real: str | None = None, on_proc: bool = False) -> None:
    """Refuse /proc, anything below it, and any directory of a procfs mount."""
    if real is None:
        real = os.path.realpath(mountpoint)
    if real == "/proc" or real.startswith("/proc/") or on_proc:
        shown = mountpoint if real == mountpoint else f"{mountpoint} (really {real})"
        raise MountpointError(f"refusing to mount over the host's /proc at {shown}: use DIR/proc beside "
                              "DIR/sys for tools that take a root directory")


# -- putting it there -------------------------------------------------------------------------
@dataclass(slots=True)
class Placement:
    """Where libfuse is to serve (``where``), and the mount made for it, if one was."""

    where: str
    mountpoint: str
    fuse_mount: FuseMount | None

    def unmount(self) -> bool:
        """Unmount a mount made on the descriptor (normally, else lazily); False if it is
        not ours to unmount here (libfuse mounted by path: the caller unmounts by path)."""
        if self.fuse_mount is None:
            return False
        try:
            self.fuse_mount.detach(lazy=False)
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
            self.fuse_mount.detach(lazy=True)
        return True


@contextlib.contextmanager
def mount_on(dir_fd: int, mountpoint: str, allow_other: bool, *, dev_fuse: str = "/dev/fuse") -> Iterator[Placement]:
    """What to hand ``serve`` (``.where``). With libfuse 3 and the right to mount (root, or
    root of a user namespace): ``/dev/fd/N`` of a FUSE mount already attached onto ``dir_fd``
    (fdops.FuseMount; libfuse then serves without mounting, and the mount is detached here
    afterwards). Otherwise the path, once more found to lead to ``dir_fd``'s directory:
    libfuse 2 mounts by path, and an unprivileged mount goes through fusermount3, which
    mounts only on a directory the caller may write, never on sysfs (its filesystem
    whitelist)."""
    from . import _fuse
    from .fdops import mount_id
    from .fuse_adapter import fuse_options

    mount = None
    if _fuse.LIBFUSE3:
        options = fuse_options(allow_other=allow_other, libfuse3=True)
        try:
            mount = FuseMount(dir_fd, fsname=options["fsname"], subtype=options["subtype"],
                              allow_other=allow_other, default_permissions=options["default_permissions"],
                              dev_fuse=dev_fuse)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOSYS):
                raise MountpointError(f"cannot mount on {mountpoint}: {exc.strerror}") from None
    if mount is None:
        try:
            same = os.path.samestat(os.stat(mountpoint), os.fstat(dir_fd))
        except OSError:
            same = False
        if not same:
            raise MountpointError(f"{mountpoint} changed while fakesysfs was starting (a symlink or directory "
                                  "was replaced): not mounting there")
        yield Placement(mountpoint, mountpoint, None)
        return
    try:
        landed = mount.entry()
        if landed is None or landed.parent != mount_id(dir_fd):  # something was mounted over it meanwhile
            raise MountpointError(f"{mountpoint} was mounted over while fakesysfs was starting: not mounting there")
        yield Placement(mount.libfuse_path, mountpoint, mount)  # libfuse closes /dev/fuse (fuse_session_destroy)
    finally:
        with contextlib.suppress(OSError):
            mount.detach()


def fakesysfs_mounted_on(dir_fd: int) -> bool:
    """Whether a fakesysfs mount sits on the directory ``dir_fd`` was opened on."""
    from .fdops import mount_id
    from .fdops import mounts as mount_entries

    parent, point = mount_id(dir_fd), os.readlink(f"/proc/self/fd/{dir_fd}")
    return any(m.parent == parent and m.point == point and m.fstype == "fuse.fakesysfs" for m in mount_entries())


def wait_until_mounted(mountpoint: str, dir_fd: int, timeout: float = 5.0, *,
                       what: str = "the daemon reported ready") -> None:
    """Return once a fakesysfs mount sits on ``dir_fd``'s directory, as this process sees
    it (not by the path: it may have been swapped meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError):
            if fakesysfs_mounted_on(dir_fd):
                return
        if time.monotonic() > deadline:
            raise MountpointError(f"{what} but {mountpoint} is not mounted")
        time.sleep(0.01)


# -- FUSE at hand, unmounting -----------------------------------------------------------------
def fuse_unavailable(dev_fuse: str = DEV_FUSE) -> str | None:
    """Why nothing can be mounted here (no FUSE device, no libfuse or binding), or None."""
    if not os.path.exists(dev_fuse):
        return (f"{dev_fuse} is missing: load the fuse module (modprobe fuse) or, in a container, pass the "
                "device through (docker run --device /dev/fuse --cap-add SYS_ADMIN)")
    try:
        from . import _fuse  # noqa: F401  (loads libfuse)
    except ImportError as exc:
        return str(exc)
    return None


def is_mounted(mountpoint: str) -> bool:
    try:
        return os.path.ismount(mountpoint) or False
    except OSError:
        return False


def unmount(mountpoint: str, lazy: bool = False) -> list[str]:
    """Unmount with the first of fusermount3, fusermount, umount that manages: [] on
    success, else every tool's reason (the last is the most telling)."""
    reasons = []
    for tool, flags in (("fusermount3", ["-u"]), ("fusermount", ["-u"]), ("umount", [])):
        if shutil.which(tool) is None:
            continue
        if lazy:
            flags = [*flags, "-z" if tool.startswith("fusermount") else "-l"]
        try:
            done = subprocess.run([tool, *flags, mountpoint], capture_output=True, text=True, timeout=30,
                                  check=False)
        except subprocess.TimeoutExpired:
            reasons.append(f"{tool} did not finish within 30 s")
            continue
        if done.returncode == 0:
            return []
        reasons.append(done.stderr.strip() or f"{tool} exited {done.returncode}")
    return reasons or ["none of fusermount3, fusermount, umount is installed (apt-get install fuse3)"]


def clear_stale_mount(mountpoint: str) -> None:
    """Unmount a fakesysfs mount whose daemon died ("Transport endpoint is not connected"),
    lazily if something still holds it; any other dead FUSE mount is left alone
    (MountpointError)."""
    # The mount table has real paths (the dead mount itself cannot be resolved: its parent can).
    real = os.path.join(os.path.realpath(os.path.dirname(mountpoint)), os.path.basename(mountpoint))
    mine = containing_mount(real, mounts())
    if mine is None or mine[0] != real or mine[1] != "fuse.fakesysfs":
        what = f"a {mine[1]} mount" if mine is not None and mine[0] == real else "a mount"
        raise MountpointError(f"{mountpoint} is {what} whose daemon is gone (Transport endpoint is not "
                              f"connected), not a fakesysfs one: unmount it yourself (fusermount -u {mountpoint})")
    reasons = unmount(mountpoint, lazy=False)
    if reasons:
        reasons = unmount(mountpoint, lazy=True)
    if reasons:
        raise MountpointError(f"{mountpoint} is a fakesysfs mount whose daemon is gone (Transport endpoint is "
                              f"not connected) and it cannot be unmounted: {reasons[-1]}")
