#!/usr/bin/env python3
"""fakesysfs performance and scale: every figure beside its floors, measured in one run.

    python scripts/bench.py                  # a few minutes: all tables, scale at 1 Ki and 8 Ki blocks
    python scripts/bench.py --scale all      # also 64 Ki and 512 Ki blocks (64 TiB), several minutes more
    python scripts/bench.py --quick          # fewer samples, no 1 TiB daxctl (a smoke run)

Run as root (FUSE mounts, ``fakesysfs run``), from anywhere; nothing touches the host's
/sys except reads for the host floor. It prints Markdown tables of figures and ratios,
never a verdict; ``--json FILE`` also writes every figure.

Floors, measured in the same run on the same machine, interleaved with the fakesysfs samples
(round robin, so load from other processes hits all of them alike):

- host sysfs: the host's real /sys (read-only operations only);
- tmpfs: a copy of the same tree in /dev/shm (values, links, modes);
- bare FUSE: scripts/bench_bare_fuse.py, the same tree served from constants through the same
  binding, options and callbacks (the cost of FUSE and the binding, with no engine);
- bare FUSE, no cache: the same with zero cache timeouts (what fakesysfs did before
  caching, and still does without libfuse 3).

Per-operation figures are medians in microseconds: unpinned (client and daemons free to run
on any CPU) and pinned (all on one CPU, which avoids cross-CPU wake-ups on small VMs).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import math
import os
import platform
import re
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

import psutil
from bench_bare_fuse import snapshot

from fakesysfs import _fuse
from fakesysfs.engine import Kernel
from fakesysfs.errors import KernelError
from fakesysfs.sysfs import build_tree
from fakesysfs.sysfs.tree import Tree
from fakesysfs.topology import default_topology_text, load_topology

PY = sys.executable
CLI = [PY, "-m", "fakesysfs.cli"]
BARE = [PY, str(REPO / "scripts" / "bench_bare_fuse.py")]
# Daemons and tools start as from an installed package: with compiled bytecode, whatever
# PYTHONDONTWRITEBYTECODE says here. It is a cache kept between runs, outside the repository:
# in the user's cache directory ($XDG_CACHE_HOME, else ~/.cache), not in /tmp.
PYCACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fakesysfs" / "bench-pycache"
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV.update(PYTHONPATH=str(REPO), PYTHONPYCACHEPREFIX=str(PYCACHE))
KI = 1024
BLOCK = 128 << 20

# -- bookkeeping ----------------------------------------------------------------------------------
#: The run's scratch directories (mountpoints, topologies; the tmpfs floor), made by
#: ``_make_scratch`` when a run starts and removed at exit: importing this module makes none.
WORK = Path("/nonexistent/fakesysfs-bench")
SHM = Path("/nonexistent/fakesysfs-bench")
_MOUNTS: list[Path] = []
_PROCS: list[subprocess.Popen] = []
RESULTS: dict[str, Any] = {}


def _cleanup() -> None:
    for path in reversed(_MOUNTS):
        unmount(path)
    for proc in _PROCS:
        with contextlib.suppress(Exception):
            proc.kill()
            proc.wait(5)
    shutil.rmtree(SHM, ignore_errors=True)
    shutil.rmtree(WORK, ignore_errors=True)


def _make_scratch() -> None:
    global WORK, SHM
    atexit.register(_cleanup)
    WORK = Path(tempfile.mkdtemp(prefix="fakesysfs-bench-", dir="/tmp"))
    SHM = Path(tempfile.mkdtemp(prefix="fakesysfs-bench-", dir="/dev/shm" if os.path.isdir("/dev/shm") else "/tmp"))


def unmount(path: Path) -> None:
    if path in _MOUNTS:
        _MOUNTS.remove(path)
    for argv in (["fusermount3", "-u", str(path)], ["fusermount3", "-uz", str(path)]):
        if not os.path.ismount(path):
            return
        subprocess.run(argv, capture_output=True, check=False)
        for _ in range(100):
            if not os.path.ismount(path):
                return
            time.sleep(0.01)


def log(message: str) -> None:
    print(f"# {message}", file=sys.stderr, flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# -- topologies -----------------------------------------------------------------------------------
def default_devdax() -> str:
    """The default topology with dax0.0 (16 GiB of CXL RAM) on device_dax, as daxctl finds it."""
    return default_topology_text().replace('decoder = "decoder0.0"', 'decoder = "decoder0.0"\ndriver = "device_dax"', 1)


def cxl_topology(size: int, driver: str = "device_dax") -> str:
    """Node 0 with 8 GiB of boot RAM and CPUs; a CXL region of ``size`` for node 1 at 1 TiB."""
    return f"""
