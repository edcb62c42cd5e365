"""Kernel-exact text parsers and formatters (R-SYS-04, R-DAX-ID-01: lib/kstrtox.c, lib/string.c,
drivers/dax/bus.c do_id_store)."""

from __future__ import annotations

import errno
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fakesysfs.errors import KernelError
from fakesysfs.klib import (
    STRING_UNITS_2,
    STRING_UNITS_10,
    STRING_UNITS_NO_BYTES,
    STRING_UNITS_NO_SPACE,
    format_cpumap,
    format_node_list,
    kstrtobool,
    kstrtoint,
    kstrtol,
    kstrtoll,
    kstrtouint,
    kstrtoul,
    kstrtoull,
    parse_dax_id,
    parse_range_list,
    string_get_size,
    sysfs_match_string,
    sysfs_streq,
)

U64_MAX = 2**64 - 1


def raises_errno(err: int, fn, *args, **kwargs) -> None:
    with pytest.raises(KernelError) as info:
        fn(*args, **kwargs)
    assert info.value.errno == err


# --------------------------------------------------------------------------------------
# sysfs_streq / sysfs_match_string
# --------------------------------------------------------------------------------------


def test_sysfs_streq_matches_identical_strings():
    assert sysfs_streq("online", "online")
    assert sysfs_streq("", "")


def test_sysfs_streq_ignores_one_trailing_newline_on_either_side():
    assert sysfs_streq("online", "online\n")
    assert sysfs_streq("online\n", "online")
    assert sysfs_streq("online\n", "online\n")
    assert sysfs_streq("", "\n")
    assert sysfs_streq("\n", "")


def test_sysfs_streq_does_not_ignore_a_second_newline():
    assert not sysfs_streq("online", "online\n\n")
    assert not sysfs_streq("online\n\n", "online")


def test_sysfs_streq_treats_leading_and_trailing_spaces_as_significant():
    assert not sysfs_streq("online", " online")
    assert not sysfs_streq("online", "online ")
    assert not sysfs_streq("online", "online \n")


def test_sysfs_streq_is_case_sensitive():
    assert not sysfs_streq("online", "Online")


def test_sysfs_streq_rejects_prefixes():
    assert not sysfs_streq("online", "online_movable")
    assert not sysfs_streq("online_movable", "online")


def test_sysfs_streq_stops_at_the_first_nul_like_a_c_string():
    assert sysfs_streq("online", "online\0garbage")


@given(st.text(alphabet=st.characters(exclude_characters="\0")))
def test_sysfs_streq_property_newline_suffix_is_ignored(a):
    assert sysfs_streq(a, a + "\n")
    assert sysfs_streq(a + "\n", a)


@given(st.text(max_size=6), st.text(max_size=6))
def test_sysfs_streq_property_is_symmetric(a, b):
    assert sysfs_streq(a, b) == sysfs_streq(b, a)


POLICIES = ("contig-zones", "auto-movable")


def test_sysfs_match_string_returns_index_of_streq_match():
    assert sysfs_match_string(POLICIES, "contig-zones") == 0
    assert sysfs_match_string(POLICIES, "auto-movable\n") == 1


def test_sysfs_match_string_returns_first_of_duplicate_entries():
    assert sysfs_match_string(("a", "b", "a"), "a") == 0


def test_sysfs_match_string_without_match_is_einval():
    raises_errno(errno.EINVAL, sysfs_match_string, POLICIES, "auto-movable ")
    raises_errno(errno.EINVAL, sysfs_match_string, POLICIES, "Auto-movable")
    raises_errno(errno.EINVAL, sysfs_match_string, (), "x")


def test_sysfs_match_string_stops_at_a_none_entry_like_a_null():
    raises_errno(errno.EINVAL, sysfs_match_string, ("a", None, "b"), "b")


# --------------------------------------------------------------------------------------
# kstrtobool (R-SYS-04 table)
# --------------------------------------------------------------------------------------

