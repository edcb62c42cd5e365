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
fixtures fails, its report gets the sections ``fakesysfs uevents``, ``fakesysfs stores`` and
``fakesysfs kmsg`` (the last ``MAX_LINES`` of each).
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ..simulation import Simulation, TopologySource

MARKER = "fakesysfs_topology"
MAX_LINES = 200
_SIMULATIONS = pytest.StashKey[list["Simulation"]]()


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
    request.node.stash.setdefault(_SIMULATIONS, []).append(sim)
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


def _tail(lines: list[str]) -> str:
    if len(lines) > MAX_LINES:
        lines = [f"... {len(lines) - MAX_LINES} earlier lines left out", *lines[-MAX_LINES:]]
    return "\n".join(lines) + "\n" if lines else "(none)\n"


def report_sections(sim: Simulation) -> list[tuple[str, str]]:
    """What a failure report shows of ``sim``: its uevents, stores and kernel log."""
    events = [f"{e.seqnum:>6} {e.action:<7} {e.devpath} ({e.subsystem})"
              + "".join(f" {k}={v}" for k, v in e.env) for e in sim.kernel.events.since(0)]
    stores = [f"#{r.seq:<5} {r.path} {r.text!r} -> {r.error or 'ok'}" for r in sim.harness.trace.since(0)]
    return [("fakesysfs uevents", _tail(events)), ("fakesysfs stores", _tail(stores)),
            ("fakesysfs kmsg", _tail(sim.kmsg()))]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    if report.failed and report.when != "teardown":
        sims = item.stash.get(_SIMULATIONS, [])
        for i, sim in enumerate(sims):
            suffix = f" (simulation {i + 1})" if len(sims) > 1 else ""
            for title, text in report_sections(sim):
                report.sections.append((title + suffix, text))
    return report
