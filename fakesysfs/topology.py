"""Topology files: the firmware and kernel command line of the simulated machine, as TOML.

`load_topology(path)` (or `load_topology(text=...)`) reads TOML into a validated `BootConfig`;
`load_topology()` returns the embedded default, `default_topology.toml` (a commented CXL host;
`default_topology_text()` gives its text). `dump_topology(config)` writes TOML that loads back
to an equal config. `validate_config(config)` runs the same checks on a config built in code.
Every problem raises `ConfigError` naming the key path and the reason, e.g.
`node[1].memory[0]: ... overlaps node[0].memory[0] (...)` or `cxl_region[0].size: ...`.

The schema (value syntax, every key with its default, the rules between keys, device names) is
docs/topology.md. Each key is declared once, as a `Key` of a `Section` at the end of this
module; parsing, the per-key checks, the dump and docs/topology.md's key tables
(`schema_markdown`) are all read from those declarations.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, NoReturn, TypeVar

from .config import (
    _BINARY_UNITS,
    ARCH_PAGE_SIZES,
    ARCHES,
    CXL_GRANULE,
    CXL_MAJOR,
    CXL_ROOTS,
    NR_HDM_DECODERS,
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
    _human,
    _ranges,
    block_budget_problem,
    profile_version,
    zone_limits,
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
#: The largest memory block id (2**64 bytes of 128 MiB blocks).
MAX_MEMORY_BLOCK_ID = (1 << 37) - 1
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
    possible = set(config.possible())
    online = _check_nodes(config, possible)
    _check_producers(config, possible, online)
    _check_ranges(config)
    _check_dax_names(config)
    _check_distances(config, possible)
    _check_cxl(config, possible)


def dump_topology(config: BootConfig) -> str:
    """TOML text for ``config`` that ``load_topology(text=...)`` turns back into an equal config.

    The config is validated first (ConfigError if it could not be loaded back). Each section's
    keys are written in declaration order; a key whose value is None is left out.
    """
    validate_config(config)
    out = ["# fakesysfs topology (written by fakesysfs.topology.dump_topology)"]
    out += _dump_section(KERNEL, config) + _dump_section(DAX, config)
    for node in config.nodes:
        out += _dump_section(NODE, node)
    if config.distances:
        out += ["", "[distances]"]
        out += _fmt_distances(config)
    for section in (CXL_REGION, HMEM, PMEM):
        assert section.field is not None
        for entry in getattr(config, section.field):
            out += _dump_section(section, entry)
    if config.cxl_major != CXL_MAJOR or config.cxl_windows or config.cxl_memdevs:
        out += _dump_section(CXL, config)
    for section in (CXL_WINDOW, CXL_MEMDEV):
        assert section.field is not None
        for entry in getattr(config, section.field):
            out += _dump_section(section, entry)
    return "\n".join(out) + "\n"


def _dump_section(section: Section, obj: object) -> list[str]:
    out = ["", f"[[{section.name}]]" if section.field else f"[{section.name}]"]
    for key in section.keys:
        value = getattr(obj, key.field)
        if value is not None:
            out += key.kind.dump(key.name, value)
    return out


# ------------------------------------------------------------------------------------------
# Parsing: TOML data -> BootConfig (types and syntax; semantics are in validate_config)
# ------------------------------------------------------------------------------------------

#: Top-level tables, in the order an unknown key's message lists them.
_TOP_KEYS = ("kernel", "node", "distances", "dax", "cxl_region", "hmem", "pmem", "cxl", "cxl_window", "cxl_memdev")


class _Table:
    """A TOML table being read: knows its key path, rejects unknown keys up front."""

    __slots__ = ("_data", "_path")

    def __init__(self, data: object, path: str, allowed: Sequence[str], what: str = "a table"):
        if not isinstance(data, dict):
            _fail(path, f"expected {what}, got {_describe(data)}")
        for key in data:
            if key not in allowed:
                import difflib  # only for this message: not in every daemon (README, "Fleets")

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
    for section in (KERNEL, DAX, CXL):
        if top.has(section.name):
            table = _Table(data[section.name], section.name, section.key_names())
            for field, value in _read_section(section, table).items():
                setattr(config, field, value)
    for section in (NODE, CXL_REGION, HMEM, PMEM, CXL_WINDOW, CXL_MEMDEV):
        assert section.field is not None
        tables = _array_of_tables(data, section.name, section.key_names())
        setattr(config, section.field, [section.cls(**_read_section(section, t)) for t in tables])
    if top.has("distances"):
        # The matrix form is indexed by the possible nodes, so it is read last.
        config.distances = _parse_distances(data["distances"], config)
    return config


def _read_section(section: Section, t: _Table) -> dict[str, Any]:
    """Field name -> value for every key of ``section`` (its default where the key is absent)."""
    return {key.field: t.get(key.name, key.kind.parse, section.default(key)) for key in section.keys}


def _array_of_tables(data: dict[str, Any], key: str, allowed: Sequence[str]) -> list[_Table]:
    value = data.get(key, [])
    if not isinstance(value, list):
        _fail(key, f"expected an array of tables ([[{key}]]), got {_describe(value)}")
    what = f"a table ([[{key}]])"
    return [_Table(item, f"{key}[{i}]", allowed, what) for i, item in enumerate(value)]


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


def size_value(value: object, path: str) -> int:
    """A size or address: integer, hex/decimal string or size string; ConfigError naming
    ``path`` otherwise (the harness reads its size arguments with it too)."""
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


def _driver_name(value: object, path: str) -> str:
    """A producer's ``driver``: the dax driver its device ends boot bound to."""
    driver = _str(value, path)
    if driver not in ("device_dax", "kmem"):
        _fail(path, f"expected \"device_dax\" or \"kmem\", got {driver!r}")
    return driver


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


