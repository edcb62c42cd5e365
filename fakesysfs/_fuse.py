"""The one place that imports a FUSE binding.

``mfusepy`` (maintained, libfuse 2 or 3) is preferred when importable; otherwise ``fuse``
(fusepy 3.x, libfuse 2 only). Both expose the same ``FUSE``/``FuseOSError``/``Operations``
names, but they call the operations object differently: fusepy dispatches through
``operations(name, *args)``, mfusepy calls the methods directly and warns when the object
is callable. ``CALLABLE_OPERATIONS`` tells the adapter which of the two it is talking to.

Importing this module raises ``ImportError`` with an actionable message when the binding
or the libfuse shared library is missing (both bindings load libfuse at import time).
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

__all__ = [
    "BINDING",
    "CALLABLE_OPERATIONS",
    "FUSE",
    "LIBFUSE3",
    "LIBFUSE_VERSION",
    "FuseOSError",
    "Operations",
]

_INSTALL_HINT = (
    "install fuse3 (apt-get install fuse3) for libfuse 3 with mfusepy, or libfuse2 "
    "(apt-get install libfuse2) for fusepy"
)


def _import_binding() -> tuple[str, Any]:
    errors: list[str] = []
    for label, name in (("mfusepy", "mfusepy"), ("fusepy", "fuse")):
        try:
            module = __import__(name)
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

#: (major, minor) of the loaded libfuse.
LIBFUSE_VERSION: tuple[int, int] = _libfuse_version(_module)
#: True when libfuse 3 is in use (no ``nonempty``; O_TRUNC arrives as an open flag).
LIBFUSE3: bool = LIBFUSE_VERSION[0] >= 3
#: fusepy calls ``operations(name, *args)``; mfusepy calls ``operations.name(*args)``.
CALLABLE_OPERATIONS: bool = BINDING == "fusepy"
