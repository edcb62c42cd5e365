"""Random sequences of the dax half's stores, written through the tree's files as a shell (or
daxctl) writes /sys: bind, unbind, new_id, remove_id, a region's create and delete, a device's
size, mapping and memmap_on_memory, and ``state`` of the memory blocks kmem added. After every
step every invariant of docs/abi.md holds (``fakesysfs.testing.invariants``), and a failed
store carries an errno its kernel store can return (tests/stress.py ``WRITE_ERRNOS``, from
drivers/dax/bus.c and drivers/base/bus.c); any other exception fails the test.

In process (no FUSE), on a ``Simulation`` with two dynamic dax regions: a CXL region whose
dax0.0 kmem onlines at boot, and an idle hmem region whose dax1.0 seed has no capacity.
``FAKESYSFS_FUZZ=long`` runs many more sequences.
"""

from __future__ import annotations

import posixpath

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from stress import LONG, write_errnos

from fakesysfs.errors import KernelError
from fakesysfs.simulation import Simulation
from fakesysfs.testing.invariants import check_all

BUS = "/bus/dax"
MEM = "/devices/system/memory"
MiB = 1 << 20
BLOCK = 128 * MiB
CXL_START = 0x1050000000
HMEM_START = 0x2000000000

TOPOLOGY = f"""
[kernel]
block_size = "128M"
memmap_on_memory = "Y"
auto_online_blocks = "offline"
possible_nodes = "0-2"

[[node]]
id = 0
cpus = "0-1"
memory = ["0x0-0x3fffffff"]

[dax]
drivers_autoprobe = true
kmem = true
device_dax = true
hmem_region_idle = true

[[cxl_region]]
start = {CXL_START:#x}
size = "1G"
target_node = 1

[[hmem]]
start = {HMEM_START:#x}
size = "1G"
target_node = 2
"""

DRIVERS = ("kmem", "device_dax")
#: Sizes a shell writes to ``daxX.Y/size``: none, whole blocks, and a few the kernel refuses
#: (not a multiple of the region's align, more than is available).
SIZES = (0, BLOCK, 2 * BLOCK, 3 * BLOCK, 4 * BLOCK, 8 * BLOCK, 2 * MiB, 4096, 16 * BLOCK)
STATES = ("online", "online_movable", "online_kernel", "offline")


class DaxFilesMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.sim = Simulation(TOPOLOGY)
        self.tree = self.sim.tree
        #: Region attribute directories (``.../dax_regionN/dax_region`` or a platform device's
        #: ``dax_region``), found as a shell finds them: beside each device the bus lists.
        self.regions = sorted({posixpath.join(posixpath.dirname(self._devpath(name)), "dax_region")
                               for name in self.tree.readdir(f"{BUS}/devices")})
        assert len(self.regions) == 2, self.regions
        self.stores = 0
        self.failures = 0

    def teardown(self) -> None:
        self.sim.close()

    # -- the shell ------------------------------------------------------------------------------
    def _devpath(self, name: str) -> str:
        link = f"{BUS}/devices/{name}"
        return posixpath.normpath(posixpath.join(posixpath.dirname(link), self.tree.readlink(link)))

    def _devices(self) -> list[str]:
        return sorted(self.tree.readdir(f"{BUS}/devices"))

    def _device(self, data: st.DataObject) -> str:
        """A device the bus lists, now and then one that does not exist."""
        names = self._devices()
        return data.draw(st.sampled_from([*names, "dax0.9"]) if names else st.just("dax0.9"), label="device")

    def _echo(self, path: str, text: str) -> bool:
        """``echo text > path``: True if the store succeeded; a failure must carry an errno the
        store can return (anything but a KernelError, or another errno, propagates)."""
        self.stores += 1
        try:
            self.tree.echo(path, text)
        except KernelError as err:
            allowed = write_errnos(path, self.sim.kernel)
            assert err.errno in allowed, f"echo {text!r} > {path}: errno {err.errno}, not one of {sorted(allowed)}"
            self.failures += 1
            return False
        return True

    def _driver_of(self, name: str) -> str | None:
        try:
            return posixpath.basename(self.tree.readlink(f"{self._devpath(name)}/driver"))
        except KernelError:
            return None

    # -- the bus (drivers/base/bus.c) ---------------------------------------------------------
    @rule(data=st.data(), driver=st.sampled_from(DRIVERS))
    def bind(self, data: st.DataObject, driver: str) -> None:
        name = self._device(data)
        if self._echo(f"{BUS}/drivers/{driver}/bind", name):
            assert self._driver_of(name) == driver, f"{name} bound to {driver} but driver is {self._driver_of(name)}"

    @rule(data=st.data(), driver=st.sampled_from(DRIVERS))
    def unbind(self, data: st.DataObject, driver: str) -> None:
        name = self._device(data)
        if self._echo(f"{BUS}/drivers/{driver}/unbind", name):
            assert self._driver_of(name) is None, f"{name} still bound after unbind"

    @rule(data=st.data(), driver=st.sampled_from(DRIVERS), add=st.booleans())
    def new_id_or_remove_id(self, data: st.DataObject, driver: str, add: bool) -> None:
        self._echo(f"{BUS}/drivers/{driver}/{'new_id' if add else 'remove_id'}", self._device(data))

    # -- regions (drivers/dax/bus.c create_store, delete_store) --------------------------------
    @rule(data=st.data())
    def create(self, data: st.DataObject) -> None:
        region = data.draw(st.sampled_from(self.regions), label="region")
        before = set(self._devices())
        if self._echo(f"{region}/create", "1"):
            assert len(set(self._devices()) - before) == 1, "create added no device"

    @rule(data=st.data(), own=st.booleans())
    def delete(self, data: st.DataObject, own: bool) -> None:
        """Mostly a device of the region written to (else ENXIO)."""
        name = self._device(data)
        if own and name in self._devices():
            region = posixpath.join(posixpath.dirname(self._devpath(name)), "dax_region")
        else:
            region = data.draw(st.sampled_from(self.regions), label="region")
        if self._echo(f"{region}/delete", name):
            assert name not in self._devices(), f"{name} deleted but listed"

    # -- a device's attributes ----------------------------------------------------------------
    @rule(data=st.data(), size=st.sampled_from(SIZES))
    def size(self, data: st.DataObject, size: int) -> None:
        name = self._device(data)
        if name not in self._devices():
            return
        path = f"{self._devpath(name)}/size"
        if self._echo(path, str(size)):
            assert self.tree.cat(path) == f"{size}\n", f"{name}/size"

    @rule(data=st.data(), first=st.integers(0, 7), blocks=st.integers(1, 3), hmem=st.booleans())
    def mapping(self, data: st.DataObject, first: int, blocks: int, hmem: bool) -> None:
        """A physical range of one region, block aligned (daxctl's ``mapping`` restore)."""
        name = self._device(data)
        if name not in self._devices():
            return
        start = (HMEM_START if hmem else CXL_START) + first * BLOCK
        self._echo(f"{self._devpath(name)}/mapping", f"{start:#x}-{start + blocks * BLOCK - 1:#x}")

    @rule(data=st.data(), value=st.sampled_from(["1", "0", "y", "n", "2"]))
    def memmap_on_memory(self, data: st.DataObject, value: str) -> None:
        name = self._device(data)
        if name in self._devices():
            self._echo(f"{self._devpath(name)}/memmap_on_memory", value)

    # -- the blocks kmem added (mm/memory_hotplug.c via memory.c state_store) -----------------
    @rule(data=st.data(), state=st.sampled_from(STATES))
    def block_state(self, data: st.DataObject, state: str) -> None:
        blocks = [n for n in self.tree.readdir(MEM) if n.startswith("memory") and n[6:].isdigit()
                  and int(n[6:]) * BLOCK >= CXL_START]
        if blocks:
            block = data.draw(st.sampled_from(blocks), label="block")
            if self._echo(f"{MEM}/{block}/state", state):
                shown = self.tree.cat(f"{MEM}/{block}/state").strip()
                assert shown == ("offline" if state == "offline" else "online"), f"{block}: {state} -> {shown}"

    @invariant()
    def every_invariant(self) -> None:
        check_all(self.sim.kernel, self.tree)


