"""Shared fixtures: a small hand-built attribute tree and a real FUSE mount of it, the
subprocess helpers that run the CLI from this checkout (``fakesysfs(...)``, ``fakesysfs_run(...)``),
and helpers for tests of the engine through ``fakesysfs.Simulation`` (the one in-process
harness: ``example_config``, ``add_kmem``, ``raises_errno``...).

``fuse_mount(tree)`` serves a ``Tree`` from a thread of the test process, so tests can
look at what the store handlers received; tests marked ``fuse`` are skipped with the
reason when /dev/fuse or libfuse is unavailable. While a mount is served, libfuse owns
SIGTERM and SIGHUP for the whole test process (it installs its exit handler on any signal
still at SIG_DFL); it restores them when the mount ends.
"""

# ruff: noqa: E402 (_UNDER_PYTEST must be known before this module imports pytest)
from __future__ import annotations

import sys

#: False in a helper process of the suite that imports this module (``python -c "from
#: conftest import ..."``): it shares the session's directories instead of making its own.
_UNDER_PYTEST = "_pytest" in sys.modules

import contextlib
import errno
import functools
import os
import shutil
import stat
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fakesysfs import Simulation
from fakesysfs.config import BootConfig, GiB, MemRange, NodeConfig
from fakesysfs.engine.hotplug import MHP_MEMMAP_ON_MEMORY, MHP_NID_IS_MGID
from fakesysfs.errors import KernelError
from fakesysfs.simulation import Mark
from fakesysfs.sysfs.tree import Attr, Dir, Link, Node, StaticDir, Tree

MOUNT_TIMEOUT = 10.0


# -- temporary directories: the session's own, and none left behind --------------------------
#: Every temporary file or directory the suite's processes make by default goes below this
#: directory of the session ($TMPDIR for this process and every child; sticky and
#: world-writable like /tmp, as unprivileged children write there too). Other fakesysfs
#: runs on the machine use /tmp at the same time, so the check below looks only here and at
#: what this process made elsewhere. Set at import, before any test module copies
#: os.environ for its subprocesses.
_INHERITED_TMP = os.environ.get("FAKESYSFS_TESTS_TMPDIR", "")
if not _UNDER_PYTEST and os.path.isdir(_INHERITED_TMP):
    SESSION_TMP, _OWN_SESSION_TMP = _INHERITED_TMP, False
else:
    # pytest's own tmp_path directories stay where pytest keeps them (the last three runs).
    os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", tempfile.gettempdir())
    SESSION_TMP, _OWN_SESSION_TMP = tempfile.mkdtemp(prefix="fakesysfs-tests-"), True
    os.chmod(SESSION_TMP, 0o1777)
os.environ["FAKESYSFS_TESTS_TMPDIR"] = os.environ["TMPDIR"] = tempfile.tempdir = SESSION_TMP

# -- no test may write the host's /run ----------------------------------------------------
#: Mount daemons started by tests (and their children) put their control sockets below this
#: private $XDG_RUNTIME_DIR, never in the host's /run/fakesysfs (fakesysfs/control.py).
PRIVATE_RUNTIME_DIR = os.path.join(SESSION_TMP, "xdg")
if _OWN_SESSION_TMP:
    os.mkdir(PRIVATE_RUNTIME_DIR, 0o700)
os.environ["XDG_RUNTIME_DIR"] = PRIVATE_RUNTIME_DIR

#: Directories named fakesysfs-* this process made outside SESSION_TMP (a mountpoint under
#: /tmp that other users must reach, ``Simulation.mount``'s own): each must be gone again.
_MADE_ELSEWHERE: list[str] = []


def _record_mkdir(event: str, args: tuple[object, ...]) -> None:
    if event == "os.mkdir" and isinstance(args[0], str) and os.path.basename(args[0]).startswith("fakesysfs-"):
        path = os.path.abspath(args[0])
        if not path.startswith(SESSION_TMP + os.sep):
            _MADE_ELSEWHERE.append(path)


