"""What ``fakesysfs status`` reports, read from a sysfs tree through its files.

Only the ABI is read (``devices/system/memory``, ``devices/system/node``), so the same
summary works on a fakesysfs mount, a ``DIR/sys`` copy or the host's ``/sys``.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass

__all__ = ["BlockStatus", "MachineStatus", "NodeStatus", "is_sysfs_tree", "read_status"]

MEMORY_DIR = "devices/system/memory"
NODE_DIR = "devices/system/node"


@dataclass(slots=True)
class BlockStatus:
    id: int
    state: str
    zone: str | None  # online blocks only: the zone valid_zones names
    node: int | None


@dataclass(slots=True)
class NodeStatus:
    id: int
    #: From the node's meminfo, in bytes (None if it does not say).
    mem_total: int | None
    mem_free: int | None


@dataclass(slots=True)
class MachineStatus:
    block_size: int
    blocks: list[BlockStatus]
    nodes: list[NodeStatus]


def _read(path: str) -> str:
    with open(path, encoding="latin-1") as f:
        return f.read().strip()


def _numbered(directory: str, prefix: str) -> list[int]:
    pattern = re.compile(re.escape(prefix) + r"(\d+)")
    found = []
    for name in os.listdir(directory):
        match = pattern.fullmatch(name)
        if match:
            found.append(int(match.group(1)))
    return sorted(found)


def _meminfo(path: str) -> dict[str, int]:
    """``Node K MemTotal:   16515072 kB`` -> {"MemTotal": bytes}."""
    values = {}
    for line in _read(path).splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[0] == "Node" and fields[2].endswith(":"):
            with contextlib.suppress(ValueError):
                values[fields[2].rstrip(":")] = int(fields[3]) * 1024
    return values


def is_sysfs_tree(root: str) -> bool:
    return os.path.isdir(os.path.join(root, MEMORY_DIR))


def read_status(root: str) -> MachineStatus:
    """The memory blocks and nodes of the sysfs tree at ``root``. Raises OSError (a file
    that cannot be read), ValueError (a file that does not say what the ABI says)."""
    memory = os.path.join(root, MEMORY_DIR)
    nodes_dir = os.path.join(root, NODE_DIR)
    block_size = int(_read(os.path.join(memory, "block_size_bytes")), 16)

    node_ids = _numbered(nodes_dir, "node") if os.path.isdir(nodes_dir) else []
    block_node: dict[int, int] = {}
    for nid in node_ids:
        for bid in _numbered(os.path.join(nodes_dir, f"node{nid}"), "memory"):
            block_node[bid] = nid

    blocks = []
    for bid in _numbered(memory, "memory"):
        bdir = os.path.join(memory, f"memory{bid}")
        state = _read(os.path.join(bdir, "state"))
        zone = None
        if state == "online":
            with contextlib.suppress(OSError):
                zone = _read(os.path.join(bdir, "valid_zones"))
        blocks.append(BlockStatus(bid, state, zone, block_node.get(bid)))

    nodes = []
    for nid in node_ids:
        info = _meminfo(os.path.join(nodes_dir, f"node{nid}", "meminfo"))
        nodes.append(NodeStatus(nid, info.get("MemTotal"), info.get("MemFree")))
    return MachineStatus(block_size, blocks, nodes)
