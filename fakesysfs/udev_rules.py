"""A udev rules runner: rules files applied to a mount's uevents as systemd-udevd 252 would.

``fakesysfs udev MOUNTPOINT --rules FILE [--rules FILE...]`` (and ``fakesysfs run --rules FILE``) reads
the mount's events from its control socket and, for each event, walks the rules the way
``udev_rules_apply_to_event()`` does (systemd src/udev/udev-rules.c):

- parsing: ``KEY[{ATTR}]OP"VALUE"`` pairs separated by commas, ``\\`` line continuation,
  ``#`` comments, ``e"..."`` escaped values, ``\\"`` inside values; an invalid pair, key,
  operator or attribute drops the whole line with udev's message; tokens of a line are
  sorted (all matches before all assignments, in udev's token-type order); GOTO resolves
  to the next LABEL of that name in the same file;
- matching: ``==``/``!=`` with ``|`` alternatives, each a plain string or an fnmatch(3)
  glob (``*?[``), an empty alternative matching the empty string; ATTR values lose trailing
  whitespace unless the pattern ends in some; a failed read never matches;
- keys: ACTION, DEVPATH, KERNEL, SUBSYSTEM, DRIVER, ATTR{file}, ENV{key}, TEST{mode},
  CONST{arch|virt}, TAG, PROGRAM/RESULT, the parent keys KERNELS/SUBSYSTEMS/DRIVERS/
  ATTRS (one ancestor must match all of a line's parent keys), ENV{key}=/+=, ATTR{file}=
  (one write of the value, no newline, through the mount, applied at once; a failure is
  logged, as udevd does, and checked by reading back), TAG=/+=/-=, RUN=/+=/:= (executed
  after all rules with the device's properties as the whole environment), LABEL, GOTO;
  substitutions ``$kernel %k $number %n $devpath %p $driver %d $attr{f} %s{f} $env{k}
  %E{k} $major %M $minor %m $result %c $devnode %N $root %r $sys %S $$ %%``;
  ``[SUBSYSTEM/KERNEL]attr`` device references in ATTR, TEST and ``$attr``.
- not supported (reported once per key, with where it is first used, when the rules are
  loaded): IMPORT{...}, SYMLINK, NAME, OWNER, GROUP, MODE, SECLABEL, SYSCTL, OPTIONS,
  RUN{builtin}, TAGS. An unsupported match never matches (so its line does not apply);
  an unsupported assignment is skipped, the rest of its line still applies.

The paths rules see are those of the real ``/sys``: ``$sys`` is ``/sys``, absolute
``/sys/...`` paths in TEST and ``[...]`` lookups are read from the mount, and RUN and
PROGRAM commands run with the mount at ``/sys`` (bound there in a private mount namespace
unless it is ``/sys`` already), so ``echo online > /sys$devpath/state`` reaches the fake,
never the host. They run as root sealed off the host's kernel as ``fakesysfs run`` seals
its command (``nsops.seal_program``: locked mounts, the host's sysfs read-only below the
fake, no module files, capabilities that end at their own user namespace), since the
events that start them are the command's; ``--programs=host`` runs them as they are.
Writes go through the mount, never to a host sysfs: the runner refuses to start unless
its root is a fakesysfs FUSE mount. ATTR reads and writes (and ``$attr``) resolve their
path beneath the mount's root (openat2 RESOLVE_BENEATH): an absolute name is below the
device (udev joins it to the device's path), and a ``..`` or symlink leading out of the
mount is refused with EINVAL, as sd-device's device_chase() refuses what resolves outside
/sys. TEST only stats, as udevd does. Events are processed one at a time, in SEQNUM
order (udevd would run unrelated devices in parallel).
"""

from __future__ import annotations

import errno
import logging
import os
import platform
import re
import shlex
import stat
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum

from .engine.events import Uevent
from .errors import RulesError
from .fdops import FUSE_SUPER_MAGIC, fs_type, open_beneath
from .netlink import UdevDatabase, sd_device_properties, udev_properties

__all__ = ["RulesError", "RulesRunner", "UdevRules", "fnmatch_udev", "udev_replace_chars"]

log = logging.getLogger("fakesysfs.udev")

#: Where udevd looks for RUN/PROGRAM commands given without a path (UDEVLIBEXECDIR).
UDEV_LIBEXEC_DIR = "/lib/udev"
#: udevd's default event timeout (udev.conf event_timeout=180).
PROGRAM_TIMEOUT = 180.0
#: The largest rules file read (a distribution's whole rules.d is well under 1 MiB).
MAX_RULES_BYTES = 16 << 20


# -- tokens -------------------------------------------------------------------------------------
class Tk(IntEnum):
    """udev-rules.c UdevRuleTokenType, in its order: a line's tokens are sorted by it."""

    M_ACTION = 0
    M_DEVPATH = 1
    M_KERNEL = 2
    M_DEVLINK = 3
    M_NAME = 4
    M_ENV = 5
    M_CONST = 6
    M_TAG = 7
    M_SUBSYSTEM = 8
    M_DRIVER = 9
    M_ATTR = 10
    M_SYSCTL = 11
    M_PARENTS_KERNEL = 12
    M_PARENTS_SUBSYSTEM = 13
    M_PARENTS_DRIVER = 14
    M_PARENTS_ATTR = 15
    M_PARENTS_TAG = 16
    M_TEST = 17
    M_PROGRAM = 18
    M_IMPORT = 19
    M_RESULT = 25
    A_OPTIONS = 26
    A_OWNER = 33
    A_GROUP = 34
    A_MODE = 35
    A_TAG = 39
    A_STATIC_NODE = 40
    A_SECLABEL = 41
    A_ENV = 42
    A_NAME = 43
    A_DEVLINK = 44
    A_ATTR = 45
    A_SYSCTL = 46
    A_RUN_BUILTIN = 47
    A_RUN_PROGRAM = 48


_PARENT_TOKENS = (Tk.M_PARENTS_KERNEL, Tk.M_PARENTS_SUBSYSTEM, Tk.M_PARENTS_DRIVER, Tk.M_PARENTS_ATTR, Tk.M_PARENTS_TAG)
#: Match tokens whose value is a '|' list (type_has_nulstr_value).
_NULSTR = frozenset(t for t in Tk if t < Tk.M_TEST) | {Tk.M_RESULT}

OP_MATCH, OP_NOMATCH, OP_ADD, OP_REMOVE, OP_ASSIGN, OP_ASSIGN_FINAL = "==", "!=", "+=", "-=", "=", ":="

