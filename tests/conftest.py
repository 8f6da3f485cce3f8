"""Shared fixtures: a fresh store per test, and no global state or threads left behind."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from polytrack import _state


@pytest.fixture(scope="session")
def _cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("polytrack-cache")


@pytest.fixture(autouse=True)
def _clean_state(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, _cache_dir: Path
) -> Iterator[None]:
    # Never touch the user's real store, whatever a test forgets to pass.
    monkeypatch.setenv("POLYTRACK_HOME", str(tmp_path / "default-home"))
    # Nor its caches; one per session, so the package list is read once.
    monkeypatch.setenv("POLYTRACK_CACHE_DIR", str(_cache_dir))
    # Outside the project's own repository: the git capture of a run started by a test
    # sees the test's directory, not the checkout's uncommitted changes.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("POLYTRACK_PROJECT", raising=False)
    monkeypatch.delenv("POLYTRACK_MODE", raising=False)
    # Nor the user's sync target: a test syncs only where it says.
    monkeypatch.delenv("POLYTRACK_BACKEND", raising=False)
    monkeypatch.delenv("POLYTRACK_ARTIFACT_STORE", raising=False)
    monkeypatch.setenv("POLYTRACK_CONFIG", str(tmp_path / "no-config.toml"))
    yield
    _state.reset()
    leftover = [t.name for t in threading.enumerate() if t.name.startswith("polytrack-")]
    assert not leftover, f"threads outlived the test: {leftover}"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def _speedups_built() -> bool:
    try:
        import polytrack._speedups  # noqa: F401
    except ImportError:
        return False
    return True


# CI sets this (through tox, from CI=true): there the C path must be built and tested.
_REQUIRE_SPEEDUPS = os.environ.get("POLYTRACK_TEST_REQUIRE_SPEEDUPS", "").lower() in (
    "1",
    "true",
    "yes",
)


@pytest.fixture(params=["c", "python"])
def hot_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the C hot path and again with the pure-Python one."""
    if request.param == "c" and not _speedups_built():
        if _REQUIRE_SPEEDUPS:
            pytest.fail("polytrack._speedups was not compiled")
        pytest.skip("polytrack._speedups not compiled here")
    monkeypatch.setenv("POLYTRACK_SPEEDUPS", "1" if request.param == "c" else "0")
    return str(request.param)
