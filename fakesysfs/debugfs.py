"""``kernel/debug/fakesysfs/``: the simulator's own test hooks as files, beside the kernel's
``notifier-error-inject`` (kept out of the ABI trees: docs/abi.md "Fault injection").

    control                       0400  the control socket's path (while a daemon serves one)
    faults/memmap_fail_at_chunk   0600  "-1" disarmed, or k: the next chunked add fails at chunk k
    faults/probe_fail             0600  "dax0.0 -12" lines; write "DEVICE ERRNO" (0 clears)
    faults/add_block_delay_us     0600  every memory block added takes this long (timing only:
                                        0 again after a restart from a state file)
    faults/clear                  0200  any write: no notifier errors, no armed faults, no
                                        pinned or poisoned pages
    blocks/memoryN/pinned         0600  pages pinned (offline: EBUSY)
    blocks/memoryN/used           0600  movable pages in use (migrated on offline)
    blocks/memoryN/poisoned       0600  poisoned pages (online: EHWPOISON)
    hotplug/add_cxl_region        0200  "size=16G node=1 [start=ADDR] [decoder=decoder0.0]
                                        [adistance=N] [numa_node=N] [driver=kmem|device_dax]"
    hotplug/add_hmem              0200  the same without decoder
    hotplug/remove                0200  "region3" or "hmem.4"
    hotplug/producers             0400  "NAME KIND START-END node=N region=R devices=daxR.0,..."
    modules/load                  0200  "kmem" or "device_dax": the simulated module loads (what
                                        ``fakesysfs run``'s modprobe.d install commands write)
    modules/unload                0200  the same, unloading it (modprobe -r)
    trace                         0600  the store log, one JSON object per line (the newest 4 MiB
                                        of it); any write clears it
    kmsg                          0400  the kernel log (one message per line)
    iomem                         0400  /proc/iomem
    state                         0400  the whole state as one JSON document

A refused write fails with the errno of the refusal (EINVAL, EBUSY, ENODEV, ENOSPC) and logs
the reason to ``kmsg`` as ``fakesysfs: <file>: <reason>``. Numbers accept 0x hex.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .errors import HarnessError, KernelError
from .klib import kstrtouint
from .sysfs.group import suffix_id
from .sysfs.tree import Attr, Dir, Node, StaticDir

if TYPE_CHECKING:
    from .harness import Harness
    from .sysfs.tree import Tree

__all__ = ["DebugAttr", "install_debugfs"]

_KEY_ALIASES = {"node": "target_node"}


class DebugAttr(Attr):
    """A debugfs file: reads return the whole text (seq_file), not one page."""

    __slots__ = ()
    max_size = None


def _streq(text: str) -> str:
    return text.removesuffix("\n")


def _debug_store(h: Harness, name: str, to_op: Callable[[str], dict[str, Any]]) -> Callable[[str, int], int | None]:
    """A store that parses its text into an op and runs it (the tree's tracer records it)."""
    def store(text: str, _count: int) -> int | None:
        try:
            h.execute(h.normalize(to_op(_streq(text))))
        except HarnessError as exc:
            h.kernel.printk(f"fakesysfs: {name}: {exc}")
            raise KernelError(exc.errno) from None
        return None

    return store


def _key_values(text: str, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for word in text.split():
        key, sep, value = word.partition("=")
        if not sep or not key or not value:
            raise HarnessError(f"{what}: {word!r} is not KEY=VALUE")
        out[_KEY_ALIASES.get(key, key)] = value
    return out


def _words(text: str, n: int, usage: str) -> list[str]:
    words = text.split()
    if len(words) != n:
        raise HarnessError(f"expected {usage}, got {text!r}")
    return words


class _BlocksDir(Dir):
    """``blocks/memoryN/``: one directory per present block."""

    __slots__ = ("h",)

    def __init__(self, h: Harness) -> None:
        self.h = h

    def names(self) -> Iterable[str]:
        return [f"memory{bid}" for bid in self.h.kernel.block_ids()]

    def child(self, name: str) -> Node | None:
        if suffix_id(name, "memory") is None:
            return None
        bid = int(name[6:])
        if bid not in self.h.kernel.blocks:
            return None
        return StaticDir({key: self._file(bid, key, attr) for key, attr in
                          (("pinned", "pinned"), ("used", "movable_used"), ("poisoned", "poisoned"))})

    def _file(self, bid: int, key: str, attr: str) -> Attr:
        k = self.h.kernel

        def show() -> str:
            block = k.blocks.get(bid)
            if block is None:
                raise KernelError(errno.ENODEV)
            return f"{getattr(block, attr)}\n"

        def to_op(text: str) -> dict[str, Any]:
            return {"op": "block_usage", "block": bid, key: _words(text, 1, "a page count")[0]}

        return DebugAttr(0o600, show, _debug_store(self.h, f"blocks/memory{bid}/{key}", to_op))


def _producers_text(h: Harness) -> str:
    from .state import producers

    lines = []
    for p in producers(h.kernel):
        devices = ",".join(p.devices) or "-"
        lines.append(f"{p.name} {p.kind} {p.start:#x}-{p.start + p.size - 1:#x} node={p.target_node} "
                     f"region={p.region} devices={devices}\n")
    return "".join(lines)


def _state_text(h: Harness) -> str:
    from .state import snapshot

    return json.dumps(snapshot(h.kernel), indent=1) + "\n"


def _probe_fail_text(h: Harness) -> str:
    return "".join(f"{dev} {-err}\n" for dev, err in sorted(h.kernel.faults.probe_fail.items()))


def _chunk_op(text: str) -> dict[str, Any]:
    word = _words(text, 1, "a chunk number, or -1 to disarm")[0]
    return {"op": "memmap_fail_at_chunk", "chunk": None if word in ("-1", "off") else word}


def _delay_op(text: str) -> dict[str, Any]:
    word = _words(text, 1, "microseconds")[0]
    try:
        micros = kstrtouint(word, 0)  # what a debugfs u32 knob takes: ERANGE above 2^32-1, else EINVAL
    except KernelError as exc:
        raise HarnessError(f"{word!r} is not a number of microseconds", exc.errno) from None
    return {"op": "add_block_delay", "seconds": micros / 1e6}


#: Most text one read of ``trace`` renders: the newest stores that fit (the whole kept ring
#: can be ~100 MB as JSON); ``fakesysfs ctl MNT trace`` pages through all of it.
TRACE_TEXT_BYTES = 4 << 20


def _trace_text(h: Harness) -> str:
    lines: list[str] = []
    size = 0
    for record in reversed(h.trace.since(0)):
        line = json.dumps(record.to_json()) + "\n"
        size += len(line)
        if size > TRACE_TEXT_BYTES:
            break
        lines.append(line)
    return "".join(reversed(lines))


def _trace_clear(h: Harness) -> Callable[[str, int], int | None]:
    def store(_text: str, _count: int) -> int | None:
        h.trace.clear()
        return None

    return store


def install_debugfs(tree: Tree, h: Harness) -> None:
    """Hang ``kernel/debug/fakesysfs/`` into ``tree`` (replacing the control-only directory
    that ``build_tree`` made)."""
    k = h.kernel
    kernel_dir = tree.root.child("kernel") if isinstance(tree.root, Dir) else None
    debug = kernel_dir.child("debug") if isinstance(kernel_dir, Dir) else None
    if not isinstance(debug, StaticDir):
        raise TypeError("the tree has no kernel/debug directory to hang kernel/debug/fakesysfs into")
    control = Attr(0o400, lambda: f"{tree.control_socket}\n")
    faults = StaticDir({
        "add_block_delay_us": DebugAttr(0o600, lambda: f"{round(h.add_block_delay * 1e6)}\n",
                                        _debug_store(h, "faults/add_block_delay_us", _delay_op)),
        "clear": DebugAttr(0o200, None, _debug_store(h, "faults/clear", lambda _text: {"op": "clear_faults"})),
        "memmap_fail_at_chunk": DebugAttr(
            0o600, lambda: f"{-1 if k.faults.memmap_fail_at_chunk is None else k.faults.memmap_fail_at_chunk}\n",
            _debug_store(h, "faults/memmap_fail_at_chunk", _chunk_op)),
        "probe_fail": DebugAttr(0o600, lambda: _probe_fail_text(h), _debug_store(
            h, "faults/probe_fail",
            lambda text: dict(zip(("device", "errno"), _words(text, 2, "DEVICE ERRNO"), strict=True),
                              op="probe_fail"))),
    })  # fmt: skip
    hotplug = StaticDir({
        "add_cxl_region": DebugAttr(0o200, None, _debug_store(
            h, "hotplug/add_cxl_region", lambda text: {"op": "add_cxl_region", **_key_values(text, "add_cxl_region")})),
        "add_hmem": DebugAttr(0o200, None, _debug_store(
            h, "hotplug/add_hmem", lambda text: {"op": "add_hmem", **_key_values(text, "add_hmem")})),
        "producers": DebugAttr(0o400, lambda: _producers_text(h)),
        "remove": DebugAttr(0o200, None, _debug_store(
            h, "hotplug/remove", lambda text: {"op": "remove", "device": _words(text, 1, "a device name")[0]})),
    })  # fmt: skip
    modules = StaticDir({
        "load": DebugAttr(0o200, None, _debug_store(
            h, "modules/load", lambda text: {"op": "modprobe", "module": _words(text, 1, "a module name")[0]})),
        "unload": DebugAttr(0o200, None, _debug_store(
            h, "modules/unload", lambda text: {"op": "rmmod", "module": _words(text, 1, "a module name")[0]})),
    })  # fmt: skip
    debug.entries["fakesysfs"] = StaticDir({
        "blocks": _BlocksDir(h),
        "control": lambda: control if tree.control_socket else None,
        "faults": faults,
        "hotplug": hotplug,
        "iomem": DebugAttr(0o400, k.resources.format_iomem),
        "kmsg": DebugAttr(0o400, lambda: "".join(f"{line}\n" for line in k.kmsg)),
        "modules": modules,
        "state": DebugAttr(0o400, lambda: _state_text(h)),
        "trace": DebugAttr(0o600, lambda: _trace_text(h), _trace_clear(h)),
    })
