"""The control channel of a running mount: a unix socket beside FUSE, JSON lines.

The mount daemon starts a ``ControlServer`` (threads of the daemon process) and publishes
the socket's absolute path in the debugfs-style file ``kernel/debug/fakesysfs/control``
(mode 0400) of the mount, so any client that can see the mount can find it::

    path = open(f"{mountpoint}/kernel/debug/fakesysfs/control").read().strip()

The socket lives in a fresh 0700 directory (it goes away on unmount) below a per-user
0700 directory ``fakesysfs-<key>`` in ``$XDG_RUNTIME_DIR`` (when that is ours and 0700, as
the XDG spec says), else in ``$TMPDIR`` (see ``runtime_dir``). ``<key>`` is the caller's real
identity: the uid, and in a user namespace the uid its euid maps to outside plus the
namespace's inode (``fakesysfs-1001-userns4026532840``), so an unprivileged ``fakesysfs
run`` (root inside its namespace) never takes root's ``fakesysfs-0``. Both directories are
checked with ``fstat`` on ``O_DIRECTORY|O_NOFOLLOW`` descriptors (fakesysfs/safefile.py:
ours, mode 0700) and the socket is bound inside the checked one, so it cannot be squatted.
If ``fakesysfs-<key>`` is not usable (someone else made it first, or a symlink, or a loose
mode), the daemon says so in one warning line and uses a fresh private directory
``fakesysfs-<key>-<pid>-<random>`` beside it instead. Clients never compute any of this: they
read the path the mount publishes, so they find the socket wherever the daemon put it. A
daemon holds ``flock`` on its socket directory while it serves; the directory of one that
died without cleaning up (SIGKILL), its own ``<pid>-<random>`` below ``fakesysfs-<key>`` or a
fallback beside it, is removed by the next daemon of the same key: only if its pid is gone,
nobody holds its lock, and it is ours and 0700 (``fstat`` of an ``O_DIRECTORY|O_NOFOLLOW``
descriptor), its entries removed through that descriptor without following a link.

Protocol (UTF-8, one JSON object per line, both directions):

- Limits: a request line holds at most ``MAX_LINE`` bytes (64 KiB; a longer one is answered
  ``errno: EMSGSIZE`` and the connection closed), and at most ``MAX_CONNECTIONS`` (64)
  connections are served at once (one more is answered ``errno: EAGAIN`` and closed).
- Requests are objects with an ``"op"`` and op-specific members; an optional ``"id"`` is
  echoed in the reply. Replies are ``{"ok": true, "op": ..., ...}`` or
  ``{"ok": false, "op": ..., "error": "<what went wrong, for a person>", "errno": "EINVAL"}``
  (``errno`` only when a kernel errno applies). Unknown ops and malformed lines get an
  ``ok: false`` reply; the connection stays usable.
- ``{"op": "ping"}`` -> ``{"ok": true, "op": "ping", "version": 1, "seqnum": N}``.
- ``{"op": "subscribe", "after": SEQNUM?, "subsystems": ["memory", ...]?}`` ->
  ``{"ok": true, "op": "subscribe", "seqnum": N, "missed": M}``, then the
  connection is an event stream: one line per uevent, from the moment of attaching (or,
  with ``after``, from SEQNUM ``after + 1`` as far as the daemon still keeps them;
  ``missed`` counts the ones it no longer has)::

      {"event": "uevent", "seqnum": 7, "action": "online", "devpath": "/devices/...",
       "subsystem": "memory", "timestamp": 1764139201.25,
       "properties": {"ACTION": "online", "DEVPATH": "...", "SUBSYSTEM": "memory", "SEQNUM": "7"}}

  ``properties`` keeps the kernel's order (ACTION, DEVPATH, SUBSYSTEM, device variables,
  SEQNUM); ``timestamp`` is the emitter's wall clock. The engine never waits for a client:
  events are queued per client, and a client that falls more than ``max_queue`` events
  behind (or blocks a send for ``send_timeout`` seconds) gets a final
  ``{"ok": false, "op": "subscribe", "errno": "ENOBUFS", "error": ..., "last_seqnum": S}``
  line and is disconnected; it can reconnect with ``"after": S``.
- Later issues add ops with ``ControlServer.register(op, handler)``; a handler gets the
  request object and returns the members of its reply (it runs in the connection's
  thread, so it takes ``kernel.lock`` itself if it touches the engine). The harness ops
  (faults, hot-plug, trace, state, export, waits: fakesysfs/harness.py, ``fakesysfs ctl``)
  are registered by whoever serves a kernel with a harness (``ops=Harness.register_control``).
"""

