"""The sysfs refusal of ``fakesysfs mount`` holds at mount time (issue 16, item 8).

The mount point is checked and then, about a second later (the topology boots), mounted
on. A symlink swapped in between must not move the mount onto a sysfs directory: the mount
goes onto the directory that was opened and checked. The sysfs here is a private instance
mounted in a private mount namespace of a child process, so even a failing fix cannot
cover the host's /sys.
"""

from __future__ import annotations

import os

import pytest
from conftest import run_private

pytestmark = [pytest.mark.fuse,
              pytest.mark.skipif(os.geteuid() != 0, reason="a private mount namespace and sysfs need root")]


#: Runs as root in a child: private mount namespace, a fresh sysfs at BASE/sysmnt, then
#: ``fakesysfs mount BASE/link`` while BASE/link -> BASE/plain; the topology boot (after the
#: check, before the mount) swaps the link to a directory of that sysfs.
SWAP_SCRIPT = r"""
import json, os, sys
from fakesysfs import cli, fdops
from fakesysfs.nsops import CLONE_NEWNS, MNT_DETACH, MS_PRIVATE, MS_REC, mount, umount, unshare

base, target_rel = sys.argv[1], sys.argv[2]
unshare(CLONE_NEWNS)
mount(None, "/", None, MS_REC | MS_PRIVATE)
sysmnt = os.path.join(base, "sysmnt")
os.mkdir(sysmnt)
mount("sysfs", sysmnt, "sysfs")
target = os.path.join(sysmnt, target_rel)
plain = os.path.join(base, "plain")
os.mkdir(plain)
link = os.path.join(base, "link")
os.symlink(plain, link)
boot = cli.common.boot

def swapping_boot(topology):
    os.unlink(link)
    os.symlink(target, link)
    return boot(topology)

cli.common.boot = swapping_boot
status = cli.main(["mount", link])
found = [m for m in fdops.mounts() if m.fstype == "fuse.fakesysfs" and m.point.startswith(base + "/")]
parents = {m.point: fdops.mount_entry(m.parent) for m in found}
print(json.dumps({"status": status, "target": target, "plain": plain,
                  "points": [m.point for m in found],
                  "on_sysfs": [p for p, e in parents.items() if e is not None and e.fstype == "sysfs"]}))
for m in reversed(found):
    umount(m.point, MNT_DETACH)
"""


@pytest.mark.parametrize("target", [".", "kernel", "devices/system/memory"])
def test_a_symlink_swapped_to_sysfs_after_the_check_never_gets_the_mount(target: str) -> None:
    result = run_private(SWAP_SCRIPT, target, timeout=60)
    assert result["on_sysfs"] == [], f"the fake landed on sysfs: {result}"
    assert result["points"] == [result["plain"]], result  # on the directory that was checked
    assert result["status"] == 0, result
