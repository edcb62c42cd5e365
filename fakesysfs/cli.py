"""The ``fakesysfs`` command: mount, umount, topology, status.

``mount`` boots the engine from a topology, builds the attribute tree and serves it over
FUSE. Without ``-f`` it forks: the child serves, the parent waits on a pipe until the
child reports that libfuse has the mount live, then exits 0 (or prints the child's reason
and exits 1). Every user mistake ends in one line on stderr and a non-zero status, never
a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import __version__
from .errors import CliError

if TYPE_CHECKING:
    from .control import ServerOps
    from .engine import Kernel
    from .harness import Harness
    from .sysfs.tree import Tree

log = logging.getLogger("fakesysfs")

#: The FUSE device; a module attribute so tests can point it elsewhere.
DEV_FUSE = "/dev/fuse"
#: How long ``mount`` waits for the daemon to report the mount live.
READY_TIMEOUT = 30.0


# -- checks -------------------------------------------------------------------------------
def _check_dev_fuse() -> None:
    if not os.path.exists(DEV_FUSE):
        raise CliError(
            f"{DEV_FUSE} is missing: load the fuse module (modprobe fuse) or, in a "
            "container, pass the device through (docker run --device /dev/fuse --cap-add SYS_ADMIN)"
        )


def _check_libfuse() -> None:
    try:
        from . import _fuse  # noqa: F401  (loads libfuse)
    except ImportError as exc:
        raise CliError(str(exc)) from None


@contextlib.contextmanager
def _mountpoint_rules() -> Iterator[None]:
    """fakesysfs/mountpoint.py's refusals, as this command's one-line errors."""
    from .mountpoint import MountpointError

    try:
        yield
    except MountpointError as exc:
        raise CliError(str(exc)) from None


def _check_mountpoint(mountpoint: str) -> None:
    """An existing directory, not a mount point yet; a fakesysfs mount whose daemon died is
    cleared first."""
    from .mountpoint import check_directory, is_dead_fuse_mount

    if is_dead_fuse_mount(mountpoint):
        _clear_stale_mount(mountpoint)
    with _mountpoint_rules():
        check_directory(mountpoint)


def _unmount_commands(mountpoint: str, lazy: bool) -> list[list[str]]:
    return [
        ["fusermount3", "-u", *(["-z"] if lazy else []), mountpoint],
        ["fusermount", "-u", *(["-z"] if lazy else []), mountpoint],
        ["umount", *(["-l"] if lazy else []), mountpoint],
    ]


def _unmount(mountpoint: str, lazy: bool) -> list[str]:
    """Unmount with the first tool that manages; [] on success, else every tool's reason."""
    reasons = []
    for command in _unmount_commands(mountpoint, lazy):
        if shutil.which(command[0]) is None:
            continue
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode == 0:
            return []
        reasons.append(done.stderr.strip() or f"{command[0]} exited {done.returncode}")
    return reasons or ["none of fusermount3, fusermount, umount is installed (apt-get install fuse3)"]


def _clear_stale_mount(mountpoint: str) -> None:
    """A FUSE mount whose daemon died ("Transport endpoint is not connected"): a fakesysfs
    one is unmounted (lazily if something still holds it), with a message; anything else is
    left alone."""
    from .mountpoint import containing_mount, mounts

    # The mount table has real paths (the dead mount itself cannot be resolved: its parent can).
    real = os.path.join(os.path.realpath(os.path.dirname(mountpoint)), os.path.basename(mountpoint))
    mine = containing_mount(real, mounts())
    if mine is None or mine[0] != real or mine[1] != "fuse.fakesysfs":
        what = f"a {mine[1]} mount" if mine is not None and mine[0] == real else "a mount"
        raise CliError(f"{mountpoint} is {what} whose daemon is gone (Transport endpoint is not connected), "
                       f"not a fakesysfs one: unmount it yourself (fusermount -u {mountpoint})")
    reasons = _unmount(mountpoint, lazy=False)
    if reasons:
        reasons = _unmount(mountpoint, lazy=True)
    if reasons:
        raise CliError(f"{mountpoint} is a fakesysfs mount whose daemon is gone (Transport endpoint is not "
                       f"connected) and it cannot be unmounted: {reasons[-1]}")
    print(f"fakesysfs: {mountpoint} was left mounted by a fakesysfs daemon that died (Transport endpoint is "
          "not connected); unmounted it", file=sys.stderr, flush=True)


