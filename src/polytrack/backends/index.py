"""The SQLite index of a store: runs, params, tags, metric summaries and chunk summaries.

The index is a cache. Run directories are the source of truth; `Index.replace_run` rewrites
everything about one run from what its files hold, so the index can be dropped and rebuilt
at any time. Metric series are indexed in chunks of `journal_reader.CHUNK` points (count,
step range, min, max, last), never a row per point; the points stay in the run files.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from polytrack.errors import StoreError
from polytrack.journal_reader import SegmentTotals
from polytrack.models import MetricSummary, ParamValue, RunInfo

__all__ = ["SCHEMA", "Index", "param_columns"]

SCHEMA_VERSION: Final = 1

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, project TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,
    notes TEXT, host TEXT, created_at REAL NOT NULL, finished_at REAL, updated_at REAL,
    pid INTEGER, path TEXT NOT NULL, message TEXT, attempts INTEGER NOT NULL DEFAULT 1,
    complete INTEGER NOT NULL DEFAULT 0, signature TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS runs_project ON runs (project, created_at);
CREATE INDEX IF NOT EXISTS runs_name ON runs (project, name);
CREATE TABLE IF NOT EXISTS params (
    run_id TEXT NOT NULL, key TEXT NOT NULL, value_json TEXT NOT NULL, num REAL, text TEXT,
    PRIMARY KEY (run_id, key)
);
CREATE INDEX IF NOT EXISTS params_key ON params (key, run_id);
CREATE TABLE IF NOT EXISTS tags (
    run_id TEXT NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (run_id, tag)
);
CREATE INDEX IF NOT EXISTS tags_tag ON tags (tag, run_id);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL, key TEXT NOT NULL, last REAL, min REAL, max REAL,
    count INTEGER NOT NULL, last_step INTEGER, PRIMARY KEY (run_id, key)
);
CREATE INDEX IF NOT EXISTS metrics_key ON metrics (key, run_id);
CREATE TABLE IF NOT EXISTS sealed_segments (
    run_id TEXT NOT NULL, file TEXT NOT NULL, totals TEXT NOT NULL, PRIMARY KEY (run_id, file)
);
CREATE TABLE IF NOT EXISTS metric_chunks (
    run_id TEXT NOT NULL, key TEXT NOT NULL, chunk INTEGER NOT NULL, count INTEGER NOT NULL,
    step_min INTEGER, step_max INTEGER, min REAL, max REAL, last REAL,
    PRIMARY KEY (run_id, key, chunk)
);
"""


def _nan_to_none(value: float) -> float | None:
    # SQLite stores NaN as NULL anyway; say so explicitly.
    return None if value != value else value


