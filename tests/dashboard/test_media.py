"""The run page's Media section and compare's media, in headless Chromium, over runs
recorded with the public media calls."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

import polytrack

from ._browser import UiServer, console_errors, open_page, screenshot, wait
from ._homes import QUIET

# The script tells what it could do: run at all, and read the dashboard's cookies (it
# must not: the sandbox gives it an opaque origin).
HTML = (
    "<p id='out'>not run</p><script>let said; try { said = 'cookie:' + document.cookie }"
    " catch (e) { said = 'blocked' } document.getElementById('out').textContent = said"
    "</script>"
)


def _image(step: int, run: int) -> np.ndarray:
    """A 12x16 image whose red channel names the step and green the run."""
    image = np.zeros((12, 16, 3), np.uint8)
    image[..., 0] = 40 * step + 20
    image[..., 1] = 100 * run
    return image


def _plotly_figure() -> Any:
    go = pytest.importorskip("plotly.graph_objects")
    return go.Figure(go.Scatter(x=[1, 2, 3, 4], y=[3.0, 1.0, 2.0, 5.0], name="loss"))


def media_home(home: Path) -> dict[str, str]:
    """Two runs with images at steps 0-3; the first also with a histogram over steps, a
    45-row table, HTML and (where plotly is installed) a plotly figure."""
    ids = {}
    for index in range(2):
        name = f"media-{index}"
        with polytrack.init(project="media", name=name, dir=home, capture=QUIET) as run:
            for step in range(4):
                run.log_image("samples", _image(step, index), step=step, caption=f"epoch {step}")
            if index == 0:
                rng = np.random.default_rng(1)
                for step in range(12):
                    run.log_histogram("weights", rng.normal(step, 1.0, 2000), step=step)
                rows = [[i, f"class {i % 3}", i / 10] for i in range(45)]
                run.log_table("predictions", rows, step=0, columns=["id", "label", "score"])
                run.log_html("report", HTML, step=0)
                try:
                    import plotly.graph_objects  # noqa: F401
                except ImportError:
                    pass
                else:
                    run.log_figure("curve", _plotly_figure(), step=0)
            ids[name] = run.id
    return ids


@pytest.fixture(scope="module")
def media(
    tmp_path_factory: pytest.TempPathFactory, start_ui: Callable[..., UiServer]
) -> tuple[UiServer, dict[str, str]]:
    home = tmp_path_factory.mktemp("media") / "home"
    ids = media_home(home)
    return start_ui(home), ids


MANY = 250  # image steps: more than a key's answer carries (200 by default)


def _tiny(step: int, run: int) -> np.ndarray:
    """A 4x4 image whose red channel is the step and green names the run."""
    image = np.zeros((4, 4, 3), np.uint8)
    image[..., 0] = step
    image[..., 1] = 50 + 100 * run
    return image


def left_out_steps() -> list[int]:
    """The steps 0..MANY-1 that an answer of 200 spread evenly (first and last kept, as
    the server spreads them) does not carry."""
    carried = {round(i * (MANY - 1) / 199) for i in range(200)}
    return sorted(set(range(MANY)) - carried)


@pytest.fixture(scope="module")
def many(
    tmp_path_factory: pytest.TempPathFactory, start_ui: Callable[..., UiServer]
) -> tuple[UiServer, dict[str, str]]:
    """Two runs with a 4x4 image at each of steps 0..MANY-1; the first also a histogram."""
    home = tmp_path_factory.mktemp("many") / "home"
    ids = {}
    rng = np.random.default_rng(2)
    for index in range(2):
        with polytrack.init(project="many", name=f"many-{index}", dir=home, capture=QUIET) as run:
            for step in range(MANY):
                run.log_image("frames", _tiny(step, index), step=step)
                if index == 0:
                    run.log_histogram("weights", rng.normal(step, 1.0, 50), step=step, bins=8)
            ids[f"many-{index}"] = run.id
    return start_ui(home), ids


def set_slider(driver: WebDriver, slider: Any, position: int) -> None:
    """Moves a range input to `position` as a user's drag does: value, then 'input'."""
    driver.execute_script(
        "arguments[0].value = String(arguments[1]);"
        " arguments[0].dispatchEvent(new Event('input', {bubbles: true}));"
        " arguments[0].dispatchEvent(new Event('change', {bubbles: true}))",
        slider,
        position,
    )


