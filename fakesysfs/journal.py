"""Persistence: a state file that records every change durably and brings it back.

A state file is an append-only journal of text lines, each ``<crc32 as 8 hex digits> <JSON>``::

    1a2b3c4d {"format":"fakesysfs-state","version":1,"fakesysfs":"0.1.0","topology":"<TOML>"}
    5e6f7a8b {"n":1,"t":"store","path":"/devices/system/memory/memory40/state","data":"online\\n","errno":0}
    9c0d1e2f {"n":2,"t":"op","op":{"op":"add_cxl_region","size":4294967296,"target_node":1,...}}

The header holds the boot topology; each record is one change: a store (any result: a failed
store can still change state) or a harness op. The engine is deterministic, so booting the
topology and replaying the records in order rebuilds the state exactly, including uevent
SEQNUMs, the kernel log and one-shot faults already consumed; replay checks that every store
ends with the errno it had and refuses the file otherwise.

Guarantees (``fakesysfs mount --state FILE``, ``Simulation(state=FILE)``):

- A change is appended and ``fdatasync``'d while the hotplug lock is still held, after it
  was applied and before the store returns to the writer: an acknowledged write is on disk,
  and the journal order is the order in which the kernel applied the changes.
- A change that was cut short (SIGKILL, power loss) is not in the file, so the restarted
  tree is the state after the last complete change, never a half-done one: a chunked add
  killed at chunk k comes back as if it had not started. (Uevents that a killed operation
  had already sent to subscribers are not in the new history.)
- A torn last line (killed inside ``write``) is dropped on open; damage anywhere else is an
  error naming the line.

- A full disk refuses a change before it is applied: space for its record is reserved
  first (``Journal.reserve``: ``fallocate`` with FALLOC_FL_KEEP_SIZE, in steps of
  ``RESERVE_BYTES``), and a store whose record cannot be reserved fails with ENOSPC (or
  the error the reservation met) without reaching the kernel; the mount keeps serving,
  and once space is freed the next store goes through. Only a filesystem without
  ``fallocate`` falls back to a free-space check, which another writer can defeat: a
  record that still cannot be written stops the mount (its tree would show a change the
  file lacks).

Export: ``write_snapshot`` writes the header and the history to a new file atomically
(temporary file, fsync, rename); a snapshot is itself a state file. The history is a
``History``: with a journal it is the journal file itself; without one it is kept in memory
up to ``HISTORY_MEMORY_BYTES`` and then in an unnamed temporary file, so memory stays flat
however long a mount runs.

Both are opened through fakesysfs/safefile.py: a new state file is created 0600 with
O_EXCL; an existing one is used only if it is a regular file of ours that nobody else can
write (its CRC32 records could be forged otherwise), reached without following anybody
else's symlink; it is read and appended to through that one descriptor.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno as errno_mod
import itertools
import json
import logging
import os
import tempfile
import threading
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from . import __version__
from .errors import StateError

__all__ = ["FORMAT", "HISTORY_MEMORY_BYTES", "MAX_SNAPSHOT_BYTES", "RESERVE_BYTES", "History", "Journal",
           "StateError", "StateFile", "read_state", "write_snapshot"]

log = logging.getLogger(__name__)

FORMAT = "fakesysfs-state"
VERSION = 1
#: Space the journal reserves ahead of its end (less when the disk has less).
RESERVE_BYTES = 256 << 10
#: History kept in memory (as state-file lines) before it moves to a temporary file.
HISTORY_MEMORY_BYTES = 1 << 20
#: fallocate(2) mode: allocate blocks past the end without changing the file's size.
_FALLOC_FL_KEEP_SIZE = 0x01
#: The largest snapshot read (``mount --import``, ``read_state``): a regular file only.
MAX_SNAPSHOT_BYTES = 64 << 20


def encode_line(obj: dict[str, Any]) -> bytes:
    body = json.dumps(obj, separators=(",", ":"), ensure_ascii=True)
    return f"{zlib.crc32(body.encode()):08x} {body}\n".encode()


def _decode_line(raw: bytes) -> dict[str, Any] | None:
    """The object of one complete line, or None if it is damaged. A line whose checksum
    holds but whose JSON nests too deeply for the parser is not damaged: it was written so
    (ValueError, with the reason)."""
    try:
        text = raw.decode("ascii")
        crc, body = text[:8], text[9:]
        if text[8] != " " or int(crc, 16) != zlib.crc32(body.encode()):
            return None
    except (UnicodeDecodeError, ValueError, IndexError):
        return None
    try:
        obj = json.loads(body)
    except ValueError:
        return None
    except RecursionError:
        raise ValueError("its JSON nests too deeply to be a record") from None
    return obj if isinstance(obj, dict) else None


def _record_problem(obj: dict[str, Any]) -> str | None:
    """Why a checksummed record cannot be replayed as one, judged by its shape; None if fine."""
    kind = obj.get("t")
    if kind == "store":
        if not (isinstance(obj.get("path"), str) and isinstance(obj.get("data"), str)
                and type(obj.get("errno")) is int):
            return 'a store record needs "path" and "data" strings and an integer "errno"'
        if max(obj["data"], default="\0") > "\xff":
            return '"data" holds a character above U+00FF: not the bytes of a store (one per character)'
    elif kind == "op":
        op = obj.get("op")
        if not isinstance(op, dict) or not isinstance(op.get("op"), str):
            return 'an op record needs an "op" object naming the op'
    else:
        return f"unknown record type {kind!r}"
    return None


@dataclass(slots=True)
class StateFile:
    """What ``read_state`` found."""

    topology: str
    records: list[dict[str, Any]]
    #: Bytes of complete, intact lines (the rest is a torn tail).
    good_size: int
    torn_tail: bool


def read_state(path: str | os.PathLike[str]) -> StateFile:
    """Parse a state file. StateError if it is not one or is damaged before its last line."""
    from .safefile import read_regular

    name = os.fspath(path)
    return parse_state(name, read_regular(name, MAX_SNAPSHOT_BYTES, "a snapshot"))


def parse_state(name: str, data: bytes) -> StateFile:
    """Parse the content ``data`` of the state file ``name`` (see ``read_state``)."""
    lines = data.split(b"\n")
    tail = lines.pop()  # after the last newline: empty, or a torn line
    offset = 0
    header: dict[str, Any] | None = None
    records: list[dict[str, Any]] = []
    for i, raw in enumerate(lines, 1):
        try:
            obj = _decode_line(raw)
        except ValueError as exc:
            raise StateError(f"state file {name}: line {i}: {exc}") from None
        if obj is None and i == 1:
            raise StateError(f"{name} is not a fakesysfs state file (its first line is not a checksummed "
                             f"\"{FORMAT}\" header)")
        if obj is None:
            if i == len(lines) and not tail:
                # The last complete line can only be damaged by a write cut short (no fsync
                # returned for it): treat it as torn.
                return _finish(name, header, records, offset, True)
            raise StateError(f"state file {name}: line {i} is damaged (checksum or JSON); the file cannot be "
                             "trusted past it")
        if header is None:
            if obj.get("format") != FORMAT:
                raise StateError(f"{name} is not a fakesysfs state file (its first line has no "
                                 f"\"format\": \"{FORMAT}\")")
            if obj.get("version") != VERSION:
                raise StateError(f"state file {name} has format version {obj.get('version')!r}; this fakesysfs "
                                 f"reads version {VERSION}")
            header = obj
        else:
            if type(obj.get("n")) is not int or obj["n"] != len(records) + 1:
                raise StateError(f"state file {name}: line {i} holds record {obj.get('n')!r}, expected "
                                 f"{len(records) + 1} (records lost or reordered)")
            problem = _record_problem(obj)
            if problem is not None:
                raise StateError(f"state file {name}: line {i} (record {obj['n']}): {problem}")
            records.append(obj)
        offset += len(raw) + 1
    return _finish(name, header, records, offset, bool(tail))


def _finish(name: str, header: dict[str, Any] | None, records: list[dict[str, Any]], offset: int,
            torn: bool) -> StateFile:
    if header is None:
        raise StateError(f"{name} is empty or has no complete header line: not a fakesysfs state file")
    topology = header.get("topology")
    if not isinstance(topology, str):
        raise StateError(f"state file {name}: the header has no topology text")
    return StateFile(topology, records, offset, torn)


def _fsync_dir(path: str) -> None:
    fd = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_fd(fd: int) -> bytes:
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _header(topology: str) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "fakesysfs": __version__, "topology": topology}


_fallocate_fn: Any = None


def _fallocate_keep_size(fd: int, offset: int, length: int) -> None:
    """fallocate(fd, FALLOC_FL_KEEP_SIZE, offset, length); OSError on failure (EOPNOTSUPP
    where the filesystem cannot)."""
    global _fallocate_fn
    if _fallocate_fn is None:
        fn = ctypes.CDLL(None, use_errno=True).fallocate64
        fn.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
        fn.restype = ctypes.c_int
        _fallocate_fn = fn
    if _fallocate_fn(fd, _FALLOC_FL_KEEP_SIZE, offset, length) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class Journal:
    """The open state file, appended to with ``append`` (write + fdatasync)."""

    def __init__(self, path: str, fd: int, next_n: int) -> None:
        self.path = path
        self.fd = fd
        self.next_n = next_n
        #: Records appended by this process, and the time spent making them durable.
        self.appended = 0
        self.sync_seconds = 0.0
        #: Bytes in the file (header and complete records).
        self.size = os.fstat(fd).st_size
        self._reserved_end = self.size
        self._can_fallocate = True

    @classmethod
    def create(cls, name: str, fd: int, topology: str) -> Journal:
        """Start the empty state file open on ``fd`` with the header (durable, directory
        entry included); the journal owns ``fd`` once this returns."""
        os.write(fd, encode_line(_header(topology)))
        os.fsync(fd)
        _fsync_dir(name)
        return cls(name, fd, 1)

    @classmethod
    def resume(cls, name: str, fd: int, state: StateFile) -> Journal:
        """Append to the state file open on ``fd``, first cutting off a torn tail; the
        journal owns ``fd`` once this returns."""
        if state.torn_tail:
            log.warning("%s: dropped a partial last record (a change that was never acknowledged)", name)
            os.ftruncate(fd, state.good_size)
            os.fsync(fd)
        return cls(name, fd, len(state.records) + 1)

    def reserve(self, nbytes: int) -> None:
        """Make room on disk for a record of up to ``nbytes`` before the change is applied,
        so that a full disk refuses the change instead of losing it; OSError (ENOSPC,
        EDQUOT...) when there is none."""
        if self._reserved_end - self.size >= nbytes:
            return
        if self._can_fallocate:
            for length in (max(nbytes, RESERVE_BYTES), nbytes):
                try:
                    _fallocate_keep_size(self.fd, self.size, length)
                except OSError as exc:
                    if exc.errno in (errno_mod.EOPNOTSUPP, errno_mod.ENOSYS):
                        self._can_fallocate = False
                        break
                    if exc.errno not in (errno_mod.ENOSPC, errno_mod.EDQUOT) or length == nbytes:
                        raise
                    continue
                self._reserved_end = self.size + length
                return
        # No fallocate here: the free space statvfs reports (another writer may take it).
        st = os.fstatvfs(self.fd)
        if st.f_bavail * st.f_frsize < nbytes + 2 * st.f_bsize:
            raise OSError(errno_mod.ENOSPC, os.strerror(errno_mod.ENOSPC))

    def append(self, record: dict[str, Any]) -> None:
        """Write one record and wait until it is on disk."""
        import time

        line = encode_line({"n": self.next_n, **record})
        start = time.perf_counter()
        written = os.write(self.fd, line)
        self.size += written
        if written != len(line):
            raise OSError(errno_mod.EIO, f"short write ({written} of {len(line)} bytes)")
        os.fdatasync(self.fd)
        self.sync_seconds += time.perf_counter() - start
        self.appended += 1
        record["n"] = self.next_n
        self.next_n += 1

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


class History:
    """Every state change since boot, in order, as state-file record lines: what ``export``
    writes and a state file replays.

    Without a journal the lines are kept in memory up to ``HISTORY_MEMORY_BYTES``, then in
    an unnamed temporary file (``tempfile.TemporaryFile``: O_TMPFILE, mode 0600, no name
    to attack): the daemon's memory stays flat, the disk grows as a journal would. With a
    journal (``follow``) the journal file is the history and nothing is kept twice. If the
    temporary file cannot be written (a full disk), the mount keeps serving and ``export``
    says why it cannot.
    """

    def __init__(self, memory_bytes: int = HISTORY_MEMORY_BYTES) -> None:
        self.memory_bytes = memory_bytes
        self._lines: list[bytes] = []
        self._memory = 0
        self._spool: Any = None  # a binary file object once the lines left memory
        self._fd = -1  # where records are read from: the spool's or the journal's
        self._start = 0  # offset of the first record in that file
        self._size = 0  # bytes of records in that file
        self._count = 0
        self._journal: Journal | None = None
        self._lock = threading.Lock()
        #: Why the history is incomplete (then ``export`` refuses), or None.
        self.broken: str | None = None

    def __len__(self) -> int:
        return self._count

    def append(self, record: dict[str, Any]) -> None:
        """Keep one change (without a journal; with one, ``Journal.append`` is the keeping)."""
        self._count += 1
        if self._journal is not None or self.broken is not None:
            return
        body = {key: value for key, value in record.items() if key != "n"}
        line = encode_line({"n": self._count, **body})
        if self._spool is None:
            self._lines.append(line)
            self._memory += len(line)
            if self._memory <= self.memory_bytes:
                return
            line = b""
            try:
                self._spool = tempfile.TemporaryFile(prefix="fakesysfs-history-")  # noqa: SIM115
                self._fd = self._spool.fileno()
            except OSError as exc:
                self._fail(exc)
                return
            lines, self._lines, self._memory = self._lines, [], 0
            line = b"".join(lines)
        with self._lock:
            try:
                self._spool.write(line)
                self._size += len(line)
            except OSError as exc:
                self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        self.broken = f"the history could not be kept in a temporary file ({exc.strerror or exc})"
        log.warning("%s: export will not work for this mount", self.broken)
        self._lines, self._memory = [], 0

    def follow(self, journal: Journal) -> None:
        """From now on the history is ``journal``'s file (which must hold exactly the changes
        counted so far): the copy kept here is dropped."""
        fd = os.dup(journal.fd)  # opened for reading too (safefile.open_append), never by name again
        self.close()
        start = 0  # records begin after the header line
        while chunk := os.pread(fd, 65536, start):
            end = chunk.find(b"\n")
            start += len(chunk) if end < 0 else end + 1
            if end >= 0:
                break
        self._fd, self._start = fd, start
        self._journal = journal
        self._count = journal.next_n - 1
        self.broken = None

    def view(self) -> tuple[int, Iterator[dict[str, Any]]]:
        """(count, the records) as of now, for ``export``; call under the kernel lock, read
        the records after releasing it (appends go past what the view covers)."""
        if self.broken is not None:
            raise StateError(f"cannot export: {self.broken}")
        with self._lock:
            if self._spool is not None:
                self._spool.flush()
            lines = list(self._lines)
            journal = self._journal
            size = journal.size - self._start if journal is not None else self._size
            fd, start, count = self._fd, self._start, self._count
        return count, self._records(fd, start, size, lines)

    @staticmethod
    def _records(fd: int, start: int, size: int, lines: list[bytes]) -> Iterator[dict[str, Any]]:
        offset, end, rest = start, start + size, b""
        while offset < end:
            chunk = os.pread(fd, min(1 << 20, end - offset), offset)
            if not chunk:
                raise StateError("the history file ended early")
            offset += len(chunk)
            *complete, rest = (rest + chunk).split(b"\n")
            for raw in complete:
                yield _checked(raw)
        for raw in lines:
            yield _checked(raw.rstrip(b"\n"))

    def close(self) -> None:
        if self._spool is not None:
            with contextlib.suppress(OSError):
                self._spool.close()
            self._spool = None
        elif self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = -1
        self._journal = None
        self._lines, self._memory, self._size = [], 0, 0


def _checked(raw: bytes) -> dict[str, Any]:
    obj = _decode_line(raw)
    if obj is None:
        raise StateError("the history holds a damaged record")
    return obj


def write_snapshot(path: str | os.PathLike[str], topology: str | None, records: Iterable[dict[str, Any]]) -> None:
    """Write a complete state file (header + ``records``) to ``path`` atomically."""
    if topology is None:
        raise StateError("this simulation's topology cannot be written as TOML, so it cannot be exported")
    from .safefile import replace

    lines = (encode_line({**record, "n": n}) for n, record in enumerate(records, 1))
    replace(path, itertools.chain([encode_line(_header(topology))], lines))
