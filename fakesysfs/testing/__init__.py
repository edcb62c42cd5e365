"""Testing support shipped for users' tests (as ``trio.testing`` is).

- The pytest plugin ``fakesysfs.testing.plugin`` (registered through the ``pytest11`` entry
  point, so installing fakesysfs enables it; ``-p no:fakesysfs`` disables it): fixtures
  ``fakesysfs_sim`` (an in-process ``Simulation``), ``fakesysfs_mount`` (the same, mounted),
  ``fakesysfs_topology`` (the topology they boot), the marker
  ``@pytest.mark.fakesysfs_topology(SOURCE)``, and the uevents, stores and kernel log of every
  simulation shown in the report of a failed test.
- ``check_invariants(sim)``: the kernel's invariants (docs/abi.md I-1..I-8, dax bindings and
  regions) through the engine and the tree; the single checks live in
  ``fakesysfs.testing.invariants`` (no hypothesis needed). The project's own tests use them.
- ``HotplugStateMachine``: a hypothesis ``RuleBasedStateMachine`` that hot-plugs and removes
  CXL regions and hmem ranges and injects faults at random; subclass it to test an agent
  (needs hypothesis).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .invariants import check_all, check_invariants

__all__ = ["HotplugStateMachine", "check_all", "check_invariants", "check_kernel_invariants"]

if TYPE_CHECKING:
    from .stateful import HotplugStateMachine, check_kernel_invariants


def __getattr__(name: str) -> Any:
    if name in ("HotplugStateMachine", "check_kernel_invariants"):
        from . import stateful

        return getattr(stateful, name)
    raise AttributeError(f"module 'fakesysfs.testing' has no attribute {name!r}")
