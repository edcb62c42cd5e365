"""``fakesysfs topology --from-sysfs DIR``: this machine's real /sys (read only) and a fakesysfs
mount, whose topology must come back."""

from __future__ import annotations

import builtins
import os
import resource
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from fakesysfs import ConfigError, Simulation, fromsysfs
from fakesysfs.cli import main
from fakesysfs.fromsysfs import topology_from_sysfs
from fakesysfs.klib import parse_range_list
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
@pytest.mark.usefixtures("read_only")
def test_this_machines_sysfs() -> None:
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
    # The import booted what it read and compared every block's state, valid_zones,
    # removable, phys_device and node link with this machine's: the same.
    assert not [note for note in found.notes if "differs" in note], found.notes


@pytest.mark.usefixtures("read_only")
def test_a_fakesysfs_mount_gives_back_its_topology(fakesysfs_mount: Simulation) -> None:
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
    assert err.count("\n") == 1 and "has no memory blocks with a node" in err


def test_psutil_fills_in_a_host_without_memory_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="has no memory blocks with a node"):
        topology_from_sysfs(tmp_path)
    monkeypatch.setattr(fromsysfs, "_is_host_sysfs", lambda _root: True)
    found = topology_from_sysfs(tmp_path)
    (node,) = found.config.nodes
    assert node.cpus == list(range(psutil.cpu_count()))
    assert node.memory[0].size == psutil.virtual_memory().total // found.config.block_size * found.config.block_size
    assert any("psutil" in note for note in found.notes)


# -- hostile trees: what a crafted DIR does to a reader (often root) -------------------------------
def small_sysfs(root: Path) -> Path:
    """A minimal sysfs tree: 128 MiB blocks, node0 with CPUs 0-1 and blocks 0-3."""
    mem, node = root / "devices/system/memory", root / "devices/system/node"
    (node / "node0").mkdir(parents=True)
    mem.mkdir(parents=True, exist_ok=True)
    (mem / "block_size_bytes").write_text("8000000\n")
    (node / "possible").write_text("0\n")
    (node / "online").write_text("0\n")
    (node / "node0/cpulist").write_text("0-1\n")
    (node / "node0/distance").write_text("10\n")
    for b in range(4):
        (mem / f"memory{b}").mkdir()
        (node / f"node0/memory{b}").symlink_to(f"../../memory/memory{b}")
    return root


def test_a_crafted_tree_reads_back(tmp_path: Path) -> None:
    cfg = topology_from_sysfs(small_sysfs(tmp_path)).config
    assert (cfg.block_size, [(n.id, n.cpus, n.memory[0].size) for n in cfg.nodes]) == (
        0x8000000, [(0, [0, 1], 4 << 27)])


def test_fifos_and_device_nodes_are_skipped_never_read(tmp_path: Path) -> None:
    """A FIFO nobody writes would block a reader forever; /dev/zero would fill its memory.
    Run in a child with a time and address-space limit, so a failure cannot hurt the host."""
    root = small_sysfs(tmp_path)
    fifo = root / "devices/system/memory/block_size_bytes"
    fifo.unlink()
    os.mkfifo(fifo)
    (root / "devices/system/node/online").unlink()
    (root / "devices/system/node/online").symlink_to("/dev/zero")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 31, 1 << 31))

    done = subprocess.run([sys.executable, "-m", "fakesysfs.cli", "topology", "--from-sysfs", str(root)],
                          capture_output=True, text=True, timeout=30, preexec_fn=limit, check=False,
                          env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])))
    assert done.returncode == 0, done.stderr
    assert load_topology(text=done.stdout).block_size == 0x8000000  # the FIFO skipped: the default


