"""Topology files: the embedded default, round trips, and one test per validation rule."""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakesysfs.config import (
    PROFILES,
    BootConfig,
    CxlMemdevConfig,
    CxlRegionConfig,
    CxlWindowConfig,
    GiB,
    HmemConfig,
    MemRange,
    MiB,
    NodeConfig,
    PmemConfig,
)
from fakesysfs.errors import ConfigError
from fakesysfs.topology import (
    default_topology_text,
    dump_topology,
    load_topology,
    parse_size,
    validate_config,
)

NODE0 = """
[[node]]
id = 0
cpus = "0-1"
memory = ["0x0-0x3fffffff"]
"""


def topo(kernel: str = "", extra: str = "", node0: str = NODE0) -> str:
    """A small valid topology (node 0: 1 GiB, CPUs 0-1) plus the given TOML fragments."""
    return f"[kernel]\n{kernel}\n{node0}\n{extra}\n"


def config_error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_topology(text=text)
    return info.value


def assert_error(text: str, key: str, *fragments: str) -> None:
    err = config_error(text)
    assert err.key == key, str(err)
    for fragment in fragments:
        assert fragment in err.why, str(err)
    assert str(err).startswith(f"{key}: ")


# ------------------------------------------------------------------------------------------
# The embedded default
# ------------------------------------------------------------------------------------------


def test_default_topology_is_the_cxl_host() -> None:
    config = load_topology()
    assert config == load_topology(text=default_topology_text())
    assert config.kernel_profile == "6.18"
    assert config.block_size == 128 * MiB
    assert config.memmap_on_memory == "Y"
    assert config.auto_online_blocks == "offline"
    assert config.possible() == [0, 1, 2, 3]
    assert [n.id for n in config.nodes] == [0]
    node0 = config.nodes[0]
    assert node0.cpus == [0, 1]
    assert node0.memory[0] == MemRange(0x1000, 0x9F000 - 0x1000)
    assert node0.memory[1] == MemRange(0x100000, 0xC0000000 - 0x100000)
    assert node0.memory[2].start == 0x100000000
    # 8 GiB of DIMMs: 3 GiB below the PCI hole, the rest above 4 GiB.
    assert node0.memory[2].end - node0.memory[2].start + 0xC0000000 == 8 * GiB
    # docs/abi.md example 1: region0, 16 GiB at 0x1050000000, blocks 522..649, target node 1.
    (cxl,) = config.cxl_regions
    assert (cxl.start, cxl.size, cxl.target_node, cxl.decoder) == (
        0x1050000000, 16 * GiB, 1, "decoder0.0",
    )  # fmt: skip
    assert cxl.start // config.block_size == 522
    (hmem,) = config.hmem
    assert (hmem.size, hmem.target_node) == (8 * GiB, 2)
    assert hmem.start >= cxl.start + cxl.size and hmem.start % (2 * GiB) == 0
    (pmem,) = config.pmem
    assert (pmem.namespace, pmem.size, pmem.target_node) == ("namespace2.0", 4 * GiB, 3)
    assert config.distance(0, 0) == 10 and config.distance(0, 1) == 20
    assert config.distance(0, 3) < config.distance(0, 2)
    assert config.dax_major == 252


def test_default_topology_round_trips() -> None:
    config = load_topology()
    text = dump_topology(config)
    assert load_topology(text=text) == config
    assert dump_topology(load_topology(text=text)) == text


def test_default_topology_comments_every_section() -> None:
    lines = default_topology_text().splitlines()
    headers = [i for i, line in enumerate(lines) if line.startswith("[")]
    assert len(headers) >= 7
    for i in headers:
        assert lines[i - 1].startswith("#"), lines[i]


def test_load_from_path(tmp_path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(topo())
    assert load_topology(path) == load_topology(str(path)) == load_topology(text=topo())


def test_path_and_text_together_is_a_type_error(tmp_path) -> None:
    with pytest.raises(TypeError):
        load_topology(tmp_path / "t.toml", text=topo())


def test_minimal_topology_gets_dataclass_defaults() -> None:
    config = load_topology(text=topo())
    expected = BootConfig(nodes=[NodeConfig(0, [0, 1], [MemRange(0, GiB)])])
    assert config == expected


def test_invalid_toml_is_a_config_error() -> None:
    err = config_error("[kernel\n")
    assert err.key == "<text>" and "not valid TOML" in err.why


# ------------------------------------------------------------------------------------------
# Values: sizes, range lists, words
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("128M", 128 * MiB),
        ("2G", 2 * GiB),
        ("4GiB", 4 * GiB),
        ("16 GB", 16 * GiB),
        ("1t", 1 << 40),
        ("64K", 64 << 10),
        ("0x8000000", 128 * MiB),
        ("134217728", 128 * MiB),
    ],
)
def test_size_strings(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["128M", "2G", "4GiB", "0x8000000", "134217728"])
def test_block_size_as_size_string(text: str) -> None:
    assert load_topology(text=topo(f'block_size = "{text}"')).block_size == parse_size(text)


def test_sizes_accept_integers_and_hex_strings() -> None:
    extra = """
[[cxl_region]]
start = "0x1050000000"
size = 17179869184
target_node = 0
"""
    (cxl,) = load_topology(text=topo(extra=extra)).cxl_regions
    assert (cxl.start, cxl.size) == (0x1050000000, 16 * GiB)


