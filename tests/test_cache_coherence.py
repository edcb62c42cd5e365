"""The mount caches lookups, attributes and link targets, and is never stale (issue 9).

With libfuse 3 the adapter lets the kernel keep entries for an hour and invalidates, before a
change returns, every path the change removed or retargeted (fuse_adapter.py, sysfs/changes.py).
These tests prove the result is indistinguishable from no caching: after every change, made
through the mount or in-process, each path a client has ever seen answers through the mount
exactly what the tree answers (existence, type, mode, link target, listing, content).
"""

from __future__ import annotations

import os
import random
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from fakesysfs.engine import Kernel
from fakesysfs.errors import KernelError
from fakesysfs.sysfs import build_tree
from fakesysfs.sysfs.tree import Tree
from fakesysfs.topology import load_topology

pytestmark = pytest.mark.fuse

TOPOLOGY = """
[kernel]
memmap_on_memory = "Y"
max_physmem_bits = 46
possible_nodes = "0-3"
probe = true
[[node]]
id = 0
cpus = "0-1"
memory = ["0x100000-0x3fffffff", "0x100000000-0x13fffffff"]
[[cxl_region]]
start = 0x1050000000
size = "1G"
target_node = 1
[[hmem]]
start = 0x2000000000
size = "512M"
target_node = 2
[[pmem]]
namespace = "namespace2.0"
start = 0x2400000000
size = "1G"
target_node = 3
"""

MEM = "/devices/system/memory"
KMEM = "/bus/dax/drivers/kmem"
DEVICE_DAX = "/bus/dax/drivers/device_dax"
CXL_REGION = "/devices/platform/ACPI0017:00/root0/decoder0.0/region0/dax_region0"
DAX00 = f"{CXL_REGION}/dax0.0"
PROBE_ADDR = 0x3000000000  # a free block-aligned address for memory/probe

View = tuple


@pytest.fixture
def box(fuse_mount: Callable[..., Path]) -> Box:
    from fakesysfs import _fuse

    if not _fuse.CAN_INVALIDATE:
        pytest.skip("this libfuse cannot invalidate paths: the mount does not cache (zero timeouts)")
    kernel = Kernel(load_topology(text=TOPOLOGY))
    tree = build_tree(kernel)
    return Box(kernel, tree, fuse_mount(tree))


class Box:
    def __init__(self, kernel: Kernel, tree: Tree, mnt: Path) -> None:
        self.k, self.t, self.mnt = kernel, tree, str(mnt)

    # -- the two views of one path ----------------------------------------------------------
    def tree_view(self, path: str) -> View:
        t = self.t
        try:
            st = t.getattr(path or "/")
        except KernelError:
            return ("missing",)
        if stat.S_ISDIR(st.mode):
            return ("dir", stat.S_IMODE(st.mode), tuple(sorted(t.readdir(path or "/"))))
        if stat.S_ISLNK(st.mode):
            target = t.readlink(path)
            return ("link", len(target), target)
        try:
            fh = t.open(path, os.O_RDONLY)
            data = b""
            while chunk := t.read(fh, 65536, len(data)):
                data += chunk
            content: object = data
        except KernelError as exc:
            content = exc.errno
        return ("file", stat.S_IMODE(st.mode), st.size, content)

    def mount_view(self, path: str) -> View:
        full = self.mnt + path
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            return ("missing",)
        if stat.S_ISDIR(st.st_mode):
            return ("dir", stat.S_IMODE(st.st_mode), tuple(sorted(os.listdir(full))))
        if stat.S_ISLNK(st.st_mode):
            return ("link", st.st_size, os.readlink(full))
        try:
            fd = os.open(full, os.O_RDONLY)
        except OSError as exc:
            return ("file", stat.S_IMODE(st.st_mode), st.st_size, exc.errno)
        try:
            data = b""
            while chunk := os.read(fd, 65536):
                data += chunk
            content: object = data
        except OSError as exc:
            content = exc.errno
        finally:
            os.close(fd)
        return ("file", stat.S_IMODE(st.st_mode), st.st_size, content)

    def tree_paths(self) -> list[str]:
        """Every path of the tree now (links are not followed)."""
        found: list[str] = []

        def walk(path: str) -> None:
            found.append(path)
            if stat.S_ISDIR(self.t.getattr(path or "/").mode):
                for name in self.t.readdir(path or "/"):
                    walk(f"{path}/{name}")

        walk("")
        return found

    def assert_coherent(self, seen: set[str], what: str) -> None:
        """Every path seen so far, then every path of the tree: mount == tree. The mount is
        probed first, so a stale cache entry is caught before anything refreshes it."""
        stale = []  # (nothing changes meanwhile: the tests make changes only between calls)
        for path in [*sorted(seen), *(p for p in self.tree_paths() if p not in seen)]:
            mount, tree = self.mount_view(path), self.tree_view(path)
            if mount != tree:
                stale.append(f"{path}: mount {mount[:3]!r} tree {tree[:3]!r}")
            seen.add(path)
        assert not stale, f"after {what}: {len(stale)} paths differ:\n" + "\n".join(stale[:20])

    def store(self, path: str, text: str) -> int:
        """echo TEXT > PATH through the mount; 0 or the errno the writer saw."""
        try:
            fd = os.open(self.mnt + path, os.O_WRONLY | os.O_TRUNC)
        except OSError as exc:
            return exc.errno or -1
        try:
            os.write(fd, text.encode() + b"\n")
            return 0
        except OSError as exc:
            return exc.errno or -1
        finally:
            os.close(fd)


