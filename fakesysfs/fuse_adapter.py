"""FUSE adapter: serves a ``sysfs.tree.Tree`` through libfuse's high-level API.

It serves every FUSE mount fakesysfs makes: ``/sys`` (an engine-backed tree) and, inside
``fakesysfs run`` in a user namespace, ``/dev`` (``devfs.DevTree``, which has no
``ChangeFeed`` and so is served with zero timeouts).

The adapter is deliberately thin. Every rule about what a sysfs file does (open-time
EACCES, one write = one store, read snapshots) lives in the tree; this module only
translates between paths/file handles and the tree, and turns failures into errnos:

- ``KernelError(e)`` -> the caller sees ``e`` (``FuseOSError(e)``);
- any other exception is a bug: it is logged with its traceback and the caller sees
  ``EIO``; the daemon keeps serving.

Only the callbacks defined on ``TreeOperations`` are registered with libfuse: inheriting
fusepy's ``Operations`` defaults would add a ``flush`` per close and an xattr query per
write (docs/fuse.md, "Cost").

Caching without staleness. Values are never cached (``direct_io``: every read renders).
Lookups, attributes and link targets are, for an hour, when both the tree and libfuse
allow it: the tree has a ``ChangeFeed`` (engine-backed trees do) and libfuse can invalidate
a path (libfuse 3's ``fuse_invalidate_path``). Every path a change removes or retargets is
then invalidated before the change returns to its writer (for a store: before the write
is answered), so the next access asks the daemon again; new entries need nothing, as
negative lookups are never cached. The invalidation only marks the kernel's attributes and
cached link target stale (FUSE_NOTIFY_INVAL_INODE, fs/fuse/inode.c
fuse_reverse_inval_inode): it takes no directory lock, only the page lock of a cached link
target, which a reader holds while its READLINK waits for the daemon, so it is sent from a
thread of its own (``_Invalidator``) that the change waits for; and it leaves every
dentry in place, and so every
mount stacked on a fake directory, as sysfs keeps them (fs/dcache.c d_invalidate detaches
mounts; a FUSE dentry meets it only when revalidation fails, so no connection-wide
FUSE_NOTIFY_INC_EPOCH is ever sent). A removed entry's dentry stays hashed, but its next
stat, open or walk through it asks the daemon (``default_permissions``: fs/fuse/dir.c
fuse_permission refreshes stale attributes first), which answers ENOENT. Otherwise
(fusepy, libfuse 2, a plain ``Tree``) every timeout is zero: correct, about 3.5x slower
(docs/fuse.md).

Lookups in flight. A lookup answered just before a change may not have reached the kernel's
inode cache yet (its requester has the reply but has not run fs/fuse/inode.c fuse_iget):
the change's invalidation then finds no inode (-ENOENT), and the requester would keep an
hour-long entry for a path the change removed. Such a lookup needs no more work from the
daemon, only CPU time for its requester. So each successful getattr (libfuse's high-level
lookup is one) is remembered with its time, under the tree lock that changes are made
under; when a path a change touches answers -ENOENT and was answered within
``LOOKUP_LANDING_S``, the change retries its invalidation (short sleeps) until it returns 0
or ``LOOKUP_LANDING_S`` has passed. Once fuse_iget has hashed the inode the retry reaches
it, and if the retry comes first, fuse_change_attributes_i drops the reply's attributes
(``fi->attr_version`` is newer than the lookup's): exact. A GETATTR in flight needs none of
this: its inode exists, and the same attr_version check drops its reply. The bound: an
entry can be stale only if a requester takes longer than ``LOOKUP_LANDING_S`` after the
change, or than ``ANSWERS_KEPT`` further answered lookups, to install a reply it already
has. An -ENOENT no lookup explains (the kernel dropped that inode and its FORGET is still
queued; the requester was killed) costs the change one ``LOOKUP_LANDING_S`` wait.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import logging
import os
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from .errors import KernelError, MountError
from .sysfs.tree import PAGE_SIZE, OpenFile, Tree

__all__ = ["CACHE_TIMEOUT", "MountError", "TreeOperations", "fuse_options", "negotiate", "serve"]

log = logging.getLogger(__name__)

_F = TypeVar("_F", bound=Callable[..., Any])


#: fuse_main()'s status when its loop returned non-zero (libfuse 3 helper.c).
_LIBFUSE3_LOOP_ENDED = 8

#: Seconds the kernel may keep lookups and attributes when changes invalidate them.
CACHE_TIMEOUT = 3600.0
#: Directory listings kept between the chunks of one readdir (libfuse 3 asks per chunk).
_LISTINGS_KEPT = 8
#: Seconds an answered lookup may take to reach the kernel's inode cache, and the most a
#: change waits for one (module doc, "Lookups in flight").
LOOKUP_LANDING_S = 1.0
#: Answered lookups remembered per generation (two generations: at most twice this many,
#: about 5 MiB of paths).
ANSWERS_KEPT = 16384


#: The FUSE kernel module rejects a reply whose error is -512 or below (fs/fuse/dev.c
#: fuse_dev_do_write: ``oh.error <= -512``) and never answers the request: the caller would
#: hang in D state until the mount dies. Kernel-internal errnos (512 ERESTARTSYS and up, and
#: whatever the notifier-error-inject files are set to, down to -4095) cannot cross FUSE.
FUSE_MAX_ERRNO = 511


def _fuse_errno(err: int) -> int:
    """The errno to answer: the kernel's when FUSE can carry it; ERANGE (libfuse's own
    answer to an error value out of range) for one it cannot; EIO for a non-errno."""
    if 0 < err <= FUSE_MAX_ERRNO:
        return err
    if err > FUSE_MAX_ERRNO:
        log.warning("errno %d cannot cross FUSE (at most %d); answering ERANGE", err, FUSE_MAX_ERRNO)
        return errno.ERANGE
    log.error("KernelError(%d) is not an errno; answering EIO", err)
    return errno.EIO


def _translate(method: _F) -> _F:
    """KernelError -> its errno (``_fuse_errno``); anything else -> logged, EIO."""

    @functools.wraps(method)
    def wrapper(self: TreeOperations, *args: Any) -> Any:
        try:
            return method(self, *args)
        except KernelError as exc:
            raise self._os_error(_fuse_errno(exc.errno)) from None
        except Exception:
            log.exception("%s%r failed inside the tree; answering EIO", method.__name__, args)
            raise self._os_error(errno.EIO) from None

    return wrapper  # type: ignore[return-value]


class TreeOperations:
    """The libfuse callbacks, mapped onto ``Tree``.

    Not a subclass of the binding's ``Operations``: libfuse must see only these callbacks.
    """

    #: Timestamps are integer nanoseconds (also silences fusepy's float-time warning).
    use_ns = True

    def __init__(
        self,
        tree: Tree,
        ready_callback: Callable[[], None] | None = None,
        os_error: Callable[[int], OSError] | None = None,
        *,
        cache: bool = False,
        context: Callable[[], tuple[int, int, int]] | None = None,
    ) -> None:
        self.tree = tree
        self._ready_callback = ready_callback
        self._os_error = os_error if os_error is not None else _default_os_error()
        #: fuse_get_context(): (uid, gid, pid) of the request being served (None: no libfuse).
        self._context = context
        self.mounted = False  # set once libfuse has called init()
        self._files: dict[int, OpenFile] = {}
        self._next_fh = itertools.count(1)
        self._fh_lock = threading.Lock()  # only contended when serving multi-threaded
        # Fixed for the life of the mount: sysfs files all carry the same times.
        self._time_ns = time.time_ns()
        #: The kernel caches entries (see the module doc); needs ``tree.changes``.
        self.cache = cache and tree.changes is not None
        self._invalidator: _Invalidator | None = None
        self._invalidate_lock = threading.Lock()
        #: Successful getattrs (lookups) -> monotonic time answered, in two generations:
        #: written under the tree lock, read by changes (made under it too).
        self._answered: dict[str, float] = {}
        self._answered_before: dict[str, float] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self._listings: OrderedDict[str, list[str]] = OrderedDict()
        #: Paths invalidated so far, and paths whose lookup a change waited for (for tests
        #: and the benchmark).
        self.invalidations = 0
        self.lookups_awaited = 0

    # -- lifecycle ------------------------------------------------------------------------
    def init_with_config(self, conn: Any, config: Any) -> None:
        """mfusepy's init: negotiate the connection, then ``init``.

        With a cache, link targets are cached too (invalidated with their path), and
        READDIRPLUS is declined: names are all a listing returns, and plain READDIR moves a
        fifth of the bytes (512 Ki memory blocks list in half the time).
        """
        negotiate(conn, config, cache=self.cache)
        self.init("/")

    def init(self, _path: str) -> None:
        """Called once libfuse has the kernel's INIT: the mount exists.

        The kernel holds every other request until this returns, so the callback must only
        signal, never touch the mount itself.
        """
        if self.cache and self._invalidator is None:
            from ._fuse import path_invalidator

            self._invalidator = _Invalidator(path_invalidator(), self)
            assert self.tree.changes is not None
            self._unsubscribe = self.tree.changes.subscribe(self._forget)
        self.mounted = True
        if self._ready_callback is not None:
            try:
                self._ready_callback()
            except Exception:
                log.exception("ready callback failed")

    def destroy(self, _path: str) -> None:
        """libfuse tears the filesystem down: no invalidation may follow."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        with self._invalidate_lock:
            invalidator, self._invalidator = self._invalidator, None
        if invalidator is not None:
            invalidator.close()

    def _forget(self, paths: Iterable[str]) -> None:
        """A change removed or retargeted ``paths``: drop them from the kernel's caches.

        Runs in the thread that made the change (the FUSE thread for a store), under the
        tree lock, before the change returns; the invalidations themselves are sent by the
        ``_Invalidator``'s thread, waited for (see there for the one case not waited for).
        """
        paths = list(paths)
        with self._invalidate_lock:
            if self._invalidator is not None and paths:
                self._invalidator.run(paths)

    def _answered_recently(self, path: str) -> bool:
        answered = self._answered.get(path)
        if answered is None:
            answered = self._answered_before.get(path)
        return answered is not None and time.monotonic() - answered < LOOKUP_LANDING_S

    # -- metadata -------------------------------------------------------------------------
    @_translate
    def getattr(self, path: str, _fh: int | None = None) -> dict[str, int]:
        if self.cache:
            # Remembered under the tree lock, so a change made after this answer sees it.
            with self.tree.lock:
                st = self.tree.getattr(path)
                answered = self._answered
                answered[path] = time.monotonic()
                if len(answered) >= ANSWERS_KEPT:
                    self._answered_before, self._answered = answered, {}
        else:
            st = self.tree.getattr(path)
        t = self._time_ns
        atime, mtime, ctime = st.times or (t, t, t)  # set by utimes/chmod/chown (Tree.setattr)
        return {
            "st_mode": st.mode,
            "st_nlink": st.nlink,
            "st_size": st.size,
            "st_uid": st.uid,
            "st_gid": st.gid,
            "st_rdev": st.rdev,  # a device node's numbers (run's /dev: fakesysfs/devfs.py)
            "st_blksize": PAGE_SIZE,
            "st_blocks": 0,
            "st_atime": atime,
            "st_mtime": mtime,
            "st_ctime": ctime,
        }

    @_translate
    def readdir(self, path: str, _fh: int) -> list[str]:
        return [".", "..", *self.tree.readdir(path)]

    @_translate
    def readdir_with_offset(self, path: str, offset: int, _fh: int) -> Iterator[tuple[str, None, int]]:
        """mfusepy: the listing from ``offset`` on, one kernel buffer at a time.

        libfuse 3's high-level readdir without offsets copies the whole listing for every
        chunk (quadratic: seconds for 512 Ki blocks). The listing taken at offset 0 is kept
        for the chunks that follow, as a getdents() loop sees one snapshot.
        """
        listings = self._listings
        names = listings.get(path) if offset else None
        if names is None:
            names = [".", "..", *self.tree.readdir(path)]
            listings[path] = names
            while len(listings) > _LISTINGS_KEPT:
                listings.popitem(last=False)
        return self._entries(path, names, offset)

    def _entries(self, path: str, names: list[str], offset: int) -> Iterator[tuple[str, None, int]]:
        for index in range(offset, len(names)):
            yield names[index], None, index + 1
        if self._listings.get(path) is names:  # the listing was read to its end
            del self._listings[path]

    @_translate
    def readlink(self, path: str) -> str:
        return self.tree.readlink(path)

    @_translate
    def statfs(self, _path: str) -> dict[str, int]:
        # What statfs(2) on /sys reports, minus the magic number FUSE cannot carry.
        return {"f_bsize": PAGE_SIZE, "f_frsize": PAGE_SIZE, "f_namemax": 255}

    # -- file I/O -------------------------------------------------------------------------
    @_translate
    def open(self, path: str, flags: int) -> int:
        handle = self.tree.open(path, flags)  # R-SYS-01: EACCES here, even for root
        if self._context is not None:
            handle.uid = self._context()[0]  # the opener, for credential-dependent text (/proc/iomem)
        with self._fh_lock:
            fh = next(self._next_fh)
            self._files[fh] = handle
        return fh

    @_translate
    def read(self, _path: str | None, size: int, offset: int, fh: int) -> bytes:
        return self.tree.read(self._files[fh], size, offset)

    @_translate
    def write(self, _path: str | None, data: bytes, offset: int, fh: int) -> int:
        # R-SYS-02: the offset is ignored (`>>` arrives at 4096, a second echo on one fd at 8)
        # but by /proc/sys files (sysctl_writes_strict; Tree.write decides).
        # Whatever the store changed is invalidated inside it (``_forget``): before the reply.
        return self.tree.write(self._files[fh], data, offset)

    @_translate
    def truncate(self, _path: str | None, _length: int, _fh: int | None = None) -> int:
        # libfuse 2 turns O_TRUNC (`echo x > attr`) into a truncate after open; sysfs
        # ignores it, and without a handler the shell would see ENOSYS.
        return 0

    @_translate
    def release(self, _path: str | None, fh: int) -> int:
        with self._fh_lock:
            self._files.pop(fh, None)
        return 0

    # -- setattr: kept per node, as kernfs does ---------------------------------------------
    # The kernel checked who may (setattr_prepare under default_permissions) before asking.
    @_translate
    def chmod(self, path: str | None, mode: int) -> int:
        self._setattr(path, mode=mode)
        return 0

    @_translate
    def chown(self, path: str | None, uid: int, gid: int) -> int:
        self._setattr(path, uid=uid, gid=gid)
        return 0

    @_translate
    def utimens(self, path: str | None, times: tuple[int, int] | None = None) -> int:
        if times is None:
            self._setattr(path, touch=True)
        else:
            self._setattr(path, atime=times[0], mtime=times[1])
        return 0

    def _setattr(self, path: str | None, **changes: Any) -> None:
        if path is None:  # an fd-based setattr on a file libfuse no longer names
            raise KernelError(errno.ENOENT)
        self.tree.setattr(path, **changes)
        self._attributes_changed(path)

    def _attributes_changed(self, path: str) -> None:
        """Cached attributes of ``path`` are stale (the kernel refreshes its own from the
        setattr reply; this covers every other cached view)."""
        if self.cache:
            self._forget((path,))

    # -- namespace changes: sysfs has none (no kernfs_syscall_ops) ------------------------------
    # The VFS found the name (or its absence) and checked permissions before asking; what
    # remains is the answer of the missing inode operation.
    @_translate
    def mkdir(self, _path: str, _mode: int) -> int:
        raise KernelError(errno.EPERM)  # kernfs_iop_mkdir: no scops->mkdir

    @_translate
    def rmdir(self, _path: str) -> int:
        raise KernelError(errno.EPERM)  # kernfs_iop_rmdir: no scops->rmdir

    @_translate
    def rename(self, _old: str, _new: str) -> int:
        raise KernelError(errno.EPERM)  # kernfs_iop_rename: no scops->rename

    @_translate
    def unlink(self, _path: str) -> int:
        raise KernelError(errno.EPERM)  # vfs_unlink: no i_op->unlink

    @_translate
    def symlink(self, _target: str, _source: str) -> int:
        raise KernelError(errno.EPERM)  # vfs_symlink: no i_op->symlink

    @_translate
    def link(self, _target: str, _source: str) -> int:
        raise KernelError(errno.EPERM)  # vfs_link: no i_op->link

    @_translate
    def mknod(self, _path: str, mode: int, _dev: int) -> int:
        # do_mknodat: a regular file goes through vfs_create (EACCES, below); the other types
        # through vfs_mknod: no i_op->mknod.
        raise KernelError(errno.EACCES if stat.S_ISREG(mode) or not stat.S_IFMT(mode) else errno.EPERM)

    @_translate
    def create(self, _path: str, _mode: int, _fi: Any = None) -> int:
        raise KernelError(errno.EACCES)  # vfs_create/lookup_open: no i_op->create


