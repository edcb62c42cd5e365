"""Engine steps assert the hotplug lock (the kernel's lockdep_assert_held): an entry point
(a store through the tree, ``add_memory``, a harness op) takes ``kernel.lock``, as
state_store takes lock_device_hotplug_sysfs(); a step called without it is a caller's bug
and fails loudly instead of racing another thread."""

from __future__ import annotations

import pytest

from fakesysfs.engine import Kernel
from fakesysfs.engine.memory import BlockState
from fakesysfs.topology import load_topology


@pytest.fixture
def kernel() -> Kernel:
    return Kernel(load_topology())


def test_steps_refuse_to_run_without_the_hotplug_lock(kernel: Kernel) -> None:
    block = next(b for b in kernel.blocks.values() if b.state == BlockState.OFFLINE)
    online = next(b for b in kernel.blocks.values() if b.state == BlockState.ONLINE)
    for step, args in ((kernel.device_online, (block,)), (kernel.device_offline, (online,)),
                       (kernel.memory_block_online, (block,)), (kernel.online_pages, (block, "Movable")),
                       (kernel.memory_block_offline, (online,)), (kernel.offline_pages, (online,)),
                       (kernel.try_remove_memory, (kernel.block_start(block), kernel.block_size))):
        with pytest.raises(RuntimeError, match="without the hotplug lock"):
            step(*args)
    assert block.state == BlockState.OFFLINE and online.state == BlockState.ONLINE  # nothing happened


def test_entry_points_take_the_lock_themselves(kernel: Kernel) -> None:
    from fakesysfs.sysfs import build_tree

    tree = build_tree(kernel)
    block = next(b for b in kernel.blocks.values() if b.state == BlockState.OFFLINE)
    tree.echo(f"/devices/system/memory/memory{block.id}/state", "online_movable")  # the store locks
    assert block.state == BlockState.ONLINE
    with kernel.lock:
        assert kernel.device_offline(block) == 0  # a step, under the lock its caller took
    assert block.state == BlockState.OFFLINE


def test_a_tree_given_a_new_root_resolves_nothing_below_the_old_one() -> None:
    """A tree swapped to another engine (the fuzzer's SwapMount) must not reuse device
    directories it resolved under the old root: a store there ran the old engine's step
    under the new engine's lock (caught by the lock assertion)."""
    from fakesysfs.sysfs import build_tree
    from fakesysfs.sysfs.tree import Tree

    first, second = Kernel(load_topology()), Kernel(load_topology())
    old, new = build_tree(first), build_tree(second)
    tree = Tree(old.root, old.lock)
    block = next(b.id for b in first.blocks.values() if b.state == BlockState.OFFLINE)
    state = f"/devices/system/memory/memory{block}/state"
    assert tree.cat(state) == "offline\n"  # memory{block}/ is now resolved
    with old.lock:
        tree.lock, tree.root = new.lock, new.root
    tree.echo(state, "online_movable")
    assert second.blocks[block].state == BlockState.ONLINE
    assert first.blocks[block].state == BlockState.OFFLINE
