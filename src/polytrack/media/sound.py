"""Sound and moving pictures: `log_audio` (WAV) and `log_video` (GIF, MP4, WebM).

Audio: samples (frames,) or (frames, channels), floats in [-1, 1] (clipped) or int16,
numpy or torch; a 2-D array with more than 16 "channels" and at most 16 rows is read as
(channels, frames), the layout torchaudio gives. Copied on the caller's thread, written
as 16-bit PCM WAV with the standard library's `wave` on the encoder thread, read back
as an `Audio` of float32 samples in [-1, 1] (int16 / 32767, so 1.0 comes back as 1.0).

Video: frames (time, height, width, channels) or (time, channels, height, width), 1, 3
or 4 channels, uint8 or floats in [0, 1], checked and copied with the image helpers
(`polytrack.media.images`). A GIF is made with Pillow (no extra needed; its palette is
exact for up to 256 colours a frame, its frame times are in hundredths of a second, and
Pillow merges consecutive identical frames into one longer frame); MP4 and WebM
with ffmpeg through imageio (`pip install 'polytrack[video]'`), whose absence is said at
call time. Frames past `Settings.media_max_side` are scaled down as images are.
"""

from __future__ import annotations

import importlib.util
import io
import math
import tempfile
import time
import wave
from pathlib import Path
from typing import Any, Final

import numpy as np
from attrs import frozen

from polytrack._text import safe_repr
from polytrack.errors import InvalidInputError
from polytrack.media.encoder import Encoded, MediaJob
from polytrack.media.images import prepare_image, to_nhwc_uint8

__all__ = [
    "VIDEO_FORMATS",
    "Audio",
    "audio_job",
    "decode_audio",
    "encode_video",
    "encode_wav",
    "video_job",
]

MAX_CHANNELS: Final = 16
VIDEO_FORMATS: Final = {"gif": "image/gif", "mp4": "video/mp4", "webm": "video/webm"}
_FULL_SCALE: Final = 32767.0


@frozen(eq=False)
class Audio:
    """A sound read back: `samples` float32 in [-1, 1] shaped (frames, channels)."""

    samples: np.ndarray
    sample_rate: int

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration(self) -> float:
        """Seconds."""
        return int(self.samples.shape[0]) / self.sample_rate

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Audio)
            and self.sample_rate == other.sample_rate
            and np.array_equal(self.samples, other.samples)
        )

    __hash__ = None  # type: ignore[assignment]


# -- audio --------------------------------------------------------------------------------


def audio_job(
    name: str, data: Any, step: int, *, sample_rate: Any = 44100, caption: str | None = None
) -> MediaJob:
    """The job of one `log_audio` call: the samples copied now, the WAV made later.

    Raises:
        InvalidInputError: not (frames,) or (frames, channels) samples of floats or
            int16, NaN among them, no frames, or a `sample_rate` that is no positive int.

    Example:
        >>> job = audio_job("tone", np.sin(np.linspace(0, 440 * 2 * np.pi, 16000)), 0,
        ...                 sample_rate=16000)
    """
    rate = _sample_rate(sample_rate)
    samples = _samples(data)
    return MediaJob(
        name=name,
        kind="audio",
        step=step,
        encode=lambda: ([encode_wav(samples, rate)], None, {}),
        shape=(int(samples.shape[0]), int(samples.shape[1])),
        caption=caption,
        meta={"sample_rate": rate},
        size=samples.nbytes,
        logged_at=time.time(),
    )


def _sample_rate(value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or not (0 < value < 2**31)
    ):
        raise InvalidInputError(
            f"sample_rate must be a positive int (samples per second); got {safe_repr(value)}"
        )
    return int(value)


