"""Every notebook in notebooks/ runs top to bottom in a real Jupyter kernel."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import polytrack

nbclient = pytest.importorskip("nbclient", reason="the notebooks tox env installs nbclient")
nbformat = pytest.importorskip("nbformat")

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_and_records(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The notebook executes without error and its run lands in the store, succeeded, with
    its snapshot (code recorded as a notebook) and the output its cells printed."""
    home = tmp_path / "home"
    monkeypatch.setenv("POLYTRACK_HOME", str(home))  # the kernel inherits the environment
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
        assert snapshot.code is not None and snapshot.code.notebook is not None
        assert snapshot.environment is not None
        assert any(line.text.startswith("step ") for line in run.logs())
