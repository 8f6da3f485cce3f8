"""What the HTTP backends share: reading a server's `Retry-After`."""

from __future__ import annotations

import datetime
import email.utils
import time

__all__ = ["retry_after"]


def retry_after(value: str | None) -> float | None:
    """`Retry-After` in seconds from now: delay-seconds or an HTTP-date (RFC 9110 10.2.3);
    None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": an HTTP-date is GMT all the same
        when = when.replace(tzinfo=datetime.timezone.utc)
    return max(0.0, when.timestamp() - time.time())
