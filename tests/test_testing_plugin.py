"""The pytest plugin (fixtures, topology by marker or parameter, failure report sections) as a
user's test session sees it, and HotplugStateMachine in-process."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ENV, REPO
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from fakesysfs import Simulation
from fakesysfs.testing import HotplugStateMachine, check_kernel_invariants

pytest_plugins = ["pytester"]

TWO_NODES = """
[kernel]
possible_nodes = "0-1"
[[node]]
id = 0
cpus = "0"
memory = ["0x0-0x7fffffff"]
"""


def test_the_plugin_is_registered_through_its_entry_point(request: pytest.FixtureRequest) -> None:
    points = [e for e in importlib.metadata.entry_points(group="pytest11") if e.name == "fakesysfs"]
    assert [e.value for e in points] == ["fakesysfs.testing.plugin"]
    plugin = request.config.pluginmanager.get_plugin("fakesysfs")
    assert plugin is not None and plugin.__name__ == "fakesysfs.testing.plugin"


def test_topology_by_marker_file_text_or_indirect_parameter(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", small=TWO_NODES)
    pytester.makepyfile(f'''
        import pytest

        TEXT = {TWO_NODES!r}

        def test_default(fakesysfs_sim):
            assert [p.name for p in fakesysfs_sim.producers()] == ["region0", "hmem.1", "namespace2.0"]

        @pytest.mark.fakesysfs_topology("small.toml")
        def test_file_beside_the_test(fakesysfs_sim):
            assert len(fakesysfs_sim.blocks()) == 16

        @pytest.mark.fakesysfs_topology(TEXT)
        def test_text(fakesysfs_sim, fakesysfs_topology):
            assert fakesysfs_topology == TEXT and len(fakesysfs_sim.blocks()) == 16

        @pytest.mark.parametrize("fakesysfs_topology", ["small.toml", None], indirect=True)
        def test_parameter(fakesysfs_sim):
            assert len(fakesysfs_sim.blocks()) in (16, 256)
    ''')
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)


def test_a_failing_test_reports_what_happened_since_it_started(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(f'''
        import pytest

        @pytest.mark.fakesysfs_topology({TWO_NODES!r})
        def test_agent_did_not_react(fakesysfs_sim):
            fakesysfs_sim.add_cxl_region("256M", node=1)
            try:
                fakesysfs_sim.echo("/devices/system/memory/memory3/state", "offline")
            except OSError:
                pass
            assert False, "the agent never onlined the new memory"
    ''')
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*- fakesysfs changes -*",
        "memory32-33: absent -> offline, node 1, dax0.0",
        "producer region0: added (cxl, node 1, 0x100000000+0x10000000)",
        "dax device dax0.0: added, driver kmem",
        "*- fakesysfs stores -*",
        "#1     /devices/system/memory/memory3/state 'offline' -> EBUSY",
        "*- fakesysfs uevents -*",
        "*add     /devices/platform/ACPI0017:00/root0/decoder0.0/region0 (cxl) DEVTYPE=cxl_region MODALIAS=cxl:t6",
        "*bind    /devices/platform/ACPI0017:00/root0/decoder0.0/region0 (cxl) *DRIVER=cxl_region*",
        "*- fakesysfs kmsg -*",
        "memory offlining [[]mem 0x18000000-0x1fffffff] failed due to failure to isolate range",
    ])  # fmt: skip
    result.stdout.no_fnmatch_line("*add     /devices/system/memory/memory0 (memory)")  # the boot's own


def test_the_failure_report_stays_short_on_a_big_machine(pytester: pytest.Pytester) -> None:
    # The default topology boots with ~200 uevents; a hot-add brings ~150 more.
    pytester.makepyfile('''
        def test_hot_add(fakesysfs_sim):
            fakesysfs_sim.add_cxl_region("16G", node=1)
            fakesysfs_sim.echo("/devices/system/memory/memory1184/state", "online_movable")
            fakesysfs_sim.echo("/bus/dax/drivers/kmem/unbind", "dax1.0")
            assert False
    ''')
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    report = text[text.index("- fakesysfs changes -"):text.index("short test summary")]
    assert len(report.splitlines()) < 50, report
    result.stdout.fnmatch_lines([
        "memory1024-1087: offline, node 2, dax1.0 -> absent",
        "memory1184: absent -> online Movable, node 1, dax3.0",
        "memory1185-1311: absent -> offline, node 1, dax3.0",
        "dax device dax1.0: driver kmem -> no driver",
        "#2     /bus/dax/drivers/kmem/unbind 'dax1.0' -> ok",
        "... * earlier uevents since the test started left out",
        "*unbind  /devices/platform/hmem.1/dax1.0 (dax)*",
        "(no kernel messages since the test started)",
    ])  # fmt: skip


@pytest.mark.fuse
def test_the_fixtures_and_the_report_work_in_xdist_workers(pytester: pytest.Pytester,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Under ``pytest -n 2`` each worker mounts its own simulations with their own control
    sockets at the same time, and a failure's report sections reach the controller."""
    pytest.importorskip("xdist")
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the workers import this checkout's fakesysfs
    out = pytester.mkdir("out")
    pytester.makepyfile(f'''
        import os
        import time
        from pathlib import Path

        import pytest

        @pytest.mark.parametrize("i", range(6))
        def test_mounted(fakesysfs_mount, worker_id, i):
            mnt = fakesysfs_mount.mountpoint
            assert (mnt / "devices/system/memory/block_size_bytes").read_text() == "8000000\\n"
            region = fakesysfs_mount.add_cxl_region("256M", node=1)
            assert len(fakesysfs_mount.blocks_of(region)) == 2
            Path({str(out)!r}, f"{{worker_id}}-{{i}}").write_text(f"{{mnt}} {{fakesysfs_mount.control_socket}}")
            time.sleep(0.3)  # the other worker's mounts are up meanwhile

        def test_report(fakesysfs_sim):
            fakesysfs_sim.add_cxl_region("256M", node=1)
            assert False, "the agent never onlined the new memory"
    ''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", timeout=300)
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.fnmatch_lines(["*- fakesysfs changes -*", "producer region3: added (cxl, node 1, *)",
                                 "*- fakesysfs uevents -*"])
    seen = {path.name: path.read_text().split() for path in out.iterdir()}
    assert {name.split("-")[0] for name in seen} == {"gw0", "gw1"}, seen
    mountpoints, sockets = ({where[k] for where in seen.values()} for k in (0, 1))
    assert len(mountpoints) == len(sockets) == 6
    assert not any(Path(p).exists() for p in mountpoints | sockets)  # each worker cleaned up


def test_fixture_names_leave_the_projects_own_alone() -> None:
    """``pytest --fixtures`` (public CLI) lists the plugin's fixtures beside conftest's."""
    tests = Path(__file__).parent
    done = subprocess.run([sys.executable, "-m", "pytest", "--fixtures", "-q", "-p", "no:cacheprovider", str(tests)],
                          capture_output=True, text=True, timeout=120, check=False, cwd=tests.parent)
    names = {line.split()[0] for line in done.stdout.splitlines() if line and not line.startswith((" ", "-", "="))}
    assert {"fakesysfs_sim", "fakesysfs_mount", "fakesysfs_topology"} <= names, done.stdout[-2000:]
    assert {"fuse_mount", "demo"} <= names, "tests/conftest.py's fixtures are still there"


class InvariantsOnly(HotplugStateMachine):
    """No agent: random hot-plug and faults must keep the kernel's own invariants."""

    topology = TWO_NODES
    target_nodes = (1,)


TestInvariantsOnly = InvariantsOnly.TestCase
TestInvariantsOnly.settings = settings(max_examples=25, stateful_step_count=15, deadline=None,
                                       suppress_health_check=list(HealthCheck))


class OnlinesIntoNormal(HotplugStateMachine):
    """A buggy agent (simulated in-process): onlines new blocks with plain "online", which
    lands a memoryless node's blocks in ZONE_NORMAL."""

    topology = TWO_NODES
    target_nodes = (1,)

    def start_agent(self) -> None:
        self.mark = self.sim.mark()

    def settle(self) -> None:
        for event in self.sim.events(after=self.mark, action="add", subsystem="memory"):
            try:
                self.sim.echo(f"{event.devpath}/state", "online")
            except OSError:
                pass
        self.mark = self.sim.mark()

    def check(self) -> None:
        assert all(b.movable for b in self.sim.blocks() if b.online and not b.boot), "hot-added memory not movable"


def test_the_state_machine_catches_an_agent_that_onlines_into_normal() -> None:
    with pytest.raises(AssertionError, match="hot-added memory not movable"):
        run_state_machine_as_test(OnlinesIntoNormal, settings=settings(
            max_examples=50, stateful_step_count=8, deadline=None, database=None,
            suppress_health_check=list(HealthCheck)))


def test_kernel_invariants_catch_a_broken_engine() -> None:
    sim = Simulation(TWO_NODES)
    check_kernel_invariants(sim)
    sim.kernel.nodes[0].zones["DMA32"].managed += 1  # a bookkeeping bug
    with pytest.raises(AssertionError, match="I-1: node0 manages"):
        check_kernel_invariants(sim)


def test_state_machine_methods_survive_hypothesis_init() -> None:
    """hypothesis sets instance attributes of its own (``invariants``: the list of checks) in
    ``RuleBasedStateMachine.__init__``; a method of ours by such a name would be shadowed, and a
    subclass calling it would crash. Every method stays callable on an instance."""
    machine = InvariantsOnly()
    try:
        for name, member in vars(HotplugStateMachine).items():
            if callable(member) and not name.startswith("__"):
                assert callable(getattr(machine, name)), f"{name} is shadowed by an instance attribute"
        machine.kernel_and_agent_invariants()  # what a subclass may call after a step of its own
    finally:
        machine.teardown()


def test_invariants_catch_a_dax_binding_the_tree_does_not_show() -> None:
    """The public checker covers the dax half too: a device the engine counts as bound that has
    no ``driver`` link fails, naming the device."""
    from fakesysfs.testing import check_invariants

    with Simulation() as sim:  # the embedded default: dax0.0 bound to kmem at boot
        check_invariants(sim)
        dev = sim.kernel.dax_devices["dax0.0"]
        assert dev.driver is not None
        dev.driver.bound.remove(dev)  # a bookkeeping bug
        with pytest.raises(AssertionError, match="dax0.0"):
            check_invariants(sim)


def test_the_invariants_need_no_hypothesis() -> None:
    """``fakesysfs.testing`` and its invariants import without hypothesis (a users' optional
    dependency); only HotplugStateMachine needs it."""
    code = ("import sys; sys.modules['hypothesis'] = None\n"
            "from fakesysfs.testing import check_all, check_invariants\n"
            "from fakesysfs.testing.invariants import ALL_CHECKS\n"
            "try:\n    from fakesysfs.testing import HotplugStateMachine\nexcept ImportError:\n    print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False,
                          env=ENV)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr
