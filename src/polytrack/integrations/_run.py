"""The run an integration records into: the current one, else one it starts and owns."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import polytrack
from polytrack.run import DisabledRun, Run

__all__ = ["RunHandle"]


class RunHandle:
    """The run a callback records into, and whether the callback must finish it.

    A callback made while a run is current records into that run and leaves its end to
    whoever started it. A callback made with no current run starts one at the first event
    (`polytrack.init(**init_args)`), not in its constructor, so that building a Trainer
    records nothing by itself; and finishes it when training ends.
    """

    def __init__(self, run: Run | DisabledRun | None = None, **init_args: Any) -> None:
        self._run = run
        self._init_args: Mapping[str, Any] = init_args
        self._owned = False
        self._found = False  # `_run` is the run that was current, not one given or started

    @property
    def run(self) -> Run | DisabledRun:
        """The run, started now if there is none yet. A run found current that has
        finished since is looked for again (a callback reused for the next run)."""
        if self._run is None or (self._found and self._run.finished):
            current = polytrack.current_run()
            self._found = current is not None and not current.finished
            if current is not None and not current.finished:
                self._run = current
            else:
                self._run = polytrack.init(**self._init_args)
                self._owned = True
        return self._run

    @property
    def owned(self) -> bool:
        """True when this handle started the run (and so finishes it)."""
        return self._owned

    def finish(self, status: str = "succeeded", *, message: str | None = None) -> None:
        """Finish the run if this handle started it; a run it found is left recording."""
        if self._owned and self._run is not None and not self._run.finished:
            self._run.finish(status, message=message)

    @contextlib.contextmanager
    def recording(self) -> Iterator[Run | DisabledRun]:
        """The run, for a one-shot call (scikit-learn's `log_estimator`): a run started
        here is finished when the block ends, failed if it raised."""
        run = self.run
        try:
            yield run
        except BaseException:
            self.finish("failed")
            raise
        self.finish()
