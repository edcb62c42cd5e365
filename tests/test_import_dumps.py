"""``topology --from-sysfs`` on dumps of real machines: trees (and tarballs of them) laid out as
the kernel lays out its memory and node trees, with the values its rules give on that machine,
imported, booted and read back file by file.

The values are written from the kernel's rules, not from the fake: drivers/base/memory.c
state_show (online/offline), valid_zones_show (an online block: its zone, ``none`` when it
spans zones; an offline one: zone_for_pfn_range()'s default, then the kernel and Movable
zones that differ from it), removable_show (1 with CONFIG_MEMORY_HOTREMOVE since 5.7),
phys_device_show (arch_get_memory_phys_device(): 0, but on s390 the storage increment
``start >> ilog2(sclp.rzm)``), phys_index_show (``%08lx``), and the ``nodeK`` link that
do_register_memory_block_under_node() puts in every block.
"""

from __future__ import annotations

import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from fakesysfs import ConfigError, Simulation
from fakesysfs.cli import main
from fakesysfs.fromsysfs import topology_from_sysfs
from fakesysfs.topology import load_topology

MiB, GiB = 1 << 20, 1 << 30


@dataclass
class Block:
    node: int
    state: str
    valid_zones: str
    phys_device: int = 0


def write_memory_tree(sysfs: Path, block_size: int, blocks: dict[int, Block], *, auto_online: str = "offline",
                      params: dict[str, str] | None = None) -> None:
    """``devices/system/memory`` as the kernel has it (and module/memory_hotplug/parameters)."""
    mem = sysfs / "devices/system/memory"
    mem.mkdir(parents=True)
    (mem / "block_size_bytes").write_text(f"{block_size:x}\n")
    (mem / "auto_online_blocks").write_text(auto_online + "\n")
    (mem / "uevent").write_text("")
    for name in ("soft_offline_page", "hard_offline_page"):
        (mem / name).write_text("")
        (mem / name).chmod(0o200)
    for bid, b in blocks.items():
        d = mem / f"memory{bid}"
        (d / "power").mkdir(parents=True)
        (d / "power/control").write_text("auto\n")
        (d / "state").write_text(b.state + "\n")
        (d / "online").write_text("1\n" if b.state == "online" else "0\n")
        (d / "phys_index").write_text(f"{bid:08x}\n")
        (d / "phys_device").write_text(f"{b.phys_device}\n")
        (d / "removable").write_text("1\n")
        (d / "valid_zones").write_text(b.valid_zones + "\n")
        (d / "uevent").write_text("")
        (d / f"node{b.node}").symlink_to(f"../../node/node{b.node}")
        (d / "subsystem").symlink_to("../../../../bus/memory")
    if params is not None:
        p = sysfs / "module/memory_hotplug/parameters"
        p.mkdir(parents=True)
        for name, value in params.items():
            (p / name).write_text(value + "\n")


def write_node_tree(sysfs: Path, cpus: dict[int, str], blocks: dict[int, Block]) -> None:
    """``devices/system/node`` (drivers/base/node.c): one node, local distance only."""
    node_dir = sysfs / "devices/system/node"
    ids = ",".join(str(n) for n in sorted(cpus))
    node_dir.mkdir(parents=True)
    for name in ("possible", "online", "has_memory", "has_normal_memory", "has_cpu"):
        (node_dir / name).write_text(ids + "\n")
    for nid, cpulist in cpus.items():
        d = node_dir / f"node{nid}"
        d.mkdir()
        (d / "cpulist").write_text(cpulist + "\n")
        (d / "distance").write_text("10\n")
        for bid, b in blocks.items():
            if b.node == nid:
                (d / f"memory{bid}").symlink_to(f"../../memory/memory{bid}")


def pack(src: Path, out: Path, mode: str, *, gnu_tar_padding: bool) -> Path:
    """A tarball of ``src``'s contents (members relative to ``src``). ``gnu_tar_padding``:
    each file stored as 4096 bytes, NUL-padded, as GNU tar stores a sysfs file (it stats 4096
    bytes and warns that the file shrank)."""
    with tarfile.open(out, mode) as tar:
        for path in sorted(src.rglob("*")):
            name = str(path.relative_to(src))
            info = tar.gettarinfo(str(path), arcname=name)
            if info.isreg():
                data = path.read_bytes()
                if gnu_tar_padding:
                    data = data.ljust(4096, b"\0")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return out