if _OWN_SESSION_TMP and _UNDER_PYTEST:
    sys.addaudithook(_record_mkdir)


def temp_leftovers() -> list[str]:
    """What the session made in a temporary directory and did not remove."""
    left = [os.path.join(SESSION_TMP, name) for name in sorted(os.listdir(SESSION_TMP))
            if name != os.path.basename(PRIVATE_RUNTIME_DIR)]
    return left + [path for path in _MADE_ELSEWHERE if os.path.lexists(path)]


@pytest.fixture(scope="session", autouse=True)
def _no_temporary_directory_left() -> Iterator[None]:
    """Fails the run if any test left a temporary file or directory (all are removed anyway)."""
    yield
    left = temp_leftovers()
    assert not left, f"the suite left temporary files or directories behind: {left}"


def _remove_tree(path: str) -> None:
    """Remove ``path`` without ever descending into a mount (a leaked FUSE mount stays)."""
    if os.path.ismount(path):
        return
    if os.path.isdir(path) and not os.path.islink(path):
        names: list[str] = []
        with contextlib.suppress(OSError):
            names = os.listdir(path)
        for name in names:
            _remove_tree(os.path.join(path, name))
        with contextlib.suppress(OSError):
            os.rmdir(path)
    else:
        with contextlib.suppress(OSError):
            os.unlink(path)


def pytest_unconfigure() -> None:
    if _OWN_SESSION_TMP:
        for path in _MADE_ELSEWHERE:
            _remove_tree(path)
        _remove_tree(SESSION_TMP)


if _OWN_SESSION_TMP:  # also when pytest stops before configuring (a usage error) or is not running
    import atexit

    atexit.register(_remove_tree, SESSION_TMP)


# -- the CLI in a subprocess --------------------------------------------------------------
#: The checkout under test: its subprocesses import fakesysfs from here (the editable install
#: may point at another checkout).
REPO = Path(__file__).resolve().parent.parent
#: The environment of those subprocesses (with the private $XDG_RUNTIME_DIR above).
ENV = dict(os.environ, PYTHONPATH=str(REPO))
#: argv of the command line interface.
FAKESYSFS = [sys.executable, "-m", "fakesysfs.cli"]


#: Topologies more than one test file boots (``topology_text(NAME)`` reads NAME.toml).
TOPOLOGIES = Path(__file__).resolve().parent / "topologies"


def topology_text(name: str) -> str:
    """The TOML text of ``tests/topologies/NAME.toml``."""
    return (TOPOLOGIES / f"{name}.toml").read_text()


