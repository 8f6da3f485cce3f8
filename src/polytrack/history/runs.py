"""Reading recorded runs back: `polytrack.runs()`, `polytrack.get_run()` and `RunView`.

What readers skipped as damaged in a run's files (`RunInfo.damaged`) is said with a
`DamagedRecordsWarning`, once per run and process: a listing that a notebook repeats
says it the first time, and again only when a run lost more since.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final

import attrs
import numpy as np
import numpy.typing as npt
from attrs import frozen

from polytrack import _display
from polytrack.artifacts import ArtifactView, check_artifact_name, latest, read_artifacts
from polytrack.capture.logs import LogLine, read_log
from polytrack.errors import ArtifactNotFoundError, DamagedRecordsWarning, InvalidInputError
from polytrack.history import frames, plot
from polytrack.media.jobs import check_name
from polytrack.media.read import MediaItem, latest_per_step, media_counts, read_media
from polytrack.models import RunInfo, Snapshot
from polytrack.settings import Settings
from polytrack.store.local import LocalStore, read_outputs, read_settled
from polytrack.store.reader import (
    MetricSeries,
    read_run_files,
    read_snapshot,
)

__all__ = [
    "RunList",
    "RunView",
    "RunsPage",
    "RunsSummary",
    "get_run",
    "runs",
    "runs_page",
    "search_runs",
    "summarize_runs",
]


@frozen(repr=False)
class RunView(RunInfo):
    """A recorded run as a reader sees it: its `RunInfo`, and `history()` to read its points."""

    @classmethod
    def of(cls, info: RunInfo) -> RunView:
        return cls(**attrs.asdict(info, recurse=False))

    def __repr__(self) -> str:
        return f"<polytrack.RunView {self.id} {self.project}/{self.name} {self.status}>"

    def _repr_html_(self) -> str:
        """The run's card in a notebook: status, params, last metrics, sparklines."""
        keys = [k for k in self.metrics if not k.startswith("system/")][: _display.MAX_METRICS]
        return _display.run_html(self, _display.read_sparks(Path(self.path), keys))

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self) if cycle else _display.run_text(self))

    def plot(self, key: str, *, ax: Any | None = None) -> Any:
        """Draw metric `key` against the step with matplotlib (the `plot` extra); returns
        the Axes.

        Raises:
            ImportError: matplotlib is not installed (names the extra).

        Example:
            >>> polytrack.get_run("a1b2").plot("loss")
        """
        steps, values = self.history(key)[:2]
        return _display.draw([(self.name, steps, values)], key, ax)

    def history_frame(self, keys: str | Sequence[str], *, with_time: bool = False) -> Any:
        """The series of `keys` as a pandas DataFrame aligned by step: index `step`, one
        column per key (NaN where a key has no point at that step; the last point of a
        step logged twice). With `with_time`, also `<key>.time` columns (UTC datetimes).

        Raises:
            ImportError: pandas is not installed (names the `pandas` extra).

        Example:
            >>> polytrack.get_run("a1b2").history_frame(["loss", "acc"])
        """
        names = [keys] if isinstance(keys, str) else list(keys)
        return frames.series_frame(
            {key: self.history(key, with_time=with_time) for key in names}, with_time=with_time
        )

    def history(
        self, key: str, *, with_time: bool = False
    ) -> (
        tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]
        | tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]
    ):
        """Every point of metric `key`, sorted by step: `(steps, values)` numpy arrays.

        With `with_time=True`, also the wall-clock time of each point (unix seconds).
        Reads the run's files, so it includes points not yet indexed. Damaged records
        are left out, and said once (`DamagedRecordsWarning`).

        Raises:
            StoreError: the run's directory was deleted.

        Example:
            >>> steps, values = polytrack.runs(project="mnist")[0].history("loss")
        """
        files = read_settled(
            Path(self.path),
            lambda directory: read_run_files(
                directory, keys=frozenset([key]), with_times=with_time
            ),
        )
        _say_damaged(self.id, self.path, files.corrupt)
        series = files.series.get(key)
        if series is None:
            empty = np.empty(0, np.float64)
            series = MetricSeries(np.empty(0, np.int64), empty, empty if with_time else None)
        if series.times is not None:
            return series.steps, series.values, series.times
        return series.steps, series.values

    def snapshot(self) -> Snapshot:
        """What was captured to recreate the run: git, code, environment, hardware, seeds
        and data refs.

        Example:
            >>> polytrack.get_run("a1b2").snapshot().git.commit
        """
        return read_settled(Path(self.path), read_snapshot)

    def diff(self) -> bytes | None:
        """The uncommitted changes the run started from (a patch for `git apply`), if any."""
        git = self.snapshot().git
        if git is None or git.diff_file is None:
            return None
        return (Path(self.path) / git.diff_file).read_bytes()

    def artifacts(self) -> list[ArtifactView]:
        """Every artifact and model the run logged, in the order logged (a name logged
        twice appears twice).

        Example:
            >>> [a.name for a in polytrack.get_run("a1b2").artifacts()]
        """
        home = self._home()
        return [ArtifactView.of(event, home) for event in read_artifacts(Path(self.path))]

    def artifact(self, name: str) -> ArtifactView:
        """The artifact logged last under `name`.

        Raises:
            ArtifactNotFoundError: the run has no artifact of that name.

        Example:
            >>> polytrack.get_run("a1b2").artifact("model").download("restored/")
        """
        check_artifact_name(name)
        found = latest(read_artifacts(Path(self.path)), name)
        if found is None:
            raise ArtifactNotFoundError(f"run {self.id} has no artifact {name!r}")
        return ArtifactView.of(found, self._home())

    @property
    def outputs(self) -> dict[str, Any]:
        """The results the run reported with `log_outputs`, by name (read from its files).

        Example:
            >>> polytrack.get_run("a1b2").outputs["accuracy"]
        """
        return read_outputs(Path(self.path))

    def media(self, name: str) -> list[MediaItem]:
        """The media logged under `name`, one item per step (the last logged at each), in
        step order; each decodes its value (`.value`) only when asked.

        Raises:
            InvalidInputError: `name` is not a media name.

        Example:
            >>> images = polytrack.get_run("a1b2").media("samples")
            >>> images[-1].step, images[-1].value.shape
            (9, (224, 224, 3))
        """
        check_name(name)
        return latest_per_step(read_media(Path(self.path), self._home(), name=name))

    def media_keys(self) -> dict[str, tuple[str, int]]:
        """name -> (kind, number of steps) of every media the run logged, by name.

        Example:
            >>> polytrack.get_run("a1b2").media_keys()
            {'samples': ('image', 10), 'weights': ('histogram', 10)}
        """
        return media_counts(read_media(Path(self.path), self._home()))

    def _home(self) -> Path:
        """The store the run lives in: its directory is `<home>/runs/<id>`."""
        return Path(self.path).parents[1]

    def logs(self, *, tail: int | None = None) -> list[LogLine]:
        """The run's captured stdout and stderr, line by line, every attempt in order.

        Example:
            >>> for line in polytrack.get_run("a1b2").logs(tail=20): print(line.text)
        """
        lines: list[LogLine] = []
        for path in sorted(Path(self.path).glob("output-*.log")):
            lines.extend(read_log(path))
        return lines[-tail:] if tail else lines