#: Keys parsed but not simulated: what they would need and what the runner does instead.
_UNSUPPORTED_WHY = {
    "IMPORT": "imports properties from programs, files, builtins, the database or the command line",
    "SYMLINK": "manages /dev symlinks",
    "NAME": "renames network interfaces",
    "OWNER": "sets /dev node ownership",
    "GROUP": "sets /dev node ownership",
    "MODE": "sets /dev node permissions",
    "SECLABEL": "sets security labels",
    "SYSCTL": "would write the host's /proc/sys",
    "OPTIONS": "tunes udevd itself (escaping, inotify, link priority, static nodes, logging)",
    "RUN{builtin}": "runs udevd-internal builtins",
    "TAGS": "matches tags of parent devices from udev's database",
}


class _Line:
    __slots__ = ("file", "goto", "goto_label", "has_devlink", "has_name", "label", "number", "text", "tokens",
                 "updates")

    def __init__(self, file: str, number: int, text: str) -> None:
        self.file = file
        self.number = number
        self.text = text
        self.tokens: list[_Token] = []
        self.label: str | None = None
        self.goto_label: str | None = None
        self.goto: int | None = None  # index of the LABEL line in the file's line list
        self.updates = False  # LINE_UPDATE_SOMETHING
        self.has_devlink = False
        self.has_name = False

    @property
    def where(self) -> str:
        return f"{self.file}:{self.number}"


@dataclass(slots=True)
class _Token:
    type: Tk
    op: str
    value: str
    attr: str | None
    text: str
    line: _Line
    supported: bool = True
    # matches only:
    patterns: tuple[str, ...] = ()
    match_empty: bool = False  # MATCH_TYPE_EMPTY: the value must be empty
    with_empty: bool = False  # an empty alternative ("|foo")
    glob: bool = False
    subsystem_kw: bool = False  # MATCH_TYPE_SUBSYSTEM
    strip_trailing: bool = False  # ATTR: MATCH_REMOVE_TRAILING_WHITESPACE
    mode: int | None = None  # TEST{mode}

    @property
    def is_match(self) -> bool:
        return self.op in (OP_MATCH, OP_NOMATCH)


# -- globbing -----------------------------------------------------------------------------------
_GLOB_CACHE: dict[str, re.Pattern[str]] = {}


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """fnmatch(3) with flags 0: ``*`` and ``?`` also match '/' and a leading '.', ``\\``
    quotes the next character, ``[...]``/``[!...]``/``[^...]`` with ranges."""
    cached = _GLOB_CACHE.get(pattern)
    if cached is not None:
        return cached
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "\\" and i < n:
            out.append(re.escape(pattern[i]))
            i += 1
        elif c == "[":
            j = i
            if j < n and pattern[j] in "!^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:  # no closing bracket: a literal '['
                out.append(re.escape(c))
                continue
            body = pattern[i:j]
            i = j + 1
            negate = body[:1] in ("!", "^")
            if negate:
                body = body[1:]
            body = body.replace("\\", "\\\\").replace("[", "\\[")
            out.append(f"[{'^' if negate else ''}{body}]")
        else:
            out.append(re.escape(c))
    compiled = re.compile("".join(out), re.DOTALL)
    _GLOB_CACHE[pattern] = compiled
    return compiled


def fnmatch_udev(pattern: str, text: str) -> bool:
    return _glob_regex(pattern).fullmatch(text) is not None


_ALLOWED_PLAIN = frozenset("#+-.:=@_")


def udev_replace_chars(text: str, allow: str = "") -> str:
    """udev_replace_chars(): keep alphanumerics, ``#+-.:=@_``, ``allow`` and valid UTF-8;
    whitespace becomes a space, anything else '_'."""
    out = []
    for ch in text:
        if (ch.isascii() and ch.isalnum()) or ch in _ALLOWED_PLAIN or ch in allow or ord(ch) > 127:
            out.append(ch)
        elif ch.isspace():
            out.append(" ")
        else:
            out.append("_")
    return "".join(out)


# -- parsing ------------------------------------------------------------------------------------
_WHITESPACE = " \t\n\r"


class _ParseError(Exception):
    pass


def _parse_value(s: str, i: int) -> tuple[str, int]:
    """udev_rule_parse_value(): optional 'e' prefix, then a double-quoted string."""
    escaped = False
    if s.startswith("e", i):
        escaped = True
        i += 1
    if i >= len(s) or s[i] != '"':
        raise _ParseError
    i += 1
    out = []
    while True:
        if i >= len(s):
            raise _ParseError
        c = s[i]
        if c == '"':
            break
        if c == "\\" and i + 1 < len(s) and (escaped or s[i + 1] == '"'):
            out.append(s[i : i + 2])
            i += 2
            continue
        out.append(c)
        i += 1
    raw = "".join(out)
    if escaped:
        try:
            value = raw.encode("latin-1", "backslashreplace").decode("unicode_escape")
        except UnicodeDecodeError:
            raise _ParseError from None
    else:
        value = raw.replace('\\"', '"')
    return value, i + 1


def _parse_pairs(text: str) -> Iterable[tuple[str, str | None, str, str, str]]:
    """(key, attr, op, value, token text) for each pair of a rule line; _ParseError."""
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in _WHITESPACE + ",":
            i += 1
        if i >= n:
            return
        start = i
        while True:
            if i >= n:
                raise _ParseError
            if text[i] in _WHITESPACE + "={":
                break
            if text[i] in "+-!:" and i + 1 < n and text[i + 1] == "=":
                break
            i += 1
        key = text[start:i]
        attr = None
        if text[i] == "{":
            close = text.find("}", i + 1)
            if close < 0:
                raise _ParseError
            attr = text[i + 1 : close]
            i = close + 1
        while i < n and text[i] in _WHITESPACE:
            i += 1
        for op in (OP_MATCH, OP_NOMATCH, OP_ADD, OP_REMOVE, OP_ASSIGN, OP_ASSIGN_FINAL):
            if text.startswith(op, i):
                break
        else:
            raise _ParseError
        i += len(op)
        while i < n and text[i] in _WHITESPACE:
            i += 1
        value, i = _parse_value(text, i)
        yield key, attr, op, value, text[start:i]


