"""Inside ``fakesysfs run`` the memory /proc files are the simulated machine's (docs/proc.md):
real tools (grep, free, vmstat, psutil, numastat) see the machine /sys describes, before and
after daxctl puts dax0.0's memory online; the rest of /proc stays the kernel's."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import fakesysfs_run, fuse_unavailable_reason


def _unavailable() -> str | None:
    reason = fuse_unavailable_reason()
    if reason is not None:
        return f"FUSE: {reason}"
    if os.geteuid() != 0:
        return "needs root"
    if shutil.which("daxctl") is None:
        return "daxctl is not installed"
    return None


pytestmark = pytest.mark.skipif(_unavailable() is not None, reason=str(_unavailable()))

#: Prints, under "== NAME" headers, what each reader sees.
_READERS = r"""
section() { echo "== $1"; }
section meminfo; grep -E '^(MemTotal|MemFree|MemAvailable):' /proc/meminfo
section nodes; cat /sys/devices/system/node/node*/meminfo | grep -E 'MemTotal|MemFree'
section free; free -b | grep '^Mem:'
section vmstat; vmstat -s | grep -E 'total memory|free memory'
section psutil; PY -c 'import psutil; m = psutil.virtual_memory(); print(m.total, m.free, m.available)'
section vmstat_free; grep '^nr_free_pages ' /proc/vmstat
"""


def _sections(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        if line.startswith("== "):
            current = out.setdefault(line[3:] + f"#{sum(k.startswith(line[3:] + '#') for k in out)}", [])
        else:
            current.append(line)
    return out


def _check_one_machine(seen: dict[str, list[str]], n: int) -> int:
    """Every reader of the n-th round agrees with the sums of the nodes; MemTotal in kB."""
    meminfo = {line.split(":")[0]: int(line.split()[1]) for line in seen[f"meminfo#{n}"]}
    nodes: dict[str, int] = {}
    for line in seen[f"nodes#{n}"]:
        label, value = line.split()[2].rstrip(":"), int(line.split()[3])
        nodes[label] = nodes.get(label, 0) + value
    assert meminfo["MemTotal"] == nodes["MemTotal"] and meminfo["MemFree"] == nodes["MemFree"]
    free = seen[f"free#{n}"][0].split()
    assert int(free[1]) == meminfo["MemTotal"] * 1024 and int(free[3]) == meminfo["MemFree"] * 1024
    assert int(free[6]) == meminfo["MemAvailable"] * 1024
    vmstat = [int(line.split()[0]) for line in seen[f"vmstat#{n}"]]
    assert vmstat == [meminfo["MemTotal"], meminfo["MemFree"]]
    total, free_b, available = map(int, seen[f"psutil#{n}"][0].split())
    assert (total, free_b, available) == (meminfo["MemTotal"] * 1024, meminfo["MemFree"] * 1024,
                                          meminfo["MemAvailable"] * 1024)
    assert int(seen[f"vmstat_free#{n}"][0].split()[1]) * 4 == meminfo["MemFree"]
    return meminfo["MemTotal"]


def test_tools_see_the_simulated_machine_before_and_after_daxctl() -> None:
    readers = _READERS.replace("PY", sys.executable)
    script = f"{readers}\ndaxctl reconfigure-device -m system-ram dax0.0 >/dev/null || exit 9\n{readers}"
    done = fakesysfs_run("--", "sh", "-c", script, timeout=180)
    assert done.returncode == 0, done.stderr
    seen = _sections(done.stdout)
    before = _check_one_machine(seen, 0)
    after = _check_one_machine(seen, 1)
    assert before == 8388216  # node 0's DRAM, not this host's memory
    # dax0.0's 16 GiB online Movable; memmap_on_memory keeps 512 pages of each block.
    assert after - before == 128 * (32768 - 512) * 4


def test_proc_entries_behave_as_procfs_and_the_rest_of_proc_is_the_kernels() -> None:
    script = r"""
stat -c '%n %s %a %U' /proc/meminfo /proc/zoneinfo /proc/vmstat /proc/buddyinfo /proc/iomem /proc/cmdline \
    /proc/pagetypeinfo