class _Invalidator:
    """Sends a mount's invalidations from a thread of its own, so no FUSE request handler
    ever blocks in one.

    FUSE_NOTIFY_INVAL_INODE also drops a cached link target, its page, and takes that page's
    lock to do so (fs/fuse/inode.c fuse_reverse_inval_inode -> mm/truncate.c
    invalidate_inode_pages2_range). A reader filling that page holds the lock while its
    READLINK waits for the daemon (fs/fuse/dir.c fuse_readlink_folio): a single-threaded
    daemon invalidating the link from a store's handler would wait for itself forever.

    ``run`` waits for its batch, as exactness needs, except when this thread has been inside
    one invalidation for ``STUCK_S`` and sleeps uninterruptibly there (state ``D`` in
    /proc: a thread merely waiting for a CPU is still waited for): it then waits on a page
    lock whose holder waits for a
    request the caller's thread has yet to answer. That answer comes after the change, so
    the page it fills is current; the caller goes on, and the invalidation completes once
    the caller's thread has answered. The bound: a reader whose READLINK was answered
    before the change but who then waits more than ``STUCK_S`` for a CPU to install the
    answer leaves the old target readable until this thread gets the page lock after it.
    Lookups in flight (module doc) are awaited here too.
    """

    #: An invalidation that has not returned after this long waits for the daemon (one
    #: that does not returns in microseconds).
    STUCK_S = 0.002

    def __init__(self, invalidate: Callable[[str], int], ops: TreeOperations) -> None:
        self._invalidate = invalidate
        self._ops = ops
        self._cond = threading.Condition()
        self._jobs: list[tuple[list[str], threading.Event]] = []
        self._closed = False
        #: monotonic time the invalidation in progress started, or None.
        self._calling_since: float | None = None
        self._thread = threading.Thread(target=self._serve, name="fakesysfs-invalidate", daemon=True)
        self._thread.start()

    def run(self, paths: list[str]) -> None:
        """Invalidate ``paths``; returns when done (or, once, stuck: see the class doc)."""
        done = threading.Event()
        with self._cond:
            self._jobs.append((paths, done))
            self._cond.notify()
        while not done.wait(self.STUCK_S):
            since = self._calling_since
            if since is not None and time.monotonic() - since > self.STUCK_S and self._sleeps_in_kernel():
                return  # see the class doc

    def _sleeps_in_kernel(self) -> bool:
        """The thread's state is ``D`` (fs/proc/array.c task_state: TASK_UNINTERRUPTIBLE, as
        folio_lock waits); True too where /proc cannot tell, as before."""
        try:
            with open(f"/proc/self/task/{self._thread.native_id}/stat", "rb") as f:
                return f.read().rpartition(b")")[2].split()[0] == b"D"
        except (OSError, IndexError):
            return True

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                paths, done = self._jobs.pop(0)
            try:
                self._invalidate_all(paths)
            except Exception:
                log.exception("invalidating %d paths failed", len(paths))
            finally:
                done.set()

    def _call(self, path: str) -> int:
        self._calling_since = time.monotonic()
        try:
            return self._invalidate(path)
        finally:
            self._calling_since = None

    def _invalidate_all(self, paths: list[str]) -> None:
        ops = self._ops
        in_flight = []
        for path in paths:
            err = self._call(path)
            if err == 0:
                ops.invalidations += 1
            elif err == -errno.ENOENT and ops._answered_recently(path):
                in_flight.append(path)
        if in_flight:
            self._await_lookups(in_flight)

    def _await_lookups(self, paths: list[str]) -> None:
        """Retry the invalidation of ``paths`` until each reaches an inode (0) or
        ``LOOKUP_LANDING_S`` has passed: their requesters need only CPU time, which the
        sleeps give them."""
        ops = self._ops
        deadline = time.monotonic() + LOOKUP_LANDING_S
        delay = 50e-6
        ops.lookups_awaited += len(paths)
        while paths:
            time.sleep(delay)
            waiting = []
            for path in paths:
                err = self._call(path)
                if err == 0:
                    ops.invalidations += 1
                elif err == -errno.ENOENT:
                    waiting.append(path)
            paths = waiting
            if paths and time.monotonic() > deadline:
                log.debug("no inode for %d recently looked-up paths after %.1f s (first: %s)",
                          len(paths), LOOKUP_LANDING_S, paths[0])
                return
            delay = min(delay * 2, 0.005)


