"""Which backend a run syncs to: `init(backend=)`, `POLYTRACK_BACKEND`, the config file.

Resolved in `init()` without importing any backend: a URI is checked for shape and scheme
there, and the backend itself is built on the sync thread (its HTTP client is not cheap
to import). A bad URI or config file is an error at `init()`, before anything is recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from attrs import frozen

from polytrack.errors import BackendConfigError
from polytrack.sync.backends.config import BackendConfig, read_config, uri_key
from polytrack.sync.backends.registry import BUILTIN_SCHEMES, check_uri

if TYPE_CHECKING:
    from polytrack.settings import Settings
    from polytrack.sync.backends.base import Backend

__all__ = ["SyncTarget", "resolve_target"]


@frozen
class SyncTarget:
    """A backend to sync to, not yet built; `uri` is None for an instance passed in."""

    key: str
    uri: str | None
    artifact_store: str | None
    open_backend: Callable[[], Backend]
    owned: bool  # built from a URI here, so closed here; an instance passed in is the caller's

    def open_store(self, environ: Mapping[str, str]) -> Any:
        """The artifact store, when one is configured (None: the backend's own uploads)."""
        if self.artifact_store is None:
            return None
        from polytrack.sync.backends.artifact_store import open_artifact_store

        return open_artifact_store(self.artifact_store, environ=environ)


def resolve_target(
    backend: Backend | str | None, settings: Settings, environ: Mapping[str, str]
) -> SyncTarget | None:
    """The backend a new run syncs to, or None to keep it in the local store only.

    Order: `backend` (an instance or a URI), `settings.backend` (`POLYTRACK_BACKEND`),
    the config file's `backend`. Offline mode syncs nothing.

    Raises:
        BackendConfigError: the URI has no or an unknown scheme, or the config file is
            unusable (names the file).
    """
    if settings.mode != "online":
        return None
    if backend is not None and not isinstance(backend, str):
        return SyncTarget(
            key=backend.key,
            uri=None,
            artifact_store=settings.artifact_store,
            open_backend=lambda: backend,
            owned=False,
        )
    config = read_config(environ)
    uri = backend or settings.backend or config.backend
    store = settings.artifact_store or config.artifact_store
    if not uri:
        return None
    scheme = check_uri(uri)
    if scheme not in BUILTIN_SCHEMES:
        from importlib.metadata import entry_points

        from polytrack.sync.backends.registry import ENTRY_POINT_GROUP

        if not any(entry.name == scheme for entry in entry_points(group=ENTRY_POINT_GROUP)):
            raise BackendConfigError(
                f"no backend for {scheme}://; built in: {', '.join(sorted(BUILTIN_SCHEMES))}"
            )
    return SyncTarget(
        key=uri_key(uri),
        uri=uri,
        artifact_store=store,
        open_backend=lambda: _open(uri, environ, config),
        owned=True,
    )


def _open(uri: str, environ: Mapping[str, str], config: BackendConfig) -> Backend:
    from polytrack.sync.backends.registry import open_backend

    return open_backend(uri, environ=environ, config=config)
