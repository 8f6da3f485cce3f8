"""Curves and confusion matrices: `log_curve`, `log_roc_curve`, `log_pr_curve` and
`log_confusion_matrix`, computed with numpy on the caller's thread (no scikit-learn
needed) and kept as Polyaxon's events keep them.

A curve is `{"x": [...], "y": [...]}` with its kind ("roc", "pr", "custom"), annotation
and, for ROC and PR, the area (`meta["auc"]`, `meta["average_precision"]`) in the
record's meta. ROC points are scikit-learn's `roc_curve` (the (0, 0) start, collinear
points dropped) and PR points its `precision_recall_curve`, equal to within float
rounding. A confusion matrix is `{"x": predicted labels, "y": true labels, "z": counts}`
with `z[i][j]` the samples whose true label is `y[i]` and predicted label `x[j]`
(Polyaxon's `V1EventConfusionMatrix`; scikit-learn's `confusion_matrix` layout).
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any, Final

import numpy as np
from attrs import frozen

from polytrack._text import safe_repr
from polytrack.errors import InvalidInputError
from polytrack.media.encoder import Encoded, MediaJob
from polytrack.media.jobs import check_caption

__all__ = [
    "CURVE_KINDS",
    "ConfusionMatrix",
    "Curve",
    "confusion_job",
    "confusion_matrix_job",
    "curve_job",
    "decode_confusion",
    "decode_curve",
    "pr_curve",
    "pr_job",
    "roc_curve",
    "roc_job",
]

CURVE_KINDS: Final = ("roc", "pr", "custom")
MAX_POINTS: Final = 1_000_000  # a curve is drawn: past this it is a data set
MAX_CLASSES: Final = 1000
_JSON: Final = "application/json"


@frozen(eq=False)
class Curve:
    """A curve read back: points (x[i], y[i]), its kind and annotation."""

    x: np.ndarray
    y: np.ndarray
    kind: str = "custom"
    annotation: str | None = None

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Curve)
            and (self.kind, self.annotation) == (other.kind, other.annotation)
            and np.array_equal(self.x, other.x)
            and np.array_equal(self.y, other.y)
        )

    __hash__ = None  # type: ignore[assignment]


@frozen(eq=False)
class ConfusionMatrix:
    """A confusion matrix read back: `z[i, j]` samples of true label `y[i]` were
    predicted `x[j]`."""

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConfusionMatrix) and all(
            np.array_equal(a, b)
            for a, b in ((self.x, other.x), (self.y, other.y), (self.z, other.z))
        )

    __hash__ = None  # type: ignore[assignment]


# -- checks -------------------------------------------------------------------------------


def _vector(values: Any, arg: str) -> np.ndarray:
    """`values` as a 1-D array (a copy), refused with its shape when it is not one."""
    if type(values).__module__.startswith("torch") and hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    try:
        array = np.array(values)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"{arg} is not a 1-D array: {exc}") from None
    if array.ndim == 2 and 1 in array.shape:
        array = array.ravel()  # a column or row vector
    if array.ndim != 1:
        raise InvalidInputError(f"{arg} has shape {array.shape}: it must be 1-D")
    if array.size == 0:
        raise InvalidInputError(f"{arg} is empty (shape {array.shape})")
    if array.size > MAX_POINTS:
        raise InvalidInputError(f"{arg} has {array.size} values, past {MAX_POINTS}")
    return array


def _numbers(values: Any, arg: str) -> np.ndarray:
    array = _vector(values, arg)
    if array.dtype.kind not in "uif":
        raise InvalidInputError(
            f"{arg} has dtype {array.dtype} (shape {array.shape}): it must be numbers"
        )
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise InvalidInputError(f"{arg} (shape {array.shape}) holds NaN or infinite values")
    return array


def _same_length(a: np.ndarray, b: np.ndarray, names: str) -> None:
    if a.shape != b.shape:
        first, second = names.split("/")
        raise InvalidInputError(
            f"{first} has shape {a.shape} but {second} has shape {b.shape}: "
            "they must be of one length"
        )



def _binary_labels(y_true: Any) -> np.ndarray:
    """`y_true` as booleans (positive = 1 or True): labels in {0, 1}, {-1, 1} or bools."""
    array = _vector(y_true, "y_true")
    if array.dtype.kind == "b":
        labels = array
    elif array.dtype.kind in "uif":
        found = set(np.unique(array).tolist())
        if not (found <= {0, 1} or found <= {-1, 1}):
            shown = sorted(found)[:5]
            raise InvalidInputError(
                f"y_true (shape {array.shape}) holds {shown}: binary labels are 0/1, "
                "-1/1 or booleans (1 or True is the positive class)"
            )
        labels = array == 1
    else:
        raise InvalidInputError(
            f"y_true has dtype {array.dtype} (shape {array.shape}): binary labels are 0/1, "
            "-1/1 or booleans"
        )
    if labels.all() or not labels.any():
        raise InvalidInputError(
            f"y_true (shape {array.shape}) holds one class only: the curve needs both "
            "positives and negatives"
        )
    return labels


# -- curves -------------------------------------------------------------------------------


def curve_job(
    name: str,
    x: Any,
    y: Any,
    step: int,
    *,
    kind: str = "custom",
    annotation: str | None = None,
    meta: dict[str, Any] | None = None,
) -> MediaJob:
    """The job of one `log_curve` call: x and y copied as float64 and kept as JSON.

    Raises:
        InvalidInputError: x or y not 1-D finite numbers, of different lengths; a `kind`
            not in CURVE_KINDS; an annotation that is not text.

    Example:
        >>> job = curve_job("calibration", [0, 0.5, 1], [0, 0.4, 1], 0)
    """
    if kind not in CURVE_KINDS:
        raise InvalidInputError(
            f"kind must be one of {', '.join(CURVE_KINDS)}; got {safe_repr(kind)}"
        )
    note = check_caption(annotation, "annotation")
    xs, ys = _numbers(x, "x"), _numbers(y, "y")
    _same_length(xs, ys, "x/y")
    info: dict[str, Any] = {"kind": kind, **(meta or {})}
    if note is not None:
        info["annotation"] = note
    return MediaJob(
        name=name,
        kind="curve",
        step=step,
        encode=lambda: ([_json({"x": xs.tolist(), "y": ys.tolist()})], None, {}),
        shape=(int(xs.size),),
        meta=info,
        size=xs.nbytes + ys.nbytes,
        logged_at=time.time(),
    )


def _scores(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray]:
    labels = _binary_labels(y_true)
    scores = _numbers(y_score, "y_score")
    _same_length(labels, scores, "y_true/y_score")
    return labels, scores


def _counts_at_thresholds(
    labels: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false positives, true positives, threshold) at each distinct score, highest
    first: scikit-learn's `_binary_clf_curve`."""
    order = np.argsort(scores, kind="stable")[::-1]
    scores, labels = scores[order], labels[order]
    last_of_each = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    tps = np.cumsum(labels, dtype=np.float64)[last_of_each]
    fps = 1.0 + last_of_each - tps
    return fps, tps, scores[last_of_each]