TestDaxFilesMachine = DaxFilesMachine.TestCase
TestDaxFilesMachine.settings = settings(
    max_examples=1000 if LONG else 40, stateful_step_count=60 if LONG else 30, deadline=None, database=None,
    suppress_health_check=list(HealthCheck))


def test_kmem_unbind_after_a_mapping_write_to_the_bound_device() -> None:
    """A mapping write does not check the binding (R-DAX-MAP-01), so a kmem-bound device gains a
    range kmem never added; unbinding kmem then must end with the kernel's answer and the
    invariants intact. (In drivers/dax/kmem.c dev_dax_kmem_remove loops over nr_range and reads
    data->res[i], an array struct_size()d at probe: the kernel itself reads past its end; the
    engine treats such a range as one kmem never added.)"""
    with Simulation(TOPOLOGY) as sim:
        dev = posixpath.normpath(posixpath.join(f"{BUS}/devices", sim.tree.readlink(f"{BUS}/devices/dax1.0")))
        sim.echo(f"{dev}/size", str(BLOCK))
        sim.echo(f"{BUS}/drivers/kmem/new_id", "dax1.0")
        assert posixpath.basename(sim.tree.readlink(f"{dev}/driver")) == "kmem"
        last = HMEM_START + 7 * BLOCK
        sim.echo(f"{dev}/mapping", f"{last:#x}-{last + BLOCK - 1:#x}")
        assert sim.cat(f"{dev}/size") == f"{2 * BLOCK}\n"
        check_all(sim.kernel, sim.tree)
        try:
            sim.echo(f"{BUS}/drivers/kmem/unbind", "dax1.0")
        except KernelError as err:
            assert err.errno in write_errnos(f"{BUS}/drivers/kmem/unbind")
        check_all(sim.kernel, sim.tree)


def test_memory_kmem_leaves_behind_stays_owned_after_its_device_is_removed() -> None:
    """Removing a CXL region whose kmem memory is online: kmem cannot remove it ("cannot be
    hotremoved until the next reboot"), the device goes, the memory stays hot-added, and the
    invariants still account for it (found by the agent example's state machine in CI)."""
    with Simulation() as sim:
        region = sim.add_cxl_region("256M", node=1)
        k = sim.kernel
        added = sorted(bid for bid, block in k.blocks.items() if not block.boot and block.group is not None
                       and block.group.nid == 1 and bid not in range(522, 650))
        assert added
        for bid in added:
            sim.echo(f"/devices/system/memory/memory{bid}/state", "online_movable")
        sim.remove(region)
        assert all(bid in k.blocks for bid in added)  # leaked until reboot
        assert k.kmem_orphans and any("cannot be hotremoved" in line for line in k.kmsg)
        check_all(k, sim.tree)
