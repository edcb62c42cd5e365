#!/usr/bin/env python3
"""Fleets: how many simulated hosts one machine holds, and what each costs.

    python scripts/fleet.py                      # N = 50: daemons, then one process of threads
    python scripts/fleet.py --n 10 --mode daemons

A measurement, not a test (timing goals live in scripts, never in timed tests). Run as root.
Two designs, each with N mounts of the default topology:

- daemons: ``fakesysfs mount DIR`` N times (one forked daemon per host);
- threads: one process holding N ``Simulation`` objects, each ``mount()``-ed (one FUSE
  thread per host, all in this process).

For each: the wall time of the k-th mount as the fleet grows, the idle memory per host
(RSS, USS, PSS of each daemon; for threads, the growth of the one process per mount), then
one CXL region hot-added per host and its blocks onlined through each mount, all hosts
driven concurrently (a thread per host: ``fakesysfs ctl MNT add-cxl-region`` for daemons,
``Simulation.add_cxl_region`` for threads; the stores are ``echo online_movable`` to
``memoryN/state`` through the mount in both), and finally everything unmounted and checked
gone: mounts, daemons, control sockets, temporary directories. Everything lives in one
private directory (mountpoints, $XDG_RUNTIME_DIR, $TMPDIR), removed at exit, Ctrl-C included.
Each figure is printed with the 1-minute load average when it was taken.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402

PY = sys.executable
CLI = [PY, "-m", "fakesysfs.cli"]
# Daemons start as from an installed package: with compiled bytecode, kept between runs.
PYCACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fakesysfs" / "bench-pycache"
MIB = 1 << 20
MEMORY = "devices/system/memory"
ADD_CXL_REGION = "kernel/debug/fakesysfs/hotplug/add_cxl_region"


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def log(message: str) -> None:
    print(f"# {message}", file=sys.stderr, flush=True)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


class Scratch:
    """The run's private directory: mountpoints, $XDG_RUNTIME_DIR (control sockets) and
    $TMPDIR, all below one mkdtemp; ``close`` unmounts what is left, kills our daemons and
    removes it, once, whatever happened."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="fakesysfs-fleet-", dir="/tmp"))
        self.run = self.root / "run"
        self.tmp = self.root / "tmp"
        self.run.mkdir(mode=0o700)
        self.tmp.mkdir(mode=0o700)
        self.env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        self.env.update(PYTHONPATH=str(REPO), PYTHONPYCACHEPREFIX=str(PYCACHE), XDG_RUNTIME_DIR=str(self.run),
                        TMPDIR=str(self.tmp))
        os.environ["XDG_RUNTIME_DIR"] = str(self.run)  # for this process's Simulation mounts
        tempfile.tempdir = str(self.tmp)
        self.pids: list[int] = []
        self.closed = False

    def mountpoint(self, design: str, k: int) -> Path:
        path = self.root / design / f"host{k}"
        path.mkdir(parents=True)
        return path

    def mounts(self) -> list[str]:
        """Mount points below the private directory, from /proc/self/mountinfo."""
        found = []
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            for line in f:
                where = line.split()[4].replace("\\040", " ")
                if where.startswith(str(self.root) + "/"):
                    found.append(where)
        return found

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for where in sorted(self.mounts(), key=len, reverse=True):
            unmount(Path(where), self.env)
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if not self.mounts():  # never rmtree through a live mount
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            log(f"left {self.root}: still mounted: {self.mounts()}")


def unmount(path: Path, env: dict[str, str]) -> None:
    for argv in (CLI + ["umount", str(path)], ["fusermount3", "-uz", str(path)]):
        if not os.path.ismount(path):
            return
        subprocess.run(argv, capture_output=True, check=False, env=env, timeout=30)
        for _ in range(200):
            if not os.path.ismount(path):
                return
            time.sleep(0.01)


def memory(pid: int) -> tuple[int, int, int]:
    m = psutil.Process(pid).memory_full_info()
    return m.rss, m.uss, m.pss


# -- driving one host through its mount ------------------------------------------------------------
def block_ids(mnt: Path) -> set[int]:
    return {int(name[6:]) for name in os.listdir(mnt / MEMORY) if name.startswith("memory") and name[6:].isdigit()}


