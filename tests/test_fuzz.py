"""Fuzzing every writable file of the default topology (issue 8, "bad input").

Random bytes go to every kind of writable file: empty, huge, NUL-laden, non-UTF-8,
near-valid words with odd endings, numbers out of range. Two layers:

- in process, against the ``Tree`` (thousands of stores a second): a random sequence of
  stores on a freshly booted default topology, then the engine invariants
  (fakesysfs.testing.invariants) and a read of every file;
- through a real FUSE mount: the same payloads with the system calls only a mount has
  (``O_APPEND``, ``O_TRUNC``, ``O_RDWR``, ``pwrite`` at offsets, a value written in
  pieces, ``pread`` at offsets), the mount alive afterwards and no ``EIO`` from an
  exception inside the daemon.

Every rejection must be an errno the kernel gives for that file (tests/stress.py, from
docs/abi.md, "Errno order at a glance"); every acceptance consumes the whole write (at most
4096 bytes).
``FAKESYSFS_FUZZ=long`` runs many more examples.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stress import (
    LONG,
    default_kernel,
    files_by_kind,
    read_errnos,
    report,
    walk,
    writable_files,
    write_errnos,
)

from fakesysfs.errors import KernelError
from fakesysfs.sysfs.tree import PAGE_SIZE, Tree
from fakesysfs.testing.invariants import check_all

MEM = "/devices/system/memory"
INJECT = "/kernel/debug/notifier-error-inject/memory/actions"
#: Paths with a component that comes and goes (a memory block, a dax device, a node).
DYNAMIC = re.compile(r"/(memory|node|memory_tier|mapping|dax|dax_region)\d|/dax\d+\.\d+")

_k0, _tree0 = default_kernel(harness=True)
#: Every writable file of what ``fakesysfs mount`` serves, but the timing knob (a delay of up
#: to 10 s per block added would only make the fuzzer slow).
PATHS = [p for p in writable_files(_tree0) if not p.endswith("/add_block_delay_us")]
KINDS = files_by_kind(PATHS)
#: path -> (readable, writable) as open() judges it (R-SYS-01).
ACCESS = {path: (bool(a.mode & 0o444 and a.show), bool(a.mode & 0o222 and a.store)) for path, a in walk(_tree0)}
del _k0, _tree0


# -- payloads -------------------------------------------------------------------------------------
WORDS = [
    b"online", b"offline", b"online_movable", b"online_kernel", b"going-offline", b"1", b"0", b"y", b"N",
    b"on", b"off", b"enable", b"disable", b"t", b"dax0.0", b"dax1.0", b"dax2.0", b"dax0.1", b"dax1.1",
    b"dax1.2", b"add", b"change", b"remove", b"bind", b"online 01234567-89ab-cdef-0123-456789abcdef A=b",
    b"auto", b"contig-zones", b"auto-movable", b"-4", b"-12", b"-16", b"-600", b"-4095", b"0x8000000", b"4096",
    b"2097152", b"1073741824", b"0x40000000", b"536870912", b"0x1050000000-0x105fffffff", b"0-1fffff",
    b"0x2000000000", b"301", b"18446744073709551616", b"-1", b"+1", b"0x", b"010", b"1 ", b" 1",
    # the simulator's controls (kernel/debug/fakesysfs)
    b"size=1G node=1", b"size=16G node=2 driver=device_dax", b"size=2G node=9", b"size=1G node=1 start=0x0",
    b"region3", b"hmem.3", b"hmem.1", b"dax0.0 -12", b"dax1.0 ENOMEM", b"dax0.0 0", b"3", b"1000",
]
ENDINGS = [b"", b"\n", b"\0", b"\n\0", b" ", b"\n\n", b"\r\n", b"\0garbage", b"\t"]

near_valid = st.builds(lambda w, e: w + e, st.sampled_from(WORDS), st.sampled_from(ENDINGS))
nul_laden = st.one_of(
    st.builds(lambda w, g: w + b"\0" + g, st.sampled_from(WORDS), st.binary(max_size=24)),
    st.builds(lambda w: b"\0" + w, st.sampled_from(WORDS)),
    st.integers(1, 64).map(lambda n: b"\0" * n),
)
non_utf8 = st.builds(lambda w, b: w + bytes(0x80 | x for x in b), st.sampled_from(WORDS),
                     st.binary(min_size=1, max_size=8))
huge = st.one_of(
    st.builds(lambda w, n: (w or b"1") * n, st.sampled_from(WORDS), st.integers(100, 1200)),
    st.builds(lambda n, tail: b"0" * n + tail, st.integers(4000, 4200), st.sampled_from([b"", b"1", b"\n", b"x"])),
)
numbers = st.one_of(
    st.integers(-(2**70), 2**70).map(lambda i: str(i).encode()),
    st.integers(0, 2**70).map(lambda i: hex(i).encode()),
    st.integers(0, 2**64).map(lambda i: f"{i:#x}-{i + 2**27 - 1:#x}".encode()),
)
PAYLOAD = st.one_of(
    st.just(b""),
    st.binary(max_size=48),
    near_valid,
    near_valid,
    nul_laden,
    non_utf8,
    huge,
    numbers,
)


def _pick(kind: str, index: int) -> str:
    paths = KINDS[kind]
    return paths[index % len(paths)]


STEP = st.tuples(st.sampled_from(sorted(KINDS)), st.integers(0, 1 << 16), PAYLOAD)


# -- in process ---------------------------------------------------------------------------------
def store(k, tree: Tree, path: str, data: bytes) -> int | None:
    """One ``open(O_WRONLY)`` + ``write`` as the tree sees it; asserts the outcome is the
    kernel's. Returns the count written or None if it failed."""
    try:
        fh = tree.open(path, os.O_WRONLY)
    except KernelError as exc:
        if exc.errno == errno.ENOENT and DYNAMIC.search(path):
            return None  # the device went away earlier in the sequence
        assert exc.errno in write_errnos(path), (path, data, exc)
        return None
    allowed = write_errnos(path, k)
    try:
        n = tree.write(fh, data)
    except KernelError as exc:
        assert exc.errno in allowed, f"{path} <- {data[:80]!r}: {errno.errorcode.get(exc.errno, exc.errno)}"
        return None
    if path.endswith("/mapping") and n == 0:
        return n  # mapping_store's quirk: 0 bytes consumed when the region is disabled
    assert n == min(len(data), PAGE_SIZE), (path, data[:80], n)
    return n


