"""Histograms: binned with numpy on the caller's thread (the raw values are not kept),
stored as JSON `{"edges": [...], "counts": [...]}`, read back as a `Histogram`."""

from __future__ import annotations

import json
from typing import Any, Final

import numpy as np
from attrs import frozen

from polytrack._text import safe_repr
from polytrack.errors import InvalidInputError
from polytrack.media.encoder import Encoded

__all__ = ["DEFAULT_BINS", "Histogram", "bin_values", "check_binned", "decode", "encode"]

DEFAULT_BINS: Final = 64  # W&B's default; TensorBoard's is 30
MAX_BINS: Final = 512  # W&B's cap too: a histogram is a picture, not a copy of the data


@frozen(eq=False)
class Histogram:
    """A histogram read back: `counts[i]` values fell in `[edges[i], edges[i + 1])` (the
    last bin closed), as numpy computes it."""

    edges: np.ndarray
    counts: np.ndarray

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Histogram)
            and np.array_equal(self.edges, other.edges)
            and np.array_equal(self.counts, other.counts)
        )

    __hash__ = None  # type: ignore[assignment]


def _numbers(values: Any, arg: str) -> np.ndarray:
    module = type(values).__module__
    if module.startswith("torch") and hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    try:
        array = np.asarray(values)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"{arg} is not an array of numbers: {exc}") from None
    if array.dtype.kind not in "uifb":
        raise InvalidInputError(
            f"{arg} has dtype {array.dtype} (shape {array.shape}): a histogram needs numbers"
        )
    return array


def bin_values(
    values: Any, bins: Any = DEFAULT_BINS, *, arg: str = "values"
) -> tuple[np.ndarray, np.ndarray]:
    """(edges, counts) of `values` (any shape, flattened) with numpy's `histogram`.

    Raises:
        InvalidInputError: not numbers, empty, or NaN/inf among them; bad `bins`.
    """
    array = _numbers(values, arg).ravel()
    if array.size == 0:
        raise InvalidInputError(f"{arg} is empty (shape {np.shape(values)}): nothing to bin")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise InvalidInputError(
            f"{arg} (shape {np.shape(values)}) holds {bad} NaN or infinite value(s), "
            "which no bin can hold"
        )
    if isinstance(bins, bool) or not (
        (isinstance(bins, (int, np.integer)) and 1 <= bins <= MAX_BINS)
        or (
            isinstance(bins, str)
            and bins in ("auto", "fd", "doane", "scott", "stone", "rice", "sturges", "sqrt")
        )
        or isinstance(bins, (list, tuple, np.ndarray))
    ):
        raise InvalidInputError(
            f"bins must be a count from 1 to {MAX_BINS}, a numpy rule ('auto', ...) or "
            f"the edges; got {safe_repr(bins)}"
        )
    try:
        counts, edges = np.histogram(array.astype(np.float64, copy=False), bins=bins)
    except ValueError as exc:
        raise InvalidInputError(f"bins {safe_repr(bins)}: {exc}") from None
    if counts.size > MAX_BINS:  # a numpy rule asked for more: merge to the cap
        counts, edges = np.histogram(array.astype(np.float64, copy=False), bins=MAX_BINS)
    return edges, counts.astype(np.int64)


def check_binned(edges: Any, counts: Any) -> tuple[np.ndarray, np.ndarray]:
    """Pre-binned values (`log_np_histogram`): `edges` has one more entry than `counts`.

    (Polyaxon's own client passes numpy's pair the other way round, counts as `values`
    and edges as `counts`: `polytrack.tracking.log_np_histogram` swaps them back.) An
    `edges` as long as `counts` (bins' left edges, say) gets a last edge one step
    further.
    """
    edges_array = _numbers(edges, "values").astype(np.float64).ravel()
    counts_array = _numbers(counts, "counts").ravel()
    if counts_array.size == 0:
        raise InvalidInputError("counts is empty: a histogram needs at least one bin")
    if edges_array.size == counts_array.size and counts_array.size > 1:
        step = edges_array[-1] - edges_array[-2]
        edges_array = np.append(edges_array, edges_array[-1] + step)
    if edges_array.size != counts_array.size + 1:
        raise InvalidInputError(
            f"values has shape {np.shape(edges)} and counts {np.shape(counts)}: a histogram "
            "needs one more edge than counts"
        )
    for label, array in (("values", edges_array), ("counts", counts_array)):
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise InvalidInputError(f"{label} (shape {array.shape}) holds NaN or infinity")
    if np.any(np.diff(edges_array) < 0):
        raise InvalidInputError(f"values (shape {np.shape(edges)}) must be sorted edges")
    return edges_array.copy(), counts_array.copy()


def encode(edges: np.ndarray, counts: np.ndarray) -> list[Encoded]:
    """The JSON file of a histogram (the encoder thread's part)."""
    payload = {
        "edges": edges.tolist(),
        "counts": counts.tolist(),
    }
    return [Encoded(json.dumps(payload, separators=(",", ":")).encode(), "application/json")]


def decode(data: bytes) -> Histogram:
    payload = json.loads(data)
    counts = np.asarray(payload["counts"])
    return Histogram(
        edges=np.asarray(payload["edges"], dtype=np.float64),
        counts=counts.astype(np.int64) if counts.dtype.kind in "iub" else counts,
    )
