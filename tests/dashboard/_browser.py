"""Helpers of the browser tests: the `polytrack ui` process, waits, screenshots."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

# Generous: a busy 2-core CI machine; the conditions waited on are what makes them pass.
WAIT_S = 30.0
_URL_LINE = re.compile(r"polytrack dashboard of .* at (http://\S+)")
_TOKEN_LINE = re.compile(r"\?token=([A-Za-z0-9_\-]+)")
_CHROMIUM = ("chromium", "chromium-browser")


def chromium_paths() -> tuple[str, str]:
    """Debian's Chromium and its driver, or a test failure that says how to install them."""
    browser = next((p for p in map(shutil.which, _CHROMIUM) if p), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        missing = [n for n, p in (("chromium", browser), ("chromedriver", driver)) if p is None]
        pytest.fail(
            f"the dashboard tests need Debian's Chromium; missing: {', '.join(missing)}. "
            "Install them with `sudo apt-get install -y chromium chromium-driver` "
            "(.ci/run does on CI).",
            pytrace=False,
        )
    return browser, driver


def artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: $POLYTRACK_TEST_ARTIFACTS, else a pytest temporary dir."""
    configured = os.environ.get("POLYTRACK_TEST_ARTIFACTS")
    path = Path(configured) if configured else tmp_path_factory.mktemp("artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


class UiServer:
    """`python -m polytrack ui` in its own process group, on a free port."""

    def __init__(self, home: Path, log_dir: Path, *args: str) -> None:
        self.home = home
        self.log = log_dir / "ui.log"
        self._out = open(self.log, "wb")  # noqa: SIM115 (closed by stop())
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "polytrack",
                "ui",
                "--home",
                str(home),
                "--port",
                "0",
                "--no-browser",
                *args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.url, self.token = self._wait_url()
        # The port, on loopback: reachable on every bind address the tests use.
        port = int(self.url.rstrip("/").rsplit(":", 1)[1])
        self.base = f"http://127.0.0.1:{port}"
        self._wait_ready()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def _wait_url(self) -> tuple[str, str | None]:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            text = self.log_text()
            found = _URL_LINE.search(text)
            token = _TOKEN_LINE.search(text)
            if found and ("press Ctrl-C" in text or token):
                return found.group(1), token.group(1) if token else None
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"`polytrack ui` did not start; its output:\n{self.log_text()}")

    def _wait_ready(self) -> None:
        """Polls /api/info until it answers: the server serves, not merely listens."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                info = self.get_json("/api/info")
            except (OSError, urllib.error.URLError):
                time.sleep(0.05)
                continue
            assert "run_count" in info
            return
        self.stop()
        raise AssertionError(f"/api/info never answered; the server said:\n{self.log_text()}")

    def request(
        self, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """GET `path` (with the token as a bearer header where one is needed)."""
        sent = dict(headers or {})
        if self.token is not None and "Authorization" not in sent:
            sent["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.base + path, headers=sent)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            with err:
                return err.code, dict(err.headers), err.read()

    def get_json(self, path: str) -> Any:
        status, _, body = self.request(path)
        assert status == 200, (path, status, body[:500])
        return json.loads(body)

    def stop(self) -> None:
        """Ctrl-C (the CLI stops its server in `finally`), then SIGKILL to the group."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._out.close()


def wait(driver: WebDriver, condition: Callable[[WebDriver], Any], timeout: float = WAIT_S) -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)


def open_page(driver: WebDriver, url: str) -> None:
    """Navigate and wait until the page says its first data is drawn."""
    driver.get(url)
    wait(driver, lambda d: d.execute_script("return document.body?.dataset.ready") == "1")


def console_errors(driver: WebDriver) -> list[str]:
    """The page's JavaScript errors (CSP violations included) since the last call."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def screenshot(driver: WebDriver, directory: Path, name: str, *, full: bool = True) -> Path:
    """Save a screenshot of the whole page (the window grown to the page's height)."""
    path = directory / f"{name}.png"
    if full:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1400, min(max(int(height) + 40, 800), 6000))
    driver.save_screenshot(str(path))
    if full:
        driver.set_window_size(1400, 1000)
    return path
