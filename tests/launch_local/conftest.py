"""Fixtures of the local runner's tests: an environment with a private store, and
Polyaxonfiles whose commands are tiny Python scripts run by this interpreter."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    """What `polytrack run --local` and its processes run in: a private store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYTRACK_RUN")}
    env.update(
        HOME=str(tmp_path),
        POLYTRACK_HOME=str(tmp_path / "home"),
        POLYTRACK_HEARTBEAT_INTERVAL="0.5",
    )
    return env


@pytest.fixture
def polyaxonfile(tmp_path: Path) -> Callable[..., str]:
    """Write a Polyaxonfile whose job runs `script` with this Python; returns its path."""

    def write(name: str, document: dict[str, Any]) -> str:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"version": 1.1, **document}, sort_keys=False))
        return str(path)

    return write
