"""The Python harness API in-process: topologies, runtime hot-plug and removal by the kernel's
rules, fault injection, waits, the store trace, state objects, the debugfs files."""

from __future__ import annotations

import errno
import json
import re
import threading

import pytest

import fakesysfs
from fakesysfs import HarnessError, KernelError, Simulation
from fakesysfs.config import BootConfig, GiB, MemRange, NodeConfig
from fakesysfs.errors import EHWPOISON
from fakesysfs.sysfs import build_tree

MEM = "/devices/system/memory"
DBG = "/kernel/debug/fakesysfs"

SMALL = """
[kernel]
memmap_on_memory = "Y"
possible_nodes = "0-2"
[[node]]
id = 0
cpus = "0-1"
memory = ["0x0-0xffffffff"]
"""


@pytest.fixture
def sim() -> Simulation:
    with Simulation(SMALL) as s:
        yield s


def state_path(bid: int) -> str:
    return f"{MEM}/memory{bid}/state"


def test_the_public_names_are_pinned() -> None:
    assert sorted(fakesysfs.__all__) == [
        "BlockInfo", "BootConfig", "ConfigError", "DaxDeviceInfo", "HarnessError", "KernelError", "Mark",
        "MountError", "NodeInfo", "ProducerInfo", "Simulation", "StateError", "StoreRecord", "Uevent",
        "__version__",
    ]  # fmt: skip
    for name in fakesysfs.__all__:
        assert getattr(fakesysfs, name) is not None