# (text, value) kstrtobool() accepts in every profile
SPEC_BOOL_ACCEPTED = [
    ("yes", True),
    ("10", True),
    ("on", True),
    ("ONION", True),
    ("no", False),
    ("off", False),
    ("0x", False),
    ("true", True),
    ("false", False),
    ("t", True),
    ("f", False),
]
# accepted from Linux 6.16 (profile 6.18)
SPEC_BOOL_616 = [("enable", True), ("disable", False), ("e", True), ("d", False)]
SPEC_BOOL_REJECTED = ["", "\n", "o", " 1", "x", "2"]


@pytest.mark.parametrize(("text", "value"), SPEC_BOOL_ACCEPTED)
def test_kstrtobool_spec_table_accepted_in_every_profile(text, value):
    assert kstrtobool(text) is value
    assert kstrtobool(text, enable_disable=False) is value


@pytest.mark.parametrize(("text", "value"), SPEC_BOOL_616)
def test_kstrtobool_spec_table_enable_disable_accepted_from_6_16(text, value):
    assert kstrtobool(text, enable_disable=True) is value


@pytest.mark.parametrize(("text", "_value"), SPEC_BOOL_616)
def test_kstrtobool_enable_disable_rejected_before_6_16(text, _value):
    raises_errno(errno.EINVAL, kstrtobool, text, enable_disable=False)


@pytest.mark.parametrize("text", SPEC_BOOL_REJECTED)
def test_kstrtobool_spec_table_rejected(text):
    raises_errno(errno.EINVAL, kstrtobool, text)
    raises_errno(errno.EINVAL, kstrtobool, text, enable_disable=False)


@pytest.mark.parametrize("c", "1yYtT")
def test_kstrtobool_first_letter_1_y_t_means_true(c):
    assert kstrtobool(c) is True


@pytest.mark.parametrize("c", "0nNfF")
def test_kstrtobool_first_letter_0_n_f_means_false(c):
    assert kstrtobool(c) is False


def test_kstrtobool_accepts_on_and_off_by_second_letter():
    for text in ("on", "oN", "On", "ON", "onion\n"):
        assert kstrtobool(text) is True
    for text in ("of", "oF", "Of", "OFF", "oftentimes"):
        assert kstrtobool(text) is False
    for text in ("o", "o\n", "ox", "O1"):
        raises_errno(errno.EINVAL, kstrtobool, text)


def test_kstrtobool_enable_disable_letters_are_case_insensitive():
    assert kstrtobool("E") is True
    assert kstrtobool("D") is False


def test_kstrtobool_ignores_everything_after_the_decisive_characters():
    assert kstrtobool("y junk\n\n") is True
    assert kstrtobool("0 1") is False


@given(st.text(max_size=8), st.booleans())
def test_kstrtobool_property_depends_only_on_first_two_characters(text, enable_disable):
    def outcome(s):
        try:
            return kstrtobool(s, enable_disable)
        except KernelError as e:
            return e.errno

    assert outcome(text) == outcome(text[:2])


# --------------------------------------------------------------------------------------
# kstrtoull / kstrtoll / kstrtouint / kstrtoint / kstrtoul
# --------------------------------------------------------------------------------------


def test_kstrtoull_base0_detects_hex_octal_and_decimal():
    assert kstrtoull("0x1F", 0) == 31
    assert kstrtoull("0X1f", 0) == 31
    assert kstrtoull("017", 0) == 15
    assert kstrtoull("0", 0) == 0
    assert kstrtoull("17", 0) == 17


def test_kstrtoull_base0_hex_prefix_needs_a_hex_digit_after_it():
    # "0x" without a hex digit is octal "0" followed by junk
    raises_errno(errno.EINVAL, kstrtoull, "0x", 0)
    raises_errno(errno.EINVAL, kstrtoull, "0xg", 0)
    raises_errno(errno.EINVAL, kstrtoull, "0x\n", 0)