# -- building the tree --------------------------------------------------------------------
def _boot(topology: str | None) -> tuple[Kernel | None, Tree, Harness | None]:
    """What ``mount`` serves (tests stand in a tree of their own, with no kernel)."""
    return _boot_machine(topology)


def _boot_machine(topology: str | None) -> tuple[Kernel, Tree, Harness]:
    """Topology file (or the embedded default) -> booted kernel and its attribute tree, with
    the harness attached (the file is read once: the harness records what was booted); user
    mistakes as CliError."""
    from .errors import ConfigError

    where = topology if topology is not None else "the default topology"
    if topology is not None and not os.path.isfile(topology):
        raise CliError(f"topology {topology} does not exist or is not a file")
    try:
        from .machine import boot
        from .topology import load_topology, read_topology_file
    except ImportError as exc:
        raise CliError(f"this fakesysfs installation is incomplete: {exc}") from None
    try:
        # a regular file of bounded size only: a FIFO or device swapped in is refused, not read
        text = read_topology_file(topology) if topology is not None else None
        config = load_topology(text=text, name=topology) if text is not None else load_topology()
        kernel, tree, harness = boot(config, text)
    except ConfigError as exc:
        raise CliError(f"invalid topology {where}: {exc}") from None
    except OSError as exc:
        raise CliError(f"cannot read topology {where}: {exc.strerror or exc}") from None
    return kernel, tree, harness


def _boot_state(path: str, topology: str | None, snapshot: str | None) -> tuple[Kernel, Tree, Harness]:
    """``mount --state FILE [--import SNAPSHOT]``: resume (or start) a journaled state. A
    state file this call creates is removed again if the boot fails (by identity: a file
    swapped in meanwhile stays), so a bad topology or snapshot leaves nothing behind."""
    from .errors import ConfigError
    from .journal import MAX_SNAPSHOT_BYTES, StateError, parse_state
    from .machine import boot_state
    from .safefile import UnsafeFileError, open_append_created, read_regular
    from .safefile import remove_created as remove_if_created

    path = os.path.abspath(path)
    created_fd = -1
    try:
        if snapshot is not None:
            try:  # a regular file of bounded size only: never a FIFO or device
                data = read_regular(snapshot, MAX_SNAPSHOT_BYTES, "a snapshot")
            except OSError as exc:
                raise CliError(f"cannot read snapshot {snapshot}: {exc.strerror or exc}") from None
            parse_state(snapshot, data)  # refuse anything that is not a snapshot before copying it
            fd, created = open_append_created(path)
            if created:
                created_fd = fd
            try:
                if os.fstat(fd).st_size > 0:
                    raise CliError(f"--import wants a new state file, but {path} already holds a state")
                os.write(fd, data)
                os.fsync(fd)
            finally:
                if fd != created_fd:
                    os.close(fd)
        kernel, tree, harness = boot_state(path, topology)
    except BaseException as exc:
        if created_fd >= 0:
            remove_if_created(path, created_fd)
        if isinstance(exc, StateError):
            raise CliError(str(exc)) from None
        if isinstance(exc, ConfigError):
            raise CliError(f"invalid topology: {exc}") from None
        if isinstance(exc, OSError) and topology is not None and exc.filename == topology:
            raise CliError(f"cannot read topology {topology}: {exc.strerror or exc}") from None
        if isinstance(exc, UnsafeFileError):
            raise CliError(f"cannot use state file {path}: {exc.strerror}") from None
        if isinstance(exc, OSError):
            raise CliError(f"cannot use state file {exc.filename or path}: {exc.strerror or exc}") from None
        raise
    finally:
        if created_fd >= 0:
            os.close(created_fd)

    def journal_failed(exc: OSError) -> None:
        # Serving on would show changes the state file does not have: stop (libfuse unmounts).
        log.critical("cannot write the state file %s (%s): stopping the mount", path, exc.strerror or exc)
        os.kill(os.getpid(), signal.SIGTERM)

    harness.on_journal_error = journal_failed
    return kernel, tree, harness


