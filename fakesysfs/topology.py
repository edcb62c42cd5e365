"""Topology files: the firmware and kernel command line of the simulated machine, as TOML.

`load_topology(path)` (or `load_topology(text=...)`) reads TOML into a validated `BootConfig`;
`load_topology()` returns the embedded default, `default_topology.toml` (a commented CXL host;
`default_topology_text()` gives its text). `dump_topology(config)` writes TOML that loads back
to an equal config. `validate_config(config)` runs the same checks on a config built in code.
Every problem raises `ConfigError` naming the key path and the reason, e.g.
`node[1].memory[0]: ... overlaps node[0].memory[0] (...)` or `cxl_region[0].size: ...`.

## Topology file schema

Sizes and addresses are TOML integers (`0x1050000000` is one), hex or decimal strings, or size
strings with a binary suffix (`"128M"`, `"16G"`, `"4GiB"`; K M G T P E). Id lists are sysfs
range lists (`"0-3"`, `"0,2-3"`, `""`) or integer arrays (kept in the order given). Unknown
keys, wrong types and missing required keys are errors.

`[kernel]` (all optional):

| key | value | default |
|---|---|---|
| `profile` | `"6.8"`, `"6.9-6.16"`, `"6.18"`, or `"6.N"` (8 <= N <= 18) | `"6.18"` |
| `block_size` | power of two >= 128 MiB | `"128M"` |
| `page_size` | power of two, 4 KiB to 64 KiB | `4096` |
| `struct_page_size` | multiple of 8, 8 to 256 | `64` |
| `memmap_on_memory` | `"N"`, `"Y"`, `"force"` (also booleans, y/n, 1/0, on/off) | `"N"` |
| `online_policy` | `"contig-zones"` or `"auto-movable"` | `"contig-zones"` |
| `auto_movable_ratio` | 0 to 2**32-1 | `301` |
| `auto_movable_numa_aware` | boolean | `true` |
| `auto_online_blocks` | `offline`, `online`, `online_kernel`, `online_movable` | `"offline"` |
| `movable_node`, `probe` | booleans (`movable_node` flag; `memory/probe` exists) | `false` |
| `max_physmem_bits` | 32 to 64; boot RAM must end at or below 2**bits | `52` |
| `boot_used_percent` | 0 to 100: share of boot kernel-zone memory in use | `3` |
| `boot_unmovable` | boolean: that use is unmovable | `true` |
| `notifier_error_inject` | boolean: the fault-injection hooks exist | `true` |
| `possible_nodes` | id list (`node/possible`), ids below 1024 | the `[[node]]` ids |

`[[node]]`, one per node with boot resources (at least one node needs boot RAM):
- `id` (required): unique, below 1024, in `possible_nodes`.
- `cpus`: id list, ids below 8192; each CPU in one node only.
- `memory`: boot RAM, an array of inclusive range strings `"0x100000-0xbfffffff"` or tables
  `{ start = ..., size = ... }`; page aligned, non-empty.
- `adistance`: abstract distance for memory tiering (default 576, DRAM).

Nodes with CPUs or boot RAM are online at boot; the other possible nodes come online when
memory is first added for them. Two nodes' boot RAM may not share a memory block.

`[distances]` (SLIT; missing pairs use the reverse pair, then 10 local / 20 remote): either
`matrix = [[10, 20], [20, 10]]`, one row and column per possible node in ascending id order,
or per-pair entries `0 = { 1 = 20, 2 = 22 }` (distance 0->1, 0->2). Local is 10, remote 11-255.

`[dax]` (all optional): `major` (char major of `/dev/daxX.Y`, default 252), `drivers_autoprobe`
(default true), `kmem` and `device_dax` (drivers loaded, default true), `hmem_region_idle`
(`dax_hmem.region_idle`, default false).

Producers, any number of each:
- `[[cxl_region]]`: `start`, `size` (required; multiples of 256 MiB), `target_node`
  (required), `decoder` (default `"decoder0.0"`), `adistance` (default 2880), `numa_node`.
- `[[hmem]]` (EFI soft-reserved range): `start`, `size` (required; multiples of 2 MiB),
  `target_node` (required), `adistance`, `numa_node`.
- `[[pmem]]` (namespace in devdax mode): `namespace` (`"namespaceR.S"`), `start`, `size`,
  `target_node` (all required), `reserve` (metadata at the start, default 2 MiB), `align`
  (page size, 2 MiB or 1 GiB; default 2 MiB), `adistance`, `numa_node`. The data area
  `[start + reserve, start + size)` must start and end on a multiple of `align`.

`target_node` must be a possible node; `numa_node` (the device's NUMA affinity, default the
nearest node with CPUs) must be online at boot. No two ranges (boot RAM or producer windows)
may overlap, and all ranges together may span at most 2**21 memory blocks, and no more than
fit in half of the memory this machine has available (about 1 KiB per block). Producer windows
may lie above 2**max_physmem_bits: adding that memory then fails as in the kernel.

Device names: CXL regions, hmem ranges and pmem regions share one kernel id allocator
(`memregion_alloc`, R-PATH-01). The simulator numbers `[[cxl_region]]` entries 0..n-1 in
file order (`regionN`, `daxN.0`), then `[[hmem]]` entries n, n+1, ... (`hmem.N`, `daxN.0`).
A `[[pmem]]` entry is named by its namespace: `namespaceR.S` gives `daxR.S` (R-PATH-02).
Every `daxR.S` must be unique, and R may not be a CXL or hmem id (the dynamic devices
`daxR.1`, `daxR.2`, ... of that region would collide).
"""

from __future__ import annotations

import difflib
import itertools
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from typing import Any, NoReturn, TypeVar

