"""The fakesysfs pytest plugin (entry point ``pytest11: fakesysfs``).

Fixtures (all function-scoped)::

    def test_in_process(fakesysfs_sim):            # a booted Simulation, not mounted
        fakesysfs_sim.echo("/devices/system/memory/memory40/state", "online")

    def test_mounted(fakesysfs_mount):             # the same, served at fakesysfs_mount.mountpoint
        run_my_agent(fakesysfs_mount.mountpoint)   # (skipped when FUSE is unavailable)

    @pytest.mark.fakesysfs_topology("topologies/cxl.toml")   # relative to the test file
    def test_cxl(fakesysfs_sim): ...

    @pytest.mark.fakesysfs_topology('''[[node]]\\nid = 0\\nmemory = ["0-0x7fffffff"]''')
    def test_text(fakesysfs_sim): ...

    @pytest.mark.parametrize("fakesysfs_topology", ["a.toml", "b.toml"], indirect=True)
    def test_both(fakesysfs_sim): ...

Without a marker or parameter the embedded default topology boots. When a test using these
fixtures fails, its report gets what happened since the test started (the boot is left
out): ``fakesysfs changes`` (memory blocks, producers and dax devices that came, went or
changed state), and the last ``MAX_LINES`` of ``fakesysfs stores``, ``fakesysfs uevents``
and ``fakesysfs kmsg``, with a count of what was left out.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ..simulation import Mark, Simulation, TopologySource

MARKER = "fakesysfs_topology"
#: Lines of each list a failure report shows (the latest).
MAX_LINES = 20
_SIMULATIONS = pytest.StashKey[list["_Watched"]]()


_Block = tuple[str, "str | None", int, "str | None"]  # state, zone, node, dax device


@dataclass(slots=True)
class _State:
    """What a changes section compares."""

    blocks: dict[int, _Block]
    producers: dict[str, tuple[str, int, int, int]]  # kind, target node, start, size
    devices: dict[str, str | None]  # the bound driver

    @classmethod
    def of(cls, sim: Simulation) -> _State:
        return cls({b.id: (b.state, b.zone, b.node, b.device) for b in sim.blocks()},
                   {p.name: (p.kind, p.target_node, p.start, p.size) for p in sim.producers()},
                   {d.name: d.driver for d in sim.dax_devices()})


@dataclass(slots=True)
class _Watched:
    """A fixture's simulation and what it looked like when the test started."""

    sim: Simulation
    mark: Mark
    kmsg_count: int
    state: _State | None


def watch(sim: Simulation) -> _Watched:
    """Now, as a failure report's starting point for ``sim``."""
    return _Watched(sim, sim.mark(), sim.kernel.kmsg_count, _State.of(sim))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(source): the topology the fakesysfs_sim/fakesysfs_mount fixtures boot: a TOML file "
        "(relative to the test file), TOML text, or a fakesysfs.BootConfig",
    )


def _resolve(source: Any, request: pytest.FixtureRequest) -> TopologySource:
    from ..config import BootConfig
    from ..simulation import _is_toml_text

    if source is None or isinstance(source, BootConfig):
        return source
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str):
        raise pytest.UsageError(f"{MARKER}: expected a TOML file, TOML text or a BootConfig, got {source!r}")
    if _is_toml_text(source) or os.path.isabs(source):
        return source
    beside = Path(request.path).parent / source
    return str(beside) if beside.exists() else source


@pytest.fixture
def fakesysfs_topology(request: pytest.FixtureRequest) -> TopologySource:
    """The topology source: an (indirect) parameter, else the ``fakesysfs_topology`` marker,
    else None (the embedded default)."""
    if hasattr(request, "param"):
        return _resolve(request.param, request)
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None:
        if len(marker.args) != 1:
            raise pytest.UsageError(f"{MARKER} takes one argument (a file, TOML text or a BootConfig)")
        return _resolve(marker.args[0], request)
    return None


@pytest.fixture
def fakesysfs_sim(request: pytest.FixtureRequest, fakesysfs_topology: TopologySource) -> Iterator[Simulation]:
    """A booted ``fakesysfs.Simulation`` of ``fakesysfs_topology``, closed after the test."""
    from ..simulation import Simulation

    sim = Simulation(fakesysfs_topology)
    request.node.stash.setdefault(_SIMULATIONS, []).append(watch(sim))
    try:
        yield sim
    finally:
        sim.close()


@pytest.fixture
def fakesysfs_mount(fakesysfs_sim: Simulation) -> Simulation:
    """``fakesysfs_sim``, mounted at a fresh directory (``.mountpoint``) with its control
    socket; skipped with the reason when FUSE is unavailable."""
    from ..mountpoint import fuse_unavailable

    reason = fuse_unavailable()
    if reason is not None:
        pytest.skip(f"fakesysfs_mount: {reason}")
    fakesysfs_sim.mount()
    return fakesysfs_sim