def test_unparsable_size_names_its_key() -> None:
    assert_error(topo('block_size = "12Q"'), "kernel.block_size", "cannot parse")


def test_negative_size_names_its_key() -> None:
    extra = "[[hmem]]\nstart = -4096\nsize = \"2M\"\ntarget_node = 0\n"
    assert_error(topo(extra=extra), "hmem[0].start", "negative")


def test_memory_ranges_as_strings_or_tables() -> None:
    node0 = """
[[node]]
id = 0
memory = ["0x1000-0x9efff", { start = "1M", size = "1023M" }, { start = 0x40000000, size = "1G" }]
"""
    config = load_topology(text=topo(node0=node0))
    assert config.nodes[0].memory == [
        MemRange(0x1000, 0x9E000),
        MemRange(MiB, 1023 * MiB),
        MemRange(GiB, GiB),
    ]
    assert config.nodes[0].cpus == []


def test_bad_memory_range_string_names_its_index() -> None:
    node0 = '[[node]]\nid = 0\nmemory = ["0x0-0xfffff", "0x100000..0x1fffff"]\n'
    assert_error(topo(node0=node0), "node[0].memory[1]", "inclusive range")


def test_range_ending_before_start_names_its_index() -> None:
    node0 = '[[node]]\nid = 0\nmemory = ["0x200000-0x1fffff"]\n'
    assert_error(topo(node0=node0), "node[0].memory[0]", "ends before it starts")


def test_cpu_and_node_lists() -> None:
    node0 = '[[node]]\nid = 0\ncpus = "0-2,5,7-8"\nmemory = ["0x0-0x3fffffff"]\n'
    config = load_topology(text=topo("possible_nodes = [3, 0, 1]", node0=node0))
    assert config.nodes[0].cpus == [0, 1, 2, 5, 7, 8]
    assert config.possible_nodes == [3, 0, 1]
    assert config.possible() == [0, 1, 3]


def test_bad_cpu_list_names_its_key() -> None:
    node0 = '[[node]]\nid = 0\ncpus = "0-x"\nmemory = ["0x0-0x3fffffff"]\n'
    assert_error(topo(node0=node0), "node[0].cpus", "range list")


def test_huge_cpu_range_is_rejected_before_expanding() -> None:
    node0 = '[[node]]\nid = 0\ncpus = "0-4000000000"\nmemory = ["0x0-0x3fffffff"]\n'
    assert_error(topo(node0=node0), "node[0].cpus", "out of range")


@pytest.mark.parametrize(
    ("word", "mode"),
    [('"Y"', "Y"), ('"N"', "N"), ('"force"', "force"), ('"FORCE"', "force"), ("true", "Y"),
     ("false", "N"), ('"on"', "Y"), ('"0"', "N")],
)  # fmt: skip
def test_memmap_on_memory_words_and_booleans(word: str, mode: str) -> None:
    assert load_topology(text=topo(f"memmap_on_memory = {word}")).memmap_on_memory == mode


def test_unknown_memmap_word_names_its_key() -> None:
    assert_error(topo('memmap_on_memory = "always"'), "kernel.memmap_on_memory", "force")


@pytest.mark.parametrize("profile", [*PROFILES, "6.8", "6.12", "6.17"])
def test_profiles(profile: str) -> None:
    assert load_topology(text=topo(f'profile = "{profile}"')).kernel_profile == profile


@pytest.mark.parametrize("profile", ["6.19", "6.7", "7.0", "6.9-6.15", "6.09", "latest", "6"])
def test_unknown_profile_names_its_key(profile: str) -> None:
    assert_error(topo(f'profile = "{profile}"'), "kernel.profile", "unknown profile")


def test_unknown_online_policy_names_its_key() -> None:
    assert_error(topo('online_policy = "movable"'), "kernel.online_policy", "contig-zones")


def test_unknown_auto_online_word_names_its_key() -> None:
    assert_error(topo('auto_online_blocks = "on"'), "kernel.auto_online_blocks", "online_movable")


def test_auto_movable_ratio_is_u32() -> None:
    assert_error(topo("auto_movable_ratio = 4294967296"), "kernel.auto_movable_ratio", "0 to")


def test_boot_used_percent_is_a_percentage() -> None:
    assert_error(topo("boot_used_percent = 101"), "kernel.boot_used_percent", "0 to 100")


def test_struct_page_size_is_a_multiple_of_8() -> None:
    assert_error(topo("struct_page_size = 60"), "kernel.struct_page_size", "multiple of 8")


def test_dax_major_range() -> None:
    assert_error(topo(extra="[dax]\nmajor = 0\n"), "dax.major", "1 to 4095")


# ------------------------------------------------------------------------------------------
# Unknown keys and wrong types
# ------------------------------------------------------------------------------------------


def test_unknown_top_level_key() -> None:
    assert_error(topo(extra="[memory]\nx = 1\n"), "memory", "unknown key")


def test_unknown_kernel_key_suggests_the_right_one() -> None:
    assert_error(topo("blocksize = 1"), "kernel.blocksize", "block_size")


def test_unknown_node_key_names_the_node() -> None:
    extra = '[[node]]\nid = 1\nmemory = ["0x40000000-0x7fffffff"]\ncpu = "2"\n'
    assert_error(topo(extra=extra), "node[1].cpu", "cpus")


def test_unknown_key_in_memory_table() -> None:
    node0 = "[[node]]\nid = 0\nmemory = [{ start = 0, end = 0x3fffffff }]\n"
    assert_error(topo(node0=node0), "node[0].memory[0].end", "unknown key")


