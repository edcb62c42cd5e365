"""The simulator's own controls over a running kernel: fault injection, firmware hot-plug, the
store trace, change notification and the history that persistence replays.

One set of operations ("ops"), reached four ways, all ending in ``Harness.apply``/``execute``:

- Python: ``fakesysfs.Simulation`` methods;
- files under ``kernel/debug/fakesysfs/`` in the mount (``fakesysfs/debugfs.py``);
- the mount's control socket (``fakesysfs ctl MOUNTPOINT ...``, ``control.py``);
- replay of a state file (``fakesysfs/journal.py``).

Ops (JSON objects; sizes and addresses are integers or strings such as ``"16G"``/``"0x..."``,
errnos are numbers or names such as ``"ENOMEM"``)::

    {"op": "notifier_error", "action": "MEM_GOING_ONLINE", "errno": "ENOMEM"}   # 0 clears
    {"op": "memmap_fail_at_chunk", "chunk": 3}                                 # null clears
    {"op": "probe_fail", "device": "dax0.0", "errno": "ENOMEM"}                # 0 clears
    {"op": "block_usage", "block": 40, "pinned": 8, "used": 1000, "poisoned": 1}
    {"op": "clear_faults"}
    {"op": "add_cxl_region", "size": "16G", "target_node": 1, "start": ..., "decoder": ...,
     "adistance": ..., "numa_node": ..., "driver": ...}                         # start: auto
    {"op": "add_hmem", "size": "8G", "target_node": 2, ...}
    {"op": "remove", "device": "region3"}                                      # or "hmem.4"
    {"op": "add_block_delay", "seconds": 0.001}                                # timing only
    {"op": "modprobe", "module": "kmem"}                                       # or device_dax
    {"op": "rmmod", "module": "kmem"}

Every op except ``add_block_delay`` changes state and becomes part of the history (and of the
journal of a ``--state`` mount) once it succeeded; a failing op changes nothing and raises
``HarnessError`` naming what was wrong. Stores are recorded by the tree's store tracer, whatever
their result (a failed store may still change state: it consumes a one-shot fault, resets a
stored online type, logs to kmsg). Writes to the simulated ``/proc/sys/vm`` files are stores
too, recorded with their ``/proc/...`` path (a sysfs tree has no ``/proc``): every tree of
the /proc files is watched (``watch_proc``) and replay writes them to ``proc_tree``.
"""

from __future__ import annotations

import errno as errno_mod
import json
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .config import CXL_GRANULE, CxlRegionConfig, HmemConfig
from .errors import ConfigError, ControlError, EventsLost, HarnessError, KernelError, TraceGap
from .journal import History, Journal, StateError, encode_line
from .topology import dump_topology, size_value

if TYPE_CHECKING:
    from .control import ControlServer
    from .engine import Kernel
    from .engine.events import Uevent
    from .sysfs.tree import Tree

__all__ = ["HISTORY_OPS", "TRACE_BYTES", "Harness", "HarnessError", "StoreRecord", "StoreTrace", "TraceGap",
           "errno_name", "parse_errno"]

log = logging.getLogger(__name__)
#: What the machine does, one line each: stores with their result, uevents, ops, kernel
#: messages (``fakesysfs mount -v``/``--log-file``). INFO; off unless a handler wants INFO.
trace_log = logging.getLogger("fakesysfs.trace")

#: Ops that change state (recorded in the history); the others are timing or read-only.
HISTORY_OPS = ("notifier_error", "memmap_fail_at_chunk", "probe_fail", "block_usage", "clear_faults",
               "add_cxl_region", "add_hmem", "remove", "modprobe", "rmmod")
NOTIFIER_ACTIONS = ("MEM_GOING_ONLINE", "MEM_GOING_OFFLINE")
#: The path prefix of stores to the simulated /proc files in the trace and the history.
PROC_PREFIX = "/proc"
#: Where the harness's own files live in the mount (kept out of the ABI trees).
DEBUGFS_DIR = "/kernel/debug/fakesysfs"


def errno_name(err: int) -> str:
    return errno_mod.errorcode.get(err, str(err))


