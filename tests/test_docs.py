"""The repository stands alone: its docs define what its code cites.

Code, tests and the README cite behaviour by rule id (``R-STATE-02``) and point at
``docs/``; these tests fail when a citation names a file outside the repository, a rule id
has no definition in ``docs/``, a definition lacks its kernel source, or a relative link in
the README or ``docs/`` leads nowhere.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
#: What the repository consists of (besides .git): everything here is scanned.
SCANNED = ["fakesysfs", "tests", "scripts", "docs", "examples", ".ci", "README.md", "setup.cfg", "pyproject.toml",
           "MANIFEST.in", "LICENSE"]
#: Names of documents that live outside the repository; no file may cite them. Built from
#: parts, so that this file does not cite them either.
OUTSIDE = ("../" + "shared", *(f"{stem}.{'md'}" for stem in ("kernel-abi", "real-clients", "fuse-notes",
                                                            "proc-views", "cxl-abi")))

#: A rule id, optionally followed by more numbers of the same area: ``R-FI-01/02``,
#: ``R-KMEM-09/11/12``, ``R-KMEM-01..08`` (a range), ``R-KMEM-06.1`` (a step of R-KMEM-06).
RULE = re.compile(r"\bR-((?:[A-Z]+-)+)(\d{2})\b((?:(?:/|\.\.)\d{2}\b)*)")
#: A definition in docs/: a table row whose first cell is the id.
DEFINITION = re.compile(r"^\| (R-(?:[A-Z]+-)+\d{2}) \| (.+?) \| (.+?) \|$", re.MULTILINE)
#: A kernel source file in a definition's last cell: ``mm/memory_hotplug.c``.
KERNEL_FILE = re.compile(r"`(?:[\w-]+/)+[\w-]+\.[ch]`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def text_files() -> list[Path]:
    files: list[Path] = []
    for name in SCANNED:
        path = ROOT / name
        candidates = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in candidates:
            if "__pycache__" in file.parts or file.suffix in (".pyc", ".so"):
                continue
            try:
                file.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            files.append(file)
    return files


def cited_ids(text: str) -> set[str]:
    """Every rule id ``text`` cites, with ``/NN`` lists and ``..NN`` ranges expanded."""
    ids: set[str] = set()
    for match in RULE.finditer(text):
        area, first, rest = match.group(1), int(match.group(2)), match.group(3)
        ids.add(f"R-{area}{first:02d}")
        previous = first
        for sep, number in re.findall(r"(/|\.\.)(\d{2})", rest):
            last = int(number)
            numbers = range(previous + 1, last + 1) if sep == ".." else [last]
            ids.update(f"R-{area}{n:02d}" for n in numbers)
            previous = last
    return ids


def definitions() -> dict[str, tuple[str, str, Path]]:
    """Rule id -> (statement, kernel reference, defining file) for every id docs/ defines."""
    found: dict[str, tuple[str, str, Path]] = {}
    for doc in sorted(DOCS.glob("*.md")):
        for match in DEFINITION.finditer(doc.read_text(encoding="utf-8")):
            rule_id, statement, kernel = match.groups()
            assert rule_id not in found, f"{rule_id} defined twice ({found[rule_id][2].name}, {doc.name})"
            found[rule_id] = (statement, kernel, doc)
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", doc.read_text(encoding="utf-8"), re.MULTILINE)}


def test_the_cited_rule_id_grammar() -> None:
    assert cited_ids("(R-FI-01/02, R-KMEM-09..11; R-KMEM-06.1 and R-DAX-ID-01)") == {
        "R-FI-01", "R-FI-02", "R-KMEM-09", "R-KMEM-10", "R-KMEM-11", "R-KMEM-06", "R-DAX-ID-01",
    }
    assert cited_ids("R-KMEM-09/11/12") == {"R-KMEM-09", "R-KMEM-11", "R-KMEM-12"}
    assert cited_ids("ARR-X-01, R-x-01, R-SYS-1") == set()


def test_no_file_cites_a_document_outside_the_repository() -> None:
    offenders = []
    for file in text_files():
        for lineno, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            for name in OUTSIDE:
                if name in line:
                    offenders.append(f"{file.relative_to(ROOT)}:{lineno}: {name}")
    assert offenders == []


def test_every_cited_rule_id_is_defined_in_docs() -> None:
    defined = definitions()
    missing: dict[str, list[str]] = {}
    this = Path(__file__).resolve()
    for file in text_files():
        if file.resolve() == this:
            continue  # its examples are not citations
        for rule_id in cited_ids(file.read_text(encoding="utf-8")):
            if rule_id not in defined:
                missing.setdefault(rule_id, []).append(str(file.relative_to(ROOT)))
    assert missing == {}


def test_every_definition_states_the_rule_and_names_the_kernel_source() -> None:
    defined = definitions()
    assert len(defined) >= 60  # the ABI is not empty: a broken table pattern would be
    for rule_id, (statement, kernel, _doc) in defined.items():
        assert len(statement.split()) >= 8, rule_id
        assert KERNEL_FILE.search(kernel), f"{rule_id}: no kernel file in {kernel!r}"


@pytest.mark.parametrize("doc", ["README.md", *(f"docs/{p.name}" for p in sorted(DOCS.glob("*.md")))])
def test_relative_links_resolve_inside_the_repository(doc: str) -> None:
    source = ROOT / doc
    broken = []
    for target in LINK.findall(source.read_text(encoding="utf-8")):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (source.parent / path).resolve() if path else source.resolve()
        missing = not resolved.is_relative_to(ROOT) or not resolved.exists()
        if missing or (anchor and resolved.suffix == ".md" and anchor not in anchors(resolved)):
            broken.append(target)
    assert broken == []


def test_docs_are_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    linked = {Path(t.partition("#")[0]).name for t in LINK.findall(readme) if t.startswith("docs/")}
    assert {p.name for p in DOCS.glob("*.md")} <= linked
