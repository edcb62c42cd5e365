"""The one place that imports a FUSE binding.

``mfusepy`` (maintained, libfuse 2 or 3) is preferred when importable, on libfuse 3 when
that is installed (``FUSE_LIBRARY_PATH``/``FUSE_LIBRARY_NAME`` still choose); otherwise
``fuse`` (fusepy 3.x, libfuse 2 only). Both expose the same ``FUSE``/``FuseOSError``/
``Operations`` names, but they call the operations object differently: fusepy dispatches
through ``operations(name, *args)``, mfusepy calls the methods directly and warns when the
object is callable. ``CALLABLE_OPERATIONS`` tells the adapter which of the two it is talking
to. ``CAN_INVALIDATE`` says whether the kernel's caches of a path can be dropped
(libfuse 3's ``fuse_invalidate_path``), which is what lets the adapter cache at all.

Importing this module raises ``ImportError`` with an actionable message when the binding
or the libfuse shared library is missing (both bindings load libfuse at import time).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Callable
from typing import Any

__all__ = [
    "BINDING",
    "CALLABLE_OPERATIONS",
    "CAN_INVALIDATE",
    "FUSE",
    "LIBFUSE3",
    "LIBFUSE_VERSION",
    "FuseOSError",
    "Operations",
    "fuse_get_context",
    "request_interrupted",
]

_INSTALL_HINT = (
    "install fuse3 (apt-get install fuse3) for libfuse 3 with mfusepy, or libfuse2 "
    "(apt-get install libfuse2) for fusepy"
)


def _import_binding() -> tuple[str, Any]:
    errors: list[str] = []
    for label, name in (("mfusepy", "mfusepy"), ("fusepy", "fuse")):
        try:
            module = _import(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a dependency of the binding is missing, not the binding
                errors.append(f"{name}: {exc}")
            continue
        except OSError as exc:
            # Both bindings raise OSError("Unable to find libfuse") or ctypes' load error at
            # import time when the shared library is absent or FUSE_LIBRARY_PATH is wrong.
            where = os.environ.get("FUSE_LIBRARY_PATH")
            detail = f" (FUSE_LIBRARY_PATH={where})" if where else ""
            raise ImportError(f"libfuse is missing{detail}: {exc}; {_INSTALL_HINT}") from exc
        except AttributeError as exc:
            # mfusepy refuses unsupported library versions with AttributeError.
            errors.append(f"{name}: {exc}")
            continue
        return label, module
    tried = "; ".join(errors) if errors else "neither mfusepy nor fusepy is installed"
    raise ImportError(
        f"no usable FUSE binding ({tried}): pip install fusepy (or mfusepy), and {_INSTALL_HINT}"
    )


def _libfuse3() -> str | None:
    """The libfuse 3 to load: its soname if the dynamic loader finds it (no subprocess, unlike
    ctypes.util.find_library, which runs ldconfig: 10-15 ms at every start), else whatever
    find_library finds, else None."""
    try:
        ctypes.CDLL(_LIBFUSE3_SONAME)
        return _LIBFUSE3_SONAME
    except OSError:
        return ctypes.util.find_library("fuse3")


_LIBFUSE3_SONAME = "libfuse3.so.3"


def _import(name: str) -> Any:
    """Import a binding; mfusepy on libfuse 3 if it is installed (mfusepy itself would take
    libfuse 2 first, and only libfuse 3 can invalidate a path in the kernel's caches)."""
    if name != "mfusepy" or {"FUSE_LIBRARY_PATH", "FUSE_LIBRARY_NAME"} & set(os.environ):
        return __import__(name)
    path = _libfuse3()
    if path is None:
        return __import__(name)
    os.environ["FUSE_LIBRARY_PATH"] = path  # read once, at import; not for our children
    try:
        return __import__(name)
    finally:
        os.environ.pop("FUSE_LIBRARY_PATH", None)


def _libfuse_version(module: Any) -> tuple[int, int]:
    """(major, minor) of the libfuse the binding loaded, from ``fuse_version()``."""
    major = getattr(module, "fuse_version_major", None)
    minor = getattr(module, "fuse_version_minor", None)
    if isinstance(major, int) and isinstance(minor, int):
        return major, minor
    lib: ctypes.CDLL | None = getattr(module, "_libfuse", None)
    if lib is None:
        return 2, 0  # fusepy only ever loads libfuse 2 (find_library("fuse"))
    version = int(lib.fuse_version())  # 29 for 2.9, 314 for 3.14
    return divmod(version, 10) if version < 100 else divmod(version, 100)


#: "mfusepy" or "fusepy".
BINDING, _module = _import_binding()

FUSE = _module.FUSE
FuseOSError = _module.FuseOSError
Operations = _module.Operations
#: (uid, gid, pid) of the request a callback serves (both bindings have it).
fuse_get_context = _module.fuse_get_context

#: (major, minor) of the loaded libfuse.
LIBFUSE_VERSION: tuple[int, int] = _libfuse_version(_module)
#: True when libfuse 3 is in use (no ``nonempty``; O_TRUNC arrives as an open flag).
LIBFUSE3: bool = LIBFUSE_VERSION[0] >= 3
#: fusepy calls ``operations(name, *args)``; mfusepy calls ``operations.name(*args)``.
CALLABLE_OPERATIONS: bool = BINDING == "fusepy"

_libfuse: Any = getattr(_module, "_libfuse", None)
_invalidate_path = getattr(_libfuse, "fuse_invalidate_path", None) if LIBFUSE3 else None
#: True when a path can be dropped from the kernel's caches (libfuse 3, high-level API).
CAN_INVALIDATE: bool = _invalidate_path is not None and hasattr(_module, "fuse_get_context")
if _invalidate_path is not None:
    _invalidate_path.argtypes = (ctypes.c_void_p, ctypes.c_char_p)
    _invalidate_path.restype = ctypes.c_int

_fuse_interrupted = getattr(_libfuse, "fuse_interrupted", None)
if _fuse_interrupted is not None:
    _fuse_interrupted.argtypes = ()
    _fuse_interrupted.restype = ctypes.c_int


def request_interrupted() -> bool:
    """Inside a callback: fuse_interrupted(), whether the kernel sent FUSE_INTERRUPT for the
    request this thread serves (its caller got a signal). libfuse's low-level layer marks
    the request when a thread of a multi-threaded loop reads the interrupt; a
    single-threaded loop reads nothing while a callback runs. False without the symbol."""
    return _fuse_interrupted is not None and bool(_fuse_interrupted())


#: fuse_conn_info.want bits (fuse_common.h, libfuse 3).
FUSE_CAP_READDIRPLUS = 1 << 13
FUSE_CAP_READDIRPLUS_AUTO = 1 << 14
FUSE_CAP_CACHE_SYMLINKS = 1 << 23


def path_invalidator() -> Callable[[str], int]:
    """Call inside a libfuse callback (``init``): a function that drops one path of this
    mount from the kernel's caches (its attributes, and a cached link target), returning 0,
    or -ENOENT when the kernel has nothing cached for it. Safe from any thread while the
    filesystem exists; never call it after ``destroy``."""
    if not CAN_INVALIDATE or _invalidate_path is None:
        raise RuntimeError("this libfuse cannot invalidate paths")
    fuse = ctypes.c_void_p(_libfuse.fuse_get_context().contents.fuse)
    invalidate = _invalidate_path

    def invalidate_path(path: str) -> int:
        return int(invalidate(fuse, path.encode("utf-8", "surrogateescape")))

    return invalidate_path


def claim_signal_handlers() -> None:
    """Call inside a libfuse callback: SIGINT, SIGTERM and SIGHUP end this callback's
    session again. libfuse keeps one session for its handlers (fuse_signals.c:
    ``fuse_instance``), the one that set them last; a second FUSE mount served by the same
    process (run's ``/dev`` in a user namespace) would otherwise take them over."""
    lib = _libfuse
    if lib is None or not hasattr(lib, "fuse_set_signal_handlers") or not hasattr(lib, "fuse_get_session"):
        return
    lib.fuse_get_session.argtypes = (ctypes.c_void_p,)
    lib.fuse_get_session.restype = ctypes.c_void_p
    lib.fuse_set_signal_handlers.argtypes = (ctypes.c_void_p,)
    session = lib.fuse_get_session(ctypes.c_void_p(lib.fuse_get_context().contents.fuse))
    if session:
        lib.fuse_set_signal_handlers(session)
