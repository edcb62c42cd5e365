"""``/dev`` inside ``fakesysfs run``: the nodes the kernel's devtmpfs would hold.

The daemon keeps ``/dev`` in step with the engine (``Devtmpfs``: a node per device on
``add``, gone on ``remove``), held one of two ways:

- as root, a tmpfs with real nodes (``DevNode.create``: mknod);
- in a user namespace, where mknod is refused, a ``DevTree`` served at ``/dev`` by the one
  FUSE adapter (fuse_adapter.serve), as ``/sys`` is: directories for the mount points
  (pts, shm), empty files the host's nodes are bind mounted onto, the usual symlinks, and
  one ``Device`` per node, whose stat shows ``S_IFCHR`` and the device numbers. That is
  all daxctl and udevadm look at (docs/clients.md). Opening one fails with EACCES: the
  mount is nodev twice over (libfuse mounts MS_NODEV unless told ``dev``, lib/mount.c
  fuse_kern_mount; a superblock mounted in a user namespace gets SB_I_NODEV, fs/super.c
  alloc_super), so the kernel refuses in fs/namei.c may_open before FUSE is asked, and
  the tree refuses too (``Tree.open``) for in-process callers.

The tree has no ``ChangeFeed``, so the adapter lets the kernel cache nothing of it (zero
timeouts): a node added or removed under the engine lock is what the next stat sees.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import posixpath
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import KernelError
from .sysfs.tree import Attr, Device, Dir, Link, MergedDir, Node, StaticDir, StatResult, Tree

if TYPE_CHECKING:
    from .engine.events import Uevent

__all__ = ["DEVNODE_MODE", "DEV_LINKS", "DEV_NODES", "DevNode", "DevTree", "Devtmpfs", "tree_devices"]

log = logging.getLogger(__name__)

#: The usual /dev character nodes: name, major, minor, mode.
DEV_NODES = (
    ("null", 1, 3, 0o666),
    ("zero", 1, 5, 0o666),
    ("full", 1, 7, 0o666),
    ("random", 1, 8, 0o666),
    ("urandom", 1, 9, 0o666),
    ("tty", 5, 0, 0o666),
    ("ptmx", 5, 2, 0o666),
    ("fuse", 10, 229, 0o666),
)
DEV_LINKS = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("core", "/proc/kcore"),
)
#: devtmpfs creates device nodes 0600 root:root unless the driver says otherwise.
DEVNODE_MODE = 0o600


@dataclass(frozen=True, slots=True)
class DevNode:
    """A device node the kernel's devtmpfs would hold: ``/dev/<name>``."""

    name: str
    block: bool
    major: int
    minor: int

    @property
    def path(self) -> str:
        return f"/dev/{self.name}"

    def create(self) -> None:
        parent = posixpath.dirname(self.path)
        if parent != "/dev":
            os.makedirs(parent, 0o755, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        kind = stat.S_IFBLK if self.block else stat.S_IFCHR
        os.mknod(self.path, kind | DEVNODE_MODE, os.makedev(self.major, self.minor))
        os.chmod(self.path, DEVNODE_MODE)

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    @classmethod
    def from_uevent(cls, props: dict[str, str], block: bool) -> DevNode | None:
        name = props.get("DEVNAME")
        if not name or "MAJOR" not in props or "MINOR" not in props or ".." in name.split("/"):
            return None
        try:
            return cls(name.removeprefix("/dev/"), block, int(props["MAJOR"]), int(props["MINOR"]))
        except ValueError:
            return None


def parse_uevent(text: str) -> dict[str, str]:
    props = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            props[key] = value
    return props


def tree_devices(tree: Tree) -> list[DevNode]:
    """The nodes devtmpfs holds for the devices in the tree: one per ``/sys/dev/{char,block}``
    entry, named by the device's ``uevent`` (DEVNAME, MAJOR, MINOR)."""
    nodes = []
    for kind in ("char", "block"):
        here = f"/dev/{kind}"
        try:
            entries = tree.readdir(here)
        except KernelError:
            continue
        for entry in entries:
            try:
                devdir = posixpath.normpath(posixpath.join(here, tree.readlink(f"{here}/{entry}")))
                props = parse_uevent(tree.cat(f"{devdir}/uevent"))
            except KernelError:
                continue
            node = DevNode.from_uevent(props, block=kind == "block")
            if node is not None:
                nodes.append(node)
    return nodes


class Devtmpfs:
    """Keeps ``/dev`` in step with the engine: mknod on ``add``, unlink on ``remove``.

    The listener runs inside the store, under the engine lock, so the node exists when the
    creating store returns (daxctl create-device stats ``/dev/daxR.N`` right after the
    ``create`` write and its rescan, docs/clients.md), as with the kernel's devtmpfs,
    whose device_add() waits for the node. mknod on a tmpfs never touches ``/sys``.
    """

    def __init__(self, on_add: Callable[[DevNode], None], on_remove: Callable[[DevNode], None]) -> None:
        self.on_add = on_add
        self.on_remove = on_remove

    def __call__(self, event: Uevent) -> None:
        if event.action not in ("add", "remove"):
            return
        node = DevNode.from_uevent(dict(event.env), block=event.subsystem == "block")
        if node is None:
            return
        try:
            (self.on_add if event.action == "add" else self.on_remove)(node)
        except OSError as exc:
            log.warning("devtmpfs: %s %s: %s", event.action, node.path, exc.strerror or exc)


# -- /dev as a tree (user namespaces) ----------------------------------------------------------
class _MountPoint(Attr):
    """An empty file a host node (``/dev/null``, ...) is bind mounted onto."""

    __slots__ = ()
    size = 0


class _Devices(Dir):
    """The device nodes, by name (``cxl/mem0``: a node in a subdirectory, which exists while
    it holds one, as devtmpfs makes and removes it); changed only under the owning tree's lock."""

    __slots__ = ("nodes", "prefix")

    def __init__(self, nodes: dict[str, Device] | None = None, prefix: str = "") -> None:
        self.nodes: dict[str, Device] = {} if nodes is None else nodes
        self.prefix = prefix

    def _here(self) -> dict[str, Node]:
        here: dict[str, Node] = {}
        for name, node in self.nodes.items():
            if not name.startswith(self.prefix):
                continue
            head, sep, _ = name[len(self.prefix):].partition("/")
            here[head] = _Devices(self.nodes, f"{self.prefix}{head}/") if sep else node
        return here

    def names(self) -> Iterable[str]:
        return sorted(self._here())

    def child(self, name: str) -> Node | None:
        return self._here().get(name)


class DevTree(Tree):
    """``/dev`` for the FUSE adapter. Holds its own lock, not the engine's: ``add`` and
    ``remove`` run inside a store, under the engine lock, and a request here never needs
    the engine, so the two FUSE mounts never wait for each other."""

    def __init__(self, devices: Sequence[DevNode] = ()) -> None:
        fixed: dict[str, Node] = {name: StaticDir() for name in ("pts", "shm")}
        fixed.update((name, _MountPoint(mode)) for name, _major, _minor, mode in DEV_NODES)
        # What the simulated kernel log is bound onto (run.py bind_proc_files), as setup_dev's
        # tmpfs file is as root; never the host's node.
        fixed["kmsg"] = _MountPoint(0o644)
        fixed.update((name, Link(target)) for name, target in DEV_LINKS)
        self._devices = _Devices()
        super().__init__(MergedDir(StaticDir(fixed), self._devices))
        for node in devices:
            self.add(node)

    def add(self, node: DevNode) -> None:
        """devtmpfs_create_node(): the node is there when the uevent's store returns."""
        if node.name.count("/") > 1:  # deeper than /dev/<dir>/<node> (bus/usb/001/...): none here
            log.debug("devtmpfs: %s not served (subdirectory)", node.path)
            return
        kind = stat.S_IFBLK if node.block else stat.S_IFCHR
        with self.lock:
            self._devices.nodes[node.name] = Device(kind, DEVNODE_MODE, os.makedev(node.major, node.minor))

    def remove(self, node: DevNode) -> None:
        """devtmpfs_delete_node()."""
        with self.lock:
            self._devices.nodes.pop(node.name, None)

    def setattr(self, path: str, **_changes: Any) -> StatResult:
        """Nodes here keep the modes they were made with (no udev ``MODE=`` emulation): a
        node removed and made again must not inherit an old chmod."""
        del path
        raise KernelError(errno.EPERM)
