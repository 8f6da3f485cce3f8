"""The token on a non-loopback bind, and the Host check on loopback, seen by a browser."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

import polytrack

from ._browser import UiServer, console_errors, open_page, screenshot, wait
from ._homes import QUIET


def one_run(home: Path) -> str:
    with polytrack.init(project="p", name="only", dir=home, capture=QUIET) as run:
        run.log_metrics({"loss": 0.5}, step=0)
        return run.id


def test_the_token_is_demanded_on_a_non_loopback_bind(
    browser: WebDriver, start_ui: Callable[..., UiServer], tmp_path: Path, artifacts: Path
) -> None:
    run_id = one_run(tmp_path / "home")
    server = start_ui(tmp_path / "home", "--host", "0.0.0.0")
    assert server.token is not None and len(server.token) >= 40
    nothing = {"Authorization": ""}
    for path in ("/", f"/runs/{run_id}", "/assets/app.js", "/api/info", "/api/runs"):
        status, _, body = server.request(path, nothing)
        assert status == 401, path
    _, _, body = server.request("/api/runs", nothing)
    assert json.loads(body)["error"]["kind"] == "unauthorized"
    assert server.request("/api/runs", {"Authorization": "Bearer wrong"})[0] == 401
    wrong = server.token[:-1] + ("A" if server.token[-1] != "A" else "B")
    assert server.request(f"/?token={wrong}", nothing)[0] == 401
    assert server.get_json("/api/info")["run_count"] == 1  # with the bearer token

    # A browser without the token gets the page that asks for it, not the dashboard.
    browser.get(server.base + "/")
    body_text = browser.find_element(By.TAG_NAME, "body").text
    assert "token" in body_text.lower()
    assert not browser.find_elements(By.ID, "runs-table")
    screenshot(browser, artifacts, "token-needed", full=False)
    console_errors(browser)  # the 401 itself is logged

    # With ?token= once: a cookie, and the token leaves the address bar.
    open_page(browser, f"{server.base}/?token={server.token}")
    assert "token" not in browser.current_url
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f'tr.run-row[data-run-id="{run_id}"]'))
    open_page(browser, f"{server.base}/runs/{run_id}")  # the cookie carries on
    chart = browser.find_element(By.CSS_SELECTOR, 'div.chart[data-key="loss"]')
    assert chart.get_attribute("data-points") == "1"
    assert console_errors(browser) == []


def test_loopback_needs_no_token_but_a_loopback_host(
    start_ui: Callable[..., UiServer], tmp_path: Path
) -> None:
    one_run(tmp_path / "home")
    server = start_ui(tmp_path / "home")
    assert server.token is None
    assert server.request("/api/info")[0] == 200
    status, headers, _ = server.request("/", {"Host": "localhost"})
    assert status == 200
    assert "script-src 'self'" in headers["content-security-policy"]
    # DNS rebinding: a page of another name resolving to 127.0.0.1 is refused.
    assert server.request("/api/info", {"Host": "evil.example"})[0] == 403
    assert server.request("/", {"Host": "evil.example:80"})[0] == 403