def card(driver: WebDriver, name: str) -> Any:
    """The media card of `name`, once drawn."""
    selector = f'.media-card[data-name="{name}"][data-drawn="1"]'
    return wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, selector))


def shown_image(driver: WebDriver, name: str) -> dict[str, Any]:
    """The first image the card shows: its URL, whether it loaded, and its first pixel."""
    result: dict[str, Any] = driver.execute_script(
        """
        const img = document.querySelector(`.media-card[data-name="${arguments[0]}"] img`);
        if (!img || !img.complete || !img.naturalWidth) return null;
        const c = document.createElement('canvas');
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        const g = c.getContext('2d');
        g.drawImage(img, 0, 0);
        return {src: img.getAttribute('src'), pixel: [...g.getImageData(0, 0, 1, 1).data]};
        """,
        name,
    )
    return result


def test_gallery_slider_changes_the_image(
    browser: WebDriver, media: tuple[UiServer, dict[str, str]], artifacts: Path
) -> None:
    """The gallery opens at the last step; moving its slider shows that step's image,
    loaded, with its caption and step label."""
    server, ids = media
    open_page(browser, f"{server.base}/runs/{ids['media-0']}")
    gallery = card(browser, "samples")
    assert gallery.find_element(By.CSS_SELECTOR, ".media-step").text == "step 3"
    first = wait(browser, lambda d: shown_image(d, "samples"))
    assert "step=3" in first["src"] and first["pixel"][:3] == [140, 0, 0]
    assert gallery.find_element(By.CSS_SELECTOR, ".media-caption").text == "epoch 3"

    slider = gallery.find_element(By.CSS_SELECTOR, "input.media-slider")
    slider.send_keys(Keys.LEFT, Keys.LEFT)
    moved = wait(
        browser,
        lambda d: (shown := shown_image(d, "samples")) and "step=1" in shown["src"] and shown,
    )
    assert moved["pixel"][:3] == [60, 0, 0]
    assert gallery.find_element(By.CSS_SELECTOR, ".media-step").text == "step 1"
    assert gallery.find_element(By.CSS_SELECTOR, ".media-caption").text == "epoch 1"
    screenshot(browser, artifacts, "media-run")
    assert console_errors(browser) == []


def test_histogram_and_table_render(
    browser: WebDriver, media: tuple[UiServer, dict[str, str]]
) -> None:
    """The histogram is a steps x bins heatmap with ink on it; the table shows its first
    page of rows and pages on."""
    server, ids = media
    open_page(browser, f"{server.base}/runs/{ids['media-0']}")
    heat = card(browser, "weights").find_element(By.CSS_SELECTOR, "canvas.media-heatmap")
    assert heat.get_attribute("data-steps") == "12"
    inked = browser.execute_script(
        "const c = arguments[0]; const d = c.getContext('2d').getImageData(0, 0, c.width,"
        " c.height).data; let n = 0; for (let i = 0; i < d.length; i += 4)"
        " if (d[i] < 200) n++; return n",
        heat,
    )
    assert inked > 12  # every step's column has dark bins

    table = card(browser, "predictions")
    rows = table.find_elements(By.CSS_SELECTOR, "table.media-table tbody tr")
    assert len(rows) == 20
    assert [c.text for c in rows[0].find_elements(By.TAG_NAME, "td")] == ["0", "class 0", "0"]
    assert (
        table.find_element(By.CSS_SELECTOR, ".media-table-info").text == "rows 1\N{EN DASH}20 of 45"
    )
    table.find_element(By.XPATH, ".//button[contains(., 'Next')]").click()
    wait(browser, lambda d: table.find_element(By.CSS_SELECTOR, ".media-table-info").text
         == "rows 21\N{EN DASH}40 of 45")  # fmt: skip
    first = table.find_element(By.CSS_SELECTOR, "table.media-table tbody tr td")
    assert first.text == "20"
    assert console_errors(browser) == []


