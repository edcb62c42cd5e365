"""One simulated machine, booted and wired in one place.

topology -> ``Kernel`` -> ``build_tree`` -> ``Harness`` (-> ``Journal`` for a state file);
``fakesysfs mount``/``run`` (fakesysfs/cli/), ``Simulation`` and state files boot here.
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

__all__ = ["boot", "boot_file", "boot_state", "import_snapshot"]


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


def boot_file(topology: str | None) -> tuple[Kernel, Tree, Harness]:
    """Boot a topology file (a regular file of bounded size: never a FIFO or device), or the
    embedded default for None; the harness records the text booted. Raises ConfigError,
    OSError."""
    from .topology import load_topology, read_topology_file

    text = read_topology_file(topology) if topology is not None else None
    config = load_topology(text=text, name=topology) if text is not None else load_topology()
    return boot(config, text)


def import_snapshot(path: str, snapshot: str) -> int:
    """Copy ``snapshot`` (written by ``fakesysfs ctl MNT export``) into the new state file
    ``path``, for ``boot_state`` to resume. Returns the descriptor of ``path`` when this call
    created it (the caller removes the file by it if the boot fails, ``safefile.remove_created``,
    and closes it), else -1. Raises StateError, OSError."""
    from .journal import MAX_SNAPSHOT_BYTES
    from .safefile import open_append_created, read_regular, remove_created

    try:  # a regular file of bounded size only: never a FIFO or device
        data = read_regular(snapshot, MAX_SNAPSHOT_BYTES, "a snapshot")
    except OSError as exc:
        raise StateError(f"cannot read snapshot {snapshot}: {exc.strerror or exc}") from None
    parse_state(snapshot, data)  # refuse anything that is not a snapshot before copying it
    fd, created = open_append_created(path)
    try:
        if os.fstat(fd).st_size > 0:
            raise StateError(f"--import wants a new state file, but {path} already holds a state")
        os.write(fd, data)
        os.fsync(fd)
    except BaseException:
        if created:
            remove_created(path, fd)
        os.close(fd)
        raise
    if created:
        return fd
    os.close(fd)
    return -1