def test_kstrtoull_base0_octal_rejects_8_and_9():
    raises_errno(errno.EINVAL, kstrtoull, "08", 0)
    raises_errno(errno.EINVAL, kstrtoull, "019", 0)


def test_kstrtoull_base16_accepts_an_optional_0x_prefix():
    assert kstrtoull("ff", 16) == 255
    assert kstrtoull("0xff", 16) == 255
    assert kstrtoull("0XFF\n", 16) == 255
    raises_errno(errno.EINVAL, kstrtoull, "0x", 16)
    raises_errno(errno.EINVAL, kstrtoull, "0x0x1", 16)


def test_kstrtoull_base10_does_not_take_a_hex_prefix():
    raises_errno(errno.EINVAL, kstrtoull, "0x10", 10)
    assert kstrtoull("010", 10) == 10


def test_kstrtoull_base8_rejects_a_hex_prefix():
    raises_errno(errno.EINVAL, kstrtoull, "0x10", 8)
    assert kstrtoull("17", 8) == 15


def test_kstrtoull_accepts_one_leading_plus():
    assert kstrtoull("+5", 10) == 5
    assert kstrtoull("+0x10", 0) == 16
    raises_errno(errno.EINVAL, kstrtoull, "++5", 10)
    raises_errno(errno.EINVAL, kstrtoull, "+", 10)


def test_kstrtoull_rejects_minus():
    raises_errno(errno.EINVAL, kstrtoull, "-1", 10)
    raises_errno(errno.EINVAL, kstrtoull, "-0", 10)


def test_kstrtoull_allows_exactly_one_trailing_newline():
    assert kstrtoull("42\n", 10) == 42
    raises_errno(errno.EINVAL, kstrtoull, "42\n\n", 10)
    raises_errno(errno.EINVAL, kstrtoull, "\n", 10)


def test_kstrtoull_rejects_spaces_anywhere():
    for text in (" 42", "42 ", "42 \n", "4 2", "42\t"):
        raises_errno(errno.EINVAL, kstrtoull, text, 10)


def test_kstrtoull_needs_at_least_one_digit():
    raises_errno(errno.EINVAL, kstrtoull, "", 10)
    raises_errno(errno.EINVAL, kstrtoull, "x", 16)


def test_kstrtoull_rejects_non_ascii_digits():
    raises_errno(errno.EINVAL, kstrtoull, "\u0661", 10)  # ARABIC-INDIC DIGIT ONE
    raises_errno(errno.EINVAL, kstrtoull, "1\u00b2", 10)  # SUPERSCRIPT TWO


def test_kstrtoull_stops_at_the_first_nul_like_a_c_string():
    assert kstrtoull("12\0garbage", 10) == 12


def test_kstrtoull_max_value_and_overflow_is_erange():
    assert kstrtoull("18446744073709551615", 10) == U64_MAX
    assert kstrtoull("0xffffffffffffffff", 0) == U64_MAX
    raises_errno(errno.ERANGE, kstrtoull, "18446744073709551616", 10)
    raises_errno(errno.ERANGE, kstrtoull, "0x10000000000000000", 0)


def test_kstrtoull_overflow_takes_precedence_over_trailing_junk():
    raises_errno(errno.ERANGE, kstrtoull, "99999999999999999999 junk", 10)


def test_kstrtoull_rejects_unsupported_base_as_programming_error():
    with pytest.raises(ValueError):
        kstrtoull("1", 17)
    with pytest.raises(ValueError):
        kstrtoull("1", 1)


def test_kstrtoul_is_64_bit_on_x86_64():
    assert kstrtoul("18446744073709551615", 0) == U64_MAX
    raises_errno(errno.ERANGE, kstrtoul, "18446744073709551616", 0)


