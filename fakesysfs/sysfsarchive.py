"""A sysfs dump in a tarball (tar, tar.gz, tar.bz2, tar.xz), read in memory for ``--from-sysfs``.

Projects keep sysfs dumps as tarballs (``tar czf dump.tgz /sys/devices/system/memory``).
``load(path)`` reads one into an ``ArchiveTree``: nothing is extracted to disk, and nothing
of the archive can name a file of this machine. A crafted archive is refused (ConfigError
naming the archive and member) when a member

- is named by an absolute path or has a ``..`` component,
- lies under a member that is a symbolic link, or
- is a device file or FIFO (hard links are copies of a regular member before them);

and memory stays bounded whatever the archive holds: the decompressed stream is read through a
counter that stops at ``MAX_ARCHIVE_BYTES`` (headers, data and padding), a PAX record or GNU
long name larger than ``MAX_HEADER_BYTES`` is refused before tarfile reads it (CPython's
tarfile reads such a header whole), a path longer than ``PATH_MAX`` or with a component
longer than ``NAME_MAX`` is refused, at most ``MAX_MEMBERS`` members are read, and each file
keeps its first ``MAX_FILE_BYTES`` (a sysfs attribute is at most a page) less the NUL bytes
GNU tar pads a sysfs file with (it stats 4096 bytes and reads fewer). Symbolic links
resolve inside the tree only: an absolute target, or one going above the tree, resolves to
nothing (``readlink`` still gives the target, whose last component is what a reader wants).

Paths into the tree are ``ARCHIVE:/member/path`` strings, so ``os.path.join`` builds them and
a message naming one names the archive and the member.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import stat
import tarfile
import zlib
from typing import Any

from .errors import ConfigError

__all__ = ["MAX_ARCHIVE_BYTES", "MAX_HEADER_BYTES", "MAX_MEMBERS", "ArchiveTree", "is_archive", "load"]

#: Members read at most: a 64 TiB machine's memory and node trees with every attribute
#: are ~700 Ki entries (each kept member costs a few hundred bytes of Python objects).
MAX_MEMBERS = 1 << 20
#: Decompressed tar stream read at most (headers, data, padding), so a decompression bomb
#: ends early; what is kept is bounded by MAX_MEMBERS * MAX_FILE_BYTES, not by this. GNU tar
#: stores every sysfs file as 4096 bytes plus a 512-byte header: a 2 TiB machine's memory
#: tree (16 Ki blocks of ~15 files) is ~1.1 GiB.
MAX_ARCHIVE_BYTES = 2 << 30
#: What the xz decoder may allocate: its dictionary is what the archive's header asks for
#: (up to 4 GiB, filled as data comes); ``xz -9`` uses 64 MiB.
XZ_MEMLIMIT = 256 << 20
#: A PAX extended header or GNU long name/link read at most: a path is at most PATH_MAX.
MAX_HEADER_BYTES = 8 << 10
#: Extension headers (PAX, GNU long name/link) chained before one member at most: tarfile
#: recurses once per header.
_MAX_HEADER_CHAIN = 8
#: The VFS's limits (include/uapi/linux/limits.h): a path, with its NUL, and one component.
PATH_MAX, NAME_MAX = 4096, 255
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
        """Make ``rel``'s parents directories and enter its name; ConfigError if a parent is a link.

        A loop, not recursion: a path may be ~2000 levels deep within PATH_MAX."""
        missing: list[str] = []
        path = rel
        while True:
            parent = path.rpartition("/")[0]
            if parent in self.dirs:
                break
            if parent in self.links:
                raise ConfigError("sysfs", f"{self.archive}: member {shown!r} lies under a symbolic link; refused")
            missing.append(parent)
            path = parent
        for parent in reversed(missing):
            self.files.pop(parent, None)
            self.dirs[parent.rpartition("/")[0]][parent.rpartition("/")[2]] = None
            self.dirs[parent] = {}
        parent, _, name = rel.rpartition("/")
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


class _Bounded(io.RawIOBase):
    """The decompressed tar stream, refused once more than MAX_ARCHIVE_BYTES are read or
    skipped (tarfile skips member data with a forward seek, which decompresses too)."""

    def __init__(self, inner: io.BufferedIOBase, archive: str) -> None:
        super().__init__()
        self._inner = inner
        self.archive = archive
        #: Extension headers read since the last member (counted by _TarInfo).
        self.chain = 0

    def _check(self, pos: int) -> int:
        if pos > MAX_ARCHIVE_BYTES:
            raise ConfigError("sysfs", f"{self.archive}: more than {MAX_ARCHIVE_BYTES} bytes decompressed; "
                                       "not a sysfs dump")
        return pos

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        pos = self._inner.tell()
        want = MAX_ARCHIVE_BYTES + 1 - pos if size is None or size < 0 else size
        self._check(pos + min(want, MAX_ARCHIVE_BYTES + 1 - pos))  # never read past the cap
        data = self._inner.read(min(want, MAX_ARCHIVE_BYTES + 1 - pos))
        self._check(pos + len(data))
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Forward by reading (tarfile only skips ahead); back only on a seekable stream."""
        pos = self._inner.tell()
        target = offset if whence == io.SEEK_SET else pos + offset if whence == io.SEEK_CUR else -1
        if target < 0:
            raise OSError("only absolute or relative seeks")
        self._check(target)
        if target < pos or self._inner.seekable():
            return self._inner.seek(target)
        while pos < target and (chunk := self._inner.read(min(target - pos, 1 << 20))):
            pos += len(chunk)
        return pos

    def tell(self) -> int:
        return self._inner.tell()