def runs(
    project: str | None = None,
    where: str | None = None,
    order_by: str | Sequence[str] | None = None,
    *,
    limit: int | None = None,
    offset: int = 0,
    home: str | Path | None = None,
) -> RunList:
    """Recorded runs matching a query; newest first unless `order_by` says otherwise.

    Args:
        project: only runs of this project.
        where: a filter such as `"metrics.loss < 0.2 and params.lr == 0.01"`
            (the language is described in the docs and in `polytrack.store.query`).
        order_by: `"-metrics.acc"`, or a list of such fields.
        limit: at most this many runs.
        offset: skip this many runs first (with `limit`, a page: `offset=200, limit=100`
            is the third page of 100); `summarize_runs` counts them all.
        home: the store; default `POLYTRACK_HOME` or its default.

    Runs whose files hold damaged records are listed with what survives; a
    `DamagedRecordsWarning` says what was skipped (once per run), and `RunView.damaged`
    lists it.

    Raises:
        QueryError: `where` or `order_by` does not parse; the message points at the token.
        InvalidInputError: `offset` is not a whole number of 0 or more.

    Example:
        >>> polytrack.runs(project="mnist", where="metrics.loss < 0.2", order_by="-metrics.acc")
    """
    _check_offset(offset)
    store_home = _home(home)
    with LocalStore.open(store_home, create=False) as store:
        infos = store.query(
            project=project, where=where, order_by=order_by, limit=limit, offset=offset
        )
    for info in infos:
        _say_damaged(info.id, info.path, info.damaged)
    return RunList(RunView.of(info) for info in infos)