def test_kstrtouint_range_is_32_bit_and_minus_one_is_einval():
    assert kstrtouint("4294967295", 0) == 2**32 - 1
    raises_errno(errno.ERANGE, kstrtouint, "4294967296", 0)
    raises_errno(errno.EINVAL, kstrtouint, "-1", 0)


def test_kstrtoll_accepts_a_sign_and_the_full_signed_range():
    assert kstrtoll("-9223372036854775808", 10) == -(2**63)
    assert kstrtoll("9223372036854775807", 10) == 2**63 - 1
    assert kstrtoll("-0", 10) == 0
    assert kstrtoll("+7", 10) == 7
    assert kstrtoll("-0x10", 0) == -16
    assert kstrtoll("-010", 0) == -8


def test_kstrtoll_out_of_range_is_erange():
    raises_errno(errno.ERANGE, kstrtoll, "-9223372036854775809", 10)
    raises_errno(errno.ERANGE, kstrtoll, "9223372036854775808", 10)
    raises_errno(errno.ERANGE, kstrtoll, "-18446744073709551616", 10)


def test_kstrtoll_rejects_two_signs():
    raises_errno(errno.EINVAL, kstrtoll, "-+1", 10)
    raises_errno(errno.EINVAL, kstrtoll, "+-1", 10)
    raises_errno(errno.EINVAL, kstrtoll, "--1", 10)
    raises_errno(errno.EINVAL, kstrtoll, "-", 10)


def test_kstrtol_is_64_bit_on_x86_64():
    assert kstrtol("-9223372036854775808", 0) == -(2**63)


def test_kstrtoint_range_is_signed_32_bit():
    assert kstrtoint("-2147483648", 0) == -(2**31)
    assert kstrtoint("2147483647\n", 0) == 2**31 - 1
    raises_errno(errno.ERANGE, kstrtoint, "2147483648", 0)
    raises_errno(errno.ERANGE, kstrtoint, "-2147483649", 0)


@given(st.integers(min_value=0, max_value=U64_MAX))
def test_kstrtoull_property_parses_every_u64_in_every_notation(n):
    assert kstrtoull(str(n), 10) == n
    assert kstrtoull(str(n), 0) == n  # "0" is octal zero
    assert kstrtoull(f"{n}\n", 10) == n
    assert kstrtoull(f"+{n}", 10) == n
    assert kstrtoull(f"{n:x}", 16) == n
    assert kstrtoull(f"0x{n:X}", 0) == n
    assert kstrtoull(f"0{n:o}", 0) == n


@given(st.integers(min_value=U64_MAX + 1, max_value=2**80))
def test_kstrtoull_property_values_above_u64_max_are_erange(n):
    raises_errno(errno.ERANGE, kstrtoull, str(n), 10)
    raises_errno(errno.ERANGE, kstrtoull, f"0x{n:x}", 0)
    raises_errno(errno.ERANGE, kstrtoull, f"{n}junk", 10)


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_kstrtoll_property_parses_every_s64(n):
    assert kstrtoll(str(n), 10) == n
    assert kstrtoll(f"{n}\n", 0) == n


@given(st.integers(min_value=-(2**40), max_value=2**40))
def test_kstrtoint_property_erange_exactly_outside_s32(n):
    if -(2**31) <= n < 2**31:
        assert kstrtoint(str(n), 10) == n
    else:
        raises_errno(errno.ERANGE, kstrtoint, str(n), 10)


# --------------------------------------------------------------------------------------
# parse_dax_id (R-DAX-ID-01)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("dax0.0", (0, 0)), ("dax0.0\n", (0, 0)), ("dax-1.0", (-1, 0)), ("dax12.3", (12, 3))],
)
def test_parse_dax_id_spec_table_accepted(text, expected):
    assert parse_dax_id(text) == expected


@pytest.mark.parametrize("text", ["dax00.0", "dax0.0 ", " dax0.0", "dax0.0x", "dax0"])
def test_parse_dax_id_spec_table_rejected(text):
    raises_errno(errno.EINVAL, parse_dax_id, text)