# -- mount --------------------------------------------------------------------------------
def _cmd_mount(args: argparse.Namespace) -> int:
    from .mountpoint import check_not_host_sysfs, open_mountpoint

    mountpoint = os.path.abspath(args.mountpoint)
    with _mountpoint_rules():
        check_not_host_sysfs(mountpoint)
    _check_dev_fuse()
    _check_libfuse()
    _check_mountpoint(mountpoint)
    if args.import_snapshot is not None and args.state is None:
        raise CliError("--import needs --state FILE: the snapshot is copied there and resumed")
    log_fd = _open_log("log", args.log_file) if args.log_file is not None and not args.foreground else None
    try:
        with _mountpoint_rules():
            dir_fd = open_mountpoint(mountpoint)  # from here on, the mount goes on this directory
    except BaseException:
        if log_fd is not None:
            os.close(log_fd)
        raise
    kernel: Kernel | None
    harness: Harness | None
    try:
        if args.state is not None:
            kernel, tree, harness = _boot_state(args.state, args.config, args.import_snapshot)
        else:
            kernel, tree, harness = _boot(args.config)
        if args.foreground:
            return _serve_foreground(tree, mountpoint, args.allow_other, kernel, harness, dir_fd)
        log_fd, daemon_log = None, log_fd
        return _serve_daemon(tree, mountpoint, args.allow_other, daemon_log, kernel, harness, dir_fd)
    finally:
        os.close(dir_fd)
        if log_fd is not None:
            os.close(log_fd)


@contextlib.contextmanager
def _mount_on(dir_fd: int, mountpoint: str, allow_other: bool) -> Iterator[str]:
    """What to hand ``serve``: the mount made on the checked directory ``dir_fd``
    (fakesysfs/mountpoint.py ``mount_on``), detached again afterwards."""
    from .mountpoint import mount_on

    with _mountpoint_rules(), mount_on(dir_fd, mountpoint, allow_other, dev_fuse=DEV_FUSE) as placed:
        yield placed.where


def _serve_foreground(tree: Tree, mountpoint: str, allow_other: bool, kernel: Kernel | None,
                      harness: Harness | None, dir_fd: int) -> int:
    from .control import serving_or_warn
    from .fuse_adapter import MountError, serve

    def ready() -> None:
        print(f"fakesysfs: serving {mountpoint}; stop with Ctrl-C or 'fakesysfs umount {mountpoint}'",
              file=sys.stderr, flush=True)

    try:
        # The control socket (fakesysfs monitor/udev) lives as long as the mount.
        control = (serving_or_warn(kernel, ops=_control_ops(harness), tree=tree) if kernel is not None
                   else contextlib.nullcontext())
        with (control,
              _mount_on(dir_fd, mountpoint, allow_other) as where):
            serve(tree, where, foreground=True, allow_other=allow_other, ready_callback=ready)
    except MountError as exc:
        raise CliError(_named(str(exc), mountpoint)) from None
    return 0


def _open_log(kind: str, path: str) -> int:
    """``--trace``/``--log-file``: appended to if it is a file of ours (fakesysfs/safefile.py),
    else created 0600; a symlink, another user's file, a FIFO or device is refused."""
    from .safefile import open_append

    try:
        return open_append(path)
    except OSError as exc:
        raise CliError(f"cannot open the {kind} file {path}: {exc.strerror or exc}") from None


def _named(message: str, mountpoint: str) -> str:
    """libfuse's messages name what it was handed: ``/dev/fd/N`` is the mount point."""
    return re.sub(r"/dev/fd/\d+", lambda _: mountpoint, message)


def _control_ops(harness: Harness | None) -> ServerOps | None:
    """The harness's ops (``fakesysfs ctl``) on the mount's control socket."""
    return harness.register_control if harness is not None else None


def _serve_daemon(tree: Tree, mountpoint: str, allow_other: bool, log_fd: int | None,
                  kernel: Kernel | None, harness: Harness | None, dir_fd: int) -> int:
    """Fork the daemon; it takes ``log_fd`` (the --log-file) over."""
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the daemon
        status = 1
        try:
            os.close(read_end)
            status = _daemon_main(tree, mountpoint, allow_other, log_fd, write_end, kernel, harness, dir_fd)
        except BaseException:
            with contextlib.suppress(BaseException):
                log.exception("daemon failed")
        finally:
            os._exit(status)
    os.close(write_end)
    if log_fd is not None:
        os.close(log_fd)
    return _wait_for_daemon(pid, read_end, mountpoint, dir_fd)


