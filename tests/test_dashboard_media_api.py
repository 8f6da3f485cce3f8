"""The dashboard's media endpoints (docs/dashboard.md, "Media") against a real home
recorded with the public media calls."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

import polytrack
from _isolated import isolated
from polytrack.dashboard import media as media_api
from polytrack.dashboard.app import create_app

CAPTURE = {
    "git": False,
    "code": False,
    "environment": False,
    "hardware": False,
    "system": False,
    "logs": False,
}
HTML = "<h1>report</h1><script>document.title = 'ran'</script>"
BIG_TEXT = "x" * (media_api.INLINE_MAX + 10)


def _image(value: int) -> np.ndarray:
    image = np.zeros((6, 8, 3), np.uint8)
    image[..., 0] = value
    return image


def _home(root: Path) -> dict[str, Any]:
    """Two runs: one with every kind the dashboard inlines or serves, one with an image
    of its own at a step the first lacks and a text at 250 steps."""
    home = root / "home"
    with polytrack.init("m", "first", dir=home, mode="offline", capture=CAPTURE) as first:
        for step in range(3):
            first.log_image("samples", _image(10 * step + 5), step=step, caption=f"s{step}")
        first.log_image("batch", np.stack([_image(1), _image(2), _image(3)]), step=0)
        rng = np.random.default_rng(0)
        for step in range(30):
            first.log_histogram("weights", rng.normal(step, 1.0, 500), step=step, bins=16)
        first.log_text("notes", "hello\nworld", step=4)
        first.log_text("long", BIG_TEXT, step=0)
        first.log_html("report", HTML, step=1)
        first.log_table("preds", [[1, "a", 0.5], [2, "b", 0.25]], step=2,
                        columns=["id", "label", "score"])  # fmt: skip
    with polytrack.init("m", "second", dir=home, mode="offline", capture=CAPTURE) as second:
        second.log_image("samples", _image(200), step=7)
        second.log_image("private", _image(99), step=0)
        for tick in range(250):  # more steps than a key's answer carries by default
            second.log_text("ticks", f"tick {tick}", step=3 * tick)
    return {"home": home, "first": first.id, "second": second.id}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("dashboard-media")
    with isolated(root):
        yield _home(root)


@pytest.fixture
def client(recorded: dict[str, Any]) -> TestClient:
    app = create_app(recorded["home"], token=None, loopback=True)
    return TestClient(app, base_url="http://127.0.0.1:5005")


def _base(recorded: dict[str, Any], run: str = "first") -> str:
    return f"/api/runs/{recorded[run]}/media"


def test_listing_names_each_key_with_its_kind_and_step_count(
    client: TestClient, recorded: dict[str, Any]
) -> None:
    """The list has every key, by name, with its kind, step count and URL."""
    listed = client.get(_base(recorded)).json()["media"]
    assert [(m["name"], m["kind"], m["steps"]) for m in listed] == [
        ("batch", "image", 1),
        ("long", "text", 1),
        ("notes", "text", 1),
        ("preds", "table", 1),
        ("report", "html", 1),
        ("samples", "image", 3),
        ("weights", "histogram", 30),
    ]
    assert listed[5]["url"] == f"{_base(recorded)}/samples"
    assert client.get(f"{_base(recorded, 'second')}").json()["media"][0]["name"] == "private"


def test_image_steps_list_their_files_served_as_png(
    client: TestClient, recorded: dict[str, Any]
) -> None:
    """Each step lists its PNGs (a batch all of them); a file is served with its media
    type, nosniff, and the very pixels logged."""
    data = client.get(f"{_base(recorded)}/samples").json()
    assert data["kind"] == "image" and data["total"] == 3 and data["sampled"] is False
    steps = data["steps"]
    assert [s["step"] for s in steps] == [0, 1, 2]
    assert [s["caption"] for s in steps] == ["s0", "s1", "s2"]
    assert steps[1]["shape"] == [1, 6, 8, 3]
    (file,) = steps[1]["files"]
    assert file["media_type"] == "image/png" and file["index"] == 0 and file["size"] > 0
    assert "value" not in steps[1]
    response = client.get(file["url"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert len(response.content) == file["size"]
    pixels = np.asarray(Image.open(io.BytesIO(response.content)))
    assert np.array_equal(pixels, _image(15))

    batch = client.get(f"{_base(recorded)}/batch").json()["steps"][0]
    assert [f["index"] for f in batch["files"]] == [0, 1, 2]
    third = client.get(batch["files"][2]["url"]).content
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(third))), _image(3))


def test_json_and_text_kinds_come_inline(client: TestClient, recorded: dict[str, Any]) -> None:
    """Histograms, tables and text carry their value: one request draws a key."""
    run = polytrack.get_run(recorded["first"], home=recorded["home"])
    weights = client.get(f"{_base(recorded)}/weights").json()["steps"]
    assert len(weights) == 30 and all(s["inline"] for s in weights)
    logged = run.media("weights")[-1].value
    assert weights[-1]["value"]["counts"] == logged.counts.tolist()
    assert weights[-1]["value"]["edges"] == pytest.approx(logged.edges.tolist())

    (table,) = client.get(f"{_base(recorded)}/preds").json()["steps"]
    assert table["value"]["columns"] == ["id", "label", "score"]
    assert table["value"]["data"] == [[1, "a", 0.5], [2, "b", 0.25]]
    (notes,) = client.get(f"{_base(recorded)}/notes").json()["steps"]
    assert notes["value"] == "hello\nworld" and notes["step"] == 4


def test_answers_stay_bounded(client: TestClient, recorded: dict[str, Any]) -> None:
    """`limit` spreads the steps (first and last kept); a file too big to inline is
    fetched by URL instead; `step` picks exactly one."""
    data = client.get(f"{_base(recorded)}/weights", params={"limit": 4}).json()
    assert data["total"] == 30 and data["sampled"] is True
    assert [s["step"] for s in data["steps"]] == [0, 10, 19, 29]

    (long,) = client.get(f"{_base(recorded)}/long").json()["steps"]
    assert long["value"] is None and long["inline"] is False
    assert client.get(long["files"][0]["url"]).text == BIG_TEXT

    one = client.get(f"{_base(recorded)}/weights", params={"step": 12}).json()
    assert [s["step"] for s in one["steps"]] == [12]
    assert client.get(f"{_base(recorded)}/weights", params={"step": 99}).status_code == 404
    assert client.get(f"{_base(recorded)}/weights", params={"limit": 0}).status_code == 400


def test_the_listing_names_every_step_of_a_sampled_key(
    client: TestClient, recorded: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key with more steps than its answer carries lists all of them in `all_steps`, and
    each one left out is fetched with `?step=N`; past `ALL_STEPS_MAX` they are spread."""
    ticks = f"{_base(recorded, 'second')}/ticks"
    data = client.get(ticks).json()
    assert data["total"] == 250 and data["sampled"] is True
    assert len(data["steps"]) == media_api.DEFAULT_STEPS
    assert data["all_steps"] == [3 * tick for tick in range(250)]
    assert data["all_steps_complete"] is True
    left_out = sorted(set(data["all_steps"]) - {s["step"] for s in data["steps"]})
    assert len(left_out) == 50
    (one,) = client.get(ticks, params={"step": left_out[0]}).json()["steps"]
    assert one["step"] == left_out[0] and one["value"] == f"tick {left_out[0] // 3}"

    limited = client.get(f"{_base(recorded)}/weights", params={"limit": 4}).json()
    assert limited["all_steps"] == list(range(30))

    monkeypatch.setattr(media_api, "ALL_STEPS_MAX", 5)
    bounded = client.get(ticks).json()
    assert bounded["all_steps"] == [0, 186, 372, 561, 747]
    assert bounded["all_steps_complete"] is False