class RunList(list[RunView]):
    """What `runs()` returns: a plain list of `RunView`, which displays as a table in a
    notebook and can plot a metric of every run."""

    def _repr_html_(self) -> str:
        return _display.runs_html(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text("[...]" if cycle else _display.runs_text(self))

    def plot(self, key: str, *, ax: Any | None = None) -> Any:
        """Draw metric `key` of every run on one Axes; see `polytrack.plot`."""
        return plot.plot(self, key, ax=ax)


def search_runs(
    project: str | None = None,
    where: str | None = None,
    order_by: str | Sequence[str] | None = None,
    *,
    limit: int | None = None,
    offset: int = 0,
    home: str | Path | None = None,
    summaries: bool = False,
) -> Any:
    """`runs()` as a pandas DataFrame, one row per run, as `mlflow.search_runs` gives:
    `run_id`, `project`, `name`, `status`, `start_time`, `end_time` (UTC datetimes),
    `user`, `host`, `tags`, then `params.<key>` and `metrics.<key>` (the last value).
    With `summaries`, also `metrics.<key>.min` and `metrics.<key>.max`.

    Args: those of `runs()`, and `summaries`.

    Raises:
        ImportError: pandas is not installed (names the `pandas` extra).
        QueryError: `where` or `order_by` does not parse.

    Example:
        >>> df = polytrack.search_runs(project="mnist", where="metrics.loss < 0.2")
        >>> df[["run_id", "params.lr", "metrics.loss"]]
    """
    frames.require_pandas()
    found = runs(project, where, order_by, limit=limit, offset=offset, home=home)
    return frames.runs_frame(found, summaries=summaries)


@frozen
class RunsSummary:
    """What `runs()` would return, in brief: how many runs, their keys and projects
    (each sorted)."""

    count: int
    param_keys: tuple[str, ...]
    metric_keys: tuple[str, ...]
    projects: tuple[str, ...]


def summarize_runs(
    project: str | None = None,
    where: str | None = None,
    *,
    home: str | Path | None = None,
) -> RunsSummary:
    """How many runs `runs(project, where)` would list without a limit, every param and
    metric key they have, and their projects: what a pager and a column picker need,
    without loading the runs themselves.

    Raises:
        QueryError: `where` does not parse; the message points at the token.

    Example:
        >>> from polytrack.history.runs import summarize_runs
        >>> summarize_runs(project="mnist", where="metrics.loss < 0.2").count
        12
    """
    with LocalStore.open(_home(home), create=False) as store:
        count, params, metrics, projects = store.summarize(project=project, where=where)
    return RunsSummary(
        count, tuple(sorted(params)), tuple(sorted(metrics)), tuple(sorted(projects))
    )


@frozen
class RunsPage:
    """One page of `runs()`, and what a pager and a column picker need to know of all
    the runs that match (`summarize_runs`)."""

    runs: list[RunView]
    summary: RunsSummary


def runs_page(
    project: str | None = None,
    where: str | None = None,
    order_by: str | Sequence[str] | None = None,
    *,
    limit: int = 100,
    offset: int = 0,
    home: str | Path | None = None,
) -> RunsPage:
    """`runs(project, where, order_by, limit=limit, offset=offset)` and
    `summarize_runs(project, where)` in one read of the store: what a paged table shows.

    Raises:
        QueryError: `where` or `order_by` does not parse; the message points at the token.
        InvalidInputError: `offset` is not a whole number of 0 or more.

    Example:
        >>> from polytrack.history.runs import runs_page
        >>> page = runs_page(where="metrics.loss < 0.2", limit=100, offset=200)
        >>> page.summary.count, len(page.runs)
        (1234, 100)
    """
    _check_offset(offset)
    with LocalStore.open(_home(home), create=False) as store:
        infos, (count, params, metrics, projects) = store.page(
            project=project, where=where, order_by=order_by, limit=limit, offset=offset
        )
    for info in infos:
        _say_damaged(info.id, info.path, info.damaged)
    summary = RunsSummary(
        count, tuple(sorted(params)), tuple(sorted(metrics)), tuple(sorted(projects))
    )
    return RunsPage([RunView.of(info) for info in infos], summary)


def _check_offset(offset: object) -> None:
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidInputError(f"offset must be a whole number of 0 or more; got {offset!r}")


def get_run(ref: str, *, project: str | None = None, home: str | Path | None = None) -> RunView:
    """One run by id, unique id prefix, or name (within `project` when given).

    A run whose files hold damaged records is read from what survives; a
    `DamagedRecordsWarning` says what was skipped (once per run), and `RunView.damaged`
    lists it.

    Raises:
        RunNotFoundError: nothing matches. AmbiguousRunError: several runs match.
    """
    store_home = _home(home)
    with LocalStore.open(store_home, create=False) as store:
        info = store.get(ref, project=project)
    _say_damaged(info.id, info.path, info.damaged)
    return RunView.of(info)


def _home(home: str | Path | None) -> Path:
    return Path(home).expanduser() if home is not None else Settings.from_env().home


# (run directory, message) said already in this process. Only what was said is kept here,
# not what the run holds: forgetting it (a fork, a reload) costs one warning again.
_SAID: Final[set[tuple[str, str]]] = set()
_SAID_LOCK: Final = threading.Lock()


def _say_damaged(run_id: str, path: str, messages: Iterable[str]) -> None:
    """Warn of the damage to a run that this process has not been told of yet."""
    with _SAID_LOCK:
        new = tuple(m for m in dict.fromkeys(messages) if (path, m) not in _SAID)
        _SAID.update((path, m) for m in new)
    if new:
        # stacklevel 3: past this function and the reader, at the caller's line.
        warnings.warn(DamagedRecordsWarning(run_id, new), stacklevel=3)
