"""Email header values every reader decodes to the exact text: RFC 2047 words, folded here."""

# The standard library folds the headers it encodes itself at 78 columns, and in doing so
# puts the white space between words *between* encoded-words, where RFC 2047 section 6.2
# has readers drop it ("Biển Đông" arrives as "BiểnĐông"), or splits a word across
# encoded-words with a space between them. So the values are encoded and folded here and
# stored raw (`EmailMessage.set_raw`), which the generator writes out as they are, line by
# line, as long as no line is longer than 78 characters: every space stays inside an
# encoded-word, each word holds whole characters, and every line fits.

from __future__ import annotations

import base64
import re

#: RFC 5322 section 2.1.1: a line SHOULD be at most 78 characters (the generator refolds,
#: its own way, any longer line of a raw value).
LINE = 78
#: RFC 2047 section 2: an encoded-word is at most 75 characters.
_WORD = 75
_OPEN, _CLOSE = "=?utf-8?b?", "?="
# Printable ASCII, single spaces between words: sent as it is.
_PLAIN = re.compile(r"[!-~]+( [!-~]+)*")
# RFC 5322 atext, for a display name that needs no quotes.
_ATOMS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+( [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_ADDRESS = re.compile(r"[!-~]+@[!-~]+")


class UnencodableHeader(ValueError):
    """A value no header of ours can carry exactly (a display name too long for one word)."""


def unstructured(name: str, text: str) -> str:
    """The raw value of an unstructured header such as Subject, for `set_raw(name, ...)`.

    Printable ASCII that fits the header's line goes as it is; anything else (other
    scripts, emoji, a long title, "=?" that a reader would take for an encoded-word) as
    base64 encoded-words, one per line.
    """
    first = LINE - len(name) - len(": ")
    if _plain(text) and len(text) <= first:
        return text
    return "\n ".join(_encoded_words(text, first=first))


def mailbox(name: str, display_name: str, address: str) -> str:
    """The raw value of an address header (From) naming one mailbox.

    A display name that is not plain ASCII is one encoded-word: in a phrase, readers keep
    the white space between encoded-words (the standard library's parser among them) or drop
    it (as RFC 2047 says), so only a single word decodes alike everywhere. Raises
    `UnencodableHeader` when the name or the address cannot be carried exactly.
    """
    if not _ADDRESS.fullmatch(address) or len(address) + len(" <>") > LINE:
        raise UnencodableHeader(f"not an ASCII address that fits a line: {address!r}")
    angle = f"<{address}>"
    room = LINE - len(name) - len(": ")
    first = min(room, _WORD)
    if not display_name:
        phrase = ""
    elif _plain(display_name):
        phrase = display_name
        if not _ATOMS.fullmatch(display_name):
            phrase = '"' + display_name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    else:
        words = _encoded_words(display_name, first=first)
        if len(words) > 1:
            raise UnencodableHeader(
                f"display name {display_name!r} is longer than one encoded-word on the "
                f"{name} line carries ({_payload_bytes(first)} bytes of UTF-8)"
            )
        phrase = words[0]
    if len(phrase) > room:
        raise UnencodableHeader(f"display name {display_name!r} does not fit the {name} line")
    if not phrase:
        return angle
    if len(phrase) + 1 + len(angle) <= room:
        return f"{phrase} {angle}"
    return f"{phrase}\n {angle}"


def _plain(text: str) -> bool:
    return _PLAIN.fullmatch(text) is not None and "=?" not in text


def _payload_bytes(room: int) -> int:
    """How many bytes of UTF-8 fit in an encoded-word of `room` characters."""
    return (room - len(_OPEN) - len(_CLOSE)) // 4 * 3


def _encoded_words(text: str, *, first: int) -> list[str]:
    """`text` as base64 encoded-words of whole characters: the first at most `first`
    characters long, the others at most 75 (each on a line of its own after a space)."""
    words: list[str] = []
    chunk = b""
    room = _payload_bytes(first)
    for character in text:
        encoded = character.encode()
        if chunk and len(chunk) + len(encoded) > room:
            words.append(_word(chunk))
            chunk = b""
            room = _payload_bytes(_WORD)
        chunk += encoded
    words.append(_word(chunk))
    return words


def _word(chunk: bytes) -> str:
    return _OPEN + base64.b64encode(chunk).decode("ascii") + _CLOSE
