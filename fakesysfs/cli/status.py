"""``fakesysfs status MOUNTPOINT``: the nodes and memory blocks of a mount (or any sysfs tree),
summarized (fakesysfs/status.py reads them)."""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import CliError

if TYPE_CHECKING:
    from ..status import BlockStatus, MachineStatus

_ZONE_CHARS = {"normal": "N", "movable": "M", "dma32": "D", "dma": "d", "device": "V", "none": "*"}
_MAP_WIDTH = 64
_MAX_RANGES = 64


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = commands.add_parser("status", help="summarize the nodes and memory blocks of a mount")
    p.add_argument("mountpoint", metavar="MOUNTPOINT")
    p.add_argument("--json", action="store_true",
                   help="print the same as one JSON document (sizes in bytes, every block range)")
    p.set_defaults(func=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    from ..mountpoint import is_dead_fuse_mount
    from ..status import is_sysfs_tree, read_status

    mountpoint = os.path.abspath(args.mountpoint)
    if is_dead_fuse_mount(mountpoint):
        raise CliError(f"{mountpoint} is a FUSE mount whose daemon is gone: run 'fakesysfs umount {mountpoint}'")
    if not os.path.isdir(mountpoint):
        raise CliError(f"{mountpoint} does not exist or is not a directory")
    if not is_sysfs_tree(mountpoint):
        raise CliError(f"{mountpoint} does not look like a sysfs tree (no devices/system/memory)")
    try:
        found = read_status(mountpoint)
    except OSError as exc:
        raise CliError(f"cannot read {exc.filename or mountpoint}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise CliError(f"unexpected content under {mountpoint}: {exc}") from None
    if args.json:
        print(json.dumps(status_json(mountpoint, found), indent=1))
    else:
        print("\n".join(status_lines(mountpoint, found)))
    return 0


def status_json(root: str, found: MachineStatus) -> dict[str, Any]:
    """What ``status_lines`` says, for scripts: sizes in bytes, a zone only for online blocks
    (null otherwise), every range (the text stops at 64), no map (the ranges hold it)."""
    blocks = found.blocks
    tally = Counter((b.state, b.zone) for b in blocks)
    return {
        "root": root,
        "block_size": found.block_size,
        "blocks": len(blocks),
        "nodes": [{"id": node.id, "mem_total": node.mem_total, "mem_free": node.mem_free,
                   "blocks": sum(b.node == node.id for b in blocks),
                   "online": sum(b.node == node.id and b.state == "online" for b in blocks)}
                  for node in found.nodes],
        "states": [{"state": state, "zone": zone, "blocks": count, "bytes": count * found.block_size}
                   for (state, zone), count in sorted(tally.items(), key=lambda item: (item[0][0], item[0][1] or ""))],
        "ranges": [{"name": _range_name(run), "first": run[0].id, "last": run[-1].id, "node": run[0].node,
                    "state": run[0].state, "zone": run[0].zone, "blocks": len(run)}
                   for run in _runs(blocks)],
    }


def _human(nbytes: int) -> str:
    size = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if size == int(size) else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def status_lines(root: str, found: MachineStatus) -> list[str]:
    blocks, block_size = found.blocks, found.block_size
    present = _human(len(blocks) * block_size)
    lines = [f"{root}: {len(blocks)} memory blocks of {_human(block_size)} ({present} present)", ""]
    lines.append("Nodes:")
    if not found.nodes:
        lines.append("  (none)")
    for node in found.nodes:
        mine = [b for b in blocks if b.node == node.id]
        online = sum(b.state == "online" for b in mine)
        total, free = node.mem_total, node.mem_free
        lines.append(
            f"  node{node.id:<3} MemTotal {_human(total) if total is not None else '?':>10}  "
            f"MemFree {_human(free) if free is not None else '?':>10}  "
            f"blocks {len(mine)} ({online} online)"
        )

    lines.append("")
    lines.append("Blocks by state and zone:")
    tally = Counter((b.state, b.zone or "") for b in blocks)
    for (state, zone), count in sorted(tally.items()):
        label = f"{state} {zone}".strip()
        lines.append(f"  {label:<22} {count:>7}  {_human(count * block_size):>10}")
    if not blocks:
        lines.append("  (none)")

    lines.append("")
    lines.append("Block ranges (node, state and zone, blocks):")
    lines.extend(_block_ranges(blocks))

    lines.append("")
    lines.append(
        "Block map (N Normal, M Movable, D DMA32, d DMA, V Device, * spans zones, "
        ". offline, g going-offline, _ no block):"
    )
    lines.extend(_block_map(blocks))
    return lines


def _runs(blocks: Sequence[BlockStatus]) -> list[list[BlockStatus]]:
    """Runs of consecutive blocks on one node in one state and zone."""
    runs: list[list[BlockStatus]] = []
    for block in blocks:
        last = runs[-1][-1] if runs else None
        if last and block.id == last.id + 1 and (block.node, block.state, block.zone) == (last.node, last.state,
                                                                                         last.zone):
            runs[-1].append(block)
        else:
            runs.append([block])
    return runs


def _range_name(run: Sequence[BlockStatus]) -> str:
    """As the files are named: ``memory522-649`` (``memory40`` alone)."""
    first, last = run[0], run[-1]
    return f"memory{first.id}" + (f"-{last.id}" if last.id != first.id else "")


def _block_ranges(blocks: Sequence[BlockStatus]) -> list[str]:
    """The runs, named as the files are (``memory522-649``): the map shows where blocks lie,
    this says which to use."""
    runs = _runs(blocks)
    lines = []
    for run in runs[:_MAX_RANGES]:
        first, name = run[0], _range_name(run)
        node = f"node{first.node}" if first.node is not None else "no node"
        lines.append(f"  {name:<18} {node:<7} {f'{first.state} {first.zone or str()}'.strip():<22} {len(run):>7}")
    if len(runs) > _MAX_RANGES:
        lines.append(f"  ... {len(runs) - _MAX_RANGES} more ranges (the map below has them all)")
    return lines or ["  (none)"]


def _block_char(block: BlockStatus) -> str:
    if block.state == "online":
        return _ZONE_CHARS.get((block.zone or "").lower(), "?")
    if block.state == "offline":
        return "."
    if block.state == "going-offline":
        return "g"
    return "?"


def _block_map(blocks: Sequence[BlockStatus]) -> list[str]:
    if not blocks:
        return ["  (none)"]
    chars = {b.id: _block_char(b) for b in blocks}
    last = max(chars)
    rows = []
    for start in range(0, last + 1, _MAP_WIDTH):
        row = "".join(chars.get(i, "_") for i in range(start, min(start + _MAP_WIDTH, last + 1)))
        rows.append((start, row))
    lines = []
    i = 0
    while i < len(rows):  # fold runs of identical rows so huge machines stay readable
        start, row = rows[i]
        j = i
        while j + 1 < len(rows) and rows[j + 1][1] == row:
            j += 1
        lines.append(f"  {start:>8}  {row}")
        if j > i:
            lines.append(f"  {'':>8}  ... same for blocks {rows[i + 1][0]}-{rows[j][0] + len(row) - 1}")
        i = j + 1
    return lines
