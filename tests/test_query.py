"""The query language: real SQLite runs filtered and ordered by compiled SQL."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from polytrack.errors import QueryError
from polytrack.store.index import SCHEMA, param_columns
from polytrack.store.query import compile_order_by, compile_where

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
DAY = 86_400.0
NOW = T0 + 10 * DAY
ALL = {"r1", "r2", "r3", "r4", "r5", "r6"}

# id, project, name, status, notes, host, created_at, finished_at
RUNS = [
    ("r1", "vision", "resnet-18", "succeeded", "baseline run", "gpu-1", T0, T0 + 3600),
    ("r2", "vision", "resnet-50", "failed", None, "gpu-2", T0 + DAY, T0 + DAY + 600),
    ("r3", "vision", "vit-base", "running", "", None, T0 + 2 * DAY, None),
    ("r4", "tabular", "mlp", "crashed", None, "gpu-2", T0 + 8 * DAY, T0 + 8 * DAY + 90),
    ("r5", "vision", "resnet-34", "stopped", "ablation", "gpu-1", T0 + 9 * DAY, T0 + 9.1 * DAY),
    ("r6", "scratch", "debug", "created", 'it\'s "debug"', "laptop", T0 + 9.5 * DAY, None),
]
PARAMS: dict[str, dict[str, object]] = {
    "r1": {"lr": 0.01, "optimizer": "adam", "net.depth": 18, "use_amp": True, "seed": 1},
    "r2": {"lr": 0.1, "optimizer": "sgd", "net.depth": 50, "use_amp": False},
    "r3": {"lr": 0.001, "optimizer": "adam", "dropout": None},
    "r4": {"lr": "auto", "seed": 4},
    "r5": {"lr": 0.01, "optimizer": "Adam", "net.depth": 34},
    "r6": {},
}
# key -> (last, min, max, count)
METRICS: dict[str, dict[str, tuple[float | None, float, float, int]]] = {
    "r1": {
        "loss": (0.2, 0.1, 0.9, 10),
        "acc": (0.9, 0.1, 0.92, 10),
        "train/loss": (0.25, 0.2, 1.0, 10),
        "val loss": (0.3, 0.3, 1.1, 2),
    },
    "r2": {"loss": (0.5, 0.4, 1.2, 5), "acc": (0.7, 0.2, 0.7, 5)},
    "r3": {"loss": (0.35, 0.35, 0.8, 3)},
    "r4": {"acc": (0.95, 0.5, 0.95, 4), "loss": (None, 0.6, 2.0, 4)},
    "r5": {"loss": (0.2, 0.2, 0.7, 8), "acc": (0.9, 0.3, 0.9, 8)},
    "r6": {},
}
TAGS = {"r1": ["cnn", "baseline"], "r2": ["cnn"], "r3": ["transformer"], "r5": ["cnn", "ablation"]}


def _param_row(run_id: str, key: str, value: object) -> tuple[object, ...]:
    return (run_id, key, *param_columns(value))  # type: ignore[arg-type]


# The index's own schema has more run columns than queries use; fill only those.
INSERT_RUN = (
    "INSERT INTO runs (id, project, name, status, notes, host, created_at, finished_at,"
    " updated_at, path) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '')"
)


@pytest.fixture
def db() -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(":memory:")
    connection.executescript(SCHEMA)
    connection.executemany(
        INSERT_RUN,
        [(*run, run[7] if run[7] is not None else run[6]) for run in RUNS],
    )
    connection.executemany(
        "INSERT INTO params VALUES (?, ?, ?, ?, ?)",
        [_param_row(rid, key, value) for rid, ps in PARAMS.items() for key, value in ps.items()],
    )
    connection.executemany(
        "INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(rid, k, *v, v[3] - 1) for rid, ms in METRICS.items() for k, v in ms.items()],
    )
    connection.executemany(
        "INSERT INTO tags VALUES (?, ?)", [(rid, t) for rid, ts in TAGS.items() for t in ts]
    )
    yield connection
    connection.close()


def ids(db: sqlite3.Connection, where: str | None) -> set[str]:
    sql, params = compile_where(where, now=NOW)
    return {row[0] for row in db.execute(f"SELECT id FROM runs WHERE {sql}", params)}


def ordered(db: sqlite3.Connection, order_by: str | Sequence[str] | None) -> list[str]:
    sql, params = compile_order_by(order_by)
    return [row[0] for row in db.execute(f"SELECT id FROM runs ORDER BY {sql}", params)]


def where_error(query: str) -> QueryError:
    with pytest.raises(QueryError) as info:
        compile_where(query, now=NOW)
    return info.value


# --- filtering ----------------------------------------------------------------------------


@pytest.mark.parametrize("where", [None, "", "   "])
def test_blank_where_matches_every_run(db: sqlite3.Connection, where: str | None) -> None:
    """None or a blank filter compiles to the constant true and returns every run."""
    assert compile_where(where) == ("1", [])
    assert ids(db, where) == ALL


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("metrics.loss == 0.2", {"r1", "r5"}),
        ("metrics.loss = 0.2", {"r1", "r5"}),
        ("metrics.loss != 0.2", {"r2", "r3", "r4"}),
        ("metrics.loss < 0.35", {"r1", "r5"}),
        ("metrics.loss <= 0.35", {"r1", "r3", "r5"}),
        ("metrics.loss > 0.35", {"r2"}),
        ("metrics.loss >= 0.35", {"r2", "r3"}),
        ("metrics.loss==0.2", {"r1", "r5"}),
    ],
)
def test_metric_comparison_operators(
    db: sqlite3.Connection, where: str, expected: set[str]
) -> None:
    """Each comparison operator compares a metric's last value; NULL last never matches."""
    assert ids(db, where) == expected


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("min(metrics.loss) <= 0.2", {"r1", "r5"}),
        ("max(metrics.loss) > 1", {"r2", "r4"}),
        ("last(metrics.loss) == 0.5", {"r2"}),
        ("count(metrics.loss) >= 5", {"r1", "r2", "r5"}),
        ("COUNT ( metrics.acc ) == 4", {"r4"}),
    ],
)
def test_metric_summaries(db: sqlite3.Connection, where: str, expected: set[str]) -> None:
    """min/max/last/count(metrics.k) read the matching summary column."""
    assert ids(db, where) == expected