cat /proc/cmdline
head -c 7 /proc/meminfo; echo
dd if=/proc/meminfo bs=1 skip=16 count=8 2>/dev/null; echo
grep -c 'System RAM (kmem)' /proc/iomem
setpriv --reuid=65534 --regid=65534 --clear-groups \
    sh -c 'grep -c "^ *00000000-00000000 : " /proc/iomem; wc -l < /proc/iomem; cat /proc/pagetypeinfo' \
    2>/dev/null || echo pagetypeinfo-refused
echo x > /proc/meminfo 2>/dev/null || echo write-refused
readlink /proc/self >/dev/null && echo self-ok
grep -c ^processor /proc/cpuinfo
test -e /run/fakesysfs/proc/meminfo || echo staging-hidden
grep -c 'Node 1, zone' /proc/zoneinfo
if command -v numastat >/dev/null; then numastat -m 2>/dev/null | grep '^MemTotal'; fi
"""
    done = fakesysfs_run("--", "sh", "-c", script)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    stats = {line.split()[0]: line.split()[1:] for line in lines[:7]}
    lines = lines[1:]  # one more stat line
    cmdline = lines[6] + "\n"
    assert cmdline.startswith("memhp_default_state=offline memory_hotplug.memmap_on_memory=Y ")
    for name in ("meminfo", "zoneinfo", "vmstat", "buddyinfo", "iomem"):
        assert stats[f"/proc/{name}"] == ["0", "444", "root"], name
    assert stats["/proc/cmdline"] == [str(len(cmdline)), "444", "root"]
    assert stats["/proc/pagetypeinfo"] == ["0", "400", "root"]
    assert lines[7] == "MemTota"  # read(2) at 0, then at an offset in the same open file
    assert lines[8] == " 8388216"
    assert lines[9] == "2"  # dax0.0 and dax1.0 are kmem-bound at boot
    hidden, total = int(lines[10]), int(lines[11])
    assert hidden == total > 0  # r_show(): no addresses without root
    assert lines[12] == "pagetypeinfo-refused"  # 0400: EACCES for uid 65534
    lines = lines[1:]
    assert lines[12] == "write-refused"
    assert lines[13] == "self-ok"
    assert int(lines[14]) == os.cpu_count()  # /proc/cpuinfo is this machine's
    assert lines[15] == "staging-hidden"
    assert lines[16] == "5"  # node 1 is online (memory added) with its five zones
    if shutil.which("numastat"):
        row = lines[17].split()
        assert row[:3] == ["MemTotal", f"{8388216 / 1024:.2f}", "0.00"]


def test_vm_sysctls_are_the_simulated_machines(tmp_path: Path) -> None:
    host = Path("/proc/sys/vm/min_free_kbytes").read_text()
    script = r"""
cat /proc/sys/vm/min_free_kbytes
grep -m1 -A3 'Node 0, zone   Normal' /proc/zoneinfo | tail -1
echo 200000 > /proc/sys/vm/min_free_kbytes || exit 3
cat /proc/sys/vm/min_free_kbytes
grep -m1 -A3 'Node 0, zone   Normal' /proc/zoneinfo | tail -1
echo 1 > /proc/sys/vm/compact_memory && echo compacted
echo 9 > /proc/sys/vm/drop_caches 2>/dev/null || echo drop-refused
stat -c '%a' /proc/sys/vm/min_free_kbytes /proc/sys/vm/drop_caches
cat /proc/sys/vm/swappiness >/dev/null && echo other-sysctls-are-the-kernels
"""
    done = fakesysfs_run("--trace", str(tmp_path / "trace.jsonl"), "--", "sh", "-c", script)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    # Sysctl writes are stores of the trace (and of a state's history), with their errno.
    trace = [json.loads(line) for line in (tmp_path / "trace.jsonl").read_text().splitlines()]
    assert [(t["path"], t["data"], t["errno"]) for t in trace] == [
        ("/proc/sys/vm/min_free_kbytes", "200000\n", 0), ("/proc/sys/vm/compact_memory", "1\n", 0),
        ("/proc/sys/vm/drop_caches", "9\n", errno.EINVAL)]
    assert lines[0] == "67584"  # the simulated machine's 8 GiB, whatever this host has
    before, after = int(lines[1].split()[1]), int(lines[3].split()[1])
    assert lines[2] == "200000" and after > 2 * before  # min grows with min_free_kbytes
    assert lines[4:] == ["compacted", "drop-refused", "644", "200", "other-sysctls-are-the-kernels"]
    assert Path("/proc/sys/vm/min_free_kbytes").read_text() == host  # never the host's


def test_the_hosts_sysctls_are_read_only_inside() -> None:
    """COMMAND's uid is the host's root and kernel/sysctl.c sysctl_perm() checks the uid, so
    every sysctl the simulation does not answer would write the host's kernel: /proc/sys (and
    /proc/irq, /proc/bus, /proc/fs) are read-only binds, which COMMAND cannot remount or
    unmount; the simulated /proc/sys/vm files above them stay writable."""
    host = Path("/proc/sys/vm/swappiness").read_text()
    script = r"""
