"""The notebook a run was started from: its path, the cells the kernel ran, its `.ipynb`.

Where a kernel learns its notebook's path, in the order tried (the first answer wins):

1. VS Code puts `__vsc_ipynb_file__` in the user namespace;
2. papermill, asked to (`--inject-input-path`), injects the `PAPERMILL_INPUT_PATH`
   parameter, a variable in the user namespace;
3. JupyterLab and Notebook 7 (jupyter_server >= 2) set `JPY_SESSION_NAME` in the kernel's
   environment, and ipykernel copies it to `__session__`;
4. a runner that names the notebook on its command line: `jupyter execute nb.ipynb`
   (nbclient), `jupyter nbconvert --execute nb.ipynb`, `papermill in.ipynb out.ipynb`:
   the first `.ipynb` argument of the kernel's parent process, from the parent's cwd;
5. an older Jupyter server: its sessions API, asked which session holds this kernel
   (the id in the kernel's connection file). Bounded: at most `SERVER_BUDGET` seconds in
   all, and only servers whose runtime file is on this machine.

Failing all, a Jupyter kernel records "<notebook>".

The cells: IPython keeps every cell the kernel ran, as typed (`input_hist_raw`, what
`In` holds before magics are translated). `NotebookCapture` writes them to
`cells-<attempt>.json` in the run's directory after each cell and when the run ends, so a
kernel that dies keeps the cells up to its last; each cell is redacted once (secrets in
code are as common as in argv). The `.ipynb` as last saved is copied beside it
(`notebook-<attempt>.ipynb`, redacted) when the path is known and the file is small
enough. `read_cells` and `read_notebook` read them back.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from attrs import frozen

from polytrack.redact import redact_text

__all__ = [
    "CELLS_FILE",
    "MAX_NOTEBOOK_BYTES",
    "NOTEBOOK_FILE",
    "SERVER_BUDGET",
    "Cell",
    "NotebookCapture",
    "ipython_shell",
    "notebook_path",
    "read_cells",
    "read_notebook",
]

CELLS_FILE: Final = "cells-{attempt:03d}.json"
NOTEBOOK_FILE: Final = "notebook-{attempt:03d}.ipynb"
# A notebook with images in its outputs runs to megabytes: larger ones are not copied.
MAX_NOTEBOOK_BYTES: Final = 8 * 1024 * 1024
# The most `init()` spends asking Jupyter servers for the notebook's path.
SERVER_BUDGET: Final = 0.1


@frozen
class Cell:
    """One cell as the kernel ran it: its execution count and its source (redacted)."""

    execution_count: int
    source: str


def ipython_shell() -> Any | None:
    """The running IPython shell, or None; imports nothing where IPython is not loaded."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    get = getattr(ipython, "get_ipython", None)
    try:
        return get() if callable(get) else None
    except Exception:  # an IPython half torn down at exit
        return None


def notebook_path(environ: Mapping[str, str], shell: Any | None = None) -> str | None:
    """The running notebook's absolute path, "<notebook>" in a Jupyter kernel that cannot
    tell, None outside a notebook (a terminal IPython included). See the module docstring
    for where it is looked for."""
    shell = ipython_shell() if shell is None else shell
    if shell is None:
        return None
    namespace = getattr(shell, "user_ns", {})
    for candidate in (
        namespace.get("__vsc_ipynb_file__"),
        namespace.get("PAPERMILL_INPUT_PATH"),
        environ.get("JPY_SESSION_NAME"),
        namespace.get("__session__"),
    ):
        if isinstance(candidate, str) and candidate.endswith(".ipynb"):
            return os.path.abspath(candidate)
    if type(shell).__name__ != "ZMQInteractiveShell":
        return None  # a terminal IPython: no notebook
    if not _asked:  # the parent and the server answer the same for the kernel's life
        _asked.append(_from_parent() or _from_server(environ))
    return _asked[0] or "<notebook>"


_asked: list[str | None] = []  # this kernel's answer from its parent or server, once known


def _from_parent() -> str | None:
    """The first `.ipynb` argument of the process that started this kernel."""
    try:
        import psutil

        parent = psutil.Process(os.getppid())
        args, cwd = parent.cmdline(), parent.cwd()
    except Exception:  # gone, or not ours to read
        return None
    # Only runners: a server started as `jupyter notebook a.ipynb` runs other notebooks too.
    if not any(word in arg for arg in args[:3] for word in _RUNNERS):
        return None
    for arg in args[1:]:
        if arg.endswith(".ipynb") and not arg.startswith("-"):
            return os.path.normpath(os.path.join(cwd, arg))
    return None


_RUNNERS: Final = ("papermill", "nbconvert", "execute", "nbclient")


