"""Comparing runs: params side by side, metric summaries, and what changed between their
snapshots (commit and uncommitted diff, data and artifact hashes, packages, Python,
hardware); and whether two runs' metrics are bit-identical, or how far apart.

`polytrack.compare(...)` returns a `Comparison`; `polytrack runs compare` prints one and
`polytrack runs diff` prints its `differences()`. Every section is a tuple of rows, one
value per run in the order the runs were given; the first run is the baseline that
"added", "removed" and the patch diff are measured against.

This module lives in `history/`, not at the package's root: `polytrack.compare` is the
function, and a root submodule of that name would replace it on the package as soon as
anything imported the submodule (the layout test checks that no public name is a root
module's).
"""

from __future__ import annotations

import difflib
import enum
import hashlib
import json
import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs
import numpy as np
import numpy.typing as npt
from attrs import field, frozen

from polytrack.errors import InvalidInputError
from polytrack.history import display
from polytrack.history.runs import RunView
from polytrack.models import MetricSummary, RunInfo, Snapshot
from polytrack.settings import Settings
from polytrack.store.index import RunRef
from polytrack.store.local import LocalStore
from polytrack.store.reader import MetricSeries, read_run_files, read_snapshot

__all__ = [
    "ABSENT",
    "SECTIONS",
    "SYSTEM_PREFIX",
    "Absent",
    "Comparison",
    "MetricDelta",
    "MetricRow",
    "MetricsCheck",
    "Row",
    "compare",
    "identical_metrics",
]

SYSTEM_PREFIX: Final = "system/"
# The sections of plain rows, in the order they are shown.
SECTIONS: Final = ("params", "code", "data", "packages", "environment", "hardware")


class Absent(enum.Enum):
    """A value a run does not have, such as a param it never set. Not None: a param may
    be None (`null`), and the two must not compare equal."""

    ABSENT = "absent"

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = Absent.ABSENT


def _canonical(value: Any) -> str:
    # json spells 1 and 1.0, true and 1, NaN and -0.0 apart, and lists by value.
    if value is ABSENT:
        return "\x00absent"
    return json.dumps(value, sort_keys=True, default=str)


@frozen
class Row:
    """One compared key and each run's value (`ABSENT` where a run has none)."""

    key: str
    values: tuple[Any, ...]

    @property
    def differs(self) -> bool:
        """Whether any run's value differs from the first's (exactly: 0.1 vs 0.1000001)."""
        first = _canonical(self.values[0])
        return any(_canonical(value) != first for value in self.values[1:])

    @property
    def change(self) -> str:
        """Relative to the first run: "same", "added" (only later runs have it),
        "removed" (a later run lacks it) or "changed"."""
        if not self.differs:
            return "same"
        first, rest = self.values[0], self.values[1:]
        if first is ABSENT:
            return "added"
        if any(value is ABSENT for value in rest):
            return "removed"
        return "changed"


def _bits(value: float) -> bytes:
    return struct.pack("<d", value)


@frozen
class MetricRow:
    """One metric's summary (last, min, max, count) in each run; None where it has none."""

    key: str
    summaries: tuple[MetricSummary | None, ...]

    @property
    def differs(self) -> bool:
        """Whether the last values differ bit for bit, or a run lacks the metric."""
        first = self.summaries[0]
        for other in self.summaries[1:]:
            if (first is None) != (other is None):
                return True
            if first is not None and other is not None and _bits(first.last) != _bits(other.last):
                return True
        return False


