"""Integers from headers and parameters: ASCII digits within 64 bits, nothing else."""

from __future__ import annotations

import pytest
from bali_common.http.concurrency import check_version, expected_version
from bali_common.http.integers import BIGINT_MAX, parse_decimal
from bali_common.problems import ProblemError


@pytest.mark.parametrize(
    ("text", "value"), [("0", 0), ("7", 7), ("0042", 42), (str(BIGINT_MAX), BIGINT_MAX)]
)
def test_ascii_digits_within_64_bits_parse(text: str, value: int) -> None:
    assert parse_decimal(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "",
        "²",
        "1¹",
        "٣",  # ARABIC-INDIC DIGIT THREE: int() would accept it
        "\uff11\uff12",  # FULLWIDTH DIGIT ONE, TWO
        "-1",
        "+1",
        " 1",
        "1_000",
        "1.0",
        str(BIGINT_MAX + 1),
        "9" * 5000,
    ],
)
def test_anything_else_is_refused(text: str) -> None:
    assert parse_decimal(text) is None


def test_a_maximum_below_64_bits_is_honoured() -> None:
    assert parse_decimal("10", maximum=9) is None
    assert parse_decimal("9", maximum=9) == 9


@pytest.mark.parametrize(
    "if_match", ['"v²"', '"v1¹"', '"v٣"', f'"v{"9" * 5000}"', f'"v{BIGINT_MAX + 1}"', '"v"', '"1"']
)
def test_an_unusable_if_match_is_a_412(if_match: str) -> None:
    with pytest.raises(ProblemError) as refused:
        check_version(1, if_match)
    assert refused.value.status == 412


def test_a_usable_if_match_gives_its_version() -> None:
    assert expected_version('W/"v12"') == 12
    assert expected_version(f'"v{BIGINT_MAX}"') == BIGINT_MAX
