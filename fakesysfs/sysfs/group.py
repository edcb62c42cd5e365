"""Attribute groups: every entry of a device directory declared once, as the kernel does.

The kernel declares a device's files as attributes (``DEVICE_ATTR_RO``/``_RW``/``_WO``: name,
mode, show, store) gathered in ``struct attribute_group`` (include/linux/sysfs.h), each group
with at most one ``is_visible(kobj, attr, n)`` that gives the mode a file has on this object,
0 to leave it out (drivers/dax/bus.c ``dev_dax_visible``); fs/sysfs/group.c create_files()
asks it once per attribute. A ``Group`` here is the same declaration, and a ``GroupDir`` answers
both the listing (``names``) and the lookup (``child``) from it, so each rule lives in one
place: the group's visibility function.

Besides attributes, a device directory holds links (``sysfs_create_link``: ``subsystem``,
``driver``), sub-directories (``power/``, a named group in the kernel) and files every device
shares (``uevent``): they are declared the same way as an ``Entry`` that makes its node. Entries
whose names come from state are ``Dynamic``: ``Children`` for a prefix and the ids present
(``nodeK`` links of a memory block, ``mappingN`` of a dax device), or a list and a lookup
(the child devices of a producer device).

The listing is the declaration order (groups in order, entries in order), a ``Dynamic``
entry listing its names where it is declared. The lookup is one dict access plus the
visibility call; a name that is no declared entry is tried against the ``Dynamic`` entries.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from functools import partial
from typing import Any, ClassVar, Generic, TypeVar

from .tree import Attr, Dir, Node

D = TypeVar("D", bound="GroupDir")

#: is_visible(obj, entry) -> the entry's mode on this object, 0: absent.
Visible = Callable[[D, "Entry[D]"], int]


def suffix_id(name: str, prefix: str) -> int | None:
    """``memory40`` -> 40; None unless the name is exactly the prefix plus canonical digits
    (the kernel prints ``%d``: no sign, no leading zero)."""
    if not name.startswith(prefix):
        return None
    digits = name[len(prefix) :]
    if not digits.isdigit() or not digits.isascii() or (len(digits) > 1 and digits[0] == "0"):
        return None
    return int(digits)


class Entry(Generic[D]):
    """One name in a group whose node ``make(obj)`` builds: a link, a sub-directory, a shared
    file. ``mode`` is what ``is_visible`` starts from (only 0 or not matters for non-files)."""

    __slots__ = ("make", "mode", "name")

    def __init__(self, name: str, make: Callable[[D], Node] | None = None, mode: int = 0o444) -> None:
        self.name = name
        self.mode = mode
        self.make = make

    def node(self, obj: D, _mode: int) -> Node | None:
        assert self.make is not None
        return self.make(obj)


class Attribute(Entry[D]):
    """struct device_attribute: ``show(obj)`` renders the value, ``store(obj, text, count)``
    takes a write (None: the whole count). A visible mode without read (write) bits leaves the
    file without show (store), so chmod cannot open what ``is_visible`` closed."""

    __slots__ = ("show", "store")

    def __init__(self, name: str, mode: int, show: Callable[[D], str] | None = None,
                 store: Callable[[D, str, int], int | None] | None = None) -> None:
        super().__init__(name, None, mode)
        self.show = show
        self.store = store

    def node(self, obj: D, mode: int) -> Node | None:
        show, store = self.show, self.store
        return Attr(mode, partial(show, obj) if show is not None and mode & 0o444 else None,
                    partial(store, obj) if store is not None and mode & 0o222 else None)


def attr_ro(name: str, show: Callable[[D], str], mode: int = 0o444) -> Attribute[D]:
    """DEVICE_ATTR_RO (``mode`` for the ADMIN_RO ones, 0400)."""
    return Attribute(name, mode, show)


def attr_rw(name: str, show: Callable[[D], str], store: Callable[[D, str], int | None]) -> Attribute[D]:
    """DEVICE_ATTR_RW, for a store that needs only the text."""
    return Attribute(name, 0o644, show, lambda obj, text, _count: store(obj, text))


def attr_wo(name: str, store: Callable[[D, str], int | None]) -> Attribute[D]:
    """DEVICE_ATTR_WO, for a store that needs only the text."""
    return Attribute(name, 0o200, None, lambda obj, text, _count: store(obj, text))


class Dynamic(Entry[D]):
    """Entries whose names come from state (child devices, links to other devices): listed by
    ``list_names(obj)``; a name no declared entry has is looked up with ``find(obj, name)``
    (None: absent) when it starts with ``prefix``. ``name`` is what ``is_visible`` sees."""

    __slots__ = ("find", "list_names", "prefix")

    def __init__(self, name: str, list_names: Callable[[D], Iterable[str]],
                 find: Callable[[D, str], Node | None], prefix: str = "") -> None:
        super().__init__(name, None, 0o755)
        self.prefix = prefix
        self.list_names = list_names
        self.find = find


class Children(Dynamic[D]):
    """``<prefix><id>`` for the ids ``ids(obj)`` holds (listed in its order, or sorted), each
    made by ``make_child(obj, id)``; ``is_visible`` sees the name ``<prefix>%d``
    (dev_set_name's format)."""

    __slots__ = ("ids", "make_child", "sort")

    def __init__(self, prefix: str, ids: Callable[[D], Collection[int]],
                 make_child: Callable[[D, int], Node | None], *, sort: bool = True) -> None:
        super().__init__(f"{prefix}%d", self._names, self._find, prefix)
        self.ids = ids
        self.make_child = make_child
        self.sort = sort

    def _names(self, obj: D) -> list[str]:
        ids = self.ids(obj)
        prefix = self.prefix
        return [f"{prefix}{i}" for i in (sorted(ids) if self.sort and len(ids) > 1 else ids)]

    def _find(self, obj: D, name: str) -> Node | None:
        i = suffix_id(name, self.prefix)
        return self.make_child(obj, i) if i is not None and i in self.ids(obj) else None


class Group(Generic[D]):
    """struct attribute_group: entries plus the one visibility function (None: every entry
    with its declared mode)."""

    __slots__ = ("entries", "is_visible")

    def __init__(self, entries: Iterable[Entry[D]], is_visible: Visible[D] | None = None) -> None:
        self.entries = tuple(entries)
        self.is_visible = is_visible


class Layout(Generic[D]):
    """A directory's groups compiled once: the listing and the name -> entry map."""

    __slots__ = ("by_name", "dynamic", "listing")

    def __init__(self, *groups: Group[D]) -> None:
        order = [(entry, group.is_visible) for group in groups for entry in group.entries]
        #: The listing in declaration order: (names always there, None, None) for a run of
        #: entries without a visibility function, else ((), entry, its visibility function).
        listing: list[tuple[tuple[str, ...], Entry[D] | None, Visible[D] | None]] = []
        for entry, visible in order:
            if visible is None and not isinstance(entry, Dynamic):
                if listing and listing[-1][1] is None:
                    listing[-1] = ((*listing[-1][0], entry.name), None, None)
                else:
                    listing.append(((entry.name,), None, None))
            else:
                listing.append(((), entry, visible))
        self.listing = tuple(listing)
        self.by_name: dict[str, tuple[Entry[D], Visible[D] | None]] = {}
        #: (prefix, find, entry, visibility function) of each Dynamic entry.
        dynamic: list[tuple[str, Callable[[D, str], Node | None], Dynamic[D], Visible[D] | None]] = []
        for entry, visible in order:
            if isinstance(entry, Dynamic):
                dynamic.append((entry.prefix, entry.find, entry, visible))
            elif entry.name in self.by_name:
                raise ValueError(f"{entry.name}: declared twice")  # sysfs_add_file_mode_ns: EEXIST
            else:
                self.by_name[entry.name] = (entry, visible)
        self.dynamic = tuple(dynamic)


class GroupDir(Dir):
    """A directory whose entries its class declares in ``layout``; the show/store functions
    and visibility rules get the directory itself (which holds the kernel object)."""

    __slots__ = ()
    layout: ClassVar[Layout[Any]]
    #: Whether the class has an ``alive`` of its own (else lookups skip calling it).
    _mortal: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._mortal = cls.alive is not Dir.alive

    def names(self) -> list[str]:
        out: list[str] = []
        for fixed, entry, visible in self.layout.listing:
            if entry is None:
                out += fixed
            elif visible is None or visible(self, entry):
                if isinstance(entry, Dynamic):
                    out += entry.list_names(self)
                else:
                    out.append(entry.name)
        return out

    def child(self, name: str) -> Node | None:
        # kernfs: the entries of a removed device are gone even through a directory kept open.
        if self._mortal and not self.alive():
            return None
        found = self.layout.by_name.get(name)
        if found is not None:
            entry, visible = found
            mode = entry.mode if visible is None else visible(self, entry)
            return entry.node(self, mode) if mode else None
        for prefix, find, entry, visible in self.layout.dynamic:
            if name.startswith(prefix) and (visible is None or visible(self, entry)):
                node = find(self, name)
                if node is not None:
                    return node
        return None