def test_plotly_figure_renders(browser: WebDriver, media: tuple[UiServer, dict[str, str]]) -> None:
    """A plotly figure is drawn by plotly.js (loaded only then), under the page's CSP."""
    pytest.importorskip("plotly")
    server, ids = media
    open_page(browser, f"{server.base}/runs/{ids['media-0']}")
    figure = card(browser, "curve")
    plot = figure.find_element(By.CSS_SELECTOR, ".media-figure[data-library='plotly']")
    assert plot.find_elements(By.CSS_SELECTOR, ".js-plotly-plot svg.main-svg")
    assert len(plot.find_elements(By.CSS_SELECTOR, ".scatterlayer .trace")) == 1
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
        ".filter(n => n.includes('/assets/chunks/plotly'))"
    )
    assert loaded, "plotly.js comes from its own chunk"
    assert console_errors(browser) == []


def test_html_runs_sandboxed(browser: WebDriver, media: tuple[UiServer, dict[str, str]]) -> None:
    """HTML is shown in a sandboxed frame: its script runs, and cannot read the cookies."""
    server, ids = media
    open_page(browser, f"{server.base}/runs/{ids['media-0']}")
    frame = card(browser, "report").find_element(By.CSS_SELECTOR, "iframe.media-html")
    assert frame.get_attribute("sandbox") == "allow-scripts"
    browser.switch_to.frame(frame)
    try:
        said = wait(browser, lambda d: (t := d.find_element(By.ID, "out").text) != "not run" and t)
    finally:
        browser.switch_to.default_content()
    assert said == "blocked"


def test_compare_shows_two_runs_media_at_a_step(
    browser: WebDriver, media: tuple[UiServer, dict[str, str]], artifacts: Path
) -> None:
    """Compare puts both runs' images side by side at the chosen step."""
    server, ids = media
    open_page(browser, f"{server.base}/compare?ids={ids['media-0']},{ids['media-1']}")
    select = wait(browser, lambda d: d.find_element(By.ID, "compare-media-key"))
    browser.execute_script(
        "arguments[0].value = 'samples'; arguments[0].dispatchEvent(new Event('change'))", select
    )

    def pixels(d: WebDriver) -> list[list[int]] | None:
        found: list[list[int]] | None = d.execute_script(
            """
            const imgs = [...document.querySelectorAll('.compare-media-col img')];
            if (imgs.length !== 2 || imgs.some(i => !i.complete || !i.naturalWidth)) return null;
            return imgs.map(img => {
              const c = document.createElement('canvas'); c.width = 1; c.height = 1;
              const g = c.getContext('2d'); g.drawImage(img, 0, 0);
              return [...g.getImageData(0, 0, 1, 1).data].slice(0, 3);
            });
            """
        )
        return found

    wait(browser, lambda d: pixels(d) == [[140, 0, 0], [140, 100, 0]])
    slider = browser.find_element(By.ID, "compare-media-slider")
    slider.send_keys(Keys.HOME)
    wait(browser, lambda d: pixels(d) == [[20, 0, 0], [20, 100, 0]])
    assert browser.find_element(By.ID, "compare-media-step").text == "step 0"
    screenshot(browser, artifacts, "media-compare")
    assert console_errors(browser) == []


def test_a_live_run_media_follow_without_reload(
    browser: WebDriver, start_ui: Callable[..., UiServer], tmp_path: Path
) -> None:
    """While the run records, a gallery at its last step follows new steps, and a new
    key gets its card."""
    home = tmp_path / "home"
    with polytrack.init(project="live", name="imaging", dir=home, capture=QUIET) as run:
        run.log_image("samples", _image(0, 0), step=0)
        run.log_image("samples", _image(1, 0), step=1)
        run.media("samples")  # encoded and recorded before the server reads them
        server = start_ui(home)
        open_page(browser, f"{server.base}/runs/{run.id}")
        assert card(browser, "samples").get_attribute("data-step") == "1"
        browser.execute_script("document.body.dataset.marker = 'same-page'")

        run.log_image("samples", _image(3, 0), step=2)
        run.log_text("notes", "written later", step=2)
        wait(browser, lambda d: (s := shown_image(d, "samples")) and "step=2" in s["src"])
        assert card(browser, "samples").find_element(By.CSS_SELECTOR, ".media-step").text == (
            "step 2"
        )
        text = card(browser, "notes").find_element(By.CSS_SELECTOR, ".media-text")
        assert text.text == "written later"
    assert browser.execute_script("return document.body.dataset.marker") == "same-page"
    assert console_errors(browser) == []


