"""Curves and confusion matrices: logged through a real run and read back equal; ROC and
PR computed with numpy equal scikit-learn's; bad inputs refused naming the argument."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from polytrack.errors import InvalidInputError
from polytrack.media.curves import (
    ConfusionMatrix,
    Curve,
    confusion_job,
    confusion_matrix_job,
    decode_confusion,
    pr_curve,
    roc_curve,
)

from ._logged import logged

TOLERANCE = 1e-12



def scored(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Binary labels and scores with ties (rounded), both classes present."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    labels[:2] = [0, 1]
    return labels, np.round(rng.random(n) * 0.6 + labels * 0.3, 2)


def test_a_custom_curve_reads_back_equal(home: Path) -> None:
    """x and y come back as float64 arrays, exactly, with kind and annotation."""
    x, y = [0, 0.25, 0.5, 1], np.array([0.0, 0.1, 1 / 3, 1.0], np.float32)
    view = logged(
        home, lambda run: run.log_curve("calibration", x, y, step=4, annotation="ECE 0.04")
    )
    [item] = view.media("calibration")
    assert (item.kind, item.step, item.shape) == ("curve", 4, (4,))
    assert item.meta == {"kind": "custom", "annotation": "ECE 0.04"}
    assert item.value == Curve(np.array(x, float), y.astype(np.float64), "custom", "ECE 0.04")
    assert json.loads(item.data()) == {"x": [0.0, 0.25, 0.5, 1.0], "y": y.astype(float).tolist()}


@pytest.mark.parametrize(("n", "seed"), [(2, 0), (7, 1), (200, 2), (5000, 3)])
def test_roc_and_pr_equal_scikit_learns(n: int, seed: int) -> None:
    """ROC points (with the (0, 0) start and dropped collinear points) and PR points equal
    scikit-learn's to 1e-12, thresholds included."""
    metrics = pytest.importorskip("sklearn.metrics")
    labels, scores = scored(n, seed)
    for ours, theirs in (
        (roc_curve(labels, scores), metrics.roc_curve(labels, scores)),
        (pr_curve(labels, scores), metrics.precision_recall_curve(labels, scores)),
    ):
        for mine, expected in zip(ours, theirs, strict=True):
            assert mine.shape == expected.shape
            np.testing.assert_allclose(mine, expected, rtol=0, atol=TOLERANCE)


