"""Pieces every device directory shares (kernel-abi.md R-SYS-07/08): ``power/``, ``uevent``,
``subsystem`` links, plus small constructors for attribute files."""

from __future__ import annotations

import errno
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..engine.events import UEVENT_ACTIONS
from ..errors import KernelError
from .parsers import sysfs_streq
from .tree import Attr, Link, StaticDir, relative_link

if TYPE_CHECKING:
    from ..engine import Kernel


def ro(show: Callable[[], str], mode: int = 0o444) -> Attr:
    return Attr(mode, show, None)


def rw(show: Callable[[], str], store: Callable[[str, int], int | None], mode: int = 0o644) -> Attr:
    return Attr(mode, show, store)


def wo(store: Callable[[str, int], int | None], mode: int = 0o200) -> Attr:
    return Attr(mode, None, store)


def const(text: str, mode: int = 0o444) -> Attr:
    return Attr(mode, lambda: text, None)


def link(from_dir: str, target: str) -> Link:
    """A link in sysfs directory ``from_dir`` to sysfs path ``target`` (R-SYS-06)."""
    return Link(relative_link(from_dir, target))


_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_UUID_LEN = 36


def kobject_synth_uevent(text: str, count: int) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Parse a write to a ``uevent`` file (lib/kobject_uevent.c kobject_synth_uevent):
    ``ACTION [UUID [KEY=VALUE ...]]``; returns (action, extra variables) or raises EINVAL."""
    buf = text[:count]
    buf = buf.removesuffix("\n")
    # kobject_action_type(): the action word ends the string or is followed by a space.
    action = None
    for word in UEVENT_ACTIONS:
        if buf.startswith(word) and (len(buf) == len(word) or buf[len(word)] == " "):
            action = word
            break
    if action is None:
        raise KernelError(errno.EINVAL)
    args = buf[len(action) + 1 :] if len(buf) > len(action) else None
    if args is None:
        return action, (("SYNTH_UUID", "0"),)
    if not args or len(args) < _UUID_LEN or not _UUID_RE.match(args):
        raise KernelError(errno.EINVAL)
    env = [("SYNTH_UUID", args[:_UUID_LEN])]
    rest = args[_UUID_LEN:]
    for pair in rest.split():
        key, sep, value = pair.partition("=")
        if not sep or not key or not key.isalnum() or not key.isascii():
            raise KernelError(errno.EINVAL)
        env.append((f"SYNTH_ARG_{key}", value))
    return action, tuple(env)


def uevent_attr(k: Kernel, devpath: str, subsystem: str | None, env: Callable[[], list[tuple[str, str]]] | None = None, mode: int = 0o644) -> Attr:
    """A device's ``uevent`` file: reads the device variables, a write emits a synthetic
    event with that action (R-SYS-08). Devices without a subsystem emit nothing."""

    def show() -> str:
        return "".join(f"{key}={value}\n" for key, value in (env() if env else []))

    def store(text: str, count: int) -> int | None:
        action, extra = kobject_synth_uevent(text, count)
        if subsystem is not None:
            k.uevent(action, devpath, subsystem, extra + tuple(env() if env else ()))
        return None

    return Attr(mode, show if mode & 0o444 else None, store)


def power_dir(k: Kernel, devpath: str) -> StaticDir:
    """``power/`` of a device (R-SYS-07); ``control`` remembers ``on``/``auto`` per device."""

    def control_show() -> str:
        return k.power_control.get(devpath, "auto") + "\n"

    def control_store(text: str, count: int) -> int | None:
        if sysfs_streq(text, "on"):
            k.power_control[devpath] = "on"
        elif sysfs_streq(text, "auto"):
            k.power_control.pop(devpath, None)
        else:
            raise KernelError(errno.EINVAL)
        return None

    def autosuspend_show() -> str:
        raise KernelError(errno.EIO)

    def autosuspend_store(text: str, count: int) -> int | None:
        raise KernelError(errno.EIO)

    return StaticDir(
        {
            "autosuspend_delay_ms": rw(autosuspend_show, autosuspend_store),
            "control": rw(control_show, control_store),
            "runtime_active_time": const("0\n"),
            "runtime_status": const("unsupported\n"),
            "runtime_suspended_time": const("0\n"),
        }
    )
