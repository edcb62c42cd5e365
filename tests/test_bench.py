"""scripts/bench.py and its bare FUSE floor (issue 9).

The floor is only a floor if it serves the same tree as fakesysfs: the same paths, kinds,
modes, link targets and values (a block of a ``memoryN`` family answers its template's
values), so that every operation the benchmark times does the same FUSE requests on both.
These tests check that in-process, then run the benchmark itself in
its smallest form and check that it prints every figure beside its floors. No test times
anything: the figures are the script's output, never a pass/fail.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

from bench_bare_fuse import BareOperations, snapshot

from fakesysfs.engine import Kernel
from fakesysfs.errors import KernelError
from fakesysfs.sysfs import build_tree
from fakesysfs.sysfs.tree import Tree
from fakesysfs.topology import load_topology


class _OSError(OSError):
    def __init__(self, err: int) -> None:
        super().__init__(err, os.strerror(err))


def _tree(text: str | None = None) -> Tree:
    return build_tree(Kernel(load_topology(text=text) if text is not None else load_topology()))


def _walk(tree: Tree, path: str = "") -> list[str]:
    out = []
    for name in tree.readdir(path or "/"):
        sub = f"{path}/{name}"
        out.append(sub)
        if stat.S_ISDIR(tree.getattr(sub).mode):
            out += _walk(tree, sub)
    return out


def _bare(tree: Tree) -> BareOperations:
    # Through JSON, as bench.py hands the snapshot to the floor's process.
    return BareOperations(json.loads(json.dumps(snapshot(tree))), cache=True, os_error=_OSError)


def _member(bare: BareOperations, path: str) -> bool:
    """``path`` is below a ``memoryN`` that the floor answers from its family's template."""
    found = bare._template(path)
    return found is not None and found[1] != found[2]


def _same(tree: Tree, bare: BareOperations, paths: list[str]) -> None:
    """Exact for every path the snapshot holds; a family member has the template's shape
    (as many entries, same kinds and modes), which is what makes its requests the same."""
    for path in paths:
        member = _member(bare, path)
        if member and re.search(r"/memory\d+/node\d+$", path):
            continue  # the member's node link is named after the template's node
        st = tree.getattr(path)
        assert bare.getattr(path)["st_mode"] & 0o170000 == stat.S_IFMT(st.mode), path
        if stat.S_ISDIR(st.mode):
            names = [n for n in bare.readdir(path, 0) if n not in (".", "..")]
            if member:
                assert len(names) == len(tree.readdir(path)), path
            else:
                assert sorted(names) == sorted(tree.readdir(path)), path
        elif stat.S_ISLNK(st.mode):
            assert bare.readlink(path) == tree.readlink(path), path
        else:
            assert bare.getattr(path)["st_mode"] == st.mode, path
            try:
                text = tree.cat(path)
            except KernelError:
                continue  # unreadable in fakesysfs (write-only, or its show fails): not timed
            served = bare.read(path, 4096, 0, 0)
            if member:  # the template's value: other bytes, the same requests
                assert bool(served) == bool(text), path
            else:
                assert served == text.encode("latin-1"), path


def test_bare_floor_serves_the_default_tree_exactly() -> None:
    tree = _tree()
    paths = _walk(tree)
    assert len(paths) > 1000
    _same(tree, _bare(tree), paths)


def test_bare_floor_families_answer_every_block_of_a_large_machine() -> None:
    """At scale the snapshot keeps one ``memoryN`` per directory as a template; every other
    block, its files and its node link must still read as fakesysfs serves them."""
    import bench

    tree = _tree(bench.scale_topology(2048))
    bare = _bare(tree)
    memory = "/devices/system/memory"
    assert sorted(n for n in bare.readdir(memory, 0) if n not in (".", "..")) == sorted(tree.readdir(memory))
    blocks = sorted(int(n[6:]) for n in tree.readdir(memory) if re.fullmatch(r"memory\d+", n))
    assert len(blocks) == 2048
    sample = []
    for block in (blocks[0], blocks[1], blocks[23], blocks[24], blocks[1000], blocks[-1]):
        base = f"{memory}/memory{block}"
        sample += [base, *(f"{base}/{n}" for n in tree.readdir(base)), f"/devices/system/node/node0/memory{block}"]
    _same(tree, bare, sample)
    with pytest.raises(OSError) as missing:
        bare.getattr(f"{memory}/memory{blocks[-1] + 1}/state")
    assert missing.value.errno == errno.ENOENT


@pytest.mark.fuse
@pytest.mark.skipif(os.geteuid() != 0, reason="the benchmark mounts FUSE filesystems as root")
def test_benchmark_prints_every_figure_beside_its_floors(tmp_path: Path) -> None:
    """The smallest run (per-operation table only, a few samples): every operation has a
    figure for fakesysfs and each floor, and a ratio."""
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench.py"), "--quick", "--skip", "jobs,scale", "--rounds", "2",
         "--batch", "4", "--json", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
        env=dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache")),  # its bytecode cache, not the user's
    )
    assert done.returncode == 0, done.stderr[-2000:]
    import bench

    for mode in ("unpinned", "pinned"):
        assert f"### Per operation, {mode}" in done.stdout
    for _op, label in bench.OPS:
        rows = [line for line in done.stdout.splitlines() if line.startswith(f"| {label} |")]
        assert len(rows) == 2, label  # unpinned and pinned
        for row in rows:
            cells = [c.strip() for c in row.strip("|").split("|")]
            fake, ratios = cells[1], cells[3::2]
            assert float(fake) > 0, row
            assert ratios[0].endswith("x"), row  # bare FUSE: every operation has this floor
    figures = json.loads(out.read_text())["per_op"]["pinned"]
    assert set(figures) == {op for op, _ in bench.OPS}
    assert all(figures[op]["fakesysfs"] > 0 and figures[op]["bare FUSE"] > 0 for op in figures)
