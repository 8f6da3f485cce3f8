"""The SQLite index of a store: runs, params, tags, metric summaries and chunk summaries,
and the lineage tables: what data, artifacts and models each run consumed or produced
(`run_refs`, keyed by content hash) and how runs link to each other (`run_links`).

The index is a cache. Run directories are the source of truth; `Index.replace_run` rewrites
everything about one run from what its files hold, so the index can be dropped and rebuilt
at any time. Metric series are indexed in chunks of `reader.CHUNK` points (count,
step range, min, max, last), never a row per point; the points stay in the run files.

An index written by another `SCHEMA_VERSION` is emptied and rebuilt on open: its rows may
lack what this version fills (the lineage tables of runs indexed before they existed).

Because it is a cache, every way it can fail is reported as an `IndexUnusableError`, which
`LocalStore` works around rather than passes on: `IndexCorruptError` (a damaged file, or
one whose tables are not exactly ours) is set aside with `set_aside` and made anew;
`IndexBusyError` (another process held the write lock past the busy timeout) and any
other failure to write it are answered from the run files instead.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Final

from attrs import astuple, frozen

from polytrack.errors import StoreError
from polytrack.models import (
    ArtifactLogged,
    DataRef,
    MetricSummary,
    ParamValue,
    RunInfo,
    RunLinked,
)
from polytrack.store.reader import SealedSegment

__all__ = [
    "REF_TYPES",
    "SCHEMA",
    "SCHEMA_VERSION",
    "Index",
    "IndexBusyError",
    "IndexCorruptError",
    "IndexUnusableError",
    "RunLink",
    "RunRef",
    "param_columns",
    "set_aside",
]

# 2: run_refs and run_links (lineage). 3: runs.user. 4: runs.damaged, and what a sealed
# segment lost beside its totals (issue 12: readers say what they skipped). 5: outputs
# (`log_outputs`), queryable as `outputs.<key>`.
SCHEMA_VERSION: Final = 5

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, project TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,
    notes TEXT, host TEXT, created_at REAL NOT NULL, finished_at REAL, updated_at REAL,
    pid INTEGER, path TEXT NOT NULL, message TEXT, attempts INTEGER NOT NULL DEFAULT 1,
    complete INTEGER NOT NULL DEFAULT 0, signature TEXT NOT NULL DEFAULT '', user TEXT,
    damaged TEXT
);
CREATE INDEX IF NOT EXISTS runs_project ON runs (project, created_at);
CREATE INDEX IF NOT EXISTS runs_name ON runs (project, name);
CREATE TABLE IF NOT EXISTS params (
    run_id TEXT NOT NULL, key TEXT NOT NULL, value_json TEXT NOT NULL, num REAL, text TEXT,
    PRIMARY KEY (run_id, key)
);
CREATE INDEX IF NOT EXISTS params_key ON params (key, run_id);
CREATE TABLE IF NOT EXISTS outputs (
    run_id TEXT NOT NULL, key TEXT NOT NULL, value_json TEXT NOT NULL, num REAL, text TEXT,
    PRIMARY KEY (run_id, key)
);
CREATE INDEX IF NOT EXISTS outputs_key ON outputs (key, run_id);
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
CREATE TABLE IF NOT EXISTS run_refs (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, role TEXT NOT NULL, type TEXT NOT NULL,
    kind TEXT NOT NULL, name TEXT NOT NULL, digest TEXT NOT NULL, path TEXT,
    size INTEGER NOT NULL, PRIMARY KEY (run_id, seq)
);
CREATE INDEX IF NOT EXISTS run_refs_digest ON run_refs (digest, role);
CREATE INDEX IF NOT EXISTS run_refs_name ON run_refs (name);
CREATE INDEX IF NOT EXISTS run_refs_path ON run_refs (path);
CREATE TABLE IF NOT EXISTS run_links (
    run_id TEXT NOT NULL, other_run_id TEXT NOT NULL, relation TEXT NOT NULL,
    PRIMARY KEY (run_id, other_run_id, relation)
);
CREATE INDEX IF NOT EXISTS run_links_other ON run_links (other_run_id);
"""
# Every table but `meta`, in the order a rebuild drops them.
_TABLES: Final = (
    "runs", "params", "tags", "metrics", "sealed_segments", "metric_chunks", "run_refs",
    "run_links", "outputs",
)  # fmt: skip

