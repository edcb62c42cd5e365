"""A sysfs dump in a tarball (tar, tar.gz, tar.bz2, tar.xz), unpacked for ``--from-sysfs``.

Projects keep sysfs dumps as tarballs (``tar czf dump.tgz /sys/devices/system/memory``).
``unpacked(path)`` unpacks one into a private temporary directory (mode 0700, removed on
exit) with checks a crafted archive cannot get past, and yields that directory:

- a member named by an absolute path, with a ``..`` component, or under a symbolic link of
  the archive is refused (ConfigError naming it): nothing is written outside the directory;
- a device file or FIFO is refused; hard links are copies of a regular member before them;
- a symbolic link keeps its target when that stays inside the archive's tree; one that
  leaves it (``subsystem`` of a partial dump, an absolute target) becomes a dangling link
  to a name inside with the same last component, so ``readlink``'s basename still reads;
- at most ``MAX_MEMBERS`` members and ``MAX_ARCHIVE_BYTES`` of member data are read, and a
  file keeps its first ``MAX_FILE_BYTES`` (a sysfs attribute is at most a page), less the
  NUL bytes GNU tar pads a sysfs file with (it stats 4096 bytes and reads fewer).
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator

from .errors import ConfigError

__all__ = ["MAX_ARCHIVE_BYTES", "MAX_MEMBERS", "is_archive", "unpacked"]

#: Members read at most: a 64 TiB machine's memory and node trees with every attribute
#: are ~700 Ki entries.
MAX_MEMBERS = 1 << 21
#: Member data read at most (declared sizes), so a decompression bomb ends early. GNU tar
#: stores every sysfs file as 4096 bytes: a 2 TiB machine's memory tree (16 Ki blocks of
#: ~15 files) is ~1 GiB.
MAX_ARCHIVE_BYTES = 4 << 30
#: What is kept of a file: a sysfs attribute is at most a page (fs/sysfs/file.c).
MAX_FILE_BYTES = 4096
#: Where links leaving the tree point instead (never created, so they dangle).
_OUTSIDE = ".fakesysfs-outside"


def is_archive(path: str) -> bool:
    """A regular file (not a directory): ``--from-sysfs`` reads it as a tarball."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


@contextlib.contextmanager
def unpacked(path: str) -> Iterator[str]:
    """The tarball at ``path`` unpacked into a private temporary directory (see the module
    docstring); ConfigError (key ``sysfs``, one line naming the archive or member) for an
    archive that cannot be read or is refused."""
    tmp = os.path.realpath(tempfile.mkdtemp(prefix="fakesysfs-import-"))
    try:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as exc:
            raise ConfigError("sysfs", f"{path}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as raw:
            if not stat.S_ISREG(os.fstat(raw.fileno()).st_mode):
                raise ConfigError("sysfs", f"{path}: not a regular file")
            try:
                with tarfile.open(fileobj=raw, mode="r:*") as tar:
                    _extract(tar, tmp, path)
            except ConfigError:
                raise
            except (tarfile.TarError, OSError, EOFError, ValueError, LookupError) as exc:
                # zlib.error, lzma.LZMAError and the like (a truncated or corrupt stream).
                why = str(exc).splitlines()[0].rstrip(":") if str(exc) else type(exc).__name__
                if "could not be opened successfully" in why:  # tarfile tried every compression
                    why = "neither tar nor gzip, bzip2 or xz"
                raise ConfigError("sysfs", f"{path}: not a readable tarball ({why})") from None
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _member_name(name: str, archive: str) -> str:
    """``./sys/devices`` -> ``sys/devices``; ConfigError for an absolute or ``..`` name."""
    if name.startswith("/"):
        raise ConfigError("sysfs", f"{archive}: member {name!r} has an absolute path; refused")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ConfigError("sysfs", f"{archive}: member {name!r} goes up with '..'; refused")
    if parts and parts[0] == _OUTSIDE:
        raise ConfigError("sysfs", f"{archive}: member {name!r} uses a name reserved for the import")
    return "/".join(parts)


def _extract(tar: tarfile.TarFile, dest: str, archive: str) -> None:
    total = 0
    count = 0
    files: dict[str, str] = {}  # member name -> its path (for hard links)
    for member in tar:
        count += 1
        if count > MAX_MEMBERS:
            raise ConfigError("sysfs", f"{archive}: more than {MAX_MEMBERS} members; not a sysfs dump")
        total += max(member.size, 0)
        if total > MAX_ARCHIVE_BYTES:
            raise ConfigError("sysfs", f"{archive}: more than {MAX_ARCHIVE_BYTES >> 30} GiB of member data; "
                                       "not a sysfs dump")
        name = _member_name(member.name, archive)
        if not name:
            continue
        target = os.path.join(dest, name)
        _make_parents(dest, name, member.name, archive)
        if member.isdir():
            if not os.path.isdir(target) or os.path.islink(target):
                _clear(target)
                os.mkdir(target, 0o700)
            continue
        if os.path.isdir(target) and not os.path.islink(target):
            continue  # a directory member already made it; a later non-directory does not replace it
        _clear(target)
        if member.issym():
            os.symlink(_link_target(name, member.linkname), target)
        elif member.islnk():
            source = files.get(_member_name(member.linkname, archive))
            if source is None:
                raise ConfigError("sysfs", f"{archive}: hard link {member.name!r} names no file before it")
            shutil.copyfile(source, target, follow_symlinks=False)
            files[name] = target
        elif member.isreg():
            data = b""
            stream = tar.extractfile(member)
            if stream is not None:
                data = stream.read(MAX_FILE_BYTES).rstrip(b"\0")
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            files[name] = target
        else:
            what = "a device file" if member.ischr() or member.isblk() else "a FIFO" if member.isfifo() \
                else "of an unknown type"
            raise ConfigError("sysfs", f"{archive}: member {member.name!r} is {what}; refused")


def _make_parents(dest: str, name: str, shown: str, archive: str) -> None:
    """The directories above member ``name``, made as needed; ConfigError if one of them is
    a symbolic link (a member under a link would be written where the link points)."""
    path = dest
    for part in name.split("/")[:-1]:
        path = os.path.join(path, part)
        if os.path.islink(path):
            raise ConfigError("sysfs", f"{archive}: member {shown!r} lies under a symbolic link; refused")
        if not os.path.isdir(path):
            _clear(path)
            os.mkdir(path, 0o700)


def _clear(path: str) -> None:
    if os.path.lexists(path) and not (os.path.isdir(path) and not os.path.islink(path)):
        os.unlink(path)


def _link_target(name: str, linkname: str) -> str:
    """The link's target if it stays inside the tree, else a dangling one inside with the
    same last component.

    Inside means as sysfs writes its links: relative, some ``..`` first, then names only
    (``../../node/node0``), going up no further than the link's depth. Every member's
    directory is a real one (none lies under a link), so such a target resolves inside
    physically too, whatever links it passes through."""
    parts = linkname.rstrip("/").split("/")
    ups = 0
    while ups < len(parts) and parts[ups] == "..":
        ups += 1
    rest = parts[ups:]
    if not linkname.startswith("/") and rest and ups <= name.count("/") \
            and all(p not in ("", ".", "..") for p in rest):
        return linkname
    depth = name.count("/")
    base = posixpath.basename(linkname.rstrip("/")) or "root"
    if base in (".", ".."):
        base = "root"
    return "../" * depth + f"{_OUTSIDE}/{base}"
