"""The README's examples run as shown, so they cannot drift from what fakesysfs does.

Code blocks marked ``<!-- example: examples/FILE -->`` must be that file, byte for byte, and
each file runs here: the Python script, the pytest test (in a pytest of its own) and the
shell test, each against a real agent (``examples/agent.py``). The shell session of "Poking at
the tree" is replayed command by command against the default topology, its output compared
with the README's, and the udev lines run as a script with the rules file they name.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakesysfs import Simulation

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
EXAMPLES = ROOT / "examples"
#: A fenced block, with the ``<!-- example: PATH -->`` line that may stand before it.
BLOCK = re.compile(r"(?:^<!-- example: (?P<path>\S+) -->\n)?^```(?P<lang>\w*)\n(?P<body>.*?)^```$",
                   re.MULTILINE | re.DOTALL)
#: Where the README's commands mount; the tests substitute their own mountpoint.
README_MOUNT = "/tmp/fakesys"

fuse = pytest.mark.fuse


def blocks() -> list[re.Match[str]]:
    return list(BLOCK.finditer(README))


def block_after(heading: str, contains: str) -> str:
    """The first code block after ``heading`` that contains ``contains``."""
    start = README.index(heading)
    return next(m.group("body") for m in blocks() if m.start() > start and contains in m.group("body"))


def test_example_blocks_are_the_files() -> None:
    included = {m.group("path"): m.group("body") for m in blocks() if m.group("path")}
    assert set(included) >= {"examples/simulation.py", "examples/test_agent.py", "examples/agent_test.sh"}
    for path, body in included.items():
        assert (ROOT / path).read_text(encoding="utf-8") == body, f"README's copy of {path} differs from the file"


def test_every_example_file_is_in_the_readme() -> None:
    for file in sorted(EXAMPLES.iterdir()):
        if file.is_file():
            assert f"examples/{file.name}" in README, f"README.md does not mention examples/{file.name}"


@pytest.fixture
def fakesysfs_on_path(tmp_path: Path) -> dict[str, str]:
    """An environment whose ``fakesysfs`` is this checkout's, run by this interpreter."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shim = bindir / "fakesysfs"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m fakesysfs.cli "$@"\n')
    shim.chmod(0o755)
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": pythonpath}


@pytest.fixture
def default_mount() -> Iterator[Path]:
    with Simulation() as sim:
        yield sim.mount()


def run(command: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


@fuse
def test_python_example_runs(fakesysfs_on_path: dict[str, str]) -> None:
    done = run([sys.executable, str(EXAMPLES / "simulation.py")], env=fakesysfs_on_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == "the agent onlined all 32 blocks as movable\n"


@fuse
def test_fleet_example_runs(fakesysfs_on_path: dict[str, str]) -> None:
    """examples/fleet.py at 3 hosts (README, "Performance" runs it at 50)."""
    done = run([sys.executable, str(EXAMPLES / "fleet.py"), "3"], env=fakesysfs_on_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == "3 hosts: the agents onlined 96 blocks as movable\n"


@fuse
def test_pytest_example_passes(fakesysfs_on_path: dict[str, str]) -> None:
    done = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "examples/test_agent.py"],
               env=fakesysfs_on_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^1 passed\b", done.stdout, re.MULTILINE), done.stdout


@fuse
def test_shell_example_passes(fakesysfs_on_path: dict[str, str]) -> None:
    done = run(["sh", "examples/agent_test.sh"], env=fakesysfs_on_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "the agent onlined all 16 blocks as movable"


def transcript(text: str) -> list[tuple[str, list[str]]]:
    """``$ command`` lines with the lines they print (trailing ``  # comments`` dropped)."""
    steps: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            steps[-1][1].append(re.sub(r"\s{2,}#.*$", "", line))
    return steps


def matches(expected: list[str], actual: list[str]) -> bool:
    """``actual`` is ``expected``, where a ``...`` line stands for any number of lines."""
    pattern = "".join(r"(?:[^\n]*\n)*?" if line == "..." else re.escape(line) + "\n" for line in expected)
    return re.fullmatch(pattern, "".join(f"{line}\n" for line in actual)) is not None


def test_matches_handles_elisions() -> None:
    assert matches(["a", "...", "d"], ["a", "b", "c", "d"])
    assert matches(["a", "...", "d"], ["a", "d"])
    assert matches(["...", "b", "..."], ["a", "b", "c"])
    assert not matches(["a", "...", "d"], ["a", "b", "c", "e"])
    assert not matches(["a", "b"], ["a", "b", "c"])


@fuse
def test_poking_at_the_tree_runs_as_shown(default_mount: Path, fakesysfs_on_path: dict[str, str]) -> None:
    """Each command of the README's session, on the default topology, prints what the README
    shows (bash's messages included: the errnos the stores return)."""
    cwd = ROOT
    for command, expected in transcript(block_after("## Poking at the tree", "$ fakesysfs status")):
        command = command.replace(README_MOUNT, str(default_mount))
        if command.startswith("cd "):
            cwd = Path(command[3:])
            continue
        done = subprocess.run(["bash", "-c", command], cwd=cwd, env=fakesysfs_on_path, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=60, check=False)
        # bash -c says "bash: line 1: echo: ..." where an interactive bash says "bash: echo: ..."
        printed = [re.sub(r"^bash: line \d+: ", "bash: ", line) for line in done.stdout.splitlines()]
        assert matches(expected, printed), f"$ {command}\n{done.stdout}"


@fuse
def test_udev_example_onlines_the_rebound_blocks(default_mount: Path, fakesysfs_on_path: dict[str, str],
                                                 tmp_path: Path) -> None:
    script = block_after("## Events", "fakesysfs udev")
    assert "examples/80-memory-auto-online.rules" in script
    script = script.replace(README_MOUNT, str(default_mount)).replace("/tmp/udev.log", str(tmp_path / "udev.log"))
    done = run(["bash", "-euc", script], env=fakesysfs_on_path, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.fullmatch(r"\s*memory522-649\s+node1\s+online Movable\s+128\s*", done.stdout), done.stdout


@fuse
@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
def test_status_json_example_lists_the_offline_ranges(default_mount: Path,
                                                      fakesysfs_on_path: dict[str, str]) -> None:
    """The CLI reference's ``status --json | jq`` line prints the default topology's offline ranges."""
    line = re.search(r"`(fakesysfs status MNT --json \| jq [^`]*)`", README)
    assert line is not None, "the CLI reference no longer shows the status --json example"
    done = run(["bash", "-c", line.group(1).replace("MNT", str(default_mount))], env=fakesysfs_on_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["memory522-649", "memory1024-1087"]


@fuse
def test_a_child_started_in_the_mount_does_not_stall_the_process_serving_it() -> None:
    """Debian 12's Python (3.11.2) holds the GIL across subprocess's vfork() until the child
    execs (gh-104372): a child whose cwd is in a mount this process serves from a thread would
    wait for that thread forever, and the README's session (cwd in the mount) would hang. Run
    in a process of its own, so a deadlock ends in the timeout rather than the suite."""
    script = (
        "import subprocess\n"
        "from fakesysfs import Simulation\n"
        "with Simulation() as sim:\n"
        "    memory = sim.mount() / 'devices/system/memory'\n"
        "    for _ in range(20):\n"
        "        done = subprocess.run(['cat', 'block_size_bytes'], cwd=memory, capture_output=True, text=True)\n"
        "        assert done.stdout == '8000000\\n', done\n"
        "print('ok')\n"
    )
    done = run([sys.executable, "-c", script], timeout=60)
    assert (done.returncode, done.stdout) == (0, "ok\n"), done.stderr