def roc_curve(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate, thresholds) as scikit-learn's
    `roc_curve(drop_intermediate=True)` gives them: from (0, 0) at threshold infinity,
    collinear points dropped.

    Raises:
        InvalidInputError: labels not binary or of one class; scores not finite numbers.

    Example:
        >>> fpr, tpr, thresholds = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    """
    fps, tps, thresholds = _counts_at_thresholds(*_scores(y_true, y_score))
    if fps.size > 2:
        keep = np.flatnonzero(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    tps, fps = np.r_[0.0, tps], np.r_[0.0, fps]
    thresholds = np.r_[np.inf, thresholds]
    return fps / fps[-1], tps / tps[-1], thresholds


def pr_curve(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, thresholds) as scikit-learn's `precision_recall_curve` gives
    them: recall decreasing to a last point (recall 0, precision 1).

    Raises:
        InvalidInputError: as `roc_curve`.

    Example:
        >>> precision, recall, thresholds = pr_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    """
    fps, tps, thresholds = _counts_at_thresholds(*_scores(y_true, y_score))
    predicted = tps + fps
    precision = np.divide(tps, predicted, out=np.zeros_like(tps), where=predicted != 0)
    recall = tps / tps[-1]
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], thresholds[::-1]


def roc_job(name: str, y_true: Any, y_score: Any, step: int) -> MediaJob:
    """The ROC curve (x: false positive rate, y: true positive rate) with its area under
    the curve (trapezoids) in `meta["auc"]`.

    Raises:
        InvalidInputError: as `roc_curve`, naming y_true or y_score.

    Example:
        >>> job = roc_job("val/roc", labels, scores, 3)
    """
    fpr, tpr, _ = roc_curve(y_true, y_score)
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))  # trapezoids
    return curve_job(
        name, fpr, tpr, step, kind="roc", annotation=f"AUC={auc:.4f}", meta={"auc": auc}
    )


