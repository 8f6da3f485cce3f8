"""`polytrack`'s `main(argv)` called in-process, with what it printed."""

from __future__ import annotations

import io

from attrs import frozen

from polytrack.cli import main


@frozen
class Result:
    """What one `main()` call returned and printed."""

    code: int
    out: str
    err: str


def cli(*argv: str) -> Result:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err, environ={})
    return Result(code, out.getvalue(), err.getvalue())