def _int_array(value: object, path: str) -> list[int]:
    """An array of non-negative integers, kept in the order given."""
    if not isinstance(value, list):
        _fail(path, f"expected an array of integers, got {_describe(value)}")
    out = [_int(v, f"{path}[{i}]") for i, v in enumerate(value)]
    for i, v in enumerate(out):
        if not 0 <= v < 1 << 32:
            _fail(f"{path}[{i}]", f"must be from 0 to 2**32-1 (got {v})")
    return out


def _cpu_list(value: object, path: str) -> list[int]:
    return _id_list(value, path, NR_CPUS, "CPU")


def _node_list(value: object, path: str) -> list[int]:
    return _id_list(value, path, MAX_NUMNODES, "node")


def _block_list(value: object, path: str) -> list[int]:
    return _id_list(value, path, MAX_MEMORY_BLOCK_ID + 1, "memory block")


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
    return MemRange(t.get("start", size_value), t.get("size", size_value))


# ------------------------------------------------------------------------------------------
# Semantic checks
# ------------------------------------------------------------------------------------------


def _check_kernel(c: BootConfig) -> None:
    _check_fields(KERNEL, c, "kernel")
    _check_fields(DAX, c, "dax")
    if c.arch in ARCH_PAGE_SIZES and c.page_size not in ARCH_PAGE_SIZES[c.arch]:
        sizes = ", ".join(str(size) for size in ARCH_PAGE_SIZES[c.arch])
        others = [a for a, ok in ARCH_PAGE_SIZES.items() if c.page_size in ok]
        hint = f"; kernel.arch {' or '.join(others)} has it" if others else ""
        _fail("kernel.page_size", f"{c.page_size} is not a page size of {c.arch} ({sizes}){hint}")
    if c.block_size > 1 << c.max_physmem_bits:
        _fail("kernel.block_size", f"{_human(c.block_size)} exceeds 2**max_physmem_bits")


def _check_fields(section: Section, obj: object, path: str) -> None:
    """The per-key checks of ``section`` on ``obj`` (a value of None is a default, not checked)."""
    for key in section.keys:
        value = getattr(obj, key.field)
        if key.check is not None and value is not None:
            key.check(f"{path}.{key.name}", value)


def _check_profile(key: str, profile: str) -> None:
    try:
        profile_version(profile)
        canonical = profile in PROFILES or re.fullmatch(r"6\.(?:[89]|1[0-9])", profile) is not None
    except (ValueError, AttributeError):
        canonical = False
    if not canonical:
        _fail(
            key,
            f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)} "
            "or \"6.N\" with 8 <= N <= 18",
        )


def _check_page_size(key: str, ps: int) -> None:
    if not _is_pow2(ps) or not 4096 <= ps <= 65536:
        _fail(key, f"must be a power of two from 4096 to 65536 (got {ps})")


