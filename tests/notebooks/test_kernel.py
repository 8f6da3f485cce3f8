"""What polytrack does inside a real Jupyter kernel (nbclient + ipykernel): the notebook's
path and the cells it ran are kept, re-running the init cell, exceptions in cells, the
kernel's exit, rich display."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import polytrack
from _cli import cli
from polytrack.capture.notebook import read_cells, read_notebook

nbclient = pytest.importorskip("nbclient", reason="the notebooks tox env installs nbclient")
nbformat = pytest.importorskip("nbformat")

pytestmark = pytest.mark.slow


def _notebook(*sources: str) -> object:
    return nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source) for source in sources],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    )


def _execute(
    notebook: object,
    cwd: Path,
    home: Path,
    *,
    allow_errors: bool = False,
    km: object | None = None,
    **env: str,
) -> object:
    """Run every cell in a fresh kernel, which then shuts down (its exit hooks run)."""
    client = nbclient.NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(cwd)}},
        km=km,
    )
    # A kernel manager of the test's own is shut down by the test; its client here.
    client.execute(env={**os.environ, "POLYTRACK_HOME": str(home), **env}, cleanup_kc=True)
    return notebook


def _outputs(cell: object) -> str:
    """What a cell printed, and the text of what it displayed."""
    return "".join(
        o.get("text", "") + o.get("data", {}).get("text/plain", "")
        for o in cell["outputs"]  # type: ignore[index]
    )


def test_vscode_and_papermill_paths_and_cells_are_kept(tmp_path: Path) -> None:
    """VS Code's `__vsc_ipynb_file__` names the notebook; the cells run before and after
    init() are kept, redacted, and the kernel's exit finishes the run (succeeded)."""
    home, saved = tmp_path / "home", tmp_path / "train.ipynb"
    token = "ghp_" + "a1B2" * 9
    nbformat.write(_notebook("x = 1"), saved)
    _execute(
        _notebook(
            f"__vsc_ipynb_file__ = {str(saved)!r}\nimport polytrack",
            "run = polytrack.init(project='nb', capture={'git': False, 'system': False})",
            f"polytrack.log_metrics(loss=0.5, step=0)\nkey = {token!r}",
        ),
        tmp_path,
        home,
    )
    (run,) = polytrack.runs(home=home)
    assert run.status == "succeeded"  # nobody called finish(): the kernel's exit did
    code = run.snapshot().code
    assert code is not None and code.notebook == str(saved)
    cells = read_cells(Path(run.path))
    assert [c.execution_count for c in cells] == [1, 2, 3]
    assert "polytrack.log_metrics(loss=0.5" in cells[2].source
    assert token not in cells[2].source
    kept = read_notebook(Path(run.path))
    assert kept is not None and "".join(json.loads(kept)["cells"][0]["source"]) == "x = 1"


def test_papermill_parameter_and_jupyter_session_name(tmp_path: Path) -> None:
    """papermill's injected `PAPERMILL_INPUT_PATH` parameter, and else Jupyter's
    `JPY_SESSION_NAME`, name the notebook."""
    home = tmp_path / "home"
    _execute(
        _notebook(
            "PAPERMILL_INPUT_PATH = 'in/exp.ipynb'\nimport polytrack",
            "polytrack.init(project='pm', capture={'git': False, 'system': False})",
            "del PAPERMILL_INPUT_PATH\n"
            "polytrack.init(project='jpy', capture={'git': False, 'system': False})",
            "polytrack.log_metrics(loss=1.0, step=0)",
        ),
        tmp_path,
        home,
        JPY_SESSION_NAME=str(tmp_path / "lab.ipynb"),
    )
    notebooks = {r.project: r.snapshot().code.notebook for r in polytrack.runs(home=home)}  # type: ignore[union-attr]
    # The first run recorded nothing: the second init() deleted it.
    assert notebooks == {"jpy": str(tmp_path / "lab.ipynb")}


def test_jupyter_execute_records_the_path(tmp_path: Path) -> None:
    """Under nbclient's own runner (`jupyter execute nb.ipynb`), the notebook's path is
    read from the runner's command line."""
    home, path = tmp_path / "home", tmp_path / "exec.ipynb"
    nbformat.write(
        _notebook(
            "import polytrack\n"
            "polytrack.init(capture={'git': False, 'system': False})\n"
            "polytrack.log_metrics(loss=1.0, step=0)"
        ),
        path,
    )
    jupyter = Path(sys.executable).with_name("jupyter-execute")
    subprocess.run(
        [str(jupyter), path.name],
        cwd=tmp_path,
        env={**os.environ, "POLYTRACK_HOME": str(home)},
        check=True,
        capture_output=True,
        timeout=120,
    )
    (run,) = polytrack.runs(home=home)
    assert run.snapshot().code.notebook == str(path)  # type: ignore[union-attr]
    assert run.status == "succeeded"