def test_metric_condition_is_false_without_the_key(db: sqlite3.Connection) -> None:
    """Runs lacking a metric match no comparison on it, not even != or a wide range."""
    assert ids(db, "metrics.acc != 0.9") == {"r2", "r4"}
    assert ids(db, "metrics.acc < 100") == {"r1", "r2", "r4", "r5"}
    assert ids(db, "metrics.missing > -inf") == set()


def test_not_negates_the_whole_condition(db: sqlite3.Connection) -> None:
    """`not` is the exact complement, so it includes runs lacking the key."""
    assert ids(db, "not metrics.acc < 100") == {"r3", "r6"}
    assert ids(db, "not metrics.loss < 0.3") == {"r2", "r3", "r4", "r6"}
    assert ids(db, "not not metrics.loss < 0.3") == {"r1", "r5"}


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("params.lr == 0.01", {"r1", "r5"}),
        ("params.lr < 0.05", {"r1", "r3", "r5"}),
        ('params.lr == "auto"', {"r4"}),
        ("params.lr != 0.01", {"r2", "r3", "r4"}),
        ("params.optimizer == 'adam'", {"r1", "r3"}),
        ("params.optimizer > 'b'", {"r2"}),
        ("params.seed == 4", {"r4"}),
        ("params.use_amp == true", {"r1"}),
        ("params.use_amp == false", {"r2"}),
        ("params.use_amp != true", {"r2"}),
        ("params.dropout == null", {"r3"}),
        ("params.dropout != null", set()),
    ],
)
def test_param_comparisons_pick_column_by_literal_type(
    db: sqlite3.Connection, where: str, expected: set[str]
) -> None:
    """Numbers compare `num`, strings `text`, true/false/null the JSON form; types never mix."""
    assert ids(db, where) == expected


def test_dotted_param_and_slashed_metric_keys(db: sqlite3.Connection) -> None:
    """Dots and slashes after the prefix belong to the key."""
    assert ids(db, "params.net.depth >= 34") == {"r2", "r5"}
    assert ids(db, "metrics.train/loss < 0.3") == {"r1"}
    assert compile_where("params.net.depth > 1")[1] == ["net.depth", 1]


