"""Serving the dashboard: `polytrack.ui()` in-process and `polytrack ui` on the command line."""

from __future__ import annotations

import io
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import polytrack
from polytrack.cli import main
from polytrack.dashboard.server import THREAD_NAME, Dashboard


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    run = polytrack.init("p", "one", dir=home, mode="offline", capture=False)
    polytrack.log_metric("loss", 1.0, step=0)
    run.finish()
    return home


def _get_json(url: str, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def _dashboard_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


def test_ui_serves_in_the_background_and_stops(home: Path) -> None:
    with polytrack.ui(home) as dashboard:
        assert isinstance(dashboard, Dashboard)
        assert dashboard.url.startswith("http://127.0.0.1:") and dashboard.token is None
        assert dashboard.token_url == dashboard.url
        assert len(_dashboard_threads()) == 1 and dashboard.running
        info = _get_json(dashboard.url + "api/info")
        assert info["run_count"] == 1 and info["home"] == str(home)
        shown = dashboard._repr_html_()
        assert f'<iframe src="{dashboard.url}"' in shown
        assert "running" in repr(dashboard)
    assert not _dashboard_threads() and not dashboard.running
    dashboard.stop()  # idempotent
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(dashboard.url + "api/info", timeout=5)


def test_ui_default_home_is_polytrack_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYTRACK_HOME", str(home))
    dashboard = polytrack.ui()
    try:
        assert dashboard.home == home
        assert _get_json(dashboard.url + "api/info")["run_count"] == 1
    finally:
        dashboard.stop()


def test_ui_port_in_use_is_a_clear_error(home: Path) -> None:
    with polytrack.ui(home) as first:
        port = int(first.url.rsplit(":", 1)[1].strip("/"))
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            polytrack.ui(home, port=port)
    assert not _dashboard_threads()


def test_cli_ui_help() -> None:
    out = io.StringIO()
    assert main(["ui", "--help"], stdout=out, stderr=io.StringIO()) == 0
    text = out.getvalue()
    for option in ("--port", "--host", "--no-browser", "--home", "5005"):
        assert option in text


def test_cli_ui_non_loopback_prints_the_token_and_stops_on_ctrl_c(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def interrupted(self: Dashboard) -> None:  # Ctrl-C while serving
        seen["status"] = urllib.request.urlopen(
            urllib.request.Request(
                f"http://127.0.0.1:{self.url.rsplit(':', 1)[1].strip('/')}/api/info",
                headers={"authorization": f"Bearer {self.token}"},
            ),
            timeout=30,
        ).status
        raise KeyboardInterrupt

    monkeypatch.setattr(Dashboard, "wait", interrupted)
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", opened.append)
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["ui", "--home", str(home), "--host", "0.0.0.0", "--port", "0"], stdout=out, stderr=err
    )
    assert code == 130 and seen["status"] == 200
    lines = out.getvalue().splitlines()
    assert any("?token=" in line for line in lines)
    assert sum(line.count("?token=") for line in lines) == 1  # printed once
    assert opened == []  # stdout is not a terminal
    assert not _dashboard_threads()


def test_cli_ui_refuses_a_bad_port(home: Path) -> None:
    err = io.StringIO()
    code = main(["ui", "--home", str(home), "--port", "70000"], stdout=io.StringIO(), stderr=err)
    assert code == 2 and "--port" in err.getvalue()


def test_cli_ui_in_a_subprocess(home: Path) -> None:
    """`polytrack ui --port 0 --no-browser` as a user runs it: ready, answering, and
    stopped cleanly by SIGTERM to its process group."""
    process = subprocess.Popen(
        [sys.executable, "-m", "polytrack", "ui", "--home", str(home), "--port", "0",
         "--no-browser"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, terminated whole below
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 60
        first = ""
        while not first and time.monotonic() < deadline and process.poll() is None:
            if selector.select(timeout=1):
                first = process.stdout.readline()
        assert " at http://127.0.0.1:" in first, (first, process.poll())
        url = first.rsplit(" at ", 1)[1].strip()
        while True:  # ready: /api/info answers
            try:
                info = _get_json(url + "api/info")
                break
            except urllib.error.URLError:
                assert time.monotonic() < deadline, "the dashboard never answered"
                time.sleep(0.1)
        assert info["run_count"] == 1 and info["token_required"] is False
        # SIGTERM, not SIGINT: a shell running these tests in the background makes its
        # children ignore SIGINT. Ctrl-C is tested in-process above.
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
