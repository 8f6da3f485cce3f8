"""TensorBoard: mirror what a `SummaryWriter` writes into the polytrack run (W&B's
`sync_tensorboard`), and record TensorBoard `Summary` protos (Polyaxon's tensorboard
logger).

```python
from polytrack.integrations import tensorboard

run = polytrack.init(project="mnist")
with tensorboard.patched():                    # or tensorboard.patch() ... unpatch()
    writer = SummaryWriter("runs/a")           # torch.utils.tensorboard or tensorboardX
    writer.add_scalar("loss", 0.5, global_step=3)   # -> run's metric "loss" at step 3
```

The bridge wraps the writer's methods rather than reading its event files back: the
values reach polytrack as the caller gave them (an image's pixels, not a re-encoded PNG;
a histogram's values, binned by polytrack), at once and without a file watcher thread.
The original method runs first and unchanged, so the event file is written as before;
what polytrack cannot record warns once (`TrackingWarning`) and never breaks the writer.

| SummaryWriter | run |
| --- | --- |
| `add_scalar(tag, v, step)` | `log_metrics({tag: v}, step)` |
| `add_scalars(main, {t: v}, step)` | `log_metrics({"main/t": v}, step)` |
| `add_histogram(tag, values, step)`, `add_histogram_raw` | `log_histogram`, `log_np_histogram` |
| `add_image`, `add_images` (with `dataformats`) | `log_image` (a batch as one step) |
| `add_figure(tag, figure, step)` | `log_figure` (several figures: their images) |
| `add_text(tag, text, step)` | `log_text` |
| `add_hparams(hparams, metrics)` | `log_params(hparams)`, `log_metrics(metrics, step)` |

Tags and steps are kept; a call without `global_step` takes polytrack's default step (the
next one for metrics, the current one for media). `walltime` is not kept: polytrack
stamps each record when it is made.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import math
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

import polytrack
from polytrack.errors import InvalidInputError, PolytrackError, TrackingWarning
from polytrack.run import DisabledRun, Run

__all__ = [
    "WRITERS",
    "parse_summary",
    "patch",
    "patched",
    "record_summary",
    "record_value",
    "unpatch",
]

# The SummaryWriter classes the bridge patches, where installed: module, class.
WRITERS: Final = (
    ("torch.utils.tensorboard.writer", "SummaryWriter"),
    ("tensorboardX.writer", "SummaryWriter"),
)
# numpy's binning rules: a histogram's `bins` that polytrack passes on. TensorBoard's
# own "tensorflow" (exponential buckets) is not one of them; those get polytrack's 64.
_NUMPY_BINS: Final = frozenset({"auto", "fd", "doane", "scott", "stone", "rice", "sturges", "sqrt"})

# What patch() changed, to be put back by unpatch(): (class, method name) -> original.
# Patching is process-wide by nature (it changes classes), so its record is too.
_lock = threading.Lock()
_originals: dict[tuple[type, str], Callable[..., Any]] = {}
_target: list[Run | DisabledRun | None] = [None]  # the run given to patch(); None: current
_said: set[str] = set()  # what warned already, once per method and tag
_inside = threading.local()  # a patched call in progress on this thread (depth)


def patch(*, run: Run | DisabledRun | None = None) -> None:
    """Mirror every installed `SummaryWriter` (torch's and tensorboardX's) into a run.

    Calling it again changes the run and patches nothing twice.

    Args:
        run: the run to record into; default the current run at each call (a call made
            while no run is current is written by the writer only).

    Raises:
        ImportError: neither `torch.utils.tensorboard` nor `tensorboardX` can be imported
            (the `tensorboard` extra installs them).

    Example:
        >>> polytrack.integrations.tensorboard.patch()
        >>> SummaryWriter().add_scalar("loss", 0.5, 3)   # also the run's "loss" at step 3
    """
    classes = _writer_classes()
    if not classes:
        raise ImportError(
            "polytrack.integrations.tensorboard needs torch.utils.tensorboard or tensorboardX: "
            "pip install 'polytrack[tensorboard]'"
        )
    with _lock:
        _target[0] = run
        for cls in classes:
            for name, mirror in _MIRRORS.items():
                original = cls.__dict__.get(name)
                if (cls, name) in _originals or original is None:
                    continue
                _originals[(cls, name)] = original
                setattr(cls, name, _wrap(original, mirror))


def unpatch() -> None:
    """Put the writers' own methods back: nothing is mirrored any more. Idempotent.

    Example:
        >>> polytrack.integrations.tensorboard.unpatch()
    """
    with _lock:
        for (cls, name), original in _originals.items():
            setattr(cls, name, original)
        _originals.clear()
        _target[0] = None
        _said.clear()


@contextlib.contextmanager
def patched(*, run: Run | DisabledRun | None = None) -> Iterator[None]:
    """`patch()` for the block; after it, what was before: `unpatch()`, or inside an
    outer `patched()` (or after `patch()`) the outer block's run again.

    Example:
        >>> with polytrack.integrations.tensorboard.patched(run=run):
        ...     trainer.fit(model)     # Lightning's TensorBoardLogger, mirrored
    """
    with _lock:
        was_patched, previous = bool(_originals), _target[0]
    patch(run=run)
    try:
        yield
    finally:
        if was_patched:
            with _lock:
                _target[0] = previous
        else:
            unpatch()


def _writer_classes() -> list[type]:
    classes = []
    for module_name, class_name in WRITERS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        cls = getattr(module, class_name, None)
        if isinstance(cls, type):
            classes.append(cls)
    return classes


def _wrap(original: Callable[..., Any], mirror: Callable[..., None]) -> Callable[..., Any]:
    """`original`, then `mirror` with its arguments by name: only for the outermost call
    (torch's `add_hparams` calls `add_scalar`, tensorboardX's `add_figure` `add_image`)."""
    signature = inspect.signature(original)

    @functools.wraps(original)
    def patched_method(self: Any, *args: Any, **kwargs: Any) -> Any:
        depth = getattr(_inside, "depth", 0)
        if depth:
            return original(self, *args, **kwargs)
        run = _run()
        arguments: dict[str, Any] = {}
        if run is not None:
            try:
                bound = signature.bind(self, *args, **kwargs)
            except TypeError:  # the writer's own call raises it, as without the bridge
                return original(self, *args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
        if run is not None and mirror is _figure:
            _mirror(run, mirror, arguments)  # before: the writer closes the figure
            if isinstance(arguments.get("figure"), list):
                return original(self, *args, **kwargs)  # its add_image is mirrored
        _inside.depth = depth + 1
        try:
            result = original(self, *args, **kwargs)
        finally:
            _inside.depth = depth
        if run is not None and mirror is not _figure:
            _mirror(run, mirror, arguments)
        return result

    return patched_method


def _run() -> Run | DisabledRun | None:
    run = _target[0] if _target[0] is not None else polytrack.current_run()
    if run is None or run.finished or isinstance(run, DisabledRun):
        return None
    return run


def _mirror(
    run: Run | DisabledRun, mirror: Callable[..., None], arguments: Mapping[str, Any]
) -> None:
    """Record the call into the run; a failure warns once and leaves the writer alone."""
    try:
        mirror(run, arguments)
    except (PolytrackError, TypeError, ValueError) as exc:
        what = f"{mirror.__name__}:{arguments.get('tag') or arguments.get('main_tag')}"
        if what not in _said:
            _said.add(what)
            warnings.warn(
                f"polytrack could not mirror SummaryWriter.add{mirror.__name__} "
                f"{arguments.get('tag') or arguments.get('main_tag')!r}: {exc}",
                TrackingWarning,
                stacklevel=4,
            )


def _step(arguments: Mapping[str, Any]) -> int | None:
    step = arguments.get("global_step")
    return None if step is None else int(step)


def _scalar(run: Run | DisabledRun, a: Mapping[str, Any]) -> None:
    run.log_metrics({a["tag"]: _number(a["scalar_value"])}, step=_step(a))


def _scalars(run: Run | DisabledRun, a: Mapping[str, Any]) -> None:
    values = {f"{a['main_tag']}/{tag}": _number(v) for tag, v in a["tag_scalar_dict"].items()}
    run.log_metrics(values, step=_step(a))


def _histogram(run: Run | DisabledRun, a: Mapping[str, Any]) -> None:
    bins = a.get("bins")
    if isinstance(bins, str) and bins not in _NUMPY_BINS:
        bins = 64
    max_bins = a.get("max_bins")
    if isinstance(bins, int) and isinstance(max_bins, int):
        bins = min(bins, max_bins)
    run.log_histogram(a["tag"], _array(a["values"]), _step(a), bins=bins)


def _histogram_raw(run: Run | DisabledRun, a: Mapping[str, Any]) -> None:
    limits = [float(x) for x in a["bucket_limits"]]
    counts = [float(x) for x in a["bucket_counts"]]
    edges, counts = _edges(float(a["min"]), float(a["max"]), limits, counts)
    run.log_np_histogram(a["tag"], edges, counts, _step(a))


def _image(run: Run | DisabledRun, a: Mapping[str, Any]) -> None:
    run.log_image(a["tag"], _array(a["img_tensor"]), _step(a), dataformats=a.get("dataformats"))


def _figure(run: Run | DisabledRun, a: Mapping[str, Any]) -> None:
    if not isinstance(a["figure"], list):
        run.log_figure(a["tag"], a["figure"], _step(a))


def _text(run: Run | DisabledRun, a: Mapping[str, Any]) -> None:
    run.log_text(a["tag"], str(a["text_string"]), _step(a))


def _hparams(run: Run | DisabledRun, a: Mapping[str, Any]) -> None:
    run.log_params({str(k): _param(v) for k, v in a["hparam_dict"].items()})
    metrics = {str(k): _number(v) for k, v in a["metric_dict"].items()}
    if metrics:
        run.log_metrics(metrics, step=_step(a))


# SummaryWriter method -> what it records into the run (a warning names the method as
# "add" + the function's name: add_scalar, add_image, ...).
_MIRRORS: Final[Mapping[str, Callable[[Run | DisabledRun, Mapping[str, Any]], None]]] = {
    "add_scalar": _scalar,
    "add_scalars": _scalars,
    "add_histogram": _histogram,
    "add_histogram_raw": _histogram_raw,
    "add_image": _image,
    "add_images": _image,
    "add_figure": _figure,
    "add_text": _text,
    "add_hparams": _hparams,
}


def _number(value: Any) -> Any:
    """A scalar as TensorBoard takes it (a 0-d or one-element tensor, numpy) as a number."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _param(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _array(value: Any) -> Any:
    """A torch tensor as a numpy array (off its device, out of autograd); else as given."""
    detach = getattr(value, "detach", None)
    if callable(detach):
        return detach().cpu().numpy()
    return value