def x86_64_16g(root: Path) -> dict[int, Block]:
    """A 16 GiB x86_64 machine (QEMU's layout): RAM 0-3 GiB and 4-17 GiB, the PCI hole
    between (blocks 24-31 missing), 128 MiB blocks; blocks 120-135 offlined after boot, 128,
    129 and 131 onlined again in ZONE_MOVABLE. Memory tree only (no node directories), CPUs from
    devices/system/cpu."""
    blocks = {0: Block(0, "online", "none")}  # ZONE_DMA (below 16 MiB) and ZONE_DMA32
    blocks |= {b: Block(0, "online", "DMA32") for b in range(1, 24)}
    blocks |= {b: Block(0, "online", "Normal") for b in range(32, 136)}
    # Offlined after boot, 128-131 onlined online_movable and 130 offlined again: Normal
    # spans 32-119, Movable 128-131. contig-zones (default_zone_for_pfn): a block in neither
    # span (120-127, 132-135) defaults to the kernel zone, one in Movable's alone (130) to
    # Movable; valid_zones then adds the other of Normal and Movable.
    blocks |= {b: Block(0, "offline", "Normal Movable") for b in [*range(120, 128), *range(132, 136)]}
    blocks |= {b: Block(0, "online", "Movable") for b in (128, 129, 131)}
    blocks[130] = Block(0, "offline", "Movable Normal")
    write_memory_tree(root / "sys", 128 * MiB, blocks, auto_online="online",
                      params={"memmap_on_memory": "Y", "online_policy": "contig-zones", "auto_movable_ratio": "301",
                              "auto_movable_numa_aware": "Y"})
    for cpu in range(4):
        d = root / f"sys/devices/system/cpu/cpu{cpu}"
        d.mkdir(parents=True)
        (d / "node0").symlink_to("../../node/node0")
    return blocks


def s390_6g(root: Path) -> dict[int, Block]:
    """A z/VM guest: 4 GiB online, 2 GiB standby memory (offline), 256 MiB blocks (sclp.rzm),
    phys_device = the storage increment = the block id; ZONE_DMA below 2 GiB, then Normal."""
    blocks = {b: Block(0, "online", "DMA" if b < 8 else "Normal", b) for b in range(16)}
    blocks |= {b: Block(0, "offline", "Normal Movable", b) for b in range(16, 24)}
    write_memory_tree(root / "sys", 256 * MiB, blocks)
    write_node_tree(root / "sys", {0: "0-1"}, blocks)
    thp = root / "sys/kernel/mm/transparent_hugepage"
    thp.mkdir(parents=True)
    (thp / "hpage_pmd_size").write_text(f"{1 * MiB}\n")  # s390: a segment is 1 MiB
    return blocks


def aarch64_16k(root: Path) -> dict[int, Block]:
    """An arm64 16K-page machine with 16 GiB at 1 GiB (QEMU virt): 128 MiB blocks
    (SECTION_SIZE_BITS 27), ZONE_DMA up to 4 GiB (zone_dma_limit 32 bits), ZONE_DMA32 empty."""
    blocks = {b: Block(0, "online", "DMA" if b < 32 else "Normal") for b in range(8, 136)}
    write_memory_tree(root, 128 * MiB, blocks)
    write_node_tree(root, {0: "0-7"}, blocks)
    thp = root / "kernel/mm/transparent_hugepage"
    thp.mkdir(parents=True)
    (thp / "hpage_pmd_size").write_text(f"{32 * MiB}\n")  # PMD_SIZE = 16K * 16K / 8
    return blocks


def ppc64le_8g(root: Path) -> dict[int, Block]:
    """A POWER9 LPAR (radix MMU): 8 GiB of 256 MiB LMBs, all ZONE_NORMAL (Book3S has no
    ZONE_DMA); the last LMB offlined."""
    blocks = {b: Block(0, "online", "Normal") for b in range(31)}
    blocks[31] = Block(0, "offline", "Normal Movable")
    write_memory_tree(root / "sys", 256 * MiB, blocks)
    write_node_tree(root / "sys", {0: "0-7"}, blocks)
    thp = root / "sys/kernel/mm/transparent_hugepage"
    thp.mkdir(parents=True)
    (thp / "hpage_pmd_size").write_text(f"{2 * MiB}\n")
    return blocks


