"""The ``Prefer`` request header (RFC 7240): only ``wait=N`` is understood, everything else is ignored."""

MAX_WAIT_S = 60


def parse_prefer_wait(header: str | None) -> int | None:
    """Seconds to wait from ``Prefer: wait=N`` (clamped to MAX_WAIT_S), or None when absent or not a number.

    RFC 7240 asks servers to ignore preferences they cannot honour, so a malformed value is no error. Only
    ASCII digits count: ``int()`` would also read other scripts' digits.
    """
    if not header:
        return None
    for preference in header.split(","):
        name, _, value = preference.split(";")[0].strip().partition("=")
        value = value.strip().strip('"')
        if name.strip().lower() == "wait" and value.isascii() and value.isdigit():
            return MAX_WAIT_S if len(value) > 6 else min(int(value), MAX_WAIT_S)
    return None