class UdevRules:
    """Parsed rules files, in the order given (udevd sorts rules.d files by name; pass them
    in the order you want applied)."""

    def __init__(self) -> None:
        self.files: list[tuple[str, list[_Line]]] = []
        self.messages: list[str] = []
        #: key -> (first "file:line", number of uses); reported once by ``report_unsupported``.
        self.unsupported: dict[str, tuple[str, int]] = {}

    @classmethod
    def load(cls, paths: Sequence[str], *, report: bool = True) -> UdevRules:
        from .safefile import read_regular

        rules = cls()
        for path in paths:
            try:  # a regular file of bounded size only: a FIFO or device is never read
                text = read_regular(path, MAX_RULES_BYTES, "a rules file").decode("utf-8", "surrogateescape")
            except OSError as exc:
                raise RulesError(f"cannot read rules file {path}: {exc.strerror or exc}") from None
            rules.parse(text, path)
        if report:
            rules.report_unsupported()
        return rules

    @classmethod
    def from_text(cls, text: str, name: str = "<rules>") -> UdevRules:
        rules = cls()
        rules.parse(text, name)
        return rules

    def _msg(self, where: str, level: int, text: str) -> None:
        self.messages.append(f"{where} {text}")
        log.log(level, "%s %s", where, text)

    def parse(self, text: str, name: str) -> None:
        lines: list[_Line] = []
        continuation: str | None = None
        number = 0
        # udevd numbers a continued line by its last physical line.
        for number, raw in enumerate(text.replace("\r\n", "\n").split("\n"), 1):
            line = raw.lstrip(_WHITESPACE)
            if line.startswith("#"):  # comments end nothing, even inside a continuation
                continue
            if continuation is not None:
                line = continuation + line
            if line.endswith("\\"):
                continuation = line[:-1]
                continue
            continuation = None
            if line.strip(_WHITESPACE):
                parsed = self._parse_line(name, number, line)
                if parsed is not None:
                    lines.append(parsed)
        if continuation is not None:
            self._msg(f"{name}:{number}", logging.ERROR, "Unexpected EOF after line continuation, line ignored.")
        self._resolve_goto(lines)
        self.files.append((name, lines))

    def _resolve_goto(self, lines: list[_Line]) -> None:
        for index, line in enumerate(lines):
            if line.goto_label is None:
                continue
            for j in range(index + 1, len(lines)):
                if lines[j].label == line.goto_label:
                    line.goto = j
                    break
            else:
                self._msg(line.where, logging.ERROR, f'GOTO="{line.goto_label}" has no matching label, ignoring.')
                line.goto_label = None

    def _parse_line(self, file: str, number: int, text: str) -> _Line | None:
        line = _Line(file, number, text)
        try:
            pairs = list(_parse_pairs(text))
        except _ParseError:
            self._msg(line.where, logging.ERROR, "Invalid key/value pair, ignoring.")
            return None
        for key, attr, op, value, token_text in pairs:
            try:
                self._add_token(line, key, attr, op, value, token_text)
            except _ParseError as exc:
                self._msg(line.where, logging.ERROR, str(exc))
                return None
        if not (line.tokens or line.label or line.goto_label):
            self._msg(line.where, logging.DEBUG, "The line has no effect, ignoring.")
            return None
        line.tokens.sort(key=lambda t: t.type)  # sort_tokens(): stable, by token type
        return line

    def _unsupported(self, line: _Line, key: str) -> None:
        where, count = self.unsupported.get(key, (line.where, 0))
        self.unsupported[key] = (where, count + 1)

    def _add_token(self, line: _Line, key: str, attr: str | None, op: str, value: str, text: str) -> None:
        is_match = op in (OP_MATCH, OP_NOMATCH)

        def invalid(what: str) -> _ParseError:
            return _ParseError(f"Invalid {what} for {key}.")

        def no_attr() -> None:
            if attr is not None:
                raise invalid("attribute")

        def match_only() -> None:
            if not is_match:
                raise invalid("operator")

        def add(tk: Tk, tok_op: str = op, supported: bool = True) -> _Token:
            token = _Token(tk, tok_op, value, attr, text, line, supported)
            if tk < Tk.A_OPTIONS:
                self._init_match(token)
            line.tokens.append(token)
            if tk >= Tk.A_OPTIONS or tk in (Tk.M_PROGRAM, Tk.M_IMPORT):
                if tk in (Tk.A_DEVLINK, Tk.A_OWNER, Tk.A_GROUP, Tk.A_MODE):
                    line.has_devlink = True
                elif tk == Tk.A_NAME:
                    line.has_name = True
                else:
                    line.updates = True
            return token

        simple = {"ACTION": Tk.M_ACTION, "DEVPATH": Tk.M_DEVPATH, "KERNEL": Tk.M_KERNEL, "SUBSYSTEM": Tk.M_SUBSYSTEM,
                  "DRIVER": Tk.M_DRIVER, "KERNELS": Tk.M_PARENTS_KERNEL, "SUBSYSTEMS": Tk.M_PARENTS_SUBSYSTEM,
                  "DRIVERS": Tk.M_PARENTS_DRIVER, "RESULT": Tk.M_RESULT}
        if key in simple:
            no_attr()
            match_only()
            if key == "SUBSYSTEM" and value in ("bus", "class"):
                self._msg(line.where, logging.WARNING, f'"{value}" must be specified as "subsystem".')
            add(simple[key])
        elif key == "TAGS":
            no_attr()
            match_only()
            self._unsupported(line, "TAGS")
            add(Tk.M_PARENTS_TAG, supported=False)
        elif key == "ENV":
            if not attr:
                raise invalid("attribute")
            if op == OP_REMOVE:
                raise invalid("operator")
            if op == OP_ASSIGN_FINAL:
                self._msg(line.where, logging.WARNING,
                          f"{key} key takes '==', '!=', '=', or '+=' operator, assuming '='.")
                op = OP_ASSIGN
            if not is_match and attr in ("ACTION", "DEVPATH", "SUBSYSTEM", "SEQNUM", "DEVNAME", "MAJOR", "MINOR",
                                         "DRIVER", "IFINDEX", "DEVTYPE", "USEC_INITIALIZED", "DEVLINKS",
                                         "TAGS", "CURRENT_TAGS", "DEVMODE", "DEVUID", "DEVGID"):
                raise _ParseError(f"Invalid ENV attribute. '{attr}' cannot be set.")
            add(Tk.M_ENV if is_match else Tk.A_ENV, op)
        elif key == "CONST":
            if attr not in ("arch", "virt"):
                raise invalid("attribute")
            match_only()
            add(Tk.M_CONST)
        elif key == "TAG":
            no_attr()
            if op == OP_ASSIGN_FINAL:
                op = OP_ASSIGN
            add(Tk.M_TAG if is_match else Tk.A_TAG, op)
        elif key in ("ATTR", "ATTRS"):
            if not attr:
                raise invalid("attribute")
            if key == "ATTRS":
                match_only()
                add(Tk.M_PARENTS_ATTR)
                return
            if op == OP_REMOVE:
                raise invalid("operator")
            if op in (OP_ADD, OP_ASSIGN_FINAL):
                self._msg(line.where, logging.WARNING, f"{key} key takes '==', '!=', or '=' operator, assuming '='.")
                op = OP_ASSIGN
            add(Tk.M_ATTR if is_match else Tk.A_ATTR, op)
        elif key == "TEST":
            mode = None
            if attr:
                try:
                    mode = int(attr, 8)
                except ValueError:
                    raise _ParseError(f"Failed to parse mode '{attr}': Invalid argument") from None
            match_only()
            add(Tk.M_TEST).mode = mode
        elif key == "PROGRAM":
            no_attr()
            if op == OP_REMOVE:
                raise invalid("operator")
            add(Tk.M_PROGRAM, op if is_match else OP_MATCH)
        elif key == "RUN":
            if is_match or op == OP_REMOVE:
                raise invalid("operator")
            if attr is None or attr == "program":
                add(Tk.A_RUN_PROGRAM)
            elif attr == "builtin":
                self._unsupported(line, "RUN{builtin}")
                add(Tk.A_RUN_BUILTIN, supported=False)
            else:
                raise invalid("attribute")
        elif key == "GOTO":
            no_attr()
            if op != OP_ASSIGN:
                raise invalid("operator")
            if line.goto_label is not None:
                self._msg(line.where, logging.WARNING, f'Contains multiple GOTO keys, ignoring GOTO="{value}".')
                return
            line.goto_label = value
        elif key == "LABEL":
            no_attr()
            if op != OP_ASSIGN:
                raise invalid("operator")
            line.label = value
        elif key == "IMPORT":
            if not attr or attr not in ("file", "program", "builtin", "db", "cmdline", "parent"):
                raise invalid("attribute")
            if op == OP_REMOVE:
                raise invalid("operator")
            self._unsupported(line, "IMPORT")
            add(Tk.M_IMPORT, op if is_match else OP_MATCH, supported=False)
        elif key in ("SYMLINK", "NAME"):
            no_attr()
            self._unsupported(line, key)
            if is_match:
                add(Tk.M_DEVLINK if key == "SYMLINK" else Tk.M_NAME, supported=False)
            else:
                add(Tk.A_DEVLINK if key == "SYMLINK" else Tk.A_NAME, supported=False)
        elif key in ("OWNER", "GROUP", "MODE"):
            no_attr()
            if is_match or op == OP_REMOVE:
                raise invalid("operator")
            self._unsupported(line, key)
            add({"OWNER": Tk.A_OWNER, "GROUP": Tk.A_GROUP, "MODE": Tk.A_MODE}[key], supported=False)
        elif key == "SECLABEL":
            if not attr:
                raise invalid("attribute")
            if is_match or op == OP_REMOVE:
                raise invalid("operator")
            self._unsupported(line, key)
            add(Tk.A_SECLABEL, supported=False)
        elif key == "SYSCTL":
            if not attr:
                raise invalid("attribute")
            if op == OP_REMOVE:
                raise invalid("operator")
            self._unsupported(line, key)
            add(Tk.M_SYSCTL if is_match else Tk.A_SYSCTL, supported=False)
        elif key == "OPTIONS":
            no_attr()
            if is_match or op == OP_REMOVE:
                raise invalid("operator")
            self._unsupported(line, key)
            add(Tk.A_STATIC_NODE if value.startswith("static_node=") else Tk.A_OPTIONS, supported=False)
        else:
            raise _ParseError(f"Invalid key '{key}'.")

    @staticmethod
    def _init_match(token: _Token) -> None:
        """rule_line_add_token(): match type and the '|' list."""
        value = token.value
        if token.type == Tk.M_SUBSYSTEM and value in ("subsystem", "bus", "class"):
            token.subsystem_kw = True
        elif value == "":
            token.match_empty = True
        else:
            token.glob = any(c in value for c in "*?[")
        if token.type in _NULSTR and not token.subsystem_kw and not token.match_empty:
            parts = value.split("|")
            token.patterns = tuple(p for p in parts if p)
            token.with_empty = any(p == "" for p in parts)
        else:
            token.patterns = (value,)
        if token.type in (Tk.M_ATTR, Tk.M_PARENTS_ATTR):
            token.strip_trailing = bool(value) and value[-1] not in _WHITESPACE

    def report_unsupported(self) -> None:
        """One warning per unsupported key (real udevd would act on it; we cannot)."""
        for key, (where, count) in sorted(self.unsupported.items()):
            uses = "once" if count == 1 else f"{count} times"
            why = _UNSUPPORTED_WHY.get(key, "")
            log.warning("%s is not supported by fakesysfs udev (%s); used %s, first at %s: such matches never "
                        "match, such assignments are skipped", key, why, uses, where)

    @property
    def line_count(self) -> int:
        return sum(len(lines) for _, lines in self.files)