def test_unknown_producer_key() -> None:
    extra = '[[pmem]]\nnamespace = "namespace0.0"\nstart = 0\nsize = 1\ntarget_node = 0\nmode = 1\n'
    assert_error(topo(extra=extra), "pmem[0].mode", "unknown key")


@pytest.mark.parametrize(
    ("kernel", "extra", "key", "fragment"),
    [
        ("block_size = 1.5", "", "kernel.block_size", "float"),
        ("movable_node = 1", "", "kernel.movable_node", "true or false"),
        ('profile = 6.18', "", "kernel.profile", "expected a string"),
        ("possible_nodes = 3", "", "kernel.possible_nodes", "range list"),
        ("", '[dax]\nkmem = "yes"\n', "dax.kmem", "true or false"),
        ("", '[[node]]\nid = "1"\n', "node[1].id", "expected an integer"),
        ("", "[[node]]\nid = 1\ncpus = [1, true]\n", "node[1].cpus[1]", "boolean"),
        ("", '[[node]]\nid = 1\nmemory = "0x0-0xfff"\n', "node[1].memory", "array"),
        ("", "[[node]]\nid = 1\nmemory = [5]\n", "node[1].memory[0]", "table {start, size}"),
        ("", "[[cxl_region]]\nstart = true\nsize = 1\ntarget_node = 0\n",
         "cxl_region[0].start", "expected an integer"),
        ("", '[[cxl_region]]\nstart = 0\nsize = 1\ntarget_node = 0\ndecoder = 0\n',
         "cxl_region[0].decoder", "expected a string"),
        ("", "[distances]\n0 = 20\n", "distances.0", "table"),
        ("", "[distances]\nx = { 1 = 20 }\n", "distances.x", "node id"),
    ],
)  # fmt: skip
def test_wrong_types_name_their_key(kernel: str, extra: str, key: str, fragment: str) -> None:
    assert_error(topo(kernel, extra), key, fragment)


def test_node_must_be_an_array_of_tables() -> None:
    assert_error(topo(node0="[node]\nid = 0\n"), "node", "[[node]]")


def test_kernel_must_be_a_table() -> None:
    assert_error('kernel = 1\n' + NODE0, "kernel", "expected a table")


def test_missing_required_key() -> None:
    extra = '[[cxl_region]]\nstart = "64G"\nsize = "16G"\n'
    assert_error(topo(extra=extra), "cxl_region[0].target_node", "missing required key")


def test_node_needs_an_id() -> None:
    assert_error(topo(extra="[[node]]\ncpus = [4]\n"), "node[1].id", "missing required key")


# ------------------------------------------------------------------------------------------
# Block size and alignment
# ------------------------------------------------------------------------------------------


def test_block_size_must_be_a_power_of_two() -> None:
    assert_error(topo('block_size = "192M"'), "kernel.block_size", "power of two")


def test_block_size_must_be_at_least_the_section_size() -> None:
    assert_error(topo('block_size = "64M"'), "kernel.block_size", "128 MiB")


def test_page_size_must_be_a_power_of_two() -> None:
    assert_error(topo("page_size = 6144"), "kernel.page_size", "power of two")


def test_boot_ram_start_must_be_page_aligned() -> None:
    node0 = '[[node]]\nid = 0\nmemory = ["0x0-0xfffff", "0x100800-0x3fffffff"]\n'
    assert_error(topo(node0=node0), "node[0].memory[1]", "not page aligned")


def test_boot_ram_end_must_be_page_aligned() -> None:
    node0 = '[[node]]\nid = 0\nmemory = ["0x0-0x3ffffffe"]\n'
    assert_error(topo(node0=node0), "node[0].memory[0]", "end + 1")


def test_boot_ram_must_not_be_empty() -> None:
    node0 = "[[node]]\nid = 0\nmemory = [{ start = 0, size = 0 }]\n"
    assert_error(topo(node0=node0), "node[0].memory[0]", "empty")


def test_producer_start_must_be_page_aligned() -> None:
    extra = "[[hmem]]\nstart = 0x4000000800\nsize = \"1G\"\ntarget_node = 0\n"
    assert_error(topo(extra=extra), "hmem[0].start", "page aligned")


def test_producer_size_must_be_page_aligned() -> None:
    extra = "[[cxl_region]]\nstart = \"256G\"\nsize = 0x10000100\ntarget_node = 0\n"
    assert_error(topo(extra=extra), "cxl_region[0].size", "page aligned")


def test_cxl_region_start_is_256m_granular() -> None:
    extra = "[[cxl_region]]\nstart = 0x1048000000\nsize = \"16G\"\ntarget_node = 0\n"
    assert_error(topo(extra=extra), "cxl_region[0].start", "256 MiB")


def test_cxl_region_size_is_256m_granular() -> None:
    extra = "[[cxl_region]]\nstart = 0x1050000000\nsize = \"128M\"\ntarget_node = 0\n"
    assert_error(topo(extra=extra), "cxl_region[0].size", "256 MiB")


def test_cxl_decoder_name() -> None:
    extra = '[[cxl_region]]\nstart = "64G"\nsize = "1G"\ntarget_node = 0\ndecoder = "root0"\n'
    assert_error(topo(extra=extra), "cxl_region[0].decoder", "decoder0.0")


