"""fakesysfs: a kernel-exact fake of Linux memory-hotplug and DAX sysfs, served over FUSE.

The public API for tests (the rest of the package is the implementation)::

    from fakesysfs import Simulation
    with Simulation("topology.toml") as sim:
        root = sim.mount()
        ...

Errors, all importable from here: ``KernelError`` (an errno from a store), ``ConfigError`` (a
topology that cannot boot), ``HarnessError`` (a harness request refused), ``StateError`` (a
state file that cannot be resumed), ``MountError`` (FUSE could not mount); these and the
others live in ``fakesysfs.errors``, whose docstring says which means what. Waits raise the
builtin ``TimeoutError``. ``fakesysfs.testing`` has the pytest plugin and a hypothesis state
machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "BlockInfo",
    "BootConfig",
    "ConfigError",
    "DaxDeviceInfo",
    "HarnessError",
    "KernelError",
    "Mark",
    "MountError",
    "NodeInfo",
    "ProducerInfo",
    "Simulation",
    "StateError",
    "StoreRecord",
    "Uevent",
    "__version__",
]

#: name -> module that defines it (imported on first use: ``import fakesysfs`` stays cheap).
_EXPORTS = {
    "BlockInfo": "state",
    "BootConfig": "config",
    "ConfigError": "errors",
    "DaxDeviceInfo": "state",
    "HarnessError": "errors",
    "KernelError": "errors",
    "Mark": "simulation",
    "MountError": "errors",
    "NodeInfo": "state",
    "ProducerInfo": "state",
    "Simulation": "simulation",
    "StateError": "errors",
    "StoreRecord": "harness",
    "Uevent": "engine.events",
}

if TYPE_CHECKING:
    from .config import BootConfig
    from .engine.events import Uevent
    from .errors import ConfigError, HarnessError, KernelError, MountError, StateError
    from .harness import StoreRecord
    from .simulation import Mark, Simulation
    from .state import BlockInfo, DaxDeviceInfo, NodeInfo, ProducerInfo


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fakesysfs' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