def online_new_blocks(mnt: Path, before: set[int]) -> int:
    """What an agent does: echo online_movable to the state of each block that appeared."""
    new = sorted(block_ids(mnt) - before)
    for block in new:
        with open(mnt / MEMORY / f"memory{block}" / "state", "w", encoding="ascii") as f:
            f.write("online_movable\n")
    for block in new:
        state = (mnt / MEMORY / f"memory{block}" / "state").read_text(encoding="ascii")
        if state != "online\n":
            raise RuntimeError(f"{mnt}: memory{block} is {state.strip()!r} after online_movable")
    return len(new)


def add_through_mount(mnt: Path, size: str) -> None:
    """Firmware hot-adds a CXL region: the harness's file of the mount (README, "Testing agents")."""
    with open(mnt / ADD_CXL_REGION, "w", encoding="ascii") as f:
        f.write(f"size={size} node=1\n")


def drive_all(hosts: list[Path], add: Callable[[int], object], size: str) -> tuple[float, int]:
    """Hot-add a region on every host and online its blocks, all hosts at once; the wall time
    from the first add to the last block online, and the number of blocks onlined."""
    before = [block_ids(mnt) for mnt in hosts]
    start_line = threading.Barrier(len(hosts) + 1)

    def one(i: int) -> int:
        start_line.wait()
        add(i)
        return online_new_blocks(hosts[i], before[i])

    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        futures = [pool.submit(one, i) for i in range(len(hosts))]
        start_line.wait()
        t0 = time.perf_counter()
        onlined = sum(f.result() for f in futures)
        wall = time.perf_counter() - t0
    expected = len(hosts) * (parse_size(size) // (128 * MIB))
    if onlined != expected:
        raise RuntimeError(f"onlined {onlined} blocks, expected {expected}")
    return wall, onlined


def parse_size(text: str) -> int:
    m = re.fullmatch(r"(\d+)([KMGT]?)", text)
    if not m:
        raise ValueError(text)
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}[m.group(2)]


# -- the two designs -------------------------------------------------------------------------------
def checkpoints(n: int) -> list[int]:
    return sorted({k for k in (1, 10, 25, 50, 100) if k <= n} | {n})


def mount_times_rows(times: list[float], loads: list[str], n: int) -> list[list[str]]:
    """The k-th mount's time, at each checkpoint (the median of the 3 mounts around it)."""
    rows = []
    for k in checkpoints(n):
        around = times[max(0, k - 2):k + 1] if k > 1 else times[:1]
        rows.append([str(k), f"{statistics.median(around) * 1000:.0f}", loads[k - 1]])
    return rows


def run_daemons(scratch: Scratch, n: int, size: str, settle: float) -> dict[str, Any]:
    hosts: list[Path] = []
    times: list[float] = []
    loads: list[str] = []
    for k in range(1, n + 1):
        mnt = scratch.mountpoint("daemons", k)
        t0 = time.perf_counter()
        out = subprocess.run(CLI + ["mount", str(mnt)], env=scratch.env, capture_output=True, text=True,
                             check=False, timeout=60)
        times.append(time.perf_counter() - t0)
        loads.append(load())
        m = re.search(r"\(pid (\d+)\)", out.stdout)
        if out.returncode != 0 or m is None:
            raise RuntimeError(f"mount {mnt}: {out.stderr.strip() or out.stdout.strip()}")
        scratch.pids.append(int(m.group(1)))
        hosts.append(mnt)
    log(f"daemons: {n} mounted; idle {settle:.0f} s")
    time.sleep(settle)
    mems = [memory(pid) for pid in scratch.pids]
    idle_load = load()

    def ctl(i: int) -> None:
        subprocess.run(CLI + ["ctl", str(hosts[i]), "add-cxl-region", size, "1"], env=scratch.env, check=True,
                       capture_output=True, timeout=120)

    drives = {"debugfs file": drive_all(hosts, lambda i: add_through_mount(hosts[i], size), size) + (load(),),
              "`fakesysfs ctl`": drive_all(hosts, ctl, size) + (load(),)}
    after = [memory(pid) for pid in scratch.pids]
    return {"times": times, "loads": loads, "mems": mems, "after": after, "idle_load": idle_load,
            "drives": drives, "hosts": hosts}