def test_html_is_served_sandboxed(client: TestClient, recorded: dict[str, Any]) -> None:
    """HTML comes with a sandbox CSP without allow-same-origin, and nothing else may load:
    it can reach neither the token cookie nor the API."""
    (step,) = client.get(f"{_base(recorded)}/report").json()["steps"]
    assert "value" not in step
    response = client.get(step["files"][0]["url"])
    assert response.status_code == 200
    assert response.text == HTML
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    csp = response.headers["content-security-policy"]
    assert csp.startswith("sandbox allow-scripts;")
    assert "allow-same-origin" not in csp and "default-src 'none'" in csp
    assert "'self'" not in csp.replace("frame-ancestors 'self'", "")
    # One policy, the sandbox: the pages' own is not added next to it.
    assert len(response.headers.get_list("content-security-policy")) == 1
    assert response.headers["x-content-type-options"] == "nosniff"
    # Every other answer keeps the pages' policy.
    page_csp = client.get(_base(recorded)).headers["content-security-policy"]
    assert page_csp.startswith("default-src 'self'")


def test_a_file_of_another_run_is_refused(client: TestClient, recorded: dict[str, Any]) -> None:
    """Files are looked up in the URL's run only: another run's keys and steps are 404s,
    and nothing names a path or a digest."""
    first = _base(recorded)
    assert client.get(f"{first}/private/file", params={"step": 0}).status_code == 404
    assert client.get(f"{first}/samples/file", params={"step": 7}).status_code == 404
    second = _base(recorded, "second")
    assert client.get(f"{second}/samples/file", params={"step": 7}).status_code == 200
    assert client.get(f"{second}/samples/file", params={"step": 0}).status_code == 404
    run = polytrack.get_run(recorded["second"], home=recorded["home"])
    digest = run.media("private")[0].blobs[0].digest
    for path in (
        f"{first}/{digest}/file?step=0",
        f"{first}/..%2F..%2Fblobs/file?step=0",
        f"{first}/samples/file?step=0&index=1",
        f"{first}/nothing",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["kind"] == "not_found"


def test_bad_arguments_are_400s(client: TestClient, recorded: dict[str, Any]) -> None:
    """A file request without a step, or with one that is no number, names the argument."""
    missing = client.get(f"{_base(recorded)}/samples/file")
    assert missing.status_code == 400 and "step" in missing.json()["error"]["message"]
    assert client.get(f"{_base(recorded)}/samples/file?step=x").status_code == 400
    assert client.get(f"{_base(recorded)}/samples/file?step=0&index=-1").status_code == 400
    assert client.get("/api/runs/nope/media").status_code == 404


def test_a_media_named_like_a_file_route_is_still_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name may hold "/": one ending in "/file" reads as the key, not as a file."""
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "home"
    with polytrack.init("m", "slash", dir=home, mode="offline", capture=CAPTURE) as run:
        run.log_text("eval/file", "inside", step=3)
        run.log_image("eval/images", _image(7), step=3)
    client = TestClient(create_app(home, token=None, loopback=True), base_url="http://127.0.0.1")
    base = f"/api/runs/{run.id}/media"
    assert [m["name"] for m in client.get(base).json()["media"]] == ["eval/file", "eval/images"]
    assert client.get(f"{base}/eval/file").json()["steps"][0]["value"] == "inside"
    url = client.get(f"{base}/eval%2Fimages").json()["steps"][0]["files"][0]["url"]
    assert url == f"{base}/eval%2Fimages/file?step=3&index=0"
    assert client.get(url).headers["content-type"] == "image/png"
