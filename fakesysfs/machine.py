"""One simulated machine, booted and wired in one place.

topology -> ``Kernel`` -> ``build_tree`` -> ``Harness`` (-> ``Journal`` for a state file);
``fakesysfs mount``/``run`` (fakesysfs/cli.py), ``Simulation`` and state files boot here.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .engine import Kernel
from .errors import HarnessError
from .harness import Harness
from .journal import Journal, StateError, _read_fd, parse_state
from .sysfs import build_tree

if TYPE_CHECKING:
    from .config import BootConfig
    from .sysfs.tree import Tree

__all__ = ["boot", "boot_state"]


def boot(config: BootConfig, topology_text: str | None = None) -> tuple[Kernel, Tree, Harness]:
    """Boot ``config`` and hang its attribute tree and the harness (debugfs files, store
    trace, history) on it; ``topology_text``: the TOML booted, recorded by the harness
    (None: dumped from ``config``). Raises ConfigError for what the kernel refuses at boot."""
    kernel = Kernel(config)
    tree = build_tree(kernel)
    return kernel, tree, Harness(kernel, tree, topology_text)


def boot_state(path: str | os.PathLike[str], topology: str | os.PathLike[str] | None = None, *,
               topology_text: str | None = None) -> tuple[Kernel, Tree, Harness]:
    """Boot from a state file and attach its journal: a new (missing or empty) file is
    created with ``topology`` (a file; ``topology_text``; default: the embedded default);
    an existing one boots its recorded topology and replays its records. A ``topology``
    given for an existing file must be the one recorded. A file this call created is removed
    again when the boot fails (a bad topology must not leave an empty state file that the
    next start takes for a new one). Raises StateError, ConfigError, OSError."""
    from .safefile import open_append_created, remove_created
    from .topology import default_topology_text, load_topology, read_topology_file

    name = os.fspath(path)
    given: str | None = topology_text
    if topology is not None:
        given = read_topology_file(topology)
    fd, created = open_append_created(name, readable=True)
    try:
        data = _read_fd(fd)
        if not data:
            text = given if given is not None else default_topology_text()
            config = load_topology(text=text)
            kernel, tree, harness = boot(config, text)
            harness.attach_journal(Journal.create(name, fd, text))
        else:
            state = parse_state(name, data)
            del data
            config = load_topology(text=state.topology)
            if given is not None and load_topology(text=given) != config:
                raise StateError(f"state file {name} was created with a different topology; drop the topology "
                                 "argument to resume it, or use a new state file")
            kernel, tree, harness = boot(config, state.topology)
            try:
                harness.replay(state.records, where=f"state file {name}", keep=False)
            except HarnessError as exc:
                raise StateError(str(exc)) from None
            harness.attach_journal(Journal.resume(name, fd, state))
    except BaseException:
        if created:
            remove_created(name, fd)
        os.close(fd)
        raise
    return kernel, tree, harness