[kernel]
memmap_on_memory = "Y"
max_physmem_bits = {max(46, (0x10000000000 + size - 1).bit_length())}
possible_nodes = "0-1"
[[node]]
id = 0
cpus = "0-1"
memory = ["0x100000-0xbfffffff", "0x100000000-0x23fffffff"]
[[cxl_region]]
start = 0x10000000000
size = {size}
target_node = 1
driver = "{driver}"
"""


def scale_topology(blocks: int) -> str:
    """``blocks`` memory blocks of boot RAM on node 0 (24 below the PCI hole, the rest above
    4 GiB), with nothing in use, so any block can go offline and online again."""
    high = (blocks - 24) * BLOCK
    return f"""
[kernel]
max_physmem_bits = {max(46, (0x100000000 + high).bit_length())}
boot_used_percent = 0
[[node]]
id = 0
cpus = "0-1"
memory = ["0x100000-0xbfffffff", {{ start = 0x100000000, size = {high} }}]
"""


def write_topology(name: str, text: str) -> Path:
    path = WORK / f"{name}.toml"
    path.write_text(text)
    return path


def boot_tree(text: str | None, harness: bool = True) -> tuple[Kernel, Tree]:
    """The kernel and tree ``fakesysfs mount`` would serve (with the simulator's debugfs)."""
    kernel = Kernel(load_topology(text=text) if text is not None else load_topology())
    tree = build_tree(kernel)
    if harness:
        from fakesysfs.harness import Harness

        Harness(kernel, tree, text)
    return kernel, tree


# -- the filesystems under test -----------------------------------------------------------------
@dataclass
class Target:
    """One filesystem whose root stands for /sys, and the paths each operation uses."""

    name: str
    root: str
    paths: dict[str, str | None]
    pids: list[int] = field(default_factory=list)  # daemons to pin

    def path(self, op: str) -> str | None:
        rel = self.paths.get(op)
        return None if rel is None else self.root + rel


def mount_fake(mountpoint: Path, topology: Path | None) -> tuple[int, float]:
    """``fakesysfs mount``: (daemon pid, seconds until the command returned with the mount live)."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    argv = [*CLI, "mount", str(mountpoint), *(["-c", str(topology)] if topology else [])]
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=ENV, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"fakesysfs mount failed: {done.stderr.strip()}")
    _MOUNTS.append(mountpoint)
    pid = int(re.search(r"\(pid (\d+)\)", done.stdout).group(1))  # type: ignore[union-attr]
    return pid, elapsed


def mount_bare(mountpoint: Path, snap: Path, cache: bool = True) -> tuple[subprocess.Popen, float]:
    """scripts/bench_bare_fuse.py: (process, seconds until the mount was live)."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    read_end, write_end = os.pipe()
    argv = [*BARE, str(mountpoint), str(snap), "--ready-fd", str(write_end), *([] if cache else ["--no-cache"])]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, pass_fds=(write_end,), env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        ok = pipe.read(3)
    elapsed = time.perf_counter() - start
    if ok != b"ok\n":
        proc.kill()
        raise RuntimeError("the bare FUSE filesystem did not come up")
    _PROCS.append(proc)
    _MOUNTS.append(mountpoint)
    return proc, elapsed


def save_snapshot(tree: Tree, name: str) -> Path:
    path = WORK / f"{name}.snapshot.json"
    path.write_text(json.dumps(snapshot(tree)))
    return path


def copy_to_tmpfs(tree: Tree, dest: Path) -> int:
    """The tree as plain files, links and directories (values as read now, modes kept)."""
    count = 0

    def walk(path: str, here: Path) -> None:
        nonlocal count
        for name in tree.readdir(path or "/"):
            sub, target = f"{path}/{name}", here / name
            st = tree.getattr(sub)
            count += 1
            if stat.S_ISDIR(st.mode):
                target.mkdir()
                walk(sub, target)
            elif stat.S_ISLNK(st.mode):
                target.symlink_to(tree.readlink(sub))
            else:
                try:
                    text = tree.cat(sub).encode("latin-1")
                except KernelError:
                    text = b""
                target.write_bytes(text)
                target.chmod(stat.S_IMODE(st.mode))

    dest.mkdir(parents=True, exist_ok=True)
    walk("", dest)
    return count


def pin(pids: list[int], cpus: set[int]) -> None:
    for pid in pids:
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(task), cpus)