def _edges(
    low: float, high: float, limits: list[float], counts: list[float]
) -> tuple[list[float], list[float]]:
    """TensorBoard's buckets (right limits and counts) as edges and counts: the first
    bucket's left edge is the minimum, or as wide as the next bucket where the writer
    put an empty bucket first (torch does); tensorflow's "infinite" last limit is cut at
    the maximum."""
    if not limits or len(limits) != len(counts):
        raise InvalidInputError(
            f"a histogram needs as many bucket limits as counts; got {len(limits)} and "
            f"{len(counts)}"
        )
    left = low
    if len(limits) >= 2 and limits[0] <= low:
        left = min(low, limits[0] - (limits[1] - limits[0]))
    if len(limits) >= 2 and limits[-1] > 1e300:
        last = high if high > limits[-2] else math.nextafter(limits[-2], math.inf)
        limits = [*limits[:-1], last]
    return [left, *limits], counts


# -- Summary protos (Polyaxon's tensorboard logger) ------------------------------------------


def record_summary(
    summary: Any,
    step: int | None = None,
    *,
    run: Run | DisabledRun | None = None,
    images: bool = True,
    histograms: bool = True,
    texts: bool = True,
) -> None:
    """Record the values of a TensorBoard `Summary` (a proto or its serialized bytes):
    scalars as metrics, images, histograms and text tensors as media, under their tags.

    Args:
        summary: a `Summary` of tensorboard, tensorboardX or TensorFlow, or its bytes.
        step: the step; default polytrack's (see `Run.log_metrics`).
        run: default the current run; with none, nothing is recorded.
        images, histograms, texts: record those kinds of values too.

    Raises:
        ImportError: bytes were given and no TensorBoard proto module is installed.

    Example:
        >>> record_summary(summary_bytes, step=10)
    """
    run = run if run is not None else polytrack.current_run()
    if run is None or run.finished:
        return
    if isinstance(summary, (bytes, bytearray)):
        summary = parse_summary(bytes(summary))
    for value in summary.value:
        record_value(run, value, step, images=images, histograms=histograms, texts=texts)


