"""Virtualenvs for the servers the tests start, built once and cached outside the checkout.

A venv lives in `<cache>/venvs/<name>-<hash>`, where the hash covers the pinned
requirements and the interpreter, so changing a pin builds a new one beside the old.
`<cache>` is `$POLYTRACK_TEST_CACHE`, else `$XDG_CACHE_HOME/polytrack-test`, else
`~/.cache/polytrack-test`. It is built in a temporary directory next to its final place
and renamed into it, under an exclusive `flock`, so that parallel test processes neither
race nor ever see a half-installed venv.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path


def cache_root(environ: Mapping[str, str] = os.environ) -> Path:
    """The test cache directory, from the environment (see the module docstring)."""
    if environ.get("POLYTRACK_TEST_CACHE"):
        return Path(environ["POLYTRACK_TEST_CACHE"])
    xdg = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "polytrack-test"


def ensure_venv(
    name: str,
    requirements: Sequence[str],
    *,
    environ: Mapping[str, str] = os.environ,
) -> Path:
    """Return the venv `name` with exactly `requirements` installed, building it if needed.

    Args:
        name: a short label for the directory, e.g. "mlflow".
        requirements: pip requirement strings, each pinned with `==`.

    Raises:
        ValueError: a requirement is not pinned to an exact version.
        RuntimeError: creating the venv or installing into it failed (pip's output
            is in the message).

    Example: `ensure_venv("mlflow", ["mlflow==3.18.0"]) / "bin" / "mlflow"`
    """
    unpinned = [r for r in requirements if "==" not in r]
    if unpinned:
        raise ValueError(f"pin exact versions, not {unpinned}")
    venvs = cache_root(environ) / "venvs"
    target = venvs / f"{name}-{_digest(requirements)}"
    if _complete(target):
        return target
    venvs.mkdir(parents=True, exist_ok=True)
    with open(venvs / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        if _complete(target):  # another process built it while we waited
            return target
        build = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=venvs))
        try:
            _run([sys.executable, "-m", "venv", str(build)])
            _run([str(build / "bin" / "python"), "-m", "pip", "install", *requirements])
            # Nothing in a venv depends on its own path except the scripts' shebangs and
            # bin/activate; scripts are always run as `<venv>/bin/python -m ...` or
            # through the rewritten shebangs below, so a rename is safe.
            _rewrite_shebangs(build / "bin", str(build), str(target))
            (build / _MARKER).write_text("\n".join(requirements) + "\n")
            if target.exists():  # a leftover without its marker: incomplete
                shutil.rmtree(target)
            build.rename(target)
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
    return target


_MARKER = "polytrack-test-complete"


def _complete(venv: Path) -> bool:
    return (venv / _MARKER).is_file()


def _digest(requirements: Sequence[str]) -> str:
    # A venv is tied to the Python that made it: the base interpreter, not the venv
    # (.venv, tox's) the tests happen to run in, so those all share one cached build.
    key = "\n".join([sys.version, sys.base_prefix, *sorted(requirements)])
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        output = (done.stdout + done.stderr)[-4000:]
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}:\n{output}")


def _rewrite_shebangs(bin_dir: Path, old: str, new: str) -> None:
    # pip writes the venv's absolute path into each console script's first line.
    for script in bin_dir.iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        data = script.read_bytes()
        if not data.startswith(b"#!"):
            continue
        first, _, rest = data.partition(b"\n")
        if old.encode() in first:
            script.write_bytes(first.replace(old.encode(), new.encode()) + b"\n" + rest)
