"""Images: what `log_image` takes, how it is encoded (PNG), and how it is read back.

Accepted on the caller's thread, where it is copied as it is (a `memcpy`, nothing more):
numpy arrays HW, HWC or CHW (C of 1, 3 or 4), or a batch NHWC / NCHW logged as one
step; uint8, bool, other integers in 0..255 and floats in [0, 1] (clipped; NaN as 0);
PIL images; matplotlib figures (rendered to PNG there, since matplotlib is not thread
safe); torch tensors (detached and moved to the CPU). A channel count that could be
either (a 3x3x3 array) is read as HWC (CHW for a torch tensor), unless `dataformats`
says otherwise.

The encoder thread transposes, scales down past `Settings.media_max_side` and encodes
each image as PNG with Pillow: uint8 pixels come back exactly as logged.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from polytrack._text import safe_repr
from polytrack.errors import InvalidInputError
from polytrack.media.encoder import Encoded

__all__ = [
    "FORMATS",
    "check_boxes",
    "decode_png",
    "draw_boxes",
    "encode_batch",
    "figure_png",
    "prepare_image",
]

# dataformats a caller may name (Polyaxon's and TensorBoard's spelling).
FORMATS: Final = frozenset({"HW", "HWC", "CHW", "NHWC", "NCHW"})
_CHANNELS: Final = (1, 3, 4)
_MODES: Final = {1: "L", 3: "RGB", 4: "RGBA"}


def prepare_image(
    data: Any,
    *,
    arg: str = "data",
    dataformats: str | None = None,
) -> tuple[np.ndarray | bytes, str, tuple[int, ...]]:
    """Check and copy one image or a batch: (copy, its layout, shape as NHWC).

    A matplotlib figure comes back as PNG bytes (layout "PNG").

    Raises:
        InvalidInputError: what it is not (named with `arg` and its shape).
    """
    # torch lays images out channels first (CHW, NCHW): where the shape alone could be
    # either, a tensor is read that way, as TensorBoard's add_image does.
    channels_first = False
    if type(data) is not np.ndarray:
        channels_first = type(data).__module__.startswith("torch")
        data = _as_array(data, arg)
        if isinstance(data, tuple):
            return data
    shape = data.shape
    if (
        dataformats is None
        and data.dtype.kind in "ub"
        and len(shape) == 3
        and shape[2] in (3, 4)
        and shape[0] > 0
        and shape[1] > 0
        and not (channels_first and shape[0] in _CHANNELS)
    ):
        layout = "HWC"  # the common case, checked without the general machinery below
    else:
        if data.dtype.kind not in "uifb":
            raise InvalidInputError(
                f"{arg} has dtype {data.dtype} (shape {shape}): an image is made of "
                "numbers (uint8, or floats in [0, 1])"
            )
        layout = _layout(shape, arg, dataformats, channels_first=channels_first)
    copy = data.copy()  # in C order: the user may change theirs as soon as we return
    if layout == "HWC":
        return copy, layout, (1, shape[0], shape[1], shape[2])
    return copy, layout, _nhwc_shape(shape, layout)


def _as_array(data: Any, arg: str) -> np.ndarray | tuple[bytes, str, tuple[int, ...]]:
    module = type(data).__module__
    if module.startswith("torch") and hasattr(data, "detach"):
        return np.asarray(data.detach().cpu().numpy())
    if module.startswith("PIL.") and hasattr(data, "getbands"):
        image = (
            data
            if data.mode in ("L", "RGB", "RGBA")
            else data.convert("RGBA" if "A" in data.getbands() else "RGB")
        )
        return np.asarray(image)  # a new array: PIL hands out a copy of its pixels
    if module.startswith("matplotlib.") and hasattr(data, "savefig"):
        png = figure_png(data)
        width, height = _png_size(png)
        return png, "PNG", (1, height, width, 4)
    if isinstance(data, (list, tuple)):
        try:
            array = np.asarray(data)
        except (ValueError, TypeError) as exc:
            raise InvalidInputError(f"{arg} is not an array of pixels: {exc}") from None
        return array
    raise InvalidInputError(
        f"{arg} must be a numpy array, a PIL image, a matplotlib figure or a torch "
        f"tensor; got {type(data).__name__} {safe_repr(data)}"
    )


def _layout(
    shape: tuple[int, ...], arg: str, dataformats: str | None, *, channels_first: bool = False
) -> str:
    if dataformats is not None:
        wanted = dataformats.upper()
        if wanted not in FORMATS:
            raise InvalidInputError(
                f"dataformats must be one of {', '.join(sorted(FORMATS))}; "
                f"got {safe_repr(dataformats)}"
            )
        if len(wanted) == len(shape) + 1 and wanted.startswith("N"):
            wanted = wanted[1:]  # a single image given a batch's format
        if len(wanted) == len(shape) and _fits(shape, wanted):
            return wanted
        raise InvalidInputError(
            f"{arg} has shape {shape}, which is not {dataformats} with 1, 3 or 4 channels"
        )
    if len(shape) == 2 and min(shape) > 0:
        return "HW"
    order = ("HWC", "CHW") if len(shape) == 3 else ("NHWC", "NCHW")
    for layout in reversed(order) if channels_first else order:
        if len(layout) == len(shape) and _fits(shape, layout):
            return layout
    if len(shape) == 4:
        raise InvalidInputError(
            f"{arg} has shape {shape}: a 4-D array must be a batch of images, NHWC or NCHW "
            "with 1, 3 or 4 channels"
        )
    raise InvalidInputError(
        f"{arg} has shape {shape}: an image is HW, HWC or CHW (1, 3 or 4 channels), "
        "or a batch of them NHWC or NCHW"
    )


def _fits(shape: tuple[int, ...], layout: str) -> bool:
    sizes = dict(zip(layout, shape, strict=True))
    return (
        sizes.get("C", 1) in _CHANNELS
        and sizes["H"] > 0
        and sizes["W"] > 0
        and (sizes.get("N", 1) > 0)
    )


def _nhwc_shape(shape: tuple[int, ...], layout: str) -> tuple[int, ...]:
    sizes = dict(zip(layout, shape, strict=True))
    return (sizes.get("N", 1), sizes["H"], sizes["W"], sizes.get("C", 1))


def to_nhwc_uint8(copy: np.ndarray, layout: str) -> np.ndarray:
    """The copy as a uint8 NHWC batch: transposed, floats scaled from [0, 1] and clipped."""
    array = copy
    if layout == "HW":
        array = array[None, :, :, None]
    elif layout == "HWC":
        array = array[None]
    elif layout == "CHW":
        array = array.transpose(1, 2, 0)[None]
    elif layout == "NCHW":
        array = array.transpose(0, 2, 3, 1)
    kind = array.dtype.kind
    if kind == "b":
        return array.astype(np.uint8) * 255
    if kind == "f":
        scaled = np.nan_to_num(array.astype(np.float64, copy=False), nan=0.0) * 255.0
        return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    if array.dtype != np.uint8:
        clipped: np.ndarray = np.clip(array, 0, 255).astype(np.uint8)
        return clipped
    return array


def encode_batch(
    copy: np.ndarray | bytes, layout: str, max_side: int, boxes: Any, *, fast: bool = False
) -> tuple[list[Encoded], tuple[int, ...], dict[str, Any]]:
    """PNG files for a prepared image or batch (the encoder thread's part).

    `fast`: store the pixels undeflated (see `_stored_png`) instead of Pillow's
    filtered, deflated PNG; the pixels are the same, the file about as big as the array.
    """
    meta: dict[str, Any] = {}
    if layout == "PNG":
        assert isinstance(copy, bytes)
        width, height = _png_size(copy)
        return [Encoded(copy, "image/png")], (1, height, width, 4), meta
    assert isinstance(copy, np.ndarray)
    from PIL import Image

    batch = to_nhwc_uint8(copy, layout)
    n, height, width, channels = batch.shape
    files: list[Encoded] = []
    size = (width, height)
    for pixels in batch:
        scale = 1.0
        if (max_side and max(width, height) > max_side) or boxes:
            image = Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels, _MODES[channels])
            if max_side and max(width, height) > max_side:
                scale = max_side / max(width, height)
                size = (max(1, round(width * scale)), max(1, round(height * scale)))
                image = image.resize(size, Image.Resampling.LANCZOS)
                meta["scaled_from"] = [height, width]
            if boxes:
                image = draw_boxes(image, boxes, scale)
            pixels = np.asarray(image)
            if pixels.ndim == 2:
                pixels = pixels[:, :, None]
        if fast:
            files.append(Encoded(_stored_png(pixels), "image/png"))
            continue
        out = io.BytesIO()
        Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels).save(
            out, format="PNG", compress_level=1
        )
        files.append(Encoded(out.getvalue(), "image/png"))
    if boxes is not None:
        meta["boxes"] = boxes
    channels = _png_channels(files[0].data) if files else channels
    return files, (n, size[1], size[0], channels), meta


# PNG colour types by channel count: grayscale, RGB, RGBA (PNG spec, 11.2.2 IHDR).
_COLOUR_TYPES: Final = {1: 0, 3: 2, 4: 6}
_CHANNELS_OF_TYPE: Final = {0: 1, 2: 3, 6: 4, 4: 2, 3: 1}


def _stored_png(pixels: np.ndarray) -> bytes:
    """An HWC uint8 array as a PNG with no filter and deflate level 0 (stored blocks).

    Written here rather than by Pillow because Pillow always runs its adaptive row
    filter (~2.5 ms for 224x224x3), which is the whole cost this fast path avoids; the
    format is the PNG spec's simplest case and Pillow, browsers and MLflow read it.
    """
    height, width, channels = pixels.shape
    rows = np.empty((height, width * channels + 1), dtype=np.uint8)
    rows[:, 0] = 0  # filter type None for every row
    rows[:, 1:] = pixels.reshape(height, width * channels)
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOUR_TYPES[channels], 0, 0, 0)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(rows.tobytes(), 0)),
            _chunk(b"IEND", b""),
        )
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_channels(png: bytes) -> int:
    """Channels of a PNG from its IHDR colour type."""
    return _CHANNELS_OF_TYPE.get(png[25], 4) if len(png) > 25 else 4


def figure_png(figure: Any, *, close: bool = False) -> bytes:
    """A matplotlib figure rendered to PNG bytes (on the caller's thread: see above)."""
    out = io.BytesIO()
    figure.savefig(out, format="png")
    if close:
        import matplotlib.pyplot as plt

        plt.close(figure)
    return out.getvalue()


def _png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or len(png) < 24:
        raise InvalidInputError("the figure did not render to a PNG")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def decode_png(files: Sequence[bytes]) -> np.ndarray:
    """The pixels of one PNG (HWC, or HW for grayscale), or a batch stacked (NHWC ...)."""
    from PIL import Image

    arrays = [np.asarray(Image.open(io.BytesIO(data))) for data in files]
    if len(arrays) == 1:
        return arrays[0]
    return np.stack(arrays)


def check_boxes(boxes: Any, labels: Any = None) -> list[dict[str, Any]]:
    """Bounding boxes as JSON: [{"box": [x_min, y_min, x_max, y_max], "label": ...}].

    Raises:
        InvalidInputError: not an (n, 4) array of finite numbers, or labels not one per box.
    """
    try:
        array = np.asarray(boxes, dtype=np.float64)
    except (ValueError, TypeError):
        raise InvalidInputError(f"boxes must be (n, 4) numbers; got {safe_repr(boxes)}") from None
    if array.ndim == 1 and array.size == 4:
        array = array[None]
    if array.ndim != 2 or array.shape[1] != 4 or not np.isfinite(array).all():
        raise InvalidInputError(
            f"boxes has shape {array.shape}: it must be (n, 4) finite numbers "
            "(x_min, y_min, x_max, y_max)"
        )
    names: list[str | None] = [None] * len(array)
    if labels is not None:
        names = [None if label is None else str(label) for label in labels]
        if len(names) != len(array):
            raise InvalidInputError(
                f"labels has {len(names)} entries for {len(array)} boxes: one per box"
            )
    return [
        {"box": [float(v) for v in row], **({"label": label} if label is not None else {})}
        for row, label in zip(array, names, strict=True)
    ]


def draw_boxes(image: Any, boxes: list[dict[str, Any]], scale: float) -> Any:
    """The PIL image with each box drawn (and its label), scaled as the image was."""
    from PIL import ImageDraw

    canvas = image.convert("RGB") if image.mode != "RGB" else image.copy()
    draw = ImageDraw.Draw(canvas)
    for entry in boxes:
        x0, y0, x1, y1 = (value * scale for value in entry["box"])
        draw.rectangle((x0, y0, x1, y1), outline=(255, 0, 0), width=2)
        if entry.get("label"):
            draw.text((x0 + 2, y0 + 2), entry["label"], fill=(255, 0, 0))
    return canvas
