"""Random hotplug sequences against the engine, with the invariants of docs/abi.md
(I-1..I-5) and the accounting identities checked after every step."""

from __future__ import annotations

import errno

from conftest import MEM, add_kmem
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from fakesysfs import Simulation
from fakesysfs.config import BootConfig, GiB, MemRange, NodeConfig
from fakesysfs.engine import BlockState
from fakesysfs.errors import EHWPOISON, KernelError
from fakesysfs.testing.invariants import MEMORY_CHECKS

BASE = 0x1000000000  # hotplug windows start here; 16 slots of 4 blocks each
SLOT_BLOCKS = 4
OK_ERRNOS = {errno.EINVAL, errno.EBUSY, errno.ENOMEM, errno.EEXIST, EHWPOISON, errno.EINTR}


class HotplugMachine(RuleBasedStateMachine):
    adds = Bundle("adds")

    def __init__(self) -> None:
        super().__init__()
        cfg = BootConfig(nodes=[NodeConfig(0, [0, 1], [MemRange(0, 2 * GiB)]), NodeConfig(2, [], [])],
                         possible_nodes=[0, 1, 2, 3], memmap_on_memory="Y", boot_used_percent=10)
        self.sim = Simulation(cfg)
        self.kernel = self.sim.kernel
        self.bs = self.kernel.block_size
        self.used_slots: dict[int, tuple[int, int, bool]] = {}
        self.last_seqnum = 0

    # -- rules ----------------------------------------------------------------------------------
    @rule(target=adds, slot=st.integers(0, 15), nblocks=st.integers(1, SLOT_BLOCKS), nid=st.sampled_from([1, 2, 3]),
          mom=st.booleans(), fail_at=st.one_of(st.none(), st.integers(0, SLOT_BLOCKS - 1)))
    def add(self, slot: int, nblocks: int, nid: int, mom: bool, fail_at: int | None):
        start = BASE + slot * SLOT_BLOCKS * self.bs
        before = set(self.kernel.blocks)
        self.kernel.faults.memmap_fail_at_chunk = fail_at
        try:
            add_kmem(self.sim, start=start, size=nblocks * self.bs, nid=nid, memmap_on_memory=mom)
        except KernelError as err:
            assert err.errno in OK_ERRNOS
            assert set(self.kernel.blocks) == before, "a failed add left blocks behind"
            self.kernel.faults.memmap_fail_at_chunk = None
            return None
        finally:
            self.kernel.faults.memmap_fail_at_chunk = None
        self.used_slots[slot] = (start, nblocks, mom)
        return slot

    @rule(slot=consumes(adds))
    def remove(self, slot: int | None):
        if slot is None or slot not in self.used_slots:
            return
        start, nblocks, _ = self.used_slots[slot]
        blocks = [self.kernel.blocks[start // self.bs + i] for i in range(nblocks)]
        group = blocks[0].group
        try:
            self.kernel.remove_memory(start, nblocks * self.bs)
        except KernelError as err:
            assert err.errno == errno.EBUSY
            assert any(b.state is not BlockState.OFFLINE for b in blocks)
            assert all(self.kernel.blocks.get(b.id) is b for b in blocks)
            return
        assert not any(b.id in self.kernel.blocks for b in blocks)
        if group is not None:
            self.kernel.memory_group_unregister(group.id)
        del self.used_slots[slot]

    def _some_block(self, data) -> int:
        """Mostly hot-plugged blocks: boot blocks mainly refuse to go offline."""
        hot = sorted(b for b, blk in self.kernel.blocks.items() if not blk.boot)
        if hot and data.draw(st.integers(0, 9)) < 8:
            return data.draw(st.sampled_from(hot))
        return data.draw(st.sampled_from(sorted(self.kernel.blocks)))

    @rule(data=st.data(), word=st.sampled_from(["online", "online_kernel", "online_movable", "offline", "bogus"]))
    def write_state(self, data, word: str):
        bid = self._some_block(data)
        before = self.kernel.blocks[bid].state
        try:
            assert self.sim.echo(f"{MEM}/memory{bid}/state", word) == len(word) + 1
        except KernelError as err:
            assert err.errno in OK_ERRNOS
            assert self.kernel.blocks[bid].state is before
            if word != "bogus" and (word == "offline") == (before is BlockState.OFFLINE):
                assert err.errno == errno.EINVAL
            return
        assert self.kernel.blocks[bid].state is (BlockState.OFFLINE if word == "offline" else BlockState.ONLINE)

    @rule(data=st.data(), value=st.sampled_from(["0", "1", "y", "n", "x"]))
    def write_online(self, data, value: str):
        bid = self._some_block(data)
        try:
            self.sim.echo(f"{MEM}/memory{bid}/online", value)
        except KernelError as err:
            assert err.errno in OK_ERRNOS

    @rule(which=st.sampled_from(["MEM_GOING_ONLINE", "MEM_GOING_OFFLINE"]), value=st.sampled_from([0, 0, -12, -16]))
    def inject(self, which: str, value: int):
        self.sim.echo(f"/kernel/debug/notifier-error-inject/memory/actions/{which}/error", str(value))

    @rule(data=st.data(), pinned=st.integers(0, 3), used=st.integers(0, 5000), poisoned=st.booleans())
    def mark_block(self, data, pinned: int, used: int, poisoned: bool):
        """Test knobs: pinned pages, movable pages in use, a poisoned page (simulator hooks)."""
        block = self.kernel.blocks[self._some_block(data)]
        try:
            self.kernel.set_block_usage(block, pinned=pinned, movable_used=used, poisoned=int(poisoned))
        except KernelError as err:
            assert err.errno in (errno.EINVAL, errno.ENOSPC)

    @rule(policy=st.sampled_from(["contig-zones", "auto-movable"]), aware=st.booleans(),
          ratio=st.sampled_from([0, 100, 301]))
    def params(self, policy: str, aware: bool, ratio: int):
        p = "/module/memory_hotplug/parameters"
        self.sim.echo(f"{p}/online_policy", policy)
        self.sim.echo(f"{p}/auto_movable_numa_aware", "Y" if aware else "N")
        self.sim.echo(f"{p}/auto_movable_ratio", str(ratio))

    @rule(word=st.sampled_from(["offline", "online", "online_movable"]))
    def auto_online(self, word: str):
        self.sim.echo(f"{MEM}/auto_online_blocks", word)

    # -- invariants -----------------------------------------------------------------------------
    @invariant()
    def shared_memory_invariants(self):
        """I-1..I-5, donor charges, counters and SEQNUMs (fakesysfs.testing.invariants)."""
        for check in MEMORY_CHECKS:
            check(self.kernel, self.sim.tree)

    @invariant()
    def i5_altmaps_are_all_or_nothing_per_add(self):
        for start, nblocks, mom in self.used_slots.values():
            blocks = [self.kernel.blocks[start // self.bs + i] for i in range(nblocks)]
            assert {b.altmap for b in blocks} == {512 if mom else 0}
            assert all((b.memmap_charges is None) == mom for b in blocks)

    @invariant()
    def seqnum_is_monotonic(self):
        events = self.kernel.events.since(self.last_seqnum)
        seqs = [e.seqnum for e in events]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        if events:
            self.last_seqnum = events[-1].seqnum


TestHotplugMachine = HotplugMachine.TestCase
TestHotplugMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None,
                                       suppress_health_check=[HealthCheck.too_slow])
