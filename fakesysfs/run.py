"""``fakesysfs run``: a command in a sealed namespace where the fake is ``/sys`` itself.

Tools with hard-coded paths (daxctl, chmem, numactl, udevadm) need the fake at ``/sys``, a
``/dev`` with a char node per dax device and a ``/run`` prepared for udev
(docs/clients.md). None of that may touch the host, so everything happens in a
private mount and network namespace that dies with the command:

    fakesysfs run (host)          waits for the keeper, forwards SIGINT/SIGTERM/SIGHUP,
    |                             returns COMMAND's status (RUN_FAILED if the keeper died)
    '- keeper                     unshare(NEWNS|NEWNET), mounts private; the host's /sys, /dev
       |                          and /run read-only; tmpfs /dev and /run; forwards signals;
       |                          ends COMMAND's PID namespace if the daemon dies
       |- daemon                  serves the tree at /sys (and never touches /sys itself:
       |                          its single thread would wait on itself); creates and
       |                          removes /dev nodes on add/remove uevents, as devtmpfs does
       '- init (PID 1)            a new PID namespace with its own /proc, empty module
          |                       directories, then a new user and mount namespace: every
          |                       mount locked, no capability over the host's kernel
          '- COMMAND              with SYSTEMD_DEVICE_VERIFY_SYSFS=0

The seal does not depend on the daemon staying alive. COMMAND's mounts are copies, locked
by its user namespace (it cannot unmount the fakes or make what they cover writable, nor
mount a new sysfs); if the daemon dies, COMMAND's copy of /sys answers ENOTCONN, never the
host's sysfs, the keeper kills init and thereby everything in COMMAND's PID namespace, and
``fakesysfs run`` exits RUN_FAILED with one line saying why. If the keeper is killed, its
children's PDEATHSIGs take the daemon and init (and so COMMAND's tree) along.

Signals the terminal sends (si_code SI_KERNEL) already reach COMMAND, which shares the
foreground process group, so only signals sent to ``fakesysfs run`` itself are forwarded.
Processes COMMAND leaves behind are ended (SIGTERM, then SIGKILL) by init before it exits.

Without root the keeper first enters a user namespace in which the caller is root; FUSE
and tmpfs mounts work there, but ``mknod`` does not: ``/dev/null`` and friends are then
bind mounts of the host's nodes, and ``/dev`` itself is a second FUSE mount of the same
adapter as ``/sys``, serving a ``devfs.DevTree`` whose dax entries report ``S_IFCHR`` with
the device numbers, which is all daxctl and udevadm look at (they ``stat`` the node;
opening it fails, the mount is nodev).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import select
import signal
import socket
import stat
import struct
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .devfs import DEV_LINKS, DEV_NODES, DevNode, Devtmpfs, DevTree, tree_devices
from .errors import MountError, NamespaceError
from .nsops import (
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    MNT_DETACH,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    PR_SET_CHILD_SUBREAPER,
    PR_SET_PDEATHSIG,
    _drop_host_only_caps,
    _hide_modules,
    _prctl,
    _write,
    mount,
    seal_host_mounts,
    umount,
    unshare,
)
from .procfs import KMSG_MAX_THREADS, MODULE_SIZES, PROC_FILES, build_kmsg_tree, build_staging_tree
from .safefile import in_initial_userns
from .udevd import start_event_services

if TYPE_CHECKING:
    from .control import ServerOps
    from .engine import Kernel
    from .sysfs.tree import Tree

__all__ = ["NamespaceError", "RunOptions", "run"]

log = logging.getLogger(__name__)

#: siginfo si_code of a signal the kernel generated (a terminal's ^C or hangup).
SI_KERNEL = 0x80

#: Where the daemon serves the simulated /proc files (procfs.py build_staging_tree) until
#: COMMAND's init binds them; in the namespace's private /run.
STAGING = "/run/fakesysfs/staging"
#: The same for /dev/kmsg (procfs.py build_kmsg_tree), a mount of its own: its readers
#: wait there for new messages, each in a thread of that mount's multi-threaded loop.
KMSG_STAGING = "/run/fakesysfs/kmsg"

#: How long the caller waits for the namespace, the mount and COMMAND to be set up.
SETUP_TIMEOUT = 30.0
#: Grace period for leftovers of COMMAND between SIGTERM and SIGKILL, and for the daemon.
GRACE = 1.0

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_WAITED = {*FORWARDED, signal.SIGCHLD}


@dataclass(slots=True)
class RunOptions:
    """What ``fakesysfs run`` does besides running the command."""

    #: Store log: one JSON line per store, appended to this already-open file descriptor.
    trace_fd: int | None = None
    #: The daemon's log (tree errors with tracebacks, libfuse messages) once /sys is up;
    #: None discards it, as ``fakesysfs mount`` does, so COMMAND's stderr stays its own.
    log_fd: int | None = None
    #: Keep the host's network namespace (the command can reach the network; uevent
    #: emulation would then reach the host's listeners, so it must stay off).
    share_net: bool = False
    #: Run the daemon and the command on this one CPU: a request to the single-threaded
    #: daemon costs about a fifth when client and daemon share a CPU (docs/fuse.md), so
    #: daxctl's ~1000 lookups per block operation take ~1 s instead of ~5 s on a 2-vCPU VM.
    pin_cpu: int | None = None
    #: Use a user namespace: None = only when not root; True also as root (tests the
    #: rootless path: no mknod, dax nodes served by FUSE).
    userns: bool | None = None
    #: Extra environment for the command.
    env: dict[str, str] = field(default_factory=dict)
    #: udev rules files the daemon applies to every uevent, as udevd would (--rules).
    rules: list[str] = field(default_factory=list)
    #: More ops for the daemon's control socket (the harness's: ``Harness.register_control``).
    control_ops: ServerOps | None = None
    #: Called with the staging tree of the /proc files and /dev/kmsg (its paths ``/proc/...``)
    #: so that sysctl writes are recorded as the stores to /sys are (``Harness.watch_proc``).
    watch_proc: Callable[[Tree], None] | None = None
    #: Called in the daemon once its stderr is the ``log_fd`` (the log file's line format).
    on_log_file: Callable[[], None] | None = None


# -- the namespace --------------------------------------------------------------------------
def enter_namespace(*, share_net: bool, userns: bool | None = None) -> bool:
    """unshare the mount (and network) namespace, as root or in a new user namespace
    (``userns`` None: only when not root).

    Returns True when in a user namespace (no mknod then). Mounts become private first, so
    nothing mounted later propagates to the host.
    """
    flags = CLONE_NEWNS | (0 if share_net else CLONE_NEWNET)
    if userns is None:
        # Root of a user namespace (a run inside a run) can mount but not mknod.
        userns = os.geteuid() != 0 or not in_initial_userns()
    uid, gid = os.geteuid(), os.getegid()
    try:
        unshare(flags | (CLONE_NEWUSER if userns else 0))
    except OSError as exc:
        if userns:
            raise NamespaceError(
                f"cannot create a user namespace ({exc.strerror}): run as root, or allow "
                "unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, "
                "user.max_user_namespaces > 0)"
            ) from None
        raise NamespaceError(
            f"cannot create a private mount namespace ({exc.strerror}); in a container, "
            "run it with CAP_SYS_ADMIN (docker run --cap-add SYS_ADMIN --device /dev/fuse)"
        ) from None
    if userns:
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"0 {uid} 1")
        _write("/proc/self/gid_map", f"0 {gid} 1")
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    if not share_net:
        _loopback_up()
    return userns


def _loopback_up() -> None:
    """``ip link set lo up`` in the new network namespace (best effort)."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, siocgifflags, ifreq))[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH14x", b"lo", flags | iff_up))


