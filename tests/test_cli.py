"""The `polytrack` command line: real runs in a real store, read back through `main(argv)`."""

from __future__ import annotations

import io
import json
import math
import re
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs
import pytest
from attrs import frozen

import polytrack
from polytrack import _state
from polytrack.cli import main
from polytrack.cli._format import format_duration, format_number
from polytrack.models import MetricSummary, RunInfo


@frozen
class Result:
    """What one `main()` call returned and printed."""

    code: int
    out: str
    err: str


@frozen
class Store:
    """A home holding three finished runs of project "mnist" and one of "other"."""

    home: Path
    adam: str  # lr 0.1, finished first
    sgd: str  # lr 0.01
    small: str  # lr 0.001, finished last of mnist
    other: str  # project "other", failed, newest

    def cli(self, *argv: str) -> Result:
        return cli(*argv, "--home", str(self.home))


@pytest.fixture(autouse=True)
def _clean_state() -> Iterator[None]:
    yield
    _state.reset()
    leftover = [t.name for t in threading.enumerate() if t.name.startswith("polytrack-")]
    assert not leftover, f"threads outlived the test: {leftover}"


def cli(*argv: str, environ: Mapping[str, str] | None = None) -> Result:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err, environ={} if environ is None else environ)
    return Result(code, out.getvalue(), err.getvalue())


def record(
    home: Path,
    *,
    project: str = "mnist",
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    metrics: Sequence[Mapping[str, float]] = (),
    tags: Sequence[str] | None = None,
    notes: str | None = None,
    status: str = "succeeded",
    message: str | None = None,
) -> str:
    run = polytrack.init(
        project=project, name=name, params=params, tags=tags, notes=notes, dir=home, environ={}
    )
    for step, values in enumerate(metrics):
        run.log_metrics(values, step=step)
    run.finish(status, message=message)
    return run.id


def losses(start: float) -> list[dict[str, float]]:
    return [{"loss": start / (step + 1), "acc": 0.9} for step in range(5)]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    home = tmp_path / "home"
    common = {"batch": 128, "net": {"depth": 18}}
    adam = record(
        home,
        name="adam",
        params={**common, "lr": 0.1, "opt": "adam"},
        metrics=losses(1.0),
        tags=["cnn"],
        notes="first try\nsecond line",
    )
    sgd = record(home, name="sgd", params={**common, "lr": 0.01, "opt": "sgd"}, metrics=losses(2.0))
    small = record(
        home, name="small", params={**common, "lr": 0.001, "opt": "adam"}, metrics=losses(3.0)
    )
    other = record(
        home,
        project="other",
        name="broken",
        params={"lr": 0.5},
        status="failed",
        message="ValueError: boom",
    )
    return Store(home, adam, sgd, small, other)


def table(text: str) -> list[dict[str, str]]:
    """Rows of a `runs ls` table as dicts; cells are separated by two or more spaces."""
    header, *rows = text.splitlines()
    names = re.split(r"\s{2,}", header.strip())
    parsed = [re.split(r"\s{2,}", row.strip()) for row in rows]
    assert all(len(cells) == len(names) for cells in parsed), text
    return [dict(zip(names, cells, strict=True)) for cells in parsed]


def from_json(record: dict[str, Any]) -> RunInfo:
    """A `--json` record read back into the `RunInfo` it was written from (the snapshot
    and the log tail `show` adds are checked in test_snapshot.py, its outputs, artifacts
    and models in test_cli_runs_show.py)."""
    shown = ("snapshot", "logs", "outputs", "artifacts", "models", "media")  # what `show` adds
    record = {k: v for k, v in record.items() if k not in shown}
    metrics = {key: MetricSummary(**summary) for key, summary in record["metrics"].items()}
    return RunInfo(**{**record, "tags": tuple(record["tags"]), "metrics": metrics})


def as_info(view: RunInfo) -> RunInfo:
    """A RunView as the plain RunInfo it extends (attrs equality compares classes)."""
    return RunInfo(**attrs.asdict(view, recurse=False))


def info_of(store: Store, run_id: str) -> RunInfo:
    return as_info(polytrack.get_run(run_id, home=store.home))


# -- runs ls -------------------------------------------------------------------------------


