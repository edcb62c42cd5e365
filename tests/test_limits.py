"""Limits (issue 8): a topology too large for the machine, or with absurd values, is refused
at load with a ``ConfigError`` naming the key; nothing else ever escapes ``load_topology``
and a topology that loads also boots.

Besides the table of absurd values, a hypothesis test mutates the default topology (values
of the wrong type, out of range, huge, negative, odd strings, extra keys, missing keys) and
checks that outcome for every mutant. ``FAKESYSFS_FUZZ=long`` tries many more.
"""

from __future__ import annotations

import copy
import errno
import json
import math
import re
import tomllib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stress import LONG, report

from fakesysfs import config, topology
from fakesysfs.engine import Kernel
from fakesysfs.errors import ConfigError, KernelError
from fakesysfs.sysfs import build_tree
from fakesysfs.testing.invariants import check_all

BASE = tomllib.loads(topology.default_topology_text())


# -- a TOML writer for any structure ------------------------------------------------------------
def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for everything json escapes
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def toml_text(doc: dict[str, Any]) -> str:
    return "".join(f"{json.dumps(str(k))} = {toml_value(v)}\n" for k, v in doc.items())


def test_the_writer_round_trips_the_default_topology() -> None:
    assert tomllib.loads(toml_text(BASE)) == BASE
    assert topology.load_topology(text=toml_text(BASE)) == topology.load_topology()


# -- absurd values ------------------------------------------------------------------------------
def with_changes(**changes: Any) -> str:
    """The default topology with ``section__key`` (``__`` for the dots; a number is a list
    index) replaced, or deleted with ``...``."""
    doc = json.loads(json.dumps(BASE))
    for dotted, value in changes.items():
        parts = [int(p) if p.isdigit() else p for p in dotted.split("__")]
        target = doc
        for part in parts[:-1]:
            target = target[part]
        if value is ...:
            del target[parts[-1]]
        else:
            target[parts[-1]] = value
    return toml_text(doc)


ABSURD = [
    # block size
    ({"kernel__block_size": "192M"}, "kernel.block_size", "power of two"),
    ({"kernel__block_size": 0}, "kernel.block_size", "power of two"),
    ({"kernel__block_size": -134217728}, "kernel.block_size", "negative"),
    ({"kernel__block_size": "64M"}, "kernel.block_size", "section size"),
    ({"kernel__block_size": "0x8000001"}, "kernel.block_size", "power of two"),
    ({"kernel__block_size": "1.5G"}, "kernel.block_size", "cannot parse"),
    ({"kernel__page_size": 1000}, "kernel.page_size", "power of two"),
    ({"kernel__max_physmem_bits": 70}, "kernel.max_physmem_bits", "32 to 64"),
    ({"kernel__block_size": "16E"}, "kernel.block_size", "exceeds"),
    # overlapping ranges
    ({"cxl_region__0__start": "0x100000000"}, "cxl_region[0]", "overlaps node[0].memory"),
    ({"hmem__0__start": 0x1050000000 + (1 << 30)}, "hmem[0]", "overlaps cxl_region[0]"),
    ({"pmem__0__start": "0x2000000000"}, "pmem[0]", "overlaps hmem[0]"),
    ({"node__0__memory": ["0x100000-0xbfffffff", "0x80000000-0x13fffffff"]}, "node[0].memory[1]", "overlaps"),
    # unknown nodes
    ({"cxl_region__0__target_node": 7}, "cxl_region[0].target_node", "not possible"),
    ({"hmem__0__target_node": -1}, "hmem[0].target_node", "not possible"),
    ({"pmem__0__numa_node": 3}, "pmem[0].numa_node", "not online at boot"),
    ({"kernel__possible_nodes": "0-1"}, "distances.matrix", "one per possible node: 0-1"),
    ({"kernel__possible_nodes": "0-1", "distances": ...}, "hmem[0].target_node", "not possible"),
    ({"kernel__possible_nodes": "0-5000"}, "kernel.possible_nodes", "out of range"),
    ({"node__0__id": 9}, "node[0].id", "not in kernel.possible_nodes"),
    ({"distances__matrix": [[10, 20], [20, 10]]}, "distances.matrix", "rows"),
    ({"node__0__cpus": "0-99999"}, "node[0].cpus", "out of range"),
    # too much for the machine, whatever it has
    ({"cxl_region__0__start": 1 << 56, "cxl_region__0__size": "1P"}, "kernel.block_size", "2**21"),
    # sizes and types
    ({"cxl_region__0__size": "100M"}, "cxl_region[0].size", "256 MiB"),
    ({"cxl_region__0__size": 0}, "cxl_region[0].size", "empty"),
    ({"hmem__0__size": "3M"}, "hmem[0].size", "2 MiB"),
    ({"pmem__0__align": "4M"}, "pmem[0].align", "supported alignment"),
    ({"pmem__0__reserve": "8G"}, "pmem[0].reserve", "smaller than size"),
    ({"kernel__auto_movable_ratio": 2**40}, "kernel.auto_movable_ratio", "0 to 4294967295"),
    ({"kernel__profile": "5.10"}, "kernel.profile", "unknown profile"),
    ({"kernel__boot_used_percent": 101}, "kernel.boot_used_percent", "0 to 100"),
    ({"dax__major": 0}, "dax.major", "1 to 4095"),
    ({"node__0__memory": "lots"}, "node[0].memory", "array of ranges"),
    ({"cxl_region__0__start": 1.5}, "cxl_region[0].start", "integer"),
    ({"cxl_region__0__start": ...}, "cxl_region[0].start", "missing required key"),
    ({"kernel__blocksize": "128M"}, "kernel.blocksize", "did you mean 'block_size'"),
]


