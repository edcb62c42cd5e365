"""``fakesysfs run``: the namespace, its /dev and /run, exit status, signals, cleanup, and
that nothing reaches the host. The tools' scenarios are in test_real_tools.py."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import ENV, FAKESYSFS, fakesysfs_run, fuse_unavailable_reason

from fakesysfs import run as fsrun
from fakesysfs.devfs import DevNode, DevTree
from fakesysfs.errors import KernelError
from fakesysfs.sysfs.tree import Attr, StaticDir, Tree

REGION = "/sys/devices/platform/ACPI0017:00/root0/decoder0.0/region0/dax_region0"


def _unavailable() -> str | None:
    reason = fuse_unavailable_reason()
    if reason is not None:
        return f"FUSE: {reason}"
    if os.geteuid() != 0:
        return "needs root (or see test_refuses_in_one_line_without_namespaces)"
    return None


namespaced = pytest.mark.skipif(_unavailable() is not None, reason=str(_unavailable()))


# -- without a namespace ----------------------------------------------------------------------
def test_store_tracers_see_path_bytes_and_errno() -> None:
    def store(text: str, _count: int) -> None:
        if text != "ok":
            raise KernelError(errno.EINVAL)

    tree = Tree(StaticDir({"d": StaticDir({"attr": Attr(0o200, None, store)})}))
    seen: list[tuple[str, bytes, int]] = []
    tree.store_tracers.append(lambda path, data, err: seen.append((path, data, err)))
    tree.echo("/d/attr", b"ok\0junk")
    with pytest.raises(KernelError):
        tree.echo("/d/attr", "bad")
    assert seen == [("/d/attr", b"ok\0junk", 0), ("/d/attr", b"bad\n", errno.EINVAL)]


def test_refuses_in_one_line_without_namespaces(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_flags: int) -> None:
        raise OSError(errno.EPERM, "unshare: Operation not permitted")

    monkeypatch.setattr(fsrun, "unshare", refuse)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(fsrun.NamespaceError) as info:
        fsrun.enter_namespace(share_net=False)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("cannot create a user namespace")
    assert "run as root" in message


def test_devnode_from_uevent_variables() -> None:
    props = {"MAJOR": "252", "MINOR": "3", "DEVNAME": "dax0.3"}
    assert fsrun.DevNode.from_uevent(props, block=False) == fsrun.DevNode("dax0.3", False, 252, 3)
    assert fsrun.DevNode.from_uevent({"DEVNAME": "dax0.3"}, block=False) is None  # no numbers
    assert fsrun.DevNode.from_uevent({**props, "DEVNAME": "../etc/x"}, block=False) is None


def test_missing_command_is_a_usage_error() -> None:
    done = fakesysfs_run("--")
    assert done.returncode == 1
    assert done.stderr.startswith("fakesysfs: error: no COMMAND given")


def test_invalid_topology_fails_before_any_namespace(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[kernel]\nblock_size = 12\n")
    done = fakesysfs_run("-c", str(bad), "--", "true")
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1
    assert "block_size" in done.stderr


# -- in the namespace -------------------------------------------------------------------------
@namespaced
def test_exit_status_and_exec_failures_are_the_commands() -> None:
    assert fakesysfs_run("--", "sh", "-c", "exit 7").returncode == 7
    missing = fakesysfs_run("--", "no-such-command-fakesysfs")
    assert missing.returncode == 127
    assert missing.stderr.strip() == "fakesysfs: error: cannot run no-such-command-fakesysfs: No such file or directory"
    assert fakesysfs_run("--", "sh", "-c", "kill -KILL $$").returncode == 128 + signal.SIGKILL


@namespaced
def test_the_namespace_has_the_fake_sys_a_private_dev_and_run() -> None:
    script = (
        "grep -E ' /(sys|dev|run) ' /proc/self/mountinfo; "
        "echo env=$SYSTEMD_DEVICE_VERIFY_SYSFS; "
        "stat -c '%n %F %t:%T %a' /dev/null /dev/fuse /dev/dax0.0 /dev/dax2.0; "
        "ls /dev/pts >/dev/null && echo pts; test -f /run/udev/control && echo control; "
        "readlink /dev/stdin; cat /sys/devices/system/memory/block_size_bytes; "
        "cat /sys/class/net/lo/operstate 2>/dev/null || echo no-host-sysfs; "
        "ip -o link 2>/dev/null | wc -l"
    )
    done = fakesysfs_run("--", "sh", "-c", script)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    mounts = {line.split(" - ")[0].split()[4]: line.split(" - ")[1].split()[0] for line in lines if " - " in line}
    assert mounts["/sys"] == "fuse.fakesysfs"
    assert mounts["/dev"] == "tmpfs" and mounts["/run"] == "tmpfs"
    assert "env=0" in lines
    assert "/dev/null character special file 1:3 666" in lines
    assert "/dev/fuse character special file a:e5 666" in lines
    assert "/dev/dax0.0 character special file fc:0 600" in lines  # 252:0, as devtmpfs makes it
    assert "/dev/dax2.0 character special file fc:2 600" in lines
    assert "pts" in lines and "control" in lines
    assert "/proc/self/fd/0" in lines and "8000000" in lines
    assert "no-host-sysfs" in lines  # the host's sysfs is covered entirely


@namespaced
def test_the_harness_ops_answer_on_the_control_socket_inside() -> None:
    """``fakesysfs ctl /sys`` inside reaches this run's harness (wired to the daemon's control
    socket explicitly: RunOptions.control_ops), not only the socket's own ops."""
    script = f"{sys.executable} -m fakesysfs.cli ctl /sys fault memmap-fail-at-chunk 3 && " \
             "cat /sys/kernel/debug/fakesysfs/faults/memmap_fail_at_chunk"
    done = fakesysfs_run("--", "sh", "-c", script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1:] == ["3"], done.stdout


