"""Files fakesysfs only reads (a topology, an ``--import`` snapshot, udev rules files) are
read as regular files of bounded size (fakesysfs/safefile.py ``read_regular``): a FIFO
would block the command forever, ``/dev/zero`` would be read until memory runs out. Each
is refused in one line naming the file, and nothing is created on the way (no state file).

Every case runs in a child process with a timeout, so a regression fails instead of
hanging the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ENV, FAKESYSFS

TIMEOUT = 30

needs_dev_fuse = pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="mount and run check /dev/fuse first")


@pytest.fixture(params=["fifo", "dev-zero"])
def unreadable(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    """A path that is not a regular file, and the words the refusal names it with."""
    if request.param == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path)
        return path, "it is a FIFO, not a regular file"
    return Path("/dev/zero"), "it is a character device, not a regular file"


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # ulimit: a regression that reads /dev/zero to its end fails fast instead of eating the machine
    return subprocess.run(["sh", "-c", 'ulimit -v 4000000; exec "$@"', "sh", *argv], capture_output=True, text=True,
                          env=ENV, cwd=cwd, timeout=TIMEOUT, check=False)


def one_line(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode != 0, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


@needs_dev_fuse
@pytest.mark.parametrize("how", ["state -c", "--import", "-c"])
def test_mount_reads_a_topology_or_snapshot_only_from_a_regular_file(tmp_path: Path, unreadable: tuple[Path, str],
                                                                      how: str) -> None:
    path, why = unreadable
    (tmp_path / "mnt").mkdir()
    state = tmp_path / "new.state"
    extra = {"state -c": ["--state", str(state), "-c", str(path)], "--import": ["--state", str(state), "--import",
                                                                                 str(path)],
             "-c": ["-c", str(path)]}[how]
    done = run([*FAKESYSFS, "mount", str(tmp_path / "mnt"), *extra], tmp_path)
    one_line(done, str(path))
    assert why in done.stderr or how == "-c" and "does not exist or is not a file" in done.stderr, done.stderr
    assert not state.exists()
    assert not os.path.ismount(tmp_path / "mnt")


@needs_dev_fuse
def test_run_and_udev_read_rules_only_from_a_regular_file(tmp_path: Path, unreadable: tuple[Path, str]) -> None:
    path, why = unreadable
    one_line(run([*FAKESYSFS, "run", "--rules", str(path), "--", "true"], tmp_path), f"rules file {path}", why)
    one_line(run([*FAKESYSFS, "udev", str(tmp_path), "--rules", str(path)], tmp_path), f"rules file {path}", why)


SIMULATION = """
import sys
from fakesysfs import Simulation
try:
    Simulation(sys.argv[1], **({"state": sys.argv[2]} if len(sys.argv) > 2 else {}))
except OSError as exc:
    print(exc)
    sys.exit(1)
"""


@pytest.mark.parametrize("with_state", [False, True])
def test_simulation_reads_a_topology_only_from_a_regular_file(tmp_path: Path, unreadable: tuple[Path, str],
                                                              with_state: bool) -> None:
    path, why = unreadable
    state = tmp_path / "new.state"
    done = run([sys.executable, "-c", SIMULATION, str(path), *([str(state)] if with_state else [])], tmp_path)
    assert done.returncode == 1, done.stderr
    assert done.stdout.strip() == f"{path}: {why}"
    assert not state.exists()


def test_a_file_over_the_limit_is_refused_without_reading_it(tmp_path: Path) -> None:
    """16 MiB for a topology, 64 MiB for a snapshot (sparse files: nothing is written)."""
    from fakesysfs import Simulation
    from fakesysfs.safefile import UnsafeFileError
    from fakesysfs.topology import MAX_TOPOLOGY_BYTES

    big = tmp_path / "big.toml"
    with open(big, "wb") as f:
        f.truncate(MAX_TOPOLOGY_BYTES + 1)
    with pytest.raises(UnsafeFileError, match="larger than 16 MiB, the most fakesysfs reads for a topology"):
        Simulation(big)
    with open(big, "wb") as f:  # at the limit: read (and then refused as TOML)
        f.truncate(MAX_TOPOLOGY_BYTES)
    from fakesysfs import ConfigError

    with pytest.raises(ConfigError):
        Simulation(big)


@needs_dev_fuse
def test_mount_refuses_a_snapshot_over_64_mib(tmp_path: Path) -> None:
    (tmp_path / "mnt").mkdir()
    snapshot = tmp_path / "huge.state"
    with open(snapshot, "wb") as f:
        f.truncate((64 << 20) + 1)
    done = run([*FAKESYSFS, "mount", str(tmp_path / "mnt"), "--state", str(tmp_path / "new.state"), "--import",
                str(snapshot)], tmp_path)
    one_line(done, f"cannot read snapshot {snapshot}: it is larger than 64 MiB")
    assert not (tmp_path / "new.state").exists()