@pytest.mark.parametrize(("changes", "key", "fragment"), ABSURD, ids=[a[1] + ":" + a[2] for a in ABSURD])
def test_absurd_values_are_refused_naming_the_key(changes: dict, key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as exc:
        topology.load_topology(text=with_changes(**changes))
    assert exc.value.key == key, str(exc.value)
    assert fragment in str(exc.value), str(exc.value)


@pytest.mark.parametrize("available_mib", [64, 512])
def test_a_topology_too_large_for_this_machine_is_refused(monkeypatch, available_mib: int) -> None:
    """512 Ki blocks need ~512 MiB: refused on a machine with less than 1 GiB available."""
    monkeypatch.setattr(config, "available_memory", lambda: available_mib << 20)
    text = with_changes(kernel__memmap_on_memory="Y", cxl_region__0__start=1 << 56, cxl_region__0__size="64T")
    with pytest.raises(ConfigError) as exc:
        topology.load_topology(text=text)
    assert exc.value.key == "kernel.block_size"
    message = str(exc.value)
    assert "cxl_region[0]" in message and f"{available_mib} MiB available" in message, message
    monkeypatch.setattr(config, "available_memory", lambda: 4 << 30)
    topology.load_topology(text=text)  # fits a machine with 4 GiB available


def test_the_embedded_default_fits_any_machine(monkeypatch) -> None:
    monkeypatch.setattr(config, "available_memory", lambda: 8 << 20)
    topology.load_topology()  # 256 blocks: 256 KiB


# -- mutants of the default topology ------------------------------------------------------------
def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


PATHS = _paths(BASE)
ODD_VALUES = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([0, 1, -1, 2**31, 2**32, 2**52, 2**63 - 1, 4096, 1 << 27, 3 << 27, 0x1050000000]),
    st.sampled_from(["", "0", "-1", "0x", "128M", "192M", "16E", "1P", "0-3", "3-0", "0,0", "0-1023", "x", "\n",
                     "0x100000-0xbfffffff", "0x0-0x0", "6.18", "6.7", "Y", "force", "kmem", "device_dax",
                     "namespace0.0", "decoder00.0", "99999999999999999999999", "1K", "nan"]),
    st.text(max_size=12),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.integers(-5, 5000), max_size=4),
    st.just({}),
    st.just([{}]),
    st.dictionaries(st.sampled_from(["start", "size", "id", "x"]), st.integers(-1, 1 << 40), max_size=3),
)
MUTATION = st.tuples(st.sampled_from(PATHS), st.one_of(ODD_VALUES, st.just(...)), st.booleans())