def _check_block_size(key: str, bs: int) -> None:
    if not _is_pow2(bs):
        _fail(key, f"{_human(bs)} ({bs:#x}) is not a power of two")
    if bs < MIN_BLOCK_SIZE:
        _fail(key, f"{_human(bs)} is below the 128 MiB section size")


def _check_struct_page_size(key: str, sp: int) -> None:
    if not 8 <= sp <= 256 or sp % 8:
        _fail(key, f"must be a multiple of 8 from 8 to 256 (got {sp})")


def _check_node_id(key: str, nid: int) -> None:
    if not 0 <= nid < MAX_NUMNODES:
        _fail(key, f"node {nid} is out of range (0..{MAX_NUMNODES - 1})")


def _check_possible_nodes(key: str, ids: list[int]) -> None:
    seen: set[int] = set()
    for nid in ids:
        _check_node_id(key, nid)
        if nid in seen:
            _fail(key, f"node {nid} is listed twice")
        seen.add(nid)
    if not seen:
        _fail(key, "is empty")


def _check_cpu_ids(key: str, cpus: list[int]) -> None:
    for cpu in cpus:
        if not 0 <= cpu < NR_CPUS:
            _fail(key, f"CPU {cpu} is out of range (0..{NR_CPUS - 1})")


def _check_decoder(key: str, decoder: str) -> None:
    if not _canonical(_DECODER_RE, decoder):
        _fail(key, f"{decoder!r} is not a decoder name like \"decoder0.0\"")


def _check_namespace(key: str, namespace: str) -> None:
    if not _canonical(_NAMESPACE_RE, namespace):
        _fail(key, f"{namespace!r} is not a namespace name like \"namespace0.0\"")


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
        _check_fields(NODE, node, key)
        if node.id in ids:
            _fail(f"{key}.id", f"node {node.id} is already defined by node[{ids[node.id]}]")
        ids[node.id] = i
        if node.id not in possible:
            _fail(
                f"{key}.id",
                f"node {node.id} is not in kernel.possible_nodes ({_fmt_ranges(sorted(possible))})",
            )
        for cpu in node.cpus:
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
        _check_offline_blocks(c, node, key)
        if node.cpus or node.memory:
            online.add(node.id)
    if not any(node.memory for node in c.nodes):
        _fail("node", "no node has boot RAM (node[i].memory); the kernel cannot boot")
    return online


def _check_offline_blocks(c: BootConfig, node: NodeConfig, key: str) -> None:
    """Each offline or Movable block is a whole block of this node's boot RAM in one zone: what
    the kernel can offline (offline_pages(): no holes; memory_block_offline(): mem->zone set)."""
    bs = c.block_size
    seen: set[int] = set()
    for name, ids in (("offline_blocks", node.offline_blocks), ("movable_blocks", node.movable_blocks)):
        for bid in ids:
            start, end = bid * bs, (bid + 1) * bs
            if bid in seen:
                _fail(f"{key}.{name}", f"block {bid} is listed twice (in offline_blocks or movable_blocks)")
            seen.add(bid)
            if not any(r.start <= start and end <= r.end for r in node.memory):
                _fail(f"{key}.{name}", f"block {bid} ({_fmt_range(start, bs)}) is not wholly boot RAM of "
                                       f"node {node.id}: a block with holes cannot be offlined")
            if any(start < limit < end for limit in zone_boundaries(c)):
                _fail(f"{key}.{name}", f"block {bid} ({_fmt_range(start, bs)}) spans zones: it cannot be offlined")


def zone_boundaries(c: BootConfig) -> list[int]:
    """Where one zone of boot RAM ends and the next begins on the topology's architecture."""
    return [end for _, end in zone_limits(c.arch, c.ram_start())[:-1]]


