"""The runs, run, compare and lineage pages over a real home, in headless Chromium."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from ._browser import UiServer, console_errors, open_page, screenshot, wait
from ._homes import demo_home


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory, start_ui: Callable[..., UiServer]
) -> tuple[UiServer, dict[str, str]]:
    root = tmp_path_factory.mktemp("demo")
    ids = demo_home(root / "home", root / "work")
    return start_ui(root / "home"), ids


def row_ids(driver: WebDriver) -> list[str]:
    """The run ids of the table's rows, read in one script (the table may redraw meanwhile)."""
    ids: list[str] = driver.execute_script(
        "return [...document.querySelectorAll('table#runs-table tr.run-row')]"
        ".map(r => r.dataset.runId)"
    )
    return ids


def test_runs_table_lists_the_runs_of_the_home(
    browser: WebDriver, demo: tuple[UiServer, dict[str, str]], artifacts: Path
) -> None:
    server, ids = demo
    open_page(browser, server.base + "/")
    assert sorted(row_ids(browser)) == sorted(ids.values())
    assert browser.find_element(By.ID, "runs-total").text == str(len(ids))
    # Newest first by default; the chosen params and metric summaries are columns.
    assert row_ids(browser)[0] == ids["vit-small"]
    assert browser.find_elements(By.CSS_SELECTOR, 'th[data-sort="params.lr"]')
    assert browser.find_elements(By.CSS_SELECTOR, 'th[data-sort="metrics.loss"]')
    row = browser.find_element(By.CSS_SELECTOR, f'tr.run-row[data-run-id="{ids["resnet-lr0.01"]}"]')
    assert "resnet-lr0.01" in row.text and "adam" in row.text and "ana" in row.text
    screenshot(browser, artifacts, "runs")
    assert console_errors(browser) == []


def test_where_filter_applies_and_a_bad_one_shows_its_caret(
    browser: WebDriver, demo: tuple[UiServer, dict[str, str]], artifacts: Path
) -> None:
    server, ids = demo
    open_page(browser, server.base + "/")
    where = browser.find_element(By.ID, "where")
    where.send_keys('params.optimizer == "adam"', Keys.ENTER)
    wanted = sorted([ids["resnet-lr0.01"], ids["resnet-lr0.003"]])
    wait(browser, lambda d: sorted(row_ids(d)) == wanted)
    assert browser.find_element(By.ID, "runs-total").text == "2"
    assert not browser.find_elements(By.ID, "where-error")

    where.clear()
    where.send_keys("metrics.loss < < 1", Keys.ENTER)
    error = wait(browser, lambda d: d.find_element(By.ID, "where-error"))
    assert error.is_displayed()
    expression, caret = error.find_element(By.TAG_NAME, "pre").text.split("\n")
    assert expression == "metrics.loss < < 1"
    # The caret sits under the second '<', where the server says the error is.
    assert caret == " " * expression.index("< 1") + "^"
    screenshot(browser, artifacts, "runs-where-error", full=False)

    where.clear()
    where.send_keys(Keys.ENTER)
    wait(
        browser, lambda d: len(row_ids(d)) == len(ids) and not d.find_elements(By.ID, "where-error")
    )
    # The only errors: the 400 answers to the bad query, which the browser logs.
    assert all("400" in e for e in console_errors(browser))


def test_search_sort_and_group(browser: WebDriver, demo: tuple[UiServer, dict[str, str]]) -> None:
    server, ids = demo
    open_page(browser, server.base + "/")
    browser.find_element(By.CSS_SELECTOR, 'th[data-sort="params.lr"]').click()
    by_lr = [ids["resnet-lr0.1"], ids["resnet-lr0.01"], ids["resnet-lr0.003"], ids["vit-small"]]
    # Largest first; runs without the param last.
    wait(browser, lambda d: row_ids(d)[:4] == by_lr)
    browser.find_element(By.CSS_SELECTOR, 'th[data-sort="params.lr"]').click()
    wait(browser, lambda d: row_ids(d)[:4] == by_lr[::-1])

    search = browser.find_element(By.ID, "search")
    search.send_keys("lr0.0")
    wait(
        browser,
        lambda d: sorted(row_ids(d)) == sorted([ids["resnet-lr0.01"], ids["resnet-lr0.003"]]),
    )
    search.clear()
    search.send_keys("cnn")  # a tag
    wait(browser, lambda d: len(row_ids(d)) == 3)
    search.send_keys(Keys.BACKSPACE * 3)

    # The column picker: a param's column goes and comes back.
    browser.find_element(By.CSS_SELECTOR, "details.column-picker > summary").click()
    column = 'th[data-sort="params.batch_size"]'
    assert browser.find_elements(By.CSS_SELECTOR, column)
    browser.find_element(By.CSS_SELECTOR, 'input[data-column="params.batch_size"]').click()
    wait(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, column))
    browser.find_element(By.CSS_SELECTOR, 'input[data-column="params.batch_size"]').click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, column))
    browser.find_element(By.CSS_SELECTOR, "details.column-picker > summary").click()

    browser.find_element(By.CSS_SELECTOR, "select#group option[value=project]").click()
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "tr.group-row")) == 2)
    groups = [g.text for g in browser.find_elements(By.CSS_SELECTOR, "tr.group-row")]
    assert groups == ["cifar", "mnist"]