def test_ls_lists_runs_newest_first_with_fixed_columns(store: Store) -> None:
    """`runs ls` prints id, name, project, status, local created time and duration, newest first."""
    result = store.cli("runs", "ls")
    assert result.code == 0, result.err
    rows = table(result.out)
    assert [row["id"] for row in rows] == [store.other, store.small, store.sgd, store.adam]
    first = rows[-1]
    created = datetime.fromtimestamp(info_of(store, store.adam).created_at)
    assert first["name"] == "adam"
    assert first["project"] == "mnist"
    assert first["status"] == "succeeded"
    assert first["created"] == created.strftime("%Y-%m-%d %H:%M")
    assert first["duration"] == "0s"
    assert rows[0]["status"] == "failed"


def test_ls_adds_only_params_and_metrics_that_vary(store: Store) -> None:
    """Columns appear for params/metrics whose values differ, not for ones every run shares."""
    result = store.cli("runs", "ls", "--project", "mnist")
    rows = table(result.out)
    assert list(rows[0]) == [
        "id",
        "name",
        "project",
        "status",
        "created",
        "duration",
        "params.lr",
        "params.opt",
        "metrics.loss",
    ]
    by_name = {row["name"]: row for row in rows}
    assert by_name["adam"]["params.lr"] == "0.1"
    assert by_name["small"]["params.opt"] == "adam"
    assert by_name["sgd"]["metrics.loss"] == "0.4"  # 2.0 / 5, last value
    assert by_name["small"]["metrics.loss"] == "0.6"


def test_ls_formats_numbers_with_four_significant_digits(tmp_path: Path) -> None:
    """Floats show 4 significant digits; ints stay exact; runs lacking a key show '-'."""
    home = tmp_path / "home"
    record(home, name="a", params={"seed": 123456789}, metrics=[{"loss": 1 / 3}])
    record(home, name="b", params={"seed": 7}, metrics=[{"loss": 12345.678}])
    record(home, name="c", params={"wd": 1e-5})
    rows = {row["name"]: row for row in table(cli("runs", "ls", "--home", str(home)).out)}
    assert rows["a"]["params.seed"] == "123456789"
    assert rows["a"]["metrics.loss"] == "0.3333"
    assert rows["b"]["metrics.loss"] == "1.235e+04"
    assert rows["c"]["params.wd"] == "1e-05"
    assert rows["c"]["params.seed"] == "-"
    assert rows["c"]["metrics.loss"] == "-"


def test_ls_in_a_pipe_lists_every_varying_column(tmp_path: Path) -> None:
    """Many varying keys, stdout not a terminal: every one is a column (what a script
    reading the table wants); on a terminal the table fits it (test_cli_runs_ls.py)."""
    home = tmp_path / "home"
    for index in range(3):
        params = {f"param_number_{key}": index * key for key in range(10)}
        record(home, name=f"run-{index}", params=params, metrics=[{"loss": float(index)}])
    result = cli("runs", "ls", "--home", str(home))
    assert result.code == 0
    assert len(table(result.out)[0]) == 6 + 9 + 1  # param_number_0 is 0 in every run
    assert "more columns vary" not in result.err


def test_ls_columns_option_picks_the_columns(store: Store) -> None:
    """`--columns` replaces the default columns, in the order given, across repeats."""
    result = store.cli("runs", "ls", "--columns", "name,params.batch", "--columns", "tags")
    assert result.code == 0, result.err
    rows = table(result.out)
    assert list(rows[0]) == ["name", "params.batch", "tags"]
    assert {row["name"]: row["tags"] for row in rows}["adam"] == "cnn"
    assert {row["name"]: row["params.batch"] for row in rows}["broken"] == "-"


def test_ls_where_filters(store: Store) -> None:
    """`--where` keeps only the runs the query matches."""
    result = store.cli("runs", "ls", "--where", "params.lr < 0.05 and metrics.loss < 0.5")
    assert result.code == 0, result.err
    assert [row["id"] for row in table(result.out)] == [store.sgd]


def test_ls_project_filters(store: Store) -> None:
    """`--project` keeps only that project's runs."""
    rows = table(store.cli("runs", "ls", "--project", "other").out)
    assert [row["id"] for row in rows] == [store.other]


