"""Every notebook in notebooks/ runs top to bottom in a real Jupyter kernel."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import polytrack
from polytrack.capture.notebook import read_cells

nbclient = pytest.importorskip("nbclient", reason="the notebooks tox env installs nbclient")
nbformat = pytest.importorskip("nbformat")

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_and_records(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The notebook executes without error, writing only to a temporary home, and its
    runs land there, succeeded, with metrics, a snapshot that names the notebook (as a
    Jupyter server tells the kernel, by JPY_SESSION_NAME) and the cells the kernel ran."""
    home = tmp_path / "home"
    monkeypatch.setenv("POLYTRACK_HOME", str(home))  # the kernel inherits the environment
    monkeypatch.setenv("JPY_SESSION_NAME", str(path))
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute(env=dict(os.environ))
    found = polytrack.runs(home=home)
    assert found and all(r.status == "succeeded" for r in found)
    assert all(r.metrics for r in found)
    for run in found:
        snapshot = run.snapshot()
        assert snapshot.code is not None and snapshot.code.notebook == str(path)
        assert snapshot.environment is not None
        assert read_cells(Path(run.path))