def test_hmem_is_2m_aligned() -> None:
    extra = "[[hmem]]\nstart = 0x1c40100000\nsize = \"1G\"\ntarget_node = 0\n"
    assert_error(topo(extra=extra), "hmem[0].start", "2 MiB")


def test_pmem_align_must_be_supported() -> None:
    extra = '[[pmem]]\nnamespace = "namespace0.0"\nstart = "64G"\nsize = "4G"\ntarget_node = 0\n'
    assert_error(topo(extra=extra + 'align = "64K"\n'), "pmem[0].align", "supported alignment")


def test_pmem_data_area_must_start_on_align() -> None:
    extra = (
        '[[pmem]]\nnamespace = "namespace0.0"\nstart = "64G"\nsize = "4G"\ntarget_node = 0\n'
        'reserve = "1M"\n'
    )
    assert_error(topo(extra=extra), "pmem[0].reserve", "data area")


def test_pmem_reserve_must_be_smaller_than_the_namespace() -> None:
    extra = (
        '[[pmem]]\nnamespace = "namespace0.0"\nstart = "64G"\nsize = "4M"\ntarget_node = 0\n'
        'reserve = "4M"\n'
    )
    assert_error(topo(extra=extra), "pmem[0].reserve", "smaller than size")


def test_pmem_namespace_name() -> None:
    extra = '[[pmem]]\nnamespace = "pmem0"\nstart = "64G"\nsize = "4G"\ntarget_node = 0\n'
    assert_error(topo(extra=extra), "pmem[0].namespace", "namespace0.0")


# ------------------------------------------------------------------------------------------
# Overlaps and memory blocks
# ------------------------------------------------------------------------------------------


def test_boot_ram_of_two_nodes_must_not_overlap() -> None:
    extra = '[[node]]\nid = 1\nmemory = ["0x38000000-0x7fffffff"]\n'
    assert_error(topo(extra=extra), "node[1].memory[0]", "overlaps node[0].memory[0]")


def test_boot_ram_of_one_node_must_not_overlap() -> None:
    node0 = '[[node]]\nid = 0\nmemory = ["0x0-0x3fffffff", "0x3ffff000-0x40000fff"]\n'
    assert_error(topo(node0=node0), "node[0].memory[1]", "overlaps node[0].memory[0]")


def test_producer_must_not_overlap_boot_ram() -> None:
    extra = "[[cxl_region]]\nstart = 0\nsize = \"256M\"\ntarget_node = 0\n"
    assert_error(topo(extra=extra), "cxl_region[0]", "overlaps node[0].memory[0]")


def test_producers_must_not_overlap_each_other() -> None:
    extra = """
[[cxl_region]]
start = "64G"
size = "16G"
target_node = 0

[[hmem]]
start = "72G"
size = "2G"
target_node = 0
"""
    assert_error(topo(extra=extra), "hmem[0]", "overlaps cxl_region[0]")


def test_overlap_is_reported_on_the_later_entry_in_file_order() -> None:
    # The pmem window lies below the hmem range but comes later in the file.
    extra = """
[[hmem]]
start = "66G"
size = "4G"
target_node = 0

[[pmem]]
namespace = "namespace1.0"
start = "64G"
size = "4G"
target_node = 0
"""
    assert_error(topo(extra=extra), "pmem[0]", "overlaps hmem[0]")


def test_two_nodes_must_not_share_a_memory_block() -> None:
    # Node 0 ends at 1 GiB + 64 MiB; node 1 starts in the same 128 MiB block.
    node0 = '[[node]]\nid = 0\nmemory = ["0x0-0x43ffffff"]\n'
    extra = '[[node]]\nid = 1\nmemory = ["0x44000000-0x7fffffff"]\n'
    assert_error(topo(node0=node0, extra=extra), "node[1].memory[0]", "memory block 8")


def test_two_nodes_share_no_block_when_the_block_is_large_enough_to_split() -> None:
    node0 = '[[node]]\nid = 0\nmemory = ["0x0-0x43ffffff"]\n'
    extra = '[[node]]\nid = 1\nmemory = ["0x48000000-0x7fffffff"]\n'
    load_topology(text=topo(node0=node0, extra=extra))
    # With 2 GiB blocks the same layout puts both nodes in memory0.
    err = config_error(topo('block_size = "2G"', node0=node0, extra=extra))
    assert err.key == "node[1].memory[0]" and "memory block 0" in err.why


def test_topology_with_too_many_blocks() -> None:
    extra = "[[hmem]]\nstart = \"1T\"\nsize = \"256T\"\ntarget_node = 0\n"
    assert_error(topo(extra=extra), "kernel.block_size", "2**21")
    load_topology(text=topo('block_size = "2G"', extra=extra))


def test_boot_ram_above_max_physmem_bits() -> None:
    extra = '[[node]]\nid = 1\nmemory = ["0x400000000000-0x40003fffffff"]\n'
    assert_error(topo("max_physmem_bits = 46", extra), "node[1].memory[0]", "2**46")
    load_topology(text=topo("max_physmem_bits = 47", extra))


def test_producer_windows_may_lie_above_max_physmem_bits() -> None:
    # The kernel refuses to add such memory (E2BIG) but firmware may still describe it.
    extra = "[[cxl_region]]\nstart = 0x400000000000\nsize = \"1G\"\ntarget_node = 0\n"
    load_topology(text=topo("max_physmem_bits = 46", extra))


