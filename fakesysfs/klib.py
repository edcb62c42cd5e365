"""Kernel lib text parsers and formatters, bit-exact: shared by the engine and the sysfs handlers.

Each function reproduces one kernel routine (named in its docstring) including its quirks,
and fails the way that routine does: ``KernelError(errno.EINVAL)``, ``KernelError(errno.ERANGE)``
(or, for :func:`parse_range_list`, ``EOVERFLOW``), never anything else for any input text.
Programming errors (an out-of-range argument that is not user text) raise ``ValueError``.

Text is a Python ``str`` whose characters stand for the bytes of the written buffer (the
FUSE layer decodes with latin-1). Like the C routines, the parsers stop at the first NUL.
Classification follows the kernel's ``lib/ctype.c``: digits and hex letters are ASCII only;
whitespace is ``\\t \\n \\v \\f \\r``, space and ``\\xa0`` (latin-1 NBSP is ``_S`` there).

Sources (torvalds/linux and 6.x trees): lib/kstrtox.c, lib/string.c (``sysfs_streq``,
``__sysfs_match_string``), lib/string_helpers.c (``string_get_size``), lib/vsprintf.c
(``bitmap_string``, ``bitmap_list_string``, ``vsscanf``), lib/bitmap-str.c
(``bitmap_parselist``) and drivers/dax/bus.c (``do_id_store``).
"""

from __future__ import annotations

import errno
from collections.abc import Iterable, Sequence

from .errors import KernelError

__all__ = [
    "STRING_UNITS_2",
    "STRING_UNITS_10",
    "STRING_UNITS_NO_BYTES",
    "STRING_UNITS_NO_SPACE",
    "format_cpumap",
    "format_node_list",
    "kstrtobool",
    "kstrtoint",
    "kstrtol",
    "kstrtoll",
    "kstrtouint",
    "kstrtoul",
    "kstrtoull",
    "parse_dax_id",
    "parse_range_list",
    "string_get_size",
    "strtoul_lenient",
    "sysfs_match_string",
    "sysfs_streq",
]

U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1
S32_MIN, S32_MAX = -(1 << 31), (1 << 31) - 1
S64_MIN, S64_MAX = -(1 << 63), (1 << 63) - 1

#: ``isspace()`` in the kernel's ctype table (lib/ctype.c): 9-13, 32 and 160.
_KSPACE = frozenset("\t\n\v\f\r \xa0")
_HEXDIGITS = frozenset("0123456789abcdefABCDEF")


def _einval() -> KernelError:
    return KernelError(errno.EINVAL)


def _erange() -> KernelError:
    return KernelError(errno.ERANGE)


def _cstr(text: str) -> str:
    """The C string the kernel would see: everything before the first NUL."""
    return text.partition("\0")[0]


# --------------------------------------------------------------------------------------
# lib/string.c
# --------------------------------------------------------------------------------------


def sysfs_streq(a: str, b: str) -> bool:
    """Kernel ``sysfs_streq()``: equal, treating NUL and newline-then-NUL as the same end.

    So one trailing ``\\n`` on either side is ignored; everything else (spaces, case,
    a second newline) is significant.
    """
    a, b = _cstr(a), _cstr(b)
    return a == b or a + "\n" == b or a == b + "\n"


def sysfs_match_string(options: Sequence[str | None], text: str) -> int:
    """Kernel ``__sysfs_match_string()``: index of the first option ``sysfs_streq`` to *text*.

    A ``None`` entry ends the array early (as a NULL does in C). No match -> ``EINVAL``.
    """
    for index, item in enumerate(options):
        if item is None:
            break
        if sysfs_streq(item, text):
            return index
    raise _einval()


# --------------------------------------------------------------------------------------
# lib/kstrtox.c
# --------------------------------------------------------------------------------------

_BOOL_TRUE = frozenset("yYtT1")
_BOOL_FALSE = frozenset("nNfF0")
_BOOL_TRUE_616 = frozenset("eE")  # "enable", Linux 6.16+ (commit ae5b3500856f)
_BOOL_FALSE_616 = frozenset("dD")  # "disable", Linux 6.16+