def negotiate(conn: Any, config: Any, *, cache: bool) -> None:
    """The connection flags (libfuse 3 only; mfusepy hands libfuse 2 a zeroed config)."""
    if conn is None or config is None:
        return
    from ._fuse import (
        FUSE_CAP_CACHE_SYMLINKS,
        FUSE_CAP_READDIRPLUS,
        FUSE_CAP_READDIRPLUS_AUTO,
    )

    conn.want &= ~(FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO)
    if cache and conn.capable & FUSE_CAP_CACHE_SYMLINKS:
        conn.want |= FUSE_CAP_CACHE_SYMLINKS


class _DispatchingOperations(TreeOperations):
    """fusepy calls ``operations(name, *args)``; mfusepy warns if this method exists."""

    def __call__(self, op: str, *args: Any) -> Any:
        method = getattr(self, op, None)
        if method is None:
            raise self._os_error(errno.ENOSYS)
        return method(*args)


def _default_os_error() -> Callable[[int], OSError]:
    try:
        from ._fuse import FuseOSError
    except ImportError:  # the tree can be driven without libfuse (unit tests)
        return lambda err: OSError(err, os.strerror(err))
    return FuseOSError  # type: ignore[no-any-return]


def fuse_options(
    *,
    foreground: bool = True,
    allow_other: bool = False,
    threads: bool | int = False,
    debug: bool = False,
    libfuse3: bool = False,
    cache: bool = False,
) -> dict[str, Any]:
    """The libfuse options a sysfs look-alike needs (docs/fuse.md, docs/clients.md).

    ``cache``: the kernel may keep lookups and attributes (``CACHE_TIMEOUT``) because every
    change invalidates what it touched (see the module doc); never negative lookups.
    """
    timeout = CACHE_TIMEOUT if cache else 0
    options: dict[str, Any] = {
        "foreground": foreground,
        # Single-threaded is ~2x faster (docs/fuse.md); the tree lock serializes anyway.
        "nothreads": not threads,
        "debug": debug,
        "fsname": "fakesysfs",
        "subtype": "fakesysfs",
        # Values change behind the page cache's back (`state` after a write to `online`).
        "direct_io": True,
        # A removed `driver` link, a new `memoryN` must be visible when the store returns:
        # cached only when changes invalidate what they touch (``cache``).
        "attr_timeout": timeout,
        "entry_timeout": timeout,
        "negative_timeout": 0,
        # Kernel checks mode bits for non-root; the tree refuses root at open (R-SYS-01).
        "default_permissions": True,
    }
    if allow_other:
        options["allow_other"] = True
    if threads and threads is not True and libfuse3:
        # A number: libfuse 3's worker threads at most (-o max_threads, fuse_loop_mt), a
        # few kept idle (libfuse 3.14 warns on stderr about its own default otherwise).
        options["max_threads"] = int(threads)
        options["max_idle_threads"] = min(int(threads), 4)
    if not libfuse3:
        # libfuse 2 refuses a non-empty mountpoint (such as /sys); libfuse 3 dropped it.
        options["nonempty"] = True
        # Without it libfuse 2 splits writes into 4 KiB requests, so a 5000-byte write
        # would be two stores; sysfs does one store of 4096 bytes and a short write
        # (R-SYS-02). libfuse 3 always allows big writes and rejects the option.
        options["big_writes"] = True
    return options


