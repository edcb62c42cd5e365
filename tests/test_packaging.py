"""What is shipped: the licence setup.cfg names, and an sdist from which the suite can run.

The sdist is built (setuptools' PEP 517 backend, the one pyproject.toml names) from a copy of
the checkout, so the checkout itself is never written, and must hold every file of the
package, the tests with their helpers, agents and topologies, the docs, the examples and
the scripts (MANIFEST.in).
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Directories whose every file the sdist must carry, besides the package.
SHIPPED_DIRS = ["fakesysfs", "tests", "docs", "examples", "scripts"]
SHIPPED_FILES = ["LICENSE", "README.md", "MANIFEST.in", "setup.cfg", "pyproject.toml", ".ci/run"]
#: What a checkout may hold that is not source (caches, a venv, build output).
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.pyc", "*.egg-info", "build", "dist",
                                    ".pytest_cache", ".hypothesis", ".mypy_cache", ".ruff_cache")


def test_the_licence_is_the_mit_licence_setup_cfg_names() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg.get("metadata", "license") == "MIT"
    assert cfg.get("metadata", "license_files").split() == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n\nCopyright (c) ") and "the fakesysfs authors" in text.splitlines()[2]
    assert "Permission is hereby granted, free of charge" in text


def test_the_sdist_carries_everything_the_tests_need(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    out = tmp_path / "dist"
    out.mkdir()
    script = "import sys, setuptools.build_meta as backend; print(backend.build_sdist(sys.argv[1]))"
    done = subprocess.run([sys.executable, "-c", script, str(out)], cwd=source, capture_output=True, text=True,
                          timeout=300, check=False)
    if done.returncode != 0 and "No module named 'setuptools'" in done.stderr:
        pytest.skip("setuptools is not installed in this environment (Python 3.12+ venvs have none)")
    assert done.returncode == 0, done.stderr
    with tarfile.open(out / done.stdout.split()[-1]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    wanted = set(SHIPPED_FILES)
    for directory in SHIPPED_DIRS:
        wanted |= {str(p.relative_to(source)) for p in (source / directory).rglob("*") if p.is_file()}
    assert {"tests/conftest.py", "tests/agents/online_movable.sh", "tests/topologies/example1.toml",
            "examples/agent.py", "scripts/bench.py", "docs/abi.md"} <= wanted
    assert sorted(wanted - names) == []