def run_threads(scratch: Scratch, n: int, size: str, settle: float) -> dict[str, Any]:
    from fakesysfs import Simulation

    me = os.getpid()
    gc.collect()
    base = memory(me)
    sims: list[Simulation] = []
    hosts: list[Path] = []
    times: list[float] = []
    loads: list[str] = []
    try:
        for k in range(1, n + 1):
            mnt = scratch.mountpoint("threads", k)
            t0 = time.perf_counter()
            sim = Simulation()
            sims.append(sim)
            sim.mount(mnt)
            times.append(time.perf_counter() - t0)
            loads.append(load())
            hosts.append(mnt)
            if k == 1:
                gc.collect()
                first = memory(me)
        log(f"threads: {n} mounted; idle {settle:.0f} s")
        time.sleep(settle)
        gc.collect()
        full = memory(me)
        idle_load = load()

        drives = {"debugfs file": drive_all(hosts, lambda i: add_through_mount(hosts[i], size), size) + (load(),),
                  "`Simulation.add_cxl_region`":
                      drive_all(hosts, lambda i: sims[i].add_cxl_region(size, node=1) and None, size) + (load(),)}
        after = memory(me)
    finally:
        for sim in sims:
            sim.close()
    return {"times": times, "loads": loads, "base": base, "first": first, "full": full, "after": after,
            "idle_load": idle_load, "drives": drives, "hosts": hosts}


def teardown_daemons(scratch: Scratch, result: dict[str, Any]) -> float:
    t0 = time.perf_counter()
    for mnt in result["hosts"]:
        unmount(mnt, scratch.env)
    return time.perf_counter() - t0


def leftovers(scratch: Scratch) -> list[str]:
    """What the fleet left behind once unmounted: mounts, live daemons, sockets, temp dirs."""
    found = [f"mount {m}" for m in scratch.mounts()]
    deadline = time.monotonic() + 10
    for pid in scratch.pids:
        while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            if time.monotonic() > deadline:
                found.append(f"daemon {pid}")
                break
            time.sleep(0.05)
    for path in list(scratch.run.rglob("*")) + list(scratch.tmp.rglob("*")):
        if not path.is_dir() or path.parent != scratch.run:  # $XDG_RUNTIME_DIR/fakesysfs-<uid> itself stays
            found.append(f"file {path}")
    return found


# -- where a daemon's memory goes -----------------------------------------------------------------
DAEMON_MODULES = ("fakesysfs.cli", "fakesysfs.machine", "fakesysfs.daemon", "fakesysfs.fuse_adapter",
                  "fakesysfs.control", "fakesysfs.mountpoint", "fakesysfs.safefile", "fakesysfs.debugfs",
                  "fakesysfs.journal", "mfusepy")


def breakdown(env: dict[str, str]) -> list[list[str]]:
    """A daemon's idle memory by layer: processes that stop after each stage of what a
    daemon loads, measured from outside (the smallest USS of 3; RSS beside it)."""
    listing = subprocess.run([PY, "-c", "import sys\nbase = set(sys.modules)\nimport " + ", ".join(DAEMON_MODULES)
                              + "\nprint(' '.join(m for m in sys.modules if m not in base and '.' not in m"
                              " and not m.startswith(('fakesysfs', 'mfusepy', '_'))))"],
                             env=env, capture_output=True, text=True, check=True).stdout.split()
    stdlib = "import " + ", ".join(listing)
    ours = stdlib + "\nimport " + ", ".join(DAEMON_MODULES)
    stages = [("interpreter (`python -c pass`, with this machine's site-packages)", "pass"),
              (f"+ the {len(listing)} stdlib modules a daemon imports", stdlib),
              ("+ fakesysfs's and mfusepy's modules", ours),
              ("+ the booted default topology (engine and tree)",
               ours + "\nfrom fakesysfs.cli import common\nmachine = common.boot(None)")]
    rows = []
    for name, code in stages:
        samples = []
        for _ in range(3):
            with subprocess.Popen([PY, "-c", code + "\nimport sys, time\nprint(flush=True)\ntime.sleep(60)"], env=env,
                                  stdout=subprocess.PIPE) as proc:
                assert proc.stdout is not None
                proc.stdout.readline()
                time.sleep(0.3)
                samples.append(memory(proc.pid))
                proc.kill()
        rss, uss, _ = min(samples, key=lambda m: m[1])
        rows.append([name, mib(rss), mib(uss), load()])
    return rows


# -- report ---------------------------------------------------------------------------------------
def mib(value: float) -> str:
    return f"{value / MIB:.1f}"


