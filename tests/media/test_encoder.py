"""The run's media encoder: records only after their blobs are durable, a bounded queue,
failures that warn and never raise, and what a kill -9 keeps."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import polytrack
from polytrack.errors import TrackingWarning
from polytrack.media.encoder import Encoded, MediaEncoder, MediaJob
from polytrack.models import Event, MediaLogged
from polytrack.store.blobs import BlobStore


def job(name: str, data: bytes, step: int = 0, size: int = 0) -> MediaJob:
    return MediaJob(
        name=name,
        kind="text",
        step=step,
        encode=lambda: ([Encoded(data, "text/plain")], None, {}),
        size=size,
    )


def encoder_on(home: Path, recorded: list[Event], **kwargs: Any) -> MediaEncoder:
    store = BlobStore(home)
    encoder = MediaEncoder(
        store=store,
        record=recorded.append,
        warn=lambda kind, message: __import__("warnings").warn(message, TrackingWarning),
        run_id="r1",
        **kwargs,
    )
    encoder.start()
    return encoder


def test_a_record_is_written_only_once_its_blob_is_in_the_store(home: Path) -> None:
    """When a record reaches the journal, every blob it names is in the store already."""
    store = BlobStore(home)
    seen: list[bool] = []

    def record(event: Event) -> None:
        assert isinstance(event, MediaLogged)
        seen.append(all(store.exists(blob.digest) for blob in event.blobs))

    encoder = MediaEncoder(store=store, record=record, warn=lambda *_: None, run_id="r1")
    encoder.start()
    for step in range(20):
        assert encoder.submit(job("t", f"text {step}".encode(), step))
    encoder.stop()
    assert seen == [True] * 20


def test_the_queue_is_bounded_by_bytes_and_everything_still_arrives(home: Path) -> None:
    """With room for one value, callers wait for the encoder; nothing is dropped."""
    recorded: list[Event] = []
    gate = threading.Event()

    def slow() -> tuple[list[Encoded], None, dict[str, Any]]:
        gate.wait(5)
        return [Encoded(b"slow", "text/plain")], None, {}

    encoder = encoder_on(home, recorded, max_bytes=100)
    encoder.submit(MediaJob(name="s", kind="text", step=0, encode=slow, size=100))
    waited = threading.Event()

    def second() -> None:
        encoder.submit(job("t", b"second", 1, size=100))
        waited.set()

    caller = threading.Thread(target=second)
    caller.start()
    assert not waited.wait(0.2)  # no room while the first is being encoded
    gate.set()
    caller.join(5)
    assert waited.is_set()
    encoder.stop()
    assert [event.step for event in recorded if isinstance(event, MediaLogged)] == [0, 1]


def test_a_failing_encoding_warns_and_the_rest_is_recorded(home: Path) -> None:
    """An encoder error is a tracking failure: a TrackingWarning, never an exception."""
    recorded: list[Event] = []

    def broken() -> tuple[list[Encoded], None, dict[str, Any]]:
        raise ValueError("cannot encode")

    encoder = encoder_on(home, recorded)
    with pytest.warns(TrackingWarning, match="cannot encode"):
        encoder.submit(MediaJob(name="bad", kind="text", step=0, encode=broken))
        encoder.submit(job("good", b"fine"))
        assert encoder.drain(5)
    encoder.stop()
    assert [event.name for event in recorded if isinstance(event, MediaLogged)] == ["good"]


def test_stop_drains_and_is_idempotent_and_later_submits_are_refused(home: Path) -> None:
    """stop() records everything queued; a job handed over after it is refused."""
    recorded: list[Event] = []
    encoder = encoder_on(home, recorded)
    for step in range(10):
        encoder.submit(job("t", b"x%d" % step, step))
    encoder.stop()
    encoder.stop()
    assert len(recorded) == 10
    assert not encoder.submit(job("t", b"late", 99))
    assert not any(t.name.startswith("polytrack-media") for t in threading.enumerate())


def test_kill_9_keeps_every_recorded_image_readable(home: Path, tmp_path: Path) -> None:
    """A run killed with SIGKILL while images are queued: what was recorded reads back
    whole (the records drained before the kill, at least), and nothing reads as damaged."""
    script = tmp_path / "kill.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os, signal, numpy as np, polytrack
            run = polytrack.init(dir={str(home)!r}, capture=False)
            image = np.arange(32 * 32 * 3, dtype=np.uint8).reshape(32, 32, 3)
            for step in range(20):
                run.log_image("x", image, step=step)
            assert len(run.media("x")) == 20  # drained: these are recorded
            for step in range(20, 400):
                run.log_image("x", image, step=step)
            print(run.id, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )  # fmt: skip
    assert done.returncode == -9, done.stderr
    run_id = done.stdout.strip()
    items = polytrack.get_run(run_id, home=home).media("x")
    assert [item.step for item in items[:20]] == list(range(20))
    image = np.arange(32 * 32 * 3, dtype=np.uint8).reshape(32, 32, 3)
    for item in items:
        assert np.array_equal(item.value, image)


def test_a_job_that_cannot_be_made_on_the_thread_warns_and_frees_its_room(home: Path) -> None:
    """A hand-over made on the thread (`submit_later`) that fails: one warning, the rest
    recorded, its bytes given back to the bound, and the thread still running."""
    recorded: list[Event] = []

    def broken(*_: Any) -> MediaJob:
        raise ValueError("cannot make")

    encoder = encoder_on(home, recorded, max_bytes=100)
    with pytest.warns(TrackingWarning, match="cannot make"):
        assert encoder.submit_later(100, (broken, 1, 2))
        assert encoder.drain(5)
    encoder.submit(job("after", b"fine", size=100))  # room again: it does not wait
    assert encoder.drain(5)
    encoder.stop()
    assert [event.name for event in recorded if isinstance(event, MediaLogged)] == ["after"]