def _check_producers(c: BootConfig, possible: set[int], online: set[int]) -> None:
    ps = c.page_size
    for i, cxl in enumerate(c.cxl_regions):
        key = f"cxl_region[{i}]"
        _check_fields(CXL_REGION, cxl, key)
        _check_window(key, cxl.start, cxl.size, ps, split=True)
        # CXL HDM decoders describe host physical address ranges in 256 MiB units.
        granule = "the 256 MiB CXL decoder granularity"
        _check_aligned(f"{key}.start", cxl.start, CXL_GRANULE, granule)
        _check_aligned(f"{key}.size", cxl.size, CXL_GRANULE, granule)
        _check_target(key, cxl.target_node, cxl.numa_node, possible, online)
    for i, hmem in enumerate(c.hmem):
        key = f"hmem[{i}]"
        _check_fields(HMEM, hmem, key)
        _check_window(key, hmem.start, hmem.size, ps, split=True)
        # dax_hmem_probe() asks alloc_dax_region() for PMD_SIZE alignment.
        align = "the 2 MiB dax region alignment"
        _check_aligned(f"{key}.start", hmem.start, DAX_REGION_ALIGN, align)
        _check_aligned(f"{key}.size", hmem.size, DAX_REGION_ALIGN, align)
        _check_target(key, hmem.target_node, hmem.numa_node, possible, online)
    for i, pmem in enumerate(c.pmem):
        key = f"pmem[{i}]"
        _check_fields(PMEM, pmem, key)
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
        _check_target(key, pmem.target_node, pmem.numa_node, possible, online)


def _check_target(key: str, target: int, numa_node: int | None, possible: set[int], online: set[int]) -> None:
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


#: drivers/cxl/cxl.h eiw_to_ways(): the interleave ways a CFMWS may have.
CXL_WAYS = (1, 2, 3, 4, 6, 8, 12, 16)


def _check_cxl(c: BootConfig, possible: set[int]) -> None:
    """CFMWS windows and Type-3 memdevs (drivers/cxl/acpi.c cxl_acpi_cfmws_verify(); the
    ``cxl_region`` entries a window holds are assembled from its memdevs at boot)."""
    _check_fields(CXL, c, "cxl")
    windows: list[tuple[int, int, str]] = []
    for i, win in enumerate(c.cxl_windows):
        key = f"cxl_window[{i}]"
        _check_fields(CXL_WINDOW, win, key)
        _check_window(key, win.start, win.size, c.page_size, split=True)
        granule = "the 256 MiB CXL decoder granularity"
        _check_aligned(f"{key}.start", win.start, CXL_GRANULE, granule)
        _check_aligned(f"{key}.size", win.size, CXL_GRANULE, granule)
        ways = len(win.host_bridges)
        if ways not in CXL_WAYS:
            _fail(f"{key}.host_bridges", f"{ways} host bridges; a window interleaves 1, 2, 3, 4, 6, 8, 12 or 16")
        if len(set(win.host_bridges)) != ways:
            _fail(f"{key}.host_bridges", "a host bridge is listed twice")
        _check_aligned(f"{key}.size", win.size, CXL_GRANULE * ways, f"{ways} x 256 MiB (the ways)")
        if not _is_pow2(win.granularity) or not 256 <= win.granularity <= 16384:
            _fail(f"{key}.granularity", f"must be a power of two from 256 to 16384 (got {win.granularity})")
        if not (win.ram or win.pmem):
            _fail(key, "a window allows neither ram nor pmem")
        if win.target_node not in possible:
            _fail(f"{key}.target_node", f"node {win.target_node} is not possible ({_fmt_ranges(sorted(possible))})")
        for start, size, other in windows:
            if start < win.start + win.size and win.start < start + size:
                _fail(key, f"{_fmt_range(win.start, win.size)} overlaps {other}")
        # The window is a resource of its own in /proc/iomem: boot RAM, hmem and pmem ranges
        # cannot share its addresses (regions can: below, they must lie in the window they name).
        for start, end, other, _node in _ranges(c):
            if not other.startswith("cxl_region") and start < win.start + win.size and win.start < end:
                _fail(key, f"{_fmt_range(win.start, win.size)} overlaps {other} ({_fmt_range(start, end - start)})")
        windows.append((win.start, win.size, key))
    for i, mem in enumerate(c.cxl_memdevs):
        key = f"cxl_memdev[{i}]"
        _check_fields(CXL_MEMDEV, mem, key)
        for name in ("ram_size", "pmem_size"):
            _check_aligned(f"{key}.{name}", getattr(mem, name), CXL_GRANULE, "256 MiB (the DPA granule)")
        if not mem.ram_size + mem.pmem_size:
            _fail(key, "the device has no capacity (ram_size and pmem_size are 0)")
    free_ram = [mem.ram_size for mem in c.cxl_memdevs]
    ep_decoders = [0] * len(c.cxl_memdevs)
    hb_decoders: dict[int, int] = {}
    for i, cxl in enumerate(c.cxl_regions):
        key = f"cxl_region[{i}]"
        m = _DECODER_RE.fullmatch(cxl.decoder)
        named = int(m.group(2)) if m is not None and m.group(1) == "0" else None
        named_win = c.cxl_windows[named] if named is not None and named < len(c.cxl_windows) else None
        inside = named_win is not None and named_win.start <= cxl.start and \
            cxl.start + cxl.size <= named_win.start + named_win.size
        for start, size, other in windows:
            if not inside and start < cxl.start + cxl.size and cxl.start < start + size:
                _fail(key, f"{_fmt_range(cxl.start, cxl.size)} overlaps {other} but names {cxl.decoder}")
        if named_win is None or not inside:
            continue  # a window of its own (the firmware-given ranges before windows existed)
        win = named_win
        if not win.ram:
            _fail(key, f"{cxl.decoder} is not a volatile (ram) window")
        if cxl.size % (CXL_GRANULE * len(win.host_bridges)):
            _fail(f"{key}.size", f"not a multiple of {len(win.host_bridges)} x 256 MiB (the window's ways)")
        # Assembled at boot as the engine does it (engine/cxl.py cxl_region_register): per host
        # bridge of the window, the first memdev below it with the ram left and a free decoder.
        per = cxl.size // len(win.host_bridges)
        for uid in win.host_bridges:
            pick = next((j for j, mem in enumerate(c.cxl_memdevs) if mem.host_bridge == uid
                         and free_ram[j] >= per and ep_decoders[j] < NR_HDM_DECODERS), None)
            if pick is None:
                _fail(key, f"no memdev below {cxl.decoder}'s host bridges has {per:#x} bytes of free ram for it")
            if hb_decoders.get(uid, 0) >= NR_HDM_DECODERS:
                _fail(key, f"host bridge {uid} has no free decoder left for it ({NR_HDM_DECODERS} per port)")
            free_ram[pick] -= per
            ep_decoders[pick] += 1
            hb_decoders[uid] = hb_decoders.get(uid, 0) + 1


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