def test_parse_dax_id_rejects_text_that_does_not_print_back_identically():
    for text in ("dax+1.0", "dax 1.0", "dax1. 0", "dax-0.0", "dax1.01", "dax0.0\n\n", "DAX0.0"):
        raises_errno(errno.EINVAL, parse_dax_id, text)


def test_parse_dax_id_rejects_missing_fields():
    for text in ("", "dax", "dax.0", "dax0.", "dax-.0", "region0.0", "dax0,0"):
        raises_errno(errno.EINVAL, parse_dax_id, text)


def test_parse_dax_id_accepts_the_full_int_range_only():
    assert parse_dax_id("dax2147483647.0") == (2**31 - 1, 0)
    assert parse_dax_id("dax-2147483648.-2147483648") == (-(2**31), -(2**31))
    # sscanf stores into an int: these wrap and then print back differently
    for text in ("dax2147483648.0", "dax4294967296.0", "dax0.99999999999999999999999"):
        raises_errno(errno.EINVAL, parse_dax_id, text)


def test_parse_dax_id_stops_at_the_first_nul_like_a_c_string():
    assert parse_dax_id("dax1.2\0junk") == (1, 2)


_CANONICAL_DAX = re.compile(r"dax(-?(?:0|[1-9][0-9]*))\.(-?(?:0|[1-9][0-9]*))\n?")


def _dax_reference(text: str):
    """Independent characterization: canonical %d text, in int range, optional newline."""
    m = _CANONICAL_DAX.fullmatch(text.partition("\0")[0])
    if not m or "-0" in (m.group(1), m.group(2)):
        return None
    a, b = int(m.group(1)), int(m.group(2))
    if not all(-(2**31) <= v < 2**31 for v in (a, b)):
        return None
    return a, b


_dax_like = st.text(alphabet="dax0123456789.-+ \n\t\xa0x", max_size=16) | st.builds(
    lambda a, b, tail: f"dax{a}.{b}{tail}",
    st.integers(min_value=-(2**33), max_value=2**33),
    st.integers(min_value=-(2**33), max_value=2**33),
    st.sampled_from(["", "\n", " ", "\n\n", "x", "\0x"]),
)


@given(_dax_like)
def test_parse_dax_id_property_matches_the_canonical_round_trip_grammar(text):
    expected = _dax_reference(text)
    if expected is None:
        raises_errno(errno.EINVAL, parse_dax_id, text)
    else:
        assert parse_dax_id(text) == expected


# --------------------------------------------------------------------------------------
# format_node_list / parse_range_list
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ids", "text"),
    [([], ""), ([0], "0"), ([0, 1], "0-1"), ([0, 2, 3], "0,2-3"), ([5, 1, 3, 2], "1-3,5")],
)
def test_format_node_list_prints_kernel_range_list(ids, text):
    assert format_node_list(ids) == text


def test_format_node_list_ignores_duplicates():
    assert format_node_list([1, 1, 2]) == "1-2"


def test_format_node_list_rejects_negative_ids():
    with pytest.raises(ValueError):
        format_node_list([-1])


def test_parse_range_list_reads_single_numbers_and_ranges():
    assert parse_range_list("0-3,7") == [0, 1, 2, 3, 7]
    assert parse_range_list("3,1") == [1, 3]
    assert parse_range_list("2-2") == [2]


def test_parse_range_list_empty_or_blank_is_the_empty_set():
    assert parse_range_list("") == []
    assert parse_range_list("\n") == []
    assert parse_range_list(" , ") == []


def test_parse_range_list_accepts_commas_and_whitespace_between_regions():
    assert parse_range_list(" 1 , 2,,3\n") == [1, 2, 3]


def test_parse_range_list_ends_at_a_newline_right_after_a_region():
    # bitmap_parse_region() returns NULL at "\n": the rest is never read
    assert parse_range_list("1\n2") == [1]
    assert parse_range_list("1,\n2") == [1, 2]


