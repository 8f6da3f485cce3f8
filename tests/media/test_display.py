"""How a media record shows itself in a notebook (`MediaItem._repr_html_`): each kind's
HTML holds its value, embeds no more than the inline bound, and escapes user text."""

from __future__ import annotations

import base64
import html
import io
import json
import re
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import polytrack
from polytrack.media.display import MAX_INLINE_BYTES, MAX_ROWS, item_html
from polytrack.media.read import MediaItem
from polytrack.models import MediaBlob, MediaLogged
from polytrack.store.blobs import BlobStore, blob_path

SCRIPT = "<script>alert(1)</script>"


def logged(home: Path, log: str, *args: object, **kwargs: object) -> MediaItem:
    """The record one `run.<log>(...)` call makes, read back from a finished run."""
    run = polytrack.init(dir=home, capture=False)
    getattr(run, log)(*args, **kwargs)
    run.finish()
    name = args[0]
    assert isinstance(name, str)
    (item,) = polytrack.get_run(run.id, home=home).media(name)
    return item


def stored(
    home: Path,
    kind: str,
    files: list[tuple[bytes, str]],
    *,
    meta: dict[str, object] | None = None,
    caption: str | None = None,
) -> MediaItem:
    """A record of `kind` whose files are put in the home's real blob store as the media
    contract lays them out (for kinds checked here apart from their log calls)."""
    store = BlobStore(home)
    blobs = tuple(
        MediaBlob(put.digest, put.size, media_type)
        for data, media_type in files
        for put in (store.put_bytes(data),)
    )
    store.flush()
    record = MediaLogged(
        name="m", kind=kind, step=3, blobs=blobs, caption=caption, meta=meta or {}
    )
    return MediaItem.of(record, store)


def data_uris(text: str, media_type: str) -> list[bytes]:
    return [
        base64.b64decode(found)
        for found in re.findall(rf'src="data:{re.escape(media_type)};base64,([^"]+)"', text)
    ]


def png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def wav(frames: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(8000)
        writer.writeframes(b"\0\1" * frames)
    return out.getvalue()


def test_an_image_batch_shows_every_image_and_the_caption_under(home: Path) -> None:
    """Each image of a batch is an <img> whose data: URI is its PNG; the caption follows."""
    batch = np.random.default_rng(0).integers(0, 256, (3, 5, 4, 3), dtype=np.uint8)
    item = logged(home, "log_image", "samples/val", batch, step=2, caption="three")
    shown = item._repr_html_()
    assert shown == item_html(item)
    images = data_uris(shown, "image/png")
    assert len(images) == 3
    for image, expected in zip(images, batch, strict=True):
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(image))), expected)
    assert "samples/val" in shown and "step 2" in shown
    assert shown.count('style="width:96px;') == 3  # 4 pixels wide: drawn 24 times larger
    assert shown.rindex("three") > shown.rindex("<img")


def test_images_past_the_inline_bound_are_counted_not_embedded(home: Path) -> None:
    """A batch over MAX_INLINE_BYTES embeds what fits and says how many are left out."""
    small = png(np.zeros((2, 2, 3), np.uint8))
    item = stored(
        home, "image", [(small, "image/png"), (b"\x89PNG" + b"\0" * MAX_INLINE_BYTES, "image/png")]
    )
    shown = item_html(item)
    assert data_uris(shown, "image/png") == [small]
    assert "1 more image(s) (5.0 MiB) not shown" in shown


def test_user_text_is_escaped_everywhere(home: Path) -> None:
    """A name, caption or text holding <script> shows as text, never as markup."""
    image = logged(home, "log_image", f"a{SCRIPT}", np.zeros((2, 2), np.uint8), caption=SCRIPT)
    text = logged(home, "log_text", "notes", f"{SCRIPT} & more")
    for shown in (item_html(image), item_html(text)):
        assert "<script" not in shown
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown
    assert "<pre" in item_html(text) and "&amp; more" in item_html(text)


def test_a_histogram_is_an_svg_bar_chart(home: Path) -> None:
    """One bar per bin, its count in the bar's title; inline SVG, no script."""
    values = np.random.default_rng(1).normal(size=200)
    item = logged(home, "log_histogram", "weights", values, bins=8)
    shown = item_html(item)
    counts, _ = np.histogram(values, bins=8)
    assert shown.count("<rect") == 8 and "<svg" in shown and "<script" not in shown
    titles = re.findall(r"\): (\d+)</title>", shown)
    assert [int(t) for t in titles] == counts.tolist()
    assert "8 bins, 200 values" in shown


def test_html_is_sandboxed_in_an_iframe(home: Path) -> None:
    """The document goes into a sandboxed iframe's srcdoc, escaped as an attribute."""
    document = f'<h1 class="x">Epoch 3</h1>{SCRIPT}'
    shown = item_html(logged(home, "log_html", "report", document))
    (srcdoc,) = re.findall(r'<iframe sandbox="" srcdoc="([^"]*)"', shown)
    assert html.unescape(srcdoc) == document
    assert "<h1" not in shown and "<script" not in shown


