"""Audio and video: logged through a real run and read back (WAV samples, GIF frames
pixel for pixel, MP4/WebM decoded by ffmpeg); bad shapes refused naming the argument."""

from __future__ import annotations

import io
import subprocess
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from polytrack.errors import InvalidInputError
from polytrack.media.sound import Audio, audio_job, decode_audio

from ._logged import logged


def test_float_audio_reads_back_within_one_pcm_step(home: Path) -> None:
    """Floats in [-1, 1] are kept as 16-bit PCM: read back within half a step, the
    ends exactly, the rate and shape recorded."""
    tone = np.sin(np.linspace(0, 2 * np.pi * 440, 8000)).astype(np.float32)
    tone[:2] = [1.0, -1.0]
    view = logged(home, lambda run: run.log_audio("tone", tone, step=3, sample_rate=8000))
    [item] = view.media("tone")
    assert (item.kind, item.step, item.shape, item.meta) == (
        "audio",
        3,
        (8000, 1),
        {"sample_rate": 8000},
    )
    assert item.media_type == "audio/wav"
    audio = item.value
    assert audio.sample_rate == 8000 and audio.samples.shape == (8000, 1)
    assert audio.samples.dtype == np.float32
    assert np.abs(audio.samples[:, 0] - tone).max() <= 0.5 / 32767 + 1e-7
    assert audio.samples[:2, 0].tolist() == [1.0, -1.0]


def test_the_file_is_16_bit_pcm_wav_of_the_int16_samples(home: Path) -> None:
    """int16 stereo samples are written as they are: the WAV holds them interleaved."""
    samples = (np.arange(-6, 6) * 2500).astype(np.int16).reshape(6, 2)
    view = logged(home, lambda run: run.log_audio("stereo", samples, sample_rate=22050))
    [item] = view.media("stereo")
    with wave.open(io.BytesIO(item.data()), "rb") as reader:
        assert (reader.getnchannels(), reader.getsampwidth(), reader.getframerate()) == (
            2,
            2,
            22050,
        )
        raw = reader.readframes(6)
    assert np.array_equal(np.frombuffer(raw, "<i2").reshape(6, 2), samples)
    assert item.value == Audio(samples.astype(np.float32) / np.float32(32767), 22050)


def test_loud_floats_are_clipped_and_channels_first_is_understood() -> None:
    """Samples past [-1, 1] are clipped; (2, frames), as torchaudio gives, is stereo."""
    data = np.array([[2.0] * 20, [-3.0] * 20])
    job = audio_job("a", data, 0, sample_rate=100)
    assert job.shape == (20, 2)
    audio = decode_audio(job.encode()[0][0].data)
    assert audio.samples[0].tolist() == [1.0, -1.0]


@pytest.mark.parametrize(
    ("data", "rate", "words"),
    [
        (np.zeros((4, 4, 4)), 100, "data has shape (4, 4, 4)"),
        (np.zeros((40, 40)), 100, "data has shape (40, 40)"),
        (np.array([0.1, np.nan]), 100, "data (shape (2,)) holds NaN"),
        (np.zeros(5, dtype=np.int32), 100, "data has dtype int32"),
        (np.zeros(0), 100, "data has shape (0,)"),
        (np.zeros(5), 0, "sample_rate must be a positive int"),
        (np.zeros(5), True, "sample_rate must be a positive int"),
    ],
)
def test_bad_audio_is_refused_and_nothing_recorded(
    home: Path, data: Any, rate: Any, words: str
) -> None:
    """Bad shapes, dtypes, NaN and rates: InvalidInputError naming the argument."""

    def log(run: Any) -> None:
        with pytest.raises(InvalidInputError) as caught:
            run.log_audio("bad", data, sample_rate=rate)
        assert words in str(caught.value)

    assert logged(home, log).media("bad") == []