# -- the three cases the issue names ---------------------------------------------------------------
def test_a_removed_driver_link_is_gone_right_after_unbind(box: Box) -> None:
    driver = box.mnt + DAX00 + "/driver"
    assert os.readlink(driver).endswith("/bus/dax/drivers/kmem")
    assert os.path.lexists(driver) and os.path.exists(box.mnt + f"{KMEM}/dax0.0")
    assert box.store(f"{KMEM}/unbind", "dax0.0") == 0
    assert not os.path.lexists(driver)
    with pytest.raises(FileNotFoundError):
        os.readlink(driver)
    assert not os.path.lexists(box.mnt + f"{KMEM}/dax0.0")
    assert "driver" not in os.listdir(box.mnt + DAX00)
    # bound again, to the other driver: the link has the new target (and length)
    assert box.store(f"{DEVICE_DAX}/new_id", "dax0.0") == 0
    assert os.readlink(driver).endswith("/bus/dax/drivers/device_dax")
    assert os.lstat(driver).st_size == len(os.readlink(driver))


def test_a_new_memory_block_is_there_right_after_add(box: Box) -> None:
    bid = PROBE_ADDR // box.k.block_size
    block = box.mnt + f"{MEM}/memory{bid}"
    assert not os.path.exists(block)  # looked up (and missed) before the add
    assert box.store(f"{MEM}/probe", hex(PROBE_ADDR)) == 0
    assert os.path.isdir(block)
    assert Path(block, "state").read_text() == "offline\n"
    assert f"memory{bid}" in os.listdir(box.mnt + MEM)
    box.k.remove_memory(PROBE_ADDR, box.k.block_size)  # in-process, from this thread
    assert not os.path.exists(block)
    assert not os.path.lexists(box.mnt + f"/bus/memory/devices/memory{bid}")


def test_state_right_after_a_write_to_online(box: Box) -> None:
    bid = min(b.id for b in box.k.blocks.values() if b.state.value == "offline")
    state = Path(box.mnt + f"{MEM}/memory{bid}/state")
    online = box.mnt + f"{MEM}/memory{bid}/online"
    for _ in range(3):
        assert state.read_text() == "offline\n"
        assert box.store(f"{MEM}/memory{bid}/online", "1") == 0
        assert state.read_text() == "online\n"
        assert Path(online).read_text() == "1\n"
        assert box.store(f"{MEM}/memory{bid}/online", "0") == 0


