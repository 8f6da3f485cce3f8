"""What Polyaxon's forms share: its default names and messages, and warning once."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any, Final

from polytrack import _state
from polytrack.errors import TrackingWarning

# Polyaxon's default status messages: recorded only when the caller chose another.
SUCCEEDED: Final = "Operation has succeeded"
STOPPED: Final = "Operation is stopped"


def truthy(value: object) -> bool:
    """Polyaxon takes its flags as env-var style strings too ("false", "0")."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off")
    return bool(value)


def status_message(reason: str | None, message: str | None, default: str | None) -> str | None:
    """`reason: message` as one status message; Polyaxon's default message is dropped."""
    if message == default:
        message = None
    parts = [str(part) for part in (reason, message) if part]
    return ": ".join(parts) or None


def default_name(path: str | os.PathLike[str]) -> str | None:
    """Polyaxon's default name: the file name up to its first dot ("model.pt" -> "model")."""
    base = os.path.basename(os.path.normpath(os.fsdecode(path)))
    return base.split(".")[0] or None  # ".hidden": polytrack's default, the whole name


def metadata(summary: Mapping[str, Any] | None, step: int | None) -> dict[str, Any] | None:
    """Polyaxon's `summary`, with the `step` when given, as an artifact's metadata."""
    found = dict(summary or {})
    if step is not None:
        found["step"] = step
    return found or None


def cannot_reset(what: str, kept: str) -> None:
    """Say (once) that `reset=True` cannot remove what a run recorded."""
    warn_once(
        f"tracking-reset-{what}",
        f"{what}(reset=True): polytrack never removes recorded {kept}; the new values are "
        "recorded and earlier ones stay",
        stacklevel=5,
    )


def no_run(what: str) -> None:
    """Say (once) that a call made before `init()` records nothing."""
    warn_once(
        f"no-run:{what}",
        f"polytrack.tracking.{what}() called before tracking.init(); nothing is recorded",
    )


def warn_once(what: str, message: str, *, stacklevel: int = 4) -> None:
    """Warn the first time in this process; `stacklevel` counts the frames up to the
    user's call (4: through `no_run` and the public function)."""
    if _state.first_time(what):
        warnings.warn(message, TrackingWarning, stacklevel=stacklevel)
