"""A sysfs dump in a tarball (tar, tar.gz, tar.bz2, tar.xz), read in memory for ``--from-sysfs``.

Projects keep sysfs dumps as tarballs (``tar czf dump.tgz /sys/devices/system/memory``).
``load(path)`` reads one into an ``ArchiveTree``: nothing is extracted to disk, and nothing
of the archive can name a file of this machine. A crafted archive is refused (ConfigError
naming the archive and member) when a member

- is named by an absolute path or has a ``..`` component,
- lies under a member that is a symbolic link, or
- is a device file or FIFO (hard links are copies of a regular member before them);

and at most ``MAX_MEMBERS`` members and ``MAX_ARCHIVE_BYTES`` of member data are read, each
file keeping its first ``MAX_FILE_BYTES`` (a sysfs attribute is at most a page) less the NUL
bytes GNU tar pads a sysfs file with (it stats 4096 bytes and reads fewer). Symbolic links
resolve inside the tree only: an absolute target, or one going above the tree, resolves to
nothing (``readlink`` still gives the target, whose last component is what a reader wants).

Paths into the tree are ``ARCHIVE:/member/path`` strings, so ``os.path.join`` builds them and
a message naming one names the archive and the member.
"""

from __future__ import annotations

import os
import stat
import tarfile

from .errors import ConfigError

__all__ = ["MAX_ARCHIVE_BYTES", "MAX_MEMBERS", "ArchiveTree", "is_archive", "load"]

#: Members read at most: a 64 TiB machine's memory and node trees with every attribute
#: are ~700 Ki entries.
MAX_MEMBERS = 1 << 21
#: Member data read at most (declared sizes), so a decompression bomb ends early. GNU tar
#: stores every sysfs file as 4096 bytes: a 2 TiB machine's memory tree (16 Ki blocks of
#: ~15 files) is ~1 GiB.
MAX_ARCHIVE_BYTES = 4 << 30
#: What is kept of a file: a sysfs attribute is at most a page (fs/sysfs/file.c).
MAX_FILE_BYTES = 4096
#: Symbolic links followed in one lookup at most (the VFS's MAXSYMLINKS).
_MAX_LINKS = 40


def is_archive(path: str) -> bool:
    """A regular file (not a directory): ``--from-sysfs`` reads it as a tarball."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


class ArchiveTree:
    """A tarball's directories, files (their first page) and symbolic links, by path."""

    def __init__(self, archive: str) -> None:
        self.archive = archive
        #: The tree's root as a path (``ARCHIVE:/``): ``os.path.join`` builds paths from it.
        self.root = archive + ":/"
        self._prefix = archive + ":"
        self.dirs: dict[str, dict[str, None]] = {"": {}}  # path -> child names, in archive order
        self.files: dict[str, bytes] = {}
        self.links: dict[str, str] = {}

    # -- building ---------------------------------------------------------------------------
    def _add(self, rel: str, shown: str) -> None:
        """Make ``rel``'s parents directories and enter its name; ConfigError if a parent is a link."""
        parent, _, name = rel.rpartition("/")
        if parent not in self.dirs:
            if parent in self.links:
                raise ConfigError("sysfs", f"{self.archive}: member {shown!r} lies under a symbolic link; refused")
            self._add(parent, shown)
            self.files.pop(parent, None)
            self.dirs[parent] = {}
        self.dirs[parent][name] = None

    def _replace(self, rel: str) -> None:
        self.files.pop(rel, None)
        self.links.pop(rel, None)

    # -- reading ----------------------------------------------------------------------------
    def _parts(self, path: str) -> list[str] | None:
        if not path.startswith(self._prefix):
            return None
        return [p for p in path[len(self._prefix):].split("/") if p not in ("", ".")]

    def _resolve(self, path: str, follow_last: bool = True) -> str | None:
        """The tree path ``path`` leads to, links followed inside the tree; None if it leads
        nowhere (a missing entry, a link leaving the tree, a loop)."""
        todo = self._parts(path)
        if todo is None:
            return None
        done: list[str] = []
        hops = 0
        while todo:
            part = todo.pop(0)
            if part == "..":
                if not done:
                    return None
                done.pop()
                continue
            rel = "/".join([*done, part])
            target = self.links.get(rel)
            if target is not None and (todo or follow_last):
                hops += 1
                if hops > _MAX_LINKS or target.startswith("/"):
                    return None
                todo = [p for p in target.split("/") if p not in ("", ".")] + todo
                continue
            if rel not in self.dirs and rel not in self.files and rel not in self.links:
                return None
            done.append(part)
        return "/".join(done)

    def read(self, path: str) -> str | None:
        rel = self._resolve(path)
        data = self.files.get(rel) if rel is not None else None
        return data.decode("latin-1").strip() if data is not None else None

    def listdir(self, path: str) -> list[str]:
        rel = self._resolve(path)
        if rel is None or rel not in self.dirs:
            raise NotADirectoryError(path)
        return list(self.dirs[rel])

    def isdir(self, path: str) -> bool:
        rel = self._resolve(path)
        return rel is not None and rel in self.dirs

    def exists(self, path: str) -> bool:
        return self._resolve(path) is not None

    def islink(self, path: str) -> bool:
        rel = self._resolve(path, follow_last=False)
        return rel is not None and rel in self.links

    def readlink(self, path: str) -> str:
        rel = self._resolve(path, follow_last=False)
        if rel is None or rel not in self.links:
            raise OSError(f"{path}: not a symbolic link")
        return self.links[rel]

    def realpath(self, path: str) -> str:
        rel = self._resolve(path)
        return self._prefix + "/" + rel if rel is not None else path


