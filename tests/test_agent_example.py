"""README "Testing an agent": an agent written in shell (tests/agents/online_movable.sh) reacts
to hot-plugged CXL memory by onlining it as movable; the tests wait for it and assert, with
no sleep anywhere. The same agent then meets random hot-plug sequences and faults from
``fakesysfs.testing.HotplugStateMachine``."""

from __future__ import annotations

import errno
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from fakesysfs import Simulation
from fakesysfs.testing import HotplugStateMachine

AGENT = Path(__file__).parent / "agents" / "online_movable.sh"
#: The agent runs `fakesysfs monitor`; point it at this interpreter's fakesysfs.
AGENT_ENV = {**os.environ, "FAKESYSFS": f"{sys.executable} -m fakesysfs.cli"}


def start_agent(mountpoint: Path) -> subprocess.Popen[str]:
    """Start the agent and return once it listens ("ready" on its stdout)."""
    proc = subprocess.Popen([str(AGENT), str(mountpoint)], stdout=subprocess.PIPE, text=True, env=AGENT_ENV,
                            start_new_session=True)
    assert proc.stdout is not None
    if not select.select([proc.stdout], [], [], 30)[0]:
        stop_agent(proc)
        raise AssertionError("the agent did not say ready within 30 s")
    line = proc.stdout.readline()
    if line != "ready\n":
        stop_agent(proc)
        raise AssertionError(f"the agent said {line!r} instead of ready")
    return proc


def stop_agent(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.fixture
def agent(fakesysfs_mount: Simulation) -> Iterator[subprocess.Popen[str]]:
    proc = start_agent(fakesysfs_mount.mountpoint)
    yield proc
    stop_agent(proc)


@pytest.mark.fuse
@pytest.mark.usefixtures("agent")
def test_agent_onlines_hot_plugged_cxl_memory_as_movable(fakesysfs_mount: Simulation) -> None:
    sim = fakesysfs_mount
    mark = sim.mark()
    region = sim.add_cxl_region("2G", node=1)  # firmware: a CXL device was plugged in

    def all_online(s: Simulation) -> list:
        blocks = s.blocks_of(region)
        return blocks if blocks and all(b.online for b in blocks) else []

    blocks = sim.wait_until(all_online, timeout=30)
    assert len(blocks) == 16 and all(b.movable and b.node == 1 for b in blocks)
    assert [(w.path, w.text, w.ok) for w in sim.stores(after=mark)] == \
        [(f"/devices/system/memory/memory{b.id}/state", "online_movable", True) for b in blocks]
    assert sim.node(1).mem_total == 16 * (32768 - 512) * 4096  # each block keeps 512 memmap pages


@pytest.mark.fuse
@pytest.mark.usefixtures("agent")
def test_agent_meets_a_notifier_error(fakesysfs_mount: Simulation) -> None:
    sim = fakesysfs_mount
    sim.inject_notifier_error("MEM_GOING_ONLINE", "ENOMEM")
    mark = sim.mark()
    region = sim.add_cxl_region("256M", node=1)
    block = sim.blocks_of(region)[0]
    failed = sim.wait_for_store(path=f"/devices/system/memory/memory{block.id}/state", after=mark, timeout=30)
    assert (failed.text, failed.errno) == ("online_movable", errno.ENOMEM)
    assert not sim.block(block.id).online


class ShellAgentMachine(HotplugStateMachine):
    """Random CXL/hmem hot-plug and faults against the shell agent."""

    mount = True
    target_nodes = (1, 2)
    sizes = ("256M", "512M")

    def start_agent(self) -> None:
        assert self.mountpoint is not None
        self.agent = start_agent(self.mountpoint)
        self.mark = self.sim.mark()

    def stop_agent(self) -> None:
        stop_agent(self.agent)

    def settle(self) -> None:
        """The agent has tried every block added since the last step (a block whose add was
        unwound by a fault is gone: nothing to try)."""
        present = {b.id for b in self.sim.blocks()}
        for event in self.sim.events(after=self.mark, action="add", subsystem="memory"):
            if int(event.devpath.rsplit("memory", 1)[1]) in present:
                self.sim.wait_for_store(path=f"{event.devpath}/state", after=self.mark, timeout=30)
        self.mark = self.sim.mark()

    def check(self) -> None:
        for block in self.sim.blocks():
            if block.online and not block.boot:
                assert block.movable, f"memory{block.id} was onlined into {block.zone}"


TestShellAgentMachine = ShellAgentMachine.TestCase
TestShellAgentMachine.settings = settings(max_examples=4, stateful_step_count=6, deadline=None,
                                          suppress_health_check=list(HealthCheck))
TestShellAgentMachine = pytest.mark.fuse(TestShellAgentMachine)