@namespaced
def test_dev_nodes_follow_devices_created_and_deleted_by_stores() -> None:
    script = (
        "set -e; D=/sys/bus/dax/drivers; R=" + REGION + "; "
        "echo dax0.0 > $D/kmem/unbind; echo 0 > $R/dax0.0/size; "
        "echo 1 > $R/dax_region/create; stat -c '%t:%T' /dev/dax0.1; cat $R/dax0.1/dev; "
        "echo dax0.1 > $R/dax_region/delete; test ! -e /dev/dax0.1 && echo gone"
    )
    done = fakesysfs_run("--", "sh", "-c", script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["fc:3", "252:3", "gone"]


@namespaced
def test_user_namespace_path_serves_dax_nodes_from_fuse() -> None:
    script = (
        "stat -c '%n %F %t:%T' /dev/dax0.0; echo hi > /dev/null && echo null-ok; "
        "D=/sys/bus/dax/drivers; R=" + REGION + "; "
        "echo dax0.0 > $D/kmem/unbind; echo 0 > $R/dax0.0/size; echo 1 > $R/dax_region/create; "
        "stat -c '%n %F %t:%T' /dev/dax0.1; daxctl list -i -d dax0.1 >/dev/null 2>&1 || true"
    )
    done = fakesysfs_run("--userns", "--", "sh", "-c", script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:3] == [
        "/dev/dax0.0 character special file fc:0", "null-ok", "/dev/dax0.1 character special file fc:3"]


@namespaced
def test_user_namespace_dev_follows_dax_devices_and_refuses_open() -> None:
    """The FUSE /dev (devfs.DevTree through the adapter): a node appears when the creating
    store returns, with its numbers, cannot be opened (EACCES), and goes with the device."""
    probe = (f"{sys.executable} -c \"import os, errno\n"
             "try: os.open('/dev/dax0.1', os.O_RDONLY)\n"
             "except OSError as e: print(errno.errorcode[e.errno])\"")
    script = (
        "set -e; D=/sys/bus/dax/drivers; R=" + REGION + "; "
        "echo dax0.0 > $D/kmem/unbind; echo 0 > $R/dax0.0/size; "
        "echo 1 > $R/dax_region/create; stat -c '%F %t:%T %a %u' /dev/dax0.1; cat $R/dax0.1/dev; "
        f"{probe}; grep -c ' /dev .*nodev' /proc/self/mountinfo; ls /dev | grep -c '^dax0.1$'; "
        "echo dax0.1 > $R/dax_region/delete; test ! -e /dev/dax0.1 && echo gone; ls /dev | grep -c '^dax0' || true"
    )
    done = fakesysfs_run("--userns", "--", "sh", "-c", script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "character special file fc:3 600 0", "252:3", "EACCES", "1", "1", "gone", "1"], done.stdout


def test_dev_tree_nodes_stat_as_devices_and_refuse_open_and_setattr() -> None:
    tree = DevTree([DevNode("dax0.0", False, 252, 0)])
    tree.add(DevNode("pmem0", True, 259, 1))
    st = tree.getattr("/dax0.0")
    assert (stat.S_IFMT(st.mode), stat.S_IMODE(st.mode), st.rdev) == (stat.S_IFCHR, 0o600, os.makedev(252, 0))
    assert stat.S_ISBLK(tree.getattr("/pmem0").mode)
    assert stat.S_ISREG(tree.getattr("/null").mode) and tree.getattr("/null").size == 0
    assert tree.readlink("/fd") == "/proc/self/fd"
    for path, err in (("/dax0.0", errno.EACCES), ("/null", errno.EACCES)):
        with pytest.raises(KernelError) as exc:
            tree.open(path, os.O_RDONLY)
        assert exc.value.errno == err
    with pytest.raises(KernelError) as exc:
        tree.setattr("/dax0.0", mode=0o666)
    assert exc.value.errno == errno.EPERM
    tree.remove(DevNode("dax0.0", False, 252, 0))
    assert "dax0.0" not in tree.readdir("/") and "pmem0" in tree.readdir("/")
    with pytest.raises(KernelError) as exc:
        tree.getattr("/dax0.0")
    assert exc.value.errno == errno.ENOENT


@namespaced
def test_trace_file_has_one_json_line_per_store(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    state = "/sys/devices/system/memory/memory522/state"
    done = fakesysfs_run("--trace", str(trace), "--", "sh", "-c",
                         f"echo online > {state}; echo bogus > {state}; true")
    assert done.returncode == 0, done.stderr
    records = fsrun.read_trace(trace)
    assert [(r["path"], r["data"], r["error"]) for r in records] == [
        ("/devices/system/memory/memory522/state", b"online\n", None),
        ("/devices/system/memory/memory522/state", b"bogus\n", "EINVAL"),
    ]
    assert json.loads(trace.read_text().splitlines()[1])["errno"] == errno.EINVAL


@namespaced
def test_sigterm_to_fakesysfs_run_reaches_the_command(tmp_path: Path) -> None:
    started = tmp_path / "started"
    proc = subprocess.Popen(
        [*FAKESYSFS, "run", "--", "sh", "-c", f"trap 'exit 42' TERM; touch {started}; while :; do sleep 0.05; done"],
        env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not started.exists():
            assert proc.poll() is None, f"fakesysfs run exited {proc.returncode} early"
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 42
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _host_view() -> dict[str, object]:
    """What the host's /sys, /dev and /run look like (read-only)."""
    memory = Path("/sys/devices/system/memory")
    states = {}
    for block in sorted(memory.glob("memory*"))[:64]:
        try:
            states[block.name] = (block / "state").read_text()
        except OSError:
            pass
    return {
        "memory": sorted(p.name for p in memory.iterdir()) if memory.is_dir() else None,
        "states": states,
        "dev": sorted(os.listdir("/dev")),
        "run": sorted(os.listdir("/run")),
        "run_udev": sorted(os.listdir("/run/udev")) if os.path.isdir("/run/udev") else None,
        "mounts": Path("/proc/self/mountinfo").read_text(),
    }


@namespaced
@pytest.mark.skipif(shutil.which("udevadm") is None or shutil.which("daxctl") is None,
                    reason="udevadm or daxctl not installed (apt-get install udev daxctl)")
def test_tools_inside_leave_the_host_untouched() -> None:
    before = _host_view()
    devpath = REGION.removeprefix("/sys") + "/dax0.0"
    script = (
        "daxctl reconfigure-device -m system-ram dax0.0 >/dev/null && "
        "for m in /sys/devices/system/memory/memory*/state; do echo offline > $m 2>/dev/null; done; "
        f"udevadm test --action=add {devpath} >/dev/null 2>&1; "
        "udevadm trigger --action=change --subsystem-match=memory; "
        "ls /run/udev/data; mkdir -p /dev/fakesysfs-scratch /run/fakesysfs-scratch; "
        "sleep 987.6 & setsid sh -c 'sleep 987.7 &'"
    )
    done = fakesysfs_run("--pin", "--", "sh", "-c", script)
    assert done.returncode == 0, done.stderr
    assert "c252:0" in done.stdout.split()  # udevadm test wrote its database, privately
    after = _host_view()
    assert after == before
    # Left running, even in a session of its own: ended with COMMAND's PID namespace.
    left = [p.info["cmdline"] for p in psutil.process_iter(["cmdline", "status"])
            if p.info["cmdline"] and p.info["cmdline"][-1] in ("987.6", "987.7") and p.info["status"] != "zombie"]
    assert left == []
