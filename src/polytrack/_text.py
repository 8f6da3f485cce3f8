"""Text every store, index and server can hold, and messages that never fail to format.

Python strings may hold *lone surrogates* (`"\\udc80"`): `os.fsdecode` makes them of
undecodable file-name bytes, and any caller can type them. They encode to JSON (as `\\udc80`
escapes) but not to UTF-8, so one of them in a run's record used to be accepted by the log
call and then break SQLite, the terminal and every HTTP server that met it: the whole home
became unreadable. Names (metric and param keys, tags, projects) are refused with a clear
error; free text (param values, notes, run names, messages) is kept with each lone surrogate
written out as its escape, so nothing of it is lost and every reader can hold it.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["escape_surrogates", "has_surrogates", "safe_repr"]

# A lone surrogate: a str can only hold one unpaired (a pair is one character already).
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def has_surrogates(text: str) -> bool:
    """Whether `text` holds a lone surrogate, which no UTF-8 reader can take.

    Example:
        >>> has_surrogates("x\\udc80y"), has_surrogates("naïve 🚀")
        (True, False)
    """
    return _SURROGATE.search(text) is not None


def escape_surrogates(text: str) -> str:
    """`text` with each lone surrogate written out as `\\udXXX`; other text unchanged.

    Example:
        >>> escape_surrogates("x\\udc80y")
        'x\\\\udc80y'
    """
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def safe_repr(value: object, limit: int = 80) -> str:
    """`repr(value)` cut to `limit` characters, for error messages that must not fail.

    `repr` itself raises for an int past Python's digit limit (`ValueError`) and may raise
    from a user's `__repr__`; an error message is no place for a second error.

    Example:
        >>> safe_repr(10**5000)
        '<int of 5001 digits>'
    """
    if type(value) is int and value.bit_length() > 10_000:  # past str()'s 4,300 digits
        digits = int(value.bit_length() * 0.30103) + 1
        return f"<int of {digits} digits>"
    try:
        text = repr(value)
    except Exception:  # a user's __repr__: anything may come out of it
        return f"<{type(value).__name__} object>"
    text = escape_surrogates(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."