def test_ls_order_by_sorts(store: Store) -> None:
    """`--order-by` sorts, with '-' for descending and missing values last."""
    ascending = table(store.cli("runs", "ls", "--order-by", "params.lr").out)
    assert [row["id"] for row in ascending] == [store.small, store.sgd, store.adam, store.other]
    descending = table(store.cli("runs", "ls", "--order-by", "-metrics.loss").out)
    assert [row["id"] for row in descending] == [store.small, store.sgd, store.adam, store.other]


def test_ls_limit_cuts_the_list_and_says_so(store: Store) -> None:
    """`--limit N` shows N runs and notes on stderr that there are more; 0 shows all."""
    result = store.cli("runs", "ls", "--limit", "2")
    assert [row["id"] for row in table(result.out)] == [store.other, store.small]
    assert "showing the first 2 runs" in result.err
    everything = store.cli("runs", "ls", "--limit", "0")
    assert len(table(everything.out)) == 4
    assert "showing" not in everything.err
    exact = store.cli("runs", "ls", "--limit", "4")
    assert len(table(exact.out)) == 4
    assert "showing" not in exact.err


def test_ls_json_round_trips_whole_records(store: Store) -> None:
    """`--json` prints a JSON array of whole records that read back into equal RunInfos."""
    result = store.cli("runs", "ls", "--json")
    assert result.code == 0, result.err
    records = json.loads(result.out)
    assert [r["id"] for r in records] == [store.other, store.small, store.sgd, store.adam]
    expected = [as_info(view) for view in polytrack.runs(home=store.home)]
    assert [from_json(r) for r in records] == expected
    assert records[-1]["params"]["net.depth"] == 18
    assert records[-1]["metrics"]["loss"]["count"] == 5
    assert records[0]["message"] == "ValueError: boom"


def test_ls_with_no_match_says_no_runs(store: Store) -> None:
    """A query matching nothing prints `no runs` on stderr, nothing on stdout, and exits 0."""
    result = store.cli("runs", "ls", "--where", 'name == "nope"')
    assert (result.code, result.out) == (0, "")
    assert result.err == f"no runs match in the store {store.home}\n"
    as_json = store.cli("runs", "ls", "--where", 'name == "nope"', "--json")
    assert (as_json.code, json.loads(as_json.out)) == (0, [])


def test_ls_on_a_missing_home_creates_nothing(tmp_path: Path) -> None:
    """Listing a home that does not exist finds no runs and leaves no directory behind."""
    home = tmp_path / "typo"
    result = cli("runs", "ls", "--home", str(home))
    assert (result.code, result.err) == (0, f"no runs in the store {home}\n")
    assert not home.exists()


def test_home_defaults_to_polytrack_home(store: Store) -> None:
    """Without `--home`, the store is POLYTRACK_HOME from `environ`."""
    result = cli("runs", "ls", environ={"POLYTRACK_HOME": str(store.home)})
    assert len(table(result.out)) == 4


def test_home_may_come_before_the_command(store: Store) -> None:
    """`--home` is accepted before the subcommand as well as after it."""
    result = cli("--home", str(store.home), "runs", "ls", "--project", "other")
    assert [row["id"] for row in table(result.out)] == [store.other]


def test_nan_metrics_are_rendered(tmp_path: Path) -> None:
    """A NaN last value reads `nan` in tables and "NaN" in JSON, which stays strict JSON."""
    home = tmp_path / "home"
    run_id = record(home, name="diverged", metrics=[{"loss": 1.0}, {"loss": math.nan}])
    record(home, name="fine", metrics=[{"loss": 0.5}, {"loss": math.inf}, {"loss": 0.25}])
    rows = {row["name"]: row for row in table(cli("runs", "ls", "--home", str(home)).out)}
    assert rows["diverged"]["metrics.loss"] == "nan"
    assert rows["fine"]["metrics.loss"] == "0.25"

    shown = cli("runs", "show", run_id, "--home", str(home))
    assert re.search(r"^\s+loss\s+nan\s+1\s+1\s+2\s+1$", shown.out, re.MULTILINE), shown.out

    records = json.loads(
        cli("runs", "ls", "--json", "--home", str(home)).out,
        parse_constant=lambda token: pytest.fail(f"non-standard JSON token {token}"),
    )
    by_name = {r["name"]: r for r in records}
    assert by_name["diverged"]["metrics"]["loss"]["last"] == "NaN"
    assert by_name["fine"]["metrics"]["loss"]["max"] == "Infinity"
    assert float(by_name["fine"]["metrics"]["loss"]["max"]) == math.inf