def _daemon_main(
    tree: Tree, mountpoint: str, allow_other: bool, log_fd: int | None, report_fd: int,
    kernel: Kernel | None, harness: Harness | None, dir_fd: int,
) -> int:
    from .control import serving_or_warn
    from .fuse_adapter import MountError, serve

    os.setsid()  # no SIGINT/SIGHUP from the parent's terminal
    os.chdir("/")  # do not keep the caller's directory busy
    reported = False

    def ready() -> None:
        nonlocal reported
        reported = True
        os.write(report_fd, b"ok\n")
        os.close(report_fd)
        _detach_stdio(log_fd)

    try:
        # The control socket (fakesysfs monitor/udev) lives as long as the mount.
        control = (serving_or_warn(kernel, ops=_control_ops(harness), tree=tree) if kernel is not None
                   else contextlib.nullcontext())
        with (control,
              _mount_on(dir_fd, mountpoint, allow_other) as where):
            serve(tree, where, foreground=True, allow_other=allow_other, ready_callback=ready)
    except (MountError, OSError, CliError) as exc:
        if reported:  # stdio is detached by now: this goes to --log-file
            log.error("%s", _named(str(exc), mountpoint))
        else:
            os.write(report_fd, f"error: {_named(str(exc), mountpoint)}\n".encode())
        return 1
    return 0


def _detach_stdio(log_fd: int | None) -> None:
    """Release the caller's terminal or pipes (``$(fakesysfs mount ...)`` must return)."""
    null = os.open(os.devnull, os.O_RDWR)
    out = log_fd if log_fd is not None else null
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    for fd in {null, out}:
        os.close(fd)


def _wait_for_daemon(pid: int, read_end: int, mountpoint: str, dir_fd: int) -> int:
    message = b""
    deadline = time.monotonic() + READY_TIMEOUT
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                os.kill(pid, signal.SIGTERM)
                raise CliError(f"the daemon did not report {mountpoint} ready within {READY_TIMEOUT:.0f} s")
            readable, _, _ = select.select([pipe], [], [], remaining)
            if not readable:
                continue
            chunk = pipe.read(4096)
            if not chunk:
                break
            message += chunk
    text = message.decode(errors="replace").strip()
    if text == "ok":
        from .mountpoint import wait_until_mounted

        with _mountpoint_rules():  # this process sees it before returning
            wait_until_mounted(mountpoint, dir_fd)
        print(f"fakesysfs: serving {mountpoint} (pid {pid}); stop with 'fakesysfs umount {mountpoint}'")
        return 0
    _, status = os.waitpid(pid, 0)
    if text.startswith("error: "):
        raise CliError(text.removeprefix("error: "))
    code = os.waitstatus_to_exitcode(status)
    raise CliError(f"the daemon exited (status {code}) before {mountpoint} was mounted; see the messages above")


# -- umount -------------------------------------------------------------------------------
def _is_mounted(mountpoint: str) -> bool:
    try:
        return os.path.ismount(mountpoint) or False
    except OSError:
        return False


def _cmd_umount(args: argparse.Namespace) -> int:
    from .mountpoint import is_dead_fuse_mount

    mountpoint = os.path.abspath(args.mountpoint)
    if not (_is_mounted(mountpoint) or is_dead_fuse_mount(mountpoint)):
        raise CliError(f"{mountpoint} is not mounted")
    reasons = _unmount(mountpoint, args.lazy)
    if not reasons:
        return 0
    if reasons[0].startswith("none of"):
        raise CliError(reasons[0])
    hint = "" if args.lazy else " (busy? close files under it, or use --lazy)"
    raise CliError(f"cannot unmount {mountpoint}: {reasons[-1]}{hint}")


