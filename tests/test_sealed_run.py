"""A sealed ``fakesysfs run`` (issue 16): nothing COMMAND does, and no daemon death, reaches
the host's kernel.

- The daemon dies (SIGTERM, SIGKILL) or the keeper is killed while COMMAND runs: COMMAND
  never sees the host's sysfs (its /sys fails with ENOTCONN), its whole process tree is
  killed, and ``fakesysfs run`` exits RUN_FAILED (125) with one line saying why.
- ``umount /sys`` inside uncovers nothing: the mounts COMMAND inherits are locked, what
  they cover is read-only, and a new sysfs cannot be mounted.
- COMMAND keeps no capability of the host's kernel (module loading, clock, reboot) and
  finds no module files, as on a host without them.

The daemon is killed for real; the keeper is stopped (SIGSTOP) in between so that what
COMMAND sees in the meantime can be looked at from outside through ``/proc/PID/root``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import ENV, FAKESYSFS, fakesysfs, fakesysfs_run, fuse_unavailable_reason

from fakesysfs.nsops import HOST_ONLY_CAPS
from fakesysfs.run import RUN_FAILED

SYSFS_MAGIC = "62656572"


def _unavailable() -> str | None:
    reason = fuse_unavailable_reason()
    if reason is not None:
        return f"FUSE: {reason}"
    if os.geteuid() != 0:
        return "needs root"
    return None


pytestmark = pytest.mark.skipif(_unavailable() is not None, reason=str(_unavailable()))
MODES = [pytest.param([], id="root"), pytest.param(["--userns"], id="userns")]


def _nspids(proc: psutil.Process) -> list[str]:
    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return line.split()[1:]
    return []


def _processes(run: subprocess.Popen[str]) -> tuple[psutil.Process, psutil.Process, psutil.Process]:
    """(keeper, daemon, init) of a running ``fakesysfs run``; init is PID 1 of COMMAND's namespace."""
    keeper = psutil.Process(run.pid).children()[0]
    children = keeper.children()
    daemon = next(p for p in children if len(_nspids(p)) == len(_nspids(keeper)))
    init = next(p for p in children if _nspids(p)[-1] == "1")
    return keeper, daemon, init


#: COMMAND: report what /sys is, every 20 ms, until killed: the filesystem magic and memory0's
#: state, or the errors.
WATCH = ("echo started; while :; do stat -f -c %t /sys 2>&1; "
         "cat /sys/devices/system/memory/memory0/state 2>&1; sleep 0.02; done")