from .config import (
    _BINARY_UNITS,
    PROFILES,
    BootConfig,
    CxlRegionConfig,
    GiB,
    HmemConfig,
    MemRange,
    MiB,
    NodeConfig,
    PmemConfig,
    _human,
    _ranges,
    block_budget_problem,
    profile_version,
)
from .errors import ConfigError

__all__ = [
    "DEFAULT_TOPOLOGY_FILE",
    "default_topology_text",
    "dump_topology",
    "load_topology",
    "parse_size",
    "read_topology_file",
    "validate_config",
]

#: Package data file holding the embedded default topology.
DEFAULT_TOPOLOGY_FILE = "default_topology.toml"
#: The largest topology file read (the embedded default is ~10 KiB; a machine of
#: MAX_NUMNODES nodes with a full distance matrix is ~4 MiB).
MAX_TOPOLOGY_BYTES = 16 * MiB

#: Section size on x86_64 (SECTION_SIZE_BITS = 27); the smallest memory block.
MIN_BLOCK_SIZE = 128 * MiB
#: 1 << CONFIG_NODES_SHIFT (10 on x86_64 distribution kernels).
MAX_NUMNODES = 1 << 10
#: CONFIG_NR_CPUS maximum on x86_64.
NR_CPUS = 8192
#: CXL HDM decoder granularity.
CXL_GRANULE = 256 * MiB
#: alloc_dax_region() alignment for hmem and CXL (PMD_SIZE); misaligned ranges get no region.
DAX_REGION_ALIGN = 2 * MiB
#: SLIT: LOCAL_DISTANCE, and the largest u8 entry.
LOCAL_DISTANCE = 10
MAX_DISTANCE = 255

ONLINE_POLICIES = ("contig-zones", "auto-movable")
ONLINE_TYPES = ("offline", "online", "online_kernel", "online_movable")
MEMMAP_MODES = ("N", "Y", "force")
_MEMMAP_WORDS = {
    "y": "Y", "yes": "Y", "1": "Y", "on": "Y", "true": "Y",
    "n": "N", "no": "N", "0": "N", "off": "N", "false": "N",
    "force": "force",
}  # fmt: skip

_SIZE_RE = re.compile(r"([0-9]+)\s*([KMGTPE])(?:i?B)?", re.IGNORECASE)
_NUMBER_RE = re.compile(r"0[xX][0-9a-fA-F]+|[0-9]+")
_RANGE_RE = re.compile(r"\s*(0[xX][0-9a-fA-F]+|[0-9]+)\s*-\s*(0[xX][0-9a-fA-F]+|[0-9]+)\s*")
_DECODER_RE = re.compile(r"decoder([0-9]+)\.([0-9]+)")
_NAMESPACE_RE = re.compile(r"namespace([0-9]+)\.([0-9]+)")
_UNITS = {"K": 10, "M": 20, "G": 30, "T": 40, "P": 50, "E": 60}

_T = TypeVar("_T")
_MISSING: Any = object()


# ------------------------------------------------------------------------------------------
# Public entry points
# ------------------------------------------------------------------------------------------


def default_topology_text() -> str:
    """The embedded default topology (a commented TOML document)."""
    return resources.files(__package__).joinpath(DEFAULT_TOPOLOGY_FILE).read_text("utf-8")


def read_topology_file(source: str | os.PathLike[str]) -> str:
    """The text of a topology file: a regular file of at most ``MAX_TOPOLOGY_BYTES`` (a FIFO
    or device is never read: fakesysfs/safefile.py ``read_regular``), UTF-8. ConfigError
    for text that is not UTF-8; OSError (naming the file) if it cannot be read."""
    from .safefile import read_regular

    name = os.fspath(source)
    raw = read_regular(name, MAX_TOPOLOGY_BYTES, "a topology")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(name, f"not UTF-8 text: {exc}") from None


def load_topology(
    source: str | os.PathLike[str] | None = None, *, text: str | None = None, name: str | None = None
) -> BootConfig:
    """Read and validate a topology.

    ``source`` is a file path (read by ``read_topology_file``); ``text`` is TOML text
    (``name``: the file it came from, for messages); with neither, the embedded default is
    loaded. Raises ConfigError for anything the schema rejects (OSError if the file cannot
    be read).
    """
    if source is not None and text is not None:
        raise TypeError("load_topology() takes a path or text=, not both")
    if source is not None:
        name = os.fspath(source)
        text = read_topology_file(name)
    elif text is None:
        name = DEFAULT_TOPOLOGY_FILE
        text = default_topology_text()
    elif name is None:
        name = "<text>"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(name, f"not valid TOML: {exc}") from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise ConfigError(name, "arrays or inline tables nested too deeply to be a topology") from None
    config = _parse(data)
    validate_config(config)
    return config


def validate_config(config: BootConfig) -> None:
    """Check a BootConfig the way ``load_topology`` does; raise ConfigError naming the key.

    Key paths refer to the TOML layout (``node[i]`` is ``config.nodes[i]``, and so on), so
    the checks can run on configs built in code too.
    """
    _check_kernel(config)
    possible = _check_possible(config)
    online = _check_nodes(config, possible)
    _check_producers(config, possible, online)
    _check_ranges(config)
    _check_dax_names(config)
    _check_distances(config, possible)