def all_pids(targets: list[Target]) -> list[int]:
    return [pid for t in targets for pid in t.pids]


# -- per-operation measurements -------------------------------------------------------------------
OPS = [
    ("orc", "open+read+close of memoryN/state"),
    ("cat", "cat of a dax attribute (open, fstat, read to EOF, close)"),
    ("stat", "stat of memoryN/state"),
    ("readlink", "readlink of a node link (nodeK/memoryN)"),
    ("readdir_block", "readdir of a block directory (memoryN/)"),
    ("readdir_memory", "readdir of devices/system/memory"),
    ("echo", "echo of a state change (open O_TRUNC, write, close)"),
]


#: Per path, which word the next echo writes: a block is onlined and offlined in turn, across
#: measurements (unpinned, then pinned).
_ECHO_TURNS: dict[str, list[int]] = {}


def op_function(op: str, path: str) -> Callable[[], object]:
    if op == "orc":
        def run() -> object:
            fd = os.open(path, os.O_RDONLY)
            os.read(fd, 4096)
            return os.close(fd)
    elif op == "cat":
        def run() -> object:
            fd = os.open(path, os.O_RDONLY)
            os.fstat(fd)
            while os.read(fd, 131072):
                pass
            return os.close(fd)
    elif op == "stat":
        def run() -> object:
            return os.stat(path)
    elif op == "readlink":
        def run() -> object:
            return os.readlink(path)
    elif op.startswith("readdir"):
        def run() -> object:
            return os.listdir(path)
    elif op == "echo":
        words = [b"online_movable\n", b"offline\n"]
        turn = _ECHO_TURNS.setdefault(path, [1])  # the first write onlines (the block starts offline)

        def run() -> object:
            turn[0] ^= 1
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
            try:
                return os.write(fd, words[turn[0]])
            finally:
                os.close(fd)
    else:
        raise ValueError(op)
    return run


class Timing(float):
    """A median (µs) that also keeps its per-round medians, for ratios taken round by round."""

    rounds: list[float]

    def __new__(cls, samples: list[float], rounds: list[float]) -> Self:
        self = super().__new__(cls, median(samples))
        self.rounds = rounds
        return self


def measure(targets: list[Target], op: str, rounds: int, batch: int) -> dict[str, Timing]:
    """Median microseconds of ``op`` per target, in interleaved rounds (order rotating)."""
    runs = {t.name: op_function(op, p) for t in targets if (p := t.path(op)) is not None}
    samples: dict[str, list[float]] = {name: [] for name in runs}
    per_round: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for name in names:  # warm caches (dentries, the daemons' code paths)
        for _ in range(min(batch, 50)):
            runs[name]()
    clock = time.perf_counter_ns
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            run, out = runs[name], []
            for _ in range(batch):
                t0 = clock()
                run()
                out.append((clock() - t0) / 1000)
            samples[name] += out
            per_round[name].append(median(out))
    return {name: Timing(values, per_round[name]) for name, values in samples.items()}


