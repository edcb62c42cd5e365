"""A fleet: N simulated hosts in one process, each with a CXL region hot-added and onlined by
an agent, all hosts at once (``python examples/fleet.py [N]``, as root; N is 20 by default).

Each host is a ``Simulation`` mounted from a thread of this process: a host costs about
0.4 MiB and 10 ms to mount this way, against a 14 MiB daemon and 150-300 ms per
``fakesysfs mount`` (README, "Fleets"; ``scripts/fleet.py`` measures both).
"""

import contextlib
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fakesysfs import ProducerInfo, Simulation


def agent(root: Path, ready: threading.Barrier, stop: threading.Event) -> None:
    """A trivial agent: onlines, as movable, every memory block that appears on one host."""
    memory = root / "devices" / "system" / "memory"
    seen = set(os.listdir(memory))
    ready.wait()                                        # it has taken stock of the blocks
    while not stop.wait(0.02):
        now = set(os.listdir(memory))
        for name in now - seen:
            if name.startswith("memory"):
                (memory / name / "state").write_text("online_movable")
        seen = now


def onlined(region: ProducerInfo) -> Callable[[Simulation], bool]:
    return lambda sim: all(b.online for b in sim.blocks_of(region))


def main(n: int) -> None:
    with contextlib.ExitStack() as fleet:
        sims = [fleet.enter_context(Simulation()) for _ in range(n)]   # unmounted and closed on exit
        roots = [sim.mount() for sim in sims]
        ready, stop = threading.Barrier(n + 1), threading.Event()
        agents = [threading.Thread(target=agent, args=(root, ready, stop)) for root in roots]
        for thread in agents:
            thread.start()
        ready.wait()
        with ThreadPoolExecutor(n) as firmware:          # every host hot-adds a 4 GiB region at once
            regions = list(firmware.map(lambda sim: sim.add_cxl_region("4G", node=1), sims))
        for sim, region in zip(sims, regions, strict=True):
            sim.wait_until(onlined(region), timeout=60)
        stop.set()
        for thread in agents:
            thread.join()
        for sim, region in zip(sims, regions, strict=True):
            assert len(sim.blocks_of(region)) == 32 and all(b.movable for b in sim.blocks_of(region))
    print(f"{n} hosts: the agents onlined {32 * n} blocks as movable")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