def kstrtobool(text: str, enable_disable: bool = True) -> bool:
    """Kernel ``kstrtobool()``: decide from the first one or two characters only.

    ``1 y Y t T`` -> True, ``0 n N f F`` -> False, ``o``/``O`` then ``n``/``N`` -> True,
    then ``f``/``F`` -> False. With *enable_disable* (Linux 6.16 and later) also
    ``e E`` -> True and ``d D`` -> False. Anything else -> ``EINVAL``.
    """
    s = _cstr(text)
    c0 = s[:1]
    if c0 in _BOOL_TRUE or (enable_disable and c0 in _BOOL_TRUE_616):
        return True
    if c0 in _BOOL_FALSE or (enable_disable and c0 in _BOOL_FALSE_616):
        return False
    if c0 in ("o", "O"):
        c1 = s[1:2]
        if c1 in ("n", "N"):
            return True
        if c1 in ("f", "F"):
            return False
    raise _einval()


def _digit_value(c: str) -> int:
    """The value ``_parse_integer_limit()`` gives a character, or 16 for "not a digit"."""
    o = ord(c)
    if 0x30 <= o <= 0x39:
        return o - 0x30
    lc = o | 0x20  # _tolower(): only A-F/a-f land in 'a'..'f'
    if 0x61 <= lc <= 0x66:
        return lc - 0x61 + 10
    return 16


def _parse_integer(s: str, pos: int, base: int) -> tuple[int, int, bool]:
    """Kernel ``_parse_integer()``: (value, characters consumed, overflowed past u64).

    The kernel keeps going after an overflow (and reports it with ``KSTRTOX_OVERFLOW``);
    because the running value only grows, "overflowed at some step" is the same as "the
    whole digit run exceeds ``ULLONG_MAX``". On overflow the value is ``ULLONG_MAX``.
    """
    res = 0
    n = 0
    end = len(s)
    while pos + n < end:
        val = _digit_value(s[pos + n])
        if val >= base:
            break
        res = res * base + val
        n += 1
    if res > U64_MAX:
        return U64_MAX, n, True
    return res, n, False


def _fixup_radix(s: str, base: int) -> tuple[int, int]:
    """Kernel ``_parse_integer_fixup_radix()``: (start offset, effective base)."""
    if base == 0:
        if s[:1] == "0":
            if s[1:2] in ("x", "X") and s[2:3] in _HEXDIGITS:
                base = 16
            else:
                base = 8
        else:
            base = 10
    if base == 16 and s[:1] == "0" and s[1:2] in ("x", "X"):
        return 2, base
    return 0, base


def strtoul_lenient(s: str, pos: int = 0) -> tuple[int, int]:
    """kernel/sysctl.c strtoul_lenient() with base 0 (what proc_get_long() calls): the
    number at ``s[pos:]`` in the base its prefix says (``0x`` hex, ``0`` octal, else
    decimal), stopping at the first character that is no digit of that base; (value, the
    position after it). ERANGE past ULONG_MAX (64-bit)."""
    skip, base = _fixup_radix(s[pos:], 0)
    value, n, overflow = _parse_integer(s, pos + skip, base)
    if overflow:
        raise _erange()
    return value, pos + skip + n


def _check_base(base: int) -> None:
    if not (base == 0 or 2 <= base <= 16):
        raise ValueError(f"unsupported base {base!r} (kernel kstrto*() take 0 or 2..16)")


def _kstrtoull(s: str, base: int) -> int:
    """Kernel ``_kstrtoull()``: no sign handling; one trailing ``\\n`` allowed."""
    pos, base = _fixup_radix(s, base)
    value, n, overflow = _parse_integer(s, pos, base)
    if overflow:
        raise _erange()  # checked before trailing junk, as in the kernel
    if n == 0:
        raise _einval()
    pos += n
    if s[pos : pos + 1] == "\n":
        pos += 1
    if pos != len(s):
        raise _einval()
    return value


def kstrtoull(text: str, base: int) -> int:
    """Kernel ``kstrtoull()``: unsigned 64-bit; optional leading ``+``, never ``-``.

    Base 0 auto-detects ``0x``/``0X`` (hex, only if a hex digit follows) and ``0`` (octal);
    base 16 accepts an optional ``0x``. At least one digit, at most one trailing ``\\n``,
    nothing else. Too large -> ``ERANGE`` (even if junk follows); otherwise ``EINVAL``.
    """
    _check_base(base)
    s = _cstr(text)
    if s[:1] == "+":
        s = s[1:]
    return _kstrtoull(s, base)