def test_ranges_must_fit_in_64_bits() -> None:
    extra = '[[hmem]]\nstart = 0xffffffffffe00000\nsize = "4M"\ntarget_node = 0\n'
    assert_error(topo(extra=extra), "hmem[0].size", "64-bit")


def test_some_node_needs_boot_ram() -> None:
    assert_error(topo(node0="[[node]]\nid = 0\ncpus = [0]\n"), "node", "boot RAM")


def test_no_nodes_at_all() -> None:
    assert_error("[kernel]\n", "node", "at least one node")


# ------------------------------------------------------------------------------------------
# Node ids, CPUs, target nodes
# ------------------------------------------------------------------------------------------


def test_node_id_outside_possible() -> None:
    extra = '[[node]]\nid = 2\nmemory = ["0x40000000-0x7fffffff"]\n'
    assert_error(topo('possible_nodes = "0-1"', extra), "node[1].id", "possible_nodes")


def test_node_id_defined_twice() -> None:
    extra = '[[node]]\nid = 0\nmemory = ["0x40000000-0x7fffffff"]\n'
    assert_error(topo(extra=extra), "node[1].id", "already defined by node[0]")


def test_node_id_out_of_range() -> None:
    assert_error(topo(extra="[[node]]\nid = 1024\n"), "node[1].id", "out of range")


def test_possible_nodes_listed_twice() -> None:
    assert_error(topo("possible_nodes = [0, 1, 1]"), "kernel.possible_nodes", "twice")


def test_possible_nodes_empty() -> None:
    assert_error(topo('possible_nodes = ""'), "kernel.possible_nodes", "empty")


def test_cpu_listed_twice_across_nodes() -> None:
    extra = '[[node]]\nid = 1\ncpus = "1-2"\nmemory = ["0x40000000-0x7fffffff"]\n'
    assert_error(topo(extra=extra), "node[1].cpus", "CPU 1", "node[0].cpus")


def test_cpu_listed_twice_in_one_node() -> None:
    node0 = '[[node]]\nid = 0\ncpus = "0-3,2"\nmemory = ["0x0-0x3fffffff"]\n'
    assert_error(topo(node0=node0), "node[0].cpus", "CPU 2", "this node")


def test_target_node_must_be_possible() -> None:
    extra = '[[cxl_region]]\nstart = "64G"\nsize = "16G"\ntarget_node = 1\n'
    assert_error(topo(extra=extra), "cxl_region[0].target_node", "not possible")
    load_topology(text=topo('possible_nodes = "0-1"', extra))


def test_numa_node_must_be_online_at_boot() -> None:
    extra = '[[hmem]]\nstart = "64G"\nsize = "1G"\ntarget_node = 1\nnuma_node = 1\n'
    assert_error(topo('possible_nodes = "0-1"', extra), "hmem[0].numa_node", "online at boot")


def test_adistance_must_not_be_negative() -> None:
    extra = '[[cxl_region]]\nstart = "64G"\nsize = "1G"\ntarget_node = 0\nadistance = -1\n'
    assert_error(topo(extra=extra), "cxl_region[0].adistance", "0 to")


# ------------------------------------------------------------------------------------------
# dax device names
# ------------------------------------------------------------------------------------------

PRODUCERS = """
[[cxl_region]]
start = "64G"
size = "16G"
target_node = 0

[[cxl_region]]
start = "80G"
size = "16G"
target_node = 0

[[hmem]]
start = "96G"
size = "8G"
target_node = 0
"""


def pmem(namespace: str, start: str = "128G") -> str:
    return f'[[pmem]]\nnamespace = "{namespace}"\nstart = "{start}"\nsize = "4G"\ntarget_node = 0\n'


def test_region_ids_cxl_first_then_hmem_then_pmem_by_name() -> None:
    # CXL: dax0.0, dax1.0; hmem: dax2.0; pmem namespace3.0 and namespace3.1: dax3.0, dax3.1.
    text = topo(extra=PRODUCERS + pmem("namespace3.0") + pmem("namespace3.1", "132G"))
    config = load_topology(text=text)
    assert len(config.cxl_regions) == 2 and len(config.hmem) == 1 and len(config.pmem) == 2


def test_pmem_device_name_collides_with_a_cxl_device() -> None:
    assert_error(topo(extra=PRODUCERS + pmem("namespace1.0")), "pmem[0].namespace",
                 "dax1.0", "cxl_region[1]")  # fmt: skip


def test_pmem_device_name_collides_with_an_hmem_device() -> None:
    # hmem ids follow the CXL ids: the only hmem range is hmem.2 / dax2.0.
    assert_error(topo(extra=PRODUCERS + pmem("namespace2.0")), "pmem[0].namespace",
                 "dax2.0", "hmem[0]")  # fmt: skip


def test_pmem_region_id_taken_by_a_dynamic_region() -> None:
    # dax0.1 would collide with the second device carved out of CXL region 0.
    assert_error(topo(extra=PRODUCERS + pmem("namespace0.1")), "pmem[0].namespace",
                 "region id 0", "cxl_region[0]")  # fmt: skip


def test_two_pmem_namespaces_with_the_same_name() -> None:
    text = topo(extra=pmem("namespace0.0") + pmem("namespace0.0", "132G"))
    assert_error(text, "pmem[1].namespace", "dax0.0", "pmem[0]")


# ------------------------------------------------------------------------------------------
# Distances
# ------------------------------------------------------------------------------------------

