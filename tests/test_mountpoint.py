"""The Python API mounts where ``fakesysfs mount`` would (fakesysfs/mountpoint.py).

``Simulation.mount(path)`` (and so the pytest plugin) refuses the host's sysfs exactly as
the command does: ``/sys``, below it, a symlink there, a directory of any sysfs mount, each
in one line; and it mounts on the directory it checked, so a symlink swapped after the
check cannot move the fake onto sysfs. Every case runs as root in a child process with a
private mount namespace (``/`` made rprivate), its sysfs a fresh instance mounted there:
even a broken refusal cannot cover the host's /sys.
"""

from __future__ import annotations

import os

import pytest
from conftest import run_private

pytestmark = [pytest.mark.fuse,
              pytest.mark.skipif(os.geteuid() != 0, reason="a private mount namespace and sysfs need root")]


#: Common to both scripts: a private mount namespace and a fresh sysfs at BASE/sysmnt.
PRIVATE_SYSFS = r"""
import json, os, sys
from fakesysfs import Simulation, fdops
from fakesysfs.fuse_adapter import MountError
from fakesysfs.nsops import CLONE_NEWNS, MNT_DETACH, MS_PRIVATE, MS_REC, mount, umount, unshare

base = sys.argv[1]
unshare(CLONE_NEWNS)
mount(None, "/", None, MS_REC | MS_PRIVATE)
sysmnt = os.path.join(base, "sysmnt")
os.mkdir(sysmnt)
mount("sysfs", sysmnt, "sysfs")

def fake_mounts():
    # the fakes this script made (the namespace is a copy: other tests' mounts are in it)
    return [(m.point, fdops.mount_entry(m.parent).fstype) for m in fdops.mounts()
            if m.fstype == "fuse.fakesysfs" and (m.point.startswith(base + "/") or m.point.startswith("/sys"))]
"""

REFUSE_SCRIPT = PRIVATE_SYSFS + r"""
os.symlink("/sys", os.path.join(base, "link"))
places = ["/sys", "/sys/", "/sys/kernel/mm", base + "/link", base + "/link/kernel/mm", sysmnt, sysmnt + "/kernel"]
results = {}
for where in places:
    with Simulation() as sim:
        try:
            sim.mount(where)
            results[where] = None
        except MountError as exc:
            results[where] = str(exc)
found = fake_mounts()
for point, _ in reversed(found):
    umount(point, MNT_DETACH)
print(json.dumps({"results": results, "fake_mounts": found}))
"""

#: ``Simulation.mount(BASE/link)`` while BASE/link -> BASE/plain; when the serving thread
#: starts (after the check, before libfuse would mount by path) the link is swapped to a
#: directory of the fresh sysfs.
SWAP_SCRIPT = PRIVATE_SYSFS + r"""
target = os.path.join(sysmnt, sys.argv[2])
plain = os.path.join(base, "plain")
os.mkdir(plain)
link = os.path.join(base, "link")
os.symlink(plain, link)
from fakesysfs import fuse_adapter
serve = fuse_adapter.serve

def swapping_serve(*args, **kwargs):
    os.unlink(link)
    os.symlink(target, link)
    return serve(*args, **kwargs)

fuse_adapter.serve = swapping_serve
error, seen = None, None
sim = Simulation()
try:
    sim.mount(link)
    seen = open(os.path.join(plain, "devices/system/memory/block_size_bytes")).read()
except MountError as exc:
    error = str(exc)
found = fake_mounts()
sim.close()
after = fake_mounts()
for point, _ in reversed(after):
    umount(point, MNT_DETACH)
print(json.dumps({"error": error, "plain": plain, "fake_mounts": found, "after_close": after, "seen": seen}))
"""


def test_simulation_mount_refuses_sysfs_in_one_line() -> None:
    result = run_private(REFUSE_SCRIPT)
    assert result["fake_mounts"] == [], f"a fake was mounted: {result}"
    for where, error in result["results"].items():
        assert error is not None, f"Simulation.mount({where!r}) was not refused"
        assert "\n" not in error and "refusing to mount over the host's sysfs" in error, (where, error)
        assert "fakesysfs run" in error, error
    link_below = next(error for where, error in result["results"].items() if where.endswith("/link/kernel/mm"))
    assert "(really /sys/kernel/mm)" in link_below


@pytest.mark.parametrize("target", [".", "kernel", "devices/system/memory"])
def test_simulation_mount_lands_on_the_directory_it_checked(target: str) -> None:
    result = run_private(SWAP_SCRIPT, target)
    assert result["error"] is None, result
    assert [point for point, _ in result["fake_mounts"]] == [result["plain"]], result  # the checked directory
    assert all(parent != "sysfs" for _, parent in result["fake_mounts"]), f"the fake landed on sysfs: {result}"
    assert result["seen"] == "8000000\n"
    assert result["after_close"] == [], "Simulation.close() left the mount behind"
