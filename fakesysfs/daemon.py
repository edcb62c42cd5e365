"""Serving a booted machine at a mount point, as ``fakesysfs mount`` does.

In the foreground, or forked: the child serves, the parent waits on a pipe until the child
reports that libfuse has the mount live (``serve_daemon`` then returns the child's pid) or
why it could not. The child detaches from the caller's terminal once mounted; from then on
its stderr (and so its log) is the ``--log-file``, or nothing. The control socket
(``fakesysfs ctl``/``monitor``/``udev``) lives as long as the mount.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import select
import signal
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from .errors import MountError, MountpointError
from .mountpoint import DEV_FUSE

if TYPE_CHECKING:
    from .engine import Kernel
    from .harness import Harness
    from .sysfs.tree import Tree

__all__ = ["READY_TIMEOUT", "serve_daemon", "serve_foreground", "stop_on_journal_error"]

log = logging.getLogger("fakesysfs")

#: How long ``serve_daemon`` waits for the daemon to report the mount live.
READY_TIMEOUT = 30.0


def stop_on_journal_error(harness: Harness, path: str) -> None:
    """A ``--state`` mount stops serving when its state file cannot be written: it would
    otherwise show changes the state file does not have (libfuse unmounts on SIGTERM)."""

    def journal_failed(exc: OSError) -> None:
        log.critical("cannot write the state file %s (%s): stopping the mount", path, exc.strerror or exc)
        os.kill(os.getpid(), signal.SIGTERM)

    harness.on_journal_error = journal_failed


def _named(message: str, mountpoint: str) -> str:
    """libfuse's messages name what it was handed: ``/dev/fd/N`` is the mount point."""
    return re.sub(r"/dev/fd/\d+", lambda _: mountpoint, message)


@contextlib.contextmanager
def _proc_served(kernel: Kernel | None, harness: Harness | None, proc: tuple[str, int] | None,
                 allow_other: bool, dev_fuse: str) -> Iterator[None]:
    """``mount --proc DIR``: the simulated /proc files (fakesysfs/procfs.py) served at DIR
    (the checked directory ``proc[1]``) from a thread of this process, through the same
    adapter, while the /sys mount is; unmounted with it. With a harness, its ``proc_tree``:
    sysctl writes are traced and journaled like stores to /sys."""
    if proc is None or kernel is None:
        yield
        return
    from .mountpoint import mount_on, unmount
    from .procfs import build_proc_tree
    from .run import NamespaceError, start_devfs

    mountpoint, dir_fd = proc
    with mount_on(dir_fd, mountpoint, allow_other, dev_fuse=dev_fuse) as placed:
        try:
            tree = harness.proc_tree if harness is not None else build_proc_tree(kernel)
            start_devfs(tree, placed.where, allow_other=allow_other)
        except NamespaceError as exc:
            raise MountError(_named(str(exc), mountpoint)) from None
        try:
            yield
        finally:
            if placed.fuse_mount is None:  # libfuse mounted it by path: unmount it the same way
                unmount(mountpoint, lazy=True)


@contextlib.contextmanager
def _serving(tree: Tree, kernel: Kernel | None, harness: Harness | None, dir_fd: int, mountpoint: str,
             allow_other: bool, dev_fuse: str, proc: tuple[str, int] | None = None) -> Iterator[str]:
    """The control socket, the ``--proc`` files and the mount made on the checked directory
    ``dir_fd`` (fakesysfs/mountpoint.py ``mount_on``); yields what to hand ``serve``."""
    from .control import serving_or_warn
    from .mountpoint import mount_on

    ops = harness.register_control if harness is not None else None
    control = serving_or_warn(kernel, ops=ops, tree=tree) if kernel is not None else contextlib.nullcontext()
    with (control, _proc_served(kernel, harness, proc, allow_other, dev_fuse),
          mount_on(dir_fd, mountpoint, allow_other, dev_fuse=dev_fuse) as placed):
        yield placed.where