def test_control_characters_in_names_are_escaped(tmp_path: Path) -> None:
    """A run name holding a terminal escape is printed escaped, never raw."""
    home = tmp_path / "home"
    record(home, name="evil\x1b[2Jname")
    result = cli("runs", "ls", "--home", str(home))
    assert "\x1b" not in result.out
    assert "evil\\x1b[2Jname" in result.out


# -- runs show -----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["id", "prefix", "name"])
def test_show_finds_a_run(store: Store, how: str) -> None:
    """`runs show` accepts a full id, a unique id prefix, or a name."""
    info = info_of(store, store.adam)
    ref = {"id": info.id, "prefix": None, "name": "adam"}[how]
    if ref is None:
        others = [store.sgd, store.small, store.other]
        length = next(n for n in range(1, 9) if all(o[:n] != info.id[:n] for o in others))
        ref = info.id[:length]
    result = store.cli("runs", "show", ref)
    assert result.code == 0, result.err
    assert re.search(rf"^id\s+{info.id}$", result.out, re.MULTILINE)


def test_show_prints_the_whole_record(store: Store) -> None:
    """The readable record has the header fields, a sorted params table and a metrics table."""
    info = info_of(store, store.adam)
    result = store.cli("runs", "show", store.adam)
    lines = result.out.splitlines()
    expected_header = {
        "name": "adam",
        "project": "mnist",
        "status": "succeeded",
        "created": datetime.fromtimestamp(info.created_at).strftime("%Y-%m-%d %H:%M:%S"),
        "duration": "0s",
        "host": f"{info.host} (pid {info.pid})",
        "path": info.path,
        "tags": "cnn",
        "notes": "first try",
    }
    for label, value in expected_header.items():
        assert f"{label.ljust(8)}  {value}" in lines, label
    notes = lines.index("notes     first try")
    assert lines[notes + 1] == "          second line"
    assert not any(line.startswith("message") for line in lines)

    params = lines[lines.index("params") + 1 : lines.index("metrics") - 1]
    assert [line.split()[0] for line in params] == ["key", "batch", "lr", "net.depth", "opt"]
    assert params[2].split() == ["lr", "0.1"]
    metrics = lines[lines.index("metrics") + 1 :]
    assert metrics[0].split() == ["key", "last", "min", "max", "count", "last", "step"]
    assert metrics[2].split() == ["loss", "0.2", "0.2", "1", "5", "4"]


def test_show_prints_the_failure_message(store: Store) -> None:
    """A failed run's message is shown under its status."""
    lines = store.cli("runs", "show", "broken").out.splitlines()
    assert lines[3:5] == ["status    failed", "message   ValueError: boom"]


def test_show_json_is_the_whole_record(store: Store) -> None:
    """`runs show --json` prints one JSON object equal to the run's record."""
    result = store.cli("runs", "show", store.adam, "--json")
    assert result.code == 0, result.err
    assert from_json(json.loads(result.out)) == info_of(store, store.adam)


def test_show_name_within_project(tmp_path: Path) -> None:
    """A name shared across projects is ambiguous (exit 3) until `--project` narrows it."""
    home = tmp_path / "home"
    first = record(home, project="a", name="same")
    record(home, project="b", name="same")
    ambiguous = cli("runs", "show", "same", "--home", str(home))
    assert ambiguous.code == 3
    assert ambiguous.err.startswith("polytrack: error: 'same' matches 2 runs")
    narrowed = cli("runs", "show", "same", "--project", "a", "--home", str(home))
    assert narrowed.code == 0, narrowed.err
    assert re.search(rf"^id\s+{first}$", narrowed.out, re.MULTILINE)