#: What a dead FUSE mount answers: ENOTCONN, or ECONNABORTED for a request the death cut off.
DEAD = ("Transport endpoint is not connected", "Software caused connection abort")


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for proc in procs:
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.NoSuchProcess:
            pass
    return alive


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_dead_daemon_fails_closed_and_ends_the_command(sig: signal.Signals, mode: list[str]) -> None:
    run = subprocess.Popen([*FAKESYSFS, "run", *mode, "--", "sh", "-c", WATCH], env=ENV, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert run.stdout is not None and run.stdout.readline() == "started\n"
        keeper, daemon, init = _processes(run)
        tree = [init, *init.children(recursive=True)]
        keeper.send_signal(signal.SIGSTOP)  # COMMAND keeps running, unwatched
        daemon.send_signal(sig)
        deadline = time.monotonic() + 20
        while True:  # what COMMAND's namespaces show meanwhile: the fake, then ENOTCONN, never sysfs
            seen = subprocess.run(["nsenter", "-t", str(init.pid), "-a", "stat", "-f", "-c", "%t", "/sys"],
                                  capture_output=True, text=True, check=False)
            assert seen.stdout.strip() in ("", "65735546"), seen
            if "Transport endpoint is not connected" in seen.stderr or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert "Transport endpoint is not connected" in seen.stderr, seen
        time.sleep(0.3)  # COMMAND runs on while the keeper is stopped
        keeper.send_signal(signal.SIGCONT)
        out, err = run.communicate(timeout=20)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    lines = out.splitlines()
    assert SYSFS_MAGIC not in lines
    dead = next(i for i, line in enumerate(lines) if line.endswith(DEAD))
    assert len(lines) - dead > 4  # it ran on while the keeper was stopped: /sys failed closed
    # (the last line may have been cut off by the SIGKILL)
    assert all(line.endswith(DEAD) for line in lines[dead:-1]), lines[dead:]
    assert set(lines[1:dead]) <= {"65735546", "online"}
    assert run.returncode == RUN_FAILED
    why = ("was stopped by a signal (libfuse ended its loop and unmounted /sys)" if sig == signal.SIGTERM
           else "was killed by SIGKILL")
    message = f"fakesysfs: error: the fakesysfs daemon {why} while sh ran; sh and everything it started were killed"
    assert err.splitlines() == [message], err
    time.sleep(0.1)
    assert _alive(tree) == []


def test_a_killed_keeper_takes_the_command_and_the_daemon_along() -> None:
    run = subprocess.Popen([*FAKESYSFS, "run", "--", "sh", "-c", f"setsid sh -c '{WATCH}' & {WATCH}"], env=ENV,
                           text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert run.stdout is not None and run.stdout.readline() == "started\n"
        keeper, daemon, init = _processes(run)
        time.sleep(0.2)
        tree = [daemon, init, *init.children(recursive=True)]
        assert len(tree) >= 4  # both shells
        keeper.kill()
        out, err = run.communicate(timeout=20)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == RUN_FAILED
    assert err.splitlines() == [("fakesysfs: error: the namespace keeper was killed by SIGKILL while sh ran; sh "
                                 "and everything it started were killed")]
    assert SYSFS_MAGIC not in out.splitlines()
    deadline = time.monotonic() + 5
    while _alive(tree) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _alive(tree) == []


@pytest.mark.parametrize("mode", MODES)
def test_unmounting_inside_uncovers_nothing_of_the_host(mode: list[str]) -> None:
    script = r"""
for m in /sys /dev /run /proc; do umount $m 2>/dev/null && echo "unmounted $m"; umount -l $m 2>/dev/null && echo "detached $m"; done
mount -o remount,rw /sys 2>/dev/null && echo "remounted /sys"
mkdir -p /tmp/fakesysfs-sealed-$$ && { mount -t sysfs sysfs /tmp/fakesysfs-sealed-$$ 2>/dev/null && echo "new sysfs"; rmdir /tmp/fakesysfs-sealed-$$; }
stat -f -c %t /sys
cat /sys/devices/system/memory/block_size_bytes
awk '$9 == "sysfs" || $9 == "devtmpfs" { print $5, $6 }' /proc/self/mountinfo
"""  # noqa: E501 (verbatim rules/script text)
    done = fakesysfs_run(*mode, "--", "sh", "-c", script)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == ["65735546", "8000000"], lines  # FUSE's magic: still the fake
    covered = lines[2:]
    assert covered and any(line.startswith("/sys ") for line in covered)
    for line in covered:  # the host's sysfs (and devtmpfs) below the fakes, kept read-only
        assert line.split()[1].split(",")[0] == "ro", line


@pytest.mark.parametrize("mode", MODES)
def test_the_command_has_no_capability_over_the_hosts_kernel(mode: list[str]) -> None:
    script = r"""
import ctypes, errno, os, time
status = dict(line.split(":\t") for line in open("/proc/self/status").read().splitlines() if ":\t" in line)
print("bounding", int(status["CapBnd"], 16))
print("userns", os.readlink("/proc/self/ns/user"))
print("pid", os.getpid())
try:
    time.clock_settime(time.CLOCK_REALTIME, time.clock_gettime(time.CLOCK_REALTIME))
    print("clock", 0)
except OSError as exc:
    print("clock", errno.errorcode[exc.errno])
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open("/dev/null", os.O_RDONLY)
number = {"x86_64": 313, "aarch64": 273}.get(os.uname().machine)
if number is not None:
    libc.syscall(number, fd, b"", 0)  # finit_module(/dev/null): refused before it reads a byte
    print("finit_module", errno.errorcode[ctypes.get_errno()])
"""
    done = fakesysfs_run(*mode, "--", sys.executable, "-c", script)
    assert done.returncode == 0, done.stderr
    seen = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    bounding = int(seen["bounding"])
    assert [cap for cap in HOST_ONLY_CAPS if bounding & (1 << cap)] == []
    assert bounding & (1 << 21)  # CAP_SYS_ADMIN stays (in its own user namespace): mount works inside
    assert seen["userns"] != os.readlink("/proc/self/ns/user")
    assert seen["pid"] == "2"  # its own PID namespace, with a /proc to match
    assert seen["clock"] == "EPERM"
    if "finit_module" in seen:
        assert seen["finit_module"] in ("EPERM", "ENOSYS")  # ENOSYS: a kernel built without modules


@pytest.mark.skipif(shutil.which("daxctl") is None or shutil.which("unshare") is None,
                    reason="needs daxctl and unshare (apt-get install daxctl util-linux)")
def test_a_module_load_never_reaches_the_hosts_module_files(tmp_path: Path) -> None:
    """The host seems to have kmem.ko (in a private mount namespace, an overlay adds a module
    tree to the host's, which stays as it is); inside, with a topology whose kmem is not loaded,
    the module directories are empty: libkmod finds no module file, and with the install
    commands of /run/modprobe.d it loads the simulated kmem instead (docs/proc.md "Modules")."""
    topology = tmp_path / "nokmem.toml"
    default = fakesysfs("topology").stdout
    assert "\nkmem = true\n" in default
    topology.write_text(default.replace("\nkmem = true\n", "\nkmem = false\n"))
    release = os.uname().release
    modules = os.path.realpath("/lib/modules")
    parent = os.path.dirname(modules)
    (tmp_path / "upper").mkdir()
    (tmp_path / "work").mkdir()
    inner = f"""
set -e
mount -t overlay fakesysfs-test -o lowerdir={parent},upperdir={tmp_path}/upper,workdir={tmp_path}/work {parent}
mkdir -p {modules}/{release}/kernel/drivers/dax
: > {modules}/{release}/kernel/drivers/dax/kmem.ko
echo "kernel/drivers/dax/kmem.ko:" > {modules}/{release}/modules.dep
echo "outside: $(ls {modules}/{release}/kernel/drivers/dax)"
{" ".join(FAKESYSFS)} run -c {topology} -- sh -c 'echo "inside: $(ls -A /lib/modules)"; mv /run/modprobe.d/fakesysfs.conf /run/c; daxctl reconfigure-device -m system-ram dax0.0 2>&1; mv /run/c /run/modprobe.d/fakesysfs.conf; daxctl reconfigure-device -m system-ram dax0.0 2>&1' || true
"""  # noqa: E501 (verbatim rules/script text)
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", inner], env=ENV,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "outside: kmem.ko" in done.stdout
    assert "inside: \n" in done.stdout + "\n"
    assert "could not find module by name='kmem'" in done.stdout, done.stdout
    assert done.stdout.rstrip().endswith("]") and '"mode":"system-ram"' in done.stdout, done.stdout


def test_a_run_inside_a_run_takes_the_user_namespace_path() -> None:
    """Root inside is root of a user namespace: it can mount, not mknod; a nested run works."""
    inner = f"{' '.join(FAKESYSFS)} run -- cat /sys/devices/system/memory/block_size_bytes"
    done = fakesysfs_run("--", "sh", "-c", inner)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "8000000\n"


@pytest.mark.parametrize("mode", MODES)
def test_udev_rule_programs_are_sealed_too(mode: list[str], tmp_path: Path) -> None:
    """A rule's RUN program is run by the daemon (as root), for events COMMAND causes: it
    gets COMMAND's seal (locked mounts, no capability over the host's kernel, no modules)."""
    out = tmp_path / "seen"
    rules = tmp_path / "99-seal.rules"
    rules.write_text(f'ACTION=="online", SUBSYSTEM=="memory", KERNEL=="memory522", '
                     f'RUN+="/bin/sh -c \'{{ grep CapBnd /proc/self/status; umount /sys || echo refused; '
                     f'stat -f -c %%t /sys; ls -A /lib/modules 2>/dev/null | wc -l; '
                     f'readlink /proc/self/ns/user; }} > {out}.tmp; mv {out}.tmp {out}\'"\n')
    script = (f"echo online_movable > /sys/devices/system/memory/memory522/state; "
              f"for i in $(seq 100); do test -e {out} && break; sleep 0.05; done")
    done = fakesysfs_run(*mode, "--rules", str(rules), "--", "sh", "-c", script)
    assert done.returncode == 0, done.stderr
    lines = out.read_text().splitlines()
    bounding = int(lines[0].split()[1], 16)
    assert [cap for cap in HOST_ONLY_CAPS if bounding & (1 << cap)] == []
    assert lines[1:4] == ["refused", "65735546", "0"], lines
    assert lines[4] != os.readlink("/proc/self/ns/user")
