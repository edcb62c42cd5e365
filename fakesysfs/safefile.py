"""Files and directories fakesysfs writes, opened so that a hostile neighbour cannot redirect them.

fakesysfs usually runs as root and writes where it is told (``--state``, ``--trace``,
``--log-file``, ``ctl MNT export``, control-socket directories), often into places other
users can write too. Every such file goes through this module, which applies the checks
OpenSSH applies to its own files (``secure_filename``/``safe_path`` in auth.c and misc.c):

- **The directory.** The file's directory is reached from ``/`` one component at a time,
  each opened ``O_PATH|O_NOFOLLOW`` relative to the one before and checked with ``fstat``:
  every directory on the way is owned by root or by us and is not writable by group or
  others unless it is sticky (``/tmp``: nobody can rename or remove entries they do not own
  there). A symbolic link on the way is followed only if root or we own it (``/var/run``);
  one planted by anybody else is refused, like ``fs.protected_symlinks`` but everywhere.
  The file is then created or opened relative to that checked directory, so nothing is
  resolved by name twice. Inside a user namespace the host's root is unmapped and shows as
  the overflow uid (``/proc/sys/kernel/overflowuid``); directories it owns are accepted
  there, since the namespace's root has no capability over unmapped owners' files.
- **A new file** is created ``O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC`` with mode 0600: a name
  someone planted in between makes the create fail instead of being followed.
- **An existing file** is opened ``O_NOFOLLOW|O_NONBLOCK|O_NOCTTY`` (a symlink fails with
  ELOOP, a FIFO cannot block us) and then checked with ``fstat`` on that descriptor (not a
  racy ``lstat`` before): a regular file, owned by us (or root), not group- or
  world-writable (anyone could have forged its content), one hard link (another name for it
  could be somebody else's).
- **Append** (``open_append``: ``--trace``, ``--log-file``, ``--state``): an existing file of
  ours that passes those checks is appended to; anything else at the name (a symlink,
  another user's file, a FIFO or device, a group/world-writable file) is refused.
- **Taking a new file back** (``open_append_created`` tells whether the call created it;
  ``remove_created``: a ``--state`` file whose first boot failed): unlinked only while the
  name, looked up in the checked directory without following a link, still leads to the
  very file created (st_dev, st_ino); a file swapped in is left alone.
- **Atomic replace** (``replace``: ``ctl export``): the content goes to a temporary file
  with a random name created ``O_EXCL`` in the same directory, is fsync'd, and is renamed
  over the destination (rename never follows a link). An existing destination must be a
  regular file of ours; a symbolic link there is refused, not replaced.
- **Private directories** (``private_dir``, ``fresh_private_dir``: control sockets) are
  created 0700 and must be, by ``fstat`` of an ``O_DIRECTORY|O_NOFOLLOW`` descriptor, ours
  with no group or other access.

Files fakesysfs only reads (a topology, an ``--import`` snapshot, udev rules files) go
through ``read_regular``: a regular file only, at most a stated size. The name is opened
``O_PATH`` (which opens no device and cannot block on a FIFO), judged by ``fstat``, and only
then opened for reading through that very descriptor, so a FIFO (which would block) or a
device (``/dev/zero`` reads forever; opening some acts) is never read.

Every refusal is an ``UnsafeFileError``: an OSError whose ``filename`` is the file and whose
``strerror`` is the reason in a few words, so callers print it as one line.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import posixpath
import stat
from collections.abc import Iterable

from .errors import UnsafeFileError

__all__ = ["UnsafeFileError", "fresh_private_dir", "open_append", "open_append_created", "open_checked_dir",
           "private_dir",
           "read_regular", "remove_created", "replace"]

#: The inode of the initial user namespace's /proc/self/ns/user (PROC_USER_INIT_INO,
#: include/linux/proc_ns.h).
PROC_USER_INIT_INO = 0xEFFFFFFD
#: Symbolic links followed while resolving one name (MAXSYMLINKS, include/linux/namei.h).
MAXSYMLINKS = 40
#: Attempts at a free random name for a temporary file or a private directory.
_TRIES = 100


def in_initial_userns() -> bool:
    """True unless this process is in a user namespace below the initial one."""
    try:
        return os.stat("/proc/self/ns/user").st_ino == PROC_USER_INIT_INO
    except OSError:
        return True  # no /proc: nothing to tell them apart with


def _trusted_owners() -> frozenset[int]:
    owners = {0, os.geteuid()}
    if not in_initial_userns():
        with contextlib.suppress(OSError, ValueError), open("/proc/sys/kernel/overflowuid", encoding="ascii") as f:
            owners.add(int(f.read()))
    return frozenset(owners)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _check_dir(st: os.stat_result, shown: str, trusted: frozenset[int]) -> None:
    if st.st_uid not in trusted:
        raise UnsafeFileError(shown, f"directory {shown} is owned by uid {st.st_uid} (neither root nor you): its "
                              "owner could redirect what fakesysfs writes there", names_path=True)
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        raise UnsafeFileError(shown, f"directory {shown} is writable by group or others and not sticky (mode "
                              f"{stat.S_IMODE(st.st_mode):04o}): anyone could replace entries in it",
                              names_path=True)


def _open_dir(path: str) -> int:
    """An ``O_RDONLY|O_DIRECTORY`` descriptor of ``path``, reached from / as the module doc says."""
    trusted = _trusted_owners()
    if not path.startswith("/"):
        path = os.getcwd() + "/" + path
    todo = [part for part in reversed(path.split("/")) if part not in ("", ".")]
    fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    where = "/"
    links = 0
    try:
        _check_dir(os.fstat(fd), where, trusted)
        while todo:
            part = todo.pop()
            shown = posixpath.normpath(posixpath.join(where, part))
            try:
                nfd = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except OSError as exc:
                raise OSError(exc.errno, exc.strerror, shown) from None
            try:
                st = os.fstat(nfd)
                if stat.S_ISLNK(st.st_mode):
                    if st.st_uid not in trusted:
                        raise UnsafeFileError(shown, f"{shown} is a symbolic link owned by uid {st.st_uid} "
                                              "(neither root nor you): not following it", errno.ELOOP,
                                              names_path=True)
                    links += 1
                    if links > MAXSYMLINKS:
                        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                    target = os.readlink(part, dir_fd=fd)
                    os.close(nfd)
                    nfd = -1
                    todo.extend(p for p in reversed(target.split("/")) if p not in ("", "."))
                    if target.startswith("/"):
                        os.close(fd)
                        fd = -1
                        fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                        where = "/"
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), shown)
                _check_dir(st, shown, trusted)
            except BaseException:
                if nfd >= 0:
                    os.close(nfd)
                raise
            os.close(fd)
            fd, where = nfd, shown
        return os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
    finally:
        if fd >= 0:
            os.close(fd)


def open_checked_dir(path: str) -> int:
    """An ``O_RDONLY|O_DIRECTORY`` descriptor of the directory ``path``, reached from / with
    every directory and link on the way checked (the module doc); UnsafeFileError or OSError."""
    return _open_dir(path)


def _split(path: str | os.PathLike[str]) -> tuple[str, str, str]:
    """(the path as given, its directory, its last component); the last must name a file."""
    name = os.fspath(path)
    directory, leaf = posixpath.split(name)
    if leaf in ("", ".", ".."):
        raise UnsafeFileError(name, "not a file name", errno.EISDIR)
    return name, directory or ".", leaf


def _check_file(fd: int, shown: str, *, written_in_place: bool) -> None:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFileError(shown, f"it is {_kind(st.st_mode)}, not a regular file")
    if st.st_uid not in (0, os.geteuid()):
        raise UnsafeFileError(shown, f"it is owned by uid {st.st_uid}, not by you")
    if st.st_mode & 0o022:
        raise UnsafeFileError(shown, f"it is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o}): anyone "
                              "could have changed it")
    if written_in_place and st.st_nlink != 1:
        raise UnsafeFileError(shown, f"it has {st.st_nlink} hard links: another name for it could be someone else's")


def _refuse_existing(dir_fd: int, leaf: str, shown: str, exc: OSError) -> OSError:
    """The error for an existing entry that could not be opened: why, in words (the stat is
    for the message only; the open already refused)."""
    if exc.errno == errno.ELOOP:
        return UnsafeFileError(shown, "it is a symbolic link (refusing to follow it)", errno.ELOOP)
    with contextlib.suppress(OSError):
        mode = os.stat(leaf, dir_fd=dir_fd, follow_symlinks=False).st_mode
        if not stat.S_ISREG(mode):
            return UnsafeFileError(shown, f"it is {_kind(mode)}, not a regular file", exc.errno or errno.EPERM)
    return OSError(exc.errno, exc.strerror, shown)


def open_append(path: str | os.PathLike[str], *, readable: bool = False) -> int:
    """An ``O_APPEND`` descriptor (``O_RDWR`` with ``readable``) of ``path``: a new file
    (0600), or an existing one that passes the checks. UnsafeFileError or OSError."""
    return open_append_created(path, readable=readable)[0]


def open_append_created(path: str | os.PathLike[str], *, readable: bool = False) -> tuple[int, bool]:
    """``open_append``, and whether this call created the file (``remove_created`` can then
    take it back when what it was for failed)."""
    shown, directory, leaf = _split(path)
    flags = ((os.O_RDWR if readable else os.O_WRONLY) | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NOCTTY
             | os.O_NONBLOCK)
    dir_fd = _open_dir(directory)
    try:
        created = False
        for _ in range(_TRIES):
            try:
                fd = os.open(leaf, flags | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=dir_fd)
                created = True
                os.fchmod(fd, 0o600)  # whatever the umask
                break
            except FileExistsError:
                pass
            try:
                fd = os.open(leaf, flags, dir_fd=dir_fd)
            except FileNotFoundError:
                continue  # removed in between: create it after all
            except OSError as exc:
                raise _refuse_existing(dir_fd, leaf, shown, exc) from None
            try:
                _check_file(fd, shown, written_in_place=True)
            except BaseException:
                os.close(fd)
                raise
            break
        else:
            raise UnsafeFileError(shown, "it keeps appearing and disappearing", errno.EAGAIN)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return fd, created
    finally:
        os.close(dir_fd)


def remove_created(path: str | os.PathLike[str], fd: int) -> bool:
    """Unlink ``path`` if it is still the very file open on ``fd`` (same st_dev and st_ino,
    looked up without following a link in the directory reached as ``open_append`` reaches
    it: only root or we can replace entries there); a file swapped in meanwhile is left
    alone. For a file ``open_append_created`` just created. Whether it was removed."""
    _, directory, leaf = _split(path)
    mine = os.fstat(fd)
    try:
        dir_fd = _open_dir(directory)
    except OSError:
        return False
    try:
        there = os.stat(leaf, dir_fd=dir_fd, follow_symlinks=False)
        if (there.st_dev, there.st_ino) != (mine.st_dev, mine.st_ino):
            return False
        os.unlink(leaf, dir_fd=dir_fd)
        return True
    except OSError:
        return False
    finally:
        os.close(dir_fd)


def replace(path: str | os.PathLike[str], chunks: Iterable[bytes]) -> None:
    """Write ``chunks`` to ``path`` atomically: a random-named ``O_EXCL`` temporary file in
    the same directory, fsync, rename over ``path``, fsync the directory."""
    shown, directory, leaf = _split(path)
    dir_fd = _open_dir(directory)
    tmp = ""
    try:
        try:
            old = os.open(leaf, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        else:
            try:
                if stat.S_ISLNK(os.fstat(old).st_mode):
                    raise UnsafeFileError(shown, "it is a symbolic link (refusing to replace it)", errno.ELOOP)
                _check_file(old, shown, written_in_place=False)
            finally:
                os.close(old)
        fd = -1
        for _ in range(_TRIES):
            # secrets.token_hex is this, but importing secrets loads hashlib and libcrypto:
            # 3.6 MiB of RSS (0.5 MiB private) in every daemon (README, "Fleets")
            tmp = f".{leaf[:200]}.{os.urandom(8).hex()}.tmp"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                             dir_fd=dir_fd)
                break
            except FileExistsError:
                continue
        else:
            tmp = ""
            raise UnsafeFileError(shown, "no free temporary name beside it", errno.EEXIST)
        with open(fd, "wb", closefd=True) as f:
            os.fchmod(fd, 0o600)
            f.writelines(chunks)
            f.flush()
            os.fsync(fd)
        os.rename(tmp, leaf, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        tmp = ""
        os.fsync(dir_fd)
    finally:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
        os.close(dir_fd)


def read_regular(path: str | os.PathLike[str], limit: int, what: str) -> bytes:
    """The content of the regular file ``path`` (see the module doc); more than ``limit``
    bytes is refused: ``what`` (e.g. "topology") says in the message whose limit it is.
    UnsafeFileError or OSError, both naming the file."""
    shown = os.fspath(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        pfd = os.open(shown, os.O_PATH | os.O_CLOEXEC)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, shown) from None
    try:
        st = os.fstat(pfd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFileError(shown, f"it is {_kind(st.st_mode)}, not a regular file", errno.EINVAL)
        try:
            fd = os.open(f"/proc/self/fd/{pfd}", flags)  # the inode judged, whatever the name leads to now
        except FileNotFoundError:  # no /proc: by name, then made sure it is the file judged
            fd = os.open(shown, flags)
            if not os.path.samestat(os.fstat(fd), st):
                os.close(fd)
                raise UnsafeFileError(shown, "it was replaced while being opened", errno.EAGAIN) from None
    except UnsafeFileError:
        raise
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, shown) from None
    finally:
        os.close(pfd)
    chunks: list[bytes] = []
    size = 0
    try:
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, shown) from None
    finally:
        os.close(fd)
    if size > limit:
        raise UnsafeFileError(shown, f"it is larger than {_size(limit)}, the most fakesysfs reads for {what}",
                              errno.EFBIG)
    return b"".join(chunks)


def _size(nbytes: int) -> str:
    return f"{nbytes >> 20} MiB" if nbytes >= 1 << 20 and not nbytes & ((1 << 20) - 1) else f"{nbytes} bytes"


def _check_private(fd: int, shown: str) -> None:
    st = os.fstat(fd)
    if st.st_uid != os.geteuid():
        raise UnsafeFileError(shown, f"it belongs to uid {st.st_uid}, not to you")
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise UnsafeFileError(shown, f"it has mode {stat.S_IMODE(st.st_mode):04o}, not 0700: others can get in")


def private_dir(path: str | os.PathLike[str]) -> int:
    """An ``O_RDONLY|O_DIRECTORY`` descriptor of the directory ``path`` (made 0700 if missing),
    which must be ours with no access for group or others; UnsafeFileError otherwise."""
    shown, directory, leaf = _split(path)
    dir_fd = _open_dir(directory)
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(leaf, 0o700, dir_fd=dir_fd)
        try:
            fd = os.open(leaf, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafeFileError(shown, "it is a symbolic link (refusing to follow it)", errno.ELOOP) from None
            if exc.errno == errno.ENOTDIR:
                raise UnsafeFileError(shown, "it is not a directory", errno.ENOTDIR) from None
            raise OSError(exc.errno, exc.strerror, shown) from None
    finally:
        os.close(dir_fd)
    try:
        _check_private(fd, shown)
    except BaseException:
        os.close(fd)
        raise
    return fd


def fresh_private_dir(parent: str | int, prefix: str) -> tuple[str, int]:
    """A new 0700 directory ``prefix`` + random letters in ``parent`` (a path, checked as
    above, or a descriptor of a directory already checked): its name and a descriptor."""
    dir_fd = _open_dir(parent) if isinstance(parent, str) else parent
    try:
        for _ in range(_TRIES):
            name = prefix + os.urandom(6).hex()
            try:
                os.mkdir(name, 0o700, dir_fd=dir_fd)
            except FileExistsError:
                continue
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            try:
                _check_private(fd, name)
            except BaseException:
                os.close(fd)
                raise
            return name, fd
        raise UnsafeFileError(f"{parent}/{prefix}*", "no free name", errno.EEXIST)
    finally:
        if isinstance(parent, str):
            os.close(dir_fd)
