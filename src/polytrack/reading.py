"""Reading recorded runs back: `polytrack.runs()`, `polytrack.get_run()` and `RunView`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from polytrack.backends.local import LocalStore
from polytrack.models import MetricSummary, ParamValue, RunInfo
from polytrack.settings import Settings

__all__ = ["RunView", "get_run", "runs"]


class RunView:
    """A recorded run, as a reader sees it; `history()` reads its points.

    Its attributes are those of its `RunInfo` (`info`): `id`, `project`, `name`, `status`,
    `params`, `metrics` (name -> MetricSummary), `tags`, `created_at`, `finished_at`, ...
    """

    def __init__(self, info: RunInfo, home: Path) -> None:
        self.info = info
        self._home = home

    def __repr__(self) -> str:
        return f"<polytrack.RunView {self.id} {self.project}/{self.name} {self.status}>"

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def project(self) -> str:
        return self.info.project

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def status(self) -> str:
        return self.info.status

    @property
    def params(self) -> dict[str, ParamValue]:
        return self.info.params

    @property
    def metrics(self) -> dict[str, MetricSummary]:
        return self.info.metrics

    @property
    def tags(self) -> tuple[str, ...]:
        return self.info.tags

    @property
    def notes(self) -> str | None:
        return self.info.notes

    @property
    def message(self) -> str | None:
        return self.info.message

    @property
    def created_at(self) -> float:
        return self.info.created_at

    @property
    def finished_at(self) -> float | None:
        return self.info.finished_at

    @property
    def updated_at(self) -> float:
        return self.info.updated_at

    @property
    def host(self) -> str:
        return self.info.host

    @property
    def pid(self) -> int:
        return self.info.pid

    @property
    def path(self) -> str:
        return self.info.path

    @property
    def attempts(self) -> int:
        return self.info.attempts

    def history(
        self, key: str, *, with_time: bool = False
    ) -> (
        tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]
        | tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]
    ):
        """Every point of metric `key`, sorted by step: `(steps, values)` numpy arrays.

        With `with_time=True`, also the wall-clock time of each point (unix seconds).
        Reads the run's files, so it includes points not yet indexed.

        Example:
            >>> steps, values = polytrack.runs(project="mnist")[0].history("loss")
        """
        with LocalStore.open(self._home, create=False) as store:
            series = store.history(self.id, key, with_times=with_time)
        if series.times is not None:
            return series.steps, series.values, series.times
        return series.steps, series.values


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
            (the language is described in the docs and in `polytrack.query`).
        order_by: `"-metrics.acc"`, or a list of such fields.
        limit: at most this many runs.
        home: the store; default `POLYTRACK_HOME` or its default.

    Raises:
        QueryError: `where` or `order_by` does not parse; the message points at the token.

    Example:
        >>> polytrack.runs(project="mnist", where="metrics.loss < 0.2", order_by="-metrics.acc")
    """
    store_home = _home(home)
    with LocalStore.open(store_home, create=False) as store:
        infos = store.query(project=project, where=where, order_by=order_by, limit=limit)
    return [RunView(info, store_home) for info in infos]


def get_run(ref: str, *, project: str | None = None, home: str | Path | None = None) -> RunView:
    """One run by id, unique id prefix, or name (within `project` when given).

    Raises:
        RunNotFoundError: nothing matches. AmbiguousRunError: several runs match.
    """
    store_home = _home(home)
    with LocalStore.open(store_home, create=False) as store:
        info = store.get(ref, project=project)
    return RunView(info, store_home)


def _home(home: str | Path | None) -> Path:
    return Path(home).expanduser() if home is not None else Settings.from_env().home
