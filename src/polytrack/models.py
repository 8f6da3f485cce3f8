"""Frozen records: what a run's journal holds and what readers get back."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, Union

from attrs import field, frozen
from attrs.validators import ge, in_, matches_re

__all__ = [
    "CHANGE_EVENTS",
    "FINAL_STATUSES",
    "STATUSES",
    "EVENT_TYPES",
    "EVENT_TYPE_NAMES",
    "DATA_KINDS",
    "DATA_ROLES",
    "RUN_RELATIONS",
    "ArtifactFile",
    "ArtifactLogged",
    "Checksum",
    "CodeState",
    "DataRef",
    "EnvironmentState",
    "Event",
    "GitState",
    "GpuInfo",
    "HandedOver",
    "HardwareState",
    "SeedState",
    "Snapshot",
    "KeyDefined",
    "KeyTable",
    "MEDIA_EXTENSIONS",
    "MEDIA_KINDS",
    "MediaBlob",
    "MediaLogged",
    "MetricSummary",
    "NoteSet",
    "OutputsSet",
    "ParamValue",
    "ParamsSet",
    "RunInfo",
    "RunLinked",
    "RunRenamed",
    "RunRestored",
    "RunStarted",
    "RunTrashed",
    "SchemaDefined",
    "StatusChanged",
    "TagsAdded",
    "TagsChanged",
]

STATUSES: Final = (
    "created", "running", "succeeded", "failed", "stopped", "skipped", "crashed"
)  # fmt: skip
# `skipped`: a DAG operation whose trigger or conditions did not hold (Polyaxon's status
# of the same name); its run is made and finished at once, and never judged crashed.
FINAL_STATUSES: Final = frozenset({"succeeded", "failed", "stopped", "skipped"})
# Statuses a process writes itself; "crashed" is only ever derived by readers.
_WRITTEN_STATUSES: Final = ("created", "running", "succeeded", "failed", "stopped", "skipped")

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
    # Who ran it: the login name, or POLYTRACK_USER / init(user=); None in older records.
    user: str | None = None


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
class KeyTable:
    """Every key id and row schema of an attempt again, written when it finishes: a
    damaged `KeyDefined` or `SchemaDefined` frame then costs no points."""

    keys: dict[int, str]
    schemas: dict[int, tuple[int, ...]] = field(factory=dict)


@frozen
class StatusChanged:
    """A lifecycle transition, written by the run's own process."""

    status: str = field(validator=in_(_WRITTEN_STATUSES))
    at: float
    message: str | None = None


@frozen
class HandedOver:
    """The run's process gave the run to another owner without finishing it.

    `owner` says who carries it on, e.g. `kubernetes:<namespace>/<job>`. Readers do not
    derive `crashed` from this attempt's dead process: the status stays as recorded until
    a later attempt (the new owner attaching) records one.
    """

    owner: str
    at: float


@frozen
class Checksum:
    """CRC32 of bytes [start, end) of a segment file, written when the segment is sealed.

    `blocks` also holds the CRC32 of each `block`-byte piece of the range (cut at file
    offsets that are multiples of `block`), as base64 of little-endian u32s, so that a
    damaged byte costs its block, not the range; `header` is the CRC32 of the segment's
    64-byte header. Both are absent (0, "", None) in files written before they existed.
    """

    file: str
    start: int = field(validator=ge(0))
    end: int = field(validator=ge(0))
    crc: int
    block: int = field(default=0, validator=ge(0))
    blocks: str = ""
    header: int | None = None


# -- the reproducibility snapshot: one event per capture, the latest of a kind wins ------


@frozen
class GitState:
    """The working tree a run started from; `available` is False outside a repository."""

    available: bool
    # Why nothing (or only part) was captured: "not a git repository", "git not found", ...
    reason: str | None = None
    root: str | None = None
    commit: str | None = None
    branch: str | None = None  # None on a detached HEAD
    remote: str | None = None  # the URL of `origin` (else the first remote), no credentials
    dirty: bool | None = None  # None when unknown (no git binary, timed out)
    # The uncommitted diff of tracked files against HEAD, a file in the run directory.
    diff_file: str | None = None
    diff_bytes: int = field(default=0, validator=ge(0))
    diff_truncated: bool = False
    untracked: tuple[str, ...] = ()
    untracked_truncated: bool = False
    # The time budget of `init()` ran out before status and diff; a complete record may
    # follow from the background.
    partial: bool = False