@frozen
class Comparison:
    """Runs side by side. Build one with `polytrack.compare(...)`.

    Example:
        >>> comparison = polytrack.compare("a1b2", "c3d4")
        >>> [row.key for row in comparison.params if row.differs]
        ['lr']
    """

    runs: tuple[RunView, ...]
    params: tuple[Row, ...]  # differing first, then by key
    metrics: tuple[MetricRow, ...]  # differing first, then by key
    code: tuple[Row, ...]  # commit, branch, dirty, uncommitted diff, entrypoint, ...
    data: tuple[Row, ...]  # "<name> (<role> <type>)" -> digest, data refs and artifacts
    packages: tuple[Row, ...]  # distribution -> version; differing first
    environment: tuple[Row, ...]  # python, platform, host, frameworks, variables
    hardware: tuple[Row, ...]  # cpu, counts, memory, gpus
    # Each run's stored uncommitted diff (None for a clean tree or no git record).
    patches: tuple[bytes | None, ...] = field(repr=False)

    @property
    def same_commit(self) -> bool:
        """Whether every run started from the same (known) commit."""
        commits = next((row.values for row in self.code if row.key == "commit"), (None,))
        return commits[0] not in (None, ABSENT) and len(set(commits)) == 1

    def on_first_commit(self, other: int) -> bool:
        """Whether run `other` (an index into `runs`) started from the first run's commit."""
        commits = next((row.values for row in self.code if row.key == "commit"), None)
        return (
            commits is not None
            and commits[0] not in (None, ABSENT)
            and (commits[other] == commits[0])
        )

    def differences(self) -> Comparison:
        """The same comparison with only the rows that differ."""
        keep: dict[str, Any] = {
            name: tuple(row for row in getattr(self, name) if row.differs) for name in SECTIONS
        }
        return attrs.evolve(self, metrics=tuple(row for row in self.metrics if row.differs), **keep)

    def patch_diff(self, other: int = 1) -> str | None:
        """A unified diff from the first run's stored patch to run `other`'s (an index
        into `runs`); None when the two patches are the same (or both absent).

        Meaningful when both started from the same commit (`same_commit`): it then
        shows how their uncommitted code differed.
        """
        first, second = self.patches[0], self.patches[other]
        if first == second:
            return None
        a, b = self.runs[0].id, self.runs[other].id
        lines = difflib.unified_diff(
            _lines(first), _lines(second), f"{a}/uncommitted.patch", f"{b}/uncommitted.patch"
        )
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)

    def _repr_html_(self) -> str:
        """In a notebook: a table, rows that differ highlighted."""
        return display.comparison_html(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text("Comparison(...)" if cycle else display.comparison_text(self))

    def to_dict(self) -> dict[str, Any]:
        """Plain data: runs, then each section as rows of `{key, values: {run id: value},
        differs}` (a run without the key is left out of `values`), and the patch diffs of
        runs on the first run's commit."""
        ids = [run.id for run in self.runs]

        def values(items: Iterable[Any]) -> dict[str, Any]:
            return {i: value for i, value in zip(ids, items, strict=True) if value is not ABSENT}

        data: dict[str, Any] = {
            "runs": [
                {"id": r.id, "name": r.name, "project": r.project, "status": r.status}
                for r in self.runs
            ],
            "metrics": [
                {
                    "key": row.key,
                    "values": values(
                        ABSENT if s is None else attrs.asdict(s) for s in row.summaries
                    ),
                    "differs": row.differs,
                }
                for row in self.metrics
            ],
        }
        for name in SECTIONS:
            data[name] = [
                {"key": row.key, "values": values(row.values), "differs": row.differs}
                | ({"change": row.change} if name in ("packages", "data") else {})
                for row in getattr(self, name)
            ]
        data["same_commit"] = self.same_commit
        data["patch_diffs"] = {}
        for index in range(1, len(self.runs)):
            diff = self.patch_diff(index) if self.on_first_commit(index) else None
            if diff is not None:
                data["patch_diffs"][ids[index]] = diff
        return data


def _lines(patch: bytes | None) -> list[str]:
    return [] if patch is None else patch.decode("utf-8", "replace").splitlines(keepends=True)


# -- building a comparison --------------------------------------------------------------


def compare(
    *refs: str,
    project: str | None = None,
    include_system: bool = False,
    home: str | Path | None = None,
) -> Comparison:
    """Two or more runs side by side: params, metrics and what changed between their
    snapshots.

    Args:
        refs: the runs (ids, unique id prefixes or names); the first is the baseline.
        project: look names up in this project only.
        include_system: also compare the `system/...` metrics (CPU, memory, ...), which
            differ between any two runs.
        home: the store; default `POLYTRACK_HOME` or its default.

    Raises:
        InvalidInputError: fewer than two runs.
        RunNotFoundError: a ref matches no run (AmbiguousRunError: several).

    Example:
        >>> for row in polytrack.compare("baseline", "tuned").differences().params:
        ...     print(row.key, row.values)
        lr (0.1, 0.01)
    """
    if len(refs) < 2:
        raise InvalidInputError(f"compare needs two runs or more; got {len(refs)}")
    with _open(home) as store:
        infos = [store.get(ref, project=project) for ref in refs]
        run_refs = store.refs(run_ids=[info.id for info in infos])
    runs = tuple(RunView.of(info) for info in infos)
    snapshots = [read_snapshot(Path(info.path)) for info in infos]
    patches = tuple(_patch(info, snap) for info, snap in zip(infos, snapshots, strict=True))
    by_run: dict[str, list[RunRef]] = {}
    for ref in run_refs:
        by_run.setdefault(ref.run_id, []).append(ref)

    def metrics(info: RunInfo) -> Mapping[str, MetricSummary]:
        return {
            key: summary
            for key, summary in info.metrics.items()
            if include_system or not key.startswith(SYSTEM_PREFIX)
        }

    metric_maps = [metrics(info) for info in infos]
    metric_rows = [
        MetricRow(key, tuple(m.get(key) for m in metric_maps))
        for key in sorted(set().union(*metric_maps))
    ]
    return Comparison(
        runs=runs,
        params=_differing_first(_rows([info.params for info in infos])),
        metrics=tuple(sorted(metric_rows, key=lambda row: (not row.differs, row.key))),
        code=_rows([_code(snap, patch) for snap, patch in zip(snapshots, patches, strict=True)]),
        data=_rows([_data(by_run.get(info.id, [])) for info in infos]),
        packages=_differing_first(
            _rows([snap.environment.packages if snap.environment else {} for snap in snapshots])
        ),
        environment=_rows([_environment(snap) for snap in snapshots]),
        hardware=_rows([_hardware(snap) for snap in snapshots]),
        patches=patches,
    )


def _open(home: str | Path | None) -> LocalStore:
    path = Path(home).expanduser() if home is not None else Settings.from_env().home
    return LocalStore.open(path, create=False)


def _rows(records: Sequence[Mapping[str, Any]]) -> tuple[Row, ...]:
    """Rows of every key any record has, in first-seen order."""
    keys: dict[str, None] = {}
    for record in records:
        keys.update(dict.fromkeys(record))
    return tuple(Row(key, tuple(record.get(key, ABSENT) for record in records)) for key in keys)


def _differing_first(rows: Iterable[Row]) -> tuple[Row, ...]:
    return tuple(sorted(rows, key=lambda row: (not row.differs, row.key)))


def _patch(info: RunInfo, snap: Snapshot) -> bytes | None:
    if snap.git is None or snap.git.diff_file is None:
        return None
    try:
        return (Path(info.path) / snap.git.diff_file).read_bytes()
    except OSError:
        return None


def _code(snap: Snapshot, patch: bytes | None) -> dict[str, Any]:
    row: dict[str, Any] = {}
    git, code, seeds = snap.git, snap.code, snap.seeds
    if git is not None:
        row.update(
            commit=git.commit if git.available else None,
            branch=git.branch,
            dirty=git.dirty,
            uncommitted=None if patch is None else f"sha256:{hashlib.sha256(patch).hexdigest()}",
            remote=git.remote,
        )
    if code is not None:
        row.update(
            entrypoint=code.notebook or code.entrypoint, argv=" ".join(code.argv), cwd=code.cwd
        )
    if seeds is not None:
        row.update(seed=seeds.seed, deterministic=seeds.deterministic)
    return row


def _data(refs: Sequence[RunRef]) -> dict[str, Any]:
    """`<name> (<role> <type>)` -> digest; the latest logged wins, inputs before outputs."""
    ordered = sorted(refs, key=lambda ref: (ref.role != "input", ref.type, ref.name, ref.seq))
    return {f"{ref.name} ({ref.role} {ref.type})": ref.digest for ref in ordered}


def _environment(snap: Snapshot) -> dict[str, Any]:
    env = snap.environment
    if env is None:
        return {}
    row: dict[str, Any] = {
        "python": f"{env.python} ({env.implementation})",
        "platform": env.platform,
        "host": env.hostname,
        "conda env": env.conda_env,
    }
    row.update({f"frameworks.{name}": version for name, version in sorted(env.frameworks.items())})
    row.update({f"env.{name}": value for name, value in sorted(env.variables.items())})
    return row


def _hardware(snap: Snapshot) -> dict[str, Any]:
    hw = snap.hardware
    if hw is None:
        return {}
    return {
        "cpu": hw.cpu_model,
        "cpus logical": hw.cpu_logical,
        "cpus physical": hw.cpu_physical,
        "memory": hw.memory_total,
        "gpus": len(hw.gpus),
        "gpu models": ", ".join(gpu.name for gpu in hw.gpus) or None,
        "gpu memory": sum(gpu.memory_total or 0 for gpu in hw.gpus) or None,
    }


# -- are two runs' metrics the same? ----------------------------------------------------


@frozen
class MetricDelta:
    """How one metric of run `b` compares with run `a`'s.

    `identical`: the same steps with bit-identical values (NaN where NaN). `max_abs_diff`:
    the largest |a - b| over the steps both logged (a number against NaN counts as
    infinite); None when the metric is in one run only, or no step is common. `points`:
    the values compared in each run (1 each when only last values are compared). `last`:
    each run's last value, None in the run that lacks the metric.
    """

    key: str
    identical: bool
    max_abs_diff: float | None
    points: tuple[int, int]
    note: str | None = None  # "only in <id>", "steps differ"
    last: tuple[float | None, float | None] = (None, None)


@frozen
class MetricsCheck:
    """Whether run `b` logged the same metrics as run `a`; see `identical_metrics`."""

    a: str
    b: str
    history: bool  # full histories (True) or last values only
    deltas: tuple[MetricDelta, ...]

    @property
    def identical(self) -> bool:
        """Every metric of either run identical in the other."""
        return all(delta.identical for delta in self.deltas)

    def differing(self) -> tuple[MetricDelta, ...]:
        """The metrics that are not identical."""
        return tuple(delta for delta in self.deltas if not delta.identical)

    def summary(self) -> str:
        """One line: "identical (12 metrics, full histories)" or how far apart they are."""
        what = "full histories" if self.history else "last values"
        count = len(self.deltas)
        if self.identical:
            return f"identical ({count} metric{'s' if count != 1 else ''}, {what})"
        parts = []
        for delta in self.differing():
            if delta.max_abs_diff is None:
                parts.append(f"{delta.key}: {delta.note}")
            else:
                note = f", {delta.note}" if delta.note else ""
                parts.append(f"{delta.key}: max |diff| {delta.max_abs_diff:.3g}{note}")
        return f"{len(parts)} of {count} metrics differ ({what}): " + "; ".join(parts)


def identical_metrics(
    a: str | RunInfo,
    b: str | RunInfo,
    *,
    history: bool = True,
    include_system: bool = False,
    home: str | Path | None = None,
) -> MetricsCheck:
    """Whether two runs logged bit-identical metrics, and if not, how far apart they are.

    Args:
        a: the reference run: a `RunInfo` (a `RunView`), or an id, unique id prefix or name.
        b: the run checked against it.
        history: compare every point of every metric (reads both runs' files); False
            compares the last values from the index only.
        include_system: also the `system/...` metrics, which always differ.
        home: the store, for runs given by reference; default `POLYTRACK_HOME`.

    Raises:
        RunNotFoundError: a reference matches no run (AmbiguousRunError: several).

    Example:
        >>> check = identical_metrics(original.id, reproduced.id)
        >>> check.identical, check.summary()
        (True, 'identical (2 metrics, full histories)')
    """
    info_a, info_b = _infos([a, b], home)

    def keys(info: RunInfo) -> set[str]:
        return {k for k in info.metrics if include_system or not k.startswith(SYSTEM_PREFIX)}

    keys_a, keys_b = keys(info_a), keys(info_b)
    series_a = series_b = None
    if history:
        series_a = read_run_files(Path(info_a.path), keys=frozenset(keys_a)).series
        series_b = read_run_files(Path(info_b.path), keys=frozenset(keys_b)).series
    deltas = []
    for key in sorted(keys_a | keys_b):
        last = _last(info_a, key), _last(info_b, key)
        if key not in keys_b or key not in keys_a:
            owner = info_a.id if key in keys_a else info_b.id
            deltas.append(MetricDelta(key, False, None, (0, 0), f"only in {owner}", last))
        elif series_a is not None and series_b is not None:
            delta = _series_delta(key, series_a.get(key, _EMPTY), series_b.get(key, _EMPTY))
            deltas.append(attrs.evolve(delta, last=last))
        else:
            last_a, last_b = info_a.metrics[key].last, info_b.metrics[key].last
            same = _bits(last_a) == _bits(last_b)
            diff = _max_abs_diff([last_a], [last_b])
            deltas.append(MetricDelta(key, same, diff, (1, 1), last=last))
    return MetricsCheck(info_a.id, info_b.id, history, tuple(deltas))


def _last(info: RunInfo, key: str) -> float | None:
    summary = info.metrics.get(key)
    return None if summary is None else summary.last


_EMPTY: Final = MetricSeries(np.empty(0, np.int64), np.empty(0, np.float64))


def _infos(refs: Sequence[str | RunInfo], home: str | Path | None) -> list[RunInfo]:
    if all(isinstance(ref, RunInfo) for ref in refs):
        return [ref for ref in refs if isinstance(ref, RunInfo)]
    with _open(home) as store:
        return [ref if isinstance(ref, RunInfo) else store.get(ref) for ref in refs]


def _series_delta(key: str, a: MetricSeries, b: MetricSeries) -> MetricDelta:
    points = (int(a.steps.size), int(b.steps.size))
    if np.array_equal(a.steps, b.steps):
        same = a.values.tobytes() == b.values.tobytes()
        return MetricDelta(key, same, _max_abs_diff(a.values, b.values), points)
    # Different steps: compare the last value at each step both logged.
    last_a, last_b = _last_per_step(a), _last_per_step(b)
    common = np.intersect1d(last_a[0], last_b[0])
    note = f"steps differ ({points[0]} vs {points[1]} points)"
    if not common.size:
        return MetricDelta(key, False, None, points, note + ", none in common")
    values_a = last_a[1][np.searchsorted(last_a[0], common)]
    values_b = last_b[1][np.searchsorted(last_b[0], common)]
    return MetricDelta(key, False, _max_abs_diff(values_a, values_b), points, note)


def _last_per_step(
    series: MetricSeries,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Unique steps, ascending, with the value logged last at each (series are sorted by
    step, stably, so the last of equal steps is the latest)."""
    steps, values = series.steps, series.values
    if not steps.size:
        return steps, values
    last = np.append(steps[1:] != steps[:-1], True)
    return steps[last], values[last]


def _max_abs_diff(
    a: Sequence[float] | npt.NDArray[np.float64], b: Sequence[float] | npt.NDArray[np.float64]
) -> float | None:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if not x.size:
        return None
    both_nan = np.isnan(x) & np.isnan(y)
    one_nan = np.isnan(x) ^ np.isnan(y)
    with np.errstate(invalid="ignore"):
        diff = np.abs(x - y)  # inf - inf is NaN: the same infinity counts as 0 below
    same_inf = np.isinf(x) & (x == y)
    diff = np.where(both_nan | same_inf, 0.0, diff)
    diff = np.where(one_nan, math.inf, diff)
    diff = np.where(np.isnan(diff), math.inf, diff)  # opposite infinities
    return float(diff.max())
