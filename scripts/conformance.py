"""Agreement of `polytrack check` with Polyaxon's own checker on a folder of Polyaxonfiles.

    python scripts/conformance.py ../shared/polyaxonfiles    # reads its SOURCES.md table

The folder's SOURCES.md has a table row per file with Polyaxon's outcome (`OK`, `needs
params`, `FAIL: ...`, `?` for not measured) in its last columns (2.16.4, then
2.18.0). Each file is loaded as
`polytrack check` loads it (no params); the outcomes agree when both accept it, both want
params, or both refuse it. Prints one line per file and `N agree, M disagree` for each
Polyaxon release.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from polytrack import spec
from polytrack.errors import MissingParamsError, SpecError


def outcome(path: Path) -> tuple[str, str]:
    """polytrack's outcome for `path`: ok, params or fail, and the message."""
    try:
        spec.check([path])
    except MissingParamsError as exc:
        return "params", str(exc)
    except SpecError as exc:
        return "fail", str(exc)
    return "ok", ""


def polyaxon(cell: str) -> str:
    text = cell.strip().strip("*").lower()
    if text.startswith("ok"):
        return "ok"
    if text.startswith("needs params"):
        return "params"
    if text.startswith("fail"):
        return "fail"
    if text in ("same", "?"):
        return text  # as the other release; not measured
    raise ValueError(f"cannot read the outcome {cell!r}")


def table(folder: Path) -> dict[str, tuple[str, str]]:
    rows: dict[str, tuple[str, str]] = {}
    for line in (folder / "SOURCES.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not re.fullmatch(r"[\w.\-]+\.ya?ml", cells[0]):
            continue
        old, new = polyaxon(cells[-2]), polyaxon(cells[-1])
        rows[cells[0]] = (old, old if new == "same" else new)
    return rows


def main(argv: list[str]) -> int:
    folder = Path(argv[0] if argv else "../shared/polyaxonfiles")
    expected = table(folder)
    agree = {"2.16.4": 0, "2.18.0": 0}
    disagree = {"2.16.4": 0, "2.18.0": 0}
    for name, (old, new) in sorted(expected.items()):
        ours, message = outcome(folder / name)
        marks = []
        for release, theirs in (("2.16.4", old), ("2.18.0", new)):
            if theirs == "?":
                continue
            same = ours == theirs
            (agree if same else disagree)[release] += 1
            marks.append(f"{release}:{'=' if same else 'DIFFERS ' + theirs}")
        first = message.splitlines()[0] if message else ""
        print(f"{name:40} {ours:6} {' '.join(marks)}  {first[:100]}")
    for release in agree:
        if agree[release] + disagree[release] == 0:
            continue
        print(f"Polyaxon {release}: {agree[release]} agree, {disagree[release]} disagree")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