def assert_round_trip(sysfs: Path, blocks: dict[int, Block], cfg: object) -> int:
    """Boot ``cfg``: the same blocks, each with its node link, and every readable file of the
    dump's memory and node trees byte for byte the same on the fake. Returns how many files."""
    compared = 0
    with Simulation(cfg) as sim:  # type: ignore[arg-type]
        assert sorted(sim.kernel.blocks) == sorted(blocks)
        for bid, b in blocks.items():
            here = f"/devices/system/memory/memory{bid}"
            assert [n for n in sim.ls(here) if n.startswith("node")] == [f"node{b.node}"]
        for tree in ("devices/system/memory", "devices/system/node"):
            for path in sorted((sysfs / tree).rglob("*")):
                if path.is_symlink() or not path.is_file() or not path.stat().st_mode & 0o444:
                    continue  # a link (compared above) or a write-only attribute
                name = "/" + str(path.relative_to(sysfs))
                assert sim.cat(name) == path.read_text(), name
                compared += 1
    return compared


def test_x86_64_memory_only_tarball_round_trips(tmp_path: Path) -> None:
    """A .tar.gz of sys/devices/system/memory with GNU tar's padding, no node directories: the
    blocks, the hole, the offline boot blocks and the parameters come back, file for file."""
    blocks = x86_64_16g(tmp_path / "src")
    dump = pack(tmp_path / "src", tmp_path / "dump.tar.gz", "w:gz", gnu_tar_padding=True)
    found = topology_from_sysfs(dump)
    cfg = found.config
    (node,) = cfg.nodes
    assert (node.id, node.cpus) == (0, [0, 1, 2, 3])
    assert [(r.start, r.end) for r in node.memory] == [(0, 3 * GiB), (4 * GiB, 17 * GiB)]
    assert node.offline_blocks == [*range(120, 128), 130, *range(132, 136)]
    assert node.movable_blocks == [128, 129, 131]
    assert (cfg.block_size, cfg.auto_online_blocks, cfg.memmap_on_memory, cfg.online_policy) == \
        (128 * MiB, "online", "Y", "contig-zones")
    assert not [n for n in found.notes if "differs" in n], found.notes
    assert assert_round_trip(tmp_path / "src/sys", blocks, cfg) == 1027  # every file of 128 blocks and the root
    assert_round_trip(tmp_path / "src/sys", blocks, load_topology(text=found.toml(str(dump))))


def test_s390_standby_memory_boots_offline(tmp_path: Path) -> None:
    """A directory holding sys/: the standby blocks boot offline with the dump's valid_zones."""
    blocks = s390_6g(tmp_path)
    found = topology_from_sysfs(tmp_path)
    cfg = found.config
    assert cfg.block_size == 256 * MiB and cfg.nodes[0].offline_blocks == list(range(16, 24))
    assert cfg.arch == "s390x"  # ZONE_DMA below 2 GiB and phys_device = the increment: s390x's alone
    assert any("page size is unknown" in n for n in found.notes)
    assert not [n for n in found.notes if "differs" in n], found.notes
    assert assert_round_trip(tmp_path / "sys", blocks, cfg) == 202


def test_aarch64_16k_tarball_rooted_at_the_tree(tmp_path: Path) -> None:
    """A .tar.xz whose members start at devices/: the page size comes from hpage_pmd_size."""
    blocks = aarch64_16k(tmp_path / "src")
    dump = pack(tmp_path / "src", tmp_path / "dump.tar.xz", "w:xz", gnu_tar_padding=False)
    found = topology_from_sysfs(dump)
    cfg = found.config
    assert (cfg.page_size, cfg.block_size) == (16384, 128 * MiB)
    assert [(r.start, r.end) for r in cfg.nodes[0].memory] == [(1 * GiB, 17 * GiB)]
    assert cfg.nodes[0].cpus == list(range(8))
    assert cfg.arch == "arm64"  # the only architecture with 16K pages
    assert not [n for n in found.notes if "differs" in n], found.notes
    assert assert_round_trip(tmp_path / "src", blocks, cfg) == 1034