def fakesysfs(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``fakesysfs ARGV...`` to its end, output captured; never raises on a failed status."""
    return subprocess.run([*FAKESYSFS, *argv], capture_output=True, text=True, env=ENV, timeout=timeout, check=False)


def run_private(script: str, *args: str, timeout: float = 120) -> dict:
    """Run ``script`` (``python -c``, argv: a fresh base directory, ``args``) as a child that
    makes its own private mount namespace there (a fresh sysfs at BASE/sysmnt, BASE/plain,
    BASE/link) and prints its findings as a JSON line; returns the last line, and removes
    what the child left in BASE."""
    import json

    base = tempfile.mkdtemp(prefix="fakesysfs-mnt-", dir="/tmp")
    try:
        done = subprocess.run([sys.executable, "-c", script, base, *args], capture_output=True, text=True,
                              env=ENV, timeout=timeout, check=False)
        assert done.returncode == 0, done.stderr
        result: dict = json.loads(done.stdout.strip().splitlines()[-1])
        return result
    finally:
        for name in ("link", "plain", "sysmnt"):
            path = os.path.join(base, name)
            if os.path.islink(path):
                os.unlink(path)
            elif os.path.isdir(path):
                os.rmdir(path)
        os.rmdir(base)


def fakesysfs_run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``fakesysfs run ARGS...`` (see ``fakesysfs``)."""
    return fakesysfs("run", *args, timeout=timeout)


# -- the engine through Simulation ----------------------------------------------------------
MEM = "/devices/system/memory"
NODE = "/devices/system/node"
#: docs/abi.md example 1: the CXL region of node 1, 16 GiB at 0x1050000000 (memory522..649).
CXL_START = 0x1050000000
CXL_SIZE = 16 * GiB


def example_config(**fields: object) -> BootConfig:
    """The setup of docs/abi.md "Worked examples": node 0 with 16 GiB of boot RAM and CPUs
    0-1, node 1 possible and memory-only, memmap_on_memory=Y, no CXL region; ``fields`` set
    other BootConfig fields (``cxl_regions=[...]``, ``kernel_profile="6.9-6.16"``...)."""
    config: dict[str, object] = {
        "nodes": [NodeConfig(0, cpus=[0, 1], memory=[MemRange(0, 16 * GiB)])],
        "possible_nodes": [0, 1],
        "memmap_on_memory": "Y",
    }
    config.update(fields)
    return BootConfig(**config)  # type: ignore[arg-type]


def add_kmem(sim: Simulation, start: int = CXL_START, size: int = CXL_SIZE, nid: int = 1,
             memmap_on_memory: bool = True) -> int:
    """What dev_dax_kmem_probe (drivers/dax/kmem.c) does for one aligned range, straight on
    the engine: a static memory group for ``nid``, then add_memory_driver_managed; returns
    the group id (unregistered again if the add fails)."""
    k = sim.kernel
    with k.lock:
        mgid = k.memory_group_register_static(nid, size // k.page_size)
        flags = MHP_NID_IS_MGID | (MHP_MEMMAP_ON_MEMORY if memmap_on_memory else 0)
        try:
            k.add_memory_driver_managed(mgid, start, size, "System RAM (kmem)", flags)
        except KernelError:
            k.memory_group_unregister(mgid)
            raise
    return mgid


def block_range(sim: Simulation, start: int = CXL_START, size: int = CXL_SIZE) -> range:
    """The ids of the memory blocks of ``[start, start + size)``."""
    bs = sim.kernel.block_size
    return range(start // bs, (start + size) // bs)


def block_state(sim: Simulation, bid: int) -> str:
    """``memoryN/state`` without its newline."""
    return sim.cat(f"{MEM}/memory{bid}/state").strip()


def valid_zones(sim: Simulation, bid: int) -> str:
    """``memoryN/valid_zones`` without its newline."""
    return sim.cat(f"{MEM}/memory{bid}/valid_zones").strip()


def meminfo(sim: Simulation, nid: int) -> dict[str, int]:
    """``nodeN/meminfo`` as {"MemTotal": kB, ...}."""
    out = {}
    for line in sim.cat(f"{NODE}/node{nid}/meminfo").splitlines():
        words = line.split()
        out[words[2].rstrip(":")] = int(words[3])
    return out


def uevents(sim: Simulation, after: Mark | int = 0) -> list[tuple[str, str]]:
    """(action, devpath) of every uevent after ``after`` (default: all, boot included)."""
    return [(e.action, e.devpath) for e in sim.events(after)]


def write_errno(sim: Simulation, path: str, data: str | bytes, newline: bool = True) -> int:
    """The errno a store fails with (the store must fail)."""
    with pytest.raises(KernelError) as exc:
        sim.echo(path, data, newline)
    return exc.value.errno


def read_errno(sim: Simulation, path: str) -> int:
    """The errno a read fails with (the read must fail)."""
    with pytest.raises(KernelError) as exc:
        sim.cat(path)
    return exc.value.errno


def file_mode(sim: Simulation, path: str) -> int:
    """The permission bits of ``path`` (a symlink's own, as lstat)."""
    return stat.S_IMODE(sim.tree.getattr(sim.realpath(path, follow_last=False)).mode)


@contextlib.contextmanager
def raises_errno(err: int) -> Iterator[pytest.ExceptionInfo[KernelError]]:
    """The block must raise KernelError with exactly ``err``."""
    with pytest.raises(KernelError) as info:
        yield info
    got = info.value.errno
    assert got == err, f"expected {errno.errorcode[err]}, got {errno.errorcode.get(got, got)}"


# -- availability -------------------------------------------------------------------------
@functools.cache
def fuse_unavailable_reason() -> str | None:
    """Why FUSE tests cannot run here, or None."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    try:
        import fakesysfs._fuse  # noqa: F401
    except ImportError as exc:
        return f"libfuse unavailable: {exc}"
    if os.geteuid() != 0 and shutil.which("fusermount") is None and shutil.which("fusermount3") is None:
        return "not root and no fusermount"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("fuse") is not None:
        reason = fuse_unavailable_reason()
        if reason is not None:
            pytest.skip(f"FUSE test: {reason}")


# -- a hand-built tree --------------------------------------------------------------------
@dataclass
class Recorder:
    """Every store call as (attribute, text, count)."""

    calls: list[tuple[str, str, int]] = field(default_factory=list)

    def stores(self, name: str) -> list[tuple[str, int]]:
        return [(text, count) for attr, text, count in self.calls if attr == name]


class BlocksDir(Dir):
    """A dynamic directory: ``memoryN`` for every id in ``ids``, looked up on each call."""

    def __init__(self, ids: set[int]) -> None:
        self.ids = ids

    def names(self) -> Iterable[str]:
        return [f"memory{i}" for i in sorted(self.ids)]

    def child(self, name: str) -> Node | None:
        if not name.startswith("memory") or not name[6:].isdigit() or int(name[6:]) not in self.ids:
            return None
        return StaticDir({"phys_index": Attr(0o444, lambda n=int(name[6:]): f"{n:08x}\n")})


def streq(text: str) -> str:
    """R-SYS-04 ``sysfs_streq``: one trailing newline is ignored."""
    return text.removesuffix("\n")


@dataclass
class DemoTree:
    tree: Tree
    rec: Recorder
    state: dict[str, str]
    blocks: set[int]


def build_demo_tree() -> DemoTree:
    """A root with one attribute of every kind the adapter must handle."""
    rec = Recorder()
    value = {"state": "offline"}
    blocks = {0, 1}

    def recording(name: str, then: Callable[[str, int], int | None] | None = None):
        def store(text: str, count: int) -> int | None:
            rec.calls.append((name, text, count))
            return then(text, count) if then is not None else None

        return store

    def state_store(text: str, _count: int) -> None:
        word = streq(text)
        if word not in ("online", "offline"):
            raise KernelError(errno.EINVAL)
        value["state"] = word

    def busy_store(_text: str, _count: int) -> None:
        raise KernelError(errno.EBUSY)

    def crash_store(_text: str, _count: int) -> None:
        raise RuntimeError("a bug inside a store handler")

    def crash_show() -> str:
        raise ZeroDivisionError("a bug inside a show handler")

    def add_store(text: str, _count: int) -> None:
        try:
            blocks.add(int(streq(text)))
        except ValueError:
            raise KernelError(errno.EINVAL) from None

    def remove_store(text: str, _count: int) -> None:
        try:
            blocks.remove(int(streq(text)))
        except (ValueError, KeyError):
            raise KernelError(errno.EINVAL) from None

    root = StaticDir(
        {
            "state": Attr(0o644, lambda: value["state"] + "\n", recording("state", state_store)),
            "ro": Attr(0o444, lambda: "read-only\n"),
            "secret": Attr(0o400, lambda: "root only\n"),
            "wo": Attr(0o200, None, recording("wo")),
            "busy": Attr(0o200, None, recording("busy", busy_store)),
            "crash": Attr(0o200, None, recording("crash", crash_store)),
            "crash_show": Attr(0o444, crash_show),
            "subsystem": Link("../../bus/memory"),
            "add": Attr(0o200, None, recording("add", add_store)),
            "remove": Attr(0o200, None, recording("remove", remove_store)),
            "blocks": BlocksDir(blocks),
            "power": StaticDir({"control": Attr(0o644, lambda: "auto\n", recording("control"))}),
        }
    )
    return DemoTree(Tree(root), rec, value, blocks)


@pytest.fixture
def demo() -> DemoTree:
    return build_demo_tree()


# -- mounting -----------------------------------------------------------------------------
def unmount(path: Path, lazy: bool = False) -> bool:
    """Unmount with whichever tool exists; True on success."""
    for tool, flags in (("fusermount3", ["-u"]), ("fusermount", ["-u"]), ("umount", [])):
        if shutil.which(tool) is None:
            continue
        if lazy:
            flags = [*flags, "-z" if tool.startswith("fusermount") else "-l"]
        done = subprocess.run([tool, *flags, str(path)], capture_output=True, timeout=10, check=False)
        if done.returncode == 0:
            return True
    return False


_MOUNTPOINTS: list[Path] = []


def make_mountpoint() -> Path:
    """A directory under /tmp that other users can reach (pytest's tmp_path is 0700); removed
    when the test that made it ends, once nothing is mounted on it."""
    path = Path(tempfile.mkdtemp(prefix="fakesysfs-test-", dir="/tmp"))
    path.chmod(0o755)
    _MOUNTPOINTS.append(path)
    return path


@pytest.fixture(autouse=True)
def _remove_mountpoints() -> Iterator[None]:
    """The finalizer of ``make_mountpoint``: torn down after the test's own fixtures (which
    unmount), it removes each directory the test made; one still mounted stays, and the
    session's check reports it."""
    yield
    while _MOUNTPOINTS:
        path = _MOUNTPOINTS.pop()
        if path.is_dir() and not os.path.ismount(path):
            with contextlib.suppress(OSError):
                path.rmdir()


@dataclass
class _Mount:
    path: Path
    thread: threading.Thread
    errors: list[Exception]
    owns_dir: bool


@pytest.fixture
def fuse_mount() -> Iterator[Callable[..., Path]]:
    """``fuse_mount(tree, allow_other=False, mountpoint=None) -> Path`` of the live mount."""
    from fakesysfs.fuse_adapter import serve

    mounts: list[_Mount] = []

    def mount(tree: Tree, *, allow_other: bool = False, mountpoint: Path | None = None) -> Path:
        reason = fuse_unavailable_reason()
        if reason is not None:
            pytest.skip(f"FUSE test: {reason}")
        path = mountpoint if mountpoint is not None else make_mountpoint()
        ready = threading.Event()
        errors: list[Exception] = []

        def run() -> None:
            try:
                serve(tree, path, allow_other=allow_other, ready_callback=ready.set)
            except Exception as exc:  # noqa: BLE001 (the fixture reports it, not a thread hook)
                errors.append(exc)

        thread = threading.Thread(target=run, name=f"fuse {path}", daemon=True)
        thread.start()
        while not ready.wait(0.01):
            if not thread.is_alive():
                raise RuntimeError(f"mounting {path} failed: {errors}")
        mounts.append(_Mount(path, thread, errors, owns_dir=mountpoint is None))
        return path

    yield mount

    for m in reversed(mounts):
        if os.path.ismount(m.path) and not unmount(m.path):
            unmount(m.path, lazy=True)
        m.thread.join(MOUNT_TIMEOUT)
        assert not m.thread.is_alive(), f"daemon thread for {m.path} did not stop"
        assert not m.errors, f"serve({m.path}) raised {m.errors}"
        if m.owns_dir:
            with contextlib.suppress(OSError):
                m.path.rmdir()