# -- devices --------------------------------------------------------------------------------------
class _SysDevice:
    """A device directory of the mount, read as sd-device reads /sys."""

    def __init__(self, runner: RulesRunner, devpath: str) -> None:
        self.runner = runner
        self.devpath = devpath
        self.syspath = runner.root + devpath
        self.sysname = devpath.rsplit("/", 1)[-1].replace("!", "/")
        self._attr_cache: dict[str, str | None] = {}

    def _link_name(self, name: str) -> str | None:
        try:
            return os.path.basename(os.readlink(os.path.join(self.syspath, name)))
        except OSError:
            return None

    @property
    def subsystem(self) -> str | None:
        return self._link_name("subsystem")

    @property
    def driver(self) -> str | None:
        return self._link_name("driver")

    def sysattr(self, name: str) -> str | None:
        """sd_device_get_sysattr_value(): cached per event; a link reads as its target's
        name; trailing newlines dropped; None when unreadable."""
        if name in self._attr_cache:
            return self._attr_cache[name]
        value = self.runner.read_sysattr(f"{self.syspath}/{name}")
        self._attr_cache[name] = value
        return value

    def set_sysattr_cache(self, name: str, value: str | None) -> None:
        self._attr_cache[name] = value

    def parent(self) -> _SysDevice | None:
        path = self.devpath
        while "/" in path.strip("/"):
            path = path.rsplit("/", 1)[0]
            if os.path.exists(self.runner.root + path + "/uevent"):
                return _SysDevice(self.runner, path)
        return None


