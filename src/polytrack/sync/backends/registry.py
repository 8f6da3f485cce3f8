"""From a backend URI to a `Backend` instance: built-in schemes and entry points.

A URI's scheme picks a factory: the built-in ones below, or a third party's, registered in
the `polytrack.backends` entry-point group under the scheme's name:

```toml
[project.entry-points."polytrack.backends"]
"myserver+https" = "mypackage.backend:from_uri"
```
A factory is called as `factory(uri, environ=..., config=...)` and returns a `Backend`;
it takes its credentials with `polytrack.sync.backends.config.credentials_for`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from polytrack.errors import BackendConfigError
from polytrack.sync.backends.config import BackendConfig

if TYPE_CHECKING:
    from polytrack.sync.backends.base import Backend

__all__ = ["BUILTIN_SCHEMES", "ENTRY_POINT_GROUP", "check_uri", "open_backend"]

ENTRY_POINT_GROUP: Final = "polytrack.backends"
BUILTIN_SCHEMES: Final = {
    "mlflow+http": "polytrack.sync.backends.mlflow:MlflowBackend.from_uri",
    "mlflow+https": "polytrack.sync.backends.mlflow:MlflowBackend.from_uri",
    "polyaxon+http": "polytrack.sync.backends.polyaxon:PolyaxonBackend.from_uri",
    "polyaxon+https": "polytrack.sync.backends.polyaxon:PolyaxonBackend.from_uri",
    "memory": "polytrack.sync.backends.memory:InMemoryBackend.from_uri",
    "polytrack+file": "polytrack.sync.backends.home:HomeBackend.from_uri",
}


def check_uri(uri: str) -> str:
    """The URI's scheme, checked for shape only (no import): what `init()` can afford.

    Raises:
        BackendConfigError: no `scheme://` in it.
    """
    scheme = urlsplit(uri).scheme if "://" in uri else ""
    if not scheme:
        raise BackendConfigError(
            f"backend URI {_shown(uri)!r} has no scheme; expected e.g. "
            "mlflow+http://host:5000 or polyaxon+http://host:8000/owner/project"
        )
    return scheme.lower()


def open_backend(
    uri: str, *, environ: Mapping[str, str], config: BackendConfig | None = None
) -> Backend:
    """The backend `uri` names, built by its scheme's factory.

    Raises:
        BackendConfigError: the scheme is unknown, or its factory refused the URI.
    """
    from polytrack.sync.backends.base import Backend  # a runtime Protocol: not on init()'s path

    scheme = check_uri(uri)
    factory = _factory(scheme)
    backend = factory(uri, environ=environ, config=config or BackendConfig())
    if not isinstance(backend, Backend):
        raise BackendConfigError(f"the factory for {scheme}:// returned {backend!r}, not a Backend")
    return backend


def _factory(scheme: str) -> Callable[..., Any]:
    target = BUILTIN_SCHEMES.get(scheme)
    if target is None:
        from importlib.metadata import entry_points

        found = [entry for entry in entry_points(group=ENTRY_POINT_GROUP) if entry.name == scheme]
        if not found:
            known = ", ".join(sorted(BUILTIN_SCHEMES))
            raise BackendConfigError(
                f"no backend for {scheme}://; built in: {known}; others register in the "
                f"{ENTRY_POINT_GROUP!r} entry-point group"
            )
        loaded: Callable[..., Any] = found[0].load()
        return loaded
    module, _, attribute = target.partition(":")
    value: Any = importlib.import_module(module)
    for part in attribute.split("."):
        value = getattr(value, part)
    return value  # type: ignore[no-any-return]


def _shown(uri: str) -> str:
    """The URI as it may appear in a message: without a password."""
    from polytrack.redact import redact_url

    return redact_url(uri)
