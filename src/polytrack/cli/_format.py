"""How values look on a terminal and in JSON: numbers, params, times, durations.

Kept apart from the commands so `runs ls` and `runs show` (and later commands) spell a
NaN, a duration or a timestamp the same way.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

__all__ = [
    "MISSING",
    "SPARKS",
    "format_count",
    "format_duration",
    "format_number",
    "format_time",
    "format_value",
    "json_safe",
    "printable",
    "sparkline",
    "to_json",
]

MISSING = "-"  # a cell with no value: a key the run lacks, a run not finished

# C0 controls, DEL and C1 controls: a run name holding ESC could recolour or clear the
# user's terminal, so these are shown escaped.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")

# JSON has no NaN or infinities; these strings are what JavaScript and Python's float()
# call them, so `float(value)` turns them back into numbers.
_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def format_number(value: float, *, digits: int = 4) -> str:
    """`value` with `digits` significant digits; ints exactly, since seeds and sizes are ids.

    NaN and infinities read `nan`, `inf` and `-inf`, as in `--where` queries.
    """
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}g}"


def format_value(value: Any, *, digits: int | None = 4) -> str:
    """A param value as the query language spells it: `true`, `null`, `0.01`, `adam`.

    `digits=None` writes floats exactly (shortest round-trip form) for `runs show`.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if digits is None:
            return repr(value) if math.isfinite(value) else f"{value}"
        return format_number(value, digits=digits)
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, Sequence):
        return "[" + ", ".join(format_value(item, digits=digits) for item in value) + "]"
    return printable(str(value))


def printable(text: str) -> str:
    """`text` with control characters (newlines too) escaped, so it fits on one line."""
    return _CONTROL.sub(lambda match: repr(match.group())[1:-1], text)


def format_time(timestamp: float | None, *, seconds: bool = False) -> str:
    """Unix seconds as local time, `YYYY-MM-DD HH:MM` (or with `:SS`)."""
    if timestamp is None:
        return MISSING
    pattern = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return datetime.fromtimestamp(timestamp).strftime(pattern)


def format_duration(seconds: float | None) -> str:
    """A duration in its largest units, three at most: `42s`, `1m 5s`, `1h 2m 3s`,
    `3d 4h 0m`."""
    if seconds is None or not math.isfinite(seconds):
        return MISSING
    total = max(0, int(seconds))
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def json_safe(data: Any) -> Any:
    """`data` with every NaN/infinite float replaced by "NaN", "Infinity" or "-Infinity".

    Strings rather than null so that a metric that went NaN stays distinguishable from
    one that is missing; `float()` reads them back.
    """
    if isinstance(data, float) and not math.isfinite(data):
        return _NON_FINITE[str(data)]
    if isinstance(data, Mapping):
        return {key: json_safe(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [json_safe(item) for item in data]
    return data


def to_json(data: Any) -> str:
    """Strict JSON text (no NaN tokens), indented for people, parseable by anything."""
    return json.dumps(json_safe(data), indent=2, ensure_ascii=False, allow_nan=False)


def format_count(value: int) -> str:
    """A large count with thousands separators: `1234567` -> `1,234,567`."""
    return f"{value:,}"


# Eight heights of a sparkline; NaN and infinities get marks of their own, so a series
# that went NaN never looks like one at its minimum.
SPARKS = "▁▂▃▄▅▆▇█"
NAN_MARK = "∅"
POS_INF_MARK = "↑"
NEG_INF_MARK = "↓"


def sparkline(values: Sequence[float], width: int = 40) -> str:
    """`values` as a line of at most `width` bars (▁..█), scaled between their finite
    min and max; longer series are cut into `width` buckets, each shown by its mean (a
    bucket holding a NaN or an infinity shows that mark: it is what must not be hidden)."""
    if not values or width <= 0:
        return ""
    if len(values) > width:
        buckets = [
            values[len(values) * i // width : len(values) * (i + 1) // width] for i in range(width)
        ]
    else:
        buckets = [[value] for value in values]
    points: list[float] = []
    for bucket in buckets:
        odd = [v for v in bucket if not math.isfinite(v)]
        points.append(odd[0] if odd else sum(bucket) / len(bucket))
    finite = [v for v in points if math.isfinite(v)]
    low, high = (min(finite), max(finite)) if finite else (0.0, 0.0)
    span = high - low
    marks: list[str] = []
    for value in points:
        if math.isnan(value):
            marks.append(NAN_MARK)
        elif value == math.inf:
            marks.append(POS_INF_MARK)
        elif value == -math.inf:
            marks.append(NEG_INF_MARK)
        elif span <= 0:
            marks.append(SPARKS[len(SPARKS) // 2 - 1])
        else:
            level = int((value - low) / span * (len(SPARKS) - 1) + 0.5)
            marks.append(SPARKS[level])
    return "".join(marks)