for f in /proc/sys/vm/swappiness /proc/sys/vm/nr_hugepages /proc/sys/kernel/printk /proc/irq/default_smp_affinity; do
    [ -e "$f" ] || continue
    python3 -c 'import os, sys
try:
    os.close(os.open(sys.argv[1], os.O_WRONLY))
    print(sys.argv[1], "writable")
except OSError as exc:
    print(sys.argv[1], exc.strerror)' "$f"
done
mount -o remount,rw,bind /proc/sys 2>/dev/null && echo remounted
umount -l /proc/sys 2>/dev/null && echo unmounted
echo 70000 > /proc/sys/vm/min_free_kbytes && cat /proc/sys/vm/min_free_kbytes
"""
    done = fakesysfs_run("--", "sh", "-c", script)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "70000" and "remounted" not in lines and "unmounted" not in lines, lines
    checked = lines[:-1]
    assert len(checked) >= 3 and all(line.endswith("Read-only file system") for line in checked), checked
    assert Path("/proc/sys/vm/swappiness").read_text() == host


def _mounted_here(path: Path) -> bool:
    return any(line.split()[4] == str(path) for line in Path("/proc/self/mountinfo").read_text().splitlines())


def test_mount_proc_beside_sys_serves_the_files_for_root_directory_tools() -> None:
    from conftest import fakesysfs, make_mountpoint, unmount

    root = make_mountpoint()
    (root / "sys").mkdir()
    (root / "proc").mkdir()
    try:
        done = fakesysfs("mount", str(root / "sys"), "--proc", str(root / "proc"))
        assert done.returncode == 0, done.stderr
        meminfo = (root / "proc" / "meminfo").read_text()
        assert meminfo.startswith("MemTotal:        8388216 kB\n")
        assert sorted(p.name for p in (root / "proc").iterdir()) == [
            "buddyinfo", "cmdline", "iomem", "meminfo", "modules", "pagetypeinfo", "swaps", "sys", "vmstat",
            "zoneinfo"]
        assert (root / "proc/modules").read_text() == ("kmem 28672 0 - Live 0x0000000000000000\n"
                                                       "device_dax 20480 0 - Live 0x0000000000000000\n")
        (root / "sys/devices/system/memory/memory522/state").write_text("online_movable")
        assert (root / "proc/meminfo").read_text().startswith(f"MemTotal:       {8388216 + 32256 * 4:>8} kB\n")
        if shutil.which("lstopo"):
            env = dict(os.environ, HWLOC_FSROOT=str(root), HWLOC_COMPONENTS="-x86")
            out = subprocess.run(["lstopo", "--of", "console", "-v"], env=env, capture_output=True, text=True,
                                 check=True).stdout
            assert f"total={8388216 + 32256 * 4}KB" in out  # the machine's total: /proc/meminfo
        assert fakesysfs("umount", str(root / "sys")).returncode == 0
        deadline = time.monotonic() + 5
        while _mounted_here(root / "proc") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _mounted_here(root / "proc")  # it ends with the /sys mount
    finally:
        for sub in ("sys", "proc"):
            if _mounted_here(root / sub):
                unmount(root / sub, lazy=True)
        shutil.rmtree(root, ignore_errors=True)


def test_mount_proc_refuses_the_hosts_proc(tmp_path: Path) -> None:
    from conftest import fakesysfs

    (tmp_path / "sys").mkdir()
    for where in ("/proc", "/proc/sys/vm"):
        done = fakesysfs("mount", str(tmp_path / "sys"), "--proc", where)
        assert done.returncode == 1
        assert done.stderr.strip() == (f"fakesysfs: error: refusing to mount over the host's /proc at {where}: "
                                       "use DIR/proc beside DIR/sys for tools that take a root directory")
    assert not _mounted_here(tmp_path / "sys")


def test_the_user_namespace_path_binds_the_same_files() -> None:
    """--userns (what runs without root): the daemon in a user namespace serves /proc too."""
    done = fakesysfs_run("--userns", "--", "sh", "-c",
                         "grep MemTotal /proc/meminfo; head -1 /proc/iomem; cat /proc/sys/vm/min_free_kbytes")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["MemTotal:        8388216 kB", "00001000-0009efff : System RAM", "67584"]


@pytest.mark.skipif(shutil.which("dmesg") is None, reason="dmesg is not installed")
def test_dmesg_shows_the_simulated_kernels_log_with_levels(tmp_path: Path) -> None:
    topology = tmp_path / "force.toml"
    topology.write_text('[kernel]\nmemmap_on_memory = "force"\nstruct_page_size = 72\npossible_nodes = "0-1"\n'
                        '[[node]]\nid = 0\ncpus = "0"\nmemory = ["0x100000000-0x1ffffffff"]\n'
                        '[[hmem]]\nstart = 0x400000000\nsize = "1G"\ntarget_node = 1\n')
    script = r"""