def test_a_table_shows_its_first_rows_escaped(home: Path) -> None:
    """An HTML table of the first MAX_ROWS rows, cells escaped, the rest counted."""
    rows = [[i, f"<i>{i}</i>", i / 2] for i in range(MAX_ROWS + 7)]
    shown = item_html(logged(home, "log_table", "predictions", rows, columns=["id", "html", "x"]))
    assert shown.count("<th ") == 3 and shown.count("<tr>") == MAX_ROWS + 1
    assert "&lt;i&gt;49&lt;/i&gt;" in shown and "<i>" not in shown
    assert "&lt;i&gt;50&lt;/i&gt;" not in shown and "7 more rows not shown" in shown


def test_a_figure_shows_its_png_else_its_library(home: Path) -> None:
    """A matplotlib figure shows its PNG; a spec without a PNG names its library."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(1, 1))
    figure.add_subplot().plot([0, 1], [1, 0])
    item = logged(home, "log_figure", "calibration", figure, caption=SCRIPT)
    shown = item_html(item)
    (index,) = [i for i, b in enumerate(item.blobs) if b.media_type == "image/png"]
    assert data_uris(shown, "image/png") == [item.data(index)]
    assert "<script" not in shown

    spec = json.dumps({"library": "vega-lite", "spec": {"mark": "bar"}}).encode()
    bare = stored(home, "figure", [(spec, "application/json")], meta={"library": "vega-lite"})
    assert "a vega-lite figure" in item_html(bare) and "data:" not in item_html(bare)


def test_audio_and_video_are_players(home: Path) -> None:
    """WAV in <audio>, a GIF as <img>, MP4 in <video>: each its own file as a data: URI."""
    sound = logged(home, "log_audio", "speech", np.zeros(800), sample_rate=8000)
    shown = item_html(sound)
    assert "<audio controls" in shown and data_uris(shown, "audio/wav") == [sound.data()]

    video = logged(home, "log_video", "rollout", np.zeros((3, 4, 4, 3), np.uint8), fps=2)
    shown = item_html(video)
    assert data_uris(shown, "image/gif") == [video.data()] and "<video" not in shown

    mp4 = b"\0\0\0\x18ftypmp42" + bytes(64)
    shown = item_html(stored(home, "video", [(mp4, "video/mp4")]))
    assert "<video controls" in shown and data_uris(shown, "video/mp4") == [mp4]


def test_sound_past_the_inline_bound_is_said_not_embedded(home: Path) -> None:
    """A WAV over MAX_INLINE_BYTES is not embedded; the cell says how to fetch it."""
    shown = item_html(stored(home, "audio", [(wav(MAX_INLINE_BYTES // 2 + 1), "audio/wav")]))
    assert "data:" not in shown and "over the 5.0 MiB shown inline" in shown
    assert "polytrack media get" in shown


def test_a_curve_is_an_svg_polyline_with_its_facts(home: Path) -> None:
    """A ROC curve's points become a polyline on the unit square; its annotation under."""
    item = logged(home, "log_roc_curve", "val/roc", [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    shown = item_html(item)
    (points,) = re.findall(r'<polyline[^>]* points="([^"]*)"', shown)
    assert len(points.split()) == len(item.value.x)
    assert f"roc · {item.meta['annotation']}" in shown and "x 0 to 1" in shown

    payload = json.dumps({"x": [1, 2], "y": [3, 4]}).encode()
    custom = stored(home, "curve", [(payload, "application/json")], meta={"kind": "pr",
                    "average_precision": 0.5})  # fmt: skip
    assert "pr · average precision 0.5" in item_html(custom)
    noted = stored(home, "curve", [(payload, "application/json")], meta={"annotation": SCRIPT})
    assert "<script" not in item_html(noted) and "&lt;script&gt;" in item_html(noted)


def test_a_confusion_matrix_is_a_table_of_counts(home: Path) -> None:
    """True labels as rows, predicted as columns, every count in its cell; labels escaped."""
    item = logged(home, "log_confusion_matrix", "val/confusion",
                  ["cat", "<dog>", "cat", "cat"], ["cat", "cat", "<dog>", "cat"])  # fmt: skip
    shown = item_html(item)
    cells = [int(c) for c in re.findall(r"<td[^>]*>(\d+)</td>", shown)]
    assert cells == [v for row in item.value.z for v in row]
    assert sum(cells) == 4
    assert "&lt;dog&gt;" in shown and "<dog>" not in shown


def test_a_missing_blob_is_said_not_raised(home: Path) -> None:
    """A record whose file left the store shows why instead of raising in the notebook."""
    item = logged(home, "log_text", "notes", "hello")
    path = blob_path(home, item.blobs[0].digest)
    path.chmod(0o644)
    path.unlink()
    shown = item_html(item)
    assert "cannot show this text" in shown and "notes" in shown


@pytest.mark.parametrize("kind", ["histogram", "table", "curve", "confusion"])
def test_a_malformed_payload_is_said_not_raised(home: Path, kind: str) -> None:
    """JSON that is not the kind's layout shows a note, not a traceback."""
    item = stored(home, kind, [(b'{"nothing": 1}', "application/json")])
    assert f"cannot show this {kind}" in item_html(item)