def test_parse_range_list_supports_used_slash_group_patterns():
    assert parse_range_list("0-7:2/4") == [0, 1, 4, 5]
    assert parse_range_list("0-1023:2/256") == [0, 1, 256, 257, 512, 513, 768, 769]


def test_parse_range_list_bad_syntax_is_einval():
    for text in ("a", "1-", "-1", "3-1", "1:2/3", "0-3:", "0-3:1", "0-3:3/2", "0-3:1/0", "1x"):
        raises_errno(errno.EINVAL, parse_range_list, text)


def test_parse_range_list_number_above_u32_is_eoverflow():
    raises_errno(errno.EOVERFLOW, parse_range_list, "4294967296")


def test_parse_range_list_n_and_all_need_nbits():
    assert parse_range_list("N", nbits=4) == [3]
    assert parse_range_list("2-N", nbits=4) == [2, 3]
    assert parse_range_list("ALL", nbits=3) == [0, 1, 2]
    assert parse_range_list("all:1/2", nbits=5) == [0, 2, 4]
    raises_errno(errno.EINVAL, parse_range_list, "N")
    raises_errno(errno.EINVAL, parse_range_list, "all")


def test_parse_range_list_bit_beyond_nbits_is_erange():
    raises_errno(errno.ERANGE, parse_range_list, "0-4", nbits=4)
    assert parse_range_list("0-3", nbits=4) == [0, 1, 2, 3]


@given(st.sets(st.integers(min_value=0, max_value=5000), max_size=64))
def test_format_node_list_property_round_trips_through_parse_range_list(ids):
    text = format_node_list(ids)
    assert parse_range_list(text) == sorted(ids)
    assert parse_range_list(text + "\n") == sorted(ids)


# --------------------------------------------------------------------------------------
# format_cpumap
# --------------------------------------------------------------------------------------


def test_format_cpumap_two_possible_cpus_print_one_digit():
    assert format_cpumap({0, 1}, 2) == "3"
    assert format_cpumap({1}, 2) == "2"


def test_format_cpumap_cpu_less_node_prints_zero():
    assert format_cpumap((), 2) == "0"


def test_format_cpumap_separates_32_bit_chunks_with_commas():
    assert format_cpumap(range(64), 64) == "ffffffff,ffffffff"
    assert format_cpumap({0}, 64) == "00000000,00000001"
    assert format_cpumap({32}, 64) == "00000001,00000000"


def test_format_cpumap_pads_only_the_first_chunk_to_its_own_width():
    assert format_cpumap(range(40), 40) == "ff,ffffffff"
    assert format_cpumap({0}, 40) == "00,00000001"
    assert format_cpumap({0}, 33) == "0,00000001"
    assert format_cpumap({0}, 8) == "01"
    assert format_cpumap({0}, 32) == "00000001"


def test_format_cpumap_zero_width_prints_nothing():
    assert format_cpumap((), 0) == ""


def test_format_cpumap_rejects_cpus_outside_nr_cpu_ids():
    with pytest.raises(ValueError):
        format_cpumap({2}, 2)