def dump_topology(config: BootConfig) -> str:
    """TOML text for ``config`` that ``load_topology(text=...)`` turns back into an equal config.

    The config is validated first (ConfigError if it could not be loaded back).
    """
    validate_config(config)
    out: list[str] = ["# fakesysfs topology (written by fakesysfs.topology.dump_topology)", ""]
    out += [
        "[kernel]",
        f"profile = {_toml_str(config.kernel_profile)}",
        f"block_size = {_fmt_size(config.block_size)}",
        f"page_size = {config.page_size}",
        f"struct_page_size = {config.struct_page_size}",
        f"memmap_on_memory = {_toml_str(config.memmap_on_memory)}",
        f"online_policy = {_toml_str(config.online_policy)}",
        f"auto_movable_ratio = {config.auto_movable_ratio}",
        f"auto_movable_numa_aware = {_toml_bool(config.auto_movable_numa_aware)}",
        f"auto_online_blocks = {_toml_str(config.auto_online_blocks)}",
        f"movable_node = {_toml_bool(config.movable_node)}",
        f"probe = {_toml_bool(config.probe)}",
        f"max_physmem_bits = {config.max_physmem_bits}",
        f"boot_used_percent = {config.boot_used_percent}",
        f"boot_unmovable = {_toml_bool(config.boot_unmovable)}",
        f"notifier_error_inject = {_toml_bool(config.notifier_error_inject)}",
    ]
    if config.possible_nodes is not None:
        out.append(f"possible_nodes = {_fmt_id_list(config.possible_nodes)}")
    out += [
        "",
        "[dax]",
        f"major = {config.dax_major}",
        f"drivers_autoprobe = {_toml_bool(config.dax_drivers_autoprobe)}",
        f"kmem = {_toml_bool(config.kmem_loaded)}",
        f"device_dax = {_toml_bool(config.device_dax_loaded)}",
        f"hmem_region_idle = {_toml_bool(config.dax_hmem_region_idle)}",
    ]
    for node in config.nodes:
        out += ["", "[[node]]", f"id = {node.id}", f"cpus = {_fmt_id_list(node.cpus)}"]
        ranges = [_toml_str(f"{r.start:#x}-{r.end - 1:#x}") for r in node.memory]
        out += _fmt_array("memory", ranges)
        out += _fmt_optional("adistance", node.adistance)
    if config.distances:
        out += ["", "[distances]"]
        out += _fmt_distances(config)
    for cxl in config.cxl_regions:
        out += ["", "[[cxl_region]]", f"start = {cxl.start:#x}", f"size = {_fmt_size(cxl.size)}"]
        out += [f"target_node = {cxl.target_node}", f"decoder = {_toml_str(cxl.decoder)}"]
        out += _fmt_optional("adistance", cxl.adistance)
        out += _fmt_optional("numa_node", cxl.numa_node)
        if cxl.driver is not None:
            out.append(f"driver = {_toml_str(cxl.driver)}")
    for hmem in config.hmem:
        out += ["", "[[hmem]]", f"start = {hmem.start:#x}", f"size = {_fmt_size(hmem.size)}"]
        out.append(f"target_node = {hmem.target_node}")
        out += _fmt_optional("adistance", hmem.adistance)
        out += _fmt_optional("numa_node", hmem.numa_node)
        if hmem.driver is not None:
            out.append(f"driver = {_toml_str(hmem.driver)}")
    for pmem in config.pmem:
        out += [
            "",
            "[[pmem]]",
            f"namespace = {_toml_str(pmem.namespace)}",
            f"start = {pmem.start:#x}",
            f"size = {_fmt_size(pmem.size)}",
            f"target_node = {pmem.target_node}",
            f"reserve = {_fmt_size(pmem.reserve)}",
            f"align = {_fmt_size(pmem.align)}",
        ]
        out += _fmt_optional("adistance", pmem.adistance)
        out += _fmt_optional("numa_node", pmem.numa_node)
        if pmem.driver is not None:
            out.append(f"driver = {_toml_str(pmem.driver)}")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------
# Parsing: TOML data -> BootConfig (types and syntax; semantics are in validate_config)
# ------------------------------------------------------------------------------------------

_TOP_KEYS = ("kernel", "node", "distances", "dax", "cxl_region", "hmem", "pmem")
_KERNEL_KEYS = (
    "profile", "block_size", "page_size", "struct_page_size", "memmap_on_memory",
    "online_policy", "auto_movable_ratio", "auto_movable_numa_aware", "auto_online_blocks",
    "movable_node", "probe", "max_physmem_bits", "boot_used_percent", "boot_unmovable",
    "notifier_error_inject", "possible_nodes",
)  # fmt: skip
_NODE_KEYS = ("id", "cpus", "memory", "adistance")
_DAX_KEYS = ("major", "drivers_autoprobe", "kmem", "device_dax", "hmem_region_idle")
_CXL_KEYS = ("start", "size", "target_node", "decoder", "adistance", "numa_node", "driver")
_HMEM_KEYS = ("start", "size", "target_node", "adistance", "numa_node", "driver")
_PMEM_KEYS = (
    "namespace", "start", "size", "target_node", "reserve", "align", "adistance", "numa_node",
    "driver",
)  # fmt: skip


class _Table:
    """A TOML table being read: knows its key path, rejects unknown keys up front."""

    __slots__ = ("_data", "_path")

    def __init__(self, data: object, path: str, allowed: Sequence[str], what: str = "a table"):
        if not isinstance(data, dict):
            _fail(path, f"expected {what}, got {_describe(data)}")
        for key in data:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = (
                    f"did you mean {close[0]!r}?"
                    if close
                    else f"expected one of {', '.join(allowed)}"
                )
                _fail(self._join(path, key), f"unknown key; {hint}")
        self._data: dict[str, Any] = data
        self._path = path

    @staticmethod
    def _join(path: str, key: str) -> str:
        return f"{path}.{key}" if path else key

    def path(self, key: str) -> str:
        return self._join(self._path, key)

    def get(self, key: str, conv: Callable[[Any, str], _T], default: _T = _MISSING) -> _T:
        if key not in self._data:
            if default is _MISSING:
                _fail(self.path(key), "missing required key")
            return default
        return conv(self._data[key], self.path(key))

    def has(self, key: str) -> bool:
        return key in self._data


