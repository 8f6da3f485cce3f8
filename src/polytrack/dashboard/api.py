"""The dashboard's JSON endpoints, over the public read API only.

Every endpoint is a plain (synchronous) function: Starlette runs it in its thread pool,
so a slow read of one run's files never stalls the others. Each reads the store afresh
(`polytrack.runs()`, `get_run()`, ...), which is what makes a live run's new points
visible at the next poll: nothing is cached between requests.

Errors become JSON in `app.py` (`error_response`): a `QueryError` is a 400 with the
offending expression and the position of its token, a run or artifact that is not
there a 404. The shapes are the contract in docs/dashboard.md.
"""

from __future__ import annotations

import csv
import functools
import io
import logging
import math
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import attrs
import numpy as np
import numpy.typing as npt
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from polytrack._version import __version__
from polytrack.dashboard.downsample import downsample, nonfinite_steps
from polytrack.dashboard.security import check_run_ref
from polytrack.errors import InvalidInputError, PolytrackError, QueryError, RunNotFoundError
from polytrack.history.compare import ABSENT, SYSTEM_PREFIX, compare as compare_runs
from polytrack.history.lineage import LineageGraph, consumers, lineage as lineage_of, producers
from polytrack.history.runs import RunView, get_run, runs_page, summarize_runs

__all__ = ["BadRequest", "routes", "run_row"]

DEFAULT_POINTS: Final = 2000
MAX_POINTS: Final = 100_000
MAX_PAGE: Final = 1000
MAX_COMPARED: Final = 32
_LOG: Final = logging.getLogger("polytrack.dashboard")
# The contract names run attributes as RunRow does; the where-language calls them so.
_ORDER_ALIASES: Final = {
    "created_at": "created",
    "updated_at": "updated",
    "finished_at": "finished",
}
_GIT_KEYS: Final = frozenset({"commit", "branch", "remote", "dirty", "uncommitted"})


class BadRequest(Exception):
    """A request argument is malformed: a 400 whose message names the argument."""


# -- plain data ---------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """`value` with every non-finite float spelled as a string ("NaN", "Infinity",
    "-Infinity"): JSON has no such numbers, and the encoder refuses them."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def _nulled(values: npt.NDArray[np.float64]) -> list[float | None]:
    """Values as a JSON list, NaN and ±inf as null (the chart's gaps)."""
    out: npt.NDArray[Any] = values.astype(object)
    out[~np.isfinite(values)] = None
    return out.tolist()  # type: ignore[no-any-return]


def run_row(run: RunView, now: float) -> dict[str, Any]:
    """A run as the runs table shows it (the contract's RunRow)."""
    # `running` after the store's liveness check means its process is alive: a run
    # whose owner died reads as `crashed`.
    live = run.status == "running"
    if run.finished_at is not None:
        duration: float | None = max(0.0, run.finished_at - run.created_at)
    else:
        duration = max(0.0, now - run.created_at) if live else None
    row: dict[str, Any] = jsonable(
        {
            "id": run.id,
            "project": run.project,
            "name": run.name,
            "status": run.status,
            "live": live,
            "created_at": run.created_at,
            "updated_at": run.updated_at,
            "finished_at": run.finished_at,
            "duration": duration,
            "user": run.user,
            "host": run.host,
            "tags": list(run.tags),
            "params": dict(run.params),
            "metrics": {
                key: {
                    "last": s.last,
                    "min": s.min,
                    "max": s.max,
                    "step": s.last_step,
                    "count": s.count,
                }
                for key, s in run.metrics.items()
            },
            "notes": run.notes,
        }
    )
    return row


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)


# -- arguments ----------------------------------------------------------------------------


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number; got {text!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}; got {value}")
    return value