def test_roc_and_pr_curves_are_logged_with_their_areas(home: Path) -> None:
    """log_roc_curve and log_pr_curve keep the points and the AUC / average precision,
    equal to scikit-learn's."""
    metrics = pytest.importorskip("sklearn.metrics")
    labels, scores = scored(300, 7)

    def log(run: Any) -> None:
        run.log_roc_curve("val/roc", labels == 1, scores, step=1)  # booleans too
        run.log_pr_curve("val/pr", labels, scores, step=1)

    view = logged(home, log)
    [roc] = view.media("val/roc")
    fpr, tpr, _ = metrics.roc_curve(labels, scores)
    assert roc.value.kind == "roc" and roc.meta["kind"] == "roc"
    np.testing.assert_allclose(roc.value.x, fpr, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(roc.value.y, tpr, rtol=0, atol=TOLERANCE)
    assert abs(roc.meta["auc"] - metrics.roc_auc_score(labels, scores)) < TOLERANCE
    [pr] = view.media("val/pr")
    precision, recall, _ = metrics.precision_recall_curve(labels, scores)
    np.testing.assert_allclose(pr.value.x, recall, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(pr.value.y, precision, rtol=0, atol=TOLERANCE)
    expected = metrics.average_precision_score(labels, scores)
    assert abs(pr.meta["average_precision"] - expected) < TOLERANCE
    assert pr.value.annotation == f"AP={expected:.4f}"


def test_minus_one_one_labels_are_binary() -> None:
    """Labels -1/1 are read as scikit-learn reads them: 1 is the positive class."""
    metrics = pytest.importorskip("sklearn.metrics")
    labels, scores = scored(50, 4)
    signed = labels * 2 - 1
    for mine, expected in zip(
        roc_curve(signed, scores), metrics.roc_curve(signed, scores), strict=True
    ):
        np.testing.assert_allclose(mine, expected, rtol=0, atol=TOLERANCE)


def test_a_confusion_matrix_counts_true_against_predicted(home: Path) -> None:
    """z[i][j] counts true y[i] predicted x[j], as scikit-learn's confusion_matrix."""
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(5)
    truth, predicted = rng.integers(0, 4, 500), rng.integers(0, 4, 500)
    names = np.array(["cat", "dog", "eel", "fox"])

    def log(run: Any) -> None:
        run.log_confusion_matrix("numbers", truth, predicted, step=2)
        run.log_confusion_matrix("names", names[truth], names[predicted], labels=["fox", "cat"])

    view = logged(home, log)
    [item] = view.media("numbers")
    assert (item.kind, item.step, item.shape) == ("confusion", 2, (4, 4))
    assert item.value == ConfusionMatrix(
        np.arange(4), np.arange(4), metrics.confusion_matrix(truth, predicted)
    )
    [named] = view.media("names")
    assert named.value.x.tolist() == ["fox", "cat"] == named.value.y.tolist()
    expected = metrics.confusion_matrix(names[truth], names[predicted], labels=["fox", "cat"])
    assert np.array_equal(named.value.z, expected)


def test_a_small_confusion_matrix_by_hand() -> None:
    """Two cats, one called a dog: the cat row holds 1 and 1."""
    job = confusion_job("c", ["cat", "cat", "dog"], ["cat", "dog", "dog"], 0)
    assert json.loads(job.encode()[0][0].data) == {
        "x": ["cat", "dog"],
        "y": ["cat", "dog"],
        "z": [[1, 1], [0, 1]],
    }


def test_polyaxons_premade_confusion_matrix_reads_back(home: Path) -> None:
    """confusion_matrix_job keeps Polyaxon's x, y, z as given (z of shape (len y, len x))."""
    job = confusion_matrix_job("cm", ["a", "b", "c"], ["a", "b"], [[5, 1, 0], [2, 7, 1]], 3)
    assert job.shape == (2, 3)
    matrix = decode_confusion(job.encode()[0][0].data)
    assert matrix == ConfusionMatrix(
        np.array(["a", "b", "c"]), np.array(["a", "b"]), np.array([[5, 1, 0], [2, 7, 1]])
    )
    rates = confusion_matrix_job("cm", [0, 1], [0, 1], np.array([[0.9, 0.1], [0.2, 0.8]]), 0)
    assert decode_confusion(rates.encode()[0][0].data).z.dtype == np.float64
    with pytest.raises(InvalidInputError, match=r"z has shape \(2, 2\) but x has 3 labels"):
        confusion_matrix_job("cm", ["a", "b", "c"], ["a", "b"], [[1, 2], [3, 4]], 0)


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (
            lambda run: run.log_curve("bad", [1, 2, 3], [1, 2]),
            "x has shape (3,) but y has shape (2,)",
        ),
        (lambda run: run.log_curve("bad", [[1, 2], [3, 4]], [1, 2]), "x has shape (2, 2)"),
        (lambda run: run.log_curve("bad", [1, 2], [1, np.nan]), "y (shape (2,)) holds NaN"),
        (lambda run: run.log_curve("bad", ["a", "b"], [1, 2]), "x has dtype <U1"),
        (lambda run: run.log_curve("bad", [], []), "x is empty"),
        (lambda run: run.log_curve("bad", [1], [1], kind="lift"), "kind must be one of"),
        (
            lambda run: run.log_roc_curve("bad", [0, 1, 2], [0.1, 0.2, 0.3]),
            "y_true (shape (3,)) holds [0, 1, 2]",
        ),
        (
            lambda run: run.log_roc_curve("bad", [1, 1], [0.1, 0.2]),
            "y_true (shape (2,)) holds one class",
        ),
        (
            lambda run: run.log_pr_curve("bad", [0, 1], [0.1]),
            "y_true has shape (2,) but y_score has shape (1,)",
        ),
        (
            lambda run: run.log_pr_curve("bad", [0, 1], [0.1, np.inf]),
            "y_score (shape (2,)) holds NaN or infinite",
        ),
        (
            lambda run: run.log_confusion_matrix("bad", [1, 2], [1]),
            "y_true has shape (2,) but y_pred has shape (1,)",
        ),
        (lambda run: run.log_confusion_matrix("bad", [1, "a"], [1, 2]), "do not sort"),
        (
            lambda run: run.log_confusion_matrix("bad", [1, 2], [1, 2], labels=[1, 1]),
            "labels names a label twice",
        ),
        (lambda run: run.log_confusion_matrix("bad", [None], [1]), "y_true holds NoneType"),
    ],
)
def test_bad_curves_are_refused_and_nothing_recorded(
    home: Path, call: Callable[[Any], None], words: str
) -> None:
    """Mismatched x/y, NaN, non-binary labels, one class, labels that do not sort:
    InvalidInputError naming the argument and its shape."""

    def log(run: Any) -> None:
        with pytest.raises(InvalidInputError) as caught:
            call(run)
        assert words in str(caught.value)

    assert logged(home, log).media("bad") == []