#: CPython releases the GIL around subprocess's vfork() from 3.12 on (gh-104372; Debian 12's
#: 3.11.2 does not, and no 3.11 release is relied on to have the backport).
_VFORK_RELEASES_GIL = (3, 12)


def _spawn_without_vfork_if_it_holds_the_gil() -> None:
    """Make ``subprocess`` of this process fork() rather than vfork() where vfork() holds the GIL.

    A mount served from a thread of this process (``Simulation.mount``) answers only when that
    thread gets the GIL. Before 3.12 the thread that spawns a child keeps the GIL until the
    child has exec'd, so a child whose ``cwd`` is in the mount waits in ``chdir`` for this
    process, which waits for the child: a deadlock that no ``timeout=`` ends. fork() returns
    at once (slower for a large parent, never stuck)."""
    import subprocess
    import sys

    if sys.version_info < _VFORK_RELEASES_GIL and getattr(subprocess, "_USE_VFORK", False):
        setattr(subprocess, "_USE_VFORK", False)  # noqa: B010 (private: mypy would refuse the attribute)
        log.debug("serving from a thread on Python %s: subprocess uses fork(), not vfork() (gh-104372)",
                 sys.version.split()[0])


def serve(
    tree: Tree,
    mountpoint: str | os.PathLike[str],
    foreground: bool = True,
    allow_other: bool = False,
    ready_callback: Callable[[], None] | None = None,
    *,
    threads: bool | int = False,
    debug: bool = False,
) -> str:
    """Mount ``tree`` at ``mountpoint`` and serve it until unmounted; returns how serving
    ended: ``"unmounted"``, or ``"signal"`` (SIGINT/SIGTERM/SIGHUP; libfuse unmounted).

    Returns after ``fusermount -u`` / ``umount`` or SIGINT/SIGTERM/SIGHUP (libfuse's own
    handlers exit the loop and unmount; they are installed only when serving from the main
    thread). ``ready_callback`` runs once, in the FUSE thread, when the mount is live; it
    must not access the mount itself. Raises ``ImportError`` when libfuse is unavailable
    and ``MountError`` when libfuse fails to mount.
    """
    from . import _fuse

    keep_cwd = -1
    if threading.current_thread() is not threading.main_thread():
        _spawn_without_vfork_if_it_holds_the_gil()
        # libfuse 3's fuse_daemonize() changes to "/" in the foreground too (lib/helper.c),
        # which is the whole process's directory: served from a thread (Simulation.mount,
        # run's /proc and /dev mounts), the caller keeps its own, given back at INIT.
        keep_cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def ready() -> None:
        nonlocal keep_cwd
        if keep_cwd >= 0:
            try:
                os.fchdir(keep_cwd)
            finally:
                os.close(keep_cwd)
                keep_cwd = -1
        if ready_callback is not None:
            ready_callback()

    ops_class = _DispatchingOperations if _fuse.CALLABLE_OPERATIONS else TreeOperations
    cache = _fuse.CAN_INVALIDATE and tree.changes is not None
    operations = ops_class(tree, ready, _fuse.FuseOSError, cache=cache, context=_fuse.fuse_get_context)
    options = fuse_options(
        foreground=foreground,
        allow_other=allow_other,
        threads=threads,
        debug=debug,
        libfuse3=_fuse.LIBFUSE3,
        cache=cache,
    )
    where = os.fspath(mountpoint)
    try:
        _fuse.FUSE(operations, where, **options)
    except RuntimeError as exc:
        # fusepy/mfusepy raise RuntimeError(status) when fuse_main() returns non-zero.
        status = exc.args[0] if exc.args else None
        if operations.mounted and _fuse.LIBFUSE3 and status == _LIBFUSE3_LOOP_ENDED:
            # libfuse 3 records the signal that ended the loop as the loop's error, so a
            # clean SIGTERM/SIGINT exit (already unmounted) comes back as status 8.
            log.debug("libfuse 3 loop ended by a signal; %s unmounted", where)
            return "signal"
        if operations.mounted:
            raise MountError(f"libfuse stopped serving {where} (status {status})") from None
        raise MountError(f"libfuse could not mount {where} (status {status})") from None
    finally:
        if keep_cwd >= 0:  # no INIT came: give the directory back all the same
            with contextlib.suppress(OSError):
                os.fchdir(keep_cwd)
            os.close(keep_cwd)
    return "unmounted"