def load(path: str) -> ArchiveTree:
    """The tarball at ``path`` read into memory (see the module docstring); ConfigError (key
    ``sysfs``, one line naming the archive or member) for an archive that cannot be read or
    is refused."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError("sysfs", f"{path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as raw:
        if not stat.S_ISREG(os.fstat(raw.fileno()).st_mode):
            raise ConfigError("sysfs", f"{path}: not a regular file")
        try:
            with tarfile.open(fileobj=raw, mode="r:*") as tar:
                return _read_members(tar, path)
        except ConfigError:
            raise
        except (tarfile.TarError, OSError, EOFError, ValueError, LookupError) as exc:
            # zlib.error, lzma.LZMAError and the like (a truncated or corrupt stream).
            why = str(exc).splitlines()[0].rstrip(":") if str(exc) else type(exc).__name__
            if "could not be opened successfully" in why:  # tarfile tried every compression
                why = "neither tar nor gzip, bzip2 or xz"
            raise ConfigError("sysfs", f"{path}: not a readable tarball ({why})") from None


def _member_name(name: str, archive: str) -> str:
    """``./sys/devices`` -> ``sys/devices``; ConfigError for an absolute or ``..`` name."""
    if name.startswith("/"):
        raise ConfigError("sysfs", f"{archive}: member {name!r} has an absolute path; refused")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ConfigError("sysfs", f"{archive}: member {name!r} goes up with '..'; refused")
    return "/".join(parts)


def _read_members(tar: tarfile.TarFile, archive: str) -> ArchiveTree:
    tree = ArchiveTree(archive)
    total = 0
    count = 0
    for member in tar:
        count += 1
        if count > MAX_MEMBERS:
            raise ConfigError("sysfs", f"{archive}: more than {MAX_MEMBERS} members; not a sysfs dump")
        total += max(member.size, 0)
        if total > MAX_ARCHIVE_BYTES:
            raise ConfigError("sysfs", f"{archive}: more than {MAX_ARCHIVE_BYTES >> 30} GiB of member data; "
                                       "not a sysfs dump")
        rel = _member_name(member.name, archive)
        if not rel:
            continue
        if not (member.isdir() or member.issym() or member.islnk() or member.isreg()):
            what = "a device file" if member.ischr() or member.isblk() else "a FIFO" if member.isfifo() \
                else "of an unknown type"
            raise ConfigError("sysfs", f"{archive}: member {member.name!r} is {what}; refused")
        tree._add(rel, member.name)
        if member.isdir():
            tree._replace(rel)
            tree.dirs.setdefault(rel, {})
            continue
        if rel in tree.dirs:
            continue  # a directory member already made it; a later non-directory does not replace it
        tree._replace(rel)
        if member.issym():
            tree.links[rel] = member.linkname
        elif member.islnk():
            source = tree.files.get(_member_name(member.linkname, archive))
            if source is None:
                raise ConfigError("sysfs", f"{archive}: hard link {member.name!r} names no file before it")
            tree.files[rel] = source
        else:
            stream = tar.extractfile(member)
            tree.files[rel] = stream.read(MAX_FILE_BYTES).rstrip(b"\0") if stream is not None else b""
    return tree