def _text(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    return value if value is not None and value.strip() else None


def _run(request: Request) -> RunView:
    """The run the path names (`get_run`: id, unique prefix or name); 404 otherwise."""
    ref: str = request.path_params["run_id"]
    if not check_run_ref(ref):
        raise RunNotFoundError(f"{ref!r} is not a run id or name")
    return get_run(ref, home=request.app.state.home)


def _key(request: Request) -> str:
    key = request.query_params.get("key")
    if not key:
        raise BadRequest("key is required: the metric to read, e.g. ?key=loss")
    return key


# -- the endpoints ------------------------------------------------------------------------


def info(request: Request) -> Response:
    home: Path = request.app.state.home
    summary = summarize_runs(home=home)
    return _json(
        {
            "version": __version__,
            "home": _shown(home),
            "projects": list(summary.projects),
            "run_count": summary.count,
            "token_required": request.app.state.token is not None,
        }
    )


def _shown(home: Path) -> str:
    """The home as the header shows it: `~/...` under the user's home directory, so a
    screenshot or a shared screen does not carry the account's path."""
    try:
        return str(Path("~") / home.resolve().relative_to(Path.home().resolve()))
    except (ValueError, RuntimeError, OSError):  # elsewhere, or no home directory known
        return str(home)


def _quoted(text: str) -> str:
    """`text` as a double-quoted string of the where-language."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _glob_literal(text: str) -> str:
    """`text` with GLOB's special characters made literal (`[*]`, `[?]`, `[[]`)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _order_terms(order_by: str | None, group: str | None) -> list[str] | None:
    terms = [term.strip() for term in (order_by or "").split(",") if term.strip()]
    mapped = []
    for term in terms:
        sign, name = ("-", term[1:].strip()) if term.startswith("-") else ("", term)
        mapped.append(sign + _ORDER_ALIASES.get(name, name))
    if group == "project":
        mapped = ["project", *(mapped or ["-created"])]
    return mapped or None


def list_runs(request: Request) -> Response:
    home: Path = request.app.state.home
    offset = _int(request, "offset", 0, 0, 10**9)
    limit = _int(request, "limit", 100, 1, MAX_PAGE)
    where, search = _text(request, "where"), _text(request, "q")
    project = _text(request, "project")
    group = _text(request, "group")
    if group not in (None, "none", "project"):
        raise BadRequest(f"group must be 'none' or 'project'; got {group!r}")
    order = _order_terms(_text(request, "order_by"), group)
    combined = where
    if search is not None:
        matches = (
            f"(name ~ {_quoted('*' + _glob_literal(search) + '*')} or {_quoted(search)} in tags)"
        )
        combined = f"({where}) and {matches}" if where is not None else matches
    try:
        page = runs_page(project, combined, order, limit=limit, offset=offset, home=home)
    except QueryError as exc:
        if where is not None and exc.query == combined and combined != where:
            # The error is in the user's `where`, which starts 1 character in.
            position = min(max(exc.position - 1, 0), len(where))
            raise QueryError(exc.reason, query=where, position=position, length=exc.length) from exc
        raise
    now = time.time()
    return _json(
        {
            "total": page.summary.count,
            "offset": offset,
            "limit": limit,
            "param_keys": list(page.summary.param_keys),
            "metric_keys": list(page.summary.metric_keys),
            "runs": [run_row(run, now) for run in page.runs],
        }
    )


def run_detail(request: Request) -> Response:
    run = _run(request)
    row = run_row(run, time.time())
    keys = sorted(run.metrics)
    row.update(
        jsonable(
            {
                "outputs": _outputs(run),
                "message": run.message,
                "attempts": run.attempts,
                "damaged": list(run.damaged),
                "path": run.path,
                "metric_keys": [k for k in keys if not k.startswith(SYSTEM_PREFIX)],
                "system_keys": [k for k in keys if k.startswith(SYSTEM_PREFIX)],
                "reproduce": f"polytrack reproduce {run.id}",
            }
        )
    )
    return _json(row)


def _outputs(run: RunView) -> Any:
    outputs: Any = run.outputs
    # A property today; a method in a branch being written next to this one.
    return outputs() if callable(outputs) else outputs


def _series(
    run: RunView, key: str
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    steps, values, times = run.history(key, with_time=True)  # type: ignore[misc]
    return steps, values, times


def series(request: Request) -> Response:
    run = _run(request)
    key = _key(request)
    points = _int(request, "points", DEFAULT_POINTS, 2, MAX_POINTS)
    x = request.query_params.get("x", "step")
    if x not in ("step", "time"):
        raise BadRequest(f"x must be 'step' or 'time'; got {x!r}")
    kept = downsample(*_series(run, key), points)
    return _json(
        {
            "key": key,
            "total": kept.total,
            "downsampled": kept.downsampled,
            "steps": kept.steps.tolist(),
            "values": _nulled(kept.values),
            "times": _nulled(kept.times),
            "nonfinite": kept.nonfinite,
        }
    )


def series_json(request: Request) -> Response:
    run = _run(request)
    key = _key(request)
    steps, values, times = _series(run, key)
    return _json(
        {
            "key": key,
            "total": len(steps),
            "downsampled": False,
            "steps": steps.tolist(),
            "values": _nulled(values),
            "times": _nulled(times),
            "nonfinite": nonfinite_steps(steps, values),
        }
    )


def series_csv(request: Request) -> Response:
    run = _run(request)
    key = _key(request)
    steps, values, times = _series(run, key)

    def rows() -> Iterator[str]:
        yield "step,value,time\n"
        chunk = 10_000
        for start in range(0, len(steps), chunk):
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerows(
                zip(
                    steps[start : start + chunk].tolist(),
                    map(repr, values[start : start + chunk].tolist()),
                    map(repr, times[start : start + chunk].tolist()),
                    strict=True,
                )
            )
            yield buffer.getvalue()

    filename = _safe_filename(f"{run.id}-{key}.csv")
    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


def _safe_filename(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:200]


def logs(request: Request) -> Response:
    run = _run(request)
    after = _int(request, "after", 0, 0, 10**12)
    limit = _int(request, "limit", 1000, 1, 100_000)
    search = request.query_params.get("q")
    lines = run.logs()
    needle = search.lower() if search else None
    out: list[dict[str, Any]] = []
    cursor = after
    for index in range(after, len(lines)):
        if len(out) >= limit:
            break
        cursor = index + 1
        line = lines[index]
        if needle is not None and needle not in line.text.lower():
            continue
        out.append({"stream": line.stream, "text": line.text, "time": jsonable(line.t)})
    if len(out) < limit:
        cursor = max(cursor, len(lines))
    return _json({"lines": out, "cursor": cursor, "total": len(lines)})


def artifacts(request: Request) -> Response:
    run = _run(request)
    listed = [
        {
            "name": view.name,
            "kind": view.kind,
            "digest": view.digest,
            "size": view.size,
            "files": len(view.files),
            "created_at": view.logged_at,
            "download": f"/api/runs/{quote(run.id)}/artifacts/{quote(view.name)}/download",
        }
        for view in run.artifacts()
    ]
    return _json(jsonable({"artifacts": listed}))


def download(request: Request) -> Response:
    """An artifact's bytes: a file as itself, a directory as a zip made on the fly.

    The artifact is rebuilt by `ArtifactView.download` (which checks every blob against
    its digest and refuses any recorded path that would leave its directory) into a
    temporary directory removed once the response is sent; only that is served.
    """
    run = _run(request)
    name: str = request.path_params["name"]
    view = run.artifact(name)  # InvalidInputError for "..", absolute, ...: 400
    scratch = Path(tempfile.mkdtemp(prefix="polytrack-download-"))
    cleanup = BackgroundTask(shutil.rmtree, scratch, ignore_errors=True)
    try:
        built = view.download(scratch / "out")
        if not view.is_directory:
            return FileResponse(
                built,
                filename=_safe_filename(built.name) or "artifact",
                media_type="application/octet-stream",
                background=cleanup,
            )
        archive = scratch / "artifact.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
            for path in sorted(built.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    out.write(path, path.relative_to(built.parent).as_posix())
        return FileResponse(
            archive,
            filename=_safe_filename(f"{view.name.replace('/', '_')}.zip"),
            media_type="application/zip",
            background=cleanup,
        )
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def snapshot(request: Request) -> Response:
    run = _run(request)
    snap = run.snapshot()
    git: dict[str, Any] | None = None
    if snap.git is not None:
        patch = run.diff()
        git = attrs.asdict(snap.git) | {
            "diff": None if patch is None else patch.decode("utf-8", "replace")
        }
    return _json(
        jsonable(
            {
                "git": git,
                "code": None if snap.code is None else attrs.asdict(snap.code),
                "environment": (
                    None if snap.environment is None else attrs.asdict(snap.environment)
                ),
                "hardware": None if snap.hardware is None else attrs.asdict(snap.hardware),
                "seeds": None if snap.seeds is None else attrs.asdict(snap.seeds),
                "data_refs": [attrs.asdict(ref) for ref in snap.data_refs],
            }
        )
    )


def graph_json(graph: LineageGraph) -> dict[str, Any]:
    """A lineage graph as the front-end draws it: nodes and downstream edges."""
    nodes: list[dict[str, Any]] = [
        {
            "id": f"run:{run.id}",
            "kind": "run",
            "label": run.name or run.id,
            "run_id": run.id,
            "digest": None,
            "status": run.status,
        }
        for run in (graph.runs[i] for i in graph.run_ids())
    ]
    for node in sorted(graph.nodes.values(), key=lambda n: n.digest):
        nodes.append(
            {
                "id": node.digest,
                "kind": node.type,
                "label": node.names[0] if node.names else node.digest[:19],
                "run_id": None,
                "digest": node.digest,
                "status": None,
            }
        )
    edges = [
        {"source": e.source, "target": e.target, "label": e.name or e.relation} for e in graph.edges
    ]
    return {"nodes": nodes, "edges": edges}


def run_lineage(request: Request) -> Response:
    run = _run(request)
    depth = _int(request, "depth", 2, 0, 20)
    graph = lineage_of(f"run:{run.id}", depth=depth, home=request.app.state.home)
    return _json(jsonable(graph_json(graph)))


def lineage(request: Request) -> Response:
    home: Path = request.app.state.home
    ref = _text(request, "ref")
    if ref is None:
        raise BadRequest("ref is required: a path, digest or name, e.g. ?ref=data/train.csv")
    depth = _int(request, "depth", 2, 0, 20)
    path = ref.removeprefix("path:")
    if os.path.exists(path) and not os.path.isfile(path):
        # A path is hashed to be looked up; never a device, a pipe or a directory tree.
        raise BadRequest(f"{path!r} is not a regular file")
    graph = lineage_of(ref, depth=depth, home=home)
    now = time.time()
    data = graph_json(graph)
    for role, find in (("producers", producers), ("consumers", consumers)):
        try:
            related = find(ref, home=home)
        except (RunNotFoundError, InvalidInputError):
            related = []  # a run as `ref`: it has a graph, not producers
        data[role] = [run_row(run, now) for run in related]
    return _json(jsonable(data))


def _values(values: Sequence[Any]) -> list[Any]:
    return [None if v is ABSENT else v for v in values]


def _text_values(values: Sequence[Any]) -> list[str | None]:
    return [None if v is ABSENT or v is None else str(v) for v in values]


def compare(request: Request) -> Response:
    home: Path = request.app.state.home
    ids = [i.strip() for i in (request.query_params.get("ids") or "").split(",") if i.strip()]
    if not 2 <= len(ids) <= MAX_COMPARED:
        raise BadRequest(f"ids must name 2 to {MAX_COMPARED} runs, comma-separated")
    for ref in ids:
        if not check_run_ref(ref):
            raise RunNotFoundError(f"{ref!r} is not a run id or name")
    comparison = compare_runs(*ids, home=home)
    now = time.time()
    snapshot_rows: list[dict[str, Any]] = []
    for section, rows in (
        ("code", comparison.code),
        ("data", comparison.data),
        ("environment", comparison.environment),
        (
            "environment",
            tuple(attrs.evolve(r, key=f"package {r.key}") for r in comparison.packages),
        ),
        ("hardware", comparison.hardware),
    ):
        for row in rows:
            shown = "git" if section == "code" and row.key in _GIT_KEYS else section
            snapshot_rows.append(
                {
                    "section": shown,
                    "key": row.key,
                    "values": _text_values(row.values),
                    "differs": row.differs,
                }
            )
    data = {
        "runs": [run_row(run, now) for run in comparison.runs],
        "params": [
            {"key": row.key, "values": _values(row.values), "differs": row.differs}
            for row in comparison.params
        ],
        "metrics": [
            {
                "key": row.key,
                "values": [None if s is None else s.last for s in row.summaries],
                "differs": row.differs,
            }
            for row in comparison.metrics
        ],
        "snapshot": snapshot_rows,
        "diffs": [
            None if patch is None else patch.decode("utf-8", "replace")
            for patch in comparison.patches
        ],
    }
    return _json(jsonable(data))


def _guarded(endpoint: Callable[[Request], Response]) -> Callable[[Request], Response]:
    """`endpoint`, answering a bug with a JSON 500 (and a logged traceback) from inside
    the app, so that the answer still passes through the security headers; the errors
    the app maps (`app.py`) pass on."""

    @functools.wraps(endpoint)
    def guarded(request: Request) -> Response:
        try:
            return endpoint(request)
        except (PolytrackError, BadRequest, HTTPException):
            raise
        except Exception as exc:
            _LOG.exception("dashboard: %s %s failed", request.method, request.url.path)
            return _json(
                {
                    "error": {
                        "kind": "internal",
                        "message": f"the server failed: {exc!r}",
                        "position": None,
                        "expression": None,
                    }
                },
                500,
            )

    return guarded


def routes() -> list[Route]:
    """The /api routes."""
    run = "/api/runs/{run_id}"
    return [
        Route(path, _guarded(endpoint))
        for path, endpoint in (
            ("/api/info", info),
            ("/api/runs", list_runs),
            (run, run_detail),
            (f"{run}/series", series),
            (f"{run}/series.json", series_json),
            (f"{run}/series.csv", series_csv),
            (f"{run}/logs", logs),
            (f"{run}/artifacts", artifacts),
            # An artifact name may hold "/" ("checkpoints/best"): the rest of the path.
            (run + "/artifacts/{name:path}/download", download),
            (f"{run}/snapshot", snapshot),
            (f"{run}/lineage", run_lineage),
            ("/api/compare", compare),
            ("/api/lineage", lineage),
        )
    ]
