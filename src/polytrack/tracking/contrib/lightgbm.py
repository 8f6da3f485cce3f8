"""Polyaxon's LightGBM callback (`polyaxon.tracking.contrib.lightgbm`, from traceml 1.5's
`traceml/integrations/lightgbm.py`), over `polytrack.integrations.lightgbm`.

```python
from polytrack.tracking.contrib.lightgbm import callback   # was: polyaxon.tracking...

lgb.train(params, train, 10, valid_sets=[valid], callbacks=[callback()])
```

Polyaxon's callback recorded the metrics (`<data>-<metric>` at step = the iteration);
this one records them under the same names, and also what `PolytrackCallback` records:
the params, the feature importance and the booster as model "model".
"""

from __future__ import annotations

from polytrack.integrations.lightgbm import PolytrackCallback
from polytrack.run import DisabledRun, Run

__all__ = ["callback", "polyaxon_callback"]


def callback(run: Run | DisabledRun | None = None) -> PolytrackCallback:
    """Polyaxon's `callback(run=None)`: a LightGBM callback recording into `run`, else
    the current run, else a new one.

    Example:
        >>> lgb.train(params, train, 10, valid_sets=[valid], callbacks=[callback()])
    """
    return PolytrackCallback(run=run)


# Polyaxon 1.x's name for `callback`.
polyaxon_callback = callback