def _one_of(choices: Iterable[str]) -> Callable[[str, object], None]:
    """A check that the value is one of ``choices``."""
    words = tuple(choices)

    def check(key: str, value: object) -> None:
        if value not in words:
            _fail(key, f"unknown value {value!r}; expected one of {', '.join(words)}")

    return check


def _from_to(lo: int, hi: int) -> Callable[[str, int], None]:
    """A check that the value is from ``lo`` to ``hi``."""

    def check(key: str, value: int) -> None:
        if not lo <= value <= hi:
            _fail(key, f"must be from {lo} to {hi} (got {value})")

    return check


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


def _dump_ranges(key: str, ranges: list[MemRange]) -> list[str]:
    return _fmt_array(key, [_toml_str(f"{r.start:#x}-{r.end - 1:#x}") for r in ranges])


# ------------------------------------------------------------------------------------------
# The schema: one declaration per key. Parsing (`_parse`), the per-key checks of
# `validate_config`, `dump_topology` and the key tables of docs/topology.md
# (`schema_markdown`) are all read from these tables.
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Kind:
    """A value type: how TOML spells it (``parse``: value, key path -> value, ConfigError
    naming the key) and how ``dump_topology`` writes it back (``dump``: key, value -> lines)."""

    parse: Callable[[object, str], Any]
    dump: Callable[[str, Any], list[str]]


def _one_line(fmt: Callable[[Any], str]) -> Callable[[str, Any], list[str]]:
    return lambda key, value: [f"{key} = {fmt(value)}"]


INT = Kind(_int, _one_line(str))
BOOL = Kind(_bool, _one_line(_toml_bool))
STR = Kind(_str, _one_line(_toml_str))
SIZE = Kind(size_value, _one_line(_fmt_size))
#: A size written back as a decimal integer.
BYTES = Kind(size_value, _one_line(str))
ADDRESS = Kind(size_value, _one_line(lambda value: f"{value:#x}"))
NODE_IDS = Kind(_node_list, _one_line(_fmt_id_list))
CPU_IDS = Kind(_cpu_list, _one_line(_fmt_id_list))
BLOCK_IDS = Kind(_block_list, _one_line(_fmt_id_list))
MEMMAP_MODE = Kind(_memmap_mode, _one_line(_toml_str))
DRIVER = Kind(_driver_name, _one_line(_toml_str))
MEM_RANGES = Kind(_mem_ranges, _dump_ranges)
INT_LIST = Kind(_int_array, _one_line(lambda value: "[" + ", ".join(map(str, value)) + "]"))