from __future__ import annotations

import contextlib
import errno as errno_mod
import fcntl
import json
import logging
import os
import re
import select
import shutil
import socket
import stat
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Self

from .engine.events import EVENTS_KEPT, Uevent
from .errors import ControlError, KernelError

if TYPE_CHECKING:
    from .engine import Kernel
    from .sysfs.tree import Tree

__all__ = [
    "CONTROL_FILE",
    "PROTOCOL_VERSION",
    "ControlClient",
    "ControlError",
    "ControlServer",
    "event_from_json",
    "event_to_json",
    "find_control_socket",
    "identity_key",
    "runtime_dir",
    "serving",
    "serving_or_warn",
]

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
#: Where a mount publishes its socket path, relative to the mountpoint.
CONTROL_FILE = "kernel/debug/fakesysfs/control"
#: sockaddr_un.sun_path holds 108 bytes including the NUL.
_SUN_PATH_MAX = 107

#: Longest request line, newline included: a longer one gets an EMSGSIZE reply and the
#: connection is closed, without reading (or keeping) the rest.
MAX_LINE = 64 << 10
#: Connections served at once (one thread each); one more gets an EAGAIN line and is closed.
MAX_CONNECTIONS = 64
#: Events one send to a subscriber carries at most.
_BATCH = 1024

Handler = Callable[[dict[str, Any]], dict[str, Any]]
#: Registers more ops on a new ControlServer (the harness's: ``Harness.register_control``).
ServerOps = Callable[["ControlServer"], None]


# -- event encoding -------------------------------------------------------------------------------
def event_to_json(event: Uevent) -> dict[str, Any]:
    return {
        "event": "uevent",
        "seqnum": event.seqnum,
        "action": event.action,
        "devpath": event.devpath,
        "subsystem": event.subsystem,
        "timestamp": event.timestamp,
        "properties": event.properties(),
    }


def event_from_json(obj: dict[str, Any]) -> Uevent:
    props: dict[str, str] = obj["properties"]
    env = tuple((k, v) for k, v in props.items() if k not in ("ACTION", "DEVPATH", "SUBSYSTEM", "SEQNUM"))
    return Uevent(int(obj["seqnum"]), obj["action"], obj["devpath"], obj["subsystem"], env,
                  float(obj.get("timestamp", 0.0)))


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


# -- where the socket lives -----------------------------------------------------------------------
def identity_key() -> str:
    """The caller's real identity, for naming its socket directory: the euid in the initial
    user namespace; in another, the uid that euid maps to in the parent namespace
    (/proc/self/uid_map) and the namespace's inode (two namespaces never share a name, nor
    does a namespace with its owner)."""
    from .safefile import in_initial_userns

    euid = os.geteuid()
    if in_initial_userns():
        return str(euid)
    outer: int | None = None
    with contextlib.suppress(OSError, ValueError), open("/proc/self/uid_map", encoding="ascii") as f:
        for line in f:
            inside, outside, count = (int(word) for word in line.split())
            if inside <= euid < inside + count:
                outer = outside + euid - inside
                break
    ino = os.stat("/proc/self/ns/user").st_ino
    return f"{outer if outer is not None else 'unmapped'}-userns{ino}"


