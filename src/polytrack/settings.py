"""Frozen settings; `Settings.from_env` is the one reader of `POLYTRACK_*` variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
from attrs import field, frozen

from polytrack.errors import InvalidInputError

__all__ = ["MODES", "Mode", "Settings", "default_home"]

Mode = Literal["online", "offline", "disabled"]
MODES: tuple[Mode, ...] = ("online", "offline", "disabled")


def default_home(environ: Mapping[str, str]) -> Path:
    """Where the embedded store lives when `POLYTRACK_HOME` is unset.

    Follows the XDG base-directory convention, like other per-user data stores:
    `$XDG_DATA_HOME/polytrack`, else `~/.local/share/polytrack`.
    """
    xdg = environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path(environ.get("HOME") or Path.home()) / ".local" / "share"
    return base / "polytrack"


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise InvalidInputError(f"setting {attribute.name} must be positive, got {value!r}")


def _mode(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in MODES:
        raise InvalidInputError(f"mode must be one of {', '.join(MODES)}; got {value!r}")


@frozen
class Settings:
    """Everything configurable about tracking, resolved once per `init()`.

    Environment variables (all optional):
    `POLYTRACK_HOME`, `POLYTRACK_MODE`, `POLYTRACK_PROJECT`, `POLYTRACK_FSYNC_INTERVAL`,
    `POLYTRACK_HEARTBEAT_INTERVAL`, `POLYTRACK_INDEX_ON_FINISH` (0/1), `POLYTRACK_SPEEDUPS`
    (0: the pure-Python hot path even where the C one is built).
    """

    home: Path
    mode: str = field(default="online", validator=_mode)
    project: str = "default"
    fsync_interval: float = field(default=1.0, validator=_positive)
    heartbeat_interval: float = field(default=5.0, validator=_positive)
    index_on_finish: bool = True
    # Use the C hot path (polytrack._speedups) where it was built.
    speedups: bool = True
    # First segment of a stream is small so that tiny runs stay tiny on disk; each next
    # one doubles up to the maximum.
    first_segment_bytes: int = 64 * 1024
    max_segment_bytes: int = 8 * 1024 * 1024

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read `POLYTRACK_*` from `environ` (default: `os.environ`)."""
        env = os.environ if environ is None else environ
        home = env.get("POLYTRACK_HOME")
        kwargs: dict[str, object] = {
            "home": Path(home).expanduser() if home else default_home(env),
        }
        if "POLYTRACK_MODE" in env:
            kwargs["mode"] = env["POLYTRACK_MODE"]
        if env.get("POLYTRACK_PROJECT"):
            kwargs["project"] = env["POLYTRACK_PROJECT"]
        for name in ("fsync_interval", "heartbeat_interval"):
            raw = env.get(f"POLYTRACK_{name.upper()}")
            if raw is not None:
                try:
                    kwargs[name] = float(raw)
                except ValueError:
                    raise InvalidInputError(
                        f"POLYTRACK_{name.upper()} must be a number of seconds, got {raw!r}"
                    ) from None
        for name in ("index_on_finish", "speedups"):
            raw = env.get(f"POLYTRACK_{name.upper()}")
            if raw is not None:
                kwargs[name] = raw.strip().lower() not in ("0", "false", "no", "off")
        return cls(**kwargs)  # type: ignore[arg-type]

    def evolve(self, **changes: Any) -> Settings:
        """A copy with `changes` applied (validated again)."""
        return attrs.evolve(self, **changes)