def test_show_ambiguous_prefix_exits_3(tmp_path: Path) -> None:
    """An id prefix shared by several runs exits 3 and lists the candidates."""
    home = tmp_path / "home"
    ids: dict[str, list[str]] = {}
    # Ids are random; by pigeonhole, 37 runs always share a first character.
    while not any(len(group) > 1 for group in ids.values()):
        run_id = record(home)
        ids.setdefault(run_id[0], []).append(run_id)
    prefix, group = next((p, g) for p, g in ids.items() if len(g) > 1)
    result = cli("runs", "show", prefix, "--home", str(home))
    assert (result.code, result.out) == (3, "")
    assert f"{prefix!r} matches {len(group)} runs" in result.err
    assert all(run_id in result.err for run_id in group)
    assert "Traceback" not in result.err


def test_show_unknown_run_exits_3(store: Store) -> None:
    """A reference that matches nothing exits 3 with a one-line message."""
    result = store.cli("runs", "show", "nosuchrun")
    assert (result.code, result.out) == (3, "")
    assert result.err == ("polytrack: error: no run has the id, id prefix or name 'nosuchrun'\n")


def test_show_in_a_missing_home_exits_3(tmp_path: Path) -> None:
    """`runs show` in a home that does not exist exits 3 and creates nothing."""
    result = cli("runs", "show", "abc", "--home", str(tmp_path / "none"))
    assert result.code == 3
    assert "there is no store at" in result.err
    assert not (tmp_path / "none").exists()


def test_directory_without_a_run_is_not_found(store: Store) -> None:
    """A run directory that holds no run is not a run: exit 3, message, no traceback."""
    (store.home / "runs" / "deadbeef").mkdir()
    result = store.cli("runs", "show", "deadbeef")
    assert result.code == 3
    assert result.err.startswith("polytrack: error: no run has the id")
    assert "Traceback" not in result.err


def test_secrets_are_not_printed(tmp_path: Path) -> None:
    """Secret params stay redacted, and credentials in a failure message are dropped."""
    home = tmp_path / "home"
    run_id = record(
        home,
        params={"api_key": "sk-live-123456", "db": "postgres://me:hunter2@db/x"},
        status="failed",
        message="ConnectionError: postgres://me:hunter2@db/x refused",
        notes="mirror at https://bob:pa55word@example.com",
    )
    for argv in (["show", run_id], ["show", run_id, "--json"], ["ls", "--json"]):
        result = cli("runs", *argv, "--home", str(home))
        assert result.code == 0, result.err
        for secret in ("sk-live-123456", "hunter2", "pa55word"):
            assert secret not in result.out, argv
    assert "ConnectionError: postgres://me:[REDACTED]@db/x refused" in result.out


# -- usage, errors and exit codes --------------------------------------------------------


def test_bad_where_exits_2_with_a_caret(store: Store) -> None:
    """A `--where` that does not parse exits 2 and points a caret at the bad token."""
    result = store.cli("runs", "ls", "--where", "metrics.loss <")
    assert (result.code, result.out) == (2, "")
    assert result.err == (
        "polytrack: error: expected a value after '<'\n  metrics.loss <\n                ^\n"
    )


def test_bad_order_by_exits_2(store: Store) -> None:
    """An `--order-by` naming an unknown field exits 2 with the query's message."""
    result = store.cli("runs", "ls", "--order-by", "-bogus")
    assert result.code == 2
    assert result.err.startswith("polytrack: error: ")
    assert "^" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["runs"],
        ["nope"],
        ["runs", "ls", "--limit", "-1"],
        ["runs", "ls", "--limit", "many"],
        ["runs", "ls", "--columns", "bogus"],
        ["runs", "ls", "--json", "--columns", "id"],
        ["runs", "ls", "--order-by", "--json"],
        ["runs", "show"],
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, argv: list[str]) -> None:
    """Bad arguments exit 2 with argparse's usage line on stderr and nothing on stdout."""
    result = cli(*argv, "--home", str(tmp_path))
    assert (result.code, result.out) == (2, "")
    assert result.err.startswith("usage: polytrack")
    assert "error:" in result.err


@pytest.mark.parametrize("argv", [["--help"], ["runs", "--help"], ["runs", "ls", "-h"]])
def test_help_exits_0(argv: list[str]) -> None:
    """`--help` prints usage on stdout and exits 0."""
    result = cli(*argv)
    assert (result.code, result.err) == (0, "")
    assert result.out.startswith("usage: polytrack")


