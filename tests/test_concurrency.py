"""Concurrent writers and readers (issue 8, "concurrency").

Several processes at once online and offline blocks, bind and unbind kmem, create, resize,
map and delete dax devices, and read everything, through a real mount; the same roles run
as threads against the ``Tree`` in process. The roles live in tests/stress_worker.py. What
must hold:

- no deadlock: every process and thread ends within its timeout;
- every operation gets success or the kernel's errno for that file (never EAGAIN, EINTR or
  EIO: contention is invisible, R-SYS-05), and a successful write consumes everything;
- no torn read: every value read is one the file can have (``state`` is ``online`` or
  ``offline``, ``meminfo`` has MemUsed = MemTotal - MemFree, links point at a driver);
- the engine invariants (fakesysfs.testing.invariants) hold at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from stress import LONG, default_kernel, report
from stress_worker import Worker

from fakesysfs.errors import KernelError
from fakesysfs.sysfs.tree import PAGE_SIZE, Link, Tree
from fakesysfs.testing.invariants import check_all

WORKER = Path(__file__).with_name("stress_worker.py")
ROLES = ["blocks", "blocks", "dax", "region", "reader", "reader"]
OPS = 2000 if LONG else 100
#: Each worker stops after OPS operations or SECONDS, whichever comes first; one still
#: running GRACE seconds later is stuck in a system call: a deadlock.
SECONDS = 240 if LONG else 60
GRACE = 60
TIMEOUT = SECONDS + GRACE


def _errno_of(exc: KernelError) -> OSError:
    return OSError(exc.errno, os.strerror(exc.errno))


class TreeWorker(Worker):
    """The roles of stress_worker.Worker, against a Tree in this process (paths resolve
    through links as the VFS would)."""

    def __init__(self, tree: Tree, seed: int, seconds: float | None = None) -> None:
        super().__init__(None, seed, seconds)
        self.tree = tree

    def real(self, rel: str, follow_last: bool = False) -> str:
        todo = [p for p in rel.split("/") if p]
        cur: list[str] = []
        hops = 0
        while todo:
            part = todo.pop(0)
            if part == "..":
                if cur:
                    cur.pop()
                continue
            try:
                node = self.tree.lookup("/" + "/".join([*cur, part]))
            except KernelError as exc:
                raise _errno_of(exc) from None
            if isinstance(node, Link) and (todo or follow_last):
                hops += 1
                assert hops < 40
                todo = [p for p in node.target.split("/") if p] + todo
                continue
            cur.append(part)
        return "/" + "/".join(cur)

    def raw_write(self, rel: str, data: bytes) -> int:
        try:
            fh = self.tree.open(self.real(rel), os.O_WRONLY)
            return self.tree.write(fh, data)
        except KernelError as exc:
            raise _errno_of(exc) from None

    def raw_read(self, rel: str) -> bytes:
        try:
            fh = self.tree.open(self.real(rel), os.O_RDONLY)
            return self.tree.read(fh, PAGE_SIZE, 0)
        except KernelError as exc:
            raise _errno_of(exc) from None

    def raw_listdir(self, rel: str) -> list[str]:
        try:
            return self.tree.readdir(self.real(rel))
        except KernelError as exc:
            raise _errno_of(exc) from None

    def raw_readlink(self, rel: str) -> str:
        try:
            parent = self.real(posixpath.dirname(rel), follow_last=True)
            return self.tree.readlink(parent + "/" + posixpath.basename(rel))
        except KernelError as exc:
            raise _errno_of(exc) from None


def _summarize(results: list[dict]) -> tuple[int, Counter[str], list[str]]:
    ops = sum(r["ops"] for r in results)
    errnos: Counter[str] = Counter()
    bad: list[str] = []
    for r in results:
        errnos.update(r["errnos"])
        bad += [f"{r['role']}: {b}" for b in r["bad"]]
    return ops, errnos, bad


# -- threads against the Tree -------------------------------------------------------------------
def test_threads_against_the_tree() -> None:
    k, tree = default_kernel()
    workers = [TreeWorker(tree, seed, SECONDS) for seed in range(len(ROLES))]
    results: list[dict] = []
    failures: list[BaseException] = []

    def run(worker: TreeWorker, role: str) -> None:
        try:
            getattr(worker, f"role_{role}")(OPS)
            results.append({"role": role, "ops": worker.ops, "errnos": worker.errnos, "bad": worker.bad})
        except BaseException as exc:  # noqa: BLE001 (reported below)
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(w, role), daemon=True)
               for w, role in zip(workers, ROLES, strict=True)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + TIMEOUT
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "deadlock: a thread did not finish"
    assert not failures, failures
    ops, errnos, bad = _summarize(results)
    assert not bad, bad[:20]
    check_all(k, tree)
    assert errnos["ok"] > 0 and errnos["EBUSY"] + errnos["ENODEV"] + errnos["EINVAL"] > 0, errnos  # it did contend
    report("concurrency_threads", operations=ops, workers=len(ROLES))


# -- processes against a mount -----------------------------------------------------------------
@contextlib.contextmanager
def served(tree: Tree, *, threads: bool) -> Iterator[Path]:
    """The tree mounted from a thread of this process, libfuse single- or multi-threaded."""
    from conftest import fuse_unavailable_reason, make_mountpoint, unmount

    from fakesysfs.fuse_adapter import serve

    reason = fuse_unavailable_reason()
    if reason is not None:
        pytest.skip(f"FUSE test: {reason}")
    path = make_mountpoint()
    ready = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            serve(tree, path, allow_other=True, ready_callback=ready.set, threads=threads)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
            ready.set()

    thread = threading.Thread(target=run, name=f"fuse {path}", daemon=True)
    thread.start()
    ready.wait(10)
    assert not errors, errors
    try:
        yield path
    finally:
        if not unmount(path):
            unmount(path, lazy=True)
        # libfuse 3's multi-threaded loop ends once every worker has seen the unmount; on a
        # loaded 2-vCPU machine that has taken over 10 s.
        thread.join(60)
        assert not thread.is_alive(), "the daemon did not stop"
        with contextlib.suppress(OSError):
            path.rmdir()
        assert not errors, errors


def _run_processes(mount: Path, seeds: int, ops: int) -> list[dict]:
    procs = [
        subprocess.Popen([sys.executable, str(WORKER), str(mount), role, str(seeds + i), str(ops), str(SECONDS)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i, role in enumerate(ROLES)
    ]
    results = []
    deadline = time.monotonic() + TIMEOUT
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.communicate(timeout=5)  # one stuck in the kernel may not even die
            pytest.fail(f"deadlock: a worker was still in a system call {GRACE} s after its {SECONDS} s")
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    return results


@contextlib.contextmanager
def event_stream(k) -> Iterator[list[int]]:
    """A control-socket subscriber for the whole run (what ``fakesysfs monitor`` is): the
    SEQNUMs it received, in order."""
    from fakesysfs.control import ControlClient, serving

    got: list[int] = []
    with serving(k) as server:
        client = ControlClient(server.path)
        client.subscribe(after=k.events.seqnum)

        def collect() -> None:
            with contextlib.suppress(OSError, ValueError):
                got.extend(event.seqnum for event in client.events())

        reader = threading.Thread(target=collect, daemon=True)
        reader.start()
        try:
            yield got
            deadline = time.monotonic() + 30
            while (not got or got[-1] < k.events.seqnum) and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            with contextlib.suppress(OSError):
                client.sock.shutdown(2)
            reader.join(5)
            client.close()


@pytest.mark.fuse
@pytest.mark.parametrize("threads", [False, True], ids=["single-threaded-daemon", "multi-threaded-daemon"])
def test_processes_against_a_mount(threads: bool) -> None:
    k, tree = default_kernel()
    first = k.events.seqnum + 1
    with event_stream(k) as seqnums, served(tree, threads=threads) as mount:
        # GIL-bound: the multi-threaded daemon is slower, give it fewer operations
        results = _run_processes(mount, seeds=100 if threads else 0, ops=OPS // 2 if threads else OPS)
        assert os.path.isdir(mount / "devices/system/memory"), "the daemon stopped serving"
        ops, errnos, bad = _summarize(results)
        assert not bad, bad[:20]
        check_all(k, tree)
    # A subscriber saw every uevent once, in SEQNUM order, none lost under contention.
    assert seqnums == list(range(first, k.events.seqnum + 1)), "the event stream lost or reordered events"
    assert errnos["ok"] > 0, errnos
    report("concurrency_processes_" + ("mt" if threads else "st"), operations=ops, workers=len(ROLES),
           events=len(seqnums))
