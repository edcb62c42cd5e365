"""``fakesysfs.Simulation``: a simulated machine for tests of software that manages memory.

    from fakesysfs import Simulation

    with Simulation("cxl-host.toml") as sim:       # or TOML text, a BootConfig, or nothing
        root = sim.mount()                           # a live /sys look-alike at a temp dir
        agent = subprocess.Popen(["./my-agent", root])
        region = sim.add_cxl_region("4G", node=1)    # firmware hot-adds a CXL RAM region
        sim.wait_until(lambda s: all(b.movable for b in s.blocks_of(region)), timeout=10)
        assert sim.stores(path=re.compile(r".*/memory\\d+/state"))[0].text == "online_movable"

(``examples/simulation.py`` is a complete one, with a real agent, that the suite runs.)

In-process, ``sim.tree`` (``cat``/``echo``) and ``sim.kernel`` are the engine itself; the mount
is served from a thread of the calling process, so every process of the machine (an agent in
any language, started before or after) sees it, while the test keeps direct access to the
engine: waits need no polling and no IPC, and the state objects are exact.

Everything that changes state goes through the harness (``fakesysfs/harness.py``), so the same
operations exist as files under ``kernel/debug/fakesysfs/`` of the mount and as
``fakesysfs ctl MOUNTPOINT ...`` commands, and they are recorded in the history that
``export`` writes and ``Simulation(state=FILE)`` replays.

Errors: ``KernelError`` (a store failed with the kernel's errno), ``HarnessError`` (a harness
request was refused: bad argument, range taken...), ``ConfigError`` (an invalid topology),
``StateError`` (an unusable state file), ``MountError`` (FUSE could not mount), and
``TimeoutError`` from the waits, whose message lists what did happen.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from errno import ELOOP
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from . import state as _state
from .config import BootConfig
from .errors import KernelError, MountError
from .harness import Harness, StoreRecord, parse_errno
from .sysfs.tree import Link

if TYPE_CHECKING:
    from .control import ControlServer
    from .engine import Kernel
    from .engine.events import Uevent
    from .mountpoint import Placement
    from .sysfs.tree import Tree

__all__ = ["Mark", "Simulation", "TopologySource"]

#: A topology: a file path, TOML text, a BootConfig, or None for the embedded default.
TopologySource = str | os.PathLike[str] | BootConfig | None
_T = TypeVar("_T")
MOUNT_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Mark:
    """A point in time: the last uevent SEQNUM and the last store ``seq`` when it was taken."""

    seqnum: int
    store_seq: int


def _is_toml_text(source: str) -> bool:
    return "\n" in source or "=" in source or source.lstrip().startswith("[")


class Simulation:
    """A booted simulated kernel, its sysfs tree and its harness; optionally mounted."""

    #: The engine (``fakesysfs.engine.Kernel``): kernel-named methods, all state. Changes
    #: made by calling it directly bypass the harness: they are not in the history, so a
    #: state file or an export does not have them.
    kernel: Kernel
    #: The attribute tree (``cat``/``echo``/``readdir`` by path, as the mount serves it).
    tree: Tree
    #: The harness: ops, store trace, history, journal (``fakesysfs/harness.py``).
    harness: Harness

    def __init__(self, topology: TopologySource = None, *, state: str | os.PathLike[str] | None = None,
                 validate: bool = True) -> None:
        """Boot ``topology`` (a TOML file path, TOML text, a ``BootConfig`` (copied), or None for
        the embedded default). With ``state``, changes are journaled durably to that file;
        an existing state file is resumed (its recorded topology is booted and its changes
        replayed; a ``topology`` given as well must be the recorded one).

        ``validate=False`` boots a ``BootConfig`` as the engine takes it, without the checks
        a topology file gets: for firmware the TOML format refuses but a kernel meets (an
        hmem range with no NUMA node, a range off the dax region alignment); the kernel's own
        boot checks still apply (ConfigError), and such a machine has no topology text to export."""
        from .machine import boot, boot_state
        from .topology import (
            default_topology_text,
            dump_topology,
            load_topology,
            read_topology_file,
            validate_config,
        )

        text: str | None = None
        config: BootConfig | None = None
        if not validate and state is not None:
            raise ValueError("a state file records a topology file's text: validate=False cannot have one")
        if isinstance(topology, BootConfig):
            config = copy.deepcopy(topology)  # hot-plug adds producers to the kernel's config
            if validate:
                validate_config(config)
                text = dump_topology(config)
        elif isinstance(topology, str) and _is_toml_text(topology):
            text = topology
        elif topology is not None:
            text = read_topology_file(topology)  # a regular file of bounded size: never a FIFO or device
        if state is not None:
            self.kernel, self.tree, self.harness = boot_state(state, topology_text=text)
        else:
            if config is None:
                text = text if text is not None else default_topology_text()
                config = load_topology(text=text)
            self.kernel, self.tree, self.harness = boot(config, text)
        #: SEQNUM when the simulation was ready (boot and replay done): ``wait_for_event``
        #: looks only at later events unless told otherwise.
        self.boot_seqnum = self.kernel.events.seqnum
        self._mount: _Mount | None = None

    # -- life cycle -----------------------------------------------------------------------------
    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Unmount (if mounted) and close the state file (if any). Idempotent."""
        self.unmount()
        self.harness.close()

    # -- the tree ---------------------------------------------------------------------------------
    # Paths are below the mount (``/devices/...``, ``/bus/dax/devices/dax0.0/size``) and are
    # resolved as the VFS resolves them on the mount: symlinks anywhere (``/bus/dax/devices/``,
    # ``driver``, ``subsystem``) are followed, and a ``..`` after a link goes up from its target.
    def realpath(self, path: str, *, follow_last: bool = True) -> str:
        """``path`` with every symlink resolved (the last one only if ``follow_last``), as
        ``realpath`` on the mount gives it; KernelError ENOENT/ENOTDIR for a missing
        component, ELOOP after 40 links (the VFS's MAXSYMLINKS)."""
        with self.tree.lock:
            if "/." not in path:  # most paths name no link to follow: one lookup says so
                try:
                    node = self.tree.lookup(path)
                    if not (follow_last and isinstance(node, Link)):
                        return "/" + "/".join(p for p in path.split("/") if p)
                except KernelError:
                    pass
            todo = [p for p in path.split("/") if p]
            done: list[str] = []
            hops = 0
            while todo:
                part = todo.pop(0)
                if part == ".":
                    continue
                if part == "..":
                    if done:
                        done.pop()
                    continue
                node = self.tree.lookup("/" + "/".join([*done, part]))
                if isinstance(node, Link) and (todo or follow_last):
                    hops += 1
                    if hops > 40:
                        raise KernelError(ELOOP)
                    todo = [p for p in node.target.split("/") if p] + todo
                    if node.target.startswith("/"):
                        done = []
                    continue
                done.append(part)
            return "/" + "/".join(done)

    def cat(self, path: str) -> str:
        """Read a file of the tree to its end, as ``cat`` would; KernelError with the errno of
        the open or read."""
        fh = self.tree.open(self.realpath(path), os.O_RDONLY)
        data = b""
        while chunk := self.tree.read(fh, 65536, len(data)):
            data += chunk
        return data.decode("latin-1")

    def echo(self, path: str, data: str | bytes, newline: bool = True) -> int:
        """One store, as ``echo data > path`` (``newline``: a str gets a newline appended, as
        echo does); returns the count; KernelError with the kernel's errno on failure."""
        return self.tree.echo(self.realpath(path), data, newline)

    def ls(self, path: str) -> list[str]:
        """The names in a directory, in the order ``readdir`` gives them."""
        return self.tree.readdir(self.realpath(path))

    def readlink(self, path: str) -> str:
        """The target of a symlink, as the kernel reports it (relative for sysfs)."""
        return self.tree.readlink(self.realpath(path, follow_last=False))

    def exists(self, path: str) -> bool:
        """Whether ``path`` is there (a symlink counts itself, like ``os.path.lexists``)."""
        try:
            self.realpath(path, follow_last=False)
        except KernelError:
            return False
        return True

    # -- state ------------------------------------------------------------------------------------
    def blocks(self) -> list[_state.BlockInfo]:
        """Every present memory block, by id."""
        return _state.blocks(self.kernel)

    def block(self, block_id: int) -> _state.BlockInfo:
        found = [b for b in self.blocks() if b.id == block_id]
        if not found:
            raise KeyError(f"memory{block_id} does not exist")
        return found[0]

    def blocks_of(self, device: str | _state.ProducerInfo | _state.DaxDeviceInfo) -> list[_state.BlockInfo]:
        """The blocks in the physical range of a dax device or producer (by name or object)."""
        start, end = self._range_of(device)
        return [b for b in self.blocks() if start <= b.start and b.start + b.size - 1 <= end]

    def _range_of(self, device: str | _state.ProducerInfo | _state.DaxDeviceInfo) -> tuple[int, int]:
        if isinstance(device, _state.ProducerInfo):
            return device.start, device.start + device.size - 1
        if isinstance(device, _state.DaxDeviceInfo):
            return min(r[0] for r in device.ranges), max(r[1] for r in device.ranges)
        for p in self.producers():
            if p.name == device:
                return p.start, p.start + p.size - 1
        for d in self.dax_devices():
            if d.name == device and d.ranges:
                return min(r[0] for r in d.ranges), max(r[1] for r in d.ranges)
        raise KeyError(f"no producer or dax device named {device!r}")

    def nodes(self) -> list[_state.NodeInfo]:
        """Every possible node, by id, with its meminfo accounting."""
        return _state.nodes(self.kernel)

    def node(self, nid: int) -> _state.NodeInfo:
        found = [n for n in self.nodes() if n.id == nid]
        if not found:
            raise KeyError(f"node {nid} is not a possible node")
        return found[0]

    def dax_devices(self) -> list[_state.DaxDeviceInfo]:
        """Every dax device on the bus."""
        return _state.dax_devices(self.kernel)

    def dax_device(self, name: str) -> _state.DaxDeviceInfo:
        found = [d for d in self.dax_devices() if d.name == name]
        if not found:
            raise KeyError(f"there is no dax device {name}")
        return found[0]

    def producers(self) -> list[_state.ProducerInfo]:
        """CXL regions, hmem ranges and pmem namespaces with their dax regions."""
        return _state.producers(self.kernel)

    def bindings(self) -> dict[str, str | None]:
        """dax device -> driver (``kmem``, ``device_dax``) or None."""
        return {d.name: d.driver for d in self.dax_devices()}

    def kmsg(self) -> list[str]:
        """The kernel log (dmesg), oldest first."""
        with self.kernel.lock:
            return list(self.kernel.kmsg)

    def iomem(self) -> str:
        """``/proc/iomem`` as root sees it."""
        with self.kernel.lock:
            return self.kernel.resources.format_iomem()

    def proc(self, name: str, *, uid: int = 0) -> str:
        """A memory /proc file of the simulated machine (``meminfo``, ``zoneinfo``, ``vmstat``,
        ``buddyinfo``, ``pagetypeinfo``, ``iomem``, ``cmdline``) as an opener with ``uid`` reads
        it (docs/proc.md); KeyError for a file not simulated, KernelError(EACCES) for a
        root-only file and another uid."""
        from .procfs import PROC_FILES, proc_read

        if name not in PROC_FILES:
            raise KeyError(f"/proc/{name} is not simulated (simulated: {', '.join(PROC_FILES)})")
        return proc_read(self.harness.proc_tree, name, uid)

    def sysctl(self, name: str, value: str | int) -> None:
        """``echo value > /proc/sys/vm/<name>`` on the simulated machine (``min_free_kbytes``,
        ``watermark_scale_factor``, ``lowmem_reserve_ratio``...): one store, traced (path
        ``/proc/sys/vm/<name>``), in the history and journaled like a store to /sys;
        KernelError with the kernel's errno (EINVAL for a value out of range)."""
        from .procfs import PROC_FILES

        if f"sys/vm/{name}" not in PROC_FILES:
            raise KeyError(f"/proc/sys/vm/{name} is not simulated")
        self.harness.proc_tree.echo(f"/sys/vm/{name}", str(value))

    def snapshot(self) -> dict[str, Any]:
        """The whole state as JSON-ready data (what ``fakesysfs ctl MNT state`` prints)."""
        return _state.snapshot(self.kernel)

    # -- hardware -------------------------------------------------------------------------------
    def add_cxl_region(self, size: int | str, node: int, *, start: int | str | None = None,
                       decoder: str | None = None, adistance: int | None = None, numa_node: int | None = None,
                       driver: str | None = None) -> _state.ProducerInfo:
        """Firmware hot-adds a CXL RAM region of ``size`` bytes (or ``"16G"``) for NUMA node
        ``node``: ``regionN`` with ``dax_regionN/daxN.0`` appears, uevents included, and the
        device binds as at boot (kmem by default; ``driver`` overrides). ``start`` defaults to
        the lowest free 256 MiB-aligned address above everything present."""
        result = self.harness.apply({"op": "add_cxl_region", "size": size, "target_node": node, "start": start,
                                     "decoder": decoder, "adistance": adistance, "numa_node": numa_node,
                                     "driver": driver})
        return self._producer(result["name"])

    def add_hmem(self, size: int | str, node: int, *, start: int | str | None = None, adistance: int | None = None,
                 numa_node: int | None = None, driver: str | None = None) -> _state.ProducerInfo:
        """Firmware publishes a soft-reserved range: platform device ``hmem.N`` with ``daxN.0``."""
        result = self.harness.apply({"op": "add_hmem", "size": size, "target_node": node, "start": start,
                                     "adistance": adistance, "numa_node": numa_node, "driver": driver})
        return self._producer(result["name"])

    def _producer(self, name: str) -> _state.ProducerInfo:
        return next(p for p in self.producers() if p.name == name)

    def remove(self, producer: str | _state.ProducerInfo) -> None:
        """Firmware removes a CXL region (``regionN``) or hmem range (``hmem.N``); the kernel
        tears it down and cannot refuse: memory still online stays behind, leaked until
        reboot, as kmem does (see ``fakesysfs/engine/firmware.py``)."""
        name = producer.name if isinstance(producer, _state.ProducerInfo) else producer
        self.harness.apply({"op": "remove", "device": name})

    def modprobe(self, module: str) -> None:
        """A simulated module (``kmem``, ``device_dax``) loads, as ``modprobe`` inside
        ``fakesysfs run`` does: its driver registers and binds what it matches. HarnessError
        (EEXIST) when loaded already."""
        self.harness.apply({"op": "modprobe", "module": module})

    def rmmod(self, module: str) -> None:
        """The module unloads (``modprobe -r``): its devices are released. HarnessError
        (ENOENT) when it is not loaded."""
        self.harness.apply({"op": "rmmod", "module": module})

    # -- faults -----------------------------------------------------------------------------------
    def inject_notifier_error(self, action: str, err: int | str) -> None:
        """Every online (``MEM_GOING_ONLINE``) or offline (``MEM_GOING_OFFLINE``) fails with
        ``err`` (a number or a name like ``"ENOMEM"``) until set to 0 (R-FI-01/02)."""
        self.harness.apply({"op": "notifier_error", "action": action, "errno": err})

    def fail_memmap_at_chunk(self, chunk: int | None) -> None:
        """The next memory add fails with ENOMEM at chunk ``chunk`` (0-based block of the add)
        and unwinds the chunks before it; once. None disarms."""
        self.harness.apply({"op": "memmap_fail_at_chunk", "chunk": chunk})

    def fail_probe(self, device: str, err: int | str) -> None:
        """The next probe of dax device ``device`` (by any driver) fails with ``err``; once.
        0 disarms."""
        self.harness.apply({"op": "probe_fail", "device": device, "errno": err})

    def set_block_usage(self, block: int, *, pinned: int | None = None, used: int | None = None,
                        poisoned: int | None = None) -> None:
        """Pages of an online block that are pinned (offline fails with EBUSY) or in movable use
        (migrated on offline), and poisoned pages (online fails with EHWPOISON)."""
        self.harness.apply({"op": "block_usage", "block": block, "pinned": pinned, "used": used,
                            "poisoned": poisoned})

    def clear_faults(self) -> None:
        """No notifier errors, no armed faults, no pinned or poisoned pages."""
        self.harness.apply({"op": "clear_faults"})

    # -- events, stores, waiting ------------------------------------------------------------------
    def mark(self) -> Mark:
        """Now, for ``after=`` of the waits."""
        return Mark(self.kernel.events.seqnum, self.harness.trace.seq)

    def events(self, after: Mark | int | None = None, **criteria: Any) -> list[Uevent]:
        """Uevents after ``after`` (default: since the simulation was ready) matching
        ``criteria`` (``action="online"``, ``subsystem="memory"``, ``DRIVER="kmem"``...)."""
        seq = self._seqnum_after(after)
        return [e for e in self.kernel.events.since(seq) if e.matches(**criteria)]

    def stores(self, after: Mark | int = 0, **criteria: Any) -> list[StoreRecord]:
        """Every store in the trace after ``after`` matching ``criteria`` (``path`` as a string,
        a compiled regex or a predicate; ``data``; ``errno``; ``ok``)."""
        seq = after.store_seq if isinstance(after, Mark) else after
        return [r for r in self.harness.trace.since(seq) if r.matches(**criteria)]

    def _seqnum_after(self, after: Mark | int | None) -> int:
        if after is None:
            return self.boot_seqnum
        return after.seqnum if isinstance(after, Mark) else after

    def wait_for_event(self, timeout: float = 10.0, after: Mark | int | None = None, **criteria: Any) -> Uevent:
        """The first uevent after ``after`` (default: since the simulation was ready) that
        matches ``criteria``; it may already have happened. TimeoutError otherwise;
        ``EventsLost`` if uevents after ``after`` already left the log's ring (32 Ki kept)."""
        seq = self._seqnum_after(after)
        event = self.kernel.events.wait_for(after=seq, timeout=timeout, **criteria)
        if event is None:
            seen = [f"{e.seqnum} {e.action} {e.devpath}" for e in self.kernel.events.since(seq)]
            shown = seen if len(seen) <= 20 else [*seen[:10], "...", *seen[-10:]]
            raise TimeoutError(f"no uevent matching {criteria} after SEQNUM {seq} within {timeout} s; "
                               f"events after it: {shown}")
        return event

    def wait_for_store(self, path: str | re.Pattern[str] | Callable[[str], bool] | None = None,
                       data: str | None = None, errno: int | str | None = None, ok: bool | None = None, *,
                       after: Mark | int = 0, timeout: float = 10.0) -> StoreRecord:
        """The first store after ``after`` (default: any so far) matching; it may already have
        happened. TimeoutError otherwise; ``TraceGap`` if stores after ``after`` already left
        the trace's ring (the latest 8 MiB are kept)."""
        seq = after.store_seq if isinstance(after, Mark) else after
        criteria: dict[str, Any] = {"path": path, "data": data, "ok": ok,
                                    "errno": None if errno is None else parse_errno(errno)}
        record = self.harness.trace.wait_for(after=seq, timeout=timeout, **criteria)
        if record is None:
            seen = [f"#{r.seq} {r.path} {r.text!r} {r.error or 'ok'}" for r in self.harness.trace.since(seq)]
            shown = seen if len(seen) <= 20 else [*seen[:10], "...", *seen[-10:]]
            wanted = {k: v for k, v in criteria.items() if v is not None}
            raise TimeoutError(f"no store matching {wanted} after #{seq} within {timeout} s; stores after it: {shown}")
        return record

    def wait_until(self, predicate: Callable[[Simulation], _T], timeout: float = 10.0,
                   message: str | None = None) -> _T:
        """Re-evaluate ``predicate(sim)`` after every store, uevent and harness op until it
        returns something true, and return that; TimeoutError after ``timeout`` seconds.

        The predicate runs in this thread without the hotplug lock, so it may read the mount;
        each accessor (``blocks()``, ``nodes()``...) is one consistent snapshot."""
        deadline = time.monotonic() + timeout
        while True:
            generation = self.harness.generation
            value = predicate(self)
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.harness.wait_changed(generation, remaining):
                value = predicate(self)
                if value:
                    return value
                what = message or getattr(predicate, "__name__", "the condition")
                recent = [f"#{r.seq} {r.path} {r.text!r} {r.error or 'ok'}" for r in self.harness.trace.since(0)[-10:]]
                raise TimeoutError(f"{what} did not become true within {timeout} s; last stores: {recent}")

    # -- persistence ------------------------------------------------------------------------------
    def export(self, path: str | os.PathLike[str]) -> int:
        """Write a state snapshot (the boot topology plus every change so far) atomically;
        ``Simulation(state=path)`` or ``fakesysfs mount --state path`` resumes it. Returns the
        number of recorded changes."""
        return self.harness.export(path)

    # -- mounting ---------------------------------------------------------------------------------
    @property
    def mountpoint(self) -> Path | None:
        return self._mount.path if self._mount is not None else None

    @property
    def control_socket(self) -> str | None:
        """The mount's control socket (``fakesysfs ctl``/``monitor`` find it themselves)."""
        return self.tree.control_socket

    def mount(self, mountpoint: str | os.PathLike[str] | None = None, *, allow_other: bool = False) -> Path:
        """Serve the tree over FUSE from a thread of this process, with the control socket
        (``fakesysfs ctl``, ``fakesysfs monitor``), and return the mountpoint: a fresh
        directory under /tmp unless given. Every process of this mount namespace sees it;
        ``allow_other`` lets other users in. Raises MountError, also where ``fakesysfs mount``
        refuses to mount (fakesysfs/mountpoint.py: the host's sysfs, a busy directory); the
        mount goes on the very directory that was checked."""
        if self._mount is not None:
            raise MountError(f"this simulation is already mounted at {self._mount.path}")
        self._mount = _Mount.start(self, mountpoint, allow_other)
        return self._mount.path

    def unmount(self) -> None:
        """Unmount (and stop the control socket). Idempotent."""
        mount, self._mount = self._mount, None
        if mount is not None:
            mount.stop(self)


