"""Safe files (issue 16, items 5 and 6): whatever fakesysfs writes as root (``--state``,
``--trace``, ``--log-file``, ``ctl export``, control-socket directories) never follows a
link a neighbour planted, never uses a neighbour's file, and cannot be squatted.

The neighbour is a real unprivileged uid (65534, a forked child that drops to it): its
links, files and directories are real, so the kernel's own rules apply as on a shared
machine. Planted links sit in a root-owned sticky directory, as in /tmp.
"""

from __future__ import annotations

import ctypes
import os
import re
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import FAKESYSFS, REPO, fuse_unavailable_reason

from fakesysfs import Simulation
from fakesysfs.journal import read_state
from fakesysfs.safefile import UnsafeFileError, open_append, replace

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
    return subprocess.run([*FAKESYSFS, *args], capture_output=True, text=True, timeout=timeout, check=False,
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
    subprocess.run([*FAKESYSFS, "umount", "--lazy", str(mountpoint)], capture_output=True, timeout=30, check=False)


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


def test_on_the_way_links_we_own_are_followed_and_loose_directories_refused(shared: Path, tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, shared / "alias")  # like /var/run -> /run: ours, in a sticky directory
    replace(shared / "alias" / "snap", [b"data\n"])
    fd = open_append(shared / "alias" / "log")
    os.close(fd)
    assert sorted(os.listdir(real)) == ["log", "snap"] and (real / "snap").read_bytes() == b"data\n"
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o777)  # anyone may rename entries here: not sticky
    with pytest.raises(UnsafeFileError, match=r"writable by group or others and not sticky \(mode 0777\)"):
        open_append(loose / "log")
    assert os.listdir(loose) == []


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


# -- control-socket directories -----------------------------------------------------------------
def _no_xdg(tmpdir: Path) -> dict[str, str]:
    environ = env(TMPDIR=str(tmpdir))
    environ.pop("XDG_RUNTIME_DIR", None)
    return environ


def _published(mountpoint: Path) -> str:
    return (mountpoint / "kernel/debug/fakesysfs/control").read_text().strip()


@fuse
@pytest.mark.parametrize("squat", ["directory", "symlink"])
def test_a_squatted_socket_directory_still_gives_root_a_control_socket(shared: Path, mnt: Path, tmp_path: Path,
                                                                       squat: str) -> None:
    squatted = shared / "fakesysfs-0"
    if squat == "directory":
        as_neighbour(lambda: os.mkdir(squatted, 0o777))
    else:  # to a directory of root's that passes every check but is not where sockets go
        rootdir = tmp_path / "private"
        rootdir.mkdir(mode=0o700)
        plant_link(squatted, rootdir)
    done = mount(mnt, environ=_no_xdg(shared))
    warnings = [line for line in done.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and f"not using {squatted}" in warnings[0], done.stderr
    path = _published(mnt)
    assert path.startswith(f"{squatted}-") and stat.S_ISSOCK(os.stat(path).st_mode)
    done = cli("ctl", str(mnt), "seqnum", environ=_no_xdg(shared))
    assert done.returncode == 0 and done.stdout.strip().isdigit(), done.stderr
    assert squat == "symlink" or os.listdir(squatted) == []
    assert squat == "directory" or os.listdir(rootdir) == []
    umount(mnt)


def _gone_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@fuse
def test_a_killed_daemons_fallback_socket_directory_is_removed_by_the_next(shared: Path, tmp_path: Path) -> None:
    """``fakesysfs-0`` squatted: each daemon's socket is in ``fakesysfs-0-<pid>-<random>``.
    One SIGKILLed leaves its directory; the next daemon removes it, and leaves alone a live
    daemon's, a neighbour's, a neighbour's link and a loose directory of ours, all named as
    fallbacks of dead pids."""
    as_neighbour(lambda: os.mkdir(shared / "fakesysfs-0", 0o777))
    environ = _no_xdg(shared)
    mounts = [tmp_path / f"m{i}" for i in range(3)]
    for path in mounts:
        path.mkdir()
    try:
        done = mount(mounts[0], environ=environ)
        pid = int(done.stdout.split("(pid ")[1].split(")")[0])
        killed = Path(_published(mounts[0])).parent
        assert killed.name.startswith(f"fakesysfs-0-{pid}-")
        pidfd = os.pidfd_open(pid)
        os.kill(pid, signal.SIGKILL)
        assert select.select([pidfd], [], [], 30)[0], "the daemon survived SIGKILL"
        os.close(pidfd)
        umount(mounts[0])
        assert killed.is_dir(), "nothing was left behind to clean up"
        live_done = mount(mounts[1], environ=environ)
        assert live_done.returncode == 0
        live = Path(_published(mounts[1])).parent
        assert not killed.exists(), "the next daemon left the dead daemon's directory"

        dead = _gone_pid()
        theirs, link, loose = (shared / f"fakesysfs-0-{dead}-{suffix}" for suffix in ("0123456789aa", "0123456789ab",
                                                                                       "0123456789ac"))
        as_neighbour(lambda: os.mkdir(theirs, 0o700))
        rootdir = tmp_path / "private"
        rootdir.mkdir(mode=0o700)
        (rootdir / "precious").write_text(PRECIOUS)
        plant_link(link, rootdir)
        loose.mkdir(mode=0o700)
        loose.chmod(0o755)
        mount(mounts[2], environ=environ)
        assert live.is_dir() and Path(_published(mounts[1])).exists(), "a live daemon's directory was removed"
        assert theirs.is_dir() and link.is_symlink() and loose.is_dir()
        assert (rootdir / "precious").read_text() == PRECIOUS
        done = cli("ctl", str(mounts[1]), "seqnum", environ=environ)
        assert done.returncode == 0 and done.stdout.strip().isdigit(), done.stderr
    finally:
        for path in mounts:
            if os.path.ismount(path):
                umount(path)


@fuse
def test_a_root_socket_lives_in_a_checked_0700_directory(shared: Path, mnt: Path) -> None:
    mount(mnt, environ=_no_xdg(shared))
    path = Path(_published(mnt))
    assert path.parent.parent == shared / "fakesysfs-0"
    for directory in (path.parent, path.parent.parent):
        st = os.lstat(directory)
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == 0
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    umount(mnt)


def _userns_unavailable() -> str | None:
    if fuse_unavailable_reason() is not None:
        return str(fuse_unavailable_reason())
    try:
        with open("/proc/sys/user/max_user_namespaces") as f:
            if int(f.read()) == 0:
                return "user namespaces are disabled (user.max_user_namespaces = 0)"
    except OSError:
        return "no user namespaces"
    return None


userns = pytest.mark.skipif(_userns_unavailable() is not None, reason=str(_userns_unavailable()))


@userns
def test_a_user_namespace_run_keys_its_socket_directory_by_namespace(shared: Path) -> None:
    inner = f"{sys.executable} -m fakesysfs.cli ctl /sys seqnum && cat /sys/kernel/debug/fakesysfs/control"
    done = cli("run", "--userns", "--", "sh", "-c", inner, environ=_no_xdg(shared))
    assert done.returncode == 0, done.stderr
    seqnum, path = done.stdout.split()
    assert seqnum.isdigit()
    assert Path(path).parent.parent.name.startswith("fakesysfs-0-userns"), path
    assert not (shared / "fakesysfs-0").exists()


_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS, MS_BIND, MS_REC, MS_PRIVATE = 0x00020000, 0x1000, 0x4000, 1 << 18


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def enc(s: str | None) -> bytes | None:
        return None if s is None else s.encode()

    if _libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) != 0:
        raise OSError(ctypes.get_errno(), f"mount {target}")