def pr_job(name: str, y_true: Any, y_score: Any, step: int) -> MediaJob:
    """The precision-recall curve (x: recall, y: precision) with its average precision
    (scikit-learn's step-wise sum) in `meta["average_precision"]`.

    Raises:
        InvalidInputError: as `pr_curve`, naming y_true or y_score.

    Example:
        >>> job = pr_job("val/pr", labels, scores, 3)
    """
    precision, recall, _ = pr_curve(y_true, y_score)
    average = float(max(0.0, -np.sum(np.diff(recall) * precision[:-1])))
    return curve_job(
        name,
        recall,
        precision,
        step,
        kind="pr",
        annotation=f"AP={average:.4f}",
        meta={"average_precision": average},
    )


# -- confusion matrices -------------------------------------------------------------------


def _label(value: Any, arg: str) -> Any:
    """A class label as JSON: an int, a finite float, a str or a bool."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (bool, int, str)) or (isinstance(value, float) and math.isfinite(value)):
        return value
    raise InvalidInputError(
        f"{arg} holds {type(value).__name__} {safe_repr(value)}: a label is an int, a "
        "string, a boolean or a finite float"
    )


def _labels(values: Any, arg: str) -> list[Any]:
    array = _vector(values, arg)
    if array.dtype.kind not in "biufUSO":
        raise InvalidInputError(f"{arg} has dtype {array.dtype} (shape {array.shape})")
    return [_label(value, arg) for value in array.tolist()]


def _class_list(values: Iterable[Any], arg: str) -> list[Any]:
    if isinstance(values, (str, bytes)):
        raise InvalidInputError(f"{arg} must be a list of labels; got {safe_repr(values)}")
    classes = _labels(list(values), arg)
    if len(set(classes)) != len(classes):
        raise InvalidInputError(f"{arg} names a label twice: {safe_repr(classes)}")
    if len(classes) > MAX_CLASSES:
        raise InvalidInputError(f"{arg} has {len(classes)} labels, past {MAX_CLASSES}")
    return classes


def confusion_job(
    name: str, y_true: Any, y_pred: Any, step: int, *, labels: Iterable[Any] | None = None
) -> MediaJob:
    """The confusion matrix of true and predicted labels: x = predicted labels, y = true
    labels (both `labels`, or every label seen, sorted), z[i][j] = the samples of true
    label y[i] predicted x[j]. Samples whose labels are not among `labels` are left
    out, as scikit-learn does.

    Raises:
        InvalidInputError: y_true and y_pred not 1-D of one length; labels that are not
            ints, strings, booleans or finite floats, or that cannot be sorted; `labels`
            naming one twice.

    Example:
        >>> job = confusion_job("val/confusion", ["cat", "dog"], ["dog", "dog"], 0)
    """
    truth, predicted = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if len(truth) != len(predicted):
        raise InvalidInputError(
            f"y_true has shape ({len(truth)},) but y_pred has shape ({len(predicted)},): "
            "one prediction per label"
        )
    if labels is None:
        try:
            classes = sorted(set(truth) | set(predicted))
        except TypeError:
            raise InvalidInputError(
                "y_true and y_pred mix labels that do not sort (numbers and strings): "
                "pass labels= in the order to show"
            ) from None
        if len(classes) > MAX_CLASSES:
            raise InvalidInputError(
                f"y_true and y_pred hold {len(classes)} labels, past {MAX_CLASSES}"
            )
    else:
        classes = _class_list(labels, "labels")
    index = {label: i for i, label in enumerate(classes)}
    counts = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for (true, pred), count in Counter(zip(truth, predicted, strict=True)).items():
        i, j = index.get(true), index.get(pred)
        if i is not None and j is not None:
            counts[i, j] = count
    return _confusion(name, classes, classes, counts, step)


def confusion_matrix_job(name: str, x: Any, y: Any, z: Any, step: int) -> MediaJob:
    """A confusion matrix given whole (Polyaxon's `log_confusion_matrix(name, x, y, z)`):
    x the predicted labels, y the true labels, z of shape (len(y), len(x)).

    Raises:
        InvalidInputError: labels that are no JSON scalars; z not finite numbers of that
            shape.

    Example:
        >>> job = confusion_matrix_job("cm", ["a", "b"], ["a", "b"], [[5, 1], [2, 7]], 0)
    """
    xs, ys = _class_list(_as_list(x, "x"), "x"), _class_list(_as_list(y, "y"), "y")
    try:
        counts = np.array(z)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"z is not a 2-D array of counts: {exc}") from None
    if counts.shape != (len(ys), len(xs)):
        raise InvalidInputError(
            f"z has shape {counts.shape} but x has {len(xs)} labels and y {len(ys)}: z must "
            f"be ({len(ys)}, {len(xs)}), one row per true label"
        )
    if counts.dtype.kind not in "uifb" or not np.isfinite(counts.astype(np.float64)).all():
        raise InvalidInputError(
            f"z (shape {counts.shape}, dtype {counts.dtype}) must be finite numbers"
        )
    counts = counts.astype(np.int64) if counts.dtype.kind in "uib" else counts.astype(np.float64)
    return _confusion(name, xs, ys, counts, step)


def _as_list(values: Any, arg: str) -> Any:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise InvalidInputError(f"{arg} must be a list of labels; got {safe_repr(values)}")
    return values if isinstance(values, np.ndarray) else list(values)


def _confusion(name: str, xs: list[Any], ys: list[Any], counts: np.ndarray, step: int) -> MediaJob:
    payload = {"x": xs, "y": ys, "z": counts.tolist()}
    return MediaJob(
        name=name,
        kind="confusion",
        step=step,
        encode=lambda: ([_json(payload)], None, {}),
        shape=(len(ys), len(xs)),
        size=counts.nbytes,
        logged_at=time.time(),
    )


# -- files --------------------------------------------------------------------------------


def _json(payload: dict[str, Any]) -> Encoded:
    return Encoded(json.dumps(payload, separators=(",", ":"), allow_nan=False).encode(), _JSON)


def decode_curve(data: bytes, meta: dict[str, Any]) -> Curve:
    """A curve's JSON read back, with its kind and annotation from the record's meta."""
    payload = json.loads(data)
    return Curve(
        x=np.asarray(payload["x"], dtype=np.float64),
        y=np.asarray(payload["y"], dtype=np.float64),
        kind=str(meta.get("kind", "custom")),
        annotation=meta.get("annotation"),
    )


def decode_confusion(data: bytes) -> ConfusionMatrix:
    """A confusion matrix's JSON read back: label arrays and the counts (int64 where
    they are whole, float64 otherwise)."""
    payload = json.loads(data)
    z = np.asarray(payload["z"])
    if z.dtype.kind not in "iuf":
        z = z.astype(np.float64)
    return ConfusionMatrix(x=np.asarray(payload["x"]), y=np.asarray(payload["y"]), z=z)
