"""Where a backend's URI and credentials come from: arguments, environment, config file.

The config file is TOML, `$POLYTRACK_CONFIG`, else `$XDG_CONFIG_HOME/polytrack/config.toml`
(`~/.config/polytrack/config.toml`):

```toml
backend = "mlflow+http://mlflow.internal:5000"
artifact_store = "s3://ml-artifacts/runs"      # optional

[credentials."mlflow+http://mlflow.internal:5000"]
token = "..."                                   # or username = "..." and password = "..."
```
A file that holds credentials must be readable by its owner only (`chmod 600`), as ssh
demands of private keys; otherwise it is refused, naming the file. Credentials are never
logged, printed, or stored with a run: only `Credentials.__repr__` hides them, so keep
them out of f-strings.
"""

from __future__ import annotations

import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import attrs
from attrs import frozen

from polytrack.errors import BackendConfigError
from polytrack.settings import config_path

__all__ = [
    "BackendConfig",
    "Credentials",
    "config_path",
    "credentials_for",
    "read_config",
    "uri_key",
]


@frozen(repr=False)
class Credentials:
    """A token, or a user name and password; any may be None."""

    token: str | None = None
    username: str | None = None
    password: str | None = None

    def __repr__(self) -> str:
        present = [name for name in ("token", "username", "password") if getattr(self, name)]
        return f"Credentials({', '.join(present) or 'none'})"

    def __bool__(self) -> bool:
        return bool(self.token or self.username or self.password)


@frozen(repr=False)
class BackendConfig:
    """What the config file says; `credentials` is keyed by the backend's `uri_key`."""

    path: Path | None = None
    backend: str | None = None
    artifact_store: str | None = None
    credentials: Mapping[str, Credentials] = attrs.field(factory=dict)

    def __repr__(self) -> str:
        return f"BackendConfig({self.path}, backend={self.backend!r})"


def read_config(environ: Mapping[str, str]) -> BackendConfig:
    """Read the config file, if there is one.

    Raises:
        BackendConfigError: it is not valid TOML, has unknown keys, or holds credentials
            while others may read it.
    """
    path = config_path(environ)
    try:
        raw = path.read_bytes()
        mode = path.stat().st_mode
    except FileNotFoundError:
        return BackendConfig()
    except OSError as exc:
        raise BackendConfigError(f"cannot read {path}: {exc.strerror}") from None
    import tomllib  # only when there is a file: init() stays quick without one

    try:
        data = tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BackendConfigError(f"{path}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"backend", "artifact_store", "credentials"})
    if unknown:
        raise BackendConfigError(f"{path}: unknown keys {', '.join(unknown)}")
    credentials = _credentials_table(path, data.get("credentials", {}))
    if credentials and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise BackendConfigError(
            f"{path} holds credentials but others may read it (mode {stat.S_IMODE(mode):o});"
            f" run: chmod 600 {path}"
        )
    for name in ("backend", "artifact_store"):
        if name in data and not isinstance(data[name], str):
            raise BackendConfigError(f"{path}: {name} must be a string")
    return BackendConfig(
        path=path,
        backend=data.get("backend"),
        artifact_store=data.get("artifact_store"),
        credentials=credentials,
    )


def _credentials_table(path: Path, table: Any) -> dict[str, Credentials]:
    if not isinstance(table, dict):
        raise BackendConfigError(f"{path}: credentials must be a table of backend URIs")
    found: dict[str, Credentials] = {}
    for uri, entry in table.items():
        if not isinstance(entry, dict) or set(entry) - {"token", "username", "password"}:
            raise BackendConfigError(
                f"{path}: credentials.{uri!r} may hold token, username and password only"
            )
        if any(not isinstance(value, str) for value in entry.values()):
            raise BackendConfigError(f"{path}: credentials.{uri!r} values must be strings")
        found[uri_key(uri)] = Credentials(**entry)
    return found


def uri_key(uri: str) -> str:
    """A backend URI without credentials, query or trailing slash: what names it.

    Raises:
        BackendConfigError: the port is not a number from 0 to 65535.
    """
    parts = urlsplit(uri)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        raise BackendConfigError(f"backend URI {parts.scheme}://{host}...: bad port") from None
    netloc = f"{host}:{port}" if port else host
    if not netloc and "://" in uri:  # polytrack+file:///path: urlunsplit would drop "//"
        return f"{parts.scheme}://{parts.path.rstrip('/')}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def credentials_for(
    uri: str,
    environ: Mapping[str, str],
    config: BackendConfig,
    *,
    env_token: tuple[str, ...] = (),
    env_username: tuple[str, ...] = (),
    env_password: tuple[str, ...] = (),
) -> Credentials:
    """The credentials for `uri`, the first found of: the URI's own user and password,
    `POLYTRACK_BACKEND_TOKEN` / `_USERNAME` / `_PASSWORD`, the backend's own variables
    (`env_token`, ...: `MLFLOW_TRACKING_TOKEN`, say), then the config file."""
    parts = urlsplit(uri)
    stored = config.credentials.get(uri_key(uri), Credentials())

    def pick(own: str | None, names: tuple[str, ...], fallback: str | None) -> str | None:
        if own:
            return own
        for name in names:
            if environ.get(name):
                return environ[name]
        return fallback

    from urllib.parse import unquote

    return Credentials(
        token=pick(None, ("POLYTRACK_BACKEND_TOKEN", *env_token), stored.token),
        username=pick(
            unquote(parts.username) if parts.username else None,
            ("POLYTRACK_BACKEND_USERNAME", *env_username),
            stored.username,
        ),
        password=pick(
            unquote(parts.password) if parts.password else None,
            ("POLYTRACK_BACKEND_PASSWORD", *env_password),
            stored.password,
        ),
    )