# -- topology -----------------------------------------------------------------------------
def _cmd_topology(args: argparse.Namespace) -> int:
    if args.from_sysfs is not None:
        from .errors import ConfigError
        from .fromsysfs import topology_from_sysfs

        try:
            found = topology_from_sysfs(args.from_sysfs)
        except ConfigError as exc:
            raise CliError(str(exc)) from None
        sys.stdout.write(found.toml(args.from_sysfs))
        return 0
    try:
        from .topology import default_topology_text
    except ImportError as exc:
        raise CliError(f"this fakesysfs installation is incomplete: {exc}") from None
    text = default_topology_text()
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


# -- status -------------------------------------------------------------------------------
_ZONE_CHARS = {"normal": "N", "movable": "M", "dma32": "D", "dma": "d", "device": "V", "none": "*"}
_MAP_WIDTH = 64
_MAX_RANGES = 64


@dataclass(slots=True)
class _Block:
    id: int
    state: str
    zone: str | None  # online blocks only: the zone valid_zones names
    node: int | None


def _read(path: str) -> str:
    with open(path, encoding="latin-1") as f:
        return f.read().strip()


def _numbered(directory: str, prefix: str) -> list[int]:
    pattern = re.compile(re.escape(prefix) + r"(\d+)")
    found = []
    for name in os.listdir(directory):
        match = pattern.fullmatch(name)
        if match:
            found.append(int(match.group(1)))
    return sorted(found)


def _human(nbytes: int) -> str:
    size = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if size == int(size) else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _meminfo(path: str) -> dict[str, int]:
    """``Node K MemTotal:   16515072 kB`` -> {"MemTotal": bytes}."""
    values = {}
    for line in _read(path).splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[0] == "Node" and fields[2].endswith(":"):
            with contextlib.suppress(ValueError):
                values[fields[2].rstrip(":")] = int(fields[3]) * 1024
    return values


def _status_lines(root: str) -> list[str]:
    memory = os.path.join(root, "devices/system/memory")
    nodes_dir = os.path.join(root, "devices/system/node")
    if not os.path.isdir(memory):
        raise CliError(f"{root} does not look like a sysfs tree (no devices/system/memory)")
    block_size = int(_read(os.path.join(memory, "block_size_bytes")), 16)

    node_ids = _numbered(nodes_dir, "node") if os.path.isdir(nodes_dir) else []
    block_node: dict[int, int] = {}
    for nid in node_ids:
        for bid in _numbered(os.path.join(nodes_dir, f"node{nid}"), "memory"):
            block_node[bid] = nid

    blocks = []
    for bid in _numbered(memory, "memory"):
        bdir = os.path.join(memory, f"memory{bid}")
        state = _read(os.path.join(bdir, "state"))
        zone = None
        if state == "online":
            with contextlib.suppress(OSError):
                zone = _read(os.path.join(bdir, "valid_zones"))
        blocks.append(_Block(bid, state, zone, block_node.get(bid)))

    present = _human(len(blocks) * block_size)
    lines = [f"{root}: {len(blocks)} memory blocks of {_human(block_size)} ({present} present)", ""]
    lines.append("Nodes:")
    if not node_ids:
        lines.append("  (none)")
    for nid in node_ids:
        info = _meminfo(os.path.join(nodes_dir, f"node{nid}", "meminfo"))
        mine = [b for b in blocks if b.node == nid]
        online = sum(b.state == "online" for b in mine)
        total = info.get("MemTotal")
        free = info.get("MemFree")
        lines.append(
            f"  node{nid:<3} MemTotal {_human(total) if total is not None else '?':>10}  "
            f"MemFree {_human(free) if free is not None else '?':>10}  "
            f"blocks {len(mine)} ({online} online)"
        )

    lines.append("")
    lines.append("Blocks by state and zone:")
    tally = Counter((b.state, b.zone or "") for b in blocks)
    for (state, zone), count in sorted(tally.items()):
        label = f"{state} {zone}".strip()
        lines.append(f"  {label:<22} {count:>7}  {_human(count * block_size):>10}")
    if not blocks:
        lines.append("  (none)")

    lines.append("")
    lines.append("Block ranges (node, state and zone, blocks):")
    lines.extend(_block_ranges(blocks))

    lines.append("")
    lines.append(
        "Block map (N Normal, M Movable, D DMA32, d DMA, V Device, * spans zones, "
        ". offline, g going-offline, _ no block):"
    )
    lines.extend(_block_map(blocks))
    return lines


