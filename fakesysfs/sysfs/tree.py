"""The attribute tree: sysfs paths, modes, show/store handlers and relative links.

This layer sits between the engine and any transport (FUSE, or tests calling it directly).
Directories are resolved lazily: a ``Dir`` answers ``names()`` and ``child(name)`` from the
engine's current state, so nothing is materialized per memory block and a path always
reflects the state at the moment it is looked up. Device directories declare their entries
once, as attribute groups (``group.py``), which give both answers.

Generic kernfs/sysfs semantics live here, once (docs/abi.md "File semantics"):
- R-SYS-01: ``open`` fails with EACCES when the mode lacks any read (write) bit and the file
  is opened for reading (writing), even for root.
- R-SYS-02: one ``write`` = one store of at most 4096 bytes; the handler sees the text up to
  the first NUL and the full count; a zero-length write returns 0 without calling it.
- R-SYS-03: a read renders the whole value once per open file; later offsets read from that
  snapshot.
- setattr (chmod, chown, utimes): kept per node while it lives, as kernfs keeps them in the
  node's ``kernfs_iattrs`` (fs/kernfs/inode.c __kernfs_setattr): a device removed and added
  again starts from its default mode and owner. The new mode is the one R-SYS-01 checks.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from ..errors import KernelError

PAGE_SIZE = 4096
#: Nodes whose attributes were changed (chmod/chown/utimes) a Tree keeps at once; the next
#: one is refused with ENOMEM (the kernel's kernfs_iattrs allocation failing), once the
#: entries of removed devices are dropped.
IATTRS_KEPT = 1 << 16
#: utimensat(2)'s special tv_nsec values, as libfuse passes them with tv_sec 0.
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
#: Resolved device directories a Tree keeps (see ``Tree._dirs``).
_DIRS_KEPT = 4096

#: show() -> text.  store(text, count) -> bytes consumed (None means all of ``count``).
ShowFn = Callable[[], str]
StoreFn = Callable[[str, int], "int | None"]
#: tracer(path, data, err): after every store, with the bytes written (at most 4096) and
#: the errno it failed with (0 on success). Runs under the tree lock: keep it quick.
StoreTracer = Callable[[str, bytes, int], None]
#: check(path, count): before every store, under the tree lock; a KernelError refuses the
#: store before its handler runs (it changes nothing and is not traced).
StoreCheck = Callable[[str, int], None]


class Node:
    """Base of everything in the tree."""

    __slots__ = ()
    mode: int


class Attr(Node):
    """A sysfs attribute file."""

    __slots__ = ("mode", "show", "store")
    #: Longest value one open file reads: a page for sysfs; debugfs-style files (seq_file)
    #: set None in a subclass to read their whole text.
    max_size: int | None = PAGE_SIZE
    #: What stat reports: a page for sysfs (fs/sysfs/file.c sysfs_add_file_mode_ns).
    size: int = PAGE_SIZE

    def __init__(self, mode: int, show: ShowFn | None = None, store: StoreFn | None = None) -> None:
        self.mode = mode
        self.show = show
        self.store = store

    def render(self, _fh: OpenFile) -> str:
        """The text a read of ``_fh`` renders: ``show()``, the same for every opener (a file
        whose text depends on the opener's credentials, as /proc/iomem's, overrides it)."""
        assert self.show is not None
        return self.show()

    def read_next(self, _fh: OpenFile, _size: int, _offset: int) -> bytes | None:
        """None: reads come from the rendered text (R-SYS-03). A stream file (/dev/kmsg:
        one record per read, the offset only tells a rewind) answers each read itself
        instead; it may wait for data on a ``threading.Condition`` of the tree's lock
        (which releases the lock while it waits)."""
        return None


class Link(Node):
    """A symlink; ``target`` is the relative path the kernel would print (R-SYS-06)."""

    __slots__ = ("target",)
    mode = 0o777

    def __init__(self, target: str) -> None:
        self.target = target


class Device(Node):
    """A device special file (devtmpfs holds these, sysfs never does): stat shows its type
    and numbers; open is refused with EACCES, as on a nodev mount (fs/namei.c may_open)."""

    __slots__ = ("kind", "mode", "rdev")

    def __init__(self, kind: int, mode: int, rdev: int) -> None:
        self.kind = kind  # stat.S_IFCHR or stat.S_IFBLK
        self.mode = mode
        self.rdev = rdev


class Dir(Node):
    """A directory. Subclasses compute children from engine state on every call."""

    __slots__ = ()
    mode = 0o755

    def names(self) -> Iterable[str]:
        raise NotImplementedError

    def child(self, name: str) -> Node | None:
        raise NotImplementedError

    def alive(self) -> bool:
        """False once the kobject behind this directory is gone (a removed memory block, a
        deleted dax device): files opened below it then fail with ENODEV, as kernfs does
        for an open file whose node was deactivated. Directories that never go away keep
        this default."""
        return True


#: A ``StaticDir`` child: a node, or a zero-argument factory (None: absent for now).
DirEntry = Node | Callable[[], Node | None]


class StaticDir(Dir):
    """A directory with a fixed set of children, given as nodes or zero-argument factories."""

    __slots__ = ("entries",)

    def __init__(self, entries: Mapping[str, DirEntry] | None = None) -> None:
        self.entries: dict[str, DirEntry] = dict(entries or {})

    def names(self) -> Iterable[str]:
        for name, entry in self.entries.items():
            if isinstance(entry, Node) or entry() is not None:
                yield name

    def child(self, name: str) -> Node | None:
        entry = self.entries.get(name)
        if entry is None or isinstance(entry, Node):
            return entry
        return entry()


class MergedDir(Dir):
    """Fixed entries followed by a dynamic part (for example ``memoryN`` beside root files)."""

    __slots__ = ("dynamic", "fixed")

    def __init__(self, fixed: StaticDir, dynamic: Dir) -> None:
        self.fixed = fixed
        self.dynamic = dynamic

    def names(self) -> Iterable[str]:
        yield from self.fixed.names()
        yield from self.dynamic.names()

    def child(self, name: str) -> Node | None:
        node = self.fixed.child(name)
        return node if node is not None else self.dynamic.child(name)


def relative_link(from_dir: str, target: str) -> str:
    """The relative path sysfs prints for a link in ``from_dir`` pointing at ``target``.

    Both are absolute paths below the sysfs root ("/devices/..."). R-SYS-06.
    """
    a = [p for p in from_dir.split("/") if p]
    b = [p for p in target.split("/") if p]
    common = 0
    while common < len(a) and common < len(b) and a[common] == b[common]:
        common += 1
    return "/".join([".."] * (len(a) - common) + b[common:])


@dataclass(slots=True)
class StatResult:
    """What ``getattr`` reports: sysfs files are root-owned, 4096 bytes, times are fixed
    (unless changed with chmod/chown/utimes: ``IAttrs``)."""

    mode: int  # full st_mode including the file type
    size: int
    nlink: int
    uid: int = 0
    gid: int = 0
    #: Device numbers of a ``Device`` (os.makedev), else 0.
    rdev: int = 0
    #: (atime, mtime, ctime) in ns once set, else None: the mount's fixed time.
    times: tuple[int, int, int] | None = None


@dataclass(slots=True)
class IAttrs:
    """kernfs_iattrs: what setattr changed on one node (fs/kernfs/inode.c __kernfs_setattr)."""

    #: Permission bits (S_IALLUGO: with setuid/setgid/sticky), None: the node's own.
    perm: int | None
    uid: int
    gid: int
    times: tuple[int, int, int] | None
    #: The directories above the node that can go away (``Dir.alive``): once one has, the
    #: node is gone and these attributes with it.
    guards: tuple[Dir, ...]

    def alive(self) -> bool:
        return all(guard.alive() for guard in self.guards)


#: listener(paths): after a change, the paths (below the root) whose entries vanished or may
#: now differ in type, mode or link target. New entries are not reported.
ChangeListener = Callable[[Iterable[str]], None]


class ChangeFeed:
    """Tells clients that cache entries (a FUSE mount's kernel dcache) what a change touched.

    A client may cache lookups and attributes only if the tree has a feed: then, before the
    change that removed an entry (or changed its type, mode or link target) completes, every
    listener hears that entry's path and can drop it. Contents are never covered: a value is
    rendered on every read. The feed of an engine-backed tree (``build_tree``) maps uevents
    to paths; a plain ``Tree`` has none, and its clients must not cache.
    """

    def __init__(self) -> None:
        self._listeners: list[ChangeListener] = []
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        """True while somebody listens (work to find touched paths is skipped otherwise)."""
        return bool(self._listeners)

    def subscribe(self, listener: ChangeListener) -> Callable[[], None]:
        """Add ``listener``; returns the function that removes it."""
        with self._lock:
            self._listeners = [*self._listeners, listener]
            if len(self._listeners) == 1:
                self.started()

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners = [other for other in self._listeners if other is not listener]
                    if not self._listeners:
                        self.stopped()

        return unsubscribe

    def publish(self, paths: Iterable[str]) -> None:
        paths = tuple(paths)
        if paths:
            for listener in self._listeners:
                listener(paths)

    # -- for subclasses -------------------------------------------------------------------
    def started(self) -> None:
        """The first listener arrived: start watching the source of changes."""

    def stopped(self) -> None:
        """The last listener left."""

    def store_touches(self, _tree: Tree, _path: str) -> Iterable[str]:
        """Called under the tree lock before a store to ``path``: the paths that store may
        change without saying so otherwise; they are published after the store."""
        return ()


@dataclass(slots=True)
class OpenFile:
    """An open attribute: the node plus the read snapshot (R-SYS-03)."""

    attr: Attr
    flags: int
    snapshot: bytes | None = None
    path: str = ""
    #: Directories above the file that can go away (``Dir.alive``), checked on every I/O.
    guards: tuple[Dir, ...] = ()
    #: The opener's uid as the mount sees it (the FUSE adapter sets it; 0 in process).
    uid: int = 0
    #: Where a stream file's reader is (``Attr.read_next``: the next record's number).
    cursor: int = 0
    #: The file offset a stream file's next read arrives at unless the opener seeked.
    next_offset: int = -1

    def check_alive(self) -> None:
        """kernfs_get_active(): ENODEV once the file's directory was removed."""
        for guard in self.guards:
            if not guard.alive():
                raise KernelError(errno.ENODEV)


class Tree:
    """Path-level operations on a root ``Dir``, serialized by one lock.

    The lock is the engine's hotplug lock, so a reader never sees a half-done operation
    (R-SYS-05) and a store runs exactly like one kernel sysfs write.
    """

    def __init__(self, root: Dir, lock: threading.RLock | None = None, changes: ChangeFeed | None = None) -> None:
        self._dirs: dict[str, tuple[Dir, tuple[Dir, ...]]] = {}
        self._root = root
        self.lock = lock if lock is not None else threading.RLock()
        #: The store log: called after every store (see ``StoreTracer``).
        self.store_tracers: list[StoreTracer] = []
        #: Called before every store (see ``StoreCheck``): the journal reserves its room.
        self.store_checks: list[StoreCheck] = []
        #: What changes touch, for clients that cache entries (None: they must not).
        self.changes = changes
        #: Absolute path of the mount's control socket while a daemon serves one
        #: (fakesysfs/control.py), shown in ``kernel/debug/fakesysfs/control``.
        self.control_socket: str | None = None
        #: The times every node reports until utimes sets its own (ns).
        self.boot_time_ns = time.time_ns()
        #: Device directories resolved before (``memoryN/``, ``daxX.Y/``, ``nodeK/``): path ->
        #: (directory, the directories that can go away above it). Only directories that
        #: know whether they are still the live one (``Dir.alive``) are kept, and an entry is
        #: used only while it and those above it are alive: then a fresh lookup would give the
        #: same directory. Saves the walk down to it (nine components to a dax attribute).
        #: (Set up first, above: replacing ``root`` empties it.)
        #: path -> attributes changed by setattr (see ``IAttrs``).
        self._iattrs: dict[str, IAttrs] = {}
        self._iattrs_feed: Callable[[], None] | None = None

    @property
    def root(self) -> Dir:
        return self._root

    @root.setter
    def root(self, root: Dir) -> None:
        """A new root (a test that swaps engines under one mount): nothing resolved below
        the old one may be used again, alive or not."""
        self._dirs.clear()
        self._root = root

    # -- resolution -------------------------------------------------------------------------
    def lookup(self, path: str, guards: list[Dir] | None = None) -> Node:
        """Resolve an absolute path below the root, without following the final link.

        ``guards``: collects the directories passed through that can go away (``Dir.alive``).
        """
        parent, _, name = path.rpartition("/")
        cached = self._dirs.get(parent)
        if cached is not None and name and name != ".":
            directory, above = cached
            if directory.alive() and all(d.alive() for d in above):
                if guards is not None:
                    guards.extend(above)
                    guards.append(directory)
                child = directory.child(name)
                if child is None:
                    raise KernelError(errno.ENOENT)
                return child
            self._dirs.pop(parent, None)
        node: Node = self.root
        passed: list[Dir] = []
        parts = path.split("/")
        for index, part in enumerate(parts):
            if not part or part == ".":
                continue
            if not isinstance(node, Dir):
                raise KernelError(errno.ENOTDIR)
            if type(node).alive is not Dir.alive:
                passed.append(node)
            child = node.child(part)
            if child is None:
                raise KernelError(errno.ENOENT)
            node = child
            if isinstance(node, Dir) and type(node).alive is not Dir.alive and index < len(parts) - 1:
                if len(self._dirs) >= _DIRS_KEPT:
                    self._dirs.clear()
                self._dirs["/".join(parts[: index + 1])] = (node, tuple(passed))
        if guards is not None:
            guards.extend(passed)
        return node

    # -- metadata ---------------------------------------------------------------------------
    def getattr(self, path: str) -> StatResult:
        with self.lock:
            node = self.lookup(path)
            if isinstance(node, Dir):
                st = StatResult(stat.S_IFDIR | node.mode, 0, 2)
            elif isinstance(node, Link):
                st = StatResult(stat.S_IFLNK | 0o777, len(node.target), 1)
            elif isinstance(node, Attr):
                st = StatResult(stat.S_IFREG | node.mode, node.size, 1)
            else:
                assert isinstance(node, Device)
                st = StatResult(node.kind | node.mode, 0, 1, rdev=node.rdev)
            attrs = self._iattrs.get(path) if self._iattrs else None
            if attrs is not None and self._live(path, attrs):
                if attrs.perm is not None:
                    st.mode = stat.S_IFMT(st.mode) | attrs.perm
                st.uid, st.gid, st.times = attrs.uid, attrs.gid, attrs.times
            return st

    def _live(self, path: str, attrs: IAttrs) -> bool:
        if attrs.alive():
            return True
        del self._iattrs[path]
        return False

    def _mode(self, path: str, node: Node) -> int:
        """The node's permission bits as setattr left them (kernfs_refresh_inode)."""
        attrs = self._iattrs.get(path) if self._iattrs else None
        if attrs is not None and attrs.perm is not None and self._live(path, attrs):
            return attrs.perm
        return node.mode

    def setattr(self, path: str, *, mode: int | None = None, uid: int | None = None, gid: int | None = None,
                atime: int | None = None, mtime: int | None = None, touch: bool = False) -> StatResult:
        """chmod (``mode``), chown (``uid``/``gid``, None or -1: unchanged), utimes (``atime``/
        ``mtime`` in ns, ``UTIME_NOW``/``UTIME_OMIT`` as utimensat takes them; ``touch``:
        both now) on ``path``, as kernfs_iop_setattr: kept until the node goes away.

        Who may do it is the VFS's business (setattr_prepare: the owner or CAP_FOWNER for
        chmod, CAP_CHOWN for chown), done by the kernel before FUSE asks (default_permissions)."""
        with self.lock:
            guards: list[Dir] = []
            node = self.lookup(path, guards)
            attrs = self._iattrs.get(path)
            if attrs is not None and not self._live(path, attrs):
                attrs = None
            if attrs is None:
                if len(self._iattrs) >= IATTRS_KEPT:
                    for old in [p for p, a in self._iattrs.items() if not a.alive()]:
                        del self._iattrs[old]
                    if len(self._iattrs) >= IATTRS_KEPT:
                        raise KernelError(errno.ENOMEM)
                attrs = IAttrs(None, 0, 0, None, tuple(guards))
                self._iattrs[path] = attrs
                self._watch_iattrs()
            now = time.time_ns()
            old_times = attrs.times or (self.boot_time_ns,) * 3
            if mode is not None:
                attrs.perm = mode & 0o7777
            if uid is not None and uid != -1:
                attrs.uid = uid
            if gid is not None and gid != -1:
                attrs.gid = gid
            if touch:
                atime = mtime = UTIME_NOW
            new_atime = now if atime == UTIME_NOW else old_times[0] if atime in (None, UTIME_OMIT) else atime
            new_mtime = now if mtime == UTIME_NOW else old_times[1] if mtime in (None, UTIME_OMIT) else mtime
            attrs.times = (new_atime, new_mtime, now)  # notify_change() sets ATTR_CTIME
            del node
        return self.getattr(path)

    def _watch_iattrs(self) -> None:
        """Drop changed attributes as soon as a change removes their node (``changes``); without
        a feed they go when a guard directory is found dead."""
        if self._iattrs_feed is not None or self.changes is None:
            return

        feed = self.changes

        def forget(paths: Iterable[str]) -> None:
            below: list[str] = []
            for gone in paths:
                prefix = gone.rstrip("/") + "/"
                for path in [p for p in self._iattrs if p == gone or p.startswith(prefix)]:
                    del self._iattrs[path]
                    if path != gone:
                        below.append(path)
            # A node below a removed directory differs from its default only by these
            # attributes: a cache that kept them would show them on the node added next at
            # that path, so they are reported too (nothing else below can differ).
            feed.publish(below)

        self._iattrs_feed = feed.subscribe(forget)

    def readdir(self, path: str) -> list[str]:
        with self.lock:
            node = self.lookup(path)
            if not isinstance(node, Dir):
                raise KernelError(errno.ENOTDIR)
            return list(node.names())

    def readlink(self, path: str) -> str:
        with self.lock:
            node = self.lookup(path)
            if not isinstance(node, Link):
                raise KernelError(errno.EINVAL)
            return node.target

    # -- file I/O ---------------------------------------------------------------------------
    def open(self, path: str, flags: int) -> OpenFile:
        """R-SYS-01: refuse at open what the mode does not allow, even for root."""
        with self.lock:
            guards: list[Dir] = []
            node = self.lookup(path, guards)
            if isinstance(node, Dir):
                if flags & os.O_ACCMODE != os.O_RDONLY:
                    raise KernelError(errno.EISDIR)
                raise KernelError(errno.EISDIR)
            if isinstance(node, Device):
                raise KernelError(errno.EACCES)  # may_open: a device on a nodev mount
            if not isinstance(node, Attr):
                raise KernelError(errno.ELOOP)
            acc = flags & os.O_ACCMODE
            wants_read = acc in (os.O_RDONLY, os.O_RDWR)
            wants_write = acc in (os.O_WRONLY, os.O_RDWR)
            mode = self._mode(path, node)  # kernfs_fop_open() checks the inode's mode
            if wants_read and (not mode & 0o444 or node.show is None):
                raise KernelError(errno.EACCES)
            if wants_write and (not mode & 0o222 or node.store is None):
                raise KernelError(errno.EACCES)
            return OpenFile(node, flags, path=path, guards=tuple(guards))

    def read(self, fh: OpenFile, size: int, offset: int) -> bytes:
        """R-SYS-03: the first read renders the value; later reads continue in that snapshot."""
        with self.lock:
            chunk = fh.attr.read_next(fh, size, offset)
            if chunk is not None:
                return chunk
            if fh.snapshot is None or offset == 0:
                fh.check_alive()
                text = fh.attr.render(fh).encode("latin-1")
                limit = fh.attr.max_size
                fh.snapshot = text if limit is None else text[:limit]
            return fh.snapshot[offset : offset + size]

    def write(self, fh: OpenFile, data: bytes, offset: int = 0) -> int:
        """R-SYS-02: one write is one store; the offset is ignored, but by a /proc/sys file
        (``writes_strict``: sysctl_writes_strict ignores a write at a non-zero offset)."""
        count = min(len(data), PAGE_SIZE)
        if count == 0:
            return 0
        if offset and getattr(fh.attr, "writes_strict", False):
            return len(data)  # proc_first_pos_non_zero_ignore(): *ppos moves on, nothing is stored
        text = data[:count].split(b"\0", 1)[0].decode("latin-1")
        assert fh.attr.store is not None
        changes = self.changes
        with self.lock:
            fh.check_alive()
            for check in self.store_checks:
                check(fh.path, count)
            touched = changes.store_touches(self, fh.path) if changes is not None and changes.active else ()
            try:
                done = fh.attr.store(text, count)
            except KernelError as exc:
                for tracer in self.store_tracers:
                    tracer(fh.path, data[:count], exc.errno)
                raise
            finally:
                if touched:
                    changes.publish(touched)  # type: ignore[union-attr]
            for tracer in self.store_tracers:
                tracer(fh.path, data[:count], 0)
        return count if done is None else done

    # -- conveniences for in-process use (tests, the Python API) ------------------------------
    def cat(self, path: str) -> str:
        """open + read + close, as ``cat`` would: the whole text (errno as KernelError)."""
        fh = self.open(path, os.O_RDONLY)
        return self.read(fh, PAGE_SIZE, 0).decode("latin-1")

    def echo(self, path: str, data: str | bytes, newline: bool = True) -> int:
        """open + one write + close, as ``echo data > path`` would; returns the count."""
        raw = data.encode("latin-1") if isinstance(data, str) else data
        if newline and isinstance(data, str):
            raw += b"\n"
        fh = self.open(path, os.O_WRONLY)
        return self.write(fh, raw)