# -- everything a client has seen, after every kind of change ----------------------------------------
def test_every_path_ever_seen_matches_the_tree_after_each_change(box: Box) -> None:
    rng = random.Random(9)
    k = box.k
    seen: set[str] = set()
    box.assert_coherent(seen, "mounting")
    block_size = k.block_size

    def some_block() -> int:
        return rng.choice(sorted(k.blocks))

    def dax_dir(name: str) -> str:
        dev = k.dax_devices.get(name)
        return dev.devpath if dev is not None else f"{CXL_REGION}/{name}"

    ops: list[tuple[str, Callable[[], object]]] = [
        ("state", lambda: box.store(f"{MEM}/memory{some_block()}/state",
                                    rng.choice(["online_movable", "online", "online_kernel", "offline"]))),
        ("online", lambda: box.store(f"{MEM}/memory{some_block()}/online", rng.choice(["0", "1"]))),
        ("kmem unbind", lambda: box.store(f"{KMEM}/unbind", rng.choice(["dax0.0", "dax1.0"]))),
        ("kmem new_id", lambda: box.store(f"{KMEM}/new_id", rng.choice(["dax0.0", "dax1.0", "dax0.1"]))),
        ("kmem bind", lambda: box.store(f"{KMEM}/bind", rng.choice(["dax0.0", "dax0.1"]))),
        ("devdax new_id", lambda: box.store(f"{DEVICE_DAX}/new_id", rng.choice(["dax0.0", "dax0.1", "dax2.0"]))),
        ("devdax unbind", lambda: box.store(f"{DEVICE_DAX}/unbind", rng.choice(["dax0.0", "dax0.1", "dax2.0"]))),
        ("size", lambda: box.store(dax_dir(rng.choice(["dax0.0", "dax0.1"])) + "/size",
                                   str(rng.choice([0, 256 << 20, 512 << 20])))),
        ("create", lambda: box.store(f"{CXL_REGION}/dax_region/create", "1")),
        ("delete", lambda: box.store(f"{CXL_REGION}/dax_region/delete", "dax0.1")),
        ("probe", lambda: box.store(f"{MEM}/probe", hex(PROBE_ADDR + rng.randrange(4) * block_size))),
        ("remove_memory (in-process)", lambda: _call(k.remove_memory, PROBE_ADDR + rng.randrange(4) * block_size,
                                                     block_size)),
        ("rmmod/modprobe kmem (in-process)", lambda: _call(
            k.dax_driver_unregister if k.dax_drivers["kmem"].loaded else k.dax_driver_register, "kmem")),
    ]
    for step in range(40):
        name, op = rng.choice(ops)
        result = op()
        box.assert_coherent(seen, f"step {step}: {name} ({result})")


#: Mounts tmpfs on two fake directories in a private mount namespace, says "ready", waits
#: for a line, then lists both (what sysfs users stack: cgroup2 on /sys/fs/cgroup, configfs).
_STACKER = """
set -e
for dir in "$1/fs" "$1/devices/system/node/node0"; do
    mount -t tmpfs fakesysfs-test "$dir"
    touch "$dir/kept"
done
echo ready
read go
for dir in "$1/fs" "$1/devices/system/node/node0"; do
    echo "$(ls "$dir")"
done
"""


