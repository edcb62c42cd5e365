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

Export: ``write_snapshot`` writes the header and the history to a new file atomically
(temporary file, fsync, rename); a snapshot is itself a state file.

Both are opened through fakesysfs/safefile.py: a new state file is created 0600 with
O_EXCL; an existing one is used only if it is a regular file of ours that nobody else can
write (its CRC32 records could be forged otherwise), reached without following anybody
else's symlink; it is read and appended to through that one descriptor.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import __version__

if TYPE_CHECKING:
    from .engine import Kernel
    from .harness import Harness
    from .sysfs.tree import Tree

__all__ = ["FORMAT", "MAX_SNAPSHOT_BYTES", "Journal", "StateError", "StateFile", "boot_state", "read_state",
           "write_snapshot"]

log = logging.getLogger(__name__)

FORMAT = "fakesysfs-state"
VERSION = 1
#: The largest snapshot read (``mount --import``, ``read_state``): a regular file only.
MAX_SNAPSHOT_BYTES = 64 << 20


class StateError(Exception):
    """A state file that cannot be used; the message names the file and the problem."""


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


class Journal:
    """The open state file, appended to with ``append`` (write + fdatasync)."""

    def __init__(self, path: str, fd: int, next_n: int) -> None:
        self.path = path
        self.fd = fd
        self.next_n = next_n
        #: Records appended by this process, and the time spent making them durable.
        self.appended = 0
        self.sync_seconds = 0.0

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

    def append(self, record: dict[str, Any]) -> None:
        """Write one record and wait until it is on disk."""
        import time

        line = encode_line({"n": self.next_n, **record})
        start = time.perf_counter()
        written = os.write(self.fd, line)
        if written != len(line):
            raise OSError(f"short write ({written} of {len(line)} bytes)")
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


def write_snapshot(path: str | os.PathLike[str], topology: str | None, records: list[dict[str, Any]]) -> None:
    """Write a complete state file (header + ``records``) to ``path`` atomically."""
    if topology is None:
        raise StateError("this simulation's topology cannot be written as TOML, so it cannot be exported")
    from .safefile import replace

    lines = (encode_line({**record, "n": n}) for n, record in enumerate(records, 1))
    replace(path, itertools.chain([encode_line(_header(topology))], lines))


def boot_state(path: str | os.PathLike[str], topology: str | os.PathLike[str] | None = None, *,
               topology_text: str | None = None) -> tuple[Kernel, Tree, Harness]:
    """Boot from a state file and attach its journal: a new (missing or empty) file is
    created with ``topology`` (a file; ``topology_text``; default: the embedded default);
    an existing one boots its recorded topology and replays its records. A ``topology``
    given for an existing file must be the one recorded. A file this call created is removed
    again when the boot fails (a bad topology must not leave an empty state file that the
    next start takes for a new one). Raises StateError, ConfigError, OSError."""
    from .engine import Kernel
    from .harness import Harness, HarnessError
    from .safefile import open_append_created, remove_created
    from .sysfs import build_tree
    from .topology import default_topology_text, load_topology, read_topology_file

    name = os.fspath(path)
    given: str | None = topology_text
    if topology is not None:
        given = read_topology_file(topology)
    fd, created = open_append_created(name, readable=True)
    try:
        data = _read_fd(fd)
        if not data:
            text = given if given is not None else default_topology_text()
            config = load_topology(text=text)
            kernel = Kernel(config)
            tree = build_tree(kernel)
            harness = Harness(kernel, tree, text)
            harness.journal = Journal.create(name, fd, text)
        else:
            state = parse_state(name, data)
            config = load_topology(text=state.topology)
            if given is not None and load_topology(text=given) != config:
                raise StateError(f"state file {name} was created with a different topology; drop the topology "
                                 "argument to resume it, or use a new state file")
            kernel = Kernel(config)
            tree = build_tree(kernel)
            harness = Harness(kernel, tree, state.topology)
            try:
                harness.replay(state.records, where=f"state file {name}")
            except HarnessError as exc:
                raise StateError(str(exc)) from None
            harness.journal = Journal.resume(name, fd, state)
    except BaseException:
        if created:
            remove_created(name, fd)
        os.close(fd)
        raise
    return kernel, tree, harness