def test_topology_from_a_file_text_config_or_the_default(tmp_path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(SMALL)
    config = BootConfig(nodes=[NodeConfig(0, [0], [MemRange(0, 4 * GiB)])], possible_nodes=[0, 1])
    for source in (str(path), path, SMALL):
        assert len(Simulation(source).blocks()) == 32
    s = Simulation(config)
    s.add_cxl_region("1G", node=1)
    assert config.cxl_regions == [], "the caller's BootConfig must not see hot-added producers"
    assert [p.name for p in Simulation().producers()] == ["region0", "hmem.1", "namespace2.0"]


def test_paths_resolve_symlinks_as_the_vfs_does() -> None:
    """cat/echo/ls/readlink/exists/realpath take paths below the mount and follow links
    (``/bus/dax/devices/``, ``driver``) as a shell on the mount would, ``..`` from the target."""
    with Simulation() as s:  # the default topology: dax0.0 of region0 bound to kmem
        dev = "/bus/dax/devices/dax0.0"
        assert s.readlink(dev).startswith("../../../devices/platform/")
        real = s.realpath(dev)
        assert real.startswith("/devices/platform/") and real.endswith("/dax0.0")
        assert s.realpath(f"{dev}/driver") == "/bus/dax/drivers/kmem"
        assert s.realpath(f"{dev}/driver/../device_dax") == "/bus/dax/drivers/device_dax"
        assert s.realpath(f"{dev}/driver", follow_last=False) == f"{real}/driver"
        assert s.cat(f"{dev}/size") == s.cat(f"{real}/size")
        assert "dax0.0" in s.ls(f"{dev}/driver")
        assert s.exists(f"{dev}/driver") and not s.exists(f"{dev}/nothing")
        assert s.echo(f"{dev}/driver/unbind", "dax0.0") == 7
        assert not s.exists(f"{dev}/driver")
        assert s.stores()[-1].path == "/bus/dax/drivers/kmem/unbind"
        for call in (lambda: s.cat(f"{dev}/nothing"), lambda: s.ls(f"{dev}/driver")):
            with pytest.raises(KernelError) as exc:
                call()
            assert exc.value.errno == errno.ENOENT


def test_validate_false_boots_firmware_a_topology_file_refuses() -> None:
    """An hmem range without a NUMA node: the topology checks refuse it, the kernel boots it
    (kmem refuses to bind it later); such a machine has no topology text for a state file."""
    from fakesysfs.config import HmemConfig

    config = BootConfig(nodes=[NodeConfig(0, [0], [MemRange(0, 4 * GiB)])], possible_nodes=[0],
                        hmem=[HmemConfig(0x2000000000, 1 * GiB, target_node=-1)])
    with pytest.raises(fakesysfs.ConfigError):
        Simulation(config)
    with Simulation(config, validate=False) as s:
        assert s.ls("/bus/dax/devices") == ["dax0.0"]
        assert not s.exists("/bus/dax/devices/dax0.0/target_node")
    with pytest.raises(ValueError, match="validate=False"):
        Simulation(config, validate=False, state="/nonexistent/never-created.state")


def test_hot_added_cxl_region_sends_the_kernel_events_in_order(sim: Simulation) -> None:
    mark = sim.mark()
    region = sim.add_cxl_region("1G", node=1)
    assert (region.name, region.kind, region.size, region.target_node, region.devices) == \
        ("region0", "cxl", GiB, 1, ("dax0.0",))
    assert region.start == 0x100000000  # lowest free 256 MiB boundary above everything present
    events = [(e.action, e.devpath.rsplit("/", 1)[1], e.get("DRIVER")) for e in sim.events(after=mark)]
    first_block = region.start // (128 << 20)
    assert events[:5] == [
        ("add", "ACPI0017:00", None), ("add", "root0", None), ("add", "decoder0.0", None),
        ("bind", "ACPI0017:00", "cxl_acpi"), ("add", "region0", None),
    ]  # fmt: skip
    assert events[5:8] == [("add", "dax_region0", None), ("add", "dax0.0", None), ("add", "node1", None)]
    assert events[8] == ("add", f"memory{first_block}", None)
    assert events[-3:] == [("bind", "dax0.0", "kmem"), ("bind", "dax_region0", "cxl_dax_region"),
                           ("bind", "region0", "cxl_region")]
    blocks = sim.blocks_of(region)
    assert [b.id for b in blocks] == list(range(first_block, first_block + 8))
    assert all(b.state == "offline" and b.device == "dax0.0" and b.altmap_pages == 512 for b in blocks)
    assert sim.bindings() == {"dax0.0": "kmem"}
    assert sim.node(1).online and not sim.node(1).has_memory
    assert "region0" in sim.tree.readdir("/devices/platform/ACPI0017:00/root0/decoder0.0")
    dax_dir = sim.tree.readlink("/bus/dax/devices/dax0.0").replace("../../..", "")
    assert sim.cat(f"{dax_dir}/target_node") == "1\n"


def test_removing_a_region_whose_memory_is_offline_removes_everything(sim: Simulation) -> None:
    region = sim.add_cxl_region("1G", node=1)
    mark = sim.mark()
    sim.remove(region)
    tail = [(e.action, e.devpath.rsplit("/", 1)[1]) for e in sim.events(after=mark)]
    assert [a for a, _ in tail[:8]] == ["remove"] * 8, "kmem's remove takes the offline blocks first"
    assert tail[-6:] == [("unbind", "dax0.0"), ("remove", "dax0.0"), ("unbind", "dax_region0"),
                         ("remove", "dax_region0"), ("unbind", "region0"), ("remove", "region0")]
    assert sum(a == "remove" and d.startswith("memory") for a, d in tail) == 8
    assert ("remove", "node1") in tail, "the node goes with its last memory (try_offline_node)"
    assert sim.blocks_of(region) == [] and sim.dax_devices() == []
    assert not sim.node(1).online
    assert "CXL Window" not in sim.iomem()
    again = sim.add_cxl_region("1G", node=1, start=region.start)
    assert again.name == "region0", "memregion ids are reused lowest-first"


def test_removal_leaks_online_memory_as_kmem_does(sim: Simulation) -> None:
    region = sim.add_cxl_region("1G", node=1)
    first = sim.blocks_of(region)[0].id
    sim.echo(state_path(first), "online_movable")
    sim.remove("region0")
    left = sim.blocks_of(region)
    assert [b.id for b in left] == list(range(first, first + 8)), \
        "remove_memory() of the device's range fails as a whole: every block stays until reboot (R-KMEM-09)"
    assert left[0].online and left[0].movable and not any(b.online for b in left[1:])
    assert sim.dax_devices() == [] and sim.producers() == []
    assert any("cannot be hotremoved until the next reboot" in line for line in sim.kmsg())
    assert re.search(r"CXL Window 0\n +[0-9a-f]+-[0-9a-f]+ : dax0.0\n +[0-9a-f]+-[0-9a-f]+ : System RAM \(kmem\)",
                     sim.iomem())
    with pytest.raises(HarnessError, match=r"overlaps CXL Window 0") as info:
        sim.add_cxl_region("1G", node=1, start=region.start)
    assert info.value.errno == errno.EBUSY
    assert sim.node(1).mem_total > 0


def test_hmem_range_hot_add_and_remove(sim: Simulation) -> None:
    hmem = sim.add_hmem("512M", node=2, numa_node=0)
    assert (hmem.name, hmem.kind, hmem.devices) == ("hmem.0", "hmem", ("dax0.0",))
    assert sim.cat("/devices/platform/hmem.0/numa_node") == "0\n"
    assert sim.dax_device("dax0.0").driver == "kmem" and sim.dax_device("dax0.0").memmap_on_memory is False
    assert "Soft Reserved" in sim.iomem()
    sim.remove(hmem)
    assert "hmem.0" not in sim.tree.readdir("/devices/platform") and "Soft Reserved" not in sim.iomem()


def test_driver_override_binds_device_dax_and_no_blocks_appear(sim: Simulation) -> None:
    region = sim.add_cxl_region("1G", node=1, driver="device_dax")
    assert sim.bindings() == {"dax0.0": "device_dax"} and sim.blocks_of(region) == []


@pytest.mark.parametrize(("call", "message", "err"), [
    (lambda s: s.add_cxl_region("300M", node=1), r"multiples of the 256 MiB", errno.EINVAL),
    (lambda s: s.add_cxl_region("1G", node=7), r"target_node 7 is not a possible node", errno.EINVAL),
    (lambda s: s.add_hmem("1G", node=1, start=0), r"overlaps System RAM", errno.EBUSY),
    (lambda s: s.add_cxl_region("1G", node=1, driver="nvme"), r"'nvme' is not a dax driver", errno.EINVAL),
    (lambda s: s.add_cxl_region("lots", node=1), r"size: cannot parse 'lots'", errno.EINVAL),
    (lambda s: s.remove("region9"), r"there is no CXL region region9", errno.ENODEV),
    (lambda s: s.remove("namespace2.0"), r"pmem namespaces are not hot-removable", errno.ENODEV),
    (lambda s: s.inject_notifier_error("MEM_OFFLINE", 12), r"action must be one of", errno.EINVAL),
    (lambda s: s.fail_probe("dax0.0", "ENOTANERRNO"), r"is not an errno", errno.EINVAL),
    (lambda s: s.set_block_usage(999, pinned=1), r"memory999 does not exist", errno.ENODEV),
])  # fmt: skip
def test_refused_requests_change_nothing_and_say_why(sim: Simulation, call, message, err) -> None:
    before = sim.snapshot()
    with pytest.raises(HarnessError, match=message) as info:
        call(sim)
    assert info.value.errno == err
    assert sim.snapshot() == before
    assert len(sim.harness.history) == 0


def test_notifier_error_fails_every_online_until_cleared(sim: Simulation) -> None:
    block = sim.blocks_of(sim.add_cxl_region("1G", node=1))[0].id
    sim.inject_notifier_error("MEM_GOING_ONLINE", "ENOMEM")
    assert sim.cat("/kernel/debug/notifier-error-inject/memory/actions/MEM_GOING_ONLINE/error") == "-12\n"
    with pytest.raises(KernelError) as info:
        sim.echo(state_path(block), "online")
    assert info.value.errno == errno.ENOMEM and not sim.block(block).online
    sim.inject_notifier_error("MEM_GOING_ONLINE", 0)
    sim.echo(state_path(block), "online")
    assert sim.block(block).online


def test_memmap_failure_at_chunk_k_unwinds_the_kmem_probe_of_a_hot_added_region(sim: Simulation) -> None:
    sim.fail_memmap_at_chunk(3)
    region = sim.add_cxl_region("1G", node=1)
    assert sim.bindings() == {"dax0.0": None}, "kmem's probe failed: the device stays unbound"
    assert sim.blocks_of(region) == [], "no half-added chunk survives (v9 rollback)"
    adds = sim.events(action="add", subsystem="memory")
    removes = sim.events(action="remove", subsystem="memory")
    assert len(adds) == len(removes) == 3
    assert any("memory add failed" in line for line in sim.kmsg())
    assert sim.kernel.faults.memmap_fail_at_chunk is None, "the fault fires once"


def test_probe_failure_pinned_and_poisoned_pages(sim: Simulation) -> None:
    sim.fail_probe("dax0.0", "EBUSY")
    region = sim.add_cxl_region("1G", node=1)
    assert sim.bindings() == {"dax0.0": None}
    assert any(line.endswith("failed with error -16") for line in sim.kmsg())
    sim.echo("/bus/dax/drivers/kmem/bind", "dax0.0")
    a, b = (x.id for x in sim.blocks_of(region)[:2])
    sim.echo(state_path(a), "online_movable")
    sim.set_block_usage(a, pinned=16, used=100)
    assert (sim.block(a).pinned_pages, sim.block(a).used_pages) == (16, 100)
    with pytest.raises(KernelError) as info:
        sim.echo(state_path(a), "offline")
    assert info.value.errno == errno.EBUSY
    sim.set_block_usage(b, poisoned=1)
    with pytest.raises(KernelError) as info:
        sim.echo(state_path(b), "online")
    assert info.value.errno == EHWPOISON
    with pytest.raises(HarnessError, match="offline; pinned and used pages exist only while"):
        sim.set_block_usage(b, pinned=1)
    sim.clear_faults()
    assert (sim.block(a).pinned_pages, sim.block(a).used_pages, sim.block(b).poisoned_pages) == (0, 100, 0)
    sim.echo(state_path(a), "offline")  # the used pages migrate to node 0
    sim.echo(state_path(b), "online")


def test_waits_return_what_another_thread_does_without_sleeping(sim: Simulation) -> None:
    region = sim.add_cxl_region("1G", node=1)
    ids = [b.id for b in sim.blocks_of(region)]
    mark = sim.mark()
    go = threading.Event()

    def agent() -> None:
        go.wait()
        for bid in ids:
            sim.echo(state_path(bid), "online_movable")

    thread = threading.Thread(target=agent)
    thread.start()
    go.set()
    online = sim.wait_until(lambda s: [b for b in s.blocks_of(region) if b.online] if all(
        b.online for b in s.blocks_of(region)) else None, timeout=10)
    thread.join()
    assert [b.id for b in online] == ids and all(b.movable for b in online)
    event = sim.wait_for_event(action="online", devpath=f"{MEM}/memory{ids[-1]}", after=mark)
    store = sim.wait_for_store(path=state_path(ids[0]), data="online_movable", after=mark)
    assert event.seqnum > mark.seqnum and store.ok and store.data == b"online_movable\n"


def test_wait_timeouts_say_what_happened_instead(sim: Simulation) -> None:
    with pytest.raises(KernelError):
        sim.echo(state_path(1), "online")  # already online: EINVAL, and traced
    with pytest.raises(TimeoutError, match=r"no store matching \{'data': 'offline'\}.*memory1/state 'online' EINVAL"):
        sim.wait_for_store(data="offline", timeout=0.05)
    with pytest.raises(TimeoutError, match="no uevent matching"):
        sim.wait_for_event(action="online", timeout=0.05)
    with pytest.raises(TimeoutError, match="nothing_online did not become true"):
        def nothing_online(_s: Simulation) -> bool:
            return False
        sim.wait_until(nothing_online, timeout=0.05)


def test_store_trace_records_path_bytes_errno_and_time(sim: Simulation) -> None:
    with pytest.raises(KernelError):
        sim.echo(state_path(5), "offline")  # boot memory with kernel allocations: EBUSY
    busy, = sim.stores()
    with pytest.raises(KernelError):
        sim.echo(state_path(5), b"bogus\0offline", newline=False)
    bad = sim.stores()[-1]
    assert (busy.path, busy.data, busy.errno, busy.error, busy.text, busy.ok) == \
        (state_path(5), b"offline\n", errno.EBUSY, "EBUSY", "offline", False)
    assert (bad.data, bad.text, bad.errno, bad.seq) == (b"bogus\0offline", "bogus", errno.EINVAL, busy.seq + 1)
    assert 0 < busy.time <= bad.time
    assert sim.stores(errno=errno.EINVAL) == [bad] and sim.stores(path=re.compile(r".*/memory5/state")) == [busy, bad]
    sim.echo(f"{MEM}/memory6/online", "1")  # online_store(): already online is success
    assert [r.path for r in sim.stores(ok=True)] == [f"{MEM}/memory6/online"]


def test_node_accounting_follows_onlining(sim: Simulation) -> None:
    region = sim.add_cxl_region("1G", node=1)
    block = sim.blocks_of(region)[0]
    sim.echo(state_path(block.id), "online_movable")
    node = sim.node(1)
    meminfo_total_kb = int(sim.cat("/devices/system/node/node1/meminfo").split()[3])
    assert node.mem_total == (32768 - 512) * 4096 == meminfo_total_kb * 1024
    assert node.mem_used == 0 and node.has_memory and not node.has_normal_memory and node.tier is not None


def test_debugfs_files_drive_the_same_controls(sim: Simulation) -> None:
    sim.echo(f"{DBG}/hotplug/add_cxl_region", "size=1G node=1")
    sim.echo(f"{DBG}/hotplug/add_hmem", "size=256M node=2 start=0x200000000")
    assert sim.cat(f"{DBG}/hotplug/producers") == (
        "region0 cxl 0x100000000-0x13fffffff node=1 region=0 devices=dax0.0\n"
        "hmem.1 hmem 0x200000000-0x20fffffff node=2 region=1 devices=dax1.0\n")
    block = sim.blocks_of("region0")[0].id
    sim.echo(state_path(block), "online")
    sim.echo(f"{DBG}/blocks/memory{block}/pinned", "0x10")
    assert sim.cat(f"{DBG}/blocks/memory{block}/pinned") == "16\n"
    with pytest.raises(KernelError) as info:
        sim.echo(state_path(block), "offline")
    assert info.value.errno == errno.EBUSY
    sim.echo(f"{DBG}/faults/memmap_fail_at_chunk", "2")
    sim.echo(f"{DBG}/faults/probe_fail", "dax5.0 ENOMEM")
    assert sim.cat(f"{DBG}/faults/memmap_fail_at_chunk") == "2\n"
    assert sim.cat(f"{DBG}/faults/probe_fail") == "dax5.0 -12\n"
    sim.echo(f"{DBG}/faults/clear", "1")
    assert sim.cat(f"{DBG}/faults/memmap_fail_at_chunk") == "-1\n" and sim.cat(f"{DBG}/faults/probe_fail") == ""
    sim.echo(f"{DBG}/hotplug/remove", "hmem.1")
    assert [p.name for p in sim.producers()] == ["region0"]
    assert json.loads(sim.cat(f"{DBG}/state"))["dax_devices"][0]["name"] == "dax0.0"
    assert sim.cat(f"{DBG}/iomem") == sim.iomem()


@pytest.mark.parametrize(("file", "text", "err", "reason"), [
    ("hotplug/add_cxl_region", "size=1G", errno.EINVAL, "add_cxl_region: missing argument(s) target_node"),
    ("hotplug/add_cxl_region", "1G 1", errno.EINVAL, "'1G' is not KEY=VALUE"),
    ("hotplug/add_hmem", "size=1G node=1 colour=red", errno.EINVAL, "unknown argument(s) colour"),
    ("hotplug/remove", "region4", errno.ENODEV, "there is no CXL region region4"),
    ("faults/probe_fail", "dax0.0", errno.EINVAL, "expected DEVICE ERRNO"),
    ("faults/memmap_fail_at_chunk", "x", errno.EINVAL, "chunk: 'x' is not an integer"),
    ("blocks/memory3/used", "-1", errno.EINVAL, "used: must be >= 0"),
])  # fmt: skip
def test_refused_debugfs_writes_fail_with_the_errno_and_log_why(sim: Simulation, file, text, err, reason) -> None:
    with pytest.raises(KernelError) as info:
        sim.echo(f"{DBG}/{file}", text)
    assert info.value.errno == err
    assert sim.kmsg()[-1].startswith(f"fakesysfs: {file}: ")
    if reason is not None:
        assert reason in sim.kmsg()[-1]


def test_debugfs_files_keep_their_modes_and_read_past_a_page(sim: Simulation) -> None:
    for _ in range(40):
        with pytest.raises(KernelError):
            sim.echo(state_path(1), "online")
    trace = sim.cat(f"{DBG}/trace")
    assert len(trace) > 4096 and len(trace.splitlines()) == 40
    assert json.loads(trace.splitlines()[0])["error"] == "EINVAL"
    modes = {name: sim.tree.getattr(f"{DBG}/{name}").mode & 0o777 for name in
             ("trace", "kmsg", "iomem", "state", "faults/clear", "hotplug/add_cxl_region", "hotplug/producers")}
    assert modes == {"trace": 0o600, "kmsg": 0o400, "iomem": 0o400, "state": 0o400, "faults/clear": 0o200,
                     "hotplug/add_cxl_region": 0o200, "hotplug/producers": 0o400}
    with pytest.raises(KernelError) as info:
        sim.cat(f"{DBG}/hotplug/remove")
    assert info.value.errno == errno.EACCES
    sim.echo(f"{DBG}/trace", "clear")
    assert len(sim.cat(f"{DBG}/trace").splitlines()) == 1


def test_a_plain_tree_has_no_harness_files() -> None:
    k = Simulation().kernel
    plain = build_tree(type(k)(k.config))
    assert plain.readdir("/kernel/debug") == ["notifier-error-inject"]


def test_state_objects_describe_boot_memory_and_devices() -> None:
    sim = Simulation()
    blocks = sim.blocks()
    boot = [b for b in blocks if b.boot]
    assert boot[0].id == 0 and boot[0].zone == "none" and boot[0].online and boot[0].unmovable_pages > 0
    dev = sim.dax_device("dax0.0")
    assert (dev.producer, dev.parent, dev.driver, dev.size, dev.target_node) == ("cxl", "region0", "kmem", 16 * GiB, 1)
    assert dev.ranges == ((0x1050000000, 0x144FFFFFFF),) and len(dev.blocks) == 128
    assert sim.dax_device("dax2.0").driver == "device_dax" and sim.dax_device("dax2.0").blocks == ()
    assert [n.id for n in sim.nodes()] == [0, 1, 2, 3] and sim.node(0).cpus == (0, 1)


@pytest.mark.parametrize("text", ["\u00b2", "\u0661\u0662", "-\U0001d7cf", "9" * 5000])
def test_parse_errno_takes_ascii_digits_only(text: str) -> None:
    """str.isdigit() takes "²" (int() raised ValueError), "١٢" (int() read 12) and 5000 nines
    (int() refuses over 4300 digits): each is a HarnessError naming the value."""
    from fakesysfs.harness import parse_errno

    with pytest.raises(HarnessError, match="errno"):
        parse_errno(text)
    assert parse_errno("-0012") == parse_errno("ENOMEM") == 12