def read_everything(_k, tree: Tree, blocks: set[int]) -> int:
    """Read every readable file (memory blocks: only ``blocks``); returns how many."""
    keep = {f"memory{b}" for b in blocks}

    def wanted(d: str) -> bool:
        m = re.fullmatch(rf"({MEM}|/kernel/debug/fakesysfs/blocks)/(memory\d+)", d)
        return m is None or m.group(2) in keep

    done = 0
    for path, attr in list(walk(tree, "/", wanted)):
        if not attr.mode & 0o444 or attr.show is None:
            continue
        try:
            fh = tree.open(path, os.O_RDONLY)
            whole = tree.read(fh, PAGE_SIZE, 0)
            assert tree.read(fh, 5, 3) == whole[3:8], path  # R-SYS-03: the same snapshot
        except KernelError as exc:
            assert exc.errno in read_errnos(path), f"read {path}: {errno.errorcode.get(exc.errno)}"
            continue
        assert len(whole) <= PAGE_SIZE or attr.max_size is None, path
        done += 1
    return done


SETTINGS = settings(
    max_examples=4000 if LONG else 250,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_the_errno_table_covers_every_writable_file() -> None:
    assert len(KINDS) > 100  # memory, node, cpu, dax, producers, modules, debugfs
    for path in PATHS:
        write_errnos(path)  # raises for a kind the table does not know


@SETTINGS
@given(steps=st.lists(STEP, min_size=1, max_size=12))
def test_random_stores_to_every_kind_of_file_fail_only_with_kernel_errnos(steps) -> None:
    k, tree = default_kernel(harness=True)
    touched: set[int] = set()
    for kind, index, data in steps:
        path = _pick(kind, index)
        store(k, tree, path, data)
        if m := re.search(r"/memory(\d+)/", path):
            touched.add(int(m.group(1)))
    check_all(k, tree)
    reads = read_everything(k, tree, touched | {min(k.blocks), max(k.blocks)})
    report("fuzz_tree", inputs=len(steps), reads=reads, sequences=1)


@SETTINGS
@given(kind=st.sampled_from(sorted(KINDS)), payloads=st.lists(PAYLOAD, min_size=1, max_size=6))
def test_each_kind_takes_garbage_in_a_row(kind: str, payloads: list[bytes]) -> None:
    """Every kind gets the same file hammered: state left by one garbage write must not
    make the next one crash."""
    k, tree = default_kernel(harness=True)
    for data in payloads:
        store(k, tree, KINDS[kind][0], data)
    check_all(k, tree)
    report("fuzz_kind", inputs=len(payloads))


def test_every_kind_gets_every_class_of_garbage() -> None:
    """Deterministic sweep: each kind x a fixed garbage list, on one fresh kernel per kind."""
    garbage = [b"", b"\n", b"\0", b"\0online", b"\xff\xfe\xfd", b"x" * 5000, b"1" * 4097, b"9" * 40,
               b"-1", b"0x", b" ", b"online\0offline", b"dax0.0\0", b"\x80abc", b"-4096", b"0x1-0x0"]
    inputs = 0
    for paths in KINDS.values():
        k, tree = default_kernel(harness=True)
        for data in garbage:
            store(k, tree, paths[0], data)
            inputs += 1
        check_all(k, tree)
    report("fuzz_sweep", inputs=inputs)


# -- regressions found by the fuzzer ------------------------------------------------------------
def test_an_open_state_file_of_a_removed_block_fails_with_enodev() -> None:
    """Found by the fuzzer: a ``state`` file opened before kmem removed the block onlined a
    block that no longer existed (node1 MemTotal counted it). kernfs answers ENODEV."""
    k, tree = default_kernel(harness=True)
    block = min(b for b, blk in k.blocks.items() if not blk.boot and blk.nid == 1)
    state = tree.open(f"{MEM}/memory{block}/state", os.O_RDWR)
    online = tree.open(f"{MEM}/memory{block}/online", os.O_WRONLY)
    tree.echo("/bus/dax/drivers/kmem/unbind", "dax0.0")
    assert block not in k.blocks
    for fh, data in ((state, b"online_movable\n"), (online, b"1\n")):
        with pytest.raises(KernelError) as exc:
            tree.write(fh, data)
        assert exc.value.errno == errno.ENODEV
    with pytest.raises(KernelError) as exc:
        tree.read(state, PAGE_SIZE, 0)
    assert exc.value.errno == errno.ENODEV
    check_all(k, tree)


def test_files_below_a_deleted_dax_device_fail_with_enodev_power_included() -> None:
    k, tree = default_kernel(harness=True)
    region = "/devices/platform/hmem.1/dax_region"
    tree.echo("/bus/dax/drivers/kmem/unbind", "dax1.0")
    tree.echo("/devices/platform/hmem.1/dax1.0/size", "0")
    tree.echo(f"{region}/create", "1")
    control = tree.open("/devices/platform/hmem.1/dax1.1/power/control", os.O_WRONLY)
    tree.echo(f"{region}/delete", "dax1.1")
    with pytest.raises(KernelError) as exc:
        tree.write(control, b"on\n")
    assert exc.value.errno == errno.ENODEV
    assert "/devices/platform/hmem.1/dax1.1" not in k.power_control
    check_all(k, tree)


def test_debugfs_simple_attributes_parse_at_most_23_bytes_and_priority_is_writable() -> None:
    """simple_attr_write() copies 23 bytes and parses those: what follows is never seen.
    ``priority`` is a 0600 debugfs u32, writable like any other (it was refused at open)."""
    _, tree = default_kernel(harness=True)
    err = f"{INJECT}/MEM_GOING_ONLINE/error"
    value = b"-0x" + b"0" * 19 + b"c"  # 23 bytes: -12
    assert tree.echo(err, value + b"garbage\n", newline=False) == 31
    assert tree.cat(err) == "-12\n"
    assert tree.echo(err, b"0" * 23 + b"x", newline=False) == 24
    assert tree.cat(err) == "0\n"
    with pytest.raises(KernelError) as exc:
        tree.echo(err, b"1" * 30, newline=False)  # 23 digits: out of range
    assert exc.value.errno == errno.ERANGE
    priority = "/kernel/debug/notifier-error-inject/memory/priority"
    assert tree.echo(priority, "7") == 2
    assert tree.cat(priority) == "7\n"
    assert tree.echo(priority, str(2**32 + 5)) == 11
    assert tree.cat(priority) == "5\n"


# -- through a real FUSE mount ------------------------------------------------------------------
class _Errors(logging.Handler):
    """Errors the adapter logs: an exception inside the tree (answered EIO) is a bug."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def adapter_errors() -> Iterator[_Errors]:
    handler = _Errors()
    logger = logging.getLogger("fakesysfs.fuse_adapter")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


_libc = ctypes.CDLL(None, use_errno=True)
_libc.write.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t)
_libc.pwrite.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_long)
_libc.write.restype = _libc.pwrite.restype = ctypes.c_ssize_t


def raw_write(fd: int, data: bytes, offset: int | None = None) -> int:
    """One write(2)/pwrite(2), never retried: Python's os.write retries EINTR (PEP 475), so
    a store failing with EINTR (MEM_GOING_ONLINE/error at -4) would loop forever."""
    n = _libc.write(fd, data, len(data)) if offset is None else _libc.pwrite(fd, data, len(data), offset)
    if n < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return n


def fuse_errno(err: int) -> int:
    """What a store's errno becomes through FUSE (fuse_adapter: 512 and up cannot cross)."""
    return errno.ERANGE if err > 511 else err


class SwapMount:
    """One mount whose engine is replaced by a freshly booted one per example. The mounted
    tree has no change feed, so the kernel caches nothing and a swap is seen at once."""

    def __init__(self, fuse_mount) -> None:
        self.k, tree = default_kernel(harness=True)
        self.mounted = Tree(tree.root, tree.lock)
        self.tree = tree
        self.path = fuse_mount(self.mounted)

    def swap(self) -> None:
        old = self.mounted.lock
        self.k, self.tree = default_kernel(harness=True)
        with old:  # no request of the old engine is running; the new root drops resolved dirs
            self.mounted.lock, self.mounted.root = self.tree.lock, self.tree.root

    def alive(self) -> bool:
        try:
            return os.path.isdir(self.path / "devices/system/memory")
        except OSError:
            return False


HOWS = ["write", "append", "trunc", "rdwr", "pwrite", "pieces", "read"]
OFFSETS = [0, 1, 7, 4095, 4096, 4097, 1 << 20, 1 << 40]
FUSE_OP = st.tuples(st.sampled_from(sorted(KINDS)), st.integers(0, 1 << 16), PAYLOAD, st.sampled_from(HOWS),
                    st.sampled_from(OFFSETS), st.lists(st.integers(0, 64), max_size=3))


def fuse_op(m: SwapMount, op) -> int:
    """One open + I/O + close on the mount; asserts every outcome. Returns the syscalls made."""
    kind, index, data, how, offset, cuts = op
    path = _pick(kind, index)
    full = f"{m.path}{path}"
    readable, writable = ACCESS[path]
    flags = {"read": os.O_RDONLY, "rdwr": os.O_RDWR, "append": os.O_WRONLY | os.O_APPEND,
             "trunc": os.O_WRONLY | os.O_TRUNC}.get(how, os.O_WRONLY)
    acc = flags & os.O_ACCMODE
    try:
        fd = os.open(full, flags)
    except OSError as exc:
        if exc.errno == errno.ENOENT and DYNAMIC.search(path):
            return 1
        denied = (acc != os.O_WRONLY and not readable) or (acc != os.O_RDONLY and not writable)
        assert exc.errno == errno.EACCES and denied, f"open {path} {how}: {exc}"
        return 1
    calls = 1
    try:
        if acc != os.O_WRONLY:
            calls += _reads(fd, path, offset)
        if acc != os.O_RDONLY:
            pieces = [data]
            if how == "pieces":
                points = sorted({min(c, len(data)) for c in cuts})
                pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
            for piece in pieces:
                allowed = {fuse_errno(e) for e in write_errnos(path, m.k)}
                try:
                    n = raw_write(fd, piece, offset if how == "pwrite" else None)
                except OSError as exc:
                    assert exc.errno in allowed, f"{how} {path} <- {piece[:80]!r}: {exc}"
                else:
                    ok = n == min(len(piece), PAGE_SIZE) or (n == 0 and path.endswith("/mapping"))
                    assert ok, f"{how} {path} <- {len(piece)} bytes: wrote {n}"
                calls += 1
        if how == "rdwr":
            calls += _reads(fd, path, offset)
    finally:
        os.close(fd)
    return calls + 1


def _reads(fd: int, path: str, offset: int) -> int:
    """A read from 0, then one at ``offset``: the same snapshot (R-SYS-03)."""
    try:
        whole = os.pread(fd, PAGE_SIZE, 0)
        part = os.pread(fd, 64, offset)
    except OSError as exc:
        assert exc.errno in read_errnos(path), f"read {path}: {exc}"
        return 1
    assert part == whole[offset : offset + 64], (path, offset)
    return 2


FUSE_SETTINGS = settings(
    max_examples=2000 if LONG else 120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)


@pytest.mark.fuse
def test_random_io_through_a_mount_appends_offsets_pieces_and_reads(fuse_mount) -> None:
    m = SwapMount(fuse_mount)
    totals = {"inputs": 0, "syscalls": 0, "sequences": 0}

    @FUSE_SETTINGS
    @given(ops=st.lists(FUSE_OP, min_size=1, max_size=8))
    def run(ops) -> None:
        m.swap()
        with adapter_errors() as errors:
            for op in ops:
                totals["syscalls"] += fuse_op(m, op)
            totals["inputs"] += len(ops)
            totals["sequences"] += 1
            assert m.alive(), "the daemon stopped serving"
            assert not errors.records, [r.getMessage() for r in errors.records]
        check_all(m.k, m.tree)

    run()
    report("fuzz_fuse", **totals)


@pytest.mark.fuse
def test_an_errno_fuse_cannot_carry_is_erange_not_a_hung_writer(fuse_mount) -> None:
    """Found by the fuzzer: with MEM_GOING_ONLINE/error at -600 the daemon answered -600,
    which the FUSE module refuses (errors from -512 down); the request stayed unanswered and
    the writer hung in D state, unkillable, until the mount died."""
    m = SwapMount(fuse_mount)
    block = min(b for b, blk in m.k.blocks.items() if not blk.boot)
    (m.path / INJECT.lstrip("/") / "MEM_GOING_ONLINE/error").write_text("-600\n")
    state = m.path / f"devices/system/memory/memory{block}/state"
    script = (
        "import os, sys\n"
        "fd = os.open(sys.argv[1], os.O_WRONLY)\n"
        "try:\n    os.write(fd, b'online_movable')\nexcept OSError as e:\n    print(e.errno)\n"
    )

    def write_state() -> str:
        proc = subprocess.Popen([sys.executable, "-c", script, str(state)], stdout=subprocess.PIPE, text=True)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()  # a writer stuck in request_wait_answer ignores it; do not wait for it
            pytest.fail("the writer hung: the daemon's answer never reached it")
        return out.strip()

    assert write_state() == str(errno.ERANGE)
    assert state.read_text() == "offline\n"
    (m.path / INJECT.lstrip("/") / "MEM_GOING_ONLINE/error").write_text("-511\n")
    assert write_state() == "511"  # the largest errno FUSE carries, passed on as it is
    check_all(m.k, m.tree)


def test_files_of_a_node_that_went_offline_and_came_back_fail_with_enodev() -> None:
    """Onlining a node again registers a new device: files opened on the old one are dead."""
    k, tree = default_kernel(harness=True)
    uevent = tree.open("/devices/system/node/node2/uevent", os.O_RDWR)
    tree.echo("/bus/dax/drivers/kmem/unbind", "dax1.0")  # node 2 loses its memory: offline
    assert not k.nodes[2].online
    with pytest.raises(KernelError) as exc:
        tree.write(uevent, b"change\n")
    assert exc.value.errno == errno.ENODEV
    tree.echo("/bus/dax/drivers/kmem/bind", "dax1.0")  # back, as a new device
    assert k.nodes[2].online
    with pytest.raises(KernelError) as exc:
        tree.read(uevent, PAGE_SIZE, 0)
    assert exc.value.errno == errno.ENODEV
    fresh = tree.open("/devices/system/node/node2/uevent", os.O_RDWR)
    assert tree.write(fresh, b"change\n") == 7
    check_all(k, tree)


# -- the control socket -------------------------------------------------------------------------
CONTROL_OPS = {
    "notifier_error": ["action", "errno"], "memmap_fail_at_chunk": ["chunk"], "probe_fail": ["device", "errno"],
    "block_usage": ["block", "pinned", "used", "poisoned"], "clear_faults": [],
    "add_cxl_region": ["size", "target_node", "start", "decoder", "adistance", "numa_node", "driver"],
    "add_hmem": ["size", "target_node", "start", "adistance", "numa_node", "driver"], "remove": ["device"],
    "ping": [], "state": [], "trace": ["since"], "kmsg": [], "iomem": [],
    "wait_event": ["match", "after", "timeout"], "wait_store": ["path", "data", "errno", "after", "timeout"],
    "no_such_op": [],
}
MEMBER = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.sampled_from([0, 1, 522, 1024, -12, 12, 2**30, 2**34]),
    st.floats(allow_nan=True), st.text(max_size=16),
    st.sampled_from(["16G", "1G", "0x2000000000", "dax0.0", "dax9.9", "region0", "region3", "hmem.1", "ENOMEM",
                     "MEM_GOING_ONLINE", "online", "kmem", "device_dax", "decoder0.0", "1P", ".*", "("]),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=8), st.integers(), max_size=2),
)


