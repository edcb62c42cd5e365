"""The FUSE adapter and the CLI, driven through a real mount the way shells and tools do.

Each test mounts the hand-built tree of conftest.py (or a small sysfs-shaped one) and
checks what a client sees: bytes reaching the store, errnos, modes, links, other users.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ENV, FAKESYSFS, DemoTree, build_demo_tree, make_mountpoint, unmount

from fakesysfs import cli
from fakesysfs import mountpoint as mountpoint_rules
from fakesysfs.errors import ConfigError
from fakesysfs.fuse_adapter import TreeOperations, fuse_options
from fakesysfs.sysfs.tree import Attr, Link, StaticDir, Tree

fuse = pytest.mark.fuse
TESTS = Path(__file__).resolve().parent
Mounter = Callable[..., Path]


def run(argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env if env is not None else ENV,
                          capture_output=True, text=True, timeout=timeout, check=False)


def sh(command: str, cwd: Path, shell: str = "sh") -> subprocess.CompletedProcess[str]:
    return run([shell, "-c", command], cwd=cwd, timeout=10)


def as_nobody(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("setpriv"):
        argv = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "sh", "-c", command]
    else:
        argv = ["su", "nobody", "-s", "/bin/sh", "-c", command]
    return run(argv, cwd=cwd, timeout=10)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")


# -- the adapter without libfuse ------------------------------------------------------------
def test_options_are_the_ones_correctness_needs() -> None:
    opts = fuse_options(libfuse3=False)
    assert opts["direct_io"] is True
    assert opts["attr_timeout"] == opts["entry_timeout"] == opts["negative_timeout"] == 0
    assert opts["default_permissions"] is True
    assert opts["nothreads"] is True
    assert opts["nonempty"] is True
    assert opts["fsname"] == opts["subtype"] == "fakesysfs"
    assert "allow_other" not in opts
    assert "kernel_cache" not in opts
    assert fuse_options(allow_other=True)["allow_other"] is True
    libfuse3 = fuse_options(libfuse3=True)
    assert "nonempty" not in libfuse3 and "big_writes" not in libfuse3


def test_only_implemented_callbacks_are_registered() -> None:
    # fusepy/mfusepy register every attribute they find; inherited defaults cost a flush per
    # close and an xattr query per write (docs/fuse.md, "Cost").
    ops = TreeOperations(build_demo_tree().tree)
    for name in ("flush", "getxattr", "listxattr", "setxattr", "opendir", "releasedir", "fsync", "access"):
        assert not hasattr(ops, name), name
    # What sysfs answers itself (setattr, and the errno of each namespace change) is served.
    for name in ("chmod", "chown", "utimens", "create", "mkdir", "rmdir", "unlink", "rename", "symlink", "link",
                 "mknod"):
        assert hasattr(ops, name), name


def test_kernel_error_becomes_its_errno_and_bugs_become_eio(caplog: pytest.LogCaptureFixture) -> None:
    demo = build_demo_tree()
    ops = TreeOperations(demo.tree)
    fh = ops.open("/busy", os.O_WRONLY)
    with pytest.raises(OSError) as busy:
        ops.write("/busy", b"1\n", 0, fh)
    assert busy.value.errno == errno.EBUSY
    fh = ops.open("/crash", os.O_WRONLY)
    with caplog.at_level(logging.ERROR, logger="fakesysfs.fuse_adapter"), pytest.raises(OSError) as crash:
        ops.write("/crash", b"1\n", 0, fh)
    assert crash.value.errno == errno.EIO
    assert "a bug inside a store handler" in caplog.text
    with pytest.raises(OSError) as missing:
        ops.getattr("/nope")
    assert missing.value.errno == errno.ENOENT


def test_getattr_reports_root_owned_4096_byte_files_with_fixed_times() -> None:
    ops = TreeOperations(build_demo_tree().tree)
    first = ops.getattr("/state")
    time.sleep(0.002)
    again = ops.getattr("/ro")
    assert (first["st_uid"], first["st_gid"], first["st_size"]) == (0, 0, 4096)
    assert first["st_mtime"] == again["st_mtime"] == again["st_ctime"]


# -- writes ---------------------------------------------------------------------------------
@fuse
def test_echo_reaches_the_store_once_with_its_newline(fuse_mount: Mounter, demo: DemoTree) -> None:
    mnt = fuse_mount(demo.tree)
    done = sh("echo online > state", mnt)
    assert done.returncode == 0, done.stderr
    assert demo.rec.stores("state") == [("online\n", 7)]
    assert (mnt / "state").read_text() == "online\n"


@fuse
def test_printf_with_nul_reaches_the_store_up_to_the_nul(fuse_mount: Mounter, demo: DemoTree) -> None:
    mnt = fuse_mount(demo.tree)
    assert sh(r"printf 'online\0' > state", mnt).returncode == 0
    assert sh("printf offline > state", mnt).returncode == 0  # chmem: the bare word
    assert demo.rec.stores("state") == [("online", 7), ("offline", 7)]


@fuse
def test_each_write_is_one_store_and_the_offset_is_ignored(fuse_mount: Mounter, demo: DemoTree) -> None:
    mnt = fuse_mount(demo.tree)
    fd = os.open(mnt / "wo", os.O_WRONLY)
    try:
        assert os.write(fd, b"first\n") == 6
        assert os.write(fd, b"second\n") == 7  # arrives at offset 6
        assert os.write(fd, b"") == 0  # R-SYS-02: never reaches the handler
        assert os.write(fd, b"a" * 5000) == 4096  # one store of one page, a short write
    finally:
        os.close(fd)
    assert sh("echo appended >> wo", mnt).returncode == 0  # offset 4096
    assert demo.rec.stores("wo") == [("first\n", 6), ("second\n", 7), ("a" * 4096, 4096),
                                     ("appended\n", 9)]


@fuse
def test_store_errno_reaches_the_writer(fuse_mount: Mounter, demo: DemoTree) -> None:
    mnt = fuse_mount(demo.tree)
    for name, data, expected in (("state", b"bogus\n", errno.EINVAL), ("busy", b"1\n", errno.EBUSY)):
        fd = os.open(mnt / name, os.O_WRONLY)
        try:
            with pytest.raises(OSError) as failure:
                os.write(fd, data)
        finally:
            os.close(fd)
        assert failure.value.errno == expected, name
    bash = sh("echo bogus > state", mnt, shell="bash")
    assert bash.returncode == 1
    assert "write error: Invalid argument" in bash.stderr
    assert sh("echo 1 > busy", mnt).returncode != 0
    assert demo.state["state"] == "offline"


@fuse
def test_truncate_is_a_successful_no_op(fuse_mount: Mounter, demo: DemoTree) -> None:
    mnt = fuse_mount(demo.tree)
    os.truncate(mnt / "state", 0)
    with open(mnt / "state", "w") as f:  # O_TRUNC: a truncate() on libfuse 2
        f.write("online")
    assert demo.rec.stores("state") == [("online", 6)]
    assert (mnt / "state").read_text() == "online\n"


@fuse
def test_a_store_that_crashes_gives_eio_and_the_daemon_keeps_serving(
    fuse_mount: Mounter, demo: DemoTree, caplog: pytest.LogCaptureFixture
) -> None:
    mnt = fuse_mount(demo.tree)
    with caplog.at_level(logging.ERROR, logger="fakesysfs.fuse_adapter"):
        crash = sh("echo 1 > crash", mnt)
        show = sh("cat crash_show", mnt)
    assert crash.returncode != 0 and "I/O error" in crash.stderr
    assert show.returncode != 0 and "Input/output error" in show.stderr
    assert "a bug inside a store handler" in caplog.text
    assert "a bug inside a show handler" in caplog.text
    assert sh("echo online > state && cat state ro", mnt).stdout == "online\nread-only\n"


# -- permissions ------------------------------------------------------------------------------
@fuse
def test_root_cannot_open_a_read_only_file_for_writing(fuse_mount: Mounter, demo: DemoTree) -> None:
    mnt = fuse_mount(demo.tree)
    done = sh("echo x > ro", mnt)
    assert done.returncode != 0 and "Permission denied" in done.stderr
    for flags in (os.O_WRONLY, os.O_RDWR):
        with pytest.raises(PermissionError):
            os.open(mnt / "ro", flags)
    with pytest.raises(PermissionError):
        os.open(mnt / "secret", os.O_WRONLY)


@fuse
def test_root_cannot_read_a_write_only_file(fuse_mount: Mounter, demo: DemoTree) -> None:
    mnt = fuse_mount(demo.tree)
    done = sh("cat wo", mnt)
    assert done.returncode != 0 and "Permission denied" in done.stderr
    assert sh("cat secret", mnt).stdout == "root only\n"  # 0400 is readable by root


@fuse
@needs_root
def test_other_users_read_0444_but_not_0400_and_cannot_write(fuse_mount: Mounter, demo: DemoTree) -> None:
    mnt = fuse_mount(demo.tree, allow_other=True)
    assert as_nobody("cat ro", mnt).stdout == "read-only\n"
    assert as_nobody("readlink subsystem", mnt).stdout == "../../bus/memory\n"
    for command in ("cat secret", "echo online > state", "echo 1 > wo"):
        done = as_nobody(command, mnt)
        assert done.returncode != 0 and "Permission denied" in done.stderr, command
    assert demo.rec.calls == []


@fuse
@needs_root
def test_without_allow_other_other_users_are_locked_out(fuse_mount: Mounter, demo: DemoTree) -> None:
    mnt = fuse_mount(demo.tree)
    done = as_nobody("cat ro", mnt)
    assert done.returncode != 0 and "Permission denied" in done.stderr
    assert sh("cat ro", mnt).stdout == "read-only\n"


# -- metadata ---------------------------------------------------------------------------------
@fuse
def test_ls_shows_sysfs_modes_owner_and_size(fuse_mount: Mounter, demo: DemoTree) -> None:
    mnt = fuse_mount(demo.tree)
    listing = sh("ls -l", mnt).stdout.splitlines()[1:]
    modes = {fields[-1] if fields[0][0] != "l" else fields[-3]: fields for fields in map(str.split, listing)}
    expected = {
        "state": "-rw-r--r--", "ro": "-r--r--r--", "secret": "-r--------", "wo": "--w-------",
        "subsystem": "lrwxrwxrwx", "blocks": "drwxr-xr-x", "power": "drwxr-xr-x",
    }
    for name, mode in expected.items():
        fields = modes[name]
        assert fields[0] == mode, name
        assert fields[2:4] == ["root", "root"], name
    for name in ("state", "ro", "secret", "wo"):
        assert modes[name][4] == "4096"
    assert (mnt / "state").stat().st_size == 4096


@fuse
def test_links_are_relative_and_readable_with_readlink(fuse_mount: Mounter, demo: DemoTree) -> None:
    mnt = fuse_mount(demo.tree)
    assert sh("readlink subsystem", mnt).stdout == "../../bus/memory\n"
    assert os.readlink(mnt / "subsystem") == "../../bus/memory"
    assert sh("find . -type l", mnt).stdout == "./subsystem\n"


@fuse
def test_find_walks_the_tree(fuse_mount: Mounter, demo: DemoTree) -> None:
    mnt = fuse_mount(demo.tree)
    found = set(sh("find .", mnt).stdout.split())
    assert {"./state", "./power/control", "./blocks/memory1/phys_index", "./subsystem"} <= found
    assert sh("cat blocks/memory1/phys_index", mnt).stdout == "00000001\n"


@fuse
def test_dynamic_entries_appear_and_vanish_when_the_store_returns(fuse_mount: Mounter, demo: DemoTree) -> None:
    # negative_timeout=0 / entry_timeout=0: no stale dentries after a store.
    mnt = fuse_mount(demo.tree)
    assert not (mnt / "blocks/memory7").exists()
    assert sh("echo 7 > add && cat blocks/memory7/phys_index", mnt).stdout == "00000007\n"
    assert sorted(os.listdir(mnt / "blocks")) == ["memory0", "memory1", "memory7"]
    assert sh("echo 0 > remove && ls blocks", mnt).stdout.split() == ["memory1", "memory7"]
    assert not (mnt / "blocks/memory0").exists()


@fuse
def test_values_are_never_served_from_a_cache(fuse_mount: Mounter, demo: DemoTree) -> None:
    mnt = fuse_mount(demo.tree)
    for word in ("online", "offline") * 5:
        demo.state["state"] = word  # changed behind the kernel's back
        assert (mnt / "state").read_text() == word + "\n"
        assert sh("cat state", mnt).stdout == word + "\n"


@fuse
def test_a_read_continues_in_its_snapshot(fuse_mount: Mounter, demo: DemoTree) -> None:
    mnt = fuse_mount(demo.tree)
    fd = os.open(mnt / "state", os.O_RDONLY)
    try:
        assert os.read(fd, 3) == b"off"
        demo.state["state"] = "online"
        assert os.read(fd, 100) == b"line\n"  # R-SYS-03: rest of the first rendering
        assert os.read(fd, 100) == b""
        assert os.pread(fd, 100, 0) == b"online\n"  # offset 0 renders again
    finally:
        os.close(fd)


@fuse
def test_mounts_on_a_non_empty_directory(fuse_mount: Mounter, demo: DemoTree) -> None:
    mountpoint = make_mountpoint()
    (mountpoint / "hidden").write_text("underneath")
    try:
        mnt = fuse_mount(demo.tree, mountpoint=mountpoint)
        assert "hidden" not in os.listdir(mnt)
        assert unmount(mnt)
        for _ in range(200):
            if not os.path.ismount(mnt):
                break
            time.sleep(0.01)
    finally:
        if not os.path.ismount(mountpoint):
            shutil.rmtree(mountpoint)


# -- the CLI ----------------------------------------------------------------------------------
def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(status: int, err: str, *needles: str) -> None:
    assert status != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fakesysfs: error: ")
    for needle in needles:
        assert needle in lines[0]


def test_mount_refuses_a_missing_mountpoint(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, _, err = run_cli(capsys, "mount", str(tmp_path / "missing"))
    assert_one_line_error(status, err, "does not exist", "mkdir -p")


def test_mount_refuses_a_file_as_mountpoint(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    status, _, err = run_cli(capsys, "mount", str(tmp_path / "file"))
    assert_one_line_error(status, err, "is not a directory")


@fuse
def test_mount_refuses_a_busy_mountpoint(
    capsys: pytest.CaptureFixture[str], fuse_mount: Mounter, demo: DemoTree
) -> None:
    mnt = fuse_mount(demo.tree)
    status, _, err = run_cli(capsys, "mount", str(mnt))
    assert_one_line_error(status, err, "already a mount point (busy)")


def test_mount_without_dev_fuse_says_what_to_do(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(mountpoint_rules, "DEV_FUSE", str(tmp_path / "fuse"))
    status, _, err = run_cli(capsys, "mount", str(tmp_path))
    assert_one_line_error(status, err, "is missing", "modprobe fuse")


def test_mount_without_libfuse_says_what_to_install(tmp_path: Path) -> None:
    env = dict(ENV, FUSE_LIBRARY_PATH=str(tmp_path / "libfuse.so.2"))
    done = run([sys.executable, "-m", "fakesysfs.cli", "mount", str(tmp_path)], env=env)
    assert_one_line_error(done.returncode, done.stderr, "libfuse is missing", "apt-get install fuse3")


def test_mount_reports_the_key_of_an_invalid_topology(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Stand-ins for the engine entry points, so this test does not depend on them.
    def load_topology(_path: str | None = None, **_text: object) -> object:
        raise ConfigError("memory.block_size", "must be a power of two")

    # Patched where the CLI's boot looks them up (fakesysfs/machine.py), imported first: an
    # import of machine.py while fakesysfs.engine.Kernel was patched would keep the stand-in
    # after the test, for every later Simulation of the session.
    import fakesysfs.machine
    from fakesysfs.topology import read_topology_file

    stand_in = types.SimpleNamespace(load_topology=load_topology, read_topology_file=read_topology_file)
    monkeypatch.setitem(sys.modules, "fakesysfs.topology", stand_in)
    monkeypatch.setattr(fakesysfs.machine, "Kernel", lambda config: config)
    monkeypatch.setattr(fakesysfs.machine, "build_tree", lambda kernel: kernel)
    topology = tmp_path / "bad.toml"
    topology.write_text("[memory]\nblock_size = 3\n")
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    status, _, err = run_cli(capsys, "mount", str(mountpoint), "-c", str(topology))
    assert_one_line_error(status, err, "invalid topology", "memory.block_size: must be a power of two")
    status, _, err = run_cli(capsys, "mount", str(mountpoint), "-c", str(tmp_path / "nope.toml"))
    assert_one_line_error(status, err, "nope.toml does not exist")


def test_topology_prints_the_embedded_default(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = types.SimpleNamespace(default_topology_text=lambda: "[kernel]\nprofile = \"6.18\"\n")
    monkeypatch.setitem(sys.modules, "fakesysfs.topology", fake)
    status, out, _ = run_cli(capsys, "topology")
    assert (status, out) == (0, "[kernel]\nprofile = \"6.18\"\n")


def test_umount_of_something_not_mounted_is_an_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, _, err = run_cli(capsys, "umount", str(tmp_path))
    assert_one_line_error(status, err, "is not mounted")


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare")
def test_umount_refuses_a_mount_that_is_not_fakesysfs(tmp_path: Path) -> None:
    """Its last resort is umount(8), which would take /proc or /home as root: only a
    fuse.fakesysfs mount is unmounted (a tmpfs in a private mount namespace here)."""
    script = f"""mount -t tmpfs probe {tmp_path}
{' '.join(FAKESYSFS)} umount {tmp_path}; echo "rc=$?"
{' '.join(FAKESYSFS)} umount --lazy {tmp_path}; echo "rc=$?"
grep -c " {tmp_path} " /proc/self/mountinfo"""
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], capture_output=True,
                          text=True, env=ENV, timeout=60, check=False)
    assert done.stdout.split() == ["rc=1", "rc=1", "1"], (done.stdout, done.stderr)
    assert f"{tmp_path} is a tmpfs mount, not a fakesysfs one" in done.stderr


# The CLI's mount path, run in a child process with the demo tree instead of the engine.
CLI_WITH_DEMO_TREE = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
from conftest import build_demo_tree
from fakesysfs import cli, fuse_adapter
cli.common.boot = lambda topology: (None, build_demo_tree().tree, None)
if sys.argv[1] == "--serve-fails":
    def serve(*args, **kwargs):
        raise fuse_adapter.MountError("libfuse said no")
    fuse_adapter.serve = serve
    del sys.argv[1]
sys.exit(cli.main(sys.argv[1:]))
"""


