"""`polytrack run --local`: the runs of local processes, made over the public API.

`ApiRunMaker` is the `RunMaker` the local runner (`polytrack.launch.local`) and the tuners
use from the command line: each run is made with `polytrack.init` (recording the
launching working tree, as for Kubernetes), handed over to its process (which attaches
with `POLYTRACK_RUN_ID`), its output written into the run's first log as it comes, and
its end recorded by attaching once more. `launch_local` runs a plan with it, stopping
every process on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from polytrack.cli._context import Context

if TYPE_CHECKING:
    from polytrack.capture.logs import LogWriter
    from polytrack.launch.local import LocalRun
    from polytrack.launch.manifests import GitSource
    from polytrack.launch.plan import Plan
    from polytrack.settings import Settings

__all__ = ["ApiRunMaker", "launch_local", "stop_on_signals"]

EXIT_INTERRUPTED = 130


class ApiRunMaker:
    """A `polytrack.launch.local.RunMaker` over `polytrack.init`; thread-safe.

    A parent run id is recorded as the tag `parent:<id>` (the store's links know only
    `reproduces`).
    """

    def __init__(self, settings: Settings, *, project: str | None = None) -> None:
        self._settings = settings
        self._project = project
        self._lock = threading.Lock()  # one init() at a time: the current run is global
        self._logs: dict[str, _Log] = {}

    @classmethod
    def for_context(cls, context: Context, *, project: str | None = None) -> ApiRunMaker:
        from polytrack.cli._launch import run_settings

        return cls(run_settings(context), project=project)

    @property
    def home(self) -> Path:
        return self._settings.home

    def create(
        self,
        *,
        run_id: str,
        name: str,
        params: Mapping[str, Any],
        tags: Sequence[str],
        parent_run_id: str | None,
    ) -> LocalRun:
        import polytrack
        from polytrack.capture.logs import LogWriter
        from polytrack.launch.local import LocalRun

        all_tags = [*tags, *([f"parent:{parent_run_id}"] if parent_run_id else [])]
        with self._lock:
            run = polytrack.init(
                project=self._project,
                name=name,
                params=dict(params),
                tags=all_tags,
                capture={"logs": False, "system": False},
                settings=self._settings.evolve(run_id=run_id),
                reinit="create_new",
            )
            try:
                assert run.dir is not None
                log = LogWriter.open(
                    run.dir / f"output-{run.attempt:03d}.log",
                    max_bytes=self._settings.logs_max_bytes,
                )
            finally:
                run.hand_over(f"local:{_host()}")
            kept = self._logs[run.id] = _Log(log)
        return LocalRun(id=run.id, name=run.name, project=run.project, log=kept.write)

    def finish(self, run: LocalRun, status: str, *, message: str | None) -> None:
        import polytrack

        with self._lock:
            kept = self._logs.pop(run.id, None)
            if kept is not None:
                kept.close()
            attached = polytrack.init(
                settings=self._settings.evolve(run_id=run.id),
                capture=False,
                reinit="create_new",
            )
            attached.finish(status, message=message)


class _Log:
    """A run's output log, written from the runner's output threads; a line that comes
    after it closed (from a process that escaped its group) is dropped."""

    def __init__(self, writer: LogWriter) -> None:
        self._writer: LogWriter | None = writer
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.write([line])

    def close(self) -> None:
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()


def _host() -> str:
    import socket

    return socket.gethostname()


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[list[int]]:
    """While inside, SIGINT and SIGTERM set `stop` (and are listed in what it yields)
    instead of interrupting; the previous handlers come back after. Only the main thread
    can handle signals: elsewhere this does nothing."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        caught.append(signum)
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield caught
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def launch_local(
    args: argparse.Namespace,
    context: Context,
    plan: Plan,
    git: GitSource | None,
) -> int:
    """Run `plan` on this machine (see `polytrack.launch.local`); 0 when every run
    succeeded, 1 when one did not, 130 when stopped by a signal."""
    from polytrack.launch.local import run_local_plan

    stop = threading.Event()
    maker = ApiRunMaker.for_context(context, project=args.project)
    lock = threading.Lock()

    def output(line: str) -> None:
        with lock:
            context.out(line)
            context.stdout.flush()

    def note(text: str) -> None:
        with lock:
            context.note(text)

    with stop_on_signals(stop) as caught:
        outcomes = run_local_plan(
            plan,
            runs=maker,
            stop=stop,
            output=output,
            note=note,
            concurrency=args.concurrency,
            image=args.image,
            git=git,
            tree=Path.cwd() if git is not None else None,
            environ=context.environ,
            project=args.project,
        )
    for outcome in outcomes:
        if outcome.status == "skipped":
            continue  # noted when it was decided
        why = f" ({outcome.message})" if outcome.message else ""
        run = f" run {outcome.run_id}" if outcome.run_id else ""
        note(f"{outcome.key}:{run} {outcome.status}{why}")
    if caught:
        return EXIT_INTERRUPTED
    bad = [o for o in outcomes if o.status not in ("succeeded", "skipped")]
    return 1 if bad else 0