@frozen
class CodeState:
    """What was run, and how: the entrypoint (or notebook), its arguments, where."""

    argv: tuple[str, ...]
    cwd: str
    executable: str
    entrypoint: str | None = None  # a script path, or "-m module"; None in a REPL
    notebook: str | None = None


@frozen
class EnvironmentState:
    """The software a run ran on; environment variables by allowlist, never secrets."""

    python: str
    implementation: str
    platform: str
    hostname: str
    packages: dict[str, str] = field(factory=dict)
    conda_env: str | None = None
    # torch, CUDA, cuDNN, ... versions, from frameworks the process had already imported.
    frameworks: dict[str, str] = field(factory=dict)
    variables: dict[str, str] = field(factory=dict)


@frozen
class GpuInfo:
    """One accelerator as the driver describes it."""

    index: int
    name: str
    memory_total: int | None = None  # bytes
    uuid: str | None = None
    driver: str | None = None


@frozen
class HardwareState:
    """The machine: CPU, memory, GPUs."""

    cpu_model: str | None
    cpu_logical: int | None
    cpu_physical: int | None
    memory_total: int | None  # bytes
    gpus: tuple[GpuInfo, ...] = ()


@frozen
class SeedState:
    """What `polytrack.seed_everything` seeded, and the determinism flags it set."""

    seed: int
    libraries: tuple[str, ...]
    deterministic: bool = False
    details: dict[str, str] = field(factory=dict)


DATA_ROLES: Final = ("input", "output")
DATA_KINDS: Final = ("file", "directory", "array", "dataframe", "bytes")


@frozen
class DataRef:
    """Content hash of a dataset, file or array that a run consumed or produced."""

    name: str
    role: str = field(validator=in_(DATA_ROLES))
    kind: str = field(validator=in_(DATA_KINDS))
    # "sha256:<hex>"; for a directory, the hash of its sorted manifest.
    digest: str = field(validator=matches_re(r"sha256:[0-9a-f]{64}"))
    size: int = field(validator=ge(0))
    files: int = field(default=1, validator=ge(0))
    path: str | None = None
    # For a directory: a JSON file in the run directory, relative path -> [digest, size].
    manifest_file: str | None = None
    logged_at: float = 0.0


@frozen
class ArtifactFile:
    """One file of a logged artifact: its path inside the artifact and its content hash."""

    path: str  # relative, "/"-separated; a single-file artifact holds one, its file name
    digest: str = field(validator=matches_re(r"sha256:[0-9a-f]{64}"))
    size: int = field(validator=ge(0))


@frozen
class ArtifactLogged:
    """A file or directory the run logged (a model too), kept content-addressed in the
    home's blob store (`polytrack.store.blobs`): each file's bytes are stored once by digest.

    `digest` is the file's hash, or for a directory the hash of its sorted manifest (the
    same rule as `DataRef`). `kind` is "file", "directory", "model" or the caller's own.
    """

    name: str
    kind: str
    role: str = field(validator=in_(DATA_ROLES))
    digest: str = field(validator=matches_re(r"sha256:[0-9a-f]{64}"))
    size: int = field(validator=ge(0))
    files: tuple[ArtifactFile, ...] = ()
    source: str | None = None  # where it was logged from
    framework: str | None = None
    metadata: dict[str, Any] = field(factory=dict)  # JSON values, checked when logged
    logged_at: float = 0.0


MEDIA_KINDS: Final = (
    "image", "histogram", "text", "html", "table", "figure", "audio", "video", "curve",
    "confusion",
)  # fmt: skip


# The file name extension of each media type a media record's blobs have (downloads,
# artifact names on a server); anything else is ".bin".
MEDIA_EXTENSIONS: Final = {
    "image/png": "png",
    "image/gif": "gif",
    "image/jpeg": "jpg",
    "application/json": "json",
    "text/plain": "txt",
    "text/html": "html",
    "audio/wav": "wav",
    "video/mp4": "mp4",
    "video/webm": "webm",
}


@frozen
class MediaBlob:
    """One file of a media record, kept in the home's blob store by digest.

    `media_type` says how to read it: "image/png", "application/json", "text/plain",
    "text/html", "audio/wav", "image/gif", "video/mp4", ... (`polytrack.media`)."""

    digest: str = field(validator=matches_re(r"sha256:[0-9a-f]{64}"))
    size: int = field(validator=ge(0))
    media_type: str


