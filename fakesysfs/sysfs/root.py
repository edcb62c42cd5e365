"""The whole fake ``/sys``: where each subtree hangs, module parameters and debugfs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..engine.memory import ONLINE_TYPE_WORDS  # noqa: F401  (re-exported for callers)
from ..klib import kstrtoll, kstrtoull
from .changes import KernelChanges
from .common import engine_store, ro, rw
from .cxl import add_cxl_entries
from .dax import add_dax_entries
from .memory import memory_bus, memory_root
from .node import cpu_bus, cpu_root, node_bus, node_root, tier_bus, tier_root
from .tree import Attr, StaticDir, Tree

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..engine import Kernel

#: fs/libfs.c simple_attr_write(): ``size = min(sizeof(attr->set_buf) - 1, len)``, set_buf[24].
SIMPLE_ATTR_MAX = 23


def memory_hotplug_parameters(k: Kernel) -> StaticDir:
    """``/sys/module/memory_hotplug/parameters`` (mm/memory_hotplug.c module parameters)."""

    return StaticDir({
        "auto_movable_numa_aware": rw(lambda: "Y\n" if k.auto_movable_numa_aware else "N\n",
                                      engine_store(k.param_set_auto_movable_numa_aware)),
        "auto_movable_ratio": rw(lambda: f"{k.auto_movable_ratio}\n", engine_store(k.param_set_auto_movable_ratio)),
        # R-MOM-01: boot-only, 0444 whatever the admin guide says.
        "memmap_on_memory": ro(lambda: f"{k.memmap_mode}\n"),
        "online_policy": rw(lambda: f"{k.online_policy}\n", engine_store(k.set_online_policy)),
    })


def notifier_error_inject(k: Kernel) -> StaticDir:
    """debugfs ``notifier-error-inject/memory`` (lib/memory-notifier-error-inject.c; R-FI-01/02)."""

    # Both files are debugfs simple attributes: simple_attr_write() copies at most 23 bytes
    # (sizeof(set_buf) - 1) and parses those, so a longer write is judged by its start.
    def action(name: str) -> StaticDir:
        def store(text: str, _count: int) -> int | None:
            # simple_attr_write() parses (DEFINE_SIMPLE_ATTRIBUTE_SIGNED: kstrtoll), then the set op.
            k.debugfs_errno_set(name, kstrtoll(text[:SIMPLE_ATTR_MAX], 0))
            return None

        return StaticDir({"error": rw(lambda: f"{k.notifier_error[name]}\n", store, mode=0o600)})

    priority = {"value": 0}

    def priority_store(text: str, _count: int) -> int | None:
        # debugfs_create_u32(): kstrtoull, stored as u32; nothing reads it after registration.
        priority["value"] = kstrtoull(text[:SIMPLE_ATTR_MAX], 0) & 0xFFFFFFFF
        return None

    return StaticDir({
        "actions": StaticDir({name: action(name) for name in ("MEM_GOING_OFFLINE", "MEM_GOING_ONLINE")}),
        "priority": rw(lambda: f"{priority['value']}\n", priority_store, mode=0o600),
    })


def build_root(k: Kernel, control_socket: Callable[[], str | None] = lambda: None) -> StaticDir:
    """The root directory. Later subsystems (dax) add their entries to the returned dirs.
    ``control_socket``: the mount's control socket path, if a daemon serves one."""
    debug = StaticDir()
    if k.config.notifier_error_inject:
        debug.entries["notifier-error-inject"] = StaticDir({"memory": notifier_error_inject(k)})
    # The mount's control socket (fakesysfs/control.py), once the daemon serves one.
    control = Attr(0o400, lambda: f"{control_socket()}\n")
    debug.entries["fakesysfs"] = lambda: StaticDir({"control": control}) if control_socket() else None
    root = StaticDir({
        "block": StaticDir(),
        "bus": StaticDir({
            "cpu": cpu_bus(k),
            "memory": memory_bus(k),
            "memory_tiering": tier_bus(k),
            "node": node_bus(k),
        }),
        "class": StaticDir(),  # no class/dax: daxctl would take the old dax-class model
        "dev": StaticDir({"block": StaticDir(), "char": StaticDir()}),
        "devices": StaticDir({
            "platform": StaticDir(),
            "system": StaticDir({"cpu": cpu_root(k), "memory": memory_root(k), "node": node_root(k)}),
            "virtual": StaticDir({"memory_tiering": tier_root(k)}),
        }),
        "firmware": StaticDir(),
        "fs": StaticDir(),
        "kernel": StaticDir({"debug": debug, "uevent_seqnum": ro(lambda: f"{k.events.seqnum}\n")}),
        "module": StaticDir({"memory_hotplug": StaticDir({"parameters": memory_hotplug_parameters(k)})}),
        "power": StaticDir(),
    })
    add_dax_entries(root, k)
    add_cxl_entries(root, k)
    return root


def build_tree(k: Kernel) -> Tree:
    """The attribute tree of a kernel, locked by the kernel's hotplug lock."""
    tree = Tree(build_root(k, lambda: tree.control_socket), k.lock)
    tree.changes = KernelChanges(k, tree)  # what a change touches, for the mount's caches
    return tree
