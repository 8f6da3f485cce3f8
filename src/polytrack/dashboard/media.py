"""The dashboard's media endpoints: a run's media keys, a key's steps, and their files.

Read through the public read API only (`RunView.media_keys()`, `RunView.media(name)`).
A key's answer carries, for the kinds whose file is small JSON or text (histogram,
curve, confusion, table, text, a figure's spec), the value itself, so the front-end
draws a key with one request; the answer stays bounded: at most `limit` steps (spread
evenly over the key's steps, first and last kept) and at most `INLINE_BUDGET` bytes of
inline values (past it, or for a file over `INLINE_MAX`, `value` is null and the
front-end fetches the file). So that every step stays reachable, the answer also lists
the key's steps themselves (`all_steps`, plain ints: up to `ALL_STEPS_MAX` of them, spread
evenly past that); the front-end asks for a step the answer left out with `?step=N`.

A file is served only from the records of the run the URL names, looked up by step and
index (never by a path or a digest), with its recorded media type. Every file answer
carries `Content-Security-Policy: sandbox allow-scripts` plus a policy that loads
nothing from anywhere: HTML (`log_html`, a bokeh figure) runs in an opaque origin,
so it can neither read the dashboard's token cookie nor call the API.
"""

from __future__ import annotations

import json
import math
from typing import Any, Final
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from polytrack.dashboard.api import BadRequest, _guarded, _int, _json, _run, jsonable
from polytrack.history.runs import RunView
from polytrack.media.read import MediaItem

__all__ = ["ALL_STEPS_MAX", "FILE_CSP", "INLINE_BUDGET", "INLINE_MAX", "routes"]

DEFAULT_STEPS: Final = 200
MAX_STEPS: Final = 1000
# The step numbers listed in a key's answer, at most: a slider's positions. 100,000 ints
# are about 700 KB of JSON, read once per card; a key with more is listed spread evenly.
ALL_STEPS_MAX: Final = 100_000
INLINE_MAX: Final = 1024 * 1024  # one file inlined in a key's answer, at most
INLINE_BUDGET: Final = 8 * 1024 * 1024  # all inlined files of one answer, at most
# The kinds whose value comes inline (JSON or text); the others are files (images,
# sound, video, HTML) that the browser fetches by URL.
_INLINE_KINDS: Final = frozenset({"histogram", "curve", "confusion", "table", "text", "figure"})
# A media file: sandboxed (an opaque origin: no cookie, no same-origin API), allowed
# its own inline script and style (bokeh's standalone HTML is made of them), and
# nothing from any server, this one included.
FILE_CSP: Final = (
    "sandbox allow-scripts; default-src 'none'; "
    "script-src 'unsafe-inline' 'unsafe-eval' blob: data:; style-src 'unsafe-inline' data:; "
    "img-src data: blob:; media-src data: blob:; font-src data:; frame-ancestors 'self'"
)
_TEXT_TYPES: Final = frozenset({"text/plain", "text/html", "text/csv", "application/json"})


def _finite(value: Any) -> Any:
    """A parsed JSON value with NaN and ±inf as null (JSON has no such numbers; a
    chart's gap is what they mean)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _name(request: Request) -> str:
    name: str = request.path_params["name"]
    if not name or len(name) > 250 or "\x00" in name:
        raise HTTPException(404, "no such media")
    return name


def _base(run: RunView, name: str) -> str:
    return f"/api/runs/{quote(run.id, safe='')}/media/{quote(name, safe='')}"


def _files(run: RunView, item: MediaItem) -> list[dict[str, Any]]:
    base = _base(run, item.name)
    return [
        {
            "index": index,
            "media_type": blob.media_type,
            "size": blob.size,
            "url": f"{base}/file?step={item.step}&index={index}",
        }
        for index, blob in enumerate(item.blobs)
    ]


def _inline_index(item: MediaItem) -> int | None:
    """Which of `item`'s files is its inline value (a figure: its JSON spec), if any."""
    if item.kind not in _INLINE_KINDS:
        return None
    wanted = "text/plain" if item.kind == "text" else "application/json"
    for index, blob in enumerate(item.blobs):
        if blob.media_type == wanted:
            return index
    return None