REF_TYPES: Final = ("data", "artifact", "model")

# How long a statement waits for another connection's write lock, by default: the
# transactions of the index last milliseconds, so waiting longer only means that another
# process holds it for good (a debugger, a hung notebook), and readers do better to
# answer from the run files (issue 12).
BUSY_TIMEOUT: Final = 0.5

# SQLite's primary result codes (the low byte of `sqlite_errorcode`), by what they mean
# for a cache. https://www.sqlite.org/rescode.html
_BUSY: Final = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED
_CORRUPT: Final = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB
# SQLITE_PERM, SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_PROTOCOL
_UNWRITABLE: Final = frozenset({3, 8, 10, 13, 14, 15})
_SQLITE_ERROR: Final = 1  # "no such table" and other errors in a statement
# Python 3.10's sqlite3 errors carry no code: their messages are SQLite's own texts for
# these codes (sqlite3_errstr), which tell the same apart.
_MESSAGES: Final = (
    ("database is locked", 5),
    ("database table is locked", 6),
    ("database disk image is malformed", 11),
    ("file is not a database", 26),
    ("attempt to write a readonly database", 8),
    ("disk I/O error", 10),
    ("database or disk is full", 13),
    ("unable to open database file", 14),
    ("no such table", _SQLITE_ERROR),
)


def _primary_code(exc: sqlite3.Error) -> int | None:
    """SQLite's primary result code of `exc` (Python 3.11+ says it; 3.10 only in words)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return int(code) & 0xFF
    text = str(exc)
    return next((number for words, number in _MESSAGES if words in text), None)


class IndexUnusableError(StoreError):
    """The index cannot answer now (not writable, say). Never reaches a caller of
    `LocalStore`, which answers from the run files instead: the index is a cache."""


class IndexBusyError(IndexUnusableError):
    """Another process held the index's write lock for longer than the busy timeout."""


class IndexCorruptError(IndexUnusableError):
    """The index file is damaged, or its tables are not the ones polytrack makes.

    `identity` is (device, inode) of the file found so, for `set_aside` to move only that
    file and never a fresh index that another process put in its place meanwhile.
    """

    def __init__(self, message: str, *, identity: tuple[int, int] | None = None) -> None:
        super().__init__(message)
        self.identity = identity


@frozen
class RunRef:
    """A run consumed (role "input") or produced ("output") the content `digest`.

    `type` is "data" for a `DataRef`, "model" for an artifact of kind "model", else
    "artifact"; `kind` is the event's own (file, directory, array, model, ...). `path` is
    where it was on disk when logged (an artifact's `source`), if it was a path. `seq`
    orders a run's refs as they were logged.
    """

    run_id: str
    seq: int
    role: str
    type: str
    kind: str
    name: str
    digest: str
    path: str | None
    size: int

    @classmethod
    def of(cls, run_id: str, seq: int, event: DataRef | ArtifactLogged) -> RunRef:
        """The row of one `DataRef` or `ArtifactLogged` event."""
        if isinstance(event, DataRef):
            ref_type, path = "data", event.path
        else:
            ref_type, path = ("model" if event.kind == "model" else "artifact"), event.source
        return cls(
            run_id, seq, event.role, ref_type, event.kind, event.name, event.digest, path,
            event.size,
        )  # fmt: skip


@frozen
class RunLink:
    """Run `run_id` is related to run `other_run_id`: it `relation`s it ("reproduces")."""

    run_id: str
    other_run_id: str
    relation: str


_REF_COLUMNS: Final = "run_id, seq, role, type, kind, name, digest, path, size"


