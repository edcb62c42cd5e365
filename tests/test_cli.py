"""The ``fakesysfs`` command as a user meets it: how it is started, what ``-v`` and
``--log-file`` record, list options, a reader that goes away."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ENV, FAKESYSFS, fakesysfs, make_mountpoint, unmount

from fakesysfs import Simulation, __version__

MEM = "devices/system/memory"


def test_python_m_fakesysfs_is_the_command() -> None:
    done = subprocess.run([sys.executable, "-m", "fakesysfs", "--version"], capture_output=True, text=True,
                          env=ENV, timeout=60, check=False)
    assert (done.returncode, done.stdout) == (0, f"fakesysfs {__version__}\n")


def test_udev_takes_one_rules_file_per_flag_and_the_mountpoint_after_it(tmp_path: Path) -> None:
    rules = tmp_path / "x.rules"
    rules.write_text('SUBSYSTEM=="memory", ACTION=="add", ATTR{state}=="offline", ATTR{state}="online"\n')
    done = fakesysfs("udev", "--rules", str(rules), str(tmp_path))
    # MOUNTPOINT reached the runner, which refuses a directory that is no fakesysfs mount
    assert done.returncode == 1, done.stderr
    assert "required" not in done.stderr and done.stderr.startswith("fakesysfs: error: "), done.stderr
    assert str(tmp_path) in done.stderr


@pytest.mark.fuse
def test_udev_applies_every_rules_file_given(fakesysfs_mount: Simulation, tmp_path: Path) -> None:
    first, second = tmp_path / "a.rules", tmp_path / "b.rules"
    first.write_text('SUBSYSTEM=="memory", ACTION=="add", ATTR{state}=="offline", ATTR{state}="online_movable"\n')
    second.write_text('SUBSYSTEM=="dax", ACTION=="add", GOTO="end"\nLABEL="end"\n')
    udev = subprocess.Popen([*FAKESYSFS, "udev", "--rules", str(first), str(fakesysfs_mount.mountpoint),
                             "--rules", str(second)], env=ENV, stderr=subprocess.PIPE, text=True)
    try:
        assert udev.stderr is not None
        assert "applying 2 rules file(s)" in udev.stderr.readline()
        region = fakesysfs_mount.add_cxl_region("256M", node=1)
        assert fakesysfs_mount.wait_until(
            lambda sim: all(b.online and b.movable for b in sim.blocks_of(region)), timeout=30)
    finally:
        udev.send_signal(signal.SIGTERM)
        udev.communicate(timeout=30)
    assert udev.returncode == 0


@pytest.mark.fuse
def test_a_reader_that_goes_away_ends_status_quietly(fakesysfs_mount: Simulation) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # `fakesysfs status MNT | head` once head has exited
    try:
        done = subprocess.run([*FAKESYSFS, "status", str(fakesysfs_mount.mountpoint)], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, env=ENV, timeout=60, check=False)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (128 + signal.SIGPIPE, "")


def _wait_for(predicate: object, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _poke(mnt: Path) -> None:
    """What a user's agent does: a store refused, one done, a region hot-added."""
    fd = os.open(mnt / MEM / "memory40/state", os.O_WRONLY)
    try:
        with pytest.raises(OSError):
            os.write(fd, b"offline")  # a boot block in ZONE_NORMAL: EBUSY
    finally:
        os.close(fd)
    (mnt / MEM / "memory522/state").write_text("online_movable")
    done = fakesysfs("ctl", str(mnt), "add-cxl-region", "256M", "1")
    assert done.returncode == 0, done.stderr


ACTIVITY = [
    r"fakesysfs\.trace: INFO: store /devices/system/memory/memory40/state 'offline': EBUSY \(Device or resource busy\)",
    r"fakesysfs\.trace\.kmsg: INFO: memory offlining \[mem 0x140000000-0x147ffffff\] failed due to .*",
    r"fakesysfs\.trace: INFO: uevent \d+ online /devices/system/memory/memory522 \(memory\)",
    r"fakesysfs\.trace: INFO: store /devices/system/memory/memory522/state 'online_movable': ok",
    r"fakesysfs\.trace: INFO: uevent \d+ add /devices/system/memory/memory\d+ \(memory\)",
    r"fakesysfs\.trace: INFO: op add_cxl_region size=0x10000000 target_node=1 start=0x[0-9a-f]+: name=region3 .*",
]


def _has_lines(text: str, patterns: list[str], prefix: str = "") -> None:
    lines = text.splitlines()
    for pattern in patterns:
        assert any(re.fullmatch(prefix + pattern, line) for line in lines), f"{pattern!r} not in:\n{text}"


@pytest.mark.fuse
@pytest.mark.parametrize("verbose", ["-v", "-vv"])
def test_verbose_logs_what_the_daemon_does(verbose: str) -> None:
    mnt = make_mountpoint()
    serving = subprocess.Popen([*FAKESYSFS, verbose, "mount", "-f", str(mnt)], env=ENV, stderr=subprocess.PIPE,
                               text=True)
    try:
        _wait_for(lambda: os.path.ismount(mnt), "the mount went live")
        _poke(mnt)
    finally:
        unmount(mnt)
        _, err = serving.communicate(timeout=30)
        mnt.rmdir()
    assert serving.returncode == 0, err
    _has_lines(err, ACTIVITY)
    seqnums = [int(m) for m in re.findall(r"INFO: uevent (\d+) ", err)]
    assert min(seqnums) > 200, "the boot's own uevents are not logged"
    fuse_debug = [line for line in err.splitlines() if line.startswith("fuse: DEBUG: ")]
    if verbose == "-v":  # what a user wants, not libfuse's callbacks
        assert not fuse_debug and "Traceback" not in err, err
        assert len(err.splitlines()) < 40, err
    else:
        assert any("libFUSE callback" in line for line in fuse_debug), err


@pytest.mark.fuse
def test_the_log_file_records_the_same_with_times(tmp_path: Path) -> None:
    mnt = make_mountpoint()
    log = tmp_path / "daemon.log"
    try:
        done = fakesysfs("mount", str(mnt), "--log-file", str(log))
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
        _poke(mnt)
    finally:
        assert fakesysfs("umount", str(mnt)).returncode == 0
    _wait_for(lambda: "unmounted" in log.read_text(), "the daemon logged its end")
    text = log.read_text()
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} "
    _has_lines(text, [rf"fakesysfs: INFO: serving {re.escape(str(mnt))} \(pid \d+\)", *ACTIVITY], prefix=stamp)
    mnt.rmdir()


def test_verbose_without_a_place_for_the_log_says_so(tmp_path: Path) -> None:
    done = fakesysfs("mount", "-v", str(tmp_path / "missing"))
    assert done.stderr.splitlines()[0] == (
        "fakesysfs: note: -v without -f or --log-file: the daemon's log is discarded once mounted")


@pytest.mark.fuse
def test_run_logs_to_its_log_file(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    done = fakesysfs("run", "--log-file", str(log), "--", "sh", "-c",
                     f"echo online_movable > /sys/{MEM}/memory522/state", timeout=120)
    assert done.returncode == 0, done.stderr
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} "
    _has_lines(log.read_text(), [
        r"fakesysfs\.trace: INFO: uevent \d+ online /devices/system/memory/memory522 \(memory\)",
        r"fakesysfs\.trace: INFO: store /devices/system/memory/memory522/state 'online_movable\\n': ok",
    ], prefix=stamp)