def _block_ranges(blocks: Sequence[_Block]) -> list[str]:
    """Runs of consecutive blocks on one node in one state and zone, named as the files are
    (``memory522-649``): the map shows where blocks lie, this says which to use."""
    runs: list[list[_Block]] = []
    for block in blocks:
        last = runs[-1][-1] if runs else None
        if last and block.id == last.id + 1 and (block.node, block.state, block.zone) == (last.node, last.state,
                                                                                         last.zone):
            runs[-1].append(block)
        else:
            runs.append([block])
    lines = []
    for run in runs[:_MAX_RANGES]:
        first, last = run[0], run[-1]
        name = f"memory{first.id}" + (f"-{last.id}" if last.id != first.id else "")
        node = f"node{first.node}" if first.node is not None else "no node"
        lines.append(f"  {name:<18} {node:<7} {f'{first.state} {first.zone or str()}'.strip():<22} {len(run):>7}")
    if len(runs) > _MAX_RANGES:
        lines.append(f"  ... {len(runs) - _MAX_RANGES} more ranges (the map below has them all)")
    return lines or ["  (none)"]


def _block_char(block: _Block) -> str:
    if block.state == "online":
        return _ZONE_CHARS.get((block.zone or "").lower(), "?")
    if block.state == "offline":
        return "."
    if block.state == "going-offline":
        return "g"
    return "?"


def _block_map(blocks: Sequence[_Block]) -> list[str]:
    if not blocks:
        return ["  (none)"]
    chars = {b.id: _block_char(b) for b in blocks}
    last = max(chars)
    rows = []
    for start in range(0, last + 1, _MAP_WIDTH):
        row = "".join(chars.get(i, "_") for i in range(start, min(start + _MAP_WIDTH, last + 1)))
        rows.append((start, row))
    lines = []
    i = 0
    while i < len(rows):  # fold runs of identical rows so huge machines stay readable
        start, row = rows[i]
        j = i
        while j + 1 < len(rows) and rows[j + 1][1] == row:
            j += 1
        lines.append(f"  {start:>8}  {row}")
        if j > i:
            lines.append(f"  {'':>8}  ... same for blocks {rows[i + 1][0]}-{rows[j][0] + len(row) - 1}")
        i = j + 1
    return lines