def test_rerun_init_cell_exception_and_display(tmp_path: Path) -> None:
    """Re-running the init cell finishes the previous run with a notice and deletes it if
    it recorded nothing; an exception in a cell leaves the run running; a run displays
    as escaped HTML."""
    home = tmp_path / "home"
    init = (
        "run = polytrack.init(project='re', name='<script>x</script>', params={'lr': 0.1},"
        " capture={'git': False, 'system': False})"
    )
    notebook = _execute(
        _notebook(
            "import polytrack",
            init,
            init,  # the same cell again: the first run recorded nothing
            "run.log_metrics(loss=0.5, step=0)",
            init,  # again: the second run recorded a metric, it stays
            "raise ValueError('boom')",
            "print(run.status)",
            "run",
            "polytrack.runs()",
        ),
        tmp_path,
        home,
        allow_errors=True,
    )
    cells = notebook["cells"]  # type: ignore[index]
    assert "deleted it: it recorded nothing" in _outputs(cells[2])
    assert "finished it: succeeded" in _outputs(cells[4])
    assert _outputs(cells[6]).strip() == "running"
    html = json.loads(json.dumps(cells[7]["outputs"][0]["data"]))["text/html"]
    assert "&lt;script&gt;" in html and "<script>" not in html
    listing = cells[8]["outputs"][0]["data"]["text/html"]
    assert "&lt;script&gt;" in listing and "<script>" not in listing
    found = {r.id: r for r in polytrack.runs(home=home)}
    assert len(found) == 2
    assert sorted(r.status for r in found.values()) == ["succeeded", "succeeded"]


def test_reproduce_exports_the_cells_as_a_script_and_a_notebook(tmp_path: Path) -> None:
    """`reproduce --export script` writes the cells the kernel ran (magics commented
    out), which Python runs as they ran; `--export notebook` writes them as a notebook
    that a kernel runs top to bottom."""
    home = tmp_path / "home"
    _execute(
        _notebook(
            "%config InlineBackend.figure_format = 'png'\nimport polytrack",
            "run = polytrack.init(project='exp', capture={'git': False, 'system': False})",
            "total = sum(range(4))\nrun.log_metrics(total=total, step=0)",
        ),
        tmp_path,
        home,
    )
    (run,) = polytrack.runs(home=home)
    script, notebook = tmp_path / "again.py", tmp_path / "again.ipynb"
    for fmt, path in (("script", script), ("notebook", notebook)):
        done = cli("--home", str(home), "reproduce", run.id, "--export", fmt, "-o", str(path))
        assert done.code == 0, done.err
    text = script.read_text()
    assert "# %% In[3]" in text and "# %config InlineBackend" in text
    env = {**os.environ, "POLYTRACK_HOME": str(home)}
    subprocess.run([sys.executable, str(script)], env=env, check=True, timeout=120)
    _execute(nbformat.read(notebook, as_version=4), tmp_path, home)
    again = [r for r in polytrack.runs(home=home) if r.id != run.id]
    assert len(again) == 2
    assert all(r.metrics["total"].last == 6.0 for r in again)
    # The run the script made ran no notebook: there is nothing to export.
    (scripted,) = [r for r in again if r.snapshot().code.notebook is None]  # type: ignore[union-attr]
    refused = cli("--home", str(home), "reproduce", scripted.id, "--export", "script")
    assert refused.code == 1 and "kept no notebook code" in refused.err


def test_an_older_jupyter_server_names_the_notebook(tmp_path: Path) -> None:
    """Where nothing else tells, the Jupyter server in the runtime directory is asked
    (with its token) which session runs this kernel, by the id in its connection file."""
    import http.server
    import threading
    import uuid

    from jupyter_client import KernelManager

    kernel_id = str(uuid.uuid4())
    sessions = json.dumps([{"path": "sub/old.ipynb", "kernel": {"id": kernel_id}}]).encode()

    class Sessions(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = self.path == "/api/sessions" and self.headers["Authorization"] == "token t0k"
            self.send_response(200 if ok else 403)
            self.end_headers()
            self.wfile.write(sessions if ok else b"[]")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sessions)
    thread = threading.Thread(target=server.serve_forever, name="test-jupyter-server")
    thread.start()
    runtime, home = tmp_path / "runtime", tmp_path / "home"
    runtime.mkdir()
    info = {"url": f"http://127.0.0.1:{server.server_port}/", "token": "t0k"}
    (runtime / "jpserver-1.json").write_text(json.dumps({**info, "root_dir": str(tmp_path)}))
    km = KernelManager(
        kernel_name="python3", connection_file=str(runtime / f"kernel-{kernel_id}.json")
    )
    try:
        _execute(
            _notebook(
                "import polytrack\n"
                "polytrack.init(capture={'git': False, 'system': False})\n"
                "polytrack.log_metrics(loss=1.0, step=0)\n"
                "polytrack.finish()"
            ),
            tmp_path,
            home,
            km=km,
            JUPYTER_RUNTIME_DIR=str(runtime),
        )
    finally:
        km.shutdown_kernel(now=True)
        server.shutdown()
        server.server_close()
        thread.join()
    (run,) = polytrack.runs(home=home)
    assert run.snapshot().code.notebook == str(tmp_path / "sub" / "old.ipynb")  # type: ignore[union-attr]


def test_a_media_record_displays_itself_inline(tmp_path: Path) -> None:
    """In a real kernel, a media item shown as a cell's value renders as HTML: the image
    as an inline PNG with its (escaped) caption, a histogram as an inline SVG."""
    home = tmp_path / "home"
    notebook = _execute(
        _notebook(
            "import numpy as np, polytrack\n"
            "run = polytrack.init(project='media', capture={'git': False, 'system': False})",
            "run.log_image('samples', np.zeros((8, 8, 3), np.uint8), step=0,"
            " caption='<b>zero</b>')\n"
            "run.log_histogram('weights', np.arange(100.0), step=0)",
            "run.media('samples')[-1]",
            "run.media('weights')[-1]",
        ),
        tmp_path,
        home,
    )
    cells = notebook["cells"]  # type: ignore[index]
    image = cells[2]["outputs"][0]["data"]["text/html"]
    assert "data:image/png;base64," in image
    assert "&lt;b&gt;zero&lt;/b&gt;" in image and "<b>zero" not in image
    assert "<svg" in cells[3]["outputs"][0]["data"]["text/html"]
