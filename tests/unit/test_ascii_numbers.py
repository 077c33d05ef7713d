"""parse_ascii_int: what a client or a remote server wrote is a number only in ASCII digits (issue 19)."""

import pytest

from core.contract.ascii_numbers import parse_ascii_int


@pytest.mark.parametrize(("text", "expected"), [("0", 0), ("42", 42), (b"1234", 1234), ("9" * 18, 10**18 - 1)])
def test_parse_ascii_int_reads_ascii_digits(text: str | bytes, expected: int) -> None:
    assert parse_ascii_int(text) == expected


@pytest.mark.parametrize(
    "text",
    # "²" and "١٢" pass str.isdigit(); int() refuses the first and takes the second, " 7" and "1_0".
    ["²", "١٢", "１", "߁", " 7", "7 ", "1_0", "+1", "-1", "", "0x1", "1.0", "9" * 19, b"\xb2", b"12\xff", None],
)
def test_parse_ascii_int_refuses_everything_else(text: str | bytes | None) -> None:
    assert parse_ascii_int(text) is None


def test_parse_ascii_int_max_digits_is_the_callers() -> None:
    assert parse_ascii_int("123", max_digits=2) is None and parse_ascii_int("12", max_digits=2) == 12
