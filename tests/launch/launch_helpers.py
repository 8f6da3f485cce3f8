"""What the launch tests share besides fixtures: running the command line in-process."""

from __future__ import annotations

import io
from typing import Any

from attrs import frozen

from polytrack.cli import main

NAMESPACE = "ml"
TOKEN = "token-1"


@frozen
class Result:
    code: int
    out: str
    err: str


def cli(*argv: str, environ: dict[str, Any]) -> Result:
    """`polytrack ARGV`, run in this process, its streams captured."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err, environ=environ)
    return Result(code, out.getvalue(), err.getvalue())