def _samples(data: Any) -> np.ndarray:
    """A copy of `data` as (frames, channels), float64 or int16."""
    if type(data).__module__.startswith("torch") and hasattr(data, "detach"):
        data = data.detach().cpu().numpy()
    try:
        array = np.array(data)  # a copy: the caller may reuse their buffer at once
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"data is not an array of samples: {exc}") from None
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise InvalidInputError(f"data (shape {array.shape}) holds NaN or infinite samples")
    elif array.dtype != np.int16:
        raise InvalidInputError(
            f"data has dtype {array.dtype} (shape {array.shape}): samples are floats in "
            "[-1, 1] or int16"
        )
    if array.ndim == 1:
        array = array[:, None]
    elif array.ndim == 2 and array.shape[1] > MAX_CHANNELS >= array.shape[0]:
        array = np.ascontiguousarray(array.T)  # (channels, frames), as torchaudio gives
    if array.ndim != 2 or array.shape[0] == 0 or not 1 <= array.shape[1] <= MAX_CHANNELS:
        raise InvalidInputError(
            f"data has shape {np.shape(data)}: audio is (frames,) or (frames, channels) "
            f"with 1 to {MAX_CHANNELS} channels and at least one frame"
        )
    return array


def encode_wav(samples: np.ndarray, sample_rate: int) -> Encoded:
    """A 16-bit PCM WAV of (frames, channels) samples (the encoder thread's part)."""
    if samples.dtype.kind == "f":
        pcm = np.rint(np.clip(samples, -1.0, 1.0) * _FULL_SCALE).astype("<i2")
    else:
        pcm = samples.astype("<i2", copy=False)
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(int(samples.shape[1]))
        writer.setsampwidth(2)
        writer.setframerate(sample_rate)
        writer.writeframes(np.ascontiguousarray(pcm).tobytes())  # interleaved by frame
    return Encoded(out.getvalue(), "audio/wav")


def decode_audio(data: bytes) -> Audio:
    """A WAV file read back (8, 16 or 32-bit PCM) as float32 samples in [-1, 1]."""
    with wave.open(io.BytesIO(data), "rb") as reader:
        channels = reader.getnchannels()
        width = reader.getsampwidth()
        rate = reader.getframerate()
        raw = reader.readframes(reader.getnframes())
    if width == 1:  # 8-bit WAV is unsigned
        samples = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 127.0
    elif width == 2:
        samples = np.frombuffer(raw, "<i2").astype(np.float32) / np.float32(_FULL_SCALE)
    elif width == 4:
        samples = (np.frombuffer(raw, "<i4") / 2147483647.0).astype(np.float32)
    else:
        raise InvalidInputError(f"a WAV of {8 * width}-bit samples is not read here")
    samples = np.clip(samples, -1.0, 1.0).reshape(-1, channels)
    return Audio(samples=samples, sample_rate=rate)


# -- video --------------------------------------------------------------------------------


def video_job(
    name: str,
    frames: Any,
    step: int,
    *,
    fps: Any = 4,
    format: str | None = None,
    caption: str | None = None,
    max_side: int = 0,
) -> MediaJob:
    """The job of one `log_video` call: the frames copied now, encoded later.

    Raises:
        InvalidInputError: frames that are not (T, H, W, C) or (T, C, H, W) pixels, a
            bad `fps` or `format`, or MP4/WebM without imageio-ffmpeg installed.

    Example:
        >>> job = video_job("rollout", np.zeros((10, 64, 64, 3), np.uint8), 0, fps=10)
    """
    rate = _fps(fps)
    kind = _format(format)
    shape = getattr(frames, "shape", None)
    if shape is not None and len(shape) != 4:
        raise InvalidInputError(
            f"frames has shape {tuple(shape)}: a video is (time, height, width, channels) "
            "or (time, channels, height, width)"
        )
    copy, layout, nhwc = prepare_image(frames, arg="frames")
    if not isinstance(copy, np.ndarray) or layout not in ("NHWC", "NCHW"):
        raise InvalidInputError(
            f"frames has shape {getattr(copy, 'shape', nhwc)}: a video is (time, height, "
            "width, channels) or (time, channels, height, width)"
        )
    return MediaJob(
        name=name,
        kind="video",
        step=step,
        encode=lambda: encode_video(copy, layout, fps=rate, format=kind, max_side=max_side),
        shape=nhwc,
        caption=caption,
        meta={"fps": rate, "format": kind},
        size=copy.nbytes,
        logged_at=time.time(),
    )