@dataclass(frozen=True, slots=True)
class Key:
    """One key of a section: its TOML name, the config field it fills, its kind, the value
    it takes and what it means (one line, for the docs), a check of the value alone that
    ``validate_config`` runs (rules between keys are the ``_check_*`` functions'), and the
    default as the docs say it where the field's own default (None) does not."""

    name: str
    field: str
    kind: Kind
    doc: str
    check: Callable[[str, Any], None] | None = None
    default_doc: str | None = None


@dataclass(frozen=True, slots=True)
class Section:
    """A TOML table (``[kernel]``: fields of BootConfig) or array of tables (``[[node]]``:
    one ``cls`` per entry, in the BootConfig list ``field``), with its keys in the order
    ``dump_topology`` writes them."""

    name: str
    cls: type
    keys: tuple[Key, ...]
    doc: str
    field: str | None = None

    def key_names(self) -> tuple[str, ...]:
        return tuple(key.name for key in self.keys)

    def default(self, key: Key) -> Any:
        """The field's default (a fresh one for lists), or ``_MISSING`` if the key is required."""
        f = next(f for f in dataclasses.fields(self.cls) if f.name == key.field)
        if f.default is not dataclasses.MISSING:
            return f.default
        if f.default_factory is not dataclasses.MISSING:
            return f.default_factory()
        return _MISSING


def _adistance(default: str) -> Key:
    return Key("adistance", "adistance", INT, "abstract distance for memory tiering, 0 to 2**31-1",
               _from_to(0, 2**31 - 1), default)  # fmt: skip


_NUMA_NODE = Key("numa_node", "numa_node", INT, "NUMA affinity of the device (`numa_node`); online at boot",
                 default_doc="the nearest node with CPUs")  # fmt: skip
_TARGET_NODE = Key("target_node", "target_node", INT, "the node its memory joins; a possible node")


def _driver_key(default: str) -> Key:
    return Key("driver", "driver", DRIVER, '`"device_dax"` or `"kmem"`: the driver the device ends boot bound to',
               default_doc=default)  # fmt: skip


KERNEL = Section("kernel", BootConfig, (
    Key("profile", "kernel_profile", STR, '`"6.8"`, `"6.9-6.16"`, `"6.18"`, or `"6.N"` (8 <= N <= 18)',
        _check_profile),
    Key("arch", "arch", STR, '`"x86_64"`, `"arm64"`, `"s390x"`, `"ppc64le"`: zone layout, page sizes, '
        "`phys_device` (see Architectures)", _one_of(ARCHES)),
    Key("cxl_root", "cxl_root", STR, '`"ACPI0017:00"` (firmware) or `"cxl_acpi.0"` (the kernel\'s cxl_test mock): '
        "the CXL root platform device", _one_of(CXL_ROOTS)),
    Key("block_size", "block_size", SIZE, "memory block size: power of two >= 128 MiB", _check_block_size),
    Key("page_size", "page_size", BYTES, "power of two, 4 KiB to 64 KiB", _check_page_size),
    Key("struct_page_size", "struct_page_size", INT, "`sizeof(struct page)`: multiple of 8, 8 to 256",
        _check_struct_page_size),
    Key("memmap_on_memory", "memmap_on_memory", MEMMAP_MODE,
        '`"N"`, `"Y"`, `"force"` (also booleans, y/n, 1/0, on/off)', _one_of(MEMMAP_MODES)),
    Key("online_policy", "online_policy", STR, '`"contig-zones"` or `"auto-movable"`', _one_of(ONLINE_POLICIES)),
    Key("auto_movable_ratio", "auto_movable_ratio", INT, "0 to 2**32-1", _from_to(0, 2**32 - 1)),
    Key("auto_movable_numa_aware", "auto_movable_numa_aware", BOOL, "boolean"),
    Key("auto_online_blocks", "auto_online_blocks", STR,
        "`offline`, `online`, `online_kernel`, `online_movable` (`memhp_default_state=`)", _one_of(ONLINE_TYPES)),
    Key("movable_node", "movable_node", BOOL, "boolean: the `movable_node` boot flag"),
    Key("probe", "probe", BOOL, "boolean: `memory/probe` exists (CONFIG_ARCH_MEMORY_PROBE)"),
    Key("max_physmem_bits", "max_physmem_bits", INT, "32 to 64; boot RAM must end at or below 2**bits",
        _from_to(32, 64)),
    Key("boot_used_percent", "boot_used_percent", INT, "0 to 100: share of boot kernel-zone memory in use",
        _from_to(0, 100)),
    Key("boot_unmovable", "boot_unmovable", BOOL, "boolean: that use is unmovable (offline fails with EBUSY)"),
    Key("notifier_error_inject", "notifier_error_inject", BOOL,
        "boolean: the debugfs `notifier-error-inject/memory` files exist"),
    Key("possible_nodes", "possible_nodes", NODE_IDS, "id list (`node/possible`), ids below 1024",
        _check_possible_nodes, "the `[[node]]` ids"),
    Key("cmdline", "cmdline", STR, "boot-loader words `/proc/cmdline` starts with, before the memory "
        "hotplug parameters (docs/proc.md)"),
), "The kernel build and command line (`memory_hotplug.*` parameters); all optional.")  # fmt: skip