def parse_errno(value: object, key: str = "errno") -> int:
    """``12``, ``-12``, ``"ENOMEM"``, ``"-ENOMEM"``, ``"12"`` -> 12 (0 allowed: "no error")."""
    if isinstance(value, bool):
        raise HarnessError(f"{key}: expected an errno number or name, got {value!r}")
    if isinstance(value, int):
        err = abs(value)
    elif isinstance(value, str):
        text = value.strip().removeprefix("-")
        if text.isascii() and text.isdigit():  # str.isdigit() also takes "²" (int() refuses) and "١"
            digits = text.lstrip("0") or "0"
            err = int(digits) if len(digits) <= 4 else 4096  # out of range below (int() stops at 4300 digits)
        elif hasattr(errno_mod, text) and text.startswith("E"):
            err = getattr(errno_mod, text)
        elif text == "EHWPOISON":
            err = 133
        else:
            raise HarnessError(f"{key}: {value!r} is not an errno (a number or a name like ENOMEM)")
    else:
        raise HarnessError(f"{key}: expected an errno number or name, got {type(value).__name__}")
    if err > 4095:
        raise HarnessError(f"{key}: {value!r} is out of range (errnos are 1..4095)")
    return err


def _size(value: object, key: str) -> int:
    """A size or address argument, read as the topology's ``size``/``start`` keys are."""
    try:
        return size_value(value, key)
    except ConfigError as exc:
        raise HarnessError(str(exc)) from None


