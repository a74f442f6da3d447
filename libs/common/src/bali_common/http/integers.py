"""Strict parsing of integers that clients send in headers and parameters (ETag versions,
event ids): ASCII digits only, bounded so that they fit the signed 64-bit columns they meet."""

from __future__ import annotations

#: The largest value of a signed 64-bit integer column (PostgreSQL BIGINT, SQLite INTEGER).
BIGINT_MAX = 2**63 - 1
#: The largest value of a SQL INTEGER column on PostgreSQL (int4): serial ids, plain int fields.
INTEGER_MAX = 2**31 - 1
_MAX_DIGITS = len(str(BIGINT_MAX))


def parse_decimal(text: str, *, maximum: int = BIGINT_MAX) -> int | None:
    """The non-negative integer `text` spells in ASCII digits, or None if it is anything else.

    `str.isdigit` (and `int`) accept far more than 0-9: superscripts such as "²" pass
    `isdigit` and then make `int` raise, other scripts' digits parse. RFC 9110 section 5.6.1
    and 8.6 write header numbers as 1*DIGIT, where DIGIT is ASCII 0-9 (RFC 5234 appendix B.1).
    The length bound keeps a 5,000-digit header from costing a quadratic conversion.
    """
    if not 0 < len(text) <= _MAX_DIGITS or not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if value <= maximum else None