def test_backticked_keys(db: sqlite3.Connection) -> None:
    """A key in backticks may hold spaces and escapes and still names one metric."""
    assert ids(db, "metrics.`val loss` < 0.5") == {"r1"}
    assert ids(db, "exists(metrics.`val loss`)") == {"r1"}
    assert compile_where(r"params.`a\`b c` == 1")[1] == ["a`b c", 1]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("id == 'r3'", {"r3"}),
        ("name == 'resnet-50'", {"r2"}),
        ("project != 'vision'", {"r4", "r6"}),
        ("status == 'failed'", {"r2"}),
        ("host == 'gpu-2'", {"r2", "r4"}),
        ("notes == ''", {"r3"}),
        ("notes == null", {"r2", "r4"}),
        ("notes != null", {"r1", "r3", "r5", "r6"}),
        ("host != 'gpu-1'", {"r2", "r3", "r4", "r6"}),
        ("name < 'n'", {"r4", "r6"}),
        ("Name == 'mlp' AND Project == 'tabular'", {"r4"}),
    ],
)
def test_run_attributes(db: sqlite3.Connection, where: str, expected: set[str]) -> None:
    """Attributes compare their column; a NULL attribute equals null and differs from strings."""
    assert ids(db, where) == expected


def test_string_escapes(db: sqlite3.Connection) -> None:
    """Backslash escapes work in both quote styles."""
    assert ids(db, r'notes == "it\'s \"debug\""') == {"r6"}
    assert ids(db, r"notes == 'it\'s \"debug\"'") == {"r6"}
    assert compile_where(r'name == "a\\b\n\t"')[1] == ["a\\b\n\t"]


def test_values_are_bound_never_interpolated(db: sqlite3.Connection) -> None:
    """Hostile text travels as a parameter and cannot change the SQL."""
    sql, params = compile_where("name == \"x' OR 1=1 --\" or params.`k'); DROP TABLE runs;` == 1")
    assert "OR 1=1" not in sql
    assert "DROP" not in sql
    assert params == ["x' OR 1=1 --", "k'); DROP TABLE runs;", 1]
    assert ids(db, 'name == "x\' OR 1=1 --"') == set()


def test_precedence_and_parentheses(db: sqlite3.Connection) -> None:
    """`and` binds tighter than `or`; parentheses override it."""
    assert ids(db, "status == 'failed' or metrics.loss < 0.3 and params.lr == 0.1") == {"r2"}
    assert ids(db, "(status == 'failed' or metrics.loss < 0.3) and params.lr == 0.01") == {
        "r1",
        "r5",
    }
    assert ids(db, "((name == 'mlp'))") == {"r4"}


def test_not_binds_tighter_than_and(db: sqlite3.Connection) -> None:
    """`not a and b` means `(not a) and b`; `not (a and b)` negates the conjunction."""
    assert ids(db, "not project == 'vision' and host == 'gpu-2'") == {"r4"}
    assert ids(db, "not (project == 'vision' and host == 'gpu-2')") == ALL - {"r2"}


def test_keywords_are_case_insensitive(db: sqlite3.Connection) -> None:
    """and/or/not/in/true/exists are recognised in any case."""
    where = "NOT Status IN ('failed') And params.use_amp == TRUE Or Exists(params.seed)"
    assert ids(db, where) == {"r1", "r4"}


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("status in ('failed', 'crashed')", {"r2", "r4"}),
        ("status not in ('failed', 'crashed')", {"r1", "r3", "r5", "r6"}),
        ("notes in ('', null)", {"r2", "r3", "r4"}),
        ("notes not in ('', null)", {"r1", "r5", "r6"}),
        ("metrics.acc in (0.9, 0.95,)", {"r1", "r4", "r5"}),
        ("metrics.acc not in (0.9)", {"r2", "r4"}),
        ("params.lr in (0.1, 'auto')", {"r2", "r4"}),
        ("params.lr not in (0.1, 'auto')", {"r1", "r3", "r5"}),
        ("params.use_amp in (true, null)", {"r1"}),
        ("params.dropout in (true, null)", {"r3"}),
    ],
)
def test_in_and_not_in(db: sqlite3.Connection, where: str, expected: set[str]) -> None:
    """`in` matches any listed value; `not in` needs the key and a value outside the list."""
    assert ids(db, where) == expected


