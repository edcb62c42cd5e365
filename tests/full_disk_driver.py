"""Run by tests/test_full_disk.py inside ``unshare -m --propagation private`` (the tmpfs and the
mount exist only in that namespace):

    python full_disk_driver.py WORKDIR

Mounts a 64 KiB tmpfs, serves ``fakesysfs mount --state`` from it, fills it, and stores until
one fails; frees the space and stores again; unmounts, and mounts the state file again.
Prints one JSON object with what happened (the test judges it).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import signal
import subprocess
import sys
import time

from fakesysfs.journal import read_state

STATE_FILE = "/devices/system/memory/memory522/state"  # an offline kmem block of the default topology


def fakesysfs(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fakesysfs.cli", *argv], capture_output=True, text=True, timeout=60,
                          check=False)


def store(mnt: str, data: str) -> int:
    """0, or the errno the writer saw."""
    try:
        fd = os.open(mnt + STATE_FILE, os.O_WRONLY)
    except OSError as exc:
        return exc.errno or -1
    try:
        os.write(fd, data.encode())
        return 0
    except OSError as exc:
        return exc.errno or -1
    finally:
        os.close(fd)


def mount(mnt: str, state: str) -> int:
    done = fakesysfs("mount", mnt, "--state", state)
    if done.returncode != 0:
        raise SystemExit(f"mount failed: {done.stderr}")
    found = re.search(r"\(pid (\d+)\)", done.stdout)
    assert found, done.stdout
    return int(found.group(1))


def umount(mnt: str, pid: int) -> None:
    subprocess.run(["umount", mnt], check=False, timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def main() -> None:
    work = sys.argv[1]
    disk, mnt = os.path.join(work, "disk"), os.path.join(work, "mnt")
    os.makedirs(disk)
    os.makedirs(mnt)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "fakesysfs-test-disk", disk], check=True)
    state = os.path.join(disk, "s.state")
    result: dict[str, object] = {}
    pid = mount(mnt, state)
    try:
        acked: list[str] = []
        words = ["online_movable", "offline"]
        assert store(mnt, words[0]) == 0
        acked.append(words[0])
        filler = os.path.join(disk, "filler")
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
        os.close(fd)
        refused = None
        for i in range(1, 400):
            word = words[i % 2]
            err = store(mnt, word)
            if err:
                refused = (word, errno.errorcode.get(err, str(err)))
                break
            acked.append(word)
        result["refused"] = refused
        result["acked_while_filling"] = len(acked) - 1
        result["state_while_full"] = open(mnt + STATE_FILE).read()  # noqa: SIM115 (still serving)
        result["again_while_full"] = errno.errorcode.get(store(mnt, refused[0]), "0") if refused else None
        os.unlink(filler)
        err = store(mnt, refused[0]) if refused else -1
        result["after_freeing"] = errno.errorcode.get(err, str(err)) if err else "ok"
        if not err and refused:
            acked.append(refused[0])
        result["acked"] = acked
    finally:
        umount(mnt, pid)
    records = read_state(state).records
    result["journal"] = [(r["path"], r["data"], r["errno"]) for r in records]
    pid = mount(mnt, state)
    try:
        result["resumed_state"] = open(mnt + STATE_FILE).read()  # noqa: SIM115
    finally:
        umount(mnt, pid)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