def report(n: int, size: str, daemons: dict[str, Any] | None, threads: dict[str, Any] | None,
           left: list[str], layers: list[list[str]] | None) -> None:
    cpus = os.cpu_count()
    print(f"Fleet of {n} hosts (default topology, a {size} CXL region each), {platform.machine()} "
          f"{cpus} vCPUs, Linux {platform.release()}, Python {platform.python_version()}; "
          f"load average (1 min) beside each figure.\n")
    if daemons is not None:
        rss = [m[0] for m in daemons["mems"]]
        uss = [m[1] for m in daemons["mems"]]
        pss = [m[2] for m in daemons["mems"]]
        print("Daemons (`fakesysfs mount`), idle memory per daemon (median over the fleet, MiB):\n")
        print(table(["RSS", "USS", "PSS", "sum of PSS", "after the drive: RSS / USS", "load"],
                    [[mib(statistics.median(rss)), mib(statistics.median(uss)), mib(statistics.median(pss)),
                      mib(sum(pss)),
                      f"{mib(statistics.median(m[0] for m in daemons['after']))} / "
                      f"{mib(statistics.median(m[1] for m in daemons['after']))}", daemons["idle_load"]]]))
        print()
    if layers:
        print("Where an idle daemon's memory goes (MiB; a serving daemon adds libfuse and its threads):\n")
        print(table(["stage", "RSS", "USS", "load"], layers))
        print()
    if threads is not None:
        base, first, full = threads["base"], threads["first"], threads["full"]
        per = (full[1] - first[1]) / max(1, n - 1)
        print("Threads (one process, `Simulation().mount()` per host), memory of that process (MiB):\n")
        print(table(["before", "1 host: RSS / USS", f"{n} hosts: RSS / USS", "per further host (USS)",
                     "after the drive: RSS / USS", "load"],
                    [[f"{mib(base[0])} / {mib(base[1])}", f"{mib(first[0])} / {mib(first[1])}",
                      f"{mib(full[0])} / {mib(full[1])}", mib(per),
                      f"{mib(threads['after'][0])} / {mib(threads['after'][1])}", threads["idle_load"]]]))
        print()
    header = ["k-th mount"]
    columns: list[list[list[str]]] = []
    for name, result in (("daemons", daemons), ("threads", threads)):
        if result is not None:
            header += [f"{name}: ms", "load"]
            columns.append(mount_times_rows(result["times"], result["loads"], n))
    if columns:
        print("Time to mount the k-th host with k-1 live (ms; median of the 3 mounts up to k):\n")
        rows = []
        for i, k in enumerate(checkpoints(n)):
            row = [str(k)]
            for col in columns:
                row += col[i][1:]
            rows.append(row)
        print(table(header, rows))
        print()
    drive_rows = []
    for name, result in (("daemons", daemons), ("threads", threads)):
        if result is not None:
            for how, (wall, blocks, drive_load) in result["drives"].items():
                drive_rows.append([name, how, str(n), str(blocks), f"{wall * 1000:.0f}", f"{wall * 1e6 / blocks:.0f}",
                                   drive_load])
    if drive_rows:
        print("All hosts at once: hot-add a region each, online its blocks through the mount:\n")
        print(table(["design", "region added by", "hosts", "blocks onlined", "wall ms", "µs per block", "load"],
                    drive_rows))
        print()
    print("Leftovers after unmounting everything: " + ("none" if not left else ", ".join(left)))


@contextlib.contextmanager
def interrupts_raise() -> Iterator[None]:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so the scratch directory is cleaned either way."""
    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="hosts per design (default 50)")
    parser.add_argument("--mode", default="daemons,threads", help="daemons, threads or both (default)")
    parser.add_argument("--size", default="4G", help="the CXL region hot-added per host (default 4G: 32 blocks)")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds idle before memory is read")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("fleet.py: run as root (FUSE mounts)", file=sys.stderr)
        return 2
    modes = set(args.mode.split(","))
    scratch = Scratch()
    daemons = threads = None
    layers = None
    with interrupts_raise():
        try:
            # threads first: the daemons' `fakesysfs ctl` drive starts N interpreters at once
            if "threads" in modes:
                threads = run_threads(scratch, args.n, args.size, args.settle)
            if "daemons" in modes:
                daemons = run_daemons(scratch, args.n, args.size, args.settle)
                teardown_daemons(scratch, daemons)
                layers = breakdown(scratch.env)
            left = leftovers(scratch)
        finally:
            scratch.close()
    if scratch.root.exists():
        left.append(f"directory {scratch.root}")
    report(args.n, args.size, daemons, threads, left, layers)
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