def cli_with_demo_tree(*argv: str) -> list[str]:
    return [sys.executable, "-c", CLI_WITH_DEMO_TREE, *argv]


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@fuse
def test_mount_daemonizes_and_returns_once_served(capsys: pytest.CaptureFixture[str]) -> None:
    mountpoint = make_mountpoint()
    try:
        # capture_output: would hang if the daemon kept the caller's pipes open
        done = run(cli_with_demo_tree("mount", str(mountpoint)))
        assert done.returncode == 0, done.stderr
        pid = int(re.search(r"\(pid (\d+)\)", done.stdout).group(1))  # type: ignore[union-attr]
        assert os.path.ismount(mountpoint)
        assert (mountpoint / "ro").read_text() == "read-only\n"
        status, _, err = run_cli(capsys, "umount", str(mountpoint))
        assert status == 0, err
        assert not os.path.ismount(mountpoint)
        wait_for(lambda: not _alive(pid))
    finally:
        if os.path.ismount(mountpoint):
            unmount(mountpoint, lazy=True)
        mountpoint.rmdir()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie of an orphan is reaped by init; treat it as gone
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


@fuse
def test_mount_reports_why_the_daemon_failed(tmp_path: Path) -> None:
    done = run(cli_with_demo_tree("--serve-fails", "mount", str(tmp_path)))
    assert_one_line_error(done.returncode, done.stderr, "libfuse said no")