DAX = Section("dax", BootConfig, (
    Key("major", "dax_major", INT, "char major of `/dev/daxX.Y`, 1 to 4095", _from_to(1, 4095)),
    Key("drivers_autoprobe", "dax_drivers_autoprobe", BOOL, "boolean: the dax bus probes new devices"),
    Key("kmem", "kmem_loaded", BOOL, "boolean: the kmem driver is loaded"),
    Key("device_dax", "device_dax_loaded", BOOL, "boolean: the device_dax driver is loaded"),
    Key("hmem_region_idle", "dax_hmem_region_idle", BOOL, "boolean: `dax_hmem.region_idle`"),
), "The dax bus and its drivers; all optional.")  # fmt: skip

NODE = Section("node", NodeConfig, (
    Key("id", "id", INT, "unique, below 1024, in `possible_nodes`", _check_node_id),
    Key("cpus", "cpus", CPU_IDS, "id list, ids below 8192; each CPU in one node only", _check_cpu_ids),
    Key("memory", "memory", MEM_RANGES, 'boot RAM: inclusive range strings `"0x100000-0xbfffffff"` or tables '
        "`{ start = ..., size = ... }`; page aligned, non-empty"),
    _adistance("576 (DRAM)"),
    Key("offline_blocks", "offline_blocks", BLOCK_IDS, "id list: blocks of this node's boot RAM that are offline "
        "after boot (`memoryN/state`); not ones spanning zones or with holes"),
    Key("movable_blocks", "movable_blocks", BLOCK_IDS, "id list: blocks of this node's boot RAM that are online "
        "in ZONE_MOVABLE after boot (`valid_zones` `Movable`); as `offline_blocks`, and not offline"),
), "One per node with boot resources; at least one node needs boot RAM.", "nodes")  # fmt: skip

CXL_REGION = Section("cxl_region", CxlRegionConfig, (
    Key("start", "start", ADDRESS, "physical address, a multiple of 256 MiB"),
    Key("size", "size", SIZE, "a multiple of 256 MiB"),
    _TARGET_NODE,
    Key("decoder", "decoder", STR, 'the region\'s decoder, `"decoderX.Y"`', _check_decoder),
    _adistance("2880"),
    _NUMA_NODE,
    _driver_key("the match default (`kmem`)"),
), "A CXL RAM region (`regionN`, `dax_regionN/daxN.0`); any number.", "cxl_regions")  # fmt: skip

HMEM = Section("hmem", HmemConfig, (
    Key("start", "start", ADDRESS, "physical address, a multiple of 2 MiB"),
    Key("size", "size", SIZE, "a multiple of 2 MiB"),
    _TARGET_NODE,
    _adistance("2880"),
    _NUMA_NODE,
    _driver_key("the match default (`kmem`; `device_dax` with `hmem_region_idle`)"),
), "An EFI soft-reserved / HMAT range (platform device `hmem.N`); any number.", "hmem")  # fmt: skip