def per_op_table(targets: list[Target], rounds: int, batch: int, cpus: set[int] | None) -> dict[str, dict[str, float]]:
    mine = os.sched_getaffinity(0)
    everything = set(range(os.cpu_count() or 1))
    try:
        pin(all_pids(targets), cpus or everything)
        os.sched_setaffinity(0, cpus or everything)
        table = {}
        for op, _ in OPS:
            small = op == "readdir_memory"
            table[op] = measure(targets, op, rounds, max(3, batch // 10) if small else batch)
        return table
    finally:
        os.sched_setaffinity(0, mine)
        pin(all_pids(targets), everything)


# -- whole jobs ----------------------------------------------------------------------------------
def walk_read(root: str) -> int:
    """Every file below ``root`` read once (links not followed into directories)."""
    count = 0
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            count += 1
            try:
                fd = os.open(os.path.join(dirpath, name), os.O_RDONLY | os.O_NONBLOCK)
            except OSError:
                continue
            try:
                while os.read(fd, 65536):
                    pass
            except OSError:
                pass
            finally:
                os.close(fd)
    return count


def timed(argv: list[str], env: dict[str, str] | None = None,
          timeout: float = 900) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env or ENV, timeout=timeout, check=False)
    return time.perf_counter() - start, done


def kmem_bind_in_process(size: int, repeat: int) -> tuple[float, int]:
    """Seconds for ``bind_store("kmem")`` of a CXL device of ``size`` (best of ``repeat``) in
    a fresh interpreter (the engine alone: no FUSE, none of this script's garbage), and the
    uevents it emitted."""
    done = subprocess.run([PY, __file__, "--kmem-bind", str(size), str(repeat)], capture_output=True, text=True,
                          env=ENV, check=True)
    seconds, events = json.loads(done.stdout)
    return seconds, events


def _kmem_bind(size: int, repeat: int) -> tuple[float, int]:
    best, events = float("inf"), 0
    config = load_topology(text=cxl_topology(size))
    for _ in range(repeat):
        kernel = Kernel(config)
        kernel.unbind_store("device_dax", "dax0.0")
        before = kernel.events.seqnum
        start = time.perf_counter()
        kernel.bind_store("kmem", "dax0.0")
        best = min(best, time.perf_counter() - start)
        events = kernel.events.seqnum - before
        del kernel
    return best, events


# -- output -------------------------------------------------------------------------------------
def us(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def ms(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "-"
    value = seconds * 1000
    return f"{value:.2f}" if value < 10 else (f"{value:.1f}" if value < 1000 else f"{value:.0f}")


def ratio(a: float | None, b: float | None) -> str:
    """a / b; for two Timings, the median of the round-by-round ratios (each pair measured
    back to back, so load from other processes cancels out)."""
    if a is None or b is None or math.isnan(a) or math.isnan(b) or b <= 0:
        return "-"
    if isinstance(a, Timing) and isinstance(b, Timing) and len(a.rounds) == len(b.rounds) > 1:
        return f"{median([x / y for x, y in zip(a.rounds, b.rounds, strict=True) if y > 0]):.2f}x"
    return f"{a / b:.2f}x"


def table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


def emit(text: str) -> None:
    print(text, flush=True)


# -- the sections -----------------------------------------------------------------------------------
def host_target() -> Target:
    memory = "/devices/system/memory"
    blocks = sorted(int(n[6:]) for n in os.listdir(f"/sys{memory}") if re.fullmatch(r"memory\d+", n))
    first = blocks[0] if blocks else 0
    link = None
    for node in sorted(os.listdir("/sys/devices/system/node")):
        candidate = f"/devices/system/node/{node}/memory{first}"
        if os.path.islink("/sys" + candidate):
            link = candidate
            break
    dax = sorted(Path("/sys/bus/dax/devices").glob("*/size")) if os.path.isdir("/sys/bus/dax/devices") else []
    cat = "/" + str(dax[0].resolve().relative_to("/sys")) if dax else f"{memory}/block_size_bytes"
    RESULTS["host_cat_path"] = cat
    return Target("host sysfs", "/sys", {
        "orc": f"{memory}/memory{first}/state", "cat": cat, "stat": f"{memory}/memory{first}/state",
        "readlink": link, "readdir_block": f"{memory}/memory{first}", "readdir_memory": memory, "echo": None,
    })


def fs_paths(tree: Tree, block: int, node: int) -> dict[str, str | None]:
    dax = "/bus/dax/devices/dax0.0"
    devpath = None
    with contextlib.suppress(KernelError):
        devpath = os.path.normpath(os.path.join("/bus/dax/devices", tree.readlink(dax)))
    return {
        "orc": f"/devices/system/memory/memory{block}/state",
        "cat": f"{devpath}/size" if devpath else None,
        "stat": f"/devices/system/memory/memory{block}/state",
        "readlink": f"/devices/system/node/node{node}/memory{block}",
        "readdir_block": f"/devices/system/memory/memory{block}",
        "readdir_memory": "/devices/system/memory",
        "echo": f"/devices/system/memory/memory{block}/state",
    }


def section_per_op(args: argparse.Namespace) -> None:
    log("per-operation: mounting fakesysfs, the bare FUSE floors and the tmpfs copy (default topology)")
    kernel, tree = boot_tree(None)
    block = 530  # dax0.0's memory (kmem at boot, offline): online_movable/offline toggles it
    paths = fs_paths(tree, block, kernel.blocks[block].nid)
    snap = save_snapshot(tree, "default")
    pid, _ = mount_fake(WORK / "fake", None)
    # Another block of node 1 stays online, so that toggling memory530 is an ordinary online
    # and offline, not the node's memory tier coming and going with it.
    Path(WORK / "fake" / "devices/system/memory/memory522/state").write_text("online_movable")
    bare, _ = mount_bare(WORK / "bare", snap)
    bare0, _ = mount_bare(WORK / "bare0", snap, cache=False)
    tmp = SHM / "tmpfs"
    copy_to_tmpfs(tree, tmp)
    targets = [
        Target("fakesysfs", str(WORK / "fake"), paths, [pid]),
        Target("bare FUSE", str(WORK / "bare"), paths, [bare.pid]),
        Target("bare FUSE, no cache", str(WORK / "bare0"), paths, [bare0.pid]),
        Target("tmpfs", str(tmp), paths),
        host_target(),
    ]
    cpu = max(os.sched_getaffinity(0))
    results = {}
    for mode, cpus in (("unpinned", None), ("pinned", {cpu})):
        log(f"per-operation, {mode}")
        results[mode] = per_op_table(targets, args.rounds, args.batch, cpus)
    RESULTS["per_op"] = results
    names = [t.name for t in targets]
    for mode, data in results.items():
        rows = []
        for op, label in OPS:
            d = data[op]
            fake = d.get("fakesysfs")
            row = [label, us(fake)]
            for other in names[1:]:
                row += [us(d.get(other)), ratio(fake, d.get(other))]
            rows.append(row)
        header = ["operation (median µs, " + mode + ")", "fakesysfs"]
        for other in names[1:]:
            header += [other, "ratio"]
        pinned = f" (client and daemons on CPU {cpu})" if mode == "pinned" else ""
        emit(f"\n### Per operation, {mode}{pinned}\n")
        emit(table(header, rows))
    emit(f"\nHost cat: {RESULTS['host_cat_path']} (the host has no dax device if this is not a dax attribute). "
         "Ratios are fakesysfs / floor.")

    # whole jobs on these mounts
    log("whole jobs: full walk")
    walks = {}
    for t in targets[:4]:
        best, count = float("inf"), 0
        for _ in range(args.walks):
            start = time.perf_counter()
            count = walk_read(t.root)
            best = min(best, time.perf_counter() - start)
        walks[t.name] = (best, count)
    RESULTS["walk"] = walks
    for path in (WORK / "fake", WORK / "bare", WORK / "bare0"):
        unmount(path)


def section_jobs(args: argparse.Namespace) -> None:
    rows: list[list[str]] = []
    jobs: dict[str, Any] = {}
    # mount ready
    log("whole jobs: mount ready")
    kernel, tree = boot_tree(None)
    snap = save_snapshot(tree, "default-ready")
    fake_times, bare_times, boot_times = [], [], []
    for i in range(args.mounts):
        _, elapsed = mount_fake(WORK / f"ready{i}", None)
        fake_times.append(elapsed)
        unmount(WORK / f"ready{i}")
        _, elapsed = mount_bare(WORK / f"readyb{i}", snap)
        bare_times.append(elapsed)
        unmount(WORK / f"readyb{i}")
        start = time.perf_counter()
        boot_tree(None)
        boot_times.append(time.perf_counter() - start)
    interp, _ = min((timed([PY, "-c", "pass"]) for _ in range(3)), key=lambda x: x[0])
    jobs["mount_ready"] = {"fake": median(fake_times), "bare": median(bare_times), "boot": median(boot_times),
                           "python": interp}
    fake_ready, bare_ready = median(fake_times), median(bare_times)
    rows.append(["mount ready, default topology (`fakesysfs mount` returns)", ms(fake_ready), ms(bare_ready),
                 ratio(fake_ready, bare_ready), "-", "-",
                 f"`python -c pass` {ms(interp)}; boot in-process {ms(median(boot_times))}", "< 200 ms"])

    walks = RESULTS.get("walk", {})
    if walks:
        fake, bare, tmpfs = walks["fakesysfs"][0], walks["bare FUSE"][0], walks["tmpfs"][0]
        rows.append([f"full walk reading every file ({walks['fakesysfs'][1]} files)", ms(fake), ms(bare),
                     ratio(fake, bare), ms(tmpfs), ratio(fake, tmpfs),
                     f"bare FUSE, no cache {ms(walks['bare FUSE, no cache'][0])}", ""])

    # lsmem --sysroot
    if shutil.which("lsmem"):
        log("whole jobs: lsmem --sysroot")
        lsroot = WORK / "lsmem"
        mount_fake(lsroot / "fake" / "sys", None)
        mount_bare(lsroot / "bare" / "sys", snap)
        copy_to_tmpfs(tree, SHM / "lsmem" / "sys")
        times: dict[str, list[float]] = {"fake": [], "bare": [], "tmpfs": [], "host": []}
        for _ in range(args.lsmem):
            for name, argv in (("fake", ["lsmem", "--sysroot", str(lsroot / "fake")]),
                               ("bare", ["lsmem", "--sysroot", str(lsroot / "bare")]),
                               ("tmpfs", ["lsmem", "--sysroot", str(SHM / "lsmem")]),
                               ("host", ["lsmem"])):
                elapsed, done = timed(argv)
                if done.returncode == 0:
                    times[name].append(elapsed)
        unmount(lsroot / "fake" / "sys")
        unmount(lsroot / "bare" / "sys")
        host_blocks = len([n for n in os.listdir("/sys/devices/system/memory") if n.startswith("memory")])
        lsmem = {k: median(v) for k, v in times.items()}
        jobs["lsmem"] = lsmem
        rows.append([f"`lsmem --sysroot` ({len(kernel.blocks)} blocks)", ms(lsmem["fake"]), ms(lsmem["bare"]),
                     ratio(lsmem["fake"], lsmem["bare"]), ms(lsmem["tmpfs"]), ratio(lsmem["fake"], lsmem["tmpfs"]),
                     f"host `lsmem` ({host_blocks} blocks) {ms(lsmem['host'])}", ""])

    # daxctl through fakesysfs run
    if shutil.which("daxctl"):
        sizes = [("16 GiB", 128, default_devdax(), args.dax_runs)]
        if not args.quick:
            sizes.append(("1 TiB", 8192, cxl_topology(1 << 40), 1))
        for label, blocks, text, runs in sizes:
            topo = write_topology(f"daxctl-{label.replace(' ', '')}", text)
            for pinned in (False, True):
                flag = ["--pin"] if pinned else []
                log(f"whole jobs: daxctl reconfigure-device -m system-ram, {label}{', pinned' if pinned else ''}")
                times_d, floor_d = [], []
                for _ in range(runs):
                    argv = [*CLI, "run", *flag, "-c", str(topo), "--", "daxctl", "reconfigure-device", "-m",
                            "system-ram", "dax0.0"]
                    elapsed, done = timed(argv)
                    if done.returncode != 0 or '"movable":true' not in done.stdout.replace(" ", ""):
                        raise RuntimeError(f"daxctl failed: {done.stderr.strip()[-500:]}")
                    times_d.append(elapsed)
                    elapsed, _ = timed([*CLI, "run", *flag, "-c", str(topo), "--", "true"])
                    floor_d.append(elapsed)
                total, floor = median(times_d), median(floor_d)
                key = f"daxctl_{label.replace(' ', '')}_{'pinned' if pinned else 'unpinned'}"
                jobs[key] = {"fake": total, "run_true": floor, "per_block_ms": (total - floor) / blocks * 1000}
                where = "`fakesysfs run --pin`" if pinned else "`fakesysfs run`"
                rows.append([f"`daxctl reconfigure-device -m system-ram` {label} via {where}", ms(total), "-", "-",
                             "-", "-",
                             f"{where} `-- true` {ms(floor)}; {(total - floor) / blocks * 1000:.2f} ms per block",
                             "< 10 s" if label == "1 TiB" else ""])

    # kmem bind in-process
    log("whole jobs: kmem bind of 1 TiB in-process")
    seconds, events = kmem_bind_in_process(1 << 40, 5 if not args.quick else 2)
    jobs["kmem_bind_1TiB"] = {"seconds": seconds, "events": events}
    rows.append([f"kmem bind of 1 TiB in-process (memmap_on_memory: 8192 blocks, {events} uevents)", ms(seconds),
                 "-", "-", "-", "-", f"{seconds / 8192 * 1e6:.2f} µs per block", "< 50 ms"])
    RESULTS["jobs"] = jobs
    emit("\n### Whole jobs (milliseconds, medians)\n")
    emit(table(["job", "fakesysfs", "bare FUSE", "ratio", "tmpfs", "ratio", "other floors", "target"], rows))


def rss(pid: int) -> int:
    return psutil.Process(pid).memory_info().rss


def section_scale(args: argparse.Namespace) -> None:
    sizes = [KI, 8 * KI] + ([64 * KI, 512 * KI] if args.scale == "all" else [])
    if args.scale not in ("default", "all"):
        sizes = [int(x.strip().lower().replace("ki", "")) * KI for x in args.scale.split(",")]
    rows = []
    scale: dict[str, Any] = {}
    base_blocks = 32
    log(f"scale: baseline daemon RSS ({base_blocks} blocks)")
    base_topo = write_topology("scale-base", scale_topology(base_blocks))
    pid, _ = mount_fake(WORK / "scale-base", base_topo)
    time.sleep(0.2)
    base_rss = rss(pid)
    unmount(WORK / "scale-base")
    for n in sizes:
        label = f"{n // KI} Ki"
        log(f"scale: {label} blocks")
        text = scale_topology(n)
        topo = write_topology(f"scale-{n}", text)
        start = time.perf_counter()
        kernel, tree = boot_tree(text)
        boot = time.perf_counter() - start
        snap = save_snapshot(tree, f"scale-{n}")
        del kernel, tree
        pid, ready = mount_fake(WORK / f"scale-{n}", topo)
        time.sleep(0.2)
        rss_ready = rss(pid)
        bare, bare_ready = mount_bare(WORK / f"scale-bare-{n}", snap)
        block = n // 2
        paths = {"orc": f"/devices/system/memory/memory{block}/state",
                 "stat": f"/devices/system/memory/memory{block}/state",
                 "readlink": f"/devices/system/node/node0/memory{block}", "readdir_memory": "/devices/system/memory"}
        fake_t = Target("fakesysfs", str(WORK / f"scale-{n}"), paths, [pid])
        bare_t = Target("bare FUSE", str(WORK / f"scale-bare-{n}"), paths, [bare.pid])
        targets = [fake_t, bare_t]
        tmpfs_listing = None
        if n <= 64 * KI or args.scale == "all":
            memdir = SHM / f"scale-{n}" / "devices/system/memory"
            memdir.mkdir(parents=True)
            for i in range(n):
                (memdir / f"memory{i}").mkdir()
            targets.append(Target("tmpfs", str(SHM / f"scale-{n}"), {"readdir_memory": "/devices/system/memory"}))
        # Pinned (client and daemons on one CPU): unpinned latencies on a VM swing with how
        # idle the other vCPU is (wake-up cost), which would hide whether they grow with N.
        cpu = {max(os.sched_getaffinity(0))}
        mine = os.sched_getaffinity(0)
        pin(all_pids(targets), cpu)
        os.sched_setaffinity(0, cpu)
        try:
            listing = measure(targets, "readdir_memory", rounds=3 if n > 64 * KI else 5, batch=1)
            ops = {op: measure(targets[:2], op, rounds=max(3, args.rounds // 2), batch=args.batch)
                   for op in ("orc", "stat", "readlink")}
        finally:
            os.sched_setaffinity(0, mine)
        rss_listed = rss(pid)
        if len(targets) > 2:
            tmpfs_listing = listing.get("tmpfs")
            shutil.rmtree(SHM / f"scale-{n}", ignore_errors=True)
        unmount(WORK / f"scale-{n}")
        unmount(WORK / f"scale-bare-{n}")
        hot = None
        if n >= 8 * KI:
            seconds, _ = kmem_bind_in_process(n * BLOCK, 1)
            hot = seconds / n * 1e6
        per_block = (rss_ready - base_rss) / (n - base_blocks)
        scale[label] = {"blocks": n, "boot_s": boot, "mount_s": ready, "bare_mount_s": bare_ready,
                        "rss": rss_ready, "rss_listed": rss_listed, "rss_per_block": per_block,
                        "rss_per_block_listed": (rss_listed - base_rss) / (n - base_blocks),
                        "readdir_memory_us": listing,
                        "ops_us": ops, "kmem_bind_us_per_block": hot}
        rows.append([
            label, ms(ready), ms(bare_ready), ms(boot),
            f"{per_block:.0f} B", f"{(rss_listed - base_rss) / (n - base_blocks):.0f} B",
            ms(listing["fakesysfs"] / 1e6), ms(listing["bare FUSE"] / 1e6),
            ratio(listing["fakesysfs"], listing["bare FUSE"]),
            ms(tmpfs_listing / 1e6) if tmpfs_listing else "-",
            f"{us(ops['orc']['fakesysfs'])} / {us(ops['orc']['bare FUSE'])} "
            f"({ratio(ops['orc']['fakesysfs'], ops['orc']['bare FUSE'])})",
            f"{us(ops['stat']['fakesysfs'])} / {us(ops['stat']['bare FUSE'])}",
            f"{us(ops['readlink']['fakesysfs'])} / {us(ops['readlink']['bare FUSE'])}",
            f"{hot:.2f}" if hot is not None else "-",
        ])
    RESULTS["scale"] = scale
    emit("\n### Scale (boot RAM of N memory blocks on node 0; listing and operations pinned; ms unless noted)\n")
    emit(table(["N", "mount ready", "bare FUSE mount", "boot in-process", "daemon RSS/block",
                "RSS/block after listing", "readdir memory/", "bare FUSE", "ratio", "tmpfs",
                "open+read+close µs (fake / bare)", "stat µs", "readlink µs", "kmem bind µs/block (in-process)"], rows))
    emit(f"\nRSS per block: (daemon RSS at N - at {base_blocks} blocks, {base_rss / 2**20:.1f} MiB) "
         f"/ (N - {base_blocks}); "
         "the kmem bind column hot-adds N blocks of CXL memory in-process (N x 128 MiB).")


def main() -> int:
    if sys.argv[1:2] == ["--kmem-bind"]:  # the engine measurement, in its own interpreter
        print(json.dumps(_kmem_bind(int(sys.argv[2]), int(sys.argv[3]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="default",
                        help="'default' (1Ki,8Ki), 'all' (1Ki,8Ki,64Ki,512Ki) or a list such as 64Ki,512Ki")
    parser.add_argument("--quick", action="store_true", help="fewer samples, no 1 TiB daxctl")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per operation (default 40)")
    parser.add_argument("--batch", type=int, help="operations per round and target (default 50)")
    parser.add_argument("--skip", default="", help="comma list of sections to skip: perop,jobs,scale")
    parser.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("run as root (FUSE mounts and fakesysfs run)")
    args.rounds = args.rounds or (8 if args.quick else 40)
    args.batch = args.batch or (25 if args.quick else 50)
    args.walks = 1 if args.quick else 3
    args.mounts = 3 if args.quick else 7
    args.lsmem = 3 if args.quick else 7
    args.dax_runs = 1 if args.quick else 3
    skip = set(filter(None, args.skip.split(",")))

    _make_scratch()
    started = time.perf_counter()
    load = os.getloadavg()
    emit("## fakesysfs benchmark\n")
    emit(f"{platform.node()}: {os.cpu_count()} CPUs, Linux {platform.release()}, Python {platform.python_version()}, "
         f"{_fuse.BINDING} on libfuse {'.'.join(map(str, _fuse.LIBFUSE_VERSION))}, cache "
         f"{'on (invalidated per change)' if _fuse.CAN_INVALIDATE else 'off (zero timeouts)'}; "
         f"load average at start {load[0]:.2f}")
    if "perop" not in skip:
        section_per_op(args)
    if "jobs" not in skip:
        section_jobs(args)
    if "scale" not in skip:
        section_scale(args)
    emit(f"\n(load average at the end {os.getloadavg()[0]:.2f}; {time.perf_counter() - started:.0f} s in all)")
    if args.json:
        Path(args.json).write_text(json.dumps(RESULTS, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