def test_version_exits_0() -> None:
    """`--version` prints the package version on stdout."""
    result = cli("--version")
    assert (result.code, result.out) == (0, f"polytrack {polytrack.__version__}\n")


class _FailingStream(io.StringIO):
    """A stdout whose every write raises `error`, as a closed pipe or Ctrl-C would."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    def write(self, text: str) -> int:
        raise self.error


@pytest.mark.parametrize(("error", "code"), [(KeyboardInterrupt(), 130), (BrokenPipeError(), 141)])
def test_interrupt_and_broken_pipe_exit_codes(
    store: Store, error: BaseException, code: int
) -> None:
    """Ctrl-C exits 130 and a closed stdout 141, without a traceback."""
    err = io.StringIO()
    argv = ["runs", "ls", "--home", str(store.home)]
    assert main(argv, stdout=_FailingStream(error), stderr=err, environ={}) == code
    assert "Traceback" not in err.getvalue()


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0.4, "0s"),
        (42, "42s"),
        (65, "1m 5s"),
        (7383, "2h 3m 3s"),
        (273600, "3d 4h 0m"),
    ],
)
def test_durations_are_compact(seconds: float | None, text: str) -> None:
    """Durations read with their largest units (three at most), and `-` for a run still
    running."""
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.1, "0.1"),
        (2 / 3, "0.6667"),
        (1e-7, "1e-07"),
        (128, "128"),
        (math.nan, "nan"),
        (-math.inf, "-inf"),
    ],
)
def test_numbers_are_compact(value: float, text: str) -> None:
    """Numbers read with 4 significant digits, ints exactly, NaN as `nan`."""
    assert format_number(value) == text


def test_running_run_has_no_duration(tmp_path: Path) -> None:
    """A run still recording shows `running` and `-` for its duration."""
    home = tmp_path / "home"
    run = polytrack.init(project="live", dir=home, environ={})
    try:
        rows = table(cli("runs", "ls", "--home", str(home)).out)
    finally:
        run.finish()
    assert (rows[0]["status"], rows[0]["duration"]) == ("running", "-")


# -- the real entry points -----------------------------------------------------------------


@pytest.mark.slow
def test_python_dash_m_polytrack_runs_ls(store: Store) -> None:
    """`python -m polytrack runs ls --home DIR` prints the table and exits 0."""
    completed = subprocess.run(
        [sys.executable, "-m", "polytrack", "runs", "ls", "--home", str(store.home)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert [row["id"] for row in table(completed.stdout)] == [
        store.other,
        store.small,
        store.sgd,
        store.adam,
    ]


@pytest.mark.slow
def test_python_dash_m_polytrack_maps_errors_to_exit_codes(store: Store) -> None:
    """Through the real entry point an unknown run exits 3 with no traceback."""
    completed = subprocess.run(
        [sys.executable, "-m", "polytrack", "runs", "show", "nosuchrun", "--home", str(store.home)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 3
    assert completed.stderr.startswith("polytrack: error: ")
    assert "Traceback" not in completed.stderr


@pytest.mark.slow
def test_import_and_help_stay_cheap() -> None:
    """Importing polytrack.cli, and `--help`, load neither numpy nor the store."""
    code = (
        "import io, sys\n"
        "import polytrack.cli\n"
        "assert 'polytrack.cli.runs' not in sys.modules\n"
        "assert polytrack.cli.main(['runs', 'ls', '--help'], stdout=io.StringIO()) == 0\n"
        "heavy = {'numpy', 'sqlite3', 'cattrs', 'polytrack.history.runs'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr


def test_index_rebuild(tmp_path: Path) -> None:
    """`index rebuild` re-reads every run directory, also after the index was deleted."""
    home = tmp_path / "home"
    with polytrack.init(dir=home, project="p") as run:
        run.log_metrics({"loss": 0.1}, step=0)
    (home / "index.sqlite3").unlink(missing_ok=True)
    result = cli("index", "rebuild", "--home", str(home))
    assert result.code == 0 and "indexed 1 runs" in result.err
    listing = cli("runs", "ls", "--home", str(home), "--where", "metrics.loss < 0.2")
    assert run.id in listing.out