def _parse(data: dict[str, Any]) -> BootConfig:
    top = _Table(data, "", _TOP_KEYS)
    config = BootConfig(nodes=[])
    if top.has("kernel"):
        _parse_kernel(_Table(data["kernel"], "kernel", _KERNEL_KEYS), config)
    if top.has("dax"):
        _parse_dax(_Table(data["dax"], "dax", _DAX_KEYS), config)
    config.nodes = [_parse_node(t) for t in _array_of_tables(data, "node", _NODE_KEYS)]
    config.cxl_regions = [
        _parse_cxl(t) for t in _array_of_tables(data, "cxl_region", _CXL_KEYS)
    ]
    config.hmem = [_parse_hmem(t) for t in _array_of_tables(data, "hmem", _HMEM_KEYS)]
    config.pmem = [_parse_pmem(t) for t in _array_of_tables(data, "pmem", _PMEM_KEYS)]
    if top.has("distances"):
        # The matrix form is indexed by the possible nodes, so it is read last.
        config.distances = _parse_distances(data["distances"], config)
    return config


def _array_of_tables(data: dict[str, Any], key: str, allowed: Sequence[str]) -> list[_Table]:
    value = data.get(key, [])
    if not isinstance(value, list):
        _fail(key, f"expected an array of tables ([[{key}]]), got {_describe(value)}")
    what = f"a table ([[{key}]])"
    return [_Table(item, f"{key}[{i}]", allowed, what) for i, item in enumerate(value)]


def _parse_kernel(t: _Table, c: BootConfig) -> None:
    c.kernel_profile = t.get("profile", _str, c.kernel_profile)
    c.block_size = t.get("block_size", _bytes, c.block_size)
    c.page_size = t.get("page_size", _bytes, c.page_size)
    c.struct_page_size = t.get("struct_page_size", _int, c.struct_page_size)
    c.memmap_on_memory = t.get("memmap_on_memory", _memmap_mode, c.memmap_on_memory)
    c.online_policy = t.get("online_policy", _str, c.online_policy)
    c.auto_movable_ratio = t.get("auto_movable_ratio", _int, c.auto_movable_ratio)
    c.auto_movable_numa_aware = t.get("auto_movable_numa_aware", _bool, c.auto_movable_numa_aware)
    c.auto_online_blocks = t.get("auto_online_blocks", _str, c.auto_online_blocks)
    c.movable_node = t.get("movable_node", _bool, c.movable_node)
    c.probe = t.get("probe", _bool, c.probe)
    c.max_physmem_bits = t.get("max_physmem_bits", _int, c.max_physmem_bits)
    c.boot_used_percent = t.get("boot_used_percent", _int, c.boot_used_percent)
    c.boot_unmovable = t.get("boot_unmovable", _bool, c.boot_unmovable)
    c.notifier_error_inject = t.get("notifier_error_inject", _bool, c.notifier_error_inject)
    c.possible_nodes = t.get("possible_nodes", _node_list, None)


def _parse_dax(t: _Table, c: BootConfig) -> None:
    c.dax_major = t.get("major", _int, c.dax_major)
    c.dax_drivers_autoprobe = t.get("drivers_autoprobe", _bool, c.dax_drivers_autoprobe)
    c.kmem_loaded = t.get("kmem", _bool, c.kmem_loaded)
    c.device_dax_loaded = t.get("device_dax", _bool, c.device_dax_loaded)
    c.dax_hmem_region_idle = t.get("hmem_region_idle", _bool, c.dax_hmem_region_idle)


def _parse_node(t: _Table) -> NodeConfig:
    return NodeConfig(
        id=t.get("id", _int),
        cpus=t.get("cpus", _cpu_list, []),
        memory=t.get("memory", _mem_ranges, []),
        adistance=t.get("adistance", _int, None),
    )


def _parse_cxl(t: _Table) -> CxlRegionConfig:
    return CxlRegionConfig(
        start=t.get("start", _bytes),
        size=t.get("size", _bytes),
        target_node=t.get("target_node", _int),
        decoder=t.get("decoder", _str, "decoder0.0"),
        adistance=t.get("adistance", _int, None),
        numa_node=t.get("numa_node", _int, None),
        driver=_driver(t),
    )


def _parse_hmem(t: _Table) -> HmemConfig:
    return HmemConfig(
        start=t.get("start", _bytes),
        size=t.get("size", _bytes),
        target_node=t.get("target_node", _int),
        adistance=t.get("adistance", _int, None),
        numa_node=t.get("numa_node", _int, None),
        driver=_driver(t),
    )


def _parse_pmem(t: _Table) -> PmemConfig:
    return PmemConfig(
        namespace=t.get("namespace", _str),
        start=t.get("start", _bytes),
        size=t.get("size", _bytes),
        target_node=t.get("target_node", _int),
        reserve=t.get("reserve", _bytes, 2 * MiB),
        align=t.get("align", _bytes, 2 * MiB),
        adistance=t.get("adistance", _int, None),
        numa_node=t.get("numa_node", _int, None),
        driver=_driver(t),
    )


def _driver(t: _Table) -> str | None:
    """``driver``: the dax driver the device ends boot bound to (default: the match)."""
    driver = t.get("driver", _str, None)
    if driver is not None and driver not in ("device_dax", "kmem"):
        _fail(t.path("driver"), f"expected \"device_dax\" or \"kmem\", got {driver!r}")
    return driver