def test_mounts_on_fake_directories_survive_every_change(box: Box) -> None:
    """sysfs keeps a mount on one of its directories until that directory is removed; so
    must the fake, whatever the changes in between invalidate (each kind of change once,
    through the mount and in-process)."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare(1) for a private mount namespace")
    k = box.k
    stacker = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", _STACKER, "sh",
                                box.mnt], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        assert stacker.stdout is not None and stacker.stdout.readline() == "ready\n", stacker.stderr
        offline = min(b.id for b in k.blocks.values() if b.state.value == "offline")
        changes = [
            (f"{MEM}/memory{offline}/state", "online_movable"),
            (f"{MEM}/memory{offline}/online", "0"),
            (f"{KMEM}/unbind", "dax0.0"),  # its blocks go
            (f"{DEVICE_DAX}/new_id", "dax0.0"),  # bound to device_dax
            (f"{DEVICE_DAX}/unbind", "dax0.0"),
            (f"{DAX00}/size", str(512 << 20)),  # its mappings change
            (f"{CXL_REGION}/dax_region/create", "1"),  # a new device
            (f"{CXL_REGION}/dax_region/delete", "dax0.1"),  # gone again
            (f"{KMEM}/new_id", "dax0.0"),  # back to kmem: blocks come again
            (f"{MEM}/probe", hex(PROBE_ADDR)),  # hot-add
        ]
        for path, text in changes:
            assert box.store(path, text) == 0, (path, text)
            os.listdir(box.mnt + "/devices/system/node/node0")  # walks are what drop detached dentries
        k.remove_memory(PROBE_ADDR, k.block_size)  # hot-remove, in-process
        k.dax_driver_unregister("kmem")  # rmmod, in-process
        out, err = stacker.communicate("go\n", timeout=30)
    finally:
        if stacker.poll() is None:
            stacker.kill()
            stacker.wait()
    assert stacker.returncode == 0, err
    assert out.splitlines() == ["kept", "kept"], out


def _call(fn: Callable[..., object], *args: object) -> int:
    try:
        fn(*args)
        return 0
    except KernelError as exc:
        return exc.errno


def test_a_link_read_while_a_store_retargets_it_never_stalls_the_daemon(box: Box) -> None:
    """A reader filling a link's cached target holds its page locked while its READLINK waits
    for the daemon; a store that retargets the link must not wait for that lock in the
    daemon's only thread (it did: the mount hung). Readers in other processes, so that a
    regression can be broken by killing them; then every link answers what the tree says."""
    links = [box.mnt + DAX00 + "/driver", box.mnt + f"{KMEM}/dax0.0"]
    reader = (f"import os\nwhile True:\n    for p in {links!r}:\n"
              "        try: os.readlink(p)\n        except OSError: pass\n")
    writer = (f"import os\nfor i in range(300):\n    for attr in ('unbind', 'bind'):\n"
              f"        fd = os.open({box.mnt + KMEM!r} + '/' + attr, os.O_WRONLY)\n"
              f"        os.write(fd, b'dax0.0')\n        os.close(fd)\nprint('done')\n")
    readers = [subprocess.Popen([sys.executable, "-c", reader]) for _ in range(4)]
    try:
        done = subprocess.run([sys.executable, "-c", writer], capture_output=True, text=True, timeout=120,
                              check=False)
    except subprocess.TimeoutExpired:
        done = None
    finally:
        for proc in readers:  # a stalled daemon waits for one of them: killing it frees it
            proc.kill()
            proc.wait()
    assert done is not None, "the daemon stalled: a store waited for a link page a reader held"
    assert done.returncode == 0 and done.stdout == "done\n", done.stderr
    for path in links:
        assert os.readlink(path) == box.t.readlink(path.removeprefix(box.mnt))


def test_readers_racing_with_changes_never_keep_an_old_entry(box: Box) -> None:
    """Readers look up the very paths that are being removed while the removals run; once a
    removal has returned, no later lookup may find the removed entry."""
    k = box.k
    blocks = sorted(b.id for b in k.blocks.values() if b.altmap)  # kmem-added, removable
    watched = [box.mnt + p for bid in blocks
               for p in (f"{MEM}/memory{bid}", f"/bus/memory/devices/memory{bid}", f"{MEM}/memory{bid}/state")]
    watched += [box.mnt + DAX00 + "/driver", box.mnt + f"{KMEM}/dax0.0", box.mnt + f"{KMEM}/dax1.0"]
    stop = threading.Event()

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            path = rng.choice(watched)
            try:
                os.lstat(path)
                if path.endswith("/state"):
                    Path(path).read_text()
            except OSError:
                pass

    threads = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(3)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(int(os.environ.get("FAKESYSFS_RACE_ROUNDS", "25"))):
            assert box.store(f"{KMEM}/unbind", "dax0.0") == 0
            assert box.store(f"{KMEM}/unbind", "dax1.0") == 0
            present = [p for p in watched if os.path.lexists(p)]
            assert not present, f"still visible after the unbind returned: {present[:5]}"
            assert box.store(f"{KMEM}/bind", "dax0.0") == 0
            assert box.store(f"{KMEM}/bind", "dax1.0") == 0
            missing = [p for p in watched if not os.path.lexists(p)]
            assert not missing, f"missing after the bind returned: {missing[:5]}"
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)


#: A reader: SCHED_IDLE on CPU argv[2], lstat the paths named in the file argv[1] (one per
#: line, rewritten per round), round robin, until killed.
_READER = """
import os, sys
os.sched_setaffinity(0, {int(sys.argv[2])})
os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
fd = os.open(sys.argv[1], os.O_RDONLY)
while True:
    for path in os.pread(fd, 4096, 0).decode().split():
        try:
            os.lstat(path)
        except OSError:
            pass
"""

#: Keeps the shared CPU busy for 30 ms per byte it reads (normal priority: the SCHED_IDLE
#: readers wait meanwhile), so that an answered lookup is still not installed when the
#: removal's invalidation, sent from the daemon's CPU, looks for it.
_HOG = """
import os, sys, time
os.sched_setaffinity(0, {int(sys.argv[1])})
while os.read(0, 1):
    end = time.monotonic() + 0.03
    while time.monotonic() < end:
        pass
