"""Polyaxon's run paths (`get_artifacts_path`, `get_outputs_path`, `get_tensorboard_path`)
as real directories of the run in polytrack's store, and the outputs kept at the end.

Layout, under the run's own directory (`<home>/runs/<id>/`, which `polytrack gc` and
`runs rm` remove with the run):

    files/                  Polyaxon's artifacts path, the run's root for the user's files
    files/outputs/          its outputs path: checkpoints, reports, anything the script keeps
    files/outputs/tensorboard/   its default TensorBoard path

What the script wrote under the outputs path is recorded, when the run finishes (however
it finishes: `end()`, the end of the script, an uncaught exception, a stop signal), as
the run's artifact "outputs", a directory: content-addressed in the blob store, listed by
`polytrack artifacts`, downloaded with `run.artifact("outputs").download(...)` and synced
with the run, as W&B's files and Polyaxon's outputs are. The directory itself stays under
the run's directory too, so a run continued later (`run_uuid=`, or `polytrack run` with
retries) finds its checkpoints where it left them. Files written under the artifacts path
but outside `outputs/` stay on disk there and are not recorded.

A disabled run (`no_op`, `POLYTRACK_MODE=disabled`) has paths under a temporary
directory of the process; nothing is kept.
"""

from __future__ import annotations

import os
import tempfile
import weakref
from pathlib import Path
from typing import Final

from polytrack.run import DisabledRun, Run

ARTIFACTS_DIR: Final = "files"
OUTPUTS_DIR: Final = "outputs"
OUTPUTS_ARTIFACT: Final = "outputs"

# Runs whose outputs are kept at their finish already (a hook is registered once per run).
_keeping: weakref.WeakSet[Run] = weakref.WeakSet()


def artifacts_root(run: Run | DisabledRun) -> Path:
    """The run's artifacts path (created)."""
    if isinstance(run, DisabledRun):
        root = Path(tempfile.gettempdir()) / f"polytrack-disabled-{os.getpid()}"
    else:
        root = run.dir / ARTIFACTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    return root


def outputs_root(run: Run | DisabledRun) -> Path:
    """The run's outputs path (created); what is written there is kept at its finish."""
    outputs = artifacts_root(run) / OUTPUTS_DIR
    outputs.mkdir(parents=True, exist_ok=True)
    if isinstance(run, Run) and run not in _keeping:
        _keeping.add(run)
        run.before_finish(lambda: keep_directory(run, outputs, OUTPUTS_ARTIFACT, kind=None))
    return outputs


def keep_directory(run: Run, directory: Path, name: str, *, kind: str | None) -> None:
    """Record `directory` as the artifact `name` if it holds a file (an empty one, or one
    removed meanwhile, is not worth a record)."""
    if directory.is_dir() and any(path.is_file() for path in directory.rglob("*")):
        run.log_artifact(directory, name, kind=kind)


def get_artifacts_path(
    run: Run | DisabledRun,
    /,
    rel_path: str | None = None,
    ensure_path: bool = False,
    is_dir: bool = False,
    use_store_path: bool = False,
) -> str:
    """The run's artifacts path, or `rel_path` under it: a directory of the run in the
    store (`<home>/runs/<id>/files`). With `ensure_path`, `rel_path`'s parent is created
    (all of it with `is_dir`). `use_store_path` is ignored: the store is this directory.

    Example:
        >>> tracking.get_artifacts_path("plots", ensure_path=True, is_dir=True)
    """
    return _under(artifacts_root(run), rel_path, ensure=ensure_path, is_dir=is_dir)


def get_outputs_path(
    run: Run | DisabledRun,
    /,
    rel_path: str | None = None,
    ensure_path: bool = True,
    is_dir: bool = False,
    use_store_path: bool = False,
) -> str:
    """The run's outputs path (`<artifacts path>/outputs`), or `rel_path` under it: what
    is written there is recorded as the run's artifact "outputs" when the run finishes.
    With `ensure_path` (the default, as Polyaxon's), `rel_path`'s parent is created (all
    of it with `is_dir`). `use_store_path` is ignored.

    Example:
        >>> torch.save(model.state_dict(), tracking.get_outputs_path("model.pt"))
    """
    return _under(outputs_root(run), rel_path, ensure=ensure_path, is_dir=is_dir)


def get_tensorboard_path(
    run: Run | DisabledRun, /, rel_path: str = "tensorboard", use_store_path: bool = False
) -> str:
    """A directory for TensorBoard event files under the outputs path (created), kept
    with the outputs; `use_store_path` is ignored.

    Example:
        >>> writer = SummaryWriter(tracking.get_tensorboard_path())
    """
    return _under(outputs_root(run), rel_path, ensure=True, is_dir=True)


def log_tensorboard_ref(
    run: Run | DisabledRun,
    /,
    path: str,
    name: str = "tensorboard",
    is_input: bool = False,
    rel_path: str | None = None,
) -> None:
    """Keep a TensorBoard directory with the run: one under the outputs path is kept with
    the outputs; another is recorded as the artifact `name` (kind "tensorboard") when
    the run finishes, once its event files are written. `is_input` and `rel_path` are
    ignored.

    Example:
        >>> tracking.log_tensorboard_ref("runs/exp1")
    """
    if isinstance(run, DisabledRun):
        return
    directory = Path(path).resolve()
    outputs = (artifacts_root(run) / OUTPUTS_DIR).resolve()
    if directory == outputs or outputs in directory.parents:
        outputs_root(run)  # kept with the outputs
        return
    run.before_finish(lambda: keep_directory(run, directory, name, kind="tensorboard"))


def _under(root: Path, rel_path: str | None, *, ensure: bool, is_dir: bool) -> str:
    """`rel_path` under `root` as Polyaxon's `check_or_create_path` makes it."""
    if not rel_path:
        return str(root)
    path = root / rel_path
    if ensure:
        (path if is_dir else path.parent).mkdir(parents=True, exist_ok=True)
    return str(path)