def test_glob_is_case_sensitive(db: sqlite3.Connection) -> None:
    """`~` is SQLite GLOB: wildcards, character classes and case sensitivity."""
    assert ids(db, "name ~ 'resnet-*'") == {"r1", "r2", "r5"}
    assert ids(db, "name ~ 'resnet-[13]?'") == {"r1", "r5"}
    assert ids(db, "params.optimizer ~ 'A*'") == {"r5"}
    assert ids(db, "notes ~ '*'") == {"r1", "r3", "r5", "r6"}
    assert ids(db, "not notes ~ 'b*'") == {"r2", "r3", "r4", "r5", "r6"}
    assert ids(db, "status ~ 'fail*'") == {"r2"}


def test_tags(db: sqlite3.Connection) -> None:
    """Tags support membership, non-membership and glob over any tag."""
    assert ids(db, "'cnn' in tags") == {"r1", "r2", "r5"}
    assert ids(db, "'cnn' not in tags") == {"r3", "r4", "r6"}
    assert ids(db, "tags ~ 'ab*'") == {"r5"}
    assert ids(db, "not tags ~ '*'") == {"r4", "r6"}
    assert ids(db, "\"cnn\" in tags and 'baseline' not in tags") == {"r2", "r5"}


def test_exists(db: sqlite3.Connection) -> None:
    """exists() tests presence of a key whatever its value, including null and NULL."""
    assert ids(db, "exists(metrics.acc)") == {"r1", "r2", "r4", "r5"}
    assert ids(db, "exists(params.dropout)") == {"r3"}
    assert ids(db, "not exists(params.lr)") == {"r6"}


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("created >= '2023-11-16'", {"r3", "r4", "r5", "r6"}),
        ("created < '2023-11-15T22:13:20'", {"r1"}),
        ("created <= '2023-11-15T22:13:20'", {"r1", "r2"}),
        ("created <= '2023-11-15T22:13:20Z'", {"r1", "r2"}),
        ("created <= '2023-11-16T00:13:20+02:00'", {"r1", "r2"}),
        ("created > '3d ago'", {"r4", "r5", "r6"}),
        ("created > '36h ago'", {"r5", "r6"}),
        ("created >= '720m ago'", {"r6"}),
        ("created > '10s ago'", set()),
        ("created < 'now'", ALL),
        (f"created > {T0 + 5 * DAY}", {"r4", "r5", "r6"}),
        ("finished > '2023-11-20'", {"r4", "r5"}),
        ("finished == null", {"r3", "r6"}),
        ("updated >= '9d ago'", {"r2", "r3", "r4", "r5", "r6"}),
    ],
)
def test_time_fields(db: sqlite3.Connection, where: str, expected: set[str]) -> None:
    """Time fields take unix seconds, ISO 8601 (naive is UTC) or relative "N<unit> ago"."""
    assert ids(db, where) == expected


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("duration >= 3600", {"r1", "r5"}),
        ("duration > '1h'", {"r5"}),
        ("duration < '90s'", set()),
        ("duration <= '1.5m'", {"r4"}),
        ("duration == '1h'", {"r1"}),
        ("duration > '1h30m'", {"r5"}),
        ("duration == null", {"r3", "r6"}),
        ("not duration > 0", {"r3", "r6"}),
    ],
)
def test_duration(db: sqlite3.Connection, where: str, expected: set[str]) -> None:
    """duration is finished - created in seconds; unfinished runs have none."""
    assert ids(db, where) == expected


def test_infinity_and_negative_literals(db: sqlite3.Connection) -> None:
    """inf, -inf and negative numbers are literals."""
    assert ids(db, "metrics.loss < inf") == {"r1", "r2", "r3", "r5"}
    assert ids(db, "metrics.loss > -inf and params.lr > -1") == {"r1", "r2", "r3", "r5"}
    assert compile_where("metrics.x > -1e-3")[1] == ["x", -0.001]
    assert compile_where("metrics.x > - .5")[1] == ["x", -0.5]