def test_gallery_slider_reaches_a_step_the_answer_left_out(
    browser: WebDriver, many: tuple[UiServer, dict[str, str]]
) -> None:
    """With more image steps than the key's answer carries, the slider still ranges over
    all of them; a step left out is fetched and shown, and fetched once when scrubbing
    back to it."""
    server, ids = many
    left_out = left_out_steps()
    assert left_out, "the answer must leave some steps out for this test to mean anything"
    wanted = left_out[len(left_out) // 2]
    open_page(browser, f"{server.base}/runs/{ids['many-0']}")
    gallery = card(browser, "frames")
    slider = gallery.find_element(By.CSS_SELECTOR, "input.media-slider")
    assert slider.get_attribute("max") == str(MANY - 1)
    assert wait(browser, lambda d: shown_image(d, "frames"))["pixel"][:3] == [MANY - 1, 50, 0]

    def shows(step: int) -> Any:
        def check(d: WebDriver) -> Any:
            shown = shown_image(d, "frames")
            return shown and f"step={step}&" in shown["src"] and shown

        return wait(browser, check)

    set_slider(browser, slider, wanted)
    assert shows(wanted)["pixel"][:3] == [wanted, 50, 0]
    assert gallery.find_element(By.CSS_SELECTOR, ".media-step").text == f"step {wanted}"
    assert card(browser, "frames").get_attribute("data-step") == str(wanted)

    set_slider(browser, slider, wanted + 1)
    shows(wanted + 1)
    set_slider(browser, slider, wanted)
    assert shows(wanted)["pixel"][:3] == [wanted, 50, 0]
    fetched = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
        ".filter(n => n.endsWith('/media/frames?step=' + arguments[0])).length",
        wanted,
    )
    assert fetched == 1

    heat = card(browser, "weights").find_element(By.CSS_SELECTOR, "canvas.media-heatmap")
    assert heat.get_attribute("data-steps") == "200" and heat.get_attribute("data-sampled") == "1"
    assert f"200 of {MANY} steps" in heat.get_attribute("title")
    assert console_errors(browser) == []


def test_compare_slider_reaches_a_step_the_answers_left_out(
    browser: WebDriver, many: tuple[UiServer, dict[str, str]]
) -> None:
    """Compare's media slider ranges over every step; at one both answers left out, each
    run's image of that step is fetched and shown."""
    server, ids = many
    wanted = left_out_steps()[0]
    open_page(browser, f"{server.base}/compare?ids={ids['many-0']},{ids['many-1']}")
    select = wait(browser, lambda d: d.find_element(By.ID, "compare-media-key"))
    assert select.get_attribute("value") == "frames"  # the first key, shown at its last step
    slider = browser.find_element(By.ID, "compare-media-slider")
    assert slider.get_attribute("max") == str(MANY - 1)

    def pixels(d: WebDriver) -> list[list[int]] | None:
        found: list[list[int]] | None = d.execute_script(
            """
            const imgs = [...document.querySelectorAll('.compare-media-col img')];
            if (imgs.length !== 2 || imgs.some(i => !i.complete || !i.naturalWidth)) return null;
            const at = `step=${arguments[0]}&`;
            if (!imgs.every(i => i.getAttribute('src').includes(at))) return null;
            return imgs.map(img => {
              const c = document.createElement('canvas'); c.width = 1; c.height = 1;
              const g = c.getContext('2d'); g.drawImage(img, 0, 0);
              return [...g.getImageData(0, 0, 1, 1).data].slice(0, 3);
            });
            """,
            wanted,
        )
        return found

    set_slider(browser, slider, wanted)
    assert wait(browser, pixels) == [[wanted, 50, 0], [wanted, 150, 0]]
    assert browser.find_element(By.ID, "compare-media-step").text == f"step {wanted}"
    titles = [t.text for t in browser.find_elements(By.CSS_SELECTOR, ".compare-media-title")]
    assert all(t.endswith(f"step {wanted}") for t in titles)
    assert console_errors(browser) == []