@given(st.integers(min_value=1, max_value=300), st.data())
def test_format_cpumap_property_hex_digits_encode_the_mask(nr, data):
    cpus = data.draw(st.sets(st.integers(min_value=0, max_value=nr - 1)))
    text = format_cpumap(cpus, nr)
    assert int(text.replace(",", ""), 16) == sum(1 << c for c in cpus)
    first, *rest = text.split(",")
    assert all(len(chunk) == 8 for chunk in rest)
    assert len(first) == -(-(nr % 32 or 32) // 4)


# --------------------------------------------------------------------------------------
# string_get_size
# --------------------------------------------------------------------------------------

# lib/tests/string_helpers_kunit.c test_get_size(): (size, blk_size, units_10, units_2)
KUNIT_GET_SIZE = [
    (0, 512, "0 B", "0 B"),
    (1, 512, "512 B", "512 B"),
    (1100, 1, "1.10 kB", "1.07 KiB"),
    (16384, 512, "8.39 MB", "8.00 MiB"),
    (500118192, 512, "256 GB", "238 GiB"),
    (8192, 4096, "33.6 MB", "32.0 MiB"),
    (3000, 1900, "5.70 MB", "5.44 MiB"),
    (U64_MAX, 4096, "75.6 ZB", "64.0 ZiB"),
    (4096, U64_MAX, "75.6 ZB", "64.0 ZiB"),
]


@pytest.mark.parametrize(("size", "blk", "exp10", "exp2"), KUNIT_GET_SIZE)
@pytest.mark.parametrize(
    ("flags", "cut"),
    [
        (0, ""),
        (STRING_UNITS_NO_SPACE, " "),
        (STRING_UNITS_NO_SPACE | STRING_UNITS_NO_BYTES, " B"),
        (STRING_UNITS_NO_BYTES, "B"),
    ],
)
def test_string_get_size_matches_kernel_kunit_vectors(size, blk, exp10, exp2, flags, cut):
    def strip(s):
        return "".join(c for c in s if c not in cut)

    assert string_get_size(size, blk, STRING_UNITS_10 | flags) == strip(exp10)
    assert string_get_size(size, blk, STRING_UNITS_2 | flags) == strip(exp2)


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (2 << 30, "2.00 GiB"),
        (128 << 20, "128 MiB"),
        (16 << 30, "16.0 GiB"),
        (1536 << 20, "1.50 GiB"),
        (0, "0 B"),
        (5, "5.00 B"),
        (1023, "1023 B"),
        (1024, "1.00 KiB"),
    ],
)
def test_string_get_size_binary_units_as_kmem_prints_them(size, text):
    assert string_get_size(size) == text


def test_string_get_size_keeps_the_kernel_round_up_carry_past_the_divisor():
    # 1048575 B = 1023.999 KiB rounds up to "1024 KiB", not "1.00 MiB"
    assert string_get_size(1048575) == "1024 KiB"


def test_string_get_size_zero_block_size_prints_zero():
    assert string_get_size(12345, 0) == "0 B"


@given(st.integers(min_value=1, max_value=2**32 - 1))
def test_string_get_size_property_three_significant_figures_close_to_value(size):
    text = string_get_size(size)
    number, unit = text.split(" ")
    scale = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}[unit]
    digits = number.replace(".", "").lstrip("0")
    assert len(digits) >= 3 or "." not in number
    assert abs(float(number) * scale - size) <= 0.006 * size + scale * 0.0051


# --------------------------------------------------------------------------------------
# robustness: arbitrary text only ever yields KernelError
# --------------------------------------------------------------------------------------

_junk = st.text(max_size=40) | st.text(alphabet="0123456789abcdefxX+-:/,.Nal \n\t\0", max_size=40)

_PARSERS = [
    lambda t: kstrtobool(t),
    lambda t: kstrtobool(t, enable_disable=False),
    lambda t: kstrtoull(t, 0),
    lambda t: kstrtoull(t, 10),
    lambda t: kstrtoull(t, 16),
    lambda t: kstrtoll(t, 0),
    lambda t: kstrtouint(t, 0),
    lambda t: kstrtoint(t, 8),
    lambda t: kstrtoul(t, 0),
    lambda t: kstrtol(t, 0),
    lambda t: parse_dax_id(t),
    lambda t: parse_range_list(t, nbits=4096),
    lambda t: sysfs_match_string(POLICIES, t),
]


@given(_junk)
def test_parsers_property_junk_only_ever_raises_kernel_error(text):
    for parse in _PARSERS:
        try:
            parse(text)
        except KernelError as e:
            assert e.errno in (errno.EINVAL, errno.ERANGE, errno.EOVERFLOW)
