"""A full disk under ``--state`` (issue 16): the writer gets ENOSPC, nothing acknowledged is lost.

The journal reserves room for a store's record before the store runs (fakesysfs/journal.py
``Journal.reserve``), so a store that cannot be made durable is refused with ENOSPC without
reaching the kernel; the daemon keeps serving; once space is freed the next store succeeds;
and the state file holds exactly the acknowledged stores, so a remount resumes them.

Runs tests/full_disk_driver.py in a private mount namespace with a 64 KiB tmpfs (~3 s).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ENV

pytestmark = pytest.mark.fuse

DRIVER = Path(__file__).with_name("full_disk_driver.py")


def test_a_full_state_disk_answers_enospc_and_loses_nothing_acknowledged(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) for a private tmpfs")
    done = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, str(DRIVER), str(tmp_path)],
                          capture_output=True, text=True, timeout=120, check=False,
                          env=ENV)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    acked = result["acked"]
    assert result["refused"] is not None, "the disk never filled up"
    word, err = result["refused"]
    assert err == "ENOSPC" and word in ("online_movable", "offline")
    assert result["again_while_full"] == "ENOSPC"  # still serving, still refusing
    last_before = acked[-2] if result["after_freeing"] == "ok" else acked[-1]
    assert result["state_while_full"] == ("offline\n" if last_before == "offline" else "online\n")
    assert result["after_freeing"] == "ok"
    # Exactly the acknowledged stores are in the journal: the refused one never reached it.
    assert result["journal"] == [["/devices/system/memory/memory522/state", w, 0] for w in acked]
    assert result["resumed_state"] == ("offline\n" if acked[-1] == "offline" else "online\n")