def _nan_to_none(value: float) -> float | None:
    # SQLite stores NaN as NULL anyway; say so explicitly.
    return None if value != value else value


class Index:
    """One SQLite database file; every method opens a short transaction.

    Every method raises `IndexUnusableError` (or a subclass) when the file fails it.
    """

    def __init__(
        self,
        connection: sqlite3.Connection,
        path: Path,
        *,
        identity: tuple[int, int] | None = None,
        timeout: float = BUSY_TIMEOUT,
    ) -> None:
        self._db = connection
        self.path = path
        self._identity = identity
        self._timeout = timeout

    @classmethod
    def open(cls, path: Path, *, timeout: float = BUSY_TIMEOUT) -> Index:
        """Open (creating if needed) the index at `path`; one of another schema version is
        emptied and made anew (readers then index every run again).

        Raises:
            IndexCorruptError: the file is damaged, or holds tables that are not ours.
            IndexBusyError: another process held the write lock for over `timeout` s.
            IndexUnusableError: the file cannot be created, opened or written.
        """
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise IndexUnusableError(f"cannot open the index {path}: {exc}") from exc
        identity = _identity(path)
        index = cls(db, path, identity=identity, timeout=timeout)
        try:
            with index._errors():
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                if not _prepare(db):
                    raise IndexCorruptError(
                        f"the index {path} holds tables but no schema version", identity=identity
                    )
                if _objects(db) != _expected_objects():
                    raise IndexCorruptError(
                        f"the index {path} holds tables that polytrack did not make",
                        identity=identity,
                    )
        except BaseException:
            db.close()
            raise
        return index

    @classmethod
    def in_memory(cls) -> Index:
        """An index that lives only as long as this object: for a home we cannot write."""
        db = sqlite3.connect(":memory:", isolation_level=None)
        _prepare(db)
        return cls(db, Path(":memory:"))

    @property
    def in_memory_only(self) -> bool:
        """Whether this index lives in memory (`in_memory`), not in a file."""
        return self.path == Path(":memory:")

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Translate SQLite's errors, and rows that are not what we wrote, into the
        `IndexUnusableError` that says what a reader should do about them."""
        try:
            yield
        except sqlite3.Error as exc:
            raise _unusable(self.path, exc, self._identity, self._timeout) from exc
        except (ValueError, TypeError, KeyError) as exc:
            # Only rows we wrote are read here: SQLite keeps no checksum of its pages,
            # so a damaged byte may reach us as a value that does not decode.
            raise IndexCorruptError(
                f"the index {self.path} holds a row that does not decode: {exc!r}",
                identity=self._identity,
            ) from exc

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._errors():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                # A damaged file may fail the rollback too; the first error is the news.
                with suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def signatures(self) -> dict[str, tuple[int, str]]:
        """id -> (complete, signature) of every indexed run."""
        with self._errors():
            rows = self._db.execute("SELECT id, complete, signature FROM runs")
            return {run_id: (complete, signature) for run_id, complete, signature in rows}

    def replace_run(
        self,
        info: RunInfo,
        chunks: Mapping[str, Sequence[tuple[Any, ...]]],
        *,
        complete: bool,
        signature: str,
        refs: Sequence[DataRef | ArtifactLogged] = (),
        links: Sequence[RunLinked] = (),
        outputs: Mapping[str, Any] | None = None,
    ) -> None:
        """Rewrite everything indexed about one run; `refs` and `links` are its data ref,
        artifact and link events in the order logged, `outputs` its `log_outputs`."""
        with self._transaction() as db:
            self._delete(db, [info.id])
            db.execute(
                "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
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
                    info.user,
                    # JSON, NULL for a run read whole (nearly all): nothing to decode.
                    json.dumps(list(info.damaged)) if info.damaged else None,
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
                "INSERT INTO outputs VALUES (?,?,?,?,?)",
                [(info.id, key, *param_columns(value)) for key, value in (outputs or {}).items()],
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
            db.executemany(
                f"INSERT INTO run_refs ({_REF_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
                [astuple(ref) for ref in _unique_refs(info.id, refs)],
            )
            db.executemany(
                "INSERT OR IGNORE INTO run_links VALUES (?,?,?)",
                [(info.id, link.run_id, link.relation) for link in links],
            )

    def delete_runs(self, run_ids: Sequence[str]) -> None:
        """Forget runs, with the cached totals of their sealed segments."""
        with self._transaction() as db:
            self._delete(db, run_ids)
            db.executemany("DELETE FROM sealed_segments WHERE run_id = ?", [(i,) for i in run_ids])

    def sealed(self, run_id: str) -> dict[str, SealedSegment]:
        """What was kept of a run's sealed segments, by file name."""
        with self._errors():
            rows = self._db.execute(
                "SELECT file, totals FROM sealed_segments WHERE run_id = ?", (run_id,)
            )
            return {file: SealedSegment.from_json(json.loads(data)) for file, data in rows}

    def keep_sealed(self, run_id: str, sealed: Mapping[str, SealedSegment]) -> None:
        """Keep what sealed segments hold: they never change, so are read only once."""
        if not sealed:
            return
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO sealed_segments VALUES (?, ?, ?)",
                [(run_id, file, json.dumps(kept.to_json())) for file, kept in sealed.items()],
            )

    @staticmethod
    def _delete(db: sqlite3.Connection, run_ids: Sequence[str]) -> None:
        for table, column in (
            ("runs", "id"),
            ("params", "run_id"),
            ("tags", "run_id"),
            ("metrics", "run_id"),
            ("metric_chunks", "run_id"),
            ("run_refs", "run_id"),
            ("run_links", "run_id"),
            ("outputs", "run_id"),
        ):
            db.executemany(f"DELETE FROM {table} WHERE {column} = ?", [(i,) for i in run_ids])

    def keys(self) -> dict[str, set[str]]:
        """"metric" and "param" -> every key some indexed run has (for typo checks)."""
        with self._errors():
            return {
                "metric": {key for (key,) in self._db.execute("SELECT DISTINCT key FROM metrics")},
                "param": {key for (key,) in self._db.execute("SELECT DISTINCT key FROM params")},
                "output": {
                    key for (key,) in self._db.execute("SELECT DISTINCT key FROM outputs")
                },
            }

    def query_ids(
        self,
        where_sql: str,
        where_params: Sequence[object],
        order_sql: str,
        order_params: Sequence[object],
        *,
        project: str | None,
        limit: int | None,
        offset: int = 0,
    ) -> list[str]:
        sql = f"SELECT runs.id FROM runs WHERE ({where_sql})"
        params: list[object] = list(where_params)
        if project is not None:
            sql += " AND runs.project = ?"
            params.append(project)
        sql += f" ORDER BY {order_sql}"
        params.extend(order_params)
        if limit is not None or offset:
            # SQLite needs a LIMIT before an OFFSET; -1 means none.
            sql += " LIMIT ? OFFSET ?"
            params.extend([-1 if limit is None else limit, offset])
        with self._errors():
            return [row[0] for row in self._db.execute(sql, params)]

    def summarize(
        self, where_sql: str, where_params: Sequence[object], *, project: str | None
    ) -> tuple[int, set[str], set[str], set[str]]:
        """How many runs match, and the param keys, metric keys and projects they have."""
        matching = f"SELECT runs.id FROM runs WHERE ({where_sql})"
        params: list[object] = list(where_params)
        if project is not None:
            matching += " AND runs.project = ?"
            params.append(project)
        with self._errors():
            (count,) = self._db.execute(f"SELECT count(*) FROM ({matching})", params).fetchone()
            param_keys = {
                key
                for (key,) in self._db.execute(
                    f"SELECT DISTINCT key FROM params WHERE run_id IN ({matching})", params
                )
            }
            metric_keys = {
                key
                for (key,) in self._db.execute(
                    f"SELECT DISTINCT key FROM metrics WHERE run_id IN ({matching})", params
                )
            }
            projects = {
                name
                for (name,) in self._db.execute(
                    f"SELECT DISTINCT project FROM runs WHERE id IN ({matching})", params
                )
            }
        return int(count), param_keys, metric_keys, projects

    def load(self, run_ids: Sequence[str]) -> list[RunInfo]:
        """RunInfo of the given runs, in the given order."""
        if not run_ids:
            return []
        with self._errors():
            return self._load(run_ids)

    def _load(self, run_ids: Sequence[str]) -> list[RunInfo]:
        found: dict[str, dict[str, Any]] = {}
        names = [
            "id", "project", "name", "status", "notes", "host", "created_at", "finished_at",
            "updated_at", "pid", "path", "message", "attempts", "user", "damaged",
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
        with self._errors():
            return self._resolve(ref, project=project)

    def _resolve(self, ref: str, *, project: str | None) -> list[str]:
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

    # -- lineage ----------------------------------------------------------------------------

    def refs(
        self,
        *,
        run_ids: Sequence[str] | None = None,
        digests: Sequence[str] | None = None,
        digest_prefix: str | None = None,
        name: str | None = None,
        path: str | None = None,
        role: str | None = None,
    ) -> list[RunRef]:
        """The refs matching every condition given (at most one of `run_ids` and
        `digests`), ordered by run and logging order.

        Raises:
            StoreError: the index cannot be read.
        """
        if run_ids is not None and digests is not None:
            raise ValueError("pass run_ids or digests, not both")
        conditions: list[str] = []
        params: list[object] = []
        if digest_prefix is not None:
            # A range, not LIKE: it uses the digest index, and digests hold no wildcards.
            conditions.append("digest >= ? AND digest < ?")
            params += [digest_prefix, digest_prefix + "\uffff"]
        for column, value in (("name", name), ("path", path), ("role", role)):
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
        column, values = ("run_id", run_ids) if run_ids is not None else ("digest", digests)
        batches: Iterable[list[str] | None] = [None] if values is None else _batches(values, 500)
        found: list[RunRef] = []
        with self._errors():
            for batch in batches:
                where, args = list(conditions), list(params)
                if batch is not None:
                    where.append(f"{column} IN ({','.join('?' * len(batch))})")
                    args += batch
                sql = f"SELECT {_REF_COLUMNS} FROM run_refs WHERE {' AND '.join(where) or '1'}"
                found += [RunRef(*row) for row in self._db.execute(sql, args)]
        return sorted(found, key=lambda ref: (ref.run_id, ref.seq))

    def links(self, run_id: str) -> list[RunLink]:
        """Links from and to one run.

        Raises:
            StoreError: the index cannot be read.
        """
        with self._errors():
            rows = self._db.execute(
                "SELECT run_id, other_run_id, relation FROM run_links"
                " WHERE run_id = ? OR other_run_id = ? ORDER BY run_id, other_run_id",
                (run_id, run_id),
            )
            return [RunLink(*row) for row in rows]


def _schema_version(db: sqlite3.Connection) -> int | None:
    try:
        row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    except sqlite3.OperationalError as exc:
        if _primary_code(exc) != _SQLITE_ERROR:
            raise  # busy, say: not a sign that the table is missing
        return None  # a new file: no meta table yet
    try:
        return None if row is None else int(row[0])
    except (TypeError, ValueError):
        return None


def _prepare(db: sqlite3.Connection) -> bool:
    """Make the tables of this `SCHEMA_VERSION` where the file has another version's
    (dropping them) or none, under the write lock: of two processes opening an old index
    at once, the second finds the work done.

    Returns False, changing nothing, for a file with tables but no version: not an index
    we wrote, to be set aside whole rather than dropped table by table.
    """
    if _schema_version(db) == SCHEMA_VERSION:
        return True  # the usual case: no write lock taken
    db.execute("BEGIN IMMEDIATE")
    try:
        version = _schema_version(db)
        if version is None and _objects(db):
            db.execute("ROLLBACK")
            return False
        if version != SCHEMA_VERSION:
            for table in _TABLES:
                db.execute(f"DROP TABLE IF EXISTS {table}")
            for statement in _statements():
                db.execute(statement)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
    except BaseException:
        with suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return True


def _statements() -> list[str]:
    return [statement for statement in SCHEMA.split(";") if statement.strip()]


_SchemaObjects = frozenset[tuple[str, str, str, str | None]]


def _objects(db: sqlite3.Connection) -> _SchemaObjects:
    """The tables and indexes of a database, with the SQL that made them."""
    rows = db.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
    )
    return frozenset(rows)


