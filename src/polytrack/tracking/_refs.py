"""Polyaxon's lineage references (`log_file_ref`, `log_dir_ref`, `log_model_ref`,
`log_artifact_ref`) and `log_env`, onto polytrack's records.

Polyaxon's ref is a pointer to a file its artifacts store holds already; polytrack has
no such store to point into, so a ref is made real: what the run produced
(`is_input=False`, Polyaxon's default) is kept as an artifact (a content-addressed copy,
`Run.log_artifact`, `Run.log_model` for models), what it read (`is_input=True`) is
recorded as a data ref (its content hash, `Run.log_data_ref`), as `log_data_ref` does.
`hash`, `content`, `rel_path` and `skip_hash_calculation` are ignored: polytrack hashes
the bytes itself.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
from typing import Any

from polytrack.run import DisabledRun, Run
from polytrack.tracking._common import default_name
from polytrack.tracking._paths import outputs_root


def log_file_ref(
    run: Run | DisabledRun,
    /,
    path: str,
    name: str | None = None,
    hash: str | None = None,
    content: Any = None,
    summary: dict[str, Any] | None = None,
    is_input: bool = False,
    rel_path: str | None = None,
    skip_hash_calculation: bool = False,
) -> None:
    """Keep a file the run wrote as its artifact `name` (default: the file name up to
    its first dot, as Polyaxon's), with `summary` as metadata; a file it read
    (`is_input`) is recorded as a data ref instead.

    Raises:
        InvalidInputError: no file at `path`; a name an artifact cannot have.

    Example:
        >>> tracking.log_file_ref(path="outputs/report.json", name="report")
    """
    _ref(run, path, name, kind="file", summary=summary, is_input=is_input)


def log_dir_ref(
    run: Run | DisabledRun,
    /,
    path: str,
    name: str | None = None,
    hash: str | None = None,
    summary: dict[str, Any] | None = None,
    is_input: bool = False,
    rel_path: str | None = None,
    skip_hash_calculation: bool = False,
) -> None:
    """Keep a directory the run wrote (its files, recursively) as its artifact `name`
    (default: the directory's name); one it read (`is_input`) is recorded as a data ref.

    Example:
        >>> tracking.log_dir_ref(path="outputs/plots")
    """
    _ref(run, path, name, kind="directory", summary=summary, is_input=is_input)


def log_model_ref(
    run: Run | DisabledRun,
    /,
    path: str,
    name: str | None = None,
    framework: str | None = None,
    summary: dict[str, Any] | None = None,
    is_input: bool = False,
    rel_path: str | None = None,
    skip_hash_calculation: bool = False,
) -> None:
    """Keep a model the run saved (`Run.log_model`, kind "model"); a model it loaded
    (`is_input`) is recorded as a data ref.

    Example:
        >>> tracking.log_model_ref("model.joblib", framework="scikit-learn")
    """
    if is_input:
        run.log_data_ref(name or default_name(path) or os.fspath(path), path, "input")
        return
    run.log_model(path, name or default_name(path), framework=framework, metadata=summary)


def log_artifact_ref(
    run: Run | DisabledRun,
    /,
    path: str,
    kind: Any,
    name: str | None = None,
    hash: str | None = None,
    content: Any = None,
    summary: dict[str, Any] | None = None,
    is_input: bool = False,
    rel_path: str | None = None,
    skip_hash_calculation: bool = False,
) -> None:
    """Keep a file or directory the run wrote as an artifact of Polyaxon's `kind` (a
    `V1ArtifactKind` or its value: "model" goes to `Run.log_model`); one it read
    (`is_input`) is recorded as a data ref.

    Example:
        >>> tracking.log_artifact_ref("outputs/metrics.csv", kind="csv", name="metrics")
    """
    label = str(getattr(kind, "value", kind))
    if label == "model" and not is_input:
        log_model_ref(run, path, name, summary=summary)
        return
    _ref(run, path, name, kind=label, summary=summary, is_input=is_input)


def log_env(
    run: Run | DisabledRun, /, rel_path: str | None = None, content: dict[str, Any] | None = None
) -> None:
    """Write the environment (or `content`) as JSON under the outputs path (`rel_path`,
    default "env.json"), kept with the outputs. polytrack records the environment at
    `init()` already (`track_env`): this is for a script that reads the file back.

    Example:
        >>> tracking.log_env()
    """
    if isinstance(run, DisabledRun):
        return
    found = content or {
        "pid": os.getpid(),
        "hostname": socket.gethostname(),
        "os": platform.platform(),
        "system": platform.system(),
        "python_version": platform.python_version(),
        "python_executable": sys.executable,
    }
    path = outputs_root(run) / (rel_path or "env.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(found, default=str, sort_keys=True), encoding="utf-8")


def _ref(
    run: Run | DisabledRun,
    path: str,
    name: str | None,
    *,
    kind: str,
    summary: dict[str, Any] | None,
    is_input: bool,
) -> None:
    """A file or directory kept (an output) or hashed (an input)."""
    name = name or default_name(path)
    if is_input:
        run.log_data_ref(name or os.fspath(path), path, "input")
        return
    run.log_artifact(path, name, kind=kind, metadata=summary)