def _from_server(environ: Mapping[str, str]) -> str | None:
    """Ask the Jupyter servers of this machine which session runs this kernel."""
    deadline = time.monotonic() + SERVER_BUDGET
    kernel_id = _kernel_id()
    if kernel_id is None:
        return None
    try:
        from jupyter_core.paths import jupyter_runtime_dir

        runtime = Path(jupyter_runtime_dir())
        servers = sorted(runtime.glob("jpserver-*.json")) + sorted(runtime.glob("nbserver-*.json"))
    except Exception:
        return None
    import urllib.request

    for info_file in servers:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        try:
            info = json.loads(info_file.read_text("utf-8"))
            url = str(info["url"]).rstrip("/") + "/api/sessions"
            request = urllib.request.Request(
                url, headers={"Authorization": f"token {info.get('token', '')}"}
            )
            with urllib.request.urlopen(request, timeout=remaining) as response:
                sessions = json.loads(response.read(1 << 20))
            root = info.get("root_dir") or info.get("notebook_dir") or ""
            for session in sessions:
                if session.get("kernel", {}).get("id") == kernel_id:
                    path = session.get("path") or session.get("notebook", {}).get("path")
                    if isinstance(path, str) and path.endswith(".ipynb"):
                        return os.path.join(os.path.expanduser(root), path)
        except Exception:  # unreachable, refused, not JSON: the next server
            continue
    return None


def _kernel_id() -> str | None:
    """The kernel's id, from its connection file's name (`kernel-<id>.json`)."""
    connect = sys.modules.get("ipykernel.connect")
    try:
        name = os.path.basename(connect.get_connection_file()) if connect else ""
    except Exception:
        return None
    if name.startswith("kernel-") and name.endswith(".json"):
        return name[len("kernel-") : -len(".json")]
    return None


class NotebookCapture:
    """Keeps the cells the kernel runs, and the `.ipynb`, in the run's directory.

    Owned by the run: `stop()` (at `finish()`) writes the cells a last time and stops
    listening to the kernel.
    """

    def __init__(self, shell: Any, directory: Path, attempt: int, notebook: str | None) -> None:
        self._shell = shell
        self._cells_path = directory / CELLS_FILE.format(attempt=attempt)
        self._notebook = notebook
        self._redacted: list[str] = []  # cell i's source, redacted once
        self._copy_to = directory / NOTEBOOK_FILE.format(attempt=attempt)

    def start(self) -> None:
        """Copy the notebook, write the cells so far, and write them after each cell."""
        if self._notebook is not None and self._notebook.endswith(".ipynb"):
            with contextlib.suppress(OSError, UnicodeDecodeError):
                source = Path(self._notebook)
                if source.stat().st_size <= MAX_NOTEBOOK_BYTES:
                    text = redact_text(source.read_text("utf-8"))
                    _write(self._copy_to, text)
        self.write()
        self._shell.events.register("post_run_cell", self._after_cell)

    def _after_cell(self, result: object = None) -> None:
        with contextlib.suppress(Exception):  # never into the user's cell: the next tries
            self.write()

    def write(self) -> None:
        """Write every cell the kernel ran so far."""
        history = getattr(getattr(self._shell, "history_manager", None), "input_hist_raw", None)
        if not isinstance(history, list):
            history = self._shell.user_ns.get("In") or []
        for source in history[len(self._redacted) :]:
            self._redacted.append(redact_text(source) if isinstance(source, str) else "")
        cells = [
            {"execution_count": n, "source": source}
            for n, source in enumerate(self._redacted)
            if n > 0 and source.strip()
        ]
        text = json.dumps({"notebook": self._notebook, "cells": cells}, ensure_ascii=False)
        _write(self._cells_path, text)

    def stop(self) -> None:
        with contextlib.suppress(ValueError):  # not registered (start failed half way)
            self._shell.events.unregister("post_run_cell", self._after_cell)
        with contextlib.suppress(Exception):  # an IPython torn down at exit
            self.write()


def _write(path: Path, text: str) -> None:
    """Replace `path` whole: a reader never sees half a file."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, "utf-8")
    os.replace(partial, path)


def read_cells(directory: Path) -> list[Cell]:
    """The cells the run's kernel ran, every attempt in order; [] where none were kept
    (a script, or the code capture was off). A damaged file is skipped."""
    cells: list[Cell] = []
    for path in sorted(directory.glob("cells-[0-9][0-9][0-9].json")):
        try:
            data = json.loads(path.read_text("utf-8"))
            cells.extend(
                Cell(int(cell["execution_count"]), str(cell["source"])) for cell in data["cells"]
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return cells


def read_notebook(directory: Path) -> str | None:
    """The `.ipynb` kept with the run (its last attempt's), as text; None if none was."""
    kept = sorted(directory.glob("notebook-[0-9][0-9][0-9].ipynb"))
    if not kept:
        return None
    try:
        return kept[-1].read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
