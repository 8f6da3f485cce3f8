"""`polytrack import KIND SOURCE`: the summary on stdout, one line per run (or a bar) on
stderr, problems named, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

import polytrack
from _cli import cli

pytest.importorskip("mlflow")

from ._mlflow_sources import make_store

pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning"
    ),
]


@pytest.fixture
def mlruns(tmp_path: Path) -> Path:
    """A file store written by MLflow's client (no schema migrations: fast)."""
    store = tmp_path / "mlruns"
    make_store(str(store), tmp_path / "artifacts", tmp_path / "files")
    return store


def test_import_then_again(mlruns: Path, home: Path) -> None:
    """The first import reports three new runs and their points, a line per run on a
    non-terminal stderr; the second reports them unchanged."""
    first = cli("import", "mlflow", str(mlruns), "--home", str(home))
    assert first.code == 0, first.err
    assert "imported 3 runs" in first.out and "(3 new, 0 updated, 0 unchanged)" in first.out
    assert "1,533 points" in first.out
    assert "polytrack: first: new, added 1,503 points" in first.err
    again = cli("import", "mlflow", str(mlruns), "--home", str(home))
    assert again.code == 0
    assert "(0 new, 0 updated, 3 unchanged): 0 points" in again.out
    assert again.err.count("up to date") == 3


def test_options_experiment_project_dry_run_progress(mlruns: Path, home: Path) -> None:
    """--experiment picks, --project renames, --dry-run writes nothing, --progress draws a
    bar (carriage returns) instead of lines."""
    dry = cli(
        "import", "mlflow", str(mlruns), "--experiment", "mnist", "--dry-run", "--home",
        str(home),
    )  # fmt: skip
    assert dry.code == 0 and "would import 2 runs" in dry.out
    assert not home.exists()
    done = cli(
        "import", "mlflow", str(mlruns), "--experiment", "other", "--project", "elsewhere",
        "--progress", "--home", str(home),
    )  # fmt: skip
    assert done.code == 0
    assert "\rimporting: 1 runs, 10 points" in done.err
    assert [(r.name, r.project) for r in polytrack.runs(home=home)] == [("live", "elsewhere")]


def test_a_missing_source_is_named_with_exit_1(tmp_path: Path, home: Path) -> None:
    """A source that is not there fails with exit 1 and a message naming it."""
    result = cli("import", "mlflow", str(tmp_path / "nowhere"), "--home", str(home))
    assert result.code == 1
    assert "nowhere: no such MLflow store directory" in result.err
    assert "Traceback" not in result.err


def test_an_unknown_kind_is_a_usage_error(home: Path) -> None:
    """A kind no importer reads is refused by the parser (exit 2)."""
    result = cli("import", "comet", "x", "--home", str(home))
    assert result.code == 2
    assert "invalid choice: 'comet'" in result.err


def test_import_source_takes_a_kind_of_kinds(home: Path) -> None:
    """`import_source` (the CLI's way in) refuses a kind no reader reads, naming them."""
    import polytrack.importers
    from polytrack.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="mlflow, tensorboard, wandb, polyaxon"):
        polytrack.importers.import_source(
            "aim", "./repo", {}, project=None, home=home, dry_run=True, progress=False, limit=None
        )
    assert not home.exists()