dmesg -r
echo online_movable > /sys/devices/system/memory/memory128/state
echo dax0.0 > /sys/bus/dax/drivers/kmem/unbind
echo ---
dmesg --level=err
"""
    done = fakesysfs_run("-c", str(topology), "--", "sh", "-c", script)
    assert done.returncode == 0, done.stderr
    before, after = done.stdout.split("---\n")
    # set_memmap_mode()'s pr_info at boot: 576 memmap pages rounded up to 1024.
    assert [line.split("] ", 1)[1] for line in before.splitlines()] == [
        "Memory hotplug will waste 448 pages in each memory block"]
    assert before.startswith("<6>[")
    assert [line.split("] ", 1)[1] for line in after.splitlines()] == [
        "kmem dax0.0: mapping0: 0x400000000-0x43fffffff cannot be hotremoved until the next reboot"]


_FOLLOW = r"""
dmesg -w > "$OUT" 2>&1 & F=$!
sleep 0.5
kill -0 $F && echo following
daxctl online-memory dax0.0 >/dev/null 2>&1
echo 1 > /sys/kernel/debug/fakesysfs/blocks/memory129/pinned
daxctl offline-memory dax0.0 >/dev/null 2>&1
for i in $(seq 100); do grep -q isolate "$OUT" && break; sleep 0.1; done
kill -0 $F && echo still-following
kill $F; wait $F; echo "follow ended $?"
PY -c '
import errno, os
fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
n = 0
while True:
    try:
        os.read(fd, 8192)
    except OSError as exc:
        print("records", n, "then", errno.errorcode[exc.errno])
        break
    n += 1
