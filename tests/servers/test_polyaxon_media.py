"""Media synced to a real Polyaxon sandbox as Polyaxon's own event kinds, read back through
its streams API: the events of each kind, and the asset files they point at."""

from __future__ import annotations

import io
import json
import uuid
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

import polytrack
from polytrack.errors import BackendRejectedError
from polytrack.models import MediaBlob, MediaLogged, RunStarted
from polytrack.store.blobs import BlobStore
from polytrack.sync.backends.base import Batch
from polytrack.sync.backends.polyaxon import PolyaxonBackend, run_uuid

from .polyaxon_sandbox import OWNER, PolyaxonSandbox

pytestmark = pytest.mark.slow

CREATED = 1_732_612_345.5
STAMP = "2024-11-26 09:12:25.500000+00:00"  # CREATED as the event lines write it
LABELS = ["cat", "dog|wolf"]


@pytest.fixture
def project() -> str:
    return f"m-{uuid.uuid4().hex[:10]}"


def started(run_id: str) -> RunStarted:
    return RunStarted(
        id=run_id,
        project="p",
        name="media",
        created_at=CREATED,
        host="host",
        pid=1,
        process_started=0.0,
    )


class CountingSession(requests.Session):
    """A real session that counts the files it posts to the streams API."""

    def __init__(self) -> None:
        super().__init__()
        self.uploads: list[str] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        if method == "POST" and str(url).endswith("/artifact"):
            self.uploads.append(str(url))
        return super().request(method, url, *args, **kwargs)


def backend(sandbox: PolyaxonSandbox, project: str, home: Path, **options: Any) -> PolyaxonBackend:
    uri = f"polyaxon+{sandbox.url}/{OWNER}/{project}"
    return PolyaxonBackend.from_uri(uri, environ={}, home=home, **options)


def put(home: Path, data: bytes, media_type: str) -> MediaBlob:
    store = BlobStore(home)
    stored = store.put_bytes(data)
    store.flush()
    return MediaBlob(stored.digest, stored.size, media_type)


def put_json(home: Path, value: Any) -> MediaBlob:
    return put(home, json.dumps(value).encode(), "application/json")


