"""Polyaxon's Transformers callback (`polyaxon.tracking.contrib.hugging_face`), recorded by
polytrack.

```python
from polytrack import tracking
from polytrack.tracking.contrib.hugging_face import PolyaxonCallback   # was: from polyaxon.

tracking.init(project="glue")
trainer = Trainer(model=model, args=args, train_dataset=train, callbacks=[PolyaxonCallback])
```

`PolyaxonCallback` takes the arguments of Polyaxon 2's callback (traceml 1.5's
`traceml.integrations.hugging_face.Callback`: only `run`) and records as it did: the
`TrainingArguments` (`to_sanitized_dict()`) as inputs under their own names, and every
number the Trainer logs as a metric under the Trainer's name (`loss`, `eval_loss`,
`train_runtime`) at step = `state.global_step`, by the world's process zero only. It is
`polytrack.integrations.transformers.PolytrackCallback` with `group_keys=False`, so it
also records the model's config (`model.*`), and the final model when
`POLYTRACK_LOG_MODEL` is true.
"""

from __future__ import annotations

from polytrack.integrations.transformers import PolytrackCallback
from polytrack.run import DisabledRun, Run
from polytrack.tracking.run import Run as TrackingRun, polytrack_run_of

__all__ = ["PolyaxonCallback"]


class PolyaxonCallback(PolytrackCallback):
    """Polyaxon's Transformers callback: the Trainer's arguments and logs, under its names.

    Args:
        run: the run to record into (`tracking.init()`'s, a `tracking.Run`, or a
            polytrack run); default the current run, else one started when training
            begins (and finished at its end).

    Example:
        >>> Trainer(model, args, train_dataset=ds, callbacks=[PolyaxonCallback()])
    """

    def __init__(self, run: TrackingRun | Run | DisabledRun | None = None) -> None:
        super().__init__(run=polytrack_run_of(run), group_keys=False)