def kstrtoll(text: str, base: int) -> int:
    """Kernel ``kstrtoll()``: signed 64-bit; optional ``-`` or ``+`` (not both)."""
    _check_base(base)
    s = _cstr(text)
    if s[:1] == "-":
        tmp = _kstrtoull(s[1:], base)
        if tmp > 1 << 63:  # (long long)-tmp > 0
            raise _erange()
        return -tmp
    tmp = kstrtoull(s, base)
    if tmp > S64_MAX:  # (long long)tmp < 0
        raise _erange()
    return tmp


def kstrtoul(text: str, base: int) -> int:
    """Kernel ``kstrtoul()``: ``unsigned long`` is 64-bit on x86_64, so this is kstrtoull."""
    return kstrtoull(text, base)


def kstrtol(text: str, base: int) -> int:
    """Kernel ``kstrtol()``: ``long`` is 64-bit on x86_64, so this is kstrtoll."""
    return kstrtoll(text, base)


def kstrtouint(text: str, base: int) -> int:
    """Kernel ``kstrtouint()``: kstrtoull, then ``ERANGE`` above 4294967295."""
    tmp = kstrtoull(text, base)
    if tmp > U32_MAX:
        raise _erange()
    return tmp


def kstrtoint(text: str, base: int) -> int:
    """Kernel ``kstrtoint()``: kstrtoll, then ``ERANGE`` outside signed 32-bit."""
    tmp = kstrtoll(text, base)
    if not S32_MIN <= tmp <= S32_MAX:
        raise _erange()
    return tmp


# --------------------------------------------------------------------------------------
# drivers/dax/bus.c do_id_store(): sscanf(buf, "dax%d.%d") + sprintf + sysfs_streq
# --------------------------------------------------------------------------------------


def _to_s32(value: int) -> int:
    """C conversion of a 64-bit value to ``int`` (GCC: modulo 2**32)."""
    value &= U32_MAX
    return value - (1 << 32) if value > S32_MAX else value


def _scanf_d(s: str, pos: int) -> tuple[int, int] | None:
    """One ``%d`` of the kernel's ``vsscanf()`` (no width/qualifier): (int value, new pos).

    Skips kernel whitespace, takes an optional ``-`` (not ``+``), needs a decimal digit,
    converts with ``simple_strntoll()`` (overflow saturates to ``ULLONG_MAX`` before the
    negation) and stores into an ``int``. ``None`` when the conversion does not match.
    """
    if pos >= len(s):  # "if (!*str) break;"
        return None
    while pos < len(s) and s[pos] in _KSPACE:
        pos += 1
    digit = s[pos : pos + 1]
    if digit == "-":
        digit = s[pos + 1 : pos + 2]
    if not "0" <= digit <= "9":  # also rejects "" (end of string)
        return None
    negative = s[pos] == "-"
    if negative:
        pos += 1
    value, n, _overflow = _parse_integer(s, pos, 10)
    if negative:
        value = (-value) & U64_MAX
    return _to_s32(value), pos + n


def _sscanf_dax_id(s: str) -> tuple[int, int, int]:
    """``sscanf(s, "dax%d.%d", &region_id, &id)``: (fields matched, region_id, id)."""
    pos = 0
    fields = 0
    values = [0, 0]
    for step in ("d", "a", "x", "%d", ".", "%d"):
        if step == "%d":
            got = _scanf_d(s, pos)
            if got is None:
                break
            values[fields], pos = got
            fields += 1
        else:
            if s[pos : pos + 1] != step:
                break
            pos += 1
    return fields, values[0], values[1]


def parse_dax_id(text: str) -> tuple[int, int]:
    """The id grammar of ``new_id``/``remove_id`` (kernel ``do_id_store()``, R-DAX-ID-01).

    ``sscanf(buf, "dax%d.%d")`` must fill both fields, and ``sprintf("dax%d.%d")`` of them
    must ``sysfs_streq`` the input; else ``EINVAL``. Returns (region_id, id) as the signed
    32-bit values printed back (``dax-1.0`` is accepted and gives ``(-1, 0)``).
    """
    s = _cstr(text)
    fields, region_id, dev_id = _sscanf_dax_id(s)
    if fields != 2:
        raise _einval()
    if not sysfs_streq(s, f"dax{region_id}.{dev_id}"):
        raise _einval()
    return region_id, dev_id


