"""Recognising secrets so that they are never recorded or printed."""

from __future__ import annotations

import re
from typing import Final

__all__ = ["REDACTED", "is_secret_name", "redact_url", "redact_value"]

REDACTED: Final = "[REDACTED]"

_SECRET_NAME: Final = re.compile(
    r"(passw(or)?d|passphrase|secret|token|api[_.-]?key|access[_.-]?key|private[_.-]?key"
    r"|credential|authorization|(^|[_.-])key$|(^|[_.-])pwd$)",
    re.IGNORECASE,
)
_URL_WITH_USERINFO: Final = re.compile(r"\b([a-z][a-z0-9+.-]*://)([^/\s@]+)@", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """True for names like `DB_PASSWORD`, `api_key`, `hf.token`, `AWS_SECRET_ACCESS_KEY`."""
    return bool(_SECRET_NAME.search(name))


def redact_url(text: str) -> str:
    """Drop the credentials of every `scheme://user:pass@host` in `text`, keep the user."""

    def strip(match: re.Match[str]) -> str:
        user = match.group(2).split(":", 1)[0]
        # A lone token in the user part (https://<token>@github.com) is a secret too.
        if ":" not in match.group(2) and len(user) >= 20:
            return f"{match.group(1)}{REDACTED}@"
        return f"{match.group(1)}{user}:{REDACTED}@" if ":" in match.group(2) else match.group(0)

    return _URL_WITH_USERINFO.sub(strip, text)


def redact_value(name: str, value: object) -> object:
    """The value to record under `name`: REDACTED for secret names, URLs without passwords."""
    if is_secret_name(name):
        return REDACTED
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return value