def _apply(doc: dict, path: tuple, value: Any, new_key: bool) -> None:
    value = copy.deepcopy(value)  # st.just({}) hands out one object: never link it twice
    target: Any = doc
    for part in path[:-1]:
        target = target[part]
    last = path[-1]
    if new_key and isinstance(target, dict):
        target[f"{last}_x"] = value if value is not ... else 1  # an unknown key
    elif value is ...:
        if isinstance(target, dict):
            target.pop(last, None)
        elif len(target) > 1:
            target.pop(last)
    else:
        target[last] = value


def _spanned_blocks(cfg) -> int:
    ranges = [(r.start, r.end) for n in cfg.nodes for r in n.memory]
    ranges += [(p.start, p.start + p.size) for p in (*cfg.cxl_regions, *cfg.hmem, *cfg.pmem)]
    return sum(-(-(end - start) // cfg.block_size) for start, end in ranges)


@settings(max_examples=3000 if LONG else 300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(mutations=st.lists(MUTATION, min_size=1, max_size=4))
def test_mutants_of_the_default_topology_load_and_boot_or_name_their_key(mutations) -> None:
    doc = json.loads(json.dumps(BASE))
    for path, value, new_key in mutations:
        try:
            _apply(doc, path, value, new_key)
        except (KeyError, IndexError, TypeError, AttributeError):
            pass  # an earlier mutation replaced the container
    text = toml_text(doc)
    try:
        config = topology.load_topology(text=text)
    except ConfigError as exc:
        key = exc.key
        assert key == "<text>" or re.fullmatch(r"[a-z_]+(\[\d+\])?(\.[a-z_0-9A-Z]+(\[\d+\])?)*(\[\d+\])*", key), key
        report("limits_mutants", tried=1, refused=1)
        return
    # It loaded: it must boot (or refuse a driver override naming its key), and be consistent.
    if _spanned_blocks(config) > 20000:
        report("limits_mutants", tried=1, accepted_large=1)
        return  # valid but slow to boot in a unit test
    try:
        k = Kernel(config)
    except ConfigError as exc:
        assert re.fullmatch(r"(cxl_region|hmem|pmem)\[\d+\]\.driver", exc.key), exc
        report("limits_mutants", tried=1, refused=1)
        return
    check_all(k, build_tree(k))
    report("limits_mutants", tried=1, booted=1)


def test_a_hot_added_range_too_large_for_the_machine_is_refused(monkeypatch) -> None:
    """The same budget holds at run time: ``hotplug/add_cxl_region`` (or ``fakesysfs ctl
    add-cxl-region``) of 16 TiB would make 128 Ki blocks, which this machine is told it
    cannot hold; the write fails with ENOSPC and nothing was added."""
    from fakesysfs.machine import boot_file

    k, tree, _ = boot_file(None)  # with the harness
    monkeypatch.setattr(config, "available_memory", lambda: 256 << 20)
    before = (set(k.blocks), set(k.dax_devices))
    with pytest.raises(KernelError) as exc:
        tree.echo("/kernel/debug/fakesysfs/hotplug/add_cxl_region", "size=16T node=1 start=0x100000000000")
    assert exc.value.errno == errno.ENOSPC
    assert "memory blocks" in k.kmsg[-1] and "256 MiB available" in k.kmsg[-1], k.kmsg[-1]
    assert (set(k.blocks), set(k.dax_devices)) == before
    tree.echo("/kernel/debug/fakesysfs/hotplug/add_cxl_region", "size=16G node=1")  # a small one still fits
    assert len(k.blocks) == len(before[0]) + 128
    check_all(k, tree)
