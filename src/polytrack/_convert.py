"""The one cattrs converter: journal events back from their JSON dicts.

Writing uses `attrs.asdict` (see `journal.event_to_dict`) so that `init()` does not pay
for importing cattrs; reading, where validation and clear errors matter, comes here.
"""

from __future__ import annotations

from typing import Any, Final

import cattrs

from polytrack.errors import CorruptRecordError
from polytrack.models import EVENT_TYPES, Event, ParamsSet

__all__ = ["converter", "event_from_dict"]

converter: Final = cattrs.Converter(forbid_extra_keys=True)

# Params were validated when logged; structuring them again could only coerce them.
converter.register_structure_hook(ParamsSet, lambda d, _: ParamsSet(params=dict(d["params"])))


def event_from_dict(data: dict[str, Any]) -> Event:
    """Structure a tagged event dict; unknown types or shapes are corrupt records."""
    data = dict(data)
    cls = EVENT_TYPES.get(data.pop("type", None))
    if cls is None:
        raise CorruptRecordError(f"unknown journal event {data!r}")
    try:
        event: Event = converter.structure(data, cls)
    except Exception as exc:
        if isinstance(exc, cattrs.BaseValidationError):
            message = "; ".join(cattrs.transform_error(exc))
        else:
            message = str(exc)
        raise CorruptRecordError(f"malformed {cls.__name__} record: {message}") from exc
    return event
