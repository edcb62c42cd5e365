"""The package's layers hold: no import cycles, no upward imports.

The graph is read from the source with ``ast`` and counts every import,
function-level ones too: an import deferred into a function hides a cycle
from Python's import machinery, not from the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "fakesysfs"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

# What the engine may import from outside itself: the errno classes, the
# booted configuration and the kernel lib text parsers (klib: lib/kstrtox.c).
ENGINE_MAY_IMPORT = {"fakesysfs.errors", "fakesysfs.config", "fakesysfs.klib"}

# What the sysfs tree must never import: the FUSE server, the CLI, the
# runner, the harness and the event delivery built on top of the tree.
SYSFS_MUST_NOT_IMPORT = {
    "fakesysfs.fuse_adapter",
    "fakesysfs._fuse",
    "fakesysfs.cli",
    "fakesysfs.daemon",
    "fakesysfs.run",
    "fakesysfs.nsops",
    "fakesysfs.debugfs",
    "fakesysfs.udevd",
    "fakesysfs.harness",
    "fakesysfs.journal",
    "fakesysfs.control",
    "fakesysfs.machine",
    "fakesysfs.simulation",
    "fakesysfs.netlink",
    "fakesysfs.udev_rules",
    "fakesysfs.monitor",
}


# Modules outside sysfs/ at the tree layer: views derived from the engine (the /proc files).
TREE_LAYER_MODULES = {"fakesysfs.procfs"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def resolve(target: str, known: set[str]) -> str | None:
    """The package module ``target`` names: itself, or its nearest package."""
    while target:
        if target in known:
            return target
        target = target.rpartition(".")[0]
    return None


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(name: str, path: Path, known: set[str], *, typing_only: bool = True) -> dict[str, int]:
    """Package modules that ``name`` imports, each with the first line.

    Imports anywhere count (module level, in functions, in methods); those
    under ``if TYPE_CHECKING:`` count only with ``typing_only``.
    """
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found: dict[str, int] = {}

    def add(target: str, line: int) -> None:
        hit = resolve(target, known)
        if hit is not None and hit != name:
            found.setdefault(hit, line)

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and is_type_checking(node.test) and not typing_only:
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                drop = node.level - 1 if is_package else node.level
                prefix = ".".join(base[: len(base) - drop])
                target = f"{prefix}.{node.module}" if node.module else prefix
            else:
                target = node.module or ""
            # ``from pkg import mod`` imports the submodule pkg.mod.
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                add(sub if sub in known else target, node.lineno)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def graph(*, typing_only: bool = True) -> dict[str, dict[str, int]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(name, path, known, typing_only=typing_only) for name, path in mods.items()}


def edge(graph_: dict[str, dict[str, int]], src: str, dst: str) -> str:
    where = modules()[src].relative_to(ROOT.parent)
    return f"{src} -> {dst} ({where}:{graph_[src][dst]})"


def cycles(graph_: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph_[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph_):
        if v not in index:
            visit(v)
    return out


def test_graph_sees_function_level_relative_and_type_only_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from . import a\n")
    (pkg / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from .b import B\n"
        "def f():\n"
        "    from . import c\n"
        "    import pkg.d.e\n"
    )
    known = {"pkg", "pkg.a", "pkg.b", "pkg.c", "pkg.d", "pkg.d.e"}
    assert imports_of("pkg", pkg / "__init__.py", known) == {"pkg.a": 1}
    assert imports_of("pkg.a", pkg / "a.py", known) == {"pkg.b": 3, "pkg.c": 5, "pkg.d.e": 6}
    assert imports_of("pkg.a", pkg / "a.py", known, typing_only=False) == {"pkg.c": 5, "pkg.d.e": 6}
    assert cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [["a", "b", "c"]]
    assert len(graph()) > 30


def test_no_import_cycles() -> None:
    # Imports that run count, deferred ones too; ``if TYPE_CHECKING:`` ones do
    # not (the engine's ``self: Kernel`` mixins name the class they mix into).
    g = graph(typing_only=False)
    found = cycles(g)
    if found:
        lines = []
        for comp in found:
            members = set(comp)
            lines.append("cycle: {" + ", ".join(comp) + "}")
            lines.extend("  " + edge(g, s, d) for s in comp for d in sorted(g[s]) if d in members)
        pytest.fail("\n".join(lines))


def test_engine_imports_nothing_above_it() -> None:
    g = graph()
    bad = [
        edge(g, src, dst)
        for src in sorted(g)
        if src.startswith("fakesysfs.engine")
        for dst in sorted(g[src])
        if not dst.startswith("fakesysfs.engine") and dst not in ENGINE_MAY_IMPORT
    ]
    assert not bad, "engine imports above itself:\n" + "\n".join(bad)


def test_sysfs_tree_never_imports_fuse_cli_runner_or_harness() -> None:
    g = graph()
    bad = [
        edge(g, src, dst)
        for src in sorted(g)
        if src.startswith("fakesysfs.sysfs") or src in TREE_LAYER_MODULES
        for dst in sorted(g[src])
        if dst in SYSFS_MUST_NOT_IMPORT
    ]
    assert not bad, "sysfs tree imports a layer above it:\n" + "\n".join(bad)


def test_the_cli_is_the_top_layer() -> None:
    # fakesysfs/cli/ turns arguments into calls of the modules below and their results
    # into output: nothing below calls back up (``python -m fakesysfs`` runs it).
    g = graph()
    bad = [
        edge(g, src, dst)
        for src in sorted(g)
        if not src.startswith("fakesysfs.cli") and src != "fakesysfs.__main__"
        for dst in sorted(g[src])
        if dst == "fakesysfs.cli" or dst.startswith("fakesysfs.cli.")
    ]
    assert not bad, "imports of the CLI from below it:\n" + "\n".join(bad)
    assert {"fakesysfs.cli.mount", "fakesysfs.cli.ctl", "fakesysfs.cli.udev"} <= set(g)
