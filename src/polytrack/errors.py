"""Every exception polytrack raises on purpose.

```
PolytrackError                    base of everything below
├── InvalidInputError (ValueError) bad arguments to a log call or init(); names the field
│   └── InvalidMetricError (TypeError) a metric key or value that cannot be recorded
├── QueryError (ValueError)       a `where=` / `order_by=` expression that does not parse
├── RunNotFoundError (LookupError) no run matches an id, prefix or name
│   └── AmbiguousRunError         a prefix or name matches several runs
├── RunStateError                 an operation that the run's lifecycle forbids
└── StoreError (OSError)          the local store cannot be read or written
    └── CorruptRecordError        a journal frame failed its checksum
```

Tracking failures (`StoreError` on the write path) never reach the training loop:
the run warns once with `TrackingWarning` and keeps going.
"""

from __future__ import annotations

__all__ = [
    "AmbiguousRunError",
    "CorruptRecordError",
    "InvalidInputError",
    "InvalidMetricError",
    "PolytrackError",
    "QueryError",
    "RunNotFoundError",
    "RunStateError",
    "StoreError",
    "TrackingWarning",
]


class PolytrackError(Exception):
    """Base class of every error polytrack raises on purpose."""


class InvalidInputError(PolytrackError, ValueError):
    """An argument cannot be recorded; the message names the offending field."""


class InvalidMetricError(InvalidInputError, TypeError):
    """A metric key that is not a string, or a value that is not a real number."""


class QueryError(PolytrackError, ValueError):
    """A query expression is malformed; `position` points at the offending token."""

    def __init__(self, message: str, *, query: str, position: int, length: int = 1) -> None:
        self.reason = message
        self.query = query
        self.position = position
        self.length = max(1, length)
        caret = " " * position + "^" * self.length
        super().__init__(f"{message}\n  {query}\n  {caret}")


class RunNotFoundError(PolytrackError, LookupError):
    """No run matches the given id, id prefix or name."""


class AmbiguousRunError(RunNotFoundError):
    """A prefix or name matches more than one run."""


class RunStateError(PolytrackError):
    """The run's lifecycle forbids this operation (for example resuming a live run)."""


class StoreError(PolytrackError, OSError):
    """The local store cannot be read or written."""


class CorruptRecordError(StoreError):
    """A journal frame failed its checksum; readers skip it."""


class TrackingWarning(UserWarning):
    """Tracking failed or degraded; training goes on. Issued once per failure kind."""