PMEM = Section("pmem", PmemConfig, (
    Key("namespace", "namespace", STR, '`"namespaceR.S"`: the device is `daxR.S`', _check_namespace),
    Key("start", "start", ADDRESS, "physical address, page aligned"),
    Key("size", "size", SIZE, "page multiple; the data area `size - reserve` a multiple of `align`"),
    _TARGET_NODE,
    Key("reserve", "reserve", SIZE, "metadata at the start (info block, struct pages); `start + reserve` "
        "a multiple of `align`"),
    Key("align", "align", SIZE, "the page size, 2 MiB or 1 GiB"),
    _adistance("2880"),
    _NUMA_NODE,
    _driver_key("the match default (`device_dax`)"),
), "A pmem namespace in devdax mode (a static dax region); any number.", "pmem")  # fmt: skip

CXL = Section("cxl", BootConfig, (
    Key("major", "cxl_major", INT, "char major of `/dev/cxl/memN`, 1 to 4095", _from_to(1, 4095)),
), "The CXL bus (docs/cxl.md); optional.")  # fmt: skip

CXL_WINDOW = Section("cxl_window", CxlWindowConfig, (
    Key("start", "start", ADDRESS, "host physical address, a multiple of 256 MiB"),
    Key("size", "size", SIZE, "a multiple of 256 MiB times the ways"),
    _TARGET_NODE,
    Key("host_bridges", "host_bridges", INT_LIST, "host bridge `_UID`s in interleave order (the ways: 1, 2, 3, 4, "
        "6, 8, 12 or 16)", default_doc="`[0]`"),
    Key("granularity", "granularity", INT, "interleave granularity in bytes, a power of two 256 to 16384"),
    Key("ram", "ram", BOOL, "boolean: volatile capable (`cap_ram`)"),
    Key("pmem", "pmem", BOOL, "boolean: persistent capable (`cap_pmem`)"),
    Key("locked", "locked", BOOL, "boolean: fixed configuration (`locked`)"),
    Key("qtg_id", "qtg_id", INT, "QoS throttling group (`qos_class`)", _from_to(0, 0xFFFF)),
), "A CXL fixed memory window (CEDT CFMWS): root decoder `decoder0.N`, N its index; any number.",
    "cxl_windows")  # fmt: skip

CXL_MEMDEV = Section("cxl_memdev", CxlMemdevConfig, (
    Key("host_bridge", "host_bridge", INT, "`_UID` of the host bridge it sits below (a root port of its own)",
        _from_to(0, 2**32 - 1)),
    Key("ram_size", "ram_size", SIZE, "volatile capacity, a multiple of 256 MiB"),
    Key("pmem_size", "pmem_size", SIZE, "persistent capacity, a multiple of 256 MiB"),
    Key("serial", "serial", ADDRESS, "device serial number", default_doc="the index + 1"),
    Key("numa_node", "numa_node", INT, "`numa_node` of the device", default_doc="the lowest node with CPUs"),
    Key("firmware_version", "firmware_version", STR, "`firmware_version`, at most 16 characters",
        lambda key, value: _fail(key, "longer than 16 characters") if len(value) > 16 else None),
), "A CXL Type-3 memory expander (`memN`, N its index); any number.", "cxl_memdevs")  # fmt: skip

#: Every declared section, in the order the docs list them.
SECTIONS = (KERNEL, NODE, DAX, CXL_REGION, HMEM, PMEM, CXL, CXL_WINDOW, CXL_MEMDEV)


def schema_markdown() -> str:
    """The key tables of docs/topology.md, one per section, from the declarations above."""
    out: list[str] = []
    for section in SECTIONS:
        title = f"[[{section.name}]]" if section.field else f"[{section.name}]"
        out += [f"### `{title}`", "", section.doc, "", "| key | value | default |", "|---|---|---|"]
        for key in section.keys:
            out.append(f"| `{key.name}` | {key.doc} | {_default_doc(section, key)} |")
        out.append("")
    return "\n".join(out)


def _default_doc(section: Section, key: Key) -> str:
    if key.default_doc is not None:
        return key.default_doc
    default = section.default(key)
    if default is _MISSING:
        return "required"
    assert default is not None, f"{section.name}.{key.name}: a None default needs default_doc"
    return "`" + key.kind.dump(key.name, default)[0].split(" = ", 1)[1] + "`"
