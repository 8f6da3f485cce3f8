"""A run still recording in this process: its page follows it without a reload."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

import polytrack

from ._browser import UiServer, console_errors, open_page, screenshot, wait
from ._homes import QUIET


def chart_state(driver: WebDriver, key: str) -> tuple[str | None, str | None]:
    state: list[str | None] = driver.execute_script(
        "const c = document.querySelector(`div.chart[data-key='${arguments[0]}']`);"
        "return c ? [c.dataset.points ?? null, c.dataset.last ?? null] : [null, null];",
        key,
    )
    return state[0], state[1]


def test_a_live_run_updates_without_reload(
    browser: WebDriver, start_ui: Callable[..., UiServer], tmp_path: Path, artifacts: Path
) -> None:
    home = tmp_path / "home"
    capture = {**QUIET, "logs": True}
    with polytrack.init(project="live", name="still-running", dir=home, capture=capture) as run:
        print("first line of output")
        for step in range(10):
            run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
        server = start_ui(home)

        open_page(browser, server.base + "/")
        row = browser.find_element(By.CSS_SELECTOR, f'tr.run-row[data-run-id="{run.id}"]')
        assert "live" in str(row.get_attribute("class"))

        open_page(browser, f"{server.base}/runs/{run.id}")
        assert chart_state(browser, "loss") == ("10", "0.1")
        # The page was drawn: marking it shows that what follows is no reload.
        browser.execute_script("document.body.dataset.marker = 'same-page'")

        run.log_metrics({"loss": 123.0}, step=10)
        wait(browser, lambda d: chart_state(d, "loss") == ("11", "123"))
        run.log_metrics({"acc": 0.5}, step=10)  # a new metric gets its chart
        wait(browser, lambda d: chart_state(d, "acc") == ("1", "0.5"))
        # The output log follows: new lines are appended after the ones shown.
        wait(browser, lambda d: "first line of output" in d.find_element(By.ID, "log").text)
        print("a line printed while the page is open")
        wait(browser, lambda d: "while the page is open" in d.find_element(By.ID, "log").text)
        lines = browser.find_element(By.ID, "log").text.splitlines()
        assert lines.count("first line of output") == 1
        screenshot(browser, artifacts, "run-live", full=False)

    # Finished: the badge says so, and the page stops polling.
    wait(
        browser,
        lambda d: (
            "succeeded" in d.find_element(By.ID, "run-title").text
            and not d.find_elements(By.CSS_SELECTOR, "#run-title .is-live")
        ),
    )
    assert browser.execute_script("return document.body.dataset.marker") == "same-page"
    assert console_errors(browser) == []