def test_filters_use_the_key_indexes(db: sqlite3.Connection) -> None:
    """Metric, param and tag subqueries search an index instead of scanning their table."""
    sql, params = compile_where(
        "metrics.loss < 1 and params.lr == 0.01 and 'cnn' in tags and tags ~ 'c*'"
    )
    plan = " | ".join(
        row[3] for row in db.execute(f"EXPLAIN QUERY PLAN SELECT id FROM runs WHERE {sql}", params)
    )
    assert "SCAN m" not in plan
    assert "SCAN p" not in plan
    assert "SCAN t" not in plan
    assert plan.count("SEARCH") >= 4


# --- ordering -----------------------------------------------------------------------------


def test_default_order_is_newest_first(db: sqlite3.Connection) -> None:
    """None, blank and empty lists sort by creation time, newest first."""
    assert compile_order_by(None) == ("runs.created_at DESC, runs.id", [])
    for order_by in (None, "", " ", []):
        assert ordered(db, order_by) == ["r6", "r5", "r4", "r3", "r2", "r1"]


def test_order_ascending_and_descending(db: sqlite3.Connection) -> None:
    """A bare field sorts ascending and a leading '-' descending."""
    assert ordered(db, "name") == ["r6", "r4", "r1", "r5", "r2", "r3"]
    assert ordered(db, "-name") == ["r3", "r2", "r5", "r1", "r4", "r6"]
    assert ordered(db, "created") == ["r1", "r2", "r3", "r4", "r5", "r6"]


def test_order_by_metric_puts_missing_last_both_ways(db: sqlite3.Connection) -> None:
    """Runs without the value (no key or NULL last) sort last ascending and descending."""
    assert ordered(db, "metrics.loss") == ["r1", "r5", "r3", "r2", "r4", "r6"]
    assert ordered(db, "-metrics.loss") == ["r2", "r3", "r1", "r5", "r4", "r6"]
    assert ordered(db, "-max(metrics.acc)") == ["r4", "r1", "r5", "r2", "r3", "r6"]
    assert ordered(db, "finished") == ["r1", "r2", "r4", "r5", "r3", "r6"]
    assert ordered(db, "-duration") == ["r5", "r1", "r2", "r4", "r3", "r6"]


def test_run_id_breaks_ties(db: sqlite3.Connection) -> None:
    """Equal sort values fall back to run id ascending, whatever the direction."""
    assert ordered(db, "-metrics.acc") == ["r4", "r1", "r5", "r2", "r3", "r6"]
    assert ordered(db, "project") == ["r6", "r4", "r1", "r2", "r3", "r5"]
    assert compile_order_by("name")[0].endswith(", runs.id")


def test_order_by_several_keys(db: sqlite3.Connection) -> None:
    """Later keys order runs that tie on earlier ones, as a string or a list."""
    expected = ["r6", "r4", "r5", "r3", "r2", "r1"]
    assert ordered(db, "project, -created") == expected
    assert ordered(db, ["project", "-created"]) == expected
    assert ordered(db, "-metrics.acc,-metrics.loss") == ["r4", "r1", "r5", "r2", "r3", "r6"]


def test_order_by_param_numbers_then_strings(db: sqlite3.Connection) -> None:
    """Params sort by numeric value, then string value, then missing."""
    assert ordered(db, "params.lr") == ["r3", "r1", "r5", "r2", "r4", "r6"]
    assert ordered(db, "-params.lr") == ["r2", "r1", "r5", "r3", "r4", "r6"]
    assert ordered(db, "params.optimizer") == ["r5", "r1", "r3", "r2", "r4", "r6"]