class _TarInfo(tarfile.TarInfo):
    """Refuses an extension header too large or too deeply chained before tarfile reads it."""

    def _proc_member(self, tar: Any) -> Any:  # overrides tarfile.TarInfo's (untyped, private)
        bounded = _stream(tar)
        if self.type in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
                         tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK):
            what = "PAX header" if self.type not in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK) \
                else "GNU long name"
            if self.size > MAX_HEADER_BYTES:
                raise ConfigError("sysfs", f"{bounded.archive}: a {what} of {self.size} bytes "
                                           f"(at most {MAX_HEADER_BYTES}); refused")
            bounded.chain += 1
            if bounded.chain > _MAX_HEADER_CHAIN:
                raise ConfigError("sysfs", f"{bounded.archive}: more than {_MAX_HEADER_CHAIN} extension headers "
                                           "before one member; refused")
        else:
            bounded.chain = 0
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise ConfigError("sysfs", f"{bounded.archive}: member {self.name!r} is a sparse file; refused")
        return super()._proc_member(tar)  # type: ignore[misc]

    def _proc_gnusparse_10(self, next: Any, pax_headers: Any, tar: Any) -> Any:  # noqa: ARG002
        """GNU sparse 1.0 (a PAX header naming a sparse map): the map is read number by
        number without a bound; sysfs files are never sparse."""
        bounded = _stream(tar)
        raise ConfigError("sysfs", f"{bounded.archive}: member {next.name!r} is a sparse file; refused")


def _stream(tar: tarfile.TarFile) -> _Bounded:
    """The bounded stream ``load`` gave ``tar`` (its archive's name, the header chain)."""
    stream = tar.fileobj
    assert isinstance(stream, _Bounded)
    return stream


class _XzReader(io.RawIOBase):
    """An xz stream (or several, concatenated) decoded with a memory limit (lzma.LZMAFile
    takes none): a header asking for a larger dictionary is an LZMAError."""

    def __init__(self, raw: io.BufferedReader) -> None:
        super().__init__()
        self._raw = raw
        self._dec = lzma.LZMADecompressor(memlimit=XZ_MEMLIMIT)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: Any) -> int:
        while True:
            if self._dec.eof:
                rest = self._dec.unused_data or self._raw.read(1 << 16)
                if not rest.strip(b"\0"):  # stream padding, then the end
                    return 0
                self._dec = lzma.LZMADecompressor(memlimit=XZ_MEMLIMIT)
                data = self._dec.decompress(rest, max_length=len(buffer))
            elif self._dec.needs_input:
                chunk = self._raw.read(1 << 16)
                if not chunk:
                    raise EOFError("compressed file ended before the end-of-stream marker was reached")
                data = self._dec.decompress(chunk, max_length=len(buffer))
            else:
                data = self._dec.decompress(b"", max_length=len(buffer))
            if data:
                buffer[: len(data)] = data
                self._pos += len(data)
                return len(data)


def _decompressed(raw: io.BufferedReader) -> io.BufferedIOBase:
    """``raw`` decompressed by its magic number (gzip, bzip2, xz) or as it is (plain tar)."""
    magic = raw.read(6)
    raw.seek(0)
    if magic[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if magic[:3] == b"BZh":
        return bz2.BZ2File(raw)
    if magic == b"\xfd7zXZ\x00":
        return io.BufferedReader(_XzReader(raw))
    return raw


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
            with _decompressed(raw) as stream:
                with tarfile.open(fileobj=_Bounded(stream, path), mode="r:", tarinfo=_TarInfo) as tar:
                    return _read_members(tar, path)
        except ConfigError:
            raise
        except (tarfile.TarError, OSError, EOFError, ValueError, LookupError, lzma.LZMAError, zlib.error) as exc:
            # zlib.error, lzma.LZMAError and the like (a truncated or corrupt stream).
            why = str(exc).splitlines()[0].rstrip(":") if str(exc) else type(exc).__name__
            if why in ("invalid header", "empty file", "bad checksum"):
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
    count = 0
    while (member := tar.next()) is not None:
        tar.members.clear()  # type: ignore[attr-defined]  # tarfile keeps every TarInfo; none is needed again
        count += 1
        if count > MAX_MEMBERS:
            raise ConfigError("sysfs", f"{archive}: more than {MAX_MEMBERS} members; not a sysfs dump")
        if sum(len(k) + len(v) for k, v in tar.pax_headers.items()) > MAX_HEADER_BYTES:
            raise ConfigError("sysfs", f"{archive}: global PAX headers of more than {MAX_HEADER_BYTES} bytes; refused")
        for name in (member.name, member.linkname):
            if len(name.encode("utf-8", "surrogateescape")) >= PATH_MAX:
                raise ConfigError("sysfs", f"{archive}: member {name[:64]!r}... has a path longer than "
                                           f"PATH_MAX ({PATH_MAX}); refused")
            if any(len(part.encode("utf-8", "surrogateescape")) > NAME_MAX for part in name.split("/")):
                raise ConfigError("sysfs", f"{archive}: member {name[:64]!r}... has a name longer than "
                                           f"NAME_MAX ({NAME_MAX}); refused")
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