def _inline_value(item: MediaItem, index: int) -> Any:
    data = item.data(index)
    if item.kind == "text":
        return data.decode("utf-8", "replace")
    return _finite(json.loads(data))


def _item_json(run: RunView, item: MediaItem, budget: list[int]) -> dict[str, Any]:
    """One step of a key; `budget[0]` is what is left of the answer's inline bytes."""
    out: dict[str, Any] = {
        "step": item.step,
        "caption": item.caption,
        "shape": list(item.shape),
        "meta": jsonable(item.meta),
        "logged_at": item.logged_at,
        "files": _files(run, item),
    }
    index = _inline_index(item)
    if index is not None:
        size = item.blobs[index].size
        if size <= INLINE_MAX and size <= budget[0]:
            out["value"] = _inline_value(item, index)
            out["inline"] = True
            budget[0] -= size
        else:
            out["value"] = None
            out["inline"] = False
    return out


def _spread(count: int, limit: int) -> list[int]:
    """At most `limit` indices of `count`, evenly spread, the first and the last kept."""
    if count <= limit:
        return list(range(count))
    if limit == 1:
        return [count - 1]
    return sorted({round(i * (count - 1) / (limit - 1)) for i in range(limit)})


def media_list(request: Request) -> Response:
    run = _run(request)
    keys = run.media_keys()
    return _json(
        {
            "media": [
                {"name": name, "kind": kind, "steps": steps, "url": _base(run, name)}
                for name, (kind, steps) in keys.items()
            ]
        }
    )


def media_detail(request: Request, name: str | None = None) -> Response:
    run = _run(request)
    name = name if name is not None else _name(request)
    items = run.media(name)
    if not items:
        raise HTTPException(404, f"run {run.id} has no media {name!r}")
    chosen = request.query_params.get("step")
    if chosen is not None:
        step = _int(request, "step", 0, 0, 2**62)
        items = [item for item in items if item.step == step]
        if not items:
            raise HTTPException(404, f"media {name!r} has no step {step}")
        picked = items
        listed: dict[str, Any] = {}
    else:
        limit = _int(request, "limit", DEFAULT_STEPS, 1, MAX_STEPS)
        picked = [items[i] for i in _spread(len(items), limit)]
        # The steps themselves, so that a slider reaches each one (`?step=N` fetches it).
        every = _spread(len(items), ALL_STEPS_MAX)
        listed = {
            "all_steps": [items[i].step for i in every],
            "all_steps_complete": len(every) == len(items),
        }
    budget = [INLINE_BUDGET]
    return _json(
        {
            "name": name,
            "kind": items[0].kind,
            "total": len(items),
            "sampled": len(picked) < len(items),
            **listed,
            "steps": [_item_json(run, item, budget) for item in picked],
        }
    )


def media_file(request: Request) -> Response:
    """One file of one step's record, as itself, sandboxed (see the module docstring)."""
    run = _run(request)
    name = _name(request)
    items = run.media(name)
    if not items and run.media(f"{name}/file"):
        # A media literally named ".../file": its steps, not a file of "...".
        return media_detail(request, f"{name}/file")
    if request.query_params.get("step") is None:
        raise BadRequest("step is required: the step whose file to read, e.g. ?step=0")
    step = _int(request, "step", 0, 0, 2**62)
    index = _int(request, "index", 0, 0, 10**6)
    found = next((item for item in items if item.step == step), None)
    if found is None or index >= len(found.blobs):
        raise HTTPException(404, f"media {name!r} has no file {index} at step {step}")
    media_type = found.blobs[index].media_type
    if media_type in _TEXT_TYPES:
        media_type += "; charset=utf-8"
    return Response(
        found.data(index),
        media_type=media_type,
        headers={"content-security-policy": FILE_CSP, "x-content-type-options": "nosniff"},
    )


def routes() -> list[Route]:
    """The /api/runs/{run_id}/media routes (a media name may hold "/": the path's rest)."""
    base = "/api/runs/{run_id}/media"
    return [
        Route(base, _guarded(media_list)),
        Route(base + "/{name:path}/file", _guarded(media_file)),
        Route(base + "/{name:path}", _guarded(media_detail)),
    ]
