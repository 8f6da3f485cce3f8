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

from polytrack.artifacts import ArtifactView, check_artifact_name, latest, read_artifacts
from polytrack.capture.logs import LogLine, read_log
from polytrack.errors import ArtifactNotFoundError, DamagedRecordsWarning
from polytrack.models import OutputsSet, RunInfo, Snapshot
from polytrack.settings import Settings
from polytrack.store.local import LocalStore, read_settled
from polytrack.store.reader import (
    MetricSeries,
    _list,
    _read_all_events,
    read_run_files,
    read_snapshot,
)

__all__ = ["RunView", "get_run", "runs"]


@frozen(repr=False)
class RunView(RunInfo):
    """A recorded run as a reader sees it: its `RunInfo`, and `history()` to read its points."""

    @classmethod
    def of(cls, info: RunInfo) -> RunView:
        return cls(**attrs.asdict(info, recurse=False))

    def __repr__(self) -> str:
        return f"<polytrack.RunView {self.id} {self.project}/{self.name} {self.status}>"

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
        events, _ = read_settled(
            Path(self.path), lambda directory: _read_all_events(directory, _list(directory), [])
        )
        outputs: dict[str, Any] = {}
        for _, event in events:
            if isinstance(event, OutputsSet):
                if event.reset:
                    outputs.clear()
                outputs.update(event.outputs)
        return outputs

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
    home: str | Path | None = None,
) -> list[RunView]:
    """Recorded runs matching a query; newest first unless `order_by` says otherwise.

    Args:
        project: only runs of this project.
        where: a filter such as `"metrics.loss < 0.2 and params.lr == 0.01"`
            (the language is described in the docs and in `polytrack.store.query`).
        order_by: `"-metrics.acc"`, or a list of such fields.
        limit: at most this many runs.
        home: the store; default `POLYTRACK_HOME` or its default.

    Runs whose files hold damaged records are listed with what survives; a
    `DamagedRecordsWarning` says what was skipped (once per run), and `RunView.damaged`
    lists it.

    Raises:
        QueryError: `where` or `order_by` does not parse; the message points at the token.

    Example:
        >>> polytrack.runs(project="mnist", where="metrics.loss < 0.2", order_by="-metrics.acc")
    """
    store_home = _home(home)
    with LocalStore.open(store_home, create=False) as store:
        infos = store.query(project=project, where=where, order_by=order_by, limit=limit)
    for info in infos:
        _say_damaged(info.id, info.path, info.damaged)
    return [RunView.of(info) for info in infos]


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
