"""The software a run ran on: Python, platform, installed distributions, frameworks and
an allowlist of environment variables (never a secret)."""

from __future__ import annotations

import fnmatch
import json
import os
import platform
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from polytrack.models import EnvironmentState
from polytrack.redact import is_secret_name, redact_value
from polytrack.store.liveness import hostname

__all__ = ["capture_environment", "installed_packages", "selected_variables"]

# `name-version.dist-info`, `name-version-py3.11.egg-info`: the installer normalised the
# name and wrote the version, so the directory name answers without reading METADATA.
_DIST_DIR: Final = re.compile(
    r"^(?P<name>[^-]+)-(?P<version>[^-]+?)(?:-py\d[^-]*)?\.(?:dist|egg)-info$"
)
_CACHE_VERSION: Final = 1


def capture_environment(
    *,
    allowlist: Sequence[str],
    cache_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    path: Sequence[str] | None = None,
) -> EnvironmentState:
    """Python, platform, host, installed distributions and allowed environment variables.

    Args:
        allowlist: fnmatch patterns of variable names to record; secret names never are.
        cache_dir: where the package list is cached, keyed by the modification times of
            the `sys.path` entries (installing or removing a distribution changes them).
        environ: default `os.environ`.
        path: default `sys.path`.
    """
    environ = os.environ if environ is None else environ
    return EnvironmentState(
        python=platform.python_version(),
        implementation=sys.implementation.name,
        platform=_platform(),
        hostname=hostname(),
        packages=installed_packages(sys.path if path is None else path, cache_dir=cache_dir),
        conda_env=environ.get("CONDA_DEFAULT_ENV") or None,
        frameworks=_frameworks(),
        variables=selected_variables(environ, allowlist),
    )


def _platform() -> str:
    # Not platform.platform(): it reads the interpreter binary to find the libc version.
    uname = platform.uname()
    text = f"{uname.system}-{uname.release}-{uname.machine}"
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        libc = None
    return f"{text}-{libc.replace(' ', '')}" if libc else text


def selected_variables(environ: Mapping[str, str], allowlist: Sequence[str]) -> dict[str, str]:
    """The variables whose names match `allowlist`, minus secret-looking names (strictly:
    `OPENAI_KEY`, `*_USERNAME` too); a value holding a secret's shape is recorded as
    REDACTED, URL credentials in values are stripped. Even with the allowlist `*` no
    secret is recorded that `polytrack.redact` can recognise."""
    chosen: dict[str, str] = {}
    for name in sorted(environ):
        if not any(fnmatch.fnmatchcase(name, pattern) for pattern in allowlist):
            continue
        if is_secret_name(name, strict=True):
            continue
        chosen[name] = str(redact_value(name, environ[name], strict=True))
    return chosen


def installed_packages(path: Sequence[str], *, cache_dir: Path | None = None) -> dict[str, str]:
    """Distribution name (PEP 503 normalised) -> version, for every entry of `path`.

    Read from the names of `*.dist-info` / `*.egg-info` directories (not a `pip freeze`
    subprocess, not every METADATA file), the first entry of `path` winning as it does
    for imports. Cached under `cache_dir` while no entry of `path` has changed.
    """
    entries = [os.path.abspath(p or ".") for p in path]
    stamp = [_mtime(entry) for entry in entries]
    cache = _cache_file(cache_dir, entries) if cache_dir is not None else None
    if cache is not None:
        cached = _read_cache(cache, stamp)
        if cached is not None:
            return cached
    packages: dict[str, str] = {}
    for entry, mtime in zip(entries, stamp, strict=True):
        if mtime is not None:
            for name, version in _distributions(entry):
                packages.setdefault(name, version)
    packages = dict(sorted(packages.items()))
    if cache is not None:
        _write_cache(cache, stamp, packages)
    return packages


def _mtime(entry: str) -> int | None:
    try:
        return os.stat(entry).st_mtime_ns
    except OSError:
        return None


def _distributions(entry: str) -> Iterable[tuple[str, str]]:
    try:
        with os.scandir(entry) as it:
            names = [e.name for e in it if e.name.endswith(("dist-info", "egg-info"))]
    except OSError:  # a zip file on sys.path, or gone
        return
    for dirname in names:
        match = _DIST_DIR.match(dirname)
        if match is None:
            found = _from_metadata(os.path.join(entry, dirname))
            if found is None:
                continue
            name, version = found
        else:
            name, version = match["name"], match["version"]
        yield re.sub(r"[-_.]+", "-", name).lower(), version


def _from_metadata(path: str) -> tuple[str, str] | None:
    """Name and version from METADATA / PKG-INFO, for directories named without a version."""
    for candidate in (os.path.join(path, "METADATA"), os.path.join(path, "PKG-INFO"), path):
        try:
            with open(candidate, encoding="utf-8", errors="replace") as file:
                head = file.read(4096)
        except OSError:
            continue
        name = re.search(r"^Name: *(.+)$", head, re.MULTILINE)
        version = re.search(r"^Version: *(.+)$", head, re.MULTILINE)
        if name and version:
            return name[1].strip(), version[1].strip()
    return None


def _cache_file(cache_dir: Path, entries: list[str]) -> Path:
    # `_blake2`, which hashlib re-exports: importing hashlib loads OpenSSL, ~4 ms that
    # finish() of a short run would pay (issue 21).
    from _blake2 import blake2b

    key = blake2b("\0".join([sys.executable, *entries]).encode(), digest_size=8).hexdigest()
    return cache_dir / f"packages-{key}.json"


def _read_cache(cache: Path, stamp: list[int | None]) -> dict[str, str] | None:
    try:
        data: Any = json.loads(cache.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != _CACHE_VERSION:
        return None
    if data.get("stamp") != stamp or not isinstance(data.get("packages"), dict):
        return None
    return dict(data["packages"])


def _write_cache(cache: Path, stamp: list[int | None], packages: dict[str, str]) -> None:
    """Write by rename, so concurrent runs never read half a file; failures cost a rescan."""
    body = {"version": _CACHE_VERSION, "stamp": stamp, "packages": packages}
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(body))
        os.replace(temporary, cache)
    except OSError:
        pass


def _frameworks() -> dict[str, str]:
    """Versions of the frameworks the process already imported (never imports one)."""
    found: dict[str, str] = {}
    torch = sys.modules.get("torch")
    if torch is not None:
        found["torch"] = str(getattr(torch, "__version__", ""))
        version = getattr(torch, "version", None)
        if getattr(version, "cuda", None):
            found["cuda"] = str(version.cuda)  # type: ignore[union-attr]
        try:
            cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        except Exception:  # a broken CUDA install must not break init()
            cudnn = None
        if cudnn:
            found["cudnn"] = str(cudnn)
    for module in ("tensorflow", "jax", "sklearn", "lightning", "pytorch_lightning", "keras"):
        loaded = sys.modules.get(module)
        if loaded is not None and getattr(loaded, "__version__", None):
            found[module] = str(loaded.__version__)
    return found
