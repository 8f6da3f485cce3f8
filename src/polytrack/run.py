"""`Run`: the live run a training script holds, a thin facade over its journal writer."""

from __future__ import annotations

import json
import os
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from polytrack import _display
from polytrack._text import escape_surrogates, has_surrogates, safe_repr
from polytrack.errors import (
    ArtifactNotFoundError,
    InvalidInputError,
    PolytrackError,
    RunStateError,
    StoreError,
)
from polytrack.models import (
    DATA_ROLES,
    FINAL_STATUSES,
    DataRef,
    Event,
    GitState,
    HandedOver,
    OutputsSet,
    ParamsSet,
    ParamValue,
    RunInfo,
    SeedState,
    StatusChanged,
    TagsAdded,
)
from polytrack.redact import redact_text, redact_value
from polytrack.settings import Settings, default_cache_dir
from polytrack.store.writer import JournalWriter, LogMetrics

if TYPE_CHECKING:
    import argparse

    from polytrack.artifacts import ArtifactCopier, ArtifactRequest, ArtifactView
    from polytrack.capture.data import DataHash, HashCache
    from polytrack.media.encoder import MediaJob
    from polytrack.media.logger import MediaLogger
    from polytrack.media.read import MediaItem
    from polytrack.store.blobs import BlobStore
    from polytrack.sync.worker import SyncWorker

__all__ = [
    "Collaborator",
    "DisabledRun",
    "Run",
    "exit_status",
    "flatten_params",
    "forked_message",
]


class Collaborator(Protocol):
    """Something a run owns while it lives (a capture thread, say): stopped by `finish()`."""

    def stop(self) -> None: ...


