"""The `skipped` status (a DAG operation whose trigger or conditions did not hold): a final
status a run can be finished with, read back, queried, never judged crashed, and shipped
to each backend as its nearest status."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import polytrack
from polytrack.models import FINAL_STATUSES, STATUSES
from polytrack.sync.backends.memory import InMemoryBackend

QUIET = {"capture": False}


def test_skipped_is_a_final_status() -> None:
    assert "skipped" in STATUSES and "skipped" in FINAL_STATUSES


def test_a_run_finished_skipped_reads_back_and_is_queried(home: Path, hot_path: str) -> None:
    """finish("skipped") records the status, its message and the end; `status ==
    "skipped"` finds it, and only it."""
    skipped = polytrack.init(dir=home, name="skipped-one", **QUIET)
    skipped.finish("skipped", message="trigger all_succeeded: a failed")
    other = polytrack.init(dir=home, name="succeeded-one", **QUIET)
    other.finish()
    info = polytrack.get_run(skipped.id, home=home)
    assert info.status == "skipped"
    assert info.message == "trigger all_succeeded: a failed"
    assert info.finished_at is not None
    found = polytrack.runs(home=home, where='status == "skipped"')
    assert [run.id for run in found] == [skipped.id]


def test_the_module_level_finish_accepts_skipped(home: Path) -> None:
    run = polytrack.init(dir=home, **QUIET)
    polytrack.finish("skipped", message="conditions are false")
    assert polytrack.get_run(run.id, home=home).status == "skipped"


def test_a_skipped_run_whose_process_is_gone_is_not_crashed(home: Path) -> None:
    """The process that finished it skipped has exited: the run stays skipped (final),
    where a run left unfinished by a dead process reads as crashed."""
    script = textwrap.dedent(
        f"""
        import polytrack
        skipped = polytrack.init(dir={str(home)!r}, name="skipped", capture=False)
        skipped.finish("skipped", message="not run")
        left = polytrack.init(dir={str(home)!r}, name="left", capture=False,
                              reinit="create_new")
        import os
        os._exit(0)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    statuses = {run.name: run.status for run in polytrack.runs(home=home)}
    assert statuses == {"skipped": "skipped", "left": "crashed"}


def test_skipped_reaches_the_in_memory_backend(home: Path) -> None:
    backend = InMemoryBackend()
    run = polytrack.init(dir=home, backend=backend, **QUIET)
    run.finish("skipped", message="conditions are false")
    assert backend.runs[run.id].status == "skipped"
    assert backend.runs[run.id].statuses[-1][2] == "conditions are false"


MLFLOW_API = "http://mlflow.test:5000/api/2.0/mlflow"


def test_the_terminal_and_notebooks_colour_skipped() -> None:
    from polytrack._display import STATUS_COLORS as HTML_COLORS
    from polytrack.cli.runs import STATUS_COLORS

    assert "skipped" in STATUS_COLORS and "skipped" in HTML_COLORS


def test_the_dashboard_has_a_skipped_badge() -> None:
    """The shipped stylesheet (built from frontend/src/app.css) styles the badge."""
    from importlib.resources import files

    css = files("polytrack.dashboard").joinpath("static/assets/app.css").read_text()
    assert ".status-skipped{" in css