def record_value(
    run: Run | DisabledRun,
    value: Any,
    step: int | None = None,
    *,
    images: bool = True,
    histograms: bool = True,
    texts: bool = True,
) -> None:
    """Record one `Summary.Value` into `run` (see `record_summary`); a value of another
    kind (audio, a PR curve's tensor) is left out.

    Example:
        >>> for value in summary.value:
        ...     record_value(run, value, step=10)
    """
    field = value.WhichOneof("value")
    if field == "simple_value":
        run.log_metrics({value.tag: value.simple_value}, step=step)
    elif field == "image" and images:
        run.log_image(value.tag, _decode_image(value.image.encoded_image_string), step)
    elif field == "histo" and histograms:
        histo = value.histo
        edges, counts = _edges(histo.min, histo.max, list(histo.bucket_limit), list(histo.bucket))
        run.log_np_histogram(value.tag, edges, counts, step)
    elif field == "tensor":
        _record_tensor(run, value, step, texts=texts)


def _record_tensor(run: Run | DisabledRun, value: Any, step: int | None, *, texts: bool) -> None:
    """A tensor value: text (string_val), or a new-style scalar (one float)."""
    tensor = value.tensor
    if tensor.string_val:
        if texts:
            text = ", ".join(s.decode("utf-8", errors="replace") for s in tensor.string_val)
            tag = value.tag
            if value.metadata.plugin_data.plugin_name == "text":
                # The writers' text summaries add this to the tag given to add_text.
                tag = tag.removesuffix("/text_summary") or tag
            run.log_text(tag, text, step)
        return
    numbers = list(tensor.float_val) or list(tensor.double_val)
    if len(numbers) == 1:
        run.log_metrics({value.tag: numbers[0]}, step=step)


def parse_summary(data: bytes) -> Any:
    """A serialized `Summary` as tensorboard's proto (else tensorboardX's).

    Raises:
        ImportError: neither is installed.
    """
    for module_name in ("tensorboard.compat.proto.summary_pb2", "tensorboardX.proto.summary_pb2"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        summary = module.Summary()
        summary.ParseFromString(data)
        return summary
    raise ImportError(
        "reading a serialized Summary needs tensorboard or tensorboardX: "
        "pip install 'polytrack[tensorboard]'"
    )


def _decode_image(encoded: bytes) -> Any:
    """An image value's PNG (or JPEG) bytes as a numpy array, HWC."""
    import io

    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(encoded)) as image:
        return np.asarray(image.convert("RGBA" if image.mode in ("RGBA", "LA") else "RGB"))