def serve_foreground(tree: Tree, mountpoint: str, *, allow_other: bool, kernel: Kernel | None,
                     harness: Harness | None, dir_fd: int, ready: Callable[[], None],
                     dev_fuse: str = DEV_FUSE, fuse_debug: bool = False,
                     proc: tuple[str, int] | None = None) -> None:
    """Serve in this process until unmounted or signalled; ``ready`` runs once the mount is
    live. Raises MountError, MountpointError."""
    from .fuse_adapter import serve

    try:
        with _serving(tree, kernel, harness, dir_fd, mountpoint, allow_other, dev_fuse, proc) as where:
            serve(tree, where, foreground=True, allow_other=allow_other, ready_callback=ready, debug=fuse_debug)
    except MountError as exc:
        raise MountError(_named(str(exc), mountpoint)) from None


def serve_daemon(tree: Tree, mountpoint: str, *, allow_other: bool, log_fd: int | None, kernel: Kernel | None,
                 harness: Harness | None, dir_fd: int, on_detach: Callable[[], None] = lambda: None,
                 dev_fuse: str = DEV_FUSE, fuse_debug: bool = False, proc: tuple[str, int] | None = None) -> int:
    """Fork the daemon and return its pid once the mount is live (as this process sees it);
    the daemon takes ``log_fd`` (the --log-file) over as its stderr and runs ``on_detach``
    then. Raises MountError (the daemon's reason), MountpointError."""
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the daemon
        status = 1
        try:
            os.close(read_end)
            status = _daemon_main(tree, mountpoint, allow_other, log_fd, write_end, kernel, harness, dir_fd,
                                  on_detach, dev_fuse, fuse_debug, proc)
        except BaseException:
            with contextlib.suppress(BaseException):
                log.exception("daemon failed")
        finally:
            os._exit(status)
    os.close(write_end)
    if log_fd is not None:
        os.close(log_fd)
    _wait_for_daemon(pid, read_end, mountpoint, dir_fd)
    return pid


def _daemon_main(tree: Tree, mountpoint: str, allow_other: bool, log_fd: int | None, report_fd: int,
                 kernel: Kernel | None, harness: Harness | None, dir_fd: int, on_detach: Callable[[], None],
                 dev_fuse: str, fuse_debug: bool, proc: tuple[str, int] | None) -> int:
    from .fuse_adapter import serve

    os.setsid()  # no SIGINT/SIGHUP from the parent's terminal
    os.chdir("/")  # do not keep the caller's directory busy
    reported = False

    def ready() -> None:
        nonlocal reported
        reported = True
        os.write(report_fd, b"ok\n")
        os.close(report_fd)
        _detach_stdio(log_fd)
        on_detach()
        log.info("serving %s (pid %d)", mountpoint, os.getpid())

    try:
        with _serving(tree, kernel, harness, dir_fd, mountpoint, allow_other, dev_fuse, proc) as where:
            serve(tree, where, foreground=True, allow_other=allow_other, ready_callback=ready, debug=fuse_debug)
    except (MountError, MountpointError, OSError) as exc:
        if reported:  # stdio is detached by now: this goes to --log-file
            log.error("%s", _named(str(exc), mountpoint))
        else:
            os.write(report_fd, f"error: {_named(str(exc), mountpoint)}\n".encode())
        return 1
    if reported:
        log.info("%s unmounted; the daemon exits", mountpoint)
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


def _wait_for_daemon(pid: int, read_end: int, mountpoint: str, dir_fd: int) -> None:
    from .mountpoint import wait_until_mounted

    message = b""
    deadline = time.monotonic() + READY_TIMEOUT
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                os.kill(pid, signal.SIGTERM)
                raise MountError(f"the daemon did not report {mountpoint} ready within {READY_TIMEOUT:.0f} s")
            readable, _, _ = select.select([pipe], [], [], remaining)
            if not readable:
                continue
            chunk = pipe.read(4096)
            if not chunk:
                break
            message += chunk
    text = message.decode(errors="replace").strip()
    if text == "ok":
        wait_until_mounted(mountpoint, dir_fd)  # this process sees it before returning
        return
    _, status = os.waitpid(pid, 0)
    if text.startswith("error: "):
        raise MountError(text.removeprefix("error: "))
    code = os.waitstatus_to_exitcode(status)
    raise MountError(f"the daemon exited (status {code}) before {mountpoint} was mounted; see the messages above")