def _cmd_status(args: argparse.Namespace) -> int:
    from .mountpoint import is_dead_fuse_mount

    mountpoint = os.path.abspath(args.mountpoint)
    if is_dead_fuse_mount(mountpoint):
        raise CliError(f"{mountpoint} is a FUSE mount whose daemon is gone: run 'fakesysfs umount {mountpoint}'")
    if not os.path.isdir(mountpoint):
        raise CliError(f"{mountpoint} does not exist or is not a directory")
    try:
        lines = _status_lines(mountpoint)
    except OSError as exc:
        raise CliError(f"cannot read {exc.filename or mountpoint}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise CliError(f"unexpected content under {mountpoint}: {exc}") from None
    print("\n".join(lines))
    return 0


# -- run --------------------------------------------------------------------------------------
def _cmd_run(args: argparse.Namespace) -> int:
    from .run import NamespaceError, RunOptions, run

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise CliError("no COMMAND given: fakesysfs run [-c TOPOLOGY.toml] [--] COMMAND [ARGS...]")
    _check_dev_fuse()
    _check_libfuse()
    kernel, tree, harness = _boot_machine(args.config)
    options = RunOptions(share_net=args.share_net, userns=True if args.userns else None,
                         control_ops=harness.register_control)
    if args.rules:
        from .udev_rules import RulesError, UdevRules

        try:
            UdevRules.load(args.rules)  # unreadable files and unsupported keys: reported here, once
        except RulesError as exc:
            raise CliError(str(exc)) from None
        options.rules = [os.path.abspath(path) for path in args.rules]
    if args.pin:
        from .nsops import current_cpu

        options.pin_cpu = current_cpu()
    if args.trace is not None:
        options.trace_fd = _open_log("trace", args.trace)
    if args.log_file is not None:
        try:
            options.log_fd = _open_log("log", args.log_file)
        except CliError:
            if options.trace_fd is not None:
                os.close(options.trace_fd)
            raise
    try:
        return run(kernel, tree, command, options)
    except NamespaceError as exc:
        raise CliError(str(exc)) from None
    finally:
        for fd in (options.trace_fd, options.log_fd):
            if fd is not None:
                os.close(fd)


# -- entry point --------------------------------------------------------------------------
#: The commands _parser() defines itself; the others come from their modules.
_OWN_COMMANDS = frozenset({"mount", "umount", "topology", "status", "run"})


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; for one of ``_OWN_COMMANDS`` the other modules' commands (ctl
    and its many subcommands, monitor, udev) are left out: a mount starts ~20 ms sooner."""
    parser = argparse.ArgumentParser(
        prog="fakesysfs",
        description="Serve a fake Linux /sys (memory hotplug, NUMA nodes, DAX) over FUSE.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    mount = commands.add_parser("mount", help="boot a topology and serve it at MOUNTPOINT")
    mount.add_argument("mountpoint", metavar="MOUNTPOINT")
    mount.add_argument("-c", "--config", metavar="TOPOLOGY.toml", help="topology file (default: the embedded one)")
    mount.add_argument("-f", "--foreground", action="store_true", help="serve in this process until unmounted")
    mount.add_argument("--allow-other", action="store_true",
                       help="let users other than the mounter in (needed for clients running as other users)")
    mount.add_argument("--log-file", metavar="PATH", help="daemon log (default: discarded once mounted)")
    mount.add_argument("--state", metavar="FILE",
                       help="journal every change to FILE (fsync'd before the write returns); resume FILE if it exists")
    mount.add_argument("--import", dest="import_snapshot", metavar="SNAPSHOT",
                       help="with --state FILE (new): start from a snapshot written by 'fakesysfs ctl MNT export'")
    mount.set_defaults(func=_cmd_mount)

    umount = commands.add_parser("umount", help="unmount a fakesysfs mount")
    umount.add_argument("mountpoint", metavar="MOUNTPOINT")
    umount.add_argument("-z", "--lazy", action="store_true", help="detach now even if busy")
    umount.set_defaults(func=_cmd_umount)

    topology = commands.add_parser("topology", help="print the embedded default topology (TOML)")
    topology.add_argument("--from-sysfs", metavar="DIR",
                          help="instead, read a machine's topology from its sysfs at DIR (read only; /sys works)")
    topology.set_defaults(func=_cmd_topology)

    status = commands.add_parser("status", help="summarize the nodes and memory blocks of a mount")
    status.add_argument("mountpoint", metavar="MOUNTPOINT")
    status.set_defaults(func=_cmd_status)

    run = commands.add_parser(
        "run", help="run COMMAND in a private namespace with the fake at /sys (and a private /dev, /run)")
    run.add_argument("-c", "--config", metavar="TOPOLOGY.toml", help="topology file (default: the embedded one)")
    run.add_argument("--trace", metavar="FILE", help="append every store (path, bytes, errno) to FILE as JSON lines")
    run.add_argument("--share-net", action="store_true",
                     help="keep the host's network namespace (default: a private one, loopback only)")
    run.add_argument("--log-file", metavar="PATH", help="daemon log (default: discarded once mounted)")
    run.add_argument("--userns", action="store_true",
                     help="use a user namespace even as root (what runs without root: no mknod, FUSE /dev)")
    run.add_argument("--pin", action="store_true",
                     help="run the daemon and COMMAND on one CPU (several times faster on small VMs)")
    run.add_argument("--rules", action="append", metavar="FILE",
                     help="apply this udev rules file to every uevent, as systemd-udevd would (repeatable)")
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND [ARGS...]")
    run.set_defaults(func=_cmd_run)

    if command in _OWN_COMMANDS:
        return parser
    from . import ctl, monitor, udev_rules

    ctl.add_parser(commands)
    monitor.add_parser(commands)
    udev_rules.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    command = next((word for word in words if not word.startswith("-")), None)
    args = _parser(command).parse_args(words)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(name)s: %(levelname)s: %(message)s",
    )
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except CliError as exc:
        print(f"fakesysfs: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # ``python -m fakesysfs.cli``: run the package's module, not this __main__ copy, so that
    # ctl, monitor and udev (which import fakesysfs.cli) share one copy of its state.
    from fakesysfs.cli import main as _main

    sys.exit(_main())