def runtime_dir() -> str:
    """The per-user base directory for control sockets (created 0700 on first use):
    ``$XDG_RUNTIME_DIR/fakesysfs-<key>`` if $XDG_RUNTIME_DIR is ours and 0700, else
    ``$TMPDIR/fakesysfs-<key>`` (``identity_key``).

    Not ``/run/fakesysfs`` for root: a test machine's /run belongs to its host, and
    ``fakesysfs run`` gives each namespace a private /run anyway (set XDG_RUNTIME_DIR=/run
    to get /run/fakesysfs-0 deliberately). An $XDG_RUNTIME_DIR that is not ours (``sudo``
    keeps the invoking user's) is skipped."""
    name = f"fakesysfs-{identity_key()}"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isabs(xdg):
        with contextlib.suppress(OSError):
            st = os.stat(xdg)
            if st.st_uid == os.geteuid() and stat.S_ISDIR(st.st_mode) and not st.st_mode & 0o077:
                return os.path.join(xdg, name)
    return os.path.join(tempfile.gettempdir(), name)


def _socket_dir(base: str, *, fallback: bool) -> tuple[str, int, int]:
    """A fresh 0700 directory ``<pid>-<random>`` for one daemon's socket below the private
    directory ``base``: (its path, a descriptor of it, locked, a descriptor of ``base`` or
    -1). A ``base`` that is not ours and 0700 is refused (UnsafeFileError) or, with
    ``fallback``, replaced by a fresh private directory ``<base>-<pid>-<random>`` beside it,
    with a warning. Directories of daemons that died without cleaning up are removed
    first (``_remove_stale``)."""
    from .safefile import (
        UnsafeFileError,
        fresh_private_dir,
        open_checked_dir,
        private_dir,
    )

    try:
        base_fd = private_dir(base)
    except UnsafeFileError as exc:
        if not fallback:
            raise
        parent, name = os.path.split(base)
        parent_fd = open_checked_dir(parent)
        try:
            _remove_stale(parent_fd, re.compile(re.escape(name) + _STALE_NAME))
            fresh, fd = fresh_private_dir(parent_fd, f"{name}-{os.getpid()}-")
        finally:
            os.close(parent_fd)
        _lock(fd)
        log.warning("not using %s (%s); the control socket is in %s instead", base, exc.strerror,
                    os.path.join(parent, fresh))
        return os.path.join(parent, fresh), fd, -1
    try:
        _remove_stale(base_fd, re.compile(_STALE_NAME.removeprefix("-")))
        sub, fd = fresh_private_dir(base_fd, f"{os.getpid()}-")
    except BaseException:
        os.close(base_fd)
        raise
    _lock(fd)
    return os.path.join(base, sub), fd, base_fd


#: What follows the prefix in the name of a daemon's socket directory: ``-<pid>-<random>``
#: (safefile.fresh_private_dir adds 12 hex digits).
_STALE_NAME = r"-(\d+)-[0-9a-f]{12}"
#: Levels below a socket directory removed (it holds one socket; anything deeper is not ours).
_STALE_DEPTH = 2


def _lock(fd: int) -> None:
    """Hold ``flock`` on our socket directory while it is in use (the descriptor stays open
    until ``close``): a daemon in another PID namespace, whose pid means nothing here, still
    keeps its directory from being taken for stale."""
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _remove_stale(parent_fd: int, pattern: re.Pattern[str]) -> None:
    """Remove the socket directories (names matching ``pattern``, group 1 the pid) of
    daemons that died without cleaning up (SIGKILL): the pid is gone, the directory is ours
    and 0700 (fstat of an O_DIRECTORY|O_NOFOLLOW descriptor) and nobody holds its lock. Its
    entries are removed through that descriptor, never following a link."""
    try:
        names = os.listdir(parent_fd)
    except OSError:
        return
    for name in names:
        match = pattern.fullmatch(name)
        if match is None or int(match.group(1)) == os.getpid() or _alive(int(match.group(1))):
            continue
        try:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if st.st_uid != os.geteuid() or stat.S_IMODE(st.st_mode) != 0o700:
                continue  # not ours: not ours to judge
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held: alive in another PID namespace
            _empty_dir(fd, _STALE_DEPTH)
            there = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
            if os.path.samestat(there, st):
                os.rmdir(name, dir_fd=parent_fd)
        except OSError:
            continue
        finally:
            os.close(fd)


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a running process: not gone, and not a zombie (a daemon killed
    after its parent exited stays one until its reaper gets to it; its descriptors, and so
    its lock, are gone already)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process (EPERM): alive
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]  # fs/proc/array.c do_task_stat
    except (OSError, IndexError):
        return True
    return state not in (b"Z", b"X")


