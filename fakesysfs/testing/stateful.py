"""``HotplugStateMachine``: random firmware hot-plug and fault sequences, for testing an agent.

Subclass it, say how to start your agent and what it must achieve, and let hypothesis find the
shortest sequence of hot-adds, removals and faults that breaks it::

    from fakesysfs.testing import HotplugStateMachine

    class OnlinesMovable(HotplugStateMachine):
        mount = True                                   # the agent is another process

        def start_agent(self):
            self.agent = subprocess.Popen(["./agent.sh", str(self.mountpoint)], ...)

        def stop_agent(self):
            self.agent.terminate(); self.agent.wait()

        def settle(self):                              # after each hardware change
            self.sim.wait_until(lambda s: all(b.online for b in s.blocks() if b.device), timeout=10)

        def check(self):                               # after every step
            assert all(b.movable for b in self.sim.blocks() if b.online and not b.boot)

    TestOnlinesMovable = OnlinesMovable.TestCase

Rules: hot-add a CXL region or an hmem range (size from ``sizes``, node from
``target_nodes``), remove one that was hot-added, set or clear a notifier error, arm a memmap
failure at chunk k, arm a probe failure for the next dax device, pin pages of an online block,
poison an offline one, clear all faults. After every step ``check_kernel_invariants`` (every
invariant of docs/abi.md, ``fakesysfs.testing.invariants``) and then your ``check`` run.
``settle`` runs after the rules that change hardware; faults stay armed until cleared, so your agent meets them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from ..simulation import Simulation, TopologySource
from .invariants import check_invariants

__all__ = ["HotplugStateMachine", "check_kernel_invariants"]


def check_kernel_invariants(sim: Simulation) -> None:
    """Every invariant of docs/abi.md (``fakesysfs.testing.invariants.check_invariants``);
    AssertionError naming the broken one."""
    check_invariants(sim)


class HotplugStateMachine(RuleBasedStateMachine):
    """Random hot-plug and faults against ``self.sim`` (see the module docstring)."""

    #: The machine to boot (a TOML file, TOML text, a BootConfig; None: the embedded default).
    topology: ClassVar[TopologySource] = None
    #: Serve the tree (``self.mountpoint``) so that an agent process can use it.
    mount: ClassVar[bool] = False
    #: Nodes hot-added memory targets; None: every possible node without CPUs, else node 0.
    target_nodes: ClassVar[Sequence[int] | None] = None
    #: Sizes of hot-added producers.
    sizes: ClassVar[Sequence[int | str]] = ("256M", "512M", "1G")
    #: At most this many hot-added producers at once.
    max_producers: ClassVar[int] = 4

    producers = Bundle("fakesysfs_producers")

    def __init__(self) -> None:
        super().__init__()
        self.sim = Simulation(self.topology)
        self.mountpoint: Path | None = None
        self.hotplugged: list[str] = []
        try:
            if self.mount:
                self.mountpoint = self.sim.mount()
            self.start_agent()
        except BaseException:
            self.sim.close()
            raise

    # -- hooks for subclasses ---------------------------------------------------------------------
    def start_agent(self) -> None:
        """Start the agent under test (``self.sim``, ``self.mountpoint`` are ready)."""

    def stop_agent(self) -> None:
        """Stop it (called before the simulation closes)."""

    def settle(self) -> None:
        """Wait until the agent reacted to the last hardware change (``self.sim.wait_until``)."""

    def check(self) -> None:
        """The agent's own invariants, after every step."""

    def teardown(self) -> None:
        try:
            self.stop_agent()
        finally:
            self.sim.close()

    # -- rules ------------------------------------------------------------------------------------
    def _targets(self) -> list[int]:
        if self.target_nodes is not None:
            return list(self.target_nodes)
        memoryless = [n.id for n in self.sim.nodes() if not n.cpus]
        return memoryless or [0]

    @rule(target=producers, data=st.data(), kind=st.sampled_from(["cxl", "hmem"]))
    def add_producer(self, data: st.DataObject, kind: str) -> str | None:
        if len(self.hotplugged) >= self.max_producers:
            return None
        size = data.draw(st.sampled_from(list(self.sizes)), label="size")
        node = data.draw(st.sampled_from(self._targets()), label="node")
        add = self.sim.add_cxl_region if kind == "cxl" else self.sim.add_hmem
        producer = add(size, node)
        self.hotplugged.append(producer.name)
        self.settle()
        return producer.name

    @rule(name=consumes(producers))
    def remove_producer(self, name: str | None) -> None:
        if name is None or name not in self.hotplugged:
            return
        self.sim.remove(name)
        self.hotplugged.remove(name)
        self.settle()

    @rule(action=st.sampled_from(["MEM_GOING_ONLINE", "MEM_GOING_OFFLINE"]),
          err=st.sampled_from([0, 0, "ENOMEM", "EBUSY"]))
    def notifier_error(self, action: str, err: int | str) -> None:
        self.sim.inject_notifier_error(action, err)

    @rule(chunk=st.one_of(st.none(), st.integers(0, 7)))
    def memmap_failure(self, chunk: int | None) -> None:
        self.sim.fail_memmap_at_chunk(chunk)

    @rule(err=st.sampled_from(["ENOMEM", "EBUSY", "ENXIO"]))
    def probe_failure_of_next_device(self, err: str) -> None:
        """The device the next hot-add creates (``daxR.0``, R the lowest free region id)."""
        with self.sim.kernel.lock:
            used = self.sim.kernel._memregion_ids
            rid = next(i for i in range(len(used) + 1) if i not in used)
        self.sim.fail_probe(f"dax{rid}.0", err)

    @rule(data=st.data(), pages=st.integers(1, 64))
    def pin_pages(self, data: st.DataObject, pages: int) -> None:
        online = [b.id for b in self.sim.blocks() if b.online and not b.boot and b.zone not in (None, "none")]
        if online:
            self.sim.set_block_usage(data.draw(st.sampled_from(online), label="block"), pinned=pages)

    @rule(data=st.data())
    def poison_offline_block(self, data: st.DataObject) -> None:
        offline = [b.id for b in self.sim.blocks() if not b.online]
        if offline:
            self.sim.set_block_usage(data.draw(st.sampled_from(offline), label="block"), poisoned=1)

    @rule()
    def clear_faults(self) -> None:
        self.sim.clear_faults()

    @invariant()
    def kernel_and_agent_invariants(self) -> None:
        """``check_kernel_invariants``, then ``check`` (not ``invariants``: hypothesis sets an
        instance attribute by that name)."""
        check_kernel_invariants(self.sim)
        self.check()
