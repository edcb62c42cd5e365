"""File operations anchored on file descriptors: what was checked is what gets used.

A path is a question asked again at every use; a neighbour who swaps a symlink (or renames
a directory) between two uses changes the answer. Root must not act on such answers:

- ``open_beneath``: openat2(2) with RESOLVE_BENEATH (Linux 5.6), so ``..``, absolute names
  and symlinks can never lead out of the directory the open starts from;
- ``mount_of`` / ``fs_type``: the mount (``/proc/self/fdinfo`` mnt_id in
  ``/proc/self/mountinfo``) and the filesystem (fstatfs f_type) an open descriptor is on;
- ``FuseMount``: a FUSE mount made with the new mount API (fsopen, fsconfig, fsmount,
  move_mount; Linux 5.2) and attached onto an open directory descriptor, so the directory
  that was checked is the one mounted on; libfuse 3 then serves it through ``/dev/fd/N``.

System call numbers 428-437 are the same on every Linux architecture (the unified table).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import re
from dataclasses import dataclass

__all__ = ["FUSE_SUPER_MAGIC", "SYSFS_MAGIC", "FuseMount", "MountEntry", "fs_type", "mount_entry", "mount_id",
           "mount_of", "mounts", "open_beneath"]

#: include/uapi/linux/magic.h
SYSFS_MAGIC = 0x62656572
FUSE_SUPER_MAGIC = 0x65735546

_SYS_MOVE_MOUNT = 429
_SYS_FSOPEN = 430
_SYS_FSCONFIG = 431
_SYS_FSMOUNT = 432
_SYS_OPENAT2 = 437

# include/uapi/linux/openat2.h
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_BENEATH = 0x08
# include/uapi/linux/mount.h
_FSOPEN_CLOEXEC = 0x1
_FSCONFIG_SET_FLAG = 0
_FSCONFIG_SET_STRING = 1
_FSCONFIG_CMD_CREATE = 6
_FSMOUNT_CLOEXEC = 0x1
_MOUNT_ATTR_NOSUID = 0x2
_MOUNT_ATTR_NODEV = 0x4
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_MOVE_MOUNT_T_EMPTY_PATH = 0x40
_MNT_DETACH = 0x2

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.fstatfs.argtypes = (ctypes.c_int, ctypes.c_void_p)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)


class _OpenHow(ctypes.Structure):
    _fields_ = (("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64))


def _syscall(number: int, *args: int | bytes | None) -> int:
    """syscall(2) with every integer passed as a long (it is variadic)."""
    return int(_libc.syscall(ctypes.c_long(number),
                             *(ctypes.c_long(a) if isinstance(a, int) else a for a in args)))


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def open_beneath(root_fd: int, path: str, flags: int, mode: int = 0) -> int:
    """Open ``path`` relative to ``root_fd``, never leaving it: a ``..`` above it, an
    absolute symlink or a magic link fails with EXDEV/ELOOP (RESOLVE_BENEATH |
    RESOLVE_NO_MAGICLINKS). A leading '/' of ``path`` counts as relative to the root."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)
    name = os.fsencode(path.lstrip("/") or ".")
    return _check(_libc.syscall(ctypes.c_long(_SYS_OPENAT2), ctypes.c_long(root_fd), name, ctypes.byref(how),
                                ctypes.c_long(ctypes.sizeof(how))),
                  f"openat2 {path}")


def fs_type(fd: int) -> int:
    """fstatfs(2) f_type of the filesystem ``fd`` is on (the first word of struct statfs)."""
    buf = ctypes.create_string_buffer(256)
    _check(_libc.fstatfs(fd, buf), "fstatfs")
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class MountEntry:
    """One line of /proc/self/mountinfo."""

    id: int
    parent: int
    point: str
    fstype: str


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts(mountinfo: str | None = None) -> list[MountEntry]:
    """Every mount of this mount namespace, in mount order."""
    if mountinfo is None:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            mountinfo = f.read()
    found = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " in line and len(fields) >= 5:
            found.append(MountEntry(int(fields[0]), int(fields[1]), _unescape(fields[4]),
                                    line.split(" - ", 1)[1].split()[0]))
    return found


def mount_entry(mnt_id: int, mountinfo: str | None = None) -> MountEntry | None:
    """The mount with id ``mnt_id`` in this mount namespace, if it is there."""
    return next((entry for entry in mounts(mountinfo) if entry.id == mnt_id), None)


