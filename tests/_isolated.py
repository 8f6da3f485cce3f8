"""An environment like conftest's autouse fixture makes, for module-scoped fixtures (which
run before it): no real store, config or cache, and a working directory outside the
checkout."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def isolated(root: Path) -> Iterator[None]:
    """Within the block, polytrack sees only `root`'s own default home, config and cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POLYTRACK_HOME", str(root / "default-home"))
        patch.setenv("POLYTRACK_CONFIG", str(root / "no-config.toml"))
        patch.setenv("POLYTRACK_CACHE_DIR", str(root / "cache"))
        for name in ("POLYTRACK_PROJECT", "POLYTRACK_MODE", "POLYTRACK_BACKEND"):
            patch.delenv(name, raising=False)
        patch.chdir(root)
        yield