def test_compare_overlays_two_runs(
    browser: WebDriver, demo: tuple[UiServer, dict[str, str]], artifacts: Path
) -> None:
    server, ids = demo
    open_page(browser, server.base + "/")
    for name in ("resnet-lr0.1", "resnet-lr0.01"):
        browser.find_element(
            By.CSS_SELECTOR, f'input.select-run[data-run-id="{ids[name]}"]'
        ).click()
    button = browser.find_element(By.ID, "compare-button")
    assert button.is_enabled()
    button.click()
    wait(
        browser,
        lambda d: (
            d.execute_script("return document.body.dataset.ready") == "1"
            and "/compare" in d.current_url
        ),
    )
    query = urllib.parse.parse_qs(urllib.parse.urlparse(browser.current_url).query)
    assert sorted(query["ids"][0].split(",")) == sorted([ids["resnet-lr0.1"], ids["resnet-lr0.01"]])
    for key in ("loss", "acc"):
        chart = browser.find_element(By.CSS_SELECTOR, f'div.chart[data-key="{key}"]')
        assert chart.get_attribute("data-series") == "2"
        assert chart.get_attribute("data-points") == "600"  # 300 points per run
        assert chart.find_elements(By.CSS_SELECTOR, "canvas")
    rows = browser.find_elements(By.CSS_SELECTOR, "#compare-params tbody tr")
    flags = ["differs" in str(r.get_attribute("class")) for r in rows]
    assert flags == sorted(flags, reverse=True)  # differing rows first
    differing = [
        r.get_attribute("data-key") for r in rows if "differs" in str(r.get_attribute("class"))
    ]
    assert sorted(differing) == ["lr", "optimizer"]
    screenshot(browser, artifacts, "compare")
    assert console_errors(browser) == []


def test_run_page_shows_everything_recorded(
    browser: WebDriver, demo: tuple[UiServer, dict[str, str]], artifacts: Path
) -> None:
    server, ids = demo
    run_id = ids["resnet-lr0.1"]
    open_page(browser, f"{server.base}/runs/{run_id}")
    assert browser.find_element(By.ID, "run-title").text.startswith("resnet-lr0.1")
    params = browser.find_element(By.ID, "params").text
    assert "lr" in params and "0.1" in params and "sgd" in params
    loss = browser.find_element(By.CSS_SELECTOR, 'div.chart[data-key="loss"]')
    assert loss.get_attribute("data-points") == "300"
    assert loss.get_attribute("data-total") == "300"
    # The NaN logged at step 150 is a gap with a marker, and said in words.
    assert "has-nonfinite" in str(loss.get_attribute("class"))
    assert "1 NaN" in loss.text
    assert (
        browser.find_element(By.CSS_SELECTOR, 'div.chart[data-key="acc"]').get_attribute(
            "data-points"
        )
        == "300"
    )

    log = browser.find_element(By.ID, "log")
    wait(browser, lambda d: "step 200: loss=" in log.text)
    assert "step 0: loss=" in log.text
    browser.find_element(By.ID, "log-search").send_keys("step 100")
    wait(browser, lambda d: "step 0:" not in log.text and "step 100:" in log.text)

    artifacts_box = browser.find_element(By.ID, "artifacts")
    assert "classifier" in artifacts_box.text and "sha256:" in artifacts_box.text
    href = artifacts_box.find_element(By.LINK_TEXT, "Download").get_attribute("href")
    status, _, body = server.request(urllib.parse.urlparse(href).path)
    assert status == 200 and len(body) == 256

    snapshot = browser.find_element(By.ID, "snapshot")
    assert browser.find_element(By.ID, "diff")
    assert "train" in snapshot.text and "sha256:" in snapshot.text
    assert browser.find_element(By.ID, "reproduce-command").text == f"polytrack reproduce {run_id}"

    graph = browser.find_element(By.ID, "lineage-graph")
    producer = graph.find_element(By.CSS_SELECTOR, f'g[data-run-id="{ids["prepare-data"]}"]')
    screenshot(browser, artifacts, "run")

    # The controls redraw the charts: wall time on x, log y, smoothing.
    browser.find_element(By.CSS_SELECTOR, "select#x-axis option[value=relative]").click()
    browser.find_element(By.ID, "log-y").click()
    browser.execute_script(
        "const s = document.getElementById('smoothing'); s.value = '0.9';"
        "s.dispatchEvent(new Event('input'));"
    )
    assert loss.get_attribute("data-points") == "300"
    assert console_errors(browser) == []

    # The lineage graph is clickable: the producing run's node opens its page.
    producer.click()
    wait(
        browser,
        lambda d: (
            d.current_url.endswith(f"/runs/{ids['prepare-data']}")
            and d.execute_script("return document.body.dataset.ready") == "1"
        ),
    )
    assert browser.find_element(By.ID, "run-title").text.startswith("prepare-data")


def test_lineage_page(
    browser: WebDriver, demo: tuple[UiServer, dict[str, str]], artifacts: Path
) -> None:
    server, ids = demo
    snapshot = server.get_json(f"/api/runs/{ids['resnet-lr0.01']}/snapshot")
    digest = snapshot["data_refs"][0]["digest"]
    open_page(browser, f"{server.base}/lineage?ref={urllib.parse.quote(digest)}")
    producers = browser.find_element(By.ID, "producers")
    consumers = browser.find_element(By.ID, "consumers")
    assert [
        r.get_attribute("data-run-id")
        for r in producers.find_elements(By.CSS_SELECTOR, "tr.run-row")
    ] == [ids["prepare-data"]]
    consumer_ids = {
        r.get_attribute("data-run-id")
        for r in consumers.find_elements(By.CSS_SELECTOR, "tr.run-row")
    }
    assert consumer_ids == {ids[f"resnet-lr{lr}"] for lr in ("0.1", "0.01", "0.003")}
    graph = browser.find_element(By.ID, "lineage-graph")
    assert len(graph.find_elements(By.CSS_SELECTOR, "g.node-run")) >= 4
    screenshot(browser, artifacts, "lineage")
    assert console_errors(browser) == []
