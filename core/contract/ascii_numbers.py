"""Parsing numbers out of text a client or a remote server wrote: ASCII digits only.

``str.isdigit()`` is true for superscripts and other scripts' digits that ``int()`` refuses
(``"²"``), and ``int()`` itself accepts what no HTTP field means (``"١٢"``, ``" 7 "``, ``"1_0"``);
either way a client's typo used to surface as a traceback or a 5xx (issue 19). Vocabulary floor: no I/O.
"""

import re

_ASCII_DIGITS = re.compile(r"[0-9]+")


def parse_ascii_int(text: str | bytes | None, *, max_digits: int = 18) -> int | None:
    """The non-negative integer ``text`` spells in ASCII digits, or None for anything else.

    ``max_digits`` (18 by default: below 2**63) keeps the number inside what Redis scores and
    64-bit fields hold; a longer run of digits is not a number this service ever sent.
    """
    if text is None:
        return None
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            return None
    if len(text) > max_digits or not _ASCII_DIGITS.fullmatch(text):
        return None
    return int(text)