# -- the mount thread ---------------------------------------------------------------------------------
@dataclass
class _Mount:
    path: Path
    thread: threading.Thread
    errors: list[BaseException]
    owns_dir: bool
    server: ControlServer | None
    #: The mount made on the checked directory (fakesysfs/mountpoint.py) and its undoing.
    placement: Placement | None
    placed: contextlib.ExitStack

    @classmethod
    def start(cls, sim: Simulation, mountpoint: str | os.PathLike[str] | None, allow_other: bool) -> _Mount:
        """Mount where ``fakesysfs mount`` would (fakesysfs/mountpoint.py: never over the
        host's sysfs, on the very directory that was checked) and serve from a thread."""
        from . import mountpoint as rules

        reason = rules.fuse_unavailable()
        if reason is not None:
            raise MountError(f"cannot mount: {reason}")
        owns_dir = mountpoint is None
        if mountpoint is None:
            path = Path(tempfile.mkdtemp(prefix="fakesysfs-", dir="/tmp"))
            path.chmod(0o755)
        else:
            path = Path(mountpoint).absolute()
        placed = contextlib.ExitStack()
        try:
            try:
                rules.check_not_host_sysfs(str(path))
                rules.check_directory(str(path))
                dir_fd = rules.open_mountpoint(str(path))
                placed.callback(os.close, dir_fd)
                placement = placed.enter_context(rules.mount_on(dir_fd, str(path), allow_other))
            except rules.MountpointError as exc:
                raise MountError(str(exc)) from None
            return cls._serve(sim, path, owns_dir, allow_other, dir_fd, placement, placed)
        except BaseException:
            placed.close()
            if owns_dir:
                with contextlib.suppress(OSError):
                    path.rmdir()
            raise

    @classmethod
    def _serve(cls, sim: Simulation, path: Path, owns_dir: bool, allow_other: bool, dir_fd: int,
               placement: Placement, placed: contextlib.ExitStack) -> _Mount:
        from . import mountpoint as rules
        from .control import ControlServer
        from .fuse_adapter import serve

        server: ControlServer | None = None
        try:
            server = ControlServer(sim.kernel, ops=sim.harness.register_control)
            server.start()
        except OSError:
            server = None  # the mount works without it; fakesysfs ctl/monitor will say so
        if server is not None:
            sim.tree.control_socket = server.path
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            try:
                serve(sim.tree, placement.where, allow_other=allow_other, ready_callback=ready.set)
            except BaseException as exc:  # noqa: BLE001 (reported by start/stop)
                errors.append(exc)

        thread = threading.Thread(target=run, name=f"fakesysfs {path}", daemon=True)
        thread.start()
        mount = cls(path, thread, errors, False, server, placement, placed)
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while not ready.wait(0.01):
            if not thread.is_alive() or time.monotonic() > deadline:
                mount.stop(sim)
                raise MountError(f"mounting {path} failed: {errors[0] if errors else 'no answer from libfuse'}")
        try:  # INIT answered; make sure this process sees it (on the checked directory)
            rules.wait_until_mounted(str(path), dir_fd, max(deadline - time.monotonic(), 0.5),
                                     what="libfuse reported it mounted")
        except rules.MountpointError as exc:
            mount.stop(sim)
            raise MountError(str(exc)) from None
        mount.owns_dir = owns_dir
        return mount

    def stop(self, sim: Simulation) -> None:
        from . import mountpoint as rules

        if self.thread.is_alive():
            if self.placement is not None and self.placement.fuse_mount is not None:
                with contextlib.suppress(OSError):
                    self.placement.unmount()
            elif os.path.ismount(self.path) and rules.unmount(str(self.path)):
                rules.unmount(str(self.path), lazy=True)
        self.thread.join(MOUNT_TIMEOUT)
        self.placed.close()
        if self.server is not None:
            sim.tree.control_socket = None
            self.server.close()
        if self.owns_dir:
            with contextlib.suppress(OSError):
                self.path.rmdir()
