"""Permissions and containment (issue 8).

- ``fakesysfs mount`` refuses the host's sysfs: ``/sys``, anything below it, a symlink whose
  realpath is there, a directory of a sysfs mount elsewhere; allowed only where ``/sys`` is
  itself a fakesysfs mount (the private namespace of ``fakesysfs run``).
- Without ``--allow-other`` only the mounting user (and root) reach the mount; with it, the
  kernel enforces the mode bits for other users (0400 unreadable, 0200 and 0644 not
  writable), and the daemon refuses root what the mode does not allow (R-SYS-01).
- ``fakesysfs run`` leaves the host's ``/sys``, ``/dev`` and ``/run`` as they were (listings
  and modification times), whatever the command does inside.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fakesysfs import cli

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(REPO))


def fakesysfs(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fakesysfs.cli", *argv], capture_output=True, text=True,
                          env=ENV, timeout=timeout, check=False)


# -- never over the host's /sys -----------------------------------------------------------------
HOST_MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw
24 23 0:7 / /sys/kernel/debug rw,relatime - debugfs debugfs rw
25 23 0:26 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw
27 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
40 27 0:22 / /mnt/host\\040sys rw,relatime - sysfs sysfs rw
"""
#: The namespace of ``fakesysfs run``: the fake mounted over the host's /sys.
RUN_MOUNTINFO = HOST_MOUNTINFO + "90 23 0:50 / /sys rw,nosuid,nodev,relatime - fuse.fakesysfs fakesysfs rw\n"


@pytest.mark.parametrize("path", ["/sys", "/sys/", "/sys/kernel/mm", "/sys/kernel/debug", "/sys/fs/cgroup/x",
                                  "/mnt/host sys", "/mnt/host sys/kernel"])
def test_the_hosts_sysfs_is_refused(path: str) -> None:
    with pytest.raises(cli.CliError, match="refusing to mount over the host's sysfs"):
        cli._check_not_host_sysfs(path, HOST_MOUNTINFO)


@pytest.mark.parametrize("path", ["/tmp/x", "/mnt/other", "/sysfoo", "/srv/sys"])
def test_other_places_are_allowed(path: str) -> None:
    cli._check_not_host_sysfs(path, HOST_MOUNTINFO)


def test_below_the_fake_sys_of_fakesysfs_run_is_allowed() -> None:
    cli._check_not_host_sysfs("/sys/devices/system", RUN_MOUNTINFO)
    cli._check_not_host_sysfs("/sys", RUN_MOUNTINFO)  # then refused as "already a mount point"


def test_a_symlink_to_sys_is_judged_by_its_realpath(tmp_path: Path) -> None:
    (tmp_path / "s").symlink_to("/sys")
    (tmp_path / "k").symlink_to("/sys/kernel")
    for path in (tmp_path / "s", tmp_path / "k" / "mm"):
        with pytest.raises(cli.CliError, match=r"really /sys"):
            cli._check_not_host_sysfs(str(path), HOST_MOUNTINFO)


@pytest.mark.parametrize("where", ["/sys", "/sys/kernel/mm", "/sys/devices/system/memory", "SYMLINK"])
def test_fakesysfs_mount_refuses_the_real_sys_in_one_line(where: str, tmp_path: Path) -> None:
    """On this machine, for real: nothing is mounted and the message says what to do."""
    if where == "SYMLINK":
        (tmp_path / "sys").symlink_to("/sys")
        where = str(tmp_path / "sys")
    if not os.path.isdir(where):
        pytest.skip(f"{where} does not exist here")
    done = fakesysfs("mount", where)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing to mount over the host's sysfs" in lines[0], done.stderr
    assert "fakesysfs run" in lines[0]
    assert cli._containing_mount(os.path.realpath(where), cli._mounts())[1] != "fuse.fakesysfs"
