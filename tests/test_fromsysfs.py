"""``fakesysfs topology --from-sysfs DIR``: this machine's real /sys (read only) and a fakesysfs
mount, whose topology must come back."""

from __future__ import annotations

import builtins
import os
from pathlib import Path

import psutil
import pytest

from fakesysfs import ConfigError, Simulation, fromsysfs
from fakesysfs.cli import main
from fakesysfs.fromsysfs import topology_from_sysfs
from fakesysfs.sysfs.parsers import parse_range_list
from fakesysfs.topology import load_topology

HOST = Path("/sys/devices/system")


@pytest.fixture
def read_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any open() for writing during the test fails it."""
    real_open = builtins.open

    def guarded(file, mode="r", *args, **kwargs):
        assert set(mode) <= set("rbt"), f"opened {file} with mode {mode!r}"
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)


@pytest.mark.skipif(not (HOST / "memory/block_size_bytes").exists(), reason="this kernel has no memory hotplug sysfs")
def test_this_machines_sysfs(read_only: None) -> None:
    found = topology_from_sysfs("/sys")
    cfg = found.config
    assert cfg.block_size == int((HOST / "memory/block_size_bytes").read_text(), 16)
    online = parse_range_list((HOST / "node/online").read_text().strip())
    assert [n.id for n in cfg.nodes] == [n for n in online if (HOST / f"node/node{n}").exists()]
    for node in cfg.nodes:
        assert node.cpus == parse_range_list((HOST / f"node/node{node.id}/cpulist").read_text().strip())
    assert sorted(c for n in cfg.nodes for c in n.cpus) == list(range(psutil.cpu_count()))
    present = sorted(int(name[6:]) for name in os.listdir(HOST / "memory") if name[6:].isdigit())
    sim = Simulation(cfg)
    assert [b.id for b in sim.blocks()] == present  # every block of this machine, same numbers
    assert cfg.page_size == os.sysconf("SC_PAGE_SIZE")
    assert sim.node(cfg.nodes[0].id).mem_total > 0


def test_a_fakesysfs_mount_gives_back_its_topology(fakesysfs_mount: Simulation, read_only: None) -> None:
    original = fakesysfs_mount
    boot = original.kernel.config
    found = topology_from_sysfs(original.mountpoint).config
    assert (found.block_size, found.possible(), found.memmap_on_memory) == \
        (boot.block_size, boot.possible(), boot.memmap_on_memory)
    assert [(n.id, n.cpus) for n in found.nodes] == [(n.id, n.cpus) for n in boot.nodes]
    online = [n.id for n in original.nodes() if n.online]  # nodeK/distance covers online nodes only
    assert online == [0, 1, 2]
    assert [[found.distance(a, b) for b in online] for a in online] == \
        [[boot.distance(a, b) for b in online] for a in online]
    assert [(c.start, c.size, c.target_node, c.decoder) for c in found.cxl_regions] == \
        [(c.start, c.size, c.target_node, c.decoder) for c in boot.cxl_regions]
    assert [(h.start, h.size, h.target_node) for h in found.hmem] == [(h.start, h.size, h.target_node)
                                                                      for h in boot.hmem]
    assert [(p.namespace, p.target_node) for p in found.pmem] == [("namespace2.0", 3)]
    copy = Simulation(found)
    assert [(b.id, b.node, b.boot) for b in copy.blocks()] == [(b.id, b.node, b.boot) for b in original.blocks()]
    assert [(d.name, d.driver, d.ranges, d.target_node) for d in copy.dax_devices()] == \
        [(d.name, d.driver, d.ranges, d.target_node) for d in original.dax_devices()]


def test_memory_added_by_kmem_is_not_boot_ram_and_a_driver_choice_is_kept(fakesysfs_mount: Simulation) -> None:
    sim = fakesysfs_mount
    sim.add_cxl_region("1G", node=1, driver="device_dax")
    sim.echo("/bus/dax/drivers/device_dax/unbind", "dax2.0")
    found = topology_from_sysfs(sim.mountpoint).config
    assert [c.driver for c in found.cxl_regions] == [None, "device_dax"]
    assert sum(r.size for n in found.nodes for r in n.memory) == 64 * found.block_size
    assert found.nodes[0].memory[0].start == 0 and len(found.nodes) == 1


def test_cli_prints_loadable_toml_and_refuses_a_non_sysfs_directory(fakesysfs_mount: Simulation, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["topology", "--from-sysfs", str(fakesysfs_mount.mountpoint)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"# Read from {fakesysfs_mount.mountpoint} by 'fakesysfs topology --from-sysfs'.")
    assert load_topology(text=out).cxl_regions[0].start == 0x1050000000
    assert main(["topology", "--from-sysfs", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no node with memory blocks" in err


def test_psutil_fills_in_a_host_without_memory_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="has no node with memory blocks"):
        topology_from_sysfs(tmp_path)
    monkeypatch.setattr(fromsysfs, "_is_host_sysfs", lambda root: True)
    found = topology_from_sysfs(tmp_path)
    (node,) = found.config.nodes
    assert node.cpus == list(range(psutil.cpu_count()))
    assert node.memory[0].size == psutil.virtual_memory().total // found.config.block_size * found.config.block_size
    assert any("psutil" in note for note in found.notes)