def _empty_dir(fd: int, depth: int) -> None:
    """Remove what is in the directory open on ``fd``, down to ``depth`` levels, through
    descriptors (O_NOFOLLOW): a link is unlinked, never followed. OSError if something stays."""
    for name in os.listdir(fd):
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(name, dir_fd=fd)
            continue
        if depth <= 1:
            raise OSError(errno_mod.ENOTEMPTY, "nested too deeply to be a socket directory", name)
        sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        try:
            if not os.path.samestat(os.fstat(sub), st):
                raise OSError(errno_mod.EAGAIN, "replaced while being removed", name)
            _empty_dir(sub, depth - 1)
        finally:
            os.close(sub)
        os.rmdir(name, dir_fd=fd)


def find_control_socket(mountpoint: str | os.PathLike[str]) -> str:
    """The control socket of the fakesysfs mount at ``mountpoint``; ControlError if none."""
    path = os.path.join(os.fspath(mountpoint), CONTROL_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ControlError(
            f"{mountpoint} has no {CONTROL_FILE}: it is not a fakesysfs mount, or one served without "
            "a control socket (mounted by an old fakesysfs, or in-process without ControlServer)"
        ) from None
    except PermissionError:
        raise ControlError(f"cannot read {path} (mode 0400): run as the user who mounted {mountpoint}") from None
    except OSError as exc:
        if exc.errno == errno_mod.ENOTCONN:
            raise ControlError(f"{mountpoint} is a FUSE mount whose daemon is gone") from None
        raise ControlError(f"cannot read {path}: {exc.strerror or exc}") from None
    return text.strip()


# -- the server -----------------------------------------------------------------------------------
class _Subscription:
    """One client's event queue; ``offer`` runs in the emitting thread under the engine lock,
    so it only appends (never blocks, never touches the socket)."""

    __slots__ = ("cond", "dropped_after", "last_sent", "max_queue", "queue", "stopped", "subsystems", "unsubscribe")

    def __init__(self, subsystems: frozenset[str] | None, max_queue: int) -> None:
        self.subsystems = subsystems
        self.max_queue = max_queue
        self.queue: deque[Uevent] = deque()
        self.cond = threading.Condition(threading.Lock())
        self.dropped_after: int | None = None  # SEQNUM before the first dropped event
        self.stopped = False
        self.last_sent = 0
        self.unsubscribe: Callable[[], None] = lambda: None

    def offer(self, event: Uevent) -> None:
        if self.subsystems is not None and event.subsystem not in self.subsystems:
            return
        with self.cond:
            if self.dropped_after is not None or self.stopped:
                return
            if len(self.queue) >= self.max_queue:
                self.dropped_after = event.seqnum - 1
            else:
                self.queue.append(event)
            self.cond.notify()

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify()

    def take(self) -> list[Uevent] | None:
        """Queued events, at most ``_BATCH`` (blocking until there are some); None once
        stopped or overflowed and drained."""
        with self.cond:
            while not self.queue and not self.stopped and self.dropped_after is None:
                self.cond.wait()
            if self.queue:
                queue = self.queue
                return [queue.popleft() for _ in range(min(len(queue), _BATCH))]
            return None


class ControlServer:
    """Serves the control protocol for one ``Kernel`` on a unix socket (see module doc)."""

    def __init__(self, kernel: Kernel, directory: str | None = None, *, max_queue: int = EVENTS_KEPT,
                 send_timeout: float = 10.0, max_connections: int = MAX_CONNECTIONS,
                 ops: ServerOps | None = None) -> None:
        self.kernel = kernel
        self.max_queue = max_queue
        self.max_connections = max_connections
        self.send_timeout = send_timeout
        self._base = directory
        self._dir: str | None = None
        self._dir_base = ""  # the per-user directory self._dir is in ("": none, a fallback)
        self._dir_fd = -1  # self._dir, open and locked while in use (_lock)
        self.path = ""
        self._sock: socket.socket | None = None
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self._subs: set[_Subscription] = set()
        self._lock = threading.Lock()
        self._closing = False
        self._handlers: dict[str, Handler] = {"ping": self._op_ping}
        if ops is not None:
            ops(self)

    # -- life cycle -----------------------------------------------------------------------------
    def start(self) -> str:
        """Create the socket, start accepting; returns the socket path. OSError (an
        UnsafeFileError names the directory) if there is no safe place for it."""
        fallback = self._base is None  # a directory the caller chose is used or refused
        base = self._base if self._base is not None else runtime_dir()
        directory, dir_fd, base_fd = _socket_dir(base, fallback=fallback)
        path = os.path.join(directory, "control")
        if len(path.encode()) > _SUN_PATH_MAX:  # a deep $XDG_RUNTIME_DIR or tmp dir
            self._remove_dir(directory, dir_fd, base_fd)
            directory, dir_fd, base_fd = _socket_dir(os.path.join("/tmp", f"fakesysfs-{identity_key()}"),
                                                     fallback=True)
            path = os.path.join(directory, "control")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            # Bound through the checked directory's descriptor: whatever its path resolves
            # to by now, the socket lands in the directory whose owner and mode were checked.
            sock.bind(f"/proc/self/fd/{dir_fd}/control")
            os.chmod("control", 0o600, dir_fd=dir_fd)
            sock.listen(16)
        except OSError:
            sock.close()
            self._remove_dir(directory, dir_fd, base_fd)
            raise
        if base_fd >= 0:
            os.close(base_fd)
        self._dir, self.path, self._sock, self._dir_fd = directory, path, sock, dir_fd
        self._dir_base = os.path.dirname(directory) if base_fd >= 0 else ""
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC)
        self._thread = threading.Thread(target=self._accept_loop, name="fakesysfs-control", daemon=True)
        self._thread.start()
        return path

    def close(self) -> None:
        """Stop accepting, end every connection and subscription, remove the socket."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            conns, subs = list(self._conns), list(self._subs)
        if self._wake_w >= 0:
            os.write(self._wake_w, b"x")
        for sub in subs:
            sub.stop()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(5)
        if self._sock is not None:
            self._sock.close()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            if self._dir_fd >= 0:
                os.close(self._dir_fd)
                self._dir_fd = -1
            if self._base is None and "-userns" in self._dir_base:
                # A user namespace's base dies with it: leave no empty directory behind.
                with contextlib.suppress(OSError):
                    os.rmdir(self._dir_base)

    @staticmethod
    def _remove_dir(directory: str, dir_fd: int, base_fd: int) -> None:
        """Undo ``_socket_dir`` (the directory is still empty but for a socket)."""
        with contextlib.suppress(OSError):
            os.unlink("control", dir_fd=dir_fd)
        os.close(dir_fd)
        if base_fd >= 0:
            with contextlib.suppress(OSError):
                os.rmdir(os.path.basename(directory), dir_fd=base_fd)
            os.close(base_fd)
        else:
            with contextlib.suppress(OSError):
                os.rmdir(directory)

    def __enter__(self) -> Self:
        if not self.path:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def register(self, op: str, handler: Handler) -> None:
        """Add a request type (``subscribe`` is built in and cannot be replaced)."""
        if op == "subscribe":
            raise ValueError("'subscribe' is built in")
        self._handlers[op] = handler

    # -- connections ----------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        assert self._sock is not None
        while True:
            try:
                watched: list[socket.socket | int] = [self._sock, self._wake_r]
                ready, _, _ = select.select(watched, [], [])
            except (OSError, ValueError):
                return
            if self._wake_r in ready or self._closing:
                return
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            with self._lock:
                if self._closing:
                    conn.close()
                    return
                full = len(self._conns) >= self.max_connections
                if not full:
                    self._conns.add(conn)
            if full:  # refused from this thread, never blocking it
                with contextlib.suppress(OSError):
                    conn.setblocking(False)
                    conn.send(_line({"ok": False, "op": None, "errno": "EAGAIN",
                                     "error": f"too many connections (at most {self.max_connections}); try again"}))
                conn.close()
                continue
            threading.Thread(target=self._serve_conn, args=(conn,), name="fakesysfs-control-conn",
                             daemon=True).start()

    def _serve_conn(self, conn: socket.socket) -> None:
        try:
            with conn, conn.makefile("rb") as reader:
                while raw := reader.readline(MAX_LINE + 1):
                    if len(raw) > MAX_LINE:
                        conn.sendall(_line({"ok": False, "op": None, "errno": "EMSGSIZE",
                                            "error": f"request line longer than {MAX_LINE} bytes; connection closed"}))
                        return
                    reply, stream = self._dispatch(raw)
                    if reply is not None:
                        conn.sendall(_line(reply))
                    if stream is not None:
                        self._stream(conn, stream)
                        return
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)

    def _dispatch(self, raw: bytes) -> tuple[dict[str, Any] | None, _Subscription | None]:
        try:
            request = json.loads(raw)
        except ValueError as exc:
            return {"ok": False, "op": None, "error": f"malformed request line (want one JSON object): {exc}"}, None
        if not isinstance(request, dict):
            return {"ok": False, "op": None, "error": "malformed request line: want one JSON object"}, None
        op = request.get("op")
        base: dict[str, Any] = {"op": op}
        if "id" in request:
            base["id"] = request["id"]
        try:
            if op == "subscribe":
                sub, members = self._op_subscribe(request)
                return {"ok": True, **base, **members}, sub
            handler = self._handlers.get(op) if isinstance(op, str) else None
            if handler is None:
                known = ", ".join(sorted([*self._handlers, "subscribe"]))
                raise ControlError(f"unknown op {op!r} (known: {known})")
            return {"ok": True, **base, **handler(request)}, None
        except ControlError as exc:
            return {"ok": False, **base, "error": str(exc), **({"errno": exc.errno} if exc.errno else {})}, None
        except KernelError as exc:
            name = errno_mod.errorcode.get(exc.errno, str(exc.errno))
            return {"ok": False, **base, "error": os.strerror(exc.errno), "errno": name}, None
        except Exception as exc:  # a handler bug must not kill the channel
            log.exception("control op %r failed", op)
            return {"ok": False, **base, "error": f"internal error: {exc!r}"}, None

    def _op_ping(self, _request: dict[str, Any]) -> dict[str, Any]:
        return {"version": PROTOCOL_VERSION, "seqnum": self.kernel.events.seqnum}

    def _op_subscribe(self, request: dict[str, Any]) -> tuple[_Subscription, dict[str, Any]]:
        after = request.get("after")
        if after is not None and (not isinstance(after, int) or isinstance(after, bool) or after < 0):
            raise ControlError("'after' must be a SEQNUM (an integer >= 0)")
        subsystems = request.get("subsystems")
        if subsystems is not None and (not isinstance(subsystems, list)
                                       or not all(isinstance(s, str) for s in subsystems)):
            raise ControlError("'subsystems' must be a list of strings")
        sub = _Subscription(frozenset(subsystems) if subsystems else None, self.max_queue)
        log_ = self.kernel.events
        missed = 0
        if after is not None:
            missed = max(0, log_.first_seqnum - after - 1)
        with self._lock:
            if self._closing:
                raise ControlError("the mount is going away")
            self._subs.add(sub)
        # Atomic replay + attach; the backlog goes through offer() like live events.
        sub.unsubscribe = log_.subscribe(sub.offer, after=after)
        return sub, {"seqnum": log_.seqnum, "missed": missed}

    def _stream(self, conn: socket.socket, sub: _Subscription) -> None:
        conn.settimeout(self.send_timeout)
        try:
            while True:
                batch = sub.take()
                if batch is None:
                    break
                conn.sendall(b"".join(_line(event_to_json(e)) for e in batch))
                sub.last_sent = batch[-1].seqnum
            if sub.dropped_after is not None:
                conn.sendall(_line({
                    "ok": False, "op": "subscribe", "errno": "ENOBUFS", "last_seqnum": sub.dropped_after,
                    "error": (f"client too slow: more than {self.max_queue} events were waiting for it, so events "
                              f"after SEQNUM {sub.dropped_after} were dropped and the subscription ended; "
                              f"reconnect with after={sub.dropped_after}"),
                }))
        except TimeoutError:
            log.warning("control: a subscriber did not read for %.0f s; disconnected it", self.send_timeout)
        except OSError:
            pass
        finally:
            sub.unsubscribe()
            with self._lock:
                self._subs.discard(sub)


@contextlib.contextmanager
def serving(kernel: Kernel, directory: str | None = None, *, ops: ServerOps | None = None,
            tree: Tree | None = None) -> Iterator[ControlServer]:
    """Run a ControlServer for ``kernel`` (with ``ops`` registered) and publish its path as
    ``tree.control_socket`` (read by ``kernel/debug/fakesysfs/control``) while the block runs."""
    server = ControlServer(kernel, directory, ops=ops)
    server.start()
    _publish(tree, server.path)
    try:
        yield server
    finally:
        _publish(tree, None)
        server.close()


def _publish(tree: Tree | None, path: str | None) -> None:
    if tree is not None:
        tree.control_socket = path


# -- the client -----------------------------------------------------------------------------------
class ControlClient:
    """A connection to a mount's control socket."""

    def __init__(self, path: str, timeout: float | None = 10.0) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except FileNotFoundError:
            self.sock.close()
            raise ControlError(f"control socket {path} does not exist: the mount is gone") from None
        except ConnectionRefusedError:
            self.sock.close()
            raise ControlError(f"nobody listens on control socket {path}: the mount daemon is gone") from None
        except OSError as exc:
            self.sock.close()
            raise ControlError(f"cannot connect to control socket {path}: {exc.strerror or exc}") from None
        self._reader = self.sock.makefile("rb")

    @classmethod
    def for_mount(cls, mountpoint: str | os.PathLike[str], timeout: float | None = 10.0) -> ControlClient:
        return cls(find_control_socket(mountpoint), timeout)

    def close(self) -> None:
        # shutdown() first: it wakes a thread blocked reading events (closing the buffered
        # reader under it would wait for that read forever).
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._reader.close()
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self) -> dict[str, Any] | None:
        raw = self._reader.readline()
        if not raw:
            return None
        try:
            obj = json.loads(raw)
        except ValueError as exc:
            raise ControlError(f"garbled line from {self.path}: {exc}") from None
        if not isinstance(obj, dict):
            raise ControlError(f"garbled line from {self.path}: not a JSON object")
        return obj

    def _reply(self) -> dict[str, Any]:
        reply = self._read()
        if reply is None:
            raise ControlError(f"{self.path} closed the connection: the mount went away")
        if not reply.get("ok"):
            raise ControlError(reply.get("error", "request failed"), reply.get("errno"), reply)
        return reply

    def request(self, op: str, **members: Any) -> dict[str, Any]:
        """Send one request and return its (successful) reply; ControlError otherwise."""
        self.sock.sendall(_line({"op": op, **members}))
        return self._reply()

    def subscribe(self, after: int | None = None, subsystems: list[str] | None = None) -> dict[str, Any]:
        """Turn this connection into an event stream; read it with ``events()``."""
        members: dict[str, Any] = {}
        if after is not None:
            members["after"] = after
        if subsystems:
            members["subsystems"] = list(subsystems)
        reply = self.request("subscribe", **members)
        self.sock.settimeout(None)
        return reply

    def events(self) -> Iterator[Uevent]:
        """Events as they arrive; ends when the mount goes away; ControlError if the daemon
        dropped this subscriber."""
        while True:
            obj = self._read()
            if obj is None:
                return
            if obj.get("event") == "uevent":
                yield event_from_json(obj)
            elif obj.get("ok") is False:
                raise ControlError(obj.get("error", "subscription ended"), obj.get("errno"), obj)


@contextlib.contextmanager
def serving_or_warn(kernel: Kernel, directory: str | None = None, *, ops: ServerOps | None = None,
                    tree: Tree | None = None) -> Iterator[ControlServer | None]:
    """``serving``, but a socket that cannot be made only costs a warning (the mount still
    works; ``fakesysfs monitor`` and ``fakesysfs udev`` will say there is no control file)."""
    try:
        server = ControlServer(kernel, directory, ops=ops)
        server.start()
    except OSError as exc:
        log.warning("no control socket for this mount (monitor/udev will not work): %s", exc)
        yield None
        return
    _publish(tree, server.path)
    try:
        yield server
    finally:
        _publish(tree, None)
        server.close()
