"""A 10^6-point series: downsampled by the server to the chart's width, drawn at once."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from ._browser import UiServer, console_errors, screenshot, wait
from ._homes import million_point_run

POINTS = 1_000_000


def test_a_million_point_series_draws_what_the_server_sent(
    browser: WebDriver,
    start_ui: Callable[..., UiServer],
    tmp_path: Path,
    artifacts: Path,
) -> None:
    run_id = million_point_run(tmp_path / "home", POINTS)
    server = start_ui(tmp_path / "home")
    started = time.perf_counter()
    browser.get(f"{server.base}/runs/{run_id}")
    chart = wait(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, 'div.chart[data-key="signal"][data-points]'),
    )
    elapsed = time.perf_counter() - started
    print(f"\n10^6-point chart drawn {elapsed:.2f} s after navigation (page load included)")
    assert chart.get_attribute("data-total") == str(POINTS)
    drawn = int(str(chart.get_attribute("data-points")))
    requested = int(str(chart.get_attribute("data-requested")))
    # What the server sends for the chart's pixel width, and that is what was drawn.
    sent = server.get_json(f"/api/runs/{run_id}/series?key=signal&points={requested}")
    assert sent["total"] == POINTS and sent["downsampled"] is True
    assert drawn == len(sent["values"])
    assert 2 <= drawn <= 2 * requested + 2  # min and max per pixel at most
    assert chart.find_elements(By.CSS_SELECTOR, "canvas")
    # Loosely: CI is busy, the 1 s is measured by the benchmarks.
    assert elapsed < 30
    screenshot(browser, artifacts, "run-million-points", full=False)
    assert console_errors(browser) == []