def _fps(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidInputError(f"fps must be a positive number; got {safe_repr(value)}")
    rate = float(value)
    if not math.isfinite(rate) or not 0 < rate <= 1000:
        raise InvalidInputError(f"fps must be a number in (0, 1000]; got {safe_repr(value)}")
    return rate


def _format(value: str | None) -> str:
    kind = "gif" if value is None else value
    if not isinstance(kind, str) or kind.lower().lstrip(".") not in VIDEO_FORMATS:
        raise InvalidInputError(f"format must be 'gif', 'mp4' or 'webm'; got {safe_repr(value)}")
    kind = kind.lower().lstrip(".")
    if kind != "gif" and (
        importlib.util.find_spec("imageio") is None
        or importlib.util.find_spec("imageio_ffmpeg") is None
    ):
        raise InvalidInputError(
            f"format {kind!r} needs ffmpeg through imageio: pip install 'polytrack[video]' "
            "(or log format='gif', which needs nothing more)"
        )
    return kind


def encode_video(
    copy: np.ndarray,
    layout: str,
    *,
    fps: float,
    format: str,
    max_side: int,
) -> tuple[list[Encoded], tuple[int, ...], dict[str, Any]]:
    """The video file of prepared frames (the encoder thread's part)."""
    from PIL import Image

    frames = to_nhwc_uint8(copy, layout)
    count, height, width, channels = frames.shape
    meta: dict[str, Any] = {}
    if max_side and max(width, height) > max_side:
        scale = max_side / max(width, height)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        frames = np.stack(
            [
                _pixels(
                    Image.fromarray(_plane(frame), _mode(channels)).resize(
                        size, Image.Resampling.LANCZOS
                    ),
                    channels,
                )
                for frame in frames
            ]
        )
        meta["scaled_from"] = [height, width]
    data = _gif(frames, fps) if format == "gif" else _ffmpeg(frames, fps, format)
    _, height, width, _ = frames.shape
    return [Encoded(data, VIDEO_FORMATS[format])], (count, height, width, channels), meta


def _mode(channels: int) -> str:
    return {1: "L", 3: "RGB", 4: "RGBA"}[channels]


def _plane(frame: np.ndarray) -> np.ndarray:
    return frame[:, :, 0] if frame.shape[2] == 1 else frame


def _pixels(image: Any, channels: int) -> np.ndarray:
    array = np.asarray(image)
    return array[:, :, None] if channels == 1 else array


def _gif(frames: np.ndarray, fps: float) -> bytes:
    from PIL import Image

    channels = frames.shape[3]
    images = [Image.fromarray(_plane(frame), _mode(channels)) for frame in frames]
    out = io.BytesIO()
    images[0].save(
        out,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=round(1000 / fps),
        loop=0,
    )
    return out.getvalue()


def _ffmpeg(frames: np.ndarray, fps: float, format: str) -> bytes:
    import imageio.v2 as imageio

    if frames.shape[3] == 1:
        frames = np.repeat(frames, 3, axis=3)
    elif frames.shape[3] == 4:
        frames = frames[:, :, :, :3]  # neither codec below keeps alpha
    # yuv420p needs even sides: pad by repeating the edge rather than let imageio resize.
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    codec = "libx264" if format == "mp4" else "libvpx-vp9"
    with tempfile.TemporaryDirectory(prefix="polytrack-video-") as folder:
        path = Path(folder) / f"video.{format}"
        writer = imageio.get_writer(
            str(path),
            format="FFMPEG",
            mode="I",
            fps=fps,
            codec=codec,
            macro_block_size=1,
            pixelformat="yuv420p",
            ffmpeg_log_level="error",
        )
        try:
            for frame in frames:
                writer.append_data(frame)
        finally:
            writer.close()
        return path.read_bytes()