def _reachable_by_others(path: str) -> None:
    """In a private mount namespace: make ``path`` reachable by other users when an ancestor
    (root's 0700 home holding pyenv) is not, by covering that ancestor with a tmpfs that
    holds only a bind mount of the one entry on the way."""
    parts = Path(path).parts
    for i in range(1, len(parts)):
        ancestor = Path(*parts[:i])
        if os.stat(ancestor).st_mode & 0o001:
            continue
        entry = Path(*parts[: i + 1])
        keep = os.open(entry, os.O_PATH)
        _mount("tmpfs", str(ancestor), "tmpfs", 0, "mode=755")
        if stat.S_ISDIR(os.fstat(keep).st_mode):
            os.mkdir(entry)
        else:
            entry.touch()
        _mount(f"/proc/self/fd/{keep}", str(entry), None, MS_BIND | MS_REC)
        return


def _run_unprivileged(argv: list[str], environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``argv`` as uid 65534 (this Python is root's: reachable through a private mount namespace)."""

    def child() -> None:
        if _libc.unshare(CLONE_NEWNS) != 0:
            raise OSError(ctypes.get_errno(), "unshare")
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        for path in (os.path.realpath(sys.executable), sys.prefix, str(REPO)):
            _reachable_by_others(os.path.realpath(path))
        os.setgroups([])
        os.setgid(NEIGHBOUR)
        os.setuid(NEIGHBOUR)

    return subprocess.run(argv, capture_output=True, text=True, timeout=90, check=False, env=environ,
                          preexec_fn=child, cwd="/")


@userns
def test_an_unprivileged_run_leaves_roots_control_socket_working(shared: Path, mnt: Path) -> None:
    environ = _no_xdg(shared)
    probe = _run_unprivileged([sys.executable, "-c", "import fakesysfs._fuse"], environ)
    if probe.returncode != 0:
        pytest.skip(f"this Python cannot run as uid {NEIGHBOUR} here: {probe.stderr.strip()[-200:]}")
    inner = f"{sys.executable} -m fakesysfs.cli ctl /sys seqnum && cat /sys/kernel/debug/fakesysfs/control"
    done = _run_unprivileged([*FAKESYSFS, "run", "--", "sh", "-c", inner], environ)
    if "cannot create a user namespace" in done.stderr:
        pytest.skip(done.stderr.strip())
    assert done.returncode == 0, done.stderr
    seqnum, path = done.stdout.split()
    assert seqnum.isdigit()
    # Where README.md's "Events" says: $TMPDIR/fakesysfs-<uid>-userns<inode>/, gone after the run.
    base = Path(path).parent.parent
    assert base.parent == shared and re.fullmatch(rf"fakesysfs-{NEIGHBOUR}-userns\d+", base.name), path
    assert not base.exists()
    assert not (shared / "fakesysfs-0").exists(), "an unprivileged run took root's socket directory"
    mount(mnt, environ=environ)
    assert Path(_published(mnt)).parent.parent == shared / "fakesysfs-0"
    done = cli("ctl", str(mnt), "seqnum", environ=environ)
    assert done.returncode == 0 and done.stdout.strip().isdigit(), done.stderr
    umount(mnt)
