"""One process of the concurrency test (tests/test_concurrency.py), run against a mount:

    python stress_worker.py MOUNTPOINT ROLE SEED OPS [SECONDS]

Roles: ``blocks`` (online/offline memory blocks through ``state`` and ``online``), ``dax``
(kmem unbind/bind, drivers_probe, new_id/remove_id of the kmem-backed devices), ``region``
(shrink, create, size, mapping, bind, unbind, delete dynamic devices of the hmem region),
``reader`` (reads everything, checking each value is one the file can have), and
``stream`` (test_crash: a stream of stores until the daemon dies, every acknowledged one
appended to the file named by a fifth argument).

Prints one JSON object: ``{"ops": N, "errnos": {"EBUSY": n, ...}, "bad": [...]}``; ``bad``
lists every outcome the kernel could not have produced (an errno not in the file's table,
a short write, a torn or malformed read).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from stress import read_errnos, write_errnos

MEM = "devices/system/memory"
NODE = "devices/system/node"
HMEM = "devices/platform/hmem.1"
CXL_DEV = "devices/platform/ACPI0017:00/root0/decoder0.0/region0/dax_region0/dax0.0"
#: Contention never shows as an error (R-SYS-05; docs/abi.md "Simplifications and invariants").
NEVER = {errno.EAGAIN, errno.EINTR, errno.EIO}


class Worker:
    def __init__(self, root: str | None, seed: int, seconds: float | None = None) -> None:
        self.root = Path(root or "/nonexistent")
        #: Stop early at this time (a role then did fewer operations, never more).
        self.deadline = None if seconds is None else time.monotonic() + seconds
        self.rng = random.Random(seed)
        self.ops = 0
        self.errnos: Counter[str] = Counter()
        self.bad: list[str] = []

    # -- I/O ----------------------------------------------------------------------------------
    def write(self, rel: str, text: str) -> int:
        """One open + write + close; returns 0 or the errno, recording anything wrong."""
        self.ops += 1
        data = text.encode()
        try:
            n = self.raw_write(rel, data)
        except OSError as exc:
            name = errno.errorcode.get(exc.errno, str(exc.errno))
            self.errnos[name] += 1
            if exc.errno == errno.ENOENT:
                return exc.errno  # a device that went away
            if exc.errno in NEVER or exc.errno not in write_errnos("/" + rel):
                self.bad.append(f"write {rel} <- {text!r}: {name}")
            return exc.errno
        if n != len(data) and not (n == 0 and rel.endswith("/mapping")):
            self.bad.append(f"write {rel} <- {text!r}: short write {n}")
        self.errnos["ok"] += 1
        return 0

    # The four primitives; the in-process variant (test_concurrency) replaces them.
    def raw_write(self, rel: str, data: bytes) -> int:
        fd = os.open(self.root / rel, os.O_WRONLY)
        try:
            return os.write(fd, data)
        finally:
            os.close(fd)

    def raw_read(self, rel: str) -> bytes:
        with open(self.root / rel, "rb", buffering=0) as f:
            return f.read(8192)

    def raw_listdir(self, rel: str) -> list[str]:
        return os.listdir(self.root / rel)

    def raw_readlink(self, rel: str) -> str:
        return os.readlink(self.root / rel)

    def read(self, rel: str) -> str | None:
        self.ops += 1
        try:
            return self.raw_read(rel).decode("latin-1")
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno not in read_errnos("/" + rel) and exc.errno != errno.ENOENT:
                self.bad.append(f"read {rel}: {exc}")
            return None

    def listdir(self, rel: str) -> list[str]:
        self.ops += 1
        try:
            return self.raw_listdir(rel)
        except FileNotFoundError:
            return []

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def blocks(self, nid: int | None = None) -> list[int]:
        where = f"{NODE}/node{nid}" if nid is not None else MEM
        return sorted(int(n[6:]) for n in self.listdir(where) if re.fullmatch(r"memory\d+", n))

    # -- roles ---------------------------------------------------------------------------------
    def role_blocks(self, n: int) -> None:
        words = ["online", "online_movable", "online_kernel", "offline", "offline"]
        for _ in range(n):
            if self.out_of_time():
                return
            blocks = self.blocks(self.rng.choice([1, 2]))
            if not blocks:
                self.read(f"{MEM}/auto_online_blocks")
                continue
            bid = self.rng.choice(blocks)
            if self.rng.random() < 0.7:
                self.write(f"{MEM}/memory{bid}/state", self.rng.choice(words))
            else:
                self.write(f"{MEM}/memory{bid}/online", self.rng.choice(["1", "0"]))

    def role_dax(self, n: int) -> None:
        for _ in range(n):
            if self.out_of_time():
                return
            dev = self.rng.choice(["dax0.0", "dax1.0"])
            op = self.rng.random()
            if op < 0.35:
                # offline the device's blocks first, or the unbind leaks them (R-KMEM-09)
                self.write("bus/dax/drivers/kmem/unbind", dev)
            elif op < 0.7:
                self.write("bus/dax/drivers/kmem/bind", dev)
            elif op < 0.8:
                self.write("bus/dax/drivers_probe", dev)
            elif op < 0.9:
                self.write(f"{CXL_DEV}/memmap_on_memory", self.rng.choice(["0", "1"]))
            else:
                self.write("bus/dax/drivers/device_dax/bind", dev)

    def role_region(self, n: int) -> None:
        region = f"{HMEM}/dax_region"
        for _ in range(n):
            if self.out_of_time():
                return
            devices = sorted(d for d in self.listdir(HMEM) if re.fullmatch(r"dax1\.\d+", d))
            dev = self.rng.choice(devices) if devices else "dax1.0"
            op = self.rng.random()
            if op < 0.15:
                self.write(f"bus/dax/drivers/{self.rng.choice(['kmem', 'device_dax'])}/unbind", dev)
            elif op < 0.3:
                self.write(f"{HMEM}/{dev}/size", str(self.rng.choice([0, 1, 2, 4]) << 30))
            elif op < 0.45:
                self.write(f"{region}/create", "1")
            elif op < 0.6:
                self.write(f"bus/dax/drivers/{self.rng.choice(['kmem', 'device_dax'])}/bind", dev)
            elif op < 0.7:
                self.write(f"{region}/delete", dev)
            elif op < 0.8:
                self.write(f"{HMEM}/{dev}/align", str(self.rng.choice([4096, 2 << 20, 1 << 30])))
            elif op < 0.9:
                start = 0x2050000000 + self.rng.randrange(64) * (2 << 20)
                self.write(f"{HMEM}/{dev}/mapping", f"{start:#x}-{start + (2 << 20) - 1:#x}")
            else:
                self.write("bus/dax/drivers/device_dax/new_id", dev)

    def role_reader(self, n: int) -> None:
        for _ in range(n):
            if self.out_of_time():
                return
            what = self.rng.random()
            if what < 0.4:
                blocks = self.blocks()
                if blocks:
                    self.check_block(self.rng.choice(blocks))
            elif what < 0.6:
                for node in self.listdir(NODE):
                    if re.fullmatch(r"node\d+", node):
                        self.check_meminfo(f"{NODE}/{node}/meminfo")
            elif what < 0.8:
                self.check_dax()
            else:
                for name in ("has_memory", "has_normal_memory", "online", "possible"):
                    value = self.read(f"{NODE}/{name}")
                    if value is not None and not re.fullmatch(r"(\d+(-\d+)?(,\d+(-\d+)?)*)?\n", value):
                        self.bad.append(f"torn {NODE}/{name}: {value!r}")

    # -- value checks (what a file can show) ---------------------------------------------------
    def expect(self, rel: str, pattern: str) -> str | None:
        value = self.read(rel)
        if value is not None and not re.fullmatch(pattern, value, re.DOTALL):
            self.bad.append(f"torn or malformed {rel}: {value!r}")
        return value

    def check_block(self, bid: int) -> None:
        base = f"{MEM}/memory{bid}"
        self.expect(f"{base}/state", r"(online|offline)\n")
        self.expect(f"{base}/online", r"[01]\n")
        self.expect(f"{base}/valid_zones", r"(none|(DMA|DMA32|Normal|Movable)( (DMA|DMA32|Normal|Movable))*)\n")
        self.expect(f"{base}/phys_index", f"{bid:08x}\n")

    def check_meminfo(self, rel: str) -> None:
        text = self.read(rel)
        if text is None:
            return
        values = {}
        for line in text.splitlines():
            m = re.fullmatch(r"Node \d+ (\w+(?:\(\w+\))?):\s+(\d+)(?: kB)?", line)
            if not m:
                self.bad.append(f"malformed {rel}: {line!r}")
                return
            values[m.group(1)] = int(m.group(2))
        if values.get("MemUsed") != values.get("MemTotal", 0) - values.get("MemFree", 0):
            self.bad.append(f"torn {rel}: {values}")

    def check_dax(self) -> None:
        for dev in self.listdir("bus/dax/devices"):
            base = f"bus/dax/devices/{dev}"
            self.expect(f"{base}/size", r"\d+\n")
            self.expect(f"{base}/align", r"(4096|2097152|1073741824)\n")
            self.expect(f"{base}/uevent", r"(\w+=[^\n]*\n)*")
            try:
                target = self.raw_readlink(f"{base}/driver")
                if not re.fullmatch(r"(\.\./)+bus/dax/drivers/(kmem|device_dax)", target):
                    self.bad.append(f"bad driver link of {dev}: {target}")
            except FileNotFoundError:
                pass
            except OSError as exc:
                self.bad.append(f"readlink {dev}/driver: {exc}")
            self.ops += 1
        self.expect(f"{HMEM}/dax_region/available_size", r"\d+\n")
        self.expect(f"{HMEM}/dax_region/seed", r"(dax1\.\d+)?\n")


#: The daemon died: the request in flight is aborted, later ones find no connection.
DEAD = {errno.ENOTCONN, errno.ECONNABORTED}


def stream(root: str, seed: int, limit: int, acks_path: str) -> int:
    """Stores until the daemon dies (or ``limit``): long kmem binds, unbinds after offlining
    the device's blocks, block onlines and offlines. Each store whose write(2) returned is
    acknowledged: one JSON line {"path", "data", "errno"} in ``acks_path`` before the next
    store; the store in flight when the daemon died is the last line, with "unacked": true."""
    rng = random.Random(seed)
    kmem_blocks = {"dax0.0": range(522, 650), "dax1.0": range(1024, 1088)}
    done = 0

    def store(rel: str, text: str, acks) -> bool:
        """False once the daemon is dead."""
        nonlocal done
        done += 1
        try:
            fd = os.open(os.path.join(root, rel), os.O_WRONLY)
        except OSError as exc:
            if exc.errno in DEAD:
                return False
            if exc.errno == errno.ENOENT:
                return True  # the block is not there (its device is unbound)
            raise
        try:
            os.write(fd, text.encode())
            err = 0
        except OSError as exc:
            err = exc.errno
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)
        record = {"path": "/" + rel, "data": text, "errno": err}
        if err in DEAD:
            acks.write(json.dumps({**record, "unacked": True}) + "\n")
            return False
        acks.write(json.dumps(record) + "\n")
        return True

    with open(acks_path, "a", buffering=1) as acks:
        while done < limit:
            dev = rng.choice(sorted(kmem_blocks))
            r = rng.random()
            if r < 0.3:
                # release: offline what is online (else the unbind leaks it, R-KMEM-09), unbind
                for bid in kmem_blocks[dev]:
                    try:
                        state = (Path(root) / f"{MEM}/memory{bid}/state").read_text()
                    except FileNotFoundError:
                        continue
                    except OSError as exc:
                        if exc.errno in DEAD:
                            return 0
                        raise
                    if state == "online\n" and not store(f"{MEM}/memory{bid}/state", "offline", acks):
                        return 0
                if not store("bus/dax/drivers/kmem/unbind", dev, acks):
                    return 0
            elif r < 0.6:
                if not store("bus/dax/drivers/kmem/bind", dev, acks):
                    return 0
            else:
                bid = rng.choice(kmem_blocks[dev])
                word = rng.choice(["online_movable", "online", "offline", "online_kernel"])
                if not store(f"{MEM}/memory{bid}/state", word, acks):
                    return 0
    return 0


def main() -> int:
    root, role, seed, ops = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if role == "stream":
        return stream(root, seed, ops, sys.argv[5])
    worker = Worker(root, seed, float(sys.argv[5]) if len(sys.argv) > 5 else None)
    getattr(worker, f"role_{role}")(ops)
    print(json.dumps({"role": role, "ops": worker.ops, "errnos": worker.errnos, "bad": worker.bad[:50]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
