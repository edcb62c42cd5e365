"""Safe files (issue 16, items 5 and 6): whatever fakesysfs writes as root (``--state``,
``--trace``, ``--log-file``, ``ctl export``, control-socket directories) never follows a
link a neighbour planted, never uses a neighbour's file, and cannot be squatted.

The neighbour is a real unprivileged uid (65534, a forked child that drops to it): its
links, files and directories are real, so the kernel's own rules apply as on a shared
machine. Planted links sit in a root-owned sticky directory, as in /tmp.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import fuse_unavailable_reason

from fakesysfs import Simulation
from fakesysfs.journal import read_state
from fakesysfs.safefile import UnsafeFileError

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "fakesysfs.cli"]
NEIGHBOUR = 65534
PRECIOUS = "precious root data\n"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the neighbour is a real other uid")


def as_neighbour(action: Callable[[], None]) -> None:
    """Run ``action`` in a forked child that is uid/gid 65534 with no groups."""
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.setgroups([])
            os.setgid(NEIGHBOUR)
            os.setuid(NEIGHBOUR)
            action()
            status = 0
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the neighbour's action failed"


@pytest.fixture
def shared() -> Iterator[Path]:
    """A root-owned sticky world-writable directory, like /tmp (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="fakesysfs-shared-", dir="/tmp"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A root file a planted link points at: it must never change."""
    path = tmp_path / "victim"
    path.write_text(PRECIOUS)
    path.chmod(0o644)
    return path


def plant_link(link: Path, target: Path) -> None:
    as_neighbour(lambda: os.symlink(target, link))
    assert os.lstat(link).st_uid == NEIGHBOUR


def env(**extra: str) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO), **extra)


def cli(*args: str, environ: dict[str, str] | None = None, umask: int | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False,
                          env=environ or env(), preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)


def one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fakesysfs: error: "), done.stderr
    for word in words:
        assert word in lines[0], done.stderr


def umount(mountpoint: Path) -> None:
    for tool in ("fusermount3", "fusermount"):
        if subprocess.run([tool, "-u", str(mountpoint)], capture_output=True, timeout=30, check=False).returncode == 0:
            return
    subprocess.run([*CLI, "umount", "--lazy", str(mountpoint)], capture_output=True, timeout=30, check=False)


@pytest.fixture
def mnt(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "mnt"
    path.mkdir()
    yield path
    if os.path.ismount(path):
        umount(path)


fuse = pytest.mark.skipif(fuse_unavailable_reason() is not None, reason=str(fuse_unavailable_reason()))


def mount(mountpoint: Path, *args: str, environ: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = cli("mount", str(mountpoint), *args, environ=environ)
    assert done.returncode == 0, done.stderr
    return done


# -- files: --state, --trace, --log-file, ctl export -----------------------------------------------
@fuse
def test_ctl_export_never_writes_through_a_planted_link(shared: Path, victim: Path, mnt: Path,
                                                        tmp_path: Path) -> None:
    done = mount(mnt)
    daemon = int(done.stdout.split("(pid ")[1].split(")")[0])
    # A link at the destination: refused in one line, nothing written through it.
    plant_link(shared / "snap.state", victim)
    done = cli("ctl", str(mnt), "export", str(shared / "snap.state"))
    one_line_error(done, str(shared / "snap.state"), "symbolic link")
    # A link at the temporary name the daemon used to write (DEST.tmp-<pid>): never used now.
    plant_link(shared / f"other.state.tmp-{daemon}", victim)
    done = cli("ctl", str(mnt), "export", str(shared / "other.state"))
    assert done.returncode == 0, done.stderr
    st = os.lstat(shared / "other.state")
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0
    assert read_state(shared / "other.state").records == []
    assert sorted(os.listdir(shared)) == ["other.state", f"other.state.tmp-{daemon}", "snap.state"], \
        "the temporary file was renamed away, nothing left beside it"
    # A directory the neighbour owns, and the neighbour's link to a root directory, on the way.
    home, rootdir = shared / "home", tmp_path / "rootdir"
    as_neighbour(lambda: os.mkdir(home, 0o755))
    rootdir.mkdir()
    plant_link(shared / "evil", rootdir)
    done = cli("ctl", str(mnt), "export", str(home / "snap.state"))
    one_line_error(done, f"directory {home} is owned by uid {NEIGHBOUR}")
    done = cli("ctl", str(mnt), "export", str(shared / "evil" / "snap.state"))
    one_line_error(done, f"{shared / 'evil'} is a symbolic link owned by uid {NEIGHBOUR}")
    assert os.listdir(home) == [] and os.listdir(rootdir) == []
    assert victim.read_text() == PRECIOUS and os.path.islink(shared / "snap.state")


@fuse
@pytest.mark.parametrize("option", ["mount --state", "mount --log-file", "run --trace", "run --log-file"])
def test_a_planted_link_as_state_trace_or_log_file_is_refused(shared: Path, victim: Path, mnt: Path,
                                                             option: str) -> None:
    command, flag = option.split()
    link = shared / "file"
    plant_link(link, victim)
    if command == "mount":
        done = cli("mount", str(mnt), flag, str(link))
    else:
        done = cli("run", flag, str(link), "--", "true")
    one_line_error(done, f"{link}: it is a symbolic link")
    assert victim.read_text() == PRECIOUS
    assert not os.path.ismount(mnt)


@fuse
def test_a_fifo_as_trace_file_is_refused_without_blocking(shared: Path) -> None:
    fifo = shared / "fifo"
    as_neighbour(lambda: os.mkfifo(fifo, 0o600))
    one_line_error(cli("run", "--trace", str(fifo), "--", "true", timeout=30), str(fifo), "FIFO")
    os.chown(fifo, 0, 0)  # our own FIFO is no better: a trace file is a regular file
    one_line_error(cli("run", "--trace", str(fifo), "--", "true", timeout=30), str(fifo), "FIFO")


def test_a_state_file_others_could_have_forged_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "s.state"
    with Simulation(state=state) as sim:
        sim.echo("/devices/system/memory/memory522/state", "online_movable")
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    os.chown(state, NEIGHBOUR, NEIGHBOUR)
    with pytest.raises(UnsafeFileError, match=f"owned by uid {NEIGHBOUR}, not by you"):
        Simulation(state=state)
    os.chown(state, 0, 0)
    state.chmod(0o666)
    with pytest.raises(UnsafeFileError, match=r"writable by group or others \(mode 0666\)"):
        Simulation(state=state)
    state.chmod(0o600)
    os.link(state, tmp_path / "second-name")
    with pytest.raises(UnsafeFileError, match="has 2 hard links"):
        Simulation(state=state)
    os.unlink(tmp_path / "second-name")
    with Simulation(state=state) as sim:  # the same file, safe again: resumed
        assert sim.cat("/devices/system/memory/memory522/state") == "online\n"


@fuse
def test_mount_refuses_another_users_state_file_in_one_line(tmp_path: Path, mnt: Path) -> None:
    state = tmp_path / "s.state"
    Simulation(state=state).close()
    os.chown(state, NEIGHBOUR, NEIGHBOUR)
    one_line_error(cli("mount", str(mnt), "--state", str(state)),
                   f"cannot use state file {state}: it is owned by uid {NEIGHBOUR}")
    assert not os.path.ismount(mnt)


@fuse
def test_new_files_are_0600_and_a_file_of_ours_is_appended_to(tmp_path: Path, mnt: Path) -> None:
    state, log, snap, trace = (tmp_path / name for name in ("s.state", "mount.log", "snap.state", "t.jsonl"))
    done = cli("mount", str(mnt), "--state", str(state), "--log-file", str(log), umask=0)
    assert done.returncode == 0, done.stderr
    assert cli("ctl", str(mnt), "export", str(snap), umask=0).returncode == 0
    umount(mnt)
    trace.write_text("an earlier line\n")
    trace.chmod(0o644)
    done = cli("run", "--trace", str(trace), "--log-file", str(tmp_path / "run.log"), "--", "sh", "-c",
               "echo online_movable > /sys/devices/system/memory/memory522/state", umask=0)
    assert done.returncode == 0, done.stderr
    for path in (state, log, snap, tmp_path / "run.log"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    lines = trace.read_text().splitlines()
    assert len(lines) == 2 and lines[0] == "an earlier line" and "memory522/state" in lines[1], lines