# --------------------------------------------------------------------------------------
# lib/vsprintf.c bitmap printing
# --------------------------------------------------------------------------------------


def format_node_list(ids: Iterable[int]) -> str:
    """Kernel ``"%*pbl"`` (``bitmap_list_string()``): ``0``, ``0-1``, ``0,2-3``; empty -> ``""``.

    Also the format of CPU lists (``cpulist``). No trailing newline is added.
    """
    bits = sorted(set(ids))
    if bits and bits[0] < 0:
        raise ValueError(f"negative bit number {bits[0]}")
    parts: list[str] = []
    i = 0
    while i < len(bits):
        lo = hi = bits[i]
        i += 1
        while i < len(bits) and bits[i] == hi + 1:
            hi = bits[i]
            i += 1
        parts.append(str(lo) if lo == hi else f"{lo}-{hi}")
    return ",".join(parts)


def format_cpumap(cpus: Iterable[int], nr_cpu_ids: int) -> str:
    """Kernel ``"%*pb"`` (``bitmap_string()``) with width *nr_cpu_ids*, as ``cpumap`` prints.

    Lower-case hex in 32-bit chunks, most significant first, joined by ``,``. Every chunk
    is zero-padded to 8 digits except the first, which is padded only to the digits its
    ``nr_cpu_ids % 32`` bits need (so 2 CPUs -> ``3``, 40 CPUs all set -> ``ff,ffffffff``).
    ``nr_cpu_ids`` of 0 prints ``""``. No trailing newline is added.
    """
    if nr_cpu_ids < 0:
        raise ValueError(f"negative nr_cpu_ids {nr_cpu_ids}")
    mask = 0
    for cpu in cpus:
        if not 0 <= cpu < nr_cpu_ids:
            raise ValueError(f"cpu {cpu} outside 0..{nr_cpu_ids - 1}")
        mask |= 1 << cpu
    chunksz = nr_cpu_ids & 31 or 32
    i = -(-nr_cpu_ids // 32) * 32 - 32  # ALIGN(nr_bits, 32) - 32
    chunks: list[str] = []
    while i >= 0:
        val = (mask >> i) & ((1 << chunksz) - 1)
        chunks.append(format(val, f"0{-(-chunksz // 4)}x"))
        chunksz = 32
        i -= 32
    return ",".join(chunks)


# --------------------------------------------------------------------------------------
# lib/bitmap-str.c bitmap_parselist()
# --------------------------------------------------------------------------------------


def parse_range_list(text: str, nbits: int | None = None) -> list[int]:
    """Kernel ``bitmap_parselist()``: ``"0-3,7"`` -> ``[0, 1, 2, 3, 7]`` (sorted, unique).

    Regions are separated by commas and/or whitespace: ``N``, ``A-B`` or ``A-B:used/group``
    (e.g. ``0-7:2/4`` -> 0,1,4,5). A region followed directly by ``\\n`` ends the parse.
    With *nbits* (the kernel's ``nmaskbits``) the tokens ``N`` (= nbits-1) and ``all``
    work and a bit >= nbits is ``ERANGE``; without it (config files) those tokens are
    ``EINVAL`` and there is no upper bound. Bad syntax, ``A > B``, ``used > group`` or a
    zero group -> ``EINVAL``; a number above 4294967295 -> ``EOVERFLOW``.
    """
    if nbits is not None and not 0 <= nbits <= S32_MAX:
        raise ValueError(f"nbits {nbits} outside 0..{S32_MAX}")
    s = _cstr(text)
    length = len(s)
    lastbit = (nbits - 1) & U32_MAX if nbits is not None else None
    found: set[int] = set()

    def at(p: int) -> str:
        return s[p] if p < length else "\0"

    def end_of_str(c: str) -> bool:
        return c in ("\0", "\n")

    def end_of_region(c: str) -> bool:
        return c in _KSPACE or c == "," or end_of_str(c)

    def getnum(p: int) -> tuple[int, int]:
        if lastbit is not None and at(p) == "N":
            return lastbit, p + 1
        value, n, overflow = _parse_integer(s, p, 10)
        if n == 0:
            raise _einval()
        if overflow or value > U32_MAX:
            raise KernelError(errno.EOVERFLOW)
        return value, p + n

    pos = 0
    while True:
        # bitmap_find_region(): skip commas and whitespace (a "\n" included).
        while at(pos) in _KSPACE or at(pos) == ",":
            pos += 1
        if end_of_str(at(pos)):
            break
        # bitmap_parse_region()
        done = False
        word = s[pos : pos + 3]
        if lastbit is not None and word.isascii() and word.lower() == "all":
            start, end = 0, lastbit
            pos += 3
            has_end = True
        else:
            start, pos = getnum(pos)
            has_end = not end_of_region(at(pos))
            if has_end:
                if at(pos) != "-":
                    raise _einval()
                end, pos = getnum(pos + 1)
            else:
                end = start
        if has_end and not end_of_region(at(pos)):
            if at(pos) != ":":
                raise _einval()
            off, pos = getnum(pos + 1)
            if at(pos) != "/":
                raise _einval()
            group_len, pos = getnum(pos + 1)
        else:
            off = group_len = (end + 1) & U32_MAX
            done = end_of_str(at(pos))
        # bitmap_check_region()
        if start > end or group_len == 0 or off > group_len:
            raise _einval()
        if nbits is not None and end >= nbits:
            raise _erange()
        # bitmap_set_region(): u32 loop variable, as in C.
        first = start
        while first <= end:
            found.update(range(first, first + min(end - first + 1, off)))
            first = (first + group_len) & U32_MAX
        if done:
            break
    return sorted(found)


# --------------------------------------------------------------------------------------
# lib/string_helpers.c string_get_size()
# --------------------------------------------------------------------------------------

STRING_UNITS_10 = 0
STRING_UNITS_2 = 1
STRING_UNITS_MASK = 1
STRING_UNITS_NO_SPACE = 1 << 30
STRING_UNITS_NO_BYTES = 1 << 31

_UNITS_STR = {
    STRING_UNITS_10: ("", "k", "M", "G", "T", "P", "E", "Z", "Y"),
    STRING_UNITS_2: ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"),
}
_DIVISOR = {STRING_UNITS_10: 1000, STRING_UNITS_2: 1024}
_ROUNDING = (500, 50, 5)


def string_get_size(size: int, blk_size: int = 1, units: int = STRING_UNITS_2) -> str:
    """Kernel ``string_get_size()`` (6.x): *size* x *blk_size* to 3 significant figures.

    The default is what kmem uses, ``string_get_size(size, 1, STRING_UNITS_2, ...)``:
    ``2147483648`` -> ``2.00 GiB``, ``0`` -> ``0 B``. The kernel's precision loss for
    values of 2**32 and above, and its round-up carry (``1024 KiB`` for 1048575) are kept.
    """
    if not 0 <= size <= U64_MAX or not 0 <= blk_size <= U64_MAX:
        raise ValueError("size and blk_size are u64")
    base = units & STRING_UNITS_MASK
    divisor = _DIVISOR[base]
    i = 0
    tmp = ""
    if blk_size == 0:
        size = 0
    if size != 0:
        remainder = 0
        while blk_size >> 32:
            blk_size //= divisor
            i += 1
        while size >> 32:
            size //= divisor
            i += 1
        size *= blk_size  # both below 2**32: no u64 overflow
        while size >= divisor:
            remainder = size % divisor
            size //= divisor
            i += 1
        sf_cap = size
        j = 0
        while sf_cap * 10 < 1000:
            sf_cap *= 10
            j += 1
        if base == STRING_UNITS_2:
            remainder = (remainder * 1000) >> 10
        remainder += _ROUNDING[j]
        if remainder >= 1000:
            remainder -= 1000
            size += 1
        if j:
            tmp = f".{remainder:03d}"[: j + 1]
    unit = _UNITS_STR[base][i] if i < len(_UNITS_STR[base]) else "UNK"
    space = "" if units & STRING_UNITS_NO_SPACE else " "
    suffix = "" if units & STRING_UNITS_NO_BYTES else "B"
    return f"{size & U32_MAX}{tmp}{space}{unit}{suffix}"
