"""What the local runner's tests share: job sections, the command line with an environment."""

from __future__ import annotations

import io
import sys
from typing import Any

from attrs import frozen

from polytrack.cli import main


def python_job(script: str, **extra: Any) -> dict[str, Any]:
    """A job's `run` section: `python -c script` (templates in it are rendered)."""
    return {
        "kind": "job",
        "container": {"image": "python:3.11", "command": [sys.executable, "-c"], "args": [script]},
        **extra,
    }


@frozen
class Result:
    """What one `main()` call returned and printed."""

    code: int
    out: str
    err: str


def cli(*argv: str, environ: dict[str, str]) -> Result:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err, environ=environ)
    return Result(code, out.getvalue(), err.getvalue())
