"""The attribute tree: engine objects rendered as sysfs paths, modes and show/store handlers."""

from .root import build_tree
from .tree import Attr, Dir, Link, Tree

__all__ = ["Attr", "Dir", "Link", "Tree", "build_tree"]