'
dmesg -r | tail -1
"""


@pytest.mark.skipif(shutil.which("dmesg") is None, reason="dmesg is not installed")
@pytest.mark.parametrize("userns", [False, True], ids=["root", "userns"])
def test_dmesg_follow_waits_for_new_records_and_nonblocking_readers_get_eagain(tmp_path: Path, userns: bool) -> None:
    """devkmsg_read(): a blocking reader at the end waits for printk (``dmesg -w`` prints the
    message a daxctl action logs, then ends on SIGTERM), an O_NONBLOCK one gets EAGAIN;
    under --userns too."""
    topology = tmp_path / "force.toml"
    topology.write_text('[kernel]\nmemmap_on_memory = "force"\nstruct_page_size = 72\npossible_nodes = "0-1"\n'
                        '[[node]]\nid = 0\ncpus = "0"\nmemory = ["0x100000000-0x1ffffffff"]\n'
                        '[[hmem]]\nstart = 0x400000000\nsize = "1G"\ntarget_node = 1\n')
    out = tmp_path / "follow.out"
    script = f"OUT={out}\n" + _FOLLOW.replace("PY", sys.executable)
    done = fakesysfs_run(*(["--userns"] if userns else []), "-c", str(topology), "--", "bash", "-c", script)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # nothing of libfuse's reaches COMMAND's stderr
    lines = done.stdout.splitlines()
    assert lines[:3] == ["following", "still-following", "follow ended 143"]  # SIGTERM ended it, not EOF
    assert lines[3] == "records 2 then EAGAIN"
    assert lines[4].startswith("<7>[") and lines[4].endswith(
        "] memory offlining [mem 0x408000000-0x40fffffff] failed due to failure to isolate range")
    followed = [line.split("] ", 1)[1] for line in out.read_text().splitlines()]
    assert followed == ["Memory hotplug will waste 448 pages in each memory block",
                        "memory offlining [mem 0x408000000-0x40fffffff] failed due to failure to isolate range"]


_MODPROBE = r"""
ls /sys/module
daxctl reconfigure-device -m system-ram dax0.0 >/dev/null 2>&1; echo "daxctl $?"
cat /sys/module/kmem/initstate
daxctl list -d dax0.0 | grep -o '"mode":"[a-z-]*"'
if command -v modprobe >/dev/null; then
    modprobe -r kmem && echo removed
    modprobe kmem && echo loaded
else
    echo removed; echo loaded
fi
cat /sys/module/kmem/initstate
"""


def test_a_module_the_topology_did_not_load_is_loaded_by_libkmod_through_modprobe_d(tmp_path: Path) -> None:
    """kmem not loaded at boot: daxctl's libkmod finds the ``install kmem`` command that
    ``fakesysfs run`` puts in /run/modprobe.d and runs it instead of init_module(), which
    loads the simulated kmem (kernel/debug/fakesysfs/modules/load); kmod's modprobe -r and
    modprobe go the same way where kmod is installed."""
    topology = tmp_path / "nokmem.toml"
    topology.write_text('[kernel]\npossible_nodes = "0-1"\n[dax]\nkmem = false\n'
                        '[[node]]\nid = 0\ncpus = "0-1"\nmemory = ["0x0-0x1ffffffff"]\n'
                        '[[hmem]]\nstart = 0x400000000\nsize = "1G"\ntarget_node = 1\n')
    trace = tmp_path / "trace.jsonl"
    done = fakesysfs_run("-c", str(topology), "--trace", str(trace), "--", "bash", "-c", _MODPROBE)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "kmem" not in lines[:lines.index("daxctl 0")]  # no /sys/module/kmem before
    assert lines[lines.index("daxctl 0") + 1:] == ["live", '"mode":"system-ram"', "removed", "loaded", "live"]
    loads = [json.loads(line) for line in trace.read_text().splitlines() if "/modules/" in line]
    assert [(t["path"], t["data"], t["errno"]) for t in loads][0] == (
        "/kernel/debug/fakesysfs/modules/load", "kmem\n", 0)


@pytest.mark.parametrize(("sys_at", "proc_at"), [("d/sys", "d"), ("d", "d/proc"), ("d", "d"), ("d", "l")],
                         ids=["proc-above", "proc-inside", "same", "same-by-link"])
def test_mount_proc_refuses_a_nested_or_equal_mountpoint(tmp_path: Path, sys_at: str, proc_at: str) -> None:
    """``mount DIR/sys --proc DIR`` put the /proc files over the /sys mount: the two
    mountpoints must be apart, refused in one line before anything is mounted."""
    from conftest import fakesysfs

    (tmp_path / "d/sys").mkdir(parents=True)
    (tmp_path / "d/proc").mkdir()
    (tmp_path / "l").symlink_to("d")
    done = fakesysfs("mount", str(tmp_path / sys_at), "--proc", str(tmp_path / proc_at))
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "--proc" in done.stderr and ("inside" in done.stderr or "mountpoint itself" in done.stderr), done.stderr
    for sub in ("d", "d/sys", "d/proc"):
        assert not _mounted_here(tmp_path / sub)
