import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakesysfs import Simulation

AGENT = Path(__file__).with_name("agent.py")        # the example agent: onlines new blocks as movable


@pytest.fixture
def agent(fakesysfs_mount: Simulation) -> Iterator[subprocess.Popen[str]]:
    """The agent, running against the mount; returns once it says "ready"."""
    with subprocess.Popen([sys.executable, AGENT, str(fakesysfs_mount.mountpoint)], stdout=subprocess.PIPE,
                          text=True) as proc:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        yield proc
        proc.terminate()


@pytest.mark.usefixtures("agent")
def test_agent_onlines_hot_plugged_cxl_memory_as_movable(fakesysfs_mount: Simulation) -> None:
    sim = fakesysfs_mount
    region = sim.add_cxl_region("2G", node=1)       # 16 blocks of 128 MiB
    assert len(sim.blocks_of(region)) == 16
    sim.wait_until(lambda s: all(b.online for b in s.blocks_of(region)), timeout=30)
    assert all(b.movable for b in sim.blocks_of(region))
    assert {w.path.split("/")[-2] for w in sim.stores(data="online_movable")} == {
        f"memory{b.id}" for b in sim.blocks_of(region)}
