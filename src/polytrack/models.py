"""Frozen records: what a run's journal holds and what readers get back."""

from __future__ import annotations

from typing import Final, Union

from attrs import field, frozen
from attrs.validators import ge, in_

__all__ = [
    "FINAL_STATUSES",
    "STATUSES",
    "EVENT_TYPES",
    "EVENT_TYPE_NAMES",
    "Checksum",
    "Event",
    "KeyDefined",
    "MetricSummary",
    "ParamValue",
    "ParamsSet",
    "RunInfo",
    "RunStarted",
    "SchemaDefined",
    "StatusChanged",
    "TagsAdded",
]

STATUSES: Final = ("created", "running", "succeeded", "failed", "stopped", "crashed")
FINAL_STATUSES: Final = frozenset({"succeeded", "failed", "stopped"})
# Statuses a process writes itself; "crashed" is only ever derived by readers.
_WRITTEN_STATUSES: Final = ("created", "running", "succeeded", "failed", "stopped")

ParamValue = Union[str, int, float, bool, None, list["ParamValue"]]


@frozen
class RunStarted:
    """First record of every attempt: who runs, where, and as which run."""

    id: str
    project: str
    name: str
    created_at: float
    host: str
    pid: int
    # The process' own start time tells a live owner from a reused PID.
    process_started: float
    attempt: int = field(default=0, validator=ge(0))
    notes: str | None = None
    tags: tuple[str, ...] = ()
    version: str = ""


@frozen
class ParamsSet:
    """Parameters, flattened with dots; later values for a key win."""

    params: dict[str, ParamValue]


@frozen
class TagsAdded:
    """Tags added to the run."""

    tags: tuple[str, ...]


@frozen
class KeyDefined:
    """A metric name gets a small integer id used by point records."""

    id: int = field(validator=ge(1))
    name: str


@frozen
class SchemaDefined:
    """Stream `stream` holds rows of exactly these key ids, in this order."""

    stream: int = field(validator=ge(1))
    keys: tuple[int, ...]


@frozen
class StatusChanged:
    """A lifecycle transition, written by the run's own process."""

    status: str = field(validator=in_(_WRITTEN_STATUSES))
    at: float
    message: str | None = None


@frozen
class Checksum:
    """CRC32 of bytes [start, end) of a segment file, written before each fsync."""

    file: str
    start: int = field(validator=ge(0))
    end: int = field(validator=ge(0))
    crc: int


Event = Union[RunStarted, ParamsSet, TagsAdded, KeyDefined, SchemaDefined, StatusChanged, Checksum]

# The `type` tag of each event in the journal.
EVENT_TYPES: Final[dict[str, type[Event]]] = {
    "started": RunStarted,
    "params": ParamsSet,
    "tags": TagsAdded,
    "key": KeyDefined,
    "schema": SchemaDefined,
    "status": StatusChanged,
    "crc": Checksum,
}
EVENT_TYPE_NAMES: Final[dict[type[Event], str]] = {cls: name for name, cls in EVENT_TYPES.items()}


@frozen
class MetricSummary:
    """What the index keeps of one metric series."""

    last: float
    min: float
    max: float
    count: int
    last_step: int


@frozen
class RunInfo:
    """A run as readers see it: its record merged from every attempt's journal."""

    id: str
    project: str
    name: str
    status: str = field(validator=in_(STATUSES))
    created_at: float
    updated_at: float
    finished_at: float | None
    host: str
    pid: int
    path: str
    notes: str | None = None
    tags: tuple[str, ...] = ()
    params: dict[str, ParamValue] = field(factory=dict)
    metrics: dict[str, MetricSummary] = field(factory=dict)
    message: str | None = None
    attempts: int = 1