class Run:
    """A run being recorded. Create one with `polytrack.init()`.

    `log_metrics` is bound per instance to the journal's hot-path function; everything
    else validates, then appends one event to the journal. Tracking failures (a full
    disk, say) warn once and never raise; bad input raises `InvalidInputError`.

    Example:
        >>> run = polytrack.init(project="mnist", params={"lr": 0.01})
        >>> run.log_metrics({"loss": 0.5}, step=0)
        >>> run.finish()
    """

    def __init__(
        self,
        *,
        run_id: str,
        project: str,
        name: str,
        directory: Path,
        settings: Settings,
        writer: JournalWriter,
        on_finish: Callable[[Run], None] | None = None,
        attempt: int = 0,
    ) -> None:
        self.id = run_id
        self.project = project
        self.name = name
        self.dir = directory
        self.settings = settings
        self.attempt = attempt  # this process' attempt: its files are `*-<attempt:03d>*`
        self._writer = writer
        self._pid = os.getpid()
        self._status = "running"
        self._handed_over_to: str | None = None
        self._on_finish = on_finish  # the process-wide state forgets the run
        self._collaborators: list[Collaborator] = []
        self._before_finish: list[Callable[[], None]] = []  # see `before_finish`
        self._sync: SyncWorker | None = None
        self._hash_cache: HashCache | None = None
        self._artifacts: ArtifactCopier | None = None  # started by the first artifact
        self._blob_store: BlobStore | None = None  # None: the home's own
        self._artifacts_lock = threading.Lock()
        self._media: MediaLogger | None = None  # made by the first media call
        # The hot path: an instance attribute shadows the documented method below.
        self.log_metrics = writer.make_log_metrics()  # type: ignore[method-assign]

    def __repr__(self) -> str:
        return f"<polytrack.Run {self.id} {self.project}/{self.name} {self._status}>"

    # -- display (notebooks, IPython) -------------------------------------------------

    def _read_info(self) -> RunInfo | None:
        """The run as a reader sees it now, from its files; None where they cannot be
        read (a display never raises)."""
        from polytrack.store.local import LocalStore

        try:
            with LocalStore.open(
                self.settings.home, create=False, busy_timeout=0.05, repair_index=False
            ) as store:
                return store.read_run(self.id).info
        except (PolytrackError, OSError):
            return None

    def _repr_html_(self) -> str:
        """The run's card in a notebook: status, params, last metrics, sparklines."""
        info = self._read_info()
        if info is None:
            return f"<code>{_display.e(repr(self))}</code>"
        keys = [k for k in info.metrics if not k.startswith("system/")][: _display.MAX_METRICS]
        return _display.run_html(info, _display.read_sparks(self.dir, keys))

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        info = None if cycle else self._read_info()
        printer.text(repr(self) if info is None else _display.run_text(info))

    def plot(self, key: str, *, ax: Any | None = None) -> Any:
        """Draw metric `key` against the step with matplotlib (the `plot` extra); returns
        the Axes.

        Raises:
            ImportError: matplotlib is not installed (names the extra).

        Example:
            >>> run.plot("loss")
        """
        from polytrack.store.reader import read_series

        series = read_series(self.dir, key)
        return _display.draw([(self.name, series.steps, series.values)], key, ax)

    @property
    def status(self) -> str:
        """created, running, succeeded, failed or stopped (as this process knows it)."""
        return self._status

    @property
    def finished(self) -> bool:
        return self._status in FINAL_STATUSES

    @property
    def handed_over_to(self) -> str | None:
        """Who carries the run on after `hand_over()`; None while this process owns it."""
        return self._handed_over_to

    @property
    def step(self) -> int:
        """The last step logged (-1 before any)."""
        return self._writer.last_step

    # -- logging --------------------------------------------------------------------------

    def log_metrics(
        self,
        metrics: Mapping[str, Any] | None = None,
        step: int | None = None,
        epoch: int | None = None,
        **named: Any,
    ) -> None:
        """Record metric values at a step; returns once they survive a crash of the process.

        Args:
            metrics: metric name -> real number (int, float, numpy or torch scalar). NaN
                and inf are kept as such.
            step: the step; when omitted, one more than the last step logged.
            epoch: recorded as the metric `epoch` at the same step.
            **named: metrics as keywords, as Polyaxon's client takes them, beside or
                instead of the mapping (the mapping form is the faster one).

        Raises:
            InvalidMetricError: a key is not a string or a value is not a real number.

        Example:
            >>> run.log_metrics({"loss": 0.25, "acc": 0.9}, step=10)
            >>> run.log_metrics(loss=0.25, acc=0.9, step=11)
        """
        self._after_finish("log_metrics")

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        """Record one metric value; see `log_metrics`.

        Example:
            >>> run.log_metric("loss", 0.25, step=10)
        """
        self.log_metrics({key: value}, step)

    def log_params(self, params: Mapping[str, Any] | argparse.Namespace) -> None:
        """Record parameters; nested mappings are flattened with dots (`net.depth`).

        Values may be str, int, float, bool, None, numpy/torch scalars, paths, or lists
        of those. Values under secret-looking names (`password`, `api_key`, `token`, ...)
        are recorded as `[REDACTED]`, and passwords in URLs are dropped.

        Raises:
            InvalidInputError: a key is not a string or a value cannot be recorded; the
                message names the key. Nothing of the call is recorded then.

        Example:
            >>> run.log_params({"lr": 0.01, "net": {"depth": 4}})
        """
        flat = flatten_params(params)
        if self._after_finish("log_params"):
            return
        self._append(ParamsSet(params=flat))

    def log_tags(self, tags: Iterable[str] | str) -> None:
        """Add tags to the run.

        Example:
            >>> run.log_tags(["cnn", "baseline"])
        """
        clean = check_tags(tags)
        if self._after_finish("log_tags"):
            return
        self._append(TagsAdded(tags=clean))

    def log_data_ref(
        self,
        name: str,
        source: Any,
        role: str = "input",
        *,
        progress: bool | None = None,
    ) -> DataRef:
        """Record the content hash of data the run consumed (`role="input"`) or produced.

        Files and directories are hashed once and then answered from a cache keyed by
        path, size, modification and change times and inode; a directory also gets a manifest
        (relative path -> hash) so two versions can be compared file by file.

        Args:
            name: what the data is called in this run ("train", "vocab", ...).
            source: a file or directory path, bytes, a numpy array or a pandas DataFrame.
            role: "input" or "output".
            progress: show a progress bar on stderr (default: for large inputs when
                stderr is a terminal).

        Raises:
            InvalidInputError: a bad name or role, a missing path, an unsupported type.

        Example:
            >>> run.log_data_ref("train", "data/train.csv")
        """
        from polytrack.capture.data import HashCache, hash_source  # sqlite3, hashlib: on use

        if not isinstance(name, str) or not name.strip() or len(name) > 256 or has_surrogates(name):
            raise InvalidInputError(
                f"data ref names must be non-empty strings of at most 256 characters;"
                f" got {safe_repr(name)}"
            )
        if role not in DATA_ROLES:
            raise InvalidInputError(
                f"role must be one of {', '.join(DATA_ROLES)}; got {safe_repr(role)}"
            )
        if self._hash_cache is None:
            cache_dir = self.settings.cache_dir or default_cache_dir(os.environ)
            self._hash_cache = HashCache.open(cache_dir / "hashes.sqlite")
        found = hash_source(source, cache=self._hash_cache, progress=progress)
        manifest_file = None
        if found.kind == "directory":
            manifest_file = f"manifest-{found.digest.removeprefix('sha256:')[:16]}.json"
            self._write_manifest(manifest_file, found)
        ref = DataRef(
            name=name.strip(),
            role=role,
            kind=found.kind,
            digest=found.digest,
            size=found.size,
            files=found.files,
            path=found.path,
            manifest_file=manifest_file,
            logged_at=time.time(),
        )
        if not self._after_finish("log_data_ref"):
            self._append(ref)
        return ref

    def _write_manifest(self, name: str, found: DataHash) -> None:
        path = self.dir / name
        if path.exists():
            return  # the name is the content's hash: the same manifest is there
        temporary = self.dir / f".{name}.tmp"
        try:
            manifest = found.manifest or {}
            body = {rel: [digest, size] for rel, (digest, size) in sorted(manifest.items())}
            temporary.write_text(json.dumps(body, separators=(",", ":")))
            os.replace(temporary, path)
        except OSError as exc:
            self._warn_once("store", f"polytrack could not record to {self.dir}: {exc}")

    def record_seeds(self, seeds: SeedState) -> None:
        """Record what `polytrack.seed_everything` seeded (it calls this)."""
        if not self._after_finish("seed_everything"):
            self._append(seeds)

    def record_git(self, state: GitState) -> None:
        """Record a git state the caller found (`polytrack.tracking.log_code_ref` does);
        it replaces the one `init()` captured, as the latest record of its kind."""
        if not self._after_finish("log_code_ref"):
            self._append(state)

    # -- artifacts, models, inputs and outputs --------------------------------------------

    def log_artifact(
        self,
        path: str | os.PathLike[str],
        name: str | None = None,
        *,
        kind: str | None = None,
        role: str = "output",
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Keep a copy of a file or directory with the run; returns before it is copied.

        The copy is made in the background into the home's content-addressed blob store
        (the same bytes are kept once, whichever run logs them); `finish()` waits for it.
        A copy that fails warns once with `TrackingWarning`; the run goes on.

        Args:
            path: a file or a directory (its files, recursively; see `docs/artifacts.md`).
            name: what the artifact is called in this run, a relative path such as
                "model" or "checkpoints/best"; default the file or directory name.
            kind: a label ("dataset", "report", ...); default "file" or "directory".
            role: "output" (the run made it) or "input" (the run used it).
            metadata: JSON values to keep with it.

        Raises:
            InvalidInputError: the path does not exist or is neither a file nor a
                directory; the name is empty, absolute or has ".." parts; the message
                names the field.

        Example:
            >>> run.log_artifact("plots/", name="plots")
        """
        request = self._artifact_request(
            path, name, kind=kind, role=role, framework=None, metadata=metadata
        )
        if not self._after_finish("log_artifact"):
            self._submit(request)

    def log_model(
        self,
        path: str | os.PathLike[str],
        name: str | None = None,
        *,
        framework: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Keep a copy of a model file or directory: `log_artifact` with kind "model".

        Args:
            path: the saved model, a file or a directory.
            name: default the file or directory name.
            framework: "pytorch", "sklearn", ...
            metadata: JSON values to keep with it (metrics, input shape, ...).

        Raises:
            InvalidInputError: as `log_artifact`.

        Example:
            >>> run.log_model("model.pt", "classifier", framework="pytorch")
        """
        request = self._artifact_request(
            path, name, kind="model", role="output", framework=framework, metadata=metadata
        )
        if not self._after_finish("log_model"):
            self._submit(request)

    def log_inputs(self, **values: Any) -> None:
        """Record inputs by name, as Polyaxon calls them: `log_params(values)`.

        Example:
            >>> run.log_inputs(lr=0.01, batch_size=64)
        """
        self.log_params(values)

    def log_outputs(self, *, reset: bool = False, **values: Any) -> None:
        """Record results by name (Polyaxon's outputs): later values for a name win.

        Args:
            reset: forget every output recorded before.
            values: name -> JSON value (numbers, strings, booleans, None, lists, mappings).

        Raises:
            InvalidInputError: a value cannot be recorded; the message names it.

        Example:
            >>> run.log_outputs(accuracy=0.93, best_epoch=7)
        """
        outputs = {
            key: redact_value(key, _json_value(f"outputs.{key}", value))
            for key, value in values.items()
        }
        if not self._after_finish("log_outputs"):
            self._append(OutputsSet(outputs=outputs, reset=bool(reset)))

    def artifact(self, name: str) -> ArtifactView:
        """The artifact logged last under `name`, once its copy is done (waits for it).

        Raises:
            ArtifactNotFoundError: the run has no artifact of that name.
            StoreError: its copy failed (the message says why).

        Example:
            >>> run.artifact("model").download("restored/")
        """
        from polytrack.artifacts import ArtifactView, check_artifact_name, latest, read_artifacts

        check_artifact_name(name)
        copier = self._artifacts
        failure = copier.wait(name) if copier is not None else None
        if failure is not None:
            raise StoreError(f"artifact {name!r} could not be stored: {failure}")
        found = latest(read_artifacts(self.dir), name)
        if found is None:
            raise ArtifactNotFoundError(f"run {self.id} has no artifact {name!r}")
        return ArtifactView.of(found, self._blobs_home())

    def use_blob_store(self, store: BlobStore) -> None:
        """Copy this run's artifacts into `store` rather than the home's own.

        Raises:
            RunStateError: an artifact was logged already.
        """
        with self._artifacts_lock:
            if self._artifacts is not None:
                raise RunStateError("use_blob_store() must come before the first artifact")
            self._blob_store = store

    def _blobs_home(self) -> Path:
        return self._blob_store.home if self._blob_store is not None else self.settings.home

    def _artifact_request(
        self,
        path: str | os.PathLike[str],
        name: str | None,
        *,
        kind: str | None,
        role: str,
        framework: str | None,
        metadata: Mapping[str, Any] | None,
    ) -> ArtifactRequest:
        """Everything checked on the caller's thread: a stat and the names, no reading."""
        from polytrack.artifacts import ArtifactRequest, check_artifact_name

        if not isinstance(path, (str, os.PathLike)):
            raise InvalidInputError(f"path must be a str or os.PathLike; got {type(path).__name__}")
        given = os.fsdecode(path)
        if not given:
            raise InvalidInputError("path is empty")
        absolute = os.path.abspath(given)
        try:
            mode = os.stat(absolute).st_mode
        except FileNotFoundError:
            raise InvalidInputError(f"path {absolute!r} does not exist") from None
        except OSError as exc:
            raise InvalidInputError(f"path {absolute!r}: {exc.strerror or exc}") from exc
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise InvalidInputError(f"path {absolute!r} is neither a regular file nor a directory")
        name = check_artifact_name(os.path.basename(absolute) if name is None else name)
        for label, value in (("kind", kind), ("framework", framework)):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise InvalidInputError(
                    f"{label} must be a non-empty string; got {safe_repr(value)}"
                )
        if role not in DATA_ROLES:
            raise InvalidInputError(
                f"role must be one of {', '.join(DATA_ROLES)}; got {safe_repr(role)}"
            )
        if metadata is not None and not isinstance(metadata, Mapping):
            raise InvalidInputError(f"metadata must be a mapping; got {type(metadata).__name__}")
        checked = _json_value("metadata", dict(metadata or {}))
        return ArtifactRequest(
            name=name,
            path=absolute,
            kind=kind,
            role=role,
            framework=framework,
            metadata={key: redact_value(key, value) for key, value in checked.items()},
            logged_at=time.time(),
        )

    def _submit(self, request: ArtifactRequest) -> None:
        with self._artifacts_lock:
            if self._artifacts is None:
                from polytrack.artifacts import ArtifactCopier
                from polytrack.store.blobs import BlobStore

                copier = ArtifactCopier(
                    store=self._blob_store or BlobStore(self.settings.home),
                    record=self._writer.append_event,
                    warn=lambda kind, message: self._writer.warn_once(kind, message, stacklevel=1),
                    run_id=self.id,
                )
                copier.start()
                self.own(copier)
                self._artifacts = copier
            copier = self._artifacts
        copier.submit(request)

    def attach_sync(self, worker: SyncWorker) -> None:
        """Let `worker` ship the run while it records; `finish()` waits for it (bounded)."""
        self._sync = worker

    def own(self, collaborator: Collaborator) -> None:
        """Stop `collaborator` when the run finishes, last owned first."""
        self._collaborators.append(collaborator)

    def before_finish(self, hook: Callable[[], None]) -> None:
        """Call `hook` once when `finish()` starts, while the run still records: however
        it finishes (`finish()`, at exit, an uncaught exception, a stop signal). Polyaxon's
        outputs directory is kept as an artifact so (`polytrack.tracking`)."""
        self._before_finish.append(hook)

    # -- media ----------------------------------------------------------------------------
    # Each checks and copies its input here and returns; the run's encoder thread encodes
    # it into the blob store and records it (`polytrack.media`). Bad input raises
    # InvalidInputError naming the argument and its shape, recording nothing.

    def log_image(
        self,
        name: str,
        data: Any,
        step: int | None = None,
        *,
        caption: str | None = None,
        dataformats: str | None = None,
    ) -> None:
        """Record an image, or a batch of them as one step, kept as PNG.

        Args:
            name: what the images are called ("samples/val").
            data: a numpy array HW, HWC or CHW (1, 3 or 4 channels; uint8, or floats in
                [0, 1]), a batch NHWC or NCHW, a PIL image, a matplotlib figure or a
                torch tensor. Copied before this returns.
            step: default the run's current step (the last logged, 0 before any).
            caption: shown under the image.
            dataformats: "HWC", "CHW", "NCHW", ... where the shape alone is ambiguous.

        Raises:
            InvalidInputError: not an image (a 4-D array that is no batch of images, an
                object dtype); the message names `data` and its shape.

        Example:
            >>> run.log_image("samples", batch_uint8, step=epoch, caption="validation")
        """
        # Reached by the first call only: the media logger's own `image` then takes the
        # run's `log_image` over (as the journal's function takes `log_metrics`).
        media = self._media or self._start_media("log_image")
        if media is not None:
            media.image(name, data, step, caption=caption, dataformats=dataformats)

    def log_image_with_boxes(
        self,
        name: str,
        data: Any,
        boxes: Any,
        step: int | None = None,
        *,
        labels: Any = None,
        caption: str | None = None,
        dataformats: str | None = None,
    ) -> None:
        """Record an image with bounding boxes drawn on it (and kept as numbers).

        Args:
            boxes: an (n, 4) array of (x_min, y_min, x_max, y_max) in pixels.
            labels: n strings, one per box.

        Raises:
            InvalidInputError: as `log_image`; boxes not (n, 4) numbers, or labels not
                one per box.

        Example:
            >>> run.log_image_with_boxes("detections", image, [[10, 10, 50, 80]], labels=["cat"])
        """
        from polytrack.media.images import check_boxes

        media = self._media or self._start_media("log_image_with_boxes")
        if media is not None:
            checked = check_boxes(boxes, labels)
            media.image(
                name, data, step, caption=caption, dataformats=dataformats, boxes=checked,
                what="log_image_with_boxes",
            )  # fmt: skip

    def log_histogram(
        self, name: str, values: Any, step: int | None = None, *, bins: Any = 64
    ) -> None:
        """Record the distribution of `values` (weights, activations, ...), binned now.

        Args:
            values: numbers of any shape (numpy, torch, lists); only the bins are kept.
            bins: a count (1 to 512), a numpy rule ("auto", "fd", ...) or the edges.

        Raises:
            InvalidInputError: not numbers, empty, or NaN/infinite values among them.

        Example:
            >>> run.log_histogram("weights/fc1", model.fc1.weight, step=epoch)
        """
        from polytrack.media.jobs import histogram_job

        media = self._media or self._start_media("log_histogram")
        if media is None:
            return
        job = histogram_job(media.name(name), values, media.step(step), bins=bins)
        media.submit(job, "log_histogram")

    def log_np_histogram(
        self, name: str, values: Any, counts: Any, step: int | None = None
    ) -> None:
        """Record a histogram binned already: `values` are the edges (one more than
        `counts`), as `numpy.histogram` returns them.

        Raises:
            InvalidInputError: the lengths do not fit, NaN among them, edges unsorted.

        Example:
            >>> counts, edges = np.histogram(data, bins=20)
            >>> run.log_np_histogram("data", edges, counts)
        """
        from polytrack.media.jobs import np_histogram_job

        media = self._media or self._start_media("log_np_histogram")
        if media is None:
            return
        job = np_histogram_job(media.name(name), values, counts, media.step(step))
        media.submit(job, "log_np_histogram")

    def log_text(self, name: str, text: str, step: int | None = None) -> None:
        """Record a text (a generated sample, a report) at a step.

        Example:
            >>> run.log_text("samples", model.generate(prompt), step=epoch)
        """
        from polytrack.media.jobs import text_job

        media = self._media or self._start_media("log_text")
        if media is None:
            return
        job = text_job(media.name(name), text, media.step(step))
        media.submit(job, "log_text")

    def log_html(self, name: str, html: str, step: int | None = None) -> None:
        """Record an HTML document; the dashboard shows it sandboxed (no script reaches it).

        Example:
            >>> run.log_html("report", "<h1>Epoch 3</h1><p>ok</p>")
        """
        from polytrack.media.jobs import text_job

        media = self._media or self._start_media("log_html")
        if media is None:
            return
        job = text_job(media.name(name), html, media.step(step), kind="html")
        media.submit(job, "log_html")

    def log_table(
        self,
        name: str,
        data: Any,
        step: int | None = None,
        *,
        columns: Iterable[str] | None = None,
    ) -> None:
        """Record a table: a pandas DataFrame, a list of rows (lists or dicts) or a dict
        of columns; read back cell for cell (`RunView.media`).

        Raises:
            InvalidInputError: rows of different lengths, cells that are no JSON values,
                columns that do not fit.

        Example:
            >>> run.log_table("predictions", [[img_id, pred, label] for ...],
            ...               columns=["id", "prediction", "label"])
        """
        from polytrack.media.tables import table_job

        media = self._media or self._start_media("log_table")
        if media is None:
            return
        job = table_job(media.name(name), data, media.step(step), columns=columns)
        media.submit(job, "log_table")

    def log_figure(
        self, name: str, figure: Any, step: int | None = None, *, caption: str | None = None
    ) -> None:
        """Record a chart: matplotlib, plotly, bokeh or altair, kept as the library's own
        spec (interactive in the dashboard) plus a PNG where the library can render one.

        Raises:
            InvalidInputError: not a figure of one of those libraries.

        Example:
            >>> run.log_figure("confusion", plotly_figure, step=epoch)
        """
        from polytrack.media.figures import figure_job
        from polytrack.media.jobs import check_caption

        media = self._media or self._start_media("log_figure")
        if media is None:
            return
        job = figure_job(
            media.name(name), figure, media.step(step),
            caption=check_caption(caption),
        )  # fmt: skip
        media.submit(job, "log_figure")

    def log_audio(
        self,
        name: str,
        data: Any,
        step: int | None = None,
        *,
        sample_rate: int = 44100,
        caption: str | None = None,
    ) -> None:
        """Record a sound, kept as a WAV file (16-bit PCM).

        Args:
            data: samples, (frames,) or (frames, channels): floats in [-1, 1] or int16.
            sample_rate: samples per second.

        Example:
            >>> run.log_audio("speech", waveform, sample_rate=16000)
        """
        from polytrack.media.jobs import check_caption
        from polytrack.media.sound import audio_job

        media = self._media or self._start_media("log_audio")
        if media is None:
            return
        job = audio_job(
            media.name(name), data, media.step(step),
            sample_rate=sample_rate, caption=check_caption(caption),
        )  # fmt: skip
        media.submit(job, "log_audio")

    def log_video(
        self,
        name: str,
        frames: Any,
        step: int | None = None,
        *,
        fps: float = 4,
        format: str | None = None,
        caption: str | None = None,
    ) -> None:
        """Record a video made of frames: a GIF (Pillow), or MP4/WebM with the `video` extra.

        Args:
            frames: (time, height, width, channels) or (time, channels, height, width),
                uint8 or floats in [0, 1].
            fps: frames per second.
            format: "gif" (default), "mp4" or "webm".

        Example:
            >>> run.log_video("rollout", np.stack(frames), fps=30, format="mp4")
        """
        from polytrack.media.jobs import check_caption
        from polytrack.media.sound import video_job

        media = self._media or self._start_media("log_video")
        if media is None:
            return
        job = video_job(
            media.name(name), frames, media.step(step),
            fps=fps, format=format, caption=check_caption(caption),
            max_side=self.settings.media_max_side,
        )  # fmt: skip
        media.submit(job, "log_video")

    def log_curve(
        self,
        name: str,
        x: Any,
        y: Any,
        step: int | None = None,
        *,
        kind: str = "custom",
        annotation: str | None = None,
    ) -> None:
        """Record a curve (x, y) at a step: "roc", "pr" or your own ("custom").

        Raises:
            InvalidInputError: x and y of different lengths, not numbers, NaN among them.

        Example:
            >>> run.log_curve("calibration", bins, observed, annotation="ECE 0.04")
        """
        from polytrack.media.curves import curve_job

        media = self._media or self._start_media("log_curve")
        if media is None:
            return
        job = curve_job(
            media.name(name), x, y, media.step(step),
            kind=kind, annotation=annotation,
        )  # fmt: skip
        media.submit(job, "log_curve")

    def log_roc_curve(self, name: str, y_true: Any, y_score: Any, step: int | None = None) -> None:
        """Record the ROC curve of binary labels and scores, with its AUC (numpy only).

        Example:
            >>> run.log_roc_curve("val/roc", labels, probabilities[:, 1])
        """
        from polytrack.media.curves import roc_job

        media = self._media or self._start_media("log_roc_curve")
        if media is None:
            return
        job = roc_job(media.name(name), y_true, y_score, media.step(step))
        media.submit(job, "log_roc_curve")

    def log_pr_curve(self, name: str, y_true: Any, y_score: Any, step: int | None = None) -> None:
        """Record the precision-recall curve of binary labels and scores, with its
        average precision (numpy only).

        Example:
            >>> run.log_pr_curve("val/pr", labels, probabilities[:, 1])
        """
        from polytrack.media.curves import pr_job

        media = self._media or self._start_media("log_pr_curve")
        if media is None:
            return
        job = pr_job(media.name(name), y_true, y_score, media.step(step))
        media.submit(job, "log_pr_curve")

    def log_confusion_matrix(
        self,
        name: str,
        y_true: Any,
        y_pred: Any,
        step: int | None = None,
        *,
        labels: Iterable[Any] | None = None,
    ) -> None:
        """Record the confusion matrix of true and predicted labels (counts per pair).

        Args:
            labels: the classes in order; default every label seen, sorted.

        Example:
            >>> run.log_confusion_matrix("val/confusion", targets, predictions)
        """
        from polytrack.media.curves import confusion_job

        media = self._media or self._start_media("log_confusion_matrix")
        if media is None:
            return
        job = confusion_job(
            media.name(name), y_true, y_pred, media.step(step),
            labels=labels,
        )  # fmt: skip
        media.submit(job, "log_confusion_matrix")

    def media(self, name: str) -> list[MediaItem]:
        """Every value recorded under `name` so far, one per step (waits for the encoder).

        Example:
            >>> run.media("samples")[-1].value.shape
            (224, 224, 3)
        """
        from polytrack.media.jobs import check_name
        from polytrack.media.read import latest_per_step, read_media

        check_name(name)
        if self._media is not None:
            self._media.encoder.drain()
        return latest_per_step(read_media(self.dir, self._blobs_home(), name=name))

    def _submit_media(self, job: MediaJob, what: str) -> None:
        """Queue a media job built elsewhere (`polytrack.tracking`'s Polyaxon forms)."""
        media = self._media or self._start_media(what)
        if media is not None:
            media.submit(job, what)

    def _start_media(self, what: str) -> MediaLogger | None:
        """The run's media logger and encoder thread, made by the first media call; None
        after `finish()` (which warns once, as `what`)."""
        if self._after_finish(what):
            return None
        with self._artifacts_lock:
            if self._media is None:
                from polytrack.media.encoder import MediaEncoder
                from polytrack.media.logger import MediaLogger
                from polytrack.store.blobs import BlobStore

                encoder = MediaEncoder(
                    store=self._blob_store or BlobStore(self.settings.home),
                    record=self._writer.append_event,
                    warn=lambda kind, message: self._writer.warn_once(kind, message, stacklevel=1),
                    run_id=self.id,
                    max_bytes=self.settings.media_queue_bytes,
                )
                encoder.start()
                self.own(encoder)
                self._media = MediaLogger(
                    encoder,
                    last_step=lambda: self._writer.last_step,
                    max_side=self.settings.media_max_side,
                    refused=self._after_finish,
                )
                # The hot path: one call frame less per image (see `log_image`).
                self.log_image = self._media.image  # type: ignore[method-assign]
            return self._media

    # -- lifecycle ------------------------------------------------------------------------

    def finish(self, status: str = "succeeded", *, message: str | None = None) -> None:
        """Close the run with a final status; a second call does nothing.

        Args:
            status: succeeded, failed, stopped or skipped (a DAG operation not run).
            message: why (an exception's text, say), shown by `polytrack runs show`.
        """
        if status not in FINAL_STATUSES:
            raise InvalidInputError(
                f"status must be one of {', '.join(sorted(FINAL_STATUSES))};"
                f" got {safe_repr(status)}"
            )
        if self.finished or self._handed_over_to is not None or os.getpid() != self._pid:
            return
        hooks, self._before_finish = self._before_finish, []
        for hook in hooks:
            try:
                hook()
            except Exception as exc:  # finishing must reach the status record regardless
                self._warn_once("stop", f"polytrack could not finish {hook!r}: {exc!r}")
        self._status = status
        self.log_metrics = self._finished_log_metrics  # type: ignore[method-assign]
        self._stop_collaborators()
        if message is not None:
            # Exception texts quote connection URLs, tokens, headers: before the cut.
            message = redact_text(message)[:4000]
        try:
            self._writer.append_event(StatusChanged(status=status, at=time.time(), message=message))
        except StoreError as exc:
            self._warn_once("store", f"polytrack could not record the run's status: {exc}")
        self._close()

    def _close(self) -> None:
        """Close the journal, forget the run process-wide, index it: the end of either
        `finish()` or `hand_over()`."""
        try:
            self._writer.close()
        except OSError as exc:
            self._warn_once("store", f"polytrack could not close the run journal: {exc}")
        if self._sync is not None:
            # After the journal: its last records (the status, the checksums) go out too.
            sync, self._sync = self._sync, None
            sync.finish(self.settings.sync_timeout)
        if self._on_finish is not None:
            self._on_finish(self)
        if self.settings.index_on_finish:
            _index_quietly(self.settings.home, self.id)

    def hand_over(self, owner: str) -> None:
        """Give the run to another owner without finishing it, and let go of it here.

        For a run whose work goes on elsewhere, as a Kubernetes job started by
        `polytrack run`: records who owns it now, stops what this process captures and
        closes the journal, with no final status. Readers then show the status as
        recorded ("running") instead of judging the run crashed when this process exits;
        the new owner attaches to the run (`POLYTRACK_RUN_ID`) and finishes it. Later calls
        on this object are ignored with a warning, as after `finish()`.

        Args:
            owner: who carries the run on, e.g. "kubernetes:ml/train-a1b2c3d4".

        Raises:
            InvalidInputError: `owner` is empty.

        Example:
            >>> run.hand_over("kubernetes:ml/train-a1b2c3d4")
        """
        if not isinstance(owner, str) or not owner.strip():
            raise InvalidInputError(f"owner must be a non-empty string; got {safe_repr(owner)}")
        if self.finished or self._handed_over_to is not None or os.getpid() != self._pid:
            return
        self._handed_over_to = owner
        self.log_metrics = self._finished_log_metrics  # type: ignore[method-assign]
        self._stop_collaborators()
        try:
            self._writer.append_event(HandedOver(owner=owner, at=time.time()))
        except StoreError as exc:
            self._warn_once("store", f"polytrack could not record the run's new owner: {exc}")
        self._close()

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        status, message = exit_status(exc)
        self.finish(status, message=message)

    # -- internals ------------------------------------------------------------------------

    def _stop_collaborators(self) -> None:
        while self._collaborators:
            collaborator = self._collaborators.pop()
            try:
                collaborator.stop()
            except Exception as exc:  # finishing must reach the status record regardless
                self._warn_once("stop", f"polytrack could not stop {collaborator!r}: {exc!r}")
        if self._hash_cache is not None:
            self._hash_cache.close()
            self._hash_cache = None

    def detach_after_fork(self) -> None:
        """In a forked child: never write into the parent's journal."""
        self._collaborators = []  # their threads live in the parent only
        self._before_finish = []
        self._artifacts = None
        self._media = None
        self.__dict__.pop("log_image", None)  # the parent's encoder: see _start_media
        self._artifacts_lock = threading.Lock()  # it may have been held at the fork
        self._sync = None
        self._hash_cache = None
        self._pid = -1
        # Warns once (see _after_finish) that the child's calls are not recorded.
        self.log_metrics = self._finished_log_metrics  # type: ignore[method-assign]
        self._status = "stopped"

    def _finished_log_metrics(
        self,
        metrics: Mapping[str, Any] | None = None,
        step: int | None = None,
        epoch: int | None = None,
        **named: Any,
    ) -> None:
        self._after_finish("log_metrics")

    def _after_finish(self, what: str) -> bool:
        if self._pid == -1:  # detached in a forked child
            self._warn_once(f"forked-{what}", forked_message(what, f"run {self.id}"))
            return True
        if self.finished or self._handed_over_to is not None or self._pid != os.getpid():
            after = "it finished" if self._handed_over_to is None else "it was handed over"
            self._warn_once(
                f"finished-{what}", f"{what}() on run {self.id} after {after} is ignored"
            )
            return True
        return False

    def _append(self, event: Event) -> None:
        try:
            self._writer.append_event(event)
        except StoreError as exc:
            self._warn_once("store", f"polytrack could not record to {self.dir}: {exc}")

    def _warn_once(self, kind: str, message: str) -> None:
        # One warning per kind of failure per run, shared with the journal writer.
        self._writer.warn_once(kind, message, stacklevel=3)


def exit_status(exc: BaseException | None) -> tuple[str, str | None]:
    """The status and message of a run that a script leaves with `exc` (None: normally),
    the same whether a `with` block or an exit hook sees it.

    `SystemExit` is judged by its code, as the shell does: 0 or None succeeded, any other
    code failed, with the code in the message (a string code means exit code 1).

    Example:
        >>> exit_status(SystemExit(75))
        ('failed', 'SystemExit: exit code 75')
    """
    if exc is None:
        return "succeeded", None
    if isinstance(exc, SystemExit):
        code = exc.code
        if code is None or (isinstance(code, int) and code == 0):
            return "succeeded", None
        if isinstance(code, int):  # bool too: sys.exit(True) is exit code 1
            return "failed", f"SystemExit: exit code {int(code)}"
        return "failed", f"SystemExit: exit code 1: {_text_of(code)}"
    if isinstance(exc, KeyboardInterrupt):
        return "stopped", "KeyboardInterrupt"
    return "failed", f"{type(exc).__name__}: {_text_of(exc)}"


def _text_of(value: object) -> str:
    """str(value), which may raise (a user's exception class): the run is finished anyway."""
    try:
        return str(value)
    except Exception:
        return safe_repr(value)


def forked_message(what: str, parent: str) -> str:
    """What a forked child is told when it logs into its parent's run: nothing recorded."""
    return (
        f"{what}() in a process forked from {parent}: a forked child (a "
        "DataLoader or pool worker) records nothing into its parent's run. Log from the "
        "main process, or start a run in the worker; see 'Logging from workers' in "
        "docs/tracking.md"
    )


def _noop_log_metrics(
    metrics: Mapping[str, Any] | None = None,
    step: int | None = None,
    epoch: int | None = None,
    **named: Any,
) -> None:
    pass


class DisabledRun:
    """What `init(mode="disabled")` returns: every call does nothing, at almost no cost."""

    id = "disabled"
    project = "disabled"
    name = "disabled"
    dir: Path | None = None  # a `polytrack.ranks.RankRun` stands for a run with one
    status = "disabled"
    finished = False
    step = -1
    attempt = 0
    handed_over_to = None

    def __init__(self, on_finish: Callable[[DisabledRun], None] | None = None) -> None:
        self.log_metrics: LogMetrics = _noop_log_metrics
        self._on_finish = on_finish

    def __repr__(self) -> str:
        return "<polytrack.DisabledRun>"

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        pass

    def log_params(self, params: Mapping[str, Any] | argparse.Namespace) -> None:
        pass

    def log_tags(self, tags: Iterable[str] | str) -> None:
        pass

    def log_data_ref(
        self, name: str, source: Any, role: str = "input", *, progress: bool | None = None
    ) -> None:
        pass

    def record_seeds(self, seeds: SeedState) -> None:
        pass

    def record_git(self, state: GitState) -> None:
        pass

    def log_artifact(
        self,
        path: str | os.PathLike[str],
        name: str | None = None,
        *,
        kind: str | None = None,
        role: str = "output",
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        pass

    def log_model(
        self,
        path: str | os.PathLike[str],
        name: str | None = None,
        *,
        framework: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        pass

    def log_inputs(self, **values: Any) -> None:
        pass

    def log_outputs(self, *, reset: bool = False, **values: Any) -> None:
        pass

    def _ignore(self, *args: Any, **kwargs: Any) -> None:
        pass

    # Media: nothing is checked or kept (a disabled run costs the loop nothing).
    log_image = log_image_with_boxes = log_histogram = log_np_histogram = _ignore
    log_text = log_html = log_table = log_figure = log_audio = log_video = _ignore
    log_curve = log_roc_curve = log_pr_curve = log_confusion_matrix = _ignore

    def media(self, name: str) -> list[MediaItem]:
        return []

    def artifact(self, name: str) -> ArtifactView:
        raise RunStateError("a disabled run records no artifacts")

    def finish(self, status: str = "succeeded", *, message: str | None = None) -> None:
        if self._on_finish is not None:
            self._on_finish(self)

    def hand_over(self, owner: str) -> None:
        self.finish()

    def detach_after_fork(self) -> None:
        pass

    def __enter__(self) -> DisabledRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()


def _index_quietly(home: Path, run_id: str) -> None:
    """Index a finished run so the next listing is quick; readers catch up if this fails.

    Only where numpy is loaded already (any training script): importing it here would
    cost more than the run's whole `init()`; the next reader indexes the run instead.
    Nor does it wait on an index that another process holds, nor repair a damaged one
    (which reads every run): skipped, as readers index lazily (issue 12: finish() waited
    10 s on a locked index).
    """
    if "numpy" not in sys.modules:
        return
    from polytrack.store.local import LocalStore

    try:
        with LocalStore.open(
            home, busy_timeout=0.05, repair_index=False, memory_fallback=False
        ) as store:
            store.index_run(run_id)
    except (PolytrackError, OSError):
        pass


# Nesting deeper than any config a person writes, and far short of Python's recursion
# limit (1,000): a 5,000-deep or cyclic structure is refused, not a RecursionError.
MAX_PARAM_DEPTH = 64


def check_tags(tags: Iterable[str] | str) -> tuple[str, ...]:
    """Tags as a tuple of stripped strings; InvalidInputError naming the first bad one."""
    if isinstance(tags, str):
        tags = [tags]
    elif isinstance(tags, Mapping) or not isinstance(tags, Iterable):
        raise InvalidInputError(
            f"tags must be a string or a list of strings; got {type(tags).__name__} "
            f"{safe_repr(tags)}"
        )
    clean: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip() or len(tag) > 256:
            raise InvalidInputError(
                f"tags must be non-empty strings of at most 256 characters; got {safe_repr(tag)}"
            )
        if has_surrogates(tag):
            raise InvalidInputError(f"tag {tag!r} holds a lone surrogate, which is not text")
        clean.append(redact_text(tag.strip()))  # a token pasted into a tag
    return tuple(clean)


def flatten_params(
    params: Mapping[str, Any] | argparse.Namespace, prefix: str = ""
) -> dict[str, ParamValue]:
    """Flatten nested mappings with dots and validate every leaf value.

    Raises InvalidInputError, naming the param, for a value that cannot be recorded: of
    an unsupported type, an int past a float's range, a cycle, or nesting deeper than
    `MAX_PARAM_DEPTH`. Lone surrogates in values are escaped (see `polytrack._text`).

    Example:
        >>> flatten_params({"net": {"depth": 4}, "lr": 0.1})
        {'net.depth': 4, 'lr': 0.1}
    """
    flat: dict[str, ParamValue] = {}
    _flatten_into(flat, params, prefix, ())
    return flat


def _flatten_into(
    flat: dict[str, ParamValue], params: object, prefix: str, path: tuple[int, ...]
) -> None:
    """Add the leaves of `params` under `prefix`; `path` holds the ids of the mappings
    above, to tell a cycle from a deep but finite structure."""
    if _is_namespace(params):
        params = vars(params)
    if not isinstance(params, Mapping):
        raise InvalidInputError(f"params must be a mapping; got {type(params).__name__}")
    if id(params) in path:
        raise InvalidInputError(f"param {prefix[:-1]!r} contains itself (a cycle)")
    if len(path) >= MAX_PARAM_DEPTH:
        raise InvalidInputError(
            f"param {prefix[:200]!r}...: nested deeper than {MAX_PARAM_DEPTH} levels"
        )
    path = (*path, id(params))
    for key, value in params.items():
        if not isinstance(key, str) or not key:
            raise InvalidInputError(
                "param keys must be non-empty strings; "
                f"got {safe_repr(key)} under {prefix[:-1] or 'the top level'!r}"
            )
        if has_surrogates(key):
            raise InvalidInputError(
                f"param key {key!r} (under {prefix[:-1] or 'the top level'!r}) holds a lone "
                "surrogate, which is not text"
            )
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) or _is_namespace(value):
            _flatten_into(flat, value, f"{name}.", path)
        else:
            flat[name] = redact_value(name, _param_value(name, value, path))  # type: ignore[assignment]


def _param_value(name: str, value: Any, path: tuple[int, ...] = ()) -> ParamValue:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return escape_surrogates(value)
    if isinstance(value, int):
        return _check_int(f"param {name!r}", value)
    if isinstance(value, float):
        return value
    if isinstance(value, os.PathLike):
        path_text: str | bytes = os.fspath(value)
        text = path_text if isinstance(path_text, str) else path_text.decode(errors="replace")
        return escape_surrogates(text)
    if isinstance(value, (list, tuple)):
        inner = _enter(f"param {name!r}", value, path)
        return [_param_value(f"{name}[{i}]", item, inner) for i, item in enumerate(value)]
    # numpy scalars and 0-d arrays, torch 0-d tensors: anything with .item() and no shape.
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", 0) == 0:
        try:
            return _param_value(name, item(), path)
        except (TypeError, ValueError):
            pass
    raise InvalidInputError(
        f"param {name!r}: cannot record a value of type {type(value).__name__} "
        "(use str, int, float, bool, None, a list of those, or a nested mapping)"
    )


def _check_int(name: str, value: int) -> int:
    """An int every reader can compare: within a float's range (a 128-bit seed is; a
    400-digit number is not, and the index, pandas and servers would all fail on it)."""
    try:
        float(value)
    except OverflowError:
        raise InvalidInputError(
            f"{name}: {safe_repr(value, 40)} is too large to record as a number "
            "(past a float's range); record it as a string"
        ) from None
    return int(value)  # a bool-like int subclass (IntEnum, numpy's) as a plain int


def _enter(name: str, container: object, path: tuple[int, ...]) -> tuple[int, ...]:
    """`path` with `container` entered; InvalidInputError at a cycle or past the depth cap."""
    if id(container) in path:
        raise InvalidInputError(f"{name} contains itself (a cycle)")
    if len(path) >= MAX_PARAM_DEPTH:
        raise InvalidInputError(f"{name[:200]}: nested deeper than {MAX_PARAM_DEPTH} levels")
    return (*path, id(container))


def _json_value(name: str, value: Any, path: tuple[int, ...] = ()) -> Any:
    """`value` as JSON data (numpy and torch scalars as numbers, paths and tuples as
    strings and lists); InvalidInputError naming `name` for anything else, for a cycle,
    nesting past `MAX_PARAM_DEPTH` and ints past a float's range."""
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, str):
        return escape_surrogates(value)
    if isinstance(value, int):
        return _check_int(name, value)
    if isinstance(value, os.PathLike):
        return escape_surrogates(os.fsdecode(value))
    if isinstance(value, (list, tuple)):
        inner = _enter(name, value, path)
        return [_json_value(f"{name}[{i}]", item, inner) for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        inner = _enter(name, value, path)
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInputError(f"{name}: keys must be strings; got {safe_repr(key)}")
            if has_surrogates(key):
                raise InvalidInputError(
                    f"{name}: key {key!r} holds a lone surrogate, which is not text"
                )
            out[key] = _json_value(f"{name}.{key}", item, inner)
        return out
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", 0) == 0:
        try:
            return _json_value(name, item(), path)
        except (TypeError, ValueError):
            pass
    raise InvalidInputError(
        f"{name}: cannot record a value of type {type(value).__name__} "
        "(use numbers, strings, booleans, None, lists or mappings of those)"
    )


def _is_namespace(value: object) -> bool:
    """An `argparse.Namespace`, without importing argparse (3 ms of `init()`): a namespace
    exists only where argparse was imported already."""
    argparse = sys.modules.get("argparse")
    return argparse is not None and isinstance(value, argparse.Namespace)
