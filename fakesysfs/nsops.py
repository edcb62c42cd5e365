"""Namespace and mount system calls (libc through ctypes), and the seal of a program.

The low-level half of ``fakesysfs run`` (``fakesysfs/run.py``), shared with the udev rules'
RUN and PROGRAM commands (``fakesysfs/udev_rules.py``), which are sealed as ``run`` seals
its COMMAND (``seal_program``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import re
import struct
from collections.abc import Sequence

# <sched.h>, <sys/mount.h>, <sys/prctl.h>
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 0x2
PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
# <linux/mount.h>, <fcntl.h>: mount_setattr(2) (Linux 5.12)
MOUNT_ATTR_RDONLY = 0x1
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
_SYS_MOUNT_SETATTR = 442  # the same number on every architecture (asm-generic table)


# -- libc -----------------------------------------------------------------------------------
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
_libc.unshare.argtypes = (ctypes.c_int,)
_libc.prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
_libc.syscall.restype = ctypes.c_long


def _enc(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def _libc_check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    what = f"mount {fstype or 'bind'} on {target}"
    _libc_check(_libc.mount(_enc(source), _enc(target), _enc(fstype), flags, _enc(data)), what)


def umount(target: str, flags: int = 0) -> None:
    _libc_check(_libc.umount2(_enc(target), flags), f"umount {target}")


def unshare(flags: int) -> None:
    _libc_check(_libc.unshare(flags), "unshare")


def _prctl(option: int, value: int) -> None:
    _libc.prctl(option, value, 0, 0, 0)


def current_cpu() -> int:
    """The CPU this thread runs on (sched_getcpu), for ``RunOptions.pin_cpu``."""
    cpu = _libc.sched_getcpu()
    return cpu if cpu >= 0 else min(os.sched_getaffinity(0))


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


#: Where the host's kernel is reachable through files; under the fakes, read-only (seal_host_mounts).
SEALED = ("/sys", "/dev", "/run")


def _mountinfo() -> list[tuple[str, str]]:
    """(mount point, per-mount options) of every mount in this namespace, octal escapes undone."""
    mounts = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split()
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
            mounts.append((point, fields[5]))
    return mounts


def _below(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


#: Per-mount options of mountinfo -> mount(2) flags, kept on a read-only remount (a mount
#: locked by a user namespace refuses a remount that would clear them).
_MOUNT_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": 0x400,
                "nodiratime": 0x800, "relatime": 0x200000, "strictatime": 0x1000000}


def seal_host_mounts(tops: Sequence[str] = SEALED) -> None:
    """Make every mount at and below ``tops`` read-only in this (private) mount namespace.

    The fakes are mounted over these directories; what they cover must not be writable
    should anything uncover it (a dead daemon's mount removed by libfuse, an unmount). The
    host's mounts keep their flags: a read-only bind remount changes this namespace's copy
    only. A top that is not itself a mount point is left alone (it belongs to the mount
    above it, ``/`` say, which the command may write like any other host file).
    """
    mounts = _mountinfo()
    points = {point for point, _ in mounts}
    for top in tops:
        if top not in points:
            continue
        attr = struct.pack("=QQQQ", MOUNT_ATTR_RDONLY, 0, 0, 0)  # struct mount_attr
        ret = _libc.syscall(_SYS_MOUNT_SETATTR, AT_FDCWD, top.encode(), AT_RECURSIVE, attr, len(attr))
        if ret == 0:
            continue
        err = ctypes.get_errno()
        if err != errno.ENOSYS:
            raise OSError(err, f"cannot make {top} read-only: {os.strerror(err)}")
        # Before Linux 5.12: one bind remount per mount, outermost first.
        for point, options in mounts:
            if _below(point, top):
                flags = sum(_MOUNT_FLAGS.get(option, 0) for option in options.split(","))
                mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags)


#: CAP_SYS_MODULE, CAP_SYS_RAWIO, CAP_SYS_BOOT, CAP_SYS_TIME, CAP_WAKE_ALARM
#: (<linux/capability.h>). In its user namespace they would be refused anyway (the kernel
#: checks them against the initial one); dropped, ``capsh --print`` says so too.
HOST_ONLY_CAPS = (16, 17, 22, 25, 35)
#: Directories of kernel modules (libkmod's MODULE_DIRECTORY), empty for COMMAND: a module
#: load fails as on a host without that module file (``modprobe: FATAL: Module kmem not found``).
MODULE_DIRS = ("/lib/modules", "/usr/lib/modules")
def _hide_modules() -> None:
    done = set()
    for directory in MODULE_DIRS:
        real = os.path.realpath(directory)
        if real in done or not os.path.isdir(real):
            continue
        done.add(real)
        mount("fakesysfs-modules", real, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755,size=4k")


def _drop_host_only_caps() -> None:
    for cap in HOST_ONLY_CAPS:
        _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)  # EINVAL for a cap this kernel lacks


def seal_program(sys_root: str | None = None) -> None:
    """In a forked child before exec (a udev rule's RUN or PROGRAM, run by the daemon as
    real root): the seal of COMMAND but its PID namespace. A private mount namespace (with
    ``sys_root`` bound over the host's /sys, read-only below it, if given), empty module
    directories, then a user namespace in which only our own ID is mapped: its mounts are
    locked and its capabilities end there."""
    unshare(CLONE_NEWNS)
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    if sys_root is not None:
        seal_host_mounts(("/sys",))
        mount(sys_root, "/sys", None, MS_BIND)
    _hide_modules()
    uid, gid = os.geteuid(), os.getegid()
    unshare(CLONE_NEWUSER | CLONE_NEWNS)
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"0 {uid} 1")
    _write("/proc/self/gid_map", f"0 {gid} 1")
    _drop_host_only_caps()