TWO_NODES = 'possible_nodes = "0-1"'


def test_distance_matrix() -> None:
    config = load_topology(text=topo(TWO_NODES, "[distances]\nmatrix = [[10, 21], [21, 10]]\n"))
    assert config.distances == {0: {0: 10, 1: 21}, 1: {0: 21, 1: 10}}
    assert config.distance(1, 0) == 21


def test_distance_pairs_fall_back_to_the_reverse_pair_and_defaults() -> None:
    extra = "[distances]\n0 = { 1 = 17 }\n"
    config = load_topology(text=topo('possible_nodes = "0-2"', extra))
    assert config.distances == {0: {1: 17}}
    assert (config.distance(1, 0), config.distance(0, 2), config.distance(2, 2)) == (17, 20, 10)


def test_distance_matrix_must_be_square_over_possible_nodes() -> None:
    assert_error(topo(TWO_NODES, "[distances]\nmatrix = [[10, 20]]\n"),
                 "distances.matrix", "2 rows of 2")  # fmt: skip
    assert_error(topo(TWO_NODES, "[distances]\nmatrix = [[10, 20], [20]]\n"),
                 "distances.matrix[1]", "1 entries")  # fmt: skip


def test_distance_to_self_is_10() -> None:
    assert_error(topo(TWO_NODES, "[distances]\nmatrix = [[10, 20], [20, 11]]\n"),
                 "distances.matrix[1][1]", "must be 10")  # fmt: skip


def test_remote_distance_is_above_10() -> None:
    assert_error(topo(TWO_NODES, "[distances]\n1 = { 0 = 10 }\n"), "distances.1.0", "11..255")
    assert_error(topo(TWO_NODES, "[distances]\n1 = { 0 = 256 }\n"), "distances.1.0", "11..255")


def test_distance_to_impossible_node() -> None:
    assert_error(topo(TWO_NODES, "[distances]\n0 = { 2 = 20 }\n"), "distances.0.2", "not possible")


def test_distance_matrix_and_pairs_are_exclusive() -> None:
    extra = "[distances]\nmatrix = [[10, 20], [20, 10]]\n0 = { 1 = 20 }\n"
    assert_error(topo(TWO_NODES, extra), "distances.0", "either")


# ------------------------------------------------------------------------------------------
# Configs built in code
# ------------------------------------------------------------------------------------------


def test_validate_config_names_toml_keys_for_configs_built_in_code() -> None:
    config = BootConfig(
        nodes=[NodeConfig(0, [0], [MemRange(0, GiB)])],
        cxl_regions=[CxlRegionConfig(start=64 * GiB, size=3 * MiB, target_node=0)],
    )
    with pytest.raises(ConfigError) as info:
        validate_config(config)
    assert info.value.key == "cxl_region[0].size"


def test_dump_refuses_an_invalid_config() -> None:
    config = BootConfig(nodes=[NodeConfig(0, [0], [MemRange(0, GiB)])], block_size=3 * MiB)
    with pytest.raises(ConfigError):
        dump_topology(config)


def test_dump_keeps_unsorted_id_lists() -> None:
    config = BootConfig(
        nodes=[NodeConfig(1, [3, 0], [MemRange(0, GiB)])], possible_nodes=[2, 1],
        hmem=[HmemConfig(start=64 * GiB, size=GiB, target_node=2)],
    )  # fmt: skip
    text = dump_topology(config)
    assert "cpus = [3, 0]" in text
    assert load_topology(text=text) == config


def test_dump_output_is_plain_toml() -> None:
    config = load_topology()
    tomllib.loads(dump_topology(config))


# ------------------------------------------------------------------------------------------
# Property: random valid configs survive dump -> load
# ------------------------------------------------------------------------------------------

PAGE = 4096


