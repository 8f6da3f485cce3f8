"""How an operation is run around its container: termination, plugins, hooks, cache, schedule.

These sections sit on a component or an operation (the operation's win) and do not
depend on the run kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeAlias

from attrs import frozen

from polytrack.spec._fields import Cron, DateTime, NonNegativeInt, PositiveInt
from polytrack.spec.io import Param

__all__ = [
    "Cache",
    "CronSchedule",
    "Culling",
    "DateTimeSchedule",
    "EarlyStopping",
    "FailureEarlyStopping",
    "Hook",
    "IntervalSchedule",
    "MetricEarlyStopping",
    "Notification",
    "Plugins",
    "Schedule",
    "Termination",
]

HookTrigger: TypeAlias = Literal["succeeded", "failed", "stopped", "done"]
Optimization: TypeAlias = Literal["maximize", "minimize"]


@frozen
class Culling:
    """Stop a service once it has been idle for `timeout` seconds."""

    timeout: NonNegativeInt | None = None


@frozen
class Termination:
    """When to give up on a run and how long to keep its resources.

    `maxRetries` is the Job `backoffLimit`, `timeout` its `activeDeadlineSeconds` and `ttl`
    its `ttlSecondsAfterFinished`, all in seconds.
    """

    max_retries: NonNegativeInt | None = None
    ttl: NonNegativeInt | None = None
    timeout: NonNegativeInt | None = None
    culling: Culling | None = None
    probe: Any = None
    pod_failure_policy: Any = None


@frozen
class Notification:
    """Notify `connections` when the run reaches `trigger`."""

    connections: tuple[str, ...]
    trigger: HookTrigger | None = None


@frozen
class Plugins:
    """Switches for the helpers Polyaxon adds to a run (auth, log collection, /dev/shm, ...)."""

    auth: bool | None = None
    docker: bool | None = None
    shm: bool | None = None
    mount_artifacts_store: bool | None = None
    collect_artifacts: bool | None = None
    collect_logs: bool | None = None
    collect_resources: bool | None = None
    sync_statuses: bool | None = None
    auto_resume: bool | None = None
    external_host: bool | None = None
    log_level: str | None = None
    sidecar: Any = None
    notifications: tuple[Notification, ...] | None = None
    # Polyaxon 2.18's interactive helpers; read so that such files load, not acted on.
    tmux: bool | None = None
    ssh: bool | None = None
    sandbox: Any = None


@frozen
class Hook:
    """An operation (`hubRef`) to run when this one ends, if `trigger` and `conditions` hold."""

    hub_ref: str
    connection: str | None = None
    trigger: HookTrigger | None = None
    conditions: str | None = None
    presets: tuple[str, ...] | None = None
    queue: str | None = None
    namespace: str | None = None
    params: Mapping[str, Param] | None = None
    disable_defaults: bool | None = None


@frozen
class Cache:
    """Reuse the outputs of an identical earlier run for `ttl` seconds, unless `disable`d."""

    disable: bool | None = None
    ttl: NonNegativeInt | None = None
    io: tuple[str, ...] | None = None
    sections: tuple[str, ...] | None = None


@frozen
class CronSchedule:
    """Start a run on a cron schedule, between `startAt` and `endAt`, at most `maxRuns`."""

    cron: Cron
    kind: Literal["cron"] = "cron"
    start_at: DateTime | None = None
    end_at: DateTime | None = None
    max_runs: PositiveInt | None = None
    depends_on_past: bool | None = None


@frozen
class IntervalSchedule:
    """Start a run every `frequency` seconds."""

    frequency: PositiveInt
    kind: Literal["interval"] = "interval"
    start_at: DateTime | None = None
    end_at: DateTime | None = None
    max_runs: PositiveInt | None = None
    depends_on_past: bool | None = None


@frozen
class DateTimeSchedule:
    """Start a run once, at `startAt`."""

    start_at: DateTime
    kind: Literal["datetime"] = "datetime"


Schedule: TypeAlias = CronSchedule | IntervalSchedule | DateTimeSchedule


@frozen
class MetricEarlyStopping:
    """Stop the remaining runs once `metric` reaches `value`."""

    metric: str
    value: float
    kind: Literal["metric_early_stopping"] = "metric_early_stopping"
    optimization: Optimization | None = None
    policy: Any = None


@frozen
class FailureEarlyStopping:
    """Stop the remaining runs once `percent` of them have failed (a float, as in Polyaxon)."""

    percent: float
    kind: Literal["failure_early_stopping"] = "failure_early_stopping"


EarlyStopping: TypeAlias = MetricEarlyStopping | FailureEarlyStopping