def frames(count: int = 4, height: int = 12, width: int = 10) -> np.ndarray:
    """Frames of a few distinct flat colours: a GIF palette holds them exactly."""
    video = np.zeros((count, height, width, 3), np.uint8)
    for t in range(count):
        video[t, :, :, t % 3] = 40 * (t + 1)
        video[t, : height // 2, : width // 2] = (255, 255, 255)
    return video


def test_a_gif_reads_back_frame_for_frame(home: Path) -> None:
    """The default GIF holds every frame exactly, at 1000/fps ms each, looping."""
    from PIL import Image, ImageSequence

    video = frames()
    view = logged(home, lambda run: run.log_video("rollout", video, step=5, fps=10, caption="ep 5"))
    [item] = view.media("rollout")
    assert (item.kind, item.step, item.shape, item.caption) == ("video", 5, (4, 12, 10, 3), "ep 5")
    assert item.meta == {"fps": 10.0, "format": "gif"} and item.media_type == "image/gif"
    gif = Image.open(io.BytesIO(item.value))
    assert gif.info["loop"] == 0 and gif.info["duration"] == 100
    back = np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(gif)])
    assert np.array_equal(back, video)


def test_channels_first_float_frames_are_the_same_video() -> None:
    """(T, C, H, W) floats in [0, 1] make the same GIF as their (T, H, W, C) uint8 form."""
    from polytrack.media.sound import video_job

    video = frames()
    first = video_job("v", video, 0).encode()[0][0].data
    second = video_job("v", video.transpose(0, 3, 1, 2) / 255.0, 0).encode()[0][0].data
    assert first == second


@pytest.mark.parametrize("fmt", ["mp4", "webm"])
def test_mp4_and_webm_are_made_by_ffmpeg(home: Path, fmt: str) -> None:
    """With the video extra, MP4 and WebM hold every frame at its size (lossy pixels)."""
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    pytest.importorskip("imageio")
    video = frames(count=6, height=16, width=16)
    view = logged(home, lambda run: run.log_video("clip", video, fps=6, format=fmt))
    [item] = view.media("clip")
    assert item.media_type == f"video/{fmt}" and item.meta == {"fps": 6.0, "format": fmt}
    path = home / f"clip.{fmt}"
    path.write_bytes(item.value)
    # ffmpeg itself decodes it (imageio's reader leaves its pipes to the collector).
    done = subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-v",
            "error",
            "-i",
            str(path),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ],
        capture_output=True,
        check=True,
        timeout=60,
    )
    back = np.frombuffer(done.stdout, np.uint8).reshape(-1, 16, 16, 3)
    assert back.shape == video.shape
    assert np.abs(back.astype(int) - video).mean() < 12


def test_large_frames_are_scaled_down_by_the_setting() -> None:
    """Frames past max_side are scaled down, the original size in meta."""
    from polytrack.media.sound import video_job

    _, shape, meta = video_job("v", frames(2, 300, 200), 0, max_side=60).encode()
    assert shape == (2, 60, 40, 3) and meta == {"scaled_from": [300, 200]}


@pytest.mark.parametrize(
    ("data", "options", "words"),
    [
        (np.zeros((4, 4, 3), np.uint8), {}, "frames has shape (4, 4, 3)"),
        (np.zeros((2, 5, 5, 5), np.uint8), {}, "frames has shape (2, 5, 5, 5)"),
        (np.zeros((2, 4, 4, 3), object), {}, "frames has dtype object"),
        (np.zeros((2, 4, 4, 3), np.uint8), {"fps": 0}, "fps must be"),
        (np.zeros((2, 4, 4, 3), np.uint8), {"format": "avi"}, "format must be"),
    ],
)
def test_bad_videos_are_refused_and_nothing_recorded(
    home: Path, data: Any, options: dict[str, Any], words: str
) -> None:
    """Not (T, H, W, C) or (T, C, H, W) pixels, a bad fps or format: InvalidInputError
    naming the argument and the shape."""

    def log(run: Any) -> None:
        with pytest.raises(InvalidInputError) as caught:
            run.log_video("bad", data, **options)
        assert words in str(caught.value)

    assert logged(home, log).media("bad") == []