def _int(value: object, key: str, *, minimum: int | None = 0) -> int:
    if isinstance(value, str):
        try:
            value = int(value.strip(), 0)
        except ValueError:
            raise HarnessError(f"{key}: {value!r} is not an integer") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise HarnessError(f"{key}: expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise HarnessError(f"{key}: must be >= {minimum} (got {value})")
    return value


def _result(err: int) -> str:
    return "ok" if err == 0 else f"{errno_name(err)} ({os.strerror(err)})"


#: The properties an activity line shows of a uevent besides action, devpath and subsystem.
_LOGGED_KEYS = ("DRIVER",)


def _op_text(members: Mapping[str, Any]) -> str:
    """``{"op": "remove", "device": "region3"}`` -> ``remove device=region3``."""
    words = [str(members["op"])] if "op" in members else []
    words += [f"{k}={v:#x}" if k in ("start", "size") and isinstance(v, int) else f"{k}={v}"
              for k, v in members.items() if k != "op" and v is not None]
    return " ".join(words)


# -- the store trace --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StoreRecord:
    """One ``write(2)`` to a file of the tree: one store, with its result."""

    #: Position in the trace (1, 2, ...).
    seq: int
    #: Wall clock when the store returned (``time.time()``).
    time: float
    #: Path below the mount (``/devices/system/memory/memory40/state``).
    path: str
    #: The bytes written (at most 4096).
    data: bytes
    #: 0 on success, else the errno the writer saw.
    errno: int

    @property
    def ok(self) -> bool:
        return self.errno == 0

    @property
    def error(self) -> str | None:
        """``"EBUSY"``..., None on success."""
        return errno_name(self.errno) if self.errno else None

    @property
    def text(self) -> str:
        """What the store handler saw, minus one trailing newline (``sysfs_streq``)."""
        return self.data.split(b"\0", 1)[0].decode("latin-1").removesuffix("\n")

    def matches(self, path: str | re.Pattern[str] | Callable[[str], bool] | None = None,
                data: str | None = None, errno: int | None = None, ok: bool | None = None) -> bool:
        """``path``: exact path, compiled regex (full match) or predicate; ``data``: the text
        (see ``text``); ``errno``: exact errno; ``ok``: success or failure."""
        if path is not None:
            if isinstance(path, str):
                if self.path != path:
                    return False
            elif isinstance(path, re.Pattern):
                if not path.fullmatch(self.path):
                    return False
            elif not path(self.path):
                return False
        if data is not None and self.text != data.removesuffix("\n"):
            return False
        if errno is not None and self.errno != errno:
            return False
        return ok is None or self.ok == ok

    def to_json(self) -> dict[str, Any]:
        """The ``--trace`` record of ``fakesysfs run``, plus ``seq`` and ``time``."""
        return {"seq": self.seq, "time": self.time, "path": self.path, "data": self.data.decode("latin-1"),
                "errno": self.errno, "error": self.error}


#: Bytes a ``StoreTrace`` keeps by default: each record counts its data plus ``RECORD_COST``
#: (the Python objects around it), so about 32 Ki small stores or 1,900 stores of 4 KiB.
TRACE_BYTES = 8 << 20
#: What one kept record costs besides its data (object, path, times; measured ~250 bytes).
RECORD_COST = 256
#: Store data one ``trace`` reply of the control socket carries at most (JSON escapes can
#: make it up to six times as long); the client pages with ``since``.
TRACE_REPLY_BYTES = 1 << 20


class StoreTrace:
    """The latest stores of a tree (a ring of at most ``max_bytes``, see ``TRACE_BYTES``),
    with blocking waits. A waiter whose ``after`` lies before what is kept gets
    ``TraceGap``, never a silent answer from the stores that are left."""

    def __init__(self, max_bytes: int = TRACE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._records: deque[StoreRecord] = deque()
        self._bytes = 0
        self._seq = 0
        #: ``seq`` of the newest record the ring dropped (a ``clear`` is not a loss).
        self._evicted = 0
        self._cond = threading.Condition()

    @property
    def seq(self) -> int:
        """``seq`` of the latest store (0 before the first)."""
        return self._seq

    @property
    def evicted(self) -> int:
        """``seq`` of the newest store dropped to keep the trace within ``max_bytes``."""
        return self._evicted

    def append(self, path: str, data: bytes, err: int) -> StoreRecord:
        with self._cond:
            self._seq += 1
            record = StoreRecord(self._seq, time.time(), path, bytes(data), err)
            self._records.append(record)
            self._bytes += len(record.data) + RECORD_COST
            while self._bytes > self.max_bytes and len(self._records) > 1:
                old = self._records.popleft()
                self._bytes -= len(old.data) + RECORD_COST
                self._evicted = old.seq
            self._cond.notify_all()
        return record

    def missed(self, seq: int) -> int:
        """How many stores after ``seq`` the ring no longer has."""
        return max(0, self._evicted - seq)

    def since(self, seq: int = 0) -> list[StoreRecord]:
        """Stores with ``seq`` greater than ``seq``, oldest first (as far as kept: see
        ``missed``); the cost is the number returned."""
        with self._cond:
            return self._since(seq)

    def _since(self, seq: int) -> list[StoreRecord]:
        newer = []
        for record in reversed(self._records):
            if record.seq <= seq:
                break
            newer.append(record)
        newer.reverse()
        return newer

    def clear(self) -> None:
        with self._cond:
            self._records.clear()
            self._bytes = 0

    def wait_for(self, after: int = 0, timeout: float | None = 10.0, **criteria: Any) -> StoreRecord | None:
        """The first store after ``after`` matching ``criteria`` (see ``StoreRecord.matches``),
        waiting up to ``timeout`` seconds; None on timeout, ``TraceGap`` if stores after
        ``after`` were dropped from the ring before they were looked at."""
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = after
        with self._cond:
            while True:
                if self._evicted > seen:
                    raise TraceGap(f"stores #{seen + 1}..#{self._evicted} are no longer in the trace (it keeps "
                                   f"the latest {self.max_bytes >> 20} MiB of stores); wait with a later 'after' "
                                   "(the seq of a recent store)")
                for record in self._since(seen):
                    seen = record.seq
                    if record.matches(**criteria):
                        return record
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)


# -- the harness ------------------------------------------------------------------------------
class Harness:
    """The controls of one kernel and its tree. ``Harness(kernel, tree)`` attaches itself:
    a store tracer, an event listener and the ``kernel/debug/fakesysfs/`` files."""

    def __init__(self, kernel: Kernel, tree: Tree, topology_text: str | None = None) -> None:
        from .debugfs import install_debugfs

        self.kernel = kernel
        self.tree = tree
        #: The boot topology as TOML (the header of exported snapshots).
        self.topology_text = topology_text if topology_text is not None else _dump(kernel)
        self.trace = StoreTrace()
        #: Every state change since boot, in order: what a state file replays (kept on disk
        #: past ``HISTORY_MEMORY_BYTES``; with a journal, the journal is the history).
        self.history = History()
        #: The durable history (``--state``), if any: set with ``attach_journal``.
        self.journal: Journal | None = None
        self.replaying = False
        #: Called with the OSError when the journal cannot be written (the mount daemon stops
        #: serving: the tree would otherwise show a state the state file does not have).
        self.on_journal_error: Callable[[OSError], None] | None = None
        self.add_block_delay = 0.0
        self._changed = threading.Condition()
        self._generation = 0
        self._waiters = 0
        tree.store_tracers.append(self._on_store)
        tree.store_checks.append(self._before_store)
        kernel.events.subscribe(self._on_event)
        install_debugfs(tree, self)
        self._proc_tree: Tree | None = None

    @property
    def proc_tree(self) -> Tree:
        """The simulated /proc files (fakesysfs/procfs.py ``build_proc_tree``), watched: what
        ``Simulation.proc`` reads and writes, what ``mount --proc`` serves and what replay
        writes a ``/proc/...`` store to."""
        if self._proc_tree is None:
            from .procfs import build_proc_tree

            self._proc_tree = build_proc_tree(self.kernel)
            self.watch_proc(self._proc_tree, PROC_PREFIX)
        return self._proc_tree

    def watch_proc(self, tree: Tree, prefix: str = "") -> None:
        """Record the stores to ``tree``, a tree of the simulated /proc files whose paths
        are ``prefix`` + its own (``fakesysfs run``'s staging tree holds ``/proc/...``
        already), as changes: traced, in the history, journaled before the write returns."""
        tree.store_tracers.append(lambda path, data, err: self._on_store(prefix + path, data, err))
        tree.store_checks.append(lambda path, count: self._before_store(prefix + path, count))

    def attach_journal(self, journal: Journal) -> None:
        """Journal every change to ``journal`` from now on; its file must already hold the
        history so far (a new file, or the one just replayed)."""
        self.journal = journal
        self.history.follow(journal)

    def close(self) -> None:
        """Close the journal and the history's file."""
        if self.journal is not None:
            self.journal.close()
        self.history.close()

    # -- recording ----------------------------------------------------------------------------
    def _before_store(self, path: str, count: int) -> None:
        """Tree store check: with a journal, room for the store's record must be reserved
        before the store runs, or it is refused (ENOSPC) without reaching the kernel."""
        if self.journal is None or self.replaying:
            return
        # A record's worst case: every byte of path and data escaped as \u00XX.
        self._reserve(6 * (len(path.encode("utf-8", "surrogateescape")) + count) + 160)

    def _reserve(self, nbytes: int) -> None:
        assert self.journal is not None
        try:
            self.journal.reserve(nbytes)
        except OSError as exc:
            err = exc.errno or errno_mod.EIO
            log.warning("state journal %s: no room for the next record (%s): change refused", self.journal.path,
                        exc.strerror or exc)
            raise KernelError(err, f"state journal {self.journal.path}: {exc.strerror or exc}") from None

    def _on_store(self, path: str, data: bytes, err: int) -> None:
        """Tree store tracer (runs under the hotplug lock, after the store)."""
        if self.replaying:
            return
        if trace_log.isEnabledFor(logging.INFO):
            trace_log.info("store %s %r: %s", path, data.decode("latin-1"), _result(err))
        self.trace.append(path, data, err)
        self._commit({"t": "store", "path": path, "data": data.decode("latin-1"), "errno": err})

    def _on_event(self, event: Uevent) -> None:
        if trace_log.isEnabledFor(logging.INFO) and not self.replaying:
            trace_log.info("uevent %d %s %s (%s)%s", event.seqnum, event.action, event.devpath, event.subsystem,
                           "".join(f" {k}={v}" for k, v in event.env if k in _LOGGED_KEYS))
        if self.add_block_delay and not self.replaying and event.action == "add" and event.subsystem == "memory":
            time.sleep(self.add_block_delay)  # the knob: each memory block added takes this long
        self._bump()

    def _commit(self, record: dict[str, Any]) -> None:
        """Append a state change to the history and, with a journal, make it durable before
        the caller's store or op returns (that is what acknowledged means)."""
        self._bump()
        if self.journal is not None:
            try:
                self.journal.append(record)
            except OSError as exc:
                if self.on_journal_error is not None:
                    self.on_journal_error(exc)
                raise KernelError(errno_mod.EIO, f"state journal {self.journal.path}: {exc.strerror or exc}") from None
        self.history.append(record)

    def _bump(self) -> None:
        # Called under the hotplug lock (every store, event and op), so the increment is
        # serialized; waiters register before they compare, so skipping the notify when
        # nobody waits loses no wake-up.
        self._generation += 1
        if self._waiters:
            with self._changed:
                self._changed.notify_all()

    @property
    def generation(self) -> int:
        """A counter that moves on every store, event and op (for ``wait_changed``)."""
        return self._generation

    def wait_changed(self, generation: int, timeout: float | None) -> bool:
        """Block until something changed after ``generation`` was read; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            self._waiters += 1
            try:
                while self._generation == generation:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._changed.wait(remaining)
            finally:
                self._waiters -= 1
        return True

    # -- ops ----------------------------------------------------------------------------------
    def apply(self, op: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and run one op, record it (durably with a journal); its result members.

        Raises HarnessError (nothing changed) for a request that cannot be honoured."""
        with self.kernel.lock:
            canonical = self.normalize(op)
            if self.journal is not None and canonical["op"] in HISTORY_OPS:
                try:
                    self._reserve(len(encode_line({"n": self.journal.next_n, "t": "op", "op": canonical})))
                except KernelError as exc:
                    raise HarnessError(f"{canonical['op']}: {exc.strerror}", exc.errno or errno_mod.EIO) from None
            try:
                result = self.execute(canonical)
            except HarnessError as exc:
                if trace_log.isEnabledFor(logging.INFO):
                    trace_log.info("op %s: refused: %s", _op_text(canonical),
                                   str(exc).removeprefix(f"{canonical['op']}: "))
                raise
            if trace_log.isEnabledFor(logging.INFO):
                trace_log.info("op %s: %s", _op_text(canonical), _op_text(result) or "done")
            if canonical["op"] in HISTORY_OPS:
                self._commit({"t": "op", "op": canonical})
            return result

    def normalize(self, op: Mapping[str, Any]) -> dict[str, Any]:
        """The op with every argument parsed and defaulted, as recorded and replayed (an
        automatic ``start`` is resolved here, so replay does not depend on placement)."""
        name = op.get("op")
        spec = _OP_ARGS.get(name) if isinstance(name, str) else None
        if spec is None:
            known = ", ".join(sorted(_OP_ARGS))
            raise HarnessError(f"unknown harness op {name!r} (known: {known})")
        required, optional = spec
        args = {k: v for k, v in op.items() if k not in ("op", "id")}
        unknown = sorted(set(args) - set(required) - set(optional))
        if unknown:
            raise HarnessError(f"{name}: unknown argument(s) {', '.join(unknown)} "
                               f"(takes {', '.join([*required, *optional]) or 'nothing'})")
        missing = [k for k in required if args.get(k) is None]
        if missing:
            raise HarnessError(f"{name}: missing argument(s) {', '.join(missing)}")
        out: dict[str, Any] = {"op": name}
        for key, conv in {**required, **optional}.items():
            value = args.get(key)
            out[key] = None if value is None else conv(value, key)
        if name in ("add_cxl_region", "add_hmem") and out["start"] is None:
            align = CXL_GRANULE if name == "add_cxl_region" else max(self.kernel.block_size, 2 << 20)
            try:
                out["start"] = self.kernel.find_free_physical_range(out["size"], align)
            except KernelError as exc:
                raise HarnessError(f"{name}: {exc.strerror}", exc.errno or errno_mod.EINVAL) from None
        return out

    def execute(self, op: dict[str, Any]) -> dict[str, Any]:
        """Run a normalized op (no recording); HarnessError before any change if refused."""
        k = self.kernel
        name = op["op"]
        with k.lock:
            try:
                handler: Callable[..., dict[str, Any]] = getattr(self, f"_op_{name}")
                return handler(**{key: v for key, v in op.items() if key != "op"})
            except KernelError as exc:
                raise HarnessError(f"{name}: {exc.strerror}", exc.errno or errno_mod.EINVAL) from None

    def _op_notifier_error(self, action: str, errno: int) -> dict[str, Any]:
        if action not in NOTIFIER_ACTIONS:
            raise HarnessError(f"notifier_error: action must be one of {', '.join(NOTIFIER_ACTIONS)} (got {action!r})")
        self.kernel.notifier_error[action] = -errno  # R-FI-01/02: the debugfs file's value
        return {}

    def _op_memmap_fail_at_chunk(self, chunk: int | None) -> dict[str, Any]:
        self.kernel.faults.memmap_fail_at_chunk = chunk
        return {}

    def _op_probe_fail(self, device: str, errno: int) -> dict[str, Any]:
        if not re.fullmatch(r"dax\d+\.\d+", device):
            raise HarnessError(f"probe_fail: {device!r} is not a dax device name like dax0.0")
        if errno:
            self.kernel.faults.probe_fail[device] = errno
        else:
            self.kernel.faults.probe_fail.pop(device, None)
        return {}

    def _op_block_usage(self, block: int, pinned: int | None, used: int | None, poisoned: int | None) -> dict[str, Any]:
        k = self.kernel
        b = k.blocks.get(block)
        if b is None:
            raise HarnessError(f"block_usage: memory{block} does not exist", errno_mod.ENODEV)
        if (pinned or used) and not b.online:
            raise HarnessError(f"block_usage: memory{block} is offline; pinned and used pages exist only "
                               "while a block is online")
        if (pinned or used) and b.zone is None:
            raise HarnessError(f"block_usage: memory{block} spans zones; it takes no usage")
        new_pinned = b.pinned if pinned is None else pinned
        new_used = b.movable_used if used is None else used
        if (pinned or used) and b.unmovable + new_pinned + new_used > b.managed:
            raise HarnessError(f"block_usage: memory{block} has {b.managed} managed pages, {b.unmovable} of them "
                               f"unmovable: {new_pinned} pinned + {new_used} used do not fit", errno_mod.ENOSPC)
        k.set_block_usage(b, pinned=pinned, movable_used=used, poisoned=poisoned)
        return {}

    def _op_clear_faults(self) -> dict[str, Any]:
        k = self.kernel
        for action in NOTIFIER_ACTIONS:
            k.notifier_error[action] = 0
        k.faults.memmap_fail_at_chunk = None
        k.faults.probe_fail.clear()
        for b in k.blocks.values():
            if b.pinned or b.poisoned:
                k.set_block_usage(b, pinned=0, poisoned=0)
        return {}

    def _op_add_cxl_region(self, size: int, target_node: int, start: int, decoder: str | None,
                           adistance: int | None, numa_node: int | None, driver: str | None) -> dict[str, Any]:
        if decoder is not None and not re.fullmatch(r"decoder\d+\.\d+", decoder):
            raise HarnessError(f"add_cxl_region: decoder {decoder!r} is not a name like decoder0.0")
        cfg = CxlRegionConfig(start, size, target_node, decoder or "decoder0.0", adistance, numa_node, driver)
        name, dev = self.kernel.cxl_region_hotplug_add(cfg, new_device=decoder is None)
        return {"name": name, "device": dev.name if dev is not None else None, "start": start, "size": size}

    def _op_add_hmem(self, size: int, target_node: int, start: int, adistance: int | None,
                     numa_node: int | None, driver: str | None) -> dict[str, Any]:
        cfg = HmemConfig(start, size, target_node, adistance, numa_node, driver)
        name, dev = self.kernel.hmem_hotplug_add(cfg)
        return {"name": name, "device": dev.name if dev is not None else None, "start": start, "size": size}

    def _op_remove(self, device: str) -> dict[str, Any]:
        m = re.fullmatch(r"(region|hmem\.)(\d+)", device)
        if m is None:
            raise HarnessError(f"remove: {device!r} is neither a CXL region (regionN) nor an hmem device (hmem.N); "
                               "pmem namespaces are not hot-removable", errno_mod.ENODEV)
        if m.group(1) == "region":
            self.kernel.cxl_region_hotplug_remove(int(m.group(2)))
        else:
            self.kernel.hmem_hotplug_remove(int(m.group(2)))
        return {}

    def _module(self, op: str, module: str) -> str:
        name = module.replace("-", "_")  # kmod's modname_normalize(): device-dax is device_dax
        if name not in self.kernel.dax_drivers:
            raise HarnessError(f"{op}: {module!r} is not a simulated module (kmem, device_dax)", errno_mod.EINVAL)
        return name

    def _op_modprobe(self, module: str) -> dict[str, Any]:
        """A simulated module loads (what a modprobe.d ``install`` command of ``fakesysfs
        run`` asks for): its driver registers and binds the devices it matches; EEXIST
        when it is loaded already (init_module's answer; modprobe itself skips a live one)."""
        self.kernel.dax_driver_register(self._module("modprobe", module))
        return {}

    def _op_rmmod(self, module: str) -> dict[str, Any]:
        """delete_module(): the driver unregisters, releasing its devices (kmem leaks
        memory it cannot remove, as on a host); ENOENT when it is not loaded."""
        self.kernel.dax_driver_unregister(self._module("rmmod", module))
        return {}

    def _op_add_block_delay(self, seconds: float) -> dict[str, Any]:
        self.add_block_delay = seconds
        return {}

    # -- replay -------------------------------------------------------------------------------
    def replay(self, records: list[dict[str, Any]], where: str = "history", *, keep: bool = True) -> None:
        """Re-run recorded changes on a freshly booted kernel; each must end as recorded
        (``keep``: and add them to the history; a resumed journal is the history already).
        Raises HarnessError naming the first record that does not."""
        k = self.kernel
        self.replaying = True
        try:
            with k.lock:
                for n, record in enumerate(records, 1):
                    self._replay_one(n, record, where)
                    if keep:
                        self.history.append(record)
                self._bump()
        finally:
            self.replaying = False
            self.add_block_delay = 0.0  # a timing knob, not state: a restart runs at full speed

    def _replay_one(self, n: int, record: dict[str, Any], where: str) -> None:
        kind = record.get("t")
        if kind == "op":
            try:
                self.execute(self.normalize(record["op"]))
            except (HarnessError, KeyError, TypeError) as exc:
                raise HarnessError(f"{where}: record {n} ({json.dumps(record.get('op'))}) failed on replay: {exc}",
                                   errno_mod.EIO) from None
            return
        if kind != "store":
            raise HarnessError(f"{where}: record {n} has unknown type {kind!r}", errno_mod.EIO)
        path, data, want = record["path"], record["data"].encode("latin-1"), record["errno"]
        tree, inner = self.tree, path
        if path.startswith(PROC_PREFIX + "/"):  # a sysctl write (watch_proc)
            tree, inner = self.proc_tree, path.removeprefix(PROC_PREFIX)
        try:
            fh = tree.open(inner, os.O_WRONLY)
        except KernelError as exc:
            shown = json.dumps(path)[1:-1]  # one line, whatever the record holds
            raise HarnessError(f"{where}: record {n}: {shown} cannot be opened for writing on replay "
                               f"({errno_name(exc.errno or 0)}): the topology or the fakesysfs version changed",
                               errno_mod.EIO) from None
        got = 0
        try:
            tree.write(fh, data)
        except KernelError as exc:
            got = exc.errno or 0
        if got != want:
            shown = data.decode("latin-1")
            raise HarnessError(
                f"{where}: record {n}: writing {shown!r} to {path} gave {errno_name(got) if got else 'success'} on "
                f"replay but {errno_name(want) if want else 'success'} when recorded: the topology or the fakesysfs "
                "version changed", errno_mod.EIO)

    # -- export -------------------------------------------------------------------------------
    def export(self, path: str | os.PathLike[str]) -> int:
        """Write a snapshot (the boot topology and every change since) to ``path``
        atomically; ``fakesysfs mount --state`` (or ``Simulation(state=...)``) resumes it.
        Returns the number of records."""
        from .journal import write_snapshot

        with self.kernel.lock:
            count, records = self.history.view()
        write_snapshot(path, self.topology_text, records)
        return count

    # -- the control socket -------------------------------------------------------------------
    def register_control(self, server: ControlServer) -> None:
        """Serve the ops, and ``state``, ``trace``, ``kmsg``, ``iomem``, ``export``,
        ``wait_event``, ``wait_store`` on a mount's control socket: ``ControlServer(kernel,
        ops=harness.register_control)``, done by whoever serves the mount."""

        def op_handler(name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
            def handle(request: dict[str, Any]) -> dict[str, Any]:
                try:
                    return self.apply({**request, "op": name})
                except HarnessError as exc:
                    raise ControlError(str(exc), errno_name(exc.errno)) from None

            return handle

        for name in _OP_ARGS:
            server.register(name, op_handler(name))
        for name, handler in (("state", self._ctl_state), ("trace", self._ctl_trace), ("kmsg", self._ctl_kmsg),
                              ("dmesg", self._ctl_dmesg), ("iomem", self._ctl_iomem), ("export", self._ctl_export),
                              ("wait_event", self._ctl_wait_event), ("wait_store", self._ctl_wait_store)):
            server.register(name, _wrap(handler))

    def _ctl_state(self, _request: dict[str, Any]) -> dict[str, Any]:
        from .state import snapshot

        return {"state": snapshot(self.kernel)}

    def _ctl_trace(self, request: dict[str, Any]) -> dict[str, Any]:
        """The kept stores after ``since``, at most ``TRACE_REPLY_BYTES`` of data per reply
        (``more``: ask again with ``since`` = the last ``seq``); ``missed`` counts the stores
        after ``since`` the ring no longer has."""
        since = _int(request.get("since", 0), "since")
        stores: list[dict[str, Any]] = []
        size = 0
        records = self.trace.since(since)
        for record in records:
            if stores and size + len(record.data) > TRACE_REPLY_BYTES:
                break
            stores.append(record.to_json())
            size += len(record.data)
        return {"seq": self.trace.seq, "missed": self.trace.missed(since), "more": len(stores) < len(records),
                "stores": stores}

    def _ctl_kmsg(self, _request: dict[str, Any]) -> dict[str, Any]:
        with self.kernel.lock:
            return {"lines": list(self.kernel.kmsg)}

    def _ctl_dmesg(self, _request: dict[str, Any]) -> dict[str, Any]:
        """The log as /dev/kmsg has it: [level, seq, usec, text with device prefix]."""
        with self.kernel.lock:
            return {"records": [[r.level, r.seq, r.ts_usec, r.text] for r in self.kernel.kmsg_records]}

    def _ctl_iomem(self, _request: dict[str, Any]) -> dict[str, Any]:
        with self.kernel.lock:
            return {"text": self.kernel.resources.format_iomem()}

    def _ctl_export(self, request: dict[str, Any]) -> dict[str, Any]:
        path = request.get("path")
        if not isinstance(path, str) or not os.path.isabs(path):
            raise HarnessError("export: 'path' must be an absolute file name (the daemon's cwd is /)")
        try:
            count = self.export(path)
        except StateError as exc:
            raise HarnessError(f"export: {exc}", errno_mod.EIO) from None
        except OSError as exc:
            raise HarnessError(f"export: cannot write {path}: {exc.strerror or exc}",
                               exc.errno or errno_mod.EIO) from None
        return {"path": path, "records": count}

    def _ctl_wait_event(self, request: dict[str, Any]) -> dict[str, Any]:
        from .control import event_to_json

        criteria = request.get("match", {})
        wanted = _words(criteria) if isinstance(criteria, dict) else ""
        if not isinstance(criteria, dict) or not all(isinstance(v, (str, int)) for v in criteria.values()):
            raise HarnessError("wait_event: 'match' must be an object of KEY: value (ACTION, DEVPATH, SUBSYSTEM, "
                               "DRIVER, ... or action, devpath, subsystem, seqnum)")
        criteria = {(k.lower() if k in ("ACTION", "DEVPATH", "SUBSYSTEM", "SEQNUM") else k): v
                    for k, v in criteria.items()}
        after = _int(request.get("after", 0), "after")
        timeout = _timeout(request)

        try:
            event = self.kernel.events.wait_for(after=after, timeout=timeout, **criteria)
        except EventsLost as exc:
            raise HarnessError(f"wait_event: {exc}", errno_mod.ENOBUFS) from None
        if event is None:
            raise HarnessError(f"wait_event: no event {'matching ' + wanted if wanted else 'at all'} after SEQNUM "
                               f"{after} within {timeout:g} s",
                               errno_mod.ETIMEDOUT)
        return {"event": event_to_json(event)}

    def _ctl_wait_store(self, request: dict[str, Any]) -> dict[str, Any]:
        criteria: dict[str, Any] = {}
        if request.get("path") is not None:
            try:
                criteria["path"] = re.compile(str(request["path"]))
            except re.error as exc:
                raise HarnessError(f"wait_store: 'path' is not a regular expression: {exc}") from None
        if request.get("data") is not None:
            criteria["data"] = str(request["data"])
        if request.get("errno") is not None:
            criteria["errno"] = parse_errno(request["errno"])
        after = _int(request.get("after", 0), "after")
        timeout = _timeout(request)
        try:
            record = self.trace.wait_for(after=after, timeout=timeout, **criteria)
        except TraceGap as exc:
            raise HarnessError(f"wait_store: {exc}", TraceGap.errno) from None
        if record is None:
            wanted = _words({k: request.get(k) for k in ("path", "data", "errno")})
            raise HarnessError(f"wait_store: no store {'matching ' + wanted if wanted else 'at all'} after #{after} "
                               f"within {timeout:g} s",
                               errno_mod.ETIMEDOUT)
        return {"store": record.to_json()}


def _words(criteria: Mapping[str, Any]) -> str:
    """``{"ACTION": "online", "data": None}`` -> ``ACTION=online``: criteria as they are typed."""
    return " ".join(f"{k}={v}" for k, v in criteria.items() if v is not None)


def _timeout(request: dict[str, Any]) -> float:
    value = request.get("timeout", 10.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise HarnessError(f"'timeout' must be a number of seconds >= 0 (got {value!r})")
    return float(value)


def _wrap(handler: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def handle(request: dict[str, Any]) -> dict[str, Any]:
        try:
            return handler(request)
        except HarnessError as exc:
            raise ControlError(str(exc), errno_name(exc.errno)) from None

    return handle


def _dump(kernel: Kernel) -> str | None:
    try:
        return dump_topology(kernel.config)
    except ConfigError:
        return None


def _str_arg(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise HarnessError(f"{key}: expected a string, got {value!r}")
    return value.strip()


def _seconds(value: object, key: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise HarnessError(f"{key}: {value!r} is not a number of seconds") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 10:
        raise HarnessError(f"{key}: expected seconds from 0 to 10, got {value!r}")
    return float(value)


_Conv = Callable[[object, str], Any]
#: op -> (required arguments, optional arguments), each name -> converter.
_OP_ARGS: dict[str, tuple[dict[str, _Conv], dict[str, _Conv]]] = {
    "notifier_error": ({"action": _str_arg, "errno": parse_errno}, {}),
    "memmap_fail_at_chunk": ({}, {"chunk": _int}),
    "probe_fail": ({"device": _str_arg, "errno": parse_errno}, {}),
    "block_usage": ({"block": _int}, {"pinned": _int, "used": _int, "poisoned": _int}),
    "clear_faults": ({}, {}),
    "add_cxl_region": ({"size": _size, "target_node": _int},
                       {"start": _size, "decoder": _str_arg, "adistance": _int, "numa_node": _int,
                        "driver": _str_arg}),
    "add_hmem": ({"size": _size, "target_node": _int},
                 {"start": _size, "adistance": _int, "numa_node": _int, "driver": _str_arg}),
    "remove": ({"device": _str_arg}, {}),
    "add_block_delay": ({"seconds": _seconds}, {}),
    "modprobe": ({"module": _str_arg}, {}),
    "rmmod": ({"module": _str_arg}, {}),
}