class _Event:
    """The device of one event while the rules run (udev's UdevEvent + sd_device)."""

    def __init__(self, runner: RulesRunner, uevent: Uevent) -> None:
        self.uevent = uevent
        self.dev = _SysDevice(runner, uevent.devpath)
        self.props = sd_device_properties(uevent)
        self.tags: list[str] = []
        self.run: list[tuple[str, _Token]] = []
        self.run_final = False
        self.program_result: str | None = None
        self.dev_parent: _SysDevice | None = None
        self.usec_initialized: int | None = None

    @property
    def driver(self) -> str | None:
        """sd_device_get_driver(): the DRIVER property, else the ``driver`` link (which then
        becomes a property)."""
        driver = self.props.get("DRIVER")
        if driver is None:
            driver = self.dev.driver
            if driver is not None:
                self.props["DRIVER"] = driver
        return driver


# -- the runner -------------------------------------------------------------------------------------
_ARCH = {"x86_64": "x86-64", "i386": "x86", "i686": "x86", "aarch64": "arm64", "ppc64le": "ppc64-le",
         "ppc64": "ppc64", "s390x": "s390x", "riscv64": "riscv64", "loongarch64": "loongarch64"}

_FORMATS = (  # udev-event.c map[] in its order: first name that prefixes the text wins
    ("devnode", "N"), ("tempnode", "N"), ("attr", "s"), ("sysfs", "s"), ("env", "E"), ("kernel", "k"),
    ("number", "n"), ("driver", "d"), ("devpath", "p"), ("id", "b"), ("major", "M"), ("minor", "m"),
    ("result", "c"), ("parent", "P"), ("name", "D"), ("links", "L"), ("root", "r"), ("sys", "S"),
)
_FORMAT_CHARS = {c for _, c in _FORMATS}


def _is_fakesysfs_mount(path: str) -> bool:
    """Whether ``path`` is (the top of) a fakesysfs FUSE mount, by /proc/self/mountinfo."""
    target = os.path.abspath(path)
    found = None
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            for entry in f:
                fields = entry.split()
                if len(fields) < 10 or "-" not in fields:
                    continue
                sep = fields.index("-")
                mount_point = fields[4].replace("\\040", " ")
                if mount_point == target:
                    found = (fields[sep + 1], fields[sep + 2])
    except OSError:
        return False
    return found is not None and found[0].startswith("fuse") and found[1] == "fakesysfs"


