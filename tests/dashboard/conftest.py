"""The dashboard in real headless Chromium: a `polytrack ui` process per test module, and
one browser per module, both stopped at its end.

Debian's `chromium` and `chromium-driver` are required (the tox env runs
`scripts/install-chromium` first); without them these tests fail, with that message,
rather than skip: a skipped browser test would pass CI while the dashboard is untested.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from ._browser import UiServer, artifacts_dir, chromium_paths


@pytest.fixture(scope="module")
def start_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., UiServer]]:
    """Start `polytrack ui` for a home (extra CLI args allowed); all stopped after the module."""
    started: list[UiServer] = []

    def start(home: Path, *args: str) -> UiServer:
        server = UiServer(home, tmp_path_factory.mktemp("ui"), *args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """Headless Chromium kept off the network, with a fresh profile."""
    binary, driver_path = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return artifacts_dir(tmp_path_factory)