def setup_dev(devices: Sequence[DevNode]) -> None:
    """A private tmpfs ``/dev`` (as root): the usual nodes, pts, shm, and ``devices``.

    The host's ``/dev`` stays reachable through an O_PATH descriptor while it is covered,
    so its ``pts`` can be bind mounted (the command's terminal lives there).
    """
    host = os.open("/dev", os.O_PATH | os.O_DIRECTORY)
    try:
        mount("fakesysfs-dev", "/dev", "tmpfs", MS_NOSUID, "mode=755")
        for name, major, minor, mode in DEV_NODES:
            os.mknod(f"/dev/{name}", stat.S_IFCHR | mode, os.makedev(major, minor))
            os.chmod(f"/dev/{name}", mode)  # mknod honours the umask
        for name, target in DEV_LINKS:
            os.symlink(target, f"/dev/{name}")
        # What the simulated kernel log is bound onto (bind_proc_files); never the host's node.
        os.close(os.open("/dev/kmsg", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        os.mkdir("/dev/pts", 0o755)
        os.mkdir("/dev/shm")
        _mount_pts_and_shm(host)
    finally:
        os.close(host)
    for node in devices:
        node.create()


def _mount_pts_and_shm(host_dev: int) -> None:
    with contextlib.suppress(OSError):  # no devpts on the host: no terminals inside
        mount(f"/proc/self/fd/{host_dev}/pts", "/dev/pts", None, MS_BIND)
    mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")


def setup_devfs_mounts(host_dev: int) -> None:
    """User namespaces: over the FUSE ``/dev`` (``DevTree``), bind the host's nodes onto its empty
    files (mknod is refused, and a FUSE device node could not be opened: nodev), then pts
    and shm. ``host_dev`` is an O_PATH descriptor of the host's ``/dev``."""
    for name, *_ in DEV_NODES:
        source = f"/proc/self/fd/{host_dev}/{name}"
        if os.path.exists(source):
            mount(source, f"/dev/{name}", None, MS_BIND)
    _mount_pts_and_shm(host_dev)


def setup_run() -> None:
    """A private tmpfs ``/run`` with ``/run/udev/control``, so libudev monitors join their
    netlink group although ``/dev`` is not devtmpfs and no udevd runs (docs/clients.md)."""
    mount("fakesysfs-run", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=755")
    os.mkdir("/run/udev", 0o755)
    os.close(os.open("/run/udev/control", os.O_WRONLY | os.O_CREAT, 0o644))
    os.mkdir("/run/lock")
    os.chmod("/run/lock", 0o1777)
    os.makedirs(STAGING, 0o755)
    os.makedirs(KMSG_STAGING, 0o755)
    os.mkdir("/run/modprobe.d", 0o755)
    with open(MODPROBE_CONF, "w") as f:
        f.write(modprobe_conf())


#: libkmod reads /run/modprobe.d (kmod's default configuration directories): the namespace's
#: private /run, so the host's modprobe never sees it.
MODPROBE_CONF = "/run/modprobe.d/fakesysfs.conf"


def modprobe_conf() -> str:
    """``install`` and ``remove`` commands for the simulated modules: libkmod runs a
    module's install command instead of loading it (kmod_module_probe_insert_module;
    modprobe, daxctl's libkmod), so ``modprobe kmem`` loads the simulated kmem through
    ``kernel/debug/fakesysfs/modules/load`` and never asks the host's kernel (whose
    init_module COMMAND could not call anyway: CAP_SYS_MODULE is dropped)."""
    lines = ["# fakesysfs run: the simulated machine's modules (docs/proc.md \"Modules\")\n"]
    for name in MODULE_SIZES:
        lines.append(f"install {name} echo {name} > /sys/kernel/debug/fakesysfs/modules/load\n")
        lines.append(f"remove {name} echo {name} > /sys/kernel/debug/fakesysfs/modules/unload\n")
    return "".join(lines)


#: What of COMMAND's /proc would change the host kernel if written (its sysctls, SysRq, IRQ
#: affinities, the bus and filesystem knobs): bound read-only, as Docker and LXC do.
PROC_READONLY = ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs")


def bind_proc_files() -> None:
    """In COMMAND's mount namespace, once its /proc is mounted: each simulated /proc file of
    the daemon's staging mount is bound over its /proc entry, as LXCFS's mount hook does (an
    entry this kernel lacks is skipped), and the simulated log over /dev/kmsg where /dev has
    an entry for it; the staging mount then leaves this namespace. The rest of /proc stays
    the kernel's (docs/proc.md), read-only where it reaches the host kernel (``PROC_READONLY``)."""
    for path in PROC_READONLY:
        # COMMAND's uid is the host's root (identity map): kernel/sysctl.c sysctl_perm() checks
        # the uid, not a capability, so /proc/sys/vm/swappiness and the like would write the
        # host's kernel. Read-only binds, as container runtimes make them; the simulated
        # files bound below stay writable (their own mounts).
        if os.path.lexists(path):
            mount(path, path, None, MS_BIND | MS_REC)
            mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for name in PROC_FILES:
        target = f"/proc/{name}"
        if os.path.exists(target):
            mount(f"{STAGING}/proc/{name}", target, None, MS_BIND)
    if os.path.lexists("/dev/kmsg"):
        mount(f"{KMSG_STAGING}/kmsg", "/dev/kmsg", None, MS_BIND)
    umount(STAGING, MNT_DETACH)
    umount(KMSG_STAGING, MNT_DETACH)


# -- store log ---------------------------------------------------------------------------------
def store_tracer(fd: int) -> Callable[[str, bytes, int], None]:
    """One JSON line per store: path below /sys (a sysctl write: ``/proc/sys/vm/NAME``), the
    bytes (latin-1), errno and its name."""

    def trace(path: str, data: bytes, err: int) -> None:
        record = {
            "path": path,
            "data": data.decode("latin-1"),
            "errno": err,
            "error": errno.errorcode.get(err) if err else None,
        }
        with contextlib.suppress(OSError):
            os.write(fd, (json.dumps(record) + "\n").encode())

    return trace


def read_trace(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records a ``--trace`` file holds, oldest first (``data`` as bytes)."""
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                record["data"] = record["data"].encode("latin-1")
                records.append(record)
    return records


# -- a FUSE /dev for user namespaces -------------------------------------------------------------
def start_devfs(devfs: Tree, mountpoint: str = "/dev", *, allow_other: bool = True,
                threads: bool | int = False) -> None:
    """Serve ``devfs`` (or another tree: the /proc files, /dev/kmsg) at ``mountpoint``
    through the FUSE adapter, from a thread; return once it is mounted. ``threads``: a
    multi-threaded loop (a number: of at most that many threads)."""
    from .fuse_adapter import serve

    ready = threading.Event()
    errors: list[BaseException] = []

    def serving() -> None:
        try:
            serve(devfs, mountpoint, foreground=True, allow_other=allow_other, ready_callback=ready.set,
                  threads=threads)
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)
            ready.set()

    threading.Thread(target=serving, name=f"fuse {mountpoint}", daemon=True).start()
    if not ready.wait(SETUP_TIMEOUT) or errors:
        raise NamespaceError(f"cannot serve {mountpoint}: {errors[0] if errors else 'timeout'}")


# -- processes ----------------------------------------------------------------------------------
def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def wait_forwarding(pid: int, *, reap_others: Callable[[int, int], None] | None = None, raw: bool = False) -> int:
    """Wait for ``pid`` with FORWARDED signals blocked, passing each one sent to this process
    on to ``pid``; returns its exit code (128 + N when killed by signal N).

    ``reap_others``: also reap any other child (pid, status), for a process whose children
    are all its own (the keeper). Otherwise only ``pid`` is waited for. ``raw``: return the
    wait status instead.
    """
    code = (lambda status: status) if raw else _exit_code
    while True:
        if reap_others is None:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return code(status)
        else:
            while True:
                try:
                    done, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    done, status = 0, 0
                if not done:
                    break
                if done == pid:
                    return code(status)
                reap_others(done, status)
        info = signal.sigtimedwait(_WAITED, 1.0)
        if info is None or info.si_signo == signal.SIGCHLD:
            continue
        if info.si_code == SI_KERNEL:
            continue  # the terminal signalled the whole foreground group, COMMAND included
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, info.si_signo)


def _children() -> set[int]:
    """Direct children of this (single-threaded) process."""
    me = os.getpid()
    try:
        with open(f"/proc/self/task/{me}/children") as f:
            return {int(p) for p in f.read().split()}
    except OSError:
        pass
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == me:
                    found.add(int(entry))
    return found


def _end_leftovers(keep: set[int]) -> None:
    """SIGTERM, then SIGKILL, every child (the keeper is a subreaper) not in ``keep``."""
    deadline = time.monotonic() + GRACE
    sent_term: set[int] = set()
    while True:
        with contextlib.suppress(ChildProcessError):
            while (pid := os.waitpid(-1, os.WNOHANG)[0]) > 0:
                pass
        left = _children() - keep
        if not left:
            return
        sig = signal.SIGKILL if time.monotonic() > deadline else signal.SIGTERM
        for pid in left:
            if sig == signal.SIGKILL or pid not in sent_term:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
                sent_term.add(pid)
        time.sleep(0.02)
        if time.monotonic() > deadline + 5 * GRACE:
            return


def _stop_daemon(pid: int) -> None:
    """Unmount /sys (the daemon's loop then ends, and libfuse sees the connection gone and
    leaves the mount table alone); SIGKILL it if it does not exit within GRACE. The rest
    (a FUSE /dev included: it ends with the daemon's process) goes with the namespace."""
    with contextlib.suppress(OSError):
        umount("/sys", MNT_DETACH)
    deadline = time.monotonic() + GRACE
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        time.sleep(0.01)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _close_fds(keep: set[int]) -> None:
    for fd in map(int, os.listdir("/proc/self/fd")):
        if fd > 2 and fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def _daemon_main(kernel: Kernel, tree: Tree, ready_fd: int, options: RunOptions,
                 devfs: DevTree | None) -> int:
    """Serve the tree at /sys; devtmpfs on the side. Reports "ok" or "error: ..." on ready_fd."""
    from .fuse_adapter import serve

    os.setsid()  # the terminal's ^C is for COMMAND
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    log_fd = options.log_fd if options.log_fd is not None else null
    keep = {ready_fd, log_fd} | {fd for fd in (options.trace_fd,) if fd is not None}
    _close_fds(keep)

    if devfs is None:
        kernel.events.subscribe(Devtmpfs(DevNode.create, DevNode.remove))
    else:
        kernel.events.subscribe(Devtmpfs(devfs.add, devfs.remove))
    if options.trace_fd is not None:
        tree.store_tracers.append(store_tracer(options.trace_fd))

    reported = False
    stop_events: list[Callable[[], None]] = []

    def ready() -> None:
        # /sys is live. The /proc files go up next, at their staging mountpoint, then a FUSE
        # /dev, not before: libfuse opened /dev/fuse for /sys through the host's /dev, which
        # the FUSE /dev is about to cover.
        nonlocal reported
        from ._fuse import claim_signal_handlers, request_interrupted

        try:
            staging = build_staging_tree(kernel)
            if options.watch_proc is not None:
                options.watch_proc(staging)
            if options.trace_fd is not None:
                staging.store_tracers.append(store_tracer(options.trace_fd))
            start_devfs(staging, STAGING)
            start_devfs(build_kmsg_tree(kernel, request_interrupted), KMSG_STAGING, threads=KMSG_MAX_THREADS)
            if devfs is not None:
                start_devfs(devfs)
        except NamespaceError as exc:
            os.write(ready_fd, f"error: {exc}\n".encode())
            os.close(ready_fd)
            os.kill(os.getpid(), signal.SIGTERM)  # libfuse's handler ends the loop
            return
        finally:
            claim_signal_handlers()  # a signal ends /sys (and the process), not only /dev
        # Control socket, udev rules, libudev netlink messages (fakesysfs/udevd.py, netlink.py; imported
        # at the top, before unshare(), so it knows the network namespace we started in).
        stop_events.append(start_event_services(kernel, rules=options.rules, netlink=not options.share_net,
                                                control_ops=options.control_ops, tree=tree))
        reported = True
        os.write(ready_fd, b"ok\n")
        os.close(ready_fd)
        os.dup2(log_fd, 2)
        if options.log_fd is not None and options.on_log_file is not None:
            options.on_log_file()

    try:
        if serve(tree, "/sys", foreground=True, allow_other=True, ready_callback=ready) == "signal":
            return DAEMON_SIGNALLED
    except (MountError, OSError, ImportError) as exc:
        if not reported:
            os.write(ready_fd, f"error: {exc}\n".encode())
        else:
            log.error("%s", exc)
        return 1
    finally:
        for stop in stop_events:
            stop()
    return 0


#: The daemon's status when a signal (libfuse's handlers: SIGTERM, SIGINT, SIGHUP) ended it.
DAEMON_SIGNALLED = 3


def _read_report(fd: int, what: str, timeout: float = SETUP_TIMEOUT) -> None:
    """Wait for "ok" or "error: ..." on ``fd``; raise NamespaceError for anything else."""
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise NamespaceError(f"{what} did not report ready within {timeout:.0f} s")
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    text = data.decode(errors="replace").strip()
    if text == "ok":
        return
    if text.startswith("error: "):
        raise NamespaceError(text.removeprefix("error: "))
    raise NamespaceError(f"{what} exited before reporting ready")


def _start_daemon(kernel: Kernel, tree: Tree, options: RunOptions, devfs: DevTree | None) -> int:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(read_end)
            status = _daemon_main(kernel, tree, write_end, options, devfs)
        except BaseException as exc:  # noqa: BLE001
            with contextlib.suppress(BaseException):
                os.write(write_end, f"error: {exc}\n".encode())
        finally:
            os._exit(status)
    os.close(write_end)
    try:
        _read_report(read_end, "the fakesysfs daemon")
    except NamespaceError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    finally:
        os.close(read_end)
    return pid


def _exec_command(argv: Sequence[str], env: dict[str, str]) -> None:
    """In the forked child: restore signals and exec; 127/126 with one line on failure."""
    try:
        for sig in FORWARDED:
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        os.execvpe(argv[0], list(argv), env)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.write(2, f"fakesysfs: error: cannot run {argv[0]}: {exc.strerror}\n".encode())
        os._exit(127 if exc.errno == errno.ENOENT else 126)
    finally:
        os._exit(127)


#: Capabilities that act only on the host's kernel, dropped from COMMAND's bounding set:
#: ``fakesysfs run``'s status when it, not COMMAND, failed while COMMAND ran (the daemon
#: died, the keeper was killed); the convention of env(1), nice(1), docker run.
RUN_FAILED = 125


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def _describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {_signal_name(os.WTERMSIG(status))}"
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
    if code == DAEMON_SIGNALLED:
        return "was stopped by a signal (libfuse ended its loop and unmounted /sys)"
    if code == 0:
        return "exited: /sys was unmounted under it"
    return f"exited with status {code} (see --log-file)"


def _write_id_maps(pid: int) -> None:
    """Map every ID this process has onto itself in ``pid``'s new user namespace: COMMAND
    stays root (uid 0 is uid 0), its files are ours, but its capabilities end at its user
    namespace. Written by us: a process cannot map more than its own ID into its new one."""
    for name in ("uid_map", "gid_map"):
        with open(f"/proc/self/{name}", encoding="ascii") as f:
            ranges = [line.split() for line in f if line.strip()]
        _write(f"/proc/{pid}/{name}", "".join(f"{inner} {inner} {count}\n" for inner, _, count in ranges))


def _init_main(argv: Sequence[str], env: dict[str, str], report_fd: int, go_fd: int) -> int:
    """PID 1 of COMMAND's PID namespace: seal, run COMMAND, end what it leaves behind.

    In a new mount namespace it mounts a /proc of its own PID namespace (PIDs as COMMAND
    sees them) and empties the module directories, then enters a new user and mount
    namespace. Every mount it sees is thereby locked (fs/namespace.c copy_mnt_ns ->
    lock_mnt_tree: a mount namespace owned by a less privileged user namespace can neither
    unmount what covers the host's /sys, /dev and /run nor make their read-only copies
    writable), and a new sysfs cannot be mounted (sysfs_get_tree: the network namespace is
    not its user namespace's). When the keeper dies, PDEATHSIG kills this init and with it
    (zap_pid_ns_processes) everything COMMAND started.
    """
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    unshare(CLONE_NEWNS)
    try:
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except OSError as exc:  # a user namespace whose /proc has locked overmounts (containers)
        os.write(2, f"fakesysfs: warning: /proc shows the host's process IDs ({exc.strerror})\n".encode())
    bind_proc_files()
    _hide_modules()
    try:
        unshare(CLONE_NEWUSER | CLONE_NEWNS)
    except OSError as exc:
        raise NamespaceError(
            f"cannot create a user namespace for {argv[0]} ({exc.strerror}), which seals it off the host's "
            "kernel: allow user namespaces (sysctl user.max_user_namespaces > 0; in a container, a seccomp "
            "profile that allows unshare)"
        ) from None
    os.write(report_fd, b"ok\n")
    os.close(report_fd)
    if os.read(go_fd, 1) != b"g":
        return 1  # the keeper died before mapping our IDs
    os.close(go_fd)
    _drop_host_only_caps()
    command = os.fork()
    if command == 0:
        _exec_command(argv, env)
    status = wait_forwarding(command, reap_others=lambda _pid, _st: None)
    _end_namespace()
    return status


def _end_namespace() -> None:
    """In the PID namespace's init: SIGTERM everything left, SIGKILL after GRACE."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(-1, signal.SIGTERM)
    deadline = time.monotonic() + GRACE
    while time.monotonic() < deadline:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                time.sleep(0.01)
        except ChildProcessError:
            return
    with contextlib.suppress(ProcessLookupError):
        os.kill(-1, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        while True:
            os.waitpid(-1, 0)


def _start_command(argv: Sequence[str], env: dict[str, str], report_fd: int) -> int:
    """Fork COMMAND's init (``_init_main``) into a new PID namespace; returns its PID once
    it is sealed and its IDs are mapped. Raises NamespaceError in one line otherwise."""
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    unshare(CLONE_NEWPID)  # our next child is PID 1 of a new PID namespace
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(ready_r)
            os.close(go_w)
            os.close(report_fd)
            status = _init_main(argv, env, ready_w, go_r)
        except BaseException as exc:  # noqa: BLE001
            what = exc if isinstance(exc, NamespaceError) else f"cannot seal {argv[0]}'s namespace: {exc}"
            with contextlib.suppress(BaseException):
                os.write(ready_w, f"error: {what}\n".encode())
        finally:
            os._exit(status)
    os.close(ready_w)
    os.close(go_r)
    try:
        _read_report(ready_r, "COMMAND's namespace")
        _write_id_maps(pid)
        os.write(go_w, b"g")
    except (OSError, NamespaceError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        raise
    finally:
        os.close(ready_r)
        os.close(go_w)
    return pid


def _keeper_main(kernel: Kernel, tree: Tree, argv: Sequence[str], options: RunOptions, report_fd: int) -> int:
    """The namespace's first process: set up, run COMMAND, tear down.

    The daemon must outlive COMMAND: if it dies first, COMMAND's whole PID namespace is
    killed and the keeper says why, with status RUN_FAILED.
    """
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    os.umask(0o022)
    if options.pin_cpu is not None:
        os.sched_setaffinity(0, {options.pin_cpu})
    try:
        userns = enter_namespace(share_net=options.share_net, userns=options.userns)
        seal_host_mounts()
        devices = tree_devices(tree)
        devfs = DevTree(devices) if userns else None
        if devfs is None:
            setup_dev(devices)
        setup_run()
        host_dev = os.open("/dev", os.O_PATH | os.O_DIRECTORY)
        try:
            daemon = _start_daemon(kernel, tree, options, devfs)
            if devfs is not None:
                setup_devfs_mounts(host_dev)
        finally:
            os.close(host_dev)
        env = dict(os.environ)
        env["SYSTEMD_DEVICE_VERIFY_SYSFS"] = "0"
        env.update(options.env)
        init = _start_command(argv, env, report_fd)
    except (OSError, NamespaceError) as exc:
        os.write(report_fd, f"error: {exc}\n".encode())
        return 1
    os.write(report_fd, b"ok\n")
    os.close(report_fd)
    died: list[int] = []

    def reap(pid: int, status: int) -> None:
        if pid == daemon and not died:
            died.append(status)
            with contextlib.suppress(ProcessLookupError):
                os.kill(init, signal.SIGKILL)  # and so everything in its PID namespace

    status = wait_forwarding(init, reap_others=reap)
    _end_leftovers({daemon})
    if died:
        with contextlib.suppress(OSError):
            os.write(2, (f"fakesysfs: error: the fakesysfs daemon {_describe_exit(died[0])} while "
                         f"{argv[0]} ran; {argv[0]} and everything it started were killed\n").encode())
        return RUN_FAILED
    _stop_daemon(daemon)
    return status


# -- entry point ----------------------------------------------------------------------------------
def run(kernel: Kernel, tree: Tree, argv: Sequence[str], options: RunOptions | None = None) -> int:
    """Run ``argv`` in a private namespace with ``tree`` at /sys; returns its exit code.

    Raises NamespaceError (one line) when the namespace or a mount cannot be set up. The
    calling process stays where it is: a forked keeper enters the namespace.
    """
    if not argv:
        raise ValueError("no command")
    options = options if options is not None else RunOptions()
    from . import _fuse  # noqa: F401  (load libfuse before forking: an ImportError is the caller's)

    sys.stdout.flush()
    sys.stderr.flush()
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _WAITED)
    try:
        read_end, write_end = os.pipe()
        keeper = os.fork()
        if keeper == 0:
            status = 1
            try:
                os.close(read_end)
                status = _keeper_main(kernel, tree, argv, options, write_end)
            except BaseException as exc:  # noqa: BLE001
                with contextlib.suppress(BaseException):
                    os.write(write_end, f"error: {exc}\n".encode())
            finally:
                os._exit(status)
        os.close(write_end)
        try:
            _read_report(read_end, "the namespace")
        except NamespaceError:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(keeper, 0)
            raise
        finally:
            os.close(read_end)
        status = wait_forwarding(keeper, raw=True)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    if os.WIFSIGNALED(status):  # SIGKILL: its PDEATHSIGs took the daemon and COMMAND along
        print(f"fakesysfs: error: the namespace keeper was killed by {_signal_name(os.WTERMSIG(status))} while "
              f"{argv[0]} ran; {argv[0]} and everything it started were killed", file=sys.stderr)
        return RUN_FAILED
    return _exit_code(status)