@pytest.mark.parametrize(("rel", "text", "named"), [
    ("devices/system/memory/block_size_bytes", "zebra\n", "'zebra' is not"),
    ("devices/system/memory/block_size_bytes", "0\n", "'0' is not"),
    # memory_dev_init(): a power of two, at least a section (block size 1 made the dax
    # mapping walk below enumerate 2^52 block ids).
    ("devices/system/memory/block_size_bytes", "1\n", "'1' is not a power of two of at least 0x8000000"),
    ("devices/system/memory/block_size_bytes", "c000000\n", "'c000000' is not a power of two"),
    ("devices/system/memory/block_size_bytes", "4000000\n", "'4000000' is not a power of two of at least"),
    ("devices/system/node/possible", "0-4294967295\n", "is not a list of ids"),
    ("devices/system/node/node0/cpulist", "0-1,x\n", "'0-1,x' is not a list of ids"),
    ("devices/system/node/node0/distance", "10 ten\n", "'10 ten' is not a row of distances"),
])
def test_a_bad_value_is_one_line_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], rel: str,
                                                  text: str, named: str) -> None:
    root = small_sysfs(tmp_path)
    (root / rel).write_text(text)
    assert main(["topology", "--from-sysfs", str(root)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{root / rel}: " in err and named in err, err


def test_at_most_4096_bytes_are_read_from_a_file(tmp_path: Path) -> None:
    """A 1 GiB file (sparse) where a sysfs attribute should be: one page is read (quickly,
    in little memory), and its content is named as a bad value."""
    root = small_sysfs(tmp_path)
    big = root / "devices/system/node/node0/cpulist"
    with open(big, "wb") as f:
        f.write(b"x")
        f.truncate(1 << 30)
    with pytest.raises(ConfigError, match=r"cpulist: 'x\\x00\\x00.*\.\.\.' is not a list of ids"):
        topology_from_sysfs(root)
    big.write_text("0-1\n" + " " * 4092 + "junk beyond the first page\n")
    assert topology_from_sysfs(root).config.nodes[0].cpus == [0, 1]


@pytest.mark.parametrize("digits", [b"\xb2", b"1\xb9"])
def test_unicode_digits_are_no_number(tmp_path: Path, digits: bytes) -> None:
    """Files are read as latin-1, where str.isdigit() takes "²" and "¹" (int() raised
    ValueError, a traceback): an auto_movable_ratio so written is no number (the default stands)."""
    root = small_sysfs(tmp_path)
    params = root / "module/memory_hotplug/parameters"
    params.mkdir(parents=True)
    (params / "auto_movable_ratio").write_bytes(digits + b"\n")
    assert topology_from_sysfs(root).config.auto_movable_ratio == 301


def test_a_huge_dax_mapping_is_not_walked_block_by_block(tmp_path: Path) -> None:
    """A dax device mapping 0x0-0xfffffffffffff (2^25 blocks of 128 MiB) is intersected with
    the dump's blocks, not enumerated (that took GiBs and died with MemoryError). Run in a
    child with an address-space limit, so a failure cannot hurt the host."""
    root = small_sysfs(tmp_path)
    dev = root / "devices/platform/hmem.0/dax0.0"
    (dev / "mapping0").mkdir(parents=True)
    (dev / "mapping0/start").write_text("0x0\n")
    (dev / "mapping0/end").write_text("0xfffffffffffff\n")
    (dev / "target_node").write_text("0\n")
    (root / "bus/dax/devices").mkdir(parents=True)
    (root / "bus/dax/devices/dax0.0").symlink_to("../../../devices/platform/hmem.0/dax0.0")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    done = subprocess.run([sys.executable, "-m", "fakesysfs.cli", "topology", "--from-sysfs", str(root)],
                          capture_output=True, text=True, timeout=60, preexec_fn=limit, check=False,
                          env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])))
    assert "Traceback" not in done.stderr and done.stderr.count("\n") <= 1, done.stderr
    assert done.returncode == 1 and f"{root}" in done.stderr, done.stderr  # all four blocks are dax: no boot RAM


@pytest.mark.parametrize("target", ["absolute", "dotdot"])
def test_links_out_of_the_directory_are_never_read_nor_quoted(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             target: str) -> None:
    """The reader is often root: ``block_size_bytes -> /etc/shadow`` (or ``../../..`` up to
    it) printed the secret's first 40 characters in the error. A link leaving the dump leads
    nowhere, as in a tarball: the value is unknown (the default stands), nothing is quoted."""
    secret = tmp_path / "secret"
    secret.write_text("root:$6$SECRETHASH:19000:0:99999:7:::\n")
    root = small_sysfs(tmp_path / "dump")
    bsb = root / "devices/system/memory/block_size_bytes"
    bsb.unlink()
    bsb.symlink_to(secret if target == "absolute" else "../../../../secret")
    assert bsb.read_text() == secret.read_text()  # the link does reach it
    (root / "devices/system/node/node0/cpulist").unlink()
    (root / "devices/system/node/node0/cpulist").symlink_to(secret)
    (root / "bus").symlink_to(tmp_path)  # a directory link out: not listed
    assert main(["topology", "--from-sysfs", str(root)]) == 0
    out, err = capsys.readouterr()
    assert "SECRET" not in out + err and "root:" not in out + err, out + err
    cfg = load_topology(text=out)
    assert cfg.block_size == 128 << 20 and cfg.nodes[0].cpus == []


def test_links_inside_the_directory_are_followed(tmp_path: Path) -> None:
    """Relative links that stay inside (as sysfs's own do) still resolve."""
    root = small_sysfs(tmp_path)
    mem = root / "devices/system/memory"
    (mem / "block_size_bytes").rename(mem / "real_bsb")
    (mem / "block_size_bytes").write_text("")
    (mem / "block_size_bytes").unlink()
    (mem / "block_size_bytes").symlink_to("real_bsb")
    (mem / "real_bsb").write_text("10000000\n")
    assert topology_from_sysfs(root).config.block_size == 0x10000000
