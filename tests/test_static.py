"""Static checks as part of the suite, so that CI (which runs only pytest) enforces them:
``mypy --strict`` over the package and ruff over the package, tests and scripts, each with
the configuration the repository carries (setup.cfg ``[mypy]``, pyproject.toml ``[tool.ruff]``).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _run_tool(module: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install -e '.[test]')")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600, check=False)


def test_mypy_strict_finds_nothing(tmp_path: Path) -> None:
    # A private cache: concurrent runs (and read-only checkouts) never share or write one.
    done = _run_tool("mypy", ["--config-file", str(REPO / "setup.cfg"), "--cache-dir", str(tmp_path / "mypy")])
    assert done.returncode == 0, f"mypy (setup.cfg [mypy]) reports:\n{done.stdout}{done.stderr}"


def test_ruff_finds_nothing() -> None:
    done = _run_tool("ruff", ["check", "--no-cache", "--config", str(REPO / "pyproject.toml"),
                              "fakesysfs", "tests", "scripts", "examples"])
    assert done.returncode == 0, f"ruff check (pyproject.toml [tool.ruff]) reports:\n{done.stdout}{done.stderr}"


def test_the_configurations_keep_their_strength() -> None:
    """The checks above are only as strong as their configuration: mypy strict over the whole
    package; ruff with at least the rule families issue 17 asks for."""
    import configparser
    import tomllib

    ruff = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["ruff"]
    assert {"E", "F", "I", "UP", "B", "ARG"} <= set(ruff["lint"]["select"])
    assert ruff["line-length"] == 120
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    assert cfg.getboolean("mypy", "strict"), "setup.cfg [mypy] must keep strict = True"
    assert [f.strip() for f in cfg.get("mypy", "files").split(",")] == ["fakesysfs", "examples"]
    ignored = [s for s in cfg.sections()
               if s.startswith("mypy-") and cfg.getboolean(s, "ignore_errors", fallback=False)]
    assert not ignored, f"modules excluded from the type check: {ignored}"