@fuse
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_unmount_cleanly(sig: signal.Signals) -> None:
    mountpoint = make_mountpoint()
    proc = subprocess.Popen(cli_with_demo_tree("mount", "-f", str(mountpoint)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        wait_for(lambda: os.path.ismount(mountpoint) or proc.poll() is not None)
        assert (mountpoint / "ro").read_text() == "read-only\n"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
        assert not os.path.ismount(mountpoint)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if os.path.ismount(mountpoint):
            unmount(mountpoint, lazy=True)
        mountpoint.rmdir()


@fuse
def test_a_dead_daemon_is_cleared_by_the_next_mount_and_by_umount(capsys: pytest.CaptureFixture[str]) -> None:
    mountpoint = make_mountpoint()
    proc = subprocess.Popen(cli_with_demo_tree("mount", "-f", str(mountpoint)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    try:
        wait_for(lambda: os.path.ismount(mountpoint) or proc.poll() is not None)
        proc.kill()
        proc.wait()
        with pytest.raises(OSError) as dead:
            os.stat(mountpoint)
        assert dead.value.errno == errno.ENOTCONN
        # The next mount notices the stale mount, unmounts it with a message and serves.
        done = run(cli_with_demo_tree("mount", str(mountpoint)))
        assert done.returncode == 0, done.stderr
        assert "left mounted by a fakesysfs daemon that died" in done.stderr
        assert "Transport endpoint is not connected" in done.stderr
        assert (mountpoint / "ro").read_text() == "read-only\n"
        status, _, err = run_cli(capsys, "umount", str(mountpoint))
        assert status == 0, err
        assert os.path.isdir(mountpoint) and not os.path.ismount(mountpoint)
        # And umount clears one too.
        proc = subprocess.Popen(cli_with_demo_tree("mount", "-f", str(mountpoint)),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        wait_for(lambda: os.path.ismount(mountpoint) or proc.poll() is not None)
        proc.kill()
        proc.wait()
        status, _, err = run_cli(capsys, "umount", str(mountpoint))
        assert status == 0, err
        assert os.path.isdir(mountpoint) and not os.path.ismount(mountpoint)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        unmount(mountpoint, lazy=True)
        mountpoint.rmdir()


# -- status -----------------------------------------------------------------------------------
def sysfs_like_tree() -> Tree:
    """Two nodes, 128 MiB blocks 0-3 and 5-6 (a hole at 4)."""
    zones = {0: "DMA32", 1: "Normal", 2: "Normal", 3: None, 5: "Movable", 6: None}
    node_of = {0: 0, 1: 0, 2: 0, 3: 0, 5: 1, 6: 1}

    def block(bid: int) -> StaticDir:
        zone = zones[bid]
        return StaticDir({
            "state": Attr(0o644, lambda: "online\n" if zone else "offline\n", lambda _t, _c: None),
            "valid_zones": Attr(0o444, lambda: f"{zone}\n" if zone else "Normal Movable\n"),
            "phys_index": Attr(0o444, lambda: f"{bid:08x}\n"),
            f"node{node_of[bid]}": Link(f"../../node/node{node_of[bid]}"),
        })

    def node(nid: int, total_kb: int, free_kb: int) -> StaticDir:
        meminfo = (f"Node {nid} MemTotal:       {total_kb:>8} kB\n"
                   f"Node {nid} MemFree:        {free_kb:>8} kB\n"
                   f"Node {nid} MemUsed:        {total_kb - free_kb:>8} kB\n")
        links: dict[str, object] = {f"memory{b}": Link(f"../../memory/memory{b}")
                                    for b, n in node_of.items() if n == nid}
        return StaticDir({"meminfo": Attr(0o444, lambda: meminfo), **links})  # type: ignore[dict-item]

    memory = StaticDir({"block_size_bytes": Attr(0o444, lambda: "8000000\n"),
                        **{f"memory{b}": block(b) for b in zones}})
    nodes = StaticDir({"node0": node(0, 393216, 131072), "node1": node(1, 131072, 131072),
                       "online": Attr(0o444, lambda: "0-1\n")})
    return Tree(StaticDir({"devices": StaticDir({"system": StaticDir({"memory": memory, "node": nodes})})}))


@fuse
def test_status_summarizes_nodes_blocks_and_zones_from_the_mount(
    capsys: pytest.CaptureFixture[str], fuse_mount: Mounter
) -> None:
    mnt = fuse_mount(sysfs_like_tree())
    status, out, err = run_cli(capsys, "status", str(mnt))
    assert status == 0, err
    assert "6 memory blocks of 128 MiB (768 MiB present)" in out
    assert re.search(r"node0\s+MemTotal\s+384 MiB\s+MemFree\s+128 MiB\s+blocks 4 \(3 online\)", out)
    assert re.search(r"node1\s+MemTotal\s+128 MiB\s+MemFree\s+128 MiB\s+blocks 2 \(1 online\)", out)
    assert re.search(r"online Normal\s+2\s+256 MiB", out)
    assert re.search(r"online DMA32\s+1\b", out)
    assert re.search(r"online Movable\s+1\b", out)
    assert re.search(r"offline\s+2\s+256 MiB", out)
    assert re.search(r"^\s+0  DNN\._M\.$", out, re.MULTILINE)
    ranges = out.split("Block ranges")[1].split("\n\n")[0].splitlines()[1:]
    assert [line.split() for line in ranges] == [
        ["memory0", "node0", "online", "DMA32", "1"], ["memory1-2", "node0", "online", "Normal", "2"],
        ["memory3", "node0", "offline", "1"], ["memory5", "node1", "online", "Movable", "1"],
        ["memory6", "node1", "offline", "1"]]


@fuse
def test_status_json_says_what_the_text_says_for_scripts(
    capsys: pytest.CaptureFixture[str], fuse_mount: Mounter
) -> None:
    mnt = fuse_mount(sysfs_like_tree())
    status, out, err = run_cli(capsys, "status", str(mnt), "--json")
    assert status == 0, err
    doc = json.loads(out)  # one document, nothing else on stdout
    assert doc["root"] == str(mnt)
    assert (doc["block_size"], doc["blocks"]) == (128 << 20, 6)
    assert doc["nodes"] == [
        {"id": 0, "mem_total": 384 << 20, "mem_free": 128 << 20, "blocks": 4, "online": 3},
        {"id": 1, "mem_total": 128 << 20, "mem_free": 128 << 20, "blocks": 2, "online": 1}]
    assert doc["states"] == [
        {"state": "offline", "zone": None, "blocks": 2, "bytes": 256 << 20},
        {"state": "online", "zone": "DMA32", "blocks": 1, "bytes": 128 << 20},
        {"state": "online", "zone": "Movable", "blocks": 1, "bytes": 128 << 20},
        {"state": "online", "zone": "Normal", "blocks": 2, "bytes": 256 << 20}]
    assert doc["ranges"] == [
        {"name": "memory0", "first": 0, "last": 0, "node": 0, "state": "online", "zone": "DMA32", "blocks": 1},
        {"name": "memory1-2", "first": 1, "last": 2, "node": 0, "state": "online", "zone": "Normal", "blocks": 2},
        {"name": "memory3", "first": 3, "last": 3, "node": 0, "state": "offline", "zone": None, "blocks": 1},
        {"name": "memory5", "first": 5, "last": 5, "node": 1, "state": "online", "zone": "Movable", "blocks": 1},
        {"name": "memory6", "first": 6, "last": 6, "node": 1, "state": "offline", "zone": None, "blocks": 1}]


def test_status_json_lists_every_range_where_the_text_stops_at_64() -> None:
    from fakesysfs.cli.status import status_json, status_lines
    from fakesysfs.status import BlockStatus, MachineStatus

    # 100 single-block runs: alternating states on one node.
    blocks = [BlockStatus(i, "online" if i % 2 else "offline", "Normal" if i % 2 else None, 0) for i in range(100)]
    found = MachineStatus(1 << 27, blocks, [])
    assert len(status_json("/x", found)["ranges"]) == 100
    assert any("36 more ranges" in line for line in status_lines("/x", found))


def test_status_of_a_directory_that_is_not_sysfs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, _, err = run_cli(capsys, "status", str(tmp_path))
    assert_one_line_error(status, err, "does not look like a sysfs tree")
