"""The media tests' one way to log into a real run and read it back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import polytrack


def logged(home: Path, log: Callable[[Any], None], **init: Any) -> Any:
    """Log with `log(run)` in a real run on `home`, finish, and read the run back."""
    run = polytrack.init(dir=home, capture=False, **init)
    try:
        log(run)
    finally:
        run.finish()
    return polytrack.get_run(run.id, home=home)
