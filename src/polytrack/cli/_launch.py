"""What `polytrack run` and `polytrack ops` share: settings for the runs they make or
attach to, the cluster of a recorded operation, recording a workload's end into its run,
and printing pods' logs."""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING

from polytrack.cli._context import Context

if TYPE_CHECKING:
    from polytrack.capture.logs import LogWriter
    from polytrack.launch.client import KubeClient
    from polytrack.launch.ops import OpRecord, OpsRegistry
    from polytrack.launch.watch import JobState, LogLine
    from polytrack.settings import Settings

__all__ = ["LogPrinter", "client_for", "pod_logs", "record_end", "run_settings"]


def run_settings(context: Context) -> Settings:
    """The settings of runs made or attached to by the command line: its store, and
    never the `POLYTRACK_RUN_ID` of the environment (inside a pod, that is the pod's own
    run, not one the command line should write into)."""
    from polytrack.settings import Settings

    settings = Settings.from_env(context.environ)
    return settings.evolve(home=context.home, run_id=None, run_name=None)


def client_for(
    record: OpRecord,
    context: Context,
    *,
    kubeconfig: str | None = None,
    cluster_context: str | None = None,
) -> KubeClient:
    """A client of the cluster `record` was submitted to: the same kubeconfig files and
    context (or the pod's service account), unless the options say otherwise.

    Raises:
        KubeconfigError: that kubeconfig or context is gone.
    """
    from polytrack.launch.client import KubeClient
    from polytrack.launch.kubeconfig import in_cluster, load_cluster, load_kubeconfig

    if kubeconfig is not None or cluster_context is not None:
        auth = load_cluster(
            kubeconfig=kubeconfig,
            context=cluster_context,
            namespace=record.namespace,
            environ=context.environ,
        )
    elif record.kubeconfig:
        auth = load_kubeconfig(
            record.kubeconfig.split(os.pathsep), context=record.context, environ=context.environ
        )
    else:
        auth = in_cluster(environ=context.environ)
    return KubeClient.connect(auth, environ=context.environ)


def record_end(
    context: Context,
    client: KubeClient | None,
    registry: OpsRegistry,
    record: OpRecord,
    state: JobState,
    *,
    lines: list[LogLine] | None = None,
) -> OpRecord:
    """Record a workload's final `state` into its run, with its pods' logs, and mark the
    record: attach to the run (a new attempt), write the logs, finish it.

    `lines` are the logs when the caller fetched them already (before cancelling); else
    they are fetched through `client`, if any. A run that a live process owns
    (`polytrack run --watch`) is left to it. Returns the record as saved.
    """
    import polytrack
    from polytrack.capture.logs import LogWriter
    from polytrack.errors import RunStateError

    record = record.evolve(status=state.status, message=state.message)
    settings = run_settings(context)
    if not (settings.home / "runs" / record.id).is_dir():
        context.note(f"{record.name}: run {record.id} is not in {settings.home}; not recorded")
        registry.save(record)
        return record
    if lines is None:
        lines = [] if client is None else pod_logs(context, client, record)
    try:
        run = polytrack.init(settings=settings.evolve(run_id=record.id), capture=False)
    except RunStateError:
        context.note(f"{record.name}: run {record.id} is owned by a live process; left to it")
        return record
    assert run.dir is not None
    if lines:
        several = len({line.pod for line in lines}) > 1
        path = run.dir / f"output-{run.attempt:03d}.log"
        with LogWriter.open(path, max_bytes=settings.logs_max_bytes) as log:
            for line in lines:
                log.write([_prefixed(line, several)], t=line.t)
    run.finish(state.status, message=state.message)
    record = record.evolve(finished_at=time.time(), recorded=True)
    registry.save(record)
    return record


def pod_logs(context: Context, client: KubeClient, record: OpRecord) -> list[LogLine]:
    """Everything the workload's pods logged; nothing (with a note) if they cannot be read."""
    from polytrack.errors import KubernetesError
    from polytrack.launch.watch import fetch_logs

    try:
        return fetch_logs(
            client, record.namespace, record.pod_selector, container=record.main_container
        )
    except KubernetesError as exc:
        context.note(f"{record.name}: the pods' logs are not recorded: {exc}")
        return []


def _prefixed(line: LogLine, several: bool) -> str:
    return f"[{line.pod}] {line.text}" if several else line.text


class LogPrinter:
    """A `PodLogs` sink: prints each line (prefixed with its pod where a workload has
    several, or where lines of many workloads mix) and copies it into a run's log."""

    _lock = threading.Lock()  # one line at a time on the terminal, whoever prints

    def __init__(
        self,
        context: Context,
        *,
        prefix: str | None = None,
        pods: bool = False,
        log: LogWriter | None = None,
    ) -> None:
        self._context = context
        self._prefix = prefix
        self._pods = pods
        self._log = log

    def __call__(self, line: LogLine) -> None:
        text = _prefixed(line, self._pods)
        shown = f"[{self._prefix}] {text}" if self._prefix else text
        with self._lock:
            self._context.out(shown)
            if self._log is not None:
                self._log.write([text], t=line.t)

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