def _tail(lines: list[str], what: str, before: str = "") -> str:
    """The last ``MAX_LINES`` of ``lines``, saying how many were left out."""
    if not lines:
        return f"(no {what} since the test started{before})\n"
    head = []
    if len(lines) > MAX_LINES:
        head = [f"... {len(lines) - MAX_LINES} earlier {what} since the test started left out"]
        lines = lines[-MAX_LINES:]
    return "\n".join([*head, *lines]) + "\n"


def _block_ranges(ids: list[int]) -> str:
    """[522, 523, 524, 600] -> ``memory522-524, memory600``."""
    spans: list[list[int]] = []
    for i in sorted(ids):
        if spans and spans[-1][1] == i - 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    return ", ".join(f"memory{a}" if a == b else f"memory{a}-{b}" for a, b in spans)


def _block_text(value: _Block | None) -> str:
    if value is None:
        return "absent"
    state, zone, node, device = value
    text = f"{state} {zone}" if zone is not None else state
    return f"{text}, node {node}" + (f", {device}" if device is not None else "")


def _driver(name: str | None) -> str:
    return f"driver {name}" if name is not None else "no driver"


def _changes(before: _State, after: _State) -> list[str]:
    """What differs between two states, blocks grouped by the change they went through."""
    lines: list[str] = []
    by_change: dict[tuple[_Block | None, _Block | None], list[int]] = {}
    for bid in before.blocks.keys() | after.blocks.keys():
        was, now = before.blocks.get(bid), after.blocks.get(bid)
        if was != now:
            by_change.setdefault((was, now), []).append(bid)
    for (was, now), ids in sorted(by_change.items(), key=lambda item: min(item[1])):
        lines.append(f"{_block_ranges(ids)}: {_block_text(was)} -> {_block_text(now)}")
    for name in sorted(before.producers.keys() | after.producers.keys()):
        if name not in before.producers:
            kind, node, start, size = after.producers[name]
            lines.append(f"producer {name}: added ({kind}, node {node}, {start:#x}+{size:#x})")
        elif name not in after.producers:
            lines.append(f"producer {name}: removed")
    for name in sorted(before.devices.keys() | after.devices.keys()):
        if name not in before.devices:
            lines.append(f"dax device {name}: added, {_driver(after.devices[name])}")
        elif name not in after.devices:
            lines.append(f"dax device {name}: removed")
        elif before.devices[name] != after.devices[name]:
            lines.append(f"dax device {name}: {_driver(before.devices[name])} -> {_driver(after.devices[name])}")
    return lines


def report_sections(sim: Simulation, since: _Watched | None = None) -> list[tuple[str, str]]:
    """What a failure report shows of ``sim`` since ``since`` (default: since boot): what
    changed, and the latest stores, uevents and kernel messages."""
    from ..simulation import Mark

    start = since if since is not None else _Watched(sim, Mark(sim.boot_seqnum, 0), 0, None)
    events = sim.events(after=start.mark)
    at_boot = f"; {start.mark.seqnum} at boot" if start.mark.seqnum else ""
    event_lines = [f"{e.seqnum:>6} {e.action:<7} {e.devpath} ({e.subsystem})"
                   + "".join(f" {k}={v}" for k, v in e.env) for e in events]
    stores = [f"#{r.seq:<5} {r.path} {r.text!r} -> {r.error or 'ok'}" for r in sim.stores(after=start.mark)]
    printed = sim.kernel.kmsg_count - start.kmsg_count
    kmsg = sim.kmsg()[-printed:] if printed else []
    if printed > len(kmsg):
        kmsg = [f"... {printed - len(kmsg)} earlier lines are no longer in the kernel log", *kmsg]
    sections = []
    if start.state is not None:
        changes = _changes(start.state, _State.of(sim))
        sections.append(("fakesysfs changes", "\n".join(changes) + "\n" if changes
                         else "(nothing changed since the test started)\n"))
    return [*sections, ("fakesysfs stores", _tail(stores, "stores")),
            ("fakesysfs uevents", _tail(event_lines, "uevents", at_boot)),
            ("fakesysfs kmsg", _tail(kmsg, "kernel messages"))]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    if report.failed and report.when != "teardown":
        watched = item.stash.get(_SIMULATIONS, [])
        for i, start in enumerate(watched):
            suffix = f" (simulation {i + 1})" if len(watched) > 1 else ""
            for title, text in report_sections(start.sim, start):
                report.sections.append((title + suffix, text))
    return report
