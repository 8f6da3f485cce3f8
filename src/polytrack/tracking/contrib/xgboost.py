"""Polyaxon's XGBoost callbacks (`polyaxon.tracking.contrib.xgboost`, from traceml 1.5's
`traceml/integrations/xgboost.py`), over `polytrack.integrations.xgboost`.

```python
from polytrack.tracking.contrib.xgboost import Callback   # was: polyaxon.tracking...

xgb.train(params, dtrain, 10, evals=[(dvalid, "valid")], callbacks=[Callback()])
```

`Callback` takes Polyaxon's arguments. `callback()` took XGBoost's old function-style
callback, which XGBoost 2 no longer accepts: here it returns a `Callback` with the same
options. What is recorded is `PolytrackCallback`'s: the metrics under the names
Polyaxon used (`valid-logloss`), the booster's config as params, the importance as a
table (Polyaxon drew a matplotlib chart), the booster as model "model".
"""

from __future__ import annotations

from polytrack.integrations.xgboost import IMPORTANCE_TYPES, PolytrackCallback
from polytrack.run import DisabledRun, Run

__all__ = ["Callback", "callback", "polyaxon_callback"]


class Callback(PolytrackCallback):
    """Polyaxon's `Callback(run, log_model, log_importance, importance_type,
    max_num_features)`: the importance table leads with `importance_type` and keeps the
    `max_num_features` most important features.

    Example:
        >>> xgb.train(params, dtrain, 10, callbacks=[Callback(max_num_features=20)])
    """

    def __init__(
        self,
        run: Run | DisabledRun | None = None,
        log_model: bool = True,
        log_importance: bool = True,
        importance_type: str = "gain",
        max_num_features: int | None = None,
    ) -> None:
        super().__init__(
            run=run,
            log_model=log_model,
            log_importance=log_importance,
            importance_types=(
                importance_type,
                *(kind for kind in IMPORTANCE_TYPES if kind != importance_type),
            ),
            max_num_features=max_num_features,
        )


def callback(
    log_model: bool = True,
    log_importance: bool = True,
    max_num_features: int | None = None,
    run: Run | DisabledRun | None = None,
) -> Callback:
    """Polyaxon's `callback(log_model, log_importance, max_num_features, run)`.

    Example:
        >>> xgb.train(params, dtrain, 10, callbacks=[callback()])
    """
    return Callback(
        run=run,
        log_model=log_model,
        log_importance=log_importance,
        importance_type="weight",  # what Polyaxon's chart (xgb.plot_importance) showed
        max_num_features=max_num_features,
    )


# Polyaxon 1.x's name for `callback`.
polyaxon_callback = callback