class RulesRunner:
    """Applies ``UdevRules`` to events, reading and writing attributes under ``root``."""

    def __init__(self, rules: UdevRules, root: str = "/sys", *, consts: dict[str, str] | None = None,
                 programs: str = "auto", timeout: float = PROGRAM_TIMEOUT, check_mount: bool = True) -> None:
        """``programs``: "auto" (run RUN/PROGRAM with ``root`` at /sys, sealed off the host's
        kernel as ``fakesysfs run`` seals its command: ``nsops.seal_program``; when root is
        not /sys, with it bound there in a private mount namespace, which needs root),
        "host" (directly, so they see the host's /sys), or "skip"."""
        self.rules = rules
        # abspath, not realpath: this may run where touching the mount would deadlock (the
        # FUSE daemon's ready callback); the mount is first used by process().
        self.root = os.path.abspath(root)
        self.consts = {"arch": _ARCH.get(platform.machine(), platform.machine()), "virt": "none"}
        self.consts.update(consts or {})
        self.timeout = timeout
        self.db = UdevDatabase()
        self._root_fd: int | None = None  # the mount's root while an event is processed
        self._real_root: str | None = None
        self._verify_root = check_mount
        self._checked = not check_mount
        self._refused = False
        if programs == "auto":
            if self.root == "/sys":
                programs = "sealed"
            elif os.geteuid() == 0:
                programs = "private-sys"
            else:
                log.warning("RUN and PROGRAM commands are skipped: running them with %s at /sys needs root "
                            "(use 'fakesysfs run --rules', or --programs=host to run them against the host's /sys)",
                            self.root)
                programs = "skip"
        self.programs = "direct" if programs == "host" else programs
        #: (written path, value, errno or 0) of every ATTR assignment, for tests and logs.
        self.writes: list[tuple[str, str, int]] = []
        #: (command, exit status or -errno) of every RUN program.
        self.ran: list[tuple[str, int]] = []

    # -- entry point ------------------------------------------------------------------------------
    def check_mount(self) -> None:
        """RulesError unless ``root`` is a fakesysfs mount (ATTR writes must never reach a
        real sysfs)."""
        if not _is_fakesysfs_mount(self.root):
            raise RulesError(f"{self.root} is not a fakesysfs mount: refusing to apply udev rules there "
                             "(they write sysfs attributes)")
        self._checked = True

    def process(self, uevent: Uevent) -> tuple[dict[str, str], list[str]]:
        """Apply the rules to one event; returns the device's properties and tags as udevd
        would broadcast them afterwards."""
        if not self._checked:
            try:
                self.check_mount()
            except RulesError as exc:
                if not self._refused:
                    log.error("%s", exc)
                    self._refused = True
                return udev_properties(uevent, None, (), self.db.usec_initialized(uevent)), []
        event = _Event(self, uevent)
        try:
            self._root_fd = self._open_root()
        except OSError as exc:
            log.error("%s: cannot open %s: %s", event.dev.sysname, self.root, exc.strerror)
        try:
            for _name, lines in self.rules.files:
                index = 0
                while index < len(lines):
                    line = lines[index]
                    jump = self._apply_line(line, event)
                    index = jump if jump is not None else index + 1
        finally:
            if self._root_fd is not None:
                os.close(self._root_fd)
                self._root_fd = None
        usec = self.db.usec_initialized(uevent)
        event.usec_initialized = usec
        if event.run:
            for command, token in event.run:
                self._run_program(event, command, token)
        props = udev_properties(uevent, event.props, event.tags, usec)
        return props, list(event.tags)

    def _apply_line(self, line: _Line, event: _Event) -> int | None:
        updates = line.updates or line.goto_label is not None
        if event.uevent.action != "remove" and "MAJOR" in event.props:
            updates = updates or line.has_devlink
        if not updates:
            return None
        parents_done = False
        for token in line.tokens:
            if token.type in _PARENT_TOKENS:
                if parents_done:
                    continue
                if not self._match_parents(line, token, event):
                    return None
                parents_done = True
                continue
            if not self._apply_token(token, event):
                return None
        if line.goto is not None:
            log.debug("%s: %s GOTO=%s", event.dev.sysname, line.where, line.goto_label)
            return line.goto
        return None

    # -- matching ---------------------------------------------------------------------------------
    @staticmethod
    def _match_string(token: _Token, value: str | None) -> bool:
        s = value or ""
        if token.subsystem_kw:
            found = s in ("subsystem", "class", "bus")
        elif token.match_empty:
            found = s == ""
        elif token.with_empty and s == "":
            found = True
        elif token.glob:
            found = any(fnmatch_udev(p, s) for p in token.patterns)
        else:
            found = s in token.patterns
        return found == (token.op == OP_MATCH)

    def _match_parents(self, line: _Line, _head: _Token, event: _Event) -> bool:
        tokens = [t for t in line.tokens if t.type in _PARENT_TOKENS]
        dev: _SysDevice | None = event.dev
        while dev is not None:
            if all(self._match_parent_token(t, dev, event) for t in tokens):
                event.dev_parent = dev
                return True
            dev = dev.parent()
        event.dev_parent = None
        return False

    def _match_parent_token(self, token: _Token, dev: _SysDevice, event: _Event) -> bool:
        if not token.supported:
            return False
        if token.type == Tk.M_PARENTS_KERNEL:
            return self._match_string(token, dev.sysname)
        if token.type == Tk.M_PARENTS_SUBSYSTEM:
            sub = event.props.get("SUBSYSTEM") if dev is event.dev else dev.subsystem
            return self._match_string(token, sub)
        if token.type == Tk.M_PARENTS_DRIVER:
            return self._match_string(token, event.driver if dev is event.dev else dev.driver)
        return self._match_attr(token, dev, event)

    def _match_attr(self, token: _Token, dev: _SysDevice, event: _Event) -> bool:
        assert token.attr is not None
        name = token.attr
        if name.startswith("["):
            value = self._resolve_subsys_attr(self.format(name, event, token))
        else:
            if "$" in name or "%" in name:
                name = self.format(name, event, token)
            value = dev.sysattr(name)
        if value is None:
            return False
        if token.strip_trailing:
            value = value.rstrip(_WHITESPACE + "\v\f")
        return self._match_string(token, value)

    def _apply_token(self, token: _Token, event: _Event) -> bool:
        t = token.type
        if not token.supported:
            return not token.is_match  # matches fail, assignments are skipped
        if t == Tk.M_ACTION:
            return self._match_string(token, event.uevent.action)
        if t == Tk.M_DEVPATH:
            return self._match_string(token, event.uevent.devpath)
        if t == Tk.M_KERNEL:
            return self._match_string(token, event.dev.sysname)
        if t == Tk.M_ENV:
            return self._match_string(token, event.props.get(token.attr or ""))
        if t == Tk.M_CONST:
            return self._match_string(token, self.consts.get(token.attr or ""))
        if t == Tk.M_TAG:
            want = token.op == OP_MATCH
            if any(self._match_string(token, tag) == want for tag in event.tags):
                return want
            return not want
        if t == Tk.M_SUBSYSTEM:
            return self._match_string(token, event.uevent.subsystem)
        if t == Tk.M_DRIVER:
            return self._match_string(token, event.driver)
        if t == Tk.M_ATTR:
            return self._match_attr(token, event.dev, event)
        if t == Tk.M_TEST:
            return self._test(token, event)
        if t == Tk.M_PROGRAM:
            return self._program(token, event)
        if t == Tk.M_RESULT:
            return self._match_string(token, event.program_result)
        if t == Tk.A_ENV:
            return self._assign_env(token, event)
        if t == Tk.A_TAG:
            tag = self.format(token.value, event, token)
            if token.op == OP_REMOVE:
                if tag in event.tags:
                    event.tags.remove(tag)
            else:
                if token.op == OP_ASSIGN:
                    event.tags.clear()
                if tag and tag not in event.tags and re.fullmatch(r"[A-Za-z0-9_\-]+", tag):
                    event.tags.append(tag)
            return True
        if t == Tk.A_ATTR:
            self._assign_attr(token, event)
            return True
        if t == Tk.A_RUN_PROGRAM:
            if event.run_final:
                return True
            if token.op == OP_ASSIGN_FINAL:
                event.run_final = True
            if token.op in (OP_ASSIGN, OP_ASSIGN_FINAL):
                event.run.clear()
            event.run.append((self.format(token.value, event, token), token))
            return True
        raise AssertionError(f"unhandled token {t!r}")

    def _test(self, token: _Token, event: _Event) -> bool:
        path = self.format(token.value, event, token)
        if path.startswith("["):
            resolved = self._resolve_subsys_path(path)
            path = resolved if resolved is not None else path
        if not path.startswith("/"):
            path = os.path.join(event.dev.syspath, path)
        else:
            path = self._host_path(path)
        path_or_none = _attr_subst_subdir(path)
        if path_or_none is None:
            return token.op == OP_NOMATCH
        try:
            st = os.stat(path_or_none)
        except OSError:
            return token.op == OP_NOMATCH
        if token.mode is None:
            return token.op == OP_MATCH
        found = bool(st.st_mode & token.mode)
        return found == (token.op == OP_MATCH)

    def _assign_env(self, token: _Token, event: _Event) -> bool:
        name = token.attr or ""
        if token.value == "":
            if token.op != OP_ADD:
                event.props.pop(name, None)
            return True
        value = self.format(token.value, event, token)
        if token.op == OP_ADD and name in event.props:
            value = f"{event.props[name]} {value}"
        event.props[name] = value
        return True

    def _assign_attr(self, token: _Token, event: _Event) -> None:
        name = token.attr or ""
        path = self._resolve_subsys_path(name) if name.startswith("[") else None
        if path is None:
            # udev-rules.c TK_A_ATTR: strscpyl(syspath, "/", key_name): "/tmp/x" is below the device
            path = f"{event.dev.syspath}/{name}"
        resolved = _attr_subst_subdir(path)
        if resolved is None:
            log.error("%s: %s %s: Could not find file matches \"%s\", ignoring.", event.dev.sysname,
                      token.line.where, token.text, path)
            return
        value = self.format(token.value, event, token)
        err = self.write_sysattr(resolved, value)
        self.writes.append((resolved, value, err))
        if err:
            log.error("%s: %s Failed to write ATTR{%s}, ignoring: %s", event.dev.sysname, token.line.where,
                      resolved, os.strerror(err))
        else:
            log.info("%s: %s %s: wrote \"%s\" to %s", event.dev.sysname, token.line.where, event.uevent.action,
                     value, resolved)
            if os.path.dirname(resolved) == event.dev.syspath:
                event.dev.set_sysattr_cache(os.path.basename(resolved), value)

    # -- files ------------------------------------------------------------------------------------
    def _host_path(self, path: str) -> str:
        """An absolute path as a rule means it: ``/sys/...`` is the mount."""
        if path == "/sys" or path.startswith("/sys/"):
            return self.root + path[4:]
        return path

    def _beneath(self, path: str) -> str | None:
        """``path`` relative to the mount's root, if it names something there (textually:
        the open then resolves it without ever leaving the root); None otherwise."""
        if self._real_root is None:
            self._real_root = os.path.realpath(self.root)
        for root in (self.root, self._real_root):
            if path == root:
                return "."
            if path.startswith(root.rstrip("/") + "/"):
                return path[len(root.rstrip("/")) + 1 :]
        return None

    def _open(self, path: str, flags: int) -> int:
        """Open an attribute path as sd-device does since systemd 256 (device_chase():
        symlinks and ``..`` resolved, then refused with EINVAL unless the result is still
        under /sys), here under the mount's root: openat2 RESOLVE_BENEATH, so no rule text,
        ``..`` or symlink makes the runner (root) open a host file."""
        rel = self._beneath(path)
        if rel is None:
            raise OSError(errno.EINVAL, "outside the sysfs mount")
        root_fd = self._root_fd if self._root_fd is not None else self._open_root()
        try:
            # openat2 refuses O_PATH with any flag O_PATH ignores (build_open_flags)
            extra = 0 if flags & os.O_PATH else os.O_NOCTTY | os.O_NONBLOCK
            return open_beneath(root_fd, rel, flags | extra)
        except OSError as exc:
            if exc.errno == errno.EXDEV:  # would leave the root
                raise OSError(errno.EINVAL, "outside the sysfs mount") from None
            raise
        finally:
            if root_fd != self._root_fd:
                os.close(root_fd)

    def _open_root(self) -> int:
        """The mount's root, opened anew for each event (held, it would keep ``umount``
        busy); still a FUSE filesystem when the runner checked the mount (a root path
        swapped for a symlink elsewhere is refused, not written beneath)."""
        fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        if self._verify_root and fs_type(fd) != FUSE_SUPER_MAGIC:
            os.close(fd)
            raise OSError(errno.EINVAL, f"{self.root} is no longer a FUSE mount")
        return fd

    def read_sysattr(self, path: str) -> str | None:
        """sd_device_get_sysattr_value(): a link reads as its target's name, a directory or
        an unreadable file as nothing, a file as its first 4096 bytes; never outside the mount."""
        try:
            fd = self._open(path, os.O_PATH | os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if stat.S_ISLNK(st.st_mode):
                return os.path.basename(os.readlink("", dir_fd=fd))
            if not stat.S_ISREG(st.st_mode) or not st.st_mode & stat.S_IRUSR:
                return None
            with open(os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK), "rb") as f:
                data = f.read(4096)
        except OSError:
            return None
        finally:
            os.close(fd)
        return data.decode("utf-8", "replace").rstrip("\n")

    def write_sysattr(self, path: str, value: str) -> int:
        """write_string_file(VERIFY_ON_FAILURE|AVOID_NEWLINE|DISABLE_BUFFER): one write of
        the value; on failure, success anyway if the file already holds it. 0 or errno.
        EINVAL for a path that leads out of the mount (device_chase)."""
        try:
            fd = self._open(path, os.O_WRONLY | os.O_NOFOLLOW)
        except OSError as exc:
            return exc.errno or errno.EIO
        try:
            os.write(fd, value.encode("utf-8", "surrogateescape"))
            return 0
        except OSError as exc:
            current = self.read_sysattr(path)
            if current is not None and current.rstrip("\n") == value.rstrip("\n"):
                return 0
            return exc.errno or errno.EIO
        finally:
            os.close(fd)

    def _resolve_subsys_path(self, text: str) -> str | None:
        """``[SUBSYSTEM/KERNEL]attr`` -> the path (udev_resolve_subsys_kernel)."""
        match = re.fullmatch(r"\[([^/\]]+)/([^\]]+)\](?:/?(.*))?", text)
        if match is None:
            return None
        subsystem, kernel, attr = match.group(1), match.group(2), match.group(3) or ""
        for base in (f"/class/{subsystem}/{kernel}", f"/bus/{subsystem}/devices/{kernel}"):
            candidate = self.root + base
            if os.path.exists(candidate):
                real = os.path.realpath(candidate)
                return os.path.join(real, attr) if attr else real
        return None

    def _resolve_subsys_attr(self, text: str) -> str | None:
        path = self._resolve_subsys_path(text)
        if path is None or not re.fullmatch(r"\[[^/\]]+/[^\]]+\]/?.+", text):
            return None
        return self.read_sysattr(path)

    # -- substitutions ----------------------------------------------------------------------------
    def format(self, text: str, event: _Event, token: _Token | None = None) -> str:
        """udev_event_apply_format(): ``$name{arg}`` and ``%c{arg}`` substitutions."""
        out, i, n = [], 0, len(text)
        while i < n:
            c = text[i]
            kind = None
            if c == "$" and i + 1 < n:
                if text[i + 1] == "$":
                    out.append("$")
                    i += 2
                    continue
                for name, char in _FORMATS:
                    if text.startswith(name, i + 1):
                        kind = char
                        i += 1 + len(name)
                        break
            elif c == "%" and i + 1 < n:
                if text[i + 1] == "%":
                    out.append("%")
                    i += 2
                    continue
                if text[i + 1] in _FORMAT_CHARS:
                    kind = text[i + 1]
                    i += 2
            if kind is None:
                out.append(c)
                i += 1
                continue
            arg = None
            if i < n and text[i] == "{":
                close = text.find("}", i + 1)
                if close < 0:
                    log.error("%s: %s: missing closing brace in \"%s\"", event.dev.sysname,
                              token.line.where if token else "", text)
                    return "".join(out)
                arg = text[i + 1 : close]
                i = close + 1
            out.append(self._subst(kind, arg, event))
        return "".join(out)

    def _subst(self, kind: str, arg: str | None, event: _Event) -> str:
        dev, props = event.dev, event.props
        if kind == "N":
            return props.get("DEVNAME", "")
        if kind == "s":
            if not arg:
                return ""
            if arg.startswith("["):
                value = self._resolve_subsys_attr(arg)
            else:
                value = dev.sysattr(arg)
                if value is None and event.dev_parent is not None:
                    value = event.dev_parent.sysattr(arg)
            return udev_replace_chars(value.rstrip(_WHITESPACE), "/ $%?,") if value is not None else ""
        if kind == "E":
            if arg in ("TAGS", "CURRENT_TAGS") and event.tags:  # device_properties_prepare()
                return ":" + ":".join(event.tags) + ":"
            return props.get(arg or "", "")
        if kind == "k":
            return dev.sysname
        if kind == "n":
            match = re.search(r"\d+$", dev.sysname)
            return match.group(0) if match else ""
        if kind == "d":
            holder = event.dev_parent or dev
            return (event.driver if holder is dev else holder.driver) or ""
        if kind == "p":
            return event.uevent.devpath
        if kind == "b":
            return event.dev_parent.sysname if event.dev_parent not in (None, dev) else ""
        if kind in ("M", "m"):
            return props.get("MAJOR" if kind == "M" else "MINOR", "0")
        if kind == "c":
            return self._result_part(event.program_result or "", arg)
        if kind == "r":
            return "/dev"
        if kind == "S":
            return "/sys"
        return ""  # P (parent node), D (interface name), L (links): not simulated

    @staticmethod
    def _result_part(result: str, arg: str | None) -> str:
        if not arg:
            return result
        match = re.fullmatch(r"(\d+)(\+?)", arg)
        if match is None:
            return result
        parts = result.split()
        index = int(match.group(1)) - 1
        if index < 0 or index >= len(parts):
            return ""
        return " ".join(parts[index:]) if match.group(2) else parts[index]

    # -- programs ---------------------------------------------------------------------------------
    def _argv(self, command: str) -> list[str]:
        try:
            argv = shlex.split(command)
        except ValueError:
            argv = command.split()
        if argv and not argv[0].startswith("/"):
            argv[0] = os.path.join(UDEV_LIBEXEC_DIR, argv[0])
        return argv

    def _environment(self, event: _Event) -> dict[str, str]:
        """udevd passes the device's properties as the whole environment (no PATH)."""
        env = {k: v for k, v in event.props.items() if not k.startswith(".")}
        if event.tags:
            env["TAGS"] = env["CURRENT_TAGS"] = ":" + ":".join(event.tags) + ":"
        if event.usec_initialized is not None:  # set once the rules ran, before RUN
            env["USEC_INITIALIZED"] = str(event.usec_initialized)
        return env

    def _spawn(self, event: _Event, command: str) -> tuple[int, str]:
        """Run ``command``; (exit status or -errno, stdout)."""
        argv = self._argv(command)
        if not argv:
            return -errno.EINVAL, ""
        preexec: Callable[[], None] | None = None
        if self.programs in ("sealed", "private-sys"):
            from .nsops import seal_program

            sys_root = self.root if self.programs == "private-sys" else None

            def preexec() -> None:
                seal_program(sys_root)

        try:
            done = subprocess.run(argv, env=self._environment(event), stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=self.timeout, preexec_fn=preexec, check=False)
        except subprocess.TimeoutExpired:
            log.error("%s: Spawned process '%s' timed out after %.0f s, killed", event.dev.sysname, command,
                      self.timeout)
            return -errno.ETIMEDOUT, ""
        except OSError as exc:
            return -(exc.errno or errno.EIO), ""
        except subprocess.SubprocessError as exc:  # the preexec hook failed
            log.error("%s: cannot run '%s' with %s at /sys: %s", event.dev.sysname, command, self.root, exc)
            return -errno.EPERM, ""
        for stream, data in (("out", done.stdout), ("err", done.stderr)):
            for text in data.decode("utf-8", "replace").splitlines():
                log.debug("%s: '%s'(%s) '%s'", event.dev.sysname, command, stream, text)
        status = done.returncode if done.returncode >= 0 else 128 - done.returncode
        return status, done.stdout.decode("utf-8", "replace")

    def _program(self, token: _Token, event: _Event) -> bool:
        event.program_result = None
        if self.programs == "skip":
            return token.op == OP_NOMATCH
        command = self.format(token.value, event, token)
        status, output = self._spawn(event, command)
        if status != 0:
            if status < 0:
                log.warning("%s: %s Failed to execute \"%s\": %s", event.dev.sysname, token.line.where, command,
                            os.strerror(-status))
            return token.op == OP_NOMATCH
        event.program_result = udev_replace_chars(output.rstrip("\n"), "/ $%?,")
        return token.op == OP_MATCH

    def _run_program(self, event: _Event, command: str, token: _Token) -> None:
        if self.programs == "skip":
            self.ran.append((command, -errno.EPERM))
            return
        log.info("%s: %s %s: running '%s'", event.dev.sysname, token.line.where, event.uevent.action, command)
        status, _ = self._spawn(event, command)
        self.ran.append((command, status))
        if status < 0:
            log.warning("%s: Failed to execute '%s': %s", event.dev.sysname, command, os.strerror(-status))
        elif status:
            log.warning("%s: Process '%s' failed with exit code %d.", event.dev.sysname, command, status)