def _parse_distances(value: object, config: BootConfig) -> dict[int, dict[int, int]]:
    if not isinstance(value, dict):
        _fail("distances", f"expected a table, got {_describe(value)}")
    if "matrix" in value:
        if len(value) > 1:
            other = next(k for k in value if k != "matrix")
            _fail(f"distances.{other}", "use either the matrix or per-pair entries, not both")
        return _parse_matrix(value["matrix"], config.possible())
    distances: dict[int, dict[int, int]] = {}
    for a_key, row in value.items():
        a = _node_key(a_key, f"distances.{a_key}")
        if not isinstance(row, dict):
            _fail(
                f"distances.{a_key}",
                f"expected a table of distances ({a_key} = {{ 1 = 20 }}) or matrix = [[...]], "
                f"got {_describe(row)}",
            )
        distances[a] = {
            _node_key(b_key, f"distances.{a_key}.{b_key}"): _int(d, f"distances.{a_key}.{b_key}")
            for b_key, d in row.items()
        }
    return distances


def _parse_matrix(value: object, possible: list[int]) -> dict[int, dict[int, int]]:
    n = len(possible)
    shape = f"{n} rows of {n} (one per possible node: {_fmt_ranges(possible)})"
    if not isinstance(value, list):
        _fail("distances.matrix", f"expected an array of arrays, got {_describe(value)}")
    if len(value) != n:
        _fail("distances.matrix", f"has {len(value)} rows; expected {shape}")
    distances: dict[int, dict[int, int]] = {}
    for i, row in enumerate(value):
        path = f"distances.matrix[{i}]"
        if not isinstance(row, list):
            _fail(path, f"expected an array of integers, got {_describe(row)}")
        if len(row) != n:
            _fail(path, f"has {len(row)} entries; expected {shape}")
        distances[possible[i]] = {}
        for j, d in enumerate(row):
            key = f"{path}[{j}]"
            d = _int(d, key)
            _check_distance(possible[i], possible[j], d, key)
            distances[possible[i]][possible[j]] = d
    return distances


def _node_key(key: str, path: str) -> int:
    if not re.fullmatch(r"0|[1-9][0-9]*", key):
        _fail(path, "expected a node id (or 'matrix')")
    return int(key)


# --- value converters: (value, key path) -> value ------------------------------------------