def mount_id(fd: int) -> int:
    """The id of the mount ``fd`` lies on (``mnt_id`` of /proc/self/fdinfo, Linux 3.15)."""
    with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key == "mnt_id":
                return int(value)
    raise OSError(errno.ENOTSUP, "no mnt_id in /proc/self/fdinfo")


def mount_of(fd: int) -> MountEntry | None:
    """The mountinfo entry of the mount ``fd`` lies on."""
    return mount_entry(mount_id(fd))


class FuseMount:
    """A FUSE mount attached onto an open directory: ``/dev/fuse`` is opened, a superblock
    made (fsopen "fuse" with the options libfuse 3's fuse_mount_sys() would pass: fd,
    rootmode, user_id, group_id, nosuid, nodev), and the detached mount moved onto
    ``dir_fd`` itself (move_mount with both paths empty). Hand ``libfuse_path``
    ("/dev/fd/N") to libfuse 3, which then serves without mounting (fuse_session_mount).
    No descriptor of the mount is kept (it would make ``umount`` fail with EBUSY): ``id``
    names it, and ``detach`` unmounts it through ``dir_fd``."""

    def __init__(self, dir_fd: int, *, fsname: str, subtype: str, allow_other: bool,
                 default_permissions: bool = True, dev_fuse: str = "/dev/fuse") -> None:
        self.dir_fd = dir_fd
        self.fuse_fd = os.open(dev_fuse, os.O_RDWR | os.O_CLOEXEC)
        fs_fd = mnt_fd = -1
        try:
            fs_fd = _check(_syscall(_SYS_FSOPEN, b"fuse", _FSOPEN_CLOEXEC), "fsopen fuse")
            options = {"source": fsname, "subtype": subtype, "fd": str(self.fuse_fd), "rootmode": "40000",
                       "user_id": str(os.getuid()), "group_id": str(os.getgid())}
            for key, value in options.items():
                _check(_syscall(_SYS_FSCONFIG, fs_fd, _FSCONFIG_SET_STRING, key.encode(), value.encode(), 0),
                       f"fsconfig {key}")
            for flag, wanted in (("default_permissions", default_permissions), ("allow_other", allow_other)):
                if wanted:
                    _check(_syscall(_SYS_FSCONFIG, fs_fd, _FSCONFIG_SET_FLAG, flag.encode(), None, 0),
                           f"fsconfig {flag}")
            _check(_syscall(_SYS_FSCONFIG, fs_fd, _FSCONFIG_CMD_CREATE, None, None, 0), "fsconfig create")
            mnt_fd = _check(_syscall(_SYS_FSMOUNT, fs_fd, _FSMOUNT_CLOEXEC, _MOUNT_ATTR_NOSUID | _MOUNT_ATTR_NODEV),
                            "fsmount")
            self.id = mount_id(mnt_fd)
            _check(_syscall(_SYS_MOVE_MOUNT, mnt_fd, b"", dir_fd, b"",
                            _MOVE_MOUNT_F_EMPTY_PATH | _MOVE_MOUNT_T_EMPTY_PATH), "move_mount")
        except BaseException:
            os.close(self.fuse_fd)
            raise
        finally:
            for fd in (fs_fd, mnt_fd):
                if fd >= 0:
                    os.close(fd)

    @property
    def libfuse_path(self) -> str:
        return f"/dev/fd/{self.fuse_fd}"

    def entry(self) -> MountEntry | None:
        """This mount's mountinfo entry; None once it is unmounted."""
        return mount_entry(self.id)

    def detach(self, lazy: bool = True) -> None:
        """Unmount (lazily, MNT_DETACH, unless told otherwise: then EBUSY while it is in use)
        this mount if it is still the topmost one at ``dir_fd``'s directory (umount2 through
        the directory's /proc/self/fd link unmounts the topmost mount there); gone
        (``fakesysfs umount``), moved or covered by another: left alone."""
        entry = self.entry()
        if entry is None or entry.point != os.readlink(f"/proc/self/fd/{self.dir_fd}"):
            return
        if any(m.parent == self.id and m.point == entry.point for m in mounts()):
            return  # something is stacked on it: that is not ours to unmount
        if _libc.umount2(f"/proc/self/fd/{self.dir_fd}".encode(), _MNT_DETACH if lazy else 0) != 0:
            err = ctypes.get_errno()
            if err not in (errno.EINVAL, errno.ENOENT):
                raise OSError(err, f"umount {entry.point}: {os.strerror(err)}")
