#!/usr/bin/env python3
"""The bare FUSE floor of scripts/bench.py: the same tree, answered from constants.

Serves a snapshot of a fakesysfs tree (made by ``snapshot()`` from an in-process ``Tree``)
through the same binding, the same libfuse options and the same registered callbacks as
``fakesysfs.fuse_adapter`` (single-threaded, direct_io, default_permissions, and the same
cache timeouts), but every answer is a dictionary lookup: no engine, no tree, no lock. What
it costs is the cost of FUSE and the binding themselves.

Families keep the snapshot small at any machine size: in a directory, the entries named
``memory<N>`` are stored once (the first one, walked in full) plus the list of ids; any
other ``memory<K>`` is answered from that template, with ``memory<N>`` in link targets
replaced by ``memory<K>``.

    python scripts/bench_bare_fuse.py MOUNTPOINT SNAPSHOT.json [--no-cache] [--ready-fd FD]

Serves in the foreground until unmounted (``fusermount3 -u MOUNTPOINT``); writes ``ok`` to
``--ready-fd`` once the mount is live.
"""

from __future__ import annotations

import argparse
import bisect
import errno
import json
import os
import re
import stat
import sys
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fakesysfs.errors import KernelError
from fakesysfs.sysfs.tree import PAGE_SIZE, Tree

_FAMILY = re.compile(r"memory(\d+)")
_IN_FAMILY = re.compile(r"^(.*?)/memory(\d+)(/.*)?$")