def test_order_by_binds_keys_as_parameters() -> None:
    """Metric and param sort keys are `?` parameters, in clause order."""
    sql, params = compile_order_by(["-metrics.`val loss`", "params.net.depth"])
    assert params == ["val loss", "net.depth", "net.depth"]
    assert "val loss" not in sql


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "position", "length", "message"),
    [
        pytest.param(
            "metric.loss < 1",
            0,
            11,
            "unknown field 'metric.loss' (fields: metrics.<key>, params.<key>, outputs.<key>, "
            "tags, status, name, project, id, notes, host, user, created, finished, updated, "
            "duration, "
            "min/max/last/count(metrics.<key>))",
            id="unknown-field",
        ),
        pytest.param(
            "metrics.loss <> 1",
            13,
            2,
            "unknown operator '<>' (operators: ==, !=, <, <=, >, >=, in, not in, ~)",
            id="bad-operator",
        ),
        pytest.param(
            "metrics.loss is 1",
            13,
            2,
            "expected an operator after 'metrics.loss' (==, !=, <, <=, >, >=, in, not in, ~)",
            id="word-as-operator",
        ),
        pytest.param("metrics.loss <", 14, 1, "expected a value after '<'", id="missing-value"),
        pytest.param(
            "metrics.loss < and name == 'x'", 15, 3, "expected a value after '<'", id="value-kw"
        ),
        pytest.param(
            "name == resnet",
            8,
            6,
            "expected a value after '==' (strings need quotes: \"resnet\")",
            id="unquoted-string",
        ),
        pytest.param('name == "abc', 8, 4, "unterminated string", id="unterminated-string"),
        pytest.param("metrics.`abc < 1", 8, 8, "unterminated key", id="unterminated-key"),
        pytest.param("(metrics.a > 1", 0, 1, "unclosed '('", id="unclosed-paren"),
        pytest.param("metrics.a > 1)", 13, 1, "unexpected ')'", id="extra-paren"),
        pytest.param(
            "(metrics.a > 1 name == 'x')",
            15,
            4,
            "unexpected 'name'; expected ')', 'and' or 'or'",
            id="junk-in-parens",
        ),
        pytest.param(
            "metrics.a > 1 foo",
            14,
            3,
            "unexpected 'foo'; expected 'and', 'or' or the end of the query",
            id="trailing-garbage",
        ),
        pytest.param(
            "status == 'done'",
            10,
            6,
            "unknown status 'done' (statuses: created, running, succeeded, failed, stopped, "
            "skipped, crashed)",
            id="bad-status",
        ),
        pytest.param(
            "status in ('failed', 'Failed')",
            21,
            8,
            "unknown status 'Failed' (statuses: created, running, succeeded, failed, stopped, "
            "skipped, crashed)",
            id="bad-status-in-list",
        ),
        pytest.param(
            "created > '2024-13-01'",
            10,
            12,
            "invalid time '2024-13-01'; expected an ISO 8601 date or datetime such as "
            '"2024-05-01" or "2024-05-01T12:30:00", or a relative time such as "7d ago"',
            id="bad-date",
        ),
        pytest.param(
            "created > '3 fortnights ago'",
            10,
            18,
            "invalid time '3 fortnights ago'; expected an ISO 8601 date or datetime such as "
            '"2024-05-01" or "2024-05-01T12:30:00", or a relative time such as "7d ago"',
            id="bad-relative-time",
        ),
        pytest.param(
            "duration > '7d ago'",
            11,
            8,
            "invalid duration '7d ago'; expected seconds or a duration such as "
            '"90s", "30m" or "1h30m"',
            id="bad-duration",
        ),
        pytest.param(
            "name == 3", 8, 1, "cannot compare 'name' (text) with the number 3", id="text-vs-number"
        ),
        pytest.param(
            "metrics.loss < '0.5'",
            15,
            5,
            "cannot compare 'metrics.loss' (a number) with the string '0.5'",
            id="number-vs-string",
        ),
        pytest.param(
            "max(metrics.loss) == true",
            21,
            4,
            "cannot compare 'max(metrics.loss)' (a number) with true",
            id="number-vs-bool",
        ),
        pytest.param(
            "created == false",
            11,
            5,
            "cannot compare 'created' (a time) with false",
            id="time-bool",
        ),
        pytest.param(
            "metrics. > 1",
            0,
            8,
            "expected a key after 'metrics.' (write odd keys in backticks: metrics.`my key`)",
            id="empty-key",
        ),
        pytest.param("params.`` == 1", 7, 2, "empty key", id="empty-backticked-key"),
        pytest.param(
            "params.lr < null", 12, 4, "null can only be compared with ==, != or in", id="null-lt"
        ),
        pytest.param(
            "metrics.a ~ 'x*'",
            10,
            1,
            "'~' matches text, and 'metrics.a' is a number",
            id="glob-on-number",
        ),
        pytest.param(
            "name ~ 3",
            7,
            1,
            "'~' needs a quoted glob pattern such as \"resnet*\", not the number 3",
            id="glob-number-pattern",
        ),
        pytest.param(
            "tags == 'cnn'",
            5,
            2,
            "tags can only be tested as '\"x\" in tags', '\"x\" not in tags' or 'tags ~ \"x*\"'",
            id="tags-equals",
        ),
        pytest.param("3 in tags", 0, 1, "a tag is a string, not the number 3", id="numeric-tag"),
        pytest.param(
            "0.5 > metrics.loss",
            4,
            1,
            "expected 'in tags' or 'not in tags' after a value "
            "(comparisons put the field first: metrics.loss < 0.1)",
            id="value-first",
        ),
        pytest.param(
            "exists(min(metrics.a))",
            7,
            3,
            "exists() takes metrics.<key>, params.<key> or outputs.<key>",
            id="exists-aggregate",
        ),
        pytest.param("min(params.a) < 1", 4, 8, "min() takes metrics.<key>", id="min-of-param"),
        pytest.param("status not ('failed')", 11, 1, "expected 'in' after 'not'", id="not-no-in"),
        pytest.param("status in 'failed'", 10, 8, "expected '(' after 'in'", id="in-no-list"),
        pytest.param("status in ()", 11, 1, "expected a value after '('", id="empty-list"),
        pytest.param(
            "status in ('failed' 'crashed')",
            20,
            9,
            "expected ',' or ')' in the list, got ''crashed''",
            id="list-no-comma",
        ),
        pytest.param("metrics.a > 1 and", 17, 1, "expected a condition after 'and'", id="dangling"),
        pytest.param("()", 1, 1, "expected a condition after '('", id="empty-parens"),
        pytest.param("a && b", 2, 1, "unexpected character '&'; use 'and'", id="ampersand"),
        pytest.param("metrics.a > 12ab", 12, 4, "invalid number '12ab'", id="bad-number"),
        pytest.param(
            r"name == 'a\q'",
            10,
            2,
            "invalid escape '\\q' (escapes: \\\\, \\', \\\", \\`, \\n, \\t, \\r)",
            id="bad-escape",
        ),
        pytest.param("metrics.a > -x", 13, 1, "expected a number after '-'", id="minus-word"),
        pytest.param(
            "(" * 5000 + "name == 'a'" + ")" * 5000, 0, 1, "query nests too deeply", id="deep"
        ),
    ],
)
def test_invalid_where(query: str, position: int, length: int, message: str) -> None:
    """Each malformed filter raises QueryError pointing at the offending token."""
    error = where_error(query)
    assert (error.reason, error.position, error.length) == (message, position, length)
    assert error.query == query
    assert isinstance(error, ValueError)