def _attr_subst_subdir(path: str) -> str | None:
    """Resolve one ``/*/`` in ``path`` to the first matching subdirectory; None if none."""
    marker = path.find("/*/")
    if marker < 0:
        return path
    head, tail = path[: marker + 1], path[marker + 2 :]
    try:
        names = sorted(os.listdir(head))
    except OSError:
        return None
    for name in names:
        if name.startswith("."):
            continue
        if os.path.lexists(head + name + tail):
            return head + name + tail
    return None


# -- a runner on a live event stream -----------------------------------------------------------------
def run_rules(mountpoint: str, rules: UdevRules, *, consts: dict[str, str] | None = None, programs: str = "auto",
              after: int | None = None, on_event: Callable[[Uevent], None] | None = None,
              on_ready: Callable[[], None] | None = None) -> int:
    """Apply ``rules`` to the events of the mount at ``mountpoint`` until it goes away;
    ``on_ready`` runs once the subscription stands (events from then on are seen)."""
    from .control import ControlClient, find_control_socket

    runner = RulesRunner(rules, mountpoint, consts=consts, programs=programs)
    runner.check_mount()
    with ControlClient(find_control_socket(mountpoint)) as client:
        client.subscribe(after=after)
        if on_ready is not None:
            on_ready()
        for event in client.events():
            runner.process(event)
            if on_event is not None:
                on_event(event)
    return 0
