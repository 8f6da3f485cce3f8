"""Polyaxon's `settings.CLIENT_CONFIG`, for scripts moved from Polyaxon's client: what
they read of it, from polytrack's own environment. Apart from `settings` so that `init()`,
which imports `settings`, never builds it."""

from __future__ import annotations

import os
from collections.abc import Mapping

from attrs import frozen

__all__ = ["ClientConfig"]


@frozen
class ClientConfig:
    """What a Polyaxon script reads of `settings.CLIENT_CONFIG`, from polytrack's own
    environment: `is_managed` is true in a workload `polytrack run` started (locally or
    on Kubernetes: both set `POLYTRACK_RUN_ID`, the run `init()` attaches to), as
    Polyaxon's is in a job its agent scheduled; `is_offline` is `POLYTRACK_MODE=offline`,
    `no_op` `POLYTRACK_MODE=disabled`. There is no server to name: `host` is None."""

    is_managed: bool = False
    is_offline: bool = False
    no_op: bool = False
    host: str | None = None
    # Polyaxon's pause before a script ends (for its sidecar): polytrack's journal is
    # durable when a call returns, so there is nothing to wait for.
    tracking_flush_delay: float = 0.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ClientConfig:
        """Read `POLYTRACK_RUN_ID` and `POLYTRACK_MODE` from `environ` (default:
        `os.environ`)."""
        env = os.environ if environ is None else environ
        mode = env.get("POLYTRACK_MODE", "").strip().lower()
        return cls(
            is_managed=bool(env.get("POLYTRACK_RUN_ID")),
            is_offline=mode == "offline",
            no_op=mode == "disabled",
        )