@st.composite
def control_request(draw) -> bytes:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.binary(max_size=64)).replace(b"\n", b" ") + b"\n"  # garbage
    if kind == 1:
        return json.dumps(draw(MEMBER)).encode() + b"\n"  # JSON, not an object
    op = draw(st.sampled_from(sorted(CONTROL_OPS)))
    request: dict = {"op": op}
    for key in draw(st.lists(st.sampled_from([*CONTROL_OPS[op], "id", "x"]), max_size=4, unique=True)):
        request[key] = draw(MEMBER)
    if op.startswith("wait_"):
        request["timeout"] = 0  # never block the fuzzer
    if op.startswith("add_") and isinstance(request.get("size"), int) and request["size"] > 1 << 36:
        request["size"] = 1 << 36  # a valid huge region only makes the fuzzer slow (the limit has its test)
    return json.dumps(request, allow_nan=True).encode() + b"\n"


@settings(max_examples=1500 if LONG else 50, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(requests=st.lists(control_request(), min_size=1, max_size=10))
def test_the_control_socket_answers_garbage_and_bad_requests_and_keeps_serving(requests) -> None:
    """Every line gets one reply, ``ok`` true or false with an error for a person, never an
    internal error (a handler bug); the connection and the engine stay consistent."""
    from fakesysfs.control import ControlClient, serving
    from fakesysfs.harness import Harness

    k, tree = default_kernel()
    harness = Harness(k, tree, None)
    with serving(k, ops=harness.register_control) as server, ControlClient(server.path, timeout=30) as client:
        for line in requests:
            client.sock.sendall(line)
            reply = client._read()
            assert isinstance(reply, dict) and isinstance(reply.get("ok"), bool), (line, reply)
            if not reply["ok"]:
                assert reply.get("error") and not reply["error"].startswith("internal error"), (line, reply)
        assert client.request("ping")["ok"]
    check_all(k, tree)
    report("fuzz_control", inputs=len(requests))


@pytest.mark.parametrize("name", ["memory\u00b2", "memory\u0661", "memory01"])
def test_debugfs_block_dirs_are_named_by_ascii_digits(name: str) -> None:
    """str.isdigit() takes "²" (int() raised ValueError: EIO over FUSE): only ``memory%d`` names a block."""
    _, tree = default_kernel(harness=True)
    assert "memory1" in tree.readdir("/kernel/debug/fakesysfs/blocks")
    with pytest.raises(KernelError) as exc:
        tree.lookup(f"/kernel/debug/fakesysfs/blocks/{name}")
    assert exc.value.errno == errno.ENOENT