# -- snapshots ------------------------------------------------------------------------------
def _ranges(ids: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for i in ids:
        if out and out[-1][1] == i - 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


def snapshot(tree: Tree) -> dict[str, Any]:
    """``{"entries": {path: entry}, "families": {dir: [template_id, ranges]}}`` of ``tree``;
    entries are ``["d", names]``, ``["l", target]`` or ``["f", mode, text]``."""
    entries: dict[str, Any] = {}
    families: dict[str, Any] = {}

    def walk(path: str) -> None:
        st = tree.getattr(path or "/")
        if stat.S_ISLNK(st.mode):
            entries[path] = ["l", tree.readlink(path)]
            return
        if stat.S_ISREG(st.mode):
            try:
                text = tree.cat(path)
            except KernelError:
                text = ""
            entries[path] = ["f", stat.S_IMODE(st.mode), text]
            return
        names = tree.readdir(path or "/")
        ids = sorted(int(m.group(1)) for n in names if (m := _FAMILY.fullmatch(n)))
        members = {f"memory{i}" for i in ids} if len(ids) > 1 else set()
        entries[path] = ["d", [n for n in names if n not in members]]
        if members:
            families[path] = [ids[0], _ranges(ids)]
        for name in names:
            if name not in members or name == f"memory{ids[0]}":
                walk(f"{path}/{name}")

    walk("")
    return {"entries": entries, "families": families}


# -- the filesystem -----------------------------------------------------------------------------
class _Family:
    __slots__ = ("bounds", "names", "template")

    def __init__(self, template: int, ranges: list[list[int]]) -> None:
        self.template = template
        self.bounds = ranges
        self.names: list[str] | None = None

    def __contains__(self, i: int) -> bool:
        k = bisect.bisect_right(self.bounds, [i, float("inf")]) - 1
        return k >= 0 and self.bounds[k][0] <= i <= self.bounds[k][1]

    def listing(self) -> list[str]:
        if self.names is None:
            self.names = [f"memory{i}" for lo, hi in self.bounds for i in range(lo, hi + 1)]
        return self.names


class BareOperations:
    """Constants in the shape of fakesysfs.fuse_adapter.TreeOperations (same callbacks)."""

    use_ns = True

    def __init__(self, snap: dict[str, Any], cache: bool, os_error: Any) -> None:
        self.cache = cache
        self._err = os_error
        t = time.time_ns()
        self._stat: dict[str, dict[str, int]] = {}
        self._links: dict[str, str] = {}
        self._files: dict[str, bytes] = {}
        self._dirs: dict[str, list[str]] = {}
        for path, entry in snap["entries"].items():
            key = path or "/"
            kind = entry[0]
            if kind == "d":
                mode, size, nlink = stat.S_IFDIR | 0o755, 0, 2
                self._dirs[key] = entry[1]
            elif kind == "l":
                mode, size, nlink = stat.S_IFLNK | 0o777, len(entry[1]), 1
                self._links[key] = entry[1]
            else:
                mode, size, nlink = stat.S_IFREG | entry[1], PAGE_SIZE, 1
                self._files[key] = entry[2].encode("latin-1")
            self._stat[key] = {"st_mode": mode, "st_nlink": nlink, "st_size": size, "st_uid": 0, "st_gid": 0,
                               "st_blksize": PAGE_SIZE, "st_blocks": 0, "st_atime": t, "st_mtime": t, "st_ctime": t}
        self._families = {d or "/": _Family(*f) for d, f in snap["families"].items()}
        self._listings: OrderedDict[str, list[str]] = OrderedDict()

    def _template(self, path: str) -> tuple[str, int, int] | None:
        """``dir/memoryK/rest`` of a family -> (template path, K, template id)."""
        m = _IN_FAMILY.match(path)
        if m is None:
            return None
        family = self._families.get(m.group(1) or "/")
        k = int(m.group(2))
        if family is None or k not in family:
            return None
        return f"{m.group(1)}/memory{family.template}{m.group(3) or ''}", k, family.template

    def _key(self, path: str) -> str:
        if path in self._stat:
            return path
        found = self._template(path)
        if found is None or found[0] not in self._stat:
            raise self._err(errno.ENOENT)
        return found[0]

    # -- callbacks ------------------------------------------------------------------------
    def init_with_config(self, conn: Any, config: Any) -> None:
        from fakesysfs.fuse_adapter import negotiate

        negotiate(conn, config, cache=self.cache)
        self.init("/")

    def init(self, _path: str) -> None:
        if READY_FD is not None:
            os.write(READY_FD, b"ok\n")
            os.close(READY_FD)

    def destroy(self, path: str) -> None:
        pass

    def getattr(self, path: str, _fh: int | None = None) -> dict[str, int]:
        st = self._stat.get(path)
        return st if st is not None else self._stat[self._key(path)]

    def readlink(self, path: str) -> str:
        target = self._links.get(path)
        if target is not None:
            return target
        found = self._template(path)
        if found is None or found[0] not in self._links:
            raise self._err(errno.ENOENT)
        return self._links[found[0]].replace(f"memory{found[2]}", f"memory{found[1]}")

    def _names(self, path: str) -> list[str]:
        names = self._dirs.get(path)
        if names is None:
            names = self._dirs.get(self._key(path))
            if names is None:
                raise self._err(errno.ENOTDIR)
        family = self._families.get(path)
        return [".", "..", *names, *(family.listing() if family is not None else ())]

    def readdir(self, path: str, _fh: int) -> list[str]:
        return self._names(path)

    def readdir_with_offset(self, path: str, offset: int, _fh: int) -> Iterator[tuple[str, None, int]]:
        names = self._listings.get(path) if offset else None
        if names is None:
            names = self._listings[path] = self._names(path)
            while len(self._listings) > 8:
                self._listings.popitem(last=False)
        return self._entries(path, names, offset)

    def _entries(self, path: str, names: list[str], offset: int) -> Iterator[tuple[str, None, int]]:
        for index in range(offset, len(names)):
            yield names[index], None, index + 1
        if self._listings.get(path) is names:
            del self._listings[path]

    def statfs(self, _path: str) -> dict[str, int]:
        return {"f_bsize": PAGE_SIZE, "f_frsize": PAGE_SIZE, "f_namemax": 255}

    def open(self, path: str, _flags: int) -> int:
        self._key(path)
        return 0

    def read(self, path: str, size: int, offset: int, _fh: int) -> bytes:
        data = self._files.get(path)
        if data is None:
            data = self._files.get(self._key(path), b"")
        return data[offset : offset + size]

    def write(self, _path: str, data: bytes, _offset: int, _fh: int) -> int:
        return len(data)

    def truncate(self, _path: str, _length: int, _fh: int | None = None) -> int:
        return 0

    def release(self, _path: str, _fh: int) -> int:
        return 0


class _DispatchingBare(BareOperations):
    def __call__(self, op: str, *args: Any) -> Any:
        method = getattr(self, op, None)
        if method is None or op.startswith("_"):
            raise self._err(errno.ENOSYS)
        return method(*args)


READY_FD: int | None = None


def main() -> int:
    global READY_FD
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mountpoint")
    parser.add_argument("snapshot")
    parser.add_argument("--no-cache", action="store_true", help="zero cache timeouts (the uncached floor)")
    parser.add_argument("--ready-fd", type=int)
    args = parser.parse_args()
    READY_FD = args.ready_fd

    from fakesysfs import _fuse
    from fakesysfs.fuse_adapter import fuse_options

    snap = json.loads(Path(args.snapshot).read_text())
    cache = _fuse.CAN_INVALIDATE and not args.no_cache
    ops_class = _DispatchingBare if _fuse.CALLABLE_OPERATIONS else BareOperations
    ops = ops_class(snap, cache, _fuse.FuseOSError)
    options = fuse_options(libfuse3=_fuse.LIBFUSE3, cache=cache)
    options["fsname"] = options["subtype"] = "barefuse"
    try:
        _fuse.FUSE(ops, args.mountpoint, **options)
    except RuntimeError:
        pass  # libfuse 3 reports a signal-ended loop as status 8
    return 0


if __name__ == "__main__":
    sys.exit(main())