def png(pixels: np.ndarray) -> bytes:
    image = pytest.importorskip("PIL.Image")
    out = io.BytesIO()
    image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def wav(samples: np.ndarray, rate: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(rate)
        file.writeframes(samples.astype("<i2").tobytes())
    return out.getvalue()


def media(
    name: str, kind: str, step: int, blobs: tuple[MediaBlob, ...], **fields: Any
) -> MediaLogged:
    return MediaLogged(name, kind, step, blobs, logged_at=CREATED, **fields)


def events(
    sandbox: PolyaxonSandbox, project: str, run_id: str, kind: str, name: str
) -> dict[str, list[Any]]:
    """The events of one file as the server reads them (the multi-run events endpoint),
    as columns {step, timestamp, <kind>}; {} when it has no such file."""
    uuid_hex = run_uuid(OWNER, project, run_id)
    page = sandbox.streams(
        "GET",
        f"{OWNER}/{project}/runs/multi/events/{kind}",
        params={"runs": uuid_hex, "names": name, "orient": "dict", "force": "true"},
    )
    for event in page["data"].get(uuid_hex, []):
        if event["name"] == name:
            return event["data"]  # type: ignore[no-any-return]
    return {}


def values(
    sandbox: PolyaxonSandbox, project: str, run_id: str, kind: str, name: str
) -> dict[int, Any]:
    """{step: the event's value}, JSON values decoded."""
    got = events(sandbox, project, run_id, kind, name)
    decoded = [
        value if kind in ("text", "html") else json.loads(value) for value in got.get(kind, [])
    ]
    return dict(zip(got.get("step", []), decoded, strict=True))


def download(sandbox: PolyaxonSandbox, project: str, run_id: str, path: str) -> bytes:
    url = (
        f"{sandbox.url}/streams/v1/polyaxon/{OWNER}/{project}/runs/"
        f"{run_uuid(OWNER, project, run_id)}/artifact"
    )
    params = {"path": path, "stream": "true", "force": "true"}
    response = requests.get(url, params=params, timeout=30)
    response.raise_for_status()
    return response.content


def test_each_kind_reads_back_as_polyaxons_event(
    sandbox: PolyaxonSandbox, project: str, tmp_path: Path
) -> None:
    """Images at two steps (a batch of two at step 0), a histogram, a curve, a text, a
    table, a confusion matrix, a plotly figure, html and audio come back from the server
    as its own event kinds; the PNG, WAV and CSV assets download byte for byte."""
    home = tmp_path / "home"
    first = np.arange(60, dtype=np.uint8).reshape(4, 5, 3)
    second = np.full((4, 5, 3), 200, dtype=np.uint8)
    batch_png, other_png, next_png = png(first), png(first[::-1].copy()), png(second)
    sound = wav(np.array([0, 1000, -1000, 32767], dtype=np.int16), 8000)
    text = 'line one\nhas a | pipe and "quotes"'
    spec = {"data": [{"x": [1, 2], "y": [3, None], "type": "scatter"}], "layout": {}}
    records = (
        media(
            "samples",
            "image",
            0,
            (put(home, batch_png, "image/png"), put(home, other_png, "image/png")),
            shape=(2, 4, 5, 3),
        ),
        media("samples", "image", 1, (put(home, next_png, "image/png"),), shape=(1, 4, 5, 3)),
        media(
            "layer/weights",
            "histogram",
            1,
            (put_json(home, {"edges": [0.0, 0.5, 1.0, 1.5], "counts": [1, 5, 2]}),),
            shape=(3,),
        ),
        media(
            "roc",
            "curve",
            2,
            (put_json(home, {"x": [0.0, 0.5, 1.0], "y": [0.0, 0.8, 1.0]}),),
            shape=(3,),
            meta={"kind": "roc", "auc": 0.75},
        ),
        media("notes", "text", 0, (put(home, text.encode(), "text/plain"),), shape=(len(text),)),
        media(
            "predictions",
            "table",
            3,
            (
                put_json(
                    home,
                    {
                        "columns": ["id", "label"],
                        "data": [[1, "cat"], [2.5, None], [3, "a,b"]],
                        "dtypes": ["float64", "object"],
                    },
                ),
            ),
            shape=(3, 2),
        ),
        media(
            "cm",
            "confusion",
            3,
            (put_json(home, {"x": LABELS, "y": LABELS, "z": [[3, 1], [0, 4]]}),),
            shape=(2, 2),
        ),
        media(
            "fig",
            "figure",
            0,
            (put_json(home, {"library": "plotly", "spec": spec}),),
            meta={"library": "plotly"},
        ),
        media("report", "html", 0, (put(home, b"<b>hi</b>", "text/html"),), shape=(9,)),
        media(
            "beep",
            "audio",
            0,
            (put(home, sound, "audio/wav"),),
            shape=(4, 1),
            meta={"sample_rate": 8000},
        ),
    )
    client = backend(sandbox, project, home)
    client.open_run(started("run-m"), workdir=tmp_path / "work")
    client.write("run-m", Batch(0, records))
    client.set_status("run-m", "succeeded", at=CREATED + 10)
    client.close()

    got = events(sandbox, project, "run-m", "image", "samples")
    assert (got["step"], got["timestamp"]) == ([0, 1], [STAMP, STAMP])
    images = values(sandbox, project, "run-m", "image", "samples")
    assert images == {
        0: {"height": 4, "width": 5, "colorspace": 3, "path": "assets/image/samples_0.png"},
        1: {"height": 4, "width": 5, "colorspace": 3, "path": "assets/image/samples_1.png"},
    }
    assert download(sandbox, project, "run-m", images[0]["path"]) == batch_png
    assert download(sandbox, project, "run-m", images[1]["path"]) == next_png
    extra = values(sandbox, project, "run-m", "image", "samples__1")  # image 1 of the batch
    assert list(extra) == [0]
    assert download(sandbox, project, "run-m", extra[0]["path"]) == other_png

    assert values(sandbox, project, "run-m", "histogram", "layer__weights") == {
        1: {"values": [1, 5, 2], "counts": [0.0, 0.5, 1.0, 1.5]}  # traceml's names
    }
    assert values(sandbox, project, "run-m", "curve", "roc") == {
        2: {"kind": "roc", "x": [0.0, 0.5, 1.0], "y": [0.0, 0.8, 1.0], "annotation": "0.75"}
    }
    assert values(sandbox, project, "run-m", "text", "notes") == {0: text}
    assert values(sandbox, project, "run-m", "html", "report") == {0: "<b>hi</b>"}
    assert values(sandbox, project, "run-m", "confusion", "cm") == {
        3: {"x": LABELS, "y": LABELS, "z": [[3, 1], [0, 4]]}  # "|" quoted in the file
    }
    chart = events(sandbox, project, "run-m", "chart", "fig")
    assert chart["step"] == [0]
    assert json.loads(chart["chart"][0]) == {"kind": "plotly", "figure": spec}  # JSON text

    table = values(sandbox, project, "run-m", "dataframe", "predictions")
    assert table == {3: {"content_type": "csv", "path": "assets/dataframe/predictions_3.csv"}}
    csv = download(sandbox, project, "run-m", table[3]["path"])
    assert csv == b'id,label\n1,cat\n2.5,\n3,"a,b"\n'
    audio = values(sandbox, project, "run-m", "audio", "beep")
    assert audio == {
        0: {
            "content_type": "audio/wav",
            "sample_rate": 8000,
            "length_frames": 4,
            "num_channels": 1,
            "path": "assets/audio/beep_0.wav",
        }
    }
    assert download(sandbox, project, "run-m", audio[0]["path"]) == sound


def test_a_batch_sent_again_leaves_one_event_per_step(
    sandbox: PolyaxonSandbox, project: str, tmp_path: Path
) -> None:
    """A batch written twice, also after the next one and by a new process, leaves one
    event per step, and its asset is uploaded once; a step logged again replaces its
    event, and its asset where the bytes changed."""
    home = tmp_path / "home"
    old, new = png(np.zeros((2, 2, 3), np.uint8)), png(np.ones((2, 2, 3), np.uint8) * 9)
    image0 = media("img", "image", 0, (put(home, old, "image/png"),), shape=(1, 2, 2, 3))
    text0 = media("log", "text", 0, (put(home, b"first", "text/plain"),), shape=(5,))
    image1 = media("img", "image", 1, (put(home, old, "image/png"),), shape=(1, 2, 2, 3))
    first, second = Batch(0, (image0, text0)), Batch(1, (image1,))
    session = CountingSession()
    client = backend(sandbox, project, home, upload_interval=0, session=session)
    client.open_run(started("run-r"), workdir=tmp_path / "work")
    client.write("run-r", first)
    client.write("run-r", first)
    assert list(values(sandbox, project, "run-r", "image", "img")) == [0]  # uploaded when due
    client.write("run-r", second)
    client.write("run-r", first)
    client.close()
    # Each PNG once; the event files: the image's after batches 0 and 1, the text's once.
    assert len(session.uploads) == 2 + 3

    session = CountingSession()
    again = backend(sandbox, project, home, upload_interval=3600, session=session)
    again.open_run(started("run-r"), workdir=tmp_path / "work")
    again.write("run-r", second)
    replaced = media("img", "image", 1, (put(home, new, "image/png"),), shape=(1, 2, 2, 3))
    again.write("run-r", Batch(2, (replaced,)))
    again.write("run-r", Batch(3, (image0,)))  # step 0 again, the same PNG: not re-sent
    again.close()
    assert len(session.uploads) == 1 + 1  # the new PNG; the image's event file, on close

    got = events(sandbox, project, "run-r", "image", "img")
    assert got["step"] == [0, 1]
    assert events(sandbox, project, "run-r", "text", "log")["step"] == [0]
    assert download(sandbox, project, "run-r", "assets/image/img_0.png") == old
    assert download(sandbox, project, "run-r", "assets/image/img_1.png") == new


def test_a_missing_blob_is_refused_and_the_rest_is_sent(
    sandbox: PolyaxonSandbox, project: str, tmp_path: Path
) -> None:
    """A record whose blob is not in the store is named in a rejection; the batch's other
    media and points are still sent, and the batch counts as applied."""
    home = tmp_path / "home"
    gone = MediaBlob("sha256:" + "ab" * 32, 10, "image/png")
    text = media("log", "text", 0, (put(home, b"kept", "text/plain"),), shape=(4,))
    client = backend(sandbox, project, home)
    client.open_run(started("run-x"), workdir=tmp_path / "work")
    batch = Batch(0, (media("lost", "image", 0, (gone,), shape=(1, 2, 2, 3)), text))
    with pytest.raises(BackendRejectedError, match="image 'lost' at step 0"):
        client.write("run-x", batch)
    client.write("run-x", batch)  # applied already: nothing raised, nothing sent twice
    client.close()

    assert values(sandbox, project, "run-x", "text", "log") == {0: "kept"}
    assert events(sandbox, project, "run-x", "image", "lost") == {}


def test_a_runs_media_reach_polyaxon_through_the_sync(
    sandbox: PolyaxonSandbox, project: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that logs images, a histogram and a text with a Polyaxon backend: after
    finish(), the server holds their events, and the image asset is the run's PNG."""
    monkeypatch.setenv("POLYTRACK_SYNC_TIMEOUT", "120")
    client = PolyaxonBackend.from_uri(f"polyaxon+{sandbox.url}/{OWNER}/{project}", environ={})
    run = polytrack.init(dir=home, backend=client, capture=False)
    pixels = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    run.log_image("digits", pixels, step=0)
    run.log_image("digits", pixels[::-1], step=1)
    run.log_histogram("w", np.arange(100.0), step=1, bins=4)
    run.log_text("summary", "all good", step=1)
    run.finish()
    [item0, item1] = run.media("digits")

    images = values(sandbox, project, run.id, "image", "digits")
    assert sorted(images) == [0, 1]
    assert download(sandbox, project, run.id, images[0]["path"]) == item0.data(0)
    assert download(sandbox, project, run.id, images[1]["path"]) == item1.data(0)
    [histogram] = values(sandbox, project, run.id, "histogram", "w").values()
    assert histogram == {"values": [25, 25, 25, 25], "counts": [0, 24.75, 49.5, 74.25, 99]}
    assert values(sandbox, project, run.id, "text", "summary") == {1: "all good"}