def _int(value: object, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(path, f"expected an integer, got {_describe(value)}")
    return value


def _bool(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        _fail(path, f"expected true or false, got {_describe(value)}")
    return value


def _str(value: object, path: str) -> str:
    if not isinstance(value, str):
        _fail(path, f"expected a string, got {_describe(value)}")
    return value


def parse_size(text: str) -> int:
    """``"128M"`` -> 134217728; also ``"4GiB"``, ``"0x8000000"``, ``"4096"``. ValueError else."""
    s = text.strip()
    if _NUMBER_RE.fullmatch(s):
        return int(s, 0) if s[:2].lower() == "0x" else int(s)
    m = _SIZE_RE.fullmatch(s)
    if not m:
        raise ValueError(text)
    return int(m.group(1)) << _UNITS[m.group(2).upper()]


def _bytes(value: object, path: str) -> int:
    """A size or address: integer, hex/decimal string or size string."""
    if isinstance(value, str):
        try:
            value = parse_size(value)
        except ValueError:
            _fail(
                path,
                f"cannot parse {value!r}: expected an integer, a hex string "
                "or a size like \"128M\"",
            )
    else:
        value = _int(value, path)
    if value < 0:
        _fail(path, f"must not be negative (got {value})")
    return value


def _memmap_mode(value: object, path: str) -> str:
    if isinstance(value, bool):
        return "Y" if value else "N"
    word = _str(value, path)
    mode = _MEMMAP_WORDS.get(word.strip().lower())
    if mode is None:
        _fail(path, f"unknown mode {word!r}; expected \"N\", \"Y\" or \"force\" (or a boolean)")
    return mode


def _id_list(value: object, path: str, limit: int, what: str) -> list[int]:
    if isinstance(value, list):
        return [_int(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        _fail(
            path,
            f"expected a range list like \"0-3\" or an array of integers, got {_describe(value)}",
        )
    text = value.strip()
    ids: list[int] = []
    if not text:
        return ids
    for part in text.split(","):
        m = re.fullmatch(r"\s*([0-9]+)\s*(?:-\s*([0-9]+)\s*)?", part)
        if not m:
            _fail(path, f"cannot parse {text!r}: expected a range list like \"0-3\" or \"0,2-3\"")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            _fail(path, f"range {part.strip()!r} ends before it starts")
        if hi >= limit:
            _fail(path, f"{what} {hi} is out of range (ids are below {limit})")
        ids.extend(range(lo, hi + 1))
    return ids


def _cpu_list(value: object, path: str) -> list[int]:
    return _id_list(value, path, NR_CPUS, "CPU")


def _node_list(value: object, path: str) -> list[int]:
    return _id_list(value, path, MAX_NUMNODES, "node")


def _mem_ranges(value: object, path: str) -> list[MemRange]:
    if not isinstance(value, list):
        _fail(path, f"expected an array of ranges, got {_describe(value)}")
    return [_mem_range(item, f"{path}[{i}]") for i, item in enumerate(value)]


def _mem_range(value: object, path: str) -> MemRange:
    if isinstance(value, str):
        m = _RANGE_RE.fullmatch(value)
        if not m:
            _fail(
                path, f"cannot parse {value!r}: expected an inclusive range like \"0x0-0xbfffffff\""
            )
        start, last = (int(g, 0) if g[:2].lower() == "0x" else int(g) for g in m.groups())
        if last < start:
            _fail(path, f"range {value!r} ends before it starts")
        return MemRange(start, last - start + 1)
    t = _Table(value, path, ("start", "size"), "an inclusive range string or a table {start, size}")
    return MemRange(t.get("start", _bytes), t.get("size", _bytes))


# ------------------------------------------------------------------------------------------
# Semantic checks
# ------------------------------------------------------------------------------------------


def _check_kernel(c: BootConfig) -> None:
    try:
        profile_version(c.kernel_profile)
        canonical = c.kernel_profile in PROFILES or re.fullmatch(
            r"6\.(?:[89]|1[0-9])", c.kernel_profile
        ) is not None
    except (ValueError, AttributeError):
        canonical = False
    if not canonical:
        _fail(
            "kernel.profile",
            f"unknown profile {c.kernel_profile!r}; expected one of {', '.join(PROFILES)} "
            "or \"6.N\" with 8 <= N <= 18",
        )
    ps = c.page_size
    if not _is_pow2(ps) or not 4096 <= ps <= 65536:
        _fail("kernel.page_size", f"must be a power of two from 4096 to 65536 (got {ps})")
    bs = c.block_size
    if not _is_pow2(bs):
        _fail("kernel.block_size", f"{_human(bs)} ({bs:#x}) is not a power of two")
    if bs < MIN_BLOCK_SIZE:
        _fail("kernel.block_size", f"{_human(bs)} is below the 128 MiB section size")
    sp = c.struct_page_size
    if not 8 <= sp <= 256 or sp % 8:
        _fail("kernel.struct_page_size", f"must be a multiple of 8 from 8 to 256 (got {sp})")
    _check_word("kernel.memmap_on_memory", c.memmap_on_memory, MEMMAP_MODES)
    _check_word("kernel.online_policy", c.online_policy, ONLINE_POLICIES)
    _check_word("kernel.auto_online_blocks", c.auto_online_blocks, ONLINE_TYPES)
    _check_int_range("kernel.auto_movable_ratio", c.auto_movable_ratio, 0, 2**32 - 1)
    _check_int_range("kernel.max_physmem_bits", c.max_physmem_bits, 32, 64)
    if bs > 1 << c.max_physmem_bits:
        _fail("kernel.block_size", f"{_human(bs)} exceeds 2**max_physmem_bits")
    _check_int_range("kernel.boot_used_percent", c.boot_used_percent, 0, 100)
    _check_int_range("dax.major", c.dax_major, 1, 4095)


def _check_possible(c: BootConfig) -> set[int]:
    if c.possible_nodes is None:
        return {n.id for n in c.nodes}
    seen: set[int] = set()
    for nid in c.possible_nodes:
        if not 0 <= nid < MAX_NUMNODES:
            _fail("kernel.possible_nodes", f"node {nid} is out of range (0..{MAX_NUMNODES - 1})")
        if nid in seen:
            _fail("kernel.possible_nodes", f"node {nid} is listed twice")
        seen.add(nid)
    if not seen:
        _fail("kernel.possible_nodes", "is empty")
    return seen


def _check_nodes(c: BootConfig, possible: set[int]) -> set[int]:
    """Node ids, CPUs, boot RAM syntax. Returns the nodes online at boot."""
    if not c.nodes:
        _fail("node", "no [[node]] defined; at least one node needs boot RAM")
    ids: dict[int, int] = {}
    cpus: dict[int, int] = {}
    online: set[int] = set()
    limit = 1 << c.max_physmem_bits
    for i, node in enumerate(c.nodes):
        key = f"node[{i}]"
        if not 0 <= node.id < MAX_NUMNODES:
            _fail(f"{key}.id", f"node {node.id} is out of range (0..{MAX_NUMNODES - 1})")
        if node.id in ids:
            _fail(f"{key}.id", f"node {node.id} is already defined by node[{ids[node.id]}]")
        ids[node.id] = i
        if node.id not in possible:
            _fail(
                f"{key}.id",
                f"node {node.id} is not in kernel.possible_nodes ({_fmt_ranges(sorted(possible))})",
            )
        for cpu in node.cpus:
            if not 0 <= cpu < NR_CPUS:
                _fail(f"{key}.cpus", f"CPU {cpu} is out of range (0..{NR_CPUS - 1})")
            if cpu in cpus:
                where = "this node" if cpus[cpu] == i else f"node[{cpus[cpu]}].cpus"
                _fail(f"{key}.cpus", f"CPU {cpu} is listed twice (already in {where})")
            cpus[cpu] = i
        for j, r in enumerate(node.memory):
            rkey = f"{key}.memory[{j}]"
            _check_window(rkey, r.start, r.size, c.page_size, split=False)
            if r.end > limit:
                _fail(
                    rkey,
                    f"boot RAM {_fmt_range(r.start, r.size)} ends above 2**{c.max_physmem_bits} "
                    "(kernel.max_physmem_bits)",
                )
        _check_adistance(f"{key}.adistance", node.adistance)
        if node.cpus or node.memory:
            online.add(node.id)
    if not any(node.memory for node in c.nodes):
        _fail("node", "no node has boot RAM (node[i].memory); the kernel cannot boot")
    return online


def _check_producers(c: BootConfig, possible: set[int], online: set[int]) -> None:
    ps = c.page_size
    for i, cxl in enumerate(c.cxl_regions):
        key = f"cxl_region[{i}]"
        _check_window(key, cxl.start, cxl.size, ps, split=True)
        # CXL HDM decoders describe host physical address ranges in 256 MiB units.
        granule = "the 256 MiB CXL decoder granularity"
        _check_aligned(f"{key}.start", cxl.start, CXL_GRANULE, granule)
        _check_aligned(f"{key}.size", cxl.size, CXL_GRANULE, granule)
        if not _canonical(_DECODER_RE, cxl.decoder):
            _fail(f"{key}.decoder", f"{cxl.decoder!r} is not a decoder name like \"decoder0.0\"")
        _check_target(key, cxl.target_node, cxl.numa_node, cxl.adistance, possible, online)
    for i, hmem in enumerate(c.hmem):
        key = f"hmem[{i}]"
        _check_window(key, hmem.start, hmem.size, ps, split=True)
        # dax_hmem_probe() asks alloc_dax_region() for PMD_SIZE alignment.
        align = "the 2 MiB dax region alignment"
        _check_aligned(f"{key}.start", hmem.start, DAX_REGION_ALIGN, align)
        _check_aligned(f"{key}.size", hmem.size, DAX_REGION_ALIGN, align)
        _check_target(key, hmem.target_node, hmem.numa_node, hmem.adistance, possible, online)
    for i, pmem in enumerate(c.pmem):
        key = f"pmem[{i}]"
        if not _canonical(_NAMESPACE_RE, pmem.namespace):
            _fail(
                f"{key}.namespace",
                f"{pmem.namespace!r} is not a namespace name like \"namespace0.0\"",
            )
        _check_window(key, pmem.start, pmem.size, ps, split=True)
        if pmem.align not in (ps, 2 * MiB, GiB):
            _fail(
                f"{key}.align",
                f"{_human(pmem.align)} is not a supported alignment (page size, 2 MiB or 1 GiB)",
            )
        if pmem.reserve % ps or not 0 <= pmem.reserve < pmem.size:
            _fail(
                f"{key}.reserve",
                f"must be a page multiple smaller than size (got {pmem.reserve:#x})",
            )
        # alloc_dax_region() wants the data area aligned to the namespace's align.
        data_start, data_size = pmem.start + pmem.reserve, pmem.size - pmem.reserve
        if data_start % pmem.align:
            _fail(
                f"{key}.reserve",
                f"the data area starts at start + reserve = {data_start:#x}, "
                f"which is not a multiple of align ({_human(pmem.align)})",
            )
        if data_size % pmem.align:
            _fail(
                f"{key}.size",
                f"the data area (size - reserve = {data_size:#x}) is not a multiple of "
                f"align ({_human(pmem.align)})",
            )
        _check_target(key, pmem.target_node, pmem.numa_node, pmem.adistance, possible, online)


def _check_target(
    key: str, target: int, numa_node: int | None, adistance: int | None,
    possible: set[int], online: set[int],
) -> None:  # fmt: skip
    if target not in possible:
        _fail(
            f"{key}.target_node",
            f"node {target} is not possible ({_fmt_ranges(sorted(possible))}); "
            "add it to kernel.possible_nodes",
        )
    if numa_node is not None and numa_node not in online:
        _fail(
            f"{key}.numa_node",
            f"node {numa_node} is not online at boot (nodes with CPUs or boot RAM: "
            f"{_fmt_ranges(sorted(online))})",
        )
    _check_adistance(f"{key}.adistance", adistance)


def _check_ranges(c: BootConfig) -> None:
    """Overlaps, memory blocks shared between nodes, and the total number of blocks."""
    ranges = _ranges(c)
    order = {key: n for n, (_, _, key, _) in enumerate(ranges)}
    bs = c.block_size
    by_start = sorted(ranges)
    prev = None  # the range reaching furthest so far
    for cur in by_start:
        if prev is not None and cur[0] < prev[1]:
            first, second = sorted((prev, cur), key=lambda r: order[r[2]])
            _fail(
                second[2],
                f"{_fmt_range(second[0], second[1] - second[0])} overlaps {first[2]} "
                f"({_fmt_range(first[0], first[1] - first[0])})",
            )
        if prev is None or cur[1] > prev[1]:
            prev = cur
    # R-NODE: a memory block belongs to exactly one node. Sorted and disjoint, so two nodes
    # share a block only if some pair of neighbouring boot ranges of different nodes does.
    boot = [r for r in by_start if r[3] is not None]
    for a, b in itertools.pairwise(boot):
        if a[3] != b[3] and (a[1] - 1) // bs == b[0] // bs:
            block = b[0] // bs
            first, second = sorted((a, b), key=lambda r: order[r[2]])
            _fail(
                second[2],
                f"node {second[3]} boot RAM shares memory block {block} "
                f"({_fmt_range(block * bs, bs)}) with node {first[3]} ({first[2]}); "
                "a memory block belongs to one node",
            )
    problem = block_budget_problem(c)
    if problem is not None:
        _fail("kernel.block_size", problem)


def _check_dax_names(c: BootConfig) -> None:
    # R-PATH-01: CXL regions, hmem ranges and nvdimm regions share memregion_alloc(); we
    # hand out CXL ids first, then hmem ids, in file order. R-PATH-02: pmem names itself.
    region_owner: dict[int, str] = {}
    for i in range(len(c.cxl_regions)):
        region_owner[i] = f"cxl_region[{i}]"
    for j in range(len(c.hmem)):
        region_owner[len(c.cxl_regions) + j] = f"hmem[{j}]"
    names: dict[str, str] = {f"dax{r}.0": key for r, key in region_owner.items()}
    n_cxl, n_ids = len(c.cxl_regions), len(region_owner)
    parts = [f"CXL regions take ids 0..{n_cxl - 1}"] if n_cxl else []
    parts += [f"hmem ranges take ids {n_cxl}..{n_ids - 1}"] if n_ids > n_cxl else []
    why_id = f" ({', '.join(parts)})" if parts else ""
    for k, pmem in enumerate(c.pmem):
        key = f"pmem[{k}].namespace"
        m = _NAMESPACE_RE.fullmatch(pmem.namespace)
        assert m is not None  # checked in _check_producers
        region, dev = int(m.group(1)), int(m.group(2))
        name = f"dax{region}.{dev}"
        if name in names:
            _fail(key, f"gives device {name}, which {names[name]} already provides{why_id}")
        if region in region_owner:
            _fail(
                key,
                f"region id {region} belongs to {region_owner[region]}{why_id}; pmem regions "
                f"share that allocator, and {name} would collide with that region's devices",
            )
        names[name] = f"pmem[{k}]"


def _check_distances(c: BootConfig, possible: set[int]) -> None:
    for a, row in c.distances.items():
        if a not in possible:
            _fail(f"distances.{a}", f"node {a} is not possible ({_fmt_ranges(sorted(possible))})")
        for b, d in row.items():
            key = f"distances.{a}.{b}"
            if b not in possible:
                _fail(key, f"node {b} is not possible ({_fmt_ranges(sorted(possible))})")
            _check_distance(a, b, d, key)


def _check_distance(a: int, b: int, d: int, key: str) -> None:
    # ACPI slit_valid(): the diagonal is LOCAL_DISTANCE, everything else above it; u8 entries.
    if a == b and d != LOCAL_DISTANCE:
        _fail(key, f"the distance of node {a} to itself must be {LOCAL_DISTANCE} (got {d})")
    if a != b and not LOCAL_DISTANCE < d <= MAX_DISTANCE:
        _fail(key, f"distance {a}->{b} must be 11..255 (got {d})")


def _check_window(key: str, start: int, size: int, page_size: int, *, split: bool) -> None:
    """A physical range: non-empty, page aligned, below 2**64.

    ``split``: the range has separate ``start`` and ``size`` keys to name (producers), rather
    than being one value (boot RAM range strings).
    """
    start_key, size_key = (f"{key}.start", f"{key}.size") if split else (key, key)
    if start < 0:
        _fail(start_key, f"must not be negative (got {start})")
    if size <= 0:
        _fail(size_key, f"the range is empty (size {size})")
    if start % page_size:
        _fail(start_key, f"{start:#x} is not page aligned (page size {page_size:#x})")
    if size % page_size:
        what = "size" if split else f"end + 1 ({start + size:#x})"
        _fail(size_key, f"{what} is not page aligned (page size {page_size:#x})")
    if start + size > 1 << 64:
        _fail(size_key, f"{_fmt_range(start, size)} ends beyond the 64-bit physical address space")


def _check_aligned(key: str, value: int, align: int, what: str) -> None:
    if value % align:
        _fail(key, f"{value:#x} is not a multiple of {what}")


def _check_word(key: str, value: object, choices: Iterable[str]) -> None:
    choices = tuple(choices)
    if value not in choices:
        _fail(key, f"unknown value {value!r}; expected one of {', '.join(choices)}")


def _check_int_range(key: str, value: int, lo: int, hi: int) -> None:
    if not lo <= value <= hi:
        _fail(key, f"must be from {lo} to {hi} (got {value})")


def _check_adistance(key: str, value: int | None) -> None:
    if value is not None:
        _check_int_range(key, value, 0, 2**31 - 1)


def _canonical(pattern: re.Pattern[str], name: str) -> bool:
    """``decoder0.0`` yes, ``decoder00.0`` no: the kernel prints ids with %d."""
    m = pattern.fullmatch(name)
    return m is not None and all(str(int(g)) == g for g in m.groups())


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


# ------------------------------------------------------------------------------------------
# Formatting
# ------------------------------------------------------------------------------------------


def _fail(key: str, why: str) -> NoReturn:
    raise ConfigError(key, why)


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a float ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"


def _fmt_range(start: int, size: int) -> str:
    return f"[{start:#x}-{start + size - 1:#x}]"


def _fmt_ranges(ids: list[int]) -> str:
    """Sorted unique ids as a sysfs range list: [0, 2, 3] -> "0,2-3"."""
    parts: list[str] = []
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        parts.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ",".join(parts)


def _fmt_id_list(ids: list[int]) -> str:
    # A range list loads back as the sorted ids, so use it only when that is what we have.
    if ids == sorted(set(ids)):
        return _toml_str(_fmt_ranges(ids))
    return "[" + ", ".join(map(str, ids)) + "]"


def _fmt_size(n: int) -> str:
    for unit, shift in _BINARY_UNITS:
        if n >= 1 << shift and n % (1 << shift) == 0:
            return _toml_str(f"{n >> shift}{unit}")
    return f"{n:#x}" if n else "0"


def _fmt_optional(key: str, value: int | None) -> list[str]:
    return [] if value is None else [f"{key} = {value}"]


def _fmt_array(key: str, items: list[str]) -> list[str]:
    one_line = f"{key} = [{', '.join(items)}]"
    if len(one_line) <= 96:
        return [one_line]
    return [f"{key} = ["] + [f"    {item}," for item in items] + ["]"]


def _fmt_distances(c: BootConfig) -> list[str]:
    possible = c.possible()
    full = set(c.distances) == set(possible) and all(
        set(row) == set(possible) for row in c.distances.values()
    )
    if full:
        out = [f"# rows and columns: nodes {', '.join(map(str, possible))}", "matrix = ["]
        for a in possible:
            out.append("    [" + ", ".join(str(c.distances[a][b]) for b in possible) + "],")
        return out + ["]"]
    return [
        f"{a} = {{ {', '.join(f'{b} = {d}' for b, d in row.items())} }}" if row else f"{a} = {{}}"
        for a, row in c.distances.items()
    ]


def _toml_bool(value: bool) -> str:
    return "true" if value else "false"


def _toml_str(value: str) -> str:
    """A TOML basic string (escapes quotes, backslashes and control characters)."""
    out = ['"']
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