@frozen
class MediaLogged:
    """One media value logged under `name` at `step` (an image or a batch of them, a
    histogram, a table, a figure, ...): small facts here, the bytes in `blobs`.

    Written only once every blob is durable in the store, so a record never points at
    bytes that are not there. `shape` is the value's (a batch of images: (n, h, w, c);
    a histogram: (bins,); a table: (rows, columns); audio: (frames, channels)); `meta`
    holds the kind's own facts as JSON values (a figure's library, a curve's kind, an
    audio's sample rate, an image's boxes). See `docs/media.md` for each kind's blobs.
    """

    name: str
    kind: str = field(validator=in_(MEDIA_KINDS))
    step: int
    blobs: tuple[MediaBlob, ...] = ()
    shape: tuple[int, ...] = ()
    caption: str | None = None
    meta: dict[str, Any] = field(factory=dict)
    logged_at: float = 0.0


@frozen
class OutputsSet:
    """Results the run reports by name (Polyaxon's outputs): JSON values, checked when
    logged. Later values for a name win; `reset` drops every earlier output first."""

    outputs: dict[str, Any]
    reset: bool = False


# "imported-from": the run was imported (`polytrack.importers`); `run_id` is then
# "<kind>:<source uri>#<original id>", no polytrack run.
RUN_RELATIONS: Final = ("reproduces", "imported-from")


@frozen
class RunLinked:
    """This run is related to another one, e.g. it reproduces it."""

    run_id: str
    relation: str = field(validator=in_(RUN_RELATIONS))
    at: float = 0.0


# -- changes made to a recorded run afterwards (`polytrack.history.manage`): each says who
# made it (`by`: Settings.user) and when (`at`), in the run's changes log
# (`polytrack.store.changes`), so the index and a synced server can replay them.


@frozen
class RunRenamed:
    """The run's name was changed (`polytrack runs rename`)."""

    name: str
    at: float
    by: str | None = None


@frozen
class TagsChanged:
    """Tags were added to or removed from the run (`polytrack runs tag` / `untag`)."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    at: float = 0.0
    by: str | None = None


@frozen
class NoteSet:
    """The run's notes were replaced (`polytrack runs note`); None clears them."""

    notes: str | None
    at: float
    by: str | None = None


@frozen
class RunTrashed:
    """The run was moved to the home's trash (`polytrack runs rm`)."""

    at: float
    by: str | None = None


@frozen
class RunRestored:
    """The run was brought back from the trash (`polytrack runs restore`)."""

    at: float
    by: str | None = None


Event = Union[
    RunStarted,
    ParamsSet,
    TagsAdded,
    KeyDefined,
    SchemaDefined,
    StatusChanged,
    HandedOver,
    Checksum,
    KeyTable,
    GitState,
    CodeState,
    EnvironmentState,
    HardwareState,
    SeedState,
    DataRef,
    ArtifactLogged,
    RunLinked,
    OutputsSet,
    MediaLogged,
    RunRenamed,
    TagsChanged,
    NoteSet,
    RunTrashed,
    RunRestored,
]

# The changes above, which readers apply after every attempt's own records.
CHANGE_EVENTS: Final = (RunRenamed, TagsChanged, NoteSet, RunTrashed, RunRestored)

# The `type` tag of each event in the journal.
EVENT_TYPES: Final[dict[str, type[Event]]] = {
    "started": RunStarted,
    "params": ParamsSet,
    "tags": TagsAdded,
    "key": KeyDefined,
    "schema": SchemaDefined,
    "status": StatusChanged,
    "handover": HandedOver,
    "crc": Checksum,
    "keys": KeyTable,
    "git": GitState,
    "code": CodeState,
    "environment": EnvironmentState,
    "hardware": HardwareState,
    "seeds": SeedState,
    "data_ref": DataRef,
    "artifact": ArtifactLogged,
    "link": RunLinked,
    "outputs": OutputsSet,
    "media": MediaLogged,
    "renamed": RunRenamed,
    "retagged": TagsChanged,
    "note": NoteSet,
    "trashed": RunTrashed,
    "restored": RunRestored,
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


def _messages(messages: Iterable[str]) -> tuple[str, ...]:
    # A list from JSON compares equal to the tuple a reader made.
    return tuple(messages)


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
    user: str | None = None  # who started the run (its first attempt)
    # What readers skipped as damaged in its files: one message per loss, naming the file
    # and its byte range (issue 12). Empty for a run whose files read whole.
    damaged: tuple[str, ...] = field(default=(), converter=_messages)


@frozen
class Snapshot:
    """A run's reproducibility record: the latest capture of each kind, every data ref."""

    git: GitState | None = None
    code: CodeState | None = None
    environment: EnvironmentState | None = None
    hardware: HardwareState | None = None
    seeds: SeedState | None = None
    data_refs: tuple[DataRef, ...] = ()