class Index:
    """One SQLite database file; every method opens a short transaction."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path

    @classmethod
    def open(cls, path: Path, *, timeout: float = 10.0) -> Index:
        """Open (creating if needed) the index at `path`."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, timeout=timeout, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
            row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                db.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
                )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the index {path}: {exc}") from exc
        return cls(db, path)

    @classmethod
    def in_memory(cls) -> Index:
        """An index that lives only as long as this object: for a home we cannot write."""
        db = sqlite3.connect(":memory:", isolation_level=None)
        db.executescript(SCHEMA)
        return cls(db, Path(":memory:"))

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"index {self.path}: {exc}") from exc

    def signatures(self) -> dict[str, tuple[int, str]]:
        """id -> (complete, signature) of every indexed run."""
        rows = self._db.execute("SELECT id, complete, signature FROM runs")
        return {run_id: (complete, signature) for run_id, complete, signature in rows}

    def replace_run(
        self,
        info: RunInfo,
        chunks: Mapping[str, Sequence[tuple[Any, ...]]],
        *,
        complete: bool,
        signature: str,
    ) -> None:
        """Rewrite everything indexed about one run."""
        with self._transaction() as db:
            self._delete(db, [info.id])
            db.execute(
                "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    info.id,
                    info.project,
                    info.name,
                    info.status,
                    info.notes,
                    info.host,
                    info.created_at,
                    info.finished_at,
                    info.updated_at,
                    info.pid,
                    info.path,
                    info.message,
                    info.attempts,
                    int(complete),
                    signature,
                ),
            )
            db.executemany(
                "INSERT INTO params VALUES (?,?,?,?,?)",
                [(info.id, key, *param_columns(value)) for key, value in info.params.items()],
            )
            db.executemany(
                "INSERT INTO tags VALUES (?,?)", [(info.id, tag) for tag in set(info.tags)]
            )
            db.executemany(
                "INSERT INTO metrics VALUES (?,?,?,?,?,?,?)",
                [
                    (
                        info.id,
                        key,
                        _nan_to_none(s.last),
                        _nan_to_none(s.min),
                        _nan_to_none(s.max),
                        s.count,
                        s.last_step,
                    )
                    for key, s in info.metrics.items()
                ],
            )
            db.executemany(
                "INSERT INTO metric_chunks VALUES (?,?,?,?,?,?,?,?,?)",
                [
                    (info.id, key, number, count, step_min, step_max, *map(_nan_to_none, rest))
                    for key, rows in chunks.items()
                    for number, (count, step_min, step_max, *rest) in enumerate(rows)
                ],
            )

    def delete_runs(self, run_ids: Sequence[str]) -> None:
        """Forget runs, with the cached totals of their sealed segments."""
        with self._transaction() as db:
            self._delete(db, run_ids)
            db.executemany("DELETE FROM sealed_segments WHERE run_id = ?", [(i,) for i in run_ids])

    def sealed(self, run_id: str) -> dict[str, SegmentTotals]:
        """The kept totals of a run's sealed segments, by file name."""
        rows = self._db.execute(
            "SELECT file, totals FROM sealed_segments WHERE run_id = ?", (run_id,)
        )
        return {file: json.loads(totals) for file, totals in rows}

    def keep_sealed(self, run_id: str, sealed: Mapping[str, SegmentTotals]) -> None:
        """Keep the totals of sealed segments: they never change, so are read only once."""
        if not sealed:
            return
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO sealed_segments VALUES (?, ?, ?)",
                [(run_id, file, json.dumps(totals)) for file, totals in sealed.items()],
            )

    @staticmethod
    def _delete(db: sqlite3.Connection, run_ids: Sequence[str]) -> None:
        for table, column in (
            ("runs", "id"),
            ("params", "run_id"),
            ("tags", "run_id"),
            ("metrics", "run_id"),
            ("metric_chunks", "run_id"),
        ):
            db.executemany(f"DELETE FROM {table} WHERE {column} = ?", [(i,) for i in run_ids])

    def query_ids(
        self,
        where_sql: str,
        where_params: Sequence[object],
        order_sql: str,
        order_params: Sequence[object],
        *,
        project: str | None,
        limit: int | None,
    ) -> list[str]:
        sql = f"SELECT runs.id FROM runs WHERE ({where_sql})"
        params: list[object] = list(where_params)
        if project is not None:
            sql += " AND runs.project = ?"
            params.append(project)
        sql += f" ORDER BY {order_sql}"
        params.extend(order_params)
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        try:
            return [row[0] for row in self._db.execute(sql, params)]
        except sqlite3.Error as exc:
            raise StoreError(f"index {self.path}: {exc}") from exc

    def load(self, run_ids: Sequence[str]) -> list[RunInfo]:
        """RunInfo of the given runs, in the given order."""
        if not run_ids:
            return []
        found: dict[str, dict[str, Any]] = {}
        names = [
            "id", "project", "name", "status", "notes", "host", "created_at", "finished_at",
            "updated_at", "pid", "path", "message", "attempts",
        ]  # fmt: skip
        columns = ", ".join(names)
        for chunk in _batches(run_ids, 500):
            marks = ",".join("?" * len(chunk))
            for row in self._db.execute(f"SELECT {columns} FROM runs WHERE id IN ({marks})", chunk):
                record = dict(zip(names, row, strict=True))
                record.update(params={}, tags=[], metrics={})
                found[record["id"]] = record
            for run_id, key, value_json in self._db.execute(
                f"SELECT run_id, key, value_json FROM params WHERE run_id IN ({marks})", chunk
            ):
                found[run_id]["params"][key] = json.loads(value_json)
            for run_id, tag in self._db.execute(
                f"SELECT run_id, tag FROM tags WHERE run_id IN ({marks}) ORDER BY tag", chunk
            ):
                found[run_id]["tags"].append(tag)
            for run_id, key, last, lo, hi, count, last_step in self._db.execute(
                "SELECT run_id, key, last, min, max, count, last_step FROM metrics"
                f" WHERE run_id IN ({marks})",
                chunk,
            ):
                found[run_id]["metrics"][key] = MetricSummary(
                    last=_none_to_nan(last),
                    min=_none_to_nan(lo),
                    max=_none_to_nan(hi),
                    count=count,
                    last_step=last_step,
                )
        return [_info(found[i]) for i in run_ids if i in found]

    def resolve(self, ref: str, *, project: str | None) -> list[str]:
        """Ids of runs whose id equals or starts with `ref`, or whose name is `ref`."""
        in_project, scope = ("", []) if project is None else (" AND project = ?", [project])
        exact = self._db.execute(
            f"SELECT id FROM runs WHERE id = ?{in_project}", [ref, *scope]
        ).fetchall()
        if exact:
            return [exact[0][0]]
        escaped = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self._db.execute(
            "SELECT id FROM runs WHERE (id LIKE ? ESCAPE '\\' OR name = ?)"
            f"{in_project} ORDER BY created_at",
            [escaped, ref, *scope],
        )
        return [row[0] for row in rows]


def _none_to_nan(value: float | None) -> float:
    return float("nan") if value is None else value


def _info(record: dict[str, Any]) -> RunInfo:
    record["tags"] = tuple(record["tags"])
    return RunInfo(**record)


def param_columns(value: ParamValue) -> tuple[str, float | None, str | None]:
    """The (value_json, num, text) columns of a param: what the query language compares."""
    num = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    text = value if isinstance(value, str) else None
    return json.dumps(value), _nan_to_none(num) if num is not None else None, text


def _batches(items: Sequence[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