"""


def test_a_lookup_answered_just_before_a_removal_is_not_kept(box: Box, tmp_path: Path) -> None:
    """The lookup in flight: the daemon has answered it, but its requester has not yet put
    the inode into the kernel's cache when the removal invalidates the path (which then
    finds nothing). Forced here: the readers are SCHED_IDLE on the writer's CPU, the daemon
    and its invalidating thread run on another, so an answered reader waits while the
    writer, or a CPU hog started with the removal, runs. Each round hot-adds
    a block never looked up before, waits until the daemon answers a reader's lookup of it,
    and removes it at once (in-process, as ``ctl`` does): once the removal has returned, the
    block must be gone for everyone."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs: the writer and the readers on one, the daemon on another")
    k, t = box.k, box.t
    assert t.changes is not None
    (adapter,) = [getattr(listener, "__self__", None) for listener in t.changes._listeners]
    daemon = next(thread for thread in threading.enumerate() if thread.name == f"fuse {box.mnt}")
    # The invalidations are sent by a thread of the adapter's: with the daemon, off the shared CPU.
    (invalidator,) = [thread for thread in threading.enumerate() if thread.name == "fakesysfs-invalidate"]
    assert daemon.native_id is not None and invalidator.native_id is not None
    shared_cpu, daemon_cpus = {cpus[0]}, set(cpus[1:])
    targets = tmp_path / "targets"
    targets.write_text("")
    answered: dict[str, threading.Event] = {}
    tree_getattr = t.getattr

    def getattr_watched(path: str) -> object:
        result = tree_getattr(path)
        event = answered.get(path)
        if event is not None:
            event.set()  # the daemon answers this lookup right after
        return result

    own_affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, shared_cpu)
    os.sched_setaffinity(daemon.native_id, daemon_cpus)
    os.sched_setaffinity(invalidator.native_id, daemon_cpus)
    readers = [subprocess.Popen([sys.executable, "-c", _READER, str(targets), str(cpus[0])]) for _ in range(3)]
    hog = subprocess.Popen([sys.executable, "-c", _HOG, str(cpus[0])], stdin=subprocess.PIPE)
    readers.append(hog)
    t.getattr = getattr_watched  # type: ignore[method-assign]
    try:
        stale = []
        rounds = int(os.environ.get("FAKESYSFS_RACE_ROUNDS", "25"))
        for round_ in range(rounds):
            addr = PROBE_ADDR + round_ * k.block_size
            bid = addr // k.block_size
            paths = [f"{MEM}/memory{bid}", f"/bus/memory/devices/memory{bid}"]
            answered.clear()
            answered.update((p, threading.Event()) for p in paths)
            targets.write_text("".join(f"{box.mnt}{p}\n" for p in paths))
            assert box.store(f"{MEM}/probe", hex(addr)) == 0
            assert answered[paths[0]].wait(10), f"round {round_}: no reader looked up {paths[0]}"
            assert hog.stdin is not None
            hog.stdin.write(b"h")
            hog.stdin.flush()
            k.remove_memory(addr, k.block_size)
            stale += [p for p in paths if os.path.lexists(box.mnt + p)]
        assert not stale, f"still visible after the removal returned: {stale[:5]}"
        # The rounds raced for real: removals found answered lookups not yet in the kernel.
        assert adapter.lookups_awaited > 0
    finally:
        t.getattr = tree_getattr  # type: ignore[method-assign]
        for process in readers:
            process.kill()
            process.wait()
        if hog.stdin is not None:
            hog.stdin.close()
        os.sched_setaffinity(0, own_affinity)
        os.sched_setaffinity(daemon.native_id, own_affinity)
        os.sched_setaffinity(invalidator.native_id, own_affinity)


def test_without_invalidation_nothing_is_cached() -> None:
    """fusepy, libfuse 2 or a tree without a change feed: zero timeouts (always correct)."""
    from fakesysfs.fuse_adapter import TreeOperations, fuse_options

    assert fuse_options(libfuse3=False)["entry_timeout"] == 0
    assert fuse_options(libfuse3=True, cache=True)["entry_timeout"] > 0
    assert fuse_options(libfuse3=True, cache=True)["negative_timeout"] == 0
    plain = Tree(build_tree(Kernel(load_topology(text=TOPOLOGY))).root)
    assert not TreeOperations(plain, cache=True).cache
