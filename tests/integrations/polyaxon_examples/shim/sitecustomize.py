"""Loaded by every vendored example the harness runs (it is on their PYTHONPATH): tiny
synthetic stand-ins for the datasets the examples would download (no network here), and
the renames of the library APIs the examples were written against.

Nothing here touches polytrack: what the examples record is polytrack's own doing. Each
patch is applied when its module is first imported (a finder on `sys.meta_path`), so an
example pays only for the libraries it uses.

- `sklearn.datasets.load_boston` (removed in scikit-learn 1.2): 64 rows of 13 features.
- `keras.datasets.mnist.load_data`: 64 + 16 images of 28x28 uint8, labels 0-9.
- `keras.datasets.imdb.load_data`: 64 + 16 reviews of word ids below `num_words`.
- `keras.optimizers.Adam/RMSprop/SGD(lr=...)`: Keras 2's name for `learning_rate`.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any


def _patch_sklearn_datasets(module: ModuleType) -> None:
    import numpy as np
    from sklearn.utils import Bunch

    names = np.array(
        ["CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX", "PTRATIO",
         "B", "LSTAT"]
    )  # fmt: skip

    def load_boston(*, return_X_y: bool = False) -> Any:
        rng = np.random.default_rng(0)
        data = rng.random((64, 13)) * 10
        target = data @ rng.random(13) + rng.normal(0, 0.1, 64)
        if return_X_y:
            return data, target
        return Bunch(data=data, target=target, feature_names=names, DESCR="synthetic")

    module.load_boston = load_boston  # type: ignore[attr-defined]


def _patch_mnist(module: ModuleType) -> None:
    import numpy as np

    def load_data(path: str = "mnist.npz") -> Any:
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (80, 28, 28), dtype=np.uint8)
        labels = np.arange(80, dtype=np.uint8) % 10
        return (images[:64], labels[:64]), (images[64:], labels[64:])

    module.load_data = load_data  # type: ignore[attr-defined]


def _patch_imdb(module: ModuleType) -> None:
    import numpy as np

    def load_data(*, num_words: int | None = None, skip_top: int = 0, seed: int = 113,
                  **kwargs: Any) -> Any:  # fmt: skip
        rng = np.random.default_rng(seed)
        top = num_words or 1000
        x = np.empty(80, dtype=object)  # ragged, as Keras' own: lists of word ids
        x[:] = [list(rng.integers(max(skip_top, 2), top, rng.integers(5, 30))) for _ in range(80)]
        y = np.arange(80) % 2
        return (x[:64], y[:64]), (x[64:], y[64:])

    module.load_data = load_data  # type: ignore[attr-defined]


def _patch_optimizers(module: ModuleType) -> None:
    def accepting_lr(cls: type) -> type:
        def __init__(self: Any, *args: Any, lr: float | None = None, **kwargs: Any) -> None:
            if lr is not None:
                kwargs.setdefault("learning_rate", lr)
            cls.__init__(self, *args, **kwargs)

        return type(cls.__name__, (cls,), {"__init__": __init__})

    for name in ("Adam", "RMSprop", "SGD"):
        setattr(module, name, accepting_lr(getattr(module, name)))


PATCHES: dict[str, Callable[[ModuleType], None]] = {
    "sklearn.datasets": _patch_sklearn_datasets,
    "keras.datasets.mnist": _patch_mnist,
    "keras.datasets.imdb": _patch_imdb,
    "keras.optimizers": _patch_optimizers,
}


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    """Finds the modules of PATCHES as the other finders do, and patches each once its
    code has run."""

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        patch = PATCHES.get(name)
        if patch is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader.exec_module = _then(spec.loader.exec_module, patch)  # type: ignore[method-assign]
                return spec
        return None


def _then(
    run: Callable[[ModuleType], None], patch: Callable[[ModuleType], None]
) -> Callable[[ModuleType], None]:
    def exec_module(module: ModuleType) -> None:
        run(module)
        patch(module)

    return exec_module


sys.meta_path.insert(0, _PatchAfterImport())