def test_error_message_shows_a_caret_under_the_token() -> None:
    """str(QueryError) repeats the query with carets under the offending span."""
    assert str(where_error("metrics.loss <> 1")).splitlines()[1:] == [
        "  metrics.loss <> 1",
        "               ^^",
    ]


@pytest.mark.parametrize(
    ("order_by", "query", "position", "length", "message"),
    [
        pytest.param("tags", "tags", 0, 4, "cannot sort by tags", id="tags"),
        pytest.param(
            "name, -metric.acc",
            "name, -metric.acc",
            7,
            10,
            "unknown field 'metric.acc' (fields: metrics.<key>, params.<key>, outputs.<key>, "
            "tags, status, name, project, id, notes, host, user, created, finished, updated, "
            "duration, "
            "min/max/last/count(metrics.<key>))",
            id="unknown-field",
        ),
        pytest.param("name,,id", "name,,id", 5, 1, "expected a field to sort by", id="empty-term"),
        pytest.param("-", "-", 1, 1, "expected a field to sort by", id="lone-minus"),
        pytest.param(
            "name desc",
            "name desc",
            5,
            4,
            "unexpected 'desc'; expected ',' or the end of the query",
            id="trailing-word",
        ),
        pytest.param(
            ["name", "-metrics.`a"], "-metrics.`a", 9, 2, "unterminated key", id="list-relative"
        ),
        pytest.param(
            ["name, id"],
            "name, id",
            4,
            1,
            "unexpected ','; expected the end of the term",
            id="comma-in-list-term",
        ),
        pytest.param(["created", ""], "", 0, 1, "expected a field to sort by", id="blank-term"),
    ],
)
def test_invalid_order_by(
    order_by: str | list[str], query: str, position: int, length: int, message: str
) -> None:
    """Bad sort keys raise QueryError; for lists the position is within the offending term."""
    with pytest.raises(QueryError) as info:
        compile_order_by(order_by)
    error = info.value
    assert (error.reason, error.query, error.position, error.length) == (
        message,
        query,
        position,
        length,
    )