@functools.cache
def _expected_objects() -> _SchemaObjects:
    """What `_objects` finds in an index this version made: what `open` checks a file
    against, so that a file with our version but other tables is found out on open."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    try:
        _prepare(db)
        return _objects(db)
    finally:
        db.close()


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _unusable(
    path: Path, exc: sqlite3.Error, identity: tuple[int, int] | None, timeout: float
) -> StoreError:
    """The error that says what a reader should do about `exc` from the index at `path`."""
    primary = _primary_code(exc)
    if primary in _BUSY:
        return IndexBusyError(
            f"the index {path} is busy: another process has held its write lock for over"
            f" {timeout:g} s"
        )
    if primary in _CORRUPT:
        return IndexCorruptError(f"the index {path} is damaged: {exc}", identity=identity)
    if primary in _UNWRITABLE:
        return IndexUnusableError(f"the index {path} cannot be used: {exc}")
    return StoreError(f"index {path}: {exc}")


# The files SQLite keeps beside a database; they belong to it and move with it.
_COMPANIONS: Final = ("-wal", "-shm", "-journal")


def set_aside(path: Path, identity: tuple[int, int] | None) -> Path | None:
    """Move a damaged index and its companion files out of the way, for a fresh index to
    be made at `path`; returns where it went (`index.sqlite3.corrupt-<time>-<pid>`, kept
    for whoever wants to know what happened).

    Returns None, moving nothing, where `path` is no longer the file found damaged (of
    `identity`): another process set it aside first and may be using a fresh one there.

    Raises:
        OSError: the files could not be moved (a read-only home, say).
    """
    if identity is not None and _identity(path) != identity:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    aside = path.with_name(f"{path.name}.corrupt-{stamp}-{os.getpid()}")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return None
    for suffix in _COMPANIONS:
        with suppress(FileNotFoundError):
            os.replace(f"{path}{suffix}", f"{aside}{suffix}")
    return aside


def _unique_refs(run_id: str, events: Sequence[DataRef | ArtifactLogged]) -> list[RunRef]:
    """One row per (role, type, name, digest), the latest logged: a run that logs the same
    input every epoch consumed it once."""
    latest: dict[tuple[str, str, str, str], RunRef] = {}
    for seq, event in enumerate(events):
        ref = RunRef.of(run_id, seq, event)
        key = (ref.role, ref.type, ref.name, ref.digest)
        latest.pop(key, None)
        latest[key] = ref
    return sorted(latest.values(), key=lambda ref: ref.seq)


def _none_to_nan(value: float | None) -> float:
    return float("nan") if value is None else value


def _info(record: dict[str, Any]) -> RunInfo:
    record["tags"] = tuple(record["tags"])
    damaged = record["damaged"]
    record["damaged"] = () if damaged is None else tuple(map(str, json.loads(damaged)))
    return RunInfo(**record)


def param_columns(value: ParamValue) -> tuple[str, float | None, str | None]:
    """The (value_json, num, text) columns of a param: what the query language compares."""
    num = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    text = value if isinstance(value, str) else None
    return json.dumps(value), _nan_to_none(num) if num is not None else None, text


def _batches(items: Sequence[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