def test_ppc64le_is_told_by_its_zones(tmp_path: Path) -> None:
    blocks = ppc64le_8g(tmp_path)
    found = topology_from_sysfs(tmp_path)
    assert found.config.arch == "ppc64le" and found.config.nodes[0].offline_blocks == [31]
    assert any(n.startswith("ppc64le: hpage_pmd_size does not tell 4K from 64K") for n in found.notes)
    assert not [n for n in found.notes if "differs" in n], found.notes
    assert assert_round_trip(tmp_path / "sys", blocks, found.config) == 266


def test_the_x86_64_layout_on_an_arm64_dump_is_named_in_notes(tmp_path: Path) -> None:
    """Had the import kept x86_64's zones, ZONE_DMA32 would show for 1-4 GiB: the notes say
    so, which is how the import picks the architecture that shows none."""
    from fakesysfs.fromsysfs import _differences, _reading_directory

    aarch64_16k(tmp_path)
    cfg = topology_from_sysfs(tmp_path).config
    cfg.arch, cfg.page_size = "x86_64", 4096
    with _reading_directory(str(tmp_path)):
        count, notes = _differences(str(tmp_path), cfg, list(range(8, 136)))
    assert count == 24 and notes == ["valid_zones differs for memory blocks 8-31 (memory8: 'DMA' in the dump, "
                                     "'DMA32' here; memory9: 'DMA' in the dump, 'DMA32' here; memory10: 'DMA' in "
                                     "the dump, 'DMA32' here; 21 more)"]


@pytest.mark.parametrize(("arch", "start", "expect"), [
    ("x86_64", 0, {0: "none", 1: "DMA32", 31: "DMA32"}),
    ("arm64", 1 * GiB, {8: "DMA", 31: "DMA", 32: "Normal"}),
    ("arm64", 8 * GiB, {64: "DMA", 95: "DMA"}),  # DRAM above 4 GiB: all of it ZONE_DMA
    ("s390x", 0, {0: "DMA", 15: "DMA", 16: "Normal"}),
    ("ppc64le", 0, {0: "Normal", 31: "Normal"}),
])
def test_each_architecture_has_its_zones(arch: str, start: int, expect: dict[int, str]) -> None:
    text = f"""
[kernel]
arch = "{arch}"
[[node]]
id = 0
memory = ["{start:#x}-{start + 4 * GiB - 1:#x}"]
"""
    with Simulation(text) as sim:
        assert {b: sim.cat(f"/devices/system/memory/memory{b}/valid_zones").strip() for b in expect} == expect


def test_an_architecture_takes_only_its_page_sizes() -> None:
    with pytest.raises(ConfigError, match=r"kernel.page_size: 16384 is not a page size of x86_64 \(4096\); "
                                         r"kernel.arch arm64 has it"):
        load_topology(text='[kernel]\npage_size = 16384\n[[node]]\nid = 0\nmemory = ["0x0-0xfffffff"]\n')
    assert load_topology(text='[kernel]\narch = "arm64"\npage_size = 65536\n[[node]]\nid = 0\n'
                              'memory = ["0x40000000-0x4fffffff"]\n').page_size == 65536