# --- speed --------------------------------------------------------------------------------


def test_filter_over_ten_thousand_runs() -> None:
    """10,000 runs with 2 metrics and 2 params each filter and sort correctly.

    (Its speed is measured by benchmarks/bench_core.py, target 5.)"""
    rng = random.Random(7)
    connection = sqlite3.connect(":memory:")
    try:
        connection.executescript(SCHEMA)
        runs, metrics, params = [], [], []
        for i in range(10_000):
            run_id = f"run{i:05d}"
            runs.append((run_id, "p", f"n{i}", "succeeded", None, None, T0 + i, T0 + i + 60, None))
            for key in ("loss", "acc"):
                value = rng.random()
                metrics.append((run_id, key, value, value, value, 1, 0))
            lr = rng.choice([0.1, 0.01, 0.001])
            params.append(_param_row(run_id, "lr", lr))
            params.append(_param_row(run_id, "optimizer", rng.choice(["adam", "sgd"])))
        connection.executemany(INSERT_RUN, runs)
        connection.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?)", metrics)
        connection.executemany("INSERT INTO params VALUES (?, ?, ?, ?, ?)", params)
        connection.execute("ANALYZE")

        where, where_params = compile_where(
            "metrics.loss < 0.5 and metrics.acc > 0.2 and params.lr == 0.01 "
            "and params.optimizer in ('adam') and created > '2023-11-01'"
        )
        order, order_params = compile_order_by("-metrics.acc")
        rows = connection.execute(
            f"SELECT id FROM runs WHERE {where} ORDER BY {order}", [*where_params, *order_params]
        ).fetchall()
    finally:
        connection.close()
    assert 100 < len(rows) < 2_000


# -- keys no run has ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "message", "position"),
    [
        ("metrics.los < 1", "no run has the metric 'los' (did you mean 'loss'?)", 0),
        ("params.lr == 1 and params.lrr > 1", "no run has the param 'lrr' (did you mean 'lr'?)",
         19),
        ("min(metrics.acc) > 0", "no run has the metric 'acc'", 0),
    ],
)
def test_a_key_no_run_has_is_an_error(where: str, message: str, position: int) -> None:
    """A typo used to match nothing, silently."""
    from polytrack.store.query import check_keys

    with pytest.raises(QueryError) as raised:
        check_keys(where, {"metric": {"loss", "val/loss"}, "param": {"lr", "batch"}})
    assert raised.value.reason == message
    assert raised.value.position == position


def test_known_keys_and_exists_pass() -> None:
    from polytrack.store.query import check_keys

    known = {"metric": {"loss"}, "param": {"lr"}}
    check_keys("metrics.loss < 1 and params.lr > 0 and status = 'failed'", known)
    check_keys("exists(metrics.nothing) or not exists(params.nope)", known)
    check_keys(None, known)


def test_the_cli_names_the_unknown_key_and_exits_2(tmp_path: Path) -> None:
    import io

    import polytrack
    from polytrack.cli import main

    home = tmp_path / "home"
    with polytrack.init(dir=home, capture=False) as run:
        run.log_metrics({"loss": 0.5})
    err = io.StringIO()
    code = main(["--home", str(home), "runs", "ls", "--where", "metrics.los < 1"], stderr=err)
    assert code == 2
    assert "did you mean 'loss'?" in err.getvalue()