def round_up(value: int, align: int) -> int:
    return -(-value // align) * align


@st.composite
def boot_configs(draw: st.DrawFn) -> BootConfig:
    block_size = 1 << draw(st.integers(27, 31))
    ids = draw(st.lists(st.integers(0, 15), min_size=1, max_size=4, unique=True))
    cpu_pool = iter(draw(st.permutations(range(24))))
    cursor = 0
    nodes = []
    for k, nid in enumerate(ids):
        cursor = round_up(cursor, block_size)  # a block belongs to one node
        memory = []
        for _ in range(draw(st.integers(1 if k == 0 else 0, 3))):
            cursor += draw(st.integers(0, 64)) * PAGE
            size = draw(st.one_of(st.integers(1, 4096), st.integers(1, 4).map(lambda n: n << 15)))
            memory.append(MemRange(cursor, size * PAGE))
            cursor += size * PAGE
        cpus = [next(cpu_pool) for _ in range(draw(st.integers(0, 4)))]
        if draw(st.booleans()):
            cpus.sort()
        adistance = draw(st.none() | st.integers(0, 5000))
        nodes.append(NodeConfig(nid, cpus, memory, adistance))
    online = sorted(n.id for n in nodes if n.cpus or n.memory)
    extra_nodes = draw(st.lists(st.integers(16, 40), max_size=3, unique=True))
    targets = ids + extra_nodes
    target = st.sampled_from(targets)
    numa_node = st.none() | st.sampled_from(online)
    adist = st.none() | st.integers(0, 10000)

    cursor = round_up(cursor, 256 * MiB)
    cxl_regions = []
    for _ in range(draw(st.integers(0, 3))):
        cursor += draw(st.integers(0, 4)) * 256 * MiB
        size = draw(st.integers(1, 64)) * 256 * MiB
        decoder = f"decoder{draw(st.integers(0, 3))}.{draw(st.integers(0, 3))}"
        cxl_regions.append(
            CxlRegionConfig(cursor, size, draw(target), decoder, draw(adist), draw(numa_node))
        )
        cursor += size
    hmems = []
    for _ in range(draw(st.integers(0, 3))):
        cursor += draw(st.integers(0, 64)) * 2 * MiB
        size = draw(st.integers(1, 4096)) * 2 * MiB
        hmems.append(HmemConfig(cursor, size, draw(target), draw(adist), draw(numa_node)))
        cursor += size
    pmems = []
    first_free_region = len(cxl_regions) + len(hmems)
    namespaces = draw(
        st.lists(st.tuples(st.integers(first_free_region, first_free_region + 3),
                           st.integers(0, 3)), max_size=3, unique=True)
    )  # fmt: skip
    for region, dev in namespaces:
        align = draw(st.sampled_from([PAGE, 2 * MiB, GiB]))
        cursor = round_up(cursor, align) + draw(st.integers(0, 2)) * align
        reserve = draw(st.integers(0, 3)) * align
        size = reserve + draw(st.integers(1, 8)) * align
        pmems.append(
            PmemConfig(f"namespace{region}.{dev}", cursor, size, draw(target), reserve, align,
                       draw(adist), draw(numa_node))
        )  # fmt: skip
        cursor += size

    needed = sorted(set(targets))
    possible = None
    if set(extra_nodes) or draw(st.booleans()):
        possible = draw(st.permutations(needed + draw(st.lists(st.integers(41, 60), max_size=2,
                                                              unique=True))))  # fmt: skip
    all_possible = sorted(set(possible)) if possible is not None else sorted(ids)
    distance = st.integers(11, 255)
    shape = draw(st.sampled_from(["none", "matrix", "pairs"]))
    distances: dict[int, dict[int, int]] = {}
    if shape == "matrix":
        distances = {
            a: {b: 10 if a == b else draw(distance) for b in all_possible} for a in all_possible
        }
    elif shape == "pairs":
        for a in draw(st.lists(st.sampled_from(all_possible), max_size=4, unique=True)):
            row = draw(st.lists(st.sampled_from(all_possible), max_size=4, unique=True))
            distances[a] = {b: 10 if a == b else draw(distance) for b in row}

    config = BootConfig(
        nodes=nodes,
        possible_nodes=list(possible) if possible is not None else None,
        distances=distances,
        block_size=block_size,
        page_size=PAGE,
        struct_page_size=draw(st.sampled_from([56, 64, 72, 80])),
        memmap_on_memory=draw(st.sampled_from(["N", "Y", "force"])),
        online_policy=draw(st.sampled_from(["contig-zones", "auto-movable"])),
        auto_movable_ratio=draw(st.integers(0, 2**32 - 1)),
        auto_movable_numa_aware=draw(st.booleans()),
        auto_online_blocks=draw(st.sampled_from(["offline", "online", "online_kernel",
                                                  "online_movable"])),
        movable_node=draw(st.booleans()),
        kernel_profile=draw(st.sampled_from([*PROFILES, "6.10", "6.17"])),
        probe=draw(st.booleans()),
        max_physmem_bits=draw(st.integers(46, 64)),
        boot_used_percent=draw(st.integers(0, 100)),
        boot_unmovable=draw(st.booleans()),
        notifier_error_inject=draw(st.booleans()),
        dax_major=draw(st.integers(1, 4095)),
        dax_drivers_autoprobe=draw(st.booleans()),
        kmem_loaded=draw(st.booleans()),
        device_dax_loaded=draw(st.booleans()),
        dax_hmem_region_idle=draw(st.booleans()),
        cxl_regions=cxl_regions,
        hmem=hmems,
        pmem=pmems,
    )  # fmt: skip
    validate_config(config)
    return config


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(boot_configs())
def test_random_configs_round_trip_through_dump_and_load(config: BootConfig) -> None:
    text = dump_topology(config)
    loaded = load_topology(text=text)
    assert loaded == config
    assert dump_topology(loaded) == text


def test_round_trip_preserves_every_field() -> None:
    # Guard against a BootConfig field that dump_topology forgets: change each scalar field
    # away from its default and check that it survives.
    base = load_topology(text=topo())
    changes = {
        "possible_nodes": [0, 5], "block_size": GiB, "page_size": 16384, "struct_page_size": 72,
        "memmap_on_memory": "force", "online_policy": "auto-movable", "auto_movable_ratio": 7,
        "auto_movable_numa_aware": False, "auto_online_blocks": "online_movable",
        "movable_node": True, "kernel_profile": "6.8", "arch": "s390x", "cxl_root": "cxl_acpi.0",
        "probe": True, "max_physmem_bits": 46,
        "boot_used_percent": 0, "boot_unmovable": False, "notifier_error_inject": False,
        "cmdline": "BOOT_IMAGE=/boot/vmlinuz root=/dev/vda1 ro",
        "dax_major": 251, "dax_drivers_autoprobe": False, "kmem_loaded": False,
        "device_dax_loaded": False, "dax_hmem_region_idle": True,
        "distances": {0: {5: 30}},
        "cxl_regions": [CxlRegionConfig(64 * GiB, GiB, 5, "decoder1.2", 1000, 0)],
        "hmem": [HmemConfig(80 * GiB, GiB, 5, 2000, 0)],
        "pmem": [PmemConfig("namespace9.3", 96 * GiB, 2 * GiB, 5, GiB, GiB, 3000, 0)],
        "cxl_major": 250,
        "cxl_windows": [CxlWindowConfig(128 * GiB, 2 * GiB, 5, [3, 1], 1024, False, True, True, 7)],
        "cxl_memdevs": [CxlMemdevConfig(3, GiB, GiB, 0xABC, 0, "fw 2")],
    }  # fmt: skip
    covered = {f.name for f in dataclasses.fields(BootConfig)} - {"nodes"}
    assert covered == set(changes)
    for name, value in changes.items():
        config = dataclasses.replace(base, **{name: value})
        if name != "possible_nodes" and isinstance(value, (list, dict)):
            config.possible_nodes = [0, 5]
        if name == "page_size":
            config.arch = "arm64"  # x86_64 has 4K pages only
        assert load_topology(text=dump_topology(config)) == config, name


def test_producer_driver_override_round_trips_and_is_validated():
    text = default_topology_text().replace("target_node = 1\n", 'target_node = 1\ndriver = "device_dax"\n', 1)
    config = load_topology(text=text)
    assert config.cxl_regions[0].driver == "device_dax"
    assert load_topology(text=dump_topology(config)) == config
    with pytest.raises(ConfigError) as info:
        load_topology(text=text.replace('"device_dax"', '"nvme"'))
    assert info.value.key == "cxl_region[0].driver"


@pytest.mark.parametrize("value", ["[" * 10_000 + "]" * 10_000, "{a=" * 3_000 + "1" + "}" * 3_000])
def test_deeply_nested_toml_is_a_config_error_not_a_recursion_error(value: str) -> None:
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_topology(text=f"x = {value}\n")


_KEYS = ["node", "kernel", "distances", "dax", "cxl_region", "hmem", "pmem", "id", "cpus", "memory", "start", "size",
         "target_node", "block_size", "memmap_on_memory", "0", "1", "driver", "decoder", "namespace", "align"]
_TOML_VALUES = st.recursive(
    st.booleans() | st.integers(-(2**70), 2**70) | st.floats()
    | st.sampled_from(["0-1", "1G", "0x0-0x3fffffff", "x", ""]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(_KEYS), inner, max_size=4),
    max_leaves=15)


@settings(max_examples=300 if not os.environ.get("FAKESYSFS_FUZZ") else 5000, deadline=None)
@given(data=st.dictionaries(st.sampled_from(_KEYS), _TOML_VALUES, max_size=5))
def test_type_confused_topologies_are_config_errors_never_tracebacks(data: dict) -> None:
    """What tomllib can hand over, shaped at random: a ConfigError naming a key, or a config."""
    from fakesysfs.topology import _parse

    try:
        validate_config(_parse(data))
    except ConfigError as exc:
        assert "\n" not in str(exc)


def test_docs_key_tables_are_the_ones_the_declarations_generate() -> None:
    """docs/topology.md's key tables are ``schema_markdown()`` verbatim: a key added, renamed or
    re-documented in fakesysfs/topology.py without regenerating the docs fails here."""
    from pathlib import Path

    from fakesysfs.topology import schema_markdown

    text = (Path(__file__).resolve().parent.parent / "docs" / "topology.md").read_text("utf-8")
    begin = "<!-- generated by fakesysfs.topology.schema_markdown(): do not edit -->\n\n"
    end = "<!-- end of generated tables -->\n"
    assert begin in text and end in text
    committed = text.split(begin, 1)[1].split(end, 1)[0]
    assert committed == schema_markdown(), (
        "docs/topology.md is stale; regenerate the part between its markers with "
        "python -c 'from fakesysfs.topology import schema_markdown; print(schema_markdown(), end=\"\")'"
    )


def test_every_config_field_has_one_declared_key() -> None:
    """Each field of the boot config dataclasses is filled by exactly one declared key (the
    lists of entries and the free-form [distances] table are the sections themselves)."""
    from fakesysfs.topology import SECTIONS

    declared: dict[type, list[str]] = {}
    for section in SECTIONS:
        declared.setdefault(section.cls, []).extend(key.field for key in section.keys)
        if section.field is not None:
            declared.setdefault(BootConfig, []).append(section.field)
    declared[BootConfig].append("distances")
    for cls, fields in declared.items():
        assert sorted(fields) == sorted(f.name for f in dataclasses.fields(cls)), cls.__name__


@pytest.mark.parametrize("value", ["lots", "1.5G", -1, True, 1.5])
def test_harness_reads_sizes_as_the_topology_does(value: object) -> None:
    """A size the control/debugfs ops refuse is refused with the topology's own words (one
    converter, ``size_value``, for a ``[[cxl_region]] size`` and ``add_cxl_region size=``)."""
    from fakesysfs import HarnessError, Simulation

    with pytest.raises(ConfigError) as topo_error:
        load_topology(text=NODE0 + f"[[cxl_region]]\nstart = 0x100000000\nsize = {json.dumps(value)}\n"
                      "target_node = 0\n")
    with Simulation() as sim, pytest.raises(HarnessError) as harness_error:
        sim.harness.normalize({"op": "add_cxl_region", "size": value, "target_node": 0})
    assert str(harness_error.value) == topo_error.value.why.join(["size: ", ""])