def test_what_the_fake_shows_differently_is_named_one_note_per_file(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    blocks = x86_64_16g(tmp_path)
    (tmp_path / "sys/devices/system/memory/memory40/removable").write_text("0\n")  # a pre-5.7 kernel
    (tmp_path / "sys/devices/system/memory/memory41/phys_device").write_text("7\n")
    assert main(["topology", "--from-sysfs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if line.startswith("# Note:")]
    assert [n for n in notes if "differs" in n] == [
        "# Note: removable differs for memory blocks 40 (memory40: '0' in the dump, '1' here)",
        "# Note: phys_device differs for memory blocks 41 (memory41: '7' in the dump, '0' here)",
    ]
    assert blocks[40].state == "online"


# -- crafted and broken dumps: one line naming the file ------------------------------------------
def _tar_with(tmp_path: Path, *members: tuple[tarfile.TarInfo, bytes]) -> Path:
    blocks = {0: Block(0, "online", "none"), 1: Block(0, "online", "DMA32")}
    write_memory_tree(tmp_path / "src/sys", 128 * MiB, blocks)
    out = pack(tmp_path / "src", tmp_path / "dump.tar", "w", gnu_tar_padding=False)
    with tarfile.open(out, "a") as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


@pytest.mark.parametrize(("member", "why"), [
    (_member("/etc/cron.d/x"), "has an absolute path; refused"),
    (_member("sys/../../x"), "goes up with '..'; refused"),
    (_member("sys/dev/null", tarfile.CHRTYPE), "is a device file; refused"),
    (_member("sys/fifo", tarfile.FIFOTYPE), "is a FIFO; refused"),
    (_member("sys/devices/system/memory/memory0/subsystem/x"), "lies under a symbolic link; refused"),
])
def test_a_crafted_tarball_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   member: tarfile.TarInfo, why: str) -> None:
    dump = _tar_with(tmp_path, (member, b"x"))
    assert main(["topology", "--from-sysfs", str(dump)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{dump}: member {member.name!r} {why}" in err, err
    assert not (tmp_path / "x").exists() and not Path("/etc/cron.d/x").exists()


def test_links_leaving_the_dump_lead_nowhere(tmp_path: Path) -> None:
    """An absolute or escaping link target is never followed out of the archive: a value read
    through it is none (the default stands), not this machine's file."""
    dump = _tar_with(tmp_path,
                     (_member("sys/devices/system/memory/auto_online_blocks", tarfile.REGTYPE), b""),
                     (_member("sys/module/memory_hotplug/parameters/online_policy", tarfile.SYMTYPE,
                              "/etc/hostname"), b""),
                     (_member("sys/module/memory_hotplug/parameters/memmap_on_memory", tarfile.SYMTYPE,
                              "../../../../../../../proc/self/environ"), b""))
    cfg = topology_from_sysfs(dump).config
    assert (cfg.online_policy, cfg.memmap_on_memory) == ("contig-zones", "N")


def test_a_bad_value_in_a_tarball_names_the_member(tmp_path: Path) -> None:
    dump = _tar_with(tmp_path, (_member("sys/devices/system/memory/memory1/state"), b"sideways\n"))
    with pytest.raises(ConfigError, match=rf"^sysfs: {dump}:/sys/devices/system/memory/memory1/state: "
                                          r"'sideways' is not a block state"):
        topology_from_sysfs(dump)


@pytest.mark.parametrize("content", [b"", b"\x1f\x8b\x08\x00garbage", b"not a tarball at all" * 100],
                         ids=["empty", "truncated gzip", "text"])
def test_a_broken_archive_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes) -> None:
    dump = tmp_path / "dump.tgz"
    dump.write_bytes(content)
    assert main(["topology", "--from-sysfs", str(dump)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{dump}: not a readable tarball" in err, err


def test_member_count_and_size_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fakesysfs import sysfsarchive

    dump = _tar_with(tmp_path)
    monkeypatch.setattr(sysfsarchive, "MAX_MEMBERS", 5)
    with pytest.raises(ConfigError, match="more than 5 members"):
        topology_from_sysfs(dump)
    monkeypatch.setattr(sysfsarchive, "MAX_MEMBERS", 1 << 20)
    monkeypatch.setattr(sysfsarchive, "MAX_ARCHIVE_BYTES", 10)
    with pytest.raises(ConfigError, match="more than 10 bytes decompressed; not a sysfs dump"):
        topology_from_sysfs(dump)


def _raw_header(name: bytes, kind: bytes, size: int) -> bytes:
    """One ustar header block as tar writes it (octal fields, checksum over the block)."""
    block = bytearray(512)
    block[0:len(name)] = name
    block[100:108] = b"0000644\0"
    block[124:136] = b"%011o\0" % size
    block[156:157] = kind
    block[257:265] = b"ustar\x0000"
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def _bomb(tmp_path: Path, kind: bytes, payload_size: int, compress: str) -> Path:
    """A tarball whose first header is a PAX record (``x``) or GNU long name (``L``) of
    ``payload_size`` bytes, then one regular member: small compressed, huge once read."""
    if kind == b"x":
        body = b"path=" + b"a" * payload_size + b"\n"
        digits = len(str(len(body)))
        body = str(len(body) + digits + 1).encode() + b" " + body
    else:
        body = b"a" * payload_size + b"\0"
    pad = -len(body) % 512
    data = _raw_header(b"././@LongLink", kind, len(body)) + body + b"\0" * pad \
        + _raw_header(b"sys/x", b"0", 0) + b"\0" * 1024
    out = tmp_path / f"bomb.tar.{compress}"
    import bz2
    import gzip
    import lzma
    out.write_bytes({"gz": lambda b: gzip.compress(b, 1), "bz2": bz2.compress, "xz": lzma.compress}[compress](data))
    return out


@pytest.mark.parametrize("compress", ["gz", "bz2", "xz"])
@pytest.mark.parametrize(("kind", "what"), [(b"x", "a PAX header"), (b"L", "a GNU long name")])
def test_a_huge_extension_header_is_refused_unread(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   kind: bytes, what: str, compress: str) -> None:
    """CPython's tarfile reads a PAX record or GNU long name whole: a 64 MiB one (a tiny
    compressed file) is refused from its header, memory staying small (a 300 MiB one made
    the import die with MemoryError)."""
    import tracemalloc

    dump = _bomb(tmp_path, kind, 64 * MiB, compress)
    assert dump.stat().st_size < MiB
    tracemalloc.start()
    try:
        assert main(["topology", "--from-sysfs", str(dump)]) == 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{dump}: {what} of " in err and "refused" in err, err
    assert peak < 32 * MiB, peak  # the xz decoder alone takes ~8 MiB


def test_chained_extension_headers_are_bounded(tmp_path: Path) -> None:
    """tarfile recurses once per extension header before a member: a long chain is refused."""
    body = b"a" * 100 + b"\0"
    one = _raw_header(b"././@LongLink", b"L", len(body)) + body + b"\0" * (-len(body) % 512)
    dump = tmp_path / "chain.tar"
    dump.write_bytes(one * 5000 + _raw_header(b"sys/x", b"0", 0) + b"\0" * 1024)
    with pytest.raises(ConfigError, match=r"more than \d+ extension headers before one member; refused"):
        topology_from_sysfs(dump)


def test_a_deep_path_is_read_without_recursion(tmp_path: Path) -> None:
    """A member ~2000 directories deep (within PATH_MAX) is entered in a loop (it raised
    RecursionError); the import goes on to its ordinary verdict on the tree."""
    deep = "sys/" + "d/" * 2000 + "x"
    dump = _tar_with(tmp_path, (_member(deep), b"1\n"))
    assert topology_from_sysfs(dump).config.nodes[0].id == 0


@pytest.mark.parametrize(("name", "why"), [
    ("sys/" + "d/" * 2100 + "x", "has a path longer than PATH_MAX (4096); refused"),
    ("sys/" + "n" * 256, "has a name longer than NAME_MAX (255); refused"),
], ids=["PATH_MAX", "NAME_MAX"])
def test_over_long_paths_are_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  name: str, why: str) -> None:
    dump = _tar_with(tmp_path, (_member(name), b"1\n"))
    assert main(["topology", "--from-sysfs", str(dump)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{dump}: member {name[:64]!r}... {why}" in err, err


def test_a_tarball_is_read_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing is extracted: no file is created anywhere while a tarball is imported."""
    import builtins

    x86_64_16g(tmp_path / "src")
    dump = pack(tmp_path / "src", tmp_path / "d.tar", "w", gnu_tar_padding=True)
    real_open, real_os_open = builtins.open, os.open

    def no_write(file: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        assert set(mode) <= set("rbt"), f"opened {file} with mode {mode!r}"
        return real_open(file, mode, *args, **kwargs)  # type: ignore[call-overload]

    def no_create(path: object, flags: int, *args: object, **kwargs: object) -> int:
        assert not flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT), f"os.open({path}, {flags:#o})"
        return real_os_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "open", no_write)
    monkeypatch.setattr(os, "open", no_create)
    monkeypatch.setattr(os, "mkdir", lambda *a, **_k: pytest.fail(f"mkdir{a}"))
    monkeypatch.setattr(os, "symlink", lambda *a, **_k: pytest.fail(f"symlink{a}"))
    assert topology_from_sysfs(dump).config.nodes[0].offline_blocks




@pytest.fixture
def fakesysfs_topology() -> str:
    """The embedded default with the CXL root named as the kernel's cxl_test mock names it."""
    from fakesysfs.topology import default_topology_text

    return default_topology_text().replace("[kernel]\n", '[kernel]\ncxl_root = "cxl_acpi.0"\n', 1)


def test_the_cxl_test_root_naming(fakesysfs_sim: Simulation) -> None:
    """Dax regions sit under cxl_acpi.0 (MODALIAS platform:cxl_acpi), hot-added ones too."""
    sim = fakesysfs_sim
    assert sim.readlink("/bus/dax/devices/dax0.0") == \
        "../../../devices/platform/cxl_acpi.0/root0/decoder0.0/region0/dax_region0/dax0.0"
    assert "MODALIAS=platform:cxl_acpi\n" in sim.cat("/devices/platform/cxl_acpi.0/uevent")
    assert not sim.exists("/devices/platform/ACPI0017:00")
    sim.add_cxl_region("1G", node=1)
    under_root = [d.name for d in sim.dax_devices()
                  if sim.realpath(f"/bus/dax/devices/{d.name}").startswith("/devices/platform/cxl_acpi.0/root0/")]
    assert under_root == ["dax0.0", "dax3.0"]  # dax1.0 is hmem's, dax2.0 pmem's
    with Simulation() as default:
        assert default.exists("/devices/platform/ACPI0017:00/root0")


def test_an_import_keeps_the_cxl_root_naming(fakesysfs_mount: Simulation) -> None:
    assert fakesysfs_mount.mountpoint is not None
    found = topology_from_sysfs(fakesysfs_mount.mountpoint)
    assert found.config.cxl_root == "cxl_acpi.0"
    assert not [n for n in found.notes if "differs" in n], found.notes


@pytest.mark.parametrize(("lists", "why"), [
    ('offline_blocks = "0"', r"node\[0\].offline_blocks: block 0 \(\[0x0-0x7ffffff\]\) spans zones"),
    ('offline_blocks = "40"', r"node\[0\].offline_blocks: block 40 .* is not wholly boot RAM of node 0"),
    ('movable_blocks = "23"', r"node\[0\].movable_blocks: block 23 .* is not wholly boot RAM"),  # ends at 0xbff00000
    ('offline_blocks = "5"\nmovable_blocks = "5"', r"node\[0\].movable_blocks: block 5 is listed twice"),
])
def test_offline_and_movable_blocks_are_blocks_a_kernel_can_offline(lists: str, why: str) -> None:
    text = f'[[node]]\nid = 0\nmemory = ["0x0-0xbfefffff"]\n{lists}\n'
    with pytest.raises(ConfigError, match=why):
        load_topology(text=text)


def test_boot_blocks_in_zone_movable_are_counted_there() -> None:
    text = '[[node]]\nid = 0\ncpus = "0"\nmemory = ["0x0-0x1ffffffff"]\nmovable_blocks = "40-63"\n'
    with Simulation(text) as sim:
        assert sim.cat("/devices/system/memory/memory40/valid_zones") == "Movable\n"
        zoneinfo = {z.name: z.present for z in sim.kernel.nodes[0].zones.values()}
        assert zoneinfo["Movable"] == 24 * (128 * MiB // 4096)
        # Movable: nothing pins it. Inside Movable's span (not Normal's, 32-39) the default is
        # Movable; at the span's edge (40) the span shrinks past it, and the default is Normal.
        for bid, zones in ((50, "Movable Normal\n"), (40, "Normal Movable\n")):
            assert sim.echo(f"/devices/system/memory/memory{bid}/state", "offline") > 0
            assert sim.cat(f"/devices/system/memory/memory{bid}/valid_zones") == zones


LSMEM_MODES = [[], ["-a"], ["--json"], ["--raw"], ["-o", "+NODE,ZONES"], ["-a", "-o", "+NODE,ZONES"],
               ["--split", "STATE,REMOVABLE,NODE,ZONES"], ["--output-all"], ["--output-all", "--json", "-a"]]


@pytest.mark.parametrize("machine", ["x86_64", "s390x", "arm64", "ppc64le"])
def test_lsmem_prints_the_same_on_the_dump_and_on_the_mount(tmp_path: Path, machine: str) -> None:
    """lsmem --sysroot, every output mode, on the dump and on a FUSE mount of its import."""
    import shutil
    import subprocess

    from fakesysfs.mountpoint import fuse_unavailable

    reason = fuse_unavailable()
    if reason is not None or shutil.which("lsmem") is None:
        pytest.skip(reason or "no lsmem")
    src = tmp_path / "src"
    if machine == "x86_64":
        x86_64_16g(src)
    elif machine == "s390x":
        s390_6g(src)
    elif machine == "ppc64le":
        ppc64le_8g(src)
    else:
        aarch64_16k(src / "sys")
    cfg = topology_from_sysfs(src).config
    assert cfg.arch == machine
    (tmp_path / "fake/sys").mkdir(parents=True)
    with Simulation(cfg) as sim:
        sim.mount(tmp_path / "fake/sys")
        for mode in LSMEM_MODES:
            outs = [subprocess.run(["lsmem", "--sysroot", str(root), *mode], capture_output=True, text=True,
                                   check=True, timeout=60).stdout for root in (src, tmp_path / "fake")]
            assert outs[0] == outs[1], mode
            assert outs[0].strip(), mode


def test_offline_and_movable_boot_blocks_keep_the_invariants() -> None:
    """The accounting of blocks booted offline or Movable is what the state machine keeps: the
    invariants hold at boot and after onlining and offlining them (the spans: Movable 16-22
    once 23 leaves its top, Normal 8-15)."""
    from fakesysfs.testing.invariants import check_invariants

    text = '[kernel]\narch = "s390x"\nblock_size = "256M"\n[[node]]\nid = 0\ncpus = "0-1"\n' \
           'memory = ["0x0-0x17fffffff"]\noffline_blocks = "16-19,22"\nmovable_blocks = "20-21,23"\n'
    with Simulation(text) as sim:
        check_invariants(sim)
        for bid, word in ((16, "online_movable"), (20, "offline"), (22, "online_movable"), (23, "offline")):
            sim.echo(f"/devices/system/memory/memory{bid}/state", word)
        check_invariants(sim)
        assert [sim.cat(f"/devices/system/memory/memory{b}/valid_zones").strip() for b in range(15, 24)] == [
            "Normal", "Movable", *["Movable Normal"] * 4, "Movable", "Movable", "Normal Movable"]


def test_an_id_of_5000_digits_is_no_block(tmp_path: Path) -> None:
    """int() refuses more than 4300 digits (a ValueError traceback): such a name is refused
    by NAME_MAX before any parser sees it."""
    dump = _tar_with(tmp_path, (_member("sys/devices/system/memory/memory1/node" + "7" * 5000, tarfile.SYMTYPE,
                                        "../../node/node7"), b""))
    with pytest.raises(ConfigError, match=r"has a (path|name) longer than (PATH|NAME)_MAX \(\d+\); refused"):
        topology_from_sysfs(dump)


def test_an_xz_dictionary_beyond_the_memory_limit_is_refused(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """An xz block header names its dictionary size, which the decoder allocates and fills
    (lzma.LZMAFile takes no limit): a 1 KiB archive asking for 2 GiB is refused in one line."""
    import lzma
    import zlib

    x86_64_16g(tmp_path / "src")
    plain = pack(tmp_path / "src", tmp_path / "d.tar", "w", gnu_tar_padding=False).read_bytes()
    data = bytearray(lzma.compress(plain, format=lzma.FORMAT_XZ,
                                   filters=[{"id": lzma.FILTER_LZMA2, "dict_size": 1 << 20}]))
    size = (data[12] + 1) * 4  # the block header after the 12-byte stream header
    assert data[14:17] == b"\x21\x01\x10"  # LZMA2, one property byte: dictionary 2^20
    data[16] = 38  # (2 | 0) << (38 // 2 + 11): 2 GiB
    data[12 + size - 4:12 + size] = zlib.crc32(data[12:12 + size - 4]).to_bytes(4, "little")
    dump = tmp_path / "d.tar.xz"
    dump.write_bytes(data)
    assert main(["topology", "--from-sysfs", str(dump)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{dump}: not a readable tarball" in err and "emory" in err, err
    good = tmp_path / "good.tar.xz"
    good.write_bytes(lzma.compress(plain, format=lzma.FORMAT_XZ))
    assert topology_from_sysfs(good).config.nodes
