"""What a state file costs per store: median and 90th percentile latency of N stores that
alternate online_movable/offline on one hot-added block, in-process (Simulation.echo) and
through a `fakesysfs mount` daemon (write(2) on one open file), without and with --state.

    XDG_RUNTIME_DIR=/tmp/xdg python scripts/journal_overhead.py [N]

Needs FUSE (root and /dev/fuse) for the mount half.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from fakesysfs import Simulation

N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
TOPOLOGY = """
[kernel]
memmap_on_memory = "Y"
possible_nodes = "0-1"
[[node]]
id = 0
cpus = "0-1"
memory = ["0x0-0xffffffff"]
[[cxl_region]]
start = 0x1000000000
size = "1G"
target_node = 1
"""
BLOCK = 0x1000000000 // (128 << 20)


def latencies(write) -> tuple[int, int]:
    """(median, p90) in microseconds."""
    times = []
    for i in range(N):
        start = time.perf_counter()
        write("online_movable" if i % 2 == 0 else "offline")
        times.append(time.perf_counter() - start)
    times.sort()
    return round(times[N // 2] * 1e6), round(times[N * 9 // 10] * 1e6)


def in_process(state: bool) -> tuple[int, int]:
    with tempfile.TemporaryDirectory() as d, Simulation(TOPOLOGY, state=f"{d}/s.state" if state else None) as sim:
        path = f"/devices/system/memory/memory{BLOCK}/state"
        return latencies(lambda text: sim.echo(path, text, newline=False))


def mounted(state: bool) -> tuple[int, int]:
    with tempfile.TemporaryDirectory() as d:
        mnt = os.path.join(d, "mnt")
        os.mkdir(mnt)
        with open(f"{d}/t.toml", "w") as f:
            f.write(TOPOLOGY)
        args = [sys.executable, "-m", "fakesysfs.cli", "mount", mnt, "-c", f"{d}/t.toml"]
        subprocess.run([*args, *(["--state", f"{d}/s.state"] if state else [])], check=True, capture_output=True)
        fd = os.open(f"{mnt}/devices/system/memory/memory{BLOCK}/state", os.O_WRONLY)
        try:
            return latencies(lambda text: os.write(fd, text.encode()))
        finally:
            os.close(fd)
            subprocess.run(["fusermount3", "-u", mnt], check=False)


if __name__ == "__main__":
    for name, measure in (("in-process", in_process), ("FUSE mount", mounted)):
        for state in (False, True):
            runs = [measure(state) for _ in range(3)]
            print(f"{name:<10} {'--state' if state else 'no state':<8}  median/p90 us per store: {runs}")
